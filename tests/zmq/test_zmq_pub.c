/* Fan-out over ZeroMQ (zc_ep_pub_*, zc_ep_subscribe; XPUB/SUB) across real processes over tcp://127.0.0.1,
 * ports picked by the kernel. Every wait has a deadline: a hang fails the test. Usage: test_zmq_pub <name>.
 * Children are this program started again by fork + exec (ZSPAWN, zmq_spawn.h) and close the descriptors
 * they inherit: the parent's ZeroMQ sockets must not live on in them. Message i of a stream with base b:
 * type i, size msg_size(b + i), bytes fill_pattern(b + i). */
#include "zc_test.h"
#include "zmq_spawn.h"
#include "zcmem.h"
#include "zcmem_zmq.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <zmq.h>

#define ANY_PORT "tcp://127.0.0.1:*"
/* A wait on the other process, whose pace is not under test (a loaded 2-core machine under a sanitizer may
 * leave it off the CPU for seconds): a hang still fails, at this deadline or the children's 60 s alarm
 * (zc_child.h). Subscribers wait this long for the handshake too (the default is 5 s). */
#define PEER_MS 60000
#define PEER_NS (PEER_MS * 1000000ull)
#define END_TYPE 0xfffffff0u

/* 1 B .. 4 MiB, mostly small, some around libzmq's 33-byte and 8 KiB limits, a few huge; `big`: 32-96 KiB. */
static int big_msgs;
static size_t msg_size(uint64_t i) {
  uint64_t r = splitmix64(i * 7 + 3);
  if (big_msgs) return 32768 + (r >> 8) % 65536;
  switch (r & 15) {
    case 0: return 8192 + (r >> 8) % (256 * 1024);
    case 1: return (r >> 8) % 64 == 0 ? ((size_t)1 << 20) + (r >> 16) % (3u << 20) : 33 + (r >> 8) % 8192;
    case 2: case 3: return 1 + (r >> 8) % 40;
    default: return 1 + (r >> 8) % 2000;
  }
}

/* ---- a subscriber child ---- */
typedef struct sub_args_s {
  const char *ep;
  uint64_t base;
  long first, count;  /* must receive messages first .. first + count - 1, in order, nothing else */
  int epoll;          /* in an epoll loop (zc_ep_arm, zc_ep_fd) */
  int hold;           /* keep up to this many views, re-checked at release */
  long die_after;     /* >= 0: after this many, stop reading, wait for gate->go (at most die_ms), SIGKILL itself */
  int die_ms;
  int ring;           /* ring_entries (high-water mark), 0: default */
  int done_fd;        /* > 0: write a byte there once every message came (the publisher waits for it) */
  int gate_fd;         /* with die_after: a memfd holding the gate_t shared with the publisher, else -1 */
} sub_args_t;

/* A subscriber that stops reading, and the publisher, agree through shared memory (a memfd both map):
 * the subscriber says it stopped; the publisher says go once a send of its has waited for room since then
 * (the stopped subscriber held it); only then does the subscriber die. */
typedef struct gate_s {
  int stopped, go;
} gate_t;

static void check_msg(const zc_chan_msg_t *m, uint64_t base, uint64_t i) {
  REQUIREF(m->type == (uint32_t)i, "expected message %lu, got type %u", (unsigned long)i, m->type);
  REQUIREF(m->len == msg_size(base + i), "message %lu: %u bytes, sent %zu", (unsigned long)i, m->len,
           msg_size(base + i));
  long bad = verify_pattern(m->data, m->len, base + i);
  REQUIREF(bad < 0, "message %lu (%u bytes): byte %ld differs", (unsigned long)i, m->len, bad);
}

/* One message, through the event loop or a blocking receive (PEER_MS); 0, or -1 with errno. In the loop,
 * every other call arms at once, without draining first: arm must see messages already queued (ZMQ_FD
 * is edge-triggered: sleeping on it with messages queued may never wake). */
static int sub_recv(zc_ep_t *s, int epfd, zc_chan_msg_t *m, unsigned long *wakeups) {
  if (epfd < 0) return zc_ep_receive(s, m, PEER_MS);
  static unsigned calls;
  int arm_first = calls++ & 1;
  for (;;) {
    if (!arm_first) {
      if (zc_ep_receive(s, m, 0) == 0) return 0;
      if (errno != EAGAIN) return -1;
    }
    arm_first = 0;
    int armed = zc_ep_arm(s);
    if (armed < 0) return -1;
    if (armed == 1) continue;
    struct epoll_event ev;
    int n = epoll_wait(epfd, &ev, 1, 45000); /* below the 60 s alarm: a lost wake-up shows as such */
    REQUIREF(n > 0, "epoll: armed, and the fd did not wake within 45 s");
    (*wakeups)++;
  }
}

