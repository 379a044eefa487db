/* Tests of the pool's clearing order and its later API (issue 10, items 4-6): cleanups that create children,
 * register cleanups, or reset/destroy their own pool during a reset or destroy; cleanup_kill and
 * cleanup_run; memdup, strndup and printf; memory given back (kept blocks purged after the purge delay,
 * trim) with resident in the stats and the process RSS as the proof. */
#include "zcmem_pool.h"
#include "check.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static char order[64];
static int norder;
static void note(void *arg) { order[norder++] = (char)(uintptr_t)arg; }

static zc_pool_stats_t stats(const zc_pool_t *p) {
  zc_pool_stats_t s;
  zc_pool_stats(p, &s);
  return s;
}

/* A cleanup that makes a child of its pool and gives the child a cleanup of its own. */
static void make_child(void *arg) {
  zc_pool_t *pool = arg;
  zc_pool_t *c = zc_pool_create(pool, NULL);
  CHECK(c != NULL);
  CHECK(zc_pool_alloc(c, 100) != NULL);
  zc_pool_cleanup_add(c, note, (void *)'k');
  zc_pool_cleanup_add(pool, note, (void *)'n'); /* and one more cleanup on the pool being cleared */
  note((void *)'m');
}

static void destroy_self(void *arg) {
  note((void *)'d');
  zc_pool_destroy(arg);
}
static void reset_self(void *arg) {
  note((void *)'r');
  zc_pool_reset(arg);
}
static void destroy_other(void *arg) {
  note((void *)'o');
  zc_pool_destroy(arg);
}
static void alloc_in(void *arg) {
  char *p = zc_pool_alloc(arg, 3000);
  CHECK(p != NULL);
  if (p) memset(p, 1, 3000);
  note((void *)'a');
}

static void test_clear_order(void) {
  /* reset: the child created by a cleanup is destroyed in the same reset, its cleanup runs, and the
   * cleanup the first one registered runs too */
  zc_pool_t *root = zc_pool_create(NULL, NULL);
  zc_pool_cleanup_add(root, make_child, root);
  norder = 0;
  zc_pool_reset(root);
  order[norder] = 0;
  CHECK(strcmp(order, "mkn") == 0);
  zc_pool_stats_t s = stats(root);
  CHECK_EQ(s.children, 0);
  CHECK_EQ(s.tree_held, s.held); /* the child's block is gone from the tree */
  /* destroy: the same, nothing left behind (ASan/valgrind would see a leak or a use after free) */
  zc_pool_cleanup_add(root, make_child, root);
  norder = 0;
  zc_pool_destroy(root);
  order[norder] = 0;
  CHECK(strcmp(order, "mkn") == 0);

  /* a cleanup that destroys (or resets) its own pool: refused and reported, the clear goes on */
  root = zc_pool_create(NULL, NULL);
  zc_pool_t *child = zc_pool_create(root, NULL);
  zc_pool_cleanup_add(child, destroy_self, child);
  zc_pool_cleanup_add(child, reset_self, child);
  zc_pool_cleanup_add(child, destroy_self, root); /* an ancestor that is being destroyed */
  norder = 0;
  CHECK_REPORTS(3, zc_pool_destroy(root));
  order[norder] = 0;
  CHECK(strcmp(order, "drd") == 0);

  root = zc_pool_create(NULL, NULL);
  zc_pool_cleanup_add(root, reset_self, root);
  norder = 0;
  CHECK_REPORTS(1, zc_pool_reset(root));
  CHECK_EQ(stats(root).resets, 1);
  CHECK(zc_pool_alloc(root, 10) != NULL); /* still a sound pool */

  /* a cleanup may destroy another pool (a sibling) and allocate from its own pool */
  zc_pool_t *b = zc_pool_create(root, NULL), *a = zc_pool_create(root, NULL); /* a is destroyed first */
  zc_pool_cleanup_add(a, destroy_other, b);
  zc_pool_cleanup_add(root, alloc_in, root);
  norder = 0;
  unsigned long before = zc_error_count();
  zc_pool_destroy(root);
  order[norder] = 0;
  CHECK_EQ(zc_error_count() - before, 0);
  CHECK(strcmp(order, "oa") == 0); /* b destroyed by a's cleanup, once */
}

static void test_cleanup_kill_run(void) {
  zc_pool_t *p = zc_pool_create(NULL, NULL);
  zc_pool_cleanup_add(p, note, (void *)'1');
  zc_pool_cleanup_add(p, note, (void *)'2');
  zc_pool_cleanup_add(p, note, (void *)'3');
  zc_pool_cleanup_add(p, note, (void *)'2');
  norder = 0;
  CHECK_EQ(zc_pool_cleanup_kill(p, note, (void *)'3'), 0);
  errno = 0;
  CHECK(zc_pool_cleanup_kill(p, note, (void *)'3') == -1 && errno == ENOENT);
  CHECK_EQ(zc_pool_cleanup_run(p, note, (void *)'2'), 0); /* the most recent '2' */
  CHECK_EQ(norder, 1);
  errno = 0;
  CHECK(zc_pool_cleanup_run(p, note, (void *)'9') == -1 && errno == ENOENT);
  errno = 0;
  CHECK(zc_pool_cleanup_kill(NULL, note, NULL) == -1 && errno == EINVAL);
  zc_pool_destroy(p);
  order[norder] = 0;
  CHECK(strcmp(order, "221") == 0); /* run now: '2'; at destroy: the older '2', then '1' */
}

