/* Layer 2, segments: the segment map. One byte for every 4 MiB of address space says whether zcmem owns
 * that chunk and where the header of the mapping that covers it starts. free() reads it before touching
 * any metadata, so a pointer zcmem did not hand out is recognised (and reported) instead of followed.
 *
 * Includes: os.h only. Used by the segment layer (small/medium pages) and the large-region layer.
 *
 * Encoding of zc_segmap[addr >> ZC_SEGMENT_SHIFT] (16 bits):
 *   0                    not zcmem's
 *   ZC_MAP_SEGMENT (1)   a small/medium segment starts here (its header is at the chunk's base); its owner
 *                        is in the header (a medium segment, an abandoned one, or an owner with no tag)
 *   ZC_MAP_LARGE (2)     a large region's header is at the chunk's base
 *   ZC_MAP_BACK + k      interior chunk of a large region: its header is k+1 chunks lower (k <= 250);
 *                        at k == 250 the walk continues from the chunk 251 lower.
 *   ZC_MAP_OWNED + id    a small segment owned by heap id: its owner's thread keeps the same value in a
 *                        thread-local, so free's one compare says "zcmem's, a small segment, and mine".
 *   ZC_MAP_OWNED + ZC_MAP_MEDIUM_BIAS + id   a medium segment owned by heap id: the owner's free finds it
 *                        by one more compare (the thread-local plus the bias) on its out-of-line path.
 * The map is a zero-initialised array in .bss: untouched parts cost address space, never memory (128 MiB of
 * address space for a 48-bit user address space, about 4 KiB resident per 8 GiB of mapped heap).
 */
#ifndef ZC_SEGMAP_H
#define ZC_SEGMAP_H

#include <stddef.h>
#include <stdint.h>

#include "os.h"

#define ZC_SEGMENT_SHIFT 22u
#define ZC_SEGMENT_SIZE ((size_t)1 << ZC_SEGMENT_SHIFT) /* 4 MiB */
#define ZC_SEGMENT_MASK (ZC_SEGMENT_SIZE - 1)
#define ZC_ADDRESS_BITS 48u
#define ZC_SEGMAP_ENTRIES ((size_t)1 << (ZC_ADDRESS_BITS - ZC_SEGMENT_SHIFT))

_Static_assert(((uintptr_t)1 << ZC_ADDRESS_BITS) == ZC_OS_ADDRESS_LIMIT, "the map covers every address zcmem maps");

enum {
  ZC_MAP_NONE = 0, ZC_MAP_SEGMENT = 1, ZC_MAP_LARGE = 2, ZC_MAP_BACK = 3, ZC_MAP_BACK_MAX = 250,
  ZC_MAP_OWNED = 256,     /* + heap id: an owned small segment */
  ZC_MAP_TAG_NONE = 0xFFFF, /* never in the map: the thread-local tag of a thread without a heap */
  ZC_MAP_MEDIUM_BIAS = (ZC_MAP_TAG_NONE - ZC_MAP_OWNED) / 2 /* + a small tag: the same heap's medium segment */
};
/* Heap ids below it get a tag; the others free through the header's owner. Smaller only in a test build
 * (-DZC_MAP_OWNED_MAX=2: tests/core runs with most heaps untagged). */
#ifndef ZC_MAP_OWNED_MAX
#define ZC_MAP_OWNED_MAX ZC_MAP_MEDIUM_BIAS
#endif
_Static_assert(ZC_MAP_OWNED_MAX <= ZC_MAP_MEDIUM_BIAS && ZC_MAP_OWNED + 2 * ZC_MAP_MEDIUM_BIAS <= ZC_MAP_TAG_NONE,
               "small tags, medium tags and the no-tag value never meet");

/* Zeroed arrays of the core that would sit between the small statics every process touches (locks, the
 * purge policy, the purger's state) are put in common storage, which the linker places after every .bss
 * section: those statics then share one OS page instead of being spread over four (docs/design.md, "What a
 * process pays before it holds data"). The map stays in .bss, first of its file: its first entries, which
 * free(NULL) reads, share the OS page of the end of .data. Each such name is defined once (a second common
 * definition of the same name would be merged silently). */
