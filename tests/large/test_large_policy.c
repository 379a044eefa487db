/* The large-region cache's policy against page faults (src/large.c), on its own counters.
 *
 *   large_policy grow_reused  a block that took a cached region four times its class and grows inside it (as
 *                             realloc does) keeps the whole mapping: its resident tail is not unmapped to be
 *                             faulted in again (the mapping shrinks only to a quarter of it or less).
 *   large_policy miss         a region purged by zc_large_purge and taken again at once counts as a policy
 *                             miss (purge_misses, miss bytes at least its size); one reused while dirty does
 *                             not.
 *   large_policy dirty_cap    80 MiB of buffers live at the peak, freed, stay resident (cached dirty: live + dirty
 *                             may reach 1.5 times the recent peak); live at the peak again with a buffer they cannot
 *                             serve, the oldest are purged down to 40 MiB dirty; the delay returns the rest (a
 *                             sweep, then one a delay later, leaves none dirty).
 *   large_policy grow         a miss moves a smaller cached region's pages (from the pool or the thread's front
 *                             slots) into the new mapping: they keep their bytes (no fault), the mapping grows by
 *                             the difference only; zeroed on calloc.
 * Usage: test_large_policy <case>. ZCMEM_BACKGROUND=0 (set by CMake): the policy runs inline, no thread
 * purges behind the test's back.
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"
#include "large.h"
#include "segmap.h"
#include "os.h"

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
  /* 16 buffers of 4 MiB (5 MiB mapped each): 80 MiB live at the peak. Freed, all of them stay dirty: the
   * demand (1.5 times the recent peak, 120 MiB) minus live (0) leaves room for them. */
  enum { N = 16 };
  unsigned char *ps[N];
  for (int i = 0; i < N; i++) {
    ps[i] = zc_large_alloc(4 * MiB, 16, false);
    REQUIRE(ps[i] != NULL);
    memset(ps[i], 3, 4 * MiB);
  }
  uint64_t peak = stats().live_bytes; /* usable bytes: 80 MiB less the headers */
  for (int i = 0; i < N; i++) zc_large_free(ps[i], hdr_of(ps[i]));
  zc_large_stats_t s = stats();
  printf("dirty_cap: after freeing 80 MiB live at the peak: %lu KiB cached dirty, %lu KiB clean\n",
         (unsigned long)(s.cached_dirty >> 10), (unsigned long)(s.cached_clean >> 10));
  CHECKF(s.cached_dirty >= 79 * MiB, "only %lu KiB of the 80 MiB freed kept dirty", (unsigned long)(s.cached_dirty >> 10));
  /* 128 buffers of 512 KiB (640 KiB mapped each, 80 MiB) that none of them can serve (a 5 MiB region serves
   * requests down to a quarter of it) nor be moved into (each is smaller than one of them): live is at the
   * peak again, so live + dirty must come down to 1.5 times the peak, 120 MiB: 40 MiB dirty at most, the
   * oldest purged (clean). */
  enum { M = 128 };
  unsigned char *small[M];
  for (int i = 0; i < M; i++) {
    small[i] = zc_large_alloc(512 * KiB, 16, false);
    REQUIRE(small[i] != NULL);
  }
  s = stats();
  printf("dirty_cap: with 80 MiB live again: %lu KiB cached dirty, %lu KiB clean, %lu KiB live\n",
         (unsigned long)(s.cached_dirty >> 10), (unsigned long)(s.cached_clean >> 10), (unsigned long)(s.live_bytes >> 10));
  uint64_t bound = peak + peak / 2 - s.live_bytes; /* 40 MiB less a few KiB: counts the front slots too */
  CHECKF(s.cached_dirty <= bound, "%lu KiB dirty beside %lu KiB live, over 1.5 times the %lu KiB peak",
         (unsigned long)(s.cached_dirty >> 10), (unsigned long)(s.live_bytes >> 10), (unsigned long)(peak >> 10));
  CHECKF(s.cached_dirty >= 35 * MiB, "only %lu KiB dirty: purged more than the bound asks",
         (unsigned long)(s.cached_dirty >> 10));
  CHECK(s.cached_clean >= 35 * MiB);
  for (int i = 0; i < M; i++) zc_large_free(small[i], hdr_of(small[i]));
  /* run with a long delay (a slow build must not age the first regions out before the checks above); now a
   * short one, to see the delay return them (one thread here, the inline policy: no purger to race with) */
  zc_option_set(zc_option_purge_delay, 100);
  zc_large_purge(false); /* a front-cache slot ages from the first sweep that sees it (src/large.c) */
  sleep_ms(150);
  zc_large_purge(false);
  s = stats();
  CHECKF(s.cached_dirty == 0, "%lu KiB still dirty after the delay", (unsigned long)(s.cached_dirty >> 10));
  CHECK_DONE(argv[0]);
}

