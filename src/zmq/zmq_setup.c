/* zcmem over ZeroMQ: opening and closing an endpoint, the socket monitor (peer count), waiting, the epoll
 * fd, stats and errors. Producer paths are in zmq_producer.c, consumer paths in zmq_consumer.c. */
#define _GNU_SOURCE
#include "zmq_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

uint64_t zq_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void zq_set_error(zc_zmq_t *z, int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(z->err, sizeof z->err, fmt, ap);
  va_end(ap);
  errno = err;
}

/* ---- peers ---- */

/* Monitor events: ACCEPTED/CONNECTED carry the new connection's fd, DISCONNECTED the fd that closed
 * (libzmq 4.3: HANDSHAKE_SUCCEEDED carries no fd). A peer counts from its TCP/IPC connection; a connection
 * only marks the endpoint "was connected" (so a later loss is EPIPE) once a ZMTP handshake succeeded: a
 * port scanner or a peer speaking garbage can never make a fresh endpoint report EPIPE. */
static void peer_up(zc_zmq_t *z, int fd) {
  z->accepted_peers++;
  if (z->npeers < ZQ_MAX_FDS)
    z->fds[z->npeers++] = fd;
  else
    z->overflow_peers++;
}

static void peer_down(zc_zmq_t *z, int fd) {
  z->downs++;
  for (int i = 0; i < z->npeers; i++)
    if (z->fds[i] == fd) {
      z->fds[i] = z->fds[--z->npeers];
      goto counted;
    }
  if (z->overflow_peers > 0) z->overflow_peers--;
counted:
  if (z->npeers + z->overflow_peers == 0) z->down_ns = zq_now_ns();
}

void zq_monitor_drain(zc_zmq_t *z) {
  for (;;) {
    zmq_msg_t ev, addr;
    zmq_msg_init(&ev);
    if (zmq_msg_recv(&ev, z->mon, ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&ev);
      return;
    }
    uint16_t id = 0;
    uint32_t value = 0;
    if (zmq_msg_size(&ev) >= 6) {
      memcpy(&id, zmq_msg_data(&ev), 2);
      memcpy(&value, (char *)zmq_msg_data(&ev) + 2, 4);
    }
    int more = zmq_msg_more(&ev);
    zmq_msg_close(&ev);
    if (more) { /* the second frame: the endpoint address */
      zmq_msg_init(&addr);
      zmq_msg_recv(&addr, z->mon, 0);
      zmq_msg_close(&addr);
    }
    switch (id) {
      case ZMQ_EVENT_ACCEPTED:
      case ZMQ_EVENT_CONNECTED: peer_up(z, (int)value); break;
      case ZMQ_EVENT_DISCONNECTED: peer_down(z, (int)value); break;
      case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        z->ever_connected = 1;
        z->seq_fresh = 1; /* subscriber: a (new) publisher's numbering starts over, not a gap */
        break;
      default: break;
    }
  }
}

int zq_peer_lost(const zc_zmq_t *z) {
  return !z->inproc && z->ever_connected && z->npeers + z->overflow_peers == 0;
}

/* libzmq reports a disconnection before it flushes the last frames it read from that connection
 * (stream_engine_base_t::error in 4.3). A producer that closes cleanly sends a goodbye frame last, so
 * once every disconnection has its goodbye, everything those peers sent has been received. A peer that
 * died sent none: then EPIPE comes ZQ_DOWN_GRACE_NS after the loss was seen (and frames that still
 * trickle in after it are delivered by later receives). */
int zq_loss_final(const zc_zmq_t *z) {
  if (!zq_peer_lost(z)) return 0;
  return z->byes >= z->downs || zq_now_ns() >= z->down_ns + ZQ_DOWN_GRACE_NS;
}

