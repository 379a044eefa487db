/* Channel messages above 64 KiB (runs of whole pages) and loan resizing, across two processes (fork).
 *
 *   large_flow     random sizes 1 B .. 6 MiB, every byte checked by the consumer, held and released out
 *                  of order; a large view lies at the producer's own offset (no copy); all memory back
 *   large_max      zc_chan_max_msg: a loan of exactly it works (a segment made for it), one byte more is
 *                  EMSGSIZE; after release the same size is served again without a new segment
 *   large_frag     a channel capped at one 4 MiB segment: after small messages of 8 classes came back (each
 *                  class keeps an empty page), a 4 MiB message still gets the whole segment
 *   resize         loan_resize in place (a run trimmed: pages back at once; grown over free pages; a slot
 *                  that still fits) and moved (grown beyond the segment, a slot grown, shrunk to a class
 *                  at most half as large, a run shrunk to a slot): the kept bytes arrive intact; errors
 *   hostile_large  a producer publishing large descriptors that run past their segment, start inside a
 *                  page, or whose offset + length wraps 32 bits: EPROTO with the reason, no view handed out
 *   kill_large     a consumer killed while it holds large messages: the producer reclaims all of them
 */
#include "zc_test.h"

#include "chan_internal.h"
#include "zcmem_channel.h"

#include <poll.h>
#include <sys/socket.h>

static int sv[2], pipefd[2];

static zc_chan_t *open_end(int fd, zc_chan_role_t role, const zc_chan_config_t *cfg) {
  zc_chan_t *ch = zc_chan_open(fd, role, cfg);
  CHECKF(ch != NULL, "open: %s", strerror(errno));
  REQUIRE(ch != NULL);
  return ch;
}

static void pair(void) {
  REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
  REQUIRE(pipe(pipefd) == 0);
}

/* Where p lies: its segment's index and offset (either side's own mappings), or -1. */
static long seg_offset(zc_chan_t *ch, const void *p, size_t len, unsigned *seg) {
  for (unsigned i = 0; i < ch->nseg; i++) {
    const char *b = ch->seg[i].base;
    if ((const char *)p >= b && (const char *)p + len <= b + ch->seg[i].size) {
      *seg = i;
      return (long)((const char *)p - b);
    }
  }
  return -1;
}

static void check_all_back(zc_chan_t *ch) {
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  CHECKF(st.inflight_msgs == 0 && st.loaned_msgs == 0 && st.loaned_bytes == 0 && st.free_bytes == st.segment_bytes &&
             st.returned + st.reclaimed == st.sent,
         "inflight %lu, loaned %lu (%lu B), free %lu of %lu, sent %lu = returned %lu + reclaimed %lu",
         (unsigned long)st.inflight_msgs, (unsigned long)st.loaned_msgs, (unsigned long)st.loaned_bytes,
         (unsigned long)st.free_bytes, (unsigned long)st.segment_bytes, (unsigned long)st.sent,
         (unsigned long)st.returned, (unsigned long)st.reclaimed);
}

/* Wait until the consumer has given every message back (it may have closed its end already). */
static uint64_t inflight_now(zc_chan_t *ch) {
  zc_chan_collect(ch);
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  return st.inflight_msgs;
}
/* The consumer's pace, not a bound under test: up to 120 s (a 60 MiB message checked byte by byte under
 * TSan on a loaded 2-core machine takes tens of seconds); ctest's TIMEOUT of 300 s bounds the whole test. */
#define PEER_WAIT_MS 120000
static int wait_inflight_zero(zc_chan_t *ch) {
  int ok = WAIT_UNTIL(inflight_now(ch) == 0, PEER_WAIT_MS);
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  CHECKF(st.reclaimed == 0, "%lu messages reclaimed, not returned", (unsigned long)st.reclaimed);
  return ok;
}

/* ---- large_flow ---- */
enum { FLOW_HDR = 16 }; /* a large message starts with {segment, offset} of the producer's loan */

