/* Test helpers about the process, for tests that fork or run inside another library's constructor: no
 * allocation beyond what is named (zc_threads_now reads /proc without malloc; zc_use_malloc mallocs on
 * purpose). Header-only, so a test's own shared library can use it without linking anything. */
#ifndef ZC_PROC_H
#define ZC_PROC_H

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

/* The "Threads:" line of /proc/self/status, read without malloc; -1 if unreadable. */
static inline int zc_threads_now(void) {
  char buf[4096];
  int fd = open("/proc/self/status", O_RDONLY);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  const char *t = strstr(buf, "\nThreads:");
  return t != NULL ? atoi(t + 9) : -1;
}

/* Small, medium and large blocks (24 B .. 9 MiB) through malloc, written and freed; 0 if each kept its
 * bytes, 1 otherwise (or if a malloc failed). */
static inline int zc_use_malloc(unsigned seed) {
  static const size_t sizes[] = {24, 200, 3000, 40000, 200000, (size_t)3 << 20, (size_t)9 << 20};
  enum { NS = sizeof sizes / sizeof sizes[0] };
  unsigned char *p[NS];
  for (unsigned i = 0; i < NS; i++) {
    p[i] = malloc(sizes[i]);
    if (p[i] == NULL) {
      while (i > 0) free(p[--i]);
      return 1;
    }
    for (size_t k = 0; k < sizes[i]; k += 4096) p[i][k] = (unsigned char)(seed + i + k);
    p[i][sizes[i] - 1] = (unsigned char)seed;
  }
  int bad = 0;
  for (unsigned i = 0; i < NS; i++) {
    for (size_t k = 0; k < sizes[i]; k += 4096) bad |= p[i][k] != (unsigned char)(seed + i + k);
    bad |= p[i][sizes[i] - 1] != (unsigned char)seed;
    free(p[i]);
  }
  return bad;
}

/* 1 if a thread of this process other than the n in skip is blocked in the futex system call (the purger
 * asleep as idle, when the test's own threads are skipped): /proc/self/task/T/syscall starts with the number
 * of the call a blocked thread is in. Uses opendir and stdio (they malloc). */
static inline int zc_thread_in_futex(const pid_t *skip, int n) {
  DIR *d = opendir("/proc/self/task");
  if (d == NULL) return 0;
  int found = 0;
  struct dirent *e;
  while (!found && (e = readdir(d)) != NULL) {
    pid_t t = (pid_t)atoi(e->d_name);
    int skipped = t <= 0;
    for (int i = 0; i < n && !skipped; i++) skipped = t == skip[i];
    if (skipped) continue;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)t);
    FILE *f = fopen(path, "r");
    if (f == NULL) continue;
    long nr = -1;
    if (fscanf(f, "%ld", &nr) == 1 && nr == SYS_futex) found = 1;
    fclose(f);
  }
  closedir(d);
  return found;
}

#endif
