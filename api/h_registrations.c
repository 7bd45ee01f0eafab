/*
 * registrations: pupils on schools' rolls, main or subsidiary, with the versioned
 * schedule of a subsidiary registration, and the consent a school's registration needs
 * from the other school.
 *  POST  /v1/registrations               admin: in force at once. A school: a main at its
 *                                        own school in force at once (start at most
 *                                        [registrations] max_backdate ago); a subsidiary
 *                                        at its own school, or as the main school in
 *                                        force on its start date at another, a request
 *                                        (pending) the other school decides on. A pupil
 *                                        the school cannot see needs given_name,
 *                                        family_name and date_of_birth
 *  PATCH /v1/registrations/{id}          {end_date} (null reopens) and/or
 *                                        {schedule, effective_from}; same schools; 404
 *                                        outside a school key's pupils; a school's change
 *                                        widening the other school's exposure: 202, a
 *                                        pending change
 *  POST  /v1/registrations/{id}/confirm  the school asked (or admin) agrees
 *  POST  /v1/registrations/{id}/decline  the school asked (or admin) refuses {reason?}
 *  POST  /v1/registrations/{id}/withdraw the school that asked (or admin) takes it back
 *  GET   /v1/registrations?status=pending  requests awaiting or made by the key
 *  GET   /v1/pupils/{upn}/registrations  a pupil's registrations, other schools' clipped
 *                                        to the key's own periods
 * The rules, the registration.* events and the derived D marks that follow live in
 * sql/functions/30_registry.sql and 35_consent.sql, run in one transaction.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/config.h"
#include "dualreg/schedule.h"
#include "dualreg/upn.h"
#include "handlers.h"
#include "json_fields.h"
#include "sql_reply.h"

#define PUPIL_NAME_MAX 100
#define DECISION_REASON_MAX 500
#define REQUESTS_LIMIT_DEFAULT 100
#define REQUESTS_LIMIT_MAX 500

static const char *const roles[] = {"main", "subsidiary", NULL};

/* Race fallback: the pupil lock normally lets the SQL name the clash first. */
static const struct sql_reply_map registration_constraints[] = {
    {"registrations_upn_role_daterange_excl", 409, "overlapping-registration", "/start_date",
     "the period overlaps another registration of the same role"},
    {"registrations_upn_urn_daterange_excl", 409, "overlapping-registration", "/start_date",
     "the period overlaps another registration at the same school"},
    {NULL, 0, NULL, NULL, NULL},
};

/* Parses body.schedule into mask text; false (with an error recorded) if it is bad. */
static bool read_schedule(struct jf *j, const cJSON *body, char mask_text[16])
{
	char where[64], why[160];
	unsigned mask;
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(body, "schedule");
	if (schedule_parse(s, &mask, where, sizeof where, why, sizeof why) != 0) {
		char base[80];
		snprintf(base, sizeof base, "/schedule%s", where);
		jf_fail(j, "invalid-schedule", base, NULL, "schedule: %s", why);
		return false;
	}
	snprintf(mask_text, 16, "%u", mask);
	return true;
}

static void reply_refused(struct api_req *r, struct jf *j, cJSON *body)
{
	cJSON_Delete(body);
	api_reply_problem(r, jf_take_problem(j));
}

/* A registration id in a path: 1 to 18 digits; otherwise replies 404 and returns false. */
static bool registration_id_ok(struct api_req *r, const char *id)
{
	size_t idlen = strlen(id);
	bool id_ok = idlen >= 1 && idlen <= 18 && id[0] != '0';
	for (size_t i = 0; id_ok && i < idlen; i++)
		id_ok = id[i] >= '0' && id[i] <= '9';
	if (!id_ok)
		api_reply_error(r, 404, NULL, "no registration %.24s", id);
	return id_ok;
}

