/* Layer 4 and 7, the allocation paths: malloc's slow path (find a page with free blocks for a class), the
 * page free-list refills (collect, extend), and the public zc_malloc family built on them.
 *
 * The slow path runs once per page-full of allocations. It looks at no more than ZC_QUEUE_SCAN pages of
 * the class for a freed block before it carves more of a page or takes a new one, rotating pages with none
 * to the back of the queue, so pages whose blocks another thread freed (the producer/consumer case) or the
 * owner freed come round again and are reused before fresh memory is touched.
 */
#include "internal.h"
#include "large.h"

#include <errno.h>
#include <string.h>

#define ZC_QUEUE_SCAN 4u
#define ZC_EXTEND_BYTES ((size_t)4096)
/* One refill in this many checks the clock (malloc_refill: the purge delay; page_for_class: the medium walk). */
#define ZC_REFILL_CHECK 8u

void zc_page_break(zc_page_t *pg, const void *p, const char *what, bool report) {
  if (report) zc_bad_free(p, what);
  pg->state = ZC_PAGE_BROKEN;
  pg->free = pg->local_free = NULL;
  zc_page_set_span(pg, 0, 0); /* every later free and pop of it fails its checks */
}

/* Put chain (blocks of pg, at most max of them, tail unknown) in front of pg's free list. Only when free
 * is not empty must the chain be walked to its tail: that walk is bounded and checks every block. */
static bool prepend(zc_page_t *pg, zc_block_t *chain, uint32_t max) {
  if (pg->free != NULL) {
    zc_block_t *t = chain;
    uint32_t span = pg->span;
    uint64_t limit = zc_page_limit(pg);
    for (uint32_t n = 1;; n++) {
      if (!zc_link_ok(pg, t, span, limit) || t->tag != pg->tag || n > max) {
        zc_page_break(pg, t, "corrupted free list (a write after free or a double free) in the page of", true);
        return false;
      }
      zc_block_t *next = zc_link_decode(pg, t->link);
      if (next == NULL) break;
      t = next;
    }
    t->link = zc_link_encode(pg, pg->free);
  }
  pg->free = chain;
  return true;
}

/* Take the page's remote frees (one exchange; the count rides in the word, so no walk is needed to keep
 * used exact). More blocks back than handed out means some block was freed twice: the chain cannot be
 * trusted, the page is broken. */
static bool take_thread_free(zc_page_t *pg) {
  zc_page_remote_t *r = zc_page_remote(pg);
  if (atomic_load_explicit(&r->thread_free, memory_order_relaxed) == 0) return true;
  /* acquire: pairs with the freers' release in push_chain, so their writes to the blocks (links, tags)
   * are seen before the chain is followed */
  uintptr_t v = atomic_exchange_explicit(&r->thread_free, 0, memory_order_acquire);
  uint32_t n = ZC_TF_COUNT(v);
  if (zc_unlikely(n + pg->held > pg->used)) {
    zc_page_break(pg, ZC_TF_PTR(v), "double free (other threads freed more blocks than are in use) in the page of",
                  true);
    return false;
  }
  /* a relaxed atomic store: the purger's candidate test (src/reclaim.c, all_back) reads used with relaxed
   * loads while this refill runs outside the heap lock; same code as a plain store */
  __atomic_store_n(&pg->used, pg->used - n, __ATOMIC_RELAXED);
  return prepend(pg, ZC_TF_PTR(v), n);
}

/* malloc's slow path, called with pg->free empty: the owner's own frees first (warm in its cache), the
 * other threads' only when there are none, so the usual case touches no list but the one it takes. */
bool zc_page_collect(zc_page_t *pg) {
  if (pg->local_free != NULL) {
    pg->free = pg->local_free; /* free is empty: no walk */
    pg->local_free = NULL;
  } else if (!take_thread_free(pg)) {
    return false;
  }
  return pg->free != NULL;
}

void zc_page_collect_all(zc_page_t *pg) {
  if (!take_thread_free(pg)) return;
  if (pg->local_free != NULL) {
    if (!prepend(pg, pg->local_free, pg->capacity)) return;
    pg->local_free = NULL;
  }
}

/* One list checked into the bitmap, read only: false if a block is out of range, off the grid, or seen
 * before; else its tail (NULL for an empty list) and the count. */
