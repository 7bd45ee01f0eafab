/*
 * seed: `dualregctl seed --demo`, the small demo `make run` starts with. A pupil referral
 * unit and two home schools, six dual-registered pupils with valid UPNs (main
 * registration at a home school, subsidiary at the PRU with its own weekly schedule,
 * placements that began a few weeks ago), and the derived D marks that follow; and one
 * pupil on the first home school's roll only, whom the examples' placement request
 * (the PRU asks, the home school confirms) is about. Every seeded registration is in
 * force (rows written through the `registrations` view are).
 *
 * Idempotent: everything is inserted only if missing, so running it again changes no
 * data, except that a placement of the request pupil made since (by an earlier run's
 * examples) is set aside as withdrawn, so that the example request can be made again. Keys are stored only as hashes, so the demo keys cannot be shown again: each run
 * revokes the previous demo keys (by their names) and creates fresh ones: an admin key,
 * a key for the PRU and one for the first home school. It also makes (once) a staff
 * account of the web app for the PRU and one for the first home school (role lead); each
 * not yet set up gets a new one-time set-up link, printed once (stderr, and
 * DEMO_PRU_SETUP_URL, DEMO_HOME_SETUP_URL on stdout; empty for an account set up already).
 *
 * Output: stdout is shell assignments (DEMO_URL, DEMO_ADMIN_KEY, DEMO_PRU_URN,
 * DEMO_PRU_KEY, DEMO_HOME_URN, DEMO_HOME_KEY, DEMO_DAY, DEMO_DAY_NAME, DEMO_UPN,
 * DEMO_UPNS, DEMO_REQUEST_UPN, _GIVEN, _FAMILY, _DOB) for scripts/examples.sh; stderr says what the demo contains. DEMO_DAY is the
 * most recent school day (today on a weekday) and DEMO_UPN a pupil of the home school
 * expected at the PRU that morning, so that every printed example works on any day.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "dualreg/upn.h"

struct demo_school {
	const char *urn, *laestab, *name, *kind;
};

static const struct demo_school demo_schools[] = {
    {"900101", "9261100", "Riverside Pupil Referral Unit", "pru"},
    {"900102", "9264001", "Northgate Academy", "mainstream"},
    {"900103", "9264002", "St Anne's Church of England High School", "mainstream"},
};
#define DEMO_PRU 0
#define DEMO_HOME 1

struct demo_pupil {
	const char *upn, *given, *family, *dob;
	int home;          /* index into demo_schools */
	int weeks_ago;     /* the PRU placement began this many Mondays ago */
	unsigned mask;     /* sessions at the PRU (schedule.h bit layout) */
	const char *pattern; /* the same, for people */
};

static const struct demo_pupil demo_pupils[] = {
    {"Z926400123001", "Amira", "Hussain", "2011-03-14", 1, 4, 0x03f, "Mon-Wed at the PRU"},
    {"N926400123002", "Callum", "Reid", "2011-07-02", 1, 3, 0x00f, "Mon-Tue at the PRU"},
    {"V926400122005", "Jayden", "Okafor", "2012-01-23", 1, 2, 0x3e0, "Wed PM + Thu-Fri at the PRU"},
    {"L926400223003", "Maisie", "Clarke", "2010-11-30", 2, 4, 0x155, "every morning at the PRU"},
    {"L926400224004", "Oliver", "Nowak", "2012-05-09", 2, 3, 0x3c0, "Thu-Fri at the PRU"},
    {"P926400224006", "Sofia", "Evans", "2010-09-17", 2, 2, 0x0ff, "Mon-Thu at the PRU"},
};
/* On the first home school's roll only: the PRU's placement request in the examples. */
static const struct demo_pupil demo_request_pupil = {
    "F926400125007", "Priya", "Shah", "2011-10-05", DEMO_HOME, 0, 0, "main registration only",
};
#define NSCHOOLS (sizeof demo_schools / sizeof demo_schools[0])

