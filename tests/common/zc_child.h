/* Child processes for the tests: run a function (fork) or a program (fork + exec) with a deadline, its
 * stdout and stderr captured, and report how it ended.
 *
 *   run_child(fn, arg, timeout_s)       fork; the child runs fn(arg) and exits with its return value
 *   run_exec(argv, env, timeout_s)      fork + execvp(argv); env: NULL-terminated "K=V" strings added
 *   spawn(fn, arg) / reap(pid)          a child left running; reap gives exit code or 128 + signal
 *   spawn_closefds(fn, arg, k1, k2)     the same, closing the inherited fds but k1, k2; dies with the parent
 *   capture_stderr() / capture_end()    this process's own stderr, captured around a call
 *   status_str(status, buf, cap)        "exit 3", "signal 6 (Aborted)", "killed at the deadline"
 *
 * Invariant: the parent never blocks past the deadline: on expiry it sends SIGKILL and marks the result
 * timed_out. Capture buffers are mmap'ed (not the allocator under test) and NUL-terminated; output past
 * CHILD_CAPTURE_MAX is read and dropped.
 * Includes: libc, POSIX and Linux headers only. Header-only.
 */
#ifndef ZC_TEST_CHILD_H
#define ZC_TEST_CHILD_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "zc_check.h"
#include "zc_clock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILD_CAPTURE_MAX ((size_t)1 << 20)

typedef struct {
  char *out, *err;        /* NUL-terminated captured stdout and stderr */
  size_t out_len, len;    /* len: of err */
  int status;             /* waitpid status */
  int timed_out;          /* 1 if killed at the deadline */
} child_result_t;

static inline char *child_buf_(void) {
  char *b = mmap(NULL, CHILD_CAPTURE_MAX, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (b == MAP_FAILED) {
    perror("mmap");
    exit(2);
  }
  b[0] = 0;
  return b;
}

/* Read both pipes to EOF (or the deadline), then wait for pid. */
static inline void child_collect_(pid_t pid, int fo, int fe, unsigned timeout_s, child_result_t *r) {
  uint64_t end = now_ms() + (timeout_s ? timeout_s : 3600) * 1000ull;
  struct pollfd pf[2] = {{fo, POLLIN, 0}, {fe, POLLIN, 0}};
  char *buf[2] = {r->out, r->err};
  size_t *len[2] = {&r->out_len, &r->len};
  int open_n = 2;
  while (open_n > 0) {
    uint64_t t = now_ms();
    if (t >= end) {
      kill(pid, SIGKILL);
      r->timed_out = 1;
      break;
    }
    int n = poll(pf, 2, (int)(end - t));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    for (int i = 0; i < 2; i++) {
      if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char sink[4096];
      size_t room = CHILD_CAPTURE_MAX - 1 - *len[i];
      ssize_t got = room ? read(pf[i].fd, buf[i] + *len[i], room) : read(pf[i].fd, sink, sizeof sink);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        close(pf[i].fd);
        pf[i].fd = -1;
        open_n--;
        continue;
      }
      if (room) *len[i] += (size_t)got;
    }
  }
  for (int i = 0; i < 2; i++) {
    if (pf[i].fd >= 0) close(pf[i].fd);
    buf[i][*len[i]] = 0;
  }
  while (waitpid(pid, &r->status, 0) < 0 && errno == EINTR) {
  }
}

static inline pid_t child_fork_(int po[2], int pe[2], child_result_t *r) {
  memset(r, 0, sizeof *r);
  r->out = child_buf_();
  r->err = child_buf_();
  if (pipe(po) != 0 || pipe(pe) != 0) {
    perror("pipe");
    exit(2);
  }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    exit(2);
  }
  if (pid == 0) {
    close(po[0]);
    close(pe[0]);
    dup2(po[1], 1);
    dup2(pe[1], 2);
    close(po[1]);
    close(pe[1]);
  } else {
    close(po[1]);
    close(pe[1]);
  }
  return pid;
}

/* Fork; the child runs fn(arg) (its failed checks are its own) and exits with fn's return value. */
static inline child_result_t run_child(int (*fn)(void *), void *arg, unsigned timeout_s) {
  child_result_t r;
  int po[2], pe[2];
  pid_t pid = child_fork_(po, pe, &r);
  if (pid == 0) {
    if (timeout_s) alarm(timeout_s + 1); /* also dies on its own if the parent is gone */
    check_failures = 0;
    int rc = fn(arg);
    fflush(stdout);
    fflush(stderr);
    _exit(rc);
  }
  child_collect_(pid, po[0], pe[0], timeout_s, &r);
  return r;
}

/* Fork and exec argv[0] (PATH searched) with the strings of env ("K=V", NULL-terminated, may be NULL)
 * added to the environment. Exit 127 if the exec fails. */