static bool rebuild_list(zc_page_t *pg, zc_block_t *b, uint64_t *seen, zc_block_t **tail, uint32_t *nfree,
                         const void **bad) {
  uint32_t span = pg->span;
  uint64_t limit = zc_page_limit(pg);
  *tail = NULL;
  while (b != NULL) {
    if (!zc_link_ok(pg, b, span, limit) || b->tag != pg->tag) {
      *bad = b;
      return false;
    }
    uint32_t i = (uint32_t)(((unsigned __int128)((uintptr_t)b - (uintptr_t)pg->start) * zc_page_grid(pg)) >> 64);
    if (seen[i >> 6] & ((uint64_t)1 << (i & 63))) {
      *bad = b;
      return false;
    }
    seen[i >> 6] |= (uint64_t)1 << (i & 63);
    (*nfree)++;
    *tail = b;
    b = zc_link_decode(pg, b->link);
  }
  return true;
}

/* The three lists are checked where they are, none is relinked: no write into a free block. A fork child
 * rebuilds its lost threads' pages, whose memory it shares with the parent until either writes it:
 * relinking every free block, as before, copied every page of free blocks (a page fault each). The
 * thread_free chain stays on its stack (other threads may push onto it meanwhile: the chain read is
 * immutable) and its blocks count in used until the owner takes it, as always; its count must be its
 * length. */
bool zc_page_rebuild(zc_page_t *pg, bool report) {
  uint64_t seen[ZC_PAGE_BLOCKS_MAX / 64];
  memset(seen, 0, ((size_t)pg->capacity + 63) / 64 * sizeof(uint64_t));
  uintptr_t v = atomic_load_explicit(&zc_page_remote(pg)->thread_free, memory_order_acquire);
  zc_block_t *lists[3] = {pg->free, pg->local_free, ZC_TF_PTR(v)}, *tail;
  uint32_t n = 0, own = 0;
  const void *bad = NULL;
  for (int k = 0; k < 3; k++) {
    if (!rebuild_list(pg, lists[k], seen, &tail, &n, &bad) || (k == 2 && n - own != ZC_TF_COUNT(v))) {
      zc_page_break(pg, bad,
                    "double free or write after free (a block twice, or a bad link, on the lists of the page of)",
                    report);
      return false;
    }
    if (k == 1) own = n; /* blocks on free and local_free */
  }
  pg->used = (uint32_t)pg->capacity - own + pg->held;
  return true;
}

bool zc_page_extend(zc_page_t *pg) {
  if (pg->capacity >= pg->reserved) return false;
  size_t bsize = pg->block_size;
  uint32_t n = (uint32_t)(ZC_EXTEND_BYTES / bsize);
  if (n == 0) n = 1;
  uint32_t room = (uint32_t)pg->reserved - pg->capacity;
  if (n > room) n = room;
  uint8_t *first = pg->start + (size_t)pg->capacity * bsize;
  uint8_t *b = first;
  uintptr_t tag = pg->tag; /* carved blocks are free blocks: a free of one never handed out is caught */
  for (uint32_t i = 1; i < n; i++, b += bsize) {
    ((zc_block_t *)b)->link = zc_link_encode(pg, b + bsize);
    ((zc_block_t *)b)->tag = tag;
  }
  ((zc_block_t *)b)->link = zc_link_encode(pg, pg->free);
  ((zc_block_t *)b)->tag = tag;
  pg->free = (zc_block_t *)first;
  __atomic_store_n(&pg->capacity, (uint16_t)(pg->capacity + n), __ATOMIC_RELAXED); /* the purger reads it */
  zc_page_set_span(pg, (uint32_t)(pg->capacity * bsize), pg->capacity);
  return true;
}

void zc_heap_page_broken(zc_heap_t *h, zc_page_t *pg) {
  if (pg->next == NULL && pg->prev == NULL && h->queues[pg->class_idx].first != pg) return; /* in no queue */
  zc_queue_remove(&h->queues[pg->class_idx], pg);
  zc_heap_queue_changed(h, pg->class_idx);
}

/* A page of class cls with a free block, now first in its queue; NULL if out of memory. The scan of the
 * queue, the refills and every change of the queue and of the current page are made under h->lock: the
 * background purger reclaims pages no live block holds (reclaim.c) and must not see a page half way
 * through becoming current; what it reclaimed is taken back first, under the same hold. One uncontended
 * lock per slow path (the purger only trylocks it, every half purge delay). */
