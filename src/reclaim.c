/* Layers 4-5, the reclaim of pages that other threads' frees emptied in a live heap (issue 12: memory
 * handed back to the OS on a bounded delay, whatever the owner does).
 *
 * The problem. Thread A allocates, thread B frees (redis's lazy free; any consumer). B's frees land in the
 * pages' thread_free stacks (types.h), which only A takes in, on its malloc slow path. If A then blocks (in
 * epoll_wait, on a condvar) or only makes fast-path calls, its pages stay "in use" with every block free and
 * their memory is never purged: redis held 14.8x its pre-fill RSS 3 s after FLUSHALL ASYNC.
 *
 * What is built. The background purger (process.c's sweep, every half purge delay) visits every live heap
 * whose lock it can take (trylock of h->lock, held for RECLAIM_PER_HOLD reclaims at most) and looks at the
 * thread_free word of every page of its segments (the count of blocks on the stack rides in the word's top
 * bits). A page is
 * reclaimed when n blocks on its stack leave it with no live block and none on its way (all_back):
 *   (b) a page that is not its class's current page (held == 0) and whose count of blocks out, used, is n:
 *       every other carved block is on the owner's own lists (free, local_free);
 *   (a) the current page (held == 1) when n is every carved block (capacity): n distinct carved blocks on
 *       the stack (the walk below checks it) leave none live and none on the owner's lists;
 * and only once the purger has seen it so with the same thread_free word for a purge delay (reclaim_seen,
 * reclaim_since: the owner did not take the blocks back meanwhile; a busy owner does, and a reclaim at
 * first sight purged pages it faulted in again a moment later). Pages waiting so keep the purger awake.
 * The purger takes the stack (one exchange), walks it (bounded; every block inside the carved span, on the
 * grid, carrying the free tag, each once: a bitmap), tests all_back again with the exact count and puts
 * the page on h's reclaimed list (h->lock); else it pushes the chain back (a CAS loop, as a freer does).
 * The owner takes the list in (zc_reclaim_drain_locked) under h->lock at the start of its malloc slow path
 * (page_for_class, any class), of zc_collect/malloc_trim (pause) and at exit (stop), before it touches any
 * page: a reclaimed page is set back to nothing carved (free and local_free dropped: their blocks were
 * free; used = held) and, unless it is the current page, goes back to its segment as a free page, dirty
 * (aged with the owner's other empty pages by the demand-aware policy, segment.c) or purged already. The
 * current page stays current and its next refill carves it afresh.
 * The purge (purge_undrained): a reclaimed page the owner has not drained a purge delay after its reclaim
 * belongs to an owner that made no malloc slow path meanwhile, an idle one: the purger purges its whole
 * area then (pg->purged, reclaim_since now the purge's time). Purging at the reclaim made a busy owner
 * fault the page in again a moment later (bench/prodcons 2x2: 83 purges, 50 of them misses; waiting: 19
 * and 5; core_reclaim_wait busy). A purged page taken back within a delay of the drain is a miss
 * (zc_stats_t purge_misses): counted at the page's next take from its segment (segment.c), or at the
 * drain for the current page, which the owner's next refill of that class carves again.
 *
 * Why the owner's fast paths need nothing (no lock, fence or atomic RMW added: the same instructions).
 *   - No block of a reclaimed page is live, so no correct free comes to it, from the owner or anyone.
 *   - The owner's malloc pops only from the current page of a class (the direct table, malloc_mid, the
 *     cheap refill of zc_malloc_refill and zc_malloc_generic all take the queue's first page, which
 *     zc_heap_queue_changed makes current), and a current page is reclaimed only with empty lists.
 *   - Everything else the owner does to a page's lists, queue or current status is under h->lock
 *     (page_for_class: the drain, the scan, collect, extend, rotation, queue_changed; zc_page_retire; the
 *     broken-page path of zc_malloc_generic) or while the purger is kept off (reclaim_off: collect_pages,
 *     adopt_one, thread exit). So from the purger's decision to the drain, the owner does not touch the page.
 * The price is one uncontended lock and unlock per malloc slow path and per page that empties.
 *
 * Memory ordering.
 *   - The candidate test loads thread_free with acquire, then held, used and capacity (relaxed atomic
 *     loads). held, and which page is current, change only under h->lock or with the purger kept off, so
 *     the purger (holding h->lock) reads them exactly. A page that is not current is never popped from, so
 *     its used only falls (the owner's frees, out of the lock) after the lock hold that made it so: a used
 *     the purger reads is at least the true one, and used == n proves that no block is live or on its way.
 *     The owner's pops that made the blocks live came before it handed them out, which came before the
 *     freers' release pushes, so the acquire load orders those writes of used before the read.
 *   - The exchange that takes the stack is acquire: it pairs with the freers' release CAS (free.c
 *     push_chain), so the blocks' links and tags are seen, and (as above) the owner's page_init, whose
 *     start, grid, key, tag, block_size and reserved the walk reads.
 *   - capacity is written under h->lock (extend) or before the page is in a queue (page_init), with
 *     relaxed atomic stores; the purger reads it under h->lock.
 *   - The purger never reads the current page's used: the owner's malloc pops write it with plain stores
 *     outside the lock (zc_pop's used++), and TSan reported that race once sweeps came more often (the
 *     wait above keeps the purger awake). The current page's test is n == capacity alone (capacity is
 *     written under h->lock): once the walk has found n distinct carved blocks on the stack, every carved
 *     block is there, so none is live and the owner's lists are empty (its fast path cannot pop, and its
 *     take of thread_free finds the stack gone). A double free that left a block on the owner's list as
 *     well is reported at the drain (used != n + held), which breaks the page; until then the owner may
 *     hand that block out (and, if it then stays idle a delay, the purge zeroes it): the used read
 *     before saw such a block, at the price of the race.
 *   - On a page that is not current the purger's relaxed loads of used meet the owner's local frees, which
 *     lower it with no lock: those writes are relaxed atomic stores (free.c: used_dec_above_zero, whose one
 *     `subl` on memory on x86-64 is such a load and store; C atomics elsewhere and under TSan, so TSan checks
 *     every access: core_reclaim_used reports the race with a plain store). The argument above needs only
 *     some value the owner wrote: used only falls there, so the value read is at least the true count, and
 *     used == n proves no block live (core_reclaim_used: no block the owner holds is ever lost).
 *   - The page cannot be retired or set up again while the purger holds a non-empty stack: its blocks
 *     count in used, and only used == 0 retires a page.
 *   - The reclaimed list, page->reclaimed and h->reclaim_off are under h->lock.
 *   - A reclaimed page has an empty thread_free and no block out, so it is not a candidate again before the
 *     drain; page->reclaimed keeps it off the list twice whatever a double free does. The drain reports a
 *     block freed into it since (thread_free not empty, or used below n + held) and breaks the page.
 *
 * Thread exit, fork. zc_heap_done stops the reclaim (reclaim_off) and drains under h->lock before it
 * collects and gives its segments up; the purger adds nothing after. The fork prepare handler takes every
 * heap's lock, so no pass is half done in the child; an orphaned heap's list is undone without its queues
 * (zc_reclaim_fork_orphan) before its pages are rebuilt; the forking thread's own heap drains it as usual.
 *
 * What is not reclaimed (waits for the owner's slow path, as before): a page with a live block (no purge of
 * the free runs inside a partly used page); the current page while blocks remain on its own lists; a page
 * with blocks still in some freer's pending chain (at most one page per freeing thread, ZC_REMOTE_BATCH
 * blocks). Nothing at all without the purger (ZCMEM_BACKGROUND=0, ZCMEM_PURGE_DELAY=0).
 */
