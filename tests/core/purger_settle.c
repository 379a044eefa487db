/* A remote free's hand-over that comes between the background purger's last sweep and its idle sleep is not
 * lost: the purger either is woken by it or sees its blocks, so the page they empty is reclaimed (memory
 * handed back on a bounded delay, src/reclaim.c; the protocol at purger_main in src/large_pool.c).
 *
 * The hand-over tests the purger's state and wakes it only when it does not see it running (free.c,
 * hand_over_chain). Before, the purger went to sleep (state 3) after its last sweep: a hand-over in between
 * saw it running and woke nobody, and its page waited, with all its blocks free, until the owner's next
 * malloc slow path, forever for an idle owner. The test forces that order through the library's test point
 * (ZC_DEBUG builds only; the test is built there only): the purger is stalled at PURGER_TP_SETTLED (its last
 * sweep found nothing to do; its sleep comes next) while thread B hands page 0 of idle thread A over.
 *
 * The main thread makes a heap first, so that A's first slow path starts the purger (a second heap). B makes
 * its own heap (a malloc and a free) before, so that nothing but its hand-overs happens in the window. A fills
 * page 0 of its fresh segment with 64 B blocks (768, and one more: page 1 becomes current) and waits, alive
 * and idle. Once the purger reaches the test point (it does after 1 s with nothing to do), B frees page 0's
 * 768 blocks: 12 chains of 64, each handed over by a free, no malloc. Then the purger goes on. Page 0 must be
 * reclaimed (zc_stats_t pages_reclaimed) within 30 s. The purger must reach the point within 60 s.
 *
 * Run with ZCMEM_BACKGROUND=1 ZCMEM_PURGE_DELAY=100. Links zcmem_prefixed built with ZCMEM_DEBUG=ON.
 */
#define _GNU_SOURCE
#include "zc_stage.h"
#include "zc_test.h"
#include "zcmem.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 64
#define PAGE0_BLOCKS ((64 - 16) * 1024 / BLOCK) /* page 0 starts after the 16 KiB header */
#define PURGER_TP_SETTLED 1                      /* src/large_pool.c */

/* Exported by the library in ZC_DEBUG builds only (large_pool.c). */
extern void zc_purger_test_hook(void (*fn)(int point)) __attribute__((weak));

static void *blocks[PAGE0_BLOCKS + 1];
static zc_stage_t st = ZC_STAGE_INIT; /* 1: A allocated; 2: B has a heap; 3: B may free; 4: B freed; 5: end */
static int armed, at_point, go_on, stalled_out; /* the hook's handshake with main (atomics) */

/* On the purger thread, once armed: report the point and stall there until main lets it go on (60 s at most).
 * It calls nothing of the allocator. */
static void hook(int point) {
  if (point != PURGER_TP_SETTLED || !__atomic_exchange_n(&armed, 0, __ATOMIC_ACQ_REL)) return;
  __atomic_store_n(&at_point, 1, __ATOMIC_RELEASE);
  uint64_t end = now_ms() + 60000;
  while (!__atomic_load_n(&go_on, __ATOMIC_ACQUIRE)) {
    if (now_ms() >= end) {
      __atomic_store_n(&stalled_out, 1, __ATOMIC_RELEASE);
      break;
    }
    sleep_ms(1);
  }
}

static void *a_main(void *arg) {
  (void)arg;
  for (size_t i = 0; i <= PAGE0_BLOCKS; i++) {
    blocks[i] = zc_malloc(BLOCK);
    REQUIRE(blocks[i] != NULL);
    memset(blocks[i], 0x5A, BLOCK);
  }
  zc_stage_set(&st, 1);
  zc_stage_wait(&st, 5); /* idle: no allocator call until the end */
  zc_free(blocks[PAGE0_BLOCKS]);
  return NULL;
}

static void *b_main(void *arg) {
  (void)arg;
  zc_free(zc_malloc(BLOCK)); /* B's heap, made now: nothing but hand-overs in the window */
  zc_stage_set(&st, 2);
  zc_stage_wait(&st, 3);
  for (size_t i = 0; i < PAGE0_BLOCKS; i++) zc_free(blocks[i]); /* remote frees: 12 full chains */
  zc_stage_set(&st, 4);
  zc_stage_wait(&st, 5);
  return NULL;
}

