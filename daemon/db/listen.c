/*
 * db_listener: LISTEN on one channel over a dedicated db_conn, and wake waiters.
 *
 * The connection is separate from the pool because a LISTEN belongs to a session: a
 * pooled connection would hand it to other work or lose it on replacement. Its setup
 * SQL is the LISTEN itself, so "ready" means "listening".
 *
 * Stamps: every notification bumps gen; one concerning everything (and every
 * (re)connection or stop) also sets gen_all and gen_any, one naming topics sets gen_any
 * and each named topic's entry. A waiter is due when the stamp of what it waits for is
 * past the generation it queried at. Topic entries live in a hash table; entries
 * without waiters are dropped when the table grows past its limit, and floor (the
 * generation then) is the stamp a re-created entry starts from, so dropping one can
 * only wake a waiter early, never lose a notification.
 *
 * Waking happens in rounds (ev_wake): the due waiters move to a list of their own
 * first, then are popped one at a time, so a callback may cancel or register any waiter
 * without upsetting the iteration. A round looks at the waiters of every notification,
 * of any topic, those registered behind, and the waiters of the topics named since the
 * previous round (all topics when something concerned everything). Rounds are at least
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
#define TOPIC_BUCKETS 1024u
#define TOPICS_SOFT_MAX 4096u

TAILQ_HEAD(dbl_waiters, dbl_waiter);

enum { SCOPE_EVERY, SCOPE_ANY, SCOPE_TOPIC };

struct dbl_topic {
	char name[DBL_TOPIC_MAX];
	uint64_t gen; /* the last notification naming it (or floor) */
	struct dbl_waiters waiters;
	unsigned nwaiters;
	struct dbl_topic *next; /* in its hash bucket */
	LIST_ENTRY(dbl_topic) dirty_link;
	bool dirty; /* named since the last round */
};

LIST_HEAD(dbl_topic_list, dbl_topic);

struct db_listener {
	struct event_base *base;
	struct db_conn *conn;
	char channel[64];
	struct dbl_waiters every; /* woken by every notification */
	struct dbl_waiters any;   /* woken by notifications of any topic */
	struct dbl_waiters early; /* registered behind: woken by the next round */
	struct dbl_waiters due;   /* being woken in the current round */
	unsigned nwaiters;
	uint64_t gen, gen_all, gen_any, floor;
	uint64_t round_gen_all; /* gen_all as the previous round saw it */
	uint64_t wakeups;
	struct dbl_topic *buckets[TOPIC_BUCKETS];
	struct dbl_topic_list dirty;
	unsigned ntopics, topics_limit;
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

/* ---- topics ---- */

/* A valid topic: 1 to DBL_TOPIC_MAX - 1 bytes, none of them a comma. */
static bool topic_ok(const char *s, size_t n)
{
	return n > 0 && n < DBL_TOPIC_MAX && memchr(s, ',', n) == NULL;
}

static unsigned topic_hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h % TOPIC_BUCKETS;
}

/* Drops the entries nobody waits on; what they knew is kept as the floor. */
static void topics_prune(struct db_listener *l)
{
	for (unsigned b = 0; b < TOPIC_BUCKETS; b++) {
		struct dbl_topic **pp = &l->buckets[b];
		while (*pp != NULL) {
			struct dbl_topic *t = *pp;
			if (t->nwaiters != 0) {
				pp = &t->next;
				continue;
			}
			*pp = t->next;
			if (t->dirty)
				LIST_REMOVE(t, dirty_link);
			free(t);
			l->ntopics--;
		}
	}
	l->floor = l->gen;
	l->topics_limit = l->ntopics * 2 > TOPICS_SOFT_MAX ? l->ntopics * 2 : TOPICS_SOFT_MAX;
}

/* The entry of topic s (n bytes, valid), made if there is none. */
static struct dbl_topic *topic_get(struct db_listener *l, const char *s, size_t n)
{
	unsigned b = topic_hash(s, n);
	for (struct dbl_topic *t = l->buckets[b]; t != NULL; t = t->next)
		if (strncmp(t->name, s, n) == 0 && t->name[n] == '\0')
			return t;
	if (l->ntopics >= l->topics_limit)
		topics_prune(l);
	struct dbl_topic *t = xcalloc(1, sizeof *t);
	memcpy(t->name, s, n);
	t->gen = l->floor;
	TAILQ_INIT(&t->waiters);
	t->next = l->buckets[b];
	l->buckets[b] = t;
	l->ntopics++;
	return t;
}

/* ---- waking ---- */

/* The stamp of what w waits for. */
static uint64_t stamp(const struct db_listener *l, const struct dbl_waiter *w)
{
	switch (w->scope) {
	case SCOPE_EVERY:
		return l->gen;
	case SCOPE_ANY:
		return l->gen_any;
	default:
		return w->topic->gen > l->gen_all ? w->topic->gen : l->gen_all;
	}
}

static void link_on(struct db_listener *l, struct dbl_waiter *w, struct dbl_waiters *list,
		    struct dbl_topic *t)
{
	(void)l;
	TAILQ_INSERT_TAIL(list, w, link);
	w->on = list;
	w->topic = t;
	if (t != NULL)
		t->nwaiters++;
}

static void unlink_from(struct dbl_waiter *w)
{
	TAILQ_REMOVE(w->on, w, link);
	if (w->topic != NULL)
		w->topic->nwaiters--;
	w->on = NULL;
	w->topic = NULL;
}

