/* zcmem services over ZeroMQ: the message path. Loan, send, request, reply, receive, call, release.
 *
 * Loans are zcmem blocks (32-byte header + payload) handed to libzmq with zmq_msg_init_data: no copy on our
 * side; libzmq's I/O thread frees the block through zs_free_cb when it is done with it (a remote free into
 * the loaning thread's heap). The free callback's hint is the endpoint itself (no allocation per message):
 * zmq_ctx_term in close waits for every callback.
 *
 * Correlation, as the local service: a request's id is gen << 32 | index of an entry of the private
 * pending table recording the peer (index and generation) it went to. A REPLY is accepted only if its id
 * names an entry waiting (or abandoned) for that peer; anything else is dropped and counted (rejected),
 * as is every frame that is not a well-formed message. A peer cannot be closed alone on a ROUTER, so a
 * hostile peer's frames are dropped one by one instead of its connection being closed.
 */
#include "zsvc_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- received messages held by the caller (s->lock) ---- */
static inline zs_slot_t *slot_at(zs_t *s, uint32_t i) { return &s->chunks[i / ZS_SLOT_CHUNK][i % ZS_SLOT_CHUNK]; }

static int slot_get(zs_t *s, uint32_t *out) {
  if (s->slot_free == 0) {
    if (s->nchunks >= (1u << 20)) return errno = ENOMEM, -1;
    zs_slot_t **t = realloc(s->chunks, (s->nchunks + 1) * sizeof *t);
    if (t == NULL) return -1;
    s->chunks = t;
    zs_slot_t *c = calloc(ZS_SLOT_CHUNK, sizeof *c);
    if (c == NULL) return -1;
    t[s->nchunks] = c;
    uint32_t base = s->nchunks * ZS_SLOT_CHUNK;
    for (uint32_t i = ZS_SLOT_CHUNK; i-- > 0;) {
      c[i].next = s->slot_free;
      s->slot_free = base + i + 1;
    }
    s->nchunks++;
  }
  uint32_t i = s->slot_free - 1;
  s->slot_free = slot_at(s, i)->next;
  *out = i;
  return 0;
}

static void slot_put(zs_t *s, uint32_t i) {
  zs_slot_t *sl = slot_at(s, i);
  zmq_msg_close(&sl->msg);
  sl->held = 0;
  sl->gen++;
  sl->next = s->slot_free;
  s->slot_free = i + 1;
}

void zs_slots_free(zs_t *s) {
  for (uint32_t c = 0; c < s->nchunks; c++) {
    for (uint32_t j = 0; j < ZS_SLOT_CHUNK; j++)
      if (s->chunks[c][j].held) zmq_msg_close(&s->chunks[c][j].msg);
    free(s->chunks[c]);
  }
  free(s->chunks);
  s->chunks = NULL;
  s->nchunks = 0;
}

/* ---- the set-aside queue (FIFO; s->lock) ---- */
static int queue_push(zs_t *s, const zc_svc_msg_t *m) {
  if (s->q_n == s->q_cap) {
    size_t cap = s->q_cap ? s->q_cap * 2 : 64;
    zc_svc_msg_t *q = malloc(cap * sizeof *q);
    if (q == NULL) return zs_fail(s, ENOMEM, "out of memory for the set-aside queue: a message was lost");
    for (size_t i = 0; i < s->q_n; i++) q[i] = s->q[(s->q_head + i) % s->q_cap];
    free(s->q);
    s->q = q;
    s->q_cap = cap;
    s->q_head = 0;
  }
  s->q[(s->q_head + s->q_n) % s->q_cap] = *m;
  s->q_n++;
  return 0;
}

static int queue_pop(zs_t *s, zc_svc_msg_t *m) {
  if (s->q_n == 0) return 0;
  *m = s->q[s->q_head];
  s->q_head = (s->q_head + 1) % s->q_cap;
  s->q_n--;
  return 1;
}

/* ---- the pending table (src/shared/pend_table.h; s->lock) ---- */
static void push_notice(void *owner, const zc_svc_msg_t *m) { queue_push(owner, m); }

