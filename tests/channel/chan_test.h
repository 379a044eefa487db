/* Helpers shared by the channel tests: a CHECK macro that names the failed condition, fork helpers, and a
 * seeded payload so every message can be checked byte for byte by the other process. */
#ifndef CHAN_TEST_H
#define CHAN_TEST_H
#define _GNU_SOURCE
#include "zcmem_channel.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(cond, ...)                                                                   \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      fprintf(stderr, "FAIL [%d] %s:%d: %s: ", (int)getpid(), __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                                        \
      fputc('\n', stderr);                                                                 \
      exit(1);                                                                             \
    }                                                                                      \
  } while (0)

static inline uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

/* Message i's size: 1 B .. 16 KiB, mostly small, a few large. */
static inline size_t msg_size(uint64_t i) {
  uint64_t r = mix64(i + 0x9e37);
  switch (r & 7) {
    case 0: return 1 + (r >> 8) % 16384;
    case 1: case 2: return 1024 + (r >> 8) % 3072;
    default: return 16 + (r >> 8) % 1000;
  }
}

static inline void fill(void *p, size_t n, uint64_t seed) {
  unsigned char *b = p;
  uint64_t x = mix64(seed) | 1;
  for (size_t i = 0; i < n; i++) {
    if ((i & 7) == 0) x = x * 6364136223846793005ull + 1442695040888963407ull;
    b[i] = (unsigned char)(x >> (8 * (i & 7)));
  }
}

/* Index of the first wrong byte, or -1 if the payload is what fill wrote. */
static inline long verify(const void *p, size_t n, uint64_t seed) {
  const unsigned char *b = p;
  uint64_t x = mix64(seed) | 1;
  for (size_t i = 0; i < n; i++) {
    if ((i & 7) == 0) x = x * 6364136223846793005ull + 1442695040888963407ull;
    if (b[i] != (unsigned char)(x >> (8 * (i & 7)))) return (long)i;
  }
  return -1;
}

/* Run fn(arg) in a child process; its return value is the exit code. */
static inline pid_t spawn(int (*fn)(void *), void *arg) {
  fflush(NULL);
  pid_t p = fork();
  if (p < 0) {
    perror("fork");
    exit(1);
  }
  if (p == 0) {
    alarm(60); /* a hung child fails the test instead of hanging ctest */
    int r = fn(arg);
    fflush(NULL); /* what the child printed */
    _exit(r);
  }
  return p;
}

/* Exit code of child p, or 128 + signal. */
static inline int reap(pid_t p) {
  int st;
  while (waitpid(p, &st, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* A connected SOCK_SEQPACKET pair: sv[0] for the parent, sv[1] for the child. */
static inline void seqpacket_pair(int sv[2]) {
  CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0, "socketpair: %s", strerror(errno));
}

/* One test per name: run the test named by argv[1] (every test if none is given). An unknown name fails
 * (exit 2), so a case renamed on one side of CMake cannot pass silently. */
typedef struct chan_case_s {
  const char *name;
  int (*fn)(void);
} chan_case_t;

static inline int run_cases(int argc, char **argv, const chan_case_t *cases, size_t n) {
  int found = 0;
  for (size_t i = 0; i < n; i++) {
    if (argc > 1 && strcmp(argv[1], cases[i].name) != 0) continue;
    found = 1;
    int r = cases[i].fn();
    printf("%s: %s\n", cases[i].name, r == 0 ? "ok" : "FAILED");
    if (r != 0) return 1;
  }
  if (!found) {
    fprintf(stderr, "%s: no test named \"%s\"\n", argv[0], argc > 1 ? argv[1] : "");
    return 2;
  }
  return 0;
}

/* Capture what the library prints on stderr (zc_error) while a call runs: begin, the call, end. */
typedef struct stderr_capture_s {
  int saved, fd;
} stderr_capture_t;

static inline stderr_capture_t capture_stderr(void) {
  char path[] = "/tmp/zc-chan-stderr-XXXXXX";
  stderr_capture_t c;
  fflush(stderr);
  c.fd = mkstemp(path);
  CHECK(c.fd >= 0, "mkstemp: %s", strerror(errno));
  unlink(path);
  c.saved = dup(2);
  dup2(c.fd, 2);
  return c;
}

/* Restores stderr, copies what was written into buf (NUL-terminated) and echoes it. */
static inline void capture_end(stderr_capture_t c, char *buf, size_t cap) {
  fflush(stderr);
  dup2(c.saved, 2);
  close(c.saved);
  ssize_t n = pread(c.fd, buf, cap - 1, 0);
  buf[n > 0 ? n : 0] = 0;
  close(c.fd);
  fputs(buf, stderr);
}

#endif
