/* Tiny test helpers for the lifetime-allocator tests: CHECK prints the failing expression with its line
 * and counts the failure; main returns the count. zc_error_count comes from the library (src/options.h). */
#ifndef ZC_LT_CHECK_H
#define ZC_LT_CHECK_H

#include <stdio.h>

unsigned long zc_error_count(void);
void zc_os_fail_after(long n);

static int check_failures;

#define CHECK(cond)                                                                      \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                    \
      check_failures++;                                                                  \
    }                                                                                    \
  } while (0)

#define CHECK_EQ(a, b)                                                                   \
  do {                                                                                   \
    unsigned long long va_ = (unsigned long long)(a), vb_ = (unsigned long long)(b);     \
    if (va_ != vb_) {                                                                    \
      fprintf(stderr, "FAIL %s:%d: %s == %s (%llu != %llu)\n", __FILE__, __LINE__, #a, #b, \
              va_, vb_);                                                                 \
      check_failures++;                                                                  \
    }                                                                                    \
  } while (0)

/* Run stmt, which must report exactly n errors through zc_error. */
#define CHECK_REPORTS(n, stmt)                                                           \
  do {                                                                                   \
    unsigned long before_ = zc_error_count();                                            \
    fprintf(stderr, "(expected report follows) ");                                       \
    stmt;                                                                                \
    CHECK_EQ(zc_error_count() - before_, (n));                                           \
  } while (0)

#define TEST_DONE(name)                                                                  \
  do {                                                                                   \
    if (check_failures) fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures); \
    else printf("%s: all checks passed\n", name);                                        \
    return check_failures ? 1 : 0;                                                       \
  } while (0)

#endif
