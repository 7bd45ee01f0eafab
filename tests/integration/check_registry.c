/*
 * registry: schools, closures, pupils and registrations through the real daemon and
 * database. Every validation rule and error type, the authorisation matrix (admin, the
 * school's own key, another school's key, no key), the registration.* events, and the
 * derived D marks that follow registrations, schedule versions and closures. Dates are
 * computed from the database's "today" and chosen on weekdays, so the tests hold on
 * any day of the week.
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/upn.h"
#include "../harness.h"
#include "../suites.h"

#define HOME "100001"  /* mainstream home school */
#define PRU "200002"   /* pupil referral unit */
#define OTHER "300003" /* a school with nothing to do with the pupils */

static char url[1024];
static struct th_daemon d;
static char k_admin[128], k_home[128], k_pru[128], k_other[128];
static struct th_resp R; /* the last response; freed by the next call */
static bool have_resp;

/* One API call; the body is printf-formatted (fmt NULL: no body). Returns the status. */
static long call(const char *method, const char *path, const char *token, const char *fmt,
		 ...) __attribute__((format(printf, 4, 5)));
static long call(const char *method, const char *path, const char *token, const char *fmt, ...)
{
	static char body[128 * 1024];
	if (fmt != NULL) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(body, sizeof body, fmt, ap);
		va_end(ap);
	}
	if (have_resp)
		th_resp_free(&R);
	th_api(&d, method, path, token, fmt ? body : NULL, NULL, &R);
	have_resp = true;
	return R.status;
}

/* A cell of a one-row SQL query as text ("" for NULL); valid until 16 more calls. */
static const char *q(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *q(const char *fmt, ...)
{
	static char ring[16][512];
	static unsigned next;
	char sql[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof sql, fmt, ap);
	va_end(ap);
	PGconn *c = PQconnectdb(url);
	ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
	PGresult *res = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql,
		      PQresultErrorMessage(res));
	ck_assert_msg(PQntuples(res) == 1, "%s: %d rows", sql, PQntuples(res));
	char *out = ring[next++ % 16];
	snprintf(out, 512, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	PQfinish(c);
	return out;
}

static long qnum(const char *sql)
{
	return atol(q("%s", sql));
}

static const char *jstr(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Asserts the last response is a problem with this status and slug. */
static void expect_problem(long status, const char *slug)
{
	th_assert_problem(&R, status);
	char type[96];
	snprintf(type, sizeof type, "/problems/%s", slug);
	ck_assert_msg(strcmp(jstr(R.json, "type"), type) == 0, "want %s, got %s", type, R.body);
}

/* True if the last problem names this JSON pointer. */
static bool has_pointer(const char *pointer)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(R.json, "errors"))
	{
		const char *p = jstr(e, "pointer");
		if (p != NULL && strcmp(p, pointer) == 0)
			return true;
	}
	return false;
}

static void expect_status(long status)
{
	ck_assert_msg(R.status == status, "want %ld, got %ld: %s", status, R.status, R.body);
}

/* A valid UPN with serial n (LA 801, establishment 2000, year 05). */
static void make_upn(int n, char out[14])
{
	snprintf(out, 14, "A801200005%03u", (unsigned)n % 1000u);
	char want = 'A';
	if (upn_validate(out, &want) == UPN_BAD_CHECK)
		out[0] = want;
	ck_assert_int_eq(upn_validate(out, NULL), UPN_OK);
}

static void school(const char *urn, const char *kind)
{
	ck_assert_int_eq(call("POST", "/v1/schools", k_admin,
			      "{\"urn\":\"%s\",\"name\":\"School %s\",\"kind\":\"%s\"}", urn, urn,
			      kind),
			 201);
}

static void pupil(const char *upn)
{
	long s = call("POST", "/v1/pupils", k_admin,
		      "{\"upn\":\"%s\",\"given_name\":\"Ada\",\"family_name\":\"Lovelace\","
		      "\"date_of_birth\":\"2012-12-10\"}",
		      upn);
	ck_assert_msg(s == 201 || s == 200, "%s", R.body);
}

/* Creates a registration as key; returns its id (asserting 201). */
static long reg(const char *token, const char *upn, const char *urn, const char *role,
		const char *start, const char *end, const char *schedule)
{
	char end_part[64] = "", sched_part[256] = "";
	if (end != NULL)
		snprintf(end_part, sizeof end_part, ",\"end_date\":\"%s\"", end);
	if (schedule != NULL)
		snprintf(sched_part, sizeof sched_part, ",\"schedule\":%s", schedule);
	call("POST", "/v1/registrations", token,
	     "{\"upn\":\"%s\",\"urn\":\"%s\",\"role\":\"%s\",\"start_date\":\"%s\"%s%s}", upn, urn,
	     role, start, end_part, sched_part);
	expect_status(201);
	return (long)cJSON_GetObjectItemCaseSensitive(R.json, "id")->valuedouble;
}

/* The latest weekday in [today - a, today - b] (a > b >= 0, a - b >= 6). */
static const char *weekday_between(int a, int b)
{
	return q("SELECT max(x)::date FROM generate_series(dualreg_today() - %d, "
		 "dualreg_today() - %d, interval '1 day') x WHERE extract(isodow FROM x) < 6",
		 a, b);
}

static void setup(void)
{
	have_resp = false;
	th_db_create_migrated(url, sizeof url);
	th_daemon_start(&d, url, NULL, false);
	th_key_create(url, NULL, k_admin, sizeof k_admin);
	school(HOME, "mainstream");
	school(PRU, "pru");
	school(OTHER, "mainstream");
	th_key_create(url, HOME, k_home, sizeof k_home);
	th_key_create(url, PRU, k_pru, sizeof k_pru);
	th_key_create(url, OTHER, k_other, sizeof k_other);
}

static void teardown(void)
{
	if (have_resp)
		th_resp_free(&R);
	have_resp = false;
	if (d.pid > 0)
		th_daemon_stop(&d, SIGKILL);
}

/* ---- schools ---- */

