/* malloc's class table for 1 KiB < n <= 64 KiB (alloc.c: zc_mid_class, one byte per 256 bytes of request)
 * against the size-class grid: for every n in that range the table gives zc_size_class(n), and the block
 * malloc hands out for n has a usable size of at least n and at most that class's size (every n, not a
 * sample: a table entry off by one bucket shows at the bucket's edge only).
 * Links zcmem_prefixed (zc_mid_class is internal).
 */
#include "zc_test.h" /* first: it defines _GNU_SOURCE */
#include "internal.h"
#include "zcmem.h"

int main(void) {
  unsigned bad = 0;
  for (size_t n = ZC_DIRECT_MAX + 1; n <= ZC_SMALL_MAX; n++) {
    unsigned want = zc_size_class(n), got = zc_mid_class[(n - 1) >> 8];
    if (got != want) {
      CHECKF(0, "zc_mid_class for n=%zu: class %u, zc_size_class says %u", n, got, want);
      if (++bad > 10) break;
    }
  }
  for (size_t n = ZC_DIRECT_MAX + 1; n <= ZC_SMALL_MAX && check_failures < 20; n++) {
    void *p = zc_malloc(n);
    REQUIRE(p != NULL);
    size_t u = zc_usable_size(p);
    CHECKF(u >= n && u <= zc_class_size[zc_size_class(n)], "zc_usable_size(zc_malloc(%zu)) = %zu, class size %u",
           n, u, zc_class_size[zc_size_class(n)]);
    zc_free(p);
  }
  return check_exit("core_midclass");
}
