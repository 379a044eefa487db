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
extern zc_heap_t zc_heap_empty; /* every direct slot is 0 (no page): malloc falls to the slow path */
extern __thread zc_heap_t *zc_heap_tls;
/* The calling thread's heap's map tag (zc_heap_t.map_tag), ZC_MAP_TAG_NONE while it has none: free
 * compares it with the segment map's entry (one load and one compare: "a small segment, and mine"). */
extern __thread uint16_t zc_owner_tag_tls;

extern __thread bool zc_thread_exited; /* the thread-exit hook ran: a late TLS destructor is freeing */

zc_inline zc_heap_t *zc_heap_get(void) { return zc_heap_tls; }
zc_inline bool zc_thread_exiting(void) { return zc_thread_exited; }
/* The calling thread's real heap, created on first use (NULL only if out of memory). */
zc_heap_t *zc_heap_init_thread(void);
uint32_t zc_heap_count(void); /* heaps ever set up (a parked heap counts): more than 1, remote frees can come */
/* Take in this heap's remote frees, retire empty pages, purge (everything if force). */
void zc_heap_collect(zc_heap_t *h, bool force);
/* Visit every heap ever created (live or parked) under the heap-list lock. */
void zc_heaps_visit(void (*fn)(zc_heap_t *h, void *arg), void *arg);
/* Thread exit: hand over, give the pages up, park the heap. */
void zc_heap_done(zc_heap_t *h);
void zc_heap_unbias_all(zc_heap_t *h);
void zc_heaps_fork_prepare(void);
void zc_heaps_fork_parent(void);
/* keep_dirty: the child will run a purger (empty pages of the lost threads stay resident for it to age). */
void zc_heaps_fork_child(bool keep_dirty);

/* ---- pages other threads' frees emptied in a live heap (reclaim.c) ---- */
/* The purger's pass over h (trylock of h->lock): reclaim every page that holds no live block and whose
 * blocks other threads' frees gave back, once it has stayed so, untouched by the owner, for a purge delay,
 * and purge the reclaimed pages the owner has not taken back for a further delay; returns how many pages it
 * reclaimed. *waiting is set if some page is still waiting out either delay; *watch if some page that is not
 * current holds blocks other threads freed behind blocks its owner has out (the owner's local frees, which
 * wake nothing, may leave it with none out later), or h's lock was busy. */
size_t zc_reclaim_idle(zc_heap_t *h, bool *waiting, bool *watch);
/* The owner takes back the pages the purger reclaimed (h->lock held): before any slow path of the owner
 * touches a page's lists, queue or current page, under the same hold of h->lock. */
void zc_reclaim_drain_locked(zc_heap_t *h);
/* The purger reclaims from h (thread start) / no more, and what it did is drained (thread exit). */
void zc_reclaim_start(zc_heap_t *h);
void zc_reclaim_stop(zc_heap_t *h);
/* The owner changes its queues or pages outside h->lock (collect, adoption): keep the purger off meanwhile
 * (drains first). Nested pauses are counted. */
void zc_reclaim_pause(zc_heap_t *h);
void zc_reclaim_resume(zc_heap_t *h);
/* Fork child, a heap whose thread did not come along: undo its list without touching its queues. */
void zc_reclaim_fork_orphan(zc_heap_t *h);

/* ---- implemented by the process glue (process.c, layer 7) for the layers below ---- */
void zc_process_init(void);
/* Start the background purger if the option asks for it (call with no lock held); is it running? */
void zc_purger_ensure(void);
bool zc_purger_active(void);
/* Wake the purger if it sleeps as idle, note it as wanted if it never ran; never creates the thread (safe
 * inside free(): no pthread_create). */
void zc_purger_wake(void);
/* A malloc slow path should start it (process.c: a second heap or segment, or a free asked for it). */
bool zc_purger_wanted(void);

