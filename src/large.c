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
 * A request takes a region of its class or up to four times it (front, then pool dirty; pool clean: its
 * class or the next), splitting off a dirty region's tail of 4 MiB or more into the cache (split_tail), or
 * builds a new one from cached dirty pages and fresh ones (compose). Policy: a dirty region cached for
 * longer than the purge delay is purged and becomes clean; a
 * clean region unused for max(10 x delay, 1 s) is unmapped. Budget (ZCMEM_LARGE_CACHE = B): the front
 * holds at most B/8, the pool at most B - B/8 (oldest clean unmapped first, then oldest dirty); dirty
 * bytes (front and pool) at most the recent demand minus what is live (lg_dirty_budget, large_pool.c) and
 * at most B/4 (oldest dirty purged at once); so at most B cached and 3B/8 resident. The time policy runs on a background thread
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
static bool file_mapped; /* a file-backed region was ever mapped (atomic; the fork handlers below) */
/* The fork generation: 0 in the first process, the parent's plus one in a fork child (zc_large_fork_child).
 * A region's header records the generation that mapped it, so a file-backed region whose generation is not
 * ours was inherited at a fork and is shared with an ancestor (MAP_SHARED): its header is the ancestor's too. */
static uint32_t lg_gen;

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
static region_t *compose(front_t *f, unsigned c, size_t want, uint64_t s, bool *fresh);
static size_t fill_from_cache(char *dst, size_t room, bool *hole);

/* A dirty region taken for a request of want bytes (a class size) whose tail beyond want is SPLIT_MIN or
 * more: the tail's pages move (mremap: no copy, no fault) to a new aligned mapping, which goes back to the
 * pool as a dirty region of its own, and r keeps want bytes. Whole, the region would hold its tail resident
 * beside the block for as long as the block lives. A smaller tail stays: a split costs a reservation and a
 * move (tens of microseconds), which on bench/large-ring (64 KiB-8 MiB buffers, one byte written per page)
 * cost more than the buffer's use, and the fragments it left missed more often (the ring ran several times
 * slower with every tail of 64 KiB and more split). On any failure r stays whole; a region made of several
 * mappings (compose) that this kernel cannot move is marked F_NOMOVE and not tried again. r is BUSY. */
#define SPLIT_MIN ZC_SEGMENT_SIZE
static void split_tail(region_t *r, size_t want) {
  size_t old = r->map_size;
  if (old < want + SPLIT_MIN || (r->flags & (F_FILE | F_NOMOVE)) || !region_valid(r)) return;
  if (!zc_os_can_move_mappings()) return; /* no compose to use the fragments: splitting alone faulted more */
  size_t chunks_old = (old + ZC_SEGMENT_MASK) >> ZC_SEGMENT_SHIFT;
  size_t chunks_new = (want + ZC_SEGMENT_MASK) >> ZC_SEGMENT_SHIFT;
  if (chunks_new < chunks_old) /* as zc_large_move: once moved, the old range may be mapped by anyone */
    zc_segmap_clear((char *)r + (chunks_new << ZC_SEGMENT_SHIFT), (chunks_old - chunks_new) << ZC_SEGMENT_SHIFT);
  region_t *t = zc_os_move((char *)r + want, old - want, old - want, ZC_SEGMENT_SIZE);
  if (t == NULL) {
    zc_segmap_set(r, old, ZC_MAP_LARGE);
    r->flags |= F_NOMOVE;
    seal(r);
    return;
  }
  r->map_size = want;
  r->cls = class_floor(want);
  seal(r);
  t->map_size = old - want;
  t->offset = HDR_SIZE;
  t->flags = r->flags & ~(uint32_t)F_STALE;
  t->cls = class_floor(old - want);
  t->gen = r->gen;
  seal(t);
  __atomic_store_n(&t->state, ST_BUSY, __ATOMIC_RELAXED);
  zc_segmap_set(t, old - want, ZC_MAP_LARGE);
  STAT_ADD(split, 1);
  uint64_t now = zc_os_clock_coarse_ns();
  lg_pool_lock();
  lg_cache_insert(t, DIRTY, now);
  lg_pool_unlock();
}

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
  if (r != NULL && from == DIRTY) split_tail(r, page_round(class_bytes(c)));
  bool fresh = r == NULL, missed = fresh;
  if (!fresh && from == CLEAN && zc_os_clock_coarse_ns() - r->stamp < delay_ns()) { /* purged too early */
    STAT_ADD(pmisses, 1);
    STAT_ADD(pmiss_bytes, r->map_size);
  }
  if (fresh) {
    size_t want = page_round(class_bytes(c));
    r = compose(f, c, want, s, &fresh);
    /* The class rounds up by up to a quarter: a mapping of just what is needed when that one is refused (the
     * kernel's overcommit heuristic refuses one larger than RAM + swap), so that zcmem grants what the
     * system malloc's mmap would (core_overcommit). */
    if (r == NULL && page_round(need) < want) {
      fresh = true;
      r = map_region(page_round(need), s);
    }
    if (r == NULL) return NULL;
    if (!fresh) from = DIRTY; /* its pages hold old bytes */
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
      if (base != NULL) __atomic_store_n(&file_mapped, true, __ATOMIC_RELEASE); /* before any cache holds it */
      static bool warned;
      if (base == NULL && !__atomic_exchange_n(&warned, true, __ATOMIC_RELAXED))
        zc_warning("ZCMEM_LARGE_FILE=1: no file could be made in $TMPDIR (or /tmp): this large region and "
                   "those like it are anonymous memory");
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
  r->gen = lg_gen;
  r->stamp = 0;
  seal(r);
  __atomic_store_n(&r->state, ST_BUSY, __ATOMIC_RELAXED);
  zc_segmap_set(r, map_size, ZC_MAP_LARGE);
  STAT_ADD(mapped, map_size);
  return r;
}