static zc_noinline zc_page_t *page_for_class(zc_heap_t *h, unsigned cls) {
  zc_page_queue_t *q = &h->queues[cls];
  if (zc_pending_blocks(h) != 0) zc_remote_flush(h);
  /* dirty_first and next_purge_check are also written by the purger thread (under h->lock) */
  bool dirty = __atomic_load_n(&h->dirty_first, __ATOMIC_RELAXED) != NULL;
  /* The purger ages dirty pages; with a second heap, remote frees can come, and it also finds the pages they
   * empty in an idle owner's heap (reclaim.c). It is started here, in a malloc: a free only wakes it or asks
   * for it (zc_purger_wanted), as starting a thread inside free() can deadlock (glibc frees a dead thread's
   * TLS under its stack-cache lock, which pthread_create takes). */
  if (zc_unlikely(!zc_purger_active()) && (dirty || zc_purger_wanted())) zc_purger_ensure();
  /* The clock is read when dirty pages wait and on one in ZC_REFILL_CHECK slow paths of a medium class: a
   * heap's medium pages are walked every half purge delay (borrow.c, zc_medium_trim) when either comes
   * (read on every medium slow path, it cost 0.7-1% more instructions in libzcmem on bench/prodcons). */
  bool medium_check = cls >= ZC_MEDIUM_MIN_CLASS && h->stat_class_refills[cls] % ZC_REFILL_CHECK == 0;
  uint64_t now = dirty || medium_check ? zc_os_clock_ns() : 0;
  if (dirty) {
    if (now >= __atomic_load_n(&h->next_purge_check, __ATOMIC_RELAXED)) zc_segment_purge(h, false);
  }
  zc_stat_inc(&h->stat_class_refills[cls], 1);
  zc_page_t *found = NULL;
  zc_page_t *room = NULL; /* the first page seen with uncarved room: carved only if no page has a free block */
  zc_lock(&h->lock);
  if (h->reclaimed != NULL) zc_reclaim_drain_locked(h);
  if (now != 0 && now >= h->next_trim_check) {
    uint64_t delay = (uint64_t)zc_opt(zc_option_purge_delay) * 1000000u;
    h->next_trim_check = now + delay / 2 + 1;
    if (delay != 0) zc_medium_trim(h);
  }
  for (unsigned i = 0; i < ZC_QUEUE_SCAN && q->first != NULL; i++) {
    zc_page_t *pg = q->first;
    if (pg == room) break; /* every page of the queue came round */
    if (pg->free != NULL || zc_page_collect(pg)) {
      found = pg;
      break;
    }
    if (pg->state == ZC_PAGE_BROKEN) { /* its lists were corrupted: it leaves the queue for good */
      zc_heap_page_broken(h, pg);
      continue;
    }
    if (room == NULL && pg->capacity < pg->reserved) room = pg;
    if (q->count == 1) break;
    zc_queue_remove(q, pg); /* no free block: let the next page have a turn, this one comes round again */
    zc_queue_push_back(q, pg);
  }
  /* Freed blocks before fresh memory: carving touches memory never used (a page fault per 4 KiB). Taking the
   * current page's room first left other pages' freed blocks waiting: bench/alloctest threads=1, 0.000113 ->
   * 0.0000385 faults per malloc/free pair (tests/core/fuller_first.c). */
  if (found == NULL && cls >= ZC_BORROW_MIN_CLASS) { /* a free block of a larger class before fresh memory */
    zc_page_t *other = zc_borrow_larger(h, cls);
    if (other != NULL) {
      zc_heap_queue_changed(h, cls); /* the scan may have rotated this class's queue */
      zc_unlock(&h->lock);
      return other;
    }
  }
  if (found == NULL && room != NULL && zc_page_extend(room)) {
    if (q->first != room) {
      zc_queue_remove(q, room);
      zc_queue_push_front(q, room);
    }
    found = room;
  }
  if (found == NULL) {
    zc_unlock(&h->lock);
    found = zc_segment_page_alloc(h, cls);
    if (found == NULL && zc_large_release_cache() != 0) /* out of address space: the large cache gives */
      found = zc_segment_page_alloc(h, cls);
    zc_lock(&h->lock);
    if (found == NULL) {
      zc_heap_queue_changed(h, cls);
      zc_unlock(&h->lock);
      return NULL;
    }
    zc_queue_push_front(q, found);
    zc_page_extend(found);
  }
  zc_heap_queue_changed(h, cls);
  zc_unlock(&h->lock);
  return found;
}

