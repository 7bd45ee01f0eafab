/*
 * outbound: where the real daemon's webhook deliveries and feed pulls may go. The
 * switches are per direction ([pull] allow_private opens no webhook, [webhooks]
 * allow_private no feed); a school's private feed hosts let only its own feed reach a
 * private address (set by an admin through the API or dualregctl, never by the
 * school's key); *_proxy in the environment is never used, [outbound] proxy is; an
 * answer from a non-public address is not kept in last_response. A webhook sink, a
 * feed and a stand-in proxy run in threads of the test process (th_server).
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness.h"
#include "../suites.h"
#include "../th_server.h"

#define A "100001"
#define B "100002"
#define NOT_KEPT "(response from a non-public address not kept)"

static struct th_server sink, feed, proxy;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int sink_hits, feed_a_hits, feed_b_hits, proxy_hits;

static char url[1024];
static struct th_daemon d;
static char admin[64], a_key[64], b_key[64];
static char out[8192];

static void count(int *n)
{
	pthread_mutex_lock(&mu);
	(*n)++;
	pthread_mutex_unlock(&mu);
}

static int hits(const int *n)
{
	pthread_mutex_lock(&mu);
	int v = *n;
	pthread_mutex_unlock(&mu);
	return v;
}

static void reply(struct evhttp_request *req, int status, const char *body)
{
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_printf(b, "%s", body);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "application/json");
	evhttp_send_reply(req, status, "X", b);
	evbuffer_free(b);
}

/* A service inside the network that answers with something a school must not read. */
static void sink_cb(struct evhttp_request *req, void *arg)
{
	(void)arg;
	count(&sink_hits);
	reply(req, 200, "{\"internal\": \"db-password=hunter2\"}");
}

static void feed_cb(struct evhttp_request *req, void *arg)
{
	(void)arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	count(strcmp(path, "/a") == 0 ? &feed_a_hits : &feed_b_hits);
	reply(req, 200, "{\"marks\": [], \"next_cursor\": \"c1\", \"has_more\": false}");
}

static void proxy_cb(struct evhttp_request *req, void *arg)
{
	(void)arg;
	count(&proxy_hits);
	reply(req, 200, "{\"via\": \"proxy\"}");
}

static void setup(void)
{
	sink_hits = feed_a_hits = feed_b_hits = proxy_hits = 0;
	sink.handler = sink_cb;
	feed.handler = feed_cb;
	proxy.handler = proxy_cb;
	th_server_start(&sink);
	th_server_start(&feed);
	th_server_start(&proxy);
	th_db_create_migrated(url, sizeof url);
	th_sql(url, "INSERT INTO schools (urn, name, kind) VALUES ('" A "', 'Home', "
		    "'mainstream'), ('" B "', 'PRU', 'pru')");
	th_key_create(url, NULL, admin, sizeof admin);
	th_key_create(url, A, a_key, sizeof a_key);
	th_key_create(url, B, b_key, sizeof b_key);
	d.pid = 0;
}

static void teardown(void)
{
	if (d.pid > 0)
		th_daemon_stop(&d, SIGKILL);
	th_server_stop(&proxy);
	th_server_stop(&feed);
	th_server_stop(&sink);
}

/* POSTs a subscription of key's school to http://HOST:sink/hook; returns the status. */
static long subscribe(const char *key, const char *host, char *body_out, size_t len)
{
	char body[256];
	snprintf(body, sizeof body, "{\"url\": \"http://%s:%u/hook\", \"events\": [\"*\"]}", host,
		 sink.port);
	struct th_resp r;
	th_api(&d, "POST", "/v1/subscriptions", key, body, NULL, &r);
	long status = r.status;
	snprintf(body_out, len, "%s", r.body ? r.body : "");
	th_resp_free(&r);
	return status;
}

static void emit(void)
{
	th_sql(url, "SELECT dualreg_emit('mark.conflict', 'B801200005001', ARRAY['" A "', '" B
		    "'], '{\"upn\": \"B801200005001\", \"date\": \"2026-11-02\", \"session\": "
		    "\"AM\"}')");
}

