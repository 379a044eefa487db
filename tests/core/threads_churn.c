/* Thread churn: 100k short-lived threads (20k with --quick), in waves of 8 at a time, each allocating and
 * freeing, and some of its blocks freed by a thread of the next wave. The heaps of dead threads must be
 * given back or adopted: resident memory at the end stays within 16 MiB of what it was after the first
 * 5000 threads, the count of live heaps returns to a handful, the segments of dead threads are adopted
 * (at most two waves' worth wait at the end) and the segment count does not grow with the threads.
 * Linked with libzcmem.so (the malloc override): thread start and exit in glibc allocate through it too.
 * Args: [--quick] [threads=N] [seed=N].
 */
#define _GNU_SOURCE
#include "zc_test.h"
#include "zcmem.h"

#include <dlfcn.h>
#include <pthread.h>

#define WAVE 8
#define HANDOFF 8 /* blocks each thread leaves to its successor in the next wave */

typedef struct {
  unsigned id;
  uint64_t seed;
  void *inbox[HANDOFF];  /* left by the predecessor, freed by this thread */
  void *outbox[HANDOFF]; /* left for the successor */
  int bad;
} lane_t;

static lane_t lanes[WAVE];

static void *thread_main(void *arg) {
  lane_t *l = arg;
  rng_t r;
  rng_seed(&r, l->seed ^ l->id);
  for (int i = 0; i < HANDOFF; i++) {
    unsigned char *p = l->inbox[i];
    if (p && (p[0] != (unsigned char)i || p[1] != 0x77)) l->bad++;
    free(p);
    l->inbox[i] = NULL;
  }
  void *mine[64];
  for (int i = 0; i < 64; i++) {
    size_t n = (size_t)rng_range(&r, 16, 2048);
    if (i == 0 && (l->id & 15) == 0) n = 100000; /* now and then a large block */
    mine[i] = malloc(n);
    if (!mine[i]) {
      l->bad++;
      continue;
    }
    memset(mine[i], (int)i, n);
  }
  for (int i = 0; i < 64; i++) {
    if (i < HANDOFF) {
      unsigned char *p = mine[i];
      if (p) {
        p[0] = (unsigned char)i;
        p[1] = 0x77;
      }
      l->outbox[i] = p;
    } else {
      free(mine[i]);
    }
  }
  return NULL;
}

static uint64_t current_segments(void) {
  zc_stats_t st;
  zc_stats_get(&st);
  return st.segments;
}

int main(int argc, char **argv) {
  int quick = quick_mode(argc, argv);
  unsigned long total = (unsigned long)arg_value(argc, argv, "threads", quick ? 20000 : 100000);
  uint64_t seed = arg_value(argc, argv, "seed", 7);
  CHECKF(is_zcmem_malloc(), "malloc is not zcmem's");
  size_t rss_5k = 0, rss_peak = 0;
  uint64_t seg_5k = 0, seg_max = 0;
  pthread_t th[WAVE];
  unsigned long started = 0;
  int bad = 0;
  while (started < total) {
    for (int k = 0; k < WAVE; k++) {
      /* the outbox of the previous thread of this lane becomes the inbox of the new one */
      memcpy(lanes[k].inbox, lanes[k].outbox, sizeof lanes[k].inbox);
      memset(lanes[k].outbox, 0, sizeof lanes[k].outbox);
      lanes[k].id = (unsigned)(started + (unsigned long)k);
      lanes[k].seed = seed;
      int rc = pthread_create(&th[k], NULL, thread_main, &lanes[k]);
      REQUIRE(rc == 0);
    }
    for (int k = 0; k < WAVE; k++) pthread_join(th[k], NULL);
    started += WAVE;
    size_t rss = rss_bytes();
    if (rss > rss_peak) rss_peak = rss;
    if (rss_5k == 0 && started >= 5000) {
      rss_5k = rss;
      seg_5k = current_segments();
    }
    if (rss_5k != 0 && (started & 1023) < WAVE) {
      uint64_t sg = current_segments();
      if (sg > seg_max) seg_max = sg;
    }
  }
  for (int k = 0; k < WAVE; k++) {
    for (int i = 0; i < HANDOFF; i++) free(lanes[k].outbox[i]);
    bad += lanes[k].bad;
  }
  size_t rss_end = rss_bytes();
  zc_stats_t st;
  zc_stats_get(&st);
  printf("threads_churn: %lu threads; RSS after 5000: %zu KiB, peak %zu KiB, end %zu KiB; live heaps %llu, "
         "abandoned segments %llu, segments %llu (at most %llu after 5000 threads)\n",
         started, rss_5k >> 10, rss_peak >> 10, rss_end >> 10, (unsigned long long)st.threads,
         (unsigned long long)st.abandoned, (unsigned long long)st.segments, (unsigned long long)seg_max);
  /* dead threads' segments are adopted by the next threads: what waits for adoption at the end is at most
   * the last wave's, and the segment count does not grow with the number of threads */
  CHECKF(st.abandoned <= 2 * WAVE, "%llu segments of dead threads were never adopted",
         (unsigned long long)st.abandoned);
  CHECKF(st.segments <= seg_5k + 2 * WAVE && seg_max <= seg_5k + 4 * WAVE,
         "segments grew with the threads: %llu after 5000 threads, %llu at most, %llu at the end",
         (unsigned long long)seg_5k, (unsigned long long)seg_max, (unsigned long long)st.segments);
  CHECKF(bad == 0, "%d handed-over blocks were damaged or allocations failed", bad);
  CHECKF(rss_end <= rss_5k + MIB(16), "RSS grew from %zu KiB after 5000 threads to %zu KiB", rss_5k >> 10,
         rss_end >> 10);
  CHECKF(rss_peak <= rss_5k + MIB(32), "peak RSS %zu KiB vs %zu KiB after 5000 threads", rss_peak >> 10,
         rss_5k >> 10);
  CHECKF(st.threads <= 4, "%llu heaps still live after every worker thread exited",
         (unsigned long long)st.threads);
  CHECKF(st.errors == 0, "the allocator reported %llu error(s)", (unsigned long long)st.errors);
  return check_exit("core_threads_churn");
}
