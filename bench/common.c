/* Shared helpers of the benchmark programs (see common.h). Parameters are parsed once at start-up into
 * a small table; every key must be read by the program before zb_params_done(), so a typo in the
 * runner's table fails loudly instead of silently running the defaults. */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ZB_MAX_PARAMS 32

static struct {
  const char *name;
  bool quick;
  int count;
  struct { const char *key, *value; bool used; } p[ZB_MAX_PARAMS];
} zb;

void zb_init(int argc, char **argv, const char *bench_name) {
  zb.name = bench_name;
  for (int i = 1; i < argc; i++) {
    char *a = argv[i];
    if (strcmp(a, "-q") == 0) { zb.quick = true; continue; }
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fprintf(stderr, "usage: %s [-q] [key=value ...]  (see docs/benchmarks.md)\n", argv[0]);
      exit(0);
    }
    char *eq = strchr(a, '=');
    if (eq == NULL || eq == a || zb.count == ZB_MAX_PARAMS) {
      fprintf(stderr, "%s: bad argument '%s' (expected -q or key=value)\n", bench_name, a);
      exit(2);
    }
    *eq = '\0';
    zb.p[zb.count].key = a;
    zb.p[zb.count].value = eq + 1;
    zb.count++;
  }
}

bool zb_quick(void) { return zb.quick; }

static const char *zb_lookup(const char *key) {
  for (int i = zb.count - 1; i >= 0; i--) {  /* the last occurrence wins */
    if (strcmp(zb.p[i].key, key) == 0) {
      for (int j = 0; j < zb.count; j++)
        if (strcmp(zb.p[j].key, key) == 0) zb.p[j].used = true;
      return zb.p[i].value;
    }
  }
  return NULL;
}

uint64_t zb_param(const char *key, uint64_t full, uint64_t quick) {
  const char *v = zb_lookup(key);
  if (v == NULL) return zb.quick ? quick : full;
  char *end;
  errno = 0;
  unsigned long long x = strtoull(v, &end, 0);
  if (end == v || errno != 0 || v[0] == '-') {
    fprintf(stderr, "%s: %s=%s is not a non-negative number\n", zb.name, key, v);
    exit(2);
  }
  switch (*end) {
  case 'k': case 'K': x <<= 10; end++; break;
  case 'm': case 'M': x <<= 20; end++; break;
  case 'g': case 'G': x <<= 30; end++; break;
  default: break;
  }
  if (*end != '\0') {
    fprintf(stderr, "%s: %s=%s has trailing characters\n", zb.name, key, v);
    exit(2);
  }
  return x;
}

const char *zb_param_str(const char *key, const char *dflt) {
  const char *v = zb_lookup(key);
  return v != NULL ? v : dflt;
}

void zb_params_done(void) {
  bool bad = false;
  for (int i = 0; i < zb.count; i++) {
    if (!zb.p[i].used) {
      fprintf(stderr, "%s: unknown parameter '%s'\n", zb.name, zb.p[i].key);
      bad = true;
    }
  }
  if (bad) exit(2);
}

void zb_report(const char *metric, double value, const char *unit, bool higher_is_better) {
  printf("zcbench bench=%s metric=%s value=%.6g unit=%s better=%s\n", zb.name, metric, value, unit,
         higher_is_better ? "higher" : "lower");
  fflush(stdout);
}

void zb_die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: ", zb.name ? zb.name : "bench");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

void *zb_xmalloc(size_t size) {
  void *p = malloc(size);
  if (p == NULL) zb_die("malloc(%zu) returned NULL", size);
  return p;
}

double zb_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double zb_run_threads(unsigned n, void *(*fn)(void *), pthread_barrier_t *start) {
  pthread_t th[256];
  if (n < 1 || n > 256) zb_die("threads must be 1..256");
  pthread_barrier_init(start, NULL, n + 1);
  for (unsigned i = 0; i < n; i++)
    if (pthread_create(&th[i], NULL, fn, (void *)(uintptr_t)i) != 0) zb_die("pthread_create failed");
  pthread_barrier_wait(start);
  double t0 = zb_now();
  for (unsigned i = 0; i < n; i++) pthread_join(th[i], NULL);
  return zb_now() - t0;
}

