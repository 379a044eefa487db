/* svc_bench: the channel services (zcmem_service.h) against the one-way channel they are built on, two or
 * three processes, same run.
 *
 *   rr     request/response round trips: the client loans a request of `size` bytes, writes it, calls
 *          (zc_svc_call) and reads the whole reply of the same size; the server reads the whole request
 *          and answers from a loan. Round trips/s and the p50/p99 of one round trip. "pair": the same
 *          exchange over two raw one-way channels (zc_chan_*, one each way) with no service layer: the
 *          difference is what the layer costs (header, correlation, the receive loop).
 *   queue  a dispatcher keeps 64 requests of 64 B (what=queue size=S: S) in flight to 2 worker processes,
 *          which answer 16 B; completed requests/s.
 *   many   2 producer processes send one-way 64 B records (what=many size=S: S) to one consumer: records/s.
 * Every payload byte is written once and read once. The client/dispatcher runs on CPU 0, the others on
 * CPU 1 (pin=0: anywhere). Message-path system calls: run one piece under strace, e.g.
 *   strace -c -f build/bench/svc_bench what=rr size=64 n=100000
 * and divide the counts by n (the set-up costs a few dozen calls).
 *
 * what=icount / what=icount_pair / what=icount_oneway [size=64] n=N: no measurement of its own, for
 * callgrind (see icount_svc): a request/response round trip, the same over two raw channels, one service
 * one-way message (the many-to-one path).
 *
 * spin=NS: chan.spin_ns of both rr sides (-1: no spinning: every wait sleeps in epoll, as an event loop's
 * does; with strace -c -f, the system calls of a round trip whose both sides sleep).
 *
 * Usage: svc_bench [what=rr|pair|queue|many|all|icount|icount_pair|icount_oneway] [spin=NS] [size=64] [n=...] [pin=1]
 * Prints zcbench lines and, for what=all, a table.
 */
#define _GNU_SOURCE
#include "zcmem_service.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "svc_bench: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int pin = 1;
static void pin_to(int cpu) {
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  if (!pin || ncpu < 2) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);
}

static void write_payload(void *p, size_t n, uint64_t seq) {
  memcpy(p, &seq, 8);
  memset((char *)p + 8, (int)(seq & 0xff), n - 8);
}
static uint64_t read_payload(const void *p, size_t n) { /* reads every byte */
  const unsigned char *b = p;
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++) sum += b[i];
  return sum;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static char name[64];
static zc_svc_config_t connect_cfg = {.connect_timeout_ms = 10000};
static zc_svc_config_t listen_cfg; /* spin=NS sets chan.spin_ns of both (-1: no spinning, every wait sleeps) */

/* ---- rr over the service ---- */
static void rr_server(size_t size) {
  pin_to(1);
  zc_svc_t *s = zc_svc_listen(name, &listen_cfg);
  if (s == NULL) die("listen");
  uint64_t joined = 0;
  for (;;) {
    zc_svc_msg_t m;
    if (zc_svc_receive(s, &m, 200) != 0) {
      zc_svc_stats_t st;
      zc_svc_stats(s, &st);
      joined = st.joined;
      if (joined > 0 && st.peers == 0) break;
      continue;
    }
    read_payload(m.data, m.len);
    void *r = zc_svc_loan_reply(s, &m, size);
    if (r == NULL) die("loan_reply");
    write_payload(r, size, 1);
    if (zc_svc_reply(s, &m, r, size, 1) != 0) die("reply");
  }
  zc_svc_close(s);
  exit(0);
}

static void report(const char *variant, const char *metric, double v, const char *unit) {
  printf("zcbench bench=svc variant=%s metric=%s value=%.6g unit=%s\n", variant, metric, v, unit);
}

