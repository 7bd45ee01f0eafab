/*
 * marks: POST /v1/marks against the real daemon and database, on the fixture of
 * marks_fixture.h. Statuses (created, amended, unchanged, rejected) and every per-item
 * error type, the reason rule and its N / derived-D exemptions, history rows and events
 * written with the marks, conflicts at the school that does not expect the pupil,
 * derived D following a post, the 1000-mark limit, and malformed envelopes and other
 * schools' registers storing nothing. The rest of the suite (history, concurrency, the
 * derive function and job) is in check_marks_history.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../suites.h"
#include "marks_fixture.h"

static long nmarks(void)
{
	return qn("SELECT count(*) FROM marks WHERE source <> 'derived'");
}

START_TEST(test_created_unchanged_amended)
{
	struct th_resp r;
	post1(key_admin, P2, HOME, d1, "AM", "/", "", &r);
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
	post1(key_admin, P2, HOME, d1, "AM", "/", "", &r);
	ck_assert_str_eq(status_at(&r, 0), "unchanged");
	ck_assert_str_eq(mark_code_at(&r, 0), "/");
	ck_assert_int_eq(count_of(&r, "unchanged"), 1);
	th_resp_free(&r);
	ck_assert_int_eq(qn("SELECT count(*) FROM mark_history WHERE upn = '" P2 "'"), 1);
	ck_assert_int_eq(qn("SELECT count(*) FROM events"), 1);

	/* Another code without a reason: rejected, nothing changes. */
	post1(key_admin, P2, HOME, d1, "AM", "O", "", &r);
	ck_assert_str_eq(status_at(&r, 0), "rejected");
	ck_assert_str_eq(error_at(&r, 0), "reason-required");
	th_resp_free(&r);
	post1(key_admin, P2, HOME, d1, "AM", "O", ", \"reason\": \"   \"", &r);
	ck_assert_str_eq(error_at(&r, 0), "reason-required");
	th_resp_free(&r);
	ck_assert_int_eq(qn("SELECT count(*) FROM marks WHERE code = '/'"), 1);
	ck_assert_int_eq(qn("SELECT count(*) FROM events"), 1);

	/* With a reason: amended, history and an event carrying the previous code. */
	post1(key_admin, P2, HOME, d1, "AM", "L",
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
	post1(key_admin, P2, HOME, d1, "AM", "L", ", \"minutes_late\": 15", &r);
	ck_assert_str_eq(status_at(&r, 0), "amended");
	th_resp_free(&r);
	ck_assert_int_eq(qn("SELECT version FROM marks WHERE upn = '" P2 "'"), 3);
	ck_assert_int_eq(qn("SELECT count(*) FROM mark_history"), 3);
}
END_TEST

START_TEST(test_n_is_replaced_without_reason)
{
	struct th_resp r;
	post1(key_admin, P2, HOME, d1, "PM", "N", "", &r);
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
		 mark_item(a, sizeof a, P2, HOME, d1, "AM", "N", ""),
		 mark_item(b, sizeof b, P2, HOME, d1, "AM", "I", ""),
		 mark_item(c, sizeof c, P2, HOME, d1, "AM", "I", ""));
	struct th_resp r;
	th_api(&mk_d, "POST", "/v1/marks", key_admin, body, NULL, &r);
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
		mark_item(it, sizeof it, cases[i].upn, cases[i].urn, cases[i].date, cases[i].session,
		     cases[i].code, cases[i].extra);
		len += (size_t)snprintf(body + len, cap - len, "%s%s", i ? "," : "", it);
	}
	snprintf(body + len, cap - len, "]}");
	struct th_resp r;
	th_api(&mk_d, "POST", "/v1/marks", key_admin, body, NULL, &r);
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
		 mark_item(a, sizeof a, P1, HOME, d1, "PM", "/", ""),
		 mark_item(b, sizeof b, P1, PRU, d1, "AM", "/", ""));
	struct th_resp r;
	th_api(&mk_d, "POST", "/v1/marks", key_home, body, NULL, &r);
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
	th_api(&mk_d, "POST", "/v1/marks", key_admin, body, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(status_at(&r, 0), "created");
	ck_assert_str_eq(status_at(&r, 1), "unchanged");
	th_resp_free(&r);
	/* No key: 401. */
	th_api(&mk_d, "POST", "/v1/marks", NULL, body, NULL, &r);
	th_assert_problem(&r, 401);
	th_resp_free(&r);
}
END_TEST

/* Posts body with the admin key; expects a problem with status and slug, and that the
 * first error (if pointer is not NULL) names pointer. */
static void expect_rejected(const char *body, long status, const char *slug, const char *pointer)
{
	struct th_resp r;
	th_api(&mk_d, "POST", "/v1/marks", key_admin, body, NULL, &r);
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
	mark_item(good, sizeof good, P2, HOME, d1, "AM", "/", "");
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
	snprintf(u, sizeof u, "%s/v1/marks", mk_d.base);
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", key_admin);
	const char *hdrs[] = {hdr[0], auth, NULL};
	ck_assert_int_eq(th_http("POST", u, good, strlen(good), hdrs, &r), 0);
	th_assert_problem(&r, 415);
	th_resp_free(&r);
	ck_assert_int_eq(qn("SELECT count(*) FROM marks"), 0);
	ck_assert_int_eq(qn("SELECT count(*) FROM mark_history"), 0);
	ck_assert_int_eq(qn("SELECT count(*) FROM events"), 0);
	/* An empty batch is fine and does nothing. */
	th_api(&mk_d, "POST", "/v1/marks", key_admin, "{\"marks\":[]}", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "results")), 0);
	th_resp_free(&r);
}
END_TEST

/* n items for P2 on D1 AM (all valid, one session named n times). */
static char *batch_of(int n)
{
	char it[512];
	mark_item(it, sizeof it, P2, HOME, d1, "AM", "/", "");
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
	th_api(&mk_d, "POST", "/v1/marks", key_admin, body, NULL, &r);
	free(body);
	th_assert_problem(&r, 413);
	ck_assert_str_eq(cJSON_GetObjectItem(r.json, "type")->valuestring,
			 "/problems/too-many-marks");
	th_resp_free(&r);
	ck_assert_int_eq(qn("SELECT count(*) FROM marks"), 0);
	ck_assert_int_eq(qn("SELECT count(*) FROM events"), 0);

	body = batch_of(1000);
	th_api(&mk_d, "POST", "/v1/marks", key_admin, body, NULL, &r);
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

Suite *marks_suite(void)
{
	Suite *s = suite_create("marks");
	TCase *tc = tcase_create("api");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, mk_setup, mk_teardown);
	tcase_add_test(tc, test_created_unchanged_amended);
	tcase_add_test(tc, test_n_is_replaced_without_reason);
	tcase_add_test(tc, test_same_session_twice_in_a_batch);
	tcase_add_test(tc, test_derived_d_follows_and_gives_way);
	tcase_add_test(tc, test_every_rule);
	tcase_add_test(tc, test_sql_level_rules);
	tcase_add_test(tc, test_school_key_writes_only_its_own_register);
	tcase_add_test(tc, test_malformed_envelope_stores_nothing);
	tcase_add_test(tc, test_thousand_mark_limit);
	marks_history_tests(tc);
	suite_add_tcase(s, tc);
	marks_derive_tests(s);
	return s;
}
