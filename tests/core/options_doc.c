/* The documented options against the code: README.md's option table and its "Largest values accepted"
 * line, and the defaults written in include/zcmem.h's zc_option_t comments. For every option:
 *   - the README has exactly one row for it (a row naming a variable the code does not have fails, and the
 *     row count must equal zc_option_count, so an option added to src/options.c without a row fails);
 *   - the default in the README and in zcmem.h is what zc_option_get returns in a child whose environment
 *     holds no ZCMEM_* variable;
 *   - the variable's name is the one the code reads: a child started with it set to another valid value
 *     sees that value;
 *   - the documented maximum is accepted by the parser and one above it is rejected.
 * Documented values are parsed with the library's own parser (zc_option_parse), so "8M" means 8 MiB here
 * as it does in the environment.
 *
 * Prefixed library, internal header options.h. Args: README.md include/zcmem.h. Label sanitize.
 */
#define _GNU_SOURCE
#include "check.h"
#include "options.h"

#include <stdio.h>
#include <stdlib.h>

extern char **environ;

/* The names, in zc_option_t order: the test's own copy (options.c keeps its table static). */
static const char *const names[] = {
    "ZCMEM_STATS",          "ZCMEM_PURGE_DELAY", "ZCMEM_PURGE_MODE", "ZCMEM_DIRTY_BUDGET",
    "ZCMEM_LARGE_CACHE",    "ZCMEM_LARGE_FILE",  "ZCMEM_BACKGROUND", "ZCMEM_VERBOSE",
    "ZCMEM_ABORT_ON_ERROR", "ZCMEM_HUGE_PAGES",  "ZCMEM_BORROW",
};
_Static_assert(sizeof names / sizeof *names == zc_option_count, "one name per option");

typedef struct {
  int rows;               /* README rows naming the option */
  long readme_default;    /* parsed from the README row */
  long header_default;    /* parsed from zcmem.h, -1 if absent */
  long max;               /* parsed from "Largest values accepted", -1 if absent */
} doc_t;

static doc_t doc[zc_option_count];

static char *slurp(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return NULL;
  static char buf[1 << 20];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *s = malloc(n + 1);
  if (s) memcpy(s, buf, n + 1);
  return s;
}

static int option_by_name(const char *name, size_t len) {
  for (int i = 0; i < (int)zc_option_count; i++)
    if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0) return i;
  return -1;
}

/* A documented value: the token at s (up to a space, `|`, `,`, `.` at the end, `)` or newline). */
static bool doc_value(int opt, const char *s, long *out) {
  while (*s == ' ') s++;
  char tok[64];
  size_t n = 0;
  while (s[n] && s[n] != ' ' && s[n] != '|' && s[n] != ',' && s[n] != ')' && s[n] != '\n' && n < sizeof tok - 1)
    n++;
  memcpy(tok, s, n);
  tok[n] = 0;
  if (n > 0 && tok[n - 1] == '.') tok[n - 1] = 0;
  return zc_option_parse((zc_option_t)opt, tok, out);
}

static void read_readme(const char *text) {
  for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
    if (strncmp(l, "| `ZCMEM_", 9) == 0) { /* a table row: | `NAME` | default | meaning | */
      const char *name = l + 3;
      size_t len = strcspn(name, "`");
      int o = option_by_name(name, len);
      CHECKF(o >= 0, "README documents %.*s, which src/options.c does not read", (int)len, name);
      if (o < 0) continue;
      doc[o].rows++;
      const char *cell = strchr(name + len, '|');
      CHECKF(cell && doc_value(o, cell + 1, &doc[o].readme_default), "README: %s's default is not a valid value",
             names[o]);
    }
  }
  const char *m = strstr(text, "Largest values accepted:");
  CHECKF(m != NULL, "README: no \"Largest values accepted:\" line");
  if (m == NULL) return;
  const char *end = strstr(m, "\n\n");
  for (const char *p = strstr(m, "`ZCMEM_"); p && (!end || p < end); p = strstr(p + 1, "`ZCMEM_")) {
    size_t len = strcspn(p + 1, "`");
    int o = option_by_name(p + 1, len);
    CHECKF(o >= 0, "README gives a maximum for %.*s, which the code does not read", (int)len, p + 1);
    if (o < 0) continue;
    CHECKF(doc_value(o, p + len + 2, &doc[o].max), "README: %s's maximum is not accepted by the parser", names[o]);
  }
}

