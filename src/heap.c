/* Layer 4, heaps: one per thread, created on the thread's first allocation. Until then the thread's heap
 * is zc_heap_empty, whose direct slots are all 0 (no page: malloc reads the heap's empty line, a page with no
 * free block, types.h), so the malloc fast path needs no "initialised?" test: the first call falls into the
 * slow path through the same branch as an empty page.
 *
 * Heaps are never unmapped: at thread exit a heap gives its segments up (segment.c abandons them) and is
 * parked for the next new thread, so thread churn reuses both heaps and pages and the process stays flat.
 *
 * Locks: heaps_lock covers the list of all heaps and the parked flag; it is taken on thread start/exit
 * and by the purger/stats walks. It comes before any heap's own lock.
 */
#include "internal.h"

#include <string.h>

/* Its pair_owner is itself, which no page's owner is: a remote free then always takes free.c's out-of-line
 * new-owner path, where a thread without a heap is told apart (no test of its own on the remote path). */
zc_heap_t zc_heap_empty = {.pair_owner = &zc_heap_empty};
__thread zc_heap_t *zc_heap_tls = &zc_heap_empty;
__thread uint16_t zc_owner_tag_tls = ZC_MAP_TAG_NONE;
__thread bool zc_thread_exited;

static zc_lock_t heaps_lock = ZC_LOCK_INIT;
static zc_heap_t *heaps_all;       /* every heap ever made, linked by next_heap */
static uint32_t heaps_made;

#define HEAPS_PER_MAP 16u
/* Heaps start on OS-page boundaries (the layout of zc_heap_t is for them): a new thread's heap takes 2 page
 * faults if the thread uses no size between about 490 and 1000 bytes (the whole table was written at setup,
 * and heaps of 10.8 KiB straddled OS pages: 2-3). */
#define HEAP_STRIDE ((sizeof(zc_heap_t) + 4095) & ~(size_t)4095)

/* The direct slots of class cls: [lo, hi] (hi beyond the table for a class above ZC_DIRECT_MAX). */
static size_t direct_lo(unsigned cls) { return cls == 1 ? 0 : ZC_DIRECT_INDEX((size_t)zc_class_size[cls - 1] + 1); }

/* Back to a parked heap's state: no page, no pending chain. Only the direct slots of classes whose bit is set
 * are cleared: the others are 0 already, and are not touched (a fault each OS page of the table). */
static void heap_reset(zc_heap_t *h) {
  for (uint64_t m = h->direct_classes; m != 0; m &= m - 1) {
    unsigned c = (unsigned)__builtin_ctzll(m);
    size_t hi = ZC_DIRECT_INDEX(zc_class_size[c]);
    for (size_t w = direct_lo(c); w <= hi && w < ZC_DIRECT_SLOTS; w++) h->direct[w] = 0;
  }
  h->direct_classes = 0;
  memset(h->queues, 0, sizeof h->queues);
  memset(h->current, 0, sizeof h->current);
  memset(h->pending, 0, sizeof h->pending);
  h->pending_count = 0;
  h->pending_mask = 0;
}

/* Point every direct slot of class cls at the class's current page (or the empty page). */
void zc_heap_queue_changed(zc_heap_t *h, unsigned cls) {
  zc_page_t *first = h->queues[cls].first;
  zc_page_t *cur = h->current[cls];
  size_t hi = ZC_DIRECT_INDEX(zc_class_size[cls]);
  intptr_t off = first ? (intptr_t)((uintptr_t)first - (uintptr_t)h) : 0;
  /* the class's slots are all 0 (not read: a read of a never-touched OS page of the table faults too) */
  bool zero = (h->direct_classes & ((uint64_t)1 << cls)) == 0;
  if (cur == first && (hi >= ZC_DIRECT_SLOTS || (off == 0 ? zero : h->direct[hi] == off)))
    return; /* nothing moved (the usual refill): the direct slots already point at it */
  if (cur != first) { /* move the extra count; an old current page left at 0 is found by collect/rotation */
    if (cur != NULL) {
      cur->used--;
      cur->held = 0;
    }
    if (first != NULL) {
      first->used++;
      first->held = 1;
    }
    h->current[cls] = first;
  }
  if (zc_class_size[cls] > ZC_DIRECT_MAX || (off == 0 && zero)) return;
  for (size_t w = direct_lo(cls); w <= hi; w++) h->direct[w] = off;
  if (off != 0) h->direct_classes |= (uint64_t)1 << cls;
  else h->direct_classes &= ~((uint64_t)1 << cls);
}

/* Heaps are mapped HEAPS_PER_MAP at a time and each is set up when it is first handed out (heaps_lock):
 * setting up all of them at once wrote into every one (its lock, id and links, one OS page each), 16 page
 * faults for a program with one or two threads. */
static zc_heap_t *heaps_unused; /* the rest of the last mapping: never handed out, never touched */
static unsigned heaps_unused_left;

