/* Test-only stand-in for src/options.c while the core does not build yet: zc_opt/zc_option_set with the
 * documented defaults (ZCMEM_PURGE_MODE and ZCMEM_PURGE_DELAY read from the environment), zc_error/zc_warning on stderr with a counter.
 * Used only by the standalone build of tests/lifetime (cmake -S tests/lifetime); never part of the library. */
#include "options.h"

#include <stdio.h>
#include <stdlib.h>

static unsigned long errors;

static long values[zc_option_count];

__attribute__((constructor)) static void stub_load(void) {
  const char *v = getenv("ZCMEM_PURGE_MODE");
  values[zc_option_purge_mode] = v ? atol(v) : 0;
  v = getenv("ZCMEM_PURGE_DELAY");
  values[zc_option_purge_delay] = v ? atol(v) : 100;
}

long zc_opt(zc_option_t opt) {
  return (unsigned)opt < zc_option_count ? __atomic_load_n(&values[opt], __ATOMIC_RELAXED) : 0;
}

long zc_option_get(zc_option_t opt) { return zc_opt(opt); }

void zc_option_set(zc_option_t opt, long value) {
  if ((unsigned)opt < zc_option_count) __atomic_store_n(&values[opt], value, __ATOMIC_RELAXED);
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
