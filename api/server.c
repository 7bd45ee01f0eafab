/*
 * server: evhttp on the daemon's loop.
 *
 * One generic callback routes every request (router.c). Each request gets an api_req
 * with a deadline timer; api_reply_* sends, logs, and frees it, so a reply happens
 * exactly once. Shutdown removes the listening sockets, answers requests that arrive on
 * kept-alive connections with 503 + Connection: close, and reports "drained" once the
 * last request in progress has replied.
 *
 * Replies of requests holding an Idempotency-Key claim take a detour: the reply is kept
 * in the request's slot, recorded (idempotency.c), and only then sent. If the deadline
 * passes (or the database fails) while it is being recorded, the kept reply is sent.
 *
 * Limits: header and body sizes from the config (evhttp enforces them while reading),
 * a connection read/write timeout, and a cap on requests in progress (503 beyond it),
 * since libevent 2.1 has no connection limit of its own.
 *
 * What the transport leaves to us: a HEAD reply must carry no body (send_raw), a CONNECT
 * is refused as an ordinary request (gen_cb), the query string is parsed strictly once
 * per request (router_query_*), and a body is well-formed UTF-8 before any handler
 * reads it (api_json_body).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include "dualreg/api.h"
#include "dualreg/auth.h"
#include "dualreg/config.h"
#include "dualreg/db.h"
#include "dualreg/idempotency.h"
#include "dualreg/json_fields.h"
#include "dualreg/log.h"
#include "dualreg/problem.h"
#include "dualreg/status_cache.h"
#include "dualreg/metrics.h"
#include "dualreg/audit.h"
#include "dualreg/xalloc.h"
#include "handlers.h"

struct req_slot {
	struct api_req r;
	struct event ev_deadline;
	struct timespec started;
	bool timed_out;
	/* the handler's reply, kept while idempotency.c records it */
	bool reply_pending;
	int pend_status;
	char *pend_ctype, *pend_body;
	struct router_query query; /* parsed once, read by api_query_param */
	TAILQ_ENTRY(req_slot) link;
};
TAILQ_HEAD(req_list, req_slot);

struct api_server {
	const struct api_env *env;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	uint16_t port;
	struct req_list inflight;
	unsigned ninflight; /* requests whose handler has not replied */
	unsigned nwriting;  /* replies not yet handed to the kernel */
	bool draining;
	void (*drained)(void *);
	void *drained_arg;
	struct event ev_drained;
};

/* The limits quoted by evhttp's own error replies (see evhttp_send_error below). */
static size_t transport_max_body, transport_max_header;

static unsigned method_of(enum evhttp_cmd_type t)
{
	switch (t) {
	case EVHTTP_REQ_GET:
		return RM_GET;
	case EVHTTP_REQ_HEAD:
		return RM_HEAD;
	case EVHTTP_REQ_POST:
		return RM_POST;
	case EVHTTP_REQ_PUT:
		return RM_PUT;
	case EVHTTP_REQ_PATCH:
		return RM_PATCH;
	case EVHTTP_REQ_DELETE:
		return RM_DELETE;
	case EVHTTP_REQ_OPTIONS:
		return RM_OPTIONS;
	default:
		return RM_OTHER;
	}
}

static const char *method_name(unsigned m)
{
	switch (m) {
	case RM_GET:
		return "GET";
	case RM_HEAD:
		return "HEAD";
	case RM_POST:
		return "POST";
	case RM_PUT:
		return "PUT";
	case RM_PATCH:
		return "PATCH";
	case RM_DELETE:
		return "DELETE";
	case RM_OPTIONS:
		return "OPTIONS";
	default:
		return "OTHER";
	}
}

/*
 * Reply write tracking, for draining. evhttp_send_reply only queues the response; it
 * reaches the socket on a later loop turn. Exiting as soon as the last handler replied
 * would free the connection with the response still queued. So each reply is counted
 * until evhttp reports it written (on_complete) or its connection goes away (closecb,
 * e.g. the client left), whichever comes first; evhttp serves one request at a time per
 * connection, so one tracker per connection is enough.
 */
struct write_track {
	struct api_server *srv;
	struct evhttp_connection *evcon;
};

