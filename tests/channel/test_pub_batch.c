/* Fan-out batch send (zc_pub_send_batch): N loans to every subscriber, each subscriber woken once per
 * batch. Subscriber processes are ordinary consumers.
 *
 *   pubbatch_order    three subscribers (two blocking readers, one event-loop reader that sleeps in poll on
 *                     zc_chan_fd after zc_chan_arm) and a 64-entry ring: 1500 messages in batches of 1 to
 *                     150 (a batch larger than the ring waits for room inside the batch); each subscriber
 *                     gets every message in order, byte-exact; sent 1500, deliveries 4500, and once every
 *                     subscriber released everything, nothing is in flight. The event-loop reader only
 *                     wakes if the batch's wake reaches it (its poll has no other wake-up)
 *   pubbatch_kill     a subscriber that reads nothing is SIGKILLed before a batch of 150 into its 64-entry
 *                     ring: the batch finds its ring full, sees it dead, drops it and goes on: 150 sent, the
 *                     other subscriber gets all 150; the 64 references the dead one held are let go
 *                     (dropped 64, left 1) and, after the reader's releases, nothing is in flight
 *   pubbatch_hostile  a subscriber that releases a message twice and then reads nothing: the next batch
 *                     (longer than its ring) drains its return ring, cuts it off alone (cut_off 1, the reason
 *                     names the double release), and goes on; the honest subscriber gets everything;
 *                     bad arguments: EINVAL
 */
#include "pub_test.h"

#include "zcmem_channel.h"

#include <poll.h>
#include <sys/socket.h>

static uint64_t seed_of(uint32_t seq) { return (uint64_t)seq * 0x9e3779b1u + 7u; }
static uint32_t len_of(uint32_t seq) { return 1u + (uint32_t)(splitmix64(seq) % 2000u); }

static void ctl_put(int fd, char c) { CHECK(write(fd, &c, 1) == 1); }
static char ctl_get(int fd) {
  char c = 0;
  if (read(fd, &c, 1) != 1) return 0;
  return c;
}

/* Loan and fill messages first..first+n-1 into m[]. */
static void loan_msgs(zc_pub_t *p, zc_chan_msg_t *m, uint32_t first, int n) {
  for (int k = 0; k < n; k++) {
    uint32_t seq = first + (uint32_t)k, len = len_of(seq);
    void *q = zc_pub_loan(p, len);
    REQUIREF(q != NULL, "loan %u: %s (%s)", seq, strerror(errno), zc_pub_error(p));
    fill_pattern(q, len, seed_of(seq));
    m[k] = (zc_chan_msg_t){q, len, seq, 0};
  }
}

/* Loan messages first..first+n-1, then send them in one batch; returns what the batch returned. */
static int batch(zc_pub_t *p, uint32_t first, int n) {
  static zc_chan_msg_t m[256];
  REQUIRE(n <= 256);
  loan_msgs(p, m, first, n);
  return zc_pub_send_batch(p, m, n);
}

typedef struct {
  int sock, ctl;
  uint32_t n;   /* messages to receive */
  int evloop;   /* 1: wait in poll on zc_chan_fd after zc_chan_arm, never in zc_chan_receive */
} sub_t;

