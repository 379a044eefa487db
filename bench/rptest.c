/* rptest: random sizes with a steady rate of cross-thread frees, after rpmalloc-benchmark (rptest in
 * mimalloc-bench).
 *
 * Each thread keeps a working set of `live` blocks. One loop step replaces `batch` random blocks of the set:
 * the old block is freed, or, with probability cross/100, put in a batch of 32 headed for another thread,
 * which frees it when it drains its inbox (a lock-free stack, drained at every step). A thread done with its
 * steps goes on draining until every thread is done: otherwise the blocks its peers post to it meanwhile
 * stay live, and the peak RSS measures how far apart the scheduler let the threads finish (up to 180 MiB of
 * such blocks under any allocator on a loaded 2-core machine) rather than the allocator. Sizes are
 * log-uniform over 8 B-16 KiB: every doubling has the same share, so half the blocks are under about
 * 350 B and 1 in 11 is above 8 KiB.
 *
 * Invariant checked: every block freed (locally or remotely) carries its header and payload.
 *
 * Parameters: threads=2 live=4096 batch=64 steps=<per thread> cross=10 seed=1
 * Metrics: ops (malloc+free pairs per second, primary);
 *   inflight_peak: the most bytes (requested sizes) at once in blocks posted to another thread and not yet
 *   freed by it. They are live beside the working sets (2 x 4096 blocks, about 17 MiB requested), so any
 *   allocator's peak RSS moves with them; they depend on the scheduler, not on the allocator: a thread
 *   descheduled for 10 ms while its peer runs at 2.5M pairs/s leaves about 5 MiB in its inbox;
 *   per pair: faults_per_op, cpu_us_per_op (the measured phase, see common.h). */
#define _GNU_SOURCE
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OUTBATCH 32

typedef struct { void *p; size_t size; uint64_t seed; } blk_t;

typedef struct msg {
  struct msg *next;
  unsigned n;
  uint64_t bytes; /* the blocks' sizes, summed */
  blk_t b[OUTBATCH];
} msg_t;

typedef struct {
  _Alignas(64) _Atomic(msg_t *) inbox;
} peer_t;

static unsigned nthreads;
static uint64_t nlive, batch, steps, cross, seed;
static peer_t *peers;
static pthread_barrier_t bar;
static _Atomic uint64_t total_ops;
static _Atomic unsigned done; /* threads past their steps */
static _Atomic uint64_t inflight, inflight_peak; /* bytes posted and not yet freed; the most at once */

static void check_free(blk_t b) {
  zb_check(b.p, b.size, b.seed);
  free(b.p);
}

static blk_t make(zb_rng *r, uint64_t *serial) {
  blk_t b;
  b.size = zb_size_loguniform(r, 8, 16385);
  b.p = zb_xmalloc(b.size);
  b.seed = ++*serial;
  zb_fill(b.p, b.size, b.seed);
  return b;
}

static uint64_t drain(unsigned id) {
  msg_t *m = atomic_exchange_explicit(&peers[id].inbox, NULL, memory_order_acquire);
  uint64_t n = 0;
  while (m != NULL) {
    msg_t *next = m->next;
    atomic_fetch_sub_explicit(&inflight, m->bytes, memory_order_relaxed);
    for (unsigned i = 0; i < m->n; i++) check_free(m->b[i]);
    n += m->n;
    free(m);
    m = next;
  }
  return n;
}

static void post(unsigned to, msg_t *m) {
  /* counted once a batch, before it can be drained (the drain subtracts it) */
  uint64_t v = atomic_fetch_add_explicit(&inflight, m->bytes, memory_order_relaxed) + m->bytes;
  uint64_t p = atomic_load_explicit(&inflight_peak, memory_order_relaxed);
  while (v > p && !atomic_compare_exchange_weak_explicit(&inflight_peak, &p, v, memory_order_relaxed,
                                                         memory_order_relaxed)) {
  }
  msg_t *old = atomic_load_explicit(&peers[to].inbox, memory_order_relaxed);
  do m->next = old;
  while (!atomic_compare_exchange_weak_explicit(&peers[to].inbox, &old, m, memory_order_release,
                                                memory_order_relaxed));
}

static void *worker(void *arg) {
  unsigned id = (unsigned)(uintptr_t)arg;
  zb_rng r = zb_rng_seed(seed * 100 + id);
  uint64_t serial = (uint64_t)id << 48, ops = 0;
  blk_t *live = zb_xmalloc(sizeof(blk_t) * nlive);
  msg_t *out[256] = {0};
  for (uint64_t i = 0; i < nlive; i++) live[i] = make(&r, &serial);
  pthread_barrier_wait(&bar);
  for (uint64_t st = 0; st < steps; st++) {
    drain(id);
    for (uint64_t b = 0; b < batch; b++) {
      uint64_t i = zb_below(&r, nlive);
      if (nthreads > 1 && zb_below(&r, 100) < cross) {
        unsigned to = (id + 1 + (unsigned)zb_below(&r, nthreads - 1)) % nthreads;
        if (out[to] == NULL) {
          out[to] = zb_xmalloc(sizeof(msg_t));
          out[to]->n = 0;
          out[to]->bytes = 0;
        }
        out[to]->bytes += live[i].size;
        out[to]->b[out[to]->n++] = live[i];
        if (out[to]->n == OUTBATCH) {
          post(to, out[to]);
          out[to] = NULL;
        }
      } else {
        check_free(live[i]);
      }
      live[i] = make(&r, &serial);
      ops++;
    }
  }
  for (unsigned t = 0; t < nthreads; t++)
    if (out[t] != NULL) post(t, out[t]);
  atomic_fetch_add(&done, 1);
  while (atomic_load(&done) < nthreads)
    if (drain(id) == 0) zb_sleep(50e-6); /* peers still post: free their blocks as they come */
  pthread_barrier_wait(&bar);  /* every batch is posted: drain the last ones */
  drain(id);
  for (uint64_t i = 0; i < nlive; i++) check_free(live[i]);
  free(live);
  atomic_fetch_add(&total_ops, ops);
  return NULL;
}

int main(int argc, char **argv) {
  zb_init(argc, argv, "rptest");
  nthreads = (unsigned)zb_param("threads", 2, 2);
  nlive = zb_param("live", 4096, 4096);
  batch = zb_param("batch", 64, 64);
  steps = zb_param("steps", 20000, 5000);
  cross = zb_param("cross", 10, 10);
  seed = zb_param("seed", 1, 1);
  zb_params_done();
  if (nthreads < 1 || nthreads > 256 || nlive < 1 || cross > 100) zb_die("bad threads/live/cross");

  peers = zb_xmalloc(sizeof(peer_t) * nthreads);
  for (unsigned i = 0; i < nthreads; i++) atomic_init(&peers[i].inbox, NULL);
  pthread_barrier_init(&bar, NULL, nthreads);
  pthread_t th[256];
  zb_phase_begin();
  double t0 = zb_now();
  for (unsigned i = 0; i < nthreads; i++) pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i);
  for (unsigned i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
  double dt = zb_now() - t0;
  zb_phase_end(atomic_load(&total_ops));
  free(peers);
  zb_report("ops", (double)atomic_load(&total_ops) / dt, "ops/s", true);
  zb_report("time", dt, "s", false);
  zb_report("inflight_peak", (double)atomic_load(&inflight_peak) / 1048576.0, "MiB", false);
  return 0;
}
