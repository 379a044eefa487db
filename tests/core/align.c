/* Alignment of every small request: malloc(n), calloc(1, n) and realloc (growing one block through every
 * size, and a fresh realloc(NULL, n)) return 16-aligned memory for every n in 1..65536 (at least 16 is
 * required from n >= 16; zcmem gives it to all, C23 7.24.3: the block must suit any object of fundamental alignment that fits; max_align_t is 16
 * bytes on x86-64 and arm64). Several blocks of each size are taken so that more than one slot of a page is
 * seen. Built twice: against the prefixed API (zc_*) and against the override (plain malloc, libzcmem.so).
 */
#include "check.h"

#ifdef ZC_TEST_PREFIXED
#include "zcmem.h"
#define M zc_malloc
#define C zc_calloc
#define R zc_realloc
#define F zc_free
#else
#define M malloc
#define C calloc
#define R realloc
#define F free
#endif

static int bad;

static void check_ptr(void *p, size_t n, const char *what) {
  size_t want = 16;
  if (p == NULL || ((uintptr_t)p & (want - 1)) != 0) {
    if (bad++ < 20) fprintf(stderr, "%s(%zu) = %p: not %zu-aligned\n", what, n, p, want);
    check_failures++;
  }
}

int main(void) {
  enum { K = 3 };
  for (size_t n = 1; n <= 65536; n++) {
    void *p[K], *q[K];
    for (int k = 0; k < K; k++) {
      p[k] = M(n);
      check_ptr(p[k], n, "malloc");
      q[k] = C(1, n);
      check_ptr(q[k], n, "calloc");
    }
    for (int k = 0; k < K; k++) {
      F(p[k]);
      F(q[k]);
    }
    void *r = R(NULL, n);
    check_ptr(r, n, "realloc(NULL)");
    F(r);
  }
  void *g = NULL; /* one block grown and shrunk through every size */
  for (size_t n = 1; n <= 65536; n++) {
    g = R(g, n);
    check_ptr(g, n, "realloc(grow)");
  }
  for (size_t n = 65536; n >= 1; n--) {
    g = R(g, n);
    check_ptr(g, n, "realloc(shrink)");
  }
  F(g);
  printf("align: malloc, calloc and realloc of every size 1..65536: %d misaligned\n", bad);
  return check_exit("core_align");
}
