/* Fan-out (zc_pub_*): one publisher, subscriber processes (fork) that are ordinary consumers.
 *
 *   fanout_flow     3 subscribers, 2500 messages of 1 B..16 KiB: each sees every message byte-exact and
 *                   in order (releasing out of order, holding up to 16); at the end every slot is back,
 *                   returned exactly once per message, 3 deliveries per message
 *   fanout_last     one message, 3 subscribers: after 2 releases it is still in flight (the publisher's
 *                   stats), after the third it is back; the publisher rewrites it after sending and every
 *                   subscriber reads the new bytes (one copy, read in place by all)
 *   fanout_kill     a subscriber holding 10 messages is SIGKILLed: the other two go on to the end, its
 *                   messages come back (reclaimed), nothing is left in flight
 *   fanout_kill_fail  the same under ZC_CHAN_FAIL: a dead subscriber's full ring is noticed by the send
 *                   that finds it full (no EAGAIN for it), the other subscriber goes on
 *   fanout_join     a subscriber joining after 100 messages (by the listening path, accepted by
 *                   zc_pub_collect) gets exactly the next 100, in order
 *   fanout_threads  two publisher threads (loan, send, stats, collect) on one publisher with a 64-entry
 *                   ring: both subscribers get each thread's messages in that thread's order, intact
 *   fanout_hostile  a subscriber that releases twice, releases a handle it never got (garbage), another
 *                   subscriber's message, or moves its return ring's head out of range: it alone is cut off
 *                   (the reason says why, it sees the end), the honest one receives every message, all
 *                   memory comes back
 *   fanout_slow     a subscriber that never reads, under each policy: ZC_CHAN_FAIL (EAGAIN, the loan kept),
 *                   ZC_CHAN_BLOCK (ETIMEDOUT, nobody dropped), ZC_PUB_EVICT (the slow one is cut off, sees
 *                   end of file without a stale message, the fast one gets everything); and ZC_PUB_EVICT
 *                   when a subscriber holds all the memory
 *   fanout_large    messages of 1 B..3 MiB (runs of pages) to 2 subscribers, byte-exact; all memory back
 */
#include "pub_test.h"

#include "chan_internal.h"
#include "zcmem_channel.h"

#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/un.h>

/* ---- the harness: each subscriber has a channel socket and a control socket (both kept in the child) ---- */
typedef struct {
  int sock, ctl;
  int kind;                /* what the subscriber does (per test) */
  uint32_t first, n, maxlen; /* messages first .. first + n - 1, of 1..maxlen bytes */
  int hold;                /* messages kept before releasing (out of order) */
} sub_t;

static void ctl_put(int fd, char c) { CHECK(write(fd, &c, 1) == 1); }
static char ctl_get(int fd) {
  char c = 0;
  CHECK(read(fd, &c, 1) == 1);
  return c;
}

static uint32_t msg_len(uint32_t seq, uint32_t maxlen) { return 1u + (uint32_t)(splitmix64(seq) % maxlen); }
static uint64_t msg_seed(uint32_t seq) { return (uint64_t)seq * 0x9e3779b1u + 7u; }

static void fill_msg(void *p, uint32_t seq, uint32_t len) {
  if (len > (1u << 20)) fill_sparse(p, len, msg_seed(seq), 4093);
  else fill_pattern(p, len, msg_seed(seq));
}
static long verify_msg(const zc_chan_msg_t *m) {
  if (m->len > (1u << 20)) return verify_sparse(m->data, m->len, msg_seed(m->type), 4093);
  return verify_pattern(m->data, m->len, msg_seed(m->type));
}

static pid_t start_sub(zc_pub_t *p, int (*fn)(void *), sub_t *a) {
  return pub_spawn_sub(p, fn, a, &a->sock, &a->ctl);
}

static char sub_path[108]; /* a subscriber whose sock is -1 connects here */

static zc_chan_t *sub_open(sub_t *a) {
  zc_chan_t *ch = a->sock >= 0 ? zc_chan_open(a->sock, ZC_CHAN_CONSUMER, NULL)
                               : zc_chan_connect(sub_path, ZC_CHAN_CONSUMER, NULL);
  REQUIREF(ch != NULL, "subscriber open: %s", strerror(errno));
  return ch;
}

/* Receive messages first .. first + n - 1 in order, check each, release them out of order (keeping up to
 * hold). 0 if all were right. */
static int receive_all(zc_chan_t *ch, const sub_t *a) {
  zc_chan_msg_t held[64];
  int nh = 0, bad = 0;
  for (uint32_t k = 0; k < a->n; k++) {
    zc_chan_msg_t m;
    if (zc_chan_receive(ch, &m, -1) != 0) {
      CHECKF(0, "receive %u: %s (%s)", a->first + k, strerror(errno), zc_chan_error(ch));
      return -1;
    }
    uint32_t want = a->first + k;
    if (m.type != want || m.len != msg_len(want, a->maxlen) || verify_msg(&m) >= 0) {
      if (bad++ < 5) CHECKF(0, "message %u: type %u, len %u (want %u), first bad byte %ld", want, m.type, m.len,
                            msg_len(want, a->maxlen), verify_msg(&m));
    }
    held[nh++] = m;
    if (nh > a->hold) { /* release one from the middle, then the newest */
      int i = (int)(splitmix64(want) % (uint64_t)nh);
      CHECK(zc_chan_release(ch, &held[i]) == 0);
      held[i] = held[--nh];
    }
  }
  CHECK(zc_chan_release_batch(ch, held, nh) == 0);
  return bad ? -1 : 0;
}

