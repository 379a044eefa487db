/* zcmem over ZeroMQ, consumer side: receive exposes the zmq_msg_t's data in place, release closes it.
 * Every frame is checked before the caller sees it (size, magic, length, single part); a bad one is
 * dropped with EPROTO and counted, and the next receive goes on: a peer sending garbage cannot stop the
 * consumer or make it read outside the frame. */
#include "zmq_internal.h"

#include <stdlib.h>
#include <string.h>

static inline zq_slot_t *slot_at(zc_zmq_t *z, uint32_t i) {
  return &z->chunks[i / ZQ_SLOT_CHUNK][i % ZQ_SLOT_CHUNK];
}

/* A free slot's index, growing the table by a chunk when needed (slots never move). */
static int slot_get(zc_zmq_t *z, uint32_t *out) {
  if (z->free_head == 0) {
    if (z->nchunks >= (1u << 20)) {
      errno = ENOMEM;
      return -1;
    }
    zq_slot_t **t = realloc(z->chunks, (z->nchunks + 1) * sizeof *t);
    if (t == NULL) return -1;
    z->chunks = t;
    zq_slot_t *c = calloc(ZQ_SLOT_CHUNK, sizeof *c);
    if (c == NULL) return -1;
    t[z->nchunks] = c;
    uint32_t base = z->nchunks * ZQ_SLOT_CHUNK;
    for (uint32_t i = ZQ_SLOT_CHUNK; i-- > 0;) {
      c[i].next = z->free_head;
      z->free_head = base + i + 1;
    }
    z->nchunks++;
  }
  uint32_t i = z->free_head - 1;
  z->free_head = slot_at(z, i)->next;
  *out = i;
  return 0;
}

static inline void slot_put(zc_zmq_t *z, uint32_t i) {
  zq_slot_t *s = slot_at(z, i);
  s->held = 0;
  s->gen++;
  s->next = z->free_head;
  z->free_head = i + 1;
}

/* Check a received frame: 0 and *out filled; 1 a goodbye frame (nothing for the caller); -1 EPROTO (the
 * frame is closed and counted). */
/* Subscriber: what the publisher's numbering says we missed (frames libzmq dropped for us). A frame
 * numbered below the one expected, or the first one after a (re)connection (a new publisher numbers from
 * 0, or is far ahead), starts a new run. */
static void sub_seq(zc_zmq_t *z, uint32_t seq) {
  uint32_t gap = seq - z->seq_next;
  /* A gap: first read the monitor (the receive path looks at it only when idle), a new connection's
   * handshake event comes before its first frame. */
  if (gap != 0 && gap < 0x80000000u && !z->seq_fresh) zq_monitor_drain(z);
  if (z->seq_fresh || gap >= 0x80000000u) {
    z->seq_fresh = 0;
    z->runs++;
  } else {
    z->missed += gap;
  }
  z->seq_next = seq + 1;
}

static int accept_frame(zc_zmq_t *z, uint32_t i, zc_chan_msg_t *out) {
  zq_slot_t *s = slot_at(z, i);
  size_t size = zmq_msg_size(&s->msg);
  const char *why = NULL;
  zq_hdr_t h = {0};
  if (zmq_msg_more(&s->msg)) {
    why = "a multi-part message";
    zmq_msg_t part; /* the other parts are there already (ZeroMQ delivers a message whole): drop them */
    zmq_msg_init(&part);
    int more = 1;
    while (more && zmq_msg_recv(&part, z->sock, ZMQ_DONTWAIT) >= 0) more = zmq_msg_more(&part);
    zmq_msg_close(&part);
  } else if (size < ZQ_HDR) {
    why = "a frame shorter than the 16-byte header";
  } else {
    memcpy(&h, zmq_msg_data(&s->msg), sizeof h);
    if (h.magic == ZQ_BYE && size == ZQ_HDR) { /* a producer's goodbye: not a message */
      zmq_msg_close(&s->msg);
      slot_put(z, i);
      z->byes++;
      return 1;
    }
    uint32_t seq = 0;
    if (z->sub && h.magic == ZQ_PMAGIC) { /* a published frame: seq in the high half of the length */
      seq = (uint32_t)(h.len >> 32);
      h.len = (uint32_t)h.len;
    }
    if (h.magic != (z->sub ? ZQ_PMAGIC : ZQ_MAGIC))
      why = "a frame without the zcmem magic";
    else if (h.len != size - ZQ_HDR)
      why = "a frame whose length field does not match its size";
    else if (h.len > z->max_msg || h.len > UINT32_MAX)
      why = "a frame above max_msg";
    else if (z->sub)
      sub_seq(z, seq);
  }
  if (why != NULL) {
    zmq_msg_close(&s->msg);
    slot_put(z, i);
    z->rejected++;
    zq_set_error(z, EPROTO, "dropped %s (%zu bytes) from the peer", why, size);
    return -1;
  }
  s->held = 1;
  s->len = (uint32_t)h.len;
  out->data = (const char *)zmq_msg_data(&s->msg) + ZQ_HDR;
  out->len = (uint32_t)h.len;
  out->type = h.type;
  out->handle = (uint64_t)s->gen << 32 | (i + 1);
  z->held_msgs++;
  z->held_bytes += h.len;
  z->received++;
  return 0;
}

