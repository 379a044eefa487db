/* Statistics: ZCMEM_STATS=1 prints a readable summary on stderr at exit (allocated, resident, purged and
 * remote-free lines, a row per size class in use), ZCMEM_STATS=2 prints JSON at exit that a strict parser
 * accepts, ZCMEM_STATS=0 prints nothing, zc_stats_get counts remote frees after a cross-thread free,
 * zc_stats_json follows the snprintf contract, zc_stats_print(fd) writes the summary to fd. Fields are
 * checked by name and value where work() fixes them (20000 remote frees, a large region, 0 errors, one
 * row per class used with its pages and blocks).
 * The exit-time output is checked on a fresh process (this program re-executed with `work`, its stderr
 * captured). Linked with libzcmem.so.
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"

#include <ctype.h>
#include <pthread.h>
#include <strings.h>

/* ---- a strict JSON validator (RFC 8259 grammar, no extensions) ---- */
typedef struct {
  const char *s;
  int depth;
} jp_t;

static void jws(jp_t *p) {
  while (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r') p->s++;
}
static int jvalue(jp_t *p);
static int jstring(jp_t *p) {
  if (*p->s != '"') return 0;
  p->s++;
  while (*p->s != '"') {
    unsigned char c = (unsigned char)*p->s;
    if (c < 0x20) return 0;
    if (c == '\\') {
      p->s++;
      if (*p->s == 'u') {
        for (int i = 1; i <= 4; i++)
          if (!isxdigit((unsigned char)p->s[i])) return 0;
        p->s += 4;
      } else if (!strchr("\"\\/bfnrt", *p->s) || !*p->s) {
        return 0;
      }
    }
    p->s++;
  }
  p->s++;
  return 1;
}
static int jnumber(jp_t *p) {
  const char *s = p->s;
  if (*s == '-') s++;
  if (*s == '0') s++;
  else if (*s >= '1' && *s <= '9') while (isdigit((unsigned char)*s)) s++;
  else return 0;
  if (*s == '.') {
    s++;
    if (!isdigit((unsigned char)*s)) return 0;
    while (isdigit((unsigned char)*s)) s++;
  }
  if (*s == 'e' || *s == 'E') {
    s++;
    if (*s == '+' || *s == '-') s++;
    if (!isdigit((unsigned char)*s)) return 0;
    while (isdigit((unsigned char)*s)) s++;
  }
  p->s = s;
  return 1;
}
static int jvalue(jp_t *p) {
  jws(p);
  if (++p->depth > 64) return 0;
  int ok = 0;
  if (*p->s == '{') {
    p->s++;
    jws(p);
    if (*p->s == '}') {
      p->s++;
      ok = 1;
    } else {
      for (;;) {
        jws(p);
        if (!jstring(p)) break;
        jws(p);
        if (*p->s++ != ':') break;
        if (!jvalue(p)) break;
        jws(p);
        if (*p->s == ',') { p->s++; continue; }
        if (*p->s == '}') { p->s++; ok = 1; }
        break;
      }
    }
  } else if (*p->s == '[') {
    p->s++;
    jws(p);
    if (*p->s == ']') {
      p->s++;
      ok = 1;
    } else {
      for (;;) {
        if (!jvalue(p)) break;
        jws(p);
        if (*p->s == ',') { p->s++; continue; }
        if (*p->s == ']') { p->s++; ok = 1; }
        break;
      }
    }
  } else if (*p->s == '"') {
    ok = jstring(p);
  } else if (strncmp(p->s, "true", 4) == 0 || strncmp(p->s, "null", 4) == 0) {
    p->s += 4;
    ok = 1;
  } else if (strncmp(p->s, "false", 5) == 0) {
    p->s += 5;
    ok = 1;
  } else {
    ok = jnumber(p);
  }
  p->depth--;
  return ok;
}
/* 1 if text is exactly one JSON object (surrounding white space allowed). */
static int json_valid(const char *text) {
  jp_t p = {text, 0};
  jws(&p);
  if (*p.s != '{') return 0;
  if (!jvalue(&p)) return 0;
  jws(&p);
  return *p.s == 0;
}

/* ---- work: small blocks of a few classes and cross-thread frees ---- */
enum { NB = 20000 };
static void *blocks[NB];

/* Frees one message type after another (each class in allocation order): the blocks of one page come in
 * a row, which is what zcmem batches (one chain per page, docs/design.md). */
static void *remote_freer(void *arg) {
  (void)arg;
  for (int c = 0; c < 4; c++)
    for (int i = c; i < NB; i += 4) zc_free(blocks[i]);
  return NULL;
}

static const size_t class_sizes[] = {16, 48, 112, 320}; /* each is a class size of the grid */

static void work(void) {
  for (int i = 0; i < NB; i++) {
    blocks[i] = zc_malloc(class_sizes[i % 4]);
    REQUIRE(blocks[i] != NULL);
    memset(blocks[i], 1, class_sizes[i % 4]);
  }
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, remote_freer, NULL) == 0);
  pthread_join(t, NULL);
  /* some still live at exit, and a large block */
  for (int i = 0; i < 400; i++) blocks[i] = zc_malloc(class_sizes[i % 4]);
  blocks[400] = zc_malloc((size_t)1 << 20);
}

