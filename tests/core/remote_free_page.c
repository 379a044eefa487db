/* Another thread's free of a pointer into a page that is free again (its blocks were all freed, the page was
 * retired and purged) is reported once and changes nothing, for a small page (the map's owner tag: free.c
 * free_other_small) and a medium one (free_slow). The remote path reads no page state: it relies on the
 * remote line's limit being 0 while the page is not in use (zc_page_unpublish, src/internal.h), and this
 * test is what would catch a page freed without it: the stale limit would pass the grid test, the purged
 * block carries no free tag, and the block would be handed over into a free page without a word.
 *
 * For each size: blocks are taken until three pages hold some; every block of one full page that is not
 * the class's current page is freed by the owner, zc_collect(true) retires and purges it, and
 * zc_owned_size of its first block must then be 0 (the premise: the page is free). Another thread frees
 * that block and exits (its pending chain would be handed over then): zc_stats_get's error count grows by
 * exactly one and the remote-free count not at all. The owner's other blocks keep their pattern. Then a
 * page broken by a write after free: another thread's correct free of one of its live blocks stays silent.
 * Runs with ZCMEM_ABORT_ON_ERROR=0 and ZCMEM_BACKGROUND=0. Prefixed API (zc_malloc/zc_free).
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"

#include <pthread.h>
#include <stdlib.h>

enum { MAXB = 4096 };

static void *remote_free(void *p) {
  zc_free(p);
  zc_thread_done();
  return NULL;
}

static zc_stats_t stats(void) {
  zc_stats_t s;
  zc_stats_get(&s);
  return s;
}

static void one_size(size_t size, uintptr_t page) {
  static unsigned char *b[MAXB];
  size_t n = 0;
  uintptr_t pages[3];
  size_t npages = 0;
  while (n < MAXB) {
    unsigned char *p = zc_malloc(size);
    REQUIRE(p != NULL);
    memset(p, 0x5A, size);
    b[n++] = p;
    uintptr_t pg = (uintptr_t)p & ~(page - 1);
    size_t k = 0;
    while (k < npages && pages[k] != pg) k++;
    if (k == npages) {
      if (npages == 3) break; /* a fourth page: the first three are full, the last block's is current */
      pages[npages++] = pg;
    }
  }
  REQUIREF(npages == 3, "%zu B: %zu blocks did not reach a fourth page", size, n);
  uintptr_t victim = pages[1]; /* full, not the current page */
  unsigned char *first = NULL;
  size_t freed = 0;
  for (size_t i = 0; i < n; i++)
    if (((uintptr_t)b[i] & ~(page - 1)) == victim) {
      if (first == NULL || b[i] < first) first = b[i];
      zc_free(b[i]);
      b[i] = NULL;
      freed++;
    }
  zc_collect(true);
  CHECKF(zc_owned_size(first) == 0, "%zu B: the page of %p is still in use after all %zu of its blocks were freed",
         size, (void *)first, freed);
  zc_stats_t s0 = stats();
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, remote_free, first) == 0);
  REQUIRE(pthread_join(t, NULL) == 0);
  zc_stats_t s1 = stats();
  CHECKF(s1.errors - s0.errors == 1, "%zu B: remote free of %p (a free page): %llu reports, want 1", size,
         (void *)first, (unsigned long long)(s1.errors - s0.errors));
  CHECKF(s1.remote_frees == s0.remote_frees, "%zu B: remote free of %p (a free page) was handed over", size,
         (void *)first);
  for (size_t i = 0; i < n; i++) {
    if (b[i] == NULL) continue;
    for (size_t k = 0; k < size; k++)
      if (b[i][k] != 0x5A) {
        CHECKF(0, "%zu B: a live block changed at byte %zu", size, k);
        break;
      }
    zc_free(b[i]);
  }
  printf("%zu B: %zu blocks freed from page %p, then %p freed by another thread\n", size, freed, (void *)victim,
         (void *)first);
}

/* A page broken by a write after free (a bent link, reported once when malloc reaches it): another thread's
 * later free of one of its live blocks is a correct free, and is neither reported nor handed over (the page
 * is set aside for good). On the remote path only a free that fails the grid test reads the state, and a
 * broken page's limit is 0: this is what checks that the report is then left out. */
static char global_block[256] __attribute__((aligned(64)));
static void broken_page(void) {
  enum { LIVE = 40, SIZE = 80 };
  unsigned char *live[LIVE];
  for (int i = 0; i < LIVE; i++) {
    live[i] = zc_malloc(SIZE);
    REQUIRE(live[i] != NULL);
  }
  unsigned char *p = zc_malloc(SIZE);
  REQUIRE(p != NULL);
  uintptr_t page = (uintptr_t)p & ~(((uintptr_t)64 << 10) - 1);
  unsigned char *victim = NULL;
  for (int i = 0; i < LIVE && victim == NULL; i++)
    if (((uintptr_t)live[i] & ~(((uintptr_t)64 << 10) - 1)) == page) victim = live[i];
  REQUIRE(victim != NULL);
  zc_stats_t s0 = stats();
  zc_free(p);
  *(void **)p = global_block; /* the write after free */
  for (int i = 0; i < 3000; i++) REQUIRE(zc_malloc(SIZE) != (void *)global_block); /* kept: never freed */
  zc_stats_t s1 = stats();
  CHECKF(s1.errors - s0.errors == 1, "the bent link of %p: %llu reports, want 1", (void *)p,
         (unsigned long long)(s1.errors - s0.errors));
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, remote_free, victim) == 0);
  REQUIRE(pthread_join(t, NULL) == 0);
  zc_stats_t s2 = stats();
  CHECKF(s2.errors == s1.errors, "another thread's free of %p, live in a broken page, was reported", (void *)victim);
  CHECKF(s2.remote_frees == s1.remote_frees, "another thread's free of %p, live in a broken page, was handed over",
         (void *)victim);
  printf("%d B: a bent link broke page %p; %p freed by another thread afterwards, silently\n", SIZE, (void *)page,
         (void *)victim);
}

int main(void) {
  setenv("ZCMEM_ABORT_ON_ERROR", "0", 1);
  setenv("ZCMEM_BACKGROUND", "0", 1);
  one_size(3000, (uintptr_t)64 << 10);   /* small segment: 64 KiB pages, the map holds the owner's tag */
  one_size(20000, (uintptr_t)128 << 10); /* medium segment: 128 KiB pages, free_slow */
  broken_page();
  CHECK_DONE("core_remote_free_page");
}
