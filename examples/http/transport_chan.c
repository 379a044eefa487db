/* The transport over the zcmem channel services (zcmem_service.h): one service endpoint listening on a
 * name of this front end ("http.<pid>" in the abstract namespace, so only processes of this uid can
 * join: the library's peer-credential check), each worker connected to it.
 *
 * A request is a service request: loaned with zc_svc_loan (in the memory of the connection with the
 * fewest requests awaiting a reply: the library's work queue picks the worker), filled, sent with
 * zc_svc_request, whose id names it from then on. The worker reads it in place and answers with
 * zc_svc_reply from a reply loan it begins at its guess of the response's size and grows or shrinks with
 * zc_svc_loan_resize; the front end's view of the reply is that loan itself (read-only), held until the
 * client has it. The library matches each reply to its request (a reply to anything else closes the
 * worker's connection as hostile) and turns every request of a connection that died (EPIPE) or broke the
 * protocol (EPROTO) into one FAILED notice. zc_svc_msg_peer names the worker process of each event.
 */
#define _GNU_SOURCE
#include "transport.h"
#include "zcmem_service.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

_Static_assert(sizeof(zc_svc_msg_t) <= sizeof(((tp_piece_t *)0)->priv), "a service message fits a piece");
_Static_assert(sizeof(zc_svc_msg_t) <= sizeof(((tp_request_t *)0)->priv), "a service message fits a request");

const char *const tp_name = "chan";
/* A bound of this example's choosing (the front end's own is lower), far below a default channel's
 * largest message (1 GiB - 4 MiB). */
const size_t tp_max_request = (size_t)64 << 20;

struct tp_pool_s {
  zc_svc_t *s;
  char name[64];
  tp_piece_t *backlog; /* events taken while tp_pool_spawn waited for a join */
  int nb, capb;
  unsigned long dropped;
  char why[240];
};

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

tp_pool_t *tp_pool_open(void) {
  tp_pool_t *pl = calloc(1, sizeof *pl);
  if (pl == NULL) return NULL;
  snprintf(pl->name, sizeof pl->name, "http.%d", (int)getpid());
  /* The front end never waits for a worker: a full connection fails at once (EAGAIN, then 503). Setup
   * waits for a worker's handshake (slow under valgrind). */
  zc_svc_config_t c;
  memset(&c, 0, sizeof c);
  c.chan.policy = ZC_CHAN_FAIL;
  c.chan.setup_timeout_ms = 30000;
  pl->s = zc_svc_listen(pl->name, &c);
  if (pl->s == NULL) {
    int e = errno;
    free(pl);
    errno = e;
    return NULL;
  }
  return pl;
}

int tp_pool_fd(tp_pool_t *pl) { return zc_svc_fd(pl->s); }

int tp_pool_workers(tp_pool_t *pl) { return zc_svc_peers(pl->s); }

unsigned long tp_pool_dropped(tp_pool_t *pl) {
  zc_svc_stats_t st;
  zc_svc_stats(pl->s, &st);
  return pl->dropped + (unsigned long)st.dropped;
}

const char *tp_pool_error(tp_pool_t *pl) { return pl->why; }

/* A received service message as an event. 1, or 0 if it is none (dropped). */
static int to_event(tp_pool_t *pl, zc_svc_msg_t *m, tp_piece_t *out) {
  memset(out, 0, sizeof *out);
  zc_chan_peer_t who;
  out->pid = zc_svc_msg_peer(pl->s, m, &who) == 0 ? (pid_t)who.pid : 0;
  out->id = m->id;
  out->last = 1;
  if (m->kind == ZC_SVC_FAILED) {
    out->failed = m->error ? m->error : EPIPE;
    if (out->failed == EPROTO) snprintf(pl->why, sizeof pl->why, "%s", zc_svc_error(pl->s));
    zc_svc_release(pl->s, m);
    return 1;
  }
  if (m->kind != ZC_SVC_REPLY) { /* a worker sends replies only */
    pl->dropped++;
    zc_svc_release(pl->s, m);
    return 0;
  }
  out->data = m->data;
  out->len = m->len;
  memcpy(out->priv, m, sizeof *m);
  return 1;
}

