/* A hostile worker for the HTTP example's front end (http_server_* --worker-exe this), built once per
 * transport (HOSTILE_CHAN or not). HTTP_HOSTILE in the environment picks what it does:
 *
 *   stray   for each request: a complete response under a made-up id (another generation of the same
 *           connection slot), one under a slot that holds no request, then the true response, then one more
 *           piece under the true id after its last piece. The client must get exactly the true response.
 *   short   takes one request, answers with a message shorter than the header, then sleeps: the front end
 *           must call that a protocol violation, kill it, answer the request 503, and start another.
 *   huge    answers with a response that claims 1 GiB: over the socket it writes it in pieces, and the front
 *           end must stop it at HTTP_MAX_BODY + 4 KiB; over the channel it sends one message longer than
 *           HTTP_MAX_BODY + 4 KiB (its pages untouched), which the front end must refuse without writing a
 *           byte of it. Either way: kill, replace, close that client's connection.
 */
#define _GNU_SOURCE
#include "http_proto.h"
#include "transport.h"
#ifdef HOSTILE_CHAN
#include "zcmem_channel.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int respond(tp_worker_t *w, uint64_t id, const char *body) {
  char buf[256];
  int n = snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s", strlen(body), body);
  tp_resp_t r;
  size_t room;
  uint8_t *p;
  if (tp_resp_begin(w, &r, id, (uint64_t)n) != 0 || (p = tp_resp_room(&r, &room)) == NULL || room < (size_t)n) return -1;
  memcpy(p, buf, (size_t)n);
  return tp_resp_wrote(&r, (size_t)n) != 0 ? -1 : tp_resp_end(&r);
}

static int short_message(int argc, char **argv) {
#ifdef HOSTILE_CHAN
  zc_chan_t *req = zc_chan_open(atoi(argv[0]), ZC_CHAN_CONSUMER, NULL);
  zc_chan_t *resp = req ? zc_chan_open(atoi(argv[1]), ZC_CHAN_PRODUCER, NULL) : NULL;
  zc_chan_msg_t m;
  if (resp == NULL || zc_chan_receive(req, &m, -1) != 0) return 1;
  void *p = zc_chan_loan(resp, 8);
  if (p == NULL) return 1;
  memset(p, 0x5a, 8);
  zc_chan_send(resp, p, 8, 0);
#else
  int fd = atoi(argv[0]);
  char b[TP_MAX_MSG];
  if (read(fd, b, sizeof b) <= 0) return 1;
  if (write(fd, "ZZZZZZZZ", 8) != 8) return 1;
#endif
  for (;;) pause(); /* the front end must end this */
}

#ifdef HOSTILE_CHAN
/* One response message of HTTP_MAX_BODY + 4 KiB + 1 MiB bytes: only the header and the HTTP head written. */
static int huge_message(int argc, char **argv) {
  zc_chan_t *req = zc_chan_open(atoi(argv[0]), ZC_CHAN_CONSUMER, NULL);
  zc_chan_t *resp = req ? zc_chan_open(atoi(argv[1]), ZC_CHAN_PRODUCER, NULL) : NULL;
  zc_chan_msg_t m;
  tp_hdr_t h;
  if (resp == NULL || zc_chan_receive(req, &m, -1) != 0 || zc_chan_copy(&m, 0, &h, sizeof h) != 0) return 1;
  size_t n = TP_HDR + HTTP_MAX_BODY + 4096 + ((size_t)1 << 20);
  uint8_t *p = zc_chan_loan(resp, n);
  if (p == NULL) return 1;
  h.flags = TP_LAST;
  memcpy(p, &h, sizeof h);
  const char *head = "HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n";
  memcpy(p + TP_HDR, head, strlen(head));
  if (zc_chan_send(resp, p, n, 0) != 0) return 1;
  for (;;) pause(); /* the front end must end this */
}
#endif

int main(int argc, char **argv) {
  const char *mode = getenv("HTTP_HOSTILE");
  if (argc < 3 || strcmp(argv[1], "--worker") != 0 || mode == NULL) return 2;
  argc -= 2, argv += 2;
  if (strcmp(mode, "short") == 0) return short_message(argc, argv);
#ifdef HOSTILE_CHAN
  if (strcmp(mode, "huge") == 0) return huge_message(argc, argv);
#endif
  tp_worker_t *w = tp_worker_open(argc, argv);
  if (w == NULL) return 1;
  tp_request_t q;
  while (tp_worker_recv(w, &q) == 0) {
    uint64_t id = q.id;
    tp_worker_done(w, &q);
    if (strcmp(mode, "stray") == 0) {
      if (respond(w, id ^ (1ull << 32), "stray: another generation\n") != 0 ||
          respond(w, (id & ~0xffffffffull) | 4000u, "stray: a slot without a request\n") != 0 ||
          respond(w, id, "true\n") != 0 || respond(w, id, "stray: after the last piece\n") != 0)
        break;
    } else if (strcmp(mode, "huge") == 0) {
      static uint8_t chunk[TP_MAX_PAYLOAD];
      const char *head = "HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n";
      memset(chunk, 'h', sizeof chunk);
      memcpy(chunk, head, strlen(head));
      tp_resp_t r;
      tp_resp_begin(w, &r, id, strlen(head) + (1ull << 30));
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
