/* Event loops on the ZeroMQ endpoints' fds, across processes over tcp://127.0.0.1: the caller sleeps in its
 * own epoll_wait on zc_eps_fd / zc_ep_pub_fd and is woken for every message, death and subscriber, with
 * libzmq's edge-triggered ZMQ_FD handled inside the library. Usage: test_zmq_loop <name>.
 *   svc:      a listener's loop, fed bursts of 1-8 requests by a client process (several messages for one
 *             edge); the last request of each burst is answered only after the next burst woke the loop,
 *             by the loop's thread or another thread, after libzmq's command throttle passed, so that the
 *             reply's zmq_msg_send takes the burst's ZMQ_FD signal: the loop must still wake (zs_kick). Then
 *             a request to the client, which SIGKILLs itself on it: the loop wakes and gets its FAILED
 *             notice. Wake-ups that find nothing are bounded (the eventfd is read back by receive), over
 *             pauses of the client of 500 ms in which a fd left readable would spin.
 *   svc_conn: a connector's loop whose listener is SIGKILLed: the loop wakes and receive says EPIPE (the
 *             grace timer), with no request outstanding.
 *   pub:      a publisher's loop: subscribers join (two at once), one is killed; each is seen through the
 *             fd, with a publish between every wait (a send may take the XPUB's edge: accept(p, 0) until
 *             EAGAIN right before epoll_wait is the rule).
 *   space:    back-pressure (zc_eps_arm_space, ZC_CHAN_FAIL) on a connector whose listener reads nothing at
 *             first: held by the high-water mark, then by the memory cap; the loop sleeps on the fd and
 *             is woken when room comes back, also after its own receive took libzmq's room signal.
 *   space_other: the same, but every other time it is held, once the wake-up is there (the fd readable),
 *             another thread calls receive(0) twice before the loop's thread goes back to its epoll_wait
 *             (as a receiving thread may while the loop thread is still on its way out of epoll_wait):
 *             the space wake-up must still be there for the loop (zs_t.space_fd, read only by the thread
 *             that armed), for the high-water mark and the memory cap.
 * Every wait has a deadline (45 s for each wake-up: a lost wake-up fails instead of hanging). */
#include "zc_test.h"
#include "zmq_spawn.h"
#include "zcmem.h"
#include "zcmem_zmq.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sys/epoll.h>

#define ANY_PORT "tcp://127.0.0.1:*"
/* A wait on the other process: its pace is not under test (a loaded 2-core machine under a sanitizer may
 * leave it off the CPU for seconds). A lost wake-up still fails, after WAKE_MS, instead of hanging: below
 * the children's 60 s alarm (zc_child.h), so that it is reported as such, not as the child's death. */
#define PEER_MS 60000
#define WAKE_MS 45000
#define T_BYE 90 /* ONEWAY: the client is done */
#define T_DIE 91 /* REQUEST to the client: it SIGKILLs itself */

typedef struct burst_s {
  uint32_t round, idx, count, pad;
} burst_t;

/* 1 if the fd became readable within ms, 0 if not. */
static int wait_fd(int efd, int ms) {
  struct epoll_event ev;
  for (;;) {
    int n = epoll_wait(efd, &ev, 1, ms);
    if (n >= 0) return n;
    REQUIREF(errno == EINTR, "epoll_wait: %s", strerror(errno));
  }
}

static int loop_fd(int fd) {
  int efd = epoll_create1(EPOLL_CLOEXEC);
  REQUIRE(efd >= 0);
  struct epoll_event ev = {.events = EPOLLIN};
  REQUIRE(epoll_ctl(efd, EPOLL_CTL_ADD, fd, &ev) == 0);
  return efd;
}

/* ---- svc ---- */
typedef struct client_args_s {
  const char *ep;
  int rounds;
} client_args_t;

/* The client: round r sends a burst of 1 + r % 8 requests at once, then waits until at most one of all
 * its requests is unanswered (the server holds the last of each burst until the next burst came). */
