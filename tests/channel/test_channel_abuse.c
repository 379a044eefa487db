/* Channel tests, crashes and abuse across two real processes:
 *   kill_consumer[_blocked]   kill -9 of the consumer mid-stream, or while the producer waits on a full ring:
 *                             the producer sees EPIPE and reclaims every slot (0 in flight, all bytes free)
 *   kill_producer[_blocked]   kill -9 of the producer mid-stream or while the consumer sleeps: the consumer
 *                             gets EPIPE, and the messages it still holds stay readable and intact
 *   hostile_consumer          garbage in the control segment from the consumer (10 kinds): rejected, the
 *                             channel closed with EPROTO and a reason, every slot reclaimed
 *   hostile_producer          garbage descriptors (segment, bounds, alignment, length, sequence), an unsealed
 *                             or undersized memfd, bad control/segment records, a data segment others could
 *                             still write, a control segment whose seal set is open (11 kinds): the consumer
 *                             rejects them with EPROTO and the reason (from zc_chan_error, or what a failed
 *                             open printed) before handing out any view
 *   fuzz                      random and plausible garbage written all over the control segment by a
 *                             hostile consumer (against the real producer) and by a hostile producer
 *                             (against the real consumer), 12 rounds each: every view stays inside the
 *                             mapped segments, every channel ends in EPROTO or EPIPE, the producer
 *                             reclaims everything, nobody crashes
 *   readonly                  the consumer cannot make the payload pages writable, nor write them
 *   fdlimit                   RLIMIT_NOFILE exhausted at open, at growth (MSG_CTRUNC) and in the producer
 * Usage: test_channel_abuse <name>. Uses the internal layout (chan_internal.h) to play the hostile peer. */
#include "chan_hostile.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>

static pid_t victim;
static void *killer(void *arg) {
  sleep_ms((int)(intptr_t)arg);
  kill(victim, SIGKILL);
  return NULL;
}

/* ---- kill -9 of the consumer ---- */
static int holding_reader(void *arg) {
  close(sv[0]);
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_CONSUMER, NULL);
  for (uint64_t i = 0;; i++) {
    zc_chan_msg_t m;
    REQUIREF(zc_chan_receive(ch, &m, -1) == 0, "receive: %s", strerror(errno));
    if (i % 3 != 0) zc_chan_release(ch, &m); /* every third message is held until death */
  }
}

static int t_kill_consumer(int argc, char **argv) {
  seqpacket_pair(sv);
  pid_t c = spawn(holding_reader, NULL);
  close(sv[1]);
  /* 1500 messages pass the 1 MiB queued budget: wait for the consumer as long as it takes (the default
   * 1 s is a bet on its pace); after the kill the wait ends with EPIPE */
  zc_chan_config_t cfg = {.block_timeout_ms = -1};
  zc_chan_t *ch = open_end(sv[0], ZC_CHAN_PRODUCER, &cfg);
  zc_chan_stats_t st;
  for (uint64_t i = 0; i < 1500; i++) {
    void *p = zc_chan_loan(ch, msg_size(i));
    REQUIREF(p != NULL, "loan: %s", strerror(errno));
    fill_pattern(p, msg_size(i), i);
    REQUIREF(zc_chan_send(ch, p, msg_size(i), 1) == 0, "send: %s", strerror(errno));
  }
  do { /* let the consumer take and release some */
    zc_chan_collect(ch);
    zc_chan_stats(ch, &st);
  } while (st.returned < 500);
  kill(c, SIGKILL);
  REQUIREF(reap(c) == 128 + SIGKILL, "consumer was not killed");
  int err = 0;
  for (uint64_t i = 0; i < 10000 && err == 0; i++) { /* keep producing: the full ring reveals the death */
    void *p = zc_chan_loan(ch, msg_size(i));
    if (p == NULL || zc_chan_send(ch, p, msg_size(i), 1) != 0) err = errno;
  }
  REQUIREF(err == EPIPE, "producing into a dead consumer ended with errno %d, expected EPIPE", err);
  zc_chan_stats(ch, &st);
  REQUIREF(st.reclaimed > 0 && st.returned + st.reclaimed == st.sent, "sent %lu = returned %lu + reclaimed %lu",
           (unsigned long)st.sent, (unsigned long)st.returned, (unsigned long)st.reclaimed);
  REQUIREF(strstr(zc_chan_error(ch), "consumer closed or died") != NULL, "error text: %s", zc_chan_error(ch));
  check_reclaimed(ch, EPIPE);
  printf("kill_consumer: sent %lu, returned %lu, reclaimed %lu\n", (unsigned long)st.sent, (unsigned long)st.returned,
         (unsigned long)st.reclaimed);
  zc_chan_close(ch);
  return 0;
}

