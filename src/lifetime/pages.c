/* Layer 8: counted pages (include/zcmem_pages.h). Bump allocation into a current page; each page counts
 * its live objects; a free from any thread decrements the count of the page it finds by masking; the
 * thread that brings a retired page's count to zero recycles it.
 *
 * Memory layout: 4 MiB chunks aligned to 4 MiB, registered in the chunk registry. A chunk's first page(s)
 * hold its header and one 64-byte metadata record per page (so the pages themselves carry no header and a
 * purge never touches metadata); the remaining pages are handed out. An object larger than a page gets a
 * chunk of its own (kind LARGE), whose header sits in front of the object.
 *
 * The count (meta.live) and its invariant:
 *   - a page that is not current: live == number of its objects not yet freed (0 means empty);
 *   - the current page: live == BIAS + (objects bumped this tenure, counted only by the owner in nalloc,
 *     published at retirement) - (frees so far) - nalloc; i.e. live + nalloc - BIAS == live objects. The
 *     bias keeps a concurrent free from ever seeing zero on the current page, so the owner needs no atomic
 *     operation per allocation and the freeing threads no coordination with it.
 *   - exactly one thread observes the transition to zero (the fetch_sub that returns 1, or the owner's
 *     retiring fetch_add that returns -published), and only that thread recycles the page.
 * Page states: UNUSED (never carved), CURRENT, RETIRED, EMPTY (dirty, in a free list), PURGED (in a free
 * list, memory given back). A page with a negative count (more frees than objects) is reported and
 * quarantined: its count is raised by QUARANTINE so it is never recycled, never corrupting a live object.
 *
 * The live bitmap: one bit per 16 bytes of the chunk's object pages, set (atomic OR, by the owner) when an
 * object starts there and cleared (atomic AND, by the freeing thread) when it is freed. A free whose bit is
 * already clear (a double free, a pointer inside an object, a pointer into the free tail) is reported before
 * the count is touched, so the count only ever counts real frees and a page is never recycled early. Every
 * bit of a page is clear when its count reaches zero (each object's free cleared its own bit first), so
 * recycling needs no clearing. The ends bitmap (same geometry, written by the owner only, with relaxed
 * stores) marks the last 16 bytes of each object of the page's current tenure: zc_pages_usable_size finds
 * an object's end without a header. The owner clears a page's ends bits when it takes the page. Together
 * the two bitmaps cost 1/64 of the object pages, in the chunk's metadata pages.
 *
 * Free lists: pages emptied by other threads go to a lock-free stack (multi-producer push with CAS; the
 * owner takes the whole stack with one exchange, so no ABA). The owner keeps the empty pages in two lists:
 * `dirty` (doubly linked, most recently emptied first) and `purged`. It reuses dirty pages hottest first,
 * then purged ones, then carves new ones.
 * Purge policy: up to max_empty empty pages stay dirty. Beyond that, when the owner takes a page it purges
 * the coldest dirty pages that have been empty for at least the purge delay (ZCMEM_PURGE_DELAY), so a
 * producer/consumer pair whose in-flight pages swing around the bound does not purge and fault the same
 * pages over and over; zc_pages_collect purges them all at once. Purging the page that was just emptied
 * would be backwards (it is the next one reused), hence the trim at the cold end. An owner that stopped
 * allocating never trims: a thread that empties a page while 4 * max_empty are already dirty purges that
 * page itself, so memory stays bounded without the owner.
 * Idle return: the allocator registers an idle hook (src/idle.h) with the background purger, which on
 * every pass (half the purge delay) takes in the remotely emptied pages and purges every empty page that
 * has been empty for the purge delay (as malloc's purger does for its heaps' pages), then gives back the
 * address space of every chunk whose object pages are all purged (unregistered at once, unmapped one pass
 * later: a late bad free that already read the registry still finds the header mapped).
 * pg->lock serialises the owner's slow path (page changes, large objects, collect, stats) with the purger;
 * the fast path (a bump in the current page) and zc_pages_free take no lock. The purger only trylocks.
 * Large objects are listed under pg->large_lock (taken only on their allocation, free and destroy).
 */
#include "idle.h"
#include "lifetime.h"
#include "zcmem_pages.h"

#include <errno.h>
#include <string.h>

#define PG_MAGIC 0x7a637067u /* "zcpg" */
#define PG_BIAS ((int64_t)1 << 40)
#define PG_QUARANTINE ((int64_t)1 << 50)
#define PG_MAX_ALIGN 4096u

enum { PG_KIND_PAGES = 1, PG_KIND_LARGE = 2 };
enum { PG_UNUSED = 0, PG_CURRENT, PG_RETIRED, PG_EMPTY, PG_PURGED };

typedef struct pg_meta_s {
  _Atomic int64_t live;        /* see the invariant above */
  _Atomic uint32_t top;        /* bytes of the page handed out (page size while current) */
  _Atomic uint8_t state;       /* PG_* state */
  struct pg_meta_s *next;      /* free-list link (written before a release push) */
  struct pg_meta_s *prev;      /* owner's dirty list only */
  uint64_t empty_since;        /* clock (ns) when the page last became empty */
} __attribute__((aligned(ZC_LT_CACHE_LINE))) pg_meta_t;

