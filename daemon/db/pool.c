/*
 * db_pool: a fixed set of db_conn slots shared by everything on the loop.
 *
 * Work arrives as a db_op (one pooled statement, or a request to hold a connection).
 * A free connection takes it at once; otherwise it waits in a bounded FIFO with its own
 * deadline. While no connection is up and the last attempt failed, new work fails at
 * once with that attempt's error, so callers (readyz, API requests) answer quickly
 * instead of piling up until their deadlines.
 *
 * Connecting: at most one attempt at a time. Success triggers the next down slot at once;
 * failure backs off exponentially (100 ms doubling to 5 s, with +-25% jitter so that
 * several daemons do not reconnect in lockstep). A connection that breaks while the
 * pool is healthy is replaced without delay.
 */
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "dualreg/db.h"
#include "dualreg/log.h"
#include "dualreg/xalloc.h"

#define BACKOFF_FIRST_MS 100u
#define BACKOFF_MAX_MS 5000u

enum op_kind { OP_QUERY, OP_ACQUIRE };
enum op_state { OP_WAITING, OP_RUNNING, OP_REFUSED };

struct db_op {
	struct db_pool *pool;
	enum op_kind kind;
	enum op_state state;
	db_result_cb qcb;
	db_acquire_cb acb;
	void *arg;
	struct event ev_deadline;
	struct pool_slot *slot; /* while running */
	TAILQ_ENTRY(db_op) link;
	char refusal[600];      /* OP_REFUSED: why, delivered on the next loop turn */
	/* OP_QUERY: the statement and its parameters, copied into one block */
	char *sql;
	int nparams;
	char **params;
};
TAILQ_HEAD(op_queue, db_op);

struct pool_slot {
	struct db_pool *pool;
	struct db_conn *conn;
	struct db_op *op;  /* pooled statement running on it */
	bool held;         /* handed out by dbp_acquire */
};

struct db_pool {
	struct event_base *base;
	struct db_pool_opts opts;
	char *conninfo;
	char *setup_sql;
	struct pool_slot *slots;
	struct op_queue waiting;
	unsigned nwaiting;
	struct pool_slot *connecting; /* the one attempt in progress */
	unsigned failures;            /* consecutive failed attempts */
	struct event ev_retry;
	bool retry_pending;           /* backoff timer armed */
	bool retry_due;               /* backoff elapsed: attempt now */
	struct event ev_kick;         /* dispatch on the next loop turn */
	char last_error[512];
	unsigned long reconnects;
	bool ever_connected;
};

static void pool_dispatch(struct db_pool *p);
static void pool_maintain(struct db_pool *p);

static unsigned pool_connected(const struct db_pool *p)
{
	unsigned n = 0;
	for (unsigned i = 0; i < p->opts.size; i++)
		n += dbc_is_connected(p->slots[i].conn);
	return n;
}

static void op_free(struct db_op *op)
{
	evtimer_del(&op->ev_deadline);
	free(op->sql);
	free(op);
}

/* Takes a waiting operation off the queue. */
static void op_unqueue(struct db_op *op)
{
	struct db_pool *p = op->pool;
	TAILQ_REMOVE(&p->waiting, op, link);
	p->nwaiting--;
}

static void op_fail(struct db_op *op, const char *why)
{
	db_result_cb qcb = op->qcb;
	db_acquire_cb acb = op->acb;
	void *arg = op->arg;
	char err[sizeof op->refusal];
	snprintf(err, sizeof err, "%s", why); /* why may live inside op */
	op_free(op);
	if (qcb != NULL)
		qcb(NULL, err, arg);
	else
		acb(NULL, err, arg);
}

static void fail_all_waiting(struct db_pool *p, const char *err)
{
	struct db_op *op;
	while ((op = TAILQ_FIRST(&p->waiting)) != NULL) {
		op_unqueue(op);
		op_fail(op, err);
	}
}

static void slot_ready_cb(struct db_conn *c, void *owner)
{
	struct pool_slot *s = owner;
	struct db_pool *p = s->pool;
	(void)c;
	p->connecting = NULL;
	if (p->failures > 0 || !p->ever_connected)
		log_info("database connected", "pool=%u/%u", pool_connected(p), p->opts.size);
	p->failures = 0;
	p->last_error[0] = '\0';
	p->ever_connected = true;
	pool_dispatch(p);
	pool_maintain(p);
}

static void slot_broken_cb(struct db_conn *c, const char *err, void *owner)
{
	struct pool_slot *s = owner;
	struct db_pool *p = s->pool;
	(void)c;
	bool was_connecting = p->connecting == s;

	/* A pooled statement already got its failure from db_conn; forget it here. */
	if (s->op != NULL) {
		s->op->slot = NULL;
		s->op = NULL;
	}
	/* A holder keeps its (now dead) connection until it releases it. */
	snprintf(p->last_error, sizeof p->last_error, "%s", err);
	for (char *q = p->last_error; *q; q++)
		if (*q == '"')
			*q = '\'';
	if (was_connecting) {
		p->connecting = NULL;
		p->failures++;
		if (p->failures == 1 || p->failures % 20 == 0)
			log_warn("database connection failed", "attempts=%u err=\"%s\"", p->failures,
				 err);
	} else {
		log_warn("database connection lost", "err=\"%s\"", err);
	}
	if (pool_connected(p) == 0 && p->failures > 0)
		fail_all_waiting(p, p->last_error);
	pool_maintain(p);
}

