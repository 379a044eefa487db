/* zmq_bench: messages between two processes over loopback TCP, three ways, same run:
 *   zcmem-zmq  zcmem's transport over ZeroMQ: the producer writes into a zcmem loan, send hands the block
 *              to libzmq (zmq_msg_init_data, no copy), libzmq's I/O thread frees it back into zcmem;
 *              the consumer reads libzmq's receive buffer in place and releases it;
 *   plain-zmq  libzmq as usually written: the producer builds the message in its own buffer and copies it
 *              into a zmq_msg_init_size message; the consumer receives into a zmq_msg_t and closes it;
 *   channel    zcmem's shared-memory channel (one machine only, at most 64 KiB), for scale.
 * For 64 B, 16 KiB and 1 MiB messages it prints
 *   - throughput: messages/s and MB/s from one producer thread (the consumer's clock, first to last);
 *   - CPU per message: user + system time of each process (its I/O threads included) / messages, and the
 *     instructions each process executed per message (user and kernel, perf_event_open with its threads
 *     inherited; "-" where the kernel does not allow it): wall-clock and CPU time are noisy on a shared
 *     machine, instruction counts much less;
 *   - allocator calls per message in each process: malloc-family calls (this program defines malloc,
 *     free, calloc, realloc and the aligned forms, forwarding to zcmem and counting), plus the zc_malloc
 *     and zc_free of each zcmem loan (counted by the transport's stats: 1 + 1 per message);
 *   - one-way latency p50/p99: messages paced (no queueing), the consumer subtracts the send time carried
 *     in the message (same machine, CLOCK_MONOTONIC) from the time receive returned.
 * Then request/response round trips (one call at a time, request and reply of the same size), same three
 * ways: zc_eps_call over tcp:// (zcmem-zmq: DEALER/ROUTER, zero-copy loans both ways), plain libzmq
 * DEALER/ROUTER with a copy into zmq_msg_init_size each way, and zc_eps_call over a local name (channel:
 * the shared-memory channel services); round trips/s, p50/p99 of each round trip, CPU and allocator calls
 * per round trip on each side.
 * Every payload is written once by the producer and read once (every byte, a checksum) by the consumer.
 * Then fan-out (zmq_bench_pub.c): one publisher, two subscriber processes, every message read by both.
 * Usage: zmq_bench [-q] [only=zcmem-zmq|plain-zmq|channel] [size=BYTES] [lat=0] [oneway|rr|pub]
 *        (-q: fewer messages; oneway, rr or pub: only that table)
 * Output: a Markdown table, and the same figures as `zcbench` lines for bench/run (entry "zmq" of
 * bench/suite.py): variant = transport, metric = msgs_per_s_SIZE, lat_p50_SIZE, lat_p99_SIZE (us),
 * cpu_us_per_msg_SIZE (producer + consumer), alloc_calls_per_msg_SIZE (producer + consumer); rr_per_s_SIZE,
 * rr_p50_SIZE, rr_p99_SIZE (us), rr_alloc_calls_SIZE (client + server, per round trip); pub_msgs_per_s_SIZE,
 * pub_p50_SIZE, pub_p99_SIZE, pub_cpu_us_per_msg_SIZE, pub_alloc_calls_per_msg_SIZE (publisher + subscribers).
 */
#define _GNU_SOURCE
#include "zmq_bench.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

/* ---- allocator calls, counted: every malloc-family call of this process lands here ---- */
_Atomic uint64_t alloc_calls;
#define COUNT() atomic_fetch_add_explicit(&alloc_calls, 1, memory_order_relaxed)
void *malloc(size_t n) { COUNT(); return zc_malloc(n); }
void free(void *p) { if (p != NULL) COUNT(); zc_free(p); }
void *calloc(size_t c, size_t n) { COUNT(); return zc_calloc(c, n); }
void *realloc(void *p, size_t n) { COUNT(); return zc_realloc(p, n); }
int posix_memalign(void **o, size_t a, size_t n) { COUNT(); return zc_posix_memalign(o, a, n); }
void *aligned_alloc(size_t a, size_t n) { COUNT(); return zc_aligned_alloc(a, n); }
void *memalign(size_t a, size_t n) { COUNT(); return zc_memalign(a, n); }
size_t malloc_usable_size(void *p) { return zc_usable_size(p); }

uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t cpu_ns(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ull +
         (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
}

void die(const char *what, const char *detail) {
  fprintf(stderr, "zmq_bench: %s: %s (%s)\n", what, strerror(errno), detail ? detail : "");
  exit(1);
}

/* Instructions executed by this process and the threads it starts afterwards (libzmq's I/O thread). */
static int insn_open(void) {
  struct perf_event_attr a;
  memset(&a, 0, sizeof a);
  a.size = sizeof a;
  a.type = PERF_TYPE_HARDWARE;
  a.config = PERF_COUNT_HW_INSTRUCTIONS;
  a.inherit = 1;
  a.disabled = 1;
  return (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
}

static uint64_t insn_read(int fd) {
  uint64_t v = 0;
  if (fd < 0 || read(fd, &v, sizeof v) != (ssize_t)sizeof v) return 0;
  return v;
}

/* ---- payload: seq, send time, then a pattern; read back whole ---- */
void write_payload(void *p, size_t n, uint64_t seq, uint64_t t) {
  memcpy(p, &seq, 8);
  memcpy((char *)p + 8, &t, 8);
  memset((char *)p + 16, (int)(seq & 0xff), n - 16);
}

uint64_t read_payload(const void *p, size_t n, uint64_t *t) {
  uint64_t seq, sum = 0, w;
  memcpy(&seq, p, 8);
  memcpy(t, (const char *)p + 8, 8);
  for (size_t i = 16; i + 8 <= n; i += 8) memcpy(&w, (const char *)p + i, 8), sum += w;
  return seq + (sum & 1) * 0; /* the sum keeps the reads */
}

/* ---- one transport behind three small functions ---- */
enum { T_ZCMEM, T_PLAIN, T_CHANNEL, T_COUNT };
static const char *const tname[T_COUNT] = {"zcmem-zmq", "plain-zmq", "channel"};

typedef struct side_s {
  int t;
  zc_zmq_t *z;        /* T_ZCMEM */
  void *ctx, *sock;   /* T_PLAIN */
  char *buf;          /* T_PLAIN: the producer's own message buffer */
  zc_chan_t *ch;      /* T_CHANNEL */
} side_t;

static void produce(side_t *s, size_t n, uint64_t seq) {
  if (s->t == T_PLAIN) {
    write_payload(s->buf, n, seq, now_ns());
    zmq_msg_t m;
    zmq_msg_init_size(&m, n);
    memcpy(zmq_msg_data(&m), s->buf, n); /* the copy zcmem's transport avoids */
    if (zmq_msg_send(&m, s->sock, 0) < 0) die("zmq_msg_send", NULL);
    return;
  }
  void *p = s->t == T_ZCMEM ? zc_zmq_loan(s->z, n) : zc_chan_loan(s->ch, n);
  if (p == NULL) die("loan", NULL);
  write_payload(p, n, seq, now_ns());
  while ((s->t == T_ZCMEM ? zc_zmq_send(s->z, p, n, 1) : zc_chan_send(s->ch, p, n, 1)) != 0)
    if (errno != ETIMEDOUT) die("send", s->t == T_ZCMEM ? zc_zmq_error(s->z) : zc_chan_error(s->ch));
}

/* Receive one message, read it whole, give it back; returns its send time. */
static uint64_t consume(side_t *s, size_t n) {
  uint64_t t = 0;
  if (s->t == T_PLAIN) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, s->sock, 0) < 0 || zmq_msg_size(&m) != n) die("zmq_msg_recv", NULL);
    read_payload(zmq_msg_data(&m), n, &t);
    zmq_msg_close(&m);
    return t;
  }
  zc_chan_msg_t m;
  int rc = s->t == T_ZCMEM ? zc_zmq_receive(s->z, &m, 30000) : zc_chan_receive(s->ch, &m, 30000);
  if (rc != 0 || m.len != n) die("receive", NULL);
  read_payload(m.data, n, &t);
  if (s->t == T_ZCMEM)
    zc_zmq_release(s->z, &m);
  else
    zc_chan_release(s->ch, &m);
  return t;
}

/* ---- one run: a consumer child, this process produces ---- */
typedef struct result_s {
  double msgs_per_s, cpu_prod_us, cpu_cons_us, alloc_prod, alloc_cons, p50_us, p99_us, insn_prod, insn_cons;
} result_t;

