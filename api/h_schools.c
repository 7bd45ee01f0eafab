/*
 * schools: the schools dualreg knows and their closure days.
 *  POST  /v1/schools                 admin: create (409 duplicate-school / duplicate-laestab)
 *  GET   /v1/schools                 admin: cursor-paged by URN
 *  GET   /v1/schools/{urn}           admin, or a school key for its own school (else 404)
 *  PATCH /v1/schools/{urn}           admin: name, laestab, kind, register_close, feed,
 *                                    the feed's private hosts allowlist
 *  GET   /v1/schools/{urn}/pull      admin or that school: the feed's state, refusals
 *  GET   /v1/schools/{urn}/sync      admin or that school: is its integration healthy
 *                                    (webhooks, feed, API marks; dualreg_sync_health)
 *  PUT   /v1/schools/{urn}/closures  admin or the school's key: replaces the closure list
 *                                    and re-derives D marks over the dates it changes
 *  GET   /v1/schools/{urn}/closures  like GET /v1/schools/{urn}
 * Bodies are checked here (every bad field reported with its pointer); the rows are
 * written by one statement in a transaction (see sql/004_registry.sql).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/config.h"
#include "dualreg/endpoint.h"
#include "dualreg/secret_box.h"
#include "dualreg/xalloc.h"
#include "cursors.h"
#include "handlers.h"
#include "json_fields.h"
#include "problem.h"
#include "sql_reply.h"

#define SCHOOL_NAME_MAX 200
#define CLOSURES_MAX 1000
#define CLOSURE_REASON_MAX 200
#define SCHOOLS_LIMIT_DEFAULT 100
#define SCHOOLS_LIMIT_MAX 500

static const char *const kinds[] = {"mainstream", "pru", "ap", "special", NULL};

static const struct sql_reply_map school_constraints[] = {
    {"schools_pkey", 409, "duplicate-school", "/urn", "a school with this URN already exists"},
    {"schools_laestab_key", 409, "duplicate-laestab", "/laestab",
     "another school already has this LAESTAB"},
    {NULL, 0, NULL, NULL, NULL},
};

/* The {urn} path parameter if it can name a school; otherwise replies 404. */
static const char *path_urn(struct api_req *r)
{
	const char *urn = r->params.value[0];
	bool ok = strlen(urn) == 6;
	for (size_t i = 0; ok && i < 6; i++)
		ok = urn[i] >= '0' && urn[i] <= '9';
	if (!ok) {
		api_reply_error(r, 404, NULL, "no school with URN %.16s", urn);
		return NULL;
	}
	return urn;
}

/* register_close {am?, pm?}: both optional; unknown members refused. */
static void read_register_close(struct jf *j, const cJSON *body, const char **am,
				const char **pm)
{
	static const char *const known[] = {"am", "pm", NULL};
	*am = *pm = NULL;
	const cJSON *rc = jf_object(j, body, "", "register_close", false);
	if (rc == NULL)
		return;
	jf_only(j, rc, "/register_close", known);
	*am = jf_hhmm(j, rc, "/register_close", "am", false);
	*pm = jf_hhmm(j, rc, "/register_close", "pm", false);
}

/* Replies with the collected problem and frees the body; true if there was one. */
static bool refused(struct api_req *r, struct jf *j, cJSON *body)
{
	cJSON *problem = jf_take_problem(j);
	if (problem == NULL)
		return false;
	cJSON_Delete(body);
	api_reply_problem(r, problem);
	return true;
}

