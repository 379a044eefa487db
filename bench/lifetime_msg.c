/* lifetime_msg: a message workload for the lifetime allocators against malloc.
 *
 * A producer thread allocates a message (sizes: 85% 64..512 B, 14% 512 B..4 KiB, 1% 4..16 KiB, from a
 * seeded table), fills it (a header with its sequence number and a memset of the body), hands it to a
 * consumer thread through a lock-free SPSC queue; the consumer checks the header, reads the last byte and
 * frees it. Variants (alloc=):
 *   malloc  malloc/free of whatever malloc the process has (glibc, or LD_PRELOAD zcmem / mimalloc);
 *   pages   zc_pages_alloc by the producer, zc_pages_free by the consumer (cross-thread);
 *   ring    zc_ring_alloc / zc_ring_free (SPSC; the producer spins while the ring is full);
 *   pool    the producer fills a pool with a batch of messages (batch=, default 64); the consumer resets
 *           the pool after the batch's last message and hands it back through a second queue.
 * Without alloc=, every variant runs in turn. threads=1 runs the same lifetimes in one thread (the producer
 * frees the oldest message itself when qcap are in flight; bench name lifetime_msg_st_<alloc>): the
 * allocator's own cost without the cross-core traffic and with much less sensitivity to a loaded machine.
 *
 * Protocol (bench/): args -q (quick) and key=value; prints
 *   zcbench bench=lifetime_msg_<alloc> metric=msgs_per_s value=<n> unit=msg/s better=higher
 * Parameters: n=<messages> (default 4000000, -q: 400000), alloc=, batch=, qcap=<queue slots> (1024),
 * ring=<ring bytes> (1 MiB), seed=, idle=1 (after the run print metric=rss_end, the process RSS; then wait
 * one idle second with the allocator still alive, no call into it, and print metric=rss_idle, the RSS then). Peak RSS is measured by the runner (run one
 * variant per process). With threads=1 and the ring variant, a full ring makes the producer consume its
 * oldest message (a queue larger than the ring would otherwise wait for a consumer that does not exist).
 */
#define _GNU_SOURCE
#include "zcmem_pages.h"
#include "zcmem_pool.h"
#include "zcmem_ring.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#else
#define cpu_relax() __asm__ __volatile__("" ::: "memory")
#endif

enum { A_MALLOC, A_PAGES, A_RING, A_POOL, A_COUNT };
static const char *alloc_names[A_COUNT] = {"malloc", "pages", "ring", "pool"};

static long n_msgs = 4000000, batch = 64, qcap = 1024, threads = 2;
static size_t ring_bytes = (size_t)1 << 20;
static uint64_t seed = 42;
static int idle_rss; /* idle=1: report the RSS after an idle second */

#define NSIZES 65536
static uint32_t sizes[NSIZES];

/* ---- SPSC queue of entries ---- */
typedef struct {
  unsigned char *p;
  void *owner; /* pool of the message (pool variant), NULL otherwise */
  uint32_t size;
  uint32_t last; /* pool: last message of its batch */
} entry_t;

typedef struct {
  _Atomic size_t head __attribute__((aligned(64)));
  size_t tail_cache;
  _Atomic size_t tail __attribute__((aligned(64)));
  size_t head_cache;
  size_t cap __attribute__((aligned(64)));
  entry_t *slot;
} spsc_t;

static void q_init(spsc_t *q, size_t cap) {
  memset(q, 0, sizeof *q);
  q->cap = cap;
  q->slot = calloc(cap, sizeof(entry_t));
}
static void q_push(spsc_t *q, entry_t e) {
  size_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
  unsigned spins = 0;
  while (h - q->tail_cache == q->cap) {
    q->tail_cache = atomic_load_explicit(&q->tail, memory_order_acquire);
    if (h - q->tail_cache < q->cap) break;
    if (++spins & 1023) cpu_relax();
    else sched_yield();
  }
  q->slot[h % q->cap] = e;
  atomic_store_explicit(&q->head, h + 1, memory_order_release);
}
static int q_try_pop(spsc_t *q, entry_t *e) {
  size_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
  if (t == q->head_cache) {
    q->head_cache = atomic_load_explicit(&q->head, memory_order_acquire);
    if (t == q->head_cache) return 0;
  }
  *e = q->slot[t % q->cap];
  atomic_store_explicit(&q->tail, t + 1, memory_order_release);
  return 1;
}
static entry_t q_pop(spsc_t *q) {
  entry_t e;
  unsigned spins = 0;
  while (!q_try_pop(q, &e)) {
    if (++spins & 1023) cpu_relax();
    else sched_yield();
  }
  return e;
}

