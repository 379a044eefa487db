/* The channel services over both transports: the endpoint string picks the local service (a name or a
 * socket path: zcmem_service.h) or ZeroMQ (tcp://, ipc://: zsvc_conn.c, zsvc_msg.c), and every call goes to
 * the one picked. Nothing else happens here. */
#include "zsvc_internal.h"

#include <stdlib.h>
#include <string.h>

struct zc_eps_s {
  zc_ep_kind_t kind;
  zc_svc_t *svc;
  zs_t *z;
  char name[]; /* the local service's name */
};

static zc_eps_t *wrap(zc_svc_t *svc, zs_t *z, const char *name) {
  if (svc == NULL && z == NULL) return NULL;
  size_t n = strlen(name) + 1;
  zc_eps_t *e = malloc(sizeof *e + n);
  if (e == NULL) {
    int err = errno;
    if (svc != NULL) zc_svc_close(svc);
    if (z != NULL) zs_close(z);
    errno = err;
    return NULL;
  }
  e->kind = z != NULL ? ZC_EP_ZMQ : ZC_EP_CHANNEL;
  e->svc = svc;
  e->z = z;
  memcpy(e->name, name, n);
  return e;
}

static zc_eps_t *open_eps(const char *endpoint, const zc_eps_config_t *cfg, int listen) {
  if (endpoint == NULL) return errno = EINVAL, NULL;
  if (zc_ep_kind_of(endpoint) == ZC_EP_ZMQ) return wrap(NULL, zs_open(endpoint, cfg, listen), "");
  const zc_svc_config_t *sc = cfg != NULL ? &cfg->svc : NULL;
  return wrap(listen ? zc_svc_listen(endpoint, sc) : zc_svc_connect(endpoint, sc), NULL, endpoint);
}

zc_eps_t *zc_eps_listen(const char *endpoint, const zc_eps_config_t *cfg) { return open_eps(endpoint, cfg, 1); }
zc_eps_t *zc_eps_connect(const char *endpoint, const zc_eps_config_t *cfg) { return open_eps(endpoint, cfg, 0); }

void zc_eps_close(zc_eps_t *e) {
  if (e == NULL) return;
  if (e->z != NULL)
    zs_close(e->z);
  else
    zc_svc_close(e->svc);
  free(e);
}

zc_ep_kind_t zc_eps_kind(zc_eps_t *e) { return e ? e->kind : (zc_ep_kind_t)0; }
const char *zc_eps_endpoint(zc_eps_t *e) { return e == NULL ? NULL : e->z != NULL ? e->z->endpoint : e->name; }

/* A NULL endpoint takes the service's branch with a NULL service, which every zc_svc_* call refuses (EINVAL). */
#define DISPATCH(e, svc_call, zmq_call) ((e) != NULL && (e)->z != NULL ? (zmq_call) : (svc_call))
#define EPS_SVC(e) ((e) != NULL ? (e)->svc : NULL)

int zc_eps_fd(zc_eps_t *e) { return DISPATCH(e, zc_svc_fd(EPS_SVC(e)), zs_fd(e->z)); }
int zc_eps_arm_space(zc_eps_t *e) { return DISPATCH(e, zc_svc_arm_space(EPS_SVC(e)), zs_arm_space(e->z)); }
int zc_eps_peers(zc_eps_t *e) { return DISPATCH(e, zc_svc_peers(EPS_SVC(e)), zs_peers(e->z)); }
void *zc_eps_loan(zc_eps_t *e, size_t n) { return DISPATCH(e, zc_svc_loan(EPS_SVC(e), n), zs_loan(e->z, n)); }
size_t zc_eps_max_msg(zc_eps_t *e) { return DISPATCH(e, zc_svc_max_msg(EPS_SVC(e)), (size_t)e->z->max_msg); }
void *zc_eps_loan_reply(zc_eps_t *e, const zc_svc_msg_t *req, size_t n) {
  return DISPATCH(e, zc_svc_loan_reply(EPS_SVC(e), req, n), zs_loan_reply(e->z, req, n));
}
int zc_eps_send(zc_eps_t *e, void *p, size_t len, uint32_t type) {
  return DISPATCH(e, zc_svc_send(EPS_SVC(e), p, len, type), zs_send(e->z, p, len, type));
}
int zc_eps_request(zc_eps_t *e, void *p, size_t len, uint32_t type, uint64_t *id) {
  return DISPATCH(e, zc_svc_request(EPS_SVC(e), p, len, type, id), zs_request(e->z, p, len, type, id));
}
int zc_eps_reply(zc_eps_t *e, zc_svc_msg_t *req, void *p, size_t len, uint32_t type) {
  return DISPATCH(e, zc_svc_reply(EPS_SVC(e), req, p, len, type), zs_reply(e->z, req, p, len, type));
}
int zc_eps_cancel(zc_eps_t *e, void *p) { return DISPATCH(e, zc_svc_cancel(EPS_SVC(e), p), zs_cancel(e->z, p)); }
int zc_eps_call(zc_eps_t *e, void *p, size_t len, uint32_t type, zc_svc_msg_t *reply, int timeout_ms) {
  return DISPATCH(e, zc_svc_call(EPS_SVC(e), p, len, type, reply, timeout_ms), zs_call(e->z, p, len, type, reply, timeout_ms));
}
int zc_eps_abandon(zc_eps_t *e, uint64_t id) { return DISPATCH(e, zc_svc_abandon(EPS_SVC(e), id), zs_abandon(e->z, id)); }
int zc_eps_receive(zc_eps_t *e, zc_svc_msg_t *m, int timeout_ms) {
  return DISPATCH(e, zc_svc_receive(EPS_SVC(e), m, timeout_ms), zs_receive(e->z, m, timeout_ms));
}
int zc_eps_release(zc_eps_t *e, zc_svc_msg_t *m) { return DISPATCH(e, zc_svc_release(EPS_SVC(e), m), zs_release(e->z, m)); }
const char *zc_eps_error(zc_eps_t *e) { return DISPATCH(e, zc_svc_error(EPS_SVC(e)), (const char *)e->z->err); }

void zc_eps_stats(zc_eps_t *e, zc_svc_stats_t *out) {
  if (e != NULL && e->z != NULL)
    zs_stats(e->z, out);
  else
    zc_svc_stats(EPS_SVC(e), out);
}
