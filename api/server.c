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
 * a connection read/write (idle) timeout, a deadline for a whole request to arrive and
 * a cap on open connections (both below: libevent 2.1 has neither), and a cap on
 * requests in progress (503 beyond it).
 *
 * What the transport leaves to us: a HEAD reply must carry no body (send_raw), a CONNECT
 * is refused as an ordinary request (gen_cb), the query string is parsed strictly once
 * per request (request.c), and a body is well-formed UTF-8 before any handler reads it
 * (body.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
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
#include <time.h>

#include "dualreg/api.h"
#include "dualreg/config.h"
#include "dualreg/log.h"
#include "dualreg/metrics.h"
#include "dualreg/xalloc.h"
#include "handlers.h"
#include "pipeline.h"
#include "problem.h"
#include "request.h"

struct conn;
TAILQ_HEAD(conn_list, conn);

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
	/* connections (see "Connections" below) */
	struct conn_list conns;	   /* adopted, open */
	struct conn_list adopting; /* accepted, not yet adopted */
	unsigned nconns;	   /* both lists */
	struct event ev_adopt;
	struct conn **by_fd; /* adopted connections by socket */
	size_t nby_fd;
	time_t refusal_logged; /* monotonic seconds of the last refusal logged */
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
 * Connections. libevent 2.1 has no connection limit and only a per-read timeout, so a
 * client trickling a byte at a time could hold a connection forever, and any number of
 * them could be open. Each accepted connection is tracked here, on a bufferevent made
 * for it (conn_bev_cb, evhttp_set_bevcb), from accept until evhttp frees it:
 *
 *  - the cap: a connection beyond [server] max_connections gets a short 503 and is
 *    closed at once;
 *  - the read deadline: a request's line, headers and body must all have arrived
 *    within [server] read_timeout of the connection's accept (the first request) or of
 *    the first byte of the request (later ones on a kept-alive connection); otherwise
 *    the socket is shut down, which evhttp reads as the end of the connection and frees
 *    it the usual way. The deadline stops when the request has arrived (gen_cb) and
 *    does not run while the connection waits idle for its next request (evhttp's own
 *    idle timeout applies then);
 *  - reply write tracking, for draining. evhttp_send_reply only queues the response; it
 *    reaches the socket on a later loop turn. Exiting as soon as the last handler
 *    replied would free the connection with the response still queued. So each reply is
 *    counted until evhttp reports it written (on_complete) or its connection goes away
 *    (closecb), whichever comes first; evhttp serves one request at a time per
 *    connection, so one count per connection is enough.
 *
 * evhttp calls the bevcb before it has made the connection object, so a new connection
 * is adopted a moment later (adopt_cb, in the same loop pass, before anything is read):
 * the connection is the argument evhttp gave the bufferevent's callbacks. A reference
 * held on the bufferevent until then keeps it valid even if evhttp gave it up at once
 * (its callbacks are then cleared). From adoption on, the connection's close callback
 * (evhttp calls it whenever it frees an incoming connection, evhttp_free included) ends
 * the tracking: every count is dropped exactly once, there.
 */
enum conn_state {
	CONN_READING,  /* a request is arriving: the read deadline runs */
	CONN_HANDLING, /* the request arrived: routed, handled, replied */
	CONN_IDLE,     /* kept alive, waiting for the next request's first byte */
};

struct conn {
	struct api_server *srv;
	struct bufferevent *bev;
	struct evhttp_connection *evcon; /* NULL until adopted */
	evutil_socket_t fd;
	enum conn_state state;
	bool writing; /* a reply counted in srv->nwriting */
	struct event ev_deadline;
	struct evbuffer_cb_entry *input_cb;
	TAILQ_ENTRY(conn) link;
};

/* Process-wide, like the other counters: read by /metrics (api_server_conn_stats). */
static struct api_conn_stats conn_stats;

static void maybe_drained(struct api_server *s)
{
	if (s->draining && s->host.ninflight == 0 && s->nwriting == 0)
		event_active(&s->ev_drained, EV_TIMEOUT, 1);
}

static void conn_arm_deadline(struct conn *c)
{
	unsigned ms = c->srv->env->cfg->read_timeout_ms;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	c->state = CONN_READING;
	evtimer_add(&c->ev_deadline, &tv);
}

/* The request did not arrive in time: shut the socket; evhttp then reads the end of
 * the connection and frees it (conn_closed_cb). */
static void conn_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct conn *c = arg;
	if (c->state != CONN_READING || c->evcon == NULL)
		return;
	conn_stats.read_timeouts++;
	log_debug("request not received in time, closing",
		  "read_timeout_ms=%u", c->srv->env->cfg->read_timeout_ms);
	shutdown(c->fd, SHUT_RDWR);
}

