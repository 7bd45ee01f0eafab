/*
 * sign: Standard Webhooks 1.0 signatures. A secret is "whsec_" + base64 of at least
 * 24 random bytes; the signature of a delivery is
 *   v1,<base64 HMAC-SHA256(secret bytes, "<webhook-id>.<webhook-timestamp>.<body>")>
 * and while a secret is being rotated both signatures are sent, separated by a space.
 */
#ifndef DUALREG_SIGN_H
#define DUALREG_SIGN_H

#include <stddef.h>

#define SIGN_SECRET_PREFIX "whsec_"
#define SIGN_SECRET_BYTES 32
#define SIGN_SECRET_MAX 128 /* enough for "whsec_" + base64 of SIGN_SECRET_BYTES */
#define SIGN_SIG_MAX 64     /* "v1," + 44 base64 characters + NUL */

/* A new random secret. 0, or -1 if no randomness is available. */
int sign_secret_new(char out[SIGN_SECRET_MAX]) __attribute__((warn_unused_result));

/*
 * Signs one delivery attempt into out ("v1,..."). Returns 0, or -1 if the secret is
 * not a well-formed whsec_ secret.
 */
int sign_webhook(const char *secret, const char *msg_id, long long timestamp,
		 const char *body, size_t body_len, char out[SIGN_SIG_MAX])
    __attribute__((warn_unused_result));

#endif
