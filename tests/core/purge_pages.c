/* Purge in OS-page units, counting only what the OS took back (src/os.h zc_os_purge, the purge helpers of
 * src/segment.c and src/large.c).
 *
 *  1. arithmetic: zc_os_page_inward for 4, 16 and 64 KiB pages over the ranges the allocator purges (page 0
 *     of a segment starts 16 KiB in) and over odd ranges;
 *  2. the real kernel: zc_os_purge of an unaligned range gives back exactly the whole pages inside it
 *     (mincore: the pages at either end stay resident) and returns their length; with a refused purge
 *     (zc_os_fail_purge) it returns 0 and nothing leaves;
 *  3. the allocator end to end, each in a child: small pages 0 and 1 of a segment emptied and trimmed, with
 *     the real page size (both purged, 48 + 64 KiB counted), with a pretend 64 KiB page (zc_os_set_page_size:
 *     page 0 cannot be purged, stays resident, and only 64 KiB is counted), with 16 KiB pages, and with the
 *     OS refusing (nothing counted, nothing left); a large region's purge counts its size less the header
 *     page, or nothing (and it is unmapped, counted as such) when the OS refuses.
 *
 * Prefixed library and internal headers. Label sanitize. Args: none.
 */
#define _GNU_SOURCE
#include "check.h"
#include "large.h"
#include "os.h"
#include "zcmem.h"

uint64_t zc_segments_purged_bytes(void); /* src/internal.h */

#define KiB ((size_t)1024)
#define SEG ((uintptr_t)4 << 20)

static size_t real_page;

/* ---- 1. arithmetic ---- */
static void test_inward(void) {
  static const size_t pages[] = {4 * KiB, 16 * KiB, 64 * KiB};
  const uintptr_t s = (uintptr_t)0x7f0000000000ull; /* a segment base: 4 MiB-aligned */
  for (unsigned i = 0; i < 3; i++) {
    size_t pg = pages[i];
    uintptr_t first;
    /* small segment page 0: [s + 16K, s + 64K) */
    size_t n = zc_os_page_inward(s + 16 * KiB, 48 * KiB, pg, &first);
    size_t want = pg <= 16 * KiB ? 48 * KiB : 0;
    CHECKF(n == want, "page %zu: small page 0 gives %zu, want %zu", pg, n, want);
    if (n) CHECK(first == s + 16 * KiB);
    /* medium segment page 0: [s + 16K, s + 512K) */
    n = zc_os_page_inward(s + 16 * KiB, 496 * KiB, pg, &first);
    CHECKF(n == (pg <= 16 * KiB ? 496 * KiB : 448 * KiB) && first == (pg <= 16 * KiB ? s + 16 * KiB : s + 64 * KiB),
           "page %zu: medium page 0 gives %zu at +%zu", pg, n, (size_t)(first - s));
    /* an aligned small page k: all of it */
    n = zc_os_page_inward(s + 5 * 64 * KiB, 64 * KiB, pg, &first);
    CHECK(n == 64 * KiB && first == s + 5 * 64 * KiB);
    /* a large region less its header page */
    n = zc_os_page_inward(s + pg, 1024 * KiB - pg, pg, &first);
    CHECK(n == 1024 * KiB - pg && first == s + pg);
    /* shorter than a page, straddling a boundary, exact page, empty */
    CHECK(zc_os_page_inward(s + 1, pg - 2, pg, &first) == 0);
    CHECK(zc_os_page_inward(s + pg - 8, 16, pg, &first) == 0);
    CHECK(zc_os_page_inward(s + pg - 8, pg + 8, pg, &first) == pg && first == s + pg);
    CHECK(zc_os_page_inward(s + pg - 8, pg + 7, pg, &first) == 0);
    CHECK(zc_os_page_inward(s, pg, pg, &first) == pg && first == s);
    CHECK(zc_os_page_inward(s, 0, pg, &first) == 0);
    CHECK(zc_os_page_inward(s + 1, 3 * pg, pg, &first) == 2 * pg && first == s + pg);
  }
}

