/* Channel services, request/response and named endpoints, across processes (fork):
 *   rr            a client keeps up to 64 requests in flight (random sizes up to 20 KiB); the server
 *                 answers from 4 threads in scrambled order; every reply reaches the request it belongs
 *                 to (its body is derived from that request's seed), exactly once; zc_svc_call too
 *   timeout       a call times out (ETIMEDOUT); the late reply is dropped unseen; the next call works
 *   kill_server   the server answers 5 of 20 requests and is SIGKILLed: the 5 replies it published are
 *                 delivered, each other request fails once (FAILED, EPIPE), loan fails with EPIPE
 *   kill_client   two clients are SIGKILLed: the server's connection count drops, the requests it
 *                 holds stay readable, a reply loan fails with EPIPE, a wait meanwhile sleeps (does not
 *                 spin on the dead fds), the connections close once the requests are released
 *   hostile       a hand-made server answers with an unknown id, twice to one id, with an old id, with a
 *                 short message, with an unknown kind: each time the client's call fails with EPROTO
 *                 (never hangs, never hands the forged reply out) and the reason is recorded
 *   silent        connectors that say nothing, or send a garbage HELLO, do not stall the server: a client
 *                 whose setup timeout is 2 s (the server's is 5 s) connects and calls meanwhile
 *   name          the name is taken while live (EADDRINUSE), a disallowed uid is refused (EACCES), and a
 *                 client reconnects (connect_timeout_ms) after the server is killed and restarted
 * Usage: test_svc_rr <name>. */
#include "svc_test.h"

#include <signal.h>

enum { T_ECHO = 1, T_HOLD = 2, T_QUIT = 3 };

static size_t reply_size(uint64_t seed) { return (size_t)(seed % 3000) + 8; }

/* ---- a server: answers every request with body(seed ^ 0x5a5a, reply_size(seed)); a T_HOLD request is
 * answered only once its client's call has given up (*hold_over, a word shared with the client: no pace
 * assumed); serves until its last client is gone. ---- */
static volatile int *hold_over;
typedef struct {
  zc_svc_t *s;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  zc_svc_msg_t q[256];
  int n, stop, errors;
} srv_t;

static void answer(srv_t *v, zc_svc_msg_t *req) {
  uint64_t seed = 0;
  if (req->len >= 8) memcpy(&seed, req->data, 8);
  if (!body_ok(req->data, req->len, seed)) {
    v->errors++;
    fprintf(stderr, "server: request %u bytes does not match its seed\n", req->len);
  }
  size_t n = reply_size(seed);
  void *r = zc_svc_loan_reply(v->s, req, n);
  if (r == NULL) {
    zc_svc_release(v->s, req);
    return;
  }
  body_fill(r, n, seed ^ 0x5a5a);
  if (zc_svc_reply(v->s, req, r, n, T_ECHO) != 0 && errno != EPIPE) v->errors++;
}

static void *srv_thread(void *arg) {
  srv_t *v = arg;
  pthread_mutex_lock(&v->mu);
  for (;;) {
    while (v->n == 0 && !v->stop) pthread_cond_wait(&v->cv, &v->mu);
    if (v->n == 0) break;
    zc_svc_msg_t m = v->q[--v->n]; /* last in, first out: replies leave out of order */
    pthread_mutex_unlock(&v->mu);
    answer(v, &m);
    pthread_mutex_lock(&v->mu);
  }
  pthread_mutex_unlock(&v->mu);
  return NULL;
}

