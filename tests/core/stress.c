/* Multithreaded stress of the allocator with corruption detection and no sanitizer needed.
 *
 * Every block carries a 16-byte header (magic mixed with the size, the size, a seed) and a payload filled
 * from the seed; the payload is verified when the block is freed or reallocated, by whichever thread does
 * it. Sizes follow a message-passing skew: 90% 16..256 B, 9.9% up to 64 KiB, 0.1% 64 KiB..4 MiB.
 * Threads hand blocks to each other through a shared exchange array (the receiver frees them, or keeps and
 * reallocs them later), and worker threads are replaced while the others still hold their blocks (churn).
 * PRNG streams are deterministic from `seed=`; the interleaving of threads is not.
 *
 * Built twice: core_stress_prefixed (zc_* on zcmem_prefixed, label sanitize) and core_stress_preload
 * (plain malloc, run with LD_PRELOAD=libzcmem.so; `--expect-zcmem` checks the override is really in).
 * Args: [--quick] [seed=N] [threads=N] [rounds=N] [ops=N].
 */
#define _GNU_SOURCE
#include "zc_test.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>

#ifdef ZC_TEST_PREFIXED
#include "zcmem.h"
#define NAME "core_stress_prefixed"
#define S_malloc zc_malloc
#define S_realloc zc_realloc
#define S_free zc_free
#define S_usable zc_usable_size
#else
#include <malloc.h>
#define NAME "core_stress_preload"
#define S_malloc malloc
#define S_realloc realloc
#define S_free free
#define S_usable malloc_usable_size
#endif

#define MAGIC 0x5a434d45u /* "ZCME" */
#define SLOTS 256
#define XCHG 4096

typedef struct {
  uint32_t magic; /* MAGIC ^ size */
  uint32_t size;  /* whole block including this header */
  uint64_t seed;
} hdr_t;

static _Atomic(hdr_t *) xchg[XCHG];
static atomic_ulong corruptions, allocations, remote_handoffs;
static uint64_t base_seed;
static unsigned long ops_per_thread;

static void report_corruption(const hdr_t *h, const char *what, size_t at) {
  if (atomic_fetch_add(&corruptions, 1) < 10)
    fprintf(stderr, "%s:%d: corruption: block %p (size %u, seed %llx): %s at byte %zu\n", __FILE__, __LINE__,
            (const void *)h, h->size, (unsigned long long)h->seed, what, at);
}

/* Fill (or check) bytes [from, size) of the block's payload from its seed; returns false on a mismatch. */
static bool payload(hdr_t *h, size_t upto, bool check) {
  unsigned char *b = (unsigned char *)(h + 1);
  size_t n = upto - sizeof(hdr_t);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w = h->seed ^ (i * 0x9e3779b97f4a7c15ull);
    if (check) {
      uint64_t got;
      memcpy(&got, b + i, 8);
      if (got != w) {
        report_corruption(h, "payload word differs", sizeof(hdr_t) + i);
        return false;
      }
    } else {
      memcpy(b + i, &w, 8);
    }
  }
  uint64_t w = h->seed ^ (i * 0x9e3779b97f4a7c15ull);
  for (size_t k = 0; i < n; i++, k++) {
    unsigned char want = (unsigned char)(w >> (8 * k));
    if (check && b[i] != want) {
      report_corruption(h, "payload tail differs", sizeof(hdr_t) + i);
      return false;
    }
    if (!check) b[i] = want;
  }
  return true;
}

static void stamp(hdr_t *h, size_t size, uint64_t seed) {
  h->magic = MAGIC ^ (uint32_t)size;
  h->size = (uint32_t)size;
  h->seed = seed;
  payload(h, size, false);
}

static bool header_ok(hdr_t *h) {
  if (h->magic != (MAGIC ^ h->size) || h->size < sizeof(hdr_t)) {
    report_corruption(h, "header damaged", 0);
    return false;
  }
  return true;
}

static size_t pick_size(rng_t *r) {
  uint64_t x = rng_next(r) % 1000;
  if (x < 900) return (size_t)rng_range(r, 16, 256);
  if (x < 999) {
    unsigned shift = (unsigned)rng_range(r, 8, 15); /* 256 B .. 32 KiB, log-uniform, times up to 2 */
    return ((size_t)1 << shift) + (size_t)rng_range(r, 1, (uint64_t)1 << shift);
  }
  return (size_t)rng_range(r, 65537, (size_t)4 << 20);
}

static hdr_t *new_block(rng_t *r) {
  size_t size = pick_size(r);
  hdr_t *h = S_malloc(size);
  if (!h) {
    fprintf(stderr, "%s:%d: malloc(%zu) returned NULL\n", __FILE__, __LINE__, size);
    atomic_fetch_add(&corruptions, 1);
    return NULL;
  }
  /* 16-byte alignment for every request of 16 bytes or more (C23: max_align_t), 8 below */
  size_t align = size >= 16 ? 16 : 8;
  if (((uintptr_t)h & (align - 1)) != 0 || S_usable(h) < size) {
    fprintf(stderr, "%s:%d: malloc(%zu) = %p: misaligned or usable size %zu too small\n", __FILE__, __LINE__,
            size, (void *)h, (size_t)S_usable(h));
    atomic_fetch_add(&corruptions, 1);
  }
  stamp(h, size, rng_next(r));
  atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
  return h;
}

static void free_block(hdr_t *h) {
  if (!h) return;
  if (header_ok(h)) payload(h, h->size, true);
  memset(h, 0xDD, sizeof(hdr_t)); /* a second free of this block by the test itself would show */
  S_free(h);
}