typedef struct pg_chunk_s {
  uint32_t magic;
  uint8_t kind;
  uint8_t page_shift;
  uint16_t first_page;         /* pages [first_page, npages) carry objects */
  uint32_t npages;
  zc_pages_t *owner;
  struct pg_chunk_s *next, *prev; /* page chunks: owner's list; large: owner's large list */
  size_t map_size;             /* large: bytes mapped */
  size_t data_off;             /* large: offset of the object from the chunk base */
  _Atomic int freed;           /* large: 1 once freed */
  uintptr_t data_start;        /* page chunks: address of the first object page (bitmaps start there) */
  _Atomic uint64_t *live_bm;   /* page chunks: 1 bit per 16 bytes from data_start, set while an object
                                * starts there */
  _Atomic uint64_t *ends_bm;   /* page chunks: 1 bit per 16 bytes, set at the last unit of each object */
  uint32_t purged_pages;       /* page chunks: scratch of chunks_release (pages on the owner's purged list) */
  pg_meta_t meta[];            /* page chunks: one per page */
} pg_chunk_t;

struct zc_pages_s {
  /* owner only, hot */
  char *bump, *end;            /* free part of the current page */
  pg_meta_t *cur;              /* current page (NULL before the first allocation) */
  int64_t nalloc;              /* objects bumped on the current page this tenure, not yet published */
  uintptr_t bm_base;           /* the current page's chunk: data_start, live_bm, ends_bm */
  _Atomic uint64_t *bm_live, *bm_ends;
  size_t page_size;
  unsigned page_shift;
  size_t max_empty, limit;
  size_t hard_empty;           /* dirty empty pages at which a freeing thread purges (4 * max_empty) */
  pg_meta_t *dirty, *dirty_cold; /* EMPTY pages, hottest first (owner only) */
  pg_meta_t *purged;           /* PURGED pages (owner only) */
  pg_chunk_t *chunks;          /* page chunks, owner only */
  pg_chunk_t *carve;           /* newest chunk, pages from carve_next on are UNUSED */
  uint32_t carve_next;
  uint64_t allocs, pages_carved, peak_in_use, peak_held;
  zc_lock_t lock;              /* owner's slow path vs. the purger's hook: every owner-only field but the
                                * fast path's (bump, end, nalloc, allocs) */
  pg_chunk_t *retiring;        /* chunks taken out of the registry, unmapped at the next release */
  uint64_t retiring_pages;     /* their object pages (all purged) */
  uint64_t chunks_released;    /* chunks unmapped before destroy, ever */
  zc_idle_t idle;
  /* shared with freeing threads */
  _Atomic(pg_meta_t *) remote_free __attribute__((aligned(ZC_LT_CACHE_LINE)));
  _Atomic int64_t empty_dirty __attribute__((aligned(ZC_LT_CACHE_LINE))); /* pages EMPTY, not purged */
  _Atomic int64_t pages_busy;
  _Atomic int64_t pages_purged;
  _Atomic int64_t wasted;
  _Atomic uint64_t held;
  _Atomic uint64_t errors;
  zc_lock_t large_lock;        /* protects large, large_live, large_bytes' consistency with the list */
  pg_chunk_t *large;
  _Atomic int64_t large_live;
  _Atomic uint64_t large_bytes;
};

static inline char *page_start(pg_meta_t *m, pg_chunk_t **chunk_out) {
  pg_chunk_t *c = (pg_chunk_t *)((uintptr_t)m & ~(uintptr_t)ZC_LT_CHUNK_MASK);
  if (chunk_out) *chunk_out = c;
  return (char *)c + ((size_t)(m - c->meta) << c->page_shift);
}

/* Mark the object [p, p+n) live (owner, every allocation): its start in the live bitmap (an atomic OR:
 * freeing threads clear other bits of the same word concurrently) and its last 16 bytes in the ends bitmap
 * (the owner is its only writer). */
static inline void obj_mark(zc_pages_t *pg, char *p, size_t n) {
  size_t i = ((uintptr_t)p - pg->bm_base) >> 4, e = i + (n >> 4) - 1;
  atomic_fetch_or_explicit(&pg->bm_live[i >> 6], (uint64_t)1 << (i & 63), memory_order_relaxed);
  _Atomic uint64_t *w = &pg->bm_ends[e >> 6];
  atomic_store_explicit(w, atomic_load_explicit(w, memory_order_relaxed) | (uint64_t)1 << (e & 63),
                        memory_order_relaxed);
}

/* Owner: forget the ends of the page's previous tenure (its live bits are all clear already). */
static void page_clear_ends(zc_pages_t *pg, char *start) {
  size_t i = ((uintptr_t)start - pg->bm_base) >> 4;
  for (size_t w = i >> 6, k = 0; k < pg->page_size >> 10; k++)
    atomic_store_explicit(&pg->bm_ends[w + k], 0, memory_order_relaxed);
}

static void report(zc_pages_t *pg, const char *what, const void *p) {
  if (pg) atomic_fetch_add_explicit(&pg->errors, 1, memory_order_relaxed);
  zc_error("zc_pages_free(%p): %s", p, what);
}

/* ---- creation and destruction ---- */

static bool pages_idle(void *arg);