/* The first delivery school A's key sees once it has had an attempt (bounded wait). */
static cJSON *attempted_delivery(void)
{
	double deadline = th_now() + 15;
	while (th_now() < deadline) {
		struct th_resp r;
		th_api(&d, "GET", "/v1/deliveries", a_key, NULL, NULL, &r);
		ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
		const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "deliveries"), 0);
		const cJSON *att = cJSON_GetObjectItem(first, "attempts");
		const cJSON *st = cJSON_GetObjectItem(first, "status");
		if (cJSON_IsNumber(att) && att->valueint >= 1 &&
		    !(cJSON_IsString(st) && strcmp(st->valuestring, "pending") == 0 &&
		      cJSON_IsNull(cJSON_GetObjectItem(first, "last_error")) &&
		      cJSON_IsNull(cJSON_GetObjectItem(first, "last_status")))) {
			cJSON *copy = cJSON_Duplicate(first, 1);
			th_resp_free(&r);
			return copy;
		}
		th_resp_free(&r);
		usleep(100000);
	}
	ck_abort_msg("no delivery attempt recorded; see %s", d.log_path);
	return NULL;
}

static const char *str_or_empty(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItem(o, k);
	return cJSON_IsString(v) ? v->valuestring : "";
}

/* PATCHes the school's feed to http://HOST:feed/PATH as admin. */
static void set_feed(const char *urn, const char *host, const char *path)
{
	char body[256], where[64];
	snprintf(body, sizeof body,
		 "{\"pull_url\": \"http://%s:%u%s\", \"pull_interval\": 3600}", host, feed.port,
		 path);
	snprintf(where, sizeof where, "/v1/schools/%s", urn);
	struct th_resp r;
	th_api(&d, "PATCH", where, admin, body, NULL, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	th_resp_free(&r);
}

/* The feed's status once it was read (want_ok) or failed (bounded wait). */
static cJSON *feed_outcome(const char *urn, const char *key, bool want_ok)
{
	char where[64];
	snprintf(where, sizeof where, "/v1/schools/%s/pull", urn);
	double deadline = th_now() + 15;
	while (th_now() < deadline) {
		struct th_resp r;
		th_api(&d, "GET", where, key, NULL, NULL, &r);
		ck_assert_int_eq(r.status, 200);
		bool ok = strcmp(str_or_empty(r.json, "cursor"), "c1") == 0;
		bool failed = cJSON_GetObjectItem(r.json, "failures")->valueint > 0;
		if (want_ok ? ok : failed) {
			cJSON *copy = cJSON_Duplicate(r.json, 1);
			th_resp_free(&r);
			return copy;
		}
		ck_assert_msg(!(want_ok ? failed : ok), "feed of %s: %s", urn, r.body);
		th_resp_free(&r);
		usleep(100000);
	}
	ck_abort_msg("feed of %s never %s; see %s", urn, want_ok ? "read" : "failed", d.log_path);
	return NULL;
}

START_TEST(test_pull_switch_opens_no_webhook)
{
	th_daemon_start(&d, url,
			"[webhooks]\nallow_http = true\nallow_private = true\nretry_schedule = 1h\n"
			"[pull]\nallow_http = true\nallow_private = true\n",
			false);
	char body[2048];
	ck_assert_int_eq(subscribe(a_key, "127.0.0.1", body, sizeof body), 201);
	/* Webhooks closed again; feeds still open to private addresses. */
	th_daemon_reload_with(&d, "[webhooks]\nallow_private = false\n");
	ck_assert_int_eq(subscribe(a_key, "127.0.0.1", body, sizeof body), 422);
	ck_assert_msg(strstr(body, "127.0.0.1") != NULL, "%s", body);
	emit();
	cJSON *del = attempted_delivery();
	ck_assert_msg(strstr(str_or_empty(del, "last_error"), "127.0.0.1 is not allowed") != NULL,
		      "%s", cJSON_PrintUnformatted(del));
	ck_assert_str_ne(str_or_empty(del, "status"), "delivered");
	cJSON_Delete(del);
	ck_assert_int_eq(hits(&sink_hits), 0);

	set_feed(B, "127.0.0.1", "/b");
	cJSON_Delete(feed_outcome(B, b_key, true));
	ck_assert_int_ge(hits(&feed_b_hits), 1);
	ck_assert_int_eq(hits(&sink_hits), 0);
}
END_TEST

START_TEST(test_webhook_switch_opens_no_feed)
{
	th_daemon_start(&d, url,
			"[webhooks]\nallow_http = true\nallow_private = true\n"
			"[pull]\nallow_http = true\n",
			false);
	char body[2048];
	ck_assert_int_eq(subscribe(a_key, "127.0.0.1", body, sizeof body), 201);
	emit();
	cJSON *del = attempted_delivery();
	ck_assert_str_eq(str_or_empty(del, "status"), "delivered");
	ck_assert_int_eq(hits(&sink_hits), 1);
	/* The sink is on loopback: what it answered is not shown to the school. */
	ck_assert_str_eq(str_or_empty(del, "last_response"), NOT_KEPT);
	cJSON_Delete(del);
	struct th_resp r;
	th_api(&d, "GET", "/v1/deliveries", a_key, NULL, NULL, &r);
	ck_assert_ptr_null(strstr(r.body, "hunter2"));
	th_resp_free(&r);

	set_feed(B, "127.0.0.1", "/b");
	cJSON *st = feed_outcome(B, b_key, false);
	ck_assert_msg(strstr(str_or_empty(st, "last_error"), "127.0.0.1 is not allowed") != NULL,
		      "%s", cJSON_PrintUnformatted(st));
	cJSON_Delete(st);
	ck_assert_int_eq(hits(&feed_b_hits), 0);
}
END_TEST

START_TEST(test_school_private_hosts)
{
	th_daemon_start(&d, url, "[webhooks]\nallow_http = true\n[pull]\nallow_http = true\n",
			false);
	struct th_resp r;
	/* Not the school's own key's to set. */
	th_api(&d, "PATCH", "/v1/schools/" A, a_key, "{\"pull_private_hosts\": [\"127.0.0.1\"]}",
	       NULL, &r);
	th_assert_problem(&r, 403);
	th_resp_free(&r);
	/* A bad entry is refused with its pointer, and nothing changes. */
	th_api(&d, "PATCH", "/v1/schools/" A, admin,
	       "{\"name\": \"Renamed\", \"pull_private_hosts\": [\"ok.example\", \"bad_host!\"]}",
	       NULL, &r);
	th_assert_problem(&r, 422);
	ck_assert_msg(strstr(r.body, "/pull_private_hosts/1") != NULL, "%s", r.body);
	th_resp_free(&r);
	th_api(&d, "PATCH", "/v1/schools/" A, admin, "{\"pull_private_hosts\": \"127.0.0.1\"}",
	       NULL, &r);
	th_assert_problem(&r, 422);
	th_resp_free(&r);
	th_api(&d, "GET", "/v1/schools/" A, a_key, NULL, NULL, &r);
	ck_assert_str_eq(str_or_empty(r.json, "name"), "Home");
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "pull_private_hosts")), 0);
	th_resp_free(&r);

	char body[512];
	snprintf(body, sizeof body,
		 "{\"pull_private_hosts\": [\"127.0.0.1\", \"MIS.Home.Example.\", \"[::1]\", "
		 "\"127.0.0.1\"], \"pull_url\": \"http://127.0.0.1:%u/a\", \"pull_interval\": 3600}",
		 feed.port);
	th_api(&d, "PATCH", "/v1/schools/" A, admin, body, NULL, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	char *hosts = cJSON_PrintUnformatted(cJSON_GetObjectItem(r.json, "pull_private_hosts"));
	ck_assert_str_eq(hosts, "[\"127.0.0.1\",\"mis.home.example\",\"::1\"]");
	free(hosts);
	th_resp_free(&r);
	set_feed(B, "127.0.0.1", "/b");

	/* A's listed loopback feed is read; B's, unlisted, is refused. */
	cJSON_Delete(feed_outcome(A, a_key, true));
	ck_assert_int_ge(hits(&feed_a_hits), 1);
	cJSON *st = feed_outcome(B, b_key, false);
	ck_assert_msg(strstr(str_or_empty(st, "last_error"), "127.0.0.1 is not allowed") != NULL,
		      "%s", cJSON_PrintUnformatted(st));
	cJSON_Delete(st);
	ck_assert_int_eq(hits(&feed_b_hits), 0);

	/* The list is for A's feed only: A's webhooks to the same host stay refused. */
	ck_assert_int_eq(subscribe(a_key, "127.0.0.1", body, sizeof body), 422);
	ck_assert_int_eq(hits(&sink_hits), 0);

	/* A's feed moved to a host not on its list is refused too. */
	set_feed(A, "localhost", "/a");
	int before = hits(&feed_a_hits);
	st = feed_outcome(A, a_key, false);
	ck_assert_msg(strstr(str_or_empty(st, "last_error"), "is not allowed") != NULL, "%s",
		      cJSON_PrintUnformatted(st));
	cJSON_Delete(st);
	ck_assert_int_eq(hits(&feed_a_hits), before);

	/* null clears the list. */
	th_api(&d, "PATCH", "/v1/schools/" A, admin, "{\"pull_private_hosts\": null}", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "pull_private_hosts")), 0);
	th_resp_free(&r);
}
END_TEST

