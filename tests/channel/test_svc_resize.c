/* Channel services, resizing a loan (zc_svc_loan_resize), across processes (fork):
 *   resize   a client grows loans past a page and past the 64 KiB slot limit (100 B -> 1 MiB + 5, and
 *            doubling from 16 B to 4 MiB as a writer that does not know its size would), shrinks them
 *            (4 MiB -> 1000 B; a 2 MiB run trimmed in place to 600 KiB), resizes keeping fewer bytes than
 *            it wrote, and sends each as a request: the server checks every byte. The server answers
 *            with reply loans it grows (10 B -> 300 KiB) and shrinks (to 200 KiB + 3) before zc_svc_reply;
 *            the stale pointer of a moved reply loan is refused by zc_svc_reply (EINVAL) and the request
 *            stays answerable; the client checks every byte of the reply. Bad pointers and sizes give
 *            EINVAL / EMSGSIZE and leave the loan loaned and intact (it is then sent and checked): NULL,
 *            a stack buffer, a loan + 16, a loan + 1, the old pointer of a moved loan, a sent loan, a
 *            cancelled loan, another endpoint's loan, n = 0, keep beyond the loan, n above the limit.
 *            Last, the server leaves: a loan of the dead connection cannot be resized (EPIPE) and is
 *            cancelled. Both sides check zc_svc_msg_peer: the other's pid and uid.
 *   resize_memory
 *            with an 8 MiB cap (7 MiB may be loaned at once) and ZC_CHAN_FAIL: a 6 MiB loan shrunk to
 *            100 B gives its pages back at once, so a second 6 MiB loan is granted while the first is
 *            still unsent; both arrive intact. Without the shrink the second fails with EAGAIN.
 * Usage: test_svc_resize <name>. */
#include "svc_test.h"

#define KIB(x) ((size_t)(x) << 10)
#define T_CHECK 1u  /* reply {len, first bad offset or -1} of the request */
#define T_REPLY 2u  /* request {final length, seed}: reply of that many bytes, built through resizes */
#define T_QUIT 3u   /* reply {errors}, then the server closes */

