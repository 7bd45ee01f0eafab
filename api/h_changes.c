/*
 * changes: GET /v1/changes?since=CURSOR&limit=N&wait=S — the change feed, with long
 * polling.
 *
 * Order and completeness: events are paged by (tx, id), where tx is the writing
 * transaction's id, and only events of transactions older than the oldest one still
 * running (pg_snapshot_xmin of the statement's snapshot) are returned. Every
 * transaction below that horizon has finished, so no event can later appear before the
 * cursor: an event committed late with a smaller id is held back until it commits
 * and is then returned after the cursor, never skipped. The cursor is opaque to clients:
 * base64url (no padding) of "tx:id" of the last event returned.
 *
 * Scope: an admin key reads every event; a school key reads events whose urns include
 * its school.
 *
 * Long polling (wait > 0): when the page is empty the request registers with the
 * change listener (listen.h) and re-queries each time it is woken; it answers as soon
 * as a query returns something, or at the end of the wait with an empty page and the
 * same cursor. No polling: the only timers are the wait itself and, while events are
 * known to be held back behind a running transaction (which sends no notification when
 * it merely ends), a re-check backing off from 100 ms to 2 s. The request's deadline is
 * extended by the wait, so request_timeout does not cut a 60 s poll short. Timeouts,
 * client disconnects handled by the server and draining all end in on_abort or a reply,
 * both of which unregister the waiter first.
 */
#include <ctype.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/config.h"
#include "dualreg/db.h"
#include "dualreg/listen.h"
#include "dualreg/xalloc.h"
#include "handlers.h"
#include "problem.h"

#define CHANGES_LIMIT_DEFAULT 100
#define CHANGES_LIMIT_MAX 1000
#define CHANGES_WAIT_MAX_S 60
#define CURSOR_MAX 80
#define RECHECK_FIRST_MS 100u
#define RECHECK_MAX_MS 2000u

static const char *const changes_sql =
    "WITH h AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS horizon), "
    "page AS ("
    " SELECT e.id, e.tx, e.type, e.occurred_at, e.data FROM events e"
    "  WHERE (e.tx, e.id) > ($1::xid8, $2::bigint)"
    "    AND e.tx < (SELECT horizon FROM h)"
    "    AND ($3::text IS NULL OR e.urns @> ARRAY[$3::text])"
    "  ORDER BY e.tx, e.id LIMIT $4::int) "
    "SELECT coalesce((SELECT json_agg(json_build_object('id', id, 'type', type,"
    "                  'occurred_at', occurred_at, 'data', data) ORDER BY tx, id)"
    "                 FROM page), '[]'::json),"
    "       (SELECT p.tx FROM page p ORDER BY p.tx DESC, p.id DESC LIMIT 1)::text,"
    "       (SELECT p.id FROM page p ORDER BY p.tx DESC, p.id DESC LIMIT 1),"
    "       EXISTS (SELECT 1 FROM events e"
    "                WHERE e.tx >= (SELECT horizon FROM h)"
    "                  AND (e.tx, e.id) > ($1::xid8, $2::bigint)"
    "                  AND ($3::text IS NULL OR e.urns @> ARRAY[$3::text]))";

struct changes_state {
	struct api_req *r;
	struct dbl_waiter waiter;
	struct event ev_expire;
	struct event ev_recheck;
	char tx[24], id[24], limit[8], urn[8];
	bool admin;
	unsigned wait_ms;
	unsigned recheck_ms;
	uint64_t gen;
	bool querying;
	bool expired;
};

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void cursor_encode(const char *tx, const char *id, char out[CURSOR_MAX])
{
	char raw[64];
	int n = snprintf(raw, sizeof raw, "%s:%s", tx, id);
	size_t o = 0;
	for (int i = 0; i < n; i += 3) {
		unsigned v = (unsigned char)raw[i] << 16;
		if (i + 1 < n)
			v |= (unsigned char)raw[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)raw[i + 2];
		out[o++] = b64url[(v >> 18) & 63];
		out[o++] = b64url[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = b64url[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = b64url[v & 63];
	}
	out[o] = '\0';
}

/* Decodes base64url (padding optional) into out; false if malformed or too long. */
static bool b64url_decode(const char *in, char *out, size_t outlen)
{
	size_t n = strlen(in);
	while (n > 0 && in[n - 1] == '=')
		n--;
	if (n % 4 == 1)
		return false;
	unsigned v = 0;
	int bits = 0;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		const char *p = strchr(b64url, in[i]);
		if (in[i] == '\0' || p == NULL)
			return false;
		v = (v << 6) | (unsigned)(p - b64url);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o + 1 >= outlen)
				return false;
			out[o++] = (char)((v >> bits) & 0xff);
		}
	}
	out[o] = '\0';
	return true;
}

