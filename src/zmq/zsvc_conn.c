/* zcmem services over ZeroMQ: opening (ROUTER bound by the listener, DEALER connected by a connector),
 * closing, the socket monitor (connections up and down), the peer table, and sleeping. The message path is
 * in zsvc_msg.c; zsvc_internal.h has the model and the lock rules. */
#define _GNU_SOURCE
#include "zsvc_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

uint64_t zs_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int zs_fail(zs_t *s, int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->err, sizeof s->err, fmt, ap);
  va_end(ap);
  errno = err;
  return -1;
}

int zs_code(zs_t *s, int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->err, sizeof s->err, fmt, ap);
  va_end(ap);
  return err;
}

/* ---- peers ---- */

/* Connection i is gone: its requests fail (FAILED notices, EPIPE), its slot is free for a new one (the
 * generation tells a held request or a reply loan of the old connection from the new one). */
void zs_peer_dead(zs_t *s, uint32_t i, int err) {
  zs_peer_t *p = &s->peers[i];
  if (p->state != ZP_OPEN) return;
  p->state = ZP_DEAD;
  zs_fail_pending(s, i, err);
  s->st.left++;
  s->st.peers--;
}

static void fd_mark(zs_t *s, int fd, uint8_t open) {
  if (fd < 0 || fd > (1 << 24)) return;
  if (fd >= s->fd_cap) {
    int cap = s->fd_cap ? s->fd_cap : 64;
    while (cap <= fd) cap *= 2;
    uint8_t *t = realloc(s->fd_open, (size_t)cap);
    if (t == NULL) return; /* then a peer on this fd is taken as gone: it is never registered */
    memset(t + s->fd_cap, 0, (size_t)(cap - s->fd_cap));
    s->fd_open = t;
    s->fd_cap = cap;
  }
  s->fd_open[fd] = open;
}

/* The listener's peer with this routing id: its index (also if it is dead: libzmq may queue the end of a
 * connection before the last frames read from it, which were sent before the end), a new entry if it is
 * unknown and its connection (fd) is up, or -1 (max_peers reached, or its connection is gone already). */
int zs_peer_find(zs_t *s, const uint8_t *rid, size_t len, int fd) {
  uint32_t free_i = UINT32_MAX;
  for (uint32_t i = 0; i < s->hi; i++) {
    zs_peer_t *p = &s->peers[i];
    if (p->state != ZP_OPEN && free_i == UINT32_MAX) free_i = i; /* the first free or dead slot */
    if (p->state == ZP_FREE) continue;
    /* a dead peer's routing id stays known until its slot is reused (the caller sorts its late frames) */
    if (p->rid_len == len && memcmp(p->rid, rid, len) == 0) return (int)i;
  }
  zs_monitor(s); /* every connection event queued before this frame was read, then look again */
  if (fd < 0 || fd >= s->fd_cap || !s->fd_open[fd] || len > ZS_RID_MAX) return -1;
  if (free_i == UINT32_MAX) {
    if (s->hi >= s->max_peers) return -1;
    free_i = s->hi++;
  }
  zs_peer_t *p = &s->peers[free_i];
  memcpy(p->rid, rid, len);
  p->rid_len = (uint8_t)len;
  p->fd = fd;
  p->state = ZP_OPEN;
  p->gen++;
  p->pending = 0;
  s->st.joined++;
  s->st.peers++;
  return (int)free_i;
}

/* Monitor events. Listener: ACCEPTED / DISCONNECTED by fd (a peer dies with its connection's fd).
 * Connector: its connection to the listener; a handshake opens a new generation of peer 0 and makes a
 * HELLO due; the loss of the last connection kills it. */