static int server(void *arg) {
  const char *name = arg;
  zc_svc_t *s = zc_svc_listen(name, NULL);
  REQUIRE(s != NULL);
  srv_t v = {.s = s};
  pthread_mutex_init(&v.mu, NULL);
  pthread_cond_init(&v.cv, NULL);
  pthread_t th[4];
  for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, srv_thread, &v);
  zc_svc_stats_t st;
  for (;;) {
    zc_svc_msg_t m;
    if (zc_svc_receive(s, &m, 100) != 0) {
      zc_svc_stats(s, &st);
      if (st.joined > 0 && st.peers == 0) break;
      continue;
    }
    if (m.kind != ZC_SVC_REQUEST) {
      zc_svc_release(s, &m);
      continue;
    }
    if (m.type == T_HOLD) {
      if (hold_over == NULL || !WAIT_UNTIL(*hold_over, PEER_WAIT_MS)) v.errors++; /* the client never gave up */
      answer(&v, &m);
      continue;
    }
    pthread_mutex_lock(&v.mu);
    while (v.n == 256) {
      pthread_mutex_unlock(&v.mu);
      sleep_ms(1);
      pthread_mutex_lock(&v.mu);
    }
    v.q[v.n++] = m;
    pthread_cond_signal(&v.cv);
    pthread_mutex_unlock(&v.mu);
  }
  pthread_mutex_lock(&v.mu);
  v.stop = 1;
  pthread_cond_broadcast(&v.cv);
  pthread_mutex_unlock(&v.mu);
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  zc_svc_close(s);
  return v.errors ? 1 : 0;
}

static zc_svc_t *connect_to(const char *name) {
  zc_svc_config_t c = {.connect_timeout_ms = 10000};
  zc_svc_t *s = zc_svc_connect(name, &c);
  CHECKF(s != NULL, "connect %s: %s", name, strerror(errno));
  return s;
}

/* Send one request with a random body; its seed goes to seeds[slot of id]. */
static int send_req(zc_svc_t *c, rng_t *r, uint32_t type, uint64_t *id, uint64_t *seed) {
  size_t n = (size_t)rng_range(r, 8, 20000);
  *seed = rng_next(r);
  void *p = zc_svc_loan(c, n);
  if (p == NULL) return -1;
  CHECK(((uintptr_t)p & 15) == 0);
  body_fill(p, n, *seed);
  return zc_svc_request(c, p, n, type, id);
}

static int reply_ok(const zc_svc_msg_t *m, uint64_t seed) {
  return m->kind == ZC_SVC_REPLY && m->type == T_ECHO && m->len == reply_size(seed) && body_ok(m->data, m->len, seed ^ 0x5a5a);
}

static int t_rr(int argc, char **argv) {
  const char *name = svc_name("rr");
  pid_t sp = spawn(server, (void *)name);
  zc_svc_t *c = connect_to(name);
  REQUIRE(c != NULL);
  int total = quick_mode(argc, argv) ? 1000 : 4000, sent = 0, got = 0, window = 64;
  struct {
    uint64_t id, seed;
  } out[64];
  int nout = 0;
  rng_t r;
  rng_seed(&r, 42);
  while (got < total) {
    while (sent < total && nout < window) {
      REQUIRE(send_req(c, &r, T_ECHO, &out[nout].id, &out[nout].seed) == 0);
      nout++;
      sent++;
    }
    zc_svc_msg_t m;
    REQUIRE(zc_svc_receive(c, &m, PEER_WAIT_MS) == 0);
    int k = 0;
    while (k < nout && out[k].id != m.id) k++;
    CHECKF(k < nout, "a reply with id 0x%llx that is not outstanding", (unsigned long long)m.id);
    if (k < nout) {
      CHECKF(reply_ok(&m, out[k].seed), "reply to id 0x%llx carries another request's body", (unsigned long long)m.id);
      out[k] = out[--nout];
    }
    zc_svc_release(c, &m);
    got++;
  }
  /* synchronous calls */
  for (int i = 0; i < 200; i++) {
    uint64_t seed = rng_next(&r);
    size_t n = (size_t)rng_range(&r, 8, 5000);
    void *p = zc_svc_loan(c, n);
    REQUIRE(p != NULL);
    body_fill(p, n, seed);
    zc_svc_msg_t rep;
    REQUIRE(zc_svc_call(c, p, n, T_ECHO, &rep, PEER_WAIT_MS) == 0);
    CHECK(reply_ok(&rep, seed));
    zc_svc_release(c, &rep);
  }
  zc_svc_stats_t st;
  zc_svc_stats(c, &st);
  CHECK_EQ(st.pending, 0);
  CHECK_EQ(st.requests, (uint64_t)total + 200);
  CHECK_EQ(st.rejected, 0);
  zc_svc_close(c);
  CHECK_EQ(reap(sp), 0);
  CHECK_DONE("svc_rr");
}

