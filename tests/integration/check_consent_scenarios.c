/*
 * consent_scenarios: the named cases of registrations by consent, on the placement of
 * consent_fixture.h, against the real daemon: the probe that once leaked a pupil (an unrelated
 * school probing with a back-dated main registration), identical answers for unknown
 * pupils and hidden ones, a request reaching the home school's webhook and changing
 * nothing until confirmed, expiry, pending changes of an in-force placement, and the
 * home school proposing (the PRU decides) with conflicts that name nothing of others.
 * The whole table of who sees what is check_consent_matrix.c.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../suites.h"
#include "../th_server.h"
#include "registry_fixture.h"

#include "../suites.h"
#include "../th_server.h"
#include "consent_fixture.h"

/* ---- the probe that once leaked, and the oracles ---- */

/* The answer to a request, with the UPN blanked, for comparing two answers. */
static void answer_without(const char *upn, char *out, size_t len)
{
	snprintf(out, len, "%ld ", R.status);
	size_t n = strlen(out);
	for (const char *p = R.body; p != NULL && *p != '\0' && n + 1 < len;) {
		if (strncmp(p, upn, 13) == 0) {
			n += (size_t)snprintf(out + n, len - n, "UPN");
			p += 13;
		} else {
			out[n++] = *p++;
		}
	}
	out[n < len ? n : len - 1] = '\0';
}

/*
 * Issue 10 as reported: school A, unrelated to a pupil on the roll of school B and the
 * PRU, put the pupil on its own roll with a main registration of one day in 1900 and
 * could then read the pupil's name and every registration. Now that request is refused,
 * and the pupil stays invisible to A.
 */
START_TEST(test_issue_backdated_main_registration_refused)
{
	enter(CONFIRMED);
	char upn_path[64], regs_path[96];
	snprintf(upn_path, sizeof upn_path, "/v1/pupils/%s", fx.upn);
	snprintf(regs_path, sizeof regs_path, "/v1/pupils/%s/registrations", fx.upn);
	call("GET", upn_path, k_other, NULL);
	expect_problem(404, "not-found");
	call("POST", "/v1/registrations", k_other,
	     "{\"upn\":\"%s\",\"urn\":\"" OTHER "\",\"role\":\"main\",\"start_date\":\"1900-01-01\","
	     "\"end_date\":\"1900-01-01\"}",
	     fx.upn);
	ck_assert_msg(R.status == 422, "%ld %s", R.status, R.body);
	ck_assert_msg(strstr(R.body, "/problems/start-date-too-early") != NULL ||
			  strstr(R.body, "/problems/unknown-pupil") != NULL,
		      "%s", R.body);
	ck_assert_ptr_null(strstr(R.body, FAMILY));
	ck_assert_int_eq(qnum("SELECT count(*) FROM registrations WHERE urn = '" OTHER "'"), 0);
	call("GET", upn_path, k_other, NULL);
	expect_problem(404, "not-found");
	call("GET", regs_path, k_other, NULL);
	expect_problem(404, "not-found");
	/* Even with the pupil's details, a back-dated main registration is refused. */
	call("POST", "/v1/registrations", k_other,
	     "{\"upn\":\"%s\",\"urn\":\"" OTHER "\",\"role\":\"main\",\"start_date\":\"1900-01-01\","
	     "\"end_date\":\"1900-01-01\"," IDENTITY "}",
	     fx.upn);
	expect_problem(422, "start-date-too-early");
	call("GET", regs_path, k_other, NULL);
	expect_problem(404, "not-found");
}
END_TEST

/*
 * No oracle: whether a UPN exists, exists with other details, or exists with the
 * right details but not for this key, every probe gets the same answer.
 */
