/* zcmem's fork handlers and the program's own (linked with libzcmem.so, the override):
 *
 *   core_atfork many      main registers 60 fork handlers before its first malloc. glibc keeps 48 in place
 *                         and mallocs to grow its list past them, while it holds its atfork lock: that
 *                         malloc is zcmem's first (it hung on glibc's lock while zcmem registered its handlers
 *                         at the first malloc). Then a fork: every handler ran once, the child allocates.
 *   core_atfork prepare   main registers, before its first malloc, handlers that malloc (small, medium and
 *                         large blocks) in the prepare, parent and child phases (zcmem's constructor
 *                         registered its own before them here; atfork_early.c registers them the other way).
 *   core_atfork_alloc     (ATFORK_ALLOC) the program interposes __register_atfork (what pthread_atfork calls)
 *                         and mallocs inside every registration, as glibc does when its list grows: zcmem's
 *                         own registration (its constructor) then mallocs. The program's first malloc comes
 *                         from its preinit array, before zcmem's constructor, and sets the process up.
 *                         Neither may wait for zcmem's init lock or make the thread a second heap.
 * A hang is a SIGALRM death (alarm set before anything else), i.e. a failure.
 */
#define _GNU_SOURCE
#include "zc_proc.h"
#include "zc_test.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>

#include "zcmem.h"

enum { NH = 60, HANG_S = 60 };
static atomic_int prep_n, parent_n, child_n;
static void count_prepare(void) { atomic_fetch_add(&prep_n, 1); }
static void count_parent(void) { atomic_fetch_add(&parent_n, 1); }
static void count_child(void) { atomic_fetch_add(&child_n, 1); }


static int child_counts(void *arg) {
  int want_child = (int)(intptr_t)arg;
  if (atomic_load(&child_n) != want_child) return 3;
  return zc_use_malloc(7) ? 4 : 0;
}

/* fork (run_child), the child checks its handler count and allocates; the parent checks its counts. */
static void fork_and_check(const char *what, int want) {
  int p0 = atomic_load(&prep_n), a0 = atomic_load(&parent_n);
  child_result_t r = run_child(child_counts, (void *)(intptr_t)(atomic_load(&child_n) + want), 60);
  char st[64];
  CHECKF(child_exited(&r, 0), "%s: child ended with %s (3: child handlers, 4: malloc)\n%s",
         what, child_str(&r, st, sizeof st), r.err);
  CHECKF(atomic_load(&prep_n) - p0 == want && atomic_load(&parent_n) - a0 == want,
         "%s: %d prepare and %d parent handler calls, want %d each", what, atomic_load(&prep_n) - p0,
         atomic_load(&parent_n) - a0, want);
  child_result_free(&r);
}

#ifndef ATFORK_ALLOC
static void many(void) {
  for (int i = 0; i < NH; i++) REQUIRE(pthread_atfork(count_prepare, count_parent, count_child) == 0);
  CHECKF(zc_use_malloc(1) == 0, "malloc after %d handlers", NH);
  fork_and_check("60 handlers", NH);
  printf("many: %d handlers registered before the first malloc; fork ran each once\n", NH);
}

/* Handlers that allocate in every phase of the fork. */
static atomic_int alloc_bad;
static void alloc_prepare(void) {
  atomic_fetch_add(&alloc_bad, zc_use_malloc(2));
  count_prepare();
}
static void alloc_parent(void) {
  atomic_fetch_add(&alloc_bad, zc_use_malloc(3));
  count_parent();
}
static void alloc_child(void) {
  atomic_fetch_add(&alloc_bad, zc_use_malloc(4));
  count_child();
}

static void prepare(void) {
  REQUIRE(pthread_atfork(alloc_prepare, alloc_parent, alloc_child) == 0);
  CHECK(zc_use_malloc(1) == 0); /* zcmem's first malloc here, if its handlers were not registered yet */
  for (int i = 0; i < 3; i++) fork_and_check("handlers that malloc", 1);
  CHECKF(atomic_load(&alloc_bad) == 0, "a block allocated in a fork handler lost its bytes");
  printf("prepare: handlers that malloc in prepare, parent and child ran in 3 forks\n");
}
#else
/* glibc's registration, called by pthread_atfork (which is linked statically into each caller). */
typedef int (*register_fn)(void (*)(void), void (*)(void), void (*)(void), void *);
static atomic_int registrations;

int __register_atfork(void (*pre)(void), void (*par)(void), void (*chi)(void), void *dso) {
  static register_fn real;
  alarm(HANG_S); /* zcmem registers from its constructor, before main could set it */
  unsigned char *p = malloc(64); /* glibc's list growing: a malloc inside the registration */
  if (p != NULL) memset(p, 0x5a, 64);
  free(p);
  atomic_fetch_add(&registrations, 1);
  if (real == NULL) real = (register_fn)dlsym(RTLD_NEXT, "__register_atfork");
  return real(pre, par, chi, dso);
}

/* The program's first malloc comes before any library's constructor (the executable's preinit array runs
 * first): zcmem's process init runs inside it, from malloc's heap set-up, and its registration mallocs. */
static void early_malloc(void) {
  alarm(HANG_S);
  free(malloc(32));
}
__attribute__((section(".preinit_array"), used)) static void (*const preinit_malloc)(void) = early_malloc;

static void alloc_in_register(void) {
  CHECKF(atomic_load(&registrations) >= 1, "zcmem registered no fork handler through __register_atfork");
  REQUIRE(pthread_atfork(count_prepare, count_parent, count_child) == 0);
  CHECK(zc_use_malloc(1) == 0);
  zc_stats_t st;
  zc_stats_get(&st);
  CHECKF(st.threads == 1, "one thread, %llu heaps (the malloc inside the init made one, the init another)",
         (unsigned long long)st.threads);
  fork_and_check("a malloc inside each registration", 1);
  printf("alloc: %d registrations, each with a malloc inside; %llu heap\n", atomic_load(&registrations),
         (unsigned long long)st.threads);
}
#endif

int main(int argc, char **argv) {
  alarm(HANG_S);
#ifndef ATFORK_ALLOC
  /* nothing may malloc before the case: it is the program's first malloc that is tested */
  if (argc == 2 && strcmp(argv[1], "many") == 0) many();
  else if (argc == 2 && strcmp(argv[1], "prepare") == 0) prepare();
  else REQUIRE(!"case: many or prepare");
#else
  (void)argc;
  (void)argv;
  alloc_in_register();
#endif
  CHECKF(is_zcmem_malloc(), "malloc is not zcmem's: %s", malloc_owner());
  return check_exit("core_atfork");
}