typedef struct cons_report_s {
  uint64_t first_ns, last_ns, cpu_ns, allocs, insns;
  double p50_us, p99_us;
} cons_report_t;

int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void open_side(side_t *s, int t, int consumer, const char *ep, int chan_fd, char *ep_out) {
  memset(s, 0, sizeof *s);
  s->t = t;
  zc_zmq_config_t cfg = {.chan.block_timeout_ms = 30000, .chan.setup_timeout_ms = 30000, .linger_ms = 30000};
  if (t == T_ZCMEM) {
    s->z = consumer ? zc_zmq_bind("tcp://127.0.0.1:*", ZC_CHAN_CONSUMER, &cfg)
                    : zc_zmq_connect(ep, ZC_CHAN_PRODUCER, &cfg);
    if (s->z == NULL) die("open", ep);
    if (consumer) snprintf(ep_out, 256, "%s", zc_zmq_endpoint(s->z));
  } else if (t == T_PLAIN) {
    s->ctx = zmq_ctx_new();
    s->sock = zmq_socket(s->ctx, consumer ? ZMQ_PULL : ZMQ_PUSH);
    int hwm = 4096, linger = 30000;
    zmq_setsockopt(s->sock, consumer ? ZMQ_RCVHWM : ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s->sock, ZMQ_LINGER, &linger, sizeof linger);
    if (consumer) {
      if (zmq_bind(s->sock, "tcp://127.0.0.1:*") != 0) die("zmq_bind", NULL);
      size_t len = 256;
      zmq_getsockopt(s->sock, ZMQ_LAST_ENDPOINT, ep_out, &len);
    } else if (zmq_connect(s->sock, ep) != 0) {
      die("zmq_connect", ep);
    }
    s->buf = malloc(1 << 20);
  } else {
    s->ch = zc_chan_open(chan_fd, consumer ? ZC_CHAN_CONSUMER : ZC_CHAN_PRODUCER, &cfg.chan);
    if (s->ch == NULL) die("zc_chan_open", NULL);
  }
}

static void close_side(side_t *s) {
  if (s->t == T_ZCMEM) {
    zc_zmq_close(s->z);
  } else if (s->t == T_PLAIN) {
    zmq_close(s->sock);
    zmq_ctx_term(s->ctx);
    free(s->buf);
  } else {
    zc_chan_close(s->ch);
  }
}

