/* The kernel's limit on a process's mappings (vm.max_map_count) reached while zcmem moves large regions.
 * A composed region (src/large.c compose: pages of cached regions moved into a new one) is several OS
 * mappings; growing it (realloc) moves them all with one mremap, and composing moves up to 16 regions into
 * a mapping, splitting it. Each needs mappings the kernel may refuse (ENOMEM) partway.
 *
 *   large_mapcount grow     a composed 40 MiB block (pattern on every page) is grown to 100 MiB by the
 *                           large layer's move (zc_large_move: the kernel moves its mappings, no copy) while
 *                           the process has only k more mappings to spare, for k = 0..24: the moved block
 *                           with every page's bytes, or NULL and the old block intact and usable.
 *   large_mapcount grow_realloc  the same through zc_realloc (which copies when the move fails): the block
 *                           with its bytes, or NULL with ENOMEM and the old block intact.
 *   large_mapcount compose  cached regions (3, 4 and 6 MiB, patterned) and a 40 MiB malloc that composes from
 *                           them, with k = 0..24 mappings to spare: a block that reads zeros under calloc and
 *                           is writable over its whole length, or NULL with ENOMEM; small and medium mallocs
 *                           at the limit: NULL with ENOMEM or a usable block.
 * Each k runs in a forked child (a crash or an abort is reported as such); no error report from zcmem. The
 * limit is reached with single pages of alternating protection (the kernel cannot merge them), then k of them
 * are unmapped. Needs Linux 6.17+ (several mappings moved as one), else exit 77 (skipped).
 * Links zcmem_prefixed (zc_* API; src/ for the large layer's counters).
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"
#include "os.h"

#include "large_test.h"

#include <sys/mman.h>

/* ---- the process's mappings used up ---- */
static char *filler;
static size_t filler_pages, filler_split; /* pages of the area; the last page made its own mapping */
enum { LAST_MAX = 64 };
static void *last[LAST_MAX]; /* single pages mapped after the split ran out */
static int nlast;

/* Split a PROT_NONE area page by page (every other page readable) until the kernel refuses (a split needs
 * two mappings), then map single pages (protections no neighbour has, so that none merges) until it
 * refuses one: no mapping is left. */
