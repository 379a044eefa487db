/* Bad frees are reported, not followed: each case runs in a fresh child process (this program re-executed
 * with --case NAME, stderr captured through a pipe). The child makes one bad free (or one write after free),
 * then runs a stress loop with verified payloads and checks that the blocks it still owns are intact.
 *
 * Rule (printed by the test), the same in release and debug builds:
 *   - with ZCMEM_ABORT_ON_ERROR=0: exactly one line starting with "zcmem: error:" on stderr, the process
 *     goes on and no live block is corrupted;
 *   - by default: the line, then SIGABRT (as glibc).
 * Cases: foreign pointers (stack, global, segment header), interior and misaligned pointers into current and
 * older pages, small, medium and large blocks, double frees (at the head of a list, deep in it, after the
 * block went back to free), blocks never handed out, pages with no block in use, each from the owner and
 * from other threads; and writes after free that bend a free-list link.
 * Linked with libzcmem.so: the cases call the plain free().
 */
#define _GNU_SOURCE
#include "check.h"
#include "zcmem.h"

#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>

/* Exported by debug-aware versions of the library; absent means release. */
extern int zc_debug_build(void) __attribute__((weak));

static char global_block[512] __attribute__((aligned(64)));

static const char *const cases[] = {
    "small-double-free", "large-double-free", "stack-pointer", "global-pointer", "interior-small",
    "interior-large", "misaligned-small", "misaligned-large",
    /* issue 8 */
    "interior-older-page", "misaligned-older-page", "double-free-deep", "double-free-after-refill",
    "never-handed-out", "uncarved", "never-used-page", "segment-header", "empty-page", "medium-interior", "medium-double-free",
    "remote-double-free-same", "remote-double-free-two", "remote-interior", "remote-misaligned",
    "remote-uncarved", "remote-header", "remote-then-owner", "owner-then-remote", "remote-older-page",
    "uaf-link-local", "uaf-link-remote", "uaf-link-to-live", "uaf-link-low-byte",
    /* issue 12: sizes above the direct table (malloc_mid) and the owner's medium free without the full check */
    "uaf-link-mid", "uaf-link-medium", "medium-double-free-deep", "medium-misaligned",
};
enum { NCASES = sizeof cases / sizeof cases[0] };

static volatile void *sink;

/* Run fn(arg) in another thread (its frees are remote frees) and wait for it. */
typedef struct {
  void (*fn)(void *);
  void *arg;
} thread_job_t;
static void *thread_main(void *a) {
  thread_job_t *j = a;
  j->fn(j->arg);
  return NULL;
}
static void in_thread(void (*fn)(void *), void *arg) {
  pthread_t t;
  thread_job_t j = {fn, arg};
  REQUIRE(pthread_create(&t, NULL, thread_main, &j) == 0);
  pthread_join(t, NULL);
}
static void free_it(void *p) { free(p); }
static void free_twice(void *p) {
  free(p);
  free(p);
}

/* Many live blocks of one size with a pattern, checked at the end: a bad free must harm none of them. */
enum { NLIVE = 6000 };
static unsigned char *live[NLIVE];
static size_t live_n;
static void fill_live(size_t n) {
  live_n = n;
  for (int i = 0; i < NLIVE; i++) {
    live[i] = malloc(n);
    REQUIRE(live[i] != NULL);
    memset(live[i], (unsigned char)(i * 7 + 1), n);
  }
}
static int check_live(void) {
  int bad = 0;
  for (int i = 0; i < NLIVE && live_n; i++)
    for (size_t k = 0; k < live_n; k++)
      if (live[i][k] != (unsigned char)(i * 7 + 1)) {
        if (bad++ < 5) fprintf(stderr, "corruption: live block %d of %zu B changed at byte %zu\n", i, live_n, k);
        break;
      }
  return bad;
}

static int cmp_uptr(const void *a, const void *b) {
  uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
  return x < y ? -1 : x > y;
}

/* A pointer just past everything carved of p's page (the class's pages carve a little at a time). */
static void *segment_of(void *p) { return (void *)((uintptr_t)p & ~(((uintptr_t)4 << 20) - 1)); }

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
  int rc = 0;
