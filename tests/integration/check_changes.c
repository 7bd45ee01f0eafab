/*
 * changes: the change feed (GET /v1/changes) against the real daemon and database, on
 * the fixture of reads_fixture.h: paging, cursors, scope, errors, long polls woken by
 * NOTIFY, expiry, a transaction committing late with a smaller id, a transaction holding
 * the horizon back, the listener reconnecting, a client leaving mid-poll, draining with
 * a poll in flight (under valgrind unless sanitized), and the feed through a database
 * outage.
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../suites.h"
#include "reads_fixture.h"

/* The change feed's listener in the daemon's log (the API keys have one of their own). */
#define EVENTS_RECONNECTED "msg=\"change listener reconnected\" channel=dualreg_events"
#define EVENTS_LOST "msg=\"change listener lost its connection\" channel=dualreg_events"

static void feed(const char *token, const char *since, int limit, int wait, struct th_resp *r)
{
	char path[256];
	int n = snprintf(path, sizeof path, "/v1/changes?limit=%d", limit);
	if (since != NULL)
		n += snprintf(path + n, sizeof path - (size_t)n, "&since=%s", since);
	if (wait > 0)
		snprintf(path + n, sizeof path - (size_t)n, "&wait=%d", wait);
	get(token, path, r);
	ck_assert_msg(r->status == 200, "%s: %ld %s", path, r->status, r->body);
}

/* Reads the whole feed in pages of `limit`; ids in order into ids; the last cursor. */
static int read_all(const char *token, int limit, long long *ids, int max, char *cursor,
		    size_t clen)
{
	int n = 0;
	char since[128] = "";
	for (int pages = 0; pages < 1000; pages++) {
		struct th_resp r;
		feed(token, since[0] ? since : NULL, limit, 0, &r);
		cJSON *changes = item(r.json, "changes");
		int got = cJSON_GetArraySize(changes);
		ck_assert_int_le(got, limit);
		cJSON *c;
		cJSON_ArrayForEach(c, changes)
		{
			ck_assert_int_lt(n, max);
			ids[n++] = (long long)num(c, "id");
			str(c, "type");
			str(c, "occurred_at");
			ck_assert(cJSON_IsObject(item(c, "data")));
		}
		snprintf(since, sizeof since, "%s", str(r.json, "next_cursor"));
		th_resp_free(&r);
		if (got == 0)
			break;
	}
	snprintf(cursor, clen, "%s", since);
	return n;
}

START_TEST(test_feed_paging_and_scope)
{
	start_daemon();
	long long ids[512];
	char cursor[128];
	/* Two events of old transactions 9 and 10 (later ids): the feed orders by
	 * transaction first, and a page spanning 9 and 10 must not sort them as text. */
	th_sql(rd_url, "INSERT INTO events (tx, type, urns, data) VALUES "
		    "('9', 'attendance.absent', ARRAY['100001'], '{}'), "
		    "('10', 'attendance.absent', ARRAY['100001'], '{}')");
	int early9 = count_sql("SELECT id FROM events WHERE tx = '9'");
	int early10 = count_sql("SELECT id FROM events WHERE tx = '10'");
	int total = count_sql("SELECT count(*) FROM events");
	ck_assert_int_gt(total, 10);
	int n = read_all(admin, 3, ids, 512, cursor, sizeof cursor);
	ck_assert_int_eq(n, total);
	ck_assert_int_eq(ids[0], early9);
	ck_assert_int_eq(ids[1], early10);
	for (int i = 3; i < n; i++)
		ck_assert_int_gt(ids[i], ids[i - 1]); /* the fixture's events, in id order */
	/* Pages of one and of everything agree. */
	long long ids1[512];
	char c1[128];
	ck_assert_int_eq(read_all(admin, 1, ids1, 512, c1, sizeof c1), total);
	ck_assert_int_eq(read_all(admin, 1000, ids1, 512, c1, sizeof c1), total);
	ck_assert_str_eq(c1, cursor);

	/* A cursor continues where it left off: the next page is the new event only. */
	th_sql(rd_url, "SELECT dualreg_emit('attendance.missing', NULL, ARRAY['100003'], '{\"n\":1}')");
	struct th_resp r;
	feed(admin, cursor, 100, 0, &r);
	ck_assert_int_eq(cJSON_GetArraySize(item(r.json, "changes")), 1);
	cJSON *c = cJSON_GetArrayItem(item(r.json, "changes"), 0);
	ck_assert_str_eq(str(c, "type"), "attendance.missing");
	ck_assert_int_eq((int)num(item(c, "data"), "n"), 1);
	char after[128];
	snprintf(after, sizeof after, "%s", str(r.json, "next_cursor"));
	ck_assert_str_ne(after, cursor);
	th_resp_free(&r);
	feed(admin, after, 100, 0, &r);
	ck_assert_int_eq(cJSON_GetArraySize(item(r.json, "changes")), 0);
	ck_assert_str_eq(str(r.json, "next_cursor"), after);
	th_resp_free(&r);

	/* Scope: each school key sees exactly the events naming its school. */
	const char *keys[] = {k1, k2, k3};
	const char *urns[] = {"100001", "100002", "100003"};
	for (int k = 0; k < 3; k++) {
		char sql[128];
		snprintf(sql, sizeof sql, "SELECT count(*) FROM events WHERE '%s' = ANY (urns)",
			 urns[k]);
		int want = count_sql(sql);
		ck_assert_int_gt(want, 0);
		ck_assert_int_eq(read_all(keys[k], 2, ids, 512, cursor, sizeof cursor), want);
	}
	ck_assert_int_lt(count_sql("SELECT count(*) FROM events WHERE '100003' = ANY (urns)"),
			 total);
}
END_TEST

