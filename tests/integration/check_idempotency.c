/*
 * idempotency: Idempotency-Key through the real daemon, exercised with POST /v1/schools
 * (admin; 201 with the school, 409 for a duplicate URN). Replays (2xx and 4xx) with
 * Idempotent-Replayed, a reused key with another body or path (422), a key still in use
 * by a running request (409, with a real request blocked on a table lock), takeover of
 * abandoned and expired claims, a 5xx (request timeout) releasing the claim, keys
 * scoped per API key, header validation (400), and the record being stored before the
 * response is sent.
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../api/idempotency.h"
#include "../harness.h"
#include "../suites.h"

static char url[1024];
static struct th_daemon d;
static char admin[64], admin2[64];

static const char school_a[] = "{\"urn\":\"200001\",\"name\":\"Alder School\",\"kind\":\"mainstream\"}";
static const char school_b[] = "{\"urn\":\"200002\",\"name\":\"Birch School\",\"kind\":\"mainstream\"}";

static void setup(void)
{
	th_db_create_migrated(url, sizeof url);
	th_key_create(url, NULL, admin, sizeof admin);
	th_key_create(url, NULL, admin2, sizeof admin2);
}

static void teardown(void)
{
	if (d.pid > 0)
		th_daemon_stop(&d, SIGKILL);
}

static long long sql_int(const char *sql)
{
	PGconn *c = PQconnectdb(url);
	ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
	PGresult *r = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "%s: %s", sql,
		      PQresultErrorMessage(r));
	long long v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	PQfinish(c);
	return v;
}

/* POST path with body as token, with Idempotency-Key ikey (NULL: none). */
static void post(const char *token, const char *path, const char *body, const char *ikey,
		 struct th_resp *r)
{
	char h[400];
	snprintf(h, sizeof h, "Idempotency-Key: %s", ikey ? ikey : "");
	const char *headers[] = {h, NULL};
	th_api(&d, "POST", path, token, body, ikey ? headers : NULL, r);
}

static void assert_slug(const struct th_resp *r, long status, const char *slug)
{
	th_assert_problem(r, status);
	char type[128];
	snprintf(type, sizeof type, "/problems/%s", slug);
	ck_assert_str_eq(cJSON_GetObjectItem(r->json, "type")->valuestring, type);
}

START_TEST(test_replay_created)
{
	th_daemon_start(&d, url, NULL, false);
	struct th_resp r1, r2;
	post(admin, "/v1/schools", school_a, "create-alder", &r1);
	ck_assert_int_eq(r1.status, 201);
	ck_assert_str_eq(r1.idempotent_replayed, "");
	/* Stored before it was sent. */
	ck_assert_int_eq(sql_int("SELECT count(*) FROM idempotency_keys WHERE idem_key = "
				 "'create-alder' AND state = 'done' AND status = 201"),
			 1);
	post(admin, "/v1/schools", school_a, "create-alder", &r2);
	ck_assert_int_eq(r2.status, 201);
	ck_assert_str_eq(r2.idempotent_replayed, "true");
	ck_assert_str_eq(r2.content_type, r1.content_type);
	ck_assert_str_eq(r2.body, r1.body);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM schools"), 1);
	th_resp_free(&r1);
	th_resp_free(&r2);
	/* Without the key the request runs again: a duplicate. */
	post(admin, "/v1/schools", school_a, NULL, &r1);
	th_assert_problem(&r1, 409);
	ck_assert_str_eq(r1.idempotent_replayed, "");
	th_resp_free(&r1);
	/* A new key is a new request. */
	post(admin, "/v1/schools", school_a, "create-alder-2", &r1);
	ck_assert_int_eq(r1.status, 409);
	th_resp_free(&r1);
}
END_TEST

START_TEST(test_replay_client_error)
{
	th_daemon_start(&d, url, NULL, false);
	const char *bad = "{\"urn\":\"12\",\"name\":\"Bad\",\"kind\":\"mainstream\"}";
	struct th_resp r1, r2;
	post(admin, "/v1/schools", bad, "bad-urn", &r1);
	ck_assert_int_eq(r1.status, 422);
	post(admin, "/v1/schools", bad, "bad-urn", &r2);
	ck_assert_int_eq(r2.status, 422);
	ck_assert_str_eq(r2.content_type, "application/problem+json");
	ck_assert_str_eq(r2.idempotent_replayed, "true");
	ck_assert_str_eq(r2.body, r1.body);
	th_resp_free(&r1);
	th_resp_free(&r2);
}
END_TEST