static size_t flow_size(uint64_t i) {
  rng_t r;
  rng_seed(&r, i * 7919 + 1);
  switch (rng_next(&r) % 3) {
    case 0: return rng_range(&r, 1, 64 << 10);
    case 1: return rng_range(&r, (64 << 10) + 1, 1 << 20);
    default: return rng_range(&r, (1 << 20) + 1, 6 << 20);
  }
}

static int flow_consumer(void *arg) {
  alarm(240); /* spawn() gives 60 s; the sanitizer builds need more for these sizes */
  uint64_t n = (uint64_t)(uintptr_t)arg;
  close(sv[0]);
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_CONSUMER, NULL);
  zc_chan_msg_t held[4];
  int nheld = 0;
  rng_t r;
  rng_seed(&r, 99);
  for (uint64_t i = 0; i < n; i++) {
    zc_chan_msg_t m;
    if (zc_chan_receive(ch, &m, -1) != 0) {
      CHECKF(0, "receive %lu: %s (%s)", (unsigned long)i, strerror(errno), zc_chan_error(ch));
      break;
    }
    size_t len = flow_size(i);
    CHECKF(m.type == i && m.len == len, "message %lu: type %u len %u, expected len %zu", (unsigned long)i, m.type, m.len, len);
    unsigned seg = 0;
    long off = seg_offset(ch, m.data, m.len, &seg);
    CHECKF(off >= 0, "message %lu: view outside the segments", (unsigned long)i);
    if (len > ZC_CHAN_MAX_MSG && m.len == len) {
      uint64_t hdr[2];
      memcpy(hdr, m.data, sizeof hdr);
      CHECKF(hdr[0] == seg && (long)hdr[1] == off && off % CHAN_PAGE_SIZE == 0,
             "message %lu: seen at segment %u offset %ld, loaned at %lu/%lu (a copy?)", (unsigned long)i, seg, off,
             (unsigned long)hdr[0], (unsigned long)hdr[1]);
      long bad = verify_pattern((const char *)m.data + FLOW_HDR, len - FLOW_HDR, i);
      CHECKF(bad < 0, "message %lu (%zu B): byte %ld wrong", (unsigned long)i, len, bad + FLOW_HDR);
    } else if (m.len == len) {
      long bad = verify_pattern(m.data, len, i);
      CHECKF(bad < 0, "message %lu (%zu B): byte %ld wrong", (unsigned long)i, len, bad);
    }
    held[nheld++] = m;
    if (nheld == 4 || i + 1 == n) { /* release out of order */
      while (nheld > 0) {
        int k = (int)(rng_next(&r) % (uint64_t)nheld);
        CHECK(zc_chan_release(ch, &held[k]) == 0);
        held[k] = held[--nheld];
      }
    }
  }
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  CHECK_EQ(st.held_msgs, 0);
  zc_chan_close(ch);
  return check_failures ? 1 : 0;
}

