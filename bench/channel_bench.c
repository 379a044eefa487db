/* channel_bench: the zero-copy channel against a plain UNIX-socket copy, two processes, same run.
 *
 * For 64 B, 1 KiB, 16 KiB and 1 MiB messages (1 MiB: a run of whole pages, above the largest size class)
 * it measures
 *   - one-way latency (p50, p99, max): from just before send/write in the producer to the moment the
 *     consumer holds the whole message (receive returned / read returned every byte); the producer waits
 *     for each message to come back before sending the next, so no queueing is measured. "polled": the
 *     consumer spins (zc_chan_receive with timeout 0 / recv MSG_DONTWAIT); "blocking": it sleeps (futex
 *     with no spin / blocking read) and the producer pauses 50 us between messages so it is asleep;
 *   - throughput (messages/s, GB/s) from one producer thread (send, and send_batch of 32), and from two
 *     producer threads on one channel (64 B).
 * In every case the producer writes each payload once (a sequence word, then a byte pattern) and the
 * consumer reads every byte (a checksum it verifies), so the comparison is writes-once/reads-once on the
 * channel against write() + read() copies on the socket. Kernel copies are counted: both processes read
 * their rchar + wchar (/proc/self/io: bytes the kernel copied for read/write) around each throughput run,
 * divided by the payload bytes sent: about 2 for the socket (in and out of the kernel), 0 for the channel.
 * That 0 says only that no payload goes through a system call; it cannot see a memcpy in user space. That
 * the channel's library code copies no payload is shown by test channel_rewrite (the consumer reads the
 * loan's own bytes, at the loan's own offset, including a change made after send), not by this figure.
 * It also reports the allocator's waste for uniformly random sizes from 100 B to 16 KiB.
 *
 * Usage: channel_bench [-q] [--table] [runs=3] [n64=..] [n1k=..] [n16k=..] [n1m=..] [lat=..] [size=..] [what=thr|lat]
 *                      [ring=N] [queued=BYTES] (producer configuration; defaults are the library's)
 *                      [pin=1] (producer on CPU 0, consumer on CPU 1; pin=0 leaves it to the scheduler)
 * Prints zcbench lines (medians of `runs` throughput runs; latency percentiles over all samples).
 *
 * what=fanout [size=64|16384]: messages/s from one publisher (zc_pub_*) to 1, 2 and 4 subscriber processes,
 * each reading every byte of every message, beside the one-way channel in the same run (n64= / n16k=).
 * With subs=K only that fan-out, and what=oneway only the one-way channel's send throughput (size=S,
 * n=N messages): one measurement per process, so its CPU time per message can be read from outside
 * (bench/channel_patterns.py does).
 *
 * what=icount size=S n=N: no measurement of its own; one process runs N round trips of the message path
 * (loan, write 8 bytes, send; receive, read 1 byte, release) with no waiting, for an instruction count:
 *   valgrind --tool=callgrind channel_bench what=icount size=64 n=20000   (then n=40000)
 * (the difference of the two totals / 20000 is the library's instructions per message, setup excluded).
 * With subs=K (1..8) the same goes through a publisher (zc_pub_*) to K subscribers, each receiving and
 * releasing every message. batch=B (1..64, fan-out only, here and in what=fanout): the publisher sends B
 * messages per zc_pub_send_batch and each subscriber receives and releases them in batches of B.
 */
#define _GNU_SOURCE
#include "zcmem_channel.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
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
  fprintf(stderr, "channel_bench: %s: %s\n", what, strerror(errno));
  exit(1);
}

/* ---- payloads: written once by the producer, read once by the consumer ---- */
static void write_payload(void *p, size_t n, uint64_t seq) {
  memcpy(p, &seq, 8);
  memset((char *)p + 8, (int)(seq & 0xff), n - 8);
}

/* Reads every byte; returns 0 if the payload is the one write_payload(seq) wrote. */
static int read_payload(const void *p, size_t n, uint64_t seq) {
  uint64_t s, sum = 0, word;
  memcpy(&s, p, 8);
  const unsigned char *b = (const unsigned char *)p + 8;
  size_t i = 0;
  for (; i + 8 <= n - 8; i += 8) {
    memcpy(&word, b + i, 8);
    sum += word;
  }
  for (; i < n - 8; i++) sum += b[i];
  uint64_t pat = (seq & 0xff) * 0x0101010101010101ull, words = (n - 8) / 8, tail = (n - 8) % 8;
  uint64_t want = pat * words + (seq & 0xff) * tail;
  return s == seq && sum == want ? 0 : -1;
}

