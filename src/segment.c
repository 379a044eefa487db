/* Layer 2, segments and pages: 4 MiB aligned segments cut into pages of one size class, the per-heap
 * cache of empty pages, the purge of empty pages after a delay or over a budget, and the hand-over of a dead
 * thread's segments to live threads (abandon, adopt).
 *
 * Invariants:
 * - A heap's segment list (per kind) keeps segments with a free page before full ones, so finding a free
 *   page is O(1): look at the head.
 * - A free page is either dirty (its memory may be resident; it is then on its heap's dirty list, oldest
 *   first) or purged. Dirty bytes of a heap stay below ZCMEM_DIRTY_BUDGET; older than ZCMEM_PURGE_DELAY
 *   they are purged on the next slow path or by the background purger.
 * - A heap keeps at most one fully empty segment per kind; another one that empties is unmapped at once.
 * - An abandoned segment (owner exited) may keep its empty pages resident (dirty) while the background
 *   purger runs: they age under the purge delay there (zc_segments_purge_abandoned) or are reused by the
 *   adopter. Without the purger they were purged at exit, and an abandoned segment has live blocks.
 *
 * Locks: h->lock covers the segment/dirty state of heap h (the owner's slow path against the purger
 * thread); abandoned_lock covers the abandoned lists. Order: h->lock, then abandoned_lock.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

/* The segment map (segmap.h): 64 MiB of zeroed .bss, touched only where segments live. */
uint16_t zc_segmap[ZC_SEGMAP_ENTRIES];

static zc_lock_t abandoned_lock = ZC_LOCK_INIT;
static zc_segment_t *abandoned[ZC_SEG_KINDS];
static size_t abandoned_count;
static _Atomic uint64_t segments_live;
static _Atomic uint64_t purged_bytes;

uint64_t zc_segments_live(void) { return atomic_load_explicit(&segments_live, memory_order_relaxed); }
uint64_t zc_segments_reserved_bytes(void) { return zc_segments_live() * ZC_SEGMENT_SIZE; }
uint64_t zc_segments_purged_bytes(void) { return atomic_load_explicit(&purged_bytes, memory_order_relaxed); }
size_t zc_segments_abandoned_count(void) { return __atomic_load_n(&abandoned_count, __ATOMIC_RELAXED); }

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

/* ---- dirty list of a heap ---- */

static void dirty_unlink(zc_heap_t *h, zc_segment_t *s, zc_page_t *pg) {
  if (!pg->dirty) return;
  if (pg->prev) pg->prev->next = pg->next;
  else __atomic_store_n(&h->dirty_first, pg->next, __ATOMIC_RELAXED); /* the owner peeks without the lock */
  if (pg->next) pg->next->prev = pg->prev;
  else h->dirty_last = pg->prev;
  pg->next = pg->prev = NULL;
  pg->dirty = 0;
  h->dirty_bytes -= page_area_size(s, pg);
}
static void dirty_append(zc_heap_t *h, zc_segment_t *s, zc_page_t *pg) {
  pg->dirty = 1;
  pg->next = NULL;
  pg->prev = h->dirty_last;
  if (h->dirty_last) h->dirty_last->next = pg;
  else __atomic_store_n(&h->dirty_first, pg, __ATOMIC_RELAXED);
  h->dirty_last = pg;
  h->dirty_bytes += page_area_size(s, pg);
}

static void page_purge(zc_heap_t *h, zc_page_t *pg) {
  zc_segment_t *s = zc_segment_of(pg);
  size_t size = page_area_size(s, pg);
  dirty_unlink(h, s, pg);
  /* Counted: what the OS took back, whole OS pages only (page 0 starts 16 KiB in: with 64 KiB pages
   * nothing of a small segment's page 0 can go). The page counts as purged either way: a page the OS
   * refused stays resident until its segment is unmapped, it is not retried on every pass. */
  size = zc_os_purge(page_area_start(s, pg), size, (int)zc_opt(zc_option_purge_mode));
  atomic_fetch_add_explicit(&purged_bytes, size, memory_order_relaxed);
  h->stat_purged += size;
}

/* ---- segments ---- */

