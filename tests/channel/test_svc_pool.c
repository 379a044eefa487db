/* Channel services, one producer to N worker processes (work queue) and N producers to one consumer,
 * across processes (fork):
 *   queue         a dispatcher and 2 workers: a request goes to the worker with the fewest requests
 *                 awaiting a reply (one worker holds a request: the next 10 calls all go to the other);
 *                 then 3000 requests, 32 in flight: each answered exactly once, by the body it asked for
 *   queue_kill    one worker holds every request it gets and is SIGKILLed: each of its requests comes
 *                 back once as FAILED (EPIPE), the other worker's replies all arrive, nothing twice;
 *                 zc_svc_msg_peer names the sender of each reply and the dead worker of each notice;
 *                 a replacement worker joins and takes new requests
 *   queue_hostile a hand-made worker answers with garbage (a short message; another connection's
 *                 request id): its connection is closed, its requests fail with EPROTO (zc_svc_msg_peer
 *                 names the bad worker's pid), the honest worker goes on
 *   many          4 producers send one-way records to one consumer, which takes them through one call
 *                 and one fd (epoll on zc_svc_fd): every producer's records arrive complete and in order;
 *                 one producer is SIGKILLed midway and another joins late without disturbing the rest
 *   fd            an event loop on zc_svc_fd: a record sent while the consumer sleeps in epoll_wait wakes it
 *                 (receive with timeout 0 arms every connection before it returns EAGAIN), 20 times; each
 *                 record is sent once the consumer said EAGAIN and is on its way into epoll_wait (a word it
 *                 stores: no pause that the machine's pace could beat)
 * Usage: test_svc_pool <name>. */
#include "svc_test.h"

#include <signal.h>
#include <sys/epoll.h>

enum { T_WORK = 1, T_HOLD = 2, T_DONE = 3 };
enum { W_REPLY = 0, W_HOLD_ALL = 1 };

static const char *pool_name; /* set before forking */

/* A worker: answers each request with {pid, seed of the request}; T_HOLD requests (and every request in
 * W_HOLD_ALL mode) are held: answered when nothing came for 3 s (never in W_HOLD_ALL mode). */
static int worker(void *arg) {
  int mode = (int)(intptr_t)arg;
  zc_svc_config_t cfg = {.connect_timeout_ms = 10000};
  zc_svc_t *c = zc_svc_connect(pool_name, &cfg);
  REQUIRE(c != NULL);
  zc_svc_msg_t held[64];
  int nheld = 0;
  for (;;) {
    zc_svc_msg_t m;
    if (zc_svc_receive(c, &m, 3000) != 0) {
      if (errno != ETIMEDOUT) break; /* EPIPE: the dispatcher is gone */
      if (mode == W_HOLD_ALL) continue;
      while (nheld > 0) {
        zc_svc_msg_t *h = &held[--nheld];
        uint64_t *r = zc_svc_loan_reply(c, h, 16);
        REQUIRE(r != NULL);
        uint64_t seed;
        memcpy(&seed, h->data, 8);
        r[0] = (uint64_t)getpid();
        r[1] = seed;
        zc_svc_reply(c, h, r, 16, T_WORK);
      }
      continue;
    }
    if (m.kind != ZC_SVC_REQUEST || m.len < 8) {
      zc_svc_release(c, &m);
      continue;
    }
    if (mode == W_HOLD_ALL || m.type == T_HOLD) {
      REQUIRE(nheld < 64);
      held[nheld++] = m;
      continue;
    }
    uint64_t seed;
    memcpy(&seed, m.data, 8);
    CHECK(body_ok(m.data, m.len, seed));
    uint64_t *r = zc_svc_loan_reply(c, &m, 16);
    REQUIRE(r != NULL);
    r[0] = (uint64_t)getpid();
    r[1] = seed;
    if (zc_svc_reply(c, &m, r, 16, T_WORK) != 0) break;
  }
  zc_svc_close(c);
  return check_failures ? 1 : 0;
}

