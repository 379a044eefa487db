/* realloc growth of large blocks into resident cached regions (zc_large_grow_resident, src/large.c), through
 * the prefixed API.
 *
 *   large_realloc resident  a 300 KiB block grown to 1 MiB while a freed 2 MiB region sits in the cache moves
 *                           into that region (the pointer is its block): its bytes are copied, no byte is
 *                           mapped anew, the old region goes to the cache (live regions unchanged), and a
 *                           second growth that fits the usable size stays in place.
 *   large_realloc big       a block above the copy limit (3 MiB) is not copied into a cached region: it
 *                           grows by extending or moving its mapping, contents kept.
 *   large_realloc none      with nothing cached, growth still works (extend or move), contents kept.
 *   large_realloc stress    2 threads, each with 64 blocks of 8 B..3 MiB: random malloc, realloc up and
 *                           down, free; every block carries its own pattern, checked before each change and
 *                           at the end, so a region handed to two blocks at once, or bytes lost in a move,
 *                           show as a pattern mismatch (run under ASan and TSan by ./test.sh: label
 *                           sanitize).
 * Usage: test_large_realloc <case>. ZCMEM_BACKGROUND=0, ZCMEM_PURGE_DELAY=10000 (set by CMake): nothing is
 * purged behind the test's back.
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"
#include "large.h"
#include "segmap.h"

#include "large_test.h"

#include <pthread.h>

static int case_resident(int argc, char **argv) {
  (void)argc;
  unsigned char *p = zc_malloc(300 * KiB);
  REQUIRE(p != NULL && hdr_of(p) != NULL);
  fill_pattern(p, 300 * KiB, 21);
  unsigned char *a = zc_malloc(2 * MiB);
  REQUIRE(a != NULL);
  memset(a, 7, 2 * MiB);
  zc_free(a); /* cached dirty: resident */
  zc_large_stats_t s0 = stats();
  unsigned char *q = zc_realloc(p, 1 * MiB);
  REQUIRE(q != NULL);
  zc_large_stats_t s1 = stats();
  printf("resident: 300 KiB -> 1 MiB went to %s; mapped %+ld KiB, live regions %lu -> %lu\n",
         q == a ? "the cached region" : q == p ? "the same block" : "another block",
         (long)((int64_t)(s1.mapped - s0.mapped) / 1024), (unsigned long)s0.live_regions,
         (unsigned long)s1.live_regions);
  CHECKF(q == a, "the growth did not take the resident cached region (got %p, region block %p, old %p)", (void *)q,
         (void *)a, (void *)p);
  CHECKF(verify_pattern(q, 300 * KiB, 21) == -1, "contents lost at %ld", verify_pattern(q, 300 * KiB, 21));
  CHECKF(s1.mapped == s0.mapped, "mapped bytes changed by %ld", (long)(s1.mapped - s0.mapped));
  CHECKF(s1.live_regions == s0.live_regions, "live regions %lu -> %lu (the old block was not freed)",
         (unsigned long)s0.live_regions, (unsigned long)s1.live_regions);
  CHECKF(s1.cached_dirty >= 300 * KiB, "the old region is not cached (%lu dirty bytes)",
         (unsigned long)s1.cached_dirty);
  memset(q + 300 * KiB, 9, 1 * MiB - 300 * KiB);
  size_t u = zc_usable_size(q);
  CHECK(u >= 1 * MiB);
  unsigned char *r = zc_realloc(q, u); /* fits the usable size: in place */
  CHECKF(r == q, "a growth within the usable size moved the block");
  CHECK(verify_pattern(r, 300 * KiB, 21) == -1);
  CHECK(r[1 * MiB - 1] == 9);
  zc_free(r);
  CHECK_DONE(argv[0]);
}

static int case_big(int argc, char **argv) {
  (void)argc;
  unsigned char *p = zc_malloc(3 * MiB);
  REQUIRE(p != NULL);
  fill_pattern(p, 3 * MiB, 22);
  unsigned char *a = zc_malloc(6 * MiB);
  REQUIRE(a != NULL);
  memset(a, 7, 6 * MiB);
  zc_free(a);
  unsigned char *q = zc_realloc(p, 4 * MiB);
  REQUIRE(q != NULL);
  printf("big: 3 MiB -> 4 MiB %s\n", q == a ? "copied into the cached region" : q == p ? "in place" : "moved");
  CHECKF(q != a, "a 3 MiB block was copied into a cached region (the limit is 2 MiB)");
  CHECKF(verify_pattern(q, 3 * MiB, 22) == -1, "contents lost at %ld", verify_pattern(q, 3 * MiB, 22));
  zc_free(q);
  CHECK_DONE(argv[0]);
}