static void maybe_drained(struct api_server *s)
{
	if (s->draining && s->ninflight == 0 && s->nwriting == 0)
		event_active(&s->ev_drained, EV_TIMEOUT, 1);
}

static void write_track_end(struct write_track *t)
{
	struct api_server *s = t->srv;
	evhttp_connection_set_closecb(t->evcon, NULL, NULL);
	free(t);
	s->nwriting--;
	maybe_drained(s);
}

static void write_done_cb(struct evhttp_request *req, void *arg)
{
	(void)req;
	write_track_end(arg);
}

static void write_conn_closed_cb(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	write_track_end(arg);
}

static struct api_server *the_server; /* for tracking replies sent outside an api_req */

static void track_write(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	if (evcon == NULL || the_server == NULL)
		return; /* the client already left: evhttp frees the request on reply */
	struct write_track *t = xmalloc(sizeof *t);
	t->srv = the_server;
	t->evcon = evcon;
	the_server->nwriting++;
	evhttp_request_set_on_complete_cb(req, write_done_cb, t);
	evhttp_connection_set_closecb(evcon, write_conn_closed_cb, t);
}

/*
 * Sends status + body (may be NULL) with the given content type.
 *
 * A reply to HEAD has the headers GET would get, Content-Length included, and no body.
 * libevent 2.1 leaves Content-Length out of a HEAD reply but still writes any body it
 * is handed, so on a kept-alive connection those bytes would be read as the start of
 * the next response; the body is dropped here, where every reply passes (routed,
 * refused, evhttp's own errors).
 */
static void send_raw(struct evhttp_request *req, int status, const char *ctype, const char *body,
		     size_t len)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	if (body != NULL && evhttp_find_header(h, "Content-Type") == NULL)
		evhttp_add_header(h, "Content-Type", ctype);
	if (evhttp_find_header(h, "Cache-Control") == NULL)
		evhttp_add_header(h, "Cache-Control", "no-store");
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD && body != NULL) {
		char n[24];
		snprintf(n, sizeof n, "%zu", len);
		evhttp_remove_header(h, "Content-Length");
		evhttp_add_header(h, "Content-Length", n);
		body = NULL;
	}
	struct evbuffer *buf = NULL;
	if (body != NULL) {
		buf = evbuffer_new();
		evbuffer_add(buf, body, len);
	}
	track_write(req);
	evhttp_send_reply(req, status, http_reason(status), buf);
	if (buf != NULL)
		evbuffer_free(buf);
}

/* Replies outside any api_req (routing failures, refusals). Takes ownership. */
static void send_problem_now(struct evhttp_request *req, cJSON *problem)
{
	int status = cJSON_GetObjectItemCaseSensitive(problem, "status")->valueint;
	metrics_http(METRICS_MAX_ROUTES, status, 0);
	char *text = cJSON_PrintUnformatted(problem);
	cJSON_Delete(problem);
	send_raw(req, status, PROBLEM_CONTENT_TYPE, text, strlen(text));
	cJSON_free(text);
}

static double ms_since(const struct timespec *t0)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) * 1e3 + (double)(now.tv_nsec - t0->tv_nsec) / 1e6;
}

static void drained_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct api_server *s = arg;
	if (s->drained != NULL)
		s->drained(s->drained_arg);
}

/*
 * Drops whatever database work the request still has: a pooled statement is cancelled;
 * a held connection goes back to the pool, closed if a transaction may be open (its
 * pending callback is dropped with it). Handler state is undone by on_abort.
 */
static void req_release_work(struct api_req *r)
{
	if (r->op != NULL)
		db_op_cancel(r->op);
	r->op = NULL;
	if (r->conn != NULL)
		dbp_release(r->env->db, r->conn, true);
	r->conn = NULL;
	cJSON_Delete(r->abort_problem);
	r->abort_problem = NULL;
}

static void slot_free(struct req_slot *slot)
{
	idem_free(&slot->r);
	router_query_free(&slot->query);
	free(slot->pend_ctype);
	free(slot->pend_body);
	free(slot);
}

