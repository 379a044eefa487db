/* Test-only stand-in for src/options.c while the core does not build yet: zc_opt with the documented
 * defaults (ZCMEM_PURGE_MODE read from the environment), zc_error/zc_warning on stderr with a counter.
 * Used only by the standalone build of tests/lifetime (cmake -S tests/lifetime); never part of the library. */
#include "options.h"

#include <stdio.h>
#include <stdlib.h>

static unsigned long errors;

long zc_opt(zc_option_t opt) {
  if (opt == zc_option_purge_mode) {
    const char *v = getenv("ZCMEM_PURGE_MODE");
    return v ? atol(v) : 0;
  }
  return 0;
}

void zc_options_init(void) {}

void zc_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("zcmem: error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  __atomic_fetch_add(&errors, 1, __ATOMIC_RELAXED);
}

void zc_warning(const char *fmt, ...) { (void)fmt; }

unsigned long zc_error_count(void) { return __atomic_load_n(&errors, __ATOMIC_RELAXED); }
