/* zcmem's fork handlers when another library's constructor runs before libzcmem's (the program needs
 * core_atfork_early_lib; libzcmem.so is preloaded, and ld.so initialises the program's libraries first):
 *
 *   core_atfork_early_many       60 handlers registered there: glibc mallocs to grow its list while it
 *                                holds its atfork lock, the process's first malloc (zcmem's init registered
 *                                its own handlers from inside it and waited on glibc's lock: a hang).
 *   core_atfork_early_prepare    handlers that malloc in every phase, registered there before zcmem's: zcmem's
 *                                prepare handler runs first and takes its locks, then theirs mallocs small,
 *                                medium and large blocks on the same thread (a hang on zcmem's own lock),
 *                                while another thread allocates and frees all along. 20 forks.
 *   core_atfork_early_ctor_fork  the library forks from its constructor, before zcmem's handlers exist, and
 *                                its prepare handler makes the process's first malloc (glibc 2.34+ lets its
 *                                atfork lock go around each handler); the child allocates. Then forks from
 *                                main, whose zcmem handlers were registered after the library's (a hang).
 *   core_atfork_early_purger     the constructor allocates enough to start zcmem's purger thread: it is not
 *                                started before zcmem's fork handlers are registered (a fork there would copy
 *                                the purger's locks), and starts at a malloc after.
 * Each run first checks from ld.so's own trace (LD_DEBUG=files, set by ctest) that the library's constructor
 * did run before libzcmem's. A hang dies of SIGALRM (set in the constructor and in main), i.e. a failure.
 */
#define _GNU_SOURCE
#include "zc_test.h"

#include <pthread.h>
#include <stdatomic.h>

extern atomic_int early_prep_n, early_parent_n, early_child_n, early_bad;
extern int early_ctor_fork_status, early_ctor_threads;
extern void *early_kept[16384];
int early_use_malloc(unsigned seed);
int early_threads_now(void);

/* The order of "calling init:" lines in ld.so's trace of this process: the library's before libzcmem's. */
static void check_init_order(void) {
  const char *base = getenv("LD_DEBUG_OUTPUT");
  REQUIREF(base != NULL, "LD_DEBUG=files and LD_DEBUG_OUTPUT must be set (ctest does)");
  char path[4096];
  snprintf(path, sizeof path, "%s.%d", base, (int)getpid());
  FILE *f = fopen(path, "r");
  REQUIREF(f != NULL, "no ld.so trace at %s", path);
  char line[8192];
  int n = 0, lib_at = -1, zc_at = -1;
  while (fgets(line, sizeof line, f) != NULL) {
    if (strstr(line, "calling init:") == NULL) continue;
    n++;
    if (strstr(line, "core_atfork_early_lib") != NULL && lib_at < 0) lib_at = n;
    if (strstr(line, "libzcmem") != NULL && zc_at < 0) zc_at = n;
  }
  fclose(f);
  unlink(path);
  REQUIREF(lib_at > 0 && zc_at > 0 && lib_at < zc_at,
           "the library's constructor must run before libzcmem's: init %d and %d of %d", lib_at, zc_at, n);
}

static int child_counts(void *arg) {
  if (atomic_load(&early_child_n) != (int)(intptr_t)arg) return 3;
  return early_use_malloc(7) ? 4 : 0;
}

static void fork_and_check(const char *what, int want) {
  int p0 = atomic_load(&early_prep_n), a0 = atomic_load(&early_parent_n);
  child_result_t r = run_child(child_counts, (void *)(intptr_t)(atomic_load(&early_child_n) + want), 60);
  char st[64];
  CHECKF(child_exited(&r, 0), "%s: child ended with %s (3: child handlers, 4: malloc)\n%s", what,
         child_str(&r, st, sizeof st), r.err);
  CHECKF(atomic_load(&early_prep_n) - p0 == want && atomic_load(&early_parent_n) - a0 == want,
         "%s: %d prepare and %d parent handler calls, want %d each", what, atomic_load(&early_prep_n) - p0,
         atomic_load(&early_parent_n) - a0, want);
  child_result_free(&r);
}

static atomic_int churn_stop;
static void *churn(void *arg) {
  (void)arg;
  unsigned i = 0;
  while (!atomic_load(&churn_stop)) {
    static const size_t sz[] = {16, 100, 1000, 20000, 100000, 600000, (size_t)2 << 20};
    size_t s = sz[i++ % (sizeof sz / sizeof sz[0])];
    unsigned char *p = malloc(s);
    if (p == NULL) continue;
    p[0] = p[s - 1] = 1;
    free(p);
  }
  return NULL;
}

int main(int argc, char **argv) {
  alarm(120);
  REQUIRE(argc == 2);
  check_init_order();
  CHECKF(is_zcmem_malloc(), "malloc is not zcmem's: %s", malloc_owner());
  if (strcmp(argv[1], "many") == 0) {
    CHECK(early_use_malloc(1) == 0);
    fork_and_check("60 handlers", 60);
  } else if (strcmp(argv[1], "prepare") == 0) {
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, churn, NULL) == 0);
    for (int i = 0; i < 20; i++) fork_and_check("handlers that malloc, a thread allocating", 1);
    atomic_store(&churn_stop, 1);
    pthread_join(t, NULL);
    CHECKF(atomic_load(&early_bad) == 0, "a block allocated in a fork handler lost its bytes");
  } else if (strcmp(argv[1], "ctor_fork") == 0) {
    CHECKF(WIFEXITED(early_ctor_fork_status) && WEXITSTATUS(early_ctor_fork_status) == 0,
           "the constructor's child: wait status %d", early_ctor_fork_status);
    CHECK(atomic_load(&early_bad) == 0);
    fork_and_check("after a fork from the constructor", 1);
  } else if (strcmp(argv[1], "purger") == 0) {
    CHECKF(early_ctor_threads == 1, "%d threads at the end of the constructor (zcmem's purger started before "
           "its fork handlers were registered)", early_ctor_threads);
    for (int i = 0; i < 16384; i++) free(early_kept[i]);
    /* the purger starts at a malloc slow path or a large allocation once zcmem's constructor has run */
    CHECKF(WAIT_UNTIL((free(malloc((size_t)1 << 20)), free(malloc(5000)), early_threads_now() == 2), 30000),
           "zcmem's purger did not start after its constructor: %d threads", early_threads_now());
  } else {
    REQUIRE(!"case: many, prepare, ctor_fork or purger");
  }
  return check_exit("core_atfork_early");
}
