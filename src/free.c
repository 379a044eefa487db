/* Layers 4-5, the free paths.
 *
 * Local free (the owner frees): the segment map says the pointer is in a small segment, masking finds the
 * segment and a shift the page, the segment's owner is this thread's heap: push on the page's local_free
 * list. One unlikely branch covers "page becomes empty" and "page had nothing to free" (a double free).
 *
 * Remote free (another thread frees; the producer/consumer case): the freer keeps a pending chain of
 * blocks of one page (ZC_REMOTE_SLOTS chains in a direct-mapped table; one, measured best, see types.h) and
 * hands the whole chain over with one compare-and-swap on the page's thread_free stack when another page
 * takes its slot, when it reaches ZC_REMOTE_BATCH blocks, or at the freer's next malloc slow path. A
 * consumer frees messages in about the order a producer made them, so consecutive frees of one message type
 * hit the same page and the atomic operation is paid once per batch (BatchIt's observation), not once per
 * block. A thread that only frees holds at most ZC_REMOTE_SLOTS chains of ZC_REMOTE_BATCH blocks: it never
 * grows.
 *
 * What is detected (always): a pointer that is not in zcmem's memory (segment map), a pointer into a page
 * that holds no live block, a pointer that is not a block start (one multiply on the fast path), a free
 * into a page whose count is already zero; large blocks: double and interior frees (the region header's
 * state). With ZC_DEBUG, also: a block that is already on one of its page's free lists (a list walk).
 */
#include "internal.h"
#include "large.h"

#include <errno.h>

static void report_invalid(const void *p, const char *what) { zc_error("%s %p", what, p); }

#if ZC_DEBUG
/* Debug build: walk the page's lists to catch a double free, check the block grid. O(blocks in page). */
static bool debug_block_ok(zc_page_t *pg, const void *p) {
  uintptr_t off = (uintptr_t)p - (uintptr_t)pg->start;
  if ((uintptr_t)p < (uintptr_t)pg->start || off % pg->block_size != 0 || off / pg->block_size >= pg->capacity) {
    report_invalid(p, "free of a pointer that is not a block start:");
    return false;
  }
  for (zc_block_t *b = pg->free; b != NULL; b = b->next)
    if (b == p) goto twice;
  for (zc_block_t *b = pg->local_free; b != NULL; b = b->next)
    if (b == p) goto twice;
  for (zc_block_t *b = ZC_TF_PTR(atomic_load(&pg->thread_free)); b != NULL; b = b->next)
    if (b == p) goto twice;
  return true;
twice:
  report_invalid(p, "double free of");
  return false;
}
#define ZC_DEBUG_CHECK(pg, p) \
  do { if (!debug_block_ok(pg, p)) return; } while (0)
#else
#define ZC_DEBUG_CHECK(pg, p) ((void)0)
#endif

/* Push a chain of count blocks of pg on its thread_free stack: one compare-and-swap. */
static void push_chain(zc_page_t *pg, zc_block_t *head, zc_block_t *tail, uint32_t count) {
  uintptr_t old = atomic_load_explicit(&pg->thread_free, memory_order_relaxed), nv;
  do {
    tail->next = ZC_TF_PTR(old);
    nv = (uintptr_t)head | ((uintptr_t)(ZC_TF_COUNT(old) + count) << ZC_TF_SHIFT);
  } while (!atomic_compare_exchange_weak_explicit(&pg->thread_free, &old, nv, memory_order_release,
                                                   memory_order_relaxed));
}

static void flush_slot(zc_heap_t *h, zc_remote_batch_t *b) {
  push_chain(b->page, b->head, b->tail, b->count);
  __atomic_fetch_add(&h->stat_remote_frees, b->count, __ATOMIC_RELAXED); /* read by stats walks */
  __atomic_fetch_add(&h->stat_remote_batches, 1, __ATOMIC_RELAXED);
  h->pending_count -= b->count;
  b->page = NULL;
  b->head = b->tail = NULL;
  b->count = 0;
}

void zc_remote_flush(zc_heap_t *h) {
  if (h->pending_count == 0) return;
  for (unsigned i = 0; i < ZC_REMOTE_SLOTS; i++)
    if (h->pending[i].count != 0) flush_slot(h, &h->pending[i]);
}

static zc_noinline void free_remote(zc_page_t *pg, void *p) {
  zc_heap_t *h = zc_heap_get();
  if (zc_unlikely(h == &zc_heap_empty)) {
    h = zc_heap_init_thread(); /* a thread that only frees still needs a place for its pending chains */
    if (h == NULL) {          /* no memory even for that: hand the block over alone */
      push_chain(pg, p, p, 1);
      return;
    }
  }
  /* Direct-mapped by page: producers' pages of several size classes interleave in a consumer's frees. */
  uintptr_t key = (uintptr_t)pg;
  zc_remote_batch_t *b = &h->pending[((key >> 7) ^ (key >> ZC_SEGMENT_SHIFT)) & (ZC_REMOTE_SLOTS - 1)];
  zc_block_t *blk = p;
  h->pending_count++;
  if (b->page == pg) {
    blk->next = b->head;
    b->head = blk;
    if (++b->count >= ZC_REMOTE_BATCH) flush_slot(h, b);
    return;
  }
  if (b->count != 0) flush_slot(h, b);
  blk->next = NULL;
  b->page = pg;
  b->head = b->tail = blk;
  b->count = 1;
}

void zc_page_retire(zc_heap_t *h, zc_page_t *pg) {
  zc_queue_remove(&h->queues[pg->class_idx], pg);
  zc_heap_queue_changed(h, pg->class_idx);
  zc_segment_page_free(h, pg);
  /* The page is dirty now: the purger must run to honour the delay if this thread goes idle (started here,
   * after h->lock is released; a no-op with ZCMEM_BACKGROUND=0 or once it runs). */
  if (zc_unlikely(!zc_purger_active())) zc_purger_ensure();
}