/* Bytes arrived: on an idle kept-alive connection they start the next request. */
static void conn_input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	(void)buf;
	struct conn *c = arg;
	if (info->n_added > 0 && c->state == CONN_IDLE)
		conn_arm_deadline(c);
}

static struct conn *conn_of(struct api_server *s, struct evhttp_connection *evcon)
{
	if (evcon == NULL)
		return NULL;
	evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
	if (fd < 0 || (size_t)fd >= s->nby_fd)
		return NULL;
	struct conn *c = s->by_fd[fd];
	return c != NULL && c->evcon == evcon ? c : NULL;
}

/* Ends the tracking of an adopted connection. */
static void conn_release(struct conn *c)
{
	struct api_server *s = c->srv;
	evtimer_del(&c->ev_deadline);
	if (c->input_cb != NULL)
		evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->input_cb);
	if (c->fd >= 0 && (size_t)c->fd < s->nby_fd && s->by_fd[c->fd] == c)
		s->by_fd[c->fd] = NULL;
	TAILQ_REMOVE(&s->conns, c, link);
	s->nconns--;
	conn_stats.open = s->nconns;
	bool was_writing = c->writing;
	free(c);
	if (was_writing) {
		s->nwriting--;
		maybe_drained(s);
	}
}

static void conn_closed_cb(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	conn_release(arg);
}

/* The reply of the connection's request was written: it may carry another request. */
static void write_done_cb(struct evhttp_request *req, void *arg)
{
	(void)req;
	struct conn *c = arg;
	struct api_server *s = c->srv;
	if (c->writing) {
		c->writing = false;
		s->nwriting--;
	}
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		conn_arm_deadline(c); /* the next request has begun already */
	else if (c->state != CONN_READING)
		c->state = CONN_IDLE;
	maybe_drained(s);
}

/* The answer to a connection beyond the cap, written straight to the new socket. */
#define REFUSAL_BODY                                                                        \
	"{\"type\":\"/problems/overloaded\",\"title\":\"Service Unavailable\",\"status\":503," \
	"\"detail\":\"too many connections open; retry\"}"
static const char refusal[] = "HTTP/1.1 503 Service Unavailable\r\n"
			      "Content-Type: application/problem+json\r\n"
			      "Cache-Control: no-store\r\n"
			      "Retry-After: 1\r\n"
			      "Connection: close\r\n"
			      "Content-Length: 118\r\n\r\n" REFUSAL_BODY;
_Static_assert(sizeof REFUSAL_BODY - 1 == 118, "Content-Length of the refusal");