static int client_main(void *arg) {
  client_args_t *a = arg;
  zc_eps_config_t cfg = {.svc = {.connect_timeout_ms = PEER_MS}}; /* not the 5 s default: the listener's pace */
  zc_eps_t *c = zc_eps_connect(a->ep, &cfg);
  REQUIREF(c != NULL, "connect %s: %s", a->ep, strerror(errno));
  long sent = 0, answered = 0;
  for (int r = 0; r < a->rounds; r++) {
    uint32_t count = 1 + (uint32_t)r % 8;
    if (r % 100 == 50) sleep_ms(500); /* the server's loop sleeps that long: a fd that stays readable spins */
    for (uint32_t i = 0; i < count; i++) {
      burst_t *b = zc_eps_loan(c, sizeof *b);
      REQUIREF(b != NULL, "loan: %s", strerror(errno));
      *b = (burst_t){(uint32_t)r, i, count, 0};
      uint64_t id;
      REQUIREF(zc_eps_request(c, b, sizeof *b, 1, &id) == 0, "request: %s", strerror(errno));
      sent++;
    }
    long want = r + 1 == a->rounds ? sent : sent - 1;
    while (answered < want) {
      zc_svc_msg_t m;
      REQUIREF(zc_eps_receive(c, &m, PEER_MS) == 0, "round %d: reply %ld of %ld: %s", r, answered, want, strerror(errno));
      REQUIREF(m.kind == ZC_SVC_REPLY && m.len == sizeof(burst_t), "kind %d len %u", m.kind, m.len);
      answered++;
      zc_eps_release(c, &m);
    }
  }
  void *p = zc_eps_loan(c, 8);
  REQUIRE(p != NULL);
  memset(p, 0, 8);
  REQUIREF(zc_eps_send(c, p, 8, T_BYE) == 0, "bye: %s", strerror(errno));
  /* then the server's request that kills this process */
  zc_svc_msg_t m;
  REQUIREF(zc_eps_receive(c, &m, PEER_MS) == 0, "the last request: %s", strerror(errno));
  REQUIREF(m.kind == ZC_SVC_REQUEST && m.type == T_DIE, "kind %d type %u", m.kind, m.type);
  kill(getpid(), SIGKILL);
  return 3;
}

typedef struct replier_s {
  zc_eps_t *s;
  zc_svc_msg_t *req;
  int rc, err;
} replier_t;

static void *reply_held(void *arg) {
  replier_t *rp = arg;
  burst_t *b = zc_eps_loan_reply(rp->s, rp->req, sizeof *b);
  if (b == NULL) {
    rp->rc = -1, rp->err = errno;
    return NULL;
  }
  memcpy(b, rp->req->data, sizeof *b);
  rp->rc = zc_eps_reply(rp->s, rp->req, b, sizeof *b, 2);
  rp->err = errno;
  return NULL;
}

