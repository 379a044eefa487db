/* The message path between the HTTP front end and its pool of worker processes, behind one small
 * interface, with two implementations:
 *   transport_chan.c  the zcmem channel services (zcmem_service.h): the front end listens on a service
 *                     name, each worker connects to it; a request is a service request (zc_svc_request)
 *                     to the least busy worker (the library's work queue), the worker answers with
 *                     zc_svc_reply from a loan it grows or shrinks (zc_svc_loan_resize), and the library
 *                     correlates the reply with its request (no id of ours) and turns every request of a
 *                     worker that died or broke the protocol into a FAILED notice. Zero-copy both ways.
 *   transport_sock.c  the baseline: the same messages over one UNIX socket pair per worker, copied into and
 *                     out of the kernel, with a correlation id and the failure notices of its own.
 * The HTTP code (http_front.c, http_worker.c) never names either one.
 *
 * The front end's view: a pool. tp_submit hands a request to the pool, which picks the worker and gives
 * back the request's id; tp_poll hands out events, each naming a request by that id: a response piece
 * (channel: one per response, whatever its size; socket: pieces of at most TP_MAX_PAYLOAD bytes, the last
 * one marked) or a failure (no more pieces will come for that request: its worker died, error EPIPE, or
 * broke the protocol, EPROTO), exactly once per request. Each event names the worker process it concerns
 * (channel: the pid the kernel recorded for its connection, zc_svc_msg_peer; socket: the pair's process),
 * so the front end can kill a worker that misbehaves.
 *
 * Trust: the front end treats every piece as untrusted input (a worker may be buggy or hostile): the
 * payload is a bounded view (data, len) that the transport checked lies inside what it received; ids are
 * checked by the transport against the requests it sent to that worker (channel: the library closes a
 * connection that answers anything else); the HTTP code still maps an id to its client and drops what
 * it cannot place.
 * Includes: libc only (each implementation includes what it needs).
 */
#ifndef HTTP_TRANSPORT_H
#define HTTP_TRANSPORT_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TP_MAX_MSG ((size_t)64 * 1024)       /* the socket baseline's largest packet */
#define TP_HDR 16                            /* the socket baseline's header (transport_sock.c) */
#define TP_MAX_PAYLOAD (TP_MAX_MSG - TP_HDR) /* bytes of a socket request or piece */

/* The socket baseline's wire format (transport_sock.c; the hostile test workers forge it): a header in
 * front of every packet, the correlation id the transport gave the request, and flags. */
typedef struct tp_hdr_s {
  uint64_t id;
  uint32_t flags; /* request: the application's flags; response piece: TP_LAST */
  uint32_t spare;
} tp_hdr_t;
#define TP_LAST 1u

typedef struct tp_pool_s tp_pool_t;

/* An event tp_poll handed out: a response piece (failed 0; the payload view stays valid until tp_release)
 * or a failure notice (failed = EPIPE or EPROTO; no data; release it too). */
typedef struct tp_piece_s {
  uint64_t id;         /* the id tp_submit gave the request */
  const uint8_t *data; /* the payload: data[0 .. len) */
  uint32_t len;
  uint32_t last;       /* 1 on the response's last piece (and on a failure) */
  int failed;          /* 0, or why no (more) response will come: EPIPE, EPROTO */
  pid_t pid;           /* the worker process it came from (0: unknown) */
  uint64_t priv[12];   /* the transport's */
} tp_piece_t;

extern const char *const tp_name;   /* "chan" or "sock" */
extern const size_t tp_max_request; /* the largest request (bytes) tp_request_buf takes */

/* ---- front end ---- */
/* The pool, with no worker yet. NULL with errno. */
tp_pool_t *tp_pool_open(void);
/* The fd to watch with epoll (EPOLLIN): events may be waiting, or workers joined or died. */
int tp_pool_fd(tp_pool_t *pl);
/* Start a worker: fork + exec of exe with "--worker" and what it needs to join the pool; returns when it
 * has joined (the pool may hand it requests), or -1 with errno. *pid: its process id (also on failure
 * after the fork: the caller reaps it). Events that arrive meanwhile wait for tp_poll. */
