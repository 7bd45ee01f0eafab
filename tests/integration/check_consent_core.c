/*
 * consent_core: the core of registrations by consent, on the registry
 * fixture (HOME, PRU, OTHER and their keys). The probe that once leaked (a school
 * registering another school's pupil as main from 1900) refused with the answers an
 * unknown UPN gets; a subsidiary asked for by the PRU that counts for nothing until the
 * home school confirms it; confirm, decline, withdraw and expiry (by SQL and by the
 * daemon's timer) with their events reaching the right schools' change feeds; 409s that
 * name no other school's registration; marks for pupils not on the school's roll
 * answered alike; another school's registration clipped to the reader's period. The
 * access matrix of every key against every route is check_consent_matrix.c.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../suites.h"
#include "registry_fixture.h"

#define ADA ",\"given_name\":\"Ada\",\"family_name\":\"Lovelace\",\"date_of_birth\":\"2012-12-10\""
#define SCHED "{\"mon\":[\"AM\",\"PM\"],\"tue\":[\"AM\",\"PM\"],\"wed\":[\"AM\",\"PM\"]," \
	      "\"thu\":[\"AM\",\"PM\"],\"fri\":[\"AM\",\"PM\"]}"

static const char *path_of(const char *fmt, const char *arg)
{
	static char p[128];
	snprintf(p, sizeof p, fmt, arg);
	return p;
}

static const char *action(long id, const char *what)
{
	static char p[96];
	snprintf(p, sizeof p, "/v1/registrations/%ld%s%s", id, what[0] ? "/" : "", what);
	return p;
}

/* How many events of type the key's change feed holds. */
static int feed_count(const char *token, const char *type)
{
	ck_assert_int_eq(call("GET", "/v1/changes?limit=1000", token, NULL), 200);
	int n = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, cJSON_GetObjectItem(R.json, "changes"))
	{
		if (strcmp(jstr(e, "type"), type) == 0)
			n++;
	}
	return n;
}

/* A pupil on HOME's roll as main since 60 days ago (admin), and the PRU's request for
 * a subsidiary from start (every weekday session at the PRU); returns its id. */
static long pru_request(const char *upn, const char *start)
{
	pupil(upn);
	if (atol(q("SELECT count(*) FROM registrations WHERE upn = '%s'", upn)) == 0)
		reg(k_admin, upn, HOME, "main", day(-60), NULL, NULL);
	call("POST", "/v1/registrations", k_pru,
	     "{\"upn\":\"%s\",\"urn\":\"" PRU "\",\"role\":\"subsidiary\",\"start_date\":\"%s\","
	     "\"schedule\":" SCHED ADA "}",
	     upn, start);
	expect_status(201);
	ck_assert_str_eq(jstr(R.json, "status"), "pending");
	ck_assert_str_eq(jstr(R.json, "awaiting"), HOME);
	ck_assert_str_eq(jstr(R.json, "requested_by"), PRU);
	ck_assert_ptr_nonnull(jstr(R.json, "expires_at"));
	return (long)cJSON_GetObjectItem(R.json, "id")->valuedouble;
}

/* The probe that once leaked: OTHER, a school with nothing to do with the pupil, registers her as main
 * from 1900 to read her history. Every step is refused, and each answer is the one an
 * unknown UPN gets. */
