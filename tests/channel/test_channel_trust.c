/* Channel tests, what a hostile peer cannot do (docs/channel.md, "Against a hostile peer"):
 *   kick_flood         a consumer that keeps c_wait ARMED, takes every descriptor, never releases and never
 *                      reads its socket: every producer call returns within its policy (ETIMEDOUT at the
 *                      memory cap), stats from another thread never block, at most one kick is unread
 *   writable_segment   a consumer that gets the data segment's fd by hand and tries every way to write it
 *                      (mmap writable, reopen through /proc O_RDWR, mprotect, pwrite): all fail
 *   rewrite            the payload is the producer's memory, not a copy: a change the producer makes after
 *                      send is what the consumer reads; zc_chan_copy takes a snapshot and checks bounds
 *   zero_freed         what a consumer sees in its own segments: a cancelled loan's bytes and a returned
 *                      message's bytes stay visible by default, and are zeros with zero_freed
 *   pend_bound         a producer that republishes one handle and never takes releases back cannot grow the
 *                      consumer's overflow list beyond the return ring's size
 *   pend_gate          an honest producer and a consumer whose overflow list fills: both go on (the
 *                      producer waiting on a full ring takes the releases back)
 *   arm_overflow       an epoll consumer with releases in its overflow list pushes them when it arms, so a
 *                      producer waiting for memory is not starved
 *   nofork             a fork child of the producer does not inherit the data or control mappings
 * Usage: test_channel_trust <name>. Uses the internal layout (chan_internal.h) to play the hostile peer. */
#include "chan_hostile.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/mman.h>

/* ---- kick_flood ---- */
/* Takes every descriptor (tail advances, nothing is released), keeps c_wait ARMED, never reads the
 * socket. When the parent says stop, counts the records waiting in its socket and exits with the number
 * of unread KICKs (capped at 100). */
static int flooding_consumer(void *arg) {
  close(sv[0]);
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_CONSUMER, NULL);
  signal_byte(pipe2fd[1]);
  uint64_t tail = ch->c_tail;
  for (uint64_t it = 0;; it++) {
    uint64_t s = __atomic_load_n(&ch->ring[tail & (ch->ring_cap - 1)].seq, __ATOMIC_ACQUIRE);
    if (s == tail + 1) {
      tail++;
      __atomic_store_n(&ch->ctl->tail, tail, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&ch->ctl->c_wait, CHAN_ARMED, __ATOMIC_SEQ_CST);
    if ((it & 4095) == 0) {
      struct pollfd pf = {pipefd[0], POLLIN, 0};
      if (poll(&pf, 1, 0) == 1) break;
    }
  }
  int kicks = 0, segs = 0;
  for (;;) {
    chan_wire_t w;
    int fd;
    long n = zc_os_msg_recv(ch->sock, &w, sizeof w, &fd);
    zc_os_close(fd);
    if (n <= 0) break;
    if (w.kind == WIRE_KICK) kicks++;
    if (w.kind == WIRE_SEG) segs++;
  }
  printf("flooding consumer: %lu descriptors taken, %d kicks and %d segment records unread\n", (unsigned long)tail,
         kicks, segs);
  return kicks > 100 ? 100 : kicks;
}

static volatile int flood_done;
static void *stats_caller(void *arg) {
  zc_chan_t *ch = arg;
  long calls = 0;
  while (!__atomic_load_n(&flood_done, __ATOMIC_ACQUIRE)) { /* a hang here hangs the join: alarm fails us */
    zc_chan_stats_t st;
    zc_chan_stats(ch, &st);
    calls++;
    sleep_ms(1);
  }
  return (void *)calls;
}

