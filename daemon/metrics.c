/* metrics: counters and their Prometheus rendering (see metrics.h). */
#include "dualreg/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/db.h"
#include "dualreg/outbox.h"
#include "dualreg/xalloc.h"

static const double buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])

struct route_counters {
	unsigned long long by_status[600];
	unsigned long long bucket[NBUCKETS]; /* cumulative at render time */
	unsigned long long count;
	double sum;
};

static const char *route_names[METRICS_MAX_ROUTES];
static size_t nroutes;
static struct route_counters routes[METRICS_MAX_ROUTES + 1]; /* last: unrouted */
static unsigned long long rate_limited;
static unsigned long long marks_by[3][4]; /* [api, pull, web][created, amended, unchanged, rejected] */
static unsigned long long pull_runs[2];   /* [failed, ok] */

void metrics_set_routes(const char *const *names, size_t n)
{
	nroutes = n < METRICS_MAX_ROUTES ? n : METRICS_MAX_ROUTES;
	for (size_t i = 0; i < nroutes; i++)
		route_names[i] = names[i];
}

void metrics_http(size_t route, int status, double seconds)
{
	struct route_counters *c = &routes[route < nroutes ? route : METRICS_MAX_ROUTES];
	if (status >= 100 && status < 600)
		c->by_status[status]++;
	for (size_t i = 0; i < NBUCKETS; i++) {
		if (seconds <= buckets[i]) {
			c->bucket[i]++;
			break;
		}
	}
	c->count++;
	c->sum += seconds;
}

void metrics_rate_limited(void)
{
	rate_limited++;
}

void metrics_marks(const char *source, long created, long amended, long unchanged, long rejected)
{
	int s = strcmp(source, "pull") == 0 ? 1 : strcmp(source, "web") == 0 ? 2 : 0;
	marks_by[s][0] += (unsigned long long)created;
	marks_by[s][1] += (unsigned long long)amended;
	marks_by[s][2] += (unsigned long long)unchanged;
	marks_by[s][3] += (unsigned long long)rejected;
}

void metrics_pull_run(int ok)
{
	pull_runs[ok ? 1 : 0]++;
}

struct out {
	char *p;
	size_t len, cap;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		o->cap *= 2;
		o->p = xrealloc(o->p, o->cap);
	}
}

static const char *route_label(size_t i)
{
	return i < nroutes ? route_names[i] : "unrouted";
}

char *metrics_render(const struct metrics_snapshot *snap)
{
	struct out o = {xmalloc(16384), 0, 16384};
	put(&o, "# HELP dualreg_http_requests_total HTTP requests answered, by route and status.\n"
		"# TYPE dualreg_http_requests_total counter\n");
	for (size_t i = 0; i <= METRICS_MAX_ROUTES; i++)
		for (int st = 100; st < 600; st++)
			if (routes[i].by_status[st])
				put(&o, "dualreg_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
				    route_label(i), st, routes[i].by_status[st]);
	put(&o, "# HELP dualreg_http_request_duration_seconds Time from request to reply.\n"
		"# TYPE dualreg_http_request_duration_seconds histogram\n");
	for (size_t i = 0; i <= METRICS_MAX_ROUTES; i++) {
		const struct route_counters *c = &routes[i];
		if (c->count == 0)
			continue;
		unsigned long long cum = 0;
		for (size_t b = 0; b < NBUCKETS; b++) {
			cum += c->bucket[b];
			put(&o, "dualreg_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
			    route_label(i), buckets[b], cum);
		}
		put(&o, "dualreg_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
		    route_label(i), c->count);
		put(&o, "dualreg_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", route_label(i),
		    c->sum);
		put(&o, "dualreg_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
		    route_label(i), c->count);
	}
	put(&o, "# HELP dualreg_rate_limited_total Requests refused by a key's rate limit.\n"
		"# TYPE dualreg_rate_limited_total counter\ndualreg_rate_limited_total %llu\n",
	    rate_limited);
	static const char *const statuses[] = {"created", "amended", "unchanged", "rejected"};
	static const char *const sources[] = {"api", "pull", "web"};
	put(&o, "# HELP dualreg_marks_total Marks received, by source and outcome.\n"
		"# TYPE dualreg_marks_total counter\n");
	for (int s = 0; s < 3; s++)
		for (int k = 0; k < 4; k++)
			put(&o, "dualreg_marks_total{source=\"%s\",status=\"%s\"} %llu\n", sources[s],
			    statuses[k], marks_by[s][k]);
	put(&o, "# HELP dualreg_pull_runs_total Feed reads, by outcome.\n"
		"# TYPE dualreg_pull_runs_total counter\n"
		"dualreg_pull_runs_total{outcome=\"ok\"} %llu\n"
		"dualreg_pull_runs_total{outcome=\"failed\"} %llu\n",
	    pull_runs[1], pull_runs[0]);
	if (snap->pool != NULL)
		put(&o,
		    "# HELP dualreg_db_connections Database pool connections, by state.\n"
		    "# TYPE dualreg_db_connections gauge\n"
		    "dualreg_db_connections{state=\"size\"} %u\n"
		    "dualreg_db_connections{state=\"connected\"} %u\n"
		    "dualreg_db_connections{state=\"busy\"} %u\n"
		    "# HELP dualreg_db_waiting Work waiting for a database connection.\n"
		    "# TYPE dualreg_db_waiting gauge\ndualreg_db_waiting %u\n"
		    "# HELP dualreg_db_reconnects_total Database reconnections.\n"
		    "# TYPE dualreg_db_reconnects_total counter\ndualreg_db_reconnects_total %lu\n",
		    snap->pool->size, snap->pool->connected, snap->pool->busy, snap->pool->waiting,
		    snap->pool->reconnects);
	if (snap->outbox != NULL)
		put(&o,
		    "# HELP dualreg_delivery_attempts_total Webhook delivery attempts, by outcome.\n"
		    "# TYPE dualreg_delivery_attempts_total counter\n"
		    "dualreg_delivery_attempts_total{outcome=\"delivered\"} %lu\n"
		    "dualreg_delivery_attempts_total{outcome=\"retry\"} %lu\n"
		    "dualreg_delivery_attempts_total{outcome=\"failed\"} %lu\n"
		    "# HELP dualreg_deliveries_in_flight Webhook attempts in progress here.\n"
		    "# TYPE dualreg_deliveries_in_flight gauge\ndualreg_deliveries_in_flight %u\n",
		    snap->outbox->delivered, snap->outbox->retried, snap->outbox->failed,
		    snap->outbox->in_flight);
	if (snap->outbox_backlog >= 0)
		put(&o,
		    "# HELP dualreg_outbox_backlog Deliveries waiting (all daemons).\n"
		    "# TYPE dualreg_outbox_backlog gauge\ndualreg_outbox_backlog %ld\n"
		    "# HELP dualreg_outbox_oldest_seconds Age of the oldest waiting delivery.\n"
		    "# TYPE dualreg_outbox_oldest_seconds gauge\ndualreg_outbox_oldest_seconds %.3f\n",
		    snap->outbox_backlog, snap->outbox_oldest_s);
	if (snap->alerts_absent >= 0)
		put(&o,
		    "# HELP dualreg_alerts_last_24h Same-day alerts raised in the last 24 hours "
		    "(all daemons), by type.\n"
		    "# TYPE dualreg_alerts_last_24h gauge\n"
		    "dualreg_alerts_last_24h{type=\"attendance.absent\"} %ld\n"
		    "dualreg_alerts_last_24h{type=\"attendance.missing\"} %ld\n",
		    snap->alerts_absent, snap->alerts_missing);
	return o.p;
}
