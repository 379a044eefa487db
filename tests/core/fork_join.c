/* A fork child that creates and joins threads must not deadlock in free().
 *
 * glibc frees a dead thread's TLS (its dtv, a malloc'd block) while it holds its stack-cache lock, when the
 * cache of stacks grows past 40 MiB (pthread_join, a detached thread's exit). In a fork child the cache
 * starts with the stacks of every thread that did not come along. If that free empties a page, or frees a
 * large block, while zcmem's background purger is not running (it does not survive fork), starting the
 * purger from inside free called pthread_create, which takes the same stack-cache lock: the child hung for
 * good in its first pthread_join.
 *
 * The parent starts the purger (a large block freed), dlopens a module with a 1 MiB thread-local array
 * (fork_join_lib.c: glibc mallocs it per thread, a large block), keeps 6 threads with 64 MiB stacks that
 * touched it blocked, and forks; each child creates and joins threads, so glibc frees the 64 MiB stacks and
 * their TLS blocks under its lock, and exits 0. A child that does not exit within its deadline is killed
 * and the test fails. Several forks.
 * Linked with libzcmem.so (the override: glibc's own mallocs are zcmem's). Args: path of the module.
 */
#define _GNU_SOURCE
#include "check.h"

#include <pthread.h>

enum { HELD = 6, FORKS = 4, CHILD_DEADLINE_S = 30 }; /* a child still running after 30 s is hung (10 s was within reach of a loaded sanitizer run) */

static int hold_pipe[2];

static void (*touch_tls)(void);

static void *holder(void *arg) {
  if (arg != NULL) touch_tls();
  char b;
  while (read(hold_pipe[0], &b, 1) < 0 && errno == EINTR) {
  }
  return NULL;
}

static pthread_t held[HELD];
static int ready_pipe[2];

static void *create_held(void *arg) {
  (void)arg;
  for (int i = 0; i < HELD; i++) {
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, (size_t)64 << 20); /* one stack alone is over glibc's 40 MiB cache */
    REQUIRE(pthread_create(&held[i], &a, holder, (void *)1) == 0);
    pthread_attr_destroy(&a);
  }
  REQUIRE(write(ready_pipe[1], "r", 1) == 1);
  holder(NULL);
  return NULL;
}

static void *worker(void *arg) {
  size_t n = (size_t)(uintptr_t)arg;
  char *p = malloc(n);
  if (p) memset(p, 1, n);
  free(p);
  return NULL;
}

static int child_main(void) {
  for (int i = 0; i < 20; i++) {
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    if (i & 1) pthread_attr_setstacksize(&a, (size_t)1 << 20);
    if (pthread_create(&t, &a, worker, (void *)(uintptr_t)(100 + i)) != 0) return 3; /* small blocks only */
    pthread_attr_destroy(&a);
    if (pthread_join(t, NULL) != 0) return 4;
  }
  char *q = malloc((size_t)2 << 20);
  if (q == NULL) return 5;
  free(q);
  return 0;
}

int main(int argc, char **argv) {
  REQUIRE(is_zcmem_malloc());
  REQUIRE(argc == 2);
  void *lib = dlopen(argv[1], RTLD_NOW);
  REQUIREF(lib != NULL, "dlopen %s: %s", argv[1], dlerror());
  touch_tls = (void (*)(void))dlsym(lib, "zc_fork_join_touch");
  REQUIRE(touch_tls != NULL);
  /* a large block freed starts the background purger in the parent */
  void *big = malloc((size_t)4 << 20);
  memset(big, 1, 4096);
  free(big);
  REQUIRE(pipe(hold_pipe) == 0 && pipe(ready_pipe) == 0);
  /* the held threads are created by another thread, itself held: in the child its heap is orphaned, and
   * a free that empties one of its pages gives the page back at once */
  pthread_t creator;
  REQUIRE(pthread_create(&creator, NULL, create_held, NULL) == 0);
  char b;
  REQUIRE(read(ready_pipe[0], &b, 1) == 1);
  int hung = 0, failed = 0;
  for (int f = 0; f < FORKS; f++) {
    fflush(NULL);
    pid_t c = fork();
    REQUIRE(c >= 0);
    if (c == 0) {
      alarm(CHILD_DEADLINE_S + 10);
      _exit(child_main());
    }
    int st = 0, done = 0;
    for (int k = 0; k < CHILD_DEADLINE_S * 20 && !done; k++) {
      if (waitpid(c, &st, WNOHANG) == c) done = 1;
      else usleep(50000);
    }
    if (!done) {
      hung++;
      kill(c, SIGKILL);
      waitpid(c, &st, 0);
    } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      failed++;
    }
  }
  for (int i = 0; i <= HELD; i++) REQUIRE(write(hold_pipe[1], "x", 1) == 1);
  for (int i = 0; i < HELD; i++) pthread_join(held[i], NULL);
  pthread_join(creator, NULL);
  CHECKF(hung == 0, "%d of %d fork children hung creating and joining threads (deadlock in free)", hung, FORKS);
  CHECKF(failed == 0, "%d of %d fork children failed", failed, FORKS);
  printf("fork_join: %d forks, %d hung, %d failed\n", FORKS, hung, failed);
  CHECK_DONE("core_fork_join");
}
