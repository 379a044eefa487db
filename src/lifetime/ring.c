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
 *
 * The producer's window and idle return. The producer writes only chunks below `win`, a position at most
 * `slack` (n/16) chunks past its head and never past tail + n; it moves win forward only in its slow path,
 * under r->lock. So the chunks in [win, tail + n) are free and out of the producer's reach until it takes
 * the lock: the background purger's hook (src/idle.h) purges them (trylock; skip if busy) once neither side
 * has moved for the purge delay. The fast path takes no lock and costs what it did: one compare with win
 * (instead of with tail_seen + n). An idle ring keeps the live messages and at most `slack` chunks ahead of
 * the head resident.
 *
 * Tags: a message's position (head when it was placed) identifies it for ever; the chunk index is the
 * position modulo n. zc_ring_free_tagged compares the caller's tag with the position of the message that
 * now starts at the pointer (computed from the tail), which catches a double free a full lap later.
 */
#include "idle.h"
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
  size_t slack;          /* how far past the head the producer's window reaches (n / 16, at least 1) */
  zc_idle_t idle;
  /* producer side */
  uint64_t head __attribute__((aligned(ZC_LT_CACHE_LINE)));
  uint64_t win;       /* the producer writes only chunks below this position (written under lock) */
  uint64_t last_pos;  /* the position (tag) of the message last placed */
  uint64_t tail_seen; /* a tail the producer read; the real one is never lower */
  uint64_t res_head;  /* an open reservation: the head it will publish at commit (0: none) */
  size_t res_idx, res_k, res_pad, res_size;
  rg_ctr_t allocs, alloc_chunks, alloc_bytes, full, pad_chunks, peak;
  rg_ctr_t trim_lo, trim_hi; /* positions [lo, hi) whose chunks were last purged by zc_ring_trim */
  rg_ctr_t trimmed;          /* bytes purged by zc_ring_trim and the purger, ever */
  zc_lock_t lock;            /* win's moves and every purge (producer's slow path, trim, the purger) */
  uint64_t idle_allocs, idle_tail, idle_since; /* the purger's view, under lock: when either side last moved */
  bool idle_done;            /* the purger trimmed since the last move */
  /* consumer side */
  uint64_t tail __attribute__((aligned(ZC_LT_CACHE_LINE)));
  uint64_t head_seen; /* a head the consumer read; the real one is never lower */
  rg_ctr_t frees, freed_chunks, freed_bytes, pad_passed, errors;
  /* a producer waiting for room (zc_ring_alloc_wait): it sets waiting, the consumer's tail walk bumps
   * wake_seq and wakes it (one line the producer writes only when it is about to sleep) */
  _Atomic uint32_t waiting __attribute__((aligned(ZC_LT_CACHE_LINE)));
  _Atomic uint32_t wake_seq;
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

/* Locked: purge the OS pages wholly inside the free positions [from, tail + n) (from >= head); the bytes. */
static uint64_t purge_free(zc_ring_t *r, uint64_t from, uint64_t tail) {
  uint64_t end = tail + r->n;
  size_t ps = zc_os_page_size();
  uint64_t purged = 0;
  for (uint64_t pos = from; pos < end;) {
    size_t idx = ring_idx(r, pos);
    size_t run = r->n - idx < end - pos ? r->n - idx : (size_t)(end - pos); /* up to the buffer's end */
    uintptr_t a = zc_lt_align_up((uintptr_t)(r->data + idx * r->chunk), ps);
    uintptr_t b = ((uintptr_t)(r->data + (idx + run) * r->chunk)) & ~(uintptr_t)(ps - 1);
    if (b > a && zc_os_purge((void *)a, b - a, (int)zc_opt(zc_option_purge_mode))) purged += b - a;
    pos += run;
  }
  ctr_add(&r->trimmed, purged);
  if (from < end) {
    atomic_store_explicit(&r->trim_lo, from, memory_order_relaxed);
    atomic_store_explicit(&r->trim_hi, end, memory_order_relaxed);
  }
  return purged;
}

/* The purger's pass (idle.h): once neither the head nor the tail has moved for the purge delay, purge the
 * free chunks beyond the producer's window. True while there is (or may soon be) something to purge. */
