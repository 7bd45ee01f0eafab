/*
 * audit: records reads of pupil data (key, pupil, endpoint, time) in access_audit.
 * Reads are frequent and most are answered from memory, so records are buffered and
 * written in one statement per flush: every AUDIT_FLUSH_MS, or as soon as AUDIT_BATCH
 * distinct records are waiting. Repeated reads of one pupil by one key through one
 * endpoint before a flush are one record with a count and the first and last time.
 * The buffer is bounded (AUDIT_MAX_PENDING); if the database stays away that long,
 * further new records are dropped and the loss is logged. A clean shutdown flushes
 * what is left.
 */
#ifndef DUALREG_AUDIT_H
#define DUALREG_AUDIT_H

struct event_base;
struct db_pool;
struct audit;

#define AUDIT_FLUSH_MS 1000
#define AUDIT_BATCH 20000
#define AUDIT_MAX_PENDING 50000

struct audit *audit_new(struct event_base *base, struct db_pool *db);
/* Records that key (id, name) read upn's data through endpoint (a route name). */
void audit_read(struct audit *a, long long key_id, const char *key_name, const char *upn,
		const char *endpoint);
/* Writes what is buffered; done(arg) runs when it is recorded (or could not be). */
void audit_flush(struct audit *a, void (*done)(void *arg), void *arg);
void audit_free(struct audit *a);

#endif
