/* Layer 9, zero-copy channel: the producer. A size-class allocator over the shared data segments (loan,
 * cancel, the return ring), the descriptor ring (send), waiting when full, and reclaiming everything the
 * consumer held when it dies or misbehaves.
 *
 * Allocator: requests are rounded to the class grid of sizeclass.h (at least 64 B), so the internal waste
 * is at most 25% just above a power of two and about 12.5% on average; a 100 B message takes a 112 B slot.
 * Pages of 512 KiB hold one class each (at most 12% of a page is left over, for the 40 KiB class); each
 * page keeps its own free list and live count, and a page whose last slot comes back goes to a pool any
 * class can take from (one empty page per class is kept, so a steady flow does not churn pages).
 * Free lists, generations and the page table live in private memory (chan_seg_t.pages/slots): the
 * consumer can only hand back 64-bit handles, and each one is checked before it touches a free list.
 *
 * Invariants: a slot is FREE, LOANED or SENT. Only a SENT slot whose generation matches the handle may come
 * back from the consumer, and it comes back once (it is FREE afterwards). inflight_msgs counts the SENT
 * slots; when the consumer is gone, chan_producer_reclaim makes it 0.
 * Lock: ch->lock protects every producer field of zc_chan_t and the private metadata; it is the only lock
 * of a channel and is never held while sleeping.
 */
#include "chan_internal.h"
#include "options.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#define CHAN_SLICE_NS 50000000 /* a sleeping producer looks at the socket this often */

static inline size_t class_size(unsigned c) { return zc_class_block_size(c); }
static inline uint32_t class_slots(unsigned c) { return (uint32_t)(CHAN_PAGE_SIZE / class_size(c)); }
#define slot_of chan_slot_of
#define page_of chan_page_of

/* A run's slot is index 0 of its first page, so the run never reaches class_size(CHAN_RUN). */
static inline char *slot_addr(zc_chan_t *ch, uint32_t id, unsigned cls) {
  uint32_t pid = chan_sid_page(id), idx = chan_sid_idx(id);
  char *page = ch->seg[chan_pid_seg(pid)].base + ((size_t)chan_pid_page(pid) << CHAN_PAGE_SHIFT);
  return idx == 0 ? page : page + (size_t)idx * class_size(cls);
}

