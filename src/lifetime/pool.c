/* Layer 8: the pool, or arena (include/zcmem_pool.h). Bump allocation in blocks mapped from the OS; no
 * per-object free; reset and destroy walk the block lists once.
 *
 * Layout: the pool's own struct lives at the start of its first block, right after the block header, so a
 * pool costs one mapping. Blocks are listed in three singly linked lists: `used` (normal blocks filled
 * since the last reset, except the first), `spare` (normal blocks kept by a reset for reuse) and `large`
 * (one block per request above a quarter of a block or aligned above the OS page).
 * Invariants:
 *   - [bump, end) is the free tail of the block being filled (the first block, or the head of `used`);
 *   - held == bytes of all blocks this pool maps; tree_held == held + the children's tree_held; every
 *     ancestor's tree_held includes it; no pool's tree_held exceeds its nonzero limit;
 *   - the children list holds exactly the live pools created with this pool as parent.
 *
 * Clearing (reset, destroy) and the callbacks it runs: while a pool is being cleared its `clearing` flag is
 * set. The clear loops "destroy every child, then run every cleanup" until neither is left, so a cleanup
 * may create children of the pool or add cleanups: they are destroyed and run in the same clear, never
 * left alive behind a reset that says it destroys children. A cleanup may allocate from its pool (the
 * blocks are released only after the loop). What would free memory the clear is still walking is refused
 * with a report (zc_error): destroying or resetting a pool that is being cleared (its own pool, an ancestor
 * being destroyed), from one of its cleanups.
 *
 * Memory return: a reset keeps up to `retain` bytes of blocks (the spare list) and the first block. A spare
 * block that stays unused for the purge delay (ZCMEM_PURGE_DELAY) is purged (its pages past the header go
 * back to the OS; the mapping stays, reuse faults them back in) at the next reset or block change, or by the
 * background purger's pass (an idle hook, src/idle.h) without any call. A reset also parks the first block:
 * it closes the bump window (end = bump), so the next allocation takes the slow path, which reopens it under
 * the lock; while parked, the purger may purge the block's free part once it has been parked for the delay.
 * zc_pool_trim purges every spare block and the unused tail of the current block at once.
 * pool->lock serialises the owner's slow path (block changes, reset's block lists, trim, stats) with the
 * purger's hook (which only trylocks); the fast path takes no lock: the purger never touches a block the
 * owner can bump into without the lock (a spare block, or a parked first block).
 */
#include "idle.h"
#include "lifetime.h"
#include "zcmem_pool.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct pl_block_s {
  struct pl_block_s *next;
  size_t size;         /* bytes mapped, header included */
  uint64_t idle_since; /* spare blocks: clock (ns) when the block became spare */
  size_t purged;       /* spare blocks: bytes given back to the OS (0: none) */
} pl_block_t;

typedef struct pl_cleanup_s {
  struct pl_cleanup_s *next;
  void (*fn)(void *);
  void *arg;
} pl_cleanup_t;

struct zc_pool_s {
  char *bump, *end;
  pl_block_t *first, *used, *spare, *large;
  pl_cleanup_t *cleanups;       /* last registered first */
  zc_pool_t *parent, *child, *sib_next, *sib_prev;
  size_t block_size, limit, retain, spare_bytes;
  uint64_t held, tree_held, peak_held, in_use, peak_in_use, wasted;
  uint64_t allocs, resets, blocks, nlarge, children;
  uint64_t purged_bytes;        /* bytes of spare blocks (and of a parked first block) now purged */
  bool clearing;                /* inside reset or destroy: see "Clearing" above */
  /* under lock: the parked first block (see "Memory return") */
  bool parked;
  char *park_from, *park_end;   /* its free part; the window reopens to park_end */
  uint64_t park_since, park_purged;
  zc_lock_t lock;               /* spare list and blocks, purged_bytes, the parked state */
  zc_idle_t idle;
};

#define PL_HDR zc_lt_align_up(sizeof(pl_block_t), ZC_LT_ALIGN)