START_TEST(test_feed_errors)
{
	start_daemon();
	struct th_resp r;
	get(NULL, "/v1/changes", &r);
	th_assert_problem(&r, 401);
	th_resp_free(&r);
	const char *limits[] = {"0", "1001", "abc", "-1", "", "10.5"};
	for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
		char path[64];
		snprintf(path, sizeof path, "/v1/changes?limit=%s", limits[i]);
		get(admin, path, &r);
		assert_slug(&r, 422, "invalid-limit", "/query/limit");
		th_resp_free(&r);
	}
	get(admin, "/v1/changes?wait=61", &r);
	assert_slug(&r, 422, "invalid-wait", "/query/wait");
	th_resp_free(&r);
	const char *cursors[] = {"!!!", "MToy", "YWJjOjE", "MTox", "A", ""};
	/* "MToy" = "1:2" is fine; the others are not cursors. */
	for (size_t i = 0; i < sizeof cursors / sizeof cursors[0]; i++) {
		char path[128];
		snprintf(path, sizeof path, "/v1/changes?since=%s", cursors[i]);
		get(admin, path, &r);
		if (i == 1 || i == 3)
			ck_assert_int_eq(r.status, 200);
		else
			assert_slug(&r, 422, "invalid-cursor", "/query/since");
		th_resp_free(&r);
	}
	/* Default limit 100; default start: the beginning. */
	th_sql(rd_url, "SELECT dualreg_emit('mark.recorded', NULL, ARRAY['100001'], '{}') "
		    "FROM generate_series(1, 150)");
	get(admin, "/v1/changes", &r);
	ck_assert_int_eq(cJSON_GetArraySize(item(r.json, "changes")), 100);
	th_resp_free(&r);
}
END_TEST

struct bg_poll {
	pthread_t thread;
	char url[512];
	char auth[128];
	struct th_resp resp;
	int rc;
	double started, elapsed;
};

static void *bg_poll_main(void *arg)
{
	struct bg_poll *b = arg;
	const char *headers[] = {b->auth, NULL};
	b->started = th_now();
	b->rc = th_http("GET", b->url, NULL, 0, headers, &b->resp);
	b->elapsed = th_now() - b->started;
	return NULL;
}

static void bg_poll_start(struct bg_poll *b, const char *token, const char *since, int wait)
{
	memset(b, 0, sizeof *b);
	snprintf(b->url, sizeof b->url, "%s/v1/changes?since=%s&wait=%d", rd_d.base, since, wait);
	snprintf(b->auth, sizeof b->auth, "Authorization: Bearer %s", token);
	ck_assert_int_eq(pthread_create(&b->thread, NULL, bg_poll_main, b), 0);
}

static void bg_poll_join(struct bg_poll *b)
{
	pthread_join(b->thread, NULL);
	ck_assert_int_eq(b->rc, 0);
	ck_assert_msg(b->resp.status == 200, "%ld %s", b->resp.status, b->resp.body);
}

static void feed_end(const char *token, char *cursor, size_t len)
{
	long long ids[1024];
	read_all(token, 1000, ids, 1024, cursor, len);
}

