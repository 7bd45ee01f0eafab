/*
 * reads: the read side of the API against the real daemon and database. Fixtures are
 * written with SQL (schools, pupils, a dual registration with a schedule, derived D and
 * real marks at both schools, events through dualreg_emit), dated in the previous
 * school week so that every weekday is in the past:
 *
 *   pupil B801200005001 "Ann Able": main 100001, subsidiary 100002 (the PRU), expected
 *   at the PRU Mon AM/PM, Tue AM/PM and Thu PM (mask 143), at 100001 otherwise;
 *   100001 is closed on Friday.
 *            AM                         PM
 *   Mon  PRU /    (100001 D)        PRU V  + 100001 /  (conflict)
 *   Tue  PRU I    (100001 D)        PRU N   (100001 D)
 *   Wed  none     (PRU D)           100001 L 10 min (PRU D)
 *   Thu  100001 G (PRU D)           PRU /   (100001 D)
 *   Fri  closed   (PRU D)           closed  (PRU D)
 *   pupil Q801200005002 "Ben Aardvark": main 100001 only, no marks.
 *   pupil E801200005003 "Cat Other": main 100003 only.
 *
 * Covered: every status state, conflict, ETag and 304, the scope matrix (admin, own
 * school, other school, no key), input errors, the attendance summary (D never a
 * possible session), the register, and the change feed: paging, cursors, scope, long
 * polls woken by NOTIFY, expiry, a transaction committing late with a smaller id, a
 * transaction holding the horizon back, the listener reconnecting, a client leaving
 * mid-poll, and draining with a poll in flight (under valgrind unless sanitized).
 */
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness.h"
#include "../suites.h"

#define P1 "B801200005001"
#define P2 "Q801200005002"
#define P3 "E801200005003"

static char url[1024];
static struct th_daemon d;
static char admin[64], k1[64], k2[64], k3[64];
/* mon..sat of the previous week, the registrations' start, a day before it */
static char mon[11], tue[11], wed[11], thu[11], fri[11], sat[11], start[11], before[11];
static char today[11];

/* First value of a one-row query (blocking, test side). */
static void q1(const char *sql, char *out, size_t len)
{
	PGconn *c = PQconnectdb(url);
	ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
	PGresult *r = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "%s: %s", sql,
		      PQresultErrorMessage(r));
	snprintf(out, len, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
}

static void day_at(int offset, char out[11])
{
	char sql[160];
	snprintf(sql, sizeof sql,
		 "SELECT (date_trunc('week', dualreg_today())::date - 7 + %d)::text", offset);
	q1(sql, out, 11);
}

static void fixtures(void)
{
	day_at(0, mon);
	day_at(1, tue);
	day_at(2, wed);
	day_at(3, thu);
	day_at(4, fri);
	day_at(5, sat);
	day_at(-30, start);
	day_at(-40, before);
	q1("SELECT dualreg_today()::text", today, sizeof today);
	char sql[6000];
	snprintf(sql, sizeof sql,
		 "INSERT INTO schools (urn, name, kind) VALUES ('100001', 'Home High', "
		 "'mainstream'), ('100002', 'Park PRU', 'pru'), ('100003', 'Other Academy', "
		 "'mainstream');"
		 "INSERT INTO school_closures VALUES ('100001', '%s', '%s', 'training day');"
		 "INSERT INTO pupils VALUES ('" P1 "', 'Ann', 'Able', '2012-01-01'),"
		 " ('" P2 "', 'Ben', 'Aardvark', '2012-02-02'),"
		 " ('" P3 "', 'Cat', 'Other', '2012-03-03');"
		 "INSERT INTO registrations (upn, urn, role, start_date) VALUES"
		 " ('" P1 "', '100001', 'main', '%s'), ('" P1 "', '100002', 'subsidiary', '%s'),"
		 " ('" P2 "', '100001', 'main', '%s'), ('" P3 "', '100003', 'main', '%s');"
		 "INSERT INTO registration_schedules SELECT id, start_date, 143 FROM registrations"
		 " WHERE role = 'subsidiary';"
		 "SELECT dualreg_emit('registration.created', '" P1 "', ARRAY['100001','100002'],"
		 " '{\"upn\":\"" P1 "\"}');"
		 "SELECT dualreg_emit('registration.created', '" P3 "', ARRAY['100003'],"
		 " '{\"upn\":\"" P3 "\"}');"
		 "SELECT dualreg_derive_d('" P1 "', '%s', '%s');"
		 "INSERT INTO marks (upn, urn, date, session, code, minutes_late, source) VALUES"
		 " ('" P1 "', '100002', '%s', 'AM', '/', NULL, 'api'),"
		 " ('" P1 "', '100002', '%s', 'PM', 'V', NULL, 'api'),"
		 " ('" P1 "', '100001', '%s', 'PM', '/', NULL, 'api'),"
		 " ('" P1 "', '100002', '%s', 'AM', 'I', NULL, 'api'),"
		 " ('" P1 "', '100002', '%s', 'PM', 'N', NULL, 'api'),"
		 " ('" P1 "', '100001', '%s', 'PM', 'L', 10, 'api'),"
		 " ('" P1 "', '100001', '%s', 'AM', 'G', NULL, 'api'),"
		 " ('" P1 "', '100002', '%s', 'PM', '/', NULL, 'api')"
		 " ON CONFLICT (upn, date, session, urn) DO UPDATE SET code = EXCLUDED.code,"
		 " source = EXCLUDED.source, minutes_late = EXCLUDED.minutes_late;"
		 "SELECT dualreg_emit('mark.recorded', '" P1 "', ARRAY['100001','100002'],"
		 " jsonb_build_object('upn', '" P1 "', 'urn', '100002', 'date', '%s', 'session', 'AM',"
		 " 'code', '/', 'previous_code', NULL));"
		 "SELECT dualreg_emit('mark.conflict', '" P1 "', ARRAY['100001','100002'],"
		 " jsonb_build_object('upn', '" P1 "', 'date', '%s', 'session', 'PM'));",
		 fri, fri, start, start, start, start, mon, fri, mon, mon, mon, tue, tue, wed, thu,
		 thu, mon, mon);
	th_sql(url, sql);
}

