/*
 * pupil_import: `dualregctl pupil import FILE.csv [--skip-bad]`, bulk loading of pupils
 * from a CSV file with the header upn,given_name,family_name,date_of_birth (RFC 4180
 * quoting: fields in double quotes may hold commas, doubled quotes and line breaks;
 * UTF-8, an optional byte-order mark).
 *
 * Every row is checked before anything is written: the UPN's format and check letter,
 * names of 1 to 100 characters of valid UTF-8, a real date. A pupil already on file
 * with the same data is "unchanged"; with different data the row is bad. Each bad row is
 * reported as FILE:LINE: why (LINE: where the record starts). Without --skip-bad one bad
 * row means nothing is imported (exit 1); with it the good rows are imported. Either way
 * the writes are one transaction.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "dualreg/utf8.h"
#include "dualreg/calendar.h"
#include "dualreg/upn.h"
#include "dualreg/xalloc.h"

#define IMPORT_FIELDS 4
#define IMPORT_FIELD_MAX 1024 /* bytes; longer is a bad row, not a crash */
#define IMPORT_ROWS_MAX 1000000

struct import_row {
	long line;
	char *f[IMPORT_FIELDS];
	bool bad;
};

struct csv_reader {
	FILE *in;
	long line;  /* the current physical line */
	long start; /* the line the last record began on */
};

/*
 * Reads one record into fields (each malloc'd, bounded by IMPORT_FIELD_MAX). Returns
 * the number of fields, 0 at end of file, or -1 with why set (the record is consumed).
 */
static int csv_record(struct csv_reader *rd, char *fields[], int max, const char **why)
{
	int c = fgetc(rd->in);
	while (c == '\n' || c == '\r') { /* blank lines between records */
		if (c == '\n')
			rd->line++;
		c = fgetc(rd->in);
	}
	if (c == EOF)
		return 0;
	rd->start = rd->line;
	int n = 0;
	char buf[IMPORT_FIELD_MAX + 1];
	size_t len = 0;
	bool quoted = false, was_quoted = false, too_long = false;
	*why = NULL;
	for (;; c = fgetc(rd->in)) {
		if (c == EOF && quoted) {
			*why = "unterminated quoted field";
			c = '\n';
			quoted = false;
		}
		if (quoted) {
			if (c == '"') {
				int d = fgetc(rd->in);
				if (d != '"') {
					quoted = false;
					if (d != EOF)
						ungetc(d, rd->in);
					continue;
				}
			} else if (c == '\n') {
				rd->line++;
			}
		} else if (c == '"' && len == 0 && !was_quoted) {
			quoted = was_quoted = true;
			continue;
		} else if (c == ',' || c == '\n' || c == EOF) {
			if (len > 0 && buf[len - 1] == '\r' && c != ',')
				len--;
			buf[len] = '\0';
			if (n < max)
				fields[n] = xstrdup(buf);
			n++;
			len = 0;
			was_quoted = false;
			if (c == ',')
				continue;
			if (c == '\n')
				rd->line++;
			break;
		} else if (was_quoted && c != '\r') {
			if (*why == NULL)
				*why = "text after a closing quote";
		}
		if (len < IMPORT_FIELD_MAX)
			buf[len++] = (char)c;
		else
			too_long = true;
	}
	if (*why == NULL && too_long)
		*why = "a field is too long";
	if (*why == NULL && n != max)
		*why = "expected 4 fields";
	if (*why != NULL) {
		for (int i = 0; i < n && i < max; i++)
			free(fields[i]);
		return -1;
	}
	return n;
}

/* Characters in s if it is valid UTF-8 without control characters, else -1. */
static long utf8_chars(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return -1;
	size_t n = utf8_length(s);
	return n == UTF8_INVALID ? -1 : (long)n;
}

/* Why row is bad, or NULL; why_buf holds composed messages. */
static const char *import_check(const struct import_row *row, char *why_buf, size_t len)
{
	char expected;
	switch (upn_validate(row->f[0], &expected)) {
	case UPN_BAD_FORMAT:
		snprintf(why_buf, len, "upn \"%.20s\" is not a UPN (a letter and 12 characters)",
			 row->f[0]);
		return why_buf;
	case UPN_BAD_CHECK:
		snprintf(why_buf, len, "upn %s has the wrong check letter (expected %c)", row->f[0],
			 expected);
		return why_buf;
	case UPN_OK:
		break;
	}
	static const char *const names[] = {"given_name", "family_name"};
	for (int i = 0; i < 2; i++) {
		long n = utf8_chars(row->f[1 + i]);
		if (n < 0) {
			snprintf(why_buf, len, "%s is not valid UTF-8 text (or holds a control character)", names[i]);
			return why_buf;
		}
		if (n == 0 || n > 100) {
			snprintf(why_buf, len, "%s must be 1 to 100 characters", names[i]);
			return why_buf;
		}
	}
	struct cal_date d;
	if (!cal_parse_date(row->f[3], &d)) {
		snprintf(why_buf, len, "date_of_birth \"%.20s\" is not a date (YYYY-MM-DD)",
			 row->f[3]);
		return why_buf;
	}
	return NULL;
}

static int import_cmp(const void *a, const void *b)
{
	const struct import_row *x = *(const struct import_row *const *)a;
	const struct import_row *y = *(const struct import_row *const *)b;
	int c = strcmp(x->f[0], y->f[0]);
	return c != 0 ? c : (x->line > y->line) - (x->line < y->line);
}

