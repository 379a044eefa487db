/* Layer 10, channel services: the message path. Loan, send, request, reply, receive, call, release.
 *
 * Correlation: a request's id is gen << 32 | index of an entry of the private pending table (src/shared/pend_table.h), which records
 * the connection (index and generation) the request went to. A REPLY is accepted only if its id names an
 * entry that is waiting (or abandoned), has that generation and that connection; the entry is then freed
 * and its generation bumped, so a second reply with the same id, a reply to an id never sent, an id of
 * another connection or an old id all close the connection as hostile (EPROTO) without reaching the user.
 *
 * Sizes: a message is one channel message (header + the user's bytes), so its limit is the channel's
 * (zc_chan_max_msg of the connection's producer channel, minus the header): slots up to 64 KiB, runs of
 * whole pages above, contiguous and zero-copy either way. ZC_SVC_MAX_MSG is only the floor: a loan of
 * at most that size never fails with EMSGSIZE.
 *
 * The message path adds no system call and no copy to the channel's: a send is the channel's send plus
 * the 16-byte header written in place; a receive polls each connection's ring (zc_chan_receive with
 * timeout 0, no system call and no clock read when empty) and copies the 16-byte header out. System calls
 * happen only to sleep (epoll after arming every connection), and at most every check_ms to look for joins
 * and deaths (paced by the coarse clock, so up to one kernel tick late).
 */
#include "svc_internal.h"
#include "options.h"

#include <errno.h>
#include <string.h>

static inline void stat_add(uint64_t *c) { __atomic_fetch_add(c, 1, __ATOMIC_RELAXED); }
/* A counter only the receiving thread bumps (one thread at a time): no read-modify-write needed; the
 * atomic load and store keep zc_svc_stats' concurrent read well defined. */
