/*
 * fuzz_pull_page: a page of a school's MIS feed as the puller checks it before applying
 * it (pull_check_page). The first line of the input is the feed's URL (its origin is
 * what a `next` URL must share), the rest the page. An accepted page holds a marks list
 * (at most 1000, each object given the school's URN), a cursor of at most 1000 bytes
 * and a `next` URL on the feed's own origin, all of it UTF-8 and none of it cut short
 * by an escaped NUL (\u0000); a refused page gets a reason, never data.
 */
#include <stdbool.h>

#include "dualreg/endpoint.h"
#include "dualreg/pull.h"
#include "fuzz.h"

#define URN "900101"

/* True when the JSON text holds a \u0000 escape (every backslash of JSON that parsed
 * starts an escape). */
static bool escaped_nul(const char *text, size_t len)
{
	for (size_t i = 0; i + 5 < len; i++) {
		if (text[i] != '\\')
			continue;
		if (text[i + 1] == 'u' && memcmp(text + i + 2, "0000", 4) == 0)
			return true;
		i++;
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	char *base;
	const char *page;
	size_t len;
	if (nl != NULL) {
		base = fuzz_cstr(data, (size_t)(nl - data));
		page = (const char *)nl + 1;
		len = size - (size_t)(nl - data) - 1;
	} else {
		base = fuzz_cstr((const uint8_t *)"https://mis.example/feed", 24);
		page = (const char *)data;
		len = size;
	}
	struct pull_page pg;
	const char *why = pull_check_page(page, len, base, URN, &pg);
	if (why != NULL) {
		FUZZ_ASSERT(why[0] != '\0');
		FUZZ_ASSERT(pg.marks == NULL && pg.next_cursor == NULL && pg.next_url == NULL);
		free(base);
		return 0;
	}
	FUZZ_ASSERT(!escaped_nul(page, len));
	FUZZ_ASSERT(fuzz_utf8(pg.marks));
	FUZZ_ASSERT(pg.next_cursor == NULL || fuzz_utf8(pg.next_cursor));
	FUZZ_ASSERT(pg.next_url == NULL || fuzz_utf8(pg.next_url));
	cJSON *marks = cJSON_Parse(pg.marks);
	FUZZ_ASSERT(cJSON_IsArray(marks) && cJSON_GetArraySize(marks) <= PULL_MAX_ITEMS);
	const cJSON *m;
	cJSON_ArrayForEach(m, marks)
		FUZZ_ASSERT(!cJSON_IsObject(m) || cJSON_HasObjectItem(m, "urn"));
	cJSON_Delete(marks);
	FUZZ_ASSERT(pg.next_cursor == NULL || strlen(pg.next_cursor) <= 1000);
	FUZZ_ASSERT(pg.next_url == NULL || endpoint_same_origin(pg.next_url, base));
	/* The URL of the next request, as the puller builds it from the cursor. */
	char *next = endpoint_with_since(base, pg.next_cursor);
	free(next);
	pull_page_free(&pg);
	free(base);
	return 0;
}
