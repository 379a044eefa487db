/* zcmem over ZeroMQ: the channel's message API (loan, send, receive, release) between processes on other
 * machines, carried by libzmq. Library zcmem::zcmem_zmq (libzcmem_zmq.so, links libzcmem and libzmq); built
 * only when libzmq is found. The core library does not depend on it.
 *
 * Two layers in this header:
 *   zc_zmq_*  the ZeroMQ transport itself (PUSH -> PULL, one message = one ZeroMQ frame);
 *   zc_ep_*   a thin dispatcher: the endpoint string picks the transport. "tcp://", "ipc://", "inproc://"
 *             go to ZeroMQ, anything else is a UNIX socket path for the shared-memory channel
 *             (zcmem_channel.h). The same program runs over both with only the endpoint changed.
 *
 *   producer                                     consumer
 *   e = zc_ep_connect(ep, ZC_CHAN_PRODUCER, 0)   e = zc_ep_listen(ep, ZC_CHAN_CONSUMER, 0)
 *   p = zc_ep_loan(e, 300); fill p               zc_ep_receive(e, &m, -1); use m.data[0 .. m.len)
 *   zc_ep_send(e, p, 120, MY_TYPE)               zc_ep_release(e, &m)
 *
 * Same as the channel: the call shapes, zc_chan_msg_t, zc_chan_stats_t, zc_chan_role_t, the policies
 * (ZC_CHAN_BLOCK with block_timeout_ms, ZC_CHAN_FAIL), producer calls thread-safe, consumer calls made by
 * one thread at a time, and the errno values:
 *   EAGAIN     nothing to receive; or full (high-water mark or memory cap) under ZC_CHAN_FAIL
 *   ETIMEDOUT  a blocking call timed out (full under ZC_CHAN_BLOCK, or nothing to receive)
 *   EMSGSIZE   a loan above max_msg, or send(len) larger than the loan
 *   EINVAL     a pointer that is not a live loan of this endpoint, a handle that is not held, a bad argument
 *   EPIPE      no peer is connected any more (one was): see "peer loss" below
 *   EPROTO     consumer: a frame that is not a zcmem message (garbage from the peer); it was dropped and
 *              counted in stats.rejected
 *
 * What differs from the shared-memory channel:
 *   - Memory. The loan is a block of the producer's zcmem heap (zc_malloc), not shared memory. Send hands it
 *     to libzmq without copying (zmq_msg_init_data); libzmq's I/O thread calls zc_free when it is done with
 *     it (a remote free). stats.returned counts those frees: "returned" means "the engine let go of it",
 *     not "the consumer released it". The consumer's view is libzmq's receive buffer, not the producer's
 *     memory; release closes that zmq_msg_t. Releasing does not tell the producer anything.
 *   - Copies. libzmq copies anyway, measured by test zmq_copies (docs/zmq.md has the table): on send, the
 *     start of every frame up to its 8 KiB batch buffer (a frame below 8 KiB is copied whole; the rest of
 *     a larger one goes from the loan to the kernel); on receive, a frame below 33 bytes is copied into
 *     the message, small frames are mostly views into libzmq's read buffer, and the first 8 KiB of a large
 *     frame are copied out of it (the rest is read straight into the message). Zero-copy on send thus
 *     holds beyond the first 8 KiB of each message: 99% of a 1 MiB message, half of a 16 KiB one.
 *   - Sizes. Any size from 1 byte to max_msg (default ZC_ZMQ_MAX_MSG, 4 GiB - 17, since zc_chan_msg_t.len
 *     is 32 bits). The consumer's view is not 16-byte aligned in general (libzmq decides).
 *   - Queue limits. config.chan.ring_entries becomes the high-water marks (ZMQ_SNDHWM, ZMQ_RCVHWM) in
 *     messages (default 4096); config.chan.max_bytes caps the bytes loaned and not yet returned by libzmq
 *     (default 1 GiB). max_queued_bytes, first_segment and spin_ns do not apply.
 *   - Peer loss. Peers are counted from libzmq's socket monitor (connected/accepted, disconnected). Once a
 *     peer has been connected and none is left: send fails with EPIPE (the loan is given back), receive fails
 *     with EPIPE once everything that peer sent was received (a cleanly closing producer sends a goodbye
 *     frame last; after a crash, 500 ms after the disconnection was seen). EPIPE is not final as on
 *     the channel: it lasts while no peer is connected; ZeroMQ reconnects by itself, and once a (restarted)
 *     peer is connected the calls work again (zc_zmq_fd wakes when one connects). Messages that were queued or on the wire when the peer died are lost (the producer's
 *     blocks still come back through libzmq's free callback); nothing is acknowledged end to end.
 *     A dead peer host or a cut network is seen only through ZeroMQ heartbeats (heartbeat_ms, off by
 *     default, then heartbeat_timeout_ms without an answer) or when TCP itself gives up: until then calls
 *     behave as with a slow peer. inproc:// has no monitor events: peer loss is not reported there.
 *   - Setup. zc_zmq_bind returns at once; zc_zmq_connect waits (at most setup_timeout_ms, default 5 s) until
 *     the first connection is made, else fails with ETIMEDOUT. Any number of peers may connect to a bound
 *     endpoint (messages are fair-queued from producers, round-robined to consumers).
 *   - Closing. A producer's close waits up to linger_ms (default block_timeout_ms) for queued messages to
 *     leave, then drops the rest; every block comes back to zcmem before close returns.
 *   - zc_zmq_collect takes in nothing (libzmq frees blocks itself): it looks at the peers and returns the
 *     number of messages not yet returned by libzmq.
 */
