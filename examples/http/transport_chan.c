/* The transport over two zcmem channels per worker: front end -> worker (requests) and worker -> front end
 * (responses). The front end is the producer of the first and the consumer of the second; the worker the
 * reverse. Each message is a tp_hdr_t and its payload, written once into a loaned slot; the front end's
 * view of a response piece is the worker's slot itself (read-only), held until the client has it.
 *
 * Sizes: a request is one message of up to tp_max_request bytes; a response is one message whatever its
 * size (up to zc_chan_max_msg; only beyond it would it go in several pieces). The worker loans its guess of
 * the response's size, grows the loan with zc_chan_loan_resize when the guess was short (in place over free
 * pages, or moved copying only what was written) and shrinks it to what was written before sending when the
 * guess was long, so no loan is of the worst case. The correlation id is still ours (tp_hdr_t).
 */
#define _GNU_SOURCE
#include "transport.h"
#include "zcmem_channel.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

_Static_assert(sizeof(tp_hdr_t) == TP_HDR, "header size");

const char *const tp_name = "chan";
/* A bound of this example's choosing (the front end's own is lower): far below a default channel's largest
 * message (1 GiB - 4 MiB), and a producer's zc_chan_max_msg never shrinks below the largest loan it made. */
const size_t tp_max_request = (size_t)64 << 20;

struct tp_link_s {
  zc_chan_t *req;  /* producer: requests to the worker */
  zc_chan_t *resp; /* consumer: response pieces from it */
  long held;
  char why[160];
};

/* fork + exec "exe --worker <fd> <fd>" with the worker's two socket ends as fds 3 and 4. */
static pid_t spawn_worker(const char *exe, int a, int b) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  /* child: only async-signal-safe calls until exec */
  int na = dup(a), nb = dup(b); /* above 4 whatever a and b were, so the dup2s below cannot clobber them */
  if (na < 0 || nb < 0 || dup2(na, 3) < 0 || dup2(nb, 4) < 0) _exit(127);
  closefrom(5);
  char *argv[] = {(char *)exe, "--worker", "3", "4", NULL};
  execv(exe, argv);
  _exit(127);
}

tp_link_t *tp_spawn(const char *exe, pid_t *pid) {
  int s1[2], s2[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, s1) != 0) return NULL;
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, s2) != 0) {
    close(s1[0]);
    close(s1[1]);
    return NULL;
  }
  tp_link_t *l = calloc(1, sizeof *l);
  *pid = l ? spawn_worker(exe, s1[1], s2[1]) : -1;
  close(s1[1]);
  close(s2[1]);
  if (*pid < 0) {
    free(l);
    close(s1[0]);
    close(s2[0]);
    return NULL;
  }
  /* The front end must never block on a worker: a full queue fails at once (EAGAIN). Setup waits for the
   * exec (slow under valgrind). */
  zc_chan_config_t pc = {.policy = ZC_CHAN_FAIL, .setup_timeout_ms = 30000};
  zc_chan_config_t cc = {.setup_timeout_ms = 30000};
  l->req = zc_chan_open(s1[0], ZC_CHAN_PRODUCER, &pc);
  l->resp = l->req ? zc_chan_open(s2[0], ZC_CHAN_CONSUMER, &cc) : (close(s2[0]), NULL);
  if (l->resp == NULL) {
    int e = errno;
    if (l->req) zc_chan_close(l->req);
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    free(l);
    errno = e;
    return NULL;
  }
  return l;
}

int tp_fd(tp_link_t *l) { return zc_chan_fd(l->resp); }

static void why(tp_link_t *l) {
  snprintf(l->why, sizeof l->why, "%s%s%s", strerror(errno), *zc_chan_error(l->resp) ? ": " : "", zc_chan_error(l->resp));
}

int tp_arm(tp_link_t *l) {
  int r = zc_chan_arm(l->resp);
  if (r < 0) why(l);
  return r;
}

void *tp_request_buf(tp_link_t *l, size_t n) {
  if (n > tp_max_request) {
    errno = EMSGSIZE;
    return NULL;
  }
  uint8_t *p = zc_chan_loan(l->req, n + TP_HDR);
  return p ? p + TP_HDR : NULL;
}

int tp_submit(tp_link_t *l, uint64_t id, uint32_t flags, void *buf, size_t n) {
  uint8_t *p = (uint8_t *)buf - TP_HDR;
  tp_hdr_t h = {.id = id, .flags = flags};
  memcpy(p, &h, sizeof h);
  return zc_chan_send(l->req, p, n + TP_HDR, 0);
}

void tp_cancel(tp_link_t *l, void *buf) { zc_chan_cancel(l->req, (uint8_t *)buf - TP_HDR); }

int tp_poll(tp_link_t *l, tp_piece_t *out, int max) {
  zc_chan_msg_t m[64];
  if (max > 64) max = 64;
  int n = zc_chan_receive_batch(l->resp, m, max, 0);
  if (n < 0) {
    if (errno == EAGAIN) return 0;
    why(l);
    return -1;
  }
  for (int i = 0; i < n; i++) {
    tp_hdr_t h;
    /* m.len was loaded once by the library and the view checked to lie in our mapping; the header is
     * copied out once and only the copy is used. */
    if (zc_chan_copy(&m[i], 0, &h, sizeof h) != 0) { /* shorter than a header: the worker is broken */
      snprintf(l->why, sizeof l->why, "a response message of %u bytes, shorter than its header", m[i].len);
      zc_chan_release_batch(l->resp, m, n);
      return -1;
    }
    out[i] = (tp_piece_t){.id = h.id, .data = (const uint8_t *)m[i].data + TP_HDR, .len = m[i].len - TP_HDR,
                          .last = (h.flags & TP_LAST) != 0, .link = l, .msg_data = m[i].data,
                          .msg_len = m[i].len, .msg_type = m[i].type, .msg_handle = m[i].handle};
  }
  l->held += n;
  return n;
}