zc_noinline void *zc_malloc_generic(zc_heap_t *h, size_t n, bool zero) {
  if (zc_unlikely(h == &zc_heap_empty)) {
    h = zc_heap_init_thread();
    if (h == NULL) {
      errno = ENOMEM;
      return NULL;
    }
  }
  if (n > ZC_SMALL_MAX) return zc_large_alloc(n, 16, zero);
  unsigned cls = zc_size_class(n);
  zc_page_t *pg = h->queues[cls].first;
  zc_block_t *b;
  for (;;) {
    if (pg == NULL || pg->free == NULL) {
      pg = page_for_class(h, cls);
      if (pg == NULL) {
        errno = ENOMEM;
        return NULL;
      }
    }
    b = pg->free;
    if (zc_likely(zc_pop_ok(pg, b))) break;
    /* A link that leads outside the page's blocks or off their grid: written after free, never followed. */
    zc_lock(&h->lock); /* the queue and the current page change: see page_for_class */
    zc_page_break(pg, b, "corrupted free list (a write after free?): a link leads to", true);
    zc_heap_page_broken(h, pg);
    zc_unlock(&h->lock);
    pg = NULL;
  }
  zc_pop(pg, b);
  if (zero) memset(b, 0, n);
  return b;
}

/* The fast path's miss. Most often the class's current page has only run out of its free list while
 * blocks wait on its other lists: the owner's frees on local_free, or else (a producer, whose blocks other
 * threads free) the hand-overs on thread_free. zc_page_collect makes them the free list here (no walk, no
 * clock, no lock, no queue change) and the first is popped with the same check as on the fast path.
 * Everything else is zc_malloc_generic, and so is every ZC_REFILL_CHECK-th such refill while the heap has
 * dirty pages, whose purge delay the generic path checks against the clock. A page that collect finds
 * corrupted is broken; the generic path takes it out of the queue. */
/* The refill from thread_free, out of line so that the local_free refill saves no register. */
static zc_noinline void *refill_remote(size_t n, zc_page_t *pg, zc_heap_t *h) {
  if (zc_page_collect(pg)) {
    zc_stat_inc(&h->stat_class_refills[pg->class_idx], 1);
    zc_block_t *b = pg->free;
    if (zc_likely(zc_pop_ok(pg, b))) return zc_pop(pg, b);
  }
  return zc_malloc_generic(h, n, false);
}

zc_inline void *malloc_refill(size_t n, zc_page_t *pg, zc_heap_t *h) {
  zc_block_t *b = pg->local_free;
  if (pg->free == NULL && zc_pending_blocks(h) == 0 &&
      (__atomic_load_n(&h->dirty_first, __ATOMIC_RELAXED) == NULL ||
       ++h->refills_unchecked % ZC_REFILL_CHECK != 0)) {
    if (b != NULL) {
      pg->local_free = NULL;
      zc_stat_inc(&h->stat_class_refills[pg->class_idx], 1);
      if (zc_likely(zc_pop_ok(pg, b))) return zc_pop(pg, b); /* the pop writes free (b's successor) */
      pg->free = b; /* the generic path pops the bad head again and breaks the page */
    } else if (pg != zc_heap_no_page(h)) { /* a heap's empty line has no remote line */
      return refill_remote(n, pg, h);
    }
  }
  return zc_malloc_generic(h, n, false);
}

zc_noinline void *zc_malloc_refill(size_t n, zc_page_t *pg, zc_heap_t *h) { return malloc_refill(n, pg, h); }
zc_noinline void *zc_malloc_refill_at(size_t n, intptr_t off, zc_heap_t *h) {
  return malloc_refill(n, (zc_page_t *)((uintptr_t)h + (uintptr_t)off), h);
}

/* The class of a request n in (ZC_DIRECT_MAX, ZC_SMALL_MAX] is zc_mid_class[(n - 1) >> 8]: above 1 KiB every
 * class boundary is a multiple of 256 (four classes per doubling), so one byte per 256 bytes of request
 * gives it exactly (tests/core/midclass.c checks every n). One load instead of zc_size_class_above64's
 * bit-scan and shifts: 7 instructions fewer per malloc of 1..64 KiB (bench/fastpath size=2048 under
 * callgrind). Entries below ZC_DIRECT_MAX are never read. */