static int t_kick_flood(int argc, char **argv) {
  seqpacket_pair(sv);
  REQUIREF(pipe(pipefd) == 0 && pipe(pipe2fd) == 0, "pipe");
  pid_t c = spawn(flooding_consumer, NULL);
  close(sv[1]);
  close(pipe2fd[1]); /* a dead child reads as end of file, not as a hang */
  zc_chan_config_t cfg = {.first_segment = 512 << 10, .max_bytes = 64 << 20, .block_timeout_ms = 300};
  zc_chan_t *ch = open_end(sv[0], ZC_CHAN_PRODUCER, &cfg);
  wait_byte(pipe2fd[0]);
  pthread_t t;
  REQUIREF(pthread_create(&t, NULL, stats_caller, ch) == 0, "pthread_create");
  int err = 0;
  long sent = 0, send_timeouts = 0;
  uint64_t worst = 0;
  while (err == 0) { /* 64 MiB of 16 KiB messages nobody returns: the memory cap (a loan) ends it */
    uint64_t t0 = now_ns();
    void *p = zc_chan_loan(ch, 16384);
    if (p != NULL && zc_chan_send(ch, p, 16384, 1) == 0) {
      sent++;
    } else {
      err = errno;
      /* A send that times out is the queue budget: on a loaded machine the flooding consumer can be off
       * the CPU for longer than the 300 ms. The loan stays ours: give it back and go on to the cap. */
      if (p != NULL && err == ETIMEDOUT && send_timeouts++ < 100) {
        REQUIREF(zc_chan_cancel(ch, p) == 0, "cancel after ETIMEDOUT: %s", strerror(errno));
        err = 0;
      }
    }
    uint64_t dt = now_ns() - t0;
    if (dt > worst) worst = dt;
  }
  __atomic_store_n(&flood_done, 1, __ATOMIC_RELEASE);
  long calls;
  pthread_join(t, (void **)&calls);
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  printf("kick_flood: %ld messages sent, then errno %d (%s); %lu segments; slowest call %.0f ms; %ld stats calls; "
         "%ld sends timed out on the way\n",
         sent, err, zc_chan_error(ch), (unsigned long)st.segments, (double)worst / 1e6, calls, send_timeouts);
  REQUIREF(err == ETIMEDOUT, "the producer ended with errno %d (%s), expected ETIMEDOUT at the memory cap", err,
           zc_chan_error(ch));
  REQUIREF(sent >= 4000, "only %ld messages went before the cap", sent);
  signal_byte(pipefd[1]);
  int kicks = reap(c);
  REQUIREF(kicks <= 1, "the consumer's socket holds %d unread kicks (at most 1 may be outstanding)", kicks);
  zc_chan_close(ch);
  return 0;
}

/* ---- writable_segment ---- */
static int segment_writer(void *arg) {
  close(sv[0]);
  int fd = sv[1], seg = -1, ctl = -1, ways = 0;
  chan_wire_t w;
  raw_send(fd, WIRE_HELLO, ZC_CHAN_CONSUMER);
  REQUIREF(raw_recv(fd, &w, &ctl) == sizeof w && w.kind == WIRE_HELLO, "hello");
  zc_os_close(ctl);
  REQUIREF(raw_recv(fd, &w, &ctl) == sizeof w && w.kind == WIRE_CTL && ctl >= 0, "control record");
  REQUIREF(raw_recv(fd, &w, &seg) == sizeof w && w.kind == WIRE_SEG && seg >= 0, "segment record");
  size_t size = (size_t)w.size;
  char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, seg, 0);
  if (p != MAP_FAILED) {
    printf("writable_segment: mmap of the received fd read-write worked\n");
    memset(p, 0x55, 4096);
    ways++;
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", seg);
  int rw = open(path, O_RDWR | O_CLOEXEC);
  if (rw >= 0) {
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0);
    if (p != MAP_FAILED) {
      printf("writable_segment: mmap of a /proc reopen read-write worked\n");
      memset(p, 0x66, 4096);
      ways++;
    }
    if (pwrite(rw, "hostile", 7, 0) == 7) {
      printf("writable_segment: pwrite on a /proc reopen worked\n");
      ways++;
    }
    close(rw);
  }
  p = mmap(NULL, size, PROT_READ, MAP_SHARED, seg, 0);
  REQUIREF(p != MAP_FAILED, "read-only mmap: %s", strerror(errno));
  if (mprotect(p, 4096, PROT_READ | PROT_WRITE) == 0) {
    printf("writable_segment: mprotect of a read-only mapping to writable worked\n");
    ways++;
  }
  int seals = zc_os_shm_seals(seg);
  REQUIREF(seals >= 0 && (seals & ZC_SEAL_FUTURE_WRITE) && (seals & ZC_SEAL_SEAL), "seals of the segment: %d", seals);
  signal_byte(pipefd[1]);
  return ways;
}

