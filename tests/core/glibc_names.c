/* What a glibc program gets from the override beyond the malloc family (docs/design.md, "What is not built
 * yet"), and the error contract of the aligned entry points where it differs from glibc 2.36:
 *
 *   mallopt          zcmem's: accepted, returns 1, tunes nothing.
 *   mallinfo, mallinfo2, malloc_stats, malloc_info
 *                    not exported: glibc's run (no crash) and describe glibc's own arena, which zcmem's
 *                    blocks are not in (the 16 MiB this test holds do not show in uordblks).
 *   posix_memalign   a bad alignment (0, 3, 4, 24, 4096 + 8, 2^63 + 8) is EINVAL and an impossible size
 *                    ENOMEM, returned: *memptr untouched and errno unchanged (glibc sets errno too).
 *   aligned_alloc    an alignment that is not a power of two, 0 included, is NULL + EINVAL (C17, glibc 2.38;
 *                    glibc 2.36 rounds it up); memalign rounds it up as glibc does (0 serves as 1).
 * Linked with libzcmem.so.
 */
#define _GNU_SOURCE
#include "zc_test.h"

#include <malloc.h>

static size_t __attribute__((noinline)) opaque(size_t x) {
  __asm__ volatile("" : "+r"(x));
  return x;
}

/* 1 if the function named sym is defined by the same object as malloc (zcmem). */
static int from_zcmem(const char *sym) {
  Dl_info a, b;
  void *f = dlsym(RTLD_DEFAULT, sym), *m = dlsym(RTLD_DEFAULT, "malloc");
  return f && m && dladdr(f, &a) && dladdr(m, &b) && a.dli_fbase == b.dli_fbase;
}

int main(void) {
  REQUIREF(is_zcmem_malloc(), "malloc resolves to %s, not zcmem", malloc_owner());

  CHECKF(from_zcmem("mallopt"), "mallopt is not zcmem's");
  CHECKF(mallopt(M_ARENA_MAX, 1) == 1 && mallopt(M_MMAP_THRESHOLD, 1 << 20) == 1, "mallopt did not return 1");

  enum { N = 16 };
  void *held[N];
  for (int i = 0; i < N; i++) {
    held[i] = malloc((size_t)1 << 20);
    REQUIRE(held[i] != NULL);
    memset(held[i], i, 4096);
  }
  static const char *const glibc_only[] = {"mallinfo", "mallinfo2", "malloc_stats", "malloc_info"};
  for (unsigned i = 0; i < sizeof glibc_only / sizeof glibc_only[0]; i++)
    CHECKF(!from_zcmem(glibc_only[i]), "%s is exported by zcmem now: update docs/design.md and this test",
           glibc_only[i]);
  struct mallinfo2 mi2 = mallinfo2();
  CHECKF(mi2.uordblks < ((size_t)16 << 20), "mallinfo2 counts %zu bytes in use: zcmem's blocks in glibc's arena?",
         mi2.uordblks);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  struct mallinfo mi = mallinfo(); /* deprecated by glibc, still called by old programs */
#pragma GCC diagnostic pop
  CHECKF(mi.uordblks >= 0 && (size_t)mi.uordblks < ((size_t)16 << 20), "mallinfo counts %d bytes in use", mi.uordblks);
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  REQUIRE(f != NULL);
  CHECKF(malloc_info(0, f) == 0, "malloc_info failed");
  fclose(f);
  CHECKF(buf != NULL && strstr(buf, "<malloc") != NULL, "malloc_info wrote no report");
  free(buf);
  int saved = dup(2);
  int devnull = open("/dev/null", O_WRONLY);
  REQUIRE(saved >= 0 && devnull >= 0);
  dup2(devnull, 2);
  malloc_stats(); /* glibc's report on stderr: must not crash */
  dup2(saved, 2);
  close(saved);
  close(devnull);
  for (int i = 0; i < N; i++) {
    CHECKF(((unsigned char *)held[i])[4095] == (unsigned char)i, "block %d changed", i);
    free(held[i]);
  }

  static const size_t bad_align[] = {0, 3, 4, 24, 4096 + 8, ((size_t)1 << 63) + 8};
  for (unsigned i = 0; i < sizeof bad_align / sizeof bad_align[0]; i++) {
    void *out = &out;
    errno = 1234;
    int rc = posix_memalign(&out, opaque(bad_align[i]), 64);
    CHECKF(rc == EINVAL && out == &out && errno == 1234,
           "posix_memalign(align %zu): %d, *memptr %s, errno %d; want EINVAL, untouched, unchanged", bad_align[i], rc,
           out == &out ? "untouched" : "changed", errno);
  }
  static const size_t huge[] = {SIZE_MAX, SIZE_MAX - 4096, (size_t)PTRDIFF_MAX + 1, (size_t)1 << 48};
  for (unsigned i = 0; i < sizeof huge / sizeof huge[0]; i++) {
    void *out = &out;
    errno = 1234;
    int rc = posix_memalign(&out, 64, opaque(huge[i]));
    CHECKF(rc == ENOMEM && out == &out && errno == 1234,
           "posix_memalign(64, %zu): %d, *memptr %s, errno %d; want ENOMEM, untouched, unchanged", huge[i], rc,
           out == &out ? "untouched" : "changed", errno);
  }
  errno = 0;
  void *p = aligned_alloc(opaque(0), 16);
  CHECKF(p == NULL && errno == EINVAL, "aligned_alloc(0, 16) = %p errno %d, want NULL and EINVAL", p, errno);
  free(p);
  p = memalign(opaque(0), 16);
  CHECKF(p != NULL, "memalign(0, 16) = NULL errno %d", errno);
  free(p);
  p = memalign(opaque(48), 16);
  CHECKF(p != NULL && ((uintptr_t)p & 63) == 0, "memalign(48, 16) = %p: not rounded up to 64", p);
  free(p);
  return check_exit("core_glibc_names");
}
