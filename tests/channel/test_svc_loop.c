/* Channel services in an event loop: what a wake-up of zc_svc_fd costs the receiving side, across
 * processes (fork). The loop waits in epoll_wait on zc_svc_fd and, when woken, calls
 * zc_svc_receive(s, &m, 0) until EAGAIN (the HTTP example's front end does this).
 *   loop_checks   a worker sends one message per round, in lockstep with the loop (it sends only after the
 *                 loop drained the previous one, so its send finds the loop armed and kicks). Each round:
 *                 the fd wakes, the drain gives exactly that message, and afterwards the fd is quiet (the
 *                 drain read the wake-up record itself). The drains make no epoll look of their own
 *                 (stats `checks` unchanged over 200 rounds; check_ms is 10 minutes, so no periodic look
 *                 happens): the messages explain the wake-up. Then a second worker joins at the same time
 *                 as the first sends: both messages arrive and the joiner is admitted (a wake-up that had
 *                 messages does not hide a join). Then the first worker is SIGKILLed: the loop is woken,
 *                 the connection is dropped, the fd is quiet again and the other worker is served on.
 *   loop_call_kill  a dispatcher's zc_svc_call to its only worker, which receives the request and dies
 *                 (SIGKILL): the call fails with EPIPE (not ETIMEDOUT after its 60 s), and no FAILED notice
 *                 for it is left for zc_svc_receive (the pending table's failure goes to the call itself)
 * Usage: test_svc_loop <name>. */
#include "svc_test.h"

#include <signal.h>
#include <sys/epoll.h>

static const char *loop_name;          /* set before forking */
static volatile int *taken, *sent;     /* shared with the workers */
enum { ROUNDS = 200 };

static int fd_readable(int fd) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* Worker 1: round i sends {1, i} once the loop took i messages; then, told by *taken == -1, one more
 * ({1, ROUNDS}); then waits to be killed. */
static int worker_one(void *arg) {
  (void)arg;
  zc_svc_config_t cfg = {.connect_timeout_ms = 10000};
  zc_svc_t *c = zc_svc_connect(loop_name, &cfg);
  REQUIRE(c != NULL);
  for (int i = 0; i <= ROUNDS; i++) {
    if (i < ROUNDS) REQUIRE(WAIT_UNTIL(*taken == i, 30000));
    else REQUIRE(WAIT_UNTIL(*taken == -1, 30000));
    uint32_t *p = zc_svc_loan(c, 8);
    REQUIRE(p != NULL);
    p[0] = 1;
    p[1] = (uint32_t)i;
    REQUIRE(zc_svc_send(c, p, 8, 7) == 0); /* the kick, if the loop is armed, is sent before this returns */
    *sent = i + 1;
  }
  for (;;) pause();
}

/* Worker 2: joins when told (*taken == -1) and sends {2, 0}; once *sent is 1001, sends {2, 1}; then waits
 * for the loop to close (EPIPE). */
static int worker_two(void *arg) {
  (void)arg;
  REQUIRE(WAIT_UNTIL(*taken == -1, 30000));
  zc_svc_config_t cfg = {.connect_timeout_ms = 10000};
  zc_svc_t *c = zc_svc_connect(loop_name, &cfg);
  REQUIRE(c != NULL);
  for (uint32_t k = 0; k < 2; k++) {
    if (k == 1) REQUIRE(WAIT_UNTIL(*sent == 1001, 30000));
    uint32_t *p = zc_svc_loan(c, 8);
    REQUIRE(p != NULL);
    p[0] = 2;
    p[1] = k;
    REQUIRE(zc_svc_send(c, p, 8, 7) == 0);
  }
  zc_svc_msg_t m;
  CHECK(zc_svc_receive(c, &m, 30000) != 0 && errno == EPIPE);
  zc_svc_close(c);
  CHECK_DONE("svc_loop worker 2");
}

/* One wake-up: wait for the fd, then drain. Returns the number of messages taken; their {worker, seq}
 * in got[]. */
static int wake_and_drain(zc_svc_t *s, int ep, uint32_t got[][2], int cap) {
  struct epoll_event ev;
  int n = epoll_wait(ep, &ev, 1, 20000);
  CHECKF(n == 1, "zc_svc_fd stayed quiet for 20 s");
  if (n != 1) return -1;
  int k = 0;
  zc_svc_msg_t m;
  while (zc_svc_receive(s, &m, 0) == 0) {
    CHECK(m.kind == ZC_SVC_ONEWAY && m.len == 8);
    if (k < cap && m.len == 8) memcpy(got[k], m.data, 8);
    k++;
    zc_svc_release(s, &m);
  }
  CHECKF(errno == EAGAIN, "drain ended with %s", strerror(errno));
  return k;
}