void h_schools_create(struct api_req *r)
{
	static const char *const known[] = {"urn", "laestab", "name", "kind", "register_close",
					    NULL};
	cJSON *body = api_json_body(r);
	if (body == NULL)
		return;
	struct jf j;
	jf_init(&j);
	jf_only(&j, body, "", known);
	const char *urn = jf_digits(&j, body, "", "urn", true, 6, "invalid-urn");
	const char *laestab = jf_digits(&j, body, "", "laestab", false, 7, "invalid-laestab");
	const char *name = jf_text(&j, body, "", "name", true, SCHOOL_NAME_MAX);
	const char *kind = jf_enum(&j, body, "", "kind", true, kinds);
	const char *am, *pm;
	read_register_close(&j, body, &am, &pm);
	if (refused(r, &j, body))
		return;
	const char *params[] = {urn, laestab, name, kind, am, pm};
	/* A close time not given is the schools table's default, defined only there. */
	sql_reply_txn(r,
		      "SELECT 201, dualreg_school_create($1, $2, $3, $4, $5::time, $6::time)",
		      6, params, school_constraints);
	cJSON_Delete(body);
}

void h_schools_list(struct api_req *r)
{
	char cursor[64], limit_text[16], after[7] = "";
	long limit = SCHOOLS_LIMIT_DEFAULT;
	if (api_query_param(r, "cursor", cursor, sizeof cursor) && !cursor_schools_decode(cursor, after)) {
		api_reply_error(r, 400, "invalid-cursor",
				"cursor is not one this server returned as next_cursor");
		return;
	}
	if (api_query_param(r, "limit", limit_text, sizeof limit_text)) {
		char *end;
		limit = strtol(limit_text, &end, 10);
		if (limit_text[0] < '0' || limit_text[0] > '9' || *end != '\0' || limit < 1 ||
		    limit > SCHOOLS_LIMIT_MAX) {
			api_reply_error(r, 400, "invalid-limit", "limit must be 1 to %d",
					SCHOOLS_LIMIT_MAX);
			return;
		}
	}
	char limit_param[16];
	snprintf(limit_param, sizeof limit_param, "%ld", limit);
	const char *params[] = {after, limit_param};
	sql_reply_query(
	    r,
	    "WITH page AS (SELECT urn FROM schools WHERE urn > $1 ORDER BY urn LIMIT $2::int + 1), "
	    "kept AS (SELECT urn FROM page ORDER BY urn LIMIT $2::int) "
	    "SELECT 200, jsonb_build_object("
	    " 'schools', coalesce((SELECT jsonb_agg(dualreg_school_json(s) ORDER BY s.urn) "
	    "   FROM schools s WHERE s.urn IN (SELECT urn FROM kept)), '[]'::jsonb),"
	    " 'next_cursor', CASE WHEN (SELECT count(*) FROM page) > $2::int THEN "
	    "   encode(convert_to('s1:' || (SELECT max(urn) FROM kept), 'UTF8'), 'hex') END)",
	    2, params);
}

/*
 * A read of one school's data, for admin or that school's own key ($1 the URN, $2 the
 * key's school or NULL for admin): another school's key, like an unknown URN, gets 404.
 */
static void school_read(struct api_req *r, const char *sql)
{
	const char *urn = path_urn(r);
	if (urn == NULL)
		return;
	const char *params[] = {urn, api_key_scope(r)};
	sql_reply_query(r, sql, 2, params);
}

/* A school document that may name pupils (the feed's refused items): refused while the
 * access audit is full, and each pupil it names is recorded (audit.h). */
static void school_read_audited(struct api_req *r, const char *sql)
{
	const char *urn = path_urn(r);
	if (urn == NULL)
		return;
	const char *params[] = {urn, api_key_scope(r)};
	sql_reply_query_audited(r, sql, 2, params);
}

void h_school_get(struct api_req *r)
{
	school_read(r, "SELECT 200, dualreg_school_json(s) FROM schools s "
		       "WHERE s.urn = $1 AND ($2::text IS NULL OR s.urn = $2)");
}

/*
 * The feed settings of PATCH: pull_url (https, or http when allowed; null stops
 * pulling), pull_token (the bearer token the feed expects; null removes it; never shown
 * again), pull_interval (seconds, 10 to 86400). Fills the SQL parameters.
 */
