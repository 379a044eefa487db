/* Layer 9, zero-copy channel: messages above the largest size class (64 KiB), the pool of free pages, and
 * resizing a loan.
 *
 * A large message takes a *run*: contiguous whole 512 KiB pages of one data segment, found first-fit over
 * the segments' page tables (only on this slow path: a message of more than 64 KiB is written and read
 * in full anyway, so a scan of a few hundred page entries is noise beside it). When no segment has the
 * room, the producer first takes in what the consumer returned, then gives the empty pages its classes
 * keep back to the pool, and only then adds a segment sized for the message (segments double up to
 * 256 MiB; one made for a larger message is as large as the message, up to 1 GiB, within max_bytes).
 * A run wastes less than one page (512 KiB) at its end; zc_chan_loan_resize gives whole pages back.
 * The consumer's check of a large descriptor: it starts at a page boundary and lies inside one segment.
 *
 * Invariants: a page is free (class 0) either in the pool (below its segment's next_page) or never used
 * (at or above next_page); every page of a run is below next_page; the first page of a run holds its
 * length (`carved`) and its slot 0 holds the run's state and generation, like any slot.
 * Lock: every function here runs with ch->lock held, except the public ones, which take it.
 */
#include "chan_internal.h"
#include "options.h"

#include <errno.h>
#include <string.h>

#define PAGE CHAN_PAGE_SIZE
#define SHIFT CHAN_PAGE_SHIFT

/* ---- the pool of free pages (doubly linked through the page table; head ch->free_pages) ---- */
void chan_pool_push(zc_chan_t *ch, uint32_t pid) {
  chan_page_t *p = chan_page_of(ch, pid);
  uint32_t head = ch->free_pages;
  p->prev = CHAN_NONE;
  p->next = head;
  p->listed = 0;
  if (head != CHAN_NONE) chan_page_of(ch, head)->prev = pid;
  ch->free_pages = pid;
}

static void pool_remove(zc_chan_t *ch, uint32_t pid) {
  chan_page_t *p = chan_page_of(ch, pid);
  if (p->prev != CHAN_NONE) chan_page_of(ch, p->prev)->next = p->next;
  else ch->free_pages = p->next;
  if (p->next != CHAN_NONE) chan_page_of(ch, p->next)->prev = p->prev;
  p->next = p->prev = CHAN_NONE;
}

uint32_t chan_pool_pop(zc_chan_t *ch) {
  uint32_t pid = ch->free_pages;
  if (pid != CHAN_NONE) pool_remove(ch, pid);
  return pid;
}

static inline void page_clear(chan_page_t *p, unsigned cls) {
  p->cls = (uint8_t)cls;
  p->live = 0;
  p->carved = 0;
  p->free = CHAN_NONE;
  p->next = p->prev = CHAN_NONE;
}

/* ---- runs ---- */

/* The lowest start of k free pages in a row in segment si, or CHAN_NONE. */
static uint32_t find_fit(zc_chan_t *ch, unsigned si, uint32_t k) {
  chan_seg_t *s = &ch->seg[si];
  if (k > s->npages) return CHAN_NONE;
  uint32_t row = 0;
  for (uint32_t pg = 0; pg < s->npages; pg++) {
    if (pg >= s->next_page) /* every page from here on is free */
      return s->npages - pg + row >= k ? pg - row : CHAN_NONE;
    row = s->pages[pg].cls == 0 ? row + 1 : 0;
    if (row == k) return pg + 1 - k;
  }
  return CHAN_NONE;
}

/* Mark pages [from, to) of segment si as body pages of a run (they are free). */
static void take_pages(zc_chan_t *ch, unsigned si, uint32_t from, uint32_t to) {
  chan_seg_t *s = &ch->seg[si];
  for (uint32_t pg = s->next_page; pg < from; pg++) chan_pool_push(ch, chan_page_id(si, pg)); /* skipped */
  if (from > s->next_page) s->next_page = from;
  for (uint32_t pg = from; pg < to; pg++) {
    if (pg < s->next_page) pool_remove(ch, chan_page_id(si, pg));
    page_clear(&s->pages[pg], CHAN_RUN_BODY);
  }
  if (to > s->next_page) s->next_page = to;
}