static int sleeping_reader(void *arg) {
  close(sv[0]);
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_CONSUMER, NULL);
  (void)ch;
  for (;;) pause();
  return 0;
}

static int t_kill_consumer_blocked(int argc, char **argv) {
  seqpacket_pair(sv);
  pid_t c = spawn(sleeping_reader, NULL);
  close(sv[1]);
  zc_chan_config_t cfg = {.ring_entries = 64, .policy = ZC_CHAN_BLOCK, .block_timeout_ms = -1};
  zc_chan_t *ch = open_end(sv[0], ZC_CHAN_PRODUCER, &cfg);
  for (int i = 0; i < 64; i++) {
    void *p = zc_chan_loan(ch, 200);
    REQUIREF(p != NULL && zc_chan_send(ch, p, 200, 1) == 0, "send %d", i);
  }
  victim = c;
  pthread_t t;
  pthread_create(&t, NULL, killer, (void *)(intptr_t)200);
  void *p = zc_chan_loan(ch, 200);
  REQUIREF(zc_chan_send(ch, p, 200, 1) == -1 && errno == EPIPE, "blocked send ended with errno %d, expected EPIPE", errno);
  pthread_join(t, NULL);
  REQUIREF(reap(c) == 128 + SIGKILL, "consumer was not killed");
  check_reclaimed(ch, EPIPE);
  zc_chan_close(ch);
  return 0;
}

/* ---- kill -9 of the producer ---- */
static int endless_writer(void *arg) {
  close(sv[0]);
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_PRODUCER, NULL);
  long stop = (long)(intptr_t)arg;
  for (uint64_t i = 0; stop < 0 || i < (uint64_t)stop; i++) {
    void *p = zc_chan_loan(ch, msg_size(i));
    REQUIREF(p != NULL, "loan: %s", strerror(errno));
    fill_pattern(p, msg_size(i), i);
    REQUIREF(zc_chan_send(ch, p, msg_size(i), (uint32_t)i) == 0, "send: %s", strerror(errno));
  }
  for (;;) pause();
  return 0;
}

static int t_kill_producer(int argc, char **argv) {
  seqpacket_pair(sv);
  pid_t c = spawn(endless_writer, (void *)(intptr_t)-1);
  close(sv[1]);
  zc_chan_t *ch = open_end(sv[0], ZC_CHAN_CONSUMER, NULL);
  zc_chan_msg_t held[10];
  uint64_t i = 0;
  for (; i < 3000; i++) {
    zc_chan_msg_t m;
    REQUIREF(zc_chan_receive(ch, &m, -1) == 0, "receive: %s", strerror(errno));
    REQUIREF(m.type == (uint32_t)i && m.len == msg_size(i) && verify_pattern(m.data, m.len, i) < 0, "message %lu", (unsigned long)i);
    if (i >= 2990) held[i - 2990] = m;
    else zc_chan_release(ch, &m);
  }
  kill(c, SIGKILL);
  REQUIREF(reap(c) == 128 + SIGKILL, "producer was not killed");
  zc_chan_msg_t m;
  int r;
  while ((r = zc_chan_receive(ch, &m, -1)) == 0) { /* what it published before dying is still there */
    REQUIREF(m.type == (uint32_t)i && m.len == msg_size(i) && verify_pattern(m.data, m.len, i) < 0, "message %lu", (unsigned long)i);
    zc_chan_release(ch, &m);
    i++;
  }
  REQUIREF(errno == EPIPE, "receive after the producer died: errno %d (%s)", errno, zc_chan_error(ch));
  for (int k = 0; k < 10; k++) /* the held views are still mapped and intact */
    REQUIREF(verify_pattern(held[k].data, held[k].len, 2990 + (uint64_t)k) < 0, "held message %d changed", k);
  struct pollfd pf = {zc_chan_fd(ch), POLLIN, 0};
  REQUIREF(poll(&pf, 1, 0) == 1 && (pf.revents & (POLLIN | POLLHUP)), "the channel fd does not show the hang-up");
  REQUIREF(zc_chan_release_batch(ch, held, 10) == 0, "release after death is harmless");
  REQUIREF(zc_chan_arm(ch) == -1 && errno == EPIPE, "arm after death");
  printf("kill_producer: %lu messages received, EPIPE after the kill\n", (unsigned long)i);
  zc_chan_close(ch);
  return 0;
}

