/* churn: one thread, sizes from 8 B to 1 MiB, sliding-window lifetimes and growing buffers.
 *
 * A window of `window` live blocks. Each step allocates a block and frees one: 70% of the time the oldest
 * slot (first in, first out: a request's buffers die in the order they came), otherwise a random one
 * (some die young, some live long). One step in ten also grows a random live block with realloc by half
 * again plus 16 B, up to 1 MiB, as a string builder or a growing vector does.
 * Sizes: 99% Pareto from 8 B cut at 4 KiB (median 16 B), 1% log-uniform 4 KiB-1 MiB.
 *
 * Invariant checked: header and payload of every block survive reallocs until its free.
 *
 * Parameters: window=2000 ops=<steps> seed=1
 * Metrics: ops (steps per second, primary);
 *   per step: faults_per_op, cpu_us_per_op (the measured phase, see common.h). */
#define _GNU_SOURCE
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { unsigned char *p; size_t size; uint64_t seed; } blk_t;

static size_t churn_size(zb_rng *r) {
  if (zb_below(r, 100) == 0) return zb_size_loguniform(r, 4096, (1u << 20) + 1);
  return zb_size_pareto(r, 8, 4096);
}

int main(int argc, char **argv) {
  zb_init(argc, argv, "churn");
  uint64_t window = zb_param("window", 2000, 2000);
  uint64_t ops = zb_param("ops", 2000000, 300000);
  uint64_t seed = zb_param("seed", 1, 1);
  zb_params_done();
  if (window < 1) zb_die("window must be >= 1");

  zb_rng r = zb_rng_seed(seed);
  uint64_t serial = 0;
  blk_t *w = zb_xmalloc(sizeof(blk_t) * window);
  for (uint64_t i = 0; i < window; i++) {
    w[i].size = churn_size(&r);
    w[i].p = zb_xmalloc(w[i].size);
    w[i].seed = ++serial;
    zb_fill(w[i].p, w[i].size, w[i].seed);
  }
  uint64_t grown = 0;
  zb_phase_begin();
  double t0 = zb_now();
  for (uint64_t k = 0; k < ops; k++) {
    blk_t *b = zb_below(&r, 10) < 7 ? &w[k % window] : &w[zb_below(&r, window)];
    zb_check(b->p, b->size, b->seed);
    free(b->p);
    b->size = churn_size(&r);
    b->p = zb_xmalloc(b->size);
    b->seed = ++serial;
    zb_fill(b->p, b->size, b->seed);
    if (zb_below(&r, 10) == 0) {
      blk_t *g = &w[zb_below(&r, window)];
      if (g->size < (1u << 20)) {
        size_t ns = g->size + g->size / 2 + 16;
        if (ns > (1u << 20)) ns = 1u << 20;
        zb_check(g->p, g->size, g->seed);
        unsigned char *q = realloc(g->p, ns);
        if (q == NULL) zb_die("realloc(%zu) returned NULL", ns);
        /* The old bytes must have moved with the block; then the new tail is written. */
        zb_check(q, g->size, g->seed);
        g->p = q;
        g->size = ns;
        g->seed = ++serial;
        zb_fill(g->p, g->size, g->seed);
        grown++;
      }
    }
  }
  double dt = zb_now() - t0;
  zb_phase_end(ops);
  for (uint64_t i = 0; i < window; i++) {
    zb_check(w[i].p, w[i].size, w[i].seed);
    free(w[i].p);
  }
  free(w);
  zb_report("ops", (double)ops / dt, "ops/s", true);
  zb_report("time", dt, "s", false);
  fprintf(stderr, "churn: %llu reallocs\n", (unsigned long long)grown);
  return 0;
}