/* zcmem.h: "zc_option_x, /\* ZCMEM_X: ... (default) *\/" on one line; the default is the last (...). */
static void read_header(const char *text) {
  for (int o = 0; o < (int)zc_option_count; o++) {
    doc[o].header_default = -1;
    char key[64];
    snprintf(key, sizeof key, "/* %s:", names[o]);
    const char *l = strstr(text, key);
    CHECKF(l != NULL, "zcmem.h: no comment for %s", names[o]);
    if (l == NULL) continue;
    const char *close = strstr(l, "*/"), *open = NULL;
    for (const char *p = l; p < close; p++)
      if (*p == '(') open = p;
    if (o == zc_option_stats) continue; /* "0 off, 1 ..., 2 ...": no (default); checked through the README */
    CHECKF(open && doc_value(o, open + 1, &doc[o].header_default), "zcmem.h: %s has no (default)", names[o]);
  }
}

static void clear_zcmem_env(void) {
  for (;;) {
    char **e = environ;
    while (*e && strncmp(*e, "ZCMEM_", 6) != 0) e++;
    if (*e == NULL) return;
    char name[128];
    size_t len = strcspn(*e, "=");
    snprintf(name, sizeof name, "%.*s", (int)len, *e);
    unsetenv(name);
  }
}

/* Child: no ZCMEM_* variable; every option must be at its documented default. */
static int defaults_child(void *arg) {
  (void)arg;
  clear_zcmem_env();
  int bad = 0;
  for (int o = 0; o < (int)zc_option_count; o++) {
    long got = zc_option_get((zc_option_t)o);
    if (got != doc[o].readme_default || (doc[o].header_default >= 0 && got != doc[o].header_default)) {
      printf("%s is %ld by default; README says %ld, zcmem.h says %ld\n", names[o], got, doc[o].readme_default,
             doc[o].header_default);
      bad = 1;
    }
  }
  return bad;
}

/* Child: the option's variable set to another valid value; the code must read it under that name. */
static int name_child(void *arg) {
  int o = (int)(intptr_t)arg;
  clear_zcmem_env();
  long want = doc[o].readme_default == 0 ? 1 : 0;
  char v[8];
  snprintf(v, sizeof v, "%ld", want);
  setenv(names[o], v, 1);
  long got = zc_option_get((zc_option_t)o);
  if (got != want) {
    printf("%s=%s: the option is %ld (the code does not read this name)\n", names[o], v, got);
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s README.md include/zcmem.h\n", argv[0]);
    return 2;
  }
  char *readme = slurp(argv[1]), *header = slurp(argv[2]);
  CHECKF(readme && header, "cannot read %s or %s", argv[1], argv[2]);
  if (!readme || !header) return check_exit("core_options_doc");
  for (int o = 0; o < (int)zc_option_count; o++) doc[o].max = -1;
  read_readme(readme);
  read_header(header);
  for (int o = 0; o < (int)zc_option_count; o++) {
    CHECKF(doc[o].rows == 1, "README: %d rows for %s, want 1", doc[o].rows, names[o]);
    CHECKF(doc[o].max >= 0, "README: no maximum for %s", names[o]);
    if (doc[o].max < 0) continue;
    long v = -1;
    char above[32];
    snprintf(above, sizeof above, "%ld", doc[o].max + 1);
    CHECKF(!zc_option_parse((zc_option_t)o, above, &v), "%s: %s is accepted, above the documented maximum %ld",
           names[o], above, doc[o].max);
  }

  child_result_t r = run_child(defaults_child, NULL, 30);
  CHECKF(child_exited(&r, 0), "defaults differ from the docs:\n%s%s", r.out, r.err);
  child_result_free(&r);
  for (int o = 0; o < (int)zc_option_count; o++) {
    r = run_child(name_child, (void *)(intptr_t)o, 30);
    CHECKF(child_exited(&r, 0), "%s: %s%s", names[o], r.out, r.err);
    child_result_free(&r);
  }
  if (check_failures == 0)
    printf("%d options: README rows, defaults (README and zcmem.h), names and maxima match the code\n",
         (int)zc_option_count);
  free(readme);
  free(header);
  return check_exit("core_options_doc");
}