static int t_kill_producer_blocked(int argc, char **argv) {
  seqpacket_pair(sv);
  pid_t c = spawn(endless_writer, (void *)(intptr_t)5);
  close(sv[1]);
  zc_chan_config_t cfg = {.spin_ns = 1000};
  zc_chan_t *ch = open_end(sv[0], ZC_CHAN_CONSUMER, &cfg);
  zc_chan_msg_t m;
  for (int i = 0; i < 5; i++) {
    REQUIREF(zc_chan_receive(ch, &m, -1) == 0, "receive: %s", strerror(errno));
    zc_chan_release(ch, &m);
  }
  victim = c;
  pthread_t t;
  pthread_create(&t, NULL, killer, (void *)(intptr_t)200);
  REQUIREF(zc_chan_receive(ch, &m, -1) == -1 && errno == EPIPE, "blocked receive: errno %d, expected EPIPE", errno);
  pthread_join(t, NULL);
  REQUIREF(reap(c) == 128 + SIGKILL, "producer was not killed");
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  REQUIREF(st.sleeps >= 1, "the consumer never slept");
  zc_chan_close(ch);
  return 0;
}

/* ---- a hostile consumer ---- */
static const char *const consumer_abuse[] = {
    "segment out of range", "offset out of range", "misaligned offset",     "released twice",
    "wrong generation",     "return ring head",    "consumer ring tail",    "not at a slot start",
    "offset outside any page", "slot not sent"};
enum { N_CONSUMER_ABUSE = sizeof consumer_abuse / sizeof consumer_abuse[0] };

static void push_raw(zc_chan_t *ch, uint64_t h) {
  ch->ret[ch->c_ret_head & (ch->ret_cap - 1)] = h;
  ch->c_ret_head++;
  __atomic_store_n(&ch->ctl->ret_head, ch->c_ret_head, __ATOMIC_RELEASE);
}

static int hostile_reader(void *arg) {
  int kind = (int)(intptr_t)arg;
  close(sv[0]);
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_CONSUMER, NULL);
  zc_chan_msg_t m1, m2;
  REQUIREF(zc_chan_receive(ch, &m1, -1) == 0 && zc_chan_receive(ch, &m2, -1) == 0, "receive");
  switch (kind) {
    case 0: push_raw(ch, chan_handle(200, chan_handle_off(m1.handle), chan_handle_gen(m1.handle))); break;
    case 1: push_raw(ch, chan_handle(0, 0xfffffff0u, chan_handle_gen(m1.handle))); break;
    case 2: push_raw(ch, m1.handle + ((uint64_t)8 << CHAN_GEN_BITS)); break;
    case 3: zc_chan_release(ch, &m1); zc_chan_release(ch, &m1); break;
    case 4: push_raw(ch, m1.handle ^ 1); break;
    case 5: __atomic_store_n(&ch->ctl->ret_head, ch->c_ret_head + ch->ret_cap + 5, __ATOMIC_RELEASE); break;
    case 6: __atomic_store_n(&ch->ctl->tail, 1000000, __ATOMIC_RELEASE); break;
    case 7: push_raw(ch, m1.handle + ((uint64_t)16 << CHAN_GEN_BITS)); break;
    case 8: push_raw(ch, chan_handle(0, 3 * CHAN_PAGE_SIZE, chan_handle_gen(m1.handle))); break; /* unused page */
    case 9: { /* the slot after m2: the producer has loaned it and not sent it */
      uint32_t o1 = chan_handle_off(m1.handle), o2 = chan_handle_off(m2.handle);
      push_raw(ch, chan_handle(0, o2 + (o2 - o1), chan_handle_gen(m2.handle)));
      break;
    }
  }
  REQUIREF(write(pipefd[1], "d", 1) == 1, "pipe");
  if (kind == 6) { /* receiving would overwrite the garbage tail: just wait for the hang-up */
    struct pollfd pf = {zc_chan_fd(ch), POLLIN, 0};
    char buf[64];
    REQUIREF(poll(&pf, 1, -1) == 1 && recv(pf.fd, buf, sizeof buf, MSG_DONTWAIT) <= 0, "no hang-up from the producer");
  } else {
    zc_chan_msg_t m;
    while (zc_chan_receive(ch, &m, -1) == 0) {
    }
    REQUIREF(errno == EPIPE, "the producer should have closed the channel: errno %d", errno);
  }
  zc_chan_close(ch);
  return 0;
}

