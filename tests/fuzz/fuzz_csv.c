/*
 * fuzz_csv: a pupil CSV file as `dualregctl pupil import` reads it (pupil_csv_read:
 * RFC 4180 quoting, the byte-order mark, the header, every row's checks, duplicate
 * UPNs). Every row it accepts has a valid UPN, names of 1 to 100 characters of UTF-8
 * without control characters and a real date; no UPN is accepted twice with different
 * data; rows come in the order of their lines.
 */
#include "../../ctl/pupil_csv.h"
#include "dualreg/calendar.h"
#include "dualreg/upn.h"
#include "fuzz.h"

static void check_name(const char *s)
{
	size_t n = utf8_length(s);
	FUZZ_ASSERT(n != UTF8_INVALID && n >= 1 && n <= 100);
	for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++)
		FUZZ_ASSERT(*c >= 0x20 && *c != 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *report;
	if (report == NULL)
		report = fopen("/dev/null", "w");
	if (size == 0)
		return 0; /* fmemopen refuses an empty buffer */
	char *copy = fuzz_cstr(data, size);
	FILE *in = fmemopen(copy, size, "rb");
	FUZZ_ASSERT(in != NULL);
	struct import_row *rows = NULL;
	size_t n = 0;
	long bad = pupil_csv_read(in, "fuzz.csv", report, &rows, &n);
	fclose(in);
	if (bad < 0) {
		FUZZ_ASSERT(rows == NULL && n == 0);
		free(copy);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		FUZZ_ASSERT(upn_validate(rows[i].f[0], NULL) == UPN_OK);
		check_name(rows[i].f[1]);
		check_name(rows[i].f[2]);
		struct cal_date d;
		FUZZ_ASSERT(cal_parse_date(rows[i].f[3], &d));
		FUZZ_ASSERT(rows[i].line >= 2 && !rows[i].bad);
		FUZZ_ASSERT(i == 0 || rows[i].line > rows[i - 1].line);
		for (size_t k = 0; k < i; k++)
			if (strcmp(rows[k].f[0], rows[i].f[0]) == 0)
				for (int f = 1; f < IMPORT_FIELDS; f++)
					FUZZ_ASSERT(strcmp(rows[k].f[f], rows[i].f[f]) == 0);
	}
	pupil_csv_free(rows, n);
	free(copy);
	return 0;
}
