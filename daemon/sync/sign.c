/* sign: Standard Webhooks HMAC-SHA256 signatures with OpenSSL (see sign.h). */
#include "dualreg/sign.h"

#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

int sign_secret_new(char out[SIGN_SECRET_MAX])
{
	unsigned char raw[SIGN_SECRET_BYTES];
	if (RAND_bytes(raw, sizeof raw) != 1)
		return -1;
	memcpy(out, SIGN_SECRET_PREFIX, strlen(SIGN_SECRET_PREFIX));
	int n = EVP_EncodeBlock((unsigned char *)out + strlen(SIGN_SECRET_PREFIX), raw, sizeof raw);
	out[strlen(SIGN_SECRET_PREFIX) + (size_t)n] = '\0';
	return 0;
}

int sign_webhook(const char *secret, const char *msg_id, long long timestamp,
		 const char *body, size_t body_len, char out[SIGN_SIG_MAX])
{
	size_t plen = strlen(SIGN_SECRET_PREFIX);
	if (strncmp(secret, SIGN_SECRET_PREFIX, plen) != 0)
		return -1;
	const char *b64 = secret + plen;
	size_t b64len = strlen(b64);
	if (b64len == 0 || b64len % 4 != 0 || b64len > SIGN_SECRET_MAX)
		return -1;
	unsigned char key[SIGN_SECRET_MAX];
	int klen = EVP_DecodeBlock(key, (const unsigned char *)b64, (int)b64len);
	if (klen <= 0)
		return -1;
	/* EVP_DecodeBlock counts padding as zero bytes; take them back off. */
	if (b64[b64len - 1] == '=')
		klen--;
	if (b64[b64len - 2] == '=')
		klen--;

	char prefix[160];
	int n = snprintf(prefix, sizeof prefix, "%s.%lld.", msg_id, timestamp);
	if (n < 0 || (size_t)n >= sizeof prefix)
		return -1;
	unsigned char mac[EVP_MAX_MD_SIZE];
	size_t maclen = 0;
	char digest[] = "SHA256";
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
	    OSSL_PARAM_construct_end(),
	};
	EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
	int ok = ctx != NULL && EVP_MAC_init(ctx, key, (size_t)klen, params) == 1 &&
		 EVP_MAC_update(ctx, (const unsigned char *)prefix, (size_t)n) == 1 &&
		 EVP_MAC_update(ctx, (const unsigned char *)body, body_len) == 1 &&
		 EVP_MAC_final(ctx, mac, &maclen, sizeof mac) == 1;
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(hmac);
	if (!ok)
		return -1;
	memcpy(out, "v1,", 3);
	EVP_EncodeBlock((unsigned char *)out + 3, mac, (int)maclen);
	return 0;
}
