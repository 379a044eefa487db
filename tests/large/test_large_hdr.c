/* The large-region header's keyed checks (src/large_region.h) and invalid frees into large regions,
 * through the public prefixed API (zc_free, zc_realloc, zc_usable_size go through the segment map to
 * src/large.c), with ZCMEM_ABORT_ON_ERROR=0 so that every report is counted and the process goes on.
 *
 * Cases (one per process: test_large_hdr <case>):
 *   underflow  a buffer underflow of 1, 8, 9, 24, 48, 64 and 128 bytes below blocks of several sizes and
 *              alignments: usable_size, realloc and free each report it once (usable 0, realloc NULL with
 *              EINVAL), the region is neither freed nor unmapped (mapped bytes unchanged, the block still
 *              readable), other blocks are untouched;
 *   fields     one header field at a time (map_size, offset, flags, cls; one bit, or a plausible value such
 *              as twice the size) changed by a stray write: free reports it and unmaps nothing;
 *   replay     a valid header copied to another 4 MiB-aligned address (the base is in the keyed check);
 *   cached     a cached region's header overwritten: reusing, purging or unmapping it reports it and leaves
 *              it mapped (never munmap/madvise with its fields); the allocation maps a fresh region instead;
 *              an overwritten class (an index into the pool's lists) is neither followed out of range nor
 *              used to unlink the region from the wrong list;
 *   badfree    invalid frees into large regions: interior pointers (first chunk, later chunk, 1 byte in),
 *              the header itself, double free (region in the front cache), free of a purged (clean) cached
 *              region, free after the cache unmapped it: each reported once, live blocks intact, and
 *              usable_size/realloc of the same pointers reported too.
 */
#define _GNU_SOURCE
#include "../core/check.h"
#include "large.h"
#include "large_region.h"
#include "segmap.h"
#include "zcmem.h"

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

static uint64_t errors_now(void) {
  zc_stats_t s;
  zc_stats_get(&s);
  return s.errors;
}
static uint64_t mapped_now(void) {
  zc_large_stats_t s;
  zc_large_stats(&s);
  return s.mapped;
}
static region_t *hdr_of(const void *p) {
  uint8_t kind = 0;
  void *h = zc_segmap_header(p, &kind);
  return h != NULL && kind == ZC_MAP_LARGE ? h : NULL;
}

static void fill(unsigned char *p, size_t n, uint64_t seed) { fill_sparse(p, n, seed, 512); }
static bool intact(const unsigned char *p, size_t n, uint64_t seed) { return verify_sparse(p, n, seed, 512) < 0; }

/* usable_size, realloc and free of p must each be reported, p's region must stay mapped and readable. */
static void expect_refused(unsigned char *p, size_t n, const char *what) {
  uint64_t e0 = errors_now(), m0 = mapped_now();
  CHECKF(zc_usable_size(p) == 0, "%s: usable_size is %zu", what, zc_usable_size(p));
  CHECKF(errors_now() == e0 + 1, "%s: usable_size not reported", what);
  errno = 0;
  void *q = zc_realloc(p, n * 2);
  CHECKF(q == NULL && errno == EINVAL, "%s: realloc returned %p errno %d", what, q, errno);
  CHECKF(errors_now() == e0 + 2, "%s: realloc not reported", what);
  zc_free(p);
  CHECKF(errors_now() == e0 + 3, "%s: free reported %llu times, want once", what,
         (unsigned long long)(errors_now() - e0 - 2));
  CHECKF(mapped_now() == m0, "%s: mapped bytes %llu -> %llu", what, (unsigned long long)m0,
         (unsigned long long)mapped_now());
  volatile unsigned char x = p[n - 1]; /* still mapped: a fault here fails the test */
  (void)x;
}

