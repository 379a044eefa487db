/* What the channel tests share beyond tests/common (zc_test.h: REQUIREF, spawn/reap, the seeded pattern,
 * clocks, named cases): the size of message i of a stream, and a connected socket pair. New channel tests
 * may include this or just zc_test.h and zcmem_channel.h. */
#ifndef CHAN_TEST_H
#define CHAN_TEST_H
#include "zc_test.h"
#include "zcmem_channel.h"

#include <sys/socket.h>

/* Message i's size: 1 B .. 16 KiB, mostly small, a few large. */
static inline size_t msg_size(uint64_t i) {
  uint64_t r = splitmix64(i + 0x9e37);
  switch (r & 7) {
    case 0: return 1 + (r >> 8) % 16384;
    case 1: case 2: return 1024 + (r >> 8) % 3072;
    default: return 16 + (r >> 8) % 1000;
  }
}

/* A connected SOCK_SEQPACKET pair: sv[0] for the parent, sv[1] for the child. */
static inline void seqpacket_pair(int sv[2]) {
  REQUIREF(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0, "socketpair: %s", strerror(errno));
}

#endif
