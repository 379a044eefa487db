/* The ZeroMQ transport across real processes over tcp://127.0.0.1 (ports picked by the kernel: bind to
 * port * and read the endpoint back). Every test has deadlines: a hang fails it. Usage: test_zmq <name>.
 * The children are this program started again by fork + exec (ZSPAWN, zmq_spawn.h: never a bare fork once
 * libzmq's threads run) and close the descriptors they inherit: the parent's ZeroMQ sockets must not live
 * on in them. */
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
 * leave it off the CPU for seconds): a hang still fails, at this deadline, the children's 60 s alarm
 * (zc_child.h) or this program's alarm. */
#define PEER_MS 60000
#define PEER_NS (PEER_MS * 1000000ull)

/* Message i's size: 1 B .. 4 MiB, mostly small (below libzmq's 8 KiB batch), some large, a few huge. */
static size_t msg_size(uint64_t i) {
  uint64_t r = splitmix64(i * 7 + 3);
  switch (r & 15) {
    case 0: return 8192 + (r >> 8) % (256 * 1024);
    case 1: return (r >> 8) % 64 == 0 ? ((size_t)1 << 20) + (r >> 16) % (3u << 20) : 33 + (r >> 8) % 8192;
    case 2: case 3: return 1 + (r >> 8) % 40; /* around libzmq's 33-byte in-message limit */
    default: return 1 + (r >> 8) % 2000;
  }
}

/* ---- a producer child ---- */
typedef struct prod_args_s {
  const char *ep;
  uint64_t base;     /* message i carries seed base + i, type i */
  long count;        /* < 0: until killed */
  int burst;         /* > 0: pause 2 ms after every burst messages (so an epoll consumer sleeps) */
  int hb_ms, hb_timeout_ms;
  int check_returns; /* at the end: every block came back to zcmem through libzmq's free callback */
  int stay;          /* then keep the connection open until killed */
} prod_args_t;

static int send_msg(zc_zmq_t *z, uint64_t base, uint64_t i, uint64_t deadline) {
  size_t n = msg_size(base + i);
  void *p = zc_zmq_loan(z, n);
  REQUIREF(p != NULL, "loan %zu: %s (%s)", n, strerror(errno), zc_zmq_error(z));
  fill_pattern(p, n, base + i);
  while (zc_zmq_send(z, p, n, (uint32_t)i) != 0) {
    if (errno == EPIPE) return -1; /* the loan went back */
    REQUIREF(errno == ETIMEDOUT && now_ns() < deadline, "send %lu: %s (%s)", (unsigned long)i, strerror(errno),
             zc_zmq_error(z));
  }
  return 0;
}

static int producer_main(void *arg) {
  const prod_args_t *a = arg;
  /* linger: close waits until the consumer took everything (zmq_linger checks that nothing is dropped);
   * with 10 s, a consumer off the CPU that long would lose the rest */
  zc_zmq_config_t cfg = {.chan.setup_timeout_ms = PEER_MS, .heartbeat_ms = a->hb_ms,
                         .heartbeat_timeout_ms = a->hb_timeout_ms, .linger_ms = PEER_MS};
  zc_zmq_t *z = zc_zmq_connect(a->ep, ZC_CHAN_PRODUCER, &cfg);
  REQUIREF(z != NULL, "connect %s: %s", a->ep, strerror(errno));
  zc_stats_t before;
  zc_stats_get(&before);
  uint64_t deadline = now_ns() + 2 * PEER_NS; /* every send; the child's alarm bounds it too */
  for (long i = 0; a->count < 0 || i < a->count; i++) {
    if (send_msg(z, a->base, (uint64_t)i, deadline) != 0) return 3;
    if (a->burst > 0 && i % a->burst == a->burst - 1) sleep_ms(2);
  }
  if (a->check_returns) {
    long inflight;
    while ((inflight = zc_zmq_collect(z)) > 0 && now_ns() < deadline) sleep_ms(1);
    zc_chan_stats_t st;
    zc_zmq_stats(z, &st);
    REQUIREF(inflight == 0 && st.sent == (uint64_t)a->count && st.returned == st.sent && st.loaned_msgs == 0 &&
                 st.inflight_msgs == 0,
             "inflight %ld sent %lu returned %lu loaned %lu", inflight, (unsigned long)st.sent,
             (unsigned long)st.returned, (unsigned long)st.loaned_msgs);
    zc_stats_t after;
    zc_stats_get(&after);
    REQUIREF(after.remote_frees > before.remote_frees, "libzmq's I/O thread freed no block into zcmem");
    REQUIREF(after.allocated < before.allocated + (4u << 20), "%lu bytes more allocated after every block came back",
             (unsigned long)(after.allocated - before.allocated));
  }
  if (a->stay) sleep(60);
  zc_zmq_close(z);
  return 0;
}

/* ---- consumer side helpers ---- */
/* Receive message number *next of the stream `base` and check it; returns 0, or -1 with errno. */
static int recv_checked(zc_zmq_t *z, uint64_t base, uint64_t *next, int timeout_ms, zc_chan_msg_t *keep) {
  zc_chan_msg_t m;
  if (zc_zmq_receive(z, &m, timeout_ms) != 0) return -1;
  uint64_t i = *next;
  REQUIREF(m.type == (uint32_t)i, "message %lu arrived as %u", (unsigned long)i, m.type);
  REQUIREF(m.len == msg_size(base + i), "message %lu: %u bytes, sent %zu", (unsigned long)i, m.len,
           msg_size(base + i));
  long bad = verify_pattern(m.data, m.len, base + i);
  REQUIREF(bad < 0, "message %lu (%u bytes): byte %ld differs", (unsigned long)i, m.len, bad);
  (*next)++;
  if (keep != NULL)
    *keep = m;
  else
    REQUIREF(zc_zmq_release(z, &m) == 0, "release: %s", strerror(errno));
  return 0;
}

