/*
 * metrics: GET /metrics in the Prometheus text format (metrics.h). For an admin key,
 * or for the [metrics] token when one is configured. Counters come from memory; the
 * outbox backlog and the last day's alerts are read from the database (both through
 * partial indexes), and left out when it does not answer.
 */
#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/config.h"
#include "dualreg/db.h"
#include "dualreg/metrics.h"
#include "dualreg/outbox.h"
#include "dualreg/xalloc.h"
#include "auth.h"
#include "handlers.h"

static void rendered(struct api_req *r, PGresult *res)
{
	struct dbp_stats pool;
	struct outbox_stats ob;
	dbp_stats(r->env->db, &pool);
	struct metrics_snapshot snap = {.pool = &pool, .outbox_backlog = -1, .alerts_absent = -1};
	if (r->env->outbox != NULL) {
		outbox_stats(r->env->outbox, &ob);
		snap.outbox = &ob;
	}
	if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		snap.outbox_backlog = atol(PQgetvalue(res, 0, 0));
		snap.outbox_oldest_s = atof(PQgetvalue(res, 0, 1));
		snap.alerts_absent = atol(PQgetvalue(res, 0, 2));
		snap.alerts_missing = atol(PQgetvalue(res, 0, 3));
	}
	char *text = metrics_render(&snap);
	/* The change feed's long polls (h_changes.c), after the registry's metrics. */
	struct changes_stats cs;
	changes_get_stats(&cs);
	char feed[768];
	snprintf(feed, sizeof feed,
		 "# HELP dualreg_changes_waits Change-feed long polls (wait=) in progress.\n"
		 "# TYPE dualreg_changes_waits gauge\n"
		 "dualreg_changes_waits %u\n"
		 "# HELP dualreg_changes_waits_refused_total Long polls refused (429): the key "
		 "had [limits] max_waits in progress.\n"
		 "# TYPE dualreg_changes_waits_refused_total counter\n"
		 "dualreg_changes_waits_refused_total %llu\n"
		 "# HELP dualreg_changes_requeries_total Change-feed queries made again by long "
		 "polls woken by a notification or re-checking.\n"
		 "# TYPE dualreg_changes_requeries_total counter\n"
		 "dualreg_changes_requeries_total %llu\n",
		 cs.waits, cs.waits_refused, cs.requeries);
	size_t n = strlen(text), m = strlen(feed);
	char *all = xmalloc(n + m + 1);
	memcpy(all, text, n);
	memcpy(all + n, feed, m + 1);
	free(text);
	all = audit_metrics_append(r, all); /* the access audit's backlog (h_audit.c) */
	/* The listener's client connections (server.c). */
	struct api_conn_stats conns;
	api_server_conn_stats(&conns);
	char *with_conns = xasprintf(
	    "%s# HELP dualreg_http_connections_open Client connections open now.\n"
	    "# TYPE dualreg_http_connections_open gauge\n"
	    "dualreg_http_connections_open %u\n"
	    "# HELP dualreg_http_connections_refused_total Connections closed at once beyond "
	    "[server] max_connections.\n"
	    "# TYPE dualreg_http_connections_refused_total counter\n"
	    "dualreg_http_connections_refused_total %llu\n"
	    "# HELP dualreg_http_read_timeouts_total Connections closed because a request did "
	    "not arrive within [server] read_timeout.\n"
	    "# TYPE dualreg_http_read_timeouts_total counter\n"
	    "dualreg_http_read_timeouts_total %llu\n",
	    all, conns.open, conns.refused, conns.read_timeouts);
	free(all);
	all = with_conns;
	api_reply_raw(r, 200, "text/plain; version=0.0.4", all);
	free(all);
}

static void serve(struct api_req *r)
{
	api_query(r,
		  "SELECT (SELECT count(*) FROM deliveries WHERE status = 'pending'), "
		  "coalesce((SELECT extract(epoch FROM now() - min(created_at)) FROM deliveries "
		  "WHERE status = 'pending'), 0), "
		  "(SELECT count(*) FROM events WHERE type = 'attendance.absent' "
		  "AND occurred_at > now() - interval '24 hours'), "
		  "(SELECT count(*) FROM events WHERE type = 'attendance.missing' "
		  "AND occurred_at > now() - interval '24 hours')",
		  0, NULL, rendered);
}

static void serve_admin(struct api_req *r)
{
	if (!r->key.admin) {
		api_reply_error(r, 403, NULL, "metrics need an admin key or the metrics token");
		return;
	}
	serve(r);
}

static void authenticated(struct api_req *r)
{
	auth_rate_limit(r, serve_admin);
}

void h_metrics(struct api_req *r)
{
	const char *token = r->env->cfg->metrics_token;
	const char *h = api_header(r, "Authorization");
	/* Compared in constant time, like any secret. */
	if (token != NULL && h != NULL && strncmp(h, "Bearer ", 7) == 0 &&
	    strlen(h + 7) == strlen(token) && CRYPTO_memcmp(h + 7, token, strlen(token)) == 0) {
		serve(r);
		return;
	}
	/* Otherwise a key, which passes the stages a keyed route does (pipeline.c), and
	 * must be an admin's. */
	auth_authenticate(r, authenticated);
}
