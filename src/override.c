/* Layer 7, the override: libzcmem.so and libzcmem.a export the C and POSIX malloc family, glibc's
 * extensions and its __libc_* names, so LD_PRELOAD or linking replaces the system malloc for the whole
 * process, libc's own calls included (strdup, getline, asprintf, qsort's buffer). The standard names are
 * aliases defined next to each zc_ function (alloc.c, free.c, heap.c, under ZC_OVERRIDE), so the override
 * costs no extra call; this file holds the calls that have nothing to forward to.
 */
#include "internal.h"

/* glibc's tuning call: accepted (returns success), nothing here is tuned through it. */
__attribute__((visibility("default"))) int mallopt(int param, int value) {
  (void)param;
  (void)value;
  return 1;
}
