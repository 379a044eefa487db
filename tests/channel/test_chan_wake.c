/* Lost wake-ups: each side of a channel looks at the other's progress, then announces that it waits (a
 * flag in shared memory), then must look once more, because whatever the other side did between the two
 * told nobody. These tests put the other side's move exactly there, across two processes (fork):
 *
 *   pingpong     two channels, one each way; 600 messages exchanged one at a time, each side sleeping in
 *                poll() on zc_chan_fd after zc_chan_arm between messages. In builds with test points
 *                (ZC_DEBUG) two messages in three are forced into the arm's window: the receiver's arm
 *                stops after its look found the ring empty, the sender sends only then, and the arm goes
 *                on only once the message is published (the sender saw nobody armed and kicked nobody).
 *                An arm that does not look again after arming sleeps on a message already there: its
 *                poll() times out (20 s) and the test says so
 *   svc_pingpong the same exchange through the channel services (zc_svc_*, a listener and a connector):
 *                each side sleeps in epoll_wait on zc_svc_fd after zc_svc_receive(s, &m, 0) said EAGAIN
 *                (which arms the connection); forced as above, at the connection's channel arm
 *   space_arm    a ZC_CHAN_FAIL producer whose 64-entry ring is full calls zc_chan_arm_space 100 times;
 *                forced: the consumer takes one message after the producer's look and before its arming,
 *                so no kick comes; arm_space must say 1 (retry), else the producer's poll() times out
 *   space_block  the same for a ZC_CHAN_BLOCK producer's wait (chan_wait_full): the consumer makes room
 *                after the producer's last look and before it raises p_wait; the producer must not sleep
 *                on the futex then (stats.sleeps stays 0 over the forced rounds: a missed move costs a
 *                whole 50 ms sleep slice, not a hang)
 *   full_check   the same for the window before it: the consumer makes room after the blocking send's room
 *                check failed and before its wait looked at the consumer's progress (chan_wait_full's
 *                start); the wait must count that move (it compares with the check's own values), so the
 *                producer never sleeps on the futex over the forced rounds
 *   sleep        the consumer's futex sleep (zc_chan_receive with a timeout): the producer sends after the
 *                consumer's last look at the empty ring and before it sets CHAN_SLEEPING; its look after
 *                setting the flag must find the message (stats.sleeps stays 0 over the forced rounds; a
 *                miss costs a 50 ms slice)
 *
 * Without test points (release, sanitizer builds) the same exchanges run unforced: they still check that
 * every message arrives and that every wait is woken, but cannot force the window. Every wait on the other
 * process has a deadline (20-60 s): a lost wake-up fails the test instead of hanging it.
 * Usage: test_chan_wake <name>. */
#include "zc_test.h"

#include "zcmem_channel.h"
#include "zcmem_service.h"
#include "chan_internal.h" /* the test points' numbers */

#include <poll.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define PEER_MS 60000 /* a wait on the other process that is not what is tested */
#define WAKE_MS 20000 /* a wait for a wake-up that must come */

/* Exported by the library in ZC_DEBUG builds only (chan_setup.c). */
extern void zc_chan_test_hook(void (*fn)(int point)) __attribute__((weak));
static int have_hooks(void) { return zc_chan_test_hook != NULL; }

/* Shared between the two processes (MAP_SHARED, set up before fork). */
typedef struct {
  int window[2];  /* side s's hook reached its window for message (or round) value - 1 */
  int last_sent;  /* messages (pingpong) sent so far, stored after the send returned */
  int took;       /* space tests: rounds in which the consumer took its message */
  int failed;     /* a side failed: the other stops waiting */
} shared_t;
static shared_t *sh;

