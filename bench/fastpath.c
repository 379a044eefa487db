/* fastpath: the allocator's fast path in instructions, counted by callgrind.
 *
 * zb_fastpath_loop() runs `pairs` malloc/free pairs of one small size. The runner starts this program
 * under `valgrind --tool=callgrind --toggle-collect=zb_fastpath_loop`, so only instructions executed
 * inside that function (and what it calls: malloc and free) are counted, once with pairs=N and once with
 * pairs=0; (I(N) - I(0)) / N is the cost of one pair. A warm-up outside the measured function binds the
 * PLT entries and creates the thread's heap first, so the figure is the steady state, not first use.
 * Instruction counts are stable on a busy machine, unlike nanoseconds.
 *
 * Run natively it also reports nanoseconds per pair, as a sanity check.
 *
 * Parameters: pairs=1000000 size=32 live=64
 * Metrics: ns (ns per pair, native; callgrind runs ignore it). */
#define _GNU_SOURCE
#include "common.h"

#include <stdio.h>
#include <stdlib.h>

/* A volatile sink: the compiler may not drop a malloc whose result escapes. */
void *volatile zb_sink;

__attribute__((noinline)) void zb_fastpath_loop(uint64_t pairs, size_t size) {
  for (uint64_t i = 0; i < pairs; i++) {
    zb_sink = malloc(size);
    free(zb_sink);
  }
}

int main(int argc, char **argv) {
  zb_init(argc, argv, "fastpath");
  uint64_t pairs = zb_param("pairs", 1000000, 200000);
  size_t size = (size_t)zb_param("size", 32, 32);
  uint64_t live = zb_param("live", 64, 64);
  zb_params_done();

  void **keep = zb_xmalloc(sizeof(void *) * (live + 1));
  for (uint64_t i = 0; i < live; i++) keep[i] = zb_xmalloc(size);

  for (int i = 0; i < 1000; i++) {  /* warm-up: lazy binding, heap creation, first page of the class */
    zb_sink = zb_xmalloc(size);
    free(zb_sink);
  }
  double t0 = zb_now();
  zb_fastpath_loop(pairs, size);
  double dt = zb_now() - t0;
  if (pairs > 0) zb_report("ns", dt * 1e9 / (double)pairs, "ns", false);
  for (uint64_t i = 0; i < live; i++) free(keep[i]);
  free(keep);
  return 0;
}
