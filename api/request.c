/*
 * request: the lifecycle of a routed request, from the listener handing it over
 * (req_start) to its one reply.
 *
 * Each request gets a slot (struct req, request.h) with a deadline timer; api_reply_*
 * sends, and the end of the request logs the access line, counts it in the metrics,
 * records an audited read (ROUTE_AUDIT_READ), forgets cached status bodies after a
 * write (ROUTE_INVALIDATES_STATUS) and frees the slot, so a reply happens exactly once.
 * If the deadline passes first, the request's work is cancelled and it is answered 503.
 *
 * Replies of requests whose reply hook holds them (an Idempotency-Key claim) take a
 * detour: the reply is kept in the slot, recorded by the hook, and only then sent. If
 * the deadline passes (or the database fails) while it is being recorded, the kept
 * reply is sent.
 */
#include "request.h"

#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/audit.h"
#include "dualreg/config.h"
#include "dualreg/db.h"
#include "dualreg/log.h"
#include "dualreg/metrics.h"
#include "dualreg/status_cache.h"
#include "dualreg/xalloc.h"
#include "handlers.h"
#include "json_fields.h"
#include "problem.h"

static double ms_since(const struct timespec *t0)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) * 1e3 + (double)(now.tv_nsec - t0->tv_nsec) / 1e6;
}

/*
 * Drops whatever database work the request still has: a pooled statement is cancelled;
 * a held connection goes back to the pool, closed if a transaction may be open (its
 * pending callback is dropped with it). Handler state is undone by on_abort.
 */
static void release_work(struct req *q)
{
	struct api_req *r = &q->pub;
	if (r->op != NULL)
		db_op_cancel(r->op);
	r->op = NULL;
	if (r->conn != NULL)
		dbp_release(r->env->db, r->conn, true);
	r->conn = NULL;
	cJSON_Delete(q->abort_problem);
	q->abort_problem = NULL;
}

static void slot_free(struct req *q)
{
	if (q->reply_hook != NULL)
		q->reply_hook->release(&q->pub);
	router_query_free(&q->query);
	free(q->kept_ctype);
	free(q->kept_body);
	free(q);
}

/* Ends a request: what its route asks for, the access log and metrics, then frees it;
 * the reply was already sent. */
static void req_finish(struct req *q, int status)
{
	struct api_req *r = &q->pub;
	unsigned flags = r->route->flags;
	/* Anything this daemon writes makes cached status bodies stale at once. */
	if (flags & ROUTE_INVALIDATES_STATUS)
		status_cache_invalidate(r->env->status_cache);
	/* Every answered read of one pupil's data is recorded: who, which pupil, how. A
	 * HEAD or a 304 tells the caller the data is there (and unchanged) just as well. */
	if ((flags & ROUTE_AUDIT_READ) && (status == 200 || status == 304) && r->key.id != 0)
		audit_read(r->env->audit,
			   &(struct audit_reader){r->key.id, r->key.name, r->key.urn},
			   r->params.value[0], r->route->name);
	metrics_http((size_t)(r->route - api_routes), status, ms_since(&q->started) / 1e3);
	if (r->env->cfg->log_access)
		log_info("request", "method=%s route=%s status=%d ms=%.2f key=%lld",
			 router_method_name(r->method), r->route->name, status,
			 ms_since(&q->started), r->key.id);
	release_work(q);
	evtimer_del(&q->ev_deadline);
	struct req_host *host = q->host;
	TAILQ_REMOVE(&host->inflight, q, link);
	host->ninflight--;
	slot_free(q);
	host->ended(host);
}

static void send_now(struct req *q, int status, const char *ctype, const char *body)
{
	q->host->send(q->pub.req, status, ctype, body, body != NULL ? strlen(body) : 0);
	req_finish(q, status);
}

void req_send_kept(struct api_req *r)
{
	struct req *q = req_of(r);
	send_now(q, q->kept_status, q->kept_ctype, q->kept_body);
}

/* Every reply of a request passes here (see the opening comment). */
static void reply_out(struct api_req *r, int status, const char *ctype, const char *body)
{
	struct req *q = req_of(r);
	if (q->reply_kept) {
		/* The deadline or a database failure while recording: the handler's reply
		 * stands. */
		req_send_kept(r);
		return;
	}
	const struct req_reply_hook *hook = q->reply_hook;
	if (hook != NULL && hook->holds(r)) {
		if (q->timed_out) {
			hook->abandon(r);
		} else {
			q->reply_kept = true;
			q->kept_status = status;
			q->kept_ctype = body != NULL ? xstrdup(ctype) : NULL;
			q->kept_body = body != NULL ? xstrdup(body) : NULL;
			/* The handler is done: nothing of its own may run after this. */
			r->on_abort = NULL;
			r->state = NULL;
			release_work(q);
			hook->record(r, status, ctype, body);
			return;
		}
	}
	send_now(q, status, ctype, body);
}

