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

static void usage(FILE *out)
{
	fprintf(out,
		"usage: dualregctl registration add --upn UPN --urn URN --role main|subsidiary\n"
		"                                   --start DATE [--end DATE] [--schedule SCHED]\n"
		"       dualregctl registration end ID --date DATE\n"
		"       dualregctl registration schedule ID --from DATE --schedule SCHED\n"
		"SCHED: the sessions at the subsidiary school, e.g. 'mon=AM,PM;tue=AM'.\n");
}

int ctl_cmd_registration(const struct config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"upn", required_argument, NULL, 'u'},   {"urn", required_argument, NULL, 'n'},
	    {"role", required_argument, NULL, 'r'},  {"start", required_argument, NULL, 's'},
	    {"end", required_argument, NULL, 'e'},   {"date", required_argument, NULL, 'd'},
	    {"from", required_argument, NULL, 'f'},  {"schedule", required_argument, NULL, 'S'},
	    {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
	};
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *sub = argv[1];
	const char *upn = NULL, *urn = NULL, *role = NULL, *start = NULL, *end = NULL,
		   *date = NULL, *from = NULL, *sched = NULL;
	int opt;
	optind = 2;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'u': upn = optarg; break;
		case 'n': urn = optarg; break;
		case 'r': role = optarg; break;
		case 's': start = optarg; break;
		case 'e': end = optarg; break;
		case 'd': date = optarg; break;
		case 'f': from = optarg; break;
		case 'S': sched = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	const char *id = optind < argc ? argv[optind] : NULL;
	unsigned mask = 0;
	char mask_text[16];
	if (sched != NULL && parse_schedule(sched, &mask) != 0)
		return 2;
	snprintf(mask_text, sizeof mask_text, "%u", mask);

	if (strcmp(sub, "add") == 0) {
		if (upn == NULL || urn == NULL || role == NULL || !valid_date(start) ||
		    (end != NULL && !valid_date(end))) {
			usage(stderr);
			return 2;
		}
		PGconn *conn = ctl_connect(cfg);
		if (conn == NULL)
			return 1;
		const char *params[] = {upn, urn, role, start, end, sched ? mask_text : NULL};
		int rc = run(conn,
			     "SELECT dualreg_registration_create(NULL, $1, $2, $3, $4::date, $5::date, "
			     "$6::integer)",
			     6, params);
		PQfinish(conn);
		return rc;
	}
	if (strcmp(sub, "end") == 0 || strcmp(sub, "schedule") == 0) {
		bool is_end = strcmp(sub, "end") == 0;
		if (id == NULL || strspn(id, "0123456789") != strlen(id) ||
		    (is_end ? !valid_date(date) : (!valid_date(from) || sched == NULL))) {
			usage(stderr);
			return 2;
		}
		PGconn *conn = ctl_connect(cfg);
		if (conn == NULL)
			return 1;
		const char *params[] = {id, is_end ? "true" : "false", is_end ? date : NULL,
					is_end ? NULL : mask_text, is_end ? NULL : from};
		int rc = run(conn,
			     "SELECT dualreg_registration_patch(NULL, $1::bigint, $2::boolean, $3::date, "
			     "$4::integer, $5::date)",
			     5, params);
		PQfinish(conn);
		return rc;
	}
	fprintf(stderr, "dualregctl: unknown registration command \"%s\"\n", sub);
	usage(stderr);
	return 2;
}
