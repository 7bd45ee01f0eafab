/*
 * marks (history and derive): the rest of the marks suite, on the fixture of
 * marks_fixture.h. The mark history endpoint and its scope, concurrent posts for one
 * pupil-session losing nothing, the daily derive function and the batch plan it uses,
 * and the derive job: its run at start-up, rescheduling on reload, and a bad derive_at.
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../suites.h"
#include "marks_fixture.h"

static const char *history_path(char *buf, size_t len, const char *upn, const char *date,
				const char *session)
{
	snprintf(buf, len, "/v1/pupils/%s/marks/%s/%s/history", upn, date, session);
	return buf;
}

START_TEST(test_history_endpoint)
{
	struct th_resp r;
	char path[256];
	post1(key_home, P1, HOME, d1, "PM", "N", "", &r);
	th_resp_free(&r);
	post1(key_home, P1, HOME, d1, "PM", "L", ", \"minutes_late\": 7", &r);
	th_resp_free(&r);
	post1(key_home, P1, HOME, d1, "PM", "U", ", \"minutes_late\": 40, \"reason\": \"after close\"",
	      &r);
	ck_assert_str_eq(status_at(&r, 0), "amended");
	th_resp_free(&r);

	/* PRU, the pupil's other school, reads both schools' history. */
	th_api(&mk_d, "GET", history_path(path, sizeof path, P1, d1, "PM"), key_pru, NULL, NULL, &r);
	ck_assert_msg(r.status == 200, "%s", r.body);
	const cJSON *h = cJSON_GetObjectItem(r.json, "history");
	/* N at HOME, the D it derived at PRU, then L and U at HOME: oldest first */
	ck_assert_int_eq(cJSON_GetArraySize(h), 4);
	const cJSON *e1 = cJSON_GetArrayItem(h, 1);
	ck_assert_str_eq(cJSON_GetObjectItem(e1, "urn")->valuestring, PRU);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(e1, "old")));
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(e1, "new"), "code")->valuestring,
			 "D");
	ck_assert_str_eq(cJSON_GetObjectItem(e1, "source")->valuestring, "derived");
	const int at[] = {0, 2, 3};
	const char *want_old[] = {NULL, "N", "L"}, *want_new[] = {"N", "L", "U"};
	for (int i = 0; i < 3; i++) {
		const cJSON *e = cJSON_GetArrayItem(h, at[i]);
		ck_assert_str_eq(cJSON_GetObjectItem(e, "urn")->valuestring, HOME);
		const cJSON *o = cJSON_GetObjectItem(e, "old"), *n = cJSON_GetObjectItem(e, "new");
		if (want_old[i] == NULL)
			ck_assert(cJSON_IsNull(o));
		else
			ck_assert_str_eq(cJSON_GetObjectItem(o, "code")->valuestring, want_old[i]);
		ck_assert_str_eq(cJSON_GetObjectItem(n, "code")->valuestring, want_new[i]);
		ck_assert_str_eq(cJSON_GetObjectItem(n, "source")->valuestring, "api");
		ck_assert_str_eq(cJSON_GetObjectItem(e, "source")->valuestring, "api");
		const cJSON *k = cJSON_GetObjectItem(e, "key");
		ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(k, "id")));
		ck_assert(cJSON_IsString(cJSON_GetObjectItem(k, "name")));
		ck_assert(cJSON_IsString(cJSON_GetObjectItem(e, "changed_at")));
	}
	const cJSON *last = cJSON_GetArrayItem(h, 3);
	ck_assert_str_eq(cJSON_GetObjectItem(last, "reason")->valuestring, "after close");
	ck_assert_int_eq(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(last, "new"), "minutes_late")->valueint, 40);
	ck_assert_int_eq(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(last, "old"), "minutes_late")->valueint, 7);
	th_resp_free(&r);

	/* Admin and HOME see the same; an empty session is an empty list. */
	th_api(&mk_d, "GET", history_path(path, sizeof path, P1, d1, "PM"), key_admin, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "history")), 4);
	th_resp_free(&r);
	th_api(&mk_d, "GET", history_path(path, sizeof path, P2, d1, "PM"), key_home, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "history")), 0);
	th_resp_free(&r);

	/* Out of scope and unknown look the same: 404. */
	th_api(&mk_d, "GET", history_path(path, sizeof path, P2, d1, "PM"), key_pru, NULL, NULL, &r);
	th_assert_problem(&r, 404);
	th_resp_free(&r);
	/* P1 was not yet on PRU's roll 40 days ago. */
	char early[16];
	q1("SELECT (dualreg_today() - 40)::text", early, sizeof early);
	th_api(&mk_d, "GET", history_path(path, sizeof path, P1, early, "AM"), key_pru, NULL, NULL,
	       &r);
	th_assert_problem(&r, 404);
	th_resp_free(&r);
	th_api(&mk_d, "GET", history_path(path, sizeof path, "A801200005008", d1, "PM"), key_admin, NULL,
	       NULL, &r);
	th_assert_problem(&r, 404);
	th_resp_free(&r);

	/* Bad path parameters. */
	const struct {
		const char *upn, *date, *session, *slug;
	} bad[] = {
	    {"C801200005001", d1, "AM", "/problems/invalid-upn"},
	    {"B8012", d1, "AM", "/problems/invalid-upn"},
	    {P1, "2025-13-01", "AM", "/problems/invalid-date"},
	    {P1, d1, "XX", "/problems/invalid-session"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		th_api(&mk_d, "GET", history_path(path, sizeof path, bad[i].upn, bad[i].date,
					       bad[i].session),
		       key_admin, NULL, NULL, &r);
		th_assert_problem(&r, 422);
		ck_assert_str_eq(cJSON_GetObjectItem(r.json, "type")->valuestring, bad[i].slug);
		th_resp_free(&r);
	}
	th_api(&mk_d, "GET", history_path(path, sizeof path, P1, d1, "PM"), NULL, NULL, NULL, &r);
	th_assert_problem(&r, 401);
	th_resp_free(&r);
}
END_TEST