void api_set_header(struct api_req *r, const char *name, const char *value)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
	evhttp_remove_header(h, name);
	evhttp_add_header(h, name, value);
}

void api_reply_raw(struct api_req *r, int status, const char *ctype, const char *body)
{
	reply_out(r, status, ctype, body);
}

void api_reply_json(struct api_req *r, int status, cJSON *body)
{
	char *text = body != NULL ? cJSON_PrintUnformatted(body) : NULL;
	cJSON_Delete(body);
	reply_out(r, status, "application/json", text);
	cJSON_free(text);
}

void api_reply_problem(struct api_req *r, cJSON *problem)
{
	int status = cJSON_GetObjectItemCaseSensitive(problem, "status")->valueint;
	char *text = cJSON_PrintUnformatted(problem);
	cJSON_Delete(problem);
	reply_out(r, status, PROBLEM_CONTENT_TYPE, text);
	cJSON_free(text);
}

void api_reply_error(struct api_req *r, int status, const char *slug, const char *fmt, ...)
{
	char detail[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	api_reply_problem(r, problem_new(status, slug, NULL, detail));
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct req *q = arg;
	struct api_req *r = &q->pub;
	log_warn("request timed out", "route=%s ms=%.0f", r->route->name, ms_since(&q->started));
	q->timed_out = true;
	release_work(q);
	if (q->reply_kept) {
		req_send_kept(r); /* the handler's reply was being recorded */
		return;
	}
	if (r->on_abort != NULL)
		r->on_abort(r);
	r->on_abort = NULL;
	api_set_header(r, "Retry-After", "1");
	api_reply_error(r, 503, "timeout", "the request did not complete within %u ms",
			r->env->cfg->request_timeout_ms);
}

/* evhttp's connection timeout does not run while a request is being handled (reading
 * is paused until the reply), so moving the request's own deadline is enough. */
void api_extend_deadline(struct api_req *r, unsigned ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(&req_of(r)->ev_deadline, &tv);
}

const char *api_header(struct api_req *r, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(r->req), name);
}

int api_query_param(struct api_req *r, const char *name, char *buf, size_t buflen)
{
	const char *v = router_query_find(&req_of(r)->query, name);
	if (v == NULL)
		return 0; /* buf keeps the caller's default */
	size_t len = strlen(v);
	if (len >= buflen) {
		buf[0] = '\0';
		return -1; /* never cut: "0000005xyz" cut to "0000005" would pass as 5 */
	}
	memcpy(buf, v, len + 1);
	return 1;
}

struct api_req *req_start(struct req_host *host, struct evhttp_request *req,
			  const struct router_route *route, const struct router_params *params,
			  unsigned method)
{
	const struct api_env *env = host->env;
	struct req *q = xcalloc(1, sizeof *q);
	clock_gettime(CLOCK_MONOTONIC, &q->started);
	q->host = host;
	struct api_req *r = &q->pub;
	r->env = env;
	r->req = req;
	r->route = route;
	r->params = *params;
	r->method = method;
	TAILQ_INSERT_TAIL(&host->inflight, q, link);
	host->ninflight++;
	unsigned ms = env->cfg->request_timeout_ms;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_assign(&q->ev_deadline, env->base, deadline_cb, q);
	evtimer_add(&q->ev_deadline, &tv);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	char why[512], bad_name[64 * 4 + 1];
	if (router_query_parse(uri ? evhttp_uri_get_query(uri) : NULL, &q->query, why,
			       sizeof why, bad_name, sizeof bad_name) != 0) {
		cJSON *p = problem_new(400, "invalid-query", NULL, why);
		char pointer[sizeof bad_name * 2 + 8] = "/query";
		if (bad_name[0] != '\0') {
			strcat(pointer, "/");
			jf_pointer_token(pointer + 7, sizeof pointer - 7, bad_name);
		}
		problem_add_error(p, pointer, why);
		api_reply_problem(r, p);
		return NULL;
	}
	/* A read of one pupil's data is answered only if it can be recorded. */
	if ((route->flags & ROUTE_AUDIT_READ) && reads_audit_refused(r))
		return NULL;
	return r;
}

void req_abandon_all(struct req_host *host)
{
	struct req *q;
	while ((q = TAILQ_FIRST(&host->inflight)) != NULL) {
		release_work(q);
		if (q->pub.on_abort != NULL)
			q->pub.on_abort(&q->pub);
		evtimer_del(&q->ev_deadline);
		TAILQ_REMOVE(&host->inflight, q, link);
		host->ninflight--;
		slot_free(q);
	}
}
