/* The purger reclaims a page other threads' frees emptied in a live heap only once it has stayed so for a
 * purge delay, untouched by its owner (src/reclaim.c, reclaim_seen): a busy producer takes such pages back
 * itself within the delay, and purging them at the first sweep that saw them made it fault them in again
 * (bench/prodcons producers=2 consumers=2: 50-78 of its reclaimed pages were taken again within the delay,
 * 0.0034 faults per message; waiting a delay: 12-19 and 0.0018-0.0021).
 *
 *   core_reclaim_wait delay  (ZCMEM_BACKGROUND=1, ZCMEM_PURGE_DELAY=1000) thread A fills page 0 of a fresh
 *                            segment with 1 KiB blocks (page 1 becomes current) and waits, alive and idle;
 *                            thread B, started at t0, frees all of page 0's blocks (remote frees) and hands
 *                            them over. The page is reclaimed (zc_stats_t pages_reclaimed, waited for up to
 *                            4 delays + 20 s), and not before t0 + the delay: the purger's first sweep after
 *                            the hand-over (half a delay later at most) only notes it. Fails on a purger that
 *                            reclaims at first sight, unless the machine is so loaded that its first sweep
 *                            comes a whole delay late (then the mutation goes unseen; the check never fails
 *                            falsely: every reclaim is at least a delay after the hand-over, hence after t0).
 * Links zcmem_prefixed: runs in every build.
 */
#define _GNU_SOURCE
#include "zc_clock.h"
#include "zc_test.h"
#include "zcmem.h"

#include <pthread.h>

#define BLOCK 1024
#define PAGE0_BLOCKS ((64 - 16) * 1024 / BLOCK) /* page 0 starts after the 16 KiB header */

static void *blocks[PAGE0_BLOCKS + 1];
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
  pthread_mutex_lock(&mu);
  stage = 1;
  pthread_cond_broadcast(&cv);
  while (stage < 2) pthread_cond_wait(&cv, &mu); /* idle: no allocator call until told to exit */
  pthread_mutex_unlock(&mu);
  zc_free(blocks[PAGE0_BLOCKS]);
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

static uint64_t reclaimed(void) {
  zc_stats_t s;
  zc_stats_get(&s);
  return s.pages_reclaimed;
}

static int case_delay(int argc, char **argv) {
  (void)argc;
  CHECKF(zc_option_get(zc_option_background) == 1, "run with ZCMEM_BACKGROUND=1");
  uint64_t delay = (uint64_t)zc_option_get(zc_option_purge_delay);
  pthread_t a, b;
  REQUIRE(pthread_create(&a, NULL, a_main, NULL) == 0);
  pthread_mutex_lock(&mu);
  while (stage < 1) pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  uint64_t r0 = reclaimed();
  uint64_t t0 = now_ms();
  REQUIRE(pthread_create(&b, NULL, b_main, NULL) == 0);
  REQUIRE(pthread_join(b, NULL) == 0);
  int ok = WAIT_UNTIL(reclaimed() > r0, delay * 4 + 20000);
  uint64_t took = now_ms() - t0;
  printf("delay: page 0 reclaimed %llu ms after the remote frees began (purge delay %llu ms)\n",
         (unsigned long long)took, (unsigned long long)delay);
  CHECKF(ok, "the emptied page of the idle owner was never reclaimed (%llu ms)", (unsigned long long)took);
  CHECKF(took >= delay, "reclaimed %llu ms after the frees began, before the purge delay (%llu ms)",
         (unsigned long long)took, (unsigned long long)delay);
  pthread_mutex_lock(&mu);
  stage = 2;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  REQUIRE(pthread_join(a, NULL) == 0);
  CHECK_DONE(argv[0]);
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"delay", case_delay}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