static result_t run(int t, size_t n, long count, long lat_count) {
  int rep[2], sv[2] = {-1, -1};
  if (pipe(rep) != 0) die("pipe", NULL);
  if (t == T_CHANNEL && socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) != 0) die("socketpair", NULL);
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) die("fork", NULL);
  if (pid == 0) { /* the consumer */
    close(rep[0]);
    if (sv[0] >= 0) close(sv[0]);
    char ep[256] = "";
    side_t s;
    int ifd = insn_open(); /* before the context exists: its I/O thread inherits the counter */
    if (t == T_CHANNEL && write(rep[1], ep, sizeof ep) != (ssize_t)sizeof ep) _exit(1); /* open waits */
    open_side(&s, t, 1, NULL, sv[1], ep);
    if (t != T_CHANNEL && write(rep[1], ep, sizeof ep) != (ssize_t)sizeof ep) _exit(1);
    cons_report_t r = {0};
    consume(&s, n); /* the first message starts the clocks */
    r.first_ns = now_ns();
    uint64_t c0 = cpu_ns(), a0 = atomic_load(&alloc_calls);
    if (ifd >= 0) ioctl(ifd, PERF_EVENT_IOC_ENABLE, 0);
    for (long i = 1; i < count; i++) consume(&s, n);
    if (ifd >= 0) ioctl(ifd, PERF_EVENT_IOC_DISABLE, 0);
    r.insns = insn_read(ifd);
    r.last_ns = now_ns();
    r.cpu_ns = cpu_ns() - c0;
    r.allocs = atomic_load(&alloc_calls) - a0;
    uint64_t *lat = malloc(sizeof *lat * (size_t)lat_count);
    for (long i = 0; i < lat_count; i++) {
      uint64_t sent = consume(&s, n);
      lat[i] = now_ns() - sent;
    }
    qsort(lat, (size_t)lat_count, sizeof *lat, cmp_u64);
    r.p50_us = lat[lat_count / 2] / 1e3;
    r.p99_us = lat[lat_count * 99 / 100] / 1e3;
    free(lat);
    if (write(rep[1], &r, sizeof r) != (ssize_t)sizeof r) _exit(1);
    close_side(&s);
    _exit(0);
  }
  close(rep[1]);
  if (sv[1] >= 0) close(sv[1]);
  char ep[256];
  if (read(rep[0], ep, sizeof ep) != (ssize_t)sizeof ep) die("consumer did not start", NULL);
  side_t s;
  int ifd = insn_open();
  open_side(&s, t, 0, ep, sv[0], NULL);
  uint64_t c0 = cpu_ns(), a0 = atomic_load(&alloc_calls);
  if (ifd >= 0) ioctl(ifd, PERF_EVENT_IOC_ENABLE, 0);
  for (long i = 0; i < count; i++) produce(&s, n, (uint64_t)i);
  if (t == T_ZCMEM)
    while (zc_zmq_collect(s.z) > 0) usleep(100);
  if (ifd >= 0) ioctl(ifd, PERF_EVENT_IOC_DISABLE, 0);
  uint64_t insns = insn_read(ifd);
  if (ifd >= 0) close(ifd);
  uint64_t cpu = cpu_ns() - c0, allocs = atomic_load(&alloc_calls) - a0;
  uint64_t pace = n >= (1 << 20) ? 2000000 : n >= 16384 ? 200000 : 100000; /* ns between latency probes */
  for (long i = 0; i < lat_count; i++) {
    uint64_t t0 = now_ns();
    produce(&s, n, (uint64_t)(count + i));
    while (now_ns() - t0 < pace) {
    }
  }
  cons_report_t r;
  if (read(rep[0], &r, sizeof r) != (ssize_t)sizeof r) die("consumer report", NULL);
  int st;
  waitpid(pid, &st, 0);
  zc_chan_stats_t cs = {0};
  if (t == T_ZCMEM) zc_zmq_stats(s.z, &cs);
  close_side(&s);
  close(rep[0]);
  result_t res = {0};
  res.msgs_per_s = (double)(count - 1) * 1e9 / (double)(r.last_ns - r.first_ns);
  res.cpu_prod_us = cpu / 1e3 / (double)count;
  res.cpu_cons_us = r.cpu_ns / 1e3 / (double)(count - 1);
  /* zcmem-zmq: the loan's zc_malloc and libzmq's zc_free of it (not seen by the counting malloc) */
  res.alloc_prod = (double)allocs / (double)count + (t == T_ZCMEM ? 2.0 * (double)cs.returned / (double)(count + lat_count) : 0);
  res.alloc_cons = (double)r.allocs / (double)(count - 1);
  res.insn_prod = insns ? (double)insns / (double)count : -1;
  res.insn_cons = r.insns ? (double)r.insns / (double)(count - 1) : -1;
  res.p50_us = r.p50_us;
  res.p99_us = r.p99_us;
  return res;
}

/* The suite's lines (bench/common.h's protocol, bench/suite.py entry "zmq"): the transport is the variant,
 * the size is in the metric's name, so bench/run puts the three transports side by side per size. */
void zcbench(const char *transport, size_t size, const char *metric, double v, const char *unit, int higher) {
  printf("zcbench bench=zmq variant=%s metric=%s_%zu value=%.6g unit=%s better=%s\n", transport, metric, size, v,
         unit, higher ? "higher" : "lower");
}

/* ---- request/response round trips: zc_eps_* over tcp:// (ZeroMQ) and over a local name (the channel
 * services), against plain libzmq DEALER/ROUTER with a copy into zmq_msg_init_size each way ---- */
enum { R_ZCMEM, R_PLAIN, R_LOCAL, R_COUNT };
static const char *const rname[R_COUNT] = {"zcmem-zmq", "plain-zmq", "channel"};

typedef struct rr_report_s {
  uint64_t cpu_ns, allocs, replies;
} rr_report_t;

typedef struct rr_result_s {
  double rt_per_s, p50_us, p99_us, cpu_client_us, cpu_server_us, alloc_client, alloc_server;
} rr_result_t;

