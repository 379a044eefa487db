/* A refill that adopts an exited thread's segment takes the oldest abandoned segment first (src/segment.c,
 * zc_segment_adopt; docs/design.md, "Threads").
 *
 *   core_adopt_oldest order   (purger on, long delay) NTHREADS threads allocate 1 KiB blocks over two pages
 *                             at the same time (none can adopt anything: nothing is abandoned yet), free all
 *                             but one, and exit one after the other, in the order they were started: each
 *                             exit abandons a small segment that holds one live block and a resident empty
 *                             page. A new thread B then allocates one 1 KiB block: its refill adopts a
 *                             segment. (a) B's block lies in the segment of the thread that exited first (the
 *                             oldest abandoned one), (b) exactly one segment was adopted (the others stay
 *                             abandoned). Then a thread C does the same while B lives: (c) C's block lies in
 *                             the segment of the thread that exited second, and one more segment was adopted.
 *                             A build that adopts the newest abandoned segment first (the order before) fails
 *                             (a) and (c); one that loses track of the oldest when a segment leaves the list
 *                             fails (c).
 * Links zcmem_prefixed: runs in every build, the sanitizers included. The main thread never allocates from
 * zcmem, so it adopts nothing.
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"

#include <pthread.h>

#define NTHREADS 4
#define BLOCK 1024
#define NBLOCKS 128 /* two 64 KiB pages of 1 KiB blocks */
#define SEGMENT ((uintptr_t)4 << 20)

typedef struct {
  unsigned idx;
  void *kept; /* the block left live: it pins the segment, which its exit then abandons */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool go;
} a_arg_t;

static pthread_barrier_t filled;

static void *a_main(void *arg) {
  a_arg_t *a = arg;
  static __thread void *ps[NBLOCKS];
  for (size_t i = 0; i < NBLOCKS; i++) {
    ps[i] = zc_malloc(BLOCK);
    REQUIRE(ps[i] != NULL);
    memset(ps[i], 0x5A, BLOCK);
  }
  a->kept = ps[0];
  for (size_t i = 1; i < NBLOCKS; i++) zc_free(ps[i]);
  pthread_barrier_wait(&filled); /* every thread holds its segment before any exits */
  pthread_mutex_lock(&a->lock);
  while (!a->go) pthread_cond_wait(&a->cond, &a->lock);
  pthread_mutex_unlock(&a->lock);
  return NULL; /* the exit abandons the segment */
}

typedef struct {
  bool hold; /* B: stay alive (and adopt nothing more) until the main thread lets it go */
  void *block;
  uint64_t abandoned_before, abandoned_after;
} b_result_t;

static pthread_barrier_t b_ready, b_go;

static void *b_main(void *arg) {
  b_result_t *r = arg;
  zc_stats_t s;
  zc_stats_get(&s);
  r->abandoned_before = s.abandoned;
  r->block = zc_malloc(BLOCK); /* a new heap: its first refill adopts */
  REQUIRE(r->block != NULL);
  memset(r->block, 0xA5, BLOCK);
  zc_stats_get(&s);
  r->abandoned_after = s.abandoned;
  if (r->hold) {
    pthread_barrier_wait(&b_ready);
    pthread_barrier_wait(&b_go);
  }
  return NULL;
}

/* The segment of a[i] that p lies in, or -1. */
static int segment_from(const a_arg_t *a, const void *p) {
  int from = -1;
  for (unsigned i = 0; i < NTHREADS; i++)
    if (((uintptr_t)p & ~(SEGMENT - 1)) == ((uintptr_t)a[i].kept & ~(SEGMENT - 1))) from = (int)i;
  return from;
}

static int case_order(int argc, char **argv) {
  (void)argc;
  CHECKF(zc_option_get(zc_option_background) == 1, "run with ZCMEM_BACKGROUND=1");
  REQUIRE(pthread_barrier_init(&filled, NULL, NTHREADS + 1) == 0);
  static a_arg_t a[NTHREADS];
  pthread_t ta[NTHREADS];
  for (unsigned i = 0; i < NTHREADS; i++) {
    a[i].idx = i;
    pthread_mutex_init(&a[i].lock, NULL);
    pthread_cond_init(&a[i].cond, NULL);
    REQUIRE(pthread_create(&ta[i], NULL, a_main, &a[i]) == 0);
  }
  pthread_barrier_wait(&filled);
  for (unsigned i = 0; i < NTHREADS; i++) { /* exits in order: a[0]'s segment is the oldest abandoned */
    pthread_mutex_lock(&a[i].lock);
    a[i].go = true;
    pthread_cond_signal(&a[i].cond);
    pthread_mutex_unlock(&a[i].lock);
    REQUIRE(pthread_join(ta[i], NULL) == 0);
  }
  for (unsigned i = 0; i < NTHREADS; i++)
    for (unsigned j = 0; j < i; j++)
      CHECKF(((uintptr_t)a[i].kept & ~(SEGMENT - 1)) != ((uintptr_t)a[j].kept & ~(SEGMENT - 1)),
             "threads %u and %u shared a segment", j, i);

  REQUIRE(pthread_barrier_init(&b_ready, NULL, 2) == 0);
  REQUIRE(pthread_barrier_init(&b_go, NULL, 2) == 0);
  b_result_t b = {.hold = true}, c = {.hold = false};
  pthread_t tb, tc;
  REQUIRE(pthread_create(&tb, NULL, b_main, &b) == 0);
  pthread_barrier_wait(&b_ready); /* B has its block and stays */
  REQUIRE(pthread_create(&tc, NULL, b_main, &c) == 0);
  REQUIRE(pthread_join(tc, NULL) == 0);
  pthread_barrier_wait(&b_go); /* B exits */
  REQUIRE(pthread_join(tb, NULL) == 0);
  int from = segment_from(a, b.block), from_c = segment_from(a, c.block);
  printf("order: abandoned segments %llu before B, %llu after, %llu after C; B's block is in the segment of the "
         "thread that exited %d-th (0: first), C's in the %d-th's\n",
         (unsigned long long)b.abandoned_before, (unsigned long long)b.abandoned_after,
         (unsigned long long)c.abandoned_after, from, from_c);
  CHECKF(b.abandoned_before == NTHREADS, "%llu segments abandoned, expected %d",
         (unsigned long long)b.abandoned_before, NTHREADS);
  CHECKF(from == 0, "(a) B adopted the segment of the thread that exited %d-th, not the oldest abandoned", from);
  CHECKF(b.abandoned_after == NTHREADS - 1, "(b) %llu segments still abandoned after B's refill, expected %d",
         (unsigned long long)b.abandoned_after, NTHREADS - 1);
  CHECKF(from_c == 1, "(c) C adopted the segment of the thread that exited %d-th, not the oldest left", from_c);
  CHECKF(c.abandoned_after == NTHREADS - 2, "(c) %llu segments still abandoned after C's refill, expected %d",
         (unsigned long long)c.abandoned_after, NTHREADS - 2);
  zc_free(c.block);
  zc_free(b.block);
  for (unsigned i = 0; i < NTHREADS; i++) zc_free(a[i].kept);
  pthread_barrier_destroy(&filled);
  pthread_barrier_destroy(&b_ready);
  pthread_barrier_destroy(&b_go);
  CHECK_DONE(argv[0]);
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"order", case_order}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