static bool ring_idle(void *arg) {
  zc_ring_t *r = arg;
  if (!zc_trylock(&r->lock)) return true; /* the producer is in its slow path: next pass */
  uint64_t allocs = ctr_get(&r->allocs), tail = atomic_load_explicit(&r->tail_pub, memory_order_acquire);
  uint64_t now = zc_os_clock_ns(), delay = (uint64_t)zc_opt(zc_option_purge_delay) * 1000000u;
  if (allocs != r->idle_allocs || tail != r->idle_tail) {
    r->idle_allocs = allocs;
    r->idle_tail = tail;
    r->idle_since = now;
    r->idle_done = false;
  } else if (!r->idle_done && now - r->idle_since >= delay) {
    purge_free(r, r->win, tail);
    r->idle_done = true;
  }
  /* live messages will be freed (the tail moves, more to purge): stay awake for them */
  bool pending = !r->idle_done || atomic_load_explicit(&r->head_pub, memory_order_relaxed) != tail;
  zc_unlock(&r->lock);
  return pending;
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
  r->slack = chunks / 16 ? chunks / 16 : 1;
  r->win = r->slack;
  zc_lock_init(&r->lock);
  r->idle.fn = ring_idle;
  r->idle.arg = r;
  zc_idle_register(&r->idle);
  return r;
}

void zc_ring_destroy(zc_ring_t *r) {
  if (r == NULL) return;
  zc_idle_unregister(&r->idle); /* waits for a running pass of the purger */
  zc_os_free(r, r->map_size);
}

/* Producer, slow path: move the window so that positions below need are writable, if the tail allows
 * (need <= tail + n); false if the ring is full. */
static bool ring_extend(zc_ring_t *r, uint64_t need) {
  zc_lock(&r->lock);
  uint64_t tail = atomic_load_explicit(&r->tail_pub, memory_order_acquire), lim = tail + r->n;
  r->tail_seen = tail;
  uint64_t w = r->head + r->slack;
  if (w < need) w = need;
  r->win = w < lim ? w : lim;
  zc_unlock(&r->lock);
  zc_idle_kick(); /* the purger may have stopped while the ring was idle */
  return need <= lim;
}

/* Producer: room for size bytes at the head, inside the window? Sets the message's chunk count, padding and
 * chunk index and returns 0; 1 if the message does not fit below win (the caller moves the window: see
 * ring_room_slow); -1 with errno EMSGSIZE, or EBUSY while a reservation is open. */
static inline int ring_room(zc_ring_t *r, size_t size, size_t *k_out, size_t *pad_out, size_t *idx_out) {
  size_t k = size ? ring_chunks(r, size - 1) + 1 : 1;
  if (zc_lt_unlikely(k > r->max_chunks)) {
    errno = EMSGSIZE;
    return -1;
  }
  if (zc_lt_unlikely(r->res_head != 0)) {
    errno = EBUSY;
    return -1;
  }
  uint64_t head = r->head;
  size_t idx = ring_idx(r, head);
  size_t pad = idx + k > r->n ? r->n - idx : 0;
  *k_out = k;
  *pad_out = pad;
  *idx_out = idx;
  return zc_lt_unlikely(head + pad + k > r->win) ? 1 : 0;
}

/* Producer: ring_room, moving the window when needed; false with errno (EAGAIN when the ring is full). */
static bool ring_room_slow(zc_ring_t *r, size_t size, size_t *k, size_t *pad, size_t *idx) {
  int rc = ring_room(r, size, k, pad, idx);
  if (rc > 0) {
    if (!ring_extend(r, r->head + *pad + *k)) {
      ctr_add(&r->full, 1);
      errno = EAGAIN;
      return false;
    }
    rc = 0;
  }
  return rc == 0;
}