START_TEST(test_issue_reproduction)
{
	char upn[14], ghost[14];
	make_upn(101, upn);
	make_upn(102, ghost); /* never created */
	pupil(upn);
	reg(k_admin, upn, HOME, "main", "2024-09-02", NULL, NULL);
	char want[1024];
	/* From 1900: too early, whoever the pupil. */
	call("POST", "/v1/registrations", k_other,
	     "{\"upn\":\"%s\",\"urn\":\"" OTHER "\",\"role\":\"main\",\"start_date\":\"1900-01-01\"}",
	     upn);
	expect_problem(422, "start-date-too-early");
	snprintf(want, sizeof want, "%s", R.body);
	call("POST", "/v1/registrations", k_other,
	     "{\"upn\":\"%s\",\"urn\":\"" OTHER "\",\"role\":\"main\",\"start_date\":\"1900-01-01\"}",
	     ghost);
	ck_assert_str_eq(R.body, want);
	/* From last week, without the pupil's details, with wrong ones, or for an unknown
	 * UPN: one answer. */
	const char *bodies[] = {
	    "",
	    ",\"given_name\":\"Ada\",\"family_name\":\"Lovelace\",\"date_of_birth\":\"2012-12-11\"",
	    ",\"given_name\":\"Ida\",\"family_name\":\"Lovelace\",\"date_of_birth\":\"2012-12-10\"",
	};
	for (size_t i = 0; i < 3; i++) {
		call("POST", "/v1/registrations", k_other,
		     "{\"upn\":\"%s\",\"urn\":\"" OTHER "\",\"role\":\"main\",\"start_date\":\"%s\"%s}",
		     upn, day(-7), bodies[i]);
		expect_problem(422, "unknown-pupil");
		ck_assert_str_eq(jstr(R.json, "detail"), "no pupil with this UPN and these details");
		ck_assert(has_pointer("/upn"));
		if (i == 0)
			snprintf(want, sizeof want, "%s", R.body);
		else
			ck_assert_str_eq(R.body, want);
	}
	call("POST", "/v1/registrations", k_other,
	     "{\"upn\":\"%s\",\"urn\":\"" OTHER "\",\"role\":\"main\",\"start_date\":\"%s\"" ADA "}",
	     ghost, day(-7));
	ck_assert_str_eq(R.body, want);
	ck_assert_int_eq(qnum("SELECT count(*) FROM registration_records WHERE urn = '" OTHER "'"),
			 0);
	/* Reads: 404 as for a UPN that does not exist. */
	const char *reads[] = {"/v1/pupils/%s", "/v1/pupils/%s/registrations",
			       "/v1/pupils/%s/status",
			       "/v1/pupils/%s/attendance?from=2026-09-01&to=2026-09-30"};
	for (size_t i = 0; i < 4; i++) {
		call("GET", path_of(reads[i], upn), k_other, NULL);
		th_assert_problem(&R, 404);
		snprintf(want, sizeof want, "%s", R.body);
		call("GET", path_of(reads[i], ghost), k_other, NULL);
		ck_assert_str_eq(R.body, want);
	}
	/* Marks: one error for both. */
	call("POST", "/v1/marks", k_other,
	     "{\"marks\":[{\"upn\":\"%s\",\"urn\":\"" OTHER "\",\"date\":\"%s\",\"session\":\"AM\","
	     "\"code\":\"/\"},{\"upn\":\"%s\",\"urn\":\"" OTHER "\",\"date\":\"%s\","
	     "\"session\":\"AM\",\"code\":\"/\"}]}",
	     upn, weekday_between(13, 7), ghost, weekday_between(13, 7));
	const cJSON *results = cJSON_GetObjectItem(R.json, "results");
	ck_assert_int_eq(cJSON_GetArraySize(results), 2);
	for (int i = 0; i < 2; i++) {
		const cJSON *err = cJSON_GetObjectItem(cJSON_GetArrayItem(results, i), "error");
		ck_assert_str_eq(jstr(err, "type"), "pupil-not-on-roll");
	}
	ck_assert_str_eq(jstr(cJSON_GetObjectItem(cJSON_GetArrayItem(results, 0), "error"),
			      "detail"),
			 jstr(cJSON_GetObjectItem(cJSON_GetArrayItem(results, 1), "error"),
			      "detail"));
	/* An admin is told the difference. */
	call("POST", "/v1/marks", k_admin,
	     "{\"marks\":[{\"upn\":\"%s\",\"urn\":\"" OTHER "\",\"date\":\"%s\",\"session\":\"AM\","
	     "\"code\":\"/\"},{\"upn\":\"%s\",\"urn\":\"" OTHER "\",\"date\":\"%s\","
	     "\"session\":\"AM\",\"code\":\"/\"}]}",
	     upn, weekday_between(13, 7), ghost, weekday_between(13, 7));
	results = cJSON_GetObjectItem(R.json, "results");
	ck_assert_str_eq(jstr(cJSON_GetObjectItem(cJSON_GetArrayItem(results, 0), "error"), "type"),
			 "not-registered");
	ck_assert_str_eq(jstr(cJSON_GetObjectItem(cJSON_GetArrayItem(results, 1), "error"), "type"),
			 "unknown-pupil");
	/* A school's own main registration within max_backdate is in force at once. */
	call("POST", "/v1/registrations", k_home,
	     "{\"upn\":\"%s\",\"urn\":\"" HOME "\",\"role\":\"main\",\"start_date\":\"%s\"}", upn,
	     day(-40));
	expect_problem(422, "start-date-too-early");
}
END_TEST

