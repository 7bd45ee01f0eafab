/*
 * auth_abuse: authentication under unauthenticated load, through the real daemon with
 * GET /v1/me as the probe. Unknown and malformed tokens cost no database query when
 * repeated (malformed ones never do), failed authentications are limited per client
 * address (the peer, or X-Forwarded-For behind a trusted proxy), and a revoked key is
 * refused at once however long key_cache_ttl is. Also [limits] trusted_proxies.
 *
 * Database queries are counted as scans of api_keys (pg_stat_user_tables): nothing but
 * a key lookup reads that table while these tests run. Statistics reach that view when
 * a backend flushes them, at the latest when it exits, so the count is read after the
 * daemon has stopped and its connections are gone.
 */
#include <curl/curl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dualreg/auth_token.h"
#include "dualreg/config.h"
#include "../harness.h"
#include "../suites.h"

static char url[1024];
static struct th_daemon d;

static void setup(void)
{
	th_db_create_migrated(url, sizeof url);
}

static void teardown(void)
{
	if (d.pid > 0)
		th_daemon_stop(&d, SIGKILL);
}

/* GET /v1/me with a raw Authorization value (NULL: none) and an X-Forwarded-For value
 * (NULL: none); the status. r gets the answer when not NULL. */
static long me_as(const char *authorization, const char *xff, struct th_resp *out)
{
	char u[256], h_auth[512], h_xff[512];
	const char *headers[3];
	size_t n = 0;
	snprintf(u, sizeof u, "%s/v1/me", d.base);
	if (authorization != NULL) {
		snprintf(h_auth, sizeof h_auth, "Authorization: %s", authorization);
		headers[n++] = h_auth;
	}
	if (xff != NULL) {
		snprintf(h_xff, sizeof h_xff, "X-Forwarded-For: %s", xff);
		headers[n++] = h_xff;
	}
	headers[n] = NULL;
	struct th_resp r;
	ck_assert(th_http("GET", u, NULL, 0, headers, &r) == 0);
	long st = r.status;
	if (out != NULL)
		*out = r;
	else
		th_resp_free(&r);
	return st;
}

static long me_token(const char *token, const char *xff)
{
	char h[128];
	snprintf(h, sizeof h, "Bearer %s", token);
	return me_as(h, xff, NULL);
}

/* A 429 for too many failed authentications, with its Retry-After. */
static void assert_failures_429(struct th_resp *r)
{
	th_assert_problem(r, 429);
	ck_assert_str_eq(cJSON_GetObjectItem(r->json, "type")->valuestring,
			 "/problems/too-many-requests");
	ck_assert_msg(strstr(cJSON_GetObjectItem(r->json, "detail")->valuestring,
			     "failed authentications") != NULL,
		      "%s", r->body);
	ck_assert_int_ge(atoi(r->retry_after), 1);
	th_resp_free(r);
}

/* ---- counting key lookups ---- */

static PGconn *stats_conn(void)
{
	PGconn *c = PQconnectdb(url);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	return c;
}

static long long scalar(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql,
		      PQresultErrorMessage(res));
	long long v = atoll(PQgetvalue(res, 0, 0));
	PQclear(res);
	return v;
}

/* Scans of api_keys so far, once no other connection to the database is left (a
 * backend's statistics are flushed before it leaves pg_stat_activity). */
static long long key_scans(void)
{
	PGconn *c = stats_conn();
	double deadline = th_now() + 20.0;
	while (scalar(c, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
			 "current_database() AND pid <> pg_backend_pid()") > 0) {
		ck_assert_msg(th_now() < deadline, "other connections to the database remain");
		usleep(50 * 1000);
	}
	long long n = scalar(c, "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) "
				"FROM pg_stat_user_tables WHERE relname = 'api_keys'");
	PQfinish(c);
	return n;
}

static void random_token(char *out, size_t len)
{
	ck_assert(auth_token_new(out, len) == 0);
}

/* ---- tests ---- */

/* 3000 failures from one address with no limit in the way: 30 distinct unknown tokens
 * repeated, and malformed ones of every kind. Each unknown token is looked up once;
 * malformed ones never. */
