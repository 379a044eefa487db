/* zcmem over ZeroMQ (layer 11): the data model shared by the transport's files.
 * May include the public headers (zcmem.h, zcmem_channel.h, zcmem_zmq.h), libzmq and libc; never the core
 * library's internal headers (this library links libzcmem like any user of it).
 *
 * One endpoint = one ZeroMQ context (one I/O thread), one PUSH (producer) or PULL (consumer) socket, a PAIR
 * socket reading that socket's monitor events, and an epoll fd joining their ZMQ_FDs for zc_zmq_fd.
 * inproc:// endpoints share one process-wide context instead (inproc only connects sockets of the same
 * context). The free callback's counters live in a separate tally, referenced by the endpoint and by each
 * block libzmq holds, so a callback that runs after close (inproc: a message still in a pipe) is safe.
 *
 * Wire format: one ZeroMQ frame per message, a 16-byte header then the payload:
 *   magic "ZCZ1" (u32) | type (u32) | payload length (u64, = frame size - 16)
 * A loan is a zc_malloc block of 16 + n bytes; the caller writes at block + 16. While loaned, the header
 * holds a loan tag (a per-endpoint key mixed with the block's address) and the loan size, so send can tell
 * a live loan of this endpoint from any other pointer.
 *
 * Fan-out (zpub.c) uses the same endpoint with an XPUB socket (publisher, role producer) or a SUB socket
 * (subscriber, role consumer): loans, the free callback, receive and release are shared with PUSH/PULL.
 * A published frame's header is magic ZQ_PMAGIC | type (u32) | seq (u32) << 32 | payload length (u32): seq
 * counts the publisher's sends, so a subscriber counts what it missed (messages libzmq dropped for it).
 *
 * Locks: z->lock protects the producer's socket, monitor socket and counters (producer calls are
 * thread-safe). The consumer takes no lock (one thread at a time, as on the channel). The counters the
 * free callback touches (I/O thread) are atomics.
 */
#ifndef ZCMEM_ZMQ_INTERNAL_H
#define ZCMEM_ZMQ_INTERNAL_H

#include "zcmem.h"
#include "zcmem_zmq.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <zmq.h>

#define ZQ_MAGIC 0x315a435au /* "ZCZ1" read as little-endian bytes */
#define ZQ_PMAGIC 0x31505a5au /* "ZZP1": a published frame; its 64-bit field is seq << 32 | payload length */
#define ZQ_BYE 0x305a435au   /* "ZCZ0": a producer's last frame before a clean close (16 bytes, no payload) */
#define ZQ_HDR 16u
#define ZQ_MAX_FDS 64        /* peers tracked by fd (more connections still work; counted as one) */
#define ZQ_DOWN_GRACE_NS (500 * 1000000ull) /* receive after a loss without goodbye: EPIPE after this long */
#define ZQ_SLOT_CHUNK 64

typedef struct zq_hdr_s {
  uint32_t magic; /* ZQ_MAGIC on the wire; the loan tag while loaned */
  uint32_t type;
  uint64_t len;   /* payload bytes on the wire; the loan size while loaned */
} zq_hdr_t;

/* A received message the consumer holds. Slots never move (chunks), so a view into a small message
 * (which libzmq stores inside the zmq_msg_t itself) stays valid until release. */
typedef struct zq_slot_s {
  zmq_msg_t msg;
  uint32_t gen;  /* bumped at each release: a stale handle does not match */
  uint32_t next; /* free list (index + 1; 0 = end) */
  uint32_t held;
  uint32_t len;
} zq_slot_t;

/* What the free callback touches; freed by whoever drops the last reference. Producer-written and
 * callback-written counters sit on separate cache lines: per message, the producer and libzmq's I/O thread
 * each write only their own line (the memory cap reads the other line only when it seems reached). */