void h_registrations_create(struct api_req *r)
{
	static const char *const known[] = {"upn",	  "urn",	 "role",
					    "start_date", "end_date",	 "schedule",
					    "given_name", "family_name", "date_of_birth",
					    NULL};
	cJSON *body = api_json_body(r);
	if (body == NULL)
		return;
	struct jf j;
	jf_init(&j);
	jf_only(&j, body, "", known);
	const char *upn = jf_upn(&j, body, "", "upn", true);
	const char *urn = jf_digits(&j, body, "", "urn", true, 6, "invalid-urn");
	const char *role = jf_enum(&j, body, "", "role", true, roles);
	const char *start = jf_date(&j, body, "", "start_date", true);
	const char *end = jf_date(&j, body, "", "end_date", false);
	if (start != NULL && end != NULL && strcmp(end, start) < 0)
		jf_fail(&j, "invalid-end-date", "", "end_date",
			"end_date (%s) is before start_date (%s)", end, start);
	const char *given = jf_text(&j, body, "", "given_name", false, PUPIL_NAME_MAX);
	const char *family = jf_text(&j, body, "", "family_name", false, PUPIL_NAME_MAX);
	const char *dob = jf_date(&j, body, "", "date_of_birth", false);
	bool has_schedule = jf_has(body, "schedule") && !jf_is_null(body, "schedule");
	char mask[16] = "";
	if (role != NULL && strcmp(role, "subsidiary") == 0) {
		if (!has_schedule)
			jf_fail(&j, "schedule-required", "", "schedule",
				"a subsidiary registration needs a schedule: the sessions the "
				"pupil is expected at this school, e.g. {\"mon\": [\"AM\", \"PM\"]}");
		else
			read_schedule(&j, body, mask);
	} else if (role != NULL && has_schedule) {
		jf_fail(&j, "schedule-not-allowed", "", "schedule",
			"only a subsidiary registration has a schedule");
	}
	if (j.problem != NULL) {
		reply_refused(r, &j, body);
		return;
	}
	char ttl[16], backdate[16];
	snprintf(ttl, sizeof ttl, "%u", r->env->cfg->registration_request_ttl_ms);
	snprintf(backdate, sizeof backdate, "%u",
		 r->env->cfg->registration_max_backdate_ms / 86400000u);
	const char *params[] = {api_key_scope(r), upn, urn, role, start, end,
				mask[0] ? mask : NULL, given, family, dob, ttl, backdate};
	sql_reply_txn(r,
		      "SELECT 201, dualreg_registration_create($1, $2, $3, $4, $5::date, "
		      "$6::date, $7::int, $8, $9, $10::date, $11::bigint * interval '1 millisecond', "
		      "$12::int)",
		      12, params, registration_constraints);
	cJSON_Delete(body);
}

void h_registration_patch(struct api_req *r)
{
	static const char *const known[] = {"end_date", "schedule", "effective_from", NULL};
	const char *id = r->params.value[0];
	if (!registration_id_ok(r, id))
		return;
	cJSON *body = api_json_body(r);
	if (body == NULL)
		return;
	struct jf j;
	jf_init(&j);
	jf_only(&j, body, "", known);
	bool end_set = jf_has(body, "end_date");
	const char *end = jf_date(&j, body, "", "end_date", false);
	bool has_schedule = jf_has(body, "schedule") && !jf_is_null(body, "schedule");
	bool has_eff = jf_has(body, "effective_from") && !jf_is_null(body, "effective_from");
	const char *eff = jf_date(&j, body, "", "effective_from", false);
	char mask[16] = "";
	if (has_schedule) {
		read_schedule(&j, body, mask);
		if (!has_eff)
			jf_fail(&j, "missing-field", "", "effective_from",
				"a new schedule needs effective_from: the first date it applies");
	} else if (has_eff) {
		jf_fail(&j, "missing-field", "", "schedule",
			"effective_from goes with a schedule");
	}
	if (!end_set && !has_schedule && !has_eff && j.problem == NULL)
		jf_fail(&j, "empty-patch", "", NULL,
			"nothing to change: send end_date, or schedule with effective_from");
	if (j.problem != NULL) {
		reply_refused(r, &j, body);
		return;
	}
	char ttl[16];
	snprintf(ttl, sizeof ttl, "%u", r->env->cfg->registration_request_ttl_ms);
	const char *params[] = {api_key_scope(r), id, end_set ? "t" : "f", end,
				mask[0] ? mask : NULL, eff, ttl};
	sql_reply_txn(r,
		      "SELECT status, body FROM dualreg_registration_update($1, $2::bigint, "
		      "$3::boolean, $4::date, $5::int, $6::date, "
		      "$7::bigint * interval '1 millisecond')",
		      7, params, registration_constraints);
	cJSON_Delete(body);
}

