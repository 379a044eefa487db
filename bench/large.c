/* large: big buffers (64 KiB-32 MiB) allocated, written and freed by several threads, as a message
 * broker's batch buffers, a decoder's frames or a compressor's windows are.
 *
 * Each thread keeps a ring of its last `keep` buffers alive; each step checks the oldest buffer, frees it
 * and allocates one of a log-uniform size in its place (the first `keep` steps, which fill the ring, are
 * not measured) (each doubling from 64 KiB to `max` equally likely:
 * mean about 5 MiB for 32 MiB), and writes it: every byte (touch=byte), or one byte in every 4 KiB page
 * (touch=page: the buffer is used as a sparse arena or read into in part, and the cost left is the
 * page faults). What differs between allocators is what a fresh buffer costs: a new mapping pays a page
 * fault and the kernel's zeroing per 4 KiB page, a reused one does not; and how much of the freed memory
 * each keeps resident (the runner reports peak RSS).
 *
 * Invariant checked: a buffer's header and its first, middle and last bytes still hold what was written.
 *
 * Parameters: threads=2 steps=<per thread> ms=0 (if not 0: each thread stops after ms milliseconds, so a slow
 *   allocator is not run for minutes; steps then only caps the run) keep=4 max=32M touch=byte|page seed=1
 * Metrics: ops (buffers per second, primary), gbytes (GiB/s of buffers, all written with touch=byte);
 *   per buffer: faults_per_op, cpu_us_per_op (the measured phase, see common.h). */
#define _GNU_SOURCE
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { unsigned char *p; size_t size; uint64_t seed; } buf_t;

static uint64_t steps, keep, max_size, duration_ms, seed;
static bool touch_pages;
static _Atomic uint64_t written, buffers;
static pthread_barrier_t bar;  /* main and the workers: created, ring filled, phase started */

/* touch=page: the header, one byte per 4 KiB page, and the bytes zb_check() reads. */
static void fill_pages(unsigned char *p, size_t size, uint64_t seed_) {
  uint64_t h[2] = {size, seed_};
  unsigned char c = (unsigned char)(seed_ & 0xff);
  memcpy(p, h, sizeof h);
  memset(p + 16, c, 48);  /* every buffer is at least 64 KiB */
  for (size_t i = 4096; i < size; i += 4096) p[i] = c;
  p[16 + (size - 16) / 2] = c;
  p[size - 1] = c;
}

/* One step: free the oldest buffer of the ring (checked), allocate and write a new one in its place. */
static size_t step(buf_t *b, zb_rng *r, uint64_t *serial) {
  if (b->p != NULL) {
    zb_check(b->p, b->size, b->seed);
    free(b->p);
  }
  b->size = zb_size_loguniform(r, 65536, (size_t)max_size + 1);
  b->p = zb_xmalloc(b->size);
  b->seed = ++*serial;
  if (touch_pages) fill_pages(b->p, b->size, b->seed);
  else zb_fill(b->p, b->size, b->seed);
  return b->size;
}

static void *worker(void *arg) {
  unsigned id = (unsigned)(uintptr_t)arg;
  zb_rng r = zb_rng_seed(seed * 100 + id);
  buf_t *ring = zb_xmalloc(sizeof(buf_t) * keep);
  for (uint64_t i = 0; i < keep; i++) ring[i].p = NULL;
  uint64_t bytes = 0, serial = (uint64_t)id << 48;
  pthread_barrier_wait(&bar);
  /* Filling the ring is not measured: its buffers are fresh memory in every allocator, and in a short or
   * slowed-down run they would outweigh the steady state. */
  for (uint64_t i = 0; i < keep; i++) step(&ring[i], &r, &serial);
  pthread_barrier_wait(&bar);
  pthread_barrier_wait(&bar);
  double deadline = zb_now() + (double)duration_ms / 1000.0;
  uint64_t k = 0;
  for (; k < steps && (duration_ms == 0 || zb_now() < deadline); k++)
    bytes += step(&ring[k % keep], &r, &serial);
  for (uint64_t i = 0; i < keep; i++) {
    if (ring[i].p != NULL) {
      zb_check(ring[i].p, ring[i].size, ring[i].seed);
      free(ring[i].p);
    }
  }
  free(ring);
  atomic_fetch_add(&written, bytes);
  atomic_fetch_add(&buffers, k);
  return NULL;
}

int main(int argc, char **argv) {
  zb_init(argc, argv, "large");
  unsigned nthreads = (unsigned)zb_param("threads", 2, 2);
  duration_ms = zb_param("ms", 0, 0);
  /* With ms= the run is bounded by time and steps only caps it. */
  steps = zb_param("steps", duration_ms ? UINT64_MAX : 240, duration_ms ? UINT64_MAX : 60);
  keep = zb_param("keep", 4, 4);
  max_size = zb_param("max", (uint64_t)32 << 20, (uint64_t)32 << 20);
  const char *touch = zb_param_str("touch", "byte");
  seed = zb_param("seed", 1, 1);
  zb_params_done();
  if (nthreads < 1 || nthreads > 256 || keep < 1) zb_die("bad threads/keep");
  if (max_size < 65536 || max_size > ((uint64_t)1 << 40)) zb_die("max must be 64K..1T");
  if (strcmp(touch, "page") == 0) touch_pages = true;
  else if (strcmp(touch, "byte") != 0) zb_die("touch must be byte or page, not '%s'", touch);

  pthread_t th[256];
  pthread_barrier_init(&bar, NULL, nthreads + 1);
  for (unsigned i = 0; i < nthreads; i++)
    if (pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i) != 0) zb_die("pthread_create failed");
  pthread_barrier_wait(&bar);  /* every thread is running */
  pthread_barrier_wait(&bar);  /* every ring is full */
  zb_phase_begin();
  double t0 = zb_now();
  pthread_barrier_wait(&bar);
  for (unsigned i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
  double dt = zb_now() - t0;
  zb_phase_end(atomic_load(&buffers));
  zb_report("ops", (double)atomic_load(&buffers) / dt, "ops/s", true);
  zb_report("gbytes", (double)atomic_load(&written) / dt / 1073741824.0, "GiB/s", true);
  zb_report("time", dt, "s", false);
  return 0;
}
