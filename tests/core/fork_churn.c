/* fork while another thread creates and joins threads, with zcmem's purger running (zcmem_prefixed: every
 * build, the sanitizers' included; under ASan malloc is the runtime's):
 *
 *   core_fork_churn   the parent starts zcmem's purger (a large zc_malloc), a second thread creates and joins
 *                     threads all along, and main forks 100 times. Each child calls libc's malloc and
 *                     zc_malloc and exits 0 within 60 s (run_child's deadline: a hang fails).
 * Under ASan (GCC 12's runtime) a thread being created, started or joined at the fork holds the runtime's
 * thread registry lock in the child, where any pthread_create then waits forever: zcmem's fork child handler
 * must not create the child's purger thread itself there.
 */
#define _GNU_SOURCE
#include "zc_proc.h"
#include "zc_test.h"
#include "zcmem.h"

#include <pthread.h>
#include <stdatomic.h>

static atomic_int stop;
static void *nothing(void *arg) { return arg; }
static void *churn(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    pthread_t t;
    if (pthread_create(&t, NULL, nothing, NULL) == 0) pthread_join(t, NULL);
  }
  return NULL;
}


static int child(void *arg) {
  (void)arg;
  char *p = malloc(100), *q = zc_malloc(100);
  if (p == NULL || q == NULL) return 3;
  memset(p, 1, 100);
  memset(q, 2, 100);
  free(p);
  zc_free(q);
  return 0;
}

int main(void) {
  REQUIREF(zc_option_get(zc_option_background) == 1 && zc_option_get(zc_option_purge_delay) > 0,
           "needs the background purger");
  zc_free(zc_malloc((size_t)1 << 20)); /* a large allocation starts the purger */
  REQUIREF(WAIT_UNTIL(zc_threads_now() >= 2, 30000), "the purger did not start: %d threads", zc_threads_now());
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, churn, NULL) == 0);
  int bad = 0;
  for (int i = 0; i < 100 && bad < 3; i++) {
    child_result_t r = run_child(child, NULL, 60);
    char st[64];
    if (!child_exited(&r, 0)) {
      bad++;
      CHECKF(0, "fork %d: the child ended with %s\n%s", i, child_str(&r, st, sizeof st), r.err);
    }
    child_result_free(&r);
  }
  atomic_store(&stop, 1);
  pthread_join(t, NULL);
  return check_exit("core_fork_churn");
}
