/* Layer 1, platform: the Linux implementation of os.h (x86-64 and arm64). The only file of the allocator
 * that includes system headers or makes system calls. Nothing here calls malloc. */
#define _GNU_SOURCE
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static size_t page_cached; /* the page size, or a test's pretend one (zc_os_set_page_size) */
static size_t page_real;   /* the kernel's: mmap aligns to it, whatever we pretend */

static size_t real_page_size(void) {
  size_t pg = __atomic_load_n(&page_real, __ATOMIC_RELAXED);
  if (pg == 0) {
    long v = sysconf(_SC_PAGESIZE);
    pg = v > 0 ? (size_t)v : 4096;
    __atomic_store_n(&page_real, pg, __ATOMIC_RELAXED);
  }
  return pg;
}

size_t zc_os_page_size(void) {
  size_t pg = __atomic_load_n(&page_cached, __ATOMIC_RELAXED);
  if (pg == 0) {
    pg = real_page_size();
    __atomic_store_n(&page_cached, pg, __ATOMIC_RELAXED);
  }
  return pg;
}

void zc_os_set_page_size(size_t page) {
  size_t real = real_page_size();
  if (page == 0 || (page & (page - 1)) != 0 || page % real != 0) page = real;
  __atomic_store_n(&page_cached, page, __ATOMIC_RELAXED);
}

/* ---- fault injection ---- */
static _Atomic long fail_after = -1;

void zc_os_fail_after(long n) { atomic_store(&fail_after, n); }

static _Atomic bool fail_purge;
void zc_os_fail_purge(bool on) { atomic_store(&fail_purge, on); }

static bool inject_failure(void) {
  long n = atomic_load_explicit(&fail_after, memory_order_relaxed);
  while (n >= 0) {
    if (n == 0) return true;
    if (atomic_compare_exchange_weak(&fail_after, &n, n - 1)) return false;
  }
  return false;
}

/* System calls map_aligned made (zc_os_map_calls, for tests). */
static _Atomic uint64_t map_calls;
#define COUNTED(call) (atomic_fetch_add_explicit(&map_calls, 1, memory_order_relaxed), (call))
uint64_t zc_os_map_calls(void) { return atomic_load_explicit(&map_calls, memory_order_relaxed); }

/* The hint of an aligned anonymous mapping: the lowest base of the aligned mappings map_aligned made in
 * the current run, and where that run started (0: none). The next one is asked for just below the lowest,
 * at an aligned address: Linux hands out mappings top-down, from its highest free gap, so the address space
 * below the lowest mapping is usually free; the kernel then takes the hint and the mapping is one mmap, not
 * the mmap of size + align and two munmaps that trim it (nor five calls when a first exact try comes back
 * unaligned). The hint is asked with MAP_FIXED_NOREPLACE (Linux 4.17+): never over a mapping; a hint that
 * is taken fails (one call) and the trimmed way serves this one; the next hint goes below both (the
 * kernel's own placement is usually just below the lowest mapping too, where two threads raced for one hint). A kernel
 * that ignores the flag places the mapping elsewhere: unless aligned by luck it is unmapped. A run descends
 * at most HINT_DESCENT below where it started; then the kernel's own placement (its highest free gap,
 * which reuses the holes that unmapped regions left) starts the next one. Relaxed atomics: a torn or stale
 * pair is a wrong hint, nothing worse. */
static _Atomic uintptr_t hint_low, hint_anchor;
#define HINT_DESCENT ((uintptr_t)64 << 30)
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

static void hint_note(uintptr_t p, bool anchor) {
  if (anchor) {
    atomic_store_explicit(&hint_anchor, p, memory_order_relaxed);
    atomic_store_explicit(&hint_low, p, memory_order_relaxed);
    return;
  }
  uintptr_t low = atomic_load_explicit(&hint_low, memory_order_relaxed);
  while ((low == 0 || p < low) &&
         !atomic_compare_exchange_weak_explicit(&hint_low, &low, p, memory_order_relaxed, memory_order_relaxed)) {
  }
}

