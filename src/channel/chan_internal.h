/* Layer 9, zero-copy channel: the data model shared by chan_setup.c, chan_producer.c and chan_consumer.c.
 *
 * Includes: os.h, sizeclass.h and the public zcmem_channel.h (the .c files add options.h for zc_error);
 * nothing else of zcmem. Nothing below this layer includes it.
 *
 * Memory of one channel (docs/channel.md has the figures):
 *   control segment (memfd, both map read-write):   chan_ctl | descriptor ring | return ring
 *   data segments   (memfd, producer read-write, consumer read-only, at most 255 of them)
 *   producer-private (anonymous mmap, never shared): page table, per-slot metadata, free lists
 * Invariant: nothing the producer's allocator relies on lives in shared memory; every word either side
 * reads from the control segment is loaded once into a local and checked against private state before use.
 */
#ifndef ZC_CHAN_INTERNAL_H
#define ZC_CHAN_INTERNAL_H

#include "zcmem_channel.h"
#include "os.h"
#include "sizeclass.h"

#define CHAN_MAGIC 0x7a636368u /* "zcch": first word of every wire record */
#define CHAN_VERSION 1u
#define CHAN_LINE 64

/* ---- control segment (shared, both sides write: trust nothing read from it) ---- */
typedef struct chan_ctl_s {
  uint32_t magic, version, ring_cap, ret_cap;  /* written once by the producer, informative only */
  char pad0[CHAN_LINE - 16];
  uint64_t ret_tail;   /* producer: return handles taken back */
  char pad1[CHAN_LINE - 8];
  uint64_t tail;       /* consumer: descriptors taken */
  char pad2[CHAN_LINE - 8];
  uint64_t ret_head;   /* consumer: handles pushed on the return ring */
  char pad3[CHAN_LINE - 8];
  uint32_t c_wait;     /* consumer: CHAN_SLEEPING while on the futex, CHAN_ARMED while in poll/epoll */
  uint32_t data_word;  /* consumer sleeps on it; the producer bumps it to wake */
  char pad4[CHAN_LINE - 8];
  uint32_t p_wait;     /* producer: number of threads asleep waiting for ring space or returned memory,
                          | CHAN_SPACE_ARMED while an event loop waits for zc_chan_fd (zc_chan_arm_space) */
  uint32_t space_word; /* producer sleeps on it; the consumer bumps it */
  char pad5[CHAN_LINE - 8];
} chan_ctl_t;

enum { CHAN_SLEEPING = 1u, CHAN_ARMED = 2u };
#define CHAN_SPACE_ARMED 0x80000000u

/* A descriptor is published by its sequence word: position + 1, stored last (release). The consumer polls
 * the sequence of the next slot instead of a shared head index, so the only cache lines that travel per
 * message are the descriptor's (two per line) and the payload's. */
typedef struct chan_desc_s {
  uint64_t seq;
  uint64_t handle;
  uint32_t len;
  uint32_t type;
  uint64_t spare; /* 0; keeps a descriptor 32 bytes */
} chan_desc_t;

#define CHAN_RING_OFFSET ((size_t)sizeof(chan_ctl_t))

/* ---- handles: seg (8 bits) | byte offset in the segment (32 bits) | generation (24 bits) ---- */
#define CHAN_GEN_BITS 24u
#define CHAN_GEN_MASK ((1u << CHAN_GEN_BITS) - 1u)
static inline uint64_t chan_handle(unsigned seg, uint32_t off, uint32_t gen) {
  return ((uint64_t)seg << 56) | ((uint64_t)off << CHAN_GEN_BITS) | (gen & CHAN_GEN_MASK);
}
static inline unsigned chan_handle_seg(uint64_t h) { return (unsigned)(h >> 56); }
static inline uint32_t chan_handle_off(uint64_t h) { return (uint32_t)(h >> CHAN_GEN_BITS); }
static inline uint32_t chan_handle_gen(uint64_t h) { return (uint32_t)h & CHAN_GEN_MASK; }

/* ---- the producer's allocator (private memory) ----
 * A data segment is cut into 512 KiB pages. A page holds slots of one size class, carved in order, then
 * recycled through the page's own free list; a page whose last slot comes back returns to the channel's
 * pool of free pages (one empty page per class is kept) and may serve any class next.
 * A message above the largest class (64 KiB) takes a *run*: whole contiguous pages of one segment, the
 * first marked CHAN_RUN (its slot 0 carries the run's state and generation, its `carved` the run's length
 * in pages), the others CHAN_RUN_BODY. A run starts at a page boundary: the consumer checks that.
 * A slot is named by its id: seg << 24 | page << 13 | index in page (at most 8192 slots of 64 B).
 * A page is named by seg << 11 | page. */