#include "internal.h"

#include <string.h>

/* Push chain head..tail (count blocks of the page whose remote line is r) back on its thread_free stack
 * (the freers' hand-over, free.c: release, so the owner's acquiring exchange sees the links). */
static void push_back(zc_page_remote_t *r, zc_page_t *pg, zc_block_t *head, zc_block_t *tail, uint32_t count) {
  uintptr_t old = atomic_load_explicit(&r->thread_free, memory_order_relaxed), nv;
  do {
    tail->link = zc_link_encode(pg, ZC_TF_PTR(old));
    nv = (uintptr_t)head | ((uintptr_t)(ZC_TF_COUNT(old) + count) << ZC_TF_SHIFT);
  } while (!atomic_compare_exchange_weak_explicit(&r->thread_free, &old, nv, memory_order_release,
                                                   memory_order_relaxed));
}

/* n blocks on thread_free leave pg with no live block and none on its way (see the top of the file):
 * a page that is not current whose count of blocks out (used) is exactly n, or the current page whose
 * every carved block is among the n (then its free lists are empty: the owner's fast path cannot pop).
 * The current page's used is not read: the owner's malloc pops write it with plain stores outside the lock
 * (zc_pop's used++), and n == capacity already says that no block is live or on the owner's lists. */
static bool all_back(zc_page_t *pg, uint32_t n) {
  if (__atomic_load_n(&pg->held, __ATOMIC_RELAXED) == 0) return __atomic_load_n(&pg->used, __ATOMIC_RELAXED) == n;
  return n == __atomic_load_n(&pg->capacity, __ATOMIC_RELAXED);
}

