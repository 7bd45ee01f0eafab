/*
 * audit: every answer carrying pupil data is recorded in access_audit (pupil routes
 * with 200, 304 and HEAD; the register, the change feed and the feed's refused items,
 * one record per pupil named; webhooks delivered, against their subscription); a full
 * audit buffer refuses reads (503) until the database takes the records, none lost;
 * database error texts never reach a client.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../th_server.h"
#include "reads_fixture.h"
#include "../suites.h"

static struct th_server sink = {.handler = NULL};
static pthread_mutex_t sink_mu = PTHREAD_MUTEX_INITIALIZER;
static int sink_n;

static void sink_cb(struct evhttp_request *req, void *arg)
{
	(void)arg;
	pthread_mutex_lock(&sink_mu);
	sink_n++;
	pthread_mutex_unlock(&sink_mu);
	evhttp_send_reply(req, 204, "No Content", NULL);
}

static int sink_hits(void)
{
	pthread_mutex_lock(&sink_mu);
	int n = sink_n;
	pthread_mutex_unlock(&sink_mu);
	return n;
}

static void setup(void)
{
	rd_setup();
}

static void teardown(void)
{
	rd_teardown();
	if (sink.handler != NULL)
		th_server_stop(&sink);
	sink.handler = NULL;
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
	if (n != want) {
		char rows[4096];
		PGconn *c = PQconnectdb(rd_url);
		PGresult *res = PQexec(c, "SELECT string_agg(concat_ws(' ', upn, endpoint, urn, "
					  "key_name, reads), '; ') FROM access_audit");
		snprintf(rows, sizeof rows, "%s", PQgetvalue(res, 0, 0));
		PQclear(res);
		PQfinish(c);
		ck_abort_msg("%s: %d, not %d (records: %s)", sql, n, want, rows);
	}
}

static void api(const char *method, const char *token, const char *path,
		const char *const *headers, struct th_resp *r)
{
	th_api(&rd_d, method, path, token, NULL, headers, r);
}

START_TEST(test_every_answer_recorded)
{
	start_daemon();
	struct th_resp r;
	char path[160];
	/* status: a 200, then a 304 for the same body */
	snprintf(path, sizeof path, "/v1/pupils/" P1 "/status?date=%s", mon);
	api("GET", k1, path, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	char inm[160];
	snprintf(inm, sizeof inm, "If-None-Match: %s", r.etag);
	th_resp_free(&r);
	const char *h[] = {inm, NULL};
	api("GET", k1, path, h, &r);
	ck_assert_int_eq(r.status, 304);
	th_resp_free(&r);
	/* HEAD */
	api("HEAD", k1, "/v1/pupils/" P1, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);
	/* the register: both pupils on 100001's roll */
	snprintf(path, sizeof path, "/v1/schools/100001/register?date=%s&session=AM", mon);
	api("GET", k1, path, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(cJSON_GetArraySize(item(r.json, "pupils")), 2);
	th_resp_free(&r);
	/* the change feed: 100003 sees the events of its pupil */
	api("GET", k3, "/v1/changes", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_gt(cJSON_GetArraySize(item(r.json, "changes")), 0);
	th_resp_free(&r);
	/* the feed's refused items shown to the school */
	th_sql(rd_url, "INSERT INTO pull_rejections (urn, cursor, item, error_type, detail) "
		       "VALUES ('100002', 'c1', '{\"upn\": \"" P2 "\", \"code\": \"?\"}', "
		       "'invalid-code', 'not a code')");
	api("GET", k2, "/v1/schools/100002/pull", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);
	api("GET", k2, "/v1/schools/100002/sync", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);

	wait_count("SELECT coalesce(sum(reads), 0) FROM access_audit WHERE upn = '" P1 "' "
		   "AND endpoint = 'pupils.status' AND urn = '100001'",
		   2);
	wait_count("SELECT count(*) FROM access_audit WHERE upn = '" P1 "' "
		   "AND endpoint = 'pupils.get' AND key_name = 'school 100001'",
		   1);
	wait_count("SELECT count(*) FROM access_audit WHERE endpoint = 'schools.register' "
		   "AND urn = '100001' AND upn IN ('" P1 "', '" P2 "')",
		   2);
	wait_count("SELECT count(*) FROM access_audit WHERE endpoint = 'changes' "
		   "AND upn = '" P3 "' AND urn = '100003'",
		   1);
	wait_count("SELECT count(*) FROM access_audit WHERE endpoint = 'schools.pull' "
		   "AND upn = '" P2 "' AND urn = '100002'",
		   1);
	/* nothing else was recorded (the 200 and the 304 are one record of two reads, or
	 * two records when a flush fell between them) */
	wait_count("SELECT count(DISTINCT (upn, endpoint, key_name)) FROM access_audit", 6);
	wait_count("SELECT sum(reads) FROM access_audit", 7);

	/* GET /v1/audit shows the reader's school */
	get(admin, "/v1/audit?upn=" P2, &r);
	ck_assert_int_eq(r.status, 200);
	cJSON *reads = item(r.json, "reads");
	ck_assert_int_eq(cJSON_GetArraySize(reads), 2);
	ck_assert_str_eq(str(cJSON_GetArrayItem(reads, 0), "endpoint"), "schools.pull");
	ck_assert_str_eq(str(cJSON_GetArrayItem(reads, 0), "urn"), "100002");
	th_resp_free(&r);
}
END_TEST

START_TEST(test_webhook_delivery_recorded)
{
	sink.handler = sink_cb;
	sink_n = 0;
	th_server_start(&sink);
	th_daemon_start(&rd_d, rd_url, "[webhooks]\nallow_http = true\nallow_private = true\n",
			false);
	char body[256];
	snprintf(body, sizeof body,
		 "{\"url\": \"http://127.0.0.1:%u/hook\", \"events\": [\"*\"]}", sink.port);
	struct th_resp r;
	th_api(&rd_d, "POST", "/v1/subscriptions", k1, body, NULL, &r);
	ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
	int sub = (int)num(r.json, "id");
	th_resp_free(&r);
	th_sql(rd_url, "SELECT dualreg_emit('mark.conflict', '" P2 "', ARRAY['100001'], "
		       "jsonb_build_object('upn', '" P2 "')); "
		       "SELECT dualreg_emit('mark.conflict', '" P2 "', ARRAY['100001'], "
		       "jsonb_build_object('upn', '" P2 "'))");
	double deadline = th_now() + 15;
	while (sink_hits() < 2 && th_now() < deadline)
		usleep(20000);
	ck_assert_int_eq(sink_hits(), 2);
	char sql[512];
	snprintf(sql, sizeof sql,
		 "SELECT coalesce(sum(reads), 0) FROM access_audit WHERE upn = '" P2 "' "
		 "AND endpoint = 'webhook' AND key_id IS NULL AND key_name = 'webhook:%d' "
		 "AND subscription_id = %d AND urn = '100001'",
		 sub, sub);
	wait_count(sql, 2);
}
END_TEST

/* The endpoints one admin key reads, each a distinct record (the register two). */
static const char *const reads_paths[] = {
    "/v1/pupils/" P1, "/v1/pupils/" P2, "/v1/pupils/" P3,
    "/v1/pupils/" P1 "/status", "/v1/pupils/" P2 "/status", "/v1/pupils/" P3 "/status",
    "/v1/pupils/" P1 "/registrations", "/v1/pupils/" P2 "/registrations",
    "/v1/pupils/" P3 "/registrations", "register", NULL};

static bool metric_is(const char *name, const char *value)
{
	struct th_resp r;
	get(admin, "/metrics", &r);
	ck_assert_int_eq(r.status, 200);
	char want[128];
	snprintf(want, sizeof want, "\n%s %s\n", name, value);
	bool found = strstr(r.body, want) != NULL;
	th_resp_free(&r);
	return found;
}

START_TEST(test_full_refuses_until_written)
{
	th_daemon_start(&rd_d, rd_url, "[audit]\nmax_pending = 10\n", false);
	/* The database refuses every access record from now on. */
	th_sql(rd_url, "ALTER TABLE access_audit ADD CONSTRAINT audit_blocked CHECK (false) "
		       "NOT VALID");
	char register_path[128];
	snprintf(register_path, sizeof register_path,
		 "/v1/schools/100001/register?date=%s&session=AM", mon);
	int expected = 0, refused = 0;
	struct th_resp r;
	for (int round = 0; round < 3 && refused == 0; round++) {
		for (int i = 0; reads_paths[i] != NULL && refused == 0; i++) {
			bool reg = strcmp(reads_paths[i], "register") == 0;
			get(admin, reg ? register_path : reads_paths[i], &r);
			if (r.status == 200) {
				expected += reg ? 2 : 1;
			} else {
				assert_slug(&r, 503, "audit-unavailable", NULL);
				ck_assert_str_ne(r.retry_after, "");
				refused++;
			}
			th_resp_free(&r);
			usleep(50000);
		}
	}
	ck_assert_int_eq(refused, 1);
	ck_assert_int_ge(expected, 10);
	/* every read of pupil data is refused, not only the pupil routes */
	get(admin, register_path, &r);
	assert_slug(&r, 503, "audit-unavailable", NULL);
	th_resp_free(&r);
	get(k3, "/v1/changes", &r);
	assert_slug(&r, 503, "audit-unavailable", NULL);
	th_resp_free(&r);
	get(k2, "/v1/schools/100002/pull", &r);
	assert_slug(&r, 503, "audit-unavailable", NULL);
	th_resp_free(&r);
	/* other routes answer */
	get(k1, "/v1/me", &r);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);
	ck_assert(metric_is("dualreg_audit_full", "1"));
	ck_assert(metric_is("dualreg_audit_refused_reads_total", "4"));
	ck_assert(!metric_is("dualreg_audit_write_failures_total", "0"));
	ck_assert_int_eq(count_sql("SELECT count(*) FROM access_audit"), 0);

	/* The database takes records again: reads resume, and nothing was lost. */
	th_sql(rd_url, "ALTER TABLE access_audit DROP CONSTRAINT audit_blocked");
	double deadline = th_now() + 10;
	long status = 0;
	while (status != 200 && th_now() < deadline) {
		get(admin, "/v1/pupils/" P1, &r);
		status = r.status;
		th_resp_free(&r);
		if (status != 200)
			usleep(100000);
	}
	ck_assert_int_eq(status, 200);
	expected++;
	char sql[64];
	snprintf(sql, sizeof sql, "SELECT coalesce(sum(reads), 0) FROM access_audit");
	wait_count(sql, expected);
	deadline = th_now() + 5;
	while (!metric_is("dualreg_audit_pending", "0") && th_now() < deadline)
		usleep(100000);
	ck_assert(metric_is("dualreg_audit_pending", "0"));
	ck_assert(metric_is("dualreg_audit_full", "0"));
	ck_assert(th_daemon_log_contains(&rd_d, "msg=\"access records written again\""));
}
END_TEST

/* Asserts an answer names nothing of the database: not its name, host, user or SQL. */
static void assert_no_db_text(const struct th_resp *r, const char *dbname)
{
	const char *bad[] = {dbname, "FATAL", "does not exist", "ERROR", "connection to server",
			     "port", "127.0.0.1", "/tmp", "user", "column", "schema_migrations",
			     NULL};
	for (int i = 0; bad[i] != NULL; i++)
		ck_assert_msg(strstr(r->body, bad[i]) == NULL, "\"%s\" in %s", bad[i], r->body);
}

START_TEST(test_database_errors_hidden)
{
	/* A daemon pointed at a database that does not exist. */
	char url[1200];
	snprintf(url, sizeof url, "%s dbname=dualreg_missing_db", rd_url);
	th_daemon_start(&rd_d, url, "[database]\nconnect_timeout = 1s\n", false);
	struct th_resp r;
	get(NULL, "/readyz", &r);
	th_assert_problem(&r, 503);
	assert_no_db_text(&r, "dualreg_missing_db");
	th_resp_free(&r);
	get(k1, "/v1/pupils/" P1, &r);
	th_assert_problem(&r, 503);
	assert_no_db_text(&r, "dualreg_missing_db");
	th_resp_free(&r);
	ck_assert(th_daemon_log_contains(&rd_d, "dualreg_missing_db")); /* the log has it */
	th_daemon_stop(&rd_d, SIGTERM);

	/* The right database, whose readiness query fails with an SQL error. */
	start_daemon();
	th_sql(rd_url, "ALTER TABLE schema_migrations RENAME COLUMN version TO v");
	get(NULL, "/readyz", &r);
	th_assert_problem(&r, 503);
	assert_no_db_text(&r, "schema_migrations");
	th_resp_free(&r);
	ck_assert(th_daemon_log_contains(&rd_d, "readiness check failed"));
	th_sql(rd_url, "ALTER TABLE schema_migrations RENAME COLUMN v TO version");
	/* A broken connection mid-request: backends terminated. */
	th_sql(rd_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
		       "WHERE datname = current_database() AND pid <> pg_backend_pid()");
	get(NULL, "/readyz", &r);
	if (r.status != 200)
		assert_no_db_text(&r, "terminat");
	th_resp_free(&r);
}
END_TEST

Suite *audit_suite(void)
{
	Suite *s = suite_create("audit");
	TCase *tc = tcase_create("audit");
	tcase_set_timeout(tc, 90);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_every_answer_recorded);
	tcase_add_test(tc, test_webhook_delivery_recorded);
	tcase_add_test(tc, test_full_refuses_until_written);
	tcase_add_test(tc, test_database_errors_hidden);
	suite_add_tcase(s, tc);
	return s;
}
