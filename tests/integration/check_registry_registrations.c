/*
 * registry (registrations): registration rules and error types, the authorisation
 * matrix of POST/PATCH /v1/registrations and GET /v1/pupils/{upn}/registrations, the
 * registration.* events, the derived D marks that follow registrations, schedule
 * versions and closures, and concurrent writers. Dates are computed from the
 * database's "today" and chosen on weekdays, so the tests hold on any day.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../suites.h"
#include "registry_fixture.h"

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
	char main_start[16], sub_start[16], main_end[16];
	snprintf(main_start, sizeof main_start, "%s", day(-20));
	snprintf(sub_start, sizeof sub_start, "%s", day(-10));
	snprintf(main_end, sizeof main_end, "%s", day(200));
	/* Main: only that school (or admin). */
	call("POST", "/v1/registrations", k_pru,
	     "{\"upn\":\"%s\",\"urn\":\"%s\",\"role\":\"main\",\"start_date\":\"%s\"}", a,
	     HOME, main_start);
	expect_problem(403, "forbidden");
	/* A school names a pupil it has never had on roll by the pupil's details. */
	call("POST", "/v1/registrations", k_home,
	     "{\"upn\":\"%s\",\"urn\":\"%s\",\"role\":\"main\",\"start_date\":\"%s\"}", a,
	     HOME, main_start);
	expect_problem(422, "unknown-pupil");
	call("POST", "/v1/registrations", k_home,
	     "{\"upn\":\"%s\",\"urn\":\"%s\",\"role\":\"main\",\"start_date\":\"%s\","
	     "\"given_name\":\" ADA \",\"family_name\":\"Lovelacé\",\"date_of_birth\":\"2012-12-10\"}",
	     a, HOME, main_start);
	expect_status(201);
	ck_assert_str_eq(jstr(R.json, "status"), "in_force");
	long main_a = (long)cJSON_GetObjectItem(R.json, "id")->valuedouble;
	call("POST", "/v1/registrations", k_home,
	     "{\"upn\":\"%s\",\"urn\":\"%s\",\"role\":\"main\",\"start_date\":\"%s\","
	     "\"given_name\":\"Ada\",\"family_name\":\"Lovelace\",\"date_of_birth\":\"2012-12-10\"}",
	     b, HOME, main_start);
	expect_status(201);
	reg(k_admin, c, HOME, "main", main_start, NULL, NULL);
	/* Subsidiary: the subsidiary school, the main school, or admin; not a third school.
	 * A school's subsidiary is a request the other school confirms. */
	call("POST", "/v1/registrations", k_other,
	     "{\"upn\":\"%s\",\"urn\":\"%s\",\"role\":\"subsidiary\",\"start_date\":\"%s\","
	     "\"given_name\":\"Ada\",\"family_name\":\"Lovelace\",\"date_of_birth\":\"2012-12-10\","
	     "\"schedule\":%s}",
	     a, PRU, sub_start, sched);
	expect_problem(403, "forbidden");
	call("POST", "/v1/registrations", k_pru,
	     "{\"upn\":\"%s\",\"urn\":\"%s\",\"role\":\"subsidiary\",\"start_date\":\"%s\","
	     "\"given_name\":\"Ada\",\"family_name\":\"Lovelace\",\"date_of_birth\":\"2012-12-10\","
	     "\"schedule\":%s}",
	     a, PRU, sub_start, sched);
	expect_status(201);
	ck_assert_str_eq(jstr(R.json, "status"), "pending");
	ck_assert_str_eq(jstr(R.json, "awaiting"), HOME);
	long sub_a = (long)cJSON_GetObjectItem(R.json, "id")->valuedouble;
	confirm(sub_a, k_home);
	long sub_b = reg(k_home, b, PRU, "subsidiary", sub_start, NULL, sched);
	ck_assert_str_eq(jstr(R.json, "status"), "pending");
	ck_assert_str_eq(jstr(R.json, "awaiting"), PRU);
	confirm(sub_b, k_pru);
	reg(k_admin, c, PRU, "subsidiary", sub_start, NULL, sched);
	ck_assert_str_eq(jstr(R.json, "status"), "in_force");
	ck_assert_int_gt(sub_b, sub_a);
	/* A third school may ask to register the pupil as subsidiary at itself, but not
	 * while another subsidiary registration runs; the answer names nothing of it. */
	call("POST", "/v1/registrations", k_other,
	     "{\"upn\":\"%s\",\"urn\":\"%s\",\"role\":\"subsidiary\",\"start_date\":\"%s\","
	     "\"given_name\":\"Ada\",\"family_name\":\"Lovelace\",\"date_of_birth\":\"2012-12-10\","
	     "\"schedule\":%s}",
	     a, OTHER, sub_start, sched);
	expect_problem(409, "overlapping-registration");
	ck_assert_str_eq(jstr(R.json, "detail"),
			 "the pupil already has a subsidiary registration in that period");

	/* PATCH: both schools of a subsidiary; a school's schedule change waits for the
	 * other school (202); a third school sees nothing (404). */
	const char *patch = "{\"schedule\":{\"thu\":[\"AM\"]},\"effective_from\":\"%s\"}";
	ck_assert_int_eq(call("PATCH", reg_path(sub_a), k_pru, patch, sub_start), 202);
	ck_assert_str_eq(jstr(cJSON_GetObjectItem(R.json, "pending_change"), "awaiting"), HOME);
	confirm(sub_a, k_home);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(R.json, "pending_change")));
	ck_assert_int_eq(call("PATCH", reg_path(sub_a), k_home, patch, sub_start), 202);
	confirm(sub_a, k_pru);
	ck_assert_int_eq(call("PATCH", reg_path(sub_a), k_admin, patch, sub_start), 200);
	call("PATCH", reg_path(sub_a), k_other, patch, sub_start);
	expect_problem(404, "not-found");
	/* The main registration belongs to the home school: the PRU sees the pupil but may
	 * not change it. An earlier end date applies at once. */
	call("PATCH", reg_path(main_a), k_pru, "{\"end_date\":\"%s\"}", main_end);
	expect_problem(403, "forbidden");
	call("PATCH", reg_path(main_a), k_other, "{\"end_date\":\"%s\"}", main_end);
	expect_problem(404, "not-found");
	ck_assert_int_eq(call("PATCH", reg_path(main_a), k_home, "{\"end_date\":\"%s\"}", main_end),
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
	ck_assert_int_eq(qnum("SELECT count(*) FROM marks"), 0); /* a request: nothing yet */
	confirm(sub, k_home);
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
	expect_status(202); /* the PRU's consent first */
	confirm(sub, k_pru);
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
	snprintf(u, sizeof u, "%s%s", rg_d.base, x->path);
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

/* Adds these tests to the registry suite's test case. */
void registry_registration_tests(TCase *tc)
{
	tcase_add_test(tc, test_registration_rules);
	tcase_add_test(tc, test_registration_authz);
	tcase_add_test(tc, test_derived_d_follows_registrations);
	tcase_add_test(tc, test_future_registration_derives_nothing);
	tcase_add_test(tc, test_concurrent_writes);
}
