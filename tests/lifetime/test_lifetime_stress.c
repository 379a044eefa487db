/* Multi-threaded stress of the lifetime allocators with seeded payloads, each verified before its free:
 *   - counted pages: 2 producers (each its own zc_pages_t) send messages to 2 consumers that free them
 *     (cross-thread frees), while producers also free some of their own; sizes 16 B..16 KiB plus a few
 *     above a page; then stats must balance (frees == allocs, no errors, at most the current page busy);
 *   - chunk ring: one producer, one consumer that frees out of order, ring often full;
 *   - pool: whole pool trees handed from a producer thread to a consumer thread that checks and destroys
 *     them, while each also resets its own pool.
 * Argument: iterations per producer (default 200000). */
#include "zcmem_pages.h"
#include "zcmem_pool.h"
#include "zcmem_ring.h"
#include "check.h"
#include "zc_clock.h" /* tests/common */
#include "zc_rng.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long iters = 200000;
static _Atomic long bad_payloads;

/* ---- a bounded SPSC queue of pointers ---- */
#define QCAP 256
typedef struct {
  _Atomic size_t head __attribute__((aligned(64)));
  _Atomic size_t tail __attribute__((aligned(64)));
  void *slot[QCAP];
} spsc_t;

static int q_push(spsc_t *q, void *p) {
  size_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
  if (h - atomic_load_explicit(&q->tail, memory_order_acquire) == QCAP) return 0;
  q->slot[h % QCAP] = p;
  atomic_store_explicit(&q->head, h + 1, memory_order_release);
  return 1;
}
static void *q_pop(spsc_t *q) {
  size_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
  if (t == atomic_load_explicit(&q->head, memory_order_acquire)) return NULL;
  void *p = q->slot[t % QCAP];
  atomic_store_explicit(&q->tail, t + 1, memory_order_release);
  return p;
}
static void q_push_wait(spsc_t *q, void *p) {
  while (!q_push(q, p)) sched_yield();
}

/* ---- payloads: [seed:8][size:8][bytes derived from seed] ---- */
static size_t msg_size(rng_t *s) {
  uint64_t r = rng_next(s) % 1000;
  if (r < 850) return 64 + rng_next(s) % 449;   /* 64..512 */
  if (r < 995) return 16 + rng_next(s) % 16369; /* up to 16 KiB */
  return 70000 + rng_next(s) % 60000;           /* above a 64 KiB page */
}
static void fill(unsigned char *p, size_t n, uint64_t seed) {
  memcpy(p, &seed, 8);
  memcpy(p + 8, &n, 8);
  fill_pattern(p + 16, n - 16, seed);
}
static void verify(const unsigned char *p) {
  uint64_t seed;
  size_t n;
  memcpy(&seed, p, 8);
  memcpy(&n, p + 8, 8);
  if (n < 16 || n >= 200000 || verify_pattern(p + 16, n - 16, seed) >= 0) atomic_fetch_add(&bad_payloads, 1);
}

/* ---- counted pages ---- */
#define NP 2
#define NC 2
static spsc_t pq[NP][NC];
static zc_pages_t *ppg[NP];
static _Atomic int producers_left;

static void *pages_producer(void *arg) {
  int id = (int)(intptr_t)arg;
  zc_pages_t *pg = ppg[id];
  rng_t s;
  rng_seed(&s, (uint64_t)id + 1);
  void *mine[8];
  int nmine = 0;
  for (long i = 0; i < iters; i++) {
    size_t n = msg_size(&s);
    unsigned char *p = zc_pages_alloc(pg, n);
    if (p == NULL) {
      atomic_fetch_add(&bad_payloads, 1);
      continue;
    }
    fill(p, n, rng_next(&s));
    if (rng_next(&s) % 8 == 0) { /* keep some, free them ourselves a little later */
      if (nmine == 8) {
        verify(mine[0]);
        zc_pages_free(mine[0]);
        memmove(mine, mine + 1, 7 * sizeof *mine);
        nmine--;
      }
      mine[nmine++] = p;
      continue;
    }
    q_push_wait(&pq[id][i % NC], p);
  }
  for (int k = 0; k < nmine; k++) {
    verify(mine[k]);
    zc_pages_free(mine[k]);
  }
  atomic_fetch_sub(&producers_left, 1);
  return NULL;
}

static void *pages_consumer(void *arg) {
  int id = (int)(intptr_t)arg;
  for (;;) {
    int got = 0;
    for (int p = 0; p < NP; p++) {
      unsigned char *m = q_pop(&pq[p][id]);
      if (m) {
        verify(m);
        zc_pages_free(m);
        got = 1;
      }
    }
    if (!got) {
      if (atomic_load(&producers_left) == 0) {
        int more = 0;
        for (int p = 0; p < NP; p++) more |= atomic_load(&pq[p][id].head) != atomic_load(&pq[p][id].tail);
        if (!more) break;
      }
      sched_yield();
    }
  }
  return NULL;
}

