/* A hostile worker for the HTTP example's front end (http_server_* --worker-exe this), built once per
 * transport (HOSTILE_CHAN or not). HTTP_HOSTILE in the environment picks what it does:
 *
 *   stray   channel: joins the pool by hand (the service handshake over raw channels, as the library
 *           would never let it) and answers each request with a reply under a forged id (another
 *           generation of the request's pending entry): the library must close its connection as a
 *           protocol violation and fail the request (503), and the front end kill it and start another.
 *           socket: for each request a complete response under a made-up id (another generation), one
 *           under an id never given, then the true response, then one more piece under the true id after
 *           its last piece. The client must get exactly the true response; the rest is dropped.
 *   short   takes one request, answers with a message shorter than the header (channel: the service
 *           header, by hand), then sleeps: the front end must call that a protocol violation, kill it,
 *           answer the request 503, and start another.
 *   huge    answers with a response that claims 1 GiB: over the socket it writes it in pieces, and the front
 *           end must stop it at HTTP_MAX_BODY + 4 KiB; over the channel it replies with one message longer
 *           than HTTP_MAX_BODY + 4 KiB (its pages untouched), which the front end must refuse without
 *           writing a byte of it. Either way: kill, replace, close that client's connection.
 */
#define _GNU_SOURCE
#include "http_proto.h"
#include "transport.h"
#ifdef HOSTILE_CHAN
#include "svc_internal.h" /* the service header and HELLO a hand-made peer must forge */
#include "zcmem_service.h"
#include <sys/socket.h>
#include <sys/un.h>
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int respond(tp_worker_t *w, tp_request_t *q, const char *body) {
  char buf[256];
  int n = snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s", strlen(body), body);
  tp_resp_t r;
  size_t room;
  uint8_t *p;
  if (tp_resp_begin(w, &r, q, (uint64_t)n) != 0 || (p = tp_resp_room(&r, &room)) == NULL || room < (size_t)n) return -1;
  memcpy(p, buf, (size_t)n);
  return tp_resp_wrote(&r, (size_t)n) != 0 ? -1 : tp_resp_end(&r);
}

#ifdef HOSTILE_CHAN
/* Join the pool named argv[0] as zc_svc_connect would, but with raw channels: out carries our replies,
 * in the front end's requests. */
static int raw_join(const char *name, zc_chan_t **out, zc_chan_t **in) {
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  int n = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "zcmem.%u.%s", (unsigned)geteuid(), name);
  socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), sv[2];
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, len) != 0) return -1;
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return -1;
  svc_hello_t h = {SVC_MAGIC, SVC_VERSION};
  struct iovec iov = {&h, sizeof h};
  union {
    struct cmsghdr c;
    char space[CMSG_SPACE(sizeof(int))];
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.space, .msg_controllen = sizeof ctl.space};
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &sv[1], sizeof(int));
  if (sendmsg(fd, &m, MSG_NOSIGNAL) != (ssize_t)sizeof h) return -1;
  close(sv[1]);
  zc_chan_config_t pc = {.setup_timeout_ms = 30000};
  uint32_t any = ZC_CHAN_ANY_UID;
  zc_chan_config_t cc = {.setup_timeout_ms = 30000, .peer_uids = &any, .n_peer_uids = 1};
  *out = zc_chan_open(fd, ZC_CHAN_PRODUCER, &pc);
  *in = *out ? zc_chan_open(sv[0], ZC_CHAN_CONSUMER, &cc) : NULL;
  return *in ? 0 : -1;
}

/* One message of len bytes (at least the loan of 64) of kind REPLY: a header with id, or only len bytes
 * of it when len is shorter than a header. */
static int raw_reply(zc_chan_t *out, uint64_t id, size_t len, const char *body) {
  char *p = zc_chan_loan(out, len < 64 ? 64 : len);
  if (p == NULL) return -1;
  svc_hdr_t h = {id, 0, 0};
  memcpy(p, &h, len < sizeof h ? len : sizeof h);
  if (len > sizeof h && body) memcpy(p + sizeof h, body, len - sizeof h);
  return zc_chan_send(out, p, len, ZC_SVC_REPLY);
}

