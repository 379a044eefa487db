/* Test-only stand-in for the core's options and messages (src/options.c) and the segment map's storage
 * (src/segment.c), so the large-region layer can be tested on its own (build-standalone.sh). The CMake
 * build links the real core instead. */
#include "options.h"
#include "segmap.h"

#include <stdio.h>
#include <stdlib.h>

uint8_t zc_segmap[ZC_SEGMAP_ENTRIES];

static long values[zc_option_count] = {
    [zc_option_purge_delay] = 100,
    [zc_option_purge_mode] = 0,
    [zc_option_dirty_budget] = 8L << 20,
    [zc_option_large_cache] = 256L << 20,
    [zc_option_large_file] = 0,
    [zc_option_background] = 1,
};
static unsigned long errors;

long zc_opt(zc_option_t opt) { return __atomic_load_n(&values[opt], __ATOMIC_RELAXED); }
long zc_option_get(zc_option_t opt) { return zc_opt(opt); }
void zc_option_set(zc_option_t opt, long value) { __atomic_store_n(&values[opt], value, __ATOMIC_RELAXED); }
void zc_options_init(void) {}

void zc_error(const char *fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(stderr, "zcmem: error: %s\n", buf);
  fflush(stderr);
  __atomic_fetch_add(&errors, 1, __ATOMIC_RELAXED);
}

void zc_warning(const char *fmt, ...) { (void)fmt; }
unsigned long zc_error_count(void) { return __atomic_load_n(&errors, __ATOMIC_RELAXED); }
