/*
 * subscriptions: where a school's events are pushed (webhooks).
 *  POST   /v1/subscriptions                      create; the secret is shown only here
 *  GET    /v1/subscriptions                      list (admin: all or ?urn=; school: its own)
 *  DELETE /v1/subscriptions/{id}                 stop delivering (pending deliveries fail)
 *  POST   /v1/subscriptions/{id}/rotate-secret   new secret; the old one keeps signing 24 h
 *
 * An endpoint must be https (http only when [webhooks] allow_http), carry no user info,
 * and resolve only to public addresses (unless [webhooks] allow_private; [pull]
 * allow_private and a school's private feed hosts never apply here). The address is
 * checked here with the loop's asynchronous resolver, and again by httpc at every
 * connection, so a name re-pointed at an internal address later is still refused.
 *
 * The event types a subscription may name are the rows of event_types (or "*", all):
 * the INSERT checks them, so the list lives in the database only.
 *
 * Secrets are stored sealed with the daemon's key (secret_box.h), for the row's id: a
 * new subscription's id is taken from its sequence first, so that its secret can be
 * sealed for it before the INSERT.
 */
#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/config.h"
#include "dualreg/endpoint.h"
#include "dualreg/httpc.h"
#include "problem.h"
#include "dualreg/secret_box.h"
#include "dualreg/sign.h"
#include "dualreg/xalloc.h"
#include "handlers.h"

#define DESCRIPTION_MAX 500
#define URL_MAX 2000

/* Columns every subscription reply shows (never the secrets). */
#define SUB_JSON                                                                              \
	"json_build_object('id', s.id, 'urn', s.urn, 'url', s.url, 'events', s.events, "      \
	"'description', s.description, 'created_at', s.created_at, 'disabled_at', "          \
	"s.disabled_at, 'disabled_reason', s.disabled_reason, 'previous_secret_valid_until', " \
	"CASE WHEN s.previous_until > now() THEN s.previous_until END)"

struct create {
	cJSON *body;
	char urn[8];
	char *events; /* the requested event types: a JSON array of strings */
	struct evdns_getaddrinfo_request *dns;
	bool in_call, answered, cancelled;
	char refusal[300]; /* why the endpoint is not acceptable; "" if it is */
	struct api_req *r;
	char secret[SIGN_SECRET_MAX];
};

static void create_free(struct create *c)
{
	cJSON_Delete(c->body);
	cJSON_free(c->events);
	free(c);
}

static void create_abort(struct api_req *r)
{
	struct create *c = r->state;
	r->state = NULL;
	if (c->dns != NULL) {
		c->cancelled = true; /* the resolver calls back once more, and frees c */
		evdns_getaddrinfo_cancel(c->dns);
		return;
	}
	create_free(c);
}

/* The 422 problem for a subscription whose event types are not all known. */
static cJSON *unknown_events_problem(const char *indexes)
{
	cJSON *p = problem_new(422, "invalid-subscription", NULL,
			       "the subscription is not valid; see errors");
	cJSON *list = cJSON_Parse(indexes);
	const cJSON *i;
	cJSON_ArrayForEach(i, list)
	{
		char ptr[32];
		snprintf(ptr, sizeof ptr, "/events/%d", i->valueint);
		problem_add_error(p, ptr, "unknown event type");
	}
	cJSON_Delete(list);
	return p;
}

static void created(struct api_req *r, PGresult *res)
{
	struct create *c = r->state;
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	    !PQgetisnull(res, 0, 1)) {
		cJSON *p = unknown_events_problem(PQgetvalue(res, 0, 1));
		r->state = NULL;
		r->on_abort = NULL;
		create_free(c);
		api_reply_problem(r, p);
		return;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (state != NULL && strcmp(state, "23503") == 0) {
			cJSON *p = problem_new(422, "unknown-school", NULL, "no school has this URN");
			problem_add_error(p, "/urn", "unknown school");
			r->state = NULL;
			r->on_abort = NULL;
			create_free(c);
			api_reply_problem(r, p);
			return;
		}
		r->state = NULL;
		r->on_abort = NULL;
		create_free(c);
		api_reply_db_error(r, res);
		return;
	}
	cJSON *out = cJSON_Parse(PQgetvalue(res, 0, 0));
	cJSON_AddStringToObject(out, "secret", c->secret);
	r->state = NULL;
	r->on_abort = NULL;
	create_free(c);
	api_reply_json(r, 201, out);
}