/* Charge n bytes of new mappings to pool and its ancestors, or fail (false) if a limit forbids it. */
static bool charge(zc_pool_t *pool, zc_pool_t *parent, uint64_t n) {
  for (zc_pool_t *q = pool ? pool : parent; q; q = q->parent) {
    if (q->limit && (q->tree_held > q->limit || n > q->limit - q->tree_held)) return false;
  }
  for (zc_pool_t *q = pool ? pool : parent; q; q = q->parent) q->tree_held += n;
  if (pool) {
    pool->held += n;
    zc_lt_peak(&pool->peak_held, pool->held);
  }
  return true;
}

static void uncharge(zc_pool_t *pool, uint64_t n) {
  pool->held -= n;
  for (zc_pool_t *q = pool; q; q = q->parent) q->tree_held -= n;
}

static pl_block_t *block_map(zc_pool_t *pool, size_t size, size_t align) {
  if (!charge(pool, NULL, size)) {
    errno = ENOMEM;
    return NULL;
  }
  pl_block_t *b = zc_os_alloc_aligned(size, align);
  if (b == NULL) {
    uncharge(pool, size);
    errno = ENOMEM;
    return NULL;
  }
  b->size = size;
  pool->blocks++;
  return b;
}

/* Give back the pages of [from, to) (rounded inwards to OS pages); the bytes purged. */
static size_t purge_range(char *from, char *to) {
  size_t pg = zc_os_page_size();
  uintptr_t a = zc_lt_align_up((uintptr_t)from, pg), b = (uintptr_t)to & ~(uintptr_t)(pg - 1);
  if (b <= a || !zc_os_purge((void *)a, b - a, (int)zc_opt(zc_option_purge_mode))) return 0;
  return b - a;
}

static void spare_purge(zc_pool_t *pool, pl_block_t *b) {
  if (b->purged) return;
  b->purged = purge_range((char *)b + PL_HDR, (char *)b + b->size);
  pool->purged_bytes += b->purged;
}

/* A spare block leaves the spare list (reused or unmapped): its purged pages count again. */
static void spare_unpurge(zc_pool_t *pool, pl_block_t *b) {
  pool->purged_bytes -= b->purged;
  b->purged = 0;
}

/* Purge the spare blocks idle for at least the purge delay (all of them if force). */
static void pool_age(zc_pool_t *pool, bool force) {
  uint64_t now = zc_os_clock_ns(), delay = (uint64_t)zc_opt(zc_option_purge_delay) * 1000000u;
  for (pl_block_t *b = pool->spare; b; b = b->next)
    if (force || now - b->idle_since >= delay) spare_purge(pool, b);
}

/* Locked: purge the parked first block's free part. */
static void park_purge(zc_pool_t *pool) {
  if (pool->park_purged) return;
  pool->park_purged = purge_range(pool->park_from, pool->park_end);
  pool->purged_bytes += pool->park_purged;
}

/* Locked (the owner's slow path): reopen the parked first block's window; its purged pages count again. */
static void unpark(zc_pool_t *pool) {
  pool->parked = false;
  pool->end = pool->park_end;
  pool->purged_bytes -= pool->park_purged;
  pool->park_purged = 0;
}

/* The purger's pass (idle.h): age the spare blocks and the parked first block as the owner would at its
 * next reset or block change. True while something is left to purge later. */
static bool pool_idle(void *arg) {
  zc_pool_t *pool = arg;
  if (!zc_trylock(&pool->lock)) return true; /* the owner is in its slow path: next pass */
  pool_age(pool, false);
  uint64_t now = zc_os_clock_ns(), delay = (uint64_t)zc_opt(zc_option_purge_delay) * 1000000u;
  if (pool->parked && now - pool->park_since >= delay) park_purge(pool);
  bool pending = pool->parked && !pool->park_purged;
  for (pl_block_t *b = pool->spare; b && !pending; b = b->next) pending = b->purged == 0;
  zc_unlock(&pool->lock);
  return pending;
}