#define IS(x) (strcmp(name, x) == 0)
  if (IS("small-double-free")) {
    void *p = malloc(64);
    REQUIRE(p != NULL);
    free(p);
    free(p);
  } else if (IS("large-double-free")) {
    void *p = malloc((size_t)1 << 20);
    REQUIRE(p != NULL);
    free(p);
    free(p);
  } else if (IS("stack-pointer")) {
    char buf[256] __attribute__((aligned(64)));
    memset(buf, 1, sizeof buf);
    sink = buf;
    free((char *)sink + 64);
  } else if (IS("global-pointer")) {
    sink = global_block;
    free((char *)sink + 128);
  } else if (IS("interior-small")) {
    keep = owned(keep_n = 256);
    free(keep + 64);
  } else if (IS("interior-large")) {
    keep = owned(keep_n = (size_t)1 << 20);
    free(keep + 8192);
  } else if (IS("misaligned-small")) {
    keep = owned(keep_n = 256);
    free(keep + 1);
  } else if (IS("misaligned-large")) {
    keep = owned(keep_n = (size_t)1 << 20);
    free(keep + 1);
  } else if (IS("interior-older-page") || IS("misaligned-older-page")) {
    /* the case: a full page that is not the class's current one, then a page-full more */
    fill_live(32);
    free(live[10] + (IS("interior-older-page") ? 16 : 8));
    for (int i = 0; i < NLIVE; i++) {
      unsigned char *q = malloc(32);
      REQUIRE(q != NULL);
      memset(q, 0xEE, 32);
    }
    rc = check_live();
  } else if (IS("double-free-deep")) {
    fill_live(48);
    void *p = malloc(48), *q = malloc(48), *r = malloc(48);
    free(p);
    free(q);
    free(r);
    free(p); /* not at the head of local_free */
  } else if (IS("double-free-after-refill")) {
    /* blocks freed, then a page-full of mallocs (local_free goes back to free, pages are retired and
     * reused), then a second free of a block that malloc did not hand out again */
    fill_live(48);
    enum { N = 3000, M = 2000 };
    static void *a[N], *b[M];
    for (int i = 0; i < N; i++) a[i] = malloc(48);
    for (int i = 0; i < N - 1; i++) free(a[i]);
    for (int i = 0; i < M; i++) b[i] = malloc(48);
    int k = -1;
    for (int i = N - 2; i >= 0 && k < 0; i--) {
      int taken = 0;
      for (int j = 0; j < M && !taken; j++) taken = b[j] == a[i];
      if (!taken) k = i;
    }
    REQUIRE(k >= 0);
    free(a[k]);
  } else if (IS("never-handed-out")) {
    fill_live(96);
    unsigned char *q = malloc(96);
    free(q + 96 * 3); /* carved with q's batch, handed out to nobody (allocation goes down the page) */
    (void)q;
  } else if (IS("uncarved")) {
    unsigned char *q = malloc(4000); /* 4 KiB blocks are carved one at a time */
    free(q + 4096 * 3);
  } else if (IS("never-used-page")) {
    keep = owned(keep_n = 64);
    free((char *)segment_of(keep) + ((size_t)4 << 20) - 65536 + 64); /* the segment's last page */
  } else if (IS("segment-header")) {
    keep = owned(keep_n = 64);
    free((char *)segment_of(keep) + 4096);
  } else if (IS("empty-page")) {
    /* First empty a page of another class: that starts the background purger, whose creation (glibc's
     * pthread_create allocates) must not take the block the bad free below aims at. */
    void *w[100]; /* 3 KiB blocks: 21 to a page, so the first pages empty and are retired */
    for (int i = 0; i < 100; i++) w[i] = malloc(3000);
    for (int i = 0; i < 100; i++) free(w[i]);
    void *a[16];
    for (int i = 0; i < 16; i++) a[i] = malloc(6000); /* 8 KiB class: 8 blocks per page, two pages */
    for (int i = 0; i < 16; i++) free(a[i]);
    free(a[0]); /* its page has no block in use, or is free */
  } else if (IS("medium-interior")) {
    keep = owned(keep_n = 20000);
    free(keep + 4096);
  } else if (IS("medium-double-free")) {
    keep = owned(keep_n = 20000);
    void *p = malloc(20000);
    free(p);
    free(p);
  } else if (IS("remote-double-free-same")) {
    fill_live(64);
    void *p = malloc(64);
    in_thread(free_twice, p);
  } else if (IS("remote-double-free-two")) {
    fill_live(64);
    void *p = malloc(64);
    in_thread(free_it, p);
    in_thread(free_it, p);
  } else if (IS("remote-interior")) {
    keep = owned(keep_n = 256);
    in_thread(free_it, keep + 32);
  } else if (IS("remote-misaligned")) {
    keep = owned(keep_n = 256);
    in_thread(free_it, keep + 3);
  } else if (IS("remote-uncarved")) {
    keep = owned(keep_n = 4000);
    in_thread(free_it, keep + 4096 * 3);
  } else if (IS("remote-header")) {
    keep = owned(keep_n = 64);
    in_thread(free_it, (char *)segment_of(keep) + 512);
  } else if (IS("remote-then-owner")) {
    fill_live(64);
    void *p = malloc(64);
    in_thread(free_it, p);
    free(p);
  } else if (IS("owner-then-remote")) {
    fill_live(64);
    void *p = malloc(64);
    free(p);
    in_thread(free_it, p);
  } else if (IS("remote-older-page")) {
    fill_live(32);
    in_thread(free_it, live[10] + 16);
    for (int i = 0; i < NLIVE; i++) sink = malloc(32);
    rc = check_live();
  } else if (IS("uaf-link-local") || IS("uaf-link-to-live")) {
    /* a write after free bends the link of a free block: to a global, or to a live block */
    fill_live(80);
    unsigned char *p = malloc(80);
    free(p);
    *(void **)p = IS("uaf-link-local") ? (void *)global_block : (void *)live[3];
    for (int i = 0; i < 3000; i++) {
      unsigned char *q = malloc(80);
      REQUIRE(q != NULL);
      if (q == (unsigned char *)global_block || q == live[3]) {
        fprintf(stderr, "malloc handed out the address a bent link pointed to\n");
        return 4;
      }
      memset(q, 0xDD, 80);
    }
    rc = check_live();
  } else if (IS("uaf-link-low-byte")) {
    /* a one-byte write after free into an encoded link: the decoded pointer moves by 64 bytes, still inside
     * the page, off the block grid (80-byte blocks), over a live neighbour */
    unsigned char *q = malloc(80), *p = malloc(80);
    fill_live(80);
    free(q);
    free(p); /* p's link is q, encoded */
    p[0] ^= 0x40;
    static uintptr_t got[NLIVE + 3000];
    int n = 0;
    for (int i = 0; i < NLIVE; i++) got[n++] = (uintptr_t)live[i];
    for (int i = 0; i < 3000; i++) {
      unsigned char *x = malloc(80);
      REQUIRE(x != NULL);
      memset(x, 0xDD, 80);
      got[n++] = (uintptr_t)x;
    }
    rc = check_live();
    qsort(got, (size_t)n, sizeof got[0], cmp_uptr); /* no block handed out may overlap another */
    for (int i = 1; i < n; i++)
      if (got[i] - got[i - 1] < 80) {
        fprintf(stderr, "overlapping blocks handed out: %p and %p\n", (void *)got[i - 1], (void *)got[i]);
        rc = 5;
        break;
      }
  } else if (IS("uaf-link-remote")) {
    fill_live(112);
    unsigned char *p = malloc(112);
    in_thread(free_it, p); /* on thread_free (the exiting thread hands its chain over) */
    *(void **)p = global_block;
    for (int i = 0; i < 3000; i++) {
      unsigned char *q = malloc(112);
      REQUIRE(q != NULL);
      if (q == (unsigned char *)global_block) {
        fprintf(stderr, "malloc handed out the address a bent link pointed to\n");
        return 4;
      }
      memset(q, 0xDD, 112);
    }
    rc = check_live();
  } else if (IS("uaf-link-mid") || IS("uaf-link-medium")) {
    /* a bent link in a page of a class above the direct table: 2 KiB (small segment) or 20 KB (medium) */
    size_t n = IS("uaf-link-mid") ? 2000 : 20000;
    keep = owned(keep_n = n);
    unsigned char *p = malloc(n);
    REQUIRE(p != NULL);
    free(p);
    *(void **)p = global_block;
    for (int i = 0; i < 300; i++) {
      unsigned char *q = malloc(n);
      REQUIRE(q != NULL);
      if (q == (unsigned char *)global_block) {
        fprintf(stderr, "malloc handed out the address a bent link pointed to\n");
        return 4;
      }
      memset(q, 0xDD, n);
    }
  } else if (IS("medium-double-free-deep")) {
    keep = owned(keep_n = 20000);
    void *p = malloc(20000), *q = malloc(20000), *r = malloc(20000);
    free(p);
    free(q);
    free(r);
    free(p); /* not at the head of local_free */
  } else if (IS("medium-misaligned")) {
    keep = owned(keep_n = 20000);
    free(keep + 16);
  } else {
    fprintf(stderr, "unknown case %s\n", name);
    return 2;
  }