static int exec_work(void *arg) {
  const char **a = arg;
  setenv("ZCMEM_STATS", a[1], 1);
  execl(a[0], a[0], "work", (char *)NULL);
  return 127;
}

/* The value of "key":<number> in JSON text (the first occurrence after from), or -1. */
static long long json_num(const char *from, const char *key) {
  char want[64];
  snprintf(want, sizeof want, "\"%s\":", key);
  const char *at = from ? strstr(from, want) : NULL;
  if (!at || !isdigit((unsigned char)at[strlen(want)])) return -1;
  return strtoll(at + strlen(want), NULL, 10);
}

/* The class row of the text summary for block size `size`: "<size> <pages> <blocks used> ...". Returns 1
 * and the two counts if there is exactly one such row. */
static int text_class_row(const char *text, size_t size, long *pages, long *used) {
  int rows = 0;
  for (const char *line = text; line && *line;) {
    unsigned long sz;
    long pg, us;
    int len = 0;
    if (sscanf(line, " %lu %ld %ld%n", &sz, &pg, &us, &len) == 3 && sz == size) {
      rows++;
      *pages = pg;
      *used = us;
    }
    const char *nl = strchr(line, '\n');
    line = nl ? nl + 1 : NULL;
  }
  return rows == 1;
}

/* The text summary of one run of work(): exact counts where work() fixes them. */
static void check_text(const char *what, const char *text) {
  const char *rf = strstr(text, "remote frees ");
  unsigned long long frees = 0, batches = 0;
  CHECKF(rf && sscanf(rf, "remote frees %llu in %llu hand-overs", &frees, &batches) == 2,
         "%s: no \"remote frees N in M hand-overs\" field:\n%s", what, text);
  CHECKF(frees == NB && batches >= 1 && batches * 2 <= frees, "%s: remote frees %llu in %llu hand-overs, want %d",
         what, frees, batches, NB);
  const char *ll = strstr(text, "large regions live ");
  /* work() keeps one 1 MiB block; a sanitizer runtime may hold another */
  CHECKF(ll && strtol(ll + strlen("large regions live "), NULL, 10) >= 1, "%s: \"large regions live N\" (N >= 1) "
         "missing", what);
  const char *er = strstr(text, "errors ");
  CHECKF(er && strtol(er + 7, NULL, 10) == 0, "%s: \"errors 0\" missing", what);
  static const char *words[] = {"allocated ", "committed ", "resident (process) ", "purged ", "segments "};
  for (unsigned i = 0; i < sizeof words / sizeof words[0]; i++)
    CHECKF(strstr(text, words[i]) != NULL, "%s: no \"%s\" field", what, words[i]);
  for (unsigned i = 0; i < 4; i++) {
    long pages = -1, used = -1;
    int one = text_class_row(text, class_sizes[i], &pages, &used);
    /* live at the end: 100 blocks of the class (plus remote frees the owner has not collected yet) */
    CHECKF(one && pages >= 1 && used >= 100 && used <= NB / 4 + 100,
           "%s: class %zu row: %s, pages %ld, blocks used %ld", what, class_sizes[i], one ? "one" : "not exactly one",
           pages, used);
  }
}

