/*
 * school: `dualregctl school add|list|show|set`, the register of schools kept from the
 * command line. Inputs are checked here first (so an operator gets a clear message)
 * and again by the table's constraints; a duplicate URN or LAESTAB is a refusal
 * (exit 1), a malformed argument a usage error (exit 2).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static const char school_add_usage[] =
    "usage: dualregctl school add --urn URN --name NAME --kind mainstream|pru|ap|special\n"
    "                             [--laestab NNNNNNN]\n"
    "Adds a school: URN 6 digits, LAESTAB 7, a name of 1 to 200 characters. A URN or\n"
    "LAESTAB already on file is refused (exit 1).\n";
static const char school_list_usage[] = "usage: dualregctl school list [--json]\n"
					"Lists the schools: URN, LAESTAB, kind and name.\n";
static const char school_show_usage[] =
    "usage: dualregctl school show URN [--json]\n"
    "Shows one school, with its register close times, pull URL and number of current\n"
    "registrations.\n";

static const char school_set_usage[] =
    "usage: dualregctl school set URN --pull-private-hosts HOST[,HOST...]\n"
    "Sets the hosts whose feed this school's pull_url may name at a private address\n"
    "(loopback, private, link-local, ...): the school's MIS inside its own network.\n"
    "Feeds must otherwise be at public addresses, unless [pull] allow_private opens\n"
    "private ones for every school. HOST is a host name or an IP address; at most 16;\n"
    "\"\" clears the list. Only an administrator sets it: a school's key cannot.\n";

/* True if text is exactly n ASCII digits. */
static bool all_digits(const char *text, size_t n)
{
	if (strlen(text) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (text[i] < '0' || text[i] > '9')
			return false;
	return true;
}

static int school_add(PGconn *conn, const char *urn, const char *name, const char *kind,
		      const char *laestab)
{
	const char *p[] = {urn, laestab, name, kind};
	PGresult *r = PQexecParams(conn,
				   "INSERT INTO schools (urn, laestab, name, kind) "
				   "VALUES ($1, $2, $3, $4)",
				   4, NULL, p, NULL, NULL, 0);
	int rc = 0;
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		const char *cons = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
		if (state != NULL && strcmp(state, "23505") == 0 && cons != NULL &&
		    strstr(cons, "laestab") != NULL)
			fprintf(stderr, "dualregctl: a school with LAESTAB %s already exists\n",
				laestab);
		else if (state != NULL && strcmp(state, "23505") == 0)
			fprintf(stderr, "dualregctl: a school with URN %s already exists\n", urn);
		else
			fprintf(stderr, "dualregctl: %s", PQresultErrorMessage(r));
		rc = 1;
	} else {
		printf("added school %s (%s, %s)\n", urn, name, kind);
	}
	PQclear(r);
	return rc;
}

static const char school_json_sql[] =
    "json_build_object('urn', urn, 'laestab', laestab, 'name', name, 'kind', kind, "
    "'am_close', to_char(am_close, 'HH24:MI'), 'pm_close', to_char(pm_close, 'HH24:MI'), "
    "'pull_url', pull_url, 'pull_private_hosts', pull_private_hosts, "
    "'created_at', created_at, 'updated_at', updated_at)";

static int school_list(PGconn *conn, bool json)
{
	char sql[1024];
	if (json)
		snprintf(sql, sizeof sql,
			 "SELECT coalesce(json_agg(%s ORDER BY urn), '[]') FROM schools",
			 school_json_sql);
	else
		snprintf(sql, sizeof sql,
			 "SELECT urn, coalesce(laestab, '-'), kind, name FROM schools ORDER BY urn");
	PGresult *r = PQexecParams(conn, sql, 0, NULL, NULL, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "dualregctl: %s", PQresultErrorMessage(r));
		PQclear(r);
		return 1;
	}
	if (json) {
		printf("%s\n", PQgetvalue(r, 0, 0));
	} else {
		printf("%-7s %-8s %-11s %s\n", "URN", "LAESTAB", "KIND", "NAME");
		for (int i = 0; i < PQntuples(r); i++)
			printf("%-7s %-8s %-11s %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
			       PQgetvalue(r, i, 2), PQgetvalue(r, i, 3));
	}
	PQclear(r);
	return 0;
}

