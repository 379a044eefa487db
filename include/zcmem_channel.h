/* zcmem zero-copy channel: hand messages from one process to another without copying them.
 *
 * The producer loans a buffer that already lives in memory shared with the consumer, writes the message
 * into it once and sends it (a 16-byte descriptor goes through a ring in shared memory). The consumer
 * receives a read-only view of the same bytes, reads them in place and releases the message; the slot goes
 * back to the producer's allocator. The two processes are joined by a UNIX domain socket (SOCK_SEQPACKET)
 * that carries the shared-memory file descriptors and tells each side when the other dies.
 *
 *   producer                                  consumer
 *   ch = zc_chan_connect(path, PRODUCER, 0)   ch = zc_chan_accept(lfd, CONSUMER, 0)
 *   p = zc_chan_loan(ch, 300)                 zc_chan_receive(ch, &m, -1)
 *   fill p (at most 300 bytes)                use m.data[0 .. m.len), m.type
 *   zc_chan_send(ch, p, 120, MY_TYPE)         zc_chan_release(ch, &m)
 *
 * Threads: producer calls (loan, send, cancel, stats) are thread-safe: any number of threads may share one
 * producer channel. Consumer calls are made by one thread at a time.
 *
 * Errors: functions return -1 (or NULL) and set errno; zc_chan_error() gives a one-line reason.
 *   EAGAIN     nothing to receive, or the ring/memory is full under the ZC_CHAN_FAIL policy
 *   ETIMEDOUT  a blocking call timed out
 *   EMSGSIZE   a message larger than zc_chan_max_msg(), or send(len) larger than the loan
 *   EINVAL     a pointer that is not a live loan of this channel, a bad argument (a NULL channel or
 *              publisher, a NULL array with n > 0: every call refuses it, none dereferences it)
 *   EPIPE      the peer closed or died (its messages were reclaimed)
 *   EPROTO     the peer broke the protocol (garbage in shared memory): the channel is closed
 *   EMFILE     a shared-memory fd could not be received (RLIMIT_NOFILE): the channel is closed
 *   EACCES     open/accept/connect: the peer's uid is not allowed (zc_chan_config_t.peer_uids)
 * After EPIPE, EPROTO or EMFILE the channel is dead: every call fails the same way; zc_chan_close it.
 */
#ifndef ZCMEM_CHANNEL_H
#define ZCMEM_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define ZC_CHAN_API __attribute__((visibility("default")))
#else
#define ZC_CHAN_API
#endif

/* Messages up to ZC_CHAN_MAX_MSG (64 KiB, the largest size class) take a slot of their size class; larger
 * ones take a run of whole 512 KiB pages (a run wastes less than one page). A loan of at most this size
 * never fails with EMSGSIZE; the channel's real limit is zc_chan_max_msg(). */
#define ZC_CHAN_MAX_MSG ((size_t)64 * 1024)

typedef struct zc_chan_s zc_chan_t;

typedef enum zc_chan_role_e { ZC_CHAN_PRODUCER = 1, ZC_CHAN_CONSUMER = 2 } zc_chan_role_t;

/* What the producer does when the ring is full or the memory cap is reached. */
typedef enum zc_chan_policy_e {
  ZC_CHAN_BLOCK = 0, /* wait for the consumer, at most block_timeout_ms, then ETIMEDOUT (default) */
  ZC_CHAN_FAIL = 1,  /* fail at once with EAGAIN */
  ZC_PUB_EVICT = 2   /* publisher only (zc_pub_*): wait like ZC_CHAN_BLOCK, then, instead of ETIMEDOUT, cut
                        off the slowest subscriber and go on; a one-way channel treats it as ZC_CHAN_BLOCK */
} zc_chan_policy_t;