#ifndef ZCMEM_ZMQ_H
#define ZCMEM_ZMQ_H

#include "zcmem_channel.h"
#include "zcmem_service.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define ZC_ZMQ_API __attribute__((visibility("default")))
#else
#define ZC_ZMQ_API
#endif

#define ZC_ZMQ_MAX_MSG ((size_t)UINT32_MAX - 16) /* the largest payload (len is 32 bits; 16-byte header) */

typedef struct zc_zmq_s zc_zmq_t;

/* Every field may be left 0 for its default. */
typedef struct zc_zmq_config_s {
  zc_chan_config_t chan;    /* policy, block_timeout_ms, setup_timeout_ms, ring_entries (HWM), max_bytes */
  int heartbeat_ms;         /* ZMQ_HEARTBEAT_IVL: ping the peer this often (0: no heartbeats) */
  int heartbeat_timeout_ms; /* ZMQ_HEARTBEAT_TIMEOUT and _TTL: a silent peer is dropped (0: 3 x heartbeat);
                               longer than the consumer's longest stall: libzmq reads no ping while the
                               consumer's queue is full */
  int linger_ms;            /* producer close: wait for queued messages to leave (0: block_timeout_ms) */
  uint64_t max_msg;         /* largest payload; the consumer drops a peer sending more (0: ZC_ZMQ_MAX_MSG) */
} zc_zmq_config_t;

/* ---- the ZeroMQ transport ---- */
/* Bind a ZeroMQ endpoint ("tcp://127.0.0.1:*" picks a free port: see zc_zmq_endpoint). Returns at once. */
ZC_ZMQ_API zc_zmq_t *zc_zmq_bind(const char *endpoint, zc_chan_role_t role, const zc_zmq_config_t *cfg);
/* Connect to a bound endpoint; waits for the first connection (ETIMEDOUT after setup_timeout_ms). */
ZC_ZMQ_API zc_zmq_t *zc_zmq_connect(const char *endpoint, zc_chan_role_t role, const zc_zmq_config_t *cfg);
/* The endpoint as bound or connected (the real port after a bind to port *). Valid until close. */
ZC_ZMQ_API const char *zc_zmq_endpoint(zc_zmq_t *z);
/* Close: held messages are closed (their views become invalid), loans not sent are freed. */
ZC_ZMQ_API void zc_zmq_close(zc_zmq_t *z);