static int t_hostile_consumer(int argc, char **argv) {
  for (int kind = 0; kind < N_CONSUMER_ABUSE; kind++) {
    seqpacket_pair(sv);
    REQUIREF(pipe(pipefd) == 0, "pipe");
    pid_t c = spawn(hostile_reader, (void *)(intptr_t)kind);
    close(sv[1]);
    zc_chan_config_t cfg = {.ring_entries = 64, .policy = ZC_CHAN_FAIL};
    zc_chan_t *ch = open_end(sv[0], ZC_CHAN_PRODUCER, &cfg);
    void *loan[3]; /* kind 9: a third loan, the slot after the two sent, loaned before they go */
    for (int i = 0; i < (kind == 9 ? 3 : 2); i++) REQUIREF((loan[i] = zc_chan_loan(ch, 100)) != NULL, "loan");
    for (int i = 0; i < 2; i++) {
      fill_pattern(loan[i], 100, (uint64_t)i);
      REQUIREF(zc_chan_send(ch, loan[i], 100, 1) == 0, "send");
    }
    void *unsent = kind == 9 ? loan[2] : NULL;
    char b;
    REQUIREF(read(pipefd[0], &b, 1) == 1, "the hostile consumer did not get its messages");
    int err = 0;
    if (kind == 6) { /* the producer reads the consumer's tail only when the ring looks full */
      for (int i = 0; i < 100 && err == 0; i++) {
        void *p = zc_chan_loan(ch, 100);
        if (p == NULL || zc_chan_send(ch, p, 100, 1) != 0) err = errno;
      }
    } else {
      err = collect_until_dead(ch);
    }
    REQUIREF(err == EPROTO, "abuse %d (%s): errno %d, expected EPROTO", kind, consumer_abuse[kind], err);
    REQUIREF(strstr(zc_chan_error(ch), consumer_abuse[kind]) != NULL, "abuse %d: error text \"%s\" lacks \"%s\"", kind,
             zc_chan_error(ch), consumer_abuse[kind]);
    zc_chan_stats_t st;
    zc_chan_stats(ch, &st);
    REQUIREF(st.rejected >= 1, "nothing counted as rejected");
    if (unsent) REQUIREF(zc_chan_cancel(ch, unsent) == 0, "cancel of a loan after the channel failed: %s", strerror(errno));
    check_reclaimed(ch, EPROTO);
    printf("hostile consumer %d: rejected: %s\n", kind, zc_chan_error(ch));
    zc_chan_close(ch);
    REQUIREF(reap(c) == 0, "hostile consumer %d did not see the channel closed", kind);
    close(pipefd[0]);
    close(pipefd[1]);
  }
  return 0;
}

/* ---- a hostile producer ---- */
static const char *const producer_abuse[] = {"segment not announced",
                                             "runs past the end of its segment",
                                             "misaligned offset",
                                             "length too large",
                                             "neither published nor empty",
                                             "not a sealed memory file",
                                             "not a sealed memory file of 8388608 bytes",
                                             "bad control-segment record",
                                             "bad data-segment record",
                                             "not sealed against writes (F_SEAL_FUTURE_WRITE",
                                             "seal set is not closed (F_SEAL_SEAL)"};
enum { N_PRODUCER_ABUSE = sizeof producer_abuse / sizeof producer_abuse[0] };

static void wait_hangup(int fd) {
  for (;;) {
    char buf[64];
    struct pollfd pf = {fd, POLLIN, 0};
    REQUIREF(poll(&pf, 1, 10000) == 1, "the consumer never closed the socket");
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) return;
  }
}

static void send_wire(int fd, unsigned kind, uint32_t a, uint32_t b, uint64_t size, int pass) {
  chan_wire_t w = {CHAN_MAGIC, (uint16_t)kind, ZC_CHAN_PRODUCER, a, b, size};
  int r = zc_os_msg_send(fd, &w, sizeof w, pass, true);
  REQUIREF(r == 0 || errno == EPIPE || errno == ECONNRESET, "send record: %s", strerror(errno)); /* the consumer may have hung up */
}

/* Speaks the protocol by hand: a correct greeting and control segment, then a bad record. */
static void raw_producer(int kind) {
  int fd = sv[1];
  send_wire(fd, WIRE_HELLO, CHAN_VERSION, 0, 0, -1);
  size_t csize = chan_ctl_size(64, 128);
  int cfd = zc_os_shm_create("ctl", csize);
  if (kind != 10) zc_os_shm_seal(cfd, false);
  send_wire(fd, WIRE_CTL, kind == 7 ? 100 : 64, 128, csize, cfd);
  size_t size = (size_t)4 << 20;
  int dfd;
  if (kind == 5) { /* a memory file the producer could still shrink under the consumer */
    dfd = memfd_create("zcmem-chan-data", MFD_CLOEXEC);
    REQUIREF(dfd >= 0 && ftruncate(dfd, (off_t)size) == 0, "memfd");
  } else {
    dfd = zc_os_shm_create("zcmem-chan-data", size);
    if (kind != 9) REQUIREF(zc_os_shm_seal(dfd, true) == 0, "seal: %s", strerror(errno)); /* 9: writable by all */
  }
  send_wire(fd, WIRE_SEG, kind == 8 ? 3 : 0, 0, kind == 6 ? size * 2 : size, dfd);
  /* one descriptor into segment 0 so the consumer looks for it */
  chan_ctl_t *ctl = zc_os_shm_map(cfd, csize, true);
  chan_desc_t *ring = (chan_desc_t *)((char *)ctl + CHAN_RING_OFFSET);
  ring[0] = (chan_desc_t){0, chan_handle(0, 0, 1), 10, 1, 0};
  __atomic_store_n(&ring[0].seq, 1, __ATOMIC_RELEASE);
  wait_hangup(fd);
}

