/* A shadow-model fuzzer of the malloc family, with bad frees injected.
 *
 * Several threads run random sequences of malloc, calloc, realloc, aligned_alloc, posix_memalign, free,
 * free_sized and malloc_usable_size, and hand blocks to each other through inboxes (so most frees and
 * reallocs of a handed-over block are remote). Every live block has a shadow record (request size, usable
 * size, alignment, the thread whose heap made it, a seed) and carries a pattern from its seed. Checked:
 *   - contents: a block's pattern is intact when it is freed, reallocated (the kept prefix) or handed over,
 *     and every live block is verified at the end of each round;
 *   - usable size >= request, and the same on every later query; calloc's block reads zero;
 *   - alignment: the requested one for aligned_alloc/posix_memalign; for malloc 16 when n >= 16 (C23,
 *     max_align_t), else 8 (align16=0 relaxes it to 8 for every size);
 *   - no overlap: at the end of each round all live blocks of all threads (inboxes included), sorted by
 *     address, must have disjoint [p, p + usable) ranges.
 * Bad frees (report-and-continue mode: the program sets ZCMEM_ABORT_ON_ERROR=0, and checks it took) are
 * injected by kind, selected by a mask (bit k = kind k below). Kinds 0-4 and 7 are injected during the
 * concurrent phase; the total of reported errors must equal the total injected at the end of the round.
 * Double frees (kinds 5, 6, 8) are injected in a serialized phase (one thread at a time, the others
 * waiting), where each must add exactly one error: a double free is only well-defined while no thread can
 * reuse the block in between. Every injection is followed, at the end of the round, by the full check of
 * every live block: a bad free that was "accepted" shows up as corruption or overlap.
 *
 * Built twice: core_fuzz_prefixed (zc_*, zcmem_prefixed, label sanitize) and core_fuzz_preload (plain
 * malloc, LD_PRELOAD=libzcmem.so; `--expect-zcmem` checks the override is in).
 * Args: [--quick] [seed=N] [threads=N] [rounds=N] [ops=N] [mask=N] [align16=0|1] [stderr=1]
 * Environment: ZC_FUZZ_SEED, ZC_FUZZ_MASK, ZC_FUZZ_ROUNDS, ZC_FUZZ_OPS (as the args; args win),
 * ZC_FUZZ_LONG=1 (50x the rounds: the long run).
 * Exit 0 if every check held; a failure prints the seed, round, kind and block to rerun it.
 */
#define _GNU_SOURCE
#include "check.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>

#ifdef ZC_TEST_PREFIXED
#include "zcmem.h"
#define NAME "core_fuzz_prefixed"
#define F_malloc zc_malloc
#define F_calloc zc_calloc
#define F_realloc zc_realloc
#define F_free zc_free
#define F_aligned_alloc zc_aligned_alloc
#define F_posix_memalign zc_posix_memalign
#define F_usable zc_usable_size
#define F_free_sized zc_free_sized
#else
#define NAME "core_fuzz_preload"
#define F_malloc malloc
#define F_calloc calloc
#define F_realloc realloc
#define F_free free
#define F_aligned_alloc aligned_alloc
#define F_posix_memalign posix_memalign
#define F_usable malloc_usable_size
static void (*free_sized_fn)(void *, size_t);
static void F_free_sized(void *p, size_t n) {
  if (free_sized_fn) free_sized_fn(p, n);
  else free(p);
}
#endif

/* Reported errors: the "zcmem: error:" lines on stderr, which is a memory file while the fuzzer runs (every
 * report is one write of one line). Read only while no other thread calls the allocator. */
static int err_fd = -1;
static off_t err_seen;
static unsigned long err_lines;
static bool err_at_line_start = true;
static char err_prefix_buf[16];
static size_t err_prefix_len;
static unsigned long errors_now(void) {
  char buf[4096];
  ssize_t n;
  while ((n = pread(err_fd, buf, sizeof buf, err_seen)) > 0) {
    for (ssize_t i = 0; i < n; i++) {
      char c = buf[i];
      if (err_at_line_start) err_prefix_len = 0, err_at_line_start = false;
      if (err_prefix_len < 13) {
        err_prefix_buf[err_prefix_len++] = c;
        if (err_prefix_len == 13 && memcmp(err_prefix_buf, "zcmem: error:", 13) == 0) err_lines++;
      }
      if (c == '\n') err_at_line_start = true;
    }
    err_seen += n;
  }
  return err_lines;
}