static int sub_reader(void *arg) {
  sub_t *a = arg;
  zc_chan_t *ch = sub_open(a);
  receive_all(ch, a);
  ctl_put(a->ctl, 'd');
  ctl_get(a->ctl); /* the publisher has looked at its stats */
  zc_chan_close(ch);
  return check_failures ? 1 : 0;
}

static void send_range(zc_pub_t *p, uint32_t first, uint32_t n, uint32_t maxlen, int want_subs) {
  for (uint32_t s = first; s < first + n; s++) {
    uint32_t len = msg_len(s, maxlen);
    char *q = zc_pub_loan(p, len);
    REQUIREF(q != NULL, "loan %u (%u B): %s (%s)", s, len, strerror(errno), zc_pub_error(p));
    fill_msg(q, s, len);
    int k = zc_pub_send(p, q, len, s);
    REQUIREF(k == want_subs, "send %u went to %d subscribers (%s)", s, k, k < 0 ? strerror(errno) : "");
  }
}

static zc_pub_stats_t stats_of(zc_pub_t *p) {
  zc_pub_stats_t st;
  zc_pub_stats(p, &st);
  return st;
}

/* Collect until nothing is in flight (or 30 s: the readers wait for a core on a loaded machine). */
static zc_pub_stats_t settle(zc_pub_t *p) {
  uint64_t end = now_ms() + 30000;
  while (zc_pub_collect(p) > 0 && now_ms() < end) sleep_ms(1);
  return stats_of(p);
}

static void all_back(zc_pub_t *p, uint64_t sent) {
  zc_pub_stats_t st = settle(p);
  CHECKF(st.chan.inflight_msgs == 0 && st.chan.inflight_bytes == 0, "%lu messages still in flight",
         (unsigned long)st.chan.inflight_msgs);
  CHECKF(st.chan.returned + st.chan.reclaimed == sent, "sent %lu, returned %lu + reclaimed %lu", (unsigned long)sent,
         (unsigned long)st.chan.returned, (unsigned long)st.chan.reclaimed);
  CHECKF(st.chan.free_bytes == st.chan.segment_bytes && st.chan.loaned_msgs == 0, "free %lu of %lu bytes",
         (unsigned long)st.chan.free_bytes, (unsigned long)st.chan.segment_bytes);
}

static zc_chan_config_t forever(void) {
  zc_chan_config_t c = {0};
  c.block_timeout_ms = -1;
  return c;
}

/* ---- fanout_flow ---- */
static int t_flow(int argc, char **argv) {
  uint32_t n = quick_mode(argc, argv) ? 1000 : 2500, maxlen = 16384; /* subscribers die at 60 s (spawn's
                                                                         alarm): keep it short under TSan */
  zc_chan_config_t cfg = forever();
  zc_pub_t *p = zc_pub_listen(NULL, &cfg);
  REQUIRE(p != NULL);
  sub_t s[3];
  pid_t pid[3];
  for (int i = 0; i < 3; i++) {
    s[i] = (sub_t){.first = 0, .n = n, .maxlen = maxlen, .hold = 16 * i};
    pid[i] = start_sub(p, sub_reader, &s[i]);
  }
  CHECK_EQ(zc_pub_subscribers(p), 3);
  send_range(p, 0, n, maxlen, 3);
  for (int i = 0; i < 3; i++) CHECK(ctl_get(s[i].ctl) == 'd');
  zc_pub_stats_t st = settle(p);
  CHECKF(st.chan.sent == n && st.chan.returned == n && st.chan.reclaimed == 0 && st.deliveries == 3ull * n,
         "sent %lu returned %lu reclaimed %lu deliveries %lu", (unsigned long)st.chan.sent,
         (unsigned long)st.chan.returned, (unsigned long)st.chan.reclaimed, (unsigned long)st.deliveries);
  all_back(p, n);
  for (int i = 0; i < 3; i++) ctl_put(s[i].ctl, 'q');
  for (int i = 0; i < 3; i++) CHECKF(reap(pid[i]) == 0, "subscriber %d failed", i);
  zc_pub_close(p);
  CHECK_DONE("fanout_flow");
}

/* ---- fanout_last ---- */
static int sub_last(void *arg) {
  sub_t *a = arg;
  zc_chan_t *ch = sub_open(a);
  zc_chan_msg_t m;
  REQUIRE(zc_chan_receive(ch, &m, -1) == 0);
  CHECK(m.len == 4096 && verify_pattern(m.data, m.len, 1) < 0);
  ctl_put(a->ctl, 'r');
  CHECK(ctl_get(a->ctl) == 'w'); /* the publisher rewrote the message in place */
  CHECKF(verify_pattern(m.data, m.len, 2) < 0, "subscriber %d does not see the rewrite", a->kind);
  CHECK(ctl_get(a->ctl) == 'x');
  CHECK(zc_chan_release(ch, &m) == 0);
  ctl_put(a->ctl, 'd');
  ctl_get(a->ctl);
  zc_chan_close(ch);
  return check_failures ? 1 : 0;
}

