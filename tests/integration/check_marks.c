/*
 * marks: POST /v1/marks and the mark history against the real daemon and database.
 * Statuses (created, amended, unchanged, rejected) and every per-item error type, the
 * reason rule and its N / derived-D exemptions, history rows and events written with the
 * marks, conflicts at the school that does not expect the pupil, derived D following a
 * post, the 1000-mark limit, malformed envelopes and other schools' registers storing
 * nothing, the history endpoint's scope, concurrent posts for one pupil-session, the
 * daily derive function, and the derive job's run at start-up.
 *
 * Fixtures are plain SQL. Dates are relative to today and chosen to be weekdays:
 * D1 is the last weekday before today. Pupil P1 is dual registered (main at HOME,
 * subsidiary at PRU, the placement ending on D1) and expected at PRU on D1's weekday
 * mornings and at HOME otherwise. The placement ends before today so that the derive
 * job the daemon runs at start-up leaves these tests alone; the job's own test reopens
 * it.
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness.h"
#include "../suites.h"

#define HOME "100001"
#define PRU "100002"
#define OTHER "100003"
#define P1 "B801200005001" /* dual registered: HOME main, PRU subsidiary */
#define P2 "Q801200005002" /* HOME only */
#define P3 "E801200005003" /* OTHER, registered from D1 + 1 */
#define P4 "U801200005004" /* HOME, registration ended D1 - 1 */
#define P5 "H801200005005" /* HOME since 2024-01-01 */

static char url[1024];
static struct th_daemon d;
static char admin[64], key_home[64], key_pru[64];
static char d1[16], d1_prev[16], saturday[16], future[16], today[16];

/* The first column of the first row of a query, as text ("" for NULL). */
static void q1(const char *sql, char *out, size_t outlen)
{
	PGconn *c = PQconnectdb(url);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	PGresult *r = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "%s: %s", sql,
		      PQresultErrorMessage(r));
	snprintf(out, outlen, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
}

static long qn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static long qn(const char *fmt, ...)
{
	char sql[2048], out[64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof sql, fmt, ap);
	va_end(ap);
	q1(sql, out, sizeof out);
	return strtol(out, NULL, 10);
}

static void fixtures(void)
{
	th_db_create_migrated(url, sizeof url);
	q1("SELECT dualreg_today()", today, sizeof today);
	q1("SELECT max(x)::date FROM generate_series(dualreg_today() - 7, dualreg_today() - 1, "
	   "interval '1 day') x WHERE extract(isodow FROM x) < 6",
	   d1, sizeof d1);
	q1("SELECT max(x)::date FROM generate_series(dualreg_today() - 14, dualreg_today() - 1, "
	   "interval '1 day') x WHERE extract(isodow FROM x) = 6",
	   saturday, sizeof saturday);
	q1("SELECT min(x)::date FROM generate_series(dualreg_today() + 1, dualreg_today() + 7, "
	   "interval '1 day') x WHERE extract(isodow FROM x) < 6",
	   future, sizeof future);
	char sql[4096];
	snprintf(sql, sizeof sql, "SELECT max(x)::date FROM generate_series('%s'::date - 7, "
				  "'%s'::date - 1, interval '1 day') x WHERE extract(isodow FROM x) < 6",
		 d1, d1);
	q1(sql, d1_prev, sizeof d1_prev);
	snprintf(sql, sizeof sql,
		 "INSERT INTO schools (urn, name, kind) VALUES ('" HOME "', 'Home', 'mainstream'),"
		 " ('" PRU "', 'PRU', 'pru'), ('" OTHER "', 'Other', 'mainstream');"
		 "INSERT INTO pupils VALUES ('" P1 "', 'A', 'One', '2012-01-01'),"
		 " ('" P2 "', 'B', 'Two', '2012-01-01'), ('" P3 "', 'C', 'Three', '2012-01-01'),"
		 " ('" P4 "', 'D', 'Four', '2012-01-01'), ('" P5 "', 'E', 'Five', '2012-01-01');"
		 "INSERT INTO registrations (upn, urn, role, start_date, end_date) VALUES"
		 " ('" P1 "', '" HOME "', 'main', dualreg_today() - 60, NULL),"
		 " ('" P1 "', '" PRU "', 'subsidiary', dualreg_today() - 30, '%s'),"
		 " ('" P2 "', '" HOME "', 'main', dualreg_today() - 60, NULL),"
		 " ('" P3 "', '" OTHER "', 'main', '%s'::date + 1, NULL),"
		 " ('" P4 "', '" HOME "', 'main', dualreg_today() - 60, '%s'::date - 1),"
		 " ('" P5 "', '" HOME "', 'main', '2024-01-01', NULL);"
		 "INSERT INTO registration_schedules (registration_id, effective_from, mask)"
		 " SELECT id, start_date, 1 << dualreg_session_bit('%s', 'AM') FROM registrations"
		 " WHERE urn = '" PRU "';",
		 d1, d1, d1, d1);
	th_sql(url, sql);
	th_key_create(url, NULL, admin, sizeof admin);
	th_key_create(url, HOME, key_home, sizeof key_home);
	th_key_create(url, PRU, key_pru, sizeof key_pru);
}

static void setup(void)
{
	fixtures();
	th_daemon_start(&d, url, "[limits]\nrate = 100000\nburst = 100000\n", false);
}

