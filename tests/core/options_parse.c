/* The ZCMEM_* value parser (src/options.c) against its contract: every size suffix (K M G T, with i and B,
 * any case), the exact maximum of each option accepted and one above it rejected, numbers that overflow 64
 * bits in digits or through a suffix (16777216T is 2^64: it used to parse as 0), signs, spaces, hex, junk,
 * suffixes on plain numbers, switch words. Then end to end: a child started with an overflowing value keeps
 * the default and prints a warning naming the variable.
 *
 * Prefixed library, internal header options.h (zc_option_parse). Label sanitize. Args: none.
 */
#define _GNU_SOURCE
#include "check.h"
#include "options.h"

typedef struct {
  zc_option_t opt;
  const char *s;
  bool ok;
  long want;
} parse_case_t;

#define K 1024L
#define SIZE zc_option_large_cache /* size option, max 2^44 */
#define DIRTY zc_option_dirty_budget /* size option, max 2^40 */
#define NUM zc_option_purge_delay  /* plain number, max 3600000 */
#define BOOL zc_option_background  /* switch, max 1 */

static const parse_case_t cases[] = {
    /* suffixes, every spelling */
    {SIZE, "0", true, 0},
    {SIZE, "12345", true, 12345},
    {SIZE, "3k", true, 3 * K},
    {SIZE, "3K", true, 3 * K},
    {SIZE, "3KB", true, 3 * K},
    {SIZE, "3kib", true, 3 * K},
    {SIZE, "3KiB", true, 3 * K},
    {SIZE, "3Ki", true, 3 * K},
    {SIZE, "5m", true, 5 * K * K},
    {SIZE, "5MiB", true, 5 * K * K},
    {SIZE, "7g", true, 7 * K * K * K},
    {SIZE, "7GB", true, 7 * K * K * K},
    {SIZE, "2t", true, 2 * K * K * K * K},
    {SIZE, "2TiB", true, 2 * K * K * K * K},
    {SIZE, "0T", true, 0},
    /* the maximum (2^44) exactly, and just above, in every unit */
    {SIZE, "16T", true, 1L << 44},
    {SIZE, "16384G", true, 1L << 44},
    {SIZE, "17592186044416", true, 1L << 44},
    {SIZE, "17592186044417", false, 0},
    {SIZE, "17T", false, 0},
    {SIZE, "16385G", false, 0},
    {SIZE, "16777217M", false, 0},
    {SIZE, "17179869185K", false, 0},
    {DIRTY, "1T", true, 1L << 40},
    {DIRTY, "1025G", false, 0},
    /* wrap-around through a suffix or the digits */
    {SIZE, "16777216T", false, 0},       /* 2^64: used to parse as 0 */
    {SIZE, "16777217T", false, 0},       /* 2^64 + 2^40 */
    {SIZE, "17179869184G", false, 0},    /* 2^64 */
    {SIZE, "17592186044416M", false, 0}, /* 2^64 */
    {SIZE, "18014398509481984K", false, 0},
    {SIZE, "18446744073709551616", false, 0}, /* 2^64 */
    {SIZE, "18446744073709551615", false, 0},
    {SIZE, "9223372036854775807", false, 0},
    {SIZE, "9223372036854775808", false, 0},
    {SIZE, "99999999999999999999999999999999", false, 0},
    {SIZE, "00000000000000000000000000000042K", true, 42 * K},
    /* signs, spaces, hex, junk */
    {SIZE, "-1", false, 0},
    {SIZE, "-0", false, 0},
    {SIZE, "+5", false, 0},
    {SIZE, " 5", false, 0},
    {SIZE, "5 ", false, 0},
    {SIZE, "5 K", false, 0},
    {SIZE, "0x10", false, 0},
    {SIZE, "1e6", false, 0},
    {SIZE, "1.5G", false, 0},
    {SIZE, "K", false, 0},
    {SIZE, "", false, 0},
    {SIZE, "5KK", false, 0},
    {SIZE, "5KiBB", false, 0},
    {SIZE, "5Q", false, 0},
    {SIZE, "5B", false, 0},
    {SIZE, "5iB", false, 0},
    {SIZE, "yes", false, 0},
    /* plain numbers take no suffix and stop at their maximum */
    {NUM, "250", true, 250},
    {NUM, "3600000", true, 3600000},
    {NUM, "3600001", false, 0},
    {NUM, "1K", false, 0},
    {NUM, "-5", false, 0},
    {NUM, "99999999999999999999", false, 0},
    {NUM, "on", true, 1},
    {NUM, "off", true, 0},
    /* switches */
    {BOOL, "1", true, 1},
    {BOOL, "0", true, 0},
    {BOOL, "2", false, 0},
    {BOOL, "TRUE", true, 1},
    {BOOL, "No", true, 0},
    {BOOL, "yes please", false, 0},
    {BOOL, "1K", false, 0},
    {zc_option_verbose, "2", true, 2},
    {zc_option_verbose, "3", false, 0},
};

