/* The background purger's thread is never started from inside free().
 *
 * glibc frees a dead thread's TLS (its dtv, a dlopened module's TLS block) from inside pthread_join while it
 * holds its stack-cache lock; pthread_create takes that lock. A purger started from that free deadlocked
 * the thread. A free now only wakes the purger or notes it as wanted; the thread is created by a malloc
 * (its slow path, or a large allocation) or a fork child's handler.
 *
 * This program defines pthread_create, so zcmem's call of it comes here first (the executable's symbol
 * interposes libzcmem.so's reference): a call that the test did not make itself is zcmem's purger. Made
 * while the test marked "inside free" (around its own frees from a TLS destructor, around a pthread_join
 * in which glibc frees the dead thread's TLS under its lock), it is counted as a violation and refused
 * (EAGAIN: the test fails instead of hanging). Modes, each run in a fresh process (a process has one purger):
 *   join        a thread with a 64 MiB stack (over glibc's 40 MiB stack cache, so the join frees its TLS
 *               under the lock) touches a 1 MiB thread-local array of a dlopened module (a large block
 *               glibc mallocs in that thread); the main thread, which never started the purger, joins it:
 *               the 1 MiB block goes into the large cache inside pthread_join. Five such threads. Then the
 *               main thread mallocs: the purger must have been started, outside free.
 *   dtor_small  one heap, one segment: the main thread's TLS destructor (run by exit) frees a page's worth
 *               of its own 48-byte blocks (the page empties: before, that free started the purger), then
 *               mallocs: the purger is started there, by the malloc, exactly once.
 *   dtor_large  the same destructor frees a 1 MiB block (into the large cache) of the only heap.
 * Linked with libzcmem.so. Args: MODE [module path for join].
 */
#define _GNU_SOURCE
#include "zc_test.h"

#include <pthread.h>
#include <stdatomic.h>

typedef int (*create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
static create_fn real_create;
static __thread int own_create;   /* the test's own pthread_create */
static __thread int in_free;      /* this thread is inside a free (or a join that frees) */
static atomic_int foreign, violations;

int pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg) {
  if (real_create == NULL) real_create = (create_fn)dlsym(RTLD_NEXT, "pthread_create");
  if (!own_create) {
    atomic_fetch_add(&foreign, 1);
    if (in_free) {
      atomic_fetch_add(&violations, 1);
      static const char msg[] = "purger_start: zcmem called pthread_create inside free (refused)\n";
      (void)!write(2, msg, sizeof msg - 1);
      return EAGAIN;
    }
  }
  return real_create(t, a, fn, arg);
}

static int create_own(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg) {
  own_create = 1;
  int rc = pthread_create(t, a, fn, arg);
  own_create = 0;
  return rc;
}

/* A malloc slow path for sure: enough 64-byte blocks to take fresh pages. */
static void malloc_some(void) {
  enum { N = 4000 };
  static void *ps[N];
  for (int i = 0; i < N; i++) REQUIRE((ps[i] = malloc(64)) != NULL);
  for (int i = 0; i < N; i++) free(ps[i]);
}

/* ---- join ---- */
static void (*touch_tls)(void);
static void *toucher(void *arg) {
  (void)arg;
  touch_tls(); /* glibc mallocs the module's 1 MiB TLS block for this thread */
  return NULL;
}

static int mode_join(const char *module) {
  void *lib = dlopen(module, RTLD_NOW);
  REQUIREF(lib != NULL, "dlopen %s: %s", module, dlerror());
  touch_tls = (void (*)(void))dlsym(lib, "zc_fork_join_touch");
  REQUIRE(touch_tls != NULL);
  int before = atomic_load(&foreign);
  for (int i = 0; i < 5; i++) {
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, (size_t)64 << 20); /* over glibc's stack cache: freed at the join */
    pthread_t t;
    REQUIRE(create_own(&t, &a, toucher, NULL) == 0);
    pthread_attr_destroy(&a);
    in_free = 1;
    REQUIRE(pthread_join(t, NULL) == 0); /* glibc frees t's TLS here, under its stack-cache lock */
    in_free = 0;
  }
  malloc_some();
  printf("join: %d purger start(s) before the joins, %d in all, %d inside a free\n", before,
         atomic_load(&foreign), atomic_load(&violations));
  CHECKF(atomic_load(&violations) == 0, "the purger was started inside free (pthread_join)");
  CHECKF(atomic_load(&foreign) == 1, "zcmem created %d threads (one purger expected)", atomic_load(&foreign));
  return check_exit("core_purger_start join");
}

/* ---- TLS destructors of the main thread, run by exit() ---- */
extern int __cxa_thread_atexit_impl(void (*fn)(void *), void *obj, void *dso);
extern void *__dso_handle;

enum { SMALL_N = 3000 };
static void *small[SMALL_N];
static void *large_block;
static int dtor_large;

static void dtor(void *arg) {
  (void)arg;
  int before = atomic_load(&foreign);
  in_free = 1;
  if (dtor_large) {
    free(large_block);
  } else {
    for (int i = 0; i < SMALL_N / 2; i++) free(small[i]); /* empties the first page (1365 blocks of 48 B) */
  }
  in_free = 0;
  int after_free = atomic_load(&foreign);
  malloc_some();
  int after = atomic_load(&foreign);
  printf("%s: %d purger start(s) before the destructor's free, %d after it, %d after a malloc, %d inside a free\n",
         dtor_large ? "dtor_large" : "dtor_small", before, after_free, after, atomic_load(&violations));
  CHECKF(atomic_load(&violations) == 0, "the purger was started inside free (a TLS destructor)");
  CHECKF(after == 1, "zcmem created %d threads (one purger expected)", after);
  /* the case tested needs the purger not started yet; a sanitizer's runtime may allocate enough to start
   * it before main (ZC_PURGER_START_ANY=1 under the sanitizers: the checks above still hold) */
  if (!dtor_large && getenv("ZC_PURGER_START_ANY") == NULL)
    CHECKF(before == 0, "the purger ran before the first empty page (one heap, one segment): not the case tested");
  fflush(stdout);
  _exit(check_exit(dtor_large ? "core_purger_start dtor_large" : "core_purger_start dtor_small"));
}

static int mode_dtor(int large) {
  dtor_large = large;
  if (large) {
    REQUIRE((large_block = malloc((size_t)1 << 20)) != NULL);
    memset(large_block, 1, (size_t)1 << 20);
  } else {
    for (int i = 0; i < SMALL_N; i++) REQUIRE((small[i] = malloc(48)) != NULL);
  }
  REQUIRE(__cxa_thread_atexit_impl(dtor, NULL, &__dso_handle) == 0);
  return 0; /* exit() runs the destructor, which exits */
}

int main(int argc, char **argv) {
  CHECKF(is_zcmem_malloc(), "malloc is not zcmem's: %s", malloc_owner());
  REQUIRE(argc >= 2);
  if (strcmp(argv[1], "join") == 0) {
    REQUIRE(argc == 3);
    return mode_join(argv[2]);
  }
  if (strcmp(argv[1], "dtor_small") == 0) return mode_dtor(0);
  if (strcmp(argv[1], "dtor_large") == 0) return mode_dtor(1);
  REQUIRE(!"mode: join, dtor_small or dtor_large");
  return 1;
}