void zs_monitor(zs_t *s) {
  s->mon_ns = zs_now_ns();
  for (;;) {
    zmq_msg_t ev;
    zmq_msg_init(&ev);
    if (zmq_msg_recv(&ev, s->mon, ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&ev);
      break;
    }
    uint16_t id = 0;
    uint32_t value = 0;
    if (zmq_msg_size(&ev) >= 6) {
      memcpy(&id, zmq_msg_data(&ev), 2);
      memcpy(&value, (char *)zmq_msg_data(&ev) + 2, 4);
    }
    int more = zmq_msg_more(&ev);
    zmq_msg_close(&ev);
    if (more) { /* the endpoint address */
      zmq_msg_t addr;
      zmq_msg_init(&addr);
      zmq_msg_recv(&addr, s->mon, 0);
      zmq_msg_close(&addr);
    }
    if (s->listener) {
      if (id == ZMQ_EVENT_ACCEPTED) fd_mark(s, (int)value, 1);
      if (id == ZMQ_EVENT_DISCONNECTED) {
        fd_mark(s, (int)value, 0);
        for (uint32_t i = 0; i < s->hi; i++)
          if (s->peers[i].state == ZP_OPEN && s->peers[i].fd == (int)value) zs_peer_dead(s, i, EPIPE);
      }
      continue;
    }
    switch (id) {
      case ZMQ_EVENT_CONNECTED: s->conns++; break;
      case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        zs_peer_dead(s, 0, EPIPE); /* a new connection: what the old one carried is gone */
        s->peers[0].state = ZP_OPEN;
        s->peers[0].gen++;
        s->peers[0].pending = 0;
        s->st.joined++;
        s->st.peers++;
        s->ever_connected = 1;
        s->hello_due = 1;
        break;
      case ZMQ_EVENT_DISCONNECTED:
        if (s->conns > 0) s->conns--;
        if (s->conns == 0) {
          zs_peer_dead(s, 0, EPIPE);
          s->down_ns = zs_now_ns();
          /* an event loop asleep on the fd wakes when receive starts to say EPIPE */
          struct itimerspec it = {{0, 0}, {0, (long)ZS_DOWN_GRACE_NS + 1000000}};
          if (timerfd_settime(s->tfd, 0, &it, NULL) == 0) s->timer_set = 1;
        }
        break;
      default: break;
    }
  }
  zs_hello(s);
  zs_kick(s); /* a death may have queued FAILED notices, and this look may have taken the socket's edge */
}

void zs_hello(zs_t *s) {
  if (s->listener || !s->hello_due || s->peers[0].state != ZP_OPEN) return;
  zs_hdr_t h = {ZS_MAGIC, ZS_HELLO, 0, 0, 0, 0};
  if (zmq_send(s->sock, &h, sizeof h, ZMQ_DONTWAIT) == (int)sizeof h) s->hello_due = 0;
}

int zs_peers(zs_t *s) {
  pthread_mutex_lock(&s->lock);
  zs_monitor(s);
  int n = (int)s->st.peers;
  pthread_mutex_unlock(&s->lock);
  return n;
}

int zs_fd(zs_t *s) { return s->xfd; }

/* Locked. Only the thread that armed takes the space wake-up (its next call after the wake-up): another
 * thread's receive must leave it for that thread's epoll_wait (see zsvc_internal.h). */
void zs_space_taken(zs_t *s) {
  if (!atomic_load(&s->space_woke) || !pthread_equal(s->space_tid, pthread_self())) return;
  atomic_store(&s->space_woke, 0);
  uint64_t v;
  if (read(s->space_fd, &v, sizeof v) < 0) { /* cannot happen: space_woke is set after the write */
  }
}

/* A call on the socket may have read the command that made ZMQ_FD readable for a sleeping receiver (this
 * library's, or the caller's event loop after a receive said EAGAIN), and a look at the monitor may have
 * queued FAILED notices: if anything waits for the receiver, wake it through the eventfd. */
static void wake(zs_t *s) {
  uint64_t one = 1;
  atomic_store(&s->kicked, 1);
  if (write(s->evfd, &one, sizeof one) < 0) { /* full counter: a wake-up is pending anyway */
  }
}

