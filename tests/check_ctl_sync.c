/* ctl_sync: dualregctl registration add|end|schedule and deliveries list|retry against a
 * real database; the registry's rules and the outbox's state as an operator sees them. */
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
	tcase_add_test(tc, test_deliveries);
	suite_add_tcase(s, tc);
	return s;
}