void tp_release(tp_piece_t *p) {
  tp_link_t *l = p->link;
  zc_chan_msg_t m = {.data = p->msg_data, .len = p->msg_len, .type = p->msg_type, .handle = p->msg_handle};
  zc_chan_release(l->resp, &m); /* fails only if the worker is gone: then nothing is to be given back */
  l->held--;
}

long tp_held(tp_link_t *l) { return l->held; }

void tp_close(tp_link_t *l) {
  zc_chan_close(l->req);
  zc_chan_close(l->resp);
  free(l);
}

const char *tp_error(tp_link_t *l) { return l->why; }

/* ---- worker ---- */
struct tp_worker_s {
  zc_chan_t *req, *resp;
};

tp_worker_t *tp_worker_open(int argc, char **argv) {
  if (argc < 2) return NULL;
  tp_worker_t *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  /* A response waits for room (the front end holds pieces until the client took them) as long as it
   * takes; the wait still ends with EPIPE if the front end dies. A worker with nothing to do sleeps at once
   * instead of spinning (spin_ns 1 ns): with more processes than cores (N workers, the front end and the
   * clients on two CPUs) a spinning worker takes the CPU the front end needs. */
  zc_chan_config_t pc = {.block_timeout_ms = -1, .setup_timeout_ms = 30000, .spin_ns = 1};
  zc_chan_config_t cc = {.setup_timeout_ms = 30000, .spin_ns = 1};
  w->req = zc_chan_open(atoi(argv[0]), ZC_CHAN_CONSUMER, &cc);
  w->resp = w->req ? zc_chan_open(atoi(argv[1]), ZC_CHAN_PRODUCER, &pc) : NULL;
  if (!w->resp) {
    if (w->req) zc_chan_close(w->req);
    free(w);
    return NULL;
  }
  return w;
}

int tp_worker_recv(tp_worker_t *w, tp_request_t *out) {
  for (;;) {
    zc_chan_msg_t m;
    if (zc_chan_receive(w->req, &m, -1) != 0) return -1;
    tp_hdr_t h;
    if (zc_chan_copy(&m, 0, &h, sizeof h) != 0) { /* no header: not a request, drop it */
      zc_chan_release(w->req, &m);
      continue;
    }
    *out = (tp_request_t){.id = h.id, .flags = h.flags, .data = (const uint8_t *)m.data + TP_HDR,
                          .len = m.len - TP_HDR, .priv = {(uint64_t)(uintptr_t)m.data, m.len | (uint64_t)m.type << 32,
                                                          m.handle}};
    return 0;
  }
}

void tp_worker_done(tp_worker_t *w, tp_request_t *r) {
  zc_chan_msg_t m = {.data = (const void *)(uintptr_t)r->priv[0], .len = (uint32_t)r->priv[1],
                     .type = (uint32_t)(r->priv[1] >> 32), .handle = r->priv[2]};
  zc_chan_release(w->req, &m);
}

int tp_resp_begin(tp_worker_t *w, tp_resp_t *r, uint64_t id, uint64_t guess) {
  *r = (tp_resp_t){.w = w, .id = id, .guess = guess ? guess : 1};
  return 0;
}

/* Send the current piece (used bytes) with flags; the next tp_resp_room loans a new one. */
static int send_piece(tp_resp_t *r, uint32_t flags) {
  uint8_t *p = r->piece - TP_HDR;
  tp_hdr_t h = {.id = r->id, .flags = flags};
  memcpy(p, &h, sizeof h);
  r->piece = NULL;
  return zc_chan_send(r->w->resp, p, r->used + TP_HDR, 0);
}

uint8_t *tp_resp_room(tp_resp_t *r, size_t *room) {
  size_t max = zc_chan_max_msg(r->w->resp) - TP_HDR;
  if (r->piece != NULL && r->used == r->cap) { /* full: grow the loan (double it), or at the limit send it */
    size_t want = r->cap < max / 2 ? 2 * r->cap : max;
    if (want > r->cap) {
      uint8_t *p = zc_chan_loan_resize(r->w->resp, r->piece - TP_HDR, want + TP_HDR, r->used + TP_HDR);
      if (p == NULL) return NULL;
      r->piece = p + TP_HDR;
      r->cap = want;
    } else if (send_piece(r, 0) != 0) {
      return NULL;
    }
  }
  if (r->piece == NULL) {
    size_t want = r->guess < max ? (size_t)r->guess : max;
    uint8_t *p = zc_chan_loan(r->w->resp, want + TP_HDR);
    if (p == NULL) return NULL;
    r->piece = p + TP_HDR;
    r->cap = want;
    r->used = 0;
  }
  *room = r->cap - r->used;
  return r->piece + r->used;
}

int tp_resp_end(tp_resp_t *r) {
  size_t room;
  if (r->piece == NULL && tp_resp_room(r, &room) == NULL) return -1; /* nothing written: an empty piece */
  if (r->cap - r->used >= 4096) { /* a long guess: give back what was not written (on failure send as is) */
    uint8_t *p = zc_chan_loan_resize(r->w->resp, r->piece - TP_HDR, r->used + TP_HDR, r->used + TP_HDR);
    if (p != NULL) {
      r->piece = p + TP_HDR;
      r->cap = r->used;
    }
  }
  return send_piece(r, TP_LAST);
}

void tp_worker_close(tp_worker_t *w) {
  zc_chan_close(w->req);
  zc_chan_close(w->resp);
  free(w);
}
