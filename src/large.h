/* Layer 6, large objects: requests above ZC_SMALL_MAX (64 KiB) and any request whose alignment a page of
 * size classes cannot give. Each large object is a region with a small header at its base; freed regions
 * are cached by size class (four per doubling, page-granular) in small per-thread front caches and a
 * global pool split into dirty (still resident, reused first) and clean (purged) lists, bounded by
 * ZCMEM_LARGE_CACHE; a background purger moves dirty regions to clean after ZCMEM_PURGE_DELAY;
 * ZCMEM_LARGE_FILE backs new regions with an unlinked file so the OS can page them out without swap.
 *
 * Includes: os.h, segmap.h, options.h. Never the heap layer: the public API calls down into this.
 *
 * Regions are registered in the segment map as ZC_MAP_LARGE (+ back entries), so free() finds the header
 * of any pointer into a live region and can tell a region's base from a foreign or interior pointer.
 */
#ifndef ZC_LARGE_H
#define ZC_LARGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Allocate a region whose user block has at least size bytes and is aligned to align (a power of two,
 * >= 16). zero: the block reads as zeros. NULL with errno = ENOMEM on failure. */
void *zc_large_alloc(size_t size, size_t align, bool zero);

/* Free a block returned by zc_large_alloc; hdr is the region base found through the segment map.
 * A pointer that is not the block's start, or a region already free, is reported (zc_error) and ignored.
 * May start the background purger thread (first free into the cache, ZCMEM_BACKGROUND=1). */
void zc_large_free(void *p, void *hdr);

/* Usable bytes of the block p in the region at hdr (0 if p is not a live block start). */
size_t zc_large_usable(const void *p, const void *hdr);

/* Grow or shrink in place if the region has room (returns true), else false. A shrink always succeeds (the
 * tail of the mapping is unmapped when it is three quarters of it or more); a growth extends the mapping when the
 * address space after it is free. False also when p is not a live block start. */
bool zc_large_resize_in_place(void *p, void *hdr, size_t new_size);

/* Grow a block that could not grow in place by moving its pages, without copying them, to a new mapping
 * large enough for new_size bytes. Returns the new block (p and hdr are gone) with the same contents and
 * at least the alignment p had up to 4 MiB; or NULL with nothing changed (file-backed regions, blocks
 * aligned beyond 4 MiB, no address space): the caller copies. */
void *zc_large_move(void *p, void *hdr, size_t new_size);

/* Grow a block by copying it into a region resident in the cache (one of the cached dirty regions that
 * would serve a malloc of new_size), when the block is small enough (GROW_COPY_MAX) that copying its bytes
 * costs less than faulting in fresh pages for the growth; p is then freed. Returns the new block, or NULL
 * with nothing changed (no such region, a block too big, not a growth, or p not a live block start). */
void *zc_large_grow_resident(void *p, void *hdr, size_t new_size);

/* Purge cached dirty regions: all of them (front caches included) if force, else those older than the
 * purge delay; also unmaps clean regions unused for long. Returns the number of resident bytes released. */
size_t zc_large_purge(bool force);

/* Unmap every cached region (dirty and clean): the address space is needed elsewhere (a mapping failed).
 * Returns the bytes of address space unmapped (resident or not). */
size_t zc_large_release_cache(void);

typedef struct zc_large_stats_s {
  uint64_t live_regions, live_bytes;     /* regions handed out and their usable bytes */
  uint64_t cached_dirty, cached_clean;   /* bytes cached for reuse */
  uint64_t mapped;                       /* bytes mapped in all regions (live + cached) */
  uint64_t purged;                       /* bytes purged or unmapped since start */
  uint64_t cache_hits, cache_misses;
  uint64_t lock_contended;               /* pool-lock acquisitions that found it held */
  uint64_t purge_calls;                  /* regions purged (one system call each) */
  uint64_t misses, miss_bytes;           /* purged regions taken again within one purge delay */
  uint64_t grown;                        /* misses whose region was built from cached pages (compose) */
  uint64_t split;                        /* dirty regions split: a tail of 4 MiB or more beyond a request cached */
  uint64_t filled;                       /* cached dirty regions whose pages were moved into a composed one */
} zc_large_stats_t;
void zc_large_stats(zc_large_stats_t *out);