/* ---- pages and segments (segment.c) ---- */
/* A fresh or recycled page for class cls, owned by h and initialised (empty free list, nothing carved). */
zc_page_t *zc_segment_page_alloc(zc_heap_t *h, unsigned cls);
/* Return an empty page (used == 0, not in any queue) to its segment; may release the segment. */
void zc_segment_page_free(zc_heap_t *h, zc_page_t *pg);
/* The same with h->lock held; clean: the page's whole area is purged already (reclaim.c): not dirty. */
void zc_segment_page_free_locked(zc_heap_t *h, zc_page_t *pg, bool clean);
/* Purge [from, from + len) (whole OS pages inside) of a page of h, counted as purged (h->lock held). */
size_t zc_segment_purge_range(zc_heap_t *h, void *from, size_t len);
/* A page purged and wanted again within one purge delay (reclaim.c's current page, taken back): a miss of
 * the purge policy (zc_stats_t purge_misses). */
void zc_segment_count_miss(size_t bytes);
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
/* A free by h's thread of a live block of s, a segment whose owner exited: h adopts s if it is still
 * abandoned and trusted and h owns no segment of s's kind (true: s is h's now, the free is local). */
bool zc_segment_adopt_on_free(zc_heap_t *h, zc_segment_t *s);
size_t zc_segments_abandoned_count(void);
/* The process-wide purge policy's state and score (segment.c), for stats and tests. */
typedef struct zc_segment_policy_s {
  uint64_t dirty, in_use, budget;  /* bytes of free pages maybe resident, of pages in use, the dirty budget */
  uint64_t misses, miss_bytes;     /* purged pages taken again within one purge delay of their purge */
  uint64_t purge_calls, maps;      /* purge system calls, segments mapped afresh */
  uint64_t cached;                 /* empty segments in the segment cache */
  uint64_t reuse, reuse_pages;     /* the reuse allowance (bytes, before its cap) and the pages counted in */
  uint64_t keep;                   /* dirty bytes the demand keeps past the delay (the recent peak, the
                                      allowance up to in_use / 2) */
} zc_segment_policy_t;
void zc_segments_policy(zc_segment_policy_t *out);
/* Call fn on each abandoned segment (its owner exited, no live thread adopted it yet), abandoned_lock held:
 * fn may read the segment's pages but must not take a heap lock or call into the allocator. */
void zc_segments_visit_abandoned(void (*fn)(zc_segment_t *s, void *arg), void *arg);
uint64_t zc_segments_live(void);
uint64_t zc_segments_reserved_bytes(void);
uint64_t zc_segments_purged_bytes(void);
void zc_segments_fork_prepare(void);
void zc_segments_fork_parent(void);
void zc_segments_fork_child(void);
/* Fork child: abandon the segments of heap h, whose thread did not come along, marked untrusted: none of
 * their pages' lists is used before zc_page_rebuild (silently; a page that does not check out is set aside)
 * rebuilt it, at adoption or in the purger's pass. O(segments): no page is walked here. */
void zc_segments_fork_orphan(zc_heap_t *h, bool keep_dirty);

/* ---- page free lists (alloc.c / free.c) ---- */
/* malloc's refill (free is empty): local_free, or else thread_free, becomes free; true if it is non-empty.
 * May find the page's lists corrupted: then the page is broken (state ZC_PAGE_BROKEN) and false returned. */
bool zc_page_collect(zc_page_t *pg);
/* Everything returned (thread_free and local_free) into free, so used is exact: collect, exit, adoption.
 * May break the page as above. */
void zc_page_collect_all(zc_page_t *pg);
/* Walk every list of pg (bounded, each block range- and grid-checked, each seen once: an on-stack bitmap),
 * relink all free blocks into free and recompute used from them. False if a list was corrupted (a link out
 * of range, a block twice): the page is then broken, with one error line if report. */
bool zc_page_rebuild(zc_page_t *pg, bool report);
/* Take a corrupted page out of use for good (ZC_PAGE_BROKEN), reporting what was found unless silent. The
 * caller removes it from its heap's queue. */
void zc_page_break(zc_page_t *pg, const void *p, const char *what, bool report);
/* Carve more never-used blocks into free; false if the page is fully carved. */
bool zc_page_extend(zc_page_t *pg);
/* Called by the owner when its local free made used reach 0. */
void zc_page_retire(zc_heap_t *h, zc_page_t *pg);
/* Under h->lock, for a medium class cls whose pages have no free block: the first page of one of the next
 * ZCMEM_BORROW classes' queues that has one (collected as its own refill would), or NULL (borrow.c). */
zc_page_t *zc_borrow_larger(zc_heap_t *h, unsigned cls);
/* Every half purge delay, from malloc's slow path (h->lock held): purge the whole OS pages inside the free
 * blocks of h's medium pages that were free at the last walk too (borrow.c). */
