/* Purging of small pages, and the options.
 *
 * The purge cases leave segments partly used (one block kept per segment), so that freeing the rest
 * leaves empty *pages* on the heap's dirty list instead of empty segments (which are unmapped at once and
 * would measure nothing). What they check, on the freed pages themselves (mincore), not on process RSS:
 *
 *   core_purge delay   the main thread frees 32 MiB of pages and sleeps without calling the allocator:
 *                      the pages stay resident until ZCMEM_PURGE_DELAY has passed (checked right after the
 *                      frees and again at 3/4 of the delay, after the purger's first sweep), then the
 *                      background purger returns them within the delay plus a margin. Run with
 *                      ZCMEM_PURGE_DELAY=1500; fails with ZCMEM_BACKGROUND=0 (nobody purges an idle heap)
 *                      and with a purge that ignores the delay.
 *   core_purge idle    the same done by a thread that then idles without exiting.
 *   core_purge delay0  ZCMEM_PURGE_DELAY=0: returned soon after the frees, the thread idle.
 *   core_purge budget  ZCMEM_DIRTY_BUDGET=2M, a huge delay, no purger: right after the frees at most the
 *                      budget of freed pages is resident, and not less than half of it (the oldest half
 *                      goes, the rest is kept for reuse).
 *   core_purge calloc_free  ZCMEM_PURGE_MODE=1 (MADV_FREE, which leaves the old bytes in place until the
 *                      kernel needs the memory): pages and large regions filled with 0xAB, freed, purged
 *                      by zc_trim, then reused by zc_calloc: every byte is zero.
 *   core_purge remote  512 MiB of small blocks allocated by the main thread, freed by another thread (remote
 *                      frees), the owner collects once: RSS back within 50 MiB after the delay.
 *   core_purge options children started with ZCMEM_* set print zc_option_get(): K/M/G suffixes,
 *                      true/false/on/off, the documented defaults, and a bad value is warned about on
 *                      stderr and leaves the default.
 * Links zcmem_prefixed (zc_* API). The RSS case (remote) is skipped under TSan/ASan (shadow memory); the
 * mincore cases run under every sanitizer.
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"

#include <pthread.h>

static long purge_delay_ms(void) {
  long d = zc_option_get(zc_option_purge_delay);
  const char *e = getenv("ZCMEM_PURGE_DELAY");
  if (e) CHECKF(d == strtol(e, NULL, 10), "ZCMEM_PURGE_DELAY=%s but zc_option_get says %ld", e, d);
  return d;
}

/* ---- partly used segments ---- */
#define SEG_SIZE ((uintptr_t)4 << 20) /* src/segmap.h: a segment is 4 MiB, aligned */
#define PAGE_SIZE_SMALL ((uintptr_t)64 << 10)
#define HEADER_SIZE ((uintptr_t)16 << 10) /* page 0's area starts after the segment header */
#define BLOCK 256
#define FREED_TARGET MIB(32)

typedef struct {
  void **ps;            /* the blocks, mmap'ed (not the allocator under test) */
  size_t n;
  uintptr_t *slots;     /* start of each 64 KiB page slot whose blocks were all freed */
  size_t nslots;
  size_t freed_area;    /* bytes of those pages' areas */
  uint64_t t_free0, t_free1; /* when the frees started and ended (ms) */
} partial_t;

static uintptr_t page_area(uintptr_t slot, size_t *len) {
  uintptr_t off = (slot & (SEG_SIZE - 1)) == 0 ? HEADER_SIZE : 0;
  *len = PAGE_SIZE_SMALL - off;
  return slot + off;
}

static int cmp_uptr(const void *a, const void *b) {
  uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
  return x < y ? -1 : x > y;
}