static int t_writable_segment(int argc, char **argv) {
  seqpacket_pair(sv);
  REQUIREF(pipe(pipefd) == 0, "pipe");
  pid_t c = spawn(segment_writer, NULL);
  close(sv[1]);
  close(pipefd[1]);
  zc_chan_t *ch = open_end(sv[0], ZC_CHAN_PRODUCER, NULL);
  char *p = zc_chan_loan(ch, 8192); /* the first slot: offset 0, the page the hostile side aims at */
  REQUIREF(p == ch->seg[0].base, "the first loan is not at the segment's start");
  fill_pattern(p, 8192, 11);
  wait_byte(pipefd[0]);
  int ways = reap(c);
  REQUIREF(ways == 0, "the consumer found %d ways to write the data segment", ways);
  REQUIREF(verify_pattern(p, 8192, 11) < 0, "the producer's loan changed under it");
  zc_chan_cancel(ch, p);
  zc_chan_close(ch);
  return 0;
}

/* ---- rewrite: no copy on the way, and zc_chan_copy ---- */
typedef struct hdr_s {
  uint32_t len, check;
} hdr_t;

static int rewrite_consumer(void *arg) {
  close(sv[0]);
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_CONSUMER, NULL);
  uint64_t off; /* the producer has sent, then rewritten the message; it tells us the loan's offset */
  REQUIREF(read(pipefd[0], &off, sizeof off) == sizeof off, "pipe");
  zc_chan_msg_t m;
  REQUIREF(zc_chan_receive(ch, &m, -1) == 0, "receive: %s", strerror(errno));
  REQUIREF(m.len == 4096, "len %u", m.len);
  REQUIREF((const char *)m.data == ch->seg[0].base + off && chan_handle_off(m.handle) == off,
           "the view is not the loan's own bytes (offset %lu in the producer's segment)", (unsigned long)off);
  REQUIREF(verify_pattern(m.data, 4096, 2) < 0, "the consumer reads what was sent, not what the producer wrote after send: "
                                        "the payload was copied somewhere on the way");
  hdr_t h;
  REQUIREF(zc_chan_copy(&m, 0, &h, sizeof h) == 0, "copy of the header");
  REQUIREF(zc_chan_copy(&m, 4096 - 4, &h, 8) == -1 && errno == EMSGSIZE, "a copy past the end is refused");
  REQUIREF(zc_chan_copy(&m, (size_t)-1, &h, 8) == -1 && errno == EMSGSIZE, "an offset that wraps is refused");
  REQUIREF(zc_chan_copy(&m, 4096, &h, 0) == 0, "an empty copy at the end");
  zc_chan_release(ch, &m);
  /* a producer flipping a header field while we read: the copy is what we check and use */
  signal_byte(pipe2fd[1]);
  long odd = 0;
  for (int i = 0; i < 20000; i++) {
    REQUIREF(zc_chan_receive(ch, &m, -1) == 0, "receive: %s", strerror(errno));
    REQUIREF(zc_chan_copy(&m, 0, &h, sizeof h) == 0, "copy");
    if (h.len > m.len - sizeof h) {
      odd++;
    } else {
      unsigned char body[64];
      REQUIREF(zc_chan_copy(&m, sizeof h, body, h.len < 64 ? h.len : 64) == 0, "body copy within the checked length");
    }
    zc_chan_release(ch, &m);
  }
  printf("rewrite: %ld of 20000 headers were caught mid-rewrite (too long) and refused\n", odd);
  zc_chan_close(ch);
  return 0;
}