#define CHAN_GRANULE ((size_t)64 << 10) /* segment sizes are multiples of this (checked by the consumer) */
#define CHAN_PAGE_SHIFT 19u
#define CHAN_PAGE_SIZE ((size_t)1 << CHAN_PAGE_SHIFT)
#define CHAN_SLOTS_PER_PAGE 8192u
#define CHAN_MIN_CLASS_SIZE 64u /* smaller requests take the 64 B class: every slot is 16-byte aligned */
#define CHAN_SEG_MAX 255u       /* segment index 255 is never valid */
#define CHAN_SEG_MAX_BYTES ((size_t)256 << 20) /* segments double up to this (512 pages) */
#define CHAN_SEG_PAGE_BITS 11u
#define CHAN_SEG_LIMIT ((size_t)1 << (CHAN_SEG_PAGE_BITS + CHAN_PAGE_SHIFT)) /* 1 GiB: a segment made for one
                                                  large message; the largest segment the consumer maps */
#define CHAN_NONE 0xffffffffu
#define CHAN_RUN 254u      /* page class of the first page of a run */
#define CHAN_RUN_BODY 255u /* page class of the other pages of a run */

enum { SLOT_FREE = 0u, SLOT_LOANED = 1u, SLOT_SENT = 2u };

static inline uint32_t chan_page_id(unsigned seg, uint32_t page) { return (uint32_t)seg << CHAN_SEG_PAGE_BITS | page; }
static inline unsigned chan_pid_seg(uint32_t pid) { return pid >> CHAN_SEG_PAGE_BITS; }
static inline uint32_t chan_pid_page(uint32_t pid) { return pid & ((1u << CHAN_SEG_PAGE_BITS) - 1u); }
static inline uint32_t chan_slot_id(uint32_t pid, uint32_t idx) { return pid << 13 | idx; }
static inline uint32_t chan_sid_page(uint32_t sid) { return sid >> 13; }
static inline uint32_t chan_sid_idx(uint32_t sid) { return sid & 8191u; }

typedef struct chan_slot_s {
  uint32_t gen_state; /* generation << 2 | state */
  uint32_t next;      /* FREE: the page's free list (index of the next free slot, CHAN_NONE at the end);
                         SENT by a publisher (chan_pub.c): the mask of the subscribers still holding it */
} chan_slot_t;

typedef struct chan_page_s {
  uint8_t cls;        /* size class, 0 while the page is free, CHAN_RUN / CHAN_RUN_BODY in a run */
  uint8_t listed;     /* on its class's list of pages with room */
  uint16_t pad;
  uint32_t free;      /* first free slot (index), CHAN_NONE if none */
  uint32_t live;      /* slots loaned or sent */
  uint32_t carved;    /* slots taken from the never-used tail so far; a run's first page: its pages */
  uint32_t next, prev; /* class list of pages with room, or the free-page pool: page ids */
} chan_page_t;

typedef struct chan_seg_s {
  char *base;         /* producer: read-write; consumer: read-only */
  size_t size;
  chan_page_t *pages; /* producer only: size >> 19 entries */
  uint32_t npages;    /* producer only: size >> 19 */
  chan_slot_t *slots; /* producer only: pages * 8192 entries, touched lazily */
  size_t meta_size;   /* bytes of the pages + slots mapping */
  uint32_t next_page; /* producer: first page never used */
} chan_seg_t;

typedef struct chan_class_s {
  uint32_t avail; /* first page with a free or never-used slot (page id), CHAN_NONE if none */
} chan_class_t;

/* ---- the channel ---- */
struct zc_chan_s {
  int sock;
  int32_t pid;           /* the process that opened it: only it shuts the socket down (a fork child's copy
                          * is closed, never shut down: that would end the parent's channel) */
  zc_chan_role_t role;
  int dead;              /* 0 while usable, else the errno every call returns (atomic) */
  char err[200];         /* the reason, one line */
  zc_chan_config_t cfg;  /* defaults filled in */
  zc_chan_peer_t peer;   /* SO_PEERCRED of the other end, read at open */
  int kicking;           /* producer: kick requests not yet looked at (atomic); the thread raising it from 0 decides */

  chan_ctl_t *ctl;       /* shared control segment */
  size_t ctl_size;
  chan_desc_t *ring;
  uint64_t *ret;
  uint32_t ring_cap, ret_cap;

  chan_seg_t seg[CHAN_SEG_MAX];
  unsigned nseg;         /* producer: under lock; consumer: single thread */

  /* producer; everything below is protected by lock */
  zc_lock_t lock;
  uint64_t p_head, p_tail; /* private head; last validated consumer tail */
  uint64_t p_ret_tail;     /* return handles taken so far */
  uint32_t *qlen;          /* length of the message at each ring position (private, ring_cap entries) */
  uint64_t q_bytes;        /* bytes of the messages in [p_tail, p_head) */
  uint64_t seg_bytes, next_seg_size;
  chan_class_t cls[ZC_CLASS_COUNT];
  uint32_t free_pages;     /* pool of empty pages below their segment's next_page (doubly linked) */
  uint64_t loaned_msgs, loaned_bytes, inflight_msgs, inflight_bytes, used_bytes;
  uint64_t sent, returned, reclaimed, full_waits;