static zc_heap_t *heap_take(void) {
  zc_lock(&heaps_lock);
  for (zc_heap_t *h = heaps_all; h != NULL; h = h->next_heap) {
    if (!h->live) {
      h->live = true;
      zc_unlock(&heaps_lock);
      return h;
    }
  }
  if (heaps_unused_left == 0) { /* no parked heap and none unused: map a few more (never unmapped) */
    zc_heap_t *arr = zc_os_alloc_aligned(HEAP_STRIDE * HEAPS_PER_MAP, 4096);
    if (arr == NULL) {
      zc_unlock(&heaps_lock);
      return NULL;
    }
    heaps_unused = arr;
    heaps_unused_left = HEAPS_PER_MAP;
  }
  zc_heap_t *h = heaps_unused; /* zero from the OS: no page in any direct slot, nothing pending */
  heaps_unused = (zc_heap_t *)(void *)((char *)heaps_unused + HEAP_STRIDE);
  heaps_unused_left--;
  zc_lock_init(&h->lock);
  h->id = heaps_made;
  __atomic_store_n(&heaps_made, h->id + 1, __ATOMIC_RELAXED); /* read without heaps_lock by zc_heap_count */
  h->map_tag = h->id < ZC_MAP_OWNED_MAX ? (uint16_t)(ZC_MAP_OWNED + h->id) : (uint16_t)ZC_MAP_SEGMENT;
  h->pair_owner = NULL; /* pages with no owner count in pair_other */
  h->pair_slot = &h->pair_other;
  h->next_heap = heaps_all;
  h->live = true;
  heaps_all = h;
  zc_unlock(&heaps_lock);
  return h;
}

uint32_t zc_heap_count(void) { return __atomic_load_n(&heaps_made, __ATOMIC_RELAXED); }

zc_heap_t *zc_heap_init_thread(void) {
  zc_heap_t *h = zc_heap_tls;
  if (h != &zc_heap_empty) return h;
  zc_process_init();
  if (zc_heap_tls != &zc_heap_empty) return zc_heap_tls; /* a malloc inside the init made it (process.c) */
  h = heap_take(); /* fresh (zero) or parked (reset by zc_heap_done or the fork child): no reset here */
  if (h == NULL) return NULL;
  h->thread_id = zc_os_thread_id();
  __atomic_store_n(&h->os_tid, zc_os_tid(), __ATOMIC_RELAXED);
  h->next_purge_check = 0;
  zc_heap_tls = h;
  /* a heap without a tag must match no map entry (ZC_MAP_SEGMENT is in the map): its frees go out of line */
  zc_owner_tag_tls = h->map_tag >= ZC_MAP_OWNED ? h->map_tag : (uint16_t)ZC_MAP_TAG_NONE;
  zc_reclaim_start(h);
  zc_os_thread_exit_register(h);
  return h;
}

/* Give every empty page of h back to its segment (force: also the current pages held only by their extra
 * count). Nothing is purged here. */
static void collect_pages(zc_heap_t *h, bool force) {
  zc_remote_flush(h);
  zc_reclaim_pause(h); /* the walk below changes pages and queues outside h->lock */
  for (unsigned c = 1; c < ZC_CLASS_COUNT; c++) {
    zc_page_queue_t *q = &h->queues[c];
    zc_page_t *pg = q->first;
    while (pg != NULL) {
      zc_page_t *next = pg->next;
      zc_page_collect_all(pg);
      if (pg->state == ZC_PAGE_BROKEN) {
        zc_heap_page_broken(h, pg);
        pg = next;
        continue;
      }
      if (force && pg == h->current[c] && pg->used == 1) { /* only the extra count: let it go */
        pg->used = 0;
        pg->held = 0;
        h->current[c] = NULL;
      }
      if (pg->used == 0) {
        zc_queue_remove(q, pg);
        zc_segment_page_free(h, pg);
      }
      pg = next;
    }
    zc_heap_queue_changed(h, c);
  }
  zc_reclaim_resume(h);
}

void zc_heap_collect(zc_heap_t *h, bool force) {
  if (h == &zc_heap_empty) return;
  collect_pages(h, force);
  zc_segment_purge(h, force);
}

void zc_heap_unbias_all(zc_heap_t *h) {
  for (unsigned c = 1; c < ZC_CLASS_COUNT; c++) {
    if (h->current[c] != NULL) {
      h->current[c]->used--;
      h->current[c]->held = 0;
    }
    h->current[c] = NULL;
  }
}

ZC_API uint32_t zc_thread_heap_id(void) {
  zc_heap_t *h = zc_heap_init_thread();
  return h != NULL ? h->id : UINT32_MAX;
}

/* ---- remote frees per pair of heaps (free.c counts, this gathers) ---- */

/* Keep out[0..*n) the max largest pairs by bytes (insertion; max is small). */
static void pair_keep(zc_pair_stats_t *out, size_t max, size_t *n, const zc_pair_stats_t *e) {
  size_t i = *n < max ? (*n)++ : max;
  if (i == max && (max == 0 || out[max - 1].bytes >= e->bytes)) return;
  if (i == max) i = max - 1;
  while (i > 0 && out[i - 1].bytes < e->bytes) {
    out[i] = out[i - 1];
    i--;
  }
  out[i] = *e;
}

