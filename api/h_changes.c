/*
 * changes: GET /v1/changes?since=CURSOR&limit=N&wait=S — the change feed, with long
 * polling. since=now starts from the feed's current end (one index probe backwards),
 * so a client that wants only what happens next need not read the history first.
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
 * its school, through event_schools (the event log filed by school, in feed order), so
 * its page is an index seek whatever the other schools hold.
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
 *
 * A waiting request registers for the notifications that concern its key's school (an
 * admin's: any school), so an event elsewhere does not make it query again. Each key
 * may have [limits] max_waits long polls in progress; one more is refused with 429
 * too-many-waits and Retry-After, before any query. The count is taken when the wait is
 * accepted and given back in changes_free, which every ending passes through (reply,
 * expiry, error, client gone, deadline, shutdown). The server does not hear of a client
 * that closes its connection while the request is being handled, so a long poll watches
 * the socket itself (ev_gone): the end of the stream ends the poll at once, with the
 * empty page nobody reads. Bytes instead (a pipelined request, a TLS close_notify) stop
 * the watch; such a poll ends at its wait.
 */
#include <ctype.h>
#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/http.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dualreg/config.h"
#include "dualreg/db.h"
#include "dualreg/listen.h"
#include "dualreg/log.h"
#include "dualreg/xalloc.h"
#include "cursors.h"
#include "handlers.h"
#include "problem.h"

#define CHANGES_LIMIT_DEFAULT 100
#define CHANGES_LIMIT_MAX 1000
#define CHANGES_WAIT_MAX_S 60
#define RECHECK_FIRST_MS 100u
#define RECHECK_MAX_MS 2000u
#define WAITS_RETRY_AFTER_S "5"

#define CHANGES_HORIZON                                                                    \
	"WITH h AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS horizon), "
/* The page as JSON and its last (tx, id); each statement then adds whether events
 * after the cursor are held back behind a running transaction. */
#define CHANGES_PAGE                                                                       \
	"SELECT coalesce((SELECT json_agg(json_build_object('id', id, 'type', type,"       \
	"                  'occurred_at', occurred_at, 'data', data) ORDER BY tx, id)"     \
	"                 FROM page), '[]'::json),"                                        \
	"       (SELECT p.tx FROM page p ORDER BY p.tx DESC, p.id DESC LIMIT 1)::text,"    \
	"       (SELECT p.id FROM page p ORDER BY p.tx DESC, p.id DESC LIMIT 1),"

/* Every event: $1 tx, $2 id (the cursor), $3 limit. */
static const char *const changes_all_sql =
    CHANGES_HORIZON
    "page AS ("
    " SELECT e.id, e.tx, e.type, e.occurred_at, e.data FROM events e"
    "  WHERE (e.tx, e.id) > ($1::xid8, $2::bigint)"
    "    AND e.tx < (SELECT horizon FROM h)"
    "  ORDER BY e.tx, e.id LIMIT $3::int) "
    CHANGES_PAGE
    /* Held back: the last event is at or past the horizon and after the cursor (if any
     * event is, the last one is), read backwards off events_order. */
    "       EXISTS (SELECT 1 FROM (SELECT e.tx, e.id FROM events e"
    "                               ORDER BY e.tx DESC, e.id DESC LIMIT 1) last"
    "                WHERE last.tx >= (SELECT horizon FROM h)"
    "                  AND (last.tx, last.id) > ($1::xid8, $2::bigint))";

/* One school's events: $1 tx, $2 id (the cursor), $3 the school, $4 limit. */
static const char *const changes_school_sql =
    CHANGES_HORIZON
    "page AS ("
    " SELECT e.id, e.tx, e.type, e.occurred_at, e.data"
    "   FROM event_schools s JOIN events e ON e.id = s.event_id"
    "  WHERE s.urn = $3::text AND (s.tx, s.event_id) > ($1::xid8, $2::bigint)"
    "    AND s.tx < (SELECT horizon FROM h)"
    "  ORDER BY s.tx, s.event_id LIMIT $4::int) "
    CHANGES_PAGE
    "       EXISTS (SELECT 1 FROM event_schools s"
    "                WHERE s.urn = $3::text AND s.tx >= (SELECT horizon FROM h)"
    "                  AND (s.tx, s.event_id) > ($1::xid8, $2::bigint))";