/* ---- bad-free kinds ---- */
enum {
  K_FOREIGN,         /* stack, global, another mapping: free, free_sized, usable_size or realloc of it */
  K_WILD,            /* a live block's address with bits above bit 47 (57/52-bit, kernel, garbage) */
  K_INTERIOR_LARGE,  /* inside a live large block, 1 byte in to the end, or into its header */
  K_INTERIOR_LOCAL,  /* inside a live small block of a page this thread owns (1..size-1 bytes in) */
  K_INTERIOR_REMOTE, /* the same, of a page another thread owns (a remote free) */
  K_DOUBLE_LARGE,    /* serialized: a large block freed twice */
  K_DOUBLE_LOCAL,    /* serialized: a small block of this thread's page freed twice */
  K_HEADER_SMALL,    /* a segment's header area (the first 16 KiB of a small block's segment) */
  K_DOUBLE_REMOTE,   /* serialized: a small block of another thread's page freed twice by the same thread */
  K_COUNT
};
static const char *const kind_names[K_COUNT] = {"foreign",      "wild",        "interior-large",
                                                "interior-local", "interior-remote", "double-large",
                                                "double-local", "header-small", "double-remote"};
/* Every kind is detected in release builds (docs/design.md, Errors). */
#define DEFAULT_MASK ((1u << K_COUNT) - 1)
#if defined(__SANITIZE_THREAD__)
/* A large double free reads the header of a region the background purger may be purging at that moment:
 * a race by design (the program is wrong), which TSan rightly reports. Not injected under TSan. */
#undef DEFAULT_MASK
#define DEFAULT_MASK (((1u << K_COUNT) - 1) & ~(1u << K_DOUBLE_LARGE))
#endif
#define SERIAL_KINDS ((1u << K_DOUBLE_LARGE) | (1u << K_DOUBLE_LOCAL) | (1u << K_DOUBLE_REMOTE))

/* ---- shadow model ---- */
typedef struct {
  unsigned char *p;
  size_t n, usable, align;
  uint64_t seed;
  uint32_t maker; /* thread whose heap made it (the page's owner for a small block) */
  bool large;
} blk_t;

#define SLOTS 192
#define INBOX 64
#define MAXT 16

typedef struct {
  pthread_mutex_t lock;
  blk_t b[INBOX];
  unsigned count;
} inbox_t;

typedef struct {
  unsigned id;
  rng_t rng;
  blk_t slot[SLOTS];
  unsigned long injected[K_COUNT];
  unsigned long ops;
} worker_t;

static worker_t workers[MAXT];
static inbox_t inboxes[MAXT];
static unsigned nthreads = 4, rounds = 12;
static unsigned long ops_per_round = 3000;
static unsigned mask = DEFAULT_MASK;
static bool align16;
static uint64_t base_seed = 1;
static pthread_barrier_t bar;
static pthread_mutex_t serial_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_ulong failures, injected_concurrent;
static unsigned cur_round;
static char global_foreign[4096] __attribute__((aligned(64)));
static unsigned char *foreign_map;

#define FAIL(w, ...)                                                                              \
  do {                                                                                            \
    if (atomic_fetch_add(&failures, 1) < 20) {                                                    \
      printf("FAIL seed=%llu round=%u thread=%u: ", (unsigned long long)base_seed, cur_round, (w)->id); \
      printf(__VA_ARGS__);                                                                        \
      printf("\n");                                                                               \
      fflush(stdout);                                                                             \
    }                                                                                             \
  } while (0)

