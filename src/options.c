/* Options and messages. Every ZCMEM_* variable lives in one table (name, default, meaning, kind); the
 * environment is read once, on first use, without malloc. Values accept decimal numbers with K/M/G/T
 * suffixes (powers of 1024) and, for switches, 1/0 true/false on/off yes/no. A bad value keeps the default
 * and prints a warning naming the variable.
 */
#include "options.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum { OPT_BOOL, OPT_NUM, OPT_SIZE } opt_kind_t;

/* The name is kept in the table, not pointed to: zc_options_init reads every name at the first malloc, and
 * a name in .rodata faulted in the library's read-only data (40 KiB with the unwind tables beside it: the
 * kernel maps a file's cached pages up to 64 KiB around a fault) in every process (docs/design.md, "What a
 * process pays before it holds data"). */
typedef struct {
  char name[24];
  long value;
  opt_kind_t kind;
  long max;
  const char *doc;
} option_desc_t;

static option_desc_t options[zc_option_count] = {
    [zc_option_stats] = {"ZCMEM_STATS", 0, OPT_NUM, 2, "0 off, 1 summary on stderr at exit, 2 JSON at exit"},
    [zc_option_purge_delay] = {"ZCMEM_PURGE_DELAY", 100, OPT_NUM, 3600000, "ms before an empty page is purged"},
    [zc_option_purge_mode] = {"ZCMEM_PURGE_MODE", 0, OPT_NUM, 1, "0 MADV_DONTNEED, 1 MADV_FREE"},
    [zc_option_dirty_budget] = {"ZCMEM_DIRTY_BUDGET", 8L << 20, OPT_SIZE, 1L << 40, "floor of the process-wide budget of empty pages kept resident"},
    [zc_option_large_cache] = {"ZCMEM_LARGE_CACHE", 1L << 30, OPT_SIZE, 1L << 44, "bytes of freed large regions kept"},
    [zc_option_large_file] = {"ZCMEM_LARGE_FILE", 0, OPT_BOOL, 1, "back large regions by an unlinked file"},
    [zc_option_background] = {"ZCMEM_BACKGROUND", 1, OPT_BOOL, 1, "run the background purger thread"},
    [zc_option_verbose] = {"ZCMEM_VERBOSE", 0, OPT_NUM, 2, "0 errors, 1 warnings, 2 info"},
    [zc_option_abort_on_error] = {"ZCMEM_ABORT_ON_ERROR", 1, OPT_BOOL, 1, "abort() after reporting a bad free"},
    [zc_option_huge_pages] = {"ZCMEM_HUGE_PAGES", 0, OPT_BOOL, 1, "transparent huge pages for segments"},
    [zc_option_borrow] = {"ZCMEM_BORROW", 8, OPT_NUM, 8, "a malloc of over 2 KiB (to 64 KiB) may take a free block this many classes up"},
};

static _Atomic int options_state; /* 0 unread, 1 reading, 2 read */
static _Atomic unsigned long error_count;

/* A value: for switches and numbers a yes/no word, else decimal digits, then for sizes one suffix
 * (K, M, G or T, optionally followed by i and/or B, any case: powers of 1024). Anything else fails: empty,
 * a sign, spaces, hex, junk after the number, a suffix on a plain number, a value above the option's
 * maximum. The maximum is checked before every step (digit or suffix), so no value can wrap around: 2^64
 * written as 16777216T fails instead of parsing as 0. */
static bool parse_value(const option_desc_t *d, const char *s, long *out) {
  if (d->kind == OPT_BOOL || d->kind == OPT_NUM) {
    /* not in .rodata either (see option_desc_t): a process that sets a ZCMEM_ number reads them */
    __attribute__((section(".data.rel.ro"))) static const char yes[3][6] = {"true", "on", "yes"},
                                                              no[3][6] = {"false", "off", "no"};
    for (int i = 0; i < 3; i++) {
      if (strcasecmp(s, yes[i]) == 0) return *out = 1, true;
      if (strcasecmp(s, no[i]) == 0) return *out = 0, true;
    }
  }
  if (*s < '0' || *s > '9') return false;
  const unsigned long long max = (unsigned long long)d->max; /* d->max >= 0 and below 2^63 */
  unsigned long long v = 0;
  for (; *s >= '0' && *s <= '9'; s++) {
    unsigned digit = (unsigned)(*s - '0');
    if (v > max / 10 || v * 10 + digit > max) return false; /* v * 10 <= max < 2^63: no wrap */
    v = v * 10 + digit;
  }
  if (*s != 0 && d->kind == OPT_SIZE) {
    unsigned shift;
    switch (*s | 0x20) {
      case 'k': shift = 10; break;
      case 'm': shift = 20; break;
      case 'g': shift = 30; break;
      case 't': shift = 40; break;
      default: return false;
    }
    s++;
    if ((*s | 0x20) == 'i') s++;
    if ((*s | 0x20) == 'b') s++;
    if (v > (max >> shift)) return false; /* v << shift > max, or would wrap */
    v <<= shift;
  }
  if (*s != 0) return false;
  *out = (long)v;
  return true;
}

bool zc_option_parse(zc_option_t opt, const char *s, long *out) {
  if ((unsigned)opt >= zc_option_count || s == NULL) return false;
  return parse_value(&options[opt], s, out);
}

static void message_str(const char *kind, const char *text);
static void bad_option(const option_desc_t *d, const char *s) {
  char line[256];
  zc_format(line, sizeof line, "%s=%s is not valid (%s); keeping %ld", d->name, s, d->doc, d->value);
  message_str("warning", line);
}

