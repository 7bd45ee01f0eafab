/*
 * registration: dualregctl registration add|end|schedule — the operator's way to put a
 * pupil on a school's roll, end a placement, or change a subsidiary schedule from a
 * date. The same SQL functions as the API do the work, so the same rules apply
 * (one main at a time, a subsidiary needs a main elsewhere, derived D marks follow,
 * events are emitted), acting as an admin.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "dualreg/calendar.h"
#include "dualreg/schedule.h"

/* "mon=AM,PM;tue=AM" into a schedule mask; -1 with a message if malformed. */
static int parse_schedule(const char *text, unsigned *mask)
{
	char buf[256];
	snprintf(buf, sizeof buf, "%s", text);
	cJSON *obj = cJSON_CreateObject();
	char *save = NULL;
	for (char *day = strtok_r(buf, ";", &save); day != NULL; day = strtok_r(NULL, ";", &save)) {
		char *eq = strchr(day, '=');
		if (eq == NULL) {
			cJSON_Delete(obj);
			fprintf(stderr, "dualregctl: schedule entries look like mon=AM,PM\n");
			return -1;
		}
		*eq = '\0';
		cJSON *list = cJSON_AddArrayToObject(obj, day);
		char *save2 = NULL;
		for (char *s = strtok_r(eq + 1, ",", &save2); s != NULL; s = strtok_r(NULL, ",", &save2))
			cJSON_AddItemToArray(list, cJSON_CreateString(s));
	}
	char where[32], why[128];
	int rc = schedule_parse(obj, mask, where, sizeof where, why, sizeof why);
	cJSON_Delete(obj);
	if (rc != 0)
		fprintf(stderr, "dualregctl: schedule %s: %s\n", where, why);
	return rc;
}

static bool valid_date(const char *s)
{
	struct cal_date d;
	return s != NULL && cal_parse_date(s, &d);
}

/* Runs one registry function and prints its JSON answer, or the refusal. */
static int run(PGconn *conn, const char *sql, int n, const char *const *params)
{
	PGresult *r = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
	int rc = 0;
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		const char *detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
		fprintf(stderr, "dualregctl: %s%s%s\n", PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY),
			detail ? ": " : "", detail ? detail : "");
		rc = 1;
	} else {
		printf("%s\n", PQgetvalue(r, 0, 0));
	}
	PQclear(r);
	return rc;
}

static const char registration_add_usage[] =
    "usage: dualregctl registration add --upn UPN --urn URN --role main|subsidiary\n"
    "                                   --start DATE [--end DATE] [--schedule SCHED]\n"
    "Puts a pupil on a school's roll. One main registration at a time; a subsidiary\n"
    "needs a main registration at another school and SCHED, the sessions at the\n"
    "subsidiary school, e.g. 'mon=AM,PM;tue=AM'. Dates are YYYY-MM-DD.\n";
static const char registration_end_usage[] =
    "usage: dualregctl registration end ID --date DATE\n"
    "Ends registration ID; DATE is its last day on roll.\n";
static const char registration_schedule_usage[] =
    "usage: dualregctl registration schedule ID --from DATE --schedule SCHED\n"
    "Changes a subsidiary registration's sessions from DATE on, e.g. SCHED\n"
    "'mon=AM,PM;tue=AM'; earlier sessions keep their place.\n";

/* The options of every registration command: each checks that it has what it needs. */
struct reg_args {
	const char *upn, *urn, *role, *start, *end, *date, *from, *sched, *id;
	unsigned mask;
	char mask_text[16];
};