static int t_svc(int argc, char **argv) {
  int rounds = quick_mode(argc, argv) ? 120 : 400;
  zc_eps_t *s = zc_eps_listen(ANY_PORT, NULL);
  REQUIREF(s != NULL, "listen: %s", strerror(errno));
  char ep[256];
  snprintf(ep, sizeof ep, "%s", zc_eps_endpoint(s));
  client_args_t ca = {ep, rounds};
  pid_t pid = ZSPAWN(client_main, &ca, ep, -1, -1);
  int efd = loop_fd(zc_eps_fd(s));

  zc_svc_msg_t held;
  int have_held = 0, bye = 0;
  long received = 0, replies = 0, wakes = 0, empty_wakes = 0, multi = 0, taken = 0, taken_from_thread = 0;
  uint32_t next_round = 0, next_idx = 0;
  while (!bye) {
    long got = 0;
    zc_svc_msg_t m;
    while (zc_eps_receive(s, &m, 0) == 0) { /* the rule: after a wake-up, receive until EAGAIN */
      got++;
      if (m.kind == ZC_SVC_ONEWAY && m.type == T_BYE) {
        bye = 1;
        zc_eps_release(s, &m);
        continue;
      }
      REQUIREF(m.kind == ZC_SVC_REQUEST && m.len == sizeof(burst_t), "kind %d len %u", m.kind, m.len);
      burst_t b;
      memcpy(&b, m.data, sizeof b);
      REQUIREF(b.round == next_round && b.idx == next_idx, "got request %u.%u, expected %u.%u", b.round, b.idx,
               next_round, next_idx);
      if (++next_idx == b.count) next_round++, next_idx = 0;
      received++;
      if (have_held) { /* the next burst came within this drain already: no edge to test this round */
        replier_t rp = {s, &held, 0, 0};
        reply_held(&rp);
        REQUIREF(rp.rc == 0, "reply: %s", strerror(rp.err));
        replies++;
        have_held = 0;
      }
      if (b.idx + 1 == b.count) { /* the last of its burst: answered after the next burst woke the loop */
        held = m;
        have_held = 1;
        continue;
      }
      replier_t rp = {s, &m, 0, 0};
      reply_held(&rp);
      REQUIREF(rp.rc == 0, "reply: %s", strerror(rp.err));
      replies++;
    }
    REQUIREF(errno == EAGAIN, "receive: %s", strerror(errno));
    if (got > 1) multi++;
    if (bye) break;
    if (have_held && next_round == (uint32_t)rounds) { /* the last burst: no next one will come */
      replier_t rp = {s, &held, 0, 0};
      reply_held(&rp);
      REQUIREF(rp.rc == 0, "reply: %s", strerror(rp.err));
      replies++;
      have_held = 0;
    }
    if (have_held) {
      /* Wait until the next burst signals the fd, let libzmq's command throttle (about 1 ms of TSC) pass,
       * then send the held reply: its zmq_msg_send reads the socket's commands, taking the signal of the
       * burst that is already there. The fd must still wake the loop below. */
      REQUIREF(wait_fd(efd, WAKE_MS) == 1, "no wake-up for burst %u within %d s", next_round, WAKE_MS / 1000);
      sleep_ms(3);
      replier_t rp = {s, &held, 0, 0};
      if (next_round % 2) { /* from another thread, as a server whose workers reply */
        pthread_t th;
        REQUIRE(pthread_create(&th, NULL, reply_held, &rp) == 0);
        pthread_join(th, NULL);
        taken_from_thread++;
      } else {
        reply_held(&rp);
      }
      REQUIREF(rp.rc == 0, "reply: %s", strerror(rp.err));
      replies++;
      taken++;
      have_held = 0;
    }
    wakes++;
    REQUIREF(wait_fd(efd, WAKE_MS) == 1, "asleep %d s with burst %u.%u due (%ld requests received, %ld replies)",
             WAKE_MS / 1000, next_round, next_idx, received, replies);
    /* a wake-up that finds nothing is allowed (an edge whose message a previous drain took), not a fd that
     * stays readable: every spurious wake-up has its own event, at most a few per message */
    empty_wakes += got == 0;
    REQUIREF(empty_wakes <= received + replies + 200, "%ld wake-ups found nothing (%ld messages)", empty_wakes,
             received + replies);
  }
  REQUIRE(!have_held);
  long want = 0;
  for (int r = 0; r < rounds; r++) want += 1 + r % 8;
  CHECK_EQ(received, want);
  CHECK_EQ(next_round, (uint32_t)rounds);

  /* A request to the client, which dies of SIGKILL on it: the loop wakes with its FAILED notice. */
  burst_t *d = zc_eps_loan(s, sizeof *d);
  REQUIREF(d != NULL, "loan: %s", strerror(errno));
  memset(d, 0, sizeof *d);
  uint64_t id;
  REQUIREF(zc_eps_request(s, d, sizeof *d, T_DIE, &id) == 0, "request: %s", strerror(errno));
  int failed = 0;
  for (int i = 0; !failed; i++) {
    zc_svc_msg_t m;
    while (zc_eps_receive(s, &m, 0) == 0) {
      CHECKF(m.kind == ZC_SVC_FAILED && m.id == id && m.error == EPIPE, "kind %d id %llu error %d", m.kind,
             (unsigned long long)m.id, m.error);
      failed = 1;
      zc_eps_release(s, &m);
    }
    REQUIREF(errno == EAGAIN, "receive: %s", strerror(errno));
    if (failed) break;
    REQUIREF(wait_fd(efd, WAKE_MS) == 1, "no wake-up within %d s after the client died", WAKE_MS / 1000);
    REQUIREF(i < 100000, "the fd stays readable");
  }
  CHECK_EQ(reap(pid), 128 + SIGKILL);
  printf("svc: %ld requests in %d bursts, %ld wake-ups (%ld drained several messages, %ld found nothing); %ld "
         "held replies sent after their burst's signal (%ld from another thread); FAILED seen by the loop\n",
         received, rounds, wakes, multi, empty_wakes, taken, taken_from_thread);
  close(efd);
  zc_eps_close(s);
  CHECK_DONE("zmq_loop_svc");
}

