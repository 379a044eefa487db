/* Layer 10, channel services: endpoints and connections. Names (abstract or path), listen and connect,
 * the connection handshake, connections joining and dying, the epoll checks, close.
 *
 * Handshake of one connection (the connector C, the listener L):
 *   C  connect; read L's credentials (SO_PEERCRED) and refuse a uid not allowed (EACCES)
 *   C  socketpair (a, b); send HELLO(magic, version) with b attached on the connected socket
 *   L  accept; read C's credentials (refuse: close); read HELLO and b (waiting at most setup_timeout_ms)
 *   both  open the channel on the connected socket (C producer: C -> L), then on a/b (L producer)
 * The channel on a/b checks the credentials of the pair's creator: L sees C's (a real check); C sees its
 * own, so C opens it with any uid allowed: b went to the listener it has just checked.
 *
 * Invariant: only the receiving thread (zc_svc_receive / zc_svc_call) adds connections, marks them dead
 * and closes them; a connection is closed only when no thread uses it (busy) and the user holds no view
 * into it (held), so a view stays readable after its sender died until it is released.
 */
#include "svc_internal.h"
#include "options.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

int svc_fail(zc_svc_t *s, int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  zc_vformat(s->err, sizeof s->err, fmt, ap);
  va_end(ap);
  errno = err;
  return -1;
}

static uint32_t svc_uid(const zc_svc_config_t *c) { return c->owner_uid ? c->owner_uid : zc_os_euid(); }

/* "zcmem.<uid>.<name>" in the abstract namespace, or the path itself: the fd, or -1. */
static int name_fd(const char *name, const zc_svc_config_t *c, bool listen) {
  if (name == NULL || name[0] == 0) return errno = EINVAL, -1;
  if (strchr(name, '/')) return listen ? zc_os_unix_listen(name) : zc_os_unix_connect(name);
  char full[108];
  size_t n = strlen(name);
  if (n > 80) return errno = ENAMETOOLONG, -1;
  zc_format(full, sizeof full, "zcmem.%u.%s", svc_uid(c), name);
  return listen ? zc_os_unix_listen_abstract(full) : zc_os_unix_connect_abstract(full);
}

/* The channel's rule for who may connect (zc_chan_config_t.peer_uids), applied before the handshake. */
static int uid_allowed(const zc_svc_config_t *c, int fd, uint32_t *uid_out) {
  int32_t pid;
  uint32_t uid = 0, gid;
  *uid_out = 0;
  if (zc_os_unix_peer(fd, &pid, &uid, &gid) != 0) return -1;
  *uid_out = uid;
  const uint32_t *ok = c->chan.peer_uids;
  uint32_t n = c->chan.n_peer_uids, own = zc_os_euid();
  if (ok == NULL || n == 0) ok = &own, n = 1;
  for (uint32_t i = 0; i < n; i++)
    if (ok[i] == uid || ok[i] == ZC_CHAN_ANY_UID) return 0;
  errno = EACCES;
  return -1;
}