/* The purger's try on one candidate page pg of h (h->lock held). True if the page was reclaimed. */
static bool reclaim_page(zc_heap_t *h, zc_page_t *pg, zc_page_remote_t *r, uint64_t now) {
  uintptr_t v = atomic_exchange_explicit(&r->thread_free, 0, memory_order_acquire);
  uint32_t n = ZC_TF_COUNT(v);
  if (n == 0) return false;
  /* The chain, checked as the owner's refill would: every block inside the carved span, on the grid,
   * carrying the free tag, each once (a bitmap), and as many as the count says. */
  uint32_t c = __atomic_load_n(&pg->capacity, __ATOMIC_RELAXED);
  uint64_t seen[ZC_PAGE_BLOCKS_MAX / 64];
  memset(seen, 0, ((size_t)c + 63) / 64 * sizeof(uint64_t));
  size_t bsize = pg->block_size;
  uint32_t span = (uint32_t)(c * bsize);
  uint64_t limit = (uint64_t)c * (zc_page_grid(pg) * bsize);
  zc_block_t *head = ZC_TF_PTR(v), *b = head, *tail = NULL;
  uint32_t walked = 0;
  while (b != NULL) {
    if (walked == n || !zc_link_ok(pg, b, span, limit) || b->tag != pg->tag) break;
    uint32_t i = (uint32_t)(((unsigned __int128)((uintptr_t)b - (uintptr_t)pg->start) * zc_page_grid(pg)) >> 64);
    if (seen[i >> 6] & ((uint64_t)1 << (i & 63))) break;
    seen[i >> 6] |= (uint64_t)1 << (i & 63);
    walked++;
    tail = b;
    b = zc_link_decode(pg, b->link);
  }
  if (b != NULL || walked != n) {
    /* A block twice, a link out of the page or a count that lies: some thread freed a block twice or wrote
     * one after freeing it. The chain cannot be followed; its blocks are kept out of use for good. */
    zc_bad_free(b, "corrupted remote-free chain (a double free or a write after free) in the page of");
    return false;
  }
  if (!all_back(pg, n)) { /* a block is live, on its way, or on the current page's lists: give it back */
    push_back(r, pg, head, tail, n);
    return false;
  }
  /* No block of the page is live and the owner's next touch of it is the drain. Its memory stays resident
   * for a purge delay more (purge_undrained): a busy owner drains it first, and the page joins its dirty
   * pages, which the demand-aware policy ages (segment.c); purging it here made such an owner fault it in
   * again (the misses of bench/prodcons). */
  pg->purged = 0; /* 0 on a page in use (segment.c); here: not purged yet */
  pg->reclaim_since = now;
  pg->reclaimed = (uint16_t)n;
  pg->reclaim_next = h->reclaimed;
  h->reclaimed = pg;
  zc_stat_inc(&h->stat_reclaimed, 1);
  return true;
}

