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

/* Every mapping zc_os_alloc_*, zc_os_extend and zc_os_move hand out lies below this address (the 48-bit
 * user address space of x86-64 4-level paging and of arm64 48-bit VA); a kernel that places a mapping higher
 * (5-level paging, 52-bit VA, which Linux does only when asked with a hint above 2^47) has it unmapped and
 * the call fails with ENOMEM. The segment map (segmap.h) relies on it. */
#define ZC_OS_ADDRESS_LIMIT ((uintptr_t)1 << 48)

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
 * pressure, cheaper). Only the whole OS pages inside the range are purged (p rounded up, p+size rounded
 * down to zc_os_page_size(): with 16 or 64 KiB pages a range that starts 16 KiB into a page loses its
 * head, and one shorter than a page is left alone). Returns the bytes given back: the length of those
 * whole pages, or 0 if there were none or the OS refused. */
size_t zc_os_purge(void *p, size_t size, int mode);

/* The whole pages of size page (a power of two) inside [p, p+size): *first is p rounded up to the page,
 * the result the length from there to p+size rounded down (0 if no whole page fits). Pure arithmetic,
 * so that tests can check it for 16 and 64 KiB pages on a 4 KiB machine. */
static inline size_t zc_os_page_inward(uintptr_t p, size_t size, size_t page, uintptr_t *first) {
  uintptr_t lo = (p + page - 1) & ~(uintptr_t)(page - 1);
  uintptr_t hi = (p + size) & ~(uintptr_t)(page - 1);
  *first = lo;
  return hi > lo ? (size_t)(hi - lo) : 0;
}

/* Ask for transparent huge pages on [p, p+size) (a hint; false if not supported). */
bool zc_os_huge_pages(void *p, size_t size);

/* ---- fault injection (tests) ----
 * After n more successful mappings, every zc_os_alloc_* fails (NULL, ENOMEM) until reset with n < 0.
 * The default (n < 0) never injects. */
void zc_os_fail_after(long n);
/* While on, zc_os_purge gives nothing back and returns 0, as if the OS refused. */
void zc_os_fail_purge(bool on);
/* Pretend the OS page size is page (a power of two, a multiple of the real one; 0: the real one again):
 * zc_os_page_size returns it and purges round to it, so a 4 KiB machine runs the arithmetic of a 16 or
 * 64 KiB kernel (arm64). Call before the allocator maps anything. */
void zc_os_set_page_size(size_t page);
/* System calls (mmap, munmap) zc_os_alloc_* and zc_os_move have made to map aligned memory so far. */
uint64_t zc_os_map_calls(void);

/* ---- threads, time, process ---- */

/* A nonzero id unique among live threads of the process. */
uintptr_t zc_os_thread_id(void);
/* The kernel's id of the calling thread (what ps -L, top -H and /proc/<pid>/task show), for stats. */
uint64_t zc_os_tid(void);
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
  int state; /* 0 free, else locked; bits: 2 waiters may sleep, 4 held for fork; only os_*.c touches it */
} zc_lock_t;
#define ZC_LOCK_INIT {0}
void zc_lock_init(zc_lock_t *l);
void zc_lock(zc_lock_t *l);
void zc_unlock(zc_lock_t *l);
bool zc_trylock(zc_lock_t *l);

/* fork: a prepare handler takes its locks with zc_lock_for_fork, then calls zc_os_fork_hold(true); the parent
 * handler calls zc_os_fork_hold(false) and gives them back with zc_unlock_for_fork (the child: zc_lock_init).
 * Meanwhile the forking thread's own zc_lock, zc_trylock and zc_unlock of a lock so held succeed at once and
 * change nothing: glibc runs the other libraries' fork handlers between zcmem's prepare and its parent/child
 * handlers when they were registered before zcmem's, and those may malloc. Other threads wait as usual. */
void zc_lock_for_fork(zc_lock_t *l);
void zc_unlock_for_fork(zc_lock_t *l);
void zc_os_fork_hold(bool on);

/* ---- added for the large regions (layer 6): growing and moving mappings, a coarse clock ----
 * Grow the anonymous private mapping [p, p+old_size) to new_size bytes without moving it (both page
 * multiples). False, with nothing changed, if the address range after it is not free. Counts as a mapping
 * for zc_os_fail_after. */
