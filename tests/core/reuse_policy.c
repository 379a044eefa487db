/* The purge policy learns from its own misses, and an exited thread's segment that ends empty and purged is
 * kept for reuse (src/segment.c: the reuse allowance of demand_keep, zc_segments_purge_abandoned; docs/design.md,
 * "Giving memory back").
 *
 *   core_reuse_policy allow  (purger on, delay 10 min: the allowance does not decay during the test) one
 *                            thread keeps 4 MiB of 1 KiB blocks live, allocates 1 MiB more and frees it,
 *                            and purges it (zc_trim). (a) Nothing counted so far (pages taken for the first
 *                            time are not reuse). It allocates 1 MiB again: the purged pages come back.
 *                            (b) At least 15 pages (of 16) are counted into the reuse allowance, and (c) the
 *                            demand keep (what the delay does not purge) is now at least their size. Freeing
 *                            everything (d) caps the keep's allowance part at half of what is in use: the
 *                            keep is no more than the demand's recent peak part, the 5 MiB of the test.
 *                            A build that does not count reuse fails (b) and (c); one without the cap (d).
 *   core_reuse_policy cache  (purger on, delay 1 s: the cache keeps a segment 10 s) a thread fills 1 MiB of
 *                            1 KiB blocks and exits without freeing them; the main thread, which owns a small
 *                            segment of its own (so it does not adopt that one on a free), frees them (remote
 *                            frees into the abandoned segment) and makes a malloc slow path of a medium block (which hands its
 *                            last pending frees over). (a) The purger empties, ages and purges the
 *                            segment and puts it in the segment cache (waited for, 60 s at most), where it
 *                            used to unmap it. (b) A new thread's allocation of 1 MiB maps no segment: it
 *                            takes the cached one.
 * Links zcmem_prefixed and reads the policy's state (src/internal.h): runs in every build, the sanitizers too.
 */
#define _GNU_SOURCE
#include "internal.h"
#include "zc_test.h"
#include "zcmem.h"

#include <pthread.h>

#define BLK 1024
#define NLIVE 4096 /* 4 MiB */
#define NS 1024    /* 1 MiB: 16 pages of 64 KiB */
#define PAGE ((uint64_t)64 * 1024)

static void fill(char **v, int n) {
  for (int i = 0; i < n; i++) {
    v[i] = zc_malloc(BLK);
    REQUIRE(v[i] != NULL);
    memset(v[i], 0x3C, BLK);
  }
}
static void drop(char **v, int n) {
  for (int i = 0; i < n; i++) zc_free(v[i]);
}

static int case_allow(int argc, char **argv) {
  (void)argc;
  static char *live[NLIVE], *s[NS];
  zc_segment_policy_t p0, p1, p2;
  fill(live, NLIVE);
  fill(s, NS);
  drop(s, NS);
  zc_trim(0); /* s's pages: free and purged */
  zc_segments_policy(&p0);
  printf("allow: after first use: %llu pages counted, allowance %llu B, keep %llu B\n",
         (unsigned long long)p0.reuse_pages, (unsigned long long)p0.reuse, (unsigned long long)p0.keep);
  CHECKF(p0.reuse_pages == 0, "(a) %llu pages counted as reuse before any purged page was taken again",
         (unsigned long long)p0.reuse_pages);
  fill(s, NS);
  zc_segments_policy(&p1);
  uint64_t pages = p1.reuse_pages - p0.reuse_pages;
  printf("allow: purged pages taken again: %llu counted, allowance %llu B, keep %llu B, in use %llu B\n",
         (unsigned long long)pages, (unsigned long long)p1.reuse, (unsigned long long)p1.keep,
         (unsigned long long)p1.in_use);
  CHECKF(pages >= 15, "(b) %llu of the 16 purged pages taken again counted as reuse", (unsigned long long)pages);
  CHECKF(p1.keep >= 15 * PAGE, "(c) the keep %llu B does not hold the allowance", (unsigned long long)p1.keep);
  drop(s, NS);
  drop(live, NLIVE);
  zc_segments_policy(&p2);
  printf("allow: all freed: allowance %llu B, keep %llu B, in use %llu B\n", (unsigned long long)p2.reuse,
         (unsigned long long)p2.keep, (unsigned long long)p2.in_use);
  /* The peak part is at most the 5 MiB the test had in use (and pages of other classes: a little slack). */
  CHECKF(p2.keep <= 5 * 1024 * 1024 + 8 * PAGE + p2.in_use / 2,
         "(d) the keep %llu B holds the allowance with nothing in use", (unsigned long long)p2.keep);
  CHECK_DONE(argv[0]);
}

static char *owned[NS];

static void *fill_and_exit(void *arg) {
  (void)arg;
  fill(owned, NS);
  return NULL;
}

static void *alloc_and_free(void *arg) {
  static char *v[NS];
  fill(v, NS);
  drop(v, NS);
  *(int *)arg = 1;
  return NULL;
}

static int case_cache(int argc, char **argv) {
  (void)argc;
  pthread_t t;
  /* This thread owns a small segment before the other one exits: its frees into the exited thread's segment
   * then stay remote frees (a thread adopts such a segment on a free only while it owns none of its kind:
   * src/segment.c, zc_segment_adopt_on_free), and that segment stays abandoned for the purger. */
  char *mine = zc_malloc(BLK);
  REQUIRE(mine != NULL);
  REQUIRE(pthread_create(&t, NULL, fill_and_exit, NULL) == 0);
  REQUIRE(pthread_join(t, NULL) == 0);
  drop(owned, NS); /* remote frees into the abandoned segment */
  char *flush = zc_malloc(20 * BLK); /* a malloc slow path (of a medium block: it adopts no small segment)
                                      * hands this thread's pending remote frees over */
  REQUIRE(flush != NULL);
  zc_stats_t st;
  int ok = WAIT_UNTIL((zc_stats_get(&st), st.abandoned == 0 && st.segments_cached >= 1), 60000);
  printf("cache: abandoned %llu, cached %llu, mapped %llu\n", (unsigned long long)st.abandoned,
         (unsigned long long)st.segments_cached, (unsigned long long)st.segments_mapped);
  CHECKF(ok, "(a) the emptied, purged segment of the exited thread did not go to the cache (abandoned %llu, "
             "cached %llu)", (unsigned long long)st.abandoned, (unsigned long long)st.segments_cached);
  uint64_t mapped = st.segments_mapped;
  int done = 0;
  REQUIRE(pthread_create(&t, NULL, alloc_and_free, &done) == 0);
  REQUIRE(pthread_join(t, NULL) == 0);
  REQUIRE(done == 1);
  zc_stats_get(&st);
  printf("cache: a new thread's 1 MiB mapped %llu segments\n", (unsigned long long)(st.segments_mapped - mapped));
  CHECKF(st.segments_mapped == mapped, "(b) a new thread mapped %llu segments with one cached",
         (unsigned long long)(st.segments_mapped - mapped));
  zc_free(flush);
  zc_free(mine);
  CHECK_DONE(argv[0]);
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"allow", case_allow}, {"cache", case_cache}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
