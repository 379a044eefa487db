/* Exhaustion under RLIMIT_AS, every entry point and every kind of block, from threads too: each failure is
 * NULL (or ENOMEM from posix_memalign) with errno = ENOMEM, never an abort or a crash, the blocks held
 * keep their bytes, and once everything is freed the allocator serves each kind again.
 *
 *   entry    malloc, calloc, realloc (growing one block, and a grow of every held block), posix_memalign,
 *            aligned_alloc, memalign, valloc: small (512 B), medium (20,000 B), large (300 KiB), huge
 *            (64 MiB) blocks until the limit refuses them (128 MiB above what the process maps).
 *   thread   the address space used up by the main thread, then 24 new threads (their stacks given by the
 *            test, so that pthread_create needs no mapping of its own), each keeping its heap until all
 *            have allocated, so that some need heaps beyond the mapped ones: their first allocations, which
 *            set up a heap, fail cleanly or succeed, and the threads exit (zcmem's exit hook) under the
 *            limit; after the frees and a trim, the main thread and a new thread allocate every kind.
 *   exit     threads that hold blocks exit while the address space is used up; their blocks are freed by
 *            the main thread after, and reused.
 *
 * core_exhaust_prefixed (zc_* on zcmem_prefixed) and core_exhaust_preload (malloc, LD_PRELOAD). Not built
 * under ASan/TSan (tests/core/CMakeLists.txt): their shadow memory needs the address space RLIMIT_AS takes.
 * Each case runs in a forked child, so an abort or a crash is reported as such.
 */
#define _GNU_SOURCE
#include "zc_test.h"

#include <malloc.h>
#include <pthread.h>
#include <sys/resource.h>

#include "zc_tapi.h"
#ifdef ZC_TEST_PREFIXED
#define NAME "core_exhaust_prefixed"
#else
#define NAME "core_exhaust_preload"
#endif

#define MAXP ((size_t)1 << 23)
static void **ptrs; /* mmap'ed, outside the allocator */
static size_t nptrs;

static const struct {
  const char *name;
  size_t size;
} kinds[] = {{"small", 512}, {"medium", 20000}, {"large", 300 << 10}, {"huge", (size_t)64 << 20}};
#define NKINDS (sizeof kinds / sizeof kinds[0])

enum { E_MALLOC, E_CALLOC, E_POSIX_MEMALIGN, E_ALIGNED_ALLOC, E_MEMALIGN, E_VALLOC, E_REALLOC, E_COUNT };
static const char *const entry_names[] = {"malloc", "calloc", "posix_memalign", "aligned_alloc", "memalign",
                                          "valloc", "realloc"};

static void limit_as(size_t room) {
  struct rlimit rl = {vm_bytes() + room, 0};
  rl.rlim_max = rl.rlim_cur;
  REQUIRE(setrlimit(RLIMIT_AS, &rl) == 0);
}

/* One allocation of n bytes through entry e; *err: errno after a NULL (the return code for posix_memalign). */
static void *alloc_by(int e, size_t n, int *err) {
  void *p = NULL;
  errno = 0;
  switch (e) {
  case E_MALLOC: p = T_malloc(n); break;
  case E_CALLOC: p = T_calloc(n / 8, 8); break;
  case E_POSIX_MEMALIGN: {
    void *out = (void *)&nptrs; /* must stay untouched on failure */
    int rc = T_posix_memalign(&out, 64, n);
    if (rc != 0) {
      CHECKF(out == (void *)&nptrs, "posix_memalign failed with %d and changed *memptr", rc);
      *err = rc;
      return NULL;
    }
    p = out;
    break;
  }
  case E_ALIGNED_ALLOC: p = T_aligned_alloc(4096, n); break;
  case E_MEMALIGN: p = T_memalign(256, n); break;
  case E_VALLOC: p = T_valloc(n); break;
  default: p = T_realloc(T_malloc(16), n); break; /* E_REALLOC: a fresh block grown (freed on failure below) */
  }
  *err = errno;
  return p;
}

/* Fill blocks of n bytes through entry e until the limit refuses one; returns how many. Each block's first and
 * last bytes are written (its pages faulted in where the limit is tight). */
