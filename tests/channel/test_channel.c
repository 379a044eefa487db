/* Channel tests, ordinary use across two real processes (fork): payloads checked byte for byte, several
 * producer threads, batches, blocking with timeouts, the EAGAIN and block policies with a slow consumer,
 * epoll, the allocator's slot sizes, API misuse, and no file left in /dev/shm.
 * Usage: test_channel <name>; each name is one ctest test. */
#include "chan_test.h"
#include "chan_internal.h" /* the shared control block: who sleeps on the futex */
#include "zcmem_service.h"

#include <dirent.h>
#include <pthread.h>
#include <poll.h>
#include <sys/epoll.h>

static int sv[2];

static zc_chan_t *open_child_consumer(const zc_chan_config_t *cfg) {
  close(sv[0]);
  zc_chan_t *ch = zc_chan_open(sv[1], ZC_CHAN_CONSUMER, cfg);
  REQUIREF(ch != NULL, "consumer open: %s", strerror(errno));
  return ch;
}

/* A producer that sends more than the ring or the 1 MiB queued-bytes budget holds waits for the consumer
 * as long as it takes (the default 1 s timed out under TSan on a loaded machine); a consumer that hangs
 * dies at spawn's alarm and the wait ends with EPIPE. */
static const zc_chan_config_t no_deadline = {.block_timeout_ms = -1};

static zc_chan_t *open_parent_producer(const zc_chan_config_t *cfg) {
  close(sv[1]);
  zc_chan_t *ch = zc_chan_open(sv[0], ZC_CHAN_PRODUCER, cfg);
  REQUIREF(ch != NULL, "producer open: %s", strerror(errno));
  return ch;
}

/* Wait until every sent message came back (or fail after 100 s: the consumer's pace under a sanitizer on a
 * loaded machine, not a bound under test; ctest's TIMEOUT is 120 s). */
static void drain_returns(zc_chan_t *ch) {
  uint64_t end = now_ns() + 100000000000ull;
  long n;
  while ((n = zc_chan_collect(ch)) > 0 && now_ns() < end) sleep_ms(1);
  REQUIREF(n == 0, "collect: %ld in flight (%s)", n, zc_chan_error(ch));
}

/* The consumers below run in spawned children: they wait for the producer without a deadline of their own
 * (under TSan on a loaded 2-core machine a producer can be off the CPU for tens of seconds); a producer
 * that hangs fails the test at the child's alarm (spawn), one that dies gives EPIPE. */
static void wait_epipe(zc_chan_t *ch) {
  zc_chan_msg_t m;
  int r = zc_chan_receive(ch, &m, -1);
  REQUIREF(r == -1 && errno == EPIPE, "expected EPIPE after the producer closed, got %d errno %d", r, errno);
}

/* ---- flow: varied sizes, shrunk sends, out-of-order releases ---- */
#define N_FLOW 20000
static size_t flow_len(uint64_t i) { return i % 3 == 0 ? msg_size(i) / 2 : msg_size(i); }

static int flow_consumer(void *arg) {
  zc_chan_t *ch = open_child_consumer(NULL);
  zc_chan_msg_t held[64];
  int nheld = 0;
  for (uint64_t i = 0; i < N_FLOW; i++) {
    zc_chan_msg_t m;
    REQUIREF(zc_chan_receive(ch, &m, -1) == 0, "receive %lu: %s (%s)", (unsigned long)i, strerror(errno), zc_chan_error(ch));
    REQUIREF(m.len == flow_len(i) && m.type == i % 7 + 1, "message %lu: len %u type %u", (unsigned long)i, m.len, m.type);
    long bad = verify_pattern(m.data, m.len, i);
    REQUIREF(bad < 0, "message %lu: payload differs at byte %ld", (unsigned long)i, bad);
    held[nheld++] = m;
    if (nheld == 64 || i % 5 == 0) { /* release newest first: out of order for the allocator */
      while (nheld > 0) REQUIREF(zc_chan_release(ch, &held[--nheld]) == 0, "release: %s", strerror(errno));
    }
  }
  while (nheld > 0) zc_chan_release(ch, &held[--nheld]);
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  REQUIREF(st.held_msgs == 0 && st.received == N_FLOW && st.released == N_FLOW, "consumer stats held %lu", (unsigned long)st.held_msgs);
  wait_epipe(ch);
  zc_chan_close(ch);
  return 0;
}

static void flow_producer(zc_chan_t *ch) {
  for (uint64_t i = 0; i < N_FLOW; i++) {
    size_t n = msg_size(i), len = flow_len(i);
    void *p = zc_chan_loan(ch, n);
    REQUIREF(p != NULL, "loan %zu: %s (%s)", n, strerror(errno), zc_chan_error(ch));
    REQUIREF(((uintptr_t)p & 15) == 0, "loan not 16-byte aligned: %p", p);
    fill_pattern(p, len, i);
    REQUIREF(zc_chan_send(ch, p, len, (uint32_t)(i % 7 + 1)) == 0, "send: %s (%s)", strerror(errno), zc_chan_error(ch));
  }
  drain_returns(ch);
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  REQUIREF(st.sent == N_FLOW && st.returned == N_FLOW && st.inflight_msgs == 0 && st.loaned_msgs == 0 &&
               st.free_bytes == st.segment_bytes, "producer stats sent %lu returned %lu inflight %lu free %lu of %lu",
           (unsigned long)st.sent, (unsigned long)st.returned, (unsigned long)st.inflight_msgs,
           (unsigned long)st.free_bytes, (unsigned long)st.segment_bytes);
}

static int t_flow(int argc, char **argv) {
  seqpacket_pair(sv);
  pid_t c = spawn(flow_consumer, NULL);
  /* a full ring waits for the consumer as long as it takes (the default 1 s timed out under TSan on a
   * loaded machine: the consumer was off the CPU); a consumer that hangs dies at spawn's alarm */
  zc_chan_config_t cfg = {.block_timeout_ms = -1};
  zc_chan_t *ch = open_parent_producer(&cfg);
  flow_producer(ch);
  zc_chan_close(ch);
  REQUIREF(reap(c) == 0, "consumer failed");
  return 0;
}

/* ---- path: listen / connect on a socket path ---- */
static char sock_path[108];
static int path_consumer(void *arg) {
  zc_chan_t *ch = zc_chan_connect(sock_path, ZC_CHAN_CONSUMER, NULL);
  REQUIREF(ch != NULL, "connect %s: %s", sock_path, strerror(errno));
  for (uint64_t i = 0; i < 1000; i++) {
    zc_chan_msg_t m;
    REQUIREF(zc_chan_receive(ch, &m, -1) == 0, "receive: %s", strerror(errno));
    REQUIREF(m.len == msg_size(i) && verify_pattern(m.data, m.len, i) < 0, "message %lu wrong", (unsigned long)i);
    zc_chan_release(ch, &m);
  }
  wait_epipe(ch);
  zc_chan_close(ch);
  return 0;
}