START_TEST(test_no_oracle_for_unknown_pupils)
{
	enter(CONFIRMED);
	char unknown[14];
	make_upn(78, unknown);
	/* At OTHER, a subsidiary or a main registration: the existing pupil without details,
	 * with wrong or partial details, and a UPN nobody has: all one answer. */
	const char *roles[] = {"\"role\":\"subsidiary\",\"schedule\":{\"mon\":[\"AM\"]}",
			       "\"role\":\"main\""};
	const char *variants[] = {
	    "",
	    ",\"given_name\":\"Ada\",\"family_name\":\"Byron\",\"date_of_birth\":\"" DOB "\"",
	    ",\"given_name\":\"Ada\",\"family_name\":\"" FAMILY "\",\"date_of_birth\":\"2012-12-11\"",
	    ",\"given_name\":\"Ada\"",
	};
	enum { NV = sizeof variants / sizeof variants[0] };
	char first[2048] = "", got[2048];
	for (size_t i = 0; i < 2 * 2 * NV; i++) {
		const char *upn = i % 2 ? unknown : fx.upn;
		call("POST", "/v1/registrations", k_other,
		     "{\"upn\":\"%s\",\"urn\":\"" OTHER "\",%s,\"start_date\":\"%s\"%s}", upn,
		     roles[i / (2 * NV)], fx.t, variants[(i / 2) % NV]);
		expect_problem(422, "unknown-pupil");
		ck_assert_str_eq(jstr(R.json, "detail"), "no pupil with this UPN and these details");
		answer_without(upn, got, sizeof got);
		if (i == 0)
			snprintf(first, sizeof first, "%s", got);
		ck_assert_str_eq(got, first);
	}
	/* Marks: one error type for a pupil not on the roll, whether the UPN exists. */
	const char *upns[] = {fx.upn, unknown};
	for (int i = 0; i < 2; i++) {
		call("POST", "/v1/marks", k_other,
		     "{\"marks\":[{\"upn\":\"%s\",\"urn\":\"" OTHER "\",\"date\":\"%s\",\"session\":"
		     "\"AM\",\"code\":\"/\"}]}",
		     upns[i], fx.d);
		expect_status(200);
		const cJSON *r0 = cJSON_GetArrayItem(cJSON_GetObjectItem(R.json, "results"), 0);
		ck_assert_str_eq(jstr(r0, "status"), "rejected");
		ck_assert_str_eq(jstr(cJSON_GetObjectItem(r0, "error"), "type"), "pupil-not-on-roll");
		answer_without(upns[i], got, sizeof got);
		if (i == 0)
			snprintf(first, sizeof first, "%s", got);
		ck_assert_str_eq(got, first);
	}
	/* Reads: the same 404 for a pupil of others and for nobody. */
	for (int i = 0; i < 2; i++) {
		char path[96];
		snprintf(path, sizeof path, "/v1/pupils/%s/status?date=%s", upns[i], fx.d);
		call("GET", path, k_other, NULL);
		th_assert_problem(&R, 404);
		answer_without(upns[i], got, sizeof got);
		if (i == 0)
			snprintf(first, sizeof first, "%s", got);
		ck_assert_str_eq(got, first);
	}
	/* Admin keeps the precise errors. */
	call("POST", "/v1/marks", k_admin,
	     "{\"marks\":[{\"upn\":\"%s\",\"urn\":\"" OTHER "\",\"date\":\"%s\",\"session\":"
	     "\"AM\",\"code\":\"/\"}]}",
	     unknown, fx.d);
	ck_assert_str_eq(jstr(cJSON_GetObjectItem(cJSON_GetArrayItem(
				  cJSON_GetObjectItem(R.json, "results"), 0), "error"), "type"),
			 "unknown-pupil");
	/* Nothing was written for OTHER. */
	ck_assert_int_eq(qnum("SELECT count(*) FROM registrations WHERE urn = '" OTHER "'"), 0);
	ck_assert_int_eq(qnum("SELECT count(*) FROM marks WHERE urn = '" OTHER "'"), 0);
}
END_TEST

/* ---- a request reaches the home school's MIS and changes nothing until confirmed ---- */

static struct th_server sink;
static pthread_mutex_t sink_mu = PTHREAD_MUTEX_INITIALIZER;
static char sink_bodies[16][4096];
static int sink_n;

static void sink_cb(struct evhttp_request *req, void *arg)
{
	(void)arg;
	struct evbuffer *b = evhttp_request_get_input_buffer(req);
	pthread_mutex_lock(&sink_mu);
	if (sink_n < 16) {
		size_t n = evbuffer_get_length(b);
		if (n >= sizeof sink_bodies[0])
			n = sizeof sink_bodies[0] - 1;
		evbuffer_copyout(b, sink_bodies[sink_n], n);
		sink_bodies[sink_n++][n] = '\0';
	}
	pthread_mutex_unlock(&sink_mu);
	evhttp_send_reply(req, 204, "No Content", NULL);
}