/* Receives a.n messages in order, byte-exact, releasing each; then answers 'k'. */
static int sub_reader(void *arg) {
  sub_t *a = arg;
  zc_chan_t *ch = zc_chan_open(a->sock, ZC_CHAN_CONSUMER, NULL);
  REQUIRE(ch != NULL);
  ctl_put(a->ctl, 'k');
  for (uint32_t next = 0; next < a->n;) {
    zc_chan_msg_t m;
    if (a->evloop) {
      if (zc_chan_receive(ch, &m, 0) != 0) {
        REQUIREF(errno == EAGAIN, "receive %u: %s", next, strerror(errno));
        int r = zc_chan_arm(ch);
        REQUIRE(r >= 0);
        if (r == 0) {
          struct pollfd pf = {zc_chan_fd(ch), POLLIN, 0};
          REQUIREF(poll(&pf, 1, 30000) == 1, "message %u: no wake-up reached the armed subscriber", next);
        }
        continue;
      }
    } else {
      REQUIREF(zc_chan_receive(ch, &m, -1) == 0, "receive %u: %s (%s)", next, strerror(errno), zc_chan_error(ch));
    }
    REQUIREF(m.type == next && m.len == len_of(next), "message %u: type %u len %u", next, m.type, m.len);
    REQUIREF(verify_pattern(m.data, m.len, seed_of(next)) < 0, "message %u: bytes differ", next);
    REQUIRE(zc_chan_release(ch, &m) == 0);
    next++;
  }
  ctl_put(a->ctl, 'k');
  ctl_get(a->ctl); /* until the parent is done with its checks */
  zc_chan_close(ch);
  return 0;
}

/* Reads nothing. */
static int sub_sleeper(void *arg) {
  sub_t *a = arg;
  zc_chan_t *ch = zc_chan_open(a->sock, ZC_CHAN_CONSUMER, NULL);
  REQUIRE(ch != NULL);
  ctl_put(a->ctl, 'k');
  for (;;) pause();
  return 0;
}

/* Receives a.n messages, releases the first one twice (a handle it no longer holds), answers 'k', then
 * reads nothing more. */
static int sub_double(void *arg) {
  sub_t *a = arg;
  zc_chan_t *ch = zc_chan_open(a->sock, ZC_CHAN_CONSUMER, NULL);
  REQUIRE(ch != NULL);
  ctl_put(a->ctl, 'k');
  zc_chan_msg_t first;
  for (uint32_t k = 0; k < a->n; k++) {
    zc_chan_msg_t m;
    REQUIREF(zc_chan_receive(ch, &m, -1) == 0, "receive %u: %s", k, strerror(errno));
    if (k == 0) first = m;
    REQUIRE(zc_chan_release(ch, &m) == 0);
  }
  REQUIRE(zc_chan_release(ch, &first) == 0); /* the second release of message 0 */
  ctl_put(a->ctl, 'k');
  for (;;) pause();
  return 0;
}

static pid_t start_sub(zc_pub_t *p, int (*fn)(void *), sub_t *a) {
  pid_t pid = pub_spawn_sub(p, fn, a, &a->sock, &a->ctl);
  REQUIRE(ctl_get(a->ctl) == 'k');
  return pid;
}

static zc_pub_t *publisher(void) {
  zc_chan_config_t c;
  memset(&c, 0, sizeof c);
  c.ring_entries = 64;
  c.block_timeout_ms = -1; /* a loaded machine: a reader may be off the CPU for long (spawn's alarm bounds it) */
  zc_pub_t *p = zc_pub_listen(NULL, &c);
  REQUIRE(p != NULL);
  return p;
}

/* Once every holder released: collect until nothing is in flight. */
static void wait_idle(zc_pub_t *p) {
  long left = -1;
  WAIT_UNTIL((left = zc_pub_collect(p)) == 0, 30000);
  CHECKF(left == 0, "%ld messages still in flight (%s)", left, zc_pub_error(p));
}

static int t_order(int argc, char **argv) {
  (void)argc, (void)argv;
  zc_pub_t *p = publisher();
  enum { N = 1500 };
  sub_t s[3] = {{-1, -1, N, 0}, {-1, -1, N, 0}, {-1, -1, N, 1}};
  pid_t pid[3];
  for (int i = 0; i < 3; i++) pid[i] = start_sub(p, sub_reader, &s[i]);
  uint32_t sent = 0;
  for (int k = 1; sent < N; k = k % 150 + 37) {
    int n = (int)(N - sent < (uint32_t)k ? N - sent : (uint32_t)k);
    int r = batch(p, sent, n);
    REQUIREF(r == n, "batch of %d from %u: %d (%s, %s)", n, sent, r, strerror(errno), zc_pub_error(p));
    sent += (uint32_t)n;
  }
  for (int i = 0; i < 3; i++) CHECKF(ctl_get(s[i].ctl) == 'k', "subscriber %d did not get every message", i);
  zc_pub_stats_t st;
  wait_idle(p);
  zc_pub_stats(p, &st);
  CHECK_EQ(st.chan.sent, N);
  CHECK_EQ(st.deliveries, 3 * N);
  CHECK_EQ(st.chan.returned, N);
  CHECK_EQ(st.chan.reclaimed, 0);
  CHECK_EQ(st.chan.loaned_msgs, 0);
  for (int i = 0; i < 3; i++) {
    ctl_put(s[i].ctl, 'q');
    CHECK_EQ(reap(pid[i]), 0);
  }
  zc_pub_close(p);
  return check_exit(argv[0]);
}

