/* Shared helpers of the core tests: the CHECK macro, a deterministic PRNG, RSS from /proc, and running a
 * piece of the test in a forked child with its stderr captured.
 *
 * Invariant: a failed CHECK prints "file:line: CHECK failed: <expr>" (plus an optional note) on stderr and
 * counts the failure; check_exit() turns any failure into a non-zero exit status. Nothing here allocates
 * through the allocator under test except where the caller asks (capture buffers use mmap).
 *
 * Includes: libc and POSIX headers only. Header-only (static functions), so every test is one .c file.
 */
#ifndef ZC_TEST_CHECK_H
#define ZC_TEST_CHECK_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static int check_failures;

#define CHECK(expr)                                                                                 \
  do {                                                                                              \
    if (!(expr)) {                                                                                  \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr);                      \
      check_failures++;                                                                             \
    }                                                                                               \
  } while (0)

/* CHECK with a printf-style note that explains the values involved. */
#define CHECKF(expr, ...)                                                                           \
  do {                                                                                              \
    if (!(expr)) {                                                                                  \
      fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #expr);                      \
      fprintf(stderr, __VA_ARGS__);                                                                 \
      fputc('\n', stderr);                                                                          \
      check_failures++;                                                                             \
    }                                                                                               \
  } while (0)

/* A failure that makes going on pointless (e.g. NULL where a block is needed). */
#define REQUIRE(expr)                                                                               \
  do {                                                                                              \
    if (!(expr)) {                                                                                  \
      fprintf(stderr, "%s:%d: REQUIRE failed: %s (stopping)\n", __FILE__, __LINE__, #expr);         \
      exit(1);                                                                                      \
    }                                                                                               \
  } while (0)

static inline int check_exit(const char *name) {
  if (check_failures) {
    fprintf(stderr, "%s: %d check(s) FAILED\n", name, check_failures);
    return 1;
  }
  printf("%s: all checks passed\n", name);
  return 0;
}

/* ---- PRNG: splitmix64 seeding a xorshift64* stream; deterministic from the seed ---- */
typedef struct { uint64_t s; } rng_t;

static inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
static inline void rng_seed(rng_t *r, uint64_t seed) {
  r->s = splitmix64(seed);
  if (r->s == 0) r->s = 1;
}
static inline uint64_t rng_next(rng_t *r) {
  uint64_t x = r->s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  r->s = x;
  return x * 0x2545f4914f6cdd1dull;
}
/* Uniform in [lo, hi] (hi - lo small compared to 2^64: the bias is negligible for tests). */
static inline uint64_t rng_range(rng_t *r, uint64_t lo, uint64_t hi) {
  return lo + rng_next(r) % (hi - lo + 1);
}

/* Quick mode (CI): `--quick` on the command line or ZC_TEST_QUICK=1 in the environment (test.sh --quick). */
static inline int quick_mode(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--quick") == 0) return 1;
  const char *e = getenv("ZC_TEST_QUICK");
  return e && *e && strcmp(e, "0") != 0;
}

/* Value of a `key=value` argument, or def. */
static inline unsigned long long arg_value(int argc, char **argv, const char *key, unsigned long long def) {
  size_t kl = strlen(key);
  for (int i = 1; i < argc; i++)
    if (strncmp(argv[i], key, kl) == 0 && argv[i][kl] == '=') return strtoull(argv[i] + kl + 1, NULL, 0);
  return def;
}

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define UNDER_HEAVY_SANITIZER 1 /* shadow memory: RSS and address-space limits mean nothing */
#else
#define UNDER_HEAVY_SANITIZER 0
#endif

/* ---- memory of the process ---- */
static inline size_t rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size = 0, res = 0;
  if (f) {
    if (fscanf(f, "%lu %lu", &size, &res) != 2) res = 0;
    fclose(f);
  }
  return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}
#define MIB(x) ((size_t)(x) << 20)

/* ---- children ---- */

/* Output of a child: its stderr (captured through a pipe into an mmap'ed buffer) and how it ended. */
typedef struct {
  char *err;     /* NUL-terminated captured stderr */
  size_t len;
  int status;    /* waitpid status */
} child_result_t;

#define CHILD_CAPTURE_MAX ((size_t)1 << 20)

/* Fork; the child runs fn(arg) with its stderr sent to a pipe and exits with fn's return value.
 * The parent reads the pipe to EOF and waits. timeout_s > 0 arms alarm() in the child. */
static inline child_result_t run_child(int (*fn)(void *), void *arg, unsigned timeout_s) {
  child_result_t r = {0};
  r.err = mmap(NULL, CHILD_CAPTURE_MAX, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (r.err == MAP_FAILED) {
    perror("mmap");
    exit(2);
  }
  int fds[2];
  if (pipe(fds) != 0) {
    perror("pipe");
    exit(2);
  }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    exit(2);
  }
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 2);
    close(fds[1]);
    if (timeout_s) alarm(timeout_s);
    check_failures = 0; /* the child's verdict is its own */
    int rc = fn(arg);
    fflush(stdout);
    fflush(stderr);
    _exit(rc);
  }
  close(fds[1]);
  for (;;) {
    if (r.len + 1 >= CHILD_CAPTURE_MAX) {
      char sink[4096];
      if (read(fds[0], sink, sizeof sink) <= 0) break;
      continue;
    }
    ssize_t n = read(fds[0], r.err + r.len, CHILD_CAPTURE_MAX - 1 - r.len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    r.len += (size_t)n;
  }
  r.err[r.len] = 0;
  close(fds[0]);
  while (waitpid(pid, &r.status, 0) < 0 && errno == EINTR) {
  }
  return r;
}

static inline void child_result_free(child_result_t *r) {
  if (r->err && r->err != MAP_FAILED) munmap(r->err, CHILD_CAPTURE_MAX);
  r->err = NULL;
}

/* "exit 0", "exit 3", "signal 6 (Aborted)" */
static inline const char *status_str(int status, char *buf, size_t cap) {
  if (WIFEXITED(status))
    snprintf(buf, cap, "exit %d", WEXITSTATUS(status));
  else if (WIFSIGNALED(status))
    snprintf(buf, cap, "signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
  else
    snprintf(buf, cap, "status 0x%x", status);
  return buf;
}

/* Number of lines of text that start with prefix. */
static inline int count_lines_with_prefix(const char *text, const char *prefix) {
  int n = 0;
  size_t pl = strlen(prefix);
  const char *line = text;
  while (line && *line) {
    if (strncmp(line, prefix, pl) == 0) n++;
    const char *nl = strchr(line, '\n');
    line = nl ? nl + 1 : NULL;
  }
  return n;
}

#endif /* ZC_TEST_CHECK_H */
