/* Unit tests of the chunk ring (include/zcmem_ring.h): contiguous messages, out-of-order frees and the tail
 * walk, wrap with padding, full ring (EAGAIN), messages too large (EMSGSIZE), every wrong free (outside,
 * misaligned, interior chunk, padding, free area, double free), a non-power-of-two chunk size, and a
 * seeded single-thread run with random sizes and random free order that checks every payload. */
#include "zcmem_ring.h"
#include "check.h"
#include "zc_rng.h" /* tests/common: rng_t, fill_pattern, verify_pattern */

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static zc_ring_stats_t stats(zc_ring_t *r) {
  zc_ring_stats_t s;
  zc_ring_stats(r, &s);
  return s;
}

static void test_create(void) {
  errno = 0;
  CHECK(zc_ring_create(100, 8) == NULL && errno == EINVAL);
  errno = 0;
  CHECK(zc_ring_create(128, 1) == NULL && errno == EINVAL);
  errno = 0;
  CHECK(zc_ring_create(128, SIZE_MAX / 64) == NULL && errno == EINVAL);
  zc_ring_t *r = zc_ring_create(0, 4);
  CHECK(r != NULL);
  zc_ring_stats_t s = stats(r);
  CHECK_EQ(s.chunk_size, 128);
  CHECK_EQ(s.chunks, 4);
  CHECK_EQ(s.held, 512);
  zc_ring_destroy(r);
  zc_ring_destroy(NULL);
}

/* The scenario of the header, chunk by chunk, on a ring of 8 chunks of 128 bytes. */
static void test_walkthrough(void) {
  zc_ring_t *r = zc_ring_create(128, 8);
  char *m0 = zc_ring_alloc(r, 100), *m1 = zc_ring_alloc(r, 128), *m2 = zc_ring_alloc(r, 129);
  CHECK(m0 && m1 && m2);
  CHECK(((uintptr_t)m0 & 127) == 0 && m1 == m0 + 128 && m2 == m0 + 256);
  zc_ring_stats_t s = stats(r);
  CHECK_EQ(s.in_use, 4 * 128);
  CHECK_EQ(s.requested, 357);
  CHECK_EQ(s.occupied, 4 * 128);
  memset(m2, 2, 129);
  /* out of order: m1 first; the tail cannot move */
  zc_ring_free(r, m1);
  s = stats(r);
  CHECK_EQ(s.in_use, 3 * 128);
  CHECK_EQ(s.occupied, 4 * 128);
  /* m0 at the tail: the tail passes m0 and the already freed m1 */
  zc_ring_free(r, m0);
  s = stats(r);
  CHECK_EQ(s.occupied, 2 * 128);
  char *m3 = zc_ring_alloc(r, 300); /* chunks 4..6 */
  CHECK(m3 == m0 + 4 * 128);
  /* 2 chunks do not fit at chunk 7: padding of 1 chunk, message at chunk 0 */
  char *m4 = zc_ring_alloc(r, 256);
  CHECK(m4 == m0);
  s = stats(r);
  CHECK_EQ(s.wasted, 128);
  CHECK_EQ(s.padding_total, 128);
  CHECK_EQ(s.occupied, 8 * 128);
  CHECK_EQ(s.peak, 8 * 128);
  /* full: EAGAIN */
  errno = 0;
  CHECK(zc_ring_alloc(r, 1) == NULL && errno == EAGAIN);
  CHECK_EQ(stats(r).full, 1);
  /* padding is not a message */
  CHECK_REPORTS(1, zc_ring_free(r, m0 + 7 * 128));
  CHECK(m2[0] == 2 && m2[128] == 2);
  zc_ring_free(r, m2); /* tail 2 -> 4 */
  CHECK(zc_ring_alloc(r, 1) == m0 + 2 * 128);
  zc_ring_free(r, m3); /* tail 4 -> 7, then over the padding to chunk 0 (m4, live) */
  s = stats(r);
  CHECK_EQ(s.wasted, 0);
  CHECK_EQ(s.occupied, 3 * 128);
  zc_ring_destroy(r);
}