static uint32_t take_run(zc_chan_t *ch, unsigned si, uint32_t start, uint32_t k) {
  take_pages(ch, si, start, start + k);
  chan_page_t *h = &ch->seg[si].pages[start];
  h->cls = CHAN_RUN;
  h->carved = k;
  h->live = 1;
  ch->used_bytes += (size_t)k << SHIFT;
  return chan_slot_id(chan_page_id(si, start), 0);
}

/* Give every empty page a class keeps back to the pool: a run needs pages in a row. */
static void release_empty_pages(zc_chan_t *ch) {
  for (unsigned si = 0; si < ch->nseg; si++) {
    chan_seg_t *s = &ch->seg[si];
    for (uint32_t pg = 0; pg < s->next_page; pg++) {
      chan_page_t *p = &s->pages[pg];
      if (p->cls == 0 || p->cls >= CHAN_RUN || p->live != 0) continue;
      uint32_t pid = chan_page_id(si, pg);
      if (p->listed) { /* unlink from its class's list of pages with room */
        if (p->prev != CHAN_NONE) chan_page_of(ch, p->prev)->next = p->next;
        else ch->cls[p->cls].avail = p->next;
        if (p->next != CHAN_NONE) chan_page_of(ch, p->next)->prev = p->prev;
      }
      page_clear(p, 0);
      chan_pool_push(ch, pid);
    }
  }
}

uint32_t chan_run_alloc(zc_chan_t *ch, size_t n) {
  uint32_t k = (uint32_t)((n + PAGE - 1) >> SHIFT);
  for (int pass = 0;; pass++) {
    for (unsigned si = 0; si < ch->nseg; si++) {
      uint32_t at = find_fit(ch, si, k);
      if (at != CHAN_NONE) return take_run(ch, si, at, k);
    }
    if (pass == 0) {
      uint64_t taken = ch->p_ret_tail;
      if (chan_drain_returns(ch) != 0) return CHAN_NONE;
      if (ch->p_ret_tail == taken) pass++; /* nothing came back: no need to look again */
    }
    if (pass == 1) release_empty_pages(ch);
    if (pass >= 2) break;
  }
  if (chan_producer_grow(ch, (size_t)k << SHIFT) != 0) return CHAN_NONE; /* ENOSPC at the cap */
  return take_run(ch, ch->nseg - 1, 0, k);
}

/* Pages [pg + k, pg + cur) of the run back to the pool (zeroed first under zero_freed). */
static void trim_pages(zc_chan_t *ch, unsigned si, uint32_t pg, uint32_t k, uint32_t cur) {
  chan_seg_t *s = &ch->seg[si];
  if (__builtin_expect(ch->cfg.zero_freed != 0, 0))
    memset(s->base + ((size_t)(pg + k) << SHIFT), 0, (size_t)(cur - k) << SHIFT);
  for (uint32_t i = cur; i-- > k;) { /* backwards: the lowest page ends at the head of the pool */
    page_clear(&s->pages[pg + i], 0);
    chan_pool_push(ch, chan_page_id(si, pg + i));
  }
  ch->used_bytes -= (size_t)(cur - k) << SHIFT;
}

void chan_run_free(zc_chan_t *ch, uint32_t id) {
  uint32_t pid = chan_sid_page(id), pg = chan_pid_page(pid);
  unsigned si = chan_pid_seg(pid);
  chan_slot_t *sl = chan_slot_of(ch, id);
  sl->gen_state = (sl->gen_state & ~3u) | SLOT_FREE;
  trim_pages(ch, si, pg, 0, chan_page_of(ch, pid)->carved);
}

/* Make the loaned run id k pages long where it is: trimming always works, growing only if the pages
 * after it are free. */