/* /proc/PID/stat says the process is a zombie or gone. */
static int proc_dead(pid_t pid) {
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return 1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  const char *rp = strrchr(buf, ')');
  return rp == NULL || rp[1] == 0 || rp[2] == 'Z' || rp[2] == 'X';
}

int tp_pool_spawn(tp_pool_t *pl, const char *exe, pid_t *pid) {
  zc_svc_stats_t st;
  zc_svc_stats(pl->s, &st);
  uint64_t joined = st.joined;
  *pid = fork();
  if (*pid < 0) return -1;
  if (*pid == 0) { /* only async-signal-safe calls until exec */
    closefrom(3);
    char *argv[] = {(char *)exe, "--worker", pl->name, NULL};
    execv(exe, argv);
    _exit(127);
  }
  for (uint64_t end = mono_ms() + 30000;;) { /* until it joined: accepted inside zc_svc_receive */
    zc_svc_msg_t m;
    if (zc_svc_receive(pl->s, &m, 10) == 0) {
      if (pl->nb == pl->capb) {
        int cap = pl->capb ? 2 * pl->capb : 64;
        tp_piece_t *b = realloc(pl->backlog, (size_t)cap * sizeof *b);
        if (b == NULL) { /* cannot keep it: a reply whose client then gets nothing; release it */
          zc_svc_release(pl->s, &m);
          pl->dropped++;
          continue;
        }
        pl->backlog = b;
        pl->capb = cap;
      }
      if (to_event(pl, &m, &pl->backlog[pl->nb])) pl->nb++;
    }
    zc_svc_stats(pl->s, &st);
    if (st.joined > joined) return 0;
    if (proc_dead(*pid)) return errno = ECHILD, -1;
    if (mono_ms() > end) return errno = ETIMEDOUT, -1;
  }
}

void *tp_request_buf(tp_pool_t *pl, size_t n) {
  if (n > tp_max_request) {
    errno = EMSGSIZE;
    return NULL;
  }
  return zc_svc_loan(pl->s, n ? n : 1);
}

int tp_submit(tp_pool_t *pl, void *buf, size_t n, uint32_t flags, uint64_t *id) {
  if (zc_svc_request(pl->s, buf, n, flags, id) == 0) return 0;
  int e = errno;
  if (e != EAGAIN) zc_svc_cancel(pl->s, buf); /* its connection died before the send: the loan is still ours */
  errno = e;
  return -1;
}

void tp_cancel(tp_pool_t *pl, void *buf) { zc_svc_cancel(pl->s, buf); }

int tp_poll(tp_pool_t *pl, tp_piece_t *out, int max) {
  int n = 0;
  while (n < max && pl->nb > 0) { /* first what came while a worker was joining, in order */
    out[n++] = pl->backlog[0];
    memmove(pl->backlog, pl->backlog + 1, (size_t)--pl->nb * sizeof *pl->backlog);
  }
  while (n < max) {
    zc_svc_msg_t m;
    if (zc_svc_receive(pl->s, &m, 0) != 0) break; /* EAGAIN: every connection armed, the fd will wake us */
    n += to_event(pl, &m, &out[n]);
  }
  return n;
}

void tp_release(tp_pool_t *pl, tp_piece_t *p) {
  if (p->failed) return;
  zc_svc_release(pl->s, (zc_svc_msg_t *)(void *)p->priv);
}

void tp_pool_close(tp_pool_t *pl) {
  for (int i = 0; i < pl->nb; i++) tp_release(pl, &pl->backlog[i]);
  zc_svc_close(pl->s);
  free(pl->backlog);
  free(pl);
}

/* ---- worker ---- */
struct tp_worker_s {
  zc_svc_t *s;
  size_t max; /* the largest reply: zc_svc_max_msg */
};

static zc_svc_msg_t *msg_of(tp_request_t *q) { return (zc_svc_msg_t *)(void *)q->priv; }

