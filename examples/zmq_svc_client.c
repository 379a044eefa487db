/* The client of zmq_svc_server: calls it n times with bodies of 1 byte to 256 KiB and checks every
 * reply; the same code over a local service name and tcp://. Usage: zmq_svc_client <endpoint> [n] */
#include "zcmem_zmq.h"
#include "zmq_svc_proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s <endpoint> [calls]\n", argv[0]);
    return 2;
  }
  long calls = argc > 2 ? atol(argv[2]) : 1000;
  /* generous: a server on a loaded machine may be off the CPU for seconds */
  zc_eps_config_t cfg = {.svc.connect_timeout_ms = 60000, .svc.chan.block_timeout_ms = 60000};
  zc_eps_t *c = zc_eps_connect(argv[1], &cfg);
  if (c == NULL) {
    fprintf(stderr, "connect %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  unsigned long x = 12345, bad = 0;
  double bytes = 0;
  for (long k = 0; k < calls; k++) {
    x = x * 6364136223846793005ul + 1442695040888963407ul;
    uint32_t n = 1 + (uint32_t)((x >> 33) % (k % 16 == 0 ? 256 * 1024 : 2000));
    unsigned char *p = zc_eps_loan(c, n); /* written in place */
    if (p == NULL) {
      fprintf(stderr, "loan: %s\n", zc_eps_error(c));
      return 1;
    }
    for (uint32_t i = 0; i < n; i++) p[i] = (unsigned char)(x >> (i % 7 * 8)) + (unsigned char)i;
    uint64_t sum = body_checksum(p, n);
    unsigned char first = p[0], last = p[n - 1];
    zc_svc_msg_t rep;
    if (zc_eps_call(c, p, n, MSG_REVERSE, &rep, 60000) != 0) {
      fprintf(stderr, "call %ld: %s (%s)\n", k, strerror(errno), zc_eps_error(c));
      return 1;
    }
    reply_hdr_t h;
    const unsigned char *r = rep.data;
    if (rep.len >= sizeof h) memcpy(&h, r, sizeof h); /* over ZeroMQ the view may be unaligned */
    if (rep.len != sizeof h + n || h.checksum != sum || h.len != n || r[sizeof h] != last ||
        r[sizeof h + n - 1] != first)
      bad++;
    bytes += n + rep.len;
    zc_eps_release(c, &rep);
  }
  void *p = zc_eps_loan(c, 1);
  if (p != NULL) zc_eps_send(c, p, 1, MSG_BYE);
  printf("client (%s): %ld calls, %lu bad replies, %.1f MiB each way\n",
         zc_eps_kind(c) == ZC_EP_ZMQ ? "ZeroMQ" : "shared memory", calls, bad, bytes / 2 / (1 << 20));
  zc_eps_close(c);
  return bad != 0;
}
