/*
 * router: a linear walk over a small static table. With a few dozen routes a walk is
 * cheaper than building a trie, and keeps the table readable as the API's index.
 */
#include "dualreg/router.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

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

void router_allow_header(unsigned allowed, char *buf, size_t buflen)
{
	static const struct {
		unsigned m;
		const char *name;
	} names[] = {{RM_GET, "GET"},     {RM_HEAD, "HEAD"},     {RM_POST, "POST"},
		     {RM_PUT, "PUT"},     {RM_PATCH, "PATCH"},   {RM_DELETE, "DELETE"},
		     {RM_OPTIONS, "OPTIONS"}};
	size_t o = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (!(allowed & names[i].m))
			continue;
		int n = snprintf(buf + o, buflen - o, "%s%s", o ? ", " : "", names[i].name);
		if (n < 0 || (size_t)n >= buflen - o)
			break;
		o += (size_t)n;
	}
}
