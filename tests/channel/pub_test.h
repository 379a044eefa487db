/* What the fan-out tests (test_fanout.c, test_pub_batch.c, test_pub_events.c) share beyond tests/common:
 * starting a subscriber process on a socket pair.
 * Includes: tests/common (zc_test.h) and the public zcmem_channel.h. */
#ifndef PUB_TEST_H
#define PUB_TEST_H

#include "zc_test.h"
#include "zcmem_channel.h"

#include <sys/socket.h>

/* A subscriber process: fn(arg) runs in a child that keeps only two descriptors of the parent's, its end
 * of a channel socket pair (*sock) and its end of a control socket pair (*ctl), so no sibling keeps
 * another subscriber's socket alive; it is killed if the parent dies. The parent adds the other end of the
 * channel pair to p (zc_pub_add) and keeps the other end of the control pair in *ctl. *sock and *ctl are
 * fields of what arg points to, set before the fork so the child reads its own. */
static inline pid_t pub_spawn_sub(zc_pub_t *p, int (*fn)(void *), void *arg, int *sock, int *ctl) {
  int sv[2], cv[2];
  REQUIREF(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0, "socketpair: %s", strerror(errno));
  REQUIREF(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, cv) == 0, "socketpair: %s", strerror(errno));
  *sock = sv[1];
  *ctl = cv[1];
  pid_t pid = spawn_closefds(fn, arg, sv[1], cv[1]);
  close(sv[1]);
  close(cv[1]);
  *ctl = cv[0];
  REQUIREF(zc_pub_add(p, sv[0]) >= 1, "zc_pub_add: %s (%s)", strerror(errno), zc_pub_error(p));
  return pid;
}

#endif /* PUB_TEST_H */
