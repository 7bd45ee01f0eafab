/*
 * pupil_erase: `dualregctl pupil erase UPN --reason TEXT [--force]`, for a pupil record
 * created in error (a wrong UPN, a pupil entered twice). Deletes, in one transaction,
 * everything that names the pupil: marks and their history, events with their
 * deliveries, alerts, pull rejections naming the UPN, registrations with their schedules
 * and changes, access audit records, stored Idempotency-Key replies that contain the UPN,
 * and the pupil. It leaves one row in `erasures` with the counts, the operator and the
 * reason, and nothing that identifies the pupil.
 *
 * Attendance and admission registers are statutory records, kept for six years: while
 * marks of the last six years or a registration in force during them exist, the erasure
 * is refused (exit 2, with what was found) unless --force is given.
 */
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "dualreg/upn.h"

static const char erase_usage[] =
    "usage: dualregctl pupil erase UPN --reason TEXT [--force]\n"
    "Erases a pupil record created in error, and everything that names the pupil, in one\n"
    "transaction. What was removed, who removed it and the reason (write no personal data\n"
    "in it) are kept in the erasures table; nothing identifying the pupil is. Refused while\n"
    "marks or registrations of the last six years exist, unless --force is given.\n";

struct erase_step {
	const char *what;
	const char *sql; /* $1 is the UPN */
};

/* In order: deliveries before their events, everything before the pupil. */
static const struct erase_step erase_steps[] = {
    {"deliveries",
     "DELETE FROM deliveries WHERE upn = $1 OR event_id IN (SELECT id FROM events WHERE upn = "
     "$1)"},
    {"events", "DELETE FROM events WHERE upn = $1"},
    {"marks", "DELETE FROM marks WHERE upn = $1"},
    {"mark_history", "DELETE FROM mark_history WHERE upn = $1"},
    {"alerts", "DELETE FROM alerts_sent WHERE upn = $1"},
    {"pull_rejections",
     "DELETE FROM pull_rejections WHERE strpos(item::text, $1) > 0"},
    {"registrations", "DELETE FROM registration_records WHERE upn = $1"},
    {"access_audit", "DELETE FROM access_audit WHERE upn = $1"},
    {"idempotency_replies", "DELETE FROM idempotency_keys WHERE strpos(response, $1) > 0"},
    {"pupil", "DELETE FROM pupils WHERE upn = $1"},
};
#define ERASE_STEPS (sizeof erase_steps / sizeof erase_steps[0])

/* Statutory records of the last six years; the query's columns are printed by name. */
static const char erase_statutory_sql[] =
    "SELECT (SELECT count(*) FROM marks WHERE upn = $1"
    "         AND date >= (dualreg_today() - interval '6 years')::date),"
    "       (SELECT count(*) FROM registrations WHERE upn = $1"
    "         AND coalesce(end_date, 'infinity') >= (dualreg_today() - interval '6 years')::date)";

static int erase_sql_failed(PGconn *conn, PGresult *r, const char *what)
{
	fprintf(stderr, "dualregctl: %s: %s", what, PQresultErrorMessage(r));
	PQclear(r);
	PQclear(PQexec(conn, "ROLLBACK"));
	return 1;
}

/* "user (database role)" for the record; the login name when there is no passwd entry. */
static void erase_operator(PGconn *conn, char *out, size_t len)
{
	const char *os = getenv("SUDO_USER");
	struct passwd *pw = os == NULL ? getpwuid(getuid()) : NULL;
	if (os == NULL)
		os = pw != NULL ? pw->pw_name : "?";
	const char *role = PQuser(conn);
	snprintf(out, len, "%s (database role %s)", os, role != NULL ? role : "?");
}

