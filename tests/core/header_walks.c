/* Walks over a segment read nothing of the pages it never handed out (src/segment.c, pages_touched): thread
 * exit (abandon), the background purger's idle reclaim and its pass over abandoned segments, and adoption
 * stop at the last page ever taken, so the header's OS pages that hold only such pages' descriptors and
 * remote lines are never faulted in to be read (a read of an untouched anonymous page is a minor fault too:
 * it maps the zero page). Before, each of them cost every new thread up to 2 faults (bench/cache: 28 -> 22
 * faults in the measured phase of 2 threads).
 *
 *   core_header_walks walks  (ZCMEM_BACKGROUND=1, ZCMEM_PURGE_DELAY=20) thread A takes 3 pages of a fresh
 *                            segment (page 0 full of 1 KiB blocks, page 1 current with one, page 2 with one
 *                            64 B block, which stays live so that the segment is never unmapped) and waits,
 *                            alive and idle; thread B frees all of page 0's blocks (remote frees) and hands
 *                            them over.
 *                            (a) once the purger has reclaimed page 0 from A's idle heap (zc_stats counts
 *                            it), at most 4 KiB of A's segment's 16 KiB header is resident (mincore: the
 *                            first OS page of the header holds the segment fields and the descriptors with
 *                            their remote lines of pages 0-15); the reclaim walk used to read the remote
 *                            line of page 63, on an OS page of its own.
 *                            (b) A frees page 1's block and exits, and after the purger has aged the
 *                            abandoned empty page 1 (resident 0), still at most 4 KiB; the exit walk used to read the descriptors of pages
 *                            32-63. (c) Thread C adopts the segment and allocates from it: still 4 KiB.
 * Links zcmem_prefixed: runs in every build (mincore of the allocator's own header is not shadowed).
 */
#define _GNU_SOURCE
#include "zc_clock.h"
#include "zc_rss.h"
#include "zc_test.h"
#include "zcmem.h"

#include <pthread.h>

#define SEG_SIZE ((uintptr_t)4 << 20)
#define HEADER ((size_t)16 << 10)
#define BLOCK 1024
#define PAGE0_BLOCKS ((64 - 16) * 1024 / BLOCK) /* page 0 starts after the 16 KiB header */

static void *blocks[PAGE0_BLOCKS + 1];
static void *keep; /* page 2's block: live to the end */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int stage; /* 1: A has allocated; 2: A may exit */

static void *a_main(void *arg) {
  (void)arg;
  for (size_t i = 0; i <= PAGE0_BLOCKS; i++) {
    blocks[i] = zc_malloc(BLOCK);
    REQUIRE(blocks[i] != NULL);
    memset(blocks[i], 0x5A, BLOCK);
  }
  keep = zc_malloc(64);
  REQUIRE(keep != NULL);
  pthread_mutex_lock(&mu);
  stage = 1;
  pthread_cond_broadcast(&cv);
  while (stage < 2) pthread_cond_wait(&cv, &mu); /* idle: no allocator call until told to exit */
  pthread_mutex_unlock(&mu);
  zc_free(blocks[PAGE0_BLOCKS]); /* page 1 empties: at exit it is abandoned dirty, for the purger to age */
  return NULL;
}

static void *b_main(void *arg) {
  (void)arg;
  for (size_t i = 0; i < PAGE0_BLOCKS; i++) zc_free(blocks[i]); /* page 0's blocks: remote frees */
  void *p = zc_malloc(3000); /* a slow path: hands the pending chain over (and starts the purger) */
  REQUIRE(p != NULL);
  zc_free(p);
  zc_thread_done();
  return NULL;
}

static void *c_main(void *arg) {
  void **out = arg;
  *out = zc_malloc(BLOCK);
  REQUIRE(*out != NULL);
  memset(*out, 0xA5, BLOCK);
  return NULL;
}

static uint64_t reclaimed(void) {
  zc_stats_t s;
  zc_stats_get(&s);
  return s.pages_reclaimed;
}

static int case_walks(int argc, char **argv) {
  (void)argc;
  CHECKF(sysconf(_SC_PAGESIZE) == 4096, "the bounds assume 4 KiB OS pages");
  CHECKF(zc_option_get(zc_option_background) == 1, "run with ZCMEM_BACKGROUND=1");
  long delay = zc_option_get(zc_option_purge_delay);
  pthread_t a, b, c;
  REQUIRE(pthread_create(&a, NULL, a_main, NULL) == 0);
  pthread_mutex_lock(&mu);
  while (stage < 1) pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  uintptr_t seg = (uintptr_t)blocks[0] & ~(SEG_SIZE - 1);
  REQUIRE(((uintptr_t)blocks[PAGE0_BLOCKS] & ~(SEG_SIZE - 1)) == seg);
  REQUIRE(((uintptr_t)keep & ~(SEG_SIZE - 1)) == seg);
  uint64_t r0 = reclaimed();
  REQUIRE(pthread_create(&b, NULL, b_main, NULL) == 0);
  REQUIRE(pthread_join(b, NULL) == 0);

  int ok = WAIT_UNTIL(reclaimed() > r0, (uint64_t)delay * 4 + 60000);
  CHECKF(ok, "the purger did not reclaim page 0 from the idle heap (the walk (a) checks was not made)");
  size_t res = resident_bytes((void *)seg, HEADER);
  printf("walks: %zu KiB of the header resident after the idle reclaim\n", res >> 10);
  CHECKF(res <= ((size_t)4 << 10), "(a) %zu KiB of the segment header resident after the idle reclaim", res >> 10);

  pthread_mutex_lock(&mu);
  stage = 2;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  REQUIRE(pthread_join(a, NULL) == 0);
  /* the abandoned empty page 1 ages out: the purger's pass over abandoned segments walked the segment */
  ok = WAIT_UNTIL(resident_bytes((void *)(seg + 64 * 1024), 64 * 1024) == 0, (uint64_t)delay * 4 + 60000);
  CHECKF(ok, "the exited thread's empty pages were not purged (the walk (b) checks was not made)");
  res = resident_bytes((void *)seg, HEADER);
  printf("walks: %zu KiB of the header resident after the exit and the abandoned-segment purge\n", res >> 10);
  CHECKF(res <= ((size_t)4 << 10), "(b) %zu KiB of the segment header resident after exit", res >> 10);

  void *p = NULL;
  REQUIRE(pthread_create(&c, NULL, c_main, &p) == 0);
  REQUIRE(pthread_join(c, NULL) == 0);
  res = resident_bytes((void *)seg, HEADER);
  printf("walks: C's block %s the segment; %zu KiB of its header resident\n",
         ((uintptr_t)p & ~(SEG_SIZE - 1)) == seg ? "is in" : "is not in", res >> 10);
  CHECKF(((uintptr_t)p & ~(SEG_SIZE - 1)) == seg, "(c) C did not adopt the exited thread's segment");
  CHECKF(res <= ((size_t)4 << 10), "(c) %zu KiB of the segment header resident after adoption", res >> 10);
  zc_free(p);
  zc_free(keep);
  CHECK_DONE(argv[0]);
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"walks", case_walks}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
