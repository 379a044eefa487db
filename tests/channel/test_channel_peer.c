/* Channel tests, who is at the other end and what happens when it dies at an awkward moment:
 *   uid                the listener accepts only allowed uids (default: its own); both sides read the peer's
 *                      pid, uid and gid; as root also a real other-uid process
 *   live_path          zc_chan_listen refuses a path where a socket is listening, replaces a stale one
 *   setup_forever      setup_timeout_ms < 0 waits for a late peer instead of failing at once
 *   kill_setup         a peer killed during the handshake: the other side fails the open with EPIPE
 *   kill_growth        the producer killed right after it announced a new segment; the consumer killed
 *                      right after a growth: the survivor ends with EPIPE, keeps its data, reclaims all
 *   kill_releases      the consumer killed during a long run of release batches: the producer reclaims
 *                      exactly what was not returned
 *   role               zc_chan_role and zc_chan_peer on both ends of a socket pair
 * Usage: test_channel_peer <name>. */
#include "chan_hostile.h"

#include <sys/stat.h>

/* ---- uid ---- */
static char sock_path[108];

static int connecting_peer(void *arg) {
  uint32_t uid = (uint32_t)(uintptr_t)arg;
  if (uid != 0) REQUIREF(setgid(uid) == 0 && setuid(uid) == 0, "setuid(%u): %s", uid, strerror(errno));
  zc_chan_config_t cfg = {.peer_uids = (const uint32_t[]){0}, .n_peer_uids = 1}; /* the listener runs as root */
  zc_chan_t *ch = zc_chan_connect(sock_path, ZC_CHAN_PRODUCER, uid != 0 ? &cfg : NULL);
  if (ch == NULL) return errno == EPIPE ? 3 : 4; /* the listener turned us away */
  zc_chan_peer_t peer;
  uint32_t listener_uid = uid != 0 ? 0 : geteuid(); /* the listener is root when we changed uid */
  REQUIREF(zc_chan_peer(ch, &peer) == 0 && peer.pid == getppid() && peer.uid == listener_uid,
           "the connector sees pid %d uid %u; the listener is pid %d uid %u", peer.pid, peer.uid, (int)getppid(),
           listener_uid);
  zc_chan_close(ch);
  return 0;
}

/* Accept one connection from a child running as uid (0: our own) with the given allowed list. Returns
 * the child's exit code; *ok whether accept opened a channel. */
static int accept_from(uint32_t uid, const zc_chan_config_t *cfg, int *ok) {
  unlink(sock_path);
  int lfd = zc_chan_listen(sock_path);
  REQUIREF(lfd >= 0, "listen: %s", strerror(errno));
  chmod(sock_path, 0777); /* another uid must be able to connect */
  pid_t c = spawn(connecting_peer, (void *)(uintptr_t)uid);
  char why[512];
  stderr_capture_t cap = capture_stderr();
  zc_chan_t *ch = zc_chan_accept(lfd, ZC_CHAN_CONSUMER, cfg);
  int err = errno;
  capture_end(cap, why, sizeof why);
  *ok = ch != NULL;
  int rc = -1;
  if (ch != NULL) {
    rc = reap(c); /* the connector finishes its open and closes first */
    zc_chan_peer_t peer;
    REQUIREF(zc_chan_peer(ch, &peer) == 0, "peer");
    REQUIREF(peer.pid == c && peer.uid == (uid ? uid : geteuid()) && peer.gid == (uid ? uid : getegid()),
             "the listener sees pid %d uid %u gid %u; expected %d %u", peer.pid, peer.uid, peer.gid, (int)c, uid);
    zc_chan_close(ch);
  } else {
    REQUIREF(err == EACCES && strstr(why, "is not allowed") != NULL, "refused with errno %d: %s", err, why);
  }
  close(lfd);
  unlink(sock_path);
  return rc >= 0 ? rc : reap(c);
}

