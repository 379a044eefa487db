/* Layer 3, size classes: 48 classes from 8 B to 64 KiB. Word-exact up to 64 B (8, 16, ..., 64), then four
 * classes per doubling (80, 96, 112, 128, 160, ...), so a request wastes at most 25% just above a power of
 * two and at most 12.5% on average over a doubling; 0 is served as 8. Size to class is O(1): a shift for
 * word sizes, one bit-scan and two shifts above; no table walk.
 *
 * Includes: nothing of zcmem. Used by the page/heap layers and by anyone who needs the class grid
 * (the zero-copy channel sizes its slots with it).
 */
#ifndef ZC_SIZECLASS_H
#define ZC_SIZECLASS_H

#include <stddef.h>
#include <stdint.h>

#define ZC_CLASS_COUNT 49u                   /* class 0 is unused: index 1..48 */
#define ZC_SMALL_MAX ((size_t)64 * 1024)     /* the largest class; larger requests are large regions */
#define ZC_DIRECT_MAX ((size_t)1024)         /* sizes the heap's direct table serves */
#define ZC_MEDIUM_MIN_CLASS 37u              /* first class (10 KiB) that lives in 512 KiB pages */

extern const uint32_t zc_class_size[ZC_CLASS_COUNT];

static inline unsigned zc_size_class(size_t n) {
  if (n <= 64) return n <= 8 ? 1u : (unsigned)((n + 7) >> 3);
  size_t w = n - 1;
  unsigned b = 63u - (unsigned)__builtin_clzll((unsigned long long)w); /* n in (2^b, 2^(b+1)] */
  return 9u + ((b - 6u) << 2) + (unsigned)((w >> (b - 2u)) & 3u);
}

static inline size_t zc_class_block_size(unsigned c) { return zc_class_size[c]; }

#endif /* ZC_SIZECLASS_H */