START_TEST(test_school_create_and_errors)
{
	call("POST", "/v1/schools", k_admin,
	     "{\"urn\":\"400004\",\"laestab\":\"8012345\",\"name\":\"Oak Academy\","
	     "\"kind\":\"special\",\"register_close\":{\"am\":\"09:05\",\"pm\":\"13:30\"}}");
	expect_status(201);
	ck_assert_str_eq(jstr(R.json, "urn"), "400004");
	ck_assert_str_eq(jstr(R.json, "laestab"), "8012345");
	ck_assert_str_eq(jstr(R.json, "kind"), "special");
	const cJSON *rc = cJSON_GetObjectItem(R.json, "register_close");
	ck_assert_str_eq(jstr(rc, "am"), "09:05");
	ck_assert_str_eq(jstr(rc, "pm"), "13:30");

	/* Defaults, and laestab null. */
	ck_assert_int_eq(call("GET", "/v1/schools/" HOME, k_admin, NULL), 200);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(R.json, "laestab")));
	ck_assert_str_eq(jstr(cJSON_GetObjectItem(R.json, "register_close"), "am"), "09:15");

	call("POST", "/v1/schools", k_admin,
	     "{\"urn\":\"400004\",\"name\":\"Again\",\"kind\":\"pru\"}");
	expect_problem(409, "duplicate-school");
	ck_assert(has_pointer("/urn"));
	call("POST", "/v1/schools", k_admin,
	     "{\"urn\":\"400005\",\"laestab\":\"8012345\",\"name\":\"Twin\",\"kind\":\"pru\"}");
	expect_problem(409, "duplicate-laestab");
	ck_assert(has_pointer("/laestab"));

	call("POST", "/v1/schools", k_admin, "{\"urn\":\"12345\",\"name\":\"X\",\"kind\":\"pru\"}");
	expect_problem(422, "invalid-urn");
	ck_assert(has_pointer("/urn"));
	call("POST", "/v1/schools", k_admin, "{\"urn\":123456,\"name\":\"X\",\"kind\":\"pru\"}");
	expect_problem(422, "invalid-urn");
	call("POST", "/v1/schools", k_admin,
	     "{\"urn\":\"400006\",\"laestab\":\"80123\",\"name\":\"X\",\"kind\":\"pru\"}");
	expect_problem(422, "invalid-laestab");
	ck_assert(has_pointer("/laestab"));
	call("POST", "/v1/schools", k_admin, "{\"urn\":\"400006\",\"name\":\"X\",\"kind\":\"zoo\"}");
	expect_problem(422, "invalid-field");
	ck_assert(has_pointer("/kind"));
	call("POST", "/v1/schools", k_admin, "{\"urn\":\"400006\",\"kind\":\"pru\"}");
	expect_problem(422, "missing-field");
	ck_assert(has_pointer("/name"));
	call("POST", "/v1/schools", k_admin,
	     "{\"urn\":\"400006\",\"name\":\"X\",\"kind\":\"pru\",\"register_close\":{\"am\":"
	     "\"25:00\",\"eve\":\"18:00\"}}");
	expect_problem(422, "unknown-field");
	ck_assert(has_pointer("/register_close/am"));
	ck_assert(has_pointer("/register_close/eve"));
	call("POST", "/v1/schools", k_admin,
	     "{\"urn\":\"400006\",\"name\":\"X\",\"kind\":\"pru\",\"colour\":\"red\"}");
	expect_problem(422, "unknown-field");
	ck_assert(has_pointer("/colour"));
	/* Several bad fields: each named. */
	call("POST", "/v1/schools", k_admin, "{\"urn\":\"x\",\"name\":\"\",\"kind\":1}");
	ck_assert(has_pointer("/urn") && has_pointer("/name") && has_pointer("/kind"));
	/* Nothing was stored by the refused requests. */
	ck_assert_int_eq(qnum("SELECT count(*) FROM schools"), 4);
	/* Body errors from the shared reader. */
	call("POST", "/v1/schools", k_admin, "[1]");
	expect_problem(422, "invalid-body");
	call("POST", "/v1/schools", k_admin, "{");
	expect_problem(400, "invalid-json");
}
END_TEST

START_TEST(test_school_patch)
{
	call("PATCH", "/v1/schools/" HOME, k_admin,
	     "{\"name\":\"Elm Primary\",\"laestab\":\"8011111\",\"register_close\":{\"pm\":"
	     "\"14:00\"}}");
	expect_status(200);
	ck_assert_str_eq(jstr(R.json, "name"), "Elm Primary");
	ck_assert_str_eq(jstr(R.json, "laestab"), "8011111");
	ck_assert_str_eq(jstr(cJSON_GetObjectItem(R.json, "register_close"), "am"), "09:15");
	ck_assert_str_eq(jstr(cJSON_GetObjectItem(R.json, "register_close"), "pm"), "14:00");
	ck_assert_str_eq(jstr(R.json, "kind"), "mainstream");

	call("PATCH", "/v1/schools/" PRU, k_admin, "{\"laestab\":\"8011111\"}");
	expect_problem(409, "duplicate-laestab");
	call("PATCH", "/v1/schools/" PRU, k_admin, "{\"pull_url\":\"https://mis.example\"}");
	expect_problem(422, "unknown-field");
	ck_assert(has_pointer("/pull_url"));
	call("PATCH", "/v1/schools/" PRU, k_admin, "{\"name\":null}");
	expect_problem(422, "invalid-field");
	call("PATCH", "/v1/schools/" PRU, k_admin, "{\"kind\":\"college\"}");
	expect_problem(422, "invalid-field");
	call("PATCH", "/v1/schools/999999", k_admin, "{\"name\":\"Nobody\"}");
	expect_problem(404, "not-found");
	call("PATCH", "/v1/schools/abc", k_admin, "{\"name\":\"Nobody\"}");
	expect_problem(404, "not-found");

	/* laestab null removes it. */
	call("PATCH", "/v1/schools/" HOME, k_admin, "{\"laestab\":null,\"kind\":\"ap\"}");
	expect_status(200);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(R.json, "laestab")));
	ck_assert_str_eq(jstr(R.json, "kind"), "ap");
	ck_assert_str_eq(jstr(R.json, "name"), "Elm Primary");
}
END_TEST

START_TEST(test_school_list_paging)
{
	for (int i = 0; i < 4; i++) {
		char urn[24];
		snprintf(urn, sizeof urn, "50000%d", i);
		school(urn, "mainstream");
	}
	/* 7 schools, pages of 3: 3 + 3 + 1, in URN order. */
	char path[128] = "/v1/schools?limit=3";
	char seen[8][8];
	int n = 0, pages = 0;
	for (;;) {
		ck_assert_int_eq(call("GET", path, k_admin, NULL), 200);
		pages++;
		const cJSON *s;
		cJSON_ArrayForEach(s, cJSON_GetObjectItem(R.json, "schools"))
		{
			ck_assert_int_lt(n, 8);
			snprintf(seen[n++], 8, "%s", jstr(s, "urn"));
		}
		const cJSON *next = cJSON_GetObjectItem(R.json, "next_cursor");
		ck_assert(next != NULL);
		if (cJSON_IsNull(next))
			break;
		ck_assert_int_lt(pages, 4);
		snprintf(path, sizeof path, "/v1/schools?limit=3&cursor=%s", next->valuestring);
	}
	ck_assert_int_eq(pages, 3);
	ck_assert_int_eq(n, 7);
	for (int i = 1; i < n; i++)
		ck_assert_msg(strcmp(seen[i - 1], seen[i]) < 0, "%s before %s", seen[i - 1], seen[i]);
	ck_assert_str_eq(seen[0], HOME);

	ck_assert_int_eq(call("GET", "/v1/schools", k_admin, NULL), 200);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(R.json, "schools")), 7);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(R.json, "next_cursor")));

	call("GET", "/v1/schools?limit=0", k_admin, NULL);
	expect_problem(400, "invalid-limit");
	call("GET", "/v1/schools?limit=501", k_admin, NULL);
	expect_problem(400, "invalid-limit");
	call("GET", "/v1/schools?limit=ten", k_admin, NULL);
	expect_problem(400, "invalid-limit");
	call("GET", "/v1/schools?cursor=100001", k_admin, NULL);
	expect_problem(400, "invalid-cursor");
	ck_assert_int_eq(call("GET", "/v1/schools?limit=500", k_admin, NULL), 200);
}
END_TEST