#define ZC_MID_SHIFT 8u
#define ZC_MC_W(k) ((((uint64_t)(k) + 1) << ZC_MID_SHIFT) - 1)
#define ZC_MC_B(k) (63u - (unsigned)__builtin_clzll(ZC_MC_W(k)))
#define ZC_MC(k) (uint8_t)(5u + ((ZC_MC_B(k) - 6u) << 2) + (unsigned)((ZC_MC_W(k) >> (ZC_MC_B(k) - 2u)) & 3u))
#define ZC_MC4(k) ZC_MC(k), ZC_MC((k) + 1), ZC_MC((k) + 2), ZC_MC((k) + 3)
#define ZC_MC16(k) ZC_MC4(k), ZC_MC4((k) + 4), ZC_MC4((k) + 8), ZC_MC4((k) + 12)
#define ZC_MC64(k) ZC_MC16(k), ZC_MC16((k) + 16), ZC_MC16((k) + 32), ZC_MC16((k) + 48)
__attribute__((section(".data.rel.ro"))) const uint8_t zc_mid_class[ZC_SMALL_MAX >> ZC_MID_SHIFT] = {ZC_MC64(0), ZC_MC64(64), ZC_MC64(128), ZC_MC64(192)};
_Static_assert(ZC_DIRECT_MAX >= ((size_t)4 << ZC_MID_SHIFT), "classes above ZC_DIRECT_MAX are 256 B apart or more");

/* malloc of ZC_DIRECT_MAX < n: for a size class (up to ZC_SMALL_MAX) the class's current page (the first of
 * its queue) and the same checked pop as the direct path, and the same cheap refill from local_free when
 * its free list is empty; everything else (no page yet, a thread without a heap, large sizes) is
 * zc_malloc_generic. Without it a 2 KiB malloc/free ping-pong took the whole slow path (page_for_class)
 * on every other call. */
static zc_noinline void *malloc_mid(size_t n, zc_heap_t *h) {
  if (zc_likely(n <= ZC_SMALL_MAX)) {
    zc_page_t *pg = h->queues[zc_mid_class[(n - 1) >> ZC_MID_SHIFT]].first;
    if (zc_likely(pg != NULL)) {
      zc_block_t *b = pg->free;
      if (zc_likely(zc_pop_ok(pg, b))) return zc_pop(pg, b);
      return zc_malloc_refill(n, pg, h);
    }
  }
  return zc_malloc_generic(h, n, false);
}

/* ---- the public malloc family ---- */

ZC_API void *zc_malloc(size_t n) {
  zc_heap_t *h = zc_heap_get();
  if (zc_likely(n <= ZC_DIRECT_MAX)) return zc_malloc_small(h, n);
  return malloc_mid(n, h);
}

ZC_API void *zc_calloc(size_t count, size_t size) {
  size_t n;
  if (__builtin_mul_overflow(count, size, &n)) {
    errno = ENOMEM;
    return NULL;
  }
  zc_heap_t *h = zc_heap_get();
  if (zc_likely(n <= ZC_DIRECT_MAX)) {
    void *p = zc_malloc_small(h, n);
    if (p != NULL) memset(p, 0, n);
    return p;
  }
  return zc_malloc_generic(h, n, true);
}

/* Allocation with alignment align (a power of two). Up to ZC_NATURAL_ALIGN_MAX a size class whose block
 * size is a multiple of align gives it for free (pages start 4 KiB-aligned); beyond, a large region. */
static void *alloc_aligned(size_t align, size_t n) {
  if (align <= 8) return zc_malloc(n); /* every class is 8-aligned */
  if (align <= ZC_NATURAL_ALIGN_MAX && n <= ZC_SMALL_MAX) {
    size_t s = n < align ? align : (n + align - 1) & ~(align - 1);
    if (s <= ZC_SMALL_MAX && zc_class_size[zc_size_class(s)] % align != 0) {
      s = (size_t)1 << (64 - __builtin_clzll((unsigned long long)(s - 1))); /* a power of two is a class */
    }
    if (s <= ZC_SMALL_MAX) return zc_malloc(s);
  }
  if (zc_heap_get() == &zc_heap_empty && zc_heap_init_thread() == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  return zc_large_alloc(n == 0 ? 1 : n, align, false);
}

static bool is_pow2(size_t a) { return a != 0 && (a & (a - 1)) == 0; }

ZC_API void *zc_aligned_alloc(size_t align, size_t n) {
  if (!is_pow2(align)) {
    errno = EINVAL;
    return NULL;
  }
  return alloc_aligned(align, n);
}

ZC_API int zc_posix_memalign(void **out, size_t align, size_t n) {
  if (!is_pow2(align) || align % sizeof(void *) != 0) return EINVAL;
  int saved = errno;
  void *p = alloc_aligned(align, n);
  if (p == NULL) {
    errno = saved;
    return ENOMEM;
  }
  *out = p;
  return 0;
}

ZC_API void *zc_memalign(size_t align, size_t n) {
  if (align > ((size_t)1 << 62)) {
    errno = EINVAL;
    return NULL;
  }
  if (!is_pow2(align)) align = align == 0 ? 1 : (size_t)1 << (64 - __builtin_clzll((unsigned long long)align));
  return alloc_aligned(align, n);
}

ZC_API void *zc_valloc(size_t n) { return alloc_aligned(zc_os_page_size(), n); }

ZC_API void *zc_pvalloc(size_t n) {
  size_t page = zc_os_page_size();
  size_t r = (n + page - 1) & ~(page - 1);
  if (r < n) {
    errno = ENOMEM;
    return NULL;
  }
  return alloc_aligned(page, r == 0 ? page : r);
}

ZC_API char *zc_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = zc_malloc(n);
  if (d != NULL) memcpy(d, s, n);
  return d;
}

