/* zcmem: a memory allocator for high-volume message-passing systems.
 *
 * This header is the prefixed API: the same allocator as the malloc family that libzcmem.so exports
 * (LD_PRELOAD or link), callable beside the system malloc when the library is built with
 * ZCMEM_OVERRIDE=OFF. Every function is thread-safe. Errors follow the C/POSIX contract of the
 * unprefixed counterpart: NULL and errno = ENOMEM on exhausted memory, EINVAL for a bad alignment.
 */
#ifndef ZCMEM_H
#define ZCMEM_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define ZC_API __attribute__((visibility("default")))
#define ZC_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#else
#define ZC_API
#define ZC_MALLOC_ATTR
#endif

#define ZCMEM_VERSION_MAJOR 0
#define ZCMEM_VERSION_MINOR 1

/* ---- the malloc family ---- */
ZC_API ZC_MALLOC_ATTR void *zc_malloc(size_t size);
ZC_API ZC_MALLOC_ATTR void *zc_calloc(size_t count, size_t size);
ZC_API void *zc_realloc(void *p, size_t size);
ZC_API void *zc_reallocarray(void *p, size_t count, size_t size);
ZC_API void zc_free(void *p);
ZC_API void zc_free_sized(void *p, size_t size);                       /* C23 */
ZC_API void zc_free_aligned_sized(void *p, size_t align, size_t size); /* C23 */
ZC_API ZC_MALLOC_ATTR void *zc_aligned_alloc(size_t align, size_t size);
ZC_API int zc_posix_memalign(void **out, size_t align, size_t size);
ZC_API ZC_MALLOC_ATTR void *zc_memalign(size_t align, size_t size);
ZC_API ZC_MALLOC_ATTR void *zc_valloc(size_t size);
ZC_API ZC_MALLOC_ATTR void *zc_pvalloc(size_t size);
ZC_API size_t zc_usable_size(const void *p);
/* zc_usable_size for a pointer that may not be zcmem's: the bytes usable from p to the end of its block if p
 * lies in a block of an in-use page or is the start of a live large block, else 0 and no report. For layers
 * that validate pointers a caller hands them (it cannot tell a freed small block from a live one). */
ZC_API size_t zc_owned_size(const void *p);
ZC_API ZC_MALLOC_ATTR char *zc_strdup(const char *s);

/* Return free memory to the OS now: collects this thread's heap, purges every empty page and the large
 * region cache. Returns 1 if memory was released, 0 otherwise (the malloc_trim contract). */
ZC_API int zc_trim(size_t pad);

/* Collect this thread's heap: take in blocks freed by other threads, retire empty pages, purge the ones
 * whose delay has passed (all of them if force). Cheap to call from an event loop's idle hook. */
ZC_API void zc_collect(bool force);

/* Flush this thread's pending remote frees and give its heap back (pages go to live threads or the OS).
 * Called automatically at thread exit; call it earlier from a thread that will free no more. */
ZC_API void zc_thread_done(void);

/* 1 if this library was built with ZCMEM_DEBUG (full double-free and block-grid checks on every free). */
ZC_API int zc_debug_build(void);

/* ---- stats ---- */
typedef struct zc_stats_s {
  uint64_t allocated;       /* bytes in blocks handed out and not freed (usable sizes); a block another
                               thread freed counts until that thread hands it over (at most
                               ZC_REMOTE_BATCH blocks of one page per freeing thread, held until its
                               next free of another page or its next malloc slow path) */
  uint64_t committed;       /* bytes of pages and regions the allocator holds that may be resident */
  uint64_t purged;          /* bytes returned to the OS since start (MADV_DONTNEED/FREE or munmap) */
  uint64_t reserved;        /* bytes of address space mapped */
  uint64_t rss;             /* resident set size of the process, from the OS */
  uint64_t peak_rss;        /* peak resident set size of the process, from the OS */
  uint64_t remote_frees;    /* blocks freed by a thread that does not own them */
  uint64_t remote_batches;  /* atomic hand-overs that carried those blocks */
  uint64_t segments;        /* live small/medium segments */
  uint64_t large_live;      /* live large regions */
  uint64_t large_cached;    /* bytes of large regions cached for reuse */
  uint64_t threads;         /* live heaps */
  uint64_t abandoned;       /* segments of exited threads not yet adopted */
  uint64_t errors;          /* invalid or double frees reported */
  /* the purge policy (docs/design.md, "Giving memory back") */
  uint64_t dirty;           /* bytes of empty pages and cached large regions that may be resident */
  uint64_t dirty_budget;    /* the process's budget of empty small/medium pages kept resident */
  uint64_t purge_calls;     /* purge system calls (madvise) made */
  uint64_t purge_misses;    /* pages and large regions purged, then taken again within one purge delay */
  uint64_t purge_miss_bytes;
  uint64_t segments_cached; /* empty segments in the segment cache */
  uint64_t segments_mapped; /* segments mapped from the OS since start (not taken from the cache) */
  uint64_t pages_taken;     /* small/medium pages given a size class since start (fresh, purged or resident) */
  uint64_t pages_reclaimed; /* pages other threads' frees emptied in a live heap, reclaimed by the background
                               purger without their owner, and purged if it stays idle a purge delay more
                               (docs/design.md, "Idle owners") */
} zc_stats_t;

