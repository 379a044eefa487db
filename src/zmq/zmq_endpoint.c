/* One message API over both transports: the endpoint string picks the shared-memory channel or ZeroMQ,
 * and every call goes to the one picked. Nothing else happens here: errors, stats and semantics are the
 * transport's own (zcmem_channel.h, and zcmem_zmq.h for what differs). */
#include "zmq_internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct zc_ep_s {
  zc_ep_kind_t kind;
  zc_chan_t *ch;
  zc_zmq_t *z;
  char path[]; /* the channel's path */
};

zc_ep_kind_t zc_ep_kind_of(const char *endpoint) {
  static const char *const zmq_schemes[] = {"tcp://", "ipc://", "inproc://"};
  for (size_t i = 0; endpoint != NULL && i < sizeof zmq_schemes / sizeof zmq_schemes[0]; i++)
    if (strncmp(endpoint, zmq_schemes[i], strlen(zmq_schemes[i])) == 0) return ZC_EP_ZMQ;
  return ZC_EP_CHANNEL;
}

static zc_ep_t *wrap(zc_ep_kind_t kind, zc_chan_t *ch, zc_zmq_t *z, const char *path) {
  if (ch == NULL && z == NULL) return NULL;
  zc_ep_t *e = malloc(sizeof *e + strlen(path) + 1);
  if (e == NULL) {
    int err = errno;
    if (ch != NULL) zc_chan_close(ch);
    if (z != NULL) zc_zmq_close(z);
    errno = err;
    return NULL;
  }
  e->kind = kind;
  e->ch = ch;
  e->z = z;
  memcpy(e->path, path, strlen(path) + 1);
  return e;
}

zc_ep_t *zc_ep_listen(const char *endpoint, zc_chan_role_t role, const zc_zmq_config_t *cfg) {
  if (endpoint == NULL) {
    errno = EINVAL;
    return NULL;
  }
  if (zc_ep_kind_of(endpoint) == ZC_EP_ZMQ) return wrap(ZC_EP_ZMQ, NULL, zc_zmq_bind(endpoint, role, cfg), "");
  int lfd = zc_chan_listen(endpoint);
  if (lfd < 0) return NULL;
  zc_chan_t *ch = zc_chan_accept(lfd, role, cfg != NULL ? &cfg->chan : NULL);
  int err = errno;
  close(lfd);
  unlink(endpoint);
  errno = err;
  return wrap(ZC_EP_CHANNEL, ch, NULL, endpoint);
}

zc_ep_t *zc_ep_connect(const char *endpoint, zc_chan_role_t role, const zc_zmq_config_t *cfg) {
  if (endpoint == NULL) {
    errno = EINVAL;
    return NULL;
  }
  if (zc_ep_kind_of(endpoint) == ZC_EP_ZMQ) return wrap(ZC_EP_ZMQ, NULL, zc_zmq_connect(endpoint, role, cfg), "");
  return wrap(ZC_EP_CHANNEL, zc_chan_connect(endpoint, role, cfg != NULL ? &cfg->chan : NULL), NULL, endpoint);
}

/* Fan-out subscriber. Channel: zc_chan_connect as a consumer (the publisher's zc_pub_accept takes it).
 * ZeroMQ: zc_zmq_sub_connect. */
zc_ep_t *zc_ep_subscribe(const char *endpoint, const zc_zmq_config_t *cfg) {
  if (endpoint == NULL) {
    errno = EINVAL;
    return NULL;
  }
  if (zc_ep_kind_of(endpoint) == ZC_EP_ZMQ) return wrap(ZC_EP_ZMQ, NULL, zc_zmq_sub_connect(endpoint, cfg), "");
  return wrap(ZC_EP_CHANNEL, zc_chan_connect(endpoint, ZC_CHAN_CONSUMER, cfg != NULL ? &cfg->chan : NULL), NULL,
              endpoint);
}

