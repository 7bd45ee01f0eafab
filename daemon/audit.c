/* audit: buffered access records (see audit.h). */
#include "dualreg/audit.h"

#include <cJSON.h>
#include <event2/event.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dualreg/db.h"
#include "dualreg/log.h"
#include "dualreg/xalloc.h"

struct audit {
	struct db_pool *db;
	struct event *timer;
	cJSON *pending;     /* records not yet sent */
	int npending;
	struct db_op *op;   /* the batch being written */
	unsigned long dropped;
	void (*done)(void *);
	void *done_arg;
};

static void write_batch(struct audit *a);

static void written(PGresult *res, const char *err, void *arg)
{
	struct audit *a = arg;
	a->op = NULL;
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
		log_warn("access records not written", "err=\"%s\"",
			 res ? PQresultErrorMessage(res) : err);
	if (a->done != NULL && a->npending == 0) {
		void (*cb)(void *) = a->done;
		a->done = NULL;
		cb(a->done_arg);
		return;
	}
	if (a->npending >= AUDIT_BATCH || a->done != NULL)
		write_batch(a);
}

static void write_batch(struct audit *a)
{
	if (a->op != NULL || a->npending == 0)
		return;
	char *json = cJSON_PrintUnformatted(a->pending);
	cJSON_Delete(a->pending);
	a->pending = NULL;
	a->npending = 0;
	const char *params[] = {json};
	a->op = dbp_query(a->db,
			  "INSERT INTO access_audit (at, key_id, key_name, upn, endpoint) "
			  "SELECT to_timestamp((r->>'at')::double precision), "
			  "nullif(r->>'key', '0')::bigint, r->>'name', r->>'upn', r->>'endpoint' "
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
	if (a->npending >= AUDIT_MAX_PENDING) {
		cJSON_DeleteItemFromArray(a->pending, 0);
		a->npending--;
		if (a->dropped++ % 10000 == 0)
			log_error("access records dropped: the database is not taking them",
				  "dropped=%lu", a->dropped);
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	cJSON *r = cJSON_CreateObject();
	cJSON_AddNumberToObject(r, "at", (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
	cJSON_AddNumberToObject(r, "key", (double)key_id);
	cJSON_AddStringToObject(r, "name", key_name);
	cJSON_AddStringToObject(r, "upn", upn);
	cJSON_AddStringToObject(r, "endpoint", endpoint);
	if (a->pending == NULL)
		a->pending = cJSON_CreateArray();
	cJSON_AddItemToArray(a->pending, r);
	a->npending++;
	if (a->npending >= AUDIT_BATCH)
		write_batch(a);
}

void audit_flush(struct audit *a, void (*done)(void *), void *arg)
{
	if (a == NULL || (a->npending == 0 && a->op == NULL)) {
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
	if (a->npending > 0)
		log_warn("access records not written at exit", "count=%d", a->npending);
	cJSON_Delete(a->pending);
	event_free(a->timer);
	free(a);
}