ZC_API void *zc_realloc(void *p, size_t n) {
  if (p == NULL) return zc_malloc(n);
  if (n == 0) { /* glibc's contract, which Linux programs expect: free and return NULL */
    zc_free(p);
    return NULL;
  }
  size_t old = zc_realloc_usable(p);
  if (old == 0) { /* not a live block's start: zc_realloc_usable reported it; the block is left alone */
    errno = EINVAL;
    return NULL;
  }
  if (n <= old) {
    if (n > ZC_SMALL_MAX || old <= ZC_SMALL_MAX) {
      if (old <= ZC_SMALL_MAX) {
        if (n >= old / 2) return p; /* a shrink that keeps at least half: stay */
      } else {
        uint8_t kind = 0;
        void *hdr = zc_segmap_header(p, &kind);
        if (kind == ZC_MAP_LARGE && zc_large_resize_in_place(p, hdr, n)) return p;
      }
    }
  } else if (old > ZC_SMALL_MAX) {
    uint8_t kind = 0;
    void *hdr = zc_segmap_header(p, &kind);
    if (kind == ZC_MAP_LARGE) {
      void *q = zc_large_grow_resident(p, hdr, n); /* resident pages: no page faults */
      if (q != NULL) return q;
      if (zc_large_resize_in_place(p, hdr, n)) return p;
      void *moved = zc_large_move(p, hdr, n); /* the kernel moves the pages: no copy */
      if (moved != NULL) return moved;
    }
  }
  void *q = zc_malloc(n);
  if (q == NULL) return NULL;
  memcpy(q, p, old < n ? old : n);
  zc_free(p);
  return q;
}

ZC_API void *zc_reallocarray(void *p, size_t count, size_t size) {
  size_t n;
  if (__builtin_mul_overflow(count, size, &n)) {
    errno = ENOMEM;
    return NULL;
  }
  return zc_realloc(p, n);
}

/* The override (libzcmem.so, libzcmem.a): the standard names are aliases of the zc_ functions above. */
#if ZC_OVERRIDE
void *malloc(size_t n) ZC_ALIAS(zc_malloc);
void *calloc(size_t c, size_t n) ZC_ALIAS(zc_calloc);
void *realloc(void *p, size_t n) ZC_ALIAS(zc_realloc);
void *reallocarray(void *p, size_t c, size_t n) ZC_ALIAS(zc_reallocarray);
void *aligned_alloc(size_t a, size_t n) ZC_ALIAS(zc_aligned_alloc);
int posix_memalign(void **out, size_t a, size_t n) ZC_ALIAS(zc_posix_memalign);
void *memalign(size_t a, size_t n) ZC_ALIAS(zc_memalign);
void *valloc(size_t n) ZC_ALIAS(zc_valloc);
void *pvalloc(size_t n) ZC_ALIAS(zc_pvalloc);
void *__libc_malloc(size_t n) ZC_ALIAS(zc_malloc);
void *__libc_calloc(size_t c, size_t n) ZC_ALIAS(zc_calloc);
void *__libc_realloc(void *p, size_t n) ZC_ALIAS(zc_realloc);
void *__libc_memalign(size_t a, size_t n) ZC_ALIAS(zc_memalign);
void *__libc_valloc(size_t n) ZC_ALIAS(zc_valloc);
void *__libc_pvalloc(size_t n) ZC_ALIAS(zc_pvalloc);
int __posix_memalign(void **out, size_t a, size_t n) ZC_ALIAS(zc_posix_memalign);
#endif