static int subscriber_main(void *arg) {
  const sub_args_t *a = arg;
  zc_zmq_config_t cfg = {.chan.setup_timeout_ms = PEER_MS, .chan.ring_entries = (uint32_t)a->ring};
  gate_t *gate = NULL;
  if (a->gate_fd >= 0) {
    gate = mmap(NULL, sizeof *gate, PROT_READ | PROT_WRITE, MAP_SHARED, a->gate_fd, 0);
    REQUIREF(gate != MAP_FAILED, "mmap of the gate: %s", strerror(errno));
  }
  zc_ep_t *s = zc_ep_subscribe(a->ep, &cfg);
  REQUIREF(s != NULL, "subscribe %s: %s", a->ep, strerror(errno));
  int epfd = -1;
  if (a->epoll) {
    epfd = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN};
    REQUIREF(epoll_ctl(epfd, EPOLL_CTL_ADD, zc_ep_fd(s), &ev) == 0, "epoll_ctl");
  }
  zc_chan_msg_t held[64];
  int nheld = 0;
  unsigned long wakeups = 0;
  for (long k = 0; k < a->count; k++) {
    if (a->die_after >= 0 && k == a->die_after) {
      /* holding nheld views, reading nothing: the publisher fills up and waits (not a sleep of ours: the
       * publisher says when it has waited, whatever the pace of the processes) */
      __atomic_store_n(&gate->stopped, 1, __ATOMIC_RELEASE);
      REQUIREF(WAIT_UNTIL(__atomic_load_n(&gate->go, __ATOMIC_ACQUIRE), a->die_ms),
               "stopped reading after %ld messages; the publisher never said it waited for room", k);
      raise(SIGKILL);
    }
    zc_chan_msg_t m;
    REQUIREF(sub_recv(s, epfd, &m, &wakeups) == 0, "receive %ld: %s (%s)", a->first + k, strerror(errno),
             zc_ep_error(s));
    check_msg(&m, a->base, (uint64_t)(a->first + k));
    held[nheld++] = m;
    if (nheld > a->hold) { /* views stay valid while later messages arrive */
      for (int j = 0; j < nheld; j++) {
        check_msg(&held[j], a->base, (uint64_t)(a->first + k - nheld + 1 + j));
        REQUIREF(zc_ep_release(s, &held[j]) == 0, "release: %s", strerror(errno));
      }
      nheld = 0;
    }
  }
  for (int j = 0; j < nheld; j++) REQUIREF(zc_ep_release(s, &held[j]) == 0, "release: %s", strerror(errno));
  if (a->done_fd > 0) REQUIREF(write(a->done_fd, "d", 1) == 1, "done");
  /* the publisher closes: EPIPE, and nothing else arrives */
  zc_chan_msg_t m;
  int rc = zc_ep_receive(s, &m, PEER_MS);
  REQUIREF(rc != 0 && errno == EPIPE, "after the last message: rc %d, %s (%s)", rc, strerror(errno),
           zc_ep_error(s));
  REQUIREF(zc_ep_missed(s) == 0, "missed %lu", (unsigned long)zc_ep_missed(s));
  zc_chan_stats_t st;
  zc_ep_stats(s, &st);
  REQUIREF(st.received == (uint64_t)a->count && st.released == st.received && st.held_msgs == 0 && st.rejected == 0,
           "received %lu released %lu", (unsigned long)st.received, (unsigned long)st.released);
  if (a->epoll) REQUIREF(wakeups > 0, "the event loop never slept");
  zc_ep_close(s);
  return 0;
}

/* ---- publisher helpers ---- */
static zc_ep_pub_t *pub_open(const zc_zmq_config_t *cfg) {
  zc_ep_pub_t *p = zc_ep_pub_listen(ANY_PORT, cfg);
  REQUIREF(p != NULL, "pub listen: %s", strerror(errno));
  REQUIREF(zc_ep_pub_kind(p) == ZC_EP_ZMQ && strchr(zc_ep_pub_endpoint(p), '*') == NULL, "endpoint %s",
           zc_ep_pub_endpoint(p));
  return p;
}

static void pub_accept(zc_ep_pub_t *p, int n) {
  for (int k = 0; k < n; k++)
    REQUIREF(zc_ep_pub_accept(p, PEER_MS) >= 1, "accept %d: %s", k, strerror(errno));
}

/* Publish message i; returns what send returned (the subscribers). */
static int pub_one(zc_ep_pub_t *p, uint64_t base, uint64_t i) {
  size_t n = msg_size(base + i);
  void *q = zc_ep_pub_loan(p, n);
  REQUIREF(q != NULL, "loan %zu: %s (%s)", n, strerror(errno), zc_ep_pub_error(p));
  fill_pattern(q, n, base + i);
  int rc = zc_ep_pub_send(p, q, n, (uint32_t)i);
  REQUIREF(rc >= 0, "send %lu: %s (%s)", (unsigned long)i, strerror(errno), zc_ep_pub_error(p));
  return rc;
}

/* Every block libzmq held came back to zcmem through the free callback. */
static void pub_all_back(zc_ep_pub_t *p, uint64_t sent) {
  uint64_t deadline = now_ns() + PEER_NS;
  long inflight;
  while ((inflight = zc_ep_pub_collect(p)) > 0 && now_ns() < deadline) sleep_ms(2);
  zc_pub_stats_t st;
  zc_ep_pub_stats(p, &st);
  REQUIREF(inflight == 0 && st.chan.sent == sent && st.chan.returned == sent && st.chan.loaned_msgs == 0 &&
               st.chan.inflight_msgs == 0,
           "inflight %ld sent %lu returned %lu", inflight, (unsigned long)st.chan.sent,
           (unsigned long)st.chan.returned);
}

/* ---- tests ---- */

/* 3 subscriber processes (one in an epoll loop, one holding 16 views at a time) each receive every one of
 * thousands of messages of 1 B .. 4 MiB, byte-exact and in order; one zcmem block per message is shared
 * by the three connections and comes back once; the publisher's close gives them EPIPE. */
