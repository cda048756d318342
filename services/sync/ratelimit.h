/*
 * ratelimit.h - per-token request rate limit (token buckets).
 *
 * Each bearer token has a bucket of `burst` requests refilled at `rate`
 * per second; a request takes one or is refused (429, Retry-After).  The
 * buckets live in a fixed table keyed by a 64-bit hash of the token, so
 * memory stays bounded whatever tokens are sent: a slot is reused by
 * another token only once its bucket has refilled (it was idle); until
 * then two colliding tokens share a bucket, which can only make the limit
 * stricter.  Thread-safe.
 */
#ifndef FLEET_SYNC_RATELIMIT_H
#define FLEET_SYNC_RATELIMIT_H

#include <stdbool.h>

typedef struct ratelimit ratelimit;

/* rate <= 0 switches the limit off. */
ratelimit *ratelimit_new(double rate, double burst, int slots);
void ratelimit_free(ratelimit *rl);

/* Take one request for this token at time now (seconds); false: refused,
 * *retry_after is the wait in seconds until one is available. */
bool ratelimit_take(ratelimit *rl, const char *token, double now, double *retry_after);

#endif