/* Producer: write the records of a message of k chunks (after pad chunks of padding) and publish it. */
static inline void *ring_publish(zc_ring_t *r, size_t size, size_t k, size_t pad, size_t idx) {
  uint64_t head = r->head;
  if (pad) {
    r->rec[idx].kind_len = REC_PAD | (uint32_t)pad;
    r->rec[idx].size = 0;
    head += pad;
    idx = 0;
    ctr_add(&r->pad_chunks, pad);
  }
  r->rec[idx].kind_len = REC_LIVE | (uint32_t)k;
  r->rec[idx].size = (uint32_t)(size > UINT32_MAX ? UINT32_MAX : size);
  r->last_pos = head;
  head += k;
  r->head = head;
  atomic_store_explicit(&r->head_pub, head, memory_order_release);
  ctr_add(&r->allocs, 1);
  ctr_add(&r->alloc_chunks, k);
  ctr_add(&r->alloc_bytes, size);
  /* The peak: head - tail_seen overstates the occupancy by whatever the consumer freed since the producer
   * last looked (up to a whole lap), so a candidate peak is confirmed against the real tail first. Only a
   * candidate above the peak pays that load. */
  if (zc_lt_unlikely(head - r->tail_seen > ctr_get(&r->peak))) {
    r->tail_seen = atomic_load_explicit(&r->tail_pub, memory_order_acquire);
    if (head - r->tail_seen > ctr_get(&r->peak)) atomic_store_explicit(&r->peak, head - r->tail_seen,
                                                                       memory_order_relaxed);
  }
  return r->data + idx * r->chunk;
}

/* Producer, out of line: the window must move (or an error). */
__attribute__((noinline)) static void *ring_alloc_slow(zc_ring_t *r, size_t size) {
  size_t k, pad, idx;
  if (!ring_room_slow(r, size, &k, &pad, &idx)) return NULL;
  return ring_publish(r, size, k, pad, idx);
}

void *zc_ring_alloc(zc_ring_t *r, size_t size) {
  if (zc_lt_unlikely(r == NULL)) {
    errno = EINVAL;
    return NULL;
  }
  size_t k, pad, idx;
  if (zc_lt_likely(ring_room(r, size, &k, &pad, &idx) == 0)) return ring_publish(r, size, k, pad, idx);
  return ring_alloc_slow(r, size); /* a tail call: the fast path keeps no register across a call */
}

void *zc_ring_reserve(zc_ring_t *r, size_t max_size) {
  if (zc_lt_unlikely(r == NULL)) {
    errno = EINVAL;
    return NULL;
  }
  size_t k, pad, idx;
  if (!ring_room_slow(r, max_size, &k, &pad, &idx)) return NULL;
  r->res_head = r->head + pad + k; /* never 0: k >= 1 */
  r->res_idx = idx;
  r->res_k = k;
  r->res_pad = pad;
  r->res_size = max_size;
  return r->data + (pad ? 0 : idx) * r->chunk;
}

int zc_ring_commit(zc_ring_t *r, void *p, size_t size) {
  if (r == NULL || r->res_head == 0 || p != r->data + (r->res_pad ? 0 : r->res_idx) * r->chunk) {
    errno = EINVAL;
    return -1;
  }
  size_t k = size ? ring_chunks(r, size - 1) + 1 : 1;
  if (size > r->res_size) {
    errno = EMSGSIZE;
    return -1;
  }
  r->res_head = 0;
  ring_publish(r, size, k, r->res_pad, r->res_idx); /* fewer chunks than reserved: the rest stays free */
  return 0;
}

void zc_ring_cancel(zc_ring_t *r) {
  if (r) r->res_head = 0;
}

void *zc_ring_alloc_wait(zc_ring_t *r, size_t size, long timeout_ms) {
  void *p = zc_ring_alloc(r, size);
  if (p != NULL || errno != EAGAIN || timeout_ms == 0) return p;
  uint64_t now = zc_os_clock_ns(), deadline = now + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
  for (;;) {
    uint32_t seq = atomic_load_explicit(&r->wake_seq, memory_order_acquire);
    atomic_store_explicit(&r->waiting, 1, memory_order_seq_cst);
    if ((p = zc_ring_alloc(r, size)) != NULL || errno != EAGAIN) break;
    if (timeout_ms > 0 && (now = zc_os_clock_ns()) >= deadline) {
      errno = ETIMEDOUT;
      break;
    }
    /* Sleep until the consumer's tail walk wakes us; in slices of at most 1 ms, so a wake-up missed in the
     * window between our check and the consumer's (it reads `waiting` without a fence) costs 1 ms, not a
     * hang. */
    int64_t slice = 1000000;
    if (timeout_ms > 0 && deadline - now < (uint64_t)slice) slice = (int64_t)(deadline - now);
    zc_os_futex_wait_shared((uint32_t *)&r->wake_seq, seq, slice);
  }
  atomic_store_explicit(&r->waiting, 0, memory_order_relaxed);
  return p;
}

