/* large: big buffers (64 KiB-32 MiB) allocated, fully written and freed by several threads, as a
 * message broker's batch buffers, a decoder's frames or a compressor's windows are.
 *
 * Each thread keeps its last `keep` buffers alive; each step allocates one of a log-uniform size
 * (each doubling from 64 KiB to 32 MiB equally likely: mean about 5 MiB), writes every byte, checks the
 * oldest buffer and frees it. What differs between allocators is what a fresh buffer costs: a new
 * mapping pays a page fault and the kernel's zeroing per 4 KiB page, a reused one does not; and how much
 * of the freed memory each keeps resident (the runner reports peak RSS).
 *
 * Invariant checked: a buffer's first, middle and last bytes still hold what was written at free time.
 *
 * Parameters: threads=2 steps=<per thread> keep=4 seed=1
 * Metrics: ops (buffers per second, primary), gbytes (GiB/s written). */
#define _GNU_SOURCE
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct { unsigned char *p; size_t size; uint64_t seed; } buf_t;

static uint64_t steps, keep, seed;
static _Atomic uint64_t written;
static pthread_barrier_t start;

static void *worker(void *arg) {
  unsigned id = (unsigned)(uintptr_t)arg;
  zb_rng r = zb_rng_seed(seed * 100 + id);
  buf_t *ring = zb_xmalloc(sizeof(buf_t) * keep);
  for (uint64_t i = 0; i < keep; i++) ring[i].p = NULL;
  uint64_t bytes = 0, serial = (uint64_t)id << 48;
  pthread_barrier_wait(&start);
  for (uint64_t k = 0; k < steps; k++) {
    buf_t *b = &ring[k % keep];
    if (b->p != NULL) {
      zb_check(b->p, b->size, b->seed);
      free(b->p);
    }
    b->size = zb_size_loguniform(&r, 65536, ((size_t)32 << 20) + 1);
    b->p = zb_xmalloc(b->size);
    b->seed = ++serial;
    zb_fill(b->p, b->size, b->seed);
    bytes += b->size;
  }
  for (uint64_t i = 0; i < keep; i++) {
    if (ring[i].p != NULL) {
      zb_check(ring[i].p, ring[i].size, ring[i].seed);
      free(ring[i].p);
    }
  }
  free(ring);
  atomic_fetch_add(&written, bytes);
  return NULL;
}

int main(int argc, char **argv) {
  zb_init(argc, argv, "large");
  unsigned nthreads = (unsigned)zb_param("threads", 2, 2);
  steps = zb_param("steps", 240, 60);
  keep = zb_param("keep", 4, 4);
  seed = zb_param("seed", 1, 1);
  zb_params_done();
  if (nthreads < 1 || nthreads > 256 || keep < 1) zb_die("bad threads/keep");

  double dt = zb_run_threads(nthreads, worker, &start);
  zb_report("ops", (double)(steps * nthreads) / dt, "ops/s", true);
  zb_report("gbytes", (double)atomic_load(&written) / dt / 1073741824.0, "GiB/s", true);
  zb_report("time", dt, "s", false);
  return 0;
}
