/* Fan-out at its documented limit (README.md: "one message read in place by up to 32 subscriber processes
 * and returned after the last release"; zcmem_channel.h: ZC_PUB_MAX_SUBS, zc_pub_add "EBUSY if
 * ZC_PUB_MAX_SUBS are live"):
 *   - ZC_PUB_MAX_SUBS subscriber processes join one publisher; one more is turned away with EBUSY (its
 *     channel ends: the subscriber sees EPIPE or its open fails) and the count stays at the maximum;
 *   - one message goes to all of them (zc_pub_send returns ZC_PUB_MAX_SUBS); the publisher rewrites it after
 *     sending and every subscriber reads the new bytes (one copy, read in place by all);
 *   - the message stays in flight until the last subscriber releases it, and is returned after that.
 * Usage: test_pub_max (no arguments). */
#include "pub_test.h"

#include "zcmem_channel.h"

#include <sys/socket.h>

typedef struct {
  int sock, ctl;
  int idx;
} sub_t;

static void ctl_put(int fd, char c) { CHECK(write(fd, &c, 1) == 1); }
static char ctl_get(int fd) {
  char c = 0;
  CHECK(read(fd, &c, 1) == 1);
  return c;
}

static int sub_one(void *arg) {
  sub_t *a = arg;
  zc_chan_t *ch = zc_chan_open(a->sock, ZC_CHAN_CONSUMER, NULL);
  REQUIREF(ch != NULL, "subscriber %d open: %s", a->idx, strerror(errno));
  zc_chan_msg_t m;
  REQUIREF(zc_chan_receive(ch, &m, -1) == 0, "subscriber %d receive: %s", a->idx, strerror(errno));
  CHECKF(m.len == 4096 && m.type == 7 && verify_pattern(m.data, m.len, 1) < 0, "subscriber %d: wrong message",
         a->idx);
  ctl_put(a->ctl, 'r');
  CHECK(ctl_get(a->ctl) == 'w');
  CHECKF(verify_pattern(m.data, m.len, 2) < 0, "subscriber %d does not see the publisher's rewrite (a copy)", a->idx);
  CHECK(ctl_get(a->ctl) == 'x');
  CHECK(zc_chan_release(ch, &m) == 0);
  ctl_put(a->ctl, 'd');
  CHECK(ctl_get(a->ctl) == 'q');
  zc_chan_close(ch);
  return check_failures ? 1 : 0;
}

/* The one too many: its handshake may succeed, but the publisher drops it; it must not get a message. */
static int sub_extra(void *arg) {
  sub_t *a = arg;
  zc_chan_t *ch = zc_chan_open(a->sock, ZC_CHAN_CONSUMER, NULL);
  if (ch == NULL) return 0;
  zc_chan_msg_t m;
  int r = zc_chan_receive(ch, &m, 30000);
  int e = errno;
  zc_chan_close(ch);
  if (r == 0) {
    fprintf(stderr, "the subscriber turned away received a message\n");
    return 1;
  }
  if (e != EPIPE) {
    fprintf(stderr, "the subscriber turned away saw %s, want EPIPE\n", strerror(e));
    return 1;
  }
  return 0;
}

int main(void) {
  enum { N = ZC_PUB_MAX_SUBS };
  CHECK_EQ(N, 32); /* the number the README states */
  zc_pub_t *p = zc_pub_listen(NULL, NULL);
  REQUIRE(p != NULL);
  static sub_t s[N];
  pid_t pid[N];
  for (int i = 0; i < N; i++) {
    s[i] = (sub_t){.idx = i};
    pid[i] = pub_spawn_sub(p, sub_one, &s[i], &s[i].sock, &s[i].ctl);
  }
  CHECK_EQ(zc_pub_subscribers(p), N);

  /* one more: EBUSY, the count unchanged */
  int sv[2];
  REQUIREF(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0, "socketpair: %s", strerror(errno));
  sub_t extra = {.sock = sv[1], .ctl = -1, .idx = N};
  pid_t xpid = spawn_closefds(sub_extra, &extra, sv[1], -1);
  close(sv[1]);
  errno = 0;
  int r = zc_pub_add(p, sv[0]);
  CHECKF(r == -1 && errno == EBUSY, "subscriber %d: zc_pub_add returned %d (%s), want -1 EBUSY", N + 1, r,
         strerror(errno));
  CHECKF(reap(xpid) == 0, "the subscriber turned away failed");
  CHECK_EQ(zc_pub_subscribers(p), N);

  char *q = zc_pub_loan(p, 4096);
  REQUIRE(q != NULL);
  fill_pattern(q, 4096, 1);
  CHECK_EQ(zc_pub_send(p, q, 4096, 7), N);
  for (int i = 0; i < N; i++) CHECK(ctl_get(s[i].ctl) == 'r');
  fill_pattern(q, 4096, 2); /* after sending: only views of the one copy show this */
  for (int i = 0; i < N; i++) ctl_put(s[i].ctl, 'w');
  for (int i = 0; i < N; i++) {
    ctl_put(s[i].ctl, 'x');
    CHECK(ctl_get(s[i].ctl) == 'd');
    zc_pub_collect(p);
    zc_pub_stats_t st;
    zc_pub_stats(p, &st);
    if (i < N - 1)
      CHECKF(st.chan.inflight_msgs == 1 && st.chan.returned == 0, "after %d of %d releases: inflight %lu returned %lu",
             i + 1, N, (unsigned long)st.chan.inflight_msgs, (unsigned long)st.chan.returned);
    else
      CHECKF(st.chan.inflight_msgs == 0 && st.chan.returned == 1 && st.deliveries == (uint64_t)N,
             "after the last release: inflight %lu returned %lu deliveries %lu", (unsigned long)st.chan.inflight_msgs,
             (unsigned long)st.chan.returned, (unsigned long)st.deliveries);
  }
  for (int i = 0; i < N; i++) ctl_put(s[i].ctl, 'q');
  for (int i = 0; i < N; i++) CHECKF(reap(pid[i]) == 0, "subscriber %d failed", i);
  zc_pub_close(p);
  printf("%d subscribers: one message read in place by all, returned after the last release; subscriber %d: EBUSY\n",
         N, N + 1);
  CHECK_DONE("pub_max");
}
