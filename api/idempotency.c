/*
 * idempotency: claims, stores and replays Idempotency-Key responses (see
 * idempotency.h): the pipeline's last stage (idem_begin) takes the claim and sets the
 * request's reply hook, through which the handler's reply is stored before it is sent
 * (request.c). Every statement is one short pooled statement, never a transaction
 * held across the handler: the claim row itself is the lock, and a crashed or timed-out
 * request leaves a 'running' row that a retry takes over once it is older than twice the
 * request timeout (no request can still be running then). A reply the database refuses
 * to store releases the claim before it is sent, so that a retry runs afresh instead of
 * meeting a 'running' row that nothing will ever finish.
 *
 * Shown once: the replies of the routes in shown_once carry a webhook signing secret
 * that the caller sees only in the first response. The stored copy, and so every
 * replay, has that member set to null and "secret_already_shown": true instead
 * (api/openapi.yaml, SubscriptionWithSecret); the secret never reaches the table.
 */
#include "idempotency.h"

#include <cJSON.h>
#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/api.h"
#include "dualreg/config.h"
#include "dualreg/db.h"
#include "dualreg/log.h"
#include "dualreg/xalloc.h"
#include "problem.h"
#include "request.h"

struct idem_claim {
	char key_id[24];
	char idem_key[IDEM_KEY_MAX + 1];
	char hash[IDEM_HASH_HEX];
	bool claimed; /* our row is in the table: the reply must be stored or released */
	void (*next)(struct api_req *r);
};

static bool claim_held(struct api_req *r);
static void record(struct api_req *r, int status, const char *ctype, const char *body);
static void abandon(struct api_req *r);
static void claim_free(struct api_req *r);

static const struct req_reply_hook reply_hook = {claim_held, record, abandon, claim_free};

bool idem_applies(unsigned method, enum router_access access)
{
	return method == RM_POST && (access == ROUTE_KEY || access == ROUTE_ADMIN);
}

bool idem_key_valid(const char *v)
{
	size_t n = 0;
	for (; v[n] != '\0'; n++) {
		if (n >= IDEM_KEY_MAX || (unsigned char)v[n] < 0x20 || (unsigned char)v[n] > 0x7e)
			return false;
	}
	return n > 0;
}

void idem_request_hash(const char *method, const char *uri, const void *body, size_t body_len,
		       char out[IDEM_HASH_HEX])
{
	/* method NUL uri NUL body: neither method nor URI can contain a NUL, so two
	 * different requests never frame to the same bytes. */
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	EVP_DigestUpdate(ctx, method, strlen(method) + 1);
	EVP_DigestUpdate(ctx, uri, strlen(uri) + 1);
	if (body_len > 0)
		EVP_DigestUpdate(ctx, body, body_len);
	EVP_DigestFinal_ex(ctx, md, &len);
	EVP_MD_CTX_free(ctx);
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[64] = '\0';
}

enum idem_decision idem_decide(bool claimed, const char *state, const char *stored_hash,
			       const char *our_hash)
{
	if (claimed)
		return IDEM_RUN;
	if (state == NULL)
		return IDEM_IN_PROGRESS; /* claimed concurrently, not yet visible to us */
	if (stored_hash == NULL || strcmp(stored_hash, our_hash) != 0)
		return IDEM_REUSED;
	return strcmp(state, "done") == 0 ? IDEM_REPLAY : IDEM_IN_PROGRESS;
}

static void claim_free(struct api_req *r)
{
	struct req *q = req_of(r);
	free(q->idem);
	q->idem = NULL;
}

/*
 * One statement: insert the claim, or take over an expired or abandoned row; otherwise
 * return the row as it is. Rows come back as (state, request_hash, status, content_type,
 * response) with state 'claimed' for our own claim. No row: another request claimed the
 * key concurrently and has not committed in our snapshot.
 */
static const char claim_sql[] =
    "WITH claim AS ("
    " INSERT INTO idempotency_keys AS k (key_id, idem_key, request_hash, state)"
    " VALUES ($1::bigint, $2, $3, 'running')"
    " ON CONFLICT (key_id, idem_key) DO UPDATE"
    "  SET request_hash = excluded.request_hash, state = 'running', status = NULL,"
    "      content_type = NULL, response = NULL, created_at = now()"
    "  WHERE k.created_at < now() - interval '" IDEM_TTL_SQL "'"
    "     OR (k.state = 'running' AND k.created_at < now() - $4::interval)"
    " RETURNING 1)"
    " SELECT 'claimed', NULL, NULL::int, NULL, NULL FROM claim"
    " UNION ALL"
    " SELECT k.state, k.request_hash, k.status, k.content_type, k.response"
    "   FROM idempotency_keys k"
    "  WHERE k.key_id = $1::bigint AND k.idem_key = $2"
    "    AND NOT EXISTS (SELECT 1 FROM claim)";

