/* zcmem channel services (layer 10): request/response, a work queue to N worker processes, N producers to
 * one consumer, and named endpoints, built on the one-way zero-copy channel (zcmem_channel.h).
 *
 * A service endpoint (zc_svc_t) either listens on a name and holds any number of connections (a server, a
 * dispatcher, an aggregator) or is connected to one listener (a client, a worker, a log producer). Every
 * connection is two one-way channels, one each way, set up by one connect/accept; messages are loaned,
 * written in place and sent, received as read-only views and released, never copied.
 *
 *   client                                      server
 *   c = zc_svc_connect("kv", NULL)              s = zc_svc_listen("kv", NULL)
 *   p = zc_svc_loan(c, 100)                     zc_svc_receive(s, &req, -1)        (req.kind: REQUEST)
 *   fill p                                      r = zc_svc_loan_reply(s, &req, 200)
 *   zc_svc_call(c, p, 100, GET, &rep, 1000)     fill r from req.data
 *   use rep.data, rep.len                       zc_svc_reply(s, &req, r, 200, OK)  (releases req)
 *   zc_svc_release(c, &rep)
 *
 * Message kinds: REQUEST (expects a reply), REPLY (the library matched it to a request this side sent:
 * m.id is the id zc_svc_request gave), ONEWAY (no reply), FAILED (no data: request m.id will get no reply
 * because its connection died (m.error EPIPE) or broke the protocol (EPROTO)).
 *
 * Sending to a listener's connections: zc_svc_loan picks the connection with the fewest requests awaiting
 * a reply (ties: round robin), so a dispatcher's requests go to the least busy worker.
 *
 * Names: a name without '/' is a name in the abstract UNIX socket namespace, "zcmem.<uid>.<name>" (uid:
 * cfg.owner_uid, default this process's effective uid); a name with '/' is a socket file path.
 *
 * Threads: zc_svc_loan, zc_svc_loan_reply, zc_svc_loan_resize, zc_svc_send, zc_svc_request, zc_svc_reply, zc_svc_cancel,
 * zc_svc_release, zc_svc_stats, zc_svc_max_msg, zc_svc_arm_space and zc_svc_msg_peer may be called from any
 * thread.
 * zc_svc_receive and zc_svc_call are made by one thread at a time. zc_svc_close last.
 *
 * Errors: -1 (or NULL) and errno, as in zcmem_channel.h; EPIPE when the connection a call needs is gone,
 * EAGAIN when nothing is there (timeout 0) or no connection exists yet, ETIMEDOUT, EINVAL, EMSGSIZE.
 * A NULL endpoint or message is EINVAL in every call.
 * Loan pointers: the pointer given to zc_svc_send, _request, _reply, _cancel or _loan_resize must be one a
 * loan call of s returned. It is recognised by the 16-byte service header just before it (a tag and its
 * connection), not looked up: a pointer that never was a loan is refused (EINVAL) when those 16 bytes are
 * readable memory (the stack, a loan + 16, a loan already sent or cancelled: test svc_resize), but one
 * at the very start of a mapping faults on that read, and a received message's view
 * (read-only) whose header a hostile peer forged to look like a loan faults when the send writes it.
 * zc_chan_* and zc_zmq_* check a loan pointer against their own memory before touching it.
 */
#ifndef ZCMEM_SERVICE_H
#define ZCMEM_SERVICE_H

#include "zcmem_channel.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ZC_SVC_HEADER 16u                                  /* bytes of each message before the user's data */
/* A loan of at most ZC_SVC_MAX_MSG bytes never fails with EMSGSIZE. Larger messages (megabytes) are
 * loaned, sent and received the same way, zero-copy and contiguous, up to zc_svc_max_msg(). */
#define ZC_SVC_MAX_MSG (ZC_CHAN_MAX_MSG - ZC_SVC_HEADER)

typedef struct zc_svc_s zc_svc_t;

typedef enum zc_svc_kind_e { ZC_SVC_REQUEST = 1, ZC_SVC_REPLY = 2, ZC_SVC_ONEWAY = 3, ZC_SVC_FAILED = 4 } zc_svc_kind_t;

typedef struct zc_svc_config_s {
  zc_chan_config_t chan;    /* the channels this side produces into; chan.peer_uids says who may connect */
  uint32_t max_peers;       /* listener: connections at once (64); further connectors are turned away */
  uint32_t max_pending;     /* requests sent and awaiting a reply, all connections together (4096) */
  int connect_timeout_ms;   /* connect: keep trying this long while nobody listens on the name (0: once) */
  uint32_t owner_uid;       /* the uid in an abstract name (0: this process's effective uid) */
  int check_ms;             /* while busy, look for joins and deaths at least this often (10 ms) */
} zc_svc_config_t;

