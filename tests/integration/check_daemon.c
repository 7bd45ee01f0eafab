/*
 * daemon: the real dualregd binary over loopback HTTP against the throw-away cluster.
 * Health and readiness, 404/405/413/400 problem bodies, configuration errors, starting
 * with the database down, readiness following a database outage, request timeouts,
 * draining on SIGTERM with a request in flight, and a valgrind-clean shutdown.
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dualreg/version.h"
#include "../harness.h"
#include "../suites.h"

static char url[1024];
static struct th_daemon d;

static void setup_migrated(void)
{
	th_db_create_migrated(url, sizeof url);
}

static void teardown_daemon(void)
{
	if (d.pid > 0)
		th_daemon_stop(&d, SIGKILL);
}

static void teardown_outage(void)
{
	teardown_daemon();
	th_pg_start(); /* whatever happened, leave the cluster running */
}

static void get(const char *path, struct th_resp *r)
{
	char u[256];
	snprintf(u, sizeof u, "%s%s", d.base, path);
	ck_assert_msg(th_http("GET", u, NULL, 0, NULL, r) == 0, "no response from %s", u);
}

START_TEST(test_health_and_ready)
{
	th_daemon_start(&d, url, NULL, false);
	struct th_resp r;
	get("/healthz", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.content_type, "application/json");
	ck_assert_str_eq(cJSON_GetObjectItem(r.json, "status")->valuestring, "ok");
	th_resp_free(&r);
	get("/readyz", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(cJSON_GetObjectItem(r.json, "status")->valuestring, "ready");
	ck_assert_int_eq(cJSON_GetObjectItem(r.json, "schema_version")->valueint,
			 DUALREG_SCHEMA_VERSION);
	th_resp_free(&r);
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM), 0);
	ck_assert(th_daemon_log_contains(&d, "msg=\"stopped\""));
	/* The access log: one line per request, no secrets. */
	ck_assert(th_daemon_log_contains(&d, "msg=\"request\" method=GET route=readyz status=200"));
}
END_TEST

START_TEST(test_not_ready_without_schema)
{
	char bare[1024];
	th_db_create(bare, sizeof bare);
	th_daemon_start(&d, bare, NULL, false);
	struct th_resp r;
	get("/readyz", &r);
	th_assert_problem(&r, 503);
	ck_assert_str_eq(cJSON_GetObjectItem(r.json, "type")->valuestring, "/problems/not-ready");
	ck_assert_msg(strstr(cJSON_GetObjectItem(r.json, "detail")->valuestring,
			     "dualregctl migrate") != NULL,
		      "%s", r.body);
	th_resp_free(&r);
}
END_TEST