static zc_segment_t *segment_new(zc_heap_t *h, int kind) {
  zc_segment_t *s = zc_os_alloc_aligned(ZC_SEGMENT_SIZE, ZC_SEGMENT_SIZE);
  if (s == NULL) return NULL;
  if (zc_opt(zc_option_huge_pages)) zc_os_huge_pages(s, ZC_SEGMENT_SIZE);
  s->page_shift = kind == ZC_SEG_SMALL ? ZC_SMALL_PAGE_SHIFT : ZC_MEDIUM_PAGE_SHIFT;
  s->page_count = (uint32_t)(ZC_SEGMENT_SIZE >> s->page_shift);
  s->kind = (uint32_t)kind;
  s->used_pages = 0;
  s->free_mask = s->page_count == 64 ? ~(uint64_t)0 : (((uint64_t)1 << s->page_count) - 1);
  for (uint32_t i = 0; i < s->page_count; i++) s->pages[i].index = (uint8_t)i;
  atomic_store_explicit(&s->heap, h, memory_order_relaxed);
  zc_segmap_set(s, ZC_SEGMENT_SIZE, zc_segment_map_value(s, h));
  atomic_fetch_add_explicit(&segments_live, 1, memory_order_relaxed);
  seg_push_front(&h->segments[kind], s);
  return s;
}