uint64_t zc_ring_tag(const zc_ring_t *r) { return r ? r->last_pos : 0; }

void zc_ring_trim(zc_ring_t *r) {
  if (r == NULL || r->res_head != 0) return;
  /* The free area [head, tail + n) belongs to the producer (this thread): purge its whole OS pages. */
  zc_lock(&r->lock);
  uint64_t tail = atomic_load_explicit(&r->tail_pub, memory_order_acquire);
  r->tail_seen = tail;
  purge_free(r, r->head, tail);
  zc_unlock(&r->lock);
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
  if (zc_lt_unlikely(atomic_load_explicit(&r->waiting, memory_order_relaxed))) {
    atomic_store_explicit(&r->waiting, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->wake_seq, 1, memory_order_release);
    zc_os_futex_wake_shared((uint32_t *)&r->wake_seq, 1);
  }
}

/* The consumer's free; with `tagged`, the message at p must be the one placed at position tag. */
static inline void ring_free(zc_ring_t *r, void *p, bool tagged, uint64_t tag) {
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
  if (tagged && zc_lt_unlikely(pos != tag)) {
    bad_free(r, p, tag < pos && ring_idx(r, tag) == idx
                       ? "double free: that message is gone, its chunk holds a newer one (tag of an earlier lap)"
                       : "the tag does not match the message at this pointer");
    return;
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

void zc_ring_free(zc_ring_t *r, void *p) { ring_free(r, p, false, 0); }
void zc_ring_free_tagged(zc_ring_t *r, void *p, uint64_t tag) { ring_free(r, p, true, tag); }

void zc_ring_stats(zc_ring_t *r, zc_ring_stats_t *out) {
  memset(out, 0, sizeof *out);
  if (r == NULL) return;
  /* The consumer's side first, then the producer's: a free is counted only after its allocation was (the
   * consumer read head_pub with acquire before freeing), so each producer count read later is at least the
   * matching consumer count, and the differences cannot wrap. They are clamped all the same. */
  uint64_t tail = atomic_load_explicit(&r->tail_pub, memory_order_acquire);
  uint64_t frees = ctr_get(&r->frees), fchunks = ctr_get(&r->freed_chunks), fbytes = ctr_get(&r->freed_bytes);
  uint64_t passed = ctr_get(&r->pad_passed);
  atomic_thread_fence(memory_order_acquire);
  uint64_t head = atomic_load_explicit(&r->head_pub, memory_order_acquire);
  uint64_t allocs = ctr_get(&r->allocs), achunks = ctr_get(&r->alloc_chunks), abytes = ctr_get(&r->alloc_bytes);
  uint64_t pad = ctr_get(&r->pad_chunks);
  uint64_t ch = r->chunk;
  out->chunk_size = ch;
  out->chunks = r->n;
  out->held = (uint64_t)r->n * ch;
  out->allocs = allocs;
  out->frees = frees <= allocs ? frees : allocs;
  /* Between the two reads both sides may have moved: clamp to what a snapshot can hold. */
  uint64_t occ = head >= tail ? head - tail : 0, used = achunks >= fchunks ? achunks - fchunks : 0;
  out->occupied = (occ < r->n ? occ : r->n) * ch;
  out->in_use = (used < r->n ? used : r->n) * ch;
  out->requested = abytes >= fbytes ? abytes - fbytes : 0;
  if (out->requested > out->in_use) out->requested = out->in_use;
  out->peak = ctr_get(&r->peak) * ch;
  uint64_t unpassed = pad >= passed ? pad - passed : 0;
  out->wasted = (unpassed < r->n ? unpassed : r->n) * ch;
  /* Resident: the buffer less what the last trim purged and the head has not reached again since. */
  uint64_t lo = ctr_get(&r->trim_lo), hi = ctr_get(&r->trim_hi), from = head > lo ? head : lo;
  uint64_t gone = hi > from ? (hi - from) * ch : 0;
  out->resident = out->held > gone ? out->held - gone : 0;
  out->trimmed = ctr_get(&r->trimmed);
  out->padding_total = pad * ch;
  out->full = ctr_get(&r->full);
  out->errors = ctr_get(&r->errors);
}