/* A run of 1-20 decimal digits whose value fits max. */
static bool decimal_in(const char *s, size_t len, uint64_t max, char *out, size_t outlen)
{
	if (len == 0 || len > 20 || len >= outlen)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (max - d) / 10)
			return false;
		v = v * 10 + d;
	}
	snprintf(out, outlen, "%" PRIu64, v);
	return true;
}

static bool cursor_decode(const char *cursor, struct changes_state *st)
{
	char raw[64];
	if (!b64url_decode(cursor, raw, sizeof raw))
		return false;
	const char *colon = strchr(raw, ':');
	if (colon == NULL)
		return false;
	return decimal_in(raw, (size_t)(colon - raw), UINT64_MAX, st->tx, sizeof st->tx) &&
	       decimal_in(colon + 1, strlen(colon + 1), INT64_MAX, st->id, sizeof st->id);
}

/* An integer query parameter in [lo, hi]: 1 set, 0 absent, -1 replied 422. */
static int int_param(struct api_req *r, const char *name, long lo, long hi, long *out)
{
	char buf[16];
	int got = reads_param(r, name, buf, sizeof buf);
	if (got == 0)
		return 0;
	bool ok = got > 0 && buf[0] != '\0' && strlen(buf) <= 6;
	for (const char *p = buf; ok && *p != '\0'; p++)
		ok = isdigit((unsigned char)*p);
	long v = ok ? strtol(buf, NULL, 10) : 0;
	if (!ok || v < lo || v > hi) {
		char slug[32], pointer[32], detail[96];
		snprintf(slug, sizeof slug, "invalid-%s", name);
		snprintf(pointer, sizeof pointer, "/query/%s", name);
		snprintf(detail, sizeof detail, "%s must be an integer from %ld to %ld", name, lo,
			 hi);
		cJSON *p = problem_new(422, slug, NULL, detail);
		problem_add_error(p, pointer, detail);
		api_reply_problem(r, p);
		return -1;
	}
	*out = v;
	return 1;
}

/* Undoes everything the long poll set up; the request itself is left to the caller. */
static void changes_free(struct changes_state *st)
{
	struct api_req *r = st->r;
	if (r->env->listener != NULL)
		dbl_cancel(r->env->listener, &st->waiter);
	evtimer_del(&st->ev_expire);
	evtimer_del(&st->ev_recheck);
	r->state = NULL;
	r->on_abort = NULL;
	free(st);
}

static void changes_abort(struct api_req *r)
{
	changes_free(r->state);
}

/* Replies with changes (NULL: an empty page) and the cursor after them. */
static void changes_reply(struct changes_state *st, cJSON *changes)
{
	struct api_req *r = st->r;
	char cursor[CURSOR_MAX];
	cursor_encode(st->tx, st->id, cursor);
	changes_free(st);
	cJSON *body = cJSON_CreateObject();
	cJSON_AddItemToObject(body, "changes", changes ? changes : cJSON_CreateArray());
	cJSON_AddStringToObject(body, "next_cursor", cursor);
	api_reply_json(r, 200, body);
}

static void changes_done(struct api_req *r, PGresult *res);

/* The pooled statement's outcome. Called directly rather than through api_query so
 * that "no database" also frees the long poll's state (timers, waiter) before the
 * 503 reply. */
static void changes_result(PGresult *res, const char *err, void *arg)
{
	struct changes_state *st = arg;
	struct api_req *r = st->r;
	r->op = NULL;
	if (res == NULL) {
		changes_free(st);
		api_set_header(r, "Retry-After", "1");
		api_reply_error(r, 503, "database-unavailable", "%s", err);
		return;
	}
	changes_done(r, res);
}

static void changes_query(struct changes_state *st)
{
	struct api_req *r = st->r;
	st->gen = r->env->listener != NULL ? dbl_generation(r->env->listener) : 0;
	st->querying = true;
	const char *params[] = {st->tx, st->id, st->admin ? NULL : st->urn, st->limit};
	r->op = dbp_query(r->env->db, changes_sql, 4, params, changes_result, st);
}