static int t_path(int argc, char **argv) {
  snprintf(sock_path, sizeof sock_path, "/tmp/zcmem-chan-test-%d.sock", (int)getpid());
  int lfd = zc_chan_listen(sock_path);
  REQUIREF(lfd >= 0, "listen: %s", strerror(errno));
  pid_t c = spawn(path_consumer, NULL);
  zc_chan_t *ch = zc_chan_accept(lfd, ZC_CHAN_PRODUCER, &no_deadline);
  REQUIREF(ch != NULL, "accept: %s", strerror(errno));
  close(lfd);
  unlink(sock_path);
  for (uint64_t i = 0; i < 1000; i++) {
    void *p = zc_chan_loan(ch, msg_size(i));
    REQUIREF(p != NULL, "loan: %s", strerror(errno));
    fill_pattern(p, msg_size(i), i);
    REQUIREF(zc_chan_send(ch, p, msg_size(i), 1) == 0, "send: %s", strerror(errno));
  }
  drain_returns(ch);
  zc_chan_close(ch);
  REQUIREF(reap(c) == 0, "consumer failed");
  return 0;
}

/* ---- threads: four producer threads on one channel; per-thread order and payloads checked ---- */
#define N_THREADS 4
#define N_PER_THREAD 20000
static zc_chan_t *shared_ch;

static void *producer_thread(void *arg) {
  uint32_t t = (uint32_t)(uintptr_t)arg;
  for (uint64_t s = 0; s < N_PER_THREAD; s++) {
    size_t n = 8 + msg_size(s * 31 + t) % 2000;
    unsigned char *p = zc_chan_loan(shared_ch, n);
    REQUIREF(p != NULL, "thread %u loan: %s (%s)", t, strerror(errno), zc_chan_error(shared_ch));
    memcpy(p, &s, 8);
    fill_pattern(p + 8, n - 8, (uint64_t)t << 32 | s);
    REQUIREF(zc_chan_send(shared_ch, p, n, t) == 0, "thread %u send: %s", t, strerror(errno));
  }
  return NULL;
}

static int threads_consumer(void *arg) {
  zc_chan_t *ch = open_child_consumer(NULL);
  uint64_t next[N_THREADS + 1] = {0};
  for (long i = 0; i < (long)N_THREADS * N_PER_THREAD; i++) {
    zc_chan_msg_t m;
    REQUIREF(zc_chan_receive(ch, &m, -1) == 0, "receive %ld: %s (%s)", i, strerror(errno), zc_chan_error(ch));
    REQUIREF(m.type >= 1 && m.type <= N_THREADS, "type %u", m.type);
    uint64_t s;
    memcpy(&s, m.data, 8);
    REQUIREF(s == next[m.type], "thread %u: sequence %lu, expected %lu", m.type, (unsigned long)s, (unsigned long)next[m.type]);
    next[m.type]++;
    REQUIREF(m.len == 8 + msg_size(s * 31 + m.type) % 2000, "length");
    REQUIREF(verify_pattern((const char *)m.data + 8, m.len - 8, (uint64_t)m.type << 32 | s) < 0, "payload of %u/%lu", m.type, (unsigned long)s);
    zc_chan_release(ch, &m);
  }
  wait_epipe(ch);
  zc_chan_close(ch);
  return 0;
}

static int t_threads(int argc, char **argv) {
  seqpacket_pair(sv);
  pid_t c = spawn(threads_consumer, NULL);
  /* four threads share the room the consumer frees: on a loaded machine (sanitizers, parallel tests) one
   * of them can wait longer than the default second; this test is about order and payloads, not timeouts */
  zc_chan_config_t cfg = {.block_timeout_ms = -1}; /* a hung consumer dies at spawn's alarm */
  shared_ch = open_parent_producer(&cfg);
  pthread_t th[N_THREADS];
  for (uintptr_t t = 0; t < N_THREADS; t++) pthread_create(&th[t], NULL, producer_thread, (void *)(t + 1));
  for (int t = 0; t < N_THREADS; t++) pthread_join(th[t], NULL);
  drain_returns(shared_ch);
  zc_chan_stats_t st;
  zc_chan_stats(shared_ch, &st);
  REQUIREF(st.sent == N_THREADS * N_PER_THREAD && st.loaned_msgs == 0 && st.inflight_msgs == 0, "stats");
  zc_chan_close(shared_ch);
  REQUIREF(reap(c) == 0, "consumer failed");
  return 0;
}

/* ---- batch: send_batch, receive_batch, release_batch ---- */
#define N_BATCH 20000
static int batch_consumer(void *arg) {
  zc_chan_t *ch = open_child_consumer(NULL);
  zc_chan_msg_t m[64], keep[64];
  int nkeep = 0;
  uint64_t i = 0;
  while (i < N_BATCH) {
    int n = zc_chan_receive_batch(ch, m, 64, -1);
    REQUIREF(n >= 1 && n <= 64, "receive_batch: %d %s (%s)", n, strerror(errno), zc_chan_error(ch));
    for (int k = 0; k < n; k++, i++)
      REQUIREF(m[k].len == msg_size(i) && m[k].type == (uint32_t)i && verify_pattern(m[k].data, m[k].len, i) < 0, "message %lu", (unsigned long)i);
    if (nkeep == 0 && n < 64) { /* hold this batch and release it together with the next one */
      memcpy(keep, m, (size_t)n * sizeof *m);
      nkeep = n;
      continue;
    }
    REQUIREF(zc_chan_release_batch(ch, m, n) == 0, "release_batch");
    if (nkeep) REQUIREF(zc_chan_release_batch(ch, keep, nkeep) == 0, "release_batch (kept)");
    nkeep = 0;
  }
  if (nkeep) zc_chan_release_batch(ch, keep, nkeep);
  wait_epipe(ch);
  zc_chan_close(ch);
  return 0;
}

static int t_batch(int argc, char **argv) {
  seqpacket_pair(sv);
  pid_t c = spawn(batch_consumer, NULL);
  zc_chan_t *ch = open_parent_producer(&no_deadline);
  for (uint64_t i = 0; i < N_BATCH; i += 32) {
    zc_chan_msg_t m[32];
    for (int k = 0; k < 32; k++) {
      size_t n = msg_size(i + (uint64_t)k);
      void *p = zc_chan_loan(ch, n);
      REQUIREF(p != NULL, "loan: %s", strerror(errno));
      fill_pattern(p, n, i + (uint64_t)k);
      m[k] = (zc_chan_msg_t){p, (uint32_t)n, (uint32_t)(i + (uint64_t)k), 0};
    }
    int r = zc_chan_send_batch(ch, m, 32);
    REQUIREF(r == 32, "send_batch: %d %s (%s)", r, strerror(errno), zc_chan_error(ch));
  }
  drain_returns(ch);
  zc_chan_close(ch);
  REQUIREF(reap(c) == 0, "consumer failed");
  return 0;
}

