/* alloctest: intensive allocation with Pareto-distributed small sizes, after ITHare's alloc-test
 * (node-dot-cpp/alloc-test, in mimalloc-bench as alloc-test1 and alloc-testN).
 *
 * Each thread owns `slots` live blocks and on every step frees a random one and allocates a new block
 * there, writing its first and last bytes (a program touches what it allocates). Sizes are Pareto with
 * shape 1 from 8 B cut at 1 KiB: half the blocks are 8-15 B, 87.5% under 64 B, 0.8% above 1 KiB cut off
 * (redrawn). Threads share nothing, so this is the allocator's thread-local speed, one thread or all.
 *
 * Invariant checked: the bytes written into a block are still there when it is freed.
 *
 * Parameters: threads=1 slots=65536 ops=<per thread> seed=1
 * Metrics: ops (malloc+free pairs per second over all threads, primary);
 *   per pair: faults_per_op, cpu_us_per_op (the measured phase, see common.h). */
#define _GNU_SOURCE
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct { unsigned char *p; uint32_t size; unsigned char tag; } slot_t;

static uint64_t nslots, nops, seed;
static pthread_barrier_t start;

static void *worker(void *arg) {
  unsigned id = (unsigned)(uintptr_t)arg;
  zb_rng r = zb_rng_seed(seed * 100 + id);
  slot_t *s = zb_xmalloc(sizeof(slot_t) * nslots);
  for (uint64_t i = 0; i < nslots; i++) {
    s[i].size = (uint32_t)zb_size_pareto(&r, 8, 1024);
    s[i].p = zb_xmalloc(s[i].size);
    s[i].tag = (unsigned char)i;
    s[i].p[0] = s[i].p[s[i].size - 1] = s[i].tag;
  }
  pthread_barrier_wait(&start);
  for (uint64_t k = 0; k < nops; k++) {
    slot_t *x = &s[zb_below(&r, nslots)];
    if (x->p[0] != x->tag || x->p[x->size - 1] != x->tag) zb_die("block %p of %u bytes corrupt", x->p, x->size);
    free(x->p);
    x->size = (uint32_t)zb_size_pareto(&r, 8, 1024);
    x->p = zb_xmalloc(x->size);
    x->tag = (unsigned char)k;
    x->p[0] = x->p[x->size - 1] = x->tag;
  }
  pthread_barrier_wait(&start);
  for (uint64_t i = 0; i < nslots; i++) free(s[i].p);
  free(s);
  return NULL;
}

int main(int argc, char **argv) {
  zb_init(argc, argv, "alloctest");
  unsigned nthreads = (unsigned)zb_param("threads", 1, 1);
  nslots = zb_param("slots", 65536, 65536);
  nops = zb_param("ops", 8000000, 2000000);
  seed = zb_param("seed", 1, 1);
  zb_params_done();
  if (nthreads < 1 || nthreads > 256 || nslots < 1) zb_die("bad threads/slots");

  pthread_t th[256];
  pthread_barrier_init(&start, NULL, nthreads + 1);
  for (unsigned i = 0; i < nthreads; i++) pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i);
  pthread_barrier_wait(&start);  /* every thread has filled its slots */
  zb_phase_begin();
  double t0 = zb_now();
  pthread_barrier_wait(&start);  /* every thread has done its steps */
  double dt = zb_now() - t0;
  zb_phase_end(nops * nthreads);
  for (unsigned i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
  zb_report("ops", (double)(nops * nthreads) / dt, "ops/s", true);
  zb_report("time", dt, "s", false);
  return 0;
}
