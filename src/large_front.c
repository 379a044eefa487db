/* Layer 6, large objects: the front caches (see the comment in large_internal.h above front_t) and the
 * live-byte counters kept in them. No lock, except lg_front_sweep (lg_pool.lock held).
 *
 * Includes: large_internal.h.
 */
#include "large_internal.h"

ZC_BSS_LAST front_t lg_front[NFRONT]; /* after the small statics (ZC_BSS_LAST, segmap.h) */
static bool front_owned[NSHARD]; /* claimed with compare-and-swap, released by the owner */
static struct {
  uintptr_t word; /* the slot's word when a sweep first saw it */
  uint64_t since; /* ns: that sweep's time */
} front_seen[NFRONT * FRONT_SLOTS]; /* lg_pool.lock */
static __thread front_t *front_mine; /* this thread's shard; NULL until its first call */

front_t *lg_my_front(void) {
  front_t *f = front_mine;
  if (likely(f != NULL)) return f;
  f = &lg_front[NSHARD];
  for (unsigned i = 0; i < NSHARD; i++) {
    bool expect = false;
    if (!__atomic_load_n(&front_owned[i], __ATOMIC_RELAXED) &&
        __atomic_compare_exchange_n(&front_owned[i], &expect, true, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
      f = &lg_front[i];
      break;
    }
  }
  front_mine = f;
  return f;
}

void zc_large_thread_exit(void) {
  front_t *f = front_mine;
  front_mine = NULL;
  if (f != NULL && f != &lg_front[NSHARD]) __atomic_store_n(&front_owned[f - lg_front], false, __ATOMIC_RELEASE);
}

size_t lg_front_held; /* bytes in front slots (atomic) */

/* ---- front cache operations (no lock, except the sweep) ---- */

/* Put r (BUSY) into a slot of f, so that the most recently freed regions are the ones in the front.
 * Returns r if it does not qualify (the caller puts it in the pool), NULL if it went into an empty slot,
 * or the older region (now BUSY) it displaced, which the caller puts in the pool instead. Two threads that
 * share a shard may together overshoot its byte cap by one region each: a bounded, transient excess. */
region_t *lg_front_put(front_t *f, region_t *r, size_t budget) {
  const size_t size = r->map_size; /* read before r is published: once in a slot, another thread may take it */
  size_t cap = lg_front_max(budget), held = size;
  if (held > cap || r->map_size != class_bytes(r->cls)) return r;
  if (lg_dirty_bytes() + held > lg_dirty_budget(budget)) return r; /* over the dirty bound: the pool path purges */
  uintptr_t ws[FRONT_SLOTS];
  for (unsigned i = 0; i < FRONT_SLOTS; i++) {
    ws[i] = __atomic_load_n(&f->slot[i], __ATOMIC_RELAXED);
    if (ws[i] != 0) held += class_bytes((unsigned)(ws[i] & FRONT_CLS_MASK));
  }
  uintptr_t w = (uintptr_t)r | r->cls;
  r->flags |= F_RESIDENT;
  seal(r);
  __atomic_store_n(&r->state, ST_DIRTY, __ATOMIC_RELAXED); /* a double free from now on is reported */
  for (unsigned i = 0; i < FRONT_SLOTS; i++) { /* an empty slot, if the shard has room */
    uintptr_t e = 0;
    if (held <= cap && ws[i] == 0) {
      /* counted before it is published (whoever takes it out subtracts): lg_front_held never dips below
       * the slots' bytes, it may only exceed them for a moment */
      __atomic_fetch_add(&lg_front_held, size, __ATOMIC_RELAXED);
      /* seq_cst: the caller's lg_front_tick reads the purger's state after it (large.h, the wake-up protocol) */
      if (__atomic_compare_exchange_n(&f->slot[i], &e, w, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) return NULL;
      __atomic_fetch_sub(&lg_front_held, size, __ATOMIC_RELAXED);
    }
  }
  for (unsigned i = 0; i < FRONT_SLOTS; i++) { /* else displace a region whose room suffices */
    uintptr_t old = ws[i];
    if (old == 0 || held - class_bytes((unsigned)(old & FRONT_CLS_MASK)) > cap) continue;
    __atomic_fetch_add(&lg_front_held, size, __ATOMIC_RELAXED);
    if (__atomic_compare_exchange_n(&f->slot[i], &old, w, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
      region_t *out = (region_t *)(old & ~FRONT_CLS_MASK);
      __atomic_store_n(&out->state, ST_BUSY, __ATOMIC_RELAXED);
      __atomic_fetch_sub(&lg_front_held, class_bytes((unsigned)(old & FRONT_CLS_MASK)), __ATOMIC_RELAXED);
      return out;
    }
    __atomic_fetch_sub(&lg_front_held, size, __ATOMIC_RELAXED);
  }
  __atomic_store_n(&r->state, ST_BUSY, __ATOMIC_RELAXED);
  return r;
}

/* Take from f the newest region of class c (reuse stays LIFO, cache-warm), else the smallest of class
 * c+1 .. c+REUSE_SPAN (up to four times the size). A dirty region that is too big is used whole: trimming
 * its tail (an unmap per reuse) measured slower on bench/churn and bench/large than keeping it, and its
 * memory is resident either way. */
region_t *lg_front_take(front_t *f, unsigned c) {
  for (;;) {
    unsigned best = FRONT_SLOTS, best_cls = ~0u;
    for (unsigned i = FRONT_SLOTS; i-- > 0;) { /* lg_front_put fills the lowest empty slot: newest last */
      uintptr_t w = __atomic_load_n(&f->slot[i], __ATOMIC_RELAXED);
      unsigned wc = (unsigned)(w & FRONT_CLS_MASK);
      if (w != 0 && wc >= c && wc <= c + REUSE_SPAN && wc < best_cls) best = i, best_cls = wc;
      if (best_cls == c) break;
    }
    if (best == FRONT_SLOTS) return NULL;
    uintptr_t w = __atomic_load_n(&f->slot[best], __ATOMIC_RELAXED);
    if ((unsigned)(w & FRONT_CLS_MASK) != best_cls || w == 0) continue; /* taken meanwhile: look again */
    if (__atomic_compare_exchange_n(&f->slot[best], &w, 0, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
      region_t *r = (region_t *)(w & ~FRONT_CLS_MASK);
      __atomic_fetch_sub(&lg_front_held, class_bytes(best_cls), __ATOMIC_RELAXED);
      __atomic_store_n(&r->state, ST_BUSY, __ATOMIC_RELAXED);
      return r;
    }
  }
}

/* Take from f the largest region of a class in [lo, c) (for compose in large.c), or NULL. */
region_t *lg_front_take_below(front_t *f, unsigned c, unsigned lo) {
  for (;;) {
    unsigned best = FRONT_SLOTS, best_cls = 0;
    for (unsigned i = 0; i < FRONT_SLOTS; i++) {
      uintptr_t w = __atomic_load_n(&f->slot[i], __ATOMIC_RELAXED);
      unsigned wc = (unsigned)(w & FRONT_CLS_MASK);
      if (w != 0 && wc < c && wc >= lo && (best == FRONT_SLOTS || wc > best_cls)) best = i, best_cls = wc;
    }
    if (best == FRONT_SLOTS) return NULL;
    uintptr_t w = __atomic_load_n(&f->slot[best], __ATOMIC_RELAXED);
    if ((unsigned)(w & FRONT_CLS_MASK) != best_cls || w == 0) continue; /* taken meanwhile: look again */
    if (__atomic_compare_exchange_n(&f->slot[best], &w, 0, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
      region_t *r = (region_t *)(w & ~FRONT_CLS_MASK);
      __atomic_fetch_sub(&lg_front_held, class_bytes(best_cls), __ATOMIC_RELAXED);
      __atomic_store_n(&r->state, ST_BUSY, __ATOMIC_RELAXED);
      return r;
    }
  }
}

/* lg_pool.lock held: take out for purging the regions seen for a purge delay (all of them if force). */
void lg_front_sweep(victims_t *v, uint64_t now, bool force) {
  uint64_t d = delay_ns();
  for (unsigned i = 0; i < NFRONT * FRONT_SLOTS; i++) {
    uintptr_t *slot = &lg_front[i / FRONT_SLOTS].slot[i % FRONT_SLOTS];
    uintptr_t w = __atomic_load_n(slot, __ATOMIC_RELAXED);
    if (w == 0) {
      front_seen[i].word = 0;
      continue;
    }
    if (!force) {
      if (w != front_seen[i].word) {
        front_seen[i].word = w;
        front_seen[i].since = now;
        continue;
      }
      if (now - front_seen[i].since < d) continue;
    }
    front_seen[i].word = 0;
    if (__atomic_compare_exchange_n(slot, &w, 0, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
      region_t *r = (region_t *)(w & ~FRONT_CLS_MASK);
      __atomic_fetch_sub(&lg_front_held, class_bytes((unsigned)(w & FRONT_CLS_MASK)), __ATOMIC_RELAXED);
      __atomic_store_n(&r->state, ST_BUSY, __ATOMIC_RELAXED);
      lg_chain(&v->purge, r);
    }
  }
}

/* Fork child (one thread): empty the slots that hold a file-backed region (shared with the parent, which
 * may hand it out again) and unmap it, in the child only. The slot word (private) gives the region and its
 * size (a front region's map_size is its class size, lg_front_put); the shared header is read only for its
 * F_FILE bit, which no one changes while the file is mapped. */
void lg_front_fork_child(void) {
  for (unsigned i = 0; i < NFRONT * FRONT_SLOTS; i++) {
    uintptr_t *slot = &lg_front[i / FRONT_SLOTS].slot[i % FRONT_SLOTS];
    uintptr_t w = *slot;
    if (w == 0) continue;
    region_t *r = (region_t *)(w & ~FRONT_CLS_MASK);
    if (!(__atomic_load_n(&r->flags, __ATOMIC_RELAXED) & F_FILE)) continue;
    size_t size = class_bytes((unsigned)(w & FRONT_CLS_MASK));
    *slot = 0;
    front_seen[i].word = 0;
    __atomic_fetch_sub(&lg_front_held, size, __ATOMIC_RELAXED);
    lg_forget_range(r, size);
  }
}

/* seq_cst loads: the purger's last sweep before its idle sleep sees a put whose thread saw it running (large.h,
 * the wake-up protocol) */
size_t lg_front_bytes(void) {
  size_t n = 0;
  for (unsigned i = 0; i < NFRONT * FRONT_SLOTS; i++) {
    uintptr_t w = __atomic_load_n(&lg_front[i / FRONT_SLOTS].slot[i % FRONT_SLOTS], __ATOMIC_SEQ_CST);
    if (w != 0) n += class_bytes((unsigned)(w & FRONT_CLS_MASK));
  }
  return n;
}

/* Usable bytes of live regions, summed over the shards (a snapshot; clamped at 0 while others run). */
uint64_t lg_live_bytes_now(void) {
  int64_t live = 0;
  for (unsigned i = 0; i < NFRONT; i++) live += (int64_t)__atomic_load_n(&lg_front[i].live_bytes, __ATOMIC_RELAXED);
  return live > 0 ? (uint64_t)live : 0;
}
