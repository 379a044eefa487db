/* Layers 4-5, the free paths.
 *
 * Local free (the owner frees): the segment map's entry for the pointer equals this thread's owner tag
 * (one load and one compare answer "zcmem's", "a small segment" and "mine"; segmap.h), the segment is the
 * map index shifted back and the page a constant shift away: push on the page's local_free list. One
 * branch on the decremented count covers "page becomes empty" and "page had nothing to free" (a double
 * free). The owner's medium segments carry its tag plus ZC_MAP_MEDIUM_BIAS: one more compare, out of line
 * (free_medium_tagged), then the same free_local with a constant 128 KiB page shift. Threads whose heap has
 * no tag, and other threads' medium blocks, take the out-of-line path (s->heap compare).
 *
 * Remote free (another thread frees; the producer/consumer case): everything it reads and writes of the
 * page is in the page's remote line (types.h), never the descriptor's first line, which the owner's malloc
 * writes on every allocation; the page's state is read from the descriptor's second line. The freer keeps
 * a pending chain of blocks of one page (ZC_REMOTE_SLOTS chains in a direct-mapped table; one, measured
 * best, see types.h) and hands the whole chain over with one compare-and-swap on the page's thread_free
 * stack when another page takes its slot, when it reaches ZC_REMOTE_BATCH blocks, or at the freer's next
 * malloc slow path. A
 * consumer frees messages in about the order a producer made them, so consecutive frees of one message type
 * hit the same page and the atomic operation is paid once per batch (BatchIt's observation), not once per
 * block. A thread that only frees holds at most ZC_REMOTE_SLOTS chains of ZC_REMOTE_BATCH blocks and no
 * more than ZC_REMOTE_PENDING_MAX blocks in all: it never grows. Each hand-over is counted in the freer's
 * pair table under the page's owner (blocks, bytes, hand-overs: zc_stats_pairs), at the cost of one load
 * and three adds.
 *
 * What is checked (release builds; docs/design.md has the table with the costs):
 *   every free     the segment map says the pointer is zcmem's (foreign pointers are never followed)
 *   owner's fast   p is a carved block start of its page (range and grid, one multiply), the page has more
 *                  than one block in use, p does not carry the page's free tag (types.h: a double free);
 *                  the same for the owner's free of a medium block (free_local, out of line)
 *   owner's slow   all of that again on every path, the page is in use, p is not at the head of a list
 *   other threads  the same range, grid, page state (the remote line's limit, 0 while the page is not in
 *                  use) and tag checks before the block is put on a chain; the
 *                  owner checks that a hand-over never brings back more blocks than are in use
 *   malloc         every block popped is checked (range, tag) before it is handed out or its link followed
 * With ZC_DEBUG, also: a block already on one of its page's lists (a bounded walk of all three).
 * A bad free is reported by zc_bad_free (one line, then abort unless ZCMEM_ABORT_ON_ERROR=0) and ignored.
 */
#include "internal.h"
#include "large.h"

#include <errno.h>

void zc_bad_free(const void *p, const char *what) { zc_error("%s %p", what, p); }

#if ZC_DEBUG
/* Debug build: walk the page's lists (bounded, decoded) to catch any double free. O(blocks in page). */
static bool on_list(zc_page_t *pg, zc_block_t *b, const void *p) {
  for (uint32_t n = 0; b != NULL && n <= pg->capacity; n++, b = zc_link_decode(pg, b->link)) {
    if (b == p) return true;
    if (!zc_link_ok(pg, b, (uint32_t)pg->span, zc_page_limit(pg))) return false; /* corrupted: pops will report it */
  }
  return false;
}
static bool debug_block_ok(zc_page_t *pg, const void *p) {
  if (on_list(pg, pg->free, p) || on_list(pg, pg->local_free, p) ||
      on_list(pg, ZC_TF_PTR(atomic_load(&zc_page_remote(pg)->thread_free)), p)) {
    zc_bad_free(p, "double free of");
    return false;
  }
  return true;
}
#define ZC_DEBUG_CHECK(pg, p) \
  do { if (!debug_block_ok(pg, p)) return; } while (0)
#else
#define ZC_DEBUG_CHECK(pg, p) ((void)0)
#endif

/* Push a chain of count blocks on the thread_free stack of the page whose remote line is r: one
 * compare-and-swap. Release: the owner's acquiring exchange (take_thread_free) then sees the chain's links
 * and tags; seq_cst, for the purger's wake-up protocol (large.h): the caller's read of the purger's state
 * after it, and the purger's sweep after its settle, cannot both miss the other (on x86-64 the same lock
 * cmpxchg as a release one). Only the remote line is touched (its key encodes the tail's link), never the
 * descriptor. */
