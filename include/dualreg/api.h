/*
 * api: the HTTP API as handlers and the daemon see it. The listener (api/server.c)
 * accepts and routes; each routed request then lives in api/request.c (deadline, reply
 * exactly once, access log, metrics, audit) and passes the stages of api/pipeline.c
 * (authentication, access level, rate limit, Idempotency-Key) before its handler runs.
 * What those modules keep about a request for themselves is in api/request.h, not
 * here.
 *
 * A handler receives a struct api_req and must eventually call one api_reply_* function
 * exactly once, now or from a later callback. After that call the request is gone.
 * If the deadline passes first, the server replies 503 itself, cancels r->op and calls
 * r->on_abort, so a late callback must never run for a finished request: asynchronous
 * work is registered in r->op (a pooled database operation) or undone by on_abort.
 */
#ifndef DUALREG_API_H
#define DUALREG_API_H

#include <cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "dualreg/router.h"

struct event_base;
struct evhttp_request;
struct db_pool;
struct db_op;
struct pg_result;
struct config;
struct api_server;
struct idem_purger;
struct db_listener;
struct status_cache;
struct outbox;
struct audit;
struct workers;

/* What handlers may use; owned by the daemon and outliving the server. */
struct evdns_base;

struct api_env {
	struct event_base *base;
	struct db_pool *db;
	const struct config *cfg;
	struct evdns_base *dns; /* asynchronous name resolution on the loop */
	struct db_listener *listener; /* change notifications (listen.h); may be NULL */
	struct status_cache *status_cache; /* pupil status bodies (status_cache.h); may be NULL */
	const struct outbox *outbox;       /* for its statistics; may be NULL */
	struct audit *audit;               /* records reads of pupil data; may be NULL */
	struct workers *workers;           /* threads for password hashing (workers.h) */
};

/* The caller, once authenticated (api/auth.c). */
struct api_key {
	long long id;
	char name[128];
	bool admin;
	char urn[8]; /* the school a school key acts for; "" for admin */
};

struct db_conn;

/* A routed request, as its handler sees it. */
struct api_req {
	const struct api_env *env;
	struct evhttp_request *req;
	const struct router_route *route;
	struct router_params params;
	unsigned method;                    /* enum router_method */
	struct db_op *op;                   /* pooled operation in flight, if any */
	void (*on_abort)(struct api_req *r); /* undo other asynchronous work and free state;
					      also run when api_query/api_txn_* or
					      api_reply_db_error answer for the handler */
	void *state;                        /* the handler's own */
	struct api_key key;                 /* the caller (routes other than ROUTE_PUBLIC) */
	struct db_conn *conn;               /* held by an open transaction (api_txn_*) */
};

typedef void (*api_handler_fn)(struct api_req *r);

/* The school the caller's key is limited to, or NULL for an admin key: the scope
 * parameter every scoped SQL statement takes (api/auth.c). */
const char *api_key_scope(const struct api_req *r);

/* The channel a change to api_keys notifies (sql/functions/15_keys.sql). */
#define API_KEYS_CHANNEL "dualreg_keys"
/* Keeps the API key caches (api/auth.c) true to the database: listener, on
 * API_KEYS_CHANNEL, invalidates every cached key and unknown token on each notification
 * and reconnection, so a revoked key is refused by the next request. Without it,
 * entries live [limits] key_cache_ttl. unfollow (before the listener is freed) stops. */
void api_key_cache_follow(struct db_listener *listener);
void api_key_cache_unfollow(void);

/* ---- the listener (api/server.c) ---- */

/*
 * Creates the server and binds the configured listen address (name resolution happens
 * here, before the loop runs). Returns NULL with why in err.
 */
struct api_server *api_server_new(const struct api_env *env, char *err, size_t errlen);
/* The bound port (useful when the configuration asked for port 0). */
uint16_t api_server_port(const struct api_server *s);
unsigned api_server_inflight(const struct api_server *s);
/* Client connections: open now (accepted, not yet closed), and since start refused
 * beyond [server] max_connections or closed because a request did not arrive within
 * [server] read_timeout. Process-wide, for /metrics; zeros before a server exists. */
