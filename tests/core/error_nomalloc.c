/* zcmem's error path never allocates: a report made from inside free (or malloc_usable_size, realloc) calls
 * no malloc, so it cannot recurse into the allocator that is reporting, nor into a libc allocator that may
 * hold its own lock (the report is formatted on the stack and written with write(2), never through stdio).
 *
 * The program links the prefixed API (zc_*) and defines malloc, calloc, realloc and free itself, forwarding
 * to glibc's __libc_* functions: every allocation anyone makes in the process comes through here and is
 * counted while a zcmem call under test runs. Each bad call must add exactly one report (zc_stats_get
 * errors; ZCMEM_ABORT_ON_ERROR=0) and no allocation:
 *   first      a foreign free as the process's first zcmem call (options read, first message)
 *   foreign    free of a stack pointer
 *   interior   free of a pointer inside a small block
 *   double     double free of a small block, by its owner
 *   remote     double free of a small block from another thread
 *   large      double free of a large block
 *   usable     malloc_usable_size of a freed block
 *   realloc    realloc of a freed block
 * Args: none. Run with ZCMEM_ABORT_ON_ERROR=0.
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"

#include <pthread.h>
#include <stdatomic.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static atomic_int watching, allocs;

void *malloc(size_t n) {
  if (atomic_load(&watching)) atomic_fetch_add(&allocs, 1);
  return __libc_malloc(n);
}
void *calloc(size_t c, size_t n) {
  if (atomic_load(&watching)) atomic_fetch_add(&allocs, 1);
  return __libc_calloc(c, n);
}
void *realloc(void *p, size_t n) {
  if (atomic_load(&watching)) atomic_fetch_add(&allocs, 1);
  return __libc_realloc(p, n);
}
void free(void *p) {
  if (atomic_load(&watching) && p != NULL) atomic_fetch_add(&allocs, 1);
  __libc_free(p);
}

static uint64_t errors(void) {
  zc_stats_t s;
  zc_stats_get(&s);
  return s.errors;
}

/* Run one bad call with the counters watching: one report, no allocation. */
#define BAD_CALL(name, call)                                                                                  \
  do {                                                                                                        \
    uint64_t e0_ = errors();                                                                                  \
    atomic_store(&allocs, 0);                                                                                 \
    atomic_store(&watching, 1);                                                                               \
    call;                                                                                                     \
    atomic_store(&watching, 0);                                                                               \
    CHECKF(atomic_load(&allocs) == 0, "%s: the report made %d allocator calls", name, atomic_load(&allocs));  \
    CHECKF(errors() == e0_ + 1, "%s: %llu reports, not 1", name, (unsigned long long)(errors() - e0_));       \
  } while (0)

static void *victim;
static void *remote_double(void *arg) {
  (void)arg;
  atomic_store(&watching, 1);
  zc_free(victim); /* this thread's first zcmem call: it sets up a heap with mmap, no malloc */
  atomic_store(&watching, 0);
  return NULL;
}

int main(void) {
  int local = 0;
  uint64_t before = errors(); /* zc_stats_get reads no option; the first report reads them */
  atomic_store(&watching, 1);
  zc_free(&local + 1);
  atomic_store(&watching, 0);
  CHECKF(atomic_load(&allocs) == 0, "first: the report made %d allocator calls", atomic_load(&allocs));
  CHECKF(errors() == before + 1, "first: %llu reports", (unsigned long long)(errors() - before));

  BAD_CALL("foreign", zc_free(&local));
  unsigned char *p = zc_malloc(100), *keep = zc_malloc(100);
  REQUIRE(p != NULL && keep != NULL);
  BAD_CALL("interior", zc_free(p + 16));
  zc_free(p);
  BAD_CALL("double", zc_free(p));
  BAD_CALL("usable", (void)zc_usable_size(p));
  BAD_CALL("realloc", (void)zc_realloc(p, 50));

  victim = zc_malloc(64);
  REQUIRE(victim != NULL);
  zc_free(victim);
  uint64_t e0 = errors();
  atomic_store(&allocs, 0);
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, remote_double, NULL) == 0);
  REQUIRE(pthread_join(t, NULL) == 0);
  CHECKF(atomic_load(&allocs) == 0, "remote: the report made %d allocator calls", atomic_load(&allocs));
  CHECKF(errors() == e0 + 1, "remote: %llu reports, not 1", (unsigned long long)(errors() - e0));

  void *l = zc_malloc((size_t)1 << 20);
  REQUIRE(l != NULL);
  zc_free(l);
  BAD_CALL("large", zc_free(l));
  zc_free(keep);
  return check_exit("core_error_nomalloc");
}
