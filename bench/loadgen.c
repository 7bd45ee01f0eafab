/*
 * loadgen: a small HTTP/1.1 load generator for `make bench`, on libevent's evhttp client.
 * Keeps C keep-alive connections busy with requests read from a file, one per line:
 *   METHOD PATH [BODY]        (BODY: the rest of the line, sent as application/json)
 * and prints one line of figures:
 *   requests=N errors=E seconds=S rps=R p50_ms=X p99_ms=Y
 * -1 sends every line exactly once (for writes that must not repeat); otherwise the
 * lines are cycled until -d seconds have passed.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct line {
	enum evhttp_cmd_type method;
	char *path;
	char *body;
	size_t body_len;
};

struct conn {
	struct evhttp_connection *evcon;
	double started;
	const char *path; /* of the request in flight */
};

static struct line *lines;
static size_t nlines, next_line;
static bool once;
static double stop_at;
static const char *auth_header;
static const char *host = "127.0.0.1";
static struct event_base *base;
static double *lat;
static size_t nlat, cap_lat;
static unsigned long nreq, nerr, inflight;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void send_next(struct conn *c);

static void done_cb(struct evhttp_request *req, void *arg)
{
	struct conn *c = arg;
	inflight--;
	double t = now_s();
	int code = req ? evhttp_request_get_response_code(req) : 0;
	if (code < 200 || code >= 300) {
		/* the first few, so that a failing run says what failed */
		if (nerr < 5)
			fprintf(stderr, "loadgen: status %d for %s\n", code, c->path);
		nerr++;
	}
	nreq++;
	if (nlat == cap_lat) {
		cap_lat = cap_lat ? cap_lat * 2 : 65536;
		lat = realloc(lat, cap_lat * sizeof *lat);
	}
	lat[nlat++] = (t - c->started) * 1000.0;
	send_next(c);
}

static void send_next(struct conn *c)
{
	if (now_s() >= stop_at || (once && next_line >= nlines)) {
		if (inflight == 0)
			event_base_loopexit(base, NULL);
		return;
	}
	struct line *l = &lines[next_line++ % nlines];
	struct evhttp_request *req = evhttp_request_new(done_cb, c);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", host);
	if (auth_header != NULL)
		evhttp_add_header(h, "Authorization", auth_header);
	if (l->body != NULL) {
		evhttp_add_header(h, "Content-Type", "application/json");
		evbuffer_add(evhttp_request_get_output_buffer(req), l->body, l->body_len);
	}
	c->started = now_s();
	c->path = l->path;
	inflight++;
	if (evhttp_make_request(c->evcon, req, l->method, l->path) != 0) {
		inflight--;
		nerr++;
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void load_lines(const char *file)
{
	FILE *f = fopen(file, "r");
	if (f == NULL) {
		perror(file);
		exit(2);
	}
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n;
	size_t capl = 0;
	while ((n = getline(&buf, &cap, f)) > 0) {
		while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
			buf[--n] = '\0';
		if (n == 0)
			continue;
		if (nlines == capl) {
			capl = capl ? capl * 2 : 1024;
			lines = realloc(lines, capl * sizeof *lines);
		}
		struct line *l = &lines[nlines++];
		char *sp = strchr(buf, ' ');
		if (sp == NULL) {
			fprintf(stderr, "bad line: %s\n", buf);
			exit(2);
		}
		*sp = '\0';
		l->method = strcmp(buf, "POST") == 0 ? EVHTTP_REQ_POST : EVHTTP_REQ_GET;
		char *path = sp + 1;
		char *sp2 = strchr(path, ' ');
		l->body = NULL;
		l->body_len = 0;
		if (sp2 != NULL) {
			*sp2 = '\0';
			l->body = strdup(sp2 + 1);
			l->body_len = strlen(l->body);
		}
		l->path = strdup(path);
	}
	free(buf);
	fclose(f);
}

int main(int argc, char **argv)
{
	int port = 8080, conns = 50, opt;
	double duration = 10;
	while ((opt = getopt(argc, argv, "p:c:d:a:1")) != -1) {
		switch (opt) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'c':
			conns = atoi(optarg);
			break;
		case 'd':
			duration = atof(optarg);
			break;
		case 'a':
			auth_header = optarg;
			break;
		case '1':
			once = true;
			break;
		default:
			fprintf(stderr, "usage: loadgen [-p PORT] [-c CONNS] [-d SECONDS] [-a AUTH] [-1] FILE\n");
			return 2;
		}
	}
	if (optind >= argc)
		return 2;
	load_lines(argv[optind]);
	base = event_base_new();
	struct conn *cs = calloc((size_t)conns, sizeof *cs);
	double t0 = now_s();
	stop_at = t0 + duration;
	for (int i = 0; i < conns; i++) {
		cs[i].evcon = evhttp_connection_base_new(base, NULL, host, (unsigned short)port);
		evhttp_connection_set_timeout(cs[i].evcon, 120);
		send_next(&cs[i]);
	}
	event_base_dispatch(base);
	double secs = now_s() - t0;
	qsort(lat, nlat, sizeof *lat, cmp_double);
	double p50 = nlat ? lat[nlat / 2] : 0, p99 = nlat ? lat[(size_t)((double)nlat * 0.99)] : 0;
	printf("requests=%lu errors=%lu seconds=%.2f rps=%.1f p50_ms=%.2f p99_ms=%.2f\n", nreq,
	       nerr, secs, (double)nreq / secs, p50, p99);
	for (int i = 0; i < conns; i++)
		evhttp_connection_free(cs[i].evcon);
	event_base_free(base);
	return nerr > 0 ? 1 : 0;
}