static zc_zmq_t *bind_consumer(const zc_zmq_config_t *cfg) {
  zc_zmq_t *z = zc_zmq_bind(ANY_PORT, ZC_CHAN_CONSUMER, cfg);
  REQUIREF(z != NULL, "bind: %s", strerror(errno));
  REQUIREF(strncmp(zc_zmq_endpoint(z), "tcp://127.0.0.1:", 16) == 0 && strchr(zc_zmq_endpoint(z), '*') == NULL,
           "endpoint %s", zc_zmq_endpoint(z));
  return z;
}

/* Wait for EPIPE on receive (nothing else may arrive), within ms. */
static void expect_epipe(zc_zmq_t *z, int ms) {
  zc_chan_msg_t m;
  uint64_t deadline = now_ns() + (uint64_t)ms * 1000000ull;
  int rc;
  while ((rc = zc_zmq_receive(z, &m, 100)) != 0 && errno == ETIMEDOUT && now_ns() < deadline) {
  }
  REQUIREF(rc != 0 && errno == EPIPE, "expected EPIPE: rc %d, %s (%s)", rc, strerror(errno), zc_zmq_error(z));
}

/* ---- tests ---- */

/* Thousands of messages of random sizes (1 B .. 4 MiB) end to end, some held while later ones arrive;
 * then the producer's clean exit gives EPIPE; every loan came back to zcmem. */
static int t_stream(int argc, char **argv) {
  zc_zmq_t *z = bind_consumer(NULL);
  long n = quick_mode(argc, argv) ? 2000 : 5000;
  prod_args_t a = {zc_zmq_endpoint(z), 100, n, 0, 0, 0, 1, 0};
  pid_t p = ZSPAWN(producer_main, &a, ep, -1, -1);
  uint64_t next = 0;
  zc_chan_msg_t held[16];
  int nheld = 0;
  uint64_t held_first = 0;
  while (next < (uint64_t)n) {
    if (nheld == 16) { /* views of held messages stay valid while later ones arrive */
      for (int k = 0; k < nheld; k++) {
        REQUIREF(verify_pattern(held[k].data, held[k].len, 100 + held_first + k) < 0, "held message changed");
        REQUIREF(zc_zmq_release(z, &held[k]) == 0, "release held");
      }
      nheld = 0;
    }
    if (nheld == 0) held_first = next;
    REQUIREF(recv_checked(z, 100, &next, PEER_MS, (next % 512) < 16 ? &held[nheld] : NULL) == 0,
             "receive %lu: %s (%s)", (unsigned long)next, strerror(errno), zc_zmq_error(z));
    if ((next - 1) % 512 < 16) nheld++;
  }
  for (int k = 0; k < nheld; k++) REQUIREF(zc_zmq_release(z, &held[k]) == 0, "release held");
  expect_epipe(z, PEER_MS);
  REQUIREF(reap(p) == 0, "producer failed");
  zc_chan_stats_t st;
  zc_zmq_stats(z, &st);
  REQUIREF(st.received == (uint64_t)n && st.released == (uint64_t)n && st.held_msgs == 0 && st.rejected == 0,
           "received %lu released %lu held %lu rejected %lu", (unsigned long)st.received,
           (unsigned long)st.released, (unsigned long)st.held_msgs, (unsigned long)st.rejected);
  zc_zmq_close(z);
  return 0;
}

/* kill -9 of the producer mid-stream: the consumer gets what arrived, in order and intact, then EPIPE. */
static int t_kill_producer(int argc, char **argv) {
  zc_zmq_t *z = bind_consumer(NULL);
  prod_args_t a = {zc_zmq_endpoint(z), 200, -1, 0, 0, 0, 0, 0};
  pid_t p = ZSPAWN(producer_main, &a, ep, -1, -1);
  uint64_t next = 0;
  while (next < 300)
    REQUIREF(recv_checked(z, 200, &next, PEER_MS, NULL) == 0, "receive: %s", strerror(errno));
  kill(p, SIGKILL);
  REQUIREF(reap(p) == 128 + SIGKILL, "producer did not die of SIGKILL");
  uint64_t deadline = now_ns() + PEER_NS;
  while (recv_checked(z, 200, &next, 1000, NULL) == 0) REQUIREF(now_ns() < deadline, "no end of the stream");
  REQUIREF(errno == EPIPE, "after the kill: %s (%s)", strerror(errno), zc_zmq_error(z));
  REQUIREF(zc_zmq_peers(z) == 0, "peers %d", zc_zmq_peers(z));
  zc_zmq_close(z);
  return 0;
}

/* ---- a consumer child ---- */
typedef struct cons_args_s {
  const char *ep; /* connect here, or bind here if bind */
  int bind, pipe_fd;
  uint64_t base;
  long count; /* < 0: until killed; 0: never receive (a stuck consumer) */
} cons_args_t;

static int consumer_main(void *arg) {
  const cons_args_t *a = arg;
  zc_zmq_config_t cfg = {.chan.setup_timeout_ms = PEER_MS, .chan.ring_entries = a->count == 0 ? 2 : 0};
  zc_zmq_t *z = NULL;
  if (a->bind) {
    for (int tries = 0; z == NULL && tries < 200; tries++) /* the port may still be held for a moment */
      if ((z = zc_zmq_bind(a->ep, ZC_CHAN_CONSUMER, &cfg)) == NULL) sleep_ms(10);
  } else {
    z = zc_zmq_connect(a->ep, ZC_CHAN_CONSUMER, &cfg);
  }
  REQUIREF(z != NULL, "consumer on %s: %s", a->ep, strerror(errno));
  if (a->pipe_fd >= 0) pipe_send_str(a->pipe_fd, zc_zmq_endpoint(z));
  if (a->count == 0) {
    sleep(60);
    return 0;
  }
  uint64_t next = 0;
  while (a->count < 0 || next < (uint64_t)a->count) {
    zc_chan_msg_t m;
    REQUIREF(zc_zmq_receive(z, &m, PEER_MS) == 0, "receive %lu: %s", (unsigned long)next, strerror(errno));
    if (m.type == UINT32_MAX) { /* a probe the producer sent while it looked for us */
      zc_zmq_release(z, &m);
      continue;
    }
    REQUIREF(m.type == (uint32_t)next && m.len == msg_size(a->base + next) &&
                 verify_pattern(m.data, m.len, a->base + next) < 0,
             "message %lu: type %u len %u", (unsigned long)next, m.type, m.len);
    zc_zmq_release(z, &m);
    next++;
  }
  zc_zmq_close(z);
  return 0;
}

