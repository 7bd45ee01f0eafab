/*
 * audit: records reads of pupil data in access_audit: which pupil, which key (or
 * webhook subscription) and the school it acts for, through which endpoint, when.
 * Every answer that carries pupil data is recorded: the pupil routes (200, 304 and
 * HEAD alike), the school register, the change feed and the feed refusals (one record
 * per pupil the answer names, audit_read_json), and each webhook delivered
 * (audit_delivered, against its subscription).
 *
 * Reads are frequent and most are answered from memory, so records are buffered and
 * written in one statement per flush: every AUDIT_FLUSH_MS, or as soon as AUDIT_BATCH
 * records are waiting. Repeated reads of one pupil by one key through one endpoint
 * before a flush are one record with a count and the first and last time.
 *
 * Nothing is dropped: a batch the database refuses is kept and written again at the
 * next flush. The buffer is bounded by max_pending records (written or not): once it
 * is full, audit_full says so and the API refuses new reads of pupil data (503) and the
 * outbox stops claiming deliveries until the database takes the backlog; the reads and
 * deliveries already under way are still recorded. A clean shutdown flushes what is
 * left (what the database then refuses is logged with its count).
 */
#ifndef DUALREG_AUDIT_H
#define DUALREG_AUDIT_H

#include <cJSON.h>
#include <stdbool.h>

struct event_base;
struct db_pool;
struct audit;

#define AUDIT_FLUSH_MS 1000
#define AUDIT_BATCH 20000
#define AUDIT_MAX_PENDING 50000 /* the default of [audit] max_pending */

/* Who read: an API key (id, name) and the school it acts for (NULL or "" for admin). */
struct audit_reader {
	long long key_id;
	const char *key_name;
	const char *urn;
};

struct audit_stats {
	unsigned long pending;  /* records not yet in the database, a batch in flight included */
	unsigned long refused;  /* reads refused (503) while the buffer was full */
	unsigned long written;  /* records written since start */
	unsigned long failures; /* batches the database refused (and that were kept) */
};

struct audit *audit_new(struct event_base *base, struct db_pool *db, unsigned max_pending);
/* Records that reader read upn's data through endpoint (a route name). */
void audit_read(struct audit *a, const struct audit_reader *reader, const char *upn,
		const char *endpoint);
/* Records a read of every pupil doc names: each "upn" member (a string) at any depth.
 * Returns the number of records made. */
int audit_read_json(struct audit *a, const struct audit_reader *reader, const char *endpoint,
		    const cJSON *doc);
/* Records that webhook delivery delivery_id (a deliveries row) reached its endpoint:
 * a read of the delivery's pupil by its subscription ("webhook:<subscription id>", the
 * subscription's school), endpoint "webhook". */
void audit_delivered(struct audit *a, const char *delivery_id);
/* True while the buffer is full: new reads must be refused until it drains. */
bool audit_full(const struct audit *a);
/* Counts one read refused because the buffer was full. */
void audit_count_refused(struct audit *a);
void audit_stats(const struct audit *a, struct audit_stats *out);
/* Writes what is buffered; done(arg) runs when it is recorded (or could not be). */
void audit_flush(struct audit *a, void (*done)(void *arg), void *arg);
void audit_free(struct audit *a);

#endif