START_TEST(test_school_authz)
{
	/* No key, or an unknown key: 401 everywhere. */
	const char *paths[][2] = {{"POST", "/v1/schools"},
				  {"GET", "/v1/schools"},
				  {"GET", "/v1/schools/" HOME},
				  {"PATCH", "/v1/schools/" HOME},
				  {"GET", "/v1/schools/" HOME "/closures"},
				  {"PUT", "/v1/schools/" HOME "/closures"},
				  {"POST", "/v1/pupils"},
				  {"GET", "/v1/pupils/A801200005001"},
				  {"GET", "/v1/pupils/A801200005001/registrations"},
				  {"POST", "/v1/registrations"},
				  {"PATCH", "/v1/registrations/1"}};
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		call(paths[i][0], paths[i][1], NULL, "{}");
		expect_problem(401, "unauthorized");
		call(paths[i][0], paths[i][1], "drk_not_a_real_token_at_all", "{}");
		th_assert_problem(&R, 401);
	}
	/* Admin-only routes refuse school keys. */
	call("POST", "/v1/schools", k_home, "{\"urn\":\"600006\",\"name\":\"X\",\"kind\":\"pru\"}");
	expect_problem(403, "forbidden");
	call("GET", "/v1/schools", k_home, NULL);
	expect_problem(403, "forbidden");
	call("PATCH", "/v1/schools/" HOME, k_home, "{\"name\":\"Mine\"}");
	expect_problem(403, "forbidden");
	/* A school sees itself, not others (404: existence not leaked). */
	ck_assert_int_eq(call("GET", "/v1/schools/" HOME, k_home, NULL), 200);
	ck_assert_str_eq(jstr(R.json, "urn"), HOME);
	call("GET", "/v1/schools/" PRU, k_home, NULL);
	expect_problem(404, "not-found");
	ck_assert_int_eq(call("GET", "/v1/schools/" HOME "/closures", k_home, NULL), 200);
	call("GET", "/v1/schools/" PRU "/closures", k_home, NULL);
	expect_problem(404, "not-found");
	ck_assert_int_eq(call("GET", "/v1/schools/" PRU "/closures", k_admin, NULL), 200);
	call("GET", "/v1/schools/999999", k_admin, NULL);
	expect_problem(404, "not-found");
	/* Closures: the school's own key or admin may write; another school may not. */
	ck_assert_int_eq(call("PUT", "/v1/schools/" HOME "/closures", k_home,
			      "{\"closures\":[{\"from\":\"2025-12-22\",\"to\":\"2026-01-02\","
			      "\"reason\":\"Christmas\"}]}"),
			 200);
	call("PUT", "/v1/schools/" HOME "/closures", k_pru, "{\"closures\":[]}");
	expect_problem(403, "forbidden");
	ck_assert_int_eq(call("PUT", "/v1/schools/" PRU "/closures", k_admin, "{\"closures\":[]}"),
			 200);
	call("PUT", "/v1/schools/999999/closures", k_admin, "{\"closures\":[]}");
	expect_problem(404, "not-found");
	ck_assert_int_eq(qnum("SELECT count(*) FROM school_closures"), 1);
}
END_TEST

START_TEST(test_closures_validation)
{
	const char *p = "/v1/schools/" HOME "/closures";
	call("PUT", p, k_admin,
	     "{\"closures\":[{\"from\":\"2026-02-16\",\"to\":\"2026-02-20\",\"reason\":\"Half "
	     "term\"},{\"from\":\"2025-10-27\",\"to\":\"2025-10-31\"}]}");
	expect_status(200);
	const cJSON *list = cJSON_GetObjectItem(R.json, "closures");
	ck_assert_int_eq(cJSON_GetArraySize(list), 2);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(list, 0), "from"), "2025-10-27");
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(list, 0), "reason"), "");
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(list, 1), "reason"), "Half term");

	call("PUT", p, k_admin, "{\"closures\":[{\"from\":\"2026-02-20\",\"to\":\"2026-02-16\"}]}");
	expect_problem(422, "invalid-closure");
	ck_assert(has_pointer("/closures/0/to"));
	call("PUT", p, k_admin,
	     "{\"closures\":[{\"from\":\"2026-03-01\",\"to\":\"2026-03-10\"},{\"from\":\"2026-01-"
	     "01\",\"to\":\"2026-01-02\"},{\"from\":\"2026-03-10\",\"to\":\"2026-03-12\"}]}");
	expect_problem(422, "overlapping-closures");
	ck_assert(has_pointer("/closures/2/from"));
	call("PUT", p, k_admin, "{\"closures\":[{\"from\":\"2026-02-30\",\"to\":\"2026-03-01\"}]}");
	expect_problem(422, "invalid-date");
	ck_assert(has_pointer("/closures/0/from"));
	call("PUT", p, k_admin, "{\"closures\":[{\"to\":\"2026-03-01\",\"why\":1}]}");
	ck_assert(has_pointer("/closures/0/from") && has_pointer("/closures/0/why"));
	call("PUT", p, k_admin, "{\"closures\":[42]}");
	expect_problem(422, "invalid-closure");
	ck_assert(has_pointer("/closures/0"));
	call("PUT", p, k_admin, "{\"closures\":{}}");
	expect_problem(422, "invalid-field");
	call("PUT", p, k_admin, "{}");
	expect_problem(422, "missing-field");
	call("PUT", p, k_admin, "{\"closures\":[],\"extra\":true}");
	expect_problem(422, "unknown-field");
	/* A list longer than the bound. */
	static char big[64 * 1024];
	size_t n = (size_t)snprintf(big, sizeof big, "{\"closures\":[");
	for (int i = 0; i < 1001; i++)
		n += (size_t)snprintf(big + n, sizeof big - n, "%s{\"from\":\"2020-01-01\",\"to\":"
						"\"2020-01-01\"}", i ? "," : "");
	snprintf(big + n, sizeof big - n, "]}");
	call("PUT", p, k_admin, "%s", big);
	expect_problem(422, "too-many-closures");
	/* None of the refused lists replaced the stored one. */
	ck_assert_int_eq(call("GET", p, k_admin, NULL), 200);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(R.json, "closures")), 2);
	/* An empty list clears them. */
	ck_assert_int_eq(call("PUT", p, k_admin, "{\"closures\":[]}"), 200);
	ck_assert_int_eq(qnum("SELECT count(*) FROM school_closures"), 0);
}
END_TEST

