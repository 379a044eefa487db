/* Layer 7, process glue: the list of idle hooks the background purger calls (see idle.h).
 *
 * idle_lock protects the list and is held for the whole pass, so unregistering waits for a running hook.
 * Lock order: idle_lock, then a hook's own lock (always a trylock, so the reverse order cannot deadlock
 * either). It is a leaf towards the core's locks: no core lock is taken while it is held. At fork the
 * prepare handler takes it, so no hook runs (and holds an owner's lock) while the process is copied.
 */
#include "idle.h"

#include "internal.h"

static zc_lock_t idle_lock = ZC_LOCK_INIT;
static zc_idle_t *idle_list;
static bool idle_atfork_done; /* under idle_lock */

static void idle_fork_prepare(void) { zc_lock(&idle_lock); }
static void idle_fork_parent(void) { zc_unlock(&idle_lock); }
static void idle_fork_child(void) { zc_lock_init(&idle_lock); }

void zc_idle_register(zc_idle_t *h) {
  zc_process_init(); /* installs the purger's sweep, which calls zc_idle_sweep */
  zc_lock(&idle_lock);
  if (!idle_atfork_done) {
    idle_atfork_done = true;
    zc_os_atfork(idle_fork_prepare, idle_fork_parent, idle_fork_child);
  }
  h->prev = NULL;
  h->next = idle_list;
  if (idle_list) idle_list->prev = h;
  idle_list = h;
  zc_unlock(&idle_lock);
  zc_purger_ensure();
}

void zc_idle_unregister(zc_idle_t *h) {
  zc_lock(&idle_lock);
  if (h->prev || idle_list == h) {
    if (h->prev) h->prev->next = h->next;
    else idle_list = h->next;
    if (h->next) h->next->prev = h->prev;
  }
  h->next = h->prev = NULL;
  zc_unlock(&idle_lock);
}

void zc_idle_kick(void) {
  if (!zc_purger_active()) zc_purger_ensure();
}

bool zc_idle_sweep(void) {
  bool pending = false;
  zc_lock(&idle_lock);
  for (zc_idle_t *h = idle_list; h; h = h->next) pending |= h->fn(h->arg);
  zc_unlock(&idle_lock);
  return pending;
}
