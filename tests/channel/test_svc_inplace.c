/* Channel services read messages in place (zcmem_service.h: "received as read-only views and released,
 * never copied"; docs/channel.md, "Channel services"): a request and its reply, of 4 KiB (a slot) and of
 * 256 KiB (a page run), between a client (this process) and a server (a fork child). After the receiver
 * has checked what was sent, the sender rewrites its loan (which only a test does: it is the channel's
 * after the send) and the receiver's view must show the new bytes: the view is the sender's own memory,
 * not a copy made on the way or at the receive.
 * Usage: test_svc_inplace (no arguments). */
#include "svc_test.h"

static int ctl[2]; /* control socket pair: [0] the client's end, [1] the server's */
static const char *name;
static const uint32_t sizes[] = {4096, 256 * 1024};

static void ctl_put(int fd, char c) { REQUIREF(write(fd, &c, 1) == 1, "ctl write: %s", strerror(errno)); }
static char ctl_get(int fd) {
  char c = 0;
  REQUIREF(read(fd, &c, 1) == 1, "ctl read: %s", strerror(errno));
  return c;
}

static zc_svc_config_t config(void) {
  zc_svc_config_t c = {0};
  c.chan.block_timeout_ms = PEER_WAIT_MS;
  c.connect_timeout_ms = PEER_WAIT_MS;
  return c;
}

static int server(void *arg) {
  (void)arg;
  close(ctl[0]);
  zc_svc_config_t cfg = config();
  zc_svc_t *s = zc_svc_listen(name, &cfg);
  REQUIREF(s != NULL, "listen: %s", strerror(errno));
  ctl_put(ctl[1], 'L');
  for (unsigned k = 0; k < sizeof sizes / sizeof *sizes; k++) {
    uint32_t n = sizes[k];
    zc_svc_msg_t req;
    REQUIREF(zc_svc_receive(s, &req, PEER_WAIT_MS) == 0, "receive: %s (%s)", strerror(errno), zc_svc_error(s));
    REQUIREF(req.kind == ZC_SVC_REQUEST && req.len == n, "request kind %d len %u, want %u", req.kind, req.len, n);
    CHECKF(verify_pattern(req.data, n, 10 + k) < 0, "request of %u B: wrong bytes", n);
    ctl_put(ctl[1], 'r');
    REQUIRE(ctl_get(ctl[1]) == 'w'); /* the client rewrote its loan after sending it */
    CHECKF(verify_pattern(req.data, n, 20 + k) < 0,
           "request of %u B: the server does not see the client's rewrite (its view is a copy)", n);
    char *r = zc_svc_loan_reply(s, &req, n);
    REQUIREF(r != NULL, "reply loan: %s", strerror(errno));
    fill_pattern(r, n, 30 + k);
    REQUIREF(zc_svc_reply(s, &req, r, n, 2) == 0, "reply: %s (%s)", strerror(errno), zc_svc_error(s));
    REQUIRE(ctl_get(ctl[1]) == 'g'); /* the client checked the reply */
    fill_pattern(r, n, 40 + k);       /* after the reply was sent: only a view of these bytes shows this */
    ctl_put(ctl[1], 'w');
  }
  REQUIRE(ctl_get(ctl[1]) == 'q');
  zc_svc_close(s);
  return check_failures ? 1 : 0;
}

int main(void) {
  name = svc_name("inplace");
  REQUIREF(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) == 0, "socketpair: %s", strerror(errno));
  pid_t pid = spawn(server, NULL);
  close(ctl[1]);
  REQUIRE(ctl_get(ctl[0]) == 'L');
  zc_svc_config_t cfg = config();
  zc_svc_t *c = zc_svc_connect(name, &cfg);
  REQUIREF(c != NULL, "connect: %s", strerror(errno));
  for (unsigned k = 0; k < sizeof sizes / sizeof *sizes; k++) {
    uint32_t n = sizes[k];
    char *p = zc_svc_loan(c, n);
    REQUIREF(p != NULL, "loan: %s", strerror(errno));
    fill_pattern(p, n, 10 + k);
    uint64_t id;
    REQUIREF(zc_svc_request(c, p, n, 1, &id) == 0, "request: %s (%s)", strerror(errno), zc_svc_error(c));
    REQUIRE(ctl_get(ctl[0]) == 'r');
    fill_pattern(p, n, 20 + k); /* after sending: only a view of the loan shows this */
    ctl_put(ctl[0], 'w');
    zc_svc_msg_t rep;
    REQUIREF(zc_svc_receive(c, &rep, PEER_WAIT_MS) == 0, "receive: %s (%s)", strerror(errno), zc_svc_error(c));
    REQUIREF(rep.kind == ZC_SVC_REPLY && rep.id == id && rep.len == n, "reply kind %d len %u", rep.kind, rep.len);
    CHECKF(verify_pattern(rep.data, n, 30 + k) < 0, "reply of %u B: wrong bytes", n);
    ctl_put(ctl[0], 'g');
    REQUIRE(ctl_get(ctl[0]) == 'w');
    CHECKF(verify_pattern(rep.data, n, 40 + k) < 0,
           "reply of %u B: the client does not see the server's rewrite (its view is a copy)", n);
    CHECK(zc_svc_release(c, &rep) == 0);
  }
  ctl_put(ctl[0], 'q');
  CHECKF(reap(pid) == 0, "the server failed");
  zc_svc_close(c);
  if (check_failures == 0) printf("requests and replies of 4 KiB and 256 KiB are read in place, both ways\n");
  CHECK_DONE("svc_inplace");
}