/* Bytes this process moved through read()/write() so far (/proc/self/io rchar + wchar): the kernel copies
 * every one of them. (send/recv/sendmsg are not counted there, which is why the socket baseline uses
 * read and write; the channel's socket only ever carries 32-byte records.) */
static uint64_t io_bytes(void) {
  FILE *f = fopen("/proc/self/io", "r");
  if (f == NULL) return 0;
  char line[128];
  uint64_t sum = 0;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "rchar:", 6) == 0 || strncmp(line, "wchar:", 6) == 0) sum += strtoull(line + 6, NULL, 10);
  fclose(f);
  return sum;
}

/* Keep the producer and the consumer on different CPUs (pin=0 turns it off): a cross-core hand-off is
 * what is measured, and on a busy machine two spinning processes sharing a core measure the scheduler. */
static int pin = 1;
static void pin_to(int cpu) { /* cpu < 0: any CPU */
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  if (!pin || ncpu < 2) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  for (long c = 0; c < ncpu; c++)
    if (cpu < 0 || c == cpu) CPU_SET((int)c, &set);
  sched_setaffinity(0, sizeof set, &set); /* best effort */
}

/* ---- child process plumbing ---- */
typedef struct result_s {
  uint64_t t_end, count, bad, io;
  uint64_t p50, p99, max;
} result_t;

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void percentiles(uint64_t *v, size_t n, result_t *r) {
  qsort(v, n, sizeof *v, cmp_u64);
  r->p50 = v[n / 2];
  r->p99 = v[(n * 99) / 100];
  r->max = v[n - 1];
}

static int res_pipe[2];
static void send_result(const result_t *r) {
  if (write(res_pipe[1], r, sizeof *r) != sizeof *r) die("result pipe");
}
static result_t get_result(void) {
  result_t r;
  if (read(res_pipe[0], &r, sizeof r) != sizeof r) die("result pipe (consumer failed)");
  return r;
}

/* ---- the channel ---- */
enum { MODE_THR, MODE_THR_BATCH, MODE_THR_MT, MODE_LAT_POLL, MODE_LAT_BLOCK };

static void chan_consumer(int fd, int mode, size_t size, uint64_t n) {
  zc_chan_config_t cfg = {.spin_ns = mode == MODE_LAT_BLOCK ? -1 : 0};
  zc_chan_t *ch = zc_chan_open(fd, ZC_CHAN_CONSUMER, &cfg);
  if (ch == NULL) die("consumer open");
  result_t r = {0};
  uint64_t *lat = mode >= MODE_LAT_POLL ? malloc(n * sizeof *lat) : NULL;
  zc_chan_msg_t m[64];
  uint64_t next[3] = {0, 0, 0}, io0 = io_bytes();
  while (r.count < n) {
    int k;
    if (mode == MODE_LAT_POLL) {
      while ((k = zc_chan_receive_batch(ch, m, 1, 0)) < 0 && errno == EAGAIN) {
      }
    } else {
      k = zc_chan_receive_batch(ch, m, 64, -1);
    }
    if (k < 0) die("receive");
    if (lat) {
      uint64_t t1 = now_ns(), t0;
      memcpy(&t0, (const char *)m[0].data + 8, 8);
      lat[r.count] = t1 - t0;
    }
    for (int i = 0; i < k; i++) {
      if (lat) { /* the timestamp sits in the payload: check the sequence word only */
        uint64_t s;
        memcpy(&s, m[i].data, 8);
        r.bad += s != r.count + (uint64_t)i;
      } else {
        uint32_t t = m[i].type; /* several producer threads: one sequence per thread */
        r.bad += m[i].len != size || t > 2 || read_payload(m[i].data, m[i].len, next[t]++) != 0;
      }
    }
    zc_chan_release_batch(ch, m, k);
    r.count += (uint64_t)k;
  }
  r.t_end = now_ns();
  r.io = io_bytes() - io0;
  if (lat) percentiles(lat, n, &r);
  send_result(&r);
  zc_chan_msg_t last;
  while (zc_chan_receive(ch, &last, 10000) == 0) zc_chan_release(ch, &last);
  zc_chan_close(ch);
  free(lat);
}

typedef struct prod_arg_s {
  zc_chan_t *ch;
  size_t size;
  uint64_t n;
  uint32_t type;
} prod_arg_t;

static void *chan_produce(void *arg) {
  prod_arg_t *a = arg;
  for (uint64_t i = 0; i < a->n; i++) {
    void *p = zc_chan_loan(a->ch, a->size);
    if (p == NULL) die("loan");
    write_payload(p, a->size, i);
    if (zc_chan_send(a->ch, p, a->size, a->type) != 0) die("send");
  }
  return NULL;
}

