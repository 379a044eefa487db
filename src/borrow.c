/* Layer 4, malloc's slow path: a request of 1-64 KiB (ZC_BORROW_MIN_CLASS and up) served from a block
 * already carved for one of the next classes up, before fresh memory is carved for its own class.
 *
 * Why: every class has its own pages, so the memory carved for a class follows the most blocks of that
 * class ever live at once. For the rarer medium classes (10-64 KiB) that maximum is far above the mean: in
 * bench/prodcons (about 7 medium messages in flight over 12 classes) each class peaked at 3-5 carved blocks,
 * 1.5 MiB of 128 KiB pages for ~250 KiB live. A free block of a class at most ZCMEM_BORROW classes up
 * (4 classes per doubling: at most 1.5x the size for 2) is already resident: taking it costs no page fault
 * and no new memory, and the block goes back to its own page when freed, as any block of that page. The
 * default reach is 8 classes (two doublings: at most 4x the size) and classes from 1 KiB borrow as well as
 * the medium ones (docs/design.md has the figures: fewer faults and a lower peak on bench/prodcons,
 * prodcons-2x2 and xmalloc, whose 1-16 KiB blocks are rare enough that each class peaks far above its mean).
 *
 * A lender's blocks are at least as aligned as the borrower's (class_align). Only the first page of each
 * larger queue is looked at (the one its own mallocs would take from), with the same collect as its own
 * refill: O(ZCMEM_BORROW) per call, under h->lock like the rest of page_for_class. Its queue and current
 * page do not change. Measured figures: docs/design.md, "Page queues and reuse".
 */
#include "internal.h"

/* The alignment every block of a class of this size has: pages start 4 KiB-aligned, so the lowest set bit of
 * the size, up to 4 KiB. aligned_alloc relies on it (alloc.c, alloc_aligned: a class whose size is a
 * multiple of the alignment), so a class lends only to classes whose blocks are not more aligned. */
static uint32_t class_align(uint32_t size) {
  uint32_t a = size & (0u - size);
  return a < ZC_NATURAL_ALIGN_MAX ? a : (uint32_t)ZC_NATURAL_ALIGN_MAX;
}

zc_page_t *zc_borrow_larger(zc_heap_t *h, unsigned cls) {
  unsigned up = (unsigned)zc_opt(zc_option_borrow);
  uint32_t align = class_align(zc_class_size[cls]);
  for (unsigned c = cls + 1; c <= cls + up && c < ZC_CLASS_COUNT; c++) {
    zc_page_t *pg = h->queues[c].first;
    if (pg == NULL || class_align(zc_class_size[c]) < align) continue;
    if (pg->free != NULL || zc_page_collect(pg)) return pg;
    if (pg->state == ZC_PAGE_BROKEN) zc_heap_page_broken(h, pg);
  }
  return NULL;
}