/* ---- svc_conn: the connector's loop learns of its listener's death ---- */
static int server_main(void *arg) {
  int fd = *(int *)arg;
  zc_eps_t *s = zc_eps_listen(ANY_PORT, NULL);
  REQUIREF(s != NULL, "listen: %s", strerror(errno));
  pipe_send_str(fd, zc_eps_endpoint(s));
  for (;;) { /* echo until killed */
    zc_svc_msg_t m;
    if (zc_eps_receive(s, &m, -1) != 0) continue;
    if (m.kind != ZC_SVC_REQUEST) {
      zc_eps_release(s, &m);
      continue;
    }
    void *r = zc_eps_loan_reply(s, &m, m.len);
    if (r == NULL) {
      zc_eps_release(s, &m);
      continue;
    }
    memcpy(r, m.data, m.len);
    zc_eps_reply(s, &m, r, m.len, m.type);
  }
}

static int t_svc_conn(int argc, char **argv) {
  (void)argc, (void)argv;
  int pfd[2];
  REQUIRE(pipe(pfd) == 0);
  pid_t pid = ZSPAWN_POD(server_main, &pfd[1], pfd[1], -1);
  close(pfd[1]);
  char ep[256];
  pipe_recv_str(pfd[0], ep, sizeof ep);
  close(pfd[0]);
  zc_eps_config_t cfg = {.svc = {.connect_timeout_ms = PEER_MS}};
  zc_eps_t *c = zc_eps_connect(ep, &cfg);
  REQUIREF(c != NULL, "connect %s: %s", ep, strerror(errno));
  int efd = loop_fd(zc_eps_fd(c));
  /* one call through the loop: request, then wait on the fd for the reply */
  char *p = zc_eps_loan(c, 64);
  REQUIRE(p != NULL);
  fill_pattern(p, 64, 7);
  uint64_t id;
  REQUIRE(zc_eps_request(c, p, 64, 5, &id) == 0);
  int replied = 0;
  while (!replied) {
    zc_svc_msg_t m;
    while (zc_eps_receive(c, &m, 0) == 0) {
      CHECKF(m.kind == ZC_SVC_REPLY && m.id == id && m.len == 64 && verify_pattern(m.data, 64, 7) < 0, "kind %d len %u",
             m.kind, m.len);
      replied = 1;
      zc_eps_release(c, &m);
    }
    REQUIREF(errno == EAGAIN, "receive: %s", strerror(errno));
    if (!replied) REQUIREF(wait_fd(efd, WAKE_MS) == 1, "no wake-up for the reply within %d s", WAKE_MS / 1000);
  }
  kill(pid, SIGKILL);
  CHECK_EQ(reap(pid), 128 + SIGKILL);
  /* nothing outstanding: only the connection's end (monitor) and the end of the grace (timer) wake it */
  uint64_t t0 = now_ns();
  int err = 0;
  long wakes = 0;
  while (err != EPIPE) {
    zc_svc_msg_t m;
    REQUIREF(zc_eps_receive(c, &m, 0) != 0, "a message of kind %d after the server died", m.kind);
    err = errno;
    REQUIREF(err == EAGAIN || err == EPIPE, "receive: %s", strerror(err));
    if (err == EPIPE) break;
    REQUIREF(wait_fd(efd, WAKE_MS) == 1, "asleep %d s after the listener died, receive never said EPIPE",
             WAKE_MS / 1000);
    REQUIREF(++wakes < 100000, "the fd stays readable");
  }
  double ms = (now_ns() - t0) / 1e6;
  /* after EPIPE the fd is quiet again (the timer was read): a loop waiting for a reconnection sleeps */
  CHECK_EQ(wait_fd(efd, 300), 0);
  printf("svc_conn: EPIPE %.0f ms after the listener was killed, %ld wake-ups\n", ms, wakes);
  close(efd);
  zc_eps_close(c);
  CHECK_DONE("zmq_loop_svc_conn");
}