/* The demo's staff accounts of the web app, one per demo school that uses it. */
struct demo_user {
	const char *email, *name, *var; /* var: the prefix of its shell assignments */
	int school;                     /* index into demo_schools */
};
static const struct demo_user demo_users[] = {
    {"riverside.lead@example.org", "Riverside Demo Lead", "DEMO_PRU", DEMO_PRU},
    {"northgate.lead@example.org", "Northgate Demo Lead", "DEMO_HOME", DEMO_HOME},
};
#define NUSERS (sizeof demo_users / sizeof demo_users[0])
/* What describe() says about each, once the transaction has committed. */
static char demo_user_lines[NUSERS][1400];
#define NPUPILS (sizeof demo_pupils / sizeof demo_pupils[0])

/* Runs one statement, failing loudly; the caller rolls back. */
static PGresult *exec(PGconn *conn, const char *sql, int n, const char *const *params,
		      ExecStatusType want)
{
	PGresult *r = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != want) {
		fprintf(stderr, "dualregctl: seed: %s", PQresultErrorMessage(r));
		PQclear(r);
		return NULL;
	}
	return r;
}

static bool exec_ok(PGconn *conn, const char *sql, int n, const char *const *params)
{
	PGresult *r = exec(conn, sql, n, params, PGRES_COMMAND_OK);
	PQclear(r);
	return r != NULL;
}

/* The main registration's start: the autumn term before a placement weeks_ago back. */
#define MAIN_START                                                                        \
	" make_date(extract(year FROM t)::int"                                            \
	"        - CASE WHEN extract(month FROM t) < 9 THEN 1 ELSE 0 END, 9, 1)"          \
	"   FROM (SELECT (date_trunc('week', dualreg_today())"                            \
	"                 - make_interval(weeks => $3::int))::date - 14 AS t) x"

/*
 * The request pupil: on the home school's roll only. A placement made for her since
 * (the examples' request, pending or confirmed) is set aside as withdrawn and the
 * derived D marks follow, so that each `make run` can show the request afresh.
 */
static bool seed_request_pupil(PGconn *conn)
{
	const struct demo_pupil *d = &demo_request_pupil;
	const char *p[] = {d->upn, d->given, d->family, d->dob, demo_schools[d->home].urn, "4"};
	PGresult *r;
	if (!exec_ok(conn,
		     "INSERT INTO pupils (upn, given_name, family_name, date_of_birth)"
		     " VALUES ($1, $2, $3, $4::date) ON CONFLICT (upn) DO NOTHING",
		     4, p) ||
	    !exec_ok(conn,
		     "INSERT INTO registrations (upn, urn, role, start_date)"
		     " SELECT $1, $2, 'main'," MAIN_START
		     "  WHERE NOT EXISTS (SELECT 1 FROM registrations"
		     "                     WHERE upn = $1 AND role = 'main')",
		     3, (const char *const[]){d->upn, p[4], p[5]}) ||
	    !exec_ok(conn,
		     "UPDATE registration_records SET state = 'withdrawn',"
		     "       decided_at = dualreg_now(), updated_at = dualreg_now()"
		     " WHERE upn = $1 AND role = 'subsidiary' AND state IN ('pending', 'in_force')",
		     1, p) ||
	    (r = exec(conn, "SELECT dualreg_derive_d($1, dualreg_today() - 400, dualreg_today())",
		      1, p, PGRES_TUPLES_OK)) == NULL)
		return false;
	PQclear(r);
	return true;
}