/* P1's placement reopened, so that P1 is dual registered today, before the daemon
 * (and its start-up derive job) starts. */
static void setup_job(void)
{
	fixtures();
	th_sql(url, "UPDATE registrations SET end_date = NULL WHERE urn = '" PRU "'");
	th_daemon_start(&d, url, NULL, false);
}

static void teardown(void)
{
	if (d.pid > 0)
		th_daemon_stop(&d, SIGKILL);
}

/* One mark item as JSON; extra is more members ("" or ", \"reason\": \"x\""). */
static const char *item(char *buf, size_t len, const char *upn, const char *urn,
			const char *date, const char *session, const char *code, const char *extra)
{
	snprintf(buf, len,
		 "{\"upn\":\"%s\",\"urn\":\"%s\",\"date\":\"%s\",\"session\":\"%s\",\"code\":\"%s\"%s}",
		 upn, urn, date, session, code, extra);
	return buf;
}

/* POSTs {"marks":[one item]} and expects 200. */
static void post1(const char *token, const char *upn, const char *urn, const char *date,
		  const char *session, const char *code, const char *extra, struct th_resp *r)
{
	char it[1024], body[1200];
	snprintf(body, sizeof body, "{\"marks\":[%s]}",
		 item(it, sizeof it, upn, urn, date, session, code, extra));
	th_api(&d, "POST", "/v1/marks", token, body, NULL, r);
	ck_assert_msg(r->status == 200, "%ld: %s", r->status, r->body);
}

static const cJSON *result_at(const struct th_resp *r, int i)
{
	const cJSON *results = cJSON_GetObjectItem(r->json, "results");
	ck_assert_msg(cJSON_IsArray(results), "%s", r->body);
	const cJSON *res = cJSON_GetArrayItem(results, i);
	ck_assert_msg(res != NULL, "no result %d in %s", i, r->body);
	ck_assert_int_eq(cJSON_GetObjectItem(res, "index")->valueint, i);
	return res;
}

static const char *status_at(const struct th_resp *r, int i)
{
	return cJSON_GetObjectItem(result_at(r, i), "status")->valuestring;
}

static const char *error_at(const struct th_resp *r, int i)
{
	const cJSON *e = cJSON_GetObjectItem(result_at(r, i), "error");
	ck_assert_msg(e != NULL, "result %d has no error: %s", i, r->body);
	ck_assert(cJSON_GetObjectItem(e, "detail")->valuestring[0] != '\0');
	return cJSON_GetObjectItem(e, "type")->valuestring;
}

static const char *mark_code_at(const struct th_resp *r, int i)
{
	const cJSON *m = cJSON_GetObjectItem(result_at(r, i), "mark");
	ck_assert_msg(m != NULL, "result %d has no mark: %s", i, r->body);
	return cJSON_GetObjectItem(m, "code")->valuestring;
}

static int count_of(const struct th_resp *r, const char *name)
{
	return cJSON_GetObjectItem(cJSON_GetObjectItem(r->json, "counts"), name)->valueint;
}

static long nmarks(void)
{
	return qn("SELECT count(*) FROM marks WHERE source <> 'derived'");
}

START_TEST(test_created_unchanged_amended)
{
	struct th_resp r;
	post1(admin, P2, HOME, d1, "AM", "/", "", &r);
	ck_assert_str_eq(status_at(&r, 0), "created");
	ck_assert_str_eq(mark_code_at(&r, 0), "/");
	ck_assert_int_eq(count_of(&r, "created"), 1);
	th_resp_free(&r);
	ck_assert_int_eq(qn("SELECT count(*) FROM mark_history WHERE upn = '" P2 "'"), 1);
	ck_assert_int_eq(qn("SELECT count(*) FROM events WHERE type = 'mark.recorded' AND "
			    "data = jsonb_build_object('upn', '" P2 "', 'urn', '" HOME "', 'date', "
			    "'%s', 'session', 'AM', 'code', '/', 'source', 'api') AND urns = "
			    "ARRAY['" HOME "']",
			    d1),
			 1);

	/* The same again: unchanged, no history, no event. */
	post1(admin, P2, HOME, d1, "AM", "/", "", &r);
	ck_assert_str_eq(status_at(&r, 0), "unchanged");
	ck_assert_str_eq(mark_code_at(&r, 0), "/");
	ck_assert_int_eq(count_of(&r, "unchanged"), 1);
	th_resp_free(&r);
	ck_assert_int_eq(qn("SELECT count(*) FROM mark_history WHERE upn = '" P2 "'"), 1);
	ck_assert_int_eq(qn("SELECT count(*) FROM events"), 1);

	/* Another code without a reason: rejected, nothing changes. */
	post1(admin, P2, HOME, d1, "AM", "O", "", &r);
	ck_assert_str_eq(status_at(&r, 0), "rejected");
	ck_assert_str_eq(error_at(&r, 0), "reason-required");
	th_resp_free(&r);
	post1(admin, P2, HOME, d1, "AM", "O", ", \"reason\": \"   \"", &r);
	ck_assert_str_eq(error_at(&r, 0), "reason-required");
	th_resp_free(&r);
	ck_assert_int_eq(qn("SELECT count(*) FROM marks WHERE code = '/'"), 1);
	ck_assert_int_eq(qn("SELECT count(*) FROM events"), 1);

	/* With a reason: amended, history and an event carrying the previous code. */
	post1(admin, P2, HOME, d1, "AM", "L",
	      ", \"reason\": \"arrived late, register corrected\", \"minutes_late\": 12", &r);
	ck_assert_str_eq(status_at(&r, 0), "amended");
	const cJSON *m = cJSON_GetObjectItem(result_at(&r, 0), "mark");
	ck_assert_int_eq(cJSON_GetObjectItem(m, "minutes_late")->valueint, 12);
	ck_assert_int_eq(cJSON_GetObjectItem(m, "version")->valueint, 2);
	ck_assert_str_eq(cJSON_GetObjectItem(m, "source")->valuestring, "api");
	th_resp_free(&r);
	ck_assert_int_eq(qn("SELECT count(*) FROM mark_history WHERE old_code = '/' AND new_code "
			    "= 'L' AND new_minutes_late = 12 AND reason = 'arrived late, register "
			    "corrected' AND key_name IS NOT NULL AND key_id IS NOT NULL AND "
			    "new_source = 'api'"),
			 1);
	ck_assert_int_eq(qn("SELECT count(*) FROM events WHERE type = 'mark.recorded' AND "
			    "data->>'previous_code' = '/' AND data->>'code' = 'L' AND "
			    "(data->>'minutes_late')::int = 12"),
			 1);

	/* Only the minutes change: an amendment that needs no reason. */
	post1(admin, P2, HOME, d1, "AM", "L", ", \"minutes_late\": 15", &r);
	ck_assert_str_eq(status_at(&r, 0), "amended");
	th_resp_free(&r);
	ck_assert_int_eq(qn("SELECT version FROM marks WHERE upn = '" P2 "'"), 3);
	ck_assert_int_eq(qn("SELECT count(*) FROM mark_history"), 3);
}
END_TEST

