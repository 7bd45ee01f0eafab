/*
 * register: GET /v1/schools/{urn}/register?date=YYYY-MM-DD&session=AM|PM — one
 * session's register as a school sees it: every pupil on its roll that day (any
 * registration covering the date), this school's mark, where the pupil is expected,
 * and for dual-registered pupils the other school and its mark. Ordered by family
 * name, given name, UPN. One SQL call (dualreg_register in sql/006_reads.sql).
 *
 * Every pupil on the answered register is recorded in the access audit (audit.h).
 *
 * Scope: an admin key, or the school's own key; another school's key gets the same
 * 404 as an unknown school, so the existence of a URN is not leaked either.
 */
#include <ctype.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

#include "dualreg/calendar.h"
#include "handlers.h"
#include "problem.h"

static bool urn_valid(const char *urn)
{
	if (strlen(urn) != 6)
		return false;
	for (int i = 0; i < 6; i++)
		if (!isdigit((unsigned char)urn[i]))
			return false;
	return true;
}

static void register_done(struct api_req *r, PGresult *res)
{
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		api_reply_db_error(r, res);
		return;
	}
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
		api_reply_error(r, 404, "unknown-school", "no school with this URN");
		return;
	}
	cJSON *body = cJSON_Parse(PQgetvalue(res, 0, 0));
	if (body == NULL) {
		api_reply_error(r, 500, "internal-error", "the register could not be built");
		return;
	}
	/* One access record per pupil on the register. */
	reads_audit_body(r, body);
	api_reply_json(r, 200, body);
}

void h_school_register(struct api_req *r)
{
	const char *urn = r->params.value[0];
	if (!urn_valid(urn)) {
		cJSON *p = problem_new(422, "invalid-urn", NULL, "the URN in the path is not valid");
		problem_add_error(p, "/path/urn", "a URN is 6 digits");
		api_reply_problem(r, p);
		return;
	}
	if (!r->key.admin && strcmp(r->key.urn, urn) != 0) {
		api_reply_error(r, 404, "unknown-school", "no school with this URN");
		return;
	}
	char date[11], session[3];
	int have_date = reads_date_param(r, "date", date);
	if (have_date < 0)
		return;
	int have_session = reads_param(r, "session", session, sizeof session);
	bool session_ok = have_session > 0 && cal_session(session) >= 0;
	if (!have_date || !session_ok) {
		cJSON *p = problem_new(422, have_date ? "invalid-session" : "invalid-date", NULL,
				       "date and session are required");
		if (!have_date)
			problem_add_error(p, "/query/date", "date is required (YYYY-MM-DD)");
		if (!session_ok)
			problem_add_error(p, "/query/session",
					  have_session == 0 ? "session is required (AM or PM)"
							    : "session must be AM or PM");
		api_reply_problem(r, p);
		return;
	}
	if (reads_audit_refused(r))
		return;
	const char *params[] = {urn, date, session};
	api_query(r, "SELECT dualreg_register($1, $2::date, $3)", 3, params, register_done);
}