static int ld(const int *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static void st(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

/* Wait until *p >= v, the other side failed, or ms passed: 1 if reached. Short sleeps, so a side waiting
 * here leaves the CPU to the other (2 cores shared by many processes). */
static int wait_ge(const int *p, int v, int ms) { return zc_wait_ge(p, v, &sh->failed, ms, 100); }

/* ---- the hook: run by the library at a test point, in this process ---- */
static int hook_point, hook_armed, hook_side, hook_value, hook_hits;
static const int *hook_until;
static int hook_until_v;

static void hook(int point) {
  if (!hook_armed || point != hook_point) return;
  hook_armed = 0;
  hook_hits++;
  st(&sh->window[hook_side], hook_value);  /* the other side moves now ... */
  wait_ge(hook_until, hook_until_v, PEER_MS); /* ... and we go on only once it did */
}
static void hook_arm(int point, int side, int value, const int *until, int until_v) {
  hook_point = point;
  hook_side = side;
  hook_value = value;
  hook_until = until;
  hook_until_v = until_v;
  hook_armed = 1;
}

static int readable(int fd, int ms) {
  struct pollfd p = {fd, POLLIN, 0};
  int n;
  while ((n = poll(&p, 1, ms)) < 0 && errno == EINTR) {
  }
  return n == 1;
}

typedef struct {
  int ab[2], ba[2]; /* socketpairs: a->b and b->a */
  int n;            /* messages in all */
} pp_arg_t;

/* Message j goes from side j % 2 to the other; two in three are forced into the receiver's arm window (not
 * the first: a listener's connection may not be open yet). */
static int forced(int j) { return have_hooks() && j % 3 != 2 && j > 0; }

/* A failure of one side: printed, the other side told (it stops waiting), 1 returned. */
#define SIDE_FAIL(...)                                                                              \
  do {                                                                                              \
    st(&sh->failed, 1);                                                                             \
    fprintf(stderr, "%s:%d: [pid %d] ", __FILE__, __LINE__, (int)getpid());                         \
    fprintf(stderr, __VA_ARGS__);                                                                   \
    fputc('\n', stderr);                                                                            \
    return 1;                                                                                       \
  } while (0)

/* One side of the ping-pong: side 0 sends the even messages, side 1 the odd ones. 0, or 1 on failure. */
static int pingpong_side(int side, zc_chan_t *out, zc_chan_t *in, int n) {
  int fd = zc_chan_fd(in), sleeps = 0, forced_recv = 0;
  for (int j = 0; j < n; j++) {
    if (j % 2 == side) { /* send j */
      if (forced(j) && !wait_ge(&sh->window[1 - side], j + 1, PEER_MS))
        SIDE_FAIL("side %d: the receiver of message %d never reached its arm window%s", side, j,
                  ld(&sh->failed) ? " (it failed)" : "");
      uint32_t *p = zc_chan_loan(out, 64);
      if (p == NULL) SIDE_FAIL("side %d: loan for message %d: %s", side, j, strerror(errno));
      p[0] = (uint32_t)j;
      fill_pattern(p + 1, 60, (uint64_t)j);
      if (zc_chan_send(out, p, 64, 5) != 0) SIDE_FAIL("side %d: send %d: %s", side, j, strerror(errno));
      st(&sh->last_sent, j + 1);
      continue;
    }
    zc_chan_msg_t m; /* receive j, sleeping on the fd until it is there */
    if (forced(j)) forced_recv++;
    for (;;) {
      if (zc_chan_receive(in, &m, 0) == 0) break;
      if (errno != EAGAIN) SIDE_FAIL("side %d: receive of message %d: %s", side, j, strerror(errno));
      if (forced(j)) hook_arm(CHAN_TP_ARM, side, j + 1, &sh->last_sent, j + 1);
      int r = zc_chan_arm(in);
      hook_armed = 0;
      if (r == 1) continue;
      if (r != 0) SIDE_FAIL("side %d: arm before message %d: %s", side, j, strerror(errno));
      sleeps++;
      uint64_t t0 = now_ms();
      int woke;
      while (!(woke = readable(fd, WAKE_MS)) && ld(&sh->last_sent) <= j && !ld(&sh->failed) && now_ms() - t0 < PEER_MS) {
      } /* not sent yet: the other side's wait, not ours */
      if (!woke && !ld(&sh->failed))
        SIDE_FAIL("side %d: lost wake-up: asleep on zc_chan_fd after zc_chan_arm said 0, message %d %s (messages "
                  "sent: %d)", side, j, ld(&sh->last_sent) > j ? "published for 20 s" : "not sent within 60 s",
                  ld(&sh->last_sent));
      if (ld(&sh->failed)) SIDE_FAIL("side %d: stopped, the other side failed", side);
    }
    const uint32_t *b = m.data;
    if (m.len != 64 || m.type != 5 || b[0] != (uint32_t)j || verify_pattern(b + 1, 60, (uint64_t)j) >= 0)
      SIDE_FAIL("side %d: message %d: length %u type %u number %u", side, j, m.len, m.type, b[0]);
    if (zc_chan_release(in, &m) != 0) SIDE_FAIL("side %d: release: %s", side, strerror(errno));
  }
  if (have_hooks() && hook_hits < forced_recv)
    SIDE_FAIL("side %d: the arm's test point was reached %d times for %d forced messages", side, hook_hits, forced_recv);
  printf("side %d: %d messages received, %d forced into the arm window, %d sleeps in poll\n", side, n / 2,
         forced_recv, sleeps);
  return 0;
}

static int pingpong_child(void *arg) {
  pp_arg_t *a = arg;
  close(a->ab[0]);
  close(a->ba[1]);
  zc_chan_t *in = zc_chan_open(a->ab[1], ZC_CHAN_CONSUMER, NULL);
  zc_chan_t *out = zc_chan_open(a->ba[0], ZC_CHAN_PRODUCER, NULL);
  REQUIREF(in != NULL && out != NULL, "child: open: %s", strerror(errno));
  int rc = pingpong_side(1, out, in, a->n);
  zc_chan_close(out);
  zc_chan_close(in);
  return rc;
}

static int t_pingpong(int argc, char **argv) {
  sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  REQUIRE(sh != MAP_FAILED);
  if (have_hooks()) zc_chan_test_hook(hook);
  pp_arg_t a = {.n = quick_mode(argc, argv) ? 200 : 600};
  REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, a.ab) == 0);
  REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, a.ba) == 0);
  pid_t child = spawn(pingpong_child, &a);
  close(a.ab[1]);
  close(a.ba[0]);
  zc_chan_t *out = zc_chan_open(a.ab[0], ZC_CHAN_PRODUCER, NULL);
  zc_chan_t *in = zc_chan_open(a.ba[1], ZC_CHAN_CONSUMER, NULL);
  if (out == NULL || in == NULL) kill(child, SIGKILL);
  REQUIREF(out != NULL && in != NULL, "parent: open: %s", strerror(errno));
  int r0 = pingpong_side(0, out, in, a.n);
  if (r0 != 0) kill(child, SIGKILL); /* it may be asleep on a message this side will not send */
  int r1 = reap(child);
  CHECKF(r0 == 0, "side 0 (this process) failed");
  CHECKF(r1 == 0, "side 1 (the child) ended with %d", r1);
  printf("pingpong: %d messages, test points %s\n", a.n, have_hooks() ? "on (ZC_DEBUG build)" : "off");
  zc_chan_close(in);
  zc_chan_close(out);
  CHECK_DONE("chanwake_pingpong");
}