static int t_last(int argc, char **argv) {
  (void)argc, (void)argv;
  zc_pub_t *p = zc_pub_listen(NULL, NULL);
  REQUIRE(p != NULL);
  sub_t s[3];
  pid_t pid[3];
  for (int i = 0; i < 3; i++) {
    s[i] = (sub_t){.kind = i};
    pid[i] = start_sub(p, sub_last, &s[i]);
  }
  char *q = zc_pub_loan(p, 4096);
  REQUIRE(q != NULL);
  fill_pattern(q, 4096, 1);
  CHECK_EQ(zc_pub_send(p, q, 4096, 9), 3);
  for (int i = 0; i < 3; i++) CHECK(ctl_get(s[i].ctl) == 'r');
  fill_pattern(q, 4096, 2); /* after sending: only a view of the one copy shows this */
  for (int i = 0; i < 3; i++) ctl_put(s[i].ctl, 'w');
  for (int i = 0; i < 3; i++) {
    ctl_put(s[i].ctl, 'x');
    CHECK(ctl_get(s[i].ctl) == 'd');
    zc_pub_collect(p);
    zc_pub_stats_t st = stats_of(p);
    if (i < 2)
      CHECKF(st.chan.inflight_msgs == 1 && st.chan.returned == 0, "after %d of 3 releases: inflight %lu returned %lu",
             i + 1, (unsigned long)st.chan.inflight_msgs, (unsigned long)st.chan.returned);
    else
      CHECKF(st.chan.inflight_msgs == 0 && st.chan.returned == 1, "after the last release: inflight %lu returned %lu",
             (unsigned long)st.chan.inflight_msgs, (unsigned long)st.chan.returned);
  }
  for (int i = 0; i < 3; i++) ctl_put(s[i].ctl, 'q');
  for (int i = 0; i < 3; i++) CHECKF(reap(pid[i]) == 0, "subscriber %d failed", i);
  zc_pub_close(p);
  CHECK_DONE("fanout_last");
}

/* ---- fanout_kill ---- */
static int sub_victim(void *arg) {
  sub_t *a = arg;
  zc_chan_t *ch = sub_open(a);
  zc_chan_msg_t m[10];
  for (int k = 0; k < 10; k++) REQUIRE(zc_chan_receive(ch, &m[k], -1) == 0);
  ctl_put(a->ctl, 'h'); /* holding 10; the parent kills us */
  for (;;) pause();
}

static int t_kill(int argc, char **argv) {
  uint32_t n = quick_mode(argc, argv) ? 2000 : 5000, maxlen = 4096;
  zc_chan_config_t cfg = forever();
  cfg.ring_entries = 256; /* the victim's ring fills: the publisher notices the death while waiting */
  zc_pub_t *p = zc_pub_listen(NULL, &cfg);
  REQUIRE(p != NULL);
  sub_t s[3];
  pid_t pid[3];
  for (int i = 0; i < 3; i++) {
    s[i] = (sub_t){.first = 0, .n = n, .maxlen = maxlen, .hold = 8};
    pid[i] = start_sub(p, i == 1 ? sub_victim : sub_reader, &s[i]);
  }
  send_range(p, 0, 20, maxlen, 3);
  CHECK(ctl_get(s[1].ctl) == 'h');
  kill(pid[1], SIGKILL);
  CHECK_EQ(reap(pid[1]), 128 + SIGKILL);
  for (uint32_t s0 = 20; s0 < n; s0++) { /* at the latest when its ring is full it is seen dead: then 2 */
    uint32_t len = msg_len(s0, maxlen);
    char *q = zc_pub_loan(p, len);
    REQUIRE(q != NULL);
    fill_msg(q, s0, len);
    int k = zc_pub_send(p, q, len, s0);
    REQUIREF(k == 2 || k == 3, "send %u: %d (%s)", s0, k, strerror(errno));
  }
  for (int i = 0; i < 3; i += 2) CHECK(ctl_get(s[i].ctl) == 'd');
  zc_pub_stats_t st = settle(p);
  CHECKF(st.subscribers == 2 && st.left == 1, "subscribers %lu, left %lu", (unsigned long)st.subscribers,
         (unsigned long)st.left);
  /* Its 10 received references (and any still queued for it) are let go for it; which of those messages
   * count as reclaimed (it was their last holder) or returned (a reader released them later) depends on
   * how far the readers had got when its death was seen. */
  CHECKF(st.dropped >= 10, "dropped %lu references (the victim held 10 it never released)", (unsigned long)st.dropped);
  all_back(p, n);
  for (int i = 0; i < 3; i += 2) ctl_put(s[i].ctl, 'q');
  for (int i = 0; i < 3; i += 2) CHECKF(reap(pid[i]) == 0, "subscriber %d failed", i);
  zc_pub_close(p);
  CHECK_DONE("fanout_kill");
}