/* Every field may be left 0 for its default. Only the producer's configuration matters for sizes. */
typedef struct zc_chan_config_s {
  uint32_t ring_entries;  /* descriptors in the ring, a power of two (4096) */
  uint64_t first_segment; /* bytes of the first data segment (4 MiB); later ones double, up to 256 MiB
                             (a larger value, up to UINT64_MAX, is taken as 256 MiB) */
  uint64_t max_bytes;     /* cap on all data segments together (1 GiB) */
  int policy;             /* zc_chan_policy_t (ZC_CHAN_BLOCK); another value: the open fails, EINVAL */
  int block_timeout_ms;   /* ZC_CHAN_BLOCK: how long to wait (0: 1000 ms; < 0: forever) */
  int spin_ns;            /* how long a waiting side spins before it sleeps on the futex (0: 20000) */
  int setup_timeout_ms;   /* how long open/accept waits for the peer's handshake (0: 5000 ms; < 0: forever) */
  uint64_t max_queued_bytes; /* bytes sent but not yet received before send waits like on a full ring,
                                as a socket buffer does (1 MiB; one message always fits) */
  /* Who may be on the other end: open/accept/connect fail with EACCES unless the peer's uid (SO_PEERCRED,
   * recorded by the kernel at connect time) is one of these. 0 entries (default): only this process's
   * effective uid. ZC_CHAN_ANY_UID in the list accepts every uid. Read during open only. */
  const uint32_t *peer_uids;
  uint32_t n_peer_uids;
  /* Producer: zero a slot's bytes when it becomes free (released, cancelled or reclaimed), so a consumer
   * (which can read its whole segments) never sees what an earlier message or a cancelled loan held. Costs
   * a memset of the slot per message. 0: off (default). */
  int zero_freed;
} zc_chan_config_t;

#define ZC_CHAN_ANY_UID 0xffffffffu

/* A received message: a read-only view into shared memory, valid until released. data, len and type were
 * loaded once and checked (the view lies inside memory the consumer mapped); the bytes at data are the
 * producer's and may change while you read them (a hostile or buggy producer can rewrite a message after
 * sending it). Rule: read every field you check exactly once, or copy it out first (zc_chan_copy), and use
 * only the copy; never check a length in shared memory and then read it again. */
typedef struct zc_chan_msg_s {
  const void *data;
  uint32_t len;
  uint32_t type;
  uint64_t handle; /* opaque: identifies the slot to the producer */
} zc_chan_msg_t;

/* ---- setup ---- */
/* Listen on a UNIX socket path; returns the listening fd. A stale socket file there (nobody listening) is
 * replaced; a live one is not touched: -1 with EADDRINUSE. */
ZC_CHAN_API int zc_chan_listen(const char *path);
/* Accept one peer on a listening fd and open the channel with the given role. */
ZC_CHAN_API zc_chan_t *zc_chan_accept(int listen_fd, zc_chan_role_t role, const zc_chan_config_t *cfg);
/* Connect to a listening path and open the channel with the given role. */
ZC_CHAN_API zc_chan_t *zc_chan_connect(const char *path, zc_chan_role_t role, const zc_chan_config_t *cfg);
/* Open the channel over an already connected AF_UNIX SOCK_SEQPACKET socket (one end of a socketpair).
 * The channel owns the fd from then on (also on failure). */
ZC_CHAN_API zc_chan_t *zc_chan_open(int sock_fd, zc_chan_role_t role, const zc_chan_config_t *cfg);
/* Close the channel and unmap its memory. The peer sees end of file; a producer's messages the consumer
 * still held come back to nobody (the memory is gone with the producer's mappings). Call it last: no other
 * thread may be inside a call on this channel, or start one, once close has begun (it frees the channel).
 * To stop producer threads blocked in loan or send, let them time out (block_timeout_ms) or have the
 * consumer close its end (they fail with EPIPE), then join them, then close. In a fork child, closing the
 * channel it inherited only frees the child's copies: the parent's channel goes on (no other call may be
 * made on it in the child). */
