/*
 * deliveries: dualregctl deliveries list|retry — webhook deliveries for operators: what
 * is pending, delivered or failed (with the last status and error), and sending one
 * again now (same webhook-id, signed afresh by whichever daemon claims it).
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static const char deliveries_list_usage[] =
    "usage: dualregctl deliveries list [--status pending|delivered|failed]\n"
    "                                  [--subscription ID] [--limit N] [--json]\n"
    "Webhook deliveries, newest first (at most N, 1 to 10000, default 50), with their\n"
    "attempts and the last status and error.\n";
static const char deliveries_retry_usage[] =
    "usage: dualregctl deliveries retry ID\n"
    "Sends delivery ID again now (the same webhook-id, signed afresh), unless it is\n"
    "being attempted right now.\n";

static bool digits(const char *s)
{
	return s != NULL && s[0] != '\0' && strlen(s) <= 18 && strspn(s, "0123456789") == strlen(s);
}

/* The options of both commands; 0, else the exit status (after the usage on stderr). */
static int deliveries_parse(int argc, char **argv, const char *usage, const char **status,
			    const char **subscription, const char **limit, bool *json)
{
	static const struct option opts[] = {
	    {"status", required_argument, NULL, 's'}, {"subscription", required_argument, NULL, 'u'},
	    {"limit", required_argument, NULL, 'l'},  {"json", no_argument, NULL, 'j'},
	    {NULL, 0, NULL, 0},
	};
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 's': *status = optarg; break;
		case 'u': *subscription = optarg; break;
		case 'l': *limit = optarg; break;
		case 'j': *json = true; break;
		default: fputs(usage, stderr); return 2;
		}
	}
	return 0;
}

static int deliveries_list(const struct config *cfg, int argc, char **argv)
{
	const char *status = NULL, *subscription = NULL, *limit = "50";
	bool json = false;
	int prc = deliveries_parse(argc, argv, deliveries_list_usage, &status, &subscription,
				   &limit, &json);
	if (prc != 0)
		return prc;
	if ((status != NULL && strcmp(status, "pending") != 0 && strcmp(status, "delivered") != 0 &&
	     strcmp(status, "failed") != 0) ||
	    (subscription != NULL && !digits(subscription)) || !digits(limit) ||
	    atoi(limit) < 1 || atoi(limit) > 10000) {
		fputs(deliveries_list_usage, stderr);
		return 2;
	}
	PGconn *conn = ctl_connect(cfg);
	if (conn == NULL)
		return 1;
	const char *params[] = {status, subscription, limit};
	PGresult *r = PQexecParams(
	    conn,
	    "SELECT d.id, d.subscription_id, 'evt_' || d.event_id, e.type, d.status, d.attempts, "
	    "coalesce(d.last_status::text, '-'), coalesce(d.last_error, ''), "
	    "json_build_object('id', d.id, 'subscription_id', d.subscription_id, 'event_id', "
	    "'evt_' || d.event_id, 'type', e.type, 'status', d.status, 'attempts', d.attempts, "
	    "'last_status', d.last_status, 'last_error', d.last_error, 'next_attempt_at', "
	    "CASE WHEN d.status = 'pending' THEN d.next_attempt_at END) "
	    "FROM deliveries d JOIN events e ON e.id = d.event_id "
	    "WHERE ($1::text IS NULL OR d.status = $1) AND ($2::bigint IS NULL OR "
	    "d.subscription_id = $2::bigint) ORDER BY d.id DESC LIMIT $3::integer",
	    3, NULL, params, NULL, NULL, 0);
	int rc = 0;
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "dualregctl: %s", PQresultErrorMessage(r));
		rc = 1;
	} else if (json) {
		printf("[");
		for (int i = 0; i < PQntuples(r); i++)
			printf("%s%s", i ? "," : "", PQgetvalue(r, i, 8));
		printf("]\n");
	} else {
		printf("%-8s %-6s %-14s %-22s %-10s %-8s %-6s %s\n", "ID", "SUB", "EVENT", "TYPE",
		       "STATUS", "ATTEMPTS", "LAST", "ERROR");
		for (int i = 0; i < PQntuples(r); i++)
			printf("%-8s %-6s %-14s %-22s %-10s %-8s %-6s %s\n", PQgetvalue(r, i, 0),
			       PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
			       PQgetvalue(r, i, 4), PQgetvalue(r, i, 5), PQgetvalue(r, i, 6),
			       PQgetvalue(r, i, 7));
	}
	PQclear(r);
	PQfinish(conn);
	return rc;
}

static int deliveries_retry(const struct config *cfg, int argc, char **argv)
{
	const char *status = NULL, *subscription = NULL, *limit = "50";
	bool json = false;
	int prc = deliveries_parse(argc, argv, deliveries_retry_usage, &status, &subscription,
				   &limit, &json);
	if (prc != 0)
		return prc;
	const char *id = optind < argc ? argv[optind] : NULL;
	if (!digits(id)) {
		fputs(deliveries_retry_usage, stderr);
		return 2;
	}
	PGconn *conn = ctl_connect(cfg);
	if (conn == NULL)
		return 1;
	const char *params[] = {id};
	PGresult *r = PQexecParams(conn,
				   "WITH u AS (UPDATE deliveries SET status = 'pending', "
				   "next_attempt_at = now(), lease_until = NULL, lease_owner = NULL "
				   "WHERE id = $1::bigint AND NOT coalesce(lease_until > now(), false) "
				   "RETURNING id) SELECT count(*), pg_notify('dualreg_events', '') "
				   "FROM u",
				   1, NULL, params, NULL, NULL, 0);
	int rc = 0;
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "dualregctl: %s", PQresultErrorMessage(r));
		rc = 1;
	} else if (strcmp(PQgetvalue(r, 0, 0), "1") != 0) {
		fprintf(stderr, "dualregctl: no delivery %s, or it is being attempted right now\n",
			id);
		rc = 1;
	} else {
		printf("delivery %s queued to be sent again\n", id);
	}
	PQclear(r);
	PQfinish(conn);
	return rc;
}

static const struct ctl_command deliveries_list_command = {
    .name = "list",
    .summary = "webhook deliveries: pending, delivered, failed",
    .usage = deliveries_list_usage,
    .run = deliveries_list,
};

static const struct ctl_command deliveries_retry_command = {
    .name = "retry",
    .summary = "send a webhook delivery again now",
    .usage = deliveries_retry_usage,
    .run = deliveries_retry,
};

static const struct ctl_command *const deliveries_commands[] = {
    &deliveries_list_command, &deliveries_retry_command, NULL,
};

const struct ctl_command ctl_deliveries_command = {
    .name = "deliveries",
    .summary = "webhook deliveries",
    .usage = "usage: dualregctl deliveries COMMAND [ARGS]\n"
	     "Webhook deliveries for operators: what is pending, delivered or failed, and\n"
	     "sending one again.\n",
    .subs = deliveries_commands,
};