static int t_large_flow(int argc, char **argv) {
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  uint64_t n = 80; /* every byte is checked: instrumented loops are 5-15x slower */
#else
  uint64_t n = quick_mode(argc, argv) ? 60 : 240;
#endif
  pair();
  pid_t c = spawn(flow_consumer, (void *)(uintptr_t)n);
  close(sv[1]);
  zc_chan_config_t cfg = {0};
  cfg.max_bytes = (uint64_t)96 << 20;
  cfg.block_timeout_ms = -1; /* the consumer frees room when it can; a hung one dies at its alarm */
  zc_chan_t *ch = open_end(sv[0], ZC_CHAN_PRODUCER, &cfg);
  for (uint64_t i = 0; i < n; i++) {
    size_t len = flow_size(i);
    char *p = zc_chan_loan(ch, len);
    if (p == NULL) {
      CHECKF(0, "loan %lu of %zu B: %s (%s)", (unsigned long)i, len, strerror(errno), zc_chan_error(ch));
      break;
    }
    if (len > ZC_CHAN_MAX_MSG) {
      unsigned seg = 0;
      long off = seg_offset(ch, p, len, &seg);
      CHECKF(off >= 0 && off % CHAN_PAGE_SIZE == 0, "large loan %lu not at a page start of a segment", (unsigned long)i);
      uint64_t hdr[2] = {seg, (uint64_t)off};
      memcpy(p, hdr, sizeof hdr);
      fill_pattern(p + FLOW_HDR, len - FLOW_HDR, i);
    } else {
      CHECK(((uintptr_t)p & 15) == 0);
      fill_pattern(p, len, i);
    }
    if (zc_chan_send(ch, p, len, (uint32_t)i) != 0) {
      CHECKF(0, "send %lu: %s", (unsigned long)i, strerror(errno));
      break;
    }
  }
  CHECK(wait_inflight_zero(ch));
  check_all_back(ch);
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  CHECKF(st.segment_bytes <= cfg.max_bytes, "segments %lu B beyond the cap", (unsigned long)st.segment_bytes);
  printf("large_flow: %lu messages, %lu segments, %lu MiB of segments\n", (unsigned long)n, (unsigned long)st.segments,
         (unsigned long)(st.segment_bytes >> 20));
  int rc = reap(c);
  CHECKF(rc == 0, "consumer exit %d", rc);
  zc_chan_close(ch);
  CHECK_DONE("large_flow");
}

/* ---- large_max ---- */
static int max_consumer(void *arg) {
  alarm(240); /* spawn() gives 60 s; the sanitizer builds need more for these sizes */
  size_t want = (size_t)(uintptr_t)arg;
  close(sv[0]);
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_CONSUMER, NULL);
  for (int k = 0; k < 2; k++) {
    zc_chan_msg_t m;
    if (zc_chan_receive(ch, &m, -1) != 0) {
      CHECKF(0, "receive: %s", strerror(errno));
      break;
    }
    CHECK_EQ(m.len, want);
    long bad = verify_pattern(m.data, m.len, 5 + (uint64_t)k);
    CHECKF(bad < 0, "byte %ld wrong", bad);
    CHECK(zc_chan_release(ch, &m) == 0);
  }
  zc_chan_close(ch);
  return check_failures ? 1 : 0;
}

static int t_large_max(int argc, char **argv) {
  (void)argc, (void)argv;
  zc_chan_config_t cfg = {0};
  cfg.max_bytes = (uint64_t)64 << 20; /* first segment 4 MiB: the largest message is 60 MiB */
  cfg.block_timeout_ms = -1; /* the consumer frees room when it can; a hung one dies at its alarm */
  size_t max = (size_t)60 << 20;
  pair();
  pid_t c = spawn(max_consumer, (void *)(uintptr_t)max);
  close(sv[1]);
  zc_chan_t *ch = open_end(sv[0], ZC_CHAN_PRODUCER, &cfg);
  CHECK_EQ(zc_chan_max_msg(ch), max);
  CHECK(zc_chan_loan(ch, max + 1) == NULL && errno == EMSGSIZE);
  for (int k = 0; k < 2; k++) {
    char *p = zc_chan_loan(ch, max);
    CHECKF(p != NULL, "loan of the largest message: %s (%s)", strerror(errno), zc_chan_error(ch));
    if (p == NULL) break;
    fill_pattern(p, max, 5 + (uint64_t)k);
    CHECK(zc_chan_send(ch, p, max, 1) == 0);
    CHECK(wait_inflight_zero(ch)); /* the second loan must reuse the segment */
    zc_chan_stats_t st;
    zc_chan_stats(ch, &st);
    CHECK_EQ(st.segments, 2);
    CHECK_EQ(st.segment_bytes, cfg.max_bytes);
    CHECK_EQ(zc_chan_max_msg(ch), max); /* the largest segment still holds it */
  }
  check_all_back(ch);
  CHECK(zc_chan_loan(ch, max + 1) == NULL && errno == EMSGSIZE);
  int rc = reap(c);
  CHECKF(rc == 0, "consumer exit %d", rc);
  zc_chan_close(ch);
  CHECK_DONE("large_max");
}

