/* The message path between the HTTP front end and its worker processes, behind one small interface, with
 * two implementations: transport_chan.c (zcmem zero-copy channels: the worker writes the response into
 * shared memory, the front end writes it to the client straight from there) and transport_sock.c (the same
 * messages over a UNIX socket, copied into and out of the kernel). The HTTP code (http_front.c,
 * http_worker.c) never names either one; a later request/response API of the channel replaces
 * transport_chan.c alone.
 *
 * A link is one worker process and the messages to and from it. A request is one message of at most
 * tp_max_request bytes (channel: 64 MiB; socket: TP_MAX_PAYLOAD, 64 KiB - 16). A response is any number of
 * bytes, carried in one or more pieces; each piece names its request by the 64-bit id the front end gave
 * it, and the last one says so. The channel sends every response of up to zc_chan_max_msg (about 1 GiB by
 * default) as one piece, written in place into one loan that grows or shrinks (zc_chan_loan_resize) when the
 * worker's guess of its size was wrong; the socket cuts it into pieces of at most TP_MAX_PAYLOAD bytes
 * (a SOCK_SEQPACKET packet must fit the socket's send buffer).
 *
 * Trust: the front end treats every piece as untrusted input (a worker may be buggy or hostile): the id
 * and flags are copied out once, the payload is a bounded view (data, len) that the transport checked lies
 * inside what it received; the HTTP code checks the id against its own state and never reads past len.
 * Includes: libc only (each implementation includes what it needs).
 */
#ifndef HTTP_TRANSPORT_H
#define HTTP_TRANSPORT_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TP_MAX_MSG ((size_t)64 * 1024)                          /* ZC_CHAN_MAX_MSG */
#define TP_HDR 16                                               /* tp_hdr_t */
#define TP_MAX_PAYLOAD (TP_MAX_MSG - TP_HDR)                    /* bytes of a socket request or piece */
#define TP_LAST 1u                                              /* piece flag: the response's last piece */

/* The small header in front of every message: the correlation id and flags. */
typedef struct tp_hdr_s {
  uint64_t id;
  uint32_t flags; /* request: the application's flags; response piece: TP_LAST */
  uint32_t spare;
} tp_hdr_t;

typedef struct tp_link_s tp_link_t;

/* A response piece the front end received: the payload view stays valid until tp_release. */
typedef struct tp_piece_s {
  uint64_t id;
  const uint8_t *data; /* the payload: data[0 .. len) */
  uint32_t len;
  uint32_t last;       /* 1 on the response's last piece */
  tp_link_t *link;     /* private to the transport from here on */
  const void *msg_data;
  uint32_t msg_len, msg_type;
  uint64_t msg_handle;
} tp_piece_t;

extern const char *const tp_name; /* "chan" or "sock" */
extern const size_t tp_max_request; /* the largest request (bytes of payload) tp_request_buf takes */

/* ---- front end ---- */
/* Start a worker: fork + exec of exe with "--worker" and the fds it needs, and open the front end's side.
 * NULL with errno on failure. *pid: the worker's process id. */
tp_link_t *tp_spawn(const char *exe, pid_t *pid);
/* The fd to watch with epoll (EPOLLIN): pieces arrived, or the worker is gone. */
int tp_fd(tp_link_t *l);
/* Right before epoll_wait: 1 if pieces are already waiting (take them instead of sleeping), 0 if the fd
 * will wake the loop at the next piece, -1 if the worker is gone. */
int tp_arm(tp_link_t *l);
/* A buffer for a request of n bytes (n <= tp_max_request), to fill and then submit or cancel; NULL with
 * errno (EAGAIN: no room now; EMSGSIZE: larger than the link carries). */
void *tp_request_buf(tp_link_t *l, size_t n);
/* Hand a filled request to the worker. 0, or -1: EAGAIN (the worker's queue is full: the buffer is still
 * the caller's, cancel it), EPIPE (the worker is gone: the buffer was taken back). Never blocks. */
int tp_submit(tp_link_t *l, uint64_t id, uint32_t flags, void *buf, size_t n);
void tp_cancel(tp_link_t *l, void *buf);
/* Take up to max pieces that arrived. > 0: that many; 0: none (now); -1: the worker is gone or broke the
 * protocol (every piece it sent before was already handed out); tp_error says which. */
int tp_poll(tp_link_t *l, tp_piece_t *out, int max);
/* Done with a piece (written to the client): its memory goes back to the worker (or is freed). */
void tp_release(tp_piece_t *p);
/* Pieces handed out by tp_poll and not yet released. */
long tp_held(tp_link_t *l);
/* Close a link whose worker is gone (or is to go), once tp_held is 0: its memory is unmapped. */
void tp_close(tp_link_t *l);
const char *tp_error(tp_link_t *l);

/* ---- worker ---- */
typedef struct tp_worker_s tp_worker_t;
typedef struct tp_request_s {
  uint64_t id;
  uint32_t flags;
  const uint8_t *data; /* the request's bytes, in place: read each byte you check once */
  uint32_t len;
  uint64_t priv[3];
} tp_request_t;
/* Open the worker's side from its command line (argv as given to the exec by tp_spawn, after "--worker"). */
tp_worker_t *tp_worker_open(int argc, char **argv);
/* Wait for the next request. 0, or -1 when the front end is gone. */
int tp_worker_recv(tp_worker_t *w, tp_request_t *out);
void tp_worker_done(tp_worker_t *w, tp_request_t *r);
/* A response to request id, written in order through a window, then ended:
 *   tp_resp_begin(w, &r, id, guess); while (...) { p = tp_resp_room(&r, &room); write k <= room bytes at p;
 *   tp_resp_wrote(&r, k); }  tp_resp_end(&r);
 * guess: the size the worker expects (a wrong guess costs a resize, never bytes). The window is never empty:
 * when it is full, tp_resp_room makes room (channel: grows the loan in place or moves it, copying what was
 * written; beyond the channel's largest message, or over the socket: sends the full piece and starts the
 * next). tp_resp_end sends what was written as the response's last piece (channel: the loan shrunk to it
 * first when that gives memory back). Each returns -1 / NULL (errno) when the front end is gone or memory
 * ran out: stop writing. */
typedef struct tp_resp_s {
  tp_worker_t *w;
  uint64_t id, guess;
  uint8_t *piece;   /* the current piece's payload, or NULL */
  size_t cap, used; /* its size and what is written */
} tp_resp_t;
int tp_resp_begin(tp_worker_t *w, tp_resp_t *r, uint64_t id, uint64_t guess);
uint8_t *tp_resp_room(tp_resp_t *r, size_t *room);
/* Mark n more bytes of the window written (both transports: the window is r->piece[used .. cap)). */
static inline int tp_resp_wrote(tp_resp_t *r, size_t n) {
  if (n > r->cap - r->used) {
    errno = EINVAL;
    return -1;
  }
  r->used += n;
  return 0;
}
int tp_resp_end(tp_resp_t *r);
void tp_worker_close(tp_worker_t *w);

#endif