/* Waits (bounded) for a webhook of this type; returns its body (a copy) or fails. */
static cJSON *wait_webhook(const char *type)
{
	double deadline = th_now() + 15;
	for (;;) {
		pthread_mutex_lock(&sink_mu);
		for (int i = 0; i < sink_n; i++) {
			cJSON *j = cJSON_Parse(sink_bodies[i]);
			if (j != NULL && strcmp(jstr(j, "type"), type) == 0) {
				pthread_mutex_unlock(&sink_mu);
				return j;
			}
			cJSON_Delete(j);
		}
		pthread_mutex_unlock(&sink_mu);
		ck_assert_msg(th_now() < deadline, "no %s webhook", type);
		usleep(20000);
	}
}

static long derived_d(void)
{
	return atol(q("SELECT count(*) FROM marks WHERE upn = '%s' AND code = 'D' AND "
		      "source = 'derived'",
		      fx.upn));
}

/* Derived D marks at the home school: the sessions the pupil is expected at the PRU. */
static long derived_d_home(void)
{
	return atol(q("SELECT count(*) FROM marks WHERE upn = '%s' AND code = 'D' AND "
		      "source = 'derived' AND urn = '" HOME "'",
		      fx.upn));
}

START_TEST(test_request_reaches_home_webhook_and_waits_for_consent)
{
	sink_n = 0;
	sink.handler = sink_cb;
	th_server_start(&sink);
	call("POST", "/v1/subscriptions", k_home,
	     "{\"url\":\"http://127.0.0.1:%u/hook\",\"events\":[\"*\"]}", sink.port);
	expect_status(201);
	ck_assert_int_eq(derived_d(), 0);

	/* The PRU proposes, with the pupil's details in another case: pending. */
	call("POST", "/v1/registrations", k_pru,
	     "{\"upn\":\"%s\",\"urn\":\"" PRU "\",\"role\":\"subsidiary\",\"start_date\":\"%s\","
	     "\"schedule\":" ALL_WEEK ",\"given_name\":\"ADA\",\"family_name\":\"lovelace\","
	     "\"date_of_birth\":\"" DOB "\"}",
	     fx.upn, fx.s0);
	expect_status(201);
	ck_assert_str_eq(jstr(R.json, "status"), "pending");
	ck_assert_ptr_nonnull(jstr(R.json, "expires_at"));
	long id = (long)cJSON_GetNumberValue(cJSON_GetObjectItem(R.json, "id"));
	cJSON *hook = wait_webhook("registration.requested");
	ck_assert_str_eq(jstr(cJSON_GetObjectItem(hook, "data"), "upn"), fx.upn);
	cJSON_Delete(hook);
	/* To the home school only. */
	ck_assert_str_eq(q("SELECT array_to_string(urns, ',') FROM events WHERE type = "
			   "'registration.requested'"),
			 HOME);

	/* Nothing changes until the home school agrees. */
	ck_assert_int_eq(derived_d(), 0);
	call("POST", "/v1/marks", k_pru,
	     "{\"marks\":[{\"upn\":\"%s\",\"urn\":\"" PRU "\",\"date\":\"%s\",\"session\":\"AM\","
	     "\"code\":\"/\"}]}",
	     fx.upn, fx.d);
	expect_status(200);
	ck_assert_str_eq(jstr(cJSON_GetObjectItem(cJSON_GetArrayItem(
				  cJSON_GetObjectItem(R.json, "results"), 0), "error"), "type"),
			 "pupil-not-on-roll");
	char status_path[96];
	snprintf(status_path, sizeof status_path, "/v1/pupils/%s/status?date=%s", fx.upn, fx.d);
	call("GET", status_path, k_pru, NULL);
	th_assert_problem(&R, 404);
	call("GET", status_path, k_home, NULL);
	expect_status(200);
	ck_assert_ptr_null(strstr(R.body, PRU));
	ck_assert_int_eq(qnum("SELECT count(*) FROM marks WHERE urn = '" PRU "'"), 0);

	/* The home school sees the request, with the pupil, and confirms it. */
	call("GET", "/v1/registrations?status=pending", k_home, NULL);
	expect_status(200);
	const cJSON *item = cJSON_GetArrayItem(cJSON_GetObjectItem(R.json, "registrations"), 0);
	ck_assert_int_eq((long)cJSON_GetNumberValue(cJSON_GetObjectItem(item, "id")), id);
	ck_assert_str_eq(jstr(item, "awaiting"), HOME);
	ck_assert_str_eq(jstr(cJSON_GetObjectItem(item, "pupil"), "given_name"), GIVEN);
	call("POST", reg_action(id, "confirm"), k_pru, NULL);
	expect_problem(403, "forbidden");
	call("POST", reg_action(id, "confirm"), k_home, NULL);
	expect_status(200);
	ck_assert_str_eq(jstr(R.json, "status"), "in_force");
	ck_assert_ptr_nonnull(jstr(R.json, "decided_at"));
	cJSON_Delete(wait_webhook("registration.created"));
	ck_assert_int_gt(derived_d(), 0);
	call("POST", "/v1/marks", k_pru,
	     "{\"marks\":[{\"upn\":\"%s\",\"urn\":\"" PRU "\",\"date\":\"%s\",\"session\":\"AM\","
	     "\"code\":\"/\"}]}",
	     fx.upn, fx.d);
	expect_status(200);
	ck_assert_str_ne(jstr(cJSON_GetArrayItem(cJSON_GetObjectItem(R.json, "results"), 0),
			      "status"),
			 "rejected");
	call("GET", status_path, k_pru, NULL);
	expect_status(200);
	call("POST", reg_action(id, "confirm"), k_home, NULL);
	expect_problem(409, "nothing-pending");
	th_server_stop(&sink);
}
END_TEST

