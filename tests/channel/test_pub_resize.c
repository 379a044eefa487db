/* Fan-out loan resizing (zc_pub_loan_resize), subscriber processes reading every byte (fork):
 *   pubresize_flow   2 subscribers; the publisher loans a guess and resizes before sending: 100 B grown to
 *                    1 MiB + 5 keeping 100, 16 B doubled to 300 KiB keeping what was written at each step,
 *                    4 MiB shrunk to 1000 B, a 2 MiB run trimmed in place to 600 KiB, 1000 B grown to
 *                    70000 keeping 500, a slot grown within its class in place; each then filled to its
 *                    final length and sent: both subscribers get every message byte-exact, in order.
 *                    Refused, with the loan intact and then sent: NULL, a stack buffer, a loan + 16, n = 0,
 *                    keep beyond the loan, n above the limit; the old pointer of a moved loan is no loan
 *                    (resize and cancel: EINVAL). All memory back at the end.
 *   pubresize_kill   a killed subscriber during a resize's wait: under an 8 MiB cap (ZC_CHAN_BLOCK, 30 s),
 *                    one subscriber holds a 6 MiB message; growing a 100 B loan to 6 MiB waits; the holder
 *                    is SIGKILLed: the resize goes through (the dead one's message reclaimed) and the other
 *                    subscriber receives the 6 MiB message byte-exact
 *   pubresize_evict  the same holder alive under ZC_PUB_EVICT (block_timeout_ms 300): the resize evicts it
 *                    (evicted 1) and goes through; the other subscriber receives the message
 * In both holder cases the resize starts only once the other subscriber has released the 6 MiB message (it
 * says so on its control pipe): until then it holds the message too, and under ZC_PUB_EVICT a reader that
 * took longer than two block timeouts to check 6 MiB (TSan, a loaded machine) was evicted as well.
 */
#include "pub_test.h"

#include <signal.h>

typedef struct {
  int sock, ctl;
  uint32_t n;      /* messages to receive */
  int hold_big;    /* hold every message of at least 1 MiB (never release it) */
  int tell_release; /* say 'r' on the control pipe after each release */
} sub_t;

static uint64_t seed_of(uint32_t seq) { return (uint64_t)seq * 0x9e3779b1u + 5u; }

static void ctl_put(int fd, char c) { CHECK(write(fd, &c, 1) == 1); }
static char ctl_get(int fd) {
  char c = 0;
  return read(fd, &c, 1) == 1 ? c : 0;
}

/* Receives a->n messages: type = seq, the length in the first 4 bytes, the pattern of seq after them. */
static int sub_reader(void *arg) {
  sub_t *a = arg;
  zc_chan_t *ch = zc_chan_open(a->sock, ZC_CHAN_CONSUMER, NULL);
  REQUIRE(ch != NULL);
  ctl_put(a->ctl, 'k');
  int bad = 0;
  for (uint32_t k = 0; k < a->n; k++) {
    zc_chan_msg_t m;
    REQUIREF(zc_chan_receive(ch, &m, 30000) == 0, "receive %u: %s (%s)", k, strerror(errno), zc_chan_error(ch));
    uint32_t len = 0;
    if (m.len >= 4) memcpy(&len, m.data, 4);
    if (m.type != k || m.len != len || m.len < 4 || verify_pattern((const char *)m.data + 4, m.len - 4, seed_of(k)) >= 0) {
      if (bad++ < 5) CHECKF(0, "message %u: type %u, len %u (header %u)", k, m.type, m.len, len);
    }
    if (a->hold_big && m.len >= (1u << 20)) {
      ctl_put(a->ctl, 'h'); /* holding it */
      continue;
    }
    REQUIRE(zc_chan_release(ch, &m) == 0);
    if (a->tell_release) ctl_put(a->ctl, 'r');
  }
  ctl_put(a->ctl, 'd');
  if (a->hold_big) pause(); /* killed or evicted */
  zc_chan_msg_t m;
  CHECK(zc_chan_receive(ch, &m, 30000) != 0 && errno == EPIPE); /* the publisher closed */
  zc_chan_close(ch);
  return check_exit("pubresize subscriber");
}

static pid_t start_sub(zc_pub_t *p, sub_t *a) {
  pid_t pid = pub_spawn_sub(p, sub_reader, a, &a->sock, &a->ctl);
  REQUIRE(ctl_get(a->ctl) == 'k');
  return pid;
}

