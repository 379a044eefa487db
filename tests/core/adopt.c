/* Thread exit and zc_thread_done: the pages of a thread that is gone are adopted and reused by a live
 * thread instead of new memory (docs/design.md, "thread exit").
 *
 *   core_adopt exit         thread A allocates 4000 blocks of 256 B, keeps one per 64 KiB page, frees the
 *                           rest and exits: its segment is abandoned (zc_stats abandoned +1, live heaps -1).
 *                           A new thread B then allocates 256 B blocks: they come out of A's segment (no new
 *                           segment mapped), the abandoned count is back, and B can free A's kept blocks
 *                           (now its own) with no error reported. Checked with and without the purger.
 *   core_adopt thread_done  thread A calls zc_thread_done() and stays alive: the same hand-over happens
 *                           while A lives; B adopts; A then allocates again (a new heap), frees a block
 *                           that B now owns (a remote free), and exits cleanly.
 * Links zcmem_prefixed: runs in every build, the sanitizers included.
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"

#include <pthread.h>

#define SEG_MASK (~(((uintptr_t)4 << 20) - 1)) /* src/segmap.h: 4 MiB segments, aligned */
#define BLOCK 256
#define NALLOC 4000

static void *kept[NALLOC];
static uint64_t kept_seed[NALLOC];
static size_t nkept;
static uintptr_t a_segment;
static _Atomic int phase;

static zc_stats_t stats(void) {
  zc_stats_t s;
  zc_stats_get(&s);
  return s;
}

/* A's work: blocks over several pages of one fresh segment, one kept per page, the rest freed. */
static void a_fill(void) {
  static void *ps[NALLOC];
  for (int i = 0; i < NALLOC; i++) {
    ps[i] = zc_malloc(BLOCK);
    REQUIRE(ps[i] != NULL);
    fill_pattern(ps[i], BLOCK, (uint64_t)i);
  }
  a_segment = (uintptr_t)ps[NALLOC - 1] & SEG_MASK;
  nkept = 0;
  uintptr_t last_page = 0;
  for (int i = 0; i < NALLOC; i++) {
    uintptr_t page = (uintptr_t)ps[i] >> 16;
    if (page != last_page && ((uintptr_t)ps[i] & SEG_MASK) == a_segment) {
      last_page = page;
      kept_seed[nkept] = (uint64_t)i;
      kept[nkept++] = ps[i];
      continue;
    }
    zc_free(ps[i]);
  }
}

static void *a_exit(void *arg) {
  (void)arg;
  a_fill();
  return NULL;
}

typedef struct {
  size_t in_a;    /* blocks that came from A's segment */
  size_t kept_bad; /* A's kept blocks whose contents changed */
  uint64_t segments_before, segments_after;
} b_result_t;

static void *b_adopt(void *arg) {
  b_result_t *r = arg;
  void *ps[64];
  r->segments_before = stats().segments;
  r->in_a = 0;
  for (int i = 0; i < 64; i++) {
    ps[i] = zc_malloc(BLOCK);
    REQUIRE(ps[i] != NULL);
    r->in_a += ((uintptr_t)ps[i] & SEG_MASK) == a_segment;
  }
  r->segments_after = stats().segments;
  for (int i = 0; i < 64; i++) zc_free(ps[i]);
  /* A's kept blocks are ours now: intact, and freed here */
  r->kept_bad = 0;
  for (size_t i = 0; i < nkept; i++) {
    r->kept_bad += verify_pattern(kept[i], BLOCK, kept_seed[i]) != -1;
    zc_free(kept[i]);
  }
  nkept = 0;
  return NULL;
}

static void check_adopted(const char *what, const b_result_t *r) {
  printf("%s: B took %zu of 64 blocks from A's segment; segments %llu -> %llu\n", what, r->in_a,
         (unsigned long long)r->segments_before, (unsigned long long)r->segments_after);
  CHECKF(r->in_a == 64, "%s: only %zu of B's 64 blocks came from the dead thread's segment", what, r->in_a);
  CHECKF(r->kept_bad == 0, "%s: %zu of the dead thread's live blocks changed", what, r->kept_bad);
  CHECKF(r->segments_after == r->segments_before, "%s: B mapped %llu new segment(s) although A's was there",
         what, (unsigned long long)(r->segments_after - r->segments_before));
}

