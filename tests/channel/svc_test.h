/* Helpers of the channel-service tests (test_svc_*.c): unique names, and a hand-made peer that speaks
 * the service handshake with the raw one-way channel API, so a test can send what the library never
 * would (forged reply ids, short messages, unknown kinds).
 * Includes: tests/common (zc_test.h), the public zcmem headers and src/service/svc_internal.h (for the
 * header layout and the HELLO record a hostile peer must forge).
 */
#ifndef SVC_TEST_H
#define SVC_TEST_H

/* How long a test waits for another process's answer when the wait is not what it tests (a peer off the
 * CPU under a sanitizer on a loaded 2-core machine; a peer that never answers still fails the test here, or
 * at ctest's TIMEOUT). */
#define PEER_WAIT_MS 60000

#include "zc_test.h"
#include "zcmem_service.h"
#include "svc_internal.h"
#include "chan_internal.h" /* the wire records' kinds, for svc_fd_why */

#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>

/* A word shared with fork children (set before forking). */
static inline volatile int *shared_word(void) {
  void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) exit(2);
  return p;
}

/* A name unique to this test process (abstract namespace). */
static inline const char *svc_name(const char *what) {
  static char buf[8][64];
  static int k;
  char *b = buf[k++ & 7];
  snprintf(b, 64, "svct.%d.%s", (int)getpid(), what);
  return b;
}

static inline int sock_send_fd(int sock, const void *buf, size_t len, int fd) {
  struct iovec iov = {(void *)buf, len};
  union {
    struct cmsghdr h;
    char space[CMSG_SPACE(sizeof(int))];
  } ctl;
  struct msghdr m;
  memset(&m, 0, sizeof m);
  memset(&ctl, 0, sizeof ctl);
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = ctl.space;
  m.msg_controllen = sizeof ctl.space;
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  return sendmsg(sock, &m, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

static inline long sock_recv_fd(int sock, void *buf, size_t len, int *fd) {
  struct iovec iov = {buf, len};
  union {
    struct cmsghdr h;
    char space[CMSG_SPACE(sizeof(int))];
  } ctl;
  struct msghdr m;
  memset(&m, 0, sizeof m);
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = ctl.space;
  m.msg_controllen = sizeof ctl.space;
  *fd = -1;
  long n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  if (n > 0 && c && c->cmsg_type == SCM_RIGHTS) memcpy(fd, CMSG_DATA(c), sizeof *fd);
  return n;
}

/* The abstract address zc_svc_* uses for name. */
static inline socklen_t svc_addr(const char *name, struct sockaddr_un *a) {
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "zcmem.%u.%s", (unsigned)geteuid(), name);
  return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

/* A raw peer: out is the channel it produces into, in the one it consumes. */
typedef struct {
  zc_chan_t *out, *in;
} raw_peer_t;

/* Play the listener of name by hand: accept one connector, read its HELLO, open both channels. */
static inline int raw_listen(const char *name, raw_peer_t *rp) {
  struct sockaddr_un a;
  socklen_t len = svc_addr(name, &a);
  int lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, len) != 0 || listen(lfd, 4) != 0) return -1;
  struct pollfd pf = {lfd, POLLIN, 0};
  if (poll(&pf, 1, 10000) != 1) return -1;
  int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  close(lfd);
  svc_hello_t h;
  int pfd;
  pf.fd = fd;
  if (fd < 0 || poll(&pf, 1, 10000) != 1 || sock_recv_fd(fd, &h, sizeof h, &pfd) != (long)sizeof h || pfd < 0) return -1;
  rp->in = zc_chan_open(fd, ZC_CHAN_CONSUMER, NULL);
  rp->out = rp->in ? zc_chan_open(pfd, ZC_CHAN_PRODUCER, NULL) : NULL;
  return rp->out ? 0 : -1;
}

/* Play a connector of name by hand. */
static inline int raw_connect(const char *name, raw_peer_t *rp) {
  struct sockaddr_un a;
  socklen_t len = svc_addr(name, &a);
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), sv[2];
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, len) != 0) return -1;
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return -1;
  svc_hello_t h = {SVC_MAGIC, SVC_VERSION};
  if (sock_send_fd(fd, &h, sizeof h, sv[1]) != 0) return -1;
  close(sv[1]);
  rp->out = zc_chan_open(fd, ZC_CHAN_PRODUCER, NULL);
  uint32_t any = ZC_CHAN_ANY_UID;
  zc_chan_config_t c = {.peer_uids = &any, .n_peer_uids = 1};
  rp->in = rp->out ? zc_chan_open(sv[0], ZC_CHAN_CONSUMER, &c) : NULL;
  return rp->in ? 0 : -1;
}

/* Send a message with a hand-made header: total bytes len (may be shorter than the header), kind. */
static inline int raw_send(raw_peer_t *rp, int kind, uint64_t id, uint32_t type, size_t len) {
  char *p = zc_chan_loan(rp->out, len < 64 ? 64 : len);
  if (p == NULL) return -1;
  svc_hdr_t h = {id, type, 0};
  memcpy(p, &h, len < sizeof h ? len : sizeof h);
  for (size_t i = sizeof h; i < len; i++) p[i] = (char)i;
  return zc_chan_send(rp->out, p, len, (uint32_t)kind);
}

/* Receive one service message on a raw peer: its kind and header. */
static inline int raw_recv(raw_peer_t *rp, int *kind, svc_hdr_t *h, int timeout_ms) {
  zc_chan_msg_t m;
  if (zc_chan_receive(rp->in, &m, timeout_ms) != 0) return -1;
  *kind = (int)m.type;
  memset(h, 0, sizeof *h);
  if (m.len >= sizeof *h) zc_chan_copy(&m, 0, h, sizeof *h);
  zc_chan_release(rp->in, &m);
  return 0;
}