static void pause_ns(uint64_t ns) {
  struct timespec ts = {0, (long)ns};
  nanosleep(&ts, NULL);
}

static double last_wakes;  /* producer wake-up system calls per message in the last channel run */
static double last_copies; /* payload bytes copied by the kernel per payload byte, last run */
static zc_chan_config_t prod_cfg; /* ring=N, queued=BYTES set ring_entries, max_queued_bytes */

static result_t run_chan(int mode, size_t size, uint64_t n, double *secs) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0 || pipe(res_pipe) != 0) die("socketpair");
  pid_t pid = fork();
  if (pid == 0) {
    pin_to(1);
    close(sv[0]);
    chan_consumer(sv[1], mode, size, n);
    _exit(0);
  }
  close(sv[1]);
  zc_chan_t *ch = zc_chan_open(sv[0], ZC_CHAN_PRODUCER, &prod_cfg);
  if (ch == NULL) die("producer open");
  uint64_t io0 = io_bytes(), t0 = now_ns();
  if (mode == MODE_THR) {
    prod_arg_t a = {ch, size, n, 0};
    chan_produce(&a);
  } else if (mode == MODE_THR_MT) {
    prod_arg_t a[2] = {{ch, size, n / 2, 1}, {ch, size, n - n / 2, 2}};
    pthread_t t;
    pin_to(-1); /* two producer threads: let the scheduler place them */
    pthread_create(&t, NULL, chan_produce, &a[1]);
    chan_produce(&a[0]);
    pthread_join(t, NULL);
    pin_to(0);
  } else if (mode == MODE_THR_BATCH) {
    zc_chan_msg_t m[32];
    for (uint64_t i = 0; i < n; i += 32) {
      int k = n - i < 32 ? (int)(n - i) : 32;
      for (int j = 0; j < k; j++) {
        void *p = zc_chan_loan(ch, size);
        if (p == NULL) die("loan");
        write_payload(p, size, i + (uint64_t)j);
        m[j] = (zc_chan_msg_t){p, (uint32_t)size, 0, 0};
      }
      if (zc_chan_send_batch(ch, m, k) != k) die("send_batch");
    }
  } else {
    for (uint64_t i = 0; i < n; i++) {
      char *p = zc_chan_loan(ch, size);
      if (p == NULL) die("loan");
      write_payload(p, size, i);
      uint64_t ts = now_ns();
      memcpy(p + 8, &ts, 8); /* the timestamp is the last thing written before send */
      if (zc_chan_send(ch, p, size, 0) != 0) die("send");
      while (zc_chan_collect(ch) > 0) /* wait for it to come back: no queueing in the figures */
        sched_yield();                  /* (the wait is not measured; let a spinning consumer run) */
      if (mode == MODE_LAT_BLOCK) pause_ns(50000);
    }
  }
  uint64_t io = io_bytes() - io0;
  result_t r = get_result();
  *secs = (double)(r.t_end - t0) / 1e9;
  last_copies = (double)(io + r.io) / ((double)n * (double)size);
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  last_wakes = (double)st.wakes / (double)n;
  zc_chan_close(ch); /* the consumer sees end of file and exits */
  waitpid(pid, NULL, 0);
  close(res_pipe[0]);
  close(res_pipe[1]);
  return r;
}

static int table;
static int cmp_d(const void *a, const void *b);
static void report(const char *metric, double v, const char *unit, int higher);
static double throughput(int chan, int mode, size_t size, uint64_t n, int runs);

/* ---- fan-out (what=fanout): one publisher, subs subscriber processes; each reads every byte ---- */
static int pub_batch = 1; /* batch=B: messages per zc_pub_send_batch (1: zc_pub_send) */