static size_t fill(int e, size_t n, int *err) {
  size_t got = 0;
  *err = -1;
  while (nptrs < MAXP) {
    void *p;
    if (e == E_REALLOC) { /* realloc growing from 16 B: the small block is freed by a failed realloc's caller */
      void *s = T_malloc(16);
      if (s == NULL) {
        *err = errno;
        break;
      }
      errno = 0;
      p = T_realloc(s, n);
      *err = errno;
      if (p == NULL) {
        T_free(s);
        break;
      }
    } else {
      p = alloc_by(e, n, err);
      if (p == NULL) break;
    }
    CHECKF(T_usable(p) >= n, "%s(%zu): usable size %zu", entry_names[e], n, T_usable(p));
    ((volatile char *)p)[0] = 1;
    ((volatile char *)p)[n - 1] = 2;
    ptrs[nptrs++] = p;
    got++;
  }
  return got;
}

static void free_all(void) {
  for (size_t i = 0; i < nptrs; i++) T_free(ptrs[i]);
  nptrs = 0;
}

/* Every entry, every kind, until NULL under a 128 MiB limit; then each kind works again. */
static int case_entry(void *arg) {
  (void)arg;
  limit_as((size_t)128 << 20);
  for (int e = 0; e < E_COUNT; e++) {
    for (unsigned k = 0; k < NKINDS; k++) {
      int err;
      size_t got = fill(e, kinds[k].size, &err);
      CHECKF(err == ENOMEM, "%s of %s blocks (%zu B): failed with errno %d after %zu blocks", entry_names[e],
             kinds[k].name, kinds[k].size, err, got);
      CHECKF(got > 0, "%s of %s blocks: the first one failed under a 128 MiB limit", entry_names[e], kinds[k].name);
      /* a failure leaves what is held as it is: the last block's bytes */
      if (nptrs > 0) {
        volatile char *last = ptrs[nptrs - 1];
        CHECKF(last[0] == 1 && last[kinds[k].size - 1] == 2, "%s of %s blocks: the last block lost its bytes",
               entry_names[e], kinds[k].name);
      }
      /* realloc of every held block to twice its size while exhausted: NULL + ENOMEM or a moved block, the
       * bytes kept either way */
      if (e == E_MALLOC && k >= 2) {
        for (size_t i = 0; i < nptrs; i++) {
          errno = 0;
          char *q = T_realloc(ptrs[i], 2 * kinds[k].size);
          if (q == NULL) {
            CHECKF(errno == ENOMEM, "realloc of a %s block to twice its size: NULL, errno %d", kinds[k].name, errno);
            q = ptrs[i];
          }
          CHECKF(q[0] == 1 && q[kinds[k].size - 1] == 2, "realloc of a %s block lost its bytes", kinds[k].name);
          ptrs[i] = q;
        }
      }
      free_all();
      for (unsigned j = 0; j < NKINDS; j++) {
        int e2;
        void *q = alloc_by(e, kinds[j].size, &e2);
        CHECKF(q != NULL, "%s of a %s block after freeing everything: NULL, errno %d", entry_names[e],
               kinds[j].name, e2);
        T_free(q);
      }
    }
  }
  return check_failures ? 1 : 0;
}

/* The address space used up by the main thread (large blocks, then small ones, then raw mappings for what
 * zcmem does not take), leaving the threads only what their given stacks hold. */
static void use_up(void) {
  int err;
  fill(E_MALLOC, (size_t)1 << 20, &err);
  fill(E_MALLOC, 20000, &err);
  fill(E_MALLOC, 48, &err);
  size_t chunk = (size_t)1 << 20;
  for (;;) { /* what is left below the limit: taken by mappings of our own, down to one page */
    void *m = mmap(NULL, chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
      if (chunk == 4096) break;
      chunk /= 2;
    }
  }
}

#define NTHREADS 4
#define NNEW 24 /* threads started under the limit: more than one mapping of heaps (16) holds */
#define STACK_SIZE ((size_t)256 << 10)
static char *stacks; /* mapped before the limit */
static int allocated_n, release_n; /* threads done allocating; set when they may exit (atomics) */

typedef struct {
  int ok[NKINDS];   /* 1: the block came, 0: NULL with ENOMEM, -1: NULL with another errno */
  int errs[NKINDS]; /* errno after a NULL */
  void *keep;       /* a block left to the main thread */
} thread_out_t;

