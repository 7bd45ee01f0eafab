/*
 * outbox: webhook delivery. Claims due deliveries from PostgreSQL (leases, SKIP
 * LOCKED; see sql/007_outbox.sql), sends each as a Standard Webhooks POST through
 * httpc, and records the outcome: delivered (2xx), subscription disabled (410), or a
 * retry after a delay from the schedule (with jitter) or from Retry-After (429/503),
 * until the schedule is exhausted and the delivery fails. Woken by every committed
 * event (through the database listener, see listen.h) and by a short poll for retries
 * that come due.
 */
#ifndef DUALREG_OUTBOX_H
#define DUALREG_OUTBOX_H

#include <stdbool.h>

struct event_base;
struct db_pool;
struct httpc;
struct outbox;

#define OUTBOX_MAX_SCHEDULE 16

struct outbox_opts {
	unsigned timeout_ms;        /* per attempt */
	unsigned max_in_flight;     /* attempts at once, in total */
	unsigned per_subscription;  /* attempts at once, per subscription */
	unsigned poll_ms;           /* how often to look for retries that came due */
	unsigned schedule_ms[OUTBOX_MAX_SCHEDULE]; /* delay after attempt 1, 2, ... */
	unsigned schedule_len;
	unsigned max_retry_after_s; /* cap on a server's Retry-After */
	bool allow_http;
	bool allow_private;
	const char *ca_file; /* copied */
};

struct db_listener;

struct outbox_stats {
	unsigned long attempts, delivered, retried, failed;
	unsigned in_flight;
};

struct outbox *outbox_new(struct event_base *base, struct db_pool *db, struct httpc *http,
			  const struct outbox_opts *opts);
/* Applies new options (reload); attempts in flight finish under the old ones. */
void outbox_configure(struct outbox *o, const struct outbox_opts *opts);
struct audit;
/* Records every delivered event in the access audit, and holds claims while it is full
 * (audit.h). */
void outbox_set_audit(struct outbox *o, struct audit *a);
/* Looks for due deliveries now. */
void outbox_wake(struct outbox *o);
/* Looks for due deliveries after every notification the listener sees. */
void outbox_listen(struct outbox *o, struct db_listener *l);
/* Stops claiming; done(arg) runs once no attempt is in flight. */
void outbox_drain(struct outbox *o, void (*done)(void *arg), void *arg);
void outbox_stats(const struct outbox *o, struct outbox_stats *out);
/* Abandons attempts in flight (their leases expire and another claim retries them). */
void outbox_free(struct outbox *o);

#endif