/* Runs dualregctl against the test database; its standard output lands in out. */
static int ctl(const char *a0, const char *a1, const char *a2, const char *a3, const char *a4)
{
	char bin[512], env_url[1100];
	snprintf(bin, sizeof bin, "%s/dualregctl", th_env("DUALREG_TEST_BIN"));
	snprintf(env_url, sizeof env_url, "DUALREG_DATABASE_URL=%s", url);
	char *argv[] = {bin, "-c", "/dev/null", (char *)a0, (char *)a1, (char *)a2, (char *)a3,
			(char *)a4, NULL};
	char *const envp[] = {env_url, NULL};
	return th_run(argv, envp, out, sizeof out);
}

static void assert_hosts(const char *want)
{
	PGconn *c = PQconnectdb(url);
	PGresult *res = PQexec(c, "SELECT array_to_string(pull_private_hosts, ',') FROM schools "
				  "WHERE urn = '" A "'");
	ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
	ck_assert_str_eq(PQgetvalue(res, 0, 0), want);
	PQclear(res);
	PQfinish(c);
}

START_TEST(test_ctl_sets_private_hosts)
{
	ck_assert_msg(ctl("school", "set", A, "--pull-private-hosts",
			  "10.0.0.5, Mis.Home.Example,[FD00::0:1]") == 0,
		      "%s", th_last_stderr());
	ck_assert_msg(strstr(out, "10.0.0.5, mis.home.example, fd00::1") != NULL, "%s", out);
	assert_hosts("10.0.0.5,mis.home.example,fd00::1");
	ck_assert_int_eq(ctl("school", "show", A, NULL, NULL), 0);
	ck_assert_msg(strstr(out, "pull private hosts: 10.0.0.5, mis.home.example, fd00::1") !=
			  NULL,
		      "%s", out);

	/* Bad hosts are usage errors and change nothing. */
	ck_assert_int_eq(ctl("school", "set", A, "--pull-private-hosts", "ok.example,bad host"), 2);
	ck_assert_msg(strstr(th_last_stderr(), "bad host") != NULL, "%s", th_last_stderr());
	ck_assert_int_eq(ctl("school", "set", A, "--pull-private-hosts", "10.0.0.0/8"), 2);
	ck_assert_int_eq(ctl("school", "set", A, "--pull-private-hosts", "1.2.3"), 2);
	ck_assert_int_eq(ctl("school", "set", A, "--pull-private-hosts", "a,,b"), 2);
	assert_hosts("10.0.0.5,mis.home.example,fd00::1");
	ck_assert_int_eq(ctl("school", "set", A, NULL, NULL), 2);
	ck_assert_int_eq(ctl("school", "set", "12345", "--pull-private-hosts", "x.example"), 2);
	ck_assert_int_eq(ctl("school", "set", "999999", "--pull-private-hosts", "x.example"), 1);
	ck_assert_msg(strstr(th_last_stderr(), "no school with URN 999999") != NULL, "%s",
		      th_last_stderr());

	ck_assert_int_eq(ctl("school", "set", A, "--pull-private-hosts", ""), 0);
	assert_hosts("");
}
END_TEST

