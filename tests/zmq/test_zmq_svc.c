/* The channel services over ZeroMQ (zc_eps_* on tcp://127.0.0.1), across real processes: request/response
 * with replies out of order from several threads, a work queue whose worker is SIGKILLed mid-request, a
 * server that restarts, timeouts and bad arguments (garbage: test_zmq_svc_garbage.c). Usage: test_zmq_svc <name>.
 * Ports are picked by the kernel (bind to port *, the child tells the parent). Every wait has a deadline. */
#include "zc_test.h"
#include "zmq_spawn.h"
#include "zcmem.h"
#include "zcmem_zmq.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <zmq.h>

#define ANY_PORT "tcp://127.0.0.1:*"
/* A wait on the other process, whose pace is not under test (a loaded 2-core machine under a sanitizer may
 * leave it off the CPU for seconds): a hang still fails, at this deadline or the children's 60 s alarm
 * (zc_child.h). Connectors wait this long for the handshake too (the default is 5 s). */
#define PEER_MS 60000
#define PEER_NS (PEER_MS * 1000000ull)
#define T_QUIT 99   /* ONEWAY: the server stops */
#define T_HOLD 98   /* REQUEST: the server keeps it and never replies */
#define T_SLOW 97   /* REQUEST: the reply comes 300 ms later */

/* Sizes for seed s: 8 B .. 4 MiB, mostly small, some above libzmq's 8 KiB batch, a few of megabytes. */
static size_t size_of(uint64_t s) {
  uint64_t r = splitmix64(s * 13 + 5);
  switch (r & 15) {
    case 0: return 8192 + (r >> 8) % (256 * 1024);
    case 1: return (r >> 8) % 32 == 0 ? ((size_t)1 << 20) + (r >> 16) % (3u << 20) : 8 + (r >> 8) % 8192;
    case 2: return 8 + (r >> 8) % 30;
    default: return 8 + (r >> 8) % 2000;
  }
}
#define REPLY_SEED(s) ((s) ^ 0x5eed5eedull)

/* A message of seed s: the seed in its first 8 bytes, then the seeded pattern. */
static void fill_msg(void *p, size_t n, uint64_t s) {
  memcpy(p, &s, 8);
  fill_pattern((char *)p + 8, n - 8, s);
}

static uint64_t check_msg(const zc_svc_msg_t *m, int reply) {
  uint64_t s;
  REQUIREF(m->len >= 8, "a message of %u bytes", m->len);
  memcpy(&s, m->data, 8);
  uint64_t seed = reply ? REPLY_SEED(s) : s;
  size_t want = size_of(seed);
  REQUIREF(m->len == want, "%s of seed %#llx: %u bytes, sent %zu", reply ? "reply" : "request",
           (unsigned long long)s, m->len, want);
  long bad = verify_pattern((const char *)m->data + 8, m->len - 8, seed);
  REQUIREF(bad < 0, "%s of seed %#llx (%u bytes): byte %ld differs", reply ? "reply" : "request",
           (unsigned long long)s, m->len, bad + 8);
  return s;
}

/* ---- a server child: replies to each request from one of several threads, in no particular order ---- */
typedef struct server_args_s {
  int fd;            /* pipe: the endpoint goes to the parent */
  const char *bind;  /* endpoint to bind (ANY_PORT or a fixed one) */
  int threads;
  int hb_ms;
} server_args_t;

typedef struct server_s {
  zc_eps_t *e;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  zc_svc_msg_t q[64];
  int head, n, quit;
} server_t;

static void *server_replier(void *arg) {
  server_t *sv = arg;
  rng_t r;
  rng_seed(&r, (uint64_t)(uintptr_t)&r);
  for (;;) {
    pthread_mutex_lock(&sv->lock);
    while (sv->n == 0 && !sv->quit) pthread_cond_wait(&sv->cond, &sv->lock);
    if (sv->n == 0) {
      pthread_mutex_unlock(&sv->lock);
      return NULL;
    }
    zc_svc_msg_t req = sv->q[sv->head];
    sv->head = (sv->head + 1) % 64;
    sv->n--;
    pthread_cond_broadcast(&sv->cond);
    pthread_mutex_unlock(&sv->lock);
    if (rng_next(&r) % 8 == 0) sleep_ms(1); /* so replies overtake each other */
    if (req.type == T_SLOW) sleep_ms(300);
    uint64_t s = check_msg(&req, 0);
    size_t n = size_of(REPLY_SEED(s));
    void *p = zc_eps_loan_reply(sv->e, &req, n);
    if (p == NULL && errno == EPIPE) { /* the client is gone */
      zc_eps_release(sv->e, &req);
      continue;
    }
    REQUIREF(p != NULL, "loan_reply %zu: %s (%s)", n, strerror(errno), zc_eps_error(sv->e));
    fill_msg(p, n, REPLY_SEED(s));
    memcpy(p, &s, 8);
    int rc = zc_eps_reply(sv->e, &req, p, n, req.type);
    REQUIREF(rc == 0 || errno == EPIPE, "reply: %s (%s)", strerror(errno), zc_eps_error(sv->e));
  }
}