zc_pages_t *zc_pages_create(const zc_pages_config_t *cfg) {
  zc_pages_config_t c = {0};
  if (cfg) c = *cfg;
  if (c.page_size == 0) c.page_size = (size_t)64 << 10;
  if (c.max_empty == 0) c.max_empty = 8;
  if (!zc_lt_is_pow2(c.page_size) || c.page_size < ((size_t)16 << 10) || c.page_size > ((size_t)1 << 20) ||
      c.page_size < zc_os_page_size()) {
    errno = EINVAL;
    return NULL;
  }
  zc_pages_t *pg = zc_os_alloc_aligned(zc_lt_os_round(sizeof *pg), zc_os_page_size());
  if (pg == NULL) return NULL;
  pg->page_size = c.page_size;
  pg->page_shift = (unsigned)__builtin_ctzl(c.page_size);
  pg->max_empty = c.max_empty;
  pg->hard_empty = c.max_empty > SIZE_MAX / 4 ? SIZE_MAX : 4 * c.max_empty;
  pg->limit = c.limit;
  zc_lock_init(&pg->large_lock);
  zc_lock_init(&pg->lock);
  pg->idle.fn = pages_idle;
  pg->idle.arg = pg;
  zc_idle_register(&pg->idle);
  return pg; /* the mapping is zeroed: every other field starts at 0/NULL */
}

void zc_pages_destroy(zc_pages_t *pg) {
  if (pg == NULL) return;
  zc_idle_unregister(&pg->idle); /* waits for a running pass of the purger */
  for (pg_chunk_t *c = pg->chunks, *n; c; c = n) {
    n = c->next;
    zc_lt_registry_set(c, ZC_LT_REG_NONE);
    zc_os_free(c, ZC_LT_CHUNK_SIZE);
  }
  for (pg_chunk_t *c = pg->retiring, *n; c; c = n) { /* out of the registry already */
    n = c->next;
    zc_os_free(c, ZC_LT_CHUNK_SIZE);
  }
  zc_lock(&pg->large_lock);
  for (pg_chunk_t *c = pg->large, *n; c; c = n) {
    n = c->next;
    zc_lt_registry_set(c, ZC_LT_REG_NONE);
    zc_os_free(c, c->map_size);
  }
  zc_unlock(&pg->large_lock);
  zc_os_free(pg, zc_lt_os_round(sizeof *pg));
}

static void owner_drain(zc_pages_t *pg);

/* Owner: true when no object is live and no freeing thread can still touch the allocator: every carved
 * page is current with nothing live, quarantined, or back in the owner's lists (a freeing thread's push onto
 * the remote stack is its last touch), and no large object is live (its free's last touch is under the
 * lock). */
static bool pages_quiet(zc_pages_t *pg) {
  owner_drain(pg);
  uint64_t parked = 0;
  for (pg_meta_t *m = pg->dirty; m; m = m->next) parked++;
  for (pg_meta_t *m = pg->purged; m; m = m->next) parked++;
  for (pg_chunk_t *c = pg->chunks; c; c = c->next) {
    uint32_t last = c == pg->carve ? pg->carve_next : c->npages;
    for (uint32_t i = c->first_page; i < last; i++) {
      pg_meta_t *m = &c->meta[i];
      int64_t l = atomic_load_explicit(&m->live, memory_order_acquire);
      if (m == pg->cur) parked += l - PG_BIAS + pg->nalloc == 0;
      else if (atomic_load_explicit(&m->state, memory_order_relaxed) == PG_RETIRED && l > PG_QUARANTINE / 2)
        parked++;
    }
  }
  zc_lock(&pg->large_lock);
  bool large = atomic_load_explicit(&pg->large_live, memory_order_relaxed) != 0;
  zc_unlock(&pg->large_lock);
  return !large && parked == pg->pages_carved;
}

int zc_pages_destroy_wait(zc_pages_t *pg, long timeout_ms) {
  if (pg == NULL) {
    errno = EINVAL;
    return -1;
  }
  uint64_t deadline = zc_os_clock_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
  for (;;) {
    zc_lock(&pg->lock);
    bool quiet = pages_quiet(pg);
    zc_unlock(&pg->lock);
    if (quiet) break;
    if (timeout_ms >= 0 && zc_os_clock_ns() >= deadline) {
      errno = EBUSY;
      return -1;
    }
    zc_os_sleep_ns(200000); /* 0.2 ms: the other threads are finishing their frees */
  }
  zc_pages_destroy(pg);
  return 0;
}

/* ---- page life cycle ---- */

static void held_add(zc_pages_t *pg, uint64_t n) {
  uint64_t h = atomic_fetch_add_explicit(&pg->held, n, memory_order_relaxed) + n;
  zc_lt_peak(&pg->peak_held, h);
}

/* Bytes that may be in memory (an upper bound): what is mapped less the purged pages, the pages of the
 * newest chunk not carved yet and the (purged) object pages of chunks waiting to be unmapped. The limit
 * applies to this, not to the address space. Owner, locked. */
static uint64_t pages_resident(zc_pages_t *pg) {
  uint64_t h = atomic_load_explicit(&pg->held, memory_order_relaxed);
  uint64_t off = (uint64_t)atomic_load_explicit(&pg->pages_purged, memory_order_relaxed) + pg->retiring_pages;
  if (pg->carve) off += pg->carve->npages - pg->carve_next;
  off <<= pg->page_shift;
  return h > off ? h - off : 0;
}

static void owner_trim(zc_pages_t *pg, size_t keep, bool force);

/* Owner: may n more bytes come into memory? If not at first, purge every empty page and look again. */
static bool limit_allows(zc_pages_t *pg, size_t n) {
  if (pg->limit == 0) return true;
  for (int pass = 0; pass < 2; pass++) {
    uint64_t r = pages_resident(pg);
    if (r <= pg->limit && n <= pg->limit - r) return true;
    if (pass == 0) {
      owner_drain(pg);
      owner_trim(pg, 0, true);
    }
  }
  return false;
}

