/*
 * failover: the daemon follows a promoted standby. A primary and a synchronous
 * streaming standby (pg_basebackup) run in the test's own directories; the daemon gets
 * a multi-host URL with target_session_attrs=read-write. A mark is acknowledged, the
 * primary is stopped and the standby promoted: the daemon becomes ready again without
 * a restart, takes new marks, and the acknowledged mark is still there.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness.h"
#include "../suites.h"

static char dir[512], primary[1024], multi[2048];
static struct th_daemon d;
static char admin[64];
static char day[16];

static void pg(const char *cmd, const char *a, const char *b, char *out, size_t outlen)
{
	char script[512], buf[4096];
	snprintf(script, sizeof script, "%s/scripts/pg.sh", th_env("DUALREG_TEST_ROOT"));
	char *const argv[] = {script, (char *)cmd, (char *)a, (char *)b, NULL};
	int rc = th_run(argv, NULL, buf, sizeof buf);
	ck_assert_msg(rc == 0, "pg.sh %s: %s", cmd, buf);
	if (out != NULL)
		snprintf(out, outlen, "%.*s", (int)strcspn(buf, "\n"), buf);
}

static void setup(void)
{
	snprintf(dir, sizeof dir, "%s/fo-%d", th_env("DUALREG_TEST_TMP"), (int)getpid());
	char a[600], b[600];
	snprintf(a, sizeof a, "%s/a", dir);
	snprintf(b, sizeof b, "%s/b", dir);
	char mk[1200];
	snprintf(mk, sizeof mk, "mkdir -p '%s' && chmod 711 '%s'", dir, dir);
	char *const argv[] = {"/bin/sh", "-c", mk, NULL};
	ck_assert_int_eq(th_run(argv, NULL, NULL, 0), 0);
	pg("start", a, NULL, primary, sizeof primary);
	pg("standby", a, b, NULL, 0);
	/* Commits wait for the standby: an acknowledged mark survives the failover. */
	th_sql(primary, "ALTER SYSTEM SET synchronous_standby_names = '*'");
	th_sql(primary, "SELECT pg_reload_conf()");
	char ctl[512], env_url[1200], out[4096];
	snprintf(ctl, sizeof ctl, "%s/dualregctl", th_env("DUALREG_TEST_BIN"));
	snprintf(env_url, sizeof env_url, "DUALREG_DATABASE_URL=%s", primary);
	char *const migrate[] = {ctl, "-c", "/dev/null", "migrate", NULL};
	char *const envp[] = {env_url, NULL};
	ck_assert_msg(th_run(migrate, envp, out, sizeof out) == 0, "%s", out);
	th_sql(primary, "INSERT INTO schools (urn, name, kind) VALUES ('100001', 'Home', 'mainstream');"
			"INSERT INTO pupils VALUES ('B801200005001', 'Ann', 'Bell', '2012-01-01');"
			"INSERT INTO registrations (upn, urn, role, start_date) VALUES "
			"('B801200005001', '100001', 'main', dualreg_today() - 30)");
	th_key_create(primary, NULL, admin, sizeof admin);
	snprintf(multi, sizeof multi,
		 "host=%s/run,%s/run dbname=dualreg user=dualreg target_session_attrs=read-write",
		 a, b);
	th_daemon_start(&d, multi, "[database]\nconnect_timeout = 2s\n", false);
}

static void teardown(void)
{
	if (d.pid > 0)
		th_daemon_stop(&d, SIGKILL);
	char a[600], b[600];
	snprintf(a, sizeof a, "%s/a", dir);
	snprintf(b, sizeof b, "%s/b", dir);
	char script[512], out[1024];
	snprintf(script, sizeof script, "%s/scripts/pg.sh", th_env("DUALREG_TEST_ROOT"));
	char *const stop_a[] = {script, "stop", a, NULL};
	char *const stop_b[] = {script, "stop", b, NULL};
	th_run(stop_a, NULL, out, sizeof out);
	th_run(stop_b, NULL, out, sizeof out);
}

/* Posts one mark for the latest school day; returns the HTTP status. */
static long post_mark(const char *session)
{
	char body[300];
	snprintf(body, sizeof body,
		 "{\"marks\": [{\"upn\": \"B801200005001\", \"urn\": \"100001\", \"date\": \"%s\", "
		 "\"session\": \"%s\", \"code\": \"/\"}]}",
		 day, session);
	struct th_resp r;
	th_api(&d, "POST", "/v1/marks", admin, body, NULL, &r);
	long status = r.status;
	if (status == 200)
		ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json,
											     "results"),
								      0),
						     "status")
				     ->valuestring,
				 "created");
	th_resp_free(&r);
	return status;
}

START_TEST(test_follows_promoted_standby)
{
	char b_url[1024];
	snprintf(b_url, sizeof b_url, "host=%s/b/run dbname=dualreg user=dualreg", dir);
	/* The latest weekday before today, computed by the database. */
	{
		char cmd[1400], out[64];
		snprintf(cmd, sizeof cmd,
			 "psql '%s' -Atc \"SELECT max(x)::date FROM generate_series(dualreg_today() - 7, "
			 "dualreg_today() - 1, interval '1 day') x WHERE extract(isodow FROM x) <= 5\"",
			 primary);
		char *const argv[] = {"/bin/sh", "-c", cmd, NULL};
		ck_assert_int_eq(th_run(argv, NULL, out, sizeof out), 0);
		snprintf(day, sizeof day, "%.10s", out);
	}
	ck_assert_int_eq(post_mark("AM"), 200);

	char a[600], b[600];
	snprintf(a, sizeof a, "%s/a", dir);
	snprintf(b, sizeof b, "%s/b", dir);
	pg("stop", a, NULL, NULL, 0);
	pg("promote", b, NULL, NULL, 0);

	/* Ready again without a restart, and taking writes on the new primary. */
	double deadline = th_now() + 40;
	long status = 0;
	while (th_now() < deadline) {
		struct th_resp r;
		char u[128];
		snprintf(u, sizeof u, "%s/readyz", d.base);
		th_http("GET", u, NULL, 0, NULL, &r);
		status = r.status;
		th_resp_free(&r);
		if (status == 200)
			break;
		usleep(200 * 1000);
	}
	ck_assert_int_eq(status, 200);
	deadline = th_now() + 20;
	while ((status = post_mark("PM")) != 200 && th_now() < deadline)
		usleep(200 * 1000);
	ck_assert_int_eq(status, 200);

	/* The mark acknowledged before the failover is on the promoted server. */
	char cmd[1400], out[64];
	snprintf(cmd, sizeof cmd,
		 "psql '%s' -Atc \"SELECT count(*) FROM marks WHERE upn = 'B801200005001' AND "
		 "source = 'api'\"",
		 b_url);
	char *const argv[] = {"/bin/sh", "-c", cmd, NULL};
	ck_assert_int_eq(th_run(argv, NULL, out, sizeof out), 0);
	ck_assert_msg(strncmp(out, "2", 1) == 0, "marks on the new primary: %s", out);
}
END_TEST

Suite *failover_suite(void)
{
	Suite *s = suite_create("failover");
	TCase *tc = tcase_create("standby");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_follows_promoted_standby);
	suite_add_tcase(s, tc);
	return s;
}