static zc_zmq_t *bind_producer(const zc_zmq_config_t *cfg) {
  zc_zmq_t *z = zc_zmq_bind(ANY_PORT, ZC_CHAN_PRODUCER, cfg);
  REQUIREF(z != NULL, "bind: %s", strerror(errno));
  return z;
}

static void wait_peer(zc_zmq_t *z) {
  uint64_t deadline = now_ns() + PEER_NS;
  while (zc_zmq_peers(z) < 1) {
    REQUIREF(now_ns() < deadline, "no peer connected");
    sleep_ms(5);
  }
}

/* kill -9 of the consumer: send fails with EPIPE within the deadline, and every block libzmq still held
 * for the dead peer comes back to zcmem (inflight 0). */
static int t_kill_consumer(int argc, char **argv) {
  zc_zmq_config_t cfg = {.chan.block_timeout_ms = 100};
  zc_zmq_t *z = bind_producer(&cfg);
  cons_args_t a = {zc_zmq_endpoint(z), 0, -1, 300, -1};
  pid_t p = ZSPAWN(consumer_main, &a, ep, -1, -1);
  wait_peer(z);
  uint64_t deadline = now_ns() + PEER_NS;
  uint64_t i = 0;
  for (; i < 300; i++) REQUIREF(send_msg(z, 300, i, deadline) == 0, "EPIPE before the kill");
  kill(p, SIGKILL);
  REQUIREF(reap(p) == 128 + SIGKILL, "consumer did not die of SIGKILL");
  deadline = now_ns() + PEER_NS;
  while (send_msg(z, 300, i, deadline) == 0) i++;
  REQUIREF(errno == EPIPE, "send after the kill: %s", strerror(errno));
  REQUIREF(zc_zmq_collect(z) == -1 && errno == EPIPE, "collect: %s", strerror(errno));
  zc_chan_stats_t st;
  while (zc_zmq_stats(z, &st), st.inflight_msgs != 0) {
    REQUIREF(now_ns() < deadline, "%lu blocks never came back", (unsigned long)st.inflight_msgs);
    sleep_ms(5);
  }
  REQUIREF(st.loaned_msgs == 0 && st.returned == st.sent, "loaned %lu", (unsigned long)st.loaned_msgs);
  zc_zmq_close(z);
  return 0;
}

/* A producer that exits, then another that connects: EPIPE in between, then the stream works again. */
static int t_restart_producer(int argc, char **argv) {
  zc_zmq_t *z = bind_consumer(NULL);
  for (int round = 0; round < 3; round++) {
    /* the last producer closes right after its last send: close's linger must still deliver it all */
    prod_args_t a = {zc_zmq_endpoint(z), 1000u * (round + 1), round < 2 ? 500 : 3000, 0, 0, 0, round < 2, 0};
    pid_t p = ZSPAWN(producer_main, &a, ep, -1, -1);
    uint64_t next = 0, deadline = now_ns() + PEER_NS;
    while (next < (uint64_t)a.count) {
      if (recv_checked(z, a.base, &next, 1000, NULL) == 0) continue;
      /* EPIPE lasts while no producer is connected: until the new one is */
      REQUIREF((errno == ETIMEDOUT || (errno == EPIPE && next == 0)) && now_ns() < deadline,
               "round %d receive %lu: %s", round, (unsigned long)next, strerror(errno));
      sleep_ms(2);
    }
    expect_epipe(z, PEER_MS);
    REQUIREF(reap(p) == 0, "producer %d failed", round);
  }
  zc_zmq_close(z);
  return 0;
}

/* A producer that closes right after its last send, towards a consumer that takes little at a time
 * (high-water mark 2): close waits (linger) until everything has left, nothing is dropped. */
static int t_linger(int argc, char **argv) {
  zc_zmq_config_t cfg = {.chan.ring_entries = 2};
  zc_zmq_t *z = bind_consumer(&cfg);
  prod_args_t a = {zc_zmq_endpoint(z), 1500, 1000, 0, 0, 0, 0, 0};
  pid_t p = ZSPAWN(producer_main, &a, ep, -1, -1);
  uint64_t next = 0;
  while (next < (uint64_t)a.count) {
    REQUIREF(recv_checked(z, a.base, &next, PEER_MS, NULL) == 0, "receive %lu: %s", (unsigned long)next,
             strerror(errno));
    if (next % 100 == 0) sleep_ms(10); /* slow: the producer closes long before we are done */
  }
  REQUIREF(reap(p) == 0, "producer failed");
  expect_epipe(z, PEER_MS);
  zc_zmq_close(z);
  return 0;
}

/* The consumer exits and a new one binds the same port: the producer sees EPIPE, then ZeroMQ reconnects
 * and the new consumer gets a whole, ordered stream. */
static int t_restart_consumer(int argc, char **argv) {
  int pfd[2];
  REQUIREF(pipe(pfd) == 0, "pipe");
  cons_args_t a = {ANY_PORT, 1, pfd[1], 3000, 300};
  pid_t pa = ZSPAWN(consumer_main, &a, ep, pfd[1], -1);
  char ep[256];
  pipe_recv_str(pfd[0], ep, sizeof ep);
  zc_zmq_config_t cfg = {.chan.block_timeout_ms = 50, .chan.setup_timeout_ms = PEER_MS, .linger_ms = PEER_MS};
  zc_zmq_t *z = zc_zmq_connect(ep, ZC_CHAN_PRODUCER, &cfg);
  REQUIREF(z != NULL, "connect %s: %s", ep, strerror(errno));
  uint64_t deadline = now_ns() + PEER_NS;
  for (uint64_t i = 0; i < 300; i++) REQUIREF(send_msg(z, 3000, i, deadline) == 0, "send: EPIPE");
  REQUIREF(reap(pa) == 0, "first consumer failed");
  deadline = now_ns() + PEER_NS;
  for (;;) { /* probes until the loss is seen */
    void *p = zc_zmq_loan(z, 1);
    REQUIREF(p != NULL, "loan");
    if (zc_zmq_send(z, p, 1, UINT32_MAX) != 0) {
      if (errno == EPIPE) break;
      REQUIREF(errno == ETIMEDOUT && now_ns() < deadline, "probe: %s", strerror(errno));
      zc_zmq_cancel(z, p);
    }
  }
  cons_args_t b = {ep, 1, -1, 4000, 300};
  pid_t pb = ZSPAWN(consumer_main, &b, ep, -1, -1);
  deadline = now_ns() + PEER_NS;
  for (uint64_t i = 0; i < 300;) {
    if (send_msg(z, 4000, i, deadline) == 0)
      i++;
    else
      REQUIREF(now_ns() < deadline, "never reconnected");
  }
  REQUIREF(reap(pb) == 0, "second consumer failed");
  zc_zmq_close(z);
  return 0;
}

