/*
 * registration: dualregctl registration add|end|schedule|list|confirm|decline — the
 * operator's way to put a pupil on a school's roll, end a placement, change a
 * subsidiary schedule from a date, see the registrations and the placement requests
 * awaiting a school's consent, and confirm or decline a request. The same SQL
 * functions as the API do the work, so the same rules apply (one main at a time, a
 * subsidiary needs a main elsewhere, derived D marks follow, events are emitted),
 * acting as an admin.
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

static const char registration_list_usage[] =
    "usage: dualregctl registration list [--pending] [--school URN] [--json]\n"
    "Lists registrations in every state (pending, in_force, declined, withdrawn,\n"
    "expired), oldest first. --pending: only the requests awaiting a decision (pending\n"
    "registrations, and registrations in force with a pending change), with the pupil.\n"
    "--school: only those at the school, made by it or awaiting its decision. --json:\n"
    "the registrations as the API shows them, in an array.\n";
static const char registration_confirm_usage[] =
    "usage: dualregctl registration confirm ID\n"
    "Confirms the request pending on registration ID (a placement, or a change of one)\n"
    "as an administrator: it comes into force, derived D marks and events follow.\n";
static const char registration_decline_usage[] =
    "usage: dualregctl registration decline ID [--reason TEXT]\n"
    "Declines the request pending on registration ID as an administrator; the school\n"
    "that asked is told, with the reason if one is given.\n";

/* Pages through the pending requests (as an admin sees them) into one JSON array. */
static cJSON *pending_requests(PGconn *conn)
{
	cJSON *all = cJSON_CreateArray();
	char after[32] = "0";
	for (;;) {
		const char *params[] = {after};
		PGresult *r = PQexecParams(conn,
					   "SELECT dualreg_registration_requests(NULL, $1::bigint, 500)",
					   1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			fprintf(stderr, "dualregctl: %s", PQresultErrorMessage(r));
			PQclear(r);
			cJSON_Delete(all);
			return NULL;
		}
		cJSON *page = cJSON_Parse(PQgetvalue(r, 0, 0));
		PQclear(r);
		cJSON *item;
		cJSON *regs = cJSON_DetachItemFromObject(page, "registrations");
		while (regs != NULL && (item = cJSON_DetachItemFromArray(regs, 0)) != NULL)
			cJSON_AddItemToArray(all, item);
		cJSON_Delete(regs);
		const cJSON *next = cJSON_GetObjectItem(page, "next_cursor");
		bool more = cJSON_IsString(next);
		if (more)
			snprintf(after, sizeof after, "%s", next->valuestring);
		cJSON_Delete(page);
		if (!more)
			return all;
	}
}

/* Every registration in any state, as the API shows them. */
static cJSON *all_registrations(PGconn *conn)
{
	PGresult *r = PQexec(conn, "SELECT coalesce(jsonb_agg(dualreg_registration_json(id) "
				   "ORDER BY id), '[]') FROM registration_records");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "dualregctl: %s", PQresultErrorMessage(r));
		PQclear(r);
		return NULL;
	}
	cJSON *all = cJSON_Parse(PQgetvalue(r, 0, 0));
	PQclear(r);
	return all;
}

static const char *jtext(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : "-";
}

/* The school a registration awaits: its own request's, else its pending change's. */
static const char *awaiting_of(const cJSON *reg)
{
	const char *a = jtext(reg, "awaiting");
	return strcmp(a, "-") != 0 ? a : jtext(cJSON_GetObjectItem(reg, "pending_change"), "awaiting");
}

static bool concerns(const cJSON *reg, const char *urn)
{
	return urn == NULL || strcmp(jtext(reg, "urn"), urn) == 0 ||
	       strcmp(jtext(reg, "requested_by"), urn) == 0 || strcmp(awaiting_of(reg), urn) == 0 ||
	       strcmp(jtext(cJSON_GetObjectItem(reg, "pending_change"), "requested_by"), urn) == 0;
}