static pg_chunk_t *chunk_new(zc_pages_t *pg) {
  if (!limit_allows(pg, (size_t)2 << pg->page_shift)) { /* its header page(s) and its first page */
    errno = ENOMEM;
    return NULL;
  }
  pg_chunk_t *c = zc_os_alloc_aligned(ZC_LT_CHUNK_SIZE, ZC_LT_CHUNK_SIZE);
  if (c == NULL) return NULL;
  uint32_t npages = (uint32_t)(ZC_LT_CHUNK_SIZE >> pg->page_shift);
  size_t hdr = zc_lt_align_up(sizeof(pg_chunk_t) + (size_t)npages * sizeof(pg_meta_t), ZC_LT_CACHE_LINE);
  size_t first = 1; /* the header and both bitmaps (1/128 of the object pages each) must fit before it */
  while (hdr + 2 * ((ZC_LT_CHUNK_SIZE - (first << pg->page_shift)) >> 7) > (first << pg->page_shift)) first++;
  size_t bm_words = (ZC_LT_CHUNK_SIZE - (first << pg->page_shift)) >> 10;
  c->magic = PG_MAGIC;
  c->kind = PG_KIND_PAGES;
  c->page_shift = (uint8_t)pg->page_shift;
  c->first_page = (uint16_t)first;
  c->npages = npages;
  c->data_start = (uintptr_t)c + (first << pg->page_shift);
  c->live_bm = (_Atomic uint64_t *)((char *)c + hdr);
  c->ends_bm = c->live_bm + bm_words;
  c->owner = pg;
  if (!zc_lt_registry_set(c, ZC_LT_REG_PAGES)) {
    zc_os_free(c, ZC_LT_CHUNK_SIZE);
    errno = ENOMEM;
    return NULL;
  }
  c->next = pg->chunks;
  pg->chunks = c;
  pg->carve = c;
  pg->carve_next = c->first_page;
  held_add(pg, ZC_LT_CHUNK_SIZE);
  return c;
}

static void purge_page(zc_pages_t *pg, pg_meta_t *m) {
  zc_os_purge(page_start(m, NULL), pg->page_size, (int)zc_opt(zc_option_purge_mode));
  atomic_fetch_add_explicit(&pg->pages_purged, 1, memory_order_relaxed);
  atomic_store_explicit(&m->state, PG_PURGED, memory_order_relaxed);
}

/* Owner: put an empty page on its dirty (hot end) or purged list. */
static void owner_keep(zc_pages_t *pg, pg_meta_t *m) {
  if (atomic_load_explicit(&m->state, memory_order_relaxed) == PG_PURGED) {
    m->next = pg->purged;
    pg->purged = m;
    return;
  }
  m->prev = NULL;
  m->next = pg->dirty;
  if (pg->dirty) pg->dirty->prev = m;
  else pg->dirty_cold = m;
  pg->dirty = m;
}

/* Owner: take in the pages other threads emptied (oldest first, so the newest end up hottest). */
static void owner_drain(zc_pages_t *pg) {
  /* seq_cst: the purger's wake-up protocol (page_recycle) */
  pg_meta_t *r = atomic_exchange_explicit(&pg->remote_free, NULL, memory_order_seq_cst), *rev = NULL;
  while (r) {
    pg_meta_t *n = r->next;
    r->next = rev;
    rev = r;
    r = n;
  }
  while (rev) {
    pg_meta_t *n = rev->next;
    owner_keep(pg, rev);
    rev = n;
  }
}

/* Owner: purge the coldest dirty pages while more than keep are dirty (unless force, only those empty for
 * at least the purge delay). */
static void owner_trim(zc_pages_t *pg, size_t keep, bool force) {
  uint64_t now = 0, delay = force ? 0 : (uint64_t)zc_opt(zc_option_purge_delay) * 1000000u;
  while (pg->dirty_cold && (uint64_t)atomic_load_explicit(&pg->empty_dirty, memory_order_relaxed) > keep) {
    pg_meta_t *m = pg->dirty_cold;
    if (delay) {
      if (now == 0) now = zc_os_clock_ns();
      if (now - m->empty_since < delay) break;
    }
    pg->dirty_cold = m->prev;
    if (m->prev) m->prev->next = NULL;
    else pg->dirty = NULL;
    atomic_fetch_sub_explicit(&pg->empty_dirty, 1, memory_order_relaxed);
    purge_page(pg, m);
    m->next = pg->purged;
    pg->purged = m;
  }
}

/* An empty page for the owner: the hottest dirty page, then a purged one, then a fresh one. */
static pg_meta_t *page_take(zc_pages_t *pg) {
  if (pg->dirty == NULL) owner_drain(pg);
  pg_meta_t *m = pg->dirty;
  if (m) {
    pg->dirty = m->next;
    if (m->next) m->next->prev = NULL;
    else pg->dirty_cold = NULL;
    atomic_fetch_sub_explicit(&pg->empty_dirty, 1, memory_order_relaxed);
    owner_trim(pg, pg->max_empty, false);
    return m;
  }
  /* A purged or fresh page comes back into memory: the limit decides. */
  if ((pg->purged != NULL || (pg->carve != NULL && pg->carve_next < pg->carve->npages)) &&
      !limit_allows(pg, pg->page_size)) {
    errno = ENOMEM;
    return NULL;
  }
  if ((m = pg->purged) != NULL) {
    pg->purged = m->next;
    atomic_fetch_sub_explicit(&pg->pages_purged, 1, memory_order_relaxed);
    return m;
  }
  if (pg->carve == NULL || pg->carve_next >= pg->carve->npages) {
    if (chunk_new(pg) == NULL) return NULL;
  }
  pg->pages_carved++;
  return &pg->carve->meta[pg->carve_next++];
}