static inline uint64_t pat(uint64_t seed, size_t i) {
  uint64_t x = seed ^ (i * 0x9e3779b97f4a7c15ull);
  return x ^ (x >> 29);
}
static void fill(const blk_t *b) {
  size_t i = 0, n = b->n;
  for (; i + 8 <= n; i += 8) {
    uint64_t w = pat(b->seed, i);
    memcpy(b->p + i, &w, 8);
  }
  uint64_t w = pat(b->seed, i);
  for (size_t k = 0; i < n; i++, k++) b->p[i] = (unsigned char)(w >> (8 * k));
}
/* First byte of [0, upto) that differs from the pattern, or SIZE_MAX. */
static size_t check_pat(const blk_t *b, size_t upto) {
  size_t i = 0;
  for (; i + 8 <= upto; i += 8) {
    uint64_t w = pat(b->seed, i), got;
    memcpy(&got, b->p + i, 8);
    if (got != w) {
      for (size_t k = 0; k < 8; k++)
        if ((unsigned char)(got >> (8 * k)) != (unsigned char)(w >> (8 * k))) return i + k;
    }
  }
  uint64_t w = pat(b->seed, i);
  for (size_t k = 0; i < upto; i++, k++)
    if (b->p[i] != (unsigned char)(w >> (8 * k))) return i;
  return SIZE_MAX;
}
static bool verify(worker_t *w, const blk_t *b, const char *when) {
  size_t at = check_pat(b, b->n);
  if (at == SIZE_MAX) return true;
  FAIL(w, "block %p (%zu B, align %zu, made by thread %u) corrupted at byte %zu, found on %s", (void *)b->p, b->n,
       b->align, b->maker, at, when);
  return false;
}

static size_t rand_size(rng_t *r) {
  unsigned x = (unsigned)rng_range(r, 0, 999);
  if (x < 700) return (size_t)rng_range(r, 0, 256);
  if (x < 900) return (size_t)rng_range(r, 257, 8192);
  if (x < 985) return (size_t)rng_range(r, 8193, 70000);
  return (size_t)rng_range(r, 70000, 2u << 20);
}
static size_t rand_align(rng_t *r) {
  unsigned x = (unsigned)rng_range(r, 0, 99);
  if (x < 85) return (size_t)8 << rng_range(r, 0, 9);  /* 8 .. 4096 */
  if (x < 97) return (size_t)8192 << rng_range(r, 0, 3); /* 8 K .. 64 K: large regions */
  return (size_t)1 << 20;
}
static bool is_large(size_t n, size_t align) { return n > 65536 || align > 4096; }

/* A new block's checks and shadow record; false if p is NULL. */
static bool adopt_new(worker_t *w, blk_t *b, void *p, size_t n, size_t align, bool zeroed) {
  if (p == NULL) {
    FAIL(w, "allocation of %zu B (align %zu) returned NULL", n, align);
    return false;
  }
  b->p = p;
  b->n = n;
  b->align = align;
  b->maker = w->id;
  b->large = is_large(n, align);
  b->seed = rng_next(&w->rng);
  size_t a = align;
  if (a == 0) a = (align16 && n >= 16) ? 16 : 8;
  if ((uintptr_t)p % a != 0) FAIL(w, "block %p of %zu B is not %zu-aligned", p, n, a);
  b->usable = F_usable(p);
  if (b->usable < n) FAIL(w, "usable size %zu of %p below the request %zu", b->usable, p, n);
  if (zeroed)
    for (size_t i = 0; i < n; i++)
      if (b->p[i] != 0) {
        FAIL(w, "calloc block %p (%zu B) byte %zu is %u, not 0", p, n, i, b->p[i]);
        break;
      }
  fill(b);
  return true;
}

static void release(worker_t *w, blk_t *b, const char *how) {
  verify(w, b, how);
  if (rng_range(&w->rng, 0, 3) == 0) F_free_sized(b->p, b->n);
  else F_free(b->p);
  b->p = NULL;
}

static void do_alloc(worker_t *w, blk_t *b) {
  size_t n = rand_size(&w->rng);
  unsigned op = (unsigned)rng_range(&w->rng, 0, 9);
  if (op < 6) {
    adopt_new(w, b, F_malloc(n), n, 0, false);
  } else if (op < 8) {
    size_t c = (size_t)rng_range(&w->rng, 1, 8);
    n = n / c + 1;
    adopt_new(w, b, F_calloc(c, n), c * n, 0, true);
  } else if (op < 9) {
    size_t a = rand_align(&w->rng);
    adopt_new(w, b, F_aligned_alloc(a, n), n, a, false);
  } else {
    size_t a = rand_align(&w->rng);
    void *p = NULL;
    int rc = F_posix_memalign(&p, a, n);
    if (rc != 0) p = NULL;
    adopt_new(w, b, p, n, a, false);
  }
}

