/* zcmem over ZeroMQ: fan-out (one publisher, every message read by every subscriber) on an XPUB socket
 * bound by the publisher and SUB sockets connected by the subscribers, and the zc_ep_pub_* dispatcher that
 * picks it or the shared-memory fan-out (zc_pub_*) by the endpoint string.
 *
 * The publisher is a zc_zmq_t of role producer: loans, the free callback and the memory cap are
 * zmq_producer.c's; a send hands the block to libzmq once (zmq_msg_init_data), and XPUB gives every
 * subscriber's pipe a reference to that one block: the free callback runs when the last connection has
 * written it out. A subscriber is a zc_zmq_t of role consumer (zmq_consumer.c: receive in place, release,
 * arm, the fd), which also checks the publisher's sequence numbers and counts the messages it missed.
 * What a subscriber sends back is subscriptions only; the publisher reads them (XPUB_VERBOSE: every one)
 * to know when a subscriber is ready (zc_zmq_pub_accept) and drops anything else as junk (counted).
 * Subscribers are counted by the socket monitor (connections), as zmq_setup.c does for every endpoint.
 *
 * Locks: z->lock (the producer's) covers the XPUB socket, the monitor and the publisher's counters.
 * zc_zmq_pub_accept sleeps on the endpoint's epoll fd without it, in slices (another thread's send may
 * take the wake-up: libzmq reads its commands on any call).
 */
#define _GNU_SOURCE
#include "zmq_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define ZP_LOOK_NS 1000000ull /* the send path reads the subscribers' frames at most this often */
#define ZP_SLICE_MS 20

static int refuse_inproc(const char *endpoint) {
  if (endpoint != NULL && strncmp(endpoint, "inproc://", 9) == 0) {
    errno = EPROTONOSUPPORT; /* no connection events there: subscribers could not be counted */
    return 1;
  }
  return 0;
}

zc_zmq_t *zc_zmq_pub_bind(const char *endpoint, const zc_zmq_config_t *cfg) {
  if (refuse_inproc(endpoint)) return NULL;
  return zq_open(endpoint, ZC_CHAN_PRODUCER, cfg, 1, ZMQ_XPUB);
}

zc_zmq_t *zc_zmq_sub_connect(const char *endpoint, const zc_zmq_config_t *cfg) {
  if (refuse_inproc(endpoint)) return NULL;
  return zq_open(endpoint, ZC_CHAN_CONSUMER, cfg, 0, ZMQ_SUB);
}

/* Every frame the subscribers sent: a subscription (first byte 1) is a subscriber ready to receive; an
 * unsubscription (0: a SUB closing, or libzmq on its behalf) changes nothing here (the monitor counts
 * connections); anything else is junk from a peer that is not a SUB socket: dropped and counted. */
void zq_pub_drain(zc_zmq_t *z) {
  z->in_ns = zq_now_ns();
  zq_monitor_drain(z);
  for (;;) {
    zmq_msg_t f;
    zmq_msg_init(&f);
    if (zmq_msg_recv(&f, z->sock, ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&f);
      return;
    }
    size_t n = zmq_msg_size(&f);
    const unsigned char *d = zmq_msg_data(&f);
    if (n >= 1 && d[0] == 1 && !zmq_msg_more(&f)) {
      z->subs_in++;
    } else if (!(n >= 1 && d[0] == 0 && !zmq_msg_more(&f))) {
      z->rejected++;
      zq_set_error(z, EPROTO, "dropped a %zu-byte frame from a subscriber (not a subscription)", n);
    }
    zmq_msg_close(&f);
  }
}

static int live(const zc_zmq_t *z) { return z->npeers + z->overflow_peers; }

int zq_pub_send_locked(zc_zmq_t *z, void *p, size_t len, uint32_t type) {
  if (zq_now_ns() - z->in_ns >= ZP_LOOK_NS) zq_pub_drain(z);
  int n = live(z);
  if (zq_send_checked(z, p, len, type) != 0) return -1;
  if (n == 0) z->unheard++;
  z->deliveries += (uint64_t)n;
  return n;
}

int zc_zmq_pub_send(zc_zmq_t *z, void *p, size_t len, uint32_t type) {
  if (z == NULL || !z->pub) return errno = EINVAL, -1;
  pthread_mutex_lock(&z->lock);
  int rc = zq_pub_send_locked(z, p, len, type);
  int e = errno;
  pthread_mutex_unlock(&z->lock);
  errno = e;
  return rc;
}

int zc_zmq_pub_accept(zc_zmq_t *z, int timeout_ms) {
  if (z == NULL || !z->pub) return errno = EINVAL, -1;
  uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : zq_now_ns() + (uint64_t)timeout_ms * 1000000ull;
  for (;;) {
    pthread_mutex_lock(&z->lock);
    zq_pub_drain(z);
    if (z->joins < z->subs_in) {
      z->joins++;
      int n = live(z);
      pthread_mutex_unlock(&z->lock);
      return n > 0 ? n : 1; /* its connection may have closed since: it did subscribe */
    }
    pthread_mutex_unlock(&z->lock);
    uint64_t now = zq_now_ns();
    if (now >= deadline) {
      errno = timeout_ms == 0 ? EAGAIN : ETIMEDOUT;
      return -1;
    }
    uint64_t left = deadline == UINT64_MAX ? ZP_SLICE_MS : (deadline - now + 999999) / 1000000;
    struct epoll_event ev;
    epoll_wait(z->epfd, &ev, 1, left < ZP_SLICE_MS ? (int)left : ZP_SLICE_MS);
  }
}