static void exhaust(void) {
  size_t pg = 4096;
  filler_pages = 200000; /* more than the default limit of 65530 mappings could split */
  filler = mmap(NULL, filler_pages * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  REQUIRE(filler != MAP_FAILED);
  filler_split = 0;
  size_t i = 1;
  for (; i + 1 < filler_pages; i += 2) {
    if (mprotect(filler + i * pg, pg, PROT_READ) != 0) {
      REQUIREF(errno == ENOMEM, "mprotect: %s", strerror(errno));
      break;
    }
    filler_split = i;
  }
  REQUIREF(i + 1 < filler_pages, "the mapping limit was not reached with %zu mappings", filler_pages);
  for (nlast = 0; nlast < LAST_MAX; nlast++) {
    void *q = mmap(NULL, pg, nlast % 2 ? PROT_EXEC : PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q == MAP_FAILED) {
      REQUIREF(errno == ENOMEM, "mmap: %s", strerror(errno));
      return;
    }
    last[nlast] = q;
  }
  REQUIREF(0, "%d single pages mapped past the split's limit", LAST_MAX);
}

static void unexhaust(void) {
  munmap(filler, filler_pages * 4096);
  for (int j = 0; j < nlast; j++) munmap(last[j], 4096);
}

/* Give k mappings back: unmap k of the readable pages (each its own mapping between two PROT_NONE ones). */
static void spare(int k) {
  for (int j = 0; j < k; j++) REQUIRE(munmap(filler + (filler_split - 2 * (size_t)j) * 4096, 4096) == 0);
}

/* ---- patterns: one byte per page, from the page's index and a seed ---- */
static void stamp(unsigned char *p, size_t n, unsigned seed) {
  for (size_t k = 0; k < n; k += 4096) p[k] = (unsigned char)(seed + k / 4096);
  p[n - 1] = (unsigned char)(seed ^ 0x5a);
}
static int stamped(const unsigned char *p, size_t n, unsigned seed) {
  for (size_t k = 0; k < n; k += 4096)
    if (p[k] != (unsigned char)(seed + k / 4096)) return 0;
  return p[n - 1] == (unsigned char)(seed ^ 0x5a);
}

/* Three cached dirty regions (3, 4 and 6 MiB) and a 40 MiB block built from them (compose). Returns the
 * block (filled: the number of regions moved into it is counted in *filled). */
static unsigned char *composed(size_t n, bool zero, uint64_t *filled) {
  static const size_t sz[3] = {3 * MiB, 4 * MiB, 6 * MiB};
  unsigned char *b[3];
  for (int i = 0; i < 3; i++) {
    b[i] = zc_malloc(sz[i]);
    REQUIRE(b[i] != NULL);
    memset(b[i], 0x10 + i, sz[i]);
  }
  for (int i = 0; i < 3; i++) zc_free(b[i]);
  uint64_t f0 = stats().filled;
  unsigned char *q = zero ? zc_calloc(1, n) : zc_malloc(n);
  *filled = stats().filled - f0;
  return q;
}

static int errors0;
static int errors_now(void) {
  zc_stats_t st;
  zc_stats_get(&st);
  return (int)st.errors;
}

/* grow: realloc of a composed block with k mappings to spare */
static bool via_realloc;
static int grow_child(void *arg) {
  int k = (int)(intptr_t)arg;
  uint64_t filled;
  size_t n = 40 * MiB, big = 100 * MiB;
  unsigned char *p = composed(n, false, &filled);
  REQUIRE(p != NULL);
  REQUIREF(filled >= 2, "the premise: the block was composed from cached regions (%llu moved in)",
           (unsigned long long)filled);
  stamp(p, n, 7);
  /* the address space after the block taken: the growth must move it (mremap of all its mappings) */
  char *end = (char *)(((uintptr_t)p + zc_usable_size(p) + 4095) & ~(uintptr_t)4095);
  void *wall = mmap(end, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  REQUIREF(wall == end || (wall == MAP_FAILED && errno == EEXIST), "the wall after the block: %s", strerror(errno));
  exhaust();
  spare(k);
  errno = 0;
  /* the large layer's move itself (realloc would copy into a new block when it fails): the kernel moves
   * every mapping of the region, or none */
  unsigned char *q = via_realloc ? zc_realloc(p, big) : zc_large_move(p, hdr_of(p), big);
  int e = errno;
  int rc = 0;
  if (q == NULL) {
    if (via_realloc && e != ENOMEM) rc = 10;
    else if (!stamped(p, n, 7)) rc = 11; /* the old block must be intact */
  } else if (!stamped(q, n, 7)) {
    rc = 12;
  }
  const char *how = q == NULL ? "NULL" : q == p ? "in place" : "moved";
  unsigned char *live = q != NULL ? q : p;
  unexhaust(); /* mappings back: the block must still be usable */
  if (rc == 0 && q != NULL) stamp(q, big, 9), rc = stamped(q, big, 9) ? 0 : 13;
  if (rc == 0 && q == NULL) {
    q = zc_realloc(p, big); /* with mappings to spare it works */
    if (q == NULL || !stamped(q, n, 7)) rc = 14;
    else live = q;
  }
  zc_free(live);
  if (rc == 0 && errors_now() != errors0) rc = 15;
  printf("grow%s, %d spare: %s\n", via_realloc ? " (realloc)" : "", k, how);
  return rc;
}

/* compose: a composed block (calloc) built while only k mappings are left, and small/medium mallocs */
static int compose_child(void *arg) {
  int k = (int)(intptr_t)arg;
  static const size_t sz[3] = {3 * MiB, 4 * MiB, 6 * MiB};
  unsigned char *b[3];
  for (int i = 0; i < 3; i++) {
    b[i] = zc_malloc(sz[i]);
    REQUIRE(b[i] != NULL);
    stamp(b[i], sz[i], (unsigned)i);
  }
  unsigned char *keep = zc_malloc(2 * MiB); /* a live block beside them: never touched by the compose */
  REQUIRE(keep != NULL);
  stamp(keep, 2 * MiB, 3);
  for (int i = 0; i < 3; i++) zc_free(b[i]);
  exhaust();
  spare(k);
  int rc = 0;
  errno = 0;
  unsigned char *q = zc_calloc(1, 40 * MiB);
  int e = errno;
  if (q == NULL && e != ENOMEM) rc = 20;
  if (q != NULL) {
    for (size_t i = 0; i < 40 * MiB && rc == 0; i += 512)
      if (q[i] != 0) rc = 21;
    stamp(q, 40 * MiB, 5);
    if (!stamped(q, 40 * MiB, 5)) rc = 22;
  }
  static const size_t small[] = {32, 1000, 20000, 200000};
  void *s[4];
  for (int i = 0; i < 4; i++) {
    errno = 0;
    s[i] = zc_malloc(small[i]);
    if (s[i] == NULL && errno != ENOMEM && rc == 0) rc = 23;
    if (s[i] != NULL) memset(s[i], 1, small[i]);
  }
  if (rc == 0 && !stamped(keep, 2 * MiB, 3)) rc = 24;
  unexhaust();
  for (int i = 0; i < 4; i++) zc_free(s[i]);
  zc_free(q);
  unsigned char *again = zc_calloc(1, 40 * MiB); /* mappings back: composing works */
  if (rc == 0 && (again == NULL || again[40 * MiB - 1] != 0)) rc = 25;
  zc_free(again);
  zc_free(keep);
  if (rc == 0 && errors_now() != errors0) rc = 26;
  printf("compose, %d spare: %s\n", k, q == NULL ? "NULL" : "block");
  return rc;
}

static int run_all(const char *what, int (*fn)(void *)) {
  if (!zc_os_can_move_mappings()) {
    printf("%s: skipped: this kernel cannot move a range of several mappings as one (before Linux 6.17)\n", what);
    return 77;
  }
  int nulls = 0;
  for (int k = 0; k <= 24; k++) {
    child_result_t r = run_child(fn, (void *)(intptr_t)k, 120);
    char st[64];
    CHECKF(child_exited(&r, 0), "%s with %d mappings to spare: %s\n%s%s", what, k, child_str(&r, st, sizeof st),
           r.out, r.err);
    CHECKF(strstr(r.err, "zcmem: error") == NULL, "%s, %d spare: zcmem reported an error:\n%s", what, k, r.err);
    nulls += strstr(r.out, "NULL") != NULL;
    fputs(r.out, stdout);
    child_result_free(&r);
  }
  printf("%s: %d of 25 runs got NULL (ENOMEM)\n", what, nulls);
  return check_exit(what);
}

static int case_grow(int argc, char **argv) {
  (void)argc;
  (void)argv;
  return run_all("large_mapcount_grow", grow_child);
}
static int case_grow_realloc(int argc, char **argv) {
  (void)argc;
  (void)argv;
  via_realloc = true;
  return run_all("large_mapcount_grow_realloc", grow_child);
}
static int case_compose(int argc, char **argv) {
  (void)argc;
  (void)argv;
  return run_all("large_mapcount_compose", compose_child);
}

int main(int argc, char **argv) {
  zc_option_set(zc_option_large_cache, (long)(256 * MiB)); /* the regions go to the pool, not the front */
  zc_option_set(zc_option_purge_delay, 600000);            /* nothing ages out during a run */
  static const zc_case_t cases[] = {{"grow", case_grow}, {"grow_realloc", case_grow_realloc},
                                         {"compose", case_compose}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