/* ---- large_frag ---- */
static int frag_consumer(void *arg) {
  alarm(240); /* spawn() gives 60 s; the sanitizer builds need more for these sizes */
  int n = (int)(intptr_t)arg;
  close(sv[0]);
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_CONSUMER, NULL);
  for (int k = 0; k < n; k++) {
    zc_chan_msg_t m;
    if (zc_chan_receive(ch, &m, -1) != 0) {
      CHECKF(0, "receive %d: %s", k, strerror(errno));
      break;
    }
    CHECK(verify_pattern(m.data, m.len, m.type) < 0);
    CHECK(zc_chan_release(ch, &m) == 0);
  }
  zc_chan_close(ch);
  return check_failures ? 1 : 0;
}

static int t_large_frag(int argc, char **argv) {
  (void)argc, (void)argv;
  zc_chan_config_t cfg = {0};
  cfg.max_bytes = cfg.first_segment = (uint64_t)4 << 20; /* one segment of 8 pages, never more */
  cfg.policy = ZC_CHAN_FAIL;
  pair();
  pid_t c = spawn(frag_consumer, (void *)(intptr_t)(8 * 20 + 1));
  close(sv[1]);
  zc_chan_t *ch = open_end(sv[0], ZC_CHAN_PRODUCER, &cfg);
  CHECK_EQ(zc_chan_max_msg(ch), (size_t)4 << 20);
  for (int k = 0; k < 8 * 20; k++) { /* 8 classes, each on its own page */
    size_t len = (size_t)100 << (k % 8);
    char *p = zc_chan_loan(ch, len);
    REQUIRE(p != NULL);
    fill_pattern(p, len, (uint64_t)k);
    CHECK(zc_chan_send(ch, p, len, (uint32_t)k) == 0);
  }
  CHECK(WAIT_UNTIL(inflight_now(ch) == 0, PEER_WAIT_MS));
  char *big = zc_chan_loan(ch, (size_t)4 << 20);
  CHECKF(big != NULL, "the whole segment for one message: %s (%s)", strerror(errno), zc_chan_error(ch));
  if (big) {
    fill_pattern(big, (size_t)4 << 20, 8 * 20);
    CHECK(zc_chan_send(ch, big, (size_t)4 << 20, 8 * 20) == 0);
  }
  CHECK(wait_inflight_zero(ch));
  check_all_back(ch);
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  CHECK_EQ(st.segments, 1);
  int rc = reap(c);
  CHECKF(rc == 0, "consumer exit %d", rc);
  zc_chan_close(ch);
  CHECK_DONE("large_frag");
}

/* ---- resize ---- */
typedef struct {
  uint32_t len;
  uint64_t seed;
} expect_t;
static const expect_t resize_expect[] = {{2 << 20, 11}, {1 << 20, 12}, {100, 13}, {100, 14}, {1000, 15}, {64, 16}};
enum { N_RESIZE = sizeof resize_expect / sizeof resize_expect[0] };

static int resize_consumer(void *arg) {
  alarm(240); /* spawn() gives 60 s; the sanitizer builds need more for these sizes */
  (void)arg;
  close(sv[0]);
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_CONSUMER, NULL);
  CHECK_EQ(zc_chan_max_msg(ch), (size_t)1 << 30); /* what a consumer accepts */
  for (int k = 0; k < N_RESIZE; k++) {
    zc_chan_msg_t m;
    if (zc_chan_receive(ch, &m, -1) != 0) {
      CHECKF(0, "receive %d: %s", k, strerror(errno));
      break;
    }
    CHECK_EQ(m.type, k);
    CHECK_EQ(m.len, resize_expect[k].len);
    long bad = verify_pattern(m.data, m.len, resize_expect[k].seed);
    CHECKF(bad < 0, "message %d: byte %ld wrong", k, bad);
    CHECK(zc_chan_release(ch, &m) == 0);
  }
  zc_chan_close(ch);
  return check_failures ? 1 : 0;
}

