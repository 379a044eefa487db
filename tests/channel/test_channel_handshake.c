/* Channel tests, a hostile or broken peer during the handshake and on the socket (docs/channel.md,
 * "Against a hostile peer"). The peer is played by hand on the other end of a socket pair: its records are
 * written before the real end opens (every send is non-blocking, the socket holds them), then the peer end
 * is kept open (a stalled peer) or closed (a peer gone at that step). Checked for every case: the open or
 * the first call after it fails with the expected errno within a bound (never hangs), the error text says
 * why, and no file descriptor the peer passed stays open in this process (the count in /proc/self/fd is
 * the same before and after).
 *   silent     a peer that never greets (either role): ETIMEDOUT after setup_timeout_ms, not before, and
 *              not much later
 *   stall      a producer that greets and then sends nothing: ETIMEDOUT
 *   gone       the peer closes at each step: before its greeting, after it, after the control segment
 *              (the consumer's open succeeds; its receive then ends with EPIPE at once, not after its wait)
 *   fds        descriptors the peer should not send: three with a greeting, a control-segment record with
 *              two, with twelve (more than a record can carry: the rest are dropped by the kernel), and a
 *              control segment that is a pipe, /dev/zero, a directory or a plain file: rejected, all closed
 *   records    records of the wrong length (short, long, empty) in place of the control segment
 * Usage: test_channel_handshake <name>. Uses the internal layout (chan_internal.h) to play the peer. */
#include "chan_hostile.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

static int open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  REQUIREF(d != NULL, "opendir /proc/self/fd: %s", strerror(errno));
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1; /* the directory's own fd */
}

/* One record from the hand-played peer, with fds[0..nfd) attached (SCM_RIGHTS) and len bytes of it sent. */
static void peer_send(int fd, unsigned kind, unsigned role, uint32_t a, uint32_t b, uint64_t size, const int *fds,
                      int nfd, size_t len) {
  chan_wire_t w = {CHAN_MAGIC, (uint16_t)kind, (uint16_t)role, a, b, size};
  char pad[sizeof w + 64] = {0};
  memcpy(pad, &w, sizeof w);
  struct iovec iov = {pad, len};
  union {
    struct cmsghdr h;
    char space[CMSG_SPACE(sizeof(int) * 16)];
  } ctl;
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
  if (nfd > 0) {
    m.msg_control = ctl.space;
    m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfd);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfd);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfd);
  }
  REQUIREF(sendmsg(fd, &m, MSG_DONTWAIT) == (ssize_t)len, "peer sendmsg: %s", strerror(errno));
}

static void hello(int fd, unsigned role) { peer_send(fd, WIRE_HELLO, role, CHAN_VERSION, 0, 0, NULL, 0, sizeof(chan_wire_t)); }

/* A valid control segment (64 entries), as the producer makes it. */
static int good_ctl(size_t *size) {
  *size = chan_ctl_size(64, 128);
  int cfd = zc_os_shm_create("ctl", *size);
  REQUIREF(cfd >= 0 && zc_os_shm_seal(cfd, false) == 0, "control memfd: %s", strerror(errno));
  return cfd;
}

typedef struct {
  zc_chan_t *ch;
  int err;
  uint64_t ms;
  char why[256];
} opened_t;

static opened_t open_timed(int fd, zc_chan_role_t role, int timeout_ms) {
  zc_chan_config_t cfg = {.setup_timeout_ms = timeout_ms};
  opened_t o;
  char buf[240];
  stderr_capture_t cap = capture_stderr();
  uint64_t t0 = now_ns();
  o.ch = zc_chan_open(fd, role, &cfg);
  o.err = errno;
  o.ms = (now_ns() - t0) / 1000000u;
  capture_end(cap, buf, sizeof buf);
  snprintf(o.why, sizeof o.why, "%s", o.ch ? zc_chan_error(o.ch) : buf);
  return o;
}

/* The open on sv[0] fails with err, its report holds what (EPIPE is not reported: pass ""), in less than
 * max_ms; no descriptor is left over. */