void zs_fail_pending(zs_t *s, uint32_t idx, int err) {
  zs_peer_t *p = &s->peers[idx];
  pend_fail_ctx_t f = {s->call_id, &s->call_err, idx, p->gen, err, push_notice, s};
  s->st.failed += pend_fail_peer(&s->pend, idx, p->gen, &p->pending, pend_fail_one, &f);
}

/* ---- memory ---- */

/* libzmq's I/O thread, when it no longer needs a sent block (or this thread, when a message is closed
 * unsent: a header still marked as a loan is kept for the caller). */
void zs_free_cb(void *data, void *hint) {
  zs_t *s = hint;
  zs_hdr_t *h = data;
  if (h->magic != ZS_MAGIC && h->magic != ZS_DISCARD) return;
  uint64_t bytes = ZS_HDR + (uint64_t)h->len;
  int counted = h->magic == ZS_MAGIC;
  zc_free(data);
  if (counted) atomic_fetch_add_explicit(&s->returned, 1, memory_order_relaxed);
  atomic_fetch_add(&s->freed, bytes); /* seq_cst: zs_arm_space sets space_armed, then reads freed */
  if ((atomic_load(&s->space_armed) & ZS_SPACE_MEM) && atomic_exchange(&s->space_armed, 0)) /* a loop waits */
    zs_space_wake(s);
}

static inline uint32_t loan_tag(const zs_t *s, const zs_hdr_t *h) {
  uint32_t t = s->loan_key ^ (uint32_t)((uintptr_t)h >> 4) * 0x9e3779b1u;
  return t == ZS_MAGIC || t == ZS_DISCARD ? t ^ 1u : t;
}

/* Bytes loaned or held by libzmq stay under max_bytes (one message always fits when nothing is out). */
static int reserve(zs_t *s, uint64_t bytes) {
  uint64_t deadline = 0, pause_ns = 50000;
  for (;;) {
    uint64_t after = atomic_fetch_add(&s->reserved, bytes) + bytes;
    uint64_t freed = atomic_load_explicit(&s->freed, memory_order_acquire);
    if (after - freed <= s->max_bytes || after - bytes == freed) return 0;
    atomic_fetch_sub(&s->reserved, bytes);
    if (s->policy == ZC_CHAN_FAIL) {
      atomic_store(&s->want_bytes, bytes); /* zs_arm_space: room came back when this fits */
      return zs_fail(s, EAGAIN, "loan: memory cap of %llu bytes reached", (unsigned long long)s->max_bytes);
    }
    uint64_t now = zs_now_ns();
    if (deadline == 0) deadline = s->block_timeout_ms < 0 ? UINT64_MAX : now + (uint64_t)s->block_timeout_ms * 1000000ull;
    if (now >= deadline)
      return zs_fail(s, ETIMEDOUT, "loan: memory cap of %llu bytes still reached after %d ms",
                     (unsigned long long)s->max_bytes, s->block_timeout_ms);
    struct timespec ts = {0, (long)pause_ns};
    nanosleep(&ts, NULL);
    if (pause_ns < 2000000) pause_ns *= 2;
  }
}

static void *loan_on(zs_t *s, uint32_t idx, uint32_t gen, size_t n) {
  if (reserve(s, ZS_HDR + n) != 0) return NULL;
  zs_hdr_t *h = zc_malloc(ZS_HDR + ((n + 15) & ~(size_t)15)); /* a multiple of 16: 16-aligned */
  if (h == NULL) {
    atomic_fetch_sub(&s->reserved, ZS_HDR + n);
    return errno = ENOMEM, NULL;
  }
  h->magic = loan_tag(s, h);
  h->kind = 0;
  h->type = 0;
  h->len = (uint32_t)n;
  h->id = (uint64_t)gen << 32 | idx;
  h->spare = 0;
  return h + 1;
}