/* An anonymous mapping of size bytes at the hinted aligned address, or NULL (nothing mapped). *tried: a
 * hint was tried (and failed). */
static void *map_hinted(size_t size, size_t align, int flags, bool *tried) {
  uintptr_t low = atomic_load_explicit(&hint_low, memory_order_relaxed);
  uintptr_t anchor = atomic_load_explicit(&hint_anchor, memory_order_relaxed);
  if (low == 0 || low < size + align || anchor < low || anchor - low > HINT_DESCENT) return NULL;
  uintptr_t h = (low - size) & ~(uintptr_t)(align - 1);
  char *p = COUNTED(mmap((void *)h, size, PROT_READ | PROT_WRITE, flags | MAP_FIXED_NOREPLACE, -1, 0));
  if (p != MAP_FAILED && ((uintptr_t)p & (align - 1)) == 0) {
    hint_note((uintptr_t)p, false);
    return p;
  }
  if (p != MAP_FAILED) COUNTED(munmap(p, size)); /* the flag ignored, placed elsewhere */
  hint_note(h, false); /* taken: the next hint goes below it */
  *tried = true;
  return NULL;
}

/* Map size bytes aligned to align: at the hint (above), else exactly (aligned by luck), else map size + align -
 * page and unmap the unaligned head and tail. */
