/* Out of memory: every allocation path returns NULL with errno = ENOMEM when the OS refuses memory, never
 * aborts, and works again once memory is back; blocks allocated before are untouched.
 *
 * core_oom_prefixed (-DZC_TEST_PREFIXED, zcmem_prefixed + src/os.h): fault injection with
 *   zc_os_fail_after(0): small blocks once the current pages are used up, medium, large, aligned, calloc,
 *   realloc growth (small to large, and a large block past its mapping); then failures injected after 1..24 more mappings in the middle of a mixed burst.
 *   Plus an RLIMIT_AS-limited child running zc_malloc until NULL.
 * core_oom_preload (plain malloc, LD_PRELOAD=libzcmem.so): the RLIMIT_AS child with malloc.
 * Each part runs in a forked child so a crash or abort is reported as such.
 */
#define _GNU_SOURCE
#include "zc_test.h"

#include <dlfcn.h>
#include <sys/resource.h>

#ifdef ZC_TEST_PREFIXED
#include "os.h"
#include "zcmem.h"
#define NAME "core_oom_prefixed"
#define O_malloc zc_malloc
#define O_calloc zc_calloc
#define O_realloc zc_realloc
#define O_free zc_free
#else
#include <malloc.h>
#define NAME "core_oom_preload"
#define O_malloc malloc
#define O_calloc calloc
#define O_realloc realloc
#define O_free free
#endif

#define MAXP ((size_t)1 << 23)
static void **ptrs; /* mmap'ed: holds the blocks of the "until NULL" loops */

/* Allocate blocks of size n until NULL (at most cap bytes); returns the count, *err = errno at the NULL
 * (-1 if the cap was reached first). */
static size_t alloc_until_null(size_t n, size_t cap, size_t *count_base, int *err) {
  size_t k = *count_base, got = 0;
  *err = -1;
  while (got * n < cap && k < MAXP) {
    errno = 0;
    void *p = O_malloc(n);
    if (!p) {
      *err = errno;
      break;
    }
    ((char *)p)[0] = 1;
    ptrs[k++] = p;
    got++;
  }
  *count_base = k;
  return got;
}

static void free_all(size_t *count) {
  for (size_t i = 0; i < *count; i++) O_free(ptrs[i]);
  *count = 0;
}

#ifdef ZC_TEST_PREFIXED

