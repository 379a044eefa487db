/* What a new thread's heap costs in memory touched (docs/design.md, "Threads": the fixed cost per thread).
 * A heap's direct table (8 KiB, one slot per request size) is not written at the heap's setup: a slot holds
 * its page's offset from the heap and 0 means "no page yet" (types.h), so a fresh heap, zero from the OS, is
 * ready as it is, and only the OS pages of the table that hold slots of sizes the thread uses are touched.
 *
 *   core_heap_touch small  the main thread mallocs (heap 0, the purger may start); a second thread (which gets
 *                          a heap never used before: the main thread's is live) mallocs blocks of every size
 *                          1..384 B and frees them but one of 48 B. Then, measured with mincore over its
 *                          heap (zc_heap_t, at an OS-page boundary):
 *                          (a) at most 2 of the heap's OS pages are resident (the first: its ids and the
 *                          slots of sizes up to about 490 B; the last: the fields the slow path writes). All
 *                          3 were when setup wrote every slot; 3-4 when heaps also straddled OS pages.
 *                          The thread exits (its heap is parked, its direct slots cleared for the next
 *                          thread): (b) the heap's resident pages are the same (the exit clears only the
 *                          slots it wrote, and reads no other: a read of a never-touched page faults in the
 *                          zero page, which mincore counts). (c) Every direct slot of the parked heap is 0
 *                          (the 48 B block's page was still in its queue at the exit: the reset cleared its
 *                          slots). (d) A third thread gets the parked heap back and allocates every size
 *                          1..1024 B correctly (values written and read back).
 * Links zcmem_prefixed and reads the calling thread's heap (src/internal.h): runs in every build.
 */
#define _GNU_SOURCE
#include "internal.h"
#include "zc_test.h"
#include "zcmem.h"

#include <pthread.h>

#define SMALL_MAX 384
#define LIVE_SIZE 48

static zc_heap_t *heap_seen;
static uint32_t heap_id_seen;
static size_t resident_live;
static void *live_block;

static size_t heap_resident(const zc_heap_t *h) { return resident_bytes(h, sizeof *h); }

static void *small_thread(void *arg) {
  (void)arg;
  void *keep[SMALL_MAX + 1];
  for (size_t n = 1; n <= SMALL_MAX; n++) {
    keep[n] = zc_malloc(n);
    REQUIRE(keep[n] != NULL);
    memset(keep[n], (int)(n & 0xff), n);
  }
  for (size_t n = 1; n <= SMALL_MAX; n++)
    if (n != LIVE_SIZE) zc_free(keep[n]);
  live_block = keep[LIVE_SIZE]; /* outlives the thread: its page stays in the queue until the exit */
  heap_seen = zc_heap_get();
  heap_id_seen = zc_thread_heap_id();
  resident_live = heap_resident(heap_seen);
  return NULL;
}

static void *wide_thread(void *arg) {
  bool *same = arg;
  *same = zc_thread_heap_id() == heap_id_seen;
  for (size_t n = 1; n <= 1024; n++) {
    unsigned char *p = zc_malloc(n);
    REQUIRE(p != NULL);
    memset(p, 0x5a, n);
    for (size_t i = 0; i < n; i++) REQUIRE(p[i] == 0x5a);
    zc_free(p);
  }
  return NULL;
}

static int case_small(int argc, char **argv) {
  (void)argc;
  CHECKF(sysconf(_SC_PAGESIZE) == 4096, "the bounds assume 4 KiB OS pages");
  size_t last = zc_class_size[zc_size_class(SMALL_MAX)];
  CHECKF(offsetof(zc_heap_t, direct) + (last + 1) * sizeof(intptr_t) <= 4096,
         "the slots of sizes up to %d B are in the heap's first OS page (layout changed?)", SMALL_MAX);
  void *mine = zc_malloc(64); /* heap 0 for this thread */
  REQUIRE(mine != NULL);
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, small_thread, NULL) == 0);
  REQUIRE(pthread_join(t, NULL) == 0);
  zc_heap_t *h = heap_seen;
  REQUIRE(h != NULL && h != zc_heap_get());
  CHECKF(((uintptr_t)h & 4095) == 0, "a heap starts on an OS-page boundary");
  size_t after_exit = heap_resident(h); /* after the join: the exit has run */
  printf("small: the new thread's heap (%zu B): %zu KiB resident, %zu KiB after its exit\n", sizeof *h,
         resident_live >> 10, after_exit >> 10);
  CHECKF(resident_live <= 8192, "(a) %zu KiB of a new thread's heap resident (at most 8 expected)",
         resident_live >> 10);
  CHECKF(after_exit == resident_live, "(b) the exit touched more of the heap: %zu KiB resident, %zu before",
         after_exit >> 10, resident_live >> 10);
  size_t stale = 0;
  for (size_t w = 0; w < ZC_DIRECT_SLOTS; w++) stale += h->direct[w] != 0;
  CHECKF(stale == 0, "(c) %zu direct slots of the parked heap still name a page", stale);
  zc_free(live_block);
  bool same = false;
  REQUIRE(pthread_create(&t, NULL, wide_thread, &same) == 0);
  REQUIRE(pthread_join(t, NULL) == 0);
  CHECKF(same, "(d) the third thread got the parked heap back");
  zc_free(mine);
  CHECK_DONE(argv[0]);
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"small", case_small}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
