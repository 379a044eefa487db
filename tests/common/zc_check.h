/* Check macros of the tests: a failed check names the file, the line and the expression on stderr and
 * counts the failure; check_exit() (or CHECK_DONE) turns any failure into a non-zero exit status.
 *
 *   CHECK(expr)               count a failure if expr is false, go on
 *   CHECKF(expr, fmt, ...)    the same with a printf-style note naming the values involved
 *   CHECK_EQ(a, b)            a == b as unsigned long long, both values printed on failure
 *   REQUIRE(expr)             a failure that makes going on pointless: print and exit(1)
 *   REQUIREF(expr, fmt, ...)  the same with a printf-style note and the process id (tests that fork: a
 *                             child's failure is its exit status, the parent checks it with reap())
 *
 * Invariant: nothing here allocates through the allocator under test (stdio's stderr is unbuffered).
 * Includes: libc and unistd.h only. Header-only, static functions: every test stays one .c file.
 */
#ifndef ZC_TEST_CHECK_H
#define ZC_TEST_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int check_failures;

#define CHECK(expr)                                                                                 \
  do {                                                                                              \
    if (!(expr)) {                                                                                  \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr);                      \
      check_failures++;                                                                             \
    }                                                                                               \
  } while (0)

/* Prints a failed check with its note (printf-style, so the compiler checks the format against the values);
 * a fatal one exits 1, naming the process, else it is counted. */
__attribute__((format(printf, 5, 6))) static inline void check_fail_(int fatal, const char *file, int line,
                                                                      const char *expr, const char *fmt, ...) {
  va_list ap;
  if (fatal)
    fprintf(stderr, "%s:%d: [pid %d] REQUIRE failed: %s: ", file, line, (int)getpid(), expr);
  else
    fprintf(stderr, "%s:%d: CHECK failed: %s: ", file, line, expr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  if (fatal) exit(1);
  check_failures++;
}

#define CHECKF(expr, ...)                                                                           \
  do {                                                                                              \
    if (!(expr)) check_fail_(0, __FILE__, __LINE__, #expr, __VA_ARGS__);                            \
  } while (0)

#define CHECK_EQ(a, b)                                                                              \
  do {                                                                                              \
    unsigned long long va_ = (unsigned long long)(a), vb_ = (unsigned long long)(b);                \
    if (va_ != vb_) {                                                                               \
      fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%llu != %llu)\n", __FILE__, __LINE__, #a, #b, \
              va_, vb_);                                                                            \
      check_failures++;                                                                             \
    }                                                                                               \
  } while (0)

#define REQUIRE(expr)                                                                               \
  do {                                                                                              \
    if (!(expr)) {                                                                                  \
      fprintf(stderr, "%s:%d: REQUIRE failed: %s (stopping)\n", __FILE__, __LINE__, #expr);         \
      exit(1);                                                                                      \
    }                                                                                               \
  } while (0)

#define REQUIREF(expr, ...)                                                                         \
  do {                                                                                              \
    if (!(expr)) {                                                                                  \
      check_fail_(1, __FILE__, __LINE__, #expr, __VA_ARGS__);                                       \
      exit(1); /* not reached: tells the compiler */                                                \
    }                                                                                               \
  } while (0)

/* The verdict of a test program: prints "name: all checks passed" or the failure count; 0 or 1. */
static inline int check_exit(const char *name) {
  if (check_failures) {
    fprintf(stderr, "%s: %d check(s) FAILED\n", name, check_failures);
    return 1;
  }
  printf("%s: all checks passed\n", name);
  return 0;
}
#define CHECK_DONE(name) return check_exit(name)

#define MIB(x) ((size_t)(x) << 20)

#endif /* ZC_TEST_CHECK_H */