static int t_stream(int argc, char **argv) {
  long n = quick_mode(argc, argv) ? 1000 : 3000;
  zc_zmq_config_t cfg = {.chan.block_timeout_ms = PEER_MS};
  zc_ep_pub_t *p = pub_open(&cfg);
  int done[2];
  REQUIREF(pipe(done) == 0, "pipe");
  sub_args_t a[3] = {{zc_ep_pub_endpoint(p), 10, 0, n, 0, 0, -1, 0, 0, done[1], -1},
                     {zc_ep_pub_endpoint(p), 10, 0, n, 1, 0, -1, 0, 0, done[1], -1},
                     {zc_ep_pub_endpoint(p), 10, 0, n, 0, 16, -1, 0, 0, done[1], -1}};
  pid_t pid[3];
  for (int k = 0; k < 3; k++) pid[k] = ZSPAWN(subscriber_main, &a[k], ep, done[1], -1);
  close(done[1]);
  pub_accept(p, 3);
  zc_stats_t before;
  zc_stats_get(&before);
  for (long i = 0; i < n; i++) {
    int rc = pub_one(p, 10, (uint64_t)i);
    REQUIREF(rc == 3, "send %ld went to %d subscribers", i, rc);
    if (i % 200 == 199) sleep_ms(3); /* let the epoll subscriber sleep now and then */
  }
  pub_all_back(p, (uint64_t)n);
  zc_pub_stats_t st;
  zc_ep_pub_stats(p, &st);
  CHECK_EQ(st.deliveries, 3 * (uint64_t)n);
  CHECK_EQ(st.subscribers, 3);
  CHECK_EQ(st.joined, 3);
  CHECK_EQ(st.unheard, 0);
  zc_stats_t after;
  zc_stats_get(&after);
  CHECKF(after.remote_frees > before.remote_frees, "libzmq's I/O thread freed no block into zcmem");
  char c;
  for (int k = 0; k < 3; k++) /* before the close (its goodbye would wake a subscriber sleeping wrongly) */
    CHECKF(read(done[0], &c, 1) == 1, "a subscriber did not get every message before the close");
  zc_ep_pub_close(p);
  for (int k = 0; k < 3; k++) CHECKF(reap(pid[k]) == 0, "subscriber %d failed", k);
  CHECK_DONE("zmq_pub_stream");
}

/* One of three subscribers stops reading while it holds messages (the publisher, at a high-water mark of
 * 8, fills up and waits), then dies of SIGKILL: the publisher goes on, the other two get every message.
 * The victim dies only once the publisher has waited for room after it stopped (gate_t): each send waits at
 * most 200 ms (ETIMEDOUT, the loan stays ours) and is retried, and the first timeout after the victim
 * stopped lets it die; so the publisher is held by the victim whatever the pace of the processes. */
static int t_kill(int argc, char **argv) {
  big_msgs = 1;
  long n = quick_mode(argc, argv) ? 600 : 1500;
  zc_zmq_config_t cfg = {.chan.block_timeout_ms = 200, .chan.ring_entries = 8};
  zc_ep_pub_t *p = pub_open(&cfg);
  int gate_fd = memfd_create("zc-test-gate", 0); /* not close-on-exec: the victim maps it */
  REQUIREF(gate_fd >= 0 && ftruncate(gate_fd, sizeof(gate_t)) == 0, "memfd: %s", strerror(errno));
  gate_t *gate = mmap(NULL, sizeof *gate, PROT_READ | PROT_WRITE, MAP_SHARED, gate_fd, 0);
  REQUIREF(gate != MAP_FAILED, "mmap");
  sub_args_t a[3] = {{zc_ep_pub_endpoint(p), 20, 0, n, 0, 0, -1, 0, 0, 0, -1},
                     {zc_ep_pub_endpoint(p), 20, 0, n, 1, 0, -1, 0, 0, 0, -1},
                     {zc_ep_pub_endpoint(p), 20, 0, n, 0, 10, 100, PEER_MS, 8, 0, gate_fd}};
  pid_t pid[3];
  for (int k = 0; k < 3; k++) pid[k] = ZSPAWN(subscriber_main, &a[k], ep, -1, a[k].gate_fd);
  pub_accept(p, 3);
  long timeouts = 0, held = 0; /* sends that timed out; of them, after the victim stopped */
  for (long i = 0; i < n; i++) {
    size_t sz = msg_size(20 + (uint64_t)i);
    void *q = zc_ep_pub_loan(p, sz);
    REQUIREF(q != NULL, "loan %zu: %s (%s)", sz, strerror(errno), zc_ep_pub_error(p));
    fill_pattern(q, sz, 20 + (uint64_t)i);
    uint64_t deadline = now_ns() + PEER_NS;
    int rc;
    while ((rc = zc_ep_pub_send(p, q, sz, (uint32_t)i)) < 0) {
      REQUIREF(errno == ETIMEDOUT, "send %ld: %s (%s)", i, strerror(errno), zc_ep_pub_error(p));
      REQUIREF(now_ns() < deadline, "send %ld: no room for %d s (the victim %s)", i, PEER_MS / 1000,
               __atomic_load_n(&gate->go, __ATOMIC_ACQUIRE) ? "was told to die" : "is alive");
      timeouts++;
      if (__atomic_load_n(&gate->stopped, __ATOMIC_ACQUIRE)) { /* it holds us: let it die */
        held++;
        __atomic_store_n(&gate->go, 1, __ATOMIC_RELEASE);
      }
    }
    REQUIREF(rc >= 2, "send %ld went to %d subscribers", i, rc);
  }
  __atomic_store_n(&gate->go, 1, __ATOMIC_RELEASE); /* if it never held us, the check below says so */
  CHECKF(held > 0, "the stopped subscriber never held the publisher (%ld sends timed out, none after it stopped)",
         timeouts);
  CHECKF(reap(pid[2]) == 128 + SIGKILL, "the victim did not die of SIGKILL");
  REQUIREF(WAIT_UNTIL(zc_ep_pub_subscribers(p) == 2, PEER_MS), "subscribers %d", zc_ep_pub_subscribers(p));
  pub_all_back(p, (uint64_t)n);
  zc_pub_stats_t st;
  zc_ep_pub_stats(p, &st);
  CHECKF(st.chan.full_waits > 0, "the stalled subscriber never held the publisher (full_waits 0)");
  CHECKF(st.left >= 1, "left %lu", (unsigned long)st.left);
  printf("kill: %lu sends waited for room (%ld timed out after 200 ms, %ld of them after the victim stopped), %lu "
         "subscribers left\n", (unsigned long)st.chan.full_waits, timeouts, held, (unsigned long)st.left);
  zc_ep_pub_close(p);
  for (int k = 0; k < 2; k++) CHECKF(reap(pid[k]) == 0, "subscriber %d failed", k);
  CHECK_DONE("zmq_pub_kill");
}

