/* A medium malloc whose class has no free block takes an already carved free block of one of the next
 * ZCMEM_BORROW classes up before it carves fresh memory (src/borrow.c; docs/design.md, "Page queues and
 * reuse").
 *
 *   core_borrow reuse    ZCMEM_BORROW=2, one thread: blocks of the 40 KiB class until the current page holds 3, 2 of
 *                        those freed (the page stays in use, with 2 free blocks). (a) A 30000-byte malloc
 *                        (the 32 KiB class, 2 classes down, no page yet) returns one of the 2 freed blocks
 *                        (usable size 40960). (b) A 20000-byte malloc (the 20 KiB class, 4 classes down)
 *                        does not borrow: usable size 20480. (c) With ZCMEM_BORROW=0 (zc_option_set) a
 *                        30000-byte malloc takes a fresh 32 KiB block although a 40 KiB block is free.
 *   core_borrow aligned  one thread: blocks of the 14 KiB class (2 KiB-aligned) until the current page
 *                        holds 3, 2 of them freed. (e) aligned_alloc(4096, 12000) (the 12 KiB class, whose
 *                        blocks are 4 KiB-aligned) returns a 4 KiB-aligned block: it does not borrow them.
 *   core_borrow fifo     one thread keeps a FIFO of 16 live blocks of random medium sizes (10-64 KiB,
 *                        log-uniform, fixed seed) for 20000 replacements, the shape of bench/prodcons'
 *                        medium messages in flight. The memory they took: every 4 KiB page covered by a
 *                        block ever handed out (its usable size), counted once. (d) It stays under
 *                        1.65 MiB (1.45 MiB measured with the default reach of 8, 1.55 with 2); per-class
 *                        carving alone (ZCMEM_BORROW=0) carves each class for its own peak: 1.74 MiB. No purge and no purger (zc_option_set),
 *                        so the pages taken are the same every run.
 * Links zcmem_prefixed: runs in every build, the sanitizers included.
 */
#define _GNU_SOURCE
#include "zc_pageset.h"
#include "zc_test.h"
#include "zcmem.h"

#include <math.h>
#include <stdlib.h>

#define PAGE_OF(p) ((uintptr_t)(p) >> 17) /* medium pages are 128 KiB, aligned in their segment */

static int case_reuse(int argc, char **argv) {
  (void)argc;
  zc_option_set(zc_option_borrow, 2); /* (b) checks the reach: 4 classes down is beyond 2 */
  char *big[8];
  int n = 0, in_last = 0;
  while (in_last < 3) { /* until the current page (the last block's) holds 3 of them */
    REQUIRE(n < 8);
    big[n] = zc_malloc(40000);
    REQUIRE(big[n] != NULL);
    CHECKF(zc_usable_size(big[n]) == 40960, "40000 B come from the 40 KiB class (%zu)", zc_usable_size(big[n]));
    n++;
    in_last = 0;
    for (int i = 0; i < n; i++) in_last += PAGE_OF(big[i]) == PAGE_OF(big[n - 1]);
  }
  char *f1 = big[n - 3], *f2 = big[n - 2]; /* two blocks of the current page, freed: its free blocks */
  REQUIRE(PAGE_OF(f1) == PAGE_OF(big[n - 1]) && PAGE_OF(f2) == PAGE_OF(big[n - 1]));
  zc_free(f1);
  zc_free(f2);
  big[n - 3] = big[n - 2] = NULL;
  char *p = zc_malloc(30000);
  REQUIRE(p != NULL);
  printf("reuse: 30000 B -> %p (usable %zu); freed 40 KiB blocks %p %p\n", (void *)p, zc_usable_size(p), (void *)f1,
         (void *)f2);
  CHECKF(p == f1 || p == f2, "(a) 30000 B did not take a freed 40 KiB block (usable %zu)", zc_usable_size(p));
  char *q = zc_malloc(20000); /* the other freed 40 KiB block is free in the same page */
  REQUIRE(q != NULL);
  CHECKF(zc_usable_size(q) == 20480, "(b) 20000 B borrowed 4 classes up (usable %zu)", zc_usable_size(q));
  zc_option_set(zc_option_borrow, 0);
  char *r = zc_malloc(30000);
  REQUIRE(r != NULL);
  CHECKF(zc_usable_size(r) == 32768, "(c) ZCMEM_BORROW=0 still borrowed (usable %zu)", zc_usable_size(r));
  zc_free(r);
  zc_free(q);
  zc_free(p);
  for (int i = 0; i < n; i++) zc_free(big[i]);
  CHECK_DONE(argv[0]);
}

