/* ctl_sync: dualregctl registration add|end|schedule|list|confirm|decline and deliveries
 * list|retry against a real database; the registry's rules, the requests awaiting a
 * school's consent and the outbox's state as an operator sees them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "suites.h"

static char url[1024], env_url[1200], ctl[512];

static void setup(void)
{
	th_db_create_migrated(url, sizeof url);
	snprintf(env_url, sizeof env_url, "DUALREG_DATABASE_URL=%s", url);
	snprintf(ctl, sizeof ctl, "%s/dualregctl", th_env("DUALREG_TEST_BIN"));
	th_sql(url, "INSERT INTO schools (urn, name, kind) VALUES ('100001', 'Home', 'mainstream'),"
		    "('100002', 'PRU', 'pru');"
		    "INSERT INTO pupils VALUES ('B801200005001', 'Ann', 'Bell', '2012-01-01')");
}

static int ctl_run(char *out, size_t len, char *const *args)
{
	char *argv[16] = {ctl, "-c", "/dev/null"};
	int n = 3;
	for (; args[n - 3] != NULL && n < 15; n++)
		argv[n] = args[n - 3];
	argv[n] = NULL;
	char *const envp[] = {env_url, NULL};
	return th_run(argv, envp, out, len);
}

static long scalar(const char *sql)
{
	char cmd[1600], out[64];
	snprintf(cmd, sizeof cmd, "psql '%s' -Atc \"%s\"", url, sql);
	char *const argv[] = {"/bin/sh", "-c", cmd, NULL};
	ck_assert_int_eq(th_run(argv, NULL, out, sizeof out), 0);
	return atol(out);
}

START_TEST(test_registrations)
{
	char out[4096];
	char *main_reg[] = {"registration", "add", "--upn", "B801200005001", "--urn", "100001",
			    "--role", "main", "--start", "2026-09-01", NULL};
	ck_assert_msg(ctl_run(out, sizeof out, main_reg) == 0, "%s", out);
	/* A subsidiary needs a schedule; without a main elsewhere it is refused. */
	char *sub_bad[] = {"registration", "add", "--upn", "B801200005001", "--urn", "100001",
			   "--role", "subsidiary", "--start", "2026-10-01", "--schedule", "mon=AM", NULL};
	ck_assert_int_eq(ctl_run(out, sizeof out, sub_bad), 1);
	char *sched_bad[] = {"registration", "add", "--upn", "B801200005001", "--urn", "100002",
			     "--role", "subsidiary", "--start", "2026-10-01", "--schedule", "sat=AM",
			     NULL};
	ck_assert_int_eq(ctl_run(out, sizeof out, sched_bad), 2);
	ck_assert_msg(strstr(th_last_stderr(), "/sat") != NULL, "%s", th_last_stderr());
	char *sub[] = {"registration", "add", "--upn", "B801200005001", "--urn", "100002",
		       "--role", "subsidiary", "--start", "2026-10-01", "--schedule",
		       "mon=AM,PM;tue=AM", NULL};
	ck_assert_msg(ctl_run(out, sizeof out, sub) == 0, "%s", out);
	long id = scalar("SELECT id FROM registrations WHERE role = 'subsidiary'");
	ck_assert_int_eq(scalar("SELECT mask FROM registration_schedules"), 1 | 2 | 4);
	char ids[24];
	snprintf(ids, sizeof ids, "%ld", id);
	char *resched[] = {"registration", "schedule", ids, "--from", "2026-11-02", "--schedule",
			   "wed=PM", NULL};
	ck_assert_msg(ctl_run(out, sizeof out, resched) == 0, "%s", out);
	ck_assert_int_eq(scalar("SELECT mask FROM registration_schedules WHERE effective_from = "
				"'2026-11-02'"),
			 1 << 5);
	char *end[] = {"registration", "end", ids, "--date", "2026-11-20", NULL};
	ck_assert_msg(ctl_run(out, sizeof out, end) == 0, "%s", out);
	ck_assert_int_eq(scalar("SELECT count(*) FROM registrations WHERE end_date = '2026-11-20'"),
			 1);
	ck_assert_int_eq(scalar("SELECT count(*) FROM events WHERE type = 'registration.ended'"), 1);
	char *usage[] = {"registration", "end", ids, NULL};
	ck_assert_int_eq(ctl_run(out, sizeof out, usage), 2);
}
END_TEST

