/* zcmem chunk ring: a circular buffer of fixed-size chunks for messages that are freed about in order.
 *
 * A message takes contiguous chunks starting at the allocation head. Frees may come in any order; the free
 * marker (tail) advances over each run of freed chunks at the tail. When the end of the buffer has too
 * little contiguous room for a message, the head skips to the start and the skipped end chunks are
 * accounted as padding (freed at once, reclaimed when the tail passes them).
 *
 * Thread safety: single producer, single consumer, no locks on the fast paths (the producer takes the
 * ring's lock when it moves its window, every n/16 chunks, shared with the background purger's idle pass;
 * the consumer never takes it). One thread at a time calls zc_ring_alloc (the
 * producer) and one thread at a time calls zc_ring_free (the consumer); they may be two different threads.
 * The ring does not carry the messages from producer to consumer: hand the pointer over through something
 * that orders memory (a queue with release/acquire, a mutex, a pipe). zc_ring_stats may be called from
 * either side; its figures are then a consistent-enough snapshot, exact when both sides are quiet.
 * Memory ordering inside: the producer writes a message's chunk record, then publishes the head with a
 * release store; the consumer reads the head with acquire before walking records. The consumer marks
 * records freed, then publishes the tail with a release store; the producer reads the tail with acquire
 * before reusing those chunks. Each side keeps a private copy of the other's index and re-reads the shared
 * one only when its copy says the ring is full (producer) or the walk reached it (consumer).
 *
 * Errors:
 *   - full ring (the message would fit in an empty ring but not now): NULL, errno = EAGAIN; retry after the
 *     consumer frees (a transient condition, so not ENOMEM);
 *   - a message of more than half the ring's chunks: NULL, errno = EMSGSIZE (it could wait forever: with
 *     the head near the end, the padding plus the message would not fit even in an empty ring);
 *   - bad create arguments or a NULL ring: NULL, errno = EINVAL; no memory: NULL, ENOMEM;
 *   - zc_ring_free of a pointer that is not the start of a live message (outside the ring, not on a chunk
 *     boundary, inside a message, padding, or already freed): a one-line report on stderr, counted in
 *     stats.errors, and the ring is left unchanged. One case cannot be told by the pointer alone: a double
 *     free that arrives after the ring went a full lap and a new message starts on the same chunk frees
 *     that new message; zc_ring_free_tagged (the producer's zc_ring_tag carried with the pointer) catches
 *     it (see docs/lifetime.md).
 *     As for every bad free of zcmem, the report is followed by abort() unless ZCMEM_ABORT_ON_ERROR=0 (the
 *     default is 1); with 0 the call returns and the ring is unchanged.
 *
 * Includes: zcmem.h only.
 */
#ifndef ZCMEM_RING_H
#define ZCMEM_RING_H

#include "zcmem.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct zc_ring_s zc_ring_t;

typedef struct zc_ring_stats_s {
  uint64_t in_use;      /* bytes of chunks held by live messages */
  uint64_t requested;   /* bytes the live messages asked for (in_use - requested: rounding waste) */
  uint64_t occupied;    /* bytes between tail and head: live, freed-but-not-passed and padding chunks */
  uint64_t peak;        /* high-water mark of occupied (checked against the consumer's real tail) */
  uint64_t held;        /* bytes of the buffer (chunk_size * chunks): address space reserved */
  uint64_t resident;    /* upper bound of the buffer's bytes in memory: held less what the last trim (or
                         * the purger's) gave back and the head has not reached since */
  uint64_t trimmed;     /* bytes given back to the OS by zc_ring_trim and the background purger, ever */
  uint64_t chunks;      /* chunks in the ring */
  uint64_t chunk_size;
  uint64_t wasted;      /* bytes of padding chunks skipped at the end and not yet passed by the tail */
  uint64_t padding_total; /* bytes of padding ever skipped */
  uint64_t allocs, frees, full; /* messages allocated, freed, and allocations refused with EAGAIN */
  uint64_t errors;      /* bad frees reported */
} zc_ring_stats_t;

/* A ring of `chunks` chunks of chunk_size bytes (a multiple of 128; 0 gives 128); chunks >= 2. The largest
 * message is chunks / 2 chunks. */
ZC_API zc_ring_t *zc_ring_create(size_t chunk_size, size_t chunks);
/* Unmap the ring (live messages included). */
ZC_API void zc_ring_destroy(zc_ring_t *r);

/* Producer: size bytes in contiguous chunks, aligned to 128 (size 0 takes one chunk). EBUSY while a
 * reservation is open. */
ZC_API ZC_MALLOC_ATTR void *zc_ring_alloc(zc_ring_t *r, size_t size);
/* Producer: the same, but when the ring is full wait (sleeping, woken by the consumer's frees) up to
 * timeout_ms (negative: no limit; 0: do not wait). NULL with ETIMEDOUT when the time is up, or the errors of
 * zc_ring_alloc. */
ZC_API void *zc_ring_alloc_wait(zc_ring_t *r, size_t size, long timeout_ms);

/* Producer, for a message whose size is known only after writing it: reserve room for max_size bytes
 * (errors as zc_ring_alloc), write, then commit the size actually used (at most max_size; the chunks
 * beyond it stay free). The consumer cannot see the message before the commit. One reservation at a time;
 * zc_ring_alloc and zc_ring_trim wait for it (EBUSY / no-op). commit: 0, or -1 with EINVAL (no reservation,
 * p not the reserved pointer) or EMSGSIZE (size > max_size: the reservation stays open). cancel drops it. */
ZC_API void *zc_ring_reserve(zc_ring_t *r, size_t max_size);
ZC_API int zc_ring_commit(zc_ring_t *r, void *p, size_t size);
ZC_API void zc_ring_cancel(zc_ring_t *r);

/* Producer: give the memory of the free part of the ring back to the OS (whole OS pages between the head
 * and the tail; the next messages there fault their pages back in). The background purger does the same,
 * without a call, for the free part beyond the producer's window (n/16 chunks past the head) once neither
 * side has moved for the purge delay (ZCMEM_PURGE_DELAY). */
ZC_API void zc_ring_trim(zc_ring_t *r);
/* Consumer: free the message starting at p (NULL is ignored). */
ZC_API void zc_ring_free(zc_ring_t *r, void *p);
/* Producer: the tag of the message the last zc_ring_alloc, zc_ring_alloc_wait or zc_ring_commit placed
 * (its position in the ring's history: no two messages share one). Hand it to the consumer with p. */
ZC_API uint64_t zc_ring_tag(const zc_ring_t *r);
/* Consumer: zc_ring_free, checked against the message's tag: a double free that arrives after the ring went
 * a full lap (a newer message starts at p) is reported and frees nothing; so is a wrong tag. */
ZC_API void zc_ring_free_tagged(zc_ring_t *r, void *p, uint64_t tag);

ZC_API void zc_ring_stats(zc_ring_t *r, zc_ring_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif /* ZCMEM_RING_H */