static int wait_peers(zc_svc_t *s, int n) {
  zc_svc_msg_t m;
  return WAIT_UNTIL((zc_svc_receive(s, &m, 0) == 0 ? zc_svc_release(s, &m) : 0, zc_svc_peers(s) == n), 30000);
}

static int send_work(zc_svc_t *s, uint64_t seed, size_t n, uint32_t type, uint64_t *id) {
  void *p = zc_svc_loan(s, n);
  if (p == NULL) return -1;
  body_fill(p, n, seed);
  return zc_svc_request(s, p, n, type, id);
}

static int t_queue(int argc, char **argv) {
  pool_name = svc_name("queue");
  zc_svc_t *s = zc_svc_listen(pool_name, NULL);
  REQUIRE(s != NULL);
  pid_t w[2] = {spawn(worker, (void *)W_REPLY), spawn(worker, (void *)W_REPLY)};
  REQUIRE(wait_peers(s, 2));
  /* least busy: one request held by one worker, then 10 calls: all to the other */
  uint64_t hold_id, id;
  REQUIRE(send_work(s, 1000, 64, T_HOLD, &hold_id) == 0);
  uint64_t other = 0;
  for (int i = 0; i < 10; i++) {
    void *p = zc_svc_loan(s, 64);
    REQUIRE(p != NULL);
    body_fill(p, 64, 2000 + (uint64_t)i);
    zc_svc_msg_t rep;
    REQUIRE(zc_svc_call(s, p, 64, T_WORK, &rep, PEER_WAIT_MS) == 0);
    const uint64_t *r = rep.data;
    CHECK(rep.len == 16 && r[1] == 2000 + (uint64_t)i);
    if (i == 0) other = r[0];
    CHECKF(r[0] == other, "call %d went to worker %llu, not to the idle one %llu", i, (unsigned long long)r[0],
           (unsigned long long)other);
    zc_svc_release(s, &rep);
  }
  zc_svc_msg_t m;
  REQUIRE(zc_svc_receive(s, &m, PEER_WAIT_MS) == 0); /* the held one, answered after 3 s by the other worker */
  CHECK(m.kind == ZC_SVC_REPLY && m.id == hold_id && ((const uint64_t *)m.data)[0] != other);
  zc_svc_release(s, &m);
  /* throughput: 32 in flight */
  int total = quick_mode(argc, argv) ? 1000 : 3000, sent = 0, got = 0, per[2] = {0, 0};
  static struct {
    uint64_t id, seed;
  } out[32];
  int nout = 0;
  rng_t r;
  rng_seed(&r, 9);
  while (got < total) {
    while (sent < total && nout < 32) {
      out[nout].seed = rng_next(&r);
      REQUIRE(send_work(s, out[nout].seed, (size_t)rng_range(&r, 8, 16384), T_WORK, &out[nout].id) == 0);
      nout++;
      sent++;
    }
    REQUIRE(zc_svc_receive(s, &m, PEER_WAIT_MS) == 0);
    int k = 0;
    while (k < nout && out[k].id != m.id) k++;
    CHECKF(m.kind == ZC_SVC_REPLY && k < nout, "kind %d id 0x%llx not outstanding", m.kind, (unsigned long long)m.id);
    if (k < nout) {
      const uint64_t *b = m.data;
      CHECK(b[1] == out[k].seed);
      per[b[0] == (uint64_t)w[0] ? 0 : 1]++;
      out[k] = out[--nout];
    }
    zc_svc_release(s, &m);
    got++;
  }
  printf("queue: worker 0 answered %d, worker 1 %d\n", per[0], per[1]);
  CHECK(per[0] > 0 && per[1] > 0);
  (void)id;
  zc_svc_close(s); /* the workers see EPIPE and exit 0 */
  CHECK_EQ(reap(w[0]), 0);
  CHECK_EQ(reap(w[1]), 0);
  CHECK_DONE("svc_queue");
}

