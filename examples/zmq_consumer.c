/* The engine: an epoll loop reading requests in place and releasing them. The same code serves the
 * shared-memory channel and ZeroMQ: only the endpoint string differs. Exits when the producer is gone.
 *   zmq_consumer /tmp/engine.sock            (waits for one producer on that UNIX socket)
 *   zmq_consumer tcp://0.0.0.0:5555          (ZeroMQ; tcp://127.0.0.1:* picks a free port and prints it)
 * Usage: zmq_consumer <endpoint> [expected requests] */
#include "zcmem_zmq.h"
#include "zmq_request.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s <endpoint: socket path or tcp://host:port> [expected requests]\n", argv[0]);
    return 2;
  }
  long expected = argc > 2 ? atol(argv[2]) : -1;
  if (zc_ep_kind_of(argv[1]) == ZC_EP_CHANNEL) printf("listening on %s\n", argv[1]), fflush(stdout);
  zc_zmq_config_t cfg = {.chan.setup_timeout_ms = 60000};
  zc_ep_t *ep = zc_ep_listen(argv[1], ZC_CHAN_CONSUMER, &cfg);
  if (ep == NULL) {
    fprintf(stderr, "listen %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  if (zc_ep_kind(ep) == ZC_EP_ZMQ) printf("listening on %s\n", zc_ep_endpoint(ep)), fflush(stdout);
  int epfd = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN};
  epoll_ctl(epfd, EPOLL_CTL_ADD, zc_ep_fd(ep), &ev);

  unsigned long count[REQ_TYPES] = {0}, total = 0, bad = 0, wakeups = 0;
  double bytes = 0;
  zc_chan_msg_t m[64];
  for (;;) {
    int n;
    while ((n = zc_ep_receive_batch(ep, m, 64, 0)) > 0) {
      for (int i = 0; i < n; i++) {
        const request_t *r = m[i].data; /* read in place */
        request_t h;
        if (m[i].len >= sizeof h) memcpy(&h, r, sizeof h); /* over ZeroMQ the view may be unaligned */
        if (m[i].type >= REQ_TYPES || m[i].len < sizeof h || h.body_len != m[i].len - sizeof h ||
            body_checksum((const unsigned char *)m[i].data + sizeof h, h.body_len) != h.checksum)
          bad++;
        else
          count[m[i].type]++;
        bytes += m[i].len;
      }
      total += (unsigned long)n;
      zc_ep_release_batch(ep, m, n);
    }
    if (errno == EPROTO && zc_ep_kind(ep) == ZC_EP_ZMQ) { /* a garbage frame was dropped: go on */
      fprintf(stderr, "consumer: %s\n", zc_ep_error(ep));
      continue;
    }
    if (errno != EAGAIN) break; /* EPIPE: the producer is gone */
    int armed = zc_ep_arm(ep);   /* ask for a wake-up on the fd, unless requests came meanwhile */
    if (armed < 0) break;
    if (armed == 0 && epoll_wait(epfd, &ev, 1, -1) > 0) wakeups++;
  }
  printf("consumer (%s): GET %lu, POST %lu, LOG %lu, bad %lu, %.1f MiB read in place, %lu wake-ups (%s)\n",
         zc_ep_kind(ep) == ZC_EP_ZMQ ? "ZeroMQ" : "shared memory", count[REQ_GET], count[REQ_POST],
         count[REQ_LOG], bad, bytes / (1 << 20), wakeups, errno == EPIPE ? "producer gone" : zc_ep_error(ep));
  zc_ep_close(ep);
  close(epfd);
  if (expected >= 0 && (long)total != expected) {
    fprintf(stderr, "consumer: %lu requests, expected %ld\n", total, expected);
    return 1;
  }
  return bad != 0;
}