static int erase_run(PGconn *conn, const char *upn, const char *reason, bool force)
{
	const char *p[] = {upn};
	PGresult *r = PQexec(conn, "BEGIN");
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		return erase_sql_failed(conn, r, "begin");
	PQclear(r);
	r = PQexecParams(conn, "SELECT 1 FROM pupils WHERE upn = $1 FOR UPDATE", 1, NULL, p, NULL,
			 NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		return erase_sql_failed(conn, r, "finding the pupil");
	if (PQntuples(r) == 0) {
		PQclear(r);
		PQclear(PQexec(conn, "ROLLBACK"));
		fprintf(stderr, "dualregctl: no pupil %s\n", upn);
		return 1;
	}
	PQclear(r);
	r = PQexecParams(conn, erase_statutory_sql, 1, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		return erase_sql_failed(conn, r, "checking statutory records");
	long long marks = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	long long regs = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	PQclear(r);
	bool statutory = marks > 0 || regs > 0;
	if (statutory && !force) {
		PQclear(PQexec(conn, "ROLLBACK"));
		fprintf(stderr,
			"dualregctl: refusing to erase %s: %lld mark%s and %lld registration%s of "
			"the last six years are statutory records (--force overrides)\n",
			upn, marks, marks == 1 ? "" : "s", regs, regs == 1 ? "" : "s");
		return 2;
	}

	long long counts[ERASE_STEPS];
	char removed[1024];
	size_t o = (size_t)snprintf(removed, sizeof removed, "{");
	for (size_t i = 0; i < ERASE_STEPS; i++) {
		r = PQexecParams(conn, erase_steps[i].sql, 1, NULL, p, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			return erase_sql_failed(conn, r, erase_steps[i].what);
		counts[i] = strtoll(PQcmdTuples(r), NULL, 10);
		PQclear(r);
		o += (size_t)snprintf(removed + o, sizeof removed - o, "%s\"%s\": %lld",
				      i > 0 ? ", " : "", erase_steps[i].what, counts[i]);
	}
	snprintf(removed + o, sizeof removed - o, "}");

	char op[256];
	erase_operator(conn, op, sizeof op);
	const char *q[] = {op, reason, statutory ? "t" : "f", removed};
	r = PQexecParams(conn,
			 "INSERT INTO erasures (operator, reason, forced, removed) "
			 "VALUES ($1, $2, $3::boolean, $4::jsonb) RETURNING id",
			 4, NULL, q, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		return erase_sql_failed(conn, r, "recording the erasure");
	long long id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	r = PQexec(conn, "COMMIT");
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		return erase_sql_failed(conn, r, "commit");
	PQclear(r);
	printf("erased %s (erasure %lld):\n", upn, id);
	for (size_t i = 0; i < ERASE_STEPS; i++)
		printf("  %-20s %lld\n", erase_steps[i].what, counts[i]);
	return 0;
}

static int pupil_erase_main(const struct config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"reason", required_argument, NULL, 'r'},
	    {"force", no_argument, NULL, 'f'},
	    {NULL, 0, NULL, 0},
	};
	const char *reason = NULL;
	bool force = false;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "r:f", opts, NULL)) != -1) {
		switch (opt) {
		case 'r':
			reason = optarg;
			break;
		case 'f':
			force = true;
			break;
		default:
			fputs(erase_usage, stderr);
			return 2;
		}
	}
	if (optind + 1 != argc || reason == NULL) {
		fputs(erase_usage, stderr);
		return 2;
	}
	const char *upn = argv[optind];
	size_t rlen = strlen(reason);
	if (rlen == 0 || rlen > 500) {
		fprintf(stderr, "dualregctl: --reason must be 1 to 500 bytes\n");
		return 2;
	}
	char expected;
	/* a wrong check letter may be the very error being corrected */
	if (upn_validate(upn, &expected) == UPN_BAD_FORMAT) {
		fprintf(stderr, "dualregctl: \"%s\" is not a valid UPN\n", upn);
		return 2;
	}
	PGconn *conn = ctl_connect(cfg);
	if (conn == NULL)
		return 1;
	int rc = erase_run(conn, upn, reason, force);
	PQfinish(conn);
	return rc;
}

const struct ctl_command ctl_pupil_erase_command = {
    .name = "erase",
    .summary = "erase a pupil record created in error (an erasure record remains)",
    .usage = erase_usage,
    .run = pupil_erase_main,
};
