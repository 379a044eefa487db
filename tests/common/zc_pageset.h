/* The set of 4 KiB pages a test's blocks were handed out on: how much distinct memory a workload got from the
 * allocator (tests of footprint policies: borrowing, reuse). Open addressing over a fixed table, so adding
 * allocates nothing; at most ZC_PAGESET_MAX / 2 pages (16 MiB) before the test fails. */
#ifndef ZC_PAGESET_H
#define ZC_PAGESET_H

#include "zc_check.h"
#include "zc_rng.h"

#include <stdint.h>
#include <string.h>

#define ZC_PAGESET_MAX 8192

typedef struct {
  uintptr_t page[ZC_PAGESET_MAX];
  size_t n;
} zc_pageset_t;

static inline void zc_pageset_clear(zc_pageset_t *s) { memset(s, 0, sizeof *s); }

/* Every 4 KiB page [p, p + n) touches. */
static inline void zc_pageset_add(zc_pageset_t *s, const void *p, size_t n) {
  uintptr_t last = ((uintptr_t)p + n - 1) >> 12;
  for (uintptr_t pg = (uintptr_t)p >> 12; pg <= last; pg++) {
    size_t i = (size_t)(splitmix64(pg) % ZC_PAGESET_MAX);
    while (s->page[i] != 0 && s->page[i] != pg) i = (i + 1) % ZC_PAGESET_MAX;
    if (s->page[i] == 0) {
      REQUIRE(s->n < ZC_PAGESET_MAX / 2);
      s->page[i] = pg;
      s->n++;
    }
  }
}

static inline size_t zc_pageset_bytes(const zc_pageset_t *s) { return s->n << 12; }

#endif /* ZC_PAGESET_H */