static void block_unmap(zc_pool_t *pool, pl_block_t *b) {
  uncharge(pool, b->size);
  pool->blocks--;
  zc_os_free(b, b->size);
}

zc_pool_t *zc_pool_create(zc_pool_t *parent, const zc_pool_config_t *cfg) {
  zc_pool_config_t c = {0};
  if (cfg) c = *cfg;
  if (c.block_size == 0) c.block_size = (size_t)64 << 10;
  if (!zc_lt_is_pow2(c.block_size) || c.block_size < ((size_t)4 << 10) || c.block_size > ((size_t)64 << 20) ||
      c.block_size < zc_os_page_size() || c.block_size < 4 * (PL_HDR + sizeof(zc_pool_t))) {
    errno = EINVAL;
    return NULL;
  }
  if (c.retain == 0) c.retain = 4 * c.block_size;
  if (c.limit && c.limit < c.block_size) {
    errno = ENOMEM; /* not even the first block fits */
    return NULL;
  }
  if (parent && !charge(NULL, parent, c.block_size)) {
    errno = ENOMEM;
    return NULL;
  }
  pl_block_t *b = zc_os_alloc_aligned(c.block_size, zc_os_page_size());
  if (b == NULL) {
    for (zc_pool_t *q = parent; q; q = q->parent) q->tree_held -= c.block_size;
    errno = ENOMEM;
    return NULL;
  }
  b->size = c.block_size;
  zc_pool_t *pool = (zc_pool_t *)((char *)b + PL_HDR); /* zeroed mapping */
  pool->first = b;
  pool->block_size = c.block_size;
  pool->limit = c.limit;
  pool->retain = c.retain;
  pool->held = pool->tree_held = pool->peak_held = c.block_size;
  pool->blocks = 1;
  pool->bump = (char *)pool + zc_lt_align_up(sizeof(zc_pool_t), ZC_LT_ALIGN);
  pool->end = (char *)b + c.block_size;
  if (parent) {
    pool->parent = parent;
    pool->sib_next = parent->child;
    if (parent->child) parent->child->sib_prev = pool;
    parent->child = pool;
    parent->children++;
  }
  zc_lock_init(&pool->lock);
  pool->idle.fn = pool_idle;
  pool->idle.arg = pool;
  zc_idle_register(&pool->idle);
  return pool;
}

/* Destroy children and run cleanups until neither is left (a cleanup may add either), then release large
 * blocks and the filled blocks (keeping up to `retain` as spares). */
static void pool_clear(zc_pool_t *pool) {
  pool->clearing = true;
  while (pool->child || pool->cleanups) {
    while (pool->child) zc_pool_destroy(pool->child);
    if (pool->cleanups) {
      pl_cleanup_t *c = pool->cleanups;
      pool->cleanups = c->next;
      c->fn(c->arg);
    }
  }
  pool->clearing = false;
  zc_lock(&pool->lock);
  if (pool->parked) unpark(pool);
  for (pl_block_t *b = pool->large, *n; b; b = n) {
    n = b->next;
    pool->nlarge--;
    block_unmap(pool, b);
  }
  pool->large = NULL;
  uint64_t now = zc_os_clock_ns();
  for (pl_block_t *b = pool->used, *n; b; b = n) {
    n = b->next;
    if (pool->spare_bytes + b->size <= pool->retain) {
      b->next = pool->spare;
      b->idle_since = now;
      b->purged = 0;
      pool->spare = b;
      pool->spare_bytes += b->size;
    } else {
      block_unmap(pool, b);
    }
  }
  pool->used = NULL;
  pool_age(pool, false);
  zc_unlock(&pool->lock);
}

/* Refuse to clear a pool that is being cleared (called from one of its cleanups). */
static bool clear_refused(zc_pool_t *pool, const char *who) {
  if (zc_lt_likely(!pool->clearing)) return false;
  zc_error("%s(%p): the pool is being reset or destroyed (called from its cleanup); refused", who,
           (void *)pool);
  return true;
}