/* ---- the same through the channel services: side 0 the connector (a child), side 1 the listener ---- */
static char svc_name_buf[64];

static int svc_side(int side, zc_svc_t *s, int n) {
  int ep = epoll_create1(EPOLL_CLOEXEC), sleeps = 0, forced_recv = 0;
  struct epoll_event ev = {.events = EPOLLIN};
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, zc_svc_fd(s), &ev) != 0) SIDE_FAIL("side %d: epoll: %s", side, strerror(errno));
  for (int j = 0; j < n; j++) {
    if (j % 2 == side) { /* send j */
      if (forced(j) && !wait_ge(&sh->window[1 - side], j + 1, PEER_MS))
        SIDE_FAIL("side %d: the receiver of message %d never reached its arm window%s", side, j,
                  ld(&sh->failed) ? " (it failed)" : "");
      uint32_t *p = zc_svc_loan(s, 64);
      if (p == NULL) SIDE_FAIL("side %d: loan for message %d: %s", side, j, strerror(errno));
      p[0] = (uint32_t)j;
      fill_pattern(p + 1, 60, (uint64_t)j);
      if (zc_svc_send(s, p, 64, 5) != 0) SIDE_FAIL("side %d: send %d: %s", side, j, strerror(errno));
      st(&sh->last_sent, j + 1);
      continue;
    }
    zc_svc_msg_t m; /* receive j: receive(0) until EAGAIN (it arms the connection), then epoll_wait */
    if (forced(j)) forced_recv++;
    for (;;) {
      if (forced(j)) hook_arm(CHAN_TP_ARM, side, j + 1, &sh->last_sent, j + 1);
      int r = zc_svc_receive(s, &m, 0);
      hook_armed = 0;
      if (r == 0) break;
      if (errno != EAGAIN) SIDE_FAIL("side %d: receive of message %d: %s", side, j, strerror(errno));
      sleeps++;
      uint64_t t0 = now_ms();
      int k;
      while (((k = epoll_wait(ep, &ev, 1, WAKE_MS)) == 0 && ld(&sh->last_sent) <= j && !ld(&sh->failed) &&
              now_ms() - t0 < PEER_MS) || (k < 0 && errno == EINTR)) {
      } /* not sent yet: the other side's wait, not ours */
      if (k != 1 && !ld(&sh->failed))
        SIDE_FAIL("side %d: lost wake-up: asleep on zc_svc_fd after zc_svc_receive said EAGAIN, message %d %s "
                  "(messages sent: %d)", side, j, ld(&sh->last_sent) > j ? "published for 20 s" : "not sent within 60 s",
                  ld(&sh->last_sent));
      if (ld(&sh->failed)) SIDE_FAIL("side %d: stopped, the other side failed", side);
    }
    const uint32_t *b = m.data;
    if (m.kind != ZC_SVC_ONEWAY || m.len != 64 || m.type != 5 || b[0] != (uint32_t)j ||
        verify_pattern(b + 1, 60, (uint64_t)j) >= 0)
      SIDE_FAIL("side %d: message %d: kind %d length %zu type %u number %u", side, j, (int)m.kind, (size_t)m.len,
                m.type, b != NULL ? b[0] : 0);
    if (zc_svc_release(s, &m) != 0) SIDE_FAIL("side %d: release: %s", side, strerror(errno));
  }
  if (have_hooks() && hook_hits < forced_recv)
    SIDE_FAIL("side %d: the arm's test point was reached %d times for %d forced messages", side, hook_hits, forced_recv);
  printf("side %d: %d messages received, %d forced into the arm window, %d sleeps in epoll\n", side, n / 2,
         forced_recv, sleeps);
  close(ep);
  return 0;
}

