/* Layer 9, zero-copy channel: fan-out. One publisher's allocator feeds up to 32 subscriber *links*; every
 * message is written once in shared memory and read in place by every subscriber it was sent to.
 *
 * The allocator is a zc_chan_t without socket or ring of its own (the *hub*, ch->pub set): the same data
 * segments, pages, slots and page pool as a one-way producer (chan_producer.c, chan_run.c), which call
 * back here in three places: announcing a new data segment (to every live link; the memfd is kept for
 * links that join later), taking in releases (every link's return ring) and waiting for memory.
 * A link is an ordinary producer end (chan_open_link: the handshake, its control segment with descriptor
 * ring, return ring and wake-up words, and its socket) with no segments of its own: its subscriber is an
 * unchanged consumer (zc_chan_receive, zc_chan_release), with every check of chan_consumer.c.
 *
 * Invariants:
 *  - every live link was sent every data segment, in order, before any descriptor naming it;
 *  - a SENT slot's `next` (unused while SENT) is the mask of the links it was published to that have not
 *    released it yet; the slot is freed exactly when the mask becomes 0 (last release, or the last holders
 *    died or were cut off);
 *  - a handle on link i's return ring is taken only if it names a SENT slot of the right generation whose
 *    mask has bit i; then bit i is cleared. Anything else (a second release, a message sent to others
 *    only, garbage) cuts link i off alone (EPROTO on its side) and clears bit i everywhere;
 *  - link[i].held counts the SENT slots with bit i (0 once the link is dropped).
 * Lock: the hub's lock protects the hub, every link's producer fields and everything below. It is never
 * held while sleeping; a thread that waits on a link's control words without it counts itself in
 * link.waiters, and a dropped link is closed (unmapped) only when no thread waits on it.
 *
 * Event loop (zc_pub_event_fd): an epoll set of the listening socket and every live link's socket (a
 * link leaves it when dropped, so a dead subscriber's end of file does not keep it readable).
 * zc_pub_arm_space sets CHAN_SPACE_ARMED on every live link's control block, the flag an ordinary
 * consumer already answers with one kick on its socket when it takes descriptors or releases messages
 * (chan_consumer.c): no new shared field, nothing new a subscriber can write.
 */
#include "chan_internal.h"
#include "options.h"

#include <errno.h>
#include <string.h>

#define PUB_MEM_SLICE_NS 2000000   /* waiting for memory: any subscriber's release may be the last one */
#define PUB_RING_SLICE_NS 50000000 /* waiting for one subscriber's ring: it wakes us */
#define PUB_MAX_UIDS 64
#define PUB_LISTEN_TAG UINT64_MAX /* epoll tag of the listening socket; a link's tag is its index */

typedef struct pub_link_s {
  zc_chan_t *ch; /* this subscriber's producer end; NULL if the entry was never used */
  uint64_t held; /* SENT slots whose mask has this link's bit */
  int waiters;   /* threads waiting on ch's control words without the lock: ch stays mapped */
} pub_link_t;

struct zc_pub_s {
  zc_chan_t *hub;              /* the allocator; hub->lock protects everything here */
  chan_ctl_t hub_ctl;          /* the hub's control block: private, ret_head 1 (see chan_drain_returns) */
  int lfd;                     /* listening socket, -1 if none */
  int ep;                      /* epoll: lfd and every live link's socket (zc_pub_event_fd) */
  zc_chan_config_t ucfg;       /* the user's configuration, for each link's handshake */
  uint32_t uids[PUB_MAX_UIDS]; /* a copy of ucfg.peer_uids (links are opened long after listen) */
  int fds[CHAN_SEG_MAX];       /* every data segment's memfd, for the links that join later */
  uint32_t live;               /* bit i: link[i] is live */
  pub_link_t link[ZC_PUB_MAX_SUBS];
  uint64_t joined, left, evicted, cut_off, unheard, deliveries, dropped;
  char err[200];
};

enum { DROP_LEFT, DROP_EVICT, DROP_PROTO };

/* ---- dropping a link ---- */

/* Descriptors link l published that its subscriber has not taken become unpublished again (their
 * sequence words get the empty value): a subscriber cut off while alive then finds nothing more to read
 * and sees end of file, instead of reading slots the publisher reuses. Positions it already passed are
 * never visited again (nothing more is published on this ring). */
static void unpublish(zc_chan_t *l) {
  for (uint64_t pos = l->p_tail; pos != l->p_head; pos++) {
    uint64_t empty = pos < l->ring_cap ? 0 : pos + 1 - l->ring_cap;
    CHAN_STORE(&l->ring[pos & (l->ring_cap - 1)].seq, empty);
  }
}

