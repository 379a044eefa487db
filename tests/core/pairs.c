/* Remote-free statistics per pair of threads (zc_stats_pairs, and the "pairs" of zc_stats_json and
 * zc_stats_print): which thread freed how much of which thread's memory.
 *
 * The main thread (the producer) allocates; consumer 1 frees 5000 blocks of 48 B, consumer 2
 * frees 3000 blocks of 320 B, then allocates 700 blocks of 64 B that the main thread frees while consumer
 * 2 is still alive; consumer 3 allocates 300 blocks of 64 B and exits before the main thread frees them
 * (their pages have no owner then). Each pair must show exactly its blocks and bytes (block sizes), in
 * fewer hand-overs than blocks (batched), with the kernel thread ids of both threads; the table, the JSON
 * and the text must agree. Consumers 1 and 2 live to the end (an exited thread's heap is reused by the
 * next thread, whose figures then add up under the same heap id, docs/design.md). Counts are compared as differences from a snapshot taken before, so a heap
 * reused from an earlier thread does not disturb them. Prefixed API (zc_malloc/zc_free).
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"

#include <pthread.h>
#include <sys/syscall.h>

enum { N1 = 5000, N2 = 3000, N3 = 700, N4 = 300, MAXP = 64 };
static void *b1[N1], *b2[N2], *b3[N3], *b4[N4];
static uint32_t main_id, c1_id, c2_id, c3_id;
static uint64_t main_tid, c1_tid, c2_tid;
static pthread_barrier_t bar, end;

static uint64_t tid(void) { return (uint64_t)syscall(SYS_gettid); }

static void *consumer1(void *arg) {
  (void)arg;
  c1_id = zc_thread_heap_id();
  c1_tid = tid();
  for (int i = 0; i < N1; i++) zc_free(b1[i]);
  zc_collect(false); /* hands this thread's pending batch over */
  pthread_barrier_wait(&bar);
  pthread_barrier_wait(&end); /* alive to the end: its heap is not reused */
  return NULL;
}

static void *consumer2(void *arg) {
  (void)arg;
  c2_id = zc_thread_heap_id();
  c2_tid = tid();
  for (int i = 0; i < N2; i++) zc_free(b2[i]);
  zc_collect(false); /* hands this thread's pending batch over */
  for (int i = 0; i < N3; i++) {
    b3[i] = zc_malloc(64);
    REQUIRE(b3[i] != NULL);
  }
  pthread_barrier_wait(&bar); /* the main thread frees b3 now, while this thread owns their pages */
  pthread_barrier_wait(&bar);
  pthread_barrier_wait(&end);
  return NULL;
}

static void *consumer3(void *arg) {
  (void)arg;
  c3_id = zc_thread_heap_id();
  for (int i = 0; i < N4; i++) {
    b4[i] = zc_malloc(64);
    REQUIRE(b4[i] != NULL);
  }
  return NULL; /* exits: its segments are abandoned, the blocks stay live */
}

typedef struct {
  zc_pair_stats_t p[MAXP];
  size_t n;
} snap_t;

static void take(snap_t *s) {
  s->n = zc_stats_pairs(s->p, MAXP);
  REQUIRE(s->n <= MAXP);
}

static const zc_pair_stats_t *find(const snap_t *s, uint32_t freer, uint32_t owner) {
  for (size_t i = 0; i < s->n; i++)
    if (s->p[i].freer == freer && s->p[i].owner == owner) return &s->p[i];
  return NULL;
}

/* The change of pair (freer, owner) between two snapshots; NULL from the second means no such pair. */
static int delta(const snap_t *a, const snap_t *b, uint32_t freer, uint32_t owner, zc_pair_stats_t *d) {
  const zc_pair_stats_t *x = find(a, freer, owner), *y = find(b, freer, owner);
  if (y == NULL) return 0;
  *d = *y;
  if (x != NULL) {
    d->blocks -= x->blocks;
    d->bytes -= x->bytes;
    d->batches -= x->batches;
  }
  return 1;
}

static void check_pair(const snap_t *a, const snap_t *b, const char *what, uint32_t freer, uint32_t owner,
                       uint64_t blocks, uint64_t size, uint64_t freer_tid, uint64_t owner_tid) {
  zc_pair_stats_t d;
  int found = delta(a, b, freer, owner, &d);
  CHECKF(found, "%s: no pair heap %u -> heap %u in zc_stats_pairs", what, freer, owner);
  if (!found) return;
  printf("%-34s heap %u (tid %llu) -> heap %d (tid %llu): %llu blocks, %llu bytes, %llu hand-overs\n", what,
         d.freer, (unsigned long long)d.freer_tid, d.owner == ZC_PAIR_OTHER ? -1 : (int)d.owner,
         (unsigned long long)d.owner_tid, (unsigned long long)d.blocks, (unsigned long long)d.bytes,
         (unsigned long long)d.batches);
  CHECKF(d.blocks == blocks, "%s: %llu blocks counted, want %llu", what, (unsigned long long)d.blocks,
         (unsigned long long)blocks);
  CHECKF(d.bytes == blocks * size, "%s: %llu bytes counted, want %llu", what, (unsigned long long)d.bytes,
         (unsigned long long)(blocks * size));
  CHECKF(d.batches >= (blocks + 63) / 64 && d.batches * 4 <= blocks,
         "%s: %llu hand-overs for %llu blocks (at most 64 a batch, and batched)", what,
         (unsigned long long)d.batches, (unsigned long long)blocks);
  CHECKF(d.freer_tid == freer_tid, "%s: freer tid %llu, want %llu", what, (unsigned long long)d.freer_tid,
         (unsigned long long)freer_tid);
  CHECKF(d.owner_tid == owner_tid, "%s: owner tid %llu, want %llu", what, (unsigned long long)d.owner_tid,
         (unsigned long long)owner_tid);
}