START_TEST(test_long_poll_wakes_and_expires)
{
	start_daemon();
	char cursor[128];
	feed_end(admin, cursor, sizeof cursor);

	/* Expiry: an empty page and the same cursor after the wait (longer than the 1 s
	 * request_timeout the daemon runs with). */
	struct th_resp r;
	double t0 = th_now();
	feed(admin, cursor, 100, 2, &r);
	double took = th_now() - t0;
	ck_assert_int_eq(cJSON_GetArraySize(item(r.json, "changes")), 0);
	ck_assert_str_eq(str(r.json, "next_cursor"), cursor);
	ck_assert_msg(took >= 1.9 && took < 4.0, "took %.2f s", took);
	th_resp_free(&r);
	t0 = th_now();
	feed(admin, cursor, 100, 1, &r);
	took = th_now() - t0;
	ck_assert_int_eq(cJSON_GetArraySize(item(r.json, "changes")), 0);
	ck_assert_msg(took >= 0.9 && took < 3.0, "took %.2f s", took);
	th_resp_free(&r);

	/* Woken: an event committed by another connection ends the wait at once. */
	struct bg_poll b;
	bg_poll_start(&b, admin, cursor, 10);
	usleep(500 * 1000);
	th_sql(rd_url, "SELECT dualreg_emit('attendance.absent', NULL, ARRAY['100001'], '{}')");
	bg_poll_join(&b);
	ck_assert_msg(b.elapsed >= 0.4 && b.elapsed < 2.5, "took %.2f s", b.elapsed);
	cJSON *changes = item(b.resp.json, "changes");
	ck_assert_int_eq(cJSON_GetArraySize(changes), 1);
	ck_assert_str_eq(str(cJSON_GetArrayItem(changes, 0), "type"), "attendance.absent");
	snprintf(cursor, sizeof cursor, "%s", str(b.resp.json, "next_cursor"));
	th_resp_free(&b.resp);

	/* A school key is not woken by another school's event, but is by its own. */
	char c3[128];
	feed_end(k3, c3, sizeof c3);
	bg_poll_start(&b, k3, c3, 10);
	usleep(300 * 1000);
	th_sql(rd_url, "SELECT dualreg_emit('attendance.absent', NULL, ARRAY['100001'], '{}')");
	usleep(700 * 1000);
	th_sql(rd_url, "SELECT dualreg_emit('attendance.missing', NULL, ARRAY['100003'], '{}')");
	bg_poll_join(&b);
	ck_assert_msg(b.elapsed >= 0.9 && b.elapsed < 3.0, "took %.2f s", b.elapsed);
	changes = item(b.resp.json, "changes");
	ck_assert_int_eq(cJSON_GetArraySize(changes), 1);
	ck_assert_str_eq(str(cJSON_GetArrayItem(changes, 0), "type"), "attendance.missing");
	th_resp_free(&b.resp);

	/* Several pollers at once are all woken by one event. */
	feed_end(admin, cursor, sizeof cursor);
	struct bg_poll many[4];
	for (int i = 0; i < 4; i++)
		bg_poll_start(&many[i], admin, cursor, 10);
	usleep(500 * 1000);
	th_sql(rd_url, "SELECT dualreg_emit('mark.derived', NULL, ARRAY['100002'], '{}')");
	for (int i = 0; i < 4; i++) {
		bg_poll_join(&many[i]);
		ck_assert_msg(many[i].elapsed >= 0.4 && many[i].elapsed < 2.5, "took %.2f s",
			      many[i].elapsed);
		ck_assert_int_eq(cJSON_GetArraySize(item(many[i].resp.json, "changes")), 1);
		th_resp_free(&many[i].resp);
	}
}
END_TEST