/* Blocks of size sz until the current page holds 3 of them; the 2 before the last are freed. */
static int fill_and_free_two(char **blk, int max, size_t sz, char **f1, char **f2) {
  int n = 0, in_last = 0;
  while (in_last < 3) {
    REQUIRE(n < max);
    blk[n] = zc_malloc(sz);
    REQUIRE(blk[n] != NULL);
    n++;
    in_last = 0;
    for (int i = 0; i < n; i++) in_last += PAGE_OF(blk[i]) == PAGE_OF(blk[n - 1]);
  }
  *f1 = blk[n - 3];
  *f2 = blk[n - 2];
  zc_free(*f1);
  zc_free(*f2);
  blk[n - 3] = blk[n - 2] = NULL;
  return n;
}

static int case_aligned(int argc, char **argv) {
  (void)argc;
  char *blk[16], *f1, *f2;
  int n = fill_and_free_two(blk, 16, 14000, &f1, &f2); /* the 14 KiB class: 2 KiB-aligned blocks */
  char *p = zc_aligned_alloc(4096, 12000);             /* the 12 KiB class, 4 KiB-aligned, 1 class down */
  REQUIRE(p != NULL);
  printf("aligned: aligned_alloc(4096, 12000) -> %p (usable %zu)\n", (void *)p, zc_usable_size(p));
  CHECKF(((uintptr_t)p & 4095) == 0, "(e) aligned_alloc(4096) got %p, a borrowed block of the 14 KiB class",
         (void *)p);
  zc_free(p);
  for (int i = 0; i < n; i++) zc_free(blk[i]);
  CHECK_DONE(argv[0]);
}

#define LIVE 16
#define STEPS 20000
static zc_pageset_t touched;

static int case_fifo(int argc, char **argv) {
  (void)argc;
  long borrow = zc_option_get(zc_option_borrow);
  zc_option_set(zc_option_purge_delay, 3600000); /* no purge, no purger: the same pages every run */
  zc_option_set(zc_option_background, 0);
  rng_t rng;
  rng_seed(&rng, 12);
  char *ring[LIVE] = {0};
  for (int k = 0; k < STEPS; k++) {
    char **slot = &ring[k % LIVE];
    zc_free(*slot);
    double u = (double)rng_range(&rng, 0, (1u << 20) - 1) / (double)(1u << 20);
    size_t n = (size_t)(10241.0 * exp(u * log(65536.0 / 10241.0)));
    *slot = zc_malloc(n);
    REQUIRE(*slot != NULL);
    zc_pageset_add(&touched, *slot, zc_usable_size(*slot));
  }
  for (int i = 0; i < LIVE; i++) zc_free(ring[i]);
  size_t bytes = zc_pageset_bytes(&touched);
  printf("fifo: ZCMEM_BORROW=%ld, %.2f MiB of distinct memory handed out for %d live medium blocks\n", borrow,
         (double)bytes / 1048576.0, LIVE);
  CHECKF(bytes <= (size_t)1690 << 10, "(d) %.2f MiB handed out, more than 1.65 MiB", (double)bytes / 1048576.0);
  CHECK_DONE(argv[0]);
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {
      {"reuse", case_reuse}, {"fifo", case_fifo}, {"aligned", case_aligned}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