static int svc_child(void *arg) {
  int n = *(int *)arg;
  zc_svc_config_t cfg = {.connect_timeout_ms = PEER_MS};
  zc_svc_t *c = zc_svc_connect(svc_name_buf, &cfg);
  REQUIREF(c != NULL, "connect: %s", strerror(errno));
  int rc = svc_side(0, c, n);
  zc_svc_close(c);
  return rc;
}

static int t_svc_pingpong(int argc, char **argv) {
  sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  REQUIRE(sh != MAP_FAILED);
  if (have_hooks()) zc_chan_test_hook(hook);
  int n = quick_mode(argc, argv) ? 200 : 600;
  snprintf(svc_name_buf, sizeof svc_name_buf, "chanwake.%d", (int)getpid());
  zc_svc_t *s = zc_svc_listen(svc_name_buf, NULL);
  REQUIREF(s != NULL, "listen: %s", strerror(errno));
  pid_t child = spawn(svc_child, &n);
  int r1 = svc_side(1, s, n);
  if (r1 != 0) kill(child, SIGKILL);
  int r0 = reap(child);
  CHECKF(r1 == 0, "side 1 (the listener, this process) failed");
  CHECKF(r0 == 0, "side 0 (the connector, a child) ended with %d", r0);
  printf("svc_pingpong: %d messages, test points %s\n", n, have_hooks() ? "on (ZC_DEBUG build)" : "off");
  zc_svc_close(s);
  CHECK_DONE("chanwake_svc_pingpong");
}