static uint64_t reclaimed(void) {
  zc_stats_t s;
  zc_stats_get(&s);
  return s.pages_reclaimed;
}

/* Wait for the purger to stall at its test point, run between(), let it go on. */
static void in_window(void (*between)(void)) {
  __atomic_store_n(&armed, 1, __ATOMIC_RELEASE);
  zc_purger_test_hook(hook);
  REQUIREF(WAIT_UNTIL(__atomic_load_n(&at_point, __ATOMIC_ACQUIRE), 60000),
           "the purger did not reach its last sweep before the idle sleep within 60 s (it does after 1 s idle)");
  between();
  __atomic_store_n(&go_on, 1, __ATOMIC_RELEASE);
}

static void b_frees(void) {
  zc_stage_set(&st, 3);
  zc_stage_wait(&st, 4);
}

/* A remote free's hand-over (free.c hand_over_chain) in the window. */
static void case_handover(void) {
  void *mine = zc_malloc(100); /* the main thread's heap: A's is the second, its slow path starts the purger */
  REQUIRE(mine != NULL);
  pthread_t a, b;
  REQUIRE(pthread_create(&a, NULL, a_main, NULL) == 0);
  zc_stage_wait(&st, 1);
  REQUIRE(pthread_create(&b, NULL, b_main, NULL) == 0);
  zc_stage_wait(&st, 2);
  uint64_t r0 = reclaimed(); /* from now on the allocator is idle: after 1 s the purger's next sweep is its last */
  in_window(b_frees);
  printf("B's 12 hand-overs came between the purger's last sweep and its sleep\n");
  CHECKF(WAIT_UNTIL(reclaimed() > r0, 30000),
         "page 0, emptied by hand-overs between the purger's last sweep and its idle sleep, was not reclaimed "
         "within 30 s: the purger slept on with the hand-overs' work unseen (a lost wake-up)");
  zc_stage_set(&st, 5);
  REQUIRE(pthread_join(b, NULL) == 0);
  REQUIRE(pthread_join(a, NULL) == 0);
  zc_free(mine);
}

/* A large free into a front-cache slot (no lock; large.c, lg_front_tick after it) in the window. */
#define FRONT_BLOCK (256 * 1024)
static void *big;
static void free_big(void) { zc_free(big); }

static uint64_t purged(void) {
  zc_stats_t s;
  zc_stats_get(&s);
  return s.purged;
}

static void case_front(void) {
  big = zc_malloc(FRONT_BLOCK); /* a large allocation starts the purger */
  REQUIRE(big != NULL);
  memset(big, 0x5A, FRONT_BLOCK);
  uint64_t p0 = purged();
  in_window(free_big);
  printf("a %d KiB block was freed into the front cache between the purger's last sweep and its sleep\n",
         FRONT_BLOCK / 1024);
  CHECKF(WAIT_UNTIL(purged() >= p0 + FRONT_BLOCK - 4096, 30000),
         "the large block freed between the purger's last sweep and its idle sleep was not purged within 30 s "
         "(%llu bytes purged since): the purger slept on with the cached region unseen (a lost wake-up)",
         (unsigned long long)(purged() - p0));
}

int main(int argc, char **argv) {
  alarm(300);
  setvbuf(stdout, NULL, _IONBF, 0);
  REQUIREF(zc_purger_test_hook != NULL, "a ZCMEM_DEBUG=ON build is needed (the purger's test points)");
  REQUIREF(zc_option_get(zc_option_background) == 1 && zc_option_get(zc_option_purge_delay) == 100,
           "run with ZCMEM_BACKGROUND=1 ZCMEM_PURGE_DELAY=100");
  REQUIREF(argc == 2 && (!strcmp(argv[1], "handover") || !strcmp(argv[1], "front")),
           "usage: core_purger_settle handover|front");
  if (!strcmp(argv[1], "handover")) case_handover();
  else case_front();
  CHECKF(!__atomic_load_n(&stalled_out, __ATOMIC_ACQUIRE), "the test point stalled 60 s (main did not let it go)");
  zc_purger_test_hook(NULL);
  return check_exit(argv[1]);
}