/* The new subscription's id is reserved: seal its secret for it and insert the row. */
static void id_reserved(struct api_req *r, PGresult *res)
{
	struct create *c = r->state;
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		r->state = NULL;
		r->on_abort = NULL;
		create_free(c);
		api_reply_db_error(r, res);
		return;
	}
	char id[24], aad[SECRET_BOX_AAD_MAX];
	snprintf(id, sizeof id, "%s", PQgetvalue(res, 0, 0));
	secret_box_aad_subscription(id, aad);
	char *sealed = secret_box_seal(secret_box_installed(), c->secret, aad);
	if (sealed == NULL) {
		r->state = NULL;
		r->on_abort = NULL;
		create_free(c);
		api_reply_error(r, 500, NULL, "the secret could not be encrypted");
		return;
	}
	const cJSON *url = cJSON_GetObjectItemCaseSensitive(c->body, "url");
	const cJSON *desc = cJSON_GetObjectItemCaseSensitive(c->body, "description");
	const char *params[] = {c->urn, url->valuestring, c->events,
				cJSON_IsString(desc) ? desc->valuestring : "", sealed, id};
	/* One row: the subscription, or (nothing inserted) the indexes of the event types
	 * that are neither in event_types nor "*". */
	api_query(r,
		  "WITH req AS (SELECT e.type, (e.n - 1)::integer AS i "
		  "FROM jsonb_array_elements_text($3::jsonb) WITH ORDINALITY AS e(type, n)), "
		  "unknown AS (SELECT req.i FROM req WHERE req.type <> '*' AND NOT EXISTS "
		  "(SELECT 1 FROM event_types t WHERE t.type = req.type)), "
		  "s AS (INSERT INTO subscriptions (id, urn, url, events, description, secret) "
		  "SELECT $6::bigint, $1, $2, ARRAY(SELECT req.type FROM req ORDER BY req.i), $4, $5 "
		  "WHERE NOT EXISTS (SELECT 1 FROM unknown) RETURNING *) "
		  "SELECT " SUB_JSON ", NULL::json FROM s UNION ALL "
		  "SELECT NULL, json_agg(unknown.i ORDER BY unknown.i) FROM unknown "
		  "HAVING count(*) > 0",
		  6, params, created);
	secret_box_value_free(sealed);
}

static void insert_subscription(struct api_req *r)
{
	struct create *c = r->state;
	if (c->refusal[0] != '\0') {
		cJSON *p = problem_new(422, "endpoint-not-allowed", NULL, c->refusal);
		problem_add_error(p, "/url", c->refusal);
		r->state = NULL;
		r->on_abort = NULL;
		create_free(c);
		api_reply_problem(r, p);
		return;
	}
	if (sign_secret_new(c->secret) != 0) {
		r->state = NULL;
		r->on_abort = NULL;
		create_free(c);
		api_reply_error(r, 500, NULL, "no randomness available for a secret");
		return;
	}
	api_query(r, "SELECT nextval(pg_get_serial_sequence('subscriptions', 'id'))", 0, NULL,
		  id_reserved);
}

static void resolved(int result, struct evutil_addrinfo *ai, void *arg)
{
	struct create *c = arg;
	c->dns = NULL;
	if (c->cancelled) {
		if (ai != NULL)
			evutil_freeaddrinfo(ai);
		create_free(c);
		return;
	}
	if (result != 0) {
		snprintf(c->refusal, sizeof c->refusal, "the endpoint's host does not resolve: %s",
			 evutil_gai_strerror(result));
	} else if (!c->r->env->cfg->webhook_allow_private) {
		for (struct evutil_addrinfo *p = ai; p != NULL; p = p->ai_next) {
			if (httpc_address_is_private(p->ai_addr)) {
				char ip[INET6_ADDRSTRLEN] = "?";
				if (p->ai_family == AF_INET)
					inet_ntop(AF_INET,
						  &((struct sockaddr_in *)p->ai_addr)->sin_addr, ip,
						  sizeof ip);
				else if (p->ai_family == AF_INET6)
					inet_ntop(AF_INET6,
						  &((struct sockaddr_in6 *)p->ai_addr)->sin6_addr, ip,
						  sizeof ip);
				snprintf(c->refusal, sizeof c->refusal,
					 "the endpoint resolves to %s, a loopback, private, "
					 "link-local or otherwise non-public address",
					 ip);
				break;
			}
		}
	}
	if (ai != NULL)
		evutil_freeaddrinfo(ai);
	c->answered = true;
	if (!c->in_call)
		insert_subscription(c->r);
}