static int hostile_writer(void *arg) {
  int kind = (int)(intptr_t)arg;
  close(sv[0]);
  if (kind >= 5) {
    raw_producer(kind);
    return 0;
  }
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_PRODUCER, NULL);
  void *p = zc_chan_loan(ch, 100);
  fill_pattern(p, 100, 1);
  REQUIREF(zc_chan_send(ch, p, 100, 1) == 0, "send");
  size_t segsize = ch->seg[0].size;
  chan_desc_t d = {ch->p_head + 1, chan_handle(0, 4096, 1), 100, 9, 0};
  switch (kind) {
    case 0: d.handle = chan_handle(7, 0, 1); break;
    case 1: d.handle = chan_handle(0, (uint32_t)(segsize - 16), 1); break;
    case 2: d.handle = chan_handle(0, 8, 1); break;
    case 3: d.len = 1u << 20; break;
    case 4: d.seq += ch->ring_cap + 7; break; /* a sequence from no lap at all */
  }
  chan_desc_t *slot = &ch->ring[ch->p_head & (ch->ring_cap - 1)];
  uint64_t seq = d.seq;
  d.seq = 0;
  *slot = d; /* the fields first, then the sequence that publishes them */
  __atomic_store_n(&slot->seq, seq, __ATOMIC_RELEASE);
  ch->p_head++;
  REQUIREF(collect_until_dead(ch) == EPIPE, "the consumer should have closed the channel");
  zc_chan_close(ch);
  return 0;
}

static int t_hostile_producer(int argc, char **argv) {
  for (int kind = 0; kind < N_PRODUCER_ABUSE; kind++) {
    seqpacket_pair(sv);
    pid_t c = spawn(hostile_writer, (void *)(intptr_t)kind);
    close(sv[1]);
    char why[512] = "";
    stderr_capture_t cap = capture_stderr(); /* a failed open reports its reason there only */
    zc_chan_t *ch = zc_chan_open(sv[0], ZC_CHAN_CONSUMER, NULL);
    int err = errno;
    capture_end(cap, why, sizeof why);
    errno = err;
    if (ch != NULL) {
      zc_chan_msg_t m;
      int good = 0;
      while (zc_chan_receive(ch, &m, -1) == 0) { /* only the one valid message may come out */
        REQUIREF(good == 0 && m.len == 100 && verify_pattern(m.data, 100, 1) < 0, "abuse %d: a bad descriptor was handed out (len %u)",
                 kind, m.len);
        zc_chan_release(ch, &m);
        good++;
      }
      err = errno;
      REQUIREF(good == (kind < 5), "abuse %d: %d valid messages", kind, good); /* the valid one comes first */
      snprintf(why, sizeof why, "%s", zc_chan_error(ch));
      zc_chan_stats_t st;
      zc_chan_stats(ch, &st);
      REQUIREF(st.held_msgs == 0, "no view handed out");
    }
    REQUIREF(err == EPROTO, "abuse %d (%s): errno %d, expected EPROTO", kind, producer_abuse[kind], err);
    REQUIREF(strstr(why, producer_abuse[kind]) != NULL, "abuse %d: error text \"%s\" lacks \"%s\"", kind, why,
             producer_abuse[kind]);
    /* a bad control segment fails the open; a bad data segment fails it too unless its record arrived
     * after the open, then the first receive fails (the reason is checked either way) */
    REQUIREF(kind < 5 ? ch != NULL : ch == NULL || (kind != 7 && kind != 10), "abuse %d: open %s", kind,
             ch ? "succeeded" : "failed");
    printf("hostile producer %d: rejected%s%s\n", kind, ch ? ": " : " at open: ", why);
    if (ch) zc_chan_close(ch);
    REQUIREF(reap(c) == 0, "hostile producer %d did not see the channel closed", kind);
  }
  return 0;
}

/* ---- fuzz: random garbage all over the control segment, from either side ---- */
/* One garbage write into the part of the control segment the *other* side reads: random words, or
 * plausible ones (nearby counters, handles seen before with a bit flipped), which get further into the
 * checks than pure noise. The consumer scribbles on tail, ret_head, the return ring and the wake-up words;
 * the producer on the descriptor ring and ret_tail. */
