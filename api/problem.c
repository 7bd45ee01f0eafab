/* problem: builds RFC 9457 bodies (see problem.h). */
#include "problem.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/utf8.h"
#include "dualreg/xalloc.h"

static const struct {
	int status;
	const char *reason;
	const char *slug;
} statuses[] = {
    {200, "OK", "ok"},
    {201, "Created", "created"},
    {202, "Accepted", "accepted"},
    {204, "No Content", "no-content"},
    {304, "Not Modified", "not-modified"},
    {400, "Bad Request", "bad-request"},
    {401, "Unauthorized", "unauthorized"},
    {403, "Forbidden", "forbidden"},
    {404, "Not Found", "not-found"},
    {405, "Method Not Allowed", "method-not-allowed"},
    {406, "Not Acceptable", "not-acceptable"},
    {408, "Request Timeout", "request-timeout"},
    {409, "Conflict", "conflict"},
    {411, "Length Required", "length-required"},
    {412, "Precondition Failed", "precondition-failed"},
    {413, "Content Too Large", "content-too-large"},
    {414, "URI Too Long", "uri-too-long"},
    {415, "Unsupported Media Type", "unsupported-media-type"},
    {417, "Expectation Failed", "expectation-failed"},
    {422, "Unprocessable Content", "unprocessable-content"},
    {428, "Precondition Required", "precondition-required"},
    {429, "Too Many Requests", "too-many-requests"},
    {431, "Request Header Fields Too Large", "headers-too-large"},
    {500, "Internal Server Error", "internal-error"},
    {501, "Not Implemented", "not-implemented"},
    {503, "Service Unavailable", "unavailable"},
    {505, "HTTP Version Not Supported", "http-version-not-supported"},
};

const char *http_reason(int status)
{
	for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
		if (statuses[i].status == status)
			return statuses[i].reason;
	return "Error";
}

const char *problem_default_slug(int status)
{
	for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
		if (statuses[i].status == status)
			return statuses[i].slug;
	return "error";
}

/*
 * Adds text as a string member, well-formed UTF-8 whatever it holds. Details quote
 * client input (member names, URLs, hosts) and are often cut to a bounded buffer by
 * snprintf, which may split a character; cJSON copies bytes as they are. A body that
 * is not UTF-8 is not JSON for the client, and PostgreSQL refuses to store it as an
 * idempotent response, so every byte that is not part of a well-formed character is
 * replaced (U+FFFD) here, where every problem text passes.
 */
static void add_text(cJSON *obj, const char *name, const char *text)
{
	if (utf8_length(text) != UTF8_INVALID) {
		cJSON_AddStringToObject(obj, name, text);
		return;
	}
	size_t cap = strlen(text) * 3 + 1; /* each byte may become a 3-byte U+FFFD */
	char *clean = xmalloc(cap);
	utf8_copy(clean, cap, text, SIZE_MAX);
	cJSON_AddStringToObject(obj, name, clean);
	free(clean);
}

cJSON *problem_new(int status, const char *slug, const char *title, const char *detail)
{
	char type[128];
	cJSON *p = cJSON_CreateObject();
	snprintf(type, sizeof type, "/problems/%s", slug ? slug : problem_default_slug(status));
	cJSON_AddStringToObject(p, "type", type);
	add_text(p, "title", title ? title : http_reason(status));
	cJSON_AddNumberToObject(p, "status", status);
	if (detail != NULL)
		add_text(p, "detail", detail);
	return p;
}

void problem_add_error(cJSON *problem, const char *pointer, const char *detail)
{
	cJSON *errors = cJSON_GetObjectItemCaseSensitive(problem, "errors");
	if (errors == NULL)
		errors = cJSON_AddArrayToObject(problem, "errors");
	cJSON *e = cJSON_CreateObject();
	add_text(e, "pointer", pointer);
	add_text(e, "detail", detail);
	cJSON_AddItemToArray(errors, e);
}
