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
 *   EINVAL     a pointer that is not a live loan of this channel, a bad argument
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
  ZC_CHAN_FAIL = 1   /* fail at once with EAGAIN */
} zc_chan_policy_t;

/* Every field may be left 0 for its default. Only the producer's configuration matters for sizes. */
typedef struct zc_chan_config_s {
  uint32_t ring_entries;  /* descriptors in the ring, a power of two (4096) */
  uint64_t first_segment; /* bytes of the first data segment (4 MiB); later ones double, up to 256 MiB */
  uint64_t max_bytes;     /* cap on all data segments together (1 GiB) */
  int policy;             /* zc_chan_policy_t (ZC_CHAN_BLOCK) */
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
 * consumer close its end (they fail with EPIPE), then join them, then close. */
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
 * beyond the slot; EPIPE, EPROTO) the loan, if it was one, is given back to the allocator. */
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
/* Give a message back to the producer; the view must not be used afterwards. */
ZC_CHAN_API int zc_chan_release(zc_chan_t *ch, const zc_chan_msg_t *m);
ZC_CHAN_API int zc_chan_release_batch(zc_chan_t *ch, const zc_chan_msg_t *msgs, int n);

/* ---- event loops ---- */
/* The channel's socket, for poll/epoll (POLLIN). On the consumer it becomes readable when a message
 * arrives after zc_chan_arm(), and at end of file (producer gone). On the producer it becomes readable when
 * the consumer makes room after zc_chan_arm_space(), and at end of file (consumer gone: calls fail with
 * EPIPE). Do not read from or close it. */
ZC_CHAN_API int zc_chan_fd(zc_chan_t *ch);
/* Consumer: ask for a wake-up on zc_chan_fd at the next message. Returns 1 if messages are already
 * waiting (receive them instead of sleeping), 0 if armed, -1 on error (EPIPE, EPROTO, EMFILE). Drains
 * earlier wake-ups from the socket, so call it right before epoll_wait. */
ZC_CHAN_API int zc_chan_arm(zc_chan_t *ch);
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

#ifdef __cplusplus
}
#endif
#endif /* ZCMEM_CHANNEL_H */