static int case_grow(int argc, char **argv) {
  /* A 12 MiB buffer freed (to the pool: over a front shard's cap), then a 20 MiB request, which no cached
   * region serves: the 12 MiB region's pages move into the new mapping (no page faults for them), so the
   * block starts with the freed buffer's bytes and the mapping grew by the difference only. */
  unsigned char *p = zc_large_alloc(12 * MiB, 16, false);
  REQUIRE(p != NULL);
  memset(p, 7, 12 * MiB);
  zc_large_free(p, hdr_of(p));
  zc_large_stats_t a = stats();
  REQUIRE(a.cached_dirty >= 12 * MiB);
  unsigned char *q = zc_large_alloc(20 * MiB, 16, false);
  REQUIRE(q != NULL);
  zc_large_stats_t b = stats();
  printf("grow: %lu grown, mapped %lu -> %lu KiB, dirty %lu -> %lu KiB\n", (unsigned long)(b.grown - a.grown),
         (unsigned long)(a.mapped >> 10), (unsigned long)(b.mapped >> 10), (unsigned long)(a.cached_dirty >> 10),
         (unsigned long)(b.cached_dirty >> 10));
  CHECKF(b.grown == a.grown + 1, "%lu regions grown", (unsigned long)(b.grown - a.grown));
  CHECK(b.cached_dirty + 12 * MiB <= a.cached_dirty);
  CHECK(b.mapped - a.mapped < 12 * MiB); /* 25 MiB mapped now, 15 MiB before */
  size_t same = 0;
  for (size_t i = 4096; i < 12 * MiB - 4096; i += 4096) same += q[i] == 7;
  CHECKF(same == 12 * MiB / 4096 - 2, "%zu of the moved pages kept their bytes", same);
  memset(q, 1, 20 * MiB); /* the whole block is ours */
  zc_large_free(q, hdr_of(q));
  /* zero=true (calloc) served by growing that region: it reads as zeros although its pages held ones */
  unsigned char *z = zc_large_alloc(100 * MiB, 16, true);
  REQUIRE(z != NULL);
  zc_large_stats_t c = stats();
  CHECKF(c.grown == b.grown + 1, "%lu regions grown for the zeroed request", (unsigned long)(c.grown - b.grown));
  size_t nonzero = 0;
  for (size_t i = 0; i < 100 * MiB; i += 512) nonzero += z[i] != 0;
  CHECKF(nonzero == 0, "%zu sampled bytes of a zeroed block are not zero", nonzero);
  zc_large_free(z, hdr_of(z));
  /* a region in this thread's front slots (1 MiB: under a shard's cap) grows the same way */
  p = zc_large_alloc(1 * MiB, 16, false);
  REQUIRE(p != NULL);
  memset(p, 5, 1 * MiB);
  zc_large_free(p, hdr_of(p));
  q = zc_large_alloc(4 * MiB, 16, false);
  REQUIRE(q != NULL);
  zc_large_stats_t d = stats();
  CHECKF(d.grown == c.grown + 1, "%lu regions grown from the front", (unsigned long)(d.grown - c.grown));
  same = 0;
  for (size_t i = 4096; i < 1 * MiB - 4096; i += 4096) same += q[i] == 5;
  CHECKF(same == 1 * MiB / 4096 - 2, "%zu of the front region's pages kept their bytes", same);
  zc_large_free(q, hdr_of(q));
  CHECK_DONE(argv[0]);
}

/* Pages of [p, p + len) whose first byte is v (moved pages keep their bytes; fresh ones read zero). */
static size_t pages_with(const unsigned char *p, size_t len, unsigned char v) {
  size_t n = 0;
  for (size_t i = 4096; i + 4096 <= len; i += 4096) n += p[i] == v;
  return n;
}