/* The page's count reached zero (it is not current): make it empty. */
static void page_recycle(zc_pages_t *pg, pg_meta_t *m, bool by_owner) {
  uint32_t top = atomic_load_explicit(&m->top, memory_order_relaxed);
  atomic_fetch_sub_explicit(&pg->wasted, (int64_t)(pg->page_size - top), memory_order_relaxed);
  atomic_fetch_sub_explicit(&pg->pages_busy, 1, memory_order_relaxed);
  int64_t dirty = atomic_fetch_add_explicit(&pg->empty_dirty, 1, memory_order_relaxed) + 1;
  m->empty_since = zc_os_clock_ns();
  if (by_owner) {
    zc_idle_kick(); /* the purger ages the page (it may have stopped while nothing was empty) */
    atomic_store_explicit(&m->state, PG_EMPTY, memory_order_relaxed);
    owner_keep(pg, m);
    owner_trim(pg, pg->max_empty, false);
    return;
  }
  if ((uint64_t)dirty > pg->hard_empty) { /* the owner is not trimming: purge it here */
    atomic_fetch_sub_explicit(&pg->empty_dirty, 1, memory_order_relaxed);
    purge_page(pg, m);
  } else {
    atomic_store_explicit(&m->state, PG_EMPTY, memory_order_relaxed);
  }
  zc_test_point(ZC_TP_PAGES_RECYCLE);
  /* seq_cst, and the kick after it (idle.h): the purger's last sweep before its idle sleep either takes the
   * page in (owner_drain's exchange) or its state, which the kick reads, says it is not running. A kick
   * before the push (as it was) saw it running, and a push after that sweep was never aged: the page stayed
   * resident until the owner's next call (core_purger_settle_pages). */
  pg_meta_t *head = atomic_load_explicit(&pg->remote_free, memory_order_relaxed);
  do {
    m->next = head;
  } while (!atomic_compare_exchange_weak_explicit(&pg->remote_free, &head, m, memory_order_seq_cst,
                                                  memory_order_relaxed));
  zc_idle_kick();
}

/* Publish the current page's allocation count and let it go. */
static void page_retire(zc_pages_t *pg) {
  pg_meta_t *m = pg->cur;
  char *start = page_start(m, NULL);
  atomic_store_explicit(&m->top, (uint32_t)(pg->bump - start), memory_order_relaxed);
  atomic_fetch_add_explicit(&pg->wasted, (int64_t)(pg->end - pg->bump), memory_order_relaxed);
  atomic_store_explicit(&m->state, PG_RETIRED, memory_order_relaxed);
  int64_t delta = pg->nalloc - PG_BIAS;
  int64_t now = atomic_fetch_add_explicit(&m->live, delta, memory_order_acq_rel) + delta;
  pg->cur = NULL;
  pg->bump = pg->end = NULL;
  pg->nalloc = 0;
  if (now == 0) {
    page_recycle(pg, m, true);
  } else if (zc_lt_unlikely(now < 0)) {
    atomic_fetch_add_explicit(&pg->errors, 1, memory_order_relaxed);
    zc_error("zc_pages: page %p had %ld more frees than objects (double free); page quarantined",
             (void *)start, (long)-now);
    atomic_fetch_add_explicit(&m->live, PG_QUARANTINE, memory_order_relaxed);
  }
}

static bool page_make_current(zc_pages_t *pg) {
  pg_meta_t *m = page_take(pg);
  if (m == NULL) return false;
  pg_chunk_t *c;
  char *start = page_start(m, &c);
  pg->bm_base = c->data_start;
  pg->bm_live = c->live_bm;
  pg->bm_ends = c->ends_bm;
  page_clear_ends(pg, start);
  atomic_store_explicit(&m->top, (uint32_t)pg->page_size, memory_order_relaxed);
  atomic_fetch_add_explicit(&m->live, PG_BIAS, memory_order_relaxed); /* add, not store: see free() */
  atomic_store_explicit(&m->state, PG_CURRENT, memory_order_release);
  pg->cur = m;
  pg->bump = start;
  pg->end = start + pg->page_size;
  pg->nalloc = 0;
  int64_t busy = atomic_fetch_add_explicit(&pg->pages_busy, 1, memory_order_relaxed) + 1;
  uint64_t in_use = (uint64_t)busy * pg->page_size +
                    atomic_load_explicit(&pg->large_bytes, memory_order_relaxed);
  zc_lt_peak(&pg->peak_in_use, in_use);
  return true;
}

/* ---- large objects ---- */