static int t_timeout(int argc, char **argv) {
  const char *name = svc_name("to");
  hold_over = shared_word();
  pid_t sp = spawn(server, (void *)name);
  zc_svc_t *c = connect_to(name);
  REQUIRE(c != NULL);
  void *p = zc_svc_loan(c, 64);
  body_fill(p, 64, 7);
  zc_svc_msg_t rep;
  errno = 0;
  CHECK(zc_svc_call(c, p, 64, T_HOLD, &rep, 50) == -1 && errno == ETIMEDOUT); /* held until we gave up */
  *hold_over = 1; /* the reply comes now: late */
  zc_svc_stats_t st;
  WAIT_UNTIL((zc_svc_receive(c, &rep, 10) == 0 ? zc_svc_release(c, &rep) : 0, zc_svc_stats(c, &st), st.dropped == 1), PEER_WAIT_MS);
  CHECK_EQ(st.dropped, 1);
  CHECK_EQ(st.pending, 0);
  CHECK_EQ(st.received, 0); /* the late reply never came out */
  p = zc_svc_loan(c, 64);
  body_fill(p, 64, 8);
  CHECK(zc_svc_call(c, p, 64, T_ECHO, &rep, PEER_WAIT_MS) == 0 && reply_ok(&rep, 8));
  zc_svc_release(c, &rep);
  zc_svc_close(c);
  CHECK_EQ(reap(sp), 0);
  CHECK_DONE("svc_timeout");
}

/* A server that answers the first 5 requests, raises *answered, and holds the rest until killed. */
static volatile int *answered;

static int five_server(void *arg) {
  zc_svc_t *s = zc_svc_listen((const char *)arg, NULL);
  REQUIRE(s != NULL);
  srv_t v = {.s = s};
  for (int n = 0;;) { /* killed by the test */
    zc_svc_msg_t m;
    if (zc_svc_receive(s, &m, 100) != 0 || m.kind != ZC_SVC_REQUEST) continue;
    if (n++ < 5) answer(&v, &m);
    if (n == 5) *answered = 1;
  }
  return 0;
}

static int t_kill_server(int argc, char **argv) {
  const char *name = svc_name("ks");
  answered = shared_word();
  pid_t sp = spawn(five_server, (void *)name);
  zc_svc_t *c = connect_to(name);
  REQUIRE(c != NULL);
  uint64_t ids[20], seed;
  rng_t r;
  rng_seed(&r, 3);
  uint64_t seeds[20];
  for (int i = 0; i < 20; i++) REQUIRE(send_req(c, &r, T_ECHO, &ids[i], &seeds[i]) == 0);
  (void)seed;
  REQUIRE(WAIT_UNTIL(*answered, 30000)); /* 5 replies published, not yet received */
  kill(sp, SIGKILL);
  reap(sp);
  int seen[20] = {0}, failed = 0, replies = 0;
  zc_svc_msg_t m;
  while (zc_svc_receive(c, &m, PEER_WAIT_MS) == 0) { /* ends at EPIPE */
    if (m.kind == ZC_SVC_REPLY) { /* published before the death: delivered, and first */
      int k = 0;
      while (k < 20 && ids[k] != m.id) k++;
      CHECK(k < 20 && !seen[k] && failed == 0 && reply_ok(&m, seeds[k]));
      if (k < 20) seen[k]++;
      replies++;
      zc_svc_release(c, &m);
      continue;
    }
    CHECKF(m.kind == ZC_SVC_FAILED && m.error == EPIPE && m.data == NULL, "kind %d error %d", m.kind, m.error);
    int k = 0;
    while (k < 20 && ids[k] != m.id) k++;
    CHECKF(k < 20 && !seen[k], "FAILED for id 0x%llx: unknown or twice", (unsigned long long)m.id);
    if (k < 20) seen[k]++;
    failed++;
    zc_svc_release(c, &m);
  }
  CHECK(errno == EPIPE);
  CHECK_EQ(replies, 5);
  CHECK_EQ(failed, 15);
  errno = 0;
  CHECK(zc_svc_loan(c, 10) == NULL && errno == EPIPE);
  zc_svc_stats_t st;
  zc_svc_stats(c, &st);
  CHECK_EQ(st.pending, 0);
  CHECK_EQ(st.failed, 15);
  CHECK_EQ(st.peers, 0);
  zc_svc_close(c);
  CHECK_DONE("svc_kill_server");
}