static void rr_server(int t, size_t n, long total, int fd) {
  char ep[256] = "";
  zc_eps_t *e = NULL;
  void *ctx = NULL, *sock = NULL;
  char *buf = NULL;
  zc_eps_config_t cfg = {.svc.chan.block_timeout_ms = 30000};
  if (t == R_PLAIN) {
    ctx = zmq_ctx_new();
    sock = zmq_socket(ctx, ZMQ_ROUTER);
    if (zmq_bind(sock, "tcp://127.0.0.1:*") != 0) die("zmq_bind", NULL);
    size_t len = sizeof ep;
    zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, ep, &len);
    buf = malloc(n);
  } else {
    if (t == R_LOCAL) snprintf(ep, sizeof ep, "zcmem-bench-%d", (int)getpid());
    e = zc_eps_listen(t == R_LOCAL ? ep : "tcp://127.0.0.1:*", &cfg);
    if (e == NULL) die("zc_eps_listen", ep);
    snprintf(ep, sizeof ep, "%s", zc_eps_endpoint(e));
  }
  if (write(fd, ep, sizeof ep) != (ssize_t)sizeof ep) _exit(1);
  rr_report_t r = {0};
  uint64_t c0 = 0, a0 = 0, tm;
  for (long i = 0; i < total; i++) {
    if (i == 1) c0 = cpu_ns(), a0 = atomic_load(&alloc_calls); /* the first one waits for the client */
    if (t == R_PLAIN) {
      zmq_msg_t rid, m;
      zmq_msg_init(&rid);
      zmq_msg_init(&m);
      if (zmq_msg_recv(&rid, sock, 0) < 0 || zmq_msg_recv(&m, sock, 0) < 0 || zmq_msg_size(&m) != n)
        die("server recv", NULL);
      uint64_t seq = read_payload(zmq_msg_data(&m), n, &tm);
      zmq_msg_close(&m);
      write_payload(buf, n, seq, tm);
      zmq_msg_init_size(&m, n);
      memcpy(zmq_msg_data(&m), buf, n); /* the copy zcmem's loans avoid */
      if (zmq_msg_send(&rid, sock, ZMQ_SNDMORE) < 0 || zmq_msg_send(&m, sock, 0) < 0) die("server send", NULL);
      continue;
    }
    zc_svc_msg_t req;
    if (zc_eps_receive(e, &req, 30000) != 0 || req.len != n) die("server receive", zc_eps_error(e));
    uint64_t seq = read_payload(req.data, n, &tm);
    void *p = zc_eps_loan_reply(e, &req, n);
    if (p == NULL) die("loan_reply", zc_eps_error(e));
    write_payload(p, n, seq, tm);
    if (zc_eps_reply(e, &req, p, n, 2) != 0) die("reply", zc_eps_error(e));
  }
  r.cpu_ns = cpu_ns() - c0;
  r.allocs = atomic_load(&alloc_calls) - a0;
  if (e != NULL) {
    zc_svc_stats_t st;
    zc_eps_stats(e, &st);
    r.replies = st.replies;
  }
  if (write(fd, &r, sizeof r) != (ssize_t)sizeof r) _exit(1);
  if (t == R_PLAIN) {
    zmq_close(sock);
    zmq_ctx_term(ctx);
  } else {
    zc_svc_msg_t m;
    zc_eps_receive(e, &m, 5000); /* the client's goodbye or its end, then close */
    zc_eps_close(e);
  }
}