START_TEST(test_n_is_replaced_without_reason)
{
	struct th_resp r;
	post1(admin, P2, HOME, d1, "PM", "N", "", &r);
	ck_assert_str_eq(status_at(&r, 0), "created");
	th_resp_free(&r);
	post1(key_home, P2, HOME, d1, "PM", "I", "", &r);
	ck_assert_str_eq(status_at(&r, 0), "amended");
	th_resp_free(&r);
	/* Once the N is gone a reason is needed again. */
	post1(key_home, P2, HOME, d1, "PM", "M", "", &r);
	ck_assert_str_eq(error_at(&r, 0), "reason-required");
	th_resp_free(&r);
	ck_assert_int_eq(qn("SELECT count(*) FROM mark_history WHERE old_code = 'N' AND new_code "
			    "= 'I' AND reason IS NULL"),
			 1);
}
END_TEST

/* A batch naming one session twice sees its own first write. */
START_TEST(test_same_session_twice_in_a_batch)
{
	char a[512], b[512], c[512], body[2048];
	snprintf(body, sizeof body, "{\"marks\":[%s,%s,%s]}",
		 item(a, sizeof a, P2, HOME, d1, "AM", "N", ""),
		 item(b, sizeof b, P2, HOME, d1, "AM", "I", ""),
		 item(c, sizeof c, P2, HOME, d1, "AM", "I", ""));
	struct th_resp r;
	th_api(&d, "POST", "/v1/marks", admin, body, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(status_at(&r, 0), "created");
	ck_assert_str_eq(status_at(&r, 1), "amended");
	ck_assert_str_eq(status_at(&r, 2), "unchanged");
	th_resp_free(&r);
	ck_assert_int_eq(qn("SELECT count(*) FROM mark_history"), 2);
	ck_assert_int_eq(qn("SELECT count(*) FROM events"), 2);
}
END_TEST

START_TEST(test_derived_d_follows_and_gives_way)
{
	struct th_resp r;
	/* HOME expects P1 on D1 PM. Posting there derives D at PRU for PM and, for the
	 * same day, D at HOME for AM (PRU expects the pupil then). */
	post1(key_home, P1, HOME, d1, "PM", "/", "", &r);
	ck_assert_str_eq(status_at(&r, 0), "created");
	th_resp_free(&r);
	ck_assert_int_eq(qn("SELECT count(*) FROM marks WHERE upn = '" P1 "' AND urn = '" PRU
			    "' AND date = '%s' AND session = 'PM' AND code = 'D' AND source = "
			    "'derived'",
			    d1),
			 1);
	ck_assert_int_eq(qn("SELECT count(*) FROM marks WHERE upn = '" P1 "' AND urn = '" HOME
			    "' AND date = '%s' AND session = 'AM' AND code = 'D' AND source = "
			    "'derived'",
			    d1),
			 1);
	ck_assert_int_eq(qn("SELECT count(*) FROM events WHERE type = 'mark.derived' AND urns "
			    "@> ARRAY['" HOME "', '" PRU "']"),
			 2);
	ck_assert_int_eq(qn("SELECT count(*) FROM events WHERE type = 'mark.recorded' AND urns "
			    "= ARRAY['" HOME "', '" PRU "']"),
			 1);
	ck_assert_int_eq(qn("SELECT count(*) FROM events WHERE type = 'mark.conflict'"), 0);

	/* PRU confirming the derived D: unchanged. D where PRU expects the pupil: no. */
	post1(key_pru, P1, PRU, d1, "PM", "D", "", &r);
	ck_assert_str_eq(status_at(&r, 0), "unchanged");
	th_resp_free(&r);
	post1(key_pru, P1, PRU, d1, "AM", "D", "", &r);
	ck_assert_str_eq(error_at(&r, 0), "d-not-expected");
	th_resp_free(&r);

	/* HOME marks the pupil present on D1 AM, when PRU expects them: the derived D is
	 * replaced without a reason, the mark is kept, and both schools hear of the
	 * conflict. */
	long before = qn("SELECT count(*) FROM events");
	post1(key_home, P1, HOME, d1, "AM", "/", "", &r);
	ck_assert_str_eq(status_at(&r, 0), "created");
	ck_assert_str_eq(mark_code_at(&r, 0), "/");
	th_resp_free(&r);
	ck_assert_int_eq(qn("SELECT count(*) FROM marks WHERE upn = '" P1 "' AND urn = '" HOME
			    "' AND date = '%s' AND session = 'AM' AND code = '/' AND source = "
			    "'api'",
			    d1),
			 1);
	ck_assert_int_eq(qn("SELECT count(*) FROM mark_history WHERE urn = '" HOME "' AND "
			    "session = 'AM' AND old_code = 'D' AND old_source = 'derived' AND "
			    "new_code = '/' AND new_source = 'api'"),
			 1);
	ck_assert_int_eq(qn("SELECT count(*) FROM events WHERE id > %ld", before), 2);
	ck_assert_int_eq(qn("SELECT count(*) FROM events WHERE type = 'mark.recorded' AND "
			    "data->>'previous_code' = 'D' AND data->>'urn' = '" HOME "'"),
			 1);
	ck_assert_int_eq(qn("SELECT count(*) FROM events WHERE type = 'mark.conflict' AND urns "
			    "@> ARRAY['" HOME "', '" PRU "'] AND data->>'urn' = '" HOME "' AND "
			    "data->>'expected_urn' = '" PRU "' AND data->>'session' = 'AM' AND "
			    "data->>'date' = '%s' AND data->>'code' = '/'",
			    d1),
			 1);
	/* PRU's own mark for that session is a plain create; no D at both schools. */
	post1(key_pru, P1, PRU, d1, "AM", "/", "", &r);
	ck_assert_str_eq(status_at(&r, 0), "created");
	th_resp_free(&r);
	ck_assert_int_eq(qn("SELECT count(*) FROM marks WHERE upn = '" P1 "' AND date = '%s' AND "
			    "session = 'AM' AND code = 'D'",
			    d1),
			 0);
	/* A school's own D (posted, not derived) is a mark like any other. On D1's
	 * previous weekday HOME expects the pupil all day. */
	post1(key_pru, P1, PRU, d1_prev, "AM", "D", "", &r);
	ck_assert_str_eq(status_at(&r, 0), "created");
	th_resp_free(&r);
	post1(key_pru, P1, PRU, d1_prev, "AM", "O", "", &r);
	ck_assert_str_eq(error_at(&r, 0), "reason-required");
	th_resp_free(&r);
}
END_TEST

/* Every per-item error type, each in its own item of one batch, in order. */
START_TEST(test_every_rule)
{
	char long_text[1100];
	memset(long_text, 'x', 1001);
	long_text[1001] = '\0';
	char comment_extra[1200], reason_extra[1200];
	snprintf(comment_extra, sizeof comment_extra, ", \"comment\": \"%s\"", long_text);
	snprintf(reason_extra, sizeof reason_extra, ", \"reason\": \"%s\"", long_text);
	struct {
		const char *upn, *urn, *date, *session, *code, *extra, *want;
	} cases[] = {
	    {"B80120000500", HOME, d1, "AM", "/", "", "invalid-upn"},
	    {P2, "10001", d1, "AM", "/", "", "invalid-urn"},
	    {P2, HOME, "2025-02-30", "AM", "/", "", "invalid-date"},
	    {P2, HOME, "yesterday", "AM", "/", "", "invalid-date"},
	    {P2, HOME, d1, "am", "/", "", "invalid-session"},
	    {P2, HOME, d1, "AM", "-", "", "no-mark"},
	    {P2, HOME, d1, "AM", "/", comment_extra, "comment-too-long"},
	    {P2, HOME, d1, "AM", "/", reason_extra, "reason-too-long"},
	    {P2, "999999", d1, "AM", "/", "", "unknown-school"},
	    {"A801200005008", HOME, d1, "AM", "/", "", "unknown-pupil"},
	    {P2, HOME, saturday, "AM", "/", "", "not-a-school-day"},
	    {P2, HOME, future, "AM", "/", "", "date-in-future"},
	    {P3, OTHER, d1, "AM", "/", "", "before-registration"},
	    {P4, HOME, d1, "AM", "/", "", "not-registered"},
	    {P2, PRU, d1, "AM", "/", "", "not-registered"},
	    {P2, HOME, d1, "AM", "Q9", "", "unknown-code"},
	    {P2, HOME, d1, "AM", "H", "", "code-not-valid-on-date"},
	    {P5, HOME, "2024-08-16", "AM", "K", "", "code-not-valid-on-date"},
	    {P2, HOME, d1, "AM", "/", ", \"minutes_late\": 5", "minutes-late-not-allowed"},
	    {P2, HOME, d1, "AM", "U", ", \"minutes_late\": 601", "minutes-late-out-of-range"},
	    {P2, HOME, d1, "AM", "L", ", \"minutes_late\": -1", "minutes-late-out-of-range"},
	    {P2, HOME, d1, "AM", "D", "", "d-not-expected"},
	    {P1, HOME, d1, "PM", "D", "", "d-not-expected"},
	    /* and the ones that pass: withdrawn codes before withdrawal, minutes with U */
	    {P5, HOME, "2024-08-16", "AM", "H", "", NULL},
	    {P5, HOME, "2024-08-19", "AM", "J1", "", NULL},
	    {P2, HOME, d1, "PM", "U", ", \"minutes_late\": 600, \"comment\": null", NULL},
	    {P1, HOME, d1, "AM", "D", "", NULL},
	};
	size_t n = sizeof cases / sizeof cases[0];
	size_t cap = 64 * 1024, len = 0;
	char *body = malloc(cap);
	len += (size_t)snprintf(body + len, cap - len, "{\"marks\":[");
	for (size_t i = 0; i < n; i++) {
		char it[2048];
		item(it, sizeof it, cases[i].upn, cases[i].urn, cases[i].date, cases[i].session,
		     cases[i].code, cases[i].extra);
		len += (size_t)snprintf(body + len, cap - len, "%s%s", i ? "," : "", it);
	}
	snprintf(body + len, cap - len, "]}");
	struct th_resp r;
	th_api(&d, "POST", "/v1/marks", admin, body, NULL, &r);
	free(body);
	ck_assert_msg(r.status == 200, "%s", r.body);
	int rejected = 0;
	for (size_t i = 0; i < n; i++) {
		if (cases[i].want == NULL) {
			ck_assert_msg(strcmp(status_at(&r, (int)i), "created") == 0, "item %zu: %s",
				      i, r.body);
			continue;
		}
		rejected++;
		ck_assert_str_eq(status_at(&r, (int)i), "rejected");
		ck_assert_msg(strcmp(error_at(&r, (int)i), cases[i].want) == 0,
			      "item %zu: want %s, got %s", i, cases[i].want, error_at(&r, (int)i));
	}
	ck_assert_int_eq(count_of(&r, "rejected"), rejected);
	ck_assert_int_eq(count_of(&r, "created"), (int)n - rejected);
	/* The ended registration's detail says when it ended. */
	const cJSON *e = cJSON_GetObjectItem(result_at(&r, 13), "error");
	ck_assert_msg(strstr(cJSON_GetObjectItem(e, "detail")->valuestring, "ended") != NULL,
		      "%s", r.body);
	th_resp_free(&r);
	ck_assert_int_eq(nmarks(), (long)n - rejected);
	ck_assert_int_eq(qn("SELECT count(*) FROM mark_history WHERE new_source = 'api'"),
			 (long)n - rejected);
	ck_assert_int_eq(qn("SELECT count(*) FROM marks WHERE code = '-'"), 0);
}
END_TEST

/* The checks only a caller of the SQL function itself can reach (the API's envelope
 * check stops these first): wrong JSON types and another school's register. */
START_TEST(test_sql_level_rules)
{
	char sql[4096], out[8192];
	snprintf(sql, sizeof sql,
		 "SELECT string_agg(x->'error'->>'type', ',' ORDER BY (x->>'index')::int) FROM "
		 "jsonb_array_elements(dualreg_ingest_marks('["
		 "7,"
		 "{\"upn\":\"" P2 "\",\"urn\":\"" HOME "\",\"date\":\"%s\",\"session\":\"AM\","
		 "\"code\":\"L\",\"minutes_late\":\"5\"},"
		 "{\"upn\":\"" P2 "\",\"urn\":\"" HOME "\",\"date\":\"%s\",\"session\":\"AM\","
		 "\"code\":\"L\",\"minutes_late\":2.5},"
		 "{\"upn\":\"" P2 "\",\"urn\":\"" HOME "\",\"date\":\"%s\",\"session\":\"AM\","
		 "\"code\":\"/\",\"comment\":1},"
		 "{\"upn\":\"" P2 "\",\"urn\":\"" HOME "\",\"date\":\"%s\",\"session\":\"AM\","
		 "\"code\":\"/\",\"reason\":[]},"
		 "{\"upn\":\"" P1 "\",\"urn\":\"" PRU "\",\"date\":\"%s\",\"session\":\"AM\","
		 "\"code\":\"/\"},"
		 "{\"upn\":1,\"urn\":\"" HOME "\",\"date\":\"%s\",\"session\":\"AM\",\"code\":\"/\"}"
		 "]'::jsonb, NULL, 'pull feed', '" HOME "', 'pull')->'results') x",
		 d1, d1, d1, d1, d1, d1);
	q1(sql, out, sizeof out);
	ck_assert_str_eq(out, "invalid-item,invalid-minutes-late,invalid-minutes-late,"
			      "invalid-comment,invalid-reason,forbidden-school,invalid-upn");
	ck_assert_int_eq(qn("SELECT count(*) FROM marks"), 0);
	/* A pull feed writes with source 'pull'. */
	snprintf(sql, sizeof sql,
		 "SELECT dualreg_ingest_marks('[{\"upn\":\"" P2 "\",\"urn\":\"" HOME "\",\"date\":"
		 "\"%s\",\"session\":\"AM\",\"code\":\"/\"}]'::jsonb, NULL, 'mis pull', '" HOME
		 "', 'pull')->'counts'->>'created'",
		 d1);
	q1(sql, out, sizeof out);
	ck_assert_str_eq(out, "1");
	ck_assert_int_eq(qn("SELECT count(*) FROM marks WHERE source = 'pull'"), 1);
	ck_assert_int_eq(qn("SELECT count(*) FROM events WHERE data->>'source' = 'pull'"), 1);
	ck_assert_int_eq(qn("SELECT count(*) FROM mark_history WHERE key_name = 'mis pull' AND "
			    "new_source = 'pull'"),
			 1);
}
END_TEST

START_TEST(test_school_key_writes_only_its_own_register)
{
	char a[512], b[512], body[1200];
	snprintf(body, sizeof body, "{\"marks\":[%s,%s]}",
		 item(a, sizeof a, P1, HOME, d1, "PM", "/", ""),
		 item(b, sizeof b, P1, PRU, d1, "AM", "/", ""));
	struct th_resp r;
	th_api(&d, "POST", "/v1/marks", key_home, body, NULL, &r);
	th_assert_problem(&r, 403);
	ck_assert_str_eq(cJSON_GetObjectItem(r.json, "type")->valuestring,
			 "/problems/forbidden-school");
	const cJSON *errs = cJSON_GetObjectItem(r.json, "errors");
	ck_assert_int_eq(cJSON_GetArraySize(errs), 1);
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(errs, 0), "pointer")->valuestring,
			 "/marks/1/urn");
	th_resp_free(&r);
	ck_assert_int_eq(qn("SELECT count(*) FROM marks"), 0);
	ck_assert_int_eq(qn("SELECT count(*) FROM events"), 0);
	/* The PRU's key may write the PRU's mark; an admin key may write either. */
	post1(key_pru, P1, PRU, d1, "AM", "/", "", &r);
	ck_assert_str_eq(status_at(&r, 0), "created");
	th_resp_free(&r);
	th_api(&d, "POST", "/v1/marks", admin, body, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(status_at(&r, 0), "created");
	ck_assert_str_eq(status_at(&r, 1), "unchanged");
	th_resp_free(&r);
	/* No key: 401. */
	th_api(&d, "POST", "/v1/marks", NULL, body, NULL, &r);
	th_assert_problem(&r, 401);
	th_resp_free(&r);
}
END_TEST

