/* The protocol of the zmq_svc_server / zmq_svc_client example: a request is any bytes; its reply is a
 * reply_hdr_t followed by the request's bytes reversed. */
#ifndef ZMQ_SVC_PROTO_H
#define ZMQ_SVC_PROTO_H

#include <stddef.h>
#include <stdint.h>

enum { MSG_REVERSE = 1, MSG_REVERSED = 2, MSG_BYE = 3 };

typedef struct reply_hdr_s {
  uint64_t checksum; /* of the request */
  uint32_t len;      /* request bytes */
  uint32_t pad;
} reply_hdr_t;

static inline uint64_t body_checksum(const unsigned char *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

#endif /* ZMQ_SVC_PROTO_H */
