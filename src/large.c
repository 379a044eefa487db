/* Layer 6, large objects: blocks above ZC_SMALL_MAX and blocks whose alignment a page of size classes
 * cannot give. Each block lives alone in a region: one OS mapping, 4 MiB-aligned so the segment map can
 * describe it, with a 128-byte header at its base and the user block right after it (rounded up to the
 * requested alignment). Regions are sized in classes, four per doubling (so a mapping exceeds header +
 * alignment + request by at most 25%, and the pages of that tail that are never touched cost no memory).
 *
 * Freed regions are cached at two levels:
 *   front  per-thread shards of a few lock-free slots for small regions (see "front cache" below);
 *   pool   one global pool, by class, two lists per class:
 *            dirty  still resident; reused first, most recently freed first (likely still in cache);
 *            clean  purged (zc_os_purge from the second OS page on); reused after dirty.
 * A request takes a region of its class or the next one (front, then pool dirty, then pool clean), or maps
 * a new one. Policy: a dirty region cached for longer than the purge delay is purged and becomes clean; a
 * clean region unused for max(10 x delay, 1 s) is unmapped. Budget (ZCMEM_LARGE_CACHE = B): the front
 * holds at most B/8, the pool at most B - B/8 (oldest clean unmapped first, then oldest dirty); dirty bytes
 * (front and pool) at most the recent demand minus what is live (dirty_budget) and at most B/4 (oldest dirty
 * purged at once); so at most B cached and 3B/8 resident. A miss may grow a smaller dirty region by moving
 * its pages (grow_cached). The time policy runs
 * on a background thread started on the first free into the cache (ZCMEM_BACKGROUND=1), else inline on
 * allocations and frees. File-backed regions (ZCMEM_LARGE_FILE=1) are never purged (MADV_DONTNEED does not
 * free the pages of a shared file mapping): where an anonymous region would be purged, it is unmapped.
 *
 * Invariants:
 *  - a region's chunks are marked ZC_MAP_LARGE (+ back entries) from the moment its header is written to
 *    just before it is unmapped (or moved): the entry is cleared before the munmap, so a chunk the map
 *    calls ours always has its header mapped;
 *  - the header page is never purged, so validating a pointer never faults;
 *  - a region is in exactly one state: LIVE (handed out), DIRTY (in one front slot, or in the pool's dirty
 *    class and age lists), CLEAN (in the pool's clean lists), or BUSY (in no slot or list, owned by the one
 *    thread that is allocating, freeing, purging or unmapping it). Every change of owner is a
 *    compare-and-swap (LIVE -> BUSY in free, slot word -> 0 in the front) or happens under pool.lock.
 *
 * Locking: pool.lock protects the pool's lists, pool.bytes/count and front_seen. It is a leaf (nothing
 * else is locked while it is held) and it is never held across mmap, munmap, madvise or memset: regions
 * are taken off the lists (BUSY) under the lock, and worked on after it is released. The front takes no
 * lock.
 */
#include "large.h"
#include "large_region.h"
#include "options.h"
#include "os.h"
#include "segmap.h"

#include <errno.h>
#include <string.h>

#define LARGE_MAX ((size_t)1 << 46)    /* larger requests (or alignments) fail with ENOMEM */
#define MIN_REGION ((size_t)64 * 1024) /* smallest mapping (shrinking never goes below) */
#define NCLASS 192u                    /* classes 4*b+q for mappings up to 2^47 */
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

static struct {
  zc_lock_t lock;
  rlist_t cls[2][NCLASS]; /* per class, most recently cached first */
  rlist_t age[2];         /* oldest first */
  size_t bytes[2];        /* mapped bytes of the cached regions (atomic stores: read by stats) */
  size_t count[2];
} pool;

/* Purger thread: 0 not running, 1 running, 2 could not start (the policy runs inline). Changed under
 * pool.lock (atomic stores: read without it). */
static int purger_state;

static uint64_t secret; /* nonzero once initialised */

static struct {
  uint64_t mapped, purged, contended;
  uint64_t purge_calls, pmisses, pmiss_bytes; /* purges; purged regions taken again within a delay */
  uint64_t grown;                             /* misses served by moving a smaller cached region */
} st;

#define STAT_ADD(f, n) __atomic_fetch_add(&st.f, (uint64_t)(n), __ATOMIC_RELAXED)
#define STAT_SUB(f, n) __atomic_fetch_sub(&st.f, (uint64_t)(n), __ATOMIC_RELAXED)

/* ---- front cache ----
 * In front of the pool: NSHARD shards owned by one thread each, plus one shared shard for the threads that
 * find none free; each on its own cache line with its counters. A thread claims a shard on its first call
 * and gives it back in zc_large_thread_exit (regions cached in it stay, for the next owner or the purger).
 * A slot holds one dirty region as a single word, base | class (the base is 4 MiB-aligned, so the low bits
 * are free): a region goes in and out with one compare-and-swap (the purger may take it concurrently), no
 * lock, no clock read. An owned shard's counters are updated without atomic read-modify-writes (only its
 * owner writes them); the shared shard's with them. A shard holds at most budget/8 / (NSHARD + 1) bytes
 * (about 2 MiB with the default budget, so regions up to that size use the front): the front holds at most
 * an eighth of the budget and the pool gets the rest. Aging: every sweep (purger pass, zc_large_purge, or
 * inline policy run at most every half delay) notes each slot's word and when it first saw it; a word
 * still there a purge delay later is taken out and purged into the pool's clean lists. A word that left
 * and came back between two sweeps looks older than it is: it is purged early, harmlessly. */
#define NSHARD 16u
#define NFRONT (NSHARD + 1u) /* front[NSHARD] is the shared shard */
#define FRONT_SLOTS 4u
#define REUSE_SPAN 8u /* a request of class c may take a cached region up to class c+8: four times its size */
#define FRONT_CLS_MASK ((uintptr_t)0xff)

