/* Edge cases of every entry point of the malloc family, against the C/POSIX/glibc contract.
 *
 * Built twice from this one file:
 *   core_api_prefixed  (-DZC_TEST_PREFIXED, linked with zcmem_prefixed): calls zc_malloc, zc_free, ...
 *   core_api_override  (linked with libzcmem.so): calls malloc, free, ... which the library replaces, and
 *                      adds what only the override has: the glibc __libc_* aliases, and blocks that libc
 *                      allocates itself (strdup, getline, asprintf, open_memstream, qsort, scandir) freed
 *                      by us.
 * Invariant: every check states the contract it enforces; a failure prints file:line and exits non-zero.
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"

#include <dirent.h>
#include <dlfcn.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>

/* A failed realloc leaves its block valid, and the tests read it after: not a use after free. */
#pragma GCC diagnostic ignored "-Wuse-after-free"

#include "zc_tapi.h"
#ifdef ZC_TEST_PREFIXED
#define NAME "core_api_prefixed"
#else
#define NAME "core_api_override"
#endif

/* Hide constants from the compiler so that it neither folds nor warns about the huge sizes on purpose. */
static size_t __attribute__((noinline)) opaque(size_t x) {
  __asm__ volatile("" : "+r"(x));
  return x;
}

static size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

static void test_malloc_zero_and_free_null(void) {
  enum { N = 1000 };
  void *ps[N];
  for (int i = 0; i < N; i++) {
    ps[i] = T_malloc(opaque(0));
    CHECKF(ps[i] != NULL, "malloc(0) #%d returned NULL", i);
  }
  /* unique: no two live malloc(0) blocks share an address */
  for (int i = 1; i < N; i++) CHECKF(ps[i] != ps[i - 1], "malloc(0) returned %p twice", ps[i]);
  for (int i = 0; i < N; i++)
    for (int j = i + 1; j < N && j < i + 64; j++) CHECK(ps[i] != ps[j]);
  for (int i = 0; i < N; i++) T_free(ps[i]);
  T_free(NULL);
  if (HAVE_FREE_SIZED) T_free_sized(NULL, 0);
  if (HAVE_FREE_ALIGNED_SIZED) T_free_aligned_sized(NULL, 64, 0);
  CHECK(T_usable(NULL) == 0);
}

/* realloc(NULL, n) is malloc(n); realloc(p, 0) frees p and returns NULL (glibc's behaviour, which Linux
 * programs expect; docs/design.md). Checked on both entry points: the result is NULL, errno is untouched,
 * and p really was freed: the allocated bytes of zc_stats go back to what they were before p. */
static uint64_t allocated_now(void) {
  zc_stats_t st;
  zc_stats_get(&st);
  return st.allocated;
}
static void test_realloc_edges(void) {
  char *p = T_realloc(NULL, 100);
  REQUIRE(p != NULL);
  CHECK(T_usable(p) >= 100);
  fill_pattern(p, 100, 1);
  CHECK((verify_pattern(p, 100, 1) == -1));
  T_free(p);
  for (int k = 0; k < 2; k++) {
    uint64_t before = allocated_now();
    char *q = k == 0 ? T_realloc(NULL, 300) : zc_malloc(300);
    REQUIRE(q != NULL);
    uint64_t with = allocated_now();
    CHECKF(with >= before + 300, "allocated %llu -> %llu after a 300-byte block", (unsigned long long)before,
           (unsigned long long)with);
    errno = 1234;
    void *r = k == 0 ? T_realloc(q, opaque(0)) : zc_realloc(q, opaque(0));
    int e = errno;
    uint64_t after = allocated_now();
    CHECKF(r == NULL, "%s(p, 0) returned a block, not NULL", k == 0 ? "realloc" : "zc_realloc");
    CHECKF(e == 1234, "%s(p, 0) set errno to %d", k == 0 ? "realloc" : "zc_realloc", e);
    CHECKF(after == before, "%s(p, 0) did not free p: allocated %llu before p, %llu with it, %llu after",
           k == 0 ? "realloc" : "zc_realloc", (unsigned long long)before, (unsigned long long)with,
           (unsigned long long)after);
    if (r) T_free(r);
  }
}

