/* The baseline transport: the same messages as transport_chan.c (a tp_hdr_t and its payload, responses in
 * pieces of at most TP_MAX_PAYLOAD bytes) over one AF_UNIX SOCK_SEQPACKET socket pair per worker, with
 * copies: the worker builds each piece in a private buffer and write()s it (copy into the kernel), the
 * front end read()s it into a private buffer (copy out of the kernel) and writes it to the client from
 * there. read/write (not send/recv) so that /proc/PID/io counts the bytes (rchar, wchar).
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
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

const char *const tp_name = "sock";
const size_t tp_max_request = TP_MAX_PAYLOAD;

struct tp_link_s {
  int fd; /* non-blocking on the front end's side */
  long held;
  char why[160];
};

tp_link_t *tp_spawn(const char *exe, pid_t *pid) {
  int s[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, s) != 0) return NULL;
  /* A 256 KiB response is five 64 KiB pieces: let the socket queue a few responses, as the channel's
   * queue budget (1 MiB) does. */
  int sz = 1 << 20;
  setsockopt(s[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  setsockopt(s[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  tp_link_t *l = calloc(1, sizeof *l);
  *pid = l ? fork() : -1;
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
    free(l);
    close(s[0]);
    return NULL;
  }
  fcntl(s[0], F_SETFL, fcntl(s[0], F_GETFL) | O_NONBLOCK);
  l->fd = s[0];
  return l;
}

int tp_fd(tp_link_t *l) { return l->fd; }

int tp_arm(tp_link_t *l) { return 0; } /* level-triggered: a readable socket wakes epoll by itself */

void *tp_request_buf(tp_link_t *l, size_t n) {
  if (n > tp_max_request) {
    errno = EMSGSIZE;
    return NULL;
  }
  uint8_t *p = malloc(n + TP_HDR);
  return p ? p + TP_HDR : NULL;
}

void tp_cancel(tp_link_t *l, void *buf) { free((uint8_t *)buf - TP_HDR); }

int tp_submit(tp_link_t *l, uint64_t id, uint32_t flags, void *buf, size_t n) {
  uint8_t *p = (uint8_t *)buf - TP_HDR;
  tp_hdr_t h = {.id = id, .flags = flags};
  memcpy(p, &h, sizeof h);
  ssize_t w = write(l->fd, p, n + TP_HDR); /* one packet: all or nothing */
  if (w == (ssize_t)(n + TP_HDR)) {
    free(p);
    return 0;
  }
  if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    errno = EAGAIN;
    return -1;
  }
  free(p);
  errno = EPIPE;
  return -1;
}

int tp_poll(tp_link_t *l, tp_piece_t *out, int max) {
  int n = 0;
  while (n < max) {
    uint8_t *b = malloc(TP_MAX_MSG + 1);
    if (b == NULL) {
      snprintf(l->why, sizeof l->why, "out of memory");
      return -1;
    }
    ssize_t got = read(l->fd, b, TP_MAX_MSG + 1); /* a longer packet would be cut to TP_MAX_MSG + 1 */
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      free(b);
      break;
    }
    if (got < (ssize_t)TP_HDR || got > (ssize_t)TP_MAX_MSG) {
      free(b);
      if (n > 0) break; /* hand out what came before; the next poll reports the end */
      if (got == 0) snprintf(l->why, sizeof l->why, "end of file");
      else if (got < 0) snprintf(l->why, sizeof l->why, "%s", strerror(errno));
      else snprintf(l->why, sizeof l->why, "a response message of %zd bytes", got);
      return -1;
    }
    if (got < 4096) { /* a small piece: give back the rest of the buffer (glibc shrinks in place) */
      uint8_t *s = realloc(b, (size_t)got);
      if (s) b = s;
    }
    tp_hdr_t h;
    memcpy(&h, b, sizeof h);
    out[n++] = (tp_piece_t){.id = h.id, .data = b + TP_HDR, .len = (uint32_t)got - TP_HDR,
                            .last = (h.flags & TP_LAST) != 0, .link = l, .msg_data = b};
  }
  l->held += n;
  return n;
}

void tp_release(tp_piece_t *p) {
  free((void *)p->msg_data);
  p->link->held--;
}

long tp_held(tp_link_t *l) { return l->held; }

void tp_close(tp_link_t *l) {
  close(l->fd);
  free(l);
}

const char *tp_error(tp_link_t *l) { return l->why; }

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

int tp_worker_recv(tp_worker_t *w, tp_request_t *out) {
  for (;;) {
    ssize_t got = read(w->fd, w->in, sizeof w->in);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return -1;
    if (got < (ssize_t)TP_HDR || got > (ssize_t)TP_MAX_MSG) continue; /* not a request: drop it */
    tp_hdr_t h;
    memcpy(&h, w->in, sizeof h);
    *out = (tp_request_t){.id = h.id, .flags = h.flags, .data = w->in + TP_HDR, .len = (uint32_t)got - TP_HDR};
    return 0;
  }
}

void tp_worker_done(tp_worker_t *w, tp_request_t *r) {}

int tp_resp_begin(tp_worker_t *w, tp_resp_t *r, uint64_t id, uint64_t guess) {
  *r = (tp_resp_t){.w = w, .id = id, .guess = guess};
  return 0;
}

/* Send the current piece (used bytes) with flags. */
static int send_piece(tp_resp_t *r, uint32_t flags) {
  tp_hdr_t h = {.id = r->id, .flags = flags};
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
