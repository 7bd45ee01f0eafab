/*
 * purge: `dualregctl purge --before YYYY-MM-DD [--force]`, the retention job. Deletes,
 * in one transaction, everything kept about the time before the date: marks and mark
 * history of sessions before it, events that occurred before it (with their webhook
 * deliveries), alerts of days before it, pull rejections received before it,
 * registrations that ended before it and requests (registrations or changes) decided
 * before it, pupils with nothing left who were added before it, and access audit records
 * whose last read was before it; then prints how many of each went. "Before the date"
 * for timestamps means before its midnight in Europe/London, as dualreg_today() decides
 * days.
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
    "Deletes, in one transaction, what is kept about the time before the date: marks, mark\n"
    "history, events (with their deliveries), alerts, pull rejections, registrations that\n"
    "ended and requests decided before it, pupils with nothing left, and access audit\n"
    "records. A date less than six years ago is refused unless --force is given.\n";

struct purge_step {
	const char *what;
	const char *sql;
};

/* The cut-off as a time: midnight of $1 in Europe/London. */
#define CUTOFF "(($1::date)::timestamp AT TIME ZONE 'Europe/London')"

/* In order: deliveries before the events they reference, registrations and marks before
 * the pupils they belong to. $1 is the date. */
static const struct purge_step purge_steps[] = {
    {"marks", "DELETE FROM marks WHERE date < $1::date"},
    {"mark history", "DELETE FROM mark_history WHERE date < $1::date"},
    {"deliveries",
     "DELETE FROM deliveries WHERE event_id IN (SELECT id FROM events WHERE occurred_at < "
     CUTOFF ")"},
    {"events", "DELETE FROM events WHERE occurred_at < " CUTOFF},
    {"alerts", "DELETE FROM alerts_sent WHERE date < $1::date"},
    {"pull rejections", "DELETE FROM pull_rejections WHERE pulled_at < " CUTOFF},
    {"changes decided",
     "DELETE FROM registration_changes WHERE state <> 'pending' AND "
     "coalesce(decided_at, created_at) < " CUTOFF},
    /* ended before the date, or a request that never came into force, decided before it;
     * their schedules and changes go with them (ON DELETE CASCADE) */
    {"registrations",
     "DELETE FROM registration_records WHERE (state = 'in_force' AND end_date < $1::date) "
     "OR (state IN ('declined', 'withdrawn', 'expired') AND "
     "coalesce(decided_at, updated_at) < " CUTOFF ")"},
    /* added before the date and nothing left that names them */
    {"pupils",
     "DELETE FROM pupils p WHERE p.created_at < " CUTOFF
     " AND NOT EXISTS (SELECT 1 FROM registration_records r WHERE r.upn = p.upn)"
     " AND NOT EXISTS (SELECT 1 FROM marks m WHERE m.upn = p.upn)"
     " AND NOT EXISTS (SELECT 1 FROM mark_history h WHERE h.upn = p.upn)"
     " AND NOT EXISTS (SELECT 1 FROM events e WHERE e.upn = p.upn)"},
    {"access audit", "DELETE FROM access_audit WHERE last_at < " CUTOFF},
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
		printf("  %-16s %lld\n", purge_steps[i].what, counts[i]);
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