START_TEST(test_unknown_tokens_cost_one_query_each)
{
	char admin[64];
	th_key_create(url, NULL, admin, sizeof admin);
	long long before = key_scans();
	th_daemon_start(&d, url,
			"[limits]\nkey_cache_ttl = 1h\nauth_failure_rate = 1000000\n"
			"auth_failure_burst = 1000000\n",
			false);
	ck_assert_int_eq(me_token(admin, NULL), 200);

	enum { DISTINCT = 30, REQUESTS = 3000 };
	char tokens[DISTINCT][AUTH_TOKEN_LEN + 1];
	for (int i = 0; i < DISTINCT; i++)
		random_token(tokens[i], sizeof tokens[i]);
	/* The right length and prefix, but a character outside base64url; too short; too
	 * long; another prefix; another scheme. */
	char bad_char[AUTH_TOKEN_LEN + 1], too_long[AUTH_TOKEN_LEN + 2], bad_prefix[64];
	random_token(bad_char, sizeof bad_char);
	bad_char[20] = '*';
	memcpy(too_long, tokens[0], AUTH_TOKEN_LEN);
	memcpy(too_long + AUTH_TOKEN_LEN, "A", 2);
	memcpy(bad_prefix, tokens[1], AUTH_TOKEN_LEN + 1);
	memcpy(bad_prefix, "drx_", 4);
	const char *malformed[] = {bad_char, "drk_short", too_long, bad_prefix};
	char h[128];
	int k = 0;
	for (int i = 0; i < REQUESTS; i++) {
		long st;
		if (i % 3 == 0 && i % 4 == 0) {
			st = me_as("Basic dXNlcjpwYXNz", NULL, NULL);
		} else if (i % 3 == 0) {
			snprintf(h, sizeof h, "Bearer %s", malformed[(i / 3) % 4]);
			st = me_as(h, NULL, NULL);
		} else {
			st = me_token(tokens[k++ % DISTINCT], NULL);
		}
		ck_assert_msg(st == 401, "request %d: %ld", i, st);
	}
	/* The detail still tells the two apart. */
	struct th_resp r;
	snprintf(h, sizeof h, "Bearer %s", bad_char);
	me_as(h, NULL, &r);
	th_assert_problem(&r, 401);
	ck_assert_ptr_nonnull(strstr(cJSON_GetObjectItem(r.json, "detail")->valuestring,
				     "malformed"));
	th_resp_free(&r);
	snprintf(h, sizeof h, "Bearer %s", tokens[7]);
	me_as(h, NULL, &r);
	th_assert_problem(&r, 401);
	ck_assert_ptr_nonnull(strstr(cJSON_GetObjectItem(r.json, "detail")->valuestring,
				     "unknown or revoked"));
	th_resp_free(&r);
	ck_assert_int_eq(me_token(admin, NULL), 200);
	th_daemon_stop(&d, SIGTERM);

	/* The admin key once, each unknown token once: not one query per request. */
	long long scans = key_scans() - before;
	ck_assert_msg(scans >= 1 + DISTINCT && scans <= 1 + DISTINCT + 10,
		      "%lld lookups of api_keys for %d requests", scans, REQUESTS);
}
END_TEST

/* 3000 distinct unknown tokens from one address under the default limit (2 per second,
 * burst 20): after the burst the address is answered 429 before any lookup. */
