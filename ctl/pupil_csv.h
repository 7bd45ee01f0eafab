/*
 * pupil_csv: the reading half of `dualregctl pupil import` (ctl/pupil_import.c): a CSV
 * stream with the header upn,given_name,family_name,date_of_birth into checked rows.
 * RFC 4180 quoting (fields in double quotes may hold commas, doubled quotes and line
 * breaks), UTF-8 with an optional byte-order mark. Every row is checked (the UPN's
 * format and check letter, names of 1 to 100 characters of UTF-8 without control
 * characters, a real date) and rows giving one UPN different data are refused; each
 * bad row is reported as FILE:LINE: why, LINE being where the record starts.
 */
#ifndef DUALREG_CTL_PUPIL_CSV_H
#define DUALREG_CTL_PUPIL_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define IMPORT_FIELDS 4
#define IMPORT_FIELD_MAX 1024 /* bytes; longer is a bad row, not a crash */
#define IMPORT_ROWS_MAX 1000000

struct import_row {
	long line;
	char *f[IMPORT_FIELDS]; /* upn, given_name, family_name, date_of_birth; owned */
	bool bad;
};

/*
 * Reads the CSV text from in (named path in the reports, which go to report). Returns
 * the number of bad rows with the good ones in *rows_out / *n_out (release them with
 * pupil_csv_free), or -1 when the header is wrong or in cannot be read (then nothing is
 * returned).
 */
long pupil_csv_read(FILE *in, const char *path, FILE *report, struct import_row **rows_out,
		    size_t *n_out);
void pupil_csv_free(struct import_row *rows, size_t n);

#endif