START_TEST(test_reused_key)
{
	th_daemon_start(&d, url, NULL, false);
	struct th_resp r;
	post(admin, "/v1/schools", school_a, "k1", &r);
	ck_assert_int_eq(r.status, 201);
	th_resp_free(&r);
	post(admin, "/v1/schools", school_b, "k1", &r);
	assert_slug(&r, 422, "idempotency-key-reused");
	th_resp_free(&r);
	post(admin, "/v1/schools?x=1", school_a, "k1", &r); /* another URI */
	assert_slug(&r, 422, "idempotency-key-reused");
	th_resp_free(&r);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM schools"), 1);
	/* Keys are per API key: the same value from another key is its own request. */
	post(admin2, "/v1/schools", school_b, "k1", &r);
	ck_assert_int_eq(r.status, 201);
	ck_assert_str_eq(r.idempotent_replayed, "");
	th_resp_free(&r);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM schools"), 2);
}
END_TEST

START_TEST(test_bad_header)
{
	th_daemon_start(&d, url, NULL, false);
	char longkey[300];
	memset(longkey, 'x', 256);
	longkey[256] = '\0';
	struct th_resp r;
	post(admin, "/v1/schools", school_a, longkey, &r);
	assert_slug(&r, 400, "invalid-idempotency-key");
	th_resp_free(&r);
	post(admin, "/v1/schools", school_a, "caf\xc3\xa9", &r);
	assert_slug(&r, 400, "invalid-idempotency-key");
	th_resp_free(&r);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM schools"), 0);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM idempotency_keys"), 0);
	longkey[255] = '\0'; /* 255 is the longest accepted */
	post(admin, "/v1/schools", school_a, longkey, &r);
	ck_assert_int_eq(r.status, 201);
	th_resp_free(&r);
}
END_TEST

struct bg_post {
	const char *ikey;
	struct th_resp resp;
};

static void *bg_post_run(void *arg)
{
	struct bg_post *b = arg;
	char u[256], auth[128], h[128];
	snprintf(u, sizeof u, "%s/v1/schools", d.base);
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", admin);
	snprintf(h, sizeof h, "Idempotency-Key: %s", b->ikey);
	const char *headers[] = {auth, h, "Content-Type: application/json", NULL};
	th_http("POST", u, school_a, strlen(school_a), headers, &b->resp);
	return NULL;
}

/* Waits (bounded) until the query's count is want. */
static void wait_count(const char *sql, long long want)
{
	double deadline = th_now() + 10.0;
	while (th_now() < deadline && sql_int(sql) != want)
		usleep(20 * 1000);
	ck_assert_int_eq(sql_int(sql), want);
}

START_TEST(test_in_progress)
{
	th_daemon_start(&d, url, NULL, false);
	/* Hold the schools table so that the first request blocks inside its handler. */
	PGconn *lock = PQconnectdb(url);
	ck_assert_int_eq(PQstatus(lock), CONNECTION_OK);
	PQclear(PQexec(lock, "BEGIN"));
	PGresult *lr = PQexec(lock, "LOCK TABLE schools IN ACCESS EXCLUSIVE MODE");
	ck_assert_int_eq(PQresultStatus(lr), PGRES_COMMAND_OK);
	PQclear(lr);

	struct bg_post first = {.ikey = "slow"};
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, bg_post_run, &first), 0);
	wait_count("SELECT count(*) FROM idempotency_keys WHERE idem_key = 'slow' AND state = "
		   "'running'",
		   1);
	struct th_resp r;
	post(admin, "/v1/schools", school_a, "slow", &r);
	assert_slug(&r, 409, "idempotency-key-in-progress");
	ck_assert_str_eq(r.retry_after, "1");
	th_resp_free(&r);

	PQclear(PQexec(lock, "COMMIT"));
	PQfinish(lock);
	pthread_join(t, NULL);
	ck_assert_int_eq(first.resp.status, 201);
	post(admin, "/v1/schools", school_a, "slow", &r);
	ck_assert_int_eq(r.status, 201);
	ck_assert_str_eq(r.idempotent_replayed, "true");
	ck_assert_str_eq(r.body, first.resp.body);
	th_resp_free(&r);
	th_resp_free(&first.resp);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM schools"), 1);
}
END_TEST

/* A stored answer the handler would not give now (another name and times). */
#define STORED_SCHOOL                                                                     \
	"{\"urn\":\"100001\",\"laestab\":null,\"name\":\"Stored\",\"kind\":\"mainstream\","      \
	"\"register_close\":{\"am\":\"09:30\",\"pm\":\"14:00\"},\"pull\":null,"                  \
	"\"pull_private_hosts\":[],"                                                          \
	"\"created_at\":\"2026-01-01T00:00:00Z\",\"updated_at\":\"2026-01-01T00:00:00Z\"}"