/* Moves the due waiters of list (all of them when all) to the round's list. */
static void collect(struct db_listener *l, struct dbl_waiters *list, bool all)
{
	struct dbl_waiter *w, *next;
	for (w = TAILQ_FIRST(list); w != NULL; w = next) {
		next = TAILQ_NEXT(w, link);
		if (all || stamp(l, w) > w->seen) {
			unlink_from(w);
			link_on(l, w, &l->due, NULL);
			w->due = true;
		}
	}
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
	bool all = l->stopped;
	collect(l, &l->early, true);
	collect(l, &l->every, all);
	collect(l, &l->any, all);
	if (all || l->gen_all != l->round_gen_all) {
		for (unsigned b = 0; b < TOPIC_BUCKETS; b++)
			for (struct dbl_topic *t = l->buckets[b]; t != NULL; t = t->next)
				if (t->nwaiters > 0)
					collect(l, &t->waiters, all);
	} else {
		struct dbl_topic *t;
		LIST_FOREACH(t, &l->dirty, dirty_link)
			collect(l, &t->waiters, false);
	}
	l->round_gen_all = l->gen_all;
	struct dbl_topic *t;
	while ((t = LIST_FIRST(&l->dirty)) != NULL) {
		LIST_REMOVE(t, dirty_link);
		t->dirty = false;
	}
	struct dbl_waiter *w;
	while ((w = TAILQ_FIRST(&l->due)) != NULL) {
		unlink_from(w);
		w->linked = false;
		w->due = false;
		l->nwaiters--;
		l->wakeups++;
		w->wake(w);
	}
}

/* Something may have happened to everything: every waiter is due. */
static void stamp_all(struct db_listener *l)
{
	l->gen++;
	l->gen_all = l->gen_any = l->gen;
}

/* Stamps what payload concerns (see listen.h) with a new generation. */
static void stamp_payload(struct db_listener *l, const char *payload)
{
	if (payload == NULL || payload[0] == '\0' || strcmp(payload, "*") == 0) {
		stamp_all(l);
		return;
	}
	l->gen++;
	if (strcmp(payload, "-") == 0)
		return;
	/* Checked whole first: a payload that cannot be read, or names "*", concerns
	 * everything. */
	for (const char *p = payload; *p != '\0';) {
		size_t n = strcspn(p, ",");
		if (n >= DBL_TOPIC_MAX || (n == 1 && *p == '*')) {
			l->gen_all = l->gen_any = l->gen;
			return;
		}
		p += n + (p[n] == ',');
	}
	l->gen_any = l->gen;
	for (const char *p = payload; *p != '\0';) {
		size_t n = strcspn(p, ",");
		if (topic_ok(p, n)) {
			struct dbl_topic *t = topic_get(l, p, n);
			t->gen = l->gen;
			if (!t->dirty) {
				LIST_INSERT_HEAD(&l->dirty, t, dirty_link);
				t->dirty = true;
			}
		}
		p += n + (p[n] == ',');
	}
}

/* ---- the connection ---- */

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
	stamp_all(l);
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
		log_warn("change listener lost its connection", "channel=%s err=\"%s\"", l->channel,
			 err);
	schedule_retry(l);
}

static void listener_notify(struct db_conn *c, const char *channel, const char *payload,
			    void *owner)
{
	(void)c;
	(void)channel;
	struct db_listener *l = owner;
	stamp_payload(l, payload);
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
	TAILQ_INIT(&l->every);
	TAILQ_INIT(&l->any);
	TAILQ_INIT(&l->early);
	TAILQ_INIT(&l->due);
	LIST_INIT(&l->dirty);
	l->topics_limit = TOPICS_SOFT_MAX;
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
	stamp_all(l);
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
	for (unsigned b = 0; b < TOPIC_BUCKETS; b++) {
		struct dbl_topic *t = l->buckets[b];
		while (t != NULL) {
			struct dbl_topic *next = t->next;
			free(t);
			t = next;
		}
	}
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

/* Registers w with its scope (and topic) set: behind already, it waits for the next
 * round; otherwise on its scope's list. */
static bool enlist(struct db_listener *l, struct dbl_waiter *w, uint64_t seen,
		   struct dbl_topic *t)
{
	w->seen = seen;
	w->due = false;
	w->topic = t;
	w->linked = true;
	l->nwaiters++;
	if (stamp(l, w) > seen) {
		link_on(l, w, &l->early, NULL);
		kick(l);
	} else if (t != NULL) {
		link_on(l, w, &t->waiters, t);
	} else {
		link_on(l, w, w->scope == SCOPE_ANY ? &l->any : &l->every, NULL);
	}
	return true;
}

bool dbl_wait(struct db_listener *l, struct dbl_waiter *w, uint64_t seen)
{
	if (l->stopped)
		return false;
	w->scope = SCOPE_EVERY;
	return enlist(l, w, seen, NULL);
}

bool dbl_wait_for(struct db_listener *l, struct dbl_waiter *w, uint64_t seen,
		  const char *topic)
{
	if (l->stopped)
		return false;
	size_t n = topic != NULL ? strnlen(topic, DBL_TOPIC_MAX) : 0;
	if (topic_ok(topic, n)) {
		w->scope = SCOPE_TOPIC;
		return enlist(l, w, seen, topic_get(l, topic, n));
	}
	w->scope = SCOPE_ANY;
	return enlist(l, w, seen, NULL);
}

void dbl_cancel(struct db_listener *l, struct dbl_waiter *w)
{
	if (!w->linked)
		return;
	unlink_from(w);
	w->due = false;
	w->linked = false;
	l->nwaiters--;
}

unsigned dbl_nwaiters(const struct db_listener *l)
{
	return l->nwaiters;
}

uint64_t dbl_wakeups(const struct db_listener *l)
{
	return l->wakeups;
}
