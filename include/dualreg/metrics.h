/*
 * metrics: the daemon's counters, and their Prometheus text rendering for GET /metrics.
 * Owns process-wide counters fed by the HTTP server (requests by route and status,
 * latency histograms), auth (rate-limit refusals), the marks handler and the feed
 * reader (marks by source), and the feed reader's runs; gauges (database pool,
 * deliveries, outbox backlog) are read when rendering. One event loop: no locking.
 */
#ifndef DUALREG_METRICS_H
#define DUALREG_METRICS_H

#include <stddef.h>

#define METRICS_MAX_ROUTES 64

struct dbp_stats;
struct outbox_stats;

/* Set once: the route names, in route-table order (index = route index). */
void metrics_set_routes(const char *const *names, size_t n);
void metrics_http(size_t route, int status, double seconds);
void metrics_rate_limited(void);
/* Marks written by source ("api" or "pull"): counts of created/amended/unchanged/rejected. */
void metrics_marks(const char *source, long created, long amended, long unchanged, long rejected);
void metrics_pull_run(int ok);

/* Gauges and totals read at scrape time. */
struct metrics_snapshot {
	const struct dbp_stats *pool;
	const struct outbox_stats *outbox;
	long outbox_backlog;       /* pending deliveries, -1 if unknown */
	double outbox_oldest_s;    /* age of the oldest pending delivery */
	long alerts_absent, alerts_missing; /* raised in the last 24 h (all daemons); -1 unknown */
};

/* Renders everything in the Prometheus text format (0.0.4); caller frees. */
char *metrics_render(const struct metrics_snapshot *snap);

#endif