tp_worker_t *tp_worker_open(int argc, char **argv) {
  if (argc < 1) return NULL;
  tp_worker_t *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  /* A reply waits for room (the front end holds replies until the client took them) as long as it takes;
   * the wait still ends with EPIPE if the front end dies. A worker with nothing to do sleeps at once
   * instead of spinning (spin_ns 1 ns): with more processes than cores (N workers, the front end and the
   * clients on two CPUs) a spinning worker takes the CPU the front end needs. */
  zc_svc_config_t c;
  memset(&c, 0, sizeof c);
  c.chan.block_timeout_ms = -1;
  c.chan.setup_timeout_ms = 30000;
  c.chan.spin_ns = 1;
  c.connect_timeout_ms = 30000;
  w->s = zc_svc_connect(argv[0], &c);
  if (w->s == NULL) {
    free(w);
    return NULL;
  }
  return w;
}

int tp_worker_recv(tp_worker_t *w, tp_request_t *out) {
  for (;;) {
    zc_svc_msg_t m;
    if (zc_svc_receive(w->s, &m, -1) != 0) return -1; /* EPIPE: the front end is gone */
    if (m.kind != ZC_SVC_REQUEST) { /* the front end sends requests only */
      zc_svc_release(w->s, &m);
      continue;
    }
    memset(out, 0, sizeof *out);
    out->flags = m.type;
    out->data = m.data;
    out->len = m.len;
    memcpy(out->priv, &m, sizeof m);
    return 0;
  }
}

void tp_worker_done(tp_worker_t *w, tp_request_t *q) {
  zc_svc_msg_t *m = msg_of(q);
  if (m->kind == ZC_SVC_REQUEST) zc_svc_release(w->s, m); /* not answered (zc_svc_reply released it) */
}

int tp_resp_begin(tp_worker_t *w, tp_resp_t *r, tp_request_t *q, uint64_t guess) {
  *r = (tp_resp_t){.w = w, .q = q, .guess = guess ? guess : 1};
  w->max = zc_svc_max_msg(w->s);
  return 0;
}

uint8_t *tp_resp_room(tp_resp_t *r, size_t *room) {
  zc_svc_t *s = r->w->s;
  size_t max = r->w->max;
  if (r->piece != NULL && r->used == r->cap) { /* full: grow the loan (double it) */
    size_t want = r->cap < max / 2 ? 2 * r->cap : max;
    if (want <= r->cap) {
      errno = EMSGSIZE; /* a response beyond the largest message: this example has no pieces */
      return NULL;
    }
    uint8_t *p = zc_svc_loan_resize(s, r->piece, want, r->used);
    if (p == NULL) return NULL;
    r->piece = p;
    r->cap = want;
  }
  if (r->piece == NULL) {
    size_t want = r->guess < max ? (size_t)r->guess : max;
    uint8_t *p = zc_svc_loan_reply(s, msg_of(r->q), want);
    if (p == NULL) return NULL;
    r->piece = p;
    r->cap = want;
    r->used = 0;
  }
  *room = r->cap - r->used;
  return r->piece + r->used;
}

int tp_resp_end(tp_resp_t *r) {
  zc_svc_t *s = r->w->s;
  size_t room;
  if (r->piece == NULL && tp_resp_room(r, &room) == NULL) return -1; /* nothing written: an empty reply */
  if (r->cap - r->used >= 4096) { /* a long guess: give back what was not written (on failure send as is) */
    uint8_t *p = zc_svc_loan_resize(s, r->piece, r->used ? r->used : 1, r->used);
    if (p != NULL) {
      r->piece = p;
      r->cap = r->used;
    }
  }
  uint8_t *p = r->piece;
  r->piece = NULL;
  if (zc_svc_reply(s, msg_of(r->q), p, r->used, 0) == 0) return 0;
  int e = errno;
  if (e == EAGAIN || e == ETIMEDOUT || e == EINVAL) zc_svc_cancel(s, p); /* still ours */
  errno = e;
  return -1;
}

void tp_worker_close(tp_worker_t *w) {
  zc_svc_close(w->s);
  free(w);
}