static void setup(void)
{
	th_db_create_migrated(url, sizeof url);
	fixtures();
	/* Today's derived D marks, as the daemon's start-up run would make them: made
	 * here, before any test reads the feed, so that run finds nothing to change. */
	th_sql(url, "SELECT dualreg_derive_day(dualreg_today())");
	th_key_create(url, NULL, admin, sizeof admin);
	th_key_create(url, "100001", k1, sizeof k1);
	th_key_create(url, "100002", k2, sizeof k2);
	th_key_create(url, "100003", k3, sizeof k3);
}

static void teardown(void)
{
	if (d.pid > 0)
		th_daemon_stop(&d, SIGKILL);
}

/* A short request_timeout proves that long polls extend their own deadline. */
static void start_daemon(void)
{
	th_daemon_start(&d, url, "[server]\nrequest_timeout = 1s\n", false);
}

static void get(const char *token, const char *path, struct th_resp *r)
{
	th_api(&d, "GET", path, token, NULL, NULL, r);
}

static cJSON *item(const cJSON *o, const char *k)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	ck_assert_msg(v != NULL, "no \"%s\"", k);
	return v;
}

static const char *str(const cJSON *o, const char *k)
{
	cJSON *v = item(o, k);
	ck_assert_msg(cJSON_IsString(v), "\"%s\" is not a string", k);
	return v->valuestring;
}

static double num(const cJSON *o, const char *k)
{
	cJSON *v = item(o, k);
	ck_assert_msg(cJSON_IsNumber(v), "\"%s\" is not a number", k);
	return v->valuedouble;
}

static void assert_slug(const struct th_resp *r, long status, const char *slug,
			const char *pointer)
{
	th_assert_problem(r, status);
	char type[96];
	snprintf(type, sizeof type, "/problems/%s", slug);
	ck_assert_msg(strcmp(str(r->json, "type"), type) == 0, "%s", r->body);
	if (pointer != NULL) {
		cJSON *errs = item(r->json, "errors");
		bool found = false;
		cJSON *e;
		cJSON_ArrayForEach(e, errs) found |= strcmp(str(e, "pointer"), pointer) == 0;
		ck_assert_msg(found, "no error at %s: %s", pointer, r->body);
	}
}

/* ---- status ---- */

static const cJSON *session_of(const cJSON *status, int i)
{
	const cJSON *s = cJSON_GetArrayItem(item(status, "sessions"), i);
	ck_assert_ptr_nonnull(s);
	return s;
}

static void status_of(const char *token, const char *date, struct th_resp *r)
{
	char path[128];
	snprintf(path, sizeof path, "/v1/pupils/" P1 "/status?date=%s", date);
	get(token, path, r);
	ck_assert_msg(r->status == 200, "%s: %ld %s", path, r->status, r->body);
}