static void *exhausted_thread(void *arg) {
  thread_out_t *o = arg;
  for (unsigned k = 0; k < NKINDS; k++) {
    errno = 0;
    void *p = T_malloc(kinds[k].size);
    o->errs[k] = errno;
    o->ok[k] = p != NULL ? 1 : errno == ENOMEM ? 0 : -1;
    if (p != NULL) {
      memset(p, 0x3C, kinds[k].size < 4096 ? kinds[k].size : 4096);
      if (o->keep == NULL) o->keep = p;
      else T_free(p);
    }
  }
  /* keep this thread's heap until every thread has allocated: each new thread then needs a heap of its own */
  __atomic_add_fetch(&allocated_n, 1, __ATOMIC_RELEASE);
  while (!__atomic_load_n(&release_n, __ATOMIC_ACQUIRE)) sched_yield();
  return NULL;
}

static int start_threads(pthread_t *t, thread_out_t *out) {
  int started = 0;
  for (int i = 0; i < NNEW; i++) {
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstack(&a, stacks + (size_t)i * STACK_SIZE, STACK_SIZE);
    int rc = pthread_create(&t[i], &a, exhausted_thread, &out[i]);
    pthread_attr_destroy(&a);
    if (rc != 0) { /* glibc allocates the thread's TLS vector with malloc: EAGAIN when it fails */
      CHECKF(rc == EAGAIN, "pthread_create under the limit: %d", rc);
      t[i] = 0;
      continue;
    }
    started++;
  }
  return started;
}