static void read_pull(struct api_req *r, struct jf *j, const cJSON *body, const char **url_set,
		      const char **url, const char **token_set, const char **token,
		      char interval[16])
{
	const struct config *cfg = r->env->cfg;
	*url_set = jf_has(body, "pull_url") ? "t" : "f";
	*url = NULL;
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(body, "pull_url");
	if (u != NULL && !cJSON_IsNull(u)) {
		char host[256], why[200];
		if (!cJSON_IsString(u) || strlen(u->valuestring) > 2000) {
			jf_fail(j, "invalid-url", "", "pull_url", "an https URL of at most 2000 bytes");
		} else if (endpoint_check_url(u->valuestring, cfg->pull_allow_http, host,
					      sizeof host, why, sizeof why) != 0) {
			jf_fail(j, "invalid-url", "", "pull_url", "%s", why);
		} else {
			*url = u->valuestring;
		}
	}
	*token_set = jf_has(body, "pull_token") ? "t" : "f";
	*token = NULL;
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(body, "pull_token");
	if (t != NULL && !cJSON_IsNull(t)) {
		if (!cJSON_IsString(t) || t->valuestring[0] == '\0' || strlen(t->valuestring) > 4000 ||
		    strpbrk(t->valuestring, "\r\n") != NULL)
			jf_fail(j, "invalid-field", "", "pull_token",
				"a token of 1 to 4000 characters on one line");
		else if (secret_box_is_sealed(t->valuestring, NULL))
			jf_fail(j, "invalid-field", "", "pull_token",
				"a token cannot begin like a stored encrypted value (v1:KEYID:)");
		else
			*token = t->valuestring;
	}
	interval[0] = '\0';
	long long seconds; /* range-checked as a double: 1e300 or inf never reaches a cast */
	if (jf_int(j, body, "", "pull_interval", false, 10, 86400, &seconds))
		snprintf(interval, 16, "%lld", seconds);
}

/*
 * pull_private_hosts: the hosts whose feed this school's pull_url may name at a private
 * address (null or [] clears the list). A list of at most 16 strings here; each is
 * checked and normalised by dualreg_pull_hosts_normal. Returns the list as JSON text
 * (caller frees) or NULL when the member is absent or refused.
 */
static char *read_private_hosts(struct jf *j, const cJSON *body)
{
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(body, "pull_private_hosts");
	if (h == NULL)
		return NULL;
	if (cJSON_IsNull(h))
		return xstrdup("[]");
	bool ok = cJSON_IsArray(h) && cJSON_GetArraySize(h) <= 16;
	const cJSON *list = ok ? h : NULL, *e;
	cJSON_ArrayForEach(e, list)
	{
		ok = ok && cJSON_IsString(e) && e->valuestring[0] != '\0' &&
		     strlen(e->valuestring) <= 255;
	}
	if (!ok) {
		jf_fail(j, "invalid-field", "", "pull_private_hosts",
			"a list of at most 16 host names or IP addresses");
		return NULL;
	}
	return cJSON_PrintUnformatted(h);
}

