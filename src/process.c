/* Layer 7, the process glue: what spans every layer. Process start (options, thread-exit and fork hooks),
 * thread exit, fork, malloc_trim, and the background sweep of small and medium pages that the one
 * background thread (large.c's purger) runs.
 *
 * Lock order at fork: heap list, every heap, abandoned segments, large-region pool (the order every other
 * path takes them in).
 */
#include "idle.h"
#include "internal.h"
#include "large.h"

static zc_lock_t init_lock = ZC_LOCK_INIT;
uintptr_t zc_link_secret, zc_tag_secret;
static bool process_ready;

/* A thread gives its heap up: if a free asked for the purger that no malloc has started since, it is started
 * here (a pthread key destructor, or the public zc_thread_done: outside any free and any lock of glibc's),
 * so that the exiting thread's empty pages are kept for the next thread and aged by it, as they would be had
 * the free started it. */
static void heap_done(zc_heap_t *h) {
  if (!zc_purger_active() && zc_purger_wanted()) zc_purger_ensure();
  zc_heap_done(h);
}

static void thread_exit(void *arg) {
  zc_heap_t *h = arg;
  zc_thread_exited = true; /* a free from a later TLS destructor must not make a heap nobody parks */
  if (h != NULL && h == zc_heap_tls) heap_done(h);
  zc_large_thread_exit();
}

ZC_API void zc_thread_done(void) {
  zc_heap_t *h = zc_heap_tls;
  if (h != &zc_heap_empty) heap_done(h);
  zc_large_thread_exit();
}

/* Between fork_prepare and fork_parent/fork_child the forking thread holds every lock below, and its own
 * malloc and free there go through them (zc_os_fork_hold, os.h): glibc runs the fork handlers of libraries
 * that registered before zcmem in that interval (prepare handlers last-registered first, the others in
 * order), and they may allocate. Other threads wait on the locks as usual. */
static void fork_prepare(void) {
  zc_heaps_fork_prepare();
  zc_segments_fork_prepare();
  zc_large_fork_prepare();
  zc_os_fork_hold(true);
}

static void fork_parent(void) {
  zc_os_fork_hold(false);
  zc_large_fork_parent();
  zc_segments_fork_parent();
  zc_heaps_fork_parent();
}

static void fork_child(void) {
  zc_os_fork_hold(false);
  zc_large_fork_child();
  zc_segments_fork_child();
  zc_heaps_fork_child(zc_background_after_fork());
  zc_background_fork_child();
}

/* ---- the background sweep of small and medium pages ----
 * Every half purge delay: purge what is past the delay in every heap whose lock the thread can take (an
 * owner busy in its slow path purges itself) and in abandoned segments. This is what bounds the delay for a
 * thread that has gone idle: without it, an idle heap keeps up to ZCMEM_DIRTY_BUDGET of empty pages until
 * its next slow path. Returns true while dirty pages remain to age; sets *watch while some page waits for its
 * owner's local frees (zc_reclaim_idle), which wake nothing: the purger then never sleeps without a deadline. */
typedef struct {
  bool pending, watch;
} sweep_state_t;

static void sweep_heap(zc_heap_t *h, void *arg) {
  sweep_state_t *st = arg;
  if (!h->live) return;
  bool waiting = false;
  /* pages other threads' frees emptied while the owner was away (reclaim.c) */
  zc_reclaim_idle(h, &waiting, &st->watch);
  zc_segment_purge_other(h, false);
  if (waiting || __atomic_load_n(&h->dirty_first, __ATOMIC_RELAXED) != NULL) st->pending = true;
}

static bool background_sweep(bool *watch) {
  sweep_state_t st = {zc_idle_sweep(), false}; /* the hooks registered from above the core (idle.h) */
  zc_heaps_visit(sweep_heap, &st);
  *watch = st.watch;
  return zc_segments_purge_abandoned(false) || st.pending;
}

void zc_purger_ensure(void) { zc_background_start(); }
bool zc_purger_active(void) { return zc_background_running(); }
void zc_purger_wake(void) { zc_background_wake(); }