START_TEST(test_status_states_and_marks)
{
	start_daemon();
	struct th_resp r;

	/* Monday: at the PRU; AM present with a derived D at home, PM a conflict. */
	status_of(k1, mon, &r);
	ck_assert_str_eq(str(r.json, "upn"), P1);
	ck_assert_str_eq(str(r.json, "date"), mon);
	ck_assert_int_eq(cJSON_GetArraySize(item(r.json, "sessions")), 2);
	const cJSON *am = session_of(r.json, 0), *pm = session_of(r.json, 1);
	ck_assert_str_eq(str(am, "session"), "AM");
	ck_assert_str_eq(str(am, "expected_urn"), "100002");
	ck_assert_str_eq(str(am, "main_urn"), "100001");
	ck_assert_str_eq(str(am, "subsidiary_urn"), "100002");
	ck_assert_str_eq(str(am, "state"), "present");
	ck_assert(cJSON_IsFalse(item(am, "conflict")));
	const cJSON *marks = item(am, "marks");
	ck_assert_int_eq(cJSON_GetArraySize(marks), 2);
	ck_assert_str_eq(str(item(marks, "100001"), "code"), "D");
	ck_assert_str_eq(str(item(marks, "100001"), "source"), "derived");
	ck_assert_str_eq(str(item(marks, "100001"), "category"), "not_possible");
	ck_assert_str_eq(str(item(marks, "100002"), "code"), "/");
	ck_assert_str_eq(str(item(marks, "100002"), "category"), "present");
	ck_assert_str_eq(str(item(marks, "100002"), "source"), "api");
	ck_assert(cJSON_IsNull(item(item(marks, "100002"), "minutes_late")));
	ck_assert(cJSON_IsString(item(item(marks, "100002"), "recorded_at")));
	ck_assert_str_eq(str(pm, "state"), "aea");
	ck_assert(cJSON_IsTrue(item(pm, "conflict")));
	ck_assert_str_eq(str(item(item(pm, "marks"), "100001"), "code"), "/");
	ck_assert_str_eq(str(item(item(pm, "marks"), "100002"), "code"), "V");
	th_resp_free(&r);

	/* Tuesday: authorised and unauthorised absences at the PRU. */
	status_of(k2, tue, &r);
	ck_assert_str_eq(str(session_of(r.json, 0), "state"), "absent");
	ck_assert_str_eq(str(session_of(r.json, 1), "state"), "absent");
	ck_assert(cJSON_IsFalse(item(session_of(r.json, 0), "conflict")));
	th_resp_free(&r);

	/* Wednesday: at home; AM nothing there yet (the PRU's D is not a real mark). */
	status_of(admin, wed, &r);
	am = session_of(r.json, 0);
	pm = session_of(r.json, 1);
	ck_assert_str_eq(str(am, "expected_urn"), "100001");
	ck_assert_str_eq(str(am, "state"), "unmarked");
	ck_assert(cJSON_IsNull(item(item(am, "marks"), "100001")));
	ck_assert_str_eq(str(item(item(am, "marks"), "100002"), "code"), "D");
	ck_assert_str_eq(str(pm, "state"), "present");
	ck_assert_int_eq((int)num(item(item(pm, "marks"), "100001"), "minutes_late"), 10);
	th_resp_free(&r);

	/* Friday: the expected school is closed; Saturday: a weekend. */
	status_of(k1, fri, &r);
	ck_assert_str_eq(str(session_of(r.json, 0), "state"), "closed");
	ck_assert_str_eq(str(session_of(r.json, 0), "expected_urn"), "100001");
	ck_assert_str_eq(str(session_of(r.json, 1), "state"), "closed");
	th_resp_free(&r);
	status_of(k1, sat, &r);
	ck_assert_str_eq(str(session_of(r.json, 0), "state"), "closed");
	ck_assert(cJSON_IsNull(item(session_of(r.json, 0), "expected_urn")));
	ck_assert_str_eq(str(session_of(r.json, 1), "main_urn"), "100001");
	th_resp_free(&r);

	/* Before the registrations: not on roll (admin only; a school key is out of scope). */
	status_of(admin, before, &r);
	for (int i = 0; i < 2; i++) {
		ck_assert_str_eq(str(session_of(r.json, i), "state"), "not_on_roll");
		ck_assert(cJSON_IsNull(item(session_of(r.json, i), "main_urn")));
		ck_assert_int_eq(cJSON_GetArraySize(item(session_of(r.json, i), "marks")), 0);
	}
	th_resp_free(&r);

	/* No date: today. */
	get(k1, "/v1/pupils/" P1 "/status", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(str(r.json, "date"), today);
	th_resp_free(&r);
}
END_TEST

static void sha256_hex(const char *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;
	EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

START_TEST(test_status_etag)
{
	start_daemon();
	struct th_resp r;
	char path[128], etag[128], want[70], hex[65], inm[200];
	snprintf(path, sizeof path, "/v1/pupils/" P1 "/status?date=%s", mon);
	get(k1, path, &r);
	ck_assert_int_eq(r.status, 200);
	sha256_hex(r.body, r.body_len, hex);
	snprintf(want, sizeof want, "\"%s\"", hex);
	ck_assert_str_eq(r.etag, want); /* strong: quoted, no W/ */
	snprintf(etag, sizeof etag, "%s", r.etag);
	th_resp_free(&r);

	/* The same representation again: same tag. */
	get(k1, path, &r);
	ck_assert_str_eq(r.etag, etag);
	th_resp_free(&r);

	snprintf(inm, sizeof inm, "If-None-Match: %s", etag);
	const char *h1[] = {inm, NULL};
	th_api(&d, "GET", path, k1, NULL, h1, &r);
	ck_assert_int_eq(r.status, 304);
	ck_assert_uint_eq(r.body_len, 0);
	ck_assert_str_eq(r.etag, etag);
	th_resp_free(&r);

	snprintf(inm, sizeof inm, "If-None-Match: \"other\", W/%s", etag);
	const char *h2[] = {inm, NULL};
	th_api(&d, "GET", path, k1, NULL, h2, &r);
	ck_assert_int_eq(r.status, 304);
	th_resp_free(&r);

	const char *h3[] = {"If-None-Match: \"0000\"", NULL};
	th_api(&d, "GET", path, k1, NULL, h3, &r);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);

	/* A change to a mark changes the tag: the old one no longer matches. */
	char sql[256];
	snprintf(sql, sizeof sql,
		 "UPDATE marks SET code = 'L', minutes_late = 5 WHERE upn = '" P1 "' AND "
		 "urn = '100002' AND date = '%s' AND session = 'AM'",
		 mon);
	th_sql(url, sql);
	snprintf(inm, sizeof inm, "If-None-Match: %s", etag);
	/* The change reaches the daemon as a notification; wait for it (bounded). */
	double deadline = th_now() + 5;
	for (;;) {
		th_api(&d, "GET", path, k1, NULL, h1, &r);
		if (r.status != 304 || th_now() > deadline)
			break;
		th_resp_free(&r);
		usleep(20 * 1000);
	}
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_ne(r.etag, etag);
	ck_assert_str_eq(str(item(item(session_of(r.json, 0), "marks"), "100002"), "code"), "L");
	th_resp_free(&r);
}
END_TEST

START_TEST(test_status_reads_own_write_at_once)
{
	/* A status read fills the in-memory copy; a mark written through this daemon is
	 * visible to the very next read, without waiting for any notification. */
	start_daemon();
	char path[128];
	snprintf(path, sizeof path, "/v1/pupils/" P1 "/status?date=%s", tue);
	struct th_resp r;
	th_api(&d, "GET", path, admin, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	const cJSON *am = session_of(r.json, 0);
	char expected[8];
	snprintf(expected, sizeof expected, "%s", str(am, "expected_urn"));
	th_resp_free(&r);
	th_api(&d, "GET", path, admin, NULL, NULL, &r); /* served from memory */
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);
	char body[400];
	snprintf(body, sizeof body,
		 "{\"marks\": [{\"upn\": \"" P1 "\", \"urn\": \"%s\", \"date\": \"%s\", "
		 "\"session\": \"AM\", \"code\": \"M\", \"reason\": \"dentist letter\"}]}",
		 expected, tue);
	th_api(&d, "POST", "/v1/marks", admin, body, NULL, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	th_resp_free(&r);
	th_api(&d, "GET", path, admin, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(str(item(item(session_of(r.json, 0), "marks"), expected), "code"), "M");
	th_resp_free(&r);
}
END_TEST

START_TEST(test_status_scope_and_errors)
{
	start_daemon();
	struct th_resp r;
	char path[128];
	snprintf(path, sizeof path, "/v1/pupils/" P1 "/status?date=%s", mon);

	get(NULL, path, &r);
	th_assert_problem(&r, 401);
	th_resp_free(&r);
	/* Another school's pupil: 404, exactly as for a pupil that does not exist. */
	get(k3, path, &r);
	assert_slug(&r, 404, "unknown-pupil", NULL);
	char detail_other[256];
	snprintf(detail_other, sizeof detail_other, "%s", str(r.json, "detail"));
	th_resp_free(&r);
	get(admin, "/v1/pupils/U801200005004/status", &r);
	assert_slug(&r, 404, "unknown-pupil", NULL);
	ck_assert_str_eq(str(r.json, "detail"), detail_other);
	th_resp_free(&r);
	/* Own pupil, but on a date before it was on this school's roll. */
	snprintf(path, sizeof path, "/v1/pupils/" P1 "/status?date=%s", before);
	get(k1, path, &r);
	assert_slug(&r, 404, "unknown-pupil", NULL);
	th_resp_free(&r);
	/* Other school's key on its own pupil works; PRU key on P1 works. */
	get(k3, "/v1/pupils/" P3 "/status", &r);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);

	get(admin, "/v1/pupils/A801200005001/status", &r);
	assert_slug(&r, 422, "invalid-upn", "/path/upn");
	ck_assert_msg(strstr(r.body, "should be B") != NULL, "%s", r.body);
	th_resp_free(&r);
	get(admin, "/v1/pupils/B80120000/status", &r);
	assert_slug(&r, 422, "invalid-upn", "/path/upn");
	th_resp_free(&r);
	const char *bad_dates[] = {"2026-02-30", "yesterday", "", "2026-1-01",
				   "2026-01-01T00:00", "20260101"};
	for (size_t i = 0; i < sizeof bad_dates / sizeof bad_dates[0]; i++) {
		snprintf(path, sizeof path, "/v1/pupils/" P1 "/status?date=%s", bad_dates[i]);
		get(k1, path, &r);
		assert_slug(&r, 422, "invalid-date", "/query/date");
		th_resp_free(&r);
	}
}
END_TEST

/* ---- register ---- */

START_TEST(test_register)
{
	start_daemon();
	struct th_resp r;
	char path[160];
	snprintf(path, sizeof path, "/v1/schools/100001/register?date=%s&session=PM", mon);
	get(k1, path, &r);
	ck_assert_msg(r.status == 200, "%s", r.body);
	ck_assert_str_eq(str(r.json, "urn"), "100001");
	ck_assert_str_eq(str(r.json, "date"), mon);
	ck_assert_str_eq(str(r.json, "session"), "PM");
	ck_assert(cJSON_IsFalse(item(r.json, "closed")));
	cJSON *pupils = item(r.json, "pupils");
	ck_assert_int_eq(cJSON_GetArraySize(pupils), 2);
	/* Ordered by family name: Aardvark, then Able. */
	cJSON *a = cJSON_GetArrayItem(pupils, 0), *b = cJSON_GetArrayItem(pupils, 1);
	ck_assert_str_eq(str(a, "upn"), P2);
	ck_assert_str_eq(str(a, "family_name"), "Aardvark");
	ck_assert_str_eq(str(a, "role"), "main");
	ck_assert(cJSON_IsNull(item(a, "mark")));
	ck_assert_str_eq(str(a, "expected_urn"), "100001");
	ck_assert(cJSON_IsTrue(item(a, "expected_here")));
	ck_assert(cJSON_IsNull(item(a, "other_urn")));
	ck_assert(cJSON_IsNull(item(a, "other_mark")));
	ck_assert_str_eq(str(b, "upn"), P1);
	ck_assert_str_eq(str(b, "given_name"), "Ann");
	ck_assert_str_eq(str(item(b, "mark"), "code"), "/");
	ck_assert_str_eq(str(b, "expected_urn"), "100002");
	ck_assert(cJSON_IsFalse(item(b, "expected_here")));
	ck_assert_str_eq(str(b, "other_urn"), "100002");
	ck_assert_str_eq(str(item(b, "other_mark"), "code"), "V");
	th_resp_free(&r);

	/* The PRU's register: only the dual-registered pupil, expected there. */
	snprintf(path, sizeof path, "/v1/schools/100002/register?date=%s&session=AM", wed);
	get(k2, path, &r);
	ck_assert_int_eq(r.status, 200);
	pupils = item(r.json, "pupils");
	ck_assert_int_eq(cJSON_GetArraySize(pupils), 1);
	b = cJSON_GetArrayItem(pupils, 0);
	ck_assert_str_eq(str(item(b, "mark"), "code"), "D");
	ck_assert(cJSON_IsFalse(item(b, "expected_here")));
	ck_assert_str_eq(str(b, "role"), "subsidiary");
	ck_assert_str_eq(str(b, "other_urn"), "100001");
	ck_assert(cJSON_IsNull(item(b, "other_mark")));
	th_resp_free(&r);

	/* Closed day; and a day before anyone was on roll: an empty register. */
	snprintf(path, sizeof path, "/v1/schools/100001/register?date=%s&session=AM", fri);
	get(admin, path, &r);
	ck_assert(cJSON_IsTrue(item(r.json, "closed")));
	th_resp_free(&r);
	snprintf(path, sizeof path, "/v1/schools/100001/register?date=%s&session=AM", before);
	get(admin, path, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(cJSON_GetArraySize(item(r.json, "pupils")), 0);
	th_resp_free(&r);
}
END_TEST

START_TEST(test_register_scope_and_errors)
{
	start_daemon();
	struct th_resp r;
	char path[160];
	snprintf(path, sizeof path, "/v1/schools/100001/register?date=%s&session=AM", mon);
	get(NULL, path, &r);
	th_assert_problem(&r, 401);
	th_resp_free(&r);
	get(k2, path, &r); /* another school's register */
	assert_slug(&r, 404, "unknown-school", NULL);
	th_resp_free(&r);
	get(admin, path, &r);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);
	snprintf(path, sizeof path, "/v1/schools/999999/register?date=%s&session=AM", mon);
	get(admin, path, &r);
	assert_slug(&r, 404, "unknown-school", NULL);
	th_resp_free(&r);
	get(admin, "/v1/schools/12345/register?date=2026-01-05&session=AM", &r);
	assert_slug(&r, 422, "invalid-urn", "/path/urn");
	th_resp_free(&r);
	get(k1, "/v1/schools/100001/register?session=AM", &r);
	assert_slug(&r, 422, "invalid-date", "/query/date");
	th_resp_free(&r);
	get(k1, "/v1/schools/100001/register?date=2026-13-01&session=AM", &r);
	assert_slug(&r, 422, "invalid-date", "/query/date");
	th_resp_free(&r);
	get(k1, "/v1/schools/100001/register?date=2026-01-05", &r);
	assert_slug(&r, 422, "invalid-session", "/query/session");
	th_resp_free(&r);
	get(k1, "/v1/schools/100001/register?date=2026-01-05&session=am", &r);
	assert_slug(&r, 422, "invalid-session", "/query/session");
	th_resp_free(&r);
}
END_TEST

/* ---- attendance ---- */

static void assert_summary(const cJSON *s, int possible, int present, int aea, int authorised,
			   int unauthorised, int not_possible, double rate)
{
	ck_assert_int_eq((int)num(s, "possible"), possible);
	ck_assert_int_eq((int)num(s, "present"), present);
	ck_assert_int_eq((int)num(s, "aea"), aea);
	ck_assert_int_eq((int)num(s, "authorised"), authorised);
	ck_assert_int_eq((int)num(s, "unauthorised"), unauthorised);
	ck_assert_int_eq((int)num(s, "not_possible"), not_possible);
	if (rate < 0)
		ck_assert(cJSON_IsNull(item(s, "rate")));
	else
		ck_assert_double_eq_tol(num(s, "rate"), rate, 1e-9);
}

START_TEST(test_attendance_summary)
{
	start_daemon();
	struct th_resp r;
	char path[200];
	snprintf(path, sizeof path, "/v1/pupils/" P1 "/attendance?from=%s&to=%s", mon, sat);
	get(k1, path, &r);
	ck_assert_msg(r.status == 200, "%s", r.body);
	ck_assert_str_eq(str(r.json, "upn"), P1);
	ck_assert_str_eq(str(r.json, "from"), mon);
	ck_assert_str_eq(str(r.json, "to"), sat);
	/* 7 marks at home (4 D), 10 at the PRU (5 D). */
	cJSON *marks = item(r.json, "marks");
	ck_assert_int_eq(cJSON_GetArraySize(marks), 17);
	cJSON *first = cJSON_GetArrayItem(marks, 0);
	ck_assert_str_eq(str(first, "date"), mon);
	ck_assert_str_eq(str(first, "session"), "AM");
	ck_assert_str_eq(str(first, "urn"), "100001");
	ck_assert_str_eq(str(first, "code"), "D");
	ck_assert(cJSON_IsFalse(item(first, "expected")));
	ck_assert(cJSON_IsTrue(item(cJSON_GetArrayItem(marks, 1), "expected")));
	cJSON *summary = item(r.json, "summary");
	cJSON *schools = item(summary, "schools");
	ck_assert_int_eq(cJSON_GetArraySize(schools), 2);
	/* Home: / L G possible; four D not possible. */
	assert_summary(item(schools, "100001"), 3, 2, 0, 0, 1, 4, 0.6667);
	/* PRU: / V I N / possible; five D not possible. */
	assert_summary(item(schools, "100002"), 5, 2, 1, 1, 1, 5, 0.6);
	/* Combined, each session once at its expected school: / V I N L G / = 7. */
	assert_summary(item(summary, "combined"), 7, 3, 1, 1, 2, 0, 0.5714);
	th_resp_free(&r);

	/* Nothing possible: rate null. */
	snprintf(path, sizeof path, "/v1/pupils/" P1 "/attendance?from=%s&to=%s", fri, sat);
	get(admin, path, &r);
	ck_assert_int_eq(r.status, 200);
	assert_summary(item(item(r.json, "summary"), "combined"), 0, 0, 0, 0, 0, 0, -1);
	assert_summary(item(item(item(r.json, "summary"), "schools"), "100002"), 0, 0, 0, 0, 0, 2,
		       -1);
	th_resp_free(&r);
}
END_TEST

START_TEST(test_attendance_scope_and_errors)
{
	start_daemon();
	struct th_resp r;
	char path[200];
	snprintf(path, sizeof path, "/v1/pupils/" P1 "/attendance?from=%s&to=%s", mon, fri);
	get(NULL, path, &r);
	th_assert_problem(&r, 401);
	th_resp_free(&r);
	get(k3, path, &r);
	assert_slug(&r, 404, "unknown-pupil", NULL);
	th_resp_free(&r);
	get(k2, path, &r);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);
	/* A period entirely before the registrations is out of a school key's scope. */
	snprintf(path, sizeof path, "/v1/pupils/" P1 "/attendance?from=%s&to=%s", before,
		 before);
	get(k1, path, &r);
	assert_slug(&r, 404, "unknown-pupil", NULL);
	th_resp_free(&r);

	/* Before joining 100001, the pupil was at 100003. Each school key sees only the days
	 * the pupil was on its own roll, and only the schools of those days. */
	char sql[300];
	snprintf(sql, sizeof sql,
		 "INSERT INTO registrations (upn, urn, role, start_date, end_date) VALUES "
		 "('" P1 "', '100003', 'main', '%s', ('%s'::date - 1));"
		 "INSERT INTO marks (upn, urn, date, session, code, source) VALUES "
		 "('" P1 "', '100003', '%s', 'AM', '/', 'api')",
		 before, start, before);
	th_sql(url, sql);
	snprintf(path, sizeof path, "/v1/pupils/" P1 "/attendance?from=%s&to=%s", before, fri);
	get(admin, path, &r);
	ck_assert_int_eq(cJSON_GetArraySize(item(r.json, "marks")), 18);
	ck_assert_int_eq(cJSON_GetArraySize(item(item(r.json, "summary"), "schools")), 3);
	th_resp_free(&r);
	get(k1, path, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(cJSON_GetArraySize(item(r.json, "marks")), 17);
	cJSON *schools = item(item(r.json, "summary"), "schools");
	ck_assert_int_eq(cJSON_GetArraySize(schools), 2);
	ck_assert_ptr_null(cJSON_GetObjectItem(schools, "100003"));
	th_resp_free(&r);
	get(k3, path, &r);
	ck_assert_int_eq(r.status, 200);
	cJSON *marks = item(r.json, "marks");
	ck_assert_int_eq(cJSON_GetArraySize(marks), 1);
	ck_assert_str_eq(str(cJSON_GetArrayItem(marks, 0), "urn"), "100003");
	schools = item(item(r.json, "summary"), "schools");
	ck_assert_int_eq(cJSON_GetArraySize(schools), 1);
	assert_summary(item(schools, "100003"), 1, 1, 0, 0, 0, 0, 1.0);
	th_resp_free(&r);

	get(k1, "/v1/pupils/" P1 "/attendance?from=2026-01-01", &r);
	assert_slug(&r, 422, "invalid-period", "/query/to");
	th_resp_free(&r);
	get(k1, "/v1/pupils/" P1 "/attendance?to=2026-01-01", &r);
	assert_slug(&r, 422, "invalid-period", "/query/from");
	th_resp_free(&r);
	get(k1, "/v1/pupils/" P1 "/attendance?from=2026-01-02&to=2026-01-01", &r);
	assert_slug(&r, 422, "invalid-period", "/query/to");
	th_resp_free(&r);
	get(k1, "/v1/pupils/" P1 "/attendance?from=2024-01-01&to=2025-01-01", &r);
	assert_slug(&r, 422, "invalid-period", "/query/to"); /* 367 days */
	th_resp_free(&r);
	get(admin, "/v1/pupils/" P1 "/attendance?from=2025-01-01&to=2026-01-01", &r);
	ck_assert_int_eq(r.status, 200); /* 366 days: the longest period */
	th_resp_free(&r);
	get(k1, "/v1/pupils/" P1 "/attendance?from=2026-01-01&to=2026-02-31", &r);
	assert_slug(&r, 422, "invalid-date", "/query/to");
	th_resp_free(&r);
	get(admin, "/v1/pupils/B801200005002/attendance?from=2026-01-01&to=2026-01-02", &r);
	assert_slug(&r, 422, "invalid-upn", "/path/upn");
	th_resp_free(&r);
}
END_TEST

/* ---- change feed ---- */

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

static int count_sql(const char *sql)
{
	char v[32];
	q1(sql, v, sizeof v);
	return atoi(v);
}

START_TEST(test_feed_paging_and_scope)
{
	start_daemon();
	long long ids[512];
	char cursor[128];
	/* Two events of old transactions 9 and 10 (later ids): the feed orders by
	 * transaction first, and a page spanning 9 and 10 must not sort them as text. */
	th_sql(url, "INSERT INTO events (tx, type, urns, data) VALUES "
		    "('9', 'test.early', ARRAY['100001'], '{}'), "
		    "('10', 'test.early', ARRAY['100001'], '{}')");
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
	th_sql(url, "SELECT dualreg_emit('test.next', NULL, ARRAY['100003'], '{\"n\":1}')");
	struct th_resp r;
	feed(admin, cursor, 100, 0, &r);
	ck_assert_int_eq(cJSON_GetArraySize(item(r.json, "changes")), 1);
	cJSON *c = cJSON_GetArrayItem(item(r.json, "changes"), 0);
	ck_assert_str_eq(str(c, "type"), "test.next");
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
	th_sql(url, "SELECT dualreg_emit('bulk', NULL, ARRAY['100001'], '{}') "
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
	snprintf(b->url, sizeof b->url, "%s/v1/changes?since=%s&wait=%d", d.base, since, wait);
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
	th_sql(url, "SELECT dualreg_emit('test.wake', NULL, ARRAY['100001'], '{}')");
	bg_poll_join(&b);
	ck_assert_msg(b.elapsed >= 0.4 && b.elapsed < 2.5, "took %.2f s", b.elapsed);
	cJSON *changes = item(b.resp.json, "changes");
	ck_assert_int_eq(cJSON_GetArraySize(changes), 1);
	ck_assert_str_eq(str(cJSON_GetArrayItem(changes, 0), "type"), "test.wake");
	snprintf(cursor, sizeof cursor, "%s", str(b.resp.json, "next_cursor"));
	th_resp_free(&b.resp);

	/* A school key is not woken by another school's event, but is by its own. */
	char c3[128];
	feed_end(k3, c3, sizeof c3);
	bg_poll_start(&b, k3, c3, 10);
	usleep(300 * 1000);
	th_sql(url, "SELECT dualreg_emit('test.other', NULL, ARRAY['100001'], '{}')");
	usleep(700 * 1000);
	th_sql(url, "SELECT dualreg_emit('test.mine', NULL, ARRAY['100003'], '{}')");
	bg_poll_join(&b);
	ck_assert_msg(b.elapsed >= 0.9 && b.elapsed < 3.0, "took %.2f s", b.elapsed);
	changes = item(b.resp.json, "changes");
	ck_assert_int_eq(cJSON_GetArraySize(changes), 1);
	ck_assert_str_eq(str(cJSON_GetArrayItem(changes, 0), "type"), "test.mine");
	th_resp_free(&b.resp);

	/* Several pollers at once are all woken by one event. */
	feed_end(admin, cursor, sizeof cursor);
	struct bg_poll many[4];
	for (int i = 0; i < 4; i++)
		bg_poll_start(&many[i], admin, cursor, 10);
	usleep(500 * 1000);
	th_sql(url, "SELECT dualreg_emit('test.all', NULL, ARRAY['100002'], '{}')");
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
	PGconn *c = PQconnectdb(url);
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
	PGconn *a = open_txn("SELECT dualreg_emit('test.a', NULL, ARRAY['100001'], '{}')", a_id,
			     sizeof a_id);
	th_sql(url, "SELECT dualreg_emit('test.b', NULL, ARRAY['100001'], '{}')");
	ck_assert_int_lt(atoi(a_id), count_sql("SELECT id FROM events WHERE type = 'test.b'"));
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
	ck_assert_str_eq(str(cJSON_GetArrayItem(changes, 0), "type"), "test.a");
	ck_assert_str_eq(str(cJSON_GetArrayItem(changes, 1), "type"), "test.b");
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
	th_sql(url, "SELECT dualreg_emit('test.c', NULL, ARRAY['100001'], '{}')");
	usleep(500 * 1000);
	commit_txn(x);
	bg_poll_join(&b);
	ck_assert_msg(b.elapsed >= 0.7 && b.elapsed < 4.0, "took %.2f s", b.elapsed);
	changes = item(b.resp.json, "changes");
	ck_assert_int_eq(cJSON_GetArraySize(changes), 1);
	ck_assert_str_eq(str(cJSON_GetArrayItem(changes, 0), "type"), "test.c");
	th_resp_free(&b.resp);
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
				   "WHERE datname = current_database() AND query LIKE 'LISTEN%'");
		if (killed == 0)
			usleep(50 * 1000);
	}
	ck_assert_int_eq(killed, 1);
	deadline = th_now() + 10;
	while (!th_daemon_log_contains(&d, "change listener reconnected") && th_now() < deadline)
		usleep(50 * 1000);
	ck_assert(th_daemon_log_contains(&d, "change listener lost its connection"));
	ck_assert(th_daemon_log_contains(&d, "change listener reconnected"));

	struct bg_poll b;
	bg_poll_start(&b, admin, cursor, 10);
	usleep(500 * 1000);
	th_sql(url, "SELECT dualreg_emit('test.after', NULL, ARRAY['100001'], '{}')");
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
		 d.port, cursor, admin);
	char *const argv[] = {"/bin/bash", "-c", cmd, NULL};
	th_run(argv, NULL, out, sizeof out);
	ck_assert_msg(strstr(out, "HTTP/1.1") == NULL, "answered early: %s", out);
	/* An event while the abandoned poll still waits, then its expiry. */
	th_sql(url, "SELECT dualreg_emit('test.gone', NULL, ARRAY['100001'], '{}')");
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
	th_daemon_start(&d, url, "[server]\nrequest_timeout = 1s\ndrain_timeout = 20s\n", vg);
	char cursor[128];
	feed_end(admin, cursor, sizeof cursor);
	struct bg_poll b;
	bg_poll_start(&b, admin, cursor, 30);
	usleep(vg ? 1500 * 1000 : 500 * 1000);
	double t0 = th_now();
	kill(d.pid, SIGTERM);
	bg_poll_join(&b);
	ck_assert_msg(th_now() - t0 < 5.0, "the poll held the drain for %.2f s", th_now() - t0);
	ck_assert_int_eq(cJSON_GetArraySize(item(b.resp.json, "changes")), 0);
	ck_assert_str_eq(str(b.resp.json, "next_cursor"), cursor);
	th_resp_free(&b.resp);
	int rc = th_daemon_wait(&d, 20);
	ck_assert_msg(rc == 0, "exit status %d (99 = valgrind found errors); see %s", rc,
		      d.log_path);
	ck_assert(th_daemon_log_contains(&d, "msg=\"drained\""));
	d.pid = 0;
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
	teardown();
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
	while (!th_daemon_log_contains(&d, "change listener reconnected") && th_now() < deadline)
		usleep(100 * 1000);
	ck_assert(th_daemon_log_contains(&d, "change listener reconnected"));
	bg_poll_start(&b, admin, cursor, 10);
	usleep(500 * 1000);
	th_sql(url, "SELECT dualreg_emit('test.back', NULL, ARRAY['100001'], '{}')");
	bg_poll_join(&b);
	ck_assert_msg(b.elapsed < 2.5, "took %.2f s", b.elapsed);
	ck_assert_int_eq(cJSON_GetArraySize(item(b.resp.json, "changes")), 1);
	th_resp_free(&b.resp);
	/* A clean exit (sanitized builds: no leak from the refused poll). */
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM), 0);
	d.pid = 0;
}
END_TEST