/* ---- timeout: EAGAIN, ETIMEDOUT, and a blocked consumer woken by the futex ---- */
static int ready[2];
enum { WAKE_TRIES = 20, TYPE_TRY = 77, TYPE_LAST = 78 };
static int timeout_consumer(void *arg) {
  zc_chan_config_t cfg = {.spin_ns = 1000};
  zc_chan_t *ch = open_child_consumer(&cfg);
  zc_chan_msg_t m;
  REQUIREF(zc_chan_receive(ch, &m, 0) == -1 && errno == EAGAIN, "non-blocking receive on empty: errno %d", errno);
  uint64_t t0 = now_ns();
  REQUIREF(zc_chan_receive(ch, &m, 100) == -1 && errno == ETIMEDOUT, "receive(100 ms): errno %d", errno);
  REQUIREF(now_ns() - t0 >= 100000000ull, "timed out early after %lu ns", (unsigned long)(now_ns() - t0));
  REQUIREF(write(ready[1], "r", 1) == 1, "pipe");
  for (int i = 0;; i++) { /* the producer's tries, then its last message */
    REQUIREF(i <= WAKE_TRIES, "more messages than the producer sends");
    REQUIREF(zc_chan_receive(ch, &m, -1) == 0, "blocking receive: %s", strerror(errno));
    REQUIREF((m.type == TYPE_TRY || m.type == TYPE_LAST) && m.len == 5 && memcmp(m.data, "hello", 5) == 0, "message");
    uint32_t type = m.type;
    zc_chan_release(ch, &m);
    if (type == TYPE_LAST) break;
  }
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  REQUIREF(st.sleeps >= 1, "the consumer never slept on the futex");
  wait_epipe(ch);
  zc_chan_close(ch);
  return 0;
}

static void send_hello(zc_chan_t *ch, uint32_t type) {
  char *p = zc_chan_loan(ch, 5);
  REQUIREF(p != NULL, "loan: %s", strerror(errno));
  memcpy(p, "hello", 5);
  REQUIREF(zc_chan_send(ch, p, 5, type) == 0, "send");
}

static int t_timeout(int argc, char **argv) {
  seqpacket_pair(sv);
  REQUIREF(pipe(ready) == 0, "pipe");
  pid_t c = spawn(timeout_consumer, NULL);
  zc_chan_t *ch = open_parent_producer(NULL);
  char b;
  REQUIREF(read(ready[0], &b, 1) == 1, "ready");
  /* The consumer spins 1 us, then sleeps on the futex in 50 ms slices, and between two slices its flag is
   * down for a moment: a send that comes then needs no wake (the consumer looks at the ring before it
   * sleeps again). So one send makes at most one wake call, and it makes one only if the flag is still up:
   * each try waits for the flag (a fixed 200 ms here was a bet on a loaded machine's pace), sends, and
   * counts; at least one of WAKE_TRIES tries must have woken the consumer (a producer that never wakes a
   * sleeping consumer fails them all; the consumer would still find each message at its next slice). */
  int tries = 0, woke = 0;
  while (tries < WAKE_TRIES && !woke) {
    REQUIREF(WAIT_UNTIL(__atomic_load_n(&ch->ctl->c_wait, __ATOMIC_ACQUIRE) & CHAN_SLEEPING, 30000),
             "the consumer never went to sleep on the futex");
    zc_chan_stats_t s0, s1;
    zc_chan_stats(ch, &s0);
    send_hello(ch, TYPE_TRY);
    tries++;
    zc_chan_stats(ch, &s1);
    REQUIREF(s1.wakes - s0.wakes <= 1, "one send made %lu wake calls", (unsigned long)(s1.wakes - s0.wakes));
    woke = s1.wakes - s0.wakes == 1;
  }
  printf("timeout: the consumer woken by send %d of %d\n", tries, WAKE_TRIES);
  REQUIREF(woke, "%d sends to a consumer flagged asleep made no wake call", tries);
  send_hello(ch, TYPE_LAST);
  drain_returns(ch);
  zc_chan_close(ch);
  REQUIREF(reap(c) == 0, "consumer failed");
  return 0;
}

/* ---- spinwake: while the consumer spins, the producer makes no wake-up system call ---- */
/* The spin is 2 s of wall time: a run in which the message came later (the producer waited that long for
 * a core) proves nothing either way; the consumer says which ('s': it got the message within 1.5 s, 'l':
 * later) and such a run is repeated, up to SPIN_TRIES times. Sleeping within 1.5 s fails at once. */
#define SPIN_TRIES 5
static int spin_consumer(void *arg) {
  zc_chan_config_t cfg = {.spin_ns = 2000000000}; /* spin up to 2 s */
  zc_chan_t *ch = open_child_consumer(&cfg);
  REQUIREF(write(ready[1], "r", 1) == 1, "pipe");
  zc_chan_msg_t m;
  uint64_t t0 = now_ns();
  REQUIREF(zc_chan_receive(ch, &m, -1) == 0, "receive: %s", strerror(errno));
  uint64_t waited = now_ns() - t0;
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  int in_time = waited < 1500000000ull;
  REQUIREF(!in_time || st.sleeps == 0, "the consumer slept while it should spin (message after %lu ms)",
           (unsigned long)(waited / 1000000));
  REQUIREF(write(ready[1], in_time ? "s" : "l", 1) == 1, "pipe");
  zc_chan_release(ch, &m);
  wait_epipe(ch);
  zc_chan_close(ch);
  return 0;
}

static int t_spinwake(int argc, char **argv) {
  for (int attempt = 1;; attempt++) {
    seqpacket_pair(sv);
    REQUIREF(pipe(ready) == 0, "pipe");
    pid_t c = spawn(spin_consumer, NULL);
    zc_chan_t *ch = open_parent_producer(NULL);
    char b, verdict = 0;
    REQUIREF(read(ready[0], &b, 1) == 1, "ready");
    sleep_ms(20); /* not required: the consumer is likely spinning by now */
    void *p = zc_chan_loan(ch, 64);
    REQUIREF(zc_chan_send(ch, p, 64, 1) == 0, "send");
    zc_chan_stats_t st;
    zc_chan_stats(ch, &st);
    REQUIREF(read(ready[0], &verdict, 1) == 1, "the consumer's verdict");
    if (verdict == 's')
      REQUIREF(st.wakes == 0, "producer made %lu wake calls while the consumer spun", (unsigned long)st.wakes);
    drain_returns(ch);
    zc_chan_close(ch);
    REQUIREF(reap(c) == 0, "consumer failed");
    close(ready[0]);
    close(ready[1]);
    if (verdict == 's') break;
    REQUIREF(attempt < SPIN_TRIES, "in %d runs the message never came within 1.5 s of the consumer's spin", attempt);
    printf("spinwake: run %d: the message came after 1.5 s (a loaded machine): again\n", attempt);
  }
  return 0;
}

/* ---- eagain: a consumer that does not read; ring full and memory cap fail at once ---- */
static int go[2];
static int slow_consumer(void *arg) {
  zc_chan_t *ch = open_child_consumer(NULL);
  REQUIREF(write(ready[1], "r", 1) == 1, "pipe");
  char b;
  while (read(go[0], &b, 1) == 1) { /* each byte: take everything there is, release it */
    zc_chan_msg_t m[64];
    int n;
    while ((n = zc_chan_receive_batch(ch, m, 64, 0)) > 0) zc_chan_release_batch(ch, m, n);
    REQUIREF(write(ready[1], "d", 1) == 1, "pipe");
    if (b == 'q') break;
  }
  wait_epipe(ch);
  zc_chan_close(ch);
  return 0;
}

static void fill_ring(zc_chan_t *ch, int n) {
  for (int i = 0; i < n; i++) {
    void *p = zc_chan_loan(ch, 100);
    REQUIREF(p != NULL, "loan: %s", strerror(errno));
    REQUIREF(zc_chan_send(ch, p, 100, 1) == 0, "send %d: %s (%s)", i, strerror(errno), zc_chan_error(ch));
  }
}

static void tell(const char *what) {
  char b;
  REQUIREF(write(go[1], what, 1) == 1, "pipe");
  REQUIREF(read(ready[0], &b, 1) == 1, "pipe");
}