static int server_main(void *arg) {
  const server_args_t *a = arg;
  zc_eps_config_t cfg = {.svc.chan.block_timeout_ms = 20000, .heartbeat_ms = a->hb_ms};
  server_t sv = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
  sv.e = zc_eps_listen(a->bind, &cfg);
  REQUIREF(sv.e != NULL, "listen %s: %s", a->bind, strerror(errno));
  pipe_send_str(a->fd, zc_eps_endpoint(sv.e));
  pthread_t th[8];
  for (int i = 0; i < a->threads; i++) pthread_create(&th[i], NULL, server_replier, &sv);
  zc_svc_msg_t held[64];
  int nheld = 0;
  for (;;) {
    zc_svc_msg_t m;
    int rc = zc_eps_receive(sv.e, &m, PEER_MS);
    REQUIREF(rc == 0, "server receive: %s (%s)", strerror(errno), zc_eps_error(sv.e));
    if (m.kind == ZC_SVC_ONEWAY && m.type == T_QUIT) {
      zc_eps_release(sv.e, &m);
      break;
    }
    REQUIREF(m.kind == ZC_SVC_REQUEST, "server got kind %d", m.kind);
    if (m.type == T_HOLD && nheld < 64) {
      held[nheld++] = m;
      continue;
    }
    pthread_mutex_lock(&sv.lock);
    while (sv.n == 64) pthread_cond_wait(&sv.cond, &sv.lock);
    sv.q[(sv.head + sv.n) % 64] = m;
    sv.n++;
    pthread_cond_signal(&sv.cond);
    pthread_mutex_unlock(&sv.lock);
  }
  pthread_mutex_lock(&sv.lock);
  sv.quit = 1;
  pthread_cond_broadcast(&sv.cond);
  pthread_mutex_unlock(&sv.lock);
  for (int i = 0; i < a->threads; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < nheld; i++) zc_eps_release(sv.e, &held[i]);
  zc_eps_close(sv.e);
  return 0;
}

static pid_t start_server(server_args_t *a, char *ep, size_t cap) {
  int pfd[2];
  REQUIRE(pipe(pfd) == 0);
  a->fd = pfd[1];
  pid_t pid = ZSPAWN(server_main, a, bind, pfd[1], -1);
  close(pfd[1]);
  pipe_recv_str(pfd[0], ep, cap);
  close(pfd[0]);
  return pid;
}

static void send_quit(zc_eps_t *c) {
  void *p = zc_eps_loan(c, 8);
  REQUIREF(p != NULL, "loan: %s", strerror(errno));
  memset(p, 0, 8);
  REQUIREF(zc_eps_send(c, p, 8, T_QUIT) == 0, "send quit: %s", strerror(errno));
}

/* ---- rr: several threads send requests; one receives the replies, which come back out of order ---- */
#define RR_THREADS 4
#define RR_WINDOW 8
typedef struct rr_s {
  zc_eps_t *c;
  long per_thread;
  _Atomic uint64_t *ids; /* [thread * per_thread + seq]: the id zc_eps_request gave */
  _Atomic int *answered;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int inflight[RR_THREADS];
} rr_t;

typedef struct rr_thread_s {
  rr_t *rr;
  int t;
} rr_thread_t;

static uint64_t rr_seed(int t, long seq) { return (uint64_t)t << 40 | (uint64_t)seq << 8 | 0x11; }

static void *rr_sender(void *arg) {
  rr_thread_t *a = arg;
  rr_t *rr = a->rr;
  for (long seq = 0; seq < rr->per_thread; seq++) {
    pthread_mutex_lock(&rr->lock);
    while (rr->inflight[a->t] >= RR_WINDOW) pthread_cond_wait(&rr->cond, &rr->lock);
    rr->inflight[a->t]++;
    pthread_mutex_unlock(&rr->lock);
    uint64_t s = rr_seed(a->t, seq), id = 0;
    size_t n = size_of(s);
    void *p = zc_eps_loan(rr->c, n);
    REQUIREF(p != NULL, "loan %zu: %s (%s)", n, strerror(errno), zc_eps_error(rr->c));
    fill_msg(p, n, s);
    REQUIREF(zc_eps_request(rr->c, p, n, (uint32_t)a->t, &id) == 0, "request: %s (%s)", strerror(errno),
             zc_eps_error(rr->c));
    REQUIRE(id != 0);
    atomic_store(&rr->ids[a->t * rr->per_thread + seq], id);
  }
  return NULL;
}