/* ---- one run ---- */
typedef struct {
  int alloc;
  spsc_t q, back; /* messages; pools handed back (pool variant) */
  zc_pages_t *pages;
  zc_ring_t *ring;
  uint64_t checksum;
  long bad;
} run_t;

static void fill(unsigned char *p, uint32_t size, long seq) {
  uint64_t h = (uint64_t)seq;
  memcpy(p, &h, sizeof h);
  memset(p + 8, (int)(seq & 0xff), size - 8);
}

/* Check message number i and free it. */
static uint64_t consume_one(run_t *r, long i, entry_t e) {
  uint64_t h;
  memcpy(&h, e.p, sizeof h);
  if (h != (uint64_t)i || e.p[e.size - 1] != (unsigned char)(i & 0xff)) r->bad++;
  uint64_t v = e.p[e.size / 2];
  switch (r->alloc) {
  case A_MALLOC: free(e.p); break;
  case A_PAGES: zc_pages_free(e.p); break;
  case A_RING: zc_ring_free(r->ring, e.p); break;
  case A_POOL:
    if (e.last) {
      zc_pool_reset(e.owner);
      q_push(&r->back, (entry_t){.owner = e.owner});
    }
    break;
  }
  return v;
}

static void *consumer(void *arg) {
  run_t *r = arg;
  uint64_t sum = 0;
  for (long i = 0; i < n_msgs; i++) sum += consume_one(r, i, q_pop(&r->q));
  r->checksum = sum;
  return NULL;
}

/* The ring is full: with a consumer thread, wait for it; with threads=1 nobody else frees, so the producer
 * consumes its oldest message itself (*consumed counts them), and an empty queue with a full ring is a
 * failure, never a spin (the ring could not hold even one message). */
static unsigned char *ring_alloc_wait(run_t *r, size_t size, long *consumed) {
  unsigned spins = 0;
  unsigned char *p;
  while ((p = zc_ring_alloc(r->ring, size)) == NULL) {
    if (errno != EAGAIN) return NULL;
    if (threads == 1) {
      entry_t e;
      if (!q_try_pop(&r->q, &e)) return NULL;
      r->checksum += consume_one(r, *consumed, e);
      ++*consumed;
      continue;
    }
    if (++spins & 1023) cpu_relax();
    else sched_yield();
  }
  return p;
}