static zc_svc_t *svc_new(const zc_svc_config_t *cfg) {
  zc_svc_config_t c;
  if (cfg) c = *cfg;
  else memset(&c, 0, sizeof c);
  if (c.max_peers == 0) c.max_peers = 64;
  if (c.max_pending == 0) c.max_pending = 4096;
  if (c.check_ms <= 0) c.check_ms = 10;
  int pol = c.chan.policy; /* checked here too: each connection's open would refuse it, one by one */
  if (c.max_peers > 4096 || c.max_pending > (1u << 24) ||
      (pol != ZC_CHAN_BLOCK && pol != ZC_CHAN_FAIL && pol != ZC_PUB_EVICT))
    return errno = EINVAL, NULL;
  size_t page = zc_os_page_size(), head = (sizeof(zc_svc_t) + 63) & ~(size_t)63;
  size_t peers = (c.max_peers * sizeof(svc_peer_t) + 63) & ~(size_t)63;
  size_t size = head + peers + c.max_pending * sizeof(pend_entry_t);
  size = (size + page - 1) & ~(page - 1);
  char *b = zc_os_alloc_aligned(size, page);
  if (b == NULL) return errno = ENOMEM, NULL;
  zc_svc_t *s = (zc_svc_t *)b;
  s->arrays_size = size;
  s->cfg = c;
  zc_lock_init(&s->lock);
  s->listen_fd = -1;
  s->peers = (svc_peer_t *)(b + head);
  s->max_peers = c.max_peers;
  pend_init(&s->pend, (pend_entry_t *)(b + head + peers), c.max_pending);
  for (int k = 0; k < SVC_MAX_JOINS; k++) s->join_fd[k] = -1;
  s->space[0] = s->space[1] = -1;
  s->ep = zc_os_epoll_create();
  s->xfd = zc_os_epoll_create();
  if (s->ep < 0 || s->xfd < 0 || zc_os_unix_pair(s->space) != 0 || zc_os_epoll_add(s->xfd, s->ep, 0) != 0 ||
      zc_os_epoll_add(s->xfd, s->space[0], 1) != 0) {
    int e = errno;
    zc_os_close(s->ep);
    zc_os_close(s->xfd);
    zc_os_close(s->space[0]);
    zc_os_close(s->space[1]);
    zc_os_free(b, size);
    return errno = e, NULL;
  }
  return s;
}

/* Put a connection (both channels open) into a free slot and watch its fds. */
static int peer_add(zc_svc_t *s, zc_chan_t *out, zc_chan_t *in) {
  zc_lock(&s->lock);
  uint32_t i = 0;
  while (i < s->max_peers && s->peers[i].state != PEER_FREE) i++;
  if (i == s->max_peers) {
    zc_unlock(&s->lock);
    return errno = EMFILE, -1;
  }
  svc_peer_t *p = &s->peers[i];
  p->out = out;
  p->in = in;
  __atomic_store_n(&p->gen, p->gen + 1, __ATOMIC_RELAXED); /* read without the lock by svc_peer_get */
  p->err = 0;
  p->drained = 0;
  p->pending = 0;
  p->armed = 0;
  p->kicked = 0;
  __atomic_store_n(&p->held, 0, __ATOMIC_RELAXED);
  /* the connector's socket (on the listener: in) or the listener's (on the connector: out); the pair's
   * other channel was made by the connector and names it on both sides */
  if (zc_chan_peer(s->connected ? out : in, &p->cred) != 0) memset(&p->cred, 0, sizeof p->cred);
  zc_lock_init(&p->in_lock);
  __atomic_store_n(&p->state, PEER_OPEN, __ATOMIC_RELEASE);
  if (i + 1 > s->hi) s->hi = i + 1;
  s->st.peers++;
  s->st.joined++;
  zc_unlock(&s->lock);
  if (zc_os_epoll_add(s->ep, zc_chan_fd(in), (uint64_t)i << 1) != 0 ||
      zc_os_epoll_add(s->ep, zc_chan_fd(out), (uint64_t)i << 1 | 1) != 0) {
    svc_peer_dead(s, i, errno, 0); /* the receiving thread reaps it */
    return -1;
  }
  svc_space_wake(s); /* a connection to loan on: an event loop waiting for room retries */
  return 0;
}