/* Opens a transaction and runs first_sql in it; its one value into val (if not NULL). */
static PGconn *open_txn(const char *first_sql, char *val, size_t vlen)
{
	PGconn *c = PQconnectdb(rd_url);
	ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
	PQclear(PQexec(c, "BEGIN"));
	PGresult *res = PQexec(c, first_sql);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
	if (val != NULL)
		snprintf(val, vlen, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return c;
}

static void commit_txn(PGconn *c)
{
	PGresult *res = PQexec(c, "COMMIT");
	ck_assert_int_eq(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	PQfinish(c);
}

START_TEST(test_late_commit_is_not_skipped)
{
	start_daemon();
	char cursor[128];
	feed_end(admin, cursor, sizeof cursor);

	/* A emits first (smaller id) and stays open; B emits and commits. */
	char a_id[32];
	PGconn *a = open_txn("SELECT dualreg_emit('registration.ended', NULL, ARRAY['100001'], "
			     "'{}')",
			     a_id, sizeof a_id);
	th_sql(rd_url, "SELECT dualreg_emit('registration.changed', NULL, ARRAY['100001'], '{}')");
	ck_assert_int_lt(atoi(a_id), count_sql("SELECT id FROM events WHERE type = 'registration.changed'"));
	/* B is held back while A runs: returning it would move the cursor past A. */
	struct th_resp r;
	feed(admin, cursor, 100, 0, &r);
	ck_assert_int_eq(cJSON_GetArraySize(item(r.json, "changes")), 0);
	ck_assert_str_eq(str(r.json, "next_cursor"), cursor);
	th_resp_free(&r);

	/* A long poll started now is answered when A commits, with A then B. */
	struct bg_poll b;
	bg_poll_start(&b, admin, cursor, 10);
	usleep(500 * 1000);
	commit_txn(a);
	bg_poll_join(&b);
	ck_assert_msg(b.elapsed >= 0.4 && b.elapsed < 2.5, "took %.2f s", b.elapsed);
	cJSON *changes = item(b.resp.json, "changes");
	ck_assert_int_eq(cJSON_GetArraySize(changes), 2);
	ck_assert_str_eq(str(cJSON_GetArrayItem(changes, 0), "type"), "registration.ended");
	ck_assert_str_eq(str(cJSON_GetArrayItem(changes, 1), "type"), "registration.changed");
	ck_assert_int_lt((int)num(cJSON_GetArrayItem(changes, 0), "id"),
			 (int)num(cJSON_GetArrayItem(changes, 1), "id"));
	snprintf(cursor, sizeof cursor, "%s", str(b.resp.json, "next_cursor"));
	th_resp_free(&b.resp);
	feed(admin, cursor, 100, 0, &r);
	ck_assert_msg(cJSON_GetArraySize(item(r.json, "changes")) == 0, "%s", r.body);
	th_resp_free(&r);

	/* A transaction that emits nothing but holds the horizon back: it sends no
	 * notification when it ends, yet the waiting poll still gets the event soon. */
	PGconn *x = open_txn("SELECT pg_current_xact_id()", NULL, 0);
	bg_poll_start(&b, admin, cursor, 10);
	usleep(300 * 1000);
	th_sql(rd_url, "SELECT dualreg_emit('attendance.missing', NULL, ARRAY['100001'], '{}')");
	usleep(500 * 1000);
	commit_txn(x);
	bg_poll_join(&b);
	ck_assert_msg(b.elapsed >= 0.7 && b.elapsed < 4.0, "took %.2f s", b.elapsed);
	changes = item(b.resp.json, "changes");
	ck_assert_int_eq(cJSON_GetArraySize(changes), 1);
	ck_assert_str_eq(str(cJSON_GetArrayItem(changes, 0), "type"), "attendance.missing");
	th_resp_free(&b.resp);
}
END_TEST

/* since=now: the same cursor as reading the whole feed, for an admin and for a school;
 * a transaction still open when the end is taken is not skipped; a long poll from now
 * returns the next event only. */
START_TEST(test_feed_from_now)
{
	start_daemon();
	const char *keys[] = {admin, k1, k3};
	for (int k = 0; k < 3; k++) {
		char walked[128];
		feed_end(keys[k], walked, sizeof walked);
		struct th_resp r;
		feed(keys[k], "now", 100, 0, &r);
		ck_assert_int_eq(cJSON_GetArraySize(item(r.json, "changes")), 0);
		ck_assert_str_eq(str(r.json, "next_cursor"), walked);
		th_resp_free(&r);
	}
	/* An event of a transaction still open when the end is taken comes after it. */
	PGconn *a = open_txn("SELECT dualreg_emit('registration.ended', NULL, ARRAY['100001'], "
			     "'{}')",
			     NULL, 0);
	struct th_resp r;
	feed(k1, "now", 100, 0, &r);
	char cursor[128];
	snprintf(cursor, sizeof cursor, "%s", str(r.json, "next_cursor"));
	th_resp_free(&r);
	commit_txn(a);
	feed(k1, cursor, 100, 0, &r);
	ck_assert_int_eq(cJSON_GetArraySize(item(r.json, "changes")), 1);
	ck_assert_str_eq(str(cJSON_GetArrayItem(item(r.json, "changes"), 0), "type"),
			 "registration.ended");
	th_resp_free(&r);
	/* A long poll from now: the event emitted while it waits, and nothing older. */
	struct bg_poll b;
	bg_poll_start(&b, k1, "now", 10);
	usleep(400 * 1000);
	th_sql(rd_url, "SELECT dualreg_emit('attendance.missing', NULL, ARRAY['100001'], '{}')");
	bg_poll_join(&b);
	ck_assert_msg(b.elapsed >= 0.3 && b.elapsed < 3.0, "took %.2f s", b.elapsed);
	cJSON *changes = item(b.resp.json, "changes");
	ck_assert_int_eq(cJSON_GetArraySize(changes), 1);
	ck_assert_str_eq(str(cJSON_GetArrayItem(changes, 0), "type"), "attendance.missing");
	th_resp_free(&b.resp);
	/* An empty feed's end is a cursor from which the whole feed follows. */
	feed(k3, "now", 100, 0, &r);
	ck_assert_str_ne(str(r.json, "next_cursor"), "now");
	th_resp_free(&r);
}
END_TEST

START_TEST(test_listener_reconnects)
{
	start_daemon();
	char cursor[128];
	feed_end(admin, cursor, sizeof cursor);
	double deadline = th_now() + 10;
	int killed = 0;
	while (killed == 0 && th_now() < deadline) {
		killed = count_sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
				   "WHERE datname = current_database() AND "
				   "query LIKE 'LISTEN \"dualreg_events\"%'");
		if (killed == 0)
			usleep(50 * 1000);
	}
	ck_assert_int_eq(killed, 1);
	deadline = th_now() + 10;
	while (!th_daemon_log_contains(&rd_d, EVENTS_RECONNECTED) && th_now() < deadline)
		usleep(50 * 1000);
	ck_assert(th_daemon_log_contains(&rd_d, EVENTS_LOST));
	ck_assert(th_daemon_log_contains(&rd_d, EVENTS_RECONNECTED));

	struct bg_poll b;
	bg_poll_start(&b, admin, cursor, 10);
	usleep(500 * 1000);
	th_sql(rd_url, "SELECT dualreg_emit('mark.derived', NULL, ARRAY['100001'], '{}')");
	bg_poll_join(&b);
	ck_assert_msg(b.elapsed < 2.5, "took %.2f s", b.elapsed);
	ck_assert_int_eq(cJSON_GetArraySize(item(b.resp.json, "changes")), 1);
	th_resp_free(&b.resp);
}
END_TEST

START_TEST(test_client_leaves_mid_poll)
{
	start_daemon();
	char cmd[1024], out[2048];
	char cursor[128];
	feed_end(admin, cursor, sizeof cursor);
	snprintf(cmd, sizeof cmd,
		 "exec 3<>/dev/tcp/127.0.0.1/%u; printf 'GET /v1/changes?since=%s&wait=2 "
		 "HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: Bearer %s\\r\\n\\r\\n' >&3; "
		 "timeout 0.5 cat <&3; exit 0",
		 rd_d.port, cursor, admin);
	char *const argv[] = {"/bin/bash", "-c", cmd, NULL};
	th_run(argv, NULL, out, sizeof out);
	ck_assert_msg(strstr(out, "HTTP/1.1") == NULL, "answered early: %s", out);
	/* An event while the abandoned poll still waits, then its expiry. */
	th_sql(rd_url, "SELECT dualreg_emit('mark.derived', NULL, ARRAY['100001'], '{}')");
	usleep(2000 * 1000);
	struct th_resp r;
	feed(admin, cursor, 100, 0, &r);
	ck_assert_int_eq(cJSON_GetArraySize(item(r.json, "changes")), 1);
	th_resp_free(&r);
	get(NULL, "/healthz", &r);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);
}
END_TEST

