/* zcmem over ZeroMQ, producer side: loans from zcmem's heap, zero-copy send (zmq_msg_init_data), and the
 * free callback by which libzmq's I/O thread gives each block back to zcmem (a remote free). */
#include "zmq_internal.h"

#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>

#define ZQ_DISCARD 0xdeadc0deu /* header mark: the callback frees the block without counting a return */

static inline uint32_t loan_tag(const zc_zmq_t *z, const zq_hdr_t *h) {
  uint32_t t = z->loan_key ^ (uint32_t)((uintptr_t)h >> 4) * 0x9e3779b1u;
  return t == ZQ_MAGIC || t == ZQ_PMAGIC || t == ZQ_DISCARD ? t ^ 2u : t;
}

/* Runs on libzmq's I/O thread when it no longer needs a sent block (or on the sender's thread when a
 * message is closed unsent). Cheap on purpose: a remote free and three atomics; the lock only when a loan
 * is waiting for the memory cap. A block still marked as a loan is kept: the sender closed the message to
 * take the loan back (send failed with EAGAIN or ETIMEDOUT). */
void zq_tally_put(zq_tally_t *t) {
  if (atomic_fetch_sub(&t->refs, 1) != 1) return;
  pthread_mutex_destroy(&t->lock);
  pthread_cond_destroy(&t->space);
  free(t);
}

void zq_free_cb(void *data, void *hint) {
  zq_tally_t *t = hint;
  zq_hdr_t *h = data;
  if (h->magic != ZQ_MAGIC && h->magic != ZQ_PMAGIC && h->magic != ZQ_DISCARD) return;
  uint64_t bytes = ZQ_HDR + (h->magic == ZQ_PMAGIC ? (uint32_t)h->len : h->len);
  int counted = h->magic != ZQ_DISCARD;
  zc_free(data);
  if (counted) {
    atomic_fetch_add_explicit(&t->returned_bytes, bytes - ZQ_HDR, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->returned, 1, memory_order_release);
  }
  atomic_fetch_add(&t->freed, bytes);
  if (atomic_load(&t->space_waiters) != 0) {
    pthread_mutex_lock(&t->lock);
    pthread_cond_broadcast(&t->space);
    pthread_mutex_unlock(&t->lock);
  }
  if (t->per_block_refs) zq_tally_put(t);
}

/* Bytes in use may grow by `bytes` under the cap: one message always fits when nothing else is out. The
 * fast test uses the last freed value seen (freed only grows, so it can only overestimate what is out). */
static int fits(zq_tally_t *t, uint64_t bytes, uint64_t max) {
  uint64_t after = atomic_fetch_add(&t->reserved, bytes) + bytes;
  if (after - atomic_load_explicit(&t->freed_seen, memory_order_relaxed) <= max) return 1;
  uint64_t freed = atomic_load(&t->freed);
  atomic_store_explicit(&t->freed_seen, freed, memory_order_relaxed);
  if (after - freed <= max || after - bytes == freed) return 1;
  atomic_fetch_sub(&t->reserved, bytes);
  return 0;
}