static void adopt_cb(evutil_socket_t fd_unused, short what, void *arg)
{
	(void)fd_unused;
	(void)what;
	struct api_server *s = arg;
	struct conn *c;
	while ((c = TAILQ_FIRST(&s->adopting)) != NULL) {
		TAILQ_REMOVE(&s->adopting, c, link);
		struct bufferevent *bev = c->bev;
		bufferevent_data_cb readcb;
		void *cbarg = NULL;
		bufferevent_getcb(bev, &readcb, NULL, NULL, &cbarg);
		if (readcb == NULL || cbarg == NULL) {
			/* evhttp could not set the connection up and freed it already */
			evtimer_del(&c->ev_deadline);
			s->nconns--;
			conn_stats.open = s->nconns;
			free(c);
			bufferevent_decref(bev);
			continue;
		}
		struct evhttp_connection *evcon = cbarg;
		c->evcon = evcon;
		c->fd = bufferevent_getfd(bev);
		bufferevent_decref(bev); /* evhttp holds the bufferevent from here on */
		if (s->nconns > s->env->cfg->max_connections || c->fd < 0) {
			s->nconns--;
			conn_stats.open = s->nconns;
			conn_stats.refused++;
			struct timespec now;
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (s->refusal_logged == 0 || now.tv_sec - s->refusal_logged >= 60) {
				/* at most once a minute: a flood must not flood the log */
				s->refusal_logged = now.tv_sec;
				log_warn("connection limit reached, refusing connections",
					 "max_connections=%u refused_total=%llu",
					 s->env->cfg->max_connections, conn_stats.refused);
			}
			if (c->fd >= 0) {
				/* A fresh socket has room for this; if not, it is closed all the
				 * same. */
				ssize_t n = send(c->fd, refusal, sizeof refusal - 1,
						 MSG_NOSIGNAL | MSG_DONTWAIT);
				(void)n;
				shutdown(c->fd, SHUT_WR);
			}
			evtimer_del(&c->ev_deadline);
			free(c);
			/* No close callback is set yet: nothing else refers to it. */
			evhttp_connection_free(evcon);
			continue;
		}
		if ((size_t)c->fd >= s->nby_fd) {
			size_t n = s->nby_fd ? s->nby_fd : 64;
			while (n <= (size_t)c->fd)
				n *= 2;
			s->by_fd = xrealloc(s->by_fd, n * sizeof *s->by_fd);
			memset(s->by_fd + s->nby_fd, 0, (n - s->nby_fd) * sizeof *s->by_fd);
			s->nby_fd = n;
		}
		s->by_fd[c->fd] = c;
		TAILQ_INSERT_TAIL(&s->conns, c, link);
		evhttp_connection_set_closecb(evcon, conn_closed_cb, c);
		c->input_cb = evbuffer_add_cb(bufferevent_get_input(bev), conn_input_cb, c);
		/* the deadline has run since accept (conn_bev_cb) */
	}
}

/* evhttp's bevcb: a new connection was accepted (its socket is set afterwards). */
static struct bufferevent *conn_bev_cb(struct event_base *base, void *arg)
{
	struct api_server *s = arg;
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		return NULL; /* evhttp tries one of its own */
	bufferevent_incref(bev);
	struct conn *c = xcalloc(1, sizeof *c);
	c->srv = s;
	c->bev = bev;
	c->fd = -1;
	evtimer_assign(&c->ev_deadline, base, conn_deadline_cb, c);
	conn_arm_deadline(c);
	TAILQ_INSERT_TAIL(&s->adopting, c, link);
	s->nconns++;
	conn_stats.open = s->nconns;
	event_active(&s->ev_adopt, EV_TIMEOUT, 1);
	return bev;
}

/* The request has arrived whole: its connection's read deadline stops. */
static void conn_request_arrived(struct api_server *s, struct evhttp_request *req)
{
	struct conn *c = conn_of(s, evhttp_request_get_connection(req));
	if (c == NULL)
		return;
	evtimer_del(&c->ev_deadline);
	c->state = CONN_HANDLING;
}

void api_server_conn_stats(struct api_conn_stats *out)
{
	*out = conn_stats;
}

static struct api_server *the_server; /* for tracking replies sent outside an api_req */

static void track_write(struct evhttp_request *req)
{
	if (the_server == NULL)
		return;
	struct conn *c = conn_of(the_server, evhttp_request_get_connection(req));
	if (c == NULL)
		return; /* the client already left: evhttp frees the request on reply */
	if (!c->writing) {
		c->writing = true;
		the_server->nwriting++;
	}
	evhttp_request_set_on_complete_cb(req, write_done_cb, c);
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
	/* No answer is to be read as anything but its declared type. */
	if (evhttp_find_header(h, "X-Content-Type-Options") == NULL)
		evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
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
	conn_request_arrived(s, req);

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
	TAILQ_INIT(&s->conns);
	TAILQ_INIT(&s->adopting);
	event_assign(&s->ev_adopt, env->base, -1, 0, adopt_cb, s);
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
	evhttp_set_bevcb(s->http, conn_bev_cb, s);

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
	/* Frees every connection; their close callbacks end their tracking (and, not
	 * draining any more, do not activate ev_drained). */
	s->draining = false;
	evhttp_free(s->http);
	event_del(&s->ev_drained);
	/* Accepted in this loop pass and never adopted: evhttp has let them go, only
	 * the reference taken at accept remains. */
	struct conn *c;
	while ((c = TAILQ_FIRST(&s->adopting)) != NULL) {
		TAILQ_REMOVE(&s->adopting, c, link);
		evtimer_del(&c->ev_deadline);
		bufferevent_decref(c->bev);
		free(c);
	}
	event_del(&s->ev_adopt);
	free(s->by_fd);
	conn_stats.open = 0;
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
