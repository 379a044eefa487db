/* zcmem pool (arena): bump allocation for objects that die together.
 *
 * Objects are carved from blocks (64 KiB by default) and never freed one by one: zc_pool_reset frees
 * everything the pool handed out, zc_pool_destroy frees the pool too, each in O(blocks) time. A request
 * above a quarter of a block gets a block of its own. A pool may have a parent: destroying or resetting the
 * parent destroys its children first. Cleanup callbacks run in reverse order of registration when the pool
 * is reset or destroyed, after its children are gone and before its memory is released.
 * Order of a reset or destroy: the children are destroyed, then the cleanups run (last registered first);
 * this repeats until neither is left, so a cleanup may create children of its pool or register cleanups
 * (they are destroyed and run in the same reset/destroy). A cleanup may allocate from its pool. Resetting
 * or destroying a pool from one of its own cleanups (or an ancestor's, while that ancestor is being
 * destroyed) is refused with a report on stderr (it would free memory the reset is still walking).
 * Memory return: a reset keeps up to config.retain bytes of blocks for reuse; a kept block unused for the
 * purge delay (ZCMEM_PURGE_DELAY) gives its pages back to the OS at the next reset or block change, or
 * without any call through the background purger (ZCMEM_BACKGROUND=1, the default), which also gives back
 * the free part of the first block of a pool reset and then left unused for the delay; zc_pool_trim gives
 * back every kept block and the unused rest of the current block at once. The free tail of the block being
 * filled is given back only by zc_pool_trim or after a reset.
 * A memory limit makes allocation fail cleanly (NULL, errno = ENOMEM) instead of growing: it counts the
 * bytes mapped by the pool and all its descendants (a child's blocks are charged to every ancestor, and
 * each ancestor's limit applies).
 *
 * Thread safety: a pool, its ancestors and descendants form one unit that one thread at a time
 * may use (creating or destroying a child changes its parent). Different trees are independent. Handing a
 * whole tree to another thread is fine when the hand-over orders memory (a queue, a mutex).
 *
 * Errors: allocation returns NULL with errno = ENOMEM (limit reached or the OS refused) or EINVAL (align
 * not a power of two, or a NULL pool). Create returns NULL with EINVAL (bad config) or ENOMEM.
 *
 * Includes: zcmem.h only.
 */
#ifndef ZCMEM_POOL_H
#define ZCMEM_POOL_H

#include "zcmem.h"

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct zc_pool_s zc_pool_t;

typedef struct zc_pool_config_s {
  size_t block_size; /* a power of two from 4 KiB to 64 MiB (0: 64 KiB) */
  size_t limit;      /* bytes this pool and its descendants may map (0: no limit of its own) */
  size_t retain;     /* bytes of blocks a reset keeps for reuse (0: 4 blocks; SIZE_MAX: all) */
} zc_pool_config_t;

typedef struct zc_pool_stats_s {
  uint64_t in_use;      /* bytes handed out since the last reset (what callers asked, rounded to 16) */
  uint64_t peak_in_use; /* high-water mark of in_use since creation */
  uint64_t held;        /* bytes mapped by this pool (blocks, large blocks, spare blocks) */
  uint64_t tree_held;   /* held by this pool and all its descendants (what the limit counts) */
  uint64_t peak_held;   /* high-water mark of held */
  uint64_t blocks;      /* blocks held (in use + spare + large) */
  uint64_t large;       /* large blocks held (one per request above a quarter block) */
  uint64_t wasted;      /* bytes lost to block ends skipped and alignment padding since the last reset */
  uint64_t allocs;      /* allocations since creation */
  uint64_t resets;      /* resets since creation */
  uint64_t children;    /* live child pools */
  uint64_t resident;    /* upper bound of held's bytes in memory: held less the purged pages of the kept
                         * blocks and of the parked first block (after a reset) */
} zc_pool_stats_t;

/* A new pool, child of parent if parent is not NULL (cfg NULL: defaults). */
ZC_API zc_pool_t *zc_pool_create(zc_pool_t *parent, const zc_pool_config_t *cfg);
/* Destroy the children, run the cleanups (last registered first), release all memory, detach from the
 * parent. NULL is ignored. */
ZC_API void zc_pool_destroy(zc_pool_t *pool);
/* The same but the pool stays usable and empty; up to config.retain bytes of blocks are kept for reuse. */
ZC_API void zc_pool_reset(zc_pool_t *pool);

/* size bytes aligned to 16 (size 0 gives a unique 16-byte object). */
ZC_API ZC_MALLOC_ATTR void *zc_pool_alloc(zc_pool_t *pool, size_t size);
/* Zeroed (count * size, overflow checked). */
ZC_API ZC_MALLOC_ATTR void *zc_pool_calloc(zc_pool_t *pool, size_t count, size_t size);
/* align: any power of two (up to the OS page it comes from a block, above it from its own block). */
ZC_API ZC_MALLOC_ATTR void *zc_pool_alloc_aligned(zc_pool_t *pool, size_t align, size_t size);
ZC_API ZC_MALLOC_ATTR char *zc_pool_strdup(zc_pool_t *pool, const char *s);

/* A copy of n bytes at p; of at most n bytes of s, NUL-terminated; formatted text (vsnprintf's formats).
 * NULL with EINVAL for a NULL pointer or format, ENOMEM as zc_pool_alloc. */
ZC_API ZC_MALLOC_ATTR void *zc_pool_memdup(zc_pool_t *pool, const void *p, size_t n);
ZC_API ZC_MALLOC_ATTR char *zc_pool_strndup(zc_pool_t *pool, const char *s, size_t n);
ZC_API ZC_MALLOC_ATTR char *zc_pool_printf(zc_pool_t *pool, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
ZC_API ZC_MALLOC_ATTR char *zc_pool_vprintf(zc_pool_t *pool, const char *fmt, va_list ap);

/* Run fn(arg) when the pool is reset or destroyed. Returns 0, or -1 with errno = ENOMEM. */
ZC_API int zc_pool_cleanup_add(zc_pool_t *pool, void (*fn)(void *arg), void *arg);
/* Unregister the most recently registered cleanup with this fn and arg without running it (kill), or
 * unregister and run it now (run). 0, or -1 with errno = ENOENT (none registered) or EINVAL. */
ZC_API int zc_pool_cleanup_kill(zc_pool_t *pool, void (*fn)(void *arg), void *arg);
ZC_API int zc_pool_cleanup_run(zc_pool_t *pool, void (*fn)(void *arg), void *arg);

/* Give the memory of the kept blocks and of the current block's unused rest back to the OS now. */
ZC_API void zc_pool_trim(zc_pool_t *pool);

ZC_API zc_pool_t *zc_pool_parent(const zc_pool_t *pool);
ZC_API void zc_pool_stats(const zc_pool_t *pool, zc_pool_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif /* ZCMEM_POOL_H */