/* The memory cap (max_bytes over loaned + in flight): wait for the callback under ZC_CHAN_BLOCK. */
static int reserve(zc_zmq_t *z, uint64_t bytes) {
  zq_tally_t *t = z->t;
  if (fits(t, bytes, z->max_bytes)) return 0;
  if (z->policy == ZC_CHAN_FAIL) {
    zq_set_error(z, EAGAIN, "loan: memory cap of %llu bytes reached", (unsigned long long)z->max_bytes);
    return -1;
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  long ms = z->block_timeout_ms;
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
  int rc = 0;
  pthread_mutex_lock(&t->lock);
  atomic_fetch_add_explicit(&z->cap_waits, 1, memory_order_relaxed);
  atomic_fetch_add(&t->space_waiters, 1);
  while (!fits(t, bytes, z->max_bytes)) {
    atomic_fetch_add_explicit(&z->cap_sleeps, 1, memory_order_relaxed);
    int w = ms < 0 ? pthread_cond_wait(&t->space, &t->lock) : pthread_cond_timedwait(&t->space, &t->lock, &ts);
    if (w == ETIMEDOUT && !fits(t, bytes, z->max_bytes)) {
      zq_set_error(z, ETIMEDOUT, "loan: memory cap of %llu bytes still reached after %d ms",
                   (unsigned long long)z->max_bytes, z->block_timeout_ms);
      rc = -1;
      break;
    }
    if (w == ETIMEDOUT) break;
  }
  atomic_fetch_sub(&t->space_waiters, 1);
  pthread_mutex_unlock(&t->lock);
  if (rc != 0) errno = ETIMEDOUT;
  return rc;
}

void *zc_zmq_loan(zc_zmq_t *z, size_t n) {
  if (z == NULL || z->role != ZC_CHAN_PRODUCER || n == 0 || n > z->max_msg) {
    errno = z != NULL && n > z->max_msg ? EMSGSIZE : EINVAL;
    return NULL;
  }
  if (reserve(z, ZQ_HDR + n) != 0) return NULL;
  /* A multiple of 16 bytes: zcmem aligns those to 16 (not all other sizes), so the loan is 16-aligned. */
  zq_hdr_t *h = zc_malloc(ZQ_HDR + ((n + 15) & ~(size_t)15));
  if (h == NULL) {
    atomic_fetch_sub(&z->t->reserved, ZQ_HDR + n);
    errno = ENOMEM;
    return NULL;
  }
  h->magic = loan_tag(z, h);
  h->type = 0;
  h->len = n;
  atomic_fetch_add_explicit(&z->loaned_msgs, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&z->loaned_bytes, n, memory_order_relaxed);
  return h + 1;
}

/* The header of a live loan of this endpoint, or NULL (EINVAL). zc_owned_size rejects a pointer zcmem
 * did not allocate without touching it (and without reporting it); the tag then tells our loan from any
 * other zcmem block. */
static zq_hdr_t *loan_of(zc_zmq_t *z, void *p) {
  if (p == NULL || ((uintptr_t)p & 15) != 0) goto bad;
  zq_hdr_t *h = (zq_hdr_t *)p - 1;
  size_t usable = zc_owned_size(h);
  if (usable < ZQ_HDR || h->magic != loan_tag(z, h) || h->len > usable - ZQ_HDR) goto bad;
  return h;
bad:
  zq_set_error(z, EINVAL, "%p is not a live loan of this endpoint", p);
  return NULL;
}

static void give_back(zc_zmq_t *z, zq_hdr_t *h) {
  uint64_t n = h->len;
  h->magic = 0;
  zc_free(h);
  atomic_fetch_sub(&z->t->reserved, ZQ_HDR + n);
  atomic_fetch_sub_explicit(&z->loaned_msgs, 1, memory_order_relaxed);
  atomic_fetch_sub_explicit(&z->loaned_bytes, n, memory_order_relaxed);
}

int zc_zmq_cancel(zc_zmq_t *z, void *p) {
  if (z == NULL || z->role != ZC_CHAN_PRODUCER) {
    errno = EINVAL;
    return -1;
  }
  zq_hdr_t *h = loan_of(z, p);
  if (h == NULL) return -1;
  give_back(z, h);
  return 0;
}

/* Send one loan; called with z->lock held. The loan stays with the caller on EAGAIN/ETIMEDOUT. */
static int send_locked(zc_zmq_t *z, zq_hdr_t *h, size_t len, uint32_t type, uint64_t *deadline) {
  uint64_t loaned = h->len;
  zmq_msg_t msg;
  h->magic = z->pub ? ZQ_PMAGIC : ZQ_MAGIC;
  h->type = type;
  h->len = z->pub ? (uint64_t)z->pub_seq << 32 | len : len; /* a published length fits 32 bits (max_msg) */
  if (zmq_msg_init_data(&msg, h, ZQ_HDR + len, zq_free_cb, z->t) != 0) {
    h->magic = loan_tag(z, h);
    h->len = loaned;
    zq_set_error(z, ENOMEM, "zmq_msg_init_data: %s", zmq_strerror(errno));
    return -1;
  }
  int waited = 0, err, flags = ZMQ_DONTWAIT;
  for (;;) {
    if (z->t->per_block_refs) atomic_fetch_add_explicit(&z->t->refs, 1, memory_order_relaxed); /* the block's */
    if (zmq_msg_send(&msg, z->sock, flags) >= 0) {
      z->pub_seq++;
      z->sent++;
      z->sent_bytes += len;
      if (loaned != len) atomic_fetch_sub(&z->t->reserved, loaned - len); /* the cap counts what is sent */
      atomic_fetch_sub_explicit(&z->loaned_msgs, 1, memory_order_relaxed);
      atomic_fetch_sub_explicit(&z->loaned_bytes, loaned, memory_order_relaxed);
      return 0;
    }
    err = errno;
    if (z->t->per_block_refs) atomic_fetch_sub_explicit(&z->t->refs, 1, memory_order_relaxed); /* not sent */
    if (err == EINTR) continue;
    if (err != EAGAIN) {
      zq_set_error(z, EPROTO, "zmq_msg_send: %s", zmq_strerror(err));
      break;
    }
    zq_monitor_drain(z);
    if (!z->pub && zq_peer_lost(z)) { /* a publisher with nobody subscribed sends to nobody instead */
      zq_set_error(z, EPIPE, "send: the consumer is gone (no peer connected)");
      err = EPIPE;
      break;
    }
    if (!waited) z->full_waits++, waited = 1;
    if (z->policy == ZC_CHAN_FAIL) {
      zq_set_error(z, EAGAIN, "send: high-water mark reached or no consumer connected");
      err = EAGAIN;
      break;
    }
    if (*deadline == 0)
      *deadline = z->block_timeout_ms < 0 ? UINT64_MAX : zq_now_ns() + (uint64_t)z->block_timeout_ms * 1000000ull;
    if (z->pub) { /* XPUB always polls writable: wait inside libzmq's send instead (for its pipes' room) */
      uint64_t now = zq_now_ns();
      if (now >= *deadline) {
        zq_set_error(z, ETIMEDOUT, "send: a subscriber is still full after %d ms", z->block_timeout_ms);
        err = ETIMEDOUT;
        break;
      }
      uint64_t left = *deadline == UINT64_MAX ? 0 : (*deadline - now + 999999) / 1000000;
      int ms = *deadline == UINT64_MAX ? -1 : left > INT32_MAX ? INT32_MAX : (int)left;
      zmq_setsockopt(z->sock, ZMQ_SNDTIMEO, &ms, sizeof ms);
      z->sleeps++;
      flags = 0;
      continue;
    }
    int w = zq_wait(z, ZMQ_POLLOUT, *deadline);
    if (w == 0) {
      zq_set_error(z, ETIMEDOUT, "send: still full after %d ms", z->block_timeout_ms);
      err = ETIMEDOUT;
      break;
    }
    if (w < 0) {
      err = errno;
      break;
    }
  }
  /* Not sent. Closing the message runs zq_free_cb on this thread: a header marked as a loan is kept (the
   * caller may retry or cancel), one marked ZQ_DISCARD is freed (the channel died). */
  int keep = err == EAGAIN || err == ETIMEDOUT || err == ENOMEM;
  h->magic = keep ? loan_tag(z, h) : ZQ_DISCARD;
  h->len = keep ? loaned : len;
  if (!keep) {
    atomic_fetch_sub(&z->t->reserved, loaned - len); /* the callback counts 16 + len freed */
    atomic_fetch_sub_explicit(&z->loaned_msgs, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&z->loaned_bytes, loaned, memory_order_relaxed);
  }
  if (!keep && z->t->per_block_refs) atomic_fetch_add_explicit(&z->t->refs, 1, memory_order_relaxed);
  zmq_msg_close(&msg);
  errno = err;
  return -1;
}

/* Check the loan, then send it; called with z->lock held (the publisher's send, zpub.c, holds it across). */
int zq_send_checked(zc_zmq_t *z, void *p, size_t len, uint32_t type) {
  zq_hdr_t *h = loan_of(z, p);
  if (h == NULL) return -1;
  if (len > h->len) {
    zq_set_error(z, EMSGSIZE, "send: %zu bytes from a loan of %llu", len, (unsigned long long)h->len);
    give_back(z, h);
    errno = EMSGSIZE;
    return -1;
  }
  uint64_t deadline = 0;
  return send_locked(z, h, len, type, &deadline);
}

int zc_zmq_send(zc_zmq_t *z, void *p, size_t len, uint32_t type) {
  if (z == NULL || z->role != ZC_CHAN_PRODUCER) {
    errno = EINVAL;
    return -1;
  }
  pthread_mutex_lock(&z->lock);
  int rc = z->pub ? zq_pub_send_locked(z, p, len, type) : zq_send_checked(z, p, len, type);
  int e = errno;
  pthread_mutex_unlock(&z->lock);
  errno = e;
  return rc < 0 ? -1 : 0;
}

int zc_zmq_send_batch(zc_zmq_t *z, const zc_chan_msg_t *msgs, int n) {
  if (z == NULL || z->role != ZC_CHAN_PRODUCER || n < 0 || (n > 0 && msgs == NULL)) {
    errno = EINVAL;
    return -1;
  }
  int done = 0;
  for (; done < n; done++)
    if (zc_zmq_send(z, (void *)msgs[done].data, msgs[done].len, msgs[done].type) != 0) break;
  if (done == n) return n;
  int e = errno;
  if (e == EPIPE || e == EPROTO) /* the channel's rule: after the peer is gone, the unsent loans go back */
    for (int i = done + 1; i < n; i++) zc_zmq_cancel(z, (void *)msgs[i].data);
  errno = e;
  return done > 0 ? done : -1;
}

long zc_zmq_collect(zc_zmq_t *z) {
  if (z == NULL || z->role != ZC_CHAN_PRODUCER) {
    errno = EINVAL;
    return -1;
  }
  pthread_mutex_lock(&z->lock);
  if (z->pub)
    zq_pub_drain(z); /* the subscribers' frames, and the monitor */
  else
    zq_monitor_drain(z);
  int lost = !z->pub && zq_peer_lost(z); /* a publisher without subscribers is not broken */
  uint64_t sent = z->sent;
  pthread_mutex_unlock(&z->lock);
  uint64_t inflight = sent - atomic_load_explicit(&z->t->returned, memory_order_acquire);
  if (lost) {
    zq_set_error(z, EPIPE, "the consumer is gone (no peer connected)");
    return -1;
  }
  return (long)inflight;
}
