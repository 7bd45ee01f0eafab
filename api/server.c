/*
 * server: the listener, evhttp on the daemon's loop. Owns the evhttp instance and its
 * limits, accepting and draining, tracking replies until they are written, the answers
 * given before any request exists (404, 405, OPTIONS, CONNECT, shutting down,
 * overloaded, and evhttp's own errors), and the one generic callback that routes every
 * request (router.c), starts its lifecycle (request.c) and its pipeline of stages
 * (pipeline.c), which ends in the handler. Shutdown removes the listening sockets,
 * answers requests that arrive on kept-alive connections with 503 + Connection: close,
 * and reports "drained" once the last request in progress has replied and every reply
 * has been written.
 *
 * Limits: header and body sizes from the config (evhttp enforces them while reading),
 * a connection read/write timeout, and a cap on requests in progress (503 beyond it),
 * since libevent 2.1 has no connection limit of its own.
 *
 * What the transport leaves to us: a HEAD reply must carry no body (send_raw), a CONNECT
 * is refused as an ordinary request (gen_cb), the query string is parsed strictly once
 * per request (request.c), and a body is well-formed UTF-8 before any handler reads it
 * (body.c).
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "dualreg/api.h"
#include "dualreg/config.h"
#include "dualreg/metrics.h"
#include "dualreg/xalloc.h"
#include "handlers.h"
#include "pipeline.h"
#include "problem.h"
#include "request.h"

struct api_server {
	struct req_host host; /* first: the requests in progress (request.c) */
	const struct api_env *env;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	uint16_t port;
	unsigned nwriting; /* replies not yet handed to the kernel */
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
	if (s->draining && s->host.ninflight == 0 && s->nwriting == 0)
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

static void drained_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct api_server *s = arg;
	if (s->drained != NULL)
		s->drained(s->drained_arg);
}

/* A request ended (request.c): the last one of a drain may have. */
static void request_ended(struct req_host *host)
{
	maybe_drained((struct api_server *)host);
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
	if (s->host.ninflight >= s->env->cfg->max_requests) {
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
					 is_connect ? "CONNECT" : router_method_name(method),
					 allow);
			send_problem_now(req, problem_new(405, NULL, NULL, detail));
		}
		return;
	case ROUTER_FOUND:
		break;
	}

	struct api_req *r = req_start(&s->host, req, route, &params, method);
	if (r != NULL)
		pipeline_start(r);
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
	s->host.env = env;
	TAILQ_INIT(&s->host.inflight);
	s->host.send = send_raw;
	s->host.ended = request_ended;
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
	return s->host.ninflight;
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
	req_abandon_all(&s->host);
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