/* Listener: one connector. Returns 0 if it joined, -1 (and the fd closed) if not. */
static int join(zc_svc_t *s, int fd) {
  uint32_t uid = 0;
  if (uid_allowed(&s->cfg, fd, &uid) != 0) {
    zc_os_close(fd);
    return svc_fail(s, EACCES, "refused a connection from uid %u (not in peer_uids)", uid);
  }
  int wait_ms = s->cfg.chan.setup_timeout_ms == 0 ? 5000 : s->cfg.chan.setup_timeout_ms;
  svc_hello_t h;
  int pfd = -1;
  long n = -1;
  if (zc_os_fd_wait(fd, wait_ms) == 1) n = zc_os_msg_recv(fd, &h, sizeof h, &pfd);
  if (n != (long)sizeof h || h.magic != SVC_MAGIC || h.version != SVC_VERSION || pfd < 0) {
    zc_os_close(pfd);
    zc_os_close(fd);
    __atomic_fetch_add(&s->st.rejected, 1, __ATOMIC_RELAXED);
    return svc_fail(s, EPROTO, "a connector sent no valid HELLO (version %u expected)", SVC_VERSION);
  }
  zc_chan_t *in = zc_chan_open(fd, ZC_CHAN_CONSUMER, &s->cfg.chan);
  zc_chan_t *out = in ? zc_chan_open(pfd, ZC_CHAN_PRODUCER, &s->cfg.chan) : NULL;
  if (in == NULL) zc_os_close(pfd);
  if (out == NULL) {
    int e = errno;
    zc_chan_close(in);
    return svc_fail(s, e, "a connection failed its channel setup (errno %d)", e);
  }
  if (peer_add(s, out, in) != 0) {
    zc_chan_close(in);
    zc_chan_close(out);
    return svc_fail(s, EMFILE, "a connection was turned away: max_peers (%u) reached", s->max_peers);
  }
  return 0;
}

zc_svc_t *zc_svc_listen(const char *name, const zc_svc_config_t *cfg) {
  zc_svc_t *s = svc_new(cfg);
  if (s == NULL) return NULL;
  s->listen_fd = name_fd(name, &s->cfg, true);
  if (s->listen_fd < 0 || zc_os_epoll_add(s->ep, s->listen_fd, SVC_LISTEN_TAG) != 0) {
    int e = errno;
    zc_svc_close(s);
    errno = e;
    return NULL;
  }
  return s;
}

zc_svc_t *zc_svc_connect(const char *name, const zc_svc_config_t *cfg) {
  zc_svc_t *s = svc_new(cfg);
  if (s == NULL) return NULL;
  s->connected = 1;
  uint64_t end = zc_os_clock_ns() + (uint64_t)(s->cfg.connect_timeout_ms > 0 ? s->cfg.connect_timeout_ms : 0) * 1000000u;
  int fd, e;
  for (;;) { /* a restarting listener: the name comes back within connect_timeout_ms */
    fd = name_fd(name, &s->cfg, false);
    e = errno;
    if (fd >= 0 || (e != ECONNREFUSED && e != ENOENT) || zc_os_clock_ns() >= end) break;
    zc_os_sleep_ns(5000000);
  }
  int sv[2] = {-1, -1};
  uint32_t uid = 0;
  zc_chan_t *out = NULL, *in = NULL;
  if (fd < 0) goto fail;
  if (uid_allowed(&s->cfg, fd, &uid) != 0) {
    e = errno;
    zc_os_close(fd);
    svc_fail(s, e, "the listener's uid %u is not allowed (peer_uids)", uid);
    goto fail;
  }
  svc_hello_t h = {SVC_MAGIC, SVC_VERSION};
  if (zc_os_unix_pair(sv) != 0 || zc_os_msg_send(fd, &h, sizeof h, sv[1], true) != 0) {
    e = errno;
    zc_os_close(fd);
    zc_os_close(sv[0]);
    zc_os_close(sv[1]);
    goto fail;
  }
  zc_os_close(sv[1]);
  out = zc_chan_open(fd, ZC_CHAN_PRODUCER, &s->cfg.chan);
  if (out == NULL) {
    e = errno;
    zc_os_close(sv[0]);
    goto fail;
  }
  zc_chan_config_t pc = s->cfg.chan;
  uint32_t any = ZC_CHAN_ANY_UID;
  pc.peer_uids = &any; /* the pair's creator is us; its other end went to the listener checked above */
  pc.n_peer_uids = 1;
  in = zc_chan_open(sv[0], ZC_CHAN_CONSUMER, &pc);
  if (in == NULL) {
    e = errno;
    zc_chan_close(out);
    goto fail;
  }
  if (peer_add(s, out, in) != 0) {
    e = errno;
    goto fail; /* the slot owns the channels now: close frees them */
  }
  return s;
fail:
  if (s->err[0] == 0) zc_format(s->err, sizeof s->err, "cannot connect to %s: errno %d", name ? name : "(null)", e);
  zc_svc_close(s);
  errno = e;
  return NULL;
}

