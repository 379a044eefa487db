/* The baseline transport: the same pool as transport_chan.c over one AF_UNIX SOCK_SEQPACKET socket pair
 * per worker, with copies: the worker builds each piece in a private buffer and write()s it (copy into
 * the kernel), the front end read()s it into a private buffer (copy out of the kernel) and writes it to
 * the client from there. read/write (not send/recv) so that /proc/PID/io counts the bytes (rchar, wchar).
 *
 * What the channel services do in the library, this file does by hand: it picks the worker with the
 * fewest requests in flight, gives each request an id of its own (a counter, in a tp_hdr_t in front of
 * every packet), accepts a response piece only under an id it sent to that worker and that is not
 * finished (anything else is dropped and counted), and when a worker's socket ends (EPIPE) or carries a
 * malformed packet (EPROTO) it turns each of that worker's outstanding requests into one failure notice.
 *
 * Unlike the channel, this baseline keeps requests to one packet of at most TP_MAX_PAYLOAD bytes (larger
 * bodies get 413) and cuts responses into pieces of that size: a SOCK_SEQPACKET packet is sent whole or
 * not at all and must fit the socket's send buffer (net.core.wmem_max caps SO_SNDBUF, 208 KiB by default),
 * and the front end would need a receive buffer of the largest packet for every read.
 */
#define _GNU_SOURCE
#include "transport.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

_Static_assert(sizeof(tp_hdr_t) == TP_HDR, "header size");

const char *const tp_name = "sock";
const size_t tp_max_request = TP_MAX_PAYLOAD;

#define SOCK_MAX_WORKERS 64

typedef struct sock_worker_s {
  int fd; /* -1: free slot */
  pid_t pid;
  uint64_t *ids; /* requests sent to it and not finished */
  int nids, capids;
} sock_worker_t;

struct tp_pool_s {
  int ep; /* epoll over the workers' sockets */
  sock_worker_t w[SOCK_MAX_WORKERS];
  uint64_t next_id;
  unsigned rr;
  tp_piece_t *fails; /* failure notices not handed out yet */
  int nf, capf;
  unsigned long dropped;
  char why[160];
};

tp_pool_t *tp_pool_open(void) {
  tp_pool_t *pl = calloc(1, sizeof *pl);
  if (pl == NULL) return NULL;
  pl->ep = epoll_create1(EPOLL_CLOEXEC);
  for (int i = 0; i < SOCK_MAX_WORKERS; i++) pl->w[i].fd = -1;
  return pl;
}

int tp_pool_fd(tp_pool_t *pl) { return pl->ep; }

int tp_pool_workers(tp_pool_t *pl) {
  int n = 0;
  for (int i = 0; i < SOCK_MAX_WORKERS; i++) n += pl->w[i].fd >= 0;
  return n;
}

unsigned long tp_pool_dropped(tp_pool_t *pl) { return pl->dropped; }

const char *tp_pool_error(tp_pool_t *pl) { return pl->why; }