static inline void stat_bump_receiver(uint64_t *c) {
  __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

/* ---- the set-aside queue (FIFO; s->lock held) ---- */
int svc_queue_push(zc_svc_t *s, const zc_svc_msg_t *m) {
  if (s->q_n == s->q_cap) {
    size_t page = zc_os_page_size(), cap = s->q_cap ? s->q_cap * 2 : 256;
    size_t bytes = (cap * sizeof *s->q + page - 1) & ~(page - 1);
    zc_svc_msg_t *q = zc_os_alloc_aligned(bytes, page);
    if (q == NULL) return svc_fail(s, ENOMEM, "out of memory for the set-aside queue: a message was lost");
    for (size_t i = 0; i < s->q_n; i++) q[i] = s->q[(s->q_head + i) % s->q_cap];
    if (s->q) zc_os_free(s->q, s->q_bytes);
    s->q = q;
    s->q_cap = cap;
    s->q_bytes = bytes;
    s->q_head = 0;
  }
  s->q[(s->q_head + s->q_n) % s->q_cap] = *m;
  s->q_n++;
  return 0;
}

static bool queue_pop(zc_svc_t *s, zc_svc_msg_t *m) {
  if (__atomic_load_n(&s->q_n, __ATOMIC_RELAXED) == 0) return false;
  zc_lock(&s->lock);
  bool got = s->q_n != 0;
  if (got) {
    *m = s->q[s->q_head];
    s->q_head = (s->q_head + 1) % s->q_cap;
    s->q_n--;
  }
  zc_unlock(&s->lock);
  return got;
}

/* ---- the pending table (src/shared/pend_table.h; s->lock held) ---- */
static void push_notice(void *owner, const zc_svc_msg_t *m) { svc_queue_push(owner, m); }

/* Connection idx died: every request it had not answered fails, each exactly once. */
void svc_fail_pending(zc_svc_t *s, uint32_t idx, int err) {
  svc_peer_t *p = &s->peers[idx];
  pend_fail_ctx_t f = {s->call_id, &s->call_err, idx, p->gen, err, push_notice, s};
  s->st.failed += pend_fail_peer(&s->pend, idx, p->gen, &p->pending, pend_fail_one, &f);
}

/* ---- receiving ---- */
static void raw_release(svc_peer_t *p, const zc_chan_msg_t *raw) {
  zc_lock(&p->in_lock);
  zc_chan_release(p->in, raw);
  zc_unlock(&p->in_lock);
  __atomic_fetch_sub(&p->held, 1, __ATOMIC_RELEASE);
}

/* Check a message from connection i and turn it into *m. 1: hand it out; 0: dropped (a late reply to an
 * abandoned request); -1: the connection broke the protocol (it is marked dead, nothing handed out). */
static int accept_msg(zc_svc_t *s, uint32_t i, svc_peer_t *p, const zc_chan_msg_t *raw, zc_svc_msg_t *m) {
  const char *why = NULL;
  svc_hdr_t h;
  int kind = (int)raw->type;
  memset(&h, 0, sizeof h);
  if (raw->len < ZC_SVC_HEADER) why = "a message shorter than the service header";
  else if (kind != ZC_SVC_REQUEST && kind != ZC_SVC_REPLY && kind != ZC_SVC_ONEWAY) why = "an unknown message kind";
  else memcpy(&h, raw->data, sizeof h); /* the header is read once (raw->len >= 16); only the copy is used */
  if (why == NULL && kind == ZC_SVC_REPLY) {
    zc_lock(&s->lock);
    int st = pend_match(&s->pend, h.id, i, p->gen);
    if (st < 0) {
      why = "a reply to no outstanding request of this connection (unknown, answered already, or another's)";
    } else {
      p->pending--;
      if (st == PEND_ABANDONED) {
        s->st.dropped++;
        zc_unlock(&s->lock);
        raw_release(p, raw);
        return 0;
      }
    }
    zc_unlock(&s->lock);
  }
  if (why) {
    svc_fail(s, EPROTO, "connection %u: %s (id 0x%llx, kind %d, %u bytes): closed", i, why,
             (unsigned long long)h.id, kind, raw->len);
    zc_report("service: %s", s->err);
    raw_release(p, raw);
    svc_peer_dead(s, i, EPROTO, 1);
    return -1;
  }
  m->data = (const char *)raw->data + ZC_SVC_HEADER;
  m->len = raw->len - ZC_SVC_HEADER;
  m->type = h.type;
  m->id = h.id;
  m->kind = kind;
  m->error = 0;
  m->peer = i;
  m->peer_gen = p->gen;
  m->raw = *raw;
  return 1;
}

/* One message from the connections, round robin, without waiting. 1 with *m, 0 if none. Dead
 * connections are drained (what they sent before dying is handed out), then reaped. */
static int take_one(zc_svc_t *s, zc_svc_msg_t *m) {
  uint32_t hi = s->hi;
  for (uint32_t k = 0; k < hi; k++) {
    uint32_t i = (s->rr_in + k) % hi;
    svc_peer_t *p = &s->peers[i];
    int st = __atomic_load_n(&p->state, __ATOMIC_ACQUIRE);
    if (st == PEER_FREE) continue;
    if (st == PEER_DEAD && __atomic_load_n(&p->drained, __ATOMIC_ACQUIRE)) {
      svc_peer_reap(s, i);
      continue;
    }
    zc_chan_msg_t raw;
    zc_lock(&p->in_lock);
    int r = zc_chan_receive(p->in, &raw, 0);
    int e = errno;
    zc_unlock(&p->in_lock);
    if (r != 0) {
      if (e == EAGAIN && st == PEER_OPEN) continue;
      p->armed = 0;
      svc_peer_dead(s, i, e == EAGAIN || e == EPIPE ? EPIPE : EPROTO, 1); /* dead and drained */
      if (e == EPROTO) svc_fail(s, EPROTO, "connection %u: %s", i, zc_chan_error(p->in));
      svc_peer_reap(s, i);
      continue;
    }
    __atomic_fetch_add(&p->held, 1, __ATOMIC_ACQUIRE);
    p->kicked |= p->armed; /* its producer saw the arm: a wake-up record is (or will be) in the socket */
    p->armed = 0;          /* arm again */
    s->took = 1;
    int v = accept_msg(s, i, p, &raw, m);
    if (v == 1) {
      s->rr_in = i + 1;
      return 1;
    }
    if (v < 0) svc_peer_reap(s, i);
    k--; /* look at the same connection again (a dropped reply), or at the slot's next state */
  }
  return 0;
}

/* The next message: from the set-aside queue (if use_queue), else from the connections; waits up to
 * timeout_ms (0: do not wait; < 0: forever). *deadline (ns) is computed from timeout_ms at the first wait
 * (0 until then; zc_svc_call keeps it across its calls). 0 with *m, or -1 (EAGAIN, ETIMEDOUT, EPIPE for a
 * connected endpoint whose connection is gone, or the error of the request zc_svc_call waits for).
 *
 * The path that finds a message reads no precise clock (about 100 ns in a VM): only the coarse one, to
 * look for joins and deaths every check_ms. While spinning, the connections are polled between single
 * pauses (a pause costs 40-140 ns on recent x86), so a message is seen within about one poll of its send;
 * the precise clock is read once per SVC_SPIN_POLLS polls. */
#define SVC_SPIN_POLLS 32
static int next_msg(zc_svc_t *s, zc_svc_msg_t *m, int timeout_ms, uint64_t *deadline, bool use_queue) {
  bool looked = false, spinning = false;
  uint64_t spin_end = 0;
  for (;;) {
    if (use_queue && queue_pop(s, m)) return 0;
    if (s->call_id != 0 && s->call_err != 0) return errno = s->call_err, -1;
    if (zc_os_clock_coarse_ns() >= s->next_look) svc_check(s, 0);
    if (take_one(s, m)) return 0;
    if ((use_queue && __atomic_load_n(&s->q_n, __ATOMIC_RELAXED) != 0) || (s->call_id != 0 && s->call_err != 0)) continue;
    if (s->connected && s->dead) return errno = s->dead, -1;
    if (timeout_ms == 0) {
      /* Nothing here: joins or deaths may be what woke the caller's epoll; then arm every connection
       * so that zc_svc_fd becomes readable at the next message (the caller sleeps in epoll next).
       * If messages were taken since the last look, they explain the wake-up: no epoll look now (the
       * arm below reads the wake-up records of the connections they came from). Anything else that is
       * ready (a joiner, an end of file, a space wake-up) keeps zc_svc_fd readable, so the caller's
       * epoll reports it again and the next call, having taken nothing, looks. */
      if (!looked) {
        looked = true;
        if (s->took) {
          s->took = 0;
        } else {
          svc_check(s, 0);
          continue;
        }
      }
      if (svc_arm_all(s)) {
        looked = false;
        continue;
      }
      return errno = EAGAIN, -1;
    }
    uint64_t now = zc_os_clock_ns();
    if (*deadline == 0) *deadline = timeout_ms < 0 ? UINT64_MAX : now + (uint64_t)timeout_ms * 1000000u;
    if (!spinning) {
      int spin = s->cfg.chan.spin_ns == 0 ? 20000 : (s->cfg.chan.spin_ns < 0 ? 0 : s->cfg.chan.spin_ns);
      spin_end = now + (uint64_t)spin;
      spinning = true;
    }
    if (now >= *deadline) return errno = ETIMEDOUT, -1;
    if (now < spin_end) {
      for (int i = 0; i < SVC_SPIN_POLLS; i++) {
        svc_pause();
        if (take_one(s, m)) return 0;
        if ((use_queue && __atomic_load_n(&s->q_n, __ATOMIC_RELAXED) != 0) || (s->call_id != 0 && s->call_err != 0)) break;
      }
      continue;
    }
    if (svc_arm_all(s)) continue;
    uint64_t left = *deadline == UINT64_MAX ? 50000000u : *deadline - now;
    if (left > 50000000u) left = 50000000u; /* look around at least every 50 ms */
    svc_check(s, (int)(left / 1000000u) + 1);
  }
}

int zc_svc_receive(zc_svc_t *s, zc_svc_msg_t *m, int timeout_ms) {
  if (s == NULL || m == NULL) return errno = EINVAL, -1;
  svc_space_taken(s);
  uint64_t dl = 0;
  if (next_msg(s, m, timeout_ms, &dl, true) != 0) return -1;
  stat_bump_receiver(&s->st.received);
  return 0;
}

int zc_svc_release(zc_svc_t *s, zc_svc_msg_t *m) {
  if (s == NULL || m == NULL) return errno = EINVAL, -1;
  if (m->kind == ZC_SVC_FAILED) {
    m->kind = 0;
    return 0;
  }
  if (m->kind < ZC_SVC_REQUEST || m->kind > ZC_SVC_ONEWAY) return errno = EINVAL, -1; /* released already? */
  svc_peer_t *p = svc_peer_get(s, m->peer, m->peer_gen, 1);
  if (p == NULL) return errno = EINVAL, -1;
  raw_release(p, &m->raw);
  svc_peer_put(p);
  m->kind = 0;
  m->data = NULL;
  return 0;
}

/* ---- sending ---- */
/* A loan on connection p: the caller raised p->held already (a loan keeps its connection's memory
 * mapped); it is dropped again if the channel has no loan to give. */
static void *loan_on(svc_peer_t *p, uint32_t idx, uint32_t gen, size_t n) {
  char *b = zc_chan_loan(p->out, n + ZC_SVC_HEADER);
  if (b == NULL) {
    int e = errno;
    __atomic_fetch_sub(&p->held, 1, __ATOMIC_RELEASE);
    errno = e;
    return NULL;
  }
  svc_hdr_t *h = (svc_hdr_t *)b;
  h->id = (uint64_t)gen << 32 | idx;
  h->type = 0;
  h->tag = SVC_LOAN_TAG;
  return b + ZC_SVC_HEADER;
}

/* n and the header must fit a channel message's 32-bit length; the channel checks its own limit
 * (zc_chan_max_msg) and fails the loan with EMSGSIZE above it. */
#define SVC_LEN_LIMIT ((size_t)UINT32_MAX - ZC_SVC_HEADER)

void *zc_svc_loan(zc_svc_t *s, size_t n) {
  if (s == NULL || n == 0 || n > SVC_LEN_LIMIT) {
    errno = s != NULL && n > SVC_LEN_LIMIT ? EMSGSIZE : EINVAL;
    return NULL;
  }
  svc_space_taken(s);
  if (s->connected) { /* one connection, slot 0: no choice to make, no lock. The loan's own reference
                         (held) is raised first and guards it as busy does in svc_peer_get: the reaper
                         marks the slot CLOSING, then reads held */
    svc_peer_t *p = &s->peers[0];
    uint32_t gen = __atomic_load_n(&p->gen, __ATOMIC_RELAXED);
    __atomic_fetch_add(&p->held, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&p->state, __ATOMIC_SEQ_CST) == PEER_OPEN && __atomic_load_n(&p->gen, __ATOMIC_RELAXED) == gen)
      return loan_on(p, 0, gen, n);
    __atomic_fetch_sub(&p->held, 1, __ATOMIC_RELEASE);
  }
  zc_lock(&s->lock);
  uint32_t best = UINT32_MAX, hi = s->hi;
  for (uint32_t k = 0; k < hi; k++) { /* the fewest requests awaiting a reply; ties: round robin */
    uint32_t i = (s->rr_out + k) % hi;
    if (s->peers[i].state == PEER_OPEN && (best == UINT32_MAX || s->peers[i].pending < s->peers[best].pending)) best = i;
  }
  if (best == UINT32_MAX) {
    int e = s->connected ? (s->dead ? s->dead : EPIPE) : EAGAIN;
    zc_unlock(&s->lock);
    errno = e;
    return NULL;
  }
  svc_peer_t *p = &s->peers[best];
  __atomic_fetch_add(&p->held, 1, __ATOMIC_ACQUIRE); /* under s->lock: the reaper (also under it) sees it */
  s->rr_out = best + 1;
  uint32_t gen = p->gen;
  zc_unlock(&s->lock);
  return loan_on(p, best, gen, n);
}

