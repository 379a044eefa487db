/* Fan-out for event loops and by name (zc_pub_event_fd, zc_pub_arm_space, zc_pub_listen_name,
 * zc_pub_subscribe): subscriber processes are ordinary consumers.
 *
 *   pubev_name      a publisher listening by name; a subscriber process opens it by name (zc_pub_subscribe)
 *                   and receives 200 messages byte-exact; nothing of the name is in the file system
 *   pubev_uid       the peer-credential check both ways: a publisher admitting only another uid refuses
 *                   the subscriber (EACCES, nobody joins); a subscriber admitting only another uid refuses
 *                   the publisher (EACCES)
 *   pubev_space     ZC_CHAN_FAIL, a subscriber that reads nothing until told: the publisher fills its ring
 *                   (EAGAIN), zc_pub_arm_space gives 0 and the event fd stays quiet for 200 ms; the
 *                   subscriber then takes and releases everything: the event fd becomes readable, and after
 *                   zc_pub_collect the send goes through. Memory too: a subscriber holding every message
 *                   (loan EAGAIN) wakes the fd when it releases
 *   pubev_kill      of two subscribers, one is SIGKILLed: the event fd becomes readable without arming,
 *                   zc_pub_collect drops it, and the fd is quiet again (the dead link left the epoll set)
 *   pubev_level     the event fd is level-triggered: a joiner keeps it readable until zc_pub_arm_space (or
 *                   zc_pub_collect) accepts it; a wake-up after arming keeps it readable through a successful
 *                   retried send (loan and send never read it) until zc_pub_collect reads it
 *   pubev_restart   reconnect after the publisher restarts: a publisher process on a name sends 50 messages
 *                   and is SIGKILLed; the subscriber receives all 50, then EPIPE; subscribing now fails with
 *                   ECONNREFUSED (the name went with the process); a new publisher process binds the same
 *                   name at once, the subscriber subscribes again (retrying while ECONNREFUSED) and
 *                   receives its 50 messages byte-exact
 *   pubev_hostile   a subscriber that writes garbage records on its socket (the only thing of the
 *                   publisher's it can write besides its rings): the fd wakes, zc_pub_collect cuts it off
 *                   alone (cut_off 1), the fd is quiet again, and the honest subscriber gets every message
 */
#include "pub_test.h"

#include "zcmem_channel.h"

#include <poll.h>
#include <sys/socket.h>

static int readable(int fd, int timeout_ms) {
  struct pollfd p = {fd, POLLIN, 0};
  int r = poll(&p, 1, timeout_ms);
  return r == 1 && (p.revents & POLLIN);
}

static void ctl_put(int fd, char c) { CHECK(write(fd, &c, 1) == 1); }
static char ctl_get(int fd) {
  char c = 0;
  if (read(fd, &c, 1) != 1) return 0;
  return c;
}

static uint64_t seed_of(uint32_t seq) { return (uint64_t)seq * 0x9e3779b1u + 11u; }
static uint32_t len_of(uint32_t seq) { return 1u + (uint32_t)(splitmix64(seq) % 3000u); }

static void send_one(zc_pub_t *p, uint32_t seq) {
  uint32_t len = len_of(seq);
  void *q = zc_pub_loan(p, len);
  REQUIREF(q != NULL, "loan %u: %s (%s)", seq, strerror(errno), zc_pub_error(p));
  fill_pattern(q, len, seed_of(seq));
  REQUIREF(zc_pub_send(p, q, len, seq) >= 1, "send %u: %s (%s)", seq, strerror(errno), zc_pub_error(p));
}

/* Receive messages first..first+n-1 in order, byte-exact, releasing each. */
static int receive_range(zc_chan_t *ch, uint32_t first, uint32_t n) {
  for (uint32_t k = 0; k < n; k++) {
    zc_chan_msg_t m;
    REQUIREF(zc_chan_receive(ch, &m, -1) == 0, "receive %u: %s (%s)", first + k, strerror(errno), zc_chan_error(ch));
    REQUIREF(m.type == first + k && m.len == len_of(m.type), "message %u: type %u len %u", first + k, m.type, m.len);
    REQUIREF(verify_pattern(m.data, m.len, seed_of(m.type)) < 0, "message %u: bytes differ", m.type);
    REQUIRE(zc_chan_release(ch, &m) == 0);
  }
  return 0;
}