/* Without s->lock: raise busy first, then look at the state (both sequentially consistent), the mirror
 * of svc_peer_reap, which marks the slot PEER_CLOSING first and then looks at busy. Either the reaper
 * sees our busy (and leaves the connection open), or we see CLOSING or FREE (and let go): a connection is
 * never closed under a thread that got it. gen is stored before the state that publishes it. */
svc_peer_t *svc_peer_get(zc_svc_t *s, uint32_t idx, uint32_t gen, int any_state) {
  if (idx >= s->max_peers) return NULL;
  svc_peer_t *p = &s->peers[idx];
  __atomic_fetch_add(&p->busy, 1, __ATOMIC_SEQ_CST);
  int st = __atomic_load_n(&p->state, __ATOMIC_SEQ_CST);
  if ((st == PEER_OPEN || (any_state && st == PEER_DEAD)) && __atomic_load_n(&p->gen, __ATOMIC_RELAXED) == gen) return p;
  svc_peer_put(p);
  return NULL;
}

void svc_peer_dead(zc_svc_t *s, uint32_t idx, int err, int drained) {
  svc_peer_t *p = &s->peers[idx];
  bool died = false;
  zc_lock(&s->lock);
  if (p->state == PEER_OPEN) {
    died = true;
    /* out of the epoll set now: its fds stay readable (end of file) while a view into it is held, and
     * a sleeping receive must not spin on them */
    zc_os_epoll_del(s->ep, zc_chan_fd(p->in));
    zc_os_epoll_del(s->ep, zc_chan_fd(p->out));
    __atomic_store_n(&p->state, PEER_DEAD, __ATOMIC_RELEASE);
    p->err = err;
    s->st.peers--;
    if (err == EPROTO) __atomic_fetch_add(&s->st.rejected, 1, __ATOMIC_RELAXED);
  }
  if (drained && __atomic_load_n(&p->drained, __ATOMIC_RELAXED) == 0) __atomic_store_n(&p->drained, 1, __ATOMIC_RELEASE);
  zc_unlock(&s->lock);
  if (died) svc_space_wake(s); /* its fds left the set: a loop waiting for room on it retries (EPIPE) */
}

/* A dead connection: once its in-channel is drained (what it sent before dying was handed out), its
 * outstanding requests fail; once nobody uses it and no view into it is held, both channels close. */
void svc_peer_reap(zc_svc_t *s, uint32_t idx) {
  svc_peer_t *p = &s->peers[idx];
  zc_lock(&s->lock);
  if (p->state != PEER_DEAD || !p->drained) {
    zc_unlock(&s->lock);
    return;
  }
  if (p->drained == 1) {
    svc_fail_pending(s, idx, p->err ? p->err : EPIPE);
    __atomic_store_n(&p->drained, 2, __ATOMIC_RELEASE);
    if (s->connected) s->dead = p->err ? p->err : EPIPE; /* its one connection is gone */
  }
  if (__atomic_load_n(&p->held, __ATOMIC_ACQUIRE) != 0) {
    zc_unlock(&s->lock);
    return;
  }
  /* Dekker with svc_peer_get and zc_svc_loan: CLOSING is stored before busy and held are read, and
   * those raise busy (or, for a loan, held) before they read the state. held rises otherwise only under
   * busy or s->lock (a loan on a listener, a receive), so a connection nobody uses stays unused. */
  __atomic_store_n(&p->state, PEER_CLOSING, __ATOMIC_SEQ_CST);
  if (__atomic_load_n(&p->busy, __ATOMIC_SEQ_CST) != 0 || __atomic_load_n(&p->held, __ATOMIC_SEQ_CST) != 0) {
    __atomic_store_n(&p->state, PEER_DEAD, __ATOMIC_RELEASE);
    zc_unlock(&s->lock);
    return;
  }
  zc_chan_t *in = p->in, *out = p->out;
  p->in = p->out = NULL;
  __atomic_store_n(&p->state, PEER_FREE, __ATOMIC_RELEASE);
  s->st.left++;
  zc_unlock(&s->lock);
  zc_chan_close(in);
  zc_chan_close(out);
}