static int school_show(PGconn *conn, const char *urn, bool json)
{
	char sql[1024];
	snprintf(sql, sizeof sql,
		 "SELECT %s, urn, coalesce(laestab, '-'), name, kind, "
		 "to_char(am_close, 'HH24:MI'), to_char(pm_close, 'HH24:MI'), "
		 "coalesce(pull_url, '-'), "
		 "coalesce(nullif(array_to_string(pull_private_hosts, ', '), ''), '-'), "
		 "(SELECT count(*) FROM registrations g WHERE g.urn = s.urn "
		 "   AND (g.end_date IS NULL OR g.end_date >= dualreg_today())) "
		 "FROM schools s WHERE urn = $1",
		 school_json_sql);
	const char *p[] = {urn};
	PGresult *r = PQexecParams(conn, sql, 1, NULL, p, NULL, NULL, 0);
	int rc = 0;
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "dualregctl: %s", PQresultErrorMessage(r));
		rc = 1;
	} else if (PQntuples(r) == 0) {
		fprintf(stderr, "dualregctl: no school with URN %s\n", urn);
		rc = 1;
	} else if (json) {
		printf("%s\n", PQgetvalue(r, 0, 0));
	} else {
		printf("urn:            %s\nlaestab:        %s\nname:           %s\n"
		       "kind:           %s\nregister closes: AM %s, PM %s\npull url:       %s\n"
		       "pull private hosts: %s\ncurrent registrations: %s\n",
		       PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3),
		       PQgetvalue(r, 0, 4), PQgetvalue(r, 0, 5), PQgetvalue(r, 0, 6),
		       PQgetvalue(r, 0, 7), PQgetvalue(r, 0, 8), PQgetvalue(r, 0, 9));
	}
	PQclear(r);
	return rc;
}

/* Parses `school add` options; 0 with the fields set, else the exit status. */
static int school_add_args(int argc, char **argv, const char **urn, const char **name,
			   const char **kind, const char **laestab)
{
	static const struct option opts[] = {
	    {"urn", required_argument, NULL, 'u'},
	    {"name", required_argument, NULL, 'n'},
	    {"kind", required_argument, NULL, 'k'},
	    {"laestab", required_argument, NULL, 'l'},
	    {NULL, 0, NULL, 0},
	};
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "u:n:k:l:", opts, NULL)) != -1) {
		switch (opt) {
		case 'u':
			*urn = optarg;
			break;
		case 'n':
			*name = optarg;
			break;
		case 'k':
			*kind = optarg;
			break;
		case 'l':
			*laestab = optarg;
			break;
		default:
			fputs(school_add_usage, stderr);
			return 2;
		}
	}
	if (optind != argc || *urn == NULL || *name == NULL || *kind == NULL) {
		fputs(school_add_usage, stderr);
		return 2;
	}
	if (!all_digits(*urn, 6)) {
		fprintf(stderr, "dualregctl: \"%s\" is not a URN (6 digits)\n", *urn);
		return 2;
	}
	if (*laestab != NULL && !all_digits(*laestab, 7)) {
		fprintf(stderr, "dualregctl: \"%s\" is not a LAESTAB (7 digits)\n", *laestab);
		return 2;
	}
	size_t nlen = strlen(*name);
	if (nlen == 0 || nlen > 200) {
		fprintf(stderr, "dualregctl: --name must be 1 to 200 characters\n");
		return 2;
	}
	if (strcmp(*kind, "mainstream") != 0 && strcmp(*kind, "pru") != 0 &&
	    strcmp(*kind, "ap") != 0 && strcmp(*kind, "special") != 0) {
		fprintf(stderr, "dualregctl: --kind must be mainstream, pru, ap or special\n");
		return 2;
	}
	return 0;
}

static int school_add_main(const struct config *cfg, int argc, char **argv)
{
	const char *urn = NULL, *name = NULL, *kind = NULL, *laestab = NULL;
	int rc = school_add_args(argc, argv, &urn, &name, &kind, &laestab);
	if (rc != 0)
		return rc;
	PGconn *conn = ctl_connect(cfg);
	if (conn == NULL)
		return 1;
	rc = school_add(conn, urn, name, kind, laestab);
	PQfinish(conn);
	return rc;
}

