/* Layer 6, large objects: blocks above ZC_SMALL_MAX and blocks whose alignment a page of size classes
 * cannot give. Each block lives alone in a region: one OS mapping, 4 MiB-aligned so the segment map can
 * describe it, with a 128-byte header at its base and the user block right after it (rounded up to the
 * requested alignment). Regions are sized in classes, four per doubling (so a mapping exceeds header +
 * alignment + request by at most 25%, and the pages of that tail that are never touched cost no memory).
 *
 * Freed regions are cached at two levels:
 *   front  per-thread shards of a few lock-free slots for small regions (large_front.c; described in
 *          large_internal.h above front_t);
 *   pool   one global pool, by class, two lists per class:
 *            dirty  still resident; reused first, most recently freed first (likely still in cache);
 *            clean  purged (zc_os_purge from the second OS page on); reused after dirty.
 * A request takes a region of its class or the next one (front, then pool dirty, then pool clean), or maps
 * a new one. Policy: a dirty region cached for longer than the purge delay is purged and becomes clean; a
 * clean region unused for max(10 x delay, 1 s) is unmapped. Budget (ZCMEM_LARGE_CACHE = B): the front
 * holds at most B/8, the pool at most B - B/8 (oldest clean unmapped first, then oldest dirty); dirty
 * bytes (front and pool) at most the recent demand minus what is live (lg_dirty_budget, large_pool.c) and
 * at most B/4 (oldest dirty purged at once); so at most B cached and 3B/8 resident. A miss may grow a
 * smaller dirty region by moving its pages (grow_cached). The time policy runs on a background thread
 * started on the first free into the cache (ZCMEM_BACKGROUND=1), else inline on allocations and frees. File-backed regions (ZCMEM_LARGE_FILE=1) are never purged (MADV_DONTNEED does not
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
 *    compare-and-swap (LIVE -> BUSY in free, slot word -> 0 in the front) or happens under lg_pool.lock.
 *
 * Locking: lg_pool.lock protects the pool's lists, lg_pool.bytes/count and front_seen. It is a leaf (nothing
 * else is locked while it is held) and it is never held across mmap, munmap, madvise or memset: regions
 * are taken off the lists (BUSY) under the lock, and worked on after it is released. The front takes no
 * lock.
 */
#include "large_internal.h"

#include <errno.h>
#include <string.h>

#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h> /* client requests only: macros, no library, no-ops outside valgrind */
#define LG_MEMCHECK 1
#endif
#endif

static uint64_t secret; /* nonzero once initialised */

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
void lg_report_corrupt(const region_t *r, const char *when) {
  zc_error("large region at %p: header overwritten (keyed check failed) %s; the region is left alone",
           (const void *)r, when);
}

/* ---- mapping, purging, unmapping (no lock held) ---- */

static region_t *map_region(size_t map_size, uint64_t s);
static region_t *grow_cached(front_t *f, unsigned c, size_t want);

/* After zc_os_move grew a mapping from old to want bytes at q: the kernel maps [q + old, q + want) read-write
 * and zero-filled. Valgrind 3.19's memcheck may mark that range inaccessible instead: for an
 * mremap(MREMAP_MAYMOVE | MREMAP_FIXED) that grows, it takes the permissions of the new part from its
 * segment table entry of the old mapping after the move has changed that table, i.e. from whatever segment
 * then sits there (a free hole or a PROT_NONE reservation: "no access"). Every later write to the block is
 * then reported as an invalid write (valgrind_large_move_grow fails without this). Telling memcheck
 * what the kernel guarantees (defined zeros) hides no error: a later munmap or purge is still tracked. */
static void moved_tail_mapped(char *q, size_t old, size_t want) {
#ifdef LG_MEMCHECK
  (void)VALGRIND_MAKE_MEM_DEFINED(q + old, want - old);
#else
  (void)q, (void)old, (void)want;
#endif
}

/* zc_large_alloc, or with reuse_only a region resident in the cache or nothing (NULL, errno untouched):
 * no clean region, no new mapping. */