static uint64_t loaned_bytes(zc_chan_t *ch) {
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  return st.loaned_bytes;
}
static uint64_t free_bytes(zc_chan_t *ch) {
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  return st.free_bytes;
}

static void send_expected(zc_chan_t *ch, char *p, int k) {
  long bad = verify_pattern(p, resize_expect[k].len, resize_expect[k].seed);
  CHECKF(bad < 0, "message %d: byte %ld not kept by the resize", k, bad);
  CHECK(zc_chan_send(ch, p, resize_expect[k].len, (uint32_t)k) == 0);
}

static int t_resize(int argc, char **argv) {
  (void)argc, (void)argv;
  pair();
  pid_t c = spawn(resize_consumer, NULL);
  close(sv[1]);
  zc_chan_t *ch = open_end(sv[0], ZC_CHAN_PRODUCER, NULL);
  const size_t pg = CHAN_PAGE_SIZE;
  CHECK_EQ(zc_chan_max_msg(ch), ((size_t)1 << 30) - ((size_t)4 << 20)); /* defaults: 1 GiB cap, 4 MiB used */
  CHECK(zc_chan_loan(ch, ((size_t)1 << 30) - ((size_t)4 << 20) + 1) == NULL && errno == EMSGSIZE);

  /* 0: a run trimmed in place (pages back at once), then grown in place over them */
  char *p = zc_chan_loan(ch, 3 << 20);
  REQUIRE(p != NULL);
  CHECK_EQ(loaned_bytes(ch), 6 * pg);
  uint64_t fr = free_bytes(ch);
  fill_pattern(p, 3 << 20, 11);
  char *q = zc_chan_loan_resize(ch, p, (1 << 20) + 5, (1 << 20) + 5);
  CHECK(q == p);
  CHECK_EQ(loaned_bytes(ch), 3 * pg);
  CHECK_EQ(free_bytes(ch), fr + 3 * pg);
  q = zc_chan_loan_resize(ch, q, 2 << 20, (1 << 20) + 5);
  CHECK(q == p);
  CHECK_EQ(loaned_bytes(ch), 4 * pg);
  fill_pattern(q, 2 << 20, 11); /* bytes past keep are unspecified: write them all again */
  send_expected(ch, q, 0);

  /* 1: a run grown beyond what its 4 MiB segment can hold: moved, the kept 1 MiB intact */
  p = zc_chan_loan(ch, 1 << 20);
  REQUIRE(p != NULL);
  fill_pattern(p, 1 << 20, 12);
  q = zc_chan_loan_resize(ch, p, 5 << 20, 1 << 20);
  CHECK(q != NULL && q != p);
  if (q) {
    CHECK_EQ(loaned_bytes(ch), 10 * pg); /* only the new run: the old one went back */
    send_expected(ch, q, 1);
  }

  /* 2: a slot grown beyond its class: moved */
  p = zc_chan_loan(ch, 100);
  fill_pattern(p, 100, 13);
  q = zc_chan_loan_resize(ch, p, 50000, 100);
  CHECK(q != NULL && q != p);
  CHECK_EQ(loaned_bytes(ch), zc_class_block_size(zc_size_class(50000)));
  if (q) send_expected(ch, q, 2);

  /* 3: a slot that still fits stays; shrunk to a class at most half as large it moves (memory back) */
  p = zc_chan_loan(ch, 1000);
  fill_pattern(p, 1000, 14);
  CHECK(zc_chan_loan_resize(ch, p, 1010, 1000) == p);
  CHECK(zc_chan_loan_resize(ch, p, 600, 600) == p); /* 640 B class: more than half of 1024 */
  q = zc_chan_loan_resize(ch, p, 100, 100);
  CHECK(q != NULL && q != p);
  CHECK_EQ(loaned_bytes(ch), 112);
  if (q) send_expected(ch, q, 3);

  /* 4: a run shrunk to a slot */
  p = zc_chan_loan(ch, 200 << 10);
  fill_pattern(p, 1000, 15);
  CHECK_EQ(loaned_bytes(ch), pg);
  q = zc_chan_loan_resize(ch, p, 1000, 1000);
  CHECK(q != NULL && q != p);
  CHECK_EQ(loaned_bytes(ch), 1024);
  if (q) send_expected(ch, q, 4);

  /* errors leave the loan alone */
  char local[64];
  CHECK(zc_chan_loan_resize(ch, local, 10, 0) == NULL && errno == EINVAL);
  p = zc_chan_loan(ch, 64);
  CHECK(zc_chan_loan_resize(ch, p + 16, 10, 0) == NULL && errno == EINVAL);
  CHECK(zc_chan_loan_resize(ch, p, 128, 65) == NULL && errno == EINVAL); /* keep beyond the 64 B slot */
  CHECK(zc_chan_loan_resize(ch, p, zc_chan_max_msg(ch) + 1, 64) == NULL && errno == EMSGSIZE);
  CHECK(zc_chan_loan_resize(ch, p, 0, 0) == NULL && errno == EINVAL);
  fill_pattern(p, 64, 16);
  send_expected(ch, p, 5); /* still a live loan */

  CHECK(wait_inflight_zero(ch));
  check_all_back(ch);
  int rc = reap(c);
  CHECKF(rc == 0, "consumer exit %d", rc);
  zc_chan_close(ch);
  CHECK_DONE("resize");
}

