/* rss: does freed memory go back to the operating system, and how fast?
 *
 * Allocates about `total` bytes (1 GiB) in small and medium blocks and writes them all; frees a random
 * 90% of the blocks; reports resident memory at once and after `delay` ms; frees the rest and reports
 * again at once and after the delay. No malloc_trim: what is measured is what the allocator does by
 * itself. Sizes: 97% of blocks log-uniform 16-256 B, 3% log-uniform 1-16 KiB (about a third of the
 * bytes in small blocks, two thirds in medium ones).
 *
 * Resident memory is read from /proc/self/statm and reported minus the resident memory before the first
 * allocation (the benchmark's own bookkeeping, mapped directly and touched before that point), so each
 * figure is what the allocator holds. Live data is reported too, to compare against.
 *
 * Invariant checked: every block is intact when freed.
 *
 * Parameters: total=1G medium=3 (percent of blocks) delay=1000 (ms) seed=1
 * Metrics (MiB, lower is better): rss_free_1s (all freed, after the delay: primary), rss_full,
 *   rss_90 (90% freed, at once), rss_90_1s, rss_free; live_full, live_90 (live data); per block (its malloc
 *   and its free, the sleeps included): faults_per_op, cpu_us_per_op (see common.h). */
#define _GNU_SOURCE
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

typedef struct { void *p; uint32_t size; } blk_t;

static double mib(size_t bytes) { return (double)bytes / 1048576.0; }
/* Resident memory above the baseline. It can dip below when the allocator returns pages it held before
 * the first allocation: clamp at zero. */
static size_t above(size_t rss, size_t base) { return rss > base ? rss - base : 0; }

int main(int argc, char **argv) {
  zb_init(argc, argv, "rss");
  uint64_t total = zb_param("total", (uint64_t)1 << 30, (uint64_t)256 << 20);
  uint64_t medium = zb_param("medium", 3, 3);
  uint64_t delay = zb_param("delay", 1000, 1000);
  uint64_t seed = zb_param("seed", 1, 1);
  zb_params_done();
  if (medium > 100) zb_die("medium is a percentage");

  /* At most one block per 16 bytes: size the bookkeeping for that, outside the allocator. */
  size_t cap = (size_t)(total / 16 + 1);
  blk_t *b = mmap(NULL, cap * sizeof(blk_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (b == MAP_FAILED) zb_die("cannot map the bookkeeping array");
  zb_rng r = zb_rng_seed(seed);
  /* Touch the array up to the expected block count (mean block size is about 250 B), so the baseline
   * holds it; pages touched later are the allocator's share of the error, not the benchmark's. */
  memset(b, 0, (total / 200 < cap ? total / 200 : cap) * sizeof(blk_t));
  size_t base = zb_rss_bytes();
  zb_phase_begin();

  size_t n = 0, live = 0;
  while (live < total && n < cap) {
    size_t s = zb_below(&r, 100) < medium ? zb_size_loguniform(&r, 1024, 16385)
                                          : zb_size_loguniform(&r, 16, 257);
    b[n].p = zb_xmalloc(s);
    b[n].size = (uint32_t)s;
    zb_fill(b[n].p, s, n);
    live += s;
    n++;
  }
  size_t rss_full = above(zb_rss_bytes(), base), live_full = live;

  for (size_t i = 0; i < n; i++) {
    if (zb_below(&r, 10) != 0) {
      zb_check(b[i].p, b[i].size, i);
      free(b[i].p);
      live -= b[i].size;
      b[i].p = NULL;
    }
  }
  size_t rss_90 = above(zb_rss_bytes(), base);
  zb_sleep((double)delay / 1000.0);
  size_t rss_90_1s = above(zb_rss_bytes(), base);

  for (size_t i = 0; i < n; i++) {
    if (b[i].p != NULL) {
      zb_check(b[i].p, b[i].size, i);
      free(b[i].p);
    }
  }
  size_t rss_free = above(zb_rss_bytes(), base);
  zb_sleep((double)delay / 1000.0);
  size_t rss_free_1s = above(zb_rss_bytes(), base);
  zb_phase_end(n);  /* per block: its malloc and its free */

  zb_report("rss_free_1s", mib(rss_free_1s), "MiB", false);
  zb_report("rss_full", mib(rss_full), "MiB", false);
  zb_report("rss_90", mib(rss_90), "MiB", false);
  zb_report("rss_90_1s", mib(rss_90_1s), "MiB", false);
  zb_report("rss_free", mib(rss_free), "MiB", false);
  zb_report("live_full", mib(live_full), "MiB", false);
  zb_report("live_90", mib(live), "MiB", false);
  munmap(b, cap * sizeof(blk_t));
  return 0;
}