static void push_chain(zc_page_remote_t *r, zc_block_t *head, zc_block_t *tail, uint64_t count) {
  uintptr_t key = __atomic_load_n(&r->key, __ATOMIC_RELAXED);
  uintptr_t old = atomic_load_explicit(&r->thread_free, memory_order_relaxed), nv;
  /* The new word is the old one with its pointer replaced by head and count added to the count above it
   * (mod 2^16, as ZC_TF_COUNT's truncation): old - ptr(old) + ((count << 48) | head). old - ptr(old) has its
   * low 48 bits clear and head is below 2^48, so the | is a + and (count << 48) + head is computed once
   * outside the loop (3 instructions fewer per try than shifting the count down and up and or-ing head in). */
  uintptr_t add = ((uintptr_t)count << ZC_TF_SHIFT) + (uintptr_t)head;
  do {
    uintptr_t ptr = (uintptr_t)ZC_TF_PTR(old);
    tail->link = ptr ^ key;
    nv = (old - ptr) + add;
  } while (!atomic_compare_exchange_weak_explicit(&r->thread_free, &old, nv, memory_order_seq_cst,
                                                   memory_order_relaxed));
}

#ifndef ZC_PAIR_STATS
#define ZC_PAIR_STATS 1 /* 0 only to measure what the counting costs (bench/prodcons under callgrind) */
#endif

/* The entry of h's pair table for owner (found or made; the shared "other" entry for no owner or a full
 * table), kept as h's last one: the next chain of the same owner finds it with one compare. */
static zc_noinline zc_pair_slot_t *pair_select(zc_heap_t *h, zc_heap_t *owner) {
  zc_pair_slot_t *e = &h->pair_other;
  if (owner != NULL) {
    uintptr_t k = (uintptr_t)owner / sizeof(zc_heap_t);
    for (unsigned i = 0; i < ZC_PAIR_SLOTS; i++) {
      zc_pair_slot_t *x = &h->pairs[(k + i) & (ZC_PAIR_SLOTS - 1)];
      zc_heap_t *o = x->owner;
      if (o == owner) {
        e = x;
        break;
      }
      if (o == NULL) {
        __atomic_store_n(&x->owner, owner, __ATOMIC_RELAXED);
        e = x;
        break;
      }
    }
  }
  h->pair_owner = owner;
  h->pair_slot = e;
  return e;
}

/* Remote-free totals of h (with pair stats, the sums of its pair table; stats walks, any thread). */
void zc_heap_remote_totals(zc_heap_t *h, uint64_t *frees, uint64_t *batches) {
  *frees = __atomic_load_n(&h->stat_remote_frees, __ATOMIC_RELAXED);
  *batches = __atomic_load_n(&h->stat_remote_batches, __ATOMIC_RELAXED);
  for (unsigned i = 0; ZC_PAIR_STATS && i <= ZC_PAIR_SLOTS; i++) {
    zc_pair_slot_t *x = i < ZC_PAIR_SLOTS ? &h->pairs[i] : &h->pair_other;
    *frees += __atomic_load_n(&x->blocks, __ATOMIC_RELAXED);
    *batches += __atomic_load_n(&x->batches, __ATOMIC_RELAXED);
  }
}

/* Hand a chain of count blocks (head ... tail) of the page whose remote line is r over (one
 * compare-and-swap) and count it in e, the freer's pair entry for the page's owner. The chain comes by
 * value, so a free that gives the chain's slot to another page calls this last, as a tail call: the
 * remote free then runs without a stack frame of its own. */
static zc_noinline void hand_over_chain(zc_heap_t *h, zc_page_remote_t *r, zc_block_t *head, zc_block_t *tail,
                                        uint64_t count, zc_pair_slot_t *e) {
  /* Read before the push: once the chain is handed over, the owner may empty the page and set it up anew
   * for another class (a data race on block_size, found by TSan). */
  uint64_t bytes = (uint64_t)count * __atomic_load_n(&r->block_size, __ATOMIC_RELAXED);
  /* The counts go first, so that nothing is live across the compare-and-swap loop but what it uses: the
   * function then saves no register (3 pushes and 3 pops fewer per hand-over). */
  if (ZC_PAIR_STATS) { /* the pair's counts, which are also the totals (zc_heap_remote_totals) */
    zc_stat_inc(&e->blocks, count);
    zc_stat_inc(&e->bytes, bytes);
    zc_stat_inc(&e->batches, 1);
  } else {
    (void)e;
    zc_stat_inc(&h->stat_remote_frees, count);
    zc_stat_inc(&h->stat_remote_batches, 1);
  }
  if (ZC_REMOTE_SLOTS > 1) h->pending_count -= count;
  push_chain(r, head, tail, count);
  /* The owner may be idle for good: the purger must run to find the pages these frees emptied (reclaim.c).
   * zc_purger_wake is itself one load and a return while the purger runs, and a futex wake if it sleeps as
   * idle; it never starts the thread from here: a malloc slow path started it once a second heap existed
   * (page_for_class). Last, with h's pending state whole again: while the purger runs (the common case),
   * one compare of its state, read inline (large.h), and no call; else a tail call. The wake call on every
   * hand-over was 9 instructions (the jump through zc_purger_wake and zc_background_wake's stack frame).
   * The push (seq_cst) comes before this read (seq_cst): large.h, the wake-up protocol. */
  if (zc_likely(zc_background_running())) return;
  zc_purger_wake();
}