static void test_realloc_contents(void) {
  static const size_t sizes[] = {1,     24,    100,   1000,  5000,  40000, 65535, 65536, 65537,
                                 70000, 300000, (size_t)5 << 20, 70000, 65536, 65535, 4000, 16, 1,
                                 200000, 64, (size_t)1 << 20, 8};
  size_t old = 0;
  unsigned char *p = NULL;
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    unsigned char *q = T_realloc(p, n);
    CHECKF(q != NULL, "realloc to %zu failed", n);
    if (!q) {
      T_free(p);
      return;
    }
    size_t keep = old < n ? old : n;
    CHECKF((verify_pattern(q, keep, (unsigned)i) == -1), "realloc %zu -> %zu lost contents", old, n);
    CHECKF(T_usable(q) >= n, "usable %zu < %zu", T_usable(q), n);
    fill_pattern(q, n, (unsigned)i + 1);
    p = q;
    old = n;
  }
  T_free(p);
  /* in-place shrink and regrow of one block keeps its contents too */
  p = T_malloc(4096);
  REQUIRE(p != NULL);
  fill_pattern(p, 4096, 9);
  p = T_realloc(p, 4000);
  REQUIRE(p != NULL);
  CHECK((verify_pattern(p, 4000, 9) == -1));
  p = T_realloc(p, 4096);
  REQUIRE(p != NULL);
  CHECK((verify_pattern(p, 4000, 9) == -1));
  T_free(p);
}

static void test_calloc(void) {
  static const size_t sizes[] = {1, 8, 24, 100, 512, 1000, 4096, 10000, 65536, 100000, (size_t)1 << 20,
                                 (size_t)8 << 20};
  enum { K = 16 };
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    size_t n = sizes[s];
    /* dirty memory first: fill blocks of this size, free them, then calloc must still hand out zeros */
    void *dirty[K];
    for (int i = 0; i < K; i++) {
      dirty[i] = T_malloc(n);
      REQUIRE(dirty[i] != NULL);
      memset(dirty[i], 0xAB, n);
    }
    for (int i = 0; i < K; i++) T_free(dirty[i]);
    for (int i = 0; i < K; i++) {
      unsigned char *c = T_calloc(1, n);
      REQUIRE(c != NULL);
      CHECKF(all_zero(c, n), "calloc(1, %zu) after reuse of dirty memory is not zeroed", n);
      dirty[i] = c;
    }
    for (int i = 0; i < K; i++) T_free(dirty[i]);
    unsigned char *c = T_calloc(n, 3);
    REQUIRE(c != NULL);
    CHECKF(all_zero(c, n * 3), "calloc(%zu, 3) not zeroed", n);
    T_free(c);
  }
  void *z = T_calloc(0, 16);
  CHECK(z != NULL);
  T_free(z);
  z = T_calloc(16, 0);
  CHECK(z != NULL);
  T_free(z);
  /* overflow of count * size: NULL, ENOMEM */
  errno = 0;
  void *o = T_calloc(opaque(SIZE_MAX / 2), 3);
  CHECK(o == NULL);
  CHECKF(errno == ENOMEM, "errno %d", errno);
  errno = 0;
  o = T_calloc(opaque((size_t)1 << 33), opaque((size_t)1 << 33));
  CHECK(o == NULL);
  CHECKF(errno == ENOMEM, "errno %d", errno);
}

static void test_reallocarray(void) {
  char *p = T_reallocarray(NULL, 10, 8);
  REQUIRE(p != NULL);
  fill_pattern(p, 80, 3);
  errno = 0;
  char *q = T_reallocarray(p, opaque(SIZE_MAX / 2), 4);
  CHECK(q == NULL);
  CHECKF(errno == ENOMEM, "errno %d", errno);
  CHECK((verify_pattern(p, 80, 3) == -1)); /* the block is untouched by a failed reallocarray */
  q = T_reallocarray(p, 100, 8);
  REQUIRE(q != NULL);
  CHECK((verify_pattern(q, 80, 3) == -1));
  T_free(q);
}

static void check_aligned_block(const char *fn, void *p, size_t align, size_t size) {
  CHECKF(p != NULL, "%s(align %zu, size %zu) returned NULL", fn, align, size);
  if (!p) return;
  CHECKF(((uintptr_t)p & (align - 1)) == 0, "%s(align %zu, size %zu) = %p is misaligned", fn, align, size, p);
  size_t us = T_usable(p);
  CHECKF(us >= size, "%s(align %zu, size %zu): usable %zu", fn, align, size, us);
  /* writable: the whole block when small, its first and last 4 KiB otherwise */
  if (size <= ((size_t)1 << 20)) {
    memset(p, 0x5A, size);
  } else {
    memset(p, 0x5A, 4096);
    memset((char *)p + size - 4096, 0x5A, 4096);
  }
}

