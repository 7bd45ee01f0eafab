/*
 * fuzz_sign: a webhook secret as the signer decodes it (sign_webhook: "whsec_" and
 * base64). The first line of the input is the secret, the rest the delivery's body.
 * A secret it accepts signs to "v1," and 44 base64 characters; the same secret and
 * body always sign the same.
 */
#include "dualreg/sign.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t slen = nl != NULL ? (size_t)(nl - data) : size;
	char *secret = fuzz_cstr(data, slen);
	const char *body = nl != NULL ? (const char *)nl + 1 : "";
	size_t blen = nl != NULL ? size - slen - 1 : 0;
	char sig[SIGN_SIG_MAX], again[SIGN_SIG_MAX];
	memset(sig, 0, sizeof sig);
	if (sign_webhook(secret, "msg_2Kfuzz", 1700000000LL, body, blen, sig) == 0) {
		FUZZ_ASSERT(strncmp(sig, "v1,", 3) == 0 && strlen(sig) == 47);
		FUZZ_ASSERT(strspn(sig + 3, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					    "0123456789+/=") == 44);
		FUZZ_ASSERT(sign_webhook(secret, "msg_2Kfuzz", 1700000000LL, body, blen, again) ==
			    0);
		FUZZ_ASSERT(strcmp(sig, again) == 0);
	}
	free(secret);
	return 0;
}