/* A publisher child: bind (port * or the given one, retried while the old one's port is held), send its
 * endpoint through the pipe, accept one subscriber, publish count messages, then close or wait to die. */
typedef struct pubc_args_s {
  const char *ep;
  int pipe_fd;
  uint64_t base;
  long count;
  int stay;
  int pre; /* publish this many 8-byte messages (type PRE_TYPE + k) before accepting: mostly to nobody */
} pubc_args_t;
#define PRE_TYPE 0xffff0000u

static int publisher_main(void *arg) {
  const pubc_args_t *a = arg;
  zc_zmq_config_t cfg = {.chan.block_timeout_ms = PEER_MS};
  zc_ep_pub_t *p = NULL;
  for (int tries = 0; p == NULL && tries < 300; tries++)
    if ((p = zc_ep_pub_listen(a->ep, &cfg)) == NULL) sleep_ms(10);
  REQUIREF(p != NULL, "pub listen %s: %s", a->ep, strerror(errno));
  if (a->pipe_fd >= 0) pipe_send_str(a->pipe_fd, zc_ep_pub_endpoint(p));
  for (int k = 0; k < a->pre; k++) {
    void *q = zc_ep_pub_loan(p, 8);
    REQUIREF(q != NULL && zc_ep_pub_send(p, q, 8, PRE_TYPE + (uint32_t)k) >= 0, "pre %d: %s", k, strerror(errno));
  }
  pub_accept(p, 1);
  for (long i = 0; i < a->count; i++) REQUIREF(pub_one(p, a->base, (uint64_t)i) >= 1, "send %ld", i);
  if (a->stay) sleep(60);
  zc_ep_pub_close(p);
  return 0;
}

/* The publisher is killed and a new one binds the same port: the subscriber gets EPIPE in between, then
 * ZeroMQ reconnects, and it receives the new publisher's whole stream (sent after it was accepted);
 * nothing counted as missed (a new connection starts a new numbering run). */
static int t_restart(int argc, char **argv) {
  int pfd[2];
  REQUIREF(pipe(pfd) == 0, "pipe");
  pubc_args_t a = {ANY_PORT, pfd[1], 30, 300, 1, 0};
  pid_t pa = ZSPAWN(publisher_main, &a, ep, pfd[1], -1);
  char ep[256];
  pipe_recv_str(pfd[0], ep, sizeof ep);
  zc_zmq_config_t cfg = {.chan.setup_timeout_ms = PEER_MS};
  zc_ep_t *s = zc_ep_subscribe(ep, &cfg);
  REQUIREF(s != NULL, "subscribe %s: %s", ep, strerror(errno));
  for (uint64_t i = 0; i < 300; i++) {
    zc_chan_msg_t m;
    REQUIREF(zc_ep_receive(s, &m, PEER_MS) == 0, "receive %lu: %s", (unsigned long)i, strerror(errno));
    check_msg(&m, 30, i);
    zc_ep_release(s, &m);
  }
  kill(pa, SIGKILL);
  CHECKF(reap(pa) == 128 + SIGKILL, "publisher A did not die of SIGKILL");
  zc_chan_msg_t m;
  int rc;
  uint64_t deadline = now_ns() + PEER_NS;
  while ((rc = zc_ep_receive(s, &m, 100)) != 0 && errno == ETIMEDOUT && now_ns() < deadline) {
  }
  REQUIREF(rc != 0 && errno == EPIPE, "after the kill: rc %d, %s", rc, strerror(errno));
  /* B numbers from 0 again and first publishes 1000 messages, most before we are reconnected: its first
   * message we see is numbered above A's last, and must start a new run, not count as a gap */
  pubc_args_t b = {ep, -1, 40, 300, 0, 1000};
  pid_t pb = ZSPAWN(publisher_main, &b, ep, -1, -1);
  deadline = now_ns();
  for (uint64_t i = 0; i < 300;) {
    if (zc_ep_receive(s, &m, 1000) != 0) { /* EPIPE while no publisher is connected */
      REQUIREF((errno == EPIPE || errno == ETIMEDOUT) && now_ns() < deadline + PEER_NS,
               "receive %lu from B: %s", (unsigned long)i, strerror(errno));
      sleep_ms(5);
      continue;
    }
    if (m.type < PRE_TYPE) check_msg(&m, 40, i++);
    zc_ep_release(s, &m);
  }
  while ((rc = zc_ep_receive(s, &m, 100)) != 0 && errno == ETIMEDOUT && now_ns() < deadline + 2 * PEER_NS) {
  }
  CHECKF(rc != 0 && errno == EPIPE, "after B closed: rc %d, %s", rc, strerror(errno));
  CHECKF(reap(pb) == 0, "publisher B failed");
  CHECKF(zc_ep_missed(s) == 0, "missed %lu across the restart", (unsigned long)zc_ep_missed(s));
  zc_ep_close(s);
  CHECK_DONE("zmq_pub_restart");
}

