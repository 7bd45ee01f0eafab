/*
 * httpc: the curl-multi client on a real event loop, against an evhttp server on
 * loopback in the same loop. Statuses and bodies, Retry-After, redirects not followed,
 * timeouts, response caps, the address policy (every special-purpose range at its
 * edges), protocol restriction, connection reuse and cancellation, proxies (none from
 * the environment; the configured one), and the feed hosts allowlist's matching.
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/endpoint.h"
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
static struct evhttp *proxy_server; /* stands in for a proxy: counts what reaches it */
static unsigned proxy_port, proxy_hits;
static char proxy_uri[256];

static void proxy_cb(struct evhttp_request *req, void *arg)
{
	(void)arg;
	proxy_hits++;
	snprintf(proxy_uri, sizeof proxy_uri, "%s", evhttp_request_get_uri(req));
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_printf(b, "from the proxy");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

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

/* An evhttp server on 127.0.0.1 (an ephemeral port) on the test's loop. */
static struct evhttp *listen_on(void (*cb)(struct evhttp_request *, void *), unsigned *at)
{
	struct evhttp *s = evhttp_new(base);
	evhttp_set_allowed_methods(s, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_gencb(s, cb, NULL);
	struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(s, "127.0.0.1", 0);
	ck_assert_ptr_nonnull(bs);
	struct sockaddr_in sa;
	socklen_t sl = sizeof sa;
	getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &sl);
	*at = ntohs(sa.sin_port);
	return s;
}

static void setup(void)
{
	base = event_base_new();
	server = listen_on(sink_cb, &port);
	proxy_server = listen_on(proxy_cb, &proxy_port);
	proxy_hits = 0;
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
	evhttp_free(proxy_server);
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

struct addr_case {
	const char *ip;
	bool refused;
};

static void check_cases(const struct addr_case *cases, size_t n, bool v6)
{
	for (size_t i = 0; i < n; i++) {
		bool got = v6 ? private6(cases[i].ip) : private4(cases[i].ip);
		ck_assert_msg(got == cases[i].refused, "%s should be %s", cases[i].ip,
			      cases[i].refused ? "refused" : "allowed");
	}
}

/* Each range at its first and last address, and the addresses just outside it. */
START_TEST(test_address_classes_v4)
{
	static const struct addr_case cases[] = {
	    /* 0.0.0.0/8 this network */
	    {"0.0.0.0", true}, {"0.255.255.255", true}, {"1.0.0.0", false},
	    /* 10/8 private */
	    {"9.255.255.255", false}, {"10.0.0.0", true}, {"10.255.255.255", true},
	    {"11.0.0.0", false},
	    /* 100.64/10 shared address space */
	    {"100.63.255.255", false}, {"100.64.0.0", true}, {"100.127.255.255", true},
	    {"100.128.0.0", false},
	    /* 127/8 loopback */
	    {"126.255.255.255", false}, {"127.0.0.0", true}, {"127.0.0.1", true},
	    {"127.255.255.255", true}, {"128.0.0.0", false},
	    /* 169.254/16 link-local (cloud metadata) */
	    {"169.253.255.255", false}, {"169.254.0.0", true}, {"169.254.169.254", true},
	    {"169.254.255.255", true}, {"169.255.0.0", false},
	    /* 172.16/12 private */
	    {"172.15.255.255", false}, {"172.16.0.0", true}, {"172.31.255.255", true},
	    {"172.32.0.0", false},
	    /* 192.0.0.0/24 protocol assignments */
	    {"191.255.255.255", false}, {"192.0.0.0", true}, {"192.0.0.255", true},
	    {"192.0.1.0", false},
	    /* 192.0.2.0/24 documentation */
	    {"192.0.1.255", false}, {"192.0.2.0", true}, {"192.0.2.255", true},
	    {"192.0.3.0", false},
	    /* 192.88.99.0/24 6to4 relay anycast, deprecated */
	    {"192.88.98.255", false}, {"192.88.99.0", true}, {"192.88.99.255", true},
	    {"192.88.100.0", false},
	    /* 192.168/16 private */
	    {"192.167.255.255", false}, {"192.168.0.0", true}, {"192.168.255.255", true},
	    {"192.169.0.0", false},
	    /* 198.18.0.0/15 benchmarking */
	    {"198.17.255.255", false}, {"198.18.0.0", true}, {"198.19.255.255", true},
	    {"198.20.0.0", false},
	    /* 198.51.100.0/24 documentation */
	    {"198.51.99.255", false}, {"198.51.100.0", true}, {"198.51.100.255", true},
	    {"198.51.101.0", false},
	    /* 203.0.113.0/24 documentation */
	    {"203.0.112.255", false}, {"203.0.113.0", true}, {"203.0.113.255", true},
	    {"203.0.114.0", false},
	    /* 224/4 multicast, 240/4 reserved, 255.255.255.255 broadcast */
	    {"223.255.255.255", false}, {"224.0.0.0", true}, {"239.255.255.255", true},
	    {"240.0.0.0", true}, {"255.255.255.254", true}, {"255.255.255.255", true},
	    /* public */
	    {"8.8.8.8", false}, {"193.0.0.1", false}, {"192.0.0.9", true},
	};
	check_cases(cases, sizeof cases / sizeof cases[0], false);
}
END_TEST

START_TEST(test_address_classes_v6)
{
	static const struct addr_case cases[] = {
	    /* :: unspecified, ::1 loopback, ::/96 IPv4-compatible (even of a public one) */
	    {"::", true}, {"::1", true}, {"::2", true}, {"::8.8.8.8", true},
	    {"::ffff:ffff:ffff", true},
	    /* ::ffff:0:0/96 IPv4-mapped: the IPv4 address decides */
	    {"::ffff:127.0.0.1", true}, {"::ffff:10.0.0.1", true}, {"::ffff:169.254.169.254", true},
	    {"::ffff:192.0.0.1", true}, {"::ffff:198.18.0.1", true}, {"::ffff:0.0.0.0", true},
	    {"::ffff:8.8.8.8", false}, {"::fffe:808:808", true}, {"::1:ffff:808:808", true},
	    /* 64:ff9b::/96 NAT64 and 64:ff9b:1::/48 local NAT64 */
	    {"64:ff9b::", true}, {"64:ff9b::808:808", true}, {"64:ff9b::7f00:1", true},
	    {"64:ff9b::ffff:ffff", true}, {"64:ff9b:1::1", true},
	    /* 100::/64 discard only */
	    {"100::", true}, {"100::ffff:ffff:ffff:ffff", true}, {"100:0:0:1::", true},
	    /* 2000::/3 is where public unicast lives */
	    {"1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true}, {"2000::", false},
	    {"3fff:1000::", false}, {"3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false},
	    {"4000::", true}, {"5f00::1", true},
	    /* 2001::/32 Teredo */
	    {"2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false}, {"2001::", true},
	    {"2001:0:ffff:ffff:ffff:ffff:ffff:ffff", true}, {"2001:1::", false},
	    /* 2001:2::/48 benchmarking */
	    {"2001:1:ffff:ffff:ffff:ffff:ffff:ffff", false}, {"2001:2::", true},
	    {"2001:2:0:ffff:ffff:ffff:ffff:ffff", true}, {"2001:2:1::", false},
	    /* 2001:10::/28 ORCHID and 2001:20::/28 ORCHIDv2 */
	    {"2001:f:ffff:ffff:ffff:ffff:ffff:ffff", false}, {"2001:10::", true},
	    {"2001:1f:ffff:ffff:ffff:ffff:ffff:ffff", true}, {"2001:20::", true},
	    {"2001:2f:ffff:ffff:ffff:ffff:ffff:ffff", true}, {"2001:30::", false},
	    /* 2001:db8::/32 documentation */
	    {"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", false}, {"2001:db8::", true},
	    {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true}, {"2001:db9::", false},
	    /* 2002::/16 6to4: the embedded IPv4 address decides */
	    {"2002:7f00:1::1", true}, {"2002:a00:1::1", true}, {"2002:a9fe:a9fe::", true},
	    {"2002:c000:0::", true}, {"2002::", true}, {"2002:808:808::1", false},
	    {"2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false}, {"2003::", false},
	    /* 3fff::/20 documentation */
	    {"3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false}, {"3fff::", true},
	    {"3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", true},
	    /* fc00::/7 unique local, fec0::/10 site-local, fe80::/10 link-local, ff00::/8
	     * multicast (everything from fc00:: on is refused, so their edges meet) */
	    {"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true}, {"fc00::", true},
	    {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true}, {"fe80::", true},
	    {"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true}, {"fec0::", true},
	    {"fec0::1", true}, {"feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
	    {"ff00::", true}, {"ff02::1", true},
	    /* public */
	    {"2a00:1450::1", false}, {"2606:4700::1111", false},
	};
	check_cases(cases, sizeof cases / sizeof cases[0], true);
	struct sockaddr other = {.sa_family = AF_UNIX};
	ck_assert(httpc_address_is_private(&other));
}
END_TEST

/* An ordinary POST that must reach the sink itself, with proxies everywhere in the
 * environment, then one through a configured proxy. */
START_TEST(test_proxies)
{
	char proxy[64], url[128];
	snprintf(proxy, sizeof proxy, "http://127.0.0.1:%u", proxy_port);
	static const char *const vars[] = {"http_proxy", "https_proxy", "all_proxy",
					   "HTTPS_PROXY", "ALL_PROXY", NULL};
	for (size_t i = 0; vars[i] != NULL; i++)
		setenv(vars[i], proxy, 1);
	unsetenv("no_proxy");
	unsetenv("NO_PROXY");
	struct httpc_request r = req_to("/ok", url, sizeof url);
	struct got g = {0};
	httpc_start(client, &r, done_cb, &g);
	wait_done(&g, 1);
	ck_assert_int_eq(g.res.status, 200);
	ck_assert_str_eq(g.body, "accepted");
	ck_assert_uint_eq(proxy_hits, 0);

	/* [outbound] proxy: every request goes there, no_proxy notwithstanding. */
	setenv("no_proxy", "*", 1);
	httpc_set_proxy(client, proxy);
	snprintf(url, sizeof url, "http://127.0.0.2:%u/ok", port);
	struct got p = {0};
	httpc_start(client, &r, done_cb, &p);
	wait_done(&p, 1);
	ck_assert_int_eq(p.res.status, 200);
	ck_assert_str_eq(p.body, "from the proxy");
	ck_assert_uint_eq(proxy_hits, 1);
	ck_assert_msg(strstr(proxy_uri, "127.0.0.2") != NULL, "%s", proxy_uri);
	ck_assert(p.res.nonpublic); /* through the proxy with allow_private */

	/* Back to none. */
	httpc_set_proxy(client, "");
	snprintf(url, sizeof url, "http://127.0.0.1:%u/ok", port);
	struct got n = {0};
	httpc_start(client, &r, done_cb, &n);
	wait_done(&n, 1);
	ck_assert_str_eq(n.body, "accepted");
	ck_assert_uint_eq(proxy_hits, 1);
	for (size_t i = 0; vars[i] != NULL; i++)
		unsetenv(vars[i]);
	unsetenv("no_proxy");
}
END_TEST

/* A loopback answer says so, on a new and on a reused connection alike. */
START_TEST(test_nonpublic_answer)
{
	char url[128];
	struct httpc_request r = req_to("/ok", url, sizeof url);
	for (int i = 0; i < 3; i++) {
		struct got g = {0};
		httpc_start(client, &r, done_cb, &g);
		wait_done(&g, 1);
		ck_assert_int_eq(g.res.status, 200);
		ck_assert_msg(g.res.nonpublic, "attempt %d", i);
	}
	ck_assert_uint_eq(nconns_seen, 1);
}
END_TEST

START_TEST(test_hosts_listed)
{
	ck_assert(endpoint_host_listed("https://mis.school.example/feed", "mis.school.example"));
	ck_assert(endpoint_host_listed("https://MIS.School.Example./feed",
				       "a.example, mis.school.example"));
	ck_assert(endpoint_host_listed("http://10.1.2.3:8080/f", "x.example,10.1.2.3"));
	ck_assert(endpoint_host_listed("https://[::1]/f", "0:0::1"));
	ck_assert(endpoint_host_listed("https://[fd00::1]/f", "[fd00:0::1]"));
	ck_assert(!endpoint_host_listed("https://mis.school.example/feed", "school.example"));
	ck_assert(!endpoint_host_listed("https://school.example/feed", "mis.school.example"));
	ck_assert(!endpoint_host_listed("https://mis.school.example.evil.example/f",
					"mis.school.example"));
	ck_assert(!endpoint_host_listed("http://10.1.2.4/f", "10.1.2.3"));
	ck_assert(!endpoint_host_listed("http://10.1.2.3/f", "10.1.2.3.example"));
	ck_assert(!endpoint_host_listed("https://[::1]/f", "127.0.0.1"));
	ck_assert(!endpoint_host_listed("https://127.0.0.1/f", "::ffff:127.0.0.1"));
	ck_assert(!endpoint_host_listed("https://127.0.0.1/f", ""));
	ck_assert(!endpoint_host_listed("https://127.0.0.1/f", NULL));
	ck_assert(!endpoint_host_listed("not a url", "not"));
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
	tcase_add_test(tc, test_address_classes_v4);
	tcase_add_test(tc, test_address_classes_v6);
	tcase_add_test(tc, test_proxies);
	tcase_add_test(tc, test_nonpublic_answer);
	tcase_add_test(tc, test_hosts_listed);
	suite_add_tcase(s, tc);
	return s;
}