static int srv_errors;
static pid_t server_pid;
#define SRV_CHECK(e)                                                      \
  do {                                                                    \
    if (!(e)) {                                                           \
      fprintf(stderr, "server: %s:%d: %s\n", __FILE__, __LINE__, #e);     \
      srv_errors++;                                                       \
    }                                                                     \
  } while (0)

/* Byte i of a message of seed s: the seed's 8 bytes first, then a function of (s, i). Position-dependent,
 * so a writer can fill any range at any time, and a byte kept in the wrong place shows. */
static uint8_t pat(uint64_t s, size_t i) {
  if (i < 8) return (uint8_t)(s >> (8 * i));
  uint64_t x = (s + i) * 0x9E3779B97F4A7C15ull;
  return (uint8_t)(x >> 56);
}
static void put(void *p, size_t from, size_t to, uint64_t seed) {
  for (size_t i = from; i < to; i++) ((uint8_t *)p)[i] = pat(seed, i);
}
/* The first offset that is wrong, or -1 (len >= 8: the seed is read from the message). */
static long bad_at(const void *p, size_t len) {
  uint64_t s;
  if (len < 8) return 0;
  memcpy(&s, p, 8);
  for (size_t i = 8; i < len; i++)
    if (((const uint8_t *)p)[i] != pat(s, i)) return (long)i;
  return -1;
}

static zc_svc_config_t config(int limited) {
  zc_svc_config_t c;
  memset(&c, 0, sizeof c);
  c.chan.block_timeout_ms = 30000;
  c.connect_timeout_ms = 10000;
  if (limited) {
    c.chan.max_bytes = MIB(8);
    c.chan.first_segment = MIB(1); /* 7 MiB may still be added: the largest loan */
    c.chan.policy = ZC_CHAN_FAIL;
  }
  return c;
}

/* ---- the server ---- */
static void reply_resized(zc_svc_t *s, zc_svc_msg_t *m) {
  uint64_t want[2] = {0, 0};
  SRV_CHECK(m->len == sizeof want);
  if (m->len == sizeof want) memcpy(want, m->data, sizeof want);
  size_t n = (size_t)want[0];
  uint64_t seed = want[1];
  SRV_CHECK(n >= 16 && n <= KIB(300));
  if (n < 16 || n > KIB(300)) n = 16;
  char *r = zc_svc_loan_reply(s, m, 10);
  SRV_CHECK(r != NULL);
  if (r == NULL) return (void)zc_svc_release(s, m);
  put(r, 0, 10, seed);
  errno = 0;
  SRV_CHECK(zc_svc_loan_resize(s, r, 0, 0) == NULL && errno == EINVAL); /* the loan is still there */
  char *g = zc_svc_loan_resize(s, r, KIB(300), 10);                   /* past 64 KiB: a page run */
  SRV_CHECK(g != NULL && ((uintptr_t)g & 15) == 0);
  if (g == NULL) return (void)(zc_svc_cancel(s, r), zc_svc_release(s, m));
  if (g != r) { /* moved: the old pointer is no loan; the request is still to be answered */
    errno = 0;
    SRV_CHECK(zc_svc_reply(s, m, r, 10, 0) == -1 && errno == EINVAL);
    SRV_CHECK(m->kind == ZC_SVC_REQUEST);
  }
  put(g, 10, KIB(300), seed);
  char *f = zc_svc_loan_resize(s, g, n, n); /* shrunk to the answer's size */
  SRV_CHECK(f != NULL);
  if (f == NULL) f = g;
  SRV_CHECK(zc_svc_reply(s, m, f, n, T_REPLY) == 0);
}

static int server(void *arg) {
  const char *name = arg;
  /* spawn()'s 60 s alarm is too short here: megabytes checked byte by byte under TSan on a loaded machine
   * took longer (the server was killed by SIGALRM and the client saw EPIPE). The test's own ctest
   * TIMEOUT (300 s) is the bound. */
  alarm(290);
  zc_svc_config_t cfg = config(0);
  zc_svc_t *s = zc_svc_listen(name, &cfg);
  REQUIRE(s != NULL);
  for (;;) {
    zc_svc_msg_t m;
    if (zc_svc_receive(s, &m, 30000) != 0) {
      fprintf(stderr, "server: receive: %s\n", strerror(errno));
      srv_errors++;
      break;
    }
    if (m.kind != ZC_SVC_REQUEST) {
      SRV_CHECK(m.kind == ZC_SVC_ONEWAY);
      zc_svc_release(s, &m);
      continue;
    }
    zc_chan_peer_t who = {0, 0, 0};
    SRV_CHECK(zc_svc_msg_peer(s, &m, &who) == 0 && who.pid == getppid()); /* the client, by the kernel's word */
    if (m.type == T_REPLY) {
      reply_resized(s, &m);
      continue;
    }
    int64_t out[2] = {(int64_t)m.len, bad_at(m.data, m.len)};
    if (m.type == T_QUIT) out[0] = srv_errors;
    int64_t *r = zc_svc_loan_reply(s, &m, sizeof out);
    SRV_CHECK(r != NULL);
    if (r == NULL) break;
    memcpy(r, out, sizeof out);
    uint32_t type = m.type;
    SRV_CHECK(zc_svc_reply(s, &m, r, sizeof out, 0) == 0);
    if (type == T_QUIT) break;
  }
  zc_svc_close(s);
  return srv_errors ? 1 : 0;
}

/* ---- the client ---- */
/* Send loan p (len bytes, filled with seed's pattern) as a request; the server must find it intact. */
static void send_check(zc_svc_t *c, void *p, size_t len, const char *what) {
  zc_svc_msg_t m;
  REQUIREF(zc_svc_call(c, p, len, T_CHECK, &m, 30000) == 0, "%s: call: %s", what, strerror(errno));
  int64_t r[2] = {-2, -2};
  if (m.len == sizeof r) memcpy(r, m.data, sizeof r);
  CHECKF(r[0] == (int64_t)len && r[1] == -1, "%s: the server got %lld bytes of %zu, first bad at %lld", what, (long long)r[0],
         len, (long long)r[1]);
  zc_svc_release(c, &m);
}

static void grow_and_shrink(zc_svc_t *c) {
  /* grow past a page and past the 64 KiB slot limit: moved, the written bytes kept */
  char *p = zc_svc_loan(c, 100);
  REQUIRE(p != NULL);
  put(p, 0, 100, 1);
  char *q = zc_svc_loan_resize(c, p, MIB(1) + 5, 100);
  REQUIREF(q != NULL, "grow to 1 MiB + 5: %s", strerror(errno));
  CHECK(((uintptr_t)q & 15) == 0 && bad_at(q, 100) == -1);
  put(q, 100, MIB(1) + 5, 1);
  if (q != p) { /* the old pointer is refused, not mistaken for a loan */
    errno = 0;
    CHECK(zc_svc_loan_resize(c, p, 200, 100) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(zc_svc_send(c, p, 100, 0) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(zc_svc_cancel(c, p) == -1 && errno == EINVAL);
  }
  send_check(c, q, MIB(1) + 5, "100 B grown to 1 MiB + 5");

  /* a writer that does not know its size: doubling from 16 B to 4 MiB, each time keeping what it wrote */
  size_t cap = 16, used = 0;
  p = zc_svc_loan(c, cap);
  REQUIRE(p != NULL);
  while (used < MIB(4)) {
    put(p, used, cap, 2);
    used = cap;
    if (cap == MIB(4)) break;
    char *g = zc_svc_loan_resize(c, p, cap * 2, used);
    REQUIREF(g != NULL, "grow %zu -> %zu: %s", cap, cap * 2, strerror(errno));
    p = g;
    cap *= 2;
  }
  send_check(c, p, MIB(4), "16 B doubled to 4 MiB");

  /* shrink: 4 MiB of which 1000 B were written */
  p = zc_svc_loan(c, MIB(4));
  REQUIRE(p != NULL);
  put(p, 0, 1000, 3);
  q = zc_svc_loan_resize(c, p, 1000, 1000);
  REQUIREF(q != NULL, "shrink 4 MiB -> 1000: %s", strerror(errno));
  send_check(c, q, 1000, "4 MiB shrunk to 1000 B");

  /* a run shrunk above 64 KiB stays in place (its tail pages go back) */
  p = zc_svc_loan(c, MIB(2));
  REQUIRE(p != NULL);
  put(p, 0, KIB(600), 4);
  q = zc_svc_loan_resize(c, p, KIB(600), KIB(600));
  CHECKF(q == p, "a 2 MiB loan trimmed to 600 KiB moved (%p -> %p)", (void *)p, (void *)q);
  REQUIRE(q != NULL);
  send_check(c, q, KIB(600), "2 MiB trimmed to 600 KiB");

  /* keep fewer bytes than written: only those are promised; the rest is written again */
  p = zc_svc_loan(c, 1000);
  REQUIRE(p != NULL);
  put(p, 0, 1000, 5);
  q = zc_svc_loan_resize(c, p, 70000, 500);
  REQUIRE(q != NULL);
  CHECK(bad_at(q, 500) == -1);
  put(q, 500, 70000, 5);
  send_check(c, q, 70000, "1000 B grown to 70000 keeping 500");

  /* a slot grown within its size class stays (1000 -> 1010: the 1024 B class) */
  p = zc_svc_loan(c, 1000);
  REQUIRE(p != NULL);
  put(p, 0, 1000, 6);
  q = zc_svc_loan_resize(c, p, 1000 - ZC_SVC_HEADER + 8, 1000);
  CHECK(q == p);
  REQUIRE(q != NULL);
  put(q, 1000, 1000 - ZC_SVC_HEADER + 8, 6);
  send_check(c, q, 1000 - ZC_SVC_HEADER + 8, "1000 B grown within its slot");
}

/* A reply built by the server through resizes: every byte checked here. */
static void resized_reply(zc_svc_t *c, size_t n, uint64_t seed) {
  uint64_t *q = zc_svc_loan(c, 2 * sizeof(uint64_t));
  REQUIRE(q != NULL);
  q[0] = n;
  q[1] = seed;
  zc_svc_msg_t m;
  REQUIREF(zc_svc_call(c, q, 2 * sizeof(uint64_t), T_REPLY, &m, 30000) == 0, "call: %s", strerror(errno));
  CHECKF(m.kind == ZC_SVC_REPLY && m.type == T_REPLY && m.len == n && bad_at(m.data, m.len) == -1,
         "resized reply: kind %d, %u bytes of %zu, first bad at %ld", m.kind, m.len, n, m.len == n ? bad_at(m.data, n) : -1L);
  zc_chan_peer_t who = {0, 0, 0};
  CHECK(zc_svc_msg_peer(c, &m, &who) == 0 && who.pid == server_pid && who.uid == geteuid());
  zc_svc_release(c, &m);
}

/* Each bad call fails with its errno and leaves loan p (len bytes of seed 7) as it was. */
static void bad_calls(zc_svc_t *c, zc_svc_t *other) {
  size_t len = 100;
  char *p = zc_svc_loan(c, len);
  REQUIRE(p != NULL);
  put(p, 0, len, 7);
  _Alignas(16) char stack[64];
  memset(stack, 0, sizeof stack);
  struct {
    zc_svc_t *s;
    void *p;
    size_t n, keep;
    int err;
    const char *what;
  } bad[] = {
      {NULL, p, 200, 100, EINVAL, "no endpoint"},
      {c, NULL, 200, 0, EINVAL, "NULL"},
      {c, stack + 16, 200, 0, EINVAL, "a stack buffer"},
      {c, p + 16, 200, 0, EINVAL, "a loan + 16"},
      {c, p + 1, 200, 0, EINVAL, "a loan + 1"},
      {other, p, 200, 100, EINVAL, "another endpoint's loan"},
      {c, p, 0, 0, EINVAL, "n = 0"},
      {c, p, 10000, 5000, EINVAL, "keep beyond the loan"},
      {c, p, zc_svc_max_msg(c) + 1, 100, EMSGSIZE, "n above the limit"},
      {c, p, SIZE_MAX, 100, EMSGSIZE, "n = SIZE_MAX"},
      {c, p, SIZE_MAX - ZC_SVC_HEADER + 1, 100, EMSGSIZE, "n + header wraps"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    errno = 0;
    void *r = zc_svc_loan_resize(bad[i].s, bad[i].p, bad[i].n, bad[i].keep);
    CHECKF(r == NULL && errno == bad[i].err, "%s: %p, errno %d (%s), wanted %d", bad[i].what, r, errno, strerror(errno), bad[i].err);
  }
  CHECK(bad_at(p, len) == -1);
  send_check(c, p, len, "the loan after the refused resizes");

  /* a sent loan and a cancelled loan are no loans any more */
  p = zc_svc_loan(c, len);
  REQUIRE(p != NULL);
  put(p, 0, len, 8);
  send_check(c, p, len, "a loan sent");
  errno = 0;
  CHECK(zc_svc_loan_resize(c, p, 200, 100) == NULL && errno == EINVAL);
  p = zc_svc_loan(c, len);
  REQUIRE(p != NULL);
  CHECK(zc_svc_cancel(c, p) == 0);
  errno = 0;
  CHECK(zc_svc_loan_resize(c, p, 200, 100) == NULL && errno == EINVAL);
  errno = 0;
  CHECK(zc_svc_send(c, p, len, 0) == -1 && errno == EINVAL); /* and sending it is refused too */
}

static int t_resize(int argc, char **argv) {
  (void)argc;
  (void)argv;
  const char *name = svc_name("resize");
  pid_t sp = spawn(server, (void *)name);
  server_pid = sp;
  zc_svc_config_t cfg = config(0);
  zc_svc_t *c = zc_svc_connect(name, &cfg);
  REQUIREF(c != NULL, "connect: %s", strerror(errno));
  zc_svc_t *other = zc_svc_connect(name, &cfg); /* the same slot index and generation as c's connection */
  REQUIREF(other != NULL, "connect: %s", strerror(errno));
  grow_and_shrink(c);
  resized_reply(c, KIB(200) + 3, 11);
  resized_reply(c, 16, 12);
  bad_calls(c, other);
  zc_svc_close(other);

  /* the server's report, then its end: a loan of the dead connection is not resized, only cancelled */
  char *held = zc_svc_loan(c, 100);
  REQUIRE(held != NULL);
  void *p = zc_svc_loan(c, 16);
  REQUIRE(p != NULL);
  zc_svc_msg_t m;
  REQUIRE(zc_svc_call(c, p, 16, T_QUIT, &m, 30000) == 0);
  int64_t r[2] = {-1, -1};
  if (m.len == sizeof r) memcpy(r, m.data, sizeof r);
  CHECKF(r[0] == 0, "the server counted %lld errors", (long long)r[0]);
  zc_svc_release(c, &m);
  int rc;
  while ((rc = zc_svc_receive(c, &m, 30000)) == 0) zc_svc_release(c, &m);
  CHECKF(errno == EPIPE, "receive after the server left: %s", strerror(errno));
  errno = 0;
  CHECK(zc_svc_loan_resize(c, held, 200, 100) == NULL && errno == EPIPE);
  CHECK(zc_svc_cancel(c, held) == 0);
  /* nothing holds the dead connection now (the refused calls above took nothing from its count of
   * loans and views): the next receive closes it */
  errno = 0;
  CHECK(zc_svc_receive(c, &m, 0) == -1 && errno == EPIPE);
  zc_svc_stats_t st;
  zc_svc_stats(c, &st);
  CHECK_EQ(st.pending, 0);
  CHECK_EQ(st.rejected, 0);
  CHECKF(st.left == 1 && st.peers == 0, "connections closed %llu, open %llu", (unsigned long long)st.left,
         (unsigned long long)st.peers);
  zc_svc_close(c);
  CHECK_EQ(reap(sp), 0);
  CHECK_DONE("svc_resize");
}

static int t_memory(int argc, char **argv) {
  (void)argc;
  (void)argv;
  const char *name = svc_name("resize_memory");
  pid_t sp = spawn(server, (void *)name);
  zc_svc_config_t cfg = config(1);
  zc_svc_t *c = zc_svc_connect(name, &cfg);
  REQUIREF(c != NULL, "connect: %s", strerror(errno));
  CHECKF(zc_svc_max_msg(c) == MIB(7) - ZC_SVC_HEADER, "zc_svc_max_msg %zu", zc_svc_max_msg(c));
  char *a = zc_svc_loan(c, MIB(6));
  REQUIREF(a != NULL, "loan 6 MiB: %s", strerror(errno));
  put(a, 0, 100, 21);
  char *a2 = zc_svc_loan_resize(c, a, 100, 100);
  REQUIREF(a2 != NULL, "shrink 6 MiB -> 100: %s", strerror(errno));
  char *b = zc_svc_loan(c, MIB(6)); /* only if the first gave its pages back */
  CHECKF(b != NULL, "a second 6 MiB loan after the first was shrunk: %s", strerror(errno));
  if (b) {
    put(b, 0, MIB(6), 22);
    send_check(c, b, MIB(6), "the second 6 MiB loan");
  }
  CHECK(bad_at(a2, 100) == -1);
  send_check(c, a2, 100, "6 MiB shrunk to 100 B");
  void *p = zc_svc_loan(c, 16);
  REQUIRE(p != NULL);
  zc_svc_msg_t m;
  REQUIRE(zc_svc_call(c, p, 16, T_QUIT, &m, 30000) == 0);
  zc_svc_release(c, &m);
  zc_svc_close(c);
  CHECK_EQ(reap(sp), 0);
  CHECK_DONE("svc_resize_memory");
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"resize", t_resize}, {"resize_memory", t_memory}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
