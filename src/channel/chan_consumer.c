/* Layer 9, zero-copy channel: the consumer. Takes descriptors from the ring, checks each one against the
 * segments it has mapped, hands out read-only views, pushes released handles on the return ring, and
 * waits (spin, then futex) when the ring is empty.
 *
 * Invariants: c_tail and c_ret_head are private and only copied out to the control segment; a descriptor
 * counts as published only if its sequence word is exactly c_tail + 1 (anything but that or the previous
 * lap's value closes the channel); it is loaded once into locals and its segment, offset and length are
 * checked so that the view lies inside a mapped segment before the user sees it. A hostile producer can make us read garbage payloads, never memory
 * outside its segments.
 * Threads: one consumer thread at a time (no lock).
 */
#include "chan_internal.h"
#include "options.h"

#include <errno.h>
#include <string.h>

#define CHAN_SLICE_NS 50000000 /* a sleeping consumer looks at the socket this often */

static int consumer_check(zc_chan_t *ch) {
  if (ch == NULL || ch->role != ZC_CHAN_CONSUMER) return errno = EINVAL, -1;
  return chan_dead(ch);
}

/* Make the producer's socket readable with at most one record it has not read (an armed event loop). */
static void kick_producer(zc_chan_t *ch) {
  if (zc_os_unix_unread(ch->sock) != 0) return; /* a kick is still unread: the socket is readable already */
  chan_wire_t k = {CHAN_MAGIC, WIRE_KICK, ZC_CHAN_CONSUMER, 0, 0, 0};
  zc_os_msg_send(ch->sock, &k, sizeof k, -1, false); /* never blocks; a full socket is readable anyway */
  ch->wakes++;
}

static __attribute__((noinline)) void wake_producer_slow(zc_chan_t *ch, uint32_t pw) {
  chan_ctl_t *ctl = ch->ctl;
  if (pw & ~CHAN_SPACE_ARMED) {
    __atomic_fetch_add(&ctl->space_word, 1, __ATOMIC_RELEASE);
    zc_os_futex_wake_shared(&ctl->space_word, 1 << 30);
    ch->wakes++;
  }
  /* Clearing the flag makes this the only kick for this arming (a hostile producer that keeps setting it
   * costs us an ioctl per message, never more than one unread record). */
  if ((pw & CHAN_SPACE_ARMED) && (__atomic_fetch_and(&ctl->p_wait, ~CHAN_SPACE_ARMED, __ATOMIC_ACQ_REL) & CHAN_SPACE_ARMED))
    kick_producer(ch);
}

static inline void wake_producer(zc_chan_t *ch) {
  chan_fence(); /* tail/ret_head store before the p_wait load */
  uint32_t pw = CHAN_LOAD_RELAXED(&ch->ctl->p_wait);
  if (__builtin_expect(pw != 0, 0)) wake_producer_slow(ch, pw); /* nobody waits: no system call */
}

/* The sequence the slot at position pos holds while it waits for its descriptor: 0 on the first lap,
 * else what the previous lap published. */
static inline bool seq_empty(zc_chan_t *ch, uint64_t pos, uint64_t s) {
  return pos < ch->ring_cap ? s == 0 : s == pos + 1 - ch->ring_cap;
}

/* Could the next descriptor be there? (A garbage sequence counts as yes: take() rejects it.) */
static inline bool maybe_ready(zc_chan_t *ch) {
  uint64_t s = CHAN_LOAD_RELAXED(&ch->ring[ch->c_tail & (ch->ring_cap - 1)].seq);
  return !seq_empty(ch, ch->c_tail, s);
}

static void flush_pend(zc_chan_t *ch);

/* Releases waiting in the overflow list beyond this stop the consumer from taking new messages until the
 * producer takes some back: the list then holds at most this many plus what the application itself held
 * when it released them (a producer that republishes a handle and never drains cannot grow it further). */
static inline bool pend_full(zc_chan_t *ch) { return ch->npend >= ch->ret_cap; }