/* A miss (no cached region of class c or up to four times it): the new region of want bytes is built from
 * cached dirty pages before fresh ones, so that a miss neither faults in pages beside resident ones the
 * dirty bound would then purge, nor leaves the cache's smaller regions resident and unused. First the
 * largest cached region of a smaller class (down to an eighth of the size, GROW_SPAN classes; this
 * thread's front slots first, then the pool) is extended in place when the address space after it is
 * free; else a new mapping of want bytes is made. Then the rest of it is filled with the pages of cached
 * dirty regions that fit, largest first (fill_from_cache): their pages need no fault and no zeroing, only
 * what is left does. The region is then made of several OS mappings, which only Linux 6.17 and later
 * moves as one (zc_os_can_move_mappings): on an older kernel there is no fill (and no split_tail), and the
 * smaller region's pages move into a new mapping of want bytes instead, the rule before compose. A move of
 * a composed region that fails all the same marks it F_NOMOVE. On bench/large (64
 * KiB-32 MiB buffers), with split_tail, this took peak RSS from about 164 to 145 MiB and page faults per
 * buffer from about 234 to 195 (docs/design.md). Only anonymous regions are composed. Returns the region
 * BUSY (*fresh false when it holds old bytes), or NULL. */
#define GROW_SPAN 12u

/* [dst, dst+room), fresh pages of a region being composed: replace them with the pages of cached dirty
 * regions that fit (largest first, at most FILL_MAX of them, each moved whole with mremap). Returns the bytes
 * moved. */
