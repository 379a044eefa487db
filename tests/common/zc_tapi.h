/* The allocation API under test, by one set of names: T_malloc, T_calloc, T_realloc, T_reallocarray, T_free,
 * T_free_sized, T_free_aligned_sized (HAVE_FREE_SIZED, HAVE_FREE_ALIGNED_SIZED), T_aligned_alloc,
 * T_posix_memalign, T_memalign, T_valloc, T_pvalloc, T_usable, T_trim. With ZC_TEST_PREFIXED they are zcmem's
 * prefixed functions (zcmem.h); otherwise the standard names, which the test reaches through the override
 * (linked or LD_PRELOAD). A test built both ways includes this once and defines its own NAME.
 * Includes: zcmem.h (prefixed) or libc's malloc.h. Header-only.
 */
#ifndef ZC_TEST_TAPI_H
#define ZC_TEST_TAPI_H

#ifdef ZC_TEST_PREFIXED
#include "zcmem.h"
#define T_malloc zc_malloc
#define T_calloc zc_calloc
#define T_realloc zc_realloc
#define T_reallocarray zc_reallocarray
#define T_free zc_free
#define T_free_sized zc_free_sized
#define T_free_aligned_sized zc_free_aligned_sized
#define HAVE_FREE_SIZED 1
#define HAVE_FREE_ALIGNED_SIZED 1
#define T_aligned_alloc zc_aligned_alloc
#define T_posix_memalign zc_posix_memalign
#define T_memalign zc_memalign
#define T_valloc zc_valloc
#define T_pvalloc zc_pvalloc
#define T_usable zc_usable_size
#define T_trim zc_trim
#else
#include <malloc.h>
#include <stdlib.h>
/* C23 names: glibc 2.36's headers lack them; weak so that a library without them fails a check, not the
 * link. */
extern void free_sized(void *p, size_t size) __attribute__((weak));
extern void free_aligned_sized(void *p, size_t align, size_t size) __attribute__((weak));
#define T_malloc malloc
#define T_calloc calloc
#define T_realloc realloc
#define T_reallocarray reallocarray
#define T_free free
#define T_free_sized free_sized
#define T_free_aligned_sized free_aligned_sized
#define HAVE_FREE_SIZED (free_sized != NULL)
#define HAVE_FREE_ALIGNED_SIZED (free_aligned_sized != NULL)
#define T_aligned_alloc aligned_alloc
#define T_posix_memalign posix_memalign
#define T_memalign memalign
#define T_valloc valloc
#define T_pvalloc pvalloc
#define T_usable malloc_usable_size
#define T_trim malloc_trim
#endif

#endif /* ZC_TEST_TAPI_H */