/* ---- fanout_kill_fail: the same under ZC_CHAN_FAIL: a full ring of a dead subscriber is not EAGAIN ---- */
static int t_kill_fail(int argc, char **argv) {
  (void)argc, (void)argv;
  uint32_t n = 1000, maxlen = 1000;
  zc_chan_config_t cfg = {0};
  cfg.ring_entries = 64;
  cfg.policy = ZC_CHAN_FAIL;
  zc_pub_t *p = zc_pub_listen(NULL, &cfg);
  REQUIRE(p != NULL);
  sub_t s[2] = {{.first = 0, .n = n, .maxlen = maxlen, .hold = 8}, {0}};
  pid_t pr = start_sub(p, sub_reader, &s[0]), pv = start_sub(p, sub_victim, &s[1]);
  send_range(p, 0, 20, maxlen, 2);
  CHECK(ctl_get(s[1].ctl) == 'h');
  kill(pv, SIGKILL);
  CHECK_EQ(reap(pv), 128 + SIGKILL);
  for (uint32_t q = 20; q < n; q++) {
    uint32_t len = msg_len(q, maxlen);
    char *b = zc_pub_loan(p, len);
    REQUIRE(b != NULL);
    fill_msg(b, q, len);
    int k;
    uint64_t end = now_ms() + 30000; /* EAGAIN while the reader's own ring is full: it catches up */
    while ((k = zc_pub_send(p, b, len, q)) < 0 && errno == EAGAIN && now_ms() < end) sched_yield();
    REQUIREF(k == 1 || k == 2, "send %u: %d (%s)", q, k, k < 0 ? strerror(errno) : "");
  }
  CHECK(ctl_get(s[0].ctl) == 'd');
  zc_pub_stats_t st = settle(p);
  CHECKF(st.subscribers == 1 && st.left == 1, "subscribers %lu, left %lu", (unsigned long)st.subscribers, (unsigned long)st.left);
  all_back(p, n);
  ctl_put(s[0].ctl, 'q');
  CHECK(reap(pr) == 0);
  zc_pub_close(p);
  CHECK_DONE("fanout_kill_fail");
}

/* A subscriber that connects to sub_path by itself; the publisher accepts it (in zc_pub_collect). */
static pid_t start_sub_path(zc_pub_t *p, int (*fn)(void *), sub_t *a) {
  int cv[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, cv) == 0);
  a->sock = -1;
  a->ctl = cv[1];
  int before = zc_pub_subscribers(p);
  pid_t pid = spawn_closefds(fn, a, cv[1], -1);
  close(cv[1]);
  a->ctl = cv[0];
  uint64_t end = now_ms() + 30000;
  while (zc_pub_subscribers(p) == before && now_ms() < end) {
    zc_pub_collect(p);
    sleep_ms(1);
  }
  REQUIREF(zc_pub_subscribers(p) == before + 1, "the subscriber on %s was not accepted (%s)", sub_path, zc_pub_error(p));
  return pid;
}

/* ---- fanout_threads: two publisher threads on one publisher ---- */
enum { MT_N = 3000 };

/* Each thread's messages arrive in its own order: type = thread << 24 | seq. */
static int sub_mt(void *arg) {
  sub_t *a = arg;
  zc_chan_t *ch = sub_open(a);
  uint32_t next[2] = {0, 0};
  int bad = 0;
  for (uint32_t k = 0; k < 2 * MT_N; k++) {
    zc_chan_msg_t m;
    if (zc_chan_receive(ch, &m, -1) != 0) {
      CHECKF(0, "receive: %s", strerror(errno));
      break;
    }
    uint32_t t = m.type >> 24, q = m.type & 0xffffff;
    if (t > 1 || q != next[t] || m.len != msg_len(m.type, 3000) || verify_msg(&m) >= 0) {
      if (bad++ < 5) CHECKF(0, "message %#x: out of order or corrupt (thread %u expected %u)", m.type, t & 1, next[t & 1]);
    } else {
      next[t]++;
    }
    CHECK(zc_chan_release(ch, &m) == 0);
  }
  ctl_put(a->ctl, 'd');
  ctl_get(a->ctl);
  zc_chan_close(ch);
  return check_failures ? 1 : 0;
}

static zc_pub_t *mt_pub;
static void *mt_sender(void *arg) {
  uint32_t t = (uint32_t)(uintptr_t)arg;
  for (uint32_t q = 0; q < MT_N; q++) {
    uint32_t type = t << 24 | q, len = msg_len(type, 3000);
    char *b = zc_pub_loan(mt_pub, len);
    REQUIREF(b != NULL, "loan: %s", strerror(errno));
    fill_msg(b, type, len);
    REQUIREF(zc_pub_send(mt_pub, b, len, type) == 2, "send: %s", strerror(errno));
    if (q % 500 == 0) {
      zc_pub_stats_t st;
      zc_pub_stats(mt_pub, &st); /* stats and collect from the sending threads too */
      zc_pub_collect(mt_pub);
    }
  }
  return NULL;
}

static int t_threads(int argc, char **argv) {
  (void)argc, (void)argv;
  zc_chan_config_t cfg = forever();
  cfg.ring_entries = 64; /* both threads wait for ring space now and then */
  mt_pub = zc_pub_listen(NULL, &cfg);
  REQUIRE(mt_pub != NULL);
  sub_t s[2] = {{0}, {0}};
  pid_t pid[2];
  for (int i = 0; i < 2; i++) pid[i] = start_sub(mt_pub, sub_mt, &s[i]);
  pthread_t th;
  REQUIRE(pthread_create(&th, NULL, mt_sender, (void *)(uintptr_t)1) == 0);
  mt_sender((void *)(uintptr_t)0);
  pthread_join(th, NULL);
  for (int i = 0; i < 2; i++) CHECK(ctl_get(s[i].ctl) == 'd');
  all_back(mt_pub, 2 * MT_N);
  for (int i = 0; i < 2; i++) ctl_put(s[i].ctl, 'q');
  for (int i = 0; i < 2; i++) CHECKF(reap(pid[i]) == 0, "subscriber %d failed", i);
  zc_pub_close(mt_pub);
  CHECK_DONE("fanout_threads");
}