static int t_queue_kill(int argc, char **argv) {
  pool_name = svc_name("qkill");
  zc_svc_t *s = zc_svc_listen(pool_name, NULL);
  REQUIRE(s != NULL);
  pid_t holder = spawn(worker, (void *)W_HOLD_ALL);
  REQUIRE(wait_peers(s, 1));
  pid_t good = spawn(worker, (void *)W_REPLY);
  REQUIRE(wait_peers(s, 2));
  uint64_t ids[40];
  int state[40] = {0}; /* 1 replied, 2 failed */
  for (int i = 0; i < 40; i++) REQUIRE(send_work(s, 500 + (uint64_t)i, 100, T_WORK, &ids[i]) == 0);
  int replies = 0, failed = 0;
  zc_svc_msg_t m, notice;
  memset(&notice, 0, sizeof notice);
  while (replies < 20) { /* the honest worker's share (fewest pending: they alternate) */
    REQUIRE(zc_svc_receive(s, &m, PEER_WAIT_MS) == 0 && m.kind == ZC_SVC_REPLY);
    int k = 0;
    while (k < 40 && ids[k] != m.id) k++;
    CHECK(k < 40 && state[k] == 0 && ((const uint64_t *)m.data)[0] == (uint64_t)good);
    zc_chan_peer_t who = {0, 0, 0};
    CHECK(zc_svc_msg_peer(s, &m, &who) == 0 && who.pid == good && who.uid == geteuid()); /* the kernel's word */
    if (k < 40) state[k] = 1;
    replies++;
    zc_svc_release(s, &m);
  }
  kill(holder, SIGKILL);
  reap(holder);
  while (failed < 20 && zc_svc_receive(s, &m, PEER_WAIT_MS) == 0) {
    CHECKF(m.kind == ZC_SVC_FAILED && m.error == EPIPE, "kind %d error %d", m.kind, m.error);
    zc_chan_peer_t who = {0, 0, 0};
    CHECKF(zc_svc_msg_peer(s, &m, &who) == 0 && who.pid == holder, "FAILED notice from pid %d, the dead worker was %d",
           (int)who.pid, (int)holder); /* after its connection closed: which worker to replace */
    int k = 0;
    while (k < 40 && ids[k] != m.id) k++;
    CHECKF(k < 40 && state[k] == 0, "FAILED for id 0x%llx: unknown, replied or failed already", (unsigned long long)m.id);
    if (k < 40) state[k] = 2;
    failed++;
    notice = m;
    zc_svc_release(s, &m);
  }
  CHECK_EQ(failed, 20);
  CHECK(zc_svc_receive(s, &m, 200) == -1 && errno == ETIMEDOUT); /* nothing more */
  CHECK_EQ(zc_svc_peers(s), 1);
  /* a replacement joins; new requests go to both */
  pid_t repl = spawn(worker, (void *)W_REPLY);
  REQUIRE(wait_peers(s, 2));
  /* the dead worker's slot holds the replacement now: a kept notice names nobody rather than it */
  zc_chan_peer_t was = {0, 0, 0};
  errno = 0;
  CHECKF(zc_svc_msg_peer(s, &notice, &was) == -1 && errno == ESRCH, "an old notice names pid %d (replacement %d)",
         (int)was.pid, (int)repl);
  int per_good = 0, per_repl = 0;
  for (int i = 0; i < 20; i++) REQUIRE(send_work(s, 900 + (uint64_t)i, 100, T_WORK, &ids[i]) == 0);
  for (int i = 0; i < 20; i++) {
    REQUIRE(zc_svc_receive(s, &m, PEER_WAIT_MS) == 0 && m.kind == ZC_SVC_REPLY);
    uint64_t who = ((const uint64_t *)m.data)[0];
    per_good += who == (uint64_t)good;
    per_repl += who == (uint64_t)repl;
    zc_svc_release(s, &m);
  }
  CHECK(per_good + per_repl == 20 && per_repl > 0);
  zc_svc_stats_t st;
  zc_svc_stats(s, &st);
  CHECK_EQ(st.failed, 20);
  CHECK_EQ(st.pending, 0);
  CHECK_EQ(st.left, 1);
  zc_svc_close(s);
  CHECK_EQ(reap(good), 0);
  CHECK_EQ(reap(repl), 0);
  CHECK_DONE("svc_queue_kill");
}

