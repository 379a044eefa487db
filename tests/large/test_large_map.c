/* New mappings of large regions (src/os_linux.c, map_aligned, through src/large.c): what a miss costs in
 * system calls, and that the address hint behind it never maps over anything.
 *
 *   large_map miss_calls  32 misses in a row (every region kept live, nothing cached) make at most 32 + 8
 *                         mapping calls (zc_os_map_calls): one mmap each at the hinted aligned address, plus
 *                         the first one's and a few taken hints' trimmed mappings. Without the hint a 4 MiB-
 *                         aligned mapping took an mmap of size + 4 MiB and two munmaps to trim it (five calls
 *                         when a first exact try came back unaligned).
 *   large_map hint_taken  a page of the test's own mapped where the next hint points (just below the lowest
 *                         region) is left as it is: the region is mapped elsewhere, aligned and usable, and the
 *                         page keeps its bytes; the regions mapped after it are hinted again.
 * Usage: test_large_map <case>. ZCMEM_BACKGROUND=0 (set by CMake).
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"
#include "large.h"
#include "os.h"
#include "segmap.h"

#include <sys/mman.h>

#include "large_test.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define NREG 32

static int case_miss_calls(int argc, char **argv) {
  unsigned char *p[NREG];
  p[0] = zc_large_alloc(1 * MiB, 16, false); /* the first may start a run of hints: not counted */
  REQUIRE(p[0] != NULL);
  uint64_t calls0 = zc_os_map_calls();
  zc_large_stats_t s0 = stats();
  for (int i = 1; i < NREG; i++) {
    size_t size = 1 * MiB + (size_t)i * 64 * KiB;
    p[i] = zc_large_alloc(size, 16, false);
    REQUIRE(p[i] != NULL);
    CHECK(((uintptr_t)hdr_of(p[i]) & ZC_SEGMENT_MASK) == 0);
    memset(p[i], i, size);
  }
  uint64_t calls = zc_os_map_calls() - calls0;
  zc_large_stats_t s1 = stats();
  printf("miss_calls: %d misses made %lu mapping calls\n", NREG - 1, (unsigned long)calls);
  REQUIRE(s1.cache_misses - s0.cache_misses == NREG - 1); /* the premise: every one a new mapping */
  CHECKF(calls <= NREG - 1 + 8, "%lu mapping calls for %d misses", (unsigned long)calls, NREG - 1);
  for (int i = 1; i < NREG; i++) {
    size_t size = 1 * MiB + (size_t)i * 64 * KiB;
    CHECK(p[i][0] == (unsigned char)i && p[i][size - 1] == (unsigned char)i);
  }
  for (int i = 0; i < NREG; i++) zc_large_free(p[i], hdr_of(p[i]));
  CHECK_DONE(argv[0]);
}

static int case_hint_taken(int argc, char **argv) {
  unsigned char *p[8];
  p[0] = zc_large_alloc(1 * MiB, 16, false);
  REQUIRE(p[0] != NULL);
  p[1] = zc_large_alloc(1 * MiB, 16, false); /* hinted below the first */
  REQUIRE(p[1] != NULL);
  uintptr_t low = (uintptr_t)hdr_of(p[0]) < (uintptr_t)hdr_of(p[1]) ? (uintptr_t)hdr_of(p[0]) : (uintptr_t)hdr_of(p[1]);
  /* the next hint for a region under 4 MiB is the 4 MiB just below the lowest: a page of ours there */
  char *mine = mmap((void *)(low - ZC_SEGMENT_SIZE), 4096, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  REQUIREF(mine == (char *)(low - ZC_SEGMENT_SIZE), "could not map the test page below the regions (%p)", (void *)mine);
  memset(mine, 0x5a, 4096);
  for (int i = 2; i < 8; i++) {
    p[i] = zc_large_alloc(1 * MiB, 16, false);
    REQUIRE(p[i] != NULL);
    char *h = hdr_of(p[i]);
    CHECK(h != NULL && ((uintptr_t)h & ZC_SEGMENT_MASK) == 0);
    CHECKF(h + 2 * MiB <= mine || h >= mine + 4096, "region %p overlaps the test's page %p", (void *)h, (void *)mine);
    memset(p[i], i, 1 * MiB);
  }
  size_t bad = 0;
  for (size_t i = 0; i < 4096; i++) bad += mine[i] != 0x5a;
  CHECKF(bad == 0, "%zu bytes of the test's page changed: a hinted mapping replaced it", bad);
  for (int i = 2; i < 8; i++) CHECK(p[i][0] == (unsigned char)i && p[i][1 * MiB - 1] == (unsigned char)i);
  for (int i = 0; i < 8; i++) zc_large_free(p[i], hdr_of(p[i]));
  munmap(mine, 4096);
  CHECK_DONE(argv[0]);
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"miss_calls", case_miss_calls}, {"hint_taken", case_hint_taken}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