/* ---- garbage ---- */
static void raw_send(void *s, const void *d, size_t n, int flags) {
  REQUIREF(zmq_send(s, d, n, flags) == (int)n, "zmq_send: %s", zmq_strerror(errno));
}

#define FUZZ_FRAMES 500
static int garbage_main(void *arg) {
  const char *ep = arg;
  /* first, a TCP peer that does not speak ZMTP at all */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(strrchr(ep, ':') + 1))};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIREF(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "tcp connect: %s", strerror(errno));
  unsigned char junk[4096];
  fill_pattern(junk, sizeof junk, 77);
  REQUIREF(write(fd, junk, sizeof junk) > 0, "write");
  sleep_ms(50);
  close(fd);
  /* then a ZeroMQ PUSH socket sending frames that are not zcmem messages */
  void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_PUSH);
  int linger = PEER_MS; /* the consumer's pace: every frame must reach it before close */
  zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
  REQUIREF(zmq_connect(s, ep) == 0, "zmq_connect");
  unsigned char f[128] = {0};
  uint32_t magic = 0x315a435au, type = 76;
  uint64_t len = 0;
  memcpy(f, &magic, 4); /* a valid, empty message marks the end of the raw TCP phase */
  memcpy(f + 4, &type, 4);
  memcpy(f + 8, &len, 8);
  raw_send(s, f, 16, 0);
  memset(f, 0, sizeof f);
  type = 5;
  len = 100;
  raw_send(s, f, 0, 0);         /* 1: empty */
  raw_send(s, "hello", 5, 0);   /* 2: shorter than a header */
  raw_send(s, f, 16, 0);        /* 3: no magic */
  memcpy(f, &magic, 4);
  memcpy(f + 4, &type, 4);
  memcpy(f + 8, &len, 8);
  raw_send(s, f, 26, 0);        /* 4: length field 100, payload 10 */
  len = 4;
  memcpy(f + 8, &len, 8);
  raw_send(s, f, 20, ZMQ_SNDMORE); /* 5: a valid frame, but the first of two parts */
  raw_send(s, f, 20, 0);
  for (int k = 0; k < FUZZ_FRAMES; k++) { /* 6..: random frames, every tenth with the right magic */
    uint64_t r = splitmix64((uint64_t)k + 999);
    size_t n = (size_t)(r % 100);
    fill_pattern(f, n, r);
    if (n >= 4) {
      uint32_t m = k % 10 == 0 ? magic : (uint32_t)(r >> 32) | 1u;
      if (m == magic && k % 10 != 0) m ^= 2;
      memcpy(f, &m, 4);
    }
    if (n >= 16) { /* never the exact length */
      uint64_t l;
      memcpy(&l, f + 8, 8);
      if (l == n - 16) l++;
      memcpy(f + 8, &l, 8);
    }
    raw_send(s, f, n, 0);
  }
  /* a valid message from the same peer: it must still get through */
  type = 77;
  len = 3;
  memcpy(f, &magic, 4);
  memcpy(f + 4, &type, 4);
  memcpy(f + 8, &len, 8);
  memcpy(f + 16, "abc", 3);
  raw_send(s, f, 19, 0);
  /* last, a frame above the consumer's max_msg: libzmq drops the connection without delivering it */
  size_t big = (2u << 20) + 16;
  unsigned char *b = calloc(1, big);
  type = 78;
  len = big - 16;
  memcpy(b, &magic, 4);
  memcpy(b + 4, &type, 4);
  memcpy(b + 8, &len, 8);
  raw_send(s, b, big, 0);
  free(b);
  zmq_close(s);
  zmq_ctx_term(ctx);
  return 0;
}

/* A peer sending garbage (raw TCP bytes, then malformed ZeroMQ frames, then an oversized one): each bad
 * frame is one EPROTO from receive, counted in rejected; the consumer goes on and a real producer's
 * stream after it arrives intact. */