/* Take up to max descriptors: 0 if the ring is empty (or pend_full), -1 if the channel failed. */
static int take(zc_chan_t *ch, zc_chan_msg_t *out, int max) {
  if (__builtin_expect(ch->npend != 0, 0)) {
    flush_pend(ch);
    if (pend_full(ch) && !ch->eof) return chan_dead(ch); /* after the producer's end: take what is left */
  }
  int n = 0;
  while (n < max) {
    const chan_desc_t *d = &ch->ring[ch->c_tail & (ch->ring_cap - 1)];
    uint64_t s = CHAN_LOAD(&d->seq);
    if (s != ch->c_tail + 1) {
      if (seq_empty(ch, ch->c_tail, s)) break; /* not published yet */
      ch->rejected++;
      chan_fail(ch, EPROTO, "descriptor %lu has sequence %lu: neither published nor empty", (unsigned long)ch->c_tail,
                (unsigned long)s);
      break;
    }
    uint64_t h = CHAN_LOAD_RELAXED(&d->handle); /* each field loaded once: the producer may rewrite it */
    uint32_t len = CHAN_LOAD_RELAXED(&d->len), type = CHAN_LOAD_RELAXED(&d->type);
    unsigned seg = chan_handle_seg(h);
    uint64_t off = chan_handle_off(h);
    if (seg >= ch->nseg && seg < CHAN_SEG_MAX && chan_consumer_poll_socket(ch) != 0) break;
    const char *why = NULL;
    if (seg >= ch->nseg) why = "segment not announced";
    else if (off & 15) why = "misaligned offset";
    else if (len > ZC_CHAN_MAX_MSG && (off & (CHAN_PAGE_SIZE - 1)) != 0)
      why = "length too large for a slot (a message above 64 KiB starts at a page boundary)";
    else if (off + len > ch->seg[seg].size) why = "message runs past the end of its segment";
    if (why) {
      ch->rejected++;
      chan_fail(ch, EPROTO, "invalid descriptor from the producer (segment %u, offset %lu, length %u): %s", seg,
                (unsigned long)off, len, why);
      break;
    }
    out[n].data = ch->seg[seg].base + off;
    out[n].len = len;
    out[n].type = type;
    out[n].handle = h;
    ch->held_bytes += len;
    ch->c_tail++;
    n++;
  }
  /* Messages taken before a failure are still good: hand them out; the next call reports the failure. */
  if (n == 0) return chan_dead(ch);
  ch->held_msgs += (uint64_t)n;
  ch->received += (uint64_t)n;
  CHAN_STORE(&ch->ctl->tail, ch->c_tail);
  wake_producer(ch);
  return n;
}

/* Sleep until the ring may be non-empty, the deadline passes or the slice ends. */
static void sleep_once(zc_chan_t *ch, uint64_t deadline) {
  chan_ctl_t *ctl = ch->ctl;
  flush_pend(ch);
  uint32_t w = CHAN_LOAD(&ctl->data_word);
  chan_test_point(CHAN_TP_SLEEP); /* a send from here on sees c_wait 0 and wakes nobody: the look below finds it */
  __atomic_fetch_or(&ctl->c_wait, CHAN_SLEEPING, __ATOMIC_SEQ_CST);
  chan_fence(); /* flag store before the ring and ret_tail loads: pairs with wake_consumer */
  if (pend_full(ch)) flush_pend(ch); /* a drain just before the flag was set did not wake us */
  if (pend_full(ch) || !maybe_ready(ch)) { /* the producer's next drain of the return ring wakes us */
    uint64_t now = zc_os_clock_ns(), left = now < deadline ? deadline - now : 0;
    ch->sleeps++;
    if (zc_os_futex_wait_shared(&ctl->data_word, w, (int64_t)(left < CHAN_SLICE_NS ? left : CHAN_SLICE_NS)) != 0)
      chan_consumer_poll_socket(ch); /* timed out: is the producer still there? */
  }
  __atomic_fetch_and(&ctl->c_wait, ~CHAN_SLEEPING, __ATOMIC_RELAXED);
}

int zc_chan_receive_batch(zc_chan_t *ch, zc_chan_msg_t *out, int max, int timeout_ms) {
  if (max <= 0 || out == NULL) return errno = EINVAL, -1;
  if (consumer_check(ch) != 0) return -1;
  int n = take(ch, out, max);
  if (n != 0) return n;
  if (timeout_ms == 0 && !ch->eof) return errno = EAGAIN, -1; /* a poll reads no clock */
  uint64_t now = zc_os_clock_ns();
  uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : now + (uint64_t)timeout_ms * 1000000u;
  uint64_t spin_end = now + (uint64_t)ch->cfg.spin_ns;
  for (;;) {
    if (ch->eof) {
      /* the producer is gone; a last look at the ring (it may have published before dying) */
      n = take(ch, out, max);
      if (n != 0) return n;
      return chan_fail(ch, EPIPE, "the producer closed or died");
    }
    if (timeout_ms == 0) return errno = EAGAIN, -1;
    now = zc_os_clock_ns();
    if (now >= deadline) return errno = ETIMEDOUT, -1;
    if (now < spin_end && !pend_full(ch)) {
      for (int i = 0; i < 16 && !maybe_ready(ch); i++) chan_pause();
    } else {
      sleep_once(ch, deadline);
      if (chan_dead(ch) != 0) return -1;
    }
    n = take(ch, out, max);
    if (n != 0) return n;
  }
}

