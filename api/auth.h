/*
 * auth: API keys in the daemon, as three stages of the request pipeline (pipeline.c):
 * authenticate (the client address has not failed too often: 429 otherwise; the bearer
 * token names a key: 401 otherwise), authorize (an admin route needs an admin key: 403)
 * and rate-limit (the key's token bucket: 429). Owns the caches of key lookups (keys
 * found and tokens naming none, kept true by the key listener: api_key_cache_follow in
 * dualreg/api.h), the client address (peer or X-Forwarded-For of a trusted proxy), the
 * failed-authentication buckets per address and the per-key buckets. The token itself
 * (its format and hash) belongs to dualreg/auth_token.h, shared with dualregctl.
 */
#ifndef DUALREG_API_AUTH_H
#define DUALREG_API_AUTH_H

#include <stdbool.h>
#include <stddef.h>

struct api_req;

/* Each stage calls next(r) when it lets r through, else replies itself. */

/* Finds the key of r's Authorization: Bearer token into r->key; 401 if none (a failure
 * charged to the client address), 429 with Retry-After before anything else while the
 * address has failed more than [limits] auth_failure_rate/auth_failure_burst allow. */
void auth_authenticate(struct api_req *r, void (*next)(struct api_req *r));
/* For routes outside the pipeline's authenticate stage that take credentials (the web
 * app's sign-in): replies 429 with Retry-After and returns true while r's client address
 * has failed too often, as the authenticate stage does; false otherwise. */
bool auth_address_limited(struct api_req *r);
/* Charges one failed authentication to r's client address (after
 * auth_address_limited). */
void auth_failure_charge(struct api_req *r);
/* r's client address as text ("192.0.2.1", "2001:db8::/64"; after
 * auth_address_limited). */
void auth_client_address(struct api_req *r, char *out, size_t len);
/* 403 unless r's route is open to r's key (an admin route needs an admin key). */
void auth_authorize(struct api_req *r, void (*next)(struct api_req *r));
/* Takes one request from the key's token bucket ([limits] rate, burst); 429 with
 * Retry-After when it is empty. */
void auth_rate_limit(struct api_req *r, void (*next)(struct api_req *r));

#endif
