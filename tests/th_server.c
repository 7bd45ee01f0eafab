/* th_server: a loopback HTTP server in a thread, for tests (see th_server.h). */
#include "th_server.h"

#include <arpa/inet.h>
#include <check.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <unistd.h>

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

static void *server_main(void *arg)
{
	struct th_server *s = arg;
	struct event_base *b = event_base_new();
	struct evhttp *http = evhttp_new(b);
	if (s->bevcb != NULL)
		evhttp_set_bevcb(http, s->bevcb, NULL);
	evhttp_set_gencb(http, s->handler, NULL);
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