static int registration_list(const struct config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"pending", no_argument, NULL, 'p'},
	    {"school", required_argument, NULL, 's'},
	    {"json", no_argument, NULL, 'j'},
	    {NULL, 0, NULL, 0},
	};
	bool pending = false, json = false;
	const char *urn = NULL;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'p': pending = true; break;
		case 's': urn = optarg; break;
		case 'j': json = true; break;
		default: fputs(registration_list_usage, stderr); return 2;
		}
	}
	if (optind != argc || (urn != NULL && (strlen(urn) != 6 || strspn(urn, "0123456789") != 6))) {
		fputs(registration_list_usage, stderr);
		return 2;
	}
	PGconn *conn = ctl_connect(cfg);
	if (conn == NULL)
		return 1;
	cJSON *all = pending ? pending_requests(conn) : all_registrations(conn);
	PQfinish(conn);
	if (all == NULL)
		return 1;
	cJSON *shown = cJSON_CreateArray();
	cJSON *reg;
	while ((reg = cJSON_DetachItemFromArray(all, 0)) != NULL) {
		if (concerns(reg, urn))
			cJSON_AddItemToArray(shown, reg);
		else
			cJSON_Delete(reg);
	}
	cJSON_Delete(all);
	if (json) {
		char *text = cJSON_PrintUnformatted(shown);
		printf("%s\n", text);
		free(text);
	} else {
		printf("%-6s %-13s %-6s %-10s %-10s %-10s %-9s %-6s %-8s %s\n", "ID", "UPN", "URN",
		       "ROLE", "START", "END", "STATUS", "BY", "AWAITING",
		       pending ? "EXPIRES          PUPIL" : "EXPIRES");
		cJSON_ArrayForEach(reg, shown)
		{
			const cJSON *change = cJSON_GetObjectItem(reg, "pending_change");
			bool is_change = cJSON_IsObject(change);
			const cJSON *p = cJSON_GetObjectItem(reg, "pupil");
			char expires[17];
			snprintf(expires, sizeof expires, "%s",
				 jtext(is_change ? change : reg, "expires_at"));
			if (strlen(expires) == 16)
				expires[10] = ' ';
			printf(pending ? "%-6.0f %-13s %-6s %-10s %-10s %-10s %-9s %-6s %-8s %-16s"
				       : "%-6.0f %-13s %-6s %-10s %-10s %-10s %-9s %-6s %-8s %s",
			       cJSON_GetNumberValue(cJSON_GetObjectItem(reg, "id")), jtext(reg, "upn"),
			       jtext(reg, "urn"), jtext(reg, "role"), jtext(reg, "start_date"),
			       jtext(reg, "end_date"), is_change ? "change" : jtext(reg, "status"),
			       jtext(is_change ? change : reg, "requested_by"), awaiting_of(reg),
			       expires);
			if (pending)
				printf(" %s %s (%s)", jtext(p, "given_name"), jtext(p, "family_name"),
				       jtext(p, "date_of_birth"));
			printf("\n");
		}
	}
	cJSON_Delete(shown);
	return 0;
}

/* `registration confirm` and `registration decline`: a decision on registration ID. */
static int registration_decide(const struct config *cfg, int argc, char **argv, bool confirm)
{
	const char *usage = confirm ? registration_confirm_usage : registration_decline_usage;
	static const struct option opts[] = {
	    {"reason", required_argument, NULL, 'r'},
	    {NULL, 0, NULL, 0},
	};
	const char *reason = NULL;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", confirm ? opts + 1 : opts, NULL)) != -1) {
		if (opt != 'r') {
			fputs(usage, stderr);
			return 2;
		}
		reason = optarg;
	}
	const char *id = optind + 1 == argc ? argv[optind] : NULL;
	if (id == NULL || id[0] == '\0' || strspn(id, "0123456789") != strlen(id) ||
	    strlen(id) > 18 || (reason != NULL && (reason[0] == '\0' || strlen(reason) > 500))) {
		fputs(usage, stderr);
		return 2;
	}
	PGconn *conn = ctl_connect(cfg);
	if (conn == NULL)
		return 1;
	const char *params[] = {id, reason};
	int rc = confirm ? run(conn, "SELECT dualreg_registration_confirm(NULL, $1::bigint)", 1,
			       params)
			 : run(conn, "SELECT dualreg_registration_decline(NULL, $1::bigint, $2)", 2,
			       params);
	PQfinish(conn);
	return rc;
}

static int registration_confirm(const struct config *cfg, int argc, char **argv)
{
	return registration_decide(cfg, argc, argv, true);
}

static int registration_decline(const struct config *cfg, int argc, char **argv)
{
	return registration_decide(cfg, argc, argv, false);
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

static const struct ctl_command registration_list_command = {
    .name = "list",
    .summary = "list registrations, or the requests pending",
    .usage = registration_list_usage,
    .run = registration_list,
};

static const struct ctl_command registration_confirm_command = {
    .name = "confirm",
    .summary = "confirm a pending request as an administrator",
    .usage = registration_confirm_usage,
    .run = registration_confirm,
};

static const struct ctl_command registration_decline_command = {
    .name = "decline",
    .summary = "decline a pending request as an administrator",
    .usage = registration_decline_usage,
    .run = registration_decline,
};

static const struct ctl_command *const registration_commands[] = {
    &registration_add_command,     &registration_end_command,
    &registration_schedule_command, &registration_list_command,
    &registration_confirm_command, &registration_decline_command,
    NULL,
};

const struct ctl_command ctl_registration_command = {
    .name = "registration",
    .summary = "registrations, with the API's rules",
    .usage = "usage: dualregctl registration COMMAND [ARGS]\n"
	     "Registrations (main and subsidiary), with the rules of the HTTP API, acting as\n"
	     "an admin; derived D marks and events follow. A school's placement request waits\n"
	     "for the other school's consent: list shows it, confirm and decline decide it.\n",
    .subs = registration_commands,
};