/* A received message, valid until released (a REQUEST: until replied to or released). */
typedef struct zc_svc_msg_s {
  const void *data;  /* read-only view (NULL for FAILED) */
  uint32_t len;      /* bytes at data */
  uint32_t type;     /* the sender's type tag */
  uint64_t id;       /* REPLY, FAILED: the id zc_svc_request returned; REQUEST: the library's, opaque */
  int kind;          /* zc_svc_kind_t */
  int error;         /* FAILED: EPIPE or EPROTO */
  uint32_t peer;     /* the connection it came from (index, stable while it lives) */
  uint32_t peer_gen; /* internal */
  zc_chan_msg_t raw; /* internal */
} zc_svc_msg_t;

/* ---- endpoints ---- */
ZC_CHAN_API zc_svc_t *zc_svc_listen(const char *name, const zc_svc_config_t *cfg);
ZC_CHAN_API zc_svc_t *zc_svc_connect(const char *name, const zc_svc_config_t *cfg);
/* Close every connection (the peers see EPIPE) and free the endpoint. Views still held become invalid. */
ZC_CHAN_API void zc_svc_close(zc_svc_t *s);
/* One fd for poll/epoll: readable when a message, a connection or a death may be waiting. After it is
 * readable call zc_svc_receive(s, &m, 0) until EAGAIN. Level-triggered use (not EPOLLET): a drain that
 * took messages leaves a joiner or a death that came with them for the next wake-up, which the fd, still
 * readable, gives at once. */
ZC_CHAN_API int zc_svc_fd(zc_svc_t *s);
/* Back-pressure for event loops: after zc_svc_loan, zc_svc_send, zc_svc_request or zc_svc_reply failed
 * with EAGAIN (cfg.chan.policy ZC_CHAN_FAIL: a connection's ring, queue or memory is full), ask for a
 * wake-up on zc_svc_fd when any open connection's peer makes room (zc_chan_arm_space on each). Returns 1
 * if room came back already on one of them, or one died (retry now instead of sleeping), 0 if armed (also
 * on a listener with no connection: a join wakes zc_svc_fd), -1 EPIPE on a connected endpoint whose
 * connection is gone. A wake-up means "retry", not "it fits": on EAGAIN again, arm again. After zc_svc_fd
 * is readable call zc_svc_receive(s, &m, 0) until EAGAIN (as for messages): it reads the wake-up records,
 * else the fd stays readable.
 * The wake-up is the arming thread's: another thread may receive meanwhile (a loop thread that arms and
 * sleeps on zc_svc_fd while a receiving thread runs); a wake-up that thread's receive reads is passed on,
 * and the fd stays readable until the arming thread's next receive, loan, send, request, reply, resize or
 * arm_space (its retry reads it back). One thread waits for room at a time: the last that armed. */
ZC_CHAN_API int zc_svc_arm_space(zc_svc_t *s);
/* Who sent m (for a FAILED notice: the process whose connection its request had gone to): the pid,
 * uid and gid the kernel recorded when that connection was made (SO_PEERCRED; a peer cannot forge them).
 * Valid after the connection closed, until its slot takes a new connection. 0, or -1: ESRCH (the slot
 * was reused since), EINVAL. For a worker pool: which worker process to kill for a bad reply. */
ZC_CHAN_API int zc_svc_msg_peer(zc_svc_t *s, const zc_svc_msg_t *m, zc_chan_peer_t *out);
/* Connections open now. */
ZC_CHAN_API int zc_svc_peers(zc_svc_t *s);

/* ---- sending ---- */
/* A writable buffer of n bytes (1..zc_svc_max_msg(s)), 16-byte aligned, in the memory of one connection:
 * the least busy one (see above). EAGAIN if there is no connection; EMSGSIZE if n is above that
 * connection's limit; waits for memory (or EAGAIN) per cfg.chan.policy, as zc_chan_loan. */
ZC_CHAN_API void *zc_svc_loan(zc_svc_t *s, size_t n);
/* The largest n zc_svc_loan and zc_svc_loan_reply accept on every connection open now: the smallest
 * zc_chan_max_msg of their producer channels minus ZC_SVC_HEADER (bounded by cfg.chan.max_bytes). It changes as connections come and go and as their segments
 * grow, never below ZC_SVC_MAX_MSG; with no connection open it is ZC_SVC_MAX_MSG. */
