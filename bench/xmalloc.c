/* xmalloc: threads that only allocate and threads that only free, after Lever and Boreham's
 * xmalloc-test (USENIX 2000) as used in mimalloc-bench.
 *
 * A allocating threads fill batches of 64 blocks and push each batch on a shared queue; F freeing threads
 * pop batches, check every block and free it. Every free is remote and the freeing threads never
 * allocate (except nothing at all: even the batch record is allocated by the producer and freed by the
 * consumer). The queue holds at most `depth` batches, so the live set is bounded and a faster allocator
 * does not simply hold more memory (mimalloc-bench warns that its xmalloc-test RSS grows with speed).
 * Sizes: Pareto from 16 B (median 32 B), cut at 16 KiB.
 *
 * Invariant checked: every block arrives intact and is freed exactly once (counted).
 *
 * Parameters: alloc=2 free=2 blocks=<total> depth=256 seed=1
 * Metrics: ops (blocks allocated and freed per second, primary);
 *   per block: faults_per_op, cpu_us_per_op (the measured phase, see common.h). */
#define _GNU_SOURCE
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define BATCH 64

typedef struct batch {
  struct batch *next;
  unsigned n;
  void *p[BATCH];
  uint32_t size[BATCH];
  uint64_t seed[BATCH];
} batch_t;

static struct {
  pthread_mutex_t lock;       /* protects everything in this struct */
  pthread_cond_t not_empty, not_full;
  batch_t *head, *tail;
  uint64_t len;
  unsigned alloc_running;
} q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0, 0};

static unsigned nalloc, nfree;
static uint64_t nblocks, depth, seed;
static _Atomic uint64_t freed;

static void *allocator(void *arg) {
  unsigned id = (unsigned)(uintptr_t)arg;
  zb_rng r = zb_rng_seed(seed * 100 + id);
  uint64_t mine = nblocks / nalloc + (id < nblocks % nalloc ? 1 : 0);
  uint64_t serial = (uint64_t)id << 48;
  while (mine > 0) {
    batch_t *b = zb_xmalloc(sizeof *b);
    b->next = NULL;
    b->n = mine < BATCH ? (unsigned)mine : BATCH;
    for (unsigned i = 0; i < b->n; i++) {
      size_t s = zb_size_pareto(&r, 16, 16384);
      b->p[i] = zb_xmalloc(s);
      b->size[i] = (uint32_t)s;
      b->seed[i] = ++serial;
      zb_fill(b->p[i], s, b->seed[i]);
    }
    mine -= b->n;
    pthread_mutex_lock(&q.lock);
    while (q.len >= depth) pthread_cond_wait(&q.not_full, &q.lock);
    if (q.tail) q.tail->next = b; else q.head = b;
    q.tail = b;
    q.len++;
    pthread_cond_signal(&q.not_empty);
    pthread_mutex_unlock(&q.lock);
  }
  pthread_mutex_lock(&q.lock);
  if (--q.alloc_running == 0) pthread_cond_broadcast(&q.not_empty);
  pthread_mutex_unlock(&q.lock);
  return NULL;
}

static void *freer(void *arg) {
  uint64_t n = 0;
  for (;;) {
    pthread_mutex_lock(&q.lock);
    while (q.head == NULL && q.alloc_running > 0) pthread_cond_wait(&q.not_empty, &q.lock);
    batch_t *b = q.head;
    if (b != NULL) {
      q.head = b->next;
      if (q.head == NULL) q.tail = NULL;
      q.len--;
      pthread_cond_signal(&q.not_full);
    }
    pthread_mutex_unlock(&q.lock);
    if (b == NULL) break;  /* queue empty and no allocator left */
    for (unsigned i = 0; i < b->n; i++) {
      zb_check(b->p[i], b->size[i], b->seed[i]);
      free(b->p[i]);
    }
    n += b->n;
    free(b);
  }
  atomic_fetch_add(&freed, n);
  return NULL;
}

int main(int argc, char **argv) {
  zb_init(argc, argv, "xmalloc");
  nalloc = (unsigned)zb_param("alloc", 2, 2);
  nfree = (unsigned)zb_param("free", 2, 2);
  nblocks = zb_param("blocks", 6000000, 1500000);
  depth = zb_param("depth", 256, 256);
  seed = zb_param("seed", 1, 1);
  zb_params_done();
  if (nalloc < 1 || nfree < 1 || nalloc + nfree > 256 || depth < 1) zb_die("bad alloc/free/depth");

  pthread_t th[256];
  q.alloc_running = nalloc;
  zb_phase_begin();
  double t0 = zb_now();
  for (unsigned i = 0; i < nfree; i++) pthread_create(&th[i], NULL, freer, NULL);
  for (unsigned i = 0; i < nalloc; i++) pthread_create(&th[nfree + i], NULL, allocator, (void *)(uintptr_t)i);
  for (unsigned i = 0; i < nalloc + nfree; i++) pthread_join(th[i], NULL);
  double dt = zb_now() - t0;
  zb_phase_end(nblocks);
  if (atomic_load(&freed) != nblocks)
    zb_die("freed %llu blocks, allocated %llu", (unsigned long long)atomic_load(&freed),
           (unsigned long long)nblocks);
  zb_report("ops", (double)nblocks / dt, "ops/s", true);
  zb_report("time", dt, "s", false);
  return 0;
}