void zc_pool_reset(zc_pool_t *pool) {
  if (pool == NULL || clear_refused(pool, "zc_pool_reset")) return;
  pool_clear(pool);
  zc_lock(&pool->lock);
  pool->bump = (char *)pool + zc_lt_align_up(sizeof(zc_pool_t), ZC_LT_ALIGN);
  pool->end = pool->bump; /* parked: the next allocation reopens the window in the slow path */
  pool->parked = true;
  pool->park_from = pool->bump;
  pool->park_end = (char *)pool->first + pool->block_size;
  pool->park_since = zc_os_clock_ns();
  pool->park_purged = 0;
  zc_unlock(&pool->lock);
  pool->in_use = 0;
  pool->wasted = 0;
  pool->resets++;
  zc_idle_kick(); /* the purger ages the parked block and the spares */
}

void zc_pool_destroy(zc_pool_t *pool) {
  if (pool == NULL || clear_refused(pool, "zc_pool_destroy")) return;
  zc_idle_unregister(&pool->idle); /* waits for a running pass of the purger */
  pool_clear(pool);
  for (pl_block_t *b = pool->spare, *n; b; b = n) {
    n = b->next;
    spare_unpurge(pool, b);
    block_unmap(pool, b);
  }
  zc_pool_t *parent = pool->parent;
  if (parent) {
    if (pool->sib_prev) pool->sib_prev->sib_next = pool->sib_next;
    else parent->child = pool->sib_next;
    if (pool->sib_next) pool->sib_next->sib_prev = pool->sib_prev;
    parent->children--;
    for (zc_pool_t *q = parent; q; q = q->parent) q->tree_held -= pool->block_size;
  }
  zc_os_free(pool->first, pool->block_size);
}

void zc_pool_trim(zc_pool_t *pool) {
  if (pool == NULL) return;
  zc_lock(&pool->lock);
  pool_age(pool, true);
  /* The free tail of the block being filled (after a reset: the parked first block, counted in purged_bytes);
   * the next allocations fault its pages back in. A tail is not counted: resident stays an upper bound. */
  if (pool->parked) park_purge(pool);
  else purge_range(pool->bump, pool->end);
  zc_unlock(&pool->lock);
}

/* ---- allocation ---- */

static void *alloc_large(zc_pool_t *pool, size_t align, size_t n) {
  size_t pg = zc_os_page_size();
  size_t off = zc_lt_align_up(PL_HDR, align);
  if (n > SIZE_MAX / 2 || off > SIZE_MAX / 2) {
    errno = ENOMEM;
    return NULL;
  }
  size_t size = zc_lt_os_round(off + n);
  if (size == 0) {
    errno = ENOMEM;
    return NULL;
  }
  pl_block_t *b = block_map(pool, size, align > pg ? align : pg);
  if (b == NULL) return NULL;
  b->next = pool->large;
  pool->large = b;
  pool->nlarge++;
  pool->wasted += off - PL_HDR;
  return (char *)b + off;
}

static void *alloc_slow_locked(zc_pool_t *pool, size_t align, size_t n) {
  void *p;
  if (pool->parked) { /* after a reset: reopen the first block, then bump as the fast path would */
    unpark(pool);
    p = (char *)zc_lt_align_up((uintptr_t)pool->bump, align);
    if (align <= zc_os_page_size() && p <= (void *)pool->end && n <= (size_t)(pool->end - (char *)p)) {
      pool->wasted += (uint64_t)((char *)p - pool->bump);
      pool->bump = (char *)p + n;
      pool->allocs++;
      pool->in_use += n;
      zc_lt_peak(&pool->peak_in_use, pool->in_use);
      return p;
    }
  }
  if (n > pool->block_size / 4 || align > zc_os_page_size() || n + align > pool->block_size - PL_HDR) {
    p = alloc_large(pool, align, n);
  } else {
    pl_block_t *b = pool->spare;
    if (b) {
      pool->spare = b->next;
      pool->spare_bytes -= b->size;
      spare_unpurge(pool, b);
      if (pool->spare) pool_age(pool, false); /* the other spares age on each block change */
    } else if ((b = block_map(pool, pool->block_size, zc_os_page_size())) == NULL) {
      return NULL;
    }
    b->next = pool->used;
    pool->used = b;
    pool->wasted += (uint64_t)(pool->end - pool->bump);
    char *start = (char *)b + PL_HDR;
    p = (char *)zc_lt_align_up((uintptr_t)start, align);
    pool->wasted += (uint64_t)((char *)p - start);
    pool->bump = (char *)p + n;
    pool->end = (char *)b + b->size;
  }
  if (p == NULL) return NULL;
  pool->allocs++;
  pool->in_use += n;
  zc_lt_peak(&pool->peak_in_use, pool->in_use);
  return p;
}