static int t_rr(int argc, char **argv) {
  long total = quick_mode(argc, argv) ? 1200 : 4000;
  server_args_t sa = {.bind = ANY_PORT, .threads = 3};
  char ep[256];
  pid_t srv = start_server(&sa, ep, sizeof ep);
  zc_eps_config_t cfg = {.svc.chan.block_timeout_ms = 20000, .svc.connect_timeout_ms = PEER_MS};
  rr_t rr = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
  zc_stats_t before, after;
  zc_stats_get(&before);
  rr.c = zc_eps_connect(ep, &cfg);
  REQUIREF(rr.c != NULL, "connect %s: %s", ep, strerror(errno));
  CHECK(zc_eps_kind(rr.c) == ZC_EP_ZMQ);
  rr.per_thread = total / RR_THREADS;
  rr.ids = calloc((size_t)total, sizeof *rr.ids);
  rr.answered = calloc((size_t)total, sizeof *rr.answered);
  pthread_t th[RR_THREADS];
  rr_thread_t args[RR_THREADS];
  for (int t = 0; t < RR_THREADS; t++) {
    args[t] = (rr_thread_t){&rr, t};
    pthread_create(&th[t], NULL, rr_sender, &args[t]);
  }
  long got = 0, out_of_order = 0;
  uint64_t last_seed[RR_THREADS] = {0}, deadline = now_ns() + 100000000000ull;
  while (got < rr.per_thread * RR_THREADS) {
    zc_svc_msg_t m;
    int rc = zc_eps_receive(rr.c, &m, PEER_MS);
    REQUIREF(rc == 0, "receive after %ld replies: %s (%s)", got, strerror(errno), zc_eps_error(rr.c));
    REQUIREF(m.kind == ZC_SVC_REPLY, "kind %d (error %d)", m.kind, m.error);
    uint64_t s = check_msg(&m, 1);
    int t = (int)(s >> 40);
    long seq = (long)((s >> 8) & 0xffffffff);
    REQUIREF(t < RR_THREADS && seq < rr.per_thread && (uint32_t)t == m.type, "reply seed %#llx type %u",
             (unsigned long long)s, m.type);
    long k = t * rr.per_thread + seq;
    uint64_t id;
    while ((id = atomic_load(&rr.ids[k])) == 0) REQUIRE(now_ns() < deadline); /* the sender stores it next */
    REQUIREF(m.id == id, "reply to seed %#llx has id %#llx, its request had %#llx", (unsigned long long)s,
             (unsigned long long)m.id, (unsigned long long)id);
    REQUIREF(atomic_fetch_add(&rr.answered[k], 1) == 0, "request %ld answered twice", k);
    if (s < last_seed[t]) out_of_order++;
    last_seed[t] = s;
    REQUIRE(zc_eps_release(rr.c, &m) == 0);
    pthread_mutex_lock(&rr.lock);
    rr.inflight[t]--;
    pthread_cond_broadcast(&rr.cond);
    pthread_mutex_unlock(&rr.lock);
    got++;
  }
  for (int t = 0; t < RR_THREADS; t++) pthread_join(th[t], NULL);
  zc_svc_stats_t st;
  zc_eps_stats(rr.c, &st);
  CHECKF(st.requests == (uint64_t)got && st.pending == 0 && st.failed == 0 && st.rejected == 0,
         "requests %lu pending %lu failed %lu rejected %lu", (unsigned long)st.requests, (unsigned long)st.pending,
         (unsigned long)st.failed, (unsigned long)st.rejected);
  CHECKF(out_of_order > 0, "every reply came back in order: the test did not reorder anything");
  printf("rr: %ld requests of 8 B .. 4 MiB, %ld replies out of order\n", got, out_of_order);
  send_quit(rr.c);
  CHECK_EQ(reap(srv), 0);
  zc_eps_close(rr.c); /* waits for libzmq: every loan has come back to zcmem */
  zc_stats_get(&after);
  CHECKF(after.remote_frees > before.remote_frees, "libzmq's I/O thread freed no loan into zcmem");
  CHECKF(after.allocated < before.allocated + (1u << 20), "%ld bytes more allocated after close",
         (long)(after.allocated - before.allocated));
  free(rr.ids);
  free((void *)rr.answered);
  CHECK_DONE("zmq_svc_rr");
}

/* ---- workq: a dispatcher, N worker processes, one SIGKILLed while it holds requests ---- */
/* The heartbeat test's interval and timeout: a timeout far above a scheduling stall of a loaded machine
 * (a live peer whose I/O thread waits that long for a core would be dropped too) */
#define HB_IVL_MS 200
#define HB_TIMEOUT_MS 2000
typedef struct worker_args_s {
  const char *ep;
  int victim; /* hold every request; SIGKILL itself after holding 3 */
  int stop;   /* SIGSTOP itself after holding 1 (heartbeat test) */
} worker_args_t;

