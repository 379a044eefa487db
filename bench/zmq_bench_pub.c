/* zmq_bench, fan-out table: one publisher process, two subscriber processes, every message read whole by
 * both, three ways in the same run:
 *   zcmem-zmq  zc_ep_pub_* over tcp://127.0.0.1 (XPUB, ZC_CHAN_BLOCK = XPUB_NODROP): the publisher writes
 *              into a zcmem loan, send hands the one block to libzmq (no copy), which writes it to both
 *              connections and frees it into zcmem; subscribers read libzmq's buffer in place;
 *   plain-zmq  libzmq XPUB (XPUB_NODROP, so nothing is dropped either) / SUB as usually written: the
 *              message built in the publisher's buffer and copied into a zmq_msg_init_size message;
 *   channel    zc_ep_pub_* over a socket path: the shared-memory fan-out, for scale (one copy in shared
 *              memory read by both; it carries 1 MiB too).
 * Throughput: messages published per second, from the slower subscriber's clock (first to last message);
 * latency p50/p99: paced messages, the larger of the two subscribers' figures; CPU (user + system, libzmq's
 * threads included) and allocator calls per message for the publisher and for each subscriber (mean of
 * the two). Allocator calls: malloc-family calls counted by zmq_bench.c, plus the loan's zc_malloc and the
 * free callback's zc_free for zcmem-zmq (counted from its stats: 1 + 1 per message published). */
#define _GNU_SOURCE
#include "zmq_bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#define NSUB 2
enum { P_ZCMEM, P_PLAIN, P_CHANNEL, P_COUNT };
static const char *const pname[P_COUNT] = {"zcmem-zmq", "plain-zmq", "channel"};

typedef struct pub_report_s {
  uint64_t first_ns, last_ns, cpu_ns, allocs;
  double p50_us, p99_us;
} pub_report_t;

typedef struct pub_result_s {
  double msgs_per_s, p50_us, p99_us, cpu_pub_us, cpu_sub_us, alloc_pub, alloc_sub;
} pub_result_t;

/* One subscriber process: receive count + lat_count messages of n bytes, report through fd. */
static void subscriber(int t, size_t n, long count, long lat_count, int in_fd, int out_fd) {
  char ep[256];
  if (read(in_fd, ep, sizeof ep) != (ssize_t)sizeof ep) _exit(1);
  zc_ep_t *s = NULL;
  void *ctx = NULL, *sock = NULL;
  if (t == P_PLAIN) {
    ctx = zmq_ctx_new();
    sock = zmq_socket(ctx, ZMQ_SUB);
    int hwm = 4096;
    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_SUBSCRIBE, "", 0);
    if (zmq_connect(sock, ep) != 0) die("zmq_connect", ep);
  } else {
    zc_zmq_config_t cfg = {.chan.setup_timeout_ms = 30000};
    if ((s = zc_ep_subscribe(ep, &cfg)) == NULL) die("subscribe", ep);
  }
  pub_report_t r = {0};
  uint64_t *lat = malloc(sizeof *lat * (size_t)lat_count), c0 = 0, a0 = 0;
  for (long i = 0; i < count + lat_count; i++) {
    uint64_t tm = 0;
    if (t == P_PLAIN) {
      zmq_msg_t m;
      zmq_msg_init(&m);
      if (zmq_msg_recv(&m, sock, 0) < 0 || zmq_msg_size(&m) != n) die("zmq_msg_recv", NULL);
      read_payload(zmq_msg_data(&m), n, &tm);
      zmq_msg_close(&m);
    } else {
      zc_chan_msg_t m;
      if (zc_ep_receive(s, &m, 30000) != 0 || m.len != n) die("receive", zc_ep_error(s));
      read_payload(m.data, n, &tm);
      zc_ep_release(s, &m);
    }
    uint64_t now = now_ns();
    if (i == 0) r.first_ns = now, c0 = cpu_ns(), a0 = atomic_load(&alloc_calls); /* the first starts the clocks */
    if (i == count - 1) r.last_ns = now, r.cpu_ns = cpu_ns() - c0, r.allocs = atomic_load(&alloc_calls) - a0;
    if (i >= count) lat[i - count] = now - tm;
  }
  qsort(lat, (size_t)lat_count, sizeof *lat, cmp_u64);
  r.p50_us = lat[lat_count / 2] / 1e3;
  r.p99_us = lat[lat_count * 99 / 100] / 1e3;
  if (write(out_fd, &r, sizeof r) != (ssize_t)sizeof r) _exit(1);
  if (t == P_PLAIN) {
    zmq_close(sock);
    zmq_ctx_term(ctx);
  } else {
    zc_ep_close(s);
  }
}

