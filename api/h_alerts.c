/*
 * alerts: GET /v1/alerts?date=YYYY-MM-DD — one day's same-day alerts (attendance.absent
 * and attendance.missing, about sessions of that day; default today, Europe/London),
 * most urgent first, each with the pupil, the school expecting the pupil, the mark that
 * school has recorded since and whether it settles the alert. At most ALERTS_MAX, with
 * truncated saying whether there were more. The whole body comes from one SQL call
 * (dualreg_alerts in sql/functions/70_alerts.sql), which also decides scope: an admin
 * key reads every alert; a school key the alerts that concern its school, as in the
 * change feed.
 *
 * Every pupil the answer names is recorded in the access audit (audit.h).
 */
#include <libpq-fe.h>
#include <stdio.h>

#include "handlers.h"

#define ALERTS_MAX "1000"

static void alerts_done(struct api_req *r, PGresult *res)
{
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
	    PQgetisnull(res, 0, 0)) {
		api_reply_db_error(r, res);
		return;
	}
	cJSON *body = cJSON_Parse(PQgetvalue(res, 0, 0));
	if (body == NULL) {
		api_reply_error(r, 500, "internal-error", "the alerts could not be built");
		return;
	}
	/* One access record per pupil the alerts name. */
	reads_audit_body(r, body);
	api_reply_json(r, 200, body);
}

void h_alerts(struct api_req *r)
{
	char date[11];
	int have_date = reads_date_param(r, "date", date);
	if (have_date < 0)
		return;
	if (reads_audit_refused(r))
		return;
	/* Without a date, the database's today (Europe/London), as the other reads. */
	const char *params[] = {have_date ? date : NULL, api_key_scope(r), ALERTS_MAX};
	api_query(r, "SELECT dualreg_alerts($1::date, $2, $3::int)", 3, params, alerts_done);
}
