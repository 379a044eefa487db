/* The test helpers in one include: checks (zc_check.h), PRNG and seeded patterns (zc_rng.h), clocks and
 * WAIT_UNTIL (zc_clock.h), resident memory (zc_rss.h), child processes with a deadline and captured output
 * (zc_child.h), named cases and the command line (zc_cases.h), and malloc_owner() / is_zcmem_malloc() below.
 * Link target: zc_test_common (tests/CMakeLists.txt), which only adds this folder to the include path.
 * The helpers use libc, POSIX and Linux headers only, never a zcmem header: the same file serves the
 * prefixed tests, the override tests and the tests of the other layers.
 */
#ifndef ZC_TEST_H
#define ZC_TEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "zc_cases.h"
#include "zc_check.h"
#include "zc_child.h"
#include "zc_clock.h"
#include "zc_rng.h"
#include "zc_rss.h"

#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* The file of the shared object (or program) that defines the malloc this process calls, "?" if unknown:
 * dladdr of the address `malloc` resolves to. Needs -ldl on old glibc. */
static inline const char *malloc_owner(void) {
  Dl_info di;
  void *m = dlsym(RTLD_DEFAULT, "malloc");
  return m && dladdr(m, &di) && di.dli_fname ? di.dli_fname : "?";
}
/* 1 if that malloc comes from a zcmem shared object (LD_PRELOAD or linked). */
static inline int is_zcmem_malloc(void) { return strstr(malloc_owner(), "zcmem") != NULL; }

#endif /* ZC_TEST_H */
