/* Channel services, back-pressure for event loops when another thread receives (zc_svc_arm_space).
 *
 * A loop thread L fills a connection (ZC_CHAN_FAIL, 64-entry ring) to a peer process that takes nothing
 * until told, gets EAGAIN, calls zc_svc_arm_space (0: armed) and then sleeps on zc_svc_fd. The peer takes
 * one message: its channel writes the space wake-up, and zc_svc_fd becomes readable. Every other round,
 * *another* thread R of the same process then calls zc_svc_receive(s, &m, 0) twice (EAGAIN: nothing is
 * sent to this side) before L waits on the fd again: the window of a loop thread still on its way out of
 * epoll_wait when the receiving thread runs, made as wide as it gets (R's receives run to completion
 * inside it; no library hook, no sleep: each step waits on the condition the previous one makes true).
 * The wake-up is L's: zc_svc_fd must still be readable for L (within 20 s), L's retry must succeed, and
 * afterwards the fd must be quiet (the wake-up was taken back by L's own send, not left to spin a loop).
 * In the other rounds L receives itself (the single-threaded loop of svc_space): its receive reads the
 * wake-up and the fd is quiet at once.
 *
 *   other           this process connects (zc_svc_connect); the peer is the listener
 *   other_listener  this process listens (zc_svc_listen) with the peer as its one connection
 *
 * At the end the peer takes the rest and checks that every message arrived once, in order, intact.
 * When this process listens (other_listener, other_death_listener, other_join), ZC_DEBUG builds force the
 * set-up's race (the peer's hello sent into the connection's arm, after its flag: answered by a message
 * found and a kick sent; see force_setup), and the fd must be quiet after the first drain. The endpoint's
 * check_ms is 10 minutes: every look at its epoll set is one a receive makes because it took nothing, so
 * a record a drain leaves unread shows. Each "fd quiet" check names what is readable if it fails.
 * Before the fix (docs/channel.md, "Back-pressure for event loops"), R's receive read the wake-up record
 * from the connection's socket (svc_check's zc_chan_collect) and L slept with room there.
 * Usage: test_svc_space_other <name>. */
#include "svc_test.h" /* svc_fd_why: what makes zc_svc_fd readable, for the failure messages */

#include <poll.h>
#include <pthread.h>
#include <sched.h>

#define PEER_MS 60000 /* a wait on the other process that is not what is tested */
#define WAKE_MS 20000 /* a wait for a wake-up that must come */
#define ROUNDS 24
#define MSG_LEN 1000u
#define T_HELLO 1u
#define T_DATA 2u
#define T_END 3u

/* Shared with the peer process (MAP_SHARED, set up before fork). */
typedef struct {
  int joined;   /* peer: the connection is open on its side */
  int take_to;  /* parent: the peer may take messages until it has taken this many (INT32_MAX: all) */
  int taken;    /* peer: messages taken and released so far */
  int failed;   /* either side failed: the other stops waiting */
  int gated;    /* parent: a connecting peer waits for hello_go before its hello (forced set-up) */
  int hello_go; /* parent: the peer may send its hello now */
  char name[64];
} shared_t;
static shared_t *sh;
static char why[1024]; /* svc_fd_why's answer, for a failure message */

