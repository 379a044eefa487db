/* A thread's free into a dead thread's segment adopts that segment (src/free.c free_abandoned, src/segment.c
 * zc_segment_adopt_on_free; docs/design.md, "Threads").
 *
 *   core_adopt_free free     thread A allocates 2,000 small and 20 medium blocks and exits: its two segments
 *                            are abandoned. Thread B, which has no heap yet, frees them all: (a) its first free
 *                            of each kind adopts the segment (no segment is left abandoned), (b) none of B's
 *                            frees is a remote free (after the adoption they are the owner's), (c) at least
 *                            80% of B's next 2,000 small blocks come out of A's memory (the pages A's blocks
 *                            were in; its last page's tail, which A never carved, is outside the range). A build without the adoption on
 *                            free fails (a) and (b).
 *   core_adopt_free bound    24 threads each leave a segment holding 2 live blocks. A fresh thread frees one
 *                            block of each: it adopts one segment (it then owns a small segment, and a heap
 *                            that owns one of the kind adopts no more on a free), 23 stay abandoned and their
 *                            frees are remote. A build without the bound adopts all 24.
 *   core_adopt_free double   (ZCMEM_ABORT_ON_ERROR=0) A frees a block, then exits; B's first free into A's
 *                            segment is that block again (the free that adopts the segment is a double free),
 *                            then B frees another block twice: both double frees are reported (errors + 2),
 *                            and no block is handed out twice after them. A build whose adopting free skips
 *                            the owner's checks fails both.
 *   core_adopt_free fork     a fork child's orphan segments (the threads that did not come along) are not
 *                            adopted on a free: the child's frees of their blocks leave them abandoned (they
 *                            are rebuilt when a refill adopts them, src/segment.c page_trust) and the child
 *                            then allocates and frees normally.
 * Links zcmem_prefixed: every build, the sanitizers included. The main thread never allocates from zcmem.
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"

#include <pthread.h>

#define NSMALL 2000
#define SMALL 256
#define NMEDIUM 20
#define MEDIUM (16 * 1024)

static void *small_blocks[NSMALL], *medium_blocks[NMEDIUM];
static uintptr_t a_lo, a_hi;

static zc_stats_t stats_now(void) {
  zc_stats_t s;
  zc_stats_get(&s);
  return s;
}

static void *a_main(void *arg) {
  (void)arg;
  a_lo = UINTPTR_MAX;
  a_hi = 0;
  for (size_t i = 0; i < NSMALL; i++) {
    small_blocks[i] = zc_malloc(SMALL);
    REQUIRE(small_blocks[i] != NULL);
    memset(small_blocks[i], 0x5A, SMALL);
    uintptr_t p = (uintptr_t)small_blocks[i];
    if (p < a_lo) a_lo = p;
    if (p + SMALL > a_hi) a_hi = p + SMALL;
  }
  for (size_t i = 0; i < NMEDIUM; i++) {
    medium_blocks[i] = zc_malloc(MEDIUM);
    REQUIRE(medium_blocks[i] != NULL);
    memset(medium_blocks[i], 0x5B, MEDIUM);
  }
  return NULL;
}

typedef struct {
  uint64_t abandoned_before, abandoned_after, remote_before, remote_after;
  size_t in_a;
} b_result_t;

static void *b_main(void *arg) {
  b_result_t *r = arg;
  zc_stats_t s = stats_now();
  r->abandoned_before = s.abandoned;
  r->remote_before = s.remote_frees;
  for (size_t i = 0; i < NSMALL; i++) zc_free(small_blocks[i]);
  for (size_t i = 0; i < NMEDIUM; i++) zc_free(medium_blocks[i]);
  s = stats_now();
  r->abandoned_after = s.abandoned;
  r->remote_after = s.remote_frees;
  r->in_a = 0;
  for (size_t i = 0; i < NSMALL; i++) {
    small_blocks[i] = zc_malloc(SMALL);
    REQUIRE(small_blocks[i] != NULL);
    r->in_a += (uintptr_t)small_blocks[i] >= a_lo && (uintptr_t)small_blocks[i] < a_hi;
  }
  for (size_t i = 0; i < NSMALL; i++) zc_free(small_blocks[i]);
  return NULL;
}

static int case_free(int argc, char **argv) {
  (void)argc;
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, a_main, NULL) == 0);
  REQUIRE(pthread_join(t, NULL) == 0);
  b_result_t b;
  REQUIRE(pthread_create(&t, NULL, b_main, &b) == 0);
  REQUIRE(pthread_join(t, NULL) == 0);
  printf("free: abandoned %llu -> %llu, remote frees %llu -> %llu, %zu of %d new blocks in A's memory\n",
         (unsigned long long)b.abandoned_before, (unsigned long long)b.abandoned_after,
         (unsigned long long)b.remote_before, (unsigned long long)b.remote_after, b.in_a, NSMALL);
  CHECKF(b.abandoned_before >= 2, "A's two segments were not abandoned at its exit (%llu)",
         (unsigned long long)b.abandoned_before);
  CHECKF(b.abandoned_after == 0, "(a) %llu segments still abandoned after B freed their blocks",
         (unsigned long long)b.abandoned_after);
  CHECKF(b.remote_after == b.remote_before, "(b) %llu of B's frees were remote frees",
         (unsigned long long)(b.remote_after - b.remote_before));
  CHECKF(b.in_a >= NSMALL / 10 * 8, "(c) only %zu of %d of B's blocks reuse A's memory", b.in_a, NSMALL);
  CHECK_DONE(argv[0]);
}

#define NDEAD 24
static void *dead_blocks[NDEAD][2];
static pthread_barrier_t all_allocated;

static void *dead_main(void *arg) {
  size_t i = (size_t)(uintptr_t)arg;
  for (int k = 0; k < 2; k++) {
    dead_blocks[i][k] = zc_malloc(64);
    REQUIRE(dead_blocks[i][k] != NULL);
  }
  /* no thread exits before all have their own segment: none adopts another's */
  pthread_barrier_wait(&all_allocated);
  return NULL;
}