/* ---- fanout_join ---- */
static int t_join(int argc, char **argv) {
  (void)argc, (void)argv;
  zc_chan_config_t cfg = forever();
  snprintf(sub_path, sizeof sub_path, "/tmp/zc-fanout-%d.sock", (int)getpid());
  zc_pub_t *p = zc_pub_listen(sub_path, &cfg);
  REQUIRE(p != NULL && zc_pub_fd(p) >= 0);
  CHECK(zc_pub_accept(p, 0) == -1 && errno == EAGAIN); /* nobody yet */
  sub_t a = {.first = 0, .n = 200, .maxlen = 2000, .hold = 4}, b = {.first = 100, .n = 100, .maxlen = 2000, .hold = 4};
  pid_t pa = start_sub(p, sub_reader, &a);
  send_range(p, 0, 100, 2000, 1);
  pid_t pb = start_sub_path(p, sub_reader, &b); /* joins by the path, accepted by zc_pub_collect */
  send_range(p, 100, 100, 2000, 2);
  CHECK(ctl_get(a.ctl) == 'd' && ctl_get(b.ctl) == 'd');
  zc_pub_stats_t st = settle(p);
  CHECKF(st.deliveries == 300 && st.joined == 2, "deliveries %lu joined %lu", (unsigned long)st.deliveries,
         (unsigned long)st.joined);
  all_back(p, 200);
  ctl_put(a.ctl, 'q');
  ctl_put(b.ctl, 'q');
  CHECK(reap(pa) == 0 && reap(pb) == 0);
  zc_pub_close(p);
  unlink(sub_path);
  CHECK_DONE("fanout_join");
}

/* ---- fanout_silent ---- */
/* A connector on the publisher's path that never greets holds zc_pub_collect for at most setup_timeout_ms
 * (the handshake of a waiting subscriber runs inside the call), then is turned away: its socket is closed,
 * nobody joined, and a real subscriber joins and gets every message afterwards. */
static int t_silent(int argc, char **argv) {
  (void)argc, (void)argv;
  zc_chan_config_t cfg = forever();
  cfg.setup_timeout_ms = 300;
  snprintf(sub_path, sizeof sub_path, "/tmp/zc-fanout-silent-%d.sock", (int)getpid());
  zc_pub_t *p = zc_pub_listen(sub_path, &cfg);
  REQUIRE(p != NULL);
  int quiet = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", sub_path);
  REQUIREF(quiet >= 0 && connect(quiet, (struct sockaddr *)&a, sizeof a) == 0, "connect: %s", strerror(errno));
  CHECK(zc_pub_collect(p) == 0); /* returns: the silent one timed out inside */
  CHECKF(zc_pub_subscribers(p) == 0 && stats_of(p).joined == 0, "a silent connector joined (%d)", zc_pub_subscribers(p));
  struct pollfd pf = {quiet, POLLIN, 0};
  char b[64];
  CHECKF(poll(&pf, 1, 10000) == 1 && recv(quiet, b, sizeof b, MSG_DONTWAIT) >= 0, "the silent connector was not turned away");
  close(quiet);
  sub_t s = {.first = 0, .n = 50, .maxlen = 2000, .hold = 2};
  pid_t ps = start_sub_path(p, sub_reader, &s);
  send_range(p, 0, 50, 2000, 1);
  CHECK(ctl_get(s.ctl) == 'd');
  all_back(p, 50);
  ctl_put(s.ctl, 'q');
  CHECK(reap(ps) == 0);
  zc_pub_close(p);
  unlink(sub_path);
  CHECK_DONE("fanout_silent");
}

/* ---- fanout_hostile ---- */
enum { H_TWICE, H_GARBAGE, H_OTHERS, H_HEAD, H_KINDS };
static const char *const h_name[H_KINDS] = {"released twice", "a handle it never got", "another's message",
                                            "return ring head out of range"};
static const char *const h_reason[H_KINDS] = {"does not hold", "invalid handle", "does not hold", "out of range"};

/* The hostile one: receives message 0 (sent to both), then misbehaves; then it must see the end. */
static int sub_hostile(void *arg) {
  sub_t *a = arg;
  zc_chan_t *ch = sub_open(a);
  zc_chan_msg_t m;
  REQUIRE(zc_chan_receive(ch, &m, -1) == 0);
  CHECK(m.type == 1000);
  zc_chan_msg_t bad = m;
  if (a->kind == H_TWICE) {
    CHECK(zc_chan_release(ch, &m) == 0);
  } else if (a->kind == H_GARBAGE) {
    bad.handle = chan_handle(0, 64 * 1000, 5); /* no message of ours lives there */
  } else if (a->kind == H_OTHERS) {
    CHECK(read(a->ctl, &bad.handle, 8) == 8); /* the honest one's message, sent before we joined */
  }
  if (a->kind == H_HEAD) {
    __atomic_store_n(&ch->ctl->ret_head, (uint64_t)1 << 40, __ATOMIC_RELEASE);
  } else {
    CHECK(zc_chan_release(ch, &bad) == 0);
  }
  ctl_put(a->ctl, 'b');
  int r;
  while ((r = zc_chan_receive(ch, &m, -1)) == 0) zc_chan_release(ch, &m); /* anything published before */
  CHECKF(errno == EPIPE, "the hostile subscriber ends with %s, not EPIPE", strerror(errno));
  ctl_put(a->ctl, 'e');
  zc_chan_close(ch);
  return check_failures ? 1 : 0;
}