static hdr_t *realloc_block(hdr_t *h, rng_t *r) {
  if (!header_ok(h)) return h;
  size_t old = h->size, size = pick_size(r);
  uint64_t seed = h->seed;
  hdr_t *q = S_realloc(h, size);
  if (!q) {
    fprintf(stderr, "%s:%d: realloc(%zu -> %zu) returned NULL\n", __FILE__, __LINE__, old, size);
    atomic_fetch_add(&corruptions, 1);
    return h;
  }
  /* the header and the kept prefix must have survived the move */
  if (q->magic != (MAGIC ^ (uint32_t)old) || q->seed != seed) {
    report_corruption(q, "header lost by realloc", 0);
  } else {
    payload(q, size < old ? size : old, true);
  }
  stamp(q, size, rng_next(r));
  return q;
}

typedef struct {
  unsigned id;
  unsigned long ops;
  pthread_t th;
} worker_t;

static void *worker(void *arg) {
  worker_t *w = arg;
  rng_t r;
  rng_seed(&r, base_seed ^ ((uint64_t)w->id << 32));
  hdr_t *slot[SLOTS] = {0};
  for (unsigned long op = 0; op < w->ops; op++) {
    unsigned i = (unsigned)(rng_next(&r) % SLOTS);
    unsigned x = (unsigned)(rng_next(&r) % 100);
    if (x < 55) { /* replace */
      free_block(slot[i]);
      slot[i] = new_block(&r);
    } else if (x < 65) { /* realloc (possibly a block another thread allocated) */
      slot[i] = slot[i] ? realloc_block(slot[i], &r) : new_block(&r);
    } else if (x < 95) { /* hand over to another thread, take what was there */
      if (!slot[i]) slot[i] = new_block(&r);
      hdr_t *got = atomic_exchange(&xchg[rng_next(&r) % XCHG], slot[i]);
      atomic_fetch_add_explicit(&remote_handoffs, 1, memory_order_relaxed);
      slot[i] = NULL;
      if (got) {
        if (rng_next(&r) & 1) free_block(got);
        else slot[i] = got; /* keep a foreign block for a while */
      }
    } else { /* free */
      free_block(slot[i]);
      slot[i] = NULL;
    }
  }
  /* exit while other threads still hold our blocks: half of what we have goes to the exchange */
  for (unsigned i = 0; i < SLOTS; i++) {
    if (!slot[i]) continue;
    if (i & 1) {
      free_block(atomic_exchange(&xchg[rng_next(&r) % XCHG], slot[i]));
    } else {
      free_block(slot[i]);
    }
  }
  return NULL;
}

int main(int argc, char **argv) {
  int quick = quick_mode(argc, argv);
  base_seed = arg_value(argc, argv, "seed", 12345);
  unsigned threads = (unsigned)arg_value(argc, argv, "threads", 4);
  unsigned rounds = (unsigned)arg_value(argc, argv, "rounds", quick ? 3 : 4);
  ops_per_thread = (unsigned long)arg_value(argc, argv, "ops", quick ? 20000 : 60000);
#if UNDER_HEAVY_SANITIZER
  ops_per_thread /= 4;
#endif
  if (threads < 1) threads = 1;
#ifndef ZC_TEST_PREFIXED
  if (arg_flag(argc, argv, "--expect-zcmem"))
    CHECKF(is_zcmem_malloc(), "malloc is not zcmem's: LD_PRELOAD=%s",
           getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "(unset)");
#endif
  printf("%s: seed=%llu threads=%u rounds=%u ops=%lu\n", NAME, (unsigned long long)base_seed, threads, rounds,
         ops_per_thread);
  worker_t *ws = calloc(threads, sizeof(worker_t));
  REQUIRE(ws != NULL);
  unsigned next_id = 0;
  for (unsigned t = 0; t < threads; t++) {
    ws[t].id = next_id++;
    ws[t].ops = ops_per_thread / 2 + ops_per_thread * (t % 3) / 2; /* staggered exits */
    REQUIRE(pthread_create(&ws[t].th, NULL, worker, &ws[t]) == 0);
  }
  /* churn: join the threads in turn and start a replacement at once while the others run */
  for (unsigned g = 0; g < threads * (rounds - 1); g++) {
    worker_t *w = &ws[g % threads];
    pthread_join(w->th, NULL);
    w->id = next_id++;
    w->ops = ops_per_thread / 2 + ops_per_thread * (w->id % 3) / 2;
    REQUIRE(pthread_create(&w->th, NULL, worker, w) == 0);
  }
  for (unsigned t = 0; t < threads; t++) pthread_join(ws[t].th, NULL);
  for (unsigned i = 0; i < XCHG; i++) free_block(atomic_exchange(&xchg[i], NULL));
  free(ws);
  printf("%s: %lu allocations, %lu hand-overs, %u threads in all\n", NAME, atomic_load(&allocations),
         atomic_load(&remote_handoffs), next_id);
  CHECKF(atomic_load(&corruptions) == 0, "%lu corrupted or failed blocks", atomic_load(&corruptions));
#ifdef ZC_TEST_PREFIXED
  zc_stats_t st;
  zc_stats_get(&st);
  CHECKF(st.errors == 0, "the allocator reported %llu error(s)", (unsigned long long)st.errors);
  CHECKF(st.remote_frees > 0, "no remote frees counted after %lu hand-overs", atomic_load(&remote_handoffs));
#endif
  return check_exit(NAME);
}
