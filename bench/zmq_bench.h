/* zmq_bench's helpers shared by its tables: zmq_bench.c (one-way, request/response, main, the counting
 * malloc) and zmq_bench_pub.c (fan-out). Includes the public zcmem headers and libc only. */
#ifndef ZCMEM_ZMQ_BENCH_H
#define ZCMEM_ZMQ_BENCH_H

#include "zcmem.h"
#include "zcmem_zmq.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

extern _Atomic uint64_t alloc_calls; /* malloc-family calls of this process (zmq_bench.c counts them) */
uint64_t now_ns(void);
uint64_t cpu_ns(void); /* user + system time of this process, its threads included */
void die(const char *what, const char *detail);
void write_payload(void *p, size_t n, uint64_t seq, uint64_t t); /* seq, send time, a pattern */
uint64_t read_payload(const void *p, size_t n, uint64_t *t);     /* reads every byte; returns seq */
int cmp_u64(const void *a, const void *b);
void zcbench(const char *transport, size_t size, const char *metric, double v, const char *unit, int higher);

void pub_table(int quick, const char *only, size_t only_size); /* zmq_bench_pub.c */

#endif /* ZCMEM_ZMQ_BENCH_H */
