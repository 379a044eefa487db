/* Layer 6, large objects: the header at the base of every large region and its keyed check. Private to
 * large.c (and to tests that corrupt a header on purpose); the rest of zcmem sees only large.h.
 *
 * Includes: os.h. Used by: large.c, tests/large/test_large_hdr.c.
 *
 * Trust. The header sits just below the user's block, so a buffer underflow, or a stray write, reaches it
 * first; and its fields drive munmap and madvise (base and map_size), the class lists (cls) and the choice
 * between purge and unmap (flags). Two keyed checks, both with a per-process secret from the platform's
 * entropy, guard it:
 *  - mac: a keyed hash of the region's base, map_size, offset, flags and cls. Changing any of them without
 *    knowing the secret breaks it (a one-field change always does: every step of the hash is a bijection
 *    of that field). Re-sealed by zcmem after each change; checked before any of them is used to free,
 *    size, resize, move, reuse, purge or unmap the region. The state word and the cache links are not
 *    covered: the state changes by compare-and-swap, and a wrong state is reported as a double free.
 *  - canary: the 8 bytes right below a live block hold a keyed function of the block's address, so an
 *    underflow of even one byte (which reaches the canary before any header field) is caught on free,
 *    realloc and malloc_usable_size although it changed nothing the mac covers.
 * A region that fails either check is reported and never touched again: not freed, not unmapped (its
 * address space leaks, which is the safe side).
 */
#ifndef ZC_LARGE_REGION_H
#define ZC_LARGE_REGION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "os.h"

#define HDR_SIZE ((size_t)128) /* bytes reserved for the header; block offset >= this */

enum { ST_LIVE = 0x4c1u, ST_DIRTY = 0xd1u, ST_CLEAN = 0xc1u, ST_BUSY = 0xb5u };
enum {
  F_FILE = 1u,     /* backed by an unlinked file */
  F_STALE = 2u,    /* purged with MADV_FREE: may still read old bytes */
  F_RESIDENT = 4u, /* cached dirty: its pages may be resident */
  F_NOMOVE = 8u,   /* a move of its pages failed: made of several OS mappings, which this kernel cannot move as one */
};

typedef struct region_s region_t;
typedef struct rlink_s {
  region_t *next, *prev;
} rlink_t;

struct region_s {
  uint64_t mac;     /* region_mac() of the fields below and the base, with the secret */
  size_t map_size;  /* bytes mapped at base, a page multiple */
  size_t offset;    /* block start - base (valid while LIVE) */
  uint32_t state;   /* ST_*, changed with atomics */
  uint32_t flags;   /* F_* */
  uint32_t cls;     /* class it is cached under: the largest class whose size <= map_size */
  uint32_t gen;     /* the fork generation of the process that mapped it (large.c, lg_gen) */
  uint64_t stamp;   /* ns: when it entered its current cache list */
  rlink_t link[2];  /* L_CLASS: class list (also the BUSY victim chain); L_AGE: age list */
};
_Static_assert(sizeof(region_t) + sizeof(uint64_t) <= HDR_SIZE, "header and canary must fit below the block");

/* The per-process secret (nonzero once made); large.c owns it. */
uint64_t zc_large_secret(void);

static inline uint64_t region_mix(uint64_t h, uint64_t v, uint64_t k) {
  h = (h ^ v) * k;
  return h ^ (h >> 29);
}

/* The keyed hash of everything that drives a system call on the region. */
static inline uint64_t region_mac(const region_t *r, uint64_t secret) {
  uint64_t h = secret ^ (uint64_t)(uintptr_t)r;
  h = region_mix(h, r->map_size, 0x9e3779b97f4a7c15ull);
  h = region_mix(h, r->offset, 0xbf58476d1ce4e5b9ull);
  h = region_mix(h, ((uint64_t)r->cls << 32) | r->flags, 0x94d049bb133111ebull);
  h = region_mix(h, r->gen, 0x2545f4914f6cdd1dull);
  return region_mix(h, secret, 0xd6e8feb86659fd93ull);
}

/* The canary value for a block at address b. */
static inline uint64_t region_canary(const void *b, uint64_t secret) {
  return region_mix(secret ^ 0x5bd1e9955bd1e995ull, (uint64_t)(uintptr_t)b, 0x9e3779b97f4a7c15ull);
}

/* ---- the checks, for large.c ---- */

/* After zcmem changed a field the mac covers. */
static inline void seal(region_t *r) { r->mac = region_mac(r, zc_large_secret()); }

/* The header's fields are the ones zcmem last sealed (so offset, map_size, cls can be trusted). */
static inline bool region_valid(const region_t *r) {
  return r != NULL && r->mac == region_mac(r, zc_large_secret());
}

static inline uint32_t region_state(const region_t *r) { return __atomic_load_n(&r->state, __ATOMIC_ACQUIRE); }
static inline char *block_of(const region_t *r) { return (char *)r + r->offset; }

/* The canary right below the block (r valid). */
static inline void set_canary(region_t *r) {
  char *b = block_of(r);
  uint64_t c = region_canary(b, zc_large_secret());
  memcpy(b - sizeof c, &c, sizeof c);
}
static inline bool canary_ok(const region_t *r) {
  const char *b = block_of(r);
  uint64_t c;
  memcpy(&c, b - sizeof c, sizeof c);
  return c == region_canary(b, zc_large_secret());
}

/* p is the start of the live block of the region at hdr, and neither header nor canary was overwritten. */
static inline bool live_block(const region_t *r, const void *p) {
  return region_valid(r) && region_state(r) == ST_LIVE && p == block_of(r) && canary_ok(r);
}

#endif /* ZC_LARGE_REGION_H */