static char pub_name[64];

/* ---- by name ---- */
static int sub_by_name(void *arg) {
  (void)arg;
  zc_chan_t *ch = zc_pub_subscribe(pub_name, 0, NULL);
  REQUIREF(ch != NULL, "zc_pub_subscribe: %s", strerror(errno));
  receive_range(ch, 0, 200);
  zc_chan_close(ch);
  return 0;
}

static int t_name(int argc, char **argv) {
  (void)argc, (void)argv;
  snprintf(pub_name, sizeof pub_name, "pubev.%d", (int)getpid());
  zc_pub_t *p = zc_pub_listen_name(pub_name, NULL);
  REQUIREF(p != NULL, "zc_pub_listen_name: %s", strerror(errno));
  CHECK(zc_pub_fd(p) >= 0);
  pid_t pid = spawn(sub_by_name, NULL);
  CHECKF(zc_pub_accept(p, 60000) == 1, "accept: %s (%s)", strerror(errno), zc_pub_error(p));
  for (uint32_t s = 0; s < 200; s++) send_one(p, s);
  CHECK_EQ(reap(pid), 0);
  CHECK(access(pub_name, F_OK) != 0); /* abstract: nothing in the file system */
  /* bad names */
  errno = 0;
  CHECK(zc_pub_listen_name("", NULL) == NULL && errno == EINVAL);
  char longname[120];
  memset(longname, 'x', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  errno = 0;
  CHECK(zc_pub_listen_name(longname, NULL) == NULL && errno == ENAMETOOLONG);
  errno = 0;
  CHECK(zc_pub_subscribe(NULL, 0, NULL) == NULL && errno == EINVAL);
  zc_pub_close(p);
  return check_exit(argv[0]);
}

/* ---- the peer-credential check ---- */
static uint32_t other_uid;

static int sub_refused_side(void *arg) { /* connects; its handshake fails either way */
  (void)arg;
  zc_chan_t *ch = zc_pub_subscribe(pub_name, 0, NULL);
  if (ch != NULL) {
    zc_chan_msg_t m;
    if (zc_chan_receive(ch, &m, 2000) == 0) return 3; /* it must never get a message */
    zc_chan_close(ch);
  }
  return 0;
}

static int sub_refusing(void *arg) { /* admits only another uid as its publisher */
  (void)arg;
  zc_chan_config_t c;
  memset(&c, 0, sizeof c);
  c.peer_uids = &other_uid;
  c.n_peer_uids = 1;
  zc_chan_t *ch = zc_pub_subscribe(pub_name, 0, &c);
  if (ch != NULL) return 2;
  return errno == EACCES ? 0 : 4;
}

static int t_uid(int argc, char **argv) {
  (void)argc, (void)argv;
  other_uid = (uint32_t)geteuid() + 4242u;
  snprintf(pub_name, sizeof pub_name, "pubev.uid.%d", (int)getpid());
  zc_chan_config_t c;
  memset(&c, 0, sizeof c);
  c.peer_uids = &other_uid;
  c.n_peer_uids = 1;
  c.setup_timeout_ms = 5000;
  zc_pub_t *p = zc_pub_listen_name(pub_name, &c);
  REQUIRE(p != NULL);
  pid_t pid = spawn(sub_refused_side, NULL);
  errno = 0;
  CHECKF(zc_pub_accept(p, 60000) < 0 && errno == EACCES, "accept of a refused uid: errno %d", errno);
  CHECK_EQ(zc_pub_subscribers(p), 0);
  CHECK_EQ(reap(pid), 0);
  zc_pub_close(p);

  p = zc_pub_listen_name(pub_name, NULL); /* admits us; the subscriber refuses it */
  REQUIRE(p != NULL);
  pid = spawn(sub_refusing, NULL);
  zc_pub_accept(p, 60000); /* the handshake may fail on our side too (the subscriber closed) */
  CHECK_EQ(reap(pid), 0);
  zc_pub_close(p);
  return check_exit(argv[0]);
}

/* ---- back-pressure for an event loop ---- */
typedef struct {
  int sock, ctl;
} sub_t;

static pid_t start_sub(zc_pub_t *p, int (*fn)(void *), sub_t *a) {
  return pub_spawn_sub(p, fn, a, &a->sock, &a->ctl);
}

/* Waits for a command: 'r' releases what it holds, then receives (and releases) n messages given after
 * it as 4 bytes; 'h' receives n and holds them until the next 'r'; 'q' quits. Answers each with 'k'. */
static int commanded_loop(zc_chan_t *ch, sub_t *a);
static int sub_commanded(void *arg) {
  sub_t *a = arg;
  zc_chan_t *ch = zc_chan_open(a->sock, ZC_CHAN_CONSUMER, NULL);
  REQUIRE(ch != NULL);
  return commanded_loop(ch, a);
}

/* The same, subscribed by name (pub_name). */
static int sub_named_commanded(void *arg) {
  zc_chan_t *ch = zc_pub_subscribe(pub_name, 0, NULL);
  REQUIREF(ch != NULL, "zc_pub_subscribe: %s", strerror(errno));
  return commanded_loop(ch, arg);
}

static int commanded_loop(zc_chan_t *ch, sub_t *a) {
  static zc_chan_msg_t held[4096];
  uint32_t nheld = 0, next = 0;
  for (;;) {
    char c = ctl_get(a->ctl);
    if (c == 'q' || c == 0) break;
    uint32_t n;
    REQUIRE(read(a->ctl, &n, sizeof n) == (ssize_t)sizeof n);
    if (c == 'r') {
      for (uint32_t i = 0; i < nheld; i++) REQUIRE(zc_chan_release(ch, &held[i]) == 0);
      nheld = 0;
    }
    for (uint32_t k = 0; k < n; k++) {
      zc_chan_msg_t m;
      REQUIREF(zc_chan_receive(ch, &m, -1) == 0, "receive: %s", strerror(errno));
      REQUIREF(m.type == next && verify_pattern(m.data, m.len, seed_of(m.type)) < 0, "message %u", next);
      next++;
      if (c == 'h' && nheld < 4096) held[nheld++] = m;
      else REQUIRE(zc_chan_release(ch, &m) == 0);
    }
    ctl_put(a->ctl, 'k');
  }
  zc_chan_close(ch);
  return 0;
}

static void command(sub_t *a, char c, uint32_t n) {
  ctl_put(a->ctl, c);
  if (c == 'q') return;
  REQUIRE(write(a->ctl, &n, sizeof n) == (ssize_t)sizeof n);
  REQUIRE(ctl_get(a->ctl) == 'k');
}

static int t_space(int argc, char **argv) {
  (void)argc, (void)argv;
  zc_chan_config_t c;
  memset(&c, 0, sizeof c);
  c.policy = ZC_CHAN_FAIL;
  c.ring_entries = 64;
  c.max_bytes = 8u << 20;
  zc_pub_t *p = zc_pub_listen(NULL, &c);
  REQUIRE(p != NULL);
  int efd = zc_pub_event_fd(p);
  REQUIRE(efd >= 0);
  sub_t a;
  pid_t pid = start_sub(p, sub_commanded, &a);
  CHECK(!readable(efd, 0));

  /* the ring: fill it until EAGAIN (the subscriber reads nothing) */
  uint32_t seq = 0;
  for (;;) {
    uint32_t len = 100; /* one size class: one page of memory */
    void *q = zc_pub_loan(p, len);
    REQUIREF(q != NULL, "loan %u: %s (%s)", seq, strerror(errno), zc_pub_error(p));
    fill_pattern(q, len, seed_of(seq));
    int r = zc_pub_send(p, q, len, seq);
    if (r < 0) {
      CHECKF(errno == EAGAIN, "send into a full ring: %s", strerror(errno));
      zc_pub_cancel(p, q);
      break;
    }
    REQUIRE(++seq <= 64);
  }
  CHECKF(seq == 64, "the ring took %u", seq);
  CHECK_EQ(zc_pub_arm_space(p), 0);
  CHECK(!readable(efd, 200)); /* nothing happened: quiet */
  command(&a, 'r', seq);      /* takes and releases them all */
  CHECKF(readable(efd, 10000), "the event fd did not wake when the subscriber took its ring");
  CHECK(zc_pub_collect(p) >= 0);
  CHECK_EQ(zc_pub_arm_space(p), 1); /* room is back: no arming needed */
  send_one(p, seq++);
  command(&a, 'r', 1);

  /* the memory: the subscriber holds every message it gets until told */
  uint32_t first = seq, nsent = 0;
  int full = 0;
  while (!full) {
    for (int k = 0; k < 32; k++) {
      uint32_t len = 60000;
      void *q = zc_pub_loan(p, len);
      if (q == NULL) {
        CHECKF(errno == EAGAIN, "loan at the memory cap: %s", strerror(errno));
        full = 1;
        break;
      }
      uint32_t s = first + nsent;
      fill_pattern(q, len_of(s), seed_of(s));
      REQUIRE(zc_pub_send(p, q, len_of(s), s) == 1);
      nsent++;
    }
    if (!full) command(&a, 'h', 32); /* hold them: the memory stays out */
    REQUIRE(nsent < 4096);
  }
  uint32_t unread = nsent % 32;
  if (unread) command(&a, 'h', unread);
  /* 1 means "something moved since the last look" (here: the subscriber took its descriptors): retry,
   * fail again, arm again; the second arm has nothing new to see */
  int armed = -1;
  for (int k = 0; k < 3 && armed != 0; k++) {
    CHECK(zc_pub_loan(p, 60000) == NULL && errno == EAGAIN);
    armed = zc_pub_arm_space(p);
  }
  CHECK_EQ(armed, 0);
  CHECK(!readable(efd, 200));
  command(&a, 'r', 0); /* releases what it holds */
  CHECKF(readable(efd, 10000), "the event fd did not wake when the subscriber released the memory");
  CHECK(zc_pub_collect(p) >= 0);
  void *q = zc_pub_loan(p, 60000);
  CHECKF(q != NULL, "loan after the releases: %s", strerror(errno));
  if (q) zc_pub_cancel(p, q);
  command(&a, 'q', 0);
  CHECK_EQ(reap(pid), 0);
  zc_pub_close(p);
  return check_exit(argv[0]);
}

/* ---- what makes the event fd readable, and what clears it (level-triggered) ---- */
static int t_level(int argc, char **argv) {
  (void)argc, (void)argv;
  zc_chan_config_t c;
  memset(&c, 0, sizeof c);
  c.policy = ZC_CHAN_FAIL;
  c.ring_entries = 64;
  snprintf(pub_name, sizeof pub_name, "pubev.%d.level", (int)getpid());
  zc_pub_t *p = zc_pub_listen_name(pub_name, &c);
  REQUIRE(p != NULL);
  int efd = zc_pub_event_fd(p);
  CHECK(!readable(efd, 0));
  int cv[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, cv) == 0);
  sub_t a = {-1, cv[1]};
  pid_t pid = spawn_closefds(sub_named_commanded, &a, cv[1], cv[1]);
  close(cv[1]);
  a.ctl = cv[0];
  /* a joiner: readable, and it stays readable (level) until something accepts it */
  CHECKF(readable(efd, 20000), "the event fd did not wake at a joiner");
  CHECK(readable(efd, 0));
  CHECK(readable(efd, 0));
  CHECK_EQ(zc_pub_subscribers(p), 0);
  CHECK(zc_pub_arm_space(p) >= 0); /* about to wait: it accepts the joiner too */
  CHECK_EQ(zc_pub_subscribers(p), 1);
  CHECK(!readable(efd, 200));
  /* room: fill the ring, arm, let the subscriber take everything */
  uint32_t seq = 0;
  for (;;) {
    void *q = zc_pub_loan(p, 100);
    REQUIREF(q != NULL, "loan %u: %s (%s)", seq, strerror(errno), zc_pub_error(p));
    fill_pattern(q, 100, seed_of(seq));
    if (zc_pub_send(p, q, 100, seq) < 0) {
      CHECKF(errno == EAGAIN, "send into a full ring: %s", strerror(errno));
      zc_pub_cancel(p, q);
      break;
    }
    REQUIRE(++seq <= 64);
  }
  CHECK_EQ(seq, 64);
  CHECK_EQ(zc_pub_arm_space(p), 0);
  CHECK(!readable(efd, 200));
  command(&a, 'r', seq);
  CHECKF(readable(efd, 20000), "the event fd did not wake when the subscriber took its ring");
  /* the retry succeeds, and the fd is still readable: loan and send never read it */
  void *q = zc_pub_loan(p, 100);
  REQUIRE(q != NULL);
  fill_pattern(q, 100, seed_of(seq));
  CHECK_EQ(zc_pub_send(p, q, 100, seq), 1);
  seq++;
  CHECK(readable(efd, 0));
  CHECK(zc_pub_collect(p) >= 0);
  CHECK(!readable(efd, 200)); /* collect read the wake-up */
  command(&a, 'r', 1);
  command(&a, 'q', 0);
  CHECK_EQ(reap(pid), 0);
  zc_pub_close(p);
  return check_exit(argv[0]);
}