static int t_eagain(int argc, char **argv) {
  seqpacket_pair(sv);
  REQUIREF(pipe(ready) == 0 && pipe(go) == 0, "pipe");
  pid_t c = spawn(slow_consumer, NULL);
  zc_chan_config_t cfg = {.ring_entries = 64, .policy = ZC_CHAN_FAIL, .first_segment = 1 << 20, .max_bytes = 1 << 20};
  zc_chan_t *ch = open_parent_producer(&cfg);
  char b;
  REQUIREF(read(ready[0], &b, 1) == 1, "ready");
  fill_ring(ch, 64);
  void *p = zc_chan_loan(ch, 100);
  REQUIREF(p != NULL, "loan with a full ring still works (memory is free)");
  REQUIREF(zc_chan_send(ch, p, 100, 1) == -1 && errno == EAGAIN, "send on a full ring: errno %d", errno);
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  REQUIREF(st.inflight_msgs == 64 && st.queued == 64 && st.loaned_msgs == 1 && st.full_waits >= 1,
           "stats inflight %lu queued %lu loaned %lu", (unsigned long)st.inflight_msgs, (unsigned long)st.queued, (unsigned long)st.loaned_msgs);
  REQUIREF(zc_chan_cancel(ch, p) == 0, "the loan stays with the caller after EAGAIN");
  /* memory cap: 64 KiB loans until the 1 MiB cap says EAGAIN */
  void *big[32];
  int nb = 0;
  while (nb < 32 && (big[nb] = zc_chan_loan(ch, 65536)) != NULL) nb++;
  REQUIREF(nb > 0 && nb < 32 && errno == EAGAIN, "loan at the cap: %d loans, errno %d", nb, errno);
  zc_chan_stats(ch, &st);
  REQUIREF(st.segment_bytes == 1 << 20 && st.loaned_bytes == (uint64_t)nb * 65536 &&
               st.loaned_bytes + st.inflight_bytes + st.free_bytes == st.segment_bytes,
           "accounting: segments %lu loaned %lu inflight %lu free %lu", (unsigned long)st.segment_bytes,
           (unsigned long)st.loaned_bytes, (unsigned long)st.inflight_bytes, (unsigned long)st.free_bytes);
  for (int i = 0; i < nb; i++) REQUIREF(zc_chan_cancel(ch, big[i]) == 0, "cancel");
  tell("g"); /* the consumer drains; the ring has room again */
  drain_returns(ch);
  fill_ring(ch, 64);
  tell("q");
  drain_returns(ch);
  zc_chan_close(ch);
  REQUIREF(reap(c) == 0, "consumer failed");
  return 0;
}

/* ---- budget: bytes sent and not yet received stay under max_queued_bytes ---- */
static int t_budget(int argc, char **argv) {
  seqpacket_pair(sv);
  REQUIREF(pipe(ready) == 0 && pipe(go) == 0, "pipe");
  pid_t c = spawn(slow_consumer, NULL);
  zc_chan_config_t cfg = {.policy = ZC_CHAN_FAIL, .max_queued_bytes = 40000};
  zc_chan_t *ch = open_parent_producer(&cfg);
  char b;
  REQUIREF(read(ready[0], &b, 1) == 1, "ready");
  for (int i = 0; i < 2; i++) {
    void *p = zc_chan_loan(ch, 16384);
    REQUIREF(p != NULL && zc_chan_send(ch, p, 16384, 1) == 0, "send %d: %s", i, strerror(errno));
  }
  void *p = zc_chan_loan(ch, 16384);
  REQUIREF(zc_chan_send(ch, p, 16384, 1) == -1 && errno == EAGAIN, "a third 16 KiB message passed a 40000-byte budget");
  REQUIREF(zc_chan_send(ch, p, 1000, 1) == 0, "a 1000-byte send still fits the budget: %s", strerror(errno));
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  REQUIREF(st.queued == 3 && st.queued_bytes == 2 * 16384 + 1000, "queued %lu (%lu bytes)", (unsigned long)st.queued,
           (unsigned long)st.queued_bytes);
  tell("g"); /* received: the budget is free again, though the consumer released them too */
  drain_returns(ch);
  p = zc_chan_loan(ch, 65536);
  REQUIREF(p != NULL && zc_chan_send(ch, p, 65536, 1) == 0, "one message larger than the budget goes into an empty queue");
  tell("q");
  drain_returns(ch);
  zc_chan_close(ch);
  REQUIREF(reap(c) == 0, "consumer failed");
  return 0;
}

/* ---- overflow: releases beyond the return ring wait in the consumer and still all come back ---- */
#define N_OVERFLOW 300
static int overflow_consumer(void *arg) {
  zc_chan_t *ch = open_child_consumer(NULL);
  for (uint64_t i = 0; i < N_OVERFLOW; i++) {
    zc_chan_msg_t m;
    REQUIREF(zc_chan_receive(ch, &m, -1) == 0, "receive: %s (%s)", strerror(errno), zc_chan_error(ch));
    REQUIREF(m.len == 100 && verify_pattern(m.data, 100, i) < 0, "message %lu", (unsigned long)i);
    REQUIREF(zc_chan_release(ch, &m) == 0, "release");
  }
  wait_epipe(ch);
  zc_chan_close(ch);
  return 0;
}

static int t_overflow(int argc, char **argv) {
  seqpacket_pair(sv);
  pid_t c = spawn(overflow_consumer, NULL);
  zc_chan_config_t cfg = {.ring_entries = 64, .block_timeout_ms = -1}; /* return ring: 128 handles */
  zc_chan_t *ch = open_parent_producer(&cfg);
  static void *p[N_OVERFLOW];
  for (int i = 0; i < N_OVERFLOW; i++) REQUIREF((p[i] = zc_chan_loan(ch, 100)) != NULL, "loan");
  for (int i = 0; i < N_OVERFLOW; i++) zc_chan_cancel(ch, p[i]); /* a long free list: loans won't drain */
  for (uint64_t i = 0; i < N_OVERFLOW; i++) {
    void *q = zc_chan_loan(ch, 100);
    fill_pattern(q, 100, i);
    REQUIREF(zc_chan_send(ch, q, 100, 1) == 0, "send %lu: %s", (unsigned long)i, strerror(errno));
  }
  drain_returns(ch); /* more than the return ring holds: the rest comes from the consumer's overflow list */
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  REQUIREF(st.returned == N_OVERFLOW && st.free_bytes == st.segment_bytes, "returned %lu", (unsigned long)st.returned);
  zc_chan_close(ch);
  REQUIREF(reap(c) == 0, "consumer failed");
  return 0;
}

/* ---- block: a full ring blocks until the consumer reads, or times out ---- */
static int delayed_consumer(void *arg) {
  zc_chan_t *ch = open_child_consumer(NULL);
  REQUIREF(write(ready[1], "r", 1) == 1, "pipe");
  /* read only once the producer sleeps for ring space (a fixed 300 ms here was a bet on its pace) */
  REQUIREF(WAIT_UNTIL(__atomic_load_n(&ch->ctl->p_wait, __ATOMIC_ACQUIRE) != 0, 30000),
           "the producer never waited for ring space");
  zc_chan_msg_t m[64];
  for (int got = 0; got < 65;) {
    int n = zc_chan_receive_batch(ch, m, 64, -1);
    REQUIREF(n > 0, "receive: %s", strerror(errno));
    zc_chan_release_batch(ch, m, n);
    got += n;
  }
  REQUIREF(write(ready[1], "d", 1) == 1, "pipe");
  char b;
  REQUIREF(read(go[0], &b, 1) == 1, "go"); /* now stop reading until told */
  int n;
  while ((n = zc_chan_receive_batch(ch, m, 64, 0)) > 0) zc_chan_release_batch(ch, m, n);
  wait_epipe(ch);
  zc_chan_close(ch);
  return 0;
}