/* Accept connectors; each waits (in epoll, not here) for its HELLO, at most setup_timeout_ms: a
 * connector that says nothing never stalls the receiving thread. */
static void accept_joins(zc_svc_t *s) {
  for (int j = 0; j < 8; j++) {
    int fd = zc_os_unix_accept(s->listen_fd, 0);
    if (fd < 0) return;
    int k = 0;
    while (k < SVC_MAX_JOINS && s->join_fd[k] >= 0) k++;
    if (k == SVC_MAX_JOINS || zc_os_epoll_add(s->ep, fd, SVC_JOIN_TAG | (uint64_t)k) != 0) {
      zc_os_close(fd); /* too many half-open connectors */
      svc_fail(s, EAGAIN, "a connector was turned away: %d others have not sent their HELLO yet", SVC_MAX_JOINS);
      continue;
    }
    s->join_fd[k] = fd;
    s->join_t[k] = zc_os_clock_ns();
  }
}

static void expire_joins(zc_svc_t *s, uint64_t now) {
  int ms = s->cfg.chan.setup_timeout_ms == 0 ? 5000 : s->cfg.chan.setup_timeout_ms;
  for (int k = 0; k < SVC_MAX_JOINS; k++) {
    if (s->join_fd[k] < 0 || ms < 0 || now - s->join_t[k] < (uint64_t)ms * 1000000u) continue;
    zc_os_epoll_del(s->ep, s->join_fd[k]);
    zc_os_close(s->join_fd[k]);
    s->join_fd[k] = -1;
    __atomic_fetch_add(&s->st.rejected, 1, __ATOMIC_RELAXED);
    svc_fail(s, ETIMEDOUT, "a connector sent no HELLO within setup_timeout_ms (%d ms)", ms);
  }
}

/* Look at the fds: accept joiners, drain kicks, notice ends of file. timeout_ms as epoll_wait. */
void svc_check(zc_svc_t *s, int timeout_ms) {
  uint64_t tags[32];
  s->took = 0;
  s->next_look = zc_os_clock_coarse_ns() + (uint64_t)s->cfg.check_ms * 1000000u;
  if (s->listen_fd >= 0) expire_joins(s, zc_os_clock_ns());
  __atomic_fetch_add(&s->st.checks, 1, __ATOMIC_RELAXED);
  int n = zc_os_epoll_wait(s->ep, tags, 32, timeout_ms);
  for (int k = 0; k < n; k++) {
    if (tags[k] == SVC_LISTEN_TAG) {
      accept_joins(s);
      continue;
    }
    if (tags[k] & SVC_JOIN_TAG) { /* its HELLO (or its end of file) is there: no wait for a silent one */
      uint32_t j = (uint32_t)(tags[k] & (SVC_MAX_JOINS - 1));
      int fd = s->join_fd[j];
      if (fd < 0) continue;
      s->join_fd[j] = -1;
      zc_os_epoll_del(s->ep, fd);
      join(s, fd);
      continue;
    }
    uint32_t idx = (uint32_t)(tags[k] >> 1);
    if (idx >= s->max_peers) continue;
    svc_peer_t *p = &s->peers[idx];
    if (__atomic_load_n(&p->state, __ATOMIC_ACQUIRE) != PEER_OPEN) continue;
    int r;
    if ((tags[k] & 1) == 0) { /* in: a kick (drained by arm) or the sender's end of file */
      zc_lock(&p->in_lock);
      r = zc_chan_arm(p->in);
      zc_unlock(&p->in_lock);
      p->armed = r == 0;
      p->kicked = 0;
    } else { /* out: a space wake-up (the peer took or released after zc_svc_arm_space), or its end of file */
      r = zc_chan_collect(p->out) < 0 ? -1 : 0; /* reads the wake-up record: pass it on to the arming thread */
      svc_space_wake(s);
    }
    if (r < 0) svc_peer_dead(s, idx, errno == EPROTO ? EPROTO : EPIPE, 0);
  }
}

