/* The large-region cache's policy against page faults (src/large.c), on its own counters.
 *
 *   large_policy grow_reused  a block that took a cached region four times its class and grows inside it (as
 *                             realloc does) keeps the whole mapping: its resident tail is not unmapped to be
 *                             faulted in again (the mapping shrinks only to a quarter of it or less).
 *   large_policy miss         a region purged by zc_large_purge and taken again at once counts as a policy
 *                             miss (purge_misses, miss bytes at least its size); one reused while dirty does
 *                             not.
 *   large_policy dirty_cap    with 30 MiB of buffers live at the peak (60 MiB mapped in all), freeing them keeps
 *                             them resident (cached dirty, up to 2.25 times the peak): all of it here; the delay still
 *                             returns them (a sweep, then one a delay later, leaves none dirty).
 * Usage: test_large_policy <case>. ZCMEM_BACKGROUND=0 (set by CMake): the policy runs inline, no thread
 * purges behind the test's back.
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"
#include "large.h"
#include "segmap.h"

#include "large_test.h"

static int case_grow_reused(int argc, char **argv) {
  unsigned char *big = zc_large_alloc(1 * MiB, 16, false);
  REQUIRE(big != NULL);
  memset(big, 1, 1 * MiB);
  size_t usable_big = zc_large_usable(big, hdr_of(big));
  zc_large_free(big, hdr_of(big));
  unsigned char *p = zc_large_alloc(300 * KiB, 16, false); /* takes the cached 1 MiB region, whole */
  REQUIRE(p != NULL);
  void *h = hdr_of(p);
  size_t u0 = zc_large_usable(p, h);
  printf("grow_reused: a 300 KiB request got %zu KiB usable (the freed region had %zu KiB)\n", u0 >> 10,
         usable_big >> 10);
  REQUIRE(p == big && u0 == usable_big); /* the premise: the oversized region was reused */
  memset(p, 2, 300 * KiB);
  uint64_t mapped = stats().mapped;
  CHECK(zc_large_resize_in_place(p, h, 450 * KiB)); /* realloc growth inside the region */
  CHECKF(zc_large_usable(p, h) == u0, "growth inside a reused region trimmed it to %zu KiB",
         zc_large_usable(p, h) >> 10);
  CHECKF(stats().mapped == mapped, "mapped bytes fell by %lu KiB", (unsigned long)((mapped - stats().mapped) >> 10));
  CHECK(zc_large_resize_in_place(p, h, 100 * KiB)); /* a real shrink, to under a quarter: trimmed */
  CHECKF(zc_large_usable(p, h) < u0 / 2, "a shrink to 100 KiB kept %zu KiB", zc_large_usable(p, h) >> 10);
  for (size_t i = 0; i < 100 * KiB; i += 4096) CHECK(p[i] == 2);
  zc_large_free(p, h);
  CHECK_DONE(argv[0]);
}

static int case_miss(int argc, char **argv) {
  unsigned char *p = zc_large_alloc(2 * MiB, 16, false);
  REQUIRE(p != NULL);
  memset(p, 1, 2 * MiB);
  zc_large_free(p, hdr_of(p));
  zc_large_stats_t a = stats();
  p = zc_large_alloc(2 * MiB, 16, false); /* dirty reuse: no miss */
  REQUIRE(p != NULL);
  zc_large_stats_t b = stats();
  CHECKF(b.misses == a.misses, "%lu misses for a dirty reuse", (unsigned long)(b.misses - a.misses));
  zc_large_free(p, hdr_of(p));
  CHECK(zc_large_purge(true) > 0);
  zc_large_stats_t c = stats();
  p = zc_large_alloc(2 * MiB, 16, false); /* the purged region, wanted again at once */
  REQUIRE(p != NULL);
  zc_large_stats_t d = stats();
  printf("miss: %lu misses, %lu KiB, %lu purge calls\n", (unsigned long)(d.misses - c.misses),
         (unsigned long)((d.miss_bytes - c.miss_bytes) >> 10), (unsigned long)d.purge_calls);
  CHECKF(d.misses == c.misses + 1, "%lu misses for a region purged and taken again at once",
         (unsigned long)(d.misses - c.misses));
  CHECK(d.miss_bytes - c.miss_bytes >= 2 * MiB);
  CHECK(d.purge_calls >= 1);
  zc_large_free(p, hdr_of(p));
  CHECK_DONE(argv[0]);
}

static int case_dirty_cap(int argc, char **argv) {
  /* 12 regions of 2 MiB (2.5 MiB mapped each) freed, then 6 of 4 MiB (5 MiB mapped) that the freed ones
   * cannot serve, freed: about 30 MiB live at the peak, 60 MiB mapped and cached. A dirty cap of 1.25x the
   * peak (37.5 MiB, plus the front caches' 7.5 MiB) would purge 15 MiB of them at once; 2.25x keeps them */
  enum { N = 12, M = 6 };
  unsigned char *ps[N], *qs[M];
  for (int i = 0; i < N; i++) {
    ps[i] = zc_large_alloc(2 * MiB, 16, false);
    REQUIRE(ps[i] != NULL);
    memset(ps[i], 3, 2 * MiB);
  }
  for (int i = 0; i < N; i++) zc_large_free(ps[i], hdr_of(ps[i]));
  for (int i = 0; i < M; i++) {
    qs[i] = zc_large_alloc(4 * MiB, 16, false);
    REQUIRE(qs[i] != NULL);
    memset(qs[i], 4, 4 * MiB);
  }
  for (int i = 0; i < M; i++) zc_large_free(qs[i], hdr_of(qs[i]));
  zc_large_stats_t s = stats();
  printf("dirty_cap: after freeing 30 MiB live at the peak (60 MiB mapped): %lu KiB cached dirty, %lu KiB clean\n",
         (unsigned long)(s.cached_dirty >> 10), (unsigned long)(s.cached_clean >> 10));
  CHECKF(s.cached_dirty >= 58 * MiB, "only %lu KiB of the 60 MiB freed kept dirty",
         (unsigned long)(s.cached_dirty >> 10));
  /* run with a long delay (a slow build must not age the first regions out before the check above); now a
   * short one, to see the delay return them (one thread here, the inline policy: no purger to race with) */
  zc_option_set(zc_option_purge_delay, 100);
  zc_large_purge(false); /* a front-cache slot ages from the first sweep that sees it (src/large.c) */
  sleep_ms(150);
  zc_large_purge(false);
  s = stats();
  CHECKF(s.cached_dirty == 0, "%lu KiB still dirty after the delay", (unsigned long)(s.cached_dirty >> 10));
  CHECK_DONE(argv[0]);
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {
      {"grow_reused", case_grow_reused}, {"miss", case_miss}, {"dirty_cap", case_dirty_cap}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