void zc_medium_trim(zc_heap_t *h);
/* Take a page that zc_page_collect* broke out of h's queue. */
void zc_heap_page_broken(zc_heap_t *h, zc_page_t *pg);
/* Hand this thread's pending remote-free chain over. */
void zc_remote_flush(zc_heap_t *h);
/* Blocks h freed into other threads' pages and the hand-overs that carried them (stats, any thread). */
void zc_heap_remote_totals(zc_heap_t *h, uint64_t *frees, uint64_t *batches);
/* Report a bad free (invalid pointer, double free): one line, then abort unless ZCMEM_ABORT_ON_ERROR=0. */
void zc_bad_free(const void *p, const char *what);
/* realloc's usable size of p (not NULL): 0 after a report unless p is the start of a live block (free.c). */
size_t zc_realloc_usable(const void *p);
/* The allocation slow path (class cls, request size n) and the generic free. */
void *zc_malloc_generic(zc_heap_t *h, size_t n, bool zero);
/* The size class of a request n in (ZC_DIRECT_MAX, ZC_SMALL_MAX]: zc_mid_class[(n - 1) >> 8] (alloc.c). */
extern const uint8_t zc_mid_class[ZC_SMALL_MAX >> 8];
/* malloc's slow path from the fast path, which found pg (h's direct page for n) with no block to pop. */
void *zc_malloc_refill(size_t n, zc_page_t *pg, zc_heap_t *h); /* n first: it stays where malloc got it */
/* The same from the direct path: the page is h + off (a direct slot's value, types.h), so that the fast path
 * reads the page through the address h + off and needs no register for pg itself. */
void *zc_malloc_refill_at(size_t n, intptr_t off, zc_heap_t *h);
void zc_free_generic(void *p);
/* Queue of class cls: refresh the heap's direct table after its first page changed. */
void zc_heap_queue_changed(zc_heap_t *h, unsigned cls);

/* A statistics counter only its heap's thread writes, read by stats walks (relaxed loads): a plain add, no
 * lock prefix. On x86-64 one add to memory: an aligned 8-byte store is seen whole by other cores, and with
 * one writer no increment is lost (C's relaxed load and store would be three instructions). */
zc_inline void zc_stat_inc(uint64_t *c, uint64_t n) {
#if defined(__x86_64__) && defined(__GNUC__)
  __asm__("addq %1, %0" : "+m"(*c) : "er"(n));
#else
  __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
#endif
}

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

/* ---- safe-linking (types.h): links are stored XOR the page's key, checked when popped ---- */
zc_inline uintptr_t zc_link_encode(const zc_page_t *pg, const void *next) { return (uintptr_t)next ^ pg->key; }
zc_inline zc_block_t *zc_link_decode(const zc_page_t *pg, uintptr_t link) { return (zc_block_t *)(link ^ pg->key); }
/* A page's block grid (page_init, with nothing carved), as two tests of "p is a carved block start":
 *   64-bit, every page, in its remote line (zc_block_ok: other threads' frees, the owner's medium and slow
 *     paths, the list walks): grid = ceil(2^64 / size), one more for a power of two;
 *   32-bit, pages of small segments only, in the descriptor's first line (zc_block_ok_small: the owner's
 *     small free): grid32 = ceil(2^32 / size), one more for a power of two; 0 in a medium segment.
 * Both limits stay 0 until the first zc_page_set_span. */
zc_inline void zc_page_set_grid(zc_page_t *pg, size_t bsize) {
  uint64_t pow2 = (bsize & (bsize - 1)) == 0;
  bool small = zc_segment_of(pg)->kind == ZC_SEG_SMALL;
  pg->grid32 = small ? (uint32_t)(UINT32_MAX / bsize + 1 + pow2) : 0;
  pg->limit32 = 0;
  __atomic_store_n(&zc_page_remote(pg)->grid, UINT64_MAX / bsize + 1 + pow2, __ATOMIC_RELAXED);
  __atomic_store_n(&zc_page_remote(pg)->limit, 0, __ATOMIC_RELAXED);
}
/* The carved span changed (extend, break): span and both limits follow it (the descriptor's 32-bit one and
 * the remote line's 64-bit one). */
