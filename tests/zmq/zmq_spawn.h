/* Child processes of the ZeroMQ tests: started by fork + exec of this same program, so that no child ever
 * runs code of the parent's image after a fork from a process with libzmq's threads.
 *
 * Why: fork copies the forking thread only. A lock another thread held at that moment (libzmq's I/O
 * thread inside ASan's or libc's malloc, say) stays held for ever in the child, and the child's own
 * threads block on it at their start (seen under ASan: tests/zmq/CMakeLists.txt). Between this helper's
 * fork and its exec the child only calls close, prctl, getppid and execv (async-signal-safe, no lock);
 * the exec'd program is a fresh process that inherits no lock.
 *
 *   ZSPAWN(fn, &args, field, keep1, keep2)  args: a struct whose one pointer is the string `field` (may be
 *                                           NULL); the child gets a copy of the struct and of the string
 *   ZSPAWN_POD(fn, &args, keep1, keep2)     a struct without pointers (numbers, fds)
 *   ZSPAWN_STR(fn, str, keep1, keep2)       fn gets a copy of the string
 *   zspawn_inherit(&var, sizeof var)        a global the children see with the value it has in the parent
 *                                           at the spawn (call it in main before zspawn_main, in the same
 *                                           order for every variable: both processes run that code)
 *   zspawn_main(argc, argv)                 the first call in main: in a spawned child, runs fn and exits
 * The child runs fn(copy) with every descriptor above 2 closed but keep1 and keep2 (-1: none; they must not
 * be close-on-exec, as pipe() makes them), is killed when the parent dies, has an alarm of child_alarm_s()
 * (zc_child.h), and exits with fn's return value (reap() in zc_child.h gives it). fn is found again in
 * the exec'd program by its distance from a function of this header (the same binary).
 *
 * The guard: a fork handler (pthread_atfork, installed when the program loads) aborts the process with a
 * message naming the threads if a fork other than ZSPAWN's happens while the process runs more threads
 * than it had when it was loaded: libzmq's I/O threads once a context has a socket, or any other. A bare
 * fork (spawn(), spawn_closefds(), run_child() of zc_child.h, fork()) after a context cannot come back.
 * Includes: libc, POSIX and Linux headers and tests/common only. Header-only; one test file per program.
 */
#ifndef ZC_ZMQ_SPAWN_H
#define ZC_ZMQ_SPAWN_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "zc_child.h"
#include "zc_proc.h"

#include <dirent.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define ZSPAWN_FLAG "--zspawn-child"
#define ZSPAWN_MAX_VARS 8

static struct {
  void *p;
  size_t n;
} zspawn_vars_[ZSPAWN_MAX_VARS];
static int zspawn_nvars_;
static int zspawn_threads0_ = -1;  /* threads when the program was loaded */
static __thread int zspawn_execing_; /* this thread is in ZSPAWN's fork: its child only execs */
static const char *zspawn_argv0_ = "zspawn-child";

/* The reference point for the children's functions: same binary, same distance. */
static int zspawn_anchor_(void *arg) { return arg != NULL; }

static void zspawn_hex_(char *out, const void *p, size_t n) {
  static const char d[] = "0123456789abcdef";
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = d[b[i] >> 4];
    out[2 * i + 1] = d[b[i] & 15];
  }
  out[2 * n] = 0;
}

