/* Clocks for the tests: monotonic time, sleeping through EINTR, and waiting (polling) until a condition
 * holds or a deadline passes. Tests never assert on durations (the machine is shared and noisy); they use
 * deadlines generous enough that only a broken library misses them.
 * Includes: libc and POSIX only. Header-only.
 */
#ifndef ZC_TEST_CLOCK_H
#define ZC_TEST_CLOCK_H

#include <errno.h>
#include <stdint.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
static inline uint64_t now_ms(void) { return now_ns() / 1000000u; }

static inline void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* WAIT_UNTIL(cond, timeout_ms): poll cond every 10 ms until it is true (the value is 1) or timeout_ms
 * passed (the value is 0, cond having been tested once more at the deadline). */
#define WAIT_UNTIL(cond, timeout_ms)                                                                \
  ({                                                                                                \
    uint64_t wu_end_ = now_ms() + (uint64_t)(timeout_ms);                                           \
    int wu_ok_;                                                                                     \
    for (;;) {                                                                                      \
      if ((wu_ok_ = !!(cond))) break;                                                               \
      if (now_ms() >= wu_end_) {                                                                    \
        wu_ok_ = !!(cond);                                                                          \
        break;                                                                                      \
      }                                                                                             \
      sleep_ms(10);                                                                                 \
    }                                                                                               \
    wu_ok_;                                                                                         \
  })

/* Until *p >= v (acquire loads; p may be shared with another process), *failed is non-zero (failed may be
 * NULL), or ms passed: 1 if reached. Yields first, then sleeps nap_us between looks, so a side waiting
 * here leaves the CPU to the other (2 cores shared by many processes). */
static inline int zc_wait_ge(const int *p, int v, const int *failed, int ms, int nap_us) {
  uint64_t end = now_ms() + (uint64_t)ms;
  for (int i = 0; __atomic_load_n(p, __ATOMIC_ACQUIRE) < v; i++) {
    if ((failed != NULL && __atomic_load_n(failed, __ATOMIC_ACQUIRE)) || now_ms() >= end)
      return __atomic_load_n(p, __ATOMIC_ACQUIRE) >= v;
    if (i < 100) sched_yield();
    else usleep((useconds_t)nap_us);
  }
  return 1;
}

#endif /* ZC_TEST_CLOCK_H */