/* The honest one: keeps message 0 until told, sends its handle to whoever asks, then reads 1000..1099. */
static int sub_honest(void *arg) {
  sub_t *a = arg;
  zc_chan_t *ch = sub_open(a);
  zc_chan_msg_t first;
  REQUIRE(zc_chan_receive(ch, &first, -1) == 0);
  CHECK(first.type == 999 && verify_msg(&first) < 0);
  CHECK(write(a->ctl, &first.handle, 8) == 8);
  sub_t rest = *a;
  rest.first = 1000;
  rest.n = 101;
  receive_all(ch, &rest);
  CHECK(verify_msg(&first) < 0); /* still ours, untouched */
  CHECK(zc_chan_release(ch, &first) == 0);
  ctl_put(a->ctl, 'd');
  ctl_get(a->ctl);
  zc_chan_close(ch);
  return check_failures ? 1 : 0;
}

static int t_hostile(int argc, char **argv) {
  (void)argc, (void)argv;
  for (int kind = 0; kind < H_KINDS; kind++) {
    zc_chan_config_t cfg = forever();
    zc_pub_t *p = zc_pub_listen(NULL, &cfg);
    REQUIRE(p != NULL);
    sub_t h = {.maxlen = 3000, .hold = 4}, x = {.kind = kind, .maxlen = 3000};
    pid_t ph = start_sub(p, sub_honest, &h);
    send_range(p, 999, 1, 3000, 1); /* held by the honest one only */
    uint64_t his;
    CHECK(read(h.ctl, &his, 8) == 8);
    pid_t px = start_sub(p, sub_hostile, &x);
    if (kind == H_OTHERS) CHECK(write(x.ctl, &his, 8) == 8);
    send_range(p, 1000, 1, 3000, 2);
    CHECK(ctl_get(x.ctl) == 'b');
    uint64_t end = now_ms() + 30000;
    while (stats_of(p).cut_off == 0 && now_ms() < end) {
      zc_pub_collect(p);
      sleep_ms(1);
    }
    zc_pub_stats_t st = stats_of(p);
    CHECKF(st.cut_off == 1 && st.subscribers == 1 && st.chan.rejected == 1, "%s: cut off %lu, subscribers %lu, rejected %lu",
           h_name[kind], (unsigned long)st.cut_off, (unsigned long)st.subscribers, (unsigned long)st.chan.rejected);
    CHECKF(strstr(zc_pub_error(p), h_reason[kind]) != NULL, "%s: reason \"%s\"", h_name[kind], zc_pub_error(p));
    CHECK(ctl_get(x.ctl) == 'e');
    send_range(p, 1001, 100, 3000, 1);
    CHECK(ctl_get(h.ctl) == 'd');
    all_back(p, 102);
    ctl_put(h.ctl, 'q');
    CHECKF(reap(ph) == 0 && reap(px) == 0, "%s: a subscriber failed", h_name[kind]);
    zc_pub_close(p);
    close(h.ctl);
    close(x.ctl);
  }
  CHECK_DONE("fanout_hostile");
}

/* ---- fanout_slow ---- */
enum { RING = 64 };

/* Never receives until told; then reads what there is and reports how it ended. */
static int sub_sleeper(void *arg) {
  sub_t *a = arg;
  zc_chan_t *ch = sub_open(a);
  ctl_put(a->ctl, 'o');
  CHECK(ctl_get(a->ctl) == 'g');
  zc_chan_msg_t m;
  int got = 0;
  while (zc_chan_receive(ch, &m, 2000) == 0) {
    got++;
    zc_chan_release(ch, &m);
  }
  int e = errno;
  CHECK(write(a->ctl, &got, sizeof got) == sizeof got);
  CHECK(write(a->ctl, &e, sizeof e) == sizeof e);
  ctl_get(a->ctl);
  zc_chan_close(ch);
  return check_failures ? 1 : 0;
}

/* Receives everything, holding it all if kind == 1, and acknowledges each message ('a' on ctl, once
 * released) so that the publisher sends the next one only then: it is fast whatever the scheduling (a
 * reader that waited for a core for block_timeout_ms would be evicted, or end its stream, as the slow one).
 * The stream ends at the publisher's 'd' (everything is in the ring by then) or when it is cut off. */
static int sub_fast(void *arg) {
  sub_t *a = arg;
  zc_chan_t *ch = sub_open(a);
  zc_chan_msg_t m;
  int got = 0, done = 0;
  ctl_put(a->ctl, 'o');
  for (;;) {
    if (zc_chan_receive(ch, &m, done ? 0 : 100) == 0) {
      CHECK(m.type == (uint32_t)got && verify_msg(&m) < 0);
      got++;
      if (a->kind == 0) zc_chan_release(ch, &m);
      ctl_put(a->ctl, 'a');
      continue;
    }
    if ((errno != ETIMEDOUT && errno != EAGAIN) || done) break;
    struct pollfd pf = {a->ctl, POLLIN, 0};
    if (poll(&pf, 1, 0) == 1) CHECK((done = ctl_get(a->ctl) == 'd'));
  }
  CHECK(write(a->ctl, &got, sizeof got) == sizeof got);
  ctl_get(a->ctl);
  zc_chan_close(ch);
  return check_failures ? 1 : 0;
}