/* Message seq of len bytes: len in the first 4 bytes, the pattern of seq after them. */
static void fill_msg(char *q, uint32_t seq, size_t len) {
  uint32_t l = (uint32_t)len;
  memcpy(q, &l, 4);
  fill_pattern(q + 4, len - 4, seed_of(seq));
}

static void send_msg(zc_pub_t *p, void *q, uint32_t seq, size_t len) {
  memcpy(q, &(uint32_t){(uint32_t)len}, 4);
  REQUIREF(zc_pub_send(p, q, len, seq) >= 1, "send %u: %s (%s)", seq, strerror(errno), zc_pub_error(p));
}

/* Loan `first` bytes, write them (header + pattern), resize to `final` keeping `keep`, check that the kept
 * bytes survived, fill the rest and send. */
static void resized(zc_pub_t *p, uint32_t seq, size_t first, size_t final, size_t keep) {
  char *q = zc_pub_loan(p, first);
  REQUIREF(q != NULL, "loan %zu: %s", first, strerror(errno));
  fill_msg(q, seq, first);
  char *r = zc_pub_loan_resize(p, q, final, keep);
  REQUIREF(r != NULL, "resize %zu -> %zu: %s (%s)", first, final, strerror(errno), zc_pub_error(p));
  size_t k = keep < final ? keep : final;
  if (k > 4) CHECKF(verify_pattern(r + 4, k - 4, seed_of(seq)) < 0, "message %u: kept bytes lost in the resize", seq);
  fill_msg(r, seq, final);
  send_msg(p, r, seq, final);
}

static zc_pub_t *publisher(size_t cap, int policy, int block_ms) {
  zc_chan_config_t c;
  memset(&c, 0, sizeof c);
  c.max_bytes = cap;
  c.first_segment = cap;
  c.policy = policy;
  c.block_timeout_ms = block_ms;
  zc_pub_t *p = zc_pub_listen(NULL, &c);
  REQUIREF(p != NULL, "zc_pub_listen: %s", strerror(errno));
  return p;
}

