/* Layer 9, zero-copy channel: setup and teardown. The handshake over the UNIX socket, the control segment,
 * the consumer's side of segment growth (mapping data segments read-only as the producer announces them),
 * errors, stats and close.
 *
 * Handshake (SOCK_SEQPACKET records, chan_wire_t):
 *   both      HELLO(role, version)                   sent first by each side
 *   producer  CTL(ring_cap, ret_cap, size) + memfd   the control segment
 *   producer  SEG(index, size) + memfd               data segment 0, later 1, 2, ... as the producer grows
 *   producer  KICK                                   wake-up for a consumer armed for poll/epoll
 * Every record is sent without blocking: a consumer that never reads its socket cannot stall the producer.
 * Invariants: the consumer maps a memory file only after checking that its size is what the record says,
 * that the size is sealed (no later truncation can fault a reader with SIGBUS in either process) and that
 * the seal set is closed; a data segment must also carry F_SEAL_FUTURE_WRITE, which the producer adds
 * after its own writable mapping: nobody can map it writable again or write() it, whatever fd they hold.
 * Before anything else each side checks the peer's uid (SO_PEERCRED) against cfg.peer_uids.
 */
#include "chan_internal.h"
#include "options.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#define CHAN_DEFAULT_RING 4096u
#define CHAN_DEFAULT_FIRST ((uint64_t)4 << 20)
#define CHAN_DEFAULT_MAX ((uint64_t)1 << 30)
#define CHAN_DEFAULT_QUEUED ((uint64_t)1 << 20)

void *chan_private_alloc(size_t size) {
  size_t page = zc_os_page_size();
  size = (size + page - 1) & ~(page - 1);
  return zc_os_alloc_aligned(size, page);
}

void chan_private_free(void *p, size_t size) {
  size_t page = zc_os_page_size();
  if (p != NULL) zc_os_free(p, (size + page - 1) & ~(page - 1));
}

size_t chan_ctl_size(uint32_t ring_cap, uint32_t ret_cap) {
  size_t page = zc_os_page_size();
  size_t n = CHAN_RING_OFFSET + (size_t)ring_cap * sizeof(chan_desc_t) + (size_t)ret_cap * sizeof(uint64_t);
  return (n + page - 1) & ~(page - 1);
}

int chan_dead_errno(int d) {
  errno = d;
  return -1;
}

