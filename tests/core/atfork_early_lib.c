/* A library that the program needs and whose constructor runs before libzcmem's: with libzcmem.so preloaded,
 * ld.so initialises the program's own libraries first (tests/core/atfork_early.c checks that order). What
 * its constructor does is chosen by ZC_EARLY (read with getenv: nothing may malloc before the case):
 *   many       registers 60 fork handlers: glibc keeps 48 in place and mallocs, under its atfork lock, to
 *              grow the list past them; that malloc is the process's first, before libzcmem's constructor.
 *   prepare    registers (no malloc yet) handlers that malloc small, medium and large blocks in the prepare,
 *              parent and child phases: zcmem registers its own after them, so its prepare handler runs
 *              first and these handlers malloc while zcmem holds its locks.
 *   ctor_fork  registers those handlers and forks from the constructor: the first malloc is the prepare
 *              handler's, before libzcmem's constructor ran.
 *   purger     allocates 16 MiB of small blocks and a large one (a second segment and a large allocation,
 *              each of which starts zcmem's purger thread) and counts the process's threads.
 * Each constructor sets alarm() first: a hang is a SIGALRM death.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zc_proc.h"

atomic_int early_prep_n, early_parent_n, early_child_n, early_bad;
int early_ctor_fork_status = -1; /* ctor_fork: the constructor's child's wait status */
int early_ctor_threads = -1;     /* purger: threads of the process at the end of the constructor */
enum { KEPT = 16384 };
void *early_kept[KEPT]; /* purger: the blocks, freed by main */

/* The helpers of tests/common/zc_proc.h, exported for the test program. */
int early_use_malloc(unsigned seed) { return zc_use_malloc(seed); }

int early_threads_now(void) { return zc_threads_now(); }

static void count_prepare(void) { atomic_fetch_add(&early_prep_n, 1); }
static void count_parent(void) { atomic_fetch_add(&early_parent_n, 1); }
static void count_child(void) { atomic_fetch_add(&early_child_n, 1); }
static void alloc_prepare(void) {
  atomic_fetch_add(&early_bad, early_use_malloc(2));
  count_prepare();
}
static void alloc_parent(void) {
  atomic_fetch_add(&early_bad, early_use_malloc(3));
  count_parent();
}
static void alloc_child(void) {
  atomic_fetch_add(&early_bad, early_use_malloc(4));
  count_child();
}

__attribute__((constructor)) static void early_ctor(void) {
  const char *c = getenv("ZC_EARLY");
  if (c == NULL) return;
  alarm(60);
  if (strcmp(c, "many") == 0) {
    for (int i = 0; i < 60; i++)
      if (pthread_atfork(count_prepare, count_parent, count_child) != 0) abort();
  } else if (strcmp(c, "prepare") == 0) {
    if (pthread_atfork(alloc_prepare, alloc_parent, alloc_child) != 0) abort();
  } else if (strcmp(c, "ctor_fork") == 0) {
    if (pthread_atfork(alloc_prepare, alloc_parent, alloc_child) != 0) abort();
    pid_t pid = fork();
    if (pid == 0) _exit(atomic_load(&early_child_n) != 1 ? 3 : early_use_malloc(5) ? 4 : 0);
    if (pid > 0 && waitpid(pid, &early_ctor_fork_status, 0) != pid) early_ctor_fork_status = -2;
  } else if (strcmp(c, "purger") == 0) {
    for (int i = 0; i < KEPT; i++) early_kept[i] = malloc(1000);
    free(malloc((size_t)1 << 20));
    early_ctor_threads = early_threads_now();
  }
}
