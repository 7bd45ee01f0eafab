/*
 * router: matches a method and a request path against a static route table.
 * Patterns are literal segments and {name} placeholders ("/v1/schools/{urn}"); a
 * placeholder matches one non-empty segment, percent-decoded, at most
 * ROUTER_PARAM_MAX bytes. The outcome tells 404 (no such path) from 405 (path exists,
 * other methods) and lists the allowed methods for the Allow header.
 */
#ifndef DUALREG_ROUTER_H
#define DUALREG_ROUTER_H

#include <stddef.h>

#define ROUTER_MAX_PARAMS 4
#define ROUTER_PARAM_MAX 128

/* Methods as a bit set, independent of libevent's values. */
enum router_method {
	RM_GET = 1 << 0,
	RM_HEAD = 1 << 1,
	RM_POST = 1 << 2,
	RM_PUT = 1 << 3,
	RM_PATCH = 1 << 4,
	RM_DELETE = 1 << 5,
	RM_OPTIONS = 1 << 6,
	RM_OTHER = 1 << 7,
};

/* Who may call a route. */
enum router_access { ROUTE_PUBLIC = 0, ROUTE_KEY = 1, ROUTE_ADMIN = 2 };

struct router_route {
	unsigned method; /* one enum router_method value */
	const char *pattern;
	const char *name; /* for logs and metrics, e.g. "readyz" */
	enum router_access access;
	void (*handler)(void); /* the caller's handler type, cast back on dispatch */
};

struct router_params {
	size_t n;
	char value[ROUTER_MAX_PARAMS][ROUTER_PARAM_MAX + 1];
};

enum router_outcome { ROUTER_FOUND, ROUTER_NOT_FOUND, ROUTER_BAD_METHOD };

/*
 * Finds the route for (method, path). HEAD is served by the GET route. On
 * ROUTER_BAD_METHOD, *allowed is the set of methods the path accepts (HEAD included
 * whenever GET is). Paths with a query string must have it removed first.
 */
enum router_outcome router_match(const struct router_route *routes, size_t nroutes,
				 unsigned method, const char *path,
				 const struct router_route **found, struct router_params *params,
				 unsigned *allowed);

/* "GET, HEAD, POST" for a method set, written into buf (bounded). */
void router_allow_header(unsigned allowed, char *buf, size_t buflen);

#endif