/* since=now: the feed's current end for the key, as the cursor of an empty page. The
 * last event below the horizon (every event at or past it belongs to a transaction
 * still running and will come after this position, so none is skipped); 0:0 when there
 * is none. $1 the school (the school variant only). */
#define CHANGES_END(from)                                                            \
	CHANGES_HORIZON                                                                    \
	"last AS (SELECT e.tx, e.id FROM " from " WHERE e.tx < (SELECT horizon FROM h)" \
	"         ORDER BY e.tx DESC, e.id DESC LIMIT 1) "                                 \
	"SELECT '[]'::json, coalesce((SELECT tx FROM last), '0'::xid8)::text,"             \
	"       coalesce((SELECT id FROM last), 0), false"
static const char *const changes_all_end_sql = CHANGES_END("events e");
static const char *const changes_school_end_sql =
    CHANGES_END("(SELECT tx, event_id AS id FROM event_schools WHERE urn = $1::text) e");

/* Long polls in progress per API key: a small chained hash table, entries freed at 0. */
#define WAIT_BUCKETS 256u
struct key_waits {
	long long key_id;
	unsigned n;
	struct key_waits *next;
};
static struct key_waits *waits_by_key[WAIT_BUCKETS];
static unsigned waits_now;
static unsigned long long waits_refused, requeries;

static struct key_waits **waits_slot(long long key_id)
{
	struct key_waits **pp = &waits_by_key[(unsigned long long)key_id % WAIT_BUCKETS];
	while (*pp != NULL && (*pp)->key_id != key_id)
		pp = &(*pp)->next;
	return pp;
}

/* Counts one more long poll for key_id unless it has max already. */
static bool waits_take(long long key_id, unsigned max)
{
	struct key_waits **pp = waits_slot(key_id);
	if (*pp == NULL) {
		*pp = xcalloc(1, sizeof **pp);
		(*pp)->key_id = key_id;
	}
	if ((*pp)->n >= max) {
		waits_refused++;
		return false;
	}
	(*pp)->n++;
	waits_now++;
	return true;
}

static void waits_give(long long key_id)
{
	struct key_waits **pp = waits_slot(key_id);
	if (*pp == NULL || (*pp)->n == 0)
		return;
	waits_now--;
	if (--(*pp)->n == 0) {
		struct key_waits *k = *pp;
		*pp = k->next;
		free(k);
	}
}

void changes_get_stats(struct changes_stats *out)
{
	out->waits = waits_now;
	out->waits_refused = waits_refused;
	out->requeries = requeries;
}

struct changes_state {
	struct api_req *r;
	struct dbl_waiter waiter;
	struct event ev_expire;
	struct event ev_recheck;
	struct event ev_gone; /* the client's socket, watched for its end during the wait */
	bool watching;
	char tx[CURSOR_NUM_MAX], id[CURSOR_NUM_MAX], limit[8], urn[8];
	long long key_id;
	bool admin;
	bool counted; /* one of its key's long polls in progress */
	unsigned wait_ms;
	unsigned recheck_ms;
	uint64_t gen;
	bool querying;
	bool expired;
	bool from_end; /* since=now: the first query finds the feed's end */
};

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
	if (st->watching)
		event_del(&st->ev_gone);
	if (st->counted)
		waits_give(st->key_id);
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
	char cursor[CURSOR_CHANGES_MAX];
	cursor_changes_encode(st->tx, st->id, cursor);
	changes_free(st);
	cJSON *body = cJSON_CreateObject();
	cJSON_AddItemToObject(body, "changes", changes ? changes : cJSON_CreateArray());
	cJSON_AddStringToObject(body, "next_cursor", cursor);
	reads_audit_body(r, body); /* each pupil the returned events name */
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
		log_debug("database unavailable", "route=%s err=\"%s\"", r->route->name, err);
		api_set_header(r, "Retry-After", "1");
		api_reply_error(r, 503, "database-unavailable", "the database is unavailable; retry");
		return;
	}
	changes_done(r, res);
}

