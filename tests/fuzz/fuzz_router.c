/*
 * fuzz_router: a request line's method and path against the API's route table
 * (router_match over api_routes, as api/server.c routes every request), and the Allow
 * header written for the outcome. The first byte picks the method, the rest is the
 * path as evhttp hands it over (raw, query removed). A match fills exactly the
 * pattern's placeholders, each decoded, non-empty and within ROUTER_PARAM_MAX.
 */
#include "../../api/handlers.h"
#include "dualreg/router.h"
#include "fuzz.h"

static const unsigned methods[] = {RM_GET,   RM_HEAD,    RM_POST,  RM_PUT,
				   RM_PATCH, RM_DELETE, RM_OPTIONS, RM_OTHER};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	unsigned method = methods[data[0] % (sizeof methods / sizeof methods[0])];
	char *path = fuzz_cstr(data + 1, size - 1);
	char *query = strchr(path, '?');
	if (query != NULL)
		*query = '\0';
	const struct router_route *found = (const struct router_route *)1;
	struct router_params params;
	unsigned allowed = 0xffff;
	enum router_outcome o =
	    router_match(api_routes, api_nroutes, method, path, &found, &params, &allowed);
	switch (o) {
	case ROUTER_FOUND: {
		FUZZ_ASSERT(found != NULL);
		FUZZ_ASSERT(found->method == (method == RM_HEAD ? (unsigned)RM_GET : method));
		size_t placeholders = 0;
		for (const char *p = found->pattern; *p != '\0'; p++)
			placeholders += *p == '{';
		FUZZ_ASSERT(params.n == placeholders && params.n <= ROUTER_MAX_PARAMS);
		for (size_t i = 0; i < params.n; i++) {
			size_t len = strlen(params.value[i]);
			FUZZ_ASSERT(len > 0 && len <= ROUTER_PARAM_MAX);
		}
		break;
	}
	case ROUTER_BAD_METHOD:
		FUZZ_ASSERT(found == NULL && (allowed & RM_OPTIONS) != 0);
		if (method != RM_OPTIONS)
			FUZZ_ASSERT(!(allowed & (method == RM_HEAD ? (unsigned)RM_GET : method)));
		break;
	case ROUTER_NOT_FOUND:
		FUZZ_ASSERT(found == NULL && allowed == 0);
		break;
	}
	/* The Allow header, in buffers from too small to ample: always terminated. */
	static const size_t lens[] = {1, 4, 9, 64};
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		char buf[64];
		memset(buf, 'x', sizeof buf);
		router_allow_header(allowed, buf, lens[i]);
		FUZZ_ASSERT(strlen(buf) < lens[i]);
	}
	FUZZ_ASSERT(router_method_name(method) != NULL);
	free(path);
	return 0;
}
