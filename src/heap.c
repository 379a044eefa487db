/* Layer 4, heaps: one per thread, created on the thread's first allocation. Until then the thread's heap
 * is zc_heap_empty, whose direct table points at a page with no free block, so the malloc fast path needs
 * no "initialised?" test: the first call falls into the slow path through the same branch as an empty page.
 *
 * Heaps are never unmapped: at thread exit a heap gives its segments up (segment.c abandons them) and is
 * parked for the next new thread, so thread churn reuses both heaps and pages and the process stays flat.
 *
 * Locks: heaps_lock covers the list of all heaps and the parked flag; it is taken on thread start/exit
 * and by the purger/stats walks. It comes before any heap's own lock.
 */
#include "internal.h"
#include "large.h"

#include <string.h>

zc_page_t zc_page_empty;
zc_heap_t zc_heap_empty = {.direct = {[0 ... ZC_DIRECT_SLOTS - 1] = &zc_page_empty}};
__thread zc_heap_t *zc_heap_tls = &zc_heap_empty;

static zc_lock_t heaps_lock = ZC_LOCK_INIT;
static zc_heap_t *heaps_all;       /* every heap ever made, linked by next_heap */
static uint32_t heaps_made;
static bool process_ready;
static zc_lock_t purger_lock = ZC_LOCK_INIT; /* only serialises starting the purger thread */

#define HEAPS_PER_MAP 16u

static void heap_reset(zc_heap_t *h) {
  for (size_t i = 0; i < ZC_DIRECT_SLOTS; i++) h->direct[i] = &zc_page_empty;
  memset(h->queues, 0, sizeof h->queues);
  memset(h->current, 0, sizeof h->current);
  memset(&h->pending, 0, sizeof h->pending);
}

/* Point every direct slot of class cls at the class's current page (or the empty page). */
void zc_heap_queue_changed(zc_heap_t *h, unsigned cls) {
  zc_page_t *first = h->queues[cls].first;
  zc_page_t *cur = h->current[cls];
  if (cur != first) { /* move the extra count; an old current page left at 0 is found by collect/rotation */
    if (cur != NULL) cur->used--;
    if (first != NULL) first->used++;
    h->current[cls] = first;
  }
  if (zc_class_size[cls] > ZC_DIRECT_MAX) return;
  zc_page_t *pg = first ? first : &zc_page_empty;
  size_t lo = cls == 1 ? 0 : (size_t)(zc_class_size[cls - 1] / 8) + 1;
  size_t hi = zc_class_size[cls] / 8;
  for (size_t w = lo; w <= hi; w++) h->direct[w] = pg;
}

static void thread_exit(void *arg);
static void fork_prepare(void);
static void fork_parent(void);
static void fork_child(void);

/* Once per process, by the first thread that makes a heap (others wait: it takes microseconds). */
void zc_process_init(void) {
  if (__atomic_load_n(&process_ready, __ATOMIC_ACQUIRE)) return;
  zc_lock(&heaps_lock);
  if (!process_ready) {
    zc_options_init();
    zc_os_thread_exit_init(thread_exit);
    zc_os_atfork(fork_prepare, fork_parent, fork_child);
    __atomic_store_n(&process_ready, true, __ATOMIC_RELEASE);
  }
  zc_unlock(&heaps_lock);
}

static zc_heap_t *heap_take(void) {
  zc_lock(&heaps_lock);
  for (zc_heap_t *h = heaps_all; h != NULL; h = h->next_heap) {
    if (!h->live) {
      h->live = true;
      zc_unlock(&heaps_lock);
      return h;
    }
  }
  /* No parked heap: map a few more (heaps are small and never unmapped). */
  size_t size = ((sizeof(zc_heap_t) * HEAPS_PER_MAP) + 4095) & ~(size_t)4095;
  zc_heap_t *arr = zc_os_alloc_aligned(size, 4096);
  if (arr == NULL) {
    zc_unlock(&heaps_lock);
    return NULL;
  }
  for (unsigned i = 0; i < HEAPS_PER_MAP; i++) {
    zc_heap_t *h = &arr[i];
    zc_lock_init(&h->lock);
    h->id = heaps_made++;
    h->next_heap = heaps_all;
    heaps_all = h;
  }
  arr[0].live = true;
  zc_unlock(&heaps_lock);
  return &arr[0];
}

zc_heap_t *zc_heap_init_thread(void) {
  zc_heap_t *h = zc_heap_tls;
  if (h != &zc_heap_empty) return h;
  zc_process_init();
  h = heap_take();
  if (h == NULL) return NULL;
  heap_reset(h);
  h->thread_id = zc_os_thread_id();
  h->next_purge_check = 0;
  zc_heap_tls = h;
  zc_os_thread_exit_register(h);
  return h;
}

void zc_heap_collect(zc_heap_t *h, bool force) {
  if (h == &zc_heap_empty) return;
  zc_remote_flush(h);
  for (unsigned c = 1; c < ZC_CLASS_COUNT; c++) {
    zc_page_queue_t *q = &h->queues[c];
    zc_page_t *pg = q->first;
    while (pg != NULL) {
      zc_page_t *next = pg->next;
      zc_page_collect(pg);
      if (force && pg == h->current[c] && pg->used == 1) { /* only the extra count: let it go */
        pg->used = 0;
        h->current[c] = NULL;
      }
      if (pg->used == 0) {
        if (pg->prev) pg->prev->next = pg->next;
        else q->first = pg->next;
        if (pg->next) pg->next->prev = pg->prev;
        else q->last = pg->prev;
        q->count--;
        zc_segment_page_free(h, pg);
      }
      pg = next;
    }
    zc_heap_queue_changed(h, c);
  }
  zc_segment_purge(h, force);
}

