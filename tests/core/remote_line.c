/* The remote line (src/types.h): another thread's free checks a block against copies of its page's start,
 * grid, limit, key and tag kept on a cache line of their own, which the owner writes when the page is set up
 * (zc_page_publish), extended or broken (zc_page_set_span). Stale copies would reject good frees or accept
 * bad ones; this test makes the copies change and frees through them from another thread.
 *
 *   1. extend: the owner takes N1 blocks of 48 B (each page is carved 4 KiB at a time, so the limit copy
 *      changes many times); another thread frees every one. No report; the remote-free count grows by
 *      exactly N1, in no more hand-overs than blocks; the owner then takes N1 blocks again and they are all
 *      distinct (a block that came back twice would be handed out twice).
 *   2. reuse by another class: every block is free, the owner collects (its pages go back to their
 *      segments) and takes N2 blocks of 80 B; some must land on a 64 KiB page that held 48 B blocks (the
 *      page was set up again for the new class). Another thread frees one such block at +48 (a block start
 *      on the old grid, inside a block on the new one): exactly one report. Then it frees every 80 B block:
 *      no other report.
 *   3. the same page: one of its blocks is freed twice by another thread: exactly one more report (the tag
 *      copy is the new one: a stale tag would let the second free through, or make the owner break the page).
 * Runs with ZCMEM_ABORT_ON_ERROR=0 (set before the first call) and counts reports in zc_stats_get's errors.
 * Prefixed API (zc_malloc/zc_free).
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"

#include <pthread.h>
#include <stdlib.h>

enum { N1 = 5000, N2 = 3000 };
static void *a[N1], *b[N2];

typedef struct {
  void **v;
  size_t n;
  size_t off; /* free v[i] + off */
  int twice;  /* free v[0] twice */
} job_t;

static void *freer(void *arg) {
  job_t *j = arg;
  for (size_t i = 0; i < j->n; i++) zc_free((char *)j->v[i] + j->off);
  if (j->twice) {
    zc_free(j->v[0]);
    zc_free(j->v[0]);
  }
  zc_thread_done(); /* hands the pending chain over */
  return NULL;
}

static void in_thread(void **v, size_t n, size_t off, int twice) {
  pthread_t t;
  job_t j = {v, n, off, twice};
  REQUIRE(pthread_create(&t, NULL, freer, &j) == 0);
  REQUIRE(pthread_join(t, NULL) == 0);
}

static zc_stats_t stats(void) {
  zc_stats_t s;
  zc_stats_get(&s);
  return s;
}

static int cmp_ptr(const void *x, const void *y) {
  uintptr_t p = *(const uintptr_t *)x, q = *(const uintptr_t *)y;
  return p < q ? -1 : p > q;
}

/* The owner takes n blocks of size bytes into v (after blocks came back from another thread, so its pages'
 * thread_free stacks are taken and popped, each pop checking the block's tag): all must be distinct. */
static void take_again(void **v, size_t n, size_t size) {
  uintptr_t *seen = malloc(sizeof(uintptr_t) * n);
  REQUIRE(seen != NULL);
  for (size_t i = 0; i < n; i++) {
    v[i] = zc_malloc(size);
    REQUIRE(v[i] != NULL);
    memset(v[i], 0x3C, size);
    seen[i] = (uintptr_t)v[i];
  }
  qsort(seen, n, sizeof seen[0], cmp_ptr);
  size_t dups = 0;
  for (size_t i = 1; i < n; i++) dups += seen[i] == seen[i - 1];
  CHECK(dups == 0);
  free(seen);
}

