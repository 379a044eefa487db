/* zc_chan_arm and zc_chan_arm_quiet (consumer, event loops), one process, a socketpair:
 *
 *   chanarm_quiet   zc_chan_arm_quiet reads nothing from the socket: after a send to an armed consumer the
 *                   fd is readable (the wake-up record); zc_chan_arm_quiet then says 1 (a message waits)
 *                   and leaves the fd readable; zc_chan_arm reads the record (the fd is quiet again) and
 *                   says 0 once the message was taken; an armed quiet consumer is woken by the next send
 *   chanarm_ready   an arm that says 1 (a message waits) leaves no wake-up of its own behind, forced through
 *                   the test points (ZC_DEBUG builds only: the test is registered there alone), with the
 *                   producer's send made from the hook, in the consumer's window:
 *                   withdrawn   the send lands after the arm's first look and before its flag (no kick);
 *                               the second look finds the message. The flag must not stay up: the next
 *                               send, taken while the consumer is busy, must not make the fd readable
 *                   due         the send lands after the flag (it kicks); the second look finds the message.
 *                               After the take, a quiet arm must read that kick: the fd quiet, 0
 *                   late        the flag is up from an earlier arm that said 0; the send lands after the
 *                               next arm read the socket and before it looks (its kick comes after the
 *                               read); the look finds the message. Again a quiet arm must read that kick
 *                   Before the fix (the flag left up; a quiet arm that never reads) each fails with the fd
 *                   readable and nothing to take (an event loop's wasted wake-up and look).
 */
#include "zc_test.h"

#include "zcmem_channel.h"
#include "chan_internal.h" /* the test points' numbers */

#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

static int readable(int fd, int timeout_ms) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

static int sv[2];
static zc_chan_t *cons;
static void *open_consumer(void *arg) {
  (void)arg;
  cons = zc_chan_open(sv[1], ZC_CHAN_CONSUMER, NULL);
  return NULL;
}

static void send_one(zc_chan_t *prod, uint32_t type) {
  void *p = zc_chan_loan(prod, 100);
  REQUIRE(p != NULL);
  memset(p, (int)type, 100);
  REQUIRE(zc_chan_send(prod, p, 100, type) == 0);
}

static int t_quiet(int argc, char **argv) {
  (void)argc, (void)argv;
  REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, open_consumer, NULL) == 0); /* the handshake needs both ends at once */
  zc_chan_t *prod = zc_chan_open(sv[0], ZC_CHAN_PRODUCER, NULL);
  pthread_join(t, NULL);
  REQUIRE(prod != NULL && cons != NULL);
  int fd = zc_chan_fd(cons);
  void *warm = zc_chan_loan(prod, 100); /* the first data segment, announced on the socket now */
  REQUIRE(warm != NULL && zc_chan_cancel(prod, warm) == 0);
  CHECK_EQ(zc_chan_arm(cons), 0); /* reads the segment record: quiet */
  CHECK(!readable(fd, 0));
  send_one(prod, 1);
  CHECKF(readable(fd, 10000), "an armed consumer was not woken");
  CHECK_EQ(zc_chan_arm_quiet(cons), 1); /* the message waits */
  CHECK(readable(fd, 0));               /* nothing was read */
  zc_chan_msg_t m;
  REQUIRE(zc_chan_receive(cons, &m, 0) == 0);
  CHECK_EQ(m.type, 1);
  REQUIRE(zc_chan_release(cons, &m) == 0);
  CHECK_EQ(zc_chan_arm(cons), 0); /* reads the wake-up */
  CHECK(!readable(fd, 100));
  /* armed quietly (the fd was just quiet): the next send wakes it */
  CHECK_EQ(zc_chan_arm_quiet(cons), 0);
  send_one(prod, 2);
  CHECKF(readable(fd, 10000), "a quietly armed consumer was not woken");
  CHECK_EQ(zc_chan_arm(cons), 1);
  REQUIRE(zc_chan_receive(cons, &m, 0) == 0);
  CHECK_EQ(m.type, 2);
  REQUIRE(zc_chan_release(cons, &m) == 0);
  CHECK_EQ(zc_chan_arm(cons), 0);
  CHECK(!readable(fd, 100));
  CHECK(zc_chan_arm_quiet(prod) == -1 && errno == EINVAL); /* consumers only */
  zc_chan_close(prod);
  zc_chan_close(cons);
  return check_exit(argv[0]);
}