/* Loan, fill and send messages first..first+k-1 (k <= 64) to subs subscribers. */
static void pub_send_some(zc_pub_t *p, size_t size, uint64_t first, int k, int subs) {
  zc_chan_msg_t m[64];
  for (int j = 0; j < k; j++) {
    void *q = zc_pub_loan(p, size);
    if (q == NULL) die("zc_pub_loan");
    write_payload(q, size, first + (uint64_t)j);
    m[j] = (zc_chan_msg_t){q, (uint32_t)size, 0, 0};
  }
  if (k == 1 && pub_batch == 1) {
    if (zc_pub_send(p, (void *)m[0].data, size, 0) != subs) die("zc_pub_send");
  } else if (zc_pub_send_batch(p, m, k) != k) {
    die("zc_pub_send_batch");
  }
}
static double run_fanout(int subs, size_t size, uint64_t n) {
  if (pipe(res_pipe) != 0) die("pipe");
  zc_chan_config_t cfg = prod_cfg;
  cfg.block_timeout_ms = -1; /* a loaded machine may not schedule a subscriber for a second */
  zc_pub_t *p = zc_pub_listen(NULL, &cfg);
  if (p == NULL) die("zc_pub_listen");
  pid_t pids[16];
  for (int i = 0; i < subs; i++) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) die("socketpair");
    pids[i] = fork();
    if (pids[i] == 0) {
      pin_to(1); /* as the one-way consumer: the publisher on CPU 0, every subscriber on CPU 1 */
      close(sv[0]);
      chan_consumer(sv[1], MODE_THR, size, n);
      _exit(0);
    }
    close(sv[1]);
    if (zc_pub_add(p, sv[0]) != i + 1) die("zc_pub_add");
  }
  uint64_t t0 = now_ns();
  for (uint64_t i = 0; i < n; i += (uint64_t)pub_batch) {
    int k = n - i < (uint64_t)pub_batch ? (int)(n - i) : pub_batch;
    pub_send_some(p, size, i, k, subs);
  }
  uint64_t t_end = 0, bad = 0;
  for (int i = 0; i < subs; i++) {
    result_t r = get_result();
    if (r.t_end > t_end) t_end = r.t_end;
    bad += r.bad;
  }
  if (bad) fprintf(stderr, "channel_bench: %lu bad payloads (fan-out)\n", (unsigned long)bad), exit(1);
  zc_pub_close(p); /* the subscribers see end of file and exit */
  for (int i = 0; i < subs; i++) waitpid(pids[i], NULL, 0);
  close(res_pipe[0]);
  close(res_pipe[1]);
  return (double)n / ((double)(t_end - t0) / 1e9);
}

/* Messages published per second (each read in full by every subscriber), median of runs, for 1, 2 and 4
 * subscribers, beside the one-way channel of the same run. */
static void fanout_table(size_t only, uint64_t n64, uint64_t n16k, int runs) {
  static const size_t sizes[2] = {64, 16384};
  static const int subs[3] = {1, 2, 4};
  for (int s = 0; s < 2; s++) {
    size_t size = sizes[s];
    uint64_t n = s == 0 ? n64 : n16k;
    if (only && only != size) continue;
    char m[64];
    snprintf(m, sizeof m, "chan_msgs_per_s_%zu", size);
    double one = throughput(1, MODE_THR, size, n, runs);
    report(m, one, "msgs/s", 1);
    double v[3];
    for (int k = 0; k < 3; k++) {
      double r[16];
      for (int i = 0; i < runs; i++) r[i] = run_fanout(subs[k], size, n);
      qsort(r, (size_t)runs, sizeof r[0], cmp_d);
      v[k] = r[runs / 2];
      snprintf(m, sizeof m, "fanout_msgs_per_s_%zu_%dsubs", size, subs[k]);
      report(m, v[k], "msgs/s", 1);
    }
    if (table)
      printf("| %zu B | %.2f M | %.2f M | %.2f M | %.2f M |\n", size, one / 1e6, v[0] / 1e6, v[1] / 1e6, v[2] / 1e6);
  }
}

/* ---- the baseline: write()/read() over a UNIX stream socketpair ---- */
static int read_full(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char *)buf + got, n - got); /* O_NONBLOCK in polled mode: spins on EAGAIN */
    if (r > 0) got += (size_t)r;
    else if (r == 0) return -1;
    else if (errno != EAGAIN && errno != EINTR) return -1;
  }
  return 0;
}

static void write_full(int fd, const void *buf, size_t n) {
  size_t put = 0;
  while (put < n) {
    ssize_t r = write(fd, (const char *)buf + put, n - put);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) die("write");
    put += (size_t)r;
  }
}

