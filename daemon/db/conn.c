/*
 * db_conn: one libpq connection driven by libevent.
 *
 * States: DOWN -> CONNECTING (PQconnectPoll) -> SETUP (setup SQL) -> READY <-> RUNNING.
 * Any failure closes the connection (DOWN) and tells the owner through events->broken;
 * the owner decides when to reconnect.
 *
 * Why one persistent event re-armed on change: PQsocket() may change between
 * PQconnectPoll steps (multi-host URLs, SSL fallback), and while a statement is being
 * sent PQflush may report unsent data, in which case libpq's rule is to wait for read
 * *or* write readiness, consuming input on read, so that a server blocked on its own
 * output cannot deadlock us. While READY the socket stays armed for read so that a
 * server shutdown or a NOTIFY is seen at once rather than at the next statement.
 */
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/db.h"
#include "dualreg/log.h"
#include "dualreg/xalloc.h"

enum dbc_state { DBC_DOWN, DBC_CONNECTING, DBC_SETUP, DBC_READY, DBC_RUNNING };

struct db_conn {
	struct event_base *base;
	char *conninfo;
	char *setup_sql;
	unsigned connect_timeout_ms;
	const struct dbc_events *events;
	void *owner;

	PGconn *pg;
	enum dbc_state state;
	struct event ev_io;
	bool io_armed;
	int io_fd;
	short io_what;
	struct event ev_connect_deadline;

	bool flushing;     /* PQflush reported unsent data */
	db_result_cb qcb;  /* statement in flight (RUNNING or SETUP) */
	void *qarg;
	PGresult *qres;    /* result kept until the terminating NULL */
};

static void dbc_io_cb(evutil_socket_t fd, short what, void *arg);

static void dbc_watch(struct db_conn *c, short what)
{
	int fd = PQsocket(c->pg);
	if (c->io_armed && c->io_fd == fd && c->io_what == what)
		return;
	if (c->io_armed)
		event_del(&c->ev_io);
	event_assign(&c->ev_io, c->base, fd, what | EV_PERSIST, dbc_io_cb, c);
	event_add(&c->ev_io, NULL);
	c->io_armed = true;
	c->io_fd = fd;
	c->io_what = what;
}

static void dbc_unwatch(struct db_conn *c)
{
	if (c->io_armed)
		event_del(&c->ev_io);
	c->io_armed = false;
}

static void notice_cb(void *arg, const PGresult *res)
{
	(void)arg;
	const char *msg = PQresultErrorMessage(res);
	log_debug("database notice", "detail=\"%.*s\"", (int)strcspn(msg, "\n"), msg);
}

struct db_conn *dbc_new(struct event_base *base, const char *conninfo,
			unsigned connect_timeout_ms, const char *setup_sql,
			const struct dbc_events *events, void *owner)
{
	struct db_conn *c = xcalloc(1, sizeof *c);
	c->base = base;
	c->conninfo = xstrdup(conninfo);
	c->setup_sql = setup_sql ? xstrdup(setup_sql) : NULL;
	c->connect_timeout_ms = connect_timeout_ms;
	c->events = events;
	c->owner = owner;
	c->state = DBC_DOWN;
	evtimer_assign(&c->ev_connect_deadline, base, NULL, NULL);
	return c;
}

void *dbc_owner(const struct db_conn *c)
{
	return c->owner;
}

bool dbc_is_ready(const struct db_conn *c)
{
	return c->state == DBC_READY;
}

bool dbc_is_connected(const struct db_conn *c)
{
	return c->state == DBC_READY || c->state == DBC_RUNNING;
}

void dbc_close(struct db_conn *c)
{
	dbc_unwatch(c);
	evtimer_del(&c->ev_connect_deadline);
	if (c->qres != NULL)
		PQclear(c->qres);
	c->qres = NULL;
	c->qcb = NULL;
	c->qarg = NULL;
	c->flushing = false;
	if (c->pg != NULL)
		PQfinish(c->pg);
	c->pg = NULL;
	c->state = DBC_DOWN;
}

void dbc_free(struct db_conn *c)
{
	if (c == NULL)
		return;
	dbc_close(c);
	free(c->conninfo);
	free(c->setup_sql);
	free(c);
}

/* Closes after a failure: fails the statement in flight, then tells the owner. */
static void dbc_fail(struct db_conn *c, const char *why)
{
	char msg[512];
	const char *pqmsg = c->pg ? PQerrorMessage(c->pg) : "";
	if (pqmsg == NULL || pqmsg[0] == '\0')
		pqmsg = why;
	snprintf(msg, sizeof msg, "%.*s", (int)strcspn(pqmsg, "\n"), pqmsg);

	db_result_cb cb = c->qcb;
	void *arg = c->qarg;
	bool in_setup = c->state == DBC_SETUP;
	dbc_close(c);
	if (cb != NULL && !in_setup)
		cb(NULL, msg, arg);
	c->events->broken(c, msg, c->owner);
}

static void connect_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct db_conn *c = arg;
	dbc_fail(c, "timed out connecting to the database");
}

static void setup_done_cb(PGresult *res, const char *err, void *arg)
{
	struct db_conn *c = arg;
	(void)err;
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		/* The error message is in the result; keep it for the owner. */
		char msg[512];
		const char *m = PQresultErrorMessage(res);
		snprintf(msg, sizeof msg, "connection setup failed: %.*s", (int)strcspn(m, "\n"),
			 m);
		c->qcb = NULL;
		dbc_close(c);
		c->events->broken(c, msg, c->owner);
		return;
	}
	c->state = DBC_READY;
	c->events->ready(c, c->owner);
}