#if defined(__GNUC__)
#define ZC_BSS_LAST __attribute__((common))
#else
#define ZC_BSS_LAST
#endif

extern uint16_t zc_segmap[ZC_SEGMAP_ENTRIES];

/* A map value that stands for a small or medium segment's header (owned by a tag or not). */
static inline int zc_map_is_segment(uint16_t v) { return v == ZC_MAP_SEGMENT || v >= ZC_MAP_OWNED; }

/* The map byte for p; ZC_MAP_NONE for a pointer with bits above the 48-bit user address space (5-level
 * paging or arm64 52-bit addresses, kernel addresses, garbage such as 0xdeadbeef00000000): zcmem never maps
 * memory there (the platform layer refuses such mappings), so such a pointer is never ours and must not be
 * folded onto the entry of its low bits and followed. One compare on the fast path: the index is the
 * pointer's high bits, and an index past the map's end is out of range. */
static inline uint16_t zc_segmap_get(const void *p) {
  uintptr_t i = (uintptr_t)p >> ZC_SEGMENT_SHIFT;
  if (__builtin_expect(i >= ZC_SEGMAP_ENTRIES, 0)) return ZC_MAP_NONE;
  return __atomic_load_n(&zc_segmap[i], __ATOMIC_RELAXED);
}

/* The base of the mapping whose header covers p (p's kind is returned in *kind), or NULL if not ours. */
static inline void *zc_segmap_header(const void *p, uint8_t *kind) {
  uintptr_t u = (uintptr_t)p;
  if (u >> ZC_ADDRESS_BITS) return NULL;
  size_t i = u >> ZC_SEGMENT_SHIFT;
  uint16_t v = __atomic_load_n(&zc_segmap[i], __ATOMIC_RELAXED);
  while (v >= ZC_MAP_BACK && v < ZC_MAP_OWNED) {
    i -= (size_t)(v - ZC_MAP_BACK) + 1;
    v = __atomic_load_n(&zc_segmap[i], __ATOMIC_RELAXED);
  }
  if (v >= ZC_MAP_OWNED) v = ZC_MAP_SEGMENT;
  *kind = (uint8_t)v;
  return v == ZC_MAP_NONE ? NULL : (void *)(i << ZC_SEGMENT_SHIFT);
}

/* Mark [base, base+size) as one mapping of the given kind (base is 4 MiB-aligned). */
static inline void zc_segmap_set(void *base, size_t size, uint16_t kind) {
  size_t first = (uintptr_t)base >> ZC_SEGMENT_SHIFT;
  size_t n = (size + ZC_SEGMENT_MASK) >> ZC_SEGMENT_SHIFT;
  for (size_t j = 1; j < n; j++) {
    size_t back = (j - 1) % (ZC_MAP_BACK_MAX + 1);
    __atomic_store_n(&zc_segmap[first + j], (uint16_t)(ZC_MAP_BACK + back), __ATOMIC_RELAXED);
  }
  __atomic_store_n(&zc_segmap[first], kind, __ATOMIC_RELEASE);
}

/* A segment changes owner: its one entry gets the new value (the segment stays mapped). */
static inline void zc_segmap_retag(void *base, uint16_t v) {
  __atomic_store_n(&zc_segmap[(uintptr_t)base >> ZC_SEGMENT_SHIFT], v, __ATOMIC_RELEASE);
}

static inline void zc_segmap_clear(void *base, size_t size) {
  size_t first = (uintptr_t)base >> ZC_SEGMENT_SHIFT;
  size_t n = (size + ZC_SEGMENT_MASK) >> ZC_SEGMENT_SHIFT;
  for (size_t j = 0; j < n; j++) __atomic_store_n(&zc_segmap[first + j], ZC_MAP_NONE, __ATOMIC_RELAXED);
}

#endif /* ZC_SEGMAP_H */
