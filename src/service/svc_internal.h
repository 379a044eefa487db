/* Layer 10, channel services: the data model shared by svc_conn.c (names, connect/accept, connections
 * joining and dying, the epoll checks, close) and svc_msg.c (loan, send, request, reply, receive, call).
 *
 * Includes: os.h, options.h and the public zcmem_channel.h / zcmem_service.h; it uses the one-way channel
 * only through its public API. Nothing below this layer includes it.
 *
 * A connection (svc_peer_t) is two one-way channels: `out`, which this side produces into, and `in`, which
 * it consumes. The connector's requests travel on the connected socket; the other direction on one end of
 * a socketpair the connector created and passed in its HELLO record.
 *
 * Every message starts with a 16-byte header (svc_hdr_t) in the sender's memory; the channel descriptor's
 * type carries the kind (REQUEST, REPLY, ONEWAY). The receiver copies the header out once
 * (zc_chan_copy) and checks it against private state: a REPLY must name a request this side sent on that
 * connection and that is still outstanding (index, generation, connection, state), else the connection
 * is closed as hostile (EPROTO) and nothing is handed out.
 *
 * Locks: s->lock protects changes of the peer table's states and counts, the pending table, the set-aside
 * queue and the stats; p->in_lock serialises consumer calls on p->in (receive, release, arm: a release may
 * come from any thread). Order: in_lock before s->lock never: take in_lock, drop it, then s->lock. Neither
 * is held while waiting (only the channel's own non-blocking calls run under in_lock).
 * A connection is looked up without a lock: svc_peer_get raises p->busy, then reads p->state; a loan's
 * own reference p->held guards its send (and a connected endpoint's loan raises held before reading the
 * state); svc_peer_reap stores PEER_CLOSING, then reads busy and held, and backs off if either is raised.
 *
 * Space wake-ups (zc_svc_arm_space) are the arming thread's. The caller's fd (xfd, zc_svc_fd) is an epoll
 * set of ep and of one end of a private socket pair (space[0]); the library's own sleeps use ep. A
 * consumer's space wake-up is a record in the connection's socket (in ep), and any receive may read it
 * (svc_check's zc_chan_collect): if the thread that reads it, or that accepts a join or marks a connection
 * dead (each also means "retry"), is not the arming one, it passes the wake-up on as a record in the pair
 * (svc_space_wake), which only the arming thread reads back: at its next receive, loan, send or arm_space
 * (svc_space_taken), or at the next arming. Without that, another thread's receive could read the record
 * after it woke the arming thread's epoll_wait and before that returned, and the arming thread slept on
 * with room there. space_tid is stored before space_armed; a waker exchanges space_armed to 0 (one
 * wake-up per arming), writes the pair, then sets space_woke.
 */
#ifndef ZC_SVC_INTERNAL_H
#define ZC_SVC_INTERNAL_H

#include "zcmem_service.h"
#include "os.h"
#include "../shared/pend_table.h" /* the pending table, shared with src/zmq (a leaf: libc only) */

#define SVC_MAGIC 0x7a637376u /* "zcsv": the connector's HELLO */
#define SVC_VERSION 1u
#define SVC_LOAN_TAG 0x4c4f414eu /* "LOAN": header of a loan not sent yet */
#define SVC_LISTEN_TAG UINT64_MAX
#define SVC_JOIN_TAG ((uint64_t)1 << 62) /* | k: an accepted connector whose HELLO has not come yet */
#define SVC_MAX_JOINS 16

typedef struct svc_hello_s {
  uint32_t magic, version;
} svc_hello_t;

/* In shared memory before the user's bytes. While loaned: id = peer gen << 32 | peer index, tag
 * SVC_LOAN_TAG (the sender's private note, in its own memory). Once sent: id = request id, type. */
typedef struct svc_hdr_s {
  uint64_t id;
  uint32_t type;
  uint32_t tag;
} svc_hdr_t;

/* A slot is FREE, OPEN, DEAD (its peer is gone; views into it may still be held), or CLOSING for a moment
 * while svc_peer_reap checks (under s->lock) that nobody uses it. */
enum { PEER_FREE = 0, PEER_OPEN = 1, PEER_DEAD = 2, PEER_CLOSING = 3 };

