/* The data model of the small/medium allocator (layers 2-5): segments, pages, heaps.
 *
 * Includes: os.h, segmap.h, sizeclass.h. Used by segment.c, heap.c, alloc.c, free.c, stats.c.
 *
 * A segment is 4 MiB, aligned to 4 MiB, owned by one heap (one thread). Its header (this struct) sits at
 * its base; a block finds its segment by masking and its page by a shift, no lookup table. A small
 * segment holds 64 pages of 64 KiB (classes up to 8 KiB), a medium segment 32 pages of 128 KiB (classes up
 * to 64 KiB); page 0 starts after the header, so it is a little shorter.
 *
 * A page holds blocks of one size class and three free lists (the sharding of mimalloc):
 *   free         blocks malloc pops; only the owner touches it
 *   local_free   blocks the owner freed; swapped into free when free runs dry, so malloc takes the slow path
 *                once per page-full of allocations and housekeeping has a place to run
 *   thread_free  blocks other threads freed: a lock-free stack; a freer pushes a whole chain of blocks of
 *                this page with one compare-and-swap, the owner takes the whole stack with one exchange.
 *                The top 16 bits of the word count the blocks in the stack, so the owner learns how many
 *                came back without walking (and missing the cache on) blocks another core just wrote.
 *                It lives in the page's remote line (zc_page_remote_t), the descriptor's third cache line.
 * The remote line: what another thread's free of a block of the page reads and writes (thread_free, the
 * page's 64-bit block grid and limit, and copies of start, key and tag), on a cache line of its own (the
 * descriptor's third). The owner's malloc and small free use the descriptor's first line (with a 32-bit grid
 * and limit of their own in a small segment), which other threads never touch; the owner's medium free and
 * slow paths read the remote line's 64-bit test. When a
 * consumer read that line on every free of a producer's block, the producer missed the cache on its own
 * page descriptor at nearly every malloc (bench/prodcons: 4.9 M msg/s; with the remote line, see
 * docs/design.md). The owner writes the line when the page is set up, extended or broken
 * (zc_page_set_grid, zc_page_publish, zc_page_set_span); its fields are fixed while a block of the page is live, which is what
 * every correct free holds.
 * Safe-linking: the link a free block stores (in its first word, which the program can overwrite after a
 * use-after-free) is the next block's address XOR the page's key (a per-process secret from the platform's
 * entropy mixed with the page's address), on all three lists; the heads kept in the descriptor are plain.
 * A block is checked when it is popped (inside the page's carved area, on the block grid) before it is
 * handed out or followed, so a corrupted link is reported, never followed. A free block also carries the
 * page's tag (a second secret) in its second word, which malloc clears: a free that finds the tag is a
 * double free, whoever frees and whichever list the block is on (a program would have to store exactly
 * the 64-bit tag there itself to be taken for one).
 * Invariant: used == blocks handed out and not yet returned to free/local_free (blocks waiting in
 * thread_free or in some thread's pending chain still count as used), plus held (one extra count on the
 * first page of each class queue). A page with used == 0 is empty.
 */
#ifndef ZC_TYPES_H
#define ZC_TYPES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "os.h"
#include "segmap.h"
#include "sizeclass.h"

#if defined(__GNUC__)
#define zc_likely(x) __builtin_expect(!!(x), 1)
#define zc_unlikely(x) __builtin_expect(!!(x), 0)
#define zc_noinline __attribute__((noinline))
#define zc_inline static inline __attribute__((always_inline))
#define zc_cold __attribute__((cold))
#else
#define zc_likely(x) (x)
#define zc_unlikely(x) (x)
#define zc_noinline
#define zc_inline static inline
#define zc_cold
#endif

#ifndef ZC_DEBUG
#define ZC_DEBUG 0
#endif

#define ZC_SMALL_PAGE_SHIFT 16u   /* 64 KiB */
/* 128 KiB: the least that holds a 64 KiB block in page 0 (112 KiB after the header). A page in use pins
 * what its blocks were carved into, and a thread that holds one or two blocks of a medium class holds a page
 * of that class. bench/rounds (8 threads, each holding a few blocks per medium class; 3 interleaved runs,
 * busy machine) with 512 KiB pages and their stale tails purged: 0.0126-0.0153 faults per object, peak RSS
 * 30.2-30.3 MiB; 256 KiB: 0.0074, 26.9 MiB; 128 KiB with no tail purge: 0.0054-0.0071, 24.1-25.7 MiB. */
