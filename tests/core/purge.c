/* Purging and options.
 *
 *   core_purge main:    allocate ~512 MiB in small blocks (mostly 32..512 B), free them all, then sleep
 *                       (no allocator call): within the purge delay plus a margin, RSS is back within
 *                       50 MiB of where it started. Also run with ZCMEM_PURGE_DELAY=0.
 *   core_purge idle:    the same burst made and freed by a thread that then sleeps without exiting.
 *   core_purge remote:  the main thread allocates the burst, another thread frees it all (remote frees)
 *                       and sleeps. Blocks freed by another thread go back to their owner's pages, which
 *                       only the owner may touch: the memory returns once the owner calls the allocator
 *                       again (here zc_collect(false), the idle-hook call) or exits (docs/design.md).
 *   core_purge options: children started with ZCMEM_* set print zc_option_get(): K/M/G suffixes,
 *                       true/false/on/off, the documented defaults, and a bad value is warned about on
 *                       stderr and leaves the default.
 * Links zcmem_prefixed (zc_* API; RSS is the process's).
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"

#include <pthread.h>
#include <time.h>

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

/* Allocate a burst, free it all. Returns the RSS at the peak. */
static size_t burst(void) {
  burst_t b;
  burst_alloc(&b);
  burst_free(&b);
  return b.peak;
}

/* Wait (sleeping) until RSS <= bound or the deadline passes; returns the last RSS. */
static size_t wait_rss(size_t bound, long deadline_ms, long *waited) {
  uint64_t t0 = now_ms();
  size_t rss = rss_bytes();
  while (rss > bound && (long)(now_ms() - t0) < deadline_ms) {
    sleep_ms(20);
    rss = rss_bytes();
  }
  *waited = (long)(now_ms() - t0);
  return rss;
}

static long purge_delay_ms(void) {
  long d = zc_option_get(zc_option_purge_delay);
  const char *e = getenv("ZCMEM_PURGE_DELAY");
  if (e) CHECKF(d == strtol(e, NULL, 10), "ZCMEM_PURGE_DELAY=%s but zc_option_get says %ld", e, d);
  return d;
}

static void check_returned(const char *what, size_t start, size_t peak) {
  long delay = purge_delay_ms();
  long deadline = delay + 1000; /* one purge delay plus a margin for the purger's period */
  long waited;
  size_t end = wait_rss(start + MIB(50), deadline, &waited);
  zc_stats_t st;
  zc_stats_get(&st);
  printf("%s: purge delay %ld ms; RSS start %zu MiB, peak %zu MiB, after %ld ms %zu MiB; purged %llu MiB\n", what,
         delay, start >> 20, peak >> 20, waited, end >> 20, (unsigned long long)(st.purged >> 20));
  CHECKF(peak >= start + MIB(400), "the burst did not raise RSS (start %zu MiB, peak %zu MiB)", start >> 20,
         peak >> 20);
  CHECKF(end <= start + MIB(50), "%s: RSS %zu MiB %ld ms after freeing 512 MiB (start %zu MiB, delay %ld ms)",
         what, end >> 20, waited, start >> 20, delay);
}

static void *idle_thread(void *arg) {
  size_t *peak = arg;
  *peak = burst();
  sleep_ms(purge_delay_ms() + 3000); /* idle: holds its (empty) heap, calls nothing */
  return NULL;
}

/* Frees the blocks another thread allocated (remote frees), then idles: neither the owner nor this
 * thread calls the allocator again. */
static void *remote_freer(void *arg) {
  burst_t *b = arg;
  burst_free(b);
  __atomic_store_n(&b->n, 0, __ATOMIC_RELEASE);
  sleep_ms(purge_delay_ms() + 3000);
  return NULL;
}

/* ---- options ---- */
static const char *const opt_names[zc_option_count] = {
    "ZCMEM_STATS",       "ZCMEM_PURGE_DELAY", "ZCMEM_PURGE_MODE", "ZCMEM_DIRTY_BUDGET", "ZCMEM_LARGE_CACHE",
    "ZCMEM_LARGE_FILE",  "ZCMEM_BACKGROUND",  "ZCMEM_VERBOSE",    "ZCMEM_ABORT_ON_ERROR", "ZCMEM_HUGE_PAGES"};

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
  const long def[zc_option_count] = {0, 100, 0, 8L << 20, 1L << 30, 0, 1, 0, 0, 0};
  static opt_case_t cases[] = {
      {{NULL}, {0}, 0},
      {{"ZCMEM_PURGE_DELAY=250", "ZCMEM_STATS=2", NULL}, {0}, 0},
      {{"ZCMEM_DIRTY_BUDGET=4M", "ZCMEM_LARGE_CACHE=1G", NULL}, {0}, 0},
      {{"ZCMEM_LARGE_CACHE=512K", "ZCMEM_DIRTY_BUDGET=12345", NULL}, {0}, 0},
      {{"ZCMEM_BACKGROUND=off", "ZCMEM_HUGE_PAGES=on", NULL}, {0}, 0},
      {{"ZCMEM_BACKGROUND=false", "ZCMEM_LARGE_FILE=true", NULL}, {0}, 0},
      {{"ZCMEM_BACKGROUND=0", "ZCMEM_ABORT_ON_ERROR=1", NULL}, {0}, 0},
      {{"ZCMEM_PURGE_MODE=1", "ZCMEM_VERBOSE=2", NULL}, {0}, 0},
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
  cases[6].want[zc_option_abort_on_error] = 1;
  cases[7].want[zc_option_purge_mode] = 1;
  cases[7].want[zc_option_verbose] = 2;
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

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "main";
  if (strcmp(mode, "options") == 0) {
    test_options();
    return check_exit("core_purge_options");
  }
#if UNDER_HEAVY_SANITIZER
  printf("core_purge: RSS checks are meaningless under a shadow-memory sanitizer; not built for it\n");
  return 1;
#endif
  zc_free(zc_malloc(16)); /* the allocator's own start-up memory counts in the start figure */
  size_t start = rss_bytes();
  if (strcmp(mode, "main") == 0) {
    size_t peak = burst();
    check_returned("main thread", start, peak);
    return check_exit("core_purge_main");
  }
  if (strcmp(mode, "idle") == 0) {
    size_t peak = 0;
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, idle_thread, &peak) == 0);
    /* wait until the thread has freed its burst (peak set), then watch RSS while it idles */
    while (__atomic_load_n(&peak, __ATOMIC_ACQUIRE) == 0) sleep_ms(10);
    check_returned("idle thread", start, peak);
    pthread_join(t, NULL);
    return check_exit("core_purge_idle");
  }
  if (strcmp(mode, "remote") == 0) {
    burst_t b;
    burst_alloc(&b);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, remote_freer, &b) == 0);
    while (__atomic_load_n(&b.n, __ATOMIC_ACQUIRE) != 0) sleep_ms(10);
    zc_collect(false); /* the owner takes in what the other thread freed; the purge follows on time */
    check_returned("remote frees, then the owner collects once", start, b.peak);
    pthread_join(t, NULL);
    return check_exit("core_purge_remote");
  }
  fprintf(stderr, "usage: %s main|idle|remote|options\n", argv[0]);
  return 2;
}