static int zspawn_nibble_(char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Bytes of the hex string s into out (exactly n of them); -1 if s is not that. */
static int zspawn_unhex_(void *out, const char *s, size_t n) {
  unsigned char *b = out;
  if (strlen(s) != 2 * n) return -1;
  for (size_t i = 0; i < n; i++) {
    int hi = zspawn_nibble_(s[2 * i]), lo = zspawn_nibble_(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return -1;
    b[i] = (unsigned char)(hi << 4 | lo);
  }
  return 0;
}

/* The fork handler: a bare fork with more threads than at load time. */
static void zspawn_guard_(void) {
  if (zspawn_execing_ || zspawn_threads0_ < 0) return;
  int now = zc_threads_now();
  if (now <= zspawn_threads0_) return;
  fprintf(stderr,
          "zspawn guard: a bare fork (not ZSPAWN's fork + exec) while this process runs %d threads (%d when "
          "it was loaded); a child could inherit a lock one of them held (libzmq's I/O threads inside "
          "malloc). Start the child with ZSPAWN (tests/zmq/zmq_spawn.h), or fork before any ZeroMQ "
          "endpoint exists. Threads:",
          now, zspawn_threads0_);
  DIR *d = opendir("/proc/self/task");
  struct dirent *e;
  while (d != NULL && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char path[300], comm[32] = "?";
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    FILE *f = fopen(path, "r");
    if (f != NULL) {
      if (fgets(comm, sizeof comm, f) != NULL) comm[strcspn(comm, "\n")] = 0;
      fclose(f);
    }
    fprintf(stderr, " %s", comm);
  }
  if (d != NULL) closedir(d);
  fprintf(stderr, "\n");
  abort();
}

__attribute__((constructor)) static void zspawn_init_(void) {
  zspawn_threads0_ = zc_threads_now();
  pthread_atfork(zspawn_guard_, NULL, NULL);
}

static inline void zspawn_inherit(void *var, size_t size) {
  if (zspawn_nvars_ == ZSPAWN_MAX_VARS) {
    fprintf(stderr, "zspawn_inherit: more than %d variables\n", ZSPAWN_MAX_VARS);
    exit(2);
  }
  zspawn_vars_[zspawn_nvars_].p = var;
  zspawn_vars_[zspawn_nvars_].n = size;
  zspawn_nvars_++;
}

static inline size_t zspawn_vars_size_(void) {
  size_t n = 0;
  for (int i = 0; i < zspawn_nvars_; i++) n += zspawn_vars_[i].n;
  return n;
}

static pid_t zspawn_(int (*fn)(void *), const char *name, const void *arg, size_t size, long str_off, int keep1,
                     int keep2) {
  const char *str = NULL;
  if (str_off >= 0) memcpy(&str, (const char *)arg + str_off, sizeof str);
  size_t sl = str != NULL ? strlen(str) + 1 : 0, vn = zspawn_vars_size_();
  unsigned char *blob = malloc(size + sl + 1), *vars = calloc(1, vn + 1);
  char *ahex = malloc(2 * (size + sl) + 1), *vhex = malloc(2 * vn + 1);
  REQUIREF(blob != NULL && vars != NULL && ahex != NULL && vhex != NULL, "zspawn: out of memory");
  memcpy(blob, arg, size);
  if (sl) memcpy(blob + size, str, sl);
  zspawn_hex_(ahex, blob, size + sl);
  size_t at = 0;
  for (int i = 0; i < zspawn_nvars_; i++) {
    memcpy(vars + at, zspawn_vars_[i].p, zspawn_vars_[i].n);
    at += zspawn_vars_[i].n;
  }
  zspawn_hex_(vhex, vars, vn);
  char off[32], sz[32], so[32];
  snprintf(off, sizeof off, "%ld", (long)((intptr_t)fn - (intptr_t)zspawn_anchor_));
  snprintf(sz, sizeof sz, "%zu", size);
  snprintf(so, sizeof so, "%ld", str != NULL ? str_off : -1L);
  char *argv[] = {(char *)zspawn_argv0_, ZSPAWN_FLAG, (char *)name, off, sz, so, ahex, vhex, NULL};
  pid_t parent = getpid();
  fflush(NULL);
  zspawn_execing_ = 1;
  pid_t p = fork();
  if (p == 0) { /* only async-signal-safe calls until the exec */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126); /* the parent died before the prctl */
    for (int fd = 3; fd < 1024; fd++)
      if (fd != keep1 && fd != keep2) close(fd);
    execv("/proc/self/exe", argv);
    static const char msg[] = "zspawn: exec of /proc/self/exe failed\n";
    if (write(2, msg, sizeof msg - 1) < 0) {
    }
    _exit(127);
  }
  zspawn_execing_ = 0;
  if (p < 0) {
    perror("fork");
    exit(2);
  }
  free(blob);
  free(vars);
  free(ahex);
  free(vhex);
  return p;
}

#define ZSPAWN(fn, argp, field, keep1, keep2)                                                               \
  zspawn_(fn, #fn, (argp), sizeof *(argp), (long)offsetof(__typeof__(*(argp)), field), keep1, keep2)
#define ZSPAWN_POD(fn, argp, keep1, keep2) zspawn_(fn, #fn, (argp), sizeof *(argp), -1L, keep1, keep2)
#define ZSPAWN_STR(fn, str, keep1, keep2) zspawn_(fn, #fn, (str), strlen(str) + 1, -1L, keep1, keep2)

/* In a spawned child (argv[1] is ZSPAWN_FLAG): rebuild the arguments and the inherited globals, run fn,
 * exit with its value. Otherwise, return. */
static inline void zspawn_main(int argc, char **argv) {
  zspawn_argv0_ = argv[0];
  if (argc < 2 || strcmp(argv[1], ZSPAWN_FLAG) != 0) return;
  if (argc != 8) {
    fprintf(stderr, "zspawn child: %d arguments, expected 8\n", argc);
    _exit(2);
  }
  long off = strtol(argv[3], NULL, 10), str_off = strtol(argv[5], NULL, 10);
  size_t size = strtoul(argv[4], NULL, 10), total = strlen(argv[6]) / 2;
  unsigned char *buf = malloc(total + 1);
  if (buf == NULL || total < size || zspawn_unhex_(buf, argv[6], total) != 0) {
    fprintf(stderr, "zspawn child %s: bad arguments\n", argv[2]);
    _exit(2);
  }
  if (str_off >= 0) { /* the string was copied after the struct: point the field at the copy */
    char *s = (char *)buf + size;
    memcpy(buf + str_off, &s, sizeof s);
  }
  size_t vn = zspawn_vars_size_(), at = 0;
  unsigned char *vars = malloc(vn + 1);
  if (vars == NULL || zspawn_unhex_(vars, argv[7], vn) != 0) {
    fprintf(stderr, "zspawn child %s: the inherited variables do not match\n", argv[2]);
    _exit(2);
  }
  for (int i = 0; i < zspawn_nvars_; i++) {
    memcpy(zspawn_vars_[i].p, vars + at, zspawn_vars_[i].n);
    at += zspawn_vars_[i].n;
  }
  int (*fn)(void *) = (int (*)(void *))((intptr_t)zspawn_anchor_ + off);
  alarm(child_alarm_s());
  check_failures = 0;
  int rc = fn(buf);
  fflush(NULL);
  _exit(rc);
}

#endif /* ZC_ZMQ_SPAWN_H */