/* Posts body with the admin key; expects a problem with status and slug, and that the
 * first error (if pointer is not NULL) names pointer. */
static void expect_rejected(const char *body, long status, const char *slug, const char *pointer)
{
	struct th_resp r;
	th_api(&d, "POST", "/v1/marks", admin, body, NULL, &r);
	th_assert_problem(&r, status);
	if (slug != NULL)
		ck_assert_msg(strcmp(cJSON_GetObjectItem(r.json, "type")->valuestring, slug) == 0,
			      "%s", r.body);
	if (pointer != NULL) {
		bool found = false;
		const cJSON *e;
		cJSON_ArrayForEach(e, cJSON_GetObjectItem(r.json, "errors"))
		{
			found |= strcmp(cJSON_GetObjectItem(e, "pointer")->valuestring, pointer) == 0;
		}
		ck_assert_msg(found, "no error at %s: %s", pointer, r.body);
	}
	th_resp_free(&r);
}

START_TEST(test_malformed_envelope_stores_nothing)
{
	char good[512], body[2048];
	item(good, sizeof good, P2, HOME, d1, "AM", "/", "");
	expect_rejected("{\"marks\":[", 400, "/problems/invalid-json", NULL);
	expect_rejected("[]", 422, NULL, NULL);
	expect_rejected("{}", 422, "/problems/invalid-marks", "/marks");
	expect_rejected("{\"marks\":{}}", 422, "/problems/invalid-marks", "/marks");
	expect_rejected("{\"marks\":null}", 422, "/problems/invalid-marks", "/marks");
	snprintf(body, sizeof body, "{\"marks\":[%s],\"extra\":1}", good);
	expect_rejected(body, 422, "/problems/invalid-marks", "/extra");
	snprintf(body, sizeof body, "{\"marks\":[%s],\"a/b~c\":1}", good);
	expect_rejected(body, 422, "/problems/invalid-marks", "/a~1b~0c");
	snprintf(body, sizeof body, "{\"marks\":[%s,\"x\"]}", good);
	expect_rejected(body, 422, "/problems/invalid-marks", "/marks/1");
	snprintf(body, sizeof body, "{\"marks\":[%s,{\"upn\":\"" P2 "\"}]}", good);
	expect_rejected(body, 422, "/problems/invalid-marks", "/marks/1/code");
	snprintf(body, sizeof body,
		 "{\"marks\":[%s,{\"upn\":\"" P2 "\",\"urn\":100001,\"date\":\"%s\","
		 "\"session\":\"AM\",\"code\":\"/\"}]}",
		 good, d1);
	expect_rejected(body, 422, "/problems/invalid-marks", "/marks/1/urn");
	snprintf(body, sizeof body,
		 "{\"marks\":[%s,{\"upn\":\"" P2 "\",\"urn\":\"" HOME "\",\"date\":\"%s\","
		 "\"session\":\"AM\",\"code\":\"L\",\"minutes_late\":\"5\"}]}",
		 good, d1);
	expect_rejected(body, 422, "/problems/invalid-marks", "/marks/1/minutes_late");
	snprintf(body, sizeof body,
		 "{\"marks\":[%s,{\"upn\":\"" P2 "\",\"urn\":\"" HOME "\",\"date\":\"%s\","
		 "\"session\":\"AM\",\"code\":\"L\",\"minutes_late\":1.5}]}",
		 good, d1);
	expect_rejected(body, 422, "/problems/invalid-marks", "/marks/1/minutes_late");
	snprintf(body, sizeof body,
		 "{\"marks\":[%s,{\"upn\":\"" P2 "\",\"urn\":\"" HOME "\",\"date\":\"%s\","
		 "\"session\":\"AM\",\"code\":\"/\",\"comment\":5,\"reason\":true}]}",
		 good, d1);
	expect_rejected(body, 422, "/problems/invalid-marks", "/marks/1/reason");
	snprintf(body, sizeof body,
		 "{\"marks\":[%s,{\"upn\":\"" P2 "\",\"urn\":\"" HOME "\",\"date\":\"%s\","
		 "\"session\":\"AM\",\"code\":\"/\",\"minutesLate\":5}]}",
		 good, d1);
	expect_rejected(body, 422, "/problems/invalid-marks", "/marks/1/minutesLate");
	/* Text PostgreSQL would refuse: not UTF-8. */
	snprintf(body, sizeof body,
		 "{\"marks\":[{\"upn\":\"" P2 "\",\"urn\":\"" HOME "\",\"date\":\"%s\","
		 "\"session\":\"AM\",\"code\":\"/\",\"comment\":\"bad \xff\xfe \xc0\xaf\"}]}",
		 d1);
	expect_rejected(body, 400, "/problems/invalid-json", NULL);
	/* The wrong media type. */
	struct th_resp r;
	const char *hdr[] = {"Content-Type: text/plain", NULL};
	char u[256], auth[128];
	snprintf(u, sizeof u, "%s/v1/marks", d.base);
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", admin);
	const char *hdrs[] = {hdr[0], auth, NULL};
	ck_assert_int_eq(th_http("POST", u, good, strlen(good), hdrs, &r), 0);
	th_assert_problem(&r, 415);
	th_resp_free(&r);
	ck_assert_int_eq(qn("SELECT count(*) FROM marks"), 0);
	ck_assert_int_eq(qn("SELECT count(*) FROM mark_history"), 0);
	ck_assert_int_eq(qn("SELECT count(*) FROM events"), 0);
	/* An empty batch is fine and does nothing. */
	th_api(&d, "POST", "/v1/marks", admin, "{\"marks\":[]}", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "results")), 0);
	th_resp_free(&r);
}
END_TEST