static void *large_alloc(zc_pages_t *pg, size_t align, size_t size) {
  size_t off = zc_lt_align_up(sizeof(pg_chunk_t), align > ZC_LT_CACHE_LINE ? align : ZC_LT_CACHE_LINE);
  if (size > SIZE_MAX / 2) {
    errno = ENOMEM;
    return NULL;
  }
  size_t map = zc_lt_os_round(off + size);
  if (map == 0 || !limit_allows(pg, map)) {
    errno = ENOMEM;
    return NULL;
  }
  pg_chunk_t *c = zc_os_alloc_aligned(map, ZC_LT_CHUNK_SIZE);
  if (c == NULL) return NULL;
  c->magic = PG_MAGIC;
  c->kind = PG_KIND_LARGE;
  c->owner = pg;
  c->map_size = map;
  c->data_off = off;
  if (!zc_lt_registry_set(c, ZC_LT_REG_PAGES)) {
    zc_os_free(c, map);
    errno = ENOMEM;
    return NULL;
  }
  zc_lock(&pg->large_lock);
  c->next = pg->large;
  if (pg->large) pg->large->prev = c;
  pg->large = c;
  atomic_fetch_add_explicit(&pg->large_live, 1, memory_order_relaxed);
  uint64_t lb = atomic_fetch_add_explicit(&pg->large_bytes, map, memory_order_relaxed) + map;
  zc_unlock(&pg->large_lock);
  held_add(pg, map);
  uint64_t busy = (uint64_t)atomic_load_explicit(&pg->pages_busy, memory_order_relaxed);
  zc_lt_peak(&pg->peak_in_use, busy * pg->page_size + lb);
  pg->allocs++;
  return (char *)c + off;
}

static void large_free(pg_chunk_t *c, void *p) {
  zc_pages_t *pg = c->owner;
  if ((char *)p != (char *)c + c->data_off) {
    report(pg, "not the start of a large object", p);
    return;
  }
  int expect = 0;
  if (!atomic_compare_exchange_strong(&c->freed, &expect, 1)) {
    report(pg, "double free of a large object", p);
    return;
  }
  zc_lock(&pg->large_lock);
  if (c->prev) c->prev->next = c->next;
  else pg->large = c->next;
  if (c->next) c->next->prev = c->prev;
  atomic_fetch_sub_explicit(&pg->large_live, 1, memory_order_relaxed);
  atomic_fetch_sub_explicit(&pg->large_bytes, c->map_size, memory_order_relaxed);
  atomic_fetch_sub_explicit(&pg->held, c->map_size, memory_order_relaxed);
  zc_unlock(&pg->large_lock); /* the last touch of pg: zc_pages_destroy_wait may unmap it from here on */
  zc_lt_registry_set(c, ZC_LT_REG_NONE);
  zc_os_free(c, c->map_size);
}

/* ---- allocation ---- */

static void *alloc_slow_locked(zc_pages_t *pg, size_t align, size_t n) {
  if (n > pg->page_size || n + align - ZC_LT_ALIGN > pg->page_size) return large_alloc(pg, align, n);
  pg_meta_t *m = pg->cur;
  if (m != NULL) {
    /* Every object of the current page freed already: start it over instead of retiring it. */
    int64_t live = atomic_load_explicit(&m->live, memory_order_acquire);
    if (live == PG_BIAS - pg->nalloc) {
      atomic_fetch_add_explicit(&m->live, pg->nalloc, memory_order_relaxed);
      pg->nalloc = 0;
      pg->bump = page_start(m, NULL);
      page_clear_ends(pg, pg->bump);
    } else {
      page_retire(pg);
    }
  }
  if (pg->cur == NULL && !page_make_current(pg)) return NULL;
  char *p = (char *)zc_lt_align_up((uintptr_t)pg->bump, align);
  pg->bump = p + n;
  pg->nalloc++;
  pg->allocs++;
  obj_mark(pg, p, n);
  return p;
}

__attribute__((noinline)) static void *alloc_slow(zc_pages_t *pg, size_t align, size_t n) {
  zc_lock(&pg->lock);
  void *p = alloc_slow_locked(pg, align, n);
  zc_unlock(&pg->lock);
  return p;
}

void *zc_pages_alloc(zc_pages_t *pg, size_t size) {
  if (zc_lt_unlikely(pg == NULL)) {
    errno = EINVAL;
    return NULL;
  }
  size_t n = size ? zc_lt_align_up(size, ZC_LT_ALIGN) : ZC_LT_ALIGN;
  if (zc_lt_unlikely(n < size)) {
    errno = ENOMEM;
    return NULL;
  }
  char *p = pg->bump;
  if (zc_lt_likely(n <= (size_t)(pg->end - p))) {
    pg->bump = p + n;
    pg->nalloc++;
    pg->allocs++;
    obj_mark(pg, p, n);
    return p;
  }
  return alloc_slow(pg, ZC_LT_ALIGN, n);
}

void *zc_pages_alloc_aligned(zc_pages_t *pg, size_t align, size_t size) {
  if (pg == NULL || !zc_lt_is_pow2(align) || align > PG_MAX_ALIGN) {
    errno = EINVAL;
    return NULL;
  }
  if (align <= ZC_LT_ALIGN) return zc_pages_alloc(pg, size);
  size_t n = size ? zc_lt_align_up(size, ZC_LT_ALIGN) : ZC_LT_ALIGN;
  if (n < size) {
    errno = ENOMEM;
    return NULL;
  }
  char *p = (char *)zc_lt_align_up((uintptr_t)pg->bump, align);
  if (pg->cur && p <= pg->end && n <= (size_t)(pg->end - p)) {
    pg->bump = p + n;
    pg->nalloc++;
    pg->allocs++;
    obj_mark(pg, p, n);
    return p;
  }
  return alloc_slow(pg, align, n);
}

