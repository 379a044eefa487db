/* Invalid frees are reported, not followed: each case runs in a fresh child process (this program
 * re-executed with --case NAME, stderr captured through a pipe). The child makes one bad free, then runs
 * a stress loop with verified payloads and checks that a block it still owns is intact, and exits 0.
 *
 * Rule (printed by the test):
 *   - large double free, free of a stack or global pointer, interior or misaligned pointers into small
 *     or large blocks: exactly one line starting with "zcmem: error:" on stderr, the process goes on.
 *   - double free of a small block: the same in a debug build (zc_debug_build() returns 1); in a release
 *     build detection is optional (at most one line) but there must be no corruption afterwards.
 *   - with ZCMEM_ABORT_ON_ERROR=1 a detected bad free ends the child with SIGABRT after the line.
 * Linked with libzcmem.so: the cases call the plain free().
 */
#define _GNU_SOURCE
#include "check.h"
#include "zcmem.h"

#include <dlfcn.h>
#include <malloc.h>

/* Exported by debug-aware versions of the library; absent means release. */
extern int zc_debug_build(void) __attribute__((weak));

static char global_block[512] __attribute__((aligned(64)));

typedef struct {
  const char *name;
  int debug_only; /* detection required only in debug builds */
} case_t;

static const case_t cases[] = {
    {"small-double-free", 1}, {"large-double-free", 0}, {"stack-pointer", 0},        {"global-pointer", 0},
    {"interior-small", 0},    {"interior-large", 0},    {"misaligned-small", 0},     {"misaligned-large", 0},
};
enum { NCASES = sizeof cases / sizeof cases[0] };

static volatile void *sink;

/* After the bad free: allocate, fill, verify and free many blocks; the block `keep` (owned by the child
 * and never freed) must keep its contents. Returns 0 if nothing was corrupted. */
static int stress_after(unsigned char *keep, size_t keep_n) {
  enum { SLOTS = 512 };
  unsigned char *slot[SLOTS] = {0};
  size_t size[SLOTS] = {0};
  unsigned char tag[SLOTS] = {0};
  rng_t r;
  rng_seed(&r, 5);
  int bad = 0;
  for (int it = 0; it < 20000 && !bad; it++) {
    unsigned i = (unsigned)(rng_next(&r) % SLOTS);
    if (slot[i]) {
      for (size_t k = 0; k < size[i]; k++)
        if (slot[i][k] != (unsigned char)(tag[i] + k)) {
          fprintf(stderr, "corruption: a block of %zu B changed at byte %zu\n", size[i], k);
          bad = 1;
          break;
        }
      free(slot[i]);
    }
    size[i] = (rng_next(&r) % 200) ? (size_t)rng_range(&r, 8, 1024) : (size_t)rng_range(&r, 60000, 1 << 20);
    slot[i] = malloc(size[i]);
    if (!slot[i]) {
      fprintf(stderr, "malloc(%zu) returned NULL after the bad free\n", size[i]);
      return 1;
    }
    tag[i] = (unsigned char)rng_next(&r);
    for (size_t k = 0; k < size[i]; k++) slot[i][k] = (unsigned char)(tag[i] + k);
  }
  for (size_t k = 0; keep && k < keep_n; k++)
    if (keep[k] != (unsigned char)(0xA0 + k)) {
      fprintf(stderr, "corruption: the block still owned changed at byte %zu\n", k);
      bad = 1;
      break;
    }
  for (unsigned i = 0; i < SLOTS; i++) free(slot[i]);
  return bad;
}

static unsigned char *owned(size_t n) {
  unsigned char *p = malloc(n);
  REQUIRE(p != NULL);
  for (size_t k = 0; k < n; k++) p[k] = (unsigned char)(0xA0 + k);
  return p;
}