START_TEST(test_failure_limit_keeps_lookups_flat)
{
	char admin[64];
	th_key_create(url, NULL, admin, sizeof admin);
	long long before = key_scans();
	th_daemon_start(&d, url, NULL, false);
	enum { REQUESTS = 3000 };
	int n401 = 0, n429 = 0;
	double t0 = th_now();
	char token[AUTH_TOKEN_LEN + 1];
	for (int i = 0; i < REQUESTS; i++) {
		random_token(token, sizeof token);
		long st = me_token(token, NULL);
		ck_assert_msg(st == 401 || st == 429, "request %d: %ld", i, st);
		n401 += st == 401;
		n429 += st == 429;
	}
	double elapsed = th_now() - t0;
	struct th_resp r;
	random_token(token, sizeof token);
	char h[128];
	snprintf(h, sizeof h, "Bearer %s", token);
	me_as(h, NULL, &r);
	assert_failures_429(&r);
	/* A valid key from the same address waits too (see api/auth.c). */
	snprintf(h, sizeof h, "Bearer %s", admin);
	me_as(h, NULL, &r);
	assert_failures_429(&r);
	th_daemon_stop(&d, SIGTERM);

	int allowed = 20 + (int)(2 * elapsed) + 2;
	ck_assert_msg(n401 >= 20 && n401 <= allowed, "%d answered 401 in %.1f s", n401, elapsed);
	ck_assert_int_eq(n401 + n429, REQUESTS);
	long long scans = key_scans() - before;
	ck_assert_msg(scans >= 20 && scans <= allowed,
		      "%lld lookups of api_keys for %d requests in %.1f s", scans, REQUESTS,
		      elapsed);
}
END_TEST

/* Five failures (the burst) from the client that xff names. */
static void exhaust(const char *xff)
{
	char token[AUTH_TOKEN_LEN + 1];
	for (int i = 0; i < 5; i++) {
		random_token(token, sizeof token);
		ck_assert_int_eq(me_token(token, xff), 401);
	}
}

START_TEST(test_failure_limit_per_address)
{
	char admin[64], token[AUTH_TOKEN_LEN + 1];
	th_key_create(url, NULL, admin, sizeof admin);
	th_daemon_start(&d, url,
			"[limits]\nauth_failure_rate = 1\nauth_failure_burst = 5\n"
			"trusted_proxies = 127.0.0.1, 10.0.0.0/8\n",
			false);
	struct th_resp r;
	char h[128];
	snprintf(h, sizeof h, "Bearer %s", admin);

	/* Client A (behind the trusted proxy) fails its burst: then 429, whatever its
	 * token. */
	exhaust("198.51.100.7");
	random_token(token, sizeof token);
	snprintf(h, sizeof h, "Bearer %s", token);
	me_as(h, "198.51.100.7", &r);
	assert_failures_429(&r);
	snprintf(h, sizeof h, "Bearer %s", admin);
	me_as(h, "198.51.100.7", &r);
	assert_failures_429(&r);
	me_as(NULL, "198.51.100.7", &r);
	assert_failures_429(&r);
	/* A cannot pass for someone else by writing the header itself: the proxy appends
	 * A's address, and the right-most untrusted address counts. */
	me_as(h, "198.51.100.8, 198.51.100.7", &r);
	assert_failures_429(&r);
	me_as(h, "198.51.100.7, 10.1.2.3, 127.0.0.1", &r);
	assert_failures_429(&r);

	/* Client B, the proxy itself and a range of proxies in between are served. */
	ck_assert_int_eq(me_token(admin, "198.51.100.8"), 200);
	ck_assert_int_eq(me_token(admin, "203.0.113.5, 198.51.100.8, 10.9.9.9"), 200);
	ck_assert_int_eq(me_token(admin, NULL), 200);
	random_token(token, sizeof token);
	ck_assert_int_eq(me_token(token, "198.51.100.8"), 401);

	/* A request without any key is no attempt at one: not counted. */
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(me_as(NULL, "198.51.100.9", NULL), 401);
	ck_assert_int_eq(me_token(admin, "198.51.100.9"), 200);

	/* IPv6 clients count by their /64. */
	exhaust("2001:db8:1:2::1");
	me_as(h, "2001:db8:1:2::99", &r);
	assert_failures_429(&r);
	ck_assert_int_eq(me_token(admin, "[2001:db8:1:3::1]:4711"), 200);

	/* The allowance refills at the rate: one more attempt a second. */
	usleep(1100 * 1000);
	random_token(token, sizeof token);
	ck_assert_int_eq(me_token(token, "198.51.100.7"), 401);
	me_as(h, "198.51.100.7", &r);
	assert_failures_429(&r);

	/* Without trusted proxies the header is ignored: every client is the peer. */
	th_daemon_reload_with(&d, "[limits]\ntrusted_proxies =\n");
	exhaust("192.0.2.1");
	me_as(h, "192.0.2.2", &r);
	assert_failures_429(&r);
	me_as(h, NULL, &r);
	assert_failures_429(&r);
}
END_TEST

