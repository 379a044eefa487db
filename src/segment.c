/* Layer 2, segments and pages: 4 MiB aligned segments cut into pages of one size class, the per-heap
 * cache of empty pages, the purge of empty pages after a delay or over a budget, a small process-wide cache
 * of empty segments, and the hand-over of a dead thread's segments to live threads (abandon, adopt).
 *
 * The purge policy (process-wide, "pol" below). Demand is the bytes of page areas holding blocks (in_use);
 * dirty is the bytes of free pages that may be resident, wherever they are (heaps' dirty lists, abandoned
 * and cached segments).
 * - Budget: dirty stays under max(ZCMEM_DIRTY_BUDGET, in_use / 2, and while the purger runs the demand keep
 *   below). A heap whose own dirty pages pass it purges its oldest down to 3/4 of it on the free; the purger's
 *   sweep and the owner's check every half delay purge oldest first while the process is over it; a dead
 *   thread's empty pages are kept only within it.
 * - Delay, aware of demand: a dirty page older than ZCMEM_PURGE_DELAY is purged unless the demand of the
 *   last delay says it will be reused: pages stay while dirty <= peak(in_use over the last delay) - in_use
 *   + the reuse allowance. The peak is kept in two buckets of half a delay each (rotated by the purger's
 *   sweeps, or by the owner's slow path without it), so once demand has stayed low for a delay, everything
 *   past the delay goes.
 * - Reuse allowance (the policy scores itself): a purged page taken again within REUSE_DELAYS delays of its
 *   purge adds its size to pol.reuse, which loses 1/8 at every rotation (half a delay) and counts at most
 *   in_use / 2: a process that keeps faulting back what was purged keeps that much more dirty past the delay;
 *   one whose demand has fallen (in_use low) keeps nothing more, so memory return after a drop is unchanged.
 * - Misses: a purged page taken again within one purge delay of its purge is counted (pages and bytes):
 *   the policy's own score (zc_stats_t purge_misses), like the large-region cache's.
 *
 * Invariants:
 * - A heap's segment list (per kind) keeps segments with a free page before full ones, so finding a free
 *   page is O(1): look at the head.
 * - A free page is either dirty (its memory may be resident; pol.dirty counts it; on its heap's dirty list,
 *   oldest first, if a heap owns its segment) or purged.
 * - A heap keeps at most one fully empty segment per kind; another one that empties goes to the segment
 *   cache (at most SEG_CACHE_MAX, only while the purger runs, which purges a cached segment after the delay
 *   and unmaps it after max(10 delays, 1 s) unused), or is unmapped when the cache is full.
 * - An abandoned segment (owner exited) may keep its empty pages resident (dirty) while the background
 *   purger runs: they age under the purge delay there (zc_segments_purge_abandoned) or are reused by the
 *   adopter. Without the purger they were purged at exit, and an abandoned segment has live blocks. One that
 *   ends with no page in use and every page purged goes to the segment cache (unmapped if it is full).
 *
 * Locks: h->lock covers the segment/dirty state of heap h (the owner's slow path against the purger
 * thread); abandoned_lock covers the abandoned lists and the segment cache. Order: h->lock, then
 * abandoned_lock. pol is atomics only.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

/* The segment map (segmap.h): 128 MiB of zeroed .bss, touched only where segments live (and its first
 * entries by free(NULL): they share the OS page of the end of .data, resident anyway). */
uint16_t zc_segmap[ZC_SEGMAP_ENTRIES];

static zc_lock_t abandoned_lock = ZC_LOCK_INIT;
static zc_segment_t *abandoned[ZC_SEG_KINDS];      /* newest first */
static zc_segment_t *abandoned_last[ZC_SEG_KINDS]; /* the oldest: a refill adopts it first */
static size_t abandoned_count;
static _Atomic uint64_t segments_live;
static _Atomic uint64_t purged_bytes;

/* The segment cache (abandoned_lock): empty segments no heap owns, newest last, with when they came. */
#define SEG_CACHE_MAX 8u
static struct {
  zc_segment_t *seg;
  uint64_t since;
} seg_cache[SEG_CACHE_MAX];
static unsigned seg_cached;

/* The process-wide purge policy (see the top of the file). */
static struct {
  _Atomic size_t dirty, in_use;          /* bytes */
  _Atomic size_t peak_cur, peak_prev;    /* most in_use seen in this half delay and the one before */
  _Atomic uint64_t window_end;           /* ns: when peak_cur becomes peak_prev */
  _Atomic uint64_t misses, miss_bytes;   /* purged pages taken again within a delay of their purge */
  _Atomic uint64_t purge_calls, maps;    /* purge system calls made, segments mapped (not from the cache) */
  _Atomic size_t reuse;                  /* bytes of purged pages taken again within REUSE_DELAYS of their
                                            purge, decayed by 1/8 every half delay: the reuse allowance */
  _Atomic uint64_t reuse_pages;          /* pages counted into it (tests, stats) */
} pol __attribute__((aligned(64)));

/* A purged page taken again within this many purge delays of its purge adds its size to the reuse
 * allowance (see demand_keep). */
#define REUSE_DELAYS 10u

#define RLX memory_order_relaxed

static uint64_t delay_ns(void) { return (uint64_t)zc_opt(zc_option_purge_delay) * 1000000u; }

/* The dirty budget: half the demand, at least ZCMEM_DIRTY_BUDGET. */
static size_t demand_keep(void);
static size_t dirty_budget(void) {
  size_t floor = (size_t)zc_opt(zc_option_dirty_budget), prop = atomic_load_explicit(&pol.in_use, RLX) / 2;
  if (zc_purger_active()) { /* it ages the demand window; without it the window would never move */
    size_t keep = demand_keep();
    if (keep > prop) prop = keep;
  }
  return prop > floor ? prop : floor;
}

