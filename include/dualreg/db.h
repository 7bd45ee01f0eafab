/*
 * db: PostgreSQL on the event loop. libpq runs in non-blocking mode and is driven by
 * libevent; no call here ever waits for the server.
 *
 *  - struct db_conn  one connection's state machine: connect (PQconnectPoll), per-connection
 *                    setup SQL, one statement at a time, NOTIFY delivery, breakage detection.
 *  - struct db_pool  a fixed set of connections shared by the daemon: a bounded FIFO of
 *                    waiters with deadlines, one connect attempt at a time, reconnect with
 *                    capped exponential backoff and jitter, and fail-fast with the last
 *                    connection error while the database is down.
 *
 * Callbacks run on the loop, exactly once, unless the operation is cancelled first.
 */
#ifndef DUALREG_DB_H
#define DUALREG_DB_H

#include <libpq-fe.h>
#include <stdbool.h>

struct event_base;
struct db_conn;
struct db_pool;
struct db_op;

/*
 * Result of one statement. Either res is the statement's result (owned by db and valid
 * only during the call; it may be an SQL error, see PQresultStatus) and err is NULL, or
 * res is NULL and err says why there is no result (database unavailable, connection
 * lost, timed out, too many waiters).
 */
typedef void (*db_result_cb)(PGresult *res, const char *err, void *arg);
/* A connection handed over by dbp_acquire, or NULL and why not. */
typedef void (*db_acquire_cb)(struct db_conn *conn, const char *err, void *arg);

/* ---- one connection ---- */

struct dbc_events {
	void (*ready)(struct db_conn *c, void *owner);                  /* connected + set up */
	void (*broken)(struct db_conn *c, const char *err, void *owner); /* closed by failure */
	void (*notify)(struct db_conn *c, const char *channel, const char *payload,
		       void *owner); /* optional */
};

/* Allocates an idle, unconnected connection; free with dbc_free. Strings are copied. */
struct db_conn *dbc_new(struct event_base *base, const char *conninfo,
			unsigned connect_timeout_ms, const char *setup_sql,
			const struct dbc_events *events, void *owner);
void dbc_free(struct db_conn *c);
/* Starts connecting; the outcome arrives through events->ready or events->broken. */
void dbc_connect(struct db_conn *c);
/* Closes the connection without callbacks; a statement in flight is abandoned. */
void dbc_close(struct db_conn *c);
bool dbc_is_ready(const struct db_conn *c);    /* connected, set up, no statement running */
bool dbc_is_connected(const struct db_conn *c); /* connected and set up */
void *dbc_owner(const struct db_conn *c);
/*
 * Sends one parameterised statement (text parameters; NULL entries are SQL NULL).
 * Returns 0, or -1 when the connection is not ready (cb is not called then).
 */
int dbc_query(struct db_conn *c, const char *sql, int nparams, const char *const *params,
	      db_result_cb cb, void *arg) __attribute__((warn_unused_result));

/* ---- the pool ---- */

struct db_pool_opts {
	const char *conninfo;
	unsigned size;               /* connections */
	unsigned connect_timeout_ms; /* per connect attempt */
	unsigned wait_timeout_ms;    /* longest wait for a connection, and for a pooled query */
	unsigned max_waiters;        /* beyond this, new work fails at once */
	const char *setup_sql;       /* run on every new connection (simple protocol) */
};

struct dbp_stats {
	unsigned size, connected, busy, waiting;
	unsigned long reconnects;
};

struct db_pool *dbp_new(struct event_base *base, const struct db_pool_opts *opts);
/* Closes every connection. Operations still pending are dropped without callbacks. */
void dbp_free(struct db_pool *p);

/* Runs one statement on any free connection; see db_result_cb. Strings are copied. */
struct db_op *dbp_query(struct db_pool *p, const char *sql, int nparams,
			const char *const *params, db_result_cb cb, void *arg);
/*
 * Hands a connection to the caller for several statements (a transaction). The holder
 * must give it back with dbp_release. Waiting is bounded by wait_timeout_ms.
 */
struct db_op *dbp_acquire(struct db_pool *p, db_acquire_cb cb, void *arg);
/*
 * Returns a held connection. If a statement is still running, or the connection may be
 * inside a transaction (in_doubt), it is closed and replaced instead of reused.
 */
void dbp_release(struct db_pool *p, struct db_conn *c, bool in_doubt);
/*
 * Withdraws an operation whose callback has not run yet. A queued operation is dropped;
 * a running statement's connection is closed and replaced (its outcome is unknown).
 */
void db_op_cancel(struct db_op *op);

void dbp_stats(const struct db_pool *p, struct dbp_stats *out);
/* The last connection error, or NULL while the pool is healthy. */
const char *dbp_last_error(const struct db_pool *p);

#endif
