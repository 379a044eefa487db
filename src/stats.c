/* Layer 10, statistics. Nothing here runs on the fast paths: counters are kept by the slow paths (page
 * refills, remote hand-overs, purges) and the rest is gathered when asked. The per-class figures come from
 * a walk of each heap's segments under that heap's lock, which is what keeps those segments mapped and
 * their list still (every segment list change and every unmap of a heap's segment is made under it); the
 * page descriptors inside are read with relaxed atomic loads and never followed as lists, since their
 * owners change queues, counts and states without the lock. So the walk is safe while other threads run
 * (at exit too); its per-class figures are a snapshot, exact when the other threads are quiet.
 */
#include "internal.h"
#include "large.h"

#include <string.h>

typedef struct class_row_s {
  uint64_t pages, blocks_used, blocks_capacity, refills;
} class_row_t;

typedef struct gather_s {
  zc_stats_t s;
  class_row_t rows[ZC_CLASS_COUNT];
  uint64_t page_bytes, pages_fresh, pages_reused, reclaimed;
} gather_t;

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define ZC_STATS_PAIRS_SHOWN 16 /* thread pairs in the text and JSON reports (zc_stats_pairs has them all) */

/* The pages in use of segment s (its owner's h->lock held, or abandoned_lock for an abandoned segment). */
static void gather_segment(zc_segment_t *s, void *arg) {
  gather_t *g = arg;
  for (uint32_t i = 0; i < s->pages_touched; i++) { /* beyond: never taken (segment.c) */
    zc_page_t *pg = &s->pages[i];
    if (LOAD(pg->state) != ZC_PAGE_IN_USE) continue;
    unsigned c = LOAD(pg->class_idx);
    if (c == 0 || c >= ZC_CLASS_COUNT) continue; /* being initialised */
    if (pg->reclaimed != 0) continue; /* emptied and purged, its owner has not taken it back yet (h->lock) */
    uint32_t used = LOAD(pg->used), held = LOAD(pg->held), reserved = LOAD(pg->reserved);
    /* Blocks other threads handed back (thread_free) are freed: the owner takes them back at its next
     * refill of the page, but a page that is not current may wait for that indefinitely. Read after used:
     * the owner's collect empties thread_free before it lowers used, so the difference never counts a
     * block twice (at worst, during a collect, a handed-back block as still in use). */
    uint32_t handed = ZC_TF_COUNT(__atomic_load_n(&s->pages[i].remote.thread_free, __ATOMIC_ACQUIRE));
    used = used > held ? used - held : 0;
    used = used > handed ? used - handed : 0;
    if (used > reserved) used = reserved;
    g->rows[c].pages++;
    g->rows[c].blocks_used += used;
    g->rows[c].blocks_capacity += reserved;
    g->page_bytes += (uint64_t)reserved * zc_class_size[c];
  }
}

static void gather_heap(zc_heap_t *h, void *arg) {
  gather_t *g = arg;
  zc_lock(&h->lock);
  if (h->live) g->s.threads++;
  for (int k = 0; k < ZC_SEG_KINDS; k++)
    for (zc_segment_t *s = h->segments[k]; s != NULL; s = s->next) gather_segment(s, g);
  for (unsigned c = 1; c < ZC_CLASS_COUNT; c++) g->rows[c].refills += LOAD(h->stat_class_refills[c]);
  uint64_t rf, rb;
  zc_heap_remote_totals(h, &rf, &rb);
  g->s.remote_frees += rf;
  g->s.remote_batches += rb;
  g->pages_fresh += h->stat_pages_fresh;
  g->pages_reused += h->stat_pages_reused;
  g->reclaimed += LOAD(h->stat_reclaimed);
  zc_unlock(&h->lock);
}