static int flipping;
static void *flipper(void *arg) {
  hdr_t *h = arg;
  while (__atomic_load_n(&flipping, __ATOMIC_RELAXED)) {
    __atomic_store_n(&h->len, 0x7fffffffu, __ATOMIC_RELAXED);
    __atomic_store_n(&h->len, 32u, __ATOMIC_RELAXED);
  }
  return NULL;
}

static int t_rewrite(int argc, char **argv) {
  seqpacket_pair(sv);
  REQUIREF(pipe(pipefd) == 0 && pipe(pipe2fd) == 0, "pipe");
  pid_t c = spawn(rewrite_consumer, NULL);
  close(sv[1]);
  close(pipe2fd[1]);
  zc_chan_config_t cfg = {.block_timeout_ms = -1}; /* 20000 sends fill the ring: wait for the consumer's pace */
  zc_chan_t *ch = open_end(sv[0], ZC_CHAN_PRODUCER, &cfg);
  void *p = zc_chan_loan(ch, 4096);
  fill_pattern(p, 4096, 1);
  REQUIREF(zc_chan_send(ch, p, 4096, 1) == 0, "send");
  fill_pattern(p, 4096, 2); /* after send: the slot is the channel's now, which is why only a test does this */
  uint64_t off = (uint64_t)((char *)p - ch->seg[0].base);
  REQUIREF(write(pipefd[1], &off, sizeof off) == sizeof off, "pipe");
  wait_byte(pipe2fd[0]);
  /* one slot sent again and again while a thread flips its header: ring of 4096, one message in flight */
  pthread_t t;
  for (int i = 0; i < 20000; i++) {
    hdr_t *h = zc_chan_loan(ch, 64);
    REQUIREF(h != NULL, "loan: %s", strerror(errno));
    __atomic_store_n(&h->len, 32u, __ATOMIC_RELAXED);
    REQUIREF(zc_chan_send(ch, h, 64, 1) == 0, "send: %s", strerror(errno));
    if (i == 0) {
      __atomic_store_n(&flipping, 1, __ATOMIC_RELAXED);
      REQUIREF(pthread_create(&t, NULL, flipper, h) == 0, "pthread_create");
    }
  }
  while (zc_chan_collect(ch) > 0) sleep_ms(1);
  __atomic_store_n(&flipping, 0, __ATOMIC_RELAXED);
  pthread_join(t, NULL); /* before the memory it writes is unmapped */
  REQUIREF(reap(c) == 0, "consumer failed");
  zc_chan_close(ch);
  return 0;
}

/* ---- zero_freed ---- */
static const char secret[] = "ZCMEM-SECRET-7f3a9c";

/* 1 if the secret appears anywhere in the consumer's mapped segments. */
static int secret_visible(zc_chan_t *ch) {
  for (unsigned s = 0; s < ch->nseg; s++)
    if (memmem(ch->seg[s].base, ch->seg[s].size, secret, sizeof secret - 1) != NULL) return 1;
  return 0;
}

static int snooping_consumer(void *arg) {
  close(sv[0]);
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_CONSUMER, NULL);
  zc_chan_msg_t m;
  REQUIREF(zc_chan_receive(ch, &m, -1) == 0, "receive");
  zc_chan_release(ch, &m);
  wait_byte(pipefd[0]); /* the producer cancelled a loan and took our release back */
  int seen = secret_visible(ch);
  zc_chan_close(ch);
  return seen;
}

