/* Unit tests of the pool (include/zcmem_pool.h): bump allocation and alignment, large requests, reset
 * and retained blocks, destroy with children and grandchildren, cleanup order, memory limits (own and an
 * ancestor's), OS failure, stats. */
#include "zcmem_pool.h"
#include "check.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

static char order[64];
static int norder;
static void note(void *arg) { order[norder++] = (char)(uintptr_t)arg; }

static void test_basic(void) {
  zc_pool_t *p = zc_pool_create(NULL, NULL);
  CHECK(p != NULL);
  char *a = zc_pool_alloc(p, 10), *b = zc_pool_alloc(p, 1), *z = zc_pool_alloc(p, 0);
  CHECK(a && b && z);
  CHECK(((uintptr_t)a & 15) == 0 && ((uintptr_t)b & 15) == 0 && ((uintptr_t)z & 15) == 0);
  CHECK(b >= a + 10 && z >= b + 1 && a != b && b != z);
  memset(a, 0xaa, 10);
  memset(b, 0xbb, 1);
  CHECK(a[9] == (char)0xaa && b[0] == (char)0xbb);
  zc_pool_stats_t s;
  zc_pool_stats(p, &s);
  CHECK_EQ(s.allocs, 3);
  CHECK_EQ(s.in_use, 48);
  CHECK_EQ(s.blocks, 1);
  CHECK_EQ(s.held, 64 << 10);
  char *d = zc_pool_strdup(p, "hello");
  CHECK(d && strcmp(d, "hello") == 0);
  for (size_t al = 32; al <= 8192; al *= 2) {
    char *x = zc_pool_alloc_aligned(p, al, 24);
    CHECK(x != NULL && ((uintptr_t)x & (al - 1)) == 0);
  }
  errno = 0;
  CHECK(zc_pool_alloc_aligned(p, 48, 8) == NULL && errno == EINVAL);
  /* 4 KiB blocks with a 4 KiB alignment: the object cannot sit in a block after its header */
  zc_pool_config_t small = {.block_size = 4096};
  zc_pool_t *sp = zc_pool_create(NULL, &small);
  for (int i = 0; i < 4; i++) {
    char *x = zc_pool_alloc_aligned(sp, 4096, 512);
    CHECK(x != NULL && ((uintptr_t)x & 4095) == 0);
    if (x) memset(x, 0x11, 512);
  }
  zc_pool_destroy(sp);
  errno = 0;
  CHECK(zc_pool_alloc(p, SIZE_MAX) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(zc_pool_calloc(p, SIZE_MAX / 2, 4) == NULL && errno == ENOMEM);
  zc_pool_destroy(p);
  zc_pool_destroy(NULL);
  zc_pool_reset(NULL);
  errno = 0;
  CHECK(zc_pool_alloc(NULL, 8) == NULL && errno == EINVAL);
  errno = 0;
  CHECK(zc_pool_cleanup_add(NULL, note, NULL) == -1 && errno == EINVAL);
  zc_pool_config_t bad = {.block_size = 3000};
  errno = 0;
  CHECK(zc_pool_create(NULL, &bad) == NULL && errno == EINVAL);
}

/* Objects stay distinct and intact across many blocks; large requests get their own block. */
static void test_blocks_and_large(void) {
  zc_pool_config_t cfg = {.block_size = 16 << 10};
  zc_pool_t *p = zc_pool_create(NULL, &cfg);
  unsigned char *obj[400];
  for (int i = 0; i < 400; i++) {
    obj[i] = zc_pool_alloc(p, 200);
    CHECK(obj[i] != NULL);
    memset(obj[i], i & 0xff, 200);
  }
  for (int i = 0; i < 400; i++) CHECK(obj[i][0] == (i & 0xff) && obj[i][199] == (i & 0xff));
  zc_pool_stats_t s;
  zc_pool_stats(p, &s);
  CHECK(s.blocks >= 400 * 208 / (16 << 10) + 1);
  CHECK_EQ(s.large, 0);
  /* above a quarter of a 16 KiB block: in the current block if it fits there, else a block of its own */
  zc_pool_t *q = zc_pool_create(NULL, &cfg);
  char *mid = zc_pool_alloc(q, 5000);
  zc_pool_stats_t qs;
  zc_pool_stats(q, &qs);
  CHECK(mid != NULL && qs.large == 0 && qs.blocks == 1);
  char *big = zc_pool_alloc(q, 12000);
  CHECK(big != NULL);
  memset(big, 1, 12000);
  zc_pool_stats(q, &qs);
  CHECK(qs.large == 1 && qs.blocks == 2);
  zc_pool_destroy(q);
  big = zc_pool_alloc(p, 20000); /* larger than a block: always its own */
  CHECK(big != NULL);
  char *huge = zc_pool_alloc_aligned(p, 1 << 16, 100); /* aligned above the OS page: own block too */
  CHECK(huge != NULL && ((uintptr_t)huge & 0xffff) == 0);
  zc_pool_stats(p, &s);
  CHECK_EQ(s.large, 2);
  uint64_t blocks_before = s.blocks;
  zc_pool_reset(p);
  zc_pool_stats(p, &s);
  CHECK_EQ(s.large, 0);
  CHECK_EQ(s.in_use, 0);
  CHECK_EQ(s.resets, 1);
  /* retain defaults to 4 blocks: first block + 4 spares remain */
  CHECK_EQ(s.blocks, 5);
  CHECK(blocks_before > 5);
  CHECK_EQ(s.held, 5 * (16 << 10));
  /* after reset, memory is reused: calloc must still give zeros on a dirty spare block */
  for (int i = 0; i < 100; i++) {
    unsigned char *c = zc_pool_calloc(p, 50, 4);
    CHECK(c != NULL);
    int nz = 0;
    for (int j = 0; j < 200; j++) nz |= c[j];
    CHECK(nz == 0);
    memset(c, 0xff, 200);
  }
  zc_pool_stats(p, &s);
  CHECK_EQ(s.blocks, 5); /* spares were reused, nothing new mapped */
  zc_pool_destroy(p);
}

/* Cleanups run in reverse order of registration; children go first (deepest first), then own cleanups. */
static void test_children_and_cleanups(void) {
  norder = 0;
  zc_pool_t *root = zc_pool_create(NULL, NULL);
  zc_pool_t *c1 = zc_pool_create(root, NULL), *c2 = zc_pool_create(root, NULL);
  zc_pool_t *g = zc_pool_create(c1, NULL);
  CHECK(c1 && c2 && g);
  CHECK(zc_pool_parent(g) == c1 && zc_pool_parent(c1) == root && zc_pool_parent(root) == NULL);
  zc_pool_stats_t s;
  zc_pool_stats(root, &s);
  CHECK_EQ(s.children, 2);
  CHECK_EQ(s.tree_held, 4 * (64 << 10));
  zc_pool_cleanup_add(root, note, (void *)'a');
  zc_pool_cleanup_add(root, note, (void *)'b');
  zc_pool_cleanup_add(c1, note, (void *)'c');
  zc_pool_cleanup_add(g, note, (void *)'g');
  zc_pool_cleanup_add(g, note, (void *)'h');
  zc_pool_cleanup_add(c2, note, (void *)'d');
  CHECK(zc_pool_alloc(g, 100000) != NULL); /* a large block in the grandchild: charged up the tree */
  zc_pool_stats(root, &s);
  CHECK(s.tree_held > 4 * (64 << 10) + 100000);
  /* destroying a child detaches it and runs only its subtree's cleanups */
  zc_pool_destroy(c2);
  CHECK(norder == 1 && order[0] == 'd');
  zc_pool_stats(root, &s);
  CHECK_EQ(s.children, 1);
  zc_pool_reset(root); /* takes c1 and g; root stays usable */
  order[norder] = 0;
  CHECK(strcmp(order, "dhgcba") == 0);
  if (strcmp(order, "dhgcba") != 0) fprintf(stderr, "cleanup order was %s\n", order);
  zc_pool_stats(root, &s);
  CHECK_EQ(s.children, 0);
  CHECK_EQ(s.tree_held, s.held);
  CHECK(zc_pool_alloc(root, 10) != NULL);
  /* reset ran the cleanups once: a second destroy runs only new ones */
  norder = 0;
  zc_pool_cleanup_add(root, note, (void *)'x');
  zc_pool_t *c3 = zc_pool_create(root, NULL);
  zc_pool_cleanup_add(c3, note, (void *)'y');
  zc_pool_destroy(root);
  order[norder] = 0;
  CHECK(strcmp(order, "yx") == 0);
  errno = 0;
  CHECK(zc_pool_cleanup_add(c1 = zc_pool_create(NULL, NULL), NULL, NULL) == -1 && errno == EINVAL);
  zc_pool_destroy(c1);
}

static void test_limit(void) {
  zc_pool_config_t cfg = {.block_size = 16 << 10, .limit = 64 << 10};
  zc_pool_t *p = zc_pool_create(NULL, &cfg);
  CHECK(p != NULL);
  size_t got = 0;
  for (;;) {
    void *x = zc_pool_alloc(p, 1000);
    if (x == NULL) {
      CHECK(errno == ENOMEM);
      break;
    }
    got += 1008;
    if (got > (1 << 20)) break;
  }
  CHECK(got > 40 << 10 && got <= 64 << 10);
  zc_pool_stats_t s;
  zc_pool_stats(p, &s);
  CHECK(s.held <= 64 << 10);
  errno = 0;
  CHECK(zc_pool_alloc(p, 20000) == NULL && errno == ENOMEM); /* large block refused too */
  /* a child is charged to the parent: parent full, so a child cannot even be created */
  errno = 0;
  CHECK(zc_pool_create(p, NULL) == NULL && errno == ENOMEM);
  zc_pool_reset(p); /* spares kept: 3 of them */
  zc_pool_stats(p, &s);
  CHECK(s.held <= 64 << 10);
  zc_pool_destroy(p);

  /* a parent's limit caps its child's growth */
  zc_pool_config_t pc = {.block_size = 16 << 10, .limit = 128 << 10};
  zc_pool_t *parent = zc_pool_create(NULL, &pc);
  zc_pool_config_t cc = {.block_size = 16 << 10};
  zc_pool_t *child = zc_pool_create(parent, &cc);
  size_t n = 0;
  while (zc_pool_alloc(child, 4000) != NULL && n < 1000) n++;
  CHECK(n > 0 && n < 1000);
  zc_pool_stats(parent, &s);
  CHECK(s.tree_held <= 128 << 10);
  zc_pool_destroy(child);
  zc_pool_stats(parent, &s);
  CHECK_EQ(s.tree_held, 16 << 10);
  zc_pool_destroy(parent);

  zc_pool_config_t tiny = {.block_size = 16 << 10, .limit = 8 << 10};
  errno = 0;
  CHECK(zc_pool_create(NULL, &tiny) == NULL && errno == ENOMEM);
}

static void test_os_failure(void) {
  zc_pool_t *p = zc_pool_create(NULL, NULL);
  zc_os_fail_after(0);
  errno = 0;
  void *x = zc_pool_alloc(p, 100000);
  CHECK(x == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(zc_pool_create(p, NULL) == NULL && errno == ENOMEM);
  zc_os_fail_after(-1);
  zc_pool_stats_t s;
  zc_pool_stats(p, &s);
  CHECK_EQ(s.tree_held, 64 << 10); /* failed mappings left no charge behind */
  CHECK_EQ(s.children, 0);
  CHECK(zc_pool_alloc(p, 100000) != NULL);
  zc_pool_destroy(p);
}

int main(void) {
  test_basic();
  test_blocks_and_large();
  test_children_and_cleanups();
  test_limit();
  test_os_failure();
  TEST_DONE("test_pool");
}
