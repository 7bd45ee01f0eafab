/*
 * registrations: pupils on schools' rolls, main or subsidiary, with the versioned
 * schedule of a subsidiary registration.
 *  POST  /v1/registrations               admin or a school involved: for a main, that
 *                                        school; for a subsidiary, the subsidiary school
 *                                        or the main school in force on its start date
 *  PATCH /v1/registrations/{id}          {end_date} (null reopens) and/or
 *                                        {schedule, effective_from}; same schools; 404
 *                                        outside a school key's pupils
 *  GET   /v1/pupils/{upn}/registrations  every registration of a pupil (both schools)
 * The rules, the registration.* event and the derived D marks that follow live in
 * dualreg_registration_create/_patch (sql/004_registry.sql), run in one transaction.
 */
#include <stdio.h>
#include <string.h>

#include "dualreg/schedule.h"
#include "dualreg/upn.h"
#include "handlers.h"
#include "json_fields.h"
#include "sql_reply.h"

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

void h_registrations_create(struct api_req *r)
{
	static const char *const known[] = {"upn",	  "urn",      "role", "start_date",
					    "end_date", "schedule", NULL};
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
	const char *params[] = {api_key_scope(r), upn, urn, role, start, end,
				mask[0] ? mask : NULL};
	sql_reply_txn(r,
		      "SELECT 201, dualreg_registration_create($1, $2, $3, $4, $5::date, "
		      "$6::date, $7::int)",
		      7, params, registration_constraints);
	cJSON_Delete(body);
}

void h_registration_patch(struct api_req *r)
{
	static const char *const known[] = {"end_date", "schedule", "effective_from", NULL};
	const char *id = r->params.value[0];
	size_t idlen = strlen(id);
	bool id_ok = idlen >= 1 && idlen <= 18 && id[0] != '0';
	for (size_t i = 0; id_ok && i < idlen; i++)
		id_ok = id[i] >= '0' && id[i] <= '9';
	if (!id_ok) {
		api_reply_error(r, 404, NULL, "no registration %.24s", id);
		return;
	}
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
	const char *params[] = {api_key_scope(r), id, end_set ? "t" : "f", end,
				mask[0] ? mask : NULL, eff};
	sql_reply_txn(r,
		      "SELECT 200, dualreg_registration_patch($1, $2::bigint, $3::boolean, "
		      "$4::date, $5::int, $6::date)",
		      6, params, registration_constraints);
	cJSON_Delete(body);
}

void h_pupil_registrations(struct api_req *r)
{
	if (upn_validate(r->params.value[0], NULL) != UPN_OK) {
		api_reply_error(r, 404, NULL, "no such pupil");
		return;
	}
	const char *params[] = {r->params.value[0], api_key_scope(r)};
	sql_reply_query(
	    r,
	    "SELECT 200, jsonb_build_object('upn', p.upn, 'registrations', coalesce("
	    " (SELECT jsonb_agg(dualreg_registration_json(g.id) ORDER BY g.start_date, g.id) "
	    "    FROM registrations g WHERE g.upn = p.upn), '[]'::jsonb)) "
	    "FROM pupils p WHERE p.upn = $1 AND dualreg_pupil_visible(p.upn, $2)",
	    2, params);
}
