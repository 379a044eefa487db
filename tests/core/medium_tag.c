/* Frees of medium blocks (10 KiB..64 KiB classes, 128 KiB pages) now that medium segments carry their
 * owner's tag in the segment map (segmap.h: tag + ZC_MAP_MEDIUM_BIAS; free.c: free_medium_tagged): the
 * owner's free takes a constant-shift path with the same checks as a small block's, another thread's free
 * the generic remote path. For each medium size below, blocks are taken until one lands on page 0 of a
 * medium segment (its blocks start right after the 16 KiB header), then, from the owner and from another
 * thread: a pointer into the header (on page 0's grid where the header holds one, else 64 bytes below the
 * first block), an interior pointer and a freed block's second free are each reported exactly once and
 * hand nothing over; a correct free by another thread is handed over (the remote count grows) and its block
 * comes back to the owner. At the end every block taken kept its pattern and none of the blocks taken again
 * lies in a header. Runs with ZCMEM_ABORT_ON_ERROR=0. Prefixed API (zc_malloc/zc_free).
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"

#include <pthread.h>
#include <stdlib.h>

#define SEG ((uintptr_t)4 << 20)
#define HEADER ((uintptr_t)16 << 10)
#define MPAGE ((uintptr_t)128 << 10)

static const size_t sizes[] = {12288, 16384, 20480, 40960, 65536};
enum { NSIZES = sizeof sizes / sizeof sizes[0], MAXB = 4000 };

static void *remote_free(void *p) {
  zc_free(p);
  zc_thread_done();
  return NULL;
}
static void free_from_other_thread(void *p) {
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, remote_free, p) == 0);
  REQUIRE(pthread_join(t, NULL) == 0);
}

static zc_stats_t stats(void) {
  zc_stats_t s;
  zc_stats_get(&s);
  return s;
}

/* q is not a live block: the owner's free and another thread's are each reported once, none handed over. */
static void bad_both(void *q, const char *what, size_t size) {
  zc_stats_t a = stats();
  zc_free(q);
  zc_stats_t b = stats();
  CHECKF(b.errors - a.errors == 1, "owner's free of %p (%s, %zu B): %llu reports, want 1", q, what, size,
         (unsigned long long)(b.errors - a.errors));
  free_from_other_thread(q);
  zc_stats_t c = stats();
  CHECKF(c.errors - b.errors == 1, "remote free of %p (%s, %zu B): %llu reports, want 1", q, what, size,
         (unsigned long long)(c.errors - b.errors));
  CHECKF(c.remote_frees == a.remote_frees, "free of %p (%s, %zu B) was handed over", q, what, size);
}

int main(void) {
  setenv("ZCMEM_ABORT_ON_ERROR", "0", 1);
  setenv("ZCMEM_BACKGROUND", "0", 1);
  static void *taken[NSIZES][MAXB];
  size_t ntaken[NSIZES] = {0}, covered = 0;
  for (size_t c = 0; c < NSIZES; c++) {
    size_t size = sizes[c];
    unsigned char *p0 = NULL;
    for (size_t i = 0; i < MAXB && p0 == NULL; i++) {
      unsigned char *p = zc_malloc(size);
      REQUIRE(p != NULL);
      memset(p, (int)(c * 29 + 3), size);
      taken[c][ntaken[c]++] = p;
      if (((uintptr_t)p & (SEG - 1)) < MPAGE) p0 = p;
    }
    if (p0 == NULL) continue;
    covered++;
    uintptr_t start = ((uintptr_t)p0 & ~(SEG - 1)) + HEADER;
    CHECKF((uintptr_t)p0 >= start && ((uintptr_t)p0 - start) % size == 0,
           "a %zu B block %p is not on a grid from the header's end", size, (void *)p0);
    bad_both((void *)(size <= HEADER ? start - size : start - 64), "segment header", size);
    bad_both(p0 + 16, "interior", size);

    /* a correct free by another thread is handed over; a second free of it, from either, is reported */
    unsigned char *v = zc_malloc(size);
    REQUIRE(v != NULL);
    zc_stats_t a = stats();
    free_from_other_thread(v);
    zc_stats_t b = stats();
    CHECKF(b.errors == a.errors && b.remote_frees - a.remote_frees == 1,
           "remote free of a live %zu B block: %llu reports, %llu handed over (want 0, 1)", size,
           (unsigned long long)(b.errors - a.errors), (unsigned long long)(b.remote_frees - a.remote_frees));
    bad_both(v, "freed by another thread", size);

    /* the owner's free, then a second one from each */
    unsigned char *w = zc_malloc(size);
    REQUIRE(w != NULL);
    a = stats();
    zc_free(w);
    CHECKF(stats().errors == a.errors, "owner's free of a live %zu B block was reported", size);
    bad_both(w, "freed by its owner", size);
  }
  printf("medium sizes whose page 0 was reached: %zu of %d\n", covered, (int)NSIZES);
  CHECK(covered == NSIZES);

  uint64_t e0 = stats().errors;
  for (size_t c = 0; c < NSIZES; c++) {
    for (size_t i = 0; i < ntaken[c]; i++) {
      unsigned char *p = taken[c][i];
      for (size_t k = 0; k < sizes[c]; k++)
        if (p[k] != (unsigned char)(c * 29 + 3)) {
          CHECKF(0, "a live %zu B block changed at byte %zu", sizes[c], k);
          break;
        }
      zc_free(p);
    }
    for (size_t i = 0; i < ntaken[c]; i++) { /* taken again: no header address was put on a list */
      unsigned char *p = zc_malloc(sizes[c]);
      REQUIRE(p != NULL);
      CHECKF(((uintptr_t)p & (SEG - 1)) >= HEADER, "malloc(%zu) handed out %p, inside a segment header",
             sizes[c], (void *)p);
      taken[c][i] = p;
    }
    for (size_t i = 0; i < ntaken[c]; i++) zc_free(taken[c][i]);
  }
  CHECK(stats().errors == e0);
  CHECK_DONE("core_medium_tag");
}
