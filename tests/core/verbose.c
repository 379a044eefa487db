/* ZCMEM_VERBOSE: 2 prints the options in effect once, at the first allocation ("zcmem: info: options: ..."),
 * 1 prints a warning when zcmem runs on without something an option asked for, 0 (the default) prints
 * neither. The warning forced here: ZCMEM_LARGE_FILE=1 with a $TMPDIR where no file can be made (the large
 * blocks are anonymous memory then, and still work); it comes once however many regions fall back.
 *
 * The test runs itself again (fork + exec) with each environment and reads the child's stderr.
 * Prefixed library. Args: none (the child: "child").
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"

#include <string.h>

static int child(void) {
  for (int i = 0; i < 3; i++) { /* three large regions: each falls back when no file can be made */
    size_t n = ((size_t)1 << 20) << i;
    unsigned char *p = zc_malloc(n);
    if (p == NULL) return 3;
    memset(p, 0x5a, n);
    for (size_t k = 0; k < n; k += 4096)
      if (p[k] != 0x5a) return 4;
    void *q = zc_malloc(64);
    if (q == NULL) return 5;
    zc_free(q);
    /* kept live: the next one must map a region of its own */
  }
  return 0;
}

static int count(const char *hay, const char *needle) {
  int n = 0;
  for (const char *s = hay; (s = strstr(s, needle)) != NULL; s++) n++;
  return n;
}

static child_result_t run(const char *self, const char *const env[]) {
  char *argv[] = {(char *)self, (char *)"child", NULL};
  child_result_t r = run_exec(argv, env, 120);
  char st[64];
  CHECKF(child_exited(&r, 0), "child (%s %s %s) ended with %s; stderr: %s", env[0], env[1] ? env[1] : "",
         env[1] && env[2] ? env[2] : "", status_str(r.status, st, sizeof st), r.err);
  return r;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "child") == 0) return child();
  const char *nodir = "TMPDIR=/nonexistent-zcmem-verbose-test/x";
  unsetenv("ZCMEM_VERBOSE"); /* the children's settings are the ones below */
  unsetenv("ZCMEM_LARGE_FILE");

  { /* 2: the options once, with the values in effect */
    const char *env[] = {"ZCMEM_VERBOSE=2", "ZCMEM_PURGE_DELAY=123", NULL};
    child_result_t r = run(argv[0], env);
    CHECKF(count(r.err, "zcmem: info: options:") == 1, "VERBOSE=2: want one options line, stderr: %s", r.err);
    CHECKF(strstr(r.err, " ZCMEM_PURGE_DELAY=123") != NULL && strstr(r.err, " ZCMEM_VERBOSE=2") != NULL &&
               strstr(r.err, " ZCMEM_BORROW=8") != NULL,
           "VERBOSE=2: the options line lacks a value in effect: %s", r.err);
    CHECKF(count(r.err, "zcmem: warning:") == 0, "VERBOSE=2, nothing refused: stderr %s", r.err);
    child_result_free(&r);
  }
  { /* 1: the fallback warned once; no options line */
    const char *env[] = {"ZCMEM_VERBOSE=1", "ZCMEM_LARGE_FILE=1", nodir, NULL};
    child_result_t r = run(argv[0], env);
    CHECKF(count(r.err, "zcmem: warning: ZCMEM_LARGE_FILE=1") == 1,
           "VERBOSE=1, no $TMPDIR: want one LARGE_FILE warning for three regions, stderr: %s", r.err);
    CHECKF(count(r.err, "zcmem: info:") == 0, "VERBOSE=1 printed information: %s", r.err);
    child_result_free(&r);
  }
  { /* 0 (set) and the default: silent */
    const char *env0[] = {"ZCMEM_VERBOSE=0", "ZCMEM_LARGE_FILE=1", nodir, NULL};
    child_result_t r = run(argv[0], env0);
    CHECKF(r.len == 0, "VERBOSE=0: stderr not empty: %s", r.err);
    child_result_free(&r);
    const char *envd[] = {"ZCMEM_LARGE_FILE=1", nodir, NULL};
    r = run(argv[0], envd);
    CHECKF(r.len == 0, "VERBOSE unset: stderr not empty: %s", r.err);
    child_result_free(&r);
  }
  { /* 1 with a usable $TMPDIR: nothing to warn about */
    const char *env[] = {"ZCMEM_VERBOSE=1", "ZCMEM_LARGE_FILE=1", "TMPDIR=/tmp", NULL};
    child_result_t r = run(argv[0], env);
    CHECKF(count(r.err, "zcmem: warning:") == 0, "VERBOSE=1, file-backed regions made: stderr %s", r.err);
    child_result_free(&r);
  }
  return check_exit("core_verbose");
}
