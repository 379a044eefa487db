/* Where libzmq copies message bytes, measured: this program defines memcpy and memmove itself, so libzmq's
 * calls to them (through the PLT) land here and are counted, per process. A producer child and the
 * consumer (this process) each count what they copied while K messages of one size went through
 * tcp://127.0.0.1. The kernel's copies (send/recv system calls) are not counted: they happen for any
 * transport over TCP.
 * It prints the table docs/zmq.md quotes and checks the claims made there (libzmq 4.3, 8 KiB batches):
 *   - send: libzmq copies the start of every frame, up to its 8 KiB batch buffer, and sends the rest of a
 *     larger frame straight from the zcmem loan: at most 8 KiB copied per message, under 1% of 1 MiB;
 *   - receive: a frame below 33 bytes is copied into the message; small frames (here 116 B and 1 KiB) are
 *     mostly not copied (views into libzmq's shared read buffer, copied only when a frame straddles two
 *     reads); a larger frame's first 8 KiB are copied out of the read buffer and the rest is read straight
 *     into the message's own buffer: at most 8 KiB copied per message. */
#include "zc_test.h"
#include "zmq_spawn.h"
#include "zcmem_zmq.h"

#include <stdatomic.h>

/* Built with -fno-builtin -fno-tree-loop-distribute-patterns: the loops below must not become memcpy. */
static _Atomic uint64_t copied;
static _Atomic int counting;

static void copy_bytes(unsigned char *d, const unsigned char *s, size_t n, int backwards) {
  if (backwards)
    while (n-- > 0) d[n] = s[n];
  else
    for (size_t i = 0; i < n; i++) d[i] = s[i];
}

void *memcpy(void *restrict d, const void *restrict s, size_t n) {
  if (atomic_load_explicit(&counting, memory_order_relaxed)) atomic_fetch_add(&copied, n);
  copy_bytes(d, s, n, 0);
  return d;
}

void *memmove(void *d, const void *s, size_t n) {
  if (atomic_load_explicit(&counting, memory_order_relaxed)) atomic_fetch_add(&copied, n);
  copy_bytes(d, s, n, (uintptr_t)d > (uintptr_t)s);
  return d;
}

#define K 200
static const size_t payloads[] = {8, 16, 100, 1000, 8176 - 16, 8176, 16384, 1 << 20};
#define NSIZES (sizeof payloads / sizeof payloads[0])

typedef struct args_s {
  const char *ep;
  int fd; /* the child writes its per-size counts here */
  int go; /* and reads a byte here before each size: the consumer is counting (nothing else in flight) */
} args_t;

static int producer(void *arg) {
  const args_t *a = arg;
  zc_zmq_config_t cfg = {.chan.setup_timeout_ms = 60000}; /* the consumer's pace, not the 5 s default */
  zc_zmq_t *z = zc_zmq_connect(a->ep, ZC_CHAN_PRODUCER, &cfg);
  REQUIREF(z != NULL, "connect: %s", strerror(errno));
  uint64_t counts[NSIZES];
  for (size_t k = 0; k < NSIZES; k++) {
    char c;
    REQUIREF(read(a->go, &c, 1) == 1, "read go");
    atomic_store(&copied, 0);
    atomic_store(&counting, 1);
    for (int i = 0; i < K; i++) {
      void *p = zc_zmq_loan(z, payloads[k]);
      REQUIREF(p != NULL, "loan");
      fill_pattern(p, payloads[k], (uint64_t)i);
      REQUIREF(zc_zmq_send(z, p, payloads[k], (uint32_t)k) == 0, "send: %s", strerror(errno));
    }
    while (zc_zmq_collect(z) > 0) sleep_ms(1); /* libzmq is done with every block */
    atomic_store(&counting, 0);
    counts[k] = atomic_load(&copied);
  }
  REQUIREF(write(a->fd, counts, sizeof counts) == (ssize_t)sizeof counts, "write");
  zc_zmq_close(z);
  return 0;
}

int main(int argc, char **argv) {
  zspawn_main(argc, argv); /* the producer child (ZSPAWN) runs here */
  alarm(100);
  zc_zmq_t *z = zc_zmq_bind("tcp://127.0.0.1:*", ZC_CHAN_CONSUMER, NULL);
  REQUIREF(z != NULL, "bind: %s", strerror(errno));
  int pfd[2], gfd[2];
  REQUIREF(pipe(pfd) == 0 && pipe(gfd) == 0, "pipe");
  args_t a = {zc_zmq_endpoint(z), pfd[1], gfd[0]};
  pid_t p = ZSPAWN(producer, &a, ep, pfd[1], gfd[0]);
  uint64_t rx[NSIZES];
  for (size_t k = 0; k < NSIZES; k++) {
    atomic_store(&copied, 0);
    atomic_store(&counting, 1);
    REQUIREF(write(gfd[1], "g", 1) == 1, "write go");
    for (int i = 0; i < K; i++) {
      zc_chan_msg_t m;
      REQUIREF(zc_zmq_receive(z, &m, 60000) == 0, "receive: %s", strerror(errno)); /* the producer's pace */
      REQUIREF(m.type == k && m.len == payloads[k] && verify_pattern(m.data, m.len, (uint64_t)i) < 0, "message");
      zc_zmq_release(z, &m);
    }
    atomic_store(&counting, 0);
    rx[k] = atomic_load(&copied);
  }
  uint64_t tx[NSIZES];
  size_t got = 0;
  while (got < sizeof tx) {
    ssize_t r = read(pfd[0], (char *)tx + got, sizeof tx - got);
    REQUIREF(r > 0, "read the producer's counts");
    got += (size_t)r;
  }
  REQUIREF(reap(p) == 0, "producer failed");
  printf("| payload | frame | bytes copied by libzmq per message, sender | receiver |\n|---|---|---|---|\n");
  for (size_t k = 0; k < NSIZES; k++)
    printf("| %zu | %zu | %.0f | %.0f |\n", payloads[k], payloads[k] + 16, (double)tx[k] / K, (double)rx[k] / K);
  for (size_t k = 0; k < NSIZES; k++) {
    size_t frame = payloads[k] + 16;
    double t = (double)tx[k] / K, r = (double)rx[k] / K, batch = 8192 + 64;
    REQUIREF(t >= (double)(frame < 8192 ? frame : 8000), "send of a %zu-byte frame copied %.0f bytes: less than "
             "docs/zmq.md says", frame, t);
    REQUIREF(t <= batch, "send of a %zu-byte frame copied %.0f bytes: more than one batch", frame, t);
    REQUIREF(r <= batch, "receive of a %zu-byte frame copied %.0f bytes: more than one batch", frame, r);
    if (frame < 33) REQUIREF(r >= (double)frame, "a %zu-byte frame was not copied on receive (%.0f)", frame, r);
    if (frame >= 33 && frame <= 1024)
      REQUIREF(r < (double)frame / 4, "a %zu-byte frame was mostly copied on receive (%.0f)", frame, r);
  }
  REQUIREF((double)tx[NSIZES - 1] / K < (double)(payloads[NSIZES - 1]) / 100, "1 MiB: 1%% or more copied on send");
  zc_zmq_close(z);
  printf("zmq_copies: ok\n");
  return 0;
}