static void scribble(zc_chan_t *ch, rng_t *x, uint64_t seen, int as_consumer) {
  uint64_t r = rng_next(x), flip = 1ull << ((r >> 8) % 64);
  chan_ctl_t *ctl = ch->ctl;
  if (as_consumer) {
    uint64_t *ret = ch->ret;
    switch (r % 6) {
      case 0: __atomic_store_n(&ret[rng_next(x) % ch->ret_cap], rng_next(x), __ATOMIC_RELAXED); break;
      case 1: __atomic_store_n(&ctl->tail, ctl->tail + (r >> 8) % 9 - 4, __ATOMIC_RELEASE); break;
      case 2: __atomic_store_n(&ctl->ret_head, ctl->ret_head + (r >> 8) % 9 - 4, __ATOMIC_RELEASE); break;
      case 3: /* a plausible handle pushed for real */
        __atomic_store_n(&ret[ch->c_ret_head & (ch->ret_cap - 1)], seen ^ (r & 1 ? flip : 0), __ATOMIC_RELAXED);
        ch->c_ret_head++;
        __atomic_store_n(&ctl->ret_head, ch->c_ret_head, __ATOMIC_RELEASE);
        break;
      case 4: __atomic_store_n(&ctl->c_wait, (uint32_t)rng_next(x), __ATOMIC_RELAXED); break;
      case 5: __atomic_store_n(&ctl->space_word, (uint32_t)rng_next(x), __ATOMIC_RELAXED); break;
    }
  } else {
    chan_desc_t *d = &ch->ring[(r & 1 ? ch->p_head : rng_next(x)) % ch->ring_cap];
    switch (r % 5) {
      case 0: __atomic_store_n(&d->seq, rng_next(x) % 3 ? d->seq + ch->ring_cap : rng_next(x), __ATOMIC_RELEASE); break;
      case 1: __atomic_store_n(&d->handle, seen ^ flip, __ATOMIC_RELAXED); break;
      case 2: __atomic_store_n(&d->len, (uint32_t)(rng_next(x) % 70000), __ATOMIC_RELAXED); break;
      case 3: __atomic_store_n(&d->handle, rng_next(x), __ATOMIC_RELAXED); break;
      case 4: __atomic_store_n(&ctl->ret_tail, ctl->ret_tail + (r >> 8) % 9 - 4, __ATOMIC_RELEASE); break;
    }
  }
}

static int in_segments(zc_chan_t *ch, const void *p, size_t len) {
  for (unsigned i = 0; i < ch->nseg; i++)
    if ((const char *)p >= ch->seg[i].base && (const char *)p + len <= ch->seg[i].base + ch->seg[i].size) return 1;
  return 0;
}

static int fuzz_reader(void *arg) {
  uint64_t seen = 0, sum = 0;
  rng_t x;
  rng_seed(&x, 2 * (uint64_t)(uintptr_t)arg + 1);
  close(sv[0]);
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_CONSUMER, NULL);
  for (int it = 0; it < 3000; it++) {
    zc_chan_msg_t m;
    if (zc_chan_receive(ch, &m, 20) == 0) {
      REQUIREF(in_segments(ch, m.data, m.len), "a view outside the mapped segments");
      for (uint32_t i = 0; i < m.len; i++) sum += ((const unsigned char *)m.data)[i]; /* read it all */
      seen = m.handle;
      zc_chan_release(ch, &m);
    } else if (errno != ETIMEDOUT && errno != EAGAIN) {
      break;
    }
    if (it % 7 == 3) scribble(ch, &x, seen, 1);
  }
  zc_chan_close(ch);
  return sum == 1 ? 1 : 0; /* keeps the reads */
}

static int fuzz_writer(void *arg) {
  uint64_t seen = 0;
  rng_t x;
  rng_seed(&x, 2 * (uint64_t)(uintptr_t)arg);
  close(sv[0]);
  zc_chan_config_t cfg = {.policy = ZC_CHAN_FAIL, .ring_entries = 64};
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_PRODUCER, &cfg);
  for (int it = 0; it < 3000; it++) {
    void *p = zc_chan_loan(ch, 1 + rng_next(&x) % 20000);
    if (p == NULL) {
      if (errno != EAGAIN) break;
      zc_chan_collect(ch);
      continue;
    }
    seen = chan_handle(0, (uint32_t)((char *)p - ch->seg[0].base), 1);
    if (zc_chan_send(ch, p, 100, 1) != 0) {
      if (errno != EAGAIN) break;
      zc_chan_cancel(ch, p);
      zc_chan_collect(ch);
    }
    if (it % 5 == 2) scribble(ch, &x, seen, 0);
  }
  zc_chan_close(ch);
  return 0;
}