typedef struct front_s {
  uintptr_t slot[FRONT_SLOTS];
  /* Counted in the shard of the thread that allocates or frees (only sums over shards mean anything):
   * live regions = allocs - frees, hits = allocs - misses; live_bytes wraps (a signed sum). */
  uint64_t allocs, frees, misses, live_bytes;
} __attribute__((aligned(64))) front_t;

static front_t front[NFRONT];
static bool front_owned[NSHARD]; /* claimed with compare-and-swap, released by the owner */
static struct {
  uintptr_t word; /* the slot's word when a sweep first saw it */
  uint64_t since; /* ns: that sweep's time */
} front_seen[NFRONT * FRONT_SLOTS]; /* pool.lock */
static uint64_t next_sweep;         /* inline policy: when the next front sweep is due (ns) */
static __thread front_t *front_mine; /* this thread's shard; NULL until its first call */

static front_t *my_front(void) {
  front_t *f = front_mine;
  if (likely(f != NULL)) return f;
  f = &front[NSHARD];
  for (unsigned i = 0; i < NSHARD; i++) {
    bool expect = false;
    if (!__atomic_load_n(&front_owned[i], __ATOMIC_RELAXED) &&
        __atomic_compare_exchange_n(&front_owned[i], &expect, true, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
      f = &front[i];
      break;
    }
  }
  front_mine = f;
  return f;
}

void zc_large_thread_exit(void) {
  front_t *f = front_mine;
  front_mine = NULL;
  if (f != NULL && f != &front[NSHARD]) __atomic_store_n(&front_owned[f - front], false, __ATOMIC_RELEASE);
}

/* Add n (two's complement for a decrement) to a counter of f. */
static inline void fstat(front_t *f, uint64_t *field, uint64_t n) {
  if (unlikely(f == &front[NSHARD])) __atomic_fetch_add(field, n, __ATOMIC_RELAXED);
  else __atomic_store_n(field, __atomic_load_n(field, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}
#define FSTAT_ADD(f, field, n) fstat((f), &(f)->field, (uint64_t)(n))

/* ---- size classes of regions: c = 4*b + q covers (2^b, 2^(b+1)] in steps of 2^(b-2) ---- */

static unsigned class_ceil(size_t n) { /* smallest class whose size >= n; n > 16 */
  size_t w = n - 1;
  unsigned b = 63u - (unsigned)__builtin_clzll((unsigned long long)w);
  return (b << 2) + (unsigned)((w >> (b - 2u)) & 3u);
}

static size_t class_bytes(unsigned c) { return (size_t)(5u + (c & 3u)) << ((c >> 2) - 2u); }

static size_t page_round(size_t n) {
  size_t pg = zc_os_page_size();
  return (n + pg - 1) & ~(pg - 1);
}

static unsigned class_floor(size_t map_size) { /* largest class whose size <= map_size */
  unsigned c = class_ceil(map_size);
  return class_bytes(c) > map_size ? c - 1 : c;
}

/* ---- options ---- */

static size_t cache_budget(void) {
  long v = zc_opt(zc_option_large_cache);
  return v > 0 ? (size_t)v : 0;
}

static uint64_t delay_ns(void) {
  long v = zc_opt(zc_option_purge_delay);
  return v > 0 ? (uint64_t)v * 1000000u : 0;
}

static uint64_t clean_ttl_ns(uint64_t delay) {
  uint64_t t = delay * 10u;
  return t < CLEAN_TTL_MIN ? CLEAN_TTL_MIN : t;
}

/* ---- headers and their keyed checks (large_region.h) ---- */

uint64_t zc_large_secret(void) {
  uint64_t s = __atomic_load_n(&secret, __ATOMIC_ACQUIRE);
  if (likely(s != 0)) return s;
  uint64_t r = 0;
  zc_os_entropy(&r, sizeof r);
  r |= 1u;
  uint64_t expect = 0;
  if (!__atomic_compare_exchange_n(&secret, &expect, r, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return expect;
  return r;
}

#define get_secret zc_large_secret

/* A cached or busy region whose header fails its check: reported, then never used again (leaked). */
static void report_corrupt(const region_t *r, const char *when) {
  zc_error("large region at %p: header overwritten (keyed check failed) %s; the region is left alone",
           (const void *)r, when);
}

/* ---- the pool lock: counts the acquisitions that had to wait (zc_large_stats: lock_contended) ---- */

static void pool_lock(void) {
  if (likely(zc_trylock(&pool.lock))) return;
  STAT_ADD(contended, 1);
  zc_lock(&pool.lock);
}

static void pool_unlock(void) { zc_unlock(&pool.lock); }
/* ---- lists (pool.lock held) ---- */

static void list_push_front(rlist_t *l, region_t *r, int k) {
  r->link[k].prev = NULL;
  r->link[k].next = l->head;
  if (l->head) l->head->link[k].prev = r;
  else l->tail = r;
  l->head = r;
}

static void list_push_back(rlist_t *l, region_t *r, int k) {
  r->link[k].next = NULL;
  r->link[k].prev = l->tail;
  if (l->tail) l->tail->link[k].next = r;
  else l->head = r;
  l->tail = r;
}

static void list_remove(rlist_t *l, region_t *r, int k) {
  region_t *n = r->link[k].next, *p = r->link[k].prev;
  if (p) p->link[k].next = n;
  else l->head = n;
  if (n) n->link[k].prev = p;
  else l->tail = p;
}

static void pool_add_bytes(int w, size_t bytes, long count) {
  __atomic_store_n(&pool.bytes[w], pool.bytes[w] + bytes, __ATOMIC_RELAXED);
  __atomic_store_n(&pool.count[w], pool.count[w] + (size_t)count, __ATOMIC_RELAXED);
}

static void cache_insert(region_t *r, int w, uint64_t now) {
  r->stamp = now;
  if (w == DIRTY) r->flags |= F_RESIDENT;
  seal(r);
  __atomic_store_n(&r->state, w == DIRTY ? ST_DIRTY : ST_CLEAN, __ATOMIC_RELEASE);
  list_push_front(&pool.cls[w][r->cls], r, L_CLASS);
  list_push_back(&pool.age[w], r, L_AGE);
  pool_add_bytes(w, r->map_size, 1);
}

/* Take r off its lists; it becomes BUSY. A header overwritten while cached (it fails its keyed check) has
 * a cls and map_size that cannot be trusted: its list is found by searching instead, its bytes stay
 * counted (the pool believes it holds a little more than it does), and whoever takes it reports it and
 * leaves it alone. */
static void cache_unlink(region_t *r) {
  int w = r->state == ST_DIRTY ? DIRTY : CLEAN;
  unsigned c = r->cls;
  size_t bytes = r->map_size;
  if (unlikely(!region_valid(r))) {
    bytes = 0;
    c = NCLASS;
    for (int k = 0; k < 2; k++) {
      for (region_t *x = pool.age[k].head; x != NULL; x = x->link[L_AGE].next)
        if (x == r) w = k;
      for (unsigned i = 0; i < NCLASS; i++)
        for (region_t *x = pool.cls[k][i].head; x != NULL; x = x->link[L_CLASS].next)
          if (x == r) c = i;
    }
  }
  if (c < NCLASS) list_remove(&pool.cls[w][c], r, L_CLASS);
  list_remove(&pool.age[w], r, L_AGE);
  pool_add_bytes(w, (size_t)0 - bytes, -1);
  __atomic_store_n(&r->state, ST_BUSY, __ATOMIC_RELAXED);
}

static void chain(region_t **head, region_t *r) { r->link[L_CLASS].next = *head, *head = r; }

/* The budget split: the front holds at most budget/8 (a shard at most front_max); the pool holds the rest,
 * of which at most dirty_budget() dirty. */
static size_t front_max(size_t budget) { return budget / 8 / NFRONT; }
static size_t pool_budget(size_t budget) { return budget - budget / 8; }

static uint64_t live_bytes_now(void);
static uint64_t live_peak;      /* the most live bytes in the current window */
static uint64_t live_peak_prev; /* in the previous window */
static uint64_t window_start;   /* ns; pool.lock */
static size_t front_held;       /* bytes in front slots (atomic) */

static void note_live_peak(void) {
  uint64_t live = live_bytes_now(), peak = __atomic_load_n(&live_peak, __ATOMIC_RELAXED);
  while (live > peak && !__atomic_compare_exchange_n(&live_peak, &peak, live, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
}

/* Dirty bytes kept beside the live blocks (pool and front caches together): up to the demand, the peak of
 * live large bytes over the last one to two windows (max(10 x delay, 1 s) each), plus half of it, minus what
 * is live now; at least 8 MiB, at most a quarter of the budget. So live + dirty stays under 1.5 times the
 * recent peak: a program that keeps 100 MiB of buffers in flight reuses them without page faults, and one
 * whose large blocks are few, or fewer than a moment ago, keeps little dirty memory. The half above the peak
 * is for fit: a cached region serves requests of its class down to a quarter of it, and one too small is
 * grown by moving its pages (grow_cached), so part of the cache fits the next request only at a cost. With
 * no margin (live + dirty under the peak itself), bench/large-ring faulted 17-20 pages per buffer instead of
 * 0.15; with 2.25 times the peak (the earlier rule, dirty alone under 2.25 times) its peak RSS was 12% higher
 * (docs/design.md). */
static size_t dirty_budget(size_t budget) {
  uint64_t peak = __atomic_load_n(&live_peak, __ATOMIC_RELAXED), prev = __atomic_load_n(&live_peak_prev, __ATOMIC_RELAXED);
  if (prev > peak) peak = prev;
  uint64_t demand = peak + peak / 2, live = live_bytes_now();
  size_t cap = demand > live ? (size_t)(demand - live) : 0;
  if (cap < ((size_t)8 << 20)) cap = (size_t)8 << 20;
  return cap < budget / 4 ? cap : budget / 4;
}

/* Bytes cached dirty: the pool's dirty lists and the front slots. */
static size_t dirty_bytes(void) {
  return __atomic_load_n(&pool.bytes[DIRTY], __ATOMIC_RELAXED) + __atomic_load_n(&front_held, __ATOMIC_RELAXED);
}

/* Over the pool's budget: unmap oldest clean, then oldest dirty. Over the dirty budget: purge oldest dirty. */
static void collect_over_budget(victims_t *v, size_t budget) {
  region_t *r;
  while (pool.bytes[DIRTY] + pool.bytes[CLEAN] > pool_budget(budget)) {
    r = pool.age[CLEAN].head ? pool.age[CLEAN].head : pool.age[DIRTY].head;
    if (r == NULL) break;
    cache_unlink(r);
    chain(&v->unmap, r);
  }
  size_t dirty_cap = dirty_budget(budget);
  while (dirty_bytes() > dirty_cap && (r = pool.age[DIRTY].head) != NULL) {
    cache_unlink(r);
    chain(&v->purge, r);
  }
}

/* Dirty regions past the delay (all if force) are purged; clean ones past their TTL are unmapped. */
static void collect_due(victims_t *v, uint64_t now, bool force) {
  uint64_t d = delay_ns(), ttl = clean_ttl_ns(d);
  if (now - window_start >= ttl) { /* the demand window moves on */
    __atomic_store_n(&live_peak_prev, __atomic_load_n(&live_peak, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
    __atomic_store_n(&live_peak, live_bytes_now(), __ATOMIC_RELAXED); /* the window starts again */
    window_start = now;
  }
  region_t *r;
  while ((r = pool.age[DIRTY].head) != NULL && (force || now - r->stamp >= d)) {
    cache_unlink(r);
    chain(&v->purge, r);
  }
  while ((r = pool.age[CLEAN].head) != NULL && now - r->stamp >= ttl) {
    cache_unlink(r);
    chain(&v->unmap, r);
  }
}

/* Something in the pool is due (pool.lock held). */
static bool pool_due(uint64_t now) {
  uint64_t d = delay_ns();
  region_t *dr = pool.age[DIRTY].head, *cr = pool.age[CLEAN].head;
  return (dr && now - dr->stamp >= d) || (cr && now - cr->stamp >= clean_ttl_ns(d));
}

/* ---- front cache operations (no lock, except the sweep) ---- */

/* Put r (BUSY) into a slot of f, so that the most recently freed regions are the ones in the front.
 * Returns r if it does not qualify (the caller puts it in the pool), NULL if it went into an empty slot,
 * or the older region (now BUSY) it displaced, which the caller puts in the pool instead. Two threads that
 * share a shard may together overshoot its byte cap by one region each: a bounded, transient excess. */
static region_t *front_put(front_t *f, region_t *r, size_t budget) {
  size_t cap = front_max(budget), held = r->map_size;
  if (held > cap || r->map_size != class_bytes(r->cls)) return r;
  if (dirty_bytes() + held > dirty_budget(budget)) return r; /* over the dirty bound: the pool path purges */
  uintptr_t ws[FRONT_SLOTS];
  for (unsigned i = 0; i < FRONT_SLOTS; i++) {
    ws[i] = __atomic_load_n(&f->slot[i], __ATOMIC_RELAXED);
    if (ws[i] != 0) held += class_bytes((unsigned)(ws[i] & FRONT_CLS_MASK));
  }
  uintptr_t w = (uintptr_t)r | r->cls;
  r->flags |= F_RESIDENT;
  seal(r);
  __atomic_store_n(&r->state, ST_DIRTY, __ATOMIC_RELAXED); /* a double free from now on is reported */
  for (unsigned i = 0; i < FRONT_SLOTS; i++) { /* an empty slot, if the shard has room */
    uintptr_t e = 0;
    if (held <= cap && ws[i] == 0 &&
        __atomic_compare_exchange_n(&f->slot[i], &e, w, false, __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
      __atomic_fetch_add(&front_held, r->map_size, __ATOMIC_RELAXED);
      return NULL;
    }
  }
  for (unsigned i = 0; i < FRONT_SLOTS; i++) { /* else displace a region whose room suffices */
    uintptr_t old = ws[i];
    if (old != 0 && held - class_bytes((unsigned)(old & FRONT_CLS_MASK)) <= cap &&
        __atomic_compare_exchange_n(&f->slot[i], &old, w, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
      region_t *out = (region_t *)(old & ~FRONT_CLS_MASK);
      __atomic_store_n(&out->state, ST_BUSY, __ATOMIC_RELAXED);
      __atomic_fetch_add(&front_held, r->map_size - class_bytes((unsigned)(old & FRONT_CLS_MASK)), __ATOMIC_RELAXED);
      return out;
    }
  }
  __atomic_store_n(&r->state, ST_BUSY, __ATOMIC_RELAXED);
  return r;
}

/* Take from f the newest region of class c (reuse stays LIFO, cache-warm), else the smallest of class
 * c+1 .. c+REUSE_SPAN (up to four times the size). A dirty region that is too big is used whole: trimming
 * its tail (an unmap per reuse) measured slower on bench/churn and bench/large than keeping it, and its
 * memory is resident either way. */
static region_t *front_take(front_t *f, unsigned c) {
  for (;;) {
    unsigned best = FRONT_SLOTS, best_cls = ~0u;
    for (unsigned i = FRONT_SLOTS; i-- > 0;) { /* front_put fills the lowest empty slot: newest last */
      uintptr_t w = __atomic_load_n(&f->slot[i], __ATOMIC_RELAXED);
      unsigned wc = (unsigned)(w & FRONT_CLS_MASK);
      if (w != 0 && wc >= c && wc <= c + REUSE_SPAN && wc < best_cls) best = i, best_cls = wc;
      if (best_cls == c) break;
    }
    if (best == FRONT_SLOTS) return NULL;
    uintptr_t w = __atomic_load_n(&f->slot[best], __ATOMIC_RELAXED);
    if ((unsigned)(w & FRONT_CLS_MASK) != best_cls || w == 0) continue; /* taken meanwhile: look again */
    if (__atomic_compare_exchange_n(&f->slot[best], &w, 0, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
      region_t *r = (region_t *)(w & ~FRONT_CLS_MASK);
      __atomic_fetch_sub(&front_held, class_bytes(best_cls), __ATOMIC_RELAXED);
      __atomic_store_n(&r->state, ST_BUSY, __ATOMIC_RELAXED);
      return r;
    }
  }
}

/* pool.lock held: take out for purging the regions seen for a purge delay (all of them if force). */
static void front_sweep(victims_t *v, uint64_t now, bool force) {
  uint64_t d = delay_ns();
  for (unsigned i = 0; i < NFRONT * FRONT_SLOTS; i++) {
    uintptr_t *slot = &front[i / FRONT_SLOTS].slot[i % FRONT_SLOTS];
    uintptr_t w = __atomic_load_n(slot, __ATOMIC_RELAXED);
    if (w == 0) {
      front_seen[i].word = 0;
      continue;
    }
    if (!force) {
      if (w != front_seen[i].word) {
        front_seen[i].word = w;
        front_seen[i].since = now;
        continue;
      }
      if (now - front_seen[i].since < d) continue;
    }
    front_seen[i].word = 0;
    if (__atomic_compare_exchange_n(slot, &w, 0, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
      region_t *r = (region_t *)(w & ~FRONT_CLS_MASK);
      __atomic_fetch_sub(&front_held, class_bytes((unsigned)(w & FRONT_CLS_MASK)), __ATOMIC_RELAXED);
      __atomic_store_n(&r->state, ST_BUSY, __ATOMIC_RELAXED);
      chain(&v->purge, r);
    }
  }
}

static size_t front_bytes(void) {
  size_t n = 0;
  for (unsigned i = 0; i < NFRONT * FRONT_SLOTS; i++) {
    uintptr_t w = __atomic_load_n(&front[i / FRONT_SLOTS].slot[i % FRONT_SLOTS], __ATOMIC_RELAXED);
    if (w != 0) n += class_bytes((unsigned)(w & FRONT_CLS_MASK));
  }
  return n;
}

static uint64_t sweep_period_ns(void) {
  uint64_t p = delay_ns() / 2;
  return p < 1000000u ? 1000000u : p;
}

/* The time policy when no purger thread runs (pool.lock held). */
static void policy_locked(victims_t *v, uint64_t now) {
  if (pool_due(now)) collect_due(v, now, false);
  if (now >= next_sweep) {
    front_sweep(v, now, false);
    __atomic_store_n(&next_sweep, now + sweep_period_ns(), __ATOMIC_RELAXED);
  }
}

/* ---- mapping, purging, unmapping (no lock held) ---- */

static region_t *map_region(size_t map_size, uint64_t s);
static region_t *grow_cached(unsigned c, size_t want);

static size_t unmap_region(region_t *r) {
  if (!region_valid(r)) { /* a wrong map_size would unmap someone else's memory */
    report_corrupt(r, "before unmapping it");
    return 0;
  }
  size_t size = r->map_size;
  zc_segmap_clear(r, size); /* first: no chunk is marked ours without its header mapped */
  zc_os_free(r, size);
  STAT_SUB(mapped, size);
  STAT_ADD(purged, size);
  return size;
}

/* Purge or unmap the victims; purged regions go back to the pool as clean. Returns bytes released. */
static size_t process_victims(victims_t *v) {
  size_t released = 0, pg = zc_os_page_size();
  int mode = (int)zc_opt(zc_option_purge_mode);
  region_t *done = NULL, *r, *next;
  for (r = v->purge; r != NULL; r = next) {
    next = r->link[L_CLASS].next;
    if (!region_valid(r)) {
      report_corrupt(r, "before purging it");
      continue;
    }
    /* The header page stays; the rest is whole OS pages (map_size is a page multiple). Counted only if
     * the OS took it; a region it refused is unmapped instead. */
    size_t want = r->map_size - pg;
    if (want != 0 && !(r->flags & F_FILE)) STAT_ADD(purge_calls, 1);
    if (!(r->flags & F_FILE) && (want == 0 || zc_os_purge((char *)r + pg, want, mode) == want)) {
      r->flags = (mode == 1 ? (r->flags | F_STALE) : (r->flags & ~F_STALE)) & ~F_RESIDENT;
      seal(r);
      STAT_ADD(purged, want);
      released += want;
      chain(&done, r);
    } else {
      released += unmap_region(r);
    }
  }
  if (done != NULL) {
    size_t budget = cache_budget();
    uint64_t now = zc_os_clock_coarse_ns();
    region_t *over = NULL;
    pool_lock();
    for (r = done; r != NULL; r = next) {
      next = r->link[L_CLASS].next;
      if (pool.bytes[DIRTY] + pool.bytes[CLEAN] + r->map_size > pool_budget(budget)) chain(&over, r);
      else cache_insert(r, CLEAN, now);
    }
    pool_unlock();
    for (r = over; r != NULL; r = next) {
      next = r->link[L_CLASS].next;
      unmap_region(r);
    }
  }
  for (r = v->unmap; r != NULL; r = next) {
    next = r->link[L_CLASS].next;
    bool resident = r->flags & F_RESIDENT;
    size_t size = unmap_region(r);
    if (resident) released += size;
  }
  return released;
}

/* ---- background purger ---- */

/* The rest of the allocator's sweep (empty small/medium pages of every heap and of exited threads),
 * installed by the heap layer: one background thread serves the whole process. Returns true while it
 * still holds memory to age, which keeps the thread from exiting as idle. */
static bool (*sweep_hook)(void);

static void *purger_main(void *arg) {
  (void)arg;
  uint64_t idle_since = 0;
  for (;;) {
    zc_os_sleep_ns(sweep_period_ns());
    bool other_busy = sweep_hook != NULL && sweep_hook();
    uint64_t now = zc_os_clock_coarse_ns(), d = delay_ns();
    victims_t v = {NULL, NULL};
    pool_lock();
    collect_due(&v, now, false);
    front_sweep(&v, now, false);
    if (!other_busy && pool.count[DIRTY] + pool.count[CLEAN] == 0 && front_bytes() == 0 && v.purge == NULL &&
        v.unmap == NULL) {
      if (idle_since == 0) idle_since = now;
      else if (now - idle_since >= clean_ttl_ns(d)) { /* idle for long: exit; the next free restarts it */
        __atomic_store_n(&purger_state, 0, __ATOMIC_RELAXED);
        pool_unlock();
        return NULL;
      }
    } else {
      idle_since = 0;
    }
    pool_unlock();
    process_victims(&v);
  }
}

static void purger_start(void) {
  bool start = false;
  pool_lock();
  if (__atomic_load_n(&purger_state, __ATOMIC_RELAXED) == 0) {
    __atomic_store_n(&purger_state, 1, __ATOMIC_RELAXED);
    start = true;
  }
  pool_unlock();
  if (start && !zc_os_thread_start(purger_main, NULL)) {
    pool_lock();
    __atomic_store_n(&purger_state, 2, __ATOMIC_RELAXED);
    pool_unlock();
  }
}

static bool want_purger(void) {
  return __atomic_load_n(&purger_state, __ATOMIC_RELAXED) == 0 && zc_opt(zc_option_background) == 1 &&
         delay_ns() > 0;
}

void zc_background_set_hook(bool (*fn)(void)) { sweep_hook = fn; }

bool zc_background_running(void) { return __atomic_load_n(&purger_state, __ATOMIC_RELAXED) == 1; }

void zc_background_start(void) {
  if (want_purger()) purger_start();
}

/* After a front-cache operation (which took no lock): start the purger if it should run, else run the
 * inline policy when a sweep is due. */
static void front_tick(void) {
  if (likely(__atomic_load_n(&purger_state, __ATOMIC_RELAXED) == 1)) return;
  if (want_purger()) {
    purger_start();
    return;
  }
  uint64_t now = zc_os_clock_coarse_ns();
  if (now < __atomic_load_n(&next_sweep, __ATOMIC_RELAXED)) return;
  victims_t v = {NULL, NULL};
  pool_lock();
  policy_locked(&v, now);
  pool_unlock();
  if (v.purge || v.unmap) process_victims(&v);
}

/* ---- public entry points ---- */

/* Take a cached region able to hold class c: the smallest dirty one of class c .. c+REUSE_SPAN (resident
 * already: reusing it costs no page faults and no memory), else a clean one of class c or c+1. *from says
 * which. */
static region_t *cache_take(unsigned c, int *from, victims_t *v, uint64_t now, bool inline_policy) {
  size_t cached = __atomic_load_n(&pool.count[DIRTY], __ATOMIC_RELAXED) + __atomic_load_n(&pool.count[CLEAN], __ATOMIC_RELAXED);
  if (cached == 0 && (!inline_policy || now < __atomic_load_n(&next_sweep, __ATOMIC_RELAXED))) return NULL;
  region_t *r = NULL;
  pool_lock();
  for (unsigned cc = c; cc <= c + REUSE_SPAN && cc < NCLASS && r == NULL; cc++) {
    if ((r = pool.cls[DIRTY][cc].head) != NULL) *from = DIRTY;
  }
  for (unsigned cc = c; cc <= c + 1 && cc < NCLASS && r == NULL; cc++) {
    if ((r = pool.cls[CLEAN][cc].head) != NULL) *from = CLEAN;
  }
  if (r != NULL) cache_unlink(r);
  if (inline_policy) policy_locked(v, now);
  pool_unlock();
  return r;
}

static bool inline_policy(void) { return __atomic_load_n(&purger_state, __ATOMIC_RELAXED) != 1; }

void *zc_large_alloc(size_t size, size_t align, bool zero) {
  if (align < 16) align = 16;
  if (align & (align - 1)) {
    errno = EINVAL;
    return NULL;
  }
  if (size > LARGE_MAX || align > LARGE_MAX) {
    errno = ENOMEM;
    return NULL;
  }
  size_t need = (align > HDR_SIZE ? align : HDR_SIZE) + size;
  if (need < MIN_REGION) need = MIN_REGION;
  unsigned c = class_ceil(need);
  uint64_t s = get_secret();
  front_t *f = my_front();
  int from = DIRTY;
  region_t *r = front_take(f, c);
  if (r != NULL) {
    front_tick();
  } else {
    victims_t v = {NULL, NULL};
    bool inl = inline_policy();
    r = cache_take(c, &from, &v, inl ? zc_os_clock_coarse_ns() : 0, inl);
    if (v.purge || v.unmap) process_victims(&v);
  }
  if (r != NULL && !region_valid(r)) { /* overwritten while cached: leave it, map a new one */
    report_corrupt(r, "when taken from the cache");
    r = NULL;
  }
  bool fresh = r == NULL, missed = fresh;
  if (!fresh && from == CLEAN && zc_os_clock_coarse_ns() - r->stamp < delay_ns()) { /* purged too early */
    STAT_ADD(pmisses, 1);
    STAT_ADD(pmiss_bytes, r->map_size);
  }
  if (fresh) {
    size_t want = page_round(class_bytes(c));
    if ((r = grow_cached(c, want)) != NULL) {
      fresh = false; /* its pages hold old bytes */
      from = DIRTY;
    } else if ((r = map_region(want, s)) == NULL) {
      return NULL;
    }
    FSTAT_ADD(f, misses, 1);
  }
  char *base = (char *)r;
  char *block = (char *)(((uintptr_t)base + HDR_SIZE + align - 1) & ~(uintptr_t)(align - 1));
  r->offset = (size_t)(block - base);
  seal(r);
  set_canary(r);
  if (zero && !fresh) { /* fresh mappings read zero */
    if (from == DIRTY || (r->flags & (F_STALE | F_FILE))) {
      memset(block, 0, size);
    } else { /* purged with MADV_DONTNEED from the second page on: only the first page kept its bytes */
      char *first_end = base + zc_os_page_size();
      if (block < first_end) memset(block, 0, size < (size_t)(first_end - block) ? size : (size_t)(first_end - block));
    }
  }
  FSTAT_ADD(f, allocs, 1);
  FSTAT_ADD(f, live_bytes, (int64_t)(r->map_size - r->offset));
  note_live_peak();
  __atomic_store_n(&r->state, ST_LIVE, __ATOMIC_RELEASE);
  if (missed) { /* live grew: the dirty bound may have fallen */
    victims_t v = {NULL, NULL};
    pool_lock();
    collect_over_budget(&v, cache_budget());
    pool_unlock();
    if (v.purge || v.unmap) process_victims(&v);
  }
  return block;
}

static region_t *map_region(size_t map_size, uint64_t s) {
  void *base = NULL;
  uint32_t flags = 0;
  for (int attempt = 0; attempt < 2 && base == NULL; attempt++) {
    if (zc_opt(zc_option_large_file) == 1) {
      base = zc_os_alloc_file_backed(map_size, ZC_SEGMENT_SIZE);
      if (base != NULL) flags = F_FILE;
    }
    if (base == NULL) base = zc_os_alloc_aligned(map_size, ZC_SEGMENT_SIZE);
    if (base == NULL && attempt == 0) { /* out of address space or mappings: drop the cache, retry once */
      victims_t v = {NULL, NULL};
      pool_lock();
      collect_over_budget(&v, 0);
      front_sweep(&v, 0, true);
      pool_unlock();
      if (v.purge == NULL && v.unmap == NULL) break;
      process_victims(&v);
    }
  }
  if (base == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  region_t *r = base;
  (void)s;
  r->map_size = map_size;
  r->offset = HDR_SIZE;
  r->flags = flags;
  r->cls = class_floor(map_size);
  r->stamp = 0;
  seal(r);
  __atomic_store_n(&r->state, ST_BUSY, __ATOMIC_RELAXED);
  zc_segmap_set(r, map_size, ZC_MAP_LARGE);
  STAT_ADD(mapped, map_size);
  return r;
}

/* A miss (no cached region of class c or up to four times it): rather than map want fresh bytes beside a
 * dirty region of a smaller class, which the dirty bound would then purge, move the pages of the largest
 * such region (down to an eighth of the size, GROW_SPAN classes) into a new mapping of want bytes: its
 * pages need no fault and no zeroing, only the rest does. On bench/large (64 KiB-32 MiB buffers) this cut
 * page faults per buffer from about 105 to 75 and peak RSS by a fifth. Returns the region BUSY, holding old
 * bytes, or NULL. Only anonymous regions move (zc_os_move); only the pool's (a front slot's region is at
 * most front_max and is taken by its own thread's next requests). */
#define GROW_SPAN 12u
static region_t *grow_cached(unsigned c, size_t want) {
  if (__atomic_load_n(&pool.count[DIRTY], __ATOMIC_RELAXED) == 0) return NULL;
  region_t *r = NULL;
  pool_lock();
  for (unsigned cc = c; cc-- > (c > GROW_SPAN ? c - GROW_SPAN : 0) && r == NULL;) {
    region_t *x = pool.cls[DIRTY][cc].head;
    if (x != NULL && region_valid(x) && !(x->flags & F_FILE) && x->map_size < want) r = x;
  }
  if (r != NULL) cache_unlink(r);
  pool_unlock();
  if (r == NULL) return NULL;
  size_t old = r->map_size;
  zc_segmap_clear(r, old); /* as zc_large_move: once moved, the old range may be mapped by anyone */
  region_t *q = zc_os_move(r, old, want, ZC_SEGMENT_SIZE);
  if (q == NULL) { /* no address space: give the region up too, map_region will try */
    zc_segmap_set(r, old, ZC_MAP_LARGE);
    unmap_region(r);
    return NULL;
  }
  q->map_size = want;
  q->offset = HDR_SIZE;
  q->flags &= ~(uint32_t)F_STALE;
  q->cls = class_floor(want);
  seal(q);
  zc_segmap_set(q, want, ZC_MAP_LARGE);
  STAT_ADD(mapped, want - old);
  STAT_ADD(grown, 1);
  return q;
}

void zc_large_free(void *p, void *hdr) {
  region_t *r = hdr;
  if (!region_valid(r)) {
    zc_error("invalid free of %p: the header of its large region at %p fails its keyed check (overwritten)", p, hdr);
    return;
  }
  uint32_t state = region_state(r);
  if (state != ST_LIVE) {
    zc_error("double free of large block %p", p);
    return;
  }
  if (p != block_of(r)) {
    zc_error("invalid free of %p: not the start of a large block (it starts at %p)", p, (void *)block_of(r));
    return;
  }
  if (!canary_ok(r)) {
    zc_error("heap corruption: the 8 bytes below large block %p were overwritten (buffer underflow); not freed", p);
    return;
  }
  if (!__atomic_compare_exchange_n(&r->state, &state, ST_BUSY, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
    zc_error("double free of large block %p", p);
    return;
  }
  front_t *f = my_front();
  FSTAT_ADD(f, frees, 1);
  FSTAT_ADD(f, live_bytes, -(int64_t)(r->map_size - r->offset));

  size_t budget = cache_budget();
  r = front_put(f, r, budget);
  if (r == NULL) {
    front_tick();
    return;
  }
  bool keep = r->map_size <= pool_budget(budget) && r->cls < NCLASS; /* else unmapped at once */
  uint64_t now = zc_os_clock_coarse_ns();
  victims_t v = {NULL, NULL};
  pool_lock();
  if (keep) cache_insert(r, DIRTY, now);
  collect_over_budget(&v, budget); /* the budget may have been lowered since the last free */
  if (inline_policy()) policy_locked(&v, now);
  pool_unlock();
  if (!keep) unmap_region(r);
  if (keep && want_purger()) purger_start();
  if (v.purge || v.unmap) process_victims(&v);
}

size_t zc_large_usable(const void *p, const void *hdr) {
  const region_t *r = hdr;
  return live_block(r, p) ? r->map_size - r->offset : 0;
}

bool zc_large_resize_in_place(void *p, void *hdr, size_t new_size) {
  region_t *r = hdr;
  if (!live_block(r, p) || new_size > LARGE_MAX) return false;
  size_t old_map = r->map_size, old_usable = old_map - r->offset;
  size_t need = r->offset + new_size;
  if (need < MIN_REGION) need = MIN_REGION;
  size_t want = page_round(class_bytes(class_ceil(need)));
  if (new_size <= old_usable) {
    /* Shrink: give back the tail when it is at least three quarters of the mapping. Not less: a block in a
     * region reused from the cache (up to four times its class, used whole) that grows inside the region
     * arrives here too, and trimming its resident tail only to fault it in again as it grows cost
     * bench/churn 75 MiB of unmapped and refaulted memory per run. File mappings keep their size. */
    if (want <= old_map / 4 && !(r->flags & F_FILE)) {
      size_t chunks_old = (old_map + ZC_SEGMENT_MASK) >> ZC_SEGMENT_SHIFT;
      size_t chunks_new = (want + ZC_SEGMENT_MASK) >> ZC_SEGMENT_SHIFT;
      if (chunks_new < chunks_old) /* chunks the region no longer touches */
        zc_segmap_clear((char *)r + (chunks_new << ZC_SEGMENT_SHIFT), (chunks_old - chunks_new) << ZC_SEGMENT_SHIFT);
      r->map_size = want;
      r->cls = class_floor(want);
      seal(r);
      zc_os_free((char *)r + want, old_map - want);
      STAT_SUB(mapped, old_map - want);
      STAT_ADD(purged, old_map - want);
      FSTAT_ADD(my_front(), live_bytes, -(int64_t)(old_map - want));
    }
    return true;
  }
  /* Grow: extend the mapping in place when the address range after it is free. A file mapping would need
   * its file grown too: the caller copies. */
  if (r->flags & F_FILE) return false;
  if (!zc_os_extend(r, old_map, want)) return false;
  zc_segmap_set(r, want, ZC_MAP_LARGE);
  r->map_size = want;
  r->cls = class_floor(want);
  seal(r);
  STAT_ADD(mapped, want - old_map);
  FSTAT_ADD(my_front(), live_bytes, (int64_t)(want - old_map));
  return true;
}

void *zc_large_move(void *p, void *hdr, size_t new_size) {
  region_t *r = hdr;
  if (!live_block(r, p) || new_size > LARGE_MAX || (r->flags & F_FILE) || r->offset >= ZC_SEGMENT_SIZE) return NULL;
  size_t old_map = r->map_size, offset = r->offset;
  size_t want = page_round(class_bytes(class_ceil(offset + new_size)));
  if (want <= old_map) return NULL; /* not a growth: resize in place serves it */
  /* Unmark first: once moved, the old range may be mapped by anyone. p is live and the caller's, so no
   * valid lookup of it can run meanwhile. */
  zc_segmap_clear(r, old_map);
  region_t *q = zc_os_move(r, old_map, want, ZC_SEGMENT_SIZE);
  if (q == NULL) {
    zc_segmap_set(r, old_map, ZC_MAP_LARGE);
    return NULL;
  }
  q->map_size = want;
  q->cls = class_floor(want);
  seal(q);
  set_canary(q); /* keyed by the block's address, which moved */
  zc_segmap_set(q, want, ZC_MAP_LARGE);
  STAT_ADD(mapped, want - old_map);
  FSTAT_ADD(my_front(), live_bytes, (int64_t)(want - old_map));
  return (char *)q + offset;
}

size_t zc_large_release_cache(void) {
  victims_t v = {NULL, NULL};
  pool_lock();
  collect_over_budget(&v, 0);
  front_sweep(&v, 0, true);
  pool_unlock();
  return process_victims(&v);
}

size_t zc_large_purge(bool force) {
  victims_t v = {NULL, NULL};
  uint64_t now = zc_os_clock_coarse_ns();
  pool_lock();
  collect_due(&v, now, force);
  front_sweep(&v, now, force);
  pool_unlock();
  return process_victims(&v);
}

/* Usable bytes of live regions, summed over the shards (a snapshot; clamped at 0 while others run). */
static uint64_t live_bytes_now(void) {
  int64_t live = 0;
  for (unsigned i = 0; i < NFRONT; i++) live += (int64_t)__atomic_load_n(&front[i].live_bytes, __ATOMIC_RELAXED);
  return live > 0 ? (uint64_t)live : 0;
}

void zc_large_stats(zc_large_stats_t *out) {
  uint64_t allocs = 0, frees = 0, misses = 0, live_bytes = 0; /* a snapshot while others run: clamped */
  for (unsigned i = 0; i < NFRONT; i++) {
    frees += __atomic_load_n(&front[i].frees, __ATOMIC_RELAXED);
    live_bytes += __atomic_load_n(&front[i].live_bytes, __ATOMIC_RELAXED);
    allocs += __atomic_load_n(&front[i].allocs, __ATOMIC_RELAXED);
    misses += __atomic_load_n(&front[i].misses, __ATOMIC_RELAXED);
  }
  out->live_regions = allocs > frees ? allocs - frees : 0;
  out->live_bytes = (int64_t)live_bytes > 0 ? live_bytes : 0;
  out->cached_dirty = __atomic_load_n(&pool.bytes[DIRTY], __ATOMIC_RELAXED) + front_bytes();
  out->cached_clean = __atomic_load_n(&pool.bytes[CLEAN], __ATOMIC_RELAXED);
  out->mapped = __atomic_load_n(&st.mapped, __ATOMIC_RELAXED);
  out->purged = __atomic_load_n(&st.purged, __ATOMIC_RELAXED);
  out->cache_hits = allocs > misses ? allocs - misses : 0;
  out->cache_misses = misses;
  out->lock_contended = __atomic_load_n(&st.contended, __ATOMIC_RELAXED);
  out->purge_calls = __atomic_load_n(&st.purge_calls, __ATOMIC_RELAXED);
  out->misses = __atomic_load_n(&st.pmisses, __ATOMIC_RELAXED);
  out->miss_bytes = __atomic_load_n(&st.pmiss_bytes, __ATOMIC_RELAXED);
  out->grown = __atomic_load_n(&st.grown, __ATOMIC_RELAXED);
}

/* ---- fork ---- */

void zc_large_fork_prepare(void) { zc_lock(&pool.lock); }
void zc_large_fork_parent(void) { zc_unlock(&pool.lock); }

/* The child has one thread: the lock is reset and the purger restarts on the next free. Regions another
 * parent thread held BUSY at the fork (being purged or unmapped) stay mapped in the child but are lost to
 * the pool: address space, not memory. */
void zc_large_fork_child(void) {
  zc_lock_init(&pool.lock);
  if (__atomic_load_n(&purger_state, __ATOMIC_RELAXED) == 1) __atomic_store_n(&purger_state, 0, __ATOMIC_RELAXED);
}