#define ZC_MEDIUM_PAGE_SHIFT 17u
#define ZC_SEGMENT_PAGES_MAX 64u
#define ZC_SEGMENT_HEADER ((size_t)16 * 1024) /* page 0 starts here: room for the header (64 descriptors of
                                                 256 B, the segment fields in the first), 16 KiB-aligned */
#define ZC_NATURAL_ALIGN_MAX ((size_t)4096)   /* larger alignments go to the large-region layer */
/* The heap's direct table: one slot per request size up to ZC_DIRECT_MAX, so malloc indexes it with the size
 * itself (no rounding: 2 instructions fewer than one slot per 8 bytes, for 7 KiB more per heap). */
#ifndef ZC_DIRECT_GRAIN_SHIFT
#define ZC_DIRECT_GRAIN_SHIFT 0u
#endif
#define ZC_DIRECT_SLOTS ((ZC_DIRECT_MAX >> ZC_DIRECT_GRAIN_SHIFT) + 1)
#define ZC_DIRECT_INDEX(n) (((n) + ((size_t)1 << ZC_DIRECT_GRAIN_SHIFT) - 1) >> ZC_DIRECT_GRAIN_SHIFT)
#ifndef ZC_REMOTE_BATCH
#define ZC_REMOTE_BATCH 64u                   /* blocks a freer gathers before one hand-over */
#endif
/* Pages a freer gathers blocks for at once (a direct-mapped table). Measured on bench/prodcons (median of
 * 5 interleaved runs, messages of ~12 size classes): 1 slot 5.87 M msg/s, 4 slots 4.83 M, 8 slots 4.56 M,
 * 32 slots 4.12 M. More slots batch better (2.1 -> 9.5 blocks per hand-over) but keep blocks away from the
 * producer longer, and it then reuses colder memory: the prompt return wins. */
#ifndef ZC_REMOTE_SLOTS
#define ZC_REMOTE_SLOTS 1u
#endif
/* Blocks a freer keeps in all its chains at most: reaching it hands every chain over, so no block waits
 * for more than this many of the freer's remote frees, however many slots gather them. */
#ifndef ZC_REMOTE_PENDING_MAX
#define ZC_REMOTE_PENDING_MAX ZC_REMOTE_BATCH
#endif
#define ZC_TF_SHIFT 48u                       /* thread_free: count above, pointer below */
#define ZC_TF_PTR(v) ((zc_block_t *)((v) & (((uintptr_t)1 << ZC_TF_SHIFT) - 1)))
#define ZC_TF_COUNT(v) ((uint32_t)((v) >> ZC_TF_SHIFT))
#define ZC_PAGE_BLOCKS_MAX 4096u               /* 64 KiB / 16: the most blocks a page holds */

/* The per-process secrets of safe-linking and of the free tag (process.c draws them from the platform's entropy before the first
 * page is made; never zero). */
extern uintptr_t zc_link_secret, zc_tag_secret;

typedef struct zc_block_s {
  uintptr_t link; /* the next block's address XOR the page's key (NULL is stored as the key itself) */
  uintptr_t tag;  /* the page's tag while the block is free (every block is at least 16 bytes) */
} zc_block_t;

struct zc_heap_s;
struct zc_segment_s;

typedef enum zc_page_state_e {
  ZC_PAGE_FREE = 0,   /* not holding blocks; dirty or purged per the segment's masks */
  ZC_PAGE_IN_USE = 1, /* holds blocks of one class, is in its heap's queue for that class */
  ZC_PAGE_BROKEN = 2, /* its lists were found corrupted (a double free, a write after free): it leaves every
                         list and is never reused, so no live block of it can be handed out again */
} zc_page_state_t;

