/* Remote-free statistics per pair when a freer's chain changes owner: a thread frees 10 blocks of the main
 * thread's, then 1 of thread B's, then 5 more of the main thread's, then hands everything over
 * (zc_thread_done). zc_stats_pairs must count exactly 15 blocks for (freer, main) and 1 for (freer, B). With
 * one pending chain, the chain is counted in the freer's last selected pair entry (src/free.c chain_pair),
 * so a chain for another owner must hand the pending one over before it selects its own entry; without that
 * the 10 would be counted under B and B's 1 under main (this test fails). Prefixed API (zc_malloc/zc_free).
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"

#include <pthread.h>

enum { NA1 = 10, NA2 = 5, MAXP = 256 };
static void *a[NA1 + NA2], *bblk;
static uint32_t main_id, b_id, f_id;
static pthread_barrier_t ready, done;
static zc_pair_stats_t before[MAXP], after[MAXP];
static size_t nbefore, nafter;

static uint64_t blocks_of(const zc_pair_stats_t *t, size_t n, uint32_t freer, uint32_t owner) {
  for (size_t i = 0; i < n && i < MAXP; i++)
    if (t[i].freer == freer && t[i].owner == owner) return t[i].blocks;
  return 0;
}

static void *thread_b(void *arg) {
  (void)arg;
  b_id = zc_thread_heap_id();
  bblk = zc_malloc(48);
  REQUIRE(bblk != NULL);
  pthread_barrier_wait(&ready); /* the freer may run */
  pthread_barrier_wait(&done);  /* alive (the owner of its page) until the freer is done */
  return NULL;
}

static void *freer(void *arg) {
  (void)arg;
  f_id = zc_thread_heap_id();
  nbefore = zc_stats_pairs(before, MAXP);
  for (int i = 0; i < NA1; i++) zc_free(a[i]);
  zc_free(bblk);
  for (int i = NA1; i < NA1 + NA2; i++) zc_free(a[i]);
  zc_thread_done(); /* hands the pending chain over */
  nafter = zc_stats_pairs(after, MAXP);
  return NULL;
}

int main(void) {
  main_id = zc_thread_heap_id();
  for (int i = 0; i < NA1 + NA2; i++) REQUIRE((a[i] = zc_malloc(48)) != NULL);
  REQUIRE(pthread_barrier_init(&ready, NULL, 2) == 0);
  REQUIRE(pthread_barrier_init(&done, NULL, 2) == 0);
  pthread_t tb, tf;
  REQUIRE(pthread_create(&tb, NULL, thread_b, NULL) == 0);
  pthread_barrier_wait(&ready);
  REQUIRE(pthread_create(&tf, NULL, freer, NULL) == 0);
  REQUIRE(pthread_join(tf, NULL) == 0);
  pthread_barrier_wait(&done);
  REQUIRE(pthread_join(tb, NULL) == 0);
  REQUIRE(nbefore <= MAXP && nafter <= MAXP);
  REQUIRE(main_id != b_id && f_id != main_id && f_id != b_id);
  uint64_t to_main = blocks_of(after, nafter, f_id, main_id) - blocks_of(before, nbefore, f_id, main_id);
  uint64_t to_b = blocks_of(after, nafter, f_id, b_id) - blocks_of(before, nbefore, f_id, b_id);
  printf("freer %u: %llu blocks counted to main (%u), %llu to B (%u)\n", f_id, (unsigned long long)to_main, main_id,
         (unsigned long long)to_b, b_id);
  CHECKF(to_main == NA1 + NA2, "blocks of main's freed by the freer: %llu counted, want %d",
         (unsigned long long)to_main, NA1 + NA2);
  CHECKF(to_b == 1, "blocks of B's freed by the freer: %llu counted, want 1", (unsigned long long)to_b);
  CHECK_DONE("core_pairs_switch");
}
