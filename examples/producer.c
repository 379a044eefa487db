/* The web server: a few worker threads send typed requests to the engine over one zero-copy channel.
 * Each request is written once, straight into memory the engine can read: loan, write, send.
 * Usage: example_producer [socket path] [threads] [requests per thread] */
#include "zcmem_channel.h"
#include "request.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static zc_chan_t *ch;
static long per_thread = 100000;
static int failed; /* a worker could not loan or send: the program fails */

static void *worker(void *arg) {
  uint32_t id = (uint32_t)(uintptr_t)arg, seed = id * 2654435761u + 1;
  for (uint32_t seq = 0; seq < per_thread; seq++) {
    seed = seed * 1103515245u + 12345u;
    uint32_t type = 1 + (seed >> 16) % 3;
    uint32_t body = type == REQ_POST ? 1000 + (seed >> 8) % 15000 : 100 + (seed >> 8) % 400;
    /* A POST body's size is known only once written: loan the most it can take and send what was written
     * (the slot keeps the loan's size class until released). GET and LOG loan exactly what they need. */
    request_t *r = zc_chan_loan(ch, sizeof *r + (type == REQ_POST ? 16384 : body));
    if (r == NULL) {
      fprintf(stderr, "worker %u: loan: %s (%s)\n", id, strerror(errno), zc_chan_error(ch));
      __atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
      return NULL;
    }
    unsigned char *b = (unsigned char *)(r + 1);
    for (uint32_t i = 0; i < body; i++) b[i] = (unsigned char)(seq + i * 7);
    *r = (request_t){id, seq, body, body_checksum(b, body)};
    if (zc_chan_send(ch, r, sizeof *r + body, type) != 0) {
      fprintf(stderr, "worker %u: send: %s (%s)\n", id, strerror(errno), zc_chan_error(ch));
      __atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
      return NULL;
    }
  }
  return NULL;
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : EXAMPLE_PATH;
  int threads = argc > 2 ? atoi(argv[2]) : 4;
  if (argc > 3) per_thread = atol(argv[3]);
  /* A full ring makes a worker wait for the engine; four workers share the room it frees, so one of them
   * may wait a while on a loaded machine: allow 30 s (the default is 1 s) before calling it a failure. */
  zc_chan_config_t cfg = {.block_timeout_ms = 30000};
  ch = zc_chan_connect(path, ZC_CHAN_PRODUCER, &cfg);
  if (ch == NULL) {
    fprintf(stderr, "connect %s: %s (is example_consumer running?)\n", path, strerror(errno));
    return 1;
  }
  pthread_t t[64];
  if (threads < 1 || threads > 64) threads = 4;
  for (int i = 0; i < threads; i++)
    if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i) != 0) {
      fprintf(stderr, "cannot start worker %d\n", i);
      return 1;
    }
  for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
  long left;
  while ((left = zc_chan_collect(ch)) > 0) usleep(1000); /* wait until the engine gave every request back */
  if (left < 0) {
    fprintf(stderr, "collect: %s (%s)\n", strerror(errno), zc_chan_error(ch));
    failed = 1;
  }
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  printf("producer: %lu requests sent, %lu returned, %lu in flight, %lu MiB of shared segments\n",
         (unsigned long)st.sent, (unsigned long)st.returned, (unsigned long)st.inflight_msgs,
         (unsigned long)(st.segment_bytes >> 20));
  zc_chan_close(ch);
  return failed || st.sent != (uint64_t)threads * (uint64_t)per_thread;
}
