/*
 * auth: API keys. A key is a bearer token "drk_" + 43 base64url characters (32 random
 * bytes), shown once when created and stored only as its SHA-256. Owns token creation
 * and hashing (shared with dualregctl), the daemon's short-lived cache of key lookups,
 * the per-key token-bucket rate limit, and the access check run before each handler.
 */
#ifndef DUALREG_AUTH_H
#define DUALREG_AUTH_H

#include <stdbool.h>
#include <stddef.h>

struct api_req;

#define AUTH_TOKEN_PREFIX "drk_"
#define AUTH_TOKEN_LEN 47 /* prefix + 43 */
#define AUTH_HASH_HEX 65  /* 64 hex digits + NUL */
/* A new random token (AUTH_TOKEN_LEN + 1 bytes). 0, or -1 if randomness failed. */
int auth_token_new(char *out, size_t outlen) __attribute__((warn_unused_result));
/* Hex SHA-256 of a token. */
void auth_token_hash(const char *token, char out[AUTH_HASH_HEX]);

/*
 * Authenticates r (Authorization: Bearer), checks the route's access level and the
 * key's rate limit, then calls next(r). Otherwise replies 401, 403 or 429 itself.
 */
void auth_check(struct api_req *r, void (*next)(struct api_req *r));
/* Forgets cached keys (after a revocation) and rate-limit state. */
void auth_reset(void);

#endif
