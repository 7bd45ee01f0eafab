/*
 * auth: API keys in the daemon. Owns the short-lived cache of key lookups, the per-key
 * token-bucket rate limit, and the access check run before each handler. The token
 * itself (its format and hash) belongs to auth_token.h, shared with dualregctl.
 */
#ifndef DUALREG_AUTH_H
#define DUALREG_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "dualreg/auth_token.h"

struct api_req;

/*
 * Authenticates r (Authorization: Bearer), checks the route's access level and the
 * key's rate limit, then calls next(r). Otherwise replies 401, 403 or 429 itself.
 */
void auth_check(struct api_req *r, void (*next)(struct api_req *r));
/* Forgets cached keys (after a revocation) and rate-limit state. */
void auth_reset(void);

#endif