static int case_exit(int argc, char **argv) {
  zc_free(zc_malloc(16)); /* the main thread has its heap (and its own segment) */
  zc_stats_t s0 = stats();
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, a_exit, NULL) == 0);
  REQUIRE(pthread_join(t, NULL) == 0);
  zc_stats_t s1 = stats();
  printf("exit: A kept %zu blocks; abandoned %llu -> %llu, live heaps %llu -> %llu\n", nkept,
         (unsigned long long)s0.abandoned, (unsigned long long)s1.abandoned, (unsigned long long)s0.threads,
         (unsigned long long)s1.threads);
  REQUIRE(nkept >= 4);
  CHECKF(s1.abandoned == s0.abandoned + 1, "A's exit abandoned %lld segments, want 1",
         (long long)(s1.abandoned - s0.abandoned));
  CHECKF(s1.threads == s0.threads, "live heaps %llu after A exited, %llu before it started",
         (unsigned long long)s1.threads, (unsigned long long)s0.threads);
  for (size_t i = 0; i < nkept; i++) CHECK(zc_usable_size(kept[i]) >= BLOCK);
  b_result_t r;
  REQUIRE(pthread_create(&t, NULL, b_adopt, &r) == 0);
  REQUIRE(pthread_join(t, NULL) == 0);
  check_adopted("exit", &r);
  /* B exited empty: without the purger its segment is released at exit; with it, the segment waits
   * abandoned (its pages resident for the next thread) until the purger has aged and unmapped it. */
  long wait = zc_option_get(zc_option_background) ? zc_option_get(zc_option_purge_delay) + 60000 : 0; /* the purger may wait for a core */
  WAIT_UNTIL(stats().abandoned == s0.abandoned, (uint64_t)wait);
  zc_stats_t s2 = stats();
  CHECKF(s2.abandoned == s0.abandoned, "abandoned %llu after B adopted (and exited empty), want %llu",
         (unsigned long long)s2.abandoned, (unsigned long long)s0.abandoned);
  CHECK_EQ(s2.errors, 0);
  CHECK_DONE(argv[0]);
}

static void *a_done(void *arg) {
  zc_stats_t *mid = arg;
  a_fill();
  zc_thread_done();
  *mid = stats();
  __atomic_store_n(&phase, 1, __ATOMIC_RELEASE);
  while (__atomic_load_n(&phase, __ATOMIC_ACQUIRE) != 2) sleep_ms(1);
  /* alive after zc_thread_done: allocating makes a new heap; freeing a block B owns is a remote free */
  void *p = zc_malloc(100);
  REQUIRE(p != NULL);
  memset(p, 1, 100);
  zc_free(p);
  zc_free(kept[0]);
  kept[0] = NULL;
  return NULL;
}

static void *b_adopt_keep0(void *arg) {
  /* like b_adopt, but leaves kept[0] to A */
  void *k0 = kept[0];
  uint64_t seed0 = kept_seed[0];
  kept[0] = kept[nkept - 1];
  kept_seed[0] = kept_seed[--nkept];
  b_adopt(arg);
  kept[0] = k0;
  kept_seed[0] = seed0;
  return NULL;
}

static int case_thread_done(int argc, char **argv) {
  zc_free(zc_malloc(16));
  zc_stats_t s0 = stats(), mid;
  pthread_t ta, tb;
  REQUIRE(pthread_create(&ta, NULL, a_done, &mid) == 0);
  while (__atomic_load_n(&phase, __ATOMIC_ACQUIRE) != 1) sleep_ms(1);
  printf("thread_done: abandoned %llu -> %llu, live heaps %llu -> %llu while A lives\n",
         (unsigned long long)s0.abandoned, (unsigned long long)mid.abandoned, (unsigned long long)s0.threads,
         (unsigned long long)mid.threads);
  CHECKF(mid.abandoned == s0.abandoned + 1, "zc_thread_done abandoned %lld segments, want 1",
         (long long)(mid.abandoned - s0.abandoned));
  CHECKF(mid.threads == s0.threads, "zc_thread_done left A's heap live (%llu heaps, %llu before A)",
         (unsigned long long)mid.threads, (unsigned long long)s0.threads);
  b_result_t r;
  REQUIRE(pthread_create(&tb, NULL, b_adopt_keep0, &r) == 0);
  REQUIRE(pthread_join(tb, NULL) == 0);
  check_adopted("thread_done", &r);
  __atomic_store_n(&phase, 2, __ATOMIC_RELEASE);
  REQUIRE(pthread_join(ta, NULL) == 0);
  zc_stats_t s2 = stats();
  CHECK_EQ(s2.errors, 0);
  CHECK_DONE(argv[0]);
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"exit", case_exit}, {"thread_done", case_thread_done}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