/* Link i leaves the live set: its channel is failed (if it is not already: why, else its own reason), its
 * bit leaves every sent slot and the slots nobody else holds are freed. */
static void link_drop(zc_pub_t *p, unsigned i, int kind, const char *why) {
  uint32_t bit = 1u << i;
  if (!(p->live & bit)) return;
  pub_link_t *lk = &p->link[i];
  zc_chan_t *l = lk->ch, *h = p->hub;
  if (why != NULL) chan_fail(l, kind == DROP_PROTO ? EPROTO : EPIPE, "%s", why);
  zc_format(p->err, sizeof p->err, "subscriber %u (pid %d): %s", i, (int)l->peer.pid, l->err);
  p->live &= ~bit;
  zc_os_epoll_del(p->ep, l->sock); /* its end of file must not keep the event fd readable */
  if (kind == DROP_PROTO) p->cut_off++;
  else if (kind == DROP_EVICT) p->evicted++;
  else p->left++;
  unpublish(l);
  for (unsigned si = 0; si < h->nseg && lk->held != 0; si++) {
    chan_seg_t *s = &h->seg[si];
    for (uint32_t pg = 0; pg < s->next_page; pg++) {
      chan_page_t *pa = &s->pages[pg];
      unsigned cls = pa->cls;
      uint32_t n = cls == CHAN_RUN ? 1 : cls != 0 && cls != CHAN_RUN_BODY ? pa->carved : 0;
      for (uint32_t k = 0; k < n; k++) {
        uint32_t id = chan_slot_id(chan_page_id(si, pg), k);
        chan_slot_t *sl = chan_slot_of(h, id);
        if ((sl->gen_state & 3u) != SLOT_SENT || !(sl->next & bit)) continue;
        sl->next &= ~bit;
        lk->held--;
        p->dropped++;
        if (sl->next == 0) chan_free_sent(h, id, cls, true); /* may give the page to the pool: stop there */
        if (pa->cls == 0) break;
      }
    }
  }
  lk->held = 0;
}

/* ---- taking releases back ---- */

static void drain_link(zc_pub_t *p, unsigned i) {
  zc_chan_t *h = p->hub, *l = p->link[i].ch;
  uint32_t bit = 1u << i;
  uint64_t rh = CHAN_LOAD(&l->ctl->ret_head), t = l->p_ret_tail, n = rh - t;
  char why[160];
  if (n == 0) return;
  if (n > l->ret_cap) {
    zc_format(why, sizeof why, "return ring head %lu out of range (taken %lu)", (unsigned long)rh, (unsigned long)t);
    goto bad;
  }
  for (uint64_t k = 0; k < n; k++) {
    uint64_t hd = CHAN_LOAD_RELAXED(&l->ret[(t + k) & (l->ret_cap - 1)]); /* one load, then only hd */
    uint32_t id;
    unsigned cls;
    const char *w;
    if (chan_find_sent(h, hd, &id, &cls, &w) != 0) {
      zc_format(why, sizeof why, "returned an invalid handle 0x%lx: %s", (unsigned long)hd, w);
      goto bad;
    }
    chan_slot_t *sl = chan_slot_of(h, id);
    if (!(sl->next & bit)) {
      zc_format(why, sizeof why, "returned handle 0x%lx, which it does not hold (released twice, or sent to others only)",
                (unsigned long)hd);
      goto bad;
    }
    sl->next &= ~bit;
    p->link[i].held--;
    if (sl->next == 0) chan_free_sent(h, id, cls, false); /* the last holder released it */
  }
  l->p_ret_tail = rh;
  CHAN_STORE(&l->ctl->ret_tail, rh);
  if (n == l->ret_cap) chan_wake_consumer(l); /* its overflow list may be waiting: see chan_drain_returns */
  return;
bad:
  __atomic_fetch_add(&h->rejected, 1, __ATOMIC_RELAXED);
  link_drop(p, i, DROP_PROTO, why);
}

int chan_pub_drain(zc_chan_t *h) {
  zc_pub_t *p = h->pub;
  for (uint32_t m = p->live; m != 0; m &= m - 1) drain_link(p, (unsigned)__builtin_ctz(m));
  return 0;
}

/* Which links closed or died (end of file on their socket)? Their messages come back. */
static void check_links(zc_pub_t *p) {
  for (uint32_t m = p->live; m != 0; m &= m - 1) {
    unsigned i = (unsigned)__builtin_ctz(m);
    zc_chan_t *l = p->link[i].ch;
    if (chan_dead(l) != 0 || chan_producer_peer_check(l) != 0) link_drop(p, i, errno == EPROTO ? DROP_PROTO : DROP_LEFT, NULL);
  }
}

