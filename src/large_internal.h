/* Layer 6, large objects: what large.c, large_pool.c and large_front.c share, private to them (the rest
 * of zcmem sees only large.h). The three files split the layer along its seams:
 *   large.c        entry points (alloc, free, realloc helpers, stats, fork), mapping and growing regions;
 *   large_pool.c   the global pool (per-class dirty and clean lists), its bounds and time policy, purging
 *                  and unmapping victims, and the background purger thread;
 *   large_front.c  the per-thread front caches in front of the pool, and the live-byte counters.
 * Names shared between them start with lg_.
 *
 * Includes: large.h, large_region.h, options.h, os.h, segmap.h. Never the heap layer.
 *
 * Locking: lg_pool.lock protects the pool's lists, lg_pool.bytes/count, the front's sweep notes and the
 * demand window. It is a leaf (nothing else is locked while it is held) and it is never held across mmap,
 * munmap, madvise or memset. The front takes no lock.
 */
#ifndef ZC_LARGE_INTERNAL_H
#define ZC_LARGE_INTERNAL_H

#include "large.h"
#include "large_region.h"
#include "options.h"
#include "os.h"
#include "segmap.h"

#define LARGE_MAX ((size_t)1 << 46)    /* larger requests (or alignments) fail with ENOMEM */
#define MIN_REGION ((size_t)64 * 1024) /* smallest mapping (shrinking never goes below) */
#define NCLASS 192u                    /* classes 4*b+q for mappings up to 2^47 */
#define GROW_COPY_MAX ((size_t)2 << 20) /* realloc copies a block this small into a resident region */
#define CLEAN_TTL_MIN ((uint64_t)1000000000u)

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

enum { DIRTY = 0, CLEAN = 1 };      /* list index */
enum { L_CLASS = 0, L_AGE = 1 };    /* link index */

typedef struct rlist_s {
  region_t *head, *tail;
} rlist_t;


/* Region list for work done outside the lock (chained through link[L_CLASS].next). */
typedef struct victims_s {
  region_t *purge, *unmap;
} victims_t;

/* The global pool (large_pool.c). */
typedef struct lg_pool_s {
  zc_lock_t lock;
  rlist_t age[2];         /* oldest first */
  size_t bytes[2];        /* mapped bytes of the cached regions (atomic stores: read by stats) */
  size_t count[2];
  /* last: the purger's sweeps read the fields above in every process, these only once regions are cached
   * (6 KiB: the fields above share an OS page with the front caches, segmap.h's ZC_BSS_LAST) */
  rlist_t cls[2][NCLASS]; /* per class, most recently cached first */
} lg_pool_t;
extern lg_pool_t lg_pool;

/* Purger thread: 0 not running, 1 running, 2 could not start (the policy runs inline). Changed under
 * lg_pool.lock (atomic stores: read without it). */
extern int lg_purger_state;

/* Counters for zc_large_stats (atomic adds). */
typedef struct lg_stats_s {
  uint64_t mapped, purged, contended;
  uint64_t purge_calls, pmisses, pmiss_bytes; /* purges; purged regions taken again within a delay */
  uint64_t grown;                             /* misses served by moving a smaller cached region */
  uint64_t split;                             /* cached regions split for a smaller request */
  uint64_t filled;                            /* cached regions moved into a composed region */
} lg_stats_t;
extern lg_stats_t lg_st;

#define STAT_ADD(f, n) __atomic_fetch_add(&lg_st.f, (uint64_t)(n), __ATOMIC_RELAXED)
#define STAT_SUB(f, n) __atomic_fetch_sub(&lg_st.f, (uint64_t)(n), __ATOMIC_RELAXED)

/* ---- front cache ----
 * In front of the pool: NSHARD shards owned by one thread each, plus one shared shard for the threads that
 * find none free; each on its own cache line with its counters. A thread claims a shard on its first call
 * and gives it back in zc_large_thread_exit (regions cached in it stay, for the next owner or the purger).
 * A slot holds one dirty region as a single word, base | class (the base is 4 MiB-aligned, so the low bits
 * are free): a region goes in and out with one compare-and-swap (the purger may take it concurrently), no
 * lock, no clock read. An owned shard's counters are updated without atomic read-modify-writes (only its
 * owner writes them); the shared shard's with them. A shard holds at most budget/8 / (NSHARD + 1) bytes
 * (about 7.5 MiB with the default budget of 1 GiB, so regions up to that size use the front): the front
 * holds at most an eighth of the budget and the pool gets the rest; its bytes count against the dirty
 * bound with the pool's (lg_dirty_bytes). Aging: every sweep (purger pass, zc_large_purge, or
 * inline policy run at most every half delay) notes each slot's word and when it first saw it; a word
 * still there a purge delay later is taken out and purged into the pool's clean lists. A word that left
 * and came back between two sweeps looks older than it is: it is purged early, harmlessly. */
