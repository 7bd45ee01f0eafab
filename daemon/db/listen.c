/*
 * db_listener: LISTEN on one channel over a dedicated db_conn, and wake waiters.
 *
 * The connection is separate from the pool because a LISTEN belongs to a session: a
 * pooled connection would hand it to other work or lose it on replacement. Its setup
 * SQL is the LISTEN itself, so "ready" means "listening".
 *
 * Waking happens in rounds (ev_wake): the due waiters (seen != generation) move to a
 * list of their own first, then are popped one at a time, so a callback may cancel or
 * register any waiter without upsetting the iteration. Rounds are at least
 * DBL_DEBOUNCE_MS apart. See listen.h for the contract.
 */
#include "dualreg/listen.h"

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dualreg/db.h"
#include "dualreg/log.h"
#include "dualreg/xalloc.h"

#define BACKOFF_FIRST_MS 100u
#define BACKOFF_MAX_MS 5000u

TAILQ_HEAD(dbl_waiters, dbl_waiter);

struct db_listener {
	struct event_base *base;
	struct db_conn *conn;
	char channel[64];
	struct dbl_waiters waiters;
	struct dbl_waiters due; /* being woken in the current round */
	unsigned nwaiters;
	uint64_t gen;
	struct event ev_wake;
	bool wake_pending;
	double last_round; /* monotonic seconds */
	struct event ev_retry;
	unsigned failures;
	bool listening;
	bool stopped;
	bool ever_listened;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Arms a wake round, no sooner than DBL_DEBOUNCE_MS after the previous one. */
static void kick(struct db_listener *l)
{
	if (l->wake_pending)
		return;
	double wait = l->last_round + DBL_DEBOUNCE_MS / 1000.0 - now_s();
	if (wait < 0)
		wait = 0;
	struct timeval tv = {(time_t)wait, (suseconds_t)((wait - (double)(time_t)wait) * 1e6)};
	evtimer_add(&l->ev_wake, &tv);
	l->wake_pending = true;
}

static void wake_round_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct db_listener *l = arg;
	l->wake_pending = false;
	l->last_round = now_s();
	struct dbl_waiter *w, *next;
	for (w = TAILQ_FIRST(&l->waiters); w != NULL; w = next) {
		next = TAILQ_NEXT(w, link);
		if (w->seen != l->gen || l->stopped) {
			TAILQ_REMOVE(&l->waiters, w, link);
			TAILQ_INSERT_TAIL(&l->due, w, link);
			w->due = true;
		}
	}
	while ((w = TAILQ_FIRST(&l->due)) != NULL) {
		TAILQ_REMOVE(&l->due, w, link);
		w->linked = false;
		w->due = false;
		l->nwaiters--;
		w->wake(w);
	}
}

static void listener_ready(struct db_conn *c, void *owner)
{
	(void)c;
	struct db_listener *l = owner;
	l->failures = 0;
	l->listening = true;
	log_info(l->ever_listened ? "change listener reconnected" : "change listener ready",
		 "channel=%s", l->channel);
	l->ever_listened = true;
	/* Anything may have happened while not listening: every waiter re-queries. */
	l->gen++;
	kick(l);
}

static void schedule_retry(struct db_listener *l)
{
	unsigned ms = BACKOFF_FIRST_MS;
	for (unsigned i = 1; i < l->failures && ms < BACKOFF_MAX_MS; i++)
		ms *= 2;
	if (ms > BACKOFF_MAX_MS)
		ms = BACKOFF_MAX_MS;
	/* +-25% jitter so that several daemons do not reconnect in lockstep. */
	long jitter = (long)(ms / 4);
	long d = (long)ms + (jitter > 0 ? random() % (2 * jitter + 1) - jitter : 0);
	struct timeval tv = {d / 1000, (d % 1000) * 1000};
	evtimer_add(&l->ev_retry, &tv);
}