typedef struct {
  uint64_t abandoned_before, abandoned_after, remote;
} bound_result_t;

static void *freer_main(void *arg) {
  bound_result_t *r = arg;
  zc_stats_t s = stats_now();
  r->abandoned_before = s.abandoned;
  uint64_t remote0 = s.remote_frees;
  for (size_t i = 0; i < NDEAD; i++) zc_free(dead_blocks[i][0]);
  zc_thread_done(); /* hands the pending remote frees over, so they are counted */
  s = stats_now();
  r->abandoned_after = s.abandoned;
  r->remote = s.remote_frees - remote0;
  return NULL;
}

static int case_bound(int argc, char **argv) {
  (void)argc;
  REQUIRE(pthread_barrier_init(&all_allocated, NULL, NDEAD) == 0);
  pthread_t t[NDEAD];
  for (size_t i = 0; i < NDEAD; i++) REQUIRE(pthread_create(&t[i], NULL, dead_main, (void *)(uintptr_t)i) == 0);
  for (size_t i = 0; i < NDEAD; i++) REQUIRE(pthread_join(t[i], NULL) == 0);
  pthread_barrier_destroy(&all_allocated);
  bound_result_t r;
  pthread_t f;
  REQUIRE(pthread_create(&f, NULL, freer_main, &r) == 0);
  REQUIRE(pthread_join(f, NULL) == 0);
  printf("bound: abandoned %llu -> %llu after one free into each of %d dead threads' segments; %llu remote "
         "frees\n", (unsigned long long)r.abandoned_before, (unsigned long long)r.abandoned_after, NDEAD,
         (unsigned long long)r.remote);
  CHECKF(r.abandoned_before == NDEAD, "%llu segments abandoned, %d expected", (unsigned long long)r.abandoned_before,
         NDEAD);
  /* the freer adopted exactly one; its exit (zc_thread_done) abandons that one again */
  CHECKF(r.abandoned_after == NDEAD, "the freer took %llu segments for good",
         (unsigned long long)(NDEAD - r.abandoned_after));
  CHECKF(r.remote == NDEAD - 1, "%llu remote frees, %d expected: the freer adopted more than one segment",
         (unsigned long long)r.remote, NDEAD - 1);
  for (size_t i = 0; i < NDEAD; i++) zc_free(dead_blocks[i][1]);
  CHECK_DONE(argv[0]);
}

static void *a_double_main(void *arg) {
  a_main(arg);
  zc_free(small_blocks[7]); /* free in A's segment when it is abandoned */
  return NULL;
}