/* The PRU asks; nothing changes until the home school confirms. */
START_TEST(test_pending_until_confirmed)
{
	char upn[14];
	make_upn(111, upn);
	char start[16];
	snprintf(start, sizeof start, "%s", weekday_between(13, 7));
	long id = pru_request(upn, start);
	/* Invisible to the PRU, no D, no marks. */
	call("GET", path_of("/v1/pupils/%s", upn), k_pru, NULL);
	expect_problem(404, "not-found");
	call("GET", path_of("/v1/pupils/%s/status", upn), k_pru, NULL);
	th_assert_problem(&R, 404);
	ck_assert_int_eq(qnum("SELECT count(*) FROM marks"), 0);
	call("POST", "/v1/marks", k_pru,
	     "{\"marks\":[{\"upn\":\"%s\",\"urn\":\"" PRU "\",\"date\":\"%s\",\"session\":\"AM\","
	     "\"code\":\"/\"}]}",
	     upn, start);
	ck_assert_str_eq(jstr(cJSON_GetObjectItem(cJSON_GetArrayItem(
					       cJSON_GetObjectItem(R.json, "results"), 0),
					   "error"),
			      "type"),
			 "pupil-not-on-roll");
	/* The request reached the home school's feed, not the PRU's or OTHER's. */
	ck_assert_int_eq(feed_count(k_home, "registration.requested"), 1);
	ck_assert_int_eq(feed_count(k_pru, "registration.requested"), 0);
	ck_assert_int_eq(feed_count(k_other, "registration.requested"), 0);
	/* The lists: the home school sees who the pupil is, the PRU its own request. */
	ck_assert_int_eq(call("GET", "/v1/registrations?status=pending", k_home, NULL), 200);
	const cJSON *list = cJSON_GetObjectItem(R.json, "registrations");
	ck_assert_int_eq(cJSON_GetArraySize(list), 1);
	ck_assert_str_eq(jstr(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 0), "pupil"),
			      "family_name"),
			 "Lovelace");
	ck_assert_int_eq(call("GET", "/v1/registrations?status=pending", k_pru, NULL), 200);
	list = cJSON_GetObjectItem(R.json, "registrations");
	ck_assert_int_eq(cJSON_GetArraySize(list), 1);
	ck_assert_ptr_null(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 0), "pupil"));
	ck_assert_int_eq(call("GET", "/v1/registrations?status=pending", k_other, NULL), 200);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(R.json, "registrations")), 0);
	call("GET", "/v1/registrations", k_home, NULL);
	expect_problem(422, "invalid-status");
	/* Only the school asked decides. */
	call("POST", action(id, "confirm"), k_pru, NULL);
	expect_problem(403, "forbidden");
	call("POST", action(id, "confirm"), k_other, NULL);
	expect_problem(404, "not-found");
	call("POST", action(id, "withdraw"), k_home, NULL);
	expect_problem(403, "forbidden");
	confirm(id, k_home);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(R.json, "awaiting")));
	ck_assert_ptr_nonnull(jstr(R.json, "decided_at"));
	call("POST", action(id, "confirm"), k_home, "{}");
	expect_problem(409, "nothing-pending");
	/* Now in force: the PRU sees the pupil, the home school's D marks are there. */
	ck_assert_int_eq(call("GET", path_of("/v1/pupils/%s", upn), k_pru, NULL), 200);
	ck_assert_int_gt(atol(q("SELECT count(*) FROM marks WHERE urn = '" HOME "' AND code = 'D' "
				"AND date >= '%s'", start)),
			 0);
	ck_assert_int_eq(feed_count(k_pru, "registration.created"), 1);
	ck_assert_int_eq(feed_count(k_home, "registration.created"), 2); /* its main, the sub */
	/* The PRU sees the home school's registration only from its own start date. */
	ck_assert_int_eq(call("GET", path_of("/v1/pupils/%s/registrations", upn), k_pru, NULL),
			 200);
	const cJSON *regs = cJSON_GetObjectItem(R.json, "registrations");
	ck_assert_int_eq(cJSON_GetArraySize(regs), 2);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(regs, 0), "urn"), HOME);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(regs, 0), "start_date"), start);
}
END_TEST

