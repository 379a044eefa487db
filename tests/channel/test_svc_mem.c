/* Channel services: every message's memory comes back to its sender. Both endpoints in this process (the
 * server in a thread), each producing under a small memory cap with ZC_CHAN_FAIL, so a message that is
 * never given back makes a later loan fail with EAGAIN instead of waiting.
 *
 *   svcmem_rr   6000 request/response round trips of 1 KiB each way (6 MiB each way) under a 2 MiB cap on
 *               both sides: every loan succeeds. A request is released by zc_svc_reply, a reply by
 *               zc_svc_release; at most two of each are in flight at any moment, whatever the scheduling.
 *               Then the same with one-way messages answered by one-way messages (zc_svc_send).
 */
#include "svc_test.h"

static const char *mem_name;

static zc_svc_config_t capped(void) {
  zc_svc_config_t c;
  memset(&c, 0, sizeof c);
  c.chan.first_segment = 2u << 20;
  c.chan.max_bytes = 2u << 20;
  c.chan.policy = ZC_CHAN_FAIL;
  c.connect_timeout_ms = 20000;
  return c;
}

static volatile int server_failures;

enum { N = 6000, LEN = 1024 }; /* 6 MiB each way, three times the cap */

static void *server(void *arg) {
  zc_svc_t *s = arg;
  for (int k = 0; k < 2 * N; k++) { /* N requests, then N one-way messages */
    zc_svc_msg_t m;
    if (zc_svc_receive(s, &m, 30000) != 0) {
      fprintf(stderr, "server receive %d: %s\n", k, strerror(errno));
      server_failures++;
      break;
    }
    uint32_t len = m.len;
    void *r = m.kind == ZC_SVC_REQUEST ? zc_svc_loan_reply(s, &m, len) : zc_svc_loan(s, len);
    if (r == NULL) {
      fprintf(stderr, "server loan: %s (%s)\n", strerror(errno), zc_svc_error(s));
      server_failures++;
      zc_svc_release(s, &m);
      break;
    }
    memcpy(r, m.data, len);
    int rc = m.kind == ZC_SVC_REQUEST ? zc_svc_reply(s, &m, r, len, m.type) : zc_svc_send(s, r, len, m.type);
    if (m.kind != ZC_SVC_REQUEST) zc_svc_release(s, &m);
    if (rc != 0) {
      fprintf(stderr, "server send: %s\n", strerror(errno));
      server_failures++;
      break;
    }
  }
  return NULL;
}

static int t_rr(int argc, char **argv) {
  (void)argc;
  mem_name = svc_name("mem");
  zc_svc_config_t c = capped();
  zc_svc_t *s = zc_svc_listen(mem_name, &c);
  REQUIRE(s != NULL);
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, server, s) == 0); /* it accepts the connection inside its receive */
  zc_svc_t *cl = zc_svc_connect(mem_name, &c);
  REQUIREF(cl != NULL, "connect: %s", strerror(errno));
  for (uint32_t i = 0; i < N; i++) {
    char *p = zc_svc_loan(cl, LEN);
    REQUIREF(p != NULL, "round trip %u: loan: %s (%s)", i, strerror(errno), zc_svc_error(cl));
    memset(p, (int)(i & 0xff), LEN);
    zc_svc_msg_t rep;
    REQUIREF(zc_svc_call(cl, p, LEN, i, &rep, 30000) == 0, "round trip %u: %s", i, strerror(errno));
    REQUIRE(rep.len == LEN && rep.type == i && ((const unsigned char *)rep.data)[LEN - 1] == (i & 0xff));
    REQUIRE(zc_svc_release(cl, &rep) == 0);
  }
  for (uint32_t i = 0; i < N; i++) { /* one-way both ways */
    char *p = zc_svc_loan(cl, LEN);
    REQUIREF(p != NULL, "one-way %u: loan: %s (%s)", i, strerror(errno), zc_svc_error(cl));
    memset(p, (int)(i & 0xff), LEN);
    REQUIRE(zc_svc_send(cl, p, LEN, i) == 0);
    zc_svc_msg_t m;
    REQUIREF(zc_svc_receive(cl, &m, 30000) == 0, "one-way %u: %s", i, strerror(errno));
    REQUIRE(m.kind == ZC_SVC_ONEWAY && m.type == i && m.len == LEN);
    REQUIRE(zc_svc_release(cl, &m) == 0);
  }
  pthread_join(t, NULL);
  zc_svc_close(cl);
  CHECK_EQ(server_failures, 0);
  zc_svc_close(s);
  return check_exit(argv[0]);
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"rr", t_rr}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