void *zc_pages_calloc(zc_pages_t *pg, size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  void *p = zc_pages_alloc(pg, total);
  /* A recycled page holds its previous objects' bytes (and MADV_FREE may keep them): always clear, except
   * a large object, which is a fresh zeroed mapping. */
  if (p != NULL && total <= pg->page_size) memset(p, 0, total);
  return p;
}

/* ---- free (any thread) ---- */

/* The chunk and page of p if p is the start of a live object (large: *m = NULL); else report and NULL. */
static pg_chunk_t *obj_find(void *p, pg_meta_t **m_out, const char *who) {
  if (zc_lt_unlikely(zc_lt_registry_get(p) != ZC_LT_REG_PAGES)) {
    zc_error("%s(%p): not an object of a live counted-pages allocator", who, p);
    return NULL;
  }
  pg_chunk_t *c = (pg_chunk_t *)((uintptr_t)p & ~(uintptr_t)ZC_LT_CHUNK_MASK);
  if (c->magic != PG_MAGIC) {
    zc_error("%s(%p): chunk header damaged", who, p);
    return NULL;
  }
  *m_out = NULL;
  if (c->kind != PG_KIND_PAGES) {
    if ((char *)p != (char *)c + c->data_off || atomic_load_explicit(&c->freed, memory_order_relaxed)) {
      report(c->owner, "not a live large object", p);
      return NULL;
    }
    return c;
  }
  size_t off = (uintptr_t)p - (uintptr_t)c, idx = off >> c->page_shift;
  size_t bit = ((uintptr_t)p - c->data_start) >> 4;
  if (idx < c->first_page || (off & (ZC_LT_ALIGN - 1)) != 0 ||
      (atomic_load_explicit(&c->live_bm[bit >> 6], memory_order_relaxed) & ((uint64_t)1 << (bit & 63))) == 0) {
    report(c->owner, "no live object starts here", p);
    return NULL;
  }
  *m_out = &c->meta[idx];
  return c;
}

size_t zc_pages_usable_size(const void *p) {
  if (p == NULL) return 0;
  pg_meta_t *m;
  pg_chunk_t *c = obj_find((void *)p, &m, "zc_pages_usable_size");
  if (c == NULL) return 0;
  if (m == NULL) return c->map_size - c->data_off;
  /* The first end mark at or after the object's first unit: never beyond its page (the page's last object
   * has one, set when it was handed out). */
  size_t i = ((uintptr_t)p - c->data_start) >> 4, e = i;
  size_t last = i | ((((size_t)1 << c->page_shift) >> 4) - 1);
  for (;;) {
    uint64_t w = atomic_load_explicit(&c->ends_bm[e >> 6], memory_order_relaxed) >> (e & 63);
    if (w) {
      e += (size_t)__builtin_ctzll(w);
      break;
    }
    e = (e | 63) + 1;
    if (e > last) return 0; /* cannot happen for a live object */
  }
  return (e - i + 1) << 4;
}

/* ---- free (any thread) ---- */

void zc_pages_free(void *p) {
  if (p == NULL) return;
  if (zc_lt_unlikely(zc_lt_registry_get(p) != ZC_LT_REG_PAGES)) {
    report(NULL, "not an object of a live counted-pages allocator", p);
    return;
  }
  pg_chunk_t *c = (pg_chunk_t *)((uintptr_t)p & ~(uintptr_t)ZC_LT_CHUNK_MASK);
  if (zc_lt_unlikely(c->magic != PG_MAGIC)) {
    report(NULL, "chunk header damaged", p);
    return;
  }
  if (zc_lt_unlikely(c->kind != PG_KIND_PAGES)) {
    large_free(c, p);
    return;
  }
  zc_pages_t *pg = c->owner;
  size_t off = (uintptr_t)p - (uintptr_t)c;
  size_t idx = off >> c->page_shift;
  size_t in_page = off & (((size_t)1 << c->page_shift) - 1);
  if (zc_lt_unlikely(idx < c->first_page)) {
    report(pg, "points into page metadata", p);
    return;
  }
  pg_meta_t *m = &c->meta[idx];
  uint8_t state = atomic_load_explicit(&m->state, memory_order_acquire);
  if (zc_lt_unlikely(state != PG_CURRENT && state != PG_RETIRED)) {
    report(pg, "page holds no live objects (double free or stray pointer)", p);
    return;
  }
  if (zc_lt_unlikely((in_page & (ZC_LT_ALIGN - 1)) != 0 ||
                     in_page >= atomic_load_explicit(&m->top, memory_order_relaxed))) {
    report(pg, "not the start of an object handed out from its page", p);
    return;
  }
  /* The object's live bit, cleared before the count moves: a clear bit means no object starts here. */
  size_t bit = ((uintptr_t)p - c->data_start) >> 4;
  uint64_t mask = (uint64_t)1 << (bit & 63);
  if (zc_lt_unlikely((atomic_fetch_and_explicit(&c->live_bm[bit >> 6], ~mask, memory_order_relaxed) & mask) ==
                     0)) {
    report(pg, "no live object starts here (double free, or a pointer inside an object)", p);
    return;
  }
  int64_t old = atomic_fetch_sub_explicit(&m->live, 1, memory_order_acq_rel);
  if (zc_lt_likely(old > 1)) return;
  if (old == 1) {
    page_recycle(pg, m, false);
    return;
  }
  /* old <= 0: more frees than objects. Undo (an add, so a concurrent retire or reuse stays exact). */
  atomic_fetch_add_explicit(&m->live, 1, memory_order_relaxed);
  report(pg, "double free (page count would go below zero)", p);
}