static void *large_alloc(size_t size, size_t align, bool zero, bool reuse_only) {
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
  front_t *f = lg_my_front();
  int from = DIRTY;
  region_t *r = lg_front_take(f, c);
  if (r != NULL) {
    lg_front_tick();
  } else {
    victims_t v = {NULL, NULL};
    bool inl = lg_inline_policy();
    r = lg_cache_take(c, reuse_only, &from, &v, inl ? zc_os_clock_coarse_ns() : 0, inl);
    if (v.purge || v.unmap) lg_process_victims(&v);
  }
  if (r != NULL && !region_valid(r)) { /* overwritten while cached: leave it, map a new one */
    lg_report_corrupt(r, "when taken from the cache");
    r = NULL;
  }
  if (r == NULL && reuse_only) return NULL;
  bool fresh = r == NULL, missed = fresh;
  if (!fresh && from == CLEAN && zc_os_clock_coarse_ns() - r->stamp < delay_ns()) { /* purged too early */
    STAT_ADD(pmisses, 1);
    STAT_ADD(pmiss_bytes, r->map_size);
  }
  if (fresh) {
    size_t want = page_round(class_bytes(c));
    if ((r = grow_cached(f, c, want)) != NULL) {
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
  lg_note_live_peak();
  __atomic_store_n(&r->state, ST_LIVE, __ATOMIC_RELEASE);
  if (missed) { /* live grew: the dirty bound may have fallen */
    victims_t v = {NULL, NULL};
    lg_pool_lock();
    lg_collect_over_budget(&v, cache_budget());
    lg_pool_unlock();
    if (v.purge || v.unmap) lg_process_victims(&v);
  }
  return block;
}

void *zc_large_alloc(size_t size, size_t align, bool zero) { return large_alloc(size, align, zero, false); }

void *zc_large_grow_resident(void *p, void *hdr, size_t new_size) {
  region_t *r = hdr;
  if (!live_block(r, p) || new_size > LARGE_MAX) return NULL;
  size_t old = r->map_size - r->offset;
  if (new_size <= old || old > GROW_COPY_MAX) return NULL;
  void *q = large_alloc(new_size, 16, false, true);
  if (q == NULL) return NULL;
  memcpy(q, p, old);
  zc_large_free(p, hdr);
  return q;
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
      lg_pool_lock();
      lg_collect_over_budget(&v, 0);
      lg_front_sweep(&v, 0, true);
      lg_pool_unlock();
      if (v.purge == NULL && v.unmap == NULL) break;
      lg_process_victims(&v);
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
 * page faults per buffer from about 105 to 75 and peak RSS by a fifth. Candidates: this thread's front
 * slots, then the pool's dirty lists. The mapping is extended in place when the address space after it is
 * free, else its pages move (zc_os_move). Only anonymous regions grow. Returns the region BUSY, holding old
 * bytes, or NULL. */
#define GROW_SPAN 12u
static region_t *grow_cached(front_t *f, unsigned c, size_t want) {
  unsigned lo = c > GROW_SPAN ? c - GROW_SPAN : 0;
  region_t *r = lg_front_take_below(f, c, lo); /* this thread's own slots first: no lock */
  if (r == NULL && __atomic_load_n(&lg_pool.count[DIRTY], __ATOMIC_RELAXED) != 0) {
    lg_pool_lock();
    for (unsigned cc = c; cc-- > lo && r == NULL;) {
      region_t *x = lg_pool.cls[DIRTY][cc].head;
      if (x != NULL && region_valid(x) && !(x->flags & F_FILE) && x->map_size < want) r = x;
    }
    if (r != NULL) lg_cache_unlink(r);
    lg_pool_unlock();
  }
  if (r == NULL) return NULL;
  if (!region_valid(r)) { /* overwritten while in a front slot: leave it */
    lg_report_corrupt(r, "when taken from the cache");
    return NULL;
  }
  if ((r->flags & F_FILE) || r->map_size >= want) { /* a front slot's that cannot grow: to the pool */
    lg_pool_lock();
    lg_cache_insert(r, DIRTY, zc_os_clock_coarse_ns());
    lg_pool_unlock();
    return NULL;
  }
  size_t old = r->map_size;
  region_t *q = r;
  if (!zc_os_extend(r, old, want)) { /* in place when the address space after it is free, else moved */
    zc_segmap_clear(r, old); /* as zc_large_move: once moved, the old range may be mapped by anyone */
    q = zc_os_move(r, old, want, ZC_SEGMENT_SIZE);
    if (q == NULL) { /* no address space: give the region up too, map_region will try */
      zc_segmap_set(r, old, ZC_MAP_LARGE);
      lg_unmap_region(r);
      return NULL;
    }
    moved_tail_mapped((char *)q, old, want);
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
  front_t *f = lg_my_front();
  FSTAT_ADD(f, frees, 1);
  FSTAT_ADD(f, live_bytes, -(int64_t)(r->map_size - r->offset));

  size_t budget = cache_budget();
  r = lg_front_put(f, r, budget);
  if (r == NULL) {
    lg_front_tick();
    return;
  }
  bool keep = r->map_size <= lg_pool_budget(budget) && r->cls < NCLASS; /* else unmapped at once */
  uint64_t now = zc_os_clock_coarse_ns();
  victims_t v = {NULL, NULL};
  lg_pool_lock();
  if (keep) lg_cache_insert(r, DIRTY, now);
  lg_collect_over_budget(&v, budget); /* the budget may have been lowered since the last free */
  if (lg_inline_policy()) lg_policy_locked(&v, now);
  lg_pool_unlock();
  if (!keep) lg_unmap_region(r);
  if (keep && lg_want_purger()) lg_purger_request(); /* inside free: never a thread start */
  if (v.purge || v.unmap) lg_process_victims(&v);
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
      FSTAT_ADD(lg_my_front(), live_bytes, -(int64_t)(old_map - want));
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
  FSTAT_ADD(lg_my_front(), live_bytes, (int64_t)(want - old_map));
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
  moved_tail_mapped((char *)q, old_map, want);
  q->map_size = want;
  q->cls = class_floor(want);
  seal(q);
  set_canary(q); /* keyed by the block's address, which moved */
  zc_segmap_set(q, want, ZC_MAP_LARGE);
  STAT_ADD(mapped, want - old_map);
  FSTAT_ADD(lg_my_front(), live_bytes, (int64_t)(want - old_map));
  return (char *)q + offset;
}

size_t zc_large_release_cache(void) {
  victims_t v = {NULL, NULL};
  lg_pool_lock();
  lg_collect_over_budget(&v, 0);
  lg_front_sweep(&v, 0, true);
  lg_pool_unlock();
  return lg_process_victims(&v);
}

size_t zc_large_purge(bool force) {
  victims_t v = {NULL, NULL};
  uint64_t now = zc_os_clock_coarse_ns();
  lg_pool_lock();
  lg_collect_due(&v, now, force);
  lg_front_sweep(&v, now, force);
  lg_pool_unlock();
  return lg_process_victims(&v);
}


void zc_large_stats(zc_large_stats_t *out) {
  uint64_t allocs = 0, frees = 0, misses = 0, live_bytes = 0; /* a snapshot while others run: clamped */
  for (unsigned i = 0; i < NFRONT; i++) {
    frees += __atomic_load_n(&lg_front[i].frees, __ATOMIC_RELAXED);
    live_bytes += __atomic_load_n(&lg_front[i].live_bytes, __ATOMIC_RELAXED);
    allocs += __atomic_load_n(&lg_front[i].allocs, __ATOMIC_RELAXED);
    misses += __atomic_load_n(&lg_front[i].misses, __ATOMIC_RELAXED);
  }
  out->live_regions = allocs > frees ? allocs - frees : 0;
  out->live_bytes = (int64_t)live_bytes > 0 ? live_bytes : 0;
  out->cached_dirty = __atomic_load_n(&lg_pool.bytes[DIRTY], __ATOMIC_RELAXED) + lg_front_bytes();
  out->cached_clean = __atomic_load_n(&lg_pool.bytes[CLEAN], __ATOMIC_RELAXED);
  out->mapped = __atomic_load_n(&lg_st.mapped, __ATOMIC_RELAXED);
  out->purged = __atomic_load_n(&lg_st.purged, __ATOMIC_RELAXED);
  out->cache_hits = allocs > misses ? allocs - misses : 0;
  out->cache_misses = misses;
  out->lock_contended = __atomic_load_n(&lg_st.contended, __ATOMIC_RELAXED);
  out->purge_calls = __atomic_load_n(&lg_st.purge_calls, __ATOMIC_RELAXED);
  out->misses = __atomic_load_n(&lg_st.pmisses, __ATOMIC_RELAXED);
  out->miss_bytes = __atomic_load_n(&lg_st.pmiss_bytes, __ATOMIC_RELAXED);
  out->grown = __atomic_load_n(&lg_st.grown, __ATOMIC_RELAXED);
}

/* ---- fork ---- */

void zc_large_fork_prepare(void) { zc_lock(&lg_pool.lock); }
void zc_large_fork_parent(void) { zc_unlock(&lg_pool.lock); }

/* The child has one thread: the lock is reset and the purger restarts on the next free. Regions another
 * parent thread held BUSY at the fork (being purged or unmapped) stay mapped in the child but are lost to
 * the pool: address space, not memory. */
void zc_large_fork_child(void) {
  zc_lock_init(&lg_pool.lock);
  lg_purger_fork_child();
}
