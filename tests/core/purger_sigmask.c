/* Threads zcmem starts (the background purger) block every signal, so a signal sent to the process reaches
 * the program's own threads. A signal the main thread blocks was otherwise delivered to the purger: a
 * single-threaded program (bash under LD_PRELOAD) then had its SIGCHLD handler run on the purger while its
 * one thread waited in wait4 for a child already reaped, and hung.
 *
 * The test starts the purger (a large block and more than one segment of small ones), waits for the thread,
 * then checks (1) every thread but the main one has SIGCHLD, SIGINT, SIGTERM, SIGALRM, SIGUSR1, SIGUSR2 in
 * its blocked set (/proc/self/task/TID/status, SigBlk), and (2) with SIGUSR2 blocked in the main thread,
 * kill(getpid(), SIGUSR2) stays pending until the main thread unblocks it, and its handler runs there.
 * Links zcmem_prefixed. Fails without the mask in zc_os_thread_start (src/os_linux.c).
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"

#include <dirent.h>
#include <signal.h>
#include <sys/syscall.h>

static volatile sig_atomic_t ran_on;

static void on_usr2(int sig) {
  (void)sig;
  ran_on = (sig_atomic_t)syscall(SYS_gettid);
}

static int other_threads(void) {
  DIR *d = opendir("/proc/self/task");
  int n = 0;
  struct dirent *e;
  while (d != NULL && (e = readdir(d)) != NULL)
    if (e->d_name[0] != '.' && atoi(e->d_name) != getpid()) n++;
  if (d != NULL) closedir(d);
  return n;
}

/* The blocked set of thread tid, from its status file; 0 if unreadable. */
static unsigned long long sigblk(int tid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/self/task/%d/status", tid);
  FILE *f = fopen(path, "r");
  unsigned long long m = 0;
  while (f != NULL && fgets(line, sizeof line, f) != NULL)
    if (sscanf(line, "SigBlk: %llx", &m) == 1) break;
  if (f != NULL) fclose(f);
  return m;
}

int main(void) {
  REQUIREF(zc_option_get(zc_option_background) == 1, "needs the background purger");
  void *big = zc_malloc(8u << 20);
  REQUIRE(big != NULL);
  zc_free(big);
  static void *small[40000];
  for (int i = 0; i < 40000; i++) REQUIRE((small[i] = zc_malloc(256)) != NULL); /* 10 MiB: several segments */
  for (int i = 0; i < 40000; i++) zc_free(small[i]);
  zc_free(zc_malloc(64)); /* a malloc slow path after the frees: it starts the purger if nothing did */
  CHECKF(WAIT_UNTIL(other_threads() >= 1, 60000), "no purger thread started");
  DIR *d = opendir("/proc/self/task");
  REQUIRE(d != NULL);
  struct dirent *e;
  static const int sigs[] = {SIGCHLD, SIGINT, SIGTERM, SIGALRM, SIGUSR1, SIGUSR2};
  while ((e = readdir(d)) != NULL) {
    int tid = atoi(e->d_name);
    if (e->d_name[0] == '.' || tid == getpid()) continue;
    unsigned long long m = sigblk(tid);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
      CHECKF(m & (1ull << (sigs[i] - 1)), "thread %d does not block signal %d (SigBlk %llx)", tid, sigs[i], m);
  }
  closedir(d);
  struct sigaction sa = {.sa_handler = on_usr2};
  sigemptyset(&sa.sa_mask);
  REQUIRE(sigaction(SIGUSR2, &sa, NULL) == 0);
  sigset_t s2;
  sigemptyset(&s2);
  sigaddset(&s2, SIGUSR2);
  REQUIRE(pthread_sigmask(SIG_BLOCK, &s2, NULL) == 0);
  REQUIRE(kill(getpid(), SIGUSR2) == 0);
  sleep_ms(100); /* a thread that does not block it would run the handler now */
  sigset_t pend;
  sigpending(&pend);
  CHECKF(ran_on == 0 && sigismember(&pend, SIGUSR2), "SIGUSR2 was taken by thread %d while the main thread blocked it",
         (int)ran_on);
  REQUIRE(pthread_sigmask(SIG_UNBLOCK, &s2, NULL) == 0);
  CHECKF(ran_on == getpid(), "the handler ran on thread %d, not on the main thread %d", (int)ran_on, (int)getpid());
  CHECK_DONE("core_purger_sigmask");
}
