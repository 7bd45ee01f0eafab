/*
 * router: matches a method and a request path against a static route table.
 * Patterns are literal segments and {name} placeholders ("/v1/schools/{urn}"); a
 * placeholder matches one non-empty segment, percent-decoded, at most
 * ROUTER_PARAM_MAX bytes. The outcome tells 404 (no such path) from 405 (path exists,
 * other methods) and lists the allowed methods for the Allow header. Also reads the
 * query string (router_query_*).
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

/* What the end of a request does for its route, beyond the handler's reply (a bit set;
 * tests/check_router.c holds the API's table to them). */
enum router_flag {
	/* A read of one pupil's data, recorded in the access audit when answered 200; the
	 * route's first parameter is the pupil's UPN. */
	ROUTE_AUDIT_READ = 1 << 0,
	/* A write: answering it forgets the cached status bodies (status_cache.h). */
	ROUTE_INVALIDATES_STATUS = 1 << 1,
};

struct router_route {
	unsigned method; /* one enum router_method value */
	const char *pattern;
	const char *name; /* "resource.action", for the access log, metrics and the audit */
	enum router_access access;
	unsigned flags; /* enum router_flag values */
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
/* The name of one method ("PATCH"); "OTHER" for RM_OTHER. */
const char *router_method_name(unsigned method);

/*
 * The query string, read strictly and once, so that no handler sees a parameter that
 * is not what the client sent. Parameters are separated by "&"; each is "name=value",
 * or "name" alone, which has an empty value (as URLSearchParams reads it); empty
 * pieces ("a=1&&b=2", a trailing "&") are skipped. Names and values are decoded: %XX
 * escapes, "+" as a space. Refused, with why: a malformed escape, an escape decoding to
 * NUL (it would cut the value short), a name or value that is not UTF-8 once decoded,
 * and a name given twice (which of the two would count is a guess).
 */
struct router_query {
	size_t n;
	const char **name, **value; /* n each, into buf */
	char *buf;
};

/* Parses query (raw, after "?"; NULL: none) into q. 0, or -1 with why and the
 * offending parameter's decoded name (or "" if the name itself is bad) in bad_name;
 * q needs router_query_free either way. */
int router_query_parse(const char *query, struct router_query *q, char *why, size_t whylen,
		       char *bad_name, size_t bad_name_len);
/* The decoded value of parameter name, or NULL if absent. */
const char *router_query_find(const struct router_query *q, const char *name);
void router_query_free(struct router_query *q);

#endif