/* ---- pupils ---- */

START_TEST(test_pupils)
{
	char upn[14];
	make_upn(1, upn);
	const char *body = "{\"upn\":\"%s\",\"given_name\":\"Ada\",\"family_name\":\"Lovelace\","
			   "\"date_of_birth\":\"2012-12-10\"}";
	call("POST", "/v1/pupils", k_home, body, upn);
	expect_status(201);
	ck_assert_str_eq(jstr(R.json, "upn"), upn);
	ck_assert_str_eq(jstr(R.json, "date_of_birth"), "2012-12-10");
	/* Same data again: 200 with the pupil, by any key. */
	call("POST", "/v1/pupils", k_pru, body, upn);
	expect_status(200);
	ck_assert_str_eq(jstr(R.json, "family_name"), "Lovelace");
	/* Different data: 409; admin learns which fields differ, a school does not. */
	call("POST", "/v1/pupils", k_admin,
	     "{\"upn\":\"%s\",\"given_name\":\"Ada\",\"family_name\":\"Byron\","
	     "\"date_of_birth\":\"2012-12-10\"}",
	     upn);
	expect_problem(409, "pupil-exists");
	ck_assert(has_pointer("/family_name"));
	ck_assert(!has_pointer("/given_name"));
	call("POST", "/v1/pupils", k_home,
	     "{\"upn\":\"%s\",\"given_name\":\"Ada\",\"family_name\":\"Lovelace\","
	     "\"date_of_birth\":\"2012-12-11\"}",
	     upn);
	expect_problem(409, "pupil-exists");
	ck_assert(cJSON_GetObjectItem(R.json, "errors") == NULL);
	ck_assert_str_eq(q("SELECT family_name || date_of_birth FROM pupils WHERE upn = '%s'", upn),
			 "Lovelace2012-12-10");

	/* UPN format and check letter. */
	call("POST", "/v1/pupils", k_admin, body, "B80120000500");
	expect_problem(422, "invalid-upn");
	ck_assert(has_pointer("/upn"));
	call("POST", "/v1/pupils", k_admin, body, "I801200005001");
	expect_problem(422, "invalid-upn");
	char wrong[14];
	snprintf(wrong, sizeof wrong, "%s", upn);
	wrong[0] = upn[0] == 'A' ? 'C' : 'A';
	call("POST", "/v1/pupils", k_admin, body, wrong);
	expect_problem(422, "invalid-upn");
	char want[64];
	snprintf(want, sizeof want, "should start with %c", upn[0]);
	ck_assert_msg(strstr(jstr(R.json, "detail"), want) != NULL, "%s", R.body);
	/* The documented example. */
	call("POST", "/v1/pupils", k_admin, body, "C801200005001");
	ck_assert_msg(strstr(jstr(R.json, "detail"), "should start with B") != NULL, "%s", R.body);

	call("POST", "/v1/pupils", k_admin, "{\"upn\":\"%s\"}", upn);
	expect_problem(422, "missing-field");
	ck_assert(has_pointer("/given_name") && has_pointer("/family_name") &&
		  has_pointer("/date_of_birth"));
	char upn2[14];
	make_upn(2, upn2);
	call("POST", "/v1/pupils", k_admin,
	     "{\"upn\":\"%s\",\"given_name\":\"A\",\"family_name\":\"B\",\"date_of_birth\":"
	     "\"2150-01-01\"}",
	     upn2);
	expect_problem(422, "invalid-date-of-birth");
	ck_assert(has_pointer("/date_of_birth"));
	call("POST", "/v1/pupils", k_admin,
	     "{\"upn\":\"%s\",\"given_name\":\"A\",\"family_name\":\"B\",\"date_of_birth\":"
	     "\"2012-13-01\"}",
	     upn2);
	expect_problem(422, "invalid-date");
	char longname[160];
	memset(longname, 'x', 101);
	longname[101] = '\0';
	call("POST", "/v1/pupils", k_admin,
	     "{\"upn\":\"%s\",\"given_name\":\"%s\",\"family_name\":\"B\",\"date_of_birth\":"
	     "\"2012-01-01\",\"nhs\":1}",
	     upn2, longname);
	ck_assert(has_pointer("/given_name") && has_pointer("/nhs"));
	/* Lengths count characters, not bytes; bytes that are not UTF-8 are refused. */
	call("POST", "/v1/pupils", k_admin,
	     "{\"upn\":\"%s\",\"given_name\":\"Zo\xff\",\"family_name\":\"B\","
	     "\"date_of_birth\":\"2012-01-01\"}",
	     upn2);
	expect_problem(422, "invalid-field");
	ck_assert(has_pointer("/given_name"));
	char accents[256] = "";
	for (int i = 0; i < 100; i++)
		strcat(accents, "\xc3\xa9");
	call("POST", "/v1/pupils", k_admin,
	     "{\"upn\":\"%s\",\"given_name\":\"%s\",\"family_name\":\"B\","
	     "\"date_of_birth\":\"2012-01-01\"}",
	     upn2, accents);
	expect_status(201);
	ck_assert_int_eq(qnum("SELECT count(*) FROM pupils WHERE length(given_name) = 100"), 1);
	th_sql(url, "DELETE FROM pupils WHERE length(given_name) = 100");
	ck_assert_int_eq(qnum("SELECT count(*) FROM pupils"), 1);

	/* Reading: admin yes; a school only once the pupil is on its roll. */
	char path[64];
	snprintf(path, sizeof path, "/v1/pupils/%s", upn);
	ck_assert_int_eq(call("GET", path, k_admin, NULL), 200);
	call("GET", path, k_home, NULL);
	expect_problem(404, "not-found");
	reg(k_home, upn, HOME, "main", "2024-09-02", NULL, NULL);
	ck_assert_int_eq(call("GET", path, k_home, NULL), 200);
	ck_assert_str_eq(jstr(R.json, "given_name"), "Ada");
	call("GET", path, k_other, NULL);
	expect_problem(404, "not-found");
	call("GET", "/v1/pupils/Z999999999999", k_admin, NULL);
	expect_problem(404, "not-found");
	/* Once on roll, always visible to that school (history). */
	snprintf(path, sizeof path, "/v1/pupils/%s/registrations", upn);
	ck_assert_int_eq(call("GET", path, k_home, NULL), 200);
}
END_TEST