/* ---- a subscriber dies ---- */
static int sub_reader(void *arg) {
  sub_t *a = arg;
  zc_chan_t *ch = zc_chan_open(a->sock, ZC_CHAN_CONSUMER, NULL);
  REQUIRE(ch != NULL);
  ctl_put(a->ctl, 'k');
  uint32_t n;
  REQUIRE(read(a->ctl, &n, sizeof n) == (ssize_t)sizeof n);
  receive_range(ch, 0, n);
  zc_chan_close(ch);
  return 0;
}

static int sub_sleeper(void *arg) {
  sub_t *a = arg;
  zc_chan_t *ch = zc_chan_open(a->sock, ZC_CHAN_CONSUMER, NULL);
  REQUIRE(ch != NULL);
  ctl_put(a->ctl, 'k');
  for (;;) pause();
  return 0;
}

static int t_kill(int argc, char **argv) {
  (void)argc, (void)argv;
  zc_pub_t *p = zc_pub_listen(NULL, NULL);
  REQUIRE(p != NULL);
  int efd = zc_pub_event_fd(p);
  sub_t a, b;
  pid_t pa = start_sub(p, sub_reader, &a), pb = start_sub(p, sub_sleeper, &b);
  REQUIRE(ctl_get(a.ctl) == 'k' && ctl_get(b.ctl) == 'k');
  CHECK_EQ(zc_pub_subscribers(p), 2);
  for (uint32_t s = 0; s < 10; s++) send_one(p, s);
  CHECK(!readable(efd, 100));
  kill(pb, SIGKILL);
  CHECK_EQ(reap(pb), 128 + SIGKILL);
  CHECKF(readable(efd, 10000), "the event fd did not wake at the subscriber's death");
  CHECK(zc_pub_collect(p) >= 0);
  CHECK_EQ(zc_pub_subscribers(p), 1);
  CHECK(!readable(efd, 200)); /* the dead link left the set: no busy loop on its end of file */
  for (uint32_t s = 10; s < 100; s++) send_one(p, s);
  uint32_t n = 100;
  REQUIRE(write(a.ctl, &n, sizeof n) == (ssize_t)sizeof n);
  CHECK_EQ(reap(pa), 0);
  zc_pub_stats_t st;
  zc_pub_stats(p, &st);
  CHECK_EQ(st.left, 1);
  zc_pub_close(p);
  return check_exit(argv[0]);
}

