/*
 * reads: the read side of the API against the real daemon and database, on the fixture
 * of reads_fixture.h: every status state, conflict, ETag and 304, reading one's own
 * write at once, the scope matrix (admin, own school, other school, no key), input
 * errors, the register, and the attendance summary (D never a possible session).
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../suites.h"
#include "reads_fixture.h"

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
	th_api(&rd_d, "GET", path, k1, NULL, h1, &r);
	ck_assert_int_eq(r.status, 304);
	ck_assert_uint_eq(r.body_len, 0);
	ck_assert_str_eq(r.etag, etag);
	th_resp_free(&r);

	snprintf(inm, sizeof inm, "If-None-Match: \"other\", W/%s", etag);
	const char *h2[] = {inm, NULL};
	th_api(&rd_d, "GET", path, k1, NULL, h2, &r);
	ck_assert_int_eq(r.status, 304);
	th_resp_free(&r);

	const char *h3[] = {"If-None-Match: \"0000\"", NULL};
	th_api(&rd_d, "GET", path, k1, NULL, h3, &r);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);

	/* A change to a mark changes the tag: the old one no longer matches. */
	char sql[256];
	snprintf(sql, sizeof sql,
		 "UPDATE marks SET code = 'L', minutes_late = 5 WHERE upn = '" P1 "' AND "
		 "urn = '100002' AND date = '%s' AND session = 'AM'",
		 mon);
	th_sql(rd_url, sql);
	snprintf(inm, sizeof inm, "If-None-Match: %s", etag);
	/* The change reaches the daemon as a notification; wait for it (bounded). */
	double deadline = th_now() + 5;
	for (;;) {
		th_api(&rd_d, "GET", path, k1, NULL, h1, &r);
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
	th_api(&rd_d, "GET", path, admin, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	const cJSON *am = session_of(r.json, 0);
	char expected[8];
	snprintf(expected, sizeof expected, "%s", str(am, "expected_urn"));
	th_resp_free(&r);
	th_api(&rd_d, "GET", path, admin, NULL, NULL, &r); /* served from memory */
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);
	char body[400];
	snprintf(body, sizeof body,
		 "{\"marks\": [{\"upn\": \"" P1 "\", \"urn\": \"%s\", \"date\": \"%s\", "
		 "\"session\": \"AM\", \"code\": \"M\", \"reason\": \"dentist letter\"}]}",
		 expected, tue);
	th_api(&rd_d, "POST", "/v1/marks", admin, body, NULL, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	th_resp_free(&r);
	th_api(&rd_d, "GET", path, admin, NULL, NULL, &r);
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
	th_sql(rd_url, sql);
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

Suite *reads_suite(void)
{
	Suite *s = suite_create("reads");
	TCase *tc = tcase_create("reads");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, rd_setup, rd_teardown);
	tcase_add_test(tc, test_status_states_and_marks);
	tcase_add_test(tc, test_status_etag);
	tcase_add_test(tc, test_status_reads_own_write_at_once);
	tcase_add_test(tc, test_status_scope_and_errors);
	tcase_add_test(tc, test_register);
	tcase_add_test(tc, test_register_scope_and_errors);
	tcase_add_test(tc, test_attendance_summary);
	tcase_add_test(tc, test_attendance_scope_and_errors);
	suite_add_tcase(s, tc);
	return s;
}