void *zc_svc_loan_reply(zc_svc_t *s, const zc_svc_msg_t *req, size_t n) {
  if (s == NULL || req == NULL || req->kind != ZC_SVC_REQUEST || n == 0 || n > SVC_LEN_LIMIT) {
    errno = s != NULL && req != NULL && req->kind == ZC_SVC_REQUEST && n > SVC_LEN_LIMIT ? EMSGSIZE : EINVAL;
    return NULL;
  }
  svc_space_taken(s);
  svc_peer_t *p = svc_peer_get(s, req->peer, req->peer_gen, 0);
  if (p == NULL) return errno = EPIPE, NULL;
  __atomic_fetch_add(&p->held, 1, __ATOMIC_ACQUIRE); /* under busy: the reaper reads held after busy */
  void *r = loan_on(p, req->peer, req->peer_gen, n);
  svc_peer_put(p);
  return r;
}

size_t zc_svc_max_msg(zc_svc_t *s) {
  if (s == NULL) return 0;
  size_t best = SIZE_MAX;
  for (uint32_t i = 0;; i++) { /* one connection at a time: no channel call under s->lock */
    zc_lock(&s->lock);
    bool end = i >= s->hi;
    svc_peer_t *p = !end && s->peers[i].state == PEER_OPEN ? &s->peers[i] : NULL;
    if (p) __atomic_fetch_add(&p->busy, 1, __ATOMIC_ACQUIRE);
    zc_unlock(&s->lock);
    if (end) break;
    if (p == NULL) continue;
    size_t m = zc_chan_max_msg(p->out);
    svc_peer_put(p);
    m = m > ZC_SVC_HEADER ? m - ZC_SVC_HEADER : 0;
    if (m < best) best = m;
  }
  if (best == SIZE_MAX) best = ZC_SVC_MAX_MSG; /* no connection: only the floor is known */
  return best > SVC_LEN_LIMIT ? SVC_LEN_LIMIT : best;
}