  /* consumer */
  uint64_t c_tail;           /* private: descriptors taken */
  uint64_t c_ret_head;       /* handles pushed on the return ring */
  uint64_t c_ret_tail;       /* last validated producer ret_tail */
  uint64_t *pend;            /* releases that did not fit the return ring, oldest first */
  size_t npend, pend_cap;
  uint64_t held_msgs, held_bytes, received, released;
  int eof;                   /* the producer's end of file was seen */
  int armed;                 /* we raised CHAN_ARMED and have not seen it come back since (our withdrawal, or
                                the producer's kick read from the socket) */
  int kick_due;              /* an arm said 1 after the producer had taken our CHAN_ARMED: its kick is in the
                                socket (or about to be); the next arm reads it, quiet or not */

  uint64_t rejected, wakes, sleeps;

  struct zc_pub_s *pub;      /* a publisher's allocator (chan_pub.c): no socket, no ring of its own; NULL else */
};

/* chan_setup.c */
zc_chan_t *chan_open_link(int sock, const zc_chan_config_t *cfg); /* a producer end without data segments */
zc_chan_t *chan_hub_new(const zc_chan_config_t *cfg, struct zc_pub_s *pub); /* a publisher's allocator */
int chan_fail(zc_chan_t *ch, int err, const char *fmt, ...); /* mark dead, record, report; returns -1 */
int chan_dead_errno(int d);                                  /* sets errno = d, returns -1 (cold) */
/* 0, or sets errno and returns -1: on every call of the message path, so inline; the failure out of line */
static inline int chan_dead(zc_chan_t *ch) {
  int d = __atomic_load_n(&ch->dead, __ATOMIC_ACQUIRE);
  return __builtin_expect(d == 0, 1) ? 0 : chan_dead_errno(d);
}
void *chan_private_alloc(size_t size);                       /* zeroed private pages, NULL on failure */
void chan_private_free(void *p, size_t size);
size_t chan_ctl_size(uint32_t ring_cap, uint32_t ret_cap);
int chan_consumer_poll_socket(zc_chan_t *ch);                /* map new segments, drain kicks; see file */
int chan_consumer_poll_kick(zc_chan_t *ch);                  /* the same, ending after one kick */

/* wire records on the socket */
enum { WIRE_HELLO = 1, WIRE_CTL = 2, WIRE_SEG = 3, WIRE_KICK = 4 };
/* What zc_os_msg_recv's EPROTO means, for the reports */
#define CHAN_BAD_RECORD "longer than a protocol record, or carrying more than 8 descriptors"
typedef struct chan_wire_s {
  uint32_t magic;
  uint16_t kind, role;
  uint32_t a, b; /* HELLO: version; CTL: ring_cap, ret_cap; SEG: index */
  uint64_t size; /* CTL, SEG: bytes of the memory file attached */
} chan_wire_t;

/* producer metadata by id (private memory) */
static inline chan_page_t *chan_page_of(zc_chan_t *ch, uint32_t pid) {
  return &ch->seg[chan_pid_seg(pid)].pages[chan_pid_page(pid)];
}
static inline chan_slot_t *chan_slot_of(zc_chan_t *ch, uint32_t sid) { /* page * 8192 + index: the low 24 bits */
  return &ch->seg[sid >> (CHAN_SEG_PAGE_BITS + 13u)].slots[sid & ((1u << (CHAN_SEG_PAGE_BITS + 13u)) - 1u)];
}
/* Bytes of the slot sid of page class cls: the class's size, or a run's whole pages. */
static inline size_t chan_slot_bytes(zc_chan_t *ch, uint32_t sid, unsigned cls) {
  if (__builtin_expect(cls == CHAN_RUN, 0)) return (size_t)chan_page_of(ch, chan_sid_page(sid))->carved << CHAN_PAGE_SHIFT;
  return zc_class_block_size(cls);
}

/* chan_producer.c (every function below runs with ch->lock held, except the public ones) */
int chan_producer_grow(zc_chan_t *ch, size_t min_bytes); /* add a data segment; -1 ENOSPC at the cap */
void chan_producer_reclaim(zc_chan_t *ch); /* peer gone: every sent slot back to the free lists */
int chan_producer_peer_check(zc_chan_t *ch);
void chan_producer_stats(zc_chan_t *ch, zc_chan_stats_t *out);
int chan_drain_returns(zc_chan_t *ch);       /* take in released handles; -1 if one was bad (closed) */
int chan_wait_full(zc_chan_t *ch, uint64_t *deadline, bool for_memory); /* the full policy; see file */
int chan_find_loan(zc_chan_t *ch, const void *p, uint32_t *id, unsigned *cls); /* -1 EINVAL */
void chan_give_back(zc_chan_t *ch, uint32_t id, unsigned cls); /* a loan back to the allocator */
char *chan_loan_locked(zc_chan_t *ch, size_t n, bool wait); /* a new loan; NULL with errno */

