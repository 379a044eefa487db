/* Pointers outside the 48-bit address space the segment map covers are reported, never followed.
 *
 * A pointer with bits above bit 47 (a 57-bit address of 5-level paging, a 52-bit arm64 address, a kernel
 * address, garbage such as 0xdeadbeef00000000) is never zcmem's. The dangerous ones carry the low 48 bits
 * of a real block: folded onto the map entry of those low bits they look like a small or large block, and
 * following them dereferences a non-canonical address (SIGSEGV) or, worse, frees the real block. Each case
 * runs in a forked child (a crash is a failure, not the end of the test) with ZCMEM_ABORT_ON_ERROR=0:
 * free, free_sized, usable_size and realloc of each wild pointer must each add exactly one reported error,
 * realloc must return NULL with EINVAL, and the real block must keep its contents and still free cleanly.
 *
 * Prefixed API (zc_*), label sanitize. Args: none.
 */
#define _GNU_SOURCE
#include "check.h"
#include "zcmem.h"

static uint64_t errors_now(void) {
  zc_stats_t s;
  zc_stats_get(&s);
  return s.errors;
}

typedef struct {
  size_t size;   /* the real block's size: small, medium or large */
  uint64_t high; /* bits or'ed above bit 47 (0: a fixed garbage pointer instead) */
} wild_case_t;

static int run_wild(void *arg) {
  const wild_case_t *c = arg;
  unsigned char *p = zc_malloc(c->size);
  REQUIRE(p != NULL);
  for (size_t k = 0; k < c->size; k++) p[k] = (unsigned char)(k * 7 + 1);
  void *q = c->high ? (void *)((uintptr_t)p | c->high) : (void *)(uintptr_t)0xdeadbeef00000000ull;
  uint64_t e0 = errors_now();
  zc_free(q);
  CHECKF(errors_now() == e0 + 1, "free(%p): %lu errors reported, want 1", q, (unsigned long)(errors_now() - e0));
  zc_free_sized(q, c->size);
  CHECKF(errors_now() == e0 + 2, "free_sized(%p) not reported", q);
  CHECKF(zc_usable_size(q) == 0, "usable_size(%p) is not 0", q);
  CHECKF(errors_now() == e0 + 3, "usable_size(%p) not reported", q);
  errno = 0;
  void *r = zc_realloc(q, c->size + 100);
  CHECKF(r == NULL && errno == EINVAL, "realloc(%p) returned %p errno %d, want NULL/EINVAL", q, r, errno);
  CHECKF(errors_now() == e0 + 4, "realloc(%p) not reported", q);
  for (size_t k = 0; k < c->size; k++)
    if (p[k] != (unsigned char)(k * 7 + 1)) {
      CHECKF(0, "the real block %p changed at byte %zu after bad frees of %p", (void *)p, k, q);
      break;
    }
  CHECK(zc_usable_size(p) >= c->size);
  zc_free(p);
  CHECKF(errors_now() == e0 + 4, "the real block's free was reported");
  /* The allocator still works and hands p's memory out again, intact or not. */
  void *ps[64];
  for (int i = 0; i < 64; i++) REQUIRE((ps[i] = zc_malloc(c->size)) != NULL);
  for (int i = 0; i < 64; i++) zc_free(ps[i]);
  CHECK(errors_now() == e0 + 4);
  return check_failures ? 1 : 0;
}

int main(void) {
  setenv("ZCMEM_ABORT_ON_ERROR", "0", 1); /* report and go on, whatever the default */
  static const uint64_t highs[] = {
      (uint64_t)1 << 48,            /* just above the map */
      (uint64_t)0xf << 48,          /* arm64 52-bit VA */
      (uint64_t)1 << 56,            /* x86-64 5-level paging, 57-bit */
      (uint64_t)0xffff << 48,       /* kernel half */
      (uint64_t)0xdeadbeef00000000, /* garbage over a real low half */
      0,                            /* 0xdeadbeef00000000 itself */
  };
  static const size_t sizes[] = {64, 24 * 1024, 1 << 20};
  int n = 0;
  for (unsigned s = 0; s < sizeof sizes / sizeof *sizes; s++)
    for (unsigned h = 0; h < sizeof highs / sizeof *highs; h++) {
      wild_case_t c = {sizes[s], highs[h]};
      child_result_t r = run_child(run_wild, &c, 30);
      char st[64];
      int ok = WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0;
      CHECKF(ok, "block of %zu B, high bits 0x%llx: child ended with %s\n%s", c.size, (unsigned long long)c.high,
             status_str(r.status, st, sizeof st), r.err);
      if (ok && n++ == 0) printf("first report: %.*s\n", (int)strcspn(r.err, "\n"), r.err);
      child_result_free(&r);
    }
  return check_exit("core_wild");
}