/* ---- pub: the publisher's loop sees subscribers join and die ---- */
static int sub_main(void *arg) {
  const char *ep = arg;
  zc_zmq_config_t cfg = {.chan = {.setup_timeout_ms = PEER_MS}};
  zc_ep_t *s = zc_ep_subscribe(ep, &cfg);
  REQUIREF(s != NULL, "subscribe %s: %s", ep, strerror(errno));
  for (;;) { /* until the publisher's goodbye, or a SIGKILL */
    zc_chan_msg_t m;
    if (zc_ep_receive(s, &m, PEER_MS) != 0) {
      REQUIREF(errno == EPIPE, "receive: %s", strerror(errno));
      break;
    }
    zc_ep_release(s, &m);
  }
  zc_ep_close(s);
  return 0;
}

static long published;

static void publish(zc_ep_pub_t *p) {
  char *q = zc_ep_pub_loan(p, 100);
  REQUIREF(q != NULL, "loan: %s", strerror(errno));
  memset(q, 'p', 100);
  REQUIREF(zc_ep_pub_send(p, q, 100, 1) >= 0, "send: %s", strerror(errno));
  published++;
}

/* Until `joined` reaches want: publish, accept(p, 0) until EAGAIN, sleep on the fd. */
static void await_joins(zc_ep_pub_t *p, int efd, int *joined, int want) {
  for (;;) {
    publish(p);
    while (zc_ep_pub_accept(p, 0) > 0) ++*joined;
    REQUIREF(errno == EAGAIN, "accept: %s", strerror(errno));
    if (*joined >= want) return;
    REQUIREF(wait_fd(efd, WAKE_MS) == 1, "asleep %d s with %d of %d subscribers accepted", WAKE_MS / 1000, *joined,
             want);
  }
}

static int t_pub(int argc, char **argv) {
  (void)argc, (void)argv;
  zc_zmq_config_t cfg = {.chan = {.policy = ZC_CHAN_FAIL}};
  zc_ep_pub_t *p = zc_ep_pub_listen(ANY_PORT, &cfg);
  REQUIREF(p != NULL, "listen: %s", strerror(errno));
  char ep[256];
  snprintf(ep, sizeof ep, "%s", zc_ep_pub_endpoint(p));
  int efd = loop_fd(zc_ep_pub_fd(p));
  int joined = 0;
  REQUIRE(zc_ep_pub_accept(p, 0) < 0 && errno == EAGAIN);
  pid_t pids[3];
  pids[0] = ZSPAWN_STR(sub_main, ep, -1, -1);
  await_joins(p, efd, &joined, 1);
  pids[1] = ZSPAWN_STR(sub_main, ep, -1, -1); /* two at once: their subscriptions may share an edge */
  pids[2] = ZSPAWN_STR(sub_main, ep, -1, -1);
  await_joins(p, efd, &joined, 3);
  CHECK_EQ(joined, 3);
  /* a subscriber killed: the loop wakes on the connection's end */
  kill(pids[0], SIGKILL);
  CHECK_EQ(reap(pids[0]), 128 + SIGKILL);
  for (long i = 0;; i++) {
    publish(p);
    while (zc_ep_pub_accept(p, 0) > 0) joined++;
    if (zc_ep_pub_subscribers(p) == 2) break;
    REQUIREF(wait_fd(efd, WAKE_MS) == 1, "asleep %d s after a subscriber was killed (%d subscribers counted)",
             WAKE_MS / 1000, zc_ep_pub_subscribers(p));
    REQUIREF(i < 100000, "the fd stays readable");
  }
  CHECK_EQ(joined, 3);
  zc_pub_stats_t st;
  zc_ep_pub_stats(p, &st);
  CHECK(st.left >= 1);
  printf("pub: 3 subscribers accepted and 1 death seen through the fd, %ld messages published in between\n",
         published);
  close(efd);
  zc_ep_pub_close(p); /* the goodbye: the live subscribers end with EPIPE */
  CHECK_EQ(reap(pids[1]), 0);
  CHECK_EQ(reap(pids[2]), 0);
  CHECK_DONE("zmq_loop_pub");
}

/* ---- space: back-pressure in an event loop (zc_eps_arm_space) ---- */
typedef struct sink_args_s {
  int fd, go; /* pipe: the endpoint goes to the parent; go: each byte from the parent allows `batch` reads */
  int hwm;
  long batch; /* 0: everything after the first byte */
} sink_args_t;

/* A listener that reads nothing until the parent's first byte, then `batch` messages per byte received,
 * and everything once the parent closed its end of `go`; until a T_BYE. */
