/* Shadow-model fuzzer of the three lifetime allocators (issue 10). Each run is a seeded random sequence of
 * operations; a shadow model keeps every live object (address, size, payload seed) and the test checks,
 * after every operation:
 *   - a bad free (double free, a pointer inside an object or off its alignment, a foreign pointer) is
 *     reported: exactly one more zc_error, and the allocator's own error count moves when it is its own;
 *   - a good free is not reported;
 *   - no live object is ever overwritten: every live payload is verified every few operations and before
 *     its free;
 *   - the stats agree with the model (live objects, bytes).
 * "Bad" is decided by the model by address alone: a free is bad exactly when no live object of the model
 * starts at that address. (A stale pointer whose address now starts a new live object is, by address, that
 * object's free: documented as undetectable, so the fuzzer does not inject it for a plain free.) The ring is
 * also freed with zc_ring_free_tagged, half the time: there the model also injects the stale pointer whose
 * chunk holds a newer message, with its old tag, and a live pointer with a wrong tag (both must be reported).
 * The purge delay is 1 ms, so the background purger's idle passes (which purge spare pool blocks, empty
 * pages, the ring's free part) run between the operations: the payload checks catch a purge of live data.
 * Usage: test_lifetime_fuzz <pages|ring|pool> [seeds] [ops]; ZC_TEST_QUICK shortens it. */