#define FILL_MAX 16
static size_t fill_from_cache(char *dst, size_t room, bool *hole) {
  size_t moved = 0;
  for (int n = 0; n < FILL_MAX && room >= MIN_REGION; n++) {
    region_t *x = NULL;
    if (__atomic_load_n(&lg_pool.count[DIRTY], __ATOMIC_RELAXED) == 0) return moved;
    lg_pool_lock();
    for (unsigned cc = class_floor(room) + 1; cc-- > 0 && x == NULL;) {
      for (region_t *y = lg_pool.cls[DIRTY][cc].head; y != NULL && x == NULL; y = y->link[L_CLASS].next)
        if (region_valid(y) && !(y->flags & (F_FILE | F_NOMOVE)) && y->map_size <= room) x = y;
      if (class_bytes(cc) <= MIN_REGION) break;
    }
    if (x != NULL) lg_cache_unlink(x);
    lg_pool_unlock();
    if (x == NULL) return moved;
    size_t size = x->map_size;
    zc_segmap_clear(x, size);
    int done = zc_os_move_to(x, size, dst);
    if (done != 1) { /* several mappings, on a kernel that cannot move them as one */
      zc_segmap_set(x, size, ZC_MAP_LARGE);
      x->flags |= F_NOMOVE;
      seal(x);
      lg_pool_lock();
      lg_cache_insert(x, DIRTY, zc_os_clock_coarse_ns());
      lg_pool_unlock();
      if (done < 0) *hole = true;
      return moved;
    }
    moved += size;
    STAT_SUB(mapped, size);
    STAT_ADD(filled, 1);
    dst += size;
    room -= size;
  }
  return moved;
}
/* r (old bytes mapped, its header intact) now spans want bytes: grown in place, or its pages moved to a new
 * mapping of want bytes. Its header, segment-map entries and counts say so. */
static void grown_to(region_t *r, size_t old, size_t want) {
  r->map_size = want;
  r->offset = HDR_SIZE;
  r->flags &= ~(uint32_t)F_STALE;
  r->cls = class_floor(want);
  seal(r);
  zc_segmap_set(r, want, ZC_MAP_LARGE);
  STAT_ADD(mapped, want - old);
  STAT_ADD(grown, 1);
}
static region_t *compose(front_t *f, unsigned c, size_t want, uint64_t s, bool *fresh) {
  bool pieces = zc_os_can_move_mappings();
  unsigned lo = c > GROW_SPAN ? c - GROW_SPAN : 0;
  region_t *r = lg_front_take_below(f, c, lo); /* this thread's own slots first: no lock */
  if (r == NULL && __atomic_load_n(&lg_pool.count[DIRTY], __ATOMIC_RELAXED) != 0) {
    lg_pool_lock();
    for (unsigned cc = c; cc-- > lo && r == NULL;) {
      region_t *x = lg_pool.cls[DIRTY][cc].head;
      if (x != NULL && region_valid(x) && !(x->flags & (F_FILE | F_NOMOVE)) && x->map_size < want) r = x;
    }
    if (r != NULL) lg_cache_unlink(r);
    lg_pool_unlock();
  }
  if (r != NULL && !region_valid(r)) { /* overwritten while in a front slot: leave it */
    lg_report_corrupt(r, "when taken from the cache");
    r = NULL;
  }
  if (r != NULL && !(r->flags & (F_FILE | F_NOMOVE)) && r->map_size < want && zc_os_extend(r, r->map_size, want)) {
    size_t old = r->map_size; /* grown in place: the address space after it was free */
    grown_to(r, old, want);
    bool hole = false;
    if (pieces) fill_from_cache((char *)r + old, want - old, &hole);
    if (hole) { /* part of it could not be mapped again: give it up, map a new one */
      lg_unmap_region(r);
      return map_region(want, s);
    }
    *fresh = false;
    return r;
  }
  if (r != NULL && !pieces && !(r->flags & F_FILE) && r->map_size < want) {
    /* a kernel that cannot move several mappings as one: no compose; the region's pages move to a new
     * mapping of want bytes (one mapping still) */
    size_t old = r->map_size;
    zc_segmap_clear(r, old); /* as zc_large_move: once moved, the old range may be mapped by anyone */
    region_t *q = zc_os_move(r, old, want, ZC_SEGMENT_SIZE);
    if (q == NULL) { /* no address space: give the region up too, map_region will try */
      zc_segmap_set(r, old, ZC_MAP_LARGE);
      lg_unmap_region(r);
      return map_region(want, s);
    }
    moved_tail_mapped((char *)q, old, want);
    grown_to(q, old, want);
    *fresh = false;
    return q;
  }
  if (r != NULL) { /* back to the pool: the fill below takes it first if it fits */
    lg_pool_lock();
    lg_cache_insert(r, DIRTY, zc_os_clock_coarse_ns());
    lg_pool_unlock();
  }
  region_t *q = map_region(want, s);
  if (q == NULL || (q->flags & F_FILE) || !pieces) return q;
  uint32_t flags = q->flags;
  bool hole = false;
  size_t moved = fill_from_cache((char *)q, want, &hole);
  if (hole) { /* part of it could not be mapped again: give it up (header first) */
    zc_segmap_clear(q, want);
    zc_os_free(q, want);
    STAT_SUB(mapped, want); /* the moved regions' bytes left the count when they moved into q */
    STAT_ADD(purged, want);
    return map_region(want, s);
  }
  /* The header is written again whether or not a region moved in: a moved region's pages replace the header
   * page, and a refused move (at the kernel's mapping limit: tests/large large_mapcount_compose) leaves zeroed
   * pages mapped again over the range it was given, the header page too (zc_os_move_to). */
  q->map_size = want;
  q->offset = HDR_SIZE;
  q->flags = flags;
  q->cls = class_floor(want);
  q->gen = lg_gen;
  q->stamp = 0;
  seal(q);
  __atomic_store_n(&q->state, ST_BUSY, __ATOMIC_RELAXED);
  if (moved == 0) return q; /* still fresh: the pages mapped again are zero-filled too */
  STAT_ADD(grown, 1);
  *fresh = false;
  return q;
}

