/* Producer back-pressure for event loops (zc_chan_arm_space + zc_chan_fd), across two processes (fork).
 *
 *   space_ring     ZC_CHAN_FAIL, a full ring: send fails with EAGAIN, arm_space arms, the fd is not
 *                  readable; the consumer takes one message: the fd becomes readable, arm_space says 1,
 *                  the send goes through. Then 2000 messages with nobody armed: the consumer made no
 *                  wake-up system call at all (stats.wakes) and the fd stays unreadable
 *   space_memory   the same when the memory cap is what is full (a loan fails with EAGAIN until the
 *                  consumer releases a message)
 *   space_kicks    a producer that keeps setting the armed flag and never reads its socket: after 2000
 *                  messages at most one wake-up record waits in it
 *   space_flood    a consumer that floods the producer's socket with wake-up records and writes garbage
 *                  into the wake-up word: every arm_space returns at once and the producer goes on
 */
#include "zc_test.h"

#include "chan_internal.h"
#include "zcmem_channel.h"

#include <poll.h>
#include <sched.h>
#include <sys/socket.h>

static int sv[2], go[2], done[2];

static zc_chan_t *open_end(int fd, zc_chan_role_t role, const zc_chan_config_t *cfg) {
  zc_chan_t *ch = zc_chan_open(fd, role, cfg);
  CHECKF(ch != NULL, "open: %s", strerror(errno));
  REQUIRE(ch != NULL);
  return ch;
}

static void setup(void) {
  REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
  REQUIRE(pipe(go) == 0 && pipe(done) == 0);
}
static void put(int fd) { CHECK(write(fd, "x", 1) == 1); }
static void get(int fd) {
  char b;
  CHECK(read(fd, &b, 1) == 1);
}
static int readable(int fd, int ms) {
  struct pollfd pf = {fd, POLLIN, 0};
  return poll(&pf, 1, ms) == 1 && (pf.revents & POLLIN);
}
static uint64_t wakes_of(zc_chan_t *ch) {
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  return st.wakes;
}

/* Receive exactly one message (waiting for the producer as long as it takes: the consumers run in spawned
 * children, which spawn's alarm bounds), check it, and release it or keep it in *held. */
static void take_one(zc_chan_t *ch, zc_chan_msg_t *held) {
  zc_chan_msg_t m;
  if (zc_chan_receive(ch, &m, -1) != 0) {
    CHECKF(0, "receive: %s (%s)", strerror(errno), zc_chan_error(ch));
    return;
  }
  CHECKF(verify_pattern(m.data, m.len, m.type) < 0, "message %u corrupt", m.type);
  if (held) *held = m;
  else CHECK(zc_chan_release(ch, &m) == 0);
}

static char *loan_filled(zc_chan_t *ch, size_t n, uint32_t seq) {
  char *p = zc_chan_loan(ch, n);
  if (p) fill_pattern(p, n, seq);
  return p;
}

/* ---- space_ring ---- */
enum { RING = 64, FLOW = 2000 };

static int ring_consumer(void *arg) {
  (void)arg;
  close(sv[0]);
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_CONSUMER, NULL);
  get(go[0]);
  take_one(ch, NULL); /* room for one: the armed producer gets one kick */
  put(done[1]);
  for (int k = 1; k < RING + 1; k++) take_one(ch, NULL);
  CHECK_EQ(wakes_of(ch), 1);
  get(go[0]);
  for (int k = 0; k < FLOW; k++) take_one(ch, NULL);
  CHECKF(wakes_of(ch) == 1, "%lu wake-ups with nobody armed", (unsigned long)wakes_of(ch) - 1);
  put(done[1]);
  get(go[0]); /* the producer looks at its socket before our end of file makes it readable */
  zc_chan_close(ch);
  return check_failures ? 1 : 0;
}

