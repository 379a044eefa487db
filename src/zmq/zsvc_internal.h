/* zcmem over ZeroMQ: the channel services' request/response and work queue (zcmem_service.h's calls) on a
 * ZeroMQ ROUTER (the listener) and DEALER sockets (the connectors). Data model shared by zsvc_conn.c
 * (open, close, the socket monitor, peers joining and dying, waiting) and zsvc_msg.c (loan, send, request,
 * reply, receive, call). zsvc_ep.c is the zc_eps_* dispatcher over these and the local zc_svc_*.
 * May include the public headers, libzmq, libc and src/shared/pend_table.h (the pending table shared with
 * src/service: a leaf of static inline functions on libc types only); never the core library's internal
 * headers nor src/service's (this library uses the service layer only through zcmem_service.h).
 *
 * Wire format: a message is one ZeroMQ frame (on the ROUTER, after the peer's routing-id frame):
 *   magic "ZCS1" (u32) | kind (u32) | type (u32) | payload length (u32) | id (u64) | 0 (u64) | payload
 * kind: ZC_SVC_REQUEST, REPLY, ONEWAY, or ZS_HELLO (a connector announcing itself after each handshake:
 * a worker is known, and gets work, before it sends anything). id: REQUEST and REPLY carry the requester's
 * id (its pending-table entry), so a reply is routed by the ROUTER to the routing id it came from and
 * matched by the requester against its own table; nothing else identifies a request.
 *
 * Peers: the listener knows a connector by its routing id (libzmq gives each connection its own) and by
 * the fd of its TCP connection (zmq_msg_get ZMQ_SRCFD), which the socket monitor names when the connection
 * closes (ZMQ_EVENT_DISCONNECTED): then its requests fail (FAILED, EPIPE). libzmq sends the monitor event
 * before it closes the fd, so an fd is reused only after its old connection's event was queued; the
 * monitor is drained after every message is read and before it is handled, so a new connection on a
 * reused fd is never taken for the old one. A connector has one peer (the listener) per connection
 * (monitor: handshake succeeded / disconnected); each new connection bumps the peer's generation.
 *
 * Locks: s->lock protects the socket, the monitor socket and every table (ZeroMQ sockets are not
 * thread-safe); it is never held while sleeping. The receiving thread sleeps in epoll_wait on s->epfd (the
 * socket's and the monitor's ZMQ_FD and an eventfd); a thread whose socket call may have consumed the
 * ZMQ_FD edge the sleeper waits for writes the eventfd. Sleeps last at most ZS_SLICE_MS in any case.
 * The caller's event loop sleeps on xfd (zc_eps_fd: epfd and space_fd) once a receive returned EAGAIN: that receive
 * read the monitor in full and left `sleeping` set, so every later call on the socket or the monitor,
 * from any thread, writes the eventfd if it took the wake-up of a waiting message or queued a FAILED
 * notice; the next receive reads the eventfd back (else the fd would stay readable). A connector's
 * timerfd wakes the loop when the grace after its listener's loss ends (receive then says EPIPE).
 * The free callback (libzmq's I/O thread) touches only atomics.
 * Space wake-ups (zs_arm_space's: libzmq's room signal taken by a call, a free under the memory cap) go to
 * their own eventfd, space_fd, which only the caller's fd (xfd: an epoll set of epfd and space_fd) holds:
 * a receive of another thread reads evfd back (zs_unkick), and if the space wake-up were there too, it could
 * read it before the thread that armed, asleep in epoll_wait, had seen it (a lost wake-up: the arming is
 * spent, the room signal taken). space_fd is read only by the thread that armed (its next receive, loan,
 * send or arm_space: zs_space_taken) or by the next arming. The waker writes space_fd, then sets space_woke.
 */
#ifndef ZCMEM_ZSVC_INTERNAL_H
#define ZCMEM_ZSVC_INTERNAL_H

#include "zcmem.h"
#include "zcmem_zmq.h"
#include "../shared/pend_table.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>
#include <zmq.h>

#define ZS_MAGIC 0x3153435au /* "ZCS1" as little-endian bytes */
#define ZS_DISCARD 0xdeadc0deu
#define ZS_HDR 32u
#define ZS_HELLO 8u
#define ZS_RID_MAX 255
#define ZS_SLICE_MS 50
#define ZS_WOKE_MONITOR 1
#define ZS_DOWN_GRACE_NS (200 * 1000000ull) /* connector: EPIPE this long after the loss (late frames) */
#define ZS_SLOT_CHUNK 64
#define ZS_SPACE_HWM 1
#define ZS_SPACE_MEM 2
#define ZS_MON_NS 1000000ull /* the message path looks at the monitor at most this often */

typedef struct zs_hdr_s {
  uint32_t magic; /* ZS_MAGIC on the wire; the loan tag while loaned */
  uint32_t kind;
  uint32_t type;
  uint32_t len;   /* payload bytes on the wire; the loan size while loaned */
  uint64_t id;    /* wire: the request id; while loaned: peer gen << 32 | peer index */
  uint64_t spare;
} zs_hdr_t;

enum { ZP_FREE = 0, ZP_OPEN = 1, ZP_DEAD = 2 };

typedef struct zs_peer_s {
  uint8_t rid[ZS_RID_MAX];
  uint8_t rid_len;
  int fd;
  int state;
  uint32_t gen;
  uint32_t pending; /* requests sent to it awaiting a reply */
} zs_peer_t;

typedef struct zs_slot_s {
  zmq_msg_t msg;
  uint32_t gen, next, held;
} zs_slot_t;

