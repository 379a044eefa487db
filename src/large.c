/* Layer 6, large objects: PLACEHOLDER (one mapping per block, no cache) until the region cache lands. */
#include "large.h"
#include "options.h"
#include "os.h"
#include "segmap.h"

#include <errno.h>
#include <string.h>

typedef struct region_s {
  size_t map_size, offset, size;
  uint64_t magic;
} region_t;
#define MAGIC 0x7a636c617267ull

void *zc_large_alloc(size_t size, size_t align, bool zero) {
  size_t page = zc_os_page_size();
  if (align < 16) align = 16;
  size_t off = (sizeof(region_t) + align - 1) & ~(align - 1);
  size_t need = off + size;
  if (need < size || size > ((size_t)1 << 46)) {
    errno = ENOMEM;
    return NULL;
  }
  size_t map = (need + page - 1) & ~(page - 1);
  region_t *r = zc_os_alloc_aligned(map, ZC_SEGMENT_SIZE);
  if (r == NULL) return NULL;
  (void)zero;
  r->map_size = map;
  r->offset = off;
  r->size = map - off;
  r->magic = MAGIC;
  zc_segmap_set(r, map, ZC_MAP_LARGE);
  return (char *)r + off;
}

void zc_large_free(void *p, void *hdr) {
  region_t *r = hdr;
  if (r->magic != MAGIC || (char *)r + r->offset != p) {
    zc_error("invalid free of %p", p);
    return;
  }
  r->magic = 0;
  zc_segmap_clear(r, r->map_size);
  zc_os_free(r, r->map_size);
}

size_t zc_large_usable(const void *p, const void *hdr) {
  const region_t *r = hdr;
  if (r->magic != MAGIC || (const char *)r + r->offset > (const char *)p) return 0;
  return r->size - (size_t)((const char *)p - ((const char *)r + r->offset));
}

bool zc_large_resize_in_place(void *p, void *hdr, size_t n) {
  region_t *r = hdr;
  return (char *)r + r->offset == p && n <= r->size;
}
size_t zc_large_purge(bool force) { (void)force; return 0; }
void zc_large_stats(zc_large_stats_t *out) { memset(out, 0, sizeof *out); }
void zc_large_fork_prepare(void) {}
void zc_large_fork_parent(void) {}
void zc_large_fork_child(void) {}
