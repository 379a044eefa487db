/* zcmem counted pages: an allocator for short-lived messages freed in roughly the order they were made.
 *
 * Objects are bump-allocated into the current page (64 KiB by default, aligned to its size, carved from
 * 4 MiB OS chunks). Each page counts its live objects; any object is freed on its own, from any thread, by
 * its pointer alone (zc_pages_free finds the page by masking: there is no per-object header). A page whose
 * count reaches zero is recycled at once; the current page simply restarts at its beginning when all its
 * objects are gone. Empty pages beyond a bound (max_empty) are purged, coldest first, once they have been
 * empty for the purge delay (ZCMEM_PURGE_DELAY), when the owner next takes a page; a thread that empties a
 * page while four times the bound are already waiting purges that page itself at once. While the
 * background purger runs (ZCMEM_BACKGROUND=1, the default), it also purges every page that has been empty
 * for the purge delay, without any call (max_empty = SIZE_MAX turns both off), and unmaps a 4 MiB chunk
 * once all its object pages are purged. Objects larger than a page get a chunk of their own, freed by the
 * same call.
 *
 * Thread safety:
 *   - zc_pages_alloc*, zc_pages_collect, zc_pages_stats and zc_pages_destroy of one zc_pages_t must be
 *     called by one thread at a time (the owner; give each producing thread its own zc_pages_t).
 *   - zc_pages_free may be called from any thread at any time, concurrently with everything above except
 *     zc_pages_destroy (freeing into a destroyed allocator is a use after free; it is reported when the
 *     chunk is already gone).
 *
 * Errors: allocation returns NULL with errno = ENOMEM (memory limit reached or the OS refused) or EINVAL
 * (bad alignment, or a NULL allocator). A free of a pointer at which no live object of a counted-pages
 * allocator starts is reported with a one-line message on stderr, counted in stats.errors, and changes
 * nothing: a pointer outside every live allocator, into chunk metadata, misaligned, inside an object, a
 * double free. Each page keeps a bitmap of its live objects (one bit per 16 bytes, set at allocation,
 * cleared at free), so these are caught at the bad free itself, whichever page they land on. What cannot
 * be caught without a per-object header: a free of the start of another live object (it is that object's
 * free), and a double free that arrives after the page was recycled and a new object was placed at the
 * same address (it frees the new object).
 * As for every bad free of zcmem, the report is followed by abort() unless ZCMEM_ABORT_ON_ERROR=0 (the
 * default is 1, as glibc aborts on a double free); with 0 the call returns having changed nothing.
 *
 * Includes: zcmem.h only.
 */
#ifndef ZCMEM_PAGES_H
#define ZCMEM_PAGES_H

#include "zcmem.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct zc_pages_s zc_pages_t;

typedef struct zc_pages_config_s {
  size_t page_size; /* a power of two from 16 KiB to 1 MiB (0: 64 KiB) */
  size_t max_empty; /* empty pages kept ready while the owner allocates (0: 8); the background purger
                     * still purges them once empty for the purge delay (SIZE_MAX: never purge at all) */
  size_t limit;     /* at most this many bytes in memory (stats.resident: chunk pages not purged, large
                     * objects); the allocator purges its empty pages before it refuses (0: no limit) */
} zc_pages_config_t;

typedef struct zc_pages_stats_s {
  uint64_t in_use;       /* bytes of pages holding live objects (or current) + large objects' mappings */
  uint64_t peak_in_use;  /* high-water mark of in_use */
  uint64_t held;         /* bytes mapped from the OS (chunks and large objects): address space reserved */
  uint64_t resident;     /* upper bound of held's bytes in memory: held less purged and never-carved pages */
  uint64_t peak_held;    /* high-water mark of held */
  uint64_t pages;        /* pages carved from chunks still mapped (busy, empty or purged) */
  uint64_t pages_busy;   /* pages that are current or still hold live objects */
  uint64_t pages_purged; /* empty pages whose memory was given back to the OS */
  uint64_t wasted;       /* bytes left unused at the ends of retired pages still holding objects */
  uint64_t allocs;       /* objects handed out since creation */
  uint64_t frees;        /* objects freed since creation (any thread) */
  uint64_t large_live;   /* live objects larger than a page */
  uint64_t errors;       /* bad or double frees reported for this allocator */
  uint64_t chunks_released; /* 4 MiB chunks unmapped before destroy (every object page empty and purged) */
} zc_pages_stats_t;

/* A new allocator (cfg may be NULL for defaults). NULL + EINVAL for a bad config, ENOMEM if out of memory. */
ZC_API zc_pages_t *zc_pages_create(const zc_pages_config_t *cfg);
/* Unmap everything, live objects included: no other thread may still free into it. */
ZC_API void zc_pages_destroy(zc_pages_t *pg);
/* Destroy once every object is freed and no freeing thread still touches the allocator: waits up to
 * timeout_ms (0: look once; negative: no limit), then returns 0. While objects are still live at the
 * deadline, returns -1 with errno = EBUSY and leaves the allocator as it was (EINVAL for NULL). */
ZC_API int zc_pages_destroy_wait(zc_pages_t *pg, long timeout_ms);

/* size bytes aligned to 16 (size 0 gives a unique 16-byte object). */
ZC_API ZC_MALLOC_ATTR void *zc_pages_alloc(zc_pages_t *pg, size_t size);
/* align: a power of two up to 4096 (EINVAL otherwise). */
ZC_API ZC_MALLOC_ATTR void *zc_pages_alloc_aligned(zc_pages_t *pg, size_t align, size_t size);
/* count * size zeroed bytes (overflow: NULL, ENOMEM). */
ZC_API ZC_MALLOC_ATTR void *zc_pages_calloc(zc_pages_t *pg, size_t count, size_t size);
/* Free p (NULL is ignored). Any thread. */
ZC_API void zc_pages_free(void *p);
/* Bytes usable at p, a live object (its size rounded up to 16; a large object's whole mapping past it).
 * Any thread holding p. 0 for NULL; a pointer that is not a live object is reported and gives 0. */
ZC_API size_t zc_pages_usable_size(const void *p);

/* Owner: take back the pages other threads emptied and purge every empty page now (an idle hook's call:
 * the next allocations fault their pages back in). */
ZC_API void zc_pages_collect(zc_pages_t *pg);
ZC_API void zc_pages_stats(zc_pages_t *pg, zc_pages_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif /* ZCMEM_PAGES_H */
