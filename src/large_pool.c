/* Layer 6, large objects: the global pool of cached regions (per class, dirty and clean lists), its bounds
 * and time policy (see the top of large.c), purging and unmapping the regions it gives up, and the
 * background purger thread.
 *
 * Includes: large_internal.h.
 */
#include "large_internal.h"

#include "idle.h" /* zc_test_point */

ZC_BSS_LAST lg_pool_t lg_pool; /* 6 KiB: after the small statics (ZC_BSS_LAST, segmap.h) */
int lg_purger_state;
lg_stats_t lg_st;
uint64_t lg_next_sweep;

/* ---- the pool lock: counts the acquisitions that had to wait (zc_large_stats: lock_contended) ---- */

void lg_pool_lock(void) {
  if (likely(zc_trylock(&lg_pool.lock))) return;
  STAT_ADD(contended, 1);
  zc_lock(&lg_pool.lock);
}

void lg_pool_unlock(void) { zc_unlock(&lg_pool.lock); }
/* ---- lists (lg_pool.lock held) ---- */

static void list_push_front(rlist_t *l, region_t *r, int k) {
  r->link[k].prev = NULL;
  r->link[k].next = l->head;
  if (l->head) l->head->link[k].prev = r;
  else l->tail = r;
  l->head = r;
}

static void list_push_back(rlist_t *l, region_t *r, int k) {
  r->link[k].next = NULL;
  r->link[k].prev = l->tail;
  if (l->tail) l->tail->link[k].next = r;
  else l->head = r;
  l->tail = r;
}

static void list_remove(rlist_t *l, region_t *r, int k) {
  region_t *n = r->link[k].next, *p = r->link[k].prev;
  if (p) p->link[k].next = n;
  else l->head = n;
  if (n) n->link[k].prev = p;
  else l->tail = p;
}

static void pool_add_bytes(int w, size_t bytes, long count) {
  __atomic_store_n(&lg_pool.bytes[w], lg_pool.bytes[w] + bytes, __ATOMIC_RELAXED);
  __atomic_store_n(&lg_pool.count[w], lg_pool.count[w] + (size_t)count, __ATOMIC_RELAXED);
}

void lg_cache_insert(region_t *r, int w, uint64_t now) {
  r->stamp = now;
  if (w == DIRTY) r->flags |= F_RESIDENT;
  seal(r);
  __atomic_store_n(&r->state, w == DIRTY ? ST_DIRTY : ST_CLEAN, __ATOMIC_RELEASE);
  list_push_front(&lg_pool.cls[w][r->cls], r, L_CLASS);
  list_push_back(&lg_pool.age[w], r, L_AGE);
  pool_add_bytes(w, r->map_size, 1);
}

/* Take r off its lists; it becomes BUSY. A header overwritten while cached (it fails its keyed check) has
 * a cls and map_size that cannot be trusted: its list is found by searching instead, its bytes stay
 * counted (the pool believes it holds a little more than it does), and whoever takes it reports it and
 * leaves it alone. */
void lg_cache_unlink(region_t *r) {
  int w = r->state == ST_DIRTY ? DIRTY : CLEAN;
  unsigned c = r->cls;
  size_t bytes = r->map_size;
  if (unlikely(!region_valid(r))) {
    bytes = 0;
    c = NCLASS;
    for (int k = 0; k < 2; k++) {
      for (region_t *x = lg_pool.age[k].head; x != NULL; x = x->link[L_AGE].next)
        if (x == r) w = k;
      for (unsigned i = 0; i < NCLASS; i++)
        for (region_t *x = lg_pool.cls[k][i].head; x != NULL; x = x->link[L_CLASS].next)
          if (x == r) c = i;
    }
  }
  if (c < NCLASS) list_remove(&lg_pool.cls[w][c], r, L_CLASS);
  list_remove(&lg_pool.age[w], r, L_AGE);
  pool_add_bytes(w, (size_t)0 - bytes, -1);
  __atomic_store_n(&r->state, ST_BUSY, __ATOMIC_RELAXED);
}

