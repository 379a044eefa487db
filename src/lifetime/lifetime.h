/* Layer 8, lifetime allocators: what pool.c, pages.c and ring.c share. Small helpers and the chunk
 * registry, which records every 4 MiB-aligned chunk the counted-pages allocator maps so that a free by
 * pointer alone can tell "one of ours" from any other address before it reads a header.
 *
 * Includes: os.h and options.h (layer 1 and the message/option helpers). Never the heap layer's
 * internals: the lifetime allocators take their memory straight from the platform layer.
 *
 * Registry invariant: an entry is set before the chunk's first object is handed out and cleared before the
 * chunk is unmapped, so a lookup that says "registered" for an address that the caller still owns points
 * at a mapped, initialised chunk header. Lookups are lock-free; updates take one global lock.
 */
#ifndef ZC_LIFETIME_H
#define ZC_LIFETIME_H

#include "os.h"
#include "options.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define zc_lt_likely(x) __builtin_expect(!!(x), 1)
#define zc_lt_unlikely(x) __builtin_expect(!!(x), 0)

#define ZC_LT_CHUNK_SHIFT 22u /* 4 MiB: counted-pages chunks and large objects are aligned to this */
#define ZC_LT_CHUNK_SIZE ((size_t)1 << ZC_LT_CHUNK_SHIFT)
#define ZC_LT_CHUNK_MASK (ZC_LT_CHUNK_SIZE - 1)
#define ZC_LT_ALIGN 16u /* default alignment of every object (max_align_t on x86-64 and arm64) */
#define ZC_LT_CACHE_LINE 64u

static inline size_t zc_lt_align_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }
static inline int zc_lt_is_pow2(size_t a) { return a != 0 && (a & (a - 1)) == 0; }

/* Round size up to the OS page; 0 on overflow. */
static inline size_t zc_lt_os_round(size_t size) {
  size_t pg = zc_os_page_size();
  if (size > SIZE_MAX - pg) return 0;
  return zc_lt_align_up(size, pg);
}

/* Raise *peak to v if v is larger (single writer or racy-but-monotonic readers). */
static inline void zc_lt_peak(uint64_t *peak, uint64_t v) {
  if (v > *peak) *peak = v;
}

/* ---- chunk registry (counted pages) ---- */
enum { ZC_LT_REG_NONE = 0, ZC_LT_REG_PAGES = 1 };

/* Record (kind != 0) or forget (kind == 0) the 4 MiB-aligned chunk at base. Returns false only when a
 * registry leaf could not be mapped (ENOMEM). */
bool zc_lt_registry_set(const void *base, uint8_t kind);
/* The kind recorded for the chunk that contains p (ZC_LT_REG_NONE if none). Lock-free. */
uint8_t zc_lt_registry_get(const void *p);

#endif /* ZC_LIFETIME_H */
