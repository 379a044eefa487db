/* Test cases by name, and the command line of the test programs.
 *
 *   static const zc_case_t cases[] = {{"sizes", case_sizes}, {"reuse", case_reuse}, {NULL, NULL}};
 *   int main(int argc, char **argv) { return zc_run_case(argc, argv, cases); }
 *
 * `prog NAME [args]` runs case NAME with (argc - 1, argv + 1): its argv[0] is NAME. An unknown name, or
 * none, prints the known names and exits 2: a case renamed in CMake but not in the table fails instead of
 * passing without running anything.
 * quick_mode(): `--quick` on the command line or ZC_TEST_QUICK=1 (shorter loops).
 * Includes: libc only. Header-only.
 */
#ifndef ZC_TEST_CASES_H
#define ZC_TEST_CASES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *name;
  int (*fn)(int argc, char **argv);
} zc_case_t;

static inline int zc_run_case(int argc, char **argv, const zc_case_t *cases) {
  if (argc >= 2)
    for (const zc_case_t *c = cases; c->name; c++)
      if (strcmp(c->name, argv[1]) == 0) return c->fn(argc - 1, argv + 1);
  fprintf(stderr, "%s: %s case%s%s; known cases:", argv[0], argc >= 2 ? "unknown" : "no", argc >= 2 ? " " : "",
          argc >= 2 ? argv[1] : "");
  for (const zc_case_t *c = cases; c->name; c++) fprintf(stderr, " %s", c->name);
  fputc('\n', stderr);
  return 2;
}

static inline int quick_mode(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--quick") == 0) return 1;
  const char *e = getenv("ZC_TEST_QUICK");
  return e && *e && strcmp(e, "0") != 0;
}

/* Value of a `key=value` argument, or def. */
static inline unsigned long long arg_value(int argc, char **argv, const char *key, unsigned long long def) {
  size_t kl = strlen(key);
  for (int i = 1; i < argc; i++)
    if (strncmp(argv[i], key, kl) == 0 && argv[i][kl] == '=') return strtoull(argv[i] + kl + 1, NULL, 0);
  return def;
}

/* 1 if the flag (e.g. "--expect-zcmem") is on the command line. */
static inline int arg_flag(int argc, char **argv, const char *flag) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], flag) == 0) return 1;
  return 0;
}

#endif /* ZC_TEST_CASES_H */