static void stress_pages(void) {
  pthread_t t[NP + NC];
  atomic_store(&producers_left, NP);
  for (int i = 0; i < NP; i++) ppg[i] = zc_pages_create(NULL);
  for (int i = 0; i < NP; i++) pthread_create(&t[i], NULL, pages_producer, (void *)(intptr_t)i);
  for (int i = 0; i < NC; i++) pthread_create(&t[NP + i], NULL, pages_consumer, (void *)(intptr_t)i);
  for (int i = 0; i < NP + NC; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < NP; i++) {
    zc_pages_stats_t s;
    zc_pages_stats(ppg[i], &s);
    CHECK_EQ(s.allocs, iters);
    CHECK_EQ(s.frees, s.allocs);
    CHECK_EQ(s.errors, 0);
    CHECK(s.pages_busy <= 1);
    CHECK_EQ(s.large_live, 0);
    CHECK_EQ(s.wasted, 0);
    printf("pages[%d]: allocs %lu, pages carved %lu, peak held %lu KiB, purged now %lu\n", i,
           (unsigned long)s.allocs, (unsigned long)s.pages, (unsigned long)(s.peak_held >> 10),
           (unsigned long)s.pages_purged);
    zc_pages_destroy(ppg[i]);
  }
}

/* ---- chunk ring ---- */
static spsc_t rq;
static zc_ring_t *ring;
static _Atomic int ring_done;

static void *ring_producer(void *arg) {
  rng_t s;
  rng_seed(&s, 777);
  for (long i = 0; i < iters; i++) {
    size_t n = msg_size(&s);
    if (n > 16384) n = 16384;
    unsigned char *p = NULL;
    switch (i % 4) {
    case 0: /* spin */
      while ((p = zc_ring_alloc(ring, n)) == NULL && errno == EAGAIN) sched_yield();
      break;
    case 1: /* sleep on the futex until the consumer frees */
      p = zc_ring_alloc_wait(ring, n, -1);
      break;
    case 2: /* reserve twice the size, commit the real one */
      while ((p = zc_ring_reserve(ring, n * 2 > 16384 ? 16384 : n * 2)) == NULL && errno == EAGAIN)
        sched_yield();
      if (p != NULL && zc_ring_commit(ring, p, n) != 0) p = NULL;
      break;
    default: /* wait with a timeout, and trim now and then */
      while ((p = zc_ring_alloc_wait(ring, n, 1)) == NULL && errno == ETIMEDOUT) {
      }
      if (i % 64 == 3) zc_ring_trim(ring);
      break;
    }
    if (p == NULL) {
      atomic_fetch_add(&bad_payloads, 1);
      continue;
    }
    fill(p, n, rng_next(&s));
    q_push_wait(&rq, p);
  }
  atomic_store(&ring_done, 1);
  return NULL;
}

static void *ring_consumer(void *arg) {
  enum { W = 8 };
  unsigned char *held[W];
  int nheld = 0;
  rng_t s;
  rng_seed(&s, 4242);
  for (;;) {
    unsigned char *m = q_pop(&rq);
    if (m == NULL) {
      if (atomic_load(&ring_done) && atomic_load(&rq.head) == atomic_load(&rq.tail)) break;
      if (nheld == 0) sched_yield();
    } else {
      verify(m);
      held[nheld++] = m;
    }
    /* free out of order: a random one of the held window */
    if (nheld == W || (m == NULL && nheld > 0)) {
      int k = (int)(rng_next(&s) % (uint64_t)nheld);
      verify(held[k]);
      zc_ring_free(ring, held[k]);
      held[k] = held[--nheld];
    }
  }
  while (nheld > 0) zc_ring_free(ring, held[--nheld]);
  return NULL;
}

/* A third thread reads the stats all along: no difference of two counters may wrap. */
static void *ring_watcher(void *arg) {
  long bad = 0;
  while (!atomic_load(&ring_done)) {
    struct timespec pause = {0, 20000}; /* 20 us: a watcher, not a third busy thread on two cores */
    nanosleep(&pause, NULL);
    zc_ring_stats_t s;
    zc_ring_stats(ring, &s);
    if (s.in_use > s.held || s.occupied > s.held || s.frees > s.allocs || s.requested > s.in_use ||
        s.wasted > s.held || s.resident > s.held) {
      if (bad++ == 0)
        fprintf(stderr, "ring stats: in_use %lu occupied %lu held %lu frees %lu allocs %lu requested %lu wasted %lu\n",
                (unsigned long)s.in_use, (unsigned long)s.occupied, (unsigned long)s.held,
                (unsigned long)s.frees, (unsigned long)s.allocs, (unsigned long)s.requested,
                (unsigned long)s.wasted);
    }
  }
  *(long *)arg = bad;
  return NULL;
}