#include "zcmem.h"
#include "zcmem_pages.h"
#include "zcmem_pool.h"
#include "zcmem_ring.h"
#include "check.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rs;
static uint64_t rnd(void) {
  rs ^= rs << 13;
  rs ^= rs >> 7;
  rs ^= rs << 17;
  return rs;
}
static size_t below(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

typedef struct {
  unsigned char *p;
  size_t n;
  uint64_t seed;
  uint64_t tag; /* ring: zc_ring_tag at its allocation */
} obj_t;

#define MAXLIVE 4096
static obj_t live[MAXLIVE];
static int nlive;
static unsigned char *graveyard[256]; /* freed pointers, for injected double frees */
static uint64_t graveyard_tag[256];
static int ngrave;
static long bad_injected, bad_reported, overwritten;

static void fill(obj_t *o) {
  for (size_t i = 0; i < o->n; i++) o->p[i] = (unsigned char)(o->seed + i * 131);
}
static int intact(const obj_t *o) {
  for (size_t i = 0; i < o->n; i++)
    if (o->p[i] != (unsigned char)(o->seed + i * 131)) return 0;
  return 1;
}
static void verify_all(void) {
  for (int i = 0; i < nlive; i++)
    if (!intact(&live[i])) {
      overwritten++;
      live[i].seed = 0; /* report once */
      fill(&live[i]);
    }
}
static int starts_live(const unsigned char *p) {
  for (int i = 0; i < nlive; i++)
    if (live[i].p == p) return 1;
  return 0;
}
static void add_live(unsigned char *p, size_t n) {
  live[nlive] = (obj_t){p, n, rnd(), 0};
  fill(&live[nlive]);
  nlive++;
}
static obj_t take_live(int k) {
  obj_t o = live[k];
  live[k] = live[--nlive];
  graveyard_tag[ngrave & 255] = o.tag;
  graveyard[ngrave++ & 255] = o.p;
  return o;
}

/* Run a bad free and check that it was reported exactly once. */
#define BAD_FREE(stmt)                                                                   \
  do {                                                                                   \
    unsigned long e0_ = zc_error_count();                                                \
    stmt;                                                                                \
    bad_injected++;                                                                      \
    if (zc_error_count() - e0_ == 1) bad_reported++;                                     \
    else fprintf(stderr, "FAIL bad free not reported exactly once (line %d)\n", __LINE__); \
  } while (0)

/* A candidate bad pointer for a free: a freed one, inside or misaligned in a live one, or foreign. */
static unsigned char *bad_pointer(size_t grain, int *kind) {
  static char foreign[64];
  for (int tries = 0; tries < 8; tries++) {
    switch (below(4)) {
    case 0:
      if (ngrave) {
        unsigned char *p = graveyard[below((size_t)(ngrave < 256 ? ngrave : 256))];
        if (!starts_live(p)) return *kind = 0, p;
      }
      break;
    case 1:
      if (nlive) {
        obj_t *o = &live[below((size_t)nlive)];
        if (o->n > grain) {
          unsigned char *p = o->p + grain * (1 + below((o->n - 1) / grain));
          if (!starts_live(p)) return *kind = 1, p;
        }
      }
      break;
    case 2:
      if (nlive) return *kind = 2, live[below((size_t)nlive)].p + 1 + below(7);
      break;
    default:
      return *kind = 3, (unsigned char *)foreign + 16;
    }
  }
  return *kind = 3, (unsigned char *)foreign;
}

/* ---- counted pages ---- */
static void fuzz_pages(long ops) {
  zc_pages_config_t cfg = {.page_size = (size_t)16384 << (below(3) * 2), .max_empty = 1 + below(4)};
  zc_pages_t *pg = zc_pages_create(&cfg);
  CHECK(pg != NULL);
  uint64_t allocs = 0, frees = 0;
  for (long op = 0; op < ops; op++) {
    unsigned r = (unsigned)below(100);
    if (r < 48 && nlive > 300) r += 48; /* keep a few hundred objects live: verification stays cheap */
    if (r < 48 && nlive < MAXLIVE) {
      size_t n = below(50) == 0 ? below(cfg.page_size * 2) : below(600); /* a few large ones */
      unsigned char *p;
      unsigned how = (unsigned)below(10);
      if (how == 0) p = zc_pages_alloc_aligned(pg, (size_t)16 << below(9), n);
      else if (how == 1) p = zc_pages_calloc(pg, 1, n);
      else p = zc_pages_alloc(pg, n);
      CHECK(p != NULL);
      if (p == NULL) continue;
      if (how == 1)
        for (size_t i = 0; i < n; i++)
          if (p[i]) {
            CHECK(p[i] == 0);
            break;
          }
      CHECK(zc_pages_usable_size(p) >= n);
      allocs++;
      add_live(p, n);
    } else if (r < 90 && nlive) {
      /* mostly the oldest few (messages), sometimes any */
      int k = below(4) ? (int)below((size_t)(nlive < 8 ? nlive : 8)) : (int)below((size_t)nlive);
      obj_t o = take_live(k);
      if (!intact(&o)) overwritten++;
      unsigned long e0 = zc_error_count();
      zc_pages_free(o.p);
      CHECK_EQ(zc_error_count() - e0, 0);
      frees++;
    } else if (r < 98) {
      int kind;
      unsigned char *p = bad_pointer(16, &kind);
      BAD_FREE(zc_pages_free(p));
    } else {
      zc_pages_collect(pg);
    }
    if (op % 256 == 0) {
      verify_all();
      zc_pages_stats_t s;
      zc_pages_stats(pg, &s);
      CHECK_EQ(s.allocs, allocs);
      CHECK_EQ(s.frees, frees);
    }
  }
  verify_all();
  while (nlive) zc_pages_free(take_live(0).p);
  CHECK_EQ(zc_pages_destroy_wait(pg, 0), 0);
}

/* ---- chunk ring ---- */
static void fuzz_ring(long ops) {
  size_t chunk = 128 * (1 + below(3)), n = 16 + below(200);
  zc_ring_t *r = zc_ring_create(chunk, n);
  CHECK(r != NULL);
  size_t max = (n / 2) * chunk;
  for (long op = 0; op < ops; op++) {
    unsigned c = (unsigned)below(100);
    if (c < 45 && nlive < MAXLIVE) {
      size_t sz = below(4) ? below(chunk * 3) : below(max + chunk);
      unsigned char *p;
      if (below(5) == 0 && sz <= max) { /* reserve for sz, commit less (or cancel) */
        p = zc_ring_reserve(r, sz);
        if (p && below(6) == 0) {
          zc_ring_cancel(r);
          continue;
        }
        size_t used = below(sz + 1);
        if (p) CHECK_EQ(zc_ring_commit(r, p, used), 0);
        sz = used;
      } else {
        p = zc_ring_alloc(r, sz);
      }
      if (p == NULL) {
        CHECK(errno == EAGAIN || (errno == EMSGSIZE && sz > max));
        continue;
      }
      CHECK(((uintptr_t)p & 127) == 0);
      add_live(p, sz);
      live[nlive - 1].tag = zc_ring_tag(r);
    } else if (c < 90 && nlive) {
      int k = below(3) ? 0 : (int)below((size_t)nlive); /* live[] is not in order; roughly oldest */
      obj_t o = take_live(k);
      if (!intact(&o)) overwritten++;
      unsigned long e0 = zc_error_count();
      if (below(2)) zc_ring_free_tagged(r, o.p, o.tag);
      else zc_ring_free(r, o.p);
      CHECK_EQ(zc_error_count() - e0, 0);
    } else if (c < 94 && ngrave) { /* tagged: a stale pointer (maybe a newer message's start), old tag */
      size_t g = below((size_t)(ngrave < 256 ? ngrave : 256));
      BAD_FREE(zc_ring_free_tagged(r, graveyard[g], graveyard_tag[g]));
    } else if (c < 95 && nlive) { /* tagged: a live message with a wrong tag */
      obj_t *o = &live[below((size_t)nlive)];
      BAD_FREE(zc_ring_free_tagged(r, o->p, o->tag + 1 + below(3)));
    } else if (c < 98) {
      int kind;
      unsigned char *p = bad_pointer(chunk, &kind);
      if (below(2)) BAD_FREE(zc_ring_free(r, p));
      else BAD_FREE(zc_ring_free_tagged(r, p, rnd()));
    } else {
      zc_ring_trim(r);
    }
    if (op % 64 == 0) {
      verify_all();
      zc_ring_stats_t s;
      zc_ring_stats(r, &s);
      CHECK_EQ(s.allocs - s.frees, (uint64_t)nlive);
      uint64_t req = 0;
      for (int i = 0; i < nlive; i++) req += live[i].n;
      CHECK_EQ(s.requested, req);
      CHECK(s.in_use <= s.occupied && s.occupied <= s.held && s.peak >= s.occupied);
    }
  }
  verify_all();
  while (nlive) zc_ring_free(r, take_live(0).p);
  zc_ring_stats_t s;
  zc_ring_stats(r, &s);
  CHECK_EQ(s.occupied, 0);
  CHECK_EQ(s.errors, (uint64_t)bad_injected); /* every bad free of a ring is charged to it */
  zc_ring_destroy(r);
}

/* ---- pool ----
 * No frees: the misuse is a reset or destroy from a cleanup, and cleanups that create children or add
 * cleanups during a clear. The model: per pool, its live objects; every cleanup must run exactly once. */
#define MAXPOOL 16
static zc_pool_t *pools[MAXPOOL];
static int npools;
static long cleanups_added, cleanups_run;

typedef struct { zc_pool_t *pool; int action; } clean_t;
static clean_t cargs[1 << 16];
static int ncargs;

static void on_clean(void *arg) {
  clean_t *c = arg;
  cleanups_run++;
  if (c->action == 1) { /* misuse: reset or destroy the pool being cleared */
    unsigned long e0 = zc_error_count();
    if (below(2)) zc_pool_reset(c->pool);
    else zc_pool_destroy(c->pool);
    CHECK_EQ(zc_error_count() - e0, 1);
  } else if (c->action == 2) { /* a child created during the clear, with a cleanup of its own */
    zc_pool_t *k = zc_pool_create(c->pool, NULL);
    CHECK(k != NULL);
    if (k && ncargs < (1 << 16)) {
      char *x = zc_pool_alloc(k, 100);
      CHECK(x != NULL);
      cargs[ncargs] = (clean_t){k, 0};
      if (zc_pool_cleanup_add(k, on_clean, &cargs[ncargs]) == 0) cleanups_added++;
      ncargs++;
    }
  }
}

/* objects of pool i live in live[] with their pool index in the top byte of seed? kept simple: a parallel
 * array of owners */
static int owner_of[MAXLIVE];

static void drop_pool_objects(int pi, int also_descendants_of) {
  (void)also_descendants_of;
  for (int i = 0; i < nlive;) {
    if (owner_of[i] == pi) {
      live[i] = live[nlive - 1];
      owner_of[i] = owner_of[nlive - 1];
      nlive--;
    } else {
      i++;
    }
  }
}

static void fuzz_pool(long ops) {
  pools[0] = zc_pool_create(NULL, NULL);
  npools = 1;
  for (long op = 0; op < ops; op++) {
    int pi = (int)below((size_t)npools);
    zc_pool_t *p = pools[pi];
    unsigned c = (unsigned)below(100);
    if (c < 70 && nlive < MAXLIVE) {
      size_t n = below(8) ? below(300) : below(70000);
      unsigned char *q;
      unsigned how = (unsigned)below(6);
      if (how == 0) q = zc_pool_alloc_aligned(p, (size_t)16 << below(10), n);
      else if (how == 1) q = zc_pool_calloc(p, 1, n);
      else if (how == 2 && n > 1) {
        q = (unsigned char *)zc_pool_printf(p, "%0*d", (int)(n - 1), 7);
        CHECK(q && strlen((char *)q) == n - 1);
      } else q = zc_pool_alloc(p, n);
      CHECK(q != NULL);
      if (q == NULL) continue;
      owner_of[nlive] = pi;
      add_live(q, n);
    } else if (c < 80) {
      if (ncargs < (1 << 16)) {
        cargs[ncargs] = (clean_t){p, below(4) == 0 ? 1 + (int)below(2) : 0};
        if (zc_pool_cleanup_add(p, on_clean, &cargs[ncargs]) == 0) cleanups_added++;
        ncargs++;
      }
    } else if (c < 86 && npools < MAXPOOL) {
      zc_pool_t *k = zc_pool_create(p, NULL);
      CHECK(k != NULL);
      if (k) pools[npools++] = k;
    } else if (c < 93) {
      verify_all(); /* everything must be intact right before the clear */
      /* reset or destroy pool pi: its objects and its descendants' go away */
      int destroy = pi != 0 && below(2);
      int gone[MAXPOOL] = {0};
      for (int j = 0; j < npools; j++)
        for (zc_pool_t *q = pools[j]; q; q = zc_pool_parent(q))
          if (q == p && (j != pi || destroy)) gone[j] = 1;
      for (int j = 0; j < npools; j++)
        if (gone[j] || j == pi) drop_pool_objects(j, 0);
      if (destroy) zc_pool_destroy(p);
      else zc_pool_reset(p);
      int m = 0;
      for (int j = 0; j < npools; j++) {
        if (gone[j]) continue;
        /* renumber owners */
        for (int i = 0; i < nlive; i++)
          if (owner_of[i] == j) owner_of[i] = m;
        pools[m++] = pools[j];
      }
      npools = m;
      zc_pool_stats_t s;
      zc_pool_stats(pools[0], &s);
      CHECK(s.resident <= s.held && s.held <= s.tree_held);
    } else {
      zc_pool_trim(p);
    }
    if (op % 32 == 0) verify_all();
  }
  verify_all();
  zc_pool_destroy(pools[0]);
  nlive = 0;
  CHECK_EQ(cleanups_run, cleanups_added); /* every cleanup ran exactly once */
}

int main(int argc, char **argv) {
  const char *which = argc > 1 ? argv[1] : "";
  long seeds = argc > 2 ? atol(argv[2]) : 20, ops = argc > 3 ? atol(argv[3]) : strcmp(which, "pool") ? 20000 : 4000;
  if (getenv("ZC_TEST_QUICK")) seeds = seeds > 5 ? 5 : seeds;
  zc_option_set(zc_option_purge_delay, 1); /* the purger's passes every 0.5 ms, among the operations */
  for (long sd = 1; sd <= seeds; sd++) {
    rs = 0x9e3779b97f4a7c15ull * (uint64_t)sd;
    nlive = ngrave = 0;
    bad_injected = bad_reported = overwritten = 0;
    cleanups_added = cleanups_run = 0;
    ncargs = 0;
    if (strcmp(which, "pages") == 0) fuzz_pages(ops);
    else if (strcmp(which, "ring") == 0) fuzz_ring(ops);
    else if (strcmp(which, "pool") == 0) fuzz_pool(ops);
    else {
      fprintf(stderr, "usage: test_lifetime_fuzz pages|ring|pool [seeds] [ops]\n");
      return 2;
    }
    CHECK_EQ(bad_reported, bad_injected);
    CHECK_EQ(overwritten, 0);
    if (check_failures) {
      fprintf(stderr, "seed %ld failed\n", sd);
      break;
    }
  }
  TEST_DONE("test_lifetime_fuzz");
}