/* ---- producer space: the consumer moves between the producer's look and its announcement ---- */
typedef struct {
  int sv[2];
  int rounds;
} sp_arg_t;

/* The consumer: round k, once the producer is in its window (or, without test points, once it announced
 * round k), takes one message and releases it; then drains everything until the producer's end. */
static int space_consumer(void *arg) {
  sp_arg_t *a = arg;
  close(a->sv[0]);
  zc_chan_t *c = zc_chan_open(a->sv[1], ZC_CHAN_CONSUMER, NULL);
  REQUIREF(c != NULL, "consumer: open: %s", strerror(errno));
  uint32_t next = 0;
  for (int k = 1; k <= a->rounds; k++) {
    REQUIREF(wait_ge(&sh->window[0], k, PEER_MS), "consumer: the producer never reached round %d", k);
    zc_chan_msg_t m;
    REQUIREF(zc_chan_receive(c, &m, PEER_MS) == 0, "consumer: receive in round %d: %s", k, strerror(errno));
    REQUIREF(m.len == 64 && *(const uint32_t *)m.data == next, "consumer: message %u out of order", next);
    next++;
    REQUIRE(zc_chan_release(c, &m) == 0);
    st(&sh->took, k);
  }
  for (;;) {
    zc_chan_msg_t m;
    if (zc_chan_receive(c, &m, PEER_MS) != 0) {
      REQUIREF(errno == EPIPE, "consumer: the end: %s", strerror(errno));
      break;
    }
    REQUIREF(*(const uint32_t *)m.data == next, "consumer: message %u out of order", next);
    next++;
    REQUIRE(zc_chan_release(c, &m) == 0);
  }
  zc_chan_close(c);
  printf("consumer: %u messages\n", next);
  return 0;
}