/* A page's remote line (see the top of this file): thread_free, and the copies of the descriptor's fields a
 * remote free checks a block with. Other threads read the copies with relaxed loads (a bad free may race
 * with the owner's writes; a correct one is ordered after them by the hand-off of the block). */
typedef struct zc_page_remote_s {
  _Alignas(64) _Atomic(uintptr_t) thread_free; /* remote frees: chain head | (blocks in the chain << 48) */
  uint8_t *start;
  uint64_t grid, limit;                      /* the 64-bit block test of every page (zc_block_ok): other
                                                threads' frees, the owner's medium and slow paths; the owner
                                                writes them (zc_page_set_grid, zc_page_set_span) */
  uintptr_t key, tag;
  uint32_t block_size;                       /* for the freer's statistics (bytes handed over) */
} zc_page_remote_t;

typedef struct zc_page_s {
  /* first cache line: what malloc and the owner's free touch */
  zc_block_t *free;                 /* owner: pop on malloc */
  zc_block_t *local_free;           /* owner: push on local free */
  uint8_t *start;                   /* first block */
  uint64_t span;                    /* capacity * block_size: blocks live in [start, start + span) (the
                                       owner writes it, slow paths of other threads read it: relaxed
                                       atomics); 64 bits so that malloc's range test compares with memory */
  uintptr_t key;                    /* safe-linking key of this page's links */
  uintptr_t tag;                    /* written in the second word of every block put on a list (and
                                       cleared by malloc): a free that finds it there is a double free */
  uint32_t grid32;                  /* a page of a small segment: ceil(2^32 / block_size), +1 for a power
                                       of two (zc_block_ok_small); 0 in a medium segment's page */
  uint32_t limit32;                 /* capacity * (grid32 * block_size mod 2^32), 0 in a medium page: the
                                       owner's small free tests (uint32)((uint32)(p - start) * grid32) <
                                       limit32 (range and grid, one multiply and one compare). Every other
                                       block test uses the remote line's 64-bit grid and limit */
  uint32_t used;                    /* see the invariant above */
  uint32_t spare32;
  /* second cache line: the owner's slow paths */
  _Alignas(64) struct zc_page_s *next; /* heap queue of its class (in use) or dirty list (free) */
  struct zc_page_s *prev;
  uint64_t freed_at;                /* clock when it became free (for the purge delay) */
  uint32_t block_size;
  uint16_t capacity;                /* blocks carved from the page so far (the rest is untouched) */
  uint16_t reserved;                /* blocks the page can hold (at most 64 KiB / 16) */
  uint8_t class_idx;
  uint8_t state;                    /* zc_page_state_t */
  uint8_t index;                    /* position in its segment */
  uint8_t dirty;                    /* free page whose memory may be resident */
  uint8_t held;                     /* 1 while the page is its class's current page (see zc_heap_t) */
  uint8_t purged;                   /* free page purged at freed_at (a reuse within the delay is a miss) */
  uint16_t reclaimed;               /* h->lock: on its heap's reclaimed list, the purger took this many blocks
                                       from thread_free (reclaim.c) */
  struct zc_page_s *reclaim_next;   /* h->lock: the next page of that list */
  uintptr_t reclaim_seen;           /* h->lock: the thread_free word the purger saw when it first found the
                                       page emptied by remote frees, and when (reclaim_since); it reclaims the
                                       page only once it has seen the same word for a purge delay (the owner
                                       did not take the blocks back meanwhile) */
  uint64_t reclaim_since;
  /* third cache line: the page's remote line, what other threads' frees read and write */
  zc_page_remote_t remote;
  /* fourth line: never written through the descriptor; page 0's holds the segment fields (zc_segment_t) */
  uint8_t segment_fields[64];
} zc_page_t;


typedef enum zc_segment_kind_e { ZC_SEG_SMALL = 0, ZC_SEG_MEDIUM = 1, ZC_SEG_KINDS = 2 } zc_segment_kind_t;

/* The segment header is its 64 page descriptors, 256 bytes each (the owner's line, the slow-path line, the
 * remote line, and a spare line). The segment fields live in page 0's spare line, so a thread whose first
 * pages are the segment's first few touches one OS page of header: the fields, page 0's descriptor and its
 * remote line share the header's first 4 KiB (with the descriptors in one array and the remote lines in
 * another, page 0's remote line sat 8 KiB in: two OS pages, two page faults per new segment). */