ZC_API void zc_stats_get(zc_stats_t *out);
/* Human-readable summary (totals and a line per size class) on file descriptor fd (2 = stderr). */
ZC_API void zc_stats_print(int fd);
/* The same as JSON into buf; returns the length it needs (snprintf contract). */
ZC_API size_t zc_stats_json(char *buf, size_t cap);

/* Remote-free traffic per pair of threads: the blocks of `owner`'s pages that `freer` freed (the
 * producer/consumer balance), counted when the freer hands a batch over, so blocks still waiting in a
 * freer's pending batch (at most 64) are not in yet. Threads are named by their heap id
 * (zc_thread_heap_id) and the kernel thread id of the heap's current or last thread: a heap whose thread
 * exited is reused by a later thread, and its counts go on adding up. */
#define ZC_PAIR_OTHER 0xFFFFFFFFu /* owner: a page with no owner (its thread had exited), or a freer's
                                     owners beyond the 16 it keeps apart */
typedef struct zc_pair_stats_s {
  uint32_t freer, owner;         /* heap ids */
  uint64_t freer_tid, owner_tid; /* kernel thread ids (0 when unknown) */
  uint64_t blocks, bytes;        /* blocks and their bytes (block sizes) freed */
  uint64_t batches;              /* hand-overs (one atomic operation each) that carried them */
} zc_pair_stats_t;
/* The pairs with the most bytes, largest first, into out[0..max); returns how many pairs there are. */
ZC_API size_t zc_stats_pairs(zc_pair_stats_t *out, size_t max);
/* The calling thread's heap id (the heap is made if the thread has none yet); UINT32_MAX if out of memory. */
ZC_API uint32_t zc_thread_heap_id(void);

/* ---- options (ZCMEM_* environment variables, read once) ---- */
typedef enum zc_option_e {
  zc_option_stats = 0,      /* ZCMEM_STATS: 0 off, 1 text summary at exit, 2 JSON at exit */
  zc_option_purge_delay,    /* ZCMEM_PURGE_DELAY: ms an empty page or cached region stays dirty (100) */
  zc_option_purge_mode,     /* ZCMEM_PURGE_MODE: 0 MADV_DONTNEED, 1 MADV_FREE (0) */
  zc_option_dirty_budget,   /* ZCMEM_DIRTY_BUDGET: floor of the process-wide dirty-page budget (8M) */
  zc_option_large_cache,    /* ZCMEM_LARGE_CACHE: bytes of freed large regions kept for reuse (1G) */
  zc_option_large_file,     /* ZCMEM_LARGE_FILE: 1 back large regions by an unlinked file (0) */
  zc_option_background,     /* ZCMEM_BACKGROUND: 1 run the background purger thread (1) */
  zc_option_verbose,        /* ZCMEM_VERBOSE: 1 warnings, 2 and the options in effect (0) */
  zc_option_abort_on_error, /* ZCMEM_ABORT_ON_ERROR: abort() after reporting a bad free (1) */
  zc_option_huge_pages,     /* ZCMEM_HUGE_PAGES: 1 ask for transparent huge pages on segments (0) */
  zc_option_borrow,         /* ZCMEM_BORROW: a 2-64 KiB malloc may take a free block this many classes up (8) */
  zc_option_count
} zc_option_t;

ZC_API long zc_option_get(zc_option_t opt);
ZC_API void zc_option_set(zc_option_t opt, long value);

#ifdef __cplusplus
}
#endif
#endif /* ZCMEM_H */