ZC_ZMQ_API void *zc_zmq_loan(zc_zmq_t *z, size_t n);
ZC_ZMQ_API int zc_zmq_send(zc_zmq_t *z, void *p, size_t len, uint32_t type);
ZC_ZMQ_API int zc_zmq_send_batch(zc_zmq_t *z, const zc_chan_msg_t *msgs, int n);
ZC_ZMQ_API int zc_zmq_cancel(zc_zmq_t *z, void *p);
ZC_ZMQ_API long zc_zmq_collect(zc_zmq_t *z);

ZC_ZMQ_API int zc_zmq_receive(zc_zmq_t *z, zc_chan_msg_t *out, int timeout_ms);
ZC_ZMQ_API int zc_zmq_receive_batch(zc_zmq_t *z, zc_chan_msg_t *out, int max, int timeout_ms);
ZC_ZMQ_API int zc_zmq_release(zc_zmq_t *z, const zc_chan_msg_t *m);
ZC_ZMQ_API int zc_zmq_release_batch(zc_zmq_t *z, const zc_chan_msg_t *msgs, int n);

/* An fd for poll/epoll (POLLIN), level-triggered, as the channel's: it wakes for a message after
 * zc_zmq_arm() returned 0, and on a peer connecting or disconnecting. ZeroMQ's ZMQ_FD is edge-triggered
 * and must be re-checked with ZMQ_EVENTS after every wake-up and receive: zc_zmq_arm and zc_zmq_receive do
 * that. On the producer it wakes on peer changes only (call zc_zmq_collect). Do not read or close it. */
ZC_ZMQ_API int zc_zmq_fd(zc_zmq_t *z);
/* Consumer: 1 if messages are waiting (receive them), 0 if armed (sleep on the fd), -1 EPIPE if no peer
 * is left (sleeping on the fd still wakes when one connects). Call it right before epoll_wait. */
ZC_ZMQ_API int zc_zmq_arm(zc_zmq_t *z);

/* Producer: loaned, inflight (sent, not yet returned by libzmq), sent, returned, full_waits, sleeps.
 * Consumer: held, received, released, rejected (garbage frames dropped), sleeps. Other fields 0. */
ZC_ZMQ_API void zc_zmq_stats(zc_zmq_t *z, zc_chan_stats_t *out);
ZC_ZMQ_API const char *zc_zmq_error(zc_zmq_t *z);
ZC_ZMQ_API zc_chan_role_t zc_zmq_role(zc_zmq_t *z);
/* Peers connected now (from the socket monitor; -1 for inproc://, which has no monitor events). */
ZC_ZMQ_API int zc_zmq_peers(zc_zmq_t *z);

/* ---- one API over both transports ---- */
typedef struct zc_ep_s zc_ep_t;
typedef enum zc_ep_kind_e { ZC_EP_CHANNEL = 1, ZC_EP_ZMQ = 2 } zc_ep_kind_t;

/* The transport an endpoint string selects. */
ZC_ZMQ_API zc_ep_kind_t zc_ep_kind_of(const char *endpoint);
/* Channel: zc_chan_listen + zc_chan_accept of one peer (blocks until it comes), then the socket file is
 * removed. ZeroMQ: zc_zmq_bind (returns at once). cfg may be NULL; cfg->chan is what the channel uses. */