/* ---- hostile_large ---- */
static const char *const large_abuse[] = {"runs past the end of its segment", "length too large for a slot",
                                          "runs past the end of its segment", "runs past the end of its segment"};
enum { N_LARGE_ABUSE = sizeof large_abuse / sizeof large_abuse[0] };

static int hostile_large_writer(void *arg) {
  alarm(240); /* spawn() gives 60 s; the sanitizer builds need more for these sizes */
  int kind = (int)(intptr_t)arg;
  close(sv[0]);
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_PRODUCER, NULL);
  char *p = zc_chan_loan(ch, 1 << 20); /* one good large message first */
  REQUIRE(p != NULL);
  fill_pattern(p, 1 << 20, 77);
  CHECK(zc_chan_send(ch, p, 1 << 20, 1) == 0);
  char *big = zc_chan_loan(ch, 6 << 20); /* a second segment, mapped after the first one */
  REQUIRE(big != NULL && ch->nseg == 2);
  size_t segsize = ch->seg[0].size;
  chan_desc_t d = {ch->p_head + 1, 0, 1 << 20, 9, 0};
  switch (kind) {
    case 0: d.handle = chan_handle(0, (uint32_t)(segsize - CHAN_PAGE_SIZE), 1); break; /* into segment 1 */
    case 1: d.handle = chan_handle(0, 4096, 1), d.len = 128 << 10; break;               /* inside a page */
    case 2: d.handle = chan_handle(0, 0xfff80000u, 1); break;            /* offset + length wraps 32 bits */
    case 3: d.handle = chan_handle(1, 0, 1), d.len = 0xffffffffu - 15; break; /* a length near 4 GiB */
  }
  chan_desc_t *slot = &ch->ring[ch->p_head & (ch->ring_cap - 1)];
  uint64_t seq = d.seq;
  d.seq = 0;
  *slot = d;
  __atomic_store_n(&slot->seq, seq, __ATOMIC_RELEASE);
  ch->p_head++;
  CHECK(WAIT_UNTIL(zc_chan_collect(ch) < 0, PEER_WAIT_MS) && errno == EPIPE);
  zc_chan_close(ch);
  return check_failures ? 1 : 0;
}