static int t_zero_freed(int argc, char **argv) {
  for (int zero = 0; zero <= 1; zero++) {
    seqpacket_pair(sv);
    REQUIREF(pipe(pipefd) == 0, "pipe");
    pid_t c = spawn(snooping_consumer, NULL);
    close(sv[1]);
    zc_chan_config_t cfg = {.zero_freed = zero};
    zc_chan_t *ch = open_end(sv[0], ZC_CHAN_PRODUCER, &cfg);
    char *p = zc_chan_loan(ch, 1000); /* a message whose secret lies past the length sent */
    memset(p, 'a', 1000);
    memcpy(p + 500, secret, sizeof secret);
    REQUIREF(zc_chan_send(ch, p, 100, 1) == 0, "send");
    char *q = zc_chan_loan(ch, 3000); /* a loan written, then cancelled */
    memcpy(q + 100, secret, sizeof secret);
    REQUIREF(zc_chan_cancel(ch, q) == 0, "cancel");
    while (zc_chan_collect(ch) > 0) sleep_ms(1);
    signal_byte(pipefd[1]);
    int seen = reap(c);
    printf("zero_freed=%d: the consumer %s the secret in its segments\n", zero, seen ? "found" : "did not find");
    REQUIREF(seen == !zero, "zero_freed=%d: secret %s", zero, seen ? "visible" : "gone");
    zc_chan_close(ch);
    close(pipefd[0]);
    close(pipefd[1]);
  }
  return 0;
}

/* ---- pend_bound ---- */
/* A producer that sends one real message, then publishes the same handle over and over and never looks
 * at the return ring. Its first segment is 256 MiB (never touched). */
static int republishing_producer(void *arg) {
  close(sv[0]);
  zc_chan_config_t cfg = {.ring_entries = 64, .first_segment = 256 << 20};
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_PRODUCER, &cfg);
  void *p = zc_chan_loan(ch, 100);
  REQUIREF(zc_chan_send(ch, p, 100, 1) == 0, "send");
  uint64_t h = ch->ring[0].handle, pos = ch->p_head;
  struct pollfd pf = {pipefd[0], POLLIN, 0};
  while (poll(&pf, 1, 0) == 0) {
    if (pos - __atomic_load_n(&ch->ctl->tail, __ATOMIC_ACQUIRE) >= ch->ring_cap) continue;
    chan_desc_t *d = &ch->ring[pos & (ch->ring_cap - 1)];
    d->handle = h;
    d->len = 100;
    d->type = 1;
    __atomic_store_n(&d->seq, pos + 1, __ATOMIC_RELEASE);
    pos++;
  }
  zc_chan_close(ch);
  return 0;
}

static int t_pend_bound(int argc, char **argv) {
  seqpacket_pair(sv);
  REQUIREF(pipe(pipefd) == 0, "pipe");
  pid_t c = spawn(republishing_producer, NULL);
  close(sv[1]);
  zc_chan_config_t cfg = {.spin_ns = 1000};
  zc_chan_t *ch = open_end(sv[0], ZC_CHAN_CONSUMER, &cfg);
  long got = 0;
  size_t most = 0;
  zc_chan_msg_t m;
  while (got < 30000 && zc_chan_receive(ch, &m, 300) == 0) {
    zc_chan_release(ch, &m);
    got++;
    if (ch->npend > most) most = ch->npend;
  }
  int err = errno;
  printf("pend_bound: %ld messages received, then errno %d; overflow list peaked at %zu (return ring %u)\n", got, err,
         most, ch->ret_cap);
  REQUIREF(most <= ch->ret_cap, "the overflow list grew to %zu releases (bound: the return ring's %u)", most, ch->ret_cap);
  REQUIREF(got < 30000 && err == ETIMEDOUT, "receive went on (%ld messages, errno %d) with the overflow list full", got, err);
  signal_byte(pipefd[1]);
  REQUIREF(reap(c) == 0, "producer failed");
  zc_chan_close(ch);
  return 0;
}

/* ---- pend_gate ---- */
/* An honest producer with free slots in hand (so its loans do not look at the return ring) and a consumer
 * that releases 600 messages at once into a return ring of 128: the consumer's overflow list fills and it
 * stops taking; the producer, waiting on a full ring, must take the releases back so both go on. */