ZC_API size_t zc_stats_pairs(zc_pair_stats_t *out, size_t max) {
  size_t total = 0, kept = 0;
  if (out == NULL) max = 0;
  zc_lock(&heaps_lock);
  for (zc_heap_t *h = heaps_all; h != NULL; h = h->next_heap) {
    for (unsigned i = 0; i <= ZC_PAIR_SLOTS; i++) {
      zc_pair_slot_t *x = i < ZC_PAIR_SLOTS ? &h->pairs[i] : &h->pair_other;
      zc_heap_t *owner = __atomic_load_n(&x->owner, __ATOMIC_RELAXED);
      zc_pair_stats_t e = {
          .freer = h->id,
          .owner = owner != NULL ? owner->id : ZC_PAIR_OTHER,
          .owner_tid = owner != NULL ? __atomic_load_n(&owner->os_tid, __ATOMIC_RELAXED) : 0,
          .freer_tid = __atomic_load_n(&h->os_tid, __ATOMIC_RELAXED),
          .blocks = __atomic_load_n(&x->blocks, __ATOMIC_RELAXED),
          .bytes = __atomic_load_n(&x->bytes, __ATOMIC_RELAXED),
          .batches = __atomic_load_n(&x->batches, __ATOMIC_RELAXED),
      };
      if (e.batches == 0) continue;
      total++;
      pair_keep(out, max, &kept, &e);
    }
  }
  zc_unlock(&heaps_lock);
  return total;
}

void zc_heaps_visit(void (*fn)(zc_heap_t *h, void *arg), void *arg) {
  zc_lock(&heaps_lock);
  for (zc_heap_t *h = heaps_all; h != NULL; h = h->next_heap) fn(h, arg);
  zc_unlock(&heaps_lock);
}


/* Thread exit: hand over pending remote frees, give the pages up, park the heap. While the background
 * purger runs, the empty pages stay resident in the abandoned segments: the next thread that adopts a
 * segment reuses them without page faults, and the purger purges them once they are past the delay like any
 * other dirty page (zc_segments_purge_abandoned). Without the purger nobody would age them: purge now. */
void zc_heap_done(zc_heap_t *h) {
  bool keep = zc_purger_active();
  zc_reclaim_stop(h); /* the purger reclaims nothing of h after this; what it did is drained */
  collect_pages(h, true);
  zc_heap_unbias_all(h);
  zc_segments_abandon(h, keep);
  if (keep) zc_purger_ensure(); /* it may have gone idle meanwhile: the next sweep must see these pages */
  heap_reset(h);
  zc_heap_tls = &zc_heap_empty;
  zc_owner_tag_tls = ZC_MAP_TAG_NONE;
  zc_lock(&heaps_lock);
  h->live = false;
  zc_unlock(&heaps_lock);
}

/* ---- fork ----
 * The parent takes the heap-list lock and every heap's lock before fork, so no other thread is inside a
 * locked section (segment lists, dirty lists, the heap list) in the copied image. The lock-free steps are
 * another matter: another thread may have been anywhere in malloc or free, or between handing a pending
 * chain over (its compare-and-swap) and clearing its slot, or between taking a page's thread_free and
 * putting it on free. The child therefore trusts nothing the threads that did not come along were doing:
 * their pending chains are dropped, not handed over (a chain may already be on its page: pushing it again
 * would make a cycle), and each of their pages is rebuilt from a bounded, checked walk of its lists
 * (zc_page_rebuild, silently: a list torn by the fork is not the program's error). A page whose lists do
 * not check out is set aside, never reused. Blocks the lost threads held in flight count as used: the
 * child leaks them (at most a pending chain and a few blocks per lost thread), it never hands them out. */
void zc_heaps_fork_prepare(void) {
  zc_lock_for_fork(&heaps_lock);
  for (zc_heap_t *h = heaps_all; h != NULL; h = h->next_heap) zc_lock_for_fork(&h->lock);
}

void zc_heaps_fork_parent(void) {
  for (zc_heap_t *h = heaps_all; h != NULL; h = h->next_heap) zc_unlock_for_fork(&h->lock);
  zc_unlock_for_fork(&heaps_lock);
}

void zc_heaps_fork_child(bool keep_dirty) {
  zc_lock_init(&heaps_lock);
  for (zc_heap_t *h = heaps_all; h != NULL; h = h->next_heap) zc_lock_init(&h->lock);
  zc_heap_t *mine = zc_heap_tls;
  for (zc_heap_t *h = heaps_all; h != NULL; h = h->next_heap) {
    if (h == mine || !h->live) continue;
    memset(h->pending, 0, sizeof h->pending); /* dropped, see above */
    h->pending_count = 0;
    h->pending_mask = 0;
    zc_reclaim_fork_orphan(h);
    for (unsigned c = 1; c < ZC_CLASS_COUNT; c++) h->current[c] = NULL;
    zc_segments_fork_orphan(h, keep_dirty);
    heap_reset(h);
    h->live = false;
  }
}
