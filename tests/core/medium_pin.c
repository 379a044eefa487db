/* A medium page is 128 KiB (src/types.h, ZC_MEDIUM_PAGE_SHIFT; docs/design.md, "Segments"): one live block
 * of a medium class pins at most that much of resident memory once the rest of its page's blocks are freed
 * and the empty pages purged.
 *
 *   core_medium_pin one  (ZCMEM_PURGE_DELAY=0: an empty page is purged as it empties; MADV_DONTNEED) the
 *                        main thread allocates 40 blocks of 16 KiB (640 KiB, more than four pages of
 *                        128 KiB and more than one of the former 512 KiB), writes every byte, frees all but
 *                        the first and collects its heap (zc_collect(true): the class's current page is let
 *                        go too). (a) The blocks' address range holds at most 128 KiB resident (mincore):
 *                        the one page still in use. With 512 KiB pages the first page keeps its 31 freed
 *                        blocks resident: 496 KiB.
 *                        (b) The one live block still holds what was written into it.
 * Links zcmem_prefixed: runs in every build, the sanitizers included.
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"

#define NBLK 40
#define BLK ((size_t)16 << 10)
#define MEDIUM_PAGE ((size_t)128 << 10)

static int case_one(int argc, char **argv) {
  (void)argc;
  CHECKF(zc_option_get(zc_option_purge_delay) == 0, "run with ZCMEM_PURGE_DELAY=0");
  static unsigned char *ps[NBLK];
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (int i = 0; i < NBLK; i++) {
    ps[i] = zc_malloc(BLK);
    REQUIRE(ps[i] != NULL);
    memset(ps[i], 0x5A ^ i, BLK);
    if ((uintptr_t)ps[i] < lo) lo = (uintptr_t)ps[i];
    if ((uintptr_t)ps[i] + BLK > hi) hi = (uintptr_t)ps[i] + BLK;
  }
  CHECKF(hi - lo < ((size_t)4 << 20), "the blocks span %zu bytes: not one segment (the test's premise)",
         (size_t)(hi - lo));
  for (int i = 1; i < NBLK; i++) zc_free(ps[i]);
  zc_collect(true);
  size_t res = resident_bytes((void *)lo, hi - lo);
  printf("one: blocks [%#lx, %#lx): %zu KiB resident with one 16 KiB block live\n", (unsigned long)lo,
         (unsigned long)hi, res >> 10);
  CHECKF(res <= MEDIUM_PAGE, "(a) %zu KiB resident for one live 16 KiB block: more than one 128 KiB page",
         res >> 10);
  size_t bad = 0;
  for (size_t k = 0; k < BLK; k++) bad += ps[0][k] != 0x5A;
  CHECKF(bad == 0, "(b) %zu bytes of the live block changed", bad);
  zc_free(ps[0]);
  CHECK_DONE(argv[0]);
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"one", case_one}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