int tp_pool_spawn(tp_pool_t *pl, const char *exe, pid_t *pid) {
  int k = 0;
  *pid = -1;
  while (k < SOCK_MAX_WORKERS && pl->w[k].fd >= 0) k++;
  if (k == SOCK_MAX_WORKERS) return errno = EMFILE, -1;
  int s[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, s) != 0) return -1;
  /* A 256 KiB response is five 64 KiB pieces: let the socket queue a few responses, as the channel's
   * queue budget (1 MiB) does. */
  int sz = 1 << 20;
  setsockopt(s[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  setsockopt(s[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  *pid = fork();
  if (*pid == 0) {
    int a = dup(s[1]);
    if (a < 0 || dup2(a, 3) < 0) _exit(127);
    closefrom(4);
    char *argv[] = {(char *)exe, "--worker", "3", NULL};
    execv(exe, argv);
    _exit(127);
  }
  close(s[1]);
  if (*pid < 0) {
    close(s[0]);
    return -1;
  }
  fcntl(s[0], F_SETFL, fcntl(s[0], F_GETFL) | O_NONBLOCK);
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)k};
  if (epoll_ctl(pl->ep, EPOLL_CTL_ADD, s[0], &ev) != 0) {
    close(s[0]);
    return -1;
  }
  pl->w[k].fd = s[0];
  pl->w[k].pid = *pid;
  pl->w[k].nids = 0;
  return 0;
}

void *tp_request_buf(tp_pool_t *pl, size_t n) {
  if (n > tp_max_request) {
    errno = EMSGSIZE;
    return NULL;
  }
  uint8_t *p = malloc(n + TP_HDR);
  return p ? p + TP_HDR : NULL;
}

void tp_cancel(tp_pool_t *pl, void *buf) { free((uint8_t *)buf - TP_HDR); }

/* The open worker with the fewest requests in flight (ties: round robin), skipping those in tried. */
static int pick(tp_pool_t *pl, const uint8_t *tried) {
  int best = -1;
  unsigned start = pl->rr++;
  for (int k = 0; k < SOCK_MAX_WORKERS; k++) {
    int i = (int)((start + (unsigned)k) % SOCK_MAX_WORKERS);
    if (pl->w[i].fd >= 0 && !tried[i] && (best < 0 || pl->w[i].nids < pl->w[best].nids)) best = i;
  }
  return best;
}

int tp_submit(tp_pool_t *pl, void *buf, size_t n, uint32_t flags, uint64_t *id) {
  uint8_t *p = (uint8_t *)buf - TP_HDR, tried[SOCK_MAX_WORKERS] = {0};
  tp_hdr_t h = {.id = ++pl->next_id, .flags = flags};
  memcpy(p, &h, sizeof h);
  int i, e = EAGAIN;
  while ((i = pick(pl, tried)) >= 0) {
    tried[i] = 1;
    sock_worker_t *w = &pl->w[i];
    if (w->nids == w->capids) {
      int cap = w->capids ? 2 * w->capids : 16;
      uint64_t *ids = realloc(w->ids, (size_t)cap * sizeof *ids);
      if (ids == NULL) continue;
      w->ids = ids;
      w->capids = cap;
    }
    ssize_t put = write(w->fd, p, n + TP_HDR); /* one packet: all or nothing */
    if (put == (ssize_t)(n + TP_HDR)) {
      w->ids[w->nids++] = h.id;
      *id = h.id;
      free(p);
      return 0;
    }
    if (put < 0 && errno != EAGAIN && errno != EWOULDBLOCK) e = EPIPE; /* its end is seen by tp_poll */
  }
  errno = e == EAGAIN ? EAGAIN : EPIPE;
  if (errno == EAGAIN) return -1; /* the buffer is still the caller's */
  free(p);
  return -1;
}

static void fail_push(tp_pool_t *pl, uint64_t id, int err, pid_t pid) {
  if (pl->nf == pl->capf) {
    int cap = pl->capf ? 2 * pl->capf : 64;
    tp_piece_t *f = realloc(pl->fails, (size_t)cap * sizeof *f);
    if (f == NULL) return; /* out of memory: that client waits for its own timeout */
    pl->fails = f;
    pl->capf = cap;
  }
  pl->fails[pl->nf++] = (tp_piece_t){.id = id, .last = 1, .failed = err, .pid = pid};
}

/* Worker i's socket ended or carried garbage: its requests fail, its slot is freed. */
static void worker_end(tp_pool_t *pl, int i, int err) {
  sock_worker_t *w = &pl->w[i];
  for (int k = 0; k < w->nids; k++) fail_push(pl, w->ids[k], err, w->pid);
  w->nids = 0;
  epoll_ctl(pl->ep, EPOLL_CTL_DEL, w->fd, NULL);
  close(w->fd);
  w->fd = -1;
}

/* Read what worker i sent, up to max pieces. */
static int drain(tp_pool_t *pl, int i, tp_piece_t *out, int max) {
  sock_worker_t *w = &pl->w[i];
  int n = 0;
  while (n < max && w->fd >= 0) {
    uint8_t *b = malloc(TP_MAX_MSG + 1);
    if (b == NULL) break;
    ssize_t got = read(w->fd, b, TP_MAX_MSG + 1); /* a longer packet would be cut to TP_MAX_MSG + 1 */
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      free(b);
      break;
    }
    if (got < (ssize_t)TP_HDR || got > (ssize_t)TP_MAX_MSG) {
      free(b);
      if (got == 0 || got < 0) {
        worker_end(pl, i, EPIPE);
      } else {
        snprintf(pl->why, sizeof pl->why, "worker %d: a response message of %zd bytes", (int)w->pid, got);
        worker_end(pl, i, EPROTO);
      }
      break;
    }
    if (got < 4096) { /* a small piece: give back the rest of the buffer (glibc shrinks in place) */
      uint8_t *s = realloc(b, (size_t)got);
      if (s) b = s;
    }
    tp_hdr_t h;
    memcpy(&h, b, sizeof h);
    int k = 0;
    while (k < w->nids && w->ids[k] != h.id) k++;
    if (k == w->nids) { /* an id it was not given, or a piece after the last */
      free(b);
      pl->dropped++;
      continue;
    }
    int last = (h.flags & TP_LAST) != 0;
    if (last) w->ids[k] = w->ids[--w->nids];
    out[n] = (tp_piece_t){.id = h.id, .data = b + TP_HDR, .len = (uint32_t)got - TP_HDR, .last = (uint32_t)last,
                          .pid = w->pid};
    out[n].priv[0] = (uint64_t)(uintptr_t)b;
    n++;
  }
  return n;
}