static void test_underflow(void) {
  static const size_t sizes[] = {100 * KiB, 1 * MiB, 5 * MiB};
  static const size_t aligns[] = {16, 4 * KiB, 64 * KiB};
  static const size_t unders[] = {1, 8, 9, 24, 48, 64, 128};
  unsigned char *other = zc_malloc(2 * MiB);
  REQUIRE(other != NULL);
  fill(other, 2 * MiB, 9);
  int n = 0;
  for (unsigned i = 0; i < 3; i++)
    for (unsigned a = 0; a < 3; a++)
      for (unsigned u = 0; u < sizeof unders / sizeof *unders; u++) {
        unsigned char *p = zc_aligned_alloc(aligns[a], sizes[i]);
        REQUIRE(p != NULL && hdr_of(p) != NULL);
        fill(p, sizes[i], 3);
        /* the underflow: every byte changes (a constant fill would leave a canary byte that already held it
         * unchanged, and a 1-byte underflow would then be no corruption at all) */
        for (size_t k = 1; k <= unders[u]; k++) p[-(ptrdiff_t)k] = (unsigned char)~p[-(ptrdiff_t)k];
        char what[96];
        snprintf(what, sizeof what, "underflow of %zu B below a %zu B block aligned %zu", unders[u], sizes[i], aligns[a]);
        expect_refused(p, sizes[i], what);
        CHECKF(intact(p, sizes[i], 3), "%s: the block's own bytes changed", what);
        n++;
      }
  CHECK(intact(other, 2 * MiB, 9));
  zc_free(other);
  printf("underflow: %d blocks, each refused by usable_size, realloc and free\n", n);
}

typedef enum { F_MAP_SIZE, F_MAP_DOUBLE, F_MAP_SMALL, F_OFFSET, F_OFFSET_PAGE, F_FLAGS, F_CLS, F_COUNT } field_t;
static const char *const field_names[F_COUNT] = {"map_size bit", "map_size x2", "map_size 64K", "offset bit",
                                                 "offset + 4K",  "flags bit",   "cls bit"};

static void corrupt(region_t *r, field_t f) {
  switch (f) {
    case F_MAP_SIZE: r->map_size ^= (size_t)1 << 22; break;
    case F_MAP_DOUBLE: r->map_size *= 2; break;
    case F_MAP_SMALL: r->map_size = 64 * KiB; break;
    case F_OFFSET: r->offset ^= 16; break;
    case F_OFFSET_PAGE: r->offset += 4 * KiB; break;
    case F_FLAGS: r->flags ^= F_FILE; break;
    case F_CLS: r->cls ^= 1; break;
    default: break;
  }
}

