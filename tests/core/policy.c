/* The process-wide purge policy of small and medium pages (docs/design.md, "Giving memory back"), checked on
 * the allocator's own counters (zc_stats_t), which count what it did, not how long it took.
 *
 *   core_policy steady  a producer thread allocates batches of 500-8000 messages (32 B-64 KiB, the prodcons
 *                       mix) and a consumer frees them (remote frees): demand rises and falls, pages empty
 *                       and are taken again. After a warm-up, 200 more batches take pages (checked: the
 *                       premise) but make at most 4 purge calls and map at most 1 segment. Fails on a policy that
 *                       purges pages as they empty (a budget of 0) or unmaps and maps segments.
 *   core_policy miss    pages purged by zc_trim and taken again at once are counted as policy misses (at
 *                       least one per 64 KiB page taken back), pages reused while dirty are not.
 *   core_policy cache   20 medium segments (80 MiB, blocks of 48 KiB) emptied: at most 8 stay cached
 *                       (segments_cached), the rest is unmapped (segments back to at most the cache + the
 *                       spares); the same demand again takes the cached ones first: at most 20 - 8 segments
 *                       are mapped afresh. Fails with no cache or an unbounded one.
 *   core_policy return  64 MiB of blocks (a survivor kept in one page of each segment, the rest freed) and
 *                       another 64 MiB freed whole, then idle: within the delay (500 ms) + 15 s the freed
 *                       pages are no longer resident (mincore, at most 5%), whatever demand said before, and
 *                       within max(10 delays, 1 s) + 15 s the segment cache is empty (15 s: the purger waits
 *                       for a core on a loaded machine; it was 2.5 and 3 s). Fails if the demand's
 *                       peak never decays or cached segments are never purged or unmapped.
 * Links zcmem_prefixed. The purger runs (ZCMEM_BACKGROUND=1, set by CMake with the delays).
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"

#include <pthread.h>
#include <stdatomic.h>

static zc_stats_t st(void) {
  zc_stats_t s;
  zc_stats_get(&s);
  return s;
}

/* ---- steady: producer -> consumer, in batches ---- */
static void wait_drained(void);
/* The producer fills a batch of 500..8000 messages (demand rises); every other batch it hands over to the
 * consumer (remote frees, two hand-over slots alternate), the others it frees itself (local frees: its pages
 * empty and return to their segments, demand falls). */
#define BATCH_MAX 8000
static void *batch[2][BATCH_MAX];
static unsigned batch_n[2];
static atomic_int batch_full[2];
static unsigned long total_batches;

static size_t msg_size(rng_t *rng) {
  uint64_t r = rng_next(rng);
  unsigned pick = (unsigned)(r % 100);
  if (pick < 90) return 32 + (size_t)((r >> 8) % 225);
  if (pick < 99) return 256 + (size_t)((r >> 8) % 3841);
  return 4096 + (size_t)((r >> 8) % (60 * 1024));
}

static void *consumer(void *arg) {
  (void)arg;
  for (unsigned long b = 0; b < total_batches; b += 2) {
    int k = (int)((b >> 1) & 1);
    while (!atomic_load(&batch_full[k])) sched_yield();
    for (unsigned i = 0; i < batch_n[k]; i++) {
      CHECK(((unsigned char *)batch[k][i])[0] == (unsigned char)i);
      zc_free(batch[k][i]);
    }
    atomic_store(&batch_full[k], 0);
  }
  return NULL;
}

static void produce(unsigned long from, unsigned long to, rng_t *rng) {
  static void *mine[BATCH_MAX];
  for (unsigned long b = from; b < to; b++) {
    int k = (int)((b >> 1) & 1);
    void **dst = (b & 1) ? mine : batch[k];
    /* the consumer is done with the last batch: demand does not depend on its speed */
    while (atomic_load(&batch_full[0]) || atomic_load(&batch_full[1])) sched_yield();
    unsigned n = b < 4 ? BATCH_MAX : 500 + (unsigned)(rng_next(rng) % (BATCH_MAX - 500)); /* warm-up: the peak */
    for (unsigned i = 0; i < n; i++) {
      size_t sz = msg_size(rng);
      unsigned char *p = zc_malloc(sz);
      REQUIRE(p != NULL);
      memset(p, (int)(unsigned char)i, sz < 64 ? sz : 64);
      p[sz - 1] = 1;
      dst[i] = p;
    }
    if (b & 1) {
      for (unsigned i = 0; i < n; i++) zc_free(mine[i]);
      continue;
    }
    batch_n[k] = n;
    atomic_store(&batch_full[k], 1);
  }
}