static void demand_add(size_t area) {
  size_t now = atomic_fetch_add_explicit(&pol.in_use, area, RLX) + area;
  size_t peak = atomic_load_explicit(&pol.peak_cur, RLX);
  while (now > peak && !atomic_compare_exchange_weak_explicit(&pol.peak_cur, &peak, now, RLX, RLX)) {
  }
}
static void demand_sub(size_t area) { atomic_fetch_sub_explicit(&pol.in_use, area, RLX); }

/* Start a new half-delay bucket if this one is over (a little early, so that sweeps every half delay rotate
 * every time). */
static void demand_rotate(uint64_t now) {
  uint64_t end = atomic_load_explicit(&pol.window_end, RLX), d = delay_ns();
  if (now < end || !atomic_compare_exchange_strong_explicit(&pol.window_end, &end, now + d / 2 - d / 8, RLX, RLX))
    return;
  atomic_store_explicit(&pol.peak_prev, atomic_load_explicit(&pol.peak_cur, RLX), RLX);
  atomic_store_explicit(&pol.peak_cur, atomic_load_explicit(&pol.in_use, RLX), RLX);
  size_t r = atomic_load_explicit(&pol.reuse, RLX);
  atomic_fetch_sub_explicit(&pol.reuse, r / 8, RLX); /* takes that decay at once: never below 0 */
}

/* Dirty bytes the demand of the last delay may take again, plus the reuse allowance (at most in_use / 2):
 * purging below this is likely a miss. */
static size_t demand_keep(void) {
  size_t a = atomic_load_explicit(&pol.peak_cur, RLX), b = atomic_load_explicit(&pol.peak_prev, RLX);
  size_t peak = a > b ? a : b, now = atomic_load_explicit(&pol.in_use, RLX);
  size_t reuse = atomic_load_explicit(&pol.reuse, RLX);
  if (reuse > now / 2) reuse = now / 2;
  return (peak > now ? peak - now : 0) + reuse;
}

/* A purged page of `area` bytes is taken again, `since` ns after its purge. */
static void reuse_note(size_t area, uint64_t since) {
  uint64_t d = delay_ns();
  if (since < d) {
    atomic_fetch_add_explicit(&pol.misses, 1, RLX);
    atomic_fetch_add_explicit(&pol.miss_bytes, area, RLX);
  }
  if (since < d * REUSE_DELAYS && atomic_load_explicit(&pol.reuse, RLX) < atomic_load_explicit(&pol.in_use, RLX)) {
    atomic_fetch_add_explicit(&pol.reuse, area, RLX);
    atomic_fetch_add_explicit(&pol.reuse_pages, 1, RLX);
  }
}

/* A page past the delay goes unless the demand of the last delay keeps it; any page goes, oldest first,
 * while the process is over its dirty budget (the purger's sweep and the owner's check every half delay). */
static bool aged_out(const zc_page_t *pg, uint64_t now, uint64_t delay, size_t keep) {
  size_t dirty = atomic_load_explicit(&pol.dirty, RLX);
  return (pg->freed_at + delay <= now && dirty > keep) || dirty > dirty_budget();
}

void zc_segments_policy(zc_segment_policy_t *out) {
  out->dirty = atomic_load_explicit(&pol.dirty, RLX);
  out->in_use = atomic_load_explicit(&pol.in_use, RLX);
  out->budget = dirty_budget();
  out->misses = atomic_load_explicit(&pol.misses, RLX);
  out->miss_bytes = atomic_load_explicit(&pol.miss_bytes, RLX);
  out->purge_calls = atomic_load_explicit(&pol.purge_calls, RLX);
  out->maps = atomic_load_explicit(&pol.maps, RLX);
  out->cached = __atomic_load_n(&seg_cached, __ATOMIC_RELAXED);
  out->reuse = atomic_load_explicit(&pol.reuse, RLX);
  out->reuse_pages = atomic_load_explicit(&pol.reuse_pages, RLX);
  out->keep = demand_keep();
}

uint64_t zc_segments_live(void) { return atomic_load_explicit(&segments_live, memory_order_relaxed); }
uint64_t zc_segments_reserved_bytes(void) { return zc_segments_live() * ZC_SEGMENT_SIZE; }
uint64_t zc_segments_purged_bytes(void) { return atomic_load_explicit(&purged_bytes, memory_order_relaxed); }
size_t zc_segments_abandoned_count(void) { return __atomic_load_n(&abandoned_count, __ATOMIC_RELAXED); }

void zc_segments_visit_abandoned(void (*fn)(zc_segment_t *s, void *arg), void *arg) {
  zc_lock(&abandoned_lock);
  for (int k = 0; k < ZC_SEG_KINDS; k++)
    for (zc_segment_t *s = abandoned[k]; s != NULL; s = s->next) fn(s, arg);
  zc_unlock(&abandoned_lock);
}

static uint8_t *page_area_start(zc_segment_t *s, zc_page_t *pg) {
  return pg->index == 0 ? (uint8_t *)s + ZC_SEGMENT_HEADER : (uint8_t *)s + ((size_t)pg->index << s->page_shift);
}
static size_t page_area_size(zc_segment_t *s, zc_page_t *pg) {
  return (size_t)(zc_page_end(s, pg) - page_area_start(s, pg));
}

/* ---- segment list of a heap: non-full segments first ---- */

static void seg_unlink(zc_segment_t **head, zc_segment_t *s) {
  if (s->prev) s->prev->next = s->next;
  else *head = s->next;
  if (s->next) s->next->prev = s->prev;
  s->next = s->prev = NULL;
}
static void seg_push_front(zc_segment_t **head, zc_segment_t *s) {
  s->prev = NULL;
  s->next = *head;
  if (*head) (*head)->prev = s;
  *head = s;
}
static void seg_push_back(zc_segment_t **head, zc_segment_t *s) {
  s->next = NULL;
  if (*head == NULL) {
    s->prev = NULL;
    *head = s;
    return;
  }
  zc_segment_t *t = *head;
  while (t->next) t = t->next;
  t->next = s;
  s->prev = t;
}

/* ---- the abandoned lists (abandoned_lock): segments no heap owns that hold blocks or resident pages ---- */