#define GATE_N 6000
static int gate_producer(void *arg) {
  close(sv[0]);
  zc_chan_config_t cfg = {.ring_entries = 64, .block_timeout_ms = -1}; /* the consumer's pace: spawn's alarm bounds it */
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_PRODUCER, &cfg);
  for (uint64_t i = 0; i < GATE_N; i++) {
    void *p = zc_chan_loan(ch, 64);
    REQUIREF(p != NULL, "loan %lu: %s (%s)", (unsigned long)i, strerror(errno), zc_chan_error(ch));
    fill_pattern(p, 64, i);
    REQUIREF(zc_chan_send(ch, p, 64, 1) == 0, "send %lu: %s (%s)", (unsigned long)i, strerror(errno), zc_chan_error(ch));
  }
  while (zc_chan_collect(ch) > 0) sleep_ms(1);
  zc_chan_close(ch);
  return 0;
}

static int t_pend_gate(int argc, char **argv) {
  seqpacket_pair(sv);
  pid_t c = spawn(gate_producer, NULL);
  close(sv[1]);
  zc_chan_t *ch = open_end(sv[0], ZC_CHAN_CONSUMER, NULL);
  static zc_chan_msg_t held[600];
  size_t most = 0;
  int nheld = 0;
  for (uint64_t i = 0; i < GATE_N; i++) {
    zc_chan_msg_t m;
    REQUIREF(zc_chan_receive(ch, &m, -1) == 0, "receive %lu: %s", (unsigned long)i, strerror(errno));
    REQUIREF(verify_pattern(m.data, 64, i) < 0, "message %lu", (unsigned long)i);
    if (i < 2000 || nheld == 600) { /* first a plain flow (the producer collects free slots), then hold */
      zc_chan_release(ch, &m);
    } else {
      held[nheld++] = m;
      if (nheld == 600) zc_chan_release_batch(ch, held, 600);
    }
    if (ch->npend > most) most = ch->npend;
  }
  /* keep calling until the producer is done: releases still in the overflow list go out only in a call */
  zc_chan_msg_t m;
  REQUIREF(zc_chan_receive(ch, &m, -1) == -1 && errno == EPIPE, "after the last message: errno %d", errno);
  printf("pend_gate: the overflow list peaked at %zu (return ring %u)\n", most, ch->ret_cap);
  REQUIREF(most >= ch->ret_cap, "the overflow list never filled (%zu): the test did not reach the case", most);
  REQUIREF(reap(c) == 0, "the producer failed");
  zc_chan_close(ch);
  return 0;
}

/* ---- arm_overflow ---- */
/* Producer: 512 KiB of memory = 256 slots of 2 KiB, ring of 64 (return ring of 128). */
static int starving_producer(void *arg) {
  close(sv[0]);
  zc_chan_config_t cfg = {.ring_entries = 64, .first_segment = 512 << 10, .max_bytes = 512 << 10,
                          .block_timeout_ms = -1}; /* a starved loan hangs until spawn's alarm: reap fails */
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_PRODUCER, &cfg);
  void *loans[256];
  for (int i = 0; i < 256; i++) {
    loans[i] = zc_chan_loan(ch, 2048);
    REQUIREF(loans[i] != NULL && zc_chan_send(ch, loans[i], 2048, 1) == 0, "send %d: %s", i, strerror(errno));
  }
  /* the consumer holds all 256 and releases them: 128 fit the return ring, 128 wait in its overflow list.
   * Loan 129 slots without sending: the first 128 come from the ring, the last needs the overflow. */
  wait_byte(pipefd[0]);
  for (int i = 0; i < 129; i++) {
    loans[i] = zc_chan_loan(ch, 2048);
    REQUIREF(loans[i] != NULL, "loan %d: %s (%s): the consumer's overflow never came", i, strerror(errno), zc_chan_error(ch));
  }
  REQUIREF(zc_chan_send(ch, loans[128], 2048, 2) == 0, "send");
  for (int i = 0; i < 128; i++) zc_chan_cancel(ch, loans[i]);
  wait_byte(pipefd[0]);
  zc_chan_close(ch);
  return 0;
}

