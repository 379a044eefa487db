/* The channel services over ZeroMQ against hostile peers: a raw TCP peer, a raw DEALER sending frames that
 * are not service messages to a zc_eps listener, and a raw ROUTER doing the same (and forging replies) to a
 * zc_eps connector. Every bad frame is dropped and counted; the good messages around them get through.
 * Usage: test_zmq_svc_garbage garbage. */
#include "zc_test.h"
#include "zmq_spawn.h"
#include "zcmem.h"
#include "zcmem_zmq.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <zmq.h>

#define ANY_PORT "tcp://127.0.0.1:*"
/* A wait on the other process, whose pace is not under test (a loaded 2-core machine under a sanitizer may
 * leave it off the CPU for seconds): a hang still fails, at this deadline or the children's 60 s alarm. */
#define PEER_MS 60000

/* ---- garbage: a raw ZeroMQ peer sends frames that are not service messages, each way ---- */
static void raw_send(void *s, const void *d, size_t n, int flags) {
  REQUIREF(zmq_send(s, d, n, flags) == (int)n, "zmq_send: %s", zmq_strerror(errno));
}

static void put_hdr(unsigned char *f, uint32_t magic, uint32_t kind, uint32_t type, uint32_t len, uint64_t id) {
  memset(f, 0, 32);
  memcpy(f, &magic, 4);
  memcpy(f + 4, &kind, 4);
  memcpy(f + 8, &type, 4);
  memcpy(f + 12, &len, 4);
  memcpy(f + 16, &id, 8);
}

#define GARBAGE_FUZZ 300
#define GARBAGE_FIXED 8
#define MAGIC 0x3153435au
/* Frames that break the protocol: GARBAGE_FIXED fixed ones, then GARBAGE_FUZZ random ones (each surely
 * bad: under 32 bytes, a wrong magic, or a wrong length). `route`: a ROUTER's routing id goes first. */
static void send_garbage(void *s, const void *rid, size_t rid_len) {
  unsigned char f[160];
  int fl = rid != NULL ? ZMQ_SNDMORE : 0;
#define ROUTE() \
  if (rid != NULL) raw_send(s, rid, rid_len, ZMQ_SNDMORE)
  ROUTE();
  raw_send(s, "", 0, 0); /* empty (from a literal: f holds nothing yet) */
  ROUTE();
  raw_send(s, "hello", 5, 0); /* shorter than a header */
  memset(f, 0, 64);
  ROUTE();
  raw_send(s, f, 40, 0); /* no magic */
  put_hdr(f, MAGIC ^ 0x100, ZC_SVC_ONEWAY, 1, 8, 0);
  ROUTE();
  raw_send(s, f, 40, 0); /* well-formed but for the magic */
  put_hdr(f, MAGIC, ZC_SVC_REQUEST, 1, 100, 0);
  ROUTE();
  raw_send(s, f, 40, 0); /* length 100, payload 8 */
  put_hdr(f, MAGIC, ZC_SVC_ONEWAY, 1, 0, 0);
  ROUTE();
  raw_send(s, f, 32, ZMQ_SNDMORE); /* valid, but the first of two parts */
  raw_send(s, f, 32, 0);
  put_hdr(f, MAGIC, 5, 1, 0, 0);
  ROUTE();
  raw_send(s, f, 32, 0); /* unknown kind */
  put_hdr(f, MAGIC, ZC_SVC_REPLY, 1, 0, 0x0000000700000003ull);
  ROUTE();
  raw_send(s, f, 32, 0); /* a reply to nothing */
  for (int k = 0; k < GARBAGE_FUZZ; k++) {
    uint64_t r = splitmix64((uint64_t)k + 4242);
    size_t n = (size_t)(r % 140);
    fill_pattern(f, n, r);
    if (n >= 4) {
      uint32_t mg = k % 5 == 0 ? MAGIC : (uint32_t)(r >> 32) | 1u;
      if (mg == MAGIC && k % 5 != 0) mg ^= 2;
      memcpy(f, &mg, 4);
    }
    if (n >= 32) {
      uint32_t l;
      memcpy(&l, f + 12, 4);
      if (l == n - 32) l++;
      memcpy(f + 12, &l, 4);
    }
    ROUTE();
    raw_send(s, f, n, 0);
  }
#undef ROUTE
  (void)fl;
}

