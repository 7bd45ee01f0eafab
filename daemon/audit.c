/*
 * audit: buffered access records (see audit.h). Records live in a fixed array with an
 * open-addressing index on (key, pupil, endpoint), so a repeated read only bumps a
 * count and a time; a flush turns the array into one multi-row INSERT.
 */
#include "dualreg/audit.h"

#include <cJSON.h>
#include <event2/event.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dualreg/db.h"
#include "dualreg/log.h"
#include "dualreg/xalloc.h"

#define INDEX_SIZE (2 * AUDIT_MAX_PENDING) /* at most half full */

struct record {
	double first, last;
	long long key_id;
	unsigned reads;
	char key_name[64];
	char upn[16];
	char endpoint[40];
};

struct audit {
	struct db_pool *db;
	struct event *timer;
	struct record *recs; /* AUDIT_MAX_PENDING */
	int nrecs;
	int *index;          /* INDEX_SIZE slots: record number + 1, 0 when empty */
	struct db_op *op;    /* the batch being written */
	unsigned long dropped;
	void (*done)(void *);
	void *done_arg;
};

static uint32_t hash(long long key, const char *upn, const char *endpoint)
{
	uint32_t h = 2166136261u ^ (uint32_t)key;
	for (const char *s = upn; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	for (const char *s = endpoint; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static void write_batch(struct audit *a);

static void written(PGresult *res, const char *err, void *arg)
{
	struct audit *a = arg;
	a->op = NULL;
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
		log_warn("access records not written", "err=\"%s\"",
			 res ? PQresultErrorMessage(res) : err);
	if (a->done != NULL && a->nrecs == 0) {
		void (*cb)(void *) = a->done;
		a->done = NULL;
		cb(a->done_arg);
		return;
	}
	if (a->nrecs >= AUDIT_BATCH || a->done != NULL)
		write_batch(a);
}

static void write_batch(struct audit *a)
{
	if (a->op != NULL || a->nrecs == 0)
		return;
	cJSON *rows = cJSON_CreateArray();
	for (int i = 0; i < a->nrecs; i++) {
		const struct record *r = &a->recs[i];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "at", r->first);
		cJSON_AddNumberToObject(o, "last", r->last);
		cJSON_AddNumberToObject(o, "n", r->reads);
		cJSON_AddNumberToObject(o, "key", (double)r->key_id);
		cJSON_AddStringToObject(o, "name", r->key_name);
		cJSON_AddStringToObject(o, "upn", r->upn);
		cJSON_AddStringToObject(o, "endpoint", r->endpoint);
		cJSON_AddItemToArray(rows, o);
	}
	char *json = cJSON_PrintUnformatted(rows);
	cJSON_Delete(rows);
	a->nrecs = 0;
	memset(a->index, 0, INDEX_SIZE * sizeof *a->index);
	const char *params[] = {json};
	a->op = dbp_query(a->db,
			  "INSERT INTO access_audit (at, last_at, reads, key_id, key_name, upn, "
			  "endpoint) SELECT to_timestamp((r->>'at')::double precision), "
			  "to_timestamp((r->>'last')::double precision), (r->>'n')::integer, "
			  "(r->>'key')::bigint, r->>'name', r->>'upn', r->>'endpoint' "
			  "FROM jsonb_array_elements($1::jsonb) r",
			  1, params, written, a);
	free(json);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	write_batch(arg);
}

struct audit *audit_new(struct event_base *base, struct db_pool *db)
{
	struct audit *a = xcalloc(1, sizeof *a);
	a->db = db;
	a->recs = xmalloc(AUDIT_MAX_PENDING * sizeof *a->recs);
	a->index = xcalloc(INDEX_SIZE, sizeof *a->index);
	a->timer = event_new(base, -1, EV_PERSIST, tick, a);
	struct timeval tv = {AUDIT_FLUSH_MS / 1000, (AUDIT_FLUSH_MS % 1000) * 1000};
	event_add(a->timer, &tv);
	return a;
}

void audit_read(struct audit *a, long long key_id, const char *key_name, const char *upn,
		const char *endpoint)
{
	if (a == NULL)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	uint32_t slot = hash(key_id, upn, endpoint) % INDEX_SIZE;
	for (;; slot = (slot + 1) % INDEX_SIZE) {
		int i = a->index[slot] - 1;
		if (i < 0)
			break;
		struct record *r = &a->recs[i];
		if (r->key_id == key_id && strcmp(r->upn, upn) == 0 &&
		    strcmp(r->endpoint, endpoint) == 0) {
			r->reads++;
			r->last = now;
			return;
		}
	}
	if (a->nrecs == AUDIT_MAX_PENDING) {
		/* The database has not taken a batch for a long time: keep the newest. */
		if (a->dropped++ % 10000 == 0)
			log_error("access records dropped: the database is not taking them",
				  "dropped=%lu", a->dropped);
		return;
	}
	struct record *r = &a->recs[a->nrecs];
	r->first = r->last = now;
	r->key_id = key_id;
	r->reads = 1;
	snprintf(r->key_name, sizeof r->key_name, "%s", key_name);
	snprintf(r->upn, sizeof r->upn, "%s", upn);
	snprintf(r->endpoint, sizeof r->endpoint, "%s", endpoint);
	a->index[slot] = ++a->nrecs;
	if (a->nrecs >= AUDIT_BATCH)
		write_batch(a);
}

void audit_flush(struct audit *a, void (*done)(void *), void *arg)
{
	if (a == NULL || (a->nrecs == 0 && a->op == NULL)) {
		done(arg);
		return;
	}
	a->done = done;
	a->done_arg = arg;
	write_batch(a);
}

void audit_free(struct audit *a)
{
	if (a == NULL)
		return;
	if (a->op != NULL)
		db_op_cancel(a->op);
	if (a->nrecs > 0)
		log_warn("access records not written at exit", "count=%d", a->nrecs);
	event_free(a->timer);
	free(a->recs);
	free(a->index);
	free(a);
}