static int part_injection(void *arg) {
  (void)arg;
  static const size_t before_sizes[] = {16, 100, 1000, 20000, 65536, 200000, (size_t)3 << 20};
  enum { NB = sizeof before_sizes / sizeof before_sizes[0] };
  void *before[NB];
  for (unsigned i = 0; i < NB; i++) {
    before[i] = zc_malloc(before_sizes[i]);
    REQUIRE(before[i] != NULL);
    fill_pattern(before[i], before_sizes[i], i);
  }
  /* some freed memory of each kind, so that caches are not empty when the OS starts refusing */
  for (int i = 0; i < 4; i++) zc_free(zc_malloc((size_t)1 << 20));
  size_t count = 0;
  int err;
  zc_os_fail_after(0);
  struct { const char *what; size_t size, cap; } kinds[] = {
      {"small 48 B", 48, (size_t)256 << 20},
      {"small 1000 B", 1000, (size_t)256 << 20},
      {"medium 20 KiB", 20000, (size_t)512 << 20},
      {"large 1 MiB", (size_t)1 << 20, (size_t)4 << 30},
      {"large 40 MiB", (size_t)40 << 20, (size_t)64 << 30},
  };
  for (unsigned k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
    size_t got = alloc_until_null(kinds[k].size, kinds[k].cap, &count, &err);
    printf("injection: %s: %zu blocks before NULL, errno %d\n", kinds[k].what, got, err);
    CHECKF(err == ENOMEM, "%s: %s (errno %d) after %zu blocks", kinds[k].what,
           err < 0 ? "never returned NULL" : "NULL without ENOMEM", err, got);
  }
  /* aligned, calloc and realloc growth also fail cleanly */
  void *p = (void *)1;
  int n_aligned = 0, rc = 0;
  for (; n_aligned < 4096; n_aligned++) {
    rc = zc_posix_memalign(&p, (size_t)1 << 21, 4096);
    if (rc != 0) break;
    ptrs[count++] = p;
  }
  CHECKF(rc == ENOMEM, "posix_memalign(2 MiB) under failure returned %d after %d blocks", rc, n_aligned);
  errno = 0;
  p = zc_aligned_alloc((size_t)1 << 22, (size_t)1 << 22);
  CHECKF(p == NULL && errno == ENOMEM, "aligned_alloc(4 MiB) = %p errno %d", p, errno);
  zc_free(p);
  errno = 0;
  p = zc_calloc(1, (size_t)8 << 20);
  CHECKF(p == NULL && errno == ENOMEM, "calloc(8 MiB) = %p errno %d", p, errno);
  zc_free(p);
  char *small = count ? ptrs[0] : NULL; /* a 48 B block allocated just before the failures began */
  if (small) {
    memset(small, 0x42, 48);
    errno = 0;
    char *q = zc_realloc(small, (size_t)16 << 20);
    CHECKF(q == NULL && errno == ENOMEM, "realloc(48 B -> 16 MiB) = %p errno %d", (void *)q, errno);
    if (q) {
      ptrs[0] = q;
    } else {
      int same = 1;
      for (int i = 0; i < 48; i++) same &= small[i] == 0x42;
      CHECKF(same, "a failed realloc changed the block");
    }
  }
  /* a large block grown past its mapping: extending it in place, moving its pages (mremap to a new mapping)
   * and a new block to copy into all need a mapping: NULL with ENOMEM, the block unchanged (checked below
   * with the other blocks allocated before the failures) */
  errno = 0;
  void *grown = zc_realloc(before[NB - 1], (size_t)64 << 20);
  CHECKF(grown == NULL && errno == ENOMEM, "realloc(3 MiB -> 64 MiB) = %p errno %d", grown, errno);
  if (grown != NULL) before[NB - 1] = grown;
  /* memory comes back: every kind works again */
  zc_os_fail_after(-1);
  for (unsigned k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
    void *q = zc_malloc(kinds[k].size);
    CHECKF(q != NULL, "%s after the failures ended: NULL", kinds[k].what);
    if (q) memset(q, 1, kinds[k].size < 65536 ? kinds[k].size : 65536);
    zc_free(q);
  }
  p = zc_aligned_alloc((size_t)1 << 22, (size_t)1 << 22);
  CHECK(p != NULL && ((uintptr_t)p & (((size_t)1 << 22) - 1)) == 0);
  zc_free(p);
  free_all(&count);
  for (unsigned i = 0; i < NB; i++) {
    CHECKF((verify_pattern(before[i], before_sizes[i], i) == -1), "block of %zu B allocated before the failures changed",
           before_sizes[i]);
    zc_free(before[i]);
  }

  /* failures in the middle of a mixed burst, after 1..24 successful mappings */
  rng_t r;
  rng_seed(&r, 99);
  size_t total_nulls = 0;
  for (long after = 1; after <= 24; after++) {
    zc_os_fail_after(after);
    size_t nulls = 0;
    for (int i = 0; i < 3000 && count < MAXP; i++) {
      size_t n = (rng_next(&r) % 10) < 8 ? (size_t)rng_range(&r, 1, 2048)
                                          : (size_t)rng_range(&r, 2049, (size_t)2 << 20);
      errno = 0;
      void *q = (i % 5 == 0) ? zc_calloc(1, n) : zc_malloc(n);
      if (!q) {
        CHECKF(errno == ENOMEM, "NULL with errno %d (fail after %ld)", errno, after);
        nulls++;
        continue;
      }
      ((char *)q)[n - 1] = 1;
      size_t u = zc_usable_size(q);
      fill_pattern(q, u < 64 ? u : 64, (uint64_t)(uintptr_t)q);
      ptrs[count++] = q;
      if ((rng_next(&r) & 3) == 0) zc_free(ptrs[--count]);
    }
    zc_os_fail_after(-1);
    /* the failures did happen (a burst of 3000 blocks up to 2 MiB needs more than 24 mappings), and the
     * blocks handed out around them are intact */
    CHECKF(nulls >= 1, "fail after %ld mappings: no NULL in 3000 allocations", after);
    size_t bad = 0;
    for (size_t i = 0; i < count; i++) {
      size_t n = zc_usable_size(ptrs[i]);
      bad += verify_pattern(ptrs[i], n < 64 ? n : 64, (uint64_t)(uintptr_t)ptrs[i]) != -1;
    }
    CHECKF(bad == 0, "fail after %ld mappings: %zu of %zu live blocks changed", after, bad, count);
    total_nulls += nulls;
    free_all(&count);
    void *again = zc_malloc((size_t)2 << 20);
    CHECKF(again != NULL, "fail after %ld: a 2 MiB malloc fails once the failures end", after);
    zc_free(again);
  }
  printf("injection: %zu NULLs in the mixed bursts\n", total_nulls);
  zc_stats_t st;
  zc_stats_get(&st);
  CHECKF(st.errors == 0, "the allocator reported %llu error(s)", (unsigned long long)st.errors);
  return check_failures ? 1 : 0;
}
#endif

