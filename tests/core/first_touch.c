/* What a program's first malloc touches (docs/design.md, "Segments" and "Heaps"): the heap array's other heaps
 * are set up only when handed out, and a fresh segment's page descriptors are written only as its pages are
 * taken, so the header's OS pages are touched as the segment is used.
 *
 *   core_first_touch first  the process's first zc_malloc(32) (the first call into zcmem: options, heap,
 *                           segment) (a) leaves at most 4 KiB of its segment's 16 KiB header resident
 *                           (mincore: the segment fields, page 0's descriptor and its remote line share the
 *                           header's first OS page; 8 KiB when the remote lines were an array of their own
 *                           after the descriptors, 12 KiB when every descriptor was written at the
 *                           segment's creation), and
 *                           (b) costs at most 26 minor page faults (getrusage: 13 on x86-64 Linux with 4 KiB
 *                           pages; 32 when the whole heap array was set up at once; not checked under ASan
 *                           and TSan, whose shadow memory faults too).
 * Links zcmem_prefixed: runs in every build, the sanitizers included.
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"

#include <sys/resource.h>

#define SEG_SIZE ((uintptr_t)4 << 20)
#define HEADER ((size_t)16 << 10)

static long minor_faults(void) {
  struct rusage r;
  REQUIRE(getrusage(RUSAGE_SELF, &r) == 0);
  return r.ru_minflt;
}

static int case_first(int argc, char **argv) {
  (void)argc;
  CHECKF(sysconf(_SC_PAGESIZE) == 4096, "the bounds assume 4 KiB OS pages");
  long before = minor_faults();
  before = minor_faults(); /* the first call faulted getrusage's own code and stack in */
  char *p = zc_malloc(32);
  long faults = minor_faults() - before;
  REQUIRE(p != NULL);
  uintptr_t seg = (uintptr_t)p & ~(SEG_SIZE - 1);
  size_t res = resident_bytes((void *)seg, HEADER);
  printf("first: the first malloc took %ld minor faults; %zu KiB of its segment's header resident\n", faults,
         res >> 10);
  CHECKF(res <= ((size_t)4 << 10), "(a) %zu KiB of the segment header resident after one malloc", res >> 10);
  if (!UNDER_HEAVY_SANITIZER)
    CHECKF(faults <= 26, "(b) the first malloc took %ld minor page faults (at most 26 expected)", faults);
  memset(p, 1, 32);
  zc_free(p);
  CHECK_DONE(argv[0]);
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"first", case_first}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