/* ---- 2. the real kernel ---- */
static int resident(const void *p) {
  unsigned char v = 0;
  uintptr_t a = (uintptr_t)p & ~(uintptr_t)(real_page - 1);
  if (mincore((void *)a, real_page, &v) != 0) return -1;
  return v & 1;
}

static void test_kernel(void) {
  size_t pg = real_page;
  unsigned char *m = mmap(NULL, 8 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(m != MAP_FAILED);
  memset(m, 0x5a, 8 * pg);
  size_t n = zc_os_purge(m + 100, 3 * pg, 0); /* whole pages 1 and 2 only */
  CHECKF(n == 2 * pg, "zc_os_purge(+100, 3 pages) returned %zu, want %zu", n, 2 * pg);
  CHECK(resident(m) == 1 && resident(m + 3 * pg) == 1);
  CHECK(resident(m + pg) == 0 && resident(m + 2 * pg) == 0);
  CHECK(m[0] == 0x5a && m[3 * pg] == 0x5a && m[pg + 100] == 0); /* DONTNEED: purged pages read zero */
  CHECK(zc_os_purge(m + 5 * pg + 1, pg, 0) == 0); /* no whole page: nothing, not even an attempt */
  CHECK(resident(m + 5 * pg) == 1);
  zc_os_fail_purge(true);
  CHECK(zc_os_purge(m + 6 * pg, 2 * pg, 0) == 0);
  CHECK(resident(m + 6 * pg) == 1 && m[6 * pg] == 0x5a);
  zc_os_fail_purge(false);
  CHECK(zc_os_purge(m + 6 * pg, 2 * pg, 0) == 2 * pg && resident(m + 6 * pg) == 0);
  munmap(m, 8 * pg);
}

/* ---- 3. the allocator ---- */
typedef struct {
  size_t pretend; /* page size to pretend (0: the real one) */
  bool refuse;    /* the OS refuses every purge */
} seg_case_t;

/* Empty pages 0 and 1 of the first small segment (64-byte blocks: 768 in page 0, 1024 in page 1), keep page
 * 2 in use, trim, and check what was counted and what left memory. */
static int seg_child(void *arg) {
  const seg_case_t *c = arg;
  if (c->pretend) zc_os_set_page_size(c->pretend);
  size_t pg = zc_os_page_size();
  /* Mappings honour the pretend page as a 16/64 KiB kernel would, although mmap aligns to the real one. */
  for (int i = 1; i <= 5; i++) {
    void *m = zc_os_alloc_aligned((size_t)i * pg, pg);
    CHECKF(m != NULL && (uintptr_t)m % pg == 0, "page %zu: zc_os_alloc_aligned(%d pages) gave %p", pg, i, m);
    if (m) zc_os_free(m, (size_t)i * pg);
  }
  enum { N = 2000 };
  static unsigned char *b[N];
  for (int i = 0; i < N; i++) {
    REQUIRE((b[i] = zc_malloc(64)) != NULL);
    memset(b[i], 0x77, 64);
  }
  uintptr_t s = (uintptr_t)b[0] & ~(SEG - 1);
  REQUIRE((uintptr_t)b[0] == s + 16 * KiB); /* the first block of page 0 */
  REQUIRE((uintptr_t)b[767] < s + 64 * KiB && (uintptr_t)b[768] == s + 64 * KiB);
  REQUIRE((uintptr_t)b[1791] < s + 128 * KiB && (uintptr_t)b[1792] == s + 128 * KiB);
  for (int i = 0; i < 1792; i++) zc_free(b[i]);
  if (c->refuse) zc_os_fail_purge(true);
  uint64_t before = zc_segments_purged_bytes();
  zc_trim(0);
  uint64_t counted = zc_segments_purged_bytes() - before;
  size_t want = c->refuse ? 0 : (pg <= 16 * KiB ? 48 * KiB : 0) + 64 * KiB;
  CHECKF(counted == want, "page %zu%s: %llu bytes counted as purged, want %zu", pg, c->refuse ? ", refused" : "",
         (unsigned long long)counted, want);
  /* what really left memory (the real kernel's pages) */
  bool page0_gone = pg <= 16 * KiB && !c->refuse;
  CHECKF(resident((void *)(s + 32 * KiB)) == (page0_gone ? 0 : 1), "page %zu: page 0 resident=%d", pg,
         resident((void *)(s + 32 * KiB)));
  CHECKF(resident((void *)(s + 96 * KiB)) == (c->refuse ? 1 : 0), "page %zu: page 1 resident=%d", pg,
         resident((void *)(s + 96 * KiB)));
  CHECK(resident((void *)(s + 128 * KiB)) == 1); /* page 2 is in use */
  for (int i = 1792; i < N; i++) {
    CHECK(b[i][0] == 0x77 && b[i][63] == 0x77);
    zc_free(b[i]);
  }
  zc_os_fail_purge(false);
  return check_failures ? 1 : 0;
}

static int large_child(void *arg) {
  const seg_case_t *c = arg;
  if (c->pretend) zc_os_set_page_size(c->pretend);
  size_t pg = zc_os_page_size();
  unsigned char *p = zc_malloc(1000 * KiB);
  REQUIRE(p != NULL);
  memset(p, 1, 1000 * KiB);
  size_t map = (size_t)(zc_usable_size(p) + (size_t)(p - (unsigned char *)((uintptr_t)p & ~(SEG - 1))));
  zc_large_stats_t a, b;
  zc_free(p);
  if (c->refuse) zc_os_fail_purge(true);
  zc_large_stats(&a);
  size_t released = zc_large_purge(true);
  zc_large_stats(&b);
  /* purged: map - header page; refused: the region is unmapped instead (its whole mapping released) */
  size_t want = c->refuse ? map : map - pg;
  CHECKF(released == want && b.purged - a.purged == want, "page %zu%s: released %zu, purged stat +%llu, want %zu",
         pg, c->refuse ? ", refused" : "", released, (unsigned long long)(b.purged - a.purged), want);
  CHECKF(c->refuse ? b.mapped == a.mapped - map : b.cached_clean == a.cached_clean + map,
         "page %zu%s: mapped %llu -> %llu, clean %llu -> %llu", pg, c->refuse ? ", refused" : "",
         (unsigned long long)a.mapped, (unsigned long long)b.mapped, (unsigned long long)a.cached_clean,
         (unsigned long long)b.cached_clean);
  zc_os_fail_purge(false);
  return check_failures ? 1 : 0;
}

static void run(int (*fn)(void *), seg_case_t c, const char *what) {
  child_result_t r = run_child(fn, &c, 60);
  char st[64];
  CHECKF(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s, pretend page %zu, refuse %d: %s\n%s", what,
         c.pretend, c.refuse, status_str(r.status, st, sizeof st), r.err);
  child_result_free(&r);
}

int main(void) {
  setenv("ZCMEM_BACKGROUND", "0", 1);       /* no purger thread: only the trim purges */
  setenv("ZCMEM_PURGE_DELAY", "100000", 1); /* nothing ages on its own during the test */
  setenv("ZCMEM_DIRTY_BUDGET", "1G", 1);
  real_page = (size_t)sysconf(_SC_PAGESIZE);
  test_inward();
  test_kernel();
  const size_t pretend[] = {0, 16 * KiB, 64 * KiB};
  for (unsigned i = 0; i < 3; i++) {
    if (pretend[i] && pretend[i] <= real_page) continue;
    run(seg_child, (seg_case_t){pretend[i], false}, "small pages");
    run(large_child, (seg_case_t){pretend[i], false}, "large region");
  }
  run(seg_child, (seg_case_t){0, true}, "small pages");
  run(seg_child, (seg_case_t){64 * KiB, true}, "small pages");
  run(large_child, (seg_case_t){0, true}, "large region");
  printf("real page %zu: arithmetic for 4/16/64 KiB, kernel, segments and large regions checked\n", real_page);
  return check_exit("core_purge_pages");
}