static void rr(size_t size, uint64_t n, double out[3]) {
  snprintf(name, sizeof name, "svcbench.%d.rr", (int)getpid());
  fflush(NULL);
  pid_t sp = fork();
  if (sp == 0) rr_server(size);
  pin_to(0);
  zc_svc_t *c = zc_svc_connect(name, &connect_cfg);
  if (c == NULL) die("connect");
  uint64_t *lat = malloc(n * sizeof *lat), t0 = now_ns();
  for (uint64_t i = 0; i < n; i++) {
    uint64_t a = now_ns();
    void *p = zc_svc_loan(c, size);
    if (p == NULL) die("loan");
    write_payload(p, size, i);
    zc_svc_msg_t rep;
    if (zc_svc_call(c, p, size, 1, &rep, 10000) != 0) die("call");
    read_payload(rep.data, rep.len);
    zc_svc_release(c, &rep);
    lat[i] = now_ns() - a;
  }
  double secs = (double)(now_ns() - t0) / 1e9;
  zc_svc_close(c);
  waitpid(sp, NULL, 0);
  qsort(lat, n, sizeof *lat, cmp_u64);
  out[0] = (double)n / secs;
  out[1] = (double)lat[n / 2];
  out[2] = (double)lat[n * 99 / 100];
  free(lat);
}

/* ---- the same over two raw one-way channels ---- */
static void pair(size_t size, uint64_t n, double out[3]) {
  int a[2], b[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, a) != 0 || socketpair(AF_UNIX, SOCK_SEQPACKET, 0, b) != 0) die("socketpair");
  fflush(NULL);
  pid_t sp = fork();
  if (sp == 0) {
    pin_to(1);
    close(a[0]);
    close(b[0]);
    zc_chan_t *in = zc_chan_open(a[1], ZC_CHAN_CONSUMER, NULL), *out_ch = zc_chan_open(b[1], ZC_CHAN_PRODUCER, NULL);
    if (!in || !out_ch) die("open (server)");
    zc_chan_msg_t m;
    while (zc_chan_receive(in, &m, -1) == 0) {
      read_payload(m.data, m.len);
      zc_chan_release(in, &m);
      void *r = zc_chan_loan(out_ch, size);
      write_payload(r, size, 1);
      zc_chan_send(out_ch, r, size, 1);
    }
    exit(0);
  }
  pin_to(0);
  close(a[1]);
  close(b[1]);
  zc_chan_t *out_ch = zc_chan_open(a[0], ZC_CHAN_PRODUCER, NULL), *in = zc_chan_open(b[0], ZC_CHAN_CONSUMER, NULL);
  if (!in || !out_ch) die("open (client)");
  uint64_t *lat = malloc(n * sizeof *lat), t0 = now_ns();
  for (uint64_t i = 0; i < n; i++) {
    uint64_t t = now_ns();
    void *p = zc_chan_loan(out_ch, size);
    write_payload(p, size, i);
    if (zc_chan_send(out_ch, p, size, 1) != 0) die("send");
    zc_chan_msg_t m;
    if (zc_chan_receive(in, &m, 10000) != 0) die("receive");
    read_payload(m.data, m.len);
    zc_chan_release(in, &m);
    lat[i] = now_ns() - t;
  }
  double secs = (double)(now_ns() - t0) / 1e9;
  zc_chan_close(out_ch);
  zc_chan_close(in);
  waitpid(sp, NULL, 0);
  qsort(lat, n, sizeof *lat, cmp_u64);
  out[0] = (double)n / secs;
  out[1] = (double)lat[n / 2];
  out[2] = (double)lat[n * 99 / 100];
  free(lat);
}

/* ---- work queue: 64 in flight to 2 workers ---- */
static void worker(void) {
  pin_to(1);
  zc_svc_t *c = zc_svc_connect(name, &connect_cfg);
  if (c == NULL) die("worker connect");
  zc_svc_msg_t m;
  while (zc_svc_receive(c, &m, -1) == 0) {
    read_payload(m.data, m.len);
    void *r = zc_svc_loan_reply(c, &m, 16);
    if (r == NULL) break;
    write_payload(r, 16, 2);
    if (zc_svc_reply(c, &m, r, 16, 1) != 0) break;
  }
  zc_svc_close(c);
  exit(0);
}