/* ---- upkeep and stats (owner) ---- */

/* Owner, locked: unmap the chunks retired by the previous call, then retire (take out of the registry) every
 * chunk but the one being carved whose object pages are all on the purged list. Only pages on the owner's
 * lists are counted: a freeing thread's last touch of a page is its push onto the remote stack, so no
 * thread still touches a chunk retired here, except a bad free that read the registry just before: it
 * finds the header still mapped (the unmap waits for the next call) and the page PURGED, and reports. */
static void chunks_release(zc_pages_t *pg) {
  for (pg_chunk_t *c = pg->retiring, *n; c; c = n) {
    n = c->next;
    pg->retiring_pages -= c->npages - c->first_page;
    atomic_fetch_sub_explicit(&pg->held, ZC_LT_CHUNK_SIZE, memory_order_relaxed);
    pg->chunks_released++;
    zc_os_free(c, ZC_LT_CHUNK_SIZE);
  }
  pg->retiring = NULL;
  if (pg->purged == NULL) return;
  for (pg_chunk_t *c = pg->chunks; c; c = c->next) c->purged_pages = 0;
  pg_chunk_t *c;
  for (pg_meta_t *m = pg->purged; m; m = m->next) {
    page_start(m, &c);
    c->purged_pages++;
  }
  for (pg_chunk_t **cp = &pg->chunks; (c = *cp) != NULL;) {
    if (c != pg->carve && c->purged_pages == c->npages - c->first_page) {
      *cp = c->next;
      c->next = pg->retiring;
      pg->retiring = c;
      c->purged_pages = UINT32_MAX; /* marks it for the filter below */
    } else {
      cp = &c->next;
    }
  }
  if (pg->retiring == NULL) return;
  for (pg_meta_t **mp = &pg->purged, *m; (m = *mp) != NULL;) {
    page_start(m, &c);
    if (c->purged_pages == UINT32_MAX) *mp = m->next;
    else mp = &m->next;
  }
  for (c = pg->retiring; c; c = c->next) {
    uint32_t k = c->npages - c->first_page;
    zc_lt_registry_set(c, ZC_LT_REG_NONE);
    atomic_fetch_sub_explicit(&pg->pages_purged, k, memory_order_relaxed);
    pg->pages_carved -= k;
    pg->retiring_pages += k;
  }
}

/* The purger's pass (idle.h): what the owner would do at its next page change, without waiting for it. */
static bool pages_idle(void *arg) {
  zc_pages_t *pg = arg;
  if (!zc_trylock(&pg->lock)) return true; /* the owner is in its slow path: next pass */
  bool purge = pg->max_empty != SIZE_MAX;
  owner_drain(pg);
  if (purge) owner_trim(pg, 0, false);
  chunks_release(pg);
  bool pending = (purge && pg->dirty != NULL) || pg->retiring != NULL;
  zc_unlock(&pg->lock);
  return pending;
}

void zc_pages_collect(zc_pages_t *pg) {
  if (pg == NULL) return;
  zc_lock(&pg->lock);
  owner_drain(pg);
  owner_trim(pg, 0, true);
  chunks_release(pg);
  zc_unlock(&pg->lock);
}

void zc_pages_stats(zc_pages_t *pg, zc_pages_stats_t *out) {
  memset(out, 0, sizeof *out);
  if (pg == NULL) return;
  zc_lock(&pg->lock);
  int64_t live = 0;
  for (pg_chunk_t *c = pg->chunks; c; c = c->next) {
    uint32_t last = c == pg->carve ? pg->carve_next : c->npages;
    for (uint32_t i = c->first_page; i < last; i++) {
      pg_meta_t *m = &c->meta[i];
      uint8_t st = atomic_load_explicit(&m->state, memory_order_relaxed);
      int64_t l = atomic_load_explicit(&m->live, memory_order_relaxed);
      if (st == PG_CURRENT) live += l - PG_BIAS + pg->nalloc;
      else if (st == PG_RETIRED && l < PG_QUARANTINE / 2) live += l;
    }
  }
  int64_t large_live = atomic_load_explicit(&pg->large_live, memory_order_relaxed);
  uint64_t busy = (uint64_t)atomic_load_explicit(&pg->pages_busy, memory_order_relaxed);
  out->pages_busy = busy;
  out->in_use = busy * pg->page_size + atomic_load_explicit(&pg->large_bytes, memory_order_relaxed);
  out->peak_in_use = pg->peak_in_use;
  out->held = atomic_load_explicit(&pg->held, memory_order_relaxed);
  out->resident = pages_resident(pg);
  out->peak_held = pg->peak_held;
  out->pages = pg->pages_carved;
  out->pages_purged = (uint64_t)atomic_load_explicit(&pg->pages_purged, memory_order_relaxed);
  out->wasted = (uint64_t)atomic_load_explicit(&pg->wasted, memory_order_relaxed);
  out->allocs = pg->allocs;
  out->large_live = (uint64_t)large_live;
  out->frees = pg->allocs - (uint64_t)(live + large_live);
  out->errors = atomic_load_explicit(&pg->errors, memory_order_relaxed);
  out->chunks_released = pg->chunks_released;
  zc_unlock(&pg->lock);
}