/* A hostile worker: takes one request, then answers with garbage of the given kind. */
static int bad_worker(void *arg) {
  int kind = (int)(intptr_t)arg;
  raw_peer_t rp;
  REQUIRE(raw_connect(pool_name, &rp) == 0);
  int k;
  svc_hdr_t h;
  REQUIRE(raw_recv(&rp, &k, &h, PEER_WAIT_MS) == 0 && k == ZC_SVC_REQUEST);
  if (kind == 1) raw_send(&rp, ZC_SVC_REPLY, h.id, T_WORK, 5);
  else raw_send(&rp, ZC_SVC_REPLY, h.id ^ 1, T_WORK, 32); /* the other index: the honest worker's request */
  for (;;) sleep_ms(100); /* connected until the parent kills it, however slowly the parent runs (spawn's
                           * alarm ends us if it never does) */
  return 0;
}

static int t_queue_hostile(int argc, char **argv) {
  for (int kind = 1; kind <= 2; kind++) {
    pool_name = svc_name(kind == 1 ? "qbad1" : "qbad2");
    zc_svc_t *s = zc_svc_listen(pool_name, NULL);
    REQUIRE(s != NULL);
    pid_t bad = spawn(bad_worker, (void *)(intptr_t)kind);
    pid_t good = spawn(worker, (void *)W_HOLD_ALL); /* holds: its request stays outstanding */
    REQUIRE(wait_peers(s, 2));
    uint64_t ids[2];
    for (int i = 0; i < 2; i++) REQUIRE(send_work(s, 1 + (uint64_t)i, 64, T_WORK, &ids[i]) == 0); /* one each */
    CHECK((uint32_t)ids[1] == ((uint32_t)ids[0] ^ 1)); /* what the bad worker forges in kind 2 */
    zc_svc_msg_t m;
    int r = zc_svc_receive(s, &m, PEER_WAIT_MS);
    CHECKF(r == 0 && m.kind == ZC_SVC_FAILED && m.error == EPROTO && (m.id == ids[0] || m.id == ids[1]),
           "r %d kind %d error %d", r, m.kind, m.error);
    zc_chan_peer_t who = {0, 0, 0};
    CHECK(r == 0 && zc_svc_msg_peer(s, &m, &who) == 0 && who.pid == bad); /* the process to kill */
    zc_svc_release(s, &m);
    errno = 0;
    CHECK(zc_svc_msg_peer(s, &m, &who) == -1 && errno == EINVAL); /* released */
    CHECK(zc_svc_receive(s, &m, 200) == -1 && errno == ETIMEDOUT); /* the good request is not touched */
    zc_svc_stats_t st;
    zc_svc_stats(s, &st);
    CHECK_EQ(st.rejected, 1);
    CHECK_EQ(st.pending, 1);
    CHECK_EQ(zc_svc_peers(s), 1);
    kill(bad, SIGKILL);
    reap(bad);
    kill(good, SIGKILL);
    reap(good);
    zc_svc_close(s);
  }
  CHECK_DONE("svc_queue_hostile");
}

/* ---- many to one ---- */
typedef struct {
  int who, count, wait_kill;
} prod_arg_t;

static volatile int *sent_all; /* the producer to be killed has sent everything */

static int producer(void *arg) {
  prod_arg_t *a = arg;
  /* A send waits for ring space as long as the consumer may lag (descheduled on a loaded machine), not
   * the channel's default 1 s: with that, a consumer stalled over 1 s made zc_svc_send fail (ETIMEDOUT),
   * the producer exit, and the consumer wait 60 s for records never sent. Still bounded: PEER_WAIT_MS, or
   * EPIPE once the consumer's end is closed (looked for every 50 ms while waiting). */
  zc_svc_config_t cfg = {.connect_timeout_ms = 10000, .chan = {.block_timeout_ms = PEER_WAIT_MS}};
  zc_svc_t *c = zc_svc_connect(pool_name, &cfg);
  REQUIRE(c != NULL);
  for (int i = 0; i < a->count; i++) {
    uint32_t *p = zc_svc_loan(c, 64);
    REQUIRE(p != NULL);
    p[0] = (uint32_t)a->who;
    p[1] = (uint32_t)i;
    fill_pattern(p + 2, 56, (uint64_t)a->who << 32 | (uint64_t)i);
    REQUIRE(zc_svc_send(c, p, 64, 7) == 0);
  }
  if (a->wait_kill) *sent_all = 1;
  while (a->wait_kill) sleep_ms(100);
  sleep_ms(200); /* let the consumer take everything before the end of file (not required) */
  zc_svc_close(c);
  return 0;
}

