/* A remote free's hand-over wakes the background purger when it sleeps as idle, so that pages other
 * threads' frees empty in an idle owner's heap are still reclaimed (src/reclaim.c).
 *
 * The hand-over tests the purger's state inline and calls zc_purger_wake only when it is not running
 * (free.c hand_over_chain): this test checks the branch that is left, the one a sleeping purger needs.
 * The main thread makes a heap first, so that thread A's first malloc slow path starts the purger (a second
 * heap). A fills page 0 of its fresh segment with 64 B blocks (768 of them, then one more: page 1 becomes
 * current) and waits, alive and idle. Once the purger has slept in its idle futex wait (found in
 * /proc/self/task/<tid>/syscall: the one task the test did not make), thread B frees page 0's 768 blocks:
 * 12 full chains of 64, each handed over by a free, with no malloc (a malloc slow path would start or wake the
 * purger itself) and no thread exit. The page must then be reclaimed (zc_stats_t pages_reclaimed, waited for
 * up to 4 purge delays + 20 s). Fails if the hand-over does not wake a sleeping purger: it sleeps on, and
 * nothing else wakes it. The purger must be seen asleep within 60 s (it sleeps after 1 s with nothing to
 * do): a purger that never sleeps fails the test too, rather than leaving the wake untested.
 *
 * Run with ZCMEM_BACKGROUND=1 ZCMEM_PURGE_DELAY=100 (the purger sleeps after 1 s idle). Links
 * zcmem_prefixed. Linux only (/proc).
 */
#define _GNU_SOURCE
#include "zc_clock.h"
#include "zc_proc.h"
#include "zc_stage.h"
#include "zc_test.h"
#include "zcmem.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BLOCK 64
#define PAGE0_BLOCKS ((64 - 16) * 1024 / BLOCK) /* page 0 starts after the 16 KiB header */

static void *blocks[PAGE0_BLOCKS + 1];
static zc_stage_t st = ZC_STAGE_INIT; /* 1: A has allocated; 2: B may free; 3: B has freed; 4: B may end; 5: A may end */
static pid_t tid_a, tid_b;

static void *a_main(void *arg) {
  (void)arg;
  pid_t me = (pid_t)syscall(SYS_gettid);
  for (size_t i = 0; i <= PAGE0_BLOCKS; i++) {
    blocks[i] = zc_malloc(BLOCK);
    REQUIRE(blocks[i] != NULL);
    memset(blocks[i], 0x5A, BLOCK);
  }
  tid_a = me; /* seen by main after its zc_stage_wait(&st, 1) */
  zc_stage_set(&st, 1);
  zc_stage_wait(&st, 5); /* idle: no allocator call until the end */
  zc_free(blocks[PAGE0_BLOCKS]);
  return NULL;
}

static void *b_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&st.mu);
  tid_b = (pid_t)syscall(SYS_gettid); /* under st.mu: main reads it once it is set */
  pthread_cond_broadcast(&st.cv);
  pthread_mutex_unlock(&st.mu);
  zc_stage_wait(&st, 2);
  for (size_t i = 0; i < PAGE0_BLOCKS; i++) zc_free(blocks[i]); /* remote frees: 12 full chains */
  zc_stage_set(&st, 3);
  zc_stage_wait(&st, 4);
  return NULL;
}

/* Some task of the process other than main, A and B (the purger) waits in futex(): the purger sleeps as
 * idle (state 3). */
static int purger_asleep(pid_t self) {
  pid_t skip[3] = {self, tid_a, tid_b};
  return zc_thread_in_futex(skip, 3);
}

static uint64_t reclaimed(void) {
  zc_stats_t s;
  zc_stats_get(&s);
  return s.pages_reclaimed;
}

int main(void) {
  CHECKF(zc_option_get(zc_option_background) == 1, "run with ZCMEM_BACKGROUND=1");
  uint64_t delay = (uint64_t)zc_option_get(zc_option_purge_delay);
  pid_t self = (pid_t)syscall(SYS_gettid);
  void *mine = zc_malloc(100); /* the main thread's heap: A's is the second, its slow path starts the purger */
  REQUIRE(mine != NULL);
  pthread_t a, b;
  REQUIRE(pthread_create(&b, NULL, b_main, NULL) == 0);
  REQUIRE(pthread_create(&a, NULL, a_main, NULL) == 0);
  zc_stage_wait(&st, 1);
  pthread_mutex_lock(&st.mu);
  while (tid_b == 0) pthread_cond_wait(&st.cv, &st.mu);
  pthread_mutex_unlock(&st.mu);
  /* twice in a row, 200 ms apart: a futex wait of the idle sleep, not a passing lock wait */
  int asleep = WAIT_UNTIL(purger_asleep(self) && (usleep(200000), purger_asleep(self)), 60000);
  uint64_t r0 = reclaimed();
  zc_stage_set(&st, 2);
  zc_stage_wait(&st, 3);
  if (asleep) {
    printf("the purger slept; B's hand-overs began\n");
    int ok = WAIT_UNTIL(reclaimed() > r0, delay * 4 + 60000);
    CHECKF(ok, "page 0, emptied by another thread's frees while the purger slept, was never reclaimed: the "
               "hand-overs did not wake the purger");
  } else {
    CHECKF(0, "the purger was not seen asleep within 60 s with nothing to do (it sleeps after 1 s idle)");
  }
  zc_stage_set(&st, 4);
  REQUIRE(pthread_join(b, NULL) == 0);
  zc_stage_set(&st, 5);
  REQUIRE(pthread_join(a, NULL) == 0);
  zc_free(mine);
  return check_exit("core_wake_handover");
}