static const struct dbc_events slot_events = {
    .ready = slot_ready_cb,
    .broken = slot_broken_cb,
};

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct db_pool *p = arg;
	p->retry_pending = false;
	p->retry_due = true;
	pool_maintain(p);
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	pool_dispatch(arg);
}

/* Starts the next connect attempt if one is due; at most one runs at a time. */
static void pool_maintain(struct db_pool *p)
{
	if (p->connecting != NULL || p->retry_pending)
		return;
	struct pool_slot *down = NULL;
	for (unsigned i = 0; i < p->opts.size; i++) {
		struct pool_slot *s = &p->slots[i];
		if (!s->held && s->op == NULL && !dbc_is_connected(s->conn)) {
			down = s;
			break;
		}
	}
	if (down == NULL)
		return;
	if (p->failures > 0 && !p->retry_due) {
		unsigned shift = p->failures - 1 > 6 ? 6 : p->failures - 1;
		unsigned ms = BACKOFF_FIRST_MS << shift;
		if (ms > BACKOFF_MAX_MS)
			ms = BACKOFF_MAX_MS;
		ms = ms * 3 / 4 + (unsigned)(random() % (ms / 2 + 1));
		struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
		p->retry_pending = true;
		evtimer_add(&p->ev_retry, &tv);
		return;
	}
	p->retry_due = false;
	p->connecting = down;
	if (p->ever_connected)
		p->reconnects++;
	dbc_connect(down->conn);
}

static void slot_query_done_cb(PGresult *res, const char *err, void *arg)
{
	struct pool_slot *s = arg;
	struct db_op *op = s->op;
	struct db_pool *p = s->pool;

	s->op = NULL;
	if (op != NULL) {
		db_result_cb cb = op->qcb;
		void *oarg = op->arg;
		op_free(op);
		cb(res, err, oarg);
	}
	if (dbc_is_ready(s->conn))
		pool_dispatch(p);
}

/* Starts op on a free slot. */
static void op_start(struct db_op *op, struct pool_slot *s)
{
	op->state = OP_RUNNING;
	if (op->kind == OP_ACQUIRE) {
		db_acquire_cb cb = op->acb;
		void *arg = op->arg;
		s->held = true;
		op_free(op);
		cb(s->conn, NULL, arg);
		return;
	}
	op->slot = s;
	s->op = op;
	if (dbc_query(s->conn, op->sql, op->nparams, (const char *const *)op->params,
		      slot_query_done_cb, s) != 0) {
		s->op = NULL;
		op->slot = NULL;
		op_fail(op, "database connection not ready");
	}
}

static struct pool_slot *free_slot(struct db_pool *p)
{
	for (unsigned i = 0; i < p->opts.size; i++) {
		struct pool_slot *s = &p->slots[i];
		if (!s->held && s->op == NULL && dbc_is_ready(s->conn))
			return s;
	}
	return NULL;
}

/* Hands free connections to waiting operations, oldest first. */
static void pool_dispatch(struct db_pool *p)
{
	struct db_op *op;
	struct pool_slot *s;
	while ((op = TAILQ_FIRST(&p->waiting)) != NULL && (s = free_slot(p)) != NULL) {
		op_unqueue(op);
		op_start(op, s);
	}
}

static void op_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct db_op *op = arg;
	if (op->state == OP_REFUSED) {
		op_fail(op, op->refusal);
		return;
	}
	if (op->state == OP_WAITING) {
		op_unqueue(op);
		op_fail(op, "timed out waiting for a database connection");
		return;
	}
	/* Running too long: its connection's state is unknown, so replace it. */
	struct pool_slot *s = op->slot;
	s->op = NULL;
	dbc_close(s->conn);
	op_fail(op, "the database did not answer in time");
	pool_maintain(s->pool);
}

/*
 * Queues op and returns it. Nothing is delivered inside this call: a free connection is
 * handed over on the next loop turn (ev_kick), and a refusal (database down, queue
 * full) is delivered the same way, so a caller never sees its callback run before it
 * has stored the handle.
 */