START_TEST(test_expiry)
{
	enter(PENDING);
	ck_assert_int_eq(derived_d(), 0);
	expire(fx.sub_id);
	/* Both schools are told. */
	ck_assert_str_eq(q("SELECT array_to_string(urns, ',') FROM events WHERE "
			   "type = 'registration.expired'"),
			 HOME "," PRU);
	call("POST", reg_action(fx.sub_id, "confirm"), k_home, NULL);
	expect_problem(409, "nothing-pending");
	ck_assert_int_eq(derived_d(), 0);
	/* A new request can be made. */
	long again = propose();
	ck_assert_int_ne(again, fx.sub_id);
}
END_TEST

/*
 * An in-force placement: widening the other school's exposure waits for it (202 and a
 * pending change); narrowing happens at once.
 */
START_TEST(test_pending_change)
{
	enter(CONFIRMED);
	/* The home school moves the PRU's sessions: the PRU must agree. */
	call("PATCH", reg_action(fx.sub_id, NULL), k_home,
	     "{\"schedule\":{\"mon\":[\"AM\"]},\"effective_from\":\"%s\"}", fx.d);
	expect_status(202);
	const cJSON *pc = cJSON_GetObjectItem(R.json, "pending_change");
	ck_assert(cJSON_IsObject(pc));
	ck_assert_str_eq(jstr(pc, "requested_by"), HOME);
	ck_assert_str_eq(jstr(pc, "awaiting"), PRU);
	long before = derived_d_home();
	call("POST", reg_action(fx.sub_id, "confirm"), k_home, NULL);
	th_assert_problem(&R, 403);
	call("POST", reg_action(fx.sub_id, "confirm"), k_pru, NULL);
	expect_status(200);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(R.json, "pending_change")));
	ck_assert_int_lt(derived_d_home(), before);
	/* The PRU reopens its placement: widening the home school's exposure; declined. */
	call("PATCH", reg_action(fx.sub_id, NULL), k_pru, "{\"end_date\":null}");
	expect_status(202);
	ck_assert_str_eq(jstr(cJSON_GetObjectItem(R.json, "pending_change"), "awaiting"), HOME);
	call("POST", reg_action(fx.sub_id, "decline"), k_home, "{\"reason\":\"ends as agreed\"}");
	expect_status(200);
	ck_assert_str_eq(jstr(R.json, "end_date"), fx.s1);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(R.json, "pending_change")));
	/* Narrowing: at once. */
	call("PATCH", reg_action(fx.sub_id, NULL), k_pru, "{\"end_date\":\"%s\"}", fx.d);
	expect_status(200);
	ck_assert_str_eq(jstr(R.json, "end_date"), fx.d);
}
END_TEST