/* Starts sending: the statement is queued in libpq, flushed as the socket allows. */
static int dbc_send(struct db_conn *c, const char *sql, int nparams, const char *const *params,
		    bool simple)
{
	int ok = simple ? PQsendQuery(c->pg, sql)
			: PQsendQueryParams(c->pg, sql, nparams, NULL, params, NULL, NULL, 0);
	if (!ok)
		return -1;
	int f = PQflush(c->pg);
	if (f < 0)
		return -1;
	c->flushing = f == 1;
	dbc_watch(c, c->flushing ? EV_READ | EV_WRITE : EV_READ);
	return 0;
}

static void dbc_start_setup(struct db_conn *c)
{
	PQsetNoticeReceiver(c->pg, notice_cb, c);
	if (c->setup_sql == NULL) {
		c->state = DBC_READY;
		dbc_watch(c, EV_READ);
		c->events->ready(c, c->owner);
		return;
	}
	c->state = DBC_SETUP;
	c->qcb = setup_done_cb;
	c->qarg = c;
	if (dbc_send(c, c->setup_sql, 0, NULL, true) != 0)
		dbc_fail(c, "cannot send connection setup");
}

static void dbc_poll_connect(struct db_conn *c)
{
	switch (PQconnectPoll(c->pg)) {
	case PGRES_POLLING_READING:
		dbc_watch(c, EV_READ);
		break;
	case PGRES_POLLING_WRITING:
		dbc_watch(c, EV_WRITE);
		break;
	case PGRES_POLLING_OK:
		evtimer_del(&c->ev_connect_deadline);
		if (PQsetnonblocking(c->pg, 1) != 0) {
			dbc_fail(c, "cannot switch the connection to non-blocking mode");
			return;
		}
		dbc_start_setup(c);
		break;
	default:
		dbc_fail(c, "connection failed");
		break;
	}
}

void dbc_connect(struct db_conn *c)
{
	static const char *const keys[] = {"dbname", "fallback_application_name", NULL};
	const char *vals[] = {c->conninfo, "dualregd", NULL};

	dbc_close(c);
	c->pg = PQconnectStartParams(keys, vals, 1);
	if (c->pg == NULL || PQstatus(c->pg) == CONNECTION_BAD) {
		dbc_fail(c, "cannot start a database connection");
		return;
	}
	c->state = DBC_CONNECTING;
	struct timeval tv = {c->connect_timeout_ms / 1000, (c->connect_timeout_ms % 1000) * 1000};
	evtimer_assign(&c->ev_connect_deadline, c->base, connect_deadline_cb, c);
	evtimer_add(&c->ev_connect_deadline, &tv);
	/* libpq's documented start: wait until the socket is writable, then poll. */
	dbc_watch(c, EV_WRITE);
}

int dbc_query(struct db_conn *c, const char *sql, int nparams, const char *const *params,
	      db_result_cb cb, void *arg)
{
	if (c->state != DBC_READY)
		return -1;
	c->state = DBC_RUNNING;
	c->qcb = cb;
	c->qarg = arg;
	if (dbc_send(c, sql, nparams, params, false) != 0) {
		/* The failure is reported through cb and events->broken, as for any other. */
		dbc_fail(c, "cannot send statement");
	}
	return 0;
}

static void dbc_drain_notifies(struct db_conn *c)
{
	PGnotify *n;
	while (c->pg != NULL && (n = PQnotifies(c->pg)) != NULL) {
		if (c->events->notify != NULL)
			c->events->notify(c, n->relname, n->extra, c->owner);
		PQfreemem(n);
	}
}

/* Reads results; delivers the statement's outcome after libpq's terminating NULL. */
static void dbc_read_results(struct db_conn *c)
{
	while (c->pg != NULL && !PQisBusy(c->pg)) {
		PGresult *r = PQgetResult(c->pg);
		if (r == NULL) {
			db_result_cb cb = c->qcb;
			void *arg = c->qarg;
			PGresult *res = c->qres;
			c->qcb = NULL;
			c->qarg = NULL;
			c->qres = NULL;
			if (c->state == DBC_RUNNING)
				c->state = DBC_READY;
			dbc_watch(c, EV_READ);
			/* The callback may send the next statement or hand the connection
			 * back; nothing below touches c after it. */
			if (cb != NULL) {
				if (res == NULL)
					cb(NULL, "the statement returned no result", arg);
				else
					cb(res, NULL, arg);
			}
			PQclear(res);
			return;
		}
		/* Keep the last result, but never let a later one hide an error. */
		if (c->qres == NULL || PQresultStatus(c->qres) != PGRES_FATAL_ERROR) {
			PQclear(c->qres);
			c->qres = r;
		} else {
			PQclear(r);
		}
	}
}

static void dbc_io_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	struct db_conn *c = arg;

	if (c->state == DBC_CONNECTING) {
		dbc_poll_connect(c);
		return;
	}
	if (what & EV_READ) {
		if (!PQconsumeInput(c->pg)) {
			dbc_fail(c, "lost the database connection");
			return;
		}
	}
	if (c->flushing) {
		int f = PQflush(c->pg);
		if (f < 0) {
			dbc_fail(c, "lost the database connection while sending");
			return;
		}
		c->flushing = f == 1;
		if (!c->flushing)
			dbc_watch(c, EV_READ);
	}
	if (c->state == DBC_READY) {
		/* Nothing in flight: input is a NOTIFY, a notice or the server leaving. */
		if (PQstatus(c->pg) == CONNECTION_BAD) {
			dbc_fail(c, "the database closed the connection");
			return;
		}
		dbc_drain_notifies(c);
		return;
	}
	dbc_read_results(c);
	if (c->pg != NULL && PQstatus(c->pg) == CONNECTION_BAD) {
		dbc_fail(c, "lost the database connection");
		return;
	}
	dbc_drain_notifies(c);
}
