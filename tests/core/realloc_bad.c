/* realloc of a pointer inside or off the start of a live block is reported and fails: NULL with errno =
 * EINVAL, no new block, the block it points into untouched and still live (docs/design.md, "Errors").
 *
 * Before, realloc took the usable size from p to its block's end (what malloc_usable_size answers for an
 * interior pointer of a small or medium block), copied that into a new block and only its free of p
 * reported: with ZCMEM_ABORT_ON_ERROR=0 the caller got a new block holding the wrong bytes while the old
 * one stayed live. Large blocks were already refused (their header knows where the block starts).
 *
 * Cases: small (16, 48, 3000 B), medium (20,000 and 60,000 B) and large (300 KiB, 8 MiB) blocks; pointers
 * 1, 8 and 16 bytes in and half-way in; a growing and a shrinking realloc of each; from the owner and from
 * another thread. Each call must add exactly one report (zc_stats errors), return NULL with EINVAL, leave
 * the bytes allocated as they were (owner) and the block's bytes as they were; a realloc of the block's start
 * then works. With ZCMEM_ABORT_ON_ERROR=1 (set in a child) the call prints one "zcmem: error:" line naming
 * the pointer and aborts.
 * Run with ZCMEM_ABORT_ON_ERROR=0; links zcmem_prefixed.
 */
#include "zc_test.h"
#include "zcmem.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>

static uint64_t errors(void) {
  zc_stats_t s;
  zc_stats_get(&s);
  return s.errors;
}
static uint64_t allocated(void) {
  zc_stats_t s;
  zc_stats_get(&s);
  return s.allocated;
}

static const size_t sizes[] = {16, 48, 3000, 20000, 60000, 300 << 10, (size_t)8 << 20};
#define NSIZES (sizeof sizes / sizeof sizes[0])

/* realloc(p + off, n) for a live block p of size bytes filled with pattern seed: reported once, NULL + EINVAL,
 * p's bytes untouched; with count_bytes, the allocated bytes unchanged (no new block kept). */
static void check_one(unsigned char *p, size_t size, size_t off, size_t n, unsigned seed, bool count_bytes,
                      const char *who) {
  uint64_t e0 = errors(), a0 = allocated();
  errno = 0;
  void *q = zc_realloc(p + off, n);
  int err = errno;
  uint64_t e1 = errors(), a1 = allocated();
  CHECKF(q == NULL, "%s: realloc(%zu-byte block + %zu, %zu) returned a block %p", who, size, off, n, q);
  CHECKF(err == EINVAL, "%s: realloc(%zu-byte block + %zu, %zu): errno %d, want EINVAL", who, size, off, n, err);
  CHECKF(e1 == e0 + 1, "%s: realloc(%zu-byte block + %zu, %zu) made %" PRIu64 " reports, want 1", who, size, off, n,
         e1 - e0);
  if (count_bytes)
    CHECKF(a1 == a0, "%s: realloc(%zu-byte block + %zu, %zu): allocated %" PRIu64 " -> %" PRIu64, who, size, off, n,
           a0, a1);
  CHECKF(verify_pattern(p, size, seed) == -1, "%s: realloc(%zu-byte block + %zu, %zu) changed the block's bytes", who,
         size, off, n);
  if (q != NULL) zc_free(q);
}

static void check_size(unsigned char *p, size_t size, unsigned seed, bool count_bytes, const char *who) {
  const size_t offs[] = {1, 8, 16, size / 2};
  for (unsigned o = 0; o < sizeof offs / sizeof offs[0]; o++) {
    if (offs[o] == 0 || offs[o] >= size) continue;
    check_one(p, size, offs[o], 2 * size, seed, count_bytes, who); /* grows: a new block */
    check_one(p, size, offs[o], 8, seed, count_bytes, who);        /* shrinks: would stay in place */
  }
}

typedef struct {
  unsigned char *blocks[NSIZES];
} job_t;
static void *remote_checks(void *arg) {
  job_t *j = arg;
  for (unsigned i = 0; i < NSIZES; i++) check_size(j->blocks[i], sizes[i], 100 + i, false, "another thread");
  return NULL;
}

/* The default: one line naming the pointer, then abort. */
static int abort_child(void *arg) {
  (void)arg;
  zc_option_set(zc_option_abort_on_error, 1);
  unsigned char *p = zc_malloc(48);
  REQUIRE(p != NULL);
  fprintf(stderr, "pointer %p\n", (void *)(p + 16));
  void *q = zc_realloc(p + 16, 100);
  fprintf(stderr, "realloc returned %p: no abort\n", q);
  return 0;
}

int main(void) {
  unsigned char *blocks[NSIZES];
  for (unsigned i = 0; i < NSIZES; i++) {
    blocks[i] = zc_malloc(sizes[i]);
    REQUIRE(blocks[i] != NULL);
    fill_pattern(blocks[i], sizes[i], i);
  }
  for (unsigned i = 0; i < NSIZES; i++) check_size(blocks[i], sizes[i], i, true, "owner");

  job_t j;
  for (unsigned i = 0; i < NSIZES; i++) {
    j.blocks[i] = zc_malloc(sizes[i]);
    REQUIRE(j.blocks[i] != NULL);
    fill_pattern(j.blocks[i], sizes[i], 100 + i);
  }
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, remote_checks, &j) == 0);
  REQUIRE(pthread_join(t, NULL) == 0);

  /* the blocks are still live: a realloc of their start keeps their bytes, a free is not reported */
  uint64_t e0 = errors();
  for (unsigned i = 0; i < NSIZES; i++) {
    unsigned char *q = zc_realloc(blocks[i], 3 * sizes[i]);
    CHECKF(q != NULL, "realloc of the %zu-byte block's start failed", sizes[i]);
    if (q == NULL) continue;
    CHECKF(verify_pattern(q, sizes[i], i) == -1, "realloc of the %zu-byte block's start lost its bytes", sizes[i]);
    zc_free(q);
    zc_free(j.blocks[i]);
  }
  CHECKF(errors() == e0, "the valid reallocs and frees after the bad ones made %" PRIu64 " reports", errors() - e0);

  child_result_t r = run_child(abort_child, NULL, 60);
  char buf[64], want[96];
  unsigned long long ptr = 0;
  const char *at = strstr(r.err, "pointer ");
  CHECKF(at != NULL && sscanf(at, "pointer %llx", &ptr) == 1, "the child did not print its pointer: %s", r.err);
  snprintf(want, sizeof want, "%#llx", ptr);
  CHECKF(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGABRT, "with ZCMEM_ABORT_ON_ERROR=1 the child ended with %s",
         status_str(r.status, buf, sizeof buf));
  CHECKF(count_lines_with_prefix(r.err, "zcmem: error:") == 1, "with ZCMEM_ABORT_ON_ERROR=1: %d error lines: %s",
         count_lines_with_prefix(r.err, "zcmem: error:"), r.err);
  const char *line = strstr(r.err, "zcmem: error:");
  CHECKF(line != NULL && strstr(line, "not the start of a block") != NULL && strstr(line, want) != NULL,
         "the report does not say \"not the start of a block\" and %s: %s", want, r.err);
  child_result_free(&r);
  return check_exit("core_realloc_bad");
}