/* The live link holding the most messages (-1 if none holds any): the one memory waits for. */
static int slowest(zc_pub_t *p) {
  int who = -1;
  uint64_t most = 0;
  for (uint32_t m = p->live; m != 0; m &= m - 1) {
    unsigned i = (unsigned)__builtin_ctz(m);
    if (p->link[i].held > most) most = p->link[i].held, who = (int)i;
  }
  return who;
}

/* ---- waiting ---- */

/* With the lock held: wait (without it) until link `who` takes descriptors (ring) or releases messages
 * (memory: who is then the slowest link), the deadline passes, or a slice ends. 0: look again (the lock
 * is held again); -1 with ETIMEDOUT, or the hub's error. Progress is measured against the values the
 * failed check saw (p_tail, p_ret_tail), as chan_wait_full does. */
static int pub_wait(zc_pub_t *p, uint64_t *deadline, int who, bool ring) {
  zc_chan_t *h = p->hub;
  h->full_waits++;
  uint64_t now = zc_os_clock_ns();
  if (*deadline == 0)
    *deadline = h->cfg.block_timeout_ms < 0 ? UINT64_MAX : now + (uint64_t)h->cfg.block_timeout_ms * 1000000u;
  if (now >= *deadline) return errno = ETIMEDOUT, -1;
  check_links(p);
  uint64_t back = h->returned + h->reclaimed;
  chan_pub_drain(h);
  if (!ring && h->returned + h->reclaimed != back) return 0; /* memory came back: try again */
  if (ring && !(p->live & (1u << who))) return 0;          /* it is gone: its ring no longer counts */
  if (!ring) who = slowest(p);
  uint64_t left = *deadline - now, slice = ring ? PUB_RING_SLICE_NS : PUB_MEM_SLICE_NS;
  if (left > slice) left = slice;
  if (who < 0) { /* all the memory is in our own loans: only a cancel or a send from another thread helps */
    zc_unlock(&h->lock);
    zc_os_sleep_ns(left);
    zc_lock(&h->lock);
    return chan_dead(h);
  }
  pub_link_t *lk = &p->link[who];
  zc_chan_t *l = lk->ch;
  chan_ctl_t *ctl = l->ctl;
  uint64_t *word = ring ? &ctl->tail : &ctl->ret_head, seen = ring ? l->p_tail : l->p_ret_tail;
  lk->waiters++;
  zc_unlock(&h->lock);
  uint64_t spin_end = now + (uint64_t)h->cfg.spin_ns;
  bool moved = CHAN_LOAD(word) != seen;
  while (!moved && zc_os_clock_ns() < spin_end) {
    for (int k = 0; k < 64; k++) chan_pause();
    moved = CHAN_LOAD(word) != seen;
  }
  if (!moved) {
    uint32_t w = CHAN_LOAD(&ctl->space_word);
    __atomic_fetch_add(&ctl->p_wait, 1, __ATOMIC_SEQ_CST);
    if (CHAN_LOAD(word) == seen) {
      __atomic_fetch_add(&h->sleeps, 1, __ATOMIC_RELAXED);
      zc_os_futex_wait_shared(&ctl->space_word, w, (int64_t)left);
    }
    __atomic_fetch_sub(&ctl->p_wait, 1, __ATOMIC_RELAXED);
  }
  zc_lock(&h->lock);
  lk->waiters--;
  return chan_dead(h);
}

int chan_pub_wait(zc_chan_t *h, uint64_t *deadline) { return pub_wait(h->pub, deadline, -1, false); }

/* ---- segments ---- */

int chan_pub_announce(zc_chan_t *h, int fd, unsigned idx, size_t size) {
  zc_pub_t *p = h->pub;
  p->fds[idx] = fd;
  chan_wire_t w = {CHAN_MAGIC, WIRE_SEG, ZC_CHAN_PRODUCER, idx, 0, size};
  for (uint32_t m = p->live; m != 0; m &= m - 1) {
    unsigned i = (unsigned)__builtin_ctz(m);
    if (zc_os_msg_send(p->link[i].ch->sock, &w, sizeof w, fd, false) == 0) continue; /* never blocks */
    if (errno == EAGAIN) link_drop(p, i, DROP_EVICT, "cut off: it does not read its socket (a new data segment cannot be announced)");
    else link_drop(p, i, DROP_LEFT, "closed or died (seen announcing a data segment)");
  }
  return 0;
}

/* ---- joining ---- */

