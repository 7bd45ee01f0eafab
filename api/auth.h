/*
 * auth: API keys in the daemon, as three stages of the request pipeline (pipeline.c):
 * authenticate (the bearer token names a key: 401 otherwise), authorize (an admin
 * route needs an admin key: 403) and rate-limit (the key's token bucket: 429). Owns the
 * short-lived cache of key lookups and the buckets. The token itself (its format and
 * hash) belongs to dualreg/auth_token.h, shared with dualregctl.
 */
#ifndef DUALREG_API_AUTH_H
#define DUALREG_API_AUTH_H

struct api_req;

/* Each stage calls next(r) when it lets r through, else replies itself. */

/* Finds the key of r's Authorization: Bearer token into r->key; 401 if none. */
void auth_authenticate(struct api_req *r, void (*next)(struct api_req *r));
/* 403 unless r's route is open to r's key (an admin route needs an admin key). */
void auth_authorize(struct api_req *r, void (*next)(struct api_req *r));
/* Takes one request from the key's token bucket ([limits] rate, burst); 429 with
 * Retry-After when it is empty. */
void auth_rate_limit(struct api_req *r, void (*next)(struct api_req *r));

#endif