static int t_checks(int argc, char **argv) {
  (void)argc, (void)argv;
  loop_name = svc_name("loop");
  taken = shared_word();
  sent = shared_word();
  *taken = -2; /* worker 1 sends round 0 once the join below is done */
  zc_svc_config_t cfg = {.check_ms = 600000};
  zc_svc_t *s = zc_svc_listen(loop_name, &cfg);
  REQUIRE(s != NULL);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN};
  REQUIRE(epoll_ctl(ep, EPOLL_CTL_ADD, zc_svc_fd(s), &ev) == 0);
  pid_t w1 = spawn(worker_one, NULL), w2 = spawn(worker_two, NULL);

  /* the join: woken by the connector, admitted by a drain's look */
  uint32_t got[4][2];
  for (int k = 0; k < 100 && zc_svc_peers(s) < 1; k++) CHECK(wake_and_drain(s, ep, got, 4) == 0);
  REQUIRE(zc_svc_peers(s) == 1);
  zc_svc_stats_t a, b;
  zc_svc_stats(s, &a);
  *taken = 0;

  int bad = 0;
  for (int i = 0; i < ROUNDS && !bad; i++) {
    REQUIRE(WAIT_UNTIL(*sent == i + 1, 30000));
    int k = wake_and_drain(s, ep, got, 4);
    if (k != 1 || got[0][0] != 1 || got[0][1] != (uint32_t)i) {
      CHECKF(0, "round %d: %d messages, first {%u, %u}", i, k, k > 0 ? got[0][0] : 0, k > 0 ? got[0][1] : 0);
      bad = 1;
    }
    if (fd_readable(zc_svc_fd(s))) { /* the drain left the wake-up record unread */
      CHECKF(0, "round %d: zc_svc_fd still readable after the drain", i);
      bad = 1;
    }
    *taken = i + 1;
  }
  zc_svc_stats(s, &b);
  printf("checks: %d rounds, %llu epoll looks by the drains\n", ROUNDS, (unsigned long long)(b.checks - a.checks));
  CHECKF(b.checks - a.checks <= 2, "%llu epoll looks in %d rounds of one message each",
         (unsigned long long)(b.checks - a.checks), ROUNDS);

  /* a join at the same time as a message: both get through */
  *taken = -1;
  int from1 = 0, from2 = 0;
  for (int k = 0; k < 1000 && !(from1 && from2 && zc_svc_peers(s) == 2); k++) {
    int n = wake_and_drain(s, ep, got, 4);
    if (n < 0) break;
    for (int j = 0; j < n && j < 4; j++) {
      if (got[j][0] == 1) {
        CHECK(got[j][1] == ROUNDS);
        from1++;
      }
      if (got[j][0] == 2) {
        CHECK(got[j][1] == 0);
        from2++;
      }
    }
  }
  CHECKF(from1 == 1 && from2 == 1 && zc_svc_peers(s) == 2, "after the join: %d from worker 1, %d from worker 2, %d peers",
         from1, from2, zc_svc_peers(s));

  /* worker 1 killed: the loop is woken, drops it, and goes quiet; worker 2 is still served */
  kill(w1, SIGKILL);
  CHECK(reap(w1) != 0);
  for (int k = 0; k < 1000 && zc_svc_peers(s) != 1; k++)
    if (wake_and_drain(s, ep, got, 4) < 0) break;
  CHECK_EQ(zc_svc_peers(s), 1);
  CHECK(!fd_readable(zc_svc_fd(s)));
  *sent = 1001;
  int n = 0;
  for (int k = 0; k < 1000 && n == 0; k++) {
    n = wake_and_drain(s, ep, got, 4);
    if (n < 0) break;
  }
  CHECK(n == 1 && got[0][0] == 2 && got[0][1] == 1);
  CHECK(!fd_readable(zc_svc_fd(s)));

  zc_svc_close(s);
  CHECK_EQ(reap(w2), 0);
  close(ep);
  CHECK_DONE("svc_loop_checks");
}

/* ---- a call whose worker dies ---- */
static int dying_worker(void *arg) {
  (void)arg;
  zc_svc_config_t cfg = {.connect_timeout_ms = 10000};
  zc_svc_t *c = zc_svc_connect(loop_name, &cfg);
  REQUIRE(c != NULL);
  zc_svc_msg_t m;
  REQUIRE(zc_svc_receive(c, &m, 30000) == 0 && m.kind == ZC_SVC_REQUEST);
  raise(SIGKILL);
  return 1;
}

static int t_call_kill(int argc, char **argv) {
  (void)argc, (void)argv;
  loop_name = svc_name("callkill");
  zc_svc_t *s = zc_svc_listen(loop_name, NULL);
  REQUIRE(s != NULL);
  pid_t w = spawn(dying_worker, NULL);
  zc_svc_msg_t m;
  for (int k = 0; k < 3000 && zc_svc_peers(s) < 1; k++) /* admit the worker */
    CHECK(zc_svc_receive(s, &m, 10) != 0);
  REQUIRE(zc_svc_peers(s) == 1);
  char *q = zc_svc_loan(s, 32);
  REQUIRE(q != NULL);
  memset(q, 1, 32);
  zc_svc_msg_t rep;
  errno = 0;
  int r = zc_svc_call(s, q, 32, 5, &rep, 60000);
  CHECKF(r == -1 && errno == EPIPE, "zc_svc_call: %d, %s", r, strerror(errno));
  CHECK_EQ(reap(w), 128 + SIGKILL);
  zc_svc_stats_t st;
  zc_svc_stats(s, &st);
  CHECK_EQ(st.pending, 0);
  CHECK(zc_svc_receive(s, &m, 0) != 0 && errno == EAGAIN); /* no notice left over */
  zc_svc_close(s);
  CHECK_DONE("svc_loop_call_kill");
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"checks", t_checks}, {"call_kill", t_call_kill}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
