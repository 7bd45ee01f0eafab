/*
 * pull: the feed reader (see pull.h). One run per claimed school walks its pages:
 * fetch -> check -> apply -> (more? fetch the next) -> done. A run holds its school's
 * lease; each page is applied only if the lease and the cursor are still the ones the
 * page was asked with, so a page is never applied twice. The school's token is opened
 * with the installed keyring (secret_box.h) when the run starts; one that does not
 * open fails the run, which backs off like any other failure.
 */
#include "dualreg/pull.h"

#include <cJSON.h>
#include <event2/event.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dualreg/config.h"
#include "dualreg/db.h"
#include "dualreg/endpoint.h"
#include "dualreg/httpc.h"
#include "dualreg/log.h"
#include "dualreg/metrics.h"
#include "dualreg/utf8.h"
#include "dualreg/secret_box.h"
#include "dualreg/xalloc.h"

struct puller {
	struct db_pool *db;
	struct httpc *http;
	const struct config *cfg;
	char owner[96];
	struct event *timer;
	struct db_op *claim_op;
	struct pull_run *runs;
	unsigned nruns;
	bool draining;
	void (*drained)(void *);
	void *drained_arg;
};

struct pull_run {
	struct puller *p;
	char urn[8];
	char *base_url; /* the school's pull_url */
	char *token;
	char *since;    /* cursor the current page was asked with (NULL: from the start) */
	char *next_url; /* a `next` URL the previous page gave */
	char *page;     /* the marks of the page being applied, as JSON text */
	char *next_cursor;
	char *private_hosts; /* hosts this school's feed may reach at private addresses */
	bool more;
	int pages;
	struct httpc_xfer *xfer;
	struct db_op *op;
	struct pull_run *next, *prev;
};

static void claim(struct puller *p);

static void run_free(struct pull_run *r)
{
	struct puller *p = r->p;
	if (r->prev)
		r->prev->next = r->next;
	else
		p->runs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	p->nruns--;
	free(r->base_url);
	secret_box_value_free(r->token);
	free(r->since);
	free(r->next_url);
	free(r->page);
	free(r->next_cursor);
	free(r->private_hosts);
	free(r);
	if (p->draining && p->nruns == 0 && p->drained != NULL) {
		void (*cb)(void *) = p->drained;
		p->drained = NULL;
		cb(p->drained_arg);
	}
}

static void recorded(PGresult *res, const char *err, void *arg)
{
	struct pull_run *r = arg;
	r->op = NULL;
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
		log_warn("pull state not recorded; the lease will expire", "urn=%s err=\"%s\"", r->urn,
			 res ? PQresultErrorMessage(res) : err);
	run_free(r);
}

/* Ends the run with an error: back off, keep the error for the school's status. */
static void run_fail(struct pull_run *r, const char *why)
{
	metrics_pull_run(0);
	log_warn("feed pull failed", "urn=%s page=%d err=\"%s\"", r->urn, r->pages + 1, why);
	const char *params[] = {r->urn, r->p->owner, why};
	r->op = dbp_query(r->p->db, "SELECT dualreg_pull_failed($1, $2, $3)", 3, params, recorded,
			  r);
}

static void fetch(struct pull_run *r);