struct api_conn_stats {
	unsigned open;
	unsigned long long refused, read_timeouts;
};
void api_server_conn_stats(struct api_conn_stats *out);
/*
 * Stops accepting connections; requests already received finish. drained(arg) runs
 * once no request is in progress (on the next loop turn if none is).
 */
void api_server_drain(struct api_server *s, void (*drained)(void *arg), void *arg);
/* Frees the server; requests still in progress are abandoned. */
void api_server_free(struct api_server *s);

/* The timer that deletes Idempotency-Key records older than 24 hours, every few minutes
 * (api/idempotency.c). */
struct idem_purger *idem_purger_start(struct event_base *base, struct db_pool *db);
void idem_purger_stop(struct idem_purger *p);

/* ---- the request (api/request.c; api_json_body in api/body.c) ---- */

/* Moves the request's deadline to ms from now (a long poll that means to wait longer
 * than request_timeout). */
void api_extend_deadline(struct api_req *r, unsigned ms);

/* Adds or replaces a response header (before the reply). */
void api_set_header(struct api_req *r, const char *name, const char *value);
/* Replies with body as JSON; takes ownership of body (NULL: no body). */
void api_reply_json(struct api_req *r, int status, cJSON *body);
/* Replies with a body (NUL-terminated text, copied; NULL: none) of content type ctype. */
void api_reply_raw(struct api_req *r, int status, const char *ctype, const char *body);
/* Replies with a problem object from problem_new; takes ownership. */
void api_reply_problem(struct api_req *r, cJSON *problem);
/* Replies with a problem built from status, slug (NULL: default) and a detail text. */
void api_reply_error(struct api_req *r, int status, const char *slug, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A request header, or NULL. */
const char *api_header(struct api_req *r, const char *name);
/*
 * A query-string parameter, decoded, copied into buf: 1 if present (a parameter
 * without "=" is present with an empty value), 0 if absent (buf is left as it is, so
 * it may hold a default), -1 if its value does not fit in buflen (buf is then ""): a
 * value is never cut short, callers answer -1 as an invalid value. A query string that cannot be read at all (see router_query_parse)
 * was answered 400 invalid-query before the handler ran.
 */
int api_query_param(struct api_req *r, const char *name, char *buf, size_t buflen);

/*
 * The request body as a JSON object. Checks Content-Type (415), parses (400 with the
 * position of the error) and requires an object (422); on failure replies itself and
 * returns NULL. The caller owns the result.
 */
cJSON *api_json_body(struct api_req *r);

/* ---- database work for a request (api/txn.c) ----
 * Result callbacks get the statement's result: a successful one, or an SQL error (see
 * PQresultStatus; api_reply_db_error maps the usual ones). When there is no result at
 * all (database unavailable, connection lost) the request is answered 503 and the
 * callback is not called. */
typedef void (*api_result_fn)(struct api_req *r, struct pg_result *res);

/* One statement on any pooled connection (outside a transaction). */
void api_query(struct api_req *r, const char *sql, int nparams, const char *const *params,
	       api_result_fn next);
/* Holds a connection and opens a transaction; then next(r, NULL). */
void api_txn_begin(struct api_req *r, api_result_fn next);
/* A statement inside the open transaction. After an SQL error the transaction is
 * aborted: only api_txn_abort (or a reply, which rolls back) may follow. */
void api_txn_query(struct api_req *r, const char *sql, int nparams, const char *const *params,
		   api_result_fn next);
/* Commits and returns the connection; then next(r, NULL). A failed commit replies. */
void api_txn_commit(struct api_req *r, api_result_fn next);
/* Rolls back, returns the connection and replies with problem (takes ownership). */
void api_txn_abort(struct api_req *r, cJSON *problem);
/* Result callbacks that reply 200 with the JSON text in row 0, column 0 as it is
 * (built by PostgreSQL); ..._or_404 answers 404 when there is no row, and 204 when the
 * value is SQL NULL. SQL errors go to api_reply_db_error. */
void api_reply_sql_json(struct api_req *r, struct pg_result *res);
void api_reply_sql_json_or_404(struct api_req *r, struct pg_result *res);

/* Replies for an unexpected SQL error: 409 for unique/exclusion violations, 422 for
 * check/foreign-key violations, 503 for timeouts, else 500 (details only in the log).
 * Rolls back first when a transaction is open. */
void api_reply_db_error(struct api_req *r, struct pg_result *res);

#endif