static void gather(gather_t *g) {
  memset(g, 0, sizeof *g);
  zc_heaps_visit(gather_heap, g);
  /* An exited thread's segments until a live thread adopts them: their blocks are live (another thread
   * still frees them) and their pages committed. */
  zc_segments_visit_abandoned(gather_segment, g);
  zc_segment_policy_t pol;
  zc_segments_policy(&pol);
  zc_large_stats_t ls;
  zc_large_stats(&ls);
  for (unsigned c = 1; c < ZC_CLASS_COUNT; c++) g->s.allocated += g->rows[c].blocks_used * zc_class_size[c];
  g->s.allocated += ls.live_bytes;
  /* pol.dirty: free pages that may be resident wherever they are (heaps, abandoned and cached segments) */
  g->s.committed = g->page_bytes + pol.dirty + ls.live_bytes + ls.cached_dirty;
  g->s.purged = zc_segments_purged_bytes() + ls.purged;
  g->s.reserved = zc_segments_reserved_bytes() + ls.mapped;
  g->s.rss = zc_os_rss();
  g->s.peak_rss = zc_os_peak_rss();
  if (g->s.peak_rss < g->s.rss) g->s.peak_rss = g->s.rss; /* the kernel updates the peak lazily */
  g->s.segments = zc_segments_live();
  g->s.large_live = ls.live_regions;
  g->s.large_cached = ls.cached_dirty + ls.cached_clean;
  g->s.abandoned = zc_segments_abandoned_count();
  g->s.errors = zc_error_count();
  g->s.dirty = pol.dirty + ls.cached_dirty;
  g->s.dirty_budget = pol.budget;
  g->s.purge_calls = pol.purge_calls + ls.purge_calls;
  g->s.purge_misses = pol.misses + ls.misses;
  g->s.purge_miss_bytes = pol.miss_bytes + ls.miss_bytes;
  g->s.segments_cached = pol.cached;
  g->s.segments_mapped = pol.maps;
  g->s.pages_taken = g->pages_fresh + g->pages_reused;
  g->s.pages_reclaimed = g->reclaimed;
}

ZC_API void zc_stats_get(zc_stats_t *out) {
  gather_t g;
  gather(&g);
  *out = g.s;
}

/* ---- text ---- */

typedef struct out_s {
  char buf[4096];
  size_t len;
  int fd;
} out_t;

static void out_flush(out_t *o) {
  if (o->len) zc_os_write(o->fd, o->buf, o->len);
  o->len = 0;
}

static void outf(out_t *o, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  size_t n = zc_vformat(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n >= sizeof line) n = sizeof line - 1;
  if (o->len + n > sizeof o->buf) out_flush(o);
  memcpy(o->buf + o->len, line, n);
  o->len += n;
}

static const char *human(char *buf, uint64_t v) {
  static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  uint64_t whole = v, frac = 0;
  while (whole >= 1024 && u < 4) {
    frac = (whole % 1024) * 10 / 1024;
    whole /= 1024;
    u++;
  }
  if (u == 0) zc_format(buf, 32, "%lu B", (unsigned long)whole);
  else zc_format(buf, 32, "%lu.%lu %s", (unsigned long)whole, (unsigned long)frac, unit[u]);
  return buf;
}