START_TEST(test_drain_answers_long_polls)
{
	/* Under valgrind (unless sanitized): the waiter and its state are freed cleanly. */
	bool vg = getenv("DUALREG_TEST_SAN") == NULL;
	th_daemon_start(&rd_d, rd_url, "[server]\nrequest_timeout = 1s\ndrain_timeout = 20s\n", vg);
	char cursor[128];
	feed_end(admin, cursor, sizeof cursor);
	struct bg_poll b;
	bg_poll_start(&b, admin, cursor, 30);
	usleep(vg ? 1500 * 1000 : 500 * 1000);
	double t0 = th_now();
	kill(rd_d.pid, SIGTERM);
	bg_poll_join(&b);
	ck_assert_msg(th_now() - t0 < 5.0, "the poll held the drain for %.2f s", th_now() - t0);
	ck_assert_int_eq(cJSON_GetArraySize(item(b.resp.json, "changes")), 0);
	ck_assert_str_eq(str(b.resp.json, "next_cursor"), cursor);
	th_resp_free(&b.resp);
	int rc = th_daemon_wait(&rd_d, 20);
	ck_assert_msg(rc == 0, "exit status %d (99 = valgrind found errors); see %s", rc,
		      rd_d.log_path);
	ck_assert(th_daemon_log_contains(&rd_d, "msg=\"drained\""));
	rd_d.pid = 0;
}
END_TEST

