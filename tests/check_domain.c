/* domain: UPN check letters, strict dates and weekdays, and weekly schedules. */
#include <string.h>

#include "dualreg/calendar.h"
#include "dualreg/schedule.h"
#include "dualreg/upn.h"
#include "dualreg/utf8.h"
#include "suites.h"

START_TEST(test_upn)
{
	char expected = 0;
	/* The worked example: 8*2 + 1*4 + 2*5 + 5*10 + 1*13 = 93, 93 mod 23 = 1 -> B. */
	ck_assert_int_eq(upn_validate("B801200005001", &expected), UPN_OK);
	ck_assert_int_eq(upn_validate("A801200005001", &expected), UPN_BAD_CHECK);
	ck_assert_int_eq(expected, 'B');
	/* A temporary UPN ends in a letter, valued by its place in the check alphabet. */
	ck_assert_int_eq(upn_validate("A80120000500A", &expected), UPN_BAD_CHECK);
	char fixed[] = "?80120000500A";
	fixed[0] = expected;
	ck_assert_int_eq(upn_validate(fixed, NULL), UPN_OK);
	const char *bad[] = {"", "B80120000500", "B8012000050011", "I801200005001", "O801200005001",
			     "S801200005001", "B80120000500I", "B8012000X5001", "b801200005001"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(upn_validate(bad[i], NULL) == UPN_BAD_FORMAT, "%s", bad[i]);
}
END_TEST

START_TEST(test_dates)
{
	struct cal_date d;
	ck_assert(cal_parse_date("2024-02-29", &d));
	ck_assert(!cal_parse_date("2023-02-29", &d));
	ck_assert(!cal_parse_date("1900-02-29", &d)); /* not a leap year */
	ck_assert(cal_parse_date("2000-02-29", &d));
	ck_assert(!cal_parse_date("2026-13-01", &d));
	ck_assert(!cal_parse_date("2026-1-01", &d));
	ck_assert(!cal_parse_date("2026-01-01x", &d));
	ck_assert(!cal_parse_date("1899-12-31", &d));
	ck_assert(cal_parse_date("2026-11-25", &d));
	ck_assert_int_eq(cal_weekday(&d), 3); /* a Wednesday */
	struct cal_date e = {2026, 11, 30};
	ck_assert_int_eq(cal_weekday(&e), 1);
	ck_assert_int_eq(cal_days_between(&d, &e), 5);
	ck_assert_int_eq(cal_days_from_civil(1970, 1, 1), 0);
	ck_assert_int_eq(cal_session("AM"), 0);
	ck_assert_int_eq(cal_session("PM"), 1);
	ck_assert_int_eq(cal_session("am"), -1);
	ck_assert_int_eq(cal_parse_hhmm("09:15"), 555);
	ck_assert_int_eq(cal_parse_hhmm("24:00"), -1);
	ck_assert_int_eq(cal_parse_hhmm("9:15"), -1);
}
END_TEST

START_TEST(test_schedules)
{
	unsigned mask;
	char where[32], why[128];
	cJSON *j = cJSON_Parse("{\"mon\": [\"AM\", \"PM\"], \"wed\": [\"PM\"], \"fri\": []}");
	ck_assert_int_eq(schedule_parse(j, &mask, where, sizeof where, why, sizeof why), 0);
	ck_assert_uint_eq(mask, 1u | 2u | (1u << 5));
	cJSON_Delete(j);
	cJSON *back = schedule_to_json(mask);
	char *text = cJSON_PrintUnformatted(back);
	ck_assert_str_eq(text,
			 "{\"mon\":[\"AM\",\"PM\"],\"tue\":[],\"wed\":[\"PM\"],\"thu\":[],\"fri\":[]}");
	cJSON_free(text);
	cJSON_Delete(back);
	const char *bad[][2] = {{"{\"sat\": [\"AM\"]}", "/sat"},
				{"{\"mon\": \"AM\"}", "/mon"},
				{"{\"tue\": [\"AM\", \"XM\"]}", "/tue/1"},
				{"{\"thu\": [\"PM\", \"PM\"]}", "/thu/1"},
				{"[1]", ""}};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		j = cJSON_Parse(bad[i][0]);
		ck_assert_int_eq(schedule_parse(j, &mask, where, sizeof where, why, sizeof why), -1);
		ck_assert_msg(strcmp(where, bad[i][1]) == 0, "case %zu: %s", i, where);
		cJSON_Delete(j);
	}
}
END_TEST

START_TEST(test_utf8)
{
	ck_assert_uint_eq(utf8_length(""), 0);
	ck_assert_uint_eq(utf8_length("Zo\xc3\xab"), 3);                /* Zoë */
	ck_assert_uint_eq(utf8_length("\xf0\x9f\x99\x82"), 1);           /* U+1F642 */
	ck_assert_uint_eq(utf8_length("Zo\xff"), UTF8_INVALID);          /* not UTF-8 */
	ck_assert_uint_eq(utf8_length("\xc0\xaf"), UTF8_INVALID);         /* overlong */
	ck_assert_uint_eq(utf8_length("\xed\xa0\x80"), UTF8_INVALID);     /* surrogate */
	ck_assert_uint_eq(utf8_length("\xf4\x90\x80\x80"), UTF8_INVALID); /* past U+10FFFF */
	ck_assert_uint_eq(utf8_length("\xc3"), UTF8_INVALID);            /* cut short */
}
END_TEST

Suite *domain_suite(void)
{
	Suite *s = suite_create("domain");
	TCase *tc = tcase_create("rules");
	tcase_add_test(tc, test_upn);
	tcase_add_test(tc, test_dates);
	tcase_add_test(tc, test_schedules);
	tcase_add_test(tc, test_utf8);
	suite_add_tcase(s, tc);
	return s;
}
