/* Work made for the background purger between its last sweep and its idle sleep is not lost: the purger is
 * either woken by it or sees it (memory handed back on a bounded delay; the wake-up protocol at
 * lg_purger_state in src/large.h, purger_main in src/large_pool.c).
 *
 * Whoever makes work for the purger tests its state and wakes it only when it does not see it running.
 * Before, the purger went to sleep (state 3) after its last sweep: work published in between saw it running,
 * woke nobody, and waited for its owner's next call, for ever for an idle owner. Each case forces that order
 * through the library's test points (ZC_DEBUG builds only; the test is built there only): the purger is
 * stalled at ZC_TP_PURGER_SETTLED (its last sweep found nothing to do; its sleep comes next) while:
 *   handover  thread B frees the 768 blocks of page 0 of idle thread A (12 remote-free chains of 64, each handed
 *             over by a free, free.c hand_over_chain; no malloc). The main thread makes a heap first, so that
 *             A's first slow path starts the purger (a second heap); B makes its own heap before, so that
 *             nothing but its hand-overs happens in the window. Page 0 must be reclaimed (zc_stats_t
 *             pages_reclaimed) within 30 s.
 *   front     the main thread frees a 256 KiB block into its front-cache slot (no lock; large.c, then
 *             lg_front_tick). It must be purged (zc_stats_t purged) within 30 s.
 *   pages     another thread's zc_pages_free empties a counted page (src/lifetime/pages.c page_recycle); that
 *             thread is stalled at ZC_TP_PAGES_RECYCLE, before its push of the page, until the purger is at its
 *             point. The page must be purged (zc_pages_stats pages_purged) within 30 s.
 * The purger must reach its point within 60 s (it does after 1 s with nothing to do).
 *
 * Run with ZCMEM_BACKGROUND=1 ZCMEM_PURGE_DELAY=100. Links zcmem_prefixed built with ZCMEM_DEBUG=ON.
 */
#define _GNU_SOURCE
#include "zc_stage.h"
#include "zc_test.h"
#include "zcmem.h"
#include "zcmem_pages.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 64
#define PAGE0_BLOCKS ((64 - 16) * 1024 / BLOCK) /* page 0 starts after the 16 KiB header */
#define TP_PURGER_SETTLED 1                      /* src/idle.h */
#define TP_PAGES_RECYCLE 2

/* Exported by the library in ZC_DEBUG builds only (large_pool.c). */
extern void zc_purger_test_hook(void (*fn)(int point)) __attribute__((weak));

static void *blocks[PAGE0_BLOCKS + 1];
static zc_stage_t st = ZC_STAGE_INIT; /* 1: A allocated; 2: B has a heap; 3: B may free; 4: B freed; 5: end */
static int armed, at_point, go_on, stalled_out; /* the hook's handshake with main (atomics) */
static int pages_armed, freer_at;                 /* the pages case: the freer's point */

/* Until *flag is set (60 s at most: then stalled_out). Calls nothing of the allocator. */
static void stall_until(const int *flag) {
  uint64_t end = now_ms() + 60000;
  while (!__atomic_load_n(flag, __ATOMIC_ACQUIRE)) {
    if (now_ms() >= end) {
      __atomic_store_n(&stalled_out, 1, __ATOMIC_RELEASE);
      break;
    }
    sleep_ms(1);
  }
}

/* On the purger thread, once armed: report the point and stall there until main lets it go on. On a thread
 * whose counted-pages free emptied a page (pages case, once armed): stall until the purger is at its point. */