/* point: the test point a blocking producer is stopped at (CHAN_TP_WAIT_FULL or CHAN_TP_FULL_CHECK). */
static int space_run(int argc, char **argv, int block, int point) {
  const char *name = !block ? "chanwake_space_arm" : point == CHAN_TP_FULL_CHECK ? "chanwake_full_check" : "chanwake_space_block";
  sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  REQUIRE(sh != MAP_FAILED);
  if (have_hooks()) zc_chan_test_hook(hook);
  sp_arg_t a = {.rounds = quick_mode(argc, argv) ? 40 : 100};
  REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, a.sv) == 0);
  pid_t child = spawn(space_consumer, &a);
  close(a.sv[1]);
  zc_chan_config_t cfg = {.ring_entries = 64,
                          .policy = block ? ZC_CHAN_BLOCK : ZC_CHAN_FAIL,
                          .block_timeout_ms = PEER_MS};
  zc_chan_t *p = zc_chan_open(a.sv[0], ZC_CHAN_PRODUCER, &cfg);
  if (p == NULL) kill(child, SIGKILL);
  REQUIREF(p != NULL, "producer: open: %s", strerror(errno));
  int fd = zc_chan_fd(p), fulls = 0, polls = 0, lost = 0;
  uint32_t seq = 0;
  /* fill the ring */
  for (;;) {
    uint32_t *q = zc_chan_loan(p, 64);
    REQUIRE(q != NULL);
    q[0] = seq;
    if (block) { /* a blocking producer would wait here: fill exactly the ring */
      REQUIRE(zc_chan_send(p, q, 64, 1) == 0);
      if (++seq == 64) break;
      continue;
    }
    if (zc_chan_send(p, q, 64, 1) != 0) {
      REQUIREF(errno == EAGAIN, "send: %s", strerror(errno));
      REQUIRE(zc_chan_cancel(p, q) == 0);
      break;
    }
    seq++;
  }
  zc_chan_stats_t s0;
  zc_chan_stats(p, &s0);
  for (int k = 1; k <= a.rounds && !lost; k++) {
    uint32_t *q = zc_chan_loan(p, 64);
    REQUIRE(q != NULL);
    q[0] = seq;
    if (block) {
      if (have_hooks()) hook_arm(point, 0, k, &sh->took, k);
      else st(&sh->window[0], k); /* unforced: the consumer takes one whenever it gets there */
      int r = zc_chan_send(p, q, 64, 1); /* the ring is full: waits for the consumer's take */
      hook_armed = 0;
      REQUIREF(r == 0, "round %d: blocking send: %s", k, strerror(errno));
      seq++;
      continue;
    }
    for (;;) {
      if (zc_chan_send(p, q, 64, 1) == 0) break;
      REQUIREF(errno == EAGAIN, "round %d: send: %s", k, strerror(errno));
      fulls++;
      if (have_hooks() && ld(&sh->took) < k) hook_arm(CHAN_TP_ARM_SPACE, 0, k, &sh->took, k);
      int r = zc_chan_arm_space(p);
      hook_armed = 0;
      if (!have_hooks()) st(&sh->window[0], k);
      REQUIREF(r >= 0, "round %d: arm_space: %s", k, strerror(errno));
      if (r == 1) continue;
      polls++;
      if (!readable(fd, WAKE_MS)) {
        CHECKF(0, "round %d: lost wake-up: asleep %d s on zc_chan_fd after zc_chan_arm_space said 0, the consumer "
               "having taken its message of this round (took %d)", k, WAKE_MS / 1000, ld(&sh->took));
        lost = 1;
        break;
      }
    }
    if (!lost) seq++;
  }
  zc_chan_stats_t s1;
  zc_chan_stats(p, &s1);
  if (block && have_hooks())
    CHECKF(s1.sleeps == s0.sleeps, "the producer slept on the futex %llu times in %d rounds, each after the consumer "
           "had made room (its wait missed a move made before it raised p_wait)",
           (unsigned long long)(s1.sleeps - s0.sleeps), a.rounds);
  if (have_hooks()) CHECKF(hook_hits >= a.rounds || lost, "test point reached %d times in %d rounds", hook_hits, a.rounds);
  printf("%s: %d rounds, %u messages, test points %s, %d EAGAIN, %d polls, %llu futex sleeps\n", name, a.rounds, seq,
         have_hooks() ? "on" : "off", fulls, polls, (unsigned long long)(s1.sleeps - s0.sleeps));
  if (lost) {
    st(&sh->failed, 1);
    kill(child, SIGKILL);
  }
  zc_chan_close(p);
  int rc = reap(child);
  if (!lost) CHECKF(rc == 0, "consumer ended with %d", rc);
  return check_exit(name);
}

static int t_space_arm(int argc, char **argv) { return space_run(argc, argv, 0, 0); }
static int t_space_block(int argc, char **argv) { return space_run(argc, argv, 1, CHAN_TP_WAIT_FULL); }
static int t_full_check(int argc, char **argv) { return space_run(argc, argv, 1, CHAN_TP_FULL_CHECK); }

/* ---- the consumer's futex sleep: the producer sends between the consumer's last look and its flag ---- */
typedef struct {
  int sv[2];
  int rounds;
} sl_arg_t;

/* The consumer (a child): round k receives message k - 1 with a timeout; forced, its sleep stops at the
 * test point until the producer has sent it. 0, or 1 on failure. */
