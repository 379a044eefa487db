/* Test helpers of the lifetime-allocator tests on top of tests/common (CHECK, CHECKF, CHECK_EQ, REQUIRE):
 * CHECK_REPORTS and TEST_DONE. zc_error_count comes from the library (src/options.h). */
#ifndef ZC_LT_CHECK_H
#define ZC_LT_CHECK_H

#include "zc_check.h" /* tests/common: CHECK, CHECKF, CHECK_EQ, REQUIRE */
#include "zc_rss.h"   /* tests/common: rss_bytes */
#include <stdio.h>

unsigned long zc_error_count(void);
void zc_os_fail_after(long n);

/* The process RSS in KiB (real page size). */
static inline long rss_kib(void) { return (long)(rss_bytes() >> 10); }

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