int tp_poll(tp_pool_t *pl, tp_piece_t *out, int max) {
  int n = 0;
  while (n < max && pl->nf > 0) out[n++] = pl->fails[--pl->nf];
  if (n == max) return n;
  struct epoll_event ev[SOCK_MAX_WORKERS];
  int k = epoll_wait(pl->ep, ev, SOCK_MAX_WORKERS, 0); /* level-triggered: the fd wakes the loop by itself */
  for (int j = 0; j < k && n < max; j++) {
    int i = (int)ev[j].data.u32;
    if (i < SOCK_MAX_WORKERS && pl->w[i].fd >= 0) n += drain(pl, i, out + n, max - n);
  }
  while (n < max && pl->nf > 0) out[n++] = pl->fails[--pl->nf];
  return n;
}

void tp_release(tp_pool_t *pl, tp_piece_t *p) {
  (void)pl;
  if (!p->failed) free((void *)(uintptr_t)p->priv[0]);
}

void tp_pool_close(tp_pool_t *pl) {
  for (int i = 0; i < SOCK_MAX_WORKERS; i++) {
    if (pl->w[i].fd >= 0) close(pl->w[i].fd);
    free(pl->w[i].ids);
  }
  close(pl->ep);
  free(pl->fails);
  free(pl);
}

/* ---- worker ---- */
struct tp_worker_s {
  int fd; /* blocking */
  uint8_t in[TP_MAX_MSG + 1];
  uint8_t out[TP_MAX_MSG]; /* the piece being built */
};

tp_worker_t *tp_worker_open(int argc, char **argv) {
  if (argc < 1) return NULL;
  tp_worker_t *w = malloc(sizeof *w);
  if (w) w->fd = atoi(argv[0]);
  return w;
}

/* A request's id, in its private part (the hostile test worker forges it there). */
static uint64_t id_of(const tp_request_t *q) {
  uint64_t id;
  memcpy(&id, q->priv, sizeof id);
  return id;
}

int tp_worker_recv(tp_worker_t *w, tp_request_t *out) {
  for (;;) {
    ssize_t got = read(w->fd, w->in, sizeof w->in);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return -1;
    if (got < (ssize_t)TP_HDR || got > (ssize_t)TP_MAX_MSG) continue; /* not a request: drop it */
    tp_hdr_t h;
    memcpy(&h, w->in, sizeof h);
    memset(out, 0, sizeof *out);
    out->flags = h.flags;
    out->data = w->in + TP_HDR;
    out->len = (uint32_t)got - TP_HDR;
    memcpy(out->priv, &h.id, sizeof h.id);
    return 0;
  }
}

void tp_worker_done(tp_worker_t *w, tp_request_t *q) {}

int tp_resp_begin(tp_worker_t *w, tp_resp_t *r, tp_request_t *q, uint64_t guess) {
  *r = (tp_resp_t){.w = w, .q = q, .guess = guess};
  return 0;
}

/* Send the current piece (used bytes) with flags. */
static int send_piece(tp_resp_t *r, uint32_t flags) {
  tp_hdr_t h = {.id = id_of(r->q), .flags = flags};
  memcpy(r->w->out, &h, sizeof h);
  r->piece = NULL;
  for (;;) {
    ssize_t put = write(r->w->fd, r->w->out, r->used + TP_HDR);
    if (put == (ssize_t)(r->used + TP_HDR)) return 0;
    if (put < 0 && errno == EINTR) continue;
    errno = EPIPE;
    return -1;
  }
}

uint8_t *tp_resp_room(tp_resp_t *r, size_t *room) {
  if (r->piece != NULL && r->used == r->cap && send_piece(r, 0) != 0) return NULL; /* full: send it */
  if (r->piece == NULL) {
    r->piece = r->w->out + TP_HDR;
    r->cap = TP_MAX_PAYLOAD;
    r->used = 0;
  }
  *room = r->cap - r->used;
  return r->piece + r->used;
}

int tp_resp_end(tp_resp_t *r) {
  size_t room;
  if (r->piece == NULL && tp_resp_room(r, &room) == NULL) return -1;
  return send_piece(r, TP_LAST);
}

void tp_worker_close(tp_worker_t *w) {
  close(w->fd);
  free(w);
}