static int case_split(int argc, char **argv) {
  /* A 24 MiB buffer (28 MiB mapped) freed, then a 6 MiB request (a 7 MiB class), which takes it (up to four
   * times its class): the 21 MiB tail moves to a region of its own in the cache, so the block holds 7 MiB,
   * not 28, and a 16 MiB request (a 20 MiB class) is then served by the tail: no new mapping, no miss, its
   * pages the freed buffer's (no page faults). */
  zc_option_set(zc_option_large_cache, (long)(256 * MiB)); /* front shards of 1.9 MiB: these go to the pool */
  zc_option_set(zc_option_purge_delay, 100000); /* nothing ages out while a loaded machine runs the test */
  if (!zc_os_can_move_mappings()) { /* split needs compose (below) to use its fragments */
    printf("split: skipped: this kernel cannot move a range of several mappings as one (before Linux 6.17)\n");
    return 77; /* ctest reports it as skipped (SKIP_RETURN_CODE), not as passed */
  }
  unsigned char *big = zc_large_alloc(24 * MiB, 16, false);
  REQUIRE(big != NULL);
  memset(big, 0x5a, 24 * MiB);
  zc_large_free(big, hdr_of(big));
  zc_large_stats_t a = stats();
  unsigned char *p = zc_large_alloc(6 * MiB, 16, false);
  REQUIRE(p != NULL);
  zc_large_stats_t b = stats();
  size_t usable = zc_large_usable(p, hdr_of(p));
  printf("split: a 6 MiB request in the cached 28 MiB region: %zu KiB usable, %lu split, dirty %lu -> %lu KiB\n",
         usable >> 10, (unsigned long)(b.split - a.split), (unsigned long)(a.cached_dirty >> 10),
         (unsigned long)(b.cached_dirty >> 10));
  REQUIRE(p == big); /* the premise: the cached region was reused */
  CHECKF(b.split == a.split + 1, "%lu regions split", (unsigned long)(b.split - a.split));
  CHECKF(usable < 7 * MiB, "the block kept %zu KiB of the region", usable >> 10);
  CHECKF(b.cached_dirty >= 21 * MiB, "the tail is not cached dirty: %lu KiB", (unsigned long)(b.cached_dirty >> 10));
  CHECK(b.mapped == a.mapped);
  CHECKF(pages_with(p, 6 * MiB, 0x5a) == 6 * MiB / 4096 - 1, "the kept pages lost their bytes");
  memset(p, 1, 6 * MiB);
  unsigned char *q = zc_large_alloc(16 * MiB, 16, false);
  REQUIRE(q != NULL);
  zc_large_stats_t c = stats();
  printf("split: a 16 MiB request then: %lu misses, mapped %lu -> %lu KiB\n", (unsigned long)(c.cache_misses - b.cache_misses),
         (unsigned long)(b.mapped >> 10), (unsigned long)(c.mapped >> 10));
  CHECKF(c.cache_misses == b.cache_misses, "the tail did not serve a 16 MiB request (%lu misses)",
         (unsigned long)(c.cache_misses - b.cache_misses));
  CHECK(c.mapped == b.mapped);
  size_t kept = pages_with(q, 16 * MiB, 0x5a);
  CHECKF(kept == 16 * MiB / 4096 - 1, "%zu of the tail's pages kept their bytes", kept);
  for (size_t i = 0; i < 6 * MiB; i += 4096) CHECK(p[i] == 1); /* the first block is intact */
  zc_large_free(q, hdr_of(q));
  zc_large_free(p, hdr_of(p));
  /* a tail under 4 MiB stays with the block: a 20 MiB request (20 MiB class) in the 20 MiB region is
   * exact, and a 4 MiB request (5 MiB class) in the 7 MiB region leaves 2 MiB: no split */
  zc_large_stats_t d = stats();
  p = zc_large_alloc(4 * MiB, 16, false);
  REQUIRE(p != NULL);
  CHECKF(stats().split == d.split, "a 2 MiB tail was split off");
  zc_large_free(p, hdr_of(p));
  CHECK_DONE(argv[0]);
}

