/* Layer 4, malloc's slow path, for the medium-sized blocks: a request of 2.5-64 KiB (ZC_BORROW_MIN_CLASS
 * and up) served from a block already carved for one of the next classes up, before fresh memory is carved
 * for its own class; and the walk of a heap's medium pages every half purge delay, which purges the OS
 * pages inside blocks left free (zc_medium_trim, below).
 *
 * Why: every class has its own pages, so the memory carved for a class follows the most blocks of that
 * class ever live at once. For the rarer medium classes (10-64 KiB) that maximum is far above the mean: in
 * bench/prodcons (about 7 medium messages in flight over 12 classes) each class peaked at 3-5 carved blocks,
 * 1.5 MiB of 128 KiB pages for ~250 KiB live. A free block of a class at most ZCMEM_BORROW classes up
 * (4 classes per doubling: at most 1.5x the size for 2) is already resident: taking it costs no page fault
 * and no new memory, and the block goes back to its own page when freed, as any block of that page. The
 * default reach is 8 classes (two doublings: at most 4x the size) and classes above 2 KiB borrow as well as
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

/* ---- the free 4 KiB pages inside partly used medium pages ----
 *
 * A medium page in use keeps every block its class ever had out at once carved and resident: the free
 * blocks of a page that still holds a live block serve only their own class (and, by the borrowing above,
 * the classes below). Every half purge delay, on a malloc slow path (the owner's, under h->lock),
 * zc_medium_trim walks the free lists the owner holds (free and local_free; blocks other threads freed wait
 * on thread_free until a refill takes them in, and are walked after that) of the heap's medium pages, and
 * purges the whole OS pages inside every free block that was free at the walk before too (free for at least
 * half a delay). The first OS page of a block stays: it holds the block's link and free tag,
 * and its third word, which marks the block "free at the last walk" (TRIM_SEEN) or "purged" (TRIM_PURGED),
 * each mixed with the block's address and the page's key (a new key at every reuse of the page, so a mark
 * left from an earlier class never matches). A purged block the program takes again faults its pages back
 * in as it writes them. A block handed out and freed again with its third word unwritten keeps its mark:
 * it is purged half a delay early, or (TRIM_PURGED) not again; either only moves memory, never contents
 * the program relies on (a free block's bytes are undefined). Tried and not kept: giving a page the walk
 * finds with no live block (other threads' frees emptied it) back to its segment for any class: no lower
 * peak, 26% more page faults on prodcons-2x2 (docs/design.md, "Medium pages").
 */
#define TRIM_SEEN 0x5ee9f4ee5ee9f4eeull
#define TRIM_PURGED 0x9c4ed0a79c4ed0a7ull
#define TRIM_MARK_OFF 2u /* the word after link and tag */

/* Walk one of pg's own lists (h->lock held), checked as a refill checks it; false if it is corrupted. */
static bool trim_list(zc_heap_t *h, zc_page_t *pg, zc_block_t *b) {
  uint32_t span = (uint32_t)pg->span, bsize = pg->block_size;
  uint64_t limit = zc_page_limit(pg);
  for (uint32_t n = 1; b != NULL; n++, b = zc_link_decode(pg, b->link)) {
    if (!zc_link_ok(pg, b, span, limit) || b->tag != pg->tag || n > pg->capacity) {
      zc_page_break(pg, b, "corrupted free list (a write after free or a double free) in the page of", true);
      return false;
    }
    uintptr_t *mark = (uintptr_t *)(void *)b + TRIM_MARK_OFF;
    uintptr_t id = (uintptr_t)b ^ pg->key;
    if (*mark == (id ^ TRIM_PURGED)) continue;
    if (*mark == (id ^ TRIM_SEEN)) {
      size_t head = (TRIM_MARK_OFF + 1) * sizeof(uintptr_t);
      zc_segment_purge_range(h, (uint8_t *)b + head, bsize - head); /* the whole OS pages inside only */
      *mark = id ^ TRIM_PURGED;
    } else {
      *mark = id ^ TRIM_SEEN;
    }
  }
  return true;
}

void zc_medium_trim(zc_heap_t *h) {
  for (unsigned c = ZC_MEDIUM_MIN_CLASS; c < ZC_CLASS_COUNT; c++) {
    bool changed = false;
    for (zc_page_t *pg = h->queues[c].first, *next; pg != NULL; pg = next) {
      next = pg->next;
      if (!trim_list(h, pg, pg->free) || !trim_list(h, pg, pg->local_free)) { /* it leaves its queue */
        zc_heap_page_broken(h, pg);
        changed = true;
      }
    }
    if (changed) zc_heap_queue_changed(h, c);
  }
}