/* The client sends 3 requests and waits to be killed. */
static int doomed_client(void *arg) {
  zc_svc_t *c = connect_to((const char *)arg);
  REQUIRE(c != NULL);
  rng_t r;
  rng_seed(&r, 5);
  uint64_t id, seed;
  for (int i = 0; i < 3; i++) send_req(c, &r, T_ECHO, &id, &seed);
  for (;;) sleep_ms(100);
  return 0;
}

static int t_kill_client(int argc, char **argv) {
  const char *name = svc_name("kc");
  zc_svc_t *s = zc_svc_listen(name, NULL);
  REQUIRE(s != NULL);
  pid_t a = spawn(doomed_client, (void *)name), b = spawn(doomed_client, (void *)name);
  zc_svc_msg_t req[6];
  for (int i = 0; i < 6; i++) REQUIRE(zc_svc_receive(s, &req[i], PEER_WAIT_MS) == 0 && req[i].kind == ZC_SVC_REQUEST);
  CHECK_EQ(zc_svc_peers(s), 2);
  uint32_t dead_peer = req[0].peer;
  kill(a, SIGKILL);
  kill(b, SIGKILL);
  reap(a);
  reap(b);
  zc_svc_msg_t m;
  /* receives notice both deaths (nothing to take: each times out); until they have, however long that takes
   * (one 300 ms receive bet that it would look at least once before its deadline) */
  int timed_out = 1;
  CHECKF(WAIT_UNTIL((timed_out &= zc_svc_receive(s, &m, 50) == -1 && errno == ETIMEDOUT, zc_svc_peers(s) == 0), PEER_WAIT_MS),
         "receives for %d s did not notice the deaths: %d connections", PEER_WAIT_MS / 1000, zc_svc_peers(s));
  CHECK(timed_out);
  zc_svc_stats_t st0, st;
  zc_svc_stats(s, &st0);
  CHECK(zc_svc_receive(s, &m, 300) == -1 && errno == ETIMEDOUT); /* sleeps: the dead fds are not watched */
  zc_svc_stats(s, &st);
  CHECKF(st.checks - st0.checks < 100, "%llu epoll looks in 300 ms: spinning on the dead connections' fds",
         (unsigned long long)(st.checks - st0.checks));
  for (int i = 0; i < 6; i++) { /* the held requests are still readable */
    uint64_t seed;
    memcpy(&seed, req[i].data, 8);
    CHECK(body_ok(req[i].data, req[i].len, seed));
  }
  void *p = zc_svc_loan_reply(s, &req[0], 10);
  CHECK(p == NULL && errno == EPIPE);
  CHECK(req[0].peer == dead_peer);
  for (int i = 0; i < 6; i++) CHECK(zc_svc_release(s, &req[i]) == 0);
  CHECK(zc_svc_release(s, &req[0]) == -1 && errno == EINVAL); /* twice */
  CHECK(zc_svc_receive(s, &m, 0) == -1 && errno == EAGAIN); /* reaps both */
  zc_svc_stats(s, &st);
  CHECK_EQ(st.left, 2);
  zc_svc_close(s);
  CHECK_DONE("svc_kill_client");
}

/* ---- hostile server ---- */
static const char *hostile_name; /* set by the parent before it forks */