static int sink_main(void *arg) {
  sink_args_t *a = arg;
  zc_eps_config_t cfg = {.svc = {.chan = {.ring_entries = (uint32_t)a->hwm}}};
  zc_eps_t *s = zc_eps_listen(ANY_PORT, &cfg);
  REQUIREF(s != NULL, "listen: %s", strerror(errno));
  pipe_send_str(a->fd, zc_eps_endpoint(s));
  long allowed = 0, got = 0;
  int open = 1;
  for (;;) {
    while (open && got >= allowed) {
      char c;
      ssize_t r = read(a->go, &c, 1);
      if (r == 1) allowed = a->batch > 0 ? allowed + a->batch : LONG_MAX;
      else if (r == 0) open = 0, allowed = LONG_MAX;
      else REQUIREF(errno == EINTR, "sink: read: %s", strerror(errno));
    }
    zc_svc_msg_t m;
    /* no deadline: the producer's pace is not under test (the child's alarm and the parent's death bound it) */
    REQUIREF(zc_eps_receive(s, &m, -1) == 0, "sink: receive: %s", strerror(errno));
    got++;
    int bye = m.kind == ZC_SVC_ONEWAY && m.type == T_BYE;
    REQUIREF(bye || verify_pattern(m.data, m.len, m.len) < 0, "sink: a message of %u bytes is damaged", m.len);
    zc_eps_release(s, &m);
    if (bye) break;
  }
  zc_eps_close(s);
  return 0;
}

/* Sends `total` messages of `size` bytes through the loop. The sink reads nothing until the client is
 * held (EAGAIN, then arm_space 0); every hold gives it total / 4 more messages to read, and it reads all
 * once the last message was sent. So the client is held at least twice whatever the pace of the two
 * processes: after the first hold the sink stops at total / 4 messages unless the client was held again
 * meanwhile, and the other 3/4 (at least 28 MiB) are more than the memory cap, or than the high-water
 * marks with the kernel's socket buffers (about 10 MiB on loopback), let through. With `take`, every
 * other time it is held after the first, the loop waits until the fd is readable (libzmq's room signal on
 * ZMQ_FD), then takes that signal inside libzmq with a receive(0) (as another thread's call on the socket
 * would): the fd must still wake it. (Not for the memory cap: there the wake-up is the library's own
 * eventfd, which a receive reads back by design; the rule is "a wake-up means retry".) With take 2, every
 * other time it is held after the first, once the fd is readable, another thread calls receive(0) twice
 * (the first may take libzmq's room signal and pass it on to the eventfd, the second reads that back):
 * the wake-up must be left for the loop's thread, for both causes. */
static void *other_receives(void *arg) {
  zc_eps_t *c = arg;
  for (int i = 0; i < 2; i++) {
    zc_svc_msg_t m;
    REQUIREF(zc_eps_receive(c, &m, 0) != 0 && errno == EAGAIN, "other thread: receive: %s", strerror(errno));
  }
  return NULL;
}