static void listener_broken(struct db_conn *c, const char *err, void *owner)
{
	(void)c;
	struct db_listener *l = owner;
	bool was = l->listening;
	l->listening = false;
	if (l->stopped)
		return;
	l->failures++;
	if (was || l->failures == 1)
		log_warn("change listener lost its connection", "err=\"%s\"", err);
	schedule_retry(l);
}

static void listener_notify(struct db_conn *c, const char *channel, const char *payload,
			    void *owner)
{
	(void)c;
	(void)channel;
	(void)payload;
	struct db_listener *l = owner;
	l->gen++;
	kick(l);
}

static const struct dbc_events listener_events = {
    .ready = listener_ready,
    .broken = listener_broken,
    .notify = listener_notify,
};

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct db_listener *l = arg;
	if (!l->stopped)
		dbc_connect(l->conn);
}

struct db_listener *dbl_new(struct event_base *base, const char *conninfo,
			    unsigned connect_timeout_ms, const char *channel)
{
	struct db_listener *l = xcalloc(1, sizeof *l);
	l->base = base;
	snprintf(l->channel, sizeof l->channel, "%s", channel);
	/* Quoted as an identifier; channels are fixed names chosen by the program. */
	char setup[160];
	size_t o = 0;
	o += (size_t)snprintf(setup, sizeof setup, "LISTEN \"");
	for (const char *p = l->channel; *p != '\0' && o + 4 < sizeof setup; p++) {
		if (*p == '"')
			setup[o++] = '"';
		setup[o++] = *p;
	}
	setup[o++] = '"';
	setup[o] = '\0';
	l->conn = dbc_new(base, conninfo, connect_timeout_ms, setup, &listener_events, l);
	TAILQ_INIT(&l->waiters);
	TAILQ_INIT(&l->due);
	evtimer_assign(&l->ev_wake, base, wake_round_cb, l);
	evtimer_assign(&l->ev_retry, base, retry_cb, l);
	return l;
}

void dbl_start(struct db_listener *l)
{
	if (!l->stopped)
		dbc_connect(l->conn);
}

void dbl_stop(struct db_listener *l)
{
	if (l == NULL || l->stopped)
		return;
	l->stopped = true;
	l->listening = false;
	evtimer_del(&l->ev_retry);
	dbc_close(l->conn);
	l->gen++;
	/* Wake everyone now, not after the debounce: the daemon is draining. */
	evtimer_del(&l->ev_wake);
	l->wake_pending = true;
	event_active(&l->ev_wake, EV_TIMEOUT, 1);
}

void dbl_free(struct db_listener *l)
{
	if (l == NULL)
		return;
	if (l->nwaiters != 0)
		log_warn("change listener freed with waiters", "waiters=%u", l->nwaiters);
	evtimer_del(&l->ev_wake);
	evtimer_del(&l->ev_retry);
	dbc_free(l->conn);
	free(l);
}

bool dbl_is_listening(const struct db_listener *l)
{
	return l->listening;
}

uint64_t dbl_generation(const struct db_listener *l)
{
	return l->gen;
}

bool dbl_wait(struct db_listener *l, struct dbl_waiter *w, uint64_t seen)
{
	if (l->stopped)
		return false;
	w->seen = seen;
	w->due = false;
	TAILQ_INSERT_TAIL(&l->waiters, w, link);
	w->linked = true;
	l->nwaiters++;
	if (seen != l->gen)
		kick(l);
	return true;
}

void dbl_cancel(struct db_listener *l, struct dbl_waiter *w)
{
	if (!w->linked)
		return;
	if (w->due)
		TAILQ_REMOVE(&l->due, w, link);
	else
		TAILQ_REMOVE(&l->waiters, w, link);
	w->due = false;
	w->linked = false;
	l->nwaiters--;
}

unsigned dbl_nwaiters(const struct db_listener *l)
{
	return l->nwaiters;
}
