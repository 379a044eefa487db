/* A web-server stand-in: worker threads send typed requests to an engine. The same code runs over the
 * shared-memory channel and over ZeroMQ: only the endpoint string differs.
 *   zmq_producer /tmp/engine.sock 4 10000          (local: zero-copy shared memory)
 *   zmq_producer tcp://10.0.0.7:5555 4 10000       (another machine: ZeroMQ, zero-copy send)
 * Usage: zmq_producer <endpoint> [threads] [requests per thread] */
#include "zcmem_zmq.h"
#include "zmq_request.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static zc_ep_t *ep;
static long per_thread = 10000;

static void *worker(void *arg) {
  uint32_t id = (uint32_t)(uintptr_t)arg, seed = id * 2654435761u + 1;
  for (uint32_t seq = 0; seq < per_thread; seq++) {
    seed = seed * 1103515245u + 12345u;
    uint32_t type = 1 + (seed >> 16) % 3;
    uint32_t body = type == REQ_POST ? 1000 + (seed >> 8) % 60000 : 20 + (seed >> 8) % 400;
    request_t *r = zc_ep_loan(ep, sizeof *r + body); /* write the request once, where it will be sent from */
    if (r == NULL) {
      fprintf(stderr, "worker %u: loan: %s (%s)\n", id, strerror(errno), zc_ep_error(ep));
      return (void *)1;
    }
    unsigned char *b = (unsigned char *)(r + 1);
    for (uint32_t i = 0; i < body; i++) b[i] = (unsigned char)(seq + i * 7);
    *r = (request_t){id, seq, body, body_checksum(b, body)};
    while (zc_ep_send(ep, r, sizeof *r + body, type) != 0) {
      if (errno != ETIMEDOUT) { /* the loan stays ours only after ETIMEDOUT / EAGAIN */
        fprintf(stderr, "worker %u: send: %s (%s)\n", id, strerror(errno), zc_ep_error(ep));
        return (void *)1;
      }
    }
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s <endpoint: socket path or tcp://host:port> [threads] [requests]\n", argv[0]);
    return 2;
  }
  int threads = argc > 2 ? atoi(argv[2]) : 4;
  if (argc > 3) per_thread = atol(argv[3]);
  if (threads < 1 || threads > 64) threads = 4;
  zc_zmq_config_t cfg = {.chan.block_timeout_ms = 5000, .linger_ms = 30000};
  ep = zc_ep_connect(argv[1], ZC_CHAN_PRODUCER, &cfg);
  if (ep == NULL) {
    fprintf(stderr, "connect %s: %s (is zmq_consumer running?)\n", argv[1], strerror(errno));
    return 1;
  }
  pthread_t t[64];
  int failed = 0;
  for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i);
  for (int i = 0; i < threads; i++) {
    void *rc;
    pthread_join(t[i], &rc);
    failed |= rc != NULL;
  }
  /* Channel: wait until the consumer gave every request back. ZeroMQ: until libzmq let go of every block
   * (close then waits, up to linger_ms, for the bytes to leave). */
  while (zc_ep_collect(ep) > 0) usleep(1000);
  zc_chan_stats_t st;
  zc_ep_stats(ep, &st);
  printf("producer (%s): %lu requests sent, %lu returned, %lu in flight\n",
         zc_ep_kind(ep) == ZC_EP_ZMQ ? "ZeroMQ" : "shared memory", (unsigned long)st.sent,
         (unsigned long)st.returned, (unsigned long)st.inflight_msgs);
  zc_ep_close(ep);
  return failed;
}