/* Pages reclaimed per hold of h->lock: each costs a purge system call, and the owner's slow path waits for
 * the lock meanwhile; a pass that reaches it lets go and starts over (the pages done are skipped at one
 * load each: their thread_free is empty). */
#define RECLAIM_PER_HOLD 32u

/* One hold of h->lock: reclaim up to RECLAIM_PER_HOLD pages; *more: the limit stopped it. */
static size_t reclaim_hold(zc_heap_t *h, bool *more, bool *waiting, bool *watch) {
  size_t got = 0;
  *more = false;
  if (h->reclaim_off != 0) return 0;
  uint64_t now = zc_os_clock_ns(), delay = (uint64_t)zc_opt(zc_option_purge_delay) * 1000000u;
  for (int k = 0; k < ZC_SEG_KINDS; k++) {
    for (zc_segment_t *s = h->segments[k]; s != NULL; s = s->next) {
      if (s->used_pages == 0) continue;
      for (uint32_t i = 0; i < s->pages_touched; i++) { /* beyond: never taken, and untouched memory */
        zc_page_remote_t *r = &s->pages[i].remote;
        /* acquire: the owner's last writes of the page's counts before it handed these blocks out (its
         * pops: used) happen-before the freers' release pushes, hence before all_back reads them; seq_cst:
         * the purger's last sweep before its idle sleep sees a hand-over whose freer saw it running (large.h,
         * the wake-up protocol; a plain load on x86-64 either way) */
        uintptr_t v = atomic_load_explicit(&r->thread_free, memory_order_seq_cst);
        if (v == 0) continue; /* most pages: one load of the remote line */
        zc_page_t *pg = &s->pages[i];
        if (pg->reclaimed != 0) continue;
        if (!all_back(pg, ZC_TF_COUNT(v))) {
          /* other threads' frees wait behind blocks the owner has out: its local frees, which wake no one,
           * may complete the page while the purger sleeps (the purger then sleeps with a deadline) */
          if (__atomic_load_n(&pg->held, __ATOMIC_RELAXED) == 0) *watch = true;
          continue;
        }
        if (pg->reclaim_seen != v) { /* first seen so: a busy owner takes them back within the delay */
          pg->reclaim_seen = v;
          pg->reclaim_since = now;
          *waiting = true;
          continue;
        }
        if (now - pg->reclaim_since < delay) {
          *waiting = true;
          continue;
        }
        got += reclaim_page(h, pg, r, now);
        if (got == RECLAIM_PER_HOLD) {
          *more = true;
          return got;
        }
      }
    }
  }
  return got;
}

/* The reclaimed pages the owner has not drained for a purge delay (h->lock held): it has made no malloc
 * slow path since (each one drains), so it is idle: purge them, RECLAIM_PER_HOLD at most (true: the limit
 * stopped it). Sets *waiting while some wait. */
static bool purge_undrained(zc_heap_t *h, uint64_t now, uint64_t delay, bool *waiting) {
  size_t done = 0;
  for (zc_page_t *pg = h->reclaimed; pg != NULL; pg = pg->reclaim_next) {
    if (pg->purged != 0) continue;
    if (now - pg->reclaim_since < delay) {
      *waiting = true;
      continue;
    }
    if (done == RECLAIM_PER_HOLD) return true;
    zc_segment_purge_range(h, pg->start, (size_t)(zc_page_end(zc_segment_of(pg), pg) - pg->start));
    pg->purged = 1;
    pg->reclaim_since = now; /* now when it was purged: a take within a delay of it is a miss (drain) */
    done++;
  }
  return false;
}

size_t zc_reclaim_idle(zc_heap_t *h, bool *waiting, bool *watch) {
  size_t got = 0;
  bool more = true;
  /* trylock: an owner in its slow path takes its remote frees itself; the next sweep goes on (a busy lock
   * counts as a watch: the pass did not see the heap's pages) */
  while (more) {
    if (!zc_trylock(&h->lock)) {
      *watch = true;
      break;
    }
    got += reclaim_hold(h, &more, waiting, watch);
    if (!more && h->reclaimed != NULL)
      more = purge_undrained(h, zc_os_clock_ns(), (uint64_t)zc_opt(zc_option_purge_delay) * 1000000u, waiting);
    zc_unlock(&h->lock);
  }
  return got;
}

