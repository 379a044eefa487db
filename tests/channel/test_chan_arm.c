/* zc_chan_arm and zc_chan_arm_quiet (consumer, event loops), one process, a socketpair:
 *
 *   chanarm_quiet   zc_chan_arm_quiet reads nothing from the socket: after a send to an armed consumer the
 *                   fd is readable (the wake-up record); zc_chan_arm_quiet then says 1 (a message waits)
 *                   and leaves the fd readable; zc_chan_arm reads the record (the fd is quiet again) and
 *                   says 0 once the message was taken; an armed quiet consumer is woken by the next send
 */
#include "zc_test.h"

#include "zcmem_channel.h"

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

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"quiet", t_quiet}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