static rr_result_t rr_run(int t, size_t n, long count) {
  long warm = 50, total = warm + count;
  int rep[2];
  if (pipe(rep) != 0) die("pipe", NULL);
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) die("fork", NULL);
  if (pid == 0) {
    close(rep[0]);
    rr_server(t, n, total, rep[1]);
    _exit(0);
  }
  close(rep[1]);
  char ep[256];
  if (read(rep[0], ep, sizeof ep) != (ssize_t)sizeof ep) die("server did not start", NULL);
  zc_eps_t *e = NULL;
  void *ctx = NULL, *sock = NULL;
  char *buf = NULL;
  zc_eps_config_t cfg = {.svc.chan.block_timeout_ms = 30000, .svc.connect_timeout_ms = 30000};
  if (t == R_PLAIN) {
    ctx = zmq_ctx_new();
    sock = zmq_socket(ctx, ZMQ_DEALER);
    if (zmq_connect(sock, ep) != 0) die("zmq_connect", ep);
    buf = malloc(n);
  } else if ((e = zc_eps_connect(ep, &cfg)) == NULL) {
    die("zc_eps_connect", ep);
  }
  uint64_t *lat = malloc(sizeof *lat * (size_t)count), c0 = 0, a0 = 0, start = 0, tm;
  for (long i = 0; i < total; i++) {
    if (i == warm) c0 = cpu_ns(), a0 = atomic_load(&alloc_calls), start = now_ns();
    uint64_t t0 = now_ns();
    if (t == R_PLAIN) {
      write_payload(buf, n, (uint64_t)i, t0);
      zmq_msg_t m;
      zmq_msg_init_size(&m, n);
      memcpy(zmq_msg_data(&m), buf, n);
      if (zmq_msg_send(&m, sock, 0) < 0) die("client send", NULL);
      zmq_msg_init(&m);
      if (zmq_msg_recv(&m, sock, 0) < 0 || zmq_msg_size(&m) != n) die("client recv", NULL);
      read_payload(zmq_msg_data(&m), n, &tm);
      zmq_msg_close(&m);
    } else {
      void *p = zc_eps_loan(e, n);
      if (p == NULL) die("loan", zc_eps_error(e));
      write_payload(p, n, (uint64_t)i, t0);
      zc_svc_msg_t rep;
      if (zc_eps_call(e, p, n, 1, &rep, 30000) != 0 || rep.len != n) die("call", zc_eps_error(e));
      read_payload(rep.data, n, &tm);
      zc_eps_release(e, &rep);
    }
    if (i >= warm) lat[i - warm] = now_ns() - t0;
  }
  uint64_t wall = now_ns() - start, cpu = cpu_ns() - c0, allocs = atomic_load(&alloc_calls) - a0;
  rr_report_t r;
  if (read(rep[0], &r, sizeof r) != (ssize_t)sizeof r) die("server report", NULL);
  rr_result_t res = {0};
  uint64_t requests = 0;
  if (t == R_PLAIN) {
    zmq_close(sock);
    zmq_ctx_term(ctx);
    free(buf);
  } else {
    zc_svc_stats_t st;
    zc_eps_stats(e, &st);
    requests = st.requests;
    void *p = zc_eps_loan(e, 16);
    if (p != NULL) zc_eps_send(e, p, 16, 3);
    zc_eps_close(e);
  }
  int st;
  waitpid(pid, &st, 0);
  close(rep[0]);
  qsort(lat, (size_t)count, sizeof *lat, cmp_u64);
  res.rt_per_s = (double)count * 1e9 / (double)wall;
  res.p50_us = lat[count / 2] / 1e3;
  res.p99_us = lat[count * 99 / 100] / 1e3;
  free(lat);
  res.cpu_client_us = cpu / 1e3 / (double)count;
  res.cpu_server_us = r.cpu_ns / 1e3 / (double)(total - 1);
  /* zcmem-zmq: each loan's zc_malloc and libzmq's zc_free of it, besides the counted malloc calls */
  int loans = t == R_ZCMEM;
  res.alloc_client = ((double)allocs + (loans ? 2.0 * (double)requests * count / total : 0)) / (double)count;
  res.alloc_server = ((double)r.allocs + (loans ? 2.0 * (double)r.replies * (total - 1) / total : 0)) / (double)(total - 1);
  return res;
}

static void rr_table(int quick, const char *only, size_t only_size) {
  static const size_t sizes[] = {64, 16384, 1 << 20};
  long counts[] = {quick ? 3000 : 20000, quick ? 2000 : 10000, quick ? 100 : 500};
  printf("\nRequest/response (one call at a time, request and reply of the same size):\n\n"
         "| transport | size | round trips/s | p50 us | p99 us | CPU us/rt client | server | "
         "alloc calls/rt client | server |\n|---|---|---|---|---|---|---|---|---|\n");
  for (int k = 0; k < 3; k++)
    for (int t = 0; t < R_COUNT; t++) {
      if ((only != NULL && strcmp(only, rname[t]) != 0) || (only_size != 0 && only_size != sizes[k])) continue;
      rr_result_t r = rr_run(t, sizes[k], counts[k]);
      printf("| %s | %zu | %.0f | %.1f | %.1f | %.2f | %.2f | %.2f | %.2f |\n", rname[t], sizes[k], r.rt_per_s,
             r.p50_us, r.p99_us, r.cpu_client_us, r.cpu_server_us, r.alloc_client, r.alloc_server);
      zcbench(rname[t], sizes[k], "rr_per_s", r.rt_per_s, "rt/s", 1);
      zcbench(rname[t], sizes[k], "rr_p50", r.p50_us, "us", 0);
      zcbench(rname[t], sizes[k], "rr_p99", r.p99_us, "us", 0);
      zcbench(rname[t], sizes[k], "rr_alloc_calls", r.alloc_client + r.alloc_server, "calls/rt", 0);
      fflush(stdout);
    }
}