/* The owner's side for one page the purger reclaimed after taking n blocks from its thread_free (h->lock
 * held, or a fork child's orphan): the page is set back to nothing carved, used = held. False if a block
 * was freed into it since (no block was live: a double free), which breaks it. */
static bool restore(zc_page_t *pg, uint32_t n, bool report) {
  if (pg->state != ZC_PAGE_IN_USE) return false; /* broken meanwhile: never reused */
  uintptr_t tf = atomic_load_explicit(&zc_page_remote(pg)->thread_free, memory_order_relaxed);
  if (tf != 0 || pg->used != n + pg->held) {
    zc_page_break(pg, tf != 0 ? (const void *)ZC_TF_PTR(tf) : (const void *)pg->local_free,
                  "double free into a page with no block in use (reclaimed by the purger), in the page of", report);
    return false;
  }
  pg->free = pg->local_free = NULL; /* their blocks were free (and may be purged) */
  pg->used = pg->held;
  __atomic_store_n(&pg->capacity, 0, __ATOMIC_RELAXED);
  zc_page_set_span(pg, 0, 0); /* a late free of an old block is "no block was handed out" */
  return true;
}

void zc_reclaim_drain_locked(zc_heap_t *h) {
  zc_page_t *pg = h->reclaimed;
  h->reclaimed = NULL;
  while (pg != NULL) {
    zc_page_t *next = pg->reclaim_next;
    uint32_t n = pg->reclaimed;
    pg->reclaimed = 0;
    pg->reclaim_next = NULL;
    bool clean = pg->purged != 0;
    uint64_t purged_at = pg->reclaim_since;
    pg->purged = 0;
    if (restore(pg, n, true)) {
      if (pg->used == 0) { /* not the current page: back to its segment, dirty or purged already */
        zc_queue_remove(&h->queues[pg->class_idx], pg);
        /* a take within a delay of now (the drain, at or after the purge) counts as a miss (segment.c);
         * pg may be unmapped after this call (its segment emptied) */
        zc_segment_page_free_locked(h, pg, clean);
      } else if (clean) { /* the class's current page: its next refill carves it afresh, faulting it in */
        if (zc_os_clock_ns() - purged_at < (uint64_t)zc_opt(zc_option_purge_delay) * 1000000u)
          zc_segment_count_miss((size_t)(zc_page_end(zc_segment_of(pg), pg) - pg->start));
      }
    } else if (pg->state == ZC_PAGE_BROKEN) {
      zc_heap_page_broken(h, pg);
    }
    pg = next;
  }
}

void zc_reclaim_start(zc_heap_t *h) {
  zc_lock(&h->lock);
  h->reclaim_off = 0;
  zc_unlock(&h->lock);
}

void zc_reclaim_stop(zc_heap_t *h) {
  zc_lock(&h->lock);
  h->reclaim_off = 1;
  if (h->reclaimed != NULL) zc_reclaim_drain_locked(h);
  zc_unlock(&h->lock);
}

void zc_reclaim_pause(zc_heap_t *h) {
  zc_lock(&h->lock);
  h->reclaim_off++;
  if (h->reclaimed != NULL) zc_reclaim_drain_locked(h);
  zc_unlock(&h->lock);
}

void zc_reclaim_resume(zc_heap_t *h) {
  zc_lock(&h->lock);
  h->reclaim_off--;
  zc_unlock(&h->lock);
}

void zc_reclaim_fork_orphan(zc_heap_t *h) {
  zc_page_t *pg = h->reclaimed;
  h->reclaimed = NULL;
  h->reclaim_off = 1;
  while (pg != NULL) {
    zc_page_t *next = pg->reclaim_next;
    uint32_t n = pg->reclaimed;
    pg->reclaimed = 0;
    pg->reclaim_next = NULL;
    pg->purged = 0; /* 0 on a page in use (segment.c) */
    restore(pg, n, false); /* the rebuild after (zc_segments_fork_orphan) gives the emptied page back */
    pg = next;
  }
}
