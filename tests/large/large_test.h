/* Helpers shared by the large-region tests (test_large.c, test_large_policy.c): the cache's counters and
 * the header the segment map gives for a pointer. Internal headers: the tests include src/. */
#ifndef ZC_LARGE_TEST_H
#define ZC_LARGE_TEST_H

#include "large.h"
#include "segmap.h"

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

static inline zc_large_stats_t stats(void) {
  zc_large_stats_t s;
  zc_large_stats(&s);
  return s;
}

/* The header the segment map gives for p (NULL unless it is a large region). */
static inline void *hdr_of(const void *p) {
  uint8_t kind = 0;
  void *h = zc_segmap_header(p, &kind);
  return h != NULL && kind == ZC_MAP_LARGE ? h : NULL;
}

#endif
