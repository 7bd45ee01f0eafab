/*
 * evhttp_ceiling: the "raw" HTTP figure `make bench` compares dualregd's status reads
 * against: one libevent loop, evhttp, answering every request with the same JSON body
 * held in memory (its size given on the command line to match a real status body).
 * It is also the webhook sink of the delivery figures:
 *   hang           never answers at all: a webhook endpoint that hangs;
 *   tls CERT KEY   serves HTTPS (bufferevent_openssl) with that certificate;
 *   stamps FILE    records each request's arrival: on SIGTERM writes one line per
 *                  request to FILE, "<webhook-id header or -> <unix time, s>", and prints
 *                  "requests=N first=T last=T" (unix times of the first and last).
 *   evhttp_ceiling PORT BODY_BYTES [hang] [tls CERT KEY] [stamps FILE]
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static char *body;
static size_t body_len;
static int hang;
static SSL_CTX *tls;
static struct evbuffer *stamps; /* NULL: not recorded */
static unsigned long requests;
static double first_s, last_s;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void cb(struct evhttp_request *req, void *arg)
{
	(void)arg;
	if (stamps != NULL) {
		double t = now_s();
		if (requests++ == 0)
			first_s = t;
		last_s = t;
		const char *id = evhttp_find_header(evhttp_request_get_input_headers(req),
						    "webhook-id");
		evbuffer_add_printf(stamps, "%.64s %.6f\n", id && !strchr(id, ' ') ? id : "-", t);
	}
	if (hang)
		return; /* the request is freed with its connection when the client gives up */
	struct evbuffer *out = evbuffer_new();
	evbuffer_add_reference(out, body, body_len, NULL, NULL);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "application/json");
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}

static struct bufferevent *tls_bev(struct event_base *base, void *arg)
{
	(void)arg;
	return bufferevent_openssl_socket_new(base, -1, SSL_new(tls), BUFFEREVENT_SSL_ACCEPTING,
					      BEV_OPT_CLOSE_ON_FREE);
}

static void stop_cb(evutil_socket_t s, short w, void *arg)
{
	(void)s;
	(void)w;
	event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	const char *cert = NULL, *key = NULL, *stamps_file = NULL;
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "hang") == 0) {
			hang = 1;
		} else if (strcmp(argv[i], "tls") == 0 && i + 2 < argc) {
			cert = argv[++i];
			key = argv[++i];
		} else if (strcmp(argv[i], "stamps") == 0 && i + 1 < argc) {
			stamps_file = argv[++i];
		} else {
			return 2;
		}
	}
	body_len = (size_t)atol(argv[2]);
	body = malloc(body_len + 1);
	memset(body, 'x', body_len);
	if (body_len >= 2) {
		body[0] = '"';
		body[body_len - 1] = '"';
	}
	if (stamps_file != NULL)
		stamps = evbuffer_new();
	struct event_base *base = event_base_new();
	struct evhttp *http = evhttp_new(base);
	evhttp_set_gencb(http, cb, NULL);
	if (cert != NULL) {
		tls = SSL_CTX_new(TLS_server_method());
		if (SSL_CTX_use_certificate_chain_file(tls, cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(tls, key, SSL_FILETYPE_PEM) != 1) {
			ERR_print_errors_fp(stderr);
			return 1;
		}
		evhttp_set_bevcb(http, tls_bev, NULL);
	}
	struct evhttp_bound_socket *h = evhttp_bind_socket_with_handle(http, "127.0.0.1",
								       (unsigned short)atoi(argv[1]));
	if (h == NULL)
		return 1;
	int one = 1;
	setsockopt(evhttp_bound_socket_get_fd(h), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct event *term = evsignal_new(base, SIGTERM, stop_cb, base);
	event_add(term, NULL);
	event_base_dispatch(base);
	if (stamps != NULL) {
		FILE *f = fopen(stamps_file, "w");
		if (f != NULL) {
			size_t n = evbuffer_get_length(stamps);
			fwrite(evbuffer_pullup(stamps, (ev_ssize_t)n), 1, n, f);
			fclose(f);
		}
		printf("requests=%lu first=%.6f last=%.6f\n", requests, first_s, last_s);
		evbuffer_free(stamps);
	}
	event_free(term);
	evhttp_free(http);
	event_base_free(base);
	if (tls != NULL)
		SSL_CTX_free(tls);
	free(body);
	return 0;
}
