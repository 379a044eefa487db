/* What the HTTP front end, its workers and the test client agree on: limits, the request flags, and the
 * content of a generated body (GET /N answers N bytes of http_pattern, a function of the byte's offset
 * with a prime period, so a piece lost, repeated or out of order shows in the client's check).
 * Includes: libc only.
 */
#ifndef HTTP_PROTO_H
#define HTTP_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_BODY ((uint64_t)64 << 20) /* GET /N: at most 64 MiB */
#define HTTP_MAX_REQ_BODY ((size_t)8 << 20) /* a request's body: at most 8 MiB (socket transport: 64 KiB) */
#define HTTP_MAX_SLEEP_MS 10000            /* GET /sleep/MS */
#define HTTP_REQ_CLOSE 1u                  /* request flag: the front end closes after this response */
#define HTTP_PATTERN_PERIOD 4093u          /* prime: not a divisor of any piece size */

static inline uint8_t http_pattern(uint64_t i) {
  static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  uint32_t k = (uint32_t)(i % HTTP_PATTERN_PERIOD);
  return (uint8_t)digits[((k * 2654435761u) >> 26) % 62u];
}

#endif