static void changes_woken(struct dbl_waiter *w)
{
	struct changes_state *st =
	    (struct changes_state *)((char *)w - offsetof(struct changes_state, waiter));
	evtimer_del(&st->ev_recheck);
	changes_query(st);
}

static void recheck_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct changes_state *st = arg;
	if (st->r->env->listener != NULL)
		dbl_cancel(st->r->env->listener, &st->waiter);
	st->recheck_ms = st->recheck_ms * 2 > RECHECK_MAX_MS ? RECHECK_MAX_MS : st->recheck_ms * 2;
	changes_query(st);
}

static void expire_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct changes_state *st = arg;
	st->expired = true;
	if (st->querying)
		return; /* the query in flight answers, whatever it finds */
	changes_reply(st, NULL);
}

static void changes_done(struct api_req *r, PGresult *res)
{
	struct changes_state *st = r->state;
	st->querying = false;
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		changes_free(st);
		api_reply_db_error(r, res);
		return;
	}
	cJSON *changes = cJSON_Parse(PQgetvalue(res, 0, 0));
	if (!cJSON_IsArray(changes)) {
		cJSON_Delete(changes);
		changes_free(st);
		api_reply_error(r, 500, "internal-error", "the change feed could not be read");
		return;
	}
	if (cJSON_GetArraySize(changes) > 0) {
		snprintf(st->tx, sizeof st->tx, "%s", PQgetvalue(res, 0, 1));
		snprintf(st->id, sizeof st->id, "%s", PQgetvalue(res, 0, 2));
		changes_reply(st, changes);
		return;
	}
	cJSON_Delete(changes);
	if (st->wait_ms == 0 || st->expired) {
		changes_reply(st, NULL);
		return;
	}
	struct db_listener *l = r->env->listener;
	if (l != NULL && !dbl_wait(l, &st->waiter, st->gen)) {
		changes_reply(st, NULL); /* shutting down: answer now */
		return;
	}
	bool held_back = PQgetvalue(res, 0, 3)[0] == 't';
	if (held_back || l == NULL) {
		struct timeval tv = {st->recheck_ms / 1000, (st->recheck_ms % 1000) * 1000};
		evtimer_add(&st->ev_recheck, &tv);
	} else {
		st->recheck_ms = RECHECK_FIRST_MS;
	}
}

void h_changes(struct api_req *r)
{
	struct changes_state tmp = {0};
	char since[CURSOR_MAX];
	int got = reads_param(r, "since", since, sizeof since);
	if (got != 0 && (got < 0 || !cursor_decode(since, &tmp))) {
		cJSON *p = problem_new(422, "invalid-cursor", NULL,
				       "since must be a next_cursor value returned by this feed");
		problem_add_error(p, "/query/since", "not a cursor of this feed");
		api_reply_problem(r, p);
		return;
	}
	if (got == 0) {
		snprintf(tmp.tx, sizeof tmp.tx, "0");
		snprintf(tmp.id, sizeof tmp.id, "0");
	}
	long limit = CHANGES_LIMIT_DEFAULT, wait_s = 0;
	if (int_param(r, "limit", 1, CHANGES_LIMIT_MAX, &limit) < 0)
		return;
	if (int_param(r, "wait", 0, CHANGES_WAIT_MAX_S, &wait_s) < 0)
		return;

	struct changes_state *st = xcalloc(1, sizeof *st);
	*st = tmp;
	st->r = r;
	st->admin = r->key.admin;
	snprintf(st->urn, sizeof st->urn, "%s", r->key.urn);
	snprintf(st->limit, sizeof st->limit, "%ld", limit);
	st->wait_ms = (unsigned)wait_s * 1000u;
	st->recheck_ms = RECHECK_FIRST_MS;
	st->waiter.wake = changes_woken;
	evtimer_assign(&st->ev_expire, r->env->base, expire_cb, st);
	evtimer_assign(&st->ev_recheck, r->env->base, recheck_cb, st);
	r->state = st;
	r->on_abort = changes_abort;
	if (st->wait_ms > 0) {
		/* The wait, then the usual allowance for the last query and the reply. */
		api_extend_deadline(r, st->wait_ms + r->env->cfg->request_timeout_ms);
		struct timeval tv = {(time_t)wait_s, 0};
		evtimer_add(&st->ev_expire, &tv);
	}
	changes_query(st);
}