ZC_ZMQ_API zc_ep_t *zc_ep_listen(const char *endpoint, zc_chan_role_t role, const zc_zmq_config_t *cfg);
/* Channel: zc_chan_connect. ZeroMQ: zc_zmq_connect. */
ZC_ZMQ_API zc_ep_t *zc_ep_connect(const char *endpoint, zc_chan_role_t role, const zc_zmq_config_t *cfg);
ZC_ZMQ_API void zc_ep_close(zc_ep_t *e);
ZC_ZMQ_API zc_ep_kind_t zc_ep_kind(zc_ep_t *e);
/* The endpoint: ZeroMQ's as bound or connected (the real port after port *), the channel's path. */
ZC_ZMQ_API const char *zc_ep_endpoint(zc_ep_t *e);
ZC_ZMQ_API void *zc_ep_loan(zc_ep_t *e, size_t n);
ZC_ZMQ_API int zc_ep_send(zc_ep_t *e, void *p, size_t len, uint32_t type);
ZC_ZMQ_API int zc_ep_send_batch(zc_ep_t *e, const zc_chan_msg_t *msgs, int n);
ZC_ZMQ_API int zc_ep_cancel(zc_ep_t *e, void *p);
ZC_ZMQ_API long zc_ep_collect(zc_ep_t *e);
ZC_ZMQ_API int zc_ep_receive(zc_ep_t *e, zc_chan_msg_t *out, int timeout_ms);
ZC_ZMQ_API int zc_ep_receive_batch(zc_ep_t *e, zc_chan_msg_t *out, int max, int timeout_ms);
ZC_ZMQ_API int zc_ep_release(zc_ep_t *e, const zc_chan_msg_t *m);
ZC_ZMQ_API int zc_ep_release_batch(zc_ep_t *e, const zc_chan_msg_t *msgs, int n);
ZC_ZMQ_API int zc_ep_fd(zc_ep_t *e);
ZC_ZMQ_API int zc_ep_arm(zc_ep_t *e);
ZC_ZMQ_API void zc_ep_stats(zc_ep_t *e, zc_chan_stats_t *out);
ZC_ZMQ_API const char *zc_ep_error(zc_ep_t *e);

/* Fan-out subscriber over either transport: a socket path is zc_chan_connect as a consumer of a local
 * publisher (zc_pub_*, zc_ep_pub_*); tcp:// or ipc:// is zc_zmq_sub_connect. Then zc_ep_receive,
 * zc_ep_release, zc_ep_fd, zc_ep_arm as for any consumer. */
ZC_ZMQ_API zc_ep_t *zc_ep_subscribe(const char *endpoint, const zc_zmq_config_t *cfg);
/* Messages this subscriber missed (ZeroMQ, ZC_PUB_EVICT: dropped for it at the high-water mark); 0 for
 * the channel, where a subscriber never misses one (it is cut off instead: EPIPE). */
ZC_ZMQ_API uint64_t zc_ep_missed(zc_ep_t *e);

