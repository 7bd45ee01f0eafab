/*
 * pupil_import: `dualregctl pupil import FILE.csv [--skip-bad]`, bulk loading of pupils
 * from a CSV file with the header upn,given_name,family_name,date_of_birth (RFC 4180
 * quoting: fields in double quotes may hold commas, doubled quotes and line breaks;
 * UTF-8, an optional byte-order mark).
 *
 * Every row is checked before anything is written (ctl/pupil_csv.c): the UPN's format
 * and check letter, names of 1 to 100 characters of valid UTF-8, a real date. A pupil
 * already on file with the same data is "unchanged"; with different data the row is
 * bad. Each bad row is reported as FILE:LINE: why (LINE: where the record starts).
 * Without --skip-bad one bad row means nothing is imported (exit 1); with it the good
 * rows are imported. Either way the writes are one transaction.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "pupil_csv.h"

/* Reads and checks the whole file; returns the number of bad rows, or -1 (unreadable). */
static long import_read(const char *path, struct import_row **rows_out, size_t *n_out)
{
	FILE *in = fopen(path, "rb");
	if (in == NULL) {
		fprintf(stderr, "dualregctl: cannot open %s: %s\n", path, strerror(errno));
		return -1;
	}
	long bad = pupil_csv_read(in, path, stderr, rows_out, n_out);
	fclose(in);
	return bad;
}

static bool import_exec(PGconn *conn, const char *sql)
{
	PGresult *r = PQexecParams(conn, sql, 0, NULL, NULL, NULL, NULL, 0);
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		fprintf(stderr, "dualregctl: %s", PQresultErrorMessage(r));
	PQclear(r);
	return ok;
}

/*
 * Writes the rows in one transaction: inserts new pupils, compares existing ones.
 * Returns the exit status; counts through the pointers.
 */
static int import_write(PGconn *conn, const char *path, struct import_row *rows, size_t n,
			bool skip_bad, long *bad, long *imported, long *unchanged)
{
	if (!import_exec(conn, "BEGIN"))
		return 1;
	for (size_t i = 0; i < n; i++) {
		const char *p[] = {rows[i].f[0], rows[i].f[1], rows[i].f[2], rows[i].f[3]};
		PGresult *r = PQexecParams(
		    conn,
		    "WITH ins AS (INSERT INTO pupils (upn, given_name, family_name, date_of_birth) "
		    "  VALUES ($1, $2, $3, $4::date) ON CONFLICT (upn) DO NOTHING RETURNING 1) "
		    "SELECT 'imported' FROM ins "
		    "UNION ALL "
		    "SELECT CASE WHEN given_name = $2 AND family_name = $3 "
		    "             AND date_of_birth = $4::date THEN 'unchanged' ELSE "
		    "  'on file as ' || given_name || ' ' || family_name || ', born ' || "
		    "  to_char(date_of_birth, 'YYYY-MM-DD') END "
		    "  FROM pupils WHERE upn = $1 AND NOT EXISTS (SELECT 1 FROM ins)",
		    4, NULL, p, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
			fprintf(stderr, "%s:%ld: %s", path, rows[i].line, PQresultErrorMessage(r));
			PQclear(r);
			import_exec(conn, "ROLLBACK");
			return 1;
		}
		const char *what = PQgetvalue(r, 0, 0);
		if (strcmp(what, "imported") == 0) {
			(*imported)++;
		} else if (strcmp(what, "unchanged") == 0) {
			(*unchanged)++;
		} else {
			fprintf(stderr, "%s:%ld: upn %s differs from the pupil %s\n", path,
				rows[i].line, rows[i].f[0], what);
			(*bad)++;
		}
		PQclear(r);
	}
	if (*bad > 0 && !skip_bad) {
		import_exec(conn, "ROLLBACK");
		return 1;
	}
	return import_exec(conn, "COMMIT") ? 0 : 1;
}

static const char pupil_usage[] =
    "usage: dualregctl pupil import FILE.csv [--skip-bad]\n"
    "The file has the header upn,given_name,family_name,date_of_birth. Every row is\n"
    "checked first; bad rows are reported as FILE:LINE: why. Without --skip-bad one bad\n"
    "row means nothing is imported (exit 1); with it the good rows are imported.\n";

static int pupil_import_main(const struct config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"skip-bad", no_argument, NULL, 's'},
	    {NULL, 0, NULL, 0},
	};
	bool skip_bad = false;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			skip_bad = true;
			break;
		default:
			fputs(pupil_usage, stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fputs(pupil_usage, stderr);
		return 2;
	}
	const char *path = argv[optind];

	struct import_row *rows = NULL;
	size_t n = 0;
	long bad = import_read(path, &rows, &n);
	int rc = 1;
	long imported = 0, unchanged = 0;
	if (bad < 0) {
		rc = 1;
	} else if (bad > 0 && !skip_bad) {
		fprintf(stderr, "dualregctl: %ld bad row%s; nothing imported (--skip-bad imports "
				"the good rows)\n",
			bad, bad == 1 ? "" : "s");
	} else {
		PGconn *conn = ctl_connect(cfg);
		if (conn != NULL) {
			rc = import_write(conn, path, rows, n, skip_bad, &bad, &imported, &unchanged);
			PQfinish(conn);
			if (rc == 0)
				printf("imported %ld, unchanged %ld, skipped %ld\n", imported,
				       unchanged, bad);
			else if (bad > 0)
				fprintf(stderr, "dualregctl: %ld bad row%s; nothing imported\n",
					bad, bad == 1 ? "" : "s");
		}
	}
	pupil_csv_free(rows, n);
	return rc;
}

static const struct ctl_command pupil_import_command = {
    .name = "import",
    .summary = "import pupils from CSV; all or nothing unless --skip-bad",
    .usage = pupil_usage,
    .run = pupil_import_main,
};

static const struct ctl_command *const pupil_commands[] = {&pupil_import_command,
							    &ctl_pupil_erase_command, NULL};

const struct ctl_command ctl_pupil_command = {
    .name = "pupil",
    .summary = "pupils",
    .usage = "usage: dualregctl pupil COMMAND [ARGS]\n"
	     "Pupils, loaded in bulk (the HTTP API adds them one at a time), and erased\n"
	     "when created in error.\n",
    .subs = pupil_commands,
};