/* 0 with a filled in, else the exit status (after the usage on stderr). */
static int reg_parse(int argc, char **argv, const char *usage, struct reg_args *a)
{
	static const struct option opts[] = {
	    {"upn", required_argument, NULL, 'u'},   {"urn", required_argument, NULL, 'n'},
	    {"role", required_argument, NULL, 'r'},  {"start", required_argument, NULL, 's'},
	    {"end", required_argument, NULL, 'e'},   {"date", required_argument, NULL, 'd'},
	    {"from", required_argument, NULL, 'f'},  {"schedule", required_argument, NULL, 'S'},
	    {NULL, 0, NULL, 0},
	};
	*a = (struct reg_args){0};
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'u': a->upn = optarg; break;
		case 'n': a->urn = optarg; break;
		case 'r': a->role = optarg; break;
		case 's': a->start = optarg; break;
		case 'e': a->end = optarg; break;
		case 'd': a->date = optarg; break;
		case 'f': a->from = optarg; break;
		case 'S': a->sched = optarg; break;
		default: fputs(usage, stderr); return 2;
		}
	}
	a->id = optind < argc ? argv[optind] : NULL;
	if (a->sched != NULL && parse_schedule(a->sched, &a->mask) != 0)
		return 2;
	snprintf(a->mask_text, sizeof a->mask_text, "%u", a->mask);
	return 0;
}

static int registration_add(const struct config *cfg, int argc, char **argv)
{
	struct reg_args a;
	int rc = reg_parse(argc, argv, registration_add_usage, &a);
	if (rc != 0)
		return rc;
	if (a.upn == NULL || a.urn == NULL || a.role == NULL || !valid_date(a.start) ||
	    (a.end != NULL && !valid_date(a.end))) {
		fputs(registration_add_usage, stderr);
		return 2;
	}
	PGconn *conn = ctl_connect(cfg);
	if (conn == NULL)
		return 1;
	const char *params[] = {a.upn, a.urn, a.role, a.start, a.end, a.sched ? a.mask_text : NULL};
	rc = run(conn,
		 "SELECT dualreg_registration_create(NULL, $1, $2, $3, $4::date, $5::date, "
		 "$6::integer)",
		 6, params);
	PQfinish(conn);
	return rc;
}

/* `registration end` and `registration schedule`: both patch registration ID. */
static int registration_patch(const struct config *cfg, int argc, char **argv, bool is_end)
{
	const char *usage = is_end ? registration_end_usage : registration_schedule_usage;
	struct reg_args a;
	int rc = reg_parse(argc, argv, usage, &a);
	if (rc != 0)
		return rc;
	if (a.id == NULL || strspn(a.id, "0123456789") != strlen(a.id) ||
	    (is_end ? !valid_date(a.date) : (!valid_date(a.from) || a.sched == NULL))) {
		fputs(usage, stderr);
		return 2;
	}
	PGconn *conn = ctl_connect(cfg);
	if (conn == NULL)
		return 1;
	const char *params[] = {a.id, is_end ? "true" : "false", is_end ? a.date : NULL,
				is_end ? NULL : a.mask_text, is_end ? NULL : a.from};
	rc = run(conn,
		 "SELECT dualreg_registration_patch(NULL, $1::bigint, $2::boolean, $3::date, "
		 "$4::integer, $5::date)",
		 5, params);
	PQfinish(conn);
	return rc;
}

static int registration_end(const struct config *cfg, int argc, char **argv)
{
	return registration_patch(cfg, argc, argv, true);
}

static int registration_schedule(const struct config *cfg, int argc, char **argv)
{
	return registration_patch(cfg, argc, argv, false);
}

static const struct ctl_command registration_add_command = {
    .name = "add",
    .summary = "put a pupil on a school's roll",
    .usage = registration_add_usage,
    .run = registration_add,
};

static const struct ctl_command registration_end_command = {
    .name = "end",
    .summary = "end a registration on its last day on roll",
    .usage = registration_end_usage,
    .run = registration_end,
};

static const struct ctl_command registration_schedule_command = {
    .name = "schedule",
    .summary = "change a subsidiary schedule from a date",
    .usage = registration_schedule_usage,
    .run = registration_schedule,
};

static const struct ctl_command *const registration_commands[] = {
    &registration_add_command, &registration_end_command, &registration_schedule_command, NULL,
};

const struct ctl_command ctl_registration_command = {
    .name = "registration",
    .summary = "registrations, with the API's rules",
    .usage = "usage: dualregctl registration COMMAND [ARGS]\n"
	     "Registrations (main and subsidiary), with the rules of the HTTP API, acting as\n"
	     "an admin; derived D marks and events follow.\n",
    .subs = registration_commands,
};