void zs_kick(zs_t *s) {
  int sleeping = atomic_load(&s->sleeping), space = atomic_load(&s->space_armed);
  if (!sleeping && !space) return;
  if (sleeping && (s->q_n != 0 || (s->call_id != 0 && s->call_err != 0))) {
    wake(s);
    return;
  }
  int ev = 0;
  size_t sz = sizeof ev;
  if (zmq_getsockopt(s->sock, ZMQ_EVENTS, &ev, &sz) != 0) return;
  if ((space & ZS_SPACE_HWM) && (ev & ZMQ_POLLOUT) && atomic_exchange(&s->space_armed, 0)) { /* room: retry */
    zs_space_wake(s);
    if (sleeping && (ev & ZMQ_POLLIN)) wake(s);
    return;
  }
  if (sleeping && (ev & ZMQ_POLLIN)) wake(s);
}

/* Back-pressure for event loops, zc_svc_arm_space's contract: after a loan, send, request or reply failed
 * with EAGAIN (ZC_CHAN_FAIL), 1 if room is there already (retry now), 0 if armed: the fd wakes when libzmq
 * has room again (a peer's pipe went below its high-water mark: ZMQ_FD signals it, ZMQ_EVENTS says
 * ZMQ_POLLOUT; on the listener's ROUTER, with ZMQ_ROUTER_MANDATORY, ZMQ_POLLOUT means "some peer's pipe
 * has room"), when the free callback gives back memory under the cap, when a peer joins (listener with no
 * peer) or dies; -1 EPIPE on a connector whose connection is gone. max_pending: the replies that make room
 * are messages, which wake the fd anyway. A wake-up means "retry", not "it fits". */
int zs_arm_space(zs_t *s) {
  pthread_mutex_lock(&s->lock);
  zs_monitor(s);
  if (!s->listener && s->ever_connected && s->peers[0].state != ZP_OPEN) {
    pthread_mutex_unlock(&s->lock);
    return zs_fail(s, EPIPE, "arm_space: the listener is gone (no connection)");
  }
  /* This thread waits for room from now on; an earlier space wake-up is taken (the look below decides). */
  s->space_tid = pthread_self();
  if (atomic_load(&s->space_woke)) {
    atomic_store(&s->space_woke, 0);
    uint64_t v;
    if (read(s->space_fd, &v, sizeof v) < 0) { /* cannot happen: space_woke is set after the write */
    }
  }
  /* Armed for both before looking (a free or a room signal from now on wakes the fd), then narrowed to
   * what is missing: a free must not end a wait for ZMQ_POLLOUT (its wake-up would be read by the next
   * receive, and libzmq's room signal may have been taken meanwhile), nor ZMQ_POLLOUT a wait for memory. */
  atomic_store(&s->space_armed, ZS_SPACE_HWM | ZS_SPACE_MEM);
  int ev = 0;
  size_t sz = sizeof ev;
  int room = zmq_getsockopt(s->sock, ZMQ_EVENTS, &ev, &sz) == 0 && (ev & ZMQ_POLLOUT);
  if ((ev & ZMQ_POLLIN) && atomic_load(&s->sleeping)) wake(s); /* this look took a message's signal */
  uint64_t out = atomic_load(&s->reserved) - atomic_load(&s->freed), want = atomic_load(&s->want_bytes);
  int mem = out == 0 || out + want <= s->max_bytes;
  int pending = s->pend.n < s->max_pending;
  int need = (room ? 0 : ZS_SPACE_HWM) | (mem ? 0 : ZS_SPACE_MEM), r = 0;
  if (need == 0 && pending) { /* nothing to wait for: retry now */
    atomic_store(&s->space_armed, 0);
    r = 1;
  } else if (need != 0) {
    /* A free or a room signal that took the arming meanwhile (space_armed 0) came back during the look and
     * wrote space_fd: retry now (that wake-up is this thread's to take; its next call reads it). */
    int armed = ZS_SPACE_HWM | ZS_SPACE_MEM;
    if (!atomic_compare_exchange_strong(&s->space_armed, &armed, need)) r = 1;
  }
  pthread_mutex_unlock(&s->lock);
  return r;
}