static result_t run_sock(int mode, size_t size, uint64_t n, double *secs) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 || pipe(res_pipe) != 0) die("socketpair");
  pid_t pid = fork();
  if (pid == 0) {
    pin_to(1);
    close(sv[0]);
    char *buf = malloc(size);
    result_t r = {0};
    uint64_t *lat = mode >= MODE_LAT_POLL ? malloc(n * sizeof *lat) : NULL;
    if (mode == MODE_LAT_POLL) fcntl(sv[1], F_SETFL, O_NONBLOCK);
    uint64_t io0 = io_bytes();
    for (; r.count < n; r.count++) {
      if (read_full(sv[1], buf, size) != 0) die("read");
      if (lat) {
        uint64_t t0, s;
        lat[r.count] = now_ns() - (memcpy(&t0, buf + 8, 8), t0);
        memcpy(&s, buf, 8);
        r.bad += s != r.count;
        write_full(sv[1], "a", 1);
      } else {
        r.bad += read_payload(buf, size, r.count) != 0;
      }
    }
    r.t_end = now_ns();
    r.io = io_bytes() - io0;
    if (lat) percentiles(lat, n, &r);
    send_result(&r);
    _exit(0);
  }
  close(sv[1]);
  char *buf = malloc(size);
  uint64_t io0 = io_bytes(), t0 = now_ns();
  for (uint64_t i = 0; i < n; i++) {
    write_payload(buf, size, i);
    if (mode >= MODE_LAT_POLL) {
      uint64_t ts = now_ns();
      memcpy(buf + 8, &ts, 8);
    }
    write_full(sv[0], buf, size);
    if (mode >= MODE_LAT_POLL) {
      char a;
      if (read_full(sv[0], &a, 1) != 0) die("ack");
      if (mode == MODE_LAT_BLOCK) pause_ns(50000);
    }
  }
  uint64_t io = io_bytes() - io0;
  result_t r = get_result();
  *secs = (double)(r.t_end - t0) / 1e9;
  last_copies = (double)(io + r.io) / ((double)n * (double)size);
  close(sv[0]);
  waitpid(pid, NULL, 0);
  free(buf);
  close(res_pipe[0]);
  close(res_pipe[1]);
  return r;
}

/* ---- allocator waste: random sizes 100 B .. 16 KiB, all loaned at once ---- */
static double measure_waste(double *seg_ratio) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) die("socketpair");
  pid_t pid = fork();
  if (pid == 0) {
    close(sv[0]);
    zc_chan_t *ch = zc_chan_open(sv[1], ZC_CHAN_CONSUMER, NULL);
    zc_chan_msg_t m;
    while (ch && zc_chan_receive(ch, &m, 10000) == 0) zc_chan_release(ch, &m);
    _exit(0);
  }
  close(sv[1]);
  zc_chan_t *ch = zc_chan_open(sv[0], ZC_CHAN_PRODUCER, NULL);
  if (ch == NULL) die("open");
  enum { K = 4000 };
  static void *p[K];
  uint64_t asked = 0, x = 88172645463325252ull;
  for (int i = 0; i < K; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    size_t n = 100 + x % (16384 - 100 + 1);
    asked += n;
    if ((p[i] = zc_chan_loan(ch, n)) == NULL) die("loan");
  }
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  *seg_ratio = (double)st.segment_bytes / (double)asked;
  for (int i = 0; i < K; i++) zc_chan_cancel(ch, p[i]);
  zc_chan_close(ch);
  waitpid(pid, NULL, 0);
  return (double)st.loaned_bytes / (double)asked - 1.0;
}

/* ---- instruction count of the message path (what=icount) ---- */
static int ic_sv[2];
static zc_chan_t *ic_cons;
static void *ic_open_consumer(void *arg) {
  (void)arg;
  ic_cons = zc_chan_open(ic_sv[1], ZC_CHAN_CONSUMER, NULL);
  return NULL;
}

/* The same through a publisher (zc_pub_*) with subs subscribers in this process: each receives and
 * releases every message. */
static int icount_fanout(size_t size, uint64_t n, int subs) {
  zc_pub_t *pub = zc_pub_listen(NULL, &prod_cfg);
  zc_chan_t *cons[8];
  if (pub == NULL || subs < 1 || subs > 8) die("zc_pub_listen");
  for (int k = 0; k < subs; k++) {
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ic_sv) != 0) die("socketpair");
    pthread_t t;
    pthread_create(&t, NULL, ic_open_consumer, NULL);
    if (zc_pub_add(pub, ic_sv[0]) != k + 1) die("zc_pub_add");
    pthread_join(t, NULL);
    if ((cons[k] = ic_cons) == NULL) die("open");
  }
  uint64_t sum = 0;
  for (uint64_t i = 0; i < n; i += (uint64_t)pub_batch) {
    zc_chan_msg_t b[64];
    for (int j = 0; j < pub_batch; j++) {
      char *p = zc_pub_loan(pub, size);
      if (p == NULL) die("loan");
      memcpy(p, &i, 8);
      b[j] = (zc_chan_msg_t){p, (uint32_t)size, 1, 0};
    }
    if (pub_batch == 1 ? zc_pub_send(pub, (void *)b[0].data, size, 1) != subs : zc_pub_send_batch(pub, b, pub_batch) != pub_batch)
      die("send");
    for (int k = 0; k < subs; k++) {
      zc_chan_msg_t m[64];
      int got = zc_chan_receive_batch(cons[k], m, pub_batch, 0);
      if (got != pub_batch) die("receive");
      for (int j = 0; j < got; j++) sum += *(const unsigned char *)m[j].data;
      zc_chan_release_batch(cons[k], m, got);
    }
  }
  printf("icount: %lu fan-out round trips of %zu B to %d subscribers (checksum %lu)\n", (unsigned long)n, size, subs,
         (unsigned long)sum);
  zc_pub_close(pub);
  for (int k = 0; k < subs; k++) zc_chan_close(cons[k]);
  return 0;
}

