/*
 * history: GET /v1/pupils/{upn}/marks/{date}/{session}/history, every change to one
 * pupil's session at both of its schools, oldest first.
 *
 * Scope: an admin key sees any pupil; a school key sees a pupil registered at its
 * school on that date (both schools' history, which is the point for a home school).
 * Otherwise, and for an unknown pupil, 404: the two are not told apart. The scope check
 * and the read are one statement (dualreg_mark_history, sql/005_marks.sql).
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

#include "dualreg/calendar.h"
#include "dualreg/upn.h"
#include "handlers.h"

static void history_read(struct api_req *r, PGresult *res)
{
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		api_reply_db_error(r, res);
		return;
	}
	if (PQgetisnull(res, 0, 0)) {
		api_reply_error(r, 404, NULL, "no such pupil, or not one this key may read");
		return;
	}
	cJSON *body = cJSON_Parse(PQgetvalue(res, 0, 0));
	if (body == NULL) {
		api_reply_error(r, 500, NULL, "the database answered unreadable JSON");
		return;
	}
	api_reply_json(r, 200, body);
}

void h_mark_history(struct api_req *r)
{
	const char *upn = r->params.value[0];
	const char *date = r->params.value[1];
	const char *session = r->params.value[2];
	char expected = '?';
	struct cal_date d;

	switch (upn_validate(upn, &expected)) {
	case UPN_OK:
		break;
	case UPN_BAD_FORMAT:
		api_reply_error(r, 422, "invalid-upn",
				"a UPN is 13 characters: a check letter, 11 digits, then a digit or "
				"letter");
		return;
	case UPN_BAD_CHECK:
		api_reply_error(r, 422, "invalid-upn",
				"the check letter of this UPN is wrong: it should start with %c",
				expected);
		return;
	}
	if (!cal_parse_date(date, &d)) {
		api_reply_error(r, 422, "invalid-date", "the date must be a real date, YYYY-MM-DD");
		return;
	}
	if (cal_session(session) < 0) {
		api_reply_error(r, 422, "invalid-session", "the session must be AM or PM");
		return;
	}
	const char *params[] = {upn, date, session, api_key_scope(r)};
	api_query(r, "SELECT dualreg_mark_history($1, $2::date, $3, $4)::text", 4, params,
		  history_read);
}
