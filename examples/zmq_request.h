/* The message format of zmq_producer.c and zmq_consumer.c: a small header, then the body. */
#ifndef ZMQ_EXAMPLE_REQUEST_H
#define ZMQ_EXAMPLE_REQUEST_H
#include <stdint.h>

enum { REQ_GET = 1, REQ_POST = 2, REQ_LOG = 3, REQ_TYPES = 4 };

typedef struct request_s {
  uint32_t worker;   /* which producer thread sent it */
  uint32_t seq;      /* per worker */
  uint32_t body_len; /* bytes after the header */
  uint32_t checksum; /* of the body (FNV-1a), so the consumer can check it */
} request_t;

static inline uint32_t body_checksum(const unsigned char *b, uint32_t n) {
  uint32_t h = 2166136261u;
  for (uint32_t i = 0; i < n; i++) h = (h ^ b[i]) * 16777619u;
  return h;
}
#endif