static void wait_drained(void) {
  while (atomic_load(&batch_full[0]) || atomic_load(&batch_full[1])) sched_yield();
}

static int case_steady(int argc, char **argv) {
  const unsigned long warm = 40, measured = 200;
  total_batches = warm + measured;
  rng_t rng;
  rng_seed(&rng, 12345);
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, consumer, NULL) == 0);
  produce(0, warm, &rng);
  wait_drained();
  zc_stats_t a = st();
  produce(warm, total_batches, &rng);
  REQUIRE(pthread_join(t, NULL) == 0);
  zc_stats_t b = st();
  printf("steady: %lu batches of 500-8000 messages after warm-up: %lu purge calls, %lu segments mapped, %lu misses, "
         "%lu pages taken; dirty %lu KiB (budget %lu KiB)\n", measured, (unsigned long)(b.purge_calls - a.purge_calls),
         (unsigned long)(b.segments_mapped - a.segments_mapped), (unsigned long)(b.purge_misses - a.purge_misses),
         (unsigned long)(b.pages_taken - a.pages_taken), (unsigned long)(b.dirty >> 10),
         (unsigned long)(b.dirty_budget >> 10));
  CHECKF(b.pages_taken - a.pages_taken >= measured, "only %lu pages taken: the test no longer empties pages",
         (unsigned long)(b.pages_taken - a.pages_taken));
  CHECKF(b.purge_calls - a.purge_calls <= 4, "%lu purge calls in steady state",
         (unsigned long)(b.purge_calls - a.purge_calls));
  /* at most one: the consumer's last frees of a batch may wait in its hand-over chain (it never allocates),
   * so demand can edge a page past the warm-up's peak when the scheduler interleaves the threads unluckily */
  CHECKF(b.segments_mapped - a.segments_mapped <= 1, "%lu segments mapped in steady state",
         (unsigned long)(b.segments_mapped - a.segments_mapped));
  CHECK_DONE(argv[0]);
}

/* ---- miss: purged, then taken again at once ---- */
static int case_miss(int argc, char **argv) {
  enum { N = 512 }; /* 512 blocks of 1 KiB: 8 pages of 64 KiB */
  void *keep = zc_malloc(1024); /* a survivor: the segment stays, its pages are purged, not unmapped */
  void *ps[N];
  for (int i = 0; i < N; i++) memset(ps[i] = zc_malloc(1024), 1, 1024);
  for (int i = 0; i < N; i++) zc_free(ps[i]);
  zc_stats_t a = st();
  for (int i = 0; i < N; i++) memset(ps[i] = zc_malloc(1024), 2, 1024); /* dirty pages reused: no miss */
  zc_stats_t b = st();
  CHECKF(b.purge_misses == a.purge_misses, "%lu misses counted for pages reused while dirty",
         (unsigned long)(b.purge_misses - a.purge_misses));
  for (int i = 0; i < N; i++) zc_free(ps[i]);
  CHECK(zc_trim(0) == 1);
  zc_stats_t c = st();
  for (int i = 0; i < N; i++) memset(ps[i] = zc_malloc(1024), 3, 1024);
  zc_stats_t d = st();
  printf("miss: %lu misses (%lu KiB) after a trim and the same demand again\n",
         (unsigned long)(d.purge_misses - c.purge_misses), (unsigned long)((d.purge_miss_bytes - c.purge_miss_bytes) >> 10));
  CHECKF(d.purge_misses - c.purge_misses >= 6, "only %lu misses for 8 purged pages taken again at once",
         (unsigned long)(d.purge_misses - c.purge_misses));
  CHECK(d.purge_miss_bytes - c.purge_miss_bytes >= (d.purge_misses - c.purge_misses) * 48 * 1024);
  for (int i = 0; i < N; i++) zc_free(ps[i]);
  zc_free(keep);
  CHECK_DONE(argv[0]);
}

/* ---- cache: empty segments cached, bounded, reused ---- */
#define SEGS 20
#define MEDIUM_BLOCK (48 * 1024)
#define MEDIUM_PAGE (128 * 1024)                  /* 2 blocks of 48 KiB a page (page 0: 112 KiB) */
#define PER_SEG ((4 * 1024 * 1024 / MEDIUM_PAGE) * (MEDIUM_PAGE / MEDIUM_BLOCK)) /* 64 fill a medium segment */