static int t_space_ring(int argc, char **argv) {
  (void)argc, (void)argv;
  setup();
  pid_t c = spawn(ring_consumer, NULL);
  close(sv[1]);
  zc_chan_config_t cfg = {0};
  cfg.ring_entries = RING;
  cfg.policy = ZC_CHAN_FAIL;
  zc_chan_t *ch = open_end(sv[0], ZC_CHAN_PRODUCER, &cfg);
  int fd = zc_chan_fd(ch);
  uint32_t seq = 0;
  for (int k = 0; k < RING; k++) {
    char *p = loan_filled(ch, 64, seq);
    REQUIRE(p != NULL);
    CHECK(zc_chan_send(ch, p, 64, seq++) == 0);
  }
  char *p = loan_filled(ch, 64, seq);
  REQUIRE(p != NULL);
  CHECK(zc_chan_send(ch, p, 64, seq) == -1 && errno == EAGAIN); /* the loan stays ours */
  CHECK_EQ(zc_chan_arm_space(ch), 0);
  CHECK(!readable(fd, 0));
  put(go[1]);
  CHECK(readable(fd, 60000)); /* the consumer took one: the event loop wakes */
  get(done[0]);
  CHECK_EQ(zc_chan_arm_space(ch), 1); /* room came back: retry now */
  CHECK(!readable(fd, 0));            /* and the wake-up was drained */
  CHECK(zc_chan_send(ch, p, 64, seq++) == 0);
  /* a flow with nobody armed: no wake-up record, no system call on the consumer's side */
  put(go[1]);
  for (int k = 0; k < FLOW; k++) {
    p = loan_filled(ch, 64, seq);
    REQUIRE(p != NULL);
    while (zc_chan_send(ch, p, 64, seq) != 0) {
      CHECKF(errno == EAGAIN, "send: %s", strerror(errno));
      if (errno != EAGAIN) break;
      sched_yield();
    }
    seq++;
  }
  get(done[0]); /* the consumer took all of them */
  CHECK(!readable(fd, 0));
  put(go[1]);
  int rc = reap(c);
  CHECKF(rc == 0, "consumer exit %d", rc);
  zc_chan_close(ch);
  CHECK_DONE("space_ring");
}

/* ---- space_memory ---- */
enum { BIG = 64 << 10, PER_PAGE = (512 << 10) / BIG };

static int memory_consumer(void *arg) {
  (void)arg;
  close(sv[0]);
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_CONSUMER, NULL);
  zc_chan_msg_t held[PER_PAGE];
  for (int k = 0; k < PER_PAGE; k++) take_one(ch, &held[k]);
  put(done[1]);
  get(go[0]);
  CHECK(zc_chan_release(ch, &held[3]) == 0); /* one slot back */
  take_one(ch, NULL);
  for (int k = 0; k < PER_PAGE; k++)
    if (k != 3) CHECK(zc_chan_release(ch, &held[k]) == 0);
  zc_chan_close(ch);
  return check_failures ? 1 : 0;
}

static int t_space_memory(int argc, char **argv) {
  (void)argc, (void)argv;
  setup();
  pid_t c = spawn(memory_consumer, NULL);
  close(sv[1]);
  zc_chan_config_t cfg = {0};
  cfg.first_segment = cfg.max_bytes = 512 << 10; /* one page: 8 slots of 64 KiB */
  cfg.policy = ZC_CHAN_FAIL;
  zc_chan_t *ch = open_end(sv[0], ZC_CHAN_PRODUCER, &cfg);
  int fd = zc_chan_fd(ch);
  for (uint32_t k = 0; k < PER_PAGE; k++) {
    char *p = loan_filled(ch, BIG, k);
    REQUIRE(p != NULL);
    CHECK(zc_chan_send(ch, p, BIG, k) == 0);
  }
  get(done[0]); /* the consumer holds all of them */
  CHECK(zc_chan_loan(ch, BIG) == NULL && errno == EAGAIN);
  int r;
  while ((r = zc_chan_arm_space(ch)) == 1) /* it took descriptors since we looked: retry, still full */
    CHECK(zc_chan_loan(ch, BIG) == NULL && errno == EAGAIN);
  CHECK_EQ(r, 0);
  CHECK(!readable(fd, 0));
  put(go[1]);
  CHECK(readable(fd, 60000)); /* a release: memory came back */
  CHECK_EQ(zc_chan_arm_space(ch), 1);
  char *p = loan_filled(ch, BIG, PER_PAGE);
  CHECKF(p != NULL, "loan after the wake-up: %s", strerror(errno));
  if (p) CHECK(zc_chan_send(ch, p, BIG, PER_PAGE) == 0);
  int rc = reap(c);
  CHECKF(rc == 0, "consumer exit %d", rc);
  CHECK(WAIT_UNTIL(zc_chan_arm_space(ch) == -1, 60000) && errno == EPIPE); /* the consumer's end */
  zc_chan_close(ch);
  CHECK_DONE("space_memory");
}