static int link_add(zc_pub_t *p, zc_chan_t *l) {
  zc_chan_t *h = p->hub;
  zc_lock(&h->lock);
  int i = -1, e = 0;
  for (unsigned k = 0; k < ZC_PUB_MAX_SUBS && i < 0; k++) {
    pub_link_t *lk = &p->link[k];
    if (lk->ch == NULL) i = (int)k;
    else if (!(p->live & (1u << k)) && lk->waiters == 0) {
      zc_chan_close(lk->ch); /* a dropped link nobody waits on any more */
      lk->ch = NULL;
      i = (int)k;
    }
  }
  if (chan_dead(h) != 0) e = errno;
  else if (i < 0) e = EBUSY;
  for (unsigned k = 0; e == 0 && k < h->nseg; k++) { /* every segment, in order, before any descriptor */
    chan_wire_t w = {CHAN_MAGIC, WIRE_SEG, ZC_CHAN_PRODUCER, k, 0, h->seg[k].size};
    if (zc_os_msg_send(l->sock, &w, sizeof w, p->fds[k], false) != 0) e = errno == EAGAIN ? EAGAIN : EPIPE;
  }
  if (e == 0 && zc_os_epoll_add(p->ep, l->sock, (uint64_t)i) != 0) e = errno;
  if (e != 0) {
    zc_unlock(&h->lock);
    zc_chan_close(l);
    return errno = e, -1;
  }
  p->link[i] = (pub_link_t){l, 0, 0};
  p->live |= 1u << i;
  p->joined++;
  int n = __builtin_popcount(p->live);
  zc_unlock(&h->lock);
  return n;
}

int zc_pub_add(zc_pub_t *p, int sock) {
  if (p == NULL) {
    zc_os_close(sock); /* ours, as on every failure */
    return errno = EINVAL, -1;
  }
  zc_chan_t *l = chan_open_link(sock, &p->ucfg); /* the handshake, without the lock */
  return l == NULL ? -1 : link_add(p, l);
}

int zc_pub_accept(zc_pub_t *p, int timeout_ms) {
  if (p == NULL || p->lfd < 0) return errno = EINVAL, -1;
  int fd = zc_os_unix_accept(p->lfd, timeout_ms);
  if (fd < 0) {
    if (timeout_ms == 0 && errno == ETIMEDOUT) errno = EAGAIN;
    return -1;
  }
  return zc_pub_add(p, fd);
}

/* ---- loan, send ---- */

void *zc_pub_loan(zc_pub_t *p, size_t n) {
  if (p == NULL || n == 0) return errno = EINVAL, NULL;
  zc_chan_t *h = p->hub;
  char *q = NULL;
  zc_lock(&h->lock);
  if (__builtin_expect(n <= ZC_CHAN_MAX_MSG, 1) && (q = chan_loan_locked(h, n, h->cfg.policy != ZC_CHAN_FAIL)) != NULL) {
    zc_unlock(&h->lock); /* the common case: a slot was free */
    return q;
  }
  if (n > ZC_CHAN_MAX_MSG && n > chan_max_msg_locked(h)) errno = EMSGSIZE;
  else
    for (;;) {
      q = chan_loan_locked(h, n, h->cfg.policy != ZC_CHAN_FAIL);
      if (q != NULL || errno != ETIMEDOUT || h->cfg.policy != ZC_PUB_EVICT) break;
      int who = slowest(p);
      if (who < 0) break;
      link_drop(p, (unsigned)who, DROP_EVICT,
                "evicted: it held messages whose memory the publisher waited for during block_timeout_ms");
    }
  int e = errno;
  zc_unlock(&h->lock);
  errno = e;
  return q;
}

int zc_pub_cancel(zc_pub_t *p, void *buf) {
  if (p == NULL) return errno = EINVAL, -1;
  zc_chan_t *h = p->hub;
  uint32_t id;
  unsigned cls;
  zc_lock(&h->lock);
  int r = chan_find_loan(h, buf, &id, &cls);
  if (r == 0) chan_give_back(h, id, cls);
  zc_unlock(&h->lock);
  if (r != 0) errno = EINVAL;
  return r;
}

/* zc_chan_loan_resize on the publisher's allocator (the hub: the same cases and the same lock as
 * zc_pub_loan); waiting for memory follows the policy as zc_pub_loan does, ZC_PUB_EVICT included. */
void *zc_pub_loan_resize(zc_pub_t *p, void *buf, size_t n, size_t keep) {
  if (p == NULL) return errno = EINVAL, NULL;
  zc_chan_t *h = p->hub;
  for (;;) {
    void *q = zc_chan_loan_resize(h, buf, n, keep);
    if (q != NULL || errno != ETIMEDOUT || h->cfg.policy != ZC_PUB_EVICT) return q;
    zc_lock(&h->lock);
    int who = slowest(p);
    if (who >= 0)
      link_drop(p, (unsigned)who, DROP_EVICT,
                "evicted: it held messages whose memory the publisher waited for during block_timeout_ms");
    zc_unlock(&h->lock);
    if (who < 0) return errno = ETIMEDOUT, NULL;
  }
}

