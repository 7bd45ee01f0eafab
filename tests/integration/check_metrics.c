/* metrics and audit: GET /metrics for an admin key or the configured token only, the
 * counters following what the daemon did; reads of pupil data recorded in the audit. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../harness.h"
#include "../suites.h"

static char url[1024];
static struct th_daemon d;
static char admin[64], school[64];

static void setup(void)
{
	th_db_create_migrated(url, sizeof url);
	th_sql(url, "INSERT INTO schools (urn, name, kind) VALUES ('100001', 'Home', 'mainstream')");
	th_key_create(url, NULL, admin, sizeof admin);
	th_key_create(url, "100001", school, sizeof school);
	th_daemon_start(&d, url, "[metrics]\ntoken = scrape-token-123456\n", false);
}

static void teardown(void)
{
	if (d.pid > 0)
		th_daemon_stop(&d, SIGKILL);
}

START_TEST(test_access_and_counters)
{
	/* A tight rate limit, to see a refusal counted. */
	th_daemon_stop(&d, SIGTERM);
	th_daemon_start(&d, url,
			"[metrics]\ntoken = scrape-token-123456\n[limits]\nrate = 1\nburst = 2\n",
			false);
	struct th_resp r;
	th_api(&d, "GET", "/metrics", NULL, NULL, NULL, &r);
	th_assert_problem(&r, 401);
	th_resp_free(&r);
	th_api(&d, "GET", "/metrics", school, NULL, NULL, &r);
	th_assert_problem(&r, 403);
	th_resp_free(&r);
	th_api(&d, "GET", "/readyz", NULL, NULL, NULL, &r);
	th_resp_free(&r);
	th_api(&d, "GET", "/no/such/path", NULL, NULL, NULL, &r);
	th_resp_free(&r);
	/* The school key's bucket (burst 2) is spent by the 403 above and this: the next is 429. */
	th_api(&d, "GET", "/v1/me", school, NULL, NULL, &r);
	th_resp_free(&r);
	th_api(&d, "GET", "/v1/me", school, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 429);
	th_resp_free(&r);
	const char *bad[] = {"Authorization: Bearer scrape-token-wrong00", NULL};
	th_api(&d, "GET", "/metrics", NULL, NULL, bad, &r);
	th_assert_problem(&r, 401);
	th_resp_free(&r);
	const char *good[] = {"Authorization: Bearer scrape-token-123456", NULL};
	th_api(&d, "GET", "/metrics", NULL, NULL, good, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_msg(strncmp(r.content_type, "text/plain", 10) == 0, "%s", r.content_type);
	const char *want[] = {
	    "dualreg_http_requests_total{route=\"readyz\",status=\"200\"} 1\n",
	    "dualreg_http_requests_total{route=\"unrouted\",status=\"404\"} 1\n",
	    "dualreg_http_requests_total{route=\"me\",status=\"429\"} 1\n",
	    "dualreg_rate_limited_total 1\n",
	    "dualreg_http_request_duration_seconds_count{route=\"readyz\"} 1\n",
	    "dualreg_db_connections{state=\"size\"} 2\n",
	    "dualreg_outbox_backlog 0\n",
	    "dualreg_marks_total{source=\"api\",status=\"created\"} 0\n",
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		ck_assert_msg(strstr(r.body, want[i]) != NULL, "missing %s in:\n%s", want[i], r.body);
	th_resp_free(&r);
	/* An admin key works as well. */
	th_api(&d, "GET", "/metrics", admin, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);
}
END_TEST

START_TEST(test_pupil_reads_are_audited)
{
	th_sql(url, "INSERT INTO pupils VALUES ('B801200005001', 'Ann', 'Bell', '2012-01-01');"
		    "INSERT INTO registrations (upn, urn, role, start_date) VALUES "
		    "('B801200005001', '100001', 'main', dualreg_today() - 10)");
	struct th_resp r;
	th_api(&d, "GET", "/v1/pupils/B801200005001", school, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);
	th_api(&d, "GET", "/v1/pupils/B801200005001/status", admin, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);
	th_api(&d, "GET", "/v1/audit?upn=B801200005001", school, NULL, NULL, &r);
	th_assert_problem(&r, 403);
	th_resp_free(&r);
	th_api(&d, "GET", "/v1/audit?upn=nonsense", admin, NULL, NULL, &r);
	th_assert_problem(&r, 422);
	th_resp_free(&r);
	/* Records are written within about a second. */
	double deadline = th_now() + 10;
	int n = 0;
	while (th_now() < deadline) {
		th_api(&d, "GET", "/v1/audit?upn=B801200005001", admin, NULL, NULL, &r);
		ck_assert_int_eq(r.status, 200);
		n = cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "reads"));
		if (n == 2)
			break;
		th_resp_free(&r);
		usleep(100000);
	}
	ck_assert_int_eq(n, 2);
	const cJSON *newest = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "reads"), 0);
	ck_assert_str_eq(cJSON_GetObjectItem(newest, "endpoint")->valuestring, "pupils.status");
	const cJSON *oldest = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "reads"), 1);
	ck_assert_str_eq(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(oldest, "key"), "name")->valuestring,
	    "school 100001");
	th_resp_free(&r);
}
END_TEST

Suite *metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("prometheus");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_access_and_counters);
	tcase_add_test(tc, test_pupil_reads_are_audited);
	suite_add_tcase(s, tc);
	return s;
}