/* n items for P2 on D1 AM (all valid, one session named n times). */
static char *batch_of(int n)
{
	char it[512];
	item(it, sizeof it, P2, HOME, d1, "AM", "/", "");
	size_t cap = (size_t)n * (strlen(it) + 1) + 64;
	char *body = malloc(cap);
	size_t len = (size_t)snprintf(body, cap, "{\"marks\":[");
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(body + len, cap - len, "%s%s", i ? "," : "", it);
	snprintf(body + len, cap - len, "]}");
	return body;
}

START_TEST(test_thousand_mark_limit)
{
	char *body = batch_of(1001);
	struct th_resp r;
	th_api(&d, "POST", "/v1/marks", admin, body, NULL, &r);
	free(body);
	th_assert_problem(&r, 413);
	ck_assert_str_eq(cJSON_GetObjectItem(r.json, "type")->valuestring,
			 "/problems/too-many-marks");
	th_resp_free(&r);
	ck_assert_int_eq(qn("SELECT count(*) FROM marks"), 0);
	ck_assert_int_eq(qn("SELECT count(*) FROM events"), 0);

	body = batch_of(1000);
	th_api(&d, "POST", "/v1/marks", admin, body, NULL, &r);
	free(body);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(count_of(&r, "created"), 1);
	ck_assert_int_eq(count_of(&r, "unchanged"), 999);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "results")), 1000);
	ck_assert_str_eq(status_at(&r, 999), "unchanged");
	th_resp_free(&r);
	ck_assert_int_eq(qn("SELECT count(*) FROM mark_history"), 1);
}
END_TEST

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
	th_api(&d, "GET", history_path(path, sizeof path, P1, d1, "PM"), key_pru, NULL, NULL, &r);
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
	th_api(&d, "GET", history_path(path, sizeof path, P1, d1, "PM"), admin, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "history")), 4);
	th_resp_free(&r);
	th_api(&d, "GET", history_path(path, sizeof path, P2, d1, "PM"), key_home, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "history")), 0);
	th_resp_free(&r);

	/* Out of scope and unknown look the same: 404. */
	th_api(&d, "GET", history_path(path, sizeof path, P2, d1, "PM"), key_pru, NULL, NULL, &r);
	th_assert_problem(&r, 404);
	th_resp_free(&r);
	/* P1 was not yet on PRU's roll 40 days ago. */
	char early[16];
	q1("SELECT (dualreg_today() - 40)::text", early, sizeof early);
	th_api(&d, "GET", history_path(path, sizeof path, P1, early, "AM"), key_pru, NULL, NULL,
	       &r);
	th_assert_problem(&r, 404);
	th_resp_free(&r);
	th_api(&d, "GET", history_path(path, sizeof path, "A801200005008", d1, "PM"), admin, NULL,
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
		th_api(&d, "GET", history_path(path, sizeof path, bad[i].upn, bad[i].date,
					       bad[i].session),
		       admin, NULL, NULL, &r);
		th_assert_problem(&r, 422);
		ck_assert_str_eq(cJSON_GetObjectItem(r.json, "type")->valuestring, bad[i].slug);
		th_resp_free(&r);
	}
	th_api(&d, "GET", history_path(path, sizeof path, P1, d1, "PM"), NULL, NULL, NULL, &r);
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
	snprintf(u, sizeof u, "%s/v1/marks", d.base);
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", admin);
	const char *hdrs[] = {"Content-Type: application/json", auth, NULL};
	for (int i = 0; i < POSTS_EACH; i++) {
		char extra[64];
		snprintf(extra, sizeof extra, ", \"reason\": \"writer %d post %d\"", w->id, i);
		item(it, sizeof it, P2, HOME, d1, "AM", codes[(w->id + i) % 4], extra);
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
	th_sql(url, sql);
	ck_assert_int_eq(qn("SELECT dualreg_derive_day(from_date) FROM school_closures"), 1);
	ck_assert_int_eq(qn("SELECT count(*) FROM marks m JOIN school_closures c ON m.date = "
			    "c.from_date AND m.urn = '" HOME "'"),
			 1);

	/* While one transaction runs it, another returns NULL at once. */
	PGconn *a = PQconnectdb(url), *b = PQconnectdb(url);
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
	while (th_now() < deadline && !th_daemon_log_contains(&d, "msg=\"derive job done\""))
		usleep(50 * 1000);
	ck_assert_msg(th_daemon_log_contains(&d, "msg=\"derive job done\""), "see %s",
		      d.log_path);
	/* Today, on a school day, P1 is expected at HOME all day (D1's weekday is not
	 * today's): PRU holds two Ds. */
	long want = qn("SELECT CASE WHEN extract(isodow FROM dualreg_today()) < 6 THEN 2 ELSE 0 END");
	ck_assert_int_eq(qn("SELECT count(*) FROM marks WHERE source = 'derived' AND date = "
			    "dualreg_today()"),
			 want);
	char line[64];
	snprintf(line, sizeof line, "date=%s changed=%ld", today, want);
	ck_assert_msg(th_daemon_log_contains(&d, line), "no \"%s\" in %s", line, d.log_path);
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
	th_sql(url, sql);
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
	while (th_now() < deadline && !th_daemon_log_contains(&d, "msg=\"derive job scheduled\""))
		usleep(50 * 1000);
	ck_assert(th_daemon_log_contains(&d, "at=00:05"));
	FILE *f = fopen(d.conf_path, "a");
	ck_assert_ptr_nonnull(f);
	fputs("[jobs]\nderive_at = 04:30\n", f);
	fclose(f);
	ck_assert_int_eq(kill(d.pid, SIGHUP), 0);
	deadline = th_now() + 10.0;
	while (th_now() < deadline && !th_daemon_log_contains(&d, "at=04:30"))
		usleep(50 * 1000);
	ck_assert_msg(th_daemon_log_contains(&d, "at=04:30"), "see %s", d.log_path);
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
	ck_assert_msg(strstr(out, "[jobs] derive_at: expected a time of day HH:MM") != NULL, "%s",
		      out);
}
END_TEST