static int t_kill(int argc, char **argv) {
  (void)argc, (void)argv;
  zc_pub_t *p = publisher();
  sub_t a = {-1, -1, 150, 0}, b = {-1, -1, 0, 0};
  pid_t pa = start_sub(p, sub_reader, &a), pb = start_sub(p, sub_sleeper, &b);
  static zc_chan_msg_t m[150];
  loan_msgs(p, m, 0, 150); /* the data segments now: announcing one to a dead link would drop it first */
  kill(pb, SIGKILL);
  CHECK_EQ(reap(pb), 128 + SIGKILL);
  int r = zc_pub_send_batch(p, m, 150); /* its ring fills at 64: the batch waits on it, sees it dead, goes on */
  CHECKF(r == 150, "batch: %d (%s, %s)", r, strerror(errno), zc_pub_error(p));
  CHECK(ctl_get(a.ctl) == 'k');
  wait_idle(p);
  zc_pub_stats_t st;
  zc_pub_stats(p, &st);
  CHECK_EQ(st.subscribers, 1);
  CHECK_EQ(st.left, 1);
  CHECK_EQ(st.dropped, 64); /* the dead one's full ring, let go on its behalf */
  CHECK_EQ(st.deliveries, 150 + 64);
  CHECK_EQ(st.chan.returned + st.chan.reclaimed, 150);
  ctl_put(a.ctl, 'q');
  CHECK_EQ(reap(pa), 0);
  zc_pub_close(p);
  return check_exit(argv[0]);
}

static int t_hostile(int argc, char **argv) {
  (void)argc, (void)argv;
  zc_pub_t *p = publisher();
  CHECK(zc_pub_send_batch(p, NULL, 1) == -1 && errno == EINVAL);
  zc_chan_msg_t none;
  memset(&none, 0, sizeof none);
  CHECK(zc_pub_send_batch(p, &none, 0) == -1 && errno == EINVAL);
  sub_t a = {-1, -1, 160, 0}, h = {-1, -1, 10, 0};
  pid_t pa = start_sub(p, sub_reader, &a), ph = start_sub(p, sub_double, &h);
  CHECK_EQ(batch(p, 0, 10), 10);
  CHECK(ctl_get(h.ctl) == 'k'); /* it released message 0 twice */
  int r = batch(p, 10, 150); /* longer than its ring: the wait drains its returns and cuts it off */
  CHECKF(r == 150, "batch: %d (%s, %s)", r, strerror(errno), zc_pub_error(p));
  CHECK(ctl_get(a.ctl) == 'k');
  wait_idle(p);
  zc_pub_stats_t st;
  zc_pub_stats(p, &st);
  CHECK_EQ(st.cut_off, 1);
  CHECK_EQ(st.subscribers, 1);
  CHECKF(strstr(zc_pub_error(p), "handle") != NULL, "reason: %s", zc_pub_error(p)); /* a second release: not held, or stale */
  CHECK_EQ(st.chan.returned + st.chan.reclaimed, 160);
  ctl_put(a.ctl, 'q');
  CHECK_EQ(reap(pa), 0);
  kill(ph, SIGKILL);
  reap(ph);
  zc_pub_close(p);
  return check_exit(argv[0]);
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"order", t_order}, {"kill", t_kill}, {"hostile", t_hostile}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
