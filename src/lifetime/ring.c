/* Layer 8: the chunk ring (include/zcmem_ring.h). One mapping: the ring header, one 8-byte record per
 * chunk, then the chunks.
 *
 * Positions are 64-bit counts of chunks that only grow; chunk index = position % n. Invariants:
 *   tail <= head <= tail + n; every chunk in [tail, head) belongs to a live message, a freed message the
 *   tail has not passed yet, or padding; rec[i] is meaningful only for the first chunk of each of those
 *   (kind LIVE, FREED or PAD, with the length in chunks); records of interior chunks are stale and never
 *   LIVE (a LIVE record is always turned FREED before the tail can pass it).
 * The producer alone writes head and the records in [head, tail + n); the consumer alone writes tail and
 * the records in [tail, head). Each publishes its index with release and reads the other's with acquire,
 * which hands the records over (see the header for the protocol).
 * A message never spans the end of the buffer: if it does not fit before the end, the end becomes one PAD
 * record and the message starts at chunk 0. Messages of at most n/2 chunks therefore always fit once the
 * ring drains (pad < k and pad + k <= n); larger ones are refused with EMSGSIZE.
 */
#include "lifetime.h"
#include "zcmem_ring.h"

#include <errno.h>
#include <string.h>

#define REC_LIVE 0x80000000u
#define REC_FREED 0x40000000u
#define REC_PAD 0x20000000u
#define REC_LEN 0x1fffffffu
#define RING_MAX_CHUNKS ((size_t)REC_LEN)

typedef struct rg_rec_s {
  uint32_t kind_len; /* REC_* | length in chunks */
  uint32_t size;     /* bytes asked for (LIVE and FREED records) */
} rg_rec_t;

typedef _Atomic uint64_t rg_ctr_t; /* a single-writer counter others may read */

struct zc_ring_s {
  char *data;
  rg_rec_t *rec;
  size_t chunk, n, max_chunks, map_size;
  size_t n_mask;         /* n - 1 if n is a power of two, else 0 (then positions use %) */
  unsigned chunk_shift;  /* log2(chunk) if chunk is a power of two, else 0 (then offsets use /) */
  /* producer side */
  uint64_t head __attribute__((aligned(ZC_LT_CACHE_LINE)));
  uint64_t tail_seen; /* a tail the producer read; the real one is never lower */
  rg_ctr_t allocs, alloc_chunks, alloc_bytes, full, pad_chunks, peak;
  /* consumer side */
  uint64_t tail __attribute__((aligned(ZC_LT_CACHE_LINE)));
  uint64_t head_seen; /* a head the consumer read; the real one is never lower */
  rg_ctr_t frees, freed_chunks, freed_bytes, pad_passed, errors;
  /* the shared indexes, one line each */
  _Atomic uint64_t head_pub __attribute__((aligned(ZC_LT_CACHE_LINE)));
  _Atomic uint64_t tail_pub __attribute__((aligned(ZC_LT_CACHE_LINE)));
};

static inline void ctr_add(rg_ctr_t *c, uint64_t v) {
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v, memory_order_relaxed);
}
static inline uint64_t ctr_get(rg_ctr_t *c) { return atomic_load_explicit(c, memory_order_relaxed); }

/* Chunk index of a position, and chunk count of a byte offset: a mask and a shift in the usual
 * power-of-two case, a division otherwise. */
static inline size_t ring_idx(const zc_ring_t *r, uint64_t pos) {
  return r->n_mask ? (size_t)(pos & r->n_mask) : (size_t)(pos % r->n);
}
static inline size_t ring_chunks(const zc_ring_t *r, size_t off) {
  return r->chunk_shift ? off >> r->chunk_shift : off / r->chunk;
}

zc_ring_t *zc_ring_create(size_t chunk_size, size_t chunks) {
  if (chunk_size == 0) chunk_size = 128;
  if (chunk_size % 128 != 0 || chunk_size > ((size_t)1 << 30) || chunks < 2 || chunks > RING_MAX_CHUNKS ||
      chunks > SIZE_MAX / chunk_size) {
    errno = EINVAL;
    return NULL;
  }
  size_t hdr = zc_lt_os_round(sizeof(zc_ring_t) + chunks * sizeof(rg_rec_t));
  size_t body = zc_lt_os_round(chunks * chunk_size);
  if (hdr == 0 || body == 0 || hdr > SIZE_MAX - body) {
    errno = ENOMEM;
    return NULL;
  }
  char *base = zc_os_alloc_aligned(hdr + body, zc_os_page_size());
  if (base == NULL) return NULL;
  zc_ring_t *r = (zc_ring_t *)base; /* zeroed mapping: indexes and counters start at 0 */
  r->rec = (rg_rec_t *)(base + sizeof(zc_ring_t));
  r->data = base + hdr;
  r->chunk = chunk_size;
  r->n = chunks;
  r->max_chunks = chunks / 2;
  r->n_mask = zc_lt_is_pow2(chunks) ? chunks - 1 : 0;
  r->chunk_shift = zc_lt_is_pow2(chunk_size) ? (unsigned)__builtin_ctzl(chunk_size) : 0;
  r->map_size = hdr + body;
  return r;
}

void zc_ring_destroy(zc_ring_t *r) {
  if (r) zc_os_free(r, r->map_size);
}