static inline void raw_close(raw_peer_t *rp) {
  zc_chan_close(rp->in);
  zc_chan_close(rp->out);
}

/* Fill a message body: an 8-byte seed, then the pattern of that seed. */
static inline void body_fill(void *p, size_t n, uint64_t seed) {
  if (n >= 8) {
    memcpy(p, &seed, 8);
    fill_pattern((char *)p + 8, n - 8, seed);
  } else {
    memset(p, (int)(seed & 0xff), n);
  }
}
/* 1 if the body at p of n bytes was filled with seed. */
static inline int body_ok(const void *p, size_t n, uint64_t seed) {
  if (n < 8) {
    for (size_t i = 0; i < n; i++)
      if (((const unsigned char *)p)[i] != (unsigned char)(seed & 0xff)) return 0;
    return 1;
  }
  uint64_t s;
  memcpy(&s, p, 8);
  return s == seed && verify_pattern((const char *)p + 8, n - 8, seed) < 0;
}

/* ---- why zc_svc_fd is readable (failure messages only) ----
 * zc_svc_fd is an epoll set of the service's own set (tag 0) and of one end of its private wake-up pair
 * (tag 1); the service's set holds the listening socket, accepted connectors waiting for their HELLO, and
 * each connection's two channel sockets (in: i << 1, out: i << 1 | 1). This names every member that is
 * readable now and, for a socket, the record waiting first in it (read with MSG_PEEK: nothing is taken,
 * and level-triggered epoll_wait calls change nothing). The members' fd numbers are read from
 * /proc/self/fdinfo. Internal layout, for diagnosis: a test asserts with poll() on zc_svc_fd, never on this. */
#include <sys/epoll.h>

/* The fd that epoll set ep watches with tag data, or -1. */
static inline int svc_epoll_member(int ep, uint64_t data) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", ep);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  int fd = -1;
  while (fgets(line, sizeof line, f)) {
    int t;
    unsigned ev;
    unsigned long long d;
    if (sscanf(line, "tfd: %d events: %x data: %llx", &t, &ev, &d) == 3 && d == data) {
      fd = t;
      break;
    }
  }
  fclose(f);
  return fd;
}

/* The fd of the member of zc_svc_fd's inner set (the service's own epoll set) watched with tag, or -1. */
static inline int svc_inner_member(int xfd, uint64_t tag) {
  int ep = svc_epoll_member(xfd, 0);
  return ep < 0 ? -1 : svc_epoll_member(ep, tag);
}

/* What the socket fd holds first: "empty", "end of file", or a channel record's kind. */
static inline const char *svc_peek_record(int fd, char *buf, size_t n) {
  uint32_t w[6];
  long r = recv(fd, w, sizeof w, MSG_PEEK | MSG_DONTWAIT);
  if (r < 0) snprintf(buf, n, "%s", errno == EAGAIN ? "empty" : "recv error");
  else if (r == 0) snprintf(buf, n, "end of file");
  else if (r == 1) snprintf(buf, n, "a 1-byte record (a passed-on space wake-up)");
  else if (r >= 8 && w[0] == CHAN_MAGIC) {
    unsigned kind = w[1] & 0xffff;
    static const char *names[] = {"?", "HELLO", "CTL", "SEG", "KICK"};
    snprintf(buf, n, "a %s record (channel wire kind %u)", kind <= WIRE_KICK ? names[kind] : "unknown", kind);
  } else snprintf(buf, n, "a %ld-byte record", r);
  return buf;
}

/* Describe in out (n bytes) what makes xfd (zc_svc_fd) readable; "nothing" if nothing does. */
static inline const char *svc_fd_why(int xfd, char *out, size_t n) {
  struct epoll_event ev[8];
  size_t at = 0;
  out[0] = 0;
#define WHY_ADD(...) (at += (size_t)snprintf(out + at, at < n ? n - at : 0, __VA_ARGS__), at = at < n ? at : n)
  int k = epoll_wait(xfd, ev, 8, 0);
  for (int i = 0; i < k; i++) {
    char rec[96];
    if (ev[i].data.u64 == 1) {
      int fd = svc_epoll_member(xfd, 1);
      WHY_ADD("[the private wake-up pair: %s] ", fd < 0 ? "?" : svc_peek_record(fd, rec, sizeof rec));
      continue;
    }
    int ep = svc_epoll_member(xfd, ev[i].data.u64);
    struct epoll_event in[32];
    int m = ep < 0 ? -1 : epoll_wait(ep, in, 32, 0);
    WHY_ADD("[the service's epoll set: %d ready] ", m);
    for (int j = 0; j < m; j++) {
      uint64_t t = in[j].data.u64;
      int fd = svc_epoll_member(ep, t);
      const char *what = fd < 0 ? "?" : svc_peek_record(fd, rec, sizeof rec);
      if (t == SVC_LISTEN_TAG) WHY_ADD("[listening socket: a connector waits] ");
      else if (t & SVC_JOIN_TAG) WHY_ADD("[connector %llu before its HELLO: %s] ", (unsigned long long)(t & ~SVC_JOIN_TAG), what);
      else WHY_ADD("[connection %llu %s socket (events 0x%x): %s] ", (unsigned long long)(t >> 1),
                   (t & 1) ? "out (space wake-ups)" : "in (message wake-ups)", in[j].events, what);
    }
  }
  if (k < 0) WHY_ADD("epoll_wait: errno %d", errno);
  if (at == 0) WHY_ADD("nothing");
#undef WHY_ADD
  return out;
}

#endif /* SVC_TEST_H */