/* ---- fan-out over ZeroMQ: one publisher, every message read by every subscriber ----
 * zcmem_channel.h's zc_pub_* (one message read in place by every subscriber) with the same call shapes,
 * zc_pub_stats_t and errno values, over an XPUB socket (the publisher binds) and SUB sockets (subscribers
 * connect; any number). inproc:// is refused (EPROTONOSUPPORT: no connection events there).
 *
 *   publisher                                        each subscriber process (join at any time)
 *   p = zc_ep_pub_listen(ep, cfg)                    s = zc_ep_subscribe(ep, cfg)
 *   zc_ep_pub_accept(p, 5000)  (a subscriber ready)  zc_ep_receive(s, &m, -1); read m.data in place
 *   q = zc_ep_pub_loan(p, n); fill q                 zc_ep_release(s, &m)
 *   zc_ep_pub_send(p, q, n, TYPE)  (-> subscribers)
 *
 * What differs from the shared-memory fan-out (zc_pub_*):
 *   - Memory. The loan is a zcmem block (zc_malloc), handed to libzmq once without a copy; libzmq gives
 *     every subscriber's connection a reference to it and its free callback returns it to zcmem when the
 *     last connection has written it out (a remote free): not when the subscribers release it. Each
 *     subscriber reads its own copy (libzmq's receive buffer), in place; release closes it and tells the
 *     publisher nothing. stats.chan.returned counts the blocks libzmq gave back.
 *   - Back-pressure: config.chan.ring_entries is the high-water mark (per subscriber: ZMQ_SNDHWM on the
 *     publisher, ZMQ_RCVHWM on the subscriber, default 4096 messages each; the kernel's socket buffers
 *     come on top). Policy ZC_CHAN_BLOCK (XPUB_NODROP): a send finding any subscriber at its mark waits
 *     up to block_timeout_ms for room, then ETIMEDOUT; ZC_CHAN_FAIL: EAGAIN at once; both keep the loan
 *     with the caller and the message reaches nobody. ZC_PUB_EVICT: never waits; libzmq drops the message
 *     for each subscriber at its mark (the others get it). The slow subscriber is not cut off (no EPIPE,
 *     unlike locally): it misses messages, and zc_ep_missed / zc_zmq_missed counts them from the
 *     publisher's sequence numbers. The memory cap (max_bytes) is the one-way producer's (the same code;
 *     not tested through a publisher).
 *   - Joining. A subscriber receives what is sent after its subscription reached the publisher: earlier
 *     messages, and those sent while its connection was being made, are not for it (a late joiner misses
 *     them, none is replayed). zc_ep_pub_accept(p, t) waits for the next subscription to arrive (EAGAIN
 *     if t = 0 and none came, ETIMEDOUT) and returns the subscribers connected: a subscriber accepted is
 *     one that gets every message sent from then on (under BLOCK/FAIL, while it stays connected).
 *   - Subscribers are connections counted by libzmq's socket monitor (zc_ep_pub_subscribers); a send
 *     returns that count (0: nobody connected; the block comes back to zcmem at once), not how many
 *     connections libzmq really wrote it to (it does not say): one whose subscription has not arrived yet
 *     is counted, a subscriber that connected since the monitor was last read (at most 1 ms ago) is not.
 *   - Death. A subscriber killed or closed: its TCP connection closes, libzmq drops its queue and the
 *     publisher's count goes down (stats.left); it never holds the publisher again. A subscriber stopped,
 *     hung or cut off by the network holds a BLOCK/FAIL publisher (ETIMEDOUT / EAGAIN) until heartbeats
 *     (heartbeat_ms, off by default) or TCP drop its connection (not tested with fan-out: zmq_heartbeat
 *     tests heartbeats on PUSH/PULL). There is no "cut off" for a protocol
 *     error: a subscriber's frames other than subscriptions are dropped and counted in
 *     stats.chan.rejected (a frame above 256 bytes gets its connection dropped by libzmq).
 *   - Publisher gone. A clean close sends every subscriber a goodbye; the subscriber's receive fails with
 *     EPIPE after what was sent is received (or 500 ms after a crashed publisher's connection closed), as
 *     zc_zmq_receive. EPIPE is not final: ZeroMQ reconnects to a publisher restarted on the endpoint and
 *     the subscriber receives its messages (its sequence numbers start a new run, not counted as missed).
 *   - Garbage from a peer that is not a publisher: dropped, EPROTO once per frame, counted in
 *     stats.rejected; the next receive goes on.
 *   - zc_ep_pub_collect takes in nothing (libzmq frees blocks itself): it reads subscriptions and the
 *     monitor and returns the messages libzmq still holds. No ZC_PUB_MAX_SUBS limit (tested with 3). */
typedef struct zc_ep_pub_s zc_ep_pub_t;

ZC_ZMQ_API zc_zmq_t *zc_zmq_pub_bind(const char *endpoint, const zc_zmq_config_t *cfg); /* XPUB */
ZC_ZMQ_API zc_zmq_t *zc_zmq_sub_connect(const char *endpoint, const zc_zmq_config_t *cfg); /* SUB */
/* Publisher: zc_zmq_loan, zc_zmq_cancel, zc_zmq_collect, zc_zmq_fd, zc_zmq_close as a producer, and: */
ZC_ZMQ_API int zc_zmq_pub_send(zc_zmq_t *z, void *p, size_t len, uint32_t type); /* subscribers, or -1 */
ZC_ZMQ_API int zc_zmq_pub_accept(zc_zmq_t *z, int timeout_ms);
ZC_ZMQ_API int zc_zmq_subscribers(zc_zmq_t *z);
/* chan: as zc_zmq_stats' producer; subscribers (connected), joined (subscriptions received), left
 * (connections closed), unheard, deliveries (the sum of what send returned); evicted, cut_off, dropped 0. */
