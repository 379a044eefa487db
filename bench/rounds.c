/* rounds: many threads pass objects to each other in rounds, and every object outlives its thread.
 *
 * The run has R rounds. Each round starts T threads (default 8, more than the cores: threads wait, are
 * preempted, and their heaps are created and torn down all the time) and joins them. Thread i of round r
 * owns an inbox of K objects that thread i-1 of round r-1 allocated and wrote. Step k of the thread checks
 * and frees inbox object k (a free by a thread that did not allocate it, whose allocating thread has
 * exited) and allocates a new object for thread i+1 of the next round in its place. So every free is
 * remote, memory freed by one thread is what the next threads allocate, and a round's demand is the same
 * as the last one's: an allocator that hands the memory of an exiting thread back to the system pays
 * page faults to get it again a moment later. Sizes: the message mix of prodcons (90% 32-256 B, 9% up to
 * 4 KiB, 1% up to 64 KiB).
 *
 * Inboxes are double-buffered by round parity, so a round reads only what the last one wrote: no locks.
 *
 * Invariant checked: every object arrives intact, once, at the thread it was meant for.
 *
 * Parameters: threads=8 rounds=<R> objects=2000 (per thread and round) seed=1
 * Metrics: ops (objects passed per second, primary), time (s);
 *   per object passed (its malloc and its free): faults_per_op, cpu_us_per_op (see common.h). */
#define _GNU_SOURCE
#include "common.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { unsigned char *p; size_t size; uint64_t seed; } obj_t;

static unsigned nthreads;
static uint64_t nobjects, seed;
static obj_t *box[2];  /* box[parity][thread * nobjects + k] */

typedef struct { unsigned id, round; } targ_t;

/* The seed names the round, the sending thread and the slot, so a misdelivered object fails the check. */
static uint64_t obj_seed(unsigned round, unsigned from, uint64_t k) {
  return ((uint64_t)round << 40) ^ ((uint64_t)from << 32) ^ k;
}

static void *worker(void *arg) {
  targ_t *a = arg;
  unsigned to = (a->id + 1) % nthreads;
  zb_rng r = zb_rng_seed(seed * 1000003 + (uint64_t)a->round * 1000 + a->id);
  obj_t *in = &box[a->round & 1][(size_t)a->id * nobjects];
  obj_t *out = &box[(a->round + 1) & 1][(size_t)to * nobjects];
  unsigned from = (a->id + nthreads - 1) % nthreads;
  for (uint64_t k = 0; k < nobjects; k++) {
    if (in[k].p != NULL) {
      if (in[k].seed != obj_seed(a->round - 1, from, k)) zb_die("object delivered to the wrong thread");
      zb_check(in[k].p, in[k].size, in[k].seed);
      free(in[k].p);
      in[k].p = NULL;
    }
    out[k].size = zb_size_message(&r);
    out[k].p = zb_xmalloc(out[k].size);
    out[k].seed = obj_seed(a->round, a->id, k);
    zb_fill(out[k].p, out[k].size, out[k].seed);
  }
  return NULL;
}

int main(int argc, char **argv) {
  zb_init(argc, argv, "rounds");
  nthreads = (unsigned)zb_param("threads", 8, 8);
  unsigned nrounds = (unsigned)zb_param("rounds", 400, 100);
  nobjects = zb_param("objects", 2000, 2000);
  seed = zb_param("seed", 1, 1);
  zb_params_done();
  if (nthreads < 2 || nthreads > 256 || nrounds < 1 || nobjects < 1) zb_die("bad threads/rounds/objects");

  /* The inboxes are the benchmark's plumbing: allocated and zeroed before the phase. */
  for (int b = 0; b < 2; b++) {
    box[b] = zb_xmalloc(sizeof(obj_t) * nthreads * nobjects);
    memset(box[b], 0, sizeof(obj_t) * nthreads * nobjects);
  }
  pthread_t th[256];
  targ_t args[256];
  zb_phase_begin();
  double t0 = zb_now();
  for (unsigned rd = 0; rd < nrounds; rd++) {
    for (unsigned i = 0; i < nthreads; i++) {
      args[i] = (targ_t){i, rd};
      if (pthread_create(&th[i], NULL, worker, &args[i]) != 0) zb_die("pthread_create failed");
    }
    for (unsigned i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
  }
  double dt = zb_now() - t0;
  uint64_t passed = (uint64_t)nrounds * nthreads * nobjects;
  zb_phase_end(passed);
  zb_report("ops", (double)passed / dt, "ops/s", true);
  zb_report("time", dt, "s", false);

  /* The last round's objects: check and free them, so a lost or duplicated one shows. */
  obj_t *last = box[nrounds & 1];
  for (unsigned i = 0; i < nthreads; i++) {
    unsigned from = (i + nthreads - 1) % nthreads;
    for (uint64_t k = 0; k < nobjects; k++) {
      obj_t *o = &last[(size_t)i * nobjects + k];
      if (o->p == NULL || o->seed != obj_seed(nrounds - 1, from, k))
        zb_die("an object of the last round is lost");
      zb_check(o->p, o->size, o->seed);
      free(o->p);
    }
  }
  free(box[0]);
  free(box[1]);
  return 0;
}