static bool run_resize_in_place(zc_chan_t *ch, uint32_t id, uint32_t k) {
  uint32_t pid = chan_sid_page(id), pg = chan_pid_page(pid);
  unsigned si = chan_pid_seg(pid);
  chan_seg_t *s = &ch->seg[si];
  chan_page_t *h = &s->pages[pg];
  uint32_t cur = h->carved;
  if (k < cur) {
    trim_pages(ch, si, pg, k, cur);
    ch->loaned_bytes -= (size_t)(cur - k) << SHIFT;
  } else if (k > cur) {
    if (k > s->npages - pg) return false;
    for (uint32_t i = cur; i < k; i++)
      if (pg + i < s->next_page && s->pages[pg + i].cls != 0) return false;
    take_pages(ch, si, pg + cur, pg + k);
    ch->used_bytes += (size_t)(k - cur) << SHIFT;
    ch->loaned_bytes += (size_t)(k - cur) << SHIFT;
  }
  h->carved = k;
  return true;
}

size_t chan_max_msg_locked(zc_chan_t *ch) {
  size_t best = 0;
  for (unsigned i = 0; i < ch->nseg; i++)
    if (ch->seg[i].size > best) best = ch->seg[i].size;
  if (ch->nseg < CHAN_SEG_MAX && ch->cfg.max_bytes > ch->seg_bytes) {
    uint64_t room = (ch->cfg.max_bytes - ch->seg_bytes) & ~(uint64_t)(PAGE - 1);
    if (room > CHAN_SEG_LIMIT) room = CHAN_SEG_LIMIT;
    if (room > best) best = (size_t)room;
  }
  return best > ZC_CHAN_MAX_MSG ? best : ZC_CHAN_MAX_MSG;
}

size_t zc_chan_max_msg(zc_chan_t *ch) {
  if (ch == NULL) return 0;
  if (ch->role != ZC_CHAN_PRODUCER) return CHAN_SEG_LIMIT; /* the largest the consumer accepts */
  zc_lock(&ch->lock);
  size_t r = chan_max_msg_locked(ch);
  zc_unlock(&ch->lock);
  return r;
}

/* ---- resizing a loan ---- */

void *zc_chan_loan_resize(zc_chan_t *ch, void *p, size_t n, size_t keep) {
  if (ch == NULL || ch->role != ZC_CHAN_PRODUCER || n == 0) return errno = EINVAL, NULL;
  if (keep > n) keep = n;
  uint32_t id;
  unsigned cls;
  bool nowait = false; /* a move that only gives memory back: never wait for it */
  zc_lock(&ch->lock);
  if (chan_dead(ch) != 0 || chan_find_loan(ch, p, &id, &cls) != 0) goto fail;
  size_t have = chan_slot_bytes(ch, id, cls);
  if (keep > have) {
    errno = EINVAL;
    goto fail;
  }
  if (n > ZC_CHAN_MAX_MSG && n > chan_max_msg_locked(ch)) {
    errno = EMSGSIZE;
    goto fail;
  }
  if (cls == CHAN_RUN && n > ZC_CHAN_MAX_MSG) {
    if (run_resize_in_place(ch, id, (uint32_t)((n + PAGE - 1) >> SHIFT))) goto same;
  } else if (n <= have) { /* shrinking: a smaller slot only if it gives back at least half */
    size_t want = zc_class_block_size(zc_size_class(n < CHAN_MIN_CLASS_SIZE ? CHAN_MIN_CLASS_SIZE : n));
    if (want * 2 > have) goto same;
    nowait = true;
  }
  char *q = chan_loan_locked(ch, n, !nowait);
  if (q == NULL) {
    if (!nowait) goto fail;
    if (cls == CHAN_RUN) run_resize_in_place(ch, id, 1); /* no free slot: at least trim to one page */
    goto same;
  }
  zc_unlock(&ch->lock);
  memcpy(q, p, keep); /* only what the caller wrote, outside the lock */
  zc_lock(&ch->lock);
  if (chan_find_loan(ch, p, &id, &cls) == 0) chan_give_back(ch, id, cls);
  zc_unlock(&ch->lock);
  return q;
same:
  zc_unlock(&ch->lock);
  return p;
fail: {
  int e = errno;
  zc_unlock(&ch->lock);
  errno = e;
  return NULL;
}
}
