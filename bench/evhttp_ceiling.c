/*
 * evhttp_ceiling: the "raw" HTTP figure `make bench` compares dualregd's status reads
 * against: one libevent loop, evhttp, answering every GET with the same JSON body held
 * in memory (its size given on the command line to match a real status body).
 * With "hang" it never answers at all: a webhook endpoint that hangs.
 *   evhttp_ceiling PORT BODY_BYTES [hang]
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static char *body;
static size_t body_len;
static int hang;

static void cb(struct evhttp_request *req, void *arg)
{
	(void)arg;
	if (hang)
		return; /* the request is freed with its connection when the client gives up */
	struct evbuffer *out = evbuffer_new();
	evbuffer_add_reference(out, body, body_len, NULL, NULL);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "application/json");
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}

static void stop_cb(evutil_socket_t s, short w, void *arg)
{
	(void)s;
	(void)w;
	event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv)
{
	if (argc != 3 && argc != 4)
		return 2;
	hang = argc == 4 && strcmp(argv[3], "hang") == 0;
	body_len = (size_t)atol(argv[2]);
	body = malloc(body_len + 1);
	memset(body, 'x', body_len);
	if (body_len >= 2) {
		body[0] = '"';
		body[body_len - 1] = '"';
	}
	struct event_base *base = event_base_new();
	struct evhttp *http = evhttp_new(base);
	evhttp_set_gencb(http, cb, NULL);
	struct evhttp_bound_socket *h = evhttp_bind_socket_with_handle(http, "127.0.0.1",
								       (unsigned short)atoi(argv[1]));
	if (h == NULL)
		return 1;
	int one = 1;
	setsockopt(evhttp_bound_socket_get_fd(h), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct event *term = evsignal_new(base, SIGTERM, stop_cb, base);
	event_add(term, NULL);
	event_base_dispatch(base);
	event_free(term);
	evhttp_free(http);
	event_base_free(base);
	free(body);
	return 0;
}