/* The producers still running: a producer that ended with a non-zero status (its REQUIRE failed: a send
 * timed out, the connect failed ...) fails the test at once, with its status, instead of leaving the
 * consumer to wait its full PEER_WAIT_MS for records that will never come. One that exited 0 sent
 * everything: it is reaped here (*st set to 0) and its records are still taken. pids[i] <= 0: not running. */
static void check_producers(pid_t *pids, int *ended, int n, const int *next) {
  for (int i = 0; i < n; i++) {
    if (pids[i] <= 0 || ended[i]) continue;
    int status;
    pid_t r = waitpid(pids[i], &status, WNOHANG);
    if (r == 0) continue;
    REQUIREF(r == pids[i], "waitpid(producer %d): %s", i, strerror(errno));
    ended[i] = 1;
    char buf[64];
    REQUIREF(WIFEXITED(status) && WEXITSTATUS(status) == 0,
             "producer %d (pid %d) ended early (%s) after the consumer took %d of its records", i, (int)pids[i],
             status_str(status, buf, sizeof buf), next[i]);
  }
}

static int t_many(int argc, char **argv) {
  pool_name = svc_name("many");
  sent_all = shared_word();
  zc_svc_t *s = zc_svc_listen(pool_name, NULL);
  REQUIRE(s != NULL);
  int per = quick_mode(argc, argv) ? 2000 : 10000;
  prod_arg_t args[5] = {{0, per, 0}, {1, per, 0}, {2, per, 0}, {3, 500, 1}, {4, per, 0}};
  pid_t pids[5];
  for (int i = 0; i < 4; i++) pids[i] = spawn(producer, &args[i]);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN};
  REQUIRE(epoll_ctl(ep, EPOLL_CTL_ADD, zc_svc_fd(s), &ev) == 0);
  int next[5] = {0}, killed = 0, late = 0, ended[5] = {0};
  pids[4] = 0;
  uint64_t end = now_ms() + 60000;
  while (now_ms() < end) {
    int done = next[0] == per && next[1] == per && next[2] == per && next[4] == per && killed;
    if (done) break;
    zc_svc_msg_t m;
    if (zc_svc_receive(s, &m, 0) != 0) {
      CHECK(errno == EAGAIN);
      /* one fd for every producer, joins and deaths: records are still due, so it must wake; between
       * slices of 100 ms, a producer that died early fails the test at once */
      int n = 0;
      for (uint64_t wend = now_ms() + PEER_WAIT_MS; n == 0 && now_ms() < wend;) {
        n = epoll_wait(ep, &ev, 1, 100);
        if (n < 0 && errno == EINTR) n = 0;
        if (n == 0) check_producers(pids, ended, 5, next);
      }
      CHECKF(n == 1, "zc_svc_fd did not become readable in 60 s (records %d %d %d %d %d, killed %d)", next[0],
             next[1], next[2], next[3], next[4], killed);
      if (n != 1) break;
      continue;
    }
    CHECK(m.kind == ZC_SVC_ONEWAY && m.type == 7 && m.len == 64);
    const uint32_t *b = m.data;
    uint32_t who = b[0];
    if (who < 5) {
      CHECKF(b[1] == (uint32_t)next[who], "producer %u: record %u after %d", who, b[1], next[who]);
      CHECK(verify_pattern(b + 2, 56, (uint64_t)who << 32 | b[1]) < 0);
      next[who] = (int)b[1] + 1;
    } else {
      CHECK(who < 5);
    }
    zc_svc_release(s, &m);
    if (!killed && *sent_all) { /* most of its records are still in the ring: delivered after its death */
      kill(pids[3], SIGKILL);
      reap(pids[3]);
      ended[3] = 1;
      killed = 1;
    }
    if (!late && next[0] > per / 2) {
      pids[4] = spawn(producer, &args[4]);
      late = 1;
    }
  }
  for (int i = 0; i < 5; i++) CHECKF(next[i] == (i == 3 ? 500 : per), "producer %d: %d records", i, next[i]);
  for (int i = 0; i < 5; i++)
    if (i != 3 && pids[i] > 0 && !ended[i]) CHECK_EQ(reap(pids[i]), 0);
  zc_svc_stats_t st;
  zc_svc_msg_t m;
  WAIT_UNTIL((zc_svc_receive(s, &m, 10), zc_svc_stats(s, &st), st.left == 5), PEER_WAIT_MS);
  CHECK_EQ(st.joined, 5);
  CHECK_EQ(st.left, 5);
  CHECK_EQ(st.received, (uint64_t)per * 4 + 500);
  printf("many: %llu records through one fd, %llu epoll looks\n", (unsigned long long)st.received,
         (unsigned long long)st.checks);
  close(ep);
  zc_svc_close(s);
  CHECK_DONE("svc_many");
}