static uint64_t live_peak;      /* the most live bytes in the current window */
static uint64_t live_peak_prev; /* in the previous window */
static uint64_t window_start;   /* ns; lg_pool.lock */

void lg_note_live_peak(void) {
  uint64_t live = lg_live_bytes_now(), peak = __atomic_load_n(&live_peak, __ATOMIC_RELAXED);
  while (live > peak && !__atomic_compare_exchange_n(&live_peak, &peak, live, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
}

/* Dirty bytes kept beside the live blocks (pool and front caches together): up to the demand, the peak of
 * live large bytes over the last one to two windows (max(10 x delay, 1 s) each), plus half of it, minus what
 * is live now; at least 8 MiB, at most a quarter of the budget. So live + dirty stays under 1.5 times the
 * recent peak: a program that keeps 100 MiB of buffers in flight reuses them without page faults, and one
 * whose large blocks are few, or fewer than a moment ago, keeps little dirty memory. The half above the peak
 * is for fit: a cached region serves requests of its class down to a quarter of it, and one too small is
 * used as part of a region composed on a miss (compose), so part of the cache fits the next request only at a cost. With
 * no margin (live + dirty under the peak itself), bench/large-ring faulted 17-20 pages per buffer instead of
 * 0.15; with 2.25 times the peak (the earlier rule, dirty alone under 2.25 times) its peak RSS was 12% higher
 * (docs/design.md). */
size_t lg_dirty_budget(size_t budget) {
  uint64_t peak = __atomic_load_n(&live_peak, __ATOMIC_RELAXED), prev = __atomic_load_n(&live_peak_prev, __ATOMIC_RELAXED);
  if (prev > peak) peak = prev;
  uint64_t demand = peak + peak / 2, live = lg_live_bytes_now();
  size_t cap = demand > live ? (size_t)(demand - live) : 0;
  if (cap < ((size_t)8 << 20)) cap = (size_t)8 << 20;
  return cap < budget / 4 ? cap : budget / 4;
}

/* Bytes cached dirty: the pool's dirty lists and the front slots. */
size_t lg_dirty_bytes(void) {
  return __atomic_load_n(&lg_pool.bytes[DIRTY], __ATOMIC_RELAXED) + __atomic_load_n(&lg_front_held, __ATOMIC_RELAXED);
}

/* Over the pool's budget: unmap oldest clean, then oldest dirty. Over the dirty budget: purge oldest dirty. */
void lg_collect_over_budget(victims_t *v, size_t budget) {
  region_t *r;
  while (lg_pool.bytes[DIRTY] + lg_pool.bytes[CLEAN] > lg_pool_budget(budget)) {
    r = lg_pool.age[CLEAN].head ? lg_pool.age[CLEAN].head : lg_pool.age[DIRTY].head;
    if (r == NULL) break;
    lg_cache_unlink(r);
    lg_chain(&v->unmap, r);
  }
  size_t dirty_cap = lg_dirty_budget(budget);
  while (lg_dirty_bytes() > dirty_cap && (r = lg_pool.age[DIRTY].head) != NULL) {
    lg_cache_unlink(r);
    lg_chain(&v->purge, r);
  }
}

/* Dirty regions past the delay (all if force) are purged; clean ones past their TTL are unmapped. */
void lg_collect_due(victims_t *v, uint64_t now, bool force) {
  uint64_t d = delay_ns(), ttl = clean_ttl_ns(d);
  if (now - window_start >= ttl) { /* the demand window moves on */
    __atomic_store_n(&live_peak_prev, __atomic_load_n(&live_peak, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
    __atomic_store_n(&live_peak, lg_live_bytes_now(), __ATOMIC_RELAXED); /* the window starts again */
    window_start = now;
  }
  region_t *r;
  while ((r = lg_pool.age[DIRTY].head) != NULL && (force || now - r->stamp >= d)) {
    lg_cache_unlink(r);
    lg_chain(&v->purge, r);
  }
  while ((r = lg_pool.age[CLEAN].head) != NULL && now - r->stamp >= ttl) {
    lg_cache_unlink(r);
    lg_chain(&v->unmap, r);
  }
}

/* Something in the pool is due (lg_pool.lock held). */
static bool pool_due(uint64_t now) {
  uint64_t d = delay_ns();
  region_t *dr = lg_pool.age[DIRTY].head, *cr = lg_pool.age[CLEAN].head;
  return (dr && now - dr->stamp >= d) || (cr && now - cr->stamp >= clean_ttl_ns(d));
}
static uint64_t sweep_period_ns(void) {
  uint64_t p = delay_ns() / 2;
  return p < 1000000u ? 1000000u : p;
}

/* The time policy when no purger thread runs (lg_pool.lock held). */
void lg_policy_locked(victims_t *v, uint64_t now) {
  if (pool_due(now)) lg_collect_due(v, now, false);
  if (now >= lg_next_sweep) {
    lg_front_sweep(v, now, false);
    __atomic_store_n(&lg_next_sweep, now + sweep_period_ns(), __ATOMIC_RELAXED);
  }
}
size_t lg_unmap_region(region_t *r) {
  if (!region_valid(r)) { /* a wrong map_size would unmap someone else's memory */
    lg_report_corrupt(r, "before unmapping it");
    return 0;
  }
  size_t size = r->map_size;
  lg_forget_range(r, size);
  STAT_ADD(purged, size);
  return size;
}

void lg_forget_range(void *r, size_t size) {
  zc_segmap_clear(r, size); /* first: no chunk is marked ours without its header mapped */
  zc_os_free(r, size);
  STAT_SUB(mapped, size);
}

/* Purge or unmap the victims; purged regions go back to the pool as clean. Returns bytes released. */
size_t lg_process_victims(victims_t *v) {
  size_t released = 0, pg = zc_os_page_size();
  int mode = (int)zc_opt(zc_option_purge_mode);
  region_t *done = NULL, *r, *next;
  for (r = v->purge; r != NULL; r = next) {
    next = r->link[L_CLASS].next;
    if (!region_valid(r)) {
      lg_report_corrupt(r, "before purging it");
      continue;
    }
    /* The header page stays; the rest is whole OS pages (map_size is a page multiple). Counted only if
     * the OS took it; a region it refused is unmapped instead. */
    size_t want = r->map_size - pg;
    if (want != 0 && !(r->flags & F_FILE)) STAT_ADD(purge_calls, 1);
    if (!(r->flags & F_FILE) && (want == 0 || zc_os_purge((char *)r + pg, want, mode) == want)) {
      r->flags = (mode == 1 ? (r->flags | F_STALE) : (r->flags & ~F_STALE)) & ~F_RESIDENT;
      seal(r);
      STAT_ADD(purged, want);
      released += want;
      lg_chain(&done, r);
    } else {
      released += lg_unmap_region(r);
    }
  }
  if (done != NULL) {
    size_t budget = cache_budget();
    uint64_t now = zc_os_clock_coarse_ns();
    region_t *over = NULL;
    lg_pool_lock();
    for (r = done; r != NULL; r = next) {
      next = r->link[L_CLASS].next;
      if (lg_pool.bytes[DIRTY] + lg_pool.bytes[CLEAN] + r->map_size > lg_pool_budget(budget)) lg_chain(&over, r);
      else lg_cache_insert(r, CLEAN, now);
    }
    lg_pool_unlock();
    for (r = over; r != NULL; r = next) {
      next = r->link[L_CLASS].next;
      lg_unmap_region(r);
    }
  }
  for (r = v->unmap; r != NULL; r = next) {
    next = r->link[L_CLASS].next;
    bool resident = r->flags & F_RESIDENT;
    size_t size = lg_unmap_region(r);
    if (resident) released += size;
  }
  return released;
}

/* ---- background purger ---- */

/* The rest of the allocator's sweep (empty small/medium pages of every heap and of exited threads),
 * installed by the heap layer: one background thread serves the whole process. Returns true while it
 * still holds memory to age, which keeps the thread from exiting as idle. */
static bool (*sweep_hook)(bool *watch);
static uint32_t purger_wake;   /* bumped to wake the idle purger (state 3) */
static bool purger_wanted;     /* a free asked for it before it was ever started (lg_purger_request) */
__thread unsigned zc_background_no_start, zc_background_in_free; /* see large.h */
static bool purger_after_fork; /* it ran in the parent: the fork child starts its own */
static bool background_allowed; /* zc_background_allow: the fork handlers are registered */

/* Test points (ZC_DEBUG builds, idle.h): a test widens a race window by stalling the thread that reaches one
 * (zc_purger_test_hook, exported in debug builds only); elsewhere they compile to nothing. */
#if ZC_DEBUG
static void (*test_point_fn)(int point);
ZC_API void zc_purger_test_hook(void (*fn)(int point)) { __atomic_store_n(&test_point_fn, fn, __ATOMIC_RELEASE); }
void zc_test_point(int point) {
  void (*f)(int) = __atomic_load_n(&test_point_fn, __ATOMIC_ACQUIRE);
  if (f != NULL) f(point);
}
#endif

/* The idle sleep's deadline while the hook watches (a page waits for its owner's local frees, which wake no
 * one): clean_ttl, doubled after each that passes with nothing found, up to WATCH_NAP_MAX times clean_ttl. Such
 * a page is reclaimed within that and two purge delays after the owner's last free, and an idle process
 * with such pages sweeps once per 8 s (default delay) instead of never. */
#define WATCH_NAP_MAX 8u

/* Sleep as idle (state 3, set by the caller under the pool lock; w: purger_wake read then) until
 * lg_purger_request wakes it, or nap ns (0: no deadline). True if the deadline passed (state 1 again). */
static bool purger_idle_wait(uint32_t w, uint64_t nap) {
  uint64_t end = zc_os_clock_ns() + nap;
  while (__atomic_load_n(&lg_purger_state, __ATOMIC_ACQUIRE) == 3) {
    int64_t left = -1;
    if (nap != 0) {
      uint64_t t = zc_os_clock_ns();
      if (t >= end) {
        bool out = false;
        lg_pool_lock(); /* state changes under the pool lock (purger_start) */
        if (__atomic_load_n(&lg_purger_state, __ATOMIC_RELAXED) == 3) {
          __atomic_store_n(&lg_purger_state, 1, __ATOMIC_RELEASE);
          out = true;
        }
        lg_pool_unlock();
        return out;
      }
      left = (int64_t)(end - t);
    }
    zc_os_futex_wait_shared(&purger_wake, w, left);
    w = __atomic_load_n(&purger_wake, __ATOMIC_RELAXED);
  }
  return false;
}

/* The settle: the purger goes idle (state 3, seq_cst, under the pool lock) before its last sweep, not after
 * it. Whoever makes work for it publishes the work first, then reads the state (large.h, "the wake-up
 * protocol"): either that read sees 3 and wakes it (purger_start: state 1 and a futex wake, so the wait below
 * returns at once, the wake count w having moved), or the work was published before the sweep's look at it,
 * which then finds it and keeps the purger awake. When the state was set after the sweep, a hand-over in
 * between saw the purger running, woke nobody, and its page waited for the owner's next malloc slow path
 * (core_purger_settle forces that order). *w: purger_wake when the state went to 3. */
static void purger_settle(uint32_t *w) {
  lg_pool_lock(); /* state changes under the pool lock (purger_start) */
  __atomic_store_n(&lg_purger_state, 3, __ATOMIC_SEQ_CST);
  *w = __atomic_load_n(&purger_wake, __ATOMIC_RELAXED);
  lg_pool_unlock();
}

static void *purger_main(void *arg) {
  (void)arg;
  uint64_t idle_since = 0, nap = 0;
  for (;;) {
    zc_os_sleep_ns(sweep_period_ns());
    /* Idle for long (its sweeps found nothing for clean_ttl): this sweep is its last before the idle sleep,
     * unless it finds something; the state goes to 3 first (purger_settle). It sleeps until lg_purger_request
     * wakes it. It does not exit: starting it again would call pthread_create from inside free(), which glibc
     * may be running under its stack-cache lock (a dead thread's TLS is freed under it), and pthread_create
     * takes that lock: a deadlock. */
    uint32_t w = 0;
    bool settle = idle_since != 0 && zc_os_clock_coarse_ns() - idle_since >= clean_ttl_ns(delay_ns());
    if (settle) purger_settle(&w);
    bool watch = false;
    bool other_busy = sweep_hook != NULL && sweep_hook(&watch);
    uint64_t now = zc_os_clock_coarse_ns(), d = delay_ns();
    victims_t v = {NULL, NULL};
    lg_pool_lock();
    lg_collect_due(&v, now, false);
    lg_front_sweep(&v, now, false);
    bool idle = !other_busy && lg_pool.count[DIRTY] + lg_pool.count[CLEAN] == 0 && lg_front_bytes() == 0 &&
                v.purge == NULL && v.unmap == NULL;
    if (!idle) {
      idle_since = 0;
      nap = 0;
    } else if (idle_since == 0) {
      idle_since = now;
    }
    if (settle && idle) {
      /* While the hook watches, the sleep has a deadline (WATCH_NAP_MAX); once it passes, idle_since stays: a
       * sweep that finds nothing again sleeps again at once, twice as long. A wake since the settle (state 1
       * again) ends the wait at once. */
      uint64_t ttl = clean_ttl_ns(d);
      nap = !watch ? 0 : nap == 0 ? ttl : nap * 2 > ttl * WATCH_NAP_MAX ? ttl * WATCH_NAP_MAX : nap * 2;
      lg_pool_unlock();
      zc_test_point(ZC_TP_PURGER_SETTLED);
      if (!purger_idle_wait(w, nap)) {
        idle_since = 0;
        nap = 0;
      }
      continue;
    }
    /* the last sweep found work: running again, unless a wake did it already */
    if (settle && __atomic_load_n(&lg_purger_state, __ATOMIC_RELAXED) == 3)
      __atomic_store_n(&lg_purger_state, 1, __ATOMIC_RELEASE);
    lg_pool_unlock();
    lg_process_victims(&v);
  }
  return NULL;
}

/* Start the purger thread (state 0) or wake it (state 3). Creates a thread: never call it inside free (see
 * zc_background_start). */
static void purger_start(void) {
  bool start = false, wake = false;
  lg_pool_lock();
  int state = __atomic_load_n(&lg_purger_state, __ATOMIC_RELAXED);
  if (state == 0 || state == 3) {
    __atomic_store_n(&lg_purger_state, 1, __ATOMIC_RELEASE);
    start = state == 0;
    wake = state == 3;
    if (wake) __atomic_fetch_add(&purger_wake, 1, __ATOMIC_RELAXED);
  }
  lg_pool_unlock();
  if (wake) zc_os_futex_wake_shared(&purger_wake, 1);
  if (start) __atomic_store_n(&purger_wanted, false, __ATOMIC_RELAXED);
  if (start && !zc_os_thread_start(purger_main, NULL)) {
    lg_pool_lock();
    __atomic_store_n(&lg_purger_state, 2, __ATOMIC_RELAXED);
    lg_pool_unlock();
    static bool warned;
    if (!__atomic_exchange_n(&warned, true, __ATOMIC_RELAXED))
      zc_warning("no background purger (its thread could not be started): memory is purged on the "
                 "allocating threads' slow paths only");
  }
}

/* From any path, free included: wake the purger if it sleeps as idle; if it was never started, note that it
 * is wanted: the next malloc slow path starts it (zc_background_start). Never creates a thread. */
void lg_purger_request(void) {
  int state = __atomic_load_n(&lg_purger_state, __ATOMIC_RELAXED);
  if (state == 3) {
    if (lg_want_purger()) purger_start(); /* state 3: a futex wake, no thread creation */
  } else if (state == 0 && !__atomic_load_n(&purger_wanted, __ATOMIC_RELAXED) && lg_want_purger()) {
    __atomic_store_n(&purger_wanted, true, __ATOMIC_RELAXED);
  }
}

bool lg_want_purger(void) {
  int state = __atomic_load_n(&lg_purger_state, __ATOMIC_RELAXED);
  return (state == 0 || state == 3) && zc_opt(zc_option_background) == 1 &&
         delay_ns() > 0;
}

void zc_background_set_hook(bool (*fn)(bool *watch)) { sweep_hook = fn; }

/* Fork child, in the pool's child handler: the purger did not come along. Under ASan and TSan a fork child
 * never starts one (state 2, as when a start failed: the inline policies and the purge at thread exit do its
 * work), since a thread created in the child of a multi-threaded process is what these runtimes do not
 * support. ASan's (GCC 12's) does not lock its thread registry at fork: a thread being created, started or
 * joined in the parent at the fork leaves it locked in the child, where pthread_create then waits forever
 * (core_fork_churn: the child's handler hung there in 2 of 20 runs of 100 forks). TSan's kills such a child
 * at its first pthread_create (die_after_fork, on by default: every child of core_fork_churn exited 66). */
void lg_purger_fork_child(void) {
  int state = __atomic_load_n(&lg_purger_state, __ATOMIC_RELAXED);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  (void)state;
  purger_after_fork = false;
  __atomic_store_n(&purger_wanted, false, __ATOMIC_RELAXED);
  __atomic_store_n(&lg_purger_state, 2, __ATOMIC_RELAXED);
#else
  purger_after_fork = state == 1 || state == 3;
  if (purger_after_fork) __atomic_store_n(&lg_purger_state, 0, __ATOMIC_RELAXED);
#endif
  purger_wake = 0;
}

/* Fork child, last of the child handlers (the allocator is usable again): start the child's purger now if
 * the parent had one, rather than later from a free() (see purger_main: never from inside free). */
void zc_background_fork_child(void) {
  /* purger_wanted stays: a parent that never started it left the child the same empty pages to age */
  if (purger_after_fork && lg_want_purger()) purger_start();
  purger_after_fork = false;
}

bool zc_background_after_fork(void) { return purger_after_fork && lg_want_purger(); }

/* Thread creation happens here only, called from a malloc slow path (page_for_class, a large allocation that
 * misses the front cache), the fork child's handler, or a public call (a lifetime allocator's creation):
 * never from inside free. glibc frees a dead thread's TLS (its dtv, a dlopened module's TLS block) while it
 * holds its stack-cache lock, and pthread_create takes that lock: a purger started from that free
 * deadlocked the thread (a fork child's first pthread_join hung). A malloc is never called under that lock.
 * A free asks with lg_purger_request instead, and so does this function on a thread inside a free
 * (zc_background_no_start: a free that sets up the thread's heap, which may malloc; zc_background_in_free:
 * every free of a debug build). In a debug build a free path that calls it directly is reported as an
 * internal error, so that every test catches one. */
void zc_background_start(void) {
  if (!lg_want_purger()) return;
  if (!__atomic_load_n(&background_allowed, __ATOMIC_ACQUIRE)) { /* before zcmem's fork handlers: later */
    lg_purger_request();
    return;
  }
#if ZC_DEBUG
  if (zc_background_in_free != 0 && zc_background_no_start == 0 &&
      __atomic_load_n(&lg_purger_state, __ATOMIC_RELAXED) == 0)
    zc_error("internal: a free path would start the background purger");
#endif
  if (zc_background_no_start != 0 || zc_background_in_free != 0) {
    lg_purger_request();
    return;
  }
  purger_start();
}

/* No purger thread before the process's fork handlers are registered (process.c's constructor): a fork then
 * would copy its locks as they are. A start asked before is noted as wanted (the next malloc starts it). */
void zc_background_allow(void) { __atomic_store_n(&background_allowed, true, __ATOMIC_RELEASE); }

bool zc_background_wanted(void) { return __atomic_load_n(&purger_wanted, __ATOMIC_RELAXED); }

/* Only a purger sleeping as idle (state 3) is woken, and a purger never started is noted as wanted: no
 * thread is created (safe inside free()). */
void zc_background_wake(void) { lg_purger_request(); }

/* After a front-cache operation (which took no lock; a free's or a malloc's): ask for the purger if it
 * should run (lg_purger_request: never a thread creation, the free may be glibc's under its stack lock),
 * else run the inline policy when a sweep is due. */
void lg_front_tick(void) {
  if (likely(__atomic_load_n(&lg_purger_state, __ATOMIC_SEQ_CST) == 1)) return; /* after the put: large.h */
  if (lg_want_purger()) {
    lg_purger_request();
    return;
  }
  uint64_t now = zc_os_clock_coarse_ns();
  if (now < __atomic_load_n(&lg_next_sweep, __ATOMIC_RELAXED)) return;
  victims_t v = {NULL, NULL};
  lg_pool_lock();
  lg_policy_locked(&v, now);
  lg_pool_unlock();
  if (v.purge || v.unmap) lg_process_victims(&v);
}

/* ---- public entry points ---- */

/* Take a cached region able to hold class c: the smallest dirty one of class c .. c+REUSE_SPAN (resident
 * already: reusing it costs no page faults and no memory), else (unless dirty_only) a clean one of class c
 * or c+1. *from says which. */
region_t *lg_cache_take(unsigned c, bool dirty_only, int *from, victims_t *v, uint64_t now, bool inline_run) {
  /* A large allocation (never inside free): the purger starts here if it is not running, so that the regions
   * this process will free into the cache are aged although their thread goes idle (a free only asks). */
  if (unlikely(__atomic_load_n(&lg_purger_state, __ATOMIC_RELAXED) == 0)) zc_background_start();
  size_t cached = __atomic_load_n(&lg_pool.count[DIRTY], __ATOMIC_RELAXED) + __atomic_load_n(&lg_pool.count[CLEAN], __ATOMIC_RELAXED);
  if (cached == 0 && (!inline_run || now < __atomic_load_n(&lg_next_sweep, __ATOMIC_RELAXED))) return NULL;
  region_t *r = NULL;
  lg_pool_lock();
  for (unsigned cc = c; cc <= c + REUSE_SPAN && cc < NCLASS && r == NULL; cc++) {
    if ((r = lg_pool.cls[DIRTY][cc].head) != NULL) *from = DIRTY;
  }
  for (unsigned cc = c; cc <= c + 1 && cc < NCLASS && r == NULL && !dirty_only; cc++) {
    if ((r = lg_pool.cls[CLEAN][cc].head) != NULL) *from = CLEAN;
  }
  if (r != NULL) lg_cache_unlink(r);
  if (inline_run) lg_policy_locked(v, now);
  lg_pool_unlock();
  return r;
}

bool lg_inline_policy(void) { return __atomic_load_n(&lg_purger_state, __ATOMIC_RELAXED) != 1; }