int chan_fail(zc_chan_t *ch, int err, const char *fmt, ...) {
  int expect = 0;
  if (__atomic_compare_exchange_n(&ch->dead, &expect, err, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    va_list ap;
    va_start(ap, fmt);
    zc_vformat(ch->err, sizeof ch->err, fmt, ap);
    va_end(ap);
    if (err != EPIPE) zc_report("channel (%s): %s", ch->role == ZC_CHAN_PRODUCER ? "producer" : "consumer", ch->err);
    if (ch->pid == zc_os_pid()) zc_os_unix_shutdown(ch->sock); /* the peer sees end of file now and reclaims or stops */
  }
  errno = __atomic_load_n(&ch->dead, __ATOMIC_ACQUIRE);
  return -1;
}

static void fill_defaults(zc_chan_config_t *c, const zc_chan_config_t *user) {
  if (user) *c = *user;
  else memset(c, 0, sizeof *c);
  if (c->ring_entries == 0) c->ring_entries = CHAN_DEFAULT_RING;
  if (c->first_segment == 0) c->first_segment = CHAN_DEFAULT_FIRST;
  if (c->max_bytes == 0) c->max_bytes = CHAN_DEFAULT_MAX;
  if (c->block_timeout_ms == 0) c->block_timeout_ms = 1000;
  if (c->spin_ns == 0) c->spin_ns = 20000;
  if (c->spin_ns < 0) c->spin_ns = 0;
  if (c->setup_timeout_ms == 0) c->setup_timeout_ms = 5000;
  if (c->setup_timeout_ms < 0) c->setup_timeout_ms = -1; /* forever */
  if (c->max_queued_bytes == 0) c->max_queued_bytes = CHAN_DEFAULT_QUEUED;
  /* segments are whole pages (512 KiB); the cap is at least one segment (clamped before rounding up: a
   * size near 2^64 wrapped to 0, and the open failed with ENOSPC) */
  uint64_t big = CHAN_PAGE_SIZE;
  if (c->first_segment > CHAN_SEG_MAX_BYTES) c->first_segment = CHAN_SEG_MAX_BYTES;
  c->first_segment = (c->first_segment + big - 1) / big * big;
  if (c->max_bytes < c->first_segment) c->max_bytes = c->first_segment;
}

/* Wait for the next record, at most until deadline (ns, monotonic; UINT64_MAX: forever). Returns its
 * length, 0 at EOF, -1. */
static long recv_wait(zc_chan_t *ch, chan_wire_t *w, int *fd, uint64_t deadline) {
  for (;;) {
    long n = zc_os_msg_recv(ch->sock, w, sizeof *w, fd);
    if (n < 0 && errno == ECONNRESET) return 0; /* the peer closed with records unread: it is gone */
    if (n >= 0 || errno != EAGAIN) return n;
    uint64_t now = zc_os_clock_ns();
    if (now >= deadline) {
      errno = ETIMEDOUT;
      return -1;
    }
    uint64_t left_ms = (deadline - now) / 1000000u + 1;
    if (zc_os_fd_wait(ch->sock, deadline == UINT64_MAX ? -1 : (int)(left_ms < 1000000 ? left_ms : 1000000)) < 0)
      return -1;
  }
}

static int send_record(zc_chan_t *ch, unsigned kind, uint32_t a, uint32_t b, uint64_t size, int fd) {
  chan_wire_t w = {CHAN_MAGIC, (uint16_t)kind, (uint16_t)ch->role, a, b, size};
  return zc_os_msg_send(ch->sock, &w, sizeof w, fd, false); /* never blocks: see the top of the file */
}

static int producer_setup(zc_chan_t *ch) {
  uint32_t cap = ch->cfg.ring_entries;
  if (cap < 64 || cap > (1u << 20) || (cap & (cap - 1)) != 0)
    return chan_fail(ch, EINVAL, "ring_entries %u is not a power of two in [64, 1M]", cap);
  int pol = ch->cfg.policy;
  if (pol != ZC_CHAN_BLOCK && pol != ZC_CHAN_FAIL && pol != ZC_PUB_EVICT)
    return chan_fail(ch, EINVAL, "policy %d is not ZC_CHAN_BLOCK, ZC_CHAN_FAIL or ZC_PUB_EVICT", pol);
  ch->ring_cap = cap;
  ch->ret_cap = cap * 2;
  ch->ctl_size = chan_ctl_size(ch->ring_cap, ch->ret_cap);
  int fd = zc_os_shm_create("zcmem-chan-ctl", ch->ctl_size);
  if (fd < 0) return chan_fail(ch, errno, "cannot create the control segment (memfd): errno %d", errno);
  ch->ctl = zc_os_shm_map(fd, ch->ctl_size, true);
  if (ch->ctl == NULL) {
    zc_os_close(fd);
    return chan_fail(ch, ENOMEM, "cannot map the control segment");
  }
  if (!zc_os_no_fork(ch->ctl, ch->ctl_size) || zc_os_shm_seal(fd, false) != 0) {
    int e = errno;
    zc_os_close(fd);
    return chan_fail(ch, e, "cannot seal the control segment or keep it from fork children: errno %d", e);
  }
  ch->ctl->magic = CHAN_MAGIC;
  ch->ctl->version = CHAN_VERSION;
  ch->ctl->ring_cap = ch->ring_cap;
  ch->ctl->ret_cap = ch->ret_cap;
  ch->ring = (chan_desc_t *)((char *)ch->ctl + CHAN_RING_OFFSET);
  ch->ret = (uint64_t *)(ch->ring + ch->ring_cap);
  int r = send_record(ch, WIRE_CTL, ch->ring_cap, ch->ret_cap, ch->ctl_size, fd);
  zc_os_close(fd);
  if (r != 0) return chan_fail(ch, errno == EPIPE ? EPIPE : errno, "cannot send the control segment: errno %d", errno);
  ch->qlen = chan_private_alloc((size_t)cap * sizeof(uint32_t));
  if (ch->qlen == NULL) return chan_fail(ch, ENOMEM, "out of memory for the ring's private lengths");
  ch->next_seg_size = ch->cfg.first_segment;
  for (unsigned c = 0; c < ZC_CLASS_COUNT; c++) ch->cls[c].avail = CHAN_NONE;
  ch->free_pages = CHAN_NONE;
  return 0;
}

static int consumer_setup(zc_chan_t *ch, uint64_t deadline) {
  chan_wire_t w;
  int fd;
  long n = recv_wait(ch, &w, &fd, deadline);
  if (n < 0 && errno == EMFILE)
    return chan_fail(ch, EMFILE, "the control segment fd was dropped (MSG_CTRUNC): too many open files (RLIMIT_NOFILE)");
  if (n < 0 && errno == EPROTO)
    return chan_fail(ch, EPROTO, "bad control-segment record from the producer (" CHAN_BAD_RECORD ")");
  if (n <= 0) return chan_fail(ch, n == 0 ? EPIPE : errno, "no control segment from the producer (errno %d)", n == 0 ? EPIPE : errno);
  uint32_t cap = w.a, rcap = w.b;
  uint64_t size = w.size;
  if (n != sizeof w || w.magic != CHAN_MAGIC || w.kind != WIRE_CTL || fd < 0 || cap < 64 || cap > (1u << 20) ||
      (cap & (cap - 1)) != 0 || rcap != cap * 2 || size != chan_ctl_size(cap, rcap)) {
    zc_os_close(fd);
    return chan_fail(ch, EPROTO, "bad control-segment record from the producer");
  }
  if (zc_os_shm_check(fd, size) != 0) {
    zc_os_close(fd);
    return chan_fail(ch, EPROTO, "control segment is not a sealed memory file of %lu bytes", (unsigned long)size);
  }
  int seals = zc_os_shm_seals(fd);
  if (seals < 0 || !(seals & ZC_SEAL_SEAL)) {
    zc_os_close(fd);
    return chan_fail(ch, EPROTO, "control segment's seal set is not closed (F_SEAL_SEAL)");
  }
  ch->ctl = zc_os_shm_map(fd, size, true);
  zc_os_close(fd);
  if (ch->ctl == NULL) return chan_fail(ch, ENOMEM, "cannot map the control segment");
  zc_os_no_fork(ch->ctl, size); /* a fork child has no business in the channel's control words */
  ch->ctl_size = size;
  ch->ring_cap = cap;
  ch->ret_cap = rcap;
  ch->ring = (chan_desc_t *)((char *)ch->ctl + CHAN_RING_OFFSET);
  ch->ret = (uint64_t *)(ch->ring + ch->ring_cap);
  /* c_tail starts at 0 like the producer's head; the producer may have published already. */
  return chan_consumer_poll_socket(ch);
}

/* The peer's credentials, checked against cfg.peer_uids (default: our own effective uid). */
static int peer_allowed(zc_chan_t *ch) {
  zc_chan_peer_t *p = &ch->peer;
  if (zc_os_unix_peer(ch->sock, &p->pid, &p->uid, &p->gid) != 0)
    return chan_fail(ch, errno, "cannot read the peer's credentials (SO_PEERCRED): errno %d", errno);
  const uint32_t *ok = ch->cfg.peer_uids;
  uint32_t n = ch->cfg.n_peer_uids, own = zc_os_euid();
  if (ok == NULL || n == 0) {
    ok = &own;
    n = 1;
  }
  for (uint32_t i = 0; i < n; i++)
    if (ok[i] == p->uid || ok[i] == ZC_CHAN_ANY_UID) return 0;
  return chan_fail(ch, EACCES, "peer uid %u (pid %d) is not allowed to use this channel", p->uid, (int)p->pid);
}

/* The handshake on sock; a producer then announces its first data segment, unless it is a publisher's
 * link (grow false: the publisher sends its own segments). */
static zc_chan_t *open_sock(int sock, zc_chan_role_t role, const zc_chan_config_t *cfg, bool grow) {
  if (role != ZC_CHAN_PRODUCER && role != ZC_CHAN_CONSUMER) {
    zc_os_close(sock);
    errno = EINVAL;
    return NULL;
  }
  if (zc_os_unix_check(sock) != 0) {
    int e = errno;
    zc_report("channel: fd %d is not a connected AF_UNIX SOCK_SEQPACKET socket (errno %d)", sock, e);
    zc_os_close(sock);
    errno = e;
    return NULL;
  }
  zc_chan_t *ch = chan_private_alloc(sizeof *ch);
  if (ch == NULL) {
    zc_os_close(sock);
    errno = ENOMEM;
    return NULL;
  }
  ch->sock = sock;
  ch->pid = zc_os_pid();
  ch->role = role;
  fill_defaults(&ch->cfg, cfg);
  zc_lock_init(&ch->lock);
  uint64_t deadline =
      ch->cfg.setup_timeout_ms < 0 ? UINT64_MAX : zc_os_clock_ns() + (uint64_t)ch->cfg.setup_timeout_ms * 1000000u;
  if (peer_allowed(ch) != 0) goto fail;
  if (send_record(ch, WIRE_HELLO, CHAN_VERSION, 0, 0, -1) != 0) {
    chan_fail(ch, errno, "cannot greet the peer: errno %d", errno);
    goto fail;
  }
  /* the peer's HELLO: same protocol, opposite role (both greet before either can fail and close) */
  chan_wire_t w;
  int fd;
  long n = recv_wait(ch, &w, &fd, deadline);
  zc_os_close(fd);
  if (n < 0 && errno == EPROTO) {
    chan_fail(ch, EPROTO, "bad greeting from the peer (" CHAN_BAD_RECORD ")");
    goto fail;
  }
  if (n <= 0) {
    chan_fail(ch, n == 0 ? EPIPE : errno, "no greeting from the peer (errno %d)", n == 0 ? EPIPE : errno);
    goto fail;
  }
  if (n != sizeof w || w.magic != CHAN_MAGIC || w.kind != WIRE_HELLO || w.a != CHAN_VERSION) {
    chan_fail(ch, EPROTO, "the peer does not speak the zcmem channel protocol version %u", CHAN_VERSION);
    goto fail;
  }
  if (w.role == role || (w.role != ZC_CHAN_PRODUCER && w.role != ZC_CHAN_CONSUMER)) {
    chan_fail(ch, EPROTO, "both ends opened the channel as %s", role == ZC_CHAN_PRODUCER ? "producer" : "consumer");
    goto fail;
  }
  if (role == ZC_CHAN_PRODUCER && (producer_setup(ch) != 0 || (grow && chan_producer_grow(ch, 0) != 0))) goto fail;
  if (role == ZC_CHAN_CONSUMER && consumer_setup(ch, deadline) != 0) goto fail;
  return ch;
fail: {
  int e = errno;
  zc_chan_close(ch);
  errno = e;
  return NULL;
}
}

zc_chan_t *zc_chan_open(int sock, zc_chan_role_t role, const zc_chan_config_t *cfg) {
  return open_sock(sock, role, cfg, true);
}

zc_chan_t *chan_open_link(int sock, const zc_chan_config_t *cfg) { return open_sock(sock, ZC_CHAN_PRODUCER, cfg, false); }

zc_chan_t *chan_hub_new(const zc_chan_config_t *cfg, struct zc_pub_s *pub) {
  zc_chan_t *ch = chan_private_alloc(sizeof *ch);
  if (ch == NULL) return errno = ENOMEM, NULL;
  ch->sock = -1;
  ch->pid = zc_os_pid();
  ch->role = ZC_CHAN_PRODUCER;
  ch->pub = pub;
  fill_defaults(&ch->cfg, cfg);
  zc_lock_init(&ch->lock);
  uint32_t cap = ch->cfg.ring_entries;
  int pol = ch->cfg.policy;
  if (cap < 64 || cap > (1u << 20) || (cap & (cap - 1)) != 0 ||
      (pol != ZC_CHAN_BLOCK && pol != ZC_CHAN_FAIL && pol != ZC_PUB_EVICT)) {
    chan_private_free(ch, sizeof *ch);
    return errno = EINVAL, NULL;
  }
  ch->next_seg_size = ch->cfg.first_segment;
  for (unsigned c = 0; c < ZC_CLASS_COUNT; c++) ch->cls[c].avail = CHAN_NONE;
  ch->free_pages = CHAN_NONE;
  return ch;
}

int zc_chan_listen(const char *path) { return zc_os_unix_listen(path); }


zc_chan_t *zc_chan_accept(int lfd, zc_chan_role_t role, const zc_chan_config_t *cfg) {
  zc_chan_config_t c;
  fill_defaults(&c, cfg);
  int fd = zc_os_unix_accept(lfd, c.setup_timeout_ms); /* -1: forever */
  return fd < 0 ? NULL : zc_chan_open(fd, role, cfg);
}

zc_chan_t *zc_chan_connect(const char *path, zc_chan_role_t role, const zc_chan_config_t *cfg) {
  int fd = zc_os_unix_connect(path);
  return fd < 0 ? NULL : zc_chan_open(fd, role, cfg);
}

/* Consumer: read the records queued on the socket (at most 512 per call: a flood cannot hold us). SEG
 * maps the next data segment read-only; KICK only wakes; end of file is remembered (receive reports EPIPE
 * once the ring is empty). 0, or -1 if the channel is now dead. With stop_at_kick, a KICK ends the call
 * (an honest producer leaves at most one unread: the read that would find the socket empty is saved; a
 * record after it keeps the fd readable, for the next call). */
static int poll_socket(zc_chan_t *ch, bool stop_at_kick);
int chan_consumer_poll_socket(zc_chan_t *ch) { return poll_socket(ch, false); }
int chan_consumer_poll_kick(zc_chan_t *ch) { return poll_socket(ch, true); }

static int poll_socket(zc_chan_t *ch, bool stop_at_kick) {
  for (int k = 0; k < 512; k++) {
    chan_wire_t w;
    int fd;
    long n = zc_os_msg_recv(ch->sock, &w, sizeof w, &fd);
    if (n < 0 && errno == EAGAIN) return 0;
    if (n < 0 && errno == ECONNRESET) n = 0;
    if (n < 0 && errno == EMFILE)
      return chan_fail(ch, EMFILE, "a shared-memory fd from the producer was dropped (MSG_CTRUNC): "
                                   "too many open files (RLIMIT_NOFILE)");
    if (n < 0 && errno == EPROTO) return chan_fail(ch, EPROTO, "bad record from the producer (" CHAN_BAD_RECORD ")");
    if (n < 0) return chan_fail(ch, errno, "socket error %d", errno);
    if (n == 0) {
      ch->eof = 1;
      return 0;
    }
    if (n != sizeof w || w.magic != CHAN_MAGIC || (w.kind != WIRE_SEG && w.kind != WIRE_KICK)) {
      zc_os_close(fd);
      return chan_fail(ch, EPROTO, "unexpected record from the producer");
    }
    if (w.kind == WIRE_KICK) {
      zc_os_close(fd);
      ch->armed = 0; /* the producer took our flag (one kick per arming): this is its kick */
      ch->kick_due = 0;
      if (stop_at_kick) return 0;
      continue;
    }
    uint64_t size = w.size;
    if (fd < 0 || w.a != ch->nseg || ch->nseg >= CHAN_SEG_MAX || size < CHAN_GRANULE ||
        size > CHAN_SEG_LIMIT || (size & (CHAN_GRANULE - 1)) != 0) {
      zc_os_close(fd);
      return chan_fail(ch, EPROTO, "bad data-segment record (index %u, size %lu)", w.a, (unsigned long)size);
    }
    if (zc_os_shm_check(fd, (size_t)size) != 0) {
      zc_os_close(fd);
      return chan_fail(ch, EPROTO, "data segment %u is not a sealed memory file of %lu bytes", w.a,
                       (unsigned long)size);
    }
    int seals = zc_os_shm_seals(fd), need = ZC_SEAL_FUTURE_WRITE | ZC_SEAL_SEAL;
    if (seals < 0 || (seals & need) != need) {
      zc_os_close(fd);
      return chan_fail(ch, EPROTO, "data segment %u is not sealed against writes (F_SEAL_FUTURE_WRITE and "
                                   "F_SEAL_SEAL): the producer could let others write it", w.a);
    }
    void *p = zc_os_shm_map(fd, (size_t)size, false); /* read-only, and the seal keeps it so */
    zc_os_close(fd);
    if (p == NULL) return chan_fail(ch, ENOMEM, "cannot map data segment %u", w.a);
    ch->seg[ch->nseg].base = p;
    ch->seg[ch->nseg].size = (size_t)size;
    __atomic_store_n(&ch->nseg, ch->nseg + 1, __ATOMIC_RELEASE);
  }
  return 0;
}

void zc_chan_close(zc_chan_t *ch) {
  if (ch == NULL) return;
  /* Shut down (the peer sees end of file even if a fork child still holds a copy of the fd), but only in
   * the process that opened the channel: a fork child that closes what it inherited closes its fd and
   * frees its copies, and the parent's channel goes on (the socket is one object for both processes). */
  bool own = ch->pid == zc_os_pid();
  if (own) zc_os_unix_shutdown(ch->sock);
  zc_os_close(ch->sock);
  /* A fork child has no control segment and no producer data segment (MADV_DONTFORK): their addresses may
   * hold a mapping of its own by now, which an unmap would destroy. The consumer's segments and the
   * private memory were inherited: those the child frees. */
  for (unsigned i = 0; i < ch->nseg; i++) {
    if (own || ch->role == ZC_CHAN_CONSUMER) zc_os_free(ch->seg[i].base, ch->seg[i].size);
    chan_private_free(ch->seg[i].pages, ch->seg[i].meta_size);
  }
  if (ch->ctl && own) zc_os_free(ch->ctl, ch->ctl_size);
  chan_private_free(ch->pend, ch->pend_cap * sizeof(uint64_t));
  chan_private_free(ch->qlen, (size_t)ch->ring_cap * sizeof(uint32_t));
  chan_private_free(ch, sizeof *ch);
}

#if defined(ZC_DEBUG) && ZC_DEBUG
/* Tests only (ZC_DEBUG builds; no such symbol elsewhere): fn(point) runs at each test point (chan_internal.h),
 * in the thread that reaches it; NULL removes it. Process-wide. */
void (*chan_test_hook_fn)(int point);
ZC_CHAN_API void zc_chan_test_hook(void (*fn)(int point)) { __atomic_store_n(&chan_test_hook_fn, fn, __ATOMIC_RELEASE); }
#endif

int zc_chan_fd(zc_chan_t *ch) { return ch ? ch->sock : (errno = EINVAL, -1); }
const char *zc_chan_error(zc_chan_t *ch) { return ch ? ch->err : "no channel (NULL)"; }
zc_chan_role_t zc_chan_role(zc_chan_t *ch) { return ch ? ch->role : (zc_chan_role_t)0; }

int zc_chan_peer(zc_chan_t *ch, zc_chan_peer_t *out) {
  if (ch == NULL || out == NULL) return errno = EINVAL, -1;
  *out = ch->peer;
  return 0;
}

int zc_chan_copy(const zc_chan_msg_t *m, size_t off, void *dst, size_t n) {
  if (m == NULL || (dst == NULL && n != 0)) return errno = EINVAL, -1;
  size_t len = m->len; /* private: loaded and checked once at receive */
  if (off > len || n > len - off) return errno = EMSGSIZE, -1;
  memcpy(dst, (const char *)m->data + off, n);
  return 0;
}

void zc_chan_stats(zc_chan_t *ch, zc_chan_stats_t *out) {
  memset(out, 0, sizeof *out);
  if (ch == NULL) return;
  if (ch->role == ZC_CHAN_PRODUCER) chan_producer_stats(ch, out);
  else chan_consumer_stats(ch, out);
  out->rejected = __atomic_load_n(&ch->rejected, __ATOMIC_RELAXED); /* producer threads bump these unlocked */
  out->wakes = __atomic_load_n(&ch->wakes, __ATOMIC_RELAXED);
  out->sleeps = __atomic_load_n(&ch->sleeps, __ATOMIC_RELAXED);
}