/* One frame if there is one now: 1 got it (or -1 EPROTO for a bad one), 0 none. */
static int try_recv(zc_zmq_t *z, zc_chan_msg_t *out) {
again:;
  uint32_t i;
  if (slot_get(z, &i) != 0) {
    zq_set_error(z, ENOMEM, "receive: no memory for a message slot");
    return -1;
  }
  zq_slot_t *s = slot_at(z, i);
  zmq_msg_init(&s->msg);
  for (;;) {
    if (zmq_msg_recv(&s->msg, z->sock, ZMQ_DONTWAIT) >= 0) {
      int r = accept_frame(z, i, out);
      if (r == 1) goto again;
      return r == 0 ? 1 : -1;
    }
    if (errno != EINTR) break;
  }
  int e = errno;
  zmq_msg_close(&s->msg);
  slot_put(z, i);
  if (e == EAGAIN) return 0;
  zq_set_error(z, EPROTO, "zmq_msg_recv: %s", zmq_strerror(e));
  return -1;
}

int zc_zmq_receive(zc_zmq_t *z, zc_chan_msg_t *out, int timeout_ms) {
  if (z == NULL || z->role != ZC_CHAN_CONSUMER || out == NULL) {
    errno = EINVAL;
    return -1;
  }
  uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : zq_now_ns() + (uint64_t)timeout_ms * 1000000ull;
  for (;;) {
    int r = try_recv(z, out);
    if (r != 0) return r > 0 ? 0 : -1;
    zq_monitor_drain(z);
    uint64_t until = deadline;
    if (zq_peer_lost(z)) { /* see zq_loss_final: goodbye frames, or a grace for dead peers */
      if (zq_loss_final(z)) {
        int r = try_recv(z, out);
        if (r != 0) return r > 0 ? 0 : -1;
        zq_set_error(z, EPIPE, "the producer is gone (no peer connected) and everything it sent was received");
        return -1;
      }
      uint64_t grace_end = z->down_ns + ZQ_DOWN_GRACE_NS;
      if (grace_end < until) until = grace_end;
    }
    if (timeout_ms == 0 && until == deadline) {
      errno = EAGAIN;
      return -1;
    }
    int w = zq_wait(z, ZMQ_POLLIN, until);
    if (w < 0) return -1;
    if (w == 0 && until == deadline) {
      if (try_recv(z, out) > 0) return 0;
      zq_set_error(z, ETIMEDOUT, "receive: nothing within %d ms", timeout_ms);
      return -1;
    }
  }
}

int zc_zmq_receive_batch(zc_zmq_t *z, zc_chan_msg_t *out, int max, int timeout_ms) {
  if (max < 1) {
    errno = EINVAL;
    return -1;
  }
  if (zc_zmq_receive(z, &out[0], timeout_ms) != 0) return -1;
  int n = 1;
  while (n < max) {
    int r = try_recv(z, &out[n]);
    if (r <= 0) break; /* a bad frame ends the batch here; the next receive reports nothing of it */
    n++;
  }
  return n;
}

int zc_zmq_release(zc_zmq_t *z, const zc_chan_msg_t *m) {
  if (z == NULL || z->role != ZC_CHAN_CONSUMER || m == NULL) {
    errno = EINVAL;
    return -1;
  }
  uint32_t i = (uint32_t)m->handle - 1u, gen = (uint32_t)(m->handle >> 32);
  if ((uint32_t)m->handle == 0 || i >= z->nchunks * ZQ_SLOT_CHUNK || !slot_at(z, i)->held ||
      slot_at(z, i)->gen != gen) {
    zq_set_error(z, EINVAL, "release: handle %#llx is not a message this endpoint holds",
                 (unsigned long long)m->handle);
    return -1;
  }
  zq_slot_t *s = slot_at(z, i);
  z->held_msgs--;
  z->held_bytes -= s->len;
  z->released++;
  zmq_msg_close(&s->msg);
  slot_put(z, i);
  return 0;
}

int zc_zmq_release_batch(zc_zmq_t *z, const zc_chan_msg_t *msgs, int n) {
  if (z == NULL || n < 0 || (n > 0 && msgs == NULL)) {
    errno = EINVAL;
    return -1;
  }
  int rc = 0;
  for (int i = 0; i < n; i++)
    if (zc_zmq_release(z, &msgs[i]) != 0) rc = -1;
  return rc;
}

/* ZMQ_FD is edge-triggered: it signals a change, and only ZMQ_EVENTS (or a receive) tells whether a
 * message is there; reading ZMQ_EVENTS also clears the fd. So: drain the monitor, then ask ZMQ_EVENTS.
 * If it says nothing is readable, the fd is clear and the next frame signals it again. */
int zc_zmq_arm(zc_zmq_t *z) {
  if (z == NULL || z->role != ZC_CHAN_CONSUMER) {
    errno = EINVAL;
    return -1;
  }
  zq_monitor_drain(z);
  int ev = 0;
  size_t sz = sizeof ev;
  if (zmq_getsockopt(z->sock, ZMQ_EVENTS, &ev, &sz) != 0) {
    zq_set_error(z, EPROTO, "ZMQ_EVENTS: %s", zmq_strerror(errno));
    return -1;
  }
  if (ev & ZMQ_POLLIN) return 1;
  if (zmq_getsockopt(z->mon, ZMQ_EVENTS, &ev, &sz) == 0 && (ev & ZMQ_POLLIN)) return 1; /* look again */
  if (zq_peer_lost(z)) {
    if (!zq_loss_final(z)) return 1; /* let receive wait out the grace */
    zq_set_error(z, EPIPE, "the producer is gone (no peer connected)");
    return -1;
  }
  return 0;
}

void zq_consumer_close(zc_zmq_t *z) {
  for (uint32_t c = 0; c < z->nchunks; c++) {
    for (uint32_t j = 0; j < ZQ_SLOT_CHUNK; j++)
      if (z->chunks[c][j].held) zmq_msg_close(&z->chunks[c][j].msg);
    free(z->chunks[c]);
  }
  z->nchunks = 0;
}
