/* Resident memory, for the tests of purging: of the whole process (/proc/self/statm) and of one address
 * range (mincore, which counts the pages backed by RAM: after MADV_DONTNEED or munmap they are not).
 * Under TSan or ASan shadow memory makes RSS meaningless: tests skip RSS bounds when
 * UNDER_HEAVY_SANITIZER is 1.
 * Includes: libc, POSIX and Linux headers only. Header-only.
 */
#ifndef ZC_TEST_RSS_H
#define ZC_TEST_RSS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define UNDER_HEAVY_SANITIZER 1
#else
#define UNDER_HEAVY_SANITIZER 0
#endif

/* The process's mapped address space (statm's first field), in bytes: what RLIMIT_AS counts. */
static inline size_t vm_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size = 0;
  if (f) {
    if (fscanf(f, "%lu", &size) != 1) size = 0;
    fclose(f);
  }
  return (size_t)size * (size_t)sysconf(_SC_PAGESIZE);
}

static inline size_t rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size = 0, res = 0;
  if (f) {
    if (fscanf(f, "%lu %lu", &size, &res) != 2) res = 0;
    fclose(f);
  }
  return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

/* Bytes of [p, p + len) resident in RAM (whole OS pages; the range is widened to page bounds). Unmapped
 * pages count 0 (mincore fails with ENOMEM on them: the range is walked a page at a time then). */
static inline size_t resident_bytes(const void *p, size_t len) {
  size_t pg = (size_t)sysconf(_SC_PAGESIZE);
  uintptr_t a = (uintptr_t)p & ~(uintptr_t)(pg - 1);
  uintptr_t end = ((uintptr_t)p + len + pg - 1) & ~(uintptr_t)(pg - 1);
  size_t total = 0;
  unsigned char vec[256];
  while (a < end) {
    size_t n = (end - a) / pg;
    if (n > sizeof vec) n = sizeof vec;
    if (mincore((void *)a, n * pg, vec) != 0) {
      if (n > 1) n = 1; /* part of the chunk unmapped: look page by page */
      if (mincore((void *)a, pg, vec) != 0) vec[0] = 0;
    }
    for (size_t i = 0; i < n; i++) total += (vec[i] & 1) ? pg : 0;
    a += n * pg;
  }
  return total;
}

#endif /* ZC_TEST_RSS_H */