static void publish(int t, zc_ep_pub_t *p, void *sock, char *buf, size_t n, uint64_t seq) {
  if (t == P_PLAIN) {
    write_payload(buf, n, seq, now_ns());
    zmq_msg_t m;
    zmq_msg_init_size(&m, n);
    memcpy(zmq_msg_data(&m), buf, n); /* the copy zcmem's loan avoids */
    if (zmq_msg_send(&m, sock, 0) < 0) die("zmq_msg_send", NULL);
    return;
  }
  void *q = zc_ep_pub_loan(p, n);
  if (q == NULL) die("loan", zc_ep_pub_error(p));
  write_payload(q, n, seq, now_ns());
  while (zc_ep_pub_send(p, q, n, 1) < 0)
    if (errno != ETIMEDOUT) die("send", zc_ep_pub_error(p));
}

static pub_result_t pub_run(int t, size_t n, long count, long lat_count) {
  int in[NSUB][2], out[NSUB][2];
  pid_t pid[NSUB];
  fflush(NULL);
  for (int k = 0; k < NSUB; k++) { /* the children first: they inherit no socket of the publisher */
    if (pipe(in[k]) != 0 || pipe(out[k]) != 0) die("pipe", NULL);
    if ((pid[k] = fork()) < 0) die("fork", NULL);
    if (pid[k] == 0) {
      subscriber(t, n, count, lat_count, in[k][0], out[k][1]);
      _exit(0);
    }
    close(in[k][0]);
    close(out[k][1]);
  }
  char ep[256] = "";
  zc_ep_pub_t *p = NULL;
  void *ctx = NULL, *sock = NULL;
  char *buf = NULL;
  zc_zmq_config_t cfg = {.chan.block_timeout_ms = 30000, .linger_ms = 30000};
  if (t == P_PLAIN) {
    ctx = zmq_ctx_new();
    sock = zmq_socket(ctx, ZMQ_XPUB);
    int hwm = 4096, one = 1, linger = 30000;
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_XPUB_NODROP, &one, sizeof one);
    zmq_setsockopt(sock, ZMQ_XPUB_VERBOSE, &one, sizeof one);
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(sock, "tcp://127.0.0.1:*") != 0) die("zmq_bind", NULL);
    size_t len = sizeof ep;
    zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, ep, &len);
    buf = malloc(n);
  } else {
    if (t == P_CHANNEL) snprintf(ep, sizeof ep, "/tmp/zcmem-bench-pub-%d.sock", (int)getpid());
    if ((p = zc_ep_pub_listen(t == P_CHANNEL ? ep : "tcp://127.0.0.1:*", &cfg)) == NULL) die("pub listen", ep);
    snprintf(ep, sizeof ep, "%s", zc_ep_pub_endpoint(p));
  }
  for (int k = 0; k < NSUB; k++)
    if (write(in[k][1], ep, sizeof ep) != (ssize_t)sizeof ep) die("write", NULL);
  for (int k = 0; k < NSUB; k++) { /* every subscriber ready: it gets every message from now on */
    if (t == P_PLAIN) {
      char sub[8];
      if (zmq_recv(sock, sub, sizeof sub, 0) < 1 || sub[0] != 1) die("subscription", NULL);
    } else if (zc_ep_pub_accept(p, 30000) < 0) {
      die("accept", zc_ep_pub_error(p));
    }
  }
  uint64_t c0 = cpu_ns(), a0 = atomic_load(&alloc_calls);
  for (long i = 0; i < count; i++) publish(t, p, sock, buf, n, (uint64_t)i);
  if (p != NULL)
    while (zc_ep_pub_collect(p) > 0) usleep(100);
  uint64_t cpu = cpu_ns() - c0, allocs = atomic_load(&alloc_calls) - a0;
  uint64_t pace = n >= (1 << 20) ? 2000000 : n >= 16384 ? 200000 : 100000; /* ns between latency probes */
  for (long i = 0; i < lat_count; i++) {
    uint64_t t0 = now_ns();
    publish(t, p, sock, buf, n, (uint64_t)(count + i));
    while (now_ns() - t0 < pace) {
    }
  }
  pub_result_t res = {0};
  res.msgs_per_s = 1e300;
  for (int k = 0; k < NSUB; k++) {
    pub_report_t r;
    if (read(out[k][0], &r, sizeof r) != (ssize_t)sizeof r) die("subscriber report", NULL);
    double rate = (double)(count - 1) * 1e9 / (double)(r.last_ns - r.first_ns);
    if (rate < res.msgs_per_s) res.msgs_per_s = rate;
    if (r.p50_us > res.p50_us) res.p50_us = r.p50_us;
    if (r.p99_us > res.p99_us) res.p99_us = r.p99_us;
    res.cpu_sub_us += r.cpu_ns / 1e3 / (double)(count - 1) / NSUB;
    res.alloc_sub += (double)r.allocs / (double)(count - 1) / NSUB;
    close(out[k][0]);
    close(in[k][1]);
    int st;
    waitpid(pid[k], &st, 0);
  }
  res.cpu_pub_us = cpu / 1e3 / (double)count;
  res.alloc_pub = (double)allocs / (double)count;
  if (t == P_ZCMEM) { /* the loan's zc_malloc and the callback's zc_free, not seen by the counting malloc */
    zc_pub_stats_t st;
    zc_ep_pub_stats(p, &st);
    res.alloc_pub += 2.0 * (double)st.chan.returned / (double)(count + lat_count);
  }
  if (t == P_PLAIN) {
    zmq_close(sock);
    zmq_ctx_term(ctx);
    free(buf);
  } else {
    zc_ep_pub_close(p);
  }
  return res;
}

