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

static void usage(FILE *out)
{
	fprintf(out, "usage: dualregctl deliveries list [--status pending|delivered|failed]\n"
		     "                                  [--subscription ID] [--limit N] [--json]\n"
		     "       dualregctl deliveries retry ID\n");
}

static bool digits(const char *s)
{
	return s != NULL && s[0] != '\0' && strlen(s) <= 18 && strspn(s, "0123456789") == strlen(s);
}

int ctl_cmd_deliveries(const struct config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"status", required_argument, NULL, 's'}, {"subscription", required_argument, NULL, 'u'},
	    {"limit", required_argument, NULL, 'l'},  {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
	};
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *sub = argv[1], *status = NULL, *subscription = NULL, *limit = "50";
	bool json = false;
	int opt;
	optind = 2;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 's': status = optarg; break;
		case 'u': subscription = optarg; break;
		case 'l': limit = optarg; break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (strcmp(sub, "list") == 0) {
		if ((status != NULL && strcmp(status, "pending") != 0 && strcmp(status, "delivered") != 0 &&
		     strcmp(status, "failed") != 0) ||
		    (subscription != NULL && !digits(subscription)) || !digits(limit) ||
		    atoi(limit) < 1 || atoi(limit) > 10000) {
			usage(stderr);
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
	if (strcmp(sub, "retry") == 0) {
		const char *id = optind < argc ? argv[optind] : NULL;
		if (!digits(id)) {
			usage(stderr);
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
	fprintf(stderr, "dualregctl: unknown deliveries command \"%s\"\n", sub);
	usage(stderr);
	return 2;
}
