/*
 * deliveries: the state of webhook deliveries, for diagnosis and manual replay.
 *  GET  /v1/deliveries?status=&subscription=&cursor=&limit=   newest first
 *  POST /v1/deliveries/{id}/retry   send again now (same webhook-id, signed afresh)
 * A school key sees the deliveries of its own school's subscriptions only.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "problem.h"

#define DELIVERY_JSON                                                                        \
	"json_build_object('id', d.id, 'subscription_id', d.subscription_id, 'event', "     \
	"json_build_object('id', 'evt_' || d.event_id, 'type', e.type, 'occurred_at', "     \
	"e.occurred_at), 'status', d.status, 'attempts', d.attempts, 'last_attempt_at', "   \
	"d.last_attempt_at, 'last_status', d.last_status, 'last_error', d.last_error, "     \
	"'last_response', d.last_response, 'next_attempt_at', CASE WHEN d.status = "       \
	"'pending' THEN d.next_attempt_at END, 'delivered_at', d.delivered_at, "            \
	"'created_at', d.created_at)"

static bool digits(const char *s, size_t max)
{
	size_t n = strlen(s);
	return n > 0 && n <= max && strspn(s, "0123456789") == n;
}

void h_deliveries_list(struct api_req *r)
{
	char status[16] = "", sub[24] = "", cursor[24] = "", limit[8] = "100";
	cJSON *p = problem_new(422, "invalid-parameter", NULL, "a query parameter is not valid");
	bool bad = false;
	/* api_query_param: 1 present, 0 absent (the default stays), -1 too long (buf ""),
	 * which every check below refuses. */
	if (api_query_param(r, "status", status, sizeof status) != 0 &&
	    strcmp(status, "pending") != 0 && strcmp(status, "delivered") != 0 &&
	    strcmp(status, "failed") != 0) {
		problem_add_error(p, "/query/status", "pending, delivered or failed");
		bad = true;
	}
	if (api_query_param(r, "subscription", sub, sizeof sub) != 0 && !digits(sub, 18)) {
		problem_add_error(p, "/query/subscription", "a subscription id");
		bad = true;
	}
	if (api_query_param(r, "cursor", cursor, sizeof cursor) != 0 && !digits(cursor, 18)) {
		problem_add_error(p, "/query/cursor", "a cursor from next_cursor");
		bad = true;
	}
	if (api_query_param(r, "limit", limit, sizeof limit) != 0 &&
	    (!digits(limit, 4) || atoi(limit) < 1 || atoi(limit) > 1000)) {
		problem_add_error(p, "/query/limit", "1 to 1000");
		bad = true;
	}
	if (bad) {
		api_reply_problem(r, p);
		return;
	}
	cJSON_Delete(p);
	const char *params[] = {status[0] ? status : NULL, sub[0] ? sub : NULL,
				cursor[0] ? cursor : NULL, limit, api_key_scope(r)};
	api_query(r,
		  "WITH page AS (SELECT d.*, e.type AS etype FROM deliveries d "
		  "JOIN subscriptions s ON s.id = d.subscription_id JOIN events e ON e.id = d.event_id "
		  "WHERE ($1::text IS NULL OR d.status = $1) "
		  "AND ($2::bigint IS NULL OR d.subscription_id = $2::bigint) "
		  "AND ($3::bigint IS NULL OR d.id < $3::bigint) "
		  "AND ($5::text IS NULL OR s.urn = $5) "
		  "ORDER BY d.id DESC LIMIT $4::integer) "
		  "SELECT json_build_object('deliveries', coalesce(json_agg(" DELIVERY_JSON
		  " ORDER BY d.id DESC), '[]'), 'next_cursor', CASE WHEN count(*) = $4::integer "
		  "THEN min(d.id)::text END) FROM page d JOIN events e ON e.id = d.event_id",
		  5, params, api_reply_sql_json);
}

static void retried(struct api_req *r, PGresult *res)
{
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		api_reply_db_error(r, res);
		return;
	}
	if (PQntuples(res) == 0) {
		api_reply_error(r, 404, NULL, "no such delivery");
		return;
	}
	if (strcmp(PQgetvalue(res, 0, 1), "t") == 0) {
		api_reply_error(r, 409, "delivery-in-flight",
				"this delivery is being attempted right now; retry later");
		return;
	}
	api_reply_raw(r, 202, "application/json", PQgetvalue(res, 0, 0));
}

void h_deliveries_retry(struct api_req *r)
{
	const char *id = r->params.value[0];
	if (!digits(id, 18)) {
		api_reply_error(r, 404, NULL, "no such delivery");
		return;
	}
	const char *params[] = {id, api_key_scope(r)};
	/* A delivery in flight (live lease) is left alone; anything else is queued now. */
	api_query(r,
		  "WITH target AS (SELECT d.id, d.lease_until > now() AS busy FROM deliveries d "
		  "JOIN subscriptions s ON s.id = d.subscription_id "
		  "WHERE d.id = $1::bigint AND s.deleted_at IS NULL AND ($2::text IS NULL OR s.urn = $2) "
		  "FOR UPDATE OF d), "
		  "upd AS (UPDATE deliveries d SET status = 'pending', next_attempt_at = now(), "
		  "lease_until = NULL, lease_owner = NULL FROM target t "
		  "WHERE d.id = t.id AND NOT coalesce(t.busy, false) RETURNING d.*), "
		  /* '-': wakes the dispatcher, not the change feed's long polls */
		  "note AS (SELECT pg_notify('dualreg_events', '-') FROM upd) "
		  "SELECT (SELECT " DELIVERY_JSON " FROM upd d JOIN events e ON e.id = d.event_id), "
		  "coalesce(t.busy, false), (SELECT count(*) FROM note) FROM target t",
		  2, params, retried);
}
