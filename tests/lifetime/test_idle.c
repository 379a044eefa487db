/* Idle memory return of the lifetime allocators (issue 10, item 5) and what comes with it: each allocator
 * gives its idle memory back through the background purger's hook, with no call into it, after the purge
 * delay. Each test makes the memory resident, then calls nothing of the allocator and waits (generous
 * deadlines, no timing asserted) until mincore says the pages are gone; only then does it read the stats.
 * Also: counted-page chunks are unmapped before destroy (held drops, the registry forgets them), the ring's
 * tagged free catches a double free a full lap later, and create/destroy race with the purger's passes
 * (for TSan and ASan).
 * Run with ZCMEM_BACKGROUND=1 (the default); with the purger off the idle tests must fail.
 */
#include "zcmem.h"
#include "zcmem_pages.h"
#include "zcmem_pool.h"
#include "zcmem_ring.h"
#include "check.h"
#include "zc_clock.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#define WAIT_MS 60000 /* an idle pass comes every 50 ms; this only bounds a broken library (generous: the
                       * purger thread may wait for a core on a loaded machine under a sanitizer) */

static size_t os_page(void) { return (size_t)sysconf(_SC_PAGESIZE); }

/* Counted pages: three chunks' worth of objects, all freed; then no call. The pages empty for the delay are
 * purged, and the chunks that hold no page in use are unmapped. */
static void test_pages_idle(void) {
  enum { CHUNKS = 3 };
  zc_pages_t *pg = zc_pages_create(NULL);
  REQUIRE(pg != NULL);
  size_t obj = 4000, n = (size_t)CHUNKS * (4u << 20) / obj;
  char **o = calloc(n, sizeof *o);
  REQUIRE(o != NULL);
  for (size_t i = 0; i < n; i++) {
    o[i] = zc_pages_alloc(pg, obj);
    REQUIRE(o[i] != NULL);
    memset(o[i], 0x5a, obj);
  }
  char *first = (char *)((uintptr_t)o[0] & ~(uintptr_t)((4u << 20) - 1));
  char *last = (char *)((uintptr_t)o[n - 1] & ~(uintptr_t)((4u << 20) - 1));
  REQUIRE(first != last);
  zc_pages_stats_t s;
  zc_pages_stats(pg, &s);
  uint64_t held_before = s.held;
  CHECK(resident_bytes(first, 4u << 20) > (3u << 20));
  size_t rss_before = rss_bytes();
  for (size_t i = 0; i < n; i++) zc_pages_free(o[i]);
  /* no call into pg from here on: the first chunk (every page retired and now empty) goes */
  CHECKF(WAIT_UNTIL(resident_bytes(first, 4u << 20) == 0, WAIT_MS), "first chunk still has %zu bytes resident",
         resident_bytes(first, 4u << 20));
  if (!UNDER_HEAVY_SANITIZER) {
    size_t rss_after = rss_bytes();
    CHECKF(rss_before > rss_after + (6u << 20), "process RSS %zu -> %zu", rss_before, rss_after);
  }
  zc_pages_stats(pg, &s);
  CHECK(s.chunks_released >= 1);
  CHECK(s.held <= held_before - (4u << 20));
  CHECK(s.resident <= s.held);
  CHECK_EQ(s.frees, s.allocs);
  /* a stale pointer into the unmapped chunk is reported, not followed */
  CHECK_REPORTS(1, zc_pages_free(o[0]));
  /* still usable: new objects, checked */
  for (size_t i = 0; i < n; i++) {
    o[i] = zc_pages_alloc(pg, obj);
    REQUIRE(o[i] != NULL);
    memset(o[i], (int)(i & 0xff), obj);
  }
  int ok = 1;
  for (size_t i = 0; i < n; i++) ok &= (unsigned char)o[i][obj - 1] == (i & 0xff);
  CHECK(ok);
  for (size_t i = 0; i < n; i++) zc_pages_free(o[i]);
  zc_pages_destroy(pg);
  free(o);
}

