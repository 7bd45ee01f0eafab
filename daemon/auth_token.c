/* auth_token: creating and hashing API key tokens (see auth_token.h). */
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "dualreg/auth_token.h"

int auth_token_new(char *out, size_t outlen)
{
	static const char b64url[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char raw[33];
	if (outlen < AUTH_TOKEN_LEN + 1 || RAND_bytes(raw, 32) != 1)
		return -1;
	raw[32] = 0;
	memcpy(out, AUTH_TOKEN_PREFIX, 4);
	size_t o = 4;
	/* 32 bytes -> 43 characters: 10 full groups of 3 bytes, then 2 bytes (3 chars). */
	for (int i = 0; i < 33 && o < AUTH_TOKEN_LEN; i += 3) {
		unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 |
			     (i + 2 < 33 ? raw[i + 2] : 0);
		for (int k = 3; k >= 0 && o < AUTH_TOKEN_LEN; k--)
			out[o++] = b64url[(v >> (6 * k)) & 63];
	}
	out[o] = '\0';
	return 0;
}

void auth_token_hash(const char *token, char out[AUTH_HASH_HEX])
{
	/* OpenSSL 3 looks an algorithm up on every implicit use; fetch SHA-256 once (the
	 * token of every API request is hashed, so this is on the hot path). */
	static EVP_MD *sha256;
	if (sha256 == NULL)
		sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	EVP_Digest(token, strlen(token), md, &len, sha256, NULL);
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[64] = '\0';
}

