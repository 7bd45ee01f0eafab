/*
 * purge: `dualregctl purge --before YYYY-MM-DD [--force]`, the retention job. Deletes,
 * in one transaction, the marks and mark history of sessions before the date, the
 * events that occurred before it (with their webhook deliveries) and the access audit
 * records whose last read was before it, and prints how many of each went. "Before the
 * date" for timestamps means before its midnight in Europe/London, as dualreg_today()
 * decides days.
 *
 * Attendance records must be kept for six years, so a date less than six years before
 * today (dualreg_today()) is refused unless --force is given.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "dualreg/calendar.h"

static const char purge_usage[] =
    "usage: dualregctl purge --before YYYY-MM-DD [--force]\n"
    "Deletes marks, mark history, events (with their deliveries) and access audit records\n"
    "older than the date, in one transaction. A date less than six years ago is refused\n"
    "unless --force is given.\n";

struct purge_step {
	const char *what;
	const char *sql;
};

/* In order: deliveries before the events they reference. $1 is the date. */
static const struct purge_step purge_steps[] = {
    {"marks", "DELETE FROM marks WHERE date < $1::date"},
    {"mark history", "DELETE FROM mark_history WHERE date < $1::date"},
    {"deliveries",
     "DELETE FROM deliveries WHERE event_id IN (SELECT id FROM events WHERE occurred_at < "
     "($1::date)::timestamp AT TIME ZONE 'Europe/London')"},
    {"events",
     "DELETE FROM events WHERE occurred_at < ($1::date)::timestamp AT TIME ZONE 'Europe/London'"},
    {"access audit",
     "DELETE FROM access_audit WHERE last_at < ($1::date)::timestamp AT TIME ZONE "
     "'Europe/London'"},
};
#define PURGE_STEPS (sizeof purge_steps / sizeof purge_steps[0])

static bool purge_exec(PGconn *conn, const char *sql)
{
	PGresult *r = PQexecParams(conn, sql, 0, NULL, NULL, NULL, NULL, 0);
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		fprintf(stderr, "dualregctl: %s", PQresultErrorMessage(r));
	PQclear(r);
	return ok;
}

/* Exit status 2 if before is within the six-year retention period and not forced. */
static int purge_check_retention(PGconn *conn, const char *before, bool force)
{
	const char *p[] = {before};
	PGresult *r = PQexecParams(conn,
				   "SELECT $1::date > (dualreg_today() - interval '6 years')::date, "
				   "(dualreg_today() - interval '6 years')::date",
				   1, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "dualregctl: %s", PQresultErrorMessage(r));
		PQclear(r);
		return 1;
	}
	int rc = 0;
	if (strcmp(PQgetvalue(r, 0, 0), "t") == 0 && !force) {
		fprintf(stderr,
			"dualregctl: refusing to purge records from after %s: attendance records "
			"are kept for six years (--force overrides)\n",
			PQgetvalue(r, 0, 1));
		rc = 2;
	}
	PQclear(r);
	return rc;
}

static int purge_run(PGconn *conn, const char *before)
{
	long long counts[PURGE_STEPS];
	if (!purge_exec(conn, "BEGIN"))
		return 1;
	for (size_t i = 0; i < PURGE_STEPS; i++) {
		const char *p[] = {before};
		PGresult *r = PQexecParams(conn, purge_steps[i].sql, 1, NULL, p, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			fprintf(stderr, "dualregctl: purging %s: %s", purge_steps[i].what,
				PQresultErrorMessage(r));
			PQclear(r);
			purge_exec(conn, "ROLLBACK");
			return 1;
		}
		counts[i] = strtoll(PQcmdTuples(r), NULL, 10);
		PQclear(r);
	}
	if (!purge_exec(conn, "COMMIT"))
		return 1;
	printf("purged before %s:\n", before);
	for (size_t i = 0; i < PURGE_STEPS; i++)
		printf("  %-13s %lld\n", purge_steps[i].what, counts[i]);
	return 0;
}

static int purge_main(const struct config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"before", required_argument, NULL, 'b'},
	    {"force", no_argument, NULL, 'f'},
	    {NULL, 0, NULL, 0},
	};
	const char *before = NULL;
	bool force = false;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "b:f", opts, NULL)) != -1) {
		switch (opt) {
		case 'b':
			before = optarg;
			break;
		case 'f':
			force = true;
			break;
		default:
			fputs(purge_usage, stderr);
			return 2;
		}
	}
	if (optind != argc || before == NULL) {
		fputs(purge_usage, stderr);
		return 2;
	}
	struct cal_date d;
	if (!cal_parse_date(before, &d)) {
		fprintf(stderr, "dualregctl: --before \"%s\" is not a date (YYYY-MM-DD)\n", before);
		return 2;
	}
	PGconn *conn = ctl_connect(cfg);
	if (conn == NULL)
		return 1;
	int rc = purge_check_retention(conn, before, force);
	if (rc == 0)
		rc = purge_run(conn, before);
	PQfinish(conn);
	return rc;
}

const struct ctl_command ctl_purge_command = {
    .name = "purge",
    .summary = "delete records older than a date (six years kept)",
    .usage = purge_usage,
    .run = purge_main,
};