void h_school_patch(struct api_req *r)
{
	static const char *const known[] = {"name",          "laestab",    "kind",
					    "register_close", "pull_url", "pull_token",
					    "pull_interval", "pull_private_hosts", NULL};
	const char *urn = path_urn(r);
	if (urn == NULL)
		return;
	cJSON *body = api_json_body(r);
	if (body == NULL)
		return;
	struct jf j;
	jf_init(&j);
	jf_only(&j, body, "", known);
	if (jf_is_null(body, "name"))
		jf_fail(&j, "invalid-field", "", "name", "name cannot be removed");
	if (jf_is_null(body, "kind"))
		jf_fail(&j, "invalid-field", "", "kind", "kind cannot be removed");
	const char *name = jf_text(&j, body, "", "name", false, SCHOOL_NAME_MAX);
	const char *kind = jf_enum(&j, body, "", "kind", false, kinds);
	const char *laestab = jf_digits(&j, body, "", "laestab", false, 7, "invalid-laestab");
	const char *am, *pm;
	read_register_close(&j, body, &am, &pm);
	const char *url_set, *url, *token_set, *token;
	char interval[16];
	read_pull(r, &j, body, &url_set, &url, &token_set, &token, interval);
	/* The allowlist opens private addresses: never a school's own key's to change. */
	if (jf_has(body, "pull_private_hosts") && !r->key.admin) {
		cJSON_Delete(body);
		jf_clear(&j);
		api_reply_error(r, 403, "forbidden", "only an administrator sets pull_private_hosts");
		return;
	}
	char *hosts = read_private_hosts(&j, body);
	if (refused(r, &j, body)) {
		free(hosts);
		return;
	}
	/* The token is stored sealed for this school (secret_box.h). */
	char aad[SECRET_BOX_AAD_MAX];
	secret_box_aad_school(urn, aad);
	char *sealed = token != NULL ? secret_box_seal(secret_box_installed(), token, aad) : NULL;
	if (token != NULL && sealed == NULL) {
		free(hosts);
		cJSON_Delete(body);
		api_reply_error(r, 500, NULL, "the token could not be encrypted");
		return;
	}
	/* A new feed URL starts from the beginning of that feed, at once. */
	const char *params[] = {urn, name, jf_has(body, "laestab") ? "t" : "f", laestab, kind,
				am, pm, url_set, url, token_set, sealed,
				interval[0] ? interval : NULL, hosts};
	sql_reply_txn(r,
		      "UPDATE schools SET name = coalesce($2, name), "
		      "laestab = CASE WHEN $3::boolean THEN $4 ELSE laestab END, "
		      "kind = coalesce($5, kind), am_close = coalesce($6::time, am_close), "
		      "pm_close = coalesce($7::time, pm_close), updated_at = dualreg_now(), "
		      "pull_url = CASE WHEN $8::boolean THEN $9 ELSE pull_url END, "
		      "pull_cursor = CASE WHEN $8::boolean AND $9 IS DISTINCT FROM pull_url "
		      "THEN NULL ELSE pull_cursor END, "
		      "pull_next_at = CASE WHEN $8::boolean THEN now() ELSE pull_next_at END, "
		      "pull_failures = CASE WHEN $8::boolean THEN 0 ELSE pull_failures END, "
		      "pull_token = CASE WHEN $10::boolean THEN $11 ELSE pull_token END, "
		      "pull_interval_s = coalesce($12::integer, pull_interval_s), "
		      "pull_private_hosts = CASE WHEN $13::jsonb IS NULL THEN pull_private_hosts "
		      "ELSE dualreg_pull_hosts_normal(ARRAY(SELECT jsonb_array_elements_text("
		      "$13::jsonb))) END "
		      "WHERE urn = $1 RETURNING 200, dualreg_school_json(schools)",
		      13, params, school_constraints);
	free(hosts);
	secret_box_value_free(sealed);
	cJSON_Delete(body);
}

void h_school_pull(struct api_req *r)
{
	school_read_audited(r, "SELECT 200, dualreg_pull_status(urn) FROM schools "
		       "WHERE urn = $1 AND ($2::text IS NULL OR urn = $2)");
}

/* The same document as `dualregctl sync status --school`: both call the one function. */
void h_school_sync(struct api_req *r)
{
	school_read_audited(r, "SELECT 200, dualreg_sync_health(urn) FROM schools "
		       "WHERE urn = $1 AND ($2::text IS NULL OR urn = $2)");
}

void h_closures_get(struct api_req *r)
{
	school_read(r, "SELECT 200, dualreg_closures_json(urn) FROM schools "
		       "WHERE urn = $1 AND ($2::text IS NULL OR urn = $2)");
}

struct closure_item {
	int index;
	const char *from, *to;
};