static int t_block(int argc, char **argv) {
  seqpacket_pair(sv);
  REQUIREF(pipe(ready) == 0 && pipe(go) == 0, "pipe");
  pid_t c = spawn(delayed_consumer, NULL);
  /* first a wait that ends when the consumer reads, however late (5 s here timed out on a loaded machine) */
  zc_chan_config_t cfg = {.ring_entries = 64, .policy = ZC_CHAN_BLOCK, .block_timeout_ms = -1, .spin_ns = 1000};
  zc_chan_t *ch = open_parent_producer(&cfg);
  char b;
  REQUIREF(read(ready[0], &b, 1) == 1, "ready");
  fill_ring(ch, 65); /* the 65th send waits until the consumer wakes up and reads */
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  REQUIREF(st.full_waits >= 1 && st.sleeps >= 1, "the producer did not wait (full_waits %lu sleeps %lu)",
           (unsigned long)st.full_waits, (unsigned long)st.sleeps);
  REQUIREF(read(ready[0], &b, 1) == 1, "drained");
  drain_returns(ch);
  zc_chan_close(ch);
  REQUIREF(write(go[1], "g", 1) == 1, "go");
  REQUIREF(reap(c) == 0, "consumer failed");
  /* and a timeout: a consumer that never reads */
  REQUIREF(pipe(ready) == 0, "pipe");
  seqpacket_pair(sv);
  c = spawn(slow_consumer, NULL);
  cfg.block_timeout_ms = 150;
  ch = open_parent_producer(&cfg);
  REQUIREF(read(ready[0], &b, 1) == 1, "ready");
  fill_ring(ch, 64);
  void *p = zc_chan_loan(ch, 100);
  uint64_t t0 = now_ns();
  REQUIREF(zc_chan_send(ch, p, 100, 1) == -1 && errno == ETIMEDOUT, "send on a full ring: errno %d", errno);
  REQUIREF(now_ns() - t0 >= 150000000ull, "timed out early");
  zc_chan_cancel(ch, p);
  tell("q");
  drain_returns(ch);
  zc_chan_close(ch);
  REQUIREF(reap(c) == 0, "consumer failed");
  return 0;
}

/* ---- epoll: an event loop on zc_chan_fd ---- */
#define N_EPOLL 300
static int epoll_consumer(void *arg) {
  zc_chan_t *ch = open_child_consumer(NULL);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 1};
  REQUIREF(epoll_ctl(ep, EPOLL_CTL_ADD, zc_chan_fd(ch), &ev) == 0, "epoll_ctl");
  uint64_t got = 0, wakeups = 0;
  for (;;) {
    zc_chan_msg_t m;
    while (zc_chan_receive(ch, &m, 0) == 0) {
      REQUIREF(m.len == msg_size(got) && verify_pattern(m.data, m.len, got) < 0, "message %lu", (unsigned long)got);
      zc_chan_release(ch, &m);
      got++;
    }
    if (errno != EAGAIN) break;
    int a = zc_chan_arm(ch);
    if (a == 1) continue;
    if (a < 0) break;
    int n = epoll_wait(ep, &ev, 1, -1); /* the producer's pace; a hung one: spawn's alarm */
    REQUIREF(n == 1, "epoll_wait timed out with %lu of %d messages", (unsigned long)got, N_EPOLL);
    wakeups++;
  }
  REQUIREF(errno == EPIPE, "the loop ended with errno %d (%s), expected EPIPE", errno, zc_chan_error(ch));
  REQUIREF(got == N_EPOLL, "received %lu of %d", (unsigned long)got, N_EPOLL);
  REQUIREF(wakeups >= 2, "only %lu epoll wake-ups", (unsigned long)wakeups);
  close(ep);
  zc_chan_close(ch);
  return 0;
}

static int t_epoll(int argc, char **argv) {
  seqpacket_pair(sv);
  pid_t c = spawn(epoll_consumer, NULL);
  zc_chan_t *ch = open_parent_producer(&no_deadline);
  for (uint64_t i = 0; i < N_EPOLL; i++) {
    void *p = zc_chan_loan(ch, msg_size(i));
    fill_pattern(p, msg_size(i), i);
    REQUIREF(zc_chan_send(ch, p, msg_size(i), 1) == 0, "send");
    /* every tenth message: wait until the consumer has taken everything and armed (CHAN_ARMED up, which
     * only its arm raises and only a send takes down), so the next send must kick it out of epoll_wait.
     * (A fixed 2 ms pause here bet on the consumer's pace: a consumer kept off the CPU saw no wake-up.) */
    if (i % 10 == 9 && i + 1 < N_EPOLL)
      REQUIREF(WAIT_UNTIL(__atomic_load_n(&ch->ctl->c_wait, __ATOMIC_ACQUIRE) & CHAN_ARMED, 30000),
               "the consumer never armed after message %lu", (unsigned long)i);
  }
  drain_returns(ch);
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  REQUIREF(st.wakes >= 2, "the producer never kicked the socket");
  zc_chan_close(ch);
  REQUIREF(reap(c) == 0, "consumer failed");
  return 0;
}

/* ---- slots: a 100 B message takes a 112 B slot; waste over 100 B .. 16 KiB under 25% ---- */
static int idle_consumer(void *arg) {
  zc_chan_t *ch = open_child_consumer(NULL);
  zc_chan_msg_t m;
  while (zc_chan_receive(ch, &m, -1) == 0) zc_chan_release(ch, &m);
  REQUIREF(errno == EPIPE, "expected EPIPE, got errno %d", errno);
  zc_chan_close(ch);
  return 0;
}

static int t_slots(int argc, char **argv) {
  seqpacket_pair(sv);
  pid_t c = spawn(idle_consumer, NULL);
  zc_chan_t *ch = open_parent_producer(NULL);
  char *a = zc_chan_loan(ch, 100), *b = zc_chan_loan(ch, 100);
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  REQUIREF(st.loaned_bytes == 224 && b - a == 112, "two 100 B loans take %lu bytes, %ld apart", (unsigned long)st.loaned_bytes, (long)(b - a));
  zc_chan_cancel(ch, a);
  zc_chan_cancel(ch, b);
  static void *p[2000];
  uint64_t asked = 0;
  for (int i = 0; i < 2000; i++) {
    size_t n = 100 + splitmix64((uint64_t)i) % (16384 - 100 + 1);
    asked += n;
    p[i] = zc_chan_loan(ch, n);
    REQUIREF(p[i] != NULL, "loan %zu: %s", n, strerror(errno));
    memset(p[i], 0xab, n); /* the whole loan is writable */
  }
  zc_chan_stats(ch, &st);
  double waste = (double)st.loaned_bytes / (double)asked - 1.0;
  printf("slots: %lu bytes asked, %lu in slots (waste %.1f%%), %lu in %lu segments\n", (unsigned long)asked,
         (unsigned long)st.loaned_bytes, 100 * waste, (unsigned long)st.segment_bytes, (unsigned long)st.segments);
  REQUIREF(waste >= 0 && waste < 0.25, "waste %.1f%%", 100 * waste);
  for (int i = 0; i < 2000; i++) REQUIREF(zc_chan_cancel(ch, p[i]) == 0, "cancel");
  zc_chan_stats(ch, &st);
  REQUIREF(st.loaned_msgs == 0 && st.free_bytes == st.segment_bytes, "all free again");
  zc_chan_close(ch);
  REQUIREF(reap(c) == 0, "consumer failed");
  return 0;
}

