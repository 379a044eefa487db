/* Channel services, messages of any size, across processes (fork):
 *   big     a client and a server (another process) exchange requests and replies of random sizes from
 *           1 B to 8 MiB (log-uniform, plus the edges around the 16-byte header, the 64 KiB slot limit
 *           and 512 KiB), and large one-way messages; every byte is checked on both sides; a message
 *           above 64 KiB is a view into a page run (no copy); zc_svc_max_msg is ZC_SVC_MAX_MSG with no
 *           connection and then the producer channel's limit minus the header (above 8 MiB, below
 *           max_bytes); a loan or reply loan above it, or of SIZE_MAX, fails with EMSGSIZE (the request
 *           stays answerable); one at the limit succeeds; a send longer than its loan fails with EMSGSIZE
 *   limit   with max_bytes = 8 MiB the limit follows the channel: a 6 MiB message goes, a loan above
 *           zc_svc_max_msg fails with EMSGSIZE and the connection keeps working
 *   space   a client (ZC_CHAN_FAIL) fills its connection to a server that takes nothing (EAGAIN);
 *           zc_svc_arm_space arms it (0) and zc_svc_fd is not readable; once the server receives, the
 *           fd becomes readable, the send succeeds, and zc_svc_receive(.., 0) reads the wake-up so the
 *           fd is quiet again; every message reaches the server intact
 * Usage: test_svc_size <name>. */
#include "svc_test.h"

#define BIG MIB(8)
#define T_STATS 0u          /* reply: {one-way messages checked, errors} */
#define T_LIMIT 0xffffffffu /* reply: the server's zc_svc_max_msg, after its EMSGSIZE checks */
#define T_ONEWAY 7u