static int worker_main(void *arg) {
  const worker_args_t *a = arg;
  zc_eps_config_t cfg = {.svc.chan.block_timeout_ms = 20000, .svc.connect_timeout_ms = PEER_MS,
                         .heartbeat_ms = a->stop ? HB_IVL_MS : 0, .heartbeat_timeout_ms = a->stop ? HB_TIMEOUT_MS : 0};
  zc_eps_t *w = zc_eps_connect(a->ep, &cfg);
  REQUIREF(w != NULL, "worker connect %s: %s", a->ep, strerror(errno));
  int held = 0;
  for (;;) {
    zc_svc_msg_t m;
    if (zc_eps_receive(w, &m, PEER_MS) != 0) {
      REQUIREF(errno == EPIPE, "worker receive: %s (%s)", strerror(errno), zc_eps_error(w));
      break; /* the dispatcher is gone: done */
    }
    REQUIREF(m.kind == ZC_SVC_REQUEST, "worker got kind %d", m.kind);
    uint64_t s = check_msg(&m, 0);
    if (a->victim || a->stop) {
      held++;
      if (a->victim && held == 3) kill(getpid(), SIGKILL);
      if (a->stop && held == 1) kill(getpid(), SIGSTOP);
      continue;
    }
    size_t n = 16;
    char *p = zc_eps_loan_reply(w, &m, n);
    REQUIREF(p != NULL, "worker loan_reply: %s", strerror(errno));
    uint32_t pid = (uint32_t)getpid();
    memcpy(p, &s, 8);
    memcpy(p + 8, &pid, 4);
    memset(p + 12, 0, 4);
    REQUIREF(zc_eps_reply(w, &m, p, n, 7) == 0, "worker reply: %s", strerror(errno));
  }
  zc_eps_close(w);
  return 0;
}

static void wait_peers(zc_eps_t *e, int n) {
  uint64_t deadline = now_ns() + PEER_NS;
  while (zc_eps_peers(e) < n) {
    REQUIREF(now_ns() < deadline, "%d peers of %d after %d s", zc_eps_peers(e), n, PEER_MS / 1000);
    zc_svc_msg_t m;
    if (zc_eps_receive(e, &m, 10) == 0) REQUIREF(0, "unexpected message kind %d", m.kind);
  }
}

#define WQ_WORKERS 3
static int t_workq(int argc, char **argv) {
  long total = quick_mode(argc, argv) ? 600 : 2000;
  zc_eps_config_t cfg = {.svc.chan.block_timeout_ms = 20000};
  zc_eps_t *d = zc_eps_listen(ANY_PORT, &cfg);
  REQUIREF(d != NULL, "listen: %s", strerror(errno));
  char ep[256];
  snprintf(ep, sizeof ep, "%s", zc_eps_endpoint(d));
  CHECK(zc_eps_loan(d, 8) == NULL && errno == EAGAIN); /* no worker yet */
  worker_args_t wa[WQ_WORKERS];
  pid_t pids[WQ_WORKERS];
  for (int i = 0; i < WQ_WORKERS; i++) {
    wa[i] = (worker_args_t){.ep = ep, .victim = i == 0};
    pids[i] = ZSPAWN(worker_main, &wa[i], ep, -1, -1);
  }
  wait_peers(d, WQ_WORKERS); /* each worker's HELLO makes it known before it sent anything */
  /* every job is sent, re-sent after a FAILED notice, until each has exactly one reply */
  int *done = calloc((size_t)total, sizeof *done);
  long next = 0, replies = 0, failed = 0, inflight = 0, resend[4096], nresend = 0, sent_epipe = 0;
  uint64_t fl_id[32];
  long fl_job[32];
  uint64_t per_worker[WQ_WORKERS + 1] = {0};
  uint64_t deadline = now_ns() + 100000000000ull;
  while (replies < total) {
    REQUIREF(now_ns() < deadline, "%ld replies of %ld after 100 s", replies, total);
    while (inflight < 24 && (nresend > 0 || next < total)) {
      long job = nresend > 0 ? resend[--nresend] : next++;
      uint64_t s = (uint64_t)job << 8 | 0x22;
      size_t n = size_of(s);
      void *p = zc_eps_loan(d, n);
      REQUIREF(p != NULL, "loan: %s (%s)", strerror(errno), zc_eps_error(d));
      fill_msg(p, n, s);
      uint64_t id;
      if (zc_eps_request(d, p, n, 1, &id) != 0) { /* the worker it was loaned for died meanwhile */
        REQUIREF(errno == EPIPE, "request: %s (%s)", strerror(errno), zc_eps_error(d));
        resend[nresend++] = job;
        sent_epipe++;
        continue;
      }
      fl_id[inflight] = id;
      fl_job[inflight] = job;
      inflight++;
    }
    zc_svc_msg_t m;
    int rc = zc_eps_receive(d, &m, PEER_MS);
    REQUIREF(rc == 0, "dispatcher receive: %s (%s)", strerror(errno), zc_eps_error(d));
    long f = 0; /* which request this answers: by id, as a caller of the library would */
    while (f < inflight && fl_id[f] != m.id) f++;
    REQUIREF(f < inflight, "kind %d with id %#llx: no such request in flight", m.kind, (unsigned long long)m.id);
    long fjob = fl_job[f];
    inflight--;
    fl_id[f] = fl_id[inflight];
    fl_job[f] = fl_job[inflight];
    if (m.kind == ZC_SVC_FAILED) {
      CHECKF(m.error == EPIPE && m.data == NULL, "FAILED with error %d", m.error);
      failed++;
      REQUIRE(nresend < 4096);
      resend[nresend++] = fjob; /* at most once: the library never retries; the caller may */
      zc_eps_release(d, &m);
      continue;
    }
    REQUIREF(m.kind == ZC_SVC_REPLY && m.len == 16, "kind %d len %u", m.kind, m.len);
    uint64_t s;
    uint32_t pid;
    memcpy(&s, m.data, 8);
    memcpy(&pid, (const char *)m.data + 8, 4);
    long job = (long)(s >> 8);
    REQUIREF(job == fjob, "reply for job %ld to the request of job %ld", job, fjob);
    REQUIREF(job < total && done[job]++ == 0, "job %ld answered twice", job);
    int w = 0;
    while (w < WQ_WORKERS && (uint32_t)pids[w] != pid) w++;
    CHECKF(w != 0, "the victim replied");
    per_worker[w]++;
    replies++;
    zc_eps_release(d, &m);
  }
  CHECK_EQ(reap(pids[0]), 128 + SIGKILL);
  zc_svc_stats_t st;
  zc_eps_stats(d, &st);
  printf("workq: %ld jobs, %ld FAILED (the victim's), %ld sends EPIPE, workers 1 and 2 answered %lu and %lu; "
         "peers %lu left %lu\n", total, failed, sent_epipe, (unsigned long)per_worker[1], (unsigned long)per_worker[2], (unsigned long)st.peers,
         (unsigned long)st.left);
  CHECKF(failed >= 3, "%ld FAILED notices, the victim held 3 requests", failed);
  CHECKF(st.failed == (uint64_t)failed && st.pending == 0 && st.left == 1 && st.peers == 2,
         "failed %lu pending %lu left %lu peers %lu", (unsigned long)st.failed, (unsigned long)st.pending,
         (unsigned long)st.left, (unsigned long)st.peers);
  CHECK(per_worker[1] > 0 && per_worker[2] > 0);
  zc_eps_close(d); /* the workers see EPIPE and exit 0 */
  for (int i = 1; i < WQ_WORKERS; i++) CHECK_EQ(reap(pids[i]), 0);
  free(done);
  CHECK_DONE("zmq_svc_workq");
}