static void abandoned_push(zc_segment_t *s) {
  int k = (int)s->kind;
  s->prev = NULL;
  s->next = abandoned[k];
  if (s->next != NULL) s->next->prev = s;
  else abandoned_last[k] = s;
  s->abandoned = 1;
  __atomic_store_n(&abandoned[k], s, __ATOMIC_RELAXED); /* others peek at it without the lock */
  __atomic_fetch_add(&abandoned_count, 1, __ATOMIC_RELAXED);
}
static void abandoned_unlink(zc_segment_t *s) {
  int k = (int)s->kind;
  if (s->prev != NULL) s->prev->next = s->next;
  else __atomic_store_n(&abandoned[k], s->next, __ATOMIC_RELAXED);
  if (s->next != NULL) s->next->prev = s->prev;
  else abandoned_last[k] = s->prev;
  s->next = s->prev = NULL;
  s->abandoned = 0;
  __atomic_fetch_sub(&abandoned_count, 1, __ATOMIC_RELAXED);
}

/* ---- dirty list of a heap ---- */

/* Off h's dirty list; the page stays dirty (resident) and counted in pol.dirty: abandon, segment cache. */
static void dirty_detach(zc_heap_t *h, zc_segment_t *s, zc_page_t *pg) {
  if (pg->prev) pg->prev->next = pg->next;
  else __atomic_store_n(&h->dirty_first, pg->next, __ATOMIC_RELAXED); /* the owner peeks without the lock */
  if (pg->next) pg->next->prev = pg->prev;
  else h->dirty_last = pg->prev;
  pg->next = pg->prev = NULL;
  h->dirty_bytes -= page_area_size(s, pg);
  h->dirty_pages[s->kind]--;
}
/* Onto h's dirty list, a page already dirty and counted (adoption, a segment from the cache). */
static void dirty_attach(zc_heap_t *h, zc_segment_t *s, zc_page_t *pg) {
  pg->next = NULL;
  pg->prev = h->dirty_last;
  if (h->dirty_last) h->dirty_last->next = pg;
  else __atomic_store_n(&h->dirty_first, pg, __ATOMIC_RELAXED);
  h->dirty_last = pg;
  h->dirty_bytes += page_area_size(s, pg);
  h->dirty_pages[s->kind]++;
}
/* A dirty page stops being dirty: reused, purged or unmapped. */
static void dirty_unlink(zc_heap_t *h, zc_segment_t *s, zc_page_t *pg) {
  if (!pg->dirty) return;
  dirty_detach(h, s, pg);
  pg->dirty = 0;
  atomic_fetch_sub_explicit(&pol.dirty, page_area_size(s, pg), RLX);
}
static void dirty_append(zc_heap_t *h, zc_segment_t *s, zc_page_t *pg) {
  pg->dirty = 1;
  dirty_attach(h, s, pg);
  atomic_fetch_add_explicit(&pol.dirty, page_area_size(s, pg), RLX);
}

static void page_purge(zc_heap_t *h, zc_page_t *pg, uint64_t now) {
  zc_segment_t *s = zc_segment_of(pg);
  size_t size = page_area_size(s, pg);
  dirty_unlink(h, s, pg);
  pg->purged = 1;
  pg->freed_at = now;
  atomic_fetch_add_explicit(&pol.purge_calls, 1, RLX);
  /* Counted: what the OS took back, whole OS pages only (page 0 starts 16 KiB in: with 64 KiB pages
   * nothing of a small segment's page 0 can go). The page counts as purged either way: a page the OS
   * refused stays resident until its segment is unmapped, it is not retried on every pass. */
  size = zc_os_purge(page_area_start(s, pg), size, (int)zc_opt(zc_option_purge_mode));
  atomic_fetch_add_explicit(&purged_bytes, size, memory_order_relaxed);
  h->stat_purged += size;
}

/* ---- segments ---- */

/* Lay s out for kind: its pages free, those whose memory may still be resident dirty. resident: the
 * 64 KiB units of the segment that may be resident (bit i: bytes [i << 16, (i + 1) << 16)). The pages'
 * keys and tags are kept: page_init derives the next ones from them. A fresh mapping (fresh: zeroed, nothing
 * resident) is left as it is: a zeroed descriptor is a free, clean page, and its index is written when the
 * page is first taken (zc_segment_page_alloc), so the header's OS pages are touched as its pages are used,
 * not all of them (8 KiB of descriptors) on the first malloc of a thread. */
static void segment_format(zc_segment_t *s, int kind, uint64_t resident, uint64_t since, bool fresh) {
  s->page_shift = kind == ZC_SEG_SMALL ? ZC_SMALL_PAGE_SHIFT : ZC_MEDIUM_PAGE_SHIFT;
  s->page_count = (uint32_t)(ZC_SEGMENT_SIZE >> s->page_shift);
  s->kind = (uint32_t)kind;
  s->used_pages = 0;
  s->free_mask = s->page_count == 64 ? ~(uint64_t)0 : (((uint64_t)1 << s->page_count) - 1);
  if (fresh) return; /* pages_touched is 0: no descriptor beyond it is read before its page is taken */
  s->pages_touched = s->page_count;
  unsigned units = 1u << (s->page_shift - ZC_SMALL_PAGE_SHIFT);
  uint64_t unit_mask = units == 64 ? ~(uint64_t)0 : (((uint64_t)1 << units) - 1);
  for (uint32_t i = 0; i < s->page_count; i++) {
    zc_page_t *pg = &s->pages[i];
    pg->index = (uint8_t)i;
    pg->state = ZC_PAGE_FREE;
    zc_page_unpublish(pg); /* another thread's free into a free page fails its grid test (free.c) */
    pg->free = pg->local_free = NULL;
    pg->next = pg->prev = NULL;
    pg->purged = 0;
    pg->dirty = (resident >> (i * units)) & unit_mask ? 1 : 0;
    pg->freed_at = since;
    if (pg->dirty) atomic_fetch_add_explicit(&pol.dirty, page_area_size(s, pg), RLX);
  }
  for (uint32_t i = s->page_count; i < ZC_SEGMENT_PAGES_MAX; i++) s->pages[i].dirty = 0;
}