static int t_uid(int argc, char **argv) {
  snprintf(sock_path, sizeof sock_path, "/tmp/zc-chan-uid-%d.sock", (int)getpid());
  int ok;
  REQUIREF(accept_from(0, NULL, &ok) == 0 && ok, "same uid, default list: refused");
  uint32_t other[] = {geteuid() + 1};
  zc_chan_config_t only_other = {.peer_uids = other, .n_peer_uids = 1};
  REQUIREF(accept_from(0, &only_other, &ok) == 3 && !ok, "our own uid accepted although the list names only %u", other[0]);
  uint32_t any[] = {ZC_CHAN_ANY_UID};
  zc_chan_config_t anyone = {.peer_uids = any, .n_peer_uids = 1};
  REQUIREF(accept_from(0, &anyone, &ok) == 0 && ok, "ZC_CHAN_ANY_UID refused us");
  if (geteuid() != 0) {
    printf("uid: not root, the other-uid part is skipped\n");
    return 0;
  }
  REQUIREF(accept_from(65534, NULL, &ok) == 3 && !ok, "uid 65534 accepted by a root listener with the default list");
  uint32_t nobody[] = {65534};
  zc_chan_config_t nob = {.peer_uids = nobody, .n_peer_uids = 1};
  REQUIREF(accept_from(65534, &nob, &ok) == 0 && ok, "uid 65534 refused although listed");
  printf("uid: another uid refused by default, accepted when listed\n");
  return 0;
}

/* ---- live_path ---- */
static int path_peer(void *arg) {
  zc_chan_t *ch = zc_chan_connect(sock_path, ZC_CHAN_PRODUCER, NULL);
  REQUIREF(ch != NULL, "connect: %s", strerror(errno));
  void *p = zc_chan_loan(ch, 10);
  REQUIREF(zc_chan_send(ch, p, 10, 5) == 0, "send");
  while (zc_chan_collect(ch) > 0) sleep_ms(1);
  zc_chan_close(ch);
  return 0;
}

static int t_live_path(int argc, char **argv) {
  snprintf(sock_path, sizeof sock_path, "/tmp/zc-chan-live-%d.sock", (int)getpid());
  unlink(sock_path);
  int lfd = zc_chan_listen(sock_path);
  REQUIREF(lfd >= 0, "listen: %s", strerror(errno));
  REQUIREF(zc_chan_listen(sock_path) == -1 && errno == EADDRINUSE, "a second listen on a live path: errno %d", errno);
  pid_t c = spawn(path_peer, NULL); /* the first listener still owns the path */
  zc_chan_t *ch = zc_chan_accept(lfd, ZC_CHAN_CONSUMER, NULL);
  REQUIREF(ch != NULL, "accept after the refused listen: %s", strerror(errno));
  zc_chan_msg_t m;
  REQUIREF(zc_chan_receive(ch, &m, -1) == 0 && m.type == 5, "receive");
  zc_chan_release(ch, &m);
  REQUIREF(reap(c) == 0, "peer failed");
  zc_chan_close(ch);
  close(lfd); /* the socket file stays behind, stale */
  struct stat st;
  REQUIREF(lstat(sock_path, &st) == 0 && S_ISSOCK(st.st_mode), "the stale socket file is gone");
  lfd = zc_chan_listen(sock_path);
  REQUIREF(lfd >= 0, "listen on a stale socket file: %s", strerror(errno));
  close(lfd);
  unlink(sock_path);
  return 0;
}

/* ---- setup_forever ---- */
static int late_producer(void *arg) {
  close(sv[0]);
  sleep_ms(300);
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_PRODUCER, NULL);
  void *p = zc_chan_loan(ch, 10);
  REQUIREF(zc_chan_send(ch, p, 10, 3) == 0, "send");
  while (zc_chan_collect(ch) > 0) sleep_ms(1);
  zc_chan_close(ch);
  return 0;
}

static int t_setup_forever(int argc, char **argv) {
  seqpacket_pair(sv);
  pid_t c = spawn(late_producer, NULL);
  close(sv[1]);
  zc_chan_config_t cfg = {.setup_timeout_ms = -1};
  zc_chan_t *ch = zc_chan_open(sv[0], ZC_CHAN_CONSUMER, &cfg);
  REQUIREF(ch != NULL, "open with setup_timeout_ms = -1 failed: errno %d", errno);
  zc_chan_msg_t m;
  REQUIREF(zc_chan_receive(ch, &m, -1) == 0 && m.type == 3, "receive");
  zc_chan_release(ch, &m);
  REQUIREF(reap(c) == 0, "producer failed");
  zc_chan_close(ch);
  return 0;
}

/* ---- kill_setup ---- */
static int greet_and_die(void *arg) {
  close(sv[0]);
  raw_send(sv[1], WIRE_HELLO, (unsigned)(uintptr_t)arg);
  raise(SIGKILL);
  return 1;
}

