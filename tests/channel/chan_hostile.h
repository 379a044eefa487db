/* Helpers shared by the channel tests that play a hostile or dying peer by hand (test_channel_trust.c,
 * test_channel_peer.c): the socket pair and pipes of one test, opening an end, one-byte signals between
 * the two processes, waiting for the channel's death, checking that the producer reclaimed everything,
 * and raw protocol records. Uses the internal layout (chan_internal.h). Also used by test_channel_abuse.c. */
#ifndef CHAN_HOSTILE_H
#define CHAN_HOSTILE_H
#include "chan_test.h"

#include "chan_internal.h"

#include <poll.h>

/* the socket pair and the signalling pipes of the test being run (some tests need only sv) */
__attribute__((unused)) static int sv[2], pipefd[2], pipe2fd[2];

static inline zc_chan_t *open_end(int fd, zc_chan_role_t role, const zc_chan_config_t *cfg) {
  zc_chan_t *ch = zc_chan_open(fd, role, cfg);
  REQUIREF(ch != NULL, "open: %s", strerror(errno));
  return ch;
}

static inline void signal_byte(int fd) { REQUIREF(write(fd, "x", 1) == 1, "pipe write: %s", strerror(errno)); }
static inline void wait_byte(int fd) {
  char b;
  REQUIREF(read(fd, &b, 1) == 1, "pipe read: %s", strerror(errno));
}

static inline int collect_until_dead(zc_chan_t *ch) {
  uint64_t end = now_ns() + 10000000000ull;
  while (now_ns() < end) {
    if (zc_chan_collect(ch) < 0) return errno;
    sleep_ms(2);
  }
  return 0;
}

/* After the peer's end (err: the errno the channel now gives, EPIPE or EPROTO): nothing in flight or on
 * loan, every byte free, every message sent either returned or reclaimed; loan and collect fail with err. */
static inline void check_reclaimed(zc_chan_t *ch, int err) {
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  REQUIREF(st.inflight_msgs == 0 && st.inflight_bytes == 0 && st.loaned_msgs == 0 &&
               st.free_bytes == st.segment_bytes && st.returned + st.reclaimed == st.sent,
           "after the peer's end: inflight %lu (%lu B), loaned %lu, free %lu of %lu, sent %lu = returned %lu + "
           "reclaimed %lu",
           (unsigned long)st.inflight_msgs, (unsigned long)st.inflight_bytes, (unsigned long)st.loaned_msgs,
           (unsigned long)st.free_bytes, (unsigned long)st.segment_bytes, (unsigned long)st.sent,
           (unsigned long)st.returned, (unsigned long)st.reclaimed);
  REQUIREF(zc_chan_loan(ch, 100) == NULL && errno == err, "loan on a dead channel: errno %d", errno);
  REQUIREF(zc_chan_collect(ch) == -1 && errno == err, "collect on a dead channel: errno %d", errno);
}

static inline void raw_send(int fd, unsigned kind, unsigned role) {
  chan_wire_t w = {CHAN_MAGIC, (uint16_t)kind, (uint16_t)role, CHAN_VERSION, 0, 0};
  REQUIREF(zc_os_msg_send(fd, &w, sizeof w, -1, true) == 0, "send: %s", strerror(errno));
}

static inline long raw_recv(int fd, chan_wire_t *w, int *pass) {
  struct pollfd pf = {fd, POLLIN, 0};
  REQUIREF(poll(&pf, 1, 10000) == 1, "no record from the peer");
  return zc_os_msg_recv(fd, w, sizeof *w, pass);
}

#endif
