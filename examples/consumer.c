/* The engine: an epoll event loop on the channel's fd. It reads each request in place (no copy of the
 * body), checks it, and releases it so the producer can reuse the memory. Exits when the producer goes
 * away (0), or on any other error (1, with the reason).
 *
 * The request lives in the producer's memory, which the producer can change while we read it. So the
 * header is copied out once (zc_chan_copy) and only the copy is checked and used: a body_len checked
 * against m.len is never read again from shared memory. The body is read in place, within that length.
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
  int err = 0;
  while (err == 0) {
    int n;
    while ((n = zc_chan_receive_batch(ch, m, 64, 0)) > 0) { /* everything that is waiting */
      for (int i = 0; i < n; i++) {
        request_t r; /* the header, copied once: the only one we check and use */
        if (m[i].type >= REQ_TYPES || zc_chan_copy(&m[i], 0, &r, sizeof r) != 0 || r.body_len != m[i].len - sizeof r ||
            body_checksum((const unsigned char *)m[i].data + sizeof r, r.body_len) != r.checksum)
          bad++;
        else
          count[m[i].type]++;
        bytes += m[i].len;
      }
      if (zc_chan_release_batch(ch, m, n) != 0) break;
    }
    if (errno == EAGAIN) {
      int armed = zc_chan_arm(ch); /* ask for a wake-up on the fd, unless messages came meanwhile */
      if (armed == 0 && epoll_wait(ep, &ev, 1, -1) > 0) wakeups++;
      if (armed >= 0 || errno == EINTR) continue;
    }
    err = errno; /* EPIPE: the web server is gone; anything else is a failure */
  }
  unsigned long total = count[REQ_GET] + count[REQ_POST] + count[REQ_LOG];
  printf("engine: %lu requests (GET %lu, POST %lu, LOG %lu), bad %lu, %.1f MiB read in place, %lu epoll wake-ups\n",
         total, count[REQ_GET], count[REQ_POST], count[REQ_LOG], bad, (double)bytes / (1 << 20), wakeups);
  if (err != EPIPE) fprintf(stderr, "engine: stopped by %s (%s)\n", strerror(err), zc_chan_error(ch));
  zc_chan_close(ch);
  close(ep);
  return bad != 0 || err != EPIPE;
}
