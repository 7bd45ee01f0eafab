/*
 * sync_status: `dualregctl sync status [--json] [--school URN]`, how the two directions of
 * synchronisation are doing. Push: per webhook subscription, its deliveries by status and
 * the age of the oldest one still pending. Pull: per school with a pull_url, the cursor,
 * consecutive failures, the last error and the last success. Read-only.
 * With --school URN, that one school's integration health: the document of
 * GET /v1/schools/{urn}/sync, from the same SQL function (dualreg_sync_health).
 */
#include <cJSON.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static const char sync_usage[] = "usage: dualregctl sync status [--json] [--school URN]\n"
				 "Webhook delivery counts per subscription and the state of each\n"
				 "school pulled from a school system. With --school, one school's\n"
				 "integration health, as GET /v1/schools/{urn}/sync shows it.\n";

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

/* A member's text, or none when it is absent or null. */
static const char *sync_text(const cJSON *o, const char *name, const char *none)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : none;
}

static long long sync_count(const cJSON *o, const char *name)
{
	return (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, name));
}

/* The text rendering of a dualreg_sync_health document. */
static void sync_school_print(const cJSON *h)
{
	printf("school %s\nwebhook subscriptions:\n", sync_text(h, "urn", "?"));
	const cJSON *subs = cJSON_GetObjectItemCaseSensitive(h, "subscriptions");
	if (cJSON_GetArraySize(subs) == 0)
		printf("  none\n");
	const cJSON *s;
	cJSON_ArrayForEach(s, subs)
	{
		printf("  %lld %s %s\n    backlog %lld", sync_count(s, "id"),
		       sync_text(s, "state", "?"), sync_text(s, "url", "?"),
		       sync_count(s, "backlog"));
		const cJSON *age =
		    cJSON_GetObjectItemCaseSensitive(s, "oldest_undelivered_age_s");
		if (cJSON_IsNumber(age))
			printf(" (oldest %lld s)", (long long)age->valuedouble);
		printf(", last 24 h: %lld delivered, %lld failed\n", sync_count(s, "delivered_24h"),
		       sync_count(s, "failed_24h"));
		if (sync_text(s, "last_error", NULL) != NULL)
			printf("    last error %s: %s\n",
			       sync_text(s, "last_error_at", "(time unknown)"),
			       sync_text(s, "last_error", ""));
	}
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(h, "pull");
	if (!cJSON_IsObject(p)) {
		printf("pulled feed: none\n");
	} else {
		printf("pulled feed: %s\n"
		       "    state %s, %lld consecutive failures, next attempt %s\n"
		       "    cursor %s, last success %s\n",
		       sync_text(p, "url", "?"), sync_text(p, "state", "?"),
		       sync_count(p, "failures"), sync_text(p, "next_at", "-"),
		       sync_text(p, "cursor", "-"), sync_text(p, "last_ok_at", "never"));
		if (sync_text(p, "last_error", NULL) != NULL)
			printf("    last error %s: %s\n",
			       sync_text(p, "last_error_at", "(time unknown)"),
			       sync_text(p, "last_error", ""));
		printf("    rejected items %lld (GET %s)\n", sync_count(p, "rejected"),
		       sync_text(p, "rejections_url", "?"));
	}
	printf("last mark through the API: %s\n", sync_text(h, "last_api_mark_at", "never"));
}

/* `sync status --school URN`: 1 with a message for a school that does not exist. */
static int sync_school(PGconn *conn, const char *urn, bool json)
{
	const char *p[] = {urn};
	PGresult *r =
	    PQexecParams(conn, "SELECT dualreg_sync_health($1)", 1, NULL, p, NULL, NULL, 0);
	int rc = 0;
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "dualregctl: %s", PQresultErrorMessage(r));
		rc = 1;
	} else if (PQgetisnull(r, 0, 0)) {
		fprintf(stderr, "dualregctl: no school with URN %s\n", urn);
		rc = 1;
	} else if (json) {
		printf("%s\n", PQgetvalue(r, 0, 0));
	} else {
		cJSON *h = cJSON_Parse(PQgetvalue(r, 0, 0));
		if (h == NULL) {
			fprintf(stderr, "dualregctl: the database returned a malformed document\n");
			rc = 1;
		} else {
			sync_school_print(h);
			cJSON_Delete(h);
		}
	}
	PQclear(r);
	return rc;
}

/* `sync status`: argv[0] is "status" (the dispatcher in dualregctl.c answers --help). */
static int sync_status_main(const struct config *cfg, int argc, char **argv)
{
	bool json = false;
	const char *urn = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "--school") == 0 && i + 1 < argc && urn == NULL) {
			urn = argv[++i];
		} else {
			fputs(sync_usage, stderr);
			return 2;
		}
	}
	if (urn != NULL && (strlen(urn) != 6 || strspn(urn, "0123456789") != 6)) {
		fprintf(stderr, "dualregctl: \"%s\" is not a URN (6 digits)\n", urn);
		return 2;
	}
	PGconn *conn = ctl_connect(cfg);
	if (conn == NULL)
		return 1;
	int rc = urn != NULL ? sync_school(conn, urn, json) : sync_status(conn, json);
	PQfinish(conn);
	return rc;
}

static const struct ctl_command sync_status_command = {
    .name = "status",
    .summary = "webhook deliveries and pulls, or one school's health",
    .usage = sync_usage,
    .run = sync_status_main,
};

static const struct ctl_command *const sync_commands[] = {&sync_status_command, NULL};

const struct ctl_command ctl_sync_command = {
    .name = "sync",
    .summary = "how synchronisation with the schools' systems is doing",
    .usage = "usage: dualregctl sync COMMAND [ARGS]\n"
	     "How the two directions of synchronisation are doing: webhooks and pulls.\n",
    .subs = sync_commands,
};
