/*
 * alerts_read: GET /v1/alerts on the reads fixture. The fixture's marks raised two
 * absences on Tuesday (P1 at the PRU: I, authorised; N, unauthorised; 100001 told).
 * Here Wednesday (P1 expected at 100001) gets a missing mark (the alert check with the
 * clock pinned to Wednesday afternoon) and an unauthorised absence (O); both are for the
 * PRU, 100002. Checked: the fields, the order by urgency and time, resolved and
 * current_code after a present mark, scope (the school told, admin; not the expected
 * school nor an unrelated one), 422 invalid-date, the bound of 1000 with truncated, the
 * default date, and one access record per pupil named.
 */
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../suites.h"
#include "reads_fixture.h"

/* The alerts of date (NULL: none given) as key reads them; asserts 200 and the date. */
static cJSON *alerts_of(const char *key, const char *date, struct th_resp *r)
{
	char path[64];
	if (date != NULL)
		snprintf(path, sizeof path, "/v1/alerts?date=%s", date);
	else
		snprintf(path, sizeof path, "/v1/alerts");
	get(key, path, r);
	ck_assert_msg(r->status == 200, "%s: %ld %s", path, r->status, r->body);
	if (date != NULL)
		ck_assert_str_eq(str(r->json, "date"), date);
	ck_assert(cJSON_IsFalse(item(r->json, "truncated")));
	return item(r->json, "alerts");
}

static int n_alerts(const char *key, const char *date)
{
	struct th_resp r;
	int n = cJSON_GetArraySize(alerts_of(key, date, &r));
	th_resp_free(&r);
	return n;
}

/* Waits (bounded) until the query's one value is want; asserts it. */
static void wait_count(const char *sql, int want)
{
	double deadline = th_now() + 10;
	int n = count_sql(sql);
	while (n != want && th_now() < deadline) {
		usleep(100000);
		n = count_sql(sql);
	}
	ck_assert_msg(n == want, "%s: %d, not %d", sql, n, want);
}

/* Wednesday's alerts: missing AM at 100001 (16:00), O in the afternoon (17:00). */
static void wednesday_alerts(void)
{
	char sql[512];
	snprintf(sql, sizeof sql,
		 "SET dualreg.now = '%s 16:00:00 Europe/London';"
		 "SELECT dualreg_missing_alerts('0 minutes');"
		 "SET dualreg.now = '%s 17:00:00 Europe/London';"
		 "UPDATE marks SET code = 'O' WHERE upn = '" P1 "' AND urn = '100001'"
		 " AND date = '%s' AND session = 'PM'",
		 wed, wed, wed);
	th_sql(rd_url, sql);
	ck_assert_int_eq(count_sql("SELECT count(*) FROM events WHERE type IN "
				   "('attendance.missing', 'attendance.absent') AND "
				   "urns = ARRAY['100002']"),
			 3); /* Thursday's G too */
}

static void assert_alert(const cJSON *a, const char *type, const char *session, int urgency,
			 bool resolved)
{
	ck_assert_str_eq(str(a, "type"), type);
	ck_assert_str_eq(str(a, "session"), session);
	ck_assert_int_eq((int)num(a, "urgency"), urgency);
	ck_assert(cJSON_IsBool(item(a, "resolved")) &&
		  cJSON_IsTrue(item(a, "resolved")) == resolved);
}