static void applied(PGresult *res, const char *err, void *arg)
{
	struct pull_run *r = arg;
	r->op = NULL;
	/* The school reads the error kept (last_error): database specifics go to the log
	 * only. */
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warn("feed page not applied: database error", "urn=%s err=\"%s\"", r->urn,
			 res ? PQresultErrorMessage(res) : err);
		run_fail(r, "applying the page failed: database error (logged by dualreg)");
		return;
	}
	cJSON *out = cJSON_Parse(PQgetvalue(res, 0, 0));
	bool ok = cJSON_IsTrue(cJSON_GetObjectItem(out, "applied"));
	if (!ok) {
		const cJSON *why = cJSON_GetObjectItem(out, "why");
		log_warn("feed page not applied", "urn=%s why=\"%s\"", r->urn,
			 cJSON_IsString(why) ? why->valuestring : "?");
		cJSON_Delete(out);
		run_free(r);
		return;
	}
	const cJSON *counts = cJSON_GetObjectItem(out, "counts");
	metrics_marks("pull", cJSON_GetObjectItem(counts, "created")->valueint,
		      cJSON_GetObjectItem(counts, "amended")->valueint,
		      cJSON_GetObjectItem(counts, "unchanged")->valueint,
		      cJSON_GetObjectItem(counts, "rejected")->valueint);
	log_info("feed page applied", "urn=%s page=%d created=%d amended=%d unchanged=%d rejected=%d",
		 r->urn, r->pages + 1, cJSON_GetObjectItem(counts, "created")->valueint,
		 cJSON_GetObjectItem(counts, "amended")->valueint,
		 cJSON_GetObjectItem(counts, "unchanged")->valueint,
		 cJSON_GetObjectItem(counts, "rejected")->valueint);
	cJSON_Delete(out);
	r->pages++;
	free(r->since);
	r->since = r->next_cursor;
	r->next_cursor = NULL;
	free(r->page);
	r->page = NULL;
	if (r->more && r->pages < PULL_MAX_PAGES && !r->p->draining) {
		fetch(r);
		return;
	}
	metrics_pull_run(1);
	const char *params[] = {r->urn, r->p->owner};
	r->op = dbp_query(r->p->db, "SELECT dualreg_pull_release($1, $2)", 2, params, recorded, r);
}

/* True when every member name and string under v is well-formed UTF-8 (the depth is
 * bounded by cJSON's nesting limit). */
static bool all_utf8(const cJSON *v)
{
	if (v->string != NULL && utf8_length(v->string) == UTF8_INVALID)
		return false;
	if (cJSON_IsString(v) && utf8_length(v->valuestring) == UTF8_INVALID)
		return false;
	for (const cJSON *c = v->child; c != NULL; c = c->next)
		if (!all_utf8(c))
			return false;
	return true;
}

/* True when JSON text that parsed holds a \u0000 escape, which cJSON would turn into a
 * NUL that silently cuts its string short. Every backslash of such text starts an
 * escape, so skipping each escaped character is enough. */
static bool escaped_nul(const char *text, size_t len)
{
	for (size_t i = 0; i + 5 < len; i++) {
		if (text[i] != '\\')
			continue;
		if (text[i + 1] == 'u' && memcmp(text + i + 2, "0000", 4) == 0)
			return true;
		i++;
	}
	return false;
}

const char *pull_check_page(const char *body, size_t len, const char *base_url,
			    const char *urn, struct pull_page *out)
{
	static char why[200];
	memset(out, 0, sizeof *out);
	cJSON *page = cJSON_ParseWithLength(body, len);
	const char *bad = NULL;
	const cJSON *marks = cJSON_GetObjectItem(page, "marks");
	const cJSON *cursor = cJSON_GetObjectItem(page, "next_cursor");
	const cJSON *more = cJSON_GetObjectItem(page, "has_more");
	const cJSON *next = cJSON_GetObjectItem(page, "next");
	if (!cJSON_IsObject(page))
		bad = "the page is not JSON {marks, next_cursor, has_more}";
	else if (!all_utf8(page))
		bad = "the page is not UTF-8";
	else if (escaped_nul(body, len))
		bad = "the page holds \\u0000, which no text can contain";
	else if (!cJSON_IsArray(marks))
		bad = "the page has no marks list";
	else if (cJSON_GetArraySize(marks) > PULL_MAX_ITEMS)
		bad = "the page has more than 1000 marks";
	else if (!cJSON_IsString(cursor) && !cJSON_IsNull(cursor))
		bad = "next_cursor must be a string or null";
	else if (cJSON_IsString(cursor) && strlen(cursor->valuestring) > 1000)
		bad = "next_cursor is longer than 1000 characters";
	else if (!cJSON_IsBool(more))
		bad = "has_more must be true or false";
	else if (next != NULL && !cJSON_IsNull(next) &&
		 (!cJSON_IsString(next) || !endpoint_same_origin(next->valuestring, base_url)))
		bad = "the next page's URL is not on the feed's own host";
	if (bad != NULL) {
		snprintf(why, sizeof why, "%s", bad);
		cJSON_Delete(page);
		return why;
	}
	/* Items carry no school: every mark of this feed is the school's own. */
	const cJSON *m;
	cJSON_ArrayForEach(m, marks)
	{
		if (cJSON_IsObject(m) && !cJSON_HasObjectItem(m, "urn"))
			cJSON_AddStringToObject((cJSON *)m, "urn", urn);
	}
	out->marks = cJSON_PrintUnformatted(marks);
	out->next_cursor = cJSON_IsString(cursor) ? xstrdup(cursor->valuestring) : NULL;
	out->more = cJSON_IsTrue(more);
	out->next_url = cJSON_IsString(next) ? xstrdup(next->valuestring) : NULL;
	cJSON_Delete(page);
	return NULL;
}

