/*
 * listen: one dedicated database connection that LISTENs on a channel and wakes the
 * requests waiting for it (the change feed's long polls, the outbox dispatcher).
 *
 * Topics. A notification's payload says what it concerns:
 *   ""  or "*"        everything: every waiter is woken;
 *   "-"               no topic: only the waiters of every notification are woken;
 *   "a,b,c"           the topics a, b and c (for the change feed: school URNs, at most
 *                     DBL_TOPIC_MAX - 1 characters each; a longer one makes the whole
 *                     payload count as "*").
 * A waiter registers for every notification (dbl_wait), for every notification that
 * names any topic or everything (dbl_wait_for with topic NULL: an admin's feed), or for
 * one topic (dbl_wait_for with a topic: a school's feed), and is woken only by the
 * notifications it registered for.
 *
 * A waiter registers with the generation it last queried at (dbl_generation, read just
 * before sending its query). Every notification bumps the generation and is stamped on
 * what it concerns (per topic, and "any topic" / "everything"); a waiter whose topic was
 * stamped after the generation it registers with is woken at once, so a notification
 * that arrives while its query is in flight is never lost.
 *
 * Coalescing: notifications only stamp and mark dirty; due waiters are woken together
 * on a later loop turn, at most once per DBL_DEBOUNCE_MS, so a burst of commits costs
 * each concerned waiter one re-query, not one per notification. A round looks only at
 * the waiters of every notification, of any topic, and of the topics named since the
 * previous round.
 *
 * The connection reconnects with capped exponential backoff (100 ms doubling to 5 s,
 * +-25% jitter). Each (re)connection wakes every waiter, because notifications sent
 * while it was down are lost. Waiters are one-shot: a woken waiter is unregistered
 * before its callback runs and registers again if it still wants to wait.
 */
#ifndef DUALREG_LISTEN_H
#define DUALREG_LISTEN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

struct event_base;
struct db_listener;
struct dbl_topic;
struct dbl_waiters;

#define DBL_DEBOUNCE_MS 20u
/* A topic's length limit, with its NUL. */
#define DBL_TOPIC_MAX 16u

struct dbl_waiter {
	void (*wake)(struct dbl_waiter *w); /* unregistered before it runs */
	/* private to the listener */
	TAILQ_ENTRY(dbl_waiter) link;
	struct dbl_waiters *on;  /* the list it is linked on */
	struct dbl_topic *topic; /* the topic whose list that is, if any */
	uint64_t seen; /* the generation the waiter last queried at */
	unsigned char scope;
	bool linked;
	bool due; /* on the list of the round in progress */
};

/* A listener for channel (an SQL identifier) on conninfo; not started yet. */
struct db_listener *dbl_new(struct event_base *base, const char *conninfo,
			    unsigned connect_timeout_ms, const char *channel);
/* Starts connecting. */
void dbl_start(struct db_listener *l);
/*
 * Stops for good (shutdown): closes the connection and wakes every waiter; later
 * dbl_wait calls refuse, so long polls answer at once instead of holding a drain.
 */
void dbl_stop(struct db_listener *l);
/* Frees the listener; every waiter must have been cancelled or woken. NULL is fine. */
void dbl_free(struct db_listener *l);

/* True while the LISTEN is in force. */
bool dbl_is_listening(const struct db_listener *l);
/* The number of notifications and reconnections so far. */
uint64_t dbl_generation(const struct db_listener *l);
/*
 * Registers w (w->wake set by the caller) to be woken after the next notification,
 * whatever it concerns. If the generation has moved past seen, w is woken on the next
 * loop turn instead. Returns false (and does not register) once the listener is stopped.
 */
bool dbl_wait(struct db_listener *l, struct dbl_waiter *w, uint64_t seen);
/*
 * As dbl_wait, for the notifications concerning topic (NULL: concerning any topic):
 * woken by the next one, or on the next loop turn if one has arrived since seen. A
 * topic that is empty, too long or holds a comma counts as NULL.
 */
bool dbl_wait_for(struct db_listener *l, struct dbl_waiter *w, uint64_t seen,
		  const char *topic);
/* Unregisters w if it is registered. */
void dbl_cancel(struct db_listener *l, struct dbl_waiter *w);
/* Waiters currently registered. */
unsigned dbl_nwaiters(const struct db_listener *l);
/* Waiters woken so far (for tests and metrics). */
uint64_t dbl_wakeups(const struct db_listener *l);

#endif