static int garbage_dealer_main(void *arg) {
  const char *ep = arg;
  /* a TCP peer that does not speak ZMTP */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(strrchr(ep, ':') + 1))};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIREF(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "tcp connect: %s", strerror(errno));
  unsigned char junk[4096];
  fill_pattern(junk, sizeof junk, 77);
  REQUIREF(write(fd, junk, sizeof junk) > 0, "write");
  sleep_ms(50);
  close(fd);
  void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_DEALER);
  int linger = PEER_MS, tmo = PEER_MS;
  zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
  zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
  REQUIREF(zmq_connect(s, ep) == 0, "zmq_connect");
  send_garbage(s, NULL, 0);
  /* then a well-formed request from the same peer: it is answered */
  unsigned char f[64];
  put_hdr(f, MAGIC, ZC_SVC_REQUEST, 3, 8, 0xabcdef);
  memcpy(f + 32, "question", 8);
  raw_send(s, f, 40, 0);
  unsigned char r[128];
  int n = zmq_recv(s, r, sizeof r, 0);
  REQUIREF(n == 38, "reply: %d bytes (%s)", n, n < 0 ? zmq_strerror(errno) : "");
  uint32_t magic, kind, type, len;
  uint64_t id;
  memcpy(&magic, r, 4);
  memcpy(&kind, r + 4, 4);
  memcpy(&type, r + 8, 4);
  memcpy(&len, r + 12, 4);
  memcpy(&id, r + 16, 8);
  REQUIREF(magic == MAGIC && kind == ZC_SVC_REPLY && type == 4 && len == 6 && id == 0xabcdef &&
               memcmp(r + 32, "answer", 6) == 0,
           "reply: magic %#x kind %u type %u len %u id %#llx", magic, kind, type, len, (unsigned long long)id);
  zmq_close(s);
  zmq_ctx_term(ctx);
  return 0;
}

/* A raw ROUTER that a connector connects to: it waits for the connector's HELLO, sends it garbage (and a
 * HELLO, which a listener never sends), then a well-formed ONEWAY; it stays connected until the parent
 * closed its end of the `done` pipe (a listener gone before the connector read its frames would end them
 * with EPIPE). */
static int garbage_router_main(void *arg) {
  int fd = ((int *)arg)[0], done = ((int *)arg)[1];
  void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_ROUTER);
  int linger = PEER_MS, tmo = PEER_MS;
  zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
  zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
  REQUIRE(zmq_bind(s, ANY_PORT) == 0);
  char ep[256];
  size_t len = sizeof ep;
  zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &len);
  pipe_send_str(fd, ep);
  unsigned char rid[256], f[64];
  int rl = zmq_recv(s, rid, sizeof rid, 0);
  REQUIREF(rl > 0, "routing id: %s", zmq_strerror(errno));
  int n = zmq_recv(s, f, sizeof f, 0);
  uint32_t kind = 0;
  if (n >= 8) memcpy(&kind, f + 4, 4);
  REQUIREF(n == 32 && kind == 8, "the connector's first frame: %d bytes, kind %u (a HELLO expected)", n, kind);
  n = zmq_recv(s, rid, sizeof rid, 0); /* the connector's request */
  REQUIRE(n == rl);
  n = zmq_recv(s, f, sizeof f, 0);
  uint64_t id = 0;
  if (n >= 24) memcpy(&kind, f + 4, 4), memcpy(&id, f + 16, 8);
  REQUIREF(n == 40 && kind == ZC_SVC_REQUEST, "the connector's request: %d bytes, kind %u", n, kind);
  send_garbage(s, rid, (size_t)rl);
  put_hdr(f, MAGIC, ZC_SVC_REPLY, 6, 0, id ^ (1ull << 32)); /* the right entry, a wrong generation */
  raw_send(s, rid, (size_t)rl, ZMQ_SNDMORE);
  raw_send(s, f, 32, 0);
  put_hdr(f, MAGIC, ZC_SVC_REPLY, 6, 0, id); /* the reply */
  raw_send(s, rid, (size_t)rl, ZMQ_SNDMORE);
  raw_send(s, f, 32, 0);
  raw_send(s, rid, (size_t)rl, ZMQ_SNDMORE);
  raw_send(s, f, 32, 0); /* the same reply again */
  put_hdr(f, MAGIC, 8, 0, 0, 0);
  raw_send(s, rid, (size_t)rl, ZMQ_SNDMORE);
  raw_send(s, f, 32, 0); /* a HELLO from the listener: dropped */
  put_hdr(f, MAGIC, ZC_SVC_ONEWAY, 9, 4, 0);
  memcpy(f + 32, "done", 4);
  raw_send(s, rid, (size_t)rl, ZMQ_SNDMORE);
  raw_send(s, f, 36, 0);
  char c; /* until the parent read everything (a ROUTER's receive does not end at a disconnection: waiting
           * there for the connector's close took the whole receive timeout, 20 s, every run) */
  if (read(done, &c, 1) < 0) {
  }
  zmq_close(s);
  zmq_ctx_term(ctx);
  return 0;
}