/* ---- space_kicks: the consumer's bound against a producer that keeps asking ---- */
static int kicks_consumer(void *arg) {
  (void)arg;
  close(sv[0]);
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_CONSUMER, NULL);
  for (int k = 0; k < FLOW; k++) take_one(ch, NULL);
  printf("space_kicks: the consumer made %lu wake-up calls for %d messages\n", (unsigned long)wakes_of(ch), FLOW);
  put(done[1]);
  get(go[0]);
  zc_chan_close(ch);
  return check_failures ? 1 : 0;
}

static int t_space_kicks(int argc, char **argv) {
  (void)argc, (void)argv;
  setup();
  pid_t c = spawn(kicks_consumer, NULL);
  close(sv[1]);
  zc_chan_t *ch = open_end(sv[0], ZC_CHAN_PRODUCER, NULL);
  for (uint32_t k = 0; k < FLOW; k++) {
    __atomic_fetch_or(&ch->ctl->p_wait, CHAN_SPACE_ARMED, __ATOMIC_SEQ_CST); /* armed, never reads */
    char *p = loan_filled(ch, 64, k);
    REQUIRE(p != NULL);
    CHECK(zc_chan_send(ch, p, 64, k) == 0);
  }
  get(done[0]);
  int records = 0;
  chan_wire_t w;
  while (recv(zc_chan_fd(ch), &w, sizeof w, MSG_DONTWAIT) == (ssize_t)sizeof w) {
    CHECK(w.kind == WIRE_KICK);
    records++;
  }
  CHECKF(records == 1, "%d wake-up records unread (at most 1, and at least the first)", records);
  put(go[1]);
  int rc = reap(c);
  CHECKF(rc == 0, "consumer exit %d", rc);
  zc_chan_close(ch);
  CHECK_DONE("space_kicks");
}

/* ---- space_flood: a hostile consumer cannot make arm_space block or spin ---- */
static int flood_consumer(void *arg) {
  (void)arg;
  close(sv[0]);
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_CONSUMER, NULL);
  chan_wire_t k = {CHAN_MAGIC, WIRE_KICK, ZC_CHAN_CONSUMER, 0, 0, 0};
  int n = 0;
  while (send(sv[1], &k, sizeof k, MSG_DONTWAIT) == (ssize_t)sizeof k) n++; /* until the socket is full */
  for (int i = 0; i < 1000; i++) __atomic_store_n(&ch->ctl->p_wait, 0x7fffffffu + (uint32_t)i, __ATOMIC_RELAXED);
  printf("space_flood: %d wake-up records queued\n", n);
  put(done[1]);
  get(go[0]);
  for (int i = 0; i < 4; i++) take_one(ch, NULL);
  zc_chan_close(ch);
  return check_failures ? 1 : 0;
}

static int t_space_flood(int argc, char **argv) {
  (void)argc, (void)argv;
  setup();
  pid_t c = spawn(flood_consumer, NULL);
  close(sv[1]);
  zc_chan_config_t cfg = {0};
  cfg.policy = ZC_CHAN_FAIL;
  zc_chan_t *ch = open_end(sv[0], ZC_CHAN_PRODUCER, &cfg);
  get(done[0]);
  alarm(60); /* a call that never returns fails the test */
  for (int i = 0; i < 4; i++) {
    int r = zc_chan_arm_space(ch); /* reads a bounded number of records per call */
    CHECKF(r == 0 || r == 1, "arm_space: %d (%s)", r, strerror(errno));
    char *p = loan_filled(ch, 100, (uint32_t)i);
    REQUIRE(p != NULL);
    CHECK(zc_chan_send(ch, p, 100, (uint32_t)i) == 0);
  }
  alarm(0);
  put(go[1]);
  int rc = reap(c);
  CHECKF(rc == 0, "consumer exit %d", rc);
  zc_chan_close(ch);
  CHECK_DONE("space_flood");
}

static const zc_case_t cases[] = {{"space_ring", t_space_ring},   {"space_memory", t_space_memory},
                                  {"space_kicks", t_space_kicks}, {"space_flood", t_space_flood},
                                  {NULL, NULL}};

int main(int argc, char **argv) { return zc_run_case(argc, argv, cases); }
