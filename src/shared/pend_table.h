/* The pending table: requests sent and awaiting their reply, in private memory. One module for the two
 * implementations of the service calls: the channel services (src/service, inside libzcmem) and the
 * ZeroMQ services (src/zmq, the separate zcmem_zmq library).
 *
 * A leaf: it includes only <stdint.h>, <string.h> and the public zcmem_service.h (for the FAILED notice both
 * implementations hand out), names no zcmem internal and no OS call, and is all static inline,
 * so each library compiles its own copy and neither links against the other for it (the core keeps no
 * dependency on libzmq; the ZeroMQ library does not reach into the core's internals). The caller owns
 * the entries' memory and serialises every call with its own lock.
 *
 * An id is gen << 32 | index. Generations start at 1 (no id is 0) and are bumped each time an entry is
 * freed, so an id matches once: a second reply, an old id, an id never given, or an id of another peer
 * (the entry records the peer's index and generation) all fail pend_match. Every field read from a reply
 * is the caller's copy; the table itself is never in shared memory.
 */
#ifndef ZC_PEND_TABLE_H
#define ZC_PEND_TABLE_H

#include <stdint.h>
#include <string.h>

#include "zcmem_service.h"

#define PEND_NONE UINT32_MAX

enum { PEND_FREE = 0, PEND_WAIT = 1, PEND_ABANDONED = 2 };

typedef struct pend_entry_s {
  uint32_t gen;      /* id = gen << 32 | index; never 0 */
  uint32_t state;    /* PEND_* */
  uint32_t peer, peer_gen;
  uint32_t next;     /* free list */
} pend_entry_t;

typedef struct pend_table_s {
  pend_entry_t *e;   /* cap entries, the caller's memory */
  uint32_t cap, free, n; /* n: entries in use (waiting or abandoned) */
} pend_table_t;

static inline void pend_init(pend_table_t *t, pend_entry_t *e, uint32_t cap) {
  t->e = e;
  t->cap = cap;
  t->n = 0;
  t->free = cap ? 0 : PEND_NONE;
  for (uint32_t i = 0; i < cap; i++) {
    e[i].gen = 1;
    e[i].state = PEND_FREE;
    e[i].next = i + 1 < cap ? i + 1 : PEND_NONE;
  }
}

/* The id the next pend_take will give, or 0 if the table is full (for a caller that must write the id
 * into the message before it knows the send went through). */
static inline uint64_t pend_next_id(const pend_table_t *t) {
  return t->free == PEND_NONE ? 0 : (uint64_t)t->e[t->free].gen << 32 | t->free;
}

/* A request to peer (index, generation) is outstanding: its id, or 0 if the table is full. */
static inline uint64_t pend_take(pend_table_t *t, uint32_t peer, uint32_t peer_gen) {
  uint32_t i = t->free;
  if (i == PEND_NONE) return 0;
  pend_entry_t *e = &t->e[i];
  t->free = e->next;
  e->state = PEND_WAIT;
  e->peer = peer;
  e->peer_gen = peer_gen;
  t->n++;
  return (uint64_t)e->gen << 32 | i;
}

static inline void pend_release_at(pend_table_t *t, uint32_t i) {
  pend_entry_t *e = &t->e[i];
  e->state = PEND_FREE;
  e->gen = e->gen + 1 ? e->gen + 1 : 1; /* an old id never matches again */
  e->next = t->free;
  t->free = i;
  t->n--;
}

/* Give back the entry of id, taken but never sent (the send failed). */
static inline void pend_cancel(pend_table_t *t, uint64_t id) { pend_release_at(t, (uint32_t)id); }

/* A reply under id came from peer (index, generation): -1 if it answers no outstanding request of that
 * peer (the caller closes the peer as hostile); else the entry is freed and the result is PEND_WAIT (hand
 * the reply out) or PEND_ABANDONED (its caller gave up: drop it). */
static inline int pend_match(pend_table_t *t, uint64_t id, uint32_t peer, uint32_t peer_gen) {
  uint32_t i = (uint32_t)id;
  if (i >= t->cap) return -1;
  pend_entry_t *e = &t->e[i];
  if (e->state == PEND_FREE || e->gen != (uint32_t)(id >> 32) || e->peer != peer || e->peer_gen != peer_gen) return -1;
  int st = (int)e->state;
  pend_release_at(t, i);
  return st;
}

/* The caller gives up waiting for id: its late reply will be dropped. 0, or -1 if id is not waiting. */
static inline int pend_abandon(pend_table_t *t, uint64_t id) {
  uint32_t i = (uint32_t)id;
  if (i >= t->cap || t->e[i].gen != (uint32_t)(id >> 32) || t->e[i].state != PEND_WAIT) return -1;
  t->e[i].state = PEND_ABANDONED;
  return 0;
}

/* Peer (index, generation) is gone: each of its outstanding requests is freed, once; failed(ctx, id) is
 * called for each one still waiting (not for abandoned ones). *count is the peer's number of outstanding
 * requests: the scan stops when it reaches 0. Returns how many were failed. */
static inline uint32_t pend_fail_peer(pend_table_t *t, uint32_t peer, uint32_t peer_gen, uint32_t *count,
                                      void (*failed)(void *ctx, uint64_t id), void *ctx) {
  uint32_t nfailed = 0;
  for (uint32_t i = 0; i < t->cap && *count != 0; i++) {
    pend_entry_t *e = &t->e[i];
    if (e->state == PEND_FREE || e->peer != peer || e->peer_gen != peer_gen) continue;
    if (e->state == PEND_WAIT) {
      failed(ctx, (uint64_t)e->gen << 32 | i);
      nfailed++;
    }
    pend_release_at(t, i);
    (*count)--;
  }
  return nfailed;
}

/* What each failed request becomes when its peer is gone (both implementations; pend_fail_peer with
 * pend_fail_one and a pend_fail_ctx_t). The request a blocked call waits for (call_id) gets the error in
 * *call_err instead of a notice; every other one becomes a ZC_SVC_FAILED notice, given to push (the
 * caller's set-aside queue, under the caller's lock). */
typedef struct pend_fail_ctx_s {
  uint64_t call_id;          /* the id a blocked call waits for (0: none) */
  int *call_err;             /* where that call's error goes */
  uint32_t peer, peer_gen;   /* the dead peer (its index and generation, for zc_svc_msg_peer) */
  int err;                   /* EPIPE, EPROTO ... */
  void (*push)(void *owner, const zc_svc_msg_t *m);
  void *owner;
} pend_fail_ctx_t;

static inline void pend_fail_one(void *ctx, uint64_t id) {
  pend_fail_ctx_t *f = ctx;
  if (id == f->call_id) {
    *f->call_err = f->err;
    return;
  }
  zc_svc_msg_t m;
  memset(&m, 0, sizeof m);
  m.kind = ZC_SVC_FAILED;
  m.error = f->err;
  m.id = id;
  m.peer = f->peer;
  m.peer_gen = f->peer_gen;
  f->push(f->owner, &m);
}

#endif /* ZC_PEND_TABLE_H */