/* The PRU asks for a placement (through the API's function, as its key would): pending. */
static void request_placement(const char *start)
{
	char sql[512];
	snprintf(sql, sizeof sql,
		 "SELECT dualreg_registration_create('100002', 'B801200005001', '100002', "
		 "'subsidiary', '%s', NULL, 3, 'ann', 'BELL', '2012-01-01', interval '14 days', 30)",
		 start);
	th_sql(url, sql);
}

START_TEST(test_registration_requests)
{
	char out[8192];
	char *main_reg[] = {"registration", "add", "--upn", "B801200005001", "--urn", "100001",
			    "--role", "main", "--start", "2026-09-01", NULL};
	ck_assert_msg(ctl_run(out, sizeof out, main_reg) == 0, "%s", th_last_stderr());
	request_placement("2026-10-05");
	long id = scalar("SELECT id FROM registration_records WHERE state = 'pending'");

	/* The operator sees the request, with the pupil, and whose decision it awaits. */
	char *pending[] = {"registration", "list", "--pending", "--json", NULL};
	ck_assert_msg(ctl_run(out, sizeof out, pending) == 0, "%s", th_last_stderr());
	cJSON *j = cJSON_Parse(out);
	ck_assert_int_eq(cJSON_GetArraySize(j), 1);
	cJSON *item = cJSON_GetArrayItem(j, 0);
	ck_assert_int_eq((long)cJSON_GetNumberValue(cJSON_GetObjectItem(item, "id")), id);
	ck_assert_str_eq(cJSON_GetObjectItem(item, "status")->valuestring, "pending");
	ck_assert_str_eq(cJSON_GetObjectItem(item, "awaiting")->valuestring, "100001");
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(item, "pupil"), "family_name")
			     ->valuestring,
			 "Bell");
	cJSON_Delete(j);
	char *text[] = {"registration", "list", "--pending", "--school", "100001", NULL};
	ck_assert_int_eq(ctl_run(out, sizeof out, text), 0);
	ck_assert_msg(strstr(out, "Ann Bell") != NULL && strstr(out, "pending") != NULL, "%s", out);
	char *other[] = {"registration", "list", "--pending", "--school", "100003", "--json", NULL};
	ck_assert_int_eq(ctl_run(out, sizeof out, other), 0);
	ck_assert_str_eq(out, "[]\n");
	char *everything[] = {"registration", "list", "--json", NULL};
	ck_assert_int_eq(ctl_run(out, sizeof out, everything), 0);
	j = cJSON_Parse(out);
	ck_assert_int_eq(cJSON_GetArraySize(j), 2);
	cJSON_Delete(j);
	ck_assert_int_eq(scalar("SELECT count(*) FROM marks"), 0);

	/* Confirmed: in force, both schools told, derived D marks. */
	char ids[24];
	snprintf(ids, sizeof ids, "%ld", id);
	char *confirm[] = {"registration", "confirm", ids, NULL};
	ck_assert_msg(ctl_run(out, sizeof out, confirm) == 0, "%s", th_last_stderr());
	j = cJSON_Parse(out);
	ck_assert_str_eq(cJSON_GetObjectItem(j, "status")->valuestring, "in_force");
	cJSON_Delete(j);
	ck_assert_int_eq(scalar("SELECT count(*) FROM registrations WHERE role = 'subsidiary'"), 1);
	ck_assert_int_eq(scalar("SELECT count(*) FROM events WHERE type = 'registration.created' "
				"AND urns = ARRAY['100001', '100002']"),
			 1);
	ck_assert_int_gt(scalar("SELECT count(*) FROM marks WHERE code = 'D'"), 0);
	/* Nothing pending any more: an error, and the list is empty. */
	ck_assert_int_eq(ctl_run(out, sizeof out, confirm), 1);
	ck_assert_msg(strstr(th_last_stderr(), "nothing-pending") != NULL, "%s", th_last_stderr());
	ck_assert_int_eq(ctl_run(out, sizeof out, pending), 0);
	ck_assert_str_eq(out, "[]\n");

	/* Declined, with a reason: the PRU is told. */
	char *end[] = {"registration", "end", ids, "--date", "2026-10-30", NULL};
	ck_assert_msg(ctl_run(out, sizeof out, end) == 0, "%s", th_last_stderr());
	request_placement("2026-11-02");
	id = scalar("SELECT id FROM registration_records WHERE state = 'pending'");
	snprintf(ids, sizeof ids, "%ld", id);
	char *decline[] = {"registration", "decline", ids, "--reason", "not agreed", NULL};
	ck_assert_msg(ctl_run(out, sizeof out, decline) == 0, "%s", th_last_stderr());
	ck_assert_int_eq(scalar("SELECT count(*) FROM registration_records WHERE state = "
				"'declined' AND decision_reason = 'not agreed'"),
			 1);
	ck_assert_int_eq(scalar("SELECT count(*) FROM events WHERE type = 'registration.declined' "
				"AND urns = ARRAY['100002']"),
			 1);
	ck_assert_int_eq(ctl_run(out, sizeof out, decline), 1);

	/* Usage errors. */
	char *no_id[] = {"registration", "confirm", NULL};
	ck_assert_int_eq(ctl_run(out, sizeof out, no_id), 2);
	char *bad_id[] = {"registration", "decline", "x1", NULL};
	ck_assert_int_eq(ctl_run(out, sizeof out, bad_id), 2);
	char *reason_on_confirm[] = {"registration", "confirm", ids, "--reason", "x", NULL};
	ck_assert_int_eq(ctl_run(out, sizeof out, reason_on_confirm), 2);
	char *bad_school[] = {"registration", "list", "--school", "12", NULL};
	ck_assert_int_eq(ctl_run(out, sizeof out, bad_school), 2);
	char *missing[] = {"registration", "confirm", "999999", NULL};
	ck_assert_int_eq(ctl_run(out, sizeof out, missing), 1);
}
END_TEST