/* Fail the channel from inside the lock: record the reason, then take every sent slot back. */
static int fail_locked(zc_chan_t *ch, int err, const char *fmt, ...) {
  char msg[160];
  va_list ap;
  va_start(ap, fmt);
  zc_vformat(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (err == EPROTO) __atomic_fetch_add(&ch->rejected, 1, __ATOMIC_RELAXED);
  chan_fail(ch, err, "%s", msg);
  chan_producer_reclaim(ch);
  errno = __atomic_load_n(&ch->dead, __ATOMIC_ACQUIRE);
  return -1;
}

int chan_producer_grow(zc_chan_t *ch, size_t min_bytes) {
  size_t big = CHAN_PAGE_SIZE;
  size_t size = ch->next_seg_size;
  if (size < min_bytes) size = (min_bytes + big - 1) / big * big;
  if (ch->seg_bytes + size > ch->cfg.max_bytes) size = (ch->cfg.max_bytes - ch->seg_bytes) / big * big;
  if (size > CHAN_SEG_LIMIT) size = CHAN_SEG_LIMIT;
  if (ch->nseg >= CHAN_SEG_MAX || size < big || size < min_bytes) {
    errno = ENOSPC;
    return -1;
  }
  int fd = zc_os_shm_create("zcmem-chan-data", size);
  if (fd < 0) {
    int e = errno;
    zc_format(ch->err, sizeof ch->err, "cannot create a data segment (memfd) of %zu bytes: errno %d", size, e);
    errno = e;
    return -1;
  }
  size_t npages = size >> CHAN_PAGE_SHIFT;
  size_t pbytes = (npages * sizeof(chan_page_t) + 63) & ~(size_t)63;
  size_t meta = pbytes + npages * CHAN_SLOTS_PER_PAGE * sizeof(chan_slot_t);
  char *base = zc_os_shm_map(fd, size, true);
  void *m = base ? chan_private_alloc(meta) : NULL;
  if (m == NULL || !zc_os_no_fork(base, size)) { /* fork children of the producer never inherit it */
    if (base) zc_os_free(base, size);
    chan_private_free(m, meta);
    zc_os_close(fd);
    errno = ENOMEM;
    return -1;
  }
  /* Our writable mapping exists: seal the file so that no one, whatever fd they hold (the consumer's, or
   * a reopen of it through /proc), can map it writable or write() it again. No seal, no channel: we never
   * hand out a file the consumer could write. */
  if (zc_os_shm_seal(fd, true) != 0) {
    int e = errno;
    zc_os_free(base, size);
    chan_private_free(m, meta);
    zc_os_close(fd);
    return fail_locked(ch, e == EINVAL ? ENOSYS : e,
                       "cannot seal a data segment against writes (F_SEAL_FUTURE_WRITE needs Linux 5.1+): errno %d", e);
  }
  int r, e;
  if (__builtin_expect(ch->pub != NULL, 0)) { /* a publisher keeps the fd for every subscriber, now and later */
    r = chan_pub_announce(ch, fd, ch->nseg, size);
    e = errno;
  } else {
    chan_wire_t w = {CHAN_MAGIC, WIRE_SEG, (uint16_t)ch->role, ch->nseg, 0, size};
    r = zc_os_msg_send(ch->sock, &w, sizeof w, fd, false); /* never blocks under the lock */
    e = errno;
    zc_os_close(fd);
  }
  if (r != 0) {
    zc_os_free(base, size);
    chan_private_free(m, meta);
    if (e == EAGAIN) { /* the consumer does not read its socket: like a full memory cap, the policy decides */
      zc_format(ch->err, sizeof ch->err, "the consumer does not read its socket: a new segment cannot be announced");
      errno = ENOSPC;
      return -1;
    }
    if (e == EPIPE || e == ECONNRESET) return fail_locked(ch, EPIPE, "the consumer closed or died (seen sending a segment)");
    return fail_locked(ch, e, "cannot send a data segment to the consumer (errno %d)", e);
  }
  chan_seg_t *s = &ch->seg[ch->nseg];
  s->base = base;
  s->size = size;
  s->pages = m;
  s->npages = (uint32_t)npages;
  s->slots = (chan_slot_t *)((char *)m + pbytes);
  s->meta_size = meta;
  s->next_page = 0;
  ch->nseg++;
  ch->seg_bytes += size;
  ch->next_seg_size = size * 2 > CHAN_SEG_MAX_BYTES ? CHAN_SEG_MAX_BYTES : size * 2;
  return 0;
}

/* Find the slot at byte offset off of segment seg, in the given state, with the given generation (any if
 * gen > CHAN_GEN_MASK). 0 with *id and *cls, or -1 with *why. Everything is checked against private
 * metadata: seg and off may come straight from the hostile side. */
static inline __attribute__((always_inline)) int find_slot(zc_chan_t *ch, unsigned seg, uint64_t off, unsigned state, uint32_t gen, uint32_t *id,
                     unsigned *cls_out, const char **why) {
  if (seg >= ch->nseg) return *why = "segment out of range", -1;
  chan_seg_t *s = &ch->seg[seg];
  if (off >= s->size) return *why = "offset out of range", -1;
  if (off & 15) return *why = "misaligned offset", -1;
  uint32_t pg = (uint32_t)(off >> CHAN_PAGE_SHIFT);
  unsigned cls = s->pages[pg].cls;
  uint32_t in_page = (uint32_t)(off & (CHAN_PAGE_SIZE - 1)), idx = 0;
  if (__builtin_expect(cls - 1u < ZC_CLASS_COUNT - 1u, 1)) { /* a page of size class cls */
    uint32_t csize = (uint32_t)class_size(cls);
    idx = in_page / csize; /* both under 2^19: a 32-bit division */
    if (idx * csize != in_page || idx >= class_slots(cls)) return *why = "offset not at a slot start", -1;
  } else if (cls == 0) {
    return *why = "offset outside any page", -1;
  } else if (cls != CHAN_RUN || in_page != 0) { /* a run: only its first byte names it */
    return *why = "offset inside a large message", -1;
  }
  uint32_t gs = s->slots[(size_t)pg * CHAN_SLOTS_PER_PAGE + idx].gen_state;
  if ((gs & 3u) != state) {
    if (state == SLOT_SENT) return *why = (gs & 3u) == SLOT_FREE ? "slot not in flight (released twice?)" : "slot not sent", -1;
    return *why = "not a live loan", -1;
  }
  if (gen <= CHAN_GEN_MASK && ((gs >> 2) & CHAN_GEN_MASK) != gen) return *why = "wrong generation (stale handle)", -1;
  *id = chan_slot_id(chan_page_id(seg, pg), idx);
  *cls_out = cls;
  return 0;
}

/* The class's list of pages with room (doubly linked through the page table). */
static void avail_push(zc_chan_t *ch, unsigned cls, uint32_t pid) {
  chan_page_t *p = page_of(ch, pid);
  uint32_t head = ch->cls[cls].avail;
  p->prev = CHAN_NONE;
  p->next = head;
  if (head != CHAN_NONE) page_of(ch, head)->prev = pid;
  ch->cls[cls].avail = pid;
  p->listed = 1;
}

static void avail_remove(zc_chan_t *ch, unsigned cls, uint32_t pid) {
  chan_page_t *p = page_of(ch, pid);
  if (p->prev != CHAN_NONE) page_of(ch, p->prev)->next = p->next;
  else ch->cls[cls].avail = p->next;
  if (p->next != CHAN_NONE) page_of(ch, p->next)->prev = p->prev;
  p->listed = 0;
}

static inline __attribute__((always_inline)) void free_slot(zc_chan_t *ch, uint32_t id, unsigned cls) {
  if (__builtin_expect(cls == CHAN_RUN, 0)) {
    chan_run_free(ch, id);
    return;
  }
  uint32_t pid = chan_sid_page(id), idx = chan_sid_idx(id);
  if (__builtin_expect(ch->cfg.zero_freed != 0, 0)) memset(slot_addr(ch, id, cls), 0, class_size(cls));
  chan_page_t *p = page_of(ch, pid);
  chan_slot_t *sl = slot_of(ch, id);
  bool first_free = p->free == CHAN_NONE;
  sl->gen_state = (sl->gen_state & ~3u) | SLOT_FREE;
  sl->next = p->free;
  p->free = idx;
  p->live--;
  ch->used_bytes -= class_size(cls);
  if (!p->listed) {
    avail_push(ch, cls, pid); /* it was full: it has room again */
  } else if (first_free && ch->cls[cls].avail != pid) {
    avail_remove(ch, cls, pid); /* to the front: returned (warm) slots go out before never-used ones */
    avail_push(ch, cls, pid);
  }
  if (p->live == 0 && (p->prev != CHAN_NONE || p->next != CHAN_NONE)) {
    /* empty, and the class has another page with room: the page goes to the pool for any class */
    avail_remove(ch, cls, pid);
    p->cls = 0;
    p->free = CHAN_NONE;
    p->carved = 0;
    chan_pool_push(ch, pid);
  }
}

static void wake_consumer(zc_chan_t *ch);

/* Take back what the consumer released. 0, or -1 if a handle was bad (the channel is then closed). */
int chan_drain_returns(zc_chan_t *ch) {
  uint64_t rh = CHAN_LOAD(&ch->ctl->ret_head), t = ch->p_ret_tail;
  uint64_t n = rh - t;
  if (n == 0) return 0;
  if (n > ch->ret_cap) {
    /* A publisher's allocator (chan_pub.c) has ret_cap 0 and a private control block whose ret_head stays
     * 1: it always lands here, off the one-way path, and takes in the releases of its N return rings. */
    if (ch->pub != NULL) return chan_pub_drain(ch);
    return fail_locked(ch, EPROTO, "return ring head %lu out of range (taken %lu)", (unsigned long)rh, (unsigned long)t);
  }
  for (uint64_t i = 0; i < n; i++) {
    uint64_t h = CHAN_LOAD_RELAXED(&ch->ret[(t + i) & (ch->ret_cap - 1)]); /* one load, then only h */
    uint32_t id;
    unsigned cls;
    const char *why;
    if (find_slot(ch, chan_handle_seg(h), chan_handle_off(h), SLOT_SENT, chan_handle_gen(h), &id, &cls, &why) != 0) {
      ch->p_ret_tail = t + i;
      return fail_locked(ch, EPROTO, "consumer returned an invalid handle 0x%lx (segment %u, offset %u, generation %u): %s",
                         (unsigned long)h, chan_handle_seg(h), chan_handle_off(h), chan_handle_gen(h), why);
    }
    ch->inflight_bytes -= chan_slot_bytes(ch, id, cls);
    free_slot(ch, id, cls);
    ch->inflight_msgs--;
    ch->returned++;
  }
  ch->p_ret_tail = rh;
  CHAN_STORE(&ch->ctl->ret_tail, rh);
  /* A full ring may have sent further releases to the consumer's overflow list, and a consumer whose list
   * is full takes no messages until it can push them: nudge it (if it sleeps or waits in epoll) so it
   * pushes them now. A consumer only waits with a full list right after a push that filled the ring, so
   * the drain that matters always takes a full ring (and arm/sleep look again after setting their flag). */
  if (n == ch->ret_cap) wake_consumer(ch);
  return 0;
}

/* Give class cls a page: one from the pool, else a never-used one, else from a new segment. */
static int new_page(zc_chan_t *ch, unsigned cls) {
  uint32_t pid = chan_pool_pop(ch);
  if (pid == CHAN_NONE) {
    unsigned si = 0;
    while (si < ch->nseg && ch->seg[si].next_page >= ch->seg[si].npages) si++;
    if (si == ch->nseg) {
      if (chan_producer_grow(ch, CHAN_PAGE_SIZE) != 0) return -1;
      si = ch->nseg - 1;
    }
    pid = chan_page_id(si, ch->seg[si].next_page++);
  }
  chan_page_t *p = page_of(ch, pid);
  p->cls = (uint8_t)cls;
  p->free = CHAN_NONE;
  p->live = 0;
  p->carved = 0;
  avail_push(ch, cls, pid);
  return 0;
}

/* A free slot of class cls: a free slot of the first page with room; if that page has none, first take
 * in what the consumer returned (reusing warm slots before touching new memory), then a never-used slot,
 * then a new page (and segment). CHAN_NONE with errno ENOSPC at the cap, or another errno. */
static inline __attribute__((always_inline)) uint32_t alloc_slot(zc_chan_t *ch, unsigned cls) {
  chan_class_t *c = &ch->cls[cls];
  if ((c->avail == CHAN_NONE || page_of(ch, c->avail)->free == CHAN_NONE) && chan_drain_returns(ch) != 0) return CHAN_NONE;
  if (c->avail == CHAN_NONE && new_page(ch, cls) != 0) return CHAN_NONE;
  uint32_t pid = c->avail;
  chan_page_t *p = page_of(ch, pid);
  uint32_t idx = p->free;
  if (idx != CHAN_NONE) p->free = slot_of(ch, chan_slot_id(pid, idx))->next;
  else idx = p->carved++;
  p->live++;
  if (p->free == CHAN_NONE && p->carved == class_slots(cls)) avail_remove(ch, cls, pid); /* full */
  ch->used_bytes += class_size(cls);
  return chan_slot_id(pid, idx);
}

/* Consumer gone? Reads what the socket holds without blocking (a bounded number of records, so a peer
 * flooding the socket cannot keep us here). 0 if alive, -1 (dead) otherwise. */
int chan_producer_peer_check(zc_chan_t *ch) {
  for (int k = 0; k < 64; k++) {
    chan_wire_t w;
    int fd;
    long n = zc_os_msg_recv(ch->sock, &w, sizeof w, &fd);
    zc_os_close(fd);
    if (n < 0 && errno == EAGAIN) return 0;
    if (n == 0 || (n < 0 && errno == ECONNRESET)) return fail_locked(ch, EPIPE, "the consumer closed or died");
    if (n < 0 && errno == EPROTO) return fail_locked(ch, EPROTO, "bad record from the consumer (" CHAN_BAD_RECORD ")");
    if (n < 0) return fail_locked(ch, errno, "socket error %d", errno);
    if (n != sizeof w || w.magic != CHAN_MAGIC || w.kind != WIRE_KICK)
      return fail_locked(ch, EPROTO, "unexpected record from the consumer");
  }
  return 0;
}

/* Called with the lock held when the ring (for_memory false) or the memory (true) is full. Applies the
 * policy: EAGAIN at once, or wait (unlocked) until the consumer makes progress, the deadline passes
 * (ETIMEDOUT) or it dies. 0 means try again (the lock is held again). Progress is measured against the
 * values the failed check itself used (p_tail, p_ret_tail), never against a fresh read: movement between
 * the check and the wait must not be missed (it would cost a whole sleep slice). */
int chan_wait_full(zc_chan_t *ch, uint64_t *deadline, bool for_memory) {
  if (ch->pub != NULL) return chan_pub_wait(ch, deadline); /* a publisher: only waits for memory here */
  ch->full_waits++;
  if (ch->cfg.policy == ZC_CHAN_FAIL) {
    errno = EAGAIN;
    return -1;
  }
  uint64_t now = zc_os_clock_ns();
  if (*deadline == 0)
    *deadline = ch->cfg.block_timeout_ms < 0 ? UINT64_MAX : now + (uint64_t)ch->cfg.block_timeout_ms * 1000000u;
  if (now >= *deadline) {
    errno = ETIMEDOUT;
    return -1;
  }
  chan_ctl_t *ctl = ch->ctl;
  chan_test_point(CHAN_TP_FULL_CHECK); /* a move from here on must count as progress: `seen` is the check's */
  /* A consumer whose overflow list is long stops taking messages until we take its releases back: take
   * them now so it can go on (and free memory for us). */
  uint64_t taken = ch->p_ret_tail;
  if (CHAN_LOAD_RELAXED(&ctl->ret_head) != taken && chan_drain_returns(ch) != 0) return -1;
  if (for_memory && ch->p_ret_tail != taken) return 0; /* memory came back: try again */
  uint64_t *word = for_memory ? &ctl->ret_head : &ctl->tail, seen = for_memory ? ch->p_ret_tail : ch->p_tail;
  zc_unlock(&ch->lock);
  uint64_t spin_end = now + (uint64_t)ch->cfg.spin_ns;
  bool moved = CHAN_LOAD(word) != seen;
  while (!moved && zc_os_clock_ns() < spin_end) {
    for (int i = 0; i < 64; i++) chan_pause();
    moved = CHAN_LOAD(word) != seen;
  }
  if (!moved) {
    chan_test_point(CHAN_TP_WAIT_FULL); /* progress from here on wakes nobody: the look below finds it */
    uint32_t w = CHAN_LOAD(&ctl->space_word);
    __atomic_fetch_add(&ctl->p_wait, 1, __ATOMIC_SEQ_CST);
    if (CHAN_LOAD(word) == seen) {
      uint64_t t = zc_os_clock_ns(), left = t < *deadline ? *deadline - t : 0;
      __atomic_fetch_add(&ch->sleeps, 1, __ATOMIC_RELAXED);
      zc_os_futex_wait_shared(&ctl->space_word, w, (int64_t)(left < CHAN_SLICE_NS ? left : CHAN_SLICE_NS));
    }
    __atomic_fetch_sub(&ctl->p_wait, 1, __ATOMIC_RELAXED);
  }
  zc_lock(&ch->lock);
  return chan_dead(ch) != 0 ? -1 : chan_producer_peer_check(ch);
}

/* With the lock held: a new loan of n bytes (1 <= n <= the channel's largest message), a slot of its class
 * or (above 64 KiB) a run; when memory is full it waits per the policy if wait, else fails with EAGAIN.
 * NULL with errno. */
static inline __attribute__((always_inline)) char *loan_locked(zc_chan_t *ch, size_t n, bool wait) {
  bool run = n > ZC_CHAN_MAX_MSG;
  unsigned cls = run ? CHAN_RUN : zc_size_class(n < CHAN_MIN_CLASS_SIZE ? CHAN_MIN_CLASS_SIZE : n);
  uint64_t deadline = 0;
  uint32_t id;
  for (;;) {
    if (chan_dead(ch) != 0) return NULL;
    id = run ? chan_run_alloc(ch, n) : alloc_slot(ch, cls);
    if (id != CHAN_NONE) break;
    if (errno != ENOSPC) return NULL;
    if (!wait) return errno = EAGAIN, NULL;
    if (chan_wait_full(ch, &deadline, true) != 0) return NULL;
  }
  chan_slot_t *sl = slot_of(ch, id);
  sl->gen_state = (sl->gen_state + 4u) & ~3u;
  sl->gen_state |= SLOT_LOANED;
  ch->loaned_msgs++;
  if (run) {
    ch->loaned_bytes += chan_slot_bytes(ch, id, cls);
    return slot_addr(ch, id, cls);
  }
  ch->loaned_bytes += class_size(cls);
  uint32_t pid = chan_sid_page(id);
  return ch->seg[chan_pid_seg(pid)].base + ((size_t)chan_pid_page(pid) << CHAN_PAGE_SHIFT) +
         (size_t)chan_sid_idx(id) * class_size(cls);
}

__attribute__((noinline)) char *chan_loan_locked(zc_chan_t *ch, size_t n, bool wait) { return loan_locked(ch, n, wait); }

static __attribute__((noinline)) void *loan_large(zc_chan_t *ch, size_t n) {
  zc_lock(&ch->lock);
  char *p = NULL;
  if (n > chan_max_msg_locked(ch)) errno = EMSGSIZE; /* it could never fit: do not wait for it */
  else p = chan_loan_locked(ch, n, true);
  int e = errno;
  zc_unlock(&ch->lock);
  errno = e;
  return p;
}

void *zc_chan_loan(zc_chan_t *ch, size_t n) {
  if (ch == NULL || ch->role != ZC_CHAN_PRODUCER || n == 0) return errno = EINVAL, NULL;
  if (__builtin_expect(n > ZC_CHAN_MAX_MSG, 0)) return loan_large(ch, n);
  zc_lock(&ch->lock);
  char *p = loan_locked(ch, n, true);
  if (__builtin_expect(p != NULL, 1)) {
    zc_unlock(&ch->lock);
    return p;
  }
  int e = errno;
  zc_unlock(&ch->lock);
  errno = e;
  return NULL;
}

/* The live loan at p: 0 with its slot (and where it is), or -1 EINVAL. */
static inline int find_loan(zc_chan_t *ch, const void *p, uint32_t *id, unsigned *cls, uint32_t *off, unsigned *seg) {
  const char *why;
  for (unsigned i = 0; i < ch->nseg; i++) {
    const char *b = ch->seg[i].base;
    if ((const char *)p >= b && (const char *)p < b + ch->seg[i].size) {
      *seg = i;
      *off = (uint32_t)((const char *)p - b);
      if (find_slot(ch, i, *off, SLOT_LOANED, UINT32_MAX, id, cls, &why) == 0) return 0;
      break;
    }
  }
  errno = EINVAL;
  return -1;
}

int chan_find_loan(zc_chan_t *ch, const void *p, uint32_t *id, unsigned *cls) {
  uint32_t off;
  unsigned seg;
  return find_loan(ch, p, id, cls, &off, &seg);
}

int chan_find_loan_at(zc_chan_t *ch, const void *p, uint32_t *id, unsigned *cls, uint32_t *off, unsigned *seg) {
  return find_loan(ch, p, id, cls, off, seg);
}

int chan_find_sent(zc_chan_t *ch, uint64_t h, uint32_t *id, unsigned *cls, const char **why) {
  return find_slot(ch, chan_handle_seg(h), chan_handle_off(h), SLOT_SENT, chan_handle_gen(h), id, cls, why);
}

void chan_free_sent(zc_chan_t *ch, uint32_t id, unsigned cls, bool reclaimed) {
  ch->inflight_bytes -= chan_slot_bytes(ch, id, cls);
  free_slot(ch, id, cls);
  ch->inflight_msgs--;
  if (reclaimed) ch->reclaimed++;
  else ch->returned++;
}

void chan_give_back(zc_chan_t *ch, uint32_t id, unsigned cls) {
  ch->loaned_msgs--;
  ch->loaned_bytes -= chan_slot_bytes(ch, id, cls);
  free_slot(ch, id, cls);
}

int zc_chan_cancel(zc_chan_t *ch, void *p) {
  uint32_t id;
  unsigned cls;
  if (ch == NULL || ch->role != ZC_CHAN_PRODUCER) return errno = EINVAL, -1;
  zc_lock(&ch->lock);
  int r = chan_find_loan(ch, p, &id, &cls);
  if (r == 0) chan_give_back(ch, id, cls);
  zc_unlock(&ch->lock);
  if (r != 0) errno = EINVAL;
  return r;
}

/* May one more message of len bytes be queued? The ring must have a free descriptor, and the bytes sent
 * but not yet received must stay under max_queued_bytes (one message may always go into an empty queue):
 * like a socket buffer, this keeps a fast producer from running far ahead of the consumer through cold
 * memory. The consumer's tail is re-read only when one of the two looks full. 1 yes, 0 no, -1 if the tail
 * is garbage (the channel is then closed). */
static int queue_room(zc_chan_t *ch, uint32_t len) {
  uint64_t cap = ch->cfg.max_queued_bytes;
  if (ch->p_head - ch->p_tail < ch->ring_cap && (ch->q_bytes + len <= cap || ch->p_head == ch->p_tail)) return 1;
  uint64_t t = CHAN_LOAD(&ch->ctl->tail);
  if (t - ch->p_tail > ch->p_head - ch->p_tail)
    return fail_locked(ch, EPROTO, "consumer ring tail %lu outside [%lu, %lu]", (unsigned long)t,
                       (unsigned long)ch->p_tail, (unsigned long)ch->p_head);
  for (uint64_t p = ch->p_tail; p != t; p++) ch->q_bytes -= ch->qlen[p & (ch->ring_cap - 1)];
  ch->p_tail = t;
  return ch->p_head - t < ch->ring_cap && (ch->q_bytes + len <= cap || ch->p_head == t);
}

int chan_queue_room(zc_chan_t *ch, uint32_t len) { return queue_room(ch, len); }

/* Make the consumer's socket readable, with at most one record it has not read: if anything is unread (a
 * kick, a segment), the socket is readable already and epoll reports it. A consumer that keeps re-arming
 * and never reads costs one ioctl per send, never a full socket buffer. One thread at a time decides;
 * a request that arrives meanwhile makes that thread look again (the consumer may have read in between),
 * so no request is lost. */
static void kick(zc_chan_t *ch) {
  if (__atomic_fetch_add(&ch->kicking, 1, __ATOMIC_ACQ_REL) != 0) return; /* the deciding thread will look */
  int seen = 1;
  for (;;) {
    if (zc_os_unix_unread(ch->sock) == 0) {
      chan_wire_t k = {CHAN_MAGIC, WIRE_KICK, ZC_CHAN_PRODUCER, 0, 0, 0};
      zc_os_msg_send(ch->sock, &k, sizeof k, -1, false);
      __atomic_fetch_add(&ch->wakes, 1, __ATOMIC_RELAXED);
    }
    int expect = seen;
    if (__atomic_compare_exchange_n(&ch->kicking, &expect, 0, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return;
    seen = expect; /* more requests came: look again */
  }
}

static void wake_consumer(zc_chan_t *ch) {
  chan_ctl_t *ctl = ch->ctl;
  chan_fence(); /* head store before the c_wait load: pairs with the consumer */
  uint32_t cw = CHAN_LOAD_RELAXED(&ctl->c_wait);
  if (__builtin_expect(cw == 0, 1)) return; /* the consumer is spinning or busy: no system call */
  /* Clearing the flag makes this the only wake-up for this sleep: later sends skip the system call until
   * the consumer sets the flag again. */
  if ((cw & CHAN_SLEEPING) && (__atomic_fetch_and(&ctl->c_wait, ~CHAN_SLEEPING, __ATOMIC_ACQ_REL) & CHAN_SLEEPING)) {
    __atomic_fetch_add(&ctl->data_word, 1, __ATOMIC_RELEASE);
    zc_os_futex_wake_shared(&ctl->data_word, 1);
    __atomic_fetch_add(&ch->wakes, 1, __ATOMIC_RELAXED);
  }
  if ((cw & CHAN_ARMED) && (__atomic_fetch_and(&ctl->c_wait, ~CHAN_ARMED, __ATOMIC_ACQ_REL) & CHAN_ARMED)) kick(ch);
}

void chan_wake_consumer(zc_chan_t *ch) { wake_consumer(ch); }

int zc_chan_send_batch(zc_chan_t *ch, const zc_chan_msg_t *msgs, int n) {
  if (ch == NULL || ch->role != ZC_CHAN_PRODUCER || n <= 0 || msgs == NULL) return errno = EINVAL, -1;
  uint64_t deadline = 0;
  int done = 0, err = 0;
  zc_lock(&ch->lock);
  bool unwoken = false; /* published descriptors the consumer has not been told about */
  while (done < n && err == 0) {
    const zc_chan_msg_t *m = &msgs[done];
    if (chan_dead(ch) != 0) {
      err = errno;
      break;
    }
    /* The loan and its length first: a bad one fails at once (EINVAL, EMSGSIZE), it never waits for room
     * (nor, after a wait, is it taken for a loan that was cancelled meanwhile: looked up again each time). */
    uint32_t id, off;
    unsigned cls, seg;
    if (find_loan(ch, m->data, &id, &cls, &off, &seg) != 0) {
      err = EINVAL;
      break;
    }
    size_t bytes = chan_slot_bytes(ch, id, cls);
    if (m->len > bytes) {
      chan_give_back(ch, id, cls);
      err = EMSGSIZE;
      break;
    }
    int room = queue_room(ch, m->len);
    if (room < 0) {
      err = errno;
      break;
    }
    if (room == 0) {
      if (unwoken) wake_consumer(ch); /* it must not sleep on what we published while we wait for it */
      unwoken = false;
      if (chan_wait_full(ch, &deadline, false) != 0) err = errno;
      continue;
    }
    chan_slot_t *sl = slot_of(ch, id);
    uint64_t pos = ch->p_head;
    chan_desc_t *d = &ch->ring[pos & (ch->ring_cap - 1)];
    __atomic_store_n(&d->handle, chan_handle(seg, off, sl->gen_state >> 2), __ATOMIC_RELAXED);
    __atomic_store_n(&d->len, m->len, __ATOMIC_RELAXED);
    __atomic_store_n(&d->type, m->type, __ATOMIC_RELAXED);
    CHAN_STORE(&d->seq, pos + 1); /* publishes the descriptor and the payload written before it */
    ch->qlen[pos & (ch->ring_cap - 1)] = m->len;
    ch->q_bytes += m->len;
    sl->gen_state = (sl->gen_state & ~3u) | SLOT_SENT;
    ch->loaned_msgs--;
    ch->loaned_bytes -= bytes;
    ch->inflight_msgs++;
    ch->inflight_bytes += bytes;
    ch->p_head = pos + 1;
    ch->sent++;
    done++;
    unwoken = true;
  }
  if (err != 0 && __atomic_load_n(&ch->dead, __ATOMIC_ACQUIRE) != 0) {
    /* the channel is dead: the loans not sent go back to the allocator (EAGAIN/ETIMEDOUT keep them) */
    for (int i = done; i < n; i++) {
      uint32_t id, off;
      unsigned cls, seg;
      if (find_loan(ch, msgs[i].data, &id, &cls, &off, &seg) == 0) chan_give_back(ch, id, cls);
    }
  }
  zc_unlock(&ch->lock);
  if (unwoken) wake_consumer(ch);
  if (done == 0) {
    errno = err;
    return -1;
  }
  return done;
}

int zc_chan_send(zc_chan_t *ch, void *p, size_t len, uint32_t type) {
  if (ch == NULL) return errno = EINVAL, -1;
  if (len > UINT32_MAX) { /* beyond any slot (the descriptor's length is 32 bits) */
    zc_chan_cancel(ch, p);
    return errno = EMSGSIZE, -1;
  }
  zc_chan_msg_t m = {p, (uint32_t)len, type, 0};
  return zc_chan_send_batch(ch, &m, 1) == 1 ? 0 : -1;
}

long zc_chan_collect(zc_chan_t *ch) {
  if (ch == NULL || ch->role != ZC_CHAN_PRODUCER) return errno = EINVAL, -1;
  zc_lock(&ch->lock);
  long r = -1;
  if (chan_dead(ch) == 0 && chan_drain_returns(ch) == 0 && chan_producer_peer_check(ch) == 0) r = (long)ch->inflight_msgs;
  int e = errno;
  zc_unlock(&ch->lock);
  errno = e;
  return r;
}

int zc_chan_arm_space(zc_chan_t *ch) {
  if (ch == NULL || ch->role != ZC_CHAN_PRODUCER) return errno = EINVAL, -1;
  chan_ctl_t *ctl = ch->ctl;
  zc_lock(&ch->lock);
  int r = -1;
  /* drains the kicks that made the socket readable, and sees the consumer's end */
  if (chan_dead(ch) != 0 || chan_producer_peer_check(ch) != 0) goto out;
  uint64_t taken = ch->p_ret_tail, tail = ch->p_tail;
  if (chan_drain_returns(ch) != 0 || queue_room(ch, UINT32_MAX) < 0) goto out; /* refreshes both */
  r = 1;
  if (ch->p_ret_tail != taken || ch->p_tail != tail) goto out; /* room came back since we last looked */
  chan_test_point(CHAN_TP_ARM_SPACE); /* a take or release from here on kicks nobody: the look below finds it */
  __atomic_fetch_or(&ctl->p_wait, CHAN_SPACE_ARMED, __ATOMIC_SEQ_CST);
  chan_fence(); /* flag store before the tail and ret_head loads: pairs with the consumer's wake_producer */
  if (CHAN_LOAD(&ctl->tail) == ch->p_tail && CHAN_LOAD(&ctl->ret_head) == ch->p_ret_tail) r = 0;
out: {
  int e = errno;
  zc_unlock(&ch->lock);
  errno = e;
  return r;
}
}

void chan_producer_reclaim(zc_chan_t *ch) {
  for (unsigned si = 0; si < ch->nseg; si++) {
    chan_seg_t *s = &ch->seg[si];
    for (uint32_t pg = 0; pg < s->next_page; pg++) {
      chan_page_t *p = &s->pages[pg];
      unsigned cls = p->cls;
      uint32_t n = cls == CHAN_RUN ? 1 : cls != 0 && cls != CHAN_RUN_BODY ? p->carved : 0;
      for (uint32_t i = 0; i < n; i++) {
        uint32_t id = chan_slot_id(chan_page_id(si, pg), i);
        if ((slot_of(ch, id)->gen_state & 3u) != SLOT_SENT) continue;
        ch->inflight_bytes -= chan_slot_bytes(ch, id, cls);
        free_slot(ch, id, cls); /* may give the page back to the pool: the loop stops there */
        ch->inflight_msgs--;
        ch->reclaimed++;
        if (p->cls == 0) break;
      }
    }
  }
  ch->p_tail = ch->p_head; /* descriptors still in the ring are void */
  ch->q_bytes = 0;
}

void chan_producer_stats(zc_chan_t *ch, zc_chan_stats_t *out) {
  zc_lock(&ch->lock);
  out->loaned_msgs = ch->loaned_msgs;
  out->loaned_bytes = ch->loaned_bytes;
  out->inflight_msgs = ch->inflight_msgs;
  out->inflight_bytes = ch->inflight_bytes;
  out->segment_bytes = ch->seg_bytes;
  out->free_bytes = ch->seg_bytes - ch->used_bytes;
  out->segments = ch->nseg;
  out->sent = ch->sent;
  out->returned = ch->returned;
  out->reclaimed = ch->reclaimed;
  out->full_waits = ch->full_waits;
  if (chan_dead(ch) == 0) queue_room(ch, UINT32_MAX); /* refreshes the tail */
  out->queued = chan_dead(ch) == 0 ? ch->p_head - ch->p_tail : 0;
  out->queued_bytes = ch->q_bytes;
  zc_unlock(&ch->lock);
}