static int sleep_consumer(void *arg) {
  sl_arg_t *a = arg;
  close(a->sv[0]);
  if (have_hooks()) zc_chan_test_hook(hook);
  zc_chan_t *c = zc_chan_open(a->sv[1], ZC_CHAN_CONSUMER, NULL);
  if (c == NULL) SIDE_FAIL("consumer: open: %s", strerror(errno));
  zc_chan_stats_t s0, s1;
  zc_chan_stats(c, &s0);
  for (int k = 1; k <= a->rounds; k++) {
    if (have_hooks()) hook_arm(CHAN_TP_SLEEP, 1, k, &sh->last_sent, k);
    else st(&sh->window[1], k); /* unforced: the producer sends whenever it gets there */
    zc_chan_msg_t m;
    int r = zc_chan_receive(c, &m, PEER_MS);
    hook_armed = 0;
    if (r != 0) SIDE_FAIL("consumer: receive in round %d: %s", k, strerror(errno));
    if (m.len != 64 || *(const uint32_t *)m.data != (uint32_t)(k - 1))
      SIDE_FAIL("consumer: round %d: message %u of %u bytes", k, *(const uint32_t *)m.data, m.len);
    if (zc_chan_release(c, &m) != 0) SIDE_FAIL("consumer: release: %s", strerror(errno));
  }
  zc_chan_stats(c, &s1);
  if (have_hooks() && s1.sleeps != s0.sleeps)
    SIDE_FAIL("consumer: slept on the futex %llu times in %d rounds, each with the message published before it "
              "raised CHAN_SLEEPING (its look after the flag missed it: each cost a 50 ms slice)",
              (unsigned long long)(s1.sleeps - s0.sleeps), a->rounds);
  if (have_hooks() && hook_hits < a->rounds)
    SIDE_FAIL("consumer: the sleep's test point was reached %d times in %d rounds", hook_hits, a->rounds);
  printf("consumer: %d rounds, test points %s, %llu futex sleeps\n", a->rounds, have_hooks() ? "on" : "off",
         (unsigned long long)(s1.sleeps - s0.sleeps));
  zc_chan_close(c);
  return 0;
}

static int t_sleep(int argc, char **argv) {
  sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  REQUIRE(sh != MAP_FAILED);
  sl_arg_t a = {.rounds = quick_mode(argc, argv) ? 40 : 100};
  REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, a.sv) == 0);
  pid_t child = spawn(sleep_consumer, &a);
  close(a.sv[1]);
  zc_chan_t *p = zc_chan_open(a.sv[0], ZC_CHAN_PRODUCER, NULL);
  if (p == NULL) kill(child, SIGKILL);
  REQUIREF(p != NULL, "producer: open: %s", strerror(errno));
  int ok = 1;
  for (int k = 1; k <= a.rounds && ok; k++) {
    if (!wait_ge(&sh->window[1], k, PEER_MS)) {
      CHECKF(0, "round %d: the consumer never reached its sleep%s", k, ld(&sh->failed) ? " (it failed)" : "");
      ok = 0;
      break;
    }
    uint32_t *q = zc_chan_loan(p, 64);
    REQUIRE(q != NULL);
    q[0] = (uint32_t)(k - 1);
    REQUIREF(zc_chan_send(p, q, 64, 1) == 0, "round %d: send: %s", k, strerror(errno));
    st(&sh->last_sent, k);
  }
  if (!ok) kill(child, SIGKILL);
  int rc = reap(child);
  CHECKF(rc == 0, "the consumer ended with %d", rc);
  zc_chan_close(p);
  printf("sleep: %d rounds, test points %s\n", a.rounds, have_hooks() ? "on (ZC_DEBUG build)" : "off");
  CHECK_DONE("chanwake_sleep");
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {
      {"pingpong", t_pingpong}, {"svc_pingpong", t_svc_pingpong}, {"space_arm", t_space_arm}, {"space_block", t_space_block},
      {"full_check", t_full_check}, {"sleep", t_sleep}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
