/* Test helpers of the lifetime-allocator tests on top of tests/common (CHECK, CHECKF, CHECK_EQ, REQUIRE):
 * CHECK_REPORTS, check_abort_on_error and TEST_DONE. zc_error_count comes from the library (src/options.h). */
#ifndef ZC_LT_CHECK_H
#define ZC_LT_CHECK_H

#include "zc_check.h" /* tests/common: CHECK, CHECKF, CHECK_EQ, REQUIRE */
#include "zc_rss.h"   /* tests/common: rss_bytes */
#include "zcmem.h"    /* zc_option_set */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* ZCMEM_ABORT_ON_ERROR on a reported bad free: a child sets the option to 0, then to 1, and runs
 * double_free, which makes one bad free and returns 0 if it was reported, counted and changed nothing (what
 * the headers promise with 0). With 0 the child must exit 0, with 1 (the default) die of SIGABRT after the
 * report. */
static inline void check_abort_on_error(int (*double_free)(void)) {
  for (long opt = 0; opt <= 1; opt++) {
    fflush(NULL);
    pid_t c = fork();
    REQUIRE(c >= 0);
    if (c == 0) {
      zc_option_set(zc_option_abort_on_error, opt);
      fprintf(stderr, "(expected report follows) ");
      _exit(double_free() == 0 ? 0 : 3);
    }
    int st = 0;
    REQUIRE(waitpid(c, &st, 0) == c);
    if (opt == 0)
      CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "ZCMEM_ABORT_ON_ERROR=0: the double free did not return (status 0x%x)", st);
    else
      CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "ZCMEM_ABORT_ON_ERROR=1: no abort after the report (status 0x%x)", st);
  }
}

#define TEST_DONE(name)                                                                  \
  do {                                                                                   \
    if (check_failures) fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures); \
    else printf("%s: all checks passed\n", name);                                        \
    return check_failures ? 1 : 0;                                                       \
  } while (0)

#endif
