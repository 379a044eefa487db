/* The HTTP/1.1 front end of the example: one epoll loop over the listening socket, the client connections
 * (keep-alive, pipelined requests taken one at a time) and the links to N worker processes.
 *
 * A request is framed and checked here (request line, Content-Length, Connection), copied once into a
 * buffer of the transport (with the channel: a loan in memory the worker reads in place) and handed to
 * the worker with the fewest requests in flight. Its head must fit IN_CAP (64 KiB - 16) and its body
 * HTTP_MAX_REQ_BODY (8 MiB) and the transport (socket: head and body within 64 KiB - 16), else 413; a
 * body beyond IN_CAP is read into a buffer of the request's exact size, freed once it is handed on. The
 * response comes back as pieces (with the channel: one) the front end writes to the client with writev
 * straight from the transport's buffers (with the channel: the worker's shared memory, read-only here) and
 * releases once written.
 *
 * A worker's pieces are untrusted: a piece whose id names no request this worker holds is dropped, and a
 * response larger than HTTP_MAX_BODY plus its head gets the worker killed and replaced. The transport hands
 * out bounded views (data, len); nothing here reads past them.
 *
 * Worker death (SIGKILL, crash, protocol violation): the front end sees the link end (EPIPE / EOF), reaps
 * the process, answers 503 to every request of that worker of which no byte of response had arrived (not
 * re-dispatched: the worker may have acted on it), closes the connections whose response had begun, keeps
 * writing the responses it had received in full (their memory stays mapped until the last is written),
 * and starts a replacement in the same slot.
 *
 * Usage: http_server_{chan,sock} [--port N] [--workers N] [--worker-exe PATH]
 *   port 0 (default): any free port, printed on stdout; --worker-exe: run PATH as the worker program instead
 *   of this one (the tests start hostile workers so).
 */
#define _GNU_SOURCE
#include "http_proto.h"
#include "transport.h"

#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int http_worker_main(int argc, char **argv);

#define MAX_CONNS 4096
#define MAX_WORKERS 64
#define IN_CAP TP_MAX_PAYLOAD /* a request's head, and a small request's body, fit this buffer */
#define MAX_RESP (HTTP_MAX_BODY + 4096)

enum { K_LISTEN, K_CONN, K_LINK };
enum { C_READ, C_WAIT };

typedef struct worker_s {
  int kind; /* K_LINK: first, for epoll's data.ptr */
  int slot, dead;
  int armed; /* tp_arm said 0 and no event came since: the fd will wake us, no need to arm again */
  pid_t pid;
  tp_link_t *t;
  long inflight;
  int pins;                     /* > 0 while a function below uses it: not freed meanwhile */
  int zombie;                   /* dead, on the zombie list until its last piece is released */
  struct worker_s *next_zombie;
} worker_t;

typedef struct {
  tp_piece_t p;
  worker_t *w; /* NULL: the front end's own response (static text) */
} out_t;

typedef struct conn_s {
  int kind; /* K_CONN */
  int fd, idx, state, close_after, blocked;
  int eof; /* the client sent its last byte: finish what is buffered, then close */
  uint32_t gen, ep_mask;
  worker_t *w; /* the worker holding the current request, until its last piece */
  uint64_t resp_bytes;
  int resp_done;
  out_t *q;
  int qhead, qn, qcap;
  size_t qoff; /* bytes of q[qhead] written */
  uint8_t *in;            /* small, or (a body beyond IN_CAP) malloc'ed of the request's size */
  uint32_t in_len, in_cap;
  struct conn_s *next_closed;
  uint8_t small[IN_CAP];
} conn_t;

static int ep, listen_kind = K_LISTEN;
static const char *self_exe;
static int n_workers = 2;
static worker_t *workers[MAX_WORKERS];
static worker_t *zombies;
static conn_t *conns[MAX_CONNS];
static conn_t *closed_conns; /* closed during this batch of events; freed after it */
static int free_idx[MAX_CONNS], n_free;
static unsigned rr;
static volatile sig_atomic_t stop;
static unsigned long n_requests, n_503, n_replaced, n_dropped, n_closed_partial, n_pieces;
static size_t max_request; /* head and body: the smaller of IN_CAP + HTTP_MAX_REQ_BODY and tp_max_request */

