/*
 * audit: GET /v1/audit?upn=&cursor=&limit= (admin) — who read a pupil's data, newest
 * first: when, which key (or webhook subscription) acting for which school, through
 * which endpoint. Records arrive about a second after the read (see audit.h). Also the
 * audit's lines of GET /metrics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/audit.h"
#include "dualreg/upn.h"
#include "dualreg/xalloc.h"
#include "handlers.h"
#include "problem.h"

void h_audit(struct api_req *r)
{
	char upn[32] = "", cursor[24] = "", limit[8] = "100";
	cJSON *p = problem_new(422, "invalid-parameter", NULL, "a query parameter is not valid");
	bool bad = false;
	char expected;
	/* api_query_param: 1 present, 0 absent (the default stays), -1 too long: invalid. */
	if (api_query_param(r, "upn", upn, sizeof upn) <= 0 ||
	    upn_validate(upn, &expected) != UPN_OK) {
		problem_add_error(p, "/query/upn", "a valid UPN is required");
		bad = true;
	}
	int got = api_query_param(r, "cursor", cursor, sizeof cursor);
	if (got < 0 || (got > 0 && (cursor[0] == '\0' ||
				    strspn(cursor, "0123456789") != strlen(cursor) ||
				    strlen(cursor) > 18))) {
		problem_add_error(p, "/query/cursor", "a cursor from next_cursor");
		bad = true;
	}
	got = api_query_param(r, "limit", limit, sizeof limit);
	if (got < 0 || (got > 0 && (limit[0] == '\0' ||
				    strspn(limit, "0123456789") != strlen(limit) ||
				    atoi(limit) < 1 || atoi(limit) > 1000))) {
		problem_add_error(p, "/query/limit", "1 to 1000");
		bad = true;
	}
	if (bad) {
		api_reply_problem(r, p);
		return;
	}
	cJSON_Delete(p);
	const char *params[] = {upn, cursor[0] ? cursor : NULL, limit};
	api_query(r,
		  "WITH page AS (SELECT * FROM access_audit WHERE upn = $1 "
		  "AND ($2::bigint IS NULL OR id < $2::bigint) ORDER BY id DESC LIMIT $3::integer) "
		  "SELECT json_build_object('reads', coalesce(json_agg(json_build_object("
		  "'at', at, 'last_at', last_at, 'reads', reads, 'key', json_build_object('id', "
		  "key_id, 'name', key_name), 'urn', urn, 'subscription_id', subscription_id, "
		  "'endpoint', endpoint) ORDER BY id DESC), '[]'), "
		  "'next_cursor', "
		  "CASE WHEN count(*) = $3::integer THEN min(id)::text END) FROM page",
		  3, params, api_reply_sql_json);
}

char *audit_metrics_append(struct api_req *r, char *text)
{
	struct audit *a = r->env->audit;
	if (a == NULL)
		return text;
	struct audit_stats st;
	audit_stats(a, &st);
	char more[1024];
	int m = snprintf(
	    more, sizeof more,
	    "# HELP dualreg_audit_pending Access records not yet written to the database.\n"
	    "# TYPE dualreg_audit_pending gauge\n"
	    "dualreg_audit_pending %lu\n"
	    "# HELP dualreg_audit_full 1 while the access audit buffer is full and reads of "
	    "pupil data are refused.\n"
	    "# TYPE dualreg_audit_full gauge\n"
	    "dualreg_audit_full %d\n"
	    "# HELP dualreg_audit_refused_reads_total Reads of pupil data refused (503) because "
	    "the access audit buffer was full.\n"
	    "# TYPE dualreg_audit_refused_reads_total counter\n"
	    "dualreg_audit_refused_reads_total %lu\n"
	    "# HELP dualreg_audit_written_total Access records written to the database.\n"
	    "# TYPE dualreg_audit_written_total counter\n"
	    "dualreg_audit_written_total %lu\n"
	    "# HELP dualreg_audit_write_failures_total Batches of access records the database "
	    "refused (kept and written again).\n"
	    "# TYPE dualreg_audit_write_failures_total counter\n"
	    "dualreg_audit_write_failures_total %lu\n",
	    st.pending, audit_full(a) ? 1 : 0, st.refused, st.written, st.failures);
	if (m < 0 || (size_t)m >= sizeof more)
		return text;
	size_t n = strlen(text);
	text = xrealloc(text, n + (size_t)m + 1);
	memcpy(text + n, more, (size_t)m + 1);
	return text;
}