static void *map_aligned(size_t size, size_t align, int fd) {
  if (inject_failure()) {
    errno = ENOMEM;
    return NULL;
  }
  size_t page = real_page_size(); /* what mmap aligns to */
  if (align < zc_os_page_size()) align = zc_os_page_size();
  /* No MAP_NORESERVE: the kernel's overcommit policy applies as to the system malloc's mappings. With it,
   * the default heuristic (vm.overcommit_memory=0) no longer refused a mapping larger than RAM + swap, and
   * malloc(1 TiB) on a 23 GiB machine returned a block the OOM killer ended the process for at first use
   * instead of NULL (core_overcommit). Strict accounting (2) ignores the flag; 1 grants every mapping. */
  int flags = fd >= 0 ? MAP_SHARED : (MAP_PRIVATE | MAP_ANONYMOUS);
  if (align == page) {
    void *p = COUNTED(mmap(NULL, size, PROT_READ | PROT_WRITE, flags, fd, 0));
    if (p == MAP_FAILED) {
      errno = ENOMEM;
      return NULL;
    }
    return p;
  }
  if (fd >= 0) {
    /* A file mapping cannot be trimmed at its head without moving its offset: reserve anonymous address
     * space, then map the file over the aligned part of it. */
    size_t span = size + align;
    if (span < size) goto nomem;
    char *r = COUNTED(mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
    if (r == MAP_FAILED) goto nomem;
    char *a = (char *)(((uintptr_t)r + align - 1) & ~(uintptr_t)(align - 1));
    void *p = COUNTED(mmap(a, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0));
    if (p == MAP_FAILED) {
      COUNTED(munmap(r, span));
      goto nomem;
    }
    if (a > r) COUNTED(munmap(r, (size_t)(a - r)));
    size_t tail = (size_t)((r + span) - (a + size));
    if (tail) COUNTED(munmap(a + size, tail));
    return a;
  }
  bool tried = false;
  char *p = map_hinted(size, align, flags, &tried);
  if (p != NULL) return p;
  if (!tried) { /* no hint: an exact mapping is often aligned already */
    p = COUNTED(mmap(NULL, size, PROT_READ | PROT_WRITE, flags, -1, 0));
    if (p == MAP_FAILED) goto nomem;
    if (((uintptr_t)p & (align - 1)) == 0) {
      hint_note((uintptr_t)p, true);
      return p;
    }
    COUNTED(munmap(p, size));
  }
  size_t span = size + align - page;
  if (span < size) goto nomem;
  p = COUNTED(mmap(NULL, span, PROT_READ | PROT_WRITE, flags, -1, 0));
  if (p == MAP_FAILED) goto nomem;
  char *a = (char *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
  if (a > p) COUNTED(munmap(p, (size_t)(a - p)));
  size_t tail = (size_t)((p + span) - (a + size));
  if (tail) COUNTED(munmap(a + size, tail));
  hint_note((uintptr_t)a, !tried); /* a new run starts here; after a failed hint the run goes on below both */
  return a;
nomem:
  errno = ENOMEM;
  return NULL;
}

/* A mapping above ZC_OS_ADDRESS_LIMIT (see os.h) is given back: the segment map cannot describe it. */
static void *below_limit(void *p, size_t size) {
  if (p != NULL && ((uintptr_t)p >= ZC_OS_ADDRESS_LIMIT || size > ZC_OS_ADDRESS_LIMIT - (uintptr_t)p)) {
    munmap(p, size);
    errno = ENOMEM;
    return NULL;
  }
  return p;
}

void *zc_os_alloc_aligned(size_t size, size_t align) { return below_limit(map_aligned(size, align, -1), size); }

void *zc_os_alloc_file_backed(size_t size, size_t align) {
  const char *dir = zc_os_getenv("TMPDIR");
  if (dir == NULL || dir[0] == 0) dir = "/tmp";
  int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {
    errno = ENOMEM;
    return NULL;
  }
  void *p = NULL;
  if (ftruncate(fd, (off_t)size) == 0) p = below_limit(map_aligned(size, align, fd), size);
  close(fd); /* the mapping keeps the unlinked file alive */
  if (p == NULL) errno = ENOMEM;
  return p;
}

void zc_os_free(void *p, size_t size) {
  if (p != NULL && size != 0) munmap(p, size);
}

size_t zc_os_purge(void *p, size_t size, int mode) {
  uintptr_t first;
  size_t len = zc_os_page_inward((uintptr_t)p, size, zc_os_page_size(), &first);
  if (len == 0 || atomic_load_explicit(&fail_purge, memory_order_relaxed)) return 0;
#ifdef MADV_FREE
  if (mode == 1 && madvise((void *)first, len, MADV_FREE) == 0) return len;
#endif
  (void)mode;
  return madvise((void *)first, len, MADV_DONTNEED) == 0 ? len : 0;
}

bool zc_os_huge_pages(void *p, size_t size) {
#ifdef MADV_HUGEPAGE
  return madvise(p, size, MADV_HUGEPAGE) == 0;
#else
  (void)p;
  (void)size;
  return false;
#endif
}

/* ---- threads, time, process ---- */

uintptr_t zc_os_thread_id(void) { return (uintptr_t)pthread_self(); }

uint64_t zc_os_tid(void) { return (uint64_t)syscall(SYS_gettid); }

uint64_t zc_os_clock_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void zc_os_sleep_ns(uint64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

unsigned zc_os_cpu_count(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (unsigned)n : 1;
}

const char *zc_os_getenv(const char *name) {
  /* environ is set by the dynamic loader before any constructor runs; scan it by hand because getenv may
   * not be usable this early in every libc. */
  if (environ == NULL || name == NULL) return NULL;
  size_t n = strlen(name);
  for (char **e = environ; *e != NULL; e++) {
    if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') return *e + n + 1;
  }
  return NULL;
}

void zc_os_entropy(void *buf, size_t len) {
  unsigned char *b = buf;
  size_t got = 0;
  while (got < len) {
    ssize_t r = getrandom(b + got, len - got, GRND_NONBLOCK);
    if (r <= 0) break;
    got += (size_t)r;
  }
  if (got == len) return;
  uint64_t x = zc_os_clock_ns() ^ (uint64_t)(uintptr_t)&got ^ ((uint64_t)getpid() << 32);
  for (; got < len; got++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b[got] = (unsigned char)x;
  }
}

uint64_t zc_os_rss(void) {
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[128];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  const char *s = buf;
  while (*s && *s != ' ') s++; /* skip total size */
  while (*s == ' ') s++;
  uint64_t pages = 0;
  while (*s >= '0' && *s <= '9') pages = pages * 10 + (uint64_t)(*s++ - '0');
  return pages * real_page_size();
}

uint64_t zc_os_peak_rss(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return (uint64_t)ru.ru_maxrss * 1024u;
}

void zc_os_write(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    buf += n;
    len -= (size_t)n;
  }
}

static pthread_key_t exit_key;

bool zc_os_thread_exit_init(void (*fn)(void *)) { return pthread_key_create(&exit_key, fn) == 0; }

void zc_os_thread_exit_register(void *arg) { pthread_setspecific(exit_key, arg); }

/* glibc's pthread_atfork is a stub linked statically into each caller (libc_nonshared.a) that passes the
 * caller's __dso_handle to __register_atfork; the linker puts it after all of zcmem's code, at the very end
 * of libzcmem.so's text. Its one call, at load, faulted that last page in, and with it (the kernel maps up to
 * 64 KiB of cached file pages around a fault) the last 40 KiB of the library's text, in every process
 * (docs/design.md, "What a process pays before it holds data"). So on glibc zcmem makes the stub's call
 * itself. An interposed __register_atfork still sees it (tests/core/atfork.c). */
#if defined(__GLIBC__)
extern int __register_atfork(void (*)(void), void (*)(void), void (*)(void), void *);
extern void *__dso_handle __attribute__((weak, visibility("hidden")));
#endif

void zc_os_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void)) {
#if defined(__GLIBC__)
  __register_atfork(prepare, parent, child, &__dso_handle != NULL ? __dso_handle : NULL);
#else
  pthread_atfork(prepare, parent, child);
#endif
}