/* ---- recycle: a page emptied by one class serves another ---- */
static int t_recycle(int argc, char **argv) {
  seqpacket_pair(sv);
  pid_t c = spawn(idle_consumer, NULL);
  zc_chan_config_t cfg = {.first_segment = 1 << 20, .max_bytes = 1 << 20, .policy = ZC_CHAN_FAIL};
  zc_chan_t *ch = open_parent_producer(&cfg); /* 1 MiB: two 512 KiB pages */
  static void *p[20000];
  int n = 0;
  while (n < 20000 && (p[n] = zc_chan_loan(ch, 64)) != NULL) n++;
  REQUIREF(n == 16384 && errno == EAGAIN, "64 B loans filling 1 MiB: %d (errno %d)", n, errno);
  for (int i = 0; i < n; i++) REQUIREF(zc_chan_cancel(ch, p[i]) == 0, "cancel");
  /* the 64 B class keeps one empty page; the other goes back to the pool */
  int m = 0;
  while (m < 100 && (p[m] = zc_chan_loan(ch, 16384)) != NULL) m++;
  REQUIREF(m == 32 && errno == EAGAIN, "16 KiB loans after the 64 B ones were freed: %d (errno %d)", m, errno);
  REQUIREF(zc_chan_loan(ch, 64) != NULL, "the 64 B class kept its empty page");
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  REQUIREF(st.segment_bytes == 1 << 20 && st.loaned_bytes == 32 * 16384 + 64, "segments %lu loaned %lu",
           (unsigned long)st.segment_bytes, (unsigned long)st.loaned_bytes);
  zc_chan_close(ch);
  REQUIREF(reap(c) == 0, "consumer failed");
  return 0;
}

/* ---- misuse: bad arguments get errors, not crashes ---- */
static int producer_child(void *arg) {
  close(sv[0]);
  zc_chan_t *ch = zc_chan_open(sv[1], ZC_CHAN_PRODUCER, NULL);
  return ch == NULL && errno == EPROTO ? 0 : 1;
}

static int refused_consumer(void *arg) {
  close(sv[0]);
  return zc_chan_open(sv[1], ZC_CHAN_CONSUMER, NULL) == NULL ? 0 : 1;
}

static int t_misuse(int argc, char **argv) {
  seqpacket_pair(sv);
  pid_t c = spawn(idle_consumer, NULL);
  zc_chan_t *ch = open_parent_producer(NULL);
  REQUIREF(zc_chan_loan(ch, 0) == NULL && errno == EINVAL, "loan(0)");
  REQUIREF(zc_chan_loan(ch, zc_chan_max_msg(ch) + 1) == NULL && errno == EMSGSIZE, "loan(too big)");
  char local[64];
  REQUIREF(zc_chan_send(ch, local, 10, 1) == -1 && errno == EINVAL, "send of a pointer that is not a loan");
  char *p = zc_chan_loan(ch, 100);
  REQUIREF(zc_chan_send(ch, p + 16, 10, 1) == -1 && errno == EINVAL, "send of an interior pointer");
  REQUIREF(zc_chan_send(ch, p, 113, 1) == -1 && errno == EMSGSIZE, "send longer than the slot");
  REQUIREF(zc_chan_cancel(ch, p) == -1 && errno == EINVAL, "the failed send gave the loan back");
  p = zc_chan_loan(ch, 100);
  REQUIREF(zc_chan_send(ch, p, 100, 1) == 0, "send");
  REQUIREF(zc_chan_send(ch, p, 100, 1) == -1 && errno == EINVAL, "second send of the same loan");
  zc_chan_msg_t m;
  REQUIREF(zc_chan_receive(ch, &m, 0) == -1 && errno == EINVAL, "receive on a producer");
  zc_chan_close(ch);
  REQUIREF(reap(c) == 0, "consumer failed");
  /* both ends producers */
  seqpacket_pair(sv);
  c = spawn(producer_child, NULL);
  close(sv[1]);
  REQUIREF(zc_chan_open(sv[0], ZC_CHAN_PRODUCER, NULL) == NULL && errno == EPROTO, "two producers: errno %d", errno);
  REQUIREF(reap(c) == 0, "the other producer did not fail with EPROTO");
  /* configurations out of range: a policy that is none of the three is refused (EINVAL), a first segment
   * near 2^64 is clamped to 256 MiB like any above it (rounding it up wrapped to 0: ENOSPC) */
  zc_chan_config_t badpol = {.policy = 7};
  seqpacket_pair(sv);
  c = spawn(refused_consumer, NULL);
  close(sv[1]);
  REQUIREF(zc_chan_open(sv[0], ZC_CHAN_PRODUCER, &badpol) == NULL && errno == EINVAL, "policy 7: errno %d", errno);
  REQUIREF(reap(c) == 0, "the consumer's open did not fail");
  REQUIREF(zc_pub_listen(NULL, &badpol) == NULL && errno == EINVAL, "zc_pub_listen with policy 7: errno %d", errno);
  zc_svc_config_t badsvc = {.chan.policy = -1};
  REQUIREF(zc_svc_listen("test-badpolicy", &badsvc) == NULL && errno == EINVAL, "zc_svc_listen with policy -1: errno %d", errno);
  zc_chan_config_t huge = {.first_segment = UINT64_MAX};
  seqpacket_pair(sv);
  c = spawn(idle_consumer, NULL);
  ch = open_parent_producer(&huge);
  p = zc_chan_loan(ch, 100);
  REQUIREF(p != NULL && zc_chan_send(ch, p, 100, 1) == 0, "first_segment UINT64_MAX: %s", strerror(errno));
  zc_chan_stats_t st0;
  zc_chan_stats(ch, &st0);
  REQUIREF(st0.segment_bytes == (256u << 20), "first_segment UINT64_MAX: a segment of %lu bytes", (unsigned long)st0.segment_bytes);
  zc_chan_close(ch);
  REQUIREF(reap(c) == 0, "consumer failed");
  /* a stream socket */
  int st[2];
  REQUIREF(socketpair(AF_UNIX, SOCK_STREAM, 0, st) == 0, "socketpair");
  REQUIREF(zc_chan_open(st[0], ZC_CHAN_PRODUCER, NULL) == NULL && errno == EPROTOTYPE, "stream socket: errno %d", errno);
  close(st[1]);
  return 0;
}

/* ---- null: every call given a NULL channel or publisher fails with EINVAL (or returns its neutral
 * value), never dereferences it ---- */