static void claim_done(struct api_req *r, PGresult *res)
{
	struct idem_claim *c = req_of(r)->idem;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		api_reply_db_error(r, res);
		return;
	}
	bool claimed = PQntuples(res) > 0 && strcmp(PQgetvalue(res, 0, 0), "claimed") == 0;
	const char *state = PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : NULL;
	const char *hash = PQntuples(res) > 0 ? PQgetvalue(res, 0, 1) : NULL;
	switch (idem_decide(claimed, state, hash, c->hash)) {
	case IDEM_RUN:
		c->claimed = true;
		c->next(r);
		return;
	case IDEM_REUSED:
		api_reply_error(r, 422, "idempotency-key-reused",
				"this Idempotency-Key was already used for a different request; "
				"use a new key for a new request");
		return;
	case IDEM_IN_PROGRESS:
		api_set_header(r, "Retry-After", "1");
		api_reply_error(r, 409, "idempotency-key-in-progress",
				"a request with this Idempotency-Key is still in progress; retry "
				"later to get its response");
		return;
	case IDEM_REPLAY:
		break;
	}
	int status = (int)strtol(PQgetvalue(res, 0, 2), NULL, 10);
	bool has_body = !PQgetisnull(res, 0, 4);
	api_set_header(r, "Idempotent-Replayed", "true");
	api_reply_raw(r, status, PQgetvalue(res, 0, 3), has_body ? PQgetvalue(res, 0, 4) : NULL);
}

void idem_begin(struct api_req *r, void (*next)(struct api_req *r))
{
	const char *v = api_header(r, "Idempotency-Key");
	if (v == NULL) {
		next(r);
		return;
	}
	if (!idem_key_valid(v)) {
		cJSON *p = problem_new(400, "invalid-idempotency-key", NULL,
				       "the Idempotency-Key header must be 1 to 255 printable "
				       "ASCII characters");
		api_reply_problem(r, p);
		return;
	}
	struct idem_claim *c = xcalloc(1, sizeof *c);
	struct req *q = req_of(r);
	q->idem = c;
	q->reply_hook = &reply_hook;
	c->next = next;
	snprintf(c->key_id, sizeof c->key_id, "%lld", r->key.id);
	snprintf(c->idem_key, sizeof c->idem_key, "%s", v);
	struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
	size_t len = evbuffer_get_length(in);
	const void *body = len > 0 ? evbuffer_pullup(in, (ev_ssize_t)len) : NULL;
	const char *uri = evhttp_request_get_uri(r->req);
	idem_request_hash("POST", uri != NULL ? uri : "", body, len, c->hash);
	char abandoned[32];
	snprintf(abandoned, sizeof abandoned, "%u milliseconds",
		 r->env->cfg->request_timeout_ms * 2);
	const char *params[] = {c->key_id, c->idem_key, c->hash, abandoned};
	api_query(r, claim_sql, 4, params, claim_done);
}

/* True while r holds a claim whose reply must be recorded. */
static bool claim_held(struct api_req *r)
{
	const struct idem_claim *c = req_of(r)->idem;
	return c != NULL && c->claimed;
}

static const char release_sql[] =
    "DELETE FROM idempotency_keys WHERE key_id = $1::bigint AND idem_key = $2"
    " AND request_hash = $3 AND state = 'running'";

/* The claim was released (or could not be: it expires as abandoned); now the reply. */
static void released(struct api_req *r, PGresult *res)
{
	struct idem_claim *c = req_of(r)->idem;
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		log_warn("idempotency claim not released", "route=%s err=\"%.*s\"", r->route->name,
			 (int)strcspn(PQresultErrorMessage(res), "\n"), PQresultErrorMessage(res));
	c->claimed = false;
	req_send_kept(r);
}

static void release(struct api_req *r)
{
	struct idem_claim *c = req_of(r)->idem;
	const char *params[] = {c->key_id, c->idem_key, c->hash};
	api_query(r, release_sql, 3, params, released);
}

static void stored(struct api_req *r, PGresult *res)
{
	struct idem_claim *c = req_of(r)->idem;
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		/* Nothing can replay this reply, and the row would stay 'running', answering
		 * every retry 409 until it is taken over as abandoned: release it instead. */
		log_warn("idempotency record not written; claim released", "route=%s err=\"%.*s\"",
			 r->route->name, (int)strcspn(PQresultErrorMessage(res), "\n"),
			 PQresultErrorMessage(res));
		release(r);
		return;
	}
	c->claimed = false;
	req_send_kept(r);
}

/* The routes whose successful reply shows a secret once, and the member holding it. */
static const struct {
	const char *route, *member;
} shown_once[] = {
    {"subscriptions.create", "secret"},
    {"subscriptions.rotate", "secret"},
};

/*
 * The body to store for a reply: for a route of shown_once, a 2xx JSON object with its
 * secret member set to null and "secret_already_shown": true (malloc'd); otherwise
 * NULL, and the body is stored as it is. A body of such a route that cannot be read
 * is stored as {} rather than kept whole.
 */