#define NSHARD 16u
#define NFRONT (NSHARD + 1u) /* lg_front[NSHARD] is the shared shard */
#define FRONT_SLOTS 4u
#define REUSE_SPAN 8u /* a request of class c may take a cached region up to class c+8: four times its size */
#define FRONT_CLS_MASK ((uintptr_t)0xff)

typedef struct front_s {
  uintptr_t slot[FRONT_SLOTS];
  /* Counted in the shard of the thread that allocates or frees (only sums over shards mean anything):
   * live regions = allocs - frees, hits = allocs - misses; live_bytes wraps (a signed sum). */
  uint64_t allocs, frees, misses, live_bytes;
} __attribute__((aligned(64))) front_t;

extern front_t lg_front[NFRONT]; /* large_front.c */

/* Add n (two's complement for a decrement) to a counter of f. */
static inline void fstat(front_t *f, uint64_t *field, uint64_t n) {
  if (unlikely(f == &lg_front[NSHARD])) __atomic_fetch_add(field, n, __ATOMIC_RELAXED);
  else __atomic_store_n(field, __atomic_load_n(field, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}
#define FSTAT_ADD(f, field, n) fstat((f), &(f)->field, (uint64_t)(n))

/* ---- size classes of regions: c = 4*b + q covers (2^b, 2^(b+1)] in steps of 2^(b-2) ---- */

static inline unsigned class_ceil(size_t n) { /* smallest class whose size >= n; n > 16 */
  size_t w = n - 1;
  unsigned b = 63u - (unsigned)__builtin_clzll((unsigned long long)w);
  return (b << 2) + (unsigned)((w >> (b - 2u)) & 3u);
}

static inline size_t class_bytes(unsigned c) { return (size_t)(5u + (c & 3u)) << ((c >> 2) - 2u); }

static inline size_t page_round(size_t n) {
  size_t pg = zc_os_page_size();
  return (n + pg - 1) & ~(pg - 1);
}

static inline unsigned class_floor(size_t map_size) { /* largest class whose size <= map_size */
  unsigned c = class_ceil(map_size);
  return class_bytes(c) > map_size ? c - 1 : c;
}

/* ---- options ---- */

static inline size_t cache_budget(void) {
  long v = zc_opt(zc_option_large_cache);
  return v > 0 ? (size_t)v : 0;
}

static inline uint64_t delay_ns(void) {
  long v = zc_opt(zc_option_purge_delay);
  return v > 0 ? (uint64_t)v * 1000000u : 0;
}

static inline uint64_t clean_ttl_ns(uint64_t delay) {
  uint64_t t = delay * 10u;
  return t < CLEAN_TTL_MIN ? CLEAN_TTL_MIN : t;
}

static inline void lg_chain(region_t **head, region_t *r) { r->link[L_CLASS].next = *head, *head = r; }

/* The budget split: the front holds at most budget/8 (a shard at most lg_front_max); the pool holds the
 * rest, of which at most lg_dirty_budget() dirty. */
static inline size_t lg_front_max(size_t budget) { return budget / 8 / NFRONT; }
static inline size_t lg_pool_budget(size_t budget) { return budget - budget / 8; }

/* ---- large.c ---- */
void lg_report_corrupt(const region_t *r, const char *when);

/* ---- large_pool.c ---- */
void lg_pool_lock(void);
void lg_pool_unlock(void);
void lg_cache_insert(region_t *r, int w, uint64_t now);
void lg_cache_unlink(region_t *r);
void lg_note_live_peak(void);
size_t lg_dirty_budget(size_t budget);
size_t lg_dirty_bytes(void);
void lg_collect_over_budget(victims_t *v, size_t budget);
void lg_collect_due(victims_t *v, uint64_t now, bool force);
void lg_policy_locked(victims_t *v, uint64_t now);
region_t *lg_cache_take(unsigned c, bool dirty_only, int *from, victims_t *v, uint64_t now, bool inline_run);
size_t lg_unmap_region(region_t *r);
/* Unmap size bytes at r and take them off the map and the mapped count, reading no header: a region this
 * process no longer owns (a fork child's inherited file-backed ones) or one just checked (lg_unmap_region). */
void lg_forget_range(void *r, size_t size);
size_t lg_process_victims(victims_t *v);
bool lg_want_purger(void);
void lg_purger_request(void); /* from any path, free included: wake or note as wanted, never a thread start */
void lg_purger_fork_child(void);
void lg_front_tick(void);
bool lg_inline_policy(void);
extern uint64_t lg_next_sweep; /* inline policy: when the next front sweep is due (ns) */

/* ---- large_front.c ---- */
extern size_t lg_front_held; /* bytes in front slots (atomic) */
front_t *lg_my_front(void);
region_t *lg_front_put(front_t *f, region_t *r, size_t budget);
region_t *lg_front_take(front_t *f, unsigned c);
region_t *lg_front_take_below(front_t *f, unsigned c, unsigned lo);
void lg_front_sweep(victims_t *v, uint64_t now, bool force);
size_t lg_front_bytes(void);
void lg_front_fork_child(void);
uint64_t lg_live_bytes_now(void);

#endif /* ZC_LARGE_INTERNAL_H */