static int t_garbage(int argc, char **argv) {
  zc_zmq_config_t cfg = {.max_msg = 1 << 20};
  zc_zmq_t *z = bind_consumer(&cfg);
  char ep[256];
  snprintf(ep, sizeof ep, "%s", zc_zmq_endpoint(z));
  pid_t g = ZSPAWN_STR(garbage_main, ep, -1, -1);
  const int expected = 5 + FUZZ_FRAMES;
  int eproto = 0, eproto_tcp = -1;
  zc_chan_msg_t m;
  uint64_t deadline = now_ns() + PEER_NS;
  for (;;) {
    REQUIREF(now_ns() < deadline, "the valid frames never came (%d EPROTO)", eproto);
    if (zc_zmq_receive(z, &m, 1000) == 0) {
      if (eproto_tcp < 0) { /* libzmq reads a non-ZMTP peer as ZMTP 1.0: its bytes may become frames */
        REQUIREF(m.type == 76 && m.len == 0, "a message of type %u out of raw TCP bytes", m.type);
        eproto_tcp = eproto;
        eproto = 0;
        zc_zmq_release(z, &m);
        continue;
      }
      REQUIREF(m.type == 77 && m.len == 3 && memcmp(m.data, "abc", 3) == 0, "unexpected message type %u", m.type);
      zc_zmq_release(z, &m);
      break;
    }
    if (errno == EPROTO) {
      eproto++;
      REQUIREF(strstr(zc_zmq_error(z), "dropped") != NULL, "error line: %s", zc_zmq_error(z));
    } else {
      REQUIREF(errno == ETIMEDOUT || errno == EPIPE, "receive: %s", strerror(errno));
    }
  }
  REQUIREF(reap(g) == 0, "garbage sender failed");
  REQUIREF(eproto == expected, "%d EPROTO, expected %d", eproto, expected);
  printf("garbage: %d frames libzmq made of raw TCP bytes, %d malformed ZeroMQ frames: all dropped\n",
         eproto_tcp, eproto);
  prod_args_t a = {ep, 5000, 200, 0, 0, 0, 1, 0};
  pid_t p = ZSPAWN(producer_main, &a, ep, -1, -1);
  deadline = now_ns() + PEER_NS;
  uint64_t next = 0;
  while (next < 200) {
    if (recv_checked(z, 5000, &next, 1000, NULL) == 0) continue;
    REQUIREF((errno == EPIPE || errno == ETIMEDOUT) && now_ns() < deadline, "receive: %s (%s)", strerror(errno),
             zc_zmq_error(z)); /* the oversized frame's message never shows up: it would fail the type check */
    sleep_ms(5);
  }
  expect_epipe(z, PEER_MS);
  REQUIREF(reap(p) == 0, "producer failed");
  zc_chan_stats_t st;
  zc_zmq_stats(z, &st);
  REQUIREF(st.rejected == (uint64_t)(expected + eproto_tcp) && st.received == 202, "rejected %lu received %lu",
           (unsigned long)st.rejected, (unsigned long)st.received);
  zc_zmq_close(z);
  return 0;
}

/* A peer that stops answering (SIGSTOP: the kernel still keeps its TCP connection, as with a cut network
 * or a hung host) is found by ZeroMQ heartbeats: EPIPE within the heartbeat timeout. */
static int t_heartbeat(int argc, char **argv) {
  /* a 2 s timeout: far above a scheduling stall of a loaded machine (with 0.5 s, a live peer whose I/O
   * thread waited that long for a core would be dropped as dead) */
  zc_zmq_config_t cfg = {.heartbeat_ms = 200, .heartbeat_timeout_ms = 2000};
  zc_zmq_t *z = bind_consumer(&cfg);
  prod_args_t a = {zc_zmq_endpoint(z), 600, 20, 0, 200, 2000, 0, 1};
  pid_t p = ZSPAWN(producer_main, &a, ep, -1, -1);
  uint64_t next = 0;
  while (next < 20) REQUIREF(recv_checked(z, 600, &next, PEER_MS, NULL) == 0, "receive: %s", strerror(errno));
  /* the connection stays up for a while: nothing arrives, no EPIPE (heartbeats are answered) */
  zc_chan_msg_t m;
  REQUIREF(zc_zmq_receive(z, &m, 4000) != 0 && errno == ETIMEDOUT, "a live idle peer gave %s", strerror(errno));
  kill(p, SIGSTOP);
  uint64_t t0 = now_ns();
  int rc;
  while ((rc = zc_zmq_receive(z, &m, 100)) != 0 && errno == ETIMEDOUT && now_ns() - t0 < 30000000000ull) {
  }
  double secs = (double)(now_ns() - t0) / 1e9;
  kill(p, SIGKILL);
  reap(p);
  REQUIREF(rc != 0 && errno == EPIPE, "a stopped peer gave %s after %.1f s", strerror(errno), secs);
  printf("heartbeat: EPIPE %.2f s after the peer stopped (timeout 2 s)\n", secs);
  zc_zmq_close(z);
  return 0;
}

/* An epoll loop on zc_zmq_fd with the arm protocol: every message arrives (a lost ZMQ_FD edge would hang
 * it: epoll_wait has a deadline), and the producer's exit ends the loop with EPIPE. */
static int t_epoll(int argc, char **argv) {
  zc_zmq_t *z = bind_consumer(NULL);
  long n = quick_mode(argc, argv) ? 1000 : 3000;
  prod_args_t a = {zc_zmq_endpoint(z), 700, n, 50, 0, 0, 0, 1}; /* stays connected: no event at the end */
  pid_t p = ZSPAWN(producer_main, &a, ep, -1, -1);
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN};
  REQUIREF(epoll_ctl(ep, EPOLL_CTL_ADD, zc_zmq_fd(z), &ev) == 0, "epoll_ctl: %s", strerror(errno));
  uint64_t next = 0, wakeups = 0, rounds = 0;
  for (;;) {
    /* Every other round takes one message only and goes back to arm with more queued: ZMQ_FD will not
     * signal those again, so arm must see them (ZMQ_EVENTS) or the loop hangs. */
    int rc;
    if (++rounds % 2)
      rc = recv_checked(z, 700, &next, 0, NULL);
    else
      while ((rc = recv_checked(z, 700, &next, 0, NULL)) == 0) {
      }
    if (rc != 0 && errno != EAGAIN) break;
    if (next == (uint64_t)n && p > 0) { /* all there: now the producer dies, the loop must end with EPIPE */
      kill(p, SIGKILL);
      REQUIREF(reap(p) == 128 + SIGKILL, "producer failed before the kill");
      p = 0;
    }
    int armed = zc_zmq_arm(z);
    if (armed < 0) break;
    if (armed == 1) continue;
    int w = epoll_wait(ep, &ev, 1, 45000); /* below the producer's 60 s alarm: a lost edge shows as such */
    REQUIREF(w == 1, "epoll_wait: no wake-up in 45 s after %lu messages (%s)", (unsigned long)next,
             zc_zmq_error(z));
    wakeups++;
  }
  REQUIREF(errno == EPIPE, "loop ended with %s (%s)", strerror(errno), zc_zmq_error(z));
  REQUIREF(next == (uint64_t)n, "%lu of %ld messages", (unsigned long)next, n);
  REQUIREF(wakeups > 0, "never slept");
  printf("epoll: %lu messages, %lu wake-ups\n", (unsigned long)next, (unsigned long)wakeups);
  close(ep);
  zc_zmq_close(z);
  return 0;
}

/* High-water marks map to the slow-consumer policy: a consumer that never receives makes send block and
 * time out (ZC_CHAN_BLOCK) or fail at once (ZC_CHAN_FAIL); the loan stays with the caller both times. */