static int t_null(int argc, char **argv) {
  zc_chan_msg_t m = {0};
  zc_chan_stats_t st;
  char buf[16];
  errno = 0;
  REQUIREF(zc_chan_loan(NULL, 10) == NULL && errno == EINVAL, "loan(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_chan_loan_resize(NULL, buf, 10, 0) == NULL && errno == EINVAL, "loan_resize(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_chan_send(NULL, buf, 1, 1) == -1 && errno == EINVAL, "send(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_chan_send(NULL, buf, (size_t)UINT32_MAX + 1, 1) == -1 && errno == EINVAL, "send(NULL, 4 GiB): errno %d", errno);
  errno = 0;
  REQUIREF(zc_chan_send_batch(NULL, &m, 1) == -1 && errno == EINVAL, "send_batch(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_chan_cancel(NULL, buf) == -1 && errno == EINVAL, "cancel(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_chan_collect(NULL) == -1 && errno == EINVAL, "collect(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_chan_arm_space(NULL) == -1 && errno == EINVAL, "arm_space(NULL): errno %d", errno);
  REQUIREF(zc_chan_max_msg(NULL) == 0, "max_msg(NULL)");
  errno = 0;
  REQUIREF(zc_chan_receive(NULL, &m, 0) == -1 && errno == EINVAL, "receive(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_chan_receive_batch(NULL, &m, 1, 0) == -1 && errno == EINVAL, "receive_batch(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_chan_release(NULL, &m) == -1 && errno == EINVAL, "release(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_chan_release_batch(NULL, &m, 1) == -1 && errno == EINVAL, "release_batch(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_chan_arm(NULL) == -1 && errno == EINVAL, "arm(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_chan_arm_quiet(NULL) == -1 && errno == EINVAL, "arm_quiet(NULL): errno %d", errno);
  REQUIREF(zc_chan_fd(NULL) == -1, "fd(NULL)");
  REQUIREF(zc_chan_error(NULL) != NULL && zc_chan_error(NULL)[0] != 0, "error(NULL)");
  REQUIREF((int)zc_chan_role(NULL) == 0, "role(NULL)");
  memset(&st, 0xff, sizeof st);
  zc_chan_stats(NULL, &st);
  REQUIREF(st.sent == 0 && st.received == 0, "stats(NULL) not zeroed");
  errno = 0;
  REQUIREF(zc_chan_copy(NULL, 0, buf, 1) == -1 && errno == EINVAL, "copy(NULL): errno %d", errno);
  zc_chan_close(NULL);
  errno = 0;
  REQUIREF(zc_pub_loan(NULL, 10) == NULL && errno == EINVAL, "pub_loan(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_pub_send(NULL, buf, 1, 1) == -1 && errno == EINVAL, "pub_send(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_pub_cancel(NULL, buf) == -1 && errno == EINVAL, "pub_cancel(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_pub_collect(NULL) == -1 && errno == EINVAL, "pub_collect(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_pub_accept(NULL, 0) == -1 && errno == EINVAL, "pub_accept(NULL): errno %d", errno);
  int pv[2];
  seqpacket_pair(pv);
  errno = 0;
  REQUIREF(zc_pub_add(NULL, pv[0]) == -1 && errno == EINVAL, "pub_add(NULL): errno %d", errno);
  struct pollfd hup = {pv[1], POLLIN, 0}; /* the fd was the publisher's: closed, the other end sees it */
  REQUIREF(poll(&hup, 1, 10000) == 1 && (hup.revents & (POLLIN | POLLHUP)), "pub_add(NULL) kept the fd open");
  close(pv[1]);
  errno = 0;
  REQUIREF(zc_pub_subscribers(NULL) == -1 && errno == EINVAL, "pub_subscribers(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_pub_arm_space(NULL) == -1 && errno == EINVAL, "pub_arm_space(NULL): errno %d", errno);
  REQUIREF(zc_pub_fd(NULL) == -1 && zc_pub_event_fd(NULL) == -1, "pub fds of NULL");
  REQUIREF(zc_pub_max_msg(NULL) == 0, "pub_max_msg(NULL)");
  REQUIREF(zc_pub_error(NULL) != NULL, "pub_error(NULL)");
  zc_pub_stats_t ps;
  memset(&ps, 0xff, sizeof ps);
  zc_pub_stats(NULL, &ps);
  REQUIREF(ps.subscribers == 0 && ps.chan.sent == 0, "pub_stats(NULL) not zeroed");
  errno = 0;
  REQUIREF(zc_pub_loan_resize(NULL, buf, 10, 0) == NULL && errno == EINVAL, "pub_loan_resize(NULL)");
  errno = 0;
  REQUIREF(zc_pub_send_batch(NULL, &m, 1) == -1 && errno == EINVAL, "pub_send_batch(NULL)");
  zc_pub_close(NULL);
  zc_svc_msg_t sm = {0};
  errno = 0;
  REQUIREF(zc_svc_abandon(NULL, 1) == -1 && errno == EINVAL, "svc_abandon(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_svc_peers(NULL) == -1 && errno == EINVAL, "svc_peers(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_svc_call(NULL, buf, 1, 1, &sm, 0) == -1 && errno == EINVAL, "svc_call(NULL): errno %d", errno);
  REQUIREF(zc_svc_fd(NULL) == -1 && zc_svc_error(NULL) != NULL && zc_svc_max_msg(NULL) == 0, "svc fd/error/max_msg of NULL");
  zc_svc_stats_t ss;
  memset(&ss, 0xff, sizeof ss);
  zc_svc_stats(NULL, &ss);
  REQUIREF(ss.requests == 0 && ss.peers == 0, "svc_stats(NULL) not zeroed");
  errno = 0;
  REQUIREF(zc_svc_loan(NULL, 10) == NULL && errno == EINVAL, "svc_loan(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_svc_send(NULL, buf, 1, 1) == -1 && errno == EINVAL, "svc_send(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_svc_receive(NULL, &sm, 0) == -1 && errno == EINVAL, "svc_receive(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_svc_release(NULL, &sm) == -1 && errno == EINVAL, "svc_release(NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_svc_arm_space(NULL) == -1 && errno == EINVAL, "svc_arm_space(NULL): errno %d", errno);
  zc_svc_close(NULL);
  char name[64];
  snprintf(name, sizeof name, "test-null.%d", (int)getpid());
  zc_svc_t *s = zc_svc_listen(name, NULL); /* NULL messages on a live endpoint */
  REQUIREF(s != NULL, "svc_listen: %s", strerror(errno));
  zc_chan_peer_t who;
  errno = 0;
  REQUIREF(zc_svc_receive(s, NULL, 0) == -1 && errno == EINVAL, "svc_receive(s, NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_svc_release(s, NULL) == -1 && errno == EINVAL, "svc_release(s, NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_svc_loan_reply(s, NULL, 10) == NULL && errno == EINVAL, "svc_loan_reply(s, NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_svc_reply(s, NULL, buf, 1, 1) == -1 && errno == EINVAL, "svc_reply(s, NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_svc_msg_peer(s, NULL, &who) == -1 && errno == EINVAL, "svc_msg_peer(s, NULL): errno %d", errno);
  errno = 0;
  REQUIREF(zc_svc_call(s, buf, 1, 1, NULL, 0) == -1 && errno == EINVAL, "svc_call(s, .., NULL): errno %d", errno);
  zc_svc_close(s);
  /* NULL arrays with a live channel */
  seqpacket_pair(sv);
  pid_t c = spawn(idle_consumer, NULL);
  zc_chan_t *ch = open_parent_producer(NULL);
  errno = 0;
  REQUIREF(zc_chan_send_batch(ch, NULL, 1) == -1 && errno == EINVAL, "send_batch(ch, NULL, 1): errno %d", errno);
  errno = 0;
  REQUIREF(zc_chan_copy(&m, 0, NULL, 1) == -1 && errno == EINVAL, "copy to NULL: errno %d", errno);
  zc_chan_close(ch);
  REQUIREF(reap(c) == 0, "consumer failed");
  return 0;
}

/* ---- misuse_full: a bad send with the queue full fails at once (EINVAL, EMSGSIZE), not with the
 * queue's EAGAIN nor after waiting for room ---- */
static int gate[2];
static int gated_consumer(void *arg) {
  zc_chan_t *ch = open_child_consumer(NULL);
  close(gate[1]);
  char b;
  REQUIREF(read(gate[0], &b, 1) == 0, "gate"); /* reads nothing until the producer is done */
  zc_chan_msg_t m;
  REQUIREF(zc_chan_receive_batch(ch, NULL, 1, 0) == -1 && errno == EINVAL, "receive into NULL: errno %d", errno);
  REQUIREF(zc_chan_release_batch(ch, NULL, 1) == -1 && errno == EINVAL, "release of NULL: errno %d", errno);
  while (zc_chan_receive(ch, &m, -1) == 0) zc_chan_release(ch, &m);
  REQUIREF(errno == EPIPE, "expected EPIPE, got errno %d", errno);
  zc_chan_close(ch);
  return 0;
}

static int t_misuse_full(int argc, char **argv) {
  for (int policy = ZC_CHAN_BLOCK; policy <= ZC_CHAN_FAIL; policy++) {
    seqpacket_pair(sv);
    REQUIREF(pipe(gate) == 0, "pipe");
    pid_t c = spawn(gated_consumer, NULL);
    close(gate[0]);
    /* BLOCK waits up to 20 s: a bad send that waited for room fails with ETIMEDOUT (the old code did) */
    zc_chan_config_t cfg = {.ring_entries = 64, .policy = policy, .block_timeout_ms = 20000};
    zc_chan_t *ch = open_parent_producer(&cfg);
    char *bad = zc_chan_loan(ch, 100);
    REQUIREF(bad != NULL, "loan");
    for (int i = 0; i < 64; i++) { /* the ring's 64 descriptors: full, the consumer reads nothing */
      char *p = zc_chan_loan(ch, 100);
      REQUIREF(p != NULL && zc_chan_send(ch, p, 100, 1) == 0, "send %d: %s", i, strerror(errno));
    }
    char local[64] __attribute__((aligned(16)));
    int r = zc_chan_send(ch, local, 10, 1);
    REQUIREF(r == -1 && errno == EINVAL, "policy %d: send of a pointer that is no loan, ring full: %d (%s)", policy, r,
             strerror(errno));
    r = zc_chan_send(ch, bad, 5000, 1);
    REQUIREF(r == -1 && errno == EMSGSIZE, "policy %d: send beyond its 112-byte loan, ring full: %d (%s)", policy, r,
             strerror(errno));
    REQUIREF(zc_chan_cancel(ch, bad) == -1 && errno == EINVAL, "policy %d: EMSGSIZE did not give the loan back", policy);
    zc_chan_stats_t st;
    zc_chan_stats(ch, &st);
    REQUIREF(st.sent == 64 && st.full_waits == 0, "policy %d: sent %lu, full waits %lu", policy, (unsigned long)st.sent,
             (unsigned long)st.full_waits);
    close(gate[1]);
    zc_chan_close(ch);
    REQUIREF(reap(c) == 0, "consumer failed");
  }
  return 0;
}

/* ---- devshm: the channel grows to several segments, and /dev/shm stays as it was ---- */
static int count_dir(const char *path, char *names, size_t cap) {
  DIR *d = opendir(path);
  if (d == NULL) return -1;
  int n = 0;
  names[0] = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strstr(e->d_name, "zcmem") != NULL) {
      strncat(names, e->d_name, cap - strlen(names) - 2);
      strcat(names, " ");
    }
    n++;
  }
  closedir(d);
  return n;
}

static int holding_consumer(void *arg) {
  zc_chan_t *ch = open_child_consumer(NULL);
  static zc_chan_msg_t m[400];
  for (int i = 0; i < 400; i++) {
    REQUIREF(zc_chan_receive(ch, &m[i], -1) == 0, "receive: %s (%s)", strerror(errno), zc_chan_error(ch));
    REQUIREF(m[i].len == 16384 && verify_pattern(m[i].data, 16384, (uint64_t)i) < 0, "message %d", i);
  }
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  REQUIREF(st.segments >= 2 && st.held_bytes == 400 * 16384, "consumer holds %lu bytes in %lu segments",
           (unsigned long)st.held_bytes, (unsigned long)st.segments);
  zc_chan_release_batch(ch, m, 400);
  wait_epipe(ch);
  zc_chan_close(ch);
  return 0;
}

static int t_devshm(int argc, char **argv) {
  char before[512], after[512];
  int n0 = count_dir("/dev/shm", before, sizeof before);
  seqpacket_pair(sv);
  pid_t c = spawn(holding_consumer, NULL);
  zc_chan_t *ch = open_parent_producer(&no_deadline);
  for (int i = 0; i < 400; i++) { /* 6.4 MiB held at once: more than the first 4 MiB segment */
    void *p = zc_chan_loan(ch, 16384);
    REQUIREF(p != NULL, "loan: %s", strerror(errno));
    fill_pattern(p, 16384, (uint64_t)i);
    REQUIREF(zc_chan_send(ch, p, 16384, 1) == 0, "send");
  }
  char maps[1 << 16];
  FILE *f = fopen("/proc/self/maps", "r");
  size_t got = fread(maps, 1, sizeof maps - 1, f);
  fclose(f);
  maps[got] = 0;
  REQUIREF(strstr(maps, "memfd:zcmem-chan-data") != NULL, "the data segments are not memfd mappings");
  int mid = count_dir("/dev/shm", after, sizeof after);
  REQUIREF(mid == n0 && after[0] == 0, "/dev/shm changed during the run: %d entries before, %d now (%s)", n0, mid, after);
  drain_returns(ch);
  zc_chan_close(ch);
  REQUIREF(reap(c) == 0, "consumer failed");
  int n1 = count_dir("/dev/shm", after, sizeof after);
  REQUIREF(n1 == n0 && after[0] == 0, "/dev/shm changed: %d entries before, %d after (%s)", n0, n1, after);
  return 0;
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {
      {"flow", t_flow}, {"path", t_path}, {"threads", t_threads}, {"batch", t_batch}, {"timeout", t_timeout},
      {"spinwake", t_spinwake}, {"eagain", t_eagain}, {"budget", t_budget}, {"overflow", t_overflow},
      {"block", t_block}, {"epoll", t_epoll}, {"slots", t_slots}, {"recycle", t_recycle}, {"misuse", t_misuse},
      {"devshm", t_devshm}, {"null", t_null}, {"misuse_full", t_misuse_full}, {NULL, NULL}};
  alarm(120);
  return zc_run_case(argc, argv, cases);
}