/* Locked, at the start of a receive: the eventfd's and the timer's wake-ups are taken (what they announced
 * is looked at next), so the caller's fd does not stay readable. */
void zs_unkick(zs_t *s) {
  atomic_store(&s->sleeping, 0);
  zs_space_taken(s);
  uint64_t v;
  if (atomic_load(&s->kicked)) {
    atomic_store(&s->kicked, 0);
    if (read(s->evfd, &v, sizeof v) < 0) { /* nothing there: read by a sleeper already */
    }
  }
  if (s->timer_set && read(s->tfd, &v, sizeof v) == (ssize_t)sizeof v) s->timer_set = 0; /* else not due */
}

/* Sleep until the socket, the monitor or the eventfd may have something, the deadline, or one slice.
 * Returns ZS_WOKE_MONITOR if the monitor's fd was readable (look at it now, not at the next ZS_MON_NS). */
int zs_sleep(zs_t *s, uint64_t deadline_ns) {
  uint64_t now = zs_now_ns();
  if (now >= deadline_ns) return 0;
  uint64_t left = (deadline_ns - now + 999999) / 1000000;
  int ms = left > ZS_SLICE_MS ? ZS_SLICE_MS : (int)left;
  struct epoll_event ev[4];
  int n = epoll_wait(s->epfd, ev, 4, ms), woke = 0;
  atomic_store(&s->sleeping, 0);
  for (int i = 0; i < n; i++) {
    if (ev[i].data.u32 == 1) woke |= ZS_WOKE_MONITOR;
    uint64_t v;
    if (ev[i].data.u32 == 0 && read(s->evfd, &v, sizeof v) < 0) { /* another sleeper read it */
    }
  }
  return woke;
}

/* ---- open and close ---- */

static int setopt(zs_t *s, void *sock, int opt, int v) {
  if (zmq_setsockopt(sock, opt, &v, sizeof v) == 0) return 0;
  return zs_fail(s, EINVAL, "zmq_setsockopt(%d, %d): %s", opt, v, zmq_strerror(errno));
}

static void destroy(zs_t *s) {
  if (s->sock != NULL) {
    zmq_socket_monitor(s->sock, NULL, 0);
    zmq_close(s->sock);
  }
  if (s->mon != NULL) zmq_close(s->mon);
  zs_slots_free(s); /* held messages closed before the context ends */
  if (s->ctx != NULL) zmq_ctx_term(s->ctx); /* waits for the linger: every free callback has run */
  if (s->xfd >= 0) close(s->xfd);
  if (s->space_fd >= 0) close(s->space_fd);
  if (s->epfd >= 0) close(s->epfd);
  if (s->evfd >= 0) close(s->evfd);
  if (s->tfd >= 0) close(s->tfd);
  pthread_mutex_destroy(&s->lock);
  free(s->peers);
  free(s->pend.e);
  free(s->fd_open);
  free(s->q);
  free(s);
}

void zs_close(zs_t *s) {
  if (s != NULL) destroy(s);
}

