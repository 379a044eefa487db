/* Layer 3, size classes: 44 classes from 16 B to 64 KiB: every multiple of 16 up to 64 (16, 32, 48, 64),
 * then four classes per doubling (80, 96, 112, 128, 160, ...). Every block is a multiple of 16 bytes, so
 * every request is 16-aligned (C23: max_align_t is 16 on x86-64 and arm64), and every block has room for
 * a link and a tag while it is free (types.h). A request wastes at most 25% just above a power of two and
 * at most 12.5% on average over a doubling above 64 B; below, up to 15 bytes (17 B is served as 32, as in
 * glibc; 1..16 B as 16). 0 is served as 16. Size to class is O(1): a shift up to 64 B, one bit-scan and
 * two shifts above; no table walk. *
 * Includes: nothing of zcmem. Used by the page/heap layers and by anyone who needs the class grid
 * (the zero-copy channel sizes its slots with it).
 */
#ifndef ZC_SIZECLASS_H
#define ZC_SIZECLASS_H

#include <stddef.h>
#include <stdint.h>

#define ZC_CLASS_COUNT 45u                   /* class 0 is unused: index 1..44 */
#define ZC_SMALL_MAX ((size_t)64 * 1024)     /* the largest class; larger requests are large regions */
#define ZC_DIRECT_MAX ((size_t)1024)         /* sizes the heap's direct table serves */
#define ZC_MEDIUM_MIN_CLASS 33u              /* first class (10 KiB) that lives in 128 KiB pages */
/* First class (2.5 KiB) whose malloc, when its class has no free block, may take an already carved free
 * block of one of the next ZCMEM_BORROW classes up before it carves fresh memory (src/borrow.c). From it
 * on, carving gives one block per slow path (alloc.c carves 4 KiB at a time), so a borrow costs the
 * borrower no more slow paths than the carve it saves. From the 1 KiB class on: no fewer faults on
 * bench/xmalloc, and bench/prodcons spent 5.8% more instructions in the allocator instead of 3.4%. */
#define ZC_BORROW_MIN_CLASS 25u

extern const uint32_t zc_class_size[ZC_CLASS_COUNT];

/* The class of n > 64 (a caller that knows it saves the test). */
static inline unsigned zc_size_class_above64(size_t n) {
  size_t w = n - 1;
  unsigned b = 63u - (unsigned)__builtin_clzll((unsigned long long)w); /* n in (2^b, 2^(b+1)] */
  return 5u + ((b - 6u) << 2) + (unsigned)((w >> (b - 2u)) & 3u);
}

static inline unsigned zc_size_class(size_t n) {
  if (n <= 64) return n <= 16 ? 1u : (unsigned)((n + 15) >> 4);
  return zc_size_class_above64(n);
}

static inline size_t zc_class_block_size(unsigned c) { return zc_class_size[c]; }

#endif /* ZC_SIZECLASS_H */