static void **fill(size_t n) {
  void **ps = mmap(NULL, n * sizeof(void *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(ps != MAP_FAILED);
  for (size_t i = 0; i < n; i++) {
    ps[i] = zc_malloc(MEDIUM_BLOCK);
    REQUIRE(ps[i] != NULL);
    memset(ps[i], 7, 4096);
  }
  return ps;
}

static void drain(void **ps, size_t n) {
  for (size_t i = 0; i < n; i++) zc_free(ps[i]);
  munmap(ps, n * sizeof(void *));
}

static int case_cache(int argc, char **argv) {
  size_t n = (size_t)SEGS * PER_SEG;
  zc_free(zc_malloc(16)); /* the heap exists and the purger runs before the segments empty */
  zc_free(zc_malloc(MEDIUM_BLOCK));
  zc_stats_t a = st();
  void **ps = fill(n);
  zc_stats_t b = st();
  drain(ps, n);
  zc_stats_t c = st();
  printf("cache: %lu segments mapped for %d; after the frees %lu live, %lu cached\n",
         (unsigned long)(b.segments_mapped - a.segments_mapped), SEGS, (unsigned long)c.segments,
         (unsigned long)c.segments_cached);
  CHECKF(b.segments_mapped - a.segments_mapped >= SEGS - 1, "only %lu segments mapped for %d",
         (unsigned long)(b.segments_mapped - a.segments_mapped), SEGS);
  CHECKF(c.segments_cached >= 4 && c.segments_cached <= 8, "%lu segments cached (expected 4..8)",
         (unsigned long)c.segments_cached);
  CHECKF(c.segments <= c.segments_cached + 3, "%lu segments still mapped, %lu of them cached: the rest should "
         "have been unmapped", (unsigned long)c.segments, (unsigned long)c.segments_cached);
  ps = fill(n);
  zc_stats_t d = st();
  printf("cache: the same demand again mapped %lu segments\n", (unsigned long)(d.segments_mapped - c.segments_mapped));
  CHECKF(d.segments_mapped - c.segments_mapped <= SEGS - c.segments_cached, "%lu segments mapped again although "
         "%lu were cached", (unsigned long)(d.segments_mapped - c.segments_mapped), (unsigned long)c.segments_cached);
  drain(ps, n);
  CHECK(zc_trim(0) == 1);
  CHECKF(st().segments_cached == 0, "trim left %lu segments cached", (unsigned long)st().segments_cached);
  CHECK_DONE(argv[0]);
}

/* ---- return: memory goes back after a burst, whatever the demand was ---- */
#define BURST (64u << 20)
#define BLK 512

static int case_return(int argc, char **argv) {
  long delay = zc_option_get(zc_option_purge_delay);
  REQUIRE(delay > 0);
  size_t n = BURST / BLK;
  void **ps = mmap(NULL, 2 * n * sizeof(void *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(ps != MAP_FAILED);
  for (size_t i = 0; i < 2 * n; i++) {
    ps[i] = zc_malloc(BLK);
    REQUIRE(ps[i] != NULL);
    memset(ps[i], 5, BLK);
  }
  /* first half: one survivor per segment (its pages become dirty pages); second half: freed whole */
  uintptr_t last_seg = 0;
  size_t kept = 0;
  void *survivors[64];
  for (size_t i = 0; i < 2 * n; i++) {
    uintptr_t seg = (uintptr_t)ps[i] & ~(((uintptr_t)4 << 20) - 1);
    if (i < n && seg != last_seg && kept < 64) {
      survivors[kept++] = ps[i];
      last_seg = seg;
      ps[i] = NULL;
      continue;
    }
  }
  uint64_t t0 = now_ms();
  for (size_t i = 0; i < 2 * n; i++)
    if (ps[i] != NULL) zc_free(ps[i]);
  /* the freed blocks' resident bytes (mincore; unmapped ranges count as not resident) */
#define FREED_RESIDENT()                                                                                       \
  ({                                                                                                           \
    size_t r_ = 0;                                                                                             \
    for (size_t i = 0; i < 2 * n; i += 4096 / BLK)                                                             \
      if (ps[i] != NULL) r_ += resident_bytes((void *)((uintptr_t)ps[i] & ~(uintptr_t)4095), 4096);          \
    r_;                                                                                                        \
  })
  size_t r0 = FREED_RESIDENT();
  zc_stats_t s0 = st();
  printf("return: %zu KiB of the freed blocks resident right after the frees; dirty %lu KiB, %lu segments "
         "cached\n", r0 >> 10, (unsigned long)(s0.dirty >> 10), (unsigned long)s0.segments_cached);
  size_t freed = (2 * n - kept) * BLK;
  int ok = WAIT_UNTIL(FREED_RESIDENT() <= freed / 20, (uint64_t)delay + 60000); /* the purger may wait for a core */
  size_t r1 = FREED_RESIDENT();
  printf("return: %zu KiB resident %llu ms after the frees (delay %ld ms)\n", r1 >> 10,
         (unsigned long long)(now_ms() - t0), delay);
  CHECKF(ok, "%zu of %zu KiB of freed blocks still resident %llu ms after the frees (delay %ld ms)", r1 >> 10,
         freed >> 10, (unsigned long long)(now_ms() - t0), delay);
  uint64_t ttl = (uint64_t)delay * 10 < 1000 ? 1000 : (uint64_t)delay * 10;
  ok = WAIT_UNTIL(st().segments_cached == 0, ttl + 60000); /* the purger may wait for a core */
  CHECKF(ok, "%lu segments still cached %llu ms after the frees", (unsigned long)st().segments_cached,
         (unsigned long long)(now_ms() - t0));
  for (size_t i = 0; i < kept; i++) zc_free(survivors[i]);
  munmap(ps, 2 * n * sizeof(void *));
  CHECK_DONE(argv[0]);
}

/* ---- cache_owner: a cached segment changes owner in the segment map too ----
 * The main thread empties small segments into the cache; a second thread (alive throughout) takes them
 * and allocates; the main thread frees those blocks. Every one of these frees is remote (main -> the
 * second heap) and must be counted so in the pair stats. A cached segment that kept its last owner's tag
 * in the segment map would send the main thread's frees down its local fast path into pages it does not
 * own: fewer remote frees counted (and a page list written by two threads). */
#define OWN_BLK 256
#define OWN_N (3u * 4u * 1024u * 1024u / OWN_BLK) /* three small segments' worth */
static void **own_ps;
static uint32_t own_id;
static pthread_barrier_t own_bar;

static void *own_thread(void *arg) {
  (void)arg;
  own_id = zc_thread_heap_id();
  for (size_t i = 0; i < OWN_N; i++) {
    own_ps[i] = zc_malloc(OWN_BLK);
    REQUIRE(own_ps[i] != NULL);
  }
  pthread_barrier_wait(&own_bar); /* the blocks are made */
  pthread_barrier_wait(&own_bar); /* the main thread freed them: only now may this heap go */
  return NULL;
}

static uint64_t own_pair_blocks(uint32_t freer, uint32_t owner) {
  zc_pair_stats_t p[64];
  size_t n = zc_stats_pairs(p, 64);
  uint64_t b = 0;
  for (size_t i = 0; i < n && i < 64; i++)
    if (p[i].freer == freer && p[i].owner == owner) b += p[i].blocks;
  return b;
}

static int case_cache_owner(int argc, char **argv) {
  uint32_t me = zc_thread_heap_id();
  zc_free(zc_malloc(16)); /* the purger runs before the segments empty: the cache is in use */
  own_ps = mmap(NULL, OWN_N * sizeof(void *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(own_ps != MAP_FAILED);
  for (size_t i = 0; i < OWN_N; i++) {
    own_ps[i] = zc_malloc(OWN_BLK);
    REQUIRE(own_ps[i] != NULL);
  }
  for (size_t i = 0; i < OWN_N; i++) zc_free(own_ps[i]);
  zc_stats_t c = st();
  CHECKF(c.segments_cached >= 1, "no segment cached after emptying %u blocks (premise)", OWN_N);
  REQUIRE(pthread_barrier_init(&own_bar, NULL, 2) == 0);
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, own_thread, NULL) == 0);
  pthread_barrier_wait(&own_bar);
  zc_stats_t d = st();
  CHECKF(d.segments_cached < c.segments_cached, "the second thread took no cached segment (premise: %lu -> %lu)",
         (unsigned long)c.segments_cached, (unsigned long)d.segments_cached);
  uint64_t before = own_pair_blocks(me, own_id);
  for (size_t i = 0; i < OWN_N; i++) zc_free(own_ps[i]);
  zc_collect(false); /* hands the last pending batch over */
  uint64_t counted = own_pair_blocks(me, own_id) - before;
  printf("cache_owner: %u blocks of heap %u freed by heap %u, %llu counted remote\n", OWN_N, own_id, me,
         (unsigned long long)counted);
  CHECKF(counted == OWN_N, "%llu of %u remote frees counted: some took the owner's local path",
         (unsigned long long)counted, OWN_N);
  pthread_barrier_wait(&own_bar);
  REQUIRE(pthread_join(t, NULL) == 0);
  munmap(own_ps, OWN_N * sizeof(void *));
  CHECK_DONE(argv[0]);
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"steady", case_steady}, {"miss", case_miss}, {"cache", case_cache},
                                    {"return", case_return},  {"cache_owner", case_cache_owner}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