zs_t *zs_open(const char *endpoint, const zc_eps_config_t *cfg, int listen) {
  zc_eps_config_t c = {0};
  if (cfg != NULL) c = *cfg;
  if (endpoint == NULL || strlen(endpoint) >= sizeof ((zs_t *)0)->endpoint || c.svc.chan.policy < 0 ||
      c.svc.chan.policy > 1 || c.max_msg > ZC_EPS_MAX_MSG || c.svc.chan.ring_entries > (uint32_t)INT32_MAX) {
    errno = EINVAL;
    return NULL;
  }
  if (strncmp(endpoint, "inproc://", 9) == 0) { /* no monitor events there: peer deaths unknown */
    errno = EPROTONOSUPPORT;
    return NULL;
  }
  zs_t *s = aligned_alloc(64, (sizeof *s + 63) & ~(size_t)63);
  if (s == NULL) return NULL;
  memset(s, 0, sizeof *s);
  s->epfd = s->evfd = s->tfd = s->xfd = s->space_fd = -1;
  pthread_mutex_init(&s->lock, NULL);
  s->listener = listen;
  s->policy = c.svc.chan.policy;
  s->block_timeout_ms = c.svc.chan.block_timeout_ms != 0 ? c.svc.chan.block_timeout_ms : 1000;
  s->setup_timeout_ms = c.svc.connect_timeout_ms > 0 ? c.svc.connect_timeout_ms
                        : c.svc.chan.setup_timeout_ms > 0 ? c.svc.chan.setup_timeout_ms : 5000;
  s->max_bytes = c.svc.chan.max_bytes != 0 ? c.svc.chan.max_bytes : (uint64_t)1 << 30;
  s->max_msg = c.max_msg != 0 ? c.max_msg : ZC_EPS_MAX_MSG;
  s->max_peers = listen ? (c.svc.max_peers != 0 ? c.svc.max_peers : 64) : 1;
  s->max_pending = c.svc.max_pending != 0 ? c.svc.max_pending : 4096;
  s->loan_key = (uint32_t)(zs_now_ns() * 2654435761u) ^ (uint32_t)(uintptr_t)s ^ 0x3c3c0000u;
  int hwm = c.svc.chan.ring_entries != 0 ? (int)c.svc.chan.ring_entries : 4096;
  int hb = c.heartbeat_ms > 0 ? c.heartbeat_ms : 0;
  int hb_timeout = c.heartbeat_timeout_ms > 0 ? c.heartbeat_timeout_ms : 3 * hb;
  int linger = s->block_timeout_ms < 0 ? -1 : s->block_timeout_ms;
  char mon_ep[64];
  static _Atomic unsigned long monitors;

  s->peers = calloc(s->max_peers, sizeof *s->peers);
  pend_entry_t *pe = calloc(s->max_pending, sizeof *pe);
  s->epfd = epoll_create1(EPOLL_CLOEXEC);
  s->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  s->xfd = epoll_create1(EPOLL_CLOEXEC);
  s->space_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (!listen) s->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  pend_init(&s->pend, pe, pe != NULL ? s->max_pending : 0);
  if (s->peers == NULL || pe == NULL || s->epfd < 0 || s->evfd < 0 || s->xfd < 0 || s->space_fd < 0 ||
      (!listen && s->tfd < 0)) {
    zs_fail(s, ENOMEM, "out of memory or fds");
    goto fail;
  }
  if (!listen) s->hi = 1;
  if ((s->ctx = zmq_ctx_new()) == NULL || (s->sock = zmq_socket(s->ctx, listen ? ZMQ_ROUTER : ZMQ_DEALER)) == NULL) {
    zs_fail(s, ENOMEM, "zmq_socket: %s", zmq_strerror(errno));
    goto fail;
  }
  int64_t maxsize = (int64_t)(s->max_msg + ZS_HDR);
  if (setopt(s, s->sock, ZMQ_SNDHWM, hwm) != 0 || setopt(s, s->sock, ZMQ_RCVHWM, hwm) != 0 ||
      setopt(s, s->sock, ZMQ_LINGER, linger) != 0 ||
      zmq_setsockopt(s->sock, ZMQ_MAXMSGSIZE, &maxsize, sizeof maxsize) != 0)
    goto fail;
  /* Listener: a reply to a connection that is gone fails (EHOSTUNREACH) instead of vanishing, and a full
   * connection says EAGAIN. Connector: nothing is queued while no connection is up. */
  if (setopt(s, s->sock, listen ? ZMQ_ROUTER_MANDATORY : ZMQ_IMMEDIATE, 1) != 0) goto fail;
  if (hb > 0 && (setopt(s, s->sock, ZMQ_HEARTBEAT_IVL, hb) != 0 ||
                 setopt(s, s->sock, ZMQ_HEARTBEAT_TIMEOUT, hb_timeout) != 0 ||
                 setopt(s, s->sock, ZMQ_HEARTBEAT_TTL, hb_timeout < 6553500 ? hb_timeout : 6553500) != 0))
    goto fail;
  snprintf(mon_ep, sizeof mon_ep, "inproc://zcmem-svc-monitor-%lu", atomic_fetch_add(&monitors, 1));
  if (zmq_socket_monitor(s->sock, mon_ep,
                         ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED |
                             ZMQ_EVENT_HANDSHAKE_SUCCEEDED) != 0 ||
      (s->mon = zmq_socket(s->ctx, ZMQ_PAIR)) == NULL || zmq_connect(s->mon, mon_ep) != 0) {
    zs_fail(s, ENOMEM, "socket monitor: %s", zmq_strerror(errno));
    goto fail;
  }
  if ((listen ? zmq_bind(s->sock, endpoint) : zmq_connect(s->sock, endpoint)) != 0) {
    int e = errno;
    zs_fail(s, e == EADDRINUSE || e == EADDRNOTAVAIL || e == ENODEV ? e : EINVAL, "%s %s: %s",
            listen ? "bind" : "connect", endpoint, zmq_strerror(e));
    goto fail;
  }
  size_t len = sizeof s->endpoint;
  if (zmq_getsockopt(s->sock, ZMQ_LAST_ENDPOINT, s->endpoint, &len) != 0 || s->endpoint[0] == 0)
    snprintf(s->endpoint, sizeof s->endpoint, "%s", endpoint);
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 0}; /* data: 0 eventfd, 1 monitor, 2 socket, 3 timer */
  if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->evfd, &ev) != 0) goto fail_fd;
  if (epoll_ctl(s->xfd, EPOLL_CTL_ADD, s->epfd, &ev) != 0) goto fail_fd; /* the caller's fd: epfd + space_fd */
  ev.data.u32 = 4;
  if (epoll_ctl(s->xfd, EPOLL_CTL_ADD, s->space_fd, &ev) != 0) goto fail_fd;
  ev.data.u32 = 0;
  ev.data.u32 = 3;
  if (s->tfd >= 0 && epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->tfd, &ev) != 0) goto fail_fd;
  for (int i = 1; i <= 2; i++) {
    int fd;
    size_t fl = sizeof fd;
    ev.data.u32 = (uint32_t)i;
    if (zmq_getsockopt(i == 2 ? s->sock : s->mon, ZMQ_FD, &fd, &fl) != 0 || epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
      goto fail_fd;
  }
  if (!listen) { /* wait for the first handshake, as zc_svc_connect waits for its listener */
    uint64_t deadline = zs_now_ns() + (uint64_t)s->setup_timeout_ms * 1000000ull;
    zs_monitor(s);
    while (!s->ever_connected) {
      zmq_pollitem_t it = {s->mon, 0, ZMQ_POLLIN, 0};
      uint64_t now = zs_now_ns();
      if (now >= deadline) {
        zs_fail(s, ETIMEDOUT, "connect %s: no listener within %d ms", endpoint, s->setup_timeout_ms);
        goto fail;
      }
      zmq_poll(&it, 1, (long)((deadline - now) / 1000000 + 1));
      zs_monitor(s);
    }
  }
  return s;
fail_fd:
  zs_fail(s, errno ? errno : EINVAL, "ZMQ_FD into epoll: %s", strerror(errno));
fail: {
  int e = errno;
  destroy(s);
  errno = e;
  return NULL;
}
}