static void expect_fail(const char *name, zc_chan_role_t role, int fds_before, int err, const char *what, int timeout_ms,
                        uint64_t max_ms) {
  opened_t o = open_timed(sv[0], role, timeout_ms);
  REQUIREF(o.ch == NULL, "%s: the open succeeded", name);
  REQUIREF(o.err == err, "%s: errno %d (%s), expected %d", name, o.err, strerror(o.err), err);
  REQUIREF(strstr(o.why, what) != NULL, "%s: the report \"%s\" lacks \"%s\"", name, o.why, what);
  REQUIREF(o.ms < max_ms, "%s: the open took %lu ms", name, (unsigned long)o.ms);
  close(sv[1]);
  int after = open_fds();
  REQUIREF(after == fds_before, "%s: %d descriptors open after the failed open, %d before", name, after, fds_before);
  printf("%s: %s in %lu ms: %s", name, strerror(o.err), (unsigned long)o.ms, o.why);
  if (o.why[0] && o.why[strlen(o.why) - 1] != '\n') putchar('\n');
}

/* ---- silent: a peer that never says anything ---- */
static int t_silent(int argc, char **argv) {
  (void)argc, (void)argv;
  for (int r = 0; r < 2; r++) {
    zc_chan_role_t role = r ? ZC_CHAN_PRODUCER : ZC_CHAN_CONSUMER;
    int before = open_fds();
    seqpacket_pair(sv);
    opened_t o = open_timed(sv[0], role, 300);
    REQUIREF(o.ch == NULL && o.err == ETIMEDOUT, "silent peer, role %d: open %p errno %d", role, (void *)o.ch, o.err);
    REQUIREF(o.ms >= 290 && o.ms < 30000, "silent peer, role %d: gave up after %lu ms (setup_timeout_ms 300)", role,
             (unsigned long)o.ms);
    REQUIREF(strstr(o.why, "no greeting") != NULL, "silent peer: report \"%s\"", o.why);
    close(sv[1]);
    REQUIREF(open_fds() == before, "silent peer: a descriptor is left over");
    printf("silent peer, %s: ETIMEDOUT after %lu ms\n", r ? "producer" : "consumer", (unsigned long)o.ms);
  }
  return 0;
}

/* ---- stall: a producer that greets and stops ---- */
static int t_stall(int argc, char **argv) {
  (void)argc, (void)argv;
  int before = open_fds();
  seqpacket_pair(sv);
  hello(sv[1], ZC_CHAN_PRODUCER);
  opened_t o = open_timed(sv[0], ZC_CHAN_CONSUMER, 300);
  REQUIREF(o.ch == NULL && o.err == ETIMEDOUT && o.ms >= 290 && o.ms < 30000,
           "stalled producer: open %p errno %d after %lu ms", (void *)o.ch, o.err, (unsigned long)o.ms);
  REQUIREF(strstr(o.why, "no control segment") != NULL, "stalled producer: report \"%s\"", o.why);
  close(sv[1]);
  REQUIREF(open_fds() == before, "stalled producer: a descriptor is left over");
  printf("stalled producer: ETIMEDOUT after %lu ms\n", (unsigned long)o.ms);
  return 0;
}