ZC_CHAN_API size_t zc_svc_max_msg(zc_svc_t *s);
/* A buffer for the reply to req, in the memory of req's connection (limit: that connection's). */
ZC_CHAN_API void *zc_svc_loan_reply(zc_svc_t *s, const zc_svc_msg_t *req, size_t n);
/* Grow or shrink the unsent loan p (from zc_svc_loan or zc_svc_loan_reply) to n bytes, like realloc, on
 * the same connection: zc_chan_loan_resize underneath. The first `keep` bytes (those written; clamped to
 * n) are kept; the rest is unspecified. Returns the loan: p itself when resized in place, else a new
 * pointer (p is then no loan any more); or NULL with errno and p unchanged and still loaned: EINVAL (p
 * is not a live loan of s, n is 0, or keep is beyond the loan), EMSGSIZE (n above the connection's
 * limit), EAGAIN/ETIMEDOUT (no memory now, per cfg.chan.policy), EPIPE (its connection died: cancel it).
 * A reply loan stays a reply loan of its request. Send the result with any of the sending calls. */
ZC_CHAN_API void *zc_svc_loan_resize(zc_svc_t *s, void *p, size_t n, size_t keep);
/* Send a loan without expecting a reply (len <= the loaned n). Loan rules as zc_chan_send. */
ZC_CHAN_API int zc_svc_send(zc_svc_t *s, void *p, size_t len, uint32_t type);
/* Send a loan as a request: *id receives its id; its reply (or a FAILED notice) comes out of
 * zc_svc_receive with the same id, exactly once. EAGAIN if max_pending requests await replies. */
ZC_CHAN_API int zc_svc_request(zc_svc_t *s, void *p, size_t len, uint32_t type, uint64_t *id);
/* Send loan p (from zc_svc_loan_reply(req)) as the reply to req and release req. On failure the loan
 * follows zc_chan_send's rules, and req is released too, except after EAGAIN/ETIMEDOUT (full: reply again
 * or release it) and EINVAL (p is not a loan of req's connection). */
ZC_CHAN_API int zc_svc_reply(zc_svc_t *s, zc_svc_msg_t *req, void *p, size_t len, uint32_t type);
/* Give a loan back unsent. */
ZC_CHAN_API int zc_svc_cancel(zc_svc_t *s, void *p);
/* Request and wait for its reply: 0 with *reply (release it), or -1: ETIMEDOUT (the request is abandoned:
 * its late reply is dropped), EPIPE/EPROTO (its connection died or broke the protocol), or a send error.
 * Other messages arriving meanwhile wait for zc_svc_receive. */
ZC_CHAN_API int zc_svc_call(zc_svc_t *s, void *p, size_t len, uint32_t type, zc_svc_msg_t *reply, int timeout_ms);
/* Stop waiting for request id: its reply, if it comes, is released unseen. 0, or -1 EINVAL. */
ZC_CHAN_API int zc_svc_abandon(zc_svc_t *s, uint64_t id);

/* ---- receiving ---- */
/* The next message from any connection. timeout_ms: 0 = do not wait (EAGAIN), < 0 = forever. Also
 * accepts joining connections and notices dead ones (their requests come out as FAILED). A connected
 * endpoint whose listener is gone fails with EPIPE once everything it sent has been received. */
ZC_CHAN_API int zc_svc_receive(zc_svc_t *s, zc_svc_msg_t *m, int timeout_ms);
/* Give a received message back (REPLY, ONEWAY, FAILED, or a REQUEST not to be answered). */
ZC_CHAN_API int zc_svc_release(zc_svc_t *s, zc_svc_msg_t *m);

/* ---- stats ---- */
typedef struct zc_svc_stats_s {
  uint64_t peers, joined, left;        /* connections open now, accepted or made, closed */
  uint64_t pending;                    /* requests awaiting a reply */
  uint64_t requests, replies, oneway;  /* sent by this side */
  uint64_t received, failed;           /* messages handed out; FAILED notices among them */
  uint64_t rejected;                   /* connections closed for a protocol violation */
  uint64_t dropped;                    /* late replies to abandoned requests, released unseen */
  uint64_t checks;                     /* epoll looks for joins and deaths (system calls) */
} zc_svc_stats_t;
ZC_CHAN_API void zc_svc_stats(zc_svc_t *s, zc_svc_stats_t *out);
/* The last error of the endpoint as one line ("" if none). */
ZC_CHAN_API const char *zc_svc_error(zc_svc_t *s);

#ifdef __cplusplus
}
#endif
#endif /* ZCMEM_SERVICE_H */
