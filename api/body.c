/*
 * body: the request body as a JSON object (api_json_body, api.h), read the same way for
 * every handler. What the transport leaves to us is checked here once: the media type,
 * JSON that parses with nothing after it, no \u0000 (which would cut a C string short),
 * well-formed UTF-8 in every member name and string, and no member name twice in one
 * object. The checks of the text alone are api_json_parse (json_fields.h), which the
 * fuzzing harnesses call directly.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dualreg/api.h"
#include "dualreg/utf8.h"
#include "json_fields.h"
#include "problem.h"

/* A problem with status, slug and a formatted detail. */
static cJSON *refusal(int status, const char *slug, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static cJSON *refusal(int status, const char *slug, const char *fmt, ...)
{
	char detail[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	return problem_new(status, slug, NULL, detail);
}

cJSON *api_json_parse(const char *text, size_t len, cJSON **problem)
{
	*problem = NULL;
	if (len == 0) {
		*problem = refusal(400, "invalid-json", "the request body is empty");
		return NULL;
	}
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (root == NULL) {
		size_t at = end != NULL && end >= text ? (size_t)(end - text) : 0;
		*problem = refusal(400, "invalid-json", "the body is not valid JSON (at byte %zu)",
				   at);
		return NULL;
	}
	while (end != NULL && (size_t)(end - text) < len &&
	       (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
		end++;
	if (end != NULL && (size_t)(end - text) < len) {
		cJSON_Delete(root);
		*problem = refusal(400, "invalid-json",
				   "unexpected data after the JSON value (at byte %zu)",
				   (size_t)(end - text));
		return NULL;
	}
	/* cJSON decodes \u0000 into a NUL that silently ends the C string there ("ab\u0000cd"
	 * would be read as "ab"); no text field can hold it. The body parsed, so every
	 * backslash in it starts an escape inside a string: skipping each escaped character
	 * is enough to find them. */
	for (size_t i = 0; i + 1 < len; i++) {
		if (text[i] != '\\')
			continue;
		if (text[i + 1] == 'u' && i + 5 < len && strncmp(text + i + 2, "0000", 4) == 0) {
			cJSON_Delete(root);
			*problem = refusal(400, "invalid-json",
					   "a string holds \\u0000 (at byte %zu), which no text "
					   "can contain",
					   i);
			return NULL;
		}
		i++;
	}
	/* JSON is UTF-8 (RFC 8259); cJSON copies other bytes through as they are. Checked
	 * here, once for every body, so that no member name or string of any handler
	 * reaches the database (which refuses it: a 500) or a reply without it. */
	char pointer[256];
	bool in_name = false;
	if (!jf_utf8_check(root, pointer, sizeof pointer, &in_name)) {
		cJSON_Delete(root);
		*problem = problem_new(400, "invalid-json", NULL, "the body is not valid UTF-8");
		problem_add_error(*problem, pointer,
				  in_name ? "a member name of this object is not valid UTF-8"
					  : "not valid UTF-8");
		return NULL;
	}
	const char *twice = jf_unique_names(root, pointer, sizeof pointer);
	if (twice != NULL) {
		char shown[64 * 4 + 1], at[sizeof pointer + 4];
		utf8_copy(shown, sizeof shown, twice, 64);
		*problem = refusal(400, "invalid-json",
				   "the member name \"%s\" is given twice in one object", shown);
		snprintf(at, sizeof at, "%s/", pointer);
		jf_pointer_token(at + strlen(at), sizeof at - strlen(at), twice);
		problem_add_error(*problem, at, "a member name given twice in this object");
		cJSON_Delete(root);
		return NULL;
	}
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		*problem = refusal(422, "invalid-body", "the body must be a JSON object");
		return NULL;
	}
	return root;
}

cJSON *api_json_body(struct api_req *r)
{
	const char *ct = api_header(r, "Content-Type");
	size_t ctlen = ct ? strcspn(ct, "; ") : 0;
	if (ct == NULL || ctlen != strlen("application/json") ||
	    strncasecmp(ct, "application/json", ctlen) != 0) {
		api_reply_error(r, 415, NULL, "send the body as Content-Type: application/json");
		return NULL;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
	size_t len = evbuffer_get_length(in);
	const char *text = len > 0 ? (const char *)evbuffer_pullup(in, (ev_ssize_t)len) : "";
	cJSON *problem = NULL;
	cJSON *root = api_json_parse(text, len, &problem);
	if (root == NULL)
		api_reply_problem(r, problem);
	return root;
}