int zc_zmq_subscribers(zc_zmq_t *z) {
  if (z == NULL || !z->pub) return errno = EINVAL, -1;
  pthread_mutex_lock(&z->lock);
  zq_pub_drain(z);
  int n = live(z);
  pthread_mutex_unlock(&z->lock);
  return n;
}

void zc_zmq_pub_stats(zc_zmq_t *z, zc_pub_stats_t *out) {
  memset(out, 0, sizeof *out);
  if (z == NULL || !z->pub) return;
  zc_zmq_stats(z, &out->chan);
  pthread_mutex_lock(&z->lock);
  zq_pub_drain(z);
  out->chan.rejected = z->rejected;
  out->subscribers = (uint64_t)live(z);
  out->joined = z->subs_in;
  out->left = z->downs;
  out->unheard = z->unheard;
  out->deliveries = z->deliveries;
  pthread_mutex_unlock(&z->lock);
}

uint64_t zc_zmq_missed(zc_zmq_t *z) { return z != NULL && z->sub ? z->missed : 0; }

/* ---- fan-out over both transports ---- */

struct zc_ep_pub_s {
  zc_pub_t *local;
  zc_zmq_t *z;
  char path[]; /* the local publisher's socket path */
};

zc_ep_pub_t *zc_ep_pub_listen(const char *endpoint, const zc_zmq_config_t *cfg) {
  if (endpoint == NULL) return errno = EINVAL, NULL;
  int zmq = zc_ep_kind_of(endpoint) == ZC_EP_ZMQ;
  zc_ep_pub_t *p = malloc(sizeof *p + (zmq ? 1 : strlen(endpoint) + 1));
  if (p == NULL) return errno = ENOMEM, NULL;
  p->local = NULL;
  p->z = NULL;
  p->path[0] = 0;
  if (zmq) {
    p->z = zc_zmq_pub_bind(endpoint, cfg);
  } else {
    strcpy(p->path, endpoint);
    p->local = zc_pub_listen(endpoint, cfg != NULL ? &cfg->chan : NULL);
  }
  if (p->z == NULL && p->local == NULL) {
    int e = errno;
    free(p);
    return errno = e, NULL;
  }
  return p;
}

void zc_ep_pub_close(zc_ep_pub_t *p) {
  if (p == NULL) return;
  if (p->z != NULL) zc_zmq_close(p->z);
  if (p->local != NULL) {
    zc_pub_close(p->local);
    unlink(p->path);
  }
  free(p);
}

/* A NULL publisher takes the local branch with a NULL zc_pub_t, which every zc_pub_* call refuses (EINVAL). */
#define DISPATCH(p, local_call, zmq_call) ((p) != NULL && (p)->z != NULL ? (zmq_call) : (local_call))
#define EPP_LOCAL(p) ((p) != NULL ? (p)->local : NULL)

zc_ep_kind_t zc_ep_pub_kind(zc_ep_pub_t *p) { return p == NULL ? (zc_ep_kind_t)0 : p->z != NULL ? ZC_EP_ZMQ : ZC_EP_CHANNEL; }
const char *zc_ep_pub_endpoint(zc_ep_pub_t *p) { return p == NULL ? NULL : p->z != NULL ? zc_zmq_endpoint(p->z) : p->path; }
int zc_ep_pub_accept(zc_ep_pub_t *p, int timeout_ms) {
  return DISPATCH(p, zc_pub_accept(EPP_LOCAL(p), timeout_ms), zc_zmq_pub_accept(p->z, timeout_ms));
}
void *zc_ep_pub_loan(zc_ep_pub_t *p, size_t n) { return DISPATCH(p, zc_pub_loan(EPP_LOCAL(p), n), zc_zmq_loan(p->z, n)); }
int zc_ep_pub_send(zc_ep_pub_t *p, void *buf, size_t len, uint32_t type) {
  return DISPATCH(p, zc_pub_send(EPP_LOCAL(p), buf, len, type), zc_zmq_pub_send(p->z, buf, len, type));
}
int zc_ep_pub_cancel(zc_ep_pub_t *p, void *buf) {
  return DISPATCH(p, zc_pub_cancel(EPP_LOCAL(p), buf), zc_zmq_cancel(p->z, buf));
}
long zc_ep_pub_collect(zc_ep_pub_t *p) { return DISPATCH(p, zc_pub_collect(EPP_LOCAL(p)), zc_zmq_collect(p->z)); }
int zc_ep_pub_subscribers(zc_ep_pub_t *p) {
  return DISPATCH(p, zc_pub_subscribers(EPP_LOCAL(p)), zc_zmq_subscribers(p->z));
}
int zc_ep_pub_fd(zc_ep_pub_t *p) { return DISPATCH(p, zc_pub_fd(EPP_LOCAL(p)), zc_zmq_fd(p->z)); }
const char *zc_ep_pub_error(zc_ep_pub_t *p) { return DISPATCH(p, zc_pub_error(EPP_LOCAL(p)), zc_zmq_error(p->z)); }
void zc_ep_pub_stats(zc_ep_pub_t *p, zc_pub_stats_t *out) {
  if (p != NULL && p->z != NULL)
    zc_zmq_pub_stats(p->z, out);
  else
    zc_pub_stats(EPP_LOCAL(p), out);
}
