/* The purger reads the used count of a page that is not its class's current page while the owner's local
 * frees lower it with no lock between them (src/reclaim.c, all_back; src/free.c, used_dec_above_zero). This
 * makes that interleaving on purpose and checks its outcome:
 *
 *   core_reclaim_used   rounds of: the owner (main) allocates 8192 blocks of 64 B (eight pages and more),
 *                       each carrying a pattern; a second thread frees three of every four (remote frees:
 *                       every page's thread_free is then non-empty, a candidate the purger reads used of)
 *                       and exits (its pending chains handed over); then the owner frees its own quarter in a
 *                       shuffled order, a few at a time with the purger sweeping every 2.5 ms
 *                       (ZCMEM_PURGE_DELAY=5), and checks the pattern of every block it still holds after
 *                       each few. A page must never be reclaimed while the owner holds a block of it: that
 *                       block's page would be purged (zeros: a pattern lost) or reported at the drain as a
 *                       double free (zc_stats_t.errors). Once the owner freed all, the pages are reclaimed
 *                       (pages_reclaimed grows: the purger did look at these pages), before the next round.
 * Links zcmem_prefixed and runs in every build: under TSan every access to used is C atomic or under the heap
 * lock (free.c), so TSan checks the owner's writes against the purger's reads here (a plain write of used in
 * the owner's free is reported as a data race).
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"

#include <pthread.h>

enum { N = 8192, BS = 64, ROUNDS = 6 };
static void *blocks[N];

static void fill(void *p) {
  uint64_t v = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull;
  memcpy(p, &v, 8);
  memcpy((char *)p + BS - 8, &v, 8);
}
static int intact(const void *p) {
  uint64_t v = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull, a, b;
  memcpy(&a, p, 8);
  memcpy(&b, (const char *)p + BS - 8, 8);
  return a == v && b == v;
}

static void *remote_free(void *arg) {
  (void)arg;
  for (int i = 0; i < N; i++)
    if (i % 4 != 0) {
      if (!intact(blocks[i])) __atomic_fetch_add(&check_failures, 1, __ATOMIC_RELAXED);
      zc_free(blocks[i]);
      blocks[i] = NULL;
    }
  return NULL; /* the thread's exit hands its pending chains over */
}

static uint64_t reclaimed(void) {
  zc_stats_t st;
  zc_stats_get(&st);
  return st.pages_reclaimed;
}

int main(void) {
  alarm(600);
  REQUIREF(zc_option_get(zc_option_background) == 1 && zc_option_get(zc_option_purge_delay) > 0,
           "needs the background purger");
  rng_t r;
  rng_seed(&r, 12);
  int own[N / 4];
  size_t lost = 0;
  for (int round = 0; round < ROUNDS; round++) {
    for (int i = 0; i < N; i++) {
      blocks[i] = zc_malloc(BS);
      REQUIRE(blocks[i] != NULL);
      fill(blocks[i]);
    }
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, remote_free, NULL) == 0);
    REQUIRE(pthread_join(t, NULL) == 0);
    uint64_t before = reclaimed();
    int n = 0;
    for (int i = 0; i < N; i += 4) own[n++] = i;
    for (int i = n - 1; i > 0; i--) { /* shuffle: the frees hop between pages */
      int j = (int)(rng_next(&r) % (uint64_t)(i + 1)), x = own[i];
      own[i] = own[j];
      own[j] = x;
    }
    for (int k = 0; k < n; k++) {
      zc_free(blocks[own[k]]);
      blocks[own[k]] = NULL;
      if (k % 32 == 31) {
        sleep_ms(1);
        for (int m = k + 1; m < n; m++) lost += !intact(blocks[own[m]]);
      }
    }
    /* the premise: the purger looked at these pages (each is reclaimed once the owner freed all of it) */
    CHECKF(WAIT_UNTIL(reclaimed() > before, 30000), "round %d: no page reclaimed within 30 s", round);
  }
  zc_stats_t st;
  zc_stats_get(&st);
  CHECKF(lost == 0, "%zu checks found a block the owner still held changed (its page reclaimed and purged)", lost);
  CHECKF(st.errors == 0, "%llu errors reported (a page reclaimed with a block in use is a double free at the drain)",
         (unsigned long long)st.errors);
  printf("reclaim_used: %d rounds, %llu pages reclaimed, %zu lost, %llu errors\n", ROUNDS,
         (unsigned long long)st.pages_reclaimed, lost, (unsigned long long)st.errors);
  return check_exit("core_reclaim_used");
}
