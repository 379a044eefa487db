/* The owner's small free tests "p is a carved block start" with the page descriptor's 32-bit grid and limit
 * (internal.h zc_block_ok_small: one 32-bit multiply and one compare); every other block test uses the
 * remote line's 64-bit grid. The 32-bit divisibility test is exact only for some pairs of block size and
 * offset range, so this checks, for every size class, on a real page of that class, that it is exact for
 * every offset the owner's free can form there: p anywhere in the page's area (64 KiB in a small segment,
 * 128 KiB in a medium one; page 0's area begins 16 KiB below its first block, at the segment header, so
 * offsets also wrap to 2^32 - 16 KiB .. 2^32). A copy of the descriptor gets the 32-bit limit of three
 * capacities (1, half and all of the blocks the area holds, as zc_page_set_span computes it), and at each
 * the test must pass exactly the block starts below the capacity. A page of a small segment must have the
 * 32-bit test (its owner's fast path uses it); a page without one (grid32 0) must be a medium segment's,
 * with limit32 0 (every pointer fails). The remote line's grid must be the 64-bit one.
 * Fails if the 32-bit grid is computed without the +1 for powers of two, or if a medium page (56 and 64 KiB
 * classes: the pointer one byte past a block start passes) is given one.
 * Links zcmem_prefixed (the descriptor is internal).
 */
#include "zc_test.h" /* first: it defines _GNU_SOURCE */
#include "internal.h"
#include "zcmem.h"

static void check_class(unsigned k) {
  size_t d = zc_class_size[k];
  void *b = zc_malloc(d);
  REQUIRE(b != NULL);
  zc_segment_t *s = zc_segment_of(b);
  zc_page_t *pg = zc_page_of(s, b);
  zc_page_remote_t *r = zc_page_remote(pg);
  CHECKF(pg->block_size == d, "class %u: the block's page has block size %u", k, pg->block_size);
  uint64_t g64 = UINT64_MAX / d + 1 + ((d & (d - 1)) == 0);
  CHECKF(r->grid == g64, "class %u (%zu B): remote grid %llu, want %llu", k, d, (unsigned long long)r->grid,
         (unsigned long long)g64);
  int medium = s->kind != ZC_SEG_SMALL;
  if (pg->grid32 == 0) {
    CHECKF(medium && pg->limit32 == 0, "class %u (%zu B): %s page without a 32-bit grid, limit32 %u", k, d,
           medium ? "a medium" : "a small", pg->limit32);
    zc_free(b);
    return;
  }
  uint32_t area = 1u << (medium ? ZC_MEDIUM_PAGE_SHIFT : ZC_SMALL_PAGE_SHIFT), head = (uint32_t)ZC_SEGMENT_HEADER;
  uint32_t all = area / (uint32_t)d;
  uint32_t caps[3] = {1, all / 2 ? all / 2 : 1, all};
  unsigned bad = 0;
  for (int c = 0; c < 3; c++) {
    zc_page_t copy = *pg;
    copy.limit32 = caps[c] * (uint32_t)(copy.grid32 * (uint32_t)d);
    for (uint64_t i = 0; i < (uint64_t)area + head && bad < 5; i++) {
      uint32_t off = i < area ? (uint32_t)i : (uint32_t)(0u - (uint32_t)(i - area + 1)); /* below start */
      const void *p = (const void *)((uintptr_t)copy.start + (uintptr_t)(int64_t)(int32_t)off);
      bool want = off < area && off % d == 0 && off / d < caps[c];
      if (zc_block_ok_small(&copy, p) != want) {
        CHECKF(0, "class %u (%zu B), capacity %u: offset %ld %s", k, d, caps[c], (long)(int32_t)off,
               want ? "rejected" : "accepted");
        bad++;
      }
    }
  }
  /* the live descriptor's own limit is that of its capacity */
  CHECKF(pg->limit32 == pg->capacity * (uint32_t)(pg->grid32 * (uint32_t)d), "class %u: limit32 %u, capacity %u",
         k, pg->limit32, pg->capacity);
  zc_free(b);
}

int main(void) {
  for (unsigned k = 1; k < ZC_CLASS_COUNT; k++) check_class(k);
  return check_exit("core_grid32");
}