ZC_ZMQ_API void zc_zmq_pub_stats(zc_zmq_t *z, zc_pub_stats_t *out);
/* Subscriber: zc_zmq_receive, _release, _arm, _fd, _stats, _close as a consumer, and: */
ZC_ZMQ_API uint64_t zc_zmq_missed(zc_zmq_t *z);

/* The publisher over either transport: a socket path is zc_pub_listen (cfg->chan), tcp:// or ipc:// is
 * zc_zmq_pub_bind ("tcp://127.0.0.1:*" picks a free port: zc_ep_pub_endpoint). The rest dispatches to
 * zc_pub_* or the calls above. Close removes the local socket file. */
ZC_ZMQ_API zc_ep_pub_t *zc_ep_pub_listen(const char *endpoint, const zc_zmq_config_t *cfg);
ZC_ZMQ_API void zc_ep_pub_close(zc_ep_pub_t *p);
ZC_ZMQ_API zc_ep_kind_t zc_ep_pub_kind(zc_ep_pub_t *p);
ZC_ZMQ_API const char *zc_ep_pub_endpoint(zc_ep_pub_t *p);
ZC_ZMQ_API int zc_ep_pub_accept(zc_ep_pub_t *p, int timeout_ms);
ZC_ZMQ_API void *zc_ep_pub_loan(zc_ep_pub_t *p, size_t n);
ZC_ZMQ_API int zc_ep_pub_send(zc_ep_pub_t *p, void *buf, size_t len, uint32_t type);
ZC_ZMQ_API int zc_ep_pub_cancel(zc_ep_pub_t *p, void *buf);
ZC_ZMQ_API long zc_ep_pub_collect(zc_ep_pub_t *p);
ZC_ZMQ_API int zc_ep_pub_subscribers(zc_ep_pub_t *p);
/* Local: the listening socket. ZeroMQ: an epoll fd that becomes readable when a subscription or a
 * connection event may have arrived. Rule: call zc_ep_pub_accept(p, 0) until EAGAIN right before
 * epoll_wait (any other call on the publisher, a send included, may take ZeroMQ's edge-triggered signal;
 * accept reads everything and leaves the fd armed). Test zmq_loop_pub. */
ZC_ZMQ_API int zc_ep_pub_fd(zc_ep_pub_t *p);
ZC_ZMQ_API void zc_ep_pub_stats(zc_ep_pub_t *p, zc_pub_stats_t *out);
ZC_ZMQ_API const char *zc_ep_pub_error(zc_ep_pub_t *p);

