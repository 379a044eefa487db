/* The engine: an epoll event loop on the channel's fd. It reads each request in place (no copy), checks
 * it, and releases it so the producer can reuse the memory. Exits when the producer goes away.
 * Usage: example_consumer [socket path] */
#include "zcmem_channel.h"
#include "request.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : EXAMPLE_PATH;
  int lfd = zc_chan_listen(path);
  if (lfd < 0) {
    fprintf(stderr, "listen %s: %s\n", path, strerror(errno));
    return 1;
  }
  zc_chan_config_t cfg = {.setup_timeout_ms = 60000}; /* wait up to a minute for the web server */
  zc_chan_t *ch = zc_chan_accept(lfd, ZC_CHAN_CONSUMER, &cfg);
  close(lfd);
  unlink(path);
  if (ch == NULL) {
    fprintf(stderr, "accept: %s\n", strerror(errno));
    return 1;
  }
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN};
  epoll_ctl(ep, EPOLL_CTL_ADD, zc_chan_fd(ch), &ev);

  unsigned long count[REQ_TYPES] = {0}, bytes = 0, bad = 0, wakeups = 0;
  zc_chan_msg_t m[64];
  for (;;) {
    int n;
    while ((n = zc_chan_receive_batch(ch, m, 64, 0)) > 0) { /* everything that is waiting */
      for (int i = 0; i < n; i++) {
        const request_t *r = m[i].data; /* read in place: this is the producer's memory, read-only */
        if (m[i].type >= REQ_TYPES || m[i].len < sizeof *r || r->body_len != m[i].len - sizeof *r ||
            body_checksum((const unsigned char *)(r + 1), r->body_len) != r->checksum)
          bad++;
        else
          count[m[i].type]++;
        bytes += m[i].len;
      }
      zc_chan_release_batch(ch, m, n);
    }
    if (errno != EAGAIN) break;      /* EPIPE: the web server is gone */
    int armed = zc_chan_arm(ch);      /* ask for a wake-up on the fd, unless messages came meanwhile */
    if (armed < 0) break;
    if (armed == 0 && epoll_wait(ep, &ev, 1, -1) > 0) wakeups++;
  }
  printf("engine: GET %lu, POST %lu, LOG %lu, bad %lu, %.1f MiB read in place, %lu epoll wake-ups (%s)\n",
         count[REQ_GET], count[REQ_POST], count[REQ_LOG], bad, (double)bytes / (1 << 20), wakeups,
         errno == EPIPE ? "producer closed" : zc_chan_error(ch));
  zc_chan_close(ch);
  close(ep);
  return bad != 0;
}