bool zc_os_extend(void *p, size_t old_size, size_t new_size);
/* Move the anonymous private mapping [p, p+old_size) to a new mapping of new_size bytes aligned to align,
 * carrying its pages over without copying them (Linux mremap). Returns the new address (p is gone), or NULL
 * with errno = ENOMEM and nothing changed. Counts as a mapping for zc_os_fail_after. */
void *zc_os_move(void *p, size_t old_size, size_t new_size, size_t align);
/* Move the pages of [p, p+size) (part or all of an anonymous private mapping) onto [dst, dst+size), which
 * must lie inside an anonymous private mapping the caller owns (its pages there are replaced), without
 * copying them (Linux mremap with MREMAP_FIXED). Returns 1: moved, [p, p+size) is unmapped. 0: not moved,
 * [p, p+size) unchanged and [dst, dst+size) holds fresh zero pages (a kernel may unmap the target before it
 * fails, e.g. on a range of several mappings before Linux 6.17: it is mapped again). -1: not moved and
 * [dst, dst+size) could not be mapped again (it is a hole). Counts as a mapping for zc_os_fail_after. */
int zc_os_move_to(void *p, size_t size, void *dst);
/* The kernel moves a range made of several mappings as one (mremap of the same size with MREMAP_FIXED:
 * Linux 6.17 and later). Probed once (a few system calls on two pages). */
bool zc_os_can_move_mappings(void);
/* Tests: answer v (1 yes, 0 no) from now on instead of the probe's answer; v < 0: probe again. */
void zc_os_set_can_move_mappings(int v);
/* The monotonic clock at the kernel tick's resolution (a few ms; CLOCK_MONOTONIC_COARSE), several times
 * cheaper than zc_os_clock_ns: for ages and delays. Never ahead of zc_os_clock_ns. */
uint64_t zc_os_clock_coarse_ns(void);

/* ---- inter-process (the zero-copy channel, layer 9) ----
 * Declared in the section below by the channel; implemented at the end of os_linux.c.
 * Every function returns -1 (or NULL) with errno set on failure and never prints; fds are close-on-exec.
 * The sockets are AF_UNIX SOCK_SEQPACKET: one send is one record, so records never merge or split. */

/* Create an anonymous memory file (memfd, never a name in /dev/shm) of size bytes, zero-filled, sealed so
 * that neither side can shrink or grow it (F_SEAL_SHRINK|F_SEAL_GROW). The seal set is still open: finish
 * it with zc_os_shm_seal (below) once the creator has mapped it. Returns the fd. */
int zc_os_shm_create(const char *name, size_t size);
/* Check that fd is a memory file of exactly size bytes whose size is sealed (shrink and grow). 0 if so,
 * else -1 with errno EPROTO (not sealed, wrong size, not a memfd) or the fstat/fcntl error. */
int zc_os_shm_check(int fd, size_t size);
/* Map size bytes of fd shared between processes: read-write, or read-only (PROT_READ) if !writable.
 * NULL and errno on failure. Unmap with zc_os_free. */
void *zc_os_shm_map(int fd, size_t size, bool writable);
/* Close fd (ignores EINTR; a negative fd is ignored). */
void zc_os_close(int fd);

/* Listen on a UNIX socket path. A stale socket file there (nobody listening) is replaced; a live one is
 * left alone and the call fails with EADDRINUSE. Returns the listening fd. */
int zc_os_unix_listen(const char *path);
/* Accept one connection on a listening fd, waiting at most timeout_ms (-1: forever). ETIMEDOUT. */
int zc_os_unix_accept(int lfd, int timeout_ms);
/* Connect to a UNIX socket path. Returns the connected fd. */
int zc_os_unix_connect(const char *path);
/* Create a connected pair of sockets (sv[0], sv[1]). 0 or -1. */
int zc_os_unix_pair(int sv[2]);
/* 0 if fd is a connected AF_UNIX SOCK_SEQPACKET socket, else -1 with errno (EPROTOTYPE: wrong kind). */
int zc_os_unix_check(int fd);

/* Send one record of len bytes with at most one fd attached (pass_fd < 0: none). Blocks if block, else
 * fails with EAGAIN when the socket buffer is full. EPIPE (no SIGPIPE) if the peer is gone. */