/* The loan at user pointer u: its header and connection (busy raised), or NULL with errno. */
static svc_peer_t *loan_peer(zc_svc_t *s, void *u, svc_hdr_t **hp, int any_state) {
  if (s == NULL || u == NULL || ((uintptr_t)u & 15) != 0) return errno = EINVAL, NULL;
  svc_space_taken(s);
  svc_hdr_t *h = (svc_hdr_t *)((char *)u - ZC_SVC_HEADER);
  if (h->tag != SVC_LOAN_TAG) return errno = EINVAL, NULL; /* not a loan of a service, or sent already */
  *hp = h;
  svc_peer_t *p = svc_peer_get(s, (uint32_t)h->id, (uint32_t)(h->id >> 32), any_state);
  if (p == NULL) errno = EPIPE; /* its connection died (the loan goes back with zc_svc_cancel) */
  return p;
}

/* The loan moves (or stays) as zc_chan_loan_resize decides; the service header travels with the first
 * keep bytes. The old header's tag is cleared before the channel may give the old slot back, so a stale
 * pointer to a moved loan is refused (EINVAL) rather than taken for a loan of its connection. */
void *zc_svc_loan_resize(zc_svc_t *s, void *u, size_t n, size_t keep) {
  svc_hdr_t *h;
  svc_peer_t *p = loan_peer(s, u, &h, 0);
  if (p == NULL) return NULL; /* EINVAL, or EPIPE: its connection died (the loan goes back with zc_svc_cancel) */
  if (n == 0 || n > SVC_LEN_LIMIT) {
    svc_peer_put(p);
    errno = n == 0 ? EINVAL : EMSGSIZE;
    return NULL;
  }
  if (keep > n) keep = n;
  h->tag = 0;
  char *b = zc_chan_loan_resize(p->out, h, n + ZC_SVC_HEADER, keep + ZC_SVC_HEADER);
  int e = errno;
  if (b != NULL) ((svc_hdr_t *)b)->tag = SVC_LOAN_TAG; /* header copied along (keep + header bytes) */
  else h->tag = SVC_LOAN_TAG;                           /* unchanged and still loaned */
  svc_peer_put(p);
  errno = e;
  return b ? b + ZC_SVC_HEADER : NULL;
}