/* A subscriber that joins after 100 messages gets exactly the ones sent after its subscription arrived
 * (its first is message 100); the first subscriber gets all 200. */
static int t_late(int argc, char **argv) {
  zc_zmq_config_t cfg = {.chan.block_timeout_ms = PEER_MS};
  zc_ep_pub_t *p = pub_open(&cfg);
  sub_args_t a = {zc_ep_pub_endpoint(p), 50, 0, 200, 0, 0, -1, 0, 0, 0, -1};
  sub_args_t b = {zc_ep_pub_endpoint(p), 50, 100, 100, 0, 0, -1, 0, 0, 0, -1};
  pid_t pa = ZSPAWN(subscriber_main, &a, ep, -1, -1);
  pub_accept(p, 1);
  for (uint64_t i = 0; i < 100; i++) REQUIREF(pub_one(p, 50, i) == 1, "send %lu", (unsigned long)i);
  pid_t pb = ZSPAWN(subscriber_main, &b, ep, -1, -1);
  pub_accept(p, 1);
  REQUIREF(WAIT_UNTIL(zc_ep_pub_subscribers(p) == 2, PEER_MS), "subscribers");
  for (uint64_t i = 100; i < 200; i++) REQUIREF(pub_one(p, 50, i) == 2, "send %lu", (unsigned long)i);
  pub_all_back(p, 200);
  zc_ep_pub_close(p);
  CHECKF(reap(pa) == 0, "subscriber A failed");
  CHECKF(reap(pb) == 0, "late subscriber B failed");
  CHECK_DONE("zmq_pub_late");
}

/* ---- garbage ---- */
/* A peer that is not a SUB: an XSUB subscribing, then sending junk frames, then one too large (its
 * connection is dropped). */
typedef struct {
  char ep[256];
  int go; /* read end: a byte (or end of file) once the publisher counted the junk frames */
} junk_xsub_args_t;

static int junk_xsub_main(void *arg) {
  const junk_xsub_args_t *ja = arg;
  const char *ep = ja->ep;
  void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_XSUB);
  REQUIREF(zmq_connect(s, ep) == 0, "connect %s", ep);
  unsigned char buf[1000];
  fill_pattern(buf, sizeof buf, 77);
  buf[0] = 1;
  zmq_send(s, buf, 1, 0); /* a subscription to everything, as a SUB would */
  buf[0] = 7;
  zmq_send(s, "", 0, 0);
  zmq_send(s, "hello", 5, 0);
  zmq_send(s, buf, 200, 0);
  zmq_send(s, buf, 10, ZMQ_SNDMORE);
  zmq_send(s, buf, 10, 0);
  buf[0] = 2;
  zmq_send(s, buf, 3, 0);
  /* the oversized frame only once the publisher has counted the junk before it: a connection dropped with
   * frames still queued would lose them (a fixed pause here was a bet on the publisher's pace) */
  char c;
  if (read(ja->go, &c, 1) < 0) {
  }
  zmq_send(s, buf, sizeof buf, 0); /* above the publisher's 256-byte limit: libzmq drops the connection */
  sleep(60);                       /* until killed: only the publisher can have closed it */
  int linger = 0;
  zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
  zmq_close(s);
  zmq_ctx_term(ctx);
  return 0;
}

/* A raw TCP peer writing bytes that are not ZMTP. */
static int junk_tcp_main(void *arg) {
  const char *ep = arg;
  int port = atoi(strrchr(ep, ':') + 1);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIREF(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect: %s", strerror(errno));
  unsigned char junk[4096];
  fill_pattern(junk, sizeof junk, 88);
  if (write(fd, junk, sizeof junk) < 0) {
  }
  sleep_ms(200);
  close(fd);
  return 0;
}

/* A hostile publisher: a raw XPUB sending frames that are not published zcmem messages, then one good. */
static const int n_bad_frames = 6 + 100;
static int junk_pub_main(void *arg) {
  int fd = ((int *)arg)[0], done = ((int *)arg)[1];
  void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_XPUB);
  REQUIREF(zmq_bind(s, ANY_PORT) == 0, "bind");
  char ep[256];
  size_t len = sizeof ep;
  zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &len);
  pipe_send_str(fd, ep);
  char sub[16];
  REQUIREF(zmq_recv(s, sub, sizeof sub, 0) >= 1 && sub[0] == 1, "no subscription came");
  uint32_t h[4];
  unsigned char buf[600];
  zmq_send(s, "abc", 3, 0);                                  /* shorter than a header */
  h[0] = 0x315a435au, h[1] = 1, h[2] = 4, h[3] = 0;          /* a one-way frame: not published */
  memcpy(buf, h, 16);
  zmq_send(s, buf, 20, 0);
  h[0] = 0x31505a5au, h[1] = 1, h[2] = 50, h[3] = 0;         /* published magic, length 50, frame 20 */
  memcpy(buf, h, 16);
  zmq_send(s, buf, 36, 0);
  h[2] = 0xffffffffu;                                        /* a length far above the frame */
  memcpy(buf, h, 16);
  zmq_send(s, buf, 16, 0);
  zmq_send(s, buf, 16, ZMQ_SNDMORE);                         /* two parts */
  zmq_send(s, buf, 16, 0);
  zmq_send(s, "", 0, 0);                                     /* empty */
  for (int i = 0; i < 100; i++) {
    fill_pattern(buf, sizeof buf, 1000 + (uint64_t)i);
    zmq_send(s, buf, 1 + splitmix64((uint64_t)i) % sizeof buf, 0);
  }
  h[0] = 0x31505a5au, h[1] = 7, h[2] = 5, h[3] = 0;          /* good: type 7, seq 0, "hello" */
  memcpy(buf, h, 16);
  memcpy(buf + 16, "hello", 5);
  zmq_send(s, buf, 21, 0);
  /* connected until the parent got the good message (end of file on done): a publisher gone before a
   * starved subscriber read its frames would end that subscriber's stream with EPIPE (a fixed 1 s here
   * was a bet on the subscriber's pace) */
  char c;
  if (read(done, &c, 1) < 0) {
  }
  zmq_close(s);
  zmq_ctx_term(ctx);
  return 0;
}