/*
 * The events list as a JSON array for the INSERT, which checks each type against
 * event_types; NULL and a problem if it is not a list of 1 to 16 strings.
 */
static char *events_json(const cJSON *events, cJSON *problem)
{
	if (!cJSON_IsArray(events) || cJSON_GetArraySize(events) == 0 ||
	    cJSON_GetArraySize(events) > 16) {
		problem_add_error(problem, "/events",
				  "a list of 1 to 16 event types, or [\"*\"] for all");
		return NULL;
	}
	int i = 0;
	const cJSON *e;
	bool ok = true;
	cJSON_ArrayForEach(e, events)
	{
		if (!cJSON_IsString(e)) {
			char ptr[32];
			snprintf(ptr, sizeof ptr, "/events/%d", i);
			problem_add_error(problem, ptr, "unknown event type");
			ok = false;
		}
		i++;
	}
	return ok ? cJSON_PrintUnformatted(events) : NULL;
}

void h_subscriptions_create(struct api_req *r)
{
	cJSON *body = api_json_body(r);
	if (body == NULL)
		return;
	const struct config *cfg = r->env->cfg;
	cJSON *problem = problem_new(422, "invalid-subscription", NULL,
				     "the subscription is not valid; see errors");
	const cJSON *url = cJSON_GetObjectItemCaseSensitive(body, "url");
	const cJSON *urn = cJSON_GetObjectItemCaseSensitive(body, "urn");
	const cJSON *desc = cJSON_GetObjectItemCaseSensitive(body, "description");
	char host[256] = "";
	bool bad = false;
	if (!cJSON_IsString(url) || strlen(url->valuestring) > URL_MAX) {
		problem_add_error(problem, "/url", "an https URL of at most 2000 characters");
		bad = true;
	} else {
		char why[200];
		if (endpoint_check_url(url->valuestring, cfg->webhook_allow_http, host, sizeof host,
				       why, sizeof why) != 0) {
			problem_add_error(problem, "/url", why);
			bad = true;
		}
	}
	char *events = events_json(cJSON_GetObjectItemCaseSensitive(body, "events"), problem);
	bad = bad || events == NULL;
	if (desc != NULL && (!cJSON_IsString(desc) || strlen(desc->valuestring) > DESCRIPTION_MAX)) {
		problem_add_error(problem, "/description", "a text of at most 500 characters");
		bad = true;
	}
	char school[8] = "";
	if (r->key.admin) {
		if (!cJSON_IsString(urn) || strlen(urn->valuestring) != 6 ||
		    strspn(urn->valuestring, "0123456789") != 6) {
			problem_add_error(problem, "/urn", "admin keys name the school: 6 digits");
			bad = true;
		} else {
			snprintf(school, sizeof school, "%s", urn->valuestring);
		}
	} else {
		if (urn != NULL && (!cJSON_IsString(urn) || strcmp(urn->valuestring, r->key.urn) != 0)) {
			cJSON_Delete(problem);
			cJSON_Delete(body);
			cJSON_free(events);
			api_reply_error(r, 403, NULL, "a school key subscribes for its own school only");
			return;
		}
		snprintf(school, sizeof school, "%s", r->key.urn);
	}
	if (bad) {
		cJSON_Delete(body);
		cJSON_free(events);
		api_reply_problem(r, problem);
		return;
	}
	cJSON_Delete(problem);

	struct create *c = xcalloc(1, sizeof *c);
	c->body = body;
	c->events = events;
	c->r = r;
	snprintf(c->urn, sizeof c->urn, "%s", school);
	r->state = c;
	r->on_abort = create_abort;
	struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	c->in_call = true;
	c->dns = evdns_getaddrinfo(r->env->dns, host, NULL, &hints, resolved, c);
	c->in_call = false;
	if (c->answered) /* answered at once (an address literal, /etc/hosts, an error) */
		insert_subscription(r);
}