#define WRITERS 8
#define POSTS_EACH 6

struct writer {
	int id;
	int changed; /* created + amended answers */
	int failures;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	const char *codes[] = {"/", "L", "O", "I"};
	char u[256], auth[128], it[512], body[700];
	snprintf(u, sizeof u, "%s/v1/marks", mk_d.base);
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", key_admin);
	const char *hdrs[] = {"Content-Type: application/json", auth, NULL};
	for (int i = 0; i < POSTS_EACH; i++) {
		char extra[64];
		snprintf(extra, sizeof extra, ", \"reason\": \"writer %d post %d\"", w->id, i);
		mark_item(it, sizeof it, P2, HOME, d1, "AM", codes[(w->id + i) % 4], extra);
		snprintf(body, sizeof body, "{\"marks\":[%s]}", it);
		struct th_resp r;
		if (th_http("POST", u, body, strlen(body), hdrs, &r) != 0 || r.status != 200 ||
		    r.json == NULL) {
			w->failures++;
			th_resp_free(&r);
			continue;
		}
		const cJSON *res = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "results"), 0);
		const char *st = cJSON_GetObjectItem(res, "status")->valuestring;
		if (strcmp(st, "created") == 0 || strcmp(st, "amended") == 0)
			w->changed++;
		else if (strcmp(st, "unchanged") != 0)
			w->failures++;
		th_resp_free(&r);
	}
	return NULL;
}

START_TEST(test_concurrent_posts_lose_nothing)
{
	pthread_t t[WRITERS];
	struct writer w[WRITERS];
	for (int i = 0; i < WRITERS; i++) {
		w[i] = (struct writer){.id = i};
		ck_assert_int_eq(pthread_create(&t[i], NULL, writer_main, &w[i]), 0);
	}
	int changed = 0;
	for (int i = 0; i < WRITERS; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(w[i].failures, 0);
		changed += w[i].changed;
	}
	const char *where = "upn = '" P2 "' AND urn = '" HOME "' AND session = 'AM'";
	ck_assert_int_eq(qn("SELECT count(*) FROM mark_history WHERE %s", where), changed);
	ck_assert_int_eq(qn("SELECT count(*) FROM events WHERE type = 'mark.recorded'"), changed);
	/* The mark in force is the last history row's new entry. */
	ck_assert_int_eq(qn("SELECT count(*) FROM marks m WHERE %s AND m.code = (SELECT new_code "
			    "FROM mark_history WHERE %s ORDER BY id DESC LIMIT 1)",
			    where, where),
			 1);
	ck_assert_int_eq(qn("SELECT version FROM marks WHERE %s", where), changed);
	/* The history is one chain: each entry's old is the previous entry's new. */
	ck_assert_int_eq(qn("SELECT count(*) FROM (SELECT old_code, lag(new_code) OVER (ORDER BY "
			    "id) AS prev, row_number() OVER (ORDER BY id) AS n FROM mark_history "
			    "WHERE %s) x WHERE (n = 1 AND old_code IS NOT NULL) OR (n > 1 AND "
			    "old_code IS DISTINCT FROM prev)",
			    where),
			 0);
	ck_assert_int_eq(qn("SELECT count(*) FROM events e WHERE type = 'mark.recorded' AND NOT "
			    "EXISTS (SELECT 1 FROM mark_history h WHERE h.new_code = e.data->>'code' "
			    "AND h.old_code IS NOT DISTINCT FROM e.data->>'previous_code')"),
			 0);
}
END_TEST

