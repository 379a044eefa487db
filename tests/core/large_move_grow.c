/* A large region whose mapping cannot be extended in place is moved and grown by the kernel
 * (mremap(MREMAP_MAYMOVE | MREMAP_FIXED) onto an aligned reservation, zc_os_move), on its two paths:
 *   realloc  zc_realloc of a live large block (zc_large_move): the block keeps its bytes at its new address;
 *   miss     a zc_malloc that finds no region of its class grows a smaller cached dirty one (grow_cached).
 * Extension in place is made impossible by a PROT_NONE page the test maps right after the region. Every byte
 * of the grown block is written and read back.
 *
 * Natively this checks that the moved block is whole (old bytes kept on realloc, the grown part writable).
 * Under valgrind memcheck (test valgrind_large_move_grow) it is the regression test of a false report:
 * valgrind 3.19 marks the grown part of such a move inaccessible when the segment next to the old mapping is
 * not read-write (here: the PROT_NONE page), and each write to it was an "Invalid write" until large.c told
 * memcheck that the kernel maps it (moved_tail_mapped in large.c). Run with ZCMEM_BACKGROUND=0 (no purger:
 * the cache holds what the test put there) and ZCMEM_PURGE_DELAY=600000: without a purger, the malloc that
 * misses runs the time policy inline and purges a dirty region cached for a purge delay, so with the default
 * 100 ms the 1 MiB region was purged before the miss whenever the test lost 100 ms between the two (valgrind
 * on a loaded machine: "grew 0 cached regions"; with ZCMEM_PURGE_DELAY=1 every run). Includes src/large.h for
 * zc_large_stats (the miss path ran). */
#include "zc_test.h"
#include "zcmem.h"

#include "large.h"

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#define MIB(x) ((size_t)(x) << 20)

static size_t page(void) { return (size_t)sysconf(_SC_PAGESIZE); }

/* Map one PROT_NONE page at the first page after the large block p (its region's end), so that the kernel
 * cannot extend the region in place. Returns the page, or NULL if that address was taken already (then the
 * extension fails anyway). */
static void *block_after(void *p) {
  uintptr_t end = ((uintptr_t)p + zc_usable_size(p) + page() - 1) & ~(uintptr_t)(page() - 1);
  void *g = mmap((void *)end, page(), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  REQUIRE(g != MAP_FAILED);
  if (g != (void *)end) {
    munmap(g, page());
    return NULL;
  }
  return g;
}

static void fill(unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i += 64) p[i] = (unsigned char)(seed + i / 64);
}
static long first_bad(const unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i += 64)
    if (p[i] != (unsigned char)(seed + i / 64)) return (long)i;
  return -1;
}

static void test_realloc_move(void) {
  zc_trim(0); /* no resident cached region may serve the growth by a copy */
  size_t n0 = MIB(1), n1 = MIB(8);
  unsigned char *p = zc_malloc(n0);
  REQUIRE(p != NULL);
  fill(p, n0, 7);
  void *guard = block_after(p);
  unsigned char *q = zc_realloc(p, n1);
  REQUIRE(q != NULL);
  CHECKF(q != p, "realloc to %zu MiB grew the block in place past the page mapped after it", n1 >> 20);
  long bad = first_bad(q, n0, 7);
  CHECKF(bad < 0, "realloc by move lost the old bytes (first wrong at offset %ld)", bad);
  memset(q + n0, 0x5A, n1 - n0); /* the grown part */
  memset(q, 0xA5, n0);
  for (size_t i = 0; i < n1; i += 4096) {
    unsigned char want = i < n0 ? 0xA5 : 0x5A;
    if (q[i] != want) {
      CHECKF(q[i] == want, "moved block: byte %zu reads %#x after writing %#x", i, q[i], want);
      break;
    }
  }
  zc_free(q);
  if (guard != NULL) munmap(guard, page());
}

static void test_miss_grows_cached(void) {
  zc_trim(0);
  unsigned char *p = zc_malloc(MIB(1));
  REQUIRE(p != NULL);
  memset(p, 0x33, MIB(1));
  void *guard = block_after(p);
  zc_free(p); /* cached dirty: the next miss of a larger class grows it */
  zc_large_stats_t s0, s1;
  zc_large_stats(&s0);
  size_t n = MIB(4);
  unsigned char *q = zc_malloc(n);
  REQUIRE(q != NULL);
  zc_large_stats(&s1);
  CHECKF(s1.grown == s0.grown + 1, "the 4 MiB miss grew %llu cached regions, not 1",
         (unsigned long long)(s1.grown - s0.grown));
  CHECKF((uintptr_t)q - (uintptr_t)p >= MIB(4) || (uintptr_t)p - (uintptr_t)q >= MIB(4),
         "the grown region stayed at %p past the page mapped after it", (void *)p);
  memset(q, 0x5A, n);
  long bad = -1;
  for (size_t i = 0; i < n && bad < 0; i += 4096)
    if (q[i] != 0x5A) bad = (long)i;
  CHECKF(bad < 0, "grown block: byte %ld does not read back what was written", bad);
  zc_free(q);
  if (guard != NULL) munmap(guard, page());
}

int main(void) {
  REQUIREF(zc_option_get(zc_option_background) == 0 && zc_option_get(zc_option_purge_delay) >= 60000,
           "run with ZCMEM_BACKGROUND=0 and ZCMEM_PURGE_DELAY of a minute or more (the cache must keep what the "
           "test put there)");
  test_realloc_move();
  test_miss_grows_cached();
  CHECK_DONE("core_large_move_grow");
}