int zc_chan_receive(zc_chan_t *ch, zc_chan_msg_t *out, int timeout_ms) {
  return zc_chan_receive_batch(ch, out, 1, timeout_ms) == 1 ? 0 : -1;
}

/* Push handles (h[i], or m[i].handle if h is NULL) on the return ring as far as it has room; returns how
 * many went. */
static size_t push_returns(zc_chan_t *ch, const uint64_t *h, const zc_chan_msg_t *m, size_t n) {
  uint64_t room = ch->ret_cap - (ch->c_ret_head - ch->c_ret_tail);
  if (room < n) {
    uint64_t t = CHAN_LOAD(&ch->ctl->ret_tail);
    /* a garbage ret_tail only costs us room: never trust it beyond what we pushed */
    if (t - ch->c_ret_tail <= ch->c_ret_head - ch->c_ret_tail) ch->c_ret_tail = t;
    room = ch->ret_cap - (ch->c_ret_head - ch->c_ret_tail);
  }
  size_t k = n < room ? n : (size_t)room;
  uint64_t *ring = ch->ret, mask = ch->ret_cap - 1, at = ch->c_ret_head;
  for (size_t i = 0; i < k; i++) __atomic_store_n(&ring[(at + i) & mask], h ? h[i] : m[i].handle, __ATOMIC_RELAXED);
  ch->c_ret_head += k;
  return k;
}

static int pend_push(zc_chan_t *ch, uint64_t h) {
  /* An honest producer never has more messages out than its segments have 64-byte slots; more pending
   * releases than that means it stopped taking them back (a hostile producer growing our memory). */
  uint64_t slots = 0;
  for (unsigned i = 0; i < ch->nseg; i++) slots += ch->seg[i].size / CHAN_MIN_CLASS_SIZE;
  if (ch->npend >= slots)
    return chan_fail(ch, EPROTO, "the producer does not take back released messages (%lu pending)", (unsigned long)ch->npend);
  if (ch->npend == ch->pend_cap) {
    size_t cap = ch->pend_cap ? ch->pend_cap * 2 : 4096;
    uint64_t *p = chan_private_alloc(cap * sizeof *p);
    if (p == NULL) return chan_fail(ch, ENOMEM, "out of memory for pending releases");
    if (ch->npend) memcpy(p, ch->pend, ch->npend * sizeof *p);
    chan_private_free(ch->pend, ch->pend_cap * sizeof *p);
    ch->pend = p;
    ch->pend_cap = cap;
  }
  ch->pend[ch->npend++] = h;
  return 0;
}

int zc_chan_release_batch(zc_chan_t *ch, const zc_chan_msg_t *msgs, int n) {
  if (n < 0 || (n > 0 && msgs == NULL)) return errno = EINVAL, -1;
  if (ch == NULL || ch->role != ZC_CHAN_CONSUMER) return errno = EINVAL, -1;
  for (int i = 0; i < n; i++) {
    ch->held_msgs--;
    ch->held_bytes -= msgs[i].len;
  }
  ch->released += (uint64_t)n;
  if (chan_dead(ch) != 0) return 0; /* nobody to give them to; the producer reclaimed them at EOF */
  uint64_t before = ch->c_ret_head;
  flush_pend(ch); /* releases that did not fit earlier go first, in order */
  size_t k = ch->npend ? 0 : push_returns(ch, NULL, msgs, (size_t)n);
  for (size_t i = k; i < (size_t)n; i++)
    if (pend_push(ch, msgs[i].handle) != 0) return -1;
  if (ch->c_ret_head != before) {
    CHAN_STORE(&ch->ctl->ret_head, ch->c_ret_head);
    wake_producer(ch);
  }
  return 0;
}

/* Push what the return ring could not take earlier (the producer had not drained it). Called from every
 * release and receive, and before sleeping; the producer nudges us when it drains a full ring. */
