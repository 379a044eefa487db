/* A subscriber: an epoll loop reading every notice in place and releasing it. The same code serves the
 * shared-memory fan-out and ZeroMQ: only the endpoint string differs. Exits when the publisher is gone.
 *   zmq_sub /tmp/cache.sock          zmq_sub tcp://10.0.0.7:5557
 * Usage: zmq_sub <endpoint> [expected notices] */
#include "zcmem_zmq.h"
#include "zmq_fanout.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s <endpoint: socket path or tcp://host:port> [expected notices]\n", argv[0]);
    return 2;
  }
  long expected = argc > 2 ? atol(argv[2]) : -1;
  zc_zmq_config_t cfg = {.chan.setup_timeout_ms = 60000}; /* wait up to a minute for the publisher */
  zc_ep_t *s = zc_ep_subscribe(argv[1], &cfg);
  if (s == NULL) {
    fprintf(stderr, "subscribe %s: %s (is zmq_pub running?)\n", argv[1], strerror(errno));
    return 1;
  }
  int epfd = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN};
  epoll_ctl(epfd, EPOLL_CTL_ADD, zc_ep_fd(s), &ev);
  unsigned long total = 0, bad = 0, config = 0, next = 0;
  zc_chan_msg_t m[32];
  for (;;) {
    int n;
    while ((n = zc_ep_receive_batch(s, m, 32, 0)) > 0) {
      for (int i = 0; i < n; i++) {
        notice_t h = {0};
        if (m[i].len >= sizeof h) memcpy(&h, m[i].data, sizeof h); /* over ZeroMQ the view may be unaligned */
        if (m[i].len < sizeof h || h.body_len != m[i].len - sizeof h || h.seq != next ||
            notice_checksum((const unsigned char *)m[i].data + sizeof h, h.body_len) != h.checksum)
          bad++;
        config += m[i].type == CONFIG;
        next = h.seq + 1;
      }
      total += (unsigned long)n;
      zc_ep_release_batch(s, m, n);
    }
    if (errno == EPROTO && zc_ep_kind(s) == ZC_EP_ZMQ) { /* a garbage frame was dropped: go on */
      fprintf(stderr, "subscriber: %s\n", zc_ep_error(s));
      continue;
    }
    if (errno != EAGAIN) break; /* EPIPE: the publisher is gone */
    int armed = zc_ep_arm(s);
    if (armed < 0) break;
    if (armed == 0) epoll_wait(epfd, &ev, 1, -1);
  }
  printf("subscriber (%s): %lu notices (%lu config), %lu bad, %lu missed (%s)\n",
         zc_ep_kind(s) == ZC_EP_ZMQ ? "ZeroMQ" : "shared memory", total, config, bad,
         (unsigned long)zc_ep_missed(s), errno == EPIPE ? "publisher gone" : zc_ep_error(s));
  zc_ep_close(s);
  close(epfd);
  if (expected >= 0 && (long)total != expected) {
    fprintf(stderr, "subscriber: %lu notices, expected %ld\n", total, expected);
    return 1;
  }
  return bad != 0;
}
