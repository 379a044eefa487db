/* fork() in a multithreaded process: while worker threads are busy in malloc/free, the main thread (and
 * then a worker thread) forks repeatedly; each child allocates and frees heavily (small, medium, large,
 * realloc, a thread of its own, a grandchild) and exits 0. A child that deadlocks is killed by alarm()
 * and reported. Linked with libzcmem.so (the override), so libc's own allocations in the child are ours.
 * Args: [--quick] [forks=N].
 */
#define _GNU_SOURCE
#include "check.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>

static atomic_int stop;
static atomic_ulong busy_ops;

static void *busy(void *arg) {
  rng_t r;
  rng_seed(&r, (uintptr_t)arg);
  void *slot[128] = {0};
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    unsigned i = (unsigned)(rng_next(&r) % 128);
    free(slot[i]);
    size_t n = (rng_next(&r) % 100) < 97 ? (size_t)rng_range(&r, 1, 1024) : (size_t)rng_range(&r, 1, 300000);
    slot[i] = malloc(n);
    if (slot[i]) memset(slot[i], (int)i, n < 64 ? n : 64);
    atomic_fetch_add_explicit(&busy_ops, 1, memory_order_relaxed);
  }
  for (int i = 0; i < 128; i++) free(slot[i]);
  return NULL;
}

static void *child_thread(void *arg) {
  void **blocks = arg; /* free blocks that the child's main thread allocated: remote frees in the child */
  for (int i = 0; i < 256; i++) free(blocks[i]);
  void *p[256];
  for (int i = 0; i < 256; i++) p[i] = malloc((size_t)(i * 13 + 1));
  for (int i = 0; i < 256; i++) free(p[i]);
  return NULL;
}

/* Heavy use of the allocator in a fresh child; returns 0 if every block kept its contents. */
static int child_work(uint64_t seed, int depth) {
  rng_t r;
  rng_seed(&r, seed);
  enum { N = 1024 };
  unsigned char **ps = calloc(N, sizeof *ps);
  size_t *sz = calloc(N, sizeof *sz);
  if (!ps || !sz) return 10;
  for (int it = 0; it < 10000; it++) {
    unsigned i = (unsigned)(rng_next(&r) % N);
    if (ps[i]) {
      for (size_t k = 0; k < sz[i]; k += 251)
        if (ps[i][k] != (unsigned char)(i + k)) return 11;
      free(ps[i]);
    }
    uint64_t x = rng_next(&r) % 1000;
    size_t n = x < 900 ? (size_t)rng_range(&r, 1, 512) : x < 998 ? (size_t)rng_range(&r, 513, 65536)
                                                                  : (size_t)rng_range(&r, 65537, 2 << 20);
    if (it % 7 == 0 && ps[i] == NULL) {
      ps[i] = realloc(NULL, n);
    } else {
      ps[i] = malloc(n);
    }
    if (!ps[i]) return 12;
    sz[i] = n;
    for (size_t k = 0; k < n; k += 251) ps[i][k] = (unsigned char)(i + k);
  }
  void *blocks[256];
  for (int i = 0; i < 256; i++) blocks[i] = malloc((size_t)(i + 1) * 8);
  pthread_t t;
  if (pthread_create(&t, NULL, child_thread, blocks) != 0) return 13;
  pthread_join(t, NULL);
  if (depth == 0 && (seed & 3) == 0) { /* now and then a grandchild */
    fflush(NULL);
    pid_t g = fork();
    if (g < 0) return 14;
    if (g == 0) exit(child_work(seed + 1, 1));
    int st;
    if (waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return 15;
  }
  for (int i = 0; i < N; i++) free(ps[i]);
  free(ps);
  free(sz);
  return 0;
}

static int fork_and_wait(uint64_t seed, const char *from) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    return 1;
  }
  if (pid == 0) {
    alarm(30);
    exit(child_work(seed, 0));
  }
  int st;
  while (waitpid(pid, &st, 0) < 0) {
    if (errno != EINTR) {
      perror("waitpid");
      return 1;
    }
  }
  char buf[64];
  CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child forked from %s (seed %llu) ended with %s", from,
         (unsigned long long)seed, status_str(st, buf, sizeof buf));
  return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static int forks;

static void *forking_thread(void *arg) {
  (void)arg;
  for (int i = 0; i < forks / 2; i++) fork_and_wait(1000 + (uint64_t)i, "a worker thread");
  return NULL;
}

int main(int argc, char **argv) {
  int quick = quick_mode(argc, argv);
  forks = (int)arg_value(argc, argv, "forks", quick ? 8 : 20);
  void *m = dlsym(RTLD_DEFAULT, "malloc");
  Dl_info di;
  CHECKF(m && dladdr(m, &di) && di.dli_fname && strstr(di.dli_fname, "zcmem"), "malloc is not zcmem's");
  pthread_t th[3];
  for (uintptr_t i = 0; i < 3; i++) REQUIRE(pthread_create(&th[i], NULL, busy, (void *)(i + 1)) == 0);
  for (int i = 0; i < forks; i++) fork_and_wait((uint64_t)i, "the main thread");
  pthread_t ft;
  REQUIRE(pthread_create(&ft, NULL, forking_thread, NULL) == 0);
  pthread_join(ft, NULL);
  atomic_store(&stop, 1);
  for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
  printf("fork: %d forks from main and %d from a thread while 3 threads did %lu malloc/free\n", forks,
         forks / 2, atomic_load(&busy_ops));
  return check_exit("core_fork");
}