/* req: the request a reply answers (released here on success), else NULL. */
static int send_kind(zc_svc_t *s, void *u, size_t len, uint32_t type, int kind, zc_svc_msg_t *req, uint64_t *id_out) {
  /* No busy here: the loan's own reference (held) keeps its connection from being closed until the
   * loan ends, and every way a loan ends clears its tag first (send, cancel, a resize that moves it). */
  if (s == NULL || u == NULL || ((uintptr_t)u & 15) != 0) return errno = EINVAL, -1;
  svc_space_taken(s); /* the arming thread's retry reads its wake-up back */
  svc_hdr_t *h = (svc_hdr_t *)((char *)u - ZC_SVC_HEADER);
  if (h->tag != SVC_LOAN_TAG) return errno = EINVAL, -1; /* not a loan of a service, or sent already */
  uint32_t idx = (uint32_t)h->id, gen = (uint32_t)(h->id >> 32);
  if (idx >= s->max_peers || __atomic_load_n(&s->peers[idx].gen, __ATOMIC_RELAXED) != gen) return errno = EINVAL, -1;
  svc_peer_t *p = &s->peers[idx];
  if (__atomic_load_n(&p->state, __ATOMIC_ACQUIRE) != PEER_OPEN) return errno = EPIPE, -1; /* cancel the loan */
  if (req && (req->peer != idx || req->peer_gen != gen))
    return svc_fail(s, EINVAL, "a reply loaned on another connection than its request's");
  if (len > SVC_LEN_LIMIT) { /* beyond any loan: given back, as zc_chan_send does with EMSGSIZE */
    h->tag = 0;
    zc_chan_cancel(p->out, h);
    __atomic_fetch_sub(&p->held, 1, __ATOMIC_RELEASE);
    return errno = EMSGSIZE, -1;
  }
  svc_hdr_t saved = *h;
  uint64_t id = req ? req->id : 0;
  if (kind == ZC_SVC_REQUEST) {
    zc_lock(&s->lock);
    id = pend_take(&s->pend, idx, gen);
    if (id == 0) {
      zc_unlock(&s->lock);
      return svc_fail(s, EAGAIN, "max_pending (%u) requests await replies", s->pend.cap);
    }
    p->pending++;
    __atomic_store_n(&s->st.requests, s->st.requests + 1, __ATOMIC_RELAXED); /* under s->lock; undone on failure */
    zc_unlock(&s->lock);
  }
  h->id = id; /* registered before the send: the reply may come back before zc_chan_send returns */
  h->type = type;
  h->tag = 0;
  if (zc_chan_send(p->out, h, len + ZC_SVC_HEADER, (uint32_t)kind) != 0) {
    int e = errno;
    if (kind == ZC_SVC_REQUEST) {
      zc_lock(&s->lock);
      pend_cancel(&s->pend, id);
      p->pending--;
      __atomic_store_n(&s->st.requests, s->st.requests - 1, __ATOMIC_RELAXED);
      zc_unlock(&s->lock);
    }
    if (e == EAGAIN || e == ETIMEDOUT) *h = saved; /* the loan stays with the caller */
    else if (e != EINVAL) __atomic_fetch_sub(&p->held, 1, __ATOMIC_RELEASE); /* EINVAL: it was no live loan */
    return errno = e, -1;
  }
  if (req != NULL) { /* a reply: its request is released too, while the loan still holds the connection */
    raw_release(p, &req->raw);
    req->kind = 0;
    req->data = NULL;
  }
  __atomic_fetch_sub(&p->held, 1, __ATOMIC_RELEASE); /* the loan's reference: p is not touched after it */
  if (kind != ZC_SVC_REQUEST) stat_add(kind == ZC_SVC_REPLY ? &s->st.replies : &s->st.oneway);
  if (id_out) *id_out = id;
  return 0;
}