uint64_t zc_ep_missed(zc_ep_t *e) { return e != NULL && e->kind == ZC_EP_ZMQ ? zc_zmq_missed(e->z) : 0; }

void zc_ep_close(zc_ep_t *e) {
  if (e == NULL) return;
  if (e->kind == ZC_EP_ZMQ)
    zc_zmq_close(e->z);
  else
    zc_chan_close(e->ch);
  free(e);
}

zc_ep_kind_t zc_ep_kind(zc_ep_t *e) { return e ? e->kind : (zc_ep_kind_t)0; }
const char *zc_ep_endpoint(zc_ep_t *e) {
  return e == NULL ? NULL : e->kind == ZC_EP_ZMQ ? zc_zmq_endpoint(e->z) : e->path;
}

/* A NULL endpoint takes the channel's branch with a NULL channel, which every zc_chan_* call refuses (EINVAL). */
#define DISPATCH(e, chan_call, zmq_call) ((e) != NULL && (e)->kind == ZC_EP_ZMQ ? (zmq_call) : (chan_call))
#define EP_CH(e) ((e) != NULL ? (e)->ch : NULL)

void *zc_ep_loan(zc_ep_t *e, size_t n) { return DISPATCH(e, zc_chan_loan(EP_CH(e), n), zc_zmq_loan(e->z, n)); }
int zc_ep_send(zc_ep_t *e, void *p, size_t len, uint32_t type) {
  return DISPATCH(e, zc_chan_send(EP_CH(e), p, len, type), zc_zmq_send(e->z, p, len, type));
}
int zc_ep_send_batch(zc_ep_t *e, const zc_chan_msg_t *msgs, int n) {
  return DISPATCH(e, zc_chan_send_batch(EP_CH(e), msgs, n), zc_zmq_send_batch(e->z, msgs, n));
}
int zc_ep_cancel(zc_ep_t *e, void *p) { return DISPATCH(e, zc_chan_cancel(EP_CH(e), p), zc_zmq_cancel(e->z, p)); }
long zc_ep_collect(zc_ep_t *e) { return DISPATCH(e, zc_chan_collect(EP_CH(e)), zc_zmq_collect(e->z)); }
int zc_ep_receive(zc_ep_t *e, zc_chan_msg_t *out, int timeout_ms) {
  return DISPATCH(e, zc_chan_receive(EP_CH(e), out, timeout_ms), zc_zmq_receive(e->z, out, timeout_ms));
}
int zc_ep_receive_batch(zc_ep_t *e, zc_chan_msg_t *out, int max, int timeout_ms) {
  return DISPATCH(e, zc_chan_receive_batch(EP_CH(e), out, max, timeout_ms),
                  zc_zmq_receive_batch(e->z, out, max, timeout_ms));
}
int zc_ep_release(zc_ep_t *e, const zc_chan_msg_t *m) {
  return DISPATCH(e, zc_chan_release(EP_CH(e), m), zc_zmq_release(e->z, m));
}
int zc_ep_release_batch(zc_ep_t *e, const zc_chan_msg_t *msgs, int n) {
  return DISPATCH(e, zc_chan_release_batch(EP_CH(e), msgs, n), zc_zmq_release_batch(e->z, msgs, n));
}
int zc_ep_fd(zc_ep_t *e) { return DISPATCH(e, zc_chan_fd(EP_CH(e)), zc_zmq_fd(e->z)); }
int zc_ep_arm(zc_ep_t *e) { return DISPATCH(e, zc_chan_arm(EP_CH(e)), zc_zmq_arm(e->z)); }
const char *zc_ep_error(zc_ep_t *e) { return DISPATCH(e, zc_chan_error(EP_CH(e)), zc_zmq_error(e->z)); }

void zc_ep_stats(zc_ep_t *e, zc_chan_stats_t *out) {
  if (e != NULL && e->kind == ZC_EP_ZMQ)
    zc_zmq_stats(e->z, out);
  else
    zc_chan_stats(EP_CH(e), out);
}
