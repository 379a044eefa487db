/* A request/response server over either transport: the same code serves a local service name (the
 * shared-memory channel services) and tcp:// (ZeroMQ); only the endpoint string differs. Each request is
 * read in place; the reply, loaned from the reply's transport, carries a checksum of the request and the
 * request's bytes reversed. Exits when a client says goodbye (a one-way message) or is gone.
 *   zmq_svc_server kv-demo                  (a local name; a path with '/' is a socket file)
 *   zmq_svc_server tcp://127.0.0.1:*        (ZeroMQ; port * picks a free port and prints it) */
#include "zcmem_zmq.h"
#include "zmq_svc_proto.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s <endpoint: service name, socket path or tcp://host:port>\n", argv[0]);
    return 2;
  }
  zc_eps_t *s = zc_eps_listen(argv[1], NULL);
  if (s == NULL) {
    fprintf(stderr, "listen %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  printf("listening on %s\n", zc_eps_endpoint(s));
  fflush(stdout);
  unsigned long served = 0;
  for (;;) {
    zc_svc_msg_t req;
    if (zc_eps_receive(s, &req, -1) != 0) break; /* EPIPE: the client is gone */
    if (req.kind == ZC_SVC_ONEWAY && req.type == MSG_BYE) {
      zc_eps_release(s, &req);
      break;
    }
    if (req.kind != ZC_SVC_REQUEST) {
      zc_eps_release(s, &req);
      continue;
    }
    const unsigned char *in = req.data; /* read in place */
    reply_hdr_t h = {body_checksum(in, req.len), req.len, 0};
    unsigned char *out = zc_eps_loan_reply(s, &req, sizeof h + req.len);
    if (out == NULL) {
      zc_eps_release(s, &req);
      continue;
    }
    memcpy(out, &h, sizeof h); /* written in place, sent without a copy */
    for (uint32_t i = 0; i < req.len; i++) out[sizeof h + i] = in[req.len - 1 - i];
    if (zc_eps_reply(s, &req, out, sizeof h + req.len, MSG_REVERSED) == 0) served++;
  }
  printf("server (%s): %lu requests served\n", zc_eps_kind(s) == ZC_EP_ZMQ ? "ZeroMQ" : "shared memory", served);
  zc_eps_close(s);
  return 0;
}