ZC_CHAN_API void zc_chan_close(zc_chan_t *ch);

/* ---- producer ---- */
/* A writable buffer of at least n bytes (1 <= n <= zc_chan_max_msg(ch)) in shared memory, 16-byte aligned
 * (a message above 64 KiB: page aligned). */
ZC_CHAN_API void *zc_chan_loan(zc_chan_t *ch, size_t n);
/* The largest message a loan may ask for. Producer: the largest n that can ever be loaned from now on:
 * the larger of its largest data segment and of the segment it may still add under max_bytes (at most
 * 1 GiB); segments are never given back, so it only shrinks as the channel grows, never below 64 KiB nor
 * below the largest loan it already made. Consumer: the largest message it accepts (1 GiB). */
ZC_CHAN_API size_t zc_chan_max_msg(zc_chan_t *ch);
/* Resize the live loan p to at least n bytes (like realloc). The first `keep` bytes of p (those the caller
 * wrote; clamped to n) are preserved; the bytes after them are unspecified. Returns the loan, p itself when
 * it changed in place, or NULL with errno and p unchanged and still loaned (EINVAL: not a live loan, or
 * keep beyond it; EMSGSIZE: n > zc_chan_max_msg; EAGAIN/ETIMEDOUT per the policy; EPIPE, EPROTO).
 *  - in place: a slot that still fits n (unless a class at most half as large can be had, see below); a
 *    large message shrunk (its tail pages go back to the allocator at once) or grown over free pages that
 *    follow it;
 *  - moved (copying keep bytes, outside the channel's lock): growing beyond the slot or beyond free pages;
 *    shrinking to a class at most half the slot, or a large message to 64 KiB or less, when such a slot is
 *    free without waiting (memory given back at once; otherwise it stays in place).
 * Shrinking by send(len < n) alone gives nothing back until the consumer releases the message. */
ZC_CHAN_API void *zc_chan_loan_resize(zc_chan_t *ch, void *p, size_t n, size_t keep);
/* Send a loaned buffer: its first len bytes (len <= the loaned n) reach the consumer with the type tag.
 * The buffer belongs to the channel from then on. When the queue is full (EAGAIN, ETIMEDOUT) the loan stays
 * with the caller: send again or cancel it. On any other error (EINVAL: not a live loan; EMSGSIZE: len
 * beyond the slot; EPIPE, EPROTO) the loan, if it was one, is given back to the allocator. The pointer
 * and len are checked first: EINVAL and EMSGSIZE come at once, never after waiting for room. */
ZC_CHAN_API int zc_chan_send(zc_chan_t *ch, void *p, size_t len, uint32_t type);
/* Send n messages at once (data, len, type of each; handle ignored). Returns how many were sent; all of
 * them unless an error stops it (then -1 if none was sent, with errno). The unsent loans follow the rules
 * of zc_chan_send: kept after EAGAIN/ETIMEDOUT, given back after the channel died; a message that fails
 * with EINVAL or EMSGSIZE stops the batch there and the loans after it stay with the caller. */
ZC_CHAN_API int zc_chan_send_batch(zc_chan_t *ch, const zc_chan_msg_t *msgs, int n);
/* Give a loan back without sending it. */
ZC_CHAN_API int zc_chan_cancel(zc_chan_t *ch, void *p);
/* Take in the slots the consumer released, and look at the socket: -1 EPIPE if the consumer is gone (its
 * messages are then reclaimed). Returns the number of messages still in flight. Loan and send do the first
 * part themselves when they need memory; call this from an idle hook or after POLLHUP on zc_chan_fd. */
ZC_CHAN_API long zc_chan_collect(zc_chan_t *ch);

/* ---- consumer ---- */
/* Receive one message. timeout_ms: 0 = do not wait (EAGAIN), < 0 = wait forever, else at most that long
 * (ETIMEDOUT). Returns 0. EPIPE once the producer is gone and every message it sent has been received. */