/* Room for one more message of len bytes in every live link's ring and queue budget, by the policy
 * (links whose subscriber died or broke the protocol are dropped on the way). *unwoken: links given
 * descriptors not yet followed by a wake; they are woken before any wait (a subscriber must not sleep on
 * what was published while we wait for it). 0, or -1 with errno. */
static int room_for(zc_pub_t *p, uint32_t len, uint64_t *deadline, uint32_t *unwoken) {
  zc_chan_t *h = p->hub;
  for (;;) {
    if (chan_dead(h) != 0) return -1;
    int blocked = -1;
    for (uint32_t m = p->live; m != 0 && blocked < 0; m &= m - 1) {
      unsigned i = (unsigned)__builtin_ctz(m);
      int room = chan_queue_room(p->link[i].ch, len);
      if (room < 0) link_drop(p, i, DROP_PROTO, NULL); /* a garbage tail: that link is closed */
      else if (room == 0) blocked = (int)i;
    }
    if (blocked < 0) return 0;
    if (h->cfg.policy == ZC_CHAN_FAIL) { /* unless it is full because its subscriber is gone */
      zc_chan_t *l = p->link[blocked].ch;
      if (chan_producer_peer_check(l) != 0) {
        link_drop(p, (unsigned)blocked, errno == EPROTO ? DROP_PROTO : DROP_LEFT, NULL);
        continue;
      }
      h->full_waits++;
      return errno = EAGAIN, -1;
    }
    for (uint32_t m = *unwoken & p->live; m != 0; m &= m - 1) chan_wake_consumer(p->link[__builtin_ctz(m)].ch);
    *unwoken = 0;
    if (pub_wait(p, deadline, blocked, true) == 0) continue;
    if (errno != ETIMEDOUT || h->cfg.policy != ZC_PUB_EVICT) return -1;
    link_drop(p, (unsigned)blocked, DROP_EVICT, "evicted: its ring or queue budget stayed full for block_timeout_ms");
    *deadline = 0;
  }
}

/* A loan about to be published: where it is, found under the hub's lock. */
typedef struct pub_loan_s {
  uint32_t id, off;
  unsigned cls, seg;
  size_t bytes;
} pub_loan_t;

/* Locked: is buf a live loan that holds len bytes? 0, or -1: EINVAL (not a loan), EMSGSIZE (len beyond it:
 * the loan is given back). Checked before room_for, so a bad send fails at once: it never waits for room,
 * and under ZC_PUB_EVICT never cuts off a subscriber on its way to failing. */
static int pub_loan_check(zc_chan_t *h, void *buf, uint32_t len, pub_loan_t *lf) {
  if (chan_find_loan_at(h, buf, &lf->id, &lf->cls, &lf->off, &lf->seg) != 0) return errno = EINVAL, -1;
  lf->bytes = chan_slot_bytes(h, lf->id, lf->cls);
  if (len > lf->bytes) {
    chan_give_back(h, lf->id, lf->cls);
    return errno = EMSGSIZE, -1;
  }
  return 0;
}

/* Locked: pub_loan_check, then room on every live link; the loan is looked up again if room_for waited
 * (it drops the lock: another thread may have cancelled or resized the loan meanwhile). */
static int pub_room_for_loan(zc_pub_t *p, void *buf, uint32_t len, pub_loan_t *lf, uint64_t *deadline,
                             uint32_t *unwoken) {
  zc_chan_t *h = p->hub;
  if (pub_loan_check(h, buf, len, lf) != 0) return -1;
  uint64_t waits = h->full_waits; /* every wait of room_for counts one */
  if (room_for(p, len, deadline, unwoken) != 0) return -1;
  return h->full_waits == waits ? 0 : pub_loan_check(h, buf, len, lf);
}

/* Publish the loan lf (pub_room_for_loan said yes) on every live link, without waking anyone. Returns
 * the number of links. */
