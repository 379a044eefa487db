/* A fork child's allocator handler costs what the child needs, not what the lost threads held.
 *
 * The child handler used to rebuild every page of every thread that did not come along by relinking all
 * its free blocks: every free block written, so every page of free memory, shared with the parent after
 * fork, was copied (a page fault each). A parent whose 8 threads held 32 MiB each, half of it freed, gave
 * its children 61,104 page faults and 220-270 ms of CPU inside fork() (glibc's malloc: 43 faults), seconds
 * of wall-clock time on a loaded machine. Now the lost threads' segments are only marked untrusted and
 * abandoned; a page is checked (read only) when it is first needed: adoption, the purger's pass.
 *
 * The parent here: 4 threads each allocate 16 MiB of 16..2000-byte blocks, stamped, free half of them (some
 * frees by the next thread: remote frees on thread_free), then wait while the main thread forks. Each child
 * reads its page-fault count (getrusage: the kernel's count since fork, deterministic, not a timing) at its
 * first instruction after fork and again after 400 ms in which its purger passes over the abandoned
 * segments (ZCMEM_PURGE_DELAY=20: a pass every 10 ms), then checks the blocks the lost threads held live,
 * frees them, and allocates enough to adopt the lost threads' segments (whose pages are checked then): no
 * block corrupted or handed out twice. Bounds: at most 1,000 faults at fork (about 160 now, over 8,000
 * before), 1,500 after the purger's pass (the pass is read-only on the lost threads' pages; before the
 * pass changed it wrote a tail link in each, over 1,000 more faults); the count is a bound for every
 * interleaving (if the purger has not passed yet, fewer faults).
 * Linked with libzcmem.so (the override). Args: [--quick].
 */
#define _GNU_SOURCE
#include "zc_test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>

enum { THREADS = 4, PER_THREAD_MB = 16, FORKS = 3 };

typedef struct {
  unsigned char **ps;
  size_t n;
} held_t;
static held_t held[THREADS];
static atomic_int phase; /* 1: all allocated, 2: all freed their half, 3: stop */
static atomic_int ready;

static size_t block_size(size_t i, unsigned t) { return 16 + (size_t)((i * 2654435761u + t * 97u) % 1985u); }
static void stamp(unsigned char *p, size_t n, size_t i) {
  for (size_t k = 0; k < n; k += 7) p[k] = (unsigned char)(i + k);
}
static int intact(const unsigned char *p, size_t n, size_t i) {
  for (size_t k = 0; k < n; k += 7)
    if (p[k] != (unsigned char)(i + k)) return 0;
  return 1;
}

static void *holder(void *arg) {
  unsigned t = (unsigned)(uintptr_t)arg;
  size_t cap = ((size_t)PER_THREAD_MB << 20) / 900, bytes = 0;
  held_t *h = &held[t];
  h->ps = mmap(NULL, cap * sizeof *h->ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(h->ps != MAP_FAILED);
  while (h->n < cap && bytes < ((size_t)PER_THREAD_MB << 20)) {
    size_t n = block_size(h->n, t);
    unsigned char *p = malloc(n);
    REQUIRE(p != NULL);
    stamp(p, n, h->n);
    h->ps[h->n++] = p;
    bytes += n;
  }
  atomic_fetch_add(&ready, 1);
  while (atomic_load(&ready) < THREADS) usleep(1000);
  /* free half: one in 4 of the next thread's blocks (remote frees), one in 4 of its own */
  held_t *o = &held[(t + 1) % THREADS];
  for (size_t i = 1; i < o->n; i += 4) {
    free(o->ps[i]);
    o->ps[i] = NULL;
  }
  for (size_t i = 3; i < h->n; i += 4) {
    free(h->ps[i]);
    h->ps[i] = NULL;
  }
  atomic_fetch_add(&ready, 1);
  while (atomic_load(&phase) < 3) usleep(1000);
  return NULL;
}

static long minflt(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

static int child_main(long at_fork) {
  long after = 0;
  usleep(400000);
  after = minflt();
  int rc = 0;
  if (at_fork > 600) {
    fprintf(stderr, "child: %ld page faults at fork (bound 600)\n", at_fork);
    rc = 10;
  }
  if (after > 600) {
    fprintf(stderr, "child: %ld page faults after the purger's pass (bound 600)\n", after);
    rc = 11;
  }
  printf("child: %ld page faults at fork, %ld after 400 ms\n", at_fork, after);
  /* the lost threads' live blocks: intact, freed by the child (their owners are gone) */
  for (unsigned t = 0; t < THREADS; t++) {
    for (size_t i = 0; i < held[t].n; i++) {
      unsigned char *p = held[t].ps[i];
      if (p == NULL) continue;
      if (!intact(p, block_size(i, t), i)) rc = 12;
      free(p);
    }
  }
  /* allocate as much again: the lost threads' segments are adopted (and their pages checked) first */
  size_t n = (size_t)THREADS * ((size_t)PER_THREAD_MB << 20) / 900;
  unsigned char **ps = mmap(NULL, n * sizeof *ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (ps == MAP_FAILED) return 13;
  for (size_t i = 0; i < n; i++) {
    size_t sz = block_size(i, 7);
    ps[i] = malloc(sz);
    if (ps[i] == NULL) return 14;
    stamp(ps[i], sz, i);
  }
  for (size_t i = 0; i < n; i++) {
    if (!intact(ps[i], block_size(i, 7), i)) rc = 15; /* a block handed out twice was overwritten */
    free(ps[i]);
  }
  fflush(stdout);
  return rc;
}

int main(int argc, char **argv) {
  CHECKF(is_zcmem_malloc(), "malloc is not zcmem's: %s", malloc_owner());
  int forks = quick_mode(argc, argv) ? 1 : FORKS;
  pthread_t th[THREADS];
  for (uintptr_t t = 0; t < THREADS; t++) REQUIRE(pthread_create(&th[t], NULL, holder, (void *)t) == 0);
  while (atomic_load(&ready) < 2 * THREADS) usleep(1000);
  for (int f = 0; f < forks; f++) {
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      long at_fork = minflt(); /* first: the faults of fork() itself, the atfork handlers included */
      alarm(60);
      _exit(child_main(at_fork));
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) REQUIRE(errno == EINTR);
    char buf[64];
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork %d: the child ended with %s", f, status_str(st, buf, sizeof buf));
  }
  atomic_store(&phase, 3);
  for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
  return check_exit("core_fork_cost");
}
