/* A write after free onto the block at the head of a page's local free list is reported when malloc's
 * refill makes that list the free list and pops its head, and the block is never handed out.
 *
 * The owner frees one block x of a class (it goes on its page's local_free, as that list's only block) and
 * then writes over x's second word (the free tag) and, in the second case, its first (the link). malloc
 * of the class is called until the page's free list runs dry and the refill (zc_malloc_refill's cheap path
 * from local_free) takes local_free: the head, x, fails its pop check. Exactly one error must be reported
 * within 20000 mallocs and none of them may return x. Before the refill's dead store went, the head was
 * stored in the page's free list before the pop; now it is stored only when the pop check fails, for the
 * generic path to report and break the page: without that store the generic path found an empty free list
 * and local_free already cleared, took fresh blocks and reported nothing (x lost silently).
 *
 * Sizes 48 B and 3000 B (two small classes, each the test's only user). Run with ZCMEM_ABORT_ON_ERROR=0;
 * counts errors with zc_stats_get. Links zcmem_prefixed.
 */
#include "zc_test.h"
#include "zcmem.h"

#include <string.h>

#define MAX_MALLOCS 20000

static uint64_t errors(void) {
  zc_stats_t s;
  zc_stats_get(&s);
  return s.errors;
}

static void run(size_t size, int link_too) {
  static void *got[MAX_MALLOCS];
  void *keep = zc_malloc(size); /* the page stays in use */
  unsigned char *x = zc_malloc(size);
  REQUIRE(keep != NULL && x != NULL);
  zc_free(x);
  uint64_t junk = 0x4141414141414141ull;
  memcpy(x + 8, &junk, 8); /* the write after free: the tag */
  if (link_too) memcpy(x, &junk, 8);
  uint64_t e0 = errors();
  size_t n = 0;
  int handed = 0;
  while (n < MAX_MALLOCS && errors() == e0) {
    void *p = zc_malloc(size);
    REQUIRE(p != NULL);
    if (p == x) handed = 1;
    got[n++] = p;
  }
  CHECKF(errors() == e0 + 1, "size %zu%s: %llu errors reported within %zu mallocs, want 1", size,
         link_too ? " (link too)" : "", (unsigned long long)(errors() - e0), n);
  CHECKF(!handed, "size %zu%s: the overwritten free block %p was handed out", size, link_too ? " (link too)" : "",
         (void *)x);
  for (size_t i = 0; i < n; i++) zc_free(got[i]);
  zc_free(keep);
}

int main(void) {
  run(48, 0);
  run(3000, 0);
  run(48, 1);
  run(3000, 1);
  return check_exit("core_refill_head");
}