static int icount(size_t size, uint64_t n) {
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ic_sv) != 0) die("socketpair");
  pthread_t t;
  pthread_create(&t, NULL, ic_open_consumer, NULL); /* the handshake needs both ends at once */
  zc_chan_t *prod = zc_chan_open(ic_sv[0], ZC_CHAN_PRODUCER, &prod_cfg);
  pthread_join(t, NULL);
  if (prod == NULL || ic_cons == NULL) die("open");
  uint64_t sum = 0;
  for (uint64_t i = 0; i < n; i++) {
    char *p = zc_chan_loan(prod, size);
    if (p == NULL) die("loan");
    memcpy(p, &i, 8);
    if (zc_chan_send(prod, p, size, 1) != 0) die("send");
    zc_chan_msg_t m;
    if (zc_chan_receive(ic_cons, &m, 0) != 0) die("receive");
    sum += *(const unsigned char *)m.data;
    zc_chan_release(ic_cons, &m);
  }
  printf("icount: %lu round trips of %zu B (checksum %lu)\n", (unsigned long)n, size, (unsigned long)sum);
  zc_chan_close(prod);
  zc_chan_close(ic_cons);
  return 0;
}

/* ---- driver ---- */
enum { NSIZES = 4 };
typedef struct row_s {
  char name[64];
  double v;
  const char *unit;
  int higher;
} row_t;
static row_t rows[128];
static int nrows;

/* "chan_X" and "sock_X" become metric X of variant channel / socket, so the suite runner puts the two
 * transports side by side; metrics of the channel alone keep their name under variant channel. */