typedef struct zc_segment_s {
  union {
    zc_page_t pages[ZC_SEGMENT_PAGES_MAX];
    struct {
      uint8_t page0_lines[192];         /* page 0's descriptor and remote line (pages[0]) */
      _Atomic(struct zc_heap_s *) heap; /* owner; NULL while abandoned */
      uint32_t page_shift;
      uint32_t page_count;
      uint32_t used_pages;              /* pages in state IN_USE */
      uint32_t kind;
      uint64_t free_mask;               /* bit i: page i is free */
      uint32_t untrusted;               /* a fork child's orphan: its pages' lists were left by threads that
                                           did not come along; each page in use is rebuilt before its first
                                           use (adoption, the purger's pass), not in the fork handler */
      uint32_t pages_touched;           /* pages [0, pages_touched) were taken since the segment was mapped;
                                           the descriptors beyond are untouched zeros (free, clean): walks
                                           stop here, so they do not fault those OS pages in to read them */
      uint32_t abandoned;               /* abandoned_lock: on the abandoned list (segment.c) */
      struct zc_segment_s *next, *prev; /* in the heap's segment list, or the abandoned list */
    };
  };
} zc_segment_t;

typedef struct zc_page_queue_s {
  zc_page_t *first, *last;
  uint32_t count;
} zc_page_queue_t;

/* A freer's chain of blocks of one page, handed over with one CAS when it is full, when another page takes
 * its slot, or at the freer's next malloc slow path. */
typedef struct zc_remote_batch_s {
  zc_page_remote_t *line;                  /* the page's remote line (NULL: the slot is empty) */
  zc_block_t *head, *tail;
  uint32_t count;
  struct zc_pair_slot_s *pair;             /* where the hand-over is counted (the page's owner's entry; kept
                                              with more than one slot: with one, the heap's pair_slot) */
} zc_remote_batch_t;

/* Remote-free traffic from this heap to one owner heap, counted when a chain is handed over (one entry
 * per owner in a small open-addressed table; owners beyond it, and pages with no owner, are summed in the
 * heap's pair_other). Only the freeing heap's thread writes it; stats walks read it with relaxed loads. */
#define ZC_PAIR_SLOTS 16u
typedef struct zc_pair_slot_s {
  struct zc_heap_s *owner;                 /* NULL: unused slot (heaps are never unmapped) */
  uint64_t blocks, bytes, batches;
} zc_pair_slot_t;

/* A heap is laid out for the memory a new thread touches: its first 64 bytes are an empty page's first line
 * (all zero, never written), then the thread's ids (written at setup), the direct table, the other fields. A
 * direct slot holds the offset of its class's current page from the heap, and 0 (no page yet) makes malloc
 * read the heap's own empty line, whose free list is empty: the same slow-path branch as a page run dry. So
 * a fresh heap (zero from the OS) needs no write to its table, and a thread touches only the OS pages of the
 * table that hold slots of the classes it uses. heap.c starts heaps on OS-page boundaries: the first OS page
 * (written at setup, so the fast path's first read of it does not fault in the zero page first) holds the
 * slots of sizes up to about 490 bytes, the third the last slots and the fields the slow paths write, the
 * second the sizes between, touched only by a thread that uses them (it then takes two faults: the first
 * read maps the zero page, the slow path's write copies it). The fast path adds the offset in the load's
 * address (h + off, ZC_PAGE_AT in internal.h): no instruction more than with pointers. */