/* Garbage both ways: the publisher drops (and counts) a peer's junk frames and a non-ZMTP TCP peer, and
 * its real subscriber still gets every message; a subscriber fed junk by a hostile publisher gets one
 * EPROTO per bad frame, counted, and then the good message. Nobody crashes. */
static int t_garbage(int argc, char **argv) {
  zc_zmq_config_t cfg = {.chan.block_timeout_ms = PEER_MS};
  zc_ep_pub_t *p = pub_open(&cfg);
  const char *ep = zc_ep_pub_endpoint(p);
  sub_args_t a = {ep, 60, 0, 50, 0, 0, -1, 0, 0, 0, -1};
  pid_t pa = ZSPAWN(subscriber_main, &a, ep, -1, -1);
  pub_accept(p, 1);
  pid_t j2 = ZSPAWN_STR(junk_tcp_main, ep, -1, -1);
  CHECKF(reap(j2) == 0, "junk TCP peer");
  zc_pub_stats_t st;
  CHECKF(WAIT_UNTIL((zc_ep_pub_stats(p, &st), st.left >= 1), PEER_MS), "the non-ZMTP peer's connection: left %lu",
         (unsigned long)st.left);
  uint64_t left0 = st.left;
  int go[2];
  REQUIREF(pipe(go) == 0, "pipe");
  junk_xsub_args_t ja = {.go = go[0]};
  snprintf(ja.ep, sizeof ja.ep, "%s", ep);
  pid_t j1 = ZSPAWN_POD(junk_xsub_main, &ja, go[0], -1);
  close(go[0]);
  CHECKF(WAIT_UNTIL((zc_ep_pub_stats(p, &st), st.chan.rejected >= 5), PEER_MS),
         "rejected %lu: the junk XSUB's five junk frames were not all counted", (unsigned long)st.chan.rejected);
  close(go[1]); /* the junk XSUB may send its oversized frame */
  CHECKF(WAIT_UNTIL((zc_ep_pub_stats(p, &st), st.left > left0), PEER_MS),
         "rejected %lu, left %lu: the junk XSUB's oversized frame did not get its connection dropped",
         (unsigned long)st.chan.rejected, (unsigned long)st.left);
  kill(j1, SIGKILL);
  reap(j1);
  CHECKF(strstr(zc_ep_pub_error(p), "not a subscription") != NULL, "error: %s", zc_ep_pub_error(p));
  for (uint64_t i = 0; i < 50; i++) REQUIREF(pub_one(p, 60, i) >= 1, "send %lu", (unsigned long)i);
  pub_all_back(p, 50);
  zc_ep_pub_close(p);
  CHECKF(reap(pa) == 0, "subscriber failed");

  int pfd[2], done[2];
  REQUIREF(pipe(pfd) == 0 && pipe(done) == 0, "pipe");
  int fds[2] = {pfd[1], done[0]};
  pid_t hp = ZSPAWN_POD(junk_pub_main, &fds, pfd[1], done[0]);
  close(pfd[1]);
  close(done[0]);
  char hep[256];
  pipe_recv_str(pfd[0], hep, sizeof hep);
  close(pfd[0]);
  zc_zmq_config_t scfg = {.chan.setup_timeout_ms = PEER_MS, .max_msg = 1000};
  zc_zmq_t *s = zc_zmq_sub_connect(hep, &scfg);
  REQUIREF(s != NULL, "sub connect: %s", strerror(errno));
  int eproto = 0;
  zc_chan_msg_t m;
  for (;;) {
    if (zc_zmq_receive(s, &m, PEER_MS) == 0) break;
    REQUIREF(errno == EPROTO, "receive: %s", strerror(errno));
    eproto++;
  }
  CHECKF(m.type == 7 && m.len == 5 && memcmp(m.data, "hello", 5) == 0, "the good message: type %u len %u", m.type,
         m.len);
  zc_zmq_release(s, &m);
  zc_chan_stats_t sst;
  zc_zmq_stats(s, &sst);
  CHECK_EQ(eproto, n_bad_frames);
  CHECK_EQ(sst.rejected, n_bad_frames);
  CHECK_EQ(sst.received, 1);
  CHECKF(strstr(zc_zmq_error(s), "dropped") != NULL, "error: %s", zc_zmq_error(s));
  zc_zmq_close(s);
  close(done[1]); /* the hostile publisher may go */
  CHECKF(reap(hp) == 0, "hostile publisher");
  CHECK_DONE("zmq_pub_garbage");
}