/* ---- restart: the server is SIGKILLed and started again on the same port; the client reconnects ---- */
/* A loan holding the message of seed s (size_of(s) bytes); *n gets the size. */
static void *loan_msg(zc_eps_t *e, uint64_t s, size_t *n) {
  *n = size_of(s);
  void *p = zc_eps_loan(e, *n);
  REQUIREF(p != NULL, "loan %zu: %s (%s)", *n, strerror(errno), zc_eps_error(e));
  fill_msg(p, *n, s);
  return p;
}

static uint64_t echo_call(zc_eps_t *c, uint64_t s, int *err) {
  size_t n = size_of(s);
  void *p = zc_eps_loan(c, n);
  if (p == NULL) return *err = errno, 0;
  fill_msg(p, n, s);
  zc_svc_msg_t rep;
  if (zc_eps_call(c, p, n, 5, &rep, PEER_MS) != 0) return *err = errno, 0;
  uint64_t got = check_msg(&rep, 1);
  REQUIREF(got == s && rep.kind == ZC_SVC_REPLY, "reply of seed %#llx for %#llx", (unsigned long long)got,
           (unsigned long long)s);
  REQUIRE(zc_eps_release(c, &rep) == 0);
  return *err = 0, 1;
}

static int t_restart(int argc, char **argv) {
  (void)argc, (void)argv;
  server_args_t sa = {.bind = ANY_PORT, .threads = 2};
  char ep[256];
  pid_t srv = start_server(&sa, ep, sizeof ep);
  zc_eps_config_t cfg = {.svc.chan.block_timeout_ms = 2000, .svc.connect_timeout_ms = PEER_MS};
  zc_eps_t *c = zc_eps_connect(ep, &cfg);
  REQUIREF(c != NULL, "connect %s: %s", ep, strerror(errno));
  int err;
  REQUIREF(echo_call(c, 0x100, &err), "first call: %s (%s)", strerror(err), zc_eps_error(c));
  uint64_t hold_id;
  void *p = zc_eps_loan(c, 64);
  fill_msg(p, 64, 0x200);
  REQUIRE(zc_eps_request(c, p, 64, T_HOLD, &hold_id) == 0);
  REQUIREF(echo_call(c, 0x300, &err), "second call: %s", strerror(err)); /* the held one arrived before */
  kill(srv, SIGKILL);
  CHECK_EQ(reap(srv), 128 + SIGKILL);
  uint64_t t0 = now_ns();
  zc_svc_msg_t m;
  REQUIREF(zc_eps_receive(c, &m, PEER_MS) == 0, "no FAILED notice: %s (%s)", strerror(errno), zc_eps_error(c));
  CHECKF(m.kind == ZC_SVC_FAILED && m.id == hold_id && m.error == EPIPE, "kind %d id %#llx error %d", m.kind,
         (unsigned long long)m.id, m.error);
  printf("restart: the held request FAILED %.1f ms after the server was reaped\n", (now_ns() - t0) / 1e6);
  zc_eps_release(c, &m);
  CHECK(zc_eps_loan(c, 8) == NULL && errno == EPIPE); /* no connection: EPIPE, as locally */
  CHECK(zc_eps_receive(c, &m, 1000) != 0 && errno == EPIPE);
  CHECK_EQ(zc_eps_peers(c), 0);
  /* the same port again */
  sa.bind = ep;
  char ep2[256];
  srv = start_server(&sa, ep2, sizeof ep2);
  CHECK(strcmp(ep, ep2) == 0);
  uint64_t deadline = now_ns() + 2 * PEER_NS; /* a call waits PEER_MS at most */
  int ok = 0, tries = 0;
  while (!ok && now_ns() < deadline) {
    ok = echo_call(c, 0x400 + (uint64_t)tries * 0x100, &err);
    tries++;
    if (!ok) {
      CHECKF(err == EPIPE || err == ETIMEDOUT, "while reconnecting: %s", strerror(err));
      sleep_ms(20);
    }
  }
  CHECKF(ok, "no reply within %d s of the restart (%s)", 2 * PEER_MS / 1000, zc_eps_error(c));
  REQUIREF(echo_call(c, 0x12345600, &err), "after the restart: %s", strerror(err));
  zc_svc_stats_t st;
  zc_eps_stats(c, &st);
  CHECKF(st.joined == 2 && st.left == 1 && st.failed == 1 && st.pending == 0 && st.peers == 1,
         "joined %lu left %lu failed %lu pending %lu peers %lu", (unsigned long)st.joined, (unsigned long)st.left,
         (unsigned long)st.failed, (unsigned long)st.pending, (unsigned long)st.peers);
  send_quit(c);
  CHECK_EQ(reap(srv), 0);
  zc_eps_close(c);
  CHECK_DONE("zmq_svc_restart");
}