static void do_realloc(worker_t *w, blk_t *b) {
  if (!verify(w, b, "realloc")) {
    b->p = NULL; /* leave the corrupted block alone */
    return;
  }
  size_t n2 = rng_range(&w->rng, 0, 3) == 0 ? (size_t)rng_range(&w->rng, 1, b->n + 1) : rand_size(&w->rng) + 1;
  unsigned char *q = F_realloc(b->p, n2);
  if (q == NULL) {
    FAIL(w, "realloc(%p, %zu) returned NULL", (void *)b->p, n2);
    return;
  }
  blk_t nb = *b;
  nb.p = q;
  nb.n = n2 < b->n ? n2 : b->n;
  size_t at = check_pat(&nb, nb.n);
  if (at != SIZE_MAX) FAIL(w, "realloc(%p, %zu) -> %p lost byte %zu of the kept prefix", (void *)b->p, n2, (void *)q, at);
  if (q != b->p) {
    nb.maker = w->id;
    nb.align = 0; /* a moved block has malloc's alignment only */
    nb.large = n2 > 65536;
  }
  nb.n = n2;
  nb.usable = F_usable(q);
  if (nb.usable < n2) FAIL(w, "realloc'd block %p: usable %zu below %zu", (void *)q, nb.usable, n2);
  size_t a = nb.align ? nb.align : (align16 && n2 >= 16) ? 16 : 8;
  if ((uintptr_t)q % a != 0 && q != b->p) FAIL(w, "realloc'd block %p not %zu-aligned", (void *)q, a);
  nb.seed = rng_next(&w->rng);
  fill(&nb);
  *b = nb;
}

static void hand_over(worker_t *w, blk_t *b) {
  if (!verify(w, b, "hand-over")) {
    b->p = NULL;
    return;
  }
  unsigned to = (unsigned)rng_range(&w->rng, 0, nthreads - 1);
  if (to == w->id) to = (to + 1) % nthreads;
  inbox_t *in = &inboxes[to];
  pthread_mutex_lock(&in->lock);
  bool ok = in->count < INBOX;
  if (ok) in->b[in->count++] = *b;
  pthread_mutex_unlock(&in->lock);
  if (ok) b->p = NULL;
  else release(w, b, "free (inbox full)");
}

static void take_inbox(worker_t *w) {
  inbox_t *in = &inboxes[w->id];
  blk_t got[INBOX];
  pthread_mutex_lock(&in->lock);
  unsigned n = in->count;
  memcpy(got, in->b, n * sizeof(blk_t));
  in->count = 0;
  pthread_mutex_unlock(&in->lock);
  for (unsigned i = 0; i < n; i++) {
    unsigned s = (unsigned)rng_range(&w->rng, 0, SLOTS - 1);
    if (w->slot[s].p) release(w, &w->slot[s], "free (slot taken by a handed-over block)");
    w->slot[s] = got[i];
  }
}

/* A random live block of w matching pred, or NULL. */
static blk_t *pick(worker_t *w, bool (*pred)(const worker_t *, const blk_t *)) {
  unsigned s0 = (unsigned)rng_range(&w->rng, 0, SLOTS - 1);
  for (unsigned k = 0; k < SLOTS; k++) {
    blk_t *b = &w->slot[(s0 + k) % SLOTS];
    if (b->p && pred(w, b)) return b;
  }
  return NULL;
}
static bool any_blk(const worker_t *w, const blk_t *b) { return (void)w, (void)b, true; }
static bool large_blk(const worker_t *w, const blk_t *b) { return (void)w, b->large; }
static bool local_small(const worker_t *w, const blk_t *b) { return !b->large && b->maker == w->id && b->usable > 1; }
static bool remote_small(const worker_t *w, const blk_t *b) { return !b->large && b->maker != w->id && b->usable > 1; }
static bool small_blk(const worker_t *w, const blk_t *b) { return (void)w, !b->large; }