/* ---- the channel services over both transports: zc_eps_* ----
 * zcmem_service.h's calls (request/response correlated by the library, the work queue to the least busy
 * of N workers, N clients to one server, one-way messages), with the same arguments, zc_svc_msg_t,
 * zc_svc_stats_t and errno values. The endpoint string picks the transport, as for zc_ep_*: a service name
 * or a socket path is the local service (zc_svc_listen / zc_svc_connect, shared memory, nothing changes);
 * "tcp://host:port" or "ipc://path" is ZeroMQ: the listener binds a ROUTER socket, a connector connects a
 * DEALER socket ("tcp://127.0.0.1:*" picks a free port: zc_eps_endpoint gives it). inproc:// is refused
 * (EPROTONOSUPPORT): libzmq has no connection events there, so a dead peer would never be noticed.
 *
 *   server / dispatcher                          client / worker
 *   s = zc_eps_listen(ep, NULL)                  c = zc_eps_connect(ep, NULL)
 *   zc_eps_receive(s, &req, -1)                  p = zc_eps_loan(c, n); fill p
 *   r = zc_eps_loan_reply(s, &req, m); fill r    zc_eps_call(c, p, n, TYPE, &rep, 1000)
 *   zc_eps_reply(s, &req, r, m, TYPE)            use rep.data; zc_eps_release(c, &rep)
 *
 * What differs over ZeroMQ (the local service's behaviour is zcmem_service.h's):
 *   - Memory. A loan is a zcmem block (zc_malloc) handed to libzmq without a copy (zmq_msg_init_data);
 *     libzmq's I/O thread frees it when it is sent. A received message is libzmq's buffer, read in place
 *     (libzmq's own copies: docs/zmq.md). Views are not 16-byte aligned in general. Sizes: 1 byte to
 *     max_msg (default ZC_EPS_MAX_MSG); zc_eps_max_msg says which.
 *   - Peers. A connector is known to the listener from its first frame: each connector sends a HELLO
 *     after every (re)connection, so a worker gets work before it has sent anything. A listener's loan
 *     picks the peer with the fewest requests awaiting a reply (ties: round robin), as locally.
 *   - Death. When a connection closes (peer killed: at once, from the kernel's FIN/RST; peer host gone or
 *     network cut: only with heartbeat_ms, after heartbeat_timeout_ms of silence, else when TCP gives up),
 *     every request sent on it that awaits a reply comes out of receive as FAILED with EPIPE (zc_eps_call
 *     fails with EPIPE), exactly once; a reply or send to it fails with EPIPE. Nothing is retried:
 *     at most once. Requests still queued in libzmq or in flight are lost with the connection; their
 *     FAILED notice is what the caller sees.
 *   - Reconnection. A connector's connection comes back by itself when the listener restarts (ZeroMQ
 *     reconnects every 100 ms): calls fail with EPIPE while it is down (receive: once 200 ms have passed
 *     with no connection, for frames still arriving), then work again. EPIPE is not final, unlike locally.
 *   - Hostile peers. A frame that is not a well-formed message (size, magic, length, kind, several parts)
 *     or a reply to no outstanding request of its peer is dropped and counted in stats.rejected; the
 *     connection is not closed (a ROUTER cannot close one peer). stats.dropped counts late replies to
 *     abandoned requests and frames from connections already gone.
 *   - Back-pressure (zc_eps_arm_space, ZC_CHAN_FAIL): a full peer is libzmq's high-water mark
 *     (ring_entries messages per connection, plus the kernel's socket buffers), not a ring. arm_space
 *     returns 0 and the fd wakes when libzmq says ZMQ_POLLOUT again (its pipe to a peer went below the
 *     mark: the peer read), when the free callback gives back memory under max_bytes, or when a reply
 *     comes (max_pending). On a listener ZMQ_POLLOUT means "some peer's pipe has room", not the peer the
 *     loan picked: a wake-up means "retry", as locally. The wake-up is the arming thread's: it keeps
 *     the fd readable until that thread's next receive, loan, send or arm_space (another thread's
 *     receive does not take it). Tests zmq_loop_space, zmq_loop_space_other.
 *   - Not provided over ZeroMQ: peer credentials (cfg.svc.chan.peer_uids, zc_svc_msg_peer; no
 *     authentication: bind to loopback or a private network).
 *   - Threads, as zcmem_service.h: every call but receive and call (one thread at a time) is thread-safe.
 *   - zc_eps_fd over ZeroMQ: an epoll fd, level-triggered for the caller as locally. The rule is the local
 *     one: after it is readable, call zc_eps_receive(e, &m, 0) until EAGAIN, then sleep on it. It then
 *     wakes for the next message, FAILED notice or connection change, even when another thread's call (a
 *     reply, a send) took ZeroMQ's edge-triggered ZMQ_FD signal meanwhile (the library re-signals the fd
 *     through an eventfd), and on a connector when receive starts to say EPIPE (200 ms after the
 *     connection's loss, a timer). Test zmq_loop_svc, zmq_loop_svc_conn. */