__attribute__((noinline)) static void *alloc_slow(zc_pool_t *pool, size_t align, size_t n) {
  zc_lock(&pool->lock);
  void *p = alloc_slow_locked(pool, align, n);
  zc_unlock(&pool->lock);
  return p;
}

void *zc_pool_alloc(zc_pool_t *pool, size_t size) {
  if (zc_lt_unlikely(pool == NULL)) {
    errno = EINVAL;
    return NULL;
  }
  size_t n = size ? zc_lt_align_up(size, ZC_LT_ALIGN) : ZC_LT_ALIGN;
  if (zc_lt_unlikely(n < size)) {
    errno = ENOMEM;
    return NULL;
  }
  char *p = pool->bump;
  if (zc_lt_likely(n <= (size_t)(pool->end - p))) {
    pool->bump = p + n;
    pool->allocs++;
    pool->in_use += n;
    zc_lt_peak(&pool->peak_in_use, pool->in_use);
    return p;
  }
  return alloc_slow(pool, ZC_LT_ALIGN, n);
}

void *zc_pool_alloc_aligned(zc_pool_t *pool, size_t align, size_t size) {
  if (pool == NULL || !zc_lt_is_pow2(align)) {
    errno = EINVAL;
    return NULL;
  }
  if (align <= ZC_LT_ALIGN) return zc_pool_alloc(pool, size);
  size_t n = size ? zc_lt_align_up(size, ZC_LT_ALIGN) : ZC_LT_ALIGN;
  if (n < size) {
    errno = ENOMEM;
    return NULL;
  }
  if (align <= zc_os_page_size()) {
    char *p = (char *)zc_lt_align_up((uintptr_t)pool->bump, align);
    if (p <= pool->end && n <= (size_t)(pool->end - p)) {
      pool->wasted += (uint64_t)(p - pool->bump);
      pool->bump = p + n;
      pool->allocs++;
      pool->in_use += n;
      zc_lt_peak(&pool->peak_in_use, pool->in_use);
      return p;
    }
  }
  return alloc_slow(pool, align, n);
}

void *zc_pool_calloc(zc_pool_t *pool, size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  void *p = zc_pool_alloc(pool, total);
  /* Blocks come zeroed from the OS, but reused blocks (reset, spare) do not: always clear. */
  if (p) memset(p, 0, total);
  return p;
}

char *zc_pool_strdup(zc_pool_t *pool, const char *s) {
  if (zc_lt_unlikely(s == NULL)) {
    errno = EINVAL;
    return NULL;
  }
  size_t len = strlen(s) + 1;
  char *p = zc_pool_alloc(pool, len);
  if (p) memcpy(p, s, len);
  return p;
}

int zc_pool_cleanup_add(zc_pool_t *pool, void (*fn)(void *), void *arg) {
  if (pool == NULL || fn == NULL) {
    errno = EINVAL;
    return -1;
  }
  pl_cleanup_t *c = zc_pool_alloc(pool, sizeof *c);
  if (c == NULL) return -1;
  pool->in_use -= zc_lt_align_up(sizeof *c, ZC_LT_ALIGN); /* bookkeeping, not the caller's bytes */
  c->fn = fn;
  c->arg = arg;
  c->next = pool->cleanups;
  pool->cleanups = c;
  return 0;
}