bool zc_os_thread_start(void *(*fn)(void *), void *arg) {
  pthread_t t;
  pthread_attr_t attr;
  if (pthread_attr_init(&attr) != 0) return false;
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  /* The thread starts with every signal blocked: a signal sent to the process must reach the program's
   * own threads. A single-threaded program (bash) counts on its handlers running on its one thread and
   * interrupting its waits: bash under LD_PRELOAD hung in wait4 when its SIGCHLD ran on the purger. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  bool ok = pthread_create(&t, &attr, fn, arg) == 0;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  return ok;
}

/* ---- locks: a futex mutex (free, locked, locked with waiters), plus a mark for the fork ----
 * state 0 is free; any other value is locked. LOCK_WAITERS: a waiter may sleep on the futex (the unlock wakes
 * one). LOCK_FORK: the forking thread holds it between its prepare and parent/child handlers (os.h). */
#define LOCK_WAITERS 2
#define LOCK_FORK 4

static long futex(int *addr, int op, int val) { return syscall(SYS_futex, addr, op, val, NULL, NULL, 0); }

static __thread bool fork_holder; /* this thread holds the LOCK_FORK locks (zc_os_fork_hold) */

void zc_lock_init(zc_lock_t *l) { __atomic_store_n(&l->state, 0, __ATOMIC_RELAXED); }

bool zc_trylock(zc_lock_t *l) {
  int expect = 0;
  if (__atomic_compare_exchange_n(&l->state, &expect, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return true;
  return fork_holder && (expect & LOCK_FORK) != 0; /* the forking thread's own: already held */
}

static inline void cpu_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#else
  __asm__ __volatile__("" ::: "memory");
#endif
}

/* Contended: spin on a plain load with a pause first (the allocator's critical sections are a few list
 * operations, shorter than a system call), then yield, then sleep on the futex. Yielding at once made a
 * sched_yield call of every brief contention (the large-region pool's lock under bench/large-ring). */
void zc_lock(zc_lock_t *l) {
  int c = 0;
  if (__atomic_compare_exchange_n(&l->state, &c, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return;
  if (fork_holder && (c & LOCK_FORK) != 0) return; /* the forking thread's own: already held */
  for (int spin = 0; spin < 64; spin++) {
    for (int i = 0; i < 16 && __atomic_load_n(&l->state, __ATOMIC_RELAXED) != 0; i++) cpu_pause();
    c = 0;
    if (__atomic_compare_exchange_n(&l->state, &c, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return;
    if (spin >= 32) sched_yield();
  }
  /* mark a waiter (keeping LOCK_FORK) and sleep while the value stays; a free lock is taken with the mark */
  while ((c = __atomic_fetch_or(&l->state, LOCK_WAITERS, __ATOMIC_ACQUIRE)) != 0)
    futex(&l->state, FUTEX_WAIT_PRIVATE, c | LOCK_WAITERS);
}

void zc_unlock(zc_lock_t *l) {
  int c = 1;
  if (__atomic_compare_exchange_n(&l->state, &c, 0, false, __ATOMIC_RELEASE, __ATOMIC_RELAXED)) return;
  if (c & LOCK_FORK) return; /* the forking thread's nested unlock: zc_unlock_for_fork gives it back */
  if (__atomic_exchange_n(&l->state, 0, __ATOMIC_RELEASE) & LOCK_WAITERS) futex(&l->state, FUTEX_WAKE_PRIVATE, 1);
}

void zc_lock_for_fork(zc_lock_t *l) {
  zc_lock(l);
  __atomic_fetch_or(&l->state, LOCK_FORK, __ATOMIC_RELAXED);
}

void zc_unlock_for_fork(zc_lock_t *l) {
  if (__atomic_exchange_n(&l->state, 0, __ATOMIC_RELEASE) & LOCK_WAITERS) futex(&l->state, FUTEX_WAKE_PRIVATE, 1);
}

void zc_os_fork_hold(bool on) { fork_holder = on; }

/* ---- added for the large regions (layer 6): growing and moving mappings, a coarse clock ---- */

/* TSan does not see mremap: a range one thread read (a cached region's header) and then moved away with mremap
 * can come back to another thread by a later mremap (an extension, a move), whose first writes TSan then reports
 * as racing with the old read, although the kernel ordered the two calls. Under TSan every mremap here passes
 * through one read-modify-write of a counter before and after the call, the happens-before the kernel gives.
 * (It also orders unrelated work around two mapping calls: the price is TSan seeing less in those paths.) */
#if defined(__SANITIZE_THREAD__)
static unsigned long remap_order;
#define REMAP_ORDER() __atomic_fetch_add(&remap_order, 1, __ATOMIC_ACQ_REL)
#else
#define REMAP_ORDER() ((void)0)
#endif

bool zc_os_extend(void *p, size_t old_size, size_t new_size) {
  if (inject_failure()) return false;
  if (new_size > ZC_OS_ADDRESS_LIMIT - (uintptr_t)p) return false;
  /* Without MREMAP_MAYMOVE the kernel only extends into free address space, never over a mapping. */
  REMAP_ORDER();
  bool ok = mremap(p, old_size, new_size, 0) == p;
  REMAP_ORDER();
  return ok;
}

void *zc_os_move(void *p, size_t old_size, size_t new_size, size_t align) {
  /* Reserve an aligned target first: MREMAP_FIXED replaces it atomically, and alignment is kept. */
  void *target = below_limit(map_aligned(new_size, align, -1), new_size);
  if (target == NULL) return NULL;
  REMAP_ORDER();
  void *q = mremap(p, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, target);
  REMAP_ORDER();
  if (q == MAP_FAILED) {
    munmap(target, new_size);
    errno = ENOMEM;
    return NULL;
  }
  return q;
}

int zc_os_move_to(void *p, size_t size, void *dst) {
  if (inject_failure()) return 0;
  REMAP_ORDER();
  void *moved = mremap(p, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
  REMAP_ORDER();
  if (moved == dst) return 1;
  int e = errno;
  void *m = mmap(dst, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  errno = e;
  return m == dst ? 0 : -1;
}

/* Two pages made of two mappings (the second one's page moved next to the first: each has its own
 * anon_vma, so the kernel cannot merge them), moved as one onto a reserved range. */
static bool probe_move_mappings(void) {
  size_t pg = zc_os_page_size();
  char *a = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  char *b = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  char *t = mmap(NULL, 2 * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  bool ok = false;
  if (a != MAP_FAILED && b != MAP_FAILED && t != MAP_FAILED) {
    a[0] = 1, b[0] = 2;
    if (mremap(b, pg, pg, MREMAP_MAYMOVE | MREMAP_FIXED, a + pg) == a + pg) {
      b = MAP_FAILED; /* moved into a */
      ok = mremap(a, 2 * pg, 2 * pg, MREMAP_MAYMOVE | MREMAP_FIXED, t) == t && t[0] == 1 && t[pg] == 2;
      if (ok) a = MAP_FAILED; /* moved into t */
    }
  }
  if (a != MAP_FAILED) munmap(a, 2 * pg);
  if (b != MAP_FAILED) munmap(b, pg);
  if (t != MAP_FAILED) munmap(t, 2 * pg);
  return ok;
}

static int move_mappings_known; /* 0 not probed, 1 yes, 2 no */

void zc_os_set_can_move_mappings(int v) {
  __atomic_store_n(&move_mappings_known, v < 0 ? 0 : v ? 1 : 2, __ATOMIC_RELAXED);
}

bool zc_os_can_move_mappings(void) {
  int *kp = &move_mappings_known;
  int k = __atomic_load_n(kp, __ATOMIC_RELAXED);
  if (k == 0) {
    k = probe_move_mappings() ? 1 : 2;
    __atomic_store_n(kp, k, __ATOMIC_RELAXED);
  }
  return k == 1;
}

uint64_t zc_os_clock_coarse_ns(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0) return zc_os_clock_ns();
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- inter-process (the zero-copy channel, layer 9) ---- */
/* Everything the channel asks of the kernel: memfd files and seals, shared mappings, SEQPACKET sockets
 * with SCM_RIGHTS, poll and shared futexes. The contracts are in os.h. */
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

int zc_os_shm_create(const char *name, size_t size) {
  int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return -1;
  if (ftruncate(fd, (off_t)size) != 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

int zc_os_shm_check(int fd, size_t size) {
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0) {
    if (errno == EINVAL) errno = EPROTO; /* not a memory file: no seals at all */
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) return -1;
  int need = F_SEAL_SHRINK | F_SEAL_GROW;
  if ((seals & need) != need || !S_ISREG(st.st_mode) || st.st_size < 0 || (uint64_t)st.st_size != size) {
    errno = EPROTO;
    return -1;
  }
  return 0;
}

void *zc_os_shm_map(int fd, size_t size, bool writable) {
  void *p = mmap(NULL, size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
  return p == MAP_FAILED ? NULL : p;
}

void zc_os_close(int fd) {
  if (fd >= 0) close(fd); /* Linux closes the fd even when close reports EINTR: never retry */
}

static int unix_address(const char *path, struct sockaddr_un *a) {
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  size_t n = path ? strlen(path) : 0;
  if (n == 0 || n >= sizeof a->sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(a->sun_path, path, n);
  return 0;
}

/* Is a socket bound and listening at this address? A connect with the wrong socket type tells without
 * creating a connection: EPROTOTYPE from a live SEQPACKET listener, ECONNREFUSED from a stale file. */
static bool unix_path_live(const struct sockaddr_un *a) {
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return true; /* cannot tell: do not remove it */
  int r = connect(fd, (const struct sockaddr *)a, sizeof *a), e = errno;
  close(fd);
  return r == 0 || (e != ECONNREFUSED && e != ENOENT);
}

int zc_os_unix_listen(const char *path) {
  struct sockaddr_un a;
  if (unix_address(path, &a) != 0) return -1;
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct stat st;
  if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
    if (unix_path_live(&a)) {
      close(fd);
      errno = EADDRINUSE; /* someone listens there: never take the path from a running program */
      return -1;
    }
    unlink(path); /* a stale socket of an earlier run */
  }
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 16) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

int zc_os_unix_accept(int lfd, int timeout_ms) {
  int r = zc_os_fd_wait(lfd, timeout_ms);
  if (r < 0) return -1;
  if (r == 0) {
    errno = ETIMEDOUT;
    return -1;
  }
  return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

int zc_os_unix_connect(const char *path) {
  struct sockaddr_un a;
  if (unix_address(path, &a) != 0) return -1;
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  while (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    if (errno == EINTR) continue;
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

int zc_os_unix_pair(int sv[2]) { return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv); }

int zc_os_unix_check(int fd) {
  int type = 0, domain = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) return -1;
  len = sizeof domain;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) return -1;
  if (type != SOCK_SEQPACKET || domain != AF_UNIX) {
    errno = EPROTOTYPE;
    return -1;
  }
  return 0;
}

int zc_os_msg_send(int sock, const void *buf, size_t len, int pass_fd, bool block) {
  struct iovec iov = {(void *)buf, len};
  union {
    struct cmsghdr h;
    char space[CMSG_SPACE(sizeof(int))];
  } ctl;
  struct msghdr m;
  memset(&m, 0, sizeof m);
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  if (pass_fd >= 0) {
    memset(&ctl, 0, sizeof ctl);
    m.msg_control = ctl.space;
    m.msg_controllen = sizeof ctl.space;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
  }
  for (;;) {
    ssize_t n = sendmsg(sock, &m, MSG_NOSIGNAL | (block ? 0 : MSG_DONTWAIT));
    if (n == (ssize_t)len) return 0;
    if (n >= 0) {
      errno = EMSGSIZE;
      return -1;
    }
    if (errno != EINTR) return -1;
  }
}

long zc_os_msg_recv(int sock, void *buf, size_t cap, int *fd_out) {
  struct iovec iov = {buf, cap};
  union {
    struct cmsghdr h;
    char space[CMSG_SPACE(sizeof(int) * 8)];
  } ctl;
  struct msghdr m;
  *fd_out = -1;
  for (;;) {
    memset(&m, 0, sizeof m);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl.space;
    m.msg_controllen = sizeof ctl.space;
    ssize_t n = recvmsg(sock, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    int got = -1;
    size_t nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      nfds += k;
      for (size_t i = 0; i < k; i++) {
        int f;
        memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
        if (got < 0) got = f;
        else close(f); /* a well-behaved peer sends at most one fd per record */
      }
    }
    if (m.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) {
      zc_os_close(got);
      /* a full buffer of fds and more dropped: the peer sent more than a record carries (not our limit) */
      bool too_many = (m.msg_flags & MSG_CTRUNC) && nfds >= 8;
      errno = (m.msg_flags & MSG_TRUNC) || too_many ? EPROTO : EMFILE;
      return -1;
    }
    if (n == 0) { /* an empty record reads as end of file: nobody would close an fd that came with it */
      zc_os_close(got);
      got = -1;
    }
    *fd_out = got;
    return (long)n;
  }
}

int zc_os_fd_wait(int fd, int timeout_ms) {
  struct pollfd p = {fd, POLLIN, 0};
  int r = poll(&p, 1, timeout_ms < 0 ? -1 : timeout_ms);
  if (r < 0) return errno == EINTR ? 0 : -1;
  return r > 0 ? 1 : 0;
}

void zc_os_unix_shutdown(int fd) {
  if (fd >= 0) shutdown(fd, SHUT_RDWR);
}

int zc_os_futex_wait_shared(uint32_t *addr, uint32_t expect, int64_t timeout_ns) {
  struct timespec ts, *tp = NULL;
  if (timeout_ns >= 0) {
    ts.tv_sec = (time_t)(timeout_ns / 1000000000);
    ts.tv_nsec = (long)(timeout_ns % 1000000000);
    tp = &ts;
  }
  long r = syscall(SYS_futex, addr, FUTEX_WAIT, expect, tp, NULL, 0);
  if (r == 0 || errno == EAGAIN) return 0;
  return -1;
}

void zc_os_futex_wake_shared(uint32_t *addr, int n) { syscall(SYS_futex, addr, FUTEX_WAKE, n, NULL, NULL, 0); }

/* ---- added for the channel's trust rules (layer 9): seals, fork, peer credentials ---- */
#include <sys/ioctl.h>
#include <linux/sockios.h>

int zc_os_shm_seal(int fd, bool no_writes) {
  if (no_writes && fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) != 0) return -1;
  return fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL) != 0 ? -1 : 0;
}

int zc_os_shm_seals(int fd) {
  int s = fcntl(fd, F_GET_SEALS);
  if (s < 0) {
    if (errno == EINVAL) errno = EPROTO; /* not a memory file */
    return -1;
  }
  return ((s & F_SEAL_SHRINK) ? ZC_SEAL_SHRINK : 0) | ((s & F_SEAL_GROW) ? ZC_SEAL_GROW : 0) |
         ((s & F_SEAL_FUTURE_WRITE) ? ZC_SEAL_FUTURE_WRITE : 0) | ((s & F_SEAL_SEAL) ? ZC_SEAL_SEAL : 0);
}

bool zc_os_no_fork(void *p, size_t size) { return madvise(p, size, MADV_DONTFORK) == 0; }

int32_t zc_os_pid(void) { return (int32_t)getpid(); }

int zc_os_unix_peer(int fd, int32_t *pid, uint32_t *uid, uint32_t *gid) {
  struct ucred c;
  socklen_t len = sizeof c;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &len) != 0) return -1;
  *pid = (int32_t)c.pid;
  *uid = (uint32_t)c.uid;
  *gid = (uint32_t)c.gid;
  return 0;
}

uint32_t zc_os_euid(void) { return (uint32_t)geteuid(); }

long zc_os_unix_unread(int fd) {
  int n = 0;
  return ioctl(fd, SIOCOUTQ, &n) != 0 ? -1 : (long)n;
}

/* ---- channel services (layer 10): abstract socket names, epoll ---- */
#include <sys/epoll.h>

static int abstract_address(const char *name, struct sockaddr_un *a, socklen_t *len) {
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  size_t n = name ? strlen(name) : 0;
  if (n == 0 || n + 1 > sizeof a->sun_path) {
    errno = n == 0 ? EINVAL : ENAMETOOLONG;
    return -1;
  }
  memcpy(a->sun_path + 1, name, n); /* sun_path[0] = 0: the abstract namespace */
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
  return 0;
}

int zc_os_unix_listen_abstract(const char *name) {
  struct sockaddr_un a;
  socklen_t len;
  if (abstract_address(name, &a, &len) != 0) return -1;
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (bind(fd, (struct sockaddr *)&a, len) != 0 || listen(fd, 64) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

int zc_os_unix_connect_abstract(const char *name) {
  struct sockaddr_un a;
  socklen_t len;
  if (abstract_address(name, &a, &len) != 0) return -1;
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  while (connect(fd, (struct sockaddr *)&a, len) != 0) {
    if (errno == EINTR) continue;
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

int zc_os_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int zc_os_epoll_add(int ep, int fd, uint64_t tag) {
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.u64 = tag;
  return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

int zc_os_epoll_del(int ep, int fd) { return epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL); }

int zc_os_epoll_wait(int ep, uint64_t *tags, int max, int timeout_ms) {
  struct epoll_event ev[32];
  if (max > 32) max = 32;
  int n = epoll_wait(ep, ev, max, timeout_ms < 0 ? -1 : timeout_ms);
  if (n < 0) return errno == EINTR ? 0 : -1;
  for (int i = 0; i < n; i++) tags[i] = ev[i].data.u64;
  return n;
}
