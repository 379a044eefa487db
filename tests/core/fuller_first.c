/* malloc's slow path takes a block its heap freed before it carves fresh memory (src/alloc.c, page_for_class;
 * docs/design.md, "Page queues and reuse").
 *
 *   core_fuller_first reuse  one thread, blocks of 1 KiB (one class, 64 KiB pages): it allocates 150 blocks
 *                            (pages of that class fill one after another) and then more until the current
 *                            page (the last block's) holds a multiple of 4 blocks: a page is carved 4 KiB (4
 *                            blocks) at a time, so all its carved blocks are in use and its free list is
 *                            empty. It frees 10 blocks of the first page. (a) The next 10 allocations return
 *                            exactly those 10 blocks; a slow path that carves the current page's room first
 *                            returns fresh blocks of the current page instead.
 * Links zcmem_prefixed: runs in every build, the sanitizers included.
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"

#define BLK 1024
#define MAXB 400
#define PAGE_OF(p) ((uintptr_t)(p) >> 16)

static int case_reuse(int argc, char **argv) {
  (void)argc;
  static char *ps[MAXB];
  int n = 0;
  while (n < 150) {
    ps[n] = zc_malloc(BLK);
    REQUIRE(ps[n] != NULL);
    n++;
  }
  for (;;) { /* until the current page's carved blocks are all in use */
    uintptr_t cur = PAGE_OF(ps[n - 1]);
    int in_cur = 0;
    for (int i = 0; i < n; i++) in_cur += PAGE_OF(ps[i]) == cur;
    if (in_cur % 4 == 0) break;
    REQUIRE(n < MAXB);
    ps[n] = zc_malloc(BLK);
    REQUIRE(ps[n] != NULL);
    n++;
  }
  uintptr_t first = PAGE_OF(ps[0]);
  CHECKF(first != PAGE_OF(ps[n - 1]), "the blocks fill one page only (the test's premise)");
  char *freed[10];
  int nf = 0;
  for (int i = 1; i < n && nf < 10; i += 2) {
    if (PAGE_OF(ps[i]) != first) continue;
    freed[nf++] = ps[i];
    zc_free(ps[i]);
    ps[i] = NULL;
  }
  REQUIRE(nf == 10);
  int reused = 0;
  char *again[10];
  for (int k = 0; k < 10; k++) {
    again[k] = zc_malloc(BLK);
    REQUIRE(again[k] != NULL);
    for (int j = 0; j < 10; j++) reused += again[k] == freed[j];
  }
  printf("reuse: %d blocks, 10 freed in the first page: %d of the next 10 allocations reused them\n", n, reused);
  CHECKF(reused == 10, "(a) only %d of the next 10 allocations took the 10 freed blocks", reused);
  for (int k = 0; k < 10; k++) zc_free(again[k]);
  for (int i = 0; i < n; i++) zc_free(ps[i]);
  CHECK_DONE(argv[0]);
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"reuse", case_reuse}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
