/*
 * fuzz_endpoint: URLs from outside, as endpoint.c reads them with libcurl's URL API:
 * a webhook's or feed's URL (endpoint_check_url, with and without http allowed), the
 * origin a feed's `next` URL is compared by (endpoint_same_origin), and the next
 * request's URL built from a feed's cursor (endpoint_with_since). The first line of the
 * input is the URL, the second the other URL or cursor.
 */
#include "dualreg/endpoint.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t ulen = nl != NULL ? (size_t)(nl - data) : size;
	char *url = fuzz_cstr(data, ulen);
	char *other = nl != NULL ? fuzz_cstr(nl + 1, size - ulen - 1) : fuzz_cstr(data, 0);
	for (int allow_http = 0; allow_http < 2; allow_http++) {
		char host[256], why[200];
		host[0] = why[0] = '\0';
		if (endpoint_check_url(url, allow_http, host, sizeof host, why, sizeof why) == 0) {
			FUZZ_ASSERT(host[0] != '\0' && strlen(host) < sizeof host);
		} else {
			FUZZ_ASSERT(why[0] != '\0');
		}
	}
	if (endpoint_same_origin(url, other))
		FUZZ_ASSERT(endpoint_same_origin(other, url));
	FUZZ_ASSERT(!endpoint_same_origin(url, "") && !endpoint_same_origin("", url));
	char *next = endpoint_with_since(url, other);
	if (next != NULL)
		free(next);
	free(url);
	free(other);
	return 0;
}