static void test_limits_and_misuse(void) {
  zc_ring_t *r = zc_ring_create(128, 8);
  errno = 0;
  CHECK(zc_ring_alloc(r, 4 * 128 + 1) == NULL && errno == EMSGSIZE);
  char *big = zc_ring_alloc(r, 4 * 128); /* the largest message: half the ring */
  CHECK(big != NULL);
  char *a = zc_ring_alloc(r, 10);
  char *foreign = malloc(256);
  CHECK_REPORTS(1, zc_ring_free(r, foreign));
  CHECK_REPORTS(1, zc_ring_free(r, big + 1));          /* not on a chunk boundary */
  CHECK_REPORTS(1, zc_ring_free(r, big + 128));        /* interior chunk of a live message */
  CHECK_REPORTS(1, zc_ring_free(r, big + 6 * 128));    /* free area: nothing allocated there */
  CHECK_REPORTS(1, zc_ring_free(r, big + 8 * 128));    /* one past the end */
  zc_ring_free(r, a);
  CHECK_REPORTS(1, zc_ring_free(r, a));                /* double free (not yet passed by the tail) */
  zc_ring_free(r, big);
  CHECK_REPORTS(1, zc_ring_free(r, big));              /* double free (passed: free area) */
  zc_ring_free(r, NULL);
  errno = 0;
  CHECK(zc_ring_alloc(NULL, 8) == NULL && errno == EINVAL);
  CHECK_REPORTS(1, zc_ring_free(NULL, a));
  zc_ring_stats_t s = stats(r);
  CHECK_EQ(s.errors, 7);
  CHECK_EQ(s.in_use, 0);
  CHECK_EQ(s.occupied, 0);
  CHECK_EQ(s.allocs, 2);
  CHECK_EQ(s.frees, 2);
  /* the ring still works after the reports: a message of half the ring fits from any head position */
  for (int i = 0; i < 20; i++) {
    char *x = zc_ring_alloc(r, 1 + (size_t)i * 37 % 512);
    CHECK(x != NULL);
    zc_ring_free(r, x);
  }
  CHECK_EQ(stats(r).occupied, 0);
  free(foreign);
  zc_ring_destroy(r);
}

/* docs/lifetime.md: "a message of at most half the ring always fits once the ring drains": with the drained
 * ring's head at each of its chunks in turn (a padding record when the message would cross the end), a
 * message of exactly half the ring is placed, and one chunk more is EMSGSIZE. */
static void test_half_fits(void) {
  for (int h = 0; h < 8; h++) {
    zc_ring_t *r = zc_ring_create(128, 8);
    REQUIRE(r != NULL);
    for (int i = 0; i < h; i++) zc_ring_free(r, zc_ring_alloc(r, 100)); /* the head moves to chunk h */
    char *big = zc_ring_alloc(r, 4 * 128);
    CHECKF(big != NULL, "half the ring did not fit with the drained ring's head at chunk %d: %s", h, strerror(errno));
    if (big) fill_pattern(big, 4 * 128, (uint64_t)h);
    if (big) CHECKF(verify_pattern(big, 4 * 128, (uint64_t)h) < 0, "head %d: the message's bytes changed", h);
    zc_ring_free(r, big);
    errno = 0;
    CHECK(zc_ring_alloc(r, 4 * 128 + 1) == NULL && errno == EMSGSIZE);
    CHECK_EQ(stats(r).occupied, 0);
    zc_ring_destroy(r);
  }
}

/* Chunks of 384 bytes (not a power of two), random sizes, a window of live messages freed in random
 * order, a seeded payload checked before each free. */
static void test_random(void) {
  enum { W = 16 };
  zc_ring_t *r = zc_ring_create(384, 50);
  struct { unsigned char *p; size_t n; uint64_t seed; } live[W];
  int nlive = 0, bad = 0;
  uint64_t max_occupied = 0;
  rng_t s;
  rng_seed(&s, 12345);
  for (int it = 0; it < 100000; it++) {
    size_t n = rng_next(&s) % 4000;
    unsigned char *p = nlive < W ? zc_ring_alloc(r, n) : NULL;
    if (p) {
      CHECK(((uintptr_t)p & 127) == 0);
      uint64_t seed = rng_next(&s);
      fill_pattern(p, n, seed);
      live[nlive].p = p;
      live[nlive].n = n;
      live[nlive].seed = seed;
      nlive++;
      uint64_t occ = stats(r).occupied; /* exact with one thread */
      if (occ > max_occupied) max_occupied = occ;
      continue;
    }
    if (nlive < W) CHECK(errno == EAGAIN);
    /* free one: mostly the oldest, sometimes a random one */
    CHECK(nlive > 0); /* an empty ring always has room for 4000 bytes */
    if (nlive == 0) continue;
    int k = rng_next(&s) % 4 == 0 ? (int)(rng_next(&s) % (uint64_t)nlive) : 0;
    if (verify_pattern(live[k].p, live[k].n, live[k].seed) >= 0) bad++;
    zc_ring_free(r, live[k].p);
    memmove(&live[k], &live[k + 1], (size_t)(nlive - 1 - k) * sizeof live[0]);
    nlive--;
  }
  CHECK_EQ(bad, 0);
  while (nlive > 0) {
    if (verify_pattern(live[nlive - 1].p, live[nlive - 1].n, live[nlive - 1].seed) >= 0) bad++;
    zc_ring_free(r, live[--nlive].p);
  }
  zc_ring_stats_t st = stats(r);
  CHECK_EQ(bad, 0);
  CHECK_EQ(st.errors, 0);
  CHECK_EQ(st.in_use, 0);
  CHECK_EQ(st.requested, 0);
  CHECK_EQ(st.occupied, 0);
  CHECK_EQ(st.allocs, st.frees);
  CHECK(st.padding_total > 0);
  CHECK(st.full > 0);
  /* the peak is the real high-water mark of occupied (it used to be the producer's stale view: about the
   * whole ring after one lap, whatever the occupancy) */
  CHECK_EQ(st.peak, max_occupied);
  zc_ring_destroy(r);
}