static int t_garbage(int argc, char **argv) {
  (void)argc, (void)argv;
  zc_eps_t *e = zc_eps_listen(ANY_PORT, NULL);
  REQUIREF(e != NULL, "listen: %s", strerror(errno));
  char ep[256];
  snprintf(ep, sizeof ep, "%s", zc_eps_endpoint(e));
  pid_t pid = ZSPAWN_STR(garbage_dealer_main, ep, -1, -1);
  zc_svc_msg_t m;
  REQUIREF(zc_eps_receive(e, &m, PEER_MS) == 0, "receive: %s (%s)", strerror(errno), zc_eps_error(e));
  CHECKF(m.kind == ZC_SVC_REQUEST && m.type == 3 && m.len == 8 && memcmp(m.data, "question", 8) == 0,
         "kind %d type %u len %u", m.kind, m.type, m.len);
  char *p = zc_eps_loan_reply(e, &m, 6);
  REQUIRE(p != NULL);
  memcpy(p, "answer", 6);
  REQUIRE(zc_eps_reply(e, &m, p, 6, 4) == 0);
  CHECK_EQ(reap(pid), 0);
  zc_svc_stats_t st;
  zc_eps_stats(e, &st);
  /* libzmq reads the raw TCP bytes as ZMTP 1.0 and may make frames of them: those are dropped too */
  CHECKF(st.rejected >= GARBAGE_FIXED + GARBAGE_FUZZ, "listener: %lu frames rejected, %d sent",
         (unsigned long)st.rejected, GARBAGE_FIXED + GARBAGE_FUZZ);
  printf("garbage: listener dropped %lu bad frames (%s)\n", (unsigned long)st.rejected, zc_eps_error(e));
  zc_eps_close(e);

  /* the other way: a hostile listener */
  int pfd[2], done[2];
  REQUIRE(pipe(pfd) == 0 && pipe(done) == 0);
  int fds[2] = {pfd[1], done[0]};
  pid = ZSPAWN_POD(garbage_router_main, &fds, pfd[1], done[0]);
  close(pfd[1]);
  close(done[0]);
  pipe_recv_str(pfd[0], ep, sizeof ep);
  close(pfd[0]);
  zc_eps_config_t patient = {.svc = {.connect_timeout_ms = PEER_MS}}; /* not the 5 s default */
  e = zc_eps_connect(ep, &patient);
  REQUIREF(e != NULL, "connect: %s", strerror(errno));
  p = zc_eps_loan(e, 8);
  memcpy(p, "question", 8);
  uint64_t id;
  REQUIRE(zc_eps_request(e, p, 8, 3, &id) == 0);
  REQUIREF(zc_eps_receive(e, &m, PEER_MS) == 0, "receive: %s (%s)", strerror(errno), zc_eps_error(e));
  CHECKF(m.kind == ZC_SVC_REPLY && m.id == id && m.type == 6 && m.len == 0, "kind %d type %u len %u", m.kind,
         m.type, m.len);
  zc_eps_release(e, &m);
  REQUIREF(zc_eps_receive(e, &m, PEER_MS) == 0, "receive: %s (%s)", strerror(errno), zc_eps_error(e));
  CHECKF(m.kind == ZC_SVC_ONEWAY && m.type == 9 && m.len == 4 && memcmp(m.data, "done", 4) == 0,
         "kind %d type %u len %u", m.kind, m.type, m.len);
  zc_eps_release(e, &m);
  zc_eps_stats(e, &st);
  /* the garbage, a HELLO, a reply of a wrong generation, a second reply */
  CHECKF(st.rejected == GARBAGE_FIXED + GARBAGE_FUZZ + 3 && st.pending == 0, "connector: %lu frames rejected, %d sent",
         (unsigned long)st.rejected, GARBAGE_FIXED + GARBAGE_FUZZ + 3);
  zc_eps_close(e);
  close(done[1]); /* the hostile listener may go */
  CHECK_EQ(reap(pid), 0);
  CHECK_DONE("zmq_svc_garbage");
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"garbage", t_garbage}, {NULL, NULL}};
  zspawn_main(argc, argv); /* a child started by ZSPAWN runs its function here and exits */
  return zc_run_case(argc, argv, cases);
}