static const char *const proxy_vars[] = {"http_proxy", "https_proxy", "all_proxy",
					 "HTTPS_PROXY", "ALL_PROXY", NULL};

/*
 * Proxies in the daemon's environment are not used. no_proxy names 127.0.0.1 only so
 * that the test's own requests to the daemon go straight there; the sink and the feed
 * are reached as "localhost", which a proxy from the environment would be asked for.
 */
START_TEST(test_environment_proxies_ignored)
{
	char p[64];
	snprintf(p, sizeof p, "http://127.0.0.1:%u", proxy.port);
	for (size_t i = 0; proxy_vars[i] != NULL; i++)
		setenv(proxy_vars[i], p, 1);
	setenv("no_proxy", "127.0.0.1", 1);
	setenv("NO_PROXY", "127.0.0.1", 1);
	th_daemon_start(&d, url,
			"[webhooks]\nallow_http = true\nallow_private = true\n"
			"[pull]\nallow_http = true\nallow_private = true\n",
			false);
	char body[2048];
	ck_assert_int_eq(subscribe(a_key, "localhost", body, sizeof body), 201);
	emit();
	cJSON *del = attempted_delivery();
	ck_assert_msg(strcmp(str_or_empty(del, "status"), "delivered") == 0, "%s",
		      cJSON_PrintUnformatted(del));
	cJSON_Delete(del);
	ck_assert_int_eq(hits(&sink_hits), 1);
	set_feed(B, "localhost", "/b");
	cJSON_Delete(feed_outcome(B, b_key, true));
	ck_assert_int_ge(hits(&feed_b_hits), 1);
	ck_assert_int_eq(hits(&proxy_hits), 0);
	for (size_t i = 0; proxy_vars[i] != NULL; i++)
		unsetenv(proxy_vars[i]);
	unsetenv("no_proxy");
	unsetenv("NO_PROXY");
}
END_TEST