/* Allocate FREED_TARGET + 8 MiB of BLOCK-byte blocks (touched); free all but the first of each segment. */
static void partial_make(partial_t *b) {
  memset(b, 0, sizeof *b);
  size_t cap = (FREED_TARGET + MIB(8)) / BLOCK;
  b->ps = mmap(NULL, cap * sizeof(void *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  b->slots = mmap(NULL, cap * sizeof(uintptr_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(b->ps != MAP_FAILED && b->slots != MAP_FAILED);
  while (b->n < cap) {
    void *p = zc_malloc(BLOCK);
    REQUIRE(p != NULL);
    memset(p, 0x5a, BLOCK);
    b->ps[b->n++] = p;
  }
  uintptr_t kept[64]; /* slots of the kept blocks */
  size_t nkept = 0;
  for (size_t i = 0; i < b->n; i++) {
    uintptr_t seg = (uintptr_t)b->ps[i] & ~(SEG_SIZE - 1);
    size_t k = 0;
    while (k < nkept && (kept[k] & ~(SEG_SIZE - 1)) != seg) k++;
    if (k == nkept) {
      REQUIRE(nkept < 64);
      kept[nkept++] = (uintptr_t)b->ps[i] & ~(PAGE_SIZE_SMALL - 1);
      b->ps[i] = (void *)((uintptr_t)b->ps[i] | 1); /* marked: kept */
    }
  }
  b->nslots = 0;
  for (size_t i = 0; i < b->n; i++)
    if (!((uintptr_t)b->ps[i] & 1)) b->slots[b->nslots++] = (uintptr_t)b->ps[i] & ~(PAGE_SIZE_SMALL - 1);
  qsort(b->slots, b->nslots, sizeof(uintptr_t), cmp_uptr);
  size_t m = 0;
  for (size_t i = 0; i < b->nslots; i++) {
    if (m > 0 && b->slots[m - 1] == b->slots[i]) continue;
    int is_kept = 0;
    for (size_t k = 0; k < nkept; k++) is_kept |= kept[k] == b->slots[i];
    if (!is_kept) b->slots[m++] = b->slots[i];
  }
  b->nslots = m;
  for (size_t i = 0; i < m; i++) {
    size_t len;
    page_area(b->slots[i], &len);
    b->freed_area += len;
  }
  b->t_free0 = now_ms();
  for (size_t i = 0; i < b->n; i++)
    if (!((uintptr_t)b->ps[i] & 1)) zc_free(b->ps[i]);
  b->t_free1 = now_ms();
  REQUIRE(b->freed_area >= FREED_TARGET / 2);
}

/* Bytes of the freed pages still resident. */
static size_t partial_resident(const partial_t *b) {
  size_t r = 0;
  for (size_t i = 0; i < b->nslots; i++) {
    size_t len;
    uintptr_t a = page_area(b->slots[i], &len);
    r += resident_bytes((void *)a, len);
  }
  return r;
}

static void partial_done(partial_t *b) {
  for (size_t i = 0; i < b->n; i++)
    if ((uintptr_t)b->ps[i] & 1) zc_free((void *)((uintptr_t)b->ps[i] & ~(uintptr_t)1));
  munmap(b->ps, (FREED_TARGET + MIB(8)) / BLOCK * sizeof(void *));
  munmap(b->slots, (FREED_TARGET + MIB(8)) / BLOCK * sizeof(uintptr_t));
}

/* The frees were just made, the calling thread (the heap's owner) calls the allocator no more: the pages
 * stay resident until the delay has passed since the first free, then are returned in time. */
static void check_delay(const char *what, partial_t *b) {
  long delay = purge_delay_ms();
  size_t r0 = partial_resident(b);
  uint64_t t_r0 = now_ms();
  printf("%s: %zu pages (%zu KiB) freed in %llu ms; %zu KiB resident right after; delay %ld ms\n", what,
         b->nslots, b->freed_area >> 10, (unsigned long long)(b->t_free1 - b->t_free0), r0 >> 10, delay);
  if (delay > 0) {
    if (t_r0 < b->t_free0 + (uint64_t)delay)
      CHECKF(r0 >= b->freed_area / 10 * 9, "%s: only %zu of %zu KiB of the freed pages resident %llu ms after the "
             "frees, before the %ld ms purge delay", what, r0 >> 10, b->freed_area >> 10,
             (unsigned long long)(t_r0 - b->t_free0), delay);
    else printf("%s: the frees took longer than the delay; the resident-before-delay check is skipped\n", what);
    uint64_t mid = b->t_free0 + (uint64_t)delay * 3 / 4; /* after the purger's first sweep (every delay/2) */
    if (now_ms() < mid) {
      sleep_ms((long)(mid - now_ms()));
      size_t r1 = partial_resident(b);
      if (now_ms() < b->t_free0 + (uint64_t)delay)
        CHECKF(r1 >= b->freed_area / 10 * 9, "%s: only %zu of %zu KiB resident at 3/4 of the purge delay", what,
               r1 >> 10, b->freed_area >> 10);
    }
  }
  uint64_t t0 = now_ms();
  /* delay + 60 s: the purger thread may wait for a core on a loaded machine; a purger that
   * never runs still fails, and one that ignores the delay fails the checks above */
  int ok = WAIT_UNTIL(partial_resident(b) <= b->freed_area / 20, (uint64_t)delay + 60000);
  size_t r2 = partial_resident(b);
  printf("%s: %zu KiB resident %llu ms after the frees\n", what, r2 >> 10,
         (unsigned long long)(now_ms() - b->t_free0));
  (void)t0;
  CHECKF(ok, "%s: %zu of %zu KiB of freed pages still resident %ld ms after the frees (delay %ld ms)", what,
         r2 >> 10, b->freed_area >> 10, (long)(now_ms() - b->t_free0), delay);
}

static int case_delay(int argc, char **argv) {
  zc_free(zc_malloc(16));
  partial_t b;
  partial_make(&b);
  check_delay("main thread idle", &b);
  partial_done(&b);
  CHECK_DONE(argv[0]);
}

static void *idle_thread(void *arg) {
  partial_t *b = arg;
  partial_make(b);
  check_delay("thread idle", b); /* sleeps and reads mincore only: no allocator call */
  partial_done(b);
  return NULL;
}

static int case_idle(int argc, char **argv) {
  partial_t b;
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, idle_thread, &b) == 0);
  REQUIRE(pthread_join(t, NULL) == 0);
  CHECK_DONE(argv[0]);
}

static int case_budget(int argc, char **argv) {
  long budget = zc_option_get(zc_option_dirty_budget);
  REQUIRE(budget > 0 && (size_t)budget < FREED_TARGET / 4);
  partial_t b;
  partial_make(&b);
  size_t r = partial_resident(&b);
  printf("budget %ld KiB: %zu of %zu KiB of the freed pages resident after the frees\n", budget >> 10, r >> 10,
         b.freed_area >> 10);
  CHECKF(r <= (size_t)budget + PAGE_SIZE_SMALL, "%zu KiB of freed pages resident, over the %ld KiB dirty budget",
         r >> 10, budget >> 10);
  CHECKF(r + PAGE_SIZE_SMALL >= (size_t)budget / 2, "%zu KiB of freed pages resident: the budget keeps at least "
         "half of %ld KiB for reuse", r >> 10, budget >> 10);
  /* the kept pages are reused first (no page fault): a new burst of that size comes out of them */
  size_t before = partial_resident(&b);
  void *again[64];
  for (int i = 0; i < 64; i++) again[i] = zc_malloc(BLOCK);
  CHECK(partial_resident(&b) == before);
  for (int i = 0; i < 64; i++) zc_free(again[i]);
  partial_done(&b);
  CHECK_DONE(argv[0]);
}

/* ZCMEM_PURGE_MODE=1: MADV_FREE keeps the old bytes until memory pressure; calloc must zero anyway. Small
 * and medium blocks: the first block of each segment stays allocated, so the freed pages stay mapped and
 * are purged (not unmapped) by zc_trim, then reused. Large blocks: freed regions stay in the cache, purged. */
static int case_calloc_free(int argc, char **argv) {
  REQUIRE(zc_option_get(zc_option_purge_mode) == 1);
  enum { N = 4096 };
  static void *ps[N];
  static const size_t sizes[] = {48, 1000, 8192, 40000, 200000, 3 << 20};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    size_t sz = sizes[k], n = sz >= 200000 ? 4 : sz >= 8192 ? 512 : N;
    uintptr_t kept_seg[64];
    size_t nkept = 0;
    for (size_t i = 0; i < n; i++) {
      ps[i] = zc_malloc(sz);
      REQUIRE(ps[i] != NULL);
      memset(ps[i], 0xab, sz);
    }
    for (size_t i = 0; i < n; i++) {
      uintptr_t seg = (uintptr_t)ps[i] & ~(SEG_SIZE - 1);
      size_t j = 0;
      while (j < nkept && kept_seg[j] != seg) j++;
      if (j == nkept && nkept < 64 && sz < 200000) {
        kept_seg[nkept++] = seg;
        continue;
      }
      zc_free(ps[i]);
      ps[i] = NULL;
    }
    zc_trim(0); /* purge everything now: MADV_FREE on the empty pages and the cached regions */
    size_t dirty = 0, reused = 0;
    for (size_t i = 0; i < n; i++) {
      if (ps[i] != NULL) continue;
      ps[i] = zc_calloc(1, sz);
      REQUIRE(ps[i] != NULL);
      if (!all_zero(ps[i], sz)) dirty++;
      if (sz >= 200000 || nkept > 0) reused++;
    }
    CHECKF(dirty == 0, "calloc(1, %zu) after a MADV_FREE purge: %zu of %zu blocks not zeroed", sz, dirty, reused);
    for (size_t i = 0; i < n; i++) zc_free(ps[i]);
    zc_trim(0);
  }
  CHECK_DONE(argv[0]);
}

#define BURST ((size_t)512 << 20)

/* A burst: BURST bytes of small blocks, touched; the pointer array is mmap'ed (not counted in RSS once
 * unmapped). */
typedef struct {
  void **ps;
  size_t n, cap, peak;
} burst_t;

static void burst_alloc(burst_t *b) {
  b->cap = BURST / 32;
  b->ps = mmap(NULL, b->cap * sizeof(void *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(b->ps != MAP_FAILED);
  rng_t r;
  rng_seed(&r, 3);
  size_t total = 0;
  b->n = 0;
  while (total < BURST && b->n < b->cap) {
    size_t sz = (rng_next(&r) % 100) < 95 ? (size_t)rng_range(&r, 32, 512) : (size_t)rng_range(&r, 513, 8192);
    void *p = zc_malloc(sz);
    REQUIRE(p != NULL);
    memset(p, 0x11, sz);
    b->ps[b->n++] = p;
    total += sz;
  }
  b->peak = rss_bytes();
}

static void burst_free(burst_t *b) {
  for (size_t i = 0; i < b->n; i++) zc_free(b->ps[i]);
  munmap(b->ps, b->cap * sizeof(void *));
}

/* ---- options ---- */
static const char *const opt_names[zc_option_count] = {
    "ZCMEM_STATS",       "ZCMEM_PURGE_DELAY", "ZCMEM_PURGE_MODE", "ZCMEM_DIRTY_BUDGET", "ZCMEM_LARGE_CACHE",
    "ZCMEM_LARGE_FILE",  "ZCMEM_BACKGROUND",  "ZCMEM_VERBOSE",    "ZCMEM_ABORT_ON_ERROR", "ZCMEM_HUGE_PAGES",
    "ZCMEM_BORROW"};

typedef struct {
  const char *env[3];   /* NAME=value settings, NULL-terminated */
  long want[zc_option_count];
  int warn;             /* a bad value: a warning naming the option is required */
} opt_case_t;

static int print_options(void *arg) {
  const opt_case_t *c = arg;
  for (int i = 0; i < zc_option_count; i++) unsetenv(opt_names[i]);
  for (int i = 0; c->env[i]; i++) putenv((char *)c->env[i]);
  for (int i = 0; i < zc_option_count; i++) fprintf(stderr, "option %d = %ld\n", i, zc_option_get((zc_option_t)i));
  return 0;
}

static void test_options(void) {
  /* documented defaults (zcmem.h) */
  const long def[zc_option_count] = {0, 100, 0, 8L << 20, 1L << 30, 0, 1, 0, 1, 0, 8};
  static opt_case_t cases[] = {
      {{NULL}, {0}, 0},
      {{"ZCMEM_PURGE_DELAY=250", "ZCMEM_STATS=2", NULL}, {0}, 0},
      {{"ZCMEM_DIRTY_BUDGET=4M", "ZCMEM_LARGE_CACHE=1G", NULL}, {0}, 0},
      {{"ZCMEM_LARGE_CACHE=512K", "ZCMEM_DIRTY_BUDGET=12345", NULL}, {0}, 0},
      {{"ZCMEM_BACKGROUND=off", "ZCMEM_HUGE_PAGES=on", NULL}, {0}, 0},
      {{"ZCMEM_BACKGROUND=false", "ZCMEM_LARGE_FILE=true", NULL}, {0}, 0},
      {{"ZCMEM_BACKGROUND=0", "ZCMEM_ABORT_ON_ERROR=0", NULL}, {0}, 0},
      {{"ZCMEM_PURGE_MODE=1", "ZCMEM_VERBOSE=2", NULL}, {0}, 0},
      {{"ZCMEM_BORROW=0", NULL}, {0}, 0},
      {{"ZCMEM_PURGE_DELAY=abc", NULL}, {0}, 1},
      {{"ZCMEM_LARGE_CACHE=12Q", NULL}, {0}, 1},
      {{"ZCMEM_BACKGROUND=maybe", NULL}, {0}, 1},
  };
  const int ncases = (int)(sizeof cases / sizeof cases[0]);
  for (int k = 0; k < ncases; k++) memcpy(cases[k].want, def, sizeof def);
  cases[1].want[zc_option_purge_delay] = 250;
  cases[1].want[zc_option_stats] = 2;
  cases[2].want[zc_option_dirty_budget] = 4L << 20;
  cases[2].want[zc_option_large_cache] = 1L << 30;
  cases[3].want[zc_option_large_cache] = 512L << 10;
  cases[3].want[zc_option_dirty_budget] = 12345;
  cases[4].want[zc_option_background] = 0;
  cases[4].want[zc_option_huge_pages] = 1;
  cases[5].want[zc_option_background] = 0;
  cases[5].want[zc_option_large_file] = 1;
  cases[6].want[zc_option_background] = 0;
  cases[6].want[zc_option_abort_on_error] = 0;
  cases[7].want[zc_option_purge_mode] = 1;
  cases[7].want[zc_option_verbose] = 2;
  cases[8].want[zc_option_borrow] = 0;
  static const char *bad_names[] = {"ZCMEM_PURGE_DELAY", "ZCMEM_LARGE_CACHE", "ZCMEM_BACKGROUND"};
  for (int k = 0; k < ncases; k++) {
    child_result_t r = run_child(print_options, &cases[k], 30);
    const char *env = cases[k].env[0] ? cases[k].env[0] : "(no ZCMEM_* set)";
    CHECKF(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "options child for %s failed", env);
    for (int i = 0; i < zc_option_count; i++) {
      char key[32];
      snprintf(key, sizeof key, "option %d = ", i);
      const char *at = strstr(r.err, key);
      long got = at ? strtol(at + strlen(key), NULL, 10) : -999;
      CHECKF(at && got == cases[k].want[i], "with %s %s: %s is %ld, want %ld", env,
             cases[k].env[1] ? cases[k].env[1] : "", opt_names[i], got, cases[k].want[i]);
    }
    int mentions = 0;
    const char *name = cases[k].warn ? bad_names[k - (ncases - 3)] : NULL;
    for (const char *line = r.err; line && *line;) {
      const char *nl = strchr(line, '\n');
      size_t len = nl ? (size_t)(nl - line) : strlen(line);
      if (name ? strncmp(line, "zcmem:", 6) == 0 && memmem(line, len, name, strlen(name))
               : strncmp(line, "zcmem: warning", 14) == 0 || strncmp(line, "zcmem: error", 12) == 0)
        mentions++;
      line = nl ? nl + 1 : NULL;
    }
    if (cases[k].warn)
      CHECKF(mentions >= 1, "%s: no \"zcmem:\" line naming %s on stderr (at the default verbosity); stderr:\n%s",
             env, name, r.err);
    else CHECKF(mentions == 0, "%s: unexpected zcmem warning or error on stderr:\n%s", env, r.err);
    child_result_free(&r);
  }
  long before = zc_option_get(zc_option_purge_delay);
  zc_option_set(zc_option_purge_delay, before + 7);
  CHECK(zc_option_get(zc_option_purge_delay) == before + 7);
  zc_option_set(zc_option_purge_delay, before);
  printf("options: %d environment cases checked\n", ncases);
}


/* Frees the blocks another thread allocated (remote frees), then idles until the owner has looked
 * (remote_done): neither the owner nor this thread calls the allocator again meanwhile (its exit would). */
static int remote_done;
static void *remote_freer(void *arg) {
  burst_t *b = arg;
  burst_free(b);
  __atomic_store_n(&b->n, 0, __ATOMIC_RELEASE);
  while (!__atomic_load_n(&remote_done, __ATOMIC_ACQUIRE)) sleep_ms(10);
  return NULL;
}

static int case_remote(int argc, char **argv) {
  if (UNDER_HEAVY_SANITIZER) {
    printf("core_purge remote: process RSS means nothing under a shadow-memory sanitizer; skipped\n");
    return 0;
  }
  zc_free(zc_malloc(16)); /* the allocator's own start-up memory counts in the start figure */
  size_t start = rss_bytes();
  burst_t b;
  burst_alloc(&b);
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, remote_freer, &b) == 0);
  while (__atomic_load_n(&b.n, __ATOMIC_ACQUIRE) != 0) sleep_ms(10);
  zc_collect(false); /* the owner takes in what the other thread freed; the purge follows on time */
  long delay = purge_delay_ms(), waited = 0;
  uint64_t t0 = now_ms();
  int ok = WAIT_UNTIL(rss_bytes() <= start + MIB(50), (uint64_t)delay + 60000); /* the purger may wait for a core */
  waited = (long)(now_ms() - t0);
  size_t end = rss_bytes();
  __atomic_store_n(&remote_done, 1, __ATOMIC_RELEASE);
  printf("remote frees: RSS start %zu MiB, peak %zu MiB, after %ld ms %zu MiB\n", start >> 20, b.peak >> 20,
         waited, end >> 20);
  CHECKF(b.peak >= start + MIB(400), "the burst did not raise RSS (start %zu MiB, peak %zu MiB)", start >> 20,
         b.peak >> 20);
  CHECKF(ok, "RSS %zu MiB %ld ms after the remote frees (start %zu MiB, delay %ld ms)", end >> 20, waited,
         start >> 20, delay);
  REQUIRE(pthread_join(t, NULL) == 0);
  CHECK_DONE(argv[0]);
}

static int case_options(int argc, char **argv) {
  test_options();
  CHECK_DONE("core_purge_options");
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {
      {"delay", case_delay},     {"idle", case_idle},       {"budget", case_budget},   {"calloc_free", case_calloc_free},
      {"remote", case_remote},   {"options", case_options}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