static bool seed_data(PGconn *conn)
{
	for (size_t i = 0; i < NSCHOOLS; i++) {
		const struct demo_school *s = &demo_schools[i];
		const char *p[] = {s->urn, s->laestab, s->name, s->kind};
		if (!exec_ok(conn,
			     "INSERT INTO schools (urn, laestab, name, kind) VALUES ($1, $2, $3, $4)"
			     " ON CONFLICT (urn) DO NOTHING",
			     4, p))
			return false;
	}
	for (size_t i = 0; i < NPUPILS; i++) {
		const struct demo_pupil *d = &demo_pupils[i];
		char weeks[8], mask[8];
		snprintf(weeks, sizeof weeks, "%d", d->weeks_ago);
		snprintf(mask, sizeof mask, "%u", d->mask);
		const char *p[] = {d->upn, d->given, d->family, d->dob,
				   demo_schools[d->home].urn, demo_schools[DEMO_PRU].urn, weeks, mask};
		/* The main registration began at the start of the autumn term before the
		 * placement; the placement on a Monday weeks_ago weeks back. A pupil who
		 * already has a registration of that role (from an earlier run, or made
		 * through the API) keeps it. */
		if (!exec_ok(conn,
			     "INSERT INTO pupils (upn, given_name, family_name, date_of_birth)"
			     " VALUES ($1, $2, $3, $4::date) ON CONFLICT (upn) DO NOTHING",
			     4, p) ||
		    !exec_ok(conn,
			     "INSERT INTO registrations (upn, urn, role, start_date)"
			     " SELECT $1, $2, 'main'," MAIN_START
			     "  WHERE NOT EXISTS (SELECT 1 FROM registrations"
			     "                     WHERE upn = $1 AND role = 'main')",
			     3, (const char *const[]){d->upn, p[4], weeks}) ||
		    !exec_ok(conn,
			     "INSERT INTO registrations (upn, urn, role, start_date)"
			     " SELECT $1, $2, 'subsidiary', (date_trunc('week', dualreg_today())"
			     "        - make_interval(weeks => $3::int))::date"
			     "  WHERE NOT EXISTS (SELECT 1 FROM registrations"
			     "                     WHERE upn = $1 AND role = 'subsidiary')",
			     3, (const char *const[]){d->upn, p[5], weeks}) ||
		    !exec_ok(conn,
			     "INSERT INTO registration_schedules (registration_id, effective_from, mask)"
			     " SELECT r.id, r.start_date, $3::int FROM registrations r"
			     "  WHERE r.upn = $1 AND r.urn = $2 AND r.role = 'subsidiary'"
			     "    AND NOT EXISTS (SELECT 1 FROM registration_schedules s"
			     "                     WHERE s.registration_id = r.id)",
			     3, (const char *const[]){d->upn, p[5], mask}))
			return false;
		/* The D marks the schedule implies, up to today (bounded to the placement). */
		PGresult *r = exec(conn,
				   "SELECT dualreg_derive_d($1, (date_trunc('week', dualreg_today())"
				   "       - make_interval(weeks => $2::int))::date, dualreg_today())",
				   2, (const char *const[]){d->upn, weeks}, PGRES_TUPLES_OK);
		if (r == NULL)
			return false;
		PQclear(r);
	}
	return seed_request_pupil(conn);
}

/* Revokes the previous demo keys and creates fresh ones; writes them as assignments. */
static bool seed_keys(PGconn *conn, const char *base_url, FILE *out)
{
	const struct demo_school *pru = &demo_schools[DEMO_PRU], *home = &demo_schools[DEMO_HOME];
	char pru_name[128], home_name[128];
	snprintf(pru_name, sizeof pru_name, "demo %s", pru->name);
	snprintf(home_name, sizeof home_name, "demo %s", home->name);
	const char *names[] = {"demo admin", pru_name, home_name};
	const char *p[] = {names[0], names[1], names[2]};
	if (!exec_ok(conn,
		     "UPDATE api_keys SET revoked_at = now()"
		     " WHERE name IN ($1, $2, $3) AND revoked_at IS NULL",
		     3, p))
		return false;
	char admin[AUTH_TOKEN_LEN + 1], pru_key[AUTH_TOKEN_LEN + 1], home_key[AUTH_TOKEN_LEN + 1];
	long long id;
	if (ctl_key_insert(conn, names[0], NULL, admin, sizeof admin, &id) != 0 ||
	    ctl_key_insert(conn, names[1], pru->urn, pru_key, sizeof pru_key, &id) != 0 ||
	    ctl_key_insert(conn, names[2], home->urn, home_key, sizeof home_key, &id) != 0)
		return false;
	fprintf(out, "DEMO_URL='%s'\n", base_url);
	fprintf(out, "DEMO_ADMIN_KEY='%s'\n", admin);
	fprintf(out, "DEMO_PRU_URN='%s'\nDEMO_PRU_KEY='%s'\n", pru->urn, pru_key);
	fprintf(out, "DEMO_HOME_URN='%s'\nDEMO_HOME_KEY='%s'\n", home->urn, home_key);
	/* The most recent weekday, in the database's idea of today (Europe/London). */
	PGresult *r = exec(conn,
			   "SELECT max(x)::date::text, extract(isodow FROM max(x))::int,"
			   "       trim(to_char(max(x), 'Day'))"
			   "  FROM generate_series(dualreg_today() - 6, dualreg_today(), interval '1 day') x"
			   " WHERE extract(isodow FROM x) <= 5",
			   0, NULL, PGRES_TUPLES_OK);
	if (r == NULL)
		return false;
	int isodow = atoi(PQgetvalue(r, 0, 1));
	fprintf(out, "DEMO_DAY='%s'\nDEMO_DAY_NAME='%s'\n", PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 2));
	PQclear(r);
	/* Schedule bits: two a weekday from Monday, AM first (schedule.h). */
	const struct demo_pupil *at_pru = &demo_pupils[0];
	for (size_t i = 0; i < NPUPILS; i++)
		if (demo_pupils[i].home == DEMO_HOME &&
		    (demo_pupils[i].mask & (1u << (2 * (isodow - 1)))) != 0) {
			at_pru = &demo_pupils[i];
			break;
		}
	fprintf(out, "DEMO_UPN='%s'\n", at_pru->upn);
	fprintf(out, "DEMO_UPNS='");
	for (size_t i = 0; i < NPUPILS; i++)
		fprintf(out, "%s%s", i ? " " : "", demo_pupils[i].upn);
	fprintf(out, "'\n");
	fprintf(out, "DEMO_REQUEST_UPN='%s'\nDEMO_REQUEST_GIVEN='%s'\nDEMO_REQUEST_FAMILY='%s'\n"
		     "DEMO_REQUEST_DOB='%s'\n",
		demo_request_pupil.upn, demo_request_pupil.given, demo_request_pupil.family,
		demo_request_pupil.dob);
	return true;
}

