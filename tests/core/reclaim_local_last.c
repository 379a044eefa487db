/* A page whose last block out is freed by its owner (a local free), the others having come back from another
 * thread's frees, is reclaimed by the purger even when the purger went to sleep as idle before that free
 * (src/reclaim.c, src/large_pool.c purger_main).
 *
 * The owner's local free writes only the page's used count: it wakes nothing. A purger that slept with no
 * end while such pages waited for their owner's frees slept on after them: the pages stayed in use, resident,
 * until the owner's next malloc slow path (core_reclaim_used's "no page reclaimed within 30 s" in 2 of 12
 * debug runs under load: its owner's frees took longer than the purger's 1 s of idleness). The purger now
 * sleeps with a deadline while some page holds other threads' freed blocks behind its owner's (watch), and
 * sweeps again when it passes.
 *
 * Thread A (the owner; the second heap, whose first slow path starts the purger) allocates 4096 blocks of
 * 64 B (pages 0-4: at least four pages that are not current) and waits. Thread B frees three of every four
 * and exits (its chains handed over). Once the purger is seen asleep in its futex wait (twice, 200 ms apart),
 * A frees its quarter (local frees, no malloc) and waits again, alive and idle. A page must then be reclaimed
 * (zc_stats_t pages_reclaimed) within 30 s. Fails with the watch removed (the purger sleeps on). If the
 * purger is never seen asleep within 60 s the test fails too, rather than leave the case untested.
 *
 * Run with ZCMEM_BACKGROUND=1 ZCMEM_PURGE_DELAY=100 (the purger sleeps after 1 s idle). Links
 * zcmem_prefixed. Linux only (/proc).
 */
#define _GNU_SOURCE
#include "zc_proc.h"
#include "zc_stage.h"
#include "zc_test.h"
#include "zcmem.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>

enum { N = 4096, BS = 64 };
static void *blocks[N];
static zc_stage_t st = ZC_STAGE_INIT; /* 1: A allocated; 2: A may free its quarter; 3: A freed it; 4: A may end */
static pid_t tid_a;

static void *a_main(void *arg) {
  (void)arg;
  pid_t me = (pid_t)syscall(SYS_gettid);
  for (int i = 0; i < N; i++) {
    blocks[i] = zc_malloc(BS);
    REQUIRE(blocks[i] != NULL);
    memset(blocks[i], 0x5A, BS);
  }
  tid_a = me; /* seen by main after its zc_stage_wait(&st, 1) */
  zc_stage_set(&st, 1);
  zc_stage_wait(&st, 2);
  for (int i = 0; i < N; i += 4) zc_free(blocks[i]); /* local frees: the last blocks out of their pages */
  zc_stage_set(&st, 3);
  zc_stage_wait(&st, 4); /* idle: no allocator call until the end */
  return NULL;
}

static void *b_main(void *arg) {
  (void)arg;
  for (int i = 0; i < N; i++)
    if (i % 4 != 0) zc_free(blocks[i]);
  return NULL; /* the exit hands the pending chains over */
}

/* Some task of the process other than main and A waits in futex(): the purger sleeps as idle. */
static int purger_asleep(pid_t self) {
  pid_t skip[2] = {self, tid_a};
  return zc_thread_in_futex(skip, 2);
}

static uint64_t reclaimed(void) {
  zc_stats_t s;
  zc_stats_get(&s);
  return s.pages_reclaimed;
}

int main(void) {
  alarm(300);
  REQUIREF(zc_option_get(zc_option_background) == 1 && zc_option_get(zc_option_purge_delay) > 0,
           "run with ZCMEM_BACKGROUND=1 and a purge delay");
  pid_t self = (pid_t)syscall(SYS_gettid);
  void *mine = zc_malloc(100); /* the main thread's heap: A's is the second, its slow path starts the purger */
  REQUIRE(mine != NULL);
  pthread_t a, b;
  REQUIRE(pthread_create(&a, NULL, a_main, NULL) == 0);
  zc_stage_wait(&st, 1);
  REQUIRE(pthread_create(&b, NULL, b_main, NULL) == 0);
  REQUIRE(pthread_join(b, NULL) == 0);
  /* twice in a row, 200 ms apart: the idle sleep's futex wait, not a passing lock wait */
  int asleep = WAIT_UNTIL(purger_asleep(self) && (sleep_ms(200), purger_asleep(self)), 60000);
  REQUIREF(asleep, "the purger was not seen asleep within 60 s (it sleeps after 1 s with nothing to do)");
  uint64_t r0 = reclaimed();
  zc_stage_set(&st, 2);
  zc_stage_wait(&st, 3);
  printf("the purger slept; the owner freed its quarter\n");
  CHECKF(WAIT_UNTIL(reclaimed() > r0, 30000),
         "no page reclaimed within 30 s after the owner's local frees left its pages with no block out (the "
         "purger slept on)");
  zc_stage_set(&st, 4);
  REQUIRE(pthread_join(a, NULL) == 0);
  zc_free(mine);
  return check_exit("core_reclaim_local_last");
}
