/*
 * fuzz_domain: the small parsers of daemon/domain that every API path, body and CSV row
 * goes through: UPNs (upn_validate), dates, times of day and sessions (calendar), and
 * UTF-8 (utf8_length, utf8_copy) with the JSON pointer tokens built from names
 * (jf_pointer_token). Accepted values print back as the same text; a wrong check letter
 * names the right one; a copy is always well-formed UTF-8 within its buffer.
 */
#include "../../api/json_fields.h"
#include "dualreg/calendar.h"
#include "dualreg/upn.h"
#include "fuzz.h"

static void upn(const char *s)
{
	char expected = 0;
	switch (upn_validate(s, &expected)) {
	case UPN_OK:
		FUZZ_ASSERT(strlen(s) == 13);
		break;
	case UPN_BAD_CHECK: {
		FUZZ_ASSERT(strlen(s) == 13 && expected != 0 && expected != s[0]);
		char fixed[14];
		memcpy(fixed, s, 14);
		fixed[0] = expected;
		FUZZ_ASSERT(upn_validate(fixed, NULL) == UPN_OK);
		break;
	}
	case UPN_BAD_FORMAT:
		break;
	}
}

/* The ISO weekday of a Gregorian date by Sakamoto's method, independently. */
static int weekday(int y, int m, int d)
{
	static const int t[] = {0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4};
	if (m < 3)
		y -= 1;
	int w = (y + y / 4 - y / 100 + y / 400 + t[m - 1] + d) % 7; /* 0: Sunday */
	return w == 0 ? 7 : w;
}

static void calendar(const char *s)
{
	struct cal_date d;
	if (cal_parse_date(s, &d)) {
		char back[16];
		snprintf(back, sizeof back, "%04d-%02d-%02d", d.year, d.month, d.day);
		FUZZ_ASSERT(strcmp(back, s) == 0);
		FUZZ_ASSERT(cal_weekday(&d) == weekday(d.year, d.month, d.day));
		struct cal_date epoch = {1970, 1, 1};
		FUZZ_ASSERT(cal_days_between(&epoch, &d) ==
			    cal_days_from_civil(d.year, (unsigned)d.month, (unsigned)d.day));
	}
	int m = cal_parse_hhmm(s);
	if (m >= 0) {
		char back[8];
		FUZZ_ASSERT(m < 24 * 60);
		snprintf(back, sizeof back, "%02d:%02d", m / 60, m % 60);
		FUZZ_ASSERT(strcmp(back, s) == 0);
	}
	int sess = cal_session(s);
	FUZZ_ASSERT(sess == -1 || (sess == 0 && strcmp(s, "AM") == 0) ||
		    (sess == 1 && strcmp(s, "PM") == 0));
}

static void utf8(const char *s)
{
	size_t n = utf8_length(s);
	static const size_t sizes[] = {1, 2, 3, 4, 5, 8, 64};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		char out[64];
		bool whole = utf8_copy(out, sizes[i], s, SIZE_MAX);
		FUZZ_ASSERT(strlen(out) < sizes[i] && fuzz_utf8(out));
		FUZZ_ASSERT(!whole || (n != UTF8_INVALID && strcmp(out, s) == 0));
		utf8_copy(out, sizeof out, s, sizes[i]);
		FUZZ_ASSERT(fuzz_utf8(out) && utf8_length(out) <= sizes[i]);
		jf_pointer_token(out, sizes[i], s);
		FUZZ_ASSERT(strlen(out) < sizes[i] && fuzz_utf8(out));
	}
	if (n != UTF8_INVALID) {
		size_t count = 0;
		for (const char *p = s; *p != '\0'; count++) {
			size_t len = utf8_char_len(p);
			FUZZ_ASSERT(len >= 1 && len <= 4);
			p += len;
		}
		FUZZ_ASSERT(count == n);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	upn(s);
	calendar(s);
	utf8(s);
	free(s);
	return 0;
}