static int hostile_server(void *arg) {
  int kind = (int)(intptr_t)arg;
  raw_peer_t rp;
  REQUIRE(raw_listen(hostile_name, &rp) == 0);
  int k;
  svc_hdr_t h;
  REQUIRE(raw_recv(&rp, &k, &h, PEER_WAIT_MS) == 0 && k == ZC_SVC_REQUEST);
  uint64_t first = h.id;
  switch (kind) {
  case 1: raw_send(&rp, ZC_SVC_REPLY, first ^ 0x1234567800000000ull, T_ECHO, 64); break; /* unknown id */
  case 2: /* the same id twice */
    raw_send(&rp, ZC_SVC_REPLY, first, T_ECHO, 64);
    raw_recv(&rp, &k, &h, PEER_WAIT_MS);
    raw_send(&rp, ZC_SVC_REPLY, first, T_ECHO, 64);
    break;
  case 3: /* the first id answered, then given as the second request's reply (old generation) */
    raw_send(&rp, ZC_SVC_REPLY, first, T_ECHO, 64);
    raw_recv(&rp, &k, &h, PEER_WAIT_MS);
    CHECK((uint32_t)h.id == (uint32_t)first && h.id != first); /* the entry is reused with a new generation */
    raw_send(&rp, ZC_SVC_REPLY, first, T_ECHO, 64);
    break;
  case 4: raw_send(&rp, ZC_SVC_REPLY, first, T_ECHO, 10); break;                         /* shorter than a header */
  case 5: raw_send(&rp, 77, first, T_ECHO, 64); break;                                   /* unknown kind */
  case 6: raw_send(&rp, ZC_SVC_REQUEST, first, T_ECHO, 64); break; /* a request instead: not the reply */
  }
  for (;;) sleep_ms(100); /* connected until the parent kills it, however slowly the parent runs (spawn's
                           * alarm ends us if it never does): the client must fail on the bad message, never
                           * on the end of file */
  return 0;
}

static int t_hostile(int argc, char **argv) {
  static const char *why[] = {"", "unknown id", "duplicate", "old id", "short", "unknown kind", "request"};
  hostile_name = svc_name("hostile");
  for (int kind = 1; kind <= 6; kind++) {
    pid_t sp = spawn(hostile_server, (void *)(intptr_t)kind);
    zc_svc_t *c = connect_to(hostile_name);
    REQUIRE(c != NULL);
    zc_svc_msg_t rep;
    void *p = zc_svc_loan(c, 64);
    body_fill(p, 64, 1);
    /* A bad reply fails the call at once (EPROTO): its timeout is a minute, so a call that waited for it
     * instead fails the time check below by far whatever the load (a 2 s timeout failed that check on a
     * loaded machine without anything being wrong). Kind 6 is the call that must time out. */
    int tmo = kind == 6 ? 2000 : 60000;
    uint64_t t0 = now_ms();
    int r = zc_svc_call(c, p, 64, T_ECHO, &rep, tmo);
    if (kind == 2 || kind == 3) { /* the first call is honest */
      CHECKF(r == 0 && rep.kind == ZC_SVC_REPLY, "%s: first call %d errno %d", why[kind], r, errno);
      if (r == 0) zc_svc_release(c, &rep);
      p = zc_svc_loan(c, 64);
      t0 = now_ms();
      r = zc_svc_call(c, p, 64, T_ECHO, &rep, tmo);
    }
    if (kind == 6) { /* a request is no reply: the call times out, the request waits for receive */
      CHECKF(r == -1 && errno == ETIMEDOUT, "%s: call %d errno %d", why[kind], r, errno);
      CHECK(zc_svc_receive(c, &rep, 0) == 0 && rep.kind == ZC_SVC_REQUEST);
      zc_svc_release(c, &rep);
    } else {
      CHECKF(r == -1 && errno == EPROTO, "%s: call returned %d errno %d (expected EPROTO)", why[kind], r, errno);
      CHECKF(now_ms() - t0 < 30000, "%s: the call waited for its timeout", why[kind]);
      static const char *reason[] = {"", "no outstanding request", "no outstanding request", "no outstanding request",
                                     "shorter than the service header", "unknown message kind"};
      CHECKF(strstr(zc_svc_error(c), "connection 0") != NULL && strstr(zc_svc_error(c), reason[kind]) != NULL,
             "%s: reason '%s'", why[kind], zc_svc_error(c));
      zc_svc_stats_t st;
      zc_svc_stats(c, &st);
      CHECK_EQ(st.rejected, 1);
      CHECK_EQ(st.pending, 0);
      CHECK(zc_svc_receive(c, &rep, 0) == -1 && errno == EPROTO); /* nothing was handed out */
    }
    zc_svc_close(c);
    kill(sp, SIGKILL);
    reap(sp);
  }
  CHECK_DONE("svc_hostile");
}

