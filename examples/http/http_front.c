/* The HTTP/1.1 front end of the example: one epoll loop over the listening socket, the client connections
 * (keep-alive, pipelined requests taken one at a time) and the pool of N worker processes.
 *
 * A request is framed and checked here (request line, Content-Length, Connection), copied once into a
 * buffer of the transport (with the channel: a service loan in memory the worker reads in place) and handed
 * to the pool, which picks the worker with the fewest requests awaiting a reply and gives back the
 * request's id. Its head must fit IN_CAP (64 KiB - 16) and its body HTTP_MAX_REQ_BODY (8 MiB) and the
 * transport (socket: head and body within 64 KiB - 16), else 413; a body beyond IN_CAP is read into a
 * buffer of the request's exact size, freed once it is handed on. The response comes back as pieces (with
 * the channel: one reply) under that id, which the front end maps to its client connection, writes to the
 * client with writev straight from the transport's buffers (with the channel: the worker's shared memory,
 * read-only here) and releases once written.
 *
 * A worker's pieces are untrusted: the transport accepts only pieces under ids it sent to that worker
 * (with the channel the library closes a connection that answers anything else); a piece whose id maps to
 * no waiting client here is dropped; a response larger than HTTP_MAX_BODY plus its head gets the worker
 * killed and replaced. The transport hands out bounded views (data, len); nothing here reads past them.
 *
 * Worker death (SIGKILL, crash, protocol violation): the transport turns each request the worker had not
 * finished into one failure notice; the front end answers 503 to each of which no byte of response had
 * arrived (not re-dispatched: the worker may have acted on it), closes the connections whose response had
 * begun, and keeps writing the responses it had received in full (with the channel their memory stays
 * mapped until the last is released). A worker that broke the protocol is killed here (the notice names
 * its pid). The process itself is reaped on SIGCHLD and a replacement started in the same slot.
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
#include <fcntl.h>
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

enum { K_LISTEN, K_CONN, K_POOL, K_CHILD };
enum { C_READ, C_WAIT };

typedef struct {
  tp_piece_t p;
  int own; /* 1: the front end's own response (static text) */
} out_t;