/* The pair's object in the JSON, by its freer and owner; its blocks and bytes. */
static int json_pair(const char *js, uint32_t freer, long owner, unsigned long long *blocks,
                     unsigned long long *bytes) {
  char want[64];
  snprintf(want, sizeof want, "{\"freer\":%u,", freer);
  for (const char *at = strstr(js, want); at; at = strstr(at + 1, want)) {
    long o;
    unsigned long long ft, ot, bl, by, ba;
    if (sscanf(at, "{\"freer\":%*u,\"freer_tid\":%llu,\"owner\":%ld,\"owner_tid\":%llu,\"blocks\":%llu,\"bytes\":%llu,"
                   "\"batches\":%llu}", &ft, &o, &ot, &bl, &by, &ba) == 6 && o == owner) {
      *blocks = bl;
      *bytes = by;
      return 1;
    }
  }
  return 0;
}

int main(void) {
  main_id = zc_thread_heap_id();
  main_tid = tid();
  CHECK(main_id != UINT32_MAX);
  snap_t s0, s1, s2, s3;
  take(&s0);

  for (int i = 0; i < N1; i++) b1[i] = zc_malloc(48);
  for (int i = 0; i < N2; i++) b2[i] = zc_malloc(320);
  for (int i = 0; i < N1; i++) REQUIRE(b1[i] != NULL);
  for (int i = 0; i < N2; i++) REQUIRE(b2[i] != NULL);

  pthread_t t, t1, t2;
  REQUIRE(pthread_barrier_init(&bar, NULL, 2) == 0);
  REQUIRE(pthread_barrier_init(&end, NULL, 3) == 0);
  REQUIRE(pthread_create(&t1, NULL, consumer1, NULL) == 0);
  pthread_barrier_wait(&bar);
  take(&s1);
  check_pair(&s0, &s1, "consumer 1 frees the main thread's", c1_id, main_id, N1, 48, c1_tid, main_tid);

  REQUIRE(pthread_create(&t2, NULL, consumer2, NULL) == 0);
  pthread_barrier_wait(&bar);
  for (int i = 0; i < N3; i++) zc_free(b3[i]);
  zc_collect(false); /* the main thread's pending batch goes over */
  take(&s2);
  pthread_barrier_wait(&bar);
  check_pair(&s1, &s2, "consumer 2 frees the main thread's", c2_id, main_id, N2, 320, c2_tid, main_tid);
  check_pair(&s1, &s2, "the main thread frees consumer 2's", main_id, c2_id, N3, 64, main_tid, c2_tid);
  zc_pair_stats_t d;
  CHECKF(!delta(&s1, &s2, c1_id, main_id, &d) || d.blocks == 0, "consumer 1's pair changed without a free");

  REQUIRE(pthread_create(&t, NULL, consumer3, NULL) == 0);
  pthread_join(t, NULL);
  for (int i = 0; i < N4; i++) zc_free(b4[i]);
  zc_collect(false);
  take(&s3);
  check_pair(&s2, &s3, "the main thread frees an exited one's", main_id, ZC_PAIR_OTHER, N4, 64, main_tid, 0);
  CHECKF(!delta(&s2, &s3, main_id, c3_id, &d) || d.blocks == 0, "blocks of an exited thread counted under it");

  /* largest first, and the total is counted beyond what fits */
  for (size_t i = 1; i < s3.n; i++) CHECK(s3.p[i - 1].bytes >= s3.p[i].bytes);
  zc_pair_stats_t one;
  CHECK_EQ(zc_stats_pairs(&one, 1), s3.n);
  CHECK(one.bytes == s3.p[0].bytes);
  CHECK_EQ(zc_stats_pairs(NULL, 0), s3.n);

  /* JSON and text show the same figures (cumulative: the snapshot values, not the differences) */
  const zc_pair_stats_t *p1 = find(&s3, c1_id, main_id);
  REQUIRE(p1 != NULL);
  size_t need = zc_stats_json(NULL, 0);
  char *js = malloc(need + 1);
  REQUIRE(js != NULL);
  zc_stats_json(js, need + 1);
  unsigned long long bl = 0, by = 0;
  CHECKF(json_pair(js, c1_id, main_id, &bl, &by) && bl == p1->blocks && by == p1->bytes,
         "zc_stats_json: pair %u -> %u: %llu blocks %llu bytes, want %llu %llu\n%s", c1_id, main_id, bl, by,
         (unsigned long long)p1->blocks, (unsigned long long)p1->bytes, js);
  CHECKF(json_pair(js, main_id, -1, &bl, &by) && bl >= N4, "zc_stats_json: no pair %u -> others", main_id);
  free(js);
  int fd = memfd_create("pairs", 0);
  REQUIRE(fd >= 0);
  zc_stats_print(fd);
  off_t len = lseek(fd, 0, SEEK_END);
  char *text = malloc((size_t)len + 1);
  REQUIRE(text != NULL && pread(fd, text, (size_t)len, 0) == len);
  text[len] = 0;
  close(fd);
  char line[160];
  snprintf(line, sizeof line, "heap %u (tid %llu) -> heap %u (tid %llu): %llu blocks", c1_id,
           (unsigned long long)c1_tid, main_id, (unsigned long long)main_tid, (unsigned long long)p1->blocks);
  CHECKF(strstr(text, line) != NULL, "zc_stats_print has no line \"%s\":\n%s", line, text);
  free(text);

  pthread_barrier_wait(&end);
  pthread_join(t1, NULL);
  pthread_join(t2, NULL);
  return check_exit("core_pairs");
}
