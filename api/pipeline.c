/*
 * pipeline: the stages before a handler (see pipeline.h), as one table. The order is
 * the order of the answers a client can get: have you failed too often from where you
 * are (429, before any token is looked at), who are you (401), may you call this
 * (403), not so fast (429), and only then has this request been made before (the
 * Idempotency-Key claim, which is per key and must not be taken by a refused request).
 * The request carries its position (struct req, request.h), so a stage that waits for
 * the database continues where it left off.
 */
#include "pipeline.h"

#include <stdbool.h>

#include "auth.h"
#include "idempotency.h"
#include "request.h"

typedef void (*stage_fn)(struct api_req *r, void (*next)(struct api_req *r));

struct stage {
	const char *name;
	bool (*applies)(const struct router_route *route, unsigned method);
	stage_fn run;
};

static bool keyed(const struct router_route *route, unsigned method)
{
	(void)method;
	return route->access != ROUTE_PUBLIC;
}

static bool admin_only(const struct router_route *route, unsigned method)
{
	(void)method;
	return route->access == ROUTE_ADMIN;
}

static bool idempotent_post(const struct router_route *route, unsigned method)
{
	return idem_applies(method, route->access);
}

static const struct stage stages[] = {
    {"authenticate", keyed, auth_authenticate},
    {"authorize", admin_only, auth_authorize},
    {"rate-limit", keyed, auth_rate_limit},
    {"idempotency", idempotent_post, idem_begin},
};
#define NSTAGES (sizeof stages / sizeof stages[0])

void pipeline_start(struct api_req *r)
{
	req_of(r)->stage = 0;
	pipeline_next(r);
}

void pipeline_next(struct api_req *r)
{
	struct req *q = req_of(r);
	while (q->stage < NSTAGES) {
		const struct stage *s = &stages[q->stage++];
		if (s->applies(r->route, r->method)) {
			s->run(r, pipeline_next);
			return;
		}
	}
	((api_handler_fn)r->route->handler)(r);
}

size_t pipeline_stages(const struct router_route *route, unsigned method, const char **names,
		       size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < NSTAGES; i++) {
		if (!stages[i].applies(route, method))
			continue;
		if (n < max)
			names[n] = stages[i].name;
		n++;
	}
	return n;
}