/* max_empty = SIZE_MAX still means never purge: the purger leaves such an allocator's pages alone. */
static void test_pages_never(void) {
  zc_pages_config_t cfg = {.max_empty = SIZE_MAX};
  zc_pages_t *pg = zc_pages_create(&cfg);
  enum { N = 64 };
  char *o[N];
  for (int i = 0; i < N; i++) {
    o[i] = zc_pages_alloc(pg, 60000); /* one per 64 KiB page */
    memset(o[i], 1, 60000);
  }
  for (int i = 0; i < N - 1; i++) zc_pages_free(o[i]);
  sleep_ms(3 * (int)zc_option_get(zc_option_purge_delay) + 300);
  zc_pages_stats_t s;
  zc_pages_stats(pg, &s);
  CHECK_EQ(s.pages_purged, 0);
  CHECK_EQ(s.chunks_released, 0);
  CHECK(resident_bytes(o[0], 60000) >= 60000 - os_page());
  zc_pages_free(o[N - 1]);
  zc_pages_destroy(pg);
}

/* Pool: five blocks filled, reset (four kept as spares, the first one parked); then no call. */
static void test_pool_idle(void) {
  zc_pool_t *pool = zc_pool_create(NULL, NULL); /* 64 KiB blocks, retain 4 */
  REQUIRE(pool != NULL);
  enum { PER = 15, N = 5 * PER };
  char *o[N];
  for (int i = 0; i < N; i++) {
    o[i] = zc_pool_alloc(pool, 4000);
    REQUIRE(o[i] != NULL);
    memset(o[i], 0x33, 4000);
  }
  /* each block's objects, less the block's first OS page (its header, or the pool itself, stays) */
  char *from[8], *to[8];
  int nb = 0;
  for (int i = 0; i < N; i++) {
    if (i == 0 || o[i] != o[i - 1] + 4000) {
      REQUIRE(nb < 8);
      from[nb] = (char *)(((uintptr_t)o[i] + os_page() - 1) & ~(uintptr_t)(os_page() - 1));
      nb++;
    }
    to[nb - 1] = o[i] + 4000;
  }
  REQUIRE(nb == 5);
  zc_pool_reset(pool);
  /* no call into pool from here on: the four spare blocks and the parked first one are purged */
  size_t res = 0;
  CHECKF(WAIT_UNTIL(({
                      res = 0;
                      for (int b = 0; b < nb; b++) res += resident_bytes(from[b], (size_t)(to[b] - from[b]));
                      res == 0;
                    }),
                    WAIT_MS),
         "pool blocks: %zu bytes resident", res);
  zc_pool_stats_t s;
  zc_pool_stats(pool, &s);
  CHECK(s.resident <= s.held - ((uint64_t)nb * ((64u << 10) - os_page()) - os_page()));
  /* the parked block reopens: the first allocation lands where the first did, zeroed by the purge */
  char *p = zc_pool_alloc(pool, 4000);
  CHECK(p == o[0]);
  if (zc_option_get(zc_option_purge_mode) == 0) CHECK(p[3999] == 0); /* MADV_DONTNEED: zero-filled */
  zc_pool_stats(pool, &s);
  CHECK(s.resident > s.held - (uint64_t)4 * (64u << 10)); /* the first block counts again */
  zc_pool_destroy(pool);
}

