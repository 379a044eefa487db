/* spawn: run one benchmark process and report its own peak RSS. A helper of bench/run, not a benchmark.
 *
 *   spawn <fd> <preload> <program> [args...]
 *
 * Forks, sets LD_PRELOAD=<preload> in the child (unset if <preload> is empty), execs the program, waits
 * for it with wait4 and writes "maxrss_kib=<n> cpu_s=<user+system seconds> status=<wait status>
 * minflt=<minor faults of the whole process, start-up and exit included>\n" to file descriptor <fd>; then
 * exits with the child's exit status (128 + signal if it was killed).
 *
 * Why a helper: Linux carries a process's peak RSS across exec (the old image's high-water mark is
 * folded into the new one), so a benchmark forked straight from the Python runner would report at least
 * the runner's own ~15 MiB. Forked from this small program it starts from about 1 MiB.
 *
 * Invariant: the helper allocates nothing between fork and exec and never runs under the preload. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t child;

static void forward(int sig) {
  if (child > 0) kill(child, sig);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: spawn <fd> <preload> <program> [args...]\n");
    return 2;
  }
  int fd = atoi(argv[1]);
  const char *preload = argv[2];
  child = fork();
  if (child < 0) {
    perror("spawn: fork");
    return 2;
  }
  if (child == 0) {
    if (fd > 2) close(fd);
    if (preload[0] != '\0') setenv("LD_PRELOAD", preload, 1);
    else unsetenv("LD_PRELOAD");
    execv(argv[3], argv + 3);
    fprintf(stderr, "spawn: cannot run %s: %s\n", argv[3], strerror(errno));
    _exit(127);
  }
  /* The runner kills the helper on a timeout: pass that on to the benchmark. */
  signal(SIGTERM, forward);
  signal(SIGINT, forward);
  int status;
  struct rusage ru;
  while (wait4(child, &status, 0, &ru) < 0) {
    if (errno != EINTR) {
      perror("spawn: wait4");
      return 2;
    }
  }
  double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
  dprintf(fd, "maxrss_kib=%ld cpu_s=%.6f status=%d minflt=%ld\n", ru.ru_maxrss, cpu, status, ru.ru_minflt);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}
