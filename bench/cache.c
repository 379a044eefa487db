/* cache: false sharing of small objects between threads, after Hoard's cache-scratch and cache-thrash
 * (Berger et al., ASPLOS 2000).
 *
 * mode=thrash (active false sharing): each thread repeatedly allocates a small object, writes it many
 *   times and frees it. An allocator that hands objects from one cache line to two threads makes the
 *   line bounce between cores on every write.
 * mode=scratch (passive false sharing): the main thread allocates one small object per thread, side by
 *   side; each thread frees its object (a remote free) and then runs the thrash loop. An allocator that
 *   reuses a remotely freed block for the freeing thread puts the threads on one line again.
 * The objects are tiny by design (8 B): this measures placement, not size classes.
 *
 * Parameters: mode=thrash|scratch threads=2 objsize=8 iterations=<per thread> writes=<per object>
 * Metrics: time (s, primary);
 *   per object: faults_per_op, cpu_us_per_op (the measured phase, see common.h). */
#define _GNU_SOURCE
#include "common.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t iterations, writes, objsize;
static bool scratch;
static void **initial;
static pthread_barrier_t start;

static void *worker(void *arg) {
  unsigned id = (unsigned)(uintptr_t)arg;
  pthread_barrier_wait(&start);
  if (scratch) free(initial[id]);
  for (uint64_t i = 0; i < iterations; i++) {
    volatile unsigned char *o = zb_xmalloc(objsize);
    for (uint64_t w = 0; w < writes; w++)
      for (uint64_t j = 0; j < objsize; j++) o[j] = (unsigned char)(o[j] + 1);
    free((void *)o);
  }
  return NULL;
}

int main(int argc, char **argv) {
  zb_init(argc, argv, "cache");
  const char *mode = zb_param_str("mode", "thrash");
  unsigned nthreads = (unsigned)zb_param("threads", 2, 2);
  objsize = zb_param("objsize", 8, 8);
  iterations = zb_param("iterations", 60000, 20000);
  writes = zb_param("writes", 1000, 1000);
  zb_params_done();
  if (strcmp(mode, "thrash") == 0) scratch = false;
  else if (strcmp(mode, "scratch") == 0) scratch = true;
  else zb_die("mode must be thrash or scratch, not '%s'", mode);
  if (nthreads < 1 || nthreads > 256 || objsize < 1) zb_die("threads must be 1..256, objsize >= 1");

  initial = zb_xmalloc(sizeof(void *) * nthreads);
  for (unsigned i = 0; i < nthreads; i++) {
    initial[i] = zb_xmalloc(objsize);
    memset(initial[i], 0, objsize);
  }
  zb_phase_begin();
  double dt = zb_run_threads(nthreads, worker, &start);
  zb_phase_end(iterations * nthreads);
  if (!scratch)
    for (unsigned i = 0; i < nthreads; i++) free(initial[i]);
  free(initial);
  zb_report("time", dt, "s", false);
  return 0;
}