/* ---- registrations ---- */

static const char *reg_path(long id)
{
	static char p[64];
	snprintf(p, sizeof p, "/v1/registrations/%ld", id);
	return p;
}

START_TEST(test_registration_rules)
{
	char upn[14], upn2[14];
	make_upn(10, upn);
	make_upn(11, upn2);
	pupil(upn);
	const char *sched = "{\"mon\":[\"AM\",\"PM\"],\"tue\":[\"AM\"]}";
	long main_id = reg(k_admin, upn, HOME, "main", "2025-09-01", NULL, NULL);
	ck_assert_str_eq(jstr(R.json, "role"), "main");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(R.json, "end_date")));
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(R.json, "schedule")));
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(R.json, "schedules")), 0);

	/* A second main overlapping: 409, whichever school. */
	call("POST", "/v1/registrations", k_admin,
	     "{\"upn\":\"%s\",\"urn\":\"%s\",\"role\":\"main\",\"start_date\":\"2026-01-05\"}", upn,
	     OTHER);
	expect_problem(409, "overlapping-registration");
	/* Subsidiary rules. */
	call("POST", "/v1/registrations", k_admin,
	     "{\"upn\":\"%s\",\"urn\":\"%s\",\"role\":\"subsidiary\",\"start_date\":\"2026-01-05\"}",
	     upn, PRU);
	expect_problem(422, "schedule-required");
	ck_assert(has_pointer("/schedule"));
	call("POST", "/v1/registrations", k_admin,
	     "{\"upn\":\"%s\",\"urn\":\"%s\",\"role\":\"main\",\"start_date\":\"2020-01-06\","
	     "\"end_date\":\"2020-07-01\",\"schedule\":%s}",
	     upn, OTHER, sched);
	expect_problem(422, "schedule-not-allowed");
	call("POST", "/v1/registrations", k_admin,
	     "{\"upn\":\"%s\",\"urn\":\"%s\",\"role\":\"subsidiary\",\"start_date\":\"2026-01-05\","
	     "\"schedule\":{\"sat\":[\"AM\"]}}",
	     upn, PRU);
	expect_problem(422, "invalid-schedule");
	ck_assert(has_pointer("/schedule/sat"));
	call("POST", "/v1/registrations", k_admin,
	     "{\"upn\":\"%s\",\"urn\":\"%s\",\"role\":\"subsidiary\",\"start_date\":\"2026-01-05\","
	     "\"schedule\":{\"mon\":[\"AM\",\"EV\"]}}",
	     upn, PRU);
	ck_assert(has_pointer("/schedule/mon/1"));
	call("POST", "/v1/registrations", k_admin,
	     "{\"upn\":\"%s\",\"urn\":\"%s\",\"role\":\"subsidiary\",\"start_date\":\"2025-08-01\","
	     "\"schedule\":%s}",
	     upn, PRU, sched);
	expect_problem(422, "no-main-registration");
	ck_assert(has_pointer("/start_date"));
	call("POST", "/v1/registrations", k_admin,
	     "{\"upn\":\"%s\",\"urn\":\"%s\",\"role\":\"subsidiary\",\"start_date\":\"2026-01-05\","
	     "\"schedule\":%s}",
	     upn, HOME, sched);
	expect_problem(422, "no-main-registration");
	ck_assert(has_pointer("/urn"));
	call("POST", "/v1/registrations", k_admin,
	     "{\"upn\":\"%s\",\"urn\":\"%s\",\"role\":\"main\",\"start_date\":\"2026-01-05\"}",
	     upn2, HOME);
	expect_problem(422, "unknown-pupil");
	ck_assert(has_pointer("/upn"));
	call("POST", "/v1/registrations", k_admin,
	     "{\"upn\":\"%s\",\"urn\":\"999999\",\"role\":\"subsidiary\",\"start_date\":"
	     "\"2026-01-05\",\"schedule\":%s}",
	     upn, sched);
	expect_problem(422, "unknown-school");
	ck_assert(has_pointer("/urn"));
	call("POST", "/v1/registrations", k_admin,
	     "{\"upn\":\"%s\",\"urn\":\"%s\",\"role\":\"main\",\"start_date\":\"2019-09-02\","
	     "\"end_date\":\"2019-09-01\"}",
	     upn, OTHER);
	expect_problem(422, "invalid-end-date");
	ck_assert(has_pointer("/end_date"));
	call("POST", "/v1/registrations", k_admin,
	     "{\"upn\":\"x\",\"urn\":\"1\",\"role\":\"guest\",\"start_date\":\"2026-1-5\",\"y\":1}");
	th_assert_problem(&R, 422);
	ck_assert(has_pointer("/upn") && has_pointer("/urn") && has_pointer("/role") &&
		  has_pointer("/start_date") && has_pointer("/y"));
	ck_assert_int_eq(qnum("SELECT count(*) FROM registrations"), 1);

	/* A valid subsidiary; then a second one overlapping it at another school. */
	long sub_id = reg(k_admin, upn, PRU, "subsidiary", "2026-01-05", "2026-07-17", sched);
	ck_assert_str_eq(jstr(R.json, "end_date"), "2026-07-17");
	const cJSON *s = cJSON_GetObjectItem(R.json, "schedule");
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(s, "mon")), 2);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(s, "wed")), 0);
	const cJSON *hist = cJSON_GetObjectItem(R.json, "schedules");
	ck_assert_int_eq(cJSON_GetArraySize(hist), 1);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(hist, 0), "effective_from"), "2026-01-05");
	call("POST", "/v1/registrations", k_admin,
	     "{\"upn\":\"%s\",\"urn\":\"%s\",\"role\":\"subsidiary\",\"start_date\":\"2026-03-02\","
	     "\"schedule\":%s}",
	     upn, OTHER, sched);
	expect_problem(409, "overlapping-registration");
	ck_assert_msg(strstr(jstr(R.json, "detail"), "subsidiary") != NULL, "%s", R.body);

	/* Events: created, with both schools and natural keys. */
	ck_assert_int_eq(qnum("SELECT count(*) FROM events WHERE type = 'registration.created'"), 2);
	ck_assert_str_eq(q("SELECT array_to_string(urns, ',') || ' ' || (data->>'role') || ' ' || "
			   "(data->>'start_date') || ' ' || (data ? 'schedule') FROM events "
			   "WHERE type = 'registration.created' AND (data->>'id')::bigint = %ld",
			   sub_id),
			 HOME "," PRU " subsidiary 2026-01-05 true");
	ck_assert_str_eq(q("SELECT upn FROM events WHERE (data->>'id')::bigint = %ld", sub_id), upn);

	/* PATCH rules. */
	call("PATCH", reg_path(sub_id), k_admin, "{\"end_date\":\"2025-12-31\"}");
	expect_problem(422, "invalid-end-date");
	ck_assert(has_pointer("/end_date"));
	call("PATCH", reg_path(main_id), k_admin,
	     "{\"schedule\":{\"mon\":[\"AM\"]},\"effective_from\":\"2026-01-05\"}");
	expect_problem(422, "schedule-not-allowed");
	call("PATCH", reg_path(sub_id), k_admin, "{\"schedule\":{\"mon\":[\"AM\"]}}");
	expect_problem(422, "missing-field");
	ck_assert(has_pointer("/effective_from"));
	call("PATCH", reg_path(sub_id), k_admin, "{\"effective_from\":\"2026-02-02\"}");
	expect_problem(422, "missing-field");
	ck_assert(has_pointer("/schedule"));
	call("PATCH", reg_path(sub_id), k_admin,
	     "{\"schedule\":{\"mon\":[\"AM\"]},\"effective_from\":\"2026-07-20\"}");
	expect_problem(422, "effective-from-outside-registration");
	ck_assert(has_pointer("/effective_from"));
	call("PATCH", reg_path(sub_id), k_admin, "{}");
	expect_problem(422, "empty-patch");
	call("PATCH", reg_path(sub_id), k_admin, "{\"role\":\"main\"}");
	expect_problem(422, "unknown-field");
	call("PATCH", reg_path(sub_id), k_admin, "{\"end_date\":\"someday\"}");
	expect_problem(422, "invalid-date");
	call("PATCH", "/v1/registrations/999999", k_admin, "{\"end_date\":\"2026-01-01\"}");
	expect_problem(404, "not-found");
	call("PATCH", "/v1/registrations/abc", k_admin, "{\"end_date\":\"2026-01-01\"}");
	expect_problem(404, "not-found");

	/* Schedule versions: same effective_from replaces, later ones stay. */
	call("PATCH", reg_path(sub_id), k_admin,
	     "{\"schedule\":{\"wed\":[\"PM\"]},\"effective_from\":\"2026-03-02\"}");
	expect_status(200);
	call("PATCH", reg_path(sub_id), k_admin,
	     "{\"schedule\":{\"thu\":[\"AM\"]},\"effective_from\":\"2026-05-04\"}");
	expect_status(200);
	call("PATCH", reg_path(sub_id), k_admin,
	     "{\"schedule\":{\"fri\":[\"AM\",\"PM\"]},\"effective_from\":\"2026-03-02\"}");
	expect_status(200);
	hist = cJSON_GetObjectItem(R.json, "schedules");
	ck_assert_int_eq(cJSON_GetArraySize(hist), 3);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(hist, 1), "effective_from"), "2026-03-02");
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(
			     cJSON_GetObjectItem(cJSON_GetArrayItem(hist, 1), "schedule"), "fri")),
			 2);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(
			     cJSON_GetObjectItem(cJSON_GetArrayItem(hist, 1), "schedule"), "wed")),
			 0);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(hist, 2), "effective_from"), "2026-05-04");
	ck_assert_int_eq(qnum("SELECT count(*) FROM events WHERE type = 'registration.changed'"), 3);
	/* The same version again changes nothing and emits nothing. */
	call("PATCH", reg_path(sub_id), k_admin,
	     "{\"schedule\":{\"fri\":[\"PM\",\"AM\"]},\"effective_from\":\"2026-03-02\"}");
	expect_status(200);
	ck_assert_int_eq(qnum("SELECT count(*) FROM events WHERE type = 'registration.changed'"), 3);

	/* End, then reopen. */
	call("PATCH", reg_path(sub_id), k_admin, "{\"end_date\":\"2026-06-30\"}");
	expect_status(200);
	ck_assert_str_eq(jstr(R.json, "end_date"), "2026-06-30");
	ck_assert_str_eq(q("SELECT data->>'end_date' FROM events WHERE type = "
			   "'registration.ended'"),
			 "2026-06-30");
	call("PATCH", reg_path(sub_id), k_admin, "{\"end_date\":null}");
	expect_status(200);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(R.json, "end_date")));
	ck_assert_int_eq(qnum("SELECT count(*) FROM events WHERE type = 'registration.changed'"), 4);
	/* Ending the main before the subsidiary is allowed; reopening into a later main is not. */
	call("PATCH", reg_path(main_id), k_admin, "{\"end_date\":\"2026-08-31\"}");
	expect_status(200);
	reg(k_admin, upn, OTHER, "main", "2026-09-01", NULL, NULL);
	call("PATCH", reg_path(main_id), k_admin, "{\"end_date\":null}");
	expect_problem(409, "overlapping-registration");
	ck_assert(has_pointer("/end_date"));

	/* The list: every registration of the pupil, in start order. */
	char path[64];
	snprintf(path, sizeof path, "/v1/pupils/%s/registrations", upn);
	ck_assert_int_eq(call("GET", path, k_admin, NULL), 200);
	const cJSON *regs = cJSON_GetObjectItem(R.json, "registrations");
	ck_assert_int_eq(cJSON_GetArraySize(regs), 3);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(regs, 0), "urn"), HOME);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(regs, 1), "urn"), PRU);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(regs, 2), "urn"), OTHER);
	snprintf(path, sizeof path, "/v1/pupils/%s/registrations", upn2);
	call("GET", path, k_admin, NULL);
	expect_problem(404, "not-found");
}
END_TEST