START_TEST(test_routing_errors)
{
	th_daemon_start(&d, url, NULL, false);
	struct th_resp r;
	char u[256];

	get("/no/such/thing", &r);
	th_assert_problem(&r, 404);
	th_resp_free(&r);

	snprintf(u, sizeof u, "%s/healthz", d.base);
	ck_assert_int_eq(th_http("DELETE", u, NULL, 0, NULL, &r), 0);
	th_assert_problem(&r, 405);
	ck_assert_str_eq(r.allow, "GET, HEAD, OPTIONS");
	th_resp_free(&r);

	ck_assert_int_eq(th_http("OPTIONS", u, NULL, 0, NULL, &r), 0);
	ck_assert_int_eq(r.status, 204);
	ck_assert_str_eq(r.allow, "GET, HEAD, OPTIONS");
	th_resp_free(&r);

	ck_assert_int_eq(th_http("HEAD", u, NULL, 0, NULL, &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_uint_eq(r.body_len, 0);
	th_resp_free(&r);
}
END_TEST

START_TEST(test_oversize_body)
{
	th_daemon_start(&d, url, "[server]\nmax_body_size = 4K\n", false);
	size_t n = 64 * 1024;
	char *big = malloc(n);
	memset(big, '{', n);
	char u[256];
	snprintf(u, sizeof u, "%s/healthz", d.base);
	const char *hdr[] = {"Content-Type: application/json", NULL};
	struct th_resp r;
	ck_assert_int_eq(th_http("POST", u, big, n, hdr, &r), 0);
	th_assert_problem(&r, 413);
	ck_assert_msg(strstr(r.body, "4096 bytes") != NULL, "%s", r.body);
	th_resp_free(&r);
	free(big);
	/* The server is unharmed. */
	get("/healthz", &r);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);
}
END_TEST

START_TEST(test_malformed_request)
{
	th_daemon_start(&d, url, NULL, false);
	char cmd[512], out[2048];
	snprintf(cmd, sizeof cmd,
		 "exec 3<>/dev/tcp/127.0.0.1/%u; printf 'NOT AN HTTP REQUEST\\r\\n\\r\\n' >&3; "
		 "timeout 5 cat <&3",
		 d.port);
	char *const argv[] = {"/bin/bash", "-c", cmd, NULL};
	th_run(argv, NULL, out, sizeof out);
	ck_assert_msg(strncmp(out, "HTTP/1.1 400 ", 13) == 0, "%s", out);
	ck_assert_msg(strstr(out, "Content-Type: application/problem+json") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "\"status\":400") != NULL, "%s", out);
}
END_TEST

START_TEST(test_bad_config_exits_2)
{
	char path[512], bin[512], out[2048];
	snprintf(path, sizeof path, "%s/bad-%d.conf", th_env("DUALREG_TEST_TMP"), (int)getpid());
	FILE *f = fopen(path, "w");
	fputs("[server]\nlisten = 127.0.0.1:0\n\n[database]\npool_size = 4\nbogus_key = 1\n", f);
	fclose(f);
	snprintf(bin, sizeof bin, "%s/dualregd", th_env("DUALREG_TEST_BIN"));
	char *const argv[] = {bin, "-c", path, NULL};
	ck_assert_int_eq(th_run(argv, NULL, out, sizeof out), 2);
	char want[600];
	snprintf(want, sizeof want, "%s:6: [database] bogus_key: unknown key", path);
	ck_assert_msg(strstr(th_last_stderr(), want) != NULL, "%s", th_last_stderr());

	char *const check[] = {bin, "-t", "-c", path, NULL};
	ck_assert_int_eq(th_run(check, NULL, out, sizeof out), 2);
	char *const missing[] = {bin, "-c", "/nonexistent/dualreg.conf", NULL};
	ck_assert_int_eq(th_run(missing, NULL, out, sizeof out), 2);
	char *const extra[] = {bin, "stray-argument", NULL};
	ck_assert_int_eq(th_run(extra, NULL, out, sizeof out), 2);
}
END_TEST

START_TEST(test_starts_with_database_down)
{
	th_daemon_start(&d, "host=/nonexistent-socket-dir dbname=x", NULL, false);
	struct th_resp r;
	get("/healthz", &r);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);
	get("/readyz", &r);
	th_assert_problem(&r, 503);
	/* Why is logged, never answered: no host, socket or database name to anyone. */
	ck_assert_msg(strstr(r.body, "nonexistent-socket-dir") == NULL, "%s", r.body);
	th_resp_free(&r);
	ck_assert(th_daemon_log_contains(&d, "nonexistent-socket-dir"));
}
END_TEST

/* Polls /readyz until it answers want, at most `seconds`; returns the status seen last. */
static long wait_ready_status(long want, double seconds)
{
	double deadline = th_now() + seconds;
	long status = 0;
	while (th_now() < deadline) {
		struct th_resp r;
		get("/readyz", &r);
		status = r.status;
		th_resp_free(&r);
		if (status == want)
			break;
		usleep(100 * 1000);
	}
	return status;
}