/* Before sleeping in epoll: ask every open connection for a kick at its next message. 1 if one has
 * messages waiting already (do not sleep). A connection still armed from an earlier call is skipped: an
 * arm costs a recvmsg, and a front end draining after each wake-up would pay one per connection. */
/* A connection that delivered while armed (p->kicked) has its producer's wake-up record in its socket (or
 * about to be): zc_chan_arm reads it (one recvmsg), so the caller's epoll does not report it again and no
 * epoll look is needed to find it. The others are armed without reading the socket (zc_chan_arm_quiet): a
 * record there (a segment, its end, a late wake-up) keeps it readable in s->ep, and svc_check's zc_chan_arm
 * reads it when epoll reports it. (A wake-up the channel knows is due, because an arm that said 1 found its
 * flag taken by the producer, is read by the quiet arm too: docs/channel.md, "Wake-ups".) */
int svc_arm_all(zc_svc_t *s) {
  int ready = 0;
  for (uint32_t i = 0; i < s->hi; i++) {
    svc_peer_t *p = &s->peers[i];
    if (p->armed || __atomic_load_n(&p->state, __ATOMIC_ACQUIRE) != PEER_OPEN) continue;
    zc_lock(&p->in_lock);
    int r = p->kicked ? zc_chan_arm(p->in) : zc_chan_arm_quiet(p->in);
    zc_unlock(&p->in_lock);
    p->kicked = 0;
    p->armed = r == 0;
    if (r != 0) ready = 1; /* messages, or a death the next take will see */
  }
  return ready;
}

int zc_svc_fd(zc_svc_t *s) { return s ? s->xfd : (errno = EINVAL, -1); }

/* The wake-ups in the pair, read (a bounded number: one is written per arming). */
static void space_drain(zc_svc_t *s) {
  for (int k = 0; k < 64; k++) {
    char b[8];
    int fd;
    if (zc_os_msg_recv(s->space[0], b, sizeof b, &fd) <= 0) return;
  }
}

/* Room may be back (a space wake-up read from a connection's socket, a join, a death). If a thread armed
 * and has not been woken since: the arming thread itself is awake (its own receive got here) and retries
 * after it; another thread's wake-up is passed on through the pair, which only that thread reads back. */
void svc_space_wake(zc_svc_t *s) {
  if (__atomic_load_n(&s->space_armed, __ATOMIC_ACQUIRE) == 0 || __atomic_exchange_n(&s->space_armed, 0, __ATOMIC_SEQ_CST) == 0)
    return;
  if (__atomic_load_n(&s->space_tid, __ATOMIC_SEQ_CST) == zc_os_thread_id()) return;
  char one = 1;
  zc_os_msg_send(s->space[1], &one, 1, -1, false); /* never blocks; at most a few wait (one per arming) */
  __atomic_store_n(&s->space_woke, 1, __ATOMIC_RELEASE);
}

/* space_woke is set: the arming thread reads its wake-up back; another thread leaves it to that one. */
void svc_space_taken_slow(zc_svc_t *s) {
  if (__atomic_load_n(&s->space_tid, __ATOMIC_ACQUIRE) != zc_os_thread_id()) return;
  __atomic_store_n(&s->space_woke, 0, __ATOMIC_SEQ_CST);
  space_drain(s);
}

/* Every connection's producer channel is armed for space; each one's channel fd is in s->ep already
 * (tag i << 1 | 1), and svc_check drains its wake-up records (zc_chan_collect reads them) and passes each
 * on to this thread (svc_space_wake). This thread is the arming one from now on; an earlier wake-up in the
 * pair is read here (the looks below decide), and space_armed is raised before any connection is armed,
 * so that whoever reads a wake-up record of this arming sees it. */