static double queue(uint64_t n, size_t qsize) {
  snprintf(name, sizeof name, "svcbench.%d.queue", (int)getpid());
  zc_svc_t *s = zc_svc_listen(name, NULL);
  if (s == NULL) die("listen");
  pid_t w[2];
  fflush(NULL);
  for (int i = 0; i < 2; i++)
    if ((w[i] = fork()) == 0) worker();
  pin_to(0);
  zc_svc_msg_t m;
  while (zc_svc_peers(s) < 2)
    if (zc_svc_receive(s, &m, 10) == 0) zc_svc_release(s, &m);
  uint64_t sent = 0, done = 0, inflight = 0, t0 = now_ns();
  while (done < n) {
    while (sent < n && inflight < 64) {
      void *p = zc_svc_loan(s, qsize);
      if (p == NULL) die("loan");
      write_payload(p, qsize, sent);
      uint64_t id;
      if (zc_svc_request(s, p, qsize, 1, &id) != 0) die("request");
      sent++;
      inflight++;
    }
    if (zc_svc_receive(s, &m, 10000) != 0) die("receive");
    if (m.kind != ZC_SVC_REPLY) die("not a reply");
    read_payload(m.data, m.len);
    zc_svc_release(s, &m);
    done++;
    inflight--;
  }
  double rate = (double)n / ((double)(now_ns() - t0) / 1e9);
  zc_svc_close(s);
  for (int i = 0; i < 2; i++) waitpid(w[i], NULL, 0);
  return rate;
}

/* ---- instruction count of one round trip (what=icount) ----
 * One process, no waiting: the client requests, the server receives (timeout 0: the message is there),
 * loans the reply, replies, and the client receives the reply and releases it; "pair" does the same
 * exchange over two raw one-way channels. Each side reads 1 byte and writes 8. Under callgrind the
 * difference of two runs' totals (n=20000 and n=40000) / 20000 is the library's instructions per round
 * trip, set-up excluded. zc_svc_call is not used: its wait would spin (a count that depends on the
 * scheduler); its receive path is the one measured here. */
static zc_svc_t *ic_client;
static void *ic_connect(void *arg) {
  ic_client = zc_svc_connect((const char *)arg, &connect_cfg);
  return NULL;
}

/* oneway 1: the many-to-one path instead (zc_svc_loan + zc_svc_send by the connector; zc_svc_receive +
 * zc_svc_release by the listener), per message. */
static uint64_t icount_svc(size_t size, uint64_t n, int oneway) {
  snprintf(name, sizeof name, "svcbench.%d.ic", (int)getpid());
  zc_svc_t *s = zc_svc_listen(name, NULL);
  if (s == NULL) die("listen");
  pthread_t t;
  pthread_create(&t, NULL, ic_connect, name);
  zc_svc_msg_t m;
  while (zc_svc_peers(s) < 1)
    if (zc_svc_receive(s, &m, 10) == 0) zc_svc_release(s, &m);
  pthread_join(t, NULL);
  zc_svc_t *c = ic_client;
  if (c == NULL) die("connect");
  uint64_t sum = 0;
  for (uint64_t i = 0; i < n; i++) {
    char *p = zc_svc_loan(c, size);
    if (p == NULL) die("loan");
    memcpy(p, &i, 8);
    if (oneway) {
      if (zc_svc_send(c, p, size, 1) != 0) die("send");
      if (zc_svc_receive(s, &m, 0) != 0 || m.kind != ZC_SVC_ONEWAY) die("receive");
      sum += *(const unsigned char *)m.data;
      zc_svc_release(s, &m);
      continue;
    }
    uint64_t id;
    if (zc_svc_request(c, p, size, 1, &id) != 0) die("request");
    if (zc_svc_receive(s, &m, 0) != 0 || m.kind != ZC_SVC_REQUEST) die("server receive");
    sum += *(const unsigned char *)m.data;
    char *r = zc_svc_loan_reply(s, &m, size);
    if (r == NULL) die("loan_reply");
    memcpy(r, &i, 8);
    if (zc_svc_reply(s, &m, r, size, 1) != 0) die("reply");
    zc_svc_msg_t rep;
    if (zc_svc_receive(c, &rep, 0) != 0 || rep.kind != ZC_SVC_REPLY || rep.id != id) die("client receive");
    sum += *(const unsigned char *)rep.data;
    zc_svc_release(c, &rep);
  }
  zc_svc_close(c);
  zc_svc_close(s);
  return sum;
}