/* The pair entry chain b is counted in. With one slot it is always h's last selected one: a chain for another
 * owner hands the pending chain over before it selects its entry (free_remote_new_owner), so the slot keeps
 * no entry of its own (a load and a store fewer per chain begun). */
zc_inline zc_pair_slot_t *chain_pair(zc_heap_t *h, const zc_remote_batch_t *b) {
  return ZC_REMOTE_SLOTS == 1 ? h->pair_slot : b->pair;
}

/* Empty b's slot and hand its chain over (the slot first: see the end of hand_over_chain). */
static zc_noinline void flush_slot(zc_heap_t *h, zc_remote_batch_t *b) {
  zc_remote_batch_t old = *b;
  if (ZC_REMOTE_SLOTS > 1) h->pending_mask &= ~((uint32_t)1 << (b - h->pending));
  b->line = NULL;
  b->head = b->tail = NULL;
  b->count = 0;
  hand_over_chain(h, old.line, old.head, old.tail, old.count, chain_pair(h, &old));
}

void zc_remote_flush(zc_heap_t *h) {
  if (zc_pending_blocks(h) == 0) return;
  if (ZC_REMOTE_SLOTS == 1) { /* the one slot holds every pending block: no mask is kept */
    flush_slot(h, &h->pending[0]);
    return;
  }
  for (uint32_t m = h->pending_mask; m != 0; m &= m - 1) flush_slot(h, &h->pending[__builtin_ctz(m)]);
}

static zc_noinline void free_remote_no_heap(zc_heap_t *owner, zc_page_remote_t *r, void *p);
static zc_noinline void free_remote_new_owner(zc_heap_t *h, zc_heap_t *owner, zc_page_remote_t *r, void *p);

/* A free of another thread's block (p passed remote_block_ok); h is the calling thread's heap, owner the
 * page's (as the caller read it; NULL if abandoned), r the page's remote line, whose tag and key it uses:
 * the page descriptor, whose first line the owner's malloc writes, is not touched. Every call it makes is
 * its last act (a tail call), so that the common paths need no stack frame. */
zc_inline void free_remote(zc_heap_t *h, zc_heap_t *owner, zc_page_remote_t *r, void *p) {
  /* A thread without a heap (zc_heap_empty): with pair stats, found on the new-chain path below (its slot is
   * empty, and its pair_owner, itself, is no page's owner), so the common paths do not test for it. */
  if (!ZC_PAIR_STATS && zc_unlikely(h == &zc_heap_empty)) return free_remote_no_heap(owner, r, p);
  zc_block_t *blk = p;
  uintptr_t tag = __atomic_load_n(&r->tag, __ATOMIC_RELAXED);
  uintptr_t lkey = __atomic_load_n(&r->key, __ATOMIC_RELAXED);
  if (zc_unlikely(blk->tag == tag)) /* on a list of its page, or in some freer's pending chain */
    return zc_bad_free(p, "double free (from another thread) of");
  /* Direct-mapped by page (remote lines are 64 bytes apart): producers' pages of several size classes
   * interleave in a consumer's frees. */
  uintptr_t key = (uintptr_t)r;
  unsigned slot = (unsigned)((key >> 6) ^ (key >> ZC_SEGMENT_SHIFT)) & (ZC_REMOTE_SLOTS - 1);
  zc_remote_batch_t *b = &h->pending[slot];
  if (b->line == r) {
    blk->tag = tag;
    blk->link = (uintptr_t)b->head ^ lkey;
    b->head = blk;
    if (ZC_REMOTE_SLOTS > 1) h->pending_count++;
    if (zc_unlikely(++b->count >= ZC_REMOTE_BATCH)) return flush_slot(h, b);
    if (ZC_REMOTE_SLOTS > 1 && zc_unlikely(h->pending_count >= ZC_REMOTE_PENDING_MAX)) return zc_remote_flush(h);
    return;
  }
  /* A new chain: its pair entry is the last one used, or pair_select finds it (out of line) */
  if (ZC_PAIR_STATS && zc_unlikely(owner != h->pair_owner)) return free_remote_new_owner(h, owner, r, p);
  blk->tag = tag;
  blk->link = lkey; /* NULL, encoded */
  zc_remote_batch_t old = *b; /* another page's chain may hold the slot: handed over last */
  b->line = r;
  b->head = b->tail = blk;
  b->count = 1;
  if (ZC_REMOTE_SLOTS > 1) b->pair = h->pair_slot;
  if (ZC_REMOTE_SLOTS > 1) h->pending_mask |= (uint32_t)1 << slot;
  if (ZC_REMOTE_SLOTS > 1) h->pending_count++;
  if (old.line != NULL) /* the slot held a chain (line is NULL iff count is 0: flush_slot) */
    return hand_over_chain(h, old.line, old.head, old.tail, old.count, chain_pair(h, &old));
  if (ZC_REMOTE_SLOTS > 1 && zc_unlikely(h->pending_count >= ZC_REMOTE_PENDING_MAX)) return zc_remote_flush(h);
}