/* Everything the fast path does not handle: NULL, large regions, foreign pointers, remote frees, a page
 * whose count reaches or is already zero. */
static zc_noinline void free_slow(void *p, uint8_t map) {
  if (p == NULL) return;
  if (map != ZC_MAP_SMALL) {
    uint8_t kind;
    void *hdr = zc_segmap_header(p, &kind);
    if (hdr != NULL && kind == ZC_MAP_LARGE) zc_large_free(p, hdr);
    else report_invalid(p, "free of a pointer zcmem did not allocate:");
    return;
  }
  zc_segment_t *s = zc_segment_of(p);
  zc_page_t *pg = zc_page_of(s, p);
  zc_heap_t *h = zc_heap_get();
  if (atomic_load_explicit(&s->heap, memory_order_relaxed) != h) {
    /* Another thread's page: only what never changes under us may be checked here. */
    if ((uintptr_t)p - (uintptr_t)s < ZC_SEGMENT_HEADER) {
      report_invalid(p, "free of a pointer into memory that holds no block:");
      return;
    }
    free_remote(pg, p);
    return;
  }
  if (zc_unlikely(pg->state != ZC_PAGE_IN_USE || (uint8_t *)p < pg->start)) {
    report_invalid(p, "free of a pointer into memory that holds no block:");
    return;
  }
  if (zc_unlikely(((uintptr_t)p - (uintptr_t)pg->start) % pg->block_size != 0)) {
    report_invalid(p, "free of a pointer that is not a block start:");
    return;
  }
  if (zc_unlikely(pg->used == (pg == h->current[pg->class_idx] ? 1u : 0u))) {
    report_invalid(p, "double free (or free into a page with no live block) of");
    return;
  }
  ZC_DEBUG_CHECK(pg, p);
  ((zc_block_t *)p)->next = pg->local_free;
  pg->local_free = p;
  if (--pg->used == 0) zc_page_retire(h, pg);
}

void zc_free_generic(void *p) { free_slow(p, zc_segmap_get(p)); }

/* The owner freed the last block of pg (or a block of a page that has none: a double free). */
static zc_noinline void free_local_last(zc_heap_t *h, zc_page_t *pg, void *p) {
  if (pg->used == 0 || pg->state != ZC_PAGE_IN_USE || (uint8_t *)p < pg->start || pg == h->current[pg->class_idx]) {
    free_slow(p, ZC_MAP_SMALL); /* reports */
    return;
  }
  ((zc_block_t *)p)->next = pg->local_free;
  pg->local_free = p;
  pg->used = 0;
  zc_page_retire(h, pg);
}

ZC_API void zc_free(void *p) {
  uint8_t map = zc_segmap_get(p);
  if (zc_likely(map == ZC_MAP_SMALL)) {
    zc_segment_t *s = zc_segment_of(p);
    zc_page_t *pg = zc_page_of(s, p);
    zc_heap_t *h = zc_heap_get();
    uint32_t off = (uint32_t)((uintptr_t)p - (uintptr_t)pg->start);
    if (zc_likely(atomic_load_explicit(&s->heap, memory_order_relaxed) == h && !ZC_DEBUG)) {
      /* used > 1: neither the page's last block nor a free into an empty page; off * grid < grid: p is a
       * block start (p below start wraps off to near 2^32, never a multiple within a page's reach) */
      if (zc_likely(pg->used > 1 && (uint64_t)off * pg->grid < pg->grid && off < ZC_SEGMENT_SIZE)) {
        ((zc_block_t *)p)->next = pg->local_free;
        pg->local_free = p;
        pg->used--;
        return;
      }
      free_local_last(h, pg, p);
      return;
    }
  }
  free_slow(p, map);
}

ZC_API size_t zc_usable_size(const void *p) {
  if (p == NULL) return 0;
  uint8_t map = zc_segmap_get(p);
  if (map == ZC_MAP_SMALL) {
    zc_segment_t *s = zc_segment_of(p);
    zc_page_t *pg = zc_page_of(s, p);
    if (pg->state == ZC_PAGE_IN_USE && (const uint8_t *)p >= pg->start) {
      size_t off = (size_t)((const uint8_t *)p - pg->start) % pg->block_size;
      return pg->block_size - off;
    }
  } else {
    uint8_t kind;
    void *hdr = zc_segmap_header(p, &kind);
    if (hdr != NULL && kind == ZC_MAP_LARGE) return zc_large_usable(p, hdr);
  }
  report_invalid(p, "usable size of a pointer zcmem did not allocate:");
  return 0;
}

ZC_API void zc_free_sized(void *p, size_t size) {
  (void)size;
  zc_free(p);
}

ZC_API void zc_free_aligned_sized(void *p, size_t align, size_t size) {
  (void)align;
  (void)size;
  zc_free(p);
}

/* The override (libzcmem.so, libzcmem.a): the standard names are aliases of the zc_ functions above. */
#if ZC_OVERRIDE
void free(void *p) ZC_ALIAS(zc_free);
void cfree(void *p) ZC_ALIAS(zc_free);
void free_sized(void *p, size_t n) ZC_ALIAS(zc_free_sized);
void free_aligned_sized(void *p, size_t a, size_t n) ZC_ALIAS(zc_free_aligned_sized);
size_t malloc_usable_size(void *p) ZC_ALIAS(zc_usable_size);
void __libc_free(void *p) ZC_ALIAS(zc_free);
void __libc_cfree(void *p) ZC_ALIAS(zc_free);
#endif