static int publish(zc_pub_t *p, const pub_loan_t *lf, uint32_t len, uint32_t type) {
  zc_chan_t *h = p->hub;
  uint32_t id = lf->id, off = lf->off;
  unsigned cls = lf->cls, seg = lf->seg;
  size_t bytes = lf->bytes;
  uint32_t mask = p->live;
  h->sent++;
  if (mask == 0) { /* nobody listens: the memory comes back at once */
    chan_give_back(h, id, cls);
    p->unheard++;
    return 0;
  }
  chan_slot_t *sl = chan_slot_of(h, id);
  uint64_t handle = chan_handle(seg, off, sl->gen_state >> 2);
  int k = 0;
  for (uint32_t m = mask; m != 0; m &= m - 1, k++) {
    unsigned i = (unsigned)__builtin_ctz(m);
    zc_chan_t *l = p->link[i].ch;
    uint64_t pos = l->p_head;
    chan_desc_t *d = &l->ring[pos & (l->ring_cap - 1)];
    __atomic_store_n(&d->handle, handle, __ATOMIC_RELAXED);
    __atomic_store_n(&d->len, len, __ATOMIC_RELAXED);
    __atomic_store_n(&d->type, type, __ATOMIC_RELAXED);
    CHAN_STORE(&d->seq, pos + 1); /* publishes the descriptor and the payload written before it */
    l->qlen[pos & (l->ring_cap - 1)] = len;
    l->q_bytes += len;
    l->p_head = pos + 1;
    l->sent++;
    p->link[i].held++;
  }
  sl->next = mask;
  sl->gen_state = (sl->gen_state & ~3u) | SLOT_SENT;
  h->loaned_msgs--;
  h->loaned_bytes -= bytes;
  h->inflight_msgs++;
  h->inflight_bytes += bytes;
  p->deliveries += (uint64_t)k;
  return k;
}

/* Under the lock (a link is unmapped only under it): no system call unless that subscriber sleeps or
 * its event loop is armed. */
static void wake_links(zc_pub_t *p, uint32_t links) {
  for (uint32_t m = links & p->live; m != 0; m &= m - 1) chan_wake_consumer(p->link[__builtin_ctz(m)].ch);
}

int zc_pub_send(zc_pub_t *p, void *buf, size_t len, uint32_t type) {
  if (p == NULL) return errno = EINVAL, -1;
  if (len > UINT32_MAX) {
    zc_pub_cancel(p, buf);
    return errno = EMSGSIZE, -1;
  }
  zc_chan_t *h = p->hub;
  uint64_t deadline = 0;
  uint32_t unwoken = 0;
  zc_lock(&h->lock);
  pub_loan_t lf;
  int r = pub_room_for_loan(p, buf, (uint32_t)len, &lf, &deadline, &unwoken);
  if (r == 0) r = publish(p, &lf, (uint32_t)len, type);
  if (__builtin_expect(r >= 0, 1)) {
    wake_links(p, p->live);
    zc_unlock(&h->lock);
    return r;
  }
  int e = errno;
  zc_unlock(&h->lock);
  errno = e;
  return r;
}

/* Every message waits for room as zc_pub_send does; the subscribers are woken once, at the end (and
 * before any wait). A subscriber cut off or found dead midway simply gets no more (its references are
 * let go); one that joins midway is not in the batch: links are added under the same lock. */
int zc_pub_send_batch(zc_pub_t *p, const zc_chan_msg_t *msgs, int n) {
  if (p == NULL || msgs == NULL || n <= 0) return errno = EINVAL, -1;
  zc_chan_t *h = p->hub;
  uint64_t deadline = 0;
  uint32_t unwoken = 0;
  int done = 0, err = 0;
  zc_lock(&h->lock);
  while (done < n) {
    const zc_chan_msg_t *m = &msgs[done];
    pub_loan_t lf;
    if (pub_room_for_loan(p, (void *)m->data, m->len, &lf, &deadline, &unwoken) != 0) {
      err = errno;
      break;
    }
    publish(p, &lf, m->len, m->type);
    unwoken |= p->live;
    done++;
  }
  if (err != 0 && chan_dead(h) != 0) { /* the publisher failed: the loans not sent go back */
    for (int i = done; i < n; i++) {
      uint32_t id;
      unsigned cls;
      if (chan_find_loan(h, msgs[i].data, &id, &cls) == 0) chan_give_back(h, id, cls);
    }
  }
  wake_links(p, unwoken);
  zc_unlock(&h->lock);
  if (done == 0) return errno = err, -1;
  return done;
}

/* ---- the rest ---- */

/* Subscribers already waiting on the listener, without waiting for more (each one's handshake may take
 * up to setup_timeout_ms; at ZC_PUB_MAX_SUBS each is turned away, EBUSY). Afterwards the listener is quiet. */
static void accept_waiting(zc_pub_t *p) {
  int e = errno;
  for (int k = 0; p->lfd >= 0 && k < ZC_PUB_MAX_SUBS; k++)
    if (zc_pub_accept(p, 0) < 0 && errno == EAGAIN) break; /* EBUSY: that joiner was turned away */
  errno = e;
}

