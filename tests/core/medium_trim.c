/* The walk of a heap's medium pages every half purge delay (src/borrow.c, zc_medium_trim; docs/design.md,
 * "Giving memory back", "Medium pages"): the whole OS pages inside a free medium block of a partly used
 * page are purged once the block has been free at two walks.
 *
 *   core_medium_trim_purge   (ZCMEM_PURGE_DELAY=200, ZCMEM_BACKGROUND=0: no purger thread, only the owner's
 *                            walks) the main thread allocates 23 blocks of 16 KiB (three medium pages, each
 *                            block 4 KiB-aligned), writes every byte, and frees all but the first block of
 *                            each page. (a) After 250 ms and one malloc slow path, all the blocks' memory is
 *                            still resident (mincore): a walk purges only a block it saw free at the walk
 *                            before, and at most one walk has run since the frees. (b) With a malloc slow
 *                            path every 10 ms, within 20 s the blocks' range holds at most the live blocks
 *                            and the first 4 KiB of each free block (link, tag and mark stay): 128 KiB of
 *                            the 368 written (all 368 without the walk). (c) The live blocks still hold
 *                            what was written; the freed blocks are handed out again (no corrupted list
 *                            reported), written and read back.
 * Links zcmem_prefixed: runs in every build, the sanitizers included (mincore of a range of zcmem's own
 * mapping; no process RSS).
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"

#define NBLK 23
#define BLK ((size_t)16 << 10)
#define POKE_MAX 4000

static unsigned char *blk[NBLK];
static uintptr_t lo, hi;
static void *pokes[POKE_MAX];
static unsigned npokes;

static void alloc_blocks(void) {
  lo = UINTPTR_MAX;
  hi = 0;
  for (int i = 0; i < NBLK; i++) {
    blk[i] = zc_malloc(BLK);
    REQUIRE(blk[i] != NULL);
    memset(blk[i], 0x40 + i, BLK);
    if ((uintptr_t)blk[i] < lo) lo = (uintptr_t)blk[i];
    if ((uintptr_t)blk[i] + BLK > hi) hi = (uintptr_t)blk[i] + BLK;
  }
  REQUIREF(hi - lo < ((size_t)4 << 20), "the blocks span %zu bytes: not one segment (the test's premise)",
           (size_t)(hi - lo));
}

/* One malloc slow path: a 60 KiB block (class 64 KiB, one block carved per slow path, no larger class to
 * borrow from), kept so that the next one is a slow path too. */
static void poke(void) {
  REQUIRE(npokes < POKE_MAX);
  pokes[npokes] = zc_malloc(60000);
  REQUIRE(pokes[npokes] != NULL);
  npokes++;
}

static void free_pokes(void) {
  while (npokes > 0) zc_free(pokes[--npokes]);
}

static size_t live_count;
static bool live[NBLK];

static bool purged_enough(void) {
  poke();
  size_t res = resident_bytes((void *)lo, hi - lo);
  return res <= live_count * BLK + (NBLK - live_count) * (size_t)4096;
}

static int case_purge(int argc, char **argv) {
  (void)argc;
  CHECKF(zc_option_get(zc_option_purge_delay) == 200 && zc_option_get(zc_option_background) == 0,
         "run with ZCMEM_PURGE_DELAY=200 ZCMEM_BACKGROUND=0");
  if (sysconf(_SC_PAGESIZE) != 4096) { /* the bound counts 4 KiB OS pages inside 4 KiB-aligned blocks */
    printf("purge: skipped, OS page of %ld bytes\n", sysconf(_SC_PAGESIZE));
    CHECK_DONE(argv[0]);
  }
  alloc_blocks();
  uintptr_t seen_page = 0;
  for (int i = 0; i < NBLK; i++) { /* blocks come in address order: the first of each 128 KiB page stays */
    uintptr_t page = (uintptr_t)blk[i] >> 17;
    live[i] = page != seen_page;
    seen_page = page;
    live_count += live[i];
  }
  REQUIREF(live_count >= 3, "%zu pages: the blocks were not laid out in three pages", live_count);
  size_t before = resident_bytes((void *)lo, hi - lo);
  for (int i = 0; i < NBLK; i++)
    if (!live[i]) zc_free(blk[i]);
  sleep_ms(250);
  poke();
  size_t after_one = resident_bytes((void *)lo, hi - lo);
  printf("purge: %zu KiB resident written, %zu KiB after one walk\n", before >> 10, after_one >> 10);
  CHECKF(after_one >= before, "(a) %zu KiB of %zu resident after one walk: a block was purged at first sight",
         after_one >> 10, before >> 10);
  bool ok = WAIT_UNTIL(purged_enough(), 20000);
  size_t res = resident_bytes((void *)lo, hi - lo);
  printf("purge: %zu KiB resident with %zu blocks of 16 KiB live (%u slow paths)\n", res >> 10, live_count,
         npokes);
  CHECKF(ok, "(b) %zu KiB resident: more than the %zu live blocks and 4 KiB per free block", res >> 10,
         live_count);
  size_t bad = 0;
  for (int i = 0; i < NBLK; i++) {
    if (!live[i]) continue;
    for (size_t k = 0; k < BLK; k++) bad += blk[i][k] != (unsigned char)(0x40 + i);
  }
  CHECKF(bad == 0, "(c) %zu bytes of the live blocks changed", bad);
  for (int i = 0; i < NBLK; i++) { /* the freed blocks again: handed out, written, read back */
    if (live[i]) continue;
    blk[i] = zc_malloc(BLK);
    REQUIRE(blk[i] != NULL);
    memset(blk[i], 0x11, BLK);
  }
  for (int i = 0; i < NBLK; i++) {
    if (live[i]) continue;
    for (size_t k = 0; k < BLK; k++) bad += blk[i][k] != 0x11;
  }
  CHECKF(bad == 0, "(c) %zu bytes of the blocks handed out again differ from what was written", bad);
  for (int i = 0; i < NBLK; i++) zc_free(blk[i]);
  free_pokes();
  CHECK_DONE(argv[0]);
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"purge", case_purge}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