/* Under RLIMIT_AS the kernel refuses mappings: malloc must return NULL + ENOMEM, and work after frees. */
static int part_rlimit(void *arg) {
  (void)arg;
  size_t count = 0;
  int err;
  struct rlimit rl = {vm_bytes() + ((size_t)384 << 20), RLIM_INFINITY};
  rl.rlim_max = rl.rlim_cur;
  REQUIRE(setrlimit(RLIMIT_AS, &rl) == 0);
  struct { const char *what; size_t size; } kinds[] = {
      {"large 1 MiB", (size_t)1 << 20}, {"medium 30000 B", 30000}, {"small 200 B", 200}, {"large 9 MiB", (size_t)9 << 20}};
  for (unsigned k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
    size_t got = alloc_until_null(kinds[k].size, (size_t)8 << 30, &count, &err);
    printf("rlimit: %s: %zu blocks before NULL, errno %d\n", kinds[k].what, got, err);
    CHECKF(err == ENOMEM, "%s: errno %d after %zu blocks", kinds[k].what, err, got);
    /* NULL came from the limit, not at once: at least a third of the 384 MiB was handed out */
    CHECKF(got * kinds[k].size >= ((size_t)128 << 20), "%s: NULL after only %zu blocks under a 384 MiB limit",
           kinds[k].what, got);
    free_all(&count);
    /* after the frees, memory is available again */
    void *q = O_malloc(kinds[k].size);
    CHECKF(q != NULL, "%s: NULL after freeing everything", kinds[k].what);
    O_free(q);
  }
  errno = 0;
  void *c = O_calloc(1, (size_t)1 << 30);
  CHECKF(c == NULL && errno == ENOMEM, "calloc(1 GiB) under a 384 MiB limit = %p errno %d", c, errno);
  O_free(c);
  return check_failures ? 1 : 0;
}

static void run_part(const char *name, int (*fn)(void *)) {
  child_result_t r = run_child(fn, NULL, 120);
  char buf[64];
  fputs(r.err, stderr);
  CHECKF(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "part %s ended with %s", name,
         status_str(r.status, buf, sizeof buf));
  CHECKF(count_lines_with_prefix(r.err, "zcmem: error") == 0, "part %s: the allocator printed an error", name);
  child_result_free(&r);
}

int main(int argc, char **argv) {
  ptrs = mmap(NULL, MAXP * sizeof(void *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(ptrs != MAP_FAILED);
#ifdef ZC_TEST_PREFIXED
  run_part("fault injection", part_injection);
#else
  if (arg_flag(argc, argv, "--expect-zcmem")) CHECKF(is_zcmem_malloc(), "malloc is not zcmem's");
#endif
#if UNDER_HEAVY_SANITIZER
  printf("%s: RLIMIT_AS part not run: the sanitizer's shadow memory needs the address space\n", NAME);
#else
  run_part("RLIMIT_AS", part_rlimit);
#endif
  (void)argc;
  (void)argv;
  return check_exit(NAME);
}
