/* rsswhere: where a program's peak resident memory comes from, under any allocator (a diagnostic, not a
 * benchmark: it slows every malloc and free down).
 *
 *     LD_PRELOAD="<build>/bench/librsswhere.so <allocator.so>" <program>     (glibc: the first one alone)
 *
 * It stands in front of the allocator (its malloc family calls the next one, RTLD_NEXT) and counts the
 * bytes live in blocks (each block's malloc_usable_size, so an allocator's rounding up counts as live), and
 * a thread samples the resident set size every RSSWHERE_US microseconds (default 1000). At exit it prints
 * one line on stderr:
 *
 *     rsswhere peak_rss=<MiB> live_at_peak=<MiB> live_peak=<MiB> live_end=<MiB> samples=<n> [zcmem: ...]
 *
 * peak_rss is the largest resident set size sampled (the first sample that reached it); live_at_peak the
 * live bytes at that sample; live_peak the most ever live; live_end what is live when the line is printed
 * (at exit: what the program never freed). peak_rss minus live_at_peak is what the allocator (and the
 * program's other memory: code, stacks) holds beside the live blocks at the peak. Under zcmem (zc_stats_get found by dlsym) the zcmem figures of that sample follow:
 * allocated (its own count of live bytes, which leaves out blocks in exited threads' segments), committed
 * (pages and regions that may be resident), dirty (empty pages and cached large regions that may be
 * resident), large_cached (the large-region cache's part of dirty) and large_live (regions).
 * The kernel's peak (ru_maxrss) can exceed peak_rss by what happened between two samples.
 * Standard C, pthreads and dl only; it never includes zcmem's headers: the leading fields of zc_stats_t are
 * copied below (bench/selftest.py checks them against include/zcmem.h). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* zc_stats_t's leading fields (include/zcmem.h): only these are read. */
typedef struct {
  uint64_t allocated, committed, purged, reserved, rss, peak_rss, remote_frees, remote_batches, segments,
      large_live, large_cached, threads, abandoned, errors, dirty;
  uint64_t rest[32]; /* room for the fields after dirty, whatever zcmem adds */
} zc_stats_head_t;

static void *(*next_malloc)(size_t);
static void (*next_free)(void *);
static void *(*next_calloc)(size_t, size_t);
static void *(*next_realloc)(void *, size_t);
static int (*next_posix_memalign)(void **, size_t, size_t);
static void *(*next_aligned_alloc)(size_t, size_t);
static void *(*next_memalign)(size_t, size_t);
static size_t (*next_usable)(void *);
static void (*zc_stats)(zc_stats_head_t *);

static _Atomic long live, live_peak;
static _Atomic int resolving;

/* dlsym may calloc before calloc is known: such early requests come from this buffer, never freed. */
static _Alignas(16) unsigned char boot[4096];
static size_t boot_used;
static int from_boot(const void *p) { return (const unsigned char *)p >= boot && (const unsigned char *)p < boot + sizeof boot; }

