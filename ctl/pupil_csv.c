/* pupil_csv: the checked rows of a pupil CSV file (see pupil_csv.h). */
#include "pupil_csv.h"

#include <stdlib.h>
#include <string.h>

#include "dualreg/calendar.h"
#include "dualreg/upn.h"
#include "dualreg/utf8.h"
#include "dualreg/xalloc.h"

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
static long import_dedupe(const char *path, FILE *report, struct import_row *rows, size_t *n)
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
			fprintf(report, "%s:%ld: upn %s appears on line %ld with different data\n",
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

long pupil_csv_read(FILE *in, const char *path, FILE *report, struct import_row **rows_out,
		    size_t *n_out)
{
	*rows_out = NULL;
	*n_out = 0;
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
		fprintf(report, "%s:1: the header must be upn,given_name,family_name,date_of_birth\n",
			path);
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
			fprintf(report, "%s:%ld: %s\n", path, row.line, why);
			bad++;
			continue;
		}
		char why_buf[160];
		const char *w = import_check(&row, why_buf, sizeof why_buf);
		if (w == NULL && nrows >= IMPORT_ROWS_MAX)
			w = "too many rows (at most 1000000 a file)";
		if (w != NULL) {
			fprintf(report, "%s:%ld: %s\n", path, row.line, w);
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
		fprintf(report, "dualregctl: cannot read %s\n", path);
		pupil_csv_free(rows, nrows);
		return -1;
	}
	bad += import_dedupe(path, report, rows, &nrows);
	*rows_out = rows;
	*n_out = nrows;
	return bad;
}

void pupil_csv_free(struct import_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (int k = 0; k < IMPORT_FIELDS; k++)
			free(rows[i].f[k]);
	free(rows);
}