void *zc_ring_alloc(zc_ring_t *r, size_t size) {
  if (zc_lt_unlikely(r == NULL)) {
    errno = EINVAL;
    return NULL;
  }
  size_t k = size ? ring_chunks(r, size - 1) + 1 : 1;
  if (zc_lt_unlikely(k > r->max_chunks)) {
    errno = EMSGSIZE;
    return NULL;
  }
  uint64_t head = r->head;
  size_t idx = ring_idx(r, head);
  size_t pad = idx + k > r->n ? r->n - idx : 0;
  if (zc_lt_unlikely(head + pad + k - r->tail_seen > r->n)) {
    r->tail_seen = atomic_load_explicit(&r->tail_pub, memory_order_acquire);
    if (head + pad + k - r->tail_seen > r->n) {
      ctr_add(&r->full, 1);
      errno = EAGAIN;
      return NULL;
    }
  }
  if (pad) {
    r->rec[idx].kind_len = REC_PAD | (uint32_t)pad;
    r->rec[idx].size = 0;
    head += pad;
    idx = 0;
    ctr_add(&r->pad_chunks, pad);
  }
  r->rec[idx].kind_len = REC_LIVE | (uint32_t)k;
  r->rec[idx].size = (uint32_t)(size > UINT32_MAX ? UINT32_MAX : size);
  head += k;
  r->head = head;
  atomic_store_explicit(&r->head_pub, head, memory_order_release);
  ctr_add(&r->allocs, 1);
  ctr_add(&r->alloc_chunks, k);
  ctr_add(&r->alloc_bytes, size);
  if (head - r->tail_seen > ctr_get(&r->peak)) atomic_store_explicit(&r->peak, head - r->tail_seen,
                                                                     memory_order_relaxed);
  return r->data + idx * r->chunk;
}

static void bad_free(zc_ring_t *r, void *p, const char *what) {
  ctr_add(&r->errors, 1);
  zc_error("zc_ring_free(%p): %s", p, what);
}

/* Move the tail over every freed message and padding run at the tail. */
static void tail_advance(zc_ring_t *r) {
  uint64_t tail = r->tail, head = r->head_seen;
  for (;;) {
    if (tail == head) {
      head = r->head_seen = atomic_load_explicit(&r->head_pub, memory_order_acquire);
      if (tail == head) break;
    }
    rg_rec_t *rec = &r->rec[ring_idx(r, tail)];
    uint32_t kl = rec->kind_len;
    if (kl & REC_LIVE) break;
    if (kl & REC_PAD) ctr_add(&r->pad_passed, kl & REC_LEN);
    tail += kl & REC_LEN;
  }
  r->tail = tail;
  atomic_store_explicit(&r->tail_pub, tail, memory_order_release);
}

void zc_ring_free(zc_ring_t *r, void *p) {
  if (p == NULL) return;
  if (zc_lt_unlikely(r == NULL)) {
    zc_error("zc_ring_free(%p): no ring given", p);
    return;
  }
  uintptr_t off = (uintptr_t)p - (uintptr_t)r->data;
  if (zc_lt_unlikely((uintptr_t)p < (uintptr_t)r->data || off >= r->n * r->chunk)) {
    bad_free(r, p, "not inside this ring");
    return;
  }
  if (zc_lt_unlikely((ring_chunks(r, off) * r->chunk) != off)) {
    bad_free(r, p, "not on a chunk boundary (interior pointer)");
    return;
  }
  size_t idx = ring_chunks(r, off);
  /* Its position relative to the tail must lie in [tail, head) before its record may be read. */
  uint64_t tail = r->tail;
  size_t tidx = ring_idx(r, tail);
  uint64_t pos = tail + (idx >= tidx ? idx - tidx : idx + r->n - tidx);
  if (pos >= r->head_seen) {
    r->head_seen = atomic_load_explicit(&r->head_pub, memory_order_acquire);
    if (pos >= r->head_seen) {
      bad_free(r, p, "no live message there (chunk not allocated)");
      return;
    }
  }
  rg_rec_t *rec = &r->rec[idx];
  uint32_t kl = rec->kind_len;
  if (zc_lt_unlikely((kl & REC_LIVE) == 0)) {
    bad_free(r, p, "not the start of a live message (double free, interior chunk or padding)");
    return;
  }
  rec->kind_len = REC_FREED | (kl & REC_LEN);
  ctr_add(&r->frees, 1);
  ctr_add(&r->freed_chunks, kl & REC_LEN);
  ctr_add(&r->freed_bytes, rec->size);
  /* Walk if the tail now sits on a freed message (this one) or on padding (the message after it). */
  if ((r->rec[tidx].kind_len & REC_LIVE) == 0) tail_advance(r);
}

void zc_ring_stats(zc_ring_t *r, zc_ring_stats_t *out) {
  memset(out, 0, sizeof *out);
  if (r == NULL) return;
  uint64_t head = atomic_load_explicit(&r->head_pub, memory_order_acquire);
  uint64_t tail = atomic_load_explicit(&r->tail_pub, memory_order_acquire);
  uint64_t ch = r->chunk;
  out->chunk_size = ch;
  out->chunks = r->n;
  out->held = (uint64_t)r->n * ch;
  out->allocs = ctr_get(&r->allocs);
  out->frees = ctr_get(&r->frees);
  out->in_use = (ctr_get(&r->alloc_chunks) - ctr_get(&r->freed_chunks)) * ch;
  out->requested = ctr_get(&r->alloc_bytes) - ctr_get(&r->freed_bytes);
  out->occupied = (head >= tail ? head - tail : 0) * ch;
  out->peak = ctr_get(&r->peak) * ch;
  uint64_t pad = ctr_get(&r->pad_chunks), passed = ctr_get(&r->pad_passed);
  out->wasted = (pad >= passed ? pad - passed : 0) * ch;
  out->padding_total = pad * ch;
  out->full = ctr_get(&r->full);
  out->errors = ctr_get(&r->errors);
}