/* Issue 10, item 3: the peak after many laps of a ring that never holds more than 3 chunks. */
static void test_peak_laps(void) {
  zc_ring_t *r = zc_ring_create(128, 64);
  for (int i = 0; i < 1000; i++) {
    char *a = zc_ring_alloc(r, 200), *b = zc_ring_alloc(r, 1);
    CHECK(a && b);
    zc_ring_free(r, a);
    zc_ring_free(r, b);
  }
  zc_ring_stats_t s = stats(r);
  CHECK_EQ(s.peak, 3 * 128 + 128); /* 2 + 1 chunks, plus one padding chunk when a message wraps */
  zc_ring_destroy(r);
}

/* A double free after the tail passed: caught while the chunk is in the free area; after a full lap, when
 * a new message starts on the same chunk, the pointer alone cannot tell them apart (documented limit). */
static void test_double_free_after_pass(void) {
  zc_ring_t *r = zc_ring_create(128, 8);
  char *a = zc_ring_alloc(r, 100), *b = zc_ring_alloc(r, 100);
  zc_ring_free(r, a); /* the tail passes a */
  CHECK_REPORTS(1, zc_ring_free(r, a));
  for (int i = 0; i < 6; i++) zc_ring_free(r, zc_ring_alloc(r, 100)); /* head wraps to chunk 0 */
  char *c = zc_ring_alloc(r, 100);
  CHECK(c == a);
  unsigned long before = zc_error_count();
  zc_ring_free(r, a); /* the stale double free: frees c (not detectable) */
  CHECK_EQ(zc_error_count() - before, 0);
  CHECK_REPORTS(1, zc_ring_free(r, c)); /* c's own free is then the one reported */
  zc_ring_free(r, b);
  zc_ring_destroy(r);
}

/* Stats never wrap: counters of one side can never be read ahead of the other's. */
static void test_stats_bounds(void) {
  zc_ring_t *r = zc_ring_create(128, 16);
  for (int i = 0; i < 100; i++) {
    void *p = zc_ring_alloc(r, (size_t)i % 300);
    zc_ring_stats_t s = stats(r);
    CHECK(s.in_use <= s.held && s.requested <= s.in_use && s.frees <= s.allocs);
    zc_ring_free(r, p);
  }
  zc_ring_destroy(r);
}