/* Ends a request: cancels leftover work, logs, frees; the reply was already sent. */
static void req_finish(struct req_slot *slot, int status)
{
	/* Anything this daemon writes makes cached status bodies stale at once. */
	if (slot->r.method & (RM_POST | RM_PUT | RM_PATCH | RM_DELETE))
		status_cache_invalidate(slot->r.env->status_cache);
	struct api_server *s = slot->r.srv;
	/* Every answered read of one pupil's data is recorded: who, which pupil, how. */
	if (status == 200 && slot->r.method == RM_GET && slot->r.key.id != 0 &&
	    strncmp(slot->r.route->pattern, "/v1/pupils/{upn}", 16) == 0)
		audit_read(slot->r.env->audit, slot->r.key.id, slot->r.key.name,
			   slot->r.params.value[0], slot->r.route->name);
	metrics_http((size_t)(slot->r.route - api_routes), status, ms_since(&slot->started) / 1e3);
	if (slot->r.env->cfg->log_access)
		log_info("request", "method=%s route=%s status=%d ms=%.2f key=%lld",
			 method_name(slot->r.method), slot->r.route->name, status,
			 ms_since(&slot->started), slot->r.key.id);
	req_release_work(&slot->r);
	evtimer_del(&slot->ev_deadline);
	TAILQ_REMOVE(&s->inflight, slot, link);
	s->ninflight--;
	slot_free(slot);
	maybe_drained(s);
}

void api_set_header(struct api_req *r, const char *name, const char *value)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
	evhttp_remove_header(h, name);
	evhttp_add_header(h, name, value);
}

/* Sends the reply kept while it was being recorded. */
static void send_pending(struct api_req *r)
{
	struct req_slot *slot = (struct req_slot *)r;
	send_raw(r->req, slot->pend_status, slot->pend_ctype, slot->pend_body,
		 slot->pend_body != NULL ? strlen(slot->pend_body) : 0);
	req_finish(slot, slot->pend_status);
}

/* Every reply of a request passes here (see the opening comment). */
static void reply_out(struct api_req *r, int status, const char *ctype, const char *body)
{
	struct req_slot *slot = (struct req_slot *)r;
	if (slot->reply_pending) {
		/* The deadline or a database failure while recording: the handler's reply
		 * stands. */
		send_pending(r);
		return;
	}
	if (idem_claimed(r)) {
		if (slot->timed_out) {
			idem_abandon(r);
		} else {
			slot->reply_pending = true;
			slot->pend_status = status;
			slot->pend_ctype = body != NULL ? xstrdup(ctype) : NULL;
			slot->pend_body = body != NULL ? xstrdup(body) : NULL;
			/* The handler is done: nothing of its own may run after this. */
			r->on_abort = NULL;
			r->state = NULL;
			req_release_work(r);
			idem_end(r, status, ctype, body, send_pending);
			return;
		}
	}
	send_raw(r->req, status, ctype, body, body != NULL ? strlen(body) : 0);
	req_finish(slot, status);
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
	struct req_slot *slot = arg;
	struct api_req *r = &slot->r;
	log_warn("request timed out", "route=%s ms=%.0f", r->route->name,
		 ms_since(&slot->started));
	slot->timed_out = true;
	req_release_work(r);
	if (slot->reply_pending) {
		send_pending(r); /* the handler's reply was being recorded */
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
	struct req_slot *slot = (struct req_slot *)r;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(&slot->ev_deadline, &tv);
}

static void run_handler(struct api_req *r)
{
	((api_handler_fn)r->route->handler)(r);
}

/* Authenticated: an Idempotency-Key (on POST) is dealt with before the handler. */
static void authenticated(struct api_req *r)
{
	if (idem_applies(r->method, r->route->access))
		idem_begin(r, run_handler);
	else
		run_handler(r);
}

const char *api_header(struct api_req *r, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(r->req), name);
}