#undef IS
  rc |= stress_after(keep, keep_n);
  rc |= check_live();
  free(keep);
  return rc ? 3 : 0;
}

typedef struct {
  const char *self, *name;
  int abort_on_error;
} exec_arg_t;

static int exec_case(void *arg) {
  exec_arg_t *a = arg;
  if (a->abort_on_error) unsetenv("ZCMEM_ABORT_ON_ERROR"); /* the default: abort */
  else setenv("ZCMEM_ABORT_ON_ERROR", "0", 1);
  execl(a->self, a->self, "--case", a->name, (char *)NULL);
  fprintf(stderr, "exec %s: %s\n", a->self, strerror(errno));
  return 127;
}

static char self_path[4096];

/* The cases whose report must also say what was found, so that a check caught later by another (a double
 * free let through, then caught when the block is popped twice) fails them. */
static const char *expected_report(const char *name) {
  static const char *const table[][2] = {
      {"medium-double-free-deep", "double free of"},
      {"medium-misaligned", "not the start of a block"},
      {"uaf-link-mid", "corrupted free list"},
      {"uaf-link-medium", "corrupted free list"},
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (strcmp(table[i][0], name) == 0) return table[i][1];
  return NULL;
}

static void run_one(const char *name) {
  exec_arg_t a = {self_path, name, 0};
  child_result_t r = run_child(exec_case, &a, 60);
  int lines = count_lines_with_prefix(r.err, "zcmem: error:");
  char st[64];
  status_str(r.status, st, sizeof st);
  printf("%-26s %s, %d error line(s)\n", name, st, lines);
  const char *msg = strstr(r.err, "zcmem: error:");
  if (msg) printf("%26s %.*s\n", "", (int)strcspn(msg, "\n"), msg);
  const char *want = expected_report(name);
  if (want != NULL)
    CHECKF(msg != NULL && strstr(msg, want) != NULL && strstr(msg, want) < msg + strcspn(msg, "\n"),
           "case %s: the report does not say \"%s\"", name, want);
  int ok_exit = WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0;
  CHECKF(ok_exit, "case %s: the child ended with %s (a bad free must be survived without corruption)", name, st);
  CHECKF(lines == 1, "case %s: %d lines start with \"zcmem: error:\", want exactly 1", name, lines);
  if (!ok_exit || lines != 1) fprintf(stderr, "--- stderr of %s ---\n%s---\n", name, r.err);
  child_result_free(&r);

  a.abort_on_error = 1;
  r = run_child(exec_case, &a, 60);
  lines = count_lines_with_prefix(r.err, "zcmem: error:");
  status_str(r.status, st, sizeof st);
  printf("%-26s by default: %s, %d error line(s)\n", name, st, lines);
  CHECKF(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGABRT, "case %s by default ended with %s", name, st);
  CHECKF(lines == 1, "case %s by default: %d error lines before the abort", name, lines);
  child_result_free(&r);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--case") == 0) return run_case(argv[2]);
  ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
  REQUIRE(n > 0);
  self_path[n] = 0;
  CHECKF(is_zcmem_malloc(), "malloc is not zcmem's: %s", malloc_owner());
  int debug = zc_debug_build ? zc_debug_build() : 0;
  printf("badfree: %s build (%s)\n", debug ? "debug" : "release",
         zc_debug_build ? "zc_debug_build()" : "zc_debug_build not exported: assumed release");
  printf("rule: every case prints exactly one \"zcmem: error:\" line; with ZCMEM_ABORT_ON_ERROR=0 it goes on\n"
         "      without corrupting a live block, by default it aborts (SIGABRT)\n");
  const char *only = argc == 2 ? argv[1] : NULL; /* one case by name, for debugging */
  unsigned ran = 0;
  for (unsigned i = 0; i < NCASES; i++)
    if (!only || strcmp(only, cases[i]) == 0) run_one(cases[i]), ran++;
  REQUIREF(ran > 0, "no case named \"%s\"", only); /* a misspelt name must not pass */
  return check_exit("core_badfree");
}