START_TEST(test_database_outage)
{
	th_daemon_start(&d, url, NULL, false);
	ck_assert_int_eq(wait_ready_status(200, 10), 200);
	th_pg_stop();
	long down = wait_ready_status(503, 5);
	th_pg_start();
	ck_assert_int_eq(down, 503);
	ck_assert_int_eq(wait_ready_status(200, 15), 200);
	ck_assert(th_daemon_log_contains(&d, "database connection lost"));
	ck_assert(th_daemon_log_contains(&d, "database connected"));
}
END_TEST

/* Holds an exclusive lock on schema_migrations so /readyz waits for it. */
static PGconn *lock_schema(void)
{
	PGconn *c = PQconnectdb(url);
	ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
	PQclear(PQexec(c, "BEGIN"));
	PGresult *res = PQexec(c, "LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE");
	ck_assert_int_eq(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	return c;
}

struct bg_get {
	pthread_t thread;
	char url[256];
	struct th_resp resp;
	int rc;
};

static void *bg_get_main(void *arg)
{
	struct bg_get *b = arg;
	b->rc = th_http("GET", b->url, NULL, 0, NULL, &b->resp);
	return NULL;
}

static void bg_get_start(struct bg_get *b, const char *path)
{
	snprintf(b->url, sizeof b->url, "%s%s", d.base, path);
	ck_assert_int_eq(pthread_create(&b->thread, NULL, bg_get_main, b), 0);
}

/* Waits until the daemon logs that it is blocked (the request reached the database). */
static void wait_for_lock_wait(void)
{
	double deadline = th_now() + 10;
	while (th_now() < deadline) {
		PGconn *c = PQconnectdb(url);
		PGresult *res = PQexec(c, "SELECT count(*) FROM pg_stat_activity WHERE "
					  "application_name = 'dualregd' AND wait_event_type = 'Lock'");
		bool waiting = PQresultStatus(res) == PGRES_TUPLES_OK &&
			       strcmp(PQgetvalue(res, 0, 0), "0") != 0;
		PQclear(res);
		PQfinish(c);
		if (waiting)
			return;
		usleep(50 * 1000);
	}
	ck_abort_msg("the request never reached the database");
}

START_TEST(test_sigterm_finishes_request_in_flight)
{
	th_daemon_start(&d, url, NULL, false);
	PGconn *locker = lock_schema();
	struct bg_get b;
	bg_get_start(&b, "/readyz");
	wait_for_lock_wait();
	kill(d.pid, SIGTERM);
	/* While draining the daemon no longer accepts connections... */
	usleep(200 * 1000);
	ck_assert_int_eq(th_daemon_wait(&d, 0.1), -1); /* ...and has not exited yet. */
	struct th_resp r;
	char u[256];
	snprintf(u, sizeof u, "%s/healthz", d.base);
	ck_assert_int_eq(th_http("GET", u, NULL, 0, NULL, &r), -1);
	th_resp_free(&r);
	PQclear(PQexec(locker, "COMMIT"));
	PQfinish(locker);
	pthread_join(b.thread, NULL);
	ck_assert_int_eq(b.rc, 0);
	ck_assert_int_eq(b.resp.status, 200);
	th_resp_free(&b.resp);
	ck_assert_int_eq(th_daemon_wait(&d, 10), 0);
	ck_assert(th_daemon_log_contains(&d, "msg=\"drained\""));
}
END_TEST

START_TEST(test_drain_is_bounded)
{
	th_daemon_start(&d, url, "[server]\ndrain_timeout = 300ms\n", false);
	PGconn *locker = lock_schema();
	struct bg_get b;
	bg_get_start(&b, "/readyz");
	wait_for_lock_wait();
	kill(d.pid, SIGTERM);
	int rc = th_daemon_wait(&d, 10);
	PQclear(PQexec(locker, "COMMIT"));
	PQfinish(locker);
	pthread_join(b.thread, NULL);
	th_resp_free(&b.resp);
	ck_assert_int_eq(rc, 0);
	ck_assert(th_daemon_log_contains(&d, "drain timeout"));
}
END_TEST

START_TEST(test_second_signal_exits_at_once)
{
	th_daemon_start(&d, url, "[server]\ndrain_timeout = 60s\n", false);
	PGconn *locker = lock_schema();
	struct bg_get b;
	bg_get_start(&b, "/readyz");
	wait_for_lock_wait();
	kill(d.pid, SIGTERM);
	usleep(100 * 1000);
	kill(d.pid, SIGINT);
	int rc = th_daemon_wait(&d, 10);
	PQclear(PQexec(locker, "COMMIT"));
	PQfinish(locker);
	pthread_join(b.thread, NULL);
	th_resp_free(&b.resp);
	ck_assert_int_eq(rc, 0);
	ck_assert(th_daemon_log_contains(&d, "second stop signal"));
}
END_TEST

START_TEST(test_request_timeout)
{
	th_daemon_start(&d, url, "[server]\nrequest_timeout = 500ms\n", false);
	PGconn *locker = lock_schema();
	struct th_resp r;
	get("/readyz", &r);
	th_assert_problem(&r, 503);
	ck_assert_str_eq(cJSON_GetObjectItem(r.json, "type")->valuestring, "/problems/timeout");
	ck_assert_str_eq(r.retry_after, "1");
	th_resp_free(&r);
	PQclear(PQexec(locker, "COMMIT"));
	PQfinish(locker);
	/* The abandoned connection was replaced; readiness recovers. */
	ck_assert_int_eq(wait_ready_status(200, 10), 200);
}
END_TEST

START_TEST(test_valgrind_clean_shutdown)
{
	if (getenv("DUALREG_TEST_SAN") != NULL) {
		/* Sanitizer builds cannot run under valgrind; LeakSanitizer covers them. */
		th_daemon_start(&d, url, NULL, false);
	} else {
		th_daemon_start(&d, url, NULL, true);
	}
	struct th_resp r;
	for (int i = 0; i < 3; i++) {
		get("/readyz", &r);
		ck_assert_int_eq(r.status, 200);
		th_resp_free(&r);
		get("/nope", &r);
		ck_assert_int_eq(r.status, 404);
		th_resp_free(&r);
	}
	kill(d.pid, SIGHUP); /* a reload allocates and frees a config */
	usleep(300 * 1000);
	int rc = th_daemon_stop(&d, SIGTERM);
	ck_assert_msg(rc == 0, "exit status %d (99 = valgrind found errors); see %s", rc,
		      d.log_path);
	ck_assert(th_daemon_log_contains(&d, "msg=\"reloaded\""));
}
END_TEST

Suite *daemon_suite(void)
{
	Suite *s = suite_create("daemon");
	TCase *tc = tcase_create("http");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup_migrated, teardown_daemon);
	tcase_add_test(tc, test_health_and_ready);
	tcase_add_test(tc, test_not_ready_without_schema);
	tcase_add_test(tc, test_routing_errors);
	tcase_add_test(tc, test_oversize_body);
	tcase_add_test(tc, test_malformed_request);
	tcase_add_test(tc, test_bad_config_exits_2);
	tcase_add_test(tc, test_starts_with_database_down);
	tcase_add_test(tc, test_sigterm_finishes_request_in_flight);
	tcase_add_test(tc, test_drain_is_bounded);
	tcase_add_test(tc, test_second_signal_exits_at_once);
	tcase_add_test(tc, test_request_timeout);
	tcase_add_test(tc, test_valgrind_clean_shutdown);
	suite_add_tcase(s, tc);

	/* Stops and restarts the shared cluster: kept apart so nothing runs beside it. */
	TCase *outage = tcase_create("outage");
	tcase_set_timeout(outage, 120);
	tcase_add_checked_fixture(outage, setup_migrated, teardown_outage);
	tcase_add_test(outage, test_database_outage);
	suite_add_tcase(s, outage);
	return s;
}