START_TEST(test_registration_authz)
{
	char a[14], b[14], c[14];
	make_upn(20, a);
	make_upn(21, b);
	make_upn(22, c);
	pupil(a);
	pupil(b);
	pupil(c);
	const char *sched = "{\"wed\":[\"AM\",\"PM\"]}";
	/* Main: only that school (or admin). */
	call("POST", "/v1/registrations", k_pru,
	     "{\"upn\":\"%s\",\"urn\":\"%s\",\"role\":\"main\",\"start_date\":\"2025-09-01\"}", a,
	     HOME);
	expect_problem(403, "forbidden");
	long main_a = reg(k_home, a, HOME, "main", "2025-09-01", NULL, NULL);
	reg(k_home, b, HOME, "main", "2025-09-01", NULL, NULL);
	reg(k_admin, c, HOME, "main", "2025-09-01", NULL, NULL);
	/* Subsidiary: the subsidiary school, the main school, or admin; not a third school. */
	call("POST", "/v1/registrations", k_other,
	     "{\"upn\":\"%s\",\"urn\":\"%s\",\"role\":\"subsidiary\",\"start_date\":\"2026-01-05\","
	     "\"schedule\":%s}",
	     a, PRU, sched);
	expect_problem(403, "forbidden");
	long sub_a = reg(k_pru, a, PRU, "subsidiary", "2026-01-05", NULL, sched);
	long sub_b = reg(k_home, b, PRU, "subsidiary", "2026-01-05", NULL, sched);
	reg(k_admin, c, PRU, "subsidiary", "2026-01-05", NULL, sched);
	ck_assert_int_gt(sub_b, sub_a);
	/* A third school may register the pupil as subsidiary at itself, but not while
	 * another subsidiary registration runs. */
	call("POST", "/v1/registrations", k_other,
	     "{\"upn\":\"%s\",\"urn\":\"%s\",\"role\":\"subsidiary\",\"start_date\":\"2026-01-05\","
	     "\"schedule\":%s}",
	     a, OTHER, sched);
	expect_problem(409, "overlapping-registration");

	/* PATCH: both schools of a subsidiary; a third school sees nothing (404). */
	const char *patch = "{\"schedule\":{\"thu\":[\"AM\"]},\"effective_from\":\"2026-02-02\"}";
	ck_assert_int_eq(call("PATCH", reg_path(sub_a), k_pru, "%s", patch), 200);
	ck_assert_int_eq(call("PATCH", reg_path(sub_a), k_home, "%s", patch), 200);
	ck_assert_int_eq(call("PATCH", reg_path(sub_a), k_admin, "%s", patch), 200);
	call("PATCH", reg_path(sub_a), k_other, "%s", patch);
	expect_problem(404, "not-found");
	/* The main registration belongs to the home school: the PRU sees the pupil but may
	 * not change it. */
	call("PATCH", reg_path(main_a), k_pru, "{\"end_date\":\"2026-07-31\"}");
	expect_problem(403, "forbidden");
	call("PATCH", reg_path(main_a), k_other, "{\"end_date\":\"2026-07-31\"}");
	expect_problem(404, "not-found");
	ck_assert_int_eq(call("PATCH", reg_path(main_a), k_home, "{\"end_date\":\"2026-07-31\"}"),
			 200);
	ck_assert(qnum("SELECT count(*) FROM registrations WHERE end_date IS NOT NULL") == 1);

	/* Reads: both schools see both registrations; a third school gets 404. */
	char path[64];
	snprintf(path, sizeof path, "/v1/pupils/%s/registrations", a);
	const char *readers[] = {k_admin, k_home, k_pru};
	for (size_t i = 0; i < 3; i++) {
		ck_assert_int_eq(call("GET", path, readers[i], NULL), 200);
		ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(R.json, "registrations")),
				 2);
	}
	call("GET", path, k_other, NULL);
	expect_problem(404, "not-found");
	snprintf(path, sizeof path, "/v1/pupils/%s", a);
	ck_assert_int_eq(call("GET", path, k_pru, NULL), 200);
	call("GET", path, k_other, NULL);
	expect_problem(404, "not-found");
}
END_TEST