static void hook(int point) {
  if (point == TP_PAGES_RECYCLE && __atomic_exchange_n(&pages_armed, 0, __ATOMIC_ACQ_REL)) {
    __atomic_store_n(&freer_at, 1, __ATOMIC_RELEASE);
    stall_until(&at_point);
    return;
  }
  if (point != TP_PURGER_SETTLED || !__atomic_exchange_n(&armed, 0, __ATOMIC_ACQ_REL)) return;
  __atomic_store_n(&at_point, 1, __ATOMIC_RELEASE);
  stall_until(&go_on);
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

/* A counted-pages free from another thread that empties a page (src/lifetime/pages.c page_recycle: the page
 * pushed on remote_free, then the purger kicked) in the window: the freer is stalled just before its push
 * until the purger has made its last sweep; the purger waits at its point until the free has returned. The
 * page must then be purged (the hook ages it: zc_pages_stats pages_purged). Before, the kick came before
 * the push: it saw the purger running, and the push after the last sweep was never seen. */
static zc_pages_t *pages;
static void *page0[4096];
static size_t page0_n;
static int freed;

static void *pages_freer(void *arg) {
  (void)arg;
  for (size_t i = 0; i < page0_n; i++) zc_pages_free(page0[i]); /* the last one empties the page */
  __atomic_store_n(&freed, 1, __ATOMIC_RELEASE);
  return NULL;
}

static void case_pages(void) {
  zc_pages_config_t cfg = {0};
  cfg.page_size = (size_t)64 << 10;
  pages = zc_pages_create(&cfg); /* registers its idle hook and starts the purger */
  REQUIRE(pages != NULL);
  /* 1 KiB objects until one lands in another page: the first page is retired with all of them live */
  uintptr_t mask = ~(uintptr_t)(cfg.page_size - 1), first = 0;
  void *next = NULL;
  for (;;) {
    void *o = zc_pages_alloc(pages, 1024);
    REQUIRE(o != NULL && page0_n < 4096);
    memset(o, 0x5A, 1024);
    if (first == 0) first = (uintptr_t)o & mask;
    if (((uintptr_t)o & mask) != first) {
      next = o;
      break;
    }
    page0[page0_n++] = o;
  }
  zc_pages_stats_t s0;
  zc_pages_stats(pages, &s0);
  __atomic_store_n(&pages_armed, 1, __ATOMIC_RELEASE);
  zc_purger_test_hook(hook);
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, pages_freer, NULL) == 0);
  REQUIREF(WAIT_UNTIL(__atomic_load_n(&freer_at, __ATOMIC_ACQUIRE), 60000), "the freer never emptied the page");
  __atomic_store_n(&armed, 1, __ATOMIC_RELEASE); /* the purger's next settle: after 1 s with nothing to do */
  REQUIREF(WAIT_UNTIL(__atomic_load_n(&at_point, __ATOMIC_ACQUIRE), 60000),
           "the purger did not reach its last sweep before the idle sleep within 60 s (it does after 1 s idle)");
  REQUIREF(WAIT_UNTIL(__atomic_load_n(&freed, __ATOMIC_ACQUIRE), 60000), "the freer did not return");
  __atomic_store_n(&go_on, 1, __ATOMIC_RELEASE);
  REQUIRE(pthread_join(t, NULL) == 0);
  printf("a counted page emptied by another thread was pushed between the purger's last sweep and its sleep\n");
  zc_pages_stats_t s;
  CHECKF(WAIT_UNTIL((zc_pages_stats(pages, &s), s.pages_purged > s0.pages_purged), 30000),
         "the counted page emptied by another thread between the purger's last sweep and its idle sleep was "
         "not purged within 30 s (pages_purged %llu -> %llu): the purger slept on with the page unseen",
         (unsigned long long)s0.pages_purged, (unsigned long long)s.pages_purged);
  zc_pages_free(next);
  zc_pages_destroy(pages);
}

int main(int argc, char **argv) {
  alarm(300);
  setvbuf(stdout, NULL, _IONBF, 0);
  REQUIREF(zc_purger_test_hook != NULL, "a ZCMEM_DEBUG=ON build is needed (the purger's test points)");
  REQUIREF(zc_option_get(zc_option_background) == 1 && zc_option_get(zc_option_purge_delay) == 100,
           "run with ZCMEM_BACKGROUND=1 ZCMEM_PURGE_DELAY=100");
  REQUIREF(argc == 2 && (!strcmp(argv[1], "handover") || !strcmp(argv[1], "front") || !strcmp(argv[1], "pages")),
           "usage: core_purger_settle handover|front|pages");
  if (!strcmp(argv[1], "handover")) case_handover();
  else if (!strcmp(argv[1], "front")) case_front();
  else case_pages();
  CHECKF(!__atomic_load_n(&stalled_out, __ATOMIC_ACQUIRE), "the test point stalled 60 s (main did not let it go)");
  zc_purger_test_hook(NULL);
  return check_exit(argv[1]);
}