int tp_pool_spawn(tp_pool_t *pl, const char *exe, pid_t *pid);
/* A buffer for a request of n bytes (n <= tp_max_request), in the memory of the worker that will get it
 * (channel: a loan on the least busy connection); fill it, then tp_submit or tp_cancel it. NULL with errno
 * (EAGAIN: no worker, or no room now; EMSGSIZE). */
void *tp_request_buf(tp_pool_t *pl, size_t n);
/* Hand a filled request to its worker; *id receives the request's id. 0, or -1 (EAGAIN: full, the buffer
 * is still the caller's: cancel it; other: the buffer was taken back). Never blocks. */
int tp_submit(tp_pool_t *pl, void *buf, size_t n, uint32_t flags, uint64_t *id);
void tp_cancel(tp_pool_t *pl, void *buf);
/* Take up to max events. >= 0: that many; fewer than max: none is left now, and the fd will wake the loop
 * at the next one (the channel pool has armed every connection; the socket pool's fd is level-triggered). */
int tp_poll(tp_pool_t *pl, tp_piece_t *out, int max);
/* Done with an event (a piece written to the client): its memory goes back to the worker (or is freed). */
void tp_release(tp_pool_t *pl, tp_piece_t *p);
/* Workers joined now. */
int tp_pool_workers(tp_pool_t *pl);
/* Pieces the transport dropped: ids of no outstanding request of that worker, or late replies. */
unsigned long tp_pool_dropped(tp_pool_t *pl);
/* The last protocol error seen ("" if none). */
const char *tp_pool_error(tp_pool_t *pl);
/* Close the pool: the workers see the end and exit. */
void tp_pool_close(tp_pool_t *pl);

/* ---- worker ---- */
typedef struct tp_worker_s tp_worker_t;
typedef struct tp_request_s {
  uint32_t flags;
  const uint8_t *data; /* the request's bytes, in place: read each byte you check once */
  uint32_t len;
  _Alignas(8) unsigned char priv[128]; /* the transport's (channel: the received service message) */
} tp_request_t;
/* Open the worker's side from its command line (argv as given to the exec by tp_pool_spawn, after
 * "--worker"): join the pool. */
tp_worker_t *tp_worker_open(int argc, char **argv);
/* Wait for the next request. 0, or -1 when the front end is gone. */
int tp_worker_recv(tp_worker_t *w, tp_request_t *out);
/* Done with a request (answered or not): its memory goes back. */
void tp_worker_done(tp_worker_t *w, tp_request_t *q);
/* The response to request q, written in order through a window, then ended:
 *   tp_resp_begin(w, &r, q, guess); while (...) { p = tp_resp_room(&r, &room); write k <= room bytes at p;
 *   tp_resp_wrote(&r, k); }  tp_resp_end(&r);
 * guess: the size the worker expects (a wrong guess costs a resize, never bytes). The window is never empty:
 * when it is full, tp_resp_room makes room (channel: grows the reply loan with zc_svc_loan_resize, in place
 * or moved copying what was written; socket: sends the full piece and starts the next). tp_resp_end sends
 * what was written as the response (channel: the loan shrunk to it first when that gives memory back).
 * Each returns -1 / NULL (errno) when the front end is gone or memory ran out: stop writing. */
typedef struct tp_resp_s {
  tp_worker_t *w;
  tp_request_t *q;
  uint64_t guess;
  uint8_t *piece;   /* the current piece's payload, or NULL */
  size_t cap, used; /* its size and what is written */
} tp_resp_t;
int tp_resp_begin(tp_worker_t *w, tp_resp_t *r, tp_request_t *q, uint64_t guess);
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