static int t_kill_setup(int argc, char **argv) {
  for (int side = 0; side < 2; side++) { /* 0: the producer dies, 1: the consumer dies */
    seqpacket_pair(sv);
    pid_t c = spawn(greet_and_die, (void *)(uintptr_t)(side == 0 ? ZC_CHAN_PRODUCER : ZC_CHAN_CONSUMER));
    close(sv[1]);
    REQUIREF(reap(c) == 128 + SIGKILL, "the peer did not die");
    zc_chan_t *ch = zc_chan_open(sv[0], side == 0 ? ZC_CHAN_CONSUMER : ZC_CHAN_PRODUCER, NULL);
    int err = errno;
    if (ch != NULL) { /* the producer's records went out before it saw the death: its next look sees it */
      REQUIREF(side == 1, "the consumer opened a channel with a dead producer");
      err = collect_until_dead(ch);
      zc_chan_close(ch);
    }
    REQUIREF(err == EPIPE, "side %d: a peer killed during the handshake gave errno %d, expected EPIPE", side, err);
  }
  return 0;
}

/* ---- kill_growth ---- */
/* Producer: sends until it has grown to a second segment, then dies right after the loan that grew it. */
static int growing_producer(void *arg) {
  close(sv[0]);
  zc_chan_config_t cfg = {.first_segment = 512 << 10};
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_PRODUCER, &cfg);
  for (uint64_t i = 0;; i++) {
    void *p = zc_chan_loan(ch, 16384);
    REQUIREF(p != NULL, "loan: %s", strerror(errno));
    if (ch->nseg == 2) raise(SIGKILL); /* the SEG record is out, no descriptor names the segment yet */
    fill_pattern(p, 16384, i);
    REQUIREF(zc_chan_send(ch, p, 16384, (uint32_t)i) == 0, "send: %s", strerror(errno));
  }
}

/* Consumer: holds everything; dies by the parent's hand right after the producer grew. */
static int holding_consumer(void *arg) {
  close(sv[0]);
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_CONSUMER, NULL);
  for (;;) {
    zc_chan_msg_t m;
    if (zc_chan_receive(ch, &m, -1) != 0) return 1;
  }
}

static int t_kill_growth(int argc, char **argv) {
  /* the producer dies during growth */
  seqpacket_pair(sv);
  pid_t c = spawn(growing_producer, NULL);
  close(sv[1]);
  zc_chan_t *ch = open_end(sv[0], ZC_CHAN_CONSUMER, NULL);
  zc_chan_msg_t m[64];
  int n = 0, r;
  while (n < 64 && (r = zc_chan_receive(ch, &m[n], -1)) == 0) {
    REQUIREF(m[n].type == (uint32_t)n && verify_pattern(m[n].data, 16384, (uint64_t)n) < 0, "message %d", n);
    n++;
  }
  REQUIREF(n == 32 && errno == EPIPE, "%d messages (the first segment holds 32), then errno %d: %s", n, errno,
           zc_chan_error(ch));
  REQUIREF(reap(c) == 128 + SIGKILL, "the producer did not die");
  for (int i = 0; i < n; i++) REQUIREF(verify_pattern(m[i].data, 16384, (uint64_t)i) < 0, "held message %d changed", i);
  zc_chan_close(ch);
  /* the consumer dies during growth */
  seqpacket_pair(sv);
  c = spawn(holding_consumer, NULL);
  close(sv[1]);
  zc_chan_config_t cfg = {.first_segment = 512 << 10};
  ch = open_end(sv[0], ZC_CHAN_PRODUCER, &cfg);
  int err = 0;
  for (uint64_t i = 0; err == 0; i++) {
    void *p = zc_chan_loan(ch, 16384);
    if (p == NULL) {
      err = errno;
      break;
    }
    if (ch->nseg == 2 && c > 0) {
      kill(c, SIGKILL);
      REQUIREF(reap(c) == 128 + SIGKILL, "the consumer did not die");
      c = 0;
    }
    if (zc_chan_send(ch, p, 16384, 1) != 0) err = errno;
    if (i > 100000) break;
  }
  if (err == 0) err = collect_until_dead(ch);
  REQUIREF(err == EPIPE, "the producer ended with errno %d, expected EPIPE", err);
  check_reclaimed(ch, EPIPE);
  zc_chan_close(ch);
  return 0;
}