/* The 64 KiB units of s whose memory may be resident; their pages leave pol.dirty (s is reformatted). */
static uint64_t segment_resident_units(zc_segment_t *s) {
  unsigned units = 1u << (s->page_shift - ZC_SMALL_PAGE_SHIFT);
  uint64_t unit_mask = units == 64 ? ~(uint64_t)0 : (((uint64_t)1 << units) - 1), m = 0;
  for (uint32_t i = 0; i < s->pages_touched; i++) {
    if (!s->pages[i].dirty) continue;
    m |= unit_mask << (i * units);
    atomic_fetch_sub_explicit(&pol.dirty, page_area_size(s, &s->pages[i]), RLX);
    s->pages[i].dirty = 0;
  }
  return m;
}

/* A segment from the cache, preferring one of this kind, newest first; NULL if there is none. */
static zc_segment_t *segment_cached(int kind, uint64_t *since) {
  if (__atomic_load_n(&seg_cached, __ATOMIC_RELAXED) == 0) return NULL;
  zc_segment_t *s = NULL;
  zc_lock(&abandoned_lock);
  if (seg_cached > 0) {
    unsigned pick = seg_cached - 1;
    for (unsigned i = seg_cached; i-- > 0;) {
      if (seg_cache[i].seg->kind == (uint32_t)kind) {
        pick = i;
        break;
      }
    }
    s = seg_cache[pick].seg;
    *since = seg_cache[pick].since;
    seg_cache[pick] = seg_cache[seg_cached - 1];
    __atomic_store_n(&seg_cached, seg_cached - 1, __ATOMIC_RELAXED);
  }
  zc_unlock(&abandoned_lock);
  return s;
}

static zc_segment_t *segment_new(zc_heap_t *h, int kind) {
  uint64_t since = 0;
  zc_segment_t *s = segment_cached(kind, &since);
  if (s != NULL) {
    if (s->kind != (uint32_t)kind) segment_format(s, kind, segment_resident_units(s), since, false);
    zc_segment_set_owner(s, h); /* the map's owner tag too: a stale one would send frees down a wrong path */
    seg_push_front(&h->segments[kind], s);
    for (uint32_t i = 0; i < s->pages_touched; i++)
      if (s->pages[i].dirty) dirty_attach(h, s, &s->pages[i]);
    return s;
  }
  s = zc_os_alloc_aligned(ZC_SEGMENT_SIZE, ZC_SEGMENT_SIZE);
  if (s == NULL) return NULL;
  atomic_fetch_add_explicit(&pol.maps, 1, RLX);
  if (zc_opt(zc_option_huge_pages) && !zc_os_huge_pages(s, ZC_SEGMENT_SIZE)) {
    static bool warned;
    if (!__atomic_exchange_n(&warned, true, __ATOMIC_RELAXED))
      zc_warning("ZCMEM_HUGE_PAGES=1: the kernel refused MADV_HUGEPAGE: segments use normal pages");
  }
  segment_format(s, kind, 0, 0, true);
  atomic_store_explicit(&s->heap, h, memory_order_relaxed);
  zc_segmap_set(s, ZC_SEGMENT_SIZE, zc_segment_map_value(s, h));
  atomic_fetch_add_explicit(&segments_live, 1, memory_order_relaxed);
  seg_push_front(&h->segments[kind], s);
  return s;
}

/* Unmap an empty segment of h (its free pages may be on h's dirty list). */
static void segment_release(zc_heap_t *h, zc_segment_t *s) {
  size_t resident = ZC_SEGMENT_HEADER; /* what the unmap gives back beyond pages purged before */
  for (uint32_t i = 0; i < s->pages_touched; i++) {
    if (s->pages[i].dirty) resident += page_area_size(s, &s->pages[i]);
    dirty_unlink(h, s, &s->pages[i]);
  }
  seg_unlink(&h->segments[s->kind], s);
  if (h->spare[s->kind] == s) h->spare[s->kind] = NULL;
  zc_segmap_clear(s, ZC_SEGMENT_SIZE);
  atomic_fetch_sub_explicit(&segments_live, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&purged_bytes, resident, memory_order_relaxed);
  zc_os_free(s, ZC_SEGMENT_SIZE);
}

/* An empty segment h does not keep as its spare (h->lock held): into the segment cache if the purger runs
 * (it ages the cache) and there is room, else unmapped. Over the dirty budget its pages are purged first. */
static void segment_retire(zc_heap_t *h, zc_segment_t *s) {
  if (!zc_purger_active()) {
    segment_release(h, s);
    return;
  }
  zc_lock(&abandoned_lock);
  if (seg_cached == SEG_CACHE_MAX) {
    zc_unlock(&abandoned_lock);
    segment_release(h, s);
    return;
  }
  uint64_t now = zc_os_clock_ns();
  bool over = atomic_load_explicit(&pol.dirty, RLX) > dirty_budget();
  for (uint32_t i = 0; i < s->pages_touched; i++) {
    zc_page_t *pg = &s->pages[i];
    if (!pg->dirty) continue;
    if (over) page_purge(h, pg, now);
    else dirty_detach(h, s, pg);
  }
  seg_unlink(&h->segments[s->kind], s);
  if (h->spare[s->kind] == s) h->spare[s->kind] = NULL;
  zc_segment_set_owner(s, NULL); /* owned by nobody: the last owner's tag must not match its frees */
  seg_cache[seg_cached].seg = s;
  seg_cache[seg_cached].since = now;
  __atomic_store_n(&seg_cached, seg_cached + 1, __ATOMIC_RELAXED);
  zc_unlock(&abandoned_lock);
}