static void flush_pend(zc_chan_t *ch) {
  if (ch->npend == 0 || chan_dead(ch) != 0) return;
  size_t k = push_returns(ch, ch->pend, NULL, ch->npend);
  if (k == 0) return;
  memmove(ch->pend, ch->pend + k, (ch->npend - k) * sizeof *ch->pend);
  ch->npend -= k;
  CHAN_STORE(&ch->ctl->ret_head, ch->c_ret_head);
  wake_producer(ch);
}

int zc_chan_release(zc_chan_t *ch, const zc_chan_msg_t *m) { return zc_chan_release_batch(ch, m, 1); }

/* An arm that says 1 leaves no wake-up behind: the caller, told that messages wait, takes them and arms
 * again before it sleeps, so a kick for an arming of ours would only make the fd readable with nothing to
 * do (an event loop's wasted wake-up and look). Our flag may still be up (raised by this call before its
 * second look found a message, or by an earlier arm whose fd became readable for another record): take it
 * back. The producer clears the flag with one atomic and kicks only if it was set, so exactly one of us
 * clears it: if the producer did, its kick is due (sent, or about to be) and the next arm reads it
 * (kick_due), quiet or not. A flag in shared memory is only a hint: a hostile producer that clears it
 * without kicking costs one read that finds nothing, one that sets it costs one atomic. */
static int arm_ready(zc_chan_t *ch) {
  if ((CHAN_LOAD_RELAXED(&ch->ctl->c_wait) & CHAN_ARMED) &&
      (__atomic_fetch_and(&ch->ctl->c_wait, ~CHAN_ARMED, __ATOMIC_ACQ_REL) & CHAN_ARMED)) {
    ch->armed = 0; /* taken back: no kick comes */
    return 1;
  }
  if (ch->armed) ch->kick_due = 1; /* the producer took it: its kick is ours to read */
  ch->armed = 0;
  return 1;
}

static int arm(zc_chan_t *ch, bool drain) {
  if (consumer_check(ch) != 0) return -1;
  /* drains the earlier kick (or the one due), maps new segments */
  if ((drain || ch->kick_due) && chan_consumer_poll_kick(ch) != 0) return -1;
  ch->kick_due = 0; /* read, or late: a kick that comes after all keeps the fd readable for one more look */
  flush_pend(ch); /* a producer starved of memory may be waiting for these while we sleep in epoll */
  chan_test_point(CHAN_TP_ARM_LOOK);
  if (maybe_ready(ch) && !pend_full(ch)) return arm_ready(ch);
  if (ch->eof) return chan_fail(ch, EPIPE, "the producer closed or died");
  chan_test_point(CHAN_TP_ARM); /* a send from here on sees c_wait 0 and kicks nobody: the look below finds it */
  __atomic_fetch_or(&ch->ctl->c_wait, CHAN_ARMED, __ATOMIC_SEQ_CST);
  ch->armed = 1;
  chan_fence(); /* flag store before the ring and ret_tail loads: pairs with wake_consumer */
  chan_test_point(CHAN_TP_ARMED); /* a send from here on kicks, and the look below finds its message too */
  if (pend_full(ch)) flush_pend(ch);
  return maybe_ready(ch) && !pend_full(ch) ? arm_ready(ch) : 0;
}

int zc_chan_arm(zc_chan_t *ch) { return arm(ch, true); }

/* Without the socket read: an unread record (a kick, a segment, the end) keeps the fd readable, and the
 * caller's next zc_chan_arm after epoll reports it reads it. */
int zc_chan_arm_quiet(zc_chan_t *ch) { return arm(ch, false); }

void chan_consumer_stats(zc_chan_t *ch, zc_chan_stats_t *out) {
  out->held_msgs = ch->held_msgs;
  out->held_bytes = ch->held_bytes;
  out->received = ch->received;
  out->released = ch->released;
  out->segments = ch->nseg;
  uint64_t b = 0;
  for (unsigned i = 0; i < ch->nseg; i++) b += ch->seg[i].size;
  out->segment_bytes = b;
  uint64_t q = 0; /* published descriptors not taken yet */
  while (ch->ctl && q < ch->ring_cap && CHAN_LOAD(&ch->ring[(ch->c_tail + q) & (ch->ring_cap - 1)].seq) == ch->c_tail + q + 1) q++;
  out->queued = q;
}