static int ld(const int *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static void st(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

/* Until *p >= v, the other side failed, or ms passed: 1 if reached (short sleeps: 2 shared cores). */
static int wait_ge(const int *p, int v, int ms) { return zc_wait_ge(p, v, &sh->failed, ms, 200); }

static int readable(int fd, int ms) {
  struct pollfd pf = {fd, POLLIN, 0};
  int n;
  while ((n = poll(&pf, 1, ms)) < 0 && errno == EINTR) {
  }
  return n == 1;
}

static zc_svc_config_t config(void) {
  zc_svc_config_t c;
  memset(&c, 0, sizeof c);
  c.chan.policy = ZC_CHAN_FAIL;
  c.chan.ring_entries = 64;
  c.connect_timeout_ms = PEER_MS;
  return c;
}

#define PEER_FAIL(...)                                                                              \
  do {                                                                                              \
    st(&sh->failed, 1);                                                                             \
    fprintf(stderr, "%s:%d: peer: ", __FILE__, __LINE__);                                           \
    fprintf(stderr, __VA_ARGS__);                                                                   \
    fputc('\n', stderr);                                                                            \
    return 1;                                                                                       \
  } while (0)

/* ---- the peer process: takes one message per command, then the rest; checks each ---- */
static int peer_main(void *arg) {
  int listener = arg != NULL; /* the peer listens when the parent connects */
  zc_svc_config_t cfg = config();
  cfg.chan.policy = ZC_CHAN_BLOCK;
  zc_svc_t *s = listener ? zc_svc_listen(sh->name, &cfg) : zc_svc_connect(sh->name, &cfg);
  if (s == NULL) PEER_FAIL("%s: %s", listener ? "listen" : "connect", strerror(errno));
  zc_svc_msg_t m;
  if (!listener) { /* say hello: the parent, a listener, accepts us inside its receive */
    if (ld(&sh->gated) && !wait_ge(&sh->hello_go, 1, PEER_MS * 3)) PEER_FAIL("the parent never let us say hello");
    char *p = zc_svc_loan(s, 16);
    if (p == NULL || zc_svc_send(s, p, 16, T_HELLO) != 0) PEER_FAIL("hello: %s", strerror(errno));
  } else { /* the parent's hello: accepted here */
    if (zc_svc_receive(s, &m, PEER_MS) != 0) PEER_FAIL("the parent's hello: %s", strerror(errno));
    if (m.kind != ZC_SVC_ONEWAY || m.type != T_HELLO) PEER_FAIL("hello: kind %d type %u", m.kind, m.type);
    zc_svc_release(s, &m);
  }
  st(&sh->joined, 1);
  uint32_t next = 0; /* sequence number of the next data message */
  for (;;) {
    if (!wait_ge(&sh->take_to, ld(&sh->taken) + 1, PEER_MS * 3))
      PEER_FAIL("no command to take message %d%s", ld(&sh->taken) + 1, ld(&sh->failed) ? " (the parent failed)" : "");
    if (zc_svc_receive(s, &m, PEER_MS) != 0) PEER_FAIL("receive of message %u: %s", next, strerror(errno));
    if (m.kind != ZC_SVC_ONEWAY) PEER_FAIL("message %u: kind %d", next, m.kind);
    uint32_t type = m.type, len = m.len, seq = UINT32_MAX;
    if (type == T_DATA && len == MSG_LEN) memcpy(&seq, m.data, 4);
    int body = type == T_DATA && len == MSG_LEN && seq == next && verify_pattern((const char *)m.data + 4, MSG_LEN - 4, seq) < 0;
    zc_svc_release(s, &m);
    if (type == T_END) {
      if (len != 4 || next == 0) PEER_FAIL("end after %u messages (len %u)", next, len);
      printf("peer: %u messages, each once, in order, intact\n", next);
      break;
    }
    if (!body) PEER_FAIL("message %u: type %u, len %u, sequence %u, or its bytes wrong", next, type, len, seq);
    next++;
    st(&sh->taken, ld(&sh->taken) + 1);
  }
  zc_svc_close(s);
  return 0;
}

/* ---- the forced set-up (builds with test points): the hello's wake-up record arrives after all ----
 * When this process listens, the receive that accepts the peer arms the connection's in-channel before the
 * hello is there. The hook stops that arm after it announced itself (CHAN_ARMED) and before its second look,
 * and lets the peer send its hello only then: the peer's send sees the flag and kicks, and the arm's second
 * look finds the hello too (it says 1: take it). The kick is in the socket before the hello is taken, and
 * before the first drain (the peer says joined after its send returned): that drain must read it, or
 * zc_svc_fd stays readable with nothing to do. Without test points the same set-up runs unforced. */
extern void zc_chan_test_hook(void (*fn)(int point)) __attribute__((weak));
static int have_hooks(void) { return zc_chan_test_hook != NULL; }
static int hook_hits, hook_xfd;
static void setup_hook(int point) {
  if (point != CHAN_TP_ARMED || ld(&hook_hits) != 0) return;
  /* A record still unread in the connection's socket (its first segment's, which can come after the
   * channel opened) would stop the peer's kick (at most one record unread): then this arm goes on, and the
   * epoll look that reads the record arms again */
  char b;
  int in = svc_inner_member(hook_xfd, 0); /* connection 0's in-channel socket */
  if (in < 0 || recv(in, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0) return;
  st(&hook_hits, 1);
  st(&sh->hello_go, 1);                 /* the peer says hello now, into an armed channel ... */
  wait_ge(&sh->joined, 1, PEER_MS * 2); /* ... and the arm looks again only once its send returned */
}
/* Before the peer is spawned (a connecting peer, this process listening): force if we can. */
static void force_setup(zc_svc_t *s) {
  if (!have_hooks()) {
    st(&sh->hello_go, 1);
    return;
  }
  hook_xfd = zc_svc_fd(s);
  st(&sh->gated, 1);
  zc_chan_test_hook(setup_hook);
}
/* After the first drain: the hook is done; it must have stopped the arm once. */
static void force_done(void) {
  if (!have_hooks()) return;
  zc_chan_test_hook(NULL);
  CHECKF(ld(&hook_hits) >= 1, "the forced set-up: the arm's test point was never reached");
}

/* ---- the other thread R: receives when told ---- */
static zc_svc_t *svc;
static int r_cmd, r_done, r_bad; /* R: receives for command r_cmd, then r_done = r_cmd; r_bad: a surprise */
enum { R_TWICE = 0, R_TWICE_DEAD = 1, R_JOIN = 2 };
static int r_job; /* R_TWICE: two receives, each EAGAIN (nothing comes to this side); R_TWICE_DEAD: EAGAIN or
                     EPIPE (the peer was killed); R_JOIN: until a connection is open and its hello was taken */

static void *r_main(void *arg) {
  (void)arg;
  for (int done = 0;;) {
    int c;
    while ((c = ld(&r_cmd)) == done) usleep(200); /* the next command (the parent always gives one) */
    if (c < 0) return NULL;
    zc_svc_msg_t m;
    if (ld(&r_job) == R_JOIN) { /* accepts the joiner (inside receive), takes its hello, then EAGAIN */
      int hello = 0;
      for (uint64_t end = now_ms() + PEER_MS; now_ms() < end;) {
        if (zc_svc_receive(svc, &m, 0) == 0) {
          if (m.kind != ZC_SVC_ONEWAY || m.type != T_HELLO) st(&r_bad, 1);
          hello = 1;
          zc_svc_release(svc, &m);
          continue;
        }
        if (errno != EAGAIN) st(&r_bad, 1);
        if (hello && zc_svc_peers(svc) == 1) break;
        usleep(200);
      }
      if (!hello) st(&r_bad, 1);
    } else {
      for (int k = 0; k < 2; k++)
        if (zc_svc_receive(svc, &m, 0) == 0 || (errno != EAGAIN && !(ld(&r_job) == R_TWICE_DEAD && errno == EPIPE)))
          st(&r_bad, 1);
    }
    st(&r_done, done = c);
  }
}

/* R does its job now; L waits until it is done. */
static void r_run(int job, int cmd) {
  st(&r_job, job);
  st(&r_cmd, cmd);
  REQUIREF(wait_ge(&r_done, cmd, PEER_MS * 2), "command %d: the receiving thread never finished", cmd);
  CHECKF(!ld(&r_bad), "command %d: the other thread's zc_svc_receive(.., 0) said something else than expected", cmd);
}

/* Send the loan *p (message seq); on EAGAIN the loan stays at *p. 0 sent, 1 EAGAIN, -1 other error. */
static int send_one(zc_svc_t *s, char **p, uint32_t seq) {
  if (*p == NULL) {
    *p = zc_svc_loan(s, MSG_LEN);
    if (*p == NULL) return errno == EAGAIN ? 1 : -1;
    memcpy(*p, &seq, 4);
    fill_pattern(*p + 4, MSG_LEN - 4, seq);
  }
  if (zc_svc_send(s, *p, MSG_LEN, T_DATA) == 0) {
    *p = NULL;
    return 0;
  }
  return errno == EAGAIN ? 1 : -1;
}

/* death: after 4 rounds the peer is SIGKILLed while L is armed; R's receive marks the connection dead
 * (its fds leave the set): L must still be woken, and its retry fails with EPIPE. */
static int t_other(int listen_here, int death) {
  sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  REQUIRE(sh != MAP_FAILED);
  snprintf(sh->name, sizeof sh->name, "svcso.%d.%d", (int)getpid(), listen_here);
  zc_svc_config_t cfg = config();
  cfg.check_ms = 600000; /* no periodic look (it would hide a record a drain left unread): every look is a drain's */
  zc_svc_t *s = NULL;
  if (listen_here) REQUIREF((s = zc_svc_listen(sh->name, &cfg)) != NULL, "listen: %s", strerror(errno));
  if (listen_here) force_setup(s);
  pid_t peer = spawn_closefds(peer_main, listen_here ? NULL : (void *)1, -1, -1);
  zc_svc_msg_t m;
  if (listen_here) { /* accept the peer: its hello */
    REQUIREF(zc_svc_receive(s, &m, PEER_MS) == 0, "the peer's hello: %s", strerror(errno));
    REQUIRE(m.kind == ZC_SVC_ONEWAY && m.type == T_HELLO);
    zc_svc_release(s, &m);
  } else {
    REQUIREF((s = zc_svc_connect(sh->name, &cfg)) != NULL, "connect: %s", strerror(errno));
    char *p = zc_svc_loan(s, 16);
    REQUIRE(p != NULL && zc_svc_send(s, p, 16, T_HELLO) == 0);
  }
  REQUIREF(wait_ge(&sh->joined, 1, PEER_MS), "the peer never joined");
  CHECK(zc_svc_receive(s, &m, 0) == -1 && errno == EAGAIN); /* as an event loop starts: reads the set-up records */
  /* the peer is idle from here until told: after a drain that said EAGAIN nothing is left to do */
  CHECKF(!readable(zc_svc_fd(s), 0), "zc_svc_fd readable after the first drain said EAGAIN (the set-up left "
         "something unread; the peer is idle): %s", svc_fd_why(zc_svc_fd(s), why, sizeof why));
  if (listen_here) force_done();
  svc = s;
  pthread_t r;
  REQUIRE(pthread_create(&r, NULL, r_main, NULL) == 0);
  int fd = zc_svc_fd(s), retries = 0, others = 0;
  uint32_t seq = 0;
  char *p = NULL;
  int rounds = death ? 5 : ROUNDS;
  for (int round = 0; round < rounds && !ld(&sh->failed); round++) {
    int v;
    for (;;) { /* fill the connection (the peer takes nothing now), then arm; 1: room came back meanwhile */
      while ((v = send_one(s, &p, seq)) == 0) REQUIREF(++seq < 100000, "the connection never fills");
      REQUIREF(v == 1, "round %d: send %u: %s", round, seq, strerror(errno));
      if ((v = zc_svc_arm_space(s)) != 1) break;
      retries++;
    }
    REQUIREF(v == 0, "round %d: arm_space: %s", round, strerror(errno));
    CHECKF(!readable(fd, 0), "round %d: zc_svc_fd readable right after arm_space said 0 (nothing moved): %s", round,
           svc_fd_why(fd, why, sizeof why));
    if (death && round == rounds - 1) { /* the peer dies instead of taking */
      REQUIRE(kill(peer, SIGKILL) == 0);
      int rc = reap(peer);
      CHECKF(rc == 128 + SIGKILL, "the peer exited with %d", rc);
      REQUIREF(readable(fd, WAKE_MS), "zc_svc_fd not readable %d s after the peer's death", WAKE_MS / 1000);
      r_run(R_TWICE_DEAD, round + 1);
      REQUIREF(readable(fd, WAKE_MS), "lost wake-up: zc_svc_fd quiet for %d s after another thread's zc_svc_receive "
               "saw the connection die while this thread was armed", WAKE_MS / 1000);
      CHECKF(zc_svc_send(s, p, MSG_LEN, T_DATA) == -1 && errno == EPIPE, "the retry after the death: %s",
             strerror(errno));
      CHECK(zc_svc_cancel(s, p) == 0);
      CHECKF(!readable(fd, 0), "zc_svc_fd still readable after the arming thread's retry took its wake-up: %s",
             svc_fd_why(fd, why, sizeof why));
      if (listen_here) CHECK(zc_svc_arm_space(s) == 0); /* no connection: a join wakes the fd */
      else CHECKF(zc_svc_arm_space(s) == -1 && errno == EPIPE, "arm_space after the death: %s", strerror(errno));
      st(&r_cmd, -1);
      pthread_join(r, NULL);
      printf("%s: %d rounds, then the peer's death woke the armed thread\n", listen_here ? "listener" : "connector", rounds);
      zc_svc_close(s);
      return check_exit(listen_here ? "svc_space_other_death_listener" : "svc_space_other_death");
    }
    /* the peer takes one message: its channel writes L's wake-up */
    int took = ld(&sh->taken);
    st(&sh->take_to, took + 1);
    REQUIREF(readable(fd, WAKE_MS), "round %d: zc_svc_fd not readable %d s after the peer was told to take "
             "message %d (peer took %d)", round, WAKE_MS / 1000, took + 1, ld(&sh->taken));
    if (round % 2 == 0) { /* another thread receives before L, woken, gets back to the fd */
      r_run(R_TWICE, round + 1);
      REQUIREF(readable(fd, WAKE_MS), "round %d: lost space wake-up: zc_svc_fd quiet for %d s after another "
               "thread's zc_svc_receive, with room there (the peer took message %d)", round, WAKE_MS / 1000, took + 1);
      others++;
    } else { /* L is the receiving thread too: its receive reads the wake-up */
      CHECK(zc_svc_receive(s, &m, 0) == -1 && errno == EAGAIN);
      CHECKF(!readable(fd, 0), "round %d: zc_svc_fd still readable after the arming thread's own receive: %s", round,
             svc_fd_why(fd, why, sizeof why));
    }
    REQUIREF(wait_ge(&sh->taken, took + 1, PEER_MS), "round %d: the peer never took message %d", round, took + 1);
    v = send_one(s, &p, seq); /* the retry the wake-up asked for: the peer made room */
    REQUIREF(v == 0, "round %d: send %u after the wake-up: %s", round, seq, v > 0 ? "EAGAIN" : strerror(errno));
    seq++;
    CHECKF(!readable(fd, 0), "round %d: zc_svc_fd still readable after the arming thread's send took its "
           "wake-up (an event loop would spin): %s", round, svc_fd_why(fd, why, sizeof why));
  }
  st(&r_cmd, -1);
  pthread_join(r, NULL);
  /* the rest: the peer takes everything, the end marker last */
  st(&sh->take_to, INT32_MAX);
  for (;;) {
    int v = send_one(s, &p, seq);
    if (v == 0) {
      seq++;
      break;
    }
    REQUIREF(v == 1 && !ld(&sh->failed), "last send: %s", strerror(errno));
    usleep(1000);
  }
  char *e = NULL;
  for (uint64_t end = now_ms() + PEER_MS;;) {
    if (e == NULL) e = zc_svc_loan(s, 4);
    if (e != NULL && zc_svc_send(s, e, 4, T_END) == 0) break;
    REQUIREF(errno == EAGAIN && now_ms() < end && !ld(&sh->failed), "end marker: %s", strerror(errno));
    usleep(1000);
  }
  int rc = reap(peer);
  CHECKF(rc == 0, "the peer exited with %d", rc);
  CHECKF(ld(&sh->taken) == (int)seq, "the peer took %d data messages, %u were sent", ld(&sh->taken), seq);
  printf("%s: %d rounds (%d with another thread's receive in L's window), %u messages, %d arm retries\n",
         listen_here ? "listener" : "connector", ROUNDS, others, seq, retries);
  zc_svc_close(s);
  return check_exit(listen_here ? "svc_space_other_listener" : "svc_space_other");
}

/* join: a listener with no connection arms (0: a join wakes the fd); a peer connects; another thread's
 * receive accepts it (and takes its hello) before L gets back to the fd: L must still be woken, and its
 * loan then succeeds on the new connection. */
static int t_join(int argc, char **argv) {
  (void)argc;
  (void)argv;
  sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  REQUIRE(sh != MAP_FAILED);
  snprintf(sh->name, sizeof sh->name, "svcso.%d.join", (int)getpid());
  zc_svc_config_t cfg = config();
  cfg.check_ms = 600000; /* as in t_other */
  zc_svc_t *s = zc_svc_listen(sh->name, &cfg);
  REQUIREF(s != NULL, "listen: %s", strerror(errno));
  svc = s;
  pthread_t r;
  REQUIRE(pthread_create(&r, NULL, r_main, NULL) == 0);
  int fd = zc_svc_fd(s);
  char *p = zc_svc_loan(s, MSG_LEN);
  CHECKF(p == NULL && errno == EAGAIN, "a loan with no connection: %s", p ? "granted" : strerror(errno));
  CHECK(zc_svc_arm_space(s) == 0); /* armed: a join wakes the fd */
  CHECKF(!readable(fd, 0), "zc_svc_fd readable after arm_space said 0 with no connection: %s", svc_fd_why(fd, why, sizeof why));
  force_setup(s); /* the hello's wake-up record is due when R's receive takes the hello */
  pid_t peer = spawn_closefds(peer_main, NULL, -1, -1); /* connects and says hello */
  REQUIREF(readable(fd, WAKE_MS), "zc_svc_fd not readable %d s after the peer was started", WAKE_MS / 1000);
  r_run(R_JOIN, 1); /* the join is accepted by the other thread */
  force_done();
  REQUIREF(readable(fd, WAKE_MS), "lost wake-up: zc_svc_fd quiet for %d s after another thread's zc_svc_receive "
           "accepted a connection while this thread was armed", WAKE_MS / 1000);
  uint32_t seq = 0;
  REQUIREF(send_one(s, &p, seq) == 0, "the retry after the join: %s", strerror(errno));
  CHECKF(!readable(fd, 0), "zc_svc_fd still readable after the arming thread's retry took its wake-up: %s",
         svc_fd_why(fd, why, sizeof why));
  st(&r_cmd, -1);
  pthread_join(r, NULL);
  st(&sh->take_to, INT32_MAX);
  char *e = zc_svc_loan(s, 4);
  REQUIREF(e != NULL && zc_svc_send(s, e, 4, T_END) == 0, "end marker: %s", strerror(errno));
  int rc = reap(peer);
  CHECKF(rc == 0, "the peer exited with %d", rc);
  CHECK(ld(&sh->taken) == 1);
  zc_svc_close(s);
  CHECK_DONE("svc_space_other_join");
}

static int t_connector(int argc, char **argv) {
  (void)argc;
  (void)argv;
  return t_other(0, 0);
}
static int t_listener(int argc, char **argv) {
  (void)argc;
  (void)argv;
  return t_other(1, 0);
}
static int t_death(int argc, char **argv) {
  (void)argc;
  (void)argv;
  return t_other(0, 1);
}
static int t_death_listener(int argc, char **argv) {
  (void)argc;
  (void)argv;
  return t_other(1, 1);
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"other", t_connector}, {"other_listener", t_listener}, {"other_death", t_death},
                                    {"other_death_listener", t_death_listener}, {"other_join", t_join}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