void pub_table(int quick, const char *only, size_t only_size) {
  static const size_t sizes[] = {64, 16384, 1 << 20};
  long counts[] = {quick ? 20000 : 100000, quick ? 5000 : 20000, quick ? 100 : 400};
  long lats[] = {quick ? 300 : 2000, quick ? 300 : 2000, quick ? 50 : 200};
  printf("\nFan-out (one publisher, %d subscriber processes, every message read whole by each):\n\n"
         "| transport | size | msgs/s | MB/s each | p50 us | p99 us | CPU us/msg pub | each sub | "
         "alloc calls/msg pub | each sub |\n|---|---|---|---|---|---|---|---|---|---|\n",
         NSUB);
  for (int k = 0; k < 3; k++)
    for (int t = 0; t < P_COUNT; t++) {
      if ((only != NULL && strcmp(only, pname[t]) != 0) || (only_size != 0 && only_size != sizes[k])) continue;
      pub_result_t r = pub_run(t, sizes[k], counts[k], lats[k]);
      printf("| %s | %zu | %.0f | %.0f | %.1f | %.1f | %.2f | %.2f | %.2f | %.2f |\n", pname[t], sizes[k],
             r.msgs_per_s, r.msgs_per_s * (double)sizes[k] / 1e6, r.p50_us, r.p99_us, r.cpu_pub_us, r.cpu_sub_us,
             r.alloc_pub, r.alloc_sub);
      zcbench(pname[t], sizes[k], "pub_msgs_per_s", r.msgs_per_s, "msgs/s", 1);
      zcbench(pname[t], sizes[k], "pub_p50", r.p50_us, "us", 0);
      zcbench(pname[t], sizes[k], "pub_p99", r.p99_us, "us", 0);
      zcbench(pname[t], sizes[k], "pub_cpu_us_per_msg", r.cpu_pub_us + NSUB * r.cpu_sub_us, "us/msg", 0);
      zcbench(pname[t], sizes[k], "pub_alloc_calls_per_msg", r.alloc_pub + NSUB * r.alloc_sub, "calls/msg", 0);
      fflush(stdout);
    }
}