void pull_page_free(struct pull_page *pg)
{
	cJSON_free(pg->marks);
	free(pg->next_cursor);
	free(pg->next_url);
	memset(pg, 0, sizeof *pg);
}

/* Checks a page; on success fills r->page, r->next_cursor, r->more, r->next_url. */
static const char *check_page(struct pull_run *r, const char *body, size_t len)
{
	struct pull_page pg;
	const char *bad = pull_check_page(body, len, r->base_url, r->urn, &pg);
	if (bad != NULL)
		return bad;
	free(r->page);
	r->page = xstrdup(pg.marks);
	free(r->next_cursor);
	r->next_cursor = pg.next_cursor;
	r->more = pg.more;
	free(r->next_url);
	r->next_url = pg.next_url;
	pg.next_cursor = pg.next_url = NULL;
	pull_page_free(&pg);
	return NULL;
}

static void fetched(const struct httpc_result *res, void *arg)
{
	struct pull_run *r = arg;
	r->xfer = NULL;
	char why[320];
	if (!res->ok) {
		snprintf(why, sizeof why, "%s", res->error);
		run_fail(r, why);
		return;
	}
	if (res->status != 200) {
		snprintf(why, sizeof why, "the feed answered HTTP %ld", res->status);
		run_fail(r, why);
		return;
	}
	const char *bad = check_page(r, res->body, res->body_len);
	if (bad != NULL) {
		run_fail(r, bad);
		return;
	}
	const char *params[] = {r->urn, r->p->owner, r->since, r->page, r->next_cursor,
				r->more ? "true" : "false"};
	r->op = dbp_query(r->p->db,
			  "SELECT dualreg_pull_apply($1, $2, $3, $4::jsonb, $5, $6::boolean)", 6,
			  params, applied, r);
}

static void fetch(struct pull_run *r)
{
	const struct config *cfg = r->p->cfg;
	char *url = r->next_url != NULL ? xstrdup(r->next_url)
					: endpoint_with_since(r->base_url, r->since);
	char auth[4100];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", r->token ? r->token : "");
	const char *headers[] = {"Accept: application/json", r->token ? auth : NULL, NULL};
	struct httpc_request req = {
	    .method = "GET",
	    .url = url,
	    .headers = headers,
	    .timeout_ms = cfg->pull_timeout_ms,
	    .max_response = cfg->pull_max_page,
	    .fail_over_max = true,
	    .allow_http = cfg->pull_allow_http,
	    /* [pull] allow_private opens private addresses to every feed; a school's
	     * allowlist only to its own, and only when the feed's host is listed */
	    .allow_private = cfg->pull_allow_private || endpoint_host_listed(url, r->private_hosts),
	    .ca_file = cfg->outbound_ca_file,
	};
	r->xfer = httpc_start(r->p->http, &req, fetched, r);
	free(url);
}