static int t_arm_overflow(int argc, char **argv) {
  seqpacket_pair(sv);
  REQUIREF(pipe(pipefd) == 0, "pipe");
  pid_t c = spawn(starving_producer, NULL);
  close(sv[1]);
  zc_chan_t *ch = open_end(sv[0], ZC_CHAN_CONSUMER, NULL);
  zc_chan_msg_t held[256];
  for (int i = 0; i < 256; i++) REQUIREF(zc_chan_receive(ch, &held[i], -1) == 0, "receive %d", i);
  REQUIREF(zc_chan_release_batch(ch, held, 256) == 0, "release");
  REQUIREF(ch->npend == 128, "overflow list: %zu", ch->npend);
  signal_byte(pipefd[1]);
  /* wait until the producer took the return ring in (its loans drain it), then go to sleep in epoll */
  uint64_t end = now_ns() + 60000000000ull;
  while (__atomic_load_n(&ch->ctl->ret_tail, __ATOMIC_ACQUIRE) != ch->c_ret_head && now_ns() < end) sleep_ms(1);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN};
  REQUIREF(epoll_ctl(ep, EPOLL_CTL_ADD, zc_chan_fd(ch), &ev) == 0, "epoll_ctl");
  int armed = zc_chan_arm(ch);
  REQUIREF(armed >= 0, "arm: %s", strerror(errno));
  if (armed == 0) REQUIREF(epoll_wait(ep, &ev, 1, 60000) == 1, "no wake-up: the producer starved for the overflow list");
  zc_chan_msg_t m;
  REQUIREF(zc_chan_receive(ch, &m, 60000) == 0 && m.type == 2, "the message sent after the overflow came back");
  zc_chan_release(ch, &m);
  signal_byte(pipefd[1]);
  REQUIREF(reap(c) == 0, "producer failed");
  close(ep);
  zc_chan_close(ch);
  return 0;
}

/* ---- nofork ---- */
/* The channel's shared mappings of this process (memfd "zcmem-chan-*" lines of /proc/self/maps). */
static int chan_mappings(int print) {
  char line[512];
  int n = 0;
  FILE *f = fopen("/proc/self/maps", "r");
  REQUIREF(f != NULL, "maps");
  while (fgets(line, sizeof line, f))
    if (strstr(line, "memfd:zcmem-chan") != NULL) {
      if (print) printf("nofork: the fork child has %s", line);
      n++;
    }
  fclose(f);
  return n;
}

static int forked_child(void *arg) { return chan_mappings(1); }

static int idle_consumer(void *arg) {
  close(sv[0]);
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_CONSUMER, NULL);
  zc_chan_msg_t m;
  while (zc_chan_receive(ch, &m, -1) == 0) zc_chan_release(ch, &m);
  zc_chan_close(ch);
  return 0;
}

static int t_nofork(int argc, char **argv) {
  seqpacket_pair(sv);
  pid_t c = spawn(idle_consumer, NULL);
  close(sv[1]);
  zc_chan_t *ch = open_end(sv[0], ZC_CHAN_PRODUCER, NULL);
  REQUIREF(chan_mappings(0) == 2, "the producer has %d channel mappings, expected 2", chan_mappings(0));
  pid_t f = spawn(forked_child, NULL);
  REQUIREF(reap(f) == 0, "a fork child of the producer inherited the channel's writable mappings (data, control)");
  zc_chan_close(ch);
  REQUIREF(reap(c) == 0, "consumer failed");
  return 0;
}

/* ---- fork_close ---- */
/* A fork child that closes the channel it inherited (a helper process closing what it does not use) must
 * leave the parent's channel working: its zc_chan_close closes its copy of the socket, never shuts the
 * shared socket down (which ended the channel for both), and does not unmap the producer's data and control
 * segments, which a child does not have (MADV_DONTFORK): a mapping of the child's own at their address
 * must survive the close. Both sides fork such a child before the first message. */
static zc_chan_t *fork_ch; /* the channel the helper child closes */