/* Ring: one lap through the whole buffer; then no call. Only the window ahead of the head stays. */
static void test_ring_idle(void) {
  enum { CHUNK = 128, CHUNKS = 8192 };
  zc_ring_t *r = zc_ring_create(CHUNK, CHUNKS);
  REQUIRE(r != NULL);
  char *base = NULL, *held = NULL;
  size_t size = (size_t)CHUNK * CHUNKS;
  /* A lap makes the whole buffer resident. (A pass may purge it already if this thread is preempted for a
   * purge delay right after the lap, as can happen on a loaded machine: then go another lap.) */
  int tries = 0;
  do {
    if (held) zc_ring_free(r, held);
    for (int i = 0; i < CHUNKS / 4; i++) {
      char *p = zc_ring_alloc(r, 4 * CHUNK);
      REQUIRE(p != NULL);
      if (base == NULL) base = p;
      memset(p, 7, 4 * CHUNK);
      zc_ring_free(r, p);
    }
    held = zc_ring_alloc(r, 100); /* a live message stays resident */
    memset(held, 9, 100);
  } while (resident_bytes(base, size) <= size - 8 * os_page() && ++tries < 5);
  CHECK(tries < 5);
  size_t limit = size / 16 + 4 * os_page(); /* the producer's window (n/16 chunks) and the live message */
  CHECKF(WAIT_UNTIL(resident_bytes(base, size) <= limit, WAIT_MS), "ring: %zu bytes resident",
         resident_bytes(base, size));
  zc_ring_stats_t s;
  /* the pass counts its purge once all of its runs are done (a wrapped free range is two madvise calls):
   * the pages can be gone before the counters say so */
  CHECKF(WAIT_UNTIL((zc_ring_stats(r, &s), s.trimmed >= size - limit && s.resident <= limit + CHUNK), WAIT_MS),
         "ring stats: trimmed %llu (want >= %zu), resident %llu (want <= %zu)", (unsigned long long)s.trimmed,
         size - limit, (unsigned long long)s.resident, limit + CHUNK);
  CHECK(s.resident + 2 * os_page() >= resident_bytes(base, size)); /* an upper bound (within the live page) */
  CHECK(held[0] == 9 && held[99] == 9);
  zc_ring_free(r, held);
  /* another lap: purged chunks come back zeroed and usable */
  for (int i = 0; i < CHUNKS / 2; i++) {
    char *p = zc_ring_alloc(r, 2 * CHUNK);
    REQUIRE(p != NULL);
    memset(p, i & 0xff, 2 * CHUNK);
    CHECK((unsigned char)p[2 * CHUNK - 1] == (i & 0xff));
    zc_ring_free(r, p);
  }
  zc_ring_destroy(r);
}

/* The producer writes while the purger's passes purge the ring's free part: a message placed and filled
 * just as a pass purges must keep its bytes (the pass never purges inside the producer's window). Each
 * round sleeps a little over the 1 ms purge delay, so passes purge between (and during) the rounds. */
static void test_ring_purge_race(void) {
  long delay = zc_option_get(zc_option_purge_delay);
  zc_option_set(zc_option_purge_delay, 1);
  enum { SZ = 8192 };
  zc_ring_t *r = zc_ring_create(128, 2048);
  REQUIRE(r != NULL);
  long bad = 0;
  zc_ring_stats_t s;
  uint64_t t0 = now_ms();
  /* 1500 rounds, and on until a pass purged during them (the purger may wait for a core under load) */
  for (int i = 0; i < 1500 || (zc_ring_stats(r, &s), s.trimmed == 0); i++) {
    REQUIREF(now_ms() - t0 < WAIT_MS, "no pass purged the ring in %d s (%d rounds)", WAIT_MS / 1000, i);
    unsigned char *p = zc_ring_alloc(r, SZ);
    REQUIRE(p != NULL);
    memset(p, 1 + (i % 250), SZ);
    struct timespec ts = {0, 1100000 + (i % 7) * 50000};
    nanosleep(&ts, NULL);
    for (int k = 0; k < SZ; k += 512) bad += p[k] != 1 + (i % 250);
    zc_ring_free(r, p);
  }
  zc_ring_stats(r, &s);
  CHECKF(bad == 0, "%ld bytes of live messages lost to a purge", bad);
  CHECK(s.trimmed > 0); /* the passes did purge meanwhile (the loop ran until they did) */
  zc_ring_destroy(r);
  zc_option_set(zc_option_purge_delay, delay);
}