long zc_pub_collect(zc_pub_t *p) {
  if (p == NULL) return errno = EINVAL, -1;
  zc_chan_t *h = p->hub;
  zc_lock(&h->lock);
  check_links(p);
  chan_pub_drain(h);
  long r = chan_dead(h) != 0 ? -1 : (long)h->inflight_msgs;
  int e = errno;
  zc_unlock(&h->lock);
  if (r >= 0) accept_waiting(p);
  errno = e;
  return r;
}

int zc_pub_subscribers(zc_pub_t *p) {
  if (p == NULL) return errno = EINVAL, -1;
  zc_lock(&p->hub->lock);
  int n = __builtin_popcount(p->live);
  zc_unlock(&p->hub->lock);
  return n;
}

int zc_pub_fd(zc_pub_t *p) { return p ? p->lfd : (errno = EINVAL, -1); }

int zc_pub_event_fd(zc_pub_t *p) { return p ? p->ep : (errno = EINVAL, -1); }

/* As zc_chan_arm_space, over every live link: take in what came back, then arm each link and look again
 * after the flag is visible (the subscriber's take or release after our look sees it and kicks). Like
 * zc_pub_collect it handles everything that makes the event fd readable (joiners, deaths, wake-up
 * records), so the fd is quiet when it returns 0 until one of those happens again. */
int zc_pub_arm_space(zc_pub_t *p) {
  if (p == NULL) return errno = EINVAL, -1;
  zc_chan_t *h = p->hub;
  accept_waiting(p); /* a joiner would keep the event fd readable: the caller is about to wait on it */
  zc_lock(&h->lock);
  int r = chan_dead(h);
  if (r != 0) goto out;
  uint32_t live = p->live;
  uint64_t back = h->returned + h->reclaimed;
  check_links(p); /* drains the kicks that made the fd readable, drops the dead */
  chan_pub_drain(h);
  r = 1;
  if (p->live != live || h->returned + h->reclaimed != back) goto out; /* memory came back */
  for (uint32_t m = p->live; m != 0; m &= m - 1) {
    unsigned i = (unsigned)__builtin_ctz(m);
    zc_chan_t *l = p->link[i].ch;
    uint64_t tail = l->p_tail;
    if (chan_queue_room(l, UINT32_MAX) < 0) link_drop(p, i, DROP_PROTO, NULL); /* refreshes p_tail */
    if (!(p->live & (1u << i)) || l->p_tail != tail) goto out;                 /* ring room came back */
  }
  for (uint32_t m = p->live; m != 0; m &= m - 1)
    __atomic_fetch_or(&p->link[__builtin_ctz(m)].ch->ctl->p_wait, CHAN_SPACE_ARMED, __ATOMIC_SEQ_CST);
  chan_fence(); /* flag stores before the tail and ret_head loads: pairs with the consumer's wake_producer */
  r = 0;
  for (uint32_t m = p->live; m != 0 && r == 0; m &= m - 1) {
    zc_chan_t *l = p->link[__builtin_ctz(m)].ch;
    if (CHAN_LOAD(&l->ctl->tail) != l->p_tail || CHAN_LOAD(&l->ctl->ret_head) != l->p_ret_tail) r = 1;
  }
out: {
  int e = errno;
  zc_unlock(&h->lock);
  errno = e;
  return r;
}
}

size_t zc_pub_max_msg(zc_pub_t *p) {
  if (p == NULL) return 0;
  zc_lock(&p->hub->lock);
  size_t r = chan_max_msg_locked(p->hub);
  zc_unlock(&p->hub->lock);
  return r;
}

const char *zc_pub_error(zc_pub_t *p) {
  if (p == NULL) return "no publisher (NULL)";
  return p->hub->err[0] ? p->hub->err : p->err;
}

void zc_pub_stats(zc_pub_t *p, zc_pub_stats_t *out) {
  memset(out, 0, sizeof *out);
  if (p == NULL) return;
  zc_chan_t *h = p->hub;
  zc_chan_stats_t *c = &out->chan;
  zc_lock(&h->lock);
  c->loaned_msgs = h->loaned_msgs;
  c->loaned_bytes = h->loaned_bytes;
  c->inflight_msgs = h->inflight_msgs;
  c->inflight_bytes = h->inflight_bytes;
  c->segment_bytes = h->seg_bytes;
  c->free_bytes = h->seg_bytes - h->used_bytes;
  c->segments = h->nseg;
  c->sent = h->sent;
  c->returned = h->returned;
  c->reclaimed = h->reclaimed;
  c->full_waits = h->full_waits;
  c->rejected = __atomic_load_n(&h->rejected, __ATOMIC_RELAXED);
  c->sleeps = __atomic_load_n(&h->sleeps, __ATOMIC_RELAXED);
  for (uint32_t m = p->live; m != 0; m &= m - 1) {
    zc_chan_t *l = p->link[__builtin_ctz(m)].ch;
    c->queued += l->p_head - l->p_tail; /* as last seen */
    c->queued_bytes += l->q_bytes;
    c->wakes += __atomic_load_n(&l->wakes, __ATOMIC_RELAXED);
  }
  out->subscribers = (uint64_t)__builtin_popcount(p->live);
  out->joined = p->joined;
  out->left = p->left;
  out->evicted = p->evicted;
  out->cut_off = p->cut_off;
  out->dropped = p->dropped;
  out->unheard = p->unheard;
  out->deliveries = p->deliveries;
  zc_unlock(&h->lock);
}