static void space_run(const char *what, zc_eps_config_t cfg, int sink_hwm, size_t size, int total, int take) {
  int pfd[2], go[2];
  REQUIRE(pipe(pfd) == 0 && pipe(go) == 0);
  REQUIRE(fcntl(go[1], F_SETFL, O_NONBLOCK) == 0); /* a full pipe: the sink has credit enough */
  sink_args_t sa = {pfd[1], go[0], sink_hwm, total / 4};
  pid_t pid = ZSPAWN_POD(sink_main, &sa, pfd[1], go[0]);
  close(pfd[1]);
  close(go[0]);
  char ep[256];
  pipe_recv_str(pfd[0], ep, sizeof ep);
  close(pfd[0]);
  cfg.svc.connect_timeout_ms = PEER_MS;
  zc_eps_t *c = zc_eps_connect(ep, &cfg);
  REQUIREF(c != NULL, "connect: %s", strerror(errno));
  int efd = loop_fd(zc_eps_fd(c));
  int sent = 0, armed = 0, taken = 0;
  char *p = NULL;
  uint64_t retry_t0 = 0; /* the start of a run of "retry now" answers */
  while (sent < total) {
    if (p == NULL) p = zc_eps_loan(c, size);
    if (p != NULL) {
      fill_pattern(p, size, size);
      if (zc_eps_send(c, p, size, 1) == 0) {
        p = NULL;
        sent++;
        retry_t0 = 0;
        continue;
      }
    }
    REQUIREF(errno == EAGAIN, "%s: %s %d: %s", what, p == NULL ? "loan" : "send", sent, strerror(errno));
    int r = zc_eps_arm_space(c);
    REQUIREF(r >= 0, "%s: arm_space: %s", what, strerror(errno));
    if (r == 1) { /* a spin: arm_space says retry while loan or send say EAGAIN */
      if (retry_t0 == 0) retry_t0 = now_ns();
      REQUIREF(now_ns() - retry_t0 < 60000000000ull, "%s: arm_space says retry for 60 s", what);
      continue;
    }
    retry_t0 = 0;
    armed++;
    REQUIRE(write(go[1], "g", 1) == 1 || errno == EAGAIN); /* the sink may read total / 4 more */
    if (take == 2 && armed > 1 && armed % 2 == 0) {
      REQUIREF(wait_fd(efd, WAKE_MS) == 1, "%s: no wake-up within %d s after %d messages", what, WAKE_MS / 1000, sent);
      pthread_t t;
      REQUIRE(pthread_create(&t, NULL, other_receives, c) == 0);
      pthread_join(t, NULL);
      taken++;
    } else if (take && armed > 1 && armed % 2 == 0) {
      REQUIREF(wait_fd(efd, WAKE_MS) == 1, "%s: no wake-up within %d s after %d messages", what, WAKE_MS / 1000, sent);
      sleep_ms(3); /* libzmq's command throttle */
      zc_svc_msg_t m;
      REQUIREF(zc_eps_receive(c, &m, 0) != 0 && errno == EAGAIN, "%s: receive: %s", what, strerror(errno));
      taken++;
    }
    REQUIREF(wait_fd(efd, WAKE_MS) == 1, "%s: held and asleep %d s after %d messages (armed %d times%s)", what,
             WAKE_MS / 1000, sent, armed, take == 2 && armed > 1 && armed % 2 == 0 ? ", another thread's receives "
             "came after the wake-up" : "");
    zc_svc_msg_t m;
    while (zc_eps_receive(c, &m, 0) == 0) zc_eps_release(c, &m); /* the rule after a wake-up */
    REQUIREF(errno == EAGAIN, "%s: receive: %s", what, strerror(errno));
  }
  close(go[1]); /* the sink reads everything now */
  void *b = NULL;
  REQUIREF(WAIT_UNTIL((b = zc_eps_loan(c, 8)) != NULL, PEER_MS), "%s: loan for the goodbye: %s", what,
           strerror(errno));
  REQUIREF(WAIT_UNTIL(zc_eps_send(c, b, 8, T_BYE) == 0, PEER_MS), "%s: goodbye: %s", what, strerror(errno));
  CHECK_EQ(reap(pid), 0);
  /* Held twice for certain (above); with take, the room signal was taken before a wait at least once. */
  CHECKF(armed >= 2 && (!take || taken >= 1), "%s: armed %d times, room signal taken %d times", what, armed, taken);
  printf("space (%s): %d messages of %zu bytes, held and armed %d times (%d with the room signal taken "
         "before the wait)\n", what, total, size, armed, taken);
  close(efd);
  zc_eps_close(c);
}

static int t_space(int argc, char **argv) {
  int q = quick_mode(argc, argv);
  /* the high-water mark: 2 messages each side, 256 KiB each (the kernel's socket buffers come on top) */
  zc_eps_config_t hwm = {.svc = {.chan = {.policy = ZC_CHAN_FAIL, .ring_entries = 2}}};
  space_run("high-water mark", hwm, 2, 256 * 1024, q ? 150 : 400, 1);
  /* the memory cap: 4 MiB loaned or held by libzmq, 1 MiB messages, the sink's libzmq holding 2 */
  zc_eps_config_t mem = {.svc = {.chan = {.policy = ZC_CHAN_FAIL, .max_bytes = 4u << 20}}};
  space_run("memory cap", mem, 2, 1u << 20, q ? 60 : 150, 0);
  CHECK_DONE("zmq_loop_space");
}

static int t_space_other(int argc, char **argv) {
  int q = quick_mode(argc, argv);
  zc_eps_config_t hwm = {.svc = {.chan = {.policy = ZC_CHAN_FAIL, .ring_entries = 2}}};
  space_run("high-water mark, another thread's receives", hwm, 2, 256 * 1024, q ? 150 : 400, 2);
  zc_eps_config_t mem = {.svc = {.chan = {.policy = ZC_CHAN_FAIL, .max_bytes = 4u << 20}}};
  space_run("memory cap, another thread's receives", mem, 2, 1u << 20, q ? 60 : 150, 2);
  CHECK_DONE("zmq_loop_space_other");
}

