/*
 * httpc: the curl-multi client on a real event loop, against an evhttp server on
 * loopback in the same loop. Statuses and bodies, Retry-After, redirects not followed,
 * timeouts, response caps, the address policy, protocol restriction, connection reuse
 * and cancellation.
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/httpc.h"
#include "harness.h"
#include "suites.h"

static struct event_base *base;
static struct evhttp *server;
static unsigned port;
static struct httpc *client;
static struct evhttp_request *held; /* a request the sink never answers (until teardown) */
static struct evhttp_connection *conns_seen[64];
static unsigned nconns_seen;
static char last_body[256];
static char last_sig[128];

static void sink_cb(struct evhttp_request *req, void *arg)
{
	(void)arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	struct evhttp_connection *c = evhttp_request_get_connection(req);
	bool seen = false;
	for (unsigned i = 0; i < nconns_seen; i++)
		seen = seen || conns_seen[i] == c;
	if (!seen && nconns_seen < 64)
		conns_seen[nconns_seen++] = c;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(in);
	if (n >= sizeof last_body)
		n = sizeof last_body - 1;
	evbuffer_copyout(in, last_body, n);
	last_body[n] = '\0';
	const char *sig = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Sig");
	snprintf(last_sig, sizeof last_sig, "%s", sig ? sig : "");
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	struct evbuffer *b = evbuffer_new();
	if (strcmp(path, "/ok") == 0) {
		evbuffer_add_printf(b, "accepted");
		evhttp_send_reply(req, 200, "OK", b);
	} else if (strcmp(path, "/busy") == 0) {
		evhttp_add_header(out, "Retry-After", "7");
		evhttp_send_reply(req, 503, "Busy", b);
	} else if (strcmp(path, "/moved") == 0) {
		evhttp_add_header(out, "Location", "/ok");
		evhttp_send_reply(req, 302, "Found", b);
	} else if (strcmp(path, "/big") == 0) {
		char chunk[1024];
		memset(chunk, 'z', sizeof chunk);
		for (int i = 0; i < 10; i++)
			evbuffer_add(b, chunk, sizeof chunk);
		evhttp_send_reply(req, 200, "OK", b);
	} else if (strcmp(path, "/hang") == 0) {
		held = req;
	} else {
		evhttp_send_reply(req, 404, "Not Found", b);
	}
	evbuffer_free(b);
}

static void setup(void)
{
	base = event_base_new();
	server = evhttp_new(base);
	evhttp_set_allowed_methods(server, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_gencb(server, sink_cb, NULL);
	struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(server, "127.0.0.1", 0);
	ck_assert_ptr_nonnull(bs);
	struct sockaddr_in sa;
	socklen_t sl = sizeof sa;
	getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &sl);
	port = ntohs(sa.sin_port);
	client = httpc_new(base, 16, 4);
	held = NULL;
	nconns_seen = 0;
}

static void teardown(void)
{
	httpc_free(client);
	if (held != NULL)
		evhttp_send_reply(held, 200, "OK", NULL);
	evhttp_free(server);
	event_base_free(base);
}

struct got {
	int done;
	struct httpc_result res;
	char body[64];
	char error[256];
};

static void done_cb(const struct httpc_result *res, void *arg)
{
	struct got *g = arg;
	g->done++;
	g->res = *res;
	snprintf(g->body, sizeof g->body, "%s", res->body);
	snprintf(g->error, sizeof g->error, "%s", res->error);
	g->res.body = NULL;
}

static void wait_done(struct got *g, int want)
{
	double deadline = th_now() + 10;
	while (g->done < want && th_now() < deadline)
		event_base_loop(base, EVLOOP_ONCE);
	ck_assert_int_eq(g->done, want);
}

static struct httpc_request req_to(const char *path, char *url, size_t len)
{
	snprintf(url, len, "http://127.0.0.1:%u%s", port, path);
	struct httpc_request r = {.method = "POST", .url = url, .body = "{\"a\":1}", .body_len = 7,
				  .timeout_ms = 5000, .max_response = 1024, .allow_http = true,
				  .allow_private = true};
	return r;
}

START_TEST(test_post_and_statuses)
{
	char url[128];
	static const char *const hdrs[] = {"Content-Type: application/json", "X-Sig: v1,abc", NULL};
	struct httpc_request r = req_to("/ok", url, sizeof url);
	r.headers = hdrs;
	struct got g = {0};
	httpc_start(client, &r, done_cb, &g);
	ck_assert_int_eq(g.done, 0); /* never inside httpc_start */
	wait_done(&g, 1);
	ck_assert(g.res.ok);
	ck_assert_int_eq(g.res.status, 200);
	ck_assert_str_eq(g.body, "accepted");
	ck_assert_str_eq(last_body, "{\"a\":1}");
	ck_assert_str_eq(last_sig, "v1,abc");

	struct got b = {0};
	r = req_to("/busy", url, sizeof url);
	httpc_start(client, &r, done_cb, &b);
	wait_done(&b, 1);
	ck_assert_int_eq(b.res.status, 503);
	ck_assert_int_eq(b.res.retry_after_s, 7);

	struct got m = {0};
	r = req_to("/moved", url, sizeof url);
	httpc_start(client, &r, done_cb, &m);
	wait_done(&m, 1);
	ck_assert_int_eq(m.res.status, 302); /* not followed */
	ck_assert_int_eq(m.res.retry_after_s, -1);
}
END_TEST

