/*
 * audit: buffered access records (see audit.h). Reads live in a growable array with an
 * open-addressing index on (key, pupil, endpoint), so a repeated read only bumps a
 * count and a time; delivered webhooks are kept as (delivery, time) and resolved to
 * their subscription and pupil by the database. A flush turns both into one INSERT,
 * whose parameters are kept until the database has taken them: a refused batch is sent
 * again at the next flush, so records are never lost to an outage, only delayed.
 */
#include "dualreg/audit.h"

#include <event2/event.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dualreg/db.h"
#include "dualreg/log.h"
#include "dualreg/xalloc.h"

struct record {
	double first, last;
	long long key_id;
	unsigned reads;
	char key_name[64];
	char urn[8];
	char upn[16];
	char endpoint[40];
};

struct delivered {
	double at;
	long long id;
};

struct audit {
	struct db_pool *db;
	struct event *timer;
	unsigned max_pending;
	/* reads waiting for the next batch */
	struct record *recs;
	size_t nrecs, caprecs;
	uint32_t *index; /* nindex slots: record number + 1, 0 when empty */
	size_t nindex;   /* a power of two, at least twice caprecs */
	/* webhooks delivered, waiting for the next batch */
	struct delivered *dels;
	size_t ndels, capdels;
	/* the batch being written, or refused and waiting to be written again */
	char *batch_reads, *batch_dels;
	size_t batch_n;
	struct db_op *op;
	struct audit_stats stats;
	unsigned streak; /* failed attempts in a row */
	void (*done)(void *);
	void *done_arg;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint32_t hash(long long key, const char *upn, const char *endpoint)
{
	uint32_t h = 2166136261u ^ (uint32_t)key;
	for (const char *s = upn; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	for (const char *s = endpoint; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static size_t pending(const struct audit *a)
{
	return a->nrecs + a->ndels + a->batch_n;
}

/* Rebuilds the index for the records in the array (after growth or a batch). */
static void reindex(struct audit *a)
{
	memset(a->index, 0, a->nindex * sizeof *a->index);
	for (size_t i = 0; i < a->nrecs; i++) {
		const struct record *r = &a->recs[i];
		size_t slot = hash(r->key_id, r->upn, r->endpoint) & (a->nindex - 1);
		while (a->index[slot] != 0)
			slot = (slot + 1) & (a->nindex - 1);
		a->index[slot] = (uint32_t)i + 1;
	}
}

/* Room for one more record: reads admitted before the buffer filled are kept too, so
 * the array may grow past max_pending (by what the requests in flight add). */
static void reserve(struct audit *a)
{
	if (a->nrecs < a->caprecs)
		return;
	a->caprecs = a->caprecs ? a->caprecs * 2 : 256;
	a->recs = xrealloc(a->recs, a->caprecs * sizeof *a->recs);
	while (a->nindex < 2 * a->caprecs)
		a->nindex = a->nindex ? a->nindex * 2 : 512;
	free(a->index);
	a->index = xcalloc(a->nindex, sizeof *a->index);
	reindex(a);
}

static void write_batch(struct audit *a);

/* Only at shutdown, when the database refused the last attempt: audit_free logs what
 * is left. */
static void give_up(struct audit *a)
{
	void (*cb)(void *) = a->done;
	a->done = NULL;
	cb(a->done_arg);
}

static void written(PGresult *res, const char *err, void *arg)
{
	struct audit *a = arg;
	a->op = NULL;
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
		/* Kept: the next flush sends the same batch again. */
		a->stats.failures++;
		const char *why = res == NULL ? err : PQresultErrorMessage(res);
		/* The first failure of an outage is a warning; the retries every flush are
		 * debug lines, and the recovery is logged once. */
		if (a->streak++ == 0)
			log_warn("access records not written; kept for the next attempt",
				 "count=%zu err=\"%s\"", a->batch_n, why);
		else
			log_debug("access records not written; kept for the next attempt",
				  "count=%zu attempts=%u err=\"%s\"", a->batch_n, a->streak, why);
		if (a->done != NULL)
			give_up(a);
		return;
	}
	if (a->streak > 0)
		log_info("access records written again", "count=%zu failed_attempts=%u",
			 a->batch_n, a->streak);
	a->streak = 0;
	a->stats.written += a->batch_n;
	free(a->batch_reads);
	free(a->batch_dels);
	a->batch_reads = a->batch_dels = NULL;
	a->batch_n = 0;
	if (a->done != NULL && a->nrecs == 0 && a->ndels == 0) {
		void (*cb)(void *) = a->done;
		a->done = NULL;
		cb(a->done_arg);
		return;
	}
	if (a->nrecs + a->ndels >= AUDIT_BATCH || a->nrecs + a->ndels >= a->max_pending / 2 ||
	    a->done != NULL)
		write_batch(a);
}

/* Moves what is waiting into the batch (unless a refused batch is still there). */
static void take_batch(struct audit *a)
{
	if (a->batch_n > 0 || (a->nrecs == 0 && a->ndels == 0))
		return;
	cJSON *rows = cJSON_CreateArray();
	for (size_t i = 0; i < a->nrecs; i++) {
		const struct record *r = &a->recs[i];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "at", r->first);
		cJSON_AddNumberToObject(o, "last", r->last);
		cJSON_AddNumberToObject(o, "n", r->reads);
		if (r->key_id != 0)
			cJSON_AddNumberToObject(o, "key", (double)r->key_id);
		cJSON_AddStringToObject(o, "name", r->key_name);
		if (r->urn[0] != '\0')
			cJSON_AddStringToObject(o, "urn", r->urn);
		cJSON_AddStringToObject(o, "upn", r->upn);
		cJSON_AddStringToObject(o, "endpoint", r->endpoint);
		cJSON_AddItemToArray(rows, o);
	}
	cJSON *dels = cJSON_CreateArray();
	for (size_t i = 0; i < a->ndels; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "at", a->dels[i].at);
		cJSON_AddNumberToObject(o, "id", (double)a->dels[i].id);
		cJSON_AddItemToArray(dels, o);
	}
	a->batch_reads = cJSON_PrintUnformatted(rows);
	a->batch_dels = cJSON_PrintUnformatted(dels);
	cJSON_Delete(rows);
	cJSON_Delete(dels);
	a->batch_n = a->nrecs + a->ndels;
	a->nrecs = a->ndels = 0;
	memset(a->index, 0, a->nindex * sizeof *a->index);
}

static void write_batch(struct audit *a)
{
	if (a->op != NULL)
		return;
	take_batch(a);
	if (a->batch_n == 0)
		return;
	/* Webhook deliveries: one record per subscription and pupil in the batch. */
	const char *params[] = {a->batch_reads, a->batch_dels};
	a->op = dbp_query(
	    a->db,
	    "WITH r AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(at double precision, "
	    "last double precision, n integer, key bigint, name text, urn text, upn text, "
	    "endpoint text)), "
	    "d AS (SELECT * FROM jsonb_to_recordset($2::jsonb) "
	    "AS x(at double precision, id bigint)) "
	    "INSERT INTO access_audit (at, last_at, reads, key_id, key_name, urn, upn, endpoint, "
	    "subscription_id) "
	    "SELECT to_timestamp(r.at), to_timestamp(r.last), r.n, r.key, r.name, r.urn, r.upn, "
	    "r.endpoint, NULL FROM r "
	    "UNION ALL "
	    "SELECT to_timestamp(min(d.at)), to_timestamp(max(d.at)), count(*)::integer, NULL, "
	    "'webhook:' || s.id, s.urn, v.upn, 'webhook', s.id "
	    "FROM d JOIN deliveries v ON v.id = d.id "
	    "JOIN subscriptions s ON s.id = v.subscription_id "
	    "WHERE v.upn IS NOT NULL GROUP BY s.id, s.urn, v.upn",
	    2, params, written, a);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	write_batch(arg);
}

struct audit *audit_new(struct event_base *base, struct db_pool *db, unsigned max_pending)
{
	struct audit *a = xcalloc(1, sizeof *a);
	a->db = db;
	a->max_pending = max_pending > 0 ? max_pending : AUDIT_MAX_PENDING;
	reserve(a);
	a->timer = event_new(base, -1, EV_PERSIST, tick, a);
	struct timeval tv = {AUDIT_FLUSH_MS / 1000, (AUDIT_FLUSH_MS % 1000) * 1000};
	event_add(a->timer, &tv);
	return a;
}

bool audit_full(const struct audit *a)
{
	return a != NULL && pending(a) >= a->max_pending;
}

void audit_count_refused(struct audit *a)
{
	if (a != NULL)
		a->stats.refused++;
}

void audit_stats(const struct audit *a, struct audit_stats *out)
{
	*out = a->stats;
	out->pending = pending(a);
}

/* Starts a batch once enough is waiting, without waiting for the timer. A batch in
 * flight, or refused and waiting to be sent again, leaves it to the timer: an outage
 * costs one attempt per flush interval, not one per read. */
static void maybe_write(struct audit *a)
{
	if (a->batch_n > 0)
		return;
	size_t waiting = a->nrecs + a->ndels;
	if (waiting >= AUDIT_BATCH || waiting >= a->max_pending / 2)
		write_batch(a);
}

void audit_read(struct audit *a, const struct audit_reader *reader, const char *upn,
		const char *endpoint)
{
	if (a == NULL || upn == NULL || upn[0] == '\0')
		return;
	double now = now_s();
	size_t slot = hash(reader->key_id, upn, endpoint) & (a->nindex - 1);
	for (;; slot = (slot + 1) & (a->nindex - 1)) {
		uint32_t i = a->index[slot];
		if (i == 0)
			break;
		struct record *r = &a->recs[i - 1];
		if (r->key_id == reader->key_id && strcmp(r->upn, upn) == 0 &&
		    strcmp(r->endpoint, endpoint) == 0) {
			r->reads++;
			r->last = now;
			return;
		}
	}
	if (a->nrecs == a->caprecs) {
		reserve(a);
		slot = hash(reader->key_id, upn, endpoint) & (a->nindex - 1);
		while (a->index[slot] != 0)
			slot = (slot + 1) & (a->nindex - 1);
	}
	struct record *r = &a->recs[a->nrecs];
	r->first = r->last = now;
	r->key_id = reader->key_id;
	r->reads = 1;
	snprintf(r->key_name, sizeof r->key_name, "%s", reader->key_name ? reader->key_name : "");
	snprintf(r->urn, sizeof r->urn, "%s", reader->urn ? reader->urn : "");
	snprintf(r->upn, sizeof r->upn, "%s", upn);
	snprintf(r->endpoint, sizeof r->endpoint, "%s", endpoint);
	a->index[slot] = (uint32_t)++a->nrecs;
	maybe_write(a);
}

static int read_json(struct audit *a, const struct audit_reader *reader, const char *endpoint,
		     const cJSON *node, int depth)
{
	int n = 0;
	if (depth > 32)
		return 0;
	const cJSON *c;
	cJSON_ArrayForEach(c, node)
	{
		if (cJSON_IsString(c) && c->string != NULL && strcmp(c->string, "upn") == 0) {
			/* A UPN is 13 characters; anything else names no pupil. */
			if (strlen(c->valuestring) == 13) {
				audit_read(a, reader, c->valuestring, endpoint);
				n++;
			}
		} else if (cJSON_IsObject(c) || cJSON_IsArray(c)) {
			n += read_json(a, reader, endpoint, c, depth + 1);
		}
	}
	return n;
}

int audit_read_json(struct audit *a, const struct audit_reader *reader, const char *endpoint,
		    const cJSON *doc)
{
	if (a == NULL || doc == NULL)
		return 0;
	if (!cJSON_IsObject(doc) && !cJSON_IsArray(doc))
		return 0;
	return read_json(a, reader, endpoint, doc, 0);
}

void audit_delivered(struct audit *a, const char *delivery_id)
{
	if (a == NULL || delivery_id == NULL)
		return;
	char *end;
	long long id = strtoll(delivery_id, &end, 10);
	if (*end != '\0' || id <= 0)
		return;
	if (a->ndels == a->capdels) {
		a->capdels = a->capdels ? a->capdels * 2 : 64;
		a->dels = xrealloc(a->dels, a->capdels * sizeof *a->dels);
	}
	a->dels[a->ndels++] = (struct delivered){now_s(), id};
	maybe_write(a);
}

void audit_flush(struct audit *a, void (*done)(void *), void *arg)
{
	if (a == NULL || pending(a) == 0) {
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
	if (pending(a) > 0)
		log_error("access records not written at exit", "count=%zu", pending(a));
	event_free(a->timer);
	free(a->recs);
	free(a->index);
	free(a->dels);
	free(a->batch_reads);
	free(a->batch_dels);
	free(a);
}