START_TEST(test_decline_withdraw_and_changes)
{
	char upn[14];
	make_upn(121, upn);
	long id = pru_request(upn, day(-3));
	call("POST", action(id, "decline"), k_home, "{\"reason\":\"%0600d\"}", 0);
	expect_problem(422, "invalid-field");
	ck_assert_int_eq(call("POST", action(id, "decline"), k_home,
			      "{\"reason\":\"no place agreed\"}"),
			 200);
	ck_assert_str_eq(jstr(R.json, "status"), "declined");
	ck_assert_str_eq(jstr(R.json, "decision_reason"), "no place agreed");
	ck_assert_int_eq(feed_count(k_pru, "registration.declined"), 1);
	ck_assert_int_eq(feed_count(k_home, "registration.declined"), 0);
	call("POST", action(id, "confirm"), k_home, NULL);
	expect_problem(409, "nothing-pending");

	/* Asked again, then withdrawn by the PRU. */
	id = pru_request(upn, day(-3));
	call("POST", action(id, "withdraw"), k_pru, NULL);
	expect_status(200);
	ck_assert_str_eq(jstr(R.json, "status"), "withdrawn");
	ck_assert_int_eq(feed_count(k_home, "registration.withdrawn"), 1);
	ck_assert_int_eq(qnum("SELECT count(*) FROM registrations WHERE role = 'subsidiary'"), 0);

	/* In force, then the PRU asks to move its end date later: a pending change the home
	 * school declines; an earlier end date applies at once. */
	id = pru_request(upn, day(-3));
	confirm(id, k_home);
	ck_assert_int_eq(call("PATCH", action(id, ""), k_pru, "{\"end_date\":\"%s\"}", day(30)),
			 200); /* from open-ended: earlier */
	ck_assert_int_eq(call("PATCH", action(id, ""), k_pru, "{\"end_date\":\"%s\"}", day(60)),
			 202);
	const cJSON *pc = cJSON_GetObjectItem(R.json, "pending_change");
	ck_assert_str_eq(jstr(pc, "awaiting"), HOME);
	ck_assert_str_eq(jstr(pc, "end_date"), day(60));
	ck_assert_str_eq(jstr(R.json, "end_date"), day(30));
	call("PATCH", action(id, ""), k_pru, "{\"end_date\":\"%s\"}", day(90));
	expect_problem(409, "change-pending");
	ck_assert_int_eq(call("GET", "/v1/registrations?status=pending", k_home, NULL), 200);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(R.json, "registrations")), 1);
	ck_assert_int_eq(call("POST", action(id, "decline"), k_home, NULL), 200);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(R.json, "pending_change")));
	ck_assert_str_eq(jstr(R.json, "end_date"), day(30));
	/* Asked again and confirmed: applied as a PATCH would. */
	ck_assert_int_eq(call("PATCH", action(id, ""), k_pru, "{\"end_date\":null}"), 202);
	confirm(id, k_home);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(R.json, "end_date")));
}
END_TEST