void *zs_loan(zs_t *s, size_t n) {
  if (n == 0 || n > s->max_msg) return errno = n == 0 ? EINVAL : EMSGSIZE, NULL;
  pthread_mutex_lock(&s->lock);
  zs_space_taken(s); /* the retry after a space wake-up (an event loop that armed) */
  zs_monitor_maybe(s);
  uint32_t best = UINT32_MAX;
  for (uint32_t k = 0; k < s->hi; k++) { /* the fewest requests awaiting a reply; ties: round robin */
    uint32_t i = (s->rr_out + k) % s->hi;
    if (s->peers[i].state == ZP_OPEN && (best == UINT32_MAX || s->peers[i].pending < s->peers[best].pending)) best = i;
  }
  if (best == UINT32_MAX) {
    int e = s->listener ? EAGAIN : EPIPE;
    pthread_mutex_unlock(&s->lock);
    return zs_fail(s, e, "loan: no peer connected"), NULL;
  }
  s->rr_out = best + 1;
  uint32_t gen = s->peers[best].gen;
  pthread_mutex_unlock(&s->lock);
  return loan_on(s, best, gen, n);
}

void *zs_loan_reply(zs_t *s, const zc_svc_msg_t *req, size_t n) {
  if (req == NULL || req->kind != ZC_SVC_REQUEST || n == 0 || n > s->max_msg)
    return errno = req != NULL && req->kind == ZC_SVC_REQUEST && n > s->max_msg ? EMSGSIZE : EINVAL, NULL;
  pthread_mutex_lock(&s->lock);
  zs_monitor_maybe(s);
  int alive = req->peer < s->hi && s->peers[req->peer].state == ZP_OPEN && s->peers[req->peer].gen == req->peer_gen;
  pthread_mutex_unlock(&s->lock);
  if (!alive) return zs_fail(s, EPIPE, "loan_reply: the requester is gone"), NULL;
  return loan_on(s, req->peer, req->peer_gen, n);
}

/* The header of a live loan of this endpoint, or NULL (EINVAL): zc_owned_size rejects a pointer zcmem did
 * not allocate without reading it; the tag then tells this endpoint's loan from any other block. */
static zs_hdr_t *loan_of(zs_t *s, void *p) {
  if (p == NULL || ((uintptr_t)p & 15) != 0) goto bad;
  zs_hdr_t *h = (zs_hdr_t *)p - 1;
  size_t usable = zc_owned_size(h);
  if (usable < ZS_HDR || h->magic != loan_tag(s, h) || h->len > usable - ZS_HDR) goto bad;
  return h;
bad:
  zs_fail(s, EINVAL, "%p is not a live loan of this endpoint", p);
  return NULL;
}

static void give_back(zs_t *s, zs_hdr_t *h) {
  uint64_t n = h->len;
  h->magic = 0;
  zc_free(h);
  atomic_fetch_sub(&s->reserved, ZS_HDR + n);
}

int zs_cancel(zs_t *s, void *p) {
  zs_hdr_t *h = loan_of(s, p);
  if (h == NULL) return -1;
  give_back(s, h);
  return 0;
}

/* Send loan h as `kind` to the peer its header names. The loan stays with the caller on EAGAIN and
 * ETIMEDOUT (full), and on EAGAIN for max_pending; it is gone after success and after EPIPE. */