/* send_range to the fast subscriber (and others), each message sent once the fast one took the last */
static void send_acked(zc_pub_t *p, uint32_t first, uint32_t n, uint32_t maxlen, int want_subs, int fast_ctl) {
  for (uint32_t s = first; s < first + n; s++) {
    send_range(p, s, 1, maxlen, want_subs);
    CHECK(ctl_get(fast_ctl) == 'a');
  }
}

static int slow_run(int policy) {
  zc_chan_config_t cfg = {0};
  cfg.ring_entries = RING;
  cfg.policy = policy;
  cfg.block_timeout_ms = 200;
  zc_pub_t *p = zc_pub_listen(NULL, &cfg);
  REQUIRE(p != NULL);
  sub_t f = {.maxlen = 1000}, z = {.maxlen = 1000};
  pid_t pf = start_sub(p, sub_fast, &f), pz = start_sub(p, sub_sleeper, &z);
  CHECK(ctl_get(f.ctl) == 'o' && ctl_get(z.ctl) == 'o');
  send_acked(p, 0, RING, 1000, 2, f.ctl); /* the sleeper's ring is full now, the fast one's empty */
  /* A bad send fails at once, whatever the policy and the full ring: it neither waits for room nor (EVICT)
   * cuts anyone off on its way to failing. A length beyond the loan gives the loan back (EMSGSIZE). */
  char local[64] __attribute__((aligned(16)));
  char *bad = zc_pub_loan(p, 100);
  REQUIRE(bad != NULL);
  int kb = zc_pub_send(p, local, 10, RING), eb = errno;
  CHECKF(kb == -1 && eb == EINVAL, "policy %d: send of a pointer that is no loan, with a full ring: %d (%s)", policy, kb,
         strerror(eb));
  kb = zc_pub_send(p, bad, 5000, RING), eb = errno;
  CHECKF(kb == -1 && eb == EMSGSIZE, "policy %d: send beyond its 112-byte loan, with a full ring: %d (%s)", policy, kb,
         strerror(eb));
  CHECKF(zc_pub_cancel(p, bad) == -1 && errno == EINVAL, "policy %d: the loan was not given back", policy);
  zc_chan_msg_t badm = {local, 10, RING, 0};
  kb = zc_pub_send_batch(p, &badm, 1), eb = errno;
  CHECKF(kb == -1 && eb == EINVAL, "policy %d: send_batch of a pointer that is no loan, with a full ring: %d (%s)", policy,
         kb, strerror(eb));
  zc_pub_stats_t sb = stats_of(p);
  CHECKF(sb.evicted == 0 && sb.subscribers == 2, "policy %d: the bad sends evicted %lu, left %lu subscribers", policy,
         (unsigned long)sb.evicted, (unsigned long)sb.subscribers);
  uint32_t len = msg_len(RING, 1000);
  char *q = zc_pub_loan(p, len);
  REQUIRE(q != NULL);
  fill_msg(q, RING, len);
  uint64_t t0 = now_ms();
  int k = zc_pub_send(p, q, len, RING);
  int e = errno;
  uint64_t waited = now_ms() - t0;
  zc_pub_stats_t st = stats_of(p);
  int total = RING;
  if (policy == ZC_CHAN_FAIL) {
    CHECKF(k == -1 && e == EAGAIN, "FAIL: send %d (%s)", k, strerror(e));
    CHECK(zc_pub_cancel(p, q) == 0); /* the loan stayed ours */
  } else if (policy == ZC_CHAN_BLOCK) {
    CHECKF(k == -1 && e == ETIMEDOUT && waited >= 150, "BLOCK: send %d (%s) after %lu ms", k, strerror(e), (unsigned long)waited);
    CHECK(zc_pub_cancel(p, q) == 0);
    CHECK(st.subscribers == 2 && st.evicted == 0);
  } else {
    CHECKF(k == 1 && st.evicted == 1 && st.subscribers == 1, "EVICT: send %d, evicted %lu, subscribers %lu", k,
           (unsigned long)st.evicted, (unsigned long)st.subscribers);
    CHECK(strstr(zc_pub_error(p), "evicted") != NULL);
    total++;
    CHECK(ctl_get(f.ctl) == 'a');
    send_acked(p, RING + 1, 200, 1000, 1, f.ctl); /* the fast one alone */
    total += 200;
  }
  ctl_put(f.ctl, 'd');
  ctl_put(z.ctl, 'g');
  int zgot = -1, ze = 0, fgot = -1;
  CHECK(read(z.ctl, &zgot, sizeof zgot) == sizeof zgot && read(z.ctl, &ze, sizeof ze) == sizeof ze);
  if (policy == ZC_PUB_EVICT) /* cut off: what it had not taken is gone, and it is told so */
    CHECKF(zgot == 0 && ze == EPIPE, "the evicted one read %d messages and ended with %s", zgot, strerror(ze));
  else
    CHECKF(zgot == RING && ze == ETIMEDOUT, "the slow one read %d (%s)", zgot, strerror(ze));
  CHECK(read(f.ctl, &fgot, sizeof fgot) == sizeof fgot);
  CHECKF(fgot == total, "the fast one got %d of %d", fgot, total);
  all_back(p, (uint64_t)total);
  ctl_put(f.ctl, 'q');
  ctl_put(z.ctl, 'q');
  CHECK(reap(pf) == 0 && reap(pz) == 0);
  zc_pub_close(p);
  return 0;
}