/* Producer close: the goodbye frame, unless no consumer is connected (then nobody waits for it). */
static void send_goodbye(zc_zmq_t *z, int timeout_ms) {
  zq_monitor_drain(z);
  if (z->inproc || z->npeers + z->overflow_peers == 0) return;
  uint32_t hdr[4] = {ZQ_BYE, 0, 0, 0};
  int t = timeout_ms < 0 ? -1 : timeout_ms;
  zmq_setsockopt(z->sock, ZMQ_SNDTIMEO, &t, sizeof t);
  zmq_send(z->sock, hdr, sizeof hdr, 0); /* best effort: without it the consumer waits out the grace */
}

/* Wait until the data socket has `events` (ZMQ_POLLIN/ZMQ_POLLOUT) or a monitor event arrives. */
int zq_wait(zc_zmq_t *z, short events, uint64_t deadline_ns) {
  zmq_pollitem_t it[2] = {{z->sock, 0, events, 0}, {z->mon, 0, ZMQ_POLLIN, 0}};
  long ms = -1;
  if (deadline_ns != UINT64_MAX) {
    uint64_t now = zq_now_ns();
    if (now >= deadline_ns) return 0;
    ms = (long)((deadline_ns - now + 999999) / 1000000);
  }
  z->sleeps++;
  int rc = zmq_poll(it, 2, ms);
  if (rc < 0) {
    if (errno == EINTR) return 1; /* let the caller look again */
    zq_set_error(z, EPROTO, "zmq_poll: %s", zmq_strerror(errno));
    return -1;
  }
  if (it[1].revents) zq_monitor_drain(z);
  return rc > 0 ? 1 : (deadline_ns != UINT64_MAX && zq_now_ns() >= deadline_ns ? 0 : 1);
}

/* ---- open ---- */

static int setopt_int(zc_zmq_t *z, int opt, int v) {
  if (zmq_setsockopt(z->sock, opt, &v, sizeof v) == 0) return 0;
  zq_set_error(z, EINVAL, "zmq_setsockopt(%d, %d): %s", opt, v, zmq_strerror(errno));
  return -1;
}

/* inproc:// connects only sockets of one context: those endpoints share this one (never terminated). */
static void *shared_ctx;
static pthread_once_t shared_once = PTHREAD_ONCE_INIT;
static void shared_init(void) { shared_ctx = zmq_ctx_new(); }

static void destroy(zc_zmq_t *z) {
  if (z->sock != NULL) {
    zmq_socket_monitor(z->sock, NULL, 0);
    zmq_close(z->sock);
  }
  if (z->mon != NULL) zmq_close(z->mon);
  if (z->ctx != NULL && !z->inproc) zmq_ctx_term(z->ctx); /* waits for the linger: every callback ran */
  if (z->epfd >= 0) close(z->epfd);
  if (z->t != NULL) zq_tally_put(z->t);
  pthread_mutex_destroy(&z->lock);
  free(z->chunks);
  free(z);
}