static int chan_raw(int argc, char **argv, int shortmsg) {
  zc_chan_t *out, *in;
  if (argc < 1 || raw_join(argv[0], &out, &in) != 0) return 1;
  zc_chan_msg_t m;
  svc_hdr_t h;
  if (zc_chan_receive(in, &m, -1) != 0 || zc_chan_copy(&m, 0, &h, sizeof h) != 0) return 1;
  if (shortmsg) {
    raw_reply(out, h.id, 8, NULL);
  } else { /* another generation of the same pending entry: never a request of this connection */
    static const char stray[] = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nstray\n";
    raw_reply(out, h.id ^ (1ull << 32), sizeof h + sizeof stray - 1, stray);
  }
  for (;;) pause(); /* the front end must end this */
}

/* One reply of HTTP_MAX_BODY + 4 KiB + 1 MiB bytes: only the HTTP head written. */
static int huge_message(int argc, char **argv) {
  zc_svc_config_t c;
  memset(&c, 0, sizeof c);
  c.connect_timeout_ms = 30000;
  c.chan.setup_timeout_ms = 30000;
  zc_svc_t *s = argc >= 1 ? zc_svc_connect(argv[0], &c) : NULL;
  zc_svc_msg_t m;
  if (s == NULL || zc_svc_receive(s, &m, -1) != 0) return 1;
  size_t n = HTTP_MAX_BODY + 4096 + ((size_t)1 << 20);
  char *p = zc_svc_loan_reply(s, &m, n);
  if (p == NULL) return 1;
  const char *head = "HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n";
  memcpy(p, head, strlen(head));
  if (zc_svc_reply(s, &m, p, n, 0) != 0) return 1;
  for (;;) pause(); /* the front end must end this */
}
#endif

int main(int argc, char **argv) {
  const char *mode = getenv("HTTP_HOSTILE");
  if (argc < 3 || strcmp(argv[1], "--worker") != 0 || mode == NULL) return 2;
  argc -= 2, argv += 2;
#ifdef HOSTILE_CHAN
  if (strcmp(mode, "short") == 0 || strcmp(mode, "stray") == 0) return chan_raw(argc, argv, strcmp(mode, "short") == 0);
  if (strcmp(mode, "huge") == 0) return huge_message(argc, argv);
#else
  if (strcmp(mode, "short") == 0) {
    int fd = atoi(argv[0]);
    char b[TP_MAX_MSG];
    if (read(fd, b, sizeof b) <= 0) return 1;
    if (write(fd, "ZZZZZZZZ", 8) != 8) return 1;
    for (;;) pause(); /* the front end must end this */
  }
#endif
  tp_worker_t *w = tp_worker_open(argc, argv);
  if (w == NULL) return 1;
  tp_request_t q;
  while (tp_worker_recv(w, &q) == 0) {
    if (strcmp(mode, "stray") == 0) { /* socket: forge the ids in the request's private part */
      uint64_t id, forged;
      memcpy(&id, q.priv, sizeof id);
      tp_request_t other = q, never = q;
      forged = id ^ (1ull << 32);
      memcpy(other.priv, &forged, sizeof forged);
      forged = (id & ~0xffffffffull) | 4000u;
      memcpy(never.priv, &forged, sizeof forged);
      if (respond(w, &other, "stray: another generation\n") != 0 || respond(w, &never, "stray: an id never given\n") != 0 ||
          respond(w, &q, "true\n") != 0 || respond(w, &q, "stray: after the last piece\n") != 0)
        break;
      tp_worker_done(w, &q);
    } else if (strcmp(mode, "huge") == 0) {
      static uint8_t chunk[TP_MAX_PAYLOAD];
      const char *head = "HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n";
      memset(chunk, 'h', sizeof chunk);
      memcpy(chunk, head, strlen(head));
      tp_resp_t r;
      tp_resp_begin(w, &r, &q, strlen(head) + (1ull << 30));
      uint8_t *p;
      size_t room;
      while ((p = tp_resp_room(&r, &room)) != NULL) { /* until the front end kills us or goes away */
        memcpy(p, chunk, room);
        if (tp_resp_wrote(&r, room) != 0) break;
      }
      break;
    }
  }
  return 0;
}