/* One bad call of kind k (non-serial kinds). Returns the number of errors it must add (0: none made). */
static unsigned inject(worker_t *w, unsigned k) {
  blk_t *b;
  unsigned char *bad = NULL;
  switch (k) {
    case K_FOREIGN: {
      char stack[256] __attribute__((aligned(64)));
      unsigned which = (unsigned)rng_range(&w->rng, 0, 2);
      bad = which == 0 ? (unsigned char *)stack + 16 * rng_range(&w->rng, 0, 15)
            : which == 1 ? (unsigned char *)global_foreign + 16 * rng_range(&w->rng, 0, 255)
                         : foreign_map + 16 * rng_range(&w->rng, 0, 4095);
      __asm__ volatile("" : : "r"(stack) : "memory");
      break;
    }
    case K_WILD: {
      static const uint64_t high[] = {1ull << 48, 0xfull << 48, 1ull << 56, 0xffffull << 48, 0xdeadbeefull << 32};
      b = pick(w, any_blk);
      if (!b) return 0;
      bad = (unsigned char *)((uintptr_t)b->p | high[rng_range(&w->rng, 0, 4)]);
      break;
    }
    case K_INTERIOR_LARGE: {
      b = pick(w, large_blk);
      if (!b) return 0;
      static const long offs[] = {1, 8, 16, 4096, -8, -16, -64};
      long o = rng_range(&w->rng, 0, 7) == 7 ? (long)(16 * rng_range(&w->rng, 1, (b->usable - 1) / 16))
                                             : offs[rng_range(&w->rng, 0, 6)];
      bad = b->p + o;
      break;
    }
    case K_INTERIOR_LOCAL:
    case K_INTERIOR_REMOTE:
      b = pick(w, k == K_INTERIOR_LOCAL ? local_small : remote_small);
      if (!b) return 0;
      bad = b->p + rng_range(&w->rng, 1, b->usable - 1); /* never the next block's start */
      break;
    case K_HEADER_SMALL:
      b = pick(w, small_blk);
      if (!b) return 0;
      bad = (unsigned char *)((uintptr_t)b->p & ~(uintptr_t)((4u << 20) - 1)) + 16 * rng_range(&w->rng, 0, 1023);
      break;
    default: return 0;
  }
  /* Interior pointers of small blocks: only free (usable_size of an interior pointer is not an error). */
  unsigned how = (k == K_INTERIOR_LOCAL || k == K_INTERIOR_REMOTE) ? 0 : (unsigned)rng_range(&w->rng, 0, 3);
  if (how == 0) F_free(bad);
  else if (how == 1) F_free_sized(bad, 32);
  else if (how == 2) {
    size_t u = F_usable(bad);
    if (u != 0) FAIL(w, "usable_size of bad pointer %p (%s) is %zu, not 0", (void *)bad, kind_names[k], u);
  } else {
    errno = 0;
    void *q = F_realloc(bad, 100);
    if (q != NULL || errno != EINVAL)
      FAIL(w, "realloc of bad pointer %p (%s) returned %p errno %d", (void *)bad, kind_names[k], q, errno);
  }
  w->injected[k]++;
  return 1;
}

/* Serialized kinds: the caller holds serial_lock and no other thread runs allocator calls. */
static void inject_serial(worker_t *w, unsigned k) {
  blk_t *b = pick(w, k == K_DOUBLE_LARGE ? large_blk : k == K_DOUBLE_LOCAL ? local_small : remote_small);
  if (!b || !verify(w, b, "double-free injection")) return;
  unsigned char *p = b->p;
  F_free(p);
  b->p = NULL;
  unsigned long e0 = errors_now();
  if (rng_range(&w->rng, 0, 1)) F_free(p);
  else F_free_sized(p, b->n);
  unsigned long e1 = errors_now();
  w->injected[k]++;
  if (e1 != e0 + 1)
    FAIL(w, "%s of %p (%zu B, made by thread %u): %lu errors reported, want 1", kind_names[k], (void *)p, b->n,
         b->maker, e1 - e0);
}

static void verify_all(worker_t *w, const char *when) {
  for (unsigned s = 0; s < SLOTS; s++)
    if (w->slot[s].p && !verify(w, &w->slot[s], when)) w->slot[s].p = NULL;
}

static int cmp_blk(const void *a, const void *b) {
  uintptr_t x = (uintptr_t)((const blk_t *)a)->p, y = (uintptr_t)((const blk_t *)b)->p;
  return x < y ? -1 : x > y;
}

