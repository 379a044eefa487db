/* A medium page (512 KiB) that leaves use keeps resident no more than its last use carved plus a slack of
 * 256 KiB (src/segment.c, trim_tail; docs/design.md, "Giving memory back").
 *
 *   core_medium_trim tail  (purger on, long delay, large budget: nothing else purges) a thread fills a medium
 *                          page with 16 KiB blocks, writes them and frees them: the page is empty and all of
 *                          it resident (dirty). It then allocates one 24 KiB block, which reuses that page
 *                          (the newest resident page), frees it and exits, which releases the page. (a) The
 *                          page's area from 64 KiB on is no longer resident (mincore); its first 24 KiB may
 *                          be. A build without the trim keeps the whole page resident until the purge delay.
 * Links zcmem_prefixed: runs in every build, the sanitizers included.
 */
#define _GNU_SOURCE
#include "zc_rss.h"
#include "zc_test.h"
#include "zcmem.h"

#include <pthread.h>

#define SEG_SIZE ((uintptr_t)4 << 20)
#define MEDIUM_PAGE ((uintptr_t)512 << 10)
#define NFILL 40 /* 16 KiB blocks: more than one medium page holds (32), so the first page is not current */

static uintptr_t page_lo, page_hi; /* the first page's area */
static int reused;

static uintptr_t page_of(const void *p) { return (uintptr_t)p & ~(MEDIUM_PAGE - 1); }

static void *worker(void *arg) {
  (void)arg;
  static void *ps[NFILL];
  for (int i = 0; i < NFILL; i++) {
    ps[i] = zc_malloc(16 << 10);
    REQUIRE(ps[i] != NULL);
    memset(ps[i], 0x3C, 16 << 10);
  }
  uintptr_t first = page_of(ps[0]);
  REQUIRE(page_of(ps[NFILL - 1]) != first);
  page_lo = UINTPTR_MAX;
  page_hi = 0;
  for (int i = 0; i < NFILL; i++) {
    if (page_of(ps[i]) != first) continue;
    if ((uintptr_t)ps[i] < page_lo) page_lo = (uintptr_t)ps[i];
    if ((uintptr_t)ps[i] + (16 << 10) > page_hi) page_hi = (uintptr_t)ps[i] + (16 << 10);
    zc_free(ps[i]);
  }
  void *one = zc_malloc(24 << 10);
  REQUIRE(one != NULL);
  memset(one, 0xC3, 24 << 10);
  reused = page_of(one) == first && (uintptr_t)one == page_lo;
  zc_free(one);
  for (int i = 0; i < NFILL; i++)
    if (page_of(ps[i]) != first) zc_free(ps[i]);
  return NULL;
}

static int case_tail(int argc, char **argv) {
  (void)argc;
  CHECKF(zc_option_get(zc_option_background) == 1, "run with ZCMEM_BACKGROUND=1");
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, worker, NULL) == 0);
  REQUIRE(pthread_join(t, NULL) == 0);
  CHECKF(reused, "the 24 KiB block did not reuse the emptied medium page (the test's premise)");
  size_t head = resident_bytes((void *)page_lo, 24 << 10);
  size_t tail = resident_bytes((void *)(page_lo + (64 << 10)), page_hi - page_lo - (64 << 10));
  printf("tail: page [%#lx, %#lx): %zu bytes resident in its first 24 KiB, %zu from 64 KiB on\n",
         (unsigned long)page_lo, (unsigned long)page_hi, head, tail);
  CHECKF(tail == 0, "(a) %zu bytes of the page's stale tail still resident after its release", tail);
  CHECK_DONE(argv[0]);
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"tail", case_tail}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
