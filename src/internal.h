/* Internal interfaces of the small/medium allocator (layers 2-5) and the inline hot paths.
 *
 * Includes: types.h, options.h. The public API (alloc.c, free.c, override.c) includes this; the segment
 * layer (segment.c) uses only the segment/page part; large.c must not include it.
 */
#ifndef ZC_INTERNAL_H
#define ZC_INTERNAL_H

#include "options.h"
#include "types.h"

#ifndef ZC_OVERRIDE
#define ZC_OVERRIDE 0
#endif
#define ZC_ALIAS(name) __attribute__((alias(#name), visibility("default"), used))

/* ---- heaps (heap.c) ---- */
extern zc_heap_t zc_heap_empty; /* every direct slot points at zc_page_empty: malloc falls to the slow path */
extern zc_page_t zc_page_empty;
extern __thread zc_heap_t *zc_heap_tls;

zc_inline zc_heap_t *zc_heap_get(void) { return zc_heap_tls; }
/* The calling thread's real heap, created on first use (NULL only if out of memory). */
zc_heap_t *zc_heap_init_thread(void);
/* Take in this heap's remote frees, retire empty pages, purge (everything if force). */
void zc_heap_collect(zc_heap_t *h, bool force);
/* Visit every heap ever created (live or parked) under the heap-list lock. */
void zc_heaps_visit(void (*fn)(zc_heap_t *h, void *arg), void *arg);
/* Thread exit: hand over, give the pages up, park the heap. */
void zc_heap_done(zc_heap_t *h);
void zc_heap_unbias_all(zc_heap_t *h);
void zc_heaps_fork_prepare(void);
void zc_heaps_fork_parent(void);
void zc_heaps_fork_child(void);

/* ---- implemented by the process glue (process.c, layer 7) for the layers below ---- */
void zc_process_init(void);
/* Start the background purger if the option asks for it (call with no lock held); is it running? */
void zc_purger_ensure(void);
bool zc_purger_active(void);

/* ---- pages and segments (segment.c) ---- */
/* A fresh or recycled page for class cls, owned by h and initialised (empty free list, nothing carved). */
zc_page_t *zc_segment_page_alloc(zc_heap_t *h, unsigned cls);
/* Return an empty page (used == 0, not in any queue) to its segment; may release the segment. */
void zc_segment_page_free(zc_heap_t *h, zc_page_t *pg);
/* Purge dirty free pages older than the delay, or all of them if force, or beyond the dirty budget. */
size_t zc_segment_purge(zc_heap_t *h, bool force);
/* The same for a heap another thread owns, from the purger or malloc_trim: pages only, never segments. */
size_t zc_segment_purge_other(zc_heap_t *h, bool force);
/* Give all of h's segments up (thread exit): empty pages are purged, the rest waits for adoption. */
void zc_segments_abandon(zc_heap_t *h, bool keep_dirty);
/* The purger's pass over abandoned segments (purge aged empty pages, unmap empty segments); true while
 * some of their empty pages are still too young to purge. */
bool zc_segments_purge_abandoned(bool force);
/* Adopt every abandoned segment whose pages can be collected (trim) or one of a kind (allocation). */
bool zc_segment_adopt(zc_heap_t *h, int kind);
size_t zc_segments_abandoned_count(void);
uint64_t zc_segments_live(void);
uint64_t zc_segments_reserved_bytes(void);
uint64_t zc_segments_purged_bytes(void);
void zc_segments_fork_prepare(void);
void zc_segments_fork_parent(void);
void zc_segments_fork_child(void);

/* ---- page free lists (alloc.c / free.c) ---- */
/* malloc's refill (free is empty): local_free, or else thread_free, becomes free; true if it is non-empty. */
bool zc_page_collect(zc_page_t *pg);
/* Everything returned (thread_free and local_free) into free, so used is exact: collect, exit, adoption. */
void zc_page_collect_all(zc_page_t *pg);
/* Carve more never-used blocks into free; false if the page is fully carved. */
bool zc_page_extend(zc_page_t *pg);
/* Called by the owner when its local free made used reach 0. */
void zc_page_retire(zc_heap_t *h, zc_page_t *pg);
/* Hand this thread's pending remote-free chain over. */
void zc_remote_flush(zc_heap_t *h);
/* The allocation slow path (class cls, request size n) and the generic free. */
void *zc_malloc_generic(zc_heap_t *h, size_t n, bool zero);
void zc_free_generic(void *p);
/* Queue of class cls: refresh the heap's direct table after its first page changed. */
void zc_heap_queue_changed(zc_heap_t *h, unsigned cls);

/* ---- page queues (the owner's, no lock) ---- */
zc_inline void zc_queue_remove(zc_page_queue_t *q, zc_page_t *pg) {
  if (pg->prev) pg->prev->next = pg->next;
  else q->first = pg->next;
  if (pg->next) pg->next->prev = pg->prev;
  else q->last = pg->prev;
  pg->next = pg->prev = NULL;
  q->count--;
}
zc_inline void zc_queue_push_front(zc_page_queue_t *q, zc_page_t *pg) {
  pg->prev = NULL;
  pg->next = q->first;
  if (q->first) q->first->prev = pg;
  else q->last = pg;
  q->first = pg;
  q->count++;
}
zc_inline void zc_queue_push_back(zc_page_queue_t *q, zc_page_t *pg) {
  pg->next = NULL;
  pg->prev = q->last;
  if (q->last) q->last->next = pg;
  else q->first = pg;
  q->last = pg;
  q->count++;
}

/* ---- the hot paths ---- */

/* malloc of n <= ZC_DIRECT_MAX: one load for the page, one pop. */
zc_inline void *zc_malloc_small(zc_heap_t *h, size_t n) {
  zc_page_t *pg = h->direct[(n + 7) >> 3];
  zc_block_t *b = pg->free;
  if (zc_likely(b != NULL)) {
    pg->free = b->next;
    pg->used++;
    return b;
  }
  return zc_malloc_generic(h, n, false);
}

#endif /* ZC_INTERNAL_H */