static void page_init(zc_segment_t *s, zc_page_t *pg, unsigned cls) {
  size_t bsize = zc_class_size[cls];
  uint8_t *start = page_area_start(s, pg);
  pg->free = NULL;
  pg->local_free = NULL;
  pg->used = 0;
  pg->held = 0;
  __atomic_store_n(&pg->capacity, 0, __ATOMIC_RELAXED); /* the purger reads it (reclaim.c) */
  pg->span = 0;
  pg->block_size = (uint32_t)bsize;
  /* a new key at every reuse: links left over from the page's previous class decode to nothing valid */
  pg->key = (pg->key * 0x9E3779B97F4A7C15ull) ^ zc_link_secret ^ (uintptr_t)start;
  pg->tag = ((pg->tag * 0xC2B2AE3D27D4EB4Full) ^ zc_tag_secret ^ (uintptr_t)start) | 1; /* never 0: malloc's */
  zc_page_set_grid(pg, bsize);
  pg->reserved = (uint16_t)(page_area_size(s, pg) / bsize);
  pg->start = start;
  pg->class_idx = (uint8_t)cls;
  zc_page_publish(pg); /* the remote line: an empty thread_free, the copies remote frees check with */
  pg->state = ZC_PAGE_IN_USE;
  pg->next = pg->prev = NULL;
}

/* Some segment of this kind waits for adoption (a peek without the lock). */
static bool abandoned_of_kind(int kind) { return __atomic_load_n(&abandoned[kind], __ATOMIC_RELAXED) != NULL; }

/* The newest dirty page of this kind on h's dirty list, or NULL if it has none (h->dirty_pages says so without
 * a walk); for a medium page the newest whose last use was class cls if there is one in 32 steps (its
 * resident blocks are where cls carves them again: no faults for the part the last use touched). Taking it
 * before the first free page of the first segment keeps reuse LIFO: the pages that sit unused are the oldest
 * ones, which the delay purges; without it a purged page could be taken while a dirty one aged, a miss. The
 * walk goes as far back as the newest page of the kind (core_dirty_deep): it used to stop after 8 steps (32
 * for a medium page), and a heap whose newest dirty pages were of the other kind then took a purged or never
 * touched page while a resident one of its kind waited deeper in the list (bench/rounds, 400 rounds: 64-135
 * such pages a run). The walk is bounded (DIRTY_WALK_MAX pages: 16 MiB of small pages, 32 MiB of medium
 * ones of the other kind) so that a heap with a huge dirty list never walks all of it per page taken. */
#define DIRTY_WALK_MAX 256u
static zc_page_t *newest_dirty(zc_heap_t *h, int kind, unsigned cls) {
  if (h->dirty_pages[kind] == 0) return NULL;
  unsigned steps = 0;
  zc_page_t *any = NULL;
  for (zc_page_t *d = h->dirty_last; d != NULL && steps < DIRTY_WALK_MAX; d = d->prev, steps++) {
    if (any != NULL && steps >= 32) break;
    if (zc_segment_of(d)->kind != (uint32_t)kind) continue;
    if (kind == ZC_SEG_SMALL || d->class_idx == cls) return d;
    if (any == NULL) any = d;
  }
  return any;
}

zc_page_t *zc_segment_page_alloc(zc_heap_t *h, unsigned cls) {
  int kind = cls >= ZC_MEDIUM_MIN_CLASS ? ZC_SEG_MEDIUM : ZC_SEG_SMALL;
  zc_lock(&h->lock);
  zc_page_t *pg = newest_dirty(h, kind, cls);
  /* No resident page of our own: an exited thread's segment comes before clean memory, ours or new. Its
   * empty pages may still be resident (no page faults to take them), its half-used pages join our queues
   * (their free blocks are used before more memory is touched), and what sits abandoned is neither held
   * resident for nobody nor purged to be faulted in again elsewhere a moment later. */
  while (pg == NULL && abandoned_of_kind(kind)) {
    zc_unlock(&h->lock);
    bool adopted = zc_segment_adopt(h, kind);
    zc_lock(&h->lock);
    if (!adopted) break;
    pg = newest_dirty(h, kind, cls);
  }
  zc_segment_t *s = pg != NULL ? zc_segment_of(pg) : h->segments[kind];
  while (pg == NULL && (s == NULL || s->free_mask == 0)) {
    /* Pages of exited threads come before fresh memory: thread churn must not grow the process. Adopt
     * until one of them has a free page; a full one stays with us (its blocks come back as frees). */
    zc_unlock(&h->lock);
    bool adopted = zc_segment_adopt(h, kind);
    zc_lock(&h->lock);
    s = h->segments[kind];
    if (adopted) continue;
    if (s == NULL || s->free_mask == 0) s = segment_new(h, kind);
    if (s == NULL) {
      zc_unlock(&h->lock);
      errno = ENOMEM;
      return NULL;
    }
    break;
  }
  unsigned i = pg != NULL ? pg->index : (unsigned)__builtin_ctzll(s->free_mask);
  pg = &s->pages[i];
  pg->index = (uint8_t)i; /* unset until now in a fresh segment (segment_format) */
  if (i >= s->pages_touched) s->pages_touched = i + 1;
  s->free_mask &= ~((uint64_t)1 << i);
  s->used_pages++;
  if (h->spare[kind] == s) h->spare[kind] = NULL;
  size_t area = page_area_size(s, pg);
  if (pg->dirty) { /* resident still: no page faults */
    dirty_unlink(h, s, pg);
    h->stat_pages_reused++;
  } else {
    h->stat_pages_fresh++;
    if (pg->purged) reuse_note(area, zc_os_clock_ns() - pg->freed_at); /* a miss if wanted back at once */
  }
  pg->purged = 0;
  demand_add(area);
  if (s->free_mask == 0 && (s->next != NULL || s->prev != NULL)) { /* full: behind those that have room */
    seg_unlink(&h->segments[kind], s);
    seg_push_back(&h->segments[kind], s);
  }
  zc_unlock(&h->lock);
  page_init(s, pg, cls);
  return pg;
}

/* An empty page back to its segment (h->lock held). clean: its whole area was purged already (reclaim.c):
 * it is not dirty. */