void h_subscriptions_list(struct api_req *r)
{
	char urn[16] = "";
	if (r->key.admin) {
		/* -1 (too long) leaves urn "", refused like any other bad value */
		if (api_query_param(r, "urn", urn, sizeof urn) != 0 &&
		    (strlen(urn) != 6 || strspn(urn, "0123456789") != 6)) {
			cJSON *p = problem_new(422, "invalid-parameter", NULL, "urn must be 6 digits");
			problem_add_error(p, "/query/urn", "6 digits");
			api_reply_problem(r, p);
			return;
		}
	} else {
		snprintf(urn, sizeof urn, "%s", r->key.urn);
	}
	const char *params[] = {urn[0] ? urn : NULL};
	api_query(r,
		  "SELECT json_build_object('subscriptions', coalesce(json_agg(" SUB_JSON
		  " ORDER BY s.id), '[]')) FROM (SELECT * FROM subscriptions WHERE deleted_at IS NULL "
		  "AND ($1::text IS NULL OR urn = $1) ORDER BY id LIMIT 1000) s",
		  1, params, api_reply_sql_json);
}

/* The subscription id path parameter, checked; replies 404 and returns NULL if bad. */
static const char *sub_id(struct api_req *r)
{
	const char *id = r->params.value[0];
	if (strlen(id) > 18 || strspn(id, "0123456789") != strlen(id)) {
		api_reply_error(r, 404, NULL, "no such subscription");
		return NULL;
	}
	return id;
}

void h_subscriptions_delete(struct api_req *r)
{
	const char *id = sub_id(r);
	if (id == NULL)
		return;
	const char *params[] = {id, api_key_scope(r)};
	api_query(r,
		  "WITH s AS (UPDATE subscriptions SET deleted_at = now() "
		  "WHERE id = $1::bigint AND deleted_at IS NULL AND ($2::text IS NULL OR urn = $2) "
		  "RETURNING id), d AS (UPDATE deliveries SET status = 'failed', "
		  "last_error = 'subscription deleted', lease_until = NULL, lease_owner = NULL "
		  "WHERE subscription_id IN (SELECT id FROM s) AND status = 'pending') "
		  "SELECT NULL::json FROM s",
		  2, params, api_reply_sql_json_or_404);
}

/* The new secret, shown in the reply (r->state while the UPDATE runs). */
static void rotate_abort(struct api_req *r)
{
	secret_box_value_free(r->state);
	r->state = NULL;
}

static void rotated(struct api_req *r, PGresult *res)
{
	char *secret = r->state;
	r->state = NULL;
	r->on_abort = NULL;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		secret_box_value_free(secret);
		api_reply_db_error(r, res);
		return;
	}
	if (PQntuples(res) == 0) {
		secret_box_value_free(secret);
		api_reply_error(r, 404, NULL, "no such subscription");
		return;
	}
	cJSON *out = cJSON_Parse(PQgetvalue(res, 0, 0));
	cJSON_AddStringToObject(out, "secret", secret);
	secret_box_value_free(secret);
	api_reply_json(r, 200, out);
}

void h_subscriptions_rotate(struct api_req *r)
{
	const char *id = sub_id(r);
	if (id == NULL)
		return;
	char secret[SIGN_SECRET_MAX], canon[24], aad[SECRET_BOX_AAD_MAX];
	if (sign_secret_new(secret) != 0) {
		api_reply_error(r, 500, NULL, "no randomness available for a secret");
		return;
	}
	/* Sealed for the row's id as the database spells it ("007" is row 7). */
	snprintf(canon, sizeof canon, "%lld", strtoll(id, NULL, 10));
	secret_box_aad_subscription(canon, aad);
	char *sealed = secret_box_seal(secret_box_installed(), secret, aad);
	if (sealed == NULL) {
		api_reply_error(r, 500, NULL, "the secret could not be encrypted");
		return;
	}
	r->state = xstrdup(secret);
	r->on_abort = rotate_abort;
	const char *params[] = {canon, api_key_scope(r), sealed};
	api_query(r,
		  "WITH s AS (UPDATE subscriptions SET previous_secret = secret, "
		  "previous_until = now() + interval '24 hours', secret = $3 "
		  "WHERE id = $1::bigint AND deleted_at IS NULL AND ($2::text IS NULL OR urn = $2) "
		  "RETURNING *) SELECT " SUB_JSON " FROM s",
		  3, params, rotated);
	secret_box_value_free(sealed);
}