/* The first remote free of a thread without a heap: it needs one for its pending chains; a thread that is
 * exiting (a late TLS destructor) or out of memory hands the block over alone instead. */
static zc_noinline void free_remote_no_heap(zc_heap_t *owner, zc_page_remote_t *r, void *p) {
  /* the heap's setup may malloc (pthread_setspecific's second-level array): that malloc must not start the
   * purger, this is a free */
  zc_background_no_start++;
  zc_heap_t *h = zc_thread_exiting() ? NULL : zc_heap_init_thread();
  zc_background_no_start--;
  if (h != NULL) return free_remote(h, owner, r, p);
  zc_block_t *blk = p;
  uintptr_t tag = __atomic_load_n(&r->tag, __ATOMIC_RELAXED);
  if (zc_unlikely(blk->tag == tag)) return zc_bad_free(p, "double free (from another thread) of");
  blk->tag = tag;
  push_chain(r, blk, blk, 1);
  if (!zc_background_running()) zc_purger_wake(); /* as hand_over_chain: the block may complete its page */
}

/* A chain begins for another owner than the last one's (or the thread has no heap yet): select its pair
 * entry, then free as usual. */
static zc_noinline void free_remote_new_owner(zc_heap_t *h, zc_heap_t *owner, zc_page_remote_t *r, void *p) {
  if (h == &zc_heap_empty) return free_remote_no_heap(owner, r, p); /* see free_remote */
  /* With one slot the pending chain is counted in the entry selected last (chain_pair): hand it over first. */
  if (ZC_REMOTE_SLOTS == 1 && h->pending[0].count != 0) flush_slot(h, &h->pending[0]);
  pair_select(h, owner);
  free_remote(h, owner, r, p);
}

void zc_page_retire(zc_heap_t *h, zc_page_t *pg) {
  zc_lock(&h->lock); /* the queue and the current page change under h->lock (reclaim.c) */
  zc_queue_remove(&h->queues[pg->class_idx], pg);
  zc_heap_queue_changed(h, pg->class_idx);
  zc_segment_page_free_locked(h, pg, false);
  zc_unlock(&h->lock);
  /* The page is dirty now: the purger must run to honour the delay if this thread goes idle. Woken here if
   * it sleeps as idle; never started inside free (see zc_purger_wake): asked for, the next malloc slow path
   * starts it (a no-op with ZCMEM_BACKGROUND=0 or once it runs). */
  if (zc_unlikely(!zc_purger_active())) zc_purger_wake();
}

/* The checks every free of a small block passes, whoever frees: p is in a page in use, a carved block start
 * (range and grid). The limit is read once (the owner may be extending the page). False if reported.
 * A pointer into the segment header (below page 0's start) needs no compare of its own, as on the owner's
 * fast path: its 32-bit offset from the start wraps to at least 2^32 - ZC_SEGMENT_HEADER, whose quotient by
 * any block size is far above the capacity, so the grid test (exact for every 32-bit offset, see
 * zc_block_ok) rejects it (tests/core/badfree: segment-header, remote-header, header-grid). */