/* ZC_PUB_EVICT when memory is what is full: one subscriber holds everything it gets. */
static void slow_memory(void) {
  zc_chan_config_t cfg = {0};
  cfg.first_segment = MIB(1);
  cfg.max_bytes = MIB(1);
  cfg.policy = ZC_PUB_EVICT;
  cfg.block_timeout_ms = 200;
  zc_pub_t *p = zc_pub_listen(NULL, &cfg);
  REQUIRE(p != NULL);
  sub_t f = {.maxlen = 1000, .kind = 0}, h = {.maxlen = 1000, .kind = 1};
  pid_t pf = start_sub(p, sub_fast, &f), ph = start_sub(p, sub_fast, &h);
  CHECK(ctl_get(f.ctl) == 'o' && ctl_get(h.ctl) == 'o');
  int n = 40; /* 64 KiB each: the 1 MiB cap holds 16 */
  int hacks = 0;
  for (int s = 0; s < n; s++) {
    char *q = zc_pub_loan(p, 65536); /* the cap reached: the hoarder (holding all it got) is evicted */
    REQUIREF(q != NULL, "loan %d: %s", s, strerror(errno));
    fill_pattern(q, 65536, msg_seed((uint32_t)s));
    int k = zc_pub_send(p, q, 65536, (uint32_t)s);
    CHECK(k >= 1);
    /* each message taken before the next: the fast one holds none, the hoarder every one it was sent
     * (so it is the one to evict, and has taken some, whatever the scheduling) */
    CHECK(ctl_get(f.ctl) == 'a');
    if (stats_of(p).evicted == 0) CHECK(ctl_get(h.ctl) == 'a' && ++hacks > 0);
  }
  ctl_put(f.ctl, 'd'); /* the hoarder, cut off, ends by itself (EPIPE) */
  zc_pub_stats_t st = stats_of(p);
  CHECKF(st.evicted == 1 && st.subscribers == 1 && st.chan.reclaimed >= 1, "memory: evicted %lu subscribers %lu reclaimed %lu",
         (unsigned long)st.evicted, (unsigned long)st.subscribers, (unsigned long)st.chan.reclaimed);
  int fgot = -1, hgot = -1;
  CHECK(read(f.ctl, &fgot, sizeof fgot) == sizeof fgot && read(h.ctl, &hgot, sizeof hgot) == sizeof hgot);
  CHECKF(fgot == n && hgot >= 1 && hgot < n && hgot == hacks, "the fast one got %d of %d, the hoarder %d (%d acknowledged)",
         fgot, n, hgot, hacks);
  all_back(p, (uint64_t)n);
  ctl_put(f.ctl, 'q');
  ctl_put(h.ctl, 'q');
  CHECK(reap(pf) == 0 && reap(ph) == 0);
  zc_pub_close(p);
}

static int t_slow(int argc, char **argv) {
  (void)argc, (void)argv;
  slow_run(ZC_CHAN_FAIL);
  slow_run(ZC_CHAN_BLOCK);
  slow_run(ZC_PUB_EVICT);
  slow_memory();
  CHECK_DONE("fanout_slow");
}

/* ---- fanout_large ---- */
static int t_large(int argc, char **argv) {
  uint32_t n = quick_mode(argc, argv) ? 30 : 80, maxlen = 3u << 20; /* within spawn's 60 s under TSan */
  zc_chan_config_t cfg = forever();
  cfg.max_bytes = MIB(64);
  zc_pub_t *p = zc_pub_listen(NULL, &cfg);
  REQUIRE(p != NULL);
  sub_t s[2];
  pid_t pid[2];
  for (int i = 0; i < 2; i++) {
    s[i] = (sub_t){.first = 0, .n = n, .maxlen = maxlen, .hold = 3 * i};
    pid[i] = start_sub(p, sub_reader, &s[i]);
  }
  send_range(p, 0, n, maxlen, 2);
  for (int i = 0; i < 2; i++) CHECK(ctl_get(s[i].ctl) == 'd');
  all_back(p, n);
  zc_pub_stats_t st = stats_of(p);
  CHECKF(st.chan.returned == n && st.deliveries == 2ull * n, "returned %lu deliveries %lu", (unsigned long)st.chan.returned,
         (unsigned long)st.deliveries);
  for (int i = 0; i < 2; i++) ctl_put(s[i].ctl, 'q');
  for (int i = 0; i < 2; i++) CHECKF(reap(pid[i]) == 0, "subscriber %d failed", i);
  zc_pub_close(p);
  CHECK_DONE("fanout_large");
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"flow", t_flow},       {"last", t_last},       {"kill", t_kill}, {"kill_fail", t_kill_fail},
                                    {"join", t_join}, {"threads", t_threads},       {"hostile", t_hostile}, {"slow", t_slow},
                                    {"large", t_large},     {"silent", t_silent}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
