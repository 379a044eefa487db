/* Options and messages: the ZCMEM_* environment variables, read once from one table, and the allocator's
 * only way to print (errors and warnings on stderr, formatted without malloc).
 *
 * Includes: os.h and the public zcmem.h (for zc_option_t). Every layer may use it; it uses no layer.
 */
#ifndef ZC_OPTIONS_H
#define ZC_OPTIONS_H

#include "zcmem.h"
#include "os.h"

#include <stdarg.h>

/* The value of an option; the first call reads the environment (cheap after that: one load). */
long zc_opt(zc_option_t opt);
/* Read every option now (idempotent). */
void zc_options_init(void);

/* Parse s as zc_options_init parses the value of opt's variable (store it in *out, true), without reading
 * or changing any option; false if zc_options_init would reject it (keep the default, warn). For tests. */
bool zc_option_parse(zc_option_t opt, const char *s, long *out);

/* A bad free (invalid or double, of any allocator of zcmem): print "zcmem: error: <message>\n" on stderr,
 * count it, and abort unless ZCMEM_ABORT_ON_ERROR=0 (the default is 1, as glibc). Formats with
 * %s %d %u %ld %lu %zu %p %x only; never allocates. */
void zc_error(const char *fmt, ...);
/* An error that is not the program's memory misuse (e.g. a channel's peer broke the protocol): the same
 * line and count, never an abort. */
void zc_report(const char *fmt, ...);
/* "zcmem: warning: <message>\n" when ZCMEM_VERBOSE >= 1: zcmem runs on, without something the options asked
 * for (a file for ZCMEM_LARGE_FILE, huge pages, the background purger). Each caller warns once. */
void zc_warning(const char *fmt, ...);
/* Format into buf (at most cap bytes, always NUL-terminated); returns the length it wanted. */
size_t zc_vformat(char *buf, size_t cap, const char *fmt, va_list ap);
size_t zc_format(char *buf, size_t cap, const char *fmt, ...);

/* Number of errors reported so far. */
unsigned long zc_error_count(void);

#endif /* ZC_OPTIONS_H */