static void page_free_locked(zc_heap_t *h, zc_page_t *pg, bool clean) {
  zc_segment_t *s = zc_segment_of(pg);
  bool was_full = s->free_mask == 0;
  pg->state = ZC_PAGE_FREE;
  zc_page_unpublish(pg); /* another thread's free into a free page fails its grid test (free.c) */
  pg->free = pg->local_free = NULL;
  s->free_mask |= (uint64_t)1 << pg->index;
  s->used_pages--;
  uint64_t now = zc_os_clock_ns();
  pg->freed_at = now;
  demand_sub(page_area_size(s, pg));
  if (clean) {
    pg->purged = 1;
  } else {
    dirty_append(h, s, pg);
    if (zc_opt(zc_option_purge_delay) == 0) page_purge(h, pg, now); /* no delay: no purger runs, purge now */
  }
  if (was_full) {
    seg_unlink(&h->segments[s->kind], s);
    seg_push_front(&h->segments[s->kind], s);
  }
  if (s->used_pages == 0) {
    if (h->spare[s->kind] == NULL || h->spare[s->kind] == s) h->spare[s->kind] = s;
    else if (!h->hold_segments) segment_retire(h, s);
  }
  size_t budget = dirty_budget();
  if (h->dirty_bytes > budget) { /* this heap alone is over the process's budget: its oldest go */
    while (h->dirty_first != NULL && h->dirty_bytes > budget - budget / 4)
      page_purge(h, h->dirty_first, now);
  }
}

void zc_segment_page_free(zc_heap_t *h, zc_page_t *pg) {
  zc_lock(&h->lock);
  page_free_locked(h, pg, false);
  zc_unlock(&h->lock);
}

void zc_segment_page_free_locked(zc_heap_t *h, zc_page_t *pg, bool clean) { page_free_locked(h, pg, clean); }

void zc_segment_count_miss(size_t bytes) {
  atomic_fetch_add_explicit(&pol.misses, 1, RLX);
  atomic_fetch_add_explicit(&pol.miss_bytes, bytes, RLX);
}

size_t zc_segment_purge_range(zc_heap_t *h, void *from, size_t len) {
  atomic_fetch_add_explicit(&pol.purge_calls, 1, RLX);
  size_t n = zc_os_purge(from, len, (int)zc_opt(zc_option_purge_mode));
  atomic_fetch_add_explicit(&purged_bytes, n, memory_order_relaxed);
  h->stat_purged += n;
  return n;
}

/* Purge h's dirty pages (all if force, else those past the delay that demand does not keep); release its
 * spare segments only when the owner asks (release): another thread must not unmap a segment the owner may
 * be walking. */
static size_t purge_locked(zc_heap_t *h, bool force, bool release) {
  uint64_t now = zc_os_clock_ns();
  uint64_t delay = delay_ns();
  size_t before = (size_t)h->stat_purged;
  demand_rotate(now);
  size_t keep = demand_keep();
  while (h->dirty_first != NULL && (force || aged_out(h->dirty_first, now, delay, keep)))
    page_purge(h, h->dirty_first, now);
  if (force && release) {
    for (int k = 0; k < ZC_SEG_KINDS; k++) {
      zc_segment_t *sp = h->spare[k];
      if (sp != NULL && sp->used_pages == 0) segment_release(h, sp);
    }
  }
  __atomic_store_n(&h->next_purge_check, now + delay / 2 + 1, __ATOMIC_RELAXED);
  return (size_t)h->stat_purged - before;
}

size_t zc_segment_purge(zc_heap_t *h, bool force) {
  zc_lock(&h->lock);
  size_t n = purge_locked(h, force, true);
  zc_unlock(&h->lock);
  return n;
}

size_t zc_segment_purge_other(zc_heap_t *h, bool force) {
  if (!zc_trylock(&h->lock)) return 0; /* the owner is busy in its slow path: it purges itself */
  size_t n = h->dirty_first != NULL ? purge_locked(h, force, false) : 0;
  zc_unlock(&h->lock);
  return n;
}

/* ---- thread exit: abandon and adopt ---- */

static void abandon_segments(zc_heap_t *h, bool keep_dirty);

/* Collect every page in use of h's segments and give the empty ones back. */
static void abandon_pages(zc_heap_t *h) {
  h->hold_segments = true;
  for (int k = 0; k < ZC_SEG_KINDS; k++) {
    zc_segment_t *s = h->segments[k];
    while (s != NULL) {
      zc_segment_t *next = s->next;
      for (uint32_t i = 0; i < s->pages_touched; i++) {
        zc_page_t *pg = &s->pages[i];
        if (pg->state != ZC_PAGE_IN_USE) continue;
        pg->next = pg->prev = NULL; /* out of h's queues (the heap is reset after) */
        zc_page_collect_all(pg);
        if (pg->state == ZC_PAGE_IN_USE && pg->used == 0) zc_segment_page_free(h, pg);
      }
      s = next;
    }
  }
  h->hold_segments = false;
}

/* A page in use of an untrusted segment (a fork child's orphan), before anything else reads its lists: out
 * of the lost owner's queue and current page, its lists rebuilt from a bounded, checked walk (silently: a
 * list torn by the fork is not the program's error); false if it did not check out (set aside). */
static bool page_trust(zc_page_t *pg) {
  pg->next = pg->prev = NULL;
  pg->held = 0;
  return zc_page_rebuild(pg, false);
}

/* Fork child, a heap whose thread did not come along: its segments are marked untrusted and abandoned as
 * they are. Nothing walks their pages here: that walk wrote into every free block of every page of the lost
 * threads, and each write copied a shared page (copy-on-write): 61,104 page faults and 220-270 ms of CPU
 * in the child of a parent whose 8 threads held 32 MiB each, half freed. A page is rebuilt when it is first
 * needed (adoption, the purger's pass over abandoned segments). keep_dirty: the child runs a purger (it
 * ages the empty pages); else they are purged now, as at a thread exit without it. */
void zc_segments_fork_orphan(zc_heap_t *h, bool keep_dirty) {
  for (int k = 0; k < ZC_SEG_KINDS; k++)
    for (zc_segment_t *s = h->segments[k]; s != NULL; s = s->next) s->untrusted = 1;
  abandon_segments(h, keep_dirty);
}