static long readyz_until(long want, double seconds)
{
	double deadline = th_now() + seconds;
	long status = 0;
	while (th_now() < deadline) {
		struct th_resp r;
		get(NULL, "/readyz", &r);
		status = r.status;
		th_resp_free(&r);
		if (status == want)
			break;
		usleep(100 * 1000);
	}
	return status;
}

static void teardown_outage(void)
{
	rd_teardown();
	th_pg_start(); /* whatever happened, leave the cluster running */
}

START_TEST(test_feed_through_database_outage)
{
	start_daemon();
	char cursor[128];
	feed_end(admin, cursor, sizeof cursor);
	struct bg_poll b;
	bg_poll_start(&b, admin, cursor, 3);
	usleep(300 * 1000);
	th_pg_stop();
	/* The held poll ends at its expiry as usual. */
	bg_poll_join(&b);
	ck_assert_int_eq(cJSON_GetArraySize(item(b.resp.json, "changes")), 0);
	ck_assert_str_eq(str(b.resp.json, "next_cursor"), cursor);
	th_resp_free(&b.resp);
	long down = readyz_until(503, 10);
	struct th_resp r, r2;
	get(admin, "/v1/changes?wait=5", &r);
	get(admin, "/v1/pupils/" P1 "/status", &r2);
	th_pg_start();
	ck_assert_int_eq(down, 503);
	th_assert_problem(&r, 503);
	ck_assert_str_eq(str(r.json, "type"), "/problems/database-unavailable");
	th_resp_free(&r);
	th_assert_problem(&r2, 503);
	th_resp_free(&r2);

	ck_assert_int_eq(readyz_until(200, 15), 200);
	double deadline = th_now() + 15;
	while (!th_daemon_log_contains(&rd_d, EVENTS_RECONNECTED) && th_now() < deadline)
		usleep(100 * 1000);
	ck_assert(th_daemon_log_contains(&rd_d, EVENTS_RECONNECTED));
	bg_poll_start(&b, admin, cursor, 10);
	usleep(500 * 1000);
	th_sql(rd_url, "SELECT dualreg_emit('mark.derived', NULL, ARRAY['100001'], '{}')");
	bg_poll_join(&b);
	ck_assert_msg(b.elapsed < 2.5, "took %.2f s", b.elapsed);
	ck_assert_int_eq(cJSON_GetArraySize(item(b.resp.json, "changes")), 1);
	th_resp_free(&b.resp);
	/* A clean exit (sanitized builds: no leak from the refused poll). */
	ck_assert_int_eq(th_daemon_stop(&rd_d, SIGTERM), 0);
	rd_d.pid = 0;
}
END_TEST

Suite *changes_suite(void)
{
	Suite *s = suite_create("changes");
	TCase *tc = tcase_create("changes");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, rd_setup, rd_teardown);
	tcase_add_test(tc, test_feed_paging_and_scope);
	tcase_add_test(tc, test_feed_errors);
	tcase_add_test(tc, test_feed_from_now);
	tcase_add_test(tc, test_long_poll_wakes_and_expires);
	tcase_add_test(tc, test_late_commit_is_not_skipped);
	tcase_add_test(tc, test_listener_reconnects);
	tcase_add_test(tc, test_client_leaves_mid_poll);
	tcase_add_test(tc, test_drain_answers_long_polls);
	suite_add_tcase(s, tc);

	/* Stops and restarts the shared cluster. */
	TCase *outage = tcase_create("outage");
	tcase_set_timeout(outage, 120);
	tcase_add_checked_fixture(outage, rd_setup, teardown_outage);
	tcase_add_test(outage, test_feed_through_database_outage);
	suite_add_tcase(s, outage);
	return s;
}
