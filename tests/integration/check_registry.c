/*
 * registry: schools, closures and pupils through the real daemon and database. Every
 * validation rule and error type and the authorisation matrix (admin, the school's own
 * key, another school's key, no key). Registrations, derived D marks and concurrency
 * are in check_registry_registrations.c, in the same suite.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../suites.h"
#include "registry_fixture.h"

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
	call("PATCH", "/v1/schools/" PRU, k_admin, "{\"colour\":\"blue\"}");
	expect_problem(422, "unknown-field");
	ck_assert(has_pointer("/colour"));
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
			      "{\"closures\":[{\"from\":\"%s\",\"to\":\"%s\","
			      "\"reason\":\"Christmas\"}]}",
			      day(-40), day(-29)),
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
	char early[11];
	snprintf(early, sizeof early, "%s", day(-60));
	call("PUT", p, k_admin,
	     "{\"closures\":[{\"from\":\"%s\",\"to\":\"%s\",\"reason\":\"Half "
	     "term\"},{\"from\":\"%s\",\"to\":\"%s\"}]}",
	     day(-20), day(-16), early, day(-56));
	expect_status(200);
	const cJSON *list = cJSON_GetObjectItem(R.json, "closures");
	ck_assert_int_eq(cJSON_GetArraySize(list), 2);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(list, 0), "from"), early);
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

/* The work of one PUT is bounded: new or changed closures within 400 days of today,
 * at most 400 closure days changed; a refused list changes nothing. */
START_TEST(test_closures_bounds)
{
	const char *p = "/v1/schools/" HOME "/closures";
	ck_assert_int_eq(call("PUT", p, k_admin, "{\"closures\":[{\"from\":\"%s\",\"to\":\"%s\"}]}",
			      day(-30), day(-26)),
			 200);
	/* Outside the window, either way. */
	call("PUT", p, k_admin,
	     "{\"closures\":[{\"from\":\"%s\",\"to\":\"%s\"},{\"from\":\"%s\",\"to\":\"%s\"}]}",
	     day(-30), day(-26), day(-401), day(-399));
	expect_problem(422, "closure-out-of-window");
	ck_assert(has_pointer("/closures/1/from"));
	call("PUT", p, k_home, "{\"closures\":[{\"from\":\"%s\",\"to\":\"%s\"}]}", day(395),
	     day(401));
	expect_problem(422, "closure-out-of-window");
	ck_assert(has_pointer("/closures/0/to"));
	/* A stored closure from long ago may be sent back as it is, or removed. */
	th_sql(rg_url, "INSERT INTO school_closures (urn, from_date, to_date) "
		       "VALUES ('" HOME "', dualreg_today() - 800, dualreg_today() - 790)");
	char old_from[11], old_to[11];
	snprintf(old_from, sizeof old_from, "%s", q("SELECT min(from_date) FROM school_closures"));
	snprintf(old_to, sizeof old_to, "%s", q("SELECT min(to_date) FROM school_closures"));
	ck_assert_int_eq(call("PUT", p, k_admin,
			      "{\"closures\":[{\"from\":\"%s\",\"to\":\"%s\"},{\"from\":\"%s\","
			      "\"to\":\"%s\"}]}",
			      old_from, old_to, day(-30), day(-26)),
			 200);
	ck_assert_int_eq(qnum("SELECT count(*) FROM school_closures"), 2);
	ck_assert_int_eq(call("PUT", p, k_admin, "{\"closures\":[]}"), 200);
	/* 400 closure days changed at once is the most: adding them, then removing them. */
	ck_assert_int_eq(call("PUT", p, k_admin, "{\"closures\":[{\"from\":\"%s\",\"to\":\"%s\"}]}",
			      day(-300), day(99)),
			 200);
	ck_assert_int_eq(call("PUT", p, k_admin, "{\"closures\":[]}"), 200);
	call("PUT", p, k_admin, "{\"closures\":[{\"from\":\"%s\",\"to\":\"%s\"}]}", day(-300),
	     day(100));
	expect_problem(422, "too-many-closure-days");
	ck_assert(has_pointer("/closures"));
	/* Changing a closure counts the days it leaves and the days it takes. */
	ck_assert_int_eq(call("PUT", p, k_admin, "{\"closures\":[{\"from\":\"%s\",\"to\":\"%s\"}]}",
			      day(-300), day(-101)),
			 200);
	call("PUT", p, k_admin, "{\"closures\":[{\"from\":\"%s\",\"to\":\"%s\"}]}", day(-300),
	     day(-100));
	expect_problem(422, "too-many-closure-days");
	ck_assert_int_eq(qnum("SELECT count(*) FROM school_closures"), 1);
	ck_assert_str_eq(q("SELECT to_date FROM school_closures"), day(-101));
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
	/* Lengths count characters, not bytes; bytes that are not UTF-8 are refused, as
	 * in any body: the body is not valid JSON. */
	call("POST", "/v1/pupils", k_admin,
	     "{\"upn\":\"%s\",\"given_name\":\"Zo\xff\",\"family_name\":\"B\","
	     "\"date_of_birth\":\"2012-01-01\"}",
	     upn2);
	expect_problem(400, "invalid-json");
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
	th_sql(rg_url, "DELETE FROM pupils WHERE length(given_name) = 100");
	ck_assert_int_eq(qnum("SELECT count(*) FROM pupils"), 1);

	/* Reading: admin yes; a school only once the pupil is on its roll. */
	char path[64];
	snprintf(path, sizeof path, "/v1/pupils/%s", upn);
	ck_assert_int_eq(call("GET", path, k_admin, NULL), 200);
	call("GET", path, k_home, NULL);
	expect_problem(404, "not-found");
	reg(k_home, upn, HOME, "main", day(-7), NULL, NULL);
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

Suite *registry_suite(void)
{
	Suite *s = suite_create("registry");
	TCase *tc = tcase_create("api");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, rg_setup, rg_teardown);
	tcase_add_test(tc, test_school_create_and_errors);
	tcase_add_test(tc, test_school_patch);
	tcase_add_test(tc, test_school_list_paging);
	tcase_add_test(tc, test_school_authz);
	tcase_add_test(tc, test_closures_validation);
	tcase_add_test(tc, test_closures_bounds);
	tcase_add_test(tc, test_pupils);
	registry_registration_tests(tc);
	suite_add_tcase(s, tc);
	return s;
}