void zc_segments_abandon(zc_heap_t *h, bool keep_dirty) {
  abandon_pages(h);
  abandon_segments(h, keep_dirty);
}

static void abandon_segments(zc_heap_t *h, bool keep_dirty) {
  /* keep_dirty: the purger runs and will age the empty pages; else they are purged now. Kept, they stay
   * within the process's dirty budget: the newest pages beyond it are purged now. */
  zc_lock(&h->lock);
  if (!keep_dirty) purge_locked(h, true, true);
  uint64_t now = zc_os_clock_ns();
  size_t budget = dirty_budget();
  while (h->dirty_first != NULL && atomic_load_explicit(&pol.dirty, RLX) > budget) page_purge(h, h->dirty_last, now);
  for (int k = 0; k < ZC_SEG_KINDS; k++) {
    zc_segment_t *s;
    while ((s = h->segments[k]) != NULL) {
      /* Empty pages leave h's dirty list but stay resident (dirty = 1) for the adopter to reuse. */
      for (uint32_t i = 0; i < s->pages_touched; i++) {
        zc_page_t *pg = &s->pages[i];
        if (pg->state == ZC_PAGE_FREE && pg->dirty) dirty_detach(h, s, pg);
      }
      seg_unlink(&h->segments[k], s);
      if (s->used_pages == 0 && !keep_dirty) {
        seg_push_front(&h->segments[k], s);
        segment_release(h, s);
        continue;
      }
      zc_segment_set_owner(s, NULL);
      zc_lock(&abandoned_lock);
      abandoned_push(s);
      zc_unlock(&abandoned_lock);
    }
    h->spare[k] = NULL;
  }
  zc_unlock(&h->lock);
}

/* The purger's pass over the segment cache (abandoned_lock held): a segment cached for the delay is purged
 * whole (one system call) unless demand keeps it; one cached for max(10 delays, 1 s) is unmapped; force
 * (trim): all of them now. True while some remain. */
static bool segment_cache_sweep(uint64_t now, uint64_t delay, size_t keep, bool force, size_t *purged) {
  uint64_t ttl = delay * 10 < 1000000000u ? 1000000000u : delay * 10;
  for (unsigned i = 0; i < seg_cached;) {
    zc_segment_t *s = seg_cache[i].seg;
    uint64_t age = now - seg_cache[i].since;
    if (force || age >= ttl) {
      size_t resident = ZC_SEGMENT_HEADER;
      for (uint32_t j = 0; j < s->pages_touched; j++)
        if (s->pages[j].dirty) resident += page_area_size(s, &s->pages[j]);
      segment_resident_units(s); /* out of pol.dirty */
      unsigned last = seg_cached - 1;
      seg_cache[i] = seg_cache[last];
      __atomic_store_n(&seg_cached, last, __ATOMIC_RELAXED); /* others peek at it without the lock */
      zc_segmap_clear(s, ZC_SEGMENT_SIZE);
      atomic_fetch_sub_explicit(&segments_live, 1, memory_order_relaxed);
      *purged += resident;
      zc_os_free(s, ZC_SEGMENT_SIZE);
      continue;
    }
    if (age >= delay && atomic_load_explicit(&pol.dirty, RLX) > keep) {
      bool any = false;
      for (uint32_t j = 0; j < s->pages_touched; j++) {
        zc_page_t *pg = &s->pages[j];
        if (!pg->dirty) continue;
        atomic_fetch_sub_explicit(&pol.dirty, page_area_size(s, pg), RLX);
        pg->dirty = 0;
        pg->purged = 1;
        pg->freed_at = now;
        any = true;
      }
      if (any) {
        uint8_t *from = (uint8_t *)s + ZC_SEGMENT_HEADER;
        *purged += zc_os_purge(from, ZC_SEGMENT_SIZE - ZC_SEGMENT_HEADER, (int)zc_opt(zc_option_purge_mode));
        atomic_fetch_add_explicit(&pol.purge_calls, 1, RLX);
      }
    }
    i++;
  }
  return seg_cached != 0;
}

/* The purger's pass over abandoned segments: purge empty pages past the delay, unmap segments that hold
 * nothing and have aged. Pages of an abandoned segment have no owner: abandoned_lock makes us exclusive. */