static void heap_unbias_all(zc_heap_t *h) {
  for (unsigned c = 1; c < ZC_CLASS_COUNT; c++) {
    if (h->current[c] != NULL) h->current[c]->used--;
    h->current[c] = NULL;
  }
}

/* Thread exit: hand over pending remote frees, give the pages up, park the heap. */
static void heap_done(zc_heap_t *h) {
  zc_heap_collect(h, true);
  heap_unbias_all(h);
  zc_segments_abandon(h);
  heap_reset(h);
  zc_heap_tls = &zc_heap_empty;
  zc_lock(&heaps_lock);
  h->live = false;
  zc_unlock(&heaps_lock);
}

static void thread_exit(void *arg) {
  zc_heap_t *h = arg;
  if (h != NULL && h == zc_heap_tls) heap_done(h);
}

void zc_thread_done(void) {
  zc_heap_t *h = zc_heap_tls;
  if (h != &zc_heap_empty) heap_done(h);
}

void zc_heaps_visit(void (*fn)(zc_heap_t *h, void *arg), void *arg) {
  zc_lock(&heaps_lock);
  for (zc_heap_t *h = heaps_all; h != NULL; h = h->next_heap) fn(h, arg);
  zc_unlock(&heaps_lock);
}

ZC_API int zc_debug_build(void) { return ZC_DEBUG != 0; }

/* ---- fork ----
 * The parent takes every allocator lock before fork so no other thread holds one in the copied image; the
 * child re-initialises them and parks the heaps of the threads that did not come along (their segments are
 * abandoned so the child's thread can adopt what it needs). */
static void fork_prepare(void) {
  zc_lock(&heaps_lock);
  for (zc_heap_t *h = heaps_all; h != NULL; h = h->next_heap) zc_lock(&h->lock);
  zc_segments_fork_prepare();
  zc_large_fork_prepare();
}

static void fork_parent(void) {
  zc_large_fork_parent();
  zc_segments_fork_parent();
  for (zc_heap_t *h = heaps_all; h != NULL; h = h->next_heap) zc_unlock(&h->lock);
  zc_unlock(&heaps_lock);
}

static void fork_child(void) {
  zc_purger_running = false; /* the thread did not come along; the next empty page starts another */
  zc_lock_init(&purger_lock);
  zc_large_fork_child();
  zc_segments_fork_child();
  zc_lock_init(&heaps_lock);
  for (zc_heap_t *h = heaps_all; h != NULL; h = h->next_heap) zc_lock_init(&h->lock);
  zc_heap_t *mine = zc_heap_tls;
  for (zc_heap_t *h = heaps_all; h != NULL; h = h->next_heap) {
    if (h == mine || !h->live) continue;
    /* That thread does not exist in the child: its blocks stay valid; its pages go to whoever adopts. */
    zc_remote_flush(h);
    heap_unbias_all(h);
    zc_segments_abandon(h);
    heap_reset(h);
    h->live = false;
  }
}

/* ---- trim and collect (the public calls) ---- */

ZC_API void zc_collect(bool force) {
  zc_heap_t *h = zc_heap_get();
  if (h != &zc_heap_empty) zc_heap_collect(h, force);
}

static void purge_other(zc_heap_t *h, void *arg) {
  if (h->live && h != zc_heap_tls) zc_segment_purge_other(h, *(bool *)arg);
}

ZC_API int zc_trim(size_t pad) {
  (void)pad;
  uint64_t before = zc_segments_purged_bytes();
  zc_heap_t *h = zc_heap_get();
  if (h != &zc_heap_empty) {
    zc_segment_adopt(h, -1); /* exited threads' pages: collect what other threads freed since */
    zc_heap_collect(h, true);
  }
  bool force = true;
  zc_heaps_visit(purge_other, &force);
  zc_segments_purge_abandoned(true);
  size_t large = zc_large_purge(true);
  return (large != 0 || zc_segments_purged_bytes() != before) ? 1 : 0;
}

/* The override (libzcmem.so, libzcmem.a): the standard names are aliases of the zc_ functions above. */
#if ZC_OVERRIDE
int malloc_trim(size_t pad) ZC_ALIAS(zc_trim);
#endif

/* ---- the background purger ----
 * One detached thread (ZCMEM_BACKGROUND=1, started on the first empty page, never from under a lock)
 * wakes every half purge delay and purges what is past the delay in every heap whose lock it can take,
 * and in the large-region cache. It is what bounds the delay for a thread that has gone idle: without it,
 * an idle heap keeps up to ZCMEM_DIRTY_BUDGET of empty pages until its next slow path. */
bool zc_purger_running;
static void *purger_main(void *arg) {
  (void)arg;
  for (;;) {
    uint64_t delay_ms = (uint64_t)zc_opt(zc_option_purge_delay);
    zc_os_sleep_ns((delay_ms < 2 ? 1 : delay_ms / 2) * 1000000u);
    bool force = false;
    zc_heaps_visit(purge_other, &force);
    zc_segments_purge_abandoned(false);
    zc_large_purge(false);
  }
  return NULL;
}

void zc_purger_ensure(void) {
  if (__atomic_load_n(&zc_purger_running, __ATOMIC_RELAXED) || !zc_opt(zc_option_background)) return;
  if (!zc_trylock(&purger_lock)) return;
  if (!zc_purger_running) __atomic_store_n(&zc_purger_running, zc_os_thread_start(purger_main, NULL), __ATOMIC_RELAXED);
  zc_unlock(&purger_lock);
}