typedef struct svc_peer_s {
  zc_chan_t *out, *in;
  uint32_t gen;      /* bumped each time the slot takes a new connection (written under s->lock, read without) */
  int state;         /* PEER_*, changed under s->lock, read without it (atomic) */
  int busy;          /* threads using out/in outside s->lock (atomic; see svc_peer_get) */
  int err;           /* why it died */
  int drained;       /* dead and its in-channel emptied: its requests were failed */
  uint32_t pending;  /* requests sent to it awaiting a reply (s->lock) */
  uint32_t held;     /* messages received from it, not released (atomic) */
  zc_chan_peer_t cred; /* who is on the other end (SO_PEERCRED at connect): kept after close until reuse */
  int armed;         /* receiving thread only: `in` was armed (zc_chan_arm 0) and has delivered nothing since.
                        Its producer clears the channel's flag only with a kick, which leaves the fd readable
                        until an arm drains it: epoll reports it and svc_check re-arms; a take that drained
                        the socket itself (a new segment) always delivers, and every delivery clears this */
  int kicked;        /* receiving thread only: a message was taken while armed, so its producer kicked (or is
                        about to): svc_arm_all reads that record itself (zc_chan_arm) instead of leaving it
                        for an epoll look */
  zc_lock_t in_lock;
} svc_peer_t;

struct zc_svc_s {
  zc_lock_t lock;
  zc_svc_config_t cfg;
  int listen_fd;        /* -1 on a connected endpoint */
  int ep;               /* epoll: the listening fd and both channel fds of every connection */
  int xfd;              /* the caller's fd (zc_svc_fd): epoll of ep and space[0] */
  int space[2];         /* a private socket pair: a space wake-up passed on to the arming thread */
  uintptr_t space_tid;  /* the thread that called zc_svc_arm_space last (atomic) */
  int space_armed;      /* an arming whose wake-up has not come yet (atomic) */
  int space_woke;       /* space[0] holds a wake-up the arming thread has not read back (atomic) */
  int connected;        /* 1: made by zc_svc_connect (one connection, slot 0) */
  int dead;             /* connected: errno once its connection is gone */
  svc_peer_t *peers;
  uint32_t max_peers, hi; /* slots in use are below hi */
  uint32_t rr_in, rr_out; /* round-robin cursors of receive and loan */
  pend_table_t pend;    /* requests sent, awaiting replies (s->lock) */
  zc_svc_msg_t *q;      /* set aside: FAILED notices, messages zc_svc_call took that were not its reply */
  size_t q_head, q_n, q_cap, q_bytes;
  uint64_t call_id;     /* the request zc_svc_call waits for (0: none) */
  int call_err;         /* its FAILED error, set instead of queueing a notice */
  int join_fd[SVC_MAX_JOINS]; /* accepted, waiting for their HELLO (-1: free); handled when readable */
  uint64_t join_t[SVC_MAX_JOINS];
  uint64_t next_look;   /* coarse clock (ns): the receive path looks for joins and deaths from then */
  int took;             /* receiving thread only: a message was taken since the last svc_check */
  size_t arrays_size;
  char err[200];
  zc_svc_stats_t st;
};

static inline void svc_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* svc_conn.c */
int svc_fail(zc_svc_t *s, int err, const char *fmt, ...);      /* record the reason; errno = err; -1 */
void svc_check(zc_svc_t *s, int timeout_ms);                   /* epoll: joins, kicks, deaths */
void svc_peer_dead(zc_svc_t *s, uint32_t idx, int err, int drained); /* mark dead (receiving thread) */
void svc_peer_reap(zc_svc_t *s, uint32_t idx);                 /* fail requests, close when unused */
int svc_arm_all(zc_svc_t *s);                                  /* before sleeping: 1 if messages wait */
svc_peer_t *svc_peer_get(zc_svc_t *s, uint32_t idx, uint32_t gen, int any_state); /* busy++ or NULL; no lock */
static inline void svc_peer_put(svc_peer_t *p) { __atomic_fetch_sub(&p->busy, 1, __ATOMIC_RELEASE); }
void svc_space_wake(zc_svc_t *s);                              /* room may be back: wake the arming thread */
void svc_space_taken_slow(zc_svc_t *s);
/* At the start of each receive, loan and send: the arming thread reads its wake-up back (else zc_svc_fd
 * stays readable). One relaxed load when there is none. */
static inline void svc_space_taken(zc_svc_t *s) {
  if (__builtin_expect(__atomic_load_n(&s->space_woke, __ATOMIC_RELAXED) != 0, 0)) svc_space_taken_slow(s);
}

/* svc_msg.c */
void svc_fail_pending(zc_svc_t *s, uint32_t idx, int err);     /* FAILED notices for idx's requests (locked) */
int svc_queue_push(zc_svc_t *s, const zc_svc_msg_t *m);         /* locked */

#endif /* ZC_SVC_INTERNAL_H */