/* Reserve, write, commit the size actually used: the unused chunks stay free for the next message. */
static void test_reserve_commit(void) {
  zc_ring_t *r = zc_ring_create(128, 16);
  char *p = zc_ring_reserve(r, 1000); /* 8 chunks */
  CHECK(p != NULL);
  errno = 0;
  CHECK(zc_ring_alloc(r, 10) == NULL && errno == EBUSY);
  CHECK_REPORTS(1, zc_ring_free(r, p)); /* not visible to the consumer before the commit */
  CHECK_EQ(stats(r).occupied, 0);
  memset(p, 3, 1000);
  errno = 0;
  CHECK(zc_ring_commit(r, p, 1001) == -1 && errno == EMSGSIZE);
  errno = 0;
  CHECK(zc_ring_commit(r, p + 128, 10) == -1 && errno == EINVAL);
  CHECK_EQ(zc_ring_commit(r, p, 200), 0); /* 2 chunks */
  errno = 0;
  CHECK(zc_ring_commit(r, p, 200) == -1 && errno == EINVAL); /* no reservation left */
  zc_ring_stats_t s = stats(r);
  CHECK_EQ(s.in_use, 2 * 128);
  CHECK_EQ(s.requested, 200);
  char *q = zc_ring_alloc(r, 10);
  CHECK(q == p + 2 * 128);
  /* a reservation that wraps, then cancelled: nothing changes */
  char *x = zc_ring_alloc(r, 128 * 8); /* chunks 3..10 */
  CHECK(x != NULL);
  zc_ring_free(r, p);
  zc_ring_free(r, q);
  zc_ring_free(r, x); /* empty, head and tail at chunk 11 */
  CHECK(zc_ring_reserve(r, 128 * 6) == p); /* 5 chunks left before the end: padding, then chunk 0 */
  zc_ring_cancel(r);
  CHECK_EQ(stats(r).padding_total, 0);
  CHECK(zc_ring_alloc(r, 128 * 5) == x + 8 * 128); /* fits before the end: no padding */
  zc_ring_destroy(r);
}

/* A full ring: alloc_wait sleeps until the consumer frees, or gives up with ETIMEDOUT. */
#include <pthread.h>
#include <time.h>
static void *free_later(void *arg) {
  void **a = arg;
  struct timespec ts = {0, 30 * 1000 * 1000};
  nanosleep(&ts, NULL);
  zc_ring_free(a[0], a[1]);
  return NULL;
}

static void test_alloc_wait(void) {
  zc_ring_t *r = zc_ring_create(128, 4);
  char *a = zc_ring_alloc(r, 256), *b = zc_ring_alloc(r, 256);
  CHECK(a && b);
  errno = 0;
  CHECK(zc_ring_alloc_wait(r, 10, 0) == NULL && errno == EAGAIN);
  errno = 0;
  CHECK(zc_ring_alloc_wait(r, 10, 20) == NULL && errno == ETIMEDOUT);
  errno = 0;
  CHECK(zc_ring_alloc_wait(r, 1000, -1) == NULL && errno == EMSGSIZE); /* never waits for the impossible */
  void *arg[2] = {r, a};
  pthread_t t;
  pthread_create(&t, NULL, free_later, arg);
  char *c = zc_ring_alloc_wait(r, 10, -1);
  CHECK(c == a);
  pthread_join(t, NULL);
  zc_ring_destroy(r);
}

/* trim gives the free part's memory back: the process RSS drops, resident says so. */
static void test_trim(void) {
  enum { MB = 16 };
  zc_ring_t *r = zc_ring_create(4096, MB * 256);
  for (int i = 0; i < MB * 256; i++) {
    char *p = zc_ring_alloc(r, 4096);
    memset(p, 1, 4096);
    zc_ring_free(r, p);
  }
  zc_ring_stats_t s = stats(r);
  CHECK_EQ(s.resident, s.held);
  long before = rss_kib();
  zc_ring_trim(r);
  long after = rss_kib();
  CHECK(before - after > (MB - 2) * 1024);
  s = stats(r);
  CHECK_EQ(s.trimmed, (uint64_t)MB << 20);
  CHECK_EQ(s.resident, 0);
  char *p = zc_ring_alloc(r, 4096 * 4); /* the head takes 4 chunks back */
  CHECK(p != NULL && p[0] == 0);
  CHECK_EQ(stats(r).resident, 4 * 4096);
  zc_ring_free(r, p);
  zc_ring_destroy(r);
}

/* The header's promise for a bad free (reported, counted, the ring unchanged) holds as written with
 * ZCMEM_ABORT_ON_ERROR=0 (the other tests run so); by default (1) the report is followed by abort(), as for
 * every bad free of zcmem. A child frees a message twice under each setting. */
static int ring_double_free(void) {
  zc_ring_t *r = zc_ring_create(128, 16);
  void *p = zc_ring_alloc(r, 100);
  zc_ring_free(r, p);
  zc_ring_free(r, p); /* double free */
  return stats(r).errors == 1 ? 0 : -1;
}
static void test_abort_on_error(void) { check_abort_on_error(ring_double_free); }

int main(void) {
  test_abort_on_error();
  test_half_fits();
  test_peak_laps();
  test_double_free_after_pass();
  test_stats_bounds();
  test_reserve_commit();
  test_alloc_wait();
  test_trim();
  test_create();
  test_walkthrough();
  test_limits_and_misuse();
  test_random();
  TEST_DONE("test_ring");
}