static struct db_op *op_submit(struct db_pool *p, struct db_op *op)
{
	op->pool = p;
	evtimer_assign(&op->ev_deadline, p->base, op_deadline_cb, op);
	if (pool_connected(p) == 0 && p->failures > 0) {
		snprintf(op->refusal, sizeof op->refusal, "database unavailable: %s",
			 p->last_error);
		op->state = OP_REFUSED;
	} else if (p->nwaiting >= p->opts.max_waiters) {
		snprintf(op->refusal, sizeof op->refusal,
			 "too many requests waiting for the database");
		op->state = OP_REFUSED;
	}
	if (op->state == OP_REFUSED) {
		event_active(&op->ev_deadline, EV_TIMEOUT, 1);
		return op;
	}
	struct timeval tv = {p->opts.wait_timeout_ms / 1000,
			     (p->opts.wait_timeout_ms % 1000) * 1000};
	evtimer_add(&op->ev_deadline, &tv);
	op->state = OP_WAITING;
	TAILQ_INSERT_TAIL(&p->waiting, op, link);
	p->nwaiting++;
	if (free_slot(p) != NULL)
		event_active(&p->ev_kick, EV_TIMEOUT, 1);
	pool_maintain(p);
	return op;
}

struct db_op *dbp_query(struct db_pool *p, const char *sql, int nparams,
			const char *const *params, db_result_cb cb, void *arg)
{
	size_t len = strlen(sql) + 1;
	for (int i = 0; i < nparams; i++)
		len += params[i] ? strlen(params[i]) + 1 : 0;
	struct db_op *op = xcalloc(1, sizeof *op + (size_t)nparams * sizeof(char *));
	op->params = (char **)(op + 1);
	op->sql = xmalloc(len);
	char *w = op->sql;
	w = stpcpy(w, sql) + 1;
	for (int i = 0; i < nparams; i++) {
		if (params[i] == NULL) {
			op->params[i] = NULL;
			continue;
		}
		op->params[i] = w;
		w = stpcpy(w, params[i]) + 1;
	}
	op->nparams = nparams;
	op->kind = OP_QUERY;
	op->qcb = cb;
	op->arg = arg;
	return op_submit(p, op);
}

struct db_op *dbp_acquire(struct db_pool *p, db_acquire_cb cb, void *arg)
{
	struct db_op *op = xcalloc(1, sizeof *op);
	op->kind = OP_ACQUIRE;
	op->acb = cb;
	op->arg = arg;
	return op_submit(p, op);
}

void db_op_cancel(struct db_op *op)
{
	if (op == NULL)
		return;
	if (op->state == OP_REFUSED) {
		op_free(op);
		return;
	}
	if (op->state == OP_WAITING) {
		op_unqueue(op);
		op_free(op);
		return;
	}
	struct pool_slot *s = op->slot;
	if (s != NULL) {
		s->op = NULL;
		dbc_close(s->conn);
		pool_maintain(s->pool);
	}
	op_free(op);
}

void dbp_release(struct db_pool *p, struct db_conn *c, bool in_doubt)
{
	struct pool_slot *s = dbc_owner(c);
	s->held = false;
	if (in_doubt || !dbc_is_ready(c)) {
		dbc_close(c);
		pool_maintain(p);
		return;
	}
	pool_dispatch(p);
}

struct db_pool *dbp_new(struct event_base *base, const struct db_pool_opts *opts)
{
	struct db_pool *p = xcalloc(1, sizeof *p);
	p->base = base;
	p->opts = *opts;
	p->conninfo = xstrdup(opts->conninfo);
	p->setup_sql = opts->setup_sql ? xstrdup(opts->setup_sql) : NULL;
	p->opts.conninfo = p->conninfo;
	p->opts.setup_sql = p->setup_sql;
	if (p->opts.size == 0)
		p->opts.size = 1;
	TAILQ_INIT(&p->waiting);
	evtimer_assign(&p->ev_retry, base, retry_cb, p);
	event_assign(&p->ev_kick, base, -1, 0, kick_cb, p);
	p->slots = xcalloc(p->opts.size, sizeof *p->slots);
	for (unsigned i = 0; i < p->opts.size; i++) {
		p->slots[i].pool = p;
		p->slots[i].conn = dbc_new(base, p->conninfo, p->opts.connect_timeout_ms,
					   p->setup_sql, &slot_events, &p->slots[i]);
	}
	pool_maintain(p);
	return p;
}

void dbp_free(struct db_pool *p)
{
	if (p == NULL)
		return;
	struct db_op *op;
	while ((op = TAILQ_FIRST(&p->waiting)) != NULL) {
		op_unqueue(op);
		op_free(op);
	}
	event_del(&p->ev_kick);
	for (unsigned i = 0; i < p->opts.size; i++) {
		if (p->slots[i].op != NULL)
			op_free(p->slots[i].op);
		dbc_free(p->slots[i].conn);
	}
	evtimer_del(&p->ev_retry);
	free(p->slots);
	free(p->conninfo);
	free(p->setup_sql);
	free(p);
}

void dbp_stats(const struct db_pool *p, struct dbp_stats *out)
{
	memset(out, 0, sizeof *out);
	out->size = p->opts.size;
	for (unsigned i = 0; i < p->opts.size; i++) {
		const struct pool_slot *s = &p->slots[i];
		out->connected += dbc_is_connected(s->conn);
		out->busy += s->held || s->op != NULL;
	}
	out->waiting = p->nwaiting;
	out->reconnects = p->reconnects;
}

const char *dbp_last_error(const struct db_pool *p)
{
	return p->last_error[0] ? p->last_error : NULL;
}