ZC_API void zc_stats_print(int fd) {
  gather_t g;
  gather(&g);
  out_t o = {.len = 0, .fd = fd};
  char a[32], b[32], c[32], d[32];
  outf(&o, "zcmem stats (purge: %s, delay %ld ms)\n", zc_opt(zc_option_purge_mode) ? "MADV_FREE" : "MADV_DONTNEED",
       zc_opt(zc_option_purge_delay));
  outf(&o, "  allocated  %s   committed %s   resident (process) %s   peak %s\n", human(a, g.s.allocated),
       human(b, g.s.committed), human(c, g.s.rss), human(d, g.s.peak_rss));
  outf(&o, "  purged     %s   reserved  %s   segments %lu   abandoned %lu   threads %lu\n", human(a, g.s.purged),
       human(b, g.s.reserved), (unsigned long)g.s.segments, (unsigned long)g.s.abandoned, (unsigned long)g.s.threads);
  outf(&o, "  remote frees %lu in %lu hand-overs   large regions live %lu, cached %s   errors %lu\n",
       (unsigned long)g.s.remote_frees, (unsigned long)g.s.remote_batches, (unsigned long)g.s.large_live,
       human(a, g.s.large_cached), (unsigned long)g.s.errors);
  outf(&o, "  pages taken: %lu fresh or purged, %lu still resident (dirty cache)   reclaimed from idle heaps %lu\n",
       (unsigned long)g.pages_fresh, (unsigned long)g.pages_reused, (unsigned long)g.s.pages_reclaimed);
  outf(&o, "  purge policy: dirty %s (budget %s)   %lu purge calls   misses %lu (%s purged, taken again within "
       "the delay)   segments mapped %lu, cached %lu\n", human(a, g.s.dirty), human(b, g.s.dirty_budget),
       (unsigned long)g.s.purge_calls, (unsigned long)g.s.purge_misses, human(c, g.s.purge_miss_bytes),
       (unsigned long)g.s.segments_mapped, (unsigned long)g.s.segments_cached);
  outf(&o, "  %8s %8s %12s %12s %10s %8s\n", "class", "pages", "blocks used", "in use", "refills", "fill%");
  for (unsigned k = 1; k < ZC_CLASS_COUNT; k++) {
    class_row_t *r = &g.rows[k];
    if (r->pages == 0 && r->refills == 0) continue;
    unsigned long fill = r->blocks_capacity ? (unsigned long)(r->blocks_used * 100 / r->blocks_capacity) : 0;
    outf(&o, "  %8u %8lu %12lu %12s %10lu %7lu%%\n", zc_class_size[k], (unsigned long)r->pages,
         (unsigned long)r->blocks_used, human(a, r->blocks_used * zc_class_size[k]), (unsigned long)r->refills, fill);
  }
  zc_pair_stats_t pairs[ZC_STATS_PAIRS_SHOWN];
  size_t npairs = zc_stats_pairs(pairs, ZC_STATS_PAIRS_SHOWN);
  if (npairs != 0)
    outf(&o, "  remote frees by thread pair (%lu pairs%s): freer -> owner, heap id and kernel thread id\n",
         (unsigned long)npairs, npairs > ZC_STATS_PAIRS_SHOWN ? ", the largest shown" : "");
  for (size_t k = 0; k < npairs && k < ZC_STATS_PAIRS_SHOWN; k++) {
    zc_pair_stats_t *e = &pairs[k];
    if (e->owner == ZC_PAIR_OTHER)
      zc_format(b, sizeof b, "others");
    else
      zc_format(b, sizeof b, "heap %lu (tid %lu)", (unsigned long)e->owner, (unsigned long)e->owner_tid);
    outf(&o, "    heap %lu (tid %lu) -> %s: %lu blocks, %s in %lu hand-overs\n", (unsigned long)e->freer,
         (unsigned long)e->freer_tid, b, (unsigned long)e->blocks, human(a, e->bytes), (unsigned long)e->batches);
  }
  out_flush(&o);
}

/* ---- JSON ---- */