/*
 * The other direction: the home school proposes the placement at the PRU, which
 * decides. A school's own main registration is in force at once within the back-dating
 * limit. A conflict with another school's registration names nothing of it.
 */
START_TEST(test_home_proposes_and_conflicts_name_nothing)
{
	char upn2[14];
	make_upn(79, upn2);
	pupil(upn2);
	/* HOME's own main: at once, within [registrations] max_backdate (30 days). */
	call("POST", "/v1/registrations", k_home,
	     "{\"upn\":\"%s\",\"urn\":\"" HOME "\",\"role\":\"main\",\"start_date\":\"%s\"," IDENTITY
	     "}",
	     upn2, day(-31));
	expect_problem(422, "start-date-too-early");
	call("POST", "/v1/registrations", k_home,
	     "{\"upn\":\"%s\",\"urn\":\"" HOME "\",\"role\":\"main\",\"start_date\":\"%s\"," IDENTITY
	     "}",
	     upn2, day(-30));
	expect_status(201);
	ck_assert_str_eq(jstr(R.json, "status"), "in_force");
	/* HOME proposes the placement at the PRU: pending, awaiting the PRU. */
	call("POST", "/v1/registrations", k_home,
	     "{\"upn\":\"%s\",\"urn\":\"" PRU "\",\"role\":\"subsidiary\",\"start_date\":\"%s\","
	     "\"schedule\":{\"tue\":[\"AM\"]}}",
	     upn2, day(-7));
	expect_status(201);
	ck_assert_str_eq(jstr(R.json, "status"), "pending");
	ck_assert_str_eq(jstr(R.json, "awaiting"), PRU);
	long id = (long)cJSON_GetNumberValue(cJSON_GetObjectItem(R.json, "id"));
	ck_assert_str_eq(q("SELECT array_to_string(urns, ',') FROM events WHERE type = "
			   "'registration.requested' AND upn = '%s'",
			   upn2),
			 PRU);
	/* The PRU decides knowing whom; HOME, the proposer, cannot. */
	call("GET", "/v1/registrations?status=pending", k_pru, NULL);
	expect_status(200);
	const cJSON *item = cJSON_GetArrayItem(cJSON_GetObjectItem(R.json, "registrations"), 0);
	ck_assert_str_eq(jstr(cJSON_GetObjectItem(item, "pupil"), "upn"), upn2);
	call("POST", reg_action(id, "decline"), k_home, "{}");
	expect_problem(403, "forbidden");
	call("POST", reg_action(id, "confirm"), k_pru, NULL);
	expect_status(200);
	ck_assert_str_eq(jstr(R.json, "status"), "in_force");

	/* OTHER, knowing the pupil, proposes an overlapping placement of its own: refused,
	 * naming neither the PRU nor its dates. */
	call("POST", "/v1/registrations", k_other,
	     "{\"upn\":\"%s\",\"urn\":\"" OTHER "\",\"role\":\"subsidiary\",\"start_date\":\"%s\","
	     "\"schedule\":{\"wed\":[\"AM\"]}," IDENTITY "}",
	     upn2, day(0));
	th_assert_problem(&R, 409);
	ck_assert_msg(strstr(R.body, PRU) == NULL && strstr(R.body, day(-7)) == NULL &&
			  strstr(R.body, HOME) == NULL,
		      "%s", R.body);
	ck_assert_int_eq(qnum("SELECT count(*) FROM registration_records WHERE urn = '" OTHER "'"),
			 0);
}
END_TEST

Suite *consent_scenarios_suite(void)
{
	Suite *s = suite_create("consent_scenarios");
	TCase *tc = tcase_create("scenarios");
	tcase_add_checked_fixture(tc, cm_setup, cm_teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_issue_backdated_main_registration_refused);
	tcase_add_test(tc, test_no_oracle_for_unknown_pupils);
	tcase_add_test(tc, test_request_reaches_home_webhook_and_waits_for_consent);
	tcase_add_test(tc, test_expiry);
	tcase_add_test(tc, test_pending_change);
	tcase_add_test(tc, test_home_proposes_and_conflicts_name_nothing);
	suite_add_tcase(s, tc);
	return s;
}