Suite *marks_suite(void)
{
	Suite *s = suite_create("marks");
	TCase *tc = tcase_create("api");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_created_unchanged_amended);
	tcase_add_test(tc, test_n_is_replaced_without_reason);
	tcase_add_test(tc, test_same_session_twice_in_a_batch);
	tcase_add_test(tc, test_derived_d_follows_and_gives_way);
	tcase_add_test(tc, test_every_rule);
	tcase_add_test(tc, test_sql_level_rules);
	tcase_add_test(tc, test_school_key_writes_only_its_own_register);
	tcase_add_test(tc, test_malformed_envelope_stores_nothing);
	tcase_add_test(tc, test_thousand_mark_limit);
	tcase_add_test(tc, test_history_endpoint);
	tcase_add_test(tc, test_concurrent_posts_lose_nothing);
	suite_add_tcase(s, tc);

	TCase *job = tcase_create("job");
	tcase_set_timeout(job, 60);
	tcase_add_checked_fixture(job, setup_job, teardown);
	tcase_add_test(job, test_derive_job_runs_at_startup);
	tcase_add_test(job, test_derive_job_reschedules_on_reload);
	suite_add_tcase(s, job);

	TCase *sql = tcase_create("sql");
	tcase_set_timeout(sql, 60);
	tcase_add_checked_fixture(sql, fixtures, NULL);
	tcase_add_test(sql, test_derive_day_function);
	tcase_add_test(sql, test_batch_plan_matches_day_plan);
	tcase_add_test(sql, test_derive_job_bad_config);
	suite_add_tcase(s, sql);
	return s;
}