void zc_pub_close(zc_pub_t *p) {
  if (p == NULL) return;
  for (unsigned i = 0; i < ZC_PUB_MAX_SUBS; i++) zc_chan_close(p->link[i].ch);
  for (unsigned k = 0; k < CHAN_SEG_MAX; k++) zc_os_close(p->fds[k]);
  zc_os_close(p->lfd);
  zc_os_close(p->ep);
  if (p->hub != NULL) p->hub->ctl = NULL; /* ours, not a mapping */
  zc_chan_close(p->hub);
  chan_private_free(p, sizeof *p);
}

/* path: a file-system socket; name: an abstract one (already "zcmem-pub.<uid>.<name>"); both NULL: none. */
static zc_pub_t *pub_open(const char *path, const char *name, const zc_chan_config_t *cfg) {
  if (cfg != NULL && cfg->n_peer_uids > PUB_MAX_UIDS) return errno = EINVAL, NULL;
  zc_pub_t *p = chan_private_alloc(sizeof *p);
  if (p == NULL) return errno = ENOMEM, NULL;
  p->lfd = -1;
  p->ep = -1;
  for (unsigned k = 0; k < CHAN_SEG_MAX; k++) p->fds[k] = -1;
  if (cfg != NULL) {
    p->ucfg = *cfg;
    if (cfg->peer_uids != NULL && cfg->n_peer_uids != 0) {
      memcpy(p->uids, cfg->peer_uids, cfg->n_peer_uids * sizeof *p->uids);
      p->ucfg.peer_uids = p->uids;
    }
  }
  int e = 0;
  p->hub = chan_hub_new(&p->ucfg, p);
  if (p->hub == NULL) {
    e = errno;
  } else {
    p->hub_ctl.ret_head = 1; /* p_ret_tail stays 0 and ret_cap 0: every drain is the publisher's */
    p->hub->ctl = &p->hub_ctl;
    zc_lock(&p->hub->lock);
    if (chan_producer_grow(p->hub, 0) != 0) e = errno;
    zc_unlock(&p->hub->lock);
  }
  if (e == 0 && (p->ep = zc_os_epoll_create()) < 0) e = errno;
  if (e == 0 && path != NULL && (p->lfd = zc_chan_listen(path)) < 0) e = errno;
  if (e == 0 && name != NULL && (p->lfd = zc_os_unix_listen_abstract(name)) < 0) e = errno;
  if (e == 0 && p->lfd >= 0 && zc_os_epoll_add(p->ep, p->lfd, PUB_LISTEN_TAG) != 0) e = errno;
  if (e != 0) {
    zc_pub_close(p);
    return errno = e, NULL;
  }
  return p;
}

zc_pub_t *zc_pub_listen(const char *path, const zc_chan_config_t *cfg) { return pub_open(path, NULL, cfg); }

/* ---- by name: "zcmem-pub.<uid>.<name>" in the abstract UNIX namespace (nothing in the file system) ---- */

static int pub_name(char *full, size_t cap, const char *name, uint32_t uid) {
  if (name == NULL || name[0] == 0) return errno = EINVAL, -1;
  if (strlen(name) > 80) return errno = ENAMETOOLONG, -1;
  zc_format(full, cap, "zcmem-pub.%u.%s", uid, name);
  return 0;
}

zc_pub_t *zc_pub_listen_name(const char *name, const zc_chan_config_t *cfg) {
  char full[108];
  if (pub_name(full, sizeof full, name, zc_os_euid()) != 0) return NULL;
  return pub_open(NULL, full, cfg);
}

zc_chan_t *zc_pub_subscribe(const char *name, uint32_t owner_uid, const zc_chan_config_t *cfg) {
  char full[108];
  if (pub_name(full, sizeof full, name, owner_uid ? owner_uid : zc_os_euid()) != 0) return NULL;
  int fd = zc_os_unix_connect_abstract(full);
  return fd < 0 ? NULL : zc_chan_open(fd, ZC_CHAN_CONSUMER, cfg); /* checks the publisher's uid (peer_uids) */
}
