/* The message format of zmq_pub.c and zmq_sub.c: a cache invalidation, a small header then the keys. */
#ifndef ZMQ_EXAMPLE_FANOUT_H
#define ZMQ_EXAMPLE_FANOUT_H
#include <stdint.h>

enum { INVALIDATE = 1, CONFIG = 2 };

typedef struct notice_s {
  uint32_t seq;      /* the publisher's count */
  uint32_t body_len; /* bytes after the header */
  uint32_t checksum; /* of the body (FNV-1a) */
  uint32_t pad;
} notice_t;

static inline uint32_t notice_checksum(const unsigned char *b, uint32_t n) {
  uint32_t h = 2166136261u;
  for (uint32_t i = 0; i < n; i++) h = (h ^ b[i]) * 16777619u;
  return h;
}
#endif