static int t_fuzz(int argc, char **argv) {
  int ends[2][2] = {{0, 0}, {0, 0}}; /* [producer, consumer] x [EPROTO, EPIPE] */
  for (int round = 0; round < 12; round++) {
    /* a hostile consumer against the real producer */
    seqpacket_pair(sv);
    pid_t c = spawn(fuzz_reader, (void *)(intptr_t)(round + 1));
    close(sv[1]);
    zc_chan_config_t cfg = {.policy = ZC_CHAN_FAIL, .ring_entries = 64, .max_bytes = 8 << 20, .first_segment = 1 << 20};
    zc_chan_t *ch = open_end(sv[0], ZC_CHAN_PRODUCER, &cfg);
    rng_t x;
    rng_seed(&x, (uint64_t)round * 7919 + 3);
    int err = 0;
    for (int i = 0; i < 100000 && err == 0; i++) {
      size_t n = 1 + rng_next(&x) % 20000;
      void *p = zc_chan_loan(ch, n);
      if (p == NULL) {
        if (errno != EAGAIN) err = errno;
        else if (zc_chan_collect(ch) < 0) err = errno;
        continue;
      }
      memset(p, 0x5a, n);
      if (zc_chan_send(ch, p, n, 2) != 0) {
        if (errno != EAGAIN) err = errno;
        zc_chan_cancel(ch, p);
        if (err == 0 && zc_chan_collect(ch) < 0) err = errno;
      }
    }
    if (err == 0) err = collect_until_dead(ch);
    REQUIREF(err == EPROTO || err == EPIPE, "round %d: the producer ended with errno %d (%s)", round, err, zc_chan_error(ch));
    ends[0][err == EPROTO ? 0 : 1]++;
    check_reclaimed(ch, err);
    zc_chan_close(ch);
    REQUIREF(reap(c) == 0, "round %d: the hostile consumer crashed", round);
    /* a hostile producer against the real consumer */
    seqpacket_pair(sv);
    c = spawn(fuzz_writer, (void *)(intptr_t)(round + 1));
    close(sv[1]);
    ch = open_end(sv[0], ZC_CHAN_CONSUMER, NULL);
    zc_chan_msg_t m;
    uint64_t sum = 0;
    while (zc_chan_receive(ch, &m, -1) == 0) {
      REQUIREF(in_segments(ch, m.data, m.len), "round %d: a view outside the mapped segments", round);
      for (uint32_t i = 0; i < m.len; i++) sum += ((const unsigned char *)m.data)[i];
      zc_chan_release(ch, &m);
    }
    REQUIREF(errno == EPROTO || errno == EPIPE, "round %d: the consumer ended with errno %d (%s)", round, errno,
             zc_chan_error(ch));
    ends[1][errno == EPROTO ? 0 : 1]++;
    zc_chan_close(ch);
    REQUIREF(reap(c) == 0, "round %d: the hostile producer crashed", round);
  }
  printf("fuzz: producer closed %d channels as corrupt (EPROTO), saw %d end (EPIPE); consumer %d and %d\n",
         ends[0][0], ends[0][1], ends[1][0], ends[1][1]);
  REQUIREF(ends[0][0] > 0 && ends[1][0] > 0, "garbage was never detected on one side");
  return 0;
}

/* ---- readonly: the consumer's view cannot be made writable ---- */
static void on_segv(int sig) { _exit(42); }

static int writing_reader(void *arg) {
  close(sv[0]);
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_CONSUMER, NULL);
  zc_chan_msg_t m;
  REQUIREF(zc_chan_receive(ch, &m, -1) == 0, "receive");
  void *page = (void *)((uintptr_t)m.data & ~(uintptr_t)4095);
  REQUIREF(mprotect(page, 4096, PROT_READ | PROT_WRITE) == -1 && errno == EACCES,
           "mprotect to writable: errno %d (the segment must be sealed against writes)", errno);
  signal(SIGSEGV, on_segv);
  *(volatile char *)m.data = 0x55;
  return 1; /* the write went through */
}

static int t_readonly(int argc, char **argv) {
  seqpacket_pair(sv);
  pid_t c = spawn(writing_reader, NULL);
  close(sv[1]);
  zc_chan_t *ch = open_end(sv[0], ZC_CHAN_PRODUCER, NULL);
  void *p = zc_chan_loan(ch, 1000);
  fill_pattern(p, 1000, 5);
  REQUIREF(zc_chan_send(ch, p, 1000, 1) == 0, "send");
  REQUIREF(reap(c) == 42, "the consumer's write did not fault");
  REQUIREF(verify_pattern(p, 1000, 5) < 0, "the payload changed");
  REQUIREF(collect_until_dead(ch) == EPIPE, "death not seen");
  check_reclaimed(ch, EPIPE);
  zc_chan_close(ch);
  return 0;
}