int api_query_param(struct api_req *r, const char *name, char *buf, size_t buflen)
{
	const struct req_slot *slot = (const struct req_slot *)r;
	const char *v = router_query_find(&slot->query, name);
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

cJSON *api_json_body(struct api_req *r)
{
	const char *ct = api_header(r, "Content-Type");
	size_t ctlen = ct ? strcspn(ct, "; ") : 0;
	if (ct == NULL || ctlen != strlen("application/json") ||
	    strncasecmp(ct, "application/json", ctlen) != 0) {
		api_reply_error(r, 415, NULL, "send the body as Content-Type: application/json");
		return NULL;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
	size_t len = evbuffer_get_length(in);
	if (len == 0) {
		api_reply_error(r, 400, "invalid-json", "the request body is empty");
		return NULL;
	}
	const char *text = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (root == NULL) {
		size_t at = end != NULL && end >= text ? (size_t)(end - text) : 0;
		api_reply_error(r, 400, "invalid-json", "the body is not valid JSON (at byte %zu)",
				at);
		return NULL;
	}
	while (end != NULL && (size_t)(end - text) < len &&
	       (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
		end++;
	if (end != NULL && (size_t)(end - text) < len) {
		cJSON_Delete(root);
		api_reply_error(r, 400, "invalid-json",
				"unexpected data after the JSON value (at byte %zu)",
				(size_t)(end - text));
		return NULL;
	}
	/* cJSON decodes \u0000 into a NUL that silently ends the C string there ("ab\u0000cd"
	 * would be read as "ab"); no text field can hold it. The body parsed, so every
	 * backslash in it starts an escape inside a string: skipping each escaped character
	 * is enough to find them. */
	for (size_t i = 0; i + 1 < len; i++) {
		if (text[i] != '\\')
			continue;
		if (text[i + 1] == 'u' && i + 5 < len && strncmp(text + i + 2, "0000", 4) == 0) {
			cJSON_Delete(root);
			api_reply_error(r, 400, "invalid-json",
					"a string holds \\u0000 (at byte %zu), which no text can "
					"contain",
					i);
			return NULL;
		}
		i++;
	}
	/* JSON is UTF-8 (RFC 8259); cJSON copies other bytes through as they are. Checked
	 * here, once for every body, so that no member name or string of any handler
	 * reaches the database (which refuses it: a 500) or a reply without it. */
	char pointer[256];
	bool in_name = false;
	if (!jf_utf8_check(root, pointer, sizeof pointer, &in_name)) {
		cJSON_Delete(root);
		cJSON *p = problem_new(400, "invalid-json", NULL, "the body is not valid UTF-8");
		problem_add_error(p, pointer,
				  in_name ? "a member name of this object is not valid UTF-8"
					  : "not valid UTF-8");
		api_reply_problem(r, p);
		return NULL;
	}
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		api_reply_error(r, 422, "invalid-body", "the body must be a JSON object");
		return NULL;
	}
	return root;
}

/*
 * libevent 2.1 takes the reply to a CONNECT for the start of a tunnel: it writes the
 * body without a Content-Length and never closes the connection after it, whatever
 * Connection says, so the client waits for the end of a reply that never comes until
 * the idle timeout. dualregd is not a proxy: its refusal is sent as the reply to an
 * ordinary request (the type only steers how evhttp frames and ends the reply) on a
 * connection that then closes.
 */
static void connect_as_plain_request(struct evhttp_request *req)
{
	if (evhttp_request_get_command(req) != EVHTTP_REQ_CONNECT)
		return;
	req->type = EVHTTP_REQ_GET;
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_remove_header(h, "Connection");
	evhttp_add_header(h, "Connection", "close");
}

/* Routes one request; every reply path ends in api_reply_* or send_problem_now. */
static void gen_cb(struct evhttp_request *req, void *arg)
{
	struct api_server *s = arg;
	unsigned method = method_of(evhttp_request_get_command(req));
	bool is_connect = evhttp_request_get_command(req) == EVHTTP_REQ_CONNECT;
	connect_as_plain_request(req); /* before any reply */

	if (s->draining) {
		evhttp_remove_header(evhttp_request_get_output_headers(req), "Connection");
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
		send_problem_now(req, problem_new(503, "shutting-down", NULL,
						  "the server is shutting down; retry"));
		return;
	}
	if (s->ninflight >= s->env->cfg->max_requests) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
		send_problem_now(req, problem_new(503, "overloaded", NULL,
						  "too many requests in progress; retry"));
		return;
	}
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	if (path == NULL || path[0] == '\0')
		path = "/";
	/* A CONNECT target is parsed as an authority (host:port), leaving no path; one that
	 * is a path ("CONNECT /v1/me") is routed like any other, for a 405 and its Allow. */
	char *connect_path = NULL;
	if (is_connect) {
		const char *target = evhttp_request_get_uri(req);
		if (target != NULL && target[0] == '/')
			connect_path = xstrndup(target, strcspn(target, "?#"));
		path = connect_path;
	}

	const struct router_route *route = NULL;
	struct router_params params;
	unsigned allowed;
	char allow[96];
	enum router_outcome outcome;
	if (path == NULL) {
		/* CONNECT host:port: no resource here is a tunnel, and none allows it. */
		outcome = ROUTER_BAD_METHOD;
		allowed = 0;
	} else {
		outcome = router_match(api_routes, api_nroutes, method, path, &route, &params,
				       &allowed);
	}
	free(connect_path);
	switch (outcome) {
	case ROUTER_NOT_FOUND:
		send_problem_now(req, problem_new(404, NULL, NULL, "no such resource"));
		return;
	case ROUTER_BAD_METHOD:
		router_allow_header(allowed, allow, sizeof allow);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
		if (method == RM_OPTIONS) {
			send_raw(req, 204, NULL, NULL, 0);
			return;
		}
		{
			char detail[160];
			if (allowed == 0)
				snprintf(detail, sizeof detail,
					 "CONNECT is not supported: this server is not a proxy");
			else
				snprintf(detail, sizeof detail, "%s is not allowed here; allowed: %s",
					 is_connect ? "CONNECT" : method_name(method), allow);
			send_problem_now(req, problem_new(405, NULL, NULL, detail));
		}
		return;
	case ROUTER_FOUND:
		break;
	}

	struct req_slot *slot = xcalloc(1, sizeof *slot);
	clock_gettime(CLOCK_MONOTONIC, &slot->started);
	struct api_req *r = &slot->r;
	r->srv = s;
	r->env = s->env;
	r->req = req;
	r->route = route;
	r->params = params;
	r->method = method;
	TAILQ_INSERT_TAIL(&s->inflight, slot, link);
	s->ninflight++;
	unsigned ms = s->env->cfg->request_timeout_ms;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_assign(&slot->ev_deadline, s->env->base, deadline_cb, slot);
	evtimer_add(&slot->ev_deadline, &tv);
	char why[512], bad_name[64 * 4 + 1];
	if (router_query_parse(uri ? evhttp_uri_get_query(uri) : NULL, &slot->query, why,
			       sizeof why, bad_name, sizeof bad_name) != 0) {
		cJSON *p = problem_new(400, "invalid-query", NULL, why);
		char pointer[sizeof bad_name * 2 + 8] = "/query";
		if (bad_name[0] != '\0') {
			strcat(pointer, "/");
			jf_pointer_token(pointer + 7, sizeof pointer - 7, bad_name);
		}
		problem_add_error(p, pointer, why);
		api_reply_problem(r, p);
		return;
	}
	if (route->access == ROUTE_PUBLIC)
		run_handler(r);
	else
		auth_check(r, authenticated);
}

struct api_server *api_server_new(const struct api_env *env, char *err, size_t errlen)
{
	const struct config *cfg = env->cfg;
	struct api_server *s = xcalloc(1, sizeof *s);
	s->env = env;
	the_server = s;
	const char *names[METRICS_MAX_ROUTES];
	for (size_t i = 0; i < api_nroutes && i < METRICS_MAX_ROUTES; i++)
		names[i] = api_routes[i].name;
	metrics_set_routes(names, api_nroutes);
	TAILQ_INIT(&s->inflight);
	event_assign(&s->ev_drained, env->base, -1, 0, drained_cb, s);
	s->http = evhttp_new(env->base);
	if (s->http == NULL) {
		snprintf(err, errlen, "cannot create the HTTP server");
		free(s);
		return NULL;
	}
	transport_max_body = cfg->max_body_size;
	transport_max_header = cfg->max_header_size;
	evhttp_set_max_headers_size(s->http, (ev_ssize_t)cfg->max_header_size);
	evhttp_set_max_body_size(s->http, (ev_ssize_t)cfg->max_body_size);
	/* Lingering close lets a client still sending an oversize body read our 413. */
	evhttp_set_flags(s->http, EVHTTP_SERVER_LINGERING_CLOSE);
	struct timeval io_timeout = {cfg->request_timeout_ms / 1000,
				     (cfg->request_timeout_ms % 1000) * 1000};
	evhttp_set_timeout_tv(s->http, &io_timeout);
	/* Accept every method evhttp knows so that routing, not evhttp, answers 405. */
	evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
						EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
						EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
						EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(s->http, gen_cb, s);

	s->bound = evhttp_bind_socket_with_handle(s->http, cfg->listen_host, cfg->listen_port);
	if (s->bound == NULL) {
		snprintf(err, errlen, "cannot listen on %s:%u: %s", cfg->listen_host,
			 cfg->listen_port, strerror(errno));
		evhttp_free(s->http);
		free(s);
		return NULL;
	}
	evutil_socket_t fd = evhttp_bound_socket_get_fd(s->bound);
	/* Accepted sockets inherit TCP_NODELAY from the listener on Linux: small JSON
	 * replies go out at once instead of waiting on Nagle + delayed ACK. */
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET)
			s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			s->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	return s;
}

uint16_t api_server_port(const struct api_server *s)
{
	return s->port;
}

unsigned api_server_inflight(const struct api_server *s)
{
	return s->ninflight;
}

void api_server_drain(struct api_server *s, void (*drained)(void *), void *arg)
{
	s->drained = drained;
	s->drained_arg = arg;
	if (!s->draining && s->bound != NULL) {
		evhttp_del_accept_socket(s->http, s->bound);
		s->bound = NULL;
	}
	s->draining = true;
	maybe_drained(s);
}

void api_server_free(struct api_server *s)
{
	if (s == NULL)
		return;
	struct req_slot *slot;
	while ((slot = TAILQ_FIRST(&s->inflight)) != NULL) {
		/* Abandoned by shutdown: undo its work; evhttp_free frees the request. */
		req_release_work(&slot->r);
		if (slot->r.on_abort != NULL)
			slot->r.on_abort(&slot->r);
		evtimer_del(&slot->ev_deadline);
		TAILQ_REMOVE(&s->inflight, slot, link);
		slot_free(slot);
	}
	event_del(&s->ev_drained);
	/* Frees every connection; their close callbacks release the write trackers. */
	evhttp_free(s->http);
	the_server = NULL;
	free(s);
}

/*
 * evhttp in libevent 2.1 answers some requests itself, before any callback of ours runs:
 * an oversize body or header block (413), a malformed request (400), an unsupported
 * method (501). It does so through evhttp_send_error, which writes an HTML page, and 2.1
 * has no hook to change that (evhttp_set_errorcb arrived in 2.2).
 *
 * dualregd defines evhttp_send_error itself. libevent calls it through its PLT, so the
 * dynamic linker binds those calls to this definition (the executable comes first in
 * symbol lookup), and every reply the API sends, including these, is problem+json.
 * The integration tests check the 413 and 400 bodies, so a libevent build that stopped
 * honouring this would fail them rather than silently regress.
 */
void evhttp_send_error(struct evhttp_request *req, int error, const char *reason)
{
	char detail[256];
	(void)reason;
	if (error == 413)
		snprintf(detail, sizeof detail,
			 "the request is larger than this server accepts (body at most %zu "
			 "bytes, headers at most %zu bytes)",
			 transport_max_body, transport_max_header);
	else if (error == 400)
		snprintf(detail, sizeof detail, "the HTTP request is malformed");
	else
		snprintf(detail, sizeof detail, "%s", http_reason(error));
	/* A request line too broken to parse leaves the version at 0.0; answer as 1.1,
	 * as libevent's own error page does. */
	if (req->major == 0 && req->minor == 0) {
		req->major = 1;
		req->minor = 1;
	}
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_clear_headers(h);
	evhttp_add_header(h, "Connection", "close");
	connect_as_plain_request(req);
	send_problem_now(req, problem_new(error, NULL, NULL, detail));
}