ZC_CHAN_API int zc_chan_receive(zc_chan_t *ch, zc_chan_msg_t *out, int timeout_ms);
/* Receive up to max messages: waits like zc_chan_receive for the first, then takes what is there.
 * Returns the number received (>= 1) or -1. */
ZC_CHAN_API int zc_chan_receive_batch(zc_chan_t *ch, zc_chan_msg_t *out, int max, int timeout_ms);
/* Copy bytes [off, off + n) of a received message into dst (private memory), so that what you check is
 * what you use. 0, or -1 with EMSGSIZE if the range is not inside the message (off + n > m->len). */
ZC_CHAN_API int zc_chan_copy(const zc_chan_msg_t *m, size_t off, void *dst, size_t n);
/* Give a message back to the producer; the view must not be used afterwards. Release each message once:
 * the consumer keeps no record of what it handed out, so a second release of the same message (or of a
 * handle it never received) reaches the producer, which takes it for a hostile consumer and closes the
 * channel (EPROTO there, EPIPE here; see docs/channel.md, "Validation rules"). */
ZC_CHAN_API int zc_chan_release(zc_chan_t *ch, const zc_chan_msg_t *m);
ZC_CHAN_API int zc_chan_release_batch(zc_chan_t *ch, const zc_chan_msg_t *msgs, int n);

/* ---- event loops ---- */
/* The channel's socket, for poll/epoll (POLLIN). On the consumer it becomes readable when a message
 * arrives after zc_chan_arm(), and at end of file (producer gone). On the producer it becomes readable when
 * the consumer makes room after zc_chan_arm_space(), and at end of file (consumer gone: calls fail with
 * EPIPE). Do not read from or close it. */
ZC_CHAN_API int zc_chan_fd(zc_chan_t *ch);
/* Consumer: ask for a wake-up on zc_chan_fd at the next message. Returns 1 if messages are already
 * waiting (receive them, then arm again before sleeping: a 1 leaves no wake-up asked for, so a send while
 * you take them does not make the fd readable), 0 if armed, -1 on error (EPIPE, EPROTO, EMFILE). Drains
 * the earlier wake-up from the socket, so call it right before epoll_wait. It reads records up to the
 * first wake-up (a producer leaves at most one unread), so one read suffices after a wake-up; a record
 * behind it keeps the fd readable, and the next call reads it. */
ZC_CHAN_API int zc_chan_arm(zc_chan_t *ch);
/* Consumer: zc_chan_arm without reading the socket (no system call), for an event loop whose poll or
 * epoll has just reported zc_chan_fd not readable (nothing unread then). Returns as zc_chan_arm. A
 * record that is unread after all (a wake-up, a new segment, end of file) keeps the fd readable: call
 * zc_chan_arm when it is reported, which reads it. One exception: after an arm that said 1 although the
 * producer had already answered its request (its wake-up record sent, or about to be), the next arm,
 * quiet or not, reads up to that record (one recvmsg), so it does not leave the fd readable for nothing. */
ZC_CHAN_API int zc_chan_arm_quiet(zc_chan_t *ch);
/* Producer, after a loan, send or resize failed with EAGAIN (ZC_CHAN_FAIL): ask for a wake-up on
 * zc_chan_fd when the consumer next takes a message from the ring or releases one. Returns 1 if it did so
 * since the producer last looked (retry now instead of waiting), 0 if armed, -1 on error (EPIPE: the
 * consumer is gone; EPROTO). Drains earlier wake-ups from the socket, so call it right before epoll_wait;
 * a wake-up means "retry", not "it will fit" (a retry may fail with EAGAIN again: arm again). The consumer
 * pays no system call for it unless the producer is armed, and leaves at most one wake-up unread. */
ZC_CHAN_API int zc_chan_arm_space(zc_chan_t *ch);