/* Revokes key id with dualregctl. */
static void ctl_revoke(int id)
{
	char bin[512], env_url[1100], sid[32], out[1024];
	snprintf(bin, sizeof bin, "%s/dualregctl", th_env("DUALREG_TEST_BIN"));
	snprintf(env_url, sizeof env_url, "DUALREG_DATABASE_URL=%s", url);
	snprintf(sid, sizeof sid, "%d", id);
	char *argv[] = {bin, "-c", "/dev/null", "key", "revoke", sid, NULL};
	char *const envp[] = {env_url, NULL};
	ck_assert_msg(th_run(argv, envp, out, sizeof out) == 0, "%s", th_last_stderr());
}

static int key_id(const char *token)
{
	char h[128];
	struct th_resp r;
	snprintf(h, sizeof h, "Bearer %s", token);
	ck_assert_int_eq(me_as(h, NULL, &r), 200);
	int id = cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "key"), "id")->valueint;
	th_resp_free(&r);
	return id;
}

/* GET /v1/me with each of tokens[0..n) at once (one connection each); how many answered
 * 200. */
static int concurrent_me(char tokens[][64], int n)
{
	char u[256];
	snprintf(u, sizeof u, "%s/v1/me", d.base);
	CURLM *m = curl_multi_init();
	CURL **e = calloc((size_t)n, sizeof *e);
	struct curl_slist **h = calloc((size_t)n, sizeof *h);
	for (int i = 0; i < n; i++) {
		char auth[128];
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", tokens[i]);
		h[i] = curl_slist_append(NULL, auth);
		e[i] = curl_easy_init();
		curl_easy_setopt(e[i], CURLOPT_URL, u);
		curl_easy_setopt(e[i], CURLOPT_HTTPHEADER, h[i]);
		curl_easy_setopt(e[i], CURLOPT_NOBODY, 1L);
		curl_easy_setopt(e[i], CURLOPT_TIMEOUT, 10L);
		curl_multi_add_handle(m, e[i]);
	}
	int running = 1;
	while (running > 0) {
		curl_multi_perform(m, &running);
		if (running > 0)
			curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	int ok = 0;
	for (int i = 0; i < n; i++) {
		long st = 0;
		curl_easy_getinfo(e[i], CURLINFO_RESPONSE_CODE, &st);
		ok += st == 200;
		curl_multi_remove_handle(m, e[i]);
		curl_easy_cleanup(e[i]);
		curl_slist_free_all(h[i]);
	}
	curl_multi_cleanup(m);
	free(e);
	free(h);
	return ok;
}

/* A client sending many requests at once with its valid key, which is looked up for each
 * (key_cache_ttl = 0), is not taken for a guesser: only the first of concurrent lookups of
 * one token counts against the address, and a lookup that finds a key costs nothing. */
START_TEST(test_concurrent_lookups_of_a_valid_key)
{
	enum { N = 60 };
	static char tokens[N][64];
	th_key_create(url, NULL, tokens[0], sizeof tokens[0]);
	for (int i = 1; i < N; i++)
		memcpy(tokens[i], tokens[0], sizeof tokens[0]);
	th_daemon_start(&d, url, "[limits]\nkey_cache_ttl = 0\nauth_failure_burst = 5\n", false);
	for (int round = 0; round < 3; round++) {
		int ok = concurrent_me(tokens, N);
		ck_assert_msg(ok == N, "round %d: %d of %d concurrent requests with a valid key "
			      "answered 200", round, ok, N);
	}
}
END_TEST

/* A client holding many keys (an MIS provider serving many schools from one address)
 * sends a request with each at once while none is cached: more lookups than its
 * address may have in flight (the failure burst). Those beyond wait their turn and are
 * answered, not refused; a burst of unknown tokens among them still uses up the
 * address's failures, after which it is refused before any lookup. */
START_TEST(test_many_valid_keys_from_one_address)
{
	enum { N = 120 };
	static char tokens[N][64];
	for (int i = 0; i < N; i++)
		th_key_create(url, NULL, tokens[i], sizeof tokens[i]);
	th_daemon_start(&d, url, "[limits]\nkey_cache_ttl = 0\nauth_failure_burst = 5\n", false);
	int ok = concurrent_me(tokens, N);
	ck_assert_msg(ok == N, "%d of %d concurrent requests with distinct valid keys answered 200",
		      ok, N);
	/* the failures still count: five unknown tokens, then even a valid key waits */
	exhaust(NULL);
	struct th_resp r;
	char auth[128];
	snprintf(auth, sizeof auth, "Bearer %s", tokens[0]);
	me_as(auth, NULL, &r);
	assert_failures_429(&r);
}
END_TEST

START_TEST(test_revocation_is_immediate)
{
	char admin[64], other[64];
	th_key_create(url, NULL, admin, sizeof admin);
	th_key_create(url, NULL, other, sizeof other);
	th_daemon_start(&d, url, "[limits]\nkey_cache_ttl = 1h\n", false);
	int id = key_id(admin); /* looked up and cached */
	ck_assert_int_eq(me_token(admin, NULL), 200);
	ck_assert_int_eq(me_token(other, NULL), 200);
	ctl_revoke(id);
	double t0 = th_now();
	long st;
	while ((st = me_token(admin, NULL)) == 200 && th_now() - t0 < 2.0)
		usleep(20 * 1000);
	ck_assert_msg(st == 401, "the revoked key is still accepted after %.1f s",
		      th_now() - t0);
	ck_assert_int_eq(me_token(admin, NULL), 401);
	ck_assert_int_eq(me_token(other, NULL), 200);
	/* A new key works at once too. */
	char fresh[64];
	th_key_create(url, NULL, fresh, sizeof fresh);
	ck_assert_int_eq(me_token(fresh, NULL), 200);
}
END_TEST

START_TEST(test_trusted_proxies_setting)
{
	struct config cfg;
	char err[600];
	ck_assert_int_eq(cfg_load_string(&cfg, "t",
					 "[limits]\ntrusted_proxies = 127.0.0.1, 10.0.0.0/8, ::1, "
					 "2001:db8::/32,192.168.0.0/16\n",
					 err, sizeof err),
			 0);
	ck_assert_str_eq(cfg.trusted_proxies,
			 "127.0.0.1, 10.0.0.0/8, ::1, 2001:db8::/32,192.168.0.0/16");
	cfg_free(&cfg);
	const char *bad[] = {"10.0.0.0/33",   "2001:db8::/129", "proxy.example",
			     "10.0.0.1,,10.0.0.2", "10.0.0.1,",  "10.0.0.0/", "10.0.0.0/8x",
			     "1.2.3.4/-1",    "1.2.3"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char ini[256];
		snprintf(ini, sizeof ini, "[limits]\ntrusted_proxies = %s\n", bad[i]);
		ck_assert_msg(cfg_load_string(&cfg, "t", ini, err, sizeof err) == -1, "%s", bad[i]);
		ck_assert_msg(strstr(err, "t:2: [limits] trusted_proxies: ") != NULL, "%s: %s",
			      bad[i], err);
	}
}
END_TEST

Suite *auth_abuse_suite(void)
{
	Suite *s = suite_create("auth_abuse");
	TCase *unit = tcase_create("config");
	tcase_add_test(unit, test_trusted_proxies_setting);
	suite_add_tcase(s, unit);
	TCase *tc = tcase_create("daemon");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, test_unknown_tokens_cost_one_query_each);
	tcase_add_test(tc, test_failure_limit_keeps_lookups_flat);
	tcase_add_test(tc, test_failure_limit_per_address);
	tcase_add_test(tc, test_revocation_is_immediate);
	tcase_add_test(tc, test_concurrent_lookups_of_a_valid_key);
	tcase_add_test(tc, test_many_valid_keys_from_one_address);
	suite_add_tcase(s, tc);
	return s;
}