/* ---- timeouts and bad arguments ---- */
static int t_api(int argc, char **argv) {
  (void)argc, (void)argv;
  server_args_t sa = {.bind = ANY_PORT, .threads = 2};
  char ep[256];
  pid_t srv = start_server(&sa, ep, sizeof ep);
  zc_eps_config_t cfg = {.svc.max_pending = 3, .max_msg = 1 << 20, .svc.chan.block_timeout_ms = 2000,
                         .svc.connect_timeout_ms = PEER_MS};
  zc_eps_t *c = zc_eps_connect(ep, &cfg);
  REQUIREF(c != NULL, "connect: %s", strerror(errno));
  CHECK_EQ(zc_eps_max_msg(c), (size_t)1 << 20);
  zc_svc_msg_t m;
  /* a call whose reply is late: ETIMEDOUT, and the late reply is dropped unseen */
  size_t n;
  void *p = loan_msg(c, 0x51, &n);
  uint64_t t0 = now_ns();
  CHECK(zc_eps_call(c, p, n, T_SLOW, &m, 100) != 0 && errno == ETIMEDOUT);
  CHECK(now_ns() - t0 >= 100000000ull);
  CHECK(zc_eps_receive(c, &m, 0) != 0 && errno == EAGAIN);
  zc_svc_stats_t st;
  uint64_t until = now_ns() + PEER_NS;
  do { /* the reply comes about 300 ms later (more under load): dropped, never handed out */
    CHECK(zc_eps_receive(c, &m, 100) != 0 && errno == ETIMEDOUT);
    zc_eps_stats(c, &st);
  } while (st.dropped == 0 && now_ns() < until);
  CHECKF(st.dropped == 1 && st.pending == 0, "dropped %lu pending %lu", (unsigned long)st.dropped,
         (unsigned long)st.pending);
  /* max_pending: two held and one slow request wait; a fourth request is EAGAIN and its loan stays */
  uint64_t ids[3];
  for (int i = 0; i < 3; i++) {
    p = loan_msg(c, 0x60 + (uint64_t)i, &n);
    REQUIRE(zc_eps_request(c, p, n, i < 2 ? T_HOLD : T_SLOW, &ids[i]) == 0);
  }
  p = loan_msg(c, 0x70, &n);
  CHECK(zc_eps_request(c, p, n, 5, &ids[0]) != 0 && errno == EAGAIN);
  CHECK(zc_eps_abandon(c, ids[1]) == 0);
  CHECK(zc_eps_abandon(c, ids[1] ^ (1ull << 40)) != 0 && errno == EINVAL);
  REQUIREF(zc_eps_receive(c, &m, PEER_MS) == 0, "the slow reply: %s", strerror(errno));
  CHECK(m.kind == ZC_SVC_REPLY && m.id == ids[2] && check_msg(&m, 1) == 0x62);
  zc_svc_msg_t copy = m;
  CHECK(zc_eps_release(c, &m) == 0);
  CHECK(zc_eps_release(c, &copy) != 0 && errno == EINVAL); /* released already */
  copy.kind = ZC_SVC_REPLY;
  CHECK(zc_eps_release(c, &copy) != 0 && errno == EINVAL); /* a stale handle */
  copy.raw.handle = 12345;
  CHECK(zc_eps_release(c, &copy) != 0 && errno == EINVAL); /* a made-up one */
  CHECK(zc_eps_request(c, p, n, 5, &ids[2]) == 0); /* the loan stayed with the caller, room again */
  /* loans */
  char stack[64] __attribute__((aligned(16)));
  CHECK(zc_eps_send(c, stack + 32, 8, 1) != 0 && errno == EINVAL);
  void *plain = zc_malloc(256);
  CHECK(zc_eps_send(c, (char *)plain + 32, 8, 1) != 0 && errno == EINVAL);
  zc_free(plain);
  CHECK(zc_eps_loan(c, 0) == NULL && errno == EINVAL);
  CHECK(zc_eps_loan(c, (1 << 20) + 1) == NULL && errno == EMSGSIZE);
  p = zc_eps_loan(c, 100);
  CHECK(zc_eps_cancel(c, p) == 0);
  CHECK(zc_eps_cancel(c, p) != 0 && errno == EINVAL);
  p = zc_eps_loan(c, 100);
  CHECK(zc_eps_send(c, p, 101, 1) != 0 && errno == EMSGSIZE); /* and the loan is given back */
  CHECK(zc_eps_reply(c, &copy, p, 10, 1) != 0 && errno == EINVAL); /* copy is no request */
  /* endpoints */
  CHECK(zc_eps_connect("inproc://svc", NULL) == NULL && errno == EPROTONOSUPPORT);
  zc_eps_config_t quick = {.svc.connect_timeout_ms = 300};
  zc_eps_t *lonely = zc_eps_listen(ANY_PORT, NULL);
  char nobody[256];
  snprintf(nobody, sizeof nobody, "%s", zc_eps_endpoint(lonely));
  zc_eps_close(lonely); /* a port where nobody listens now */
  t0 = now_ns();
  CHECK(zc_eps_connect(nobody, &quick) == NULL && errno == ETIMEDOUT);
  CHECK(now_ns() - t0 >= 300000000ull);
  CHECK(zc_eps_listen(ep, NULL) == NULL && errno == EADDRINUSE);
  zc_eps_stats(c, &st);
  CHECKF(st.rejected == 0 && st.failed == 0, "rejected %lu failed %lu", (unsigned long)st.rejected,
         (unsigned long)st.failed);
  send_quit(c);
  CHECK_EQ(reap(srv), 0);
  zc_eps_close(c);
  CHECK_DONE("zmq_svc_api");
}