typedef struct zq_tally_s {
  /* written by producer threads at each loan */
  _Atomic uint64_t reserved;   /* bytes loaned (16 + size each), minus what was given back unsent */
  _Atomic uint64_t freed_seen; /* the last value of freed the producer read */
  /* written by the free callback (libzmq's I/O thread) at each message; read-mostly for the rest */
  _Alignas(64) _Atomic uint64_t freed; /* bytes given back by libzmq: in use = reserved - freed */
  _Atomic uint64_t returned, returned_bytes; /* blocks (payload bytes) libzmq gave back */
  _Atomic uint64_t refs;       /* 1 for the endpoint (+ 1 per block libzmq holds, inproc) */
  int per_block_refs;          /* inproc: each block libzmq holds keeps the tally alive (set once) */
  _Atomic int space_waiters;   /* loans waiting for the memory cap (written only when one waits) */
  /* only when a loan waits for the memory cap */
  _Alignas(64) pthread_mutex_t lock;
  pthread_cond_t space;
} zq_tally_t;

struct zc_zmq_s {
  zc_chan_role_t role;
  int pub, sub;        /* fan-out: XPUB publisher, SUB subscriber (zpub.c) */
  int inproc;          /* no monitor events there: peers unknown */
  void *ctx, *sock, *mon;
  int epfd;
  char endpoint[256];
  char err[200];
  /* configuration, defaults resolved */
  int policy, block_timeout_ms, setup_timeout_ms;
  uint64_t max_bytes, max_msg;
  /* peers, from monitor events (producer: under lock; consumer: its thread) */
  int fds[ZQ_MAX_FDS];
  int npeers, ever_connected, overflow_peers;
  uint64_t downs, byes; /* disconnections seen; goodbye frames received (consumer) */
  uint64_t down_ns; /* when the peer count last fell to 0 */
  /* producer */
  pthread_mutex_t lock;
  zq_tally_t *t;
  uint32_t loan_key;
  _Atomic uint64_t loaned_msgs, loaned_bytes;
  uint64_t sent, sent_bytes, full_waits, sleeps; /* under lock (sleeps: the consumer's own on that side) */
  _Atomic uint64_t cap_waits, cap_sleeps;        /* loans that waited for the memory cap */
  /* consumer */
  zq_slot_t **chunks;
  uint32_t nchunks, free_head;
  uint64_t held_msgs, held_bytes, received, released, rejected;
  /* fan-out: publisher (under lock) */
  uint32_t pub_seq;                       /* seq of the next published frame */
  uint64_t joins, subs_in, unheard, deliveries, accepted_peers;
  uint64_t in_ns;                         /* the last look at the subscribers' frames */
  /* fan-out: subscriber */
  uint32_t seq_next;                      /* the seq expected next */
  int seq_fresh;                          /* the next frame starts a run: no gap counted */
  uint64_t missed, runs;
};

/* zmq_setup.c */
uint64_t zq_now_ns(void);
void zq_set_error(zc_zmq_t *z, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void zq_monitor_drain(zc_zmq_t *z);                /* read pending monitor events, update the peers */
int zq_peer_lost(const zc_zmq_t *z);               /* a peer was connected and none is left */
int zq_loss_final(const zc_zmq_t *z);              /* consumer: ... and nothing more can come from them */
int zq_wait(zc_zmq_t *z, short events, uint64_t deadline_ns); /* 1 ready, 0 timed out, -1 error */

/* zmq_setup.c: open a socket of this type (ZMQ_PUSH/PULL/XPUB/SUB) */
zc_zmq_t *zq_open(const char *endpoint, zc_chan_role_t role, const zc_zmq_config_t *cfg, int bind, int type);

/* zmq_producer.c */
void zq_free_cb(void *data, void *hint);
void zq_tally_put(zq_tally_t *t);

int zq_send_checked(zc_zmq_t *z, void *p, size_t len, uint32_t type); /* locked: 0 sent, -1 errno */

/* zmq_consumer.c */
void zq_consumer_close(zc_zmq_t *z);

/* zpub.c */
void zq_pub_drain(zc_zmq_t *z); /* publisher, locked: read the subscribers' frames (subscriptions, junk) */
int zq_pub_send_locked(zc_zmq_t *z, void *p, size_t len, uint32_t type); /* subscribers it went to, or -1 */

#endif /* ZCMEM_ZMQ_INTERNAL_H */