static void claimed(PGresult *res, const char *err, void *arg)
{
	struct puller *p = arg;
	p->claim_op = NULL;
	if (res == NULL) {
		log_debug("feed claim skipped", "err=\"%s\"", err);
		return;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_error("feed claim failed", "err=\"%s\"", PQresultErrorMessage(res));
		return;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		struct pull_run *r = xcalloc(1, sizeof *r);
		r->p = p;
		snprintf(r->urn, sizeof r->urn, "%s", PQgetvalue(res, i, 0));
		r->base_url = xstrdup(PQgetvalue(res, i, 1));
		char aad[SECRET_BOX_AAD_MAX], why[200] = "";
		secret_box_aad_school(r->urn, aad);
		r->token = PQgetisnull(res, i, 2) ? NULL
						  : secret_box_open(secret_box_installed(),
								    PQgetvalue(res, i, 2), aad, why,
								    sizeof why);
		r->since = PQgetisnull(res, i, 3) ? NULL : xstrdup(PQgetvalue(res, i, 3));
		r->private_hosts = xstrdup(PQgetvalue(res, i, 4));
		r->next = p->runs;
		if (p->runs)
			p->runs->prev = r;
		p->runs = r;
		p->nruns++;
		if (why[0] != '\0') {
			char fail[260];
			snprintf(fail, sizeof fail, "cannot read the feed token: %s", why);
			run_fail(r, fail);
			continue;
		}
		fetch(r);
	}
}

static void claim(struct puller *p)
{
	if (p->draining || p->claim_op != NULL || p->nruns >= p->cfg->pull_max_concurrent)
		return;
	char limit[16], lease[16];
	snprintf(limit, sizeof limit, "%u", p->cfg->pull_max_concurrent - p->nruns);
	/* Long enough for every page of a run at the per-page timeout. */
	snprintf(lease, sizeof lease, "%u", p->cfg->pull_timeout_ms / 1000 * 2 + 60);
	const char *params[] = {p->owner, limit, lease};
	p->claim_op = dbp_query(p->db, "SELECT c.urn, c.url, c.token, c.cursor, "
				       "array_to_string(s.pull_private_hosts, ' ') FROM "
				       "dualreg_pull_claim($1, $2::integer, $3::integer) c "
				       "JOIN schools s ON s.urn = c.urn",
				3, params, claimed, p);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	claim(arg);
}

struct puller *puller_new(struct event_base *base, struct db_pool *db, struct httpc *http,
			  const struct config *cfg)
{
	struct puller *p = xcalloc(1, sizeof *p);
	p->db = db;
	p->http = http;
	p->cfg = cfg;
	char host[64] = "host";
	gethostname(host, sizeof host - 1);
	snprintf(p->owner, sizeof p->owner, "%s:%d:%lx", host, (int)getpid(), (unsigned long)random());
	p->timer = event_new(base, -1, EV_PERSIST, tick, p);
	struct timeval tv = {1, 0};
	event_add(p->timer, &tv);
	return p;
}

void puller_drain(struct puller *p, void (*done)(void *), void *arg)
{
	p->draining = true;
	event_del(p->timer);
	if (p->claim_op != NULL) {
		db_op_cancel(p->claim_op);
		p->claim_op = NULL;
	}
	if (p->nruns == 0) {
		done(arg);
		return;
	}
	p->drained = done;
	p->drained_arg = arg;
}

void puller_free(struct puller *p)
{
	if (p == NULL)
		return;
	if (p->claim_op != NULL)
		db_op_cancel(p->claim_op);
	p->drained = NULL;
	while (p->runs != NULL) {
		struct pull_run *r = p->runs;
		if (r->xfer != NULL)
			httpc_cancel(r->xfer);
		if (r->op != NULL)
			db_op_cancel(r->op);
		run_free(r);
	}
	event_free(p->timer);
	free(p);
}