zc_inline bool block_checks(zc_page_t *pg, const void *p) {
  uint8_t state = __atomic_load_n(&pg->state, __ATOMIC_RELAXED);
  if (state == ZC_PAGE_BROKEN) return false; /* reported when it broke; its blocks are never reused */
  if (state != ZC_PAGE_IN_USE) {
    zc_bad_free(p, "invalid free: no block was handed out at");
    return false;
  }
  uint64_t limit = zc_page_limit(pg);
  if (!zc_block_ok(pg, p, limit)) {
    uintptr_t off = (uintptr_t)p - (uintptr_t)pg->start;
    zc_bad_free(p, off < __atomic_load_n(&pg->span, __ATOMIC_RELAXED)
                       ? "invalid free: not the start of a block (interior or misaligned pointer)"
                       : "invalid free: no block was handed out at");
    return false;
  }
  return true;
}

/* The checks of another thread's free (block_checks' equal), from the page's remote line r alone: p is a
 * carved block start of a page in use. The page's state is not read: the remote line's limit is 0 while
 * the page is not in use (zc_page_unpublish when it becomes free, zc_page_break when it breaks: types.h),
 * so the grid test fails for every pointer into a free or broken page, and only then is the state read,
 * out of line, for the report (remote_bad). The descriptor's second line and the page's address are then
 * left alone on the remote path: 9 instructions fewer per remote free (bench/prodcons under callgrind). */
zc_inline bool remote_block_ok(zc_page_remote_t *r, const void *p) {
#if defined(__x86_64__) && defined(__GNUC__) && (defined(__clang__) ? __clang_major__ >= 9 : __GNUC__ >= 6)
  /* The same test with each field read once by the instruction that uses it: C's relaxed atomic loads are
   * not folded into the subtract, multiply and compare (3 loads into registers first: bench/prodcons under
   * callgrind, 3 instructions per remote free). subl reads start's low 32 bits, which is all the 32-bit
   * offset needs; a 32-bit operation zero-extends, as the C version's cast. */
  uint64_t x = (uint32_t)(uintptr_t)p;
  bool below;
  __asm__("subl %[start], %k[x]\n\timulq %[grid], %[x]\n\tcmpq %[limit], %[x]"
          : [x] "+r"(x), "=@ccb"(below)
          : [start] "m"(r->start), [grid] "m"(r->grid), [limit] "m"(r->limit)
          : "cc");
  return below;
#else
  uint64_t limit = __atomic_load_n(&r->limit, __ATOMIC_RELAXED);
  uint8_t *start = __atomic_load_n(&r->start, __ATOMIC_RELAXED);
  uint32_t off = (uint32_t)((uintptr_t)p - (uintptr_t)start);
  return (uint64_t)off * __atomic_load_n(&r->grid, __ATOMIC_RELAXED) < limit;
#endif
}

/* p failed remote_block_ok: the report block_checks would give (none for a broken page: reported when it
 * broke, and its blocks are never reused). */
static zc_noinline zc_cold void remote_bad(zc_page_t *pg, zc_page_remote_t *r, const void *p) {
  uint8_t state = __atomic_load_n(&pg->state, __ATOMIC_RELAXED);
  if (state == ZC_PAGE_BROKEN) return;
  uintptr_t off = (uintptr_t)p - (uintptr_t)__atomic_load_n(&r->start, __ATOMIC_RELAXED);
  zc_bad_free(p, state == ZC_PAGE_IN_USE && off < __atomic_load_n(&pg->span, __ATOMIC_RELAXED)
                     ? "invalid free: not the start of a block (interior or misaligned pointer)"
                     : "invalid free: no block was handed out at");
}

/* The owner's free, every check (the fast path's and more): whatever the fast path does not handle. */
static zc_noinline void free_local_checked(void *p, zc_page_t *pg) {
  if (!block_checks(pg, p)) return;
  zc_block_t *blk = p;
  if (zc_unlikely(blk->tag == pg->tag || p == pg->local_free || p == pg->free)) {
    zc_bad_free(p, "double free of");
    return;
  }
  if (zc_unlikely(pg->used <= pg->held)) {
    zc_bad_free(p, "double free (the page has no block in use) of");
    return;
  }
  ZC_DEBUG_CHECK(pg, p);
  blk->link = zc_link_encode(pg, pg->local_free);
  blk->tag = pg->tag;
  pg->local_free = blk;
  uint32_t used = pg->used - 1; /* a relaxed atomic store: the purger reads it (see used_dec_above_zero) */
  __atomic_store_n(&pg->used, used, __ATOMIC_RELAXED);
  if (used == 0) zc_page_retire(zc_heap_get(), pg);
}