static void check_json(const char *what, const char *js) {
  CHECKF(json_valid(js), "%s: not valid JSON:\n%s", what, js);
  static const char *keys[] = {"allocated", "committed", "purged", "reserved", "rss", "peak_rss", "remote_frees",
                               "remote_batches", "segments", "large_live", "large_cached", "threads",
                               "abandoned", "errors"};
  for (unsigned i = 0; i < sizeof keys / sizeof keys[0]; i++)
    CHECKF(json_num(js, keys[i]) >= 0, "%s: no numeric \"%s\"", what, keys[i]);
  CHECK(json_num(js, "large_live") >= 1);
  CHECK_EQ(json_num(js, "errors"), 0);
  CHECK(json_num(js, "allocated") >= 400 * 16 + (1 << 20));
  CHECK(json_num(js, "committed") >= json_num(js, "allocated"));
  CHECK(json_num(js, "threads") >= 1);
  for (unsigned i = 0; i < 4; i++) {
    char want[48];
    snprintf(want, sizeof want, "{\"size\":%zu,", class_sizes[i]);
    const char *row = strstr(js, want);
    long long used = row ? json_num(row, "blocks_used") : -1, cap = row ? json_num(row, "blocks_capacity") : -1;
    CHECKF(row && json_num(row, "pages") >= 1 && used >= 100 && cap >= used,
           "%s: class %zu: pages %lld, blocks_used %lld, blocks_capacity %lld", what, class_sizes[i],
           row ? json_num(row, "pages") : -1, used, cap);
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "work") == 0) {
    work();
    return 0; /* normal exit: the stats dump runs now */
  }
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  REQUIRE(n > 0);
  self[n] = 0;

  const char *a1[2] = {self, "1"};
  child_result_t r = run_child(exec_work, (void *)a1, 60);
  CHECK(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
  printf("---- ZCMEM_STATS=1 output (%zu bytes) ----\n%s----\n", r.len, r.err);
  check_text("ZCMEM_STATS=1", r.err);
  CHECK_EQ(json_num(r.err, "remote_frees"), -1); /* text, not JSON */
  CHECK(count_lines_with_prefix(r.err, "zcmem: error") == 0);
  child_result_free(&r);

  const char *a2[2] = {self, "2"};
  r = run_child(exec_work, (void *)a2, 60);
  CHECK(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
  char *jopen = strchr(r.err, '{'), *jclose = strrchr(r.err, '}');
  CHECKF(jopen && jclose && jclose > jopen, "ZCMEM_STATS=2 printed no JSON object:\n%s", r.err);
  if (jopen && jclose && jclose > jopen) {
    jclose[1] = 0;
    check_json("ZCMEM_STATS=2", jopen);
    CHECK_EQ(json_num(jopen, "remote_frees"), NB);
    printf("ZCMEM_STATS=2: %zu bytes of valid JSON\n", strlen(jopen));
  }
  child_result_free(&r);

  const char *a0[2] = {self, "0"};
  r = run_child(exec_work, (void *)a0, 60);
  CHECK(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
  CHECKF(r.len == 0, "ZCMEM_STATS=0 printed something:\n%s", r.err);
  child_result_free(&r);

  /* in this process: remote frees are counted, zc_stats_json follows the snprintf contract */
  zc_stats_t st0, st1;
  zc_stats_get(&st0);
  work();
  zc_stats_get(&st1);
  printf("remote frees %llu -> %llu in %llu -> %llu batches; allocated %llu, rss %llu\n",
         (unsigned long long)st0.remote_frees, (unsigned long long)st1.remote_frees,
         (unsigned long long)st0.remote_batches, (unsigned long long)st1.remote_batches,
         (unsigned long long)st1.allocated, (unsigned long long)st1.rss);
  CHECKF(st1.remote_frees >= st0.remote_frees + NB, "%llu remote frees counted for %d cross-thread frees",
         (unsigned long long)(st1.remote_frees - st0.remote_frees), NB);
  CHECK(st1.remote_batches > st0.remote_batches);
  CHECK(st1.remote_batches - st0.remote_batches <= st1.remote_frees - st0.remote_frees);
  /* DESIGN layer 5: remote frees are batched, one atomic hand-over per batch; 20000 blocks of one owner,
   * freed by one thread page after page, must not take one hand-over each */
  CHECKF((st1.remote_batches - st0.remote_batches) * 2 <= st1.remote_frees - st0.remote_frees,
         "%llu hand-overs for %llu remote frees of one owner: not batched",
         (unsigned long long)(st1.remote_batches - st0.remote_batches),
         (unsigned long long)(st1.remote_frees - st0.remote_frees));
  CHECK(st1.allocated >= 400 * 16 + ((size_t)1 << 20));
  CHECK(st1.rss > 0 && st1.peak_rss >= st1.rss);
  CHECK(st1.committed >= st1.allocated);
  CHECK(st1.errors == 0);
  size_t need = zc_stats_json(NULL, 0);
  CHECK(need > 2);
  char *buf = malloc(need + 4096);
  REQUIRE(buf != NULL);
  size_t got = zc_stats_json(buf, need + 4096);
  CHECKF(got < need + 4096 && strlen(buf) == got, "zc_stats_json returned %zu, wrote %zu", got, strlen(buf));
  check_json("zc_stats_json", buf);
  memset(buf, 'x', 32);
  got = zc_stats_json(buf, 10);
  CHECKF(got > 10 && buf[9] == 0 && strlen(buf) == 9, "truncated zc_stats_json: returned %zu, strlen %zu", got,
         strlen(buf));
  free(buf);
  /* zc_stats_print(fd): the same summary as ZCMEM_STATS=1, on the descriptor given */
  int fd = memfd_create("zc_stats_print", 0);
  REQUIRE(fd >= 0);
  zc_stats_print(fd);
  off_t len = lseek(fd, 0, SEEK_END);
  char *text = malloc((size_t)len + 1);
  REQUIRE(text != NULL && pread(fd, text, (size_t)len, 0) == len);
  text[len] = 0;
  close(fd);
  CHECKF(strncmp(text, "zcmem stats", 11) == 0, "zc_stats_print does not start with \"zcmem stats\":\n%s", text);
  check_text("zc_stats_print", text);
  free(text);
  for (int i = 0; i <= 400; i++) zc_free(blocks[i]);
  /* the validator itself rejects what it must */
  CHECK(!json_valid("{\"a\":1,}") && !json_valid("{\"a\":01}") && !json_valid("{'a':1}") && !json_valid("{\"a\":1} x"));
  CHECK(json_valid("{\"a\":[1,2.5,-3e2,true,false,null,{\"b\":\"c\\n\"}]}"));
  return check_exit("core_stats");
}
