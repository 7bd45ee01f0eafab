/*
 * sync_status: `dualregctl sync status [--json]`, how the two directions of
 * synchronisation are doing. Push: per webhook subscription, its deliveries by status and
 * the age of the oldest one still pending. Pull: per school with a pull_url, the cursor,
 * consecutive failures, the last error and the last success. Read-only.
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static const char sync_usage[] = "usage: dualregctl sync status [--json]\n"
				 "Webhook delivery counts per subscription and the state of each\n"
				 "school pulled from a school system.\n";

/* One row per subscription (not deleted) with its delivery counts. */
#define SYNC_SUBS_SQL                                                                     \
	"SELECT s.id, s.urn, s.url, s.disabled_at IS NOT NULL AS disabled, "                  \
	"       count(d.id) FILTER (WHERE d.status = 'pending') AS pending, "                \
	"       count(d.id) FILTER (WHERE d.status = 'failed') AS failed, "                  \
	"       count(d.id) FILTER (WHERE d.status = 'delivered') AS delivered, "            \
	"       floor(extract(epoch FROM now() - min(d.created_at) "                          \
	"             FILTER (WHERE d.status = 'pending')))::bigint AS oldest_pending_s "      \
	"  FROM subscriptions s LEFT JOIN deliveries d ON d.subscription_id = s.id "          \
	" WHERE s.deleted_at IS NULL GROUP BY s.id ORDER BY s.id"

#define SYNC_PULLS_SQL                                                                    \
	"SELECT urn, pull_url, pull_cursor AS cursor, pull_failures AS failures, "            \
	"       pull_last_error AS last_error, pull_last_ok_at AS last_ok_at "                \
	"  FROM schools WHERE pull_url IS NOT NULL ORDER BY urn"

static PGresult *sync_query(PGconn *conn, const char *sql)
{
	PGresult *r = PQexecParams(conn, sql, 0, NULL, NULL, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "dualregctl: %s", PQresultErrorMessage(r));
		PQclear(r);
		return NULL;
	}
	return r;
}

static int sync_status(PGconn *conn, bool json)
{
	if (json) {
		PGresult *r = sync_query(
		    conn, "SELECT json_build_object("
			  "'subscriptions', (SELECT coalesce(json_agg(x), '[]') FROM (" SYNC_SUBS_SQL
			  ") x), "
			  "'pulls', (SELECT coalesce(json_agg(y), '[]') FROM (" SYNC_PULLS_SQL ") y))");
		if (r == NULL)
			return 1;
		printf("%s\n", PQgetvalue(r, 0, 0));
		PQclear(r);
		return 0;
	}
	PGresult *subs = sync_query(conn, SYNC_SUBS_SQL);
	if (subs == NULL)
		return 1;
	printf("webhook subscriptions:\n");
	if (PQntuples(subs) == 0)
		printf("  none\n");
	else
		printf("  %-6s %-7s %-9s %8s %7s %10s %12s  %s\n", "ID", "URN", "STATE", "PENDING",
		       "FAILED", "DELIVERED", "OLDEST(s)", "URL");
	for (int i = 0; i < PQntuples(subs); i++)
		printf("  %-6s %-7s %-9s %8s %7s %10s %12s  %s\n", PQgetvalue(subs, i, 0),
		       PQgetvalue(subs, i, 1),
		       strcmp(PQgetvalue(subs, i, 3), "t") == 0 ? "disabled" : "active",
		       PQgetvalue(subs, i, 4), PQgetvalue(subs, i, 5), PQgetvalue(subs, i, 6),
		       PQgetisnull(subs, i, 7) ? "-" : PQgetvalue(subs, i, 7),
		       PQgetvalue(subs, i, 2));
	PQclear(subs);
	PGresult *pulls = sync_query(conn, SYNC_PULLS_SQL);
	if (pulls == NULL)
		return 1;
	printf("pulled schools:\n");
	if (PQntuples(pulls) == 0)
		printf("  none\n");
	for (int i = 0; i < PQntuples(pulls); i++)
		printf("  %s %s\n    cursor %s, failures %s, last ok %s, last error %s\n",
		       PQgetvalue(pulls, i, 0), PQgetvalue(pulls, i, 1),
		       PQgetisnull(pulls, i, 2) ? "-" : PQgetvalue(pulls, i, 2),
		       PQgetvalue(pulls, i, 3),
		       PQgetisnull(pulls, i, 5) ? "never" : PQgetvalue(pulls, i, 5),
		       PQgetisnull(pulls, i, 4) ? "-" : PQgetvalue(pulls, i, 4));
	PQclear(pulls);
	return 0;
}

int ctl_cmd_sync(const struct config *cfg, int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(sync_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "status") != 0) {
		fprintf(stderr, "dualregctl: unknown sync command \"%s\"\n", argv[1]);
		fputs(sync_usage, stderr);
		return 2;
	}
	bool json = false;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "--help") == 0) {
			fputs(sync_usage, stdout);
			return 0;
		} else {
			fputs(sync_usage, stderr);
			return 2;
		}
	}
	PGconn *conn = ctl_connect(cfg);
	if (conn == NULL)
		return 1;
	int rc = sync_status(conn, json);
	PQfinish(conn);
	return rc;
}