static int send_kind(zs_t *s, void *u, size_t len, uint32_t type, uint32_t kind, const zc_svc_msg_t *req,
                     uint64_t *id_out, int is_call) {
  zs_hdr_t *h = loan_of(s, u);
  if (h == NULL) return -1;
  uint32_t idx = (uint32_t)h->id, gen = (uint32_t)(h->id >> 32), loaned = h->len;
  if (req != NULL && (req->peer != idx || req->peer_gen != gen))
    return zs_fail(s, EINVAL, "a reply loaned for another request's peer");
  if (len > loaned) {
    give_back(s, h);
    return zs_fail(s, EMSGSIZE, "send: %zu bytes from a loan of %u", len, loaned);
  }
  uint64_t deadline = 0, pause_ns = 20000;
  int err = 0;
  pthread_mutex_lock(&s->lock);
  zs_space_taken(s); /* the retry after a space wake-up (an event loop that armed) */
  for (;;) {
    zs_monitor_maybe(s);
    zs_peer_t *p = idx < s->hi ? &s->peers[idx] : NULL;
    if (p == NULL || p->state != ZP_OPEN || p->gen != gen) {
      err = zs_code(s, EPIPE, "send: the peer is gone");
      break;
    }
    uint64_t id = req != NULL ? req->id : 0;
    if (kind == ZC_SVC_REQUEST) {
      id = pend_next_id(&s->pend); /* taken below once the send went through, in this critical section */
      if (id == 0) {
        err = zs_code(s, EAGAIN, "max_pending (%u) requests await replies", s->max_pending);
        break;
      }
    }
    h->magic = ZS_MAGIC;
    h->kind = kind;
    h->type = type;
    h->len = (uint32_t)len;
    h->id = id;
    zmq_msg_t msg;
    int rc = zmq_msg_init_data(&msg, h, ZS_HDR + len, zs_free_cb, s);
    if (rc == 0 && s->listener) rc = zmq_send(s->sock, p->rid, p->rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ? -1 : 0;
    if (rc == 0 && zmq_msg_send(&msg, s->sock, ZMQ_DONTWAIT) >= 0) {
      if (kind == ZC_SVC_REQUEST) { /* registered in the same critical section as the send */
        pend_take(&s->pend, idx, gen); /* == id: the free list did not move under the lock */
        p->pending++;
        s->st.requests++;
        if (is_call) s->call_id = id, s->call_err = 0; /* a death from now on fails the call directly */
      } else {
        kind == ZC_SVC_REPLY ? s->st.replies++ : s->st.oneway++;
      }
      if (loaned != len) atomic_fetch_sub(&s->reserved, loaned - len); /* the callback frees 32 + len */
      zs_kick(s);
      pthread_mutex_unlock(&s->lock);
      if (id_out != NULL) *id_out = id;
      return 0;
    }
    int e = errno;
    h->magic = loan_tag(s, h); /* closing the unsent message keeps the block */
    h->len = loaned;
    h->id = (uint64_t)gen << 32 | idx;
    zmq_msg_close(&msg);
    if (e == EINTR) continue;
    if (e == EHOSTUNREACH) { /* ROUTER: that connection is gone, the monitor has not said so yet */
      zs_peer_dead(s, idx, EPIPE);
      err = zs_code(s, EPIPE, "send: the peer is gone");
      break;
    }
    if (e != EAGAIN) {
      err = zs_code(s, EPROTO, "zmq_msg_send: %s", zmq_strerror(e));
      break;
    }
    s->st.checks++;
    zs_monitor(s); /* full, or a dead connector's peer would read as merely full */
    if (p->state != ZP_OPEN || p->gen != gen) {
      err = zs_code(s, EPIPE, "send: the peer is gone");
      break;
    }
    if (s->policy == ZC_CHAN_FAIL) {
      err = zs_code(s, EAGAIN, "send: the peer's queue is full (high-water mark)");
      break;
    }
    uint64_t now = zs_now_ns();
    if (deadline == 0) deadline = s->block_timeout_ms < 0 ? UINT64_MAX : now + (uint64_t)s->block_timeout_ms * 1000000ull;
    if (now >= deadline) {
      err = zs_code(s, ETIMEDOUT, "send: still full after %d ms", s->block_timeout_ms);
      break;
    }
    zs_kick(s);
    pthread_mutex_unlock(&s->lock); /* other threads may use the socket while this one waits */
    struct timespec ts = {0, (long)pause_ns};
    nanosleep(&ts, NULL);
    if (pause_ns < 1000000) pause_ns *= 2;
    pthread_mutex_lock(&s->lock);
  }
  zs_kick(s);
  pthread_mutex_unlock(&s->lock);
  if (err != EAGAIN && err != ETIMEDOUT) give_back(s, h);
  errno = err;
  return -1;
}

int zs_send(zs_t *s, void *p, size_t len, uint32_t type) { return send_kind(s, p, len, type, ZC_SVC_ONEWAY, NULL, NULL, 0); }

int zs_request(zs_t *s, void *p, size_t len, uint32_t type, uint64_t *id) {
  return send_kind(s, p, len, type, ZC_SVC_REQUEST, NULL, id, 0);
}

int zs_reply(zs_t *s, zc_svc_msg_t *req, void *p, size_t len, uint32_t type) {
  if (req == NULL || req->kind != ZC_SVC_REQUEST) return errno = EINVAL, -1;
  int r = send_kind(s, p, len, type, ZC_SVC_REPLY, req, NULL, 0);
  int e = errno;
  if (r == 0 || (e != EAGAIN && e != ETIMEDOUT && e != EINVAL)) zs_release(s, req);
  errno = e;
  return r;
}

int zs_abandon(zs_t *s, uint64_t id) {
  pthread_mutex_lock(&s->lock);
  int r = pend_abandon(&s->pend, id);
  pthread_mutex_unlock(&s->lock);
  if (r != 0) errno = EINVAL;
  return r;
}

/* ---- receiving ---- */

static void reject(zs_t *s, uint32_t slot, const char *why, size_t size) {
  slot_put(s, slot);
  s->st.rejected++;
  zs_fail(s, EPROTO, "dropped %s (%zu bytes) from a peer", why, size);
}

/* One message off the socket (s->lock held): 1 with *m; 0 if nothing is there. Frames that are not for
 * the caller (HELLO, late replies, garbage) are handled here and the next one is read. */
static int take_one(zs_t *s, zc_svc_msg_t *m) {
  for (;;) {
    uint8_t rid[ZS_RID_MAX + 1];
    int rid_len = 0;
    if (s->listener) {
      rid_len = zmq_recv(s->sock, rid, sizeof rid, ZMQ_DONTWAIT);
      if (rid_len < 0) return 0;
    }
    uint32_t i;
    if (slot_get(s, &i) != 0) return zs_fail(s, ENOMEM, "receive: no memory for a message slot"), 0;
    zs_slot_t *sl = slot_at(s, i);
    zmq_msg_init(&sl->msg);
    if (zmq_msg_recv(&sl->msg, s->sock, ZMQ_DONTWAIT) < 0) { /* a listener's frame follows its routing id */
      slot_put(s, i);
      if (s->listener) continue;
      return 0;
    }
    int fd = zmq_msg_get(&sl->msg, ZMQ_SRCFD);
    zs_monitor_maybe(s); /* a new peer is registered only after a full look (zs_peer_find) */
    size_t size = zmq_msg_size(&sl->msg);
    zs_hdr_t h;
    memset(&h, 0, sizeof h);
    if (zmq_msg_more(&sl->msg)) {
      zmq_msg_t part;
      zmq_msg_init(&part);
      int more = 1;
      while (more && zmq_msg_recv(&part, s->sock, ZMQ_DONTWAIT) >= 0) more = zmq_msg_more(&part);
      zmq_msg_close(&part);
      reject(s, i, "a multi-part message", size);
      continue;
    }
    if (s->listener && rid_len > ZS_RID_MAX) {
      reject(s, i, "a message with a routing id too long", size);
      continue;
    }
    if (size >= ZS_HDR) memcpy(&h, zmq_msg_data(&sl->msg), sizeof h);
    const char *why = size < ZS_HDR                                   ? "a frame shorter than the 32-byte header"
                      : h.magic != ZS_MAGIC                           ? "a frame without the zcmem magic"
                      : h.len != size - ZS_HDR                        ? "a frame whose length field does not match its size"
                      : h.len > s->max_msg                            ? "a frame above max_msg"
                      : h.kind < ZC_SVC_REQUEST || (h.kind > ZC_SVC_ONEWAY && h.kind != ZS_HELLO) ? "an unknown kind"
                      : !s->listener && h.kind == ZS_HELLO            ? "a HELLO from the listener"
                                                                      : NULL;
    if (why != NULL) {
      reject(s, i, why, size);
      continue;
    }
    uint32_t peer = 0;
    if (s->listener) {
      int pi = zs_peer_find(s, rid, (size_t)rid_len, fd);
      /* A dead peer's last requests and one-way messages (sent before its connection ended; a reply to
       * one fails EPIPE) are delivered; its replies are dropped (its requests FAILED already), as is
       * every frame of an unknown peer whose connection is gone, or above max_peers. */
      if (pi < 0 || (s->peers[pi].state != ZP_OPEN && h.kind != ZC_SVC_REQUEST && h.kind != ZC_SVC_ONEWAY)) {
        slot_put(s, i);
        s->st.dropped++;
        continue;
      }
      peer = (uint32_t)pi;
    }
    if (h.kind == ZS_HELLO) {
      slot_put(s, i);
      continue;
    }
    zs_peer_t *p = &s->peers[peer];
    if (h.kind == ZC_SVC_REPLY) {
      int st = pend_match(&s->pend, h.id, peer, p->gen);
      if (st < 0) {
        reject(s, i, "a reply to no outstanding request of this peer", size);
        continue;
      }
      p->pending--;
      if (st == PEND_ABANDONED) {
        slot_put(s, i);
        s->st.dropped++;
        continue;
      }
    }
    sl->held = 1;
    m->data = (const char *)zmq_msg_data(&sl->msg) + ZS_HDR;
    m->len = h.len;
    m->type = h.type;
    m->id = h.id;
    m->kind = (int)h.kind;
    m->error = 0;
    m->peer = peer;
    m->peer_gen = p->gen;
    memset(&m->raw, 0, sizeof m->raw);
    m->raw.data = m->data;
    m->raw.len = h.len;
    m->raw.type = h.kind;
    m->raw.handle = (uint64_t)sl->gen << 32 | (i + 1);
    return 1;
  }
}

/* The next message: set aside first (if use_queue), then the socket; waits until deadline (ns; 0: no
 * wait; UINT64_MAX: forever). 0 with *m, or -1: EAGAIN, ETIMEDOUT, EPIPE (connector: no connection, for
 * longer than the grace for late frames), or the error of the request zs_call waits for. */
static int next_msg(zs_t *s, zc_svc_msg_t *m, uint64_t deadline, int use_queue) {
  for (;;) {
    pthread_mutex_lock(&s->lock);
    zs_unkick(s);
    if (use_queue && queue_pop(s, m)) goto got;
    zs_monitor_maybe(s);
    if (take_one(s, m)) goto got;
    if (deadline == 0) { /* the caller may sleep on the fd next: take the monitor's edge too (a HELLO sent
                            there may take the socket's: then zs_kick, at its end, wakes the fd) */
      atomic_store(&s->sleeping, 1);
      zs_monitor(s);
    }
    if ((use_queue && s->q_n != 0)) {
      pthread_mutex_unlock(&s->lock);
      continue;
    }
    int err = s->call_id != 0 && s->call_err != 0 ? s->call_err : 0;
    uint64_t now = zs_now_ns(), until = deadline;
    if (err == 0 && !s->listener && s->ever_connected && s->peers[0].state != ZP_OPEN) {
      if (now >= s->down_ns + ZS_DOWN_GRACE_NS)
        err = zs_code(s, EPIPE, "the listener is gone (no connection)");
      else if (s->down_ns + ZS_DOWN_GRACE_NS < until)
        until = s->down_ns + ZS_DOWN_GRACE_NS;
    }
    if (err == 0 && deadline == 0) err = EAGAIN;
    if (err == 0 && now >= deadline) err = zs_code(s, ETIMEDOUT, "receive: nothing within the timeout");
    if (err != 0) {
      /* EAGAIN: the caller's event loop sleeps on the fd next; the socket's and the monitor's edges were
       * taken by the looks above, so from now on a call that takes one wakes the fd (zs_kick) */
      if (err == EAGAIN) {
        atomic_store(&s->sleeping, 1);
        if (atomic_load(&s->space_armed)) zs_kick(s); /* the looks above may have taken libzmq's room signal */
      }
      pthread_mutex_unlock(&s->lock);
      return errno = err, -1;
    }
    /* Sleep. take_one's failed receive has processed libzmq's commands, so the socket's ZMQ_FD signals
     * the next frame, and the monitor's fd its next event (every look at the monitor reads it empty); a
     * thread that uses the socket before this one sleeps may take the socket's signal, and then wakes it
     * through the eventfd (zs_kick). */
    atomic_store(&s->sleeping, 1);
    pthread_mutex_unlock(&s->lock);
    if (zs_sleep(s, until) & ZS_WOKE_MONITOR) {
      pthread_mutex_lock(&s->lock);
      zs_monitor(s);
      pthread_mutex_unlock(&s->lock);
    }
  }
got:
  pthread_mutex_unlock(&s->lock);
  return 0;
}

int zs_receive(zs_t *s, zc_svc_msg_t *m, int timeout_ms) {
  if (m == NULL) return errno = EINVAL, -1;
  uint64_t dl = timeout_ms == 0 ? 0 : timeout_ms < 0 ? UINT64_MAX : zs_now_ns() + (uint64_t)timeout_ms * 1000000u;
  if (next_msg(s, m, dl, 1) != 0) return -1;
  pthread_mutex_lock(&s->lock);
  s->st.received++;
  pthread_mutex_unlock(&s->lock);
  return 0;
}

int zs_release(zs_t *s, zc_svc_msg_t *m) {
  if (m == NULL) return errno = EINVAL, -1;
  if (m->kind == ZC_SVC_FAILED) {
    m->kind = 0;
    return 0;
  }
  if (m->kind < ZC_SVC_REQUEST || m->kind > ZC_SVC_ONEWAY) return errno = EINVAL, -1;
  uint32_t i = (uint32_t)m->raw.handle - 1u, gen = (uint32_t)(m->raw.handle >> 32);
  pthread_mutex_lock(&s->lock);
  if ((uint32_t)m->raw.handle == 0 || i >= s->nchunks * ZS_SLOT_CHUNK || !slot_at(s, i)->held ||
      slot_at(s, i)->gen != gen) {
    pthread_mutex_unlock(&s->lock);
    return zs_fail(s, EINVAL, "release: not a message this endpoint holds");
  }
  slot_put(s, i);
  pthread_mutex_unlock(&s->lock);
  m->kind = 0;
  m->data = NULL;
  return 0;
}

int zs_call(zs_t *s, void *p, size_t len, uint32_t type, zc_svc_msg_t *reply, int timeout_ms) {
  if (reply == NULL) return errno = EINVAL, -1;
  uint64_t id;
  if (send_kind(s, p, len, type, ZC_SVC_REQUEST, NULL, &id, 1) != 0) return -1;
  uint64_t dl = timeout_ms < 0 ? UINT64_MAX : zs_now_ns() + (uint64_t)timeout_ms * 1000000u;
  if (dl == 0) dl = 1;
  for (;;) {
    zc_svc_msg_t m;
    int got = next_msg(s, &m, dl, 0) == 0;
    int e = errno;
    pthread_mutex_lock(&s->lock);
    if (got && m.kind == ZC_SVC_REPLY && m.id == id) {
      s->call_id = 0;
      s->st.received++;
      pthread_mutex_unlock(&s->lock);
      *reply = m;
      return 0;
    }
    if (got) {
      queue_push(s, &m); /* for zs_receive, in order */
      pthread_mutex_unlock(&s->lock);
      continue;
    }
    int err = s->call_err ? s->call_err : e;
    int failed = s->call_err != 0;
    s->call_id = 0;
    s->call_err = 0;
    pthread_mutex_unlock(&s->lock);
    if (!failed) zs_abandon(s, id); /* a late reply is dropped */
    return errno = err, -1;
  }
}

void zs_stats(zs_t *s, zc_svc_stats_t *out) {
  pthread_mutex_lock(&s->lock);
  zs_monitor(s);
  *out = s->st;
  out->pending = s->pend.n;
  pthread_mutex_unlock(&s->lock);
}