/* Thread 0, everyone else waiting: all live blocks disjoint. */
static void check_overlap(worker_t *w) {
  static blk_t all[MAXT * (SLOTS + INBOX)];
  size_t n = 0;
  for (unsigned t = 0; t < nthreads; t++) {
    for (unsigned s = 0; s < SLOTS; s++)
      if (workers[t].slot[s].p) all[n++] = workers[t].slot[s];
    for (unsigned i = 0; i < inboxes[t].count; i++) all[n++] = inboxes[t].b[i];
  }
  qsort(all, n, sizeof *all, cmp_blk);
  for (size_t i = 1; i < n; i++)
    if ((uintptr_t)all[i - 1].p + all[i - 1].usable > (uintptr_t)all[i].p)
      FAIL(w, "live blocks overlap: %p (+%zu usable) and %p (+%zu)", (void *)all[i - 1].p, all[i - 1].usable,
           (void *)all[i].p, all[i].usable);
}

static void *worker_main(void *arg) {
  worker_t *w = arg;
  const unsigned conc_mask = mask & ~SERIAL_KINDS, serial_mask = mask & SERIAL_KINDS;
  for (unsigned r = 0; r < rounds; r++) {
    /* concurrent phase */
    for (unsigned long i = 0; i < ops_per_round; i++) {
      blk_t *b = &w->slot[rng_range(&w->rng, 0, SLOTS - 1)];
      unsigned op = (unsigned)rng_range(&w->rng, 0, 99);
      if ((i & 63) == 0) take_inbox(w);
      if (conc_mask && op == 0) {
        unsigned k = (unsigned)rng_range(&w->rng, 0, K_COUNT - 1);
        if (conc_mask & (1u << k)) atomic_fetch_add(&injected_concurrent, inject(w, k));
        continue;
      }
      if (b->p == NULL) {
        do_alloc(w, b);
      } else if (op < 40) {
        release(w, b, "free");
      } else if (op < 60) {
        do_realloc(w, b);
      } else if (op < 80) {
        hand_over(w, b);
      } else {
        size_t u = F_usable(b->p);
        if (u != b->usable) FAIL(w, "usable size of %p changed: %zu, was %zu", (void *)b->p, u, b->usable);
      }
      w->ops++;
    }
    pthread_barrier_wait(&bar);
    /* serialized phase: one thread at a time */
    pthread_mutex_lock(&serial_lock);
    take_inbox(w);
    for (unsigned k = 0; k < K_COUNT; k++)
      if (serial_mask & (1u << k))
        for (int j = 0; j < 3; j++) inject_serial(w, k);
    verify_all(w, "end of round");
    pthread_mutex_unlock(&serial_lock);
    pthread_barrier_wait(&bar);
    if (w->id == 0) {
      cur_round = r;
      check_overlap(w);
    }
    pthread_barrier_wait(&bar);
  }
  verify_all(w, "the end");
  for (unsigned s = 0; s < SLOTS; s++)
    if (w->slot[s].p) release(w, &w->slot[s], "final free");
  return NULL;
}

static uint64_t env_num(const char *name, uint64_t def) {
  const char *e = getenv(name);
  return e && *e ? strtoull(e, NULL, 0) : def;
}