int zc_svc_send(zc_svc_t *s, void *p, size_t len, uint32_t type) {
  return send_kind(s, p, len, type, ZC_SVC_ONEWAY, NULL, NULL);
}

int zc_svc_request(zc_svc_t *s, void *p, size_t len, uint32_t type, uint64_t *id) {
  return send_kind(s, p, len, type, ZC_SVC_REQUEST, NULL, id);
}

int zc_svc_reply(zc_svc_t *s, zc_svc_msg_t *req, void *p, size_t len, uint32_t type) {
  if (req == NULL || req->kind != ZC_SVC_REQUEST) return errno = EINVAL, -1;
  int r = send_kind(s, p, len, type, ZC_SVC_REPLY, req, NULL); /* releases req when it succeeds */
  int e = errno;
  if (r != 0 && e != EAGAIN && e != ETIMEDOUT && e != EINVAL) zc_svc_release(s, req);
  errno = e;
  return r;
}

int zc_svc_cancel(zc_svc_t *s, void *u) {
  svc_hdr_t *h;
  svc_peer_t *p = loan_peer(s, u, &h, 1);
  if (p == NULL) return errno == EPIPE ? (errno = EINVAL, -1) : -1;
  h->tag = 0; /* a loan no more (send_kind trusts a tagged header to hold its connection) */
  int r = zc_chan_cancel(p->out, h);
  if (r == 0) __atomic_fetch_sub(&p->held, 1, __ATOMIC_RELEASE);
  svc_peer_put(p);
  return r;
}