Suite *reads_suite(void)
{
	Suite *s = suite_create("reads");
	TCase *tc = tcase_create("reads");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_status_states_and_marks);
	tcase_add_test(tc, test_status_etag);
	tcase_add_test(tc, test_status_reads_own_write_at_once);
	tcase_add_test(tc, test_status_scope_and_errors);
	tcase_add_test(tc, test_register);
	tcase_add_test(tc, test_register_scope_and_errors);
	tcase_add_test(tc, test_attendance_summary);
	tcase_add_test(tc, test_attendance_scope_and_errors);
	tcase_add_test(tc, test_feed_paging_and_scope);
	tcase_add_test(tc, test_feed_errors);
	tcase_add_test(tc, test_long_poll_wakes_and_expires);
	tcase_add_test(tc, test_late_commit_is_not_skipped);
	tcase_add_test(tc, test_listener_reconnects);
	tcase_add_test(tc, test_client_leaves_mid_poll);
	tcase_add_test(tc, test_drain_answers_long_polls);
	suite_add_tcase(s, tc);

	/* Stops and restarts the shared cluster. */
	TCase *outage = tcase_create("outage");
	tcase_set_timeout(outage, 120);
	tcase_add_checked_fixture(outage, setup, teardown_outage);
	tcase_add_test(outage, test_feed_through_database_outage);
	suite_add_tcase(s, outage);
	return s;
}