static int closing_child(void *arg) {
  zc_chan_t *ch = fork_ch;
  char *own = NULL;
  size_t size = 0;
  int theirs = 0; /* something of the child's own (a sanitizer's runtime, say) is there already */
  if (ch->role == ZC_CHAN_PRODUCER) { /* the producer's segment is not mapped here: map something there */
    own = ch->seg[0].base;
    size = ch->seg[0].size;
    void *got = mmap(own, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (got == own) {
      memset(own, 0x5a, size);
    } else {
      REQUIREF(errno == EEXIST, "mmap: %s", strerror(errno));
      theirs = 1; /* (not the segment itself: channel_nofork checks that the child has none) */
    }
  }
  zc_chan_close(ch);
  if (own && !theirs) REQUIREF(own[0] == 0x5a && own[size - 1] == 0x5a, "the child's own mapping changed");
  if (own && theirs) { /* still mapped: mincore fails with ENOMEM on an unmapped page */
    unsigned char v;
    REQUIREF(mincore(own, 4096, &v) == 0 && mincore(own + size - 4096, 4096, &v) == 0,
             "zc_chan_close in the fork child unmapped a mapping of the child's own at the segment's address");
  }
  return 0; /* a close that unmapped `own` would have faulted above */
}

static int forking_consumer(void *arg) {
  close(sv[0]);
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_CONSUMER, NULL);
  fork_ch = ch;
  REQUIREF(reap(spawn(closing_child, NULL)) == 0, "the consumer's helper child failed");
  signal_byte(pipefd[1]);
  zc_chan_msg_t m;
  for (int i = 0; i < 100; i++) {
    REQUIREF(zc_chan_receive(ch, &m, -1) == 0, "message %d: %s (%s)", i, strerror(errno), zc_chan_error(ch));
    REQUIREF(m.len == 100 && verify_pattern(m.data, 100, (uint64_t)i) < 0, "message %d", i);
    zc_chan_release(ch, &m);
  }
  REQUIREF(zc_chan_receive(ch, &m, -1) == -1 && errno == EPIPE, "no end of file after the producer closed");
  zc_chan_close(ch);
  return 0;
}

static int t_fork_close(int argc, char **argv) {
  seqpacket_pair(sv);
  REQUIREF(pipe(pipefd) == 0, "pipe");
  pid_t c = spawn(forking_consumer, NULL);
  close(sv[1]);
  zc_chan_t *ch = open_end(sv[0], ZC_CHAN_PRODUCER, NULL);
  fork_ch = ch;
  REQUIREF(reap(spawn(closing_child, NULL)) == 0, "the producer's helper child failed");
  char b;
  REQUIREF(read(pipefd[0], &b, 1) == 1, "the consumer's helper did not finish");
  for (int i = 0; i < 100; i++) {
    char *p = zc_chan_loan(ch, 100);
    REQUIREF(p != NULL, "loan %d: %s (%s)", i, strerror(errno), zc_chan_error(ch));
    fill_pattern(p, 100, (uint64_t)i);
    REQUIREF(zc_chan_send(ch, p, 100, 1) == 0, "send %d after the helpers closed their copies: %s (%s)", i,
             strerror(errno), zc_chan_error(ch));
  }
  uint64_t end = now_ns() + 60000000000ull;
  long n;
  while ((n = zc_chan_collect(ch)) > 0 && now_ns() < end) sleep_ms(1);
  REQUIREF(n == 0, "collect: %ld in flight (%s)", n, zc_chan_error(ch));
  zc_chan_close(ch);
  REQUIREF(reap(c) == 0, "consumer failed");
  return 0;
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {
      {"kick_flood", t_kick_flood}, {"writable_segment", t_writable_segment}, {"rewrite", t_rewrite},
      {"zero_freed", t_zero_freed}, {"pend_bound", t_pend_bound}, {"pend_gate", t_pend_gate},
      {"arm_overflow", t_arm_overflow}, {"nofork", t_nofork}, {"fork_close", t_fork_close}, {NULL, NULL}};
  alarm(120);
  signal(SIGPIPE, SIG_IGN);
  return zc_run_case(argc, argv, cases);
}