size_t zb_rss_bytes(void) {
  /* statm: size resident shared text lib data dt, in pages. Read with plain syscalls-backed stdio is
   * fine here: the benchmark, not the allocator, owns this call. */
  FILE *f = fopen("/proc/self/statm", "r");
  if (f == NULL) zb_die("cannot open /proc/self/statm: %s", strerror(errno));
  unsigned long size = 0, resident = 0;
  int n = fscanf(f, "%lu %lu", &size, &resident);
  fclose(f);
  if (n != 2) zb_die("cannot parse /proc/self/statm");
  return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

void zb_sleep(double seconds) {
  struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* The phase marks. faccessat is called through syscall() so that the libc cannot answer it without the
 * kernel (or turn it into another system call) and the strace pass sees exactly this call. */
static struct rusage zb_phase_ru;

static void zb_phase_mark(const char *path) {
  (void)syscall(SYS_faccessat, AT_FDCWD, path, F_OK, 0);
}

static double zb_tv(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6; }

void zb_phase_begin(void) {
  zb_phase_mark("/zcbench-phase/begin");
  if (getrusage(RUSAGE_SELF, &zb_phase_ru) != 0) zb_die("getrusage failed: %s", strerror(errno));
}

void zb_phase_end(uint64_t ops) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) zb_die("getrusage failed: %s", strerror(errno));
  zb_phase_mark("/zcbench-phase/end");
  if (ops == 0) return;
  double cpu = zb_tv(ru.ru_utime) + zb_tv(ru.ru_stime) - zb_tv(zb_phase_ru.ru_utime) -
               zb_tv(zb_phase_ru.ru_stime);
  zb_report("ops_done", (double)ops, "op", true);
  double faults = (double)(ru.ru_minflt - zb_phase_ru.ru_minflt);
  zb_report("faults_per_op", faults / (double)ops, "faults/op", false);
  zb_report("cpu_us_per_op", cpu * 1e6 / (double)ops, "us/op", false);
}

static unsigned zb_log2(size_t x) { return 63u - (unsigned)__builtin_clzll((unsigned long long)x); }

size_t zb_size_loguniform(zb_rng *r, size_t lo, size_t hi) {
  if (lo < 1) lo = 1;
  if (hi <= lo + 1) return lo;
  unsigned a = zb_log2(lo), b = zb_log2(hi - 1);
  for (;;) {
    unsigned e = a + (unsigned)zb_below(r, b - a + 1);
    size_t base = (size_t)1 << e;
    size_t s = base + (size_t)zb_below(r, base);
    if (s >= lo && s < hi) return s;  /* the partial bands at both ends are trimmed by rejection */
  }
}

size_t zb_size_pareto(zb_rng *r, size_t lo, size_t hi) {
  for (;;) {
    /* u uniform in (0, 1]: size = lo / u has P(size > x) = lo / x. */
    double u = (double)((zb_rand(r) >> 11) + 1) * (1.0 / 9007199254740992.0);
    double s = (double)lo / u;
    if (s < (double)hi) return (size_t)s;
  }
}

size_t zb_size_message(zb_rng *r) {
  uint64_t band = zb_below(r, 100);
  if (band < 90) return zb_size_loguniform(r, 32, 257);
  if (band < 99) return zb_size_loguniform(r, 257, 4097);
  return zb_size_loguniform(r, 4097, 65537);
}

void zb_fill(void *p, size_t size, uint64_t seed) {
  unsigned char *b = p;
  if (size >= 16) {
    uint64_t h[2] = {size, seed};
    memcpy(b, h, 16);
    memset(b + 16, (int)(seed & 0xff), size - 16);
  } else {
    memset(b, (int)(seed & 0xff), size);
  }
}

void zb_check(const void *p, size_t size, uint64_t seed) {
  const unsigned char *b = p;
  unsigned char c = (unsigned char)(seed & 0xff);
  if (size >= 16) {
    uint64_t h[2];
    memcpy(h, b, 16);
    if (h[0] != size || h[1] != seed)
      zb_die("corrupt block %p: header (%llu, %llu), expected (%zu, %llu)", p, (unsigned long long)h[0],
             (unsigned long long)h[1], size, (unsigned long long)seed);
    if (size > 16 && (b[16] != c || b[16 + (size - 16) / 2] != c || b[size - 1] != c))
      zb_die("corrupt payload in block %p of %zu bytes", p, size);
  } else if (size > 0 && (b[0] != c || b[size - 1] != c)) {
    zb_die("corrupt block %p of %zu bytes", p, size);
  }
}