void h_pupil_registrations(struct api_req *r)
{
	if (upn_validate(r->params.value[0], NULL) != UPN_OK) {
		api_reply_error(r, 404, NULL, "no such pupil");
		return;
	}
	const char *params[] = {r->params.value[0], api_key_scope(r)};
	sql_reply_query(r, "SELECT 200, dualreg_pupil_registrations_json($1, $2)", 2, params);
}

/*
 * The body of confirm and withdraw (none, or {}) and of decline ({"reason"?}): into
 * *reason (NULL: none). False when it replied with a problem.
 */
static bool decision_body(struct api_req *r, bool with_reason, char **reason)
{
	static const char *const none[] = {NULL};
	static const char *const with[] = {"reason", NULL};
	*reason = NULL;
	if (evbuffer_get_length(evhttp_request_get_input_buffer(r->req)) == 0)
		return true;
	cJSON *body = api_json_body(r);
	if (body == NULL)
		return false;
	struct jf j;
	jf_init(&j);
	jf_only(&j, body, "", with_reason ? with : none);
	const char *text = with_reason ? jf_text(&j, body, "", "reason", false, DECISION_REASON_MAX)
				       : NULL;
	if (j.problem != NULL) {
		reply_refused(r, &j, body);
		return false;
	}
	if (text != NULL)
		*reason = strdup(text);
	cJSON_Delete(body);
	return true;
}

/* POST /v1/registrations/{id}/confirm, /decline, /withdraw. */
static void decide(struct api_req *r, const char *sql, bool with_reason)
{
	const char *id = r->params.value[0];
	if (!registration_id_ok(r, id))
		return;
	char *reason;
	if (!decision_body(r, with_reason, &reason))
		return;
	const char *params[] = {api_key_scope(r), id, reason};
	sql_reply_txn(r, sql, with_reason ? 3 : 2, params, registration_constraints);
	free(reason);
}

void h_registration_confirm(struct api_req *r)
{
	decide(r, "SELECT 200, dualreg_registration_confirm($1, $2::bigint)", false);
}

void h_registration_decline(struct api_req *r)
{
	decide(r, "SELECT 200, dualreg_registration_decline($1, $2::bigint, $3)", true);
}

void h_registration_withdraw(struct api_req *r)
{
	decide(r, "SELECT 200, dualreg_registration_withdraw($1, $2::bigint)", false);
}

/* GET /v1/registrations?status=pending[&cursor=&limit=]: only the pending requests are
 * listed so far; any other status is 422 invalid-status. */
void h_registrations_list(struct api_req *r)
{
	char status[16] = "", cursor[24] = "", limit_text[16] = "";
	if (api_query_param(r, "status", status, sizeof status) != 1 ||
	    strcmp(status, "pending") != 0) {
		api_reply_error(r, 422, "invalid-status",
				"status=pending is required: the list shows the requests awaiting "
				"a decision");
		return;
	}
	int c = api_query_param(r, "cursor", cursor, sizeof cursor);
	size_t clen = strlen(cursor);
	bool cursor_ok = c == 0 || (clen >= 1 && clen <= 18 && cursor[0] != '0');
	for (size_t i = 0; cursor_ok && i < clen; i++)
		cursor_ok = cursor[i] >= '0' && cursor[i] <= '9';
	if (!cursor_ok) {
		api_reply_error(r, 400, "invalid-cursor",
				"cursor is not one this server returned as next_cursor");
		return;
	}
	long limit = REQUESTS_LIMIT_DEFAULT;
	int l = api_query_param(r, "limit", limit_text, sizeof limit_text);
	if (l != 0) {
		char *end;
		limit = strtol(limit_text, &end, 10);
		if (l < 0 || limit_text[0] < '0' || limit_text[0] > '9' || *end != '\0' ||
		    limit < 1 || limit > REQUESTS_LIMIT_MAX) {
			api_reply_error(r, 400, "invalid-limit", "limit must be 1 to %d",
					REQUESTS_LIMIT_MAX);
			return;
		}
	}
	char limit_param[16];
	snprintf(limit_param, sizeof limit_param, "%ld", limit);
	const char *params[] = {api_key_scope(r), c == 1 ? cursor : NULL, limit_param};
	sql_reply_query(r, "SELECT 200, dualreg_registration_requests($1, $2::bigint, $3::int)", 3,
			params);
}