static int case_compose(int argc, char **argv) {
  /* Three buffers freed (3, 4 and 6 MiB: 3.5, 5 and 7 MiB mapped) and a 40 MiB request (48 MiB class)
   * that none of them serves: its region is built from their pages (moved, 15.5 MiB), and only the rest is
   * new memory. calloc of such a region reads zeros. */
  zc_option_set(zc_option_large_cache, (long)(256 * MiB)); /* front shards of 1.9 MiB: these go to the pool */
  zc_option_set(zc_option_purge_delay, 100000); /* nothing ages out while a loaded machine runs the test */
  if (!zc_os_can_move_mappings()) {
    printf("compose: skipped: this kernel cannot move a range of several mappings as one (before Linux 6.17)\n");
    return 77; /* ctest reports it as skipped (SKIP_RETURN_CODE), not as passed */
  }
  for (int round = 0; round < 2; round++) {
    static const size_t sz[3] = {3 * MiB, 4 * MiB, 6 * MiB};
    unsigned char *b[3];
    for (int i = 0; i < 3; i++) {
      b[i] = zc_large_alloc(sz[i], 16, false);
      REQUIRE(b[i] != NULL);
      memset(b[i], 0x10 + i, sz[i]);
    }
    for (int i = 0; i < 3; i++) zc_large_free(b[i], hdr_of(b[i]));
    zc_large_stats_t a = stats();
    REQUIRE(a.cached_dirty >= 15 * MiB);
    bool zero = round == 1;
    unsigned char *q = zc_large_alloc(40 * MiB, 16, zero);
    REQUIRE(q != NULL);
    zc_large_stats_t c = stats();
    printf("compose%s: %lu filled, %lu grown, mapped %lu -> %lu KiB, dirty %lu -> %lu KiB\n", zero ? " (calloc)" : "",
           (unsigned long)(c.filled - a.filled), (unsigned long)(c.grown - a.grown), (unsigned long)(a.mapped >> 10),
           (unsigned long)(c.mapped >> 10), (unsigned long)(a.cached_dirty >> 10), (unsigned long)(c.cached_dirty >> 10));
    CHECKF(c.cached_dirty + 15 * MiB <= a.cached_dirty, "the cached regions stayed: dirty %lu KiB",
           (unsigned long)(c.cached_dirty >> 10));
    CHECKF(c.mapped - a.mapped <= 48 * MiB - 15 * MiB, "mapped grew by %lu KiB", (unsigned long)((c.mapped - a.mapped) >> 10));
    if (!zero) {
      size_t moved = 0;
      for (int i = 0; i < 3; i++) moved += pages_with(q, 40 * MiB, (unsigned char)(0x10 + i));
      CHECKF(moved >= (13 * MiB) / 4096 - 3, "%zu pages of the cached regions in the block", moved); /* 13 MiB written */
    } else {
      size_t nonzero = 0;
      for (size_t i = 0; i < 40 * MiB; i += 512) nonzero += q[i] != 0;
      CHECKF(nonzero == 0, "%zu sampled bytes of a zeroed composed block are not zero", nonzero);
    }
    memset(q, 0x33, 40 * MiB); /* the whole block is ours */
    /* realloc growth of a composed block (several OS mappings): moved whole where the kernel can (Linux 6.17
     * and later), else copied; its bytes come along either way */
    q = zc_realloc(q, 60 * MiB);
    REQUIRE(q != NULL);
    CHECKF(pages_with(q, 40 * MiB, 0x33) == 40 * MiB / 4096 - 1, "a composed block lost bytes in realloc");
    zc_large_free(q, hdr_of(q));
    zc_large_release_cache(); /* the next round starts from an empty cache */
  }
  /* a move that fails (injected after the new mapping; 80 MiB: no cached region is an eighth of it, so the
   * mapping is the first call): the region is still made, whole and zeroed, and the cached regions stay
   * cached, usable */
  unsigned char *b[3];
  for (int i = 0; i < 3; i++) {
    b[i] = zc_large_alloc((size_t)(3 + i) * MiB, 16, false);
    REQUIRE(b[i] != NULL);
    memset(b[i], 0x20 + i, (size_t)(3 + i) * MiB);
  }
  for (int i = 0; i < 3; i++) zc_large_free(b[i], hdr_of(b[i]));
  zc_large_stats_t a = stats();
  zc_os_fail_after(1);
  unsigned char *q = zc_large_alloc(80 * MiB, 16, true);
  zc_os_fail_after(-1);
  REQUIRE(q != NULL);
  zc_large_stats_t c = stats();
  printf("compose (failed move): %lu filled, dirty %lu -> %lu KiB\n", (unsigned long)(c.filled - a.filled),
         (unsigned long)(a.cached_dirty >> 10), (unsigned long)(c.cached_dirty >> 10));
  size_t nonzero = 0;
  for (size_t i = 0; i < 80 * MiB; i += 512) nonzero += q[i] != 0;
  CHECKF(nonzero == 0, "%zu sampled bytes of the zeroed block are not zero after a failed move", nonzero);
  CHECKF(c.filled == a.filled && c.cached_dirty == a.cached_dirty, "a failed move changed the cache");
  memset(q, 0x44, 80 * MiB);
  zc_large_free(q, hdr_of(q));
  for (int i = 0; i < 3; i++) { /* the cache still serves these sizes */
    b[i] = zc_large_alloc((size_t)(3 + i) * MiB, 16, false);
    REQUIRE(b[i] != NULL);
    memset(b[i], 1, (size_t)(3 + i) * MiB);
  }
  for (int i = 0; i < 3; i++) zc_large_free(b[i], hdr_of(b[i]));
  CHECK_DONE(argv[0]);
}