START_TEST(test_derive_day_function)
{
	/* D1: P1 is expected at PRU in the morning and at HOME in the afternoon. */
	ck_assert_int_eq(qn("SELECT dualreg_derive_day('%s')", d1), 2);
	ck_assert_int_eq(qn("SELECT count(*) FROM marks WHERE source = 'derived' AND code = 'D' "
			    "AND ((urn = '" HOME "' AND session = 'AM') OR (urn = '" PRU
			    "' AND session = 'PM')) AND date = '%s'",
			    d1),
			 2);
	ck_assert_int_eq(qn("SELECT count(*) FROM mark_history WHERE new_source = 'derived'"), 2);
	ck_assert_int_eq(qn("SELECT count(*) FROM events WHERE type = 'mark.derived'"), 2);
	/* Again: nothing to do. At weekends: nothing. */
	ck_assert_int_eq(qn("SELECT dualreg_derive_day('%s')", d1), 0);
	ck_assert_int_eq(qn("SELECT dualreg_derive_day('%s')", saturday), 0);
	/* A closure at PRU: no D there. */
	/* A closure at PRU a week before D1: the morning PRU expects the pupil gets D at
	 * HOME; the afternoon's D would be at PRU, which is closed. */
	char sql[256];
	snprintf(sql, sizeof sql,
		 "INSERT INTO school_closures (urn, from_date, to_date) VALUES ('" PRU
		 "', '%s'::date - 7, '%s'::date - 7)",
		 d1, d1);
	th_sql(mk_url, sql);
	ck_assert_int_eq(qn("SELECT dualreg_derive_day(from_date) FROM school_closures"), 1);
	ck_assert_int_eq(qn("SELECT count(*) FROM marks m JOIN school_closures c ON m.date = "
			    "c.from_date AND m.urn = '" HOME "'"),
			 1);

	/* While one transaction runs it, another returns NULL at once. */
	PGconn *a = PQconnectdb(mk_url), *b = PQconnectdb(mk_url);
	ck_assert(PQstatus(a) == CONNECTION_OK && PQstatus(b) == CONNECTION_OK);
	PQclear(PQexec(a, "BEGIN"));
	snprintf(sql, sizeof sql, "SELECT dualreg_derive_day('%s')", d1_prev);
	PGresult *ra = PQexec(a, sql);
	ck_assert_str_eq(PQgetvalue(ra, 0, 0), "2");
	PGresult *rb = PQexec(b, sql);
	ck_assert_int_eq(PQresultStatus(rb), PGRES_TUPLES_OK);
	ck_assert(PQgetisnull(rb, 0, 0));
	PQclear(ra);
	PQclear(rb);
	PQclear(PQexec(a, "COMMIT"));
	PQfinish(a);
	PQfinish(b);
}
END_TEST

START_TEST(test_derive_job_runs_at_startup)
{
	/* The daemon runs the job a moment after start-up. */
	double deadline = th_now() + 10.0;
	while (th_now() < deadline && !th_daemon_log_contains(&mk_d, "msg=\"derive job done\""))
		usleep(50 * 1000);
	ck_assert_msg(th_daemon_log_contains(&mk_d, "msg=\"derive job done\""), "see %s",
		      mk_d.log_path);
	/* Today, on a school day, P1 is expected at HOME all day (D1's weekday is not
	 * today's): PRU holds two Ds. */
	long want = qn("SELECT CASE WHEN extract(isodow FROM dualreg_today()) < 6 THEN 2 ELSE 0 END");
	ck_assert_int_eq(qn("SELECT count(*) FROM marks WHERE source = 'derived' AND date = "
			    "dualreg_today()"),
			 want);
	char line[64];
	snprintf(line, sizeof line, "date=%s changed=%ld", mk_today, want);
	ck_assert_msg(th_daemon_log_contains(&mk_d, line), "no \"%s\" in %s", line, mk_d.log_path);
}
END_TEST

/* The batch's set-based plan agrees with dualreg_day_plan, session by session, for every
 * dual-registered day, across a schedule change and a closure. */
