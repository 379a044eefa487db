/* A live thread that needs a page takes a dead thread's resident pages before clean memory of its own
 * (docs/design.md, "thread exit"; src/segment.c, zc_segment_page_alloc).
 *
 *   core_adopt_first resident  (purger on, long delay) thread B allocates one 1 KiB block, so it owns a
 *                              segment with 63 clean free pages. Thread A then fills 2 MiB of 1 KiB blocks,
 *                              frees them all and exits: its segment is abandoned with its empty pages still
 *                              resident. B allocates and writes 2 MiB of 1 KiB blocks: (a) at least 90% of
 *                              them come out of A's memory, not out of B's own clean pages; (b) B takes fewer
 *                              than an eighth of the minor faults that clean memory costs (fewer than clean
 *                              memory costs under TSan/ASan); (c) no segment is left abandoned. A build that uses the heap's own
 *                              free pages before adopting (the order before) fails (a), (b) and (c).
 * Links zcmem_prefixed: runs in every build, the sanitizers included. The main thread never allocates
 * from zcmem, so it adopts nothing.
 */
#define _GNU_SOURCE
#include "zc_rss.h"
#include "zc_test.h"
#include "zcmem.h"

#include <pthread.h>
#include <sys/resource.h>

#define BLOCK 1024
#define NBLOCKS 2048 /* 2 MiB: well under the dirty budget the test sets */

static uintptr_t a_lo, a_hi; /* the address range of A's blocks */
static pthread_barrier_t step;

static long thread_faults(void) {
  struct rusage ru;
  REQUIRE(getrusage(RUSAGE_THREAD, &ru) == 0);
  return ru.ru_minflt;
}

static void *a_main(void *arg) {
  (void)arg;
  static void *ps[NBLOCKS];
  a_lo = UINTPTR_MAX;
  a_hi = 0;
  for (size_t i = 0; i < NBLOCKS; i++) {
    ps[i] = zc_malloc(BLOCK);
    REQUIRE(ps[i] != NULL);
    memset(ps[i], 0x5A, BLOCK);
    uintptr_t p = (uintptr_t)ps[i];
    if (p < a_lo) a_lo = p;
    if (p + BLOCK > a_hi) a_hi = p + BLOCK;
  }
  for (size_t i = 0; i < NBLOCKS; i++) zc_free(ps[i]);
  return NULL;
}

typedef struct {
  size_t in_a;
  long faults;
  uint64_t abandoned_before, abandoned_after;
} b_result_t;

static void *b_main(void *arg) {
  b_result_t *r = arg;
  static void *ps[NBLOCKS];
  void *first = zc_malloc(BLOCK); /* B's own segment: one page in use, the rest clean and free */
  REQUIRE(first != NULL);
  pthread_barrier_wait(&step); /* A runs and exits */
  pthread_barrier_wait(&step);
  zc_stats_t s;
  zc_stats_get(&s);
  r->abandoned_before = s.abandoned;
  long f0 = thread_faults();
  for (size_t i = 0; i < NBLOCKS; i++) {
    ps[i] = zc_malloc(BLOCK);
    REQUIRE(ps[i] != NULL);
    memset(ps[i], 0xA5, BLOCK);
  }
  r->faults = thread_faults() - f0;
  zc_stats_get(&s);
  r->abandoned_after = s.abandoned;
  r->in_a = 0;
  for (size_t i = 0; i < NBLOCKS; i++) r->in_a += (uintptr_t)ps[i] >= a_lo && (uintptr_t)ps[i] < a_hi;
  for (size_t i = 0; i < NBLOCKS; i++) zc_free(ps[i]);
  zc_free(first);
  return NULL;
}

static int case_resident(int argc, char **argv) {
  (void)argc;
  CHECKF(zc_option_get(zc_option_background) == 1, "run with ZCMEM_BACKGROUND=1");
  REQUIRE(pthread_barrier_init(&step, NULL, 2) == 0);
  b_result_t b;
  pthread_t tb, ta;
  REQUIRE(pthread_create(&tb, NULL, b_main, &b) == 0);
  pthread_barrier_wait(&step);
  REQUIRE(pthread_create(&ta, NULL, a_main, NULL) == 0);
  REQUIRE(pthread_join(ta, NULL) == 0);
  pthread_barrier_wait(&step);
  REQUIRE(pthread_join(tb, NULL) == 0);
  pthread_barrier_destroy(&step);

  long fresh = (long)NBLOCKS * BLOCK / sysconf(_SC_PAGESIZE);
  printf("resident: B took %zu of %d blocks from A's memory with %ld minor faults (clean memory: %ld); "
         "abandoned segments %llu before, %llu after\n",
         b.in_a, NBLOCKS, b.faults, fresh, (unsigned long long)b.abandoned_before,
         (unsigned long long)b.abandoned_after);
  CHECKF(b.abandoned_before >= 1, "A's segment was not abandoned at its exit (%llu)",
         (unsigned long long)b.abandoned_before);
  CHECKF(b.in_a >= NBLOCKS / 10 * 9, "(a) only %zu of %d of B's blocks reuse A's resident memory", b.in_a, NBLOCKS);
  /* TSan/ASan fault in shadow pages of their own (about 300 here under TSan on a busy machine): there the
   * bound is what clean memory costs without them; the order before took that plus the shadow's. */
  long bound = UNDER_HEAVY_SANITIZER ? fresh : fresh / 8;
  CHECKF(b.faults < bound, "(b) B took %ld minor faults (clean memory: %ld)", b.faults, fresh);
  CHECKF(b.abandoned_after == 0, "(c) %llu segments still abandoned after B needed pages",
         (unsigned long long)b.abandoned_after);
  CHECK_DONE(argv[0]);
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"resident", case_resident}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