/* ---- gone: the peer closes at each step ---- */
static int t_gone(int argc, char **argv) {
  (void)argc, (void)argv;
  int before = open_fds();
  for (int r = 0; r < 2; r++) { /* before the greeting */
    seqpacket_pair(sv);
    close(sv[1]);
    sv[1] = open("/dev/null", O_RDONLY | O_CLOEXEC); /* expect_fail closes sv[1] */
    expect_fail(r ? "producer, peer gone before greeting" : "consumer, peer gone before greeting",
                r ? ZC_CHAN_PRODUCER : ZC_CHAN_CONSUMER, before, EPIPE, "", 60000, 30000);
  }
  /* after its greeting, before the control segment */
  seqpacket_pair(sv);
  hello(sv[1], ZC_CHAN_PRODUCER);
  shutdown(sv[1], SHUT_WR);
  expect_fail("consumer, producer gone after greeting", ZC_CHAN_CONSUMER, before, EPIPE, "", 60000, 30000);

  /* after the control segment: the open succeeds (nothing more is needed); receive sees the end at once */
  seqpacket_pair(sv);
  hello(sv[1], ZC_CHAN_PRODUCER);
  size_t csize;
  int cfd = good_ctl(&csize);
  peer_send(sv[1], WIRE_CTL, ZC_CHAN_PRODUCER, 64, 128, csize, &cfd, 1, sizeof(chan_wire_t));
  close(cfd);
  shutdown(sv[1], SHUT_WR); /* it sends nothing more (closing it outright would make our greeting fail) */
  opened_t o = open_timed(sv[0], ZC_CHAN_CONSUMER, 5000);
  REQUIREF(o.ch != NULL, "consumer, producer gone after its control segment: open failed, errno %d: %s", o.err, o.why);
  zc_chan_msg_t m;
  uint64_t t0 = now_ns();
  int rc = zc_chan_receive(o.ch, &m, 60000); /* EPIPE at once; waiting for the timeout fails the bound */
  int err = errno;
  uint64_t ms = (now_ns() - t0) / 1000000u;
  REQUIREF(rc == -1 && err == EPIPE && ms < 30000, "receive after the producer left: rc %d errno %d after %lu ms", rc,
           err, (unsigned long)ms);
  zc_chan_close(o.ch);
  close(sv[1]);
  REQUIREF(open_fds() == before, "a descriptor is left over after the consumer closed");
  printf("consumer, producer gone after its control segment: receive EPIPE in %lu ms\n", (unsigned long)ms);

  /* a consumer that greets and leaves: the producer's open may succeed, its next calls end with EPIPE */
  seqpacket_pair(sv);
  hello(sv[1], ZC_CHAN_CONSUMER);
  close(sv[1]);
  o = open_timed(sv[0], ZC_CHAN_PRODUCER, 5000);
  if (o.ch != NULL) {
    t0 = now_ns();
    void *p = NULL;
    for (int i = 0; i < 100000; i++) {
      p = zc_chan_loan(o.ch, 100);
      if (p == NULL || zc_chan_send(o.ch, p, 100, 0) != 0) break;
      p = NULL;
    }
    err = errno;
    ms = (now_ns() - t0) / 1000000u;
    REQUIREF(err == EPIPE && ms < 30000, "producer after the consumer left: errno %d after %lu ms", err,
             (unsigned long)ms);
    if (p) zc_chan_cancel(o.ch, p);
    zc_chan_close(o.ch);
  } else {
    REQUIREF(o.err == EPIPE, "producer, consumer gone after greeting: errno %d", o.err);
  }
  REQUIREF(open_fds() == before, "a descriptor is left over after the producer closed");
  printf("producer, consumer gone after greeting: EPIPE\n");
  return 0;
}