static inline child_result_t run_exec(char *const argv[], const char *const env[], unsigned timeout_s) {
  child_result_t r;
  int po[2], pe[2];
  pid_t pid = child_fork_(po, pe, &r);
  if (pid == 0) {
    for (int i = 0; env && env[i]; i++) putenv((char *)env[i]);
    execvp(argv[0], argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  child_collect_(pid, po[0], pe[0], timeout_s, &r);
  return r;
}

static inline void child_result_free(child_result_t *r) {
  if (r->err) munmap(r->err, CHILD_CAPTURE_MAX);
  if (r->out) munmap(r->out, CHILD_CAPTURE_MAX);
  r->err = r->out = NULL;
}

/* 1 if the child exited with status code. */
static inline int child_exited(const child_result_t *r, int code) {
  return !r->timed_out && WIFEXITED(r->status) && WEXITSTATUS(r->status) == code;
}

static inline const char *status_str(int status, char *buf, size_t cap) {
  if (WIFEXITED(status))
    snprintf(buf, cap, "exit %d", WEXITSTATUS(status));
  else if (WIFSIGNALED(status))
    snprintf(buf, cap, "signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
  else
    snprintf(buf, cap, "status 0x%x", status);
  return buf;
}
static inline const char *child_str(const child_result_t *r, char *buf, size_t cap) {
  if (r->timed_out) {
    snprintf(buf, cap, "killed at the deadline");
    return buf;
  }
  return status_str(r->status, buf, cap);
}

/* The spawned child's alarm: 60 s, or ZC_TEST_CHILD_S seconds (test.sh raises it for the sanitizer and
 * valgrind flavours, which run children 2-15x slower on a loaded machine; ctest's timeout still bounds the
 * whole test). */
static inline unsigned child_alarm_s(void) {
  const char *e = getenv("ZC_TEST_CHILD_S");
  long v = e != NULL ? strtol(e, NULL, 10) : 0;
  return v > 0 && v < 3600 ? (unsigned)v : 60;
}

/* A NUL-terminated string through a pipe, e.g. the endpoint a child bound to port * (tcp://...:*), which
 * the parent must learn before it connects. */
static inline void pipe_send_str(int fd, const char *s) {
  size_t n = strlen(s) + 1;
  REQUIREF(write(fd, s, n) == (ssize_t)n, "write: %s", strerror(errno));
}
static inline void pipe_recv_str(int fd, char *buf, size_t cap) {
  size_t n = 0;
  while (n < cap) {
    ssize_t r = read(fd, buf + n, 1);
    REQUIREF(r == 1, "read from the child: %s", r == 0 ? "end of file" : strerror(errno));
    if (buf[n++] == 0) return;
  }
  REQUIREF(0, "string from the child too long");
}

/* A child left running: fn(arg) with a 60 s alarm (child_alarm_s: a hung child fails the test instead of
 * hanging it); reap() gives its exit code, or 128 + signal. What the child printed is flushed before it
 * exits. */
static inline pid_t spawn_child_(int (*fn)(void *), void *arg, int close_fds, int keep1, int keep2) {
  fflush(NULL);
  pid_t p = fork();
  if (p < 0) {
    perror("fork");
    exit(2);
  }
  if (p == 0) {
    if (close_fds) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      for (int fd = 3; fd < 1024; fd++)
        if (fd != keep1 && fd != keep2) close(fd);
    }
    alarm(child_alarm_s());
    check_failures = 0;
    int rc = fn(arg);
    fflush(NULL);
    _exit(rc);
  }
  return p;
}
static inline pid_t spawn(int (*fn)(void *), void *arg) { return spawn_child_(fn, arg, 0, -1, -1); }
/* spawn() for a child that must not keep the parent's descriptors alive (a library's sockets): it closes
 * every inherited fd above 2 but keep1 and keep2 (-1: none), and is killed when the parent dies. */
static inline pid_t spawn_closefds(int (*fn)(void *), void *arg, int keep1, int keep2) {
  return spawn_child_(fn, arg, 1, keep1, keep2);
}
static inline int reap(pid_t p) {
  int st;
  while (waitpid(p, &st, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* This process's own stderr captured while a call runs (what a library reports there):
 *   stderr_capture_t c = capture_stderr(); call(); capture_end(c, buf, cap);
 * capture_end restores fd 2, copies what was written into buf (NUL-terminated, cut at cap - 1) and echoes
 * it to the real stderr. The capture is a memory file in append mode (threads writing at once lose nothing). */
typedef struct {
  int saved, fd;
} stderr_capture_t;

static inline stderr_capture_t capture_stderr(void) {
  stderr_capture_t c;
  fflush(stderr);
  c.fd = memfd_create("zc-test-stderr", MFD_CLOEXEC);
  REQUIREF(c.fd >= 0 && fcntl(c.fd, F_SETFL, O_APPEND) == 0, "memfd for stderr: %s", strerror(errno));
  c.saved = dup(2);
  REQUIREF(c.saved >= 0 && dup2(c.fd, 2) == 2, "dup stderr: %s", strerror(errno));
  return c;
}

static inline void capture_end(stderr_capture_t c, char *buf, size_t cap) {
  fflush(stderr);
  dup2(c.saved, 2);
  close(c.saved);
  ssize_t n = pread(c.fd, buf, cap - 1, 0);
  buf[n > 0 ? n : 0] = 0;
  close(c.fd);
  fputs(buf, stderr);
}

/* Number of lines of text that start with prefix. */
static inline int count_lines_with_prefix(const char *text, const char *prefix) {
  int n = 0;
  size_t pl = strlen(prefix);
  const char *line = text;
  while (line && *line) {
    if (strncmp(line, prefix, pl) == 0) n++;
    const char *nl = strchr(line, '\n');
    line = nl ? nl + 1 : NULL;
  }
  return n;
}

#endif /* ZC_TEST_CHILD_H */
