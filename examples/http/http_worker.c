/* A worker process of the HTTP example: takes requests from the front end, builds each response straight
 * into the transport's buffer (with the channel: one reply loan of shared memory, which the front end
 * writes to the client from) and sends it back as the answer to its request.
 *
 * Routes:  GET /N          N bytes of http_pattern (N <= 64 MiB)
 *          GET /guess/G/N  the same, but the response is begun with a guess of G bytes instead of its size
 *                          (for the tests: the channel's loan is grown or shrunk on the way)
 *          GET /pid        this worker's process id
 *          GET /sleep/MS   waits MS milliseconds (<= 10 s), then answers (for the tests: a request in flight)
 *          POST /echo      the request body
 * anything else gets 400, 404 or 405; never a crash.
 *
 * The request is untrusted input in memory the front end may still change: its length comes from the
 * transport (checked, private); the request line is copied out once into private memory and parsed there;
 * the body is located by a bounded scan and copied to the response within that length.
 */
#define _GNU_SOURCE
#include "http_proto.h"
#include "transport.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int http_worker_main(int argc, char **argv);

#define PATTERN_RUN ((size_t)64 << 10)
static uint8_t pattern[HTTP_PATTERN_PERIOD + PATTERN_RUN]; /* any PATTERN_RUN bytes of it are one memcpy */

/* Write n bytes through the response window, from src or (src NULL) from the pattern at body offset off. */
static int put(tp_resp_t *r, const uint8_t *src, uint64_t off, uint64_t n) {
  while (n > 0) {
    size_t room;
    uint8_t *p = tp_resp_room(r, &room);
    if (p == NULL) return -1;
    size_t k = n < room ? (size_t)n : room;
    if (src == NULL && k > PATTERN_RUN) k = PATTERN_RUN;
    memcpy(p, src ? src : pattern + off % HTTP_PATTERN_PERIOD, k);
    if (src) src += k;
    off += k;
    n -= k;
    if (tp_resp_wrote(r, k) != 0) return -1;
  }
  return 0;
}

/* guess: the size to begin the response with (0: the true size). */
static int respond_guess(tp_worker_t *w, tp_request_t *q, int status, const char *reason, const uint8_t *body,
                         uint64_t len, uint64_t guess) {
  char head[256];
  int hl = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nServer: zcmem-example\r\nContent-Length: %llu\r\n%s\r\n",
                    status, reason, (unsigned long long)len,
                    q->flags & HTTP_REQ_CLOSE ? "Connection: close\r\n" : "");
  tp_resp_t r;
  if (tp_resp_begin(w, &r, q, guess ? guess : (uint64_t)hl + len) != 0) return -1;
  if (put(&r, (const uint8_t *)head, 0, (uint64_t)hl) != 0 || put(&r, body, 0, len) != 0) return -1;
  return tp_resp_end(&r);
}

static int respond(tp_worker_t *w, tp_request_t *q, int status, const char *reason, const uint8_t *body,
                   uint64_t len) {
  return respond_guess(w, q, status, reason, body, len, 0);
}

static int error_page(tp_worker_t *w, tp_request_t *q, int status, const char *reason) {
  char b[64];
  int n = snprintf(b, sizeof b, "%d %s\n", status, reason);
  return respond(w, q, status, reason, (const uint8_t *)b, (uint64_t)n);
}

/* Decimal digits s[0 .. n) into *v (<= max); 0 if that is all s holds, -1 otherwise. */
static int parse_u64(const char *s, size_t n, uint64_t max, uint64_t *v) {
  if (n == 0 || n > 20) return -1;
  uint64_t x = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    if (x > (max - (uint64_t)(s[i] - '0')) / 10) return -1;
    x = x * 10 + (uint64_t)(s[i] - '0');
  }
  *v = x;
  return 0;
}

static int handle(tp_worker_t *w, tp_request_t *q) {
  /* The request line, copied once: "METHOD SP TARGET SP HTTP/1.x" up to the first CR or LF. */
  char line[1024];
  size_t n = 0;
  uint32_t len = q->len;
  while (n < len && n < sizeof line - 1) {
    char c = (char)q->data[n];
    if (c == '\r' || c == '\n') break;
    line[n++] = c;
  }
  line[n] = 0;
  char *sp1 = memchr(line, ' ', n);
  char *sp2 = sp1 ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - line)) : NULL;
  if (sp1 == NULL || sp2 == NULL || sp1 == line || sp2 == sp1 + 1) return error_page(w, q, 400, "Bad Request");
  const char *target = sp1 + 1;
  size_t tlen = (size_t)(sp2 - target);
  size_t mlen = (size_t)(sp1 - line);
  int get = mlen == 3 && memcmp(line, "GET", 3) == 0, post = mlen == 4 && memcmp(line, "POST", 4) == 0;
  if (!get && !post) return error_page(w, q, 405, "Method Not Allowed");
  uint64_t v;
  if (post) {
    if (tlen != 5 || memcmp(target, "/echo", 5) != 0) return error_page(w, q, 404, "Not Found");
    /* The body: what follows the first blank line, within the request's private length. */
    size_t i = 0;
    while (i + 4 <= len && memcmp(q->data + i, "\r\n\r\n", 4) != 0) i++;
    if (i + 4 > len) return error_page(w, q, 400, "Bad Request");
    return respond(w, q, 200, "OK", q->data + i + 4, len - (i + 4));
  }
  if (tlen == 4 && memcmp(target, "/pid", 4) == 0) {
    char b[32];
    int k = snprintf(b, sizeof b, "%d\n", (int)getpid());
    return respond(w, q, 200, "OK", (const uint8_t *)b, (uint64_t)k);
  }
  if (tlen > 7 && memcmp(target, "/sleep/", 7) == 0 && parse_u64(target + 7, tlen - 7, HTTP_MAX_SLEEP_MS, &v) == 0) {
    struct timespec ts = {(time_t)(v / 1000), (long)(v % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    return respond(w, q, 200, "OK", (const uint8_t *)"slept\n", 6);
  }
  if (tlen > 7 && memcmp(target, "/guess/", 7) == 0) { /* /guess/G/N */
    const char *g = target + 7, *sl = memchr(g, '/', tlen - 7);
    uint64_t guess;
    if (sl && parse_u64(g, (size_t)(sl - g), HTTP_MAX_BODY, &guess) == 0 && guess > 0 &&
        parse_u64(sl + 1, tlen - 7 - (size_t)(sl + 1 - g), HTTP_MAX_BODY, &v) == 0)
      return respond_guess(w, q, 200, "OK", NULL, v, guess);
    return error_page(w, q, 404, "Not Found");
  }
  if (tlen > 1 && target[0] == '/' && parse_u64(target + 1, tlen - 1, HTTP_MAX_BODY, &v) == 0)
    return respond(w, q, 200, "OK", NULL, v);
  return error_page(w, q, 404, "Not Found");
}

int http_worker_main(int argc, char **argv) {
  for (size_t i = 0; i < sizeof pattern; i++) pattern[i] = http_pattern(i);
  tp_worker_t *w = tp_worker_open(argc, argv);
  if (w == NULL) {
    fprintf(stderr, "http worker %d: cannot open the %s transport: %s\n", (int)getpid(), tp_name, strerror(errno));
    return 1;
  }
  tp_request_t q;
  while (tp_worker_recv(w, &q) == 0) { /* -1: the front end is gone */
    int rc = handle(w, &q);
    tp_worker_done(w, &q);
    if (rc != 0) break;
  }
  tp_worker_close(w);
  return 0;
}