/* ---- svc_block: the high-water mark under ZC_CHAN_BLOCK on the services: send waits, then ETIMEDOUT, the
 * loan stays with the caller; once the listener reads, sends go through ---- */
static int t_svc_block(int argc, char **argv) {
  (void)argc, (void)argv;
  int pfd[2], go[2];
  REQUIRE(pipe(pfd) == 0 && pipe(go) == 0);
  sink_args_t sa = {pfd[1], go[0], 2, 0};
  pid_t pid = ZSPAWN_POD(sink_main, &sa, pfd[1], go[0]);
  close(pfd[1]);
  close(go[0]);
  char ep[256];
  pipe_recv_str(pfd[0], ep, sizeof ep);
  close(pfd[0]);
  zc_eps_config_t cfg = {.svc = {.chan = {.policy = ZC_CHAN_BLOCK, .block_timeout_ms = 200, .ring_entries = 2},
                                 .connect_timeout_ms = PEER_MS}};
  zc_eps_t *c = zc_eps_connect(ep, &cfg);
  REQUIREF(c != NULL, "connect: %s", strerror(errno));
  size_t size = 256 * 1024;
  int sent = 0;
  double ms = 0;
  for (;;) { /* until the peer's queue, its kernel buffers and libzmq's pipes are full */
    char *p = zc_eps_loan(c, size);
    REQUIREF(p != NULL, "loan: %s", strerror(errno));
    fill_pattern(p, size, size);
    uint64_t t0 = now_ns();
    if (zc_eps_send(c, p, size, 1) == 0) {
      REQUIREF(++sent < 100000, "%d messages of 256 KiB went to a listener that reads nothing", sent);
      continue;
    }
    ms = (now_ns() - t0) / 1e6;
    REQUIREF(errno == ETIMEDOUT, "send %d: %s", sent, strerror(errno));
    CHECKF(ms >= 150, "ETIMEDOUT after %.0f ms of a 200 ms timeout", ms);
    CHECKF(zc_eps_cancel(c, p) == 0, "the loan was not kept after ETIMEDOUT: %s", strerror(errno));
    break;
  }
  REQUIRE(write(go[1], "g", 1) == 1);
  for (int i = 0; i < 50; i++) { /* now the listener reads: each send waits at most until there is room */
    char *p = zc_eps_loan(c, size);
    REQUIREF(p != NULL, "loan: %s", strerror(errno));
    fill_pattern(p, size, size);
    int rc;
    uint64_t t0 = now_ns();
    while ((rc = zc_eps_send(c, p, size, 1)) != 0 && errno == ETIMEDOUT) /* a loaded machine: the loan */
      REQUIREF(now_ns() - t0 < PEER_MS * 1000000ull, "send: no room for %d s", PEER_MS / 1000); /* ours: again */
    REQUIREF(rc == 0, "send after the listener started reading: %s", strerror(errno));
  }
  void *b = zc_eps_loan(c, 8);
  REQUIRE(b != NULL);
  uint64_t t0 = now_ns();
  int rc; /* each try waits 200 ms for room: the listener's pace, not under test here */
  while ((rc = zc_eps_send(c, b, 8, T_BYE)) != 0 && errno == ETIMEDOUT && now_ns() - t0 < PEER_MS * 1000000ull) {
  }
  REQUIREF(rc == 0, "bye: %s", strerror(errno));
  CHECK_EQ(reap(pid), 0);
  printf("svc_block: %d messages of 256 KiB before a send timed out (%.0f ms of 200), then 50 more\n", sent, ms);
  close(go[1]);
  zc_eps_close(c);
  CHECK_DONE("zmq_loop_svc_block");
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"svc", t_svc}, {"svc_conn", t_svc_conn}, {"pub", t_pub}, {"space", t_space}, {"space_other", t_space_other},
                                    {"svc_block", t_svc_block},
                                    {NULL, NULL}};
  zspawn_main(argc, argv); /* a child started by ZSPAWN runs its function here and exits */
  return zc_run_case(argc, argv, cases);
}
