/* jobs: the London clock behind the daily derive job, and its configuration key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/config.h"
#include "dualreg/jobs.h"
#include "suites.h"

/* Seconds since the epoch of a UTC civil time. */
static time_t utc(int y, int mo, int d, int h, int mi)
{
	struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
			.tm_min = mi};
	return timegm(&tm);
}

START_TEST(test_london_offset)
{
	/* BST 2026: 29 March 01:00 UTC to 25 October 01:00 UTC. */
	ck_assert_int_eq(jobs_london_offset(utc(2026, 1, 15, 12, 0)), 0);
	ck_assert_int_eq(jobs_london_offset(utc(2026, 3, 29, 0, 59)), 0);
	ck_assert_int_eq(jobs_london_offset(utc(2026, 3, 29, 1, 0)), 3600);
	ck_assert_int_eq(jobs_london_offset(utc(2026, 7, 1, 0, 0)), 3600);
	ck_assert_int_eq(jobs_london_offset(utc(2026, 10, 25, 0, 59)), 3600);
	ck_assert_int_eq(jobs_london_offset(utc(2026, 10, 25, 1, 0)), 0);
	/* 2024: 31 March and 27 October. */
	ck_assert_int_eq(jobs_london_offset(utc(2024, 3, 30, 12, 0)), 0);
	ck_assert_int_eq(jobs_london_offset(utc(2024, 3, 31, 1, 0)), 3600);
	ck_assert_int_eq(jobs_london_offset(utc(2024, 10, 27, 0, 30)), 3600);
	ck_assert_int_eq(jobs_london_offset(utc(2024, 10, 27, 1, 30)), 0);
}
END_TEST

START_TEST(test_next_daily)
{
	/* Winter: London is UTC. */
	ck_assert_int_eq(jobs_next_daily(utc(2026, 1, 10, 0, 0), 5), utc(2026, 1, 10, 0, 5));
	ck_assert_int_eq(jobs_next_daily(utc(2026, 1, 10, 0, 5), 5), utc(2026, 1, 11, 0, 5));
	ck_assert_int_eq(jobs_next_daily(utc(2026, 1, 10, 12, 0), 5), utc(2026, 1, 11, 0, 5));
	/* Summer: 00:05 BST is 23:05 UTC the day before. */
	ck_assert_int_eq(jobs_next_daily(utc(2026, 7, 1, 12, 0), 5), utc(2026, 7, 1, 23, 5));
	ck_assert_int_eq(jobs_next_daily(utc(2026, 7, 1, 23, 30), 5), utc(2026, 7, 2, 23, 5));
	ck_assert_int_eq(jobs_next_daily(utc(2026, 7, 1, 12, 0), 23 * 60 + 59),
			 utc(2026, 7, 1, 22, 59));
	/* Across the spring change: 00:05 is still GMT, 02:00 is already BST. */
	ck_assert_int_eq(jobs_next_daily(utc(2026, 3, 28, 12, 0), 5), utc(2026, 3, 29, 0, 5));
	ck_assert_int_eq(jobs_next_daily(utc(2026, 3, 28, 12, 0), 120), utc(2026, 3, 29, 1, 0));
	/* And the autumn one: 00:05 on 25 October is BST, on the 26th GMT. */
	ck_assert_int_eq(jobs_next_daily(utc(2026, 10, 24, 12, 0), 5), utc(2026, 10, 24, 23, 5));
	ck_assert_int_eq(jobs_next_daily(utc(2026, 10, 24, 23, 5), 5), utc(2026, 10, 26, 0, 5));
	/* Always in the future, within a day and an hour. */
	for (time_t t = utc(2026, 1, 1, 0, 0); t < utc(2027, 1, 1, 0, 0); t += 3607) {
		time_t n = jobs_next_daily(t, 5);
		ck_assert(n > t && n - t <= 86400 + 3600);
	}
}
END_TEST

START_TEST(test_derive_at_config)
{
	char err[600];
	struct config c;
	ck_assert_int_eq(cfg_load_string(&c, "t.conf", "", err, sizeof err), 0);
	ck_assert_uint_eq(c.derive_at_min, 5);
	cfg_free(&c);
	ck_assert_msg(cfg_load_string(&c, "t.conf", "[jobs]\nderive_at = 23:59\n", err,
				      sizeof err) == 0,
		      "%s", err);
	ck_assert_uint_eq(c.derive_at_min, 23 * 60 + 59);
	cfg_free(&c);
	const char *bad[] = {"24:00", "7:05", "07:60", "noon", ""};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char ini[64];
		snprintf(ini, sizeof ini, "[jobs]\nderive_at = %s\n", bad[i]);
		ck_assert_int_eq(cfg_load_string(&c, "t.conf", ini, err, sizeof err), -1);
		ck_assert_msg(strstr(err, "t.conf:2: [jobs] derive_at: expected a time of day") !=
				  NULL,
			      "%s", err);
	}
}
END_TEST

Suite *jobs_suite(void)
{
	Suite *s = suite_create("jobs");
	TCase *tc = tcase_create("clock");
	tcase_add_test(tc, test_london_offset);
	tcase_add_test(tc, test_next_daily);
	tcase_add_test(tc, test_derive_at_config);
	suite_add_tcase(s, tc);
	return s;
}