/* A malloc slow path starts the purger (zc_purger_ensure) when it is not running and the process has
 * something it may have to give back while its threads are idle: a second heap (remote frees can come), a
 * second segment (more than 4 MiB of pages), or a free asked for it (a page emptied, a large block cached:
 * a free never starts it itself). A large allocation starts it too (large_pool.c lg_cache_take). So the one
 * case left to the next slow path is a process with one heap and one segment: at most 4 MiB of empty
 * pages wait for it. */
bool zc_purger_wanted(void) {
  return zc_heap_count() > 1 || zc_segments_live() > 1 || zc_background_wanted();
}

/* Once per process, by the first thread that makes a heap (others wait: it takes microseconds). It does not
 * register the fork handlers: the constructor below does (see there). Should a step of it ever malloc, that
 * malloc comes back here on the same thread, with init_lock held: it goes on (init_running) instead of
 * waiting for itself, and heap.c's zc_heap_init_thread then finds the heap that malloc made. */
static __thread bool init_running;

void zc_process_init(void) {
  if (__atomic_load_n(&process_ready, __ATOMIC_ACQUIRE) || init_running) return;
  zc_lock(&init_lock);
  if (!process_ready) {
    init_running = true;
    zc_options_init();
    uintptr_t secret[2] = {0, 0};
    zc_os_entropy(secret, sizeof secret);
    zc_link_secret = secret[0] | 1; /* never zero: a zero key would store links in the clear */
    zc_tag_secret = secret[1];
    zc_os_thread_exit_init(thread_exit);
    zc_background_set_hook(background_sweep);
    init_running = false;
    __atomic_store_n(&process_ready, true, __ATOMIC_RELEASE);
  }
  zc_unlock(&init_lock);
}

/* The fork handlers are registered when the library is loaded (this constructor, in every build), never
 * from a malloc: glibc calls malloc while it holds its atfork lock (pthread_atfork growing its handler list
 * past 48 entries), and a registration from inside that malloc waited on the lock forever. A malloc cannot tell whether its caller holds it,
 * and with libzcmem.so preloaded ld.so runs the program's own libraries' constructors first: their mallocs
 * (the first ones of the process) set the process up without the fork handlers, and this constructor
 * registers them. Until then nothing of zcmem's runs beside the program's threads: the purger thread is not
 * started before (zc_background_allow; a start asked meanwhile happens at a malloc after). Left open: a fork
 * made before this constructor (from an earlier library's constructor) while another thread the program
 * started is inside zcmem copies that thread's locks as they are (docs/design.md, "fork and dlopen").
 * The order of registration does not matter any more: zcmem's locks let the forking thread through while
 * it holds them for the fork (fork_prepare above), so another library's handler may malloc whether it runs
 * before or after zcmem's. The override also sets the process up here (options, secrets). */
__attribute__((constructor(101))) static void process_init_at_load(void) {
#if ZC_OVERRIDE
  zc_process_init();
#endif
  zc_os_atfork(fork_prepare, fork_parent, fork_child);
  zc_background_allow();
}

/* ---- collect and trim (the public calls) ---- */

ZC_API void zc_collect(bool force) {
  zc_heap_t *h = zc_heap_get();
  if (h != &zc_heap_empty) zc_heap_collect(h, force);
}

static void purge_other(zc_heap_t *h, void *arg) {
  (void)arg;
  if (h->live && h != zc_heap_tls) zc_segment_purge_other(h, true);
}

ZC_API int zc_trim(size_t pad) {
  (void)pad;
  uint64_t before = zc_segments_purged_bytes();
  zc_heap_t *h = zc_heap_get();
  if (h != &zc_heap_empty) {
    zc_segment_adopt(h, -1); /* exited threads' pages: collect what other threads freed since */
    zc_heap_collect(h, true);
  }
  zc_heaps_visit(purge_other, NULL);
  zc_segments_purge_abandoned(true);
  size_t large = zc_large_purge(true);
  return (large != 0 || zc_segments_purged_bytes() != before) ? 1 : 0;
}

ZC_API int zc_debug_build(void) { return ZC_DEBUG != 0; }

/* The override (libzcmem.so, libzcmem.a): the standard name is an alias of the zc_ function above. */
#if ZC_OVERRIDE
int malloc_trim(size_t pad) ZC_ALIAS(zc_trim);
#endif