static void report(const char *metric, double v, const char *unit, int higher) {
  const char *variant = "channel";
  if (strncmp(metric, "chan_", 5) == 0) metric += 5;
  else if (strncmp(metric, "sock_", 5) == 0) metric += 5, variant = "socket";
  printf("zcbench bench=channel variant=%s metric=%s value=%.6g unit=%s better=%s\n", variant, metric, v, unit,
         higher ? "higher" : "lower");
  row_t *r = &rows[nrows++ % 128];
  snprintf(r->name, sizeof r->name, "%s", metric);
  r->v = v;
  r->unit = unit;
  r->higher = higher;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double throughput(int chan, int mode, size_t size, uint64_t n, int runs) {
  double v[16];
  for (int i = 0; i < runs; i++) {
    double secs;
    result_t r = chan ? run_chan(mode, size, n, &secs) : run_sock(mode, size, n, &secs);
    if (r.bad) fprintf(stderr, "channel_bench: %lu bad payloads\n", (unsigned long)r.bad), exit(1);
    v[i] = (double)n / secs;
  }
  qsort(v, (size_t)runs, sizeof v[0], cmp_d);
  return v[runs / 2];
}

static void latency(int chan, int mode, size_t size, uint64_t n, const char *tag) {
  double secs;
  result_t r = chan ? run_chan(mode, size, n, &secs) : run_sock(mode, size, n, &secs);
  if (r.bad) fprintf(stderr, "channel_bench: %lu bad payloads\n", (unsigned long)r.bad), exit(1);
  char m[64];
  snprintf(m, sizeof m, "%s_p50_%zu", tag, size);
  report(m, (double)r.p50, "ns", 0);
  snprintf(m, sizeof m, "%s_p99_%zu", tag, size);
  report(m, (double)r.p99, "ns", 0);
  snprintf(m, sizeof m, "%s_max_%zu", tag, size);
  report(m, (double)r.max, "ns", 0);
}

int main(int argc, char **argv) {
  int quick = 0, runs = 3, do_thr = 1, do_lat = 1, do_icount = 0, do_fanout = 0, do_oneway = 0, ic_subs = 0, ic_n_set = 0;
  uint64_t ic_n = 20000;
  size_t only = 0;
  uint64_t n_of[NSIZES] = {300000, 100000, 30000, 1500}, lat_n = 10000;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-q") == 0) quick = 1;
    else if (strcmp(argv[i], "--table") == 0) table = 1;
    else if (strncmp(argv[i], "runs=", 5) == 0) runs = atoi(argv[i] + 5);
    else if (strncmp(argv[i], "n64=", 4) == 0) n_of[0] = strtoull(argv[i] + 4, NULL, 10);
    else if (strncmp(argv[i], "n1k=", 4) == 0) n_of[1] = strtoull(argv[i] + 4, NULL, 10);
    else if (strncmp(argv[i], "n16k=", 5) == 0) n_of[2] = strtoull(argv[i] + 5, NULL, 10);
    else if (strncmp(argv[i], "n1m=", 4) == 0) n_of[3] = strtoull(argv[i] + 4, NULL, 10);
    else if (strncmp(argv[i], "lat=", 4) == 0) lat_n = strtoull(argv[i] + 4, NULL, 10);
    else if (strncmp(argv[i], "pin=", 4) == 0) pin = atoi(argv[i] + 4);
    else if (strncmp(argv[i], "queued=", 7) == 0) prod_cfg.max_queued_bytes = strtoull(argv[i] + 7, NULL, 10);
    else if (strncmp(argv[i], "ring=", 5) == 0) prod_cfg.ring_entries = (uint32_t)strtoul(argv[i] + 5, NULL, 10);
    else if (strncmp(argv[i], "size=", 5) == 0) only = strtoull(argv[i] + 5, NULL, 10);
    else if (strcmp(argv[i], "what=thr") == 0) do_lat = 0;
    else if (strcmp(argv[i], "what=lat") == 0) do_thr = 0;
    else if (strcmp(argv[i], "what=icount") == 0) do_icount = 1;
    else if (strcmp(argv[i], "what=fanout") == 0) do_fanout = 1;
    else if (strcmp(argv[i], "what=oneway") == 0) do_oneway = 1;
    else if (strncmp(argv[i], "n=", 2) == 0) ic_n = strtoull(argv[i] + 2, NULL, 10), ic_n_set = 1;
    else if (strncmp(argv[i], "subs=", 5) == 0) ic_subs = atoi(argv[i] + 5);
    else if (strncmp(argv[i], "batch=", 6) == 0) pub_batch = atoi(argv[i] + 6) < 1 ? 1 : atoi(argv[i] + 6) > 64 ? 64 : atoi(argv[i] + 6);
    else {
      fprintf(stderr, "usage: channel_bench [-q] [--table] [runs=3] [n64=N] [n1k=N] [n16k=N] [n1m=N] [lat=N] [size=64|1024|16384|1048576] [what=thr|lat|icount|fanout|oneway] [n=N] [subs=K] [batch=B] [ring=N] [queued=BYTES] [pin=0|1]\n");
      return 2;
    }
  }
  setvbuf(stdout, NULL, _IOLBF, 0); /* one result line at a time, even into a pipe */
  if (do_icount) return ic_subs ? icount_fanout(only ? only : 64, ic_n, ic_subs) : icount(only ? only : 64, ic_n);
  pin_to(0);
  if (quick) {
    for (int i = 0; i < NSIZES; i++) n_of[i] /= 10;
    lat_n /= 10;
    runs = 1;
  }
  if (runs < 1) runs = 1;
  if (runs > 15) runs = 15;
  if (do_oneway) { /* the one-way channel's throughput alone (what=oneway size=S n=N) */
    size_t size = only ? only : 64;
    uint64_t n = ic_n_set ? ic_n : size <= 64 ? n_of[0] : size <= 1024 ? n_of[1] : size <= 16384 ? n_of[2] : n_of[3];
    char m[64];
    snprintf(m, sizeof m, "chan_msgs_per_s_%zu", size);
    report(m, throughput(1, MODE_THR, size, n, runs), "msgs/s", 1);
    return 0;
  }
  if (do_fanout && ic_subs > 0) { /* one fan-out measurement alone (what=fanout subs=K size=S n=N) */
    size_t size = only ? only : 64;
    uint64_t n = ic_n_set ? ic_n : size <= 64 ? n_of[0] : n_of[2];
    double r[16];
    for (int i = 0; i < runs; i++) r[i] = run_fanout(ic_subs, size, n);
    qsort(r, (size_t)runs, sizeof r[0], cmp_d);
    char m[64];
    snprintf(m, sizeof m, "fanout_msgs_per_s_%zu_%dsubs", size, ic_subs);
    report(m, r[runs / 2], "msgs/s", 1);
    return 0;
  }
  if (do_fanout) {
    if (table) printf("| size | one-way channel | fan-out, 1 subscriber | 2 subscribers | 4 subscribers |\n|---|---|---|---|---|\n");
    fanout_table(only, n_of[0], n_of[2], runs);
    return 0;
  }
  static const size_t sizes[NSIZES] = {64, 1024, 16384, 1 << 20};
  double thr[NSIZES][2] = {{0}}, lat_tbl[NSIZES][4][3] = {{{0}}}, copies[NSIZES][2] = {{0}};
  for (int s = 0; s < NSIZES; s++) {
    size_t size = sizes[s];
    uint64_t n = n_of[s];
    char m[64];
    if (only && only != size) continue;
    if (do_thr) {
    double cb = throughput(1, MODE_THR_BATCH, size, n, runs), k = throughput(0, MODE_THR, size, n, runs);
    double sock_copies = last_copies;
    double c = throughput(1, MODE_THR, size, n, runs);
    copies[s][0] = last_copies;
    copies[s][1] = sock_copies;
    snprintf(m, sizeof m, "chan_payload_copies_%zu", size);
    report(m, last_copies, "copies/msg", 0);
    snprintf(m, sizeof m, "sock_payload_copies_%zu", size);
    report(m, sock_copies, "copies/msg", 0);
    thr[s][0] = c;
    thr[s][1] = k;
    snprintf(m, sizeof m, "chan_wake_syscalls_per_msg_%zu", size);
    report(m, last_wakes, "calls/msg", 0);
    snprintf(m, sizeof m, "chan_msgs_per_s_%zu", size);
    report(m, c, "msgs/s", 1);
    snprintf(m, sizeof m, "chan_batch_msgs_per_s_%zu", size);
    report(m, cb, "msgs/s", 1);
    snprintf(m, sizeof m, "sock_msgs_per_s_%zu", size);
    report(m, k, "msgs/s", 1);
    snprintf(m, sizeof m, "chan_gb_per_s_%zu", size);
    report(m, c * (double)size / 1e9, "GB/s", 1);
    snprintf(m, sizeof m, "sock_gb_per_s_%zu", size);
    report(m, k * (double)size / 1e9, "GB/s", 1);
    snprintf(m, sizeof m, "chan_vs_sock_throughput_%zu", size);
    report(m, c / k, "x", 1);
    if (s == 0) report("chan_2threads_msgs_per_s_64", throughput(1, MODE_THR_MT, size, n, runs), "msgs/s", 1);
    }
    if (!do_lat) continue;
    uint64_t ln = size > 65536 ? lat_n / 10 + 1 : lat_n; /* a 1 MiB message is written and read in full */
    latency(1, MODE_LAT_POLL, size, ln, "chan_lat_polled");
    latency(0, MODE_LAT_POLL, size, ln, "sock_lat_polled");
    latency(1, MODE_LAT_BLOCK, size, ln / 4 + 1, "chan_lat_blocking");
    latency(0, MODE_LAT_BLOCK, size, ln / 4 + 1, "sock_lat_blocking");
    for (int j = 0; j < 4; j++)
      for (int q = 0; q < 3; q++) lat_tbl[s][j][q] = rows[nrows - 12 + j * 3 + q].v;
  }
  double seg_ratio, waste = measure_waste(&seg_ratio);
  report("alloc_waste_pct_100_16k", 100 * waste, "%", 0);
  report("segment_bytes_per_asked_byte", seg_ratio, "x", 0);
  if (table && do_lat) {
    printf("\n%-8s | %-28s | %-28s | %-28s | %-28s\n", "size", "chan polled p50/p99/max ns", "sock polled p50/p99/max ns",
           "chan blocking p50/p99/max ns", "sock blocking p50/p99/max ns");
    for (int s = 0; s < NSIZES; s++) {
      if (only && only != sizes[s]) continue;
      printf("%-8zu", sizes[s]);
      for (int j = 0; j < 4; j++)
        printf(" | %8.0f %8.0f %10.0f", lat_tbl[s][j][0], lat_tbl[s][j][1], lat_tbl[s][j][2]);
      printf("\n");
    }
  }
  if (table && do_thr) {
    printf("\n%-8s | %14s %10s %7s | %14s %10s %7s | %8s\n", "size", "chan msgs/s", "GB/s", "copies", "sock msgs/s",
           "GB/s", "copies", "ratio");
    for (int s = 0; s < NSIZES; s++)
      if (!only || only == sizes[s])
        printf("%-8zu | %14.0f %10.2f %7.2f | %14.0f %10.2f %7.2f | %7.2fx\n", sizes[s], thr[s][0],
               thr[s][0] * (double)sizes[s] / 1e9, copies[s][0], thr[s][1], thr[s][1] * (double)sizes[s] / 1e9,
               copies[s][1], thr[s][0] / thr[s][1]);
  }
  if (table) {
    printf("\nallocator waste, random 100 B..16 KiB: %.1f%% (segments hold %.2fx the bytes asked)\n", 100 * waste, seg_ratio);
    printf("copies: payload bytes the kernel copied (read/write, /proc/self/io) per payload byte sent;\n"
           "        blind to user-space copies (see test channel_rewrite for the channel's)\n");
  }
  return 0;
}