/* Writes text in single quotes for a shell. */
static void put_quoted(FILE *out, const char *text)
{
	fputc('\'', out);
	for (const char *p = text; *p; p++)
		if (*p == '\'')
			fputs("'\\''", out);
		else
			fputc(*p, out);
	fputc('\'', out);
}

/*
 * The demo staff accounts: made if missing; each not set up yet (and not disabled) gets
 * a new set-up link, written as an assignment and kept for describe().
 */
static bool seed_users(PGconn *conn, const struct config *cfg, FILE *out)
{
	for (size_t i = 0; i < NUSERS; i++) {
		const struct demo_user *u = &demo_users[i];
		const char *urn = demo_schools[u->school].urn;
		const char *p[] = {u->email, u->name, urn};
		PGresult *r;
		if (!exec_ok(conn,
			     "INSERT INTO staff_users (email, name, role, urn)"
			     " VALUES ($1, $2, 'lead', $3) ON CONFLICT ((lower(email))) DO NOTHING",
			     3, p) ||
		    (r = exec(conn,
			      "SELECT id, totp_confirmed_at IS NOT NULL, disabled_at IS NOT NULL"
			      "  FROM staff_users WHERE lower(email) = lower($1)",
			      1, p, PGRES_TUPLES_OK)) == NULL)
			return false;
		if (PQntuples(r) != 1) {
			PQclear(r);
			return false;
		}
		long long id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		bool set_up = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
		bool disabled = strcmp(PQgetvalue(r, 0, 2), "t") == 0;
		PQclear(r);
		char link[1024] = "", expires[64];
		char *line = demo_user_lines[i];
		size_t len = sizeof demo_user_lines[i];
		if (disabled) {
			snprintf(line, len, "  %s  %s: disabled (dualregctl user reset %s)", urn,
				 u->email, u->email);
		} else if (set_up) {
			char signin[1024];
			ctl_setup_link(cfg, "", signin, sizeof signin);
			*strrchr(signin, '/') = '\0';
			snprintf(line, len, "  %s  %s: set up already; sign in at %s/", urn,
				 u->email, signin);
		} else {
			if (ctl_user_new_setup(conn, cfg, id, link, sizeof link, expires,
					       sizeof expires) != 0)
				return false;
			snprintf(line, len, "  %s  %s (set-up link, valid until %s):\n    %s", urn,
				 u->email, expires, link);
		}
		fprintf(out, "%s_USER=", u->var);
		put_quoted(out, u->email);
		fprintf(out, "\n%s_SETUP_URL=", u->var);
		put_quoted(out, link);
		fputc('\n', out);
	}
	return true;
}