/* ---- fds: descriptors the peer should not send ---- */
static int t_fds(int argc, char **argv) {
  (void)argc, (void)argv;
  int before = open_fds();
  int extra[12];
  for (int i = 0; i < 12; i++) REQUIREF((extra[i] = memfd_create("extra", MFD_CLOEXEC)) >= 0, "memfd");
  int base = open_fds();

  /* three descriptors with a greeting, then a departure (either role) */
  for (int r = 0; r < 2; r++) {
    seqpacket_pair(sv);
    peer_send(sv[1], WIRE_HELLO, r ? ZC_CHAN_CONSUMER : ZC_CHAN_PRODUCER, CHAN_VERSION, 0, 0, extra, 3,
              sizeof(chan_wire_t));
    close(sv[1]);
    sv[1] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    opened_t o = open_timed(sv[0], r ? ZC_CHAN_PRODUCER : ZC_CHAN_CONSUMER, 2000);
    REQUIREF(o.ch != NULL || o.err == EPIPE, "greeting with 3 fds: errno %d", o.err);
    if (o.ch) zc_chan_close(o.ch);
    close(sv[1]);
    REQUIREF(open_fds() == base, "greeting with 3 fds, role %d: %d descriptors open, %d before", r, open_fds(), base);
  }

  size_t csize;
  int cfd = good_ctl(&csize);
  /* the control segment with a second descriptor: the extra one is closed; the channel still opens */
  seqpacket_pair(sv);
  hello(sv[1], ZC_CHAN_PRODUCER);
  int two[2] = {cfd, extra[0]};
  peer_send(sv[1], WIRE_CTL, ZC_CHAN_PRODUCER, 64, 128, csize, two, 2, sizeof(chan_wire_t));
  opened_t o = open_timed(sv[0], ZC_CHAN_CONSUMER, 2000);
  REQUIREF(o.ch != NULL, "control segment with an extra fd: errno %d: %s", o.err, o.why);
  zc_chan_close(o.ch);
  close(sv[1]);
  REQUIREF(open_fds() == base + 1, "control segment with an extra fd: %d descriptors open, %d before", open_fds(),
           base + 1);

  /* twelve descriptors: more than a record can carry; the kernel drops what does not fit */
  seqpacket_pair(sv);
  hello(sv[1], ZC_CHAN_PRODUCER);
  int many[12] = {cfd};
  for (int i = 1; i < 12; i++) many[i] = extra[i];
  peer_send(sv[1], WIRE_CTL, ZC_CHAN_PRODUCER, 64, 128, csize, many, 12, sizeof(chan_wire_t));
  expect_fail("control segment with 12 fds", ZC_CHAN_CONSUMER, base + 1, EPROTO, "more than 8 descriptors", 60000, 30000);

  /* a control segment that is no memory file */
  int pfd[2];
  REQUIRE(pipe2(pfd, O_CLOEXEC) == 0);
  int zero = open("/dev/zero", O_RDWR | O_CLOEXEC), dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  char tmpl[] = "/tmp/zc-handshake-XXXXXX";
  int file = mkstemp(tmpl);
  REQUIREF(zero >= 0 && dir >= 0 && file >= 0 && ftruncate(file, (off_t)csize) == 0, "test files: %s", strerror(errno));
  unlink(tmpl);
  const int bad[] = {pfd[0], zero, dir, file};
  const char *const bad_name[] = {"a pipe", "/dev/zero", "a directory", "a plain file"};
  int now = open_fds();
  for (int i = 0; i < 4; i++) {
    seqpacket_pair(sv);
    hello(sv[1], ZC_CHAN_PRODUCER);
    peer_send(sv[1], WIRE_CTL, ZC_CHAN_PRODUCER, 64, 128, csize, &bad[i], 1, sizeof(chan_wire_t));
    char name[64];
    snprintf(name, sizeof name, "control segment is %s", bad_name[i]);
    expect_fail(name, ZC_CHAN_CONSUMER, now, EPROTO, "not a sealed memory file", 60000, 30000);
  }
  for (int i = 0; i < 4; i++) close(bad[i]);
  close(pfd[1]);
  close(cfd);
  for (int i = 0; i < 12; i++) close(extra[i]);
  REQUIREF(open_fds() == before, "descriptors left over at the end");
  return 0;
}

/* ---- records: the wrong length in place of the control segment ---- */
static int t_records(int argc, char **argv) {
  (void)argc, (void)argv;
  int before = open_fds();
  size_t csize;
  int cfd = good_ctl(&csize);
  int base = open_fds();
  static const struct {
    size_t len;
    int err;
    const char *what;
  } cases[] = {{sizeof(chan_wire_t) - 4, EPROTO, "bad control-segment record"},
               {sizeof(chan_wire_t) + 8, EPROTO, "longer than a protocol record"},
               {0, EPIPE, ""}}; /* an empty record reads as the end of the stream */
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    seqpacket_pair(sv);
    hello(sv[1], ZC_CHAN_PRODUCER);
    peer_send(sv[1], WIRE_CTL, ZC_CHAN_PRODUCER, 64, 128, csize, &cfd, 1, cases[i].len);
    char name[64];
    snprintf(name, sizeof name, "control record of %zu bytes", cases[i].len);
    expect_fail(name, ZC_CHAN_CONSUMER, base, cases[i].err, cases[i].what, 60000, 30000);
  }
  close(cfd);
  REQUIREF(open_fds() == before, "descriptors left over at the end");
  return 0;
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"silent", t_silent}, {"stall", t_stall},     {"gone", t_gone},
                                    {"fds", t_fds},       {"records", t_records}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
