/*
 * listen: one dedicated database connection that LISTENs on a channel and wakes the
 * requests waiting for it (the change feed's long polls).
 *
 * A waiter registers with the generation it last queried at (dbl_generation, read just
 * before sending its query). Every notification bumps the generation; a waiter whose
 * generation is already behind when it registers is woken at once, so a notification
 * that arrives while its query is in flight is never lost.
 *
 * Coalescing: notifications only mark the listener dirty; all waiters are woken
 * together on a later loop turn, at most once per DBL_DEBOUNCE_MS, so a burst of
 * commits costs each waiter one re-query, not one per notification.
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

#define DBL_DEBOUNCE_MS 20u

struct dbl_waiter {
	void (*wake)(struct dbl_waiter *w); /* unregistered before it runs */
	/* private to the listener */
	TAILQ_ENTRY(dbl_waiter) link;
	uint64_t seen; /* the generation the waiter last queried at */
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
 * Registers w (w->wake set by the caller) to be woken after the next notification.
 * If the generation has moved past seen, w is woken on the next loop turn instead.
 * Returns false (and does not register) once the listener is stopped.
 */
bool dbl_wait(struct db_listener *l, struct dbl_waiter *w, uint64_t seen);
/* Unregisters w if it is registered. */
void dbl_cancel(struct db_listener *l, struct dbl_waiter *w);
/* Waiters currently registered. */
unsigned dbl_nwaiters(const struct db_listener *l);

#endif