static int case_nocompose(int argc, char **argv) {
  /* A kernel that cannot move several mappings as one (forced here): no split, no compose; a miss moves the
   * largest smaller cached region's pages into a new mapping of one piece, as before compose. */
  zc_option_set(zc_option_large_cache, (long)(256 * MiB));
  zc_option_set(zc_option_purge_delay, 100000);
  zc_os_set_can_move_mappings(0);
  unsigned char *big = zc_large_alloc(24 * MiB, 16, false);
  REQUIRE(big != NULL);
  memset(big, 0x5a, 24 * MiB);
  zc_large_free(big, hdr_of(big));
  zc_large_stats_t a = stats();
  unsigned char *p = zc_large_alloc(6 * MiB, 16, false); /* takes the 28 MiB region whole */
  REQUIRE(p == big);
  CHECKF(stats().split == a.split && zc_large_usable(p, hdr_of(p)) > 20 * MiB, "split without compose");
  zc_large_free(p, hdr_of(p));
  zc_large_stats_t c = stats();
  unsigned char *q = zc_large_alloc(200 * MiB, 16, false); /* the 28 MiB region is an eighth of it */
  REQUIRE(q != NULL);
  zc_large_stats_t d = stats();
  printf("nocompose: %lu grown, %lu split\n", (unsigned long)(d.grown - c.grown), (unsigned long)(d.split - a.split));
  CHECKF(d.grown == c.grown + 1, "%lu regions grown", (unsigned long)(d.grown - c.grown));
  CHECKF(pages_with(q, 24 * MiB, 0x5a) >= 24 * MiB / 4096 - 2, "the grown region lost its pages");
  memset(q, 1, 200 * MiB);
  q = zc_realloc(q, 300 * MiB); /* one mapping: moved by the kernel */
  REQUIRE(q != NULL);
  CHECK(pages_with(q, 200 * MiB, 1) == 200 * MiB / 4096 - 1);
  zc_large_free(q, hdr_of(q));
  /* three cached regions and a miss over them: only the largest one's pages move, none is composed in */
  unsigned char *b[3];
  for (int i = 0; i < 3; i++) {
    b[i] = zc_large_alloc((size_t)(3 + i) * MiB, 16, false);
    REQUIRE(b[i] != NULL);
    memset(b[i], 0x10 + i, (size_t)(3 + i) * MiB);
  }
  for (int i = 0; i < 3; i++) zc_large_free(b[i], hdr_of(b[i]));
  zc_large_stats_t e = stats();
  q = zc_large_alloc(40 * MiB, 16, false);
  REQUIRE(q != NULL);
  zc_large_stats_t g = stats();
  CHECKF(g.filled == e.filled, "%lu regions moved into a composed one", (unsigned long)(g.filled - e.filled));
  CHECKF(g.grown == e.grown + 1, "%lu regions grown", (unsigned long)(g.grown - e.grown));
  zc_large_free(q, hdr_of(q));
  /* and a miss with none within an eighth of it: a new mapping, nothing moved into it */
  q = zc_large_alloc(400 * MiB, 16, false);
  REQUIRE(q != NULL);
  CHECKF(stats().filled == e.filled, "regions moved into a new mapping");
  zc_large_free(q, hdr_of(q));
  zc_os_set_can_move_mappings(-1);
  CHECK_DONE(argv[0]);
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {
      {"grow_reused", case_grow_reused}, {"miss", case_miss}, {"dirty_cap", case_dirty_cap},
      {"grow", case_grow},           {"split", case_split},         {"compose", case_compose},
      {"nocompose", case_nocompose},
      {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
