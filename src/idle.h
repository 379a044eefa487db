/* Layer 7, process glue: idle hooks. A part of the library above the core (the lifetime allocators) asks the
 * background purger to visit it on every periodic pass, so that memory it holds is given back after the
 * purge delay even if its owner never calls it again. The core calls the hooks and never includes the
 * headers of the parts that register them.
 *
 * Includes: nothing of the library (plain C types), so any layer may include it.
 *
 * Contract:
 *   - zc_idle_register links h into the list (once per h; h lives in the caller's memory until it is
 *     unregistered) and makes sure the purger runs (ZCMEM_BACKGROUND=1 and ZCMEM_PURGE_DELAY > 0; else the
 *     hooks are never called and memory waits for the owner's next call, as for malloc's heaps).
 *   - h->fn(h->arg) is called from the purger thread, concurrently with the owner's threads, with the list's
 *     lock held: it must not block (take the owner's lock with a trylock, skip if busy), must not register or
 *     unregister, and returns true while the owner still holds memory to age (that keeps the purger awake).
 *   - zc_idle_unregister unlinks h and returns only when no call of h->fn is running: after it the caller may
 *     unmap h->arg. Unregistering an h that is not registered does nothing.
 *   - zc_idle_kick: the owner made memory that will need aging; start the purger if it stopped as idle.
 *     Cheap (two loads) when it runs. Call with none of the owner's locks held, after the memory is where
 *     the hook will find it (the purger's wake-up protocol, large.h): published under the lock the hook
 *     takes, or by a seq_cst atomic write. A kick before the publish can see the purger running just before
 *     its last sweep, which then misses the memory: it sleeps with no end.
 *   - zc_test_point (ZC_DEBUG builds; nothing elsewhere): a test stalls the thread that reaches a point to
 *     force a race window (zc_purger_test_hook, exported in debug builds only).
 */
#ifndef ZC_IDLE_H
#define ZC_IDLE_H

#include <stdbool.h>

typedef struct zc_idle_s {
  bool (*fn)(void *arg);
  void *arg;
  struct zc_idle_s *next, *prev; /* owned by the list */
} zc_idle_t;

void zc_idle_register(zc_idle_t *h);
void zc_idle_unregister(zc_idle_t *h);
void zc_idle_kick(void);

/* The purger's pass (process.c): call every hook; true while one of them holds memory to age. */
bool zc_idle_sweep(void);

enum {
  ZC_TP_PURGER_SETTLED = 1, /* the purger: its last sweep before the idle sleep found nothing; no lock held */
  ZC_TP_PAGES_RECYCLE = 2,  /* counted pages: another thread's free emptied a page, not yet on remote_free */
};
#if defined(ZC_DEBUG) && ZC_DEBUG
void zc_test_point(int point);
#else
static inline void zc_test_point(int point) { (void)point; }
#endif

#endif /* ZC_IDLE_H */