/* ---- ready: the test points (exported by the library in ZC_DEBUG builds only, chan_setup.c) ---- */
extern void zc_chan_test_hook(void (*fn)(int point)) __attribute__((weak));
static zc_chan_t *hook_prod;
static int hook_point, hook_hits;
static uint32_t hook_type;
/* At the armed point: the producer sends now (this process, another channel object: no lock is held). */
static void hook(int point) {
  if (point != hook_point || hook_point == 0) return;
  hook_point = 0;
  hook_hits++;
  send_one(hook_prod, hook_type);
}
static void hook_at(int point, uint32_t type) {
  hook_type = type;
  hook_point = point;
}

/* Take one message of type and release it. */
static void take_one(uint32_t type) {
  zc_chan_msg_t m;
  REQUIREF(zc_chan_receive(cons, &m, 0) == 0, "message %u: %s", type, strerror(errno));
  CHECK_EQ(m.type, type);
  REQUIRE(zc_chan_release(cons, &m) == 0);
}

static int t_ready(int argc, char **argv) {
  (void)argc;
  REQUIREF(zc_chan_test_hook != NULL, "no test points in this build (the test is registered for ZCMEM_DEBUG builds)");
  REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, open_consumer, NULL) == 0);
  zc_chan_t *prod = zc_chan_open(sv[0], ZC_CHAN_PRODUCER, NULL);
  pthread_join(t, NULL);
  REQUIRE(prod != NULL && cons != NULL);
  int fd = zc_chan_fd(cons);
  void *warm = zc_chan_loan(prod, 100);
  REQUIRE(warm != NULL && zc_chan_cancel(prod, warm) == 0);
  CHECK_EQ(zc_chan_arm(cons), 0); /* reads the segment record; the flag is up */
  send_one(prod, 0);              /* takes the flag down (and kicks) */
  CHECKF(readable(fd, 10000), "an armed consumer was not woken");
  CHECK_EQ(zc_chan_arm(cons), 1); /* reads the kick: nothing of ours is up or unread now */
  take_one(0);
  hook_prod = prod;
  zc_chan_test_hook(hook);

  /* withdrawn: the send between the first look and the flag; the flag must come down again */
  CHECK(!readable(fd, 0));
  hook_at(CHAN_TP_ARM, 1);
  CHECK_EQ(zc_chan_arm_quiet(cons), 1); /* the second look found message 1 */
  CHECK_EQ(hook_hits, 1);
  take_one(1);
  send_one(prod, 2); /* the consumer is busy (not armed): no wake-up is asked for */
  CHECKF(!readable(fd, 0), "withdrawn: a send after an arm that said 1 made zc_chan_fd readable (the arm left its "
         "CHAN_ARMED up; nothing is asleep)");
  take_one(2);
  CHECK_EQ(zc_chan_arm(cons), 0); /* reads what the mutation left: the next part starts quiet */
  CHECK(!readable(fd, 0));
  CHECK_EQ(zc_chan_arm(cons), 0); /* armed twice: harmless, still quiet */

  /* due: the send after the flag (it kicks), the second look finds the message */
  hook_at(CHAN_TP_ARMED, 3);
  CHECK_EQ(zc_chan_arm_quiet(cons), 1);
  CHECK_EQ(hook_hits, 2);
  take_one(3);
  CHECK_EQ(zc_chan_arm_quiet(cons), 0);
  CHECKF(!readable(fd, 0), "due: zc_chan_fd readable after a quiet arm said 0 with nothing to take (the kick of the "
         "arm that said 1 left unread)");
  CHECK_EQ(zc_chan_arm(cons), 0);

  /* late: the flag is up (the arm above said 0); the next arm reads the socket, then the send (it kicks
   * after the read), then the arm's first look finds the message */
  CHECK(!readable(fd, 0));
  hook_at(CHAN_TP_ARM_LOOK, 4);
  CHECK_EQ(zc_chan_arm(cons), 1);
  CHECK_EQ(hook_hits, 3);
  take_one(4);
  CHECK_EQ(zc_chan_arm_quiet(cons), 0);
  CHECKF(!readable(fd, 0), "late: zc_chan_fd readable after a quiet arm said 0 with nothing to take (the kick for "
         "the flag of the earlier arm left unread)");

  /* still a working event loop: armed, the next send wakes it */
  send_one(prod, 5);
  CHECKF(readable(fd, 10000), "an armed consumer was not woken");
  CHECK_EQ(zc_chan_arm(cons), 1);
  take_one(5);
  CHECK_EQ(zc_chan_arm(cons), 0);
  CHECK(!readable(fd, 0));
  zc_chan_test_hook(NULL);
  zc_chan_close(prod);
  zc_chan_close(cons);
  return check_exit(argv[0]);
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"quiet", t_quiet}, {"ready", t_ready}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