static zc_chan_t *ic_ch[4];
static int ic_fd[4];
static void *ic_open(void *arg) {
  intptr_t k = (intptr_t)arg; /* opens the consumer ends 1 and 3 */
  ic_ch[k] = zc_chan_open(ic_fd[k], ZC_CHAN_CONSUMER, NULL);
  return NULL;
}

static uint64_t icount_pair(size_t size, uint64_t n) {
  int a[2], b[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, a) != 0 || socketpair(AF_UNIX, SOCK_SEQPACKET, 0, b) != 0) die("socketpair");
  ic_fd[0] = a[0], ic_fd[1] = a[1], ic_fd[2] = b[0], ic_fd[3] = b[1];
  for (intptr_t k = 0; k < 4; k += 2) {
    pthread_t t;
    pthread_create(&t, NULL, ic_open, (void *)(k + 1));
    ic_ch[k] = zc_chan_open(ic_fd[k], ZC_CHAN_PRODUCER, NULL);
    pthread_join(t, NULL);
    if (ic_ch[k] == NULL || ic_ch[k + 1] == NULL) die("open");
  }
  uint64_t sum = 0;
  for (uint64_t i = 0; i < n; i++) {
    char *p = zc_chan_loan(ic_ch[0], size);
    if (p == NULL) die("loan");
    memcpy(p, &i, 8);
    if (zc_chan_send(ic_ch[0], p, size, 1) != 0) die("send");
    zc_chan_msg_t m;
    if (zc_chan_receive(ic_ch[1], &m, 0) != 0) die("server receive");
    sum += *(const unsigned char *)m.data;
    zc_chan_release(ic_ch[1], &m);
    char *r = zc_chan_loan(ic_ch[2], size);
    if (r == NULL) die("loan reply");
    memcpy(r, &i, 8);
    if (zc_chan_send(ic_ch[2], r, size, 1) != 0) die("send reply");
    if (zc_chan_receive(ic_ch[3], &m, 0) != 0) die("client receive");
    sum += *(const unsigned char *)m.data;
    zc_chan_release(ic_ch[3], &m);
  }
  for (int k = 0; k < 4; k++) zc_chan_close(ic_ch[k]);
  return sum;
}

/* ---- many to one: 2 producers ---- */
static double many(uint64_t n, size_t msize) {
  snprintf(name, sizeof name, "svcbench.%d.many", (int)getpid());
  zc_svc_t *s = zc_svc_listen(name, NULL);
  if (s == NULL) die("listen");
  pid_t w[2];
  fflush(NULL);
  for (int i = 0; i < 2; i++) {
    if ((w[i] = fork()) == 0) {
      pin_to(1);
      /* wait for room as long as it takes: on a loaded machine a pinned consumer can be descheduled for
       * longer than the default block_timeout_ms (1 s) */
      zc_svc_config_t cfg = connect_cfg;
      cfg.chan.block_timeout_ms = -1;
      zc_svc_t *c = zc_svc_connect(name, &cfg);
      if (c == NULL) die("producer connect");
      for (uint64_t k = 0; k < n / 2; k++) {
        void *p = zc_svc_loan(c, msize);
        if (p == NULL) die("producer loan");
        write_payload(p, msize, k);
        if (zc_svc_send(c, p, msize, 1) != 0) die("producer send");
      }
      zc_svc_msg_t m;
      zc_svc_receive(c, &m, -1); /* until the consumer closes */
      exit(0);
    }
  }
  pin_to(0);
  zc_svc_msg_t m;
  uint64_t got = 0, t0 = 0;
  while (got < n / 2 * 2) {
    if (zc_svc_receive(s, &m, 10000) != 0) die("consumer receive");
    if (got == 0) t0 = now_ns();
    read_payload(m.data, m.len);
    zc_svc_release(s, &m);
    got++;
  }
  double rate = (double)(got - 1) / ((double)(now_ns() - t0) / 1e9);
  zc_svc_close(s);
  for (int i = 0; i < 2; i++) waitpid(w[i], NULL, 0);
  return rate;
}