typedef struct {
  const char *env, *name;
  zc_option_t opt;
  long want; /* the default */
} env_case_t;

static int env_child(void *arg) {
  const env_case_t *c = arg;
  putenv((char *)c->env);
  long got = zc_option_get(c->opt);
  if (got != c->want) {
    fprintf(stdout, "with %s the option is %ld, want the default %ld\n", c->env, got, c->want);
    return 1;
  }
  return 0;
}

int main(void) {
  int n = (int)(sizeof cases / sizeof cases[0]);
  for (int i = 0; i < n; i++) {
    long v = -12345;
    bool ok = zc_option_parse(cases[i].opt, cases[i].s, &v);
    CHECKF(ok == cases[i].ok, "option %d \"%s\": parser says %s, want %s", cases[i].opt, cases[i].s,
           ok ? "valid" : "invalid", cases[i].ok ? "valid" : "invalid");
    if (ok && cases[i].ok) CHECKF(v == cases[i].want, "option %d \"%s\" parsed as %ld, want %ld", cases[i].opt,
                                  cases[i].s, v, cases[i].want);
    if (!ok) CHECKF(v == -12345, "option %d \"%s\": rejected but the output was written", cases[i].opt, cases[i].s);
  }
  long v;
  CHECK(!zc_option_parse(zc_option_count, "1", &v));
  CHECK(!zc_option_parse(SIZE, NULL, &v));
  printf("parser: %d cases\n", n);

  /* End to end: the environment is read once, in a fresh child (this process never read it). */
  static const env_case_t envs[] = {
      {"ZCMEM_LARGE_CACHE=16777216T", "ZCMEM_LARGE_CACHE", zc_option_large_cache, 1L << 30},
      {"ZCMEM_DIRTY_BUDGET=18446744073709551616", "ZCMEM_DIRTY_BUDGET", zc_option_dirty_budget, 8L << 20},
      {"ZCMEM_DIRTY_BUDGET=-1", "ZCMEM_DIRTY_BUDGET", zc_option_dirty_budget, 8L << 20},
      {"ZCMEM_PURGE_DELAY=99999999999999999999", "ZCMEM_PURGE_DELAY", zc_option_purge_delay, 100},
  };
  for (unsigned i = 0; i < sizeof envs / sizeof *envs; i++) {
    child_result_t r = run_child(env_child, (void *)&envs[i], 30);
    char st[64];
    CHECKF(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s: child %s (default not kept)", envs[i].env,
           status_str(r.status, st, sizeof st));
    char want[128];
    snprintf(want, sizeof want, "zcmem: warning: %s", envs[i].env);
    CHECKF(strstr(r.err, want) != NULL, "%s: no warning naming it; stderr:\n%s", envs[i].env, r.err);
    if (i == 0) printf("%.*s\n", (int)strcspn(r.err, "\n"), r.err);
    child_result_free(&r);
  }
  return check_exit("core_options_parse");
}