START_TEST(test_order_resolved_scope)
{
	wednesday_alerts();
	start_daemon();
	struct th_resp r;
	/* The school told (the PRU) sees both, the missing mark first. */
	cJSON *list = alerts_of(k2, wed, &r);
	ck_assert_int_eq(cJSON_GetArraySize(list), 2);
	cJSON *a = cJSON_GetArrayItem(list, 0);
	assert_alert(a, "attendance.missing", "AM", 1, false);
	ck_assert_str_eq(str(a, "upn"), P1);
	ck_assert_str_eq(str(a, "given_name"), "Ann");
	ck_assert_str_eq(str(a, "family_name"), "Able");
	ck_assert_str_eq(str(a, "urn"), "100001");
	ck_assert_str_eq(str(a, "school_name"), "Home High");
	ck_assert_str_eq(str(a, "home_urn"), "100001");
	ck_assert_str_eq(str(a, "date"), wed);
	ck_assert(cJSON_IsNull(item(a, "code")));
	ck_assert(cJSON_IsNull(item(a, "current_code")));
	ck_assert_msg(strncmp(str(a, "raised_at"), wed, 10) == 0, "%s", str(a, "raised_at"));
	a = cJSON_GetArrayItem(list, 1);
	assert_alert(a, "attendance.absent", "PM", 2, false);
	ck_assert_str_eq(str(a, "code"), "O");
	ck_assert_str_eq(str(a, "current_code"), "O");
	th_resp_free(&r);
	/* Admin sees the same; the expected school and an unrelated one see none. */
	ck_assert_int_eq(n_alerts(admin, wed), 2);
	ck_assert_int_eq(n_alerts(k1, wed), 0);
	ck_assert_int_eq(n_alerts(k3, wed), 0);

	/* 100001 records P1 present that morning: the missing mark is resolved, last. */
	char marks[256];
	snprintf(marks, sizeof marks,
		 "{\"marks\":[{\"upn\":\"" P1 "\",\"urn\":\"100001\",\"date\":\"%s\","
		 "\"session\":\"AM\",\"code\":\"/\"}]}",
		 wed);
	th_api(&rd_d, "POST", "/v1/marks", k1, marks, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);
	list = alerts_of(admin, wed, &r);
	ck_assert_int_eq(cJSON_GetArraySize(list), 2);
	assert_alert(cJSON_GetArrayItem(list, 0), "attendance.absent", "PM", 2, false);
	a = cJSON_GetArrayItem(list, 1);
	assert_alert(a, "attendance.missing", "AM", 4, true);
	ck_assert_str_eq(str(a, "current_code"), "/");
	th_resp_free(&r);

	/* Tuesday: the unauthorised N before the authorised I; 100001 was told. */
	list = alerts_of(k1, tue, &r);
	ck_assert_int_eq(cJSON_GetArraySize(list), 2);
	a = cJSON_GetArrayItem(list, 0);
	assert_alert(a, "attendance.absent", "PM", 2, false);
	ck_assert_str_eq(str(a, "code"), "N");
	ck_assert_str_eq(str(a, "urn"), "100002");
	ck_assert_str_eq(str(a, "school_name"), "Park PRU");
	a = cJSON_GetArrayItem(list, 1);
	assert_alert(a, "attendance.absent", "AM", 3, false);
	ck_assert_str_eq(str(a, "code"), "I");
	th_resp_free(&r);
	ck_assert_int_eq(n_alerts(k2, tue), 0);
	ck_assert_int_eq(n_alerts(admin, mon), 0);
}
END_TEST

START_TEST(test_dates)
{
	start_daemon();
	struct th_resp r;
	get(k1, "/v1/alerts?date=2026-13-01", &r);
	assert_slug(&r, 422, "invalid-date", "/query/date");
	th_resp_free(&r);
	get(k1, "/v1/alerts?date=yesterday", &r);
	assert_slug(&r, 422, "invalid-date", "/query/date");
	th_resp_free(&r);
	/* Without a date: today, in Europe/London. */
	alerts_of(admin, NULL, &r);
	ck_assert_str_eq(str(r.json, "date"), today);
	th_resp_free(&r);
	get(NULL, "/v1/alerts", &r);
	ck_assert_int_eq(r.status, 401);
	th_resp_free(&r);
}
END_TEST

START_TEST(test_bounded)
{
	char sql[600];
	snprintf(sql, sizeof sql,
		 "INSERT INTO events (type, upn, urns, data) SELECT 'attendance.missing', '" P1
		 "', ARRAY['100002'], jsonb_build_object('upn', '" P1 "', 'urn', '100001',"
		 " 'date', '%s'::date, 'session', 'AM', 'notify_urn', '100002')"
		 " FROM generate_series(1, 1001)",
		 before);
	th_sql(rd_url, sql);
	start_daemon();
	struct th_resp r;
	char path[64];
	snprintf(path, sizeof path, "/v1/alerts?date=%s", before);
	get(k2, path, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(cJSON_GetArraySize(item(r.json, "alerts")), 1000);
	ck_assert(cJSON_IsTrue(item(r.json, "truncated")));
	th_resp_free(&r);
}
END_TEST

START_TEST(test_audited)
{
	wednesday_alerts();
	start_daemon();
	ck_assert_int_eq(n_alerts(k2, wed), 2);
	ck_assert_int_eq(n_alerts(k3, wed), 0);
	ck_assert_int_eq(n_alerts(admin, tue), 2);
	/* One record per pupil named and reader; none for an empty answer. */
	wait_count("SELECT count(*) FROM access_audit WHERE endpoint = 'alerts' AND upn = '" P1
		   "' AND urn = '100002'",
		   1);
	wait_count("SELECT count(*) FROM access_audit WHERE endpoint = 'alerts' AND upn = '" P1
		   "' AND urn IS NULL",
		   1);
	ck_assert_int_eq(count_sql("SELECT count(*) FROM access_audit WHERE endpoint = 'alerts'"),
			 2);
}
END_TEST

Suite *alerts_read_suite(void)
{
	Suite *s = suite_create("alerts_read");
	TCase *tc = tcase_create("alerts_read");
	tcase_add_checked_fixture(tc, rd_setup, rd_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_order_resolved_scope);
	tcase_add_test(tc, test_dates);
	tcase_add_test(tc, test_bounded);
	tcase_add_test(tc, test_audited);
	suite_add_tcase(s, tc);
	return s;
}
