/*
 * auth_token: the API key token. A key is a bearer token "drk_" + 43 base64url
 * characters (32 random bytes), shown once when created and stored only as its SHA-256.
 * Owns creating and hashing tokens, for the daemon (auth.h) and dualregctl alike.
 */
#ifndef DUALREG_AUTH_TOKEN_H
#define DUALREG_AUTH_TOKEN_H

#include <stddef.h>

#define AUTH_TOKEN_PREFIX "drk_"
#define AUTH_TOKEN_LEN 47 /* prefix + 43 */
#define AUTH_HASH_HEX 65  /* 64 hex digits + NUL */

/* A new random token (AUTH_TOKEN_LEN + 1 bytes). 0, or -1 if randomness failed. */
int auth_token_new(char *out, size_t outlen) __attribute__((warn_unused_result));
/* Hex SHA-256 of a token. */
void auth_token_hash(const char *token, char out[AUTH_HASH_HEX]);

#endif
