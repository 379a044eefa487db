/* Helpers for the ZeroMQ transport tests: CHECK, child processes with a deadline, a seeded payload that the
 * other process checks byte for byte, and a pipe to pass an endpoint string to or from a child. */
#ifndef ZMQ_TEST_H
#define ZMQ_TEST_H
#define _GNU_SOURCE
#include "zcmem.h"
#include "zcmem_zmq.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
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

static inline int quick(void) { return getenv("ZC_TEST_QUICK") != NULL; }

static inline uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

/* Message i's size: 1 B .. 4 MiB, mostly small (below libzmq's 8 KiB batch), some large, a few huge. */
static inline size_t msg_size(uint64_t i) {
  uint64_t r = mix64(i * 7 + 3);
  switch (r & 15) {
    case 0: return 8192 + (r >> 8) % (256 * 1024);
    case 1: return (r >> 8) % 64 == 0 ? ((size_t)1 << 20) + (r >> 16) % (3u << 20) : 33 + (r >> 8) % 8192;
    case 2: case 3: return 1 + (r >> 8) % 40; /* around libzmq's 33-byte in-message limit */
    default: return 1 + (r >> 8) % 2000;
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

/* Index of the first wrong byte, or -1. */
static inline long verify(const void *p, size_t n, uint64_t seed) {
  const unsigned char *b = p;
  uint64_t x = mix64(seed) | 1;
  for (size_t i = 0; i < n; i++) {
    if ((i & 7) == 0) x = x * 6364136223846793005ull + 1442695040888963407ull;
    if (b[i] != (unsigned char)(x >> (8 * (i & 7)))) return (long)i;
  }
  return -1;
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

/* Run fn(arg) in a child process (its return value is the exit code). The child closes every inherited fd
 * but keep and keep2 (the parent's ZeroMQ sockets must not live on in it), dies with the parent, and dies
 * after 60 s if it hangs. */
static inline pid_t spawn2(int (*fn)(void *), void *arg, int keep, int keep2) {
  fflush(NULL);
  pid_t p = fork();
  CHECK(p >= 0, "fork: %s", strerror(errno));
  if (p == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed parent takes its children along */
    for (int fd = 3; fd < 1024; fd++)
      if (fd != keep && fd != keep2) close(fd);
    alarm(60);
    _exit(fn(arg));
  }
  return p;
}

static inline pid_t spawn(int (*fn)(void *), void *arg, int keep) { return spawn2(fn, arg, keep, -1); }

/* Exit code of child p, or 128 + signal. */
static inline int reap(pid_t p) {
  int st;
  while (waitpid(p, &st, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* An endpoint string through a pipe (a child that bound port * tells the parent which port). */
static inline void send_str(int fd, const char *s) {
  size_t n = strlen(s) + 1;
  CHECK(write(fd, s, n) == (ssize_t)n, "write: %s", strerror(errno));
}

static inline void recv_str(int fd, char *buf, size_t cap) {
  size_t n = 0;
  while (n < cap) {
    ssize_t r = read(fd, buf + n, 1);
    CHECK(r == 1, "read from the child: %s", r == 0 ? "end of file" : strerror(errno));
    if (buf[n++] == 0) return;
  }
  CHECK(0, "endpoint string too long");
}

#endif