int main(int argc, char **argv) {
  setenv("ZCMEM_ABORT_ON_ERROR", "0", 1); /* report and go on (ctest sets it too, for the preload run) */
  bool quick = quick_mode(argc, argv);
  base_seed = arg_value(argc, argv, "seed", env_num("ZC_FUZZ_SEED", 1));
  nthreads = (unsigned)arg_value(argc, argv, "threads", 4);
  if (nthreads < 2) nthreads = 2;
  if (nthreads > MAXT) nthreads = MAXT;
  rounds = (unsigned)arg_value(argc, argv, "rounds", env_num("ZC_FUZZ_ROUNDS", quick || UNDER_HEAVY_SANITIZER ? 6 : 12));
  if (env_num("ZC_FUZZ_LONG", 0)) rounds *= 50;
  ops_per_round = arg_value(argc, argv, "ops", env_num("ZC_FUZZ_OPS", UNDER_HEAVY_SANITIZER ? 1000 : 3000));
  mask = (unsigned)arg_value(argc, argv, "mask", env_num("ZC_FUZZ_MASK", DEFAULT_MASK));
  align16 = arg_value(argc, argv, "align16", 1) != 0;
  bool keep_stderr = arg_value(argc, argv, "stderr", 0) != 0;
#ifdef ZC_TEST_PREFIXED
  REQUIRE(zc_option_get(zc_option_abort_on_error) == 0);
#else
  free_sized_fn = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
  long (*opt_get)(int) = (long (*)(int))dlsym(RTLD_DEFAULT, "zc_option_get");
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--expect-zcmem") == 0) REQUIREF(is_zcmem_malloc(), "malloc is %s's", malloc_owner());
  if (opt_get == NULL) {
    printf("%s: zcmem is not loaded (run with LD_PRELOAD=libzcmem.so): nothing to fuzz\n", NAME);
    return 1;
  }
  if (opt_get(8 /* zc_option_abort_on_error */) != 0) {
    printf("%s: ZCMEM_ABORT_ON_ERROR must be 0 in the environment of the preloaded run\n", NAME);
    return 1;
  }
#endif
  foreign_map = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(foreign_map != MAP_FAILED);
  printf("%s: seed=%llu threads=%u rounds=%u ops=%lu mask=0x%x align16=%d\n", NAME, (unsigned long long)base_seed,
         nthreads, rounds, ops_per_round, mask, align16);
  fflush(stdout);
  fflush(stderr);
  int saved_err = dup(2);
  err_fd = memfd_create("fuzz-stderr", MFD_CLOEXEC);
  REQUIRE(saved_err >= 0 && err_fd >= 0);
  /* Append mode: a memory file's offset is not locked across threads, so two reports written at once would
   * land on the same offset and one would be lost. */
  REQUIRE(fcntl(err_fd, F_SETFL, O_APPEND) == 0);
  dup2(err_fd, 2);
  unsigned long e0 = errors_now();
  pthread_barrier_init(&bar, NULL, nthreads);
  pthread_t th[MAXT];
  for (unsigned t = 0; t < nthreads; t++) {
    workers[t].id = t;
    rng_seed(&workers[t].rng, base_seed * 1000003u + t);
    pthread_mutex_init(&inboxes[t].lock, NULL);
  }
  for (unsigned t = 0; t < nthreads; t++) {
    REQUIRE(pthread_create(&th[t], NULL, worker_main, &workers[t]) == 0);
  }
  for (unsigned t = 0; t < nthreads; t++) pthread_join(th[t], NULL);
  for (unsigned t = 0; t < nthreads; t++) /* blocks still in inboxes */
    for (unsigned i = 0; i < inboxes[t].count; i++) {
      if (verify(&workers[t], &inboxes[t].b[i], "final inbox")) F_free(inboxes[t].b[i].p);
    }
  unsigned long reported = errors_now() - e0;
  fflush(stderr);
  dup2(saved_err, 2);
  close(saved_err);
  { /* the captured log: all of it with stderr=1, else only what is not a zcmem report (sanitizers...) */
    static char log[1 << 20];
    ssize_t n = pread(err_fd, log, sizeof log - 1, 0);
    log[n > 0 ? n : 0] = 0;
    for (char *line = log; *line;) {
      char *nl = strchr(line, '\n');
      size_t len = nl ? (size_t)(nl - line + 1) : strlen(line);
      if (keep_stderr || strncmp(line, "zcmem: error:", 13) != 0) fwrite(line, 1, len, stderr);
      line += len;
    }
  }
  unsigned long injected = 0, ops = 0, per[K_COUNT] = {0};
  for (unsigned t = 0; t < nthreads; t++) {
    ops += workers[t].ops;
    for (unsigned k = 0; k < K_COUNT; k++) per[k] += workers[t].injected[k], injected += workers[t].injected[k];
  }
  printf("%s: %lu operations, %lu bad calls injected, %lu errors reported\n", NAME, ops, injected, reported);
  for (unsigned k = 0; k < K_COUNT; k++)
    if (per[k]) printf("  %-16s %lu\n", kind_names[k], per[k]);
  if (reported != injected)
    FAIL(&workers[0], "%lu bad calls injected but %lu errors reported (rerun one kind at a time with mask=)", injected,
         reported);
  unsigned long f = atomic_load(&failures);
  if (f) {
    printf("%s: %lu failure(s); rerun with seed=%llu mask=0x%x\n", NAME, f, (unsigned long long)base_seed, mask);
    return 1;
  }
  printf("%s: all checks passed\n", NAME);
  return 0;
}