/* Resident set of the process now (bytes), from /proc/self/statm. */
static long rss_now(void) {
  long pages = 0, res = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f == NULL) return 0;
  if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
  fclose(f);
  return res * sysconf(_SC_PAGESIZE);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int run(int alloc) {
  run_t *r = aligned_alloc(64, (sizeof *r + 63) & ~(size_t)63); /* its queues have 64-byte lines */
  memset(r, 0, sizeof *r);
  r->alloc = alloc;
  q_init(&r->q, (size_t)qcap);
  long max_pools = qcap / batch + 4;
  q_init(&r->back, (size_t)max_pools + 1);
  if (alloc == A_PAGES) r->pages = zc_pages_create(NULL);
  if (alloc == A_RING) r->ring = zc_ring_create(128, ring_bytes / 128);
  if ((alloc == A_PAGES && !r->pages) || (alloc == A_RING && !r->ring)) {
    fprintf(stderr, "lifetime_msg: cannot create the %s allocator\n", alloc_names[alloc]);
    return 1;
  }
  zc_pool_t *pool = NULL;
  long pools_made = 0, in_batch = 0;
  pthread_t t;
  double t0 = now_s();
  long consumed = 0; /* threads=1: the producer consumes the oldest message itself when the queue is full */
  if (threads == 2) pthread_create(&t, NULL, consumer, r);
  for (long i = 0; i < n_msgs; i++) {
    uint32_t size = sizes[i & (NSIZES - 1)];
    entry_t e = {.size = size};
    switch (alloc) {
    case A_MALLOC: e.p = malloc(size); break;
    case A_PAGES: e.p = zc_pages_alloc(r->pages, size); break;
    case A_RING: e.p = ring_alloc_wait(r, size, &consumed); break;
    case A_POOL:
      if (pool == NULL) {
        entry_t b;
        if (q_try_pop(&r->back, &b)) pool = b.owner;
        else if (pools_made < max_pools) pool = zc_pool_create(NULL, NULL), pools_made++;
        else pool = q_pop(&r->back).owner;
      }
      e.p = zc_pool_alloc(pool, size);
      e.owner = pool;
      if (++in_batch == batch || i == n_msgs - 1) {
        e.last = 1;
        in_batch = 0;
        pool = NULL;
      }
      break;
    }
    if (e.p == NULL) {
      fprintf(stderr, "lifetime_msg: %s allocation of %u bytes failed\n", alloc_names[alloc], size);
      exit(1);
    }
    fill(e.p, size, i);
    if (threads == 1 && (long)(atomic_load(&r->q.head) - atomic_load(&r->q.tail)) == qcap)
      r->checksum += consume_one(r, consumed, q_pop(&r->q)), consumed++;
    q_push(&r->q, e);
    if (threads == 1 && alloc == A_POOL && e.last) /* the pool comes back at once: drain the batch */
      while (consumed <= i) r->checksum += consume_one(r, consumed, q_pop(&r->q)), consumed++;
  }
  if (threads == 2) pthread_join(t, NULL);
  else
    while (consumed < n_msgs) r->checksum += consume_one(r, consumed, q_pop(&r->q)), consumed++;
  double dt = now_s() - t0;
  if (r->bad) {
    fprintf(stderr, "lifetime_msg: %ld messages arrived damaged\n", r->bad);
    return 1;
  }
  printf("zcbench bench=lifetime_msg%s_%s metric=msgs_per_s value=%.0f unit=msg/s better=higher\n",
         threads == 1 ? "_st" : "", alloc_names[alloc], (double)n_msgs / dt);
  /* What the allocator keeps resident once the work is over: idle for one second (its purge delay is
   * 100 ms by default), allocators still alive, then read the process RSS. */
  if (idle_rss) {
    printf("zcbench bench=lifetime_msg%s_%s metric=rss_end value=%ld unit=bytes better=lower\n",
           threads == 1 ? "_st" : "", alloc_names[alloc], rss_now());
    fflush(stdout);
    struct timespec one = {1, 0};
    nanosleep(&one, NULL);
    printf("zcbench bench=lifetime_msg%s_%s metric=rss_idle value=%ld unit=bytes better=lower\n",
           threads == 1 ? "_st" : "", alloc_names[alloc], rss_now());
  }
  fflush(stdout);
  if (alloc == A_POOL) {
    entry_t b;
    while (q_try_pop(&r->back, &b)) zc_pool_destroy(b.owner);
  }
  zc_pages_destroy(r->pages);
  zc_ring_destroy(r->ring);
  free(r->q.slot);
  free(r->back.slot);
  free(r);
  return 0;
}

int main(int argc, char **argv) {
  int which = -1;
  int quick = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-q") == 0) quick = 1;
    else if (strncmp(a, "n=", 2) == 0) n_msgs = atol(a + 2);
    else if (strncmp(a, "batch=", 6) == 0) batch = atol(a + 6);
    else if (strncmp(a, "qcap=", 5) == 0) qcap = atol(a + 5);
    else if (strncmp(a, "ring=", 5) == 0) ring_bytes = (size_t)atol(a + 5);
    else if (strncmp(a, "seed=", 5) == 0) seed = (uint64_t)atoll(a + 5);
    else if (strncmp(a, "threads=", 8) == 0) threads = atol(a + 8);
    else if (strncmp(a, "idle=", 5) == 0) idle_rss = atoi(a + 5);
    else if (strncmp(a, "alloc=", 6) == 0) {
      for (int k = 0; k < A_COUNT; k++)
        if (strcmp(a + 6, alloc_names[k]) == 0) which = k;
      if (which < 0) {
        fprintf(stderr, "lifetime_msg: alloc must be pool, pages, ring or malloc\n");
        return 2;
      }
    } else {
      fprintf(stderr, "usage: lifetime_msg [-q] [n=N] [alloc=pool|pages|ring|malloc] [batch=N] [qcap=N] "
                      "[ring=BYTES] [seed=N] [threads=1|2] [idle=1]\n");
      return 2;
    }
  }
  if (quick && n_msgs == 4000000) n_msgs = 400000;
  if (n_msgs < 1 || batch < 1 || qcap < 2 || ring_bytes < ((size_t)64 << 10) || threads < 1 || threads > 2 ||
      (threads == 1 && batch > qcap)) {
    fprintf(stderr, "lifetime_msg: bad parameter\n");
    return 2;
  }
  uint64_t s = seed | 1;
  for (int i = 0; i < NSIZES; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    uint32_t r = (uint32_t)(s % 1000), v = (uint32_t)(s >> 20);
    sizes[i] = r < 850 ? 64 + v % 449 : r < 990 ? 513 + v % 3584 : 4097 + v % 12288;
  }
  int rc = 0;
  for (int k = 0; k < A_COUNT; k++)
    if (which < 0 || which == k) rc |= run(k);
  return rc;
}