/* The fast path took one off used before it found the count too low: give it back, then check it all. */
static zc_noinline void free_local_undo(void *p, zc_page_t *pg) {
  __atomic_store_n(&pg->used, pg->used + 1, __ATOMIC_RELAXED);
  free_local_checked(p, pg);
}

/* --*used > 0 as a signed count, with the decrement's own flags on x86-64 (GCC and clang otherwise load,
 * decrement, store and test: 5 instructions instead of 2). Only the owner writes used outside h->lock, but the
 * purger reads it (src/reclaim.c, all_back, on a page that is not current): the write is a relaxed atomic
 * load and store, not an atomic read-modify-write. The one `subl` on memory is that (an aligned 32-bit store
 * is single-copy atomic on x86-64, and the compiler sees no C access); elsewhere, and under TSan, which does
 * not see inside the asm, the same as C atomics, so that TSan checks every access to used. */
zc_inline bool used_dec_above_zero(uint32_t *used) {
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__) && \
    ((defined(__clang__) && __clang_major__ >= 11) || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11))
  __asm__ goto("subl $1, %0\n\tjle %l[low]" : "+m"(*used) : : "cc" : low);
  return true;
low:
  return false;
#else
  uint32_t u = __atomic_load_n(used, __ATOMIC_RELAXED) - 1;
  __atomic_store_n(used, u, __ATOMIC_RELAXED);
  return (int32_t)u > 0;
#endif
}

/* No SLP vectorising in GCC: it would pack the two stores into a block (link, tag) through vector
 * registers, 3 more instructions. */
#if defined(__GNUC__) && !defined(__clang__)
#define ZC_NO_SLP __attribute__((optimize("no-tree-slp-vectorize")))
#else
#define ZC_NO_SLP
#endif
/* The owner's free of a block of pg (a page of one of its segments, small or medium): p must be a carved
 * block start (block_ok: the caller's one multiply and compare, the descriptor's 32-bit test for a small
 * page, the remote line's 64-bit one otherwise), not carry the free tag (a double free), and not be the
 * last block in use of its page nor a block of a page with none in use (used > 1). Everything else goes out
 * of line, to every check (and so does every free in a debug build, for its list walk). */
zc_inline void free_local(zc_page_t *pg, void *p, bool block_ok) {
  zc_block_t *blk = p;
  uintptr_t tag = pg->tag;
  if (zc_likely(!ZC_DEBUG && block_ok && blk->tag != tag)) {
    /* used > 1, tested as used - 1 > 0 on the decremented count (one sub and one branch; the slow path
     * gives the count back). used never reaches 2^31: a page holds at most 4096 blocks. */
    if (zc_unlikely(!used_dec_above_zero(&pg->used))) {
      free_local_undo(p, pg);
      return;
    }
    blk->link = zc_link_encode(pg, pg->local_free);
    blk->tag = tag;
    pg->local_free = blk;
    return;
  }
  free_local_checked(p, pg);
}

/* A free by h's thread of a block of s, a segment no heap owns: its owner exited and no thread adopted it
 * yet (or the segment is cached, empty: then every pointer into it fails the check). Once the block passed
 * the remote checks, h adopts s (segment.c: bounded, and never a fork child's untrusted orphan), and the
 * free is the owner's free with all its checks; the later frees of the dead thread's blocks that h makes
 * are local and its mallocs reuse them, where each was a remote free into a segment nobody allocated from
 * until a refill adopted it (bench/rounds: every free is of an exited thread's block). Else a remote free. */
static zc_noinline void free_abandoned(zc_heap_t *h, zc_segment_t *s, zc_page_t *pg, void *p) {
  zc_page_remote_t *r = zc_page_remote(pg);
  if (zc_unlikely(!remote_block_ok(r, p))) return remote_bad(pg, r, p);
  if (h == &zc_heap_empty && !zc_thread_exiting()) { /* a thread's first call: it needs a heap either way */
    zc_background_no_start++; /* as in free_remote_no_heap: this is a free, it starts no thread */
    zc_heap_t *made = zc_heap_init_thread();
    zc_background_no_start--;
    if (made != NULL) h = made;
  }
  if (h != &zc_heap_empty && zc_segment_adopt_on_free(h, s)) {
    free_local(pg, p, true); /* p passed remote_block_ok above: the 64-bit grid test */
    return;
  }
  free_remote(h, NULL, r, p);
}

/* Everything the fast path does not handle: NULL, large regions, foreign pointers, remote frees, medium
 * segments, a thread whose heap has no map tag. */