START_TEST(test_deliveries)
{
	th_sql(url, "INSERT INTO subscriptions (urn, url, events, secret) VALUES ('100001', "
		    "'https://mis.example/hook', '{*}', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');"
		    "SELECT dualreg_emit('mark.recorded', 'B801200005001', ARRAY['100001'], '{}');"
		    "UPDATE deliveries SET status = 'failed', attempts = 11, last_status = 500, "
		    "last_error = 'HTTP 500'");
	char out[4096];
	char *list[] = {"deliveries", "list", "--status", "failed", "--json", NULL};
	ck_assert_int_eq(ctl_run(out, sizeof out, list), 0);
	cJSON *j = cJSON_Parse(out);
	ck_assert_int_eq(cJSON_GetArraySize(j), 1);
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 0), "last_error")->valuestring,
			 "HTTP 500");
	long id = (long)cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 0), "id"));
	cJSON_Delete(j);
	char ids[24];
	snprintf(ids, sizeof ids, "%ld", id);
	char *retry[] = {"deliveries", "retry", ids, NULL};
	ck_assert_msg(ctl_run(out, sizeof out, retry) == 0, "%s", out);
	ck_assert_int_eq(scalar("SELECT count(*) FROM deliveries WHERE status = 'pending'"), 1);
	char *missing[] = {"deliveries", "retry", "999999", NULL};
	ck_assert_int_eq(ctl_run(out, sizeof out, missing), 1);
	char *bad[] = {"deliveries", "list", "--status", "lost", NULL};
	ck_assert_int_eq(ctl_run(out, sizeof out, bad), 2);
	char *table[] = {"deliveries", "list", NULL};
	ck_assert_int_eq(ctl_run(out, sizeof out, table), 0);
	ck_assert_msg(strstr(out, "mark.recorded") != NULL, "%s", out);
}
END_TEST

Suite *ctl_sync_suite(void)
{
	Suite *s = suite_create("ctl_sync");
	TCase *tc = tcase_create("operator");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_registrations);
	tcase_add_test(tc, test_registration_requests);
	tcase_add_test(tc, test_deliveries);
	suite_add_tcase(s, tc);
	return s;
}
