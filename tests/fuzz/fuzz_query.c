/*
 * fuzz_query: query strings as every request's are read (router_query_parse, before
 * any handler runs). Accepted: names and values decoded to UTF-8 without NUL, no name
 * twice, each found again by router_query_find. Refused: a reason, and the offending
 * name (possibly "") as UTF-8.
 */
#include "dualreg/router.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *query = fuzz_cstr(data, size);
	struct router_query q;
	char why[256], bad_name[80];
	why[0] = '\0';
	if (router_query_parse(query, &q, why, sizeof why, bad_name, sizeof bad_name) == 0) {
		for (size_t i = 0; i < q.n; i++) {
			FUZZ_ASSERT(fuzz_utf8(q.name[i]) && fuzz_utf8(q.value[i]));
			FUZZ_ASSERT(router_query_find(&q, q.name[i]) == q.value[i]);
			for (size_t k = i + 1; k < q.n; k++)
				FUZZ_ASSERT(strcmp(q.name[i], q.name[k]) != 0);
		}
		FUZZ_ASSERT(bad_name[0] == '\0');
	} else {
		FUZZ_ASSERT(why[0] != '\0' && fuzz_utf8(why) && fuzz_utf8(bad_name));
	}
	router_query_free(&q);
	free(query);
	return 0;
}