START_TEST(test_timeout_and_cap)
{
	char url[128];
	struct httpc_request r = req_to("/hang", url, sizeof url);
	r.timeout_ms = 300;
	struct got g = {0};
	double t0 = th_now();
	httpc_start(client, &r, done_cb, &g);
	wait_done(&g, 1);
	ck_assert(!g.res.ok);
	ck_assert_msg(strstr(g.error, "imeout") != NULL || strstr(g.error, "timed out") != NULL,
		      "%s", g.error);
	ck_assert_msg(th_now() - t0 < 5.0, "timeout not enforced");

	struct got big = {0};
	r = req_to("/big", url, sizeof url);
	r.max_response = 100;
	httpc_start(client, &r, done_cb, &big);
	wait_done(&big, 1);
	ck_assert(big.res.ok);
	ck_assert(big.res.truncated);
	ck_assert_uint_eq(big.res.body_len, 100);

	struct got strict = {0};
	r.fail_over_max = true;
	httpc_start(client, &r, done_cb, &strict);
	wait_done(&strict, 1);
	ck_assert(!strict.res.ok);
	ck_assert_msg(strstr(strict.error, "larger than 100 bytes") != NULL, "%s", strict.error);
}
END_TEST

START_TEST(test_policy)
{
	char url[128];
	struct httpc_request r = req_to("/ok", url, sizeof url);
	r.allow_private = false;
	struct got g = {0};
	httpc_start(client, &r, done_cb, &g);
	wait_done(&g, 1);
	ck_assert(!g.res.ok);
	ck_assert_int_eq(g.res.status, 0);
	ck_assert_msg(strstr(g.error, "127.0.0.1 is not allowed") != NULL, "%s", g.error);

	struct got h = {0};
	r = req_to("/ok", url, sizeof url);
	r.allow_http = false;
	httpc_start(client, &r, done_cb, &h);
	wait_done(&h, 1);
	ck_assert(!h.res.ok);
	ck_assert_int_eq(h.res.status, 0);
}
END_TEST

START_TEST(test_reuse_and_cancel)
{
	char url[128];
	struct httpc_request r = req_to("/ok", url, sizeof url);
	for (int i = 0; i < 20; i++) {
		struct got g = {0};
		httpc_start(client, &r, done_cb, &g);
		wait_done(&g, 1);
		ck_assert_int_eq(g.res.status, 200);
	}
	ck_assert_uint_eq(nconns_seen, 1); /* one kept-alive connection for all 20 */

	struct got c = {0}, d = {0};
	struct httpc_xfer *x = httpc_start(client, &r, done_cb, &c);
	httpc_cancel(x);
	httpc_start(client, &r, done_cb, &d);
	wait_done(&d, 1);
	ck_assert_int_eq(c.done, 0);
	ck_assert_uint_eq(httpc_active(client), 0);
}
END_TEST

static bool private4(const char *ip)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	inet_pton(AF_INET, ip, &sa.sin_addr);
	return httpc_address_is_private((struct sockaddr *)&sa);
}

static bool private6(const char *ip)
{
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6};
	inet_pton(AF_INET6, ip, &sa.sin6_addr);
	return httpc_address_is_private((struct sockaddr *)&sa);
}

START_TEST(test_address_classes)
{
	const char *priv4[] = {"127.0.0.1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
			       "169.254.169.254", "0.0.0.0", "224.0.0.1", "255.255.255.255",
			       "100.64.0.1"};
	const char *pub4[] = {"8.8.8.8", "172.32.0.1", "193.0.0.1", "100.128.0.1", "11.0.0.1"};
	for (size_t i = 0; i < sizeof priv4 / sizeof *priv4; i++)
		ck_assert_msg(private4(priv4[i]), "%s", priv4[i]);
	for (size_t i = 0; i < sizeof pub4 / sizeof *pub4; i++)
		ck_assert_msg(!private4(pub4[i]), "%s", pub4[i]);
	const char *priv6[] = {"::1", "::", "fe80::1", "fd00::1", "ff02::1", "::ffff:10.0.0.1",
			       "::ffff:127.0.0.1"};
	const char *pub6[] = {"2001:db8::1", "2a00:1450::1", "::ffff:8.8.8.8"};
	for (size_t i = 0; i < sizeof priv6 / sizeof *priv6; i++)
		ck_assert_msg(private6(priv6[i]), "%s", priv6[i]);
	for (size_t i = 0; i < sizeof pub6 / sizeof *pub6; i++)
		ck_assert_msg(!private6(pub6[i]), "%s", pub6[i]);
}
END_TEST

Suite *httpc_suite(void)
{
	Suite *s = suite_create("httpc");
	TCase *tc = tcase_create("transfers");
	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_post_and_statuses);
	tcase_add_test(tc, test_timeout_and_cap);
	tcase_add_test(tc, test_policy);
	tcase_add_test(tc, test_reuse_and_cancel);
	tcase_add_test(tc, test_address_classes);
	suite_add_tcase(s, tc);
	return s;
}