/* Thread exit (called by the heap layer's thread-exit hook): gives the thread's front-cache shard to the
 * next new thread. Without it a new thread finds no free shard after NSHARD (16) threads and uses the
 * shared one (slower: atomic counters, shared slots). Harmless to call twice or from a thread that never
 * used the large layer. */
void zc_large_thread_exit(void);

/* The background purger (ZCMEM_BACKGROUND=1): one thread for the whole allocator, started on the first
 * free into a cache (or a second thread's first malloc); after an idle spell it sleeps until woken (or a
 * deadline, while the hook watches). It sweeps the large-region cache and calls the hook,
 * which the heap layer sets to sweep small and medium pages; the hook returns true while it still holds
 * dirty memory to age, and sets *watch while memory may become free with no call that wakes the purger (a
 * page waiting for its owner's local frees): idle, the purger then sleeps with a deadline. */
void zc_background_set_hook(bool (*fn)(bool *watch));
/* Start it (creates the thread): only outside free (malloc slow paths, public calls); see large_pool.c. */
void zc_background_start(void);
void zc_background_allow(void); /* the fork handlers are registered: zc_background_start may start it */
/* Wake the purger if it sleeps as idle, or note it as wanted if it never ran; never starts a thread
 * (callable inside free()). */
void zc_background_wake(void);
bool zc_background_wanted(void); /* a free asked for the purger before it ever ran */
/* While either is non-zero the thread is inside free(): zc_background_start only asks. no_start: a free
 * that sets up the thread's heap (a malloc may follow); in_free: any free, in a debug build, which reports a
 * direct start from a free path. */
extern __thread unsigned zc_background_no_start, zc_background_in_free;
void zc_background_fork_child(void); /* last in the fork child: the parent's purger restarted */
bool zc_background_after_fork(void); /* in the fork child's handlers: zc_background_fork_child will start it */
/* The purger thread's state (large_pool.c): 0 never started, 1 running, 2 none (its start failed; a fork child
 * under a sanitizer), 3 idle: its last sweep before the idle sleep, or that sleep. Read inline: a remote
 * free's hand-over tests it with one compare and skips the wake call while the purger runs.
 *
 * The wake-up protocol. Whoever makes work for an idle purger (a hand-over, a front-cache put, a page
 * emptied, a region cached, ...) publishes the work first, then reads the state, and wakes the purger unless
 * it reads 1. The purger sets 3 before its last sweep (large_pool.c, purger_settle), so a publisher that
 * reads 1 published before that sweep looks, and the sweep finds the work. For that, a lock-free publish is
 * a seq_cst atomic write (the hand-over's compare-and-swap, free.c; a front-slot put, large_front.c), the
 * state read after it is seq_cst (zc_background_running, lg_front_tick), and so are the purger's store of 3
 * and the loads by which its sweep looks (thread_free, front slots): of the two, one sees the other. Work
 * published under a lock the sweep takes after the store (h->lock, the pool lock, the abandoned list's) needs
 * no more: the lock orders the two. On x86-64 the seq_cst compare-and-swap and loads are the instructions of
 * the release and relaxed ones (lock cmpxchg, mov): the free path costs what it did. */
extern int lg_purger_state __attribute__((visibility("hidden")));
static inline bool zc_background_running(void) { return __atomic_load_n(&lg_purger_state, __ATOMIC_SEQ_CST) == 1; }

/* fork: the parent holds the pool lock across fork; the child reinitialises it (and the purger). */
void zc_large_fork_prepare(void);
void zc_large_fork_parent(void);
void zc_large_fork_child(void);

#endif /* ZC_LARGE_H */