/* ---- stats ---- */
typedef struct zc_chan_stats_s {
  /* producer */
  uint64_t loaned_msgs, loaned_bytes;     /* loaned, not yet sent (slot bytes) */
  uint64_t inflight_msgs, inflight_bytes; /* sent, not yet returned: in the ring or held by the consumer */
  uint64_t free_bytes;                    /* bytes of the data segments not in any message */
  uint64_t segment_bytes;                 /* bytes of data segments (the consumer sees the same) */
  uint64_t segments;                      /* number of data segments */
  uint64_t sent, returned, reclaimed;     /* messages sent, returned by the consumer, reclaimed at death */
  /* consumer */
  uint64_t held_msgs, held_bytes;         /* received and not yet released (payload bytes) */
  uint64_t received, released;
  /* both */
  uint64_t queued;                        /* descriptors in the ring now */
  uint64_t queued_bytes;                  /* producer: their payload bytes */
  uint64_t rejected;                      /* invalid descriptors or handles seen (the channel is closed) */
  uint64_t wakes;                         /* futex wake or socket kick system calls made */
  uint64_t sleeps;                        /* times this side slept on the futex or the socket */
  uint64_t full_waits;                    /* producer: times the ring or the memory was full */
} zc_chan_stats_t;

ZC_CHAN_API void zc_chan_stats(zc_chan_t *ch, zc_chan_stats_t *out);
/* The last error of this channel as one line ("" if none). */
ZC_CHAN_API const char *zc_chan_error(zc_chan_t *ch);
/* Who is on the other end: the process id, uid and gid the kernel recorded when the peer connected (or
 * created the socket pair). The pid may have been reused if the peer has died since. 0, or -1 EINVAL. */
typedef struct zc_chan_peer_s {
  int32_t pid;
  uint32_t uid, gid;
} zc_chan_peer_t;
ZC_CHAN_API int zc_chan_peer(zc_chan_t *ch, zc_chan_peer_t *out);
/* The role this channel was opened with. */
ZC_CHAN_API zc_chan_role_t zc_chan_role(zc_chan_t *ch);

/* ---- fan-out: one publisher, every message read in place by every subscriber ----
 *
 *   publisher                                   each subscriber process (join at any time)
 *   p = zc_pub_listen(path, cfg)                ch = zc_chan_connect(path, ZC_CHAN_CONSUMER, 0)
 *   zc_pub_accept(p, timeout_ms)  (or epoll     zc_chan_receive(ch, &m, -1)  ... as any consumer
 *     on zc_pub_fd, then zc_pub_accept(p, 0))   zc_chan_release(ch, &m)
 *   q = zc_pub_loan(p, n); fill q
 *   zc_pub_send(p, q, n, type)
 *
 * One copy of each message in shared memory: every subscriber gets its own ring, and a descriptor naming
 * the same bytes; the slot comes back to the publisher when the last subscriber it was sent to releases
 * it (or dies, or is cut off). A subscriber is an ordinary consumer channel (zc_chan_*), with its checks.
 * A subscriber that joins later receives the messages sent after it joined. Back-pressure is the slowest
 * live subscriber's, by cfg.policy: ZC_CHAN_BLOCK (wait, then ETIMEDOUT), ZC_CHAN_FAIL (EAGAIN), or
 * ZC_PUB_EVICT (wait block_timeout_ms, then cut off the subscriber that holds things up).
 * A subscriber that returns a handle it does not hold (a second release, another's message, garbage) is
 * cut off alone (EPROTO on its side, its messages taken back); the others go on.
 * Threads: every zc_pub_* call is thread-safe except zc_pub_close. */
#define ZC_PUB_MAX_SUBS 32

typedef struct zc_pub_s zc_pub_t;

/* A publisher listening on a UNIX socket path (zc_chan_listen's rules); path NULL: no listener (add
 * subscribers with zc_pub_add). cfg as for a producer (sizes, cap, policy, peer_uids, zero_freed). */