ZC_API size_t zc_stats_json(char *buf, size_t cap) {
  gather_t g;
  gather(&g);
  size_t len = 0;
#define J(...) len += zc_format(len < cap ? buf + len : NULL, len < cap ? cap - len : 0, __VA_ARGS__)
  J("{\"allocated\":%lu,\"committed\":%lu,\"purged\":%lu,\"reserved\":%lu,\"rss\":%lu,\"peak_rss\":%lu,",
    (unsigned long)g.s.allocated, (unsigned long)g.s.committed, (unsigned long)g.s.purged,
    (unsigned long)g.s.reserved, (unsigned long)g.s.rss, (unsigned long)g.s.peak_rss);
  J("\"remote_frees\":%lu,\"remote_batches\":%lu,\"segments\":%lu,\"large_live\":%lu,\"large_cached\":%lu,",
    (unsigned long)g.s.remote_frees, (unsigned long)g.s.remote_batches, (unsigned long)g.s.segments,
    (unsigned long)g.s.large_live, (unsigned long)g.s.large_cached);
  J("\"dirty\":%lu,\"dirty_budget\":%lu,\"purge_calls\":%lu,\"purge_misses\":%lu,\"purge_miss_bytes\":%lu,"
    "\"segments_cached\":%lu,\"segments_mapped\":%lu,",
    (unsigned long)g.s.dirty, (unsigned long)g.s.dirty_budget, (unsigned long)g.s.purge_calls,
    (unsigned long)g.s.purge_misses, (unsigned long)g.s.purge_miss_bytes, (unsigned long)g.s.segments_cached,
    (unsigned long)g.s.segments_mapped);
  J("\"pages_reclaimed\":%lu,", (unsigned long)g.s.pages_reclaimed);
  J("\"threads\":%lu,\"abandoned\":%lu,\"errors\":%lu,\"purge_mode\":\"%s\",\"classes\":[",
    (unsigned long)g.s.threads, (unsigned long)g.s.abandoned, (unsigned long)g.s.errors,
    zc_opt(zc_option_purge_mode) ? "MADV_FREE" : "MADV_DONTNEED");
  bool first = true;
  for (unsigned k = 1; k < ZC_CLASS_COUNT; k++) {
    class_row_t *r = &g.rows[k];
    if (r->pages == 0 && r->refills == 0) continue;
    J("%s{\"size\":%u,\"pages\":%lu,\"blocks_used\":%lu,\"blocks_capacity\":%lu,\"refills\":%lu}", first ? "" : ",",
      zc_class_size[k], (unsigned long)r->pages, (unsigned long)r->blocks_used, (unsigned long)r->blocks_capacity,
      (unsigned long)r->refills);
    first = false;
  }
  zc_pair_stats_t pairs[ZC_STATS_PAIRS_SHOWN];
  size_t npairs = zc_stats_pairs(pairs, ZC_STATS_PAIRS_SHOWN);
  J("],\"pairs_total\":%lu,\"pairs\":[", (unsigned long)npairs);
  for (size_t k = 0; k < npairs && k < ZC_STATS_PAIRS_SHOWN; k++) {
    zc_pair_stats_t *e = &pairs[k];
    J("%s{\"freer\":%lu,\"freer_tid\":%lu,\"owner\":%ld,\"owner_tid\":%lu,\"blocks\":%lu,\"bytes\":%lu,"
      "\"batches\":%lu}", k ? "," : "", (unsigned long)e->freer, (unsigned long)e->freer_tid,
      e->owner == ZC_PAIR_OTHER ? -1L : (long)e->owner, (unsigned long)e->owner_tid, (unsigned long)e->blocks,
      (unsigned long)e->bytes, (unsigned long)e->batches);
  }
  J("]}");
#undef J
  return len;
}

/* ZCMEM_STATS=2 at exit. Out of line: its 16 KiB buffer is on the stack only when it is printed (inlined in
 * the destructor, the frame was made at every exit, and the compiler's stack-clash probes touched each of its
 * OS pages: up to 4 pages of the main thread's stack faulted in at the exit of every process). */
static zc_noinline void stats_json_at_exit(void) {
  char buf[16384];
  size_t n = zc_stats_json(buf, sizeof buf - 1);
  if (n > sizeof buf - 2) n = sizeof buf - 2;
  buf[n++] = '\n';
  zc_os_write(2, buf, n);
}

/* ZCMEM_STATS at exit. */
__attribute__((destructor)) static void stats_at_exit(void) {
  long mode = zc_opt(zc_option_stats);
  if (mode == 1) zc_stats_print(2);
  else if (mode == 2) stats_json_at_exit();
}
