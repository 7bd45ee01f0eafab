/* th_server: a loopback HTTP server in a thread, for tests (see th_server.h). */
#include "th_server.h"

#include <arpa/inet.h>
#include <check.h>
#include <ctype.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <netinet/in.h>
#include <unistd.h>

#include "th_contract.h"

struct tick_arg {
	struct event_base *base;
	struct th_server *server;
};

static void stop_check_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct tick_arg *t = arg;
	if (atomic_load(&t->server->stop))
		event_base_loopbreak(t->base);
}

/* Every webhook the daemon sends (a POST with webhook-id) is checked against the
 * contract's webhooks before the test's handler sees it. */
static void contract_then_handle(struct evhttp_request *req, void *arg)
{
	struct th_server *s = arg;
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	if (evhttp_request_get_command(req) == EVHTTP_REQ_POST &&
	    evhttp_find_header(in, "webhook-id") != NULL) {
		cJSON *headers = cJSON_CreateObject();
		for (struct evkeyval *h = in->tqh_first; h != NULL; h = h->next.tqe_next) {
			char name[128];
			snprintf(name, sizeof name, "%s", h->key);
			for (char *c = name; *c != '\0'; c++)
				*c = (char)tolower((unsigned char)*c);
			cJSON_AddStringToObject(headers, name, h->value);
		}
		struct evbuffer *body = evhttp_request_get_input_buffer(req);
		size_t len = evbuffer_get_length(body);
		th_contract_webhook(headers, (const char *)evbuffer_pullup(body, -1), len);
		cJSON_Delete(headers);
	}
	s->handler(req, NULL);
}

static void *server_main(void *arg)
{
	struct th_server *s = arg;
	struct event_base *b = event_base_new();
	struct evhttp *http = evhttp_new(b);
	if (s->bevcb != NULL)
		evhttp_set_bevcb(http, s->bevcb, NULL);
	evhttp_set_gencb(http, contract_then_handle, s);
	struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
	struct sockaddr_in sa;
	socklen_t sl = sizeof sa;
	getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &sl);
	s->port = ntohs(sa.sin_port);
	atomic_store(&s->bound, 1);
	struct tick_arg t = {b, s};
	struct event *tick = event_new(b, -1, EV_PERSIST, stop_check_cb, &t);
	struct timeval tv = {0, 20000};
	event_add(tick, &tv);
	event_base_dispatch(b);
	event_free(tick);
	evhttp_free(http);
	event_base_free(b);
	return NULL;
}

void th_server_start(struct th_server *s)
{
	atomic_store(&s->stop, false);
	atomic_store(&s->bound, 0);
	ck_assert_int_eq(pthread_create(&s->thread, NULL, server_main, s), 0);
	while (!atomic_load(&s->bound))
		usleep(1000);
}

void th_server_stop(struct th_server *s)
{
	atomic_store(&s->stop, true);
	pthread_join(s->thread, NULL);
}