/*
 * Finds rows giving one UPN different data (sorting, so large files stay fast): each
 * after the first is reported and removed. Returns how many were removed.
 */
static long import_dedupe(const char *path, struct import_row *rows, size_t *n)
{
	if (*n < 2)
		return 0;
	struct import_row **by_upn = xmalloc(*n * sizeof *by_upn);
	for (size_t i = 0; i < *n; i++)
		by_upn[i] = &rows[i];
	qsort(by_upn, *n, sizeof *by_upn, import_cmp);
	long bad = 0;
	for (size_t i = 1, first = 0; i < *n; i++) {
		if (strcmp(by_upn[i]->f[0], by_upn[first]->f[0]) != 0) {
			first = i;
			continue;
		}
		bool same = true;
		for (int k = 1; k < IMPORT_FIELDS; k++)
			same = same && strcmp(by_upn[i]->f[k], by_upn[first]->f[k]) == 0;
		if (!same) {
			fprintf(stderr, "%s:%ld: upn %s appears on line %ld with different data\n",
				path, by_upn[i]->line, by_upn[i]->f[0], by_upn[first]->line);
			by_upn[i]->bad = true;
			bad++;
		}
	}
	free(by_upn);
	size_t kept = 0;
	for (size_t i = 0; i < *n; i++) {
		if (rows[i].bad) {
			for (int k = 0; k < IMPORT_FIELDS; k++)
				free(rows[i].f[k]);
		} else {
			rows[kept++] = rows[i];
		}
	}
	*n = kept;
	return bad;
}

/* Reads and checks the whole file; returns the number of bad rows, or -1 (unreadable). */
static long import_read(const char *path, struct import_row **rows_out, size_t *n_out)
{
	FILE *in = fopen(path, "rb");
	if (in == NULL) {
		fprintf(stderr, "dualregctl: cannot open %s: %s\n", path, strerror(errno));
		return -1;
	}
	struct csv_reader rd = {in, 1, 1};
	/* Skip a UTF-8 byte-order mark. */
	unsigned char bom[3];
	size_t got = fread(bom, 1, 3, in);
	if (!(got == 3 && bom[0] == 0xef && bom[1] == 0xbb && bom[2] == 0xbf))
		rewind(in);
	char *head[IMPORT_FIELDS];
	const char *why;
	static const char *const want[] = {"upn", "given_name", "family_name", "date_of_birth"};
	int n = csv_record(&rd, head, IMPORT_FIELDS, &why);
	bool head_ok = n == IMPORT_FIELDS;
	for (int i = 0; head_ok && i < IMPORT_FIELDS; i++)
		head_ok = strcmp(head[i], want[i]) == 0;
	for (int i = 0; n == IMPORT_FIELDS && i < IMPORT_FIELDS; i++)
		free(head[i]);
	if (!head_ok) {
		fprintf(stderr, "%s:1: the header must be upn,given_name,family_name,date_of_birth\n",
			path);
		fclose(in);
		return -1;
	}
	struct import_row *rows = NULL;
	size_t nrows = 0, cap = 0;
	long bad = 0;
	for (;;) {
		struct import_row row = {.line = 0};
		n = csv_record(&rd, row.f, IMPORT_FIELDS, &why);
		if (n == 0)
			break;
		row.line = rd.start;
		if (n < 0) {
			fprintf(stderr, "%s:%ld: %s\n", path, row.line, why);
			bad++;
			continue;
		}
		char why_buf[160];
		const char *w = import_check(&row, why_buf, sizeof why_buf);
		if (w == NULL && nrows >= IMPORT_ROWS_MAX)
			w = "too many rows (at most 1000000 a file)";
		if (w != NULL) {
			fprintf(stderr, "%s:%ld: %s\n", path, row.line, w);
			bad++;
			for (int k = 0; k < IMPORT_FIELDS; k++)
				free(row.f[k]);
			continue;
		}
		if (nrows == cap) {
			cap = cap ? cap * 2 : 64;
			rows = xrealloc(rows, cap * sizeof *rows);
		}
		rows[nrows++] = row;
	}
	if (ferror(in)) {
		fprintf(stderr, "dualregctl: cannot read %s\n", path);
		bad = -1;
	}
	fclose(in);
	if (bad >= 0)
		bad += import_dedupe(path, rows, &nrows);
	*rows_out = rows;
	*n_out = nrows;
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
	for (size_t i = 0; i < n; i++)
		for (int k = 0; k < IMPORT_FIELDS; k++)
			free(rows[i].f[k]);
	free(rows);
	return rc;
}

static const struct ctl_command pupil_import_command = {
    .name = "import",
    .summary = "import pupils from CSV; all or nothing unless --skip-bad",
    .usage = pupil_usage,
    .run = pupil_import_main,
};

static const struct ctl_command *const pupil_commands[] = {&pupil_import_command, NULL};

const struct ctl_command ctl_pupil_command = {
    .name = "pupil",
    .summary = "pupils",
    .usage = "usage: dualregctl pupil COMMAND [ARGS]\n"
	     "Pupils, loaded in bulk; the HTTP API adds them one at a time.\n",
    .subs = pupil_commands,
};