static int t_flow(int argc, char **argv) {
  (void)argc;
  zc_pub_t *p = publisher(0, ZC_CHAN_BLOCK, 20000);
  sub_t s[2] = {{-1, -1, 8, 0, 0}, {-1, -1, 8, 0, 0}};
  pid_t pid[2];
  for (int i = 0; i < 2; i++) pid[i] = start_sub(p, &s[i]);
  uint32_t seq = 0;
  resized(p, seq++, 100, (1u << 20) + 5, 100);      /* slot to run */
  resized(p, seq++, 4u << 20, 1000, 1000);          /* run to slot */
  resized(p, seq++, 2u << 20, 600u << 10, 600u << 10); /* run trimmed in place */
  resized(p, seq++, 1000, 70000, 500);              /* slot to run, keeping part */
  {                                                 /* within the class: in place */
    char *q = zc_pub_loan(p, 100);
    REQUIRE(q != NULL);
    fill_msg(q, seq, 100);
    char *r = zc_pub_loan_resize(p, q, 110, 100);
    CHECK(r == q);
    fill_msg(r, seq, 110);
    send_msg(p, r, seq++, 110);
  }
  { /* 16 B doubled to 300 KiB, keeping what was written at each step */
    size_t cap = 16;
    char *q = zc_pub_loan(p, cap);
    REQUIRE(q != NULL);
    fill_msg(q, seq, cap);
    while (cap < (300u << 10)) {
      size_t next = cap * 2 > (300u << 10) ? (300u << 10) : cap * 2;
      char *r = zc_pub_loan_resize(p, q, next, cap);
      REQUIREF(r != NULL, "resize %zu -> %zu: %s", cap, next, strerror(errno));
      CHECKF(verify_pattern(r + 4, cap - 4, seed_of(seq)) < 0, "kept bytes lost growing %zu -> %zu", cap, next);
      q = r;
      cap = next;
      fill_msg(q, seq, cap);
    }
    send_msg(p, q, seq++, cap);
  }
  { /* refusals: the loan stays a loan and is sent afterwards */
    char *q = zc_pub_loan(p, 5000);
    REQUIRE(q != NULL);
    char stack[64];
    errno = 0;
    CHECK(zc_pub_loan_resize(p, NULL, 100, 0) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(zc_pub_loan_resize(p, stack, 100, 0) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(zc_pub_loan_resize(p, q + 16, 100, 0) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(zc_pub_loan_resize(p, q, 0, 0) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(zc_pub_loan_resize(p, q, 2u << 20, 1u << 20) == NULL && errno == EINVAL); /* keep beyond the loan */
    errno = 0;
    CHECK(zc_pub_loan_resize(p, q, zc_pub_max_msg(p) + 1, 0) == NULL && errno == EMSGSIZE);
    errno = 0;
    CHECK(zc_pub_loan_resize(NULL, q, 100, 0) == NULL && errno == EINVAL);
    fill_msg(q, seq, 5000);
    send_msg(p, q, seq++, 5000);
  }
  { /* the old pointer of a moved loan is no loan */
    char *q = zc_pub_loan(p, 64);
    REQUIRE(q != NULL);
    fill_msg(q, seq, 64);
    char *r = zc_pub_loan_resize(p, q, 200000, 64);
    REQUIRE(r != NULL && r != q);
    errno = 0;
    CHECK(zc_pub_loan_resize(p, q, 100, 0) == NULL && errno == EINVAL);
    CHECK(zc_pub_cancel(p, q) != 0);
    fill_msg(r, seq, 200000);
    send_msg(p, r, seq++, 200000);
  }
  CHECK_EQ(seq, 8);
  for (int i = 0; i < 2; i++) {
    CHECK(ctl_get(s[i].ctl) == 'd');
  }
  zc_pub_collect(p);
  zc_pub_stats_t st;
  zc_pub_stats(p, &st);
  CHECK_EQ(st.chan.inflight_msgs, 0);
  CHECK_EQ(st.chan.loaned_bytes, 0);
  zc_pub_close(p);
  for (int i = 0; i < 2; i++) CHECK_EQ(reap(pid[i]), 0);
  return check_exit(argv[0]);
}

/* One subscriber holds the 6 MiB message 0 (sub 0), the other (sub 1) reads everything. Then the
 * publisher grows a 100 B loan to 6 MiB: memory is full until the holder goes. */
static int holder_case(int argc, char **argv, int policy) {
  (void)argc;
  zc_pub_t *p = publisher(8u << 20, policy, policy == ZC_PUB_EVICT ? 300 : 30000);
  sub_t h = {-1, -1, 1, 1, 0}, r = {-1, -1, 2, 0, 1};
  pid_t ph = start_sub(p, &h), pr = start_sub(p, &r);
  resized(p, 0, 100, 6u << 20, 100);
  CHECK(ctl_get(h.ctl) == 'h'); /* the holder has it */
  CHECK(ctl_get(r.ctl) == 'r'); /* the reader has checked and released it: the holder alone keeps it */
  char *q = zc_pub_loan(p, 100);
  REQUIRE(q != NULL);
  fill_msg(q, 1, 100);
  if (policy == ZC_CHAN_BLOCK) {
    kill(ph, SIGKILL); /* the resize below waits until the publisher sees the death */
    CHECK_EQ(reap(ph), 128 + SIGKILL);
  }
  char *g = zc_pub_loan_resize(p, q, 6u << 20, 100);
  CHECKF(g != NULL, "resize under a full cap: %s (%s)", strerror(errno), zc_pub_error(p));
  if (g != NULL) {
    fill_msg(g, 1, 6u << 20);
    send_msg(p, g, 1, 6u << 20);
    CHECK(ctl_get(r.ctl) == 'r');
  }
  CHECK(ctl_get(r.ctl) == 'd');
  zc_pub_stats_t st;
  zc_pub_stats(p, &st);
  if (policy == ZC_PUB_EVICT) {
    CHECK_EQ(st.evicted, 1);
    kill(ph, SIGKILL);
    reap(ph);
  }
  CHECK_EQ(zc_pub_subscribers(p), 1);
  zc_pub_close(p);
  CHECK_EQ(reap(pr), 0);
  return check_exit(argv[0]);
}

static int t_kill(int argc, char **argv) { return holder_case(argc, argv, ZC_CHAN_BLOCK); }
static int t_evict(int argc, char **argv) { return holder_case(argc, argv, ZC_PUB_EVICT); }

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"flow", t_flow}, {"kill", t_kill}, {"evict", t_evict}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