static int t_hostile_large(int argc, char **argv) {
  (void)argc, (void)argv;
  for (int kind = 0; kind < N_LARGE_ABUSE; kind++) {
    pair();
    pid_t c = spawn(hostile_large_writer, (void *)(intptr_t)kind);
    close(sv[1]);
    zc_chan_t *ch = open_end(sv[0], ZC_CHAN_CONSUMER, NULL);
    zc_chan_msg_t m;
    int good = 0;
    while (zc_chan_receive(ch, &m, -1) == 0) { /* ends at the bad descriptor (EPROTO) or the writer's end */
      unsigned seg;
      CHECKF(good == 0 && m.len == (1 << 20) && seg_offset(ch, m.data, m.len, &seg) >= 0 &&
                 verify_pattern(m.data, m.len, 77) < 0,
             "kind %d: a bad descriptor was handed out (len %u)", kind, m.len);
      zc_chan_release(ch, &m);
      good++;
    }
    int err = errno;
    CHECKF(good == 1, "kind %d: %d good messages", kind, good);
    CHECKF(err == EPROTO, "kind %d: errno %d, expected EPROTO", kind, err);
    CHECKF(strstr(zc_chan_error(ch), large_abuse[kind]) != NULL, "kind %d: reason \"%s\" lacks \"%s\"", kind,
           zc_chan_error(ch), large_abuse[kind]);
    zc_chan_stats_t st;
    zc_chan_stats(ch, &st);
    CHECK_EQ(st.held_msgs, 0);
    CHECK_EQ(st.rejected, 1);
    printf("hostile large %d: rejected: %s\n", kind, zc_chan_error(ch));
    zc_chan_close(ch);
    int rc = reap(c);
    CHECKF(rc == 0, "hostile producer %d exit %d", kind, rc);
  }
  CHECK_DONE("hostile_large");
}

/* ---- kill_large ---- */
static int holding_consumer(void *arg) {
  alarm(240); /* spawn() gives 60 s; the sanitizer builds need more for these sizes */
  (void)arg;
  close(sv[0]);
  close(pipefd[0]);
  zc_chan_t *ch = open_end(sv[1], ZC_CHAN_CONSUMER, NULL);
  for (int k = 0; k < 6; k++) {
    zc_chan_msg_t m;
    if (zc_chan_receive(ch, &m, -1) != 0) return 1; /* held, never released */
  }
  if (write(pipefd[1], "x", 1) != 1) return 1;
  for (;;) pause();
}

static int t_kill_large(int argc, char **argv) {
  (void)argc, (void)argv;
  pair();
  pid_t c = spawn(holding_consumer, NULL);
  close(sv[1]);
  close(pipefd[1]);
  zc_chan_t *ch = open_end(sv[0], ZC_CHAN_PRODUCER, NULL);
  for (int k = 0; k < 6; k++) {
    size_t len = (size_t)(k + 1) << 19 | 12345; /* 0.5 .. 3 MiB + a bit */
    char *p = zc_chan_loan(ch, len);
    REQUIRE(p != NULL);
    fill_pattern(p, len, (uint64_t)k);
    CHECK(zc_chan_send(ch, p, len, 1) == 0);
  }
  char b;
  CHECK(read(pipefd[0], &b, 1) == 1);
  zc_chan_stats_t st;
  zc_chan_stats(ch, &st);
  CHECK_EQ(st.inflight_msgs, 6);
  CHECK(st.free_bytes < st.segment_bytes);
  kill(c, SIGKILL);
  reap(c);
  CHECK(WAIT_UNTIL(zc_chan_collect(ch) < 0, PEER_WAIT_MS) && errno == EPIPE);
  check_all_back(ch);
  zc_chan_stats(ch, &st);
  CHECK_EQ(st.reclaimed, 6);
  CHECK(zc_chan_loan(ch, 1 << 20) == NULL && errno == EPIPE);
  zc_chan_close(ch);
  CHECK_DONE("kill_large");
}

static const zc_case_t cases[] = {{"large_flow", t_large_flow},     {"large_max", t_large_max},
                                  {"large_frag", t_large_frag},
                                  {"resize", t_resize},             {"hostile_large", t_hostile_large},
                                  {"kill_large", t_kill_large},     {NULL, NULL}};

int main(int argc, char **argv) { return zc_run_case(argc, argv, cases); }