/* A free, in a fork child, of a file-backed block live at the fork: the mapping is shared with the ancestor
 * that made it, whose block it still is, so its header must not change (a state change or a cache link here
 * would be the ancestor's: its own free would then report a double free, its lists would be corrupted). The
 * child only unmaps its view; a second free of the block then finds no zcmem memory there and is reported. */
static __attribute__((noinline)) void free_inherited(region_t *r) {
  size_t size = r->map_size;
  FSTAT_ADD(lg_my_front(), frees, 1);
  FSTAT_ADD(lg_my_front(), live_bytes, -(int64_t)(size - r->offset));
  lg_forget_range(r, size);
}

void zc_large_free(void *p, void *hdr) {
  region_t *r = hdr;
  if (!region_valid(r)) {
    zc_error("invalid free of %p: the header of its large region at %p fails its keyed check (overwritten)", p, hdr);
    return;
  }
  if (unlikely((r->flags & F_FILE) && r->gen != lg_gen)) { /* inherited at a fork: the header is shared, and */
    if (p != block_of(r)) /* its state is the ancestor's (who may have freed its own block meanwhile) */
      zc_error("invalid free of %p: not the start of a large block (it starts at %p)", p, (void *)block_of(r));
    else
      free_inherited(r);
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
  if (!live_block(r, p) || new_size > LARGE_MAX || (r->flags & (F_FILE | F_NOMOVE)) || r->offset >= ZC_SEGMENT_SIZE) return NULL;
  size_t old_map = r->map_size, offset = r->offset;
  size_t want = page_round(class_bytes(class_ceil(offset + new_size)));
  if (want <= old_map) return NULL; /* not a growth: resize in place serves it */
  /* Unmark first: once moved, the old range may be mapped by anyone. p is live and the caller's, so no
   * valid lookup of it can run meanwhile. */
  zc_segmap_clear(r, old_map);
  region_t *q = zc_os_move(r, old_map, want, ZC_SEGMENT_SIZE);
  if (q == NULL) { /* a composed region (several mappings): a new mapping, its pages moved to its start */
    q = zc_os_alloc_aligned(want, ZC_SEGMENT_SIZE);
    if (q != NULL && zc_os_move_to(r, old_map, q) != 1) {
      zc_os_free(q, want);
      q = NULL;
    }
  }
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
  /* The address space, not the resident bytes lg_process_victims counts: after a purge (malloc_trim, or the
   * purge delay) every cached region is clean, and a 0 here made the malloc slow path skip its retry while
   * the unmap had just made room (a thread's first small or medium malloc failed under RLIMIT_AS:
   * core_exhaust_*_thread). */
  size_t unmapped = 0;
  for (region_t *r = v.unmap; r != NULL; r = r->link[L_CLASS].next) unmapped += r->map_size;
  lg_process_victims(&v);
  return unmapped;
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
  out->split = __atomic_load_n(&lg_st.split, __ATOMIC_RELAXED);
  out->filled = __atomic_load_n(&lg_st.filled, __ATOMIC_RELAXED);
}

/* ---- fork ----
 * File-backed regions are MAP_SHARED mappings: a fork child shares them with its parent. The cached ones are
 * free in the parent, which may hand them out again: the child forgets them (unmaps them: in the child
 * only), so that no cached region is ever handed out by two processes. Each file-backed region maps a file
 * of its own (zc_os_alloc_file_backed), so the child's new regions share nothing with the parent. Live
 * file-backed blocks inherited at the fork stay shared (docs/design.md, "File-backed").
 *
 * The pool's lists are linked through the regions' headers, and a file-backed header is shared: once the
 * parent's handler releases the pool lock, the parent's threads relink them, so the child must not follow
 * (or write) their links. The prepare handler (pool lock held, so the lists are as the child will see them)
 * copies every cached file-backed region's size and links into private memory (fork_snap, an open-addressing
 * table by address); the child rebuilds its lists from the anonymous headers (private to it) and those
 * copies, then unmaps the regions. A front slot is a private word naming its region and class (the size):
 * only the region's F_FILE flag is read from the shared header, and that bit never changes while the file
 * is mapped. If the table cannot be mapped, the child drops its whole pool instead (every cached region is
 * forgotten, without unmapping: address space, and the parent's freed file pages, until the child exits). */
typedef struct fsnap_s {
  region_t *r;      /* NULL: empty entry */
  size_t map_size;  /* 0 if its header failed its check (left mapped) */
  int w;            /* DIRTY or CLEAN */
  rlink_t link[2];  /* its links as of the fork */
} fsnap_t;

static fsnap_t *fork_snap;     /* the prepare handler's table, or NULL */
static size_t fork_snap_bytes; /* its mapping */
static unsigned fork_snap_bits; /* log2 of its entries */
static bool fork_snap_lost;    /* file-backed regions may be cached, and no table could be made */

static size_t snap_slot(const region_t *r, unsigned bits) {
  return (size_t)(((uint64_t)(uintptr_t)r >> ZC_SEGMENT_SHIFT) * 0x9e3779b97f4a7c15ull >> (64u - bits));
}

static const fsnap_t *snap_find(const region_t *r) {
  size_t mask = ((size_t)1 << fork_snap_bits) - 1;
  for (size_t i = snap_slot(r, fork_snap_bits);; i = (i + 1) & mask) {
    if (fork_snap[i].r == r) return &fork_snap[i];
    if (fork_snap[i].r == NULL) return NULL;
  }
}

/* Pool lock held: record every cached file-backed region (count of them at most half the table). */
static void snap_fill(void) {
  size_t mask = ((size_t)1 << fork_snap_bits) - 1;
  for (int w = 0; w < 2; w++) {
    for (region_t *r = lg_pool.age[w].head; r != NULL; r = r->link[L_AGE].next) {
      if (!(r->flags & F_FILE)) continue;
      size_t i = snap_slot(r, fork_snap_bits);
      while (fork_snap[i].r != NULL) i = (i + 1) & mask;
      fork_snap[i] = (fsnap_t){r, region_valid(r) ? r->map_size : 0, w, {r->link[0], r->link[1]}};
    }
  }
}

void zc_large_fork_prepare(void) {
  fork_snap = NULL;
  fork_snap_lost = false;
  if (!__atomic_load_n(&file_mapped, __ATOMIC_ACQUIRE)) { /* only anonymous regions: nothing to forget */
    zc_lock_for_fork(&lg_pool.lock);
    return;
  }
  /* The table is mapped before the lock is taken (never an mmap under it), sized for the regions cached
   * then; if more were cached meanwhile, again (a few times, then the fallback). */
  for (int tries = 0;; tries++) {
    size_t n = __atomic_load_n(&lg_pool.count[DIRTY], __ATOMIC_RELAXED) +
               __atomic_load_n(&lg_pool.count[CLEAN], __ATOMIC_RELAXED) + 16;
    unsigned bits = 5;
    while (((size_t)1 << bits) < 2 * n) bits++;
    size_t bytes = page_round(((size_t)1 << bits) * sizeof(fsnap_t));
    fsnap_t *t = zc_os_alloc_aligned(bytes, zc_os_page_size()); /* zero-filled */
    zc_lock_for_fork(&lg_pool.lock);
    if (t != NULL && lg_pool.count[DIRTY] + lg_pool.count[CLEAN] <= n) {
      fork_snap = t;
      fork_snap_bytes = bytes;
      fork_snap_bits = bits;
      snap_fill();
      return;
    }
    if (t == NULL || tries == 3) {
      fork_snap_lost = true;
      if (t != NULL) { /* leaked in the parent's handler instead: freed there, after the lock */
        fork_snap = t;
        fork_snap_bytes = bytes;
      }
      return;
    }
    zc_unlock_for_fork(&lg_pool.lock);
    zc_os_free(t, bytes);
  }
}

void zc_large_fork_parent(void) {
  zc_unlock_for_fork(&lg_pool.lock);
  if (fork_snap != NULL) zc_os_free(fork_snap, fork_snap_bytes);
  fork_snap = NULL;
}

/* Child: list l (link k) without the regions in the table, following their links from the table. Writes
 * only the anonymous headers, which are the child's own. */
static void snap_relink(rlist_t *l, int k) {
  region_t *kept = NULL, *x = l->head;
  l->head = NULL;
  while (x != NULL) {
    const fsnap_t *e = snap_find(x);
    region_t *next = e != NULL ? e->link[k].next : x->link[k].next;
    if (e == NULL) {
      x->link[k].prev = kept;
      if (kept != NULL) kept->link[k].next = x;
      else l->head = x;
      kept = x;
    }
    x = next;
  }
  if (kept != NULL) kept->link[k].next = NULL;
  l->tail = kept;
}

static void forget_file_regions(void) {
  lg_front_fork_child(); /* the front slots' file-backed regions */
  if (fork_snap_lost) {
    memset(lg_pool.cls, 0, sizeof lg_pool.cls);
    memset(lg_pool.age, 0, sizeof lg_pool.age);
    for (int w = 0; w < 2; w++) {
      __atomic_store_n(&lg_pool.bytes[w], 0, __ATOMIC_RELAXED);
      __atomic_store_n(&lg_pool.count[w], 0, __ATOMIC_RELAXED);
    }
  } else if (fork_snap != NULL) {
    for (int w = 0; w < 2; w++) {
      for (unsigned c = 0; c < NCLASS; c++) snap_relink(&lg_pool.cls[w][c], L_CLASS);
      snap_relink(&lg_pool.age[w], L_AGE);
    }
    for (size_t i = 0; i < ((size_t)1 << fork_snap_bits); i++) {
      const fsnap_t *e = &fork_snap[i];
      if (e->r == NULL) continue;
      /* as lg_cache_unlink: a region whose header failed its check leaves its bytes counted */
      __atomic_store_n(&lg_pool.bytes[e->w], lg_pool.bytes[e->w] - e->map_size, __ATOMIC_RELAXED);
      __atomic_store_n(&lg_pool.count[e->w], lg_pool.count[e->w] - 1, __ATOMIC_RELAXED);
      if (e->map_size == 0) continue; /* left alone (leaked), as a corrupt region always is */
      lg_forget_range(e->r, e->map_size);
    }
  }
  if (fork_snap != NULL) zc_os_free(fork_snap, fork_snap_bytes);
  fork_snap = NULL;
  fork_snap_lost = false;
}

/* The child has one thread: the lock is reset and the purger restarts on the next free. Regions another
 * parent thread held BUSY at the fork (being purged or unmapped) stay mapped in the child but are lost to
 * the pool: address space, not memory. The cached file-backed regions are forgotten (above). */
void zc_large_fork_child(void) {
  lg_gen++; /* the regions mapped so far are the parent's (free_inherited) */
  zc_lock_init(&lg_pool.lock);
  lg_purger_fork_child();
  if (__atomic_load_n(&file_mapped, __ATOMIC_ACQUIRE)) forget_file_regions();
}