/* ---- a hostile subscriber: garbage on its socket ---- */
static int t_hostile(int argc, char **argv) {
  (void)argc, (void)argv;
  zc_pub_t *p = zc_pub_listen(NULL, NULL);
  REQUIRE(p != NULL);
  int efd = zc_pub_event_fd(p);
  sub_t a;
  pid_t pa = start_sub(p, sub_reader, &a);
  REQUIRE(ctl_get(a.ctl) == 'k');
  /* the hostile one lives here: its consumer end is opened on a dup, the raw fd writes garbage */
  int sv[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
  int raw = dup(sv[1]);
  REQUIRE(raw >= 0);
  static zc_chan_t *hc;
  /* the handshake is two-sided: the consumer end opens in a thread-free way by ordering: publisher first
   * sends its records without waiting, so open the consumer after zc_pub_add returned */
  pid_t helper = fork();
  if (helper == 0) { /* a child keeps the consumer end open (it reads nothing) */
    close(raw);
    hc = zc_chan_open(sv[1], ZC_CHAN_CONSUMER, NULL);
    if (hc == NULL) _exit(2);
    for (;;) pause();
  }
  close(sv[1]);
  REQUIREF(zc_pub_add(p, sv[0]) == 2, "zc_pub_add: %s (%s)", strerror(errno), zc_pub_error(p));
  for (uint32_t s = 0; s < 50; s++) send_one(p, s);
  CHECK(!readable(efd, 100));
  char junk[24];
  memset(junk, 0x5a, sizeof junk);
  CHECK(write(raw, junk, sizeof junk) == (ssize_t)sizeof junk); /* not a record of the protocol */
  CHECKF(readable(efd, 10000), "the event fd did not wake at the garbage");
  CHECK(zc_pub_collect(p) >= 0);
  zc_pub_stats_t st;
  zc_pub_stats(p, &st);
  CHECK_EQ(st.cut_off, 1);
  CHECK_EQ(zc_pub_subscribers(p), 1);
  CHECKF(strstr(zc_pub_error(p), "unexpected record") != NULL, "reason: %s", zc_pub_error(p));
  for (int k = 0; k < 10; k++) (void)!send(raw, junk, sizeof junk, MSG_NOSIGNAL); /* may fail: it was shut */
  CHECK(!readable(efd, 200)); /* cut off: its socket left the set, its flood does not wake us */
  for (uint32_t s = 50; s < 100; s++) send_one(p, s);
  uint32_t n = 100;
  REQUIRE(write(a.ctl, &n, sizeof n) == (ssize_t)sizeof n);
  CHECK_EQ(reap(pa), 0);
  kill(helper, SIGKILL);
  reap(helper);
  close(raw);
  zc_pub_close(p);
  return check_exit(argv[0]);
}

/* ---- reconnect after the publisher restarts ---- */
static int publisher_proc(void *arg) { /* sends messages first .. first + 49 to one subscriber */
  uint32_t first = (uint32_t)(uintptr_t)arg;
  zc_pub_t *p = zc_pub_listen_name(pub_name, NULL);
  REQUIREF(p != NULL, "zc_pub_listen_name: %s", strerror(errno));
  REQUIREF(zc_pub_accept(p, 20000) == 1, "accept: %s (%s)", strerror(errno), zc_pub_error(p));
  for (uint32_t s = first; s < first + 50; s++) send_one(p, s);
  if (first == 0)
    for (;;) pause(); /* killed */
  zc_pub_close(p); /* the subscriber still receives what was published */
  return 0;
}

static zc_chan_t *subscribe_retry(void) { /* the reconnect loop of docs/channel.md */
  zc_chan_t *ch;
  for (int k = 0; k < 4000; k++) {
    if ((ch = zc_pub_subscribe(pub_name, 0, NULL)) != NULL || errno != ECONNREFUSED) return ch;
    sleep_ms(5);
  }
  return NULL;
}

static int t_restart(int argc, char **argv) {
  (void)argc;
  snprintf(pub_name, sizeof pub_name, "pubev.%d.restart", (int)getpid());
  pid_t a = spawn_closefds(publisher_proc, (void *)(uintptr_t)0, -1, -1);
  zc_chan_t *ch = subscribe_retry();
  REQUIREF(ch != NULL, "subscribe: %s", strerror(errno));
  CHECK(receive_range(ch, 0, 50) == 0);
  kill(a, SIGKILL);
  CHECK_EQ(reap(a), 128 + SIGKILL);
  zc_chan_msg_t m;
  CHECKF(zc_chan_receive(ch, &m, 20000) == -1 && errno == EPIPE, "after the publisher's death: %s", strerror(errno));
  zc_chan_close(ch);
  errno = 0;
  CHECKF(zc_pub_subscribe(pub_name, 0, NULL) == NULL && errno == ECONNREFUSED, "nobody listens: %s", strerror(errno));
  pid_t b = spawn_closefds(publisher_proc, (void *)(uintptr_t)50, -1, -1);
  ch = subscribe_retry();
  REQUIREF(ch != NULL, "subscribe again: %s", strerror(errno));
  CHECK(receive_range(ch, 50, 50) == 0);
  CHECK_EQ(reap(b), 0);
  CHECKF(zc_chan_receive(ch, &m, 20000) == -1 && errno == EPIPE, "after the publisher closed: %s", strerror(errno));
  zc_chan_close(ch);
  return check_exit(argv[0]);
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"name", t_name},     {"uid", t_uid},         {"space", t_space},
                                    {"kill", t_kill},     {"hostile", t_hostile}, {"level", t_level},
                                    {"restart", t_restart},
                                    {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
