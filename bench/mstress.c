/* mstress: server-like churn across thread generations, after the mstress test of mimalloc-bench.
 *
 * The run has P phases. In each phase T threads start, each with an unequal amount of work (thread i does
 * (i+1) shares), keep a local set of live blocks, and on each step either
 *   - free a random local block and allocate a new one (80%),
 *   - grow a random local block with realloc to twice its size, up to 1 MiB (10%),
 *   - swap a local block with a random slot of a global transfer array (10%), so blocks migrate between
 *     threads and the block taken may have been allocated by a thread that has already exited.
 * At the end of a phase every thread frees its local set and exits; the transfer array lives on into the
 * next phase, so blocks outlive the thread that allocated them. Sizes are powers of two from 16 B, each
 * doubling half as likely as the one before (half the blocks are 16 B, 1 in 4096 is 64 KiB), plus 0.1%
 * blocks of 256 KiB-1 MiB.
 *
 * Invariant checked: every block's header (size, seed) and payload survive moves, reallocs and frees.
 *
 * Parameters: threads=2 phases=8 ops=<per share per phase> live=500 transfer=1000 seed=1
 * Metrics: time (s, primary); per step: faults_per_op, cpu_us_per_op (see common.h). */
#define _GNU_SOURCE
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t nlive, ntransfer, ops_per_share, seed;
static _Atomic(unsigned char *) *transfer;

static size_t block_size(zb_rng *r) {
  if (zb_below(r, 1000) == 0) return (size_t)1 << (18 + zb_below(r, 3));
  unsigned e = 4;
  while (e < 16 && (zb_rand(r) & 1)) e++;
  return (size_t)1 << e;
}

static unsigned char *make(zb_rng *r, uint64_t *serial) {
  size_t s = block_size(r);
  unsigned char *p = zb_xmalloc(s);
  zb_fill(p, s, ++*serial);
  return p;
}

/* Every block is at least 16 B, so its own header says how to check it. */
static void check_free(unsigned char *p) {
  if (p == NULL) return;
  uint64_t h[2];
  memcpy(h, p, sizeof h);
  zb_check(p, (size_t)h[0], h[1]);
  free(p);
}

typedef struct { unsigned id, phase; } targ_t;

static void *worker(void *arg) {
  targ_t *a = arg;
  zb_rng r = zb_rng_seed(seed * 1000003 + a->phase * 1000 + a->id);
  uint64_t serial = ((uint64_t)a->phase << 48) | ((uint64_t)a->id << 40);
  unsigned char **local = zb_xmalloc(sizeof(void *) * nlive);
  for (uint64_t i = 0; i < nlive; i++) local[i] = make(&r, &serial);
  uint64_t n = ops_per_share * (a->id + 1);
  for (uint64_t k = 0; k < n; k++) {
    uint64_t i = zb_below(&r, nlive), what = zb_below(&r, 10);
    if (what == 0) {
      uint64_t h[2];
      memcpy(h, local[i], sizeof h);
      zb_check(local[i], (size_t)h[0], h[1]);
      size_t s = h[0] < ((size_t)1 << 20) ? h[0] * 2 : h[0];
      unsigned char *q = realloc(local[i], s);
      if (q == NULL) zb_die("realloc(%zu) returned NULL", s);
      if (memcmp(q, h, sizeof h) != 0) zb_die("realloc lost the block's header");
      zb_fill(q, s, ++serial);
      local[i] = q;
    } else if (what == 1) {
      uint64_t j = zb_below(&r, ntransfer);
      local[i] = atomic_exchange(&transfer[j], local[i]);
      if (local[i] == NULL) local[i] = make(&r, &serial);
    } else {
      check_free(local[i]);
      local[i] = make(&r, &serial);
    }
  }
  for (uint64_t i = 0; i < nlive; i++) check_free(local[i]);
  free(local);
  return NULL;
}

int main(int argc, char **argv) {
  zb_init(argc, argv, "mstress");
  unsigned nthreads = (unsigned)zb_param("threads", 2, 2);
  unsigned phases = (unsigned)zb_param("phases", 8, 4);
  ops_per_share = zb_param("ops", 150000, 60000);
  nlive = zb_param("live", 500, 500);
  ntransfer = zb_param("transfer", 1000, 1000);
  seed = zb_param("seed", 1, 1);
  zb_params_done();
  if (nthreads < 1 || nthreads > 256 || nlive < 1 || ntransfer < 1) zb_die("bad threads/live/transfer");

  transfer = zb_xmalloc(sizeof(*transfer) * ntransfer);
  for (uint64_t j = 0; j < ntransfer; j++) atomic_init(&transfer[j], NULL);
  pthread_t th[256];
  targ_t args[256];
  zb_phase_begin();
  double t0 = zb_now();
  for (unsigned ph = 0; ph < phases; ph++) {
    for (unsigned i = 0; i < nthreads; i++) {
      args[i] = (targ_t){i, ph};
      if (pthread_create(&th[i], NULL, worker, &args[i]) != 0) zb_die("pthread_create failed");
    }
    for (unsigned i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
  }
  for (uint64_t j = 0; j < ntransfer; j++) check_free(atomic_load(&transfer[j]));
  double dt = zb_now() - t0;
  zb_phase_end((uint64_t)phases * ops_per_share * nthreads * (nthreads + 1) / 2);
  free(transfer);
  zb_report("time", dt, "s", false);
  return 0;
}