zc_inline void zc_page_set_span(zc_page_t *pg, uint32_t span, uint32_t capacity) {
  zc_page_remote_t *r = zc_page_remote(pg);
  uint64_t limit = (uint64_t)capacity * (__atomic_load_n(&r->grid, __ATOMIC_RELAXED) * pg->block_size);
  __atomic_store_n(&pg->span, (uint64_t)span, __ATOMIC_RELAXED);
  __atomic_store_n(&pg->limit32, capacity * (uint32_t)(pg->grid32 * pg->block_size), __ATOMIC_RELAXED);
  __atomic_store_n(&r->limit, limit, __ATOMIC_RELAXED);
}
/* page_init, once the descriptor is set up and before the page is in use: the remote line gets an empty
 * thread_free and the copies remote frees check blocks with (types.h; its grid and limit are written by
 * zc_page_set_grid and zc_page_set_span). Relaxed stores: a correct remote free of a block of the page is
 * ordered after them by the hand-off of the block (malloc came later). */
zc_inline void zc_page_publish(zc_page_t *pg) {
  zc_page_remote_t *r = zc_page_remote(pg);
  atomic_store_explicit(&r->thread_free, 0, memory_order_relaxed);
  __atomic_store_n(&r->start, pg->start, __ATOMIC_RELAXED);
  __atomic_store_n(&r->key, pg->key, __ATOMIC_RELAXED);
  __atomic_store_n(&r->tag, pg->tag, __ATOMIC_RELAXED);
  __atomic_store_n(&r->block_size, pg->block_size, __ATOMIC_RELAXED);
}
/* pg leaves use (it becomes free: segment.c): its remote line's limit becomes 0, so that another thread's
 * free of any pointer into it fails the grid test (free.c: the remote path reads no page state; a broken
 * page gets the same through zc_page_break's zc_page_set_span). page_init's zc_page_set_grid sets it to 0
 * too, until the page's first extend. */
zc_inline void zc_page_unpublish(zc_page_t *pg) {
  __atomic_store_n(&zc_page_remote(pg)->limit, 0, __ATOMIC_RELAXED);
}
/* The remote line's grid of pg (the 64-bit one: the block index of a block b is (b - start) * grid >> 64). */
zc_inline uint64_t zc_page_grid(zc_page_t *pg) { return __atomic_load_n(&zc_page_remote(pg)->grid, __ATOMIC_RELAXED); }
/* The remote line's limit of pg, which zc_block_ok and zc_link_ok take. */
zc_inline uint64_t zc_page_limit(zc_page_t *pg) { return __atomic_load_n(&zc_page_remote(pg)->limit, __ATOMIC_RELAXED); }
/* p is a carved block start of pg (the 64-bit test, every page): off = p - start (32 bits) is q * size + s
 * with s < size; off * grid (mod 2^64) is q * r (r = grid * size mod 2^64, 1 <= r <= size) when s == 0,
 * and at least 2^48 otherwise (Lemire's divisibility test; exact for off < 2^32, the more so for a pointer
 * inside its 4 MiB segment). So one multiply and one compare with limit = capacity * r say "on the grid and
 * below the carved span". NULL and every pointer of another page fail (their off is at least the page's
 * area away). limit: zc_page_limit(pg), read once by the caller. */
zc_inline bool zc_block_ok(zc_page_t *pg, const void *p, uint64_t limit) {
  uint32_t off = (uint32_t)((uintptr_t)p - (uintptr_t)pg->start);
  return (uint64_t)off * zc_page_grid(pg) < limit;
}
/* The same for p inside the 64 KiB area of pg, a page of a small segment (the owner's small free), with the
 * descriptor's 32-bit grid and limit: off * grid32 mod 2^32 is q * r32 (r32 = grid32 * size mod 2^32) for a
 * block start, and for every other offset such a pointer forms (below 64 KiB, or wrapped below 2^32 from
 * page 0's 16 KiB header) at least the largest limit32, for every class a small segment holds: checked
 * exhaustively by tests/core/grid32.c. A medium page's limit32 is 0: every pointer fails (not used there). */
zc_inline bool zc_block_ok_small(const zc_page_t *pg, const void *p) {
  uint32_t off = (uint32_t)((uintptr_t)p - (uintptr_t)pg->start);
  return (uint32_t)(off * pg->grid32) < pg->limit32;
}
/* b, a block reached through a decoded link (any value): inside the carved span (a 64-bit compare, so a
 * far-away pointer never aliases into it) and on the grid (the 64-bit test). */