static int srv_errors, srv_oneway;
static volatile int *go; /* space: [0] set by the client when the server may receive, [1] by the server once joined */
#define SRV_CHECK(e)                                                      \
  do {                                                                    \
    if (!(e)) {                                                           \
      fprintf(stderr, "server: %s:%d: %s\n", __FILE__, __LINE__, #e);     \
      srv_errors++;                                                       \
    }                                                                     \
  } while (0)

static size_t max_bytes_of(const char *name) { return strstr(name, "limit") ? MIB(8) : MIB(128); }

static zc_svc_config_t config(const char *name) {
  zc_svc_config_t c;
  memset(&c, 0, sizeof c);
  c.chan.max_bytes = max_bytes_of(name);
  if (strstr(name, "limit")) c.chan.first_segment = MIB(1); /* 7 MiB may still be added */
  c.chan.block_timeout_ms = 30000; /* waits for memory are for the peer to release, never for long */
  c.connect_timeout_ms = 10000;
  return c;
}

/* A view of more than 64 KiB is a run of whole pages in the shared mapping: the header at the run's start,
 * which is page aligned (4 KiB at least) in the receiver's mapping too. */
static int in_place(const void *data, size_t len) { return len + ZC_SVC_HEADER <= ZC_CHAN_MAX_MSG || ((uintptr_t)data & 4095) == ZC_SVC_HEADER; }

static int server(void *arg) {
  const char *name = arg;
  /* spawn()'s 60 s alarm is too short here: megabytes checked byte by byte under TSan on a loaded machine
   * took longer (the server was killed by SIGALRM and the client saw EPIPE). The test's own ctest
   * TIMEOUT (300 s) is the bound. */
  alarm(290);
  zc_svc_config_t cfg = config(name);
  zc_svc_t *s = zc_svc_listen(name, &cfg);
  REQUIRE(s != NULL);
  SRV_CHECK(zc_svc_max_msg(s) == ZC_SVC_MAX_MSG); /* no connection yet */
  if (go != NULL) { /* space: accept the client, then take nothing until the client says go */
    for (int k = 0; k < 300 && zc_svc_peers(s) == 0; k++) {
      zc_svc_msg_t m;
      if (zc_svc_receive(s, &m, 100) == 0) { /* a message that came with the join: checked below */
        uint64_t seed = m.len;
        if (m.len >= 8) memcpy(&seed, m.data, 8);
        SRV_CHECK(m.kind == ZC_SVC_ONEWAY && body_ok(m.data, m.len, seed));
        srv_oneway++;
        zc_svc_release(s, &m);
      }
    }
    go[1] = 1;                      /* joined, and no receive runs any more */
    while (go[0] == 0) usleep(1000); /* until the client has filled the connection and armed */
  }
  for (;;) {
    zc_svc_msg_t m;
    if (zc_svc_receive(s, &m, 30000) != 0) {
      fprintf(stderr, "server: receive: %s\n", strerror(errno));
      srv_errors++;
      break;
    }
    uint64_t seed = m.len; /* a body shorter than 8 bytes is filled with its length as the seed */
    if (m.len >= 8) memcpy(&seed, m.data, 8);
    if (m.kind == ZC_SVC_ONEWAY) {
      SRV_CHECK(m.type == T_ONEWAY && body_ok(m.data, m.len, seed) && in_place(m.data, m.len));
      srv_oneway++;
      zc_svc_release(s, &m);
      continue;
    }
    SRV_CHECK(m.kind == ZC_SVC_REQUEST);
    if (m.kind != ZC_SVC_REQUEST) {
      zc_svc_release(s, &m);
      continue;
    }
    if (m.type == T_STATS) {
      int *r = zc_svc_loan_reply(s, &m, 2 * sizeof(int));
      SRV_CHECK(r != NULL);
      if (r == NULL) break;
      r[0] = srv_oneway;
      r[1] = srv_errors;
      SRV_CHECK(zc_svc_reply(s, &m, r, 2 * sizeof(int), 0) == 0);
      for (int k = 0; k < 300 && zc_svc_peers(s) > 0; k++) { /* until the client has closed */
        zc_svc_msg_t bye;
        if (zc_svc_receive(s, &bye, 100) == 0) zc_svc_release(s, &bye);
      }
      break;
    }
    if (m.type == T_LIMIT) {
      size_t max = zc_svc_max_msg(s);
      SRV_CHECK(max >= BIG && max <= max_bytes_of(name));
      errno = 0;
      SRV_CHECK(zc_svc_loan_reply(s, &m, max + 1) == NULL && errno == EMSGSIZE);
      errno = 0;
      SRV_CHECK(zc_svc_loan_reply(s, &m, SIZE_MAX) == NULL && errno == EMSGSIZE);
      char *r = zc_svc_loan_reply(s, &m, max); /* the request is still there to answer */
      SRV_CHECK(r != NULL);
      if (r == NULL) break;
      memcpy(r, &max, sizeof max);
      SRV_CHECK(zc_svc_reply(s, &m, r, sizeof max, 1) == 0);
      continue;
    }
    SRV_CHECK(body_ok(m.data, m.len, seed));
    SRV_CHECK(in_place(m.data, m.len));
    size_t n = m.type; /* the reply's size, chosen by the client */
    char *r = zc_svc_loan_reply(s, &m, n);
    SRV_CHECK(r != NULL);
    if (r == NULL) {
      fprintf(stderr, "server: reply loan of %zu: %s\n", n, strerror(errno));
      zc_svc_release(s, &m);
      continue;
    }
    SRV_CHECK(((uintptr_t)r & 15) == 0);
    body_fill(r, n, seed ^ 0x5a5a);
    SRV_CHECK(zc_svc_reply(s, &m, r, n, 1) == 0);
  }
  zc_svc_close(s);
  return srv_errors ? 1 : 0;
}

/* A size from 1 B to BIG, log-uniform. */
static size_t any_size(rng_t *r) {
  unsigned e = (unsigned)rng_range(r, 0, 22);
  size_t n = (size_t)rng_range(r, (uint64_t)1 << e, ((uint64_t)2 << e) - 1);
  return n > BIG ? BIG : n;
}

static const size_t edges[] = {1,     7,     8,          9,          15,          16,          17,     65536 - 16 - 1,
                               65536 - 16, 65536 - 15, 65536, 65537, (512 << 10) - 16, (512 << 10) - 15, 512 << 10,
                               (512 << 10) + 1, MIB(1), MIB(4) - 16, MIB(4), BIG};
#define NEDGES (sizeof edges / sizeof edges[0])

/* One call of req bytes asking for rep bytes back; both bodies checked. */
static void round_trip(zc_svc_t *c, size_t req, size_t rep, uint64_t seed) {
  if (req < 8) seed = req; /* too short to carry its seed */
  char *p = zc_svc_loan(c, req);
  REQUIREF(p != NULL, "loan of %zu bytes: %s", req, strerror(errno));
  CHECK(((uintptr_t)p & 15) == 0);
  body_fill(p, req, seed);
  zc_svc_msg_t m;
  REQUIREF(zc_svc_call(c, p, req, (uint32_t)rep, &m, 30000) == 0, "call %zu -> %zu: %s", req, rep, strerror(errno));
  CHECKF(m.kind == ZC_SVC_REPLY && m.len == rep, "reply of %u bytes, wanted %zu", m.len, rep);
  CHECKF(m.len == rep && body_ok(m.data, m.len, seed ^ 0x5a5a), "reply of %zu bytes (request %zu) differs", rep, req);
  CHECKF(in_place(m.data, m.len), "reply of %u bytes at %p is not a view of a page run", m.len, m.data);
  zc_svc_release(c, &m);
}

static void oneway(zc_svc_t *c, size_t n, uint64_t seed) {
  if (n < 8) seed = n;
  char *p = zc_svc_loan(c, n);
  REQUIREF(p != NULL, "loan of %zu bytes: %s", n, strerror(errno));
  body_fill(p, n, seed);
  REQUIREF(zc_svc_send(c, p, n, T_ONEWAY) == 0, "one-way of %zu: %s", n, strerror(errno));
}

/* The client's EMSGSIZE checks around its limit. */
static void client_limits(zc_svc_t *c, const char *name) {
  size_t max = zc_svc_max_msg(c);
  CHECKF(max > ZC_SVC_MAX_MSG && max <= max_bytes_of(name), "zc_svc_max_msg %zu", max);
  errno = 0;
  CHECK(zc_svc_loan(c, max + 1) == NULL && errno == EMSGSIZE);
  errno = 0;
  CHECK(zc_svc_loan(c, SIZE_MAX) == NULL && errno == EMSGSIZE);
  errno = 0;
  CHECK(zc_svc_loan(c, SIZE_MAX - ZC_SVC_HEADER + 1) == NULL && errno == EMSGSIZE); /* n + header wraps */
  void *p = zc_svc_loan(c, ZC_SVC_MAX_MSG); /* the floor is always accepted */
  CHECK(p != NULL);
  if (p) CHECK(zc_svc_cancel(c, p) == 0);
  p = zc_svc_loan(c, max);
  CHECKF(p != NULL, "a loan at the limit %zu: %s", max, strerror(errno));
  if (p) CHECK(zc_svc_cancel(c, p) == 0);
  p = zc_svc_loan(c, 100);
  REQUIRE(p != NULL);
  errno = 0;
  CHECK(zc_svc_send(c, p, MIB(1), T_ONEWAY) == -1 && errno == EMSGSIZE); /* longer than its loan: given back */
  p = zc_svc_loan(c, 100);
  REQUIRE(p != NULL);
  errno = 0;
  CHECK(zc_svc_send(c, p, SIZE_MAX, T_ONEWAY) == -1 && errno == EMSGSIZE);
  CHECK(zc_svc_cancel(c, p) == -1 && errno == EINVAL); /* it was given back */
}

static void finish(zc_svc_t *c, pid_t sp, int oneway_sent) {
  int *st;
  void *p = zc_svc_loan(c, 8);
  REQUIRE(p != NULL);
  zc_svc_msg_t m;
  REQUIRE(zc_svc_call(c, p, 8, T_STATS, &m, 30000) == 0 && m.len == 2 * sizeof(int));
  st = (int *)m.data;
  CHECK_EQ(st[0], oneway_sent);
  CHECK_EQ(st[1], 0);
  zc_svc_release(c, &m);
  zc_svc_stats_t s;
  zc_svc_stats(c, &s);
  CHECK_EQ(s.pending, 0);
  CHECK_EQ(s.rejected, 0);
  zc_svc_close(c);
  CHECK_EQ(reap(sp), 0);
}

static int t_big(int argc, char **argv) {
  const char *name = svc_name("big");
  pid_t sp = spawn(server, (void *)name);
  zc_svc_config_t cfg = config(name);
  zc_svc_t *c = zc_svc_connect(name, &cfg);
  REQUIREF(c != NULL, "connect: %s", strerror(errno));
  CHECK(zc_svc_peers(c) == 1);
  rng_t r;
  rng_seed(&r, 13);
  int rounds = quick_mode(argc, argv) ? 40 : 120, ow = 0;
  for (size_t i = 0; i < NEDGES; i++) /* every edge each way, paired with a mirrored edge */
    round_trip(c, edges[i], edges[NEDGES - 1 - i], rng_next(&r));
  for (int i = 0; i < rounds; i++) {
    if (i % 4 == 3) {
      oneway(c, any_size(&r), rng_next(&r));
      ow++;
    }
    size_t a = any_size(&r), b = any_size(&r);
    round_trip(c, a, b, rng_next(&r));
  }
  client_limits(c, name);
  /* the server's limits, and a reply loan at its limit */
  void *p = zc_svc_loan(c, 8);
  REQUIRE(p != NULL);
  zc_svc_msg_t m;
  REQUIRE(zc_svc_call(c, p, 8, T_LIMIT, &m, 30000) == 0);
  size_t smax = 0;
  CHECK(m.len == sizeof smax);
  if (m.len == sizeof smax) memcpy(&smax, m.data, sizeof smax);
  CHECKF(smax >= BIG, "the server's limit %zu", smax);
  zc_svc_release(c, &m);
  round_trip(c, BIG, BIG, 99); /* still working */
  finish(c, sp, ow);
  CHECK_DONE("svc_big");
}

static int t_limit(int argc, char **argv) {
  (void)argc;
  (void)argv;
  const char *name = svc_name("limit");
  zc_svc_config_t cfg = config(name);
  pid_t sp = spawn(server, (void *)name);
  zc_svc_t *c = zc_svc_connect(name, &cfg);
  REQUIREF(c != NULL, "connect: %s", strerror(errno));
  size_t max = zc_svc_max_msg(c); /* 8 MiB cap, a 1 MiB segment: 7 MiB may still be added */
  CHECKF(max == MIB(7) - ZC_SVC_HEADER, "zc_svc_max_msg %zu", max);
  errno = 0;
  CHECK(zc_svc_loan(c, max + 1) == NULL && errno == EMSGSIZE);
  round_trip(c, MIB(6), 100, 1);
  round_trip(c, 100, MIB(6), 2); /* the server's channels have the same cap: 6 MiB fits there too */
  CHECK(zc_svc_max_msg(c) >= MIB(6) && zc_svc_max_msg(c) <= max);
  errno = 0;
  CHECK(zc_svc_loan(c, zc_svc_max_msg(c) + 1) == NULL && errno == EMSGSIZE);
  round_trip(c, 1000, 1000, 3); /* still working */
  finish(c, sp, 0);
  CHECK_DONE("svc_limit");
}

static int readable(int fd, int timeout_ms) {
  struct pollfd pf = {fd, POLLIN, 0};
  return poll(&pf, 1, timeout_ms) == 1 && (pf.revents & POLLIN);
}

static int t_space(int argc, char **argv) {
  (void)argc;
  (void)argv;
  const char *name = svc_name("space");
  go = shared_word();
  pid_t sp = spawn(server, (void *)name);
  zc_svc_config_t cfg = config(name);
  cfg.chan.policy = ZC_CHAN_FAIL;
  cfg.chan.ring_entries = 64;
  zc_svc_t *c = zc_svc_connect(name, &cfg);
  REQUIREF(c != NULL, "connect: %s", strerror(errno));
  REQUIRE(WAIT_UNTIL(go[1] == 1, PEER_WAIT_MS)); /* the server is ready (was a 20 s loop of 1 ms sleeps) */
  /* fill the connection: the server takes nothing now */
  int sent = 0, woken = 0;
  uint64_t seed = 1000;
  char *p = NULL;
  for (;;) {
    p = zc_svc_loan(c, 1000);
    REQUIREF(p != NULL, "loan: %s", strerror(errno)); /* memory is not what fills up here */
    body_fill(p, 1000, seed);
    if (zc_svc_send(c, p, 1000, T_ONEWAY) != 0) break;
    sent++;
    seed++;
    REQUIREF(sent < 100000, "the connection never fills");
  }
  CHECKF(errno == EAGAIN, "send: %s", strerror(errno));
  CHECK(sent >= 32);
  zc_svc_msg_t m;
  CHECK(zc_svc_receive(c, &m, 0) == -1 && errno == EAGAIN); /* as an event loop does: the fd is quiet */
  CHECK(zc_svc_arm_space(c) == 0);                          /* nothing moved: armed */
  CHECK(!readable(zc_svc_fd(c), 0));
  go[0] = 1;
  /* an event loop: sleep on the fd, retry, arm again on EAGAIN */
  int r = 0;
  for (int tries = 0;; tries++) {
    REQUIREF(tries < 100, "no room after %d wake-ups", tries);
    if (r == 0) {
      REQUIREF(readable(zc_svc_fd(c), 20000), "zc_svc_fd never became readable after arm_space");
      woken++;
      CHECK(zc_svc_receive(c, &m, 0) == -1 && errno == EAGAIN); /* reads the wake-up */
    }
    if (zc_svc_send(c, p, 1000, T_ONEWAY) == 0) break;
    REQUIREF(errno == EAGAIN, "send after a wake-up: %s", strerror(errno));
    r = zc_svc_arm_space(c); /* 1: room came back meanwhile, retry at once */
    REQUIRE(r >= 0);
  }
  sent++;
  /* receive(.., 0) reads wake-ups: the fd goes quiet (an event loop does not spin on it). A kick of an
   * earlier arming may still land after the send succeeded: read it too. */
  int extra = 0;
  do {
    CHECK(zc_svc_receive(c, &m, 0) == -1 && errno == EAGAIN);
  } while (readable(zc_svc_fd(c), 50) && ++extra < 3);
  CHECK(!readable(zc_svc_fd(c), 0));
  printf("space: %d messages filled the connection, %d wake-up(s), %d late\n", sent - 1, woken, extra);
  finish(c, sp, sent);
  CHECK_DONE("svc_space");
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"big", t_big}, {"limit", t_limit}, {"space", t_space}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