bool zc_segments_purge_abandoned(bool force) {
  uint64_t now = zc_os_clock_ns();
  uint64_t delay = delay_ns();
  size_t purged = 0;
  bool young = false;
  int mode = (int)zc_opt(zc_option_purge_mode);
  demand_rotate(now);
  size_t keep = force ? 0 : demand_keep();
  zc_lock(&abandoned_lock);
  young = segment_cache_sweep(now, delay, keep, force, &purged);
  for (int k = 0; k < ZC_SEG_KINDS; k++) {
    zc_segment_t *next;
    for (zc_segment_t *s = abandoned[k]; s != NULL; s = next) {
      next = s->next;
      bool all_clean = true;
      for (uint32_t i = 0; i < s->pages_touched; i++) {
        zc_page_t *pg = &s->pages[i];
        if (pg->state == ZC_PAGE_IN_USE) {
          /* Blocks other threads freed since the owner exited: a page they emptied becomes free here. */
          if (s->untrusted && !page_trust(pg)) continue;
          /* Only a page that the blocks on its thread_free empty changes here: the others are left as they
           * are (collected at adoption), so that no free block is written (in a fork child, the lost threads'
           * pages are shared with the parent: each write copies one). seq_cst: the purger's last sweep before
           * its idle sleep sees a hand-over whose freer saw it running (large.h, the wake-up protocol) */
          if (pg->used != ZC_TF_COUNT(atomic_load_explicit(&s->pages[i].remote.thread_free, memory_order_seq_cst)))
            continue;
          zc_page_collect_all(pg);
          if (pg->state != ZC_PAGE_IN_USE || pg->used != 0) continue;
          pg->state = ZC_PAGE_FREE;
          zc_page_unpublish(pg); /* as in page_free_locked */
          pg->free = pg->local_free = NULL;
          pg->dirty = 1;
          pg->freed_at = now;
          s->free_mask |= (uint64_t)1 << pg->index;
          s->used_pages--;
          demand_sub(page_area_size(s, pg));
          atomic_fetch_add_explicit(&pol.dirty, page_area_size(s, pg), RLX);
        }
        if (pg->state != ZC_PAGE_FREE || !pg->dirty) continue;
        if (force || aged_out(pg, now, delay, keep)) {
          purged += zc_os_purge(page_area_start(s, pg), page_area_size(s, pg), mode);
          atomic_fetch_add_explicit(&pol.purge_calls, 1, RLX);
          atomic_fetch_sub_explicit(&pol.dirty, page_area_size(s, pg), RLX);
          pg->dirty = 0;
          pg->purged = 1;
          pg->freed_at = now;
        } else {
          all_clean = false;
          young = true;
        }
      }
      s->untrusted = 0; /* every page in use was rebuilt above */
      if (s->used_pages == 0 && all_clean) {
        abandoned_unlink(s);
        if (!force && seg_cached < SEG_CACHE_MAX) {
          /* Into the segment cache, purged: the next segment a heap needs comes from here, not from a new
           * mapping (whose pages fault alike, one mmap and munmap more), and its purged pages, taken again,
           * count as reuse (the allowance of demand_keep). */
          seg_cache[seg_cached].seg = s;
          seg_cache[seg_cached].since = now;
          __atomic_store_n(&seg_cached, seg_cached + 1, __ATOMIC_RELAXED);
          continue;
        }
        for (uint32_t i = 0; i < s->pages_touched; i++) s->pages[i].purged = 0;
        zc_segmap_clear(s, ZC_SEGMENT_SIZE);
        atomic_fetch_sub_explicit(&segments_live, 1, memory_order_relaxed);
        zc_os_free(s, ZC_SEGMENT_SIZE);
      }
    }
  }
  zc_unlock(&abandoned_lock);
  atomic_fetch_add_explicit(&purged_bytes, purged, memory_order_relaxed);
  return young;
}

static void adopt_one(zc_heap_t *h, zc_segment_t *s) {
  zc_reclaim_pause(h); /* its pages join h's queues outside h->lock: the purger keeps off until done */
  h->hold_segments = true;
  zc_segment_set_owner(s, h);
  zc_lock(&h->lock);
  if (s->free_mask != 0) seg_push_front(&h->segments[s->kind], s);
  else seg_push_back(&h->segments[s->kind], s);
  zc_unlock(&h->lock);
  for (uint32_t i = 0; i < s->pages_touched; i++) {
    zc_page_t *pg = &s->pages[i];
    if (pg->state != ZC_PAGE_IN_USE) {
      if (pg->dirty) { /* an empty page the last owner left resident: ours to reuse or purge */
        zc_lock(&h->lock);
        dirty_attach(h, s, pg);
        zc_unlock(&h->lock);
      }
      continue;
    }
    if (!s->untrusted || page_trust(pg)) zc_page_collect_all(pg); /* the child needs it now: writes are due */
    if (pg->state != ZC_PAGE_IN_USE) continue; /* broken: its lists were corrupted */
    if (pg->used == 0) {
      zc_segment_page_free(h, pg);
      continue;
    }
    zc_page_queue_t *q = &h->queues[pg->class_idx];
    zc_queue_push_back(q, pg);
    if (q->first == pg) zc_heap_queue_changed(h, pg->class_idx);
  }
  s->untrusted = 0;
  h->hold_segments = false;
  if (s->used_pages == 0) { /* all empty: keep it as the spare (the allocation that adopted it uses it) */
    zc_lock(&h->lock);
    if (h->spare[s->kind] == NULL) h->spare[s->kind] = s;
    else if (h->spare[s->kind] != s) segment_retire(h, s);
    zc_unlock(&h->lock);
  }
  zc_reclaim_resume(h);
}

/* The oldest abandoned segment first: it has waited longest, so its empty pages are the next the purge delay
 * takes (adopted, they are reused resident instead of purged and faulted back later), and its dead owner's
 * blocks have had the longest to come back. Taking the newest, as before, left the oldest to age out at the
 * tail of the list while threads kept starting (docs/design.md, "Threads"). */
bool zc_segment_adopt(zc_heap_t *h, int kind) {
  if (__atomic_load_n(&abandoned_count, __ATOMIC_RELAXED) == 0) return false;
  bool any = false;
  for (int k = 0; k < ZC_SEG_KINDS; k++) {
    if (kind >= 0 && k != kind) continue;
    for (;;) {
      zc_lock(&abandoned_lock);
      zc_segment_t *s = abandoned_last[k];
      if (s != NULL) abandoned_unlink(s);
      zc_unlock(&abandoned_lock);
      if (s == NULL) break;
      adopt_one(h, s);
      any = true;
      if (kind >= 0) return true; /* allocation: one is enough */
    }
  }
  return any;
}

bool zc_segment_adopt_on_free(zc_heap_t *h, zc_segment_t *s) {
  if (__atomic_load_n(&h->segments[s->kind], __ATOMIC_RELAXED) != NULL) return false; /* see internal.h */
  zc_lock(&abandoned_lock);
  /* Still abandoned (no other thread adopted it, the purger did not cache it meanwhile), and trusted: a fork
   * child's orphan is left to the adoption of a refill or the purger's pass, which rebuild its pages. */
  bool take = s->abandoned != 0 && s->untrusted == 0;
  if (take) abandoned_unlink(s);
  zc_unlock(&abandoned_lock);
  if (take) adopt_one(h, s);
  return take;
}

/* ---- fork: the child has one thread; the parent's locks must not be held across fork ---- */

void zc_segments_fork_prepare(void) { zc_lock_for_fork(&abandoned_lock); }
void zc_segments_fork_parent(void) { zc_unlock_for_fork(&abandoned_lock); }
void zc_segments_fork_child(void) { zc_lock_init(&abandoned_lock); }