int main(int argc, char **argv) {
  int quick = 0, lat_on = 1, mode = 7; /* 1: one-way, 2: request/response, 4: fan-out */
  const char *only = NULL;
  size_t only_size = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-q") == 0)
      quick = 1;
    else if (strncmp(argv[i], "only=", 5) == 0)
      only = argv[i] + 5;
    else if (strncmp(argv[i], "size=", 5) == 0)
      only_size = (size_t)atol(argv[i] + 5);
    else if (strcmp(argv[i], "lat=0") == 0)
      lat_on = 0;
    else if (strcmp(argv[i], "oneway") == 0)
      mode = 1;
    else if (strcmp(argv[i], "rr") == 0)
      mode = 2;
    else if (strcmp(argv[i], "pub") == 0)
      mode = 4;
    else {
      fprintf(stderr, "usage: zmq_bench [-q] [only=zcmem-zmq|plain-zmq|channel] [size=BYTES] [lat=0] [oneway|rr|pub]\n");
      return 2;
    }
  }
  static const size_t sizes[] = {64, 16384, 1 << 20};
  long counts[] = {quick ? 50000 : 200000, quick ? 10000 : 50000, quick ? 300 : 1000};
  long lats[] = {quick ? 500 : 2000, quick ? 500 : 2000, quick ? 100 : 300};
  if (mode & 1)
    printf("| transport | size | msgs/s | MB/s | p50 us | p99 us | CPU us/msg prod | cons | insns/msg prod | cons | "
           "alloc calls/msg prod | cons |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (int k = 0; k < 3 && (mode & 1); k++)
    for (int t = 0; t < T_COUNT; t++) {
      if ((only != NULL && strcmp(only, tname[t]) != 0) || (only_size != 0 && only_size != sizes[k])) continue;
      if (!lat_on) lats[k] = 2;
      if (t == T_CHANNEL && sizes[k] > ZC_CHAN_MAX_MSG) {
        printf("| %s | %zu | - | - | - | - | - | - | - | - | - | - |\n", tname[t], sizes[k]);
        continue;
      }
      result_t r = run(t, sizes[k], counts[k], lats[k]);
      char ip[32] = "-", ic[32] = "-";
      if (r.insn_prod > 0) snprintf(ip, sizeof ip, "%.0f", r.insn_prod);
      if (r.insn_cons > 0) snprintf(ic, sizeof ic, "%.0f", r.insn_cons);
      printf("| %s | %zu | %.0f | %.0f | %.1f | %.1f | %.2f | %.2f | %s | %s | %.2f | %.2f |\n", tname[t],
             sizes[k], r.msgs_per_s, r.msgs_per_s * (double)sizes[k] / 1e6, r.p50_us, r.p99_us, r.cpu_prod_us,
             r.cpu_cons_us, ip, ic, r.alloc_prod, r.alloc_cons);
      zcbench(tname[t], sizes[k], "msgs_per_s", r.msgs_per_s, "msgs/s", 1);
      if (lat_on) {
        zcbench(tname[t], sizes[k], "lat_p50", r.p50_us, "us", 0);
        zcbench(tname[t], sizes[k], "lat_p99", r.p99_us, "us", 0);
      }
      zcbench(tname[t], sizes[k], "cpu_us_per_msg", r.cpu_prod_us + r.cpu_cons_us, "us/msg", 0);
      zcbench(tname[t], sizes[k], "alloc_calls_per_msg", r.alloc_prod + r.alloc_cons, "calls/msg", 0);
      fflush(stdout);
    }
  if (mode & 2) rr_table(quick, only, only_size);
  if (mode & 4) pub_table(quick, only, only_size);
  return 0;
}