zc_inline bool zc_link_ok(zc_page_t *pg, const void *b, uint32_t span, uint64_t limit) {
  return (uintptr_t)b - (uintptr_t)pg->start < span && zc_block_ok(pg, b, limit);
}

/* A field of the page at base + off, its address written as one base + index + displacement: the direct path
 * (base: the heap, off: a direct slot's value, types.h) then reads and writes its page with no instruction
 * more than through a page pointer (with pg->field, GCC computes base + off into a register first: one more).
 * With off == 0 it is pg->field. */
#define ZC_PAGE_AT(base, off, f) \
  (*(__typeof__(((zc_page_t *)0)->f) *)(void *)((char *)(base) + (off) + offsetof(zc_page_t, f)))

/* b, about to be popped from one of pg's lists, is a free block of pg: inside the carved area (NULL fails:
 * an empty list takes the same branch) and carrying the page's tag, which only free blocks carry at their
 * start: a link bent off the grid, onto a live block or out of the page is caught before it is followed.
 * The page is at base + off (ZC_PAGE_AT). */
zc_inline bool zc_pop_ok_at(const void *base, intptr_t off, const zc_block_t *b) {
  return (uintptr_t)b - (uintptr_t)ZC_PAGE_AT(base, off, start) < ZC_PAGE_AT(base, off, span) &&
         b->tag == ZC_PAGE_AT(base, off, tag);
}
zc_inline bool zc_pop_ok(const zc_page_t *pg, const zc_block_t *b) { return zc_pop_ok_at(pg, 0, b); }

/* ---- the hot paths ---- */

/* The pop of b, which passed zc_pop_ok: the next block becomes the head and is prefetched. The pop check
 * reads the head's tag, and on a page whose free list was built from frees spread over time (random
 * lifetimes) that block is out of the L1 cache; after remote frees it sits in the freeing core's cache (it
 * wrote the link and tag: 56% of the producer's malloc samples in bench/prodcons before the prefetch). The
 * prefetch starts the load one malloc of the class early, with write intent (the pop writes the tag); a
 * prefetch never faults, so a corrupted link is still only followed after its own pop check. */
#ifndef ZC_PREFETCH_NEXT
#define ZC_PREFETCH_NEXT 1 /* 0 only to measure what the prefetch buys (bench/alloctest) */
#endif
zc_inline void *zc_pop_at(void *base, intptr_t off, zc_block_t *b) {
  zc_block_t *next = (zc_block_t *)(b->link ^ ZC_PAGE_AT(base, off, key)); /* zc_link_decode */
  ZC_PAGE_AT(base, off, free) = next;
  if (ZC_PREFETCH_NEXT) __builtin_prefetch(next, 1);
  b->tag = 0;
  ZC_PAGE_AT(base, off, used)++;
  return b;
}
zc_inline void *zc_pop(zc_page_t *pg, zc_block_t *b) { return zc_pop_at(pg, 0, b); }

/* malloc of n <= ZC_DIRECT_MAX: one load for the page, one checked pop. An empty list (NULL) fails the
 * same check as a corrupted head, so one branch leads to the slow path for both. The page is at h + off (a
 * direct slot holds the page's offset from the heap, 0 for none: h's zero first line, types.h), read through
 * ZC_PAGE_AT: the offset costs no instruction over a pointer. The empty asm on off between the pop check and
 * the pop keeps GCC from computing h + off into a register for pg->free's load and store (one lea more). */
zc_inline void *zc_malloc_small(zc_heap_t *h, size_t n) {
  intptr_t off = h->direct[ZC_DIRECT_INDEX(n)];
  zc_block_t *b = ZC_PAGE_AT(h, off, free);
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  __asm__("" : "+a"(b)); /* b in the return register: GCC otherwise copies it there after the prefetch */
#endif
  if (zc_likely(zc_pop_ok_at(h, off, b))) {
#if defined(__GNUC__)
    __asm__("" : "+r"(off));
#endif
    return zc_pop_at(h, off, b);
  }
  return zc_malloc_refill_at(n, off, h);
}

#endif /* ZC_INTERNAL_H */