/* Unlink the most recently registered cleanup (fn, arg); NULL if there is none. */
static pl_cleanup_t *cleanup_take(zc_pool_t *pool, void (*fn)(void *), void *arg) {
  for (pl_cleanup_t **pp = &pool->cleanups; *pp; pp = &(*pp)->next) {
    pl_cleanup_t *c = *pp;
    if (c->fn == fn && c->arg == arg) {
      *pp = c->next;
      return c;
    }
  }
  return NULL;
}

int zc_pool_cleanup_kill(zc_pool_t *pool, void (*fn)(void *), void *arg) {
  if (pool == NULL || fn == NULL) {
    errno = EINVAL;
    return -1;
  }
  if (cleanup_take(pool, fn, arg) == NULL) {
    errno = ENOENT;
    return -1;
  }
  return 0;
}

int zc_pool_cleanup_run(zc_pool_t *pool, void (*fn)(void *), void *arg) {
  if (zc_pool_cleanup_kill(pool, fn, arg) != 0) return -1;
  fn(arg);
  return 0;
}

void *zc_pool_memdup(zc_pool_t *pool, const void *p, size_t n) {
  if (zc_lt_unlikely(p == NULL && n != 0)) {
    errno = EINVAL;
    return NULL;
  }
  void *q = zc_pool_alloc(pool, n);
  if (q && n) memcpy(q, p, n);
  return q;
}

char *zc_pool_strndup(zc_pool_t *pool, const char *s, size_t n) {
  if (zc_lt_unlikely(s == NULL)) {
    errno = EINVAL;
    return NULL;
  }
  size_t len = strnlen(s, n);
  char *p = zc_pool_alloc(pool, len + 1);
  if (p) {
    memcpy(p, s, len);
    p[len] = 0;
  }
  return p;
}

char *zc_pool_vprintf(zc_pool_t *pool, const char *fmt, va_list ap) {
  if (pool == NULL || fmt == NULL) {
    errno = EINVAL;
    return NULL;
  }
  /* Format straight into the current block when it fits (one pass), else measure and format again. */
  va_list again;
  va_copy(again, ap);
  char *tail = pool->bump;
  size_t room = (size_t)(pool->end - tail);
  int n = vsnprintf(tail, room, fmt, ap);
  char *p = NULL;
  if (n < 0) {
    errno = EINVAL;
  } else if ((size_t)n < room) {
    /* the text is at tail; the allocation (rounded to 16) may not fit there and come from a new block */
    if ((p = zc_pool_alloc(pool, (size_t)n + 1)) != NULL && p != tail) memcpy(p, tail, (size_t)n + 1);
  } else if ((p = zc_pool_alloc(pool, (size_t)n + 1)) != NULL) {
    vsnprintf(p, (size_t)n + 1, fmt, again);
  }
  va_end(again);
  return p;
}

char *zc_pool_printf(zc_pool_t *pool, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *p = zc_pool_vprintf(pool, fmt, ap);
  va_end(ap);
  return p;
}

zc_pool_t *zc_pool_parent(const zc_pool_t *pool) { return pool ? pool->parent : NULL; }

void zc_pool_stats(const zc_pool_t *pool, zc_pool_stats_t *out) {
  memset(out, 0, sizeof *out);
  if (pool == NULL) return;
  out->in_use = pool->in_use;
  out->peak_in_use = pool->peak_in_use;
  out->held = pool->held;
  out->tree_held = pool->tree_held;
  out->peak_held = pool->peak_held;
  out->blocks = pool->blocks;
  out->large = pool->nlarge;
  out->wasted = pool->wasted;
  out->allocs = pool->allocs;
  out->resets = pool->resets;
  out->children = pool->children;
  zc_lock((zc_lock_t *)&pool->lock); /* the purger's hook may be changing purged_bytes */
  out->resident = pool->held - pool->purged_bytes;
  zc_unlock((zc_lock_t *)&pool->lock);
}
