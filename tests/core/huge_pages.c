/* ZCMEM_HUGE_PAGES (README.md: "1: ask for transparent huge pages on 4 MiB segments"): in a child started
 * with ZCMEM_HUGE_PAGES=1 the mapping that holds a small block carries the kernel's "hg" flag (MADV_HUGEPAGE,
 * VmFlags in /proc/self/smaps); with the default (0) it does not. Whether the kernel then backs the segment
 * by huge pages is its own policy and not checked.
 * A kernel without transparent huge pages (no /sys/kernel/mm/transparent_hugepage) cannot show the flag:
 * the test exits 77, which ctest reports as skipped (SKIP_RETURN_CODE), not passed.
 * Prefixed library. Args: none.
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"

#include <stdio.h>
#include <stdlib.h>

/* 1 if the VMA holding p has "hg" among its VmFlags, 0 if not, -1 if it was not found. */
static int vma_has_hg(const void *p) {
  FILE *f = fopen("/proc/self/smaps", "r");
  if (f == NULL) return -1;
  char line[512];
  int in = 0, found = -1;
  while (fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
      in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
      continue;
    }
    if (in && strncmp(line, "VmFlags:", 8) == 0) {
      found = strstr(line, " hg") != NULL;
      break;
    }
  }
  fclose(f);
  return found;
}

static int child(void *arg) {
  const char *setting = arg;
  unsetenv("ZCMEM_HUGE_PAGES");
  if (setting) setenv("ZCMEM_HUGE_PAGES", setting, 1);
  void *p = zc_malloc(64);
  if (p == NULL) return 3;
  int hg = vma_has_hg(p);
  printf("ZCMEM_HUGE_PAGES=%s: block %p, hg %d\n", setting ? setting : "(unset)", p, hg);
  zc_free(p);
  return hg < 0 ? 2 : hg;
}

int main(void) {
  if (access("/sys/kernel/mm/transparent_hugepage", F_OK) != 0) {
    printf("no transparent huge pages in this kernel: skipped\n");
    return 77;
  }
  static const struct {
    const char *setting;
    int want;
  } cases[] = {{NULL, 0}, {"0", 0}, {"1", 1}};
  for (unsigned i = 0; i < sizeof cases / sizeof *cases; i++) {
    child_result_t r = run_child(child, (void *)cases[i].setting, 30);
    fputs(r.out, stdout);
    CHECKF(child_exited(&r, cases[i].want), "ZCMEM_HUGE_PAGES=%s: the segment's mapping %s the hg flag (child: %s%s)",
           cases[i].setting ? cases[i].setting : "(unset)", cases[i].want ? "lacks" : "has", r.out, r.err);
    child_result_free(&r);
  }
  return check_exit("core_huge_pages");
}