static void stress_ring(void) {
  ring = zc_ring_create(128, 512); /* 64 KiB: full often with 16 KiB messages */
  pthread_t a, b, w;
  long watch_bad = 0;
  pthread_create(&a, NULL, ring_producer, NULL);
  pthread_create(&b, NULL, ring_consumer, NULL);
  pthread_create(&w, NULL, ring_watcher, &watch_bad);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  pthread_join(w, NULL);
  CHECK_EQ(watch_bad, 0);
  zc_ring_stats_t s;
  zc_ring_stats(ring, &s);
  CHECK_EQ(s.allocs, iters);
  CHECK_EQ(s.frees, iters);
  CHECK_EQ(s.errors, 0);
  CHECK_EQ(s.in_use, 0);
  CHECK_EQ(s.occupied, 0);
  CHECK_EQ(s.wasted, 0);
  printf("ring: allocs %lu, full %lu, padding %lu KiB, peak %lu KiB\n", (unsigned long)s.allocs,
         (unsigned long)s.full, (unsigned long)(s.padding_total >> 10), (unsigned long)(s.peak >> 10));
  zc_ring_destroy(ring);
}

/* ---- pools handed between threads ---- */
static spsc_t poolq;
static char stop_mark; /* the end-of-stream marker */
static _Atomic int pool_cleanups;
static void count_cleanup(void *arg) { atomic_fetch_add(&pool_cleanups, 1); }

static void *pool_producer(void *arg) {
  rng_t s;
  rng_seed(&s, 99);
  zc_pool_t *scratch = zc_pool_create(NULL, NULL);
  long trees = iters / 100;
  for (long i = 0; i < trees; i++) {
    zc_pool_t *root = zc_pool_create(NULL, NULL);
    zc_pool_t *child = zc_pool_create(root, NULL);
    zc_pool_cleanup_add(child, count_cleanup, NULL);
    zc_pool_cleanup_add(root, count_cleanup, NULL);
    /* root's first object: a table of the messages, for the consumer */
    unsigned char **tab = zc_pool_alloc(root, 33 * sizeof *tab);
    for (int k = 0; k < 32; k++) {
      size_t n = msg_size(&s);
      tab[k] = zc_pool_alloc(k & 1 ? child : root, n);
      fill(tab[k], n, rng_next(&s));
    }
    tab[32] = (unsigned char *)root;
    for (int k = 0; k < 16; k++) {
      size_t n = msg_size(&s);
      unsigned char *x = zc_pool_alloc(scratch, n);
      fill(x, n, rng_next(&s));
      verify(x);
    }
    if (i % 8 == 7) zc_pool_reset(scratch);
    q_push_wait(&poolq, tab);
  }
  q_push_wait(&poolq, (void *)&stop_mark);
  zc_pool_destroy(scratch);
  return NULL;
}

static void *pool_consumer(void *arg) {
  for (;;) {
    unsigned char **tab = q_pop(&poolq);
    if (tab == NULL) {
      sched_yield();
      continue;
    }
    if ((void *)tab == (void *)&stop_mark) break;
    for (int k = 0; k < 32; k++) verify(tab[k]);
    zc_pool_destroy((zc_pool_t *)tab[32]);
  }
  return NULL;
}

static void stress_pool(void) {
  pthread_t a, b;
  pthread_create(&a, NULL, pool_producer, NULL);
  pthread_create(&b, NULL, pool_consumer, NULL);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  CHECK_EQ(atomic_load(&pool_cleanups), 2 * (iters / 100));
}

/* destroy_wait while another thread is still freeing: it must wait for the last free, then unmap. */
static void *free_slowly(void *arg) {
  void **v = arg;
  for (int i = 0; v[i]; i++) {
    zc_pages_free(v[i]);
    if (i % 256 == 0) sched_yield();
  }
  return NULL;
}

static void stress_destroy_wait(void) {
  for (int round = 0; round < 20; round++) {
    zc_pages_t *pg = zc_pages_create(NULL);
    enum { N = 3000 };
    static void *v[N + 1];
    for (int i = 0; i < N; i++) v[i] = zc_pages_alloc(pg, i % 50 == 0 ? 70000 : 200);
    v[N] = NULL;
    pthread_t t;
    pthread_create(&t, NULL, free_slowly, v);
    CHECK_EQ(zc_pages_destroy_wait(pg, -1), 0);
    pthread_join(t, NULL);
  }
}

static double now_s(void) { return (double)now_ns() * 1e-9; }

int main(int argc, char **argv) {
  if (getenv("ZC_LT_STRESS_ITERS")) iters = atol(getenv("ZC_LT_STRESS_ITERS"));
  if (argc > 1) iters = atol(argv[1]);
  if (iters < 1000) iters = 1000;
  unsigned long errors_before = zc_error_count();
  double t0 = now_s();
  stress_pages();
  double t1 = now_s();
  stress_ring();
  double t2 = now_s();
  stress_pool();
  double t3 = now_s();
  stress_destroy_wait();
  printf("seconds: pages %.1f, ring %.1f, pool %.1f, destroy_wait %.1f\n", t1 - t0, t2 - t1, t3 - t2,
         now_s() - t3);
  CHECK_EQ(atomic_load(&bad_payloads), 0);
  CHECK_EQ(zc_error_count() - errors_before, 0);
  TEST_DONE("test_lifetime_stress");
}