/* ---- derived D marks ---- */

/* Derived D marks of the pupil at urn in [from, to]. */
static long derived(const char *upn, const char *urn, const char *from, const char *to)
{
	return atol(q("SELECT count(*) FROM marks WHERE upn = '%s' AND urn = '%s' AND code = 'D' "
		      "AND source = 'derived' AND date BETWEEN '%s' AND '%s'",
		      upn, urn, from, to));
}

/* Weekday sessions in [from, to] (two per weekday). */
static long sessions(const char *from, const char *to)
{
	return atol(q("SELECT 2 * count(*) FROM generate_series('%s'::date, '%s'::date, "
		      "interval '1 day') x WHERE extract(isodow FROM x) < 6",
		      from, to));
}

START_TEST(test_derived_d_follows_registrations)
{
	char upn[14];
	make_upn(30, upn);
	pupil(upn);
	char today[16], start[16], eff[16], eff_prev[16], main_start[16];
	snprintf(today, sizeof today, "%s", q("SELECT dualreg_today()"));
	snprintf(main_start, sizeof main_start, "%s", q("SELECT dualreg_today() - 60"));
	snprintf(start, sizeof start, "%s", weekday_between(27, 20));
	snprintf(eff, sizeof eff, "%s", weekday_between(13, 7));
	snprintf(eff_prev, sizeof eff_prev, "%s", q("SELECT '%s'::date - 1", eff));
	reg(k_admin, upn, HOME, "main", main_start, NULL, NULL);
	ck_assert_int_eq(qnum("SELECT count(*) FROM marks"), 0);

	/* Every weekday session at the PRU: the home school gets D for each one, from the
	 * start date to today, and the PRU none. */
	const char *all = "{\"mon\":[\"AM\",\"PM\"],\"tue\":[\"AM\",\"PM\"],\"wed\":[\"AM\","
			  "\"PM\"],\"thu\":[\"AM\",\"PM\"],\"fri\":[\"AM\",\"PM\"]}";
	long sub = reg(k_pru, upn, PRU, "subsidiary", start, NULL, all);
	long want = sessions(start, today);
	ck_assert_int_ge(want, 20);
	ck_assert_int_eq(derived(upn, HOME, start, today), want);
	ck_assert_int_eq(derived(upn, PRU, "1900-01-01", "2199-01-01"), 0);
	ck_assert_int_eq(derived(upn, HOME, "1900-01-01", "2199-01-01"), want);
	ck_assert_int_eq(qnum("SELECT count(*) FROM marks WHERE extract(isodow FROM date) > 5"), 0);
	ck_assert_int_eq(qnum("SELECT count(*) FROM events WHERE type = 'mark.derived'"), want);

	/* From eff on, the pupil is expected at home (empty schedule): the home school's D
	 * marks from eff disappear and the PRU gets them instead; never D at both. */
	call("PATCH", reg_path(sub), k_home, "{\"schedule\":{},\"effective_from\":\"%s\"}", eff);
	expect_status(200);
	ck_assert_int_eq(derived(upn, HOME, start, eff_prev), sessions(start, eff_prev));
	ck_assert_int_eq(derived(upn, HOME, eff, today), 0);
	ck_assert_int_eq(derived(upn, PRU, eff, today), sessions(eff, today));
	ck_assert_int_eq(derived(upn, PRU, start, eff_prev), 0);
	ck_assert_int_eq(qnum("SELECT count(*) FROM marks a JOIN marks b USING (upn, date, session) "
			      "WHERE a.urn < b.urn AND a.code = 'D' AND b.code = 'D'"),
			 0);
	/* The removals are in the history. */
	ck_assert_int_eq(atol(q("SELECT count(*) FROM mark_history WHERE upn = '%s' AND urn = '%s' "
				"AND new_code IS NULL AND date >= '%s'",
				upn, HOME, eff)),
			 sessions(eff, today));

	/* An earlier effective_from moves the switch back to the start date. */
	call("PATCH", reg_path(sub), k_admin, "{\"schedule\":{},\"effective_from\":\"%s\"}", start);
	expect_status(200);
	ck_assert_int_eq(derived(upn, HOME, start, today), 0);
	ck_assert_int_eq(derived(upn, PRU, start, today), sessions(start, today));

	/* A closure of the PRU removes its derived D marks on those days; lifting it
	 * re-derives them. */
	call("PUT", "/v1/schools/" PRU "/closures", k_pru,
	     "{\"closures\":[{\"from\":\"%s\",\"to\":\"%s\",\"reason\":\"INSET\"}]}", eff, today);
	expect_status(200);
	ck_assert_int_eq(derived(upn, PRU, eff, today), 0);
	ck_assert_int_eq(derived(upn, PRU, start, eff_prev), sessions(start, eff_prev));
	call("PUT", "/v1/schools/" PRU "/closures", k_pru, "{\"closures\":[]}");
	expect_status(200);
	ck_assert_int_eq(derived(upn, PRU, start, today), sessions(start, today));

	/* Ending the subsidiary: no D after its end date. */
	call("PATCH", reg_path(sub), k_pru, "{\"end_date\":\"%s\"}", eff_prev);
	expect_status(200);
	ck_assert_int_eq(derived(upn, PRU, eff, today), 0);
	ck_assert_int_eq(derived(upn, PRU, start, eff_prev), sessions(start, eff_prev));
	ck_assert_int_eq(derived(upn, HOME, "1900-01-01", "2199-01-01"), 0);
}
END_TEST

