/* A stage barrier for tests whose threads take turns: one thread sets the stage, the others wait until it
 * reaches theirs. A value a thread writes before zc_stage_set is seen by a thread after its zc_stage_wait
 * for that stage returns (the mutex orders them). mu and cv may also guard a test's own handshakes.
 * Includes: pthreads only. Header-only. */
#ifndef ZC_STAGE_H
#define ZC_STAGE_H

#include <pthread.h>

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stage;
} zc_stage_t;
#define ZC_STAGE_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0}

/* Until the stage is at least v. */
static inline void zc_stage_wait(zc_stage_t *s, int v) {
  pthread_mutex_lock(&s->mu);
  while (s->stage < v) pthread_cond_wait(&s->cv, &s->mu);
  pthread_mutex_unlock(&s->mu);
}

static inline void zc_stage_set(zc_stage_t *s, int v) {
  pthread_mutex_lock(&s->mu);
  s->stage = v;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

#endif /* ZC_STAGE_H */