static int t_hwm(int argc, char **argv) {
  zc_zmq_config_t cfg = {.chan.ring_entries = 2, .chan.block_timeout_ms = 200};
  zc_zmq_t *z = bind_producer(&cfg);
  cons_args_t a = {zc_zmq_endpoint(z), 0, -1, 0, 0};
  pid_t p = ZSPAWN(consumer_main, &a, ep, -1, -1);
  wait_peer(z);
  size_t n = 256 * 1024;
  int sent = 0;
  for (;; sent++) {
    REQUIREF(sent < 2000, "2000 messages of 256 KiB went into a consumer that reads nothing");
    void *m = zc_zmq_loan(z, n);
    REQUIREF(m != NULL, "loan: %s", strerror(errno));
    uint64_t t0 = now_ns();
    if (zc_zmq_send(z, m, n, 1) == 0) continue;
    double ms = (double)(now_ns() - t0) / 1e6;
    REQUIREF(errno == ETIMEDOUT && ms >= 150 && ms < 30000, "send: %s after %.0f ms", strerror(errno), ms);
    REQUIREF(zc_zmq_cancel(z, m) == 0, "the loan was not kept after ETIMEDOUT");
    break;
  }
  zc_chan_stats_t st;
  zc_zmq_stats(z, &st);
  REQUIREF(st.full_waits > 0 && st.loaned_msgs == 0, "full_waits %lu", (unsigned long)st.full_waits);
  printf("hwm: blocked after %d messages of 256 KiB (HWM 2 + kernel socket buffers)\n", sent);
  kill(p, SIGKILL);
  reap(p);
  zc_zmq_close(z);
  /* The memory cap under ZC_CHAN_BLOCK: with 2 MiB allowed and a consumer that reads nothing, loans wait
   * for libzmq to give blocks back and time out once it holds them all; when the consumer dies libzmq
   * drops its queue, the blocks come back, and a loan succeeds again. */
  zc_zmq_config_t capped = {.chan.ring_entries = 2, .chan.block_timeout_ms = 200, .chan.max_bytes = 2u << 20};
  z = bind_producer(&capped);
  cons_args_t a2 = {zc_zmq_endpoint(z), 0, -1, 0, 0};
  p = ZSPAWN(consumer_main, &a2, ep, -1, -1);
  wait_peer(z);
  int loans = 0;
  for (;; loans++) {
    REQUIREF(loans < 2000, "2000 loans of 1 MiB under a 2 MiB cap");
    uint64_t t0 = now_ns();
    void *m = zc_zmq_loan(z, 1u << 20);
    if (m == NULL) {
      double ms = (double)(now_ns() - t0) / 1e6;
      REQUIREF(errno == ETIMEDOUT && ms >= 150 && ms < 30000, "loan: %s after %.0f ms", strerror(errno), ms);
      break;
    }
    if (zc_zmq_send(z, m, 1u << 20, 1) != 0) { /* the high-water mark may stop it first: then cancel */
      REQUIREF(errno == ETIMEDOUT, "send: %s", strerror(errno));
      REQUIREF(zc_zmq_cancel(z, m) == 0, "cancel");
    }
  }
  kill(p, SIGKILL);
  reap(p);
  void *again = NULL;
  uint64_t deadline = now_ns() + PEER_NS;
  while ((again = zc_zmq_loan(z, 1u << 20)) == NULL) REQUIREF(now_ns() < deadline, "the cap never came back");
  zc_zmq_cancel(z, again);
  printf("hwm: %d loans of 1 MiB before the 2 MiB cap held\n", loans);
  zc_zmq_close(z);
  /* ZC_CHAN_FAIL: nobody connected to a bound producer, so nothing can be queued */
  zc_zmq_config_t fail = {.chan.policy = ZC_CHAN_FAIL, .chan.block_timeout_ms = 60000}; /* a wait would show */
  z = bind_producer(&fail);
  void *m = zc_zmq_loan(z, 100);
  uint64_t t0 = now_ns();
  REQUIREF(zc_zmq_send(z, m, 100, 1) != 0 && errno == EAGAIN, "send without a peer: %s", strerror(errno));
  REQUIREF(now_ns() - t0 < 30000000000ull, "FAIL policy waited");
  REQUIREF(zc_zmq_send(z, m, 100, 1) != 0 && errno == EAGAIN, "the loan was not kept after EAGAIN");
  REQUIREF(zc_zmq_cancel(z, m) == 0, "cancel");
  zc_zmq_close(z);
  return 0;
}

/* Bad arguments, the memory cap, timeouts, handles; in one process. */
/* Every call given a NULL endpoint fails with EINVAL (or returns its neutral value): none dereferences it,
 * over either transport's dispatcher (zc_ep_*, zc_eps_*, zc_ep_pub_*). */