ZC_NO_SLP static zc_noinline void free_slow(void *p, uint16_t map) {
  if (p == NULL) return;
  if (!zc_map_is_segment(map)) {
    uint8_t kind;
    void *hdr = zc_segmap_header(p, &kind);
    if (hdr != NULL && kind == ZC_MAP_LARGE) zc_large_free(p, hdr);
    else zc_bad_free(p, "invalid free: zcmem did not allocate");
    return;
  }
  zc_segment_t *s = zc_segment_of(p);
  zc_page_t *pg = zc_page_of(s, p);
  zc_heap_t *h = zc_heap_get();
  zc_heap_t *owner = atomic_load_explicit(&s->heap, memory_order_relaxed);
  if (owner == h) { /* a medium segment, or a heap without a map tag: the 64-bit test */
    free_local(pg, p, remote_block_ok(zc_page_remote(pg), p));
    return;
  }
  if (zc_unlikely(owner == NULL)) return free_abandoned(h, s, pg, p);
  /* Another thread's page: what the checks read is fixed while a block of the page is live. */
  zc_page_remote_t *r = zc_page_remote(pg);
  if (zc_likely(remote_block_ok(r, p))) return free_remote(h, owner, r, p);
  remote_bad(pg, r, p);
}

void zc_free_generic(void *p) { free_slow(p, zc_segmap_get(p)); }

/* The free of a block of another heap's small segment (the map holds that heap's tag): the consumer's free
 * in a producer/consumer pair. The remote line is a constant shift away; the checks are remote_block_ok. */
static zc_noinline void free_other_small(void *p, uintptr_t i) {
  zc_segment_t *s = (zc_segment_t *)(i << ZC_SEGMENT_SHIFT);
  zc_page_remote_t *r = zc_small_remote_of(s, p);
  if (zc_likely(remote_block_ok(r, p)))
    return free_remote(zc_heap_get(), atomic_load_explicit(&s->heap, memory_order_relaxed), r, p);
  remote_bad(zc_small_page_of(s, p), r, p);
}

/* A free whose map entry is a medium owner tag: the calling thread's own medium segment (the entry is its
 * tag plus the bias: 32-bit, so that a thread with no tag, ZC_MAP_TAG_NONE, matches nothing) takes the
 * owner's free with the page found by a constant shift; another heap's, the generic path. Before, every
 * medium free took free_slow (the header's owner and page shift read, the thread's heap compared): bench/
 * fastpath size=16384 under callgrind, free 51 -> 44 instructions (40 with the medium test first in zc_free;
 * the remote free's test goes first: another heap's small block pays one subtract, compare and branch). */
ZC_NO_SLP static zc_noinline void free_medium_tagged(void *p, uintptr_t i, uint16_t map) {
  if (zc_likely(map == (uint32_t)zc_owner_tag_tls + ZC_MAP_MEDIUM_BIAS)) {
    zc_page_t *pg = zc_medium_page_of((zc_segment_t *)(i << ZC_SEGMENT_SHIFT), p);
    free_local(pg, p, remote_block_ok(zc_page_remote(pg), p)); /* the 64-bit test: 32 bits are not exact here */
    return;
  }
  free_slow(p, map);
}

/* The owner's free of a small block: the map's entry is this thread's tag (zcmem's, a small segment, and
 * ours: one compare), the page is found by a constant shift, then free_local. */
ZC_NO_SLP ZC_API void zc_free(void *p) {
  uintptr_t i = (uintptr_t)p >> ZC_SEGMENT_SHIFT; /* zc_segmap_get, with the index kept for the segment */
#if defined(__x86_64__) && defined(__GNUC__)
  /* i in the second argument register and p left in the first, where free_other_small takes them: GCC
   * otherwise shifts p's register and moves both back for that tail call (2 instructions per remote free) */
  __asm__("" : "+S"(i));
#endif
  uint16_t map = zc_likely(i < ZC_SEGMAP_ENTRIES) ? __atomic_load_n(&zc_segmap[i], __ATOMIC_RELAXED)
                                                  : (uint16_t)ZC_MAP_NONE;
  if (zc_likely(map == zc_owner_tag_tls && !ZC_DEBUG)) {
    __asm__("" : "+r"(i)); /* the segment is i << 22 (one shift), not p & ~mask (a copy and an and) */
    zc_page_t *pg = zc_small_page_of((zc_segment_t *)(i << ZC_SEGMENT_SHIFT), p);
    free_local(pg, p, zc_block_ok_small(pg, p));
    return;
  }
  /* another heap's small segment (ours would have matched): one subtract, compare and branch */
  if ((uint16_t)(map - ZC_MAP_OWNED) < ZC_MAP_MEDIUM_BIAS && !ZC_DEBUG) {
    free_other_small(p, i);
    return;
  }
  if (map >= ZC_MAP_OWNED + ZC_MAP_MEDIUM_BIAS && !ZC_DEBUG) { /* a medium segment: ours or another heap's */
    free_medium_tagged(p, i, map);
    return;
  }
#if ZC_DEBUG /* every free comes here: a purger start from any free path is reported (large_pool.c) */
  zc_background_in_free++;
  free_slow(p, map);
  zc_background_in_free--;
#else
  free_slow(p, map);
#endif
}