static int case_thread(void *arg) {
  (void)arg;
  stacks = mmap(NULL, NNEW * STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(stacks != MAP_FAILED);
  memset(stacks, 0, NNEW * STACK_SIZE);
  void *warm = T_malloc(100); /* the main thread's heap exists before the limit */
  T_free(warm);
  limit_as((size_t)192 << 20);
  use_up();
  pthread_t t[NNEW];
  thread_out_t out[NNEW];
  memset(out, 0, sizeof out);
  int started = start_threads(t, out);
  uint64_t deadline = now_ms() + 60000;
  while (__atomic_load_n(&allocated_n, __ATOMIC_ACQUIRE) < started && now_ms() < deadline) sched_yield();
  CHECKF(__atomic_load_n(&allocated_n, __ATOMIC_ACQUIRE) == started, "%d of %d threads allocated within 60 s",
         __atomic_load_n(&allocated_n, __ATOMIC_ACQUIRE), started);
  __atomic_store_n(&release_n, 1, __ATOMIC_RELEASE);
  int nomem = 0, small_ok = 0;
  for (int i = 0; i < NNEW; i++) {
    if (t[i] == 0) continue;
    REQUIRE(pthread_join(t[i], NULL) == 0);
    small_ok += out[i].ok[0] == 1;
    for (unsigned k = 0; k < NKINDS; k++) {
      CHECKF(out[i].ok[k] >= 0, "thread %d: malloc of a %s block under the limit: NULL with errno %d", i,
             kinds[k].name, out[i].errs[k]);
      nomem += out[i].ok[k] == 0;
    }
  }
  printf("thread: %d of %d threads started under the limit, %d allocations refused (ENOMEM), %d small blocks "
         "served\n", started, NNEW, nomem, small_ok);
  /* a huge block cannot fit in what is left: at least that was refused in every thread that ran */
  CHECKF(started == 0 || nomem >= started, "only %d refusals in %d threads with the address space used up", nomem,
         started);
  for (int i = 0; i < NNEW; i++) {
    if (out[i].keep != NULL) T_free(out[i].keep);
  }
  free_all();
  /* memory is back once the main thread's heap gives its empty segments up: a new thread (the same given
   * stack) allocates every kind */
  T_trim(0);
  memset(out, 0, sizeof out);
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setstack(&a, stacks, STACK_SIZE);
  int rc = pthread_create(&t[0], &a, exhausted_thread, &out[0]);
  pthread_attr_destroy(&a);
  CHECKF(rc == 0, "pthread_create after the frees: %d", rc);
  if (rc == 0) {
    pthread_join(t[0], NULL);
    /* each kind's first malloc: the trim left only purged (clean) cached regions, whose unmap the retry after
     * a refused segment mapping must count (zc_large_release_cache answered 0 for them: ENOMEM) */
    for (unsigned k = 0; k < NKINDS; k++)
      CHECKF(out[0].ok[k] == 1, "after the frees, a new thread's malloc of a %s block: NULL, errno %d", kinds[k].name,
             out[0].errs[k]);
    T_free(out[0].keep);
  }
  for (unsigned k = 0; k < NKINDS; k++) { /* the main thread, whose heap the memory went back to */
    void *q = T_malloc(kinds[k].size);
    CHECKF(q != NULL, "after the frees and a trim, the main thread's malloc of a %s block: NULL, errno %d",
           kinds[k].name, errno);
    T_free(q);
  }
  return check_failures ? 1 : 0;
}

/* Threads hold blocks of every kind and exit once the address space is used up; the main thread frees them
 * after and allocates again. */
static pthread_barrier_t exit_bar, exit_go;
static void *holding_thread(void *arg) {
  void **held = arg;
  for (unsigned k = 0; k < NKINDS; k++) {
    held[k] = T_malloc(kinds[k].size);
    if (held[k] != NULL) memset(held[k], (int)(0x40 + k), kinds[k].size < 8192 ? kinds[k].size : 8192);
  }
  pthread_barrier_wait(&exit_bar); /* blocks held */
  pthread_barrier_wait(&exit_go);  /* the address space is used up: exit */
  return NULL;
}

static int case_exit(void *arg) {
  (void)arg;
  stacks = mmap(NULL, NTHREADS * STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(stacks != MAP_FAILED);
  void *held[NTHREADS][NKINDS];
  memset(held, 0, sizeof held);
  pthread_barrier_init(&exit_bar, NULL, NTHREADS + 1);
  pthread_barrier_init(&exit_go, NULL, NTHREADS + 1);
  pthread_t t[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) {
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstack(&a, stacks + (size_t)i * STACK_SIZE, STACK_SIZE);
    REQUIRE(pthread_create(&t[i], &a, holding_thread, held[i]) == 0);
    pthread_attr_destroy(&a);
  }
  pthread_barrier_wait(&exit_bar);
  for (int i = 0; i < NTHREADS; i++)
    for (unsigned k = 0; k < NKINDS; k++) REQUIREF(held[i][k] != NULL, "thread %d: no %s block before the limit", i, kinds[k].name);
  limit_as((size_t)128 << 20);
  use_up();
  pthread_barrier_wait(&exit_go);
  for (int i = 0; i < NTHREADS; i++) REQUIRE(pthread_join(t[i], NULL) == 0);
  for (int i = 0; i < NTHREADS; i++)
    for (unsigned k = 0; k < NKINDS; k++) {
      unsigned char *p = held[i][k];
      size_t n = kinds[k].size < 8192 ? kinds[k].size : 8192;
      CHECKF(p[0] == 0x40 + k && p[n - 1] == 0x40 + k, "thread %d's %s block lost its bytes after its exit", i,
             kinds[k].name);
      T_free(p);
    }
  free_all();
  for (unsigned k = 0; k < NKINDS; k++) {
    void *q = T_malloc(kinds[k].size);
    CHECKF(q != NULL, "after the exits and the frees: malloc of a %s block: NULL, errno %d", kinds[k].name, errno);
    T_free(q);
  }
  return check_failures ? 1 : 0;
}

static const struct {
  const char *name;
  int (*fn)(void *);
} cases[] = {{"entry", case_entry}, {"thread", case_thread}, {"exit", case_exit}};

int main(int argc, char **argv) {
  ptrs = mmap(NULL, MAXP * sizeof(void *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(ptrs != MAP_FAILED);
#ifndef ZC_TEST_PREFIXED
  REQUIREF(is_zcmem_malloc(), "malloc resolves to %s, not zcmem", malloc_owner());
#endif
  const char *only = argc > 1 ? argv[1] : NULL;
  int ran = 0;
  for (unsigned c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    if (only != NULL && strcmp(only, cases[c].name) != 0) continue;
    ran++;
    child_result_t r = run_child(cases[c].fn, NULL, 240); /* the debug build's checks: about 10x slower */
    char buf[64];
    fputs(r.out, stdout);
    fputs(r.err, stderr);
    CHECKF(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "case %s ended with %s", cases[c].name,
           status_str(r.status, buf, sizeof buf));
    CHECKF(count_lines_with_prefix(r.err, "zcmem: error") == 0, "case %s: the allocator printed an error",
           cases[c].name);
    child_result_free(&r);
  }
  REQUIREF(ran > 0, "no case named %s", only);
  return check_exit(NAME);
}