/* ---- slow subscribers: the policies ---- */
/* A subscriber that subscribes and reads nothing until killed. */
static int stalled_main(void *arg) {
  zc_zmq_config_t cfg = {.chan.setup_timeout_ms = PEER_MS, .chan.ring_entries = 4};
  zc_ep_t *s = zc_ep_subscribe(arg, &cfg);
  REQUIREF(s != NULL, "subscribe: %s", strerror(errno));
  sleep(60);
  return 0;
}

/* ZC_CHAN_FAIL: EAGAIN once the stalled subscriber is full, the loan stays ours; ZC_CHAN_BLOCK: ETIMEDOUT
 * after the timeout, the loan stays ours; once the stalled subscriber is killed, sends go through again. */
static void one_policy(int policy) {
  big_msgs = 1;
  zc_zmq_config_t cfg = {.chan.policy = policy, .chan.block_timeout_ms = 200, .chan.ring_entries = 4};
  zc_ep_pub_t *p = pub_open(&cfg);
  pid_t st = ZSPAWN_STR(stalled_main, zc_ep_pub_endpoint(p), -1, -1);
  pub_accept(p, 1);
  long i = 0;
  int rc = 0;
  void *q = NULL;
  uint64_t t0 = 0;
  for (; i < 20000; i++) {
    size_t n = msg_size(70 + (uint64_t)i);
    q = zc_ep_pub_loan(p, n);
    REQUIREF(q != NULL, "loan: %s", strerror(errno));
    t0 = now_ns();
    if ((rc = zc_ep_pub_send(p, q, n, (uint32_t)i)) < 0) break;
  }
  REQUIREF(rc < 0, "%ld messages of 32-96 KiB sent to a subscriber that reads nothing", i);
  uint64_t waited_ms = (now_ns() - t0) / 1000000;
  int want = policy == ZC_CHAN_FAIL ? EAGAIN : ETIMEDOUT;
  CHECKF(errno == want, "policy %d: %s, expected %s (%s)", policy, strerror(errno), strerror(want),
         zc_ep_pub_error(p));
  if (policy == ZC_CHAN_BLOCK) CHECKF(waited_ms >= 150, "ETIMEDOUT after %lu ms (timeout 200)", (unsigned long)waited_ms);
  CHECKF(zc_ep_pub_cancel(p, q) == 0, "the loan did not stay with the caller: %s", strerror(errno));
  printf("policy %d: %s after %ld messages\n", policy, strerror(want), i);
  kill(st, SIGKILL);
  reap(st);
  uint64_t deadline = now_ns() + PEER_NS;
  for (;;) { /* once the dead one's connection is gone, nobody holds the publisher */
    void *r = zc_ep_pub_loan(p, 100);
    REQUIREF(r != NULL, "loan: %s", strerror(errno));
    if (zc_ep_pub_send(p, r, 100, 1) >= 0) break;
    REQUIREF(errno == want && now_ns() < deadline, "after the kill: %s", strerror(errno));
    zc_ep_pub_cancel(p, r);
    sleep_ms(10);
  }
  REQUIREF(WAIT_UNTIL(zc_ep_pub_subscribers(p) == 0, PEER_MS), "the killed subscriber is still counted");
  CHECKF(zc_ep_pub_collect(p) >= 0, "collect with nobody left: %s (a publisher is not broken by that)",
         strerror(errno));
  pub_one(p, 71, 0); /* nor is a send */
  zc_ep_pub_close(p);
}

static int t_policy(int argc, char **argv) {
  one_policy(ZC_CHAN_FAIL);
  one_policy(ZC_CHAN_BLOCK);
  CHECK_DONE("zmq_pub_policy");
}

/* ZC_PUB_EVICT: a subscriber reading nothing until told (a pipe) and a fast one. The publisher never waits
 * and never fails; the slow one misses messages, and what it received plus what it counts as missed is
 * every message sent (the numbering is exact). */
typedef struct evict_args_s {
  const char *ep;
  int go_fd, done_fd; /* slow: wait for a byte on go_fd before reading; write one on done_fd when drained */
  long n;
  int slow;
} evict_args_t;

static int evict_sub_main(void *arg) {
  const evict_args_t *a = arg;
  zc_zmq_config_t cfg = {.chan.setup_timeout_ms = PEER_MS, .chan.ring_entries = a->slow ? 4 : 0};
  zc_zmq_t *s = zc_zmq_sub_connect(a->ep, &cfg);
  REQUIREF(s != NULL, "subscribe: %s", strerror(errno));
  char c;
  if (a->slow) REQUIREF(read(a->go_fd, &c, 1) == 1, "go");
  uint64_t got = 0;
  int end = 0;
  for (;;) {
    zc_chan_msg_t m;
    int rc = zc_zmq_receive(s, &m, a->slow && !end ? 500 : PEER_MS);
    if (rc != 0 && errno == ETIMEDOUT && a->slow) { /* drained: ask for the end marker */
      REQUIREF(write(a->done_fd, "d", 1) == 1, "done");
      end = 1;
      continue;
    }
    REQUIREF(rc == 0, "receive: %s", strerror(errno));
    if (m.type == END_TYPE) break;
    check_msg(&m, 80, m.type);
    zc_zmq_release(s, &m);
    got++;
  }
  uint64_t missed = zc_zmq_missed(s);
  printf("%s subscriber: %lu received, %lu missed\n", a->slow ? "slow" : "fast", (unsigned long)got,
         (unsigned long)missed);
  REQUIREF(got + missed == (uint64_t)a->n, "received %lu + missed %lu != sent %ld", (unsigned long)got,
           (unsigned long)missed, a->n);
  if (a->slow) REQUIREF(missed > 0, "the slow subscriber missed nothing");
  zc_zmq_close(s);
  return 0;
}