static int case_none(int argc, char **argv) {
  (void)argc;
  zc_large_release_cache();
  unsigned char *p = zc_malloc(200 * KiB);
  REQUIRE(p != NULL);
  fill_pattern(p, 200 * KiB, 23);
  for (size_t n = 300 * KiB; n <= 4 * MiB; n = n * 3 / 2) {
    size_t old = zc_usable_size(p);
    zc_large_release_cache(); /* nothing resident to copy into */
    unsigned char *q = zc_realloc(p, n);
    REQUIREF(q != NULL, "realloc to %zu failed", n);
    CHECKF(verify_pattern(q, 200 * KiB, 23) == -1, "contents lost growing %zu -> %zu", old, n);
    memset(q + 200 * KiB, 1, n - 200 * KiB);
    p = q;
  }
  zc_free(p);
  CHECK_DONE(argv[0]);
}

#define NBLK 64
typedef struct {
  unsigned char *p;
  size_t n;
  uint64_t seed;
} blk_t;

static size_t stress_size(rng_t *r) {
  switch (rng_range(r, 0, 3)) {
  case 0: return (size_t)rng_range(r, 8, 4096);
  case 1: return (size_t)rng_range(r, 4096, 200 * KiB);
  default: return (size_t)rng_range(r, 64 * KiB, 3 * MiB);
  }
}

/* Pattern checks on the first and last 4 KiB and a sample in between keep the stress fast; overlap shows
 * at the ends, which every move writes. */
static void fill_blk(blk_t *b) { fill_sparse(b->p, b->n, b->seed, 509); }
static long check_blk(const blk_t *b) { return verify_sparse(b->p, b->n, b->seed, 509); }
/* The first keep bytes of a block filled with n bytes (keep < n: the last byte written is not among them). */
static long check_prefix(const unsigned char *p, size_t keep, size_t n, uint64_t seed) {
  if (keep == n) return verify_sparse(p, n, seed, 509);
  for (size_t i = 0; i < keep; i += 509)
    if (p[i] != pattern_byte(seed, i)) return (long)i;
  return -1;
}
static unsigned stress_iters;

static void *stress_thread(void *arg) {
  uint64_t seed = (uint64_t)(uintptr_t)arg;
  rng_t r;
  rng_seed(&r, seed);
  blk_t b[NBLK];
  memset(b, 0, sizeof b);
  long bad = 0;
  for (unsigned it = 0; it < stress_iters; it++) {
    blk_t *x = &b[rng_range(&r, 0, NBLK - 1)];
    if (x->p != NULL && check_blk(x) != -1) bad++;
    unsigned op = (unsigned)rng_range(&r, 0, 9);
    if (x->p == NULL) {
      x->n = stress_size(&r);
      x->p = zc_malloc(x->n);
      if (x->p == NULL) return (void *)1;
    } else if (op < 6) { /* realloc up or down; the bytes both sizes share must survive */
      size_t n = op < 4 ? x->n + x->n / 2 + (size_t)rng_range(&r, 1, 64 * KiB) : stress_size(&r);
      if (n > 4 * MiB) n = (size_t)rng_range(&r, 8, 4 * MiB);
      unsigned char *q = zc_realloc(x->p, n);
      if (q == NULL) return (void *)1;
      if (check_prefix(q, n < x->n ? n : x->n, x->n, x->seed) != -1) bad++;
      x->p = q;
      x->n = n;
    } else {
      zc_free(x->p);
      x->p = NULL;
      continue;
    }
    x->seed = rng_next(&r);
    fill_blk(x);
  }
  for (int i = 0; i < NBLK; i++) {
    if (b[i].p == NULL) continue;
    if (check_blk(&b[i]) != -1) bad++;
    zc_free(b[i].p);
  }
  return (void *)(uintptr_t)(bad ? 2 : 0);
}

static int case_stress(int argc, char **argv) {
  stress_iters = quick_mode(argc, argv) ? 800 : 3000;
  pthread_t t[2];
  for (uintptr_t i = 0; i < 2; i++) REQUIRE(pthread_create(&t[i], NULL, stress_thread, (void *)(i + 1)) == 0);
  for (int i = 0; i < 2; i++) {
    void *rv = NULL;
    REQUIRE(pthread_join(t[i], &rv) == 0);
    CHECKF(rv == NULL, "thread %d: %s", i, rv == (void *)1 ? "an allocation failed" : "pattern mismatch");
  }
  zc_large_stats_t s = stats();
  printf("stress: %lu live regions after all frees\n", (unsigned long)s.live_regions);
  CHECK(s.live_regions == 0);
  CHECK_DONE(argv[0]);
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"resident", case_resident}, {"big", case_big}, {"none", case_none},
                                    {"stress", case_stress},     {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