static int run_case(const char *name) {
  unsigned char *keep = NULL;
  size_t keep_n = 0;
  if (strcmp(name, "small-double-free") == 0) {
    void *p = malloc(64);
    REQUIRE(p != NULL);
    free(p);
    free(p);
  } else if (strcmp(name, "large-double-free") == 0) {
    void *p = malloc((size_t)1 << 20);
    REQUIRE(p != NULL);
    free(p);
    free(p);
  } else if (strcmp(name, "stack-pointer") == 0) {
    char buf[256] __attribute__((aligned(64)));
    memset(buf, 1, sizeof buf);
    sink = buf;
    free((char *)sink + 64);
  } else if (strcmp(name, "global-pointer") == 0) {
    sink = global_block;
    free((char *)sink + 128);
  } else if (strcmp(name, "interior-small") == 0) {
    keep = owned(keep_n = 256);
    free(keep + 64);
  } else if (strcmp(name, "interior-large") == 0) {
    keep = owned(keep_n = (size_t)1 << 20);
    free(keep + 8192);
  } else if (strcmp(name, "misaligned-small") == 0) {
    keep = owned(keep_n = 256);
    free(keep + 1);
  } else if (strcmp(name, "misaligned-large") == 0) {
    keep = owned(keep_n = (size_t)1 << 20);
    free(keep + 1);
  } else {
    fprintf(stderr, "unknown case %s\n", name);
    return 2;
  }
  int rc = stress_after(keep, keep_n);
  free(keep);
  return rc ? 3 : 0;
}

typedef struct {
  const char *self, *name;
  int abort_on_error;
} exec_arg_t;

static int exec_case(void *arg) {
  exec_arg_t *a = arg;
  if (a->abort_on_error) setenv("ZCMEM_ABORT_ON_ERROR", "1", 1);
  else unsetenv("ZCMEM_ABORT_ON_ERROR");
  execl(a->self, a->self, "--case", a->name, (char *)NULL);
  fprintf(stderr, "exec %s: %s\n", a->self, strerror(errno));
  return 127;
}

static char self_path[4096];

static void run_one(const case_t *c, int debug) {
  exec_arg_t a = {self_path, c->name, 0};
  child_result_t r = run_child(exec_case, &a, 60);
  int lines = count_lines_with_prefix(r.err, "zcmem: error:");
  int required = !c->debug_only || debug;
  char st[64];
  status_str(r.status, st, sizeof st);
  printf("%-20s %s, %d error line(s)%s\n", c->name, st, lines, required ? "" : " (detection optional)");
  const char *msg = strstr(r.err, "zcmem: error:");
  if (msg) printf("%20s %.*s\n", "", (int)strcspn(msg, "\n"), msg);
  int ok_exit = WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0;
  CHECKF(ok_exit, "case %s: the child ended with %s (a bad free must be survived without corruption)",
         c->name, st);
  if (required) CHECKF(lines == 1, "case %s: %d lines start with \"zcmem: error:\", want exactly 1", c->name, lines);
  else CHECKF(lines <= 1, "case %s: %d error lines, want at most 1", c->name, lines);
  if (!ok_exit || (required && lines != 1) || lines > 1) fprintf(stderr, "--- stderr of %s ---\n%s---\n", c->name, r.err);
  child_result_free(&r);

  if (!required && lines == 0) return; /* not detected: nothing to abort on */
  a.abort_on_error = 1;
  r = run_child(exec_case, &a, 60);
  lines = count_lines_with_prefix(r.err, "zcmem: error:");
  status_str(r.status, st, sizeof st);
  printf("%-20s with ZCMEM_ABORT_ON_ERROR=1: %s, %d error line(s)\n", c->name, st, lines);
  CHECKF(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGABRT, "case %s with ZCMEM_ABORT_ON_ERROR=1 ended with %s",
         c->name, st);
  CHECKF(lines == 1, "case %s with ZCMEM_ABORT_ON_ERROR=1: %d error lines before the abort", c->name, lines);
  child_result_free(&r);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--case") == 0) return run_case(argv[2]);
  ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
  REQUIRE(n > 0);
  self_path[n] = 0;
  void *m = dlsym(RTLD_DEFAULT, "malloc");
  Dl_info di;
  CHECKF(m && dladdr(m, &di) && di.dli_fname && strstr(di.dli_fname, "zcmem"), "malloc is not zcmem's");
  int debug = zc_debug_build ? zc_debug_build() : 0;
  printf("badfree: %s build (%s)\n", debug ? "debug" : "release",
         zc_debug_build ? "zc_debug_build()" : "zc_debug_build not exported: assumed release");
  printf("rule: every case must print exactly one \"zcmem: error:\" line and go on without corruption;\n"
         "      %s\n",
         debug ? "debug build: the small double free must be detected too"
               : "release build: the small double free may go undetected, but must not corrupt the heap");
  for (unsigned i = 0; i < NCASES; i++) run_one(&cases[i], debug);
  return check_exit("core_badfree");
}