/* The usable size of p, or 0 if p is not inside a block zcmem handed out (never reports); *freed: p is the
 * start of a small or medium block that is free (it carries its page's free tag: on one of the page's lists
 * or in a freer's pending chain), which a caller reports as a double free; *inside: p lies inside a small or
 * medium block, past its start (the size is then what is left from p). Only reads: a freed block is left as
 * it is. */
static size_t usable_quiet(const void *p, bool *freed, bool *inside) {
  *freed = false;
  *inside = false;
  if (p == NULL) return 0;
  uint16_t map = zc_segmap_get(p);
  if (zc_map_is_segment(map)) {
    zc_segment_t *s = zc_segment_of(p);
    zc_page_t *pg = zc_page_of(s, p);
    if (__atomic_load_n(&pg->state, __ATOMIC_RELAXED) == ZC_PAGE_IN_USE && (const uint8_t *)p >= pg->start) {
      size_t off = (size_t)((const uint8_t *)p - pg->start);
      if (off >= __atomic_load_n(&pg->span, __ATOMIC_RELAXED)) return 0; /* never carved: never handed out */
      size_t in = off % pg->block_size;
      if (in == 0 && ((const zc_block_t *)p)->tag == __atomic_load_n(&pg->tag, __ATOMIC_RELAXED)) {
        *freed = true;
        return 0;
      }
      *inside = in != 0;
      return pg->block_size - in;
    }
    return 0;
  }
  uint8_t kind;
  void *hdr = zc_segmap_header(p, &kind);
  /* 0: freed, interior, or its header or canary overwritten */
  return hdr != NULL && kind == ZC_MAP_LARGE ? zc_large_usable(p, hdr) : 0;
}

/* Also realloc's first step: a 0 it reports makes realloc fail with EINVAL, the block untouched. */
ZC_API size_t zc_usable_size(const void *p) {
  if (p == NULL) return 0;
  bool freed, inside;
  size_t n = usable_quiet(p, &freed, &inside);
  if (zc_likely(n != 0)) return n;
  zc_bad_free(p, freed ? "usable size or realloc of a freed block (a double free or a use after free):"
                       : "usable size of a pointer zcmem did not allocate:");
  return 0;
}

/* realloc's first step: the usable size of the live block p starts, or 0 after a report. A pointer inside a
 * small or medium block is refused here too: realloc copied from it into a new block and only its free of
 * it reported, so with ZCMEM_ABORT_ON_ERROR=0 the caller got a block although the old one stayed live
 * (core_realloc_bad). p is not NULL. */
size_t zc_realloc_usable(const void *p) {
  bool freed, inside;
  size_t n = usable_quiet(p, &freed, &inside);
  if (zc_likely(n != 0 && !inside)) return n;
  zc_bad_free(p, freed ? "usable size or realloc of a freed block (a double free or a use after free):"
                 : inside ? "realloc of a pointer that is not the start of a block (interior or misaligned):"
                          : "usable size of a pointer zcmem did not allocate:");
  return 0;
}

ZC_API size_t zc_owned_size(const void *p) {
  bool freed, inside;
  return usable_quiet(p, &freed, &inside);
}

ZC_API void zc_free_sized(void *p, size_t size) {
  (void)size;
  zc_free(p);
}

ZC_API void zc_free_aligned_sized(void *p, size_t align, size_t size) {
  (void)align;
  (void)size;
  zc_free(p);
}

/* The override (libzcmem.so, libzcmem.a): the standard names are aliases of the zc_ functions above. */
#if ZC_OVERRIDE
void free(void *p) ZC_ALIAS(zc_free);
void cfree(void *p) ZC_ALIAS(zc_free);
void free_sized(void *p, size_t n) ZC_ALIAS(zc_free_sized);
void free_aligned_sized(void *p, size_t a, size_t n) ZC_ALIAS(zc_free_aligned_sized);
size_t malloc_usable_size(void *p) ZC_ALIAS(zc_usable_size);
void __libc_free(void *p) ZC_ALIAS(zc_free);
void __libc_cfree(void *p) ZC_ALIAS(zc_free);
#endif