START_TEST(test_batch_plan_matches_day_plan)
{
	char sql[1024];
	snprintf(sql, sizeof sql,
		 "INSERT INTO registration_schedules (registration_id, effective_from, mask) "
		 "SELECT id, '%s'::date - 10, 1023 & ~(1 << dualreg_session_bit('%s', 'PM')) "
		 "FROM registrations WHERE urn = '" PRU "';"
		 "INSERT INTO school_closures (urn, from_date, to_date) VALUES ('" HOME
		 "', '%s'::date - 7, '%s'::date - 1)",
		 d1, d1, d1, d1);
	th_sql(mk_url, sql);
	const char *days = "SELECT '" P1 "'::text AS upn, x::date AS date FROM generate_series("
			   "dualreg_today() - 45, dualreg_today() + 5, interval '1 day') x";
	const char *old = "SELECT p.* FROM dualreg_day_plan('" P1 "', dualreg_today() - 45, "
			  "dualreg_today() + 5) p WHERE p.other_urn IS NOT NULL";
	char fresh[512];
	snprintf(fresh, sizeof fresh,
		 "SELECT pl.date, pl.session, pl.main_urn, pl.sub_urn, pl.expected_urn, "
		 "pl.other_urn, pl.other_closed FROM (SELECT array_agg(upn) AS u, array_agg(date) "
		 "AS d FROM (%s) z) a, dualreg_dual_plans(a.u, a.d) pl",
		 days);
	char q[2048];
	snprintf(q, sizeof q,
		 "SELECT count(*) FROM ((SELECT date, session, main_urn, sub_urn, expected_urn, "
		 "other_urn, other_closed FROM (%s) o EXCEPT %s) UNION ALL (%s EXCEPT SELECT date, "
		 "session, main_urn, sub_urn, expected_urn, other_urn, other_closed FROM (%s) o2)) x",
		 old, fresh, fresh, old);
	ck_assert_int_eq(qn("%s", q), 0);
	/* and it is not trivially empty: D1's placement days, both sessions */
	ck_assert_int_gt(qn("SELECT count(*) FROM (%s) n", fresh), 20);
	ck_assert_int_gt(qn("SELECT count(*) FROM (%s) c WHERE other_closed", fresh), 0);
}
END_TEST

/* derive_at is reloadable: after SIGHUP the daily run is armed for the new time. */
START_TEST(test_derive_job_reschedules_on_reload)
{
	double deadline = th_now() + 10.0;
	while (th_now() < deadline && !th_daemon_log_contains(&mk_d, "msg=\"derive job scheduled\""))
		usleep(50 * 1000);
	ck_assert(th_daemon_log_contains(&mk_d, "at=00:05"));
	FILE *f = fopen(mk_d.conf_path, "a");
	ck_assert_ptr_nonnull(f);
	fputs("[jobs]\nderive_at = 04:30\n", f);
	fclose(f);
	ck_assert_int_eq(kill(mk_d.pid, SIGHUP), 0);
	deadline = th_now() + 10.0;
	while (th_now() < deadline && !th_daemon_log_contains(&mk_d, "at=04:30"))
		usleep(50 * 1000);
	ck_assert_msg(th_daemon_log_contains(&mk_d, "at=04:30"), "see %s", mk_d.log_path);
}
END_TEST

START_TEST(test_derive_job_bad_config)
{
	char out[2048], bin[512], conf[512];
	snprintf(conf, sizeof conf, "%s/jobs_bad.conf", th_env("DUALREG_TEST_TMP"));
	FILE *f = fopen(conf, "w");
	ck_assert_ptr_nonnull(f);
	fputs("[jobs]\nderive_at = 24:00\n", f);
	fclose(f);
	snprintf(bin, sizeof bin, "%s/dualregd", th_env("DUALREG_TEST_BIN"));
	char *const argv[] = {bin, "-t", "-c", conf, NULL};
	ck_assert_int_eq(th_run(argv, NULL, out, sizeof out), 2);
	ck_assert_msg(strstr(th_last_stderr(), "[jobs] derive_at: expected a time of day HH:MM") !=
			  NULL,
		      "%s", th_last_stderr());
}
END_TEST

/* The api test case's history and concurrency tests. */
void marks_history_tests(TCase *tc)
{
	tcase_add_test(tc, test_history_endpoint);
	tcase_add_test(tc, test_concurrent_posts_lose_nothing);
}

/* The derive job, with its own set-up, and the SQL-only derive tests. */
void marks_derive_tests(Suite *s)
{
	TCase *job = tcase_create("job");
	tcase_set_timeout(job, 60);
	tcase_add_checked_fixture(job, mk_setup_job, mk_teardown);
	tcase_add_test(job, test_derive_job_runs_at_startup);
	tcase_add_test(job, test_derive_job_reschedules_on_reload);
	suite_add_tcase(s, job);

	TCase *sql = tcase_create("sql");
	tcase_set_timeout(sql, 60);
	tcase_add_checked_fixture(sql, mk_fixtures, NULL);
	tcase_add_test(sql, test_derive_day_function);
	tcase_add_test(sql, test_batch_plan_matches_day_plan);
	tcase_add_test(sql, test_derive_job_bad_config);
	suite_add_tcase(s, sql);
}