int main(void) {
  setenv("ZCMEM_ABORT_ON_ERROR", "0", 1);
  setenv("ZCMEM_BACKGROUND", "0", 1); /* no purger thread: nothing but this test moves the pages */

  /* a live block of another class keeps the segment in use (an empty one may be given back, and the 80 B
   * pages taken from another segment) */
  void *keep = zc_malloc(1000);
  REQUIRE(keep != NULL);

  /* 1. blocks carved over many extends, all freed by another thread */
  for (int i = 0; i < N1; i++) {
    a[i] = zc_malloc(48);
    REQUIRE(a[i] != NULL);
    memset(a[i], 0xA5, 48);
  }
  zc_stats_t s0 = stats();
  in_thread(a, N1, 0, 0);
  zc_stats_t s1 = stats();
  CHECK(s1.errors == s0.errors);
  CHECK(s1.remote_frees - s0.remote_frees == N1);
  CHECK(s1.remote_batches - s0.remote_batches >= 1 && s1.remote_batches - s0.remote_batches <= N1);
  uint64_t pages48[64]; /* 64 KiB pages that held 48 B blocks (a handful: N1 * 48 B is under 4 pages) */
  size_t npages48 = 0;
  for (int i = 0; i < N1; i++) {
    uintptr_t pg = (uintptr_t)a[i] >> 16;
    size_t k = 0;
    while (k < npages48 && pages48[k] != pg) k++;
    if (k == npages48 && npages48 < 64) pages48[npages48++] = pg;
  }
  take_again(a, N1, 48);
  CHECK(stats().errors == s0.errors);

  /* 2. the pages set up again for 80 B blocks */
  for (int i = 0; i < N1; i++) zc_free(a[i]);
  zc_collect(false); /* the emptied pages go back to the segment */
  /* on_old: an 80 B block on a page that held 48 B blocks, at an offset from the page's start that is a
   * multiple of 240 and inside the first 4 KiB (carved in both lives): on_old + 48 is then a block start on
   * the page's old 48 B grid, and inside an 80 B block on the new one. Page 0 of a segment (its start is
   * after the segment header) is skipped, so the start is the 64 KiB boundary. */
  void *on_old = NULL;
  for (int i = 0; i < N2; i++) {
    b[i] = zc_malloc(80);
    REQUIRE(b[i] != NULL);
    memset(b[i], 0x5A, 80);
    uintptr_t off = (uintptr_t)b[i] & 0xFFFF;
    if (((uintptr_t)b[i] & 0x3FFFFF) < 0x10000 || off == 0 || off % 240 != 0 || off >= 4096) continue;
    for (size_t k = 0; on_old == NULL && k < npages48; k++)
      if ((uintptr_t)b[i] >> 16 == pages48[k]) on_old = b[i];
  }
  REQUIRE(on_old != NULL); /* else no page was reused and part 2 would test nothing */
  zc_stats_t s2 = stats();
  void *inner = on_old;
  in_thread(&inner, 1, 48, 0);
  zc_stats_t s3 = stats();
  CHECK(s3.errors - s2.errors == 1);
  CHECK(s3.remote_frees == s2.remote_frees);
  in_thread(b, N2, 0, 0);
  zc_stats_t s4 = stats();
  CHECK(s4.errors == s3.errors);
  CHECK(s4.remote_frees - s3.remote_frees == N2);
  take_again(b, N2, 80); /* every pop checks the tag the remote frees wrote: a stale one breaks the page */
  CHECK(stats().errors == s3.errors);

  /* 3. a remote double free on the reused page (b holds the page's blocks again after take_again) */
  size_t j = 0;
  while (j < N2 && (uintptr_t)b[j] >> 16 != (uintptr_t)on_old >> 16) j++;
  REQUIRE(j < N2);
  void *c = b[j];
  b[j] = b[N2 - 1];
  in_thread(&c, 0, 0, 1);
  zc_stats_t s5 = stats();
  CHECK(s5.errors - s4.errors == 1);
  CHECK(s5.remote_frees - s4.remote_frees == 1);
  for (int i = 0; i < N2 - 1; i++) zc_free(b[i]);
  take_again(b, N2, 80); /* c came back once: handed out once */
  CHECK(stats().errors == s5.errors);
  for (int i = 0; i < N2; i++) zc_free(b[i]);
  zc_free(keep);
  CHECK_DONE("core_remote_line");
}
