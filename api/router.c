/*
 * router: a linear walk over a small static table. With a few dozen routes a walk is
 * cheaper than building a trie, and keeps the table readable as the API's index.
 */
#include "dualreg/router.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/utf8.h"
#include "dualreg/xalloc.h"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes one path segment [s, s+len) into out; false if malformed or too long. */
static bool decode_segment(const char *s, size_t len, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '%') {
			if (i + 2 >= len)
				return false;
			int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0)
				return false;
			c = (char)(hi * 16 + lo);
			if (c == '\0')
				return false;
			i += 2;
		}
		if (o >= ROUTER_PARAM_MAX)
			return false;
		out[o++] = c;
	}
	out[o] = '\0';
	return o > 0;
}

/* Matches path against pattern, filling params; false on mismatch. */
static bool match_pattern(const char *pattern, const char *path, struct router_params *params)
{
	const char *p = pattern, *q = path;
	params->n = 0;
	while (*p != '\0' && *q != '\0') {
		if (*p != '/' || *q != '/')
			return false;
		p++;
		q++;
		size_t plen = strcspn(p, "/");
		size_t qlen = strcspn(q, "/");
		if (p[0] == '{') {
			if (qlen == 0 || params->n >= ROUTER_MAX_PARAMS)
				return false;
			if (!decode_segment(q, qlen, params->value[params->n]))
				return false;
			params->n++;
		} else if (plen != qlen || memcmp(p, q, plen) != 0) {
			return false;
		}
		p += plen;
		q += qlen;
	}
	return *p == '\0' && *q == '\0';
}

enum router_outcome router_match(const struct router_route *routes, size_t nroutes,
				 unsigned method, const char *path,
				 const struct router_route **found, struct router_params *params,
				 unsigned *allowed)
{
	unsigned want = method == RM_HEAD ? RM_GET : method;
	struct router_params scratch;
	*allowed = 0;
	*found = NULL;
	for (size_t i = 0; i < nroutes; i++) {
		if (!match_pattern(routes[i].pattern, path, &scratch))
			continue;
		if (routes[i].method == want && *found == NULL) {
			*found = &routes[i];
			*params = scratch;
		}
		*allowed |= routes[i].method;
	}
	if (*found != NULL)
		return ROUTER_FOUND;
	if (*allowed == 0)
		return ROUTER_NOT_FOUND;
	if (*allowed & RM_GET)
		*allowed |= RM_HEAD;
	*allowed |= RM_OPTIONS;
	return ROUTER_BAD_METHOD;
}

/* In the order an Allow header lists them. */
static const struct {
	unsigned m;
	const char *name;
} method_names[] = {{RM_GET, "GET"},   {RM_HEAD, "HEAD"},     {RM_POST, "POST"},
		    {RM_PUT, "PUT"},   {RM_PATCH, "PATCH"},   {RM_DELETE, "DELETE"},
		    {RM_OPTIONS, "OPTIONS"}};
#define NMETHODS (sizeof method_names / sizeof method_names[0])

void router_allow_header(unsigned allowed, char *buf, size_t buflen)
{
	size_t o = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < NMETHODS; i++) {
		if (!(allowed & method_names[i].m))
			continue;
		int n = snprintf(buf + o, buflen - o, "%s%s", o ? ", " : "", method_names[i].name);
		if (n < 0 || (size_t)n >= buflen - o)
			break;
		o += (size_t)n;
	}
}

const char *router_method_name(unsigned method)
{
	for (size_t i = 0; i < NMETHODS; i++)
		if (method_names[i].m == method)
			return method_names[i].name;
	return "OTHER";
}

/* Decodes the query piece [s, s+len) (%XX, "+" as a space) into out, NUL-terminated;
 * false for a malformed escape or one that decodes to NUL. */
static bool query_decode(const char *s, size_t len, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			int hi = i + 2 < len ? hexval(s[i + 1]) : -1;
			int lo = i + 2 < len ? hexval(s[i + 2]) : -1;
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return false;
			c = (char)(hi * 16 + lo);
			i += 2;
		}
		out[o++] = c;
	}
	out[o] = '\0';
	return true;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int router_query_parse(const char *query, struct router_query *q, char *why, size_t whylen,
		       char *bad_name, size_t bad_name_len)
{
	memset(q, 0, sizeof *q);
	bad_name[0] = '\0';
	if (query == NULL || query[0] == '\0')
		return 0;
	size_t qlen = strlen(query), max = 1;
	for (const char *c = query; *c != '\0'; c++)
		max += *c == '&';
	q->name = xcalloc(max, sizeof *q->name);
	q->value = xcalloc(max, sizeof *q->value);
	/* Each piece decodes to at most its own length, plus two terminators. */
	q->buf = xmalloc(2 * qlen + 2);
	char *o = q->buf;
	for (const char *p = query; *p != '\0';) {
		size_t len = strcspn(p, "&");
		const char *eq = memchr(p, '=', len);
		size_t nlen = eq != NULL ? (size_t)(eq - p) : len;
		if (len > 0) {
			char *name = o;
			if (!query_decode(p, nlen, name) || utf8_length(name) == UTF8_INVALID) {
				snprintf(why, whylen, "a parameter name in the query string is "
						      "malformed (a bad %%-escape or not UTF-8)");
				return -1;
			}
			o += strlen(name) + 1;
			char *value = o;
			const char *v = eq != NULL ? eq + 1 : p + len;
			if (!query_decode(v, (size_t)(p + len - v), value) ||
			    utf8_length(value) == UTF8_INVALID) {
				utf8_copy(bad_name, bad_name_len, name, 64);
				snprintf(why, whylen,
					 "the value of \"%s\" is malformed (a bad %%-escape, an "
					 "escaped NUL or not UTF-8)",
					 bad_name);
				return -1;
			}
			o += strlen(value) + 1;
			q->name[q->n] = name;
			q->value[q->n] = value;
			q->n++;
		}
		p += len;
		if (*p == '&')
			p++;
	}
	/* A name given twice: sorted copies of the names make any repeat adjacent. */
	if (q->n < 2)
		return 0;
	const char **sorted = xcalloc(q->n + 1, sizeof *sorted);
	memcpy(sorted, q->name, q->n * sizeof *sorted);
	qsort(sorted, q->n, sizeof *sorted, name_cmp);
	for (size_t i = 1; i < q->n; i++) {
		if (strcmp(sorted[i - 1], sorted[i]) == 0) {
			utf8_copy(bad_name, bad_name_len, sorted[i], 64);
			snprintf(why, whylen, "\"%s\" is given more than once in the query string",
				 bad_name);
			free(sorted);
			return -1;
		}
	}
	free(sorted);
	return 0;
}

const char *router_query_find(const struct router_query *q, const char *name)
{
	for (size_t i = 0; i < q->n; i++)
		if (strcmp(q->name[i], name) == 0)
			return q->value[i];
	return NULL;
}

void router_query_free(struct router_query *q)
{
	free(q->name);
	free(q->value);
	free(q->buf);
	memset(q, 0, sizeof *q);
}
