/* Shared helpers of the benchmark programs: parameters, random numbers, size distributions, clocks,
 * resident memory, and the result-line protocol the runner (bench/run) parses.
 *
 * Invariant: a benchmark prints its results only through zb_report(), one line each:
 *   zcbench bench=<name> metric=<metric> value=<number> unit=<unit> better=<higher|lower>
 * and everything else it says goes to stderr, so stdout stays machine-readable.
 *
 * May include: the C library and POSIX headers only. The benchmarks are never linked against zcmem:
 * the allocator under test arrives by LD_PRELOAD, so this file must not name any allocator API. */
#ifndef ZCBENCH_COMMON_H
#define ZCBENCH_COMMON_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* ---- parameters: `-q` and key=value ---- */

/* Parse argv once at the start of main. `-q` selects the quick defaults. Exits with status 2 and a
 * message on a malformed argument. */
void zb_init(int argc, char **argv, const char *bench_name);
bool zb_quick(void);
/* A numeric parameter: the value given as key=value (K/M/G suffixes, powers of 1024), else `full` or
 * `quick` by mode. Exits with status 2 on a value that is not a number. */
uint64_t zb_param(const char *key, uint64_t full, uint64_t quick);
/* A string parameter, else `dflt`. */
const char *zb_param_str(const char *key, const char *dflt);
/* Call after reading every parameter: an unknown key is an error (catches typos in the runner's table). */
void zb_params_done(void);

/* ---- output ---- */
void zb_report(const char *metric, double value, const char *unit, bool higher_is_better);
/* Print a message to stderr and exit with status 1: a failed data check or a NULL from malloc. */
void zb_die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* malloc that dies on NULL (a benchmark has no way to go on without its memory). */
void *zb_xmalloc(size_t size);

/* ---- time and memory ---- */
double zb_now(void);            /* monotonic seconds */
/* Start n threads running fn((void *)i) that each wait on *start (initialised here for n + 1) before their
 * work; returns the seconds from releasing them to the last join. */
double zb_run_threads(unsigned n, void *(*fn)(void *), pthread_barrier_t *start);
size_t zb_rss_bytes(void);      /* resident set size from /proc/self/statm */
void zb_sleep(double seconds);

/* ---- the measured phase: secondary metrics per operation ---- */

/* Mark the start and the end of the measured phase, from any one thread. zb_phase_end(ops) reports
 *   ops_done       the operations of the phase (the unit is the program's: a message, a malloc/free pair,
 *                  a buffer), so the runner can divide counts it took from outside (system calls) by it;
 *   faults_per_op  minor page faults of the whole process during the phase (getrusage: every thread,
 *                  exited ones too) per operation;
 *   cpu_us_per_op  user + system CPU time of the process during the phase per operation, microseconds.
 * Each mark also makes one faccessat() call on a path that does not exist ("/zcbench-phase/begin",
 * ".../end"), which the runner's strace pass uses to count only the phase's system calls. */
void zb_phase_begin(void);
void zb_phase_end(uint64_t ops);

/* ---- random numbers: splitmix64, one state per thread, deterministic from the seed ---- */
typedef struct { uint64_t s; } zb_rng;

static inline uint64_t zb_rand(zb_rng *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static inline zb_rng zb_rng_seed(uint64_t seed) {
  zb_rng r = {seed * 0x2545f4914f6cdd1dull + 1};
  zb_rand(&r);
  return r;
}
/* Uniform in [0, n); n > 0. The multiply-shift maps 64 random bits onto the range without division. */
static inline uint64_t zb_below(zb_rng *r, uint64_t n) {
  return (uint64_t)(((unsigned __int128)zb_rand(r) * n) >> 64);
}
/* True with probability pct/100. */
static inline bool zb_chance(zb_rng *r, unsigned pct) { return zb_below(r, 100) < pct; }

/* ---- size distributions (see docs/benchmarks.md for where each mix comes from) ---- */

/* Log-uniform in [lo, hi): a power-of-two band is picked uniformly, then a size uniformly inside it, so
 * every doubling gets the same share of allocations (density ~ 1/size). lo >= 1. */
size_t zb_size_loguniform(zb_rng *r, size_t lo, size_t hi);
/* Pareto with shape 1 (density ~ 1/size^2) and scale lo, cut at hi: median 2*lo, P(size > x) = lo/x.
 * The shape alloc-test (ITHare) uses for "most allocations are small". */
size_t zb_size_pareto(zb_rng *r, size_t lo, size_t hi);
/* Message sizes of the producer/consumer benchmarks: 90% in 32..256 B, 9% in 256 B..4 KiB, 1% in
 * 4..64 KiB, each band log-uniform. Mean about 450 B. */
size_t zb_size_message(zb_rng *r);

/* ---- payload checks: a block carries its size and a seed, the reader verifies them ---- */

/* Write a recognisable pattern into p[0..size): a 16-byte header (size, seed) when it fits, then the
 * seed's low byte in the rest. Touches every byte, as a real producer writing a message would. */
void zb_fill(void *p, size_t size, uint64_t seed);
/* Check the header and a few payload bytes (first, middle, last); dies with a message on a mismatch. */
void zb_check(const void *p, size_t size, uint64_t seed);

#endif