typedef struct zs_s {
  pthread_mutex_t lock;
  int listener;
  void *ctx, *sock, *mon;
  int epfd, evfd, tfd; /* tfd: a connector's timer, due when the grace after its listener's loss ends */
  int xfd, space_fd;    /* the caller's fd (zs_fd): epfd + space_fd; this library's own sleeps use epfd */
  _Atomic int space_woke; /* space_fd was written since the arming thread last read it */
  pthread_t space_tid;  /* the thread of the last zs_arm_space (s->lock) */
  _Atomic int sleeping; /* a receiver may sleep on epfd: this library's, or the caller's after EAGAIN */
  _Atomic int kicked;   /* evfd was written since a receive last read it */
  _Atomic int space_armed; /* zs_arm_space: ZS_SPACE_HWM: wake the fd at ZMQ_POLLOUT; ZS_SPACE_MEM: at a free */
  _Atomic uint64_t want_bytes; /* the last loan the memory cap refused (zs_arm_space's "room came back") */
  int timer_set;        /* tfd is armed or due, not read yet */
  char endpoint[256];
  char err[200];
  /* configuration, defaults resolved */
  int policy, block_timeout_ms, setup_timeout_ms;
  uint32_t max_peers, max_pending;
  uint64_t max_bytes, max_msg;
  uint32_t loan_key;
  /* peers: the listener's connectors; a connector's slot 0 is its listener */
  zs_peer_t *peers;
  uint32_t hi, rr_out;
  uint8_t *fd_open; /* listener: 1 while the monitor says the connection on that fd is up */
  int fd_cap;
  int conns, ever_connected, hello_due; /* connector */
  uint64_t down_ns;
  uint64_t mon_ns; /* the last look at the monitor */
  /* requests sent, awaiting replies */
  pend_table_t pend; /* its entries: calloc'd */
  uint64_t call_id;
  int call_err;
  /* received messages held by the caller */
  zs_slot_t **chunks;
  uint32_t nchunks, slot_free;
  /* set aside: FAILED notices and messages zc_eps_call took that were not its reply */
  zc_svc_msg_t *q;
  size_t q_head, q_n, q_cap;
  /* memory: bytes loaned or held by libzmq (the free callback adds to freed) */
  _Atomic uint64_t reserved;
  _Alignas(64) _Atomic uint64_t freed, returned;
  _Alignas(64) zc_svc_stats_t st;
} zs_t;

/* zsvc_conn.c */
uint64_t zs_now_ns(void);
zs_t *zs_open(const char *endpoint, const zc_eps_config_t *cfg, int listen);
void zs_close(zs_t *s);
int zs_fail(zs_t *s, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int zs_code(zs_t *s, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4))); /* err */
uint64_t zs_now_ns(void);
void zs_monitor(zs_t *s);                    /* locked: monitor events -> peers up/down */
/* locked: zs_monitor at most every ZS_MON_NS on the message path (an empty look costs libzmq a poll()) */
static inline void zs_monitor_maybe(zs_t *s) {
  if (zs_now_ns() - s->mon_ns >= ZS_MON_NS) zs_monitor(s);
}
int zs_peer_find(zs_t *s, const uint8_t *rid, size_t len, int fd); /* locked: index, new, or -1 */
void zs_peer_dead(zs_t *s, uint32_t i, int err);                    /* locked: fail its requests */
void zs_hello(zs_t *s);                      /* locked: connector, announce itself if due */
void zs_kick(zs_t *s);                       /* locked: wake a sleeping receiver if a message waits */
void zs_unkick(zs_t *s);                     /* locked: a receive takes the eventfd's and timer's wake-ups */
int zs_sleep(zs_t *s, uint64_t deadline_ns); /* unlocked: poll the fds, at most one slice */
int zs_peers(zs_t *s);
int zs_arm_space(zs_t *s);                   /* unlocked: zc_svc_arm_space's contract */
int zs_fd(zs_t *s);
void zs_space_taken(zs_t *s);                /* locked: the arming thread takes its space wake-up */
/* A space wake-up (whoever exchanged space_armed to 0): write space_fd first, so that space_woke set means
 * the write happened (zs_space_taken reads it then). No lock: the free callback calls it. */
static inline void zs_space_wake(zs_t *s) {
  uint64_t one = 1;
  if (write(s->space_fd, &one, sizeof one) < 0) { /* full counter: a wake-up is pending anyway */
  }
  atomic_store(&s->space_woke, 1);
}

/* zsvc_msg.c */
void *zs_loan(zs_t *s, size_t n);
void *zs_loan_reply(zs_t *s, const zc_svc_msg_t *req, size_t n);
int zs_send(zs_t *s, void *p, size_t len, uint32_t type);
int zs_request(zs_t *s, void *p, size_t len, uint32_t type, uint64_t *id);
int zs_reply(zs_t *s, zc_svc_msg_t *req, void *p, size_t len, uint32_t type);
int zs_cancel(zs_t *s, void *p);
int zs_call(zs_t *s, void *p, size_t len, uint32_t type, zc_svc_msg_t *reply, int timeout_ms);
int zs_abandon(zs_t *s, uint64_t id);
int zs_receive(zs_t *s, zc_svc_msg_t *m, int timeout_ms);
int zs_release(zs_t *s, zc_svc_msg_t *m);
void zs_stats(zs_t *s, zc_svc_stats_t *out);
void zs_fail_pending(zs_t *s, uint32_t peer, int err); /* locked */
void zs_slots_free(zs_t *s);
void zs_free_cb(void *data, void *hint);

#endif /* ZCMEM_ZSVC_INTERNAL_H */