static int closure_cmp(const void *a, const void *b)
{
	const struct closure_item *x = a, *y = b;
	int c = strcmp(x->from, y->from);
	return c != 0 ? c : x->index - y->index;
}

/* Checks every closure; then that none overlaps another (dates compare as text). */
static void read_closures(struct jf *j, const cJSON *list, cJSON *out)
{
	static const char *const known[] = {"from", "to", "reason", NULL};
	int n = cJSON_GetArraySize(list);
	struct closure_item *items = xcalloc((size_t)n + 1, sizeof *items);
	int nitems = 0, i = 0;
	const cJSON *c;
	cJSON_ArrayForEach(c, list)
	{
		char base[32];
		snprintf(base, sizeof base, "/closures/%d", i);
		if (!cJSON_IsObject(c)) {
			jf_fail(j, "invalid-closure", base, NULL,
				"each closure is an object {from, to, reason}");
			i++;
			continue;
		}
		jf_only(j, c, base, known);
		const char *from = jf_date(j, c, base, "from", true);
		const char *to = jf_date(j, c, base, "to", true);
		const char *reason = jf_text(j, c, base, "reason", false, CLOSURE_REASON_MAX);
		if (from != NULL && to != NULL && strcmp(to, from) < 0) {
			jf_fail(j, "invalid-closure", base, "to", "to (%s) is before from (%s)", to,
				from);
		} else if (from != NULL && to != NULL) {
			items[nitems++] = (struct closure_item){i, from, to};
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "from", from);
			cJSON_AddStringToObject(o, "to", to);
			cJSON_AddStringToObject(o, "reason", reason ? reason : "");
			cJSON_AddItemToArray(out, o);
		}
		i++;
	}
	qsort(items, (size_t)nitems, sizeof *items, closure_cmp);
	const struct closure_item *reach = nitems > 0 ? &items[0] : NULL; /* latest end so far */
	for (int k = 1; k < nitems; k++) {
		if (strcmp(items[k].from, reach->to) <= 0) {
			char base[32];
			snprintf(base, sizeof base, "/closures/%d", items[k].index);
			jf_fail(j, "overlapping-closures", base, "from",
				"this closure overlaps /closures/%d (%s to %s)", reach->index,
				reach->from, reach->to);
		}
		if (strcmp(items[k].to, reach->to) > 0)
			reach = &items[k];
	}
	free(items);
}

void h_closures_put(struct api_req *r)
{
	static const char *const known[] = {"closures", NULL};
	const char *urn = path_urn(r);
	if (urn == NULL)
		return;
	if (!r->key.admin && strcmp(r->key.urn, urn) != 0) {
		api_reply_error(r, 403, "forbidden", "a school key changes only its own school");
		return;
	}
	cJSON *body = api_json_body(r);
	if (body == NULL)
		return;
	struct jf j;
	jf_init(&j);
	jf_only(&j, body, "", known);
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(body, "closures");
	cJSON *normal = cJSON_CreateArray();
	if (list == NULL || cJSON_IsNull(list))
		jf_fail(&j, "missing-field", "", "closures", "closures is required (may be [])");
	else if (!cJSON_IsArray(list))
		jf_fail(&j, "invalid-field", "", "closures", "closures must be a list");
	else if (cJSON_GetArraySize(list) > CLOSURES_MAX)
		jf_fail(&j, "too-many-closures", "", "closures", "at most %d closures",
			CLOSURES_MAX);
	else
		read_closures(&j, list, normal);
	if (refused(r, &j, body)) {
		cJSON_Delete(normal);
		return;
	}
	char *text = cJSON_PrintUnformatted(normal);
	cJSON_Delete(normal);
	const char *params[] = {urn, text};
	sql_reply_txn(r, "SELECT 200, dualreg_closures_replace($1, $2::jsonb)", 2, params, NULL);
	cJSON_free(text);
	cJSON_Delete(body);
}