int zc_svc_abandon(zc_svc_t *s, uint64_t id) {
  if (s == NULL) return errno = EINVAL, -1;
  zc_lock(&s->lock);
  int r = pend_abandon(&s->pend, id);
  zc_unlock(&s->lock);
  if (r != 0) errno = EINVAL;
  return r;
}

int zc_svc_call(zc_svc_t *s, void *p, size_t len, uint32_t type, zc_svc_msg_t *reply, int timeout_ms) {
  if (reply == NULL) return errno = EINVAL, -1;
  uint64_t id;
  if (zc_svc_request(s, p, len, type, &id) != 0) return -1;
  uint64_t dl = timeout_ms == 0 ? 1 : 0; /* 0: computed at the first wait; 1: passed already (one look) */
  s->call_id = id;
  s->call_err = 0;
  for (;;) {
    zc_svc_msg_t m;
    if (next_msg(s, &m, timeout_ms == 0 ? -1 : timeout_ms, &dl, false) == 0) {
      if (m.kind == ZC_SVC_REPLY && m.id == id) {
        *reply = m;
        s->call_id = 0;
        stat_bump_receiver(&s->st.received);
        return 0;
      }
      zc_lock(&s->lock);
      svc_queue_push(s, &m); /* for zc_svc_receive, in order */
      zc_unlock(&s->lock);
      continue;
    }
    int e = s->call_err ? s->call_err : errno;
    if (s->call_err == 0) zc_svc_abandon(s, id); /* a late reply is dropped */
    s->call_id = 0;
    s->call_err = 0;
    return errno = e, -1;
  }
}