/* chan_producer.c, for chan_pub.c (the one-way path keeps its static inline versions) */
int chan_find_loan_at(zc_chan_t *ch, const void *p, uint32_t *id, unsigned *cls, uint32_t *off, unsigned *seg);
int chan_find_sent(zc_chan_t *ch, uint64_t h, uint32_t *id, unsigned *cls, const char **why); /* a SENT slot */
void chan_free_sent(zc_chan_t *ch, uint32_t id, unsigned cls, bool reclaimed); /* SENT slot back: counted */
int chan_queue_room(zc_chan_t *ch, uint32_t len); /* 1, 0, or -1 (garbage tail: ch closed) */
void chan_wake_consumer(zc_chan_t *ch);

/* chan_pub.c: the hooks of a publisher's allocator (ch->pub != NULL) */
int chan_pub_drain(zc_chan_t *hub);                       /* every subscriber's returns; always 0 */
int chan_pub_wait(zc_chan_t *hub, uint64_t *deadline);    /* chan_wait_full for memory */
int chan_pub_announce(zc_chan_t *hub, int fd, unsigned idx, size_t size); /* keeps fd; 0 */

/* chan_run.c: runs of whole pages for messages above 64 KiB, the page pool, loan resizing */
void chan_pool_push(zc_chan_t *ch, uint32_t pid);
uint32_t chan_pool_pop(zc_chan_t *ch); /* CHAN_NONE if empty */
uint32_t chan_run_alloc(zc_chan_t *ch, size_t n); /* slot id of a new run (state untouched) or CHAN_NONE */
void chan_run_free(zc_chan_t *ch, uint32_t id);
size_t chan_max_msg_locked(zc_chan_t *ch);

/* chan_consumer.c */
void chan_consumer_stats(zc_chan_t *ch, zc_chan_stats_t *out);

static inline void chan_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* A full fence (store-load ordering for the wake-up handshakes). TSan does not model fences: there a
 * sequentially consistent read-modify-write of a private word stands in for it. */
static inline void chan_fence(void) {
#if defined(__SANITIZE_THREAD__)
  static int dummy;
  __atomic_fetch_add(&dummy, 0, __ATOMIC_SEQ_CST);
#else
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

/* Test points: a test widens a race window by stalling the thread that reaches one (zc_chan_test_hook in
 * chan_setup.c, exported in ZC_DEBUG builds only). In other builds they compile to nothing. Each sits where
 * a side has looked at the other's progress and is about to announce that it waits: whatever the other
 * side does there must not be missed (tests/channel/test_chan_wake.c forces it). */
enum {
  CHAN_TP_ARM = 1,        /* consumer, zc_chan_arm(_quiet): ring seen empty, CHAN_ARMED not set yet */
  CHAN_TP_ARM_SPACE = 2,  /* producer, zc_chan_arm_space: tail and returns seen, CHAN_SPACE_ARMED not set yet */
  CHAN_TP_WAIT_FULL = 3,  /* producer, chan_wait_full: no progress seen while spinning, p_wait not raised yet */
  CHAN_TP_FULL_CHECK = 4, /* producer, chan_wait_full (blocking): the loan's or send's room check failed, the wait
                             has not looked at the consumer's progress yet */
  CHAN_TP_SLEEP = 5,      /* consumer, sleep_once: ring seen empty, CHAN_SLEEPING not set yet */
  CHAN_TP_ARMED = 6,      /* consumer, zc_chan_arm(_quiet): CHAN_ARMED set, the ring not looked at again yet (a
                             send from here on kicks, and the second look finds its message too) */
  CHAN_TP_ARM_LOOK = 7,   /* consumer, zc_chan_arm(_quiet): the socket read (or not), the ring not looked at yet
                             (a kick for a flag still up from an earlier arm comes after the read: unread) */
};
#if defined(ZC_DEBUG) && ZC_DEBUG
extern void (*chan_test_hook_fn)(int point);
static inline void chan_test_point(int point) {
  void (*f)(int) = __atomic_load_n(&chan_test_hook_fn, __ATOMIC_ACQUIRE);
  if (f != NULL) f(point);
}
#else
static inline void chan_test_point(int point) { (void)point; }
#endif

#define CHAN_LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define CHAN_LOAD_RELAXED(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define CHAN_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

#endif /* ZC_CHAN_INTERNAL_H */