static int t_evict(int argc, char **argv) {
  big_msgs = 1;
  long n = quick_mode(argc, argv) ? 800 : 2000;
  zc_zmq_config_t cfg = {.chan.policy = ZC_PUB_EVICT, .chan.ring_entries = 4};
  zc_ep_pub_t *p = pub_open(&cfg);
  int go[2], done[2];
  REQUIREF(pipe(go) == 0 && pipe(done) == 0, "pipe");
  evict_args_t slow = {zc_ep_pub_endpoint(p), go[0], done[1], n, 1};
  evict_args_t fast = {zc_ep_pub_endpoint(p), -1, -1, n, 0};
  pid_t ps = ZSPAWN(evict_sub_main, &slow, ep, go[0], done[1]);
  pid_t pf = ZSPAWN(evict_sub_main, &fast, ep, -1, -1);
  pub_accept(p, 2);
  for (long i = 0; i < n; i++) REQUIREF(pub_one(p, 80, (uint64_t)i) >= 1, "send %ld", i);
  zc_pub_stats_t st;
  zc_ep_pub_stats(p, &st);
  CHECK_EQ(st.chan.full_waits, 0);
  REQUIREF(write(go[1], "g", 1) == 1, "go");
  char c;
  REQUIREF(read(done[0], &c, 1) == 1, "the slow subscriber never drained");
  void *q = zc_ep_pub_loan(p, 8);
  REQUIREF(q != NULL && zc_ep_pub_send(p, q, 8, END_TYPE) == 2, "end marker: %s", strerror(errno));
  pub_all_back(p, (uint64_t)n + 1);
  zc_ep_pub_close(p);
  CHECKF(reap(ps) == 0, "slow subscriber failed");
  CHECKF(reap(pf) == 0, "fast subscriber failed");
  CHECK_DONE("zmq_pub_evict");
}

/* Arguments, nobody subscribed, accept timeouts, inproc refused. */
static int t_api(int argc, char **argv) {
  CHECK(zc_zmq_pub_bind("inproc://x", NULL) == NULL && errno == EPROTONOSUPPORT);
  CHECK(zc_zmq_sub_connect("inproc://x", NULL) == NULL && errno == EPROTONOSUPPORT);
  zc_zmq_config_t bad = {.chan.policy = 3};
  CHECK(zc_zmq_pub_bind(ANY_PORT, &bad) == NULL && errno == EINVAL);
  zc_zmq_config_t evict = {.chan.policy = ZC_PUB_EVICT};
  CHECK(zc_zmq_bind(ANY_PORT, ZC_CHAN_PRODUCER, &evict) == NULL && errno == EINVAL); /* publishers only */
  zc_zmq_t *push = zc_zmq_bind(ANY_PORT, ZC_CHAN_PRODUCER, NULL);
  REQUIRE(push != NULL);
  void *q = zc_zmq_loan(push, 10);
  CHECK(zc_zmq_pub_send(push, q, 10, 0) == -1 && errno == EINVAL);
  CHECK(zc_zmq_pub_accept(push, 0) == -1 && errno == EINVAL);
  zc_zmq_cancel(push, q);
  zc_zmq_close(push);

  zc_ep_pub_t *p = pub_open(NULL);
  CHECK(zc_ep_pub_accept(p, 0) == -1 && errno == EAGAIN);
  CHECK(zc_ep_pub_accept(p, 50) == -1 && errno == ETIMEDOUT);
  CHECK_EQ(zc_ep_pub_subscribers(p), 0);
  q = zc_ep_pub_loan(p, 100);
  REQUIRE(q != NULL);
  CHECK_EQ(zc_ep_pub_send(p, q, 100, 1), 0); /* nobody: sent to nobody, the block comes back */
  int local;
  CHECK(zc_ep_pub_send(p, &local, 4, 1) == -1 && errno == EINVAL);
  q = zc_ep_pub_loan(p, 10);
  CHECK(zc_ep_pub_send(p, q, 11, 1) == -1 && errno == EMSGSIZE);
  CHECK(zc_ep_pub_cancel(p, q) == -1 && errno == EINVAL); /* given back by the failed send */
  pub_all_back(p, 1);
  zc_pub_stats_t st;
  zc_ep_pub_stats(p, &st);
  CHECK_EQ(st.unheard, 1);
  CHECK_EQ(st.deliveries, 0);
  /* one config for both ends: a subscriber accepts the publisher's policies (they are not its business) */
  zc_zmq_config_t sc = {.chan.policy = ZC_PUB_EVICT, .chan.setup_timeout_ms = PEER_MS};
  zc_zmq_t *s = zc_zmq_sub_connect(zc_ep_pub_endpoint(p), &sc);
  CHECKF(s != NULL, "subscriber with ZC_PUB_EVICT: %s", strerror(errno));
  zc_zmq_close(s);
  zc_ep_pub_close(p);
  CHECK_DONE("zmq_pub_api");
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"stream", t_stream}, {"kill", t_kill},       {"restart", t_restart},
                                    {"late", t_late},     {"garbage", t_garbage}, {"policy", t_policy},
                                    {"evict", t_evict},   {"api", t_api},         {NULL, NULL}};
  zspawn_inherit(&big_msgs, sizeof big_msgs); /* msg_size() in the children: as the parent set it */
  zspawn_main(argc, argv); /* a child started by ZSPAWN runs its function here and exits */
  return zc_run_case(argc, argv, cases);
}