typedef struct conn_s {
  int kind; /* K_CONN: first, for epoll's data.ptr */
  int fd, idx, state, close_after, blocked;
  int eof; /* the client sent its last byte: finish what is buffered, then close */
  uint32_t ep_mask;
  uint64_t req; /* the id of the request at the pool (0: none), until its last piece or its failure */
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

static int ep, listen_kind = K_LISTEN, pool_kind = K_POOL, child_kind = K_CHILD;
static const char *self_exe;
static int n_workers = 2;
static tp_pool_t *pool;
static int pool_armed;
/* SIGCHLD and SIGTERM/SIGINT write a byte: reap, and look at stop. A flag alone would be lost when the
 * signal lands between the loop's test of stop and its epoll_wait (timeout -1, nothing else to come): the
 * front end would sleep on with the signal taken. */
static int child_pipe[2] = {-1, -1};
static conn_t *conns[MAX_CONNS];
static conn_t *closed_conns; /* closed during this batch of events; freed after it */
static int free_idx[MAX_CONNS], n_free;
static volatile sig_atomic_t stop;
static unsigned long n_requests, n_503, n_replaced, n_dropped, n_closed_partial, n_pieces;
static size_t max_request; /* head and body: the smaller of IN_CAP + HTTP_MAX_REQ_BODY and tp_max_request */

static void conn_run(conn_t *c);

/* ---- request id -> connection (open addressing; ids are the transport's, never 0) ---- */
#define MAP_CAP 8192 /* a power of two, at least 2 * MAX_CONNS: each connection has one request at most */
static struct {
  uint64_t id;
  conn_t *c;
} map[MAP_CAP];

static unsigned map_home(uint64_t id) { return (unsigned)((id * 0x9E3779B97F4A7C15ull) >> 51) & (MAP_CAP - 1); }

static void map_put(uint64_t id, conn_t *c) {
  unsigned i = map_home(id);
  while (map[i].id != 0 && map[i].id != id) i = (i + 1) & (MAP_CAP - 1);
  map[i].id = id;
  map[i].c = c;
}

static conn_t *map_get(uint64_t id) {
  for (unsigned i = map_home(id); map[i].id != 0; i = (i + 1) & (MAP_CAP - 1))
    if (map[i].id == id) return map[i].c;
  return NULL;
}

static void map_del(uint64_t id) {
  unsigned i = map_home(id);
  while (map[i].id != id) {
    if (map[i].id == 0) return;
    i = (i + 1) & (MAP_CAP - 1);
  }
  for (unsigned j = i;;) { /* backward shift: no tombstones */
    map[i].id = 0;
    for (;;) {
      j = (j + 1) & (MAP_CAP - 1);
      if (map[j].id == 0) return;
      unsigned h = map_home(map[j].id);
      if (i <= j ? (i < h && h <= j) : (i < h || h <= j)) continue; /* stays: its home is after the hole */
      break;
    }
    map[i] = map[j];
    i = j;
  }
}

/* ---- workers ---- */

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* One slot per worker process. Restarts of a slot: a worker that dies within a second of its start is
 * restarted after a delay that doubles from 10 ms to 1 s, so a worker that cannot start (or dies at once)
 * does not make the front end fork in a loop. */
static struct {
  pid_t pid;               /* 0: none (restart pending) */
  uint64_t started_at, restart_at; /* restart_at 0: none pending */
  unsigned backoff_ms;
  char why[256];           /* why the front end killed it ("" if it did not) */
} slots[MAX_WORKERS];

static int worker_start(int slot) {
  slots[slot].started_at = mono_ms();
  slots[slot].restart_at = 0;
  slots[slot].why[0] = 0;
  pid_t pid = -1;
  int r = tp_pool_spawn(pool, self_exe, &pid);
  pool_armed = 0; /* events that came while it joined wait in the transport: take them before sleeping */
  if (r != 0) {
    fprintf(stderr, "http_server: cannot start worker %d: %s\n", slot, strerror(errno));
    if (pid > 0) kill(pid, SIGKILL); /* reaped on SIGCHLD like any child */
    return -1;
  }
  slots[slot].pid = pid;
  printf("worker %d: pid %d\n", slot, (int)pid);
  return 0;
}

static void schedule_restart(int slot) {
  uint64_t now = mono_ms();
  if (now - slots[slot].started_at >= 1000) slots[slot].backoff_ms = 0;
  else slots[slot].backoff_ms = slots[slot].backoff_ms ? (slots[slot].backoff_ms >= 500 ? 1000 : 2 * slots[slot].backoff_ms) : 10;
  slots[slot].restart_at = now + slots[slot].backoff_ms;
}

/* Start the replacements that are due; returns the epoll timeout until the next one (-1: none). */
static int restart_due(void) {
  int timeout = -1;
  uint64_t now = mono_ms();
  for (int i = 0; i < n_workers; i++) {
    if (slots[i].pid != 0 || slots[i].restart_at == 0) continue;
    if (now >= slots[i].restart_at) {
      if (worker_start(i) == 0) {
        n_replaced++;
        continue;
      }
      schedule_restart(i);
    }
    int t = (int)(slots[i].restart_at - now);
    if (timeout < 0 || t < timeout) timeout = t < 0 ? 0 : t;
  }
  return timeout;
}

/* Kill worker pid (only one of ours: never 0, -1 or a stranger), saying why in its log line. */
static void worker_kill(pid_t pid, const char *why) {
  for (int i = 0; i < n_workers; i++) {
    if (pid <= 1 || slots[i].pid != pid) continue;
    if (slots[i].why[0] == 0) snprintf(slots[i].why, sizeof slots[i].why, "%s", why);
    kill(pid, SIGKILL); /* reaped on SIGCHLD */
  }
}

/* SIGCHLD: reap every child that ended; the slot it held is restarted. */
static void on_sigchld(int sig) {
  (void)sig;
  int e = errno;
  ssize_t r = write(child_pipe[1], "c", 1);
  (void)r;
  errno = e;
}

static void reap_children(void) {
  char b[64];
  while (read(child_pipe[0], b, sizeof b) > 0) {
  }
  int st;
  pid_t pid;
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
    int slot = 0;
    while (slot < n_workers && slots[slot].pid != pid) slot++;
    if (slot == n_workers) continue; /* a worker that never joined */
    slots[slot].pid = 0;
    char how[64];
    if (WIFSIGNALED(st)) snprintf(how, sizeof how, "killed by signal %d", WTERMSIG(st));
    else snprintf(how, sizeof how, "exit %d", WEXITSTATUS(st));
    schedule_restart(slot);
    printf("worker %d: pid %d gone (%s; %s); restart in %u ms\n", slot, (int)pid, how,
           slots[slot].why[0] ? slots[slot].why : "not killed here", slots[slot].backoff_ms);
  }
}

/* ---- responses ---- */

static void out_release(out_t *o) {
  if (!o->own) tp_release(pool, &o->p);
}

static void conn_close(conn_t *c) {
  for (int i = c->qhead; i < c->qn; i++) out_release(&c->q[i]);
  if (c->req) map_del(c->req); /* the worker still answers; its pieces will be dropped */
  c->req = 0;
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
  out_t o = {.p = {.data = (const uint8_t *)text, .len = (uint32_t)strlen(text), .last = 1}, .own = 1};
  if (close_after) {
    c->close_after = 1;
    c->in_len = 0;
  }
  c->state = C_WAIT;
  c->resp_done = 1;
  if (queue(c, o) != 0) c->close_after = 1;
}

#define R503 "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"