/* `school list` and `school show`: [URN (show only)] [--json], in any order. */
static int school_list_show(const struct config *cfg, int argc, char **argv, bool show)
{
	const char *usage = show ? school_show_usage : school_list_usage;
	const char *urn = NULL;
	bool json = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0 && !json) {
			json = true;
		} else if (show && urn == NULL && argv[i][0] != '-') {
			urn = argv[i];
		} else {
			fputs(usage, stderr);
			return 2;
		}
	}
	if (show && urn == NULL) {
		fputs(usage, stderr);
		return 2;
	}
	PGconn *conn = ctl_connect(cfg);
	if (conn == NULL)
		return 1;
	int rc = show ? school_show(conn, urn, json) : school_list(conn, json);
	PQfinish(conn);
	return rc;
}

static int school_list_main(const struct config *cfg, int argc, char **argv)
{
	return school_list_show(cfg, argc, argv, false);
}

static int school_show_main(const struct config *cfg, int argc, char **argv)
{
	return school_list_show(cfg, argc, argv, true);
}

/*
 * Stores the allowlist hosts (comma-separated) for urn, checked and normalised by
 * dualreg_pull_hosts_normal: a bad host is a usage error (exit 2).
 */
static int school_set_hosts(PGconn *conn, const char *urn, const char *hosts)
{
	const char *p[] = {urn, hosts};
	PGresult *r = PQexecParams(
	    conn,
	    "UPDATE schools SET pull_private_hosts = "
	    "dualreg_pull_hosts_normal(string_to_array($2, ',')), updated_at = dualreg_now() "
	    "WHERE urn = $1 RETURNING coalesce(nullif(array_to_string(pull_private_hosts, ', '), "
	    "''), '(none)')",
	    2, NULL, p, NULL, NULL, 0);
	int rc = 0;
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		const char *detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
		bool bad_host = state != NULL && strcmp(state, "DR422") == 0;
		fprintf(stderr, "dualregctl: %s%s", bad_host && detail ? detail : PQresultErrorMessage(r),
			bad_host && detail ? "\n" : "");
		rc = bad_host ? 2 : 1;
	} else if (PQntuples(r) == 0) {
		fprintf(stderr, "dualregctl: no school with URN %s\n", urn);
		rc = 1;
	} else {
		printf("school %s: pull private hosts %s\n", urn, PQgetvalue(r, 0, 0));
	}
	PQclear(r);
	return rc;
}

static int school_set_main(const struct config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"pull-private-hosts", required_argument, NULL, 'p'},
	    {NULL, 0, NULL, 0},
	};
	const char *hosts = NULL;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt != 'p' || hosts != NULL) {
			fputs(school_set_usage, stderr);
			return 2;
		}
		hosts = optarg;
	}
	if (optind != argc - 1 || hosts == NULL) {
		fputs(school_set_usage, stderr);
		return 2;
	}
	const char *urn = argv[optind];
	if (!all_digits(urn, 6)) {
		fprintf(stderr, "dualregctl: \"%s\" is not a URN (6 digits)\n", urn);
		return 2;
	}
	if (strlen(hosts) > 16 * 256) {
		fprintf(stderr, "dualregctl: --pull-private-hosts: at most 16 hosts\n");
		return 2;
	}
	PGconn *conn = ctl_connect(cfg);
	if (conn == NULL)
		return 1;
	int rc = school_set_hosts(conn, urn, hosts);
	PQfinish(conn);
	return rc;
}

static const struct ctl_command school_add_command = {
    .name = "add",
    .summary = "add a school",
    .usage = school_add_usage,
    .run = school_add_main,
};

static const struct ctl_command school_list_command = {
    .name = "list",
    .summary = "list schools",
    .usage = school_list_usage,
    .run = school_list_main,
};

static const struct ctl_command school_show_command = {
    .name = "show",
    .summary = "one school, with its current registrations",
    .usage = school_show_usage,
    .run = school_show_main,
};

static const struct ctl_command school_set_command = {
    .name = "set",
    .summary = "change a school's settings that only an administrator makes",
    .usage = school_set_usage,
    .run = school_set_main,
};

static const struct ctl_command *const school_commands[] = {
    &school_add_command, &school_list_command, &school_show_command, &school_set_command, NULL,
};

const struct ctl_command ctl_school_command = {
    .name = "school",
    .summary = "the register of schools",
    .usage = "usage: dualregctl school COMMAND [ARGS]\n"
	     "The register of schools kept from the command line.\n",
    .subs = school_commands,
};