/* ---- bye: what a connector sent before it closed reaches the listener, even when the listener reads
 * the connection's end (the monitor's DISCONNECTED, which libzmq may queue before the connection's last
 * frames) before those frames: the example server's goodbye was lost that way under load ---- */
typedef struct bye_args_s {
  const char *ep;
  int go; /* pipe: a byte from the parent once it knows this peer */
} bye_args_t;

static int bye_client(void *arg) {
  const bye_args_t *a = arg;
  zc_eps_config_t cfg = {.svc.chan.block_timeout_ms = 20000, .svc.connect_timeout_ms = PEER_MS};
  zc_eps_t *c = zc_eps_connect(a->ep, &cfg);
  REQUIREF(c != NULL, "bye client connect %s: %s", a->ep, strerror(errno));
  char b;
  REQUIRE(read(a->go, &b, 1) == 1);
  size_t n;
  uint64_t id;
  void *p = loan_msg(c, 0xb1e00, &n);
  REQUIREF(zc_eps_request(c, p, n, 1, &id) == 0, "request: %s (%s)", strerror(errno), zc_eps_error(c));
  p = loan_msg(c, 0xb1e01, &n);
  REQUIREF(zc_eps_send(c, p, n, T_QUIT) == 0, "send: %s (%s)", strerror(errno), zc_eps_error(c));
  zc_eps_close(c); /* flushes both (linger: block_timeout_ms), then the connection ends */
  return 0;
}