int main(int argc, char **argv) {
  const char *what = "all";
  size_t size = 0;
  uint64_t n = 0;
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "what=", 5) == 0) what = argv[i] + 5;
    else if (strncmp(argv[i], "size=", 5) == 0) size = strtoull(argv[i] + 5, NULL, 0);
    else if (strncmp(argv[i], "n=", 2) == 0) n = strtoull(argv[i] + 2, NULL, 0);
    else if (strncmp(argv[i], "pin=", 4) == 0) pin = atoi(argv[i] + 4);
    else if (strncmp(argv[i], "spin=", 5) == 0) listen_cfg.chan.spin_ns = connect_cfg.chan.spin_ns = atoi(argv[i] + 5);
  }
  signal(SIGPIPE, SIG_IGN);
  if (strcmp(what, "icount") == 0 || strcmp(what, "icount_pair") == 0 || strcmp(what, "icount_oneway") == 0) {
    uint64_t sum = strcmp(what, "icount_pair") == 0 ? icount_pair(size ? size : 64, n ? n : 20000)
                                                    : icount_svc(size ? size : 64, n ? n : 20000, what[6] != 0);
    printf("icount %s done (%llu)\n", what, (unsigned long long)sum);
    return 0;
  }
  int all = strcmp(what, "all") == 0;
  size_t sizes[2] = {64, 16384};
  double r[3];
  if (all) printf("| pattern | size | round trips or msgs/s | p50 | p99 |\n|---|---|---|---|---|\n");
  for (int k = 0; k < 2; k++) {
    size_t sz = size ? size : sizes[k];
    if (size && k == 1) break;
    char v[32];
    if (all || strcmp(what, "rr") == 0) {
      rr(sz, n ? n : 100000, r);
      snprintf(v, sizeof v, "rr_%zu", sz);
      report(v, "round_trips_per_s", r[0], "1/s");
      report(v, "p50", r[1], "ns");
      report(v, "p99", r[2], "ns");
      if (all) printf("| svc request/response | %zu B | %.0f | %.1f us | %.1f us |\n", sz, r[0], r[1] / 1e3, r[2] / 1e3);
    }
    if (all || strcmp(what, "pair") == 0) {
      pair(sz, n ? n : 100000, r);
      snprintf(v, sizeof v, "pair_%zu", sz);
      report(v, "round_trips_per_s", r[0], "1/s");
      report(v, "p50", r[1], "ns");
      report(v, "p99", r[2], "ns");
      if (all) printf("| two raw channels | %zu B | %.0f | %.1f us | %.1f us |\n", sz, r[0], r[1] / 1e3, r[2] / 1e3);
    }
  }
  if (all || strcmp(what, "queue") == 0) {
    size_t qs = size && !all ? size : 64;
    double q = queue(n ? n : 300000, qs);
    char v[48];
    snprintf(v, sizeof v, "queue_2workers_%zu", qs);
    report(qs == 64 ? "queue_2workers" : v, "requests_per_s", q, "1/s");
    if (all) printf("| work queue, 2 workers, 64 in flight | 64 B / 16 B | %.0f | | |\n", q);
  }
  if (all || strcmp(what, "many") == 0) {
    size_t ms = size && !all ? size : 64;
    double q = many(n ? n : 1000000, ms);
    char v[48];
    snprintf(v, sizeof v, "many_2producers_%zu", ms);
    report(ms == 64 ? "many_2producers" : v, "msgs_per_s", q, "1/s");
    if (all) printf("| 2 producers to one consumer | 64 B | %.0f | | |\n", q);
  }
  return 0;
}