/* Unmap an empty segment of h (its free pages may be on h's dirty list). */
static void segment_release(zc_heap_t *h, zc_segment_t *s) {
  size_t resident = ZC_SEGMENT_HEADER; /* what the unmap gives back beyond pages purged before */
  for (uint32_t i = 0; i < s->page_count; i++) {
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

static void page_init(zc_segment_t *s, zc_page_t *pg, unsigned cls) {
  size_t bsize = zc_class_size[cls];
  uint8_t *start = page_area_start(s, pg);
  pg->free = NULL;
  pg->local_free = NULL;
  atomic_store_explicit(&pg->thread_free, 0, memory_order_relaxed);
  pg->used = 0;
  pg->held = 0;
  pg->capacity = 0;
  pg->span = 0;
  pg->block_size = (uint32_t)bsize;
  /* a new key at every reuse: links left over from the page's previous class decode to nothing valid */
  pg->key = (pg->key * 0x9E3779B97F4A7C15ull) ^ zc_link_secret ^ (uintptr_t)start;
  pg->tag = ((pg->tag * 0xC2B2AE3D27D4EB4Full) ^ zc_tag_secret ^ (uintptr_t)start) | 1; /* never 0: malloc's */
  zc_page_set_grid(pg, bsize);
  pg->reserved = (uint16_t)(page_area_size(s, pg) / bsize);
  pg->start = start;
  pg->class_idx = (uint8_t)cls;
  pg->state = ZC_PAGE_IN_USE;
  pg->next = pg->prev = NULL;
}

zc_page_t *zc_segment_page_alloc(zc_heap_t *h, unsigned cls) {
  int kind = cls >= ZC_MEDIUM_MIN_CLASS ? ZC_SEG_MEDIUM : ZC_SEG_SMALL;
  zc_lock(&h->lock);
  zc_segment_t *s = h->segments[kind];
  while (s == NULL || s->free_mask == 0) {
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
  unsigned i = (unsigned)__builtin_ctzll(s->free_mask);
  zc_page_t *pg = &s->pages[i];
  s->free_mask &= ~((uint64_t)1 << i);
  s->used_pages++;
  if (h->spare[kind] == s) h->spare[kind] = NULL;
  if (pg->dirty) { /* resident still: no page faults */
    dirty_unlink(h, s, pg);
    h->stat_pages_reused++;
  } else {
    h->stat_pages_fresh++;
  }
  if (s->free_mask == 0 && s->next != NULL) { /* full: behind the segments that still have room */
    seg_unlink(&h->segments[kind], s);
    seg_push_back(&h->segments[kind], s);
  }
  zc_unlock(&h->lock);
  page_init(s, pg, cls);
  return pg;
}

void zc_segment_page_free(zc_heap_t *h, zc_page_t *pg) {
  zc_segment_t *s = zc_segment_of(pg);
  zc_lock(&h->lock);
  bool was_full = s->free_mask == 0;
  pg->state = ZC_PAGE_FREE;
  pg->free = pg->local_free = NULL;
  s->free_mask |= (uint64_t)1 << pg->index;
  s->used_pages--;
  pg->freed_at = zc_os_clock_ns();
  dirty_append(h, s, pg);
  if (zc_opt(zc_option_purge_delay) == 0) page_purge(h, pg); /* no delay: no purger runs, purge now */
  if (was_full) {
    seg_unlink(&h->segments[s->kind], s);
    seg_push_front(&h->segments[s->kind], s);
  }
  if (s->used_pages == 0) {
    if (h->spare[s->kind] == NULL || h->spare[s->kind] == s) h->spare[s->kind] = s;
    else if (!h->hold_segments) segment_release(h, s);
  }
  if (h->dirty_bytes > (size_t)zc_opt(zc_option_dirty_budget)) {
    while (h->dirty_first != NULL && h->dirty_bytes > (size_t)zc_opt(zc_option_dirty_budget) / 2)
      page_purge(h, h->dirty_first);
  }
  zc_unlock(&h->lock);
}

/* Purge h's dirty pages (all if force, else those past the delay); release its spare segments only when
 * the owner asks (release): another thread must not unmap a segment the owner may be walking. */
static size_t purge_locked(zc_heap_t *h, bool force, bool release) {
  uint64_t now = zc_os_clock_ns();
  uint64_t delay = (uint64_t)zc_opt(zc_option_purge_delay) * 1000000u;
  size_t before = (size_t)h->stat_purged;
  while (h->dirty_first != NULL && (force || h->dirty_first->freed_at + delay <= now)) page_purge(h, h->dirty_first);
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

/* Collect every page in use of h's segments and give the empty ones back. In a fork child (rebuild) the
 * lists are not trusted: each page is rebuilt from a checked walk, and set aside if it does not check out. */
static void abandon_pages(zc_heap_t *h, bool rebuild) {
  h->hold_segments = true;
  for (int k = 0; k < ZC_SEG_KINDS; k++) {
    zc_segment_t *s = h->segments[k];
    while (s != NULL) {
      zc_segment_t *next = s->next;
      for (uint32_t i = 0; i < s->page_count; i++) {
        zc_page_t *pg = &s->pages[i];
        if (pg->state != ZC_PAGE_IN_USE) continue;
        pg->next = pg->prev = NULL; /* out of h's queues (the heap is reset after) */
        if (rebuild) {
          pg->held = 0;
          if (!zc_page_rebuild(pg, false)) continue;
        } else {
          zc_page_collect_all(pg);
        }
        if (pg->state == ZC_PAGE_IN_USE && pg->used == 0) zc_segment_page_free(h, pg);
      }
      s = next;
    }
  }
  h->hold_segments = false;
}

void zc_segments_fork_orphan(zc_heap_t *h) {
  abandon_pages(h, true);
  abandon_segments(h, false);
}

void zc_segments_abandon(zc_heap_t *h, bool keep_dirty) {
  abandon_pages(h, false);
  abandon_segments(h, keep_dirty);
}

static void abandon_segments(zc_heap_t *h, bool keep_dirty) {
  /* keep_dirty: the purger runs and will age the empty pages; else they are purged now */
  zc_lock(&h->lock);
  if (!keep_dirty) purge_locked(h, true, true);
  for (int k = 0; k < ZC_SEG_KINDS; k++) {
    zc_segment_t *s;
    while ((s = h->segments[k]) != NULL) {
      /* Empty pages leave h's dirty list but stay resident (dirty = 1) for the adopter to reuse. */
      for (uint32_t i = 0; i < s->page_count; i++) {
        zc_page_t *pg = &s->pages[i];
        if (pg->state == ZC_PAGE_FREE && pg->dirty) {
          uint64_t t = pg->freed_at;
          dirty_unlink(h, s, pg);
          pg->dirty = 1;
          pg->freed_at = t;
        }
      }
      seg_unlink(&h->segments[k], s);
      if (s->used_pages == 0 && !keep_dirty) {
        seg_push_front(&h->segments[k], s);
        segment_release(h, s);
        continue;
      }
      zc_segment_set_owner(s, NULL);
      zc_lock(&abandoned_lock);
      s->next = abandoned[k];
      abandoned[k] = s;
      __atomic_fetch_add(&abandoned_count, 1, __ATOMIC_RELAXED);
      zc_unlock(&abandoned_lock);
    }
    h->spare[k] = NULL;
  }
  zc_unlock(&h->lock);
}

/* The purger's pass over abandoned segments: purge empty pages past the delay, unmap segments that hold
 * nothing and have aged. Pages of an abandoned segment have no owner: abandoned_lock makes us exclusive. */
bool zc_segments_purge_abandoned(bool force) {
  uint64_t now = zc_os_clock_ns();
  uint64_t delay = (uint64_t)zc_opt(zc_option_purge_delay) * 1000000u;
  size_t purged = 0;
  bool young = false;
  zc_lock(&abandoned_lock);
  for (int k = 0; k < ZC_SEG_KINDS; k++) {
    zc_segment_t **link = &abandoned[k];
    while (*link != NULL) {
      zc_segment_t *s = *link;
      bool all_clean = true;
      for (uint32_t i = 0; i < s->page_count; i++) {
        zc_page_t *pg = &s->pages[i];
        if (pg->state == ZC_PAGE_IN_USE) {
          /* Blocks other threads freed since the owner exited: a page they emptied becomes free here. */
          zc_page_collect_all(pg);
          if (pg->state != ZC_PAGE_IN_USE || pg->used != 0) continue;
          pg->state = ZC_PAGE_FREE;
          pg->free = pg->local_free = NULL;
          pg->dirty = 1;
          pg->freed_at = now;
          s->free_mask |= (uint64_t)1 << pg->index;
          s->used_pages--;
        }
        if (pg->state != ZC_PAGE_FREE || !pg->dirty) continue;
        if (force || pg->freed_at + delay <= now) {
          purged += zc_os_purge(page_area_start(s, pg), page_area_size(s, pg), (int)zc_opt(zc_option_purge_mode));
          pg->dirty = 0;
        } else {
          all_clean = false;
          young = true;
        }
      }
      if (s->used_pages == 0 && all_clean) {
        *link = s->next;
        __atomic_fetch_sub(&abandoned_count, 1, __ATOMIC_RELAXED);
        zc_segmap_clear(s, ZC_SEGMENT_SIZE);
        atomic_fetch_sub_explicit(&segments_live, 1, memory_order_relaxed);
        zc_os_free(s, ZC_SEGMENT_SIZE);
        continue;
      }
      link = &s->next;
    }
  }
  zc_unlock(&abandoned_lock);
  atomic_fetch_add_explicit(&purged_bytes, purged, memory_order_relaxed);
  return young;
}

static void adopt_one(zc_heap_t *h, zc_segment_t *s) {
  h->hold_segments = true;
  zc_segment_set_owner(s, h);
  zc_lock(&h->lock);
  if (s->free_mask != 0) seg_push_front(&h->segments[s->kind], s);
  else seg_push_back(&h->segments[s->kind], s);
  zc_unlock(&h->lock);
  for (uint32_t i = 0; i < s->page_count; i++) {
    zc_page_t *pg = &s->pages[i];
    if (pg->state != ZC_PAGE_IN_USE) {
      if (pg->dirty) { /* an empty page the last owner left resident: ours to reuse or purge */
        uint64_t t = pg->freed_at;
        zc_lock(&h->lock);
        dirty_append(h, s, pg);
        pg->freed_at = t;
        zc_unlock(&h->lock);
      }
      continue;
    }
    zc_page_collect_all(pg);
    if (pg->state != ZC_PAGE_IN_USE) continue; /* broken: its lists were corrupted */
    if (pg->used == 0) {
      zc_segment_page_free(h, pg);
      continue;
    }
    zc_page_queue_t *q = &h->queues[pg->class_idx];
    zc_queue_push_back(q, pg);
    if (q->first == pg) zc_heap_queue_changed(h, pg->class_idx);
  }
  h->hold_segments = false;
  if (s->used_pages == 0) { /* all empty: keep it as the spare (the allocation that adopted it uses it) */
    zc_lock(&h->lock);
    if (h->spare[s->kind] == NULL) h->spare[s->kind] = s;
    else if (h->spare[s->kind] != s) segment_release(h, s);
    zc_unlock(&h->lock);
  }
}

bool zc_segment_adopt(zc_heap_t *h, int kind) {
  if (__atomic_load_n(&abandoned_count, __ATOMIC_RELAXED) == 0) return false;
  bool any = false;
  for (int k = 0; k < ZC_SEG_KINDS; k++) {
    if (kind >= 0 && k != kind) continue;
    for (;;) {
      zc_lock(&abandoned_lock);
      zc_segment_t *s = abandoned[k];
      if (s != NULL) {
        abandoned[k] = s->next;
        __atomic_fetch_sub(&abandoned_count, 1, __ATOMIC_RELAXED);
      }
      zc_unlock(&abandoned_lock);
      if (s == NULL) break;
      s->next = s->prev = NULL;
      adopt_one(h, s);
      any = true;
      if (kind >= 0) return true; /* allocation: one is enough */
    }
  }
  return any;
}

/* ---- fork: the child has one thread; the parent's locks must not be held across fork ---- */

void zc_segments_fork_prepare(void) { zc_lock(&abandoned_lock); }
void zc_segments_fork_parent(void) { zc_unlock(&abandoned_lock); }
void zc_segments_fork_child(void) { zc_lock_init(&abandoned_lock); }