static void api_null(void) {
  zc_chan_msg_t m = {0};
  zc_svc_msg_t sm = {0};
  char buf[16];
  errno = 0;
  REQUIREF(zc_zmq_loan(NULL, 10) == NULL && errno == EINVAL, "zmq_loan(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_zmq_send(NULL, buf, 1, 1) == -1 && errno == EINVAL, "zmq_send(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_zmq_send_batch(NULL, &m, 1) == -1 && errno == EINVAL, "zmq_send_batch(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_zmq_cancel(NULL, buf) == -1 && errno == EINVAL, "zmq_cancel(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_zmq_collect(NULL) == -1 && errno == EINVAL, "zmq_collect(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_zmq_receive(NULL, &m, 0) == -1 && errno == EINVAL, "zmq_receive(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_zmq_receive_batch(NULL, &m, 1, 0) == -1 && errno == EINVAL, "zmq_receive_batch(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_zmq_release(NULL, &m) == -1 && errno == EINVAL, "zmq_release(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_zmq_release_batch(NULL, &m, 1) == -1 && errno == EINVAL, "zmq_release_batch(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_zmq_arm(NULL) == -1 && errno == EINVAL, "zmq_arm(NULL): errno %d", errno);
  REQUIREF(zc_zmq_fd(NULL) == -1 && zc_zmq_peers(NULL) == -1 && zc_zmq_error(NULL) != NULL &&
               zc_zmq_endpoint(NULL) == NULL && (int)zc_zmq_role(NULL) == 0,
           "zmq fd/peers/error/endpoint/role of NULL");
  zc_chan_stats_t st;
  memset(&st, 0xff, sizeof st);
  zc_zmq_stats(NULL, &st);
  REQUIREF(st.sent == 0, "zmq_stats(NULL) not zeroed");
  zc_zmq_close(NULL);
  errno = 0;
  REQUIREF(zc_ep_loan(NULL, 10) == NULL && errno == EINVAL, "ep_loan(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_ep_send(NULL, buf, 1, 1) == -1 && errno == EINVAL, "ep_send(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_ep_receive(NULL, &m, 0) == -1 && errno == EINVAL, "ep_receive(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_ep_release(NULL, &m) == -1 && errno == EINVAL, "ep_release(NULL): errno %d", errno);
  REQUIREF(zc_ep_fd(NULL) == -1 && zc_ep_error(NULL) != NULL && zc_ep_endpoint(NULL) == NULL && zc_ep_missed(NULL) == 0,
           "ep fd/error/endpoint/missed of NULL");
  memset(&st, 0xff, sizeof st);
  zc_ep_stats(NULL, &st);
  REQUIREF(st.sent == 0, "ep_stats(NULL) not zeroed");
  zc_ep_close(NULL);
  errno = 0;
  REQUIREF(zc_eps_loan(NULL, 10) == NULL && errno == EINVAL, "eps_loan(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_eps_send(NULL, buf, 1, 1) == -1 && errno == EINVAL, "eps_send(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_eps_receive(NULL, &sm, 0) == -1 && errno == EINVAL, "eps_receive(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_eps_release(NULL, &sm) == -1 && errno == EINVAL, "eps_release(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_eps_call(NULL, buf, 1, 1, &sm, 0) == -1 && errno == EINVAL, "eps_call(NULL): errno %d", errno);
  REQUIREF(zc_eps_fd(NULL) == -1 && zc_eps_peers(NULL) == -1 && zc_eps_error(NULL) != NULL &&
               zc_eps_endpoint(NULL) == NULL && zc_eps_max_msg(NULL) == 0,
           "eps fd/peers/error/endpoint/max_msg of NULL");
  zc_svc_stats_t ss;
  memset(&ss, 0xff, sizeof ss);
  zc_eps_stats(NULL, &ss);
  REQUIREF(ss.requests == 0, "eps_stats(NULL) not zeroed");
  zc_eps_close(NULL);
  errno = 0;
  REQUIREF(zc_ep_pub_loan(NULL, 10) == NULL && errno == EINVAL, "ep_pub_loan(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_ep_pub_send(NULL, buf, 1, 1) == -1 && errno == EINVAL, "ep_pub_send(NULL): errno %d", errno);
  REQUIREF(zc_ep_pub_fd(NULL) == -1 && zc_ep_pub_subscribers(NULL) == -1 && zc_ep_pub_error(NULL) != NULL &&
               zc_ep_pub_endpoint(NULL) == NULL,
           "ep_pub fd/subscribers/error/endpoint of NULL");
  zc_ep_pub_close(NULL);
}

static int t_api(int argc, char **argv) {
  api_null();
  zc_zmq_config_t cfg = {.chan.policy = ZC_CHAN_FAIL, .chan.max_bytes = 4u << 20, .max_msg = 8u << 20};
  zc_zmq_t *z = bind_producer(&cfg);
  REQUIREF(zc_zmq_loan(z, 0) == NULL && errno == EINVAL, "loan(0)");
  REQUIREF(zc_zmq_loan(z, (9u << 20)) == NULL && errno == EMSGSIZE, "loan above max_msg");
  void *p[3];
  for (int i = 0; i < 3; i++) REQUIREF((p[i] = zc_zmq_loan(z, 1u << 20)) != NULL, "loan %d", i);
  REQUIREF(zc_zmq_loan(z, 1u << 20) == NULL && errno == EAGAIN, "the memory cap let a 4th MiB out");
  REQUIREF(zc_zmq_cancel(z, p[0]) == 0, "cancel");
  REQUIREF(zc_zmq_cancel(z, p[0]) != 0 && errno == EINVAL, "cancel twice");
  REQUIREF((p[0] = zc_zmq_loan(z, 1u << 20)) != NULL, "loan after cancel");
  char stack[64];
  REQUIREF(zc_zmq_send(z, stack + 16, 10, 1) != 0 && errno == EINVAL, "send of a stack pointer");
  void *heap = zc_malloc(100);
  REQUIREF(zc_zmq_send(z, (char *)heap + 16, 10, 1) != 0 && errno == EINVAL, "send of a heap block");
  REQUIREF(zc_zmq_send(z, heap, 10, 1) != 0 && errno == EINVAL, "send of a heap block");
  zc_free(heap);
  REQUIREF(zc_zmq_send(z, (char *)p[1] + 16, 10, 1) != 0 && errno == EINVAL, "send of an interior pointer");
  zc_chan_stats_t st;
  zc_zmq_stats(z, &st);
  REQUIREF(st.loaned_msgs == 3, "loaned %lu", (unsigned long)st.loaned_msgs);
  REQUIREF(zc_zmq_send(z, p[1], (1u << 20) + 1, 1) != 0 && errno == EMSGSIZE, "send beyond the loan");
  zc_zmq_stats(z, &st);
  REQUIREF(st.loaned_msgs == 2, "EMSGSIZE did not give the loan back");
  zc_chan_msg_t m = {0};
  REQUIREF(zc_zmq_receive(z, &m, 0) != 0 && errno == EINVAL, "receive on a producer");
  zc_zmq_cancel(z, p[0]);
  zc_zmq_cancel(z, p[2]);
  zc_zmq_close(z);

  /* consumer: timeouts and handles */
  z = bind_consumer(NULL);
  REQUIREF(zc_zmq_receive(z, &m, 0) != 0 && errno == EAGAIN, "receive(0)");
  uint64_t t0 = now_ns();
  REQUIREF(zc_zmq_receive(z, &m, 50) != 0 && errno == ETIMEDOUT, "receive(50)");
  REQUIREF(now_ns() - t0 >= 45000000ull, "receive(50) returned early");
  REQUIREF(zc_zmq_arm(z) == 0, "arm on an empty endpoint");
  m.handle = 12345;
  REQUIREF(zc_zmq_release(z, &m) != 0 && errno == EINVAL, "release of a bogus handle");
  REQUIREF(zc_zmq_loan(z, 10) == NULL && errno == EINVAL, "loan on a consumer");
  /* a producer in this process: a round trip, stale and double releases, remote frees */
  zc_zmq_config_t patient = {.chan.setup_timeout_ms = PEER_MS}; /* this process's I/O threads' pace */
  zc_zmq_t *pr = zc_zmq_connect(zc_zmq_endpoint(z), ZC_CHAN_PRODUCER, &patient);
  REQUIREF(pr != NULL, "connect: %s", strerror(errno));
  uint64_t deadline = now_ns() + PEER_NS;
  for (uint64_t i = 0; i < 200; i++) REQUIREF(send_msg(pr, 800, i, deadline) == 0, "send");
  uint64_t next = 0;
  zc_chan_msg_t first;
  REQUIREF(recv_checked(z, 800, &next, PEER_MS, &first) == 0, "receive");
  while (next < 200) REQUIREF(recv_checked(z, 800, &next, PEER_MS, NULL) == 0, "receive");
  REQUIREF(zc_zmq_release(z, &first) == 0, "release");
  REQUIREF(zc_zmq_release(z, &first) != 0 && errno == EINVAL, "double release");
  zc_chan_msg_t forged = first; /* the handle's top half is the slot's generation: this names the slot */
  forged.handle += 1ull << 32;  /* as it is now, free, never handed out under this handle */
  REQUIREF(zc_zmq_release(z, &forged) != 0 && errno == EINVAL, "release of a free slot's current handle");
  while (zc_zmq_collect(pr) > 0) REQUIREF(now_ns() < deadline, "blocks not returned");
  zc_zmq_close(pr);
  zc_zmq_close(z);

  /* endpoints that cannot work */
  zc_zmq_config_t quick_setup = {.chan.setup_timeout_ms = 300};
  z = zc_zmq_bind(ANY_PORT, ZC_CHAN_CONSUMER, NULL);
  char dead[256];
  snprintf(dead, sizeof dead, "%s", zc_zmq_endpoint(z));
  zc_zmq_close(z); /* nobody listens there now */
  REQUIREF(zc_zmq_connect(dead, ZC_CHAN_PRODUCER, &quick_setup) == NULL && errno == ETIMEDOUT, "connect: %s",
           strerror(errno));
  REQUIREF(zc_zmq_bind("tcp://", ZC_CHAN_CONSUMER, NULL) == NULL && errno != 0, "bad endpoint");
  REQUIREF(zc_zmq_bind(ANY_PORT, (zc_chan_role_t)7, NULL) == NULL && errno == EINVAL, "bad role");
  REQUIREF(zc_ep_kind_of("tcp://h:1") == ZC_EP_ZMQ && zc_ep_kind_of("ipc:///tmp/x") == ZC_EP_ZMQ &&
               zc_ep_kind_of("inproc://x") == ZC_EP_ZMQ && zc_ep_kind_of("/tmp/x.sock") == ZC_EP_CHANNEL &&
               zc_ep_kind_of("tcp:/x") == ZC_EP_CHANNEL,
           "endpoint kinds");
  return 0;
}

/* inproc:// through the dispatching API, with the producer closed while its messages are still in the
 * pipe: they are received afterwards, and their blocks go back to zcmem after the producer is gone. */
static int t_inproc(int argc, char **argv) {
  zc_ep_t *c = zc_ep_listen("inproc://zcmem-test", ZC_CHAN_CONSUMER, NULL);
  REQUIREF(c != NULL && zc_ep_kind(c) == ZC_EP_ZMQ, "listen: %s", strerror(errno));
  zc_ep_t *p = zc_ep_connect("inproc://zcmem-test", ZC_CHAN_PRODUCER, NULL);
  REQUIREF(p != NULL, "connect: %s", strerror(errno));
  for (uint64_t i = 0; i < 300; i++) {
    size_t n = msg_size(900 + i);
    void *b = zc_ep_loan(p, n);
    REQUIREF(b != NULL, "loan");
    fill_pattern(b, n, 900 + i);
    REQUIREF(zc_ep_send(p, b, n, (uint32_t)i) == 0, "send %lu: %s", (unsigned long)i, strerror(errno));
  }
  zc_ep_close(p);
  zc_stats_t s0, s1;
  zc_stats_get(&s0);
  zc_chan_msg_t m;
  for (uint64_t i = 0; i < 300; i++) {
    REQUIREF(zc_ep_receive(c, &m, PEER_MS) == 0, "receive %lu: %s", (unsigned long)i, strerror(errno));
    REQUIREF(m.type == i && m.len == msg_size(900 + i) && verify_pattern(m.data, m.len, 900 + i) < 0, "message %lu",
             (unsigned long)i);
    REQUIREF(zc_ep_release(c, &m) == 0, "release");
  }
  zc_stats_get(&s1);
  REQUIREF(s1.allocated < s0.allocated, "the producer's blocks were not freed after its close");
  zc_ep_close(c);
  return 0;
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {
      {"stream", t_stream}, {"kill_producer", t_kill_producer}, {"kill_consumer", t_kill_consumer},
      {"restart_producer", t_restart_producer}, {"restart_consumer", t_restart_consumer}, {"garbage", t_garbage},
      {"heartbeat", t_heartbeat}, {"epoll", t_epoll}, {"hwm", t_hwm}, {"api", t_api}, {"linger", t_linger},
      {"inproc", t_inproc}, {NULL, NULL}};
  zspawn_main(argc, argv); /* a child started by ZSPAWN runs its function here and exits */
  signal(SIGPIPE, SIG_IGN);
  alarm(170); /* a hang fails the test before ctest's timeout (180 s) */
  return zc_run_case(argc, argv, cases);
}