/* One event from the pool: a response piece, or the failure of a request. */
static void on_event(tp_piece_t *p) {
  conn_t *c = map_get(p->id);
  if (p->failed) {
    if (p->failed == EPROTO) {
      char why[240];
      snprintf(why, sizeof why, "protocol violation: %s", tp_pool_error(pool));
      worker_kill(p->pid, why);
    }
    tp_release(pool, p);
    if (c == NULL) return; /* its client left meanwhile */
    map_del(p->id);
    c->req = 0;
    if (c->resp_bytes == 0) { /* nothing of the response came: answer 503 */
      own_response(c, R503, 0);
      n_503++;
      conn_run(c);
    } else { /* the client has part of a response: only closing tells it */
      n_closed_partial++;
      conn_close(c);
    }
    return;
  }
  out_t o = {.p = *p};
  if (c == NULL || c->state != C_WAIT || c->resp_done) {
    n_dropped++; /* its client is gone */
    out_release(&o);
    return;
  }
  n_pieces++;
  c->resp_bytes += p->len;
  if (c->resp_bytes > MAX_RESP || queue(c, o) != 0) {
    out_release(&o);
    worker_kill(p->pid, "response too large");
    n_closed_partial++;
    conn_close(c);
    return;
  }
  if (p->last) {
    c->resp_done = 1;
    map_del(c->req);
    c->req = 0;
  }
  conn_run(c);
}

/* Take every event that is there; afterwards the pool's fd wakes the loop at the next one. */
/* Until tp_poll gives fewer than asked: then nothing more was waiting and the pool's fd wakes the loop at
 * the next event (one more tp_poll that finds nothing would cost the channel pool an epoll look). */
static void pool_drain(void) {
  tp_piece_t p[64];
  int n;
  do {
    n = tp_poll(pool, p, 64);
    for (int i = 0; i < n; i++) on_event(&p[i]);
  } while (n == 64);
  pool_armed = 1;
}

/* ---- requests ---- */

static int submit(conn_t *c, size_t total) {
  for (int tries = 0; tries < 2; tries++) { /* a second try: a connection may have died meanwhile */
    void *b = tp_request_buf(pool, total);
    if (b == NULL) return -1;
    memcpy(b, c->in, total); /* the one copy of the request: from the socket's buffer into the message */
    uint64_t id;
    if (tp_submit(pool, b, total, c->close_after ? HTTP_REQ_CLOSE : 0, &id) != 0) {
      if (errno == EAGAIN) {
        tp_cancel(pool, b);
        return -1;
      }
      continue;
    }
    c->req = id;
    map_put(id, c);
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
    c->ep_mask = EPOLLIN;
    conns[c->idx] = c;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
}


static void on_signal(int sig) {
  (void)sig;
  int e = errno;
  stop = 1;
  ssize_t r = write(child_pipe[1], "t", 1); /* wakes the epoll_wait this may have come just before */
  (void)r;
  errno = e;
}

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
  if (pipe2(child_pipe, O_NONBLOCK | O_CLOEXEC) != 0) return 1;
  struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: epoll_wait returns EINTR */
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  struct sigaction sc = {.sa_handler = on_sigchld, .sa_flags = SA_RESTART | SA_NOCLDSTOP};
  sigaction(SIGCHLD, &sc, NULL);
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
  pool = tp_pool_open();
  if (pool == NULL) {
    fprintf(stderr, "http_server: cannot open the %s worker pool: %s\n", tp_name, strerror(errno));
    return 1;
  }
  ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &listen_kind};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
  struct epoll_event pev = {.events = EPOLLIN, .data.ptr = &pool_kind};
  epoll_ctl(ep, EPOLL_CTL_ADD, tp_pool_fd(pool), &pev);
  struct epoll_event cev = {.events = EPOLLIN, .data.ptr = &child_kind};
  epoll_ctl(ep, EPOLL_CTL_ADD, child_pipe[0], &cev);
  for (int i = 0; i < n_workers; i++) {
    if (worker_start(i) != 0) return 1;
  }
  printf("http_server (%s): listening on 127.0.0.1:%d, %d workers, front end pid %d\n", tp_name,
         ntohs(a.sin_port), n_workers, (int)getpid());

  struct epoll_event evs[128];
  while (!stop) {
    int timeout = restart_due(); /* a replacement joining keeps what arrives meanwhile: drained next */
    if (!pool_armed) pool_drain(); /* take what came; the pool's fd then wakes us at the next event */
    int n = epoll_wait(ep, evs, 128, timeout);
    for (int i = 0; i < n; i++) {
      int kind = *(int *)evs[i].data.ptr;
      if (kind == K_LISTEN) accept_all(lfd);
      else if (kind == K_CONN) conn_event(evs[i].data.ptr, evs[i].events);
      else if (kind == K_CHILD) reap_children();
      else pool_armed = 0; /* the wake-up was used: drain (which arms again) before the next wait */
    }
    if (!pool_armed) pool_drain();
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
  unsigned long dropped = n_dropped + tp_pool_dropped(pool);
  signal(SIGCHLD, SIG_DFL);
  tp_pool_close(pool); /* the workers see the end and exit */
  for (int i = 0; i < n_workers; i++) {
    if (slots[i].pid <= 0) continue;
    while (waitpid(slots[i].pid, NULL, 0) < 0 && errno == EINTR) {
    }
  }
  printf("http_server: %lu requests to workers, %lu answered 503 here, %lu workers replaced, %lu pieces dropped, "
         "%lu connections closed mid-response, %lu response pieces\n",
         n_requests, n_503, n_replaced, dropped, n_closed_partial, n_pieces);
  return 0;
}