/* Inserts an idempotency row for admin's key as if for POST /v1/schools school_a. */
static void plant(const char *ikey, const char *state, const char *age, bool same_request)
{
	char hash[IDEM_HASH_HEX], sql[1024];
	idem_request_hash("POST", "/v1/schools", same_request ? school_a : school_b,
			  strlen(same_request ? school_a : school_b), hash);
	snprintf(sql, sizeof sql,
		 "INSERT INTO idempotency_keys (key_id, idem_key, request_hash, state, status,"
		 " content_type, response, created_at)"
		 " SELECT min(id), '%s', '%s', '%s', 201, 'application/json', '%s',"
		 " now() - interval '%s' FROM api_keys",
		 ikey, hash, state, STORED_SCHOOL, age);
	th_sql(url, sql);
}

START_TEST(test_takeover)
{
	th_daemon_start(&d, url, "[server]\nrequest_timeout = 1s\n", false);
	struct th_resp r;
	/* Running, but recent: in progress. */
	plant("recent", "running", "0 seconds", true);
	post(admin, "/v1/schools", school_a, "recent", &r);
	assert_slug(&r, 409, "idempotency-key-in-progress");
	th_resp_free(&r);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM schools"), 0);
	/* Running for longer than twice the request timeout: abandoned, taken over. */
	th_sql(url, "UPDATE idempotency_keys SET created_at = now() - interval '3 seconds'");
	post(admin, "/v1/schools", school_a, "recent", &r);
	ck_assert_int_eq(r.status, 201);
	ck_assert_str_eq(r.idempotent_replayed, "");
	th_resp_free(&r);
	/* Done more than 24 hours ago with another body: expired, so no 422. */
	plant("old", "done", "25 hours", false);
	th_sql(url, "DELETE FROM schools");
	post(admin, "/v1/schools", school_a, "old", &r);
	ck_assert_int_eq(r.status, 201);
	ck_assert_str_eq(r.idempotent_replayed, "");
	th_resp_free(&r);
	/* Done within 24 hours: replayed as stored, whatever the handler would say now. */
	plant("stored", "done", "23 hours", true);
	post(admin, "/v1/schools", school_a, "stored", &r);
	ck_assert_int_eq(r.status, 201);
	ck_assert_str_eq(r.body, STORED_SCHOOL);
	ck_assert_str_eq(r.idempotent_replayed, "true");
	th_resp_free(&r);
}
END_TEST

START_TEST(test_server_error_releases_claim)
{
	th_daemon_start(&d, url, "[server]\nrequest_timeout = 500ms\n", false);
	PGconn *lock = PQconnectdb(url);
	ck_assert_int_eq(PQstatus(lock), CONNECTION_OK);
	PQclear(PQexec(lock, "BEGIN"));
	PQclear(PQexec(lock, "LOCK TABLE schools IN ACCESS EXCLUSIVE MODE"));
	struct th_resp r;
	post(admin, "/v1/schools", school_a, "retry-me", &r);
	assert_slug(&r, 503, "timeout");
	th_resp_free(&r);
	PQclear(PQexec(lock, "COMMIT"));
	PQfinish(lock);
	/* The claim is released (in the background), so a retry runs again. */
	wait_count("SELECT count(*) FROM idempotency_keys", 0);
	post(admin, "/v1/schools", school_a, "retry-me", &r);
	ck_assert_int_eq(r.status, 201);
	ck_assert_str_eq(r.idempotent_replayed, "");
	th_resp_free(&r);
}
END_TEST

START_TEST(test_not_for_get_or_unauthenticated)
{
	th_daemon_start(&d, url, NULL, false);
	struct th_resp r;
	const char *h[] = {"Idempotency-Key: x", NULL};
	th_api(&d, "GET", "/v1/me", admin, NULL, h, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.idempotent_replayed, "");
	th_resp_free(&r);
	/* Authentication comes first: no claim for an unknown caller. */
	post(NULL, "/v1/schools", school_a, "anon", &r);
	th_assert_problem(&r, 401);
	th_resp_free(&r);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM idempotency_keys"), 0);
}
END_TEST

/* Records older than 24 hours are deleted by the daemon, the first time soon after start;
 * younger ones stay. */
START_TEST(test_expired_records_purged)
{
	plant("old", "done", "25 hours", true);
	plant("young", "done", "23 hours", true);
	th_daemon_start(&d, url, NULL, false);
	wait_count("SELECT count(*) FROM idempotency_keys WHERE idem_key = 'old'", 0);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM idempotency_keys WHERE idem_key = 'young'"),
			 1);
}
END_TEST

Suite *idempotency_suite(void)
{
	Suite *s = suite_create("idempotency");
	TCase *tc = tcase_create("daemon");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_replay_created);
	tcase_add_test(tc, test_replay_client_error);
	tcase_add_test(tc, test_reused_key);
	tcase_add_test(tc, test_bad_header);
	tcase_add_test(tc, test_in_progress);
	tcase_add_test(tc, test_takeover);
	tcase_add_test(tc, test_server_error_releases_claim);
	tcase_add_test(tc, test_not_for_get_or_unauthenticated);
	tcase_add_test(tc, test_expired_records_purged);
	suite_add_tcase(s, tc);
	return s;
}