/* Every power-of-two alignment from 1 to 64 MiB through every aligned entry point. */
static void test_aligned(void) {
  size_t page = page_size();
  for (size_t align = 1; align <= ((size_t)64 << 20); align <<= 1) {
    const size_t sizes[] = {1, 24, 4097, align, align + 8, align > 4096 ? 2 * align + 1 : 3 * align + 5};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
      size_t size = sizes[s];
      void *p = (void *)1;
      int rc = T_posix_memalign(&p, align, size);
      if (align < sizeof(void *)) {
        CHECKF(rc == EINVAL, "posix_memalign(align %zu) returned %d, want EINVAL", align, rc);
      } else {
        CHECKF(rc == 0, "posix_memalign(align %zu, size %zu) returned %d", align, size, rc);
        if (rc == 0) {
          check_aligned_block("posix_memalign", p, align, size);
          T_free(p);
        }
      }
      p = T_aligned_alloc(align, size);
      check_aligned_block("aligned_alloc", p, align, size);
      if (p) {
        if (HAVE_FREE_ALIGNED_SIZED) T_free_aligned_sized(p, align, size);
        else T_free(p);
      }
      p = T_memalign(align, size);
      check_aligned_block("memalign", p, align, size);
      T_free(p);
    }
  }
  void *p = NULL;
  static const size_t bad[] = {0, 3, 12, 24, 100, 4096 + 8};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECKF(T_posix_memalign(&p, opaque(bad[i]), 16) == EINVAL, "posix_memalign(align %zu)", bad[i]);
  }
  /* not a multiple of sizeof(void *) although a power of two */
  CHECK(T_posix_memalign(&p, opaque(4), 16) == EINVAL);
  for (size_t i = 1; i < sizeof bad / sizeof bad[0]; i++) {
    errno = 0;
    void *q = T_aligned_alloc(opaque(bad[i]), 48);
    CHECKF(q == NULL && errno == EINVAL, "aligned_alloc(align %zu) = %p errno %d, want NULL/EINVAL", bad[i],
           q, errno);
    if (q) T_free(q);
  }
  /* memalign with a non-power-of-two: glibc rounds the alignment up; NULL/EINVAL is also acceptable */
  errno = 0;
  void *q = T_memalign(opaque(24), 48);
  CHECKF(q == NULL ? errno == EINVAL : ((uintptr_t)q & 31) == 0, "memalign(24) = %p errno %d", q, errno);
  T_free(q);

  static const size_t vs[] = {0, 1, 100, 4096, 4097, 70000, (size_t)3 << 20};
  for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
    void *v = T_valloc(vs[i]);
    check_aligned_block("valloc", v, page, vs[i]);
    T_free(v);
    v = T_pvalloc(vs[i]);
    size_t want = vs[i] ? (vs[i] + page - 1) & ~(page - 1) : page;
    check_aligned_block("pvalloc", v, page, want);
    T_free(v);
  }
}

/* malloc_usable_size: at least the request, all of it writable without touching a neighbour; free_sized
 * with the request size. */
static void test_usable_and_sized(void) {
  for (size_t n = 1; n <= 70000; n = n < 256 ? n + 1 : n + n / 7) {
    unsigned char *a = T_malloc(n), *b = T_malloc(n), *c = T_malloc(n);
    REQUIRE(a && b && c);
    size_t ua = T_usable(a), ub = T_usable(b), uc = T_usable(c);
    CHECKF(ua >= n && ub >= n && uc >= n, "usable %zu %zu %zu < %zu", ua, ub, uc, n);
    fill_pattern(a, ua, 1);
    fill_pattern(c, uc, 3);
    fill_pattern(b, ub, 2); /* the middle one last: it must not spill into a or c */
    CHECKF((verify_pattern(a, ua, 1) == -1) && (verify_pattern(c, uc, 3) == -1), "writing usable size %zu of a block overwrote a neighbour", ub);
    if (HAVE_FREE_SIZED) {
      T_free_sized(a, n);
      T_free_sized(b, n);
      T_free_sized(c, n);
    } else {
      T_free(a);
      T_free(b);
      T_free(c);
    }
  }
  CHECKF(HAVE_FREE_SIZED, "free_sized is not exported");
  CHECKF(HAVE_FREE_ALIGNED_SIZED, "free_aligned_sized is not exported");
}