/* ---- fdlimit ---- */
static void limit_fds_to_now(void) {
  int low = fcntl(0, F_DUPFD_CLOEXEC, 0); /* the lowest free descriptor */
  close(low);
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = (rlim_t)low;
  REQUIREF(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit");
}

static int limited_consumer_open(void *arg) {
  close(sv[0]);
  limit_fds_to_now();
  zc_chan_t *ch = zc_chan_open(sv[1], ZC_CHAN_CONSUMER, NULL);
  REQUIREF(ch == NULL && errno == EMFILE, "open with no fd left: %p errno %d", (void *)ch, errno);
  return 0;
}

static int limited_consumer_grow(void *arg) {
  close(sv[0]);
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_CONSUMER, NULL);
  limit_fds_to_now();
  REQUIREF(write(pipefd[1], "r", 1) == 1, "pipe");
  zc_chan_msg_t m;
  int n = 0;
  while (zc_chan_receive(ch, &m, -1) == 0) n++; /* held: the producer must grow */
  REQUIREF(errno == EMFILE && strstr(zc_chan_error(ch), "RLIMIT_NOFILE") != NULL, "after %d messages: errno %d (%s)", n,
           errno, zc_chan_error(ch));
  printf("fdlimit at growth: %d messages, then: %s\n", n, zc_chan_error(ch));
  zc_chan_close(ch);
  return 0;
}

static int limited_producer(void *arg) {
  close(sv[0]);
  limit_fds_to_now();
  zc_chan_t *ch = zc_chan_open(sv[1], ZC_CHAN_PRODUCER, NULL);
  REQUIREF(ch == NULL && errno == EMFILE, "producer open with no fd left: errno %d", errno);
  return 0;
}

static int t_fdlimit(int argc, char **argv) {
  /* the consumer cannot receive the control segment */
  seqpacket_pair(sv);
  pid_t c = spawn(limited_consumer_open, NULL);
  close(sv[1]);
  zc_chan_t *ch = zc_chan_open(sv[0], ZC_CHAN_PRODUCER, NULL);
  if (ch != NULL) {
    REQUIREF(collect_until_dead(ch) == EPIPE, "producer did not see the consumer go");
    zc_chan_close(ch);
  }
  REQUIREF(reap(c) == 0, "consumer at open");
  /* the consumer cannot receive a new data segment */
  seqpacket_pair(sv);
  REQUIREF(pipe(pipefd) == 0, "pipe");
  c = spawn(limited_consumer_grow, NULL);
  close(sv[1]);
  zc_chan_config_t cfg = {.first_segment = 1 << 20, .block_timeout_ms = -1}; /* 1 MiB queued: waits for the consumer */
  ch = open_end(sv[0], ZC_CHAN_PRODUCER, &cfg);
  char b;
  REQUIREF(read(pipefd[0], &b, 1) == 1, "ready");
  int err = 0;
  for (int i = 0; i < 400 && err == 0; i++) {
    void *p = zc_chan_loan(ch, 16384);
    if (p == NULL || zc_chan_send(ch, p, 16384, 1) != 0) err = errno;
  }
  if (err == 0) err = collect_until_dead(ch);
  REQUIREF(err == EPIPE, "producer: errno %d, expected EPIPE", err);
  check_reclaimed(ch, EPIPE);
  zc_chan_close(ch);
  REQUIREF(reap(c) == 0, "consumer at growth");
  /* the producer cannot create its memory files */
  seqpacket_pair(sv);
  c = spawn(limited_producer, NULL);
  close(sv[1]);
  ch = zc_chan_open(sv[0], ZC_CHAN_CONSUMER, NULL);
  REQUIREF(ch == NULL, "consumer opened a channel with a failed producer");
  REQUIREF(reap(c) == 0, "producer at open");
  return 0;
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {
      {"kill_consumer", t_kill_consumer}, {"kill_consumer_blocked", t_kill_consumer_blocked},
      {"kill_producer", t_kill_producer}, {"kill_producer_blocked", t_kill_producer_blocked},
      {"hostile_consumer", t_hostile_consumer}, {"hostile_producer", t_hostile_producer}, {"fuzz", t_fuzz},
      {"readonly", t_readonly}, {"fdlimit", t_fdlimit}, {NULL, NULL}};
  alarm(120);
  signal(SIGPIPE, SIG_IGN);
  return zc_run_case(argc, argv, cases);
}
