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
 *     Cheap (two loads) when it runs. Call with none of the owner's locks held.
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

#endif /* ZC_IDLE_H */