int zc_os_msg_send(int sock, const void *buf, size_t len, int pass_fd, bool block);
/* Receive one record into buf (at most cap bytes) without blocking. Returns its length, 0 at end of file
 * (peer closed or died), -1 with EAGAIN if nothing is queued. An attached fd is stored in *fd_out (-1 if
 * none); extra fds are closed. A record whose fds could not be installed (MSG_CTRUNC: RLIMIT_NOFILE
 * reached) fails with EMFILE; a record longer than cap, or with more fds than one record may carry (8),
 * fails with EPROTO: the peer broke the protocol. Every fd received with a failed or empty record is
 * closed. */
long zc_os_msg_recv(int sock, void *buf, size_t cap, int *fd_out);
/* Wait until fd is readable or hung up, at most timeout_ms (-1: forever, 0: just look). 1 readable, 0
 * timed out, -1 error. EINTR counts as a timeout. */
int zc_os_fd_wait(int fd, int timeout_ms);
/* Shut the socket down both ways: the peer sees end of file at once, even while fd stays open. */
void zc_os_unix_shutdown(int fd);

/* Futexes on words in memory shared between processes (no FUTEX_PRIVATE_FLAG). wait sleeps while
 * *addr == expect, at most timeout_ns (< 0: forever); returns at once if *addr != expect. Returns 0 when
 * woken or the word changed, -1 with ETIMEDOUT or EINTR. wake wakes up to n waiters. */
int zc_os_futex_wait_shared(uint32_t *addr, uint32_t expect, int64_t timeout_ns);
void zc_os_futex_wake_shared(uint32_t *addr, int n);

/* ---- added for the channel's trust rules (layer 9): seals, fork, peer credentials ---- */

/* Finish the seal set of a memory file from zc_os_shm_create: F_SEAL_FUTURE_WRITE if no_writes (no new
 * writable mapping and no write() from anyone, mappings that exist stay writable), then F_SEAL_SEAL. -1
 * with errno EINVAL if the kernel lacks F_SEAL_FUTURE_WRITE (Linux < 5.1). */
int zc_os_shm_seal(int fd, bool no_writes);
/* The seals of fd as bits: 1 shrink, 2 grow, 4 future write, 8 seal (the seal set is closed). -1 with
 * errno EPROTO if fd is not a memory file. */
enum { ZC_SEAL_SHRINK = 1, ZC_SEAL_GROW = 2, ZC_SEAL_FUTURE_WRITE = 4, ZC_SEAL_SEAL = 8 };
int zc_os_shm_seals(int fd);
/* Keep [p, p+size) out of fork()ed children (MADV_DONTFORK). False if the OS refused. */
bool zc_os_no_fork(void *p, size_t size);
/* The credentials of the process at the other end of a connected UNIX socket, as the kernel recorded
 * them at connect (or socketpair) time (SO_PEERCRED). 0 or -1 with errno. */
int zc_os_unix_peer(int fd, int32_t *pid, uint32_t *uid, uint32_t *gid);
/* The effective uid of this process. */
uint32_t zc_os_euid(void);
/* The id of this process (a system call: for cold paths). */
int32_t zc_os_pid(void);
/* Bytes this end sent on a UNIX socket that the peer has not read yet (SIOCOUTQ), -1 on error. */
long zc_os_unix_unread(int fd);

/* ---- added for the channel services (layer 10): abstract socket names, epoll ----
 * Listen on / connect to a name in Linux's abstract UNIX socket namespace (no file: the kernel frees the
 * name when the last fd bound to it closes, so a killed server leaves nothing stale). name is given without
 * the leading NUL byte; at most 107 bytes (ENAMETOOLONG). listen: EADDRINUSE if someone holds the name. */
int zc_os_unix_listen_abstract(const char *name);
int zc_os_unix_connect_abstract(const char *name);
/* An epoll instance (close-on-exec); add/remove fd with a 64-bit tag returned by wait (POLLIN and hang-up,
 * level-triggered). wait: at most max tags, at most timeout_ms (-1: forever); the count, 0 on timeout or
 * EINTR, -1 on error. */
int zc_os_epoll_create(void);
int zc_os_epoll_add(int ep, int fd, uint64_t tag);
int zc_os_epoll_del(int ep, int fd);
int zc_os_epoll_wait(int ep, uint64_t *tags, int max, int timeout_ms);

#endif /* ZC_OS_H */