ZC_CHAN_API zc_pub_t *zc_pub_listen(const char *path, const zc_chan_config_t *cfg);
/* Accept one subscriber (waits at most timeout_ms for it to connect, then for its handshake at most
 * cfg.setup_timeout_ms). Returns the number of live subscribers, or -1 (ETIMEDOUT or EAGAIN if nobody
 * came, EBUSY if ZC_PUB_MAX_SUBS are live, EACCES, EPROTO ... if the handshake failed). */
ZC_CHAN_API int zc_pub_accept(zc_pub_t *p, int timeout_ms);
/* Add a subscriber over a connected AF_UNIX SOCK_SEQPACKET socket (one end of a socketpair; the other
 * end opens with zc_chan_open(fd, ZC_CHAN_CONSUMER, cfg)). Owns the fd. As zc_pub_accept. */
ZC_CHAN_API int zc_pub_add(zc_pub_t *p, int sock_fd);
/* The listening socket (-1 if none), for epoll: readable when a subscriber connects (zc_pub_accept(p, 0)). */
ZC_CHAN_API int zc_pub_fd(zc_pub_t *p);
/* By name, as the channel services name theirs: "zcmem-pub.<uid>.<name>" in the abstract UNIX namespace
 * (uid: the publisher's effective uid; nothing in the file system; name at most 80 bytes). The peer-credential
 * checks are the channel's: the publisher admits a subscriber whose uid is in cfg.peer_uids (default: its
 * own), and zc_pub_subscribe opens a consumer channel that admits a publisher whose uid is in its
 * cfg.peer_uids (default: its own); owner_uid names the publisher's uid in the name (0: our own). A
 * refused peer: EACCES. */
ZC_CHAN_API zc_pub_t *zc_pub_listen_name(const char *name, const zc_chan_config_t *cfg);
ZC_CHAN_API zc_chan_t *zc_pub_subscribe(const char *name, uint32_t owner_uid, const zc_chan_config_t *cfg);
/* An fd for an event loop (epoll, poll), level-triggered: readable while a subscriber waits on the
 * listener to be accepted, while a subscriber that closed, died or wrote garbage on its socket is not yet
 * dropped, and, once zc_pub_arm_space returned 0, from a subscriber's next take or release (room may be
 * back) until that wake-up is read. Only zc_pub_collect and zc_pub_arm_space clear these (each accepts
 * the waiting, drops the dead, reads the wake-ups); zc_pub_loan and zc_pub_send make no system call and
 * leave the fd as it is. So after it is readable call zc_pub_collect (or zc_pub_arm_space, if about to
 * wait for room) before waiting on it again, else it stays readable. */
ZC_CHAN_API int zc_pub_event_fd(zc_pub_t *p);
/* After EAGAIN from zc_pub_loan or zc_pub_send (policy ZC_CHAN_FAIL): 1 if room or memory came back
 * already (retry now), 0 if armed (wait for zc_pub_event_fd), -1 if the publisher failed. A publisher
 * whose memory is all in its own loans (nothing sent is held) is woken by nothing: cancel or send. */
ZC_CHAN_API int zc_pub_arm_space(zc_pub_t *p);
/* As zc_chan_loan / zc_chan_cancel / zc_chan_max_msg, in the publisher's memory. */
ZC_CHAN_API void *zc_pub_loan(zc_pub_t *p, size_t n);
ZC_CHAN_API int zc_pub_cancel(zc_pub_t *p, void *buf);
/* Grow or shrink an unsent loan, like zc_chan_loan_resize (the same cases: in place when it can, else
 * moved with its first keep bytes copied; NULL with errno and buf still a loan on failure: EINVAL,
 * EMSGSIZE, EAGAIN, ETIMEDOUT, EPIPE). Waiting for memory follows the policy as zc_pub_loan does
 * (ZC_PUB_EVICT: the subscriber holding the most is cut off and the resize goes on). */
