/* The size-class grid of src/sizeclass.h against its contract: for every request 1..64 KiB the class is
 * the smallest one that holds it, classes grow strictly, multiples of 16 up to 64 B (so every request gets
 * a 16-aligned block, and every block has room for a link and a tag), four classes per doubling above, and
 * the waste above 64 B is at most 25% of the request. Also the allocator's usable size
 * follows the grid (a small block's usable size is at least the request and at most its class size).
 * Links zcmem_prefixed (for zc_class_size and zc_usable_size).
 */
#include "check.h"
#include "sizeclass.h"
#include "zcmem.h"

int main(void) {
  /* the table itself: index 1..44, strictly increasing, last = ZC_SMALL_MAX */
  CHECK(ZC_CLASS_COUNT == 45);
  for (unsigned c = 2; c < ZC_CLASS_COUNT; c++)
    CHECKF(zc_class_size[c] > zc_class_size[c - 1], "class %u size %u <= class %u size %u", c, zc_class_size[c],
           c - 1, zc_class_size[c - 1]);
  CHECKF(zc_class_size[ZC_CLASS_COUNT - 1] == ZC_SMALL_MAX, "last class %u", zc_class_size[ZC_CLASS_COUNT - 1]);
  CHECK(zc_class_block_size(1) == 16);
  /* multiples of 16 up to 64 B */
  for (unsigned c = 1; c <= 4; c++) CHECKF(zc_class_size[c] == 16 * c, "class %u size %u", c, zc_class_size[c]);
  /* four classes per doubling above 64 B: each power of two 128..64K is a class, 4 classes after the previous */
  for (unsigned c = 4; c + 4 < ZC_CLASS_COUNT; c += 4)
    CHECKF(zc_class_size[c + 4] == 2 * zc_class_size[c], "class %u (%u) is not twice class %u (%u)", c + 4,
           zc_class_size[c + 4], c, zc_class_size[c]);
  /* every block size is a multiple of 16 (16-byte alignment, max_align_t) */
  for (unsigned c = 1; c < ZC_CLASS_COUNT; c++) CHECKF(zc_class_size[c] % 16 == 0, "class %u", c);
  CHECK(zc_size_class(0) == 1);

  unsigned prev = 0, bad = 0;
  for (size_t n = 1; n <= ZC_SMALL_MAX; n++) {
    unsigned c = zc_size_class(n);
    if (c < 1 || c >= ZC_CLASS_COUNT) {
      CHECKF(0, "zc_size_class(%zu) = %u out of range", n, c);
      if (++bad > 10) break;
      continue;
    }
    size_t sz = zc_class_size[c];
    int ok = 1;
    ok &= sz >= n;                                  /* holds the request */
    ok &= c == 1 || zc_class_size[c - 1] < n;       /* the previous class does not */
    ok &= c >= prev && c <= prev + 1;               /* monotonic, no class skipped */
    if (n <= 64) ok &= sz == ((n + 15) & ~(size_t)15); /* the next multiple of 16 */
    else ok &= (sz - n) * 4 <= n;                   /* waste <= 25% of the request */
    if (!ok) {
      CHECKF(0, "n=%zu: class %u of size %zu (previous class size %u, class of n-1 %u)", n, c, sz,
             c > 1 ? zc_class_size[c - 1] : 0, prev);
      if (++bad > 10) break;
    }
    prev = c;
  }
  CHECK(prev == ZC_CLASS_COUNT - 1);

  /* the allocator serves each small request from its class */
  for (size_t n = 1; n <= ZC_SMALL_MAX; n += (n < 1024 ? 1 : 97)) {
    void *p = zc_malloc(n);
    REQUIRE(p != NULL);
    size_t u = zc_usable_size(p);
    CHECKF(u >= n && u <= zc_class_size[zc_size_class(n)], "zc_usable_size(zc_malloc(%zu)) = %zu, class size %u",
           n, u, zc_class_size[zc_size_class(n)]);
    zc_free(p);
    if (check_failures > 20) break;
  }
  return check_exit("core_sizeclass");
}
