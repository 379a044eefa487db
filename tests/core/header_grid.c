/* Frees of pointers inside a small segment's header, on the block grid of page 0 (whose first block starts
 * right after the header), from the owner and from another thread: each is reported once and changes
 * nothing. No free path compares the pointer with the header's end: the grid test rejects it (its 32-bit
 * offset from page 0's start wraps to at least 2^32 - header, src/free.c block_checks), and this test is
 * what would catch a grid measured some other way (from the page's 64 KiB base, say) letting the header
 * through.
 *
 * For each size class below, blocks of that size are taken until one lands on page 0 of a segment (a class
 * that fills a segment's pages gets page 0 of the next one), and that block's page start is checked to be
 * the header's end. Then for a few k (1, 2, 3 and the largest that stays inside the header),
 * start - k * size is freed by the owner and by another thread: zc_stats_get's error count grows by exactly
 * one each time and the remote-free count not at all. At the end the owner takes as many blocks again as
 * it freed and none may lie in the header, and every block taken keeps its pattern.
 * Runs with ZCMEM_ABORT_ON_ERROR=0 (set before the first call). Prefixed API (zc_malloc/zc_free).
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"

#include <pthread.h>
#include <stdlib.h>

#define SEG ((uintptr_t)4 << 20)
#define HEADER ((uintptr_t)16 << 10) /* ZC_SEGMENT_HEADER: page 0's blocks start here */
#define PAGE ((uintptr_t)64 << 10)

static const size_t sizes[] = {16, 48, 64, 80, 112, 192, 256, 448, 1024, 3072};
enum { NSIZES = sizeof sizes / sizeof sizes[0], MAXB = 300000 };
static void **taken[NSIZES];
static size_t ntaken[NSIZES];

static void *remote_free(void *p) {
  zc_free(p);
  zc_thread_done();
  return NULL;
}

static uint64_t errors(void) {
  zc_stats_t s;
  zc_stats_get(&s);
  return s.errors;
}
static uint64_t remote_frees(void) {
  zc_stats_t s;
  zc_stats_get(&s);
  return s.remote_frees;
}

/* Free q from this thread (owner) and from another one: one report each, no block handed over. */
static void bad_frees(void *q, size_t size) {
  uint64_t e0 = errors(), r0 = remote_frees();
  zc_free(q);
  CHECKF(errors() - e0 == 1, "owner's free of %p (header, %zu B grid): %llu reports, want 1", q, size,
         (unsigned long long)(errors() - e0));
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, remote_free, q) == 0);
  REQUIRE(pthread_join(t, NULL) == 0);
  CHECKF(errors() - e0 == 2, "remote free of %p (header, %zu B grid): %llu reports in all, want 2", q, size,
         (unsigned long long)(errors() - e0));
  CHECKF(remote_frees() == r0, "remote free of %p (header) was handed over", q);
}

int main(void) {
  setenv("ZCMEM_ABORT_ON_ERROR", "0", 1);
  setenv("ZCMEM_BACKGROUND", "0", 1);
  size_t covered = 0;
  for (size_t c = 0; c < NSIZES; c++) {
    size_t size = sizes[c];
    taken[c] = malloc(sizeof(void *) * MAXB);
    REQUIRE(taken[c] != NULL);
    unsigned char *p0 = NULL;
    for (size_t i = 0; i < MAXB && p0 == NULL; i++) {
      unsigned char *p = zc_malloc(size);
      REQUIRE(p != NULL);
      memset(p, (int)(c * 17 + 1), size);
      taken[c][ntaken[c]++] = p;
      if (((uintptr_t)p & (SEG - 1)) < PAGE) p0 = p;
    }
    if (p0 == NULL) continue;
    uintptr_t start = ((uintptr_t)p0 & ~(SEG - 1)) + HEADER;
    CHECKF(((uintptr_t)p0 - start) % size == 0, "a %zu B block %p is not on a grid from the header's end", size,
           (void *)p0);
    covered++;
    size_t kmax = HEADER / size;
    size_t ks[] = {1, 2, 3, kmax};
    for (size_t j = 0; j < 4; j++)
      if (ks[j] >= 1 && ks[j] <= kmax) bad_frees((void *)(start - ks[j] * size), size);
  }
  printf("size classes whose page 0 was reached: %zu of %d\n", covered, (int)NSIZES);
  CHECK(covered >= NSIZES / 2); /* else the test tested little */

  uint64_t e0 = errors();
  for (size_t c = 0; c < NSIZES; c++) {
    for (size_t i = 0; i < ntaken[c]; i++) {
      unsigned char *p = taken[c][i];
      for (size_t k = 0; k < sizes[c]; k++)
        if (p[k] != (unsigned char)(c * 17 + 1)) {
          CHECKF(0, "a live %zu B block changed at byte %zu", sizes[c], k);
          break;
        }
      zc_free(p);
    }
    /* taken again: the bad frees put no header address on a list */
    for (size_t i = 0; i < ntaken[c]; i++) {
      unsigned char *p = zc_malloc(sizes[c]);
      REQUIRE(p != NULL);
      CHECKF(((uintptr_t)p & (SEG - 1)) >= HEADER, "malloc(%zu) handed out %p, inside a segment header",
             sizes[c], (void *)p);
      taken[c][i] = p;
    }
    for (size_t i = 0; i < ntaken[c]; i++) zc_free(taken[c][i]);
    free(taken[c]);
  }
  CHECK(errors() == e0);
  CHECK_DONE("core_header_grid");
}