static void resolve(void) {
  if (next_usable != NULL || atomic_exchange(&resolving, 1)) return;
  next_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
  next_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
  next_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
  next_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
  next_posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
  next_aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
  next_memalign = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "memalign");
  next_usable = (size_t(*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
}

static void count(long d) {
  long v = atomic_fetch_add_explicit(&live, d, memory_order_relaxed) + d;
  long p = atomic_load_explicit(&live_peak, memory_order_relaxed);
  while (v > p && !atomic_compare_exchange_weak_explicit(&live_peak, &p, v, memory_order_relaxed, memory_order_relaxed)) {
  }
}
static void *counted(void *p) {
  if (p != NULL) count((long)next_usable(p));
  return p;
}

void *malloc(size_t n) {
  resolve();
  return counted(next_malloc(n));
}
void free(void *p) {
  if (p == NULL || from_boot(p)) return;
  resolve();
  count(-(long)next_usable(p));
  next_free(p);
}
void *calloc(size_t a, size_t b) {
  if (next_calloc == NULL) { /* dlsym's own request while resolving */
    size_t n = (a * b + 15) & ~(size_t)15;
    if (b != 0 && a > SIZE_MAX / b) return NULL;
    if (boot_used + n > sizeof boot) return NULL;
    void *p = boot + boot_used;
    boot_used += n;
    return p; /* static storage: zeroed */
  }
  return counted(next_calloc(a, b));
}
void *realloc(void *p, size_t n) {
  resolve();
  if (p != NULL && from_boot(p)) {
    void *q = malloc(n);
    if (q != NULL) memcpy(q, p, n < sizeof boot ? n : sizeof boot);
    return q;
  }
  long old = p != NULL ? (long)next_usable(p) : 0;
  void *q = next_realloc(p, n);
  if (q != NULL) count((long)next_usable(q) - old);
  else if (p != NULL && n == 0) count(-old); /* freed (glibc's contract) */
  return q;
}
int posix_memalign(void **out, size_t align, size_t n) {
  resolve();
  int e = next_posix_memalign(out, align, n);
  if (e == 0) counted(*out);
  return e;
}
void *aligned_alloc(size_t align, size_t n) {
  resolve();
  return counted(next_aligned_alloc(align, n));
}
void *memalign(size_t align, size_t n) {
  resolve();
  return counted(next_memalign(align, n));
}

/* ---- the sampler ---- */

static _Atomic int stop;
static pthread_t sampler;
static int sampling;
static long best_rss, best_live;
static long samples;
static zc_stats_head_t best_zc;

static long rss_now(void) {
  char b[128];
  int fd = open("/proc/self/statm", O_RDONLY);
  if (fd < 0) return 0;
  ssize_t k = read(fd, b, sizeof b - 1);
  close(fd);
  if (k <= 0) return 0;
  b[k] = 0;
  unsigned long size, res;
  if (sscanf(b, "%lu %lu", &size, &res) != 2) return 0;
  return (long)res * sysconf(_SC_PAGESIZE);
}

static void *sample(void *arg) {
  (void)arg;
  long us = getenv("RSSWHERE_US") != NULL ? atol(getenv("RSSWHERE_US")) : 1000;
  if (us < 50) us = 50;
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  while (!atomic_load(&stop)) {
    long l = atomic_load_explicit(&live, memory_order_relaxed);
    long r = rss_now();
    zc_stats_head_t z;
    if (zc_stats != NULL) zc_stats(&z);
    samples++;
    if (r > best_rss) {
      best_rss = r;
      best_live = l;
      if (zc_stats != NULL) best_zc = z;
    }
    nanosleep(&ts, NULL);
  }
  return NULL;
}

__attribute__((constructor)) static void rsswhere_start(void) {
  resolve();
  zc_stats = (void (*)(zc_stats_head_t *))dlsym(RTLD_DEFAULT, "zc_stats_get");
  sampling = pthread_create(&sampler, NULL, sample, NULL) == 0;
}

__attribute__((destructor)) static void rsswhere_report(void) {
  if (!sampling) return;
  atomic_store(&stop, 1);
  pthread_join(sampler, NULL);
  sampling = 0;
  const double M = 1048576.0;
  char line[512];
  int n = snprintf(line, sizeof line, "rsswhere peak_rss=%.2f live_at_peak=%.2f live_peak=%.2f live_end=%.2f samples=%ld",
                   best_rss / M, best_live / M, atomic_load(&live_peak) / M, atomic_load(&live) / M, samples);
  if (zc_stats != NULL && n > 0 && (size_t)n < sizeof line)
    snprintf(line + n, sizeof line - (size_t)n,
             " zcmem: allocated=%.2f committed=%.2f dirty=%.2f large_cached=%.2f large_live=%llu",
             best_zc.allocated / M, best_zc.committed / M, best_zc.dirty / M, best_zc.large_cached / M,
             (unsigned long long)best_zc.large_live);
  fprintf(stderr, "%s\n", line);
}
