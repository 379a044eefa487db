/* A publisher of cache invalidations and configuration: every subscriber process reads every notice,
 * in place. The same code runs over the shared-memory fan-out and over ZeroMQ: only the endpoint differs.
 *   zmq_pub /tmp/cache.sock 2 10000          (local: one copy in shared memory, read by all)
 *   zmq_pub tcp://0.0.0.0:5557 2 10000       (ZeroMQ: one zcmem block, sent to each subscriber)
 * Waits for that many subscribers, publishes, waits until every notice is out, closes.
 * Usage: zmq_pub <endpoint> [subscribers] [notices] */
#include "zcmem_zmq.h"
#include "zmq_fanout.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s <endpoint: socket path or tcp://host:port> [subscribers] [notices]\n", argv[0]);
    return 2;
  }
  int subs = argc > 2 ? atoi(argv[2]) : 2;
  long notices = argc > 3 ? atol(argv[3]) : 10000;
  zc_zmq_config_t cfg = {.chan.block_timeout_ms = 5000};
  zc_ep_pub_t *p = zc_ep_pub_listen(argv[1], &cfg);
  if (p == NULL) {
    fprintf(stderr, "listen %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  printf("listening on %s\n", zc_ep_pub_endpoint(p));
  fflush(stdout);
  for (int k = 0; k < subs; k++)
    if (zc_ep_pub_accept(p, 60000) < 0) {
      fprintf(stderr, "accept: %s (%s)\n", strerror(errno), zc_ep_pub_error(p));
      return 1;
    }
  uint32_t seed = 12345;
  for (long i = 0; i < notices; i++) {
    seed = seed * 1103515245u + 12345u;
    uint32_t type = (seed >> 20) % 8 == 0 ? CONFIG : INVALIDATE;
    uint32_t body = type == CONFIG ? 4096 + (seed >> 8) % 200000 : 8 + (seed >> 8) % 300;
    notice_t *n = zc_ep_pub_loan(p, sizeof *n + body); /* written once, read by every subscriber */
    if (n == NULL) {
      fprintf(stderr, "loan: %s (%s)\n", strerror(errno), zc_ep_pub_error(p));
      return 1;
    }
    unsigned char *b = (unsigned char *)(n + 1);
    for (uint32_t j = 0; j < body; j++) b[j] = (unsigned char)(i + j * 13);
    *n = (notice_t){(uint32_t)i, body, notice_checksum(b, body), 0};
    int got;
    while ((got = zc_ep_pub_send(p, n, sizeof *n + body, type)) < 0) {
      if (errno != ETIMEDOUT) { /* the loan stays ours only after ETIMEDOUT / EAGAIN */
        fprintf(stderr, "send: %s (%s)\n", strerror(errno), zc_ep_pub_error(p));
        return 1;
      }
    }
    if (got < subs) fprintf(stderr, "notice %ld reached %d of %d subscribers\n", i, got, subs);
  }
  /* Local: until every subscriber released every notice. ZeroMQ: until libzmq wrote every one out. */
  while (zc_ep_pub_collect(p) > 0) usleep(1000);
  zc_pub_stats_t st;
  zc_ep_pub_stats(p, &st);
  printf("publisher (%s): %lu notices, %lu deliveries, %lu subscribers\n",
         zc_ep_pub_kind(p) == ZC_EP_ZMQ ? "ZeroMQ" : "shared memory", (unsigned long)st.chan.sent,
         (unsigned long)st.deliveries, (unsigned long)st.subscribers);
  zc_ep_pub_close(p);
  return 0;
}