ZC_CHAN_API void *zc_pub_loan_resize(zc_pub_t *p, void *buf, size_t n, size_t keep);
ZC_CHAN_API size_t zc_pub_max_msg(zc_pub_t *p);
/* Send a loan to every live subscriber. Returns how many it went to (0: nobody is subscribed; the loan is
 * given back at once), or -1: EAGAIN / ETIMEDOUT (a subscriber's ring or queue budget is full: the loan
 * stays with the caller), EINVAL, EMSGSIZE (the loan is given back). EINVAL and EMSGSIZE come at once,
 * whatever the policy: a bad send never waits for room, and under ZC_PUB_EVICT never cuts anyone off. */
ZC_CHAN_API int zc_pub_send(zc_pub_t *p, void *buf, size_t len, uint32_t type);
/* Send n loans (data, len, type of each; handle ignored) to every live subscriber, in order, waking each
 * subscriber once for the whole batch (at most one futex wake and one event-loop record per subscriber,
 * instead of one per message). Each message waits for room by the policy as zc_pub_send does. Returns
 * how many were sent (all of them unless an error stopped it: then the loans from the failed one on stay
 * with the caller, except that EMSGSIZE gives that one back and a failed publisher takes them all back),
 * or -1 with errno if none was. A subscriber that dies or is cut off midway gets no more; the messages
 * it held come back when the others release them. */
ZC_CHAN_API int zc_pub_send_batch(zc_pub_t *p, const zc_chan_msg_t *msgs, int n);
/* Take in every subscriber's releases, see which subscribers died or left (their messages come back), and
 * accept subscribers already waiting on the listener, without waiting for more. Returns the messages in
 * flight. Accepting runs each waiter's handshake in the call: a connector that stays silent holds it up
 * to cfg.setup_timeout_ms (5 s by default), then is turned away (test fanout_silent); zc_pub_arm_space
 * accepts the same way. With local processes of an allowed uid that may misbehave, keep setup_timeout_ms
 * short, or accept from a thread of its own (zc_pub_accept) and leave the listener out of the event loop. */
ZC_CHAN_API long zc_pub_collect(zc_pub_t *p);
/* Live subscribers now. */
ZC_CHAN_API int zc_pub_subscribers(zc_pub_t *p);

typedef struct zc_pub_stats_s {
  zc_chan_stats_t chan;   /* the memory: loaned, inflight (sent, not yet released by every subscriber it
                             went to), free, segments; sent; returned (the last holder released it);
                             reclaimed (the last holders died or were cut off); rejected; wakes; full_waits */
  uint64_t subscribers;   /* live now */
  uint64_t joined, left;  /* subscribers accepted; subscribers that closed or died */
  uint64_t evicted;       /* cut off as too slow (ZC_PUB_EVICT) or for not reading their socket */
  uint64_t cut_off;       /* cut off for breaking the protocol (a bad handle on their return ring) */
  uint64_t unheard;       /* messages sent while nobody was subscribed (given back at once) */
  uint64_t deliveries;    /* descriptors published, all subscribers together */
  uint64_t dropped;       /* references held by subscribers that left (received and never released, or still
                             queued for them), let go on their behalf; a message is reclaimed when the last
                             of its references goes this way, returned when its last holder released it */
} zc_pub_stats_t;
ZC_CHAN_API void zc_pub_stats(zc_pub_t *p, zc_pub_stats_t *out);
/* Why the last subscriber was cut off or the publisher failed (one line, "" if never). */
ZC_CHAN_API const char *zc_pub_error(zc_pub_t *p);
/* Close every subscriber's channel (they see end of file) and unmap everything. Call it last. */
ZC_CHAN_API void zc_pub_close(zc_pub_t *p);

#ifdef __cplusplus
}
#endif
#endif /* ZCMEM_CHANNEL_H */
