/* Layer 4 and 7, the allocation paths: malloc's slow path (find a page with free blocks for a class), the
 * page free-list refills (collect, extend), and the public zc_malloc family built on them.
 *
 * The slow path runs once per page-full of allocations. It looks at no more than ZC_QUEUE_SCAN pages of
 * the class before taking a new page, rotating full pages to the back of the queue, so pages whose blocks
 * another thread freed (the producer/consumer case) come round again and are reused first.
 */
#include "internal.h"
#include "large.h"

#include <errno.h>
#include <string.h>

#define ZC_QUEUE_SCAN 4u
#define ZC_EXTEND_BYTES ((size_t)4096)

/* Put chain (count blocks, tail unknown) in front of pg's free list. */
static void prepend(zc_page_t *pg, zc_block_t *chain) {
  if (pg->free != NULL) {
    zc_block_t *t = chain;
    while (t->next != NULL) t = t->next;
    t->next = pg->free;
  }
  pg->free = chain;
}

/* Take the page's remote frees (one exchange; the count rides in the word, so no walk is needed to keep
 * used exact). */
static void take_thread_free(zc_page_t *pg) {
  if (atomic_load_explicit(&pg->thread_free, memory_order_relaxed) == 0) return;
  uintptr_t v = atomic_exchange_explicit(&pg->thread_free, 0, memory_order_acquire);
  pg->used -= ZC_TF_COUNT(v);
  prepend(pg, ZC_TF_PTR(v));
}

/* malloc's slow path, called with pg->free empty: the owner's own frees first (warm in its cache), the
 * other threads' only when there are none, so the usual case touches no list but the one it takes. */
bool zc_page_collect(zc_page_t *pg) {
  if (pg->local_free != NULL) {
    prepend(pg, pg->local_free);
    pg->local_free = NULL;
  } else {
    take_thread_free(pg);
  }
  return pg->free != NULL;
}

void zc_page_collect_all(zc_page_t *pg) {
  take_thread_free(pg);
  if (pg->local_free != NULL) {
    prepend(pg, pg->local_free);
    pg->local_free = NULL;
  }
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
  for (uint32_t i = 1; i < n; i++, b += bsize) ((zc_block_t *)b)->next = (zc_block_t *)(b + bsize);
  ((zc_block_t *)b)->next = pg->free;
  pg->free = (zc_block_t *)first;
  pg->capacity = (uint16_t)(pg->capacity + n);
  return true;
}

/* A page of class cls with a free block, now first in its queue; NULL if out of memory. */
static zc_noinline zc_page_t *page_for_class(zc_heap_t *h, unsigned cls) {
  zc_page_queue_t *q = &h->queues[cls];
  if (h->pending_count != 0) zc_remote_flush(h);
  /* dirty_first and next_purge_check are also written by the purger thread (under h->lock) */
  if (__atomic_load_n(&h->dirty_first, __ATOMIC_RELAXED) != NULL) {
    if (zc_unlikely(!zc_purger_active())) zc_purger_ensure();
    if (zc_os_clock_ns() >= __atomic_load_n(&h->next_purge_check, __ATOMIC_RELAXED)) zc_segment_purge(h, false);
  }
  __atomic_fetch_add(&h->stat_class_refills[cls], 1, __ATOMIC_RELAXED);
  zc_page_t *found = NULL;
  for (unsigned i = 0; i < ZC_QUEUE_SCAN && q->first != NULL; i++) {
    zc_page_t *pg = q->first;
    if (pg->free != NULL || zc_page_collect(pg) || zc_page_extend(pg)) {
      found = pg;
      break;
    }
    if (q->count == 1) break;
    zc_queue_remove(q, pg); /* full: let the next page have a turn, this one comes round again */
    zc_queue_push_back(q, pg);
  }
  if (found == NULL) {
    found = zc_segment_page_alloc(h, cls);
    if (found == NULL && zc_large_release_cache() != 0) /* out of address space: the large cache gives */
      found = zc_segment_page_alloc(h, cls);
    if (found == NULL) {
      zc_heap_queue_changed(h, cls);
      return NULL;
    }
    zc_queue_push_front(q, found);
    zc_page_extend(found);
  }
  zc_heap_queue_changed(h, cls);
  return found;
}

void *zc_malloc_generic(zc_heap_t *h, size_t n, bool zero) {
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
  if (pg == NULL || pg->free == NULL) {
    pg = page_for_class(h, cls);
    if (pg == NULL) {
      errno = ENOMEM;
      return NULL;
    }
  }
  zc_block_t *b = pg->free;
  pg->free = b->next;
  pg->used++;
  if (zero) memset(b, 0, n);
  return b;
}

/* ---- the public malloc family ---- */

ZC_API void *zc_malloc(size_t n) {
  zc_heap_t *h = zc_heap_get();
  if (zc_likely(n <= ZC_DIRECT_MAX)) return zc_malloc_small(h, n);
  return zc_malloc_generic(h, n, false);
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
  size_t old = zc_usable_size(p);
  if (old == 0) { /* not ours, or already free: zc_usable_size reported it */
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