/* ---- kill_releases ---- */
static int releasing_consumer(void *arg) {
  close(sv[0]);
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_CONSUMER, NULL);
  static zc_chan_msg_t m[4000];
  for (int i = 0; i < 4000; i++) REQUIREF(zc_chan_receive(ch, &m[i], -1) == 0, "receive %d", i);
  REQUIREF(zc_chan_release_batch(ch, m, 2000) == 0, "release");
  signal_byte(pipefd[1]);
  /* the rest in batches of 8, slowly: the kill lands among them. 100 ms apart (25 s in all), so that
   * however late the parent's kill comes on a loaded machine, some are still held (at 0.2 ms apart, a
   * parent that waited 50 ms for a core found them all released) */
  for (int i = 2000; i < 4000; i += 8) {
    zc_chan_release_batch(ch, &m[i], 8);
    uint64_t until = now_ns() + 100000000;
    while (now_ns() < until) {
    }
  }
  for (;;) pause();
}

static int t_kill_releases(int argc, char **argv) {
  seqpacket_pair(sv);
  REQUIREF(pipe(pipefd) == 0, "pipe");
  pid_t c = spawn(releasing_consumer, NULL);
  close(sv[1]);
  zc_chan_t *ch = open_end(sv[0], ZC_CHAN_PRODUCER, NULL);
  for (int i = 0; i < 4000; i++) {
    void *p = zc_chan_loan(ch, 200);
    REQUIREF(p != NULL && zc_chan_send(ch, p, 200, 1) == 0, "send %d: %s", i, strerror(errno));
  }
  wait_byte(pipefd[0]);
  sleep_ms(2);
  kill(c, SIGKILL);
  REQUIREF(reap(c) == 128 + SIGKILL, "the consumer did not die");
  int err = collect_until_dead(ch);
  REQUIREF(err == EPIPE, "the producer ended with errno %d (%s)", err, zc_chan_error(ch));
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  printf("kill_releases: sent %lu, returned %lu, reclaimed %lu (%s)\n", (unsigned long)st.sent,
         (unsigned long)st.returned, (unsigned long)st.reclaimed, zc_chan_error(ch));
  check_reclaimed(ch, EPIPE);
  REQUIREF(st.returned >= 2000 && st.reclaimed > 0, "the kill did not land among the releases");
  zc_chan_close(ch);
  return 0;
}

/* ---- role ---- */
static int role_consumer(void *arg) {
  close(sv[0]);
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_CONSUMER, NULL);
  REQUIREF(zc_chan_role(ch) == ZC_CHAN_CONSUMER, "role %d", zc_chan_role(ch));
  zc_chan_peer_t peer;
  /* a socket pair's credentials are its creator's, on both ends (connect/accept give the peer's own: uid test) */
  REQUIREF(zc_chan_peer(ch, &peer) == 0 && peer.pid == getppid() && peer.uid == geteuid(), "peer pid %d", peer.pid);
  REQUIREF(zc_chan_loan(ch, 10) == NULL && errno == EINVAL, "a consumer cannot loan");
  wait_byte(pipefd[0]); /* the producer's open has finished */
  zc_chan_close(ch);
  return 0;
}

static int t_role(int argc, char **argv) {
  seqpacket_pair(sv);
  REQUIREF(pipe(pipefd) == 0, "pipe");
  pid_t c = spawn(role_consumer, NULL);
  close(sv[1]);
  zc_chan_t *ch = open_end(sv[0], ZC_CHAN_PRODUCER, NULL);
  signal_byte(pipefd[1]);
  REQUIREF(zc_chan_role(ch) == ZC_CHAN_PRODUCER, "role %d", zc_chan_role(ch));
  zc_chan_peer_t peer;
  REQUIREF(zc_chan_peer(ch, &peer) == 0 && peer.pid == getpid() && peer.uid == geteuid() && peer.gid == getegid(),
           "peer: pid %d uid %u gid %u, expected the pair's creator %d", peer.pid, peer.uid, peer.gid, (int)getpid());
  zc_chan_msg_t m;
  REQUIREF(zc_chan_receive(ch, &m, 0) == -1 && errno == EINVAL, "a producer cannot receive");
  REQUIREF(reap(c) == 0, "consumer failed");
  zc_chan_close(ch);
  return 0;
}
int main(int argc, char **argv) {
  static const zc_case_t cases[] = {
      {"uid", t_uid}, {"live_path", t_live_path}, {"setup_forever", t_setup_forever}, {"kill_setup", t_kill_setup},
      {"kill_growth", t_kill_growth}, {"kill_releases", t_kill_releases}, {"role", t_role}, {NULL, NULL}};
  alarm(120);
  signal(SIGPIPE, SIG_IGN);
  return zc_run_case(argc, argv, cases);
}