static void test_dup_printf(void) {
  zc_pool_config_t cfg = {.block_size = 4096};
  zc_pool_t *p = zc_pool_create(NULL, &cfg);
  const char bytes[5] = {1, 0, 2, 0, 3};
  char *m = zc_pool_memdup(p, bytes, 5);
  CHECK(m && memcmp(m, bytes, 5) == 0);
  CHECK(zc_pool_memdup(p, NULL, 0) != NULL);
  errno = 0;
  CHECK(zc_pool_memdup(p, NULL, 3) == NULL && errno == EINVAL);
  char *s = zc_pool_strndup(p, "hello world", 5);
  CHECK(s && strcmp(s, "hello") == 0);
  CHECK(strcmp(zc_pool_strndup(p, "ab", 10), "ab") == 0);
  /* printf: small, near the end of a block (the text must survive a block change), and larger than a
   * block */
  char *f = zc_pool_printf(p, "%s-%d-%x", "id", 42, 255);
  CHECK(f && strcmp(f, "id-42-ff") == 0);
  for (int i = 0; i < 400; i++) {
    char *g = zc_pool_printf(p, "n=%03d", i % 1000); /* 5 chars + NUL: 16 bytes, blocks change often */
    char want[16];
    snprintf(want, sizeof want, "n=%03d", i % 1000);
    CHECK(g && strcmp(g, want) == 0);
    if (i % 7 == 0) CHECK(zc_pool_alloc(p, 7 + (size_t)i % 13) != NULL); /* move the bump to every offset */
  }
  char big[6000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  char *h = zc_pool_printf(p, "<%s>", big);
  CHECK(h && strlen(h) == sizeof big + 1 && h[0] == '<' && h[sizeof big] == '>');
  errno = 0;
  CHECK(zc_pool_printf(NULL, "x") == NULL && errno == EINVAL);
  CHECK(strcmp(f, "id-42-ff") == 0 && memcmp(m, bytes, 5) == 0); /* nothing overwritten */
  zc_pool_destroy(p);
}

/* Kept blocks are purged once idle for the purge delay (at the next reset) or by trim; resident says so,
 * and the process RSS shows it. */
static void fill_blocks(zc_pool_t *p, int n) {
  for (int i = 0; i < 4 * n; i++) { /* 4 per 64 KiB block: not large requests (above a quarter block) */
    char *x = zc_pool_alloc(p, 15000);
    CHECK(x != NULL);
    if (x) memset(x, 7, 15000);
  }
}

static void test_memory_return(void) {
  long delay = zc_option_get(zc_option_purge_delay);
  zc_pool_config_t cfg = {.retain = SIZE_MAX};
  /* an hour's delay: a reset keeps the blocks resident; trim gives them back */
  zc_option_set(zc_option_purge_delay, 3600000);
  zc_pool_t *p = zc_pool_create(NULL, &cfg);
  fill_blocks(p, 128); /* 8 MiB */
  zc_pool_reset(p);
  zc_pool_stats_t s = stats(p);
  CHECK_EQ(s.resident, s.held);
  long before = rss_kib();
  zc_pool_trim(p);
  long after = rss_kib();
  if (!(before - after > 6 * 1024)) fprintf(stderr, "rss before %ld after %ld\n", before, after);
  CHECK(before - after > 6 * 1024);
  s = stats(p);
  CHECK(s.held - s.resident >= 127 * (60u << 10));
  uint64_t blocks = s.blocks;
  fill_blocks(p, 128); /* reused (no new mapping), faulted back in */
  s = stats(p);
  CHECK_EQ(s.resident, s.held);
  CHECK_EQ(s.blocks, blocks);
  zc_pool_destroy(p);

  /* no delay: the blocks kept by one reset are purged at the next reset if still unused */
  zc_option_set(zc_option_purge_delay, 0);
  p = zc_pool_create(NULL, &cfg);
  fill_blocks(p, 64);
  before = rss_kib();
  zc_pool_reset(p);
  CHECK(zc_pool_alloc(p, 10) != NULL);
  zc_pool_reset(p);
  after = rss_kib();
  s = stats(p);
  CHECK(s.held - s.resident >= 63 * (60u << 10));
  CHECK(before - after > 3 * 1024);
  zc_pool_destroy(p);
  zc_option_set(zc_option_purge_delay, delay);

  /* one 8 MiB block: after a reset, trim gives back the first block's unused rest */
  zc_pool_config_t one = {.block_size = 8u << 20};
  p = zc_pool_create(NULL, &one);
  for (int i = 0; i < 7 * 64; i++) {
    char *x = zc_pool_alloc(p, 16000);
    CHECK(x != NULL);
    if (x) memset(x, 3, 16000);
  }
  CHECK_EQ(stats(p).blocks, 1);
  zc_pool_reset(p);
  before = rss_kib();
  zc_pool_trim(p);
  after = rss_kib();
  CHECK(before - after > 6 * 1024);
  char *x = zc_pool_calloc(p, 1, 1u << 20);
  CHECK(x != NULL && x[(1u << 20) - 1] == 0); /* faulted back in */
  zc_pool_destroy(p);
}

int main(void) {
  test_clear_order();
  test_cleanup_kill_run();
  test_dup_printf();
  test_memory_return();
  TEST_DONE("test_pool_api");
}
