/*
 * attendance: GET /v1/pupils/{upn}/attendance?from=YYYY-MM-DD&to=YYYY-MM-DD — a
 * pupil's marks at both schools over a period and the summary the schools report:
 * per school and combined, possible / present / aea / authorised / unauthorised /
 * not_possible sessions and rate = (present + aea) / possible (null when nothing was
 * possible). Codes that are not possible sessions (D, X, Q, Y1-Y7, Z, #) never count
 * as possible. Combined counts each session once, by the mark at the school expected
 * that session. One SQL call (dualreg_attendance in sql/006_reads.sql), which decides
 * scope as well: a school key reads pupils registered there at some point of the
 * period, and sees marks only for the days the pupil was on its roll.
 *
 * Bounds: both dates required, from <= to, at most ATTENDANCE_MAX_DAYS days.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

#include "dualreg/calendar.h"
#include "handlers.h"
#include "problem.h"

#define ATTENDANCE_MAX_DAYS 366

static void attendance_done(struct api_req *r, PGresult *res)
{
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		api_reply_db_error(r, res);
		return;
	}
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
		api_reply_error(r, 404, "unknown-pupil",
				"no pupil with this UPN is visible to this key in that period");
		return;
	}
	cJSON *body = cJSON_Parse(PQgetvalue(res, 0, 0));
	if (body == NULL) {
		api_reply_error(r, 500, "internal-error", "the attendance could not be built");
		return;
	}
	api_reply_json(r, 200, body);
}

void h_pupil_attendance(struct api_req *r)
{
	const char *upn = r->params.value[0];
	if (!reads_check_upn(r, upn))
		return;
	char from[11], to[11];
	int have_from = reads_date_param(r, "from", from);
	if (have_from < 0)
		return;
	int have_to = reads_date_param(r, "to", to);
	if (have_to < 0)
		return;
	if (!have_from || !have_to) {
		cJSON *p = problem_new(422, "invalid-period", NULL, "from and to are required");
		if (!have_from)
			problem_add_error(p, "/query/from", "from is required (YYYY-MM-DD)");
		if (!have_to)
			problem_add_error(p, "/query/to", "to is required (YYYY-MM-DD)");
		api_reply_problem(r, p);
		return;
	}
	struct cal_date f, t;
	cal_parse_date(from, &f);
	cal_parse_date(to, &t);
	long days = cal_days_between(&f, &t);
	if (days < 0 || days + 1 > ATTENDANCE_MAX_DAYS) {
		char detail[96];
		if (days < 0)
			snprintf(detail, sizeof detail, "to must not be before from");
		else
			snprintf(detail, sizeof detail, "the period is at most %d days",
				 ATTENDANCE_MAX_DAYS);
		cJSON *p = problem_new(422, "invalid-period", NULL, detail);
		problem_add_error(p, "/query/to", detail);
		api_reply_problem(r, p);
		return;
	}
	const char *params[] = {upn, from, to, api_key_scope(r)};
	api_query(r, "SELECT dualreg_attendance($1, $2::date, $3::date, $4)", 4, params,
		  attendance_done);
}
