/* Layer 1, platform: every call into the operating system goes through this contract, implemented once
 * per OS (os_linux.c). No other file of zcmem names an OS header or a system call.
 *
 * Includes: only libc headers that every hosted C11 system has. Included by every layer above.
 *
 * Error contract: functions that map memory return NULL on failure and leave errno = ENOMEM; they never
 * abort and never print. Functions returning bool return false on failure. Everything here is safe to
 * call before main, inside libc start-up and from a fork child, and none of it calls malloc.
 */
#ifndef ZC_OS_H
#define ZC_OS_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* ---- memory ---- */

/* The OS page size (4 KiB on x86-64; 4, 16 or 64 KiB on arm64). */
size_t zc_os_page_size(void);

/* Map size bytes of zeroed, readable and writable memory aligned to align (a power of two, at least the
 * page size). Size is a multiple of the page size. Physical pages are supplied lazily on first touch. */
void *zc_os_alloc_aligned(size_t size, size_t align);

/* Map size bytes backed by an unlinked temporary file (so the OS can write them back to the file instead of
 * swap), aligned to align. Falls back to NULL (ENOMEM) if no file can be created. */
void *zc_os_alloc_file_backed(size_t size, size_t align);

/* Unmap [p, p+size): the range came from zc_os_alloc_* (or is a page-aligned piece of one). */
void zc_os_free(void *p, size_t size);

/* Give the physical pages of [p, p+size) back to the OS but keep the mapping: the next touch reads zeros
 * (mode 0, MADV_DONTNEED) or either the old bytes or zeros (mode 1, MADV_FREE: freed lazily under memory
 * pressure, cheaper). p and size are page-aligned. Returns false if the OS refused. */
bool zc_os_purge(void *p, size_t size, int mode);

/* Ask for transparent huge pages on [p, p+size) (a hint; false if not supported). */
bool zc_os_huge_pages(void *p, size_t size);

/* ---- fault injection (tests) ----
 * After n more successful mappings, every zc_os_alloc_* fails (NULL, ENOMEM) until reset with n < 0.
 * The default (n < 0) never injects. */
void zc_os_fail_after(long n);

/* ---- threads, time, process ---- */

/* A nonzero id unique among live threads of the process. */
uintptr_t zc_os_thread_id(void);
/* Monotonic clock in nanoseconds. */
uint64_t zc_os_clock_ns(void);
/* Sleep for ns nanoseconds (background threads only). */
void zc_os_sleep_ns(uint64_t ns);
/* Number of online CPUs (at least 1). */
unsigned zc_os_cpu_count(void);
/* Look up an environment variable without calling malloc (works before libc is fully started). */
const char *zc_os_getenv(const char *name);
/* Fill buf with random bytes from the kernel, or from the clock and address-space layout if that fails. */
void zc_os_entropy(void *buf, size_t len);
/* Current and peak resident set size of the process in bytes (0 if unknown). */
uint64_t zc_os_rss(void);
uint64_t zc_os_peak_rss(void);
/* Write len bytes to fd, retrying on short writes and EINTR; no buffering, no malloc. */
void zc_os_write(int fd, const char *buf, size_t len);

/* Thread-exit hook: fn(arg) runs when a thread that called zc_os_thread_exit_register exits (arg nonzero). */
bool zc_os_thread_exit_init(void (*fn)(void *));
void zc_os_thread_exit_register(void *arg);

/* fork hooks: prepare runs in the parent before fork, parent/child after it. */
void zc_os_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void));

/* Start a detached background thread running fn(arg); false if it could not be started. */
bool zc_os_thread_start(void *(*fn)(void *), void *arg);

/* ---- locks ----
 * A mutex that may be used before main and across fork (the child reinitialises it with zc_lock_init). */
typedef struct zc_lock_s {
  int state; /* 0 free, 1 locked, 2 locked with waiters; only os_*.c touches it */
} zc_lock_t;
#define ZC_LOCK_INIT {0}
void zc_lock_init(zc_lock_t *l);
void zc_lock(zc_lock_t *l);
void zc_unlock(zc_lock_t *l);
bool zc_trylock(zc_lock_t *l);

/* ---- added for the large regions (layer 6): growing and moving mappings, a coarse clock ----
 * Grow the anonymous private mapping [p, p+old_size) to new_size bytes without moving it (both page
 * multiples). False, with nothing changed, if the address range after it is not free. Counts as a mapping
 * for zc_os_fail_after. */
bool zc_os_extend(void *p, size_t old_size, size_t new_size);
/* Move the anonymous private mapping [p, p+old_size) to a new mapping of new_size bytes aligned to align,
 * carrying its pages over without copying them (Linux mremap). Returns the new address (p is gone), or NULL
 * with errno = ENOMEM and nothing changed. Counts as a mapping for zc_os_fail_after. */
void *zc_os_move(void *p, size_t old_size, size_t new_size, size_t align);
/* The monotonic clock at the kernel tick's resolution (a few ms; CLOCK_MONOTONIC_COARSE), several times
 * cheaper than zc_os_clock_ns: for ages and delays. Never ahead of zc_os_clock_ns. */
uint64_t zc_os_clock_coarse_ns(void);

/* ---- inter-process (the zero-copy channel, layer 9) ----
 * Declared in the section below by the channel; implemented at the end of os_linux.c. */

#endif /* ZC_OS_H */