typedef struct zc_heap_s {
  _Alignas(64) uint8_t empty_line[64];     /* read as a zc_page_t's first line by malloc: zero forever */
  uintptr_t thread_id;
  uint64_t os_tid;                         /* the kernel's id of its current (or last) thread, for stats */
  intptr_t direct[ZC_DIRECT_SLOTS];        /* request size -> offset of its class's current page from the
                                              heap; 0: none yet (empty_line above) */
  zc_page_queue_t queues[ZC_CLASS_COUNT];  /* pages in use per class, current page first */
  zc_page_t *current[ZC_CLASS_COUNT];      /* the first page of each queue, which holds one extra count
                                              in used so that frees never empty it: the common
                                              malloc/free ping-pong stays on the fast path */
  zc_remote_batch_t pending[ZC_REMOTE_SLOTS]; /* this thread's remote frees not yet handed over, by page */
  uint32_t pending_count;                  /* blocks in all pending chains (kept with more than one slot:
                                              zc_pending_blocks) */
  uint32_t pending_mask;                   /* bit i: pending[i] holds a chain (kept with more than one slot) */
  zc_segment_t *segments[ZC_SEG_KINDS];    /* segments this heap owns, those with free pages first */
  zc_segment_t *spare[ZC_SEG_KINDS];       /* one fully empty segment kept per kind */
  zc_page_t *dirty_first, *dirty_last;     /* free pages still resident, oldest first */
  size_t dirty_bytes;
  uint32_t dirty_pages[ZC_SEG_KINDS];      /* pages on the dirty list, per kind of their segment */
  uint64_t next_purge_check;               /* clock of the next delay-based purge scan */
  uint64_t next_trim_check;                /* clock of the next walk of its medium pages (zc_medium_trim) */
  uint32_t refills_unchecked;              /* cheap refills counted while dirty pages wait (alloc.c) */
  uint32_t id;                             /* small number for stats (remote traffic per pair) */
  uint16_t map_tag;                        /* what the segment map holds for this heap's small segments
                                              (ZC_MAP_OWNED + id; medium ones: + ZC_MAP_MEDIUM_BIAS), or
                                              ZC_MAP_SEGMENT if id is too large */
  bool live;
  bool hold_segments;                      /* abandon/adopt walk a segment: do not unmap it under them */
  zc_lock_t lock;                          /* the segment/dirty state: owner's slow path vs. purger */
  zc_page_t *reclaimed;                    /* h->lock: pages the purger emptied and purged (reclaim.c) */
  uint32_t reclaim_off;                    /* h->lock: while non-zero the purger reclaims none of h's pages */
  struct zc_heap_s *next_heap;             /* all heaps ever made (they are recycled, never freed) */
  /* statistics kept on slow paths only */
  uint64_t stat_remote_frees, stat_remote_batches, stat_pages_fresh, stat_pages_reused, stat_purged;
  uint64_t stat_reclaimed;                 /* pages the purger took back from this heap while it lived */
  uint64_t stat_class_refills[ZC_CLASS_COUNT];
  zc_pair_slot_t pairs[ZC_PAIR_SLOTS];     /* remote frees by owner (see zc_pair_slot_t) */
  zc_pair_slot_t pair_other;               /* owners the table had no room for, and no owner */
  struct zc_heap_s *pair_owner;            /* the owner of the last chain begun, and its entry: a consumer */
  zc_pair_slot_t *pair_slot;               /* frees mostly one producer's blocks, one compare finds it */
  uint64_t direct_classes;                 /* bit c: class c's direct slots are non-zero (else all 0) */
} zc_heap_t;

/* The "page" of a direct slot that has none (the slot holds 0): h's empty line. */
zc_inline zc_page_t *zc_heap_no_page(zc_heap_t *h) { return (zc_page_t *)(void *)h; }

/* Blocks in h's pending remote-free chains. With one slot that slot's count is the total, and no other
 * is kept (two adds fewer per remote free). */
zc_inline uint32_t zc_pending_blocks(const zc_heap_t *h) {
  return ZC_REMOTE_SLOTS == 1 ? h->pending[0].count : h->pending_count;
}

/* ---- lookups ---- */

zc_inline zc_segment_t *zc_segment_of(const void *p) {
  return (zc_segment_t *)((uintptr_t)p & ~(uintptr_t)ZC_SEGMENT_MASK);
}
zc_inline zc_page_t *zc_page_of(zc_segment_t *s, const void *p) {
  return &s->pages[((uintptr_t)p - (uintptr_t)s) >> s->page_shift];
}
/* The same for a small segment (the map's owner tag says so): a constant shift. */
zc_inline zc_page_t *zc_small_page_of(zc_segment_t *s, const void *p) {
  uintptr_t off = ((uintptr_t)p >> (ZC_SMALL_PAGE_SHIFT - 8)) & ((uintptr_t)(ZC_SEGMENT_PAGES_MAX - 1) << 8);
  return (zc_page_t *)((char *)s->pages + off); /* descriptors are 256 bytes (asserted below) */
}

