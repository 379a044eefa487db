/* larson: a server's worker threads, after Larson and Krishnan (ISMM 1998).
 *
 * Each of T chains owns an array of S live blocks. Its current thread repeatedly frees a random slot
 * and allocates a new block of a new size there; after G operations it starts a fresh thread, hands it
 * the array and exits. So blocks are freed by threads that did not allocate them, often after their
 * allocating thread is gone ("bleeding" in the paper), and threads come and go all the time.
 * Sizes: uniform in [min, max] = 8..1000 B, the parameters mimalloc-bench runs larson with (5000 blocks
 * per thread, 8..1000 B); Larson's paper used 10..500 B.
 *
 * Invariant checked: every block freed carries the size and seed it was written with.
 *
 * Parameters: threads=2 slots=5000 ops=<per chain> gen=100000 (ops per thread before the hand-off) min=8
 *   max=1000 seed=1
 * Metrics: ops (malloc+free pairs per second, primary);
 *   per pair: faults_per_op, cpu_us_per_op (the measured phase, see common.h). */
#define _GNU_SOURCE
#include "common.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
  void **slot;
  size_t *size;
  uint64_t *seed;
  uint64_t ops_left;
  zb_rng r;
  uint64_t serial;
} chain_t;

static uint64_t nslots, gen_ops, min_size, max_size;

/* Uniform in [min, max], as Larson's original and mimalloc-bench's run of it (8..1000 B). */
static size_t block_size(zb_rng *r) {
  return (size_t)(min_size + zb_below(r, max_size - min_size + 1));
}
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static unsigned chains_done;
static uint64_t threads_started;

static void *worker(void *arg) {
  chain_t *ch = arg;
  uint64_t n = ch->ops_left < gen_ops ? ch->ops_left : gen_ops;
  for (uint64_t k = 0; k < n; k++) {
    uint64_t i = zb_below(&ch->r, nslots);
    zb_check(ch->slot[i], ch->size[i], ch->seed[i]);
    free(ch->slot[i]);
    size_t s = block_size(&ch->r);
    ch->slot[i] = zb_xmalloc(s);
    ch->size[i] = s;
    ch->seed[i] = ++ch->serial;
    zb_fill(ch->slot[i], s, ch->seed[i]);
  }
  ch->ops_left -= n;
  if (ch->ops_left > 0) {
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &a, worker, ch) != 0) zb_die("pthread_create failed");
    pthread_attr_destroy(&a);
    __atomic_fetch_add(&threads_started, 1, __ATOMIC_RELAXED);
  } else {
    pthread_mutex_lock(&done_lock);
    chains_done++;
    pthread_cond_signal(&done_cond);
    pthread_mutex_unlock(&done_lock);
  }
  return NULL;
}

int main(int argc, char **argv) {
  zb_init(argc, argv, "larson");
  unsigned nthreads = (unsigned)zb_param("threads", 2, 2);
  nslots = zb_param("slots", 5000, 5000);
  uint64_t ops = zb_param("ops", 6000000, 1500000);
  gen_ops = zb_param("gen", 100000, 100000);
  min_size = zb_param("min", 8, 8);
  max_size = zb_param("max", 1000, 1000);
  uint64_t seed = zb_param("seed", 1, 1);
  zb_params_done();
  if (nthreads < 1 || nslots < 1 || gen_ops < 1) zb_die("threads, slots and gen must be >= 1");
  if (min_size < 1 || max_size < min_size || max_size > ((uint64_t)1 << 30))
    zb_die("need 1 <= min <= max <= 1G");

  chain_t *ch = zb_xmalloc(sizeof(chain_t) * nthreads);
  for (unsigned c = 0; c < nthreads; c++) {
    ch[c].slot = zb_xmalloc(sizeof(void *) * nslots);
    ch[c].size = zb_xmalloc(sizeof(size_t) * nslots);
    ch[c].seed = zb_xmalloc(sizeof(uint64_t) * nslots);
    ch[c].r = zb_rng_seed(seed * 100 + c);
    ch[c].ops_left = ops;
    ch[c].serial = (uint64_t)c << 48;
    for (uint64_t i = 0; i < nslots; i++) {  /* the first blocks come from the main thread */
      ch[c].size[i] = block_size(&ch[c].r);
      ch[c].slot[i] = zb_xmalloc(ch[c].size[i]);
      ch[c].seed[i] = ++ch[c].serial;
      zb_fill(ch[c].slot[i], ch[c].size[i], ch[c].seed[i]);
    }
  }
  zb_phase_begin();
  double t0 = zb_now();
  for (unsigned c = 0; c < nthreads; c++) {
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &a, worker, &ch[c]) != 0) zb_die("pthread_create failed");
    pthread_attr_destroy(&a);
  }
  pthread_mutex_lock(&done_lock);
  while (chains_done < nthreads) pthread_cond_wait(&done_cond, &done_lock);
  pthread_mutex_unlock(&done_lock);
  double dt = zb_now() - t0;
  zb_phase_end(ops * nthreads);

  zb_report("ops", (double)(ops * nthreads) / dt, "ops/s", true);
  zb_report("time", dt, "s", false);
  for (unsigned c = 0; c < nthreads; c++) {
    for (uint64_t i = 0; i < nslots; i++) {
      zb_check(ch[c].slot[i], ch[c].size[i], ch[c].seed[i]);
      free(ch[c].slot[i]);
    }
    free(ch[c].slot);
    free(ch[c].size);
    free(ch[c].seed);
  }
  free(ch);
  fprintf(stderr, "larson: %llu threads started\n", (unsigned long long)threads_started);
  return 0;
}