/* ---- the fd of an event loop: one record at a time, each sent while the consumer sleeps in epoll ---- */
static volatile int *taken; /* records the consumer has taken */
static volatile int *waiting; /* taken + 1, stored by the consumer right before its epoll_wait (armed) */

static int slow_producer(void *arg) {
  zc_svc_config_t cfg = {.connect_timeout_ms = 10000};
  zc_svc_t *c = zc_svc_connect(pool_name, &cfg);
  REQUIRE(c != NULL);
  for (int i = 0; i < 20; i++) {
    /* the consumer took record i - 1, said EAGAIN (armed) and is on its way into epoll_wait: the send
     * must wake it (a fixed 20 ms here bet on its pace) */
    REQUIRE(WAIT_UNTIL(*taken == i && *waiting == i + 1, PEER_WAIT_MS));
    uint32_t *p = zc_svc_loan(c, 16);
    REQUIRE(p != NULL);
    p[0] = (uint32_t)i;
    REQUIRE(zc_svc_send(c, p, 16, 1) == 0);
  }
  REQUIRE(WAIT_UNTIL(*taken == 20, PEER_WAIT_MS));
  zc_svc_close(c);
  return 0;
}

static int t_fd(int argc, char **argv) {
  pool_name = svc_name("fd");
  taken = shared_word();
  waiting = shared_word();
  zc_svc_t *s = zc_svc_listen(pool_name, NULL);
  REQUIRE(s != NULL);
  pid_t pp = spawn(slow_producer, NULL);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN};
  REQUIRE(epoll_ctl(ep, EPOLL_CTL_ADD, zc_svc_fd(s), &ev) == 0);
  int wakes = 0;
  while (*taken < 20) {
    zc_svc_msg_t m;
    if (zc_svc_receive(s, &m, 0) == 0) {
      CHECK(m.kind == ZC_SVC_ONEWAY && m.len == 16 && *(const uint32_t *)m.data == (uint32_t)*taken);
      zc_svc_release(s, &m);
      (*taken)++;
      continue;
    }
    CHECK(errno == EAGAIN);
    *waiting = *taken + 1;
    int n = epoll_wait(ep, &ev, 1, PEER_WAIT_MS); /* a record is due: the fd must wake us */
    CHECKF(n == 1, "zc_svc_fd stayed quiet for 60 s with record %d due", *taken);
    if (n != 1) break;
    wakes++;
  }
  if (*taken < 20) kill(pp, SIGKILL);
  CHECK_EQ(reap(pp), 0);
  printf("fd: 20 records, %d epoll wake-ups\n", wakes);
  close(ep);
  zc_svc_close(s);
  CHECK_DONE("svc_fd");
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"queue", t_queue}, {"queue_kill", t_queue_kill}, {"queue_hostile", t_queue_hostile},
                                    {"many", t_many},   {"fd", t_fd},     {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