zc_zmq_t *zq_open(const char *endpoint, zc_chan_role_t role, const zc_zmq_config_t *cfg, int bind, int type) {
  zc_zmq_config_t c = {0};
  if (cfg != NULL) c = *cfg;
  int max_policy = type == ZMQ_XPUB || type == ZMQ_SUB ? ZC_PUB_EVICT : ZC_CHAN_FAIL; /* one cfg for both ends */
  if (endpoint == NULL || (role != ZC_CHAN_PRODUCER && role != ZC_CHAN_CONSUMER) ||
      strlen(endpoint) >= sizeof ((zc_zmq_t *)0)->endpoint || c.chan.policy < 0 || c.chan.policy > max_policy ||
      c.max_msg > ZC_ZMQ_MAX_MSG || (c.chan.ring_entries > (uint32_t)INT32_MAX)) {
    errno = EINVAL;
    return NULL;
  }
  zc_zmq_t *z = calloc(1, sizeof *z);
  if (z == NULL) return NULL;
  z->epfd = -1;
  pthread_mutex_init(&z->lock, NULL);
  z->role = role;
  z->pub = type == ZMQ_XPUB;
  z->sub = type == ZMQ_SUB;
  z->seq_fresh = 1;
  /* aligned as its type says (its counters sit on their own cache lines; calloc gives 16 bytes) */
  z->t = aligned_alloc(_Alignof(zq_tally_t), (sizeof *z->t + _Alignof(zq_tally_t) - 1) & ~(_Alignof(zq_tally_t) - 1));
  if (z->t != NULL) memset(z->t, 0, sizeof *z->t);
  if (z->t == NULL) {
    free(z);
    errno = ENOMEM;
    return NULL;
  }
  z->t->refs = 1;
  z->t->per_block_refs = strncmp(endpoint, "inproc://", 9) == 0; /* no zmq_ctx_term waits for those */
  pthread_mutex_init(&z->t->lock, NULL);
  pthread_cond_init(&z->t->space, NULL);
  z->inproc = strncmp(endpoint, "inproc://", 9) == 0;
  z->policy = c.chan.policy;
  z->block_timeout_ms = c.chan.block_timeout_ms != 0 ? c.chan.block_timeout_ms : 1000;
  z->setup_timeout_ms = c.chan.setup_timeout_ms > 0 ? c.chan.setup_timeout_ms : 5000;
  z->max_bytes = c.chan.max_bytes != 0 ? c.chan.max_bytes : (uint64_t)1 << 30;
  z->max_msg = c.max_msg != 0 ? c.max_msg : ZC_ZMQ_MAX_MSG;
  z->loan_key = (uint32_t)(zq_now_ns() * 2654435761u) ^ (uint32_t)(uintptr_t)z ^ 0x5a5a0000u;
  if (z->loan_key == ZQ_MAGIC) z->loan_key++;
  int hwm = c.chan.ring_entries != 0 ? (int)c.chan.ring_entries : 4096;
  /* Heartbeats are opt-in: libzmq stops reading a connection whose queue is full, pings included, so a
   * consumer that stalls longer than the timeout would be dropped as dead (seen under load). */
  int hb = c.heartbeat_ms > 0 ? c.heartbeat_ms : 0;
  int hb_timeout = c.heartbeat_timeout_ms > 0 ? c.heartbeat_timeout_ms : 3 * hb;
  int linger = c.linger_ms != 0 ? c.linger_ms : z->block_timeout_ms;
  if (linger < 0) linger = -1;
  char mon_ep[64];

  if (z->inproc) pthread_once(&shared_once, shared_init);
  if ((z->ctx = z->inproc ? shared_ctx : zmq_ctx_new()) == NULL) {
    zq_set_error(z, ENOMEM, "zmq_ctx_new: %s", zmq_strerror(errno));
    goto fail;
  }
  z->sock = zmq_socket(z->ctx, type);
  if (z->sock == NULL) {
    zq_set_error(z, ENOMEM, "zmq_socket: %s", zmq_strerror(errno));
    goto fail;
  }
  if (setopt_int(z, role == ZC_CHAN_PRODUCER ? ZMQ_SNDHWM : ZMQ_RCVHWM, hwm) != 0 ||
      setopt_int(z, ZMQ_LINGER, role == ZC_CHAN_PRODUCER ? linger : 0) != 0)
    goto fail;
  if (hb > 0 && !z->inproc &&
      (setopt_int(z, ZMQ_HEARTBEAT_IVL, hb) != 0 || setopt_int(z, ZMQ_HEARTBEAT_TIMEOUT, hb_timeout) != 0 ||
       setopt_int(z, ZMQ_HEARTBEAT_TTL, hb_timeout < 6553500 ? hb_timeout : 6553500) != 0))
    goto fail;
  if (z->pub) {
    /* NODROP: a full subscriber makes send fail (EAGAIN), which BLOCK and FAIL turn into their waits;
     * EVICT keeps libzmq's PUB behaviour, dropping the messages a full subscriber has no room for.
     * VERBOSE: every subscription reaches us (zc_zmq_pub_accept counts them). A subscriber sends nothing
     * but subscriptions: a larger frame gets its connection dropped. */
    int64_t maxsize = 256;
    if (setopt_int(z, ZMQ_XPUB_NODROP, z->policy != ZC_PUB_EVICT) != 0 || setopt_int(z, ZMQ_XPUB_VERBOSE, 1) != 0 ||
        zmq_setsockopt(z->sock, ZMQ_MAXMSGSIZE, &maxsize, sizeof maxsize) != 0)
      goto fail;
  } else if (role == ZC_CHAN_CONSUMER) {
    int64_t maxsize = (int64_t)(z->max_msg + ZQ_HDR);
    if (zmq_setsockopt(z->sock, ZMQ_MAXMSGSIZE, &maxsize, sizeof maxsize) != 0) {
      zq_set_error(z, EINVAL, "ZMQ_MAXMSGSIZE: %s", zmq_strerror(errno));
      goto fail;
    }
    if (z->sub && zmq_setsockopt(z->sock, ZMQ_SUBSCRIBE, "", 0) != 0) {
      zq_set_error(z, EINVAL, "ZMQ_SUBSCRIBE: %s", zmq_strerror(errno));
      goto fail;
    }
  } else if (!bind && setopt_int(z, ZMQ_IMMEDIATE, 1) != 0) {
    goto fail; /* queue nothing for a peer that is not connected: send waits (or EPIPE) instead */
  }
  static _Atomic unsigned long monitors;
  snprintf(mon_ep, sizeof mon_ep, "inproc://zcmem-monitor-%lu", atomic_fetch_add(&monitors, 1));
  if (zmq_socket_monitor(z->sock, mon_ep,
                         ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED |
                             ZMQ_EVENT_HANDSHAKE_SUCCEEDED) != 0 ||
      (z->mon = zmq_socket(z->ctx, ZMQ_PAIR)) == NULL || zmq_connect(z->mon, mon_ep) != 0) {
    zq_set_error(z, ENOMEM, "socket monitor: %s", zmq_strerror(errno));
    goto fail;
  }
  if ((bind ? zmq_bind(z->sock, endpoint) : zmq_connect(z->sock, endpoint)) != 0) {
    int e = errno;
    zq_set_error(z, e == EADDRINUSE || e == EADDRNOTAVAIL || e == ENODEV ? e : EINVAL, "%s %s: %s",
                 bind ? "bind" : "connect", endpoint, zmq_strerror(e));
    goto fail;
  }
  size_t len = sizeof z->endpoint;
  if (zmq_getsockopt(z->sock, ZMQ_LAST_ENDPOINT, z->endpoint, &len) != 0 || z->endpoint[0] == 0)
    snprintf(z->endpoint, sizeof z->endpoint, "%s", endpoint);

  /* The fd: one epoll instance holding both ZMQ_FDs, so an event loop needs one fd per endpoint. */
  z->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (z->epfd < 0) {
    zq_set_error(z, errno, "epoll_create1: %s", strerror(errno));
    goto fail;
  }
  for (int i = 0; i < 2; i++) {
    void *s = i == 0 ? z->mon : z->sock;
    if (s == z->sock && role != ZC_CHAN_CONSUMER && !z->pub) break;
    int fd;
    size_t fl = sizeof fd;
    struct epoll_event ev = {.events = EPOLLIN};
    if (zmq_getsockopt(s, ZMQ_FD, &fd, &fl) != 0 || epoll_ctl(z->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      zq_set_error(z, EINVAL, "ZMQ_FD into epoll: %s", strerror(errno));
      goto fail;
    }
  }

  if (!bind && !z->inproc) { /* connect: wait for the first connection, as the channel's connect does */
    uint64_t deadline = zq_now_ns() + (uint64_t)z->setup_timeout_ms * 1000000ull;
    zq_monitor_drain(z);
    while (!z->ever_connected) {
      zmq_pollitem_t it = {z->mon, 0, ZMQ_POLLIN, 0};
      uint64_t now = zq_now_ns();
      if (now >= deadline) {
        zq_set_error(z, ETIMEDOUT, "connect %s: no peer within %d ms", endpoint, z->setup_timeout_ms);
        goto fail;
      }
      zmq_poll(&it, 1, (long)((deadline - now) / 1000000 + 1));
      zq_monitor_drain(z);
    }
  }
  z->sleeps = 0;
  return z;
fail: {
  int e = errno;
  destroy(z);
  errno = e;
  return NULL;
}
}

zc_zmq_t *zc_zmq_bind(const char *endpoint, zc_chan_role_t role, const zc_zmq_config_t *cfg) {
  return zq_open(endpoint, role, cfg, 1, role == ZC_CHAN_PRODUCER ? ZMQ_PUSH : ZMQ_PULL);
}

zc_zmq_t *zc_zmq_connect(const char *endpoint, zc_chan_role_t role, const zc_zmq_config_t *cfg) {
  return zq_open(endpoint, role, cfg, 0, role == ZC_CHAN_PRODUCER ? ZMQ_PUSH : ZMQ_PULL);
}

void zc_zmq_close(zc_zmq_t *z) {
  if (z == NULL) return;
  if (z->role == ZC_CHAN_CONSUMER) zq_consumer_close(z);
  if (z->role == ZC_CHAN_PRODUCER) {
    pthread_mutex_lock(&z->lock);
    send_goodbye(z, z->block_timeout_ms);
    pthread_mutex_unlock(&z->lock);
  }
  /* zmq_ctx_term waits for the producer's linger: every block libzmq held goes through zq_free_cb first. */
  destroy(z);
}

const char *zc_zmq_endpoint(zc_zmq_t *z) { return z ? z->endpoint : NULL; }
const char *zc_zmq_error(zc_zmq_t *z) { return z ? z->err : "no endpoint (NULL)"; }
zc_chan_role_t zc_zmq_role(zc_zmq_t *z) { return z ? z->role : (zc_chan_role_t)0; }
int zc_zmq_fd(zc_zmq_t *z) { return z ? z->epfd : (errno = EINVAL, -1); }

int zc_zmq_peers(zc_zmq_t *z) {
  if (z == NULL) return errno = EINVAL, -1;
  if (z->inproc) return -1;
  if (z->role == ZC_CHAN_PRODUCER) pthread_mutex_lock(&z->lock);
  zq_monitor_drain(z);
  int n = z->npeers + z->overflow_peers;
  if (z->role == ZC_CHAN_PRODUCER) pthread_mutex_unlock(&z->lock);
  return n;
}

void zc_zmq_stats(zc_zmq_t *z, zc_chan_stats_t *out) {
  memset(out, 0, sizeof *out);
  if (z == NULL) return;
  if (z->role == ZC_CHAN_PRODUCER) {
    pthread_mutex_lock(&z->lock);
    out->sent = z->sent;
    out->full_waits = z->full_waits + atomic_load(&z->cap_waits);
    out->sleeps = z->sleeps + atomic_load(&z->cap_sleeps);
    uint64_t sent_bytes = z->sent_bytes;
    pthread_mutex_unlock(&z->lock);
    out->returned = atomic_load(&z->t->returned);
    out->loaned_msgs = atomic_load(&z->loaned_msgs);
    out->loaned_bytes = atomic_load(&z->loaned_bytes);
    out->inflight_msgs = out->sent - out->returned;
    out->inflight_bytes = sent_bytes - atomic_load(&z->t->returned_bytes);
  } else {
    out->held_msgs = z->held_msgs;
    out->held_bytes = z->held_bytes;
    out->received = z->received;
    out->released = z->released;
    out->rejected = z->rejected;
    out->sleeps = z->sleeps;
  }
}
