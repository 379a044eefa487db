/* prodcons: the message-passing workload zcmem is built for.
 *
 * P producer threads allocate messages (zb_size_message: mostly 32-256 B, a tail to 64 KiB), write every
 * byte, and hand them to C consumer threads through single-producer/single-consumer rings (one ring per
 * producer/consumer pair, messages dealt round-robin). A consumer checks each message (sequence number
 * in the header, payload bytes) and frees it: every free is a cross-thread free, and the consumers never
 * allocate. The rings are lock-free so that the allocator, not the hand-off, sets the pace.
 *
 * Invariant checked: every message arrives once, in order per ring, intact; the run fails otherwise.
 *
 * Parameters: producers=1 consumers=1 messages=<total> ring=<slots per ring, power of two> seed=1
 * Metrics: msgs (messages/s, primary), mbytes (MiB/s of payload);
 *   per message: faults_per_op, cpu_us_per_op (the measured phase, see common.h). */
#define _GNU_SOURCE
#include "common.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  _Alignas(64) _Atomic uint64_t head;  /* written by the producer */
  _Alignas(64) _Atomic uint64_t tail;  /* written by the consumer */
  _Alignas(64) void **slot;
} ring_t;

static unsigned nprod, ncons;
static uint64_t nmsg, ring_mask, seed;
static ring_t *rings;                   /* rings[p * ncons + c] */
static _Atomic unsigned producers_done;
static _Atomic uint64_t total_bytes;
static pthread_barrier_t start;

/* Spin a little, then give the core away: with more threads than cores a pure spin would stall the
 * thread we wait for. */
static void backoff(unsigned *spins) {
  if (++*spins < 64) {
    __builtin_ia32_pause();
  } else {
    sched_yield();
    *spins = 0;
  }
}

static uint64_t msg_seed(unsigned p, uint64_t k) { return ((uint64_t)p << 48) ^ k; }

static void *producer(void *arg) {
  unsigned p = (unsigned)(uintptr_t)arg;
  zb_rng r = zb_rng_seed(seed * 1000 + p);
  uint64_t mine = nmsg / nprod + (p < nmsg % nprod ? 1 : 0);
  uint64_t bytes = 0;
  uint64_t cached_tail[64] = {0};
  pthread_barrier_wait(&start);
  for (uint64_t k = 0; k < mine; k++) {
    unsigned c = (unsigned)(k % ncons);
    ring_t *q = &rings[p * ncons + c];
    size_t size = zb_size_message(&r);
    void *m = zb_xmalloc(size);
    zb_fill(m, size, msg_seed(p, k));
    bytes += size;
    uint64_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
    unsigned spins = 0;
    while (h - cached_tail[c] > ring_mask) {
      cached_tail[c] = atomic_load_explicit(&q->tail, memory_order_acquire);
      if (h - cached_tail[c] > ring_mask) backoff(&spins);
    }
    q->slot[h & ring_mask] = m;
    atomic_store_explicit(&q->head, h + 1, memory_order_release);
  }
  atomic_fetch_add(&total_bytes, bytes);
  atomic_fetch_add_explicit(&producers_done, 1, memory_order_release);
  return NULL;
}

static void *consumer(void *arg) {
  unsigned c = (unsigned)(uintptr_t)arg;
  uint64_t next[64];  /* next sequence number expected from each producer */
  for (unsigned p = 0; p < nprod; p++) next[p] = c;
  pthread_barrier_wait(&start);
  unsigned spins = 0;
  for (;;) {
    bool done = atomic_load_explicit(&producers_done, memory_order_acquire) == nprod;
    uint64_t got = 0;
    for (unsigned p = 0; p < nprod; p++) {
      ring_t *q = &rings[p * ncons + c];
      uint64_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
      uint64_t h = atomic_load_explicit(&q->head, memory_order_acquire);
      for (; t != h; t++) {
        unsigned char *m = q->slot[t & ring_mask];
        uint64_t hdr[2];
        memcpy(hdr, m, sizeof hdr);
        if (hdr[1] != msg_seed(p, next[p]))
          zb_die("consumer %u: message from producer %u has seed %llx, expected %llx", c, p,
                 (unsigned long long)hdr[1], (unsigned long long)msg_seed(p, next[p]));
        zb_check(m, (size_t)hdr[0], hdr[1]);
        next[p] += ncons;
        free(m);
        got++;
        /* Hand slots back in small batches so the producer sees room early. */
        if ((got & 15) == 0) atomic_store_explicit(&q->tail, t + 1, memory_order_release);
      }
      atomic_store_explicit(&q->tail, t, memory_order_release);
    }
    if (got != 0) {
      spins = 0;
    } else if (done) {
      break;  /* producers finished before this pass began and every ring was empty */
    } else {
      backoff(&spins);
    }
  }
  for (unsigned p = 0; p < nprod; p++) {
    uint64_t mine = nmsg / nprod + (p < nmsg % nprod ? 1 : 0);
    uint64_t expect = c + ((mine > c) ? ((mine - c + ncons - 1) / ncons) * ncons : 0);
    if (next[p] != expect)
      zb_die("consumer %u got messages up to %llu from producer %u, expected %llu", c,
             (unsigned long long)next[p], p, (unsigned long long)expect);
  }
  return NULL;
}

int main(int argc, char **argv) {
  zb_init(argc, argv, "prodcons");
  nprod = (unsigned)zb_param("producers", 1, 1);
  ncons = (unsigned)zb_param("consumers", 1, 1);
  nmsg = zb_param("messages", 4000000, 1000000);
  uint64_t ring = zb_param("ring", 1024, 1024);
  seed = zb_param("seed", 1, 1);
  zb_params_done();
  if (nprod < 1 || nprod > 64 || ncons < 1 || ncons > 64) zb_die("producers and consumers must be 1..64");
  if (ring < 2 || (ring & (ring - 1)) != 0) zb_die("ring must be a power of two >= 2");
  ring_mask = ring - 1;

  /* The rings are the benchmark's own plumbing, allocated before the clock starts. */
  rings = zb_xmalloc(sizeof(ring_t) * nprod * ncons);
  memset(rings, 0, sizeof(ring_t) * nprod * ncons);
  for (unsigned i = 0; i < nprod * ncons; i++) rings[i].slot = zb_xmalloc(sizeof(void *) * ring);

  pthread_t th[128];
  zb_phase_begin();
  pthread_barrier_init(&start, NULL, nprod + ncons + 1);
  for (unsigned c = 0; c < ncons; c++) pthread_create(&th[c], NULL, consumer, (void *)(uintptr_t)c);
  for (unsigned p = 0; p < nprod; p++) pthread_create(&th[ncons + p], NULL, producer, (void *)(uintptr_t)p);
  pthread_barrier_wait(&start);
  double t0 = zb_now();
  for (unsigned i = 0; i < nprod + ncons; i++) pthread_join(th[i], NULL);
  double dt = zb_now() - t0;
  zb_phase_end(nmsg);

  zb_report("msgs", (double)nmsg / dt, "msg/s", true);
  zb_report("mbytes", (double)atomic_load(&total_bytes) / dt / 1048576.0, "MiB/s", true);
  zb_report("time", dt, "s", false);
  for (unsigned i = 0; i < nprod * ncons; i++) free(rings[i].slot);
  free(rings);
  return 0;
}
