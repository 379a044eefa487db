/* Statistics: ZCMEM_STATS=1 prints a readable summary on stderr at exit (allocated, resident, purged and
 * remote-free lines, a row per size class in use), ZCMEM_STATS=2 prints JSON at exit that a strict parser
 * accepts, zc_stats_get counts remote frees after a cross-thread free, and zc_stats_json follows the
 * snprintf contract and produces valid JSON.
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

static int has_line_with(const char *text, const char *word) {
  for (const char *line = text; line && *line;) {
    const char *nl = strchr(line, '\n');
    size_t len = nl ? (size_t)(nl - line) : strlen(line);
    for (size_t i = 0; i + strlen(word) <= len; i++)
      if (strncasecmp(line + i, word, strlen(word)) == 0) return 1;
    line = nl ? nl + 1 : NULL;
  }
  return 0;
}

/* A line that has the number n as a whole token (a size-class row). */
static int has_number_token(const char *text, unsigned long n) {
  char want[32];
  snprintf(want, sizeof want, "%lu", n);
  size_t wl = strlen(want);
  for (const char *s = text; (s = strstr(s, want)) != NULL; s += wl) {
    int left = s == text || !isalnum((unsigned char)s[-1]);
    int right = !isalnum((unsigned char)s[wl]) && s[wl] != '.';
    if (left && right) return 1;
  }
  return 0;
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
  static const char *words[] = {"allocated", "resident", "purged", "remote"};
  for (unsigned i = 0; i < 4; i++) CHECKF(has_line_with(r.err, words[i]), "no line mentions \"%s\"", words[i]);
  for (unsigned i = 0; i < 4; i++)
    CHECKF(has_number_token(r.err, class_sizes[i]), "no size-class row for %zu B blocks", class_sizes[i]);
  CHECK(count_lines_with_prefix(r.err, "zcmem: error") == 0);
  child_result_free(&r);

  const char *a2[2] = {self, "2"};
  r = run_child(exec_work, (void *)a2, 60);
  CHECK(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
  char *open = strchr(r.err, '{'), *close = strrchr(r.err, '}');
  CHECKF(open && close && close > open, "ZCMEM_STATS=2 printed no JSON object:\n%s", r.err);
  if (open && close && close > open) {
    close[1] = 0;
    CHECKF(json_valid(open), "ZCMEM_STATS=2 output is not valid JSON:\n%s", open);
    CHECKF(strstr(open, "\"allocated\""), "no \"allocated\" key in the JSON");
    printf("ZCMEM_STATS=2: %zu bytes of valid JSON\n", strlen(open));
  }
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
  CHECKF(json_valid(buf), "zc_stats_json output is not valid JSON:\n%s", buf);
  memset(buf, 'x', 32);
  got = zc_stats_json(buf, 10);
  CHECKF(got > 10 && buf[9] == 0 && strlen(buf) == 9, "truncated zc_stats_json: returned %zu, strlen %zu", got,
         strlen(buf));
  free(buf);
  for (int i = 0; i <= 400; i++) zc_free(blocks[i]);
  /* the validator itself rejects what it must */
  CHECK(!json_valid("{\"a\":1,}") && !json_valid("{\"a\":01}") && !json_valid("{'a':1}") && !json_valid("{\"a\":1} x"));
  CHECK(json_valid("{\"a\":[1,2.5,-3e2,true,false,null,{\"b\":\"c\\n\"}]}"));
  return check_exit("core_stats");
}