int zc_svc_arm_space(zc_svc_t *s) {
  if (s == NULL) return errno = EINVAL, -1;
  __atomic_store_n(&s->space_tid, zc_os_thread_id(), __ATOMIC_SEQ_CST);
  if (__atomic_load_n(&s->space_woke, __ATOMIC_ACQUIRE) != 0) {
    __atomic_store_n(&s->space_woke, 0, __ATOMIC_SEQ_CST);
    space_drain(s);
  }
  __atomic_store_n(&s->space_armed, 1, __ATOMIC_SEQ_CST);
  int ready = 0, any = 0;
  for (uint32_t i = 0;; i++) { /* one connection at a time: no channel call under s->lock */
    zc_lock(&s->lock);
    bool end = i >= s->hi;
    svc_peer_t *p = !end && s->peers[i].state == PEER_OPEN ? &s->peers[i] : NULL;
    if (p) __atomic_fetch_add(&p->busy, 1, __ATOMIC_ACQUIRE);
    int dead = s->connected ? (s->dead ? s->dead : EPIPE) : 0;
    zc_unlock(&s->lock);
    if (end) {
      if (!any && dead) {
        __atomic_store_n(&s->space_armed, 0, __ATOMIC_RELAXED);
        return errno = dead, -1; /* a connected endpoint whose connection is gone */
      }
      break;
    }
    if (p == NULL) continue;
    any = 1;
    int r = zc_chan_arm_space(p->out);
    svc_peer_put(p);
    if (r != 0) ready = 1; /* room came back, or the connection died: the retry will tell */
  }
  if (ready) __atomic_store_n(&s->space_armed, 0, __ATOMIC_RELAXED); /* no wake-up needed: retry now */
  return ready;
}

int zc_svc_msg_peer(zc_svc_t *s, const zc_svc_msg_t *m, zc_chan_peer_t *out) {
  if (s == NULL || m == NULL || out == NULL || m->kind < ZC_SVC_REQUEST || m->kind > ZC_SVC_FAILED) return errno = EINVAL, -1;
  int r = -1;
  zc_lock(&s->lock);
  if (m->peer < s->max_peers && s->peers[m->peer].gen == m->peer_gen && s->peers[m->peer].cred.pid != 0) {
    *out = s->peers[m->peer].cred;
    r = 0;
  }
  zc_unlock(&s->lock);
  if (r != 0) errno = ESRCH;
  return r;
}

int zc_svc_peers(zc_svc_t *s) {
  if (s == NULL) return errno = EINVAL, -1;
  zc_lock(&s->lock);
  int n = (int)s->st.peers;
  zc_unlock(&s->lock);
  return n;
}

const char *zc_svc_error(zc_svc_t *s) { return s ? s->err : "no endpoint (NULL)"; }

void zc_svc_stats(zc_svc_t *s, zc_svc_stats_t *out) {
  if (s == NULL) {
    memset(out, 0, sizeof *out);
    return;
  }
  zc_lock(&s->lock); /* some counters are bumped outside it (atomically): read each atomically */
  const uint64_t *from = (const uint64_t *)&s->st;
  uint64_t *to = (uint64_t *)out;
  for (size_t i = 0; i < sizeof *out / sizeof(uint64_t); i++) to[i] = __atomic_load_n(&from[i], __ATOMIC_RELAXED);
  out->pending = s->pend.n;
  zc_unlock(&s->lock);
}

void zc_svc_close(zc_svc_t *s) {
  if (s == NULL) return;
  for (uint32_t i = 0; i < s->hi; i++) {
    svc_peer_t *p = &s->peers[i];
    if (p->state == PEER_FREE) continue;
    zc_chan_close(p->in);
    zc_chan_close(p->out);
  }
  for (int k = 0; k < SVC_MAX_JOINS; k++) zc_os_close(s->join_fd[k]);
  zc_os_close(s->xfd);
  zc_os_close(s->space[0]);
  zc_os_close(s->space[1]);
  zc_os_close(s->ep);
  zc_os_close(s->listen_fd);
  if (s->q) zc_os_free(s->q, s->q_bytes);
  zc_os_free(s, s->arrays_size);
}
