/* problem: builds RFC 9457 bodies (see problem.h). */
#include "dualreg/problem.h"

#include <stdio.h>

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

cJSON *problem_new(int status, const char *slug, const char *title, const char *detail)
{
	char type[128];
	cJSON *p = cJSON_CreateObject();
	snprintf(type, sizeof type, "/problems/%s", slug ? slug : problem_default_slug(status));
	cJSON_AddStringToObject(p, "type", type);
	cJSON_AddStringToObject(p, "title", title ? title : http_reason(status));
	cJSON_AddNumberToObject(p, "status", status);
	if (detail != NULL)
		cJSON_AddStringToObject(p, "detail", detail);
	return p;
}

void problem_add_error(cJSON *problem, const char *pointer, const char *detail)
{
	cJSON *errors = cJSON_GetObjectItemCaseSensitive(problem, "errors");
	if (errors == NULL)
		errors = cJSON_AddArrayToObject(problem, "errors");
	cJSON *e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "pointer", pointer);
	cJSON_AddStringToObject(e, "detail", detail);
	cJSON_AddItemToArray(errors, e);
}