void zc_options_init(void) {
  int expect = 0;
  if (!atomic_compare_exchange_strong(&options_state, &expect, 1)) {
    while (atomic_load(&options_state) != 2) {
    }
    return;
  }
  for (int i = 0; i < zc_option_count; i++) {
    const char *s = zc_os_getenv(options[i].name);
    if (s == NULL || *s == 0) continue;
    long v;
    if (parse_value(&options[i], s, &v)) options[i].value = v;
    else bad_option(&options[i], s);
  }
  atomic_store(&options_state, 2);
  if (options[zc_option_verbose].value >= 2) { /* the options in effect, once (ZCMEM_VERBOSE=2) */
    char line[480];
    size_t n = zc_format(line, sizeof line, "options:");
    for (int i = 0; i < zc_option_count && n < sizeof line; i++)
      n += zc_format(line + n, sizeof line - n, " %s=%ld", options[i].name, options[i].value);
    message_str("info", line);
  }
}

long zc_opt(zc_option_t opt) {
  if (__builtin_expect(atomic_load_explicit(&options_state, memory_order_acquire) != 2, 0)) zc_options_init();
  return __atomic_load_n(&options[opt].value, __ATOMIC_RELAXED); /* zc_option_set may change it at any time */
}

ZC_API long zc_option_get(zc_option_t opt) {
  if ((unsigned)opt >= zc_option_count) return -1;
  return zc_opt(opt);
}

ZC_API void zc_option_set(zc_option_t opt, long value) {
  if ((unsigned)opt >= zc_option_count || value < 0 || value > options[opt].max) return;
  zc_options_init();
  __atomic_store_n(&options[opt].value, value, __ATOMIC_RELAXED); /* read by other threads (the purger) */
}

/* ---- messages: a tiny formatter that never allocates ---- */

static void put(char *buf, size_t cap, size_t *len, char c) {
  if (*len + 1 < cap) buf[*len] = c;
  (*len)++;
}
static void put_str(char *buf, size_t cap, size_t *len, const char *s) {
  if (s == NULL) s = "(null)";
  while (*s) put(buf, cap, len, *s++);
}
static void put_num(char *buf, size_t cap, size_t *len, unsigned long long v, unsigned base, bool neg) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v % base];
    v /= base;
  } while (v != 0);
  if (neg) put(buf, cap, len, '-');
  while (n > 0) put(buf, cap, len, tmp[--n]);
}

size_t zc_vformat(char *buf, size_t cap, const char *fmt, va_list ap) {
  size_t len = 0;
  for (const char *f = fmt; *f; f++) {
    if (*f != '%') {
      put(buf, cap, &len, *f);
      continue;
    }
    f++;
    unsigned width = 0;
    while (*f >= '0' && *f <= '9') width = width * 10 + (unsigned)(*f++ - '0');
    int lng = 0;
    while (*f == 'l' || *f == 'z') lng = 1, f++;
    char tmp[64];
    size_t n = 0; /* the field is formatted into tmp, then right-aligned to width */
    switch (*f) {
      case 's': {
        const char *s = va_arg(ap, const char *);
        size_t sl = s ? strlen(s) : 6;
        for (; width > sl; width--) put(buf, cap, &len, ' ');
        put_str(buf, cap, &len, s);
        continue;
      }
      case 'd': {
        long long v = lng ? va_arg(ap, long) : va_arg(ap, int);
        put_num(tmp, sizeof tmp, &n, v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v, 10, v < 0);
        break;
      }
      case 'u': put_num(tmp, sizeof tmp, &n, lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned), 10, false); break;
      case 'x': put_num(tmp, sizeof tmp, &n, lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned), 16, false); break;
      case 'p':
        put_str(tmp, sizeof tmp, &n, "0x");
        put_num(tmp, sizeof tmp, &n, (uintptr_t)va_arg(ap, void *), 16, false);
        break;
      case '%': tmp[n++] = '%'; break;
      default: tmp[n++] = '?'; break;
    }
    for (; width > n; width--) put(buf, cap, &len, ' ');
    for (size_t i = 0; i < n; i++) put(buf, cap, &len, tmp[i]);
  }
  if (cap > 0) buf[len < cap ? len : cap - 1] = 0;
  return len;
}

size_t zc_format(char *buf, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t n = zc_vformat(buf, cap, fmt, ap);
  va_end(ap);
  return n;
}

static void message_str(const char *kind, const char *text) {
  char buf[512];
  size_t n = zc_format(buf, sizeof buf - 1, "zcmem: %s: %s\n", kind, text);
  zc_os_write(2, buf, n < sizeof buf - 1 ? n : sizeof buf - 2);
}

static void message(const char *kind, const char *fmt, va_list ap) {
  char buf[512];
  size_t n = zc_format(buf, sizeof buf, "zcmem: %s: ", kind);
  n += zc_vformat(buf + n, sizeof buf - n - 1, fmt, ap);
  if (n > sizeof buf - 2) n = sizeof buf - 2;
  buf[n++] = '\n';
  zc_os_write(2, buf, n);
}

void zc_error(const char *fmt, ...) {
  atomic_fetch_add_explicit(&error_count, 1, memory_order_relaxed);
  va_list ap;
  va_start(ap, fmt);
  message("error", fmt, ap);
  va_end(ap);
  if (zc_opt(zc_option_abort_on_error)) abort();
}

void zc_report(const char *fmt, ...) {
  atomic_fetch_add_explicit(&error_count, 1, memory_order_relaxed);
  va_list ap;
  va_start(ap, fmt);
  message("error", fmt, ap);
  va_end(ap);
}

void zc_warning(const char *fmt, ...) {
  if (zc_opt(zc_option_verbose) < 1) return;
  va_list ap;
  va_start(ap, fmt);
  message("warning", fmt, ap);
  va_end(ap);
}

unsigned long zc_error_count(void) { return atomic_load_explicit(&error_count, memory_order_relaxed); }