static void *double_main(void *arg) {
  uint64_t *errors = arg;
  uint64_t e0 = stats_now().errors;
  zc_free(small_blocks[7]); /* a double free, and the free that adopts A's segment: reported */
  zc_free(small_blocks[8]); /* the owner's free: fine */
  zc_free(small_blocks[8]); /* a double free by the owner: reported */
  errors[0] = stats_now().errors - e0;
  for (size_t i = 0; i < NSMALL; i++)
    if (i != 7 && i != 8) zc_free(small_blocks[i]);
  /* every free block of the page once: a block handed out twice would show as a duplicate */
  static void *again[NSMALL + 64];
  size_t n = 0, dup = 0;
  for (; n < NSMALL + 64; n++) {
    again[n] = zc_malloc(SMALL);
    REQUIRE(again[n] != NULL);
    memset(again[n], (int)(n & 0xFF), SMALL);
  }
  for (size_t i = 0; i < n; i++) {
    const unsigned char *p = again[i];
    for (size_t k = 0; k < SMALL; k++)
      if (p[k] != (unsigned char)(i & 0xFF)) {
        dup++;
        break;
      }
  }
  errors[1] = dup;
  for (size_t i = 0; i < n; i++) zc_free(again[i]);
  return NULL;
}

static int case_double(int argc, char **argv) {
  (void)argc;
  CHECKF(zc_option_get(zc_option_abort_on_error) == 0, "run with ZCMEM_ABORT_ON_ERROR=0");
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, a_double_main, NULL) == 0);
  REQUIRE(pthread_join(t, NULL) == 0);
  for (size_t i = 0; i < NMEDIUM; i++) zc_free(medium_blocks[i]); /* a heap for the main thread: not B's */
  zc_thread_done();
  uint64_t res[2];
  REQUIRE(pthread_create(&t, NULL, double_main, res) == 0);
  REQUIRE(pthread_join(t, NULL) == 0);
  printf("double: %llu errors reported, %llu blocks overwritten by another block's owner\n",
         (unsigned long long)res[0], (unsigned long long)res[1]);
  CHECKF(res[0] == 2, "the two double frees into an adopted segment were reported %llu times", (unsigned long long)res[0]);
  CHECKF(res[1] == 0, "%llu blocks were handed out twice", (unsigned long long)res[1]);
  CHECK_DONE(argv[0]);
}

static pthread_barrier_t forked;

static void *holder_main(void *arg) {
  (void)arg;
  a_main(NULL);
  pthread_barrier_wait(&forked); /* alive (its heap live) while the main thread forks */
  pthread_barrier_wait(&forked);
  return NULL;
}

static int fork_child(void *arg) {
  (void)arg;
  zc_stats_t s = stats_now();
  uint64_t before = s.abandoned;
  for (size_t i = 0; i < NSMALL; i++) zc_free(small_blocks[i]);
  uint64_t after = stats_now().abandoned;
  void *p = zc_malloc(SMALL); /* a refill may adopt (and rebuild) the orphans now */
  if (p == NULL) return 3;
  memset(p, 1, SMALL);
  zc_free(p);
  printf("fork child: abandoned %llu before its frees, %llu after\n", (unsigned long long)before,
         (unsigned long long)after);
  if (before < 1) return 4;
  return after == before ? 0 : 5;
}

static int case_fork(int argc, char **argv) {
  (void)argc;
  REQUIRE(pthread_barrier_init(&forked, NULL, 2) == 0);
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, holder_main, NULL) == 0);
  pthread_barrier_wait(&forked);
  child_result_t r = run_child(fork_child, NULL, 60);
  pthread_barrier_wait(&forked);
  REQUIRE(pthread_join(t, NULL) == 0);
  pthread_barrier_destroy(&forked);
  char buf[64];
  printf("%s", r.out);
  fprintf(stderr, "%s", r.err);
  CHECKF(child_exited(&r, 0), "the child: %s (4: no orphan segment, 5: an orphan was adopted on a free)",
         child_str(&r, buf, sizeof buf));
  child_result_free(&r);
  for (size_t i = 0; i < NSMALL; i++) zc_free(small_blocks[i]);
  for (size_t i = 0; i < NMEDIUM; i++) zc_free(medium_blocks[i]);
  CHECK_DONE(argv[0]);
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {
      {"free", case_free}, {"bound", case_bound}, {"double", case_double}, {"fork", case_fork}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