static void changes_query(struct changes_state *st)
{
	struct api_req *r = st->r;
	st->gen = r->env->listener != NULL ? dbl_generation(r->env->listener) : 0;
	st->querying = true;
	if (st->from_end) {
		const char *params[] = {st->urn};
		r->op = dbp_query(r->env->db, st->admin ? changes_all_end_sql : changes_school_end_sql,
				  st->admin ? 0 : 1, params, changes_result, st);
		return;
	}
	if (st->admin) {
		const char *params[] = {st->tx, st->id, st->limit};
		r->op = dbp_query(r->env->db, changes_all_sql, 3, params, changes_result, st);
	} else {
		const char *params[] = {st->tx, st->id, st->urn, st->limit};
		r->op = dbp_query(r->env->db, changes_school_sql, 4, params, changes_result, st);
	}
}

static void changes_woken(struct dbl_waiter *w)
{
	struct changes_state *st =
	    (struct changes_state *)((char *)w - offsetof(struct changes_state, waiter));
	evtimer_del(&st->ev_recheck);
	requeries++;
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
	requeries++;
	changes_query(st);
}

/* The client's socket is readable while its long poll waits: gone, or talking. */
static void gone_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct changes_state *st = arg;
	st->watching = false;
	char c;
	ssize_t n = 0;
	/* No connection left means evhttp saw the end itself and closed the socket. */
	if (evhttp_request_get_connection(st->r->req) != NULL) {
		n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
			st->watching = event_add(&st->ev_gone, NULL) == 0;
			return;
		}
	}
	if (n > 0)
		return; /* bytes, not the end: the wait runs its course */
	log_debug("long poll client left", "route=%s", st->r->route->name);
	st->expired = true;
	if (st->querying)
		return; /* the query in flight answers */
	changes_reply(st, NULL);
}

/* Starts watching the client's socket for its end (see the header). */
static void watch_client(struct changes_state *st)
{
	struct api_req *r = st->r;
	struct evhttp_connection *conn = r->req != NULL ? evhttp_request_get_connection(r->req) : NULL;
	struct bufferevent *bev = conn != NULL ? evhttp_connection_get_bufferevent(conn) : NULL;
	evutil_socket_t fd = bev != NULL ? bufferevent_getfd(bev) : -1;
	if (fd < 0)
		return;
	event_assign(&st->ev_gone, r->env->base, fd, EV_READ, gone_cb, st);
	st->watching = event_add(&st->ev_gone, NULL) == 0;
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
	if (st->from_end) {
		/* the end found: wait from there like any cursor */
		st->from_end = false;
		snprintf(st->tx, sizeof st->tx, "%s", PQgetvalue(res, 0, 1));
		snprintf(st->id, sizeof st->id, "%s", PQgetvalue(res, 0, 2));
	}
	if (st->wait_ms == 0 || st->expired) {
		changes_reply(st, NULL);
		return;
	}
	struct db_listener *l = r->env->listener;
	/* An admin's feed waits for any school's events, a school's for its own. */
	if (l != NULL && !dbl_wait_for(l, &st->waiter, st->gen, st->admin ? NULL : st->urn)) {
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
	if (reads_audit_refused(r))
		return;
	char since[CURSOR_CHANGES_MAX];
	int got = reads_param(r, "since", since, sizeof since);
	if (got > 0 && strcmp(since, "now") == 0) {
		tmp.from_end = true;
		got = 0;
	}
	if (got != 0 && (got < 0 || !cursor_changes_decode(since, tmp.tx, tmp.id))) {
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
	unsigned max_waits = r->env->cfg->max_waits_per_key;
	if (wait_s > 0 && !waits_take(r->key.id, max_waits)) {
		char detail[128];
		snprintf(detail, sizeof detail,
			 "this key has %u long polls (wait) in progress already, the most allowed",
			 max_waits);
		api_set_header(r, "Retry-After", WAITS_RETRY_AFTER_S);
		api_reply_problem(r, problem_new(429, "too-many-waits", NULL, detail));
		return;
	}

	struct changes_state *st = xcalloc(1, sizeof *st);
	*st = tmp;
	st->r = r;
	st->admin = r->key.admin;
	st->key_id = r->key.id;
	st->counted = wait_s > 0;
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
		watch_client(st);
	}
	changes_query(st);
}