#define ZC_EPS_MAX_MSG ((size_t)UINT32_MAX - 32) /* ZeroMQ: the largest payload (32-byte header) */

typedef struct zc_eps_s zc_eps_t;
typedef struct zc_eps_config_s {
  zc_svc_config_t svc;      /* both transports: svc.chan.policy, block_timeout_ms, ring_entries (ZeroMQ:
                               high-water marks), max_bytes (ZeroMQ: bytes loaned or held by libzmq),
                               max_peers, max_pending, connect_timeout_ms (ZeroMQ: wait this long for the
                               first connection, default setup_timeout_ms or 5 s) */
  int heartbeat_ms;         /* ZeroMQ: ZMQ_HEARTBEAT_IVL (0: no heartbeats) */
  int heartbeat_timeout_ms; /* ZeroMQ: ZMQ_HEARTBEAT_TIMEOUT and _TTL (0: 3 x heartbeat_ms) */
  uint64_t max_msg;         /* ZeroMQ: the largest payload; larger frames are refused (0: ZC_EPS_MAX_MSG) */
} zc_eps_config_t;

ZC_ZMQ_API zc_eps_t *zc_eps_listen(const char *endpoint, const zc_eps_config_t *cfg);
ZC_ZMQ_API zc_eps_t *zc_eps_connect(const char *endpoint, const zc_eps_config_t *cfg);
ZC_ZMQ_API void zc_eps_close(zc_eps_t *e);
ZC_ZMQ_API zc_ep_kind_t zc_eps_kind(zc_eps_t *e);
ZC_ZMQ_API const char *zc_eps_endpoint(zc_eps_t *e);
ZC_ZMQ_API int zc_eps_fd(zc_eps_t *e);
ZC_ZMQ_API int zc_eps_peers(zc_eps_t *e);
/* zc_svc_arm_space over both transports (back-pressure for event loops: after EAGAIN under ZC_CHAN_FAIL,
 * 1 = retry now, 0 = armed: zc_eps_fd wakes when room may have come back, -1 EPIPE). See "Back-pressure"
 * above for what it waits for over ZeroMQ. */
ZC_ZMQ_API int zc_eps_arm_space(zc_eps_t *e);
ZC_ZMQ_API void *zc_eps_loan(zc_eps_t *e, size_t n);
ZC_ZMQ_API size_t zc_eps_max_msg(zc_eps_t *e);
ZC_ZMQ_API void *zc_eps_loan_reply(zc_eps_t *e, const zc_svc_msg_t *req, size_t n);
ZC_ZMQ_API int zc_eps_send(zc_eps_t *e, void *p, size_t len, uint32_t type);
ZC_ZMQ_API int zc_eps_request(zc_eps_t *e, void *p, size_t len, uint32_t type, uint64_t *id);
ZC_ZMQ_API int zc_eps_reply(zc_eps_t *e, zc_svc_msg_t *req, void *p, size_t len, uint32_t type);
ZC_ZMQ_API int zc_eps_cancel(zc_eps_t *e, void *p);
ZC_ZMQ_API int zc_eps_call(zc_eps_t *e, void *p, size_t len, uint32_t type, zc_svc_msg_t *reply, int timeout_ms);
ZC_ZMQ_API int zc_eps_abandon(zc_eps_t *e, uint64_t id);
ZC_ZMQ_API int zc_eps_receive(zc_eps_t *e, zc_svc_msg_t *m, int timeout_ms);
ZC_ZMQ_API int zc_eps_release(zc_eps_t *e, zc_svc_msg_t *m);
ZC_ZMQ_API void zc_eps_stats(zc_eps_t *e, zc_svc_stats_t *out);
ZC_ZMQ_API const char *zc_eps_error(zc_eps_t *e);

#ifdef __cplusplus
}
#endif
#endif /* ZCMEM_ZMQ_H */