static int t_bye(int argc, char **argv) {
  (void)argc, (void)argv;
  zc_eps_config_t cfg = {.svc.chan.block_timeout_ms = 20000};
  zc_eps_t *d = zc_eps_listen(ANY_PORT, &cfg);
  REQUIREF(d != NULL, "listen: %s", strerror(errno));
  char ep[256];
  snprintf(ep, sizeof ep, "%s", zc_eps_endpoint(d));
  int go[2];
  REQUIRE(pipe(go) == 0);
  bye_args_t a = {.ep = ep, .go = go[0]};
  pid_t pid = ZSPAWN(bye_client, &a, ep, go[0], -1);
  close(go[0]);
  wait_peers(d, 1); /* its HELLO: a known peer, as the example's client is after its calls */
  REQUIRE(write(go[1], "g", 1) == 1);
  close(go[1]);
  CHECK_EQ(reap(pid), 0); /* it sent both and closed */
  /* the end of its connection is read before its frames (zc_eps_peers reads the monitor only) */
  CHECKF(WAIT_UNTIL(zc_eps_peers(d) == 0, PEER_MS), "the closed client still counts as a peer");
  zc_svc_msg_t m;
  REQUIREF(zc_eps_receive(d, &m, PEER_MS) == 0, "the request sent before the close is lost: %s (%s)",
           strerror(errno), zc_eps_error(d));
  CHECKF(m.kind == ZC_SVC_REQUEST && check_msg(&m, 0) == 0xb1e00, "kind %d", m.kind);
  CHECK(zc_eps_loan_reply(d, &m, 16) == NULL && errno == EPIPE); /* nobody to answer */
  CHECK(zc_eps_release(d, &m) == 0);
  REQUIREF(zc_eps_receive(d, &m, PEER_MS) == 0, "the goodbye sent before the close is lost: %s (%s)",
           strerror(errno), zc_eps_error(d));
  CHECKF(m.kind == ZC_SVC_ONEWAY && m.type == T_QUIT && check_msg(&m, 0) == 0xb1e01, "kind %d type %u", m.kind,
         m.type);
  CHECK(zc_eps_release(d, &m) == 0);
  zc_svc_stats_t st;
  zc_eps_stats(d, &st);
  CHECKF(st.joined == 1 && st.left == 1 && st.peers == 0 && st.dropped == 0 && st.rejected == 0,
         "joined %lu left %lu peers %lu dropped %lu rejected %lu", (unsigned long)st.joined,
         (unsigned long)st.left, (unsigned long)st.peers, (unsigned long)st.dropped, (unsigned long)st.rejected);
  zc_eps_close(d);
  CHECK_DONE("zmq_svc_bye");
}

/* ---- heartbeat: a worker stopped (SIGSTOP) while it holds a request: no TCP event, the heartbeat
 * timeout drops its connection and the request FAILS, not before the timeout passed ---- */
static int t_heartbeat(int argc, char **argv) {
  (void)argc, (void)argv;
  zc_eps_config_t cfg = {.heartbeat_ms = HB_IVL_MS, .heartbeat_timeout_ms = HB_TIMEOUT_MS};
  zc_eps_t *d = zc_eps_listen(ANY_PORT, &cfg);
  REQUIRE(d != NULL);
  char ep[256];
  snprintf(ep, sizeof ep, "%s", zc_eps_endpoint(d));
  worker_args_t wa = {.ep = ep, .stop = 1};
  pid_t pid = ZSPAWN(worker_main, &wa, ep, -1, -1);
  wait_peers(d, 1);
  size_t n;
  void *p = loan_msg(d, 0x77 << 8, &n);
  uint64_t id;
  /* t0 precedes the stop (the worker stops once it holds this request), whatever the scheduling: the
   * connection cannot be dropped before t0 + the timeout less an interval (its last ping came after t0) */
  uint64_t t0 = now_ns();
  REQUIRE(zc_eps_request(d, p, n, 1, &id) == 0);
  int st;
  REQUIRE(waitpid(pid, &st, WUNTRACED) == pid && WIFSTOPPED(st));
  double stop_ms = (now_ns() - t0) / 1e6;
  zc_svc_msg_t m;
  REQUIREF(zc_eps_receive(d, &m, 30000) == 0, "no FAILED within 30 s: %s", strerror(errno));
  double ms = (now_ns() - t0) / 1e6;
  CHECKF(m.kind == ZC_SVC_FAILED && m.id == id && m.error == EPIPE, "kind %d error %d", m.kind, m.error);
  CHECKF(ms >= HB_TIMEOUT_MS - 2 * HB_IVL_MS, "FAILED %.0f ms after the request, before the %d ms heartbeat timeout could pass",
         ms, HB_TIMEOUT_MS);
  printf("heartbeat: the stopped worker's request FAILED %.0f ms after it was sent (stopped by %.0f ms; %d/%d ms)\n",
         ms, stop_ms, HB_IVL_MS, HB_TIMEOUT_MS);
  kill(pid, SIGKILL);
  CHECK_EQ(reap(pid), 128 + SIGKILL);
  zc_eps_close(d);
  CHECK_DONE("zmq_svc_heartbeat");
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {{"rr", t_rr}, {"workq", t_workq}, {"restart", t_restart},
                                    {"api", t_api}, {"heartbeat", t_heartbeat}, {"bye", t_bye},
                                    {NULL, NULL}};
  zspawn_main(argc, argv); /* a child started by ZSPAWN runs its function here and exits */
  return zc_run_case(argc, argv, cases);
}