static void test_fields(void) {
  for (int f = 0; f < F_COUNT; f++) {
    unsigned char *p = zc_malloc(3 * MiB);
    REQUIRE(p != NULL);
    fill(p, 3 * MiB, 5);
    region_t *r = hdr_of(p);
    REQUIRE(r != NULL);
    size_t map = r->map_size;
    /* A mapping right after the region: a grown map_size would unmap it. */
    unsigned char *next = mmap((char *)r + map, 4 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    bool have_next = next != MAP_FAILED;
    if (have_next) memset(next, 0x66, 4096);
    corrupt(r, (field_t)f);
    uint64_t e0 = errors_now(), m0 = mapped_now();
    zc_free(p);
    CHECKF(errors_now() == e0 + 1, "%s changed: free reported %llu times", field_names[f],
           (unsigned long long)(errors_now() - e0));
    CHECKF(mapped_now() == m0, "%s changed: mapped %llu -> %llu", field_names[f], (unsigned long long)m0,
           (unsigned long long)mapped_now());
    CHECKF(intact(p, 3 * MiB, 5), "%s changed: the block was unmapped or purged", field_names[f]);
    if (have_next) {
      CHECKF(next[0] == 0x66, "%s changed: the neighbouring mapping lost its bytes", field_names[f]);
      munmap(next, 4 * MiB);
    }
  }
  printf("fields: %d single-field changes reported on free, nothing unmapped\n", (int)F_COUNT);
}

static void test_replay(void) {
  unsigned char *p = zc_malloc(1 * MiB);
  REQUIRE(p != NULL);
  region_t *r = hdr_of(p);
  size_t off = (size_t)(p - (unsigned char *)r);
  char *raw = mmap(NULL, 12 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(raw != MAP_FAILED);
  char *fake = (char *)(((uintptr_t)raw + 4 * MiB - 1) & ~(uintptr_t)(4 * MiB - 1));
  memcpy(fake, r, off + 64); /* header, canary and the start of the block: a perfect copy */
  zc_segmap_set(fake, 4 * MiB, ZC_MAP_LARGE); /* as if the attacker also made the map say "large" */
  uint64_t e0 = errors_now(), m0 = mapped_now();
  zc_free(fake + off);
  CHECK(errors_now() == e0 + 1);
  CHECK(mapped_now() == m0);
  CHECK(zc_usable_size(fake + off) == 0 && errors_now() == e0 + 2);
  fake[4 * MiB - 1] = 1; /* still mapped */
  zc_segmap_clear(fake, 4 * MiB);
  munmap(raw, 12 * MiB);
  CHECK(zc_usable_size(p) >= 1 * MiB);
  zc_free(p);
  CHECK(errors_now() == e0 + 2);
  printf("replay: a copied header at another base is refused\n");
}

static void test_cached(void) {
  /* reuse: free (front cache), overwrite its map_size, allocate the same size */
  unsigned char *p = zc_malloc(1 * MiB);
  REQUIRE(p != NULL);
  region_t *r = hdr_of(p);
  zc_free(p);
  uint64_t e0 = errors_now();
  r->map_size *= 4;
  unsigned char *q = zc_malloc(1 * MiB);
  REQUIRE(q != NULL);
  CHECKF(errors_now() == e0 + 1, "reuse of an overwritten cached region: %llu reports",
         (unsigned long long)(errors_now() - e0));
  CHECKF(hdr_of(q) != r, "the overwritten region was handed out again");
  memset(q, 1, 1 * MiB);
  ((volatile char *)r)[HDR_SIZE] = 2; /* the dropped region is still mapped */
  zc_free(q);
  /* purge: free, overwrite, force the purge of the cache */
  unsigned char *s = zc_malloc(2 * MiB);
  REQUIRE(s != NULL);
  memset(s, 7, 2 * MiB);
  region_t *rs = hdr_of(s);
  zc_free(s);
  e0 = errors_now();
  rs->map_size = 256 * MiB; /* a purge of that length would wipe whatever follows */
  zc_trim(0);
  CHECKF(errors_now() == e0 + 1, "purge of an overwritten cached region: %llu reports",
         (unsigned long long)(errors_now() - e0));
  CHECKF(s[2 * MiB - 1] == 7 && s[4096] == 7, "the overwritten region was purged anyway");
  /* unmap: free, purge (clean), overwrite, release the whole cache */
  unsigned char *t = zc_malloc(1 * MiB);
  REQUIRE(t != NULL);
  region_t *rt = hdr_of(t);
  zc_free(t);
  zc_trim(0); /* clean now */
  e0 = errors_now();
  rt->flags ^= F_FILE;
  zc_large_release_cache();
  CHECKF(errors_now() == e0 + 1, "unmap of an overwritten cached region: %llu reports",
         (unsigned long long)(errors_now() - e0));
  ((volatile char *)rt)[HDR_SIZE] = 3; /* not unmapped */
  /* a cached region's class overwritten (it indexes the pool's class lists): taking it out of the pool
   * must neither index out of range nor unlink it from the wrong list; the other cached regions stay usable */
  unsigned char *u[3];
  for (int i = 0; i < 3; i++) REQUIRE((u[i] = zc_malloc(6 * MiB)) != NULL); /* above the front's share */
  region_t *ru = hdr_of(u[1]);
  for (int i = 0; i < 3; i++) zc_free(u[i]);
  e0 = errors_now();
  ru->cls = 100000;
  zc_large_release_cache();
  CHECKF(errors_now() == e0 + 1, "unmap of a cached region with its class overwritten: %llu reports",
         (unsigned long long)(errors_now() - e0));
  ((volatile char *)ru)[HDR_SIZE] = 4;
  for (int i = 0; i < 3; i++) REQUIRE((u[i] = zc_malloc(6 * MiB)) != NULL);
  for (int i = 0; i < 3; i++) memset(u[i], i, 6 * MiB);
  for (int i = 0; i < 3; i++) zc_free(u[i]);
  CHECK(errors_now() == e0 + 1);
  printf("cached: overwritten cached headers are refused on reuse, purge and unmap\n");
}

static void test_badfree(void) {
  unsigned char *keep = zc_malloc(300 * KiB);
  REQUIRE(keep != NULL);
  fill(keep, 300 * KiB, 11);
  unsigned char *big = zc_malloc(16 * MiB);
  REQUIRE(big != NULL);
  fill(big, 16 * MiB, 13);
  unsigned char *hdr = (unsigned char *)hdr_of(big);
  unsigned char *const bad[] = {big + 1, big + 16, big + 4096, big + 5 * MiB, big + 16 * MiB - 16, hdr};
  const char *const names[] = {"1 byte in", "16 bytes in", "4 KiB in", "5 MiB in (a later chunk)", "last 16 bytes",
                               "the region header"};
  for (unsigned i = 0; i < sizeof bad / sizeof *bad; i++) {
    uint64_t e0 = errors_now();
    zc_free(bad[i]);
    CHECKF(errors_now() == e0 + 1, "free %s: %llu reports", names[i], (unsigned long long)(errors_now() - e0));
    CHECKF(zc_usable_size(bad[i]) == 0 && errors_now() == e0 + 2, "usable_size %s not refused", names[i]);
    errno = 0;
    CHECKF(zc_realloc(bad[i], 100) == NULL && errno == EINVAL && errors_now() == e0 + 3, "realloc %s not refused",
           names[i]);
  }
  CHECK(intact(big, 16 * MiB, 13));
  CHECK(zc_usable_size(big) >= 16 * MiB);
  /* double free: the region is in the front cache */
  unsigned char *d = zc_malloc(200 * KiB);
  REQUIRE(d != NULL);
  zc_free(d);
  uint64_t e0 = errors_now();
  zc_free(d);
  CHECKF(errors_now() == e0 + 1, "double free (front cache): %llu reports", (unsigned long long)(errors_now() - e0));
  CHECK(zc_usable_size(d) == 0 && errors_now() == e0 + 2);
  /* the double free must not have put the region in the cache twice: two allocations get two regions */
  unsigned char *d1 = zc_malloc(200 * KiB), *d2 = zc_malloc(200 * KiB);
  CHECK(d1 != NULL && d2 != NULL && d1 != d2);
  zc_free(d1);
  zc_free(d2);
  /* free of a purged (clean) cached region */
  unsigned char *c = zc_malloc(3 * MiB);
  REQUIRE(c != NULL);
  zc_free(c);
  zc_trim(0);
  e0 = errors_now();
  zc_free(c);
  CHECKF(errors_now() == e0 + 1, "free of a clean cached region: %llu reports", (unsigned long long)(errors_now() - e0));
  zc_free(c + 4096);
  CHECK(errors_now() == e0 + 2);
  /* free after the cache unmapped the region: not zcmem's any more */
  zc_large_release_cache();
  e0 = errors_now();
  zc_free(c);
  CHECKF(errors_now() == e0 + 1, "free of an unmapped region: %llu reports", (unsigned long long)(errors_now() - e0));
  zc_free(big);
  CHECK(intact(keep, 300 * KiB, 11));
  zc_free(keep);
  CHECK(errors_now() == e0 + 1);
  printf("badfree: interior, header, double, cached-clean and unmapped frees reported\n");
}

int main(int argc, char **argv) {
  setenv("ZCMEM_ABORT_ON_ERROR", "0", 1);
  setenv("ZCMEM_BACKGROUND", "0", 1); /* the cache changes only when the test asks */
  setenv("ZCMEM_PURGE_DELAY", "100000", 1);
  const char *c = argc > 1 ? argv[1] : "";
  if (!strcmp(c, "underflow")) test_underflow();
  else if (!strcmp(c, "fields")) test_fields();
  else if (!strcmp(c, "replay")) test_replay();
  else if (!strcmp(c, "cached")) test_cached();
  else if (!strcmp(c, "badfree")) test_badfree();
  else {
    fprintf(stderr, "usage: test_large_hdr underflow|fields|replay|cached|badfree\n");
    return 2;
  }
  return check_exit(c);
}
