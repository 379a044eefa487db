/* A heap that needs a page takes its newest resident (dirty) page of the kind it needs, up to 256 pages back
 * in its dirty list (src/segment.c, newest_dirty; docs/design.md, "Giving memory back", LIFO reuse).
 *
 *   core_dirty_deep small  (purger on, long delay, large budget: nothing is purged but by zc_trim) one
 *                          thread allocates 2 MiB of 1 KiB blocks (A) and then 1 MiB more (B), frees A and
 *                          purges it (zc_trim: A's pages are free and purged, at the lowest page indices of
 *                          the segment), frees B (B's pages are free and resident), then allocates and frees
 *                          40 blocks of 60 KiB, which leaves 19 or more free medium pages newer than B's on
 *                          the dirty list. (a) The next page of a small class (one 2 KiB block) is one of B's
 *                          resident pages. A walk that stops after 8 steps of the list (as before) finds no
 *                          small page among the newest medium ones and takes the segment's first free page,
 *                          one of A's purged pages.
 * Links zcmem_prefixed: runs in every build, the sanitizers included.
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"

#define SMALL 1024
#define NA 2048 /* 2 MiB */
#define NB 1024 /* 1 MiB */
#define MEDIUM (60 * 1024)
#define NM 40

static int case_small(int argc, char **argv) {
  (void)argc;
  static char *a[NA], *b[NB], *m[NM];
  uintptr_t a_lo = UINTPTR_MAX, a_hi = 0, b_lo = UINTPTR_MAX, b_hi = 0;
  for (int i = 0; i < NA; i++) {
    a[i] = zc_malloc(SMALL);
    REQUIRE(a[i] != NULL);
    memset(a[i], 0xA1, SMALL);
    if ((uintptr_t)a[i] < a_lo) a_lo = (uintptr_t)a[i];
    if ((uintptr_t)a[i] + SMALL > a_hi) a_hi = (uintptr_t)a[i] + SMALL;
  }
  for (int i = 0; i < NB; i++) {
    b[i] = zc_malloc(SMALL);
    REQUIRE(b[i] != NULL);
    memset(b[i], 0xB2, SMALL);
    if ((uintptr_t)b[i] < b_lo) b_lo = (uintptr_t)b[i];
    if ((uintptr_t)b[i] + SMALL > b_hi) b_hi = (uintptr_t)b[i] + SMALL;
  }
  CHECKF(a_hi <= b_lo, "A's blocks lie below B's (the test's premise: pages are taken lowest index first)");
  for (int i = 0; i < NA; i++) zc_free(a[i]);
  zc_trim(0); /* A's pages: free and purged */
  for (int i = 0; i < NB; i++) zc_free(b[i]);
  for (int i = 0; i < NM; i++) {
    m[i] = zc_malloc(MEDIUM);
    REQUIRE(m[i] != NULL);
    memset(m[i], 0xC3, MEDIUM);
  }
  for (int i = 0; i < NM; i++) zc_free(m[i]);
  char *p = zc_malloc(2048);
  REQUIRE(p != NULL);
  uintptr_t q = (uintptr_t)p;
  const char *where = q >= b_lo && q < b_hi ? "B (resident)" : q >= a_lo && q < a_hi ? "A (purged)" : "elsewhere";
  printf("small: the first 2 KiB block is at %p, in %s; A [%#lx, %#lx), B [%#lx, %#lx)\n", (void *)p, where,
         (unsigned long)a_lo, (unsigned long)a_hi, (unsigned long)b_lo, (unsigned long)b_hi);
  CHECKF(q >= b_lo && q < b_hi, "(a) a new small page came from %s, not from B's resident pages", where);
  zc_free(p);
  CHECK_DONE(argv[0]);
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"small", case_small}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
