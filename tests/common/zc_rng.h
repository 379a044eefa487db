/* A deterministic PRNG (splitmix64 seeding a xorshift64* stream) and a seeded byte pattern: a block filled
 * with fill_pattern(p, n, seed) can be verified byte for byte later (by another thread or process) with
 * the same seed, so corruption is found without a sanitizer. fill_sparse/verify_sparse: the same pattern
 * at every stride-th byte only, for blocks of many MiB.
 * Includes: libc only. Header-only.
 */
#ifndef ZC_TEST_RNG_H
#define ZC_TEST_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct { uint64_t s; } rng_t;

static inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
static inline void rng_seed(rng_t *r, uint64_t seed) {
  r->s = splitmix64(seed);
  if (r->s == 0) r->s = 1;
}
static inline uint64_t rng_next(rng_t *r) {
  uint64_t x = r->s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  r->s = x;
  return x * 0x2545f4914f6cdd1dull;
}
/* Uniform in [lo, hi] (the modulo bias is negligible for test sizes). */
static inline uint64_t rng_range(rng_t *r, uint64_t lo, uint64_t hi) {
  return lo + rng_next(r) % (hi - lo + 1);
}

/* Byte i of the pattern of seed: a function of (seed, i) only, so any sub-range can be checked. */
static inline unsigned char pattern_byte(uint64_t seed, size_t i) {
  return (unsigned char)(splitmix64(seed ^ (i >> 3) * 0x9e3779b97f4a7c15ull) >> (8 * (i & 7)));
}
static inline void fill_pattern(void *p, size_t n, uint64_t seed) {
  unsigned char *b = p;
  for (size_t i = 0; i < n; i += 8) {
    uint64_t w = splitmix64(seed ^ (i >> 3) * 0x9e3779b97f4a7c15ull);
    for (size_t k = 0; k < 8 && i + k < n; k++) b[i + k] = (unsigned char)(w >> (8 * k));
  }
}
/* Index of the first byte that differs from the pattern, or -1 if all n bytes match. */
static inline long verify_pattern(const void *p, size_t n, uint64_t seed) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i += 8) {
    uint64_t w = splitmix64(seed ^ (i >> 3) * 0x9e3779b97f4a7c15ull);
    for (size_t k = 0; k < 8 && i + k < n; k++)
      if (b[i + k] != (unsigned char)(w >> (8 * k))) return (long)(i + k);
  }
  return -1;
}
/* For blocks too large to fill whole: the same pattern at every stride-th byte and at the last byte. */
static inline void fill_sparse(void *p, size_t n, uint64_t seed, size_t stride) {
  unsigned char *b = p;
  for (size_t i = 0; i < n; i += stride) b[i] = pattern_byte(seed, i);
  if (n) b[n - 1] = pattern_byte(seed, n - 1);
}
/* Index of the first of those bytes that differs, or -1. */
static inline long verify_sparse(const void *p, size_t n, uint64_t seed, size_t stride) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i += stride)
    if (b[i] != pattern_byte(seed, i)) return (long)i;
  return n && b[n - 1] != pattern_byte(seed, n - 1) ? (long)(n - 1) : -1;
}

/* 1 if all n bytes are zero. */
static inline int all_zero(const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i]) return 0;
  return 1;
}

#endif /* ZC_TEST_RNG_H */