/* The tagged free catches the double free a full lap later, which the plain free cannot. */
static void test_ring_tagged(void) {
  zc_ring_t *r = zc_ring_create(128, 8);
  char *a = zc_ring_alloc(r, 100);
  uint64_t ta = zc_ring_tag(r);
  char *b = zc_ring_alloc(r, 100);
  uint64_t tb = zc_ring_tag(r);
  CHECK(tb != ta);
  CHECK_REPORTS(1, zc_ring_free_tagged(r, a, tb)); /* the wrong tag: nothing freed */
  CHECK_REPORTS(0, zc_ring_free_tagged(r, a, ta));
  CHECK_REPORTS(1, zc_ring_free_tagged(r, a, ta)); /* the tail passed: caught as before */
  for (int i = 0; i < 6; i++) {
    char *x = zc_ring_alloc(r, 100);
    zc_ring_free_tagged(r, x, zc_ring_tag(r));
  }
  char *c = zc_ring_alloc(r, 100); /* a full lap: c starts where a did */
  uint64_t tc = zc_ring_tag(r);
  REQUIRE(c == a);
  memset(c, 0x44, 100);
  CHECK_REPORTS(1, zc_ring_free_tagged(r, a, ta)); /* the stale double free: reported, c untouched */
  zc_ring_stats_t s;
  zc_ring_stats(r, &s);
  CHECK_EQ(s.allocs - s.frees, 2); /* b and c still live */
  CHECK_REPORTS(0, zc_ring_free_tagged(r, c, tc));
  CHECK_REPORTS(0, zc_ring_free_tagged(r, b, tb));
  zc_ring_stats(r, &s);
  CHECK_EQ(s.allocs, s.frees);
  CHECK_EQ(s.errors, 3);
  zc_ring_destroy(r);
}

/* Create, use and destroy many allocators while the purger's passes run every half millisecond: destroy
 * must wait for a running hook (a use after unmap otherwise, which ASan and TSan see and which may crash). */
static void *churn(void *arg) {
  int kind = (int)(intptr_t)arg;
  for (int i = 0; i < 300; i++) {
    if (kind == 0) {
      zc_pool_t *p = zc_pool_create(NULL, NULL);
      for (int k = 0; k < 40; k++) memset(zc_pool_alloc(p, 4000), 1, 4000);
      zc_pool_reset(p);
      if (i & 1) sleep_ms(1);
      zc_pool_destroy(p);
    } else if (kind == 1) {
      zc_pages_t *pg = zc_pages_create(NULL);
      void *o[40];
      for (int k = 0; k < 40; k++) memset(o[k] = zc_pages_alloc(pg, 4000), 1, 4000);
      for (int k = 0; k < 40; k++) zc_pages_free(o[k]);
      if (i & 1) sleep_ms(1);
      zc_pages_destroy(pg);
    } else {
      zc_ring_t *r = zc_ring_create(128, 256);
      for (int k = 0; k < 100; k++) {
        char *x = zc_ring_alloc(r, 500);
        memset(x, 1, 500);
        zc_ring_free(r, x);
      }
      if (i & 1) sleep_ms(1);
      zc_ring_destroy(r);
    }
  }
  return NULL;
}

static void test_churn(void) {
  long delay = zc_option_get(zc_option_purge_delay);
  zc_option_set(zc_option_purge_delay, 1);
  pthread_t t[3];
  for (int k = 0; k < 3; k++) pthread_create(&t[k], NULL, churn, (void *)(intptr_t)k);
  for (int k = 0; k < 3; k++) pthread_join(t[k], NULL);
  zc_option_set(zc_option_purge_delay, delay);
  CHECK(1);
}

int main(void) {
  if (zc_option_get(zc_option_background) != 1 || zc_option_get(zc_option_purge_delay) == 0)
    printf("test_idle: the background purger is off (ZCMEM_BACKGROUND=0 or ZCMEM_PURGE_DELAY=0): the idle "
           "tests are expected to fail\n");
  test_ring_tagged();
  test_pages_idle();
  test_pool_idle();
  test_ring_idle();
  test_ring_purge_race();
  test_pages_never();
  test_churn();
  TEST_DONE("test_idle");
}