START_TEST(test_future_registration_derives_nothing)
{
	char upn[14];
	make_upn(40, upn);
	pupil(upn);
	char later[16];
	snprintf(later, sizeof later, "%s", q("SELECT dualreg_today() + 30"));
	reg(k_admin, upn, HOME, "main", later, NULL, NULL);
	reg(k_admin, upn, PRU, "subsidiary", later, NULL, "{\"mon\":[\"AM\"]}");
	ck_assert_int_eq(qnum("SELECT count(*) FROM marks"), 0);
	ck_assert_int_eq(qnum("SELECT count(*) FROM events WHERE type = 'registration.created'"), 2);
	/* The current schedule of a future registration is its first one. */
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(
			     cJSON_GetObjectItem(R.json, "schedule"), "mon")),
			 1);
}
END_TEST

/* ---- concurrency ---- */

struct racer {
	pthread_t thread;
	const char *method, *path, *token;
	char body[512];
	struct th_resp resp;
	int rc;
};

static void *racer_main(void *arg)
{
	struct racer *x = arg;
	char u[256], auth[160];
	snprintf(u, sizeof u, "%s%s", d.base, x->path);
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", x->token);
	const char *headers[] = {auth, "Content-Type: application/json", NULL};
	x->rc = th_http(x->method, u, x->body, strlen(x->body), headers, &x->resp);
	return NULL;
}

/* Runs n requests at once; counts the responses with status want. */
static int race(struct racer *xs, int n, long want)
{
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(pthread_create(&xs[i].thread, NULL, racer_main, &xs[i]), 0);
	int hits = 0;
	for (int i = 0; i < n; i++) {
		pthread_join(xs[i].thread, NULL);
		ck_assert_int_eq(xs[i].rc, 0);
		hits += xs[i].resp.status == want;
	}
	return hits;
}

START_TEST(test_concurrent_writes)
{
	enum { N = 6 };
	struct racer xs[N];
	char upn[14];
	make_upn(50, upn);
	/* The same pupil posted at once: one 201, every other 200 with the same pupil. */
	for (int i = 0; i < N; i++) {
		xs[i] = (struct racer){.method = "POST", .path = "/v1/pupils", .token = k_admin};
		snprintf(xs[i].body, sizeof xs[i].body,
			 "{\"upn\":\"%s\",\"given_name\":\"Grace\",\"family_name\":\"Hopper\","
			 "\"date_of_birth\":\"2013-01-02\"}",
			 upn);
	}
	ck_assert_int_eq(race(xs, N, 201), 1);
	for (int i = 0; i < N; i++) {
		ck_assert_msg(xs[i].resp.status == 201 || xs[i].resp.status == 200, "%s",
			      xs[i].resp.body);
		th_resp_free(&xs[i].resp);
	}
	/* Main registrations at several schools at once: exactly one wins, the others are
	 * told what they overlap. */
	const char *urns[N] = {HOME, PRU, OTHER, HOME, PRU, OTHER};
	for (int i = 0; i < N; i++) {
		xs[i] = (struct racer){.method = "POST", .path = "/v1/registrations",
				       .token = k_admin};
		snprintf(xs[i].body, sizeof xs[i].body,
			 "{\"upn\":\"%s\",\"urn\":\"%s\",\"role\":\"main\","
			 "\"start_date\":\"2025-09-0%d\"}",
			 upn, urns[i], 1 + i);
	}
	ck_assert_int_eq(race(xs, N, 201), 1);
	for (int i = 0; i < N; i++) {
		if (xs[i].resp.status != 201) {
			ck_assert_int_eq(xs[i].resp.status, 409);
			ck_assert_msg(strstr(xs[i].resp.body, "/problems/overlapping-registration"),
				      "%s", xs[i].resp.body);
		}
		th_resp_free(&xs[i].resp);
	}
	ck_assert_int_eq(qnum("SELECT count(*) FROM registrations"), 1);
	ck_assert_int_eq(qnum("SELECT count(*) FROM events WHERE type = 'registration.created'"), 1);
}
END_TEST

Suite *registry_suite(void)
{
	Suite *s = suite_create("registry");
	TCase *tc = tcase_create("api");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_school_create_and_errors);
	tcase_add_test(tc, test_school_patch);
	tcase_add_test(tc, test_school_list_paging);
	tcase_add_test(tc, test_school_authz);
	tcase_add_test(tc, test_closures_validation);
	tcase_add_test(tc, test_pupils);
	tcase_add_test(tc, test_registration_rules);
	tcase_add_test(tc, test_registration_authz);
	tcase_add_test(tc, test_derived_d_follows_registrations);
	tcase_add_test(tc, test_future_registration_derives_nothing);
	tcase_add_test(tc, test_concurrent_writes);
	suite_add_tcase(s, tc);
	return s;
}