static void describe(void)
{
	fprintf(stderr, "demo schools:\n");
	for (size_t i = 0; i < NSCHOOLS; i++)
		fprintf(stderr, "  %s  %-10s %s\n", demo_schools[i].urn, demo_schools[i].kind,
			demo_schools[i].name);
	fprintf(stderr, "demo pupils (main registration at the home school, subsidiary at %s):\n",
		demo_schools[DEMO_PRU].urn);
	for (size_t i = 0; i < NPUPILS; i++) {
		const struct demo_pupil *d = &demo_pupils[i];
		fprintf(stderr, "  %s  %-16s home %s, %s, placed %d weeks ago\n", d->upn,
			d->given, demo_schools[d->home].urn, d->pattern, d->weeks_ago);
	}
	fprintf(stderr, "  %s  %-16s home %s, %s (the examples' placement request)\n",
		demo_request_pupil.upn, demo_request_pupil.given,
		demo_schools[demo_request_pupil.home].urn, demo_request_pupil.pattern);
	fprintf(stderr, "demo keys (the previous demo keys are revoked): admin, %s, %s\n",
		demo_schools[DEMO_PRU].urn, demo_schools[DEMO_HOME].urn);
	fprintf(stderr, "demo staff accounts of the web app (role lead; a set-up link works once):\n");
	for (size_t i = 0; i < NUSERS; i++)
		fprintf(stderr, "%s\n", demo_user_lines[i]);
}

static const char seed_usage[] =
    "usage: dualregctl seed --demo\n"
    "Adds the demo schools, pupils and registrations if missing, revokes earlier demo\n"
    "keys and prints new ones as shell assignments (what the demo holds goes to stderr).\n"
    "Adds a staff account of the web app for the PRU and one for a home school if missing,\n"
    "and prints a new one-time set-up link for each not yet set up.\n";

static int seed_run(const struct config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"demo", no_argument, NULL, 'd'},
	    {NULL, 0, NULL, 0},
	};
	bool demo = false;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "d", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			demo = true;
			break;
		default:
			fputs(seed_usage, stderr);
			return 2;
		}
	}
	if (!demo || optind != argc) {
		fputs(seed_usage, stderr);
		return 2;
	}
	for (size_t i = 0; i <= NPUPILS; i++) {
		const char *upn = i < NPUPILS ? demo_pupils[i].upn : demo_request_pupil.upn;
		char expected;
		if (upn_validate(upn, &expected) != UPN_OK) {
			fprintf(stderr, "dualregctl: seed: demo UPN %s is invalid\n", upn);
			return 1;
		}
	}
	char base_url[300];
	snprintf(base_url, sizeof base_url, "http://%s%s%s:%u",
		 strchr(cfg->listen_host, ':') ? "[" : "", cfg->listen_host,
		 strchr(cfg->listen_host, ':') ? "]" : "", cfg->listen_port);
	PGconn *conn = ctl_connect(cfg);
	if (conn == NULL)
		return 1;
	/* One transaction; concurrent seeds queue on the advisory lock. */
	bool ok = exec_ok(conn, "BEGIN", 0, NULL);
	if (ok) {
		PGresult *r = exec(conn, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", 1,
				   (const char *const[]){"dualreg.seed-demo"}, PGRES_TUPLES_OK);
		ok = r != NULL;
		PQclear(r);
	}
	/* The keys are printed only once they are committed. */
	char *assignments = NULL;
	size_t alen = 0;
	FILE *out = open_memstream(&assignments, &alen);
	ok = ok && out != NULL && seed_data(conn) && seed_keys(conn, base_url, out) &&
	     seed_users(conn, cfg, out) &&
	     exec_ok(conn, "COMMIT", 0, NULL);
	if (out != NULL)
		fclose(out);
	if (!ok) {
		PQclear(PQexec(conn, "ROLLBACK"));
		PQfinish(conn);
		free(assignments);
		return 1;
	}
	fputs(assignments, stdout);
	fflush(stdout);
	free(assignments);
	describe();
	PQfinish(conn);
	return 0;
}

const struct ctl_command ctl_seed_command = {
    .name = "seed",
    .summary = "add a small demo (idempotent) and print fresh demo keys",
    .usage = seed_usage,
    .run = seed_run,
};
