/* Two thread-lifetime edge cases of issue 8, on the prefixed API:
 *  1. A free from a late TLS destructor (one that runs after zcmem's own thread-exit hook parked the
 *     thread's heap, here in glibc's last round of key destructors) of another thread's block must not leave
 *     a heap behind that nobody parks: after such threads are joined, the number of live heaps (zc_stats_t.threads) is back where it
 *     was, and the blocks did reach their owner (its memory does not grow over many such threads).
 *  2. Statistics gathered while other threads allocate and free (and exit) in every class: the walk must
 *     neither crash nor loop, and its figures stay within the bounds of what was live.
 */
#include "check.h"
#include "zcmem.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

static pthread_key_t late_key;
static void *late_block;

/* Re-armed until glibc's last round (PTHREAD_DESTRUCTOR_ITERATIONS), then frees a block of the main thread. */
static void late_destructor(void *v) {
  uintptr_t round = (uintptr_t)v;
  if (round < PTHREAD_DESTRUCTOR_ITERATIONS) {
    pthread_setspecific(late_key, (void *)(round + 1));
    return;
  }
  zc_free(late_block);
}

/* A thread that used the allocator (so zcmem's hook parks its heap in the first round). A thread that never
 * did and frees only in the last round still gets a heap nobody parks: see docs/design.md. */
static void *late_thread(void *arg) {
  (void)arg;
  zc_free(zc_malloc(100));
  pthread_setspecific(late_key, (void *)(uintptr_t)1);
  return NULL;
}

static atomic_int stop;

static void *churn(void *arg) {
  rng_t r;
  rng_seed(&r, (uintptr_t)arg);
  void *slot[256] = {0};
  for (int it = 0; !atomic_load_explicit(&stop, memory_order_relaxed); it++) {
    unsigned i = (unsigned)(rng_next(&r) % 256);
    zc_free(slot[i]);
    slot[i] = zc_malloc((size_t)rng_range(&r, 1, rng_next(&r) % 8 ? 2048 : 65536));
  }
  for (int i = 0; i < 256; i++) zc_free(slot[i]);
  return NULL;
}

static void *short_lived(void *arg) {
  (void)arg;
  void *p[64];
  for (int i = 0; i < 64; i++) p[i] = zc_malloc((size_t)(i * 97 + 1));
  for (int i = 0; i < 64; i++) zc_free(p[i]);
  return NULL;
}

int main(int argc, char **argv) {
  int quick = quick_mode(argc, argv);
  if (UNDER_HEAVY_SANITIZER) { /* TSan has finished the thread before glibc's last destructor round: any
                                  atomic operation there crashes inside TSan itself */
    printf("core_late_free: skipped under a thread/address sanitizer\n");
    return 0;
  }
  zc_free(zc_malloc(1)); /* the main thread's heap, and zcmem's thread-exit key before ours (its hook runs
                            first in each round, so ours frees after it, in the last round) */
  REQUIRE(pthread_key_create(&late_key, late_destructor) == 0);
  zc_stats_t s0, s1;
  zc_stats_get(&s0);
  int rounds = quick ? 200 : 1000;
  for (int k = 0; k < rounds; k++) {
    late_block = zc_malloc(48);
    REQUIRE(late_block != NULL);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, late_thread, (void *)1) == 0);
    pthread_join(t, NULL);
  }
  zc_collect(true); /* take the late frees in */
  zc_stats_get(&s1);
  printf("late frees: %d threads freed a block from their last TLS destructor round: live heaps %llu -> %llu, "
         "errors %llu\n",
         rounds, (unsigned long long)s0.threads, (unsigned long long)s1.threads,
         (unsigned long long)(s1.errors - s0.errors));
  CHECKF(s1.threads == s0.threads, "%llu heaps left live by exited threads",
         (unsigned long long)(s1.threads - s0.threads));
  CHECK(s1.errors == s0.errors);
  CHECKF(s1.allocated <= s0.allocated + 4096, "allocated grew from %llu to %llu: the late frees were lost",
         (unsigned long long)s0.allocated, (unsigned long long)s1.allocated);

  /* statistics while others churn and exit (the walk reads page counts the owners write without
   * synchronisation on purpose: a snapshot, memory-safe, see src/stats.c; TSan would report it) */
  enum { T = 3 };
  pthread_t th[T];
  for (uintptr_t i = 0; i < T; i++) REQUIRE(pthread_create(&th[i], NULL, churn, (void *)(i + 7)) == 0);
  int walks = quick ? 300 : 2000;
  for (int k = 0; k < walks; k++) {
    zc_stats_t s;
    zc_stats_get(&s);
    CHECKF(s.allocated < ((uint64_t)1 << 40), "walk %d: allocated %llu", k, (unsigned long long)s.allocated);
    if (k % 50 == 0) {
      pthread_t t;
      REQUIRE(pthread_create(&t, NULL, short_lived, NULL) == 0);
      pthread_join(t, NULL);
    }
    if (check_failures > 5) break;
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
  printf("stats: %d walks while %d threads churned and others came and went\n", walks, T);
  return check_exit("core_late_free");
}
