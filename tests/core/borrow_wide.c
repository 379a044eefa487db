/* Borrowing reaches 8 classes up by default, and classes from 2.5 KiB borrow too, not the 2 KiB one and below
 * (src/borrow.c, ZC_BORROW_MIN_CLASS in src/sizeclass.h; docs/design.md, "Page queues and reuse").
 *
 *   core_borrow_wide small  one thread: 6 blocks of the 4 KiB class, 2 of them freed. (a) A 3000-byte malloc
 *                           (the 3 KiB class, no page yet) returns a free block of the 4 KiB page (usable
 *                           size 4096) instead of carving a page of its own. (e) A 2000-byte malloc (the
 *                           2 KiB class, below ZC_BORROW_MIN_CLASS) then carves a 2 KiB block of its own.
 *   core_borrow_wide reach  default options, one thread: blocks of the 40 KiB class until the current page
 *                           holds 3, 2 of them freed. (b) A 20000-byte malloc (the 20 KiB class, 4 classes
 *                           down, no page yet) returns one of the freed 40 KiB blocks.
 *   core_borrow_wide fifo   default options, no purge, no purger: one thread keeps a FIFO of live blocks of
 *                           random sizes (log-uniform, fixed seed) for 20000 replacements, the shape of the
 *                           messages in flight of bench/prodcons (16 blocks of 10-64 KiB) and of xmalloc's
 *                           rarer sizes (64 blocks of 1-16 KiB). The memory they took: every 4 KiB page
 *                           the program writes (the requested bytes of every block handed out), counted
 *                           once. (c) 10-64 KiB: at most 1536 KiB (1484 measured; 1584 with the reach of 2
 *                           classes of before, 1784 with no borrowing). (d) 1-16 KiB, after (c) in the
 *                           same process: at most 840 KiB (804 measured; 932 when only classes from 10 KiB
 *                           borrow, as before; 928 with a reach of 2).
 * Links zcmem_prefixed: runs in every build, the sanitizers included.
 */
#define _GNU_SOURCE
#include "zc_pageset.h"
#include "zc_test.h"
#include "zcmem.h"

#include <math.h>
#include <stdlib.h>

#define PAGE_OF(p) ((uintptr_t)(p) >> 17) /* medium pages are 128 KiB, aligned in their segment */

static int case_small(int argc, char **argv) {
  (void)argc;
  char *b[6];
  for (int i = 0; i < 6; i++) {
    b[i] = zc_malloc(4000);
    REQUIRE(b[i] != NULL);
    CHECKF(zc_usable_size(b[i]) == 4096, "4000 B come from the 4 KiB class (%zu)", zc_usable_size(b[i]));
  }
  zc_free(b[2]);
  zc_free(b[3]);
  char *p = zc_malloc(3000);
  REQUIRE(p != NULL);
  printf("small: 3000 B -> %p (usable %zu); 4 KiB blocks %p..%p\n", (void *)p, zc_usable_size(p), (void *)b[0],
         (void *)b[5]);
  CHECKF(zc_usable_size(p) == 4096 && ((uintptr_t)p >> 16) == ((uintptr_t)b[0] >> 16),
         "(a) 3000 B did not take a free block of the 4 KiB page (usable %zu)", zc_usable_size(p));
  /* (e) below the first borrowing class (2.5 KiB): a 2000-byte malloc (the 2 KiB class, no page yet) carves
   * its own block although a 4 KiB block, 4 classes up, is still free */
  char *q = zc_malloc(2000);
  REQUIRE(q != NULL);
  CHECKF(zc_usable_size(q) == 2048, "(e) 2000 B borrowed a block of a larger class (usable %zu)", zc_usable_size(q));
  zc_free(q);
  zc_free(p);
  for (int i = 0; i < 6; i++)
    if (i != 2 && i != 3) zc_free(b[i]);
  CHECK_DONE(argv[0]);
}

static int case_reach(int argc, char **argv) {
  (void)argc;
  char *big[8];
  int n = 0, in_last = 0;
  while (in_last < 3) { /* until the current page (the last block's) holds 3 of them */
    REQUIRE(n < 8);
    big[n] = zc_malloc(40000);
    REQUIRE(big[n] != NULL);
    n++;
    in_last = 0;
    for (int i = 0; i < n; i++) in_last += PAGE_OF(big[i]) == PAGE_OF(big[n - 1]);
  }
  char *f1 = big[n - 3], *f2 = big[n - 2];
  zc_free(f1);
  zc_free(f2);
  big[n - 3] = big[n - 2] = NULL;
  char *q = zc_malloc(20000);
  REQUIRE(q != NULL);
  printf("reach: ZCMEM_BORROW=%ld, 20000 B -> %p (usable %zu); freed 40 KiB blocks %p %p\n",
         zc_option_get(zc_option_borrow), (void *)q, zc_usable_size(q), (void *)f1, (void *)f2);
  CHECKF(q == f1 || q == f2, "(b) 20000 B did not take a freed 40 KiB block 4 classes up (usable %zu)",
         zc_usable_size(q));
  zc_free(q);
  for (int i = 0; i < n; i++) zc_free(big[i]);
  CHECK_DONE(argv[0]);
}

#define STEPS 20000
static zc_pageset_t touched;

/* KiB of distinct memory handed out to a FIFO of live blocks of lo..hi bytes over STEPS replacements. */
static size_t fifo_kib(int live, double lo, double hi, uint64_t seed) {
  rng_t rng;
  rng_seed(&rng, seed);
  char *ring[64] = {0};
  REQUIRE(live <= 64);
  zc_pageset_clear(&touched);
  for (int k = 0; k < STEPS; k++) {
    char **slot = &ring[k % live];
    zc_free(*slot);
    double u = (double)rng_range(&rng, 0, (1u << 20) - 1) / (double)(1u << 20);
    size_t n = (size_t)(lo * exp(u * log(hi / lo)));
    *slot = zc_malloc(n);
    REQUIRE(*slot != NULL);
    zc_pageset_add(&touched, *slot, n);
  }
  for (int i = 0; i < live; i++) zc_free(ring[i]);
  return zc_pageset_bytes(&touched) >> 10;
}

#define MEDIUM_MAX_KIB 1536u
#define LOW_MAX_KIB 840u

static int case_fifo(int argc, char **argv) {
  (void)argc;
  zc_option_set(zc_option_purge_delay, 3600000); /* no purge, no purger: the same pages every run */
  zc_option_set(zc_option_background, 0);
  long borrow = zc_option_get(zc_option_borrow);
  size_t med = fifo_kib(16, 10241.0, 65536.0, 12);
  printf("fifo: ZCMEM_BORROW=%ld, %zu KiB of distinct memory handed out for 16 live blocks of 10-64 KiB\n", borrow,
         med);
  CHECKF(med <= MEDIUM_MAX_KIB, "(c) %zu KiB handed out for 16 live blocks of 10-64 KiB, more than %u", med,
         MEDIUM_MAX_KIB);
  size_t low = fifo_kib(64, 1025.0, 16384.0, 13);
  printf("fifo: ZCMEM_BORROW=%ld, %zu KiB of distinct memory handed out for 64 live blocks of 1-16 KiB\n", borrow,
         low);
  CHECKF(low <= LOW_MAX_KIB, "(d) %zu KiB handed out for 64 live blocks of 1-16 KiB, more than %u", low,
         LOW_MAX_KIB);
  CHECK_DONE(argv[0]);
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {
      {"small", case_small}, {"reach", case_reach}, {"fifo", case_fifo}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