/* ---- names ---- */
static int t_name(int argc, char **argv) {
  const char *name = svc_name("named");
  pid_t sp = spawn(server, (void *)name);
  zc_svc_t *c = connect_to(name);
  REQUIRE(c != NULL);
  CHECK(zc_svc_listen(name, NULL) == NULL && errno == EADDRINUSE);
  /* the name is in the abstract namespace: no file, visible in /proc/net/unix as @zcmem.<uid>.<name> */
  char want[128], line[512];
  snprintf(want, sizeof want, "@zcmem.%u.%s", (unsigned)geteuid(), name);
  FILE *f = fopen("/proc/net/unix", "r");
  int found = 0;
  while (f && fgets(line, sizeof line, f))
    if (strstr(line, want)) found = 1;
  if (f) fclose(f);
  CHECKF(found, "%s not in /proc/net/unix", want);
  /* a client that allows only another uid refuses our server */
  uint32_t other = geteuid() + 1;
  zc_svc_config_t only = {.chan = {.peer_uids = &other, .n_peer_uids = 1}};
  CHECK(zc_svc_connect(name, &only) == NULL && errno == EACCES);
  zc_svc_msg_t rep;
  void *p = zc_svc_loan(c, 100);
  body_fill(p, 100, 11);
  CHECK(zc_svc_call(c, p, 100, T_ECHO, &rep, PEER_WAIT_MS) == 0 && reply_ok(&rep, 11));
  zc_svc_release(c, &rep);
  /* restart: kill the server, see EPIPE, start a new one on the same name, reconnect */
  kill(sp, SIGKILL);
  reap(sp);
  CHECK(zc_svc_receive(c, &rep, PEER_WAIT_MS) == -1 && errno == EPIPE);
  zc_svc_close(c);
  sp = spawn(server, (void *)name);
  c = connect_to(name); /* retries while the new server starts */
  REQUIRE(c != NULL);
  p = zc_svc_loan(c, 100);
  body_fill(p, 100, 12);
  CHECK(zc_svc_call(c, p, 100, T_ECHO, &rep, PEER_WAIT_MS) == 0 && reply_ok(&rep, 12));
  zc_svc_release(c, &rep);
  zc_svc_close(c);
  CHECK_EQ(reap(sp), 0);
  /* nobody listening and no retry: ECONNREFUSED at once */
  CHECK(zc_svc_connect(svc_name("nobody"), NULL) == NULL && errno == ECONNREFUSED);
  CHECK_DONE("svc_name");
}

static int t_silent(int argc, char **argv) {
  const char *name = svc_name("silent");
  pid_t sp = spawn(server, (void *)name);
  struct sockaddr_un a;
  socklen_t len = svc_addr(name, &a);
  int quiet[3];
  for (int i = 0; i < 3; i++) {
    quiet[i] = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    REQUIRE(WAIT_UNTIL(connect(quiet[i], (struct sockaddr *)&a, len) == 0, 30000));
  }
  CHECK(send(quiet[2], "bad", 3, 0) == 3); /* a garbage HELLO: refused at once */
  zc_svc_config_t cfg = {.connect_timeout_ms = 10000, .chan = {.setup_timeout_ms = 2000}};
  zc_svc_t *c = zc_svc_connect(name, &cfg);
  CHECKF(c != NULL, "connect while silent connectors wait: %s", strerror(errno));
  for (int i = 0; c && i < 50; i++) {
    void *p = zc_svc_loan(c, 64);
    body_fill(p, 64, (uint64_t)i + 100);
    zc_svc_msg_t rep;
    CHECK(zc_svc_call(c, p, 64, T_ECHO, &rep, 2000) == 0 && reply_ok(&rep, (uint64_t)i + 100));
    zc_svc_release(c, &rep);
  }
  char b;
  struct pollfd pf = {quiet[2], POLLIN, 0};
  CHECK(poll(&pf, 1, PEER_WAIT_MS) == 1 && recv(quiet[2], &b, 1, MSG_DONTWAIT) == 0); /* the server closed the garbage one */
  zc_svc_close(c);
  for (int i = 0; i < 3; i++) close(quiet[i]);
  CHECK_EQ(reap(sp), 0);
  CHECK_DONE("svc_silent");
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"rr", t_rr},           {"timeout", t_timeout},         {"kill_server", t_kill_server},
                                    {"kill_client", t_kill_client}, {"hostile", t_hostile}, {"name", t_name}, {"silent", t_silent},
                                    {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