/* The same for a medium segment (the map's medium owner tag says so). */
zc_inline zc_page_t *zc_medium_page_of(zc_segment_t *s, const void *p) {
  uintptr_t off = ((uintptr_t)p >> (ZC_MEDIUM_PAGE_SHIFT - 8)) & ((uintptr_t)(ZC_SEGMENT_PAGES_MAX / 2 - 1) << 8);
  return (zc_page_t *)((char *)s->pages + off);
}

/* A page's remote line; the same for a block p of a small segment s (a constant shift). */
zc_inline zc_page_remote_t *zc_page_remote(zc_page_t *pg) { return &pg->remote; }
zc_inline zc_page_remote_t *zc_small_remote_of(zc_segment_t *s, const void *p) {
  return &zc_small_page_of(s, p)->remote; /* the same shift and mask, 128 bytes further */
}

/* The segment map's value for s: its owner's tag if the owner has one (plus ZC_MAP_MEDIUM_BIAS for a medium
 * segment), else "a small or medium segment" (the owner is then found in s->heap). */
zc_inline uint16_t zc_segment_map_value(const zc_segment_t *s, const struct zc_heap_s *h) {
  if (h == NULL || h->map_tag < ZC_MAP_OWNED) return (uint16_t)ZC_MAP_SEGMENT;
  return s->kind == ZC_SEG_SMALL ? h->map_tag : (uint16_t)(h->map_tag + ZC_MAP_MEDIUM_BIAS);
}
/* Give s to heap h (NULL: abandoned): the header's owner and the map's tag change together. */
zc_inline void zc_segment_set_owner(zc_segment_t *s, struct zc_heap_s *h) {
  atomic_store_explicit(&s->heap, h, memory_order_release);
  zc_segmap_retag(s, zc_segment_map_value(s, h));
}
zc_inline size_t zc_page_area(const zc_segment_t *s) { return (size_t)1 << s->page_shift; }
zc_inline uint8_t *zc_page_end(zc_segment_t *s, const zc_page_t *pg) {
  return (uint8_t *)s + ((size_t)(pg->index + 1) << s->page_shift);
}

_Static_assert(sizeof(zc_page_t) == 256, "a page descriptor is four cache lines: the free path finds it by a shift");
_Static_assert(offsetof(zc_page_t, remote) == 128 && offsetof(zc_page_t, segment_fields) == 192,
               "the remote line is the descriptor's third line, the spare line its fourth");
_Static_assert(offsetof(zc_segment_t, heap) == offsetof(zc_page_t, segment_fields) &&
                   offsetof(zc_segment_t, prev) + sizeof(void *) <= sizeof(zc_page_t),
               "the segment fields fill page 0's spare line and nothing else of it");
_Static_assert(ZC_REMOTE_SLOTS <= 32 && (ZC_REMOTE_SLOTS & (ZC_REMOTE_SLOTS - 1)) == 0,
               "pending_mask has a bit per slot; the slot is a masked hash");
_Static_assert(sizeof(zc_page_remote_t) == 64, "a remote line is one cache line, found by a shift");
_Static_assert(offsetof(zc_page_t, next) == 64 && offsetof(zc_heap_t, thread_id) == 64,
               "what malloc's fast path reads of a page is its first line: a heap's empty line stands for one");
_Static_assert(ZC_CLASS_COUNT <= 64, "direct_classes has a bit per class");
_Static_assert(offsetof(zc_page_t, spare32) + sizeof(uint32_t) <= 64, "what malloc and the owner's free touch is one line");
_Static_assert(sizeof(zc_segment_t) <= ZC_SEGMENT_HEADER, "the segment header fits before page 0");

#endif /* ZC_TYPES_H */