static void conn_run(conn_t *c);

/* ---- workers ---- */

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Restarts of a slot: a worker that dies within a second of its start is restarted after a delay that
 * doubles from 10 ms to 1 s, so a worker that cannot start (or dies at once) does not make the front end
 * fork in a loop. */
static uint64_t started_at[MAX_WORKERS], restart_at[MAX_WORKERS]; /* restart_at 0: none pending */
static unsigned backoff_ms[MAX_WORKERS];

static int worker_start(int slot) {
  started_at[slot] = mono_ms();
  restart_at[slot] = 0;
  worker_t *w = calloc(1, sizeof *w);
  if (w == NULL) return -1;
  w->kind = K_LINK;
  w->slot = slot;
  w->t = tp_spawn(self_exe, &w->pid);
  if (w->t == NULL) {
    fprintf(stderr, "http_server: cannot start worker %d: %s\n", slot, strerror(errno));
    free(w);
    return -1;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
  epoll_ctl(ep, EPOLL_CTL_ADD, tp_fd(w->t), &ev);
  workers[slot] = w;
  printf("worker %d: pid %d\n", slot, (int)w->pid);
  return 0;
}

static void schedule_restart(int slot) {
  uint64_t now = mono_ms();
  if (now - started_at[slot] >= 1000) backoff_ms[slot] = 0;
  else backoff_ms[slot] = backoff_ms[slot] ? (backoff_ms[slot] >= 500 ? 1000 : 2 * backoff_ms[slot]) : 10;
  restart_at[slot] = now + backoff_ms[slot];
}

/* Start the replacements that are due; returns the epoll timeout until the next one (-1: none). */
static int restart_due(void) {
  int timeout = -1;
  uint64_t now = mono_ms();
  for (int i = 0; i < n_workers; i++) {
    if (workers[i] || restart_at[i] == 0) continue;
    if (now >= restart_at[i]) {
      if (worker_start(i) == 0) {
        n_replaced++;
        continue;
      }
      schedule_restart(i);
    }
    int t = (int)(restart_at[i] - now);
    if (timeout < 0 || t < timeout) timeout = t < 0 ? 0 : t;
  }
  return timeout;
}

/* Free a dead worker's link once nothing refers to it: no piece held, no function using it. */
static void worker_free_if_idle(worker_t *w) {
  if (!w->zombie || w->pins != 0 || tp_held(w->t) != 0) return;
  for (worker_t **z = &zombies; *z; z = &(*z)->next_zombie)
    if (*z == w) {
      *z = w->next_zombie;
      break;
    }
  tp_close(w->t);
  free(w);
}

static void out_release(out_t *o) {
  if (o->w == NULL) return;
  tp_release(&o->p);
  worker_free_if_idle(o->w);
}

static void conn_close(conn_t *c) {
  for (int i = c->qhead; i < c->qn; i++) out_release(&c->q[i]);
  if (c->w) c->w->inflight--; /* the worker still answers; its pieces will be dropped */
  /* Out of epoll before close: a worker forked a moment ago may still hold a copy of the fd until its
   * exec, and epoll would go on reporting a file that is still open somewhere. */
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->fd = -1;
  free(c->q);
  c->q = NULL;
  if (c->in != c->small) free(c->in);
  c->in = c->small;
  conns[c->idx] = NULL;
  free_idx[n_free++] = c->idx;
  /* freed after the current batch of epoll events, which may still name it */
  c->next_closed = closed_conns;
  closed_conns = c;
}

static int queue(conn_t *c, out_t o) {
  if (c->qn == c->qcap) {
    int cap = c->qcap ? 2 * c->qcap : 8;
    out_t *q = realloc(c->q, (size_t)cap * sizeof *q);
    if (q == NULL) return -1;
    c->q = q;
    c->qcap = cap;
  }
  c->q[c->qn++] = o;
  return 0;
}

/* The front end's own answer (static text); the request, if any, is consumed by the caller. */
static void own_response(conn_t *c, const char *text, int close_after) {
  out_t o = {.p = {.data = (const uint8_t *)text, .len = (uint32_t)strlen(text), .last = 1}};
  if (close_after) {
    c->close_after = 1;
    c->in_len = 0;
  }
  c->state = C_WAIT;
  c->resp_done = 1;
  c->w = NULL;
  if (queue(c, o) != 0) c->close_after = 1;
}

#define R503 "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"

static void worker_dead(worker_t *w, const char *reason) {
  if (w->dead) return;
  w->pins++;
  char why[160];
  snprintf(why, sizeof why, "%s", reason); /* reason may live in w, which may be freed below */
  w->dead = 1;
  workers[w->slot] = NULL;
  epoll_ctl(ep, EPOLL_CTL_DEL, tp_fd(w->t), NULL);
  int st = 0;
  if (w->pid > 0) { /* always (tp_spawn never returns a link without a process); never kill(-1) */
    kill(w->pid, SIGKILL); /* gone already, or broke the protocol: either way it ends here */
    while (waitpid(w->pid, &st, 0) < 0 && errno == EINTR) {
    }
  }
  unsigned long answered = 0, closed = 0;
  for (int i = 0; i < MAX_CONNS; i++) {
    conn_t *c = conns[i];
    if (c == NULL || c->w != w) continue;
    c->w = NULL;
    if (c->resp_bytes == 0) { /* nothing of the response came: answer 503 */
      own_response(c, R503, 0);
      answered++;
      conn_run(c);
    } else { /* the client has part of a response: only closing tells it */
      closed++;
      conn_close(c);
    }
  }
  n_503 += answered;
  n_closed_partial += closed;
  int slot = w->slot;
  pid_t pid = w->pid;
  char how[64];
  if (WIFSIGNALED(st)) snprintf(how, sizeof how, "killed by signal %d", WTERMSIG(st));
  else snprintf(how, sizeof how, "exit %d", WEXITSTATUS(st));
  w->next_zombie = zombies;
  zombies = w;
  w->zombie = 1;
  w->pins--;
  worker_free_if_idle(w); /* w may be gone from here on */
  schedule_restart(slot);
  printf("worker %d: pid %d gone (%s; %s): %lu requests answered 503, %lu connections closed; restart in %u ms\n",
         slot, (int)pid, how, why, answered, closed, backoff_ms[slot]);
}

static void on_piece(worker_t *w, tp_piece_t *p) {
  uint32_t idx = (uint32_t)p->id, gen = (uint32_t)(p->id >> 32);
  conn_t *c = idx < MAX_CONNS ? conns[idx] : NULL;
  out_t o = {.p = *p, .w = w};
  if (c == NULL || c->state != C_WAIT || c->gen != gen || c->w != w || c->resp_done) {
    n_dropped++; /* its client is gone, or the worker made the id up */
    out_release(&o);
    return;
  }
  n_pieces++;
  c->resp_bytes += p->len;
  if (c->resp_bytes > MAX_RESP || queue(c, o) != 0) {
    out_release(&o);
    worker_dead(w, "response too large");
    return;
  }
  if (p->last) {
    c->resp_done = 1;
    c->w = NULL;
    w->inflight--;
  }
  conn_run(c);
}

static void worker_drain(worker_t *w) {
  tp_piece_t p[64];
  int n;
  w->pins++;
  while (!w->dead && (n = tp_poll(w->t, p, 64)) != 0) {
    if (n < 0) {
      worker_dead(w, tp_error(w->t));
      break;
    }
    for (int i = 0; i < n; i++) {
      if (!w->dead) {
        on_piece(w, &p[i]);
      } else { /* killed by an earlier piece of this batch: drop the rest */
        out_t o = {.p = p[i], .w = w};
        out_release(&o);
      }
    }
  }
  w->pins--;
  worker_free_if_idle(w);
}

/* ---- requests ---- */

static worker_t *pick_worker(void) {
  worker_t *best = NULL;
  unsigned start = rr++;
  for (int k = 0; k < n_workers; k++) {
    worker_t *w = workers[(start + (unsigned)k) % (unsigned)n_workers];
    if (w && (best == NULL || w->inflight < best->inflight)) best = w;
  }
  return best;
}

static int submit(conn_t *c, size_t total) {
  for (int tries = 0; tries < n_workers; tries++) {
    worker_t *w = pick_worker();
    if (w == NULL) break;
    uint64_t id = (uint64_t)(c->gen + 1) << 32 | (uint32_t)c->idx;
    void *b = tp_request_buf(w->t, total);
    if (b == NULL) continue;
    memcpy(b, c->in, total); /* the one copy of the request: from the socket's buffer into the message */
    if (tp_submit(w->t, id, c->close_after ? HTTP_REQ_CLOSE : 0, b, total) != 0) {
      if (errno == EAGAIN) tp_cancel(w->t, b);
      continue;
    }
    c->gen++;
    c->w = w;
    w->inflight++;
    c->state = C_WAIT;
    c->resp_bytes = 0;
    c->resp_done = 0;
    n_requests++;
    return 0;
  }
  return -1;
}

/* Value of header line [s, e) if its name is `name` (case-insensitive), else NULL. */
static const char *header(const char *s, const char *e, const char *name, const char **ve) {
  size_t n = strlen(name);
  if ((size_t)(e - s) <= n || strncasecmp(s, name, n) != 0 || s[n] != ':') return NULL;
  s += n + 1;
  while (s < e && (*s == ' ' || *s == '\t')) s++;
  while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
  *ve = e;
  return s;
}

/* 1: a request was taken (handed to a worker or answered here), 0: more bytes needed, -1: bad input. */
static int parse(conn_t *c) {
  const char *in = (const char *)c->in;
  const char *end = c->in_len ? memmem(in, c->in_len, "\r\n\r\n", 4) : NULL;
  if (end == NULL) {
    if (c->in_len < c->in_cap) return 0;
    own_response(c, "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 1);
    return 1;
  }
  size_t head = (size_t)(end - in) + 4;
  const char *eol = memmem(in, head, "\r\n", 2), *sp1 = memchr(in, ' ', (size_t)(eol - in));
  const char *sp2 = sp1 ? memrchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
  int minor = -1;
  if (sp2 && eol - sp2 == 9 && memcmp(sp2 + 1, "HTTP/1.", 7) == 0 && (sp2[8] == '0' || sp2[8] == '1'))
    minor = sp2[8] - '0';
  if (minor < 0 || sp1 == in || sp2 == sp1 + 1) return -1;
  int conn_close_hdr = 0, conn_keep = 0;
  uint64_t clen = 0;
  int have_clen = 0;
  for (const char *s = eol + 2; s < end;) {
    const char *e = memmem(s, (size_t)(end + 2 - s), "\r\n", 2), *ve, *v;
    if ((v = header(s, e, "content-length", &ve))) {
      uint64_t x = 0;
      if (v == ve || ve - v > 9) return -1;
      for (const char *d = v; d < ve; d++) {
        if (!isdigit((unsigned char)*d)) return -1;
        x = x * 10 + (uint64_t)(*d - '0');
      }
      if (have_clen && x != clen) return -1;
      clen = x;
      have_clen = 1;
    } else if ((v = header(s, e, "transfer-encoding", &ve))) {
      own_response(c, "HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 1);
      return 1;
    } else if ((v = header(s, e, "connection", &ve))) {
      if (memmem(v, (size_t)(ve - v), "close", 5) || memmem(v, (size_t)(ve - v), "Close", 5)) conn_close_hdr = 1;
      if (memmem(v, (size_t)(ve - v), "eep-alive", 9)) conn_keep = 1;
    }
    s = e + 2;
  }
  if (clen > HTTP_MAX_REQ_BODY || head + clen > max_request) {
    own_response(c, "HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 1);
    return 1;
  }
  size_t total = head + (size_t)clen;
  if (total > c->in_cap) { /* a large body: read it into a buffer of exactly this request's size */
    uint8_t *b = malloc(total);
    if (b == NULL) return -1;
    memcpy(b, c->in, c->in_len);
    c->in = b;
    c->in_cap = (uint32_t)total;
  }
  if (c->in_len < total) return 0;
  c->close_after = minor == 0 ? !conn_keep || conn_close_hdr : conn_close_hdr;
  if (submit(c, total) != 0) { /* no worker could take it now */
    own_response(c, R503, 0);
    n_503++;
  }
  memmove(c->in, c->in + total, c->in_len - total);
  c->in_len -= (uint32_t)total;
  if (c->in != c->small && c->in_len == 0) { /* its size was the request's: nothing of the next one is in it */
    free(c->in);
    c->in = c->small;
    c->in_cap = IN_CAP;
  }
  return 1;
}

/* ---- connections ---- */

/* Write what is queued; 0, or -1 if the connection was closed. */
static int flush(conn_t *c) {
  c->blocked = 0;
  while (c->qhead < c->qn) {
    struct iovec iov[64];
    int k = 0;
    for (int i = c->qhead; i < c->qn && k < 64; i++, k++) {
      size_t off = i == c->qhead ? c->qoff : 0;
      iov[k] = (struct iovec){(void *)(c->q[i].p.data + off), c->q[i].p.len - off};
    }
    ssize_t n = writev(c->fd, iov, k); /* from the transport's buffers: with the channel, shared memory */
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        c->blocked = 1;
        return 0;
      }
      conn_close(c);
      return -1;
    }
    size_t left = (size_t)n;
    while (c->qhead < c->qn && left >= c->q[c->qhead].p.len - c->qoff) {
      left -= c->q[c->qhead].p.len - c->qoff;
      c->qoff = 0;
      out_release(&c->q[c->qhead++]);
    }
    c->qoff += left;
  }
  c->qhead = c->qn = 0;
  return 0;
}

/* Readable interest stays on while a request is at a worker (pipelined bytes are read meanwhile), so a
 * request costs no epoll_ctl; it goes only when the buffer is full or the client has finished. */
static void set_mask(conn_t *c) {
  uint32_t m = (c->in_len < c->in_cap && !c->eof ? EPOLLIN : 0) | (c->blocked ? EPOLLOUT : 0);
  if (m == c->ep_mask) return;
  struct epoll_event ev = {.events = m, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
  c->ep_mask = m;
}

/* Move the connection on as far as it goes: write, finish a response, take the next request. */
static void conn_run(conn_t *c) {
  for (;;) {
    if (c->state == C_WAIT) {
      if (flush(c) != 0) return;
      if (!c->resp_done || c->qn != 0) break;
      if (c->close_after) {
        conn_close(c);
        return;
      }
      c->state = C_READ;
    }
    int r = parse(c);
    if (r < 0) own_response(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 1);
    else if (r == 0 && c->eof) { /* no complete request left and no more coming */
      conn_close(c);
      return;
    } else if (r == 0) break;
  }
  set_mask(c);
}

static void conn_event(conn_t *c, uint32_t events) {
  if (c->fd < 0) return; /* closed earlier in this batch */
  if (events & (EPOLLHUP | EPOLLERR)) { /* both directions gone: nobody to answer */
    conn_close(c);
    return;
  }
  if ((events & EPOLLIN) && c->in_len < c->in_cap && !c->eof) {
    ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      conn_close(c);
      return;
    }
    if (n == 0) c->eof = 1; /* half-closed: it may still wait for its responses */
    if (n > 0) c->in_len += (uint32_t)n;
  }
  conn_run(c);
}

static void accept_all(int lfd) {
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    conn_t *c = n_free ? calloc(1, sizeof *c) : NULL;
    if (c == NULL) {
      close(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->kind = K_CONN;
    c->fd = fd;
    c->in = c->small;
    c->in_cap = IN_CAP;
    c->idx = free_idx[--n_free];
    c->gen = (uint32_t)rr * 2654435761u; /* any start: ids of an earlier connection in this slot differ */
    c->ep_mask = EPOLLIN;
    conns[c->idx] = c;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
}

static void on_signal(int sig) { stop = 1; }

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--worker") == 0) return http_worker_main(argc - 2, argv + 2);
  int port = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--port") == 0) port = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--workers") == 0) n_workers = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--worker-exe") == 0) self_exe = argv[i + 1];
    else {
      fprintf(stderr, "usage: %s [--port N] [--workers N] [--worker-exe PATH]\n", argv[0]);
      return 2;
    }
  }
  if (n_workers < 1 || n_workers > MAX_WORKERS) n_workers = 2;
  max_request = IN_CAP + HTTP_MAX_REQ_BODY < tp_max_request ? IN_CAP + HTTP_MAX_REQ_BODY : tp_max_request;
  static char exe[4096];
  ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (el <= 0) return 1;
  exe[el] = 0;
  if (self_exe == NULL) self_exe = exe;
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: epoll_wait returns EINTR */
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  for (int i = MAX_CONNS - 1; i >= 0; i--) free_idx[n_free++] = i;

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 1024) != 0 ||
      getsockname(lfd, (struct sockaddr *)&a, &al) != 0) {
    fprintf(stderr, "http_server: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
    return 1;
  }
  ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &listen_kind};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
  for (int i = 0; i < n_workers; i++) {
    if (worker_start(i) != 0) return 1;
  }
  printf("http_server (%s): listening on 127.0.0.1:%d, %d workers, front end pid %d\n", tp_name,
         ntohs(a.sin_port), n_workers, (int)getpid());

  struct epoll_event evs[128];
  while (!stop) {
    for (int i = 0; i < n_workers; i++) { /* take what came; arm the rest */
      worker_t *w;
      int r;
      while ((w = workers[i]) != NULL && !w->armed && (r = tp_arm(w->t)) != 0) {
        if (r < 0) worker_dead(w, tp_error(w->t));
        else worker_drain(w);
      }
      if (w) w->armed = 1;
    }
    int n = epoll_wait(ep, evs, 128, restart_due());
    for (int i = 0; i < n; i++) {
      int kind = *(int *)evs[i].data.ptr;
      if (kind == K_LISTEN) accept_all(lfd);
      else if (kind == K_CONN) conn_event(evs[i].data.ptr, evs[i].events);
      else {
        worker_t *w = evs[i].data.ptr;
        w->armed = 0; /* the wake-up was used: arm again before the next wait */
        worker_drain(w);
      }
    }
    while (closed_conns) {
      conn_t *c = closed_conns;
      closed_conns = c->next_closed;
      free(c);
    }
  }
  for (int i = 0; i < MAX_CONNS; i++)
    if (conns[i]) conn_close(conns[i]);
  while (closed_conns) {
    conn_t *c = closed_conns;
    closed_conns = c->next_closed;
    free(c);
  }
  for (int i = 0; i < n_workers; i++) {
    worker_t *w = workers[i];
    if (w == NULL) continue;
    tp_close(w->t); /* the worker sees the end and exits */
    while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR) {
    }
    free(w);
  }
  printf("http_server: %lu requests to workers, %lu answered 503 here, %lu workers replaced, %lu pieces dropped, "
         "%lu connections closed mid-response, %lu response pieces\n",
         n_requests, n_503, n_replaced, n_dropped, n_closed_partial, n_pieces);
  return 0;
}