/* malloc_trim gives memory back at once after a burst is freed. Background purging, the purge delay and
 * the dirty budget are switched off first, so that what is still resident after the frees is trim's to
 * release: then it must return 1 and bring RSS down. (If the frees already gave everything back, trim may
 * return 0 by its contract, and RSS must be down all the same.) */
static void test_trim(void) {
  zc_option_set(zc_option_background, 0);
  zc_option_set(zc_option_purge_delay, 1000000);
  zc_option_set(zc_option_dirty_budget, 1L << 30);
  zc_option_set(zc_option_large_cache, 1L << 30);
  enum { N = 200000 };
  void **ps = mmap(NULL, N * sizeof(void *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(ps != MAP_FAILED);
  /* start clean: large regions earlier tests left cached dirty would serve part of the burst (a miss grows a
   * cached region by moving its pages), and the burst would not raise RSS by what it allocates */
  T_trim(0);
  size_t rss0 = rss_bytes();
  for (int i = 0; i < N; i++) { /* 200000 x 320 B = 61 MiB of small blocks */
    ps[i] = T_malloc(320);
    REQUIRE(ps[i] != NULL);
    memset(ps[i], 1, 320);
  }
  void *big[16];
  for (int i = 0; i < 16; i++) { /* and 32 MiB of large regions */
    big[i] = T_malloc((size_t)2 << 20);
    REQUIRE(big[i] != NULL);
    memset(big[i], 1, (size_t)2 << 20);
  }
  size_t rss_full = rss_bytes();
  for (int i = 0; i < N; i++) T_free(ps[i]);
  for (int i = 0; i < 16; i++) T_free(big[i]);
  size_t rss_freed = rss_bytes();
  int rc = T_trim(0);
  size_t rss_trim = rss_bytes();
  printf("trim: rss start %zu MiB, full %zu MiB, after free %zu MiB, after trim %zu MiB (returned %d)\n",
         rss0 >> 20, rss_full >> 20, rss_freed >> 20, rss_trim >> 20, rc);
  zc_stats_t st;
  zc_stats_get(&st);
  /* what zcmem holds that may be resident: the allocator's own view, valid under every sanitizer */
  CHECKF(st.committed <= MIB(16), "committed %llu MiB after malloc_trim", (unsigned long long)(st.committed >> 20));
  if (UNDER_HEAVY_SANITIZER) { /* shadow memory: process RSS says nothing about zcmem */
    CHECKF(rc == 1, "malloc_trim returned %d after 93 MiB were freed with purging off", rc);
  } else {
    CHECKF(rss_full >= rss0 + MIB(80), "the burst did not raise RSS (%zu -> %zu)", rss0, rss_full);
    if (rss_freed > rss0 + MIB(16))
      CHECKF(rc == 1, "malloc_trim returned %d with %zu MiB still resident after the frees", rc, rss_freed >> 20);
    else
      CHECKF(rc == 0 || rc == 1, "malloc_trim returned %d", rc);
    CHECKF(rss_trim <= rss0 + MIB(16), "RSS after trim %zu MiB, start %zu MiB", rss_trim >> 20, rss0 >> 20);
  }
  munmap(ps, N * sizeof(void *));
}

/* Requests no machine can satisfy: NULL and ENOMEM, never a crash, and the old block of a failed
 * realloc is untouched. */
static void test_huge(void) {
  static const size_t huge[] = {SIZE_MAX / 2, SIZE_MAX / 2 + 1, SIZE_MAX - 4096, SIZE_MAX, (size_t)1 << 50};
  for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
    size_t n = opaque(huge[i]);
    errno = 0;
    void *p = T_malloc(n);
    CHECKF(p == NULL && errno == ENOMEM, "malloc(%zu) = %p errno %d", n, p, errno);
    errno = 0;
    p = T_calloc(1, n);
    CHECKF(p == NULL && errno == ENOMEM, "calloc(1, %zu) = %p errno %d", n, p, errno);
    errno = 0;
    p = T_aligned_alloc(4096, n);
    CHECKF(p == NULL && errno == ENOMEM, "aligned_alloc(4096, %zu) = %p errno %d", n, p, errno);
    errno = 0;
    p = T_memalign((size_t)1 << 20, n);
    CHECKF(p == NULL && errno == ENOMEM, "memalign(1M, %zu) = %p errno %d", n, p, errno);
    p = NULL;
    int rc = T_posix_memalign(&p, 64, n);
    CHECKF(rc == ENOMEM, "posix_memalign(64, %zu) = %d", n, rc);
    errno = 0;
    p = T_valloc(n);
    CHECKF(p == NULL && errno == ENOMEM, "valloc(%zu) = %p errno %d", n, p, errno);
    errno = 0;
    p = T_pvalloc(n);
    CHECKF(p == NULL && errno == ENOMEM, "pvalloc(%zu) = %p errno %d", n, p, errno);
    char *old = T_malloc(64);
    REQUIRE(old != NULL);
    fill_pattern(old, 64, 5);
    errno = 0;
    p = T_realloc(old, n);
    CHECKF(p == NULL && errno == ENOMEM, "realloc(p, %zu) = %p errno %d", n, p, errno);
    CHECK((verify_pattern(old, 64, 5) == -1));
    T_free(old);
  }
}

#ifndef ZC_TEST_PREFIXED
static int cmp_int(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

/* The override is really in place: malloc resolves to libzcmem.so. */
static void test_override_active(void) {
  CHECKF(is_zcmem_malloc(), "malloc resolves to %s", malloc_owner());
}

/* glibc's internal names, used by programs that wrap malloc (and by some of glibc itself). */
static void test_libc_aliases(void) {
  static const char *names[] = {"__libc_malloc", "__libc_free", "__libc_calloc", "__libc_realloc",
                                "__libc_memalign"};
  Dl_info self;
  REQUIRE(dladdr((void *)zc_malloc, &self) && self.dli_fname);
  void *lib = dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD);
  CHECKF(lib != NULL, "dlopen(%s, RTLD_NOLOAD): %s", self.dli_fname, dlerror());
  if (!lib) return;
  void *sym[5];
  for (int i = 0; i < 5; i++) {
    Dl_info di;
    sym[i] = dlsym(lib, names[i]);
    CHECKF(sym[i] != NULL, "%s not found", names[i]);
    CHECKF(!sym[i] || (dladdr(sym[i], &di) && di.dli_fbase == self.dli_fbase),
           "%s is not defined by libzcmem.so", names[i]);
  }
  for (int i = 0; i < 5; i++)
    if (!sym[i]) return;
  void *(*l_malloc)(size_t) = (void *(*)(size_t))sym[0];
  void (*l_free)(void *) = (void (*)(void *))sym[1];
  void *(*l_calloc)(size_t, size_t) = (void *(*)(size_t, size_t))sym[2];
  void *(*l_realloc)(void *, size_t) = (void *(*)(void *, size_t))sym[3];
  void *(*l_memalign)(size_t, size_t) = (void *(*)(size_t, size_t))sym[4];
  char *a = l_malloc(100);
  REQUIRE(a != NULL);
  fill_pattern(a, 100, 7);
  a = l_realloc(a, 100000);
  REQUIRE(a != NULL);
  CHECK((verify_pattern(a, 100, 7) == -1));
  free(a); /* blocks of the aliases and of the plain names are interchangeable */
  unsigned char *c = l_calloc(10, 100);
  REQUIRE(c != NULL);
  CHECK(all_zero(c, 1000));
  l_free(c);
  void *m = l_memalign(4096, 5000);
  CHECK(m != NULL && ((uintptr_t)m & 4095) == 0);
  l_free(m);
  void *z = zc_malloc(10);
  l_free(z);
}

static int scandir_all(const struct dirent *d) {
  (void)d;
  return 1;
}

/* Blocks that libc allocates for us with its own internal calls must be ours: free() takes them. */
static void test_libc_allocations(void) {
  char *s = strdup("zcmem strdup");
  REQUIRE(s != NULL);
  CHECK(strcmp(s, "zcmem strdup") == 0);
  free(s);
  s = strndup("abcdefgh", 3);
  CHECK(s && strcmp(s, "abc") == 0);
  free(s);
  s = NULL;
  CHECK(asprintf(&s, "%d-%s-%08x", 42, "asprintf", 0xbeef) > 0);
  CHECK(s && strcmp(s, "42-asprintf-0000beef") == 0);
  free(s);

  char *buf = NULL;
  size_t blen = 0;
  FILE *ms = open_memstream(&buf, &blen);
  REQUIRE(ms != NULL);
  for (int i = 0; i < 20000; i++) fprintf(ms, "line %d\n", i);
  fclose(ms);
  CHECK(buf != NULL && blen > 100000);
  /* read it back with getline (libc reallocs the line buffer) */
  FILE *in = fmemopen(buf, blen, "r");
  REQUIRE(in != NULL);
  char *line = NULL;
  size_t cap = 0;
  int lines = 0;
  while (getline(&line, &cap, in) > 0) lines++;
  CHECK(lines == 20000);
  free(line);
  fclose(in);
  free(buf);

  /* glibc's qsort allocates a temporary buffer for a big array */
  size_t n = 1 << 20;
  int *arr = malloc(n * sizeof(int));
  REQUIRE(arr != NULL);
  rng_t r;
  rng_seed(&r, 1);
  for (size_t i = 0; i < n; i++) arr[i] = (int)(rng_next(&r) >> 33);
  qsort(arr, n, sizeof(int), cmp_int);
  int sorted = 1;
  for (size_t i = 1; i < n; i++) sorted &= arr[i - 1] <= arr[i];
  CHECK(sorted);
  free(arr);

  struct dirent **ents = NULL;
  int ne = scandir("/proc/self", &ents, scandir_all, alphasort);
  CHECK(ne > 2);
  for (int i = 0; i < ne; i++) free(ents[i]);
  free(ents);

  char *rp = realpath("/proc/self/..", NULL);
  CHECK(rp && strcmp(rp, "/proc") == 0);
  free(rp);
}
#endif

/* zc_strdup: a NUL-terminated copy in a block of ours (usable size at least the length + 1). */
static void test_strdup(void) {
  static const char *const strs[] = {"", "a", "zcmem", "a string longer than the smallest size classes, 64 bytes+"};
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
    char *d = zc_strdup(strs[i]);
    REQUIRE(d != NULL);
    CHECKF(d != strs[i] && strcmp(d, strs[i]) == 0, "zc_strdup(\"%s\") = \"%s\"", strs[i], d);
    CHECK(zc_usable_size(d) >= strlen(strs[i]) + 1);
    zc_free(d);
  }
  char big[100000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  char *d = zc_strdup(big);
  REQUIRE(d != NULL);
  CHECK(strlen(d) == sizeof big - 1 && memcmp(d, big, sizeof big) == 0);
  zc_free(d);
}

/* zc_owned_size: the usable size of a pointer into one of our blocks, 0 for anything else, never a report
 * (main checks that no error was counted). */
static void test_owned_size(void) {
  char local[64];
  CHECK(zc_owned_size(NULL) == 0);
  CHECK(zc_owned_size(local) == 0);
  static char global[64];
  CHECK(zc_owned_size(global) == 0);
  char *s = zc_malloc(100);
  REQUIRE(s != NULL);
  size_t us = zc_owned_size(s);
  CHECKF(us >= 100 && us == zc_usable_size(s), "owned %zu, usable %zu", us, zc_usable_size(s));
  CHECK(zc_owned_size(s + 10) == us - 10);
  zc_free(s);
  char *l = zc_malloc(1 << 20);
  REQUIRE(l != NULL);
  CHECK(zc_owned_size(l) >= (1 << 20));
  CHECK(zc_owned_size(l + 4096) == 0); /* interior of a large block */
  CHECK(zc_owned_size(l - 16) == 0);   /* its header */
  zc_free(l);
}

int main(void) {
  zc_stats_t st0, st1;
  zc_stats_get(&st0);
#ifndef ZC_TEST_PREFIXED
  test_override_active();
#endif
  test_malloc_zero_and_free_null();
  test_realloc_edges();
  test_realloc_contents();
  test_calloc();
  test_reallocarray();
  test_aligned();
  test_usable_and_sized();
  test_huge();
  test_strdup();
  test_owned_size();
#ifndef ZC_TEST_PREFIXED
  test_libc_aliases();
  test_libc_allocations();
#endif
  test_trim();
  zc_stats_get(&st1);
  CHECKF(st1.errors == st0.errors, "the allocator reported %llu error(s) during valid use",
         (unsigned long long)(st1.errors - st0.errors));
  return check_exit(NAME);
}