static char *redacted(const struct api_req *r, int status, const char *body)
{
	if (body == NULL || status < 200 || status > 299)
		return NULL;
	const char *member = NULL;
	for (size_t i = 0; i < sizeof shown_once / sizeof shown_once[0]; i++)
		if (strcmp(r->route->name, shown_once[i].route) == 0)
			member = shown_once[i].member;
	if (member == NULL)
		return NULL;
	cJSON *json = cJSON_Parse(body);
	if (!cJSON_IsObject(json)) {
		cJSON_Delete(json);
		return xstrdup("{}");
	}
	cJSON_ReplaceItemInObjectCaseSensitive(json, member, cJSON_CreateNull());
	cJSON_DeleteItemFromObjectCaseSensitive(json, "secret_already_shown");
	cJSON_AddTrueToObject(json, "secret_already_shown");
	char *text = cJSON_PrintUnformatted(json);
	cJSON_Delete(json);
	char *out = xstrdup(text);
	cJSON_free(text);
	return out;
}

/*
 * The handler replied status (with body text, NULL for none, of content type ctype):
 * stores it (redacted when it shows a secret), or releases the claim for a 5xx; the
 * kept reply is sent afterwards. If the database does not answer, txn.c's 503 sends
 * the kept reply instead.
 */
static void record(struct api_req *r, int status, const char *ctype, const char *body)
{
	struct idem_claim *c = req_of(r)->idem;
	if (status >= 500) {
		release(r);
		return;
	}
	char st[16];
	snprintf(st, sizeof st, "%d", status);
	char *kept = redacted(r, status, body);
	const char *params[] = {c->key_id, c->idem_key, c->hash, st, body != NULL ? ctype : NULL,
				kept != NULL ? kept : body};
	api_query(r,
		  "UPDATE idempotency_keys SET state = 'done', status = $4::int,"
		  " content_type = $5, response = $6"
		  " WHERE key_id = $1::bigint AND idem_key = $2 AND request_hash = $3"
		  " AND state = 'running'",
		  6, params, stored);
	free(kept);
}

static void detached_done(PGresult *res, const char *err, void *arg)
{
	(void)arg;
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
		log_warn("idempotency claim not released", "err=\"%s\"",
			 res == NULL ? err : PQresultErrorMessage(res));
}

/* The deadline passed before the handler replied: the claim is released in the
 * background, without waiting. */
static void abandon(struct api_req *r)
{
	struct idem_claim *c = req_of(r)->idem;
	if (c == NULL || !c->claimed)
		return;
	c->claimed = false;
	const char *params[] = {c->key_id, c->idem_key, c->hash};
	dbp_query(r->env->db, release_sql, 3, params, detached_done, NULL);
}

/* ---- purging expired rows ---- */

/* A first purge soon after start (a daemon restarted often still purges), then every
 * PURGE_EVERY_S. */
#define PURGE_FIRST_S 2
#define PURGE_EVERY_S 600

struct idem_purger {
	struct db_pool *db;
	struct event *ev, *first;
	struct db_op *op;
};

static void purge_done(PGresult *res, const char *err, void *arg)
{
	struct idem_purger *p = arg;
	p->op = NULL;
	if (res == NULL)
		log_debug("idempotency purge skipped", "err=\"%s\"", err);
	else if (PQresultStatus(res) != PGRES_COMMAND_OK)
		log_warn("idempotency purge failed", "err=\"%.*s\"",
			 (int)strcspn(PQresultErrorMessage(res), "\n"), PQresultErrorMessage(res));
	else if (strcmp(PQcmdTuples(res), "0") != 0)
		log_info("idempotency records purged", "rows=%s", PQcmdTuples(res));
}

static void purge_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct idem_purger *p = arg;
	if (p->op != NULL)
		return; /* the previous purge is still running */
	p->op = dbp_query(p->db,
			  "DELETE FROM idempotency_keys"
			  " WHERE created_at < now() - interval '" IDEM_TTL_SQL "'",
			  0, NULL, purge_done, p);
}

struct idem_purger *idem_purger_start(struct event_base *base, struct db_pool *db)
{
	struct idem_purger *p = xcalloc(1, sizeof *p);
	p->db = db;
	p->ev = event_new(base, -1, EV_PERSIST, purge_cb, p);
	struct timeval tv = {PURGE_EVERY_S, 0};
	event_add(p->ev, &tv);
	p->first = evtimer_new(base, purge_cb, p);
	struct timeval soon = {PURGE_FIRST_S, 0};
	event_add(p->first, &soon);
	return p;
}

void idem_purger_stop(struct idem_purger *p)
{
	if (p == NULL)
		return;
	if (p->op != NULL)
		db_op_cancel(p->op);
	event_free(p->ev);
	event_free(p->first);
	free(p);
}