/* [outbound] proxy is used for every request; through it the destination is unknown,
 * so with allow_private its answer is not kept either. */
START_TEST(test_configured_proxy_used)
{
	char ini[512];
	snprintf(ini, sizeof ini,
		 "[webhooks]\nallow_http = true\nallow_private = true\n"
		 "[outbound]\nproxy = http://127.0.0.1:%u\n",
		 proxy.port);
	th_daemon_start(&d, url, ini, false);
	char body[2048];
	ck_assert_int_eq(subscribe(a_key, "127.0.0.1", body, sizeof body), 201);
	emit();
	cJSON *del = attempted_delivery();
	ck_assert_str_eq(str_or_empty(del, "status"), "delivered");
	ck_assert_str_eq(str_or_empty(del, "last_response"), NOT_KEPT);
	cJSON_Delete(del);
	ck_assert_int_eq(hits(&proxy_hits), 1);
	ck_assert_int_eq(hits(&sink_hits), 0);
}
END_TEST

Suite *outbound_suite(void)
{
	Suite *s = suite_create("outbound");
	TCase *tc = tcase_create("outbound");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_pull_switch_opens_no_webhook);
	tcase_add_test(tc, test_webhook_switch_opens_no_feed);
	tcase_add_test(tc, test_school_private_hosts);
	tcase_add_test(tc, test_ctl_sets_private_hosts);
	tcase_add_test(tc, test_environment_proxies_ignored);
	tcase_add_test(tc, test_configured_proxy_used);
	suite_add_tcase(s, tc);
	return s;
}