/* Requests nobody decides on expire: by the SQL function, and by the daemon's timer. */
START_TEST(test_expiry)
{
	char upn[14];
	make_upn(131, upn);
	long id = pru_request(upn, day(-3));
	th_sql(rg_url, "UPDATE registration_records SET expires_at = now() - interval '1 second' "
		       "WHERE state = 'pending'");
	call("POST", action(id, "confirm"), k_home, NULL);
	expect_problem(409, "nothing-pending");
	ck_assert_int_eq(qnum("SELECT dualreg_expire_requests()"), 1);
	ck_assert_int_eq(qnum("SELECT dualreg_expire_requests()"), 0);
	ck_assert_str_eq(q("SELECT state FROM registration_records WHERE id = %ld", id), "expired");
	ck_assert_int_eq(feed_count(k_home, "registration.expired"), 1);
	ck_assert_int_eq(feed_count(k_pru, "registration.expired"), 1);

	/* The daemon's alerts timer runs the expiry. */
	th_daemon_stop(&rg_d, SIGTERM);
	th_daemon_start(&rg_d, rg_url, "[alerts]\ncheck_interval = 200ms\n", false);
	id = pru_request(upn, day(-3));
	th_sql(rg_url, "UPDATE registration_records SET expires_at = now() - interval '1 second' "
		       "WHERE state = 'pending'");
	for (int i = 0; i < 100 && strcmp(q("SELECT state FROM registration_records WHERE id = %ld",
					    id),
					  "expired") != 0;
	     i++)
		usleep(100 * 1000);
	ck_assert_str_eq(q("SELECT state FROM registration_records WHERE id = %ld", id), "expired");
}
END_TEST

/* A school's 409 names no other school's registration. */
START_TEST(test_conflicts_name_nothing)
{
	char upn[14];
	make_upn(141, upn);
	pupil(upn);
	long main_id = reg(k_admin, upn, HOME, "main", day(-60), NULL, NULL);
	long sub_id = reg(k_admin, upn, OTHER, "subsidiary", day(-20), NULL, SCHED);
	char ids[2][24];
	snprintf(ids[0], sizeof ids[0], "%ld", main_id);
	snprintf(ids[1], sizeof ids[1], "%ld", sub_id);
	/* The PRU's request while OTHER's subsidiary runs. */
	call("POST", "/v1/registrations", k_pru,
	     "{\"upn\":\"%s\",\"urn\":\"" PRU "\",\"role\":\"subsidiary\",\"start_date\":\"%s\","
	     "\"schedule\":" SCHED ADA "}",
	     upn, day(-3));
	expect_problem(409, "overlapping-registration");
	ck_assert_str_eq(jstr(R.json, "detail"),
			 "the pupil already has a subsidiary registration in that period");
	ck_assert_ptr_null(strstr(R.body, OTHER));
	ck_assert_ptr_null(strstr(R.body, ids[1]));
	/* OTHER's main while HOME's runs; HOME's second main. */
	call("POST", "/v1/registrations", k_other,
	     "{\"upn\":\"%s\",\"urn\":\"" OTHER "\",\"role\":\"main\",\"start_date\":\"%s\"}", upn,
	     day(-3));
	expect_problem(409, "overlapping-registration");
	ck_assert_str_eq(jstr(R.json, "detail"),
			 "the pupil already has a main registration in that period");
	ck_assert_ptr_null(strstr(R.body, HOME));
	ck_assert_ptr_null(strstr(R.body, ids[0]));
	call("POST", "/v1/registrations", k_home,
	     "{\"upn\":\"%s\",\"urn\":\"" HOME "\",\"role\":\"main\",\"start_date\":\"%s\"}", upn,
	     day(-3));
	expect_problem(409, "overlapping-registration");
	ck_assert_str_eq(jstr(R.json, "detail"),
			 "the pupil is already on this school's roll in that period");
	/* An admin is told which. */
	call("POST", "/v1/registrations", k_admin,
	     "{\"upn\":\"%s\",\"urn\":\"" PRU "\",\"role\":\"subsidiary\",\"start_date\":\"%s\","
	     "\"schedule\":" SCHED "}",
	     upn, day(-3));
	expect_problem(409, "overlapping-registration");
	ck_assert_ptr_nonnull(strstr(R.body, ids[1]));
}
END_TEST

Suite *consent_core_suite(void)
{
	Suite *s = suite_create("consent_core");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, rg_setup, rg_teardown);
	tcase_add_test(tc, test_issue_reproduction);
	tcase_add_test(tc, test_pending_until_confirmed);
	tcase_add_test(tc, test_decline_withdraw_and_changes);
	tcase_add_test(tc, test_expiry);
	tcase_add_test(tc, test_conflicts_name_nothing);
	suite_add_tcase(s, tc);
	return s;
}
