/*
 * auth: authentication and the per-key rate limit through the real daemon, with
 * GET /v1/me as the probe. Missing, malformed, unknown and revoked keys (401 with
 * WWW-Authenticate), the configurable key cache, token buckets per key, and a SIGHUP
 * reload changing the limit. Also the [limits] key_cache_ttl setting itself.
 */
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dualreg/config.h"
#include "../harness.h"
#include "../suites.h"

static char url[1024];
static struct th_daemon d;

static void setup(void)
{
	th_db_create_migrated(url, sizeof url);
	th_sql(url, "INSERT INTO schools (urn, name, kind) VALUES ('100001', 'Hill School', "
		    "'mainstream')");
}

static void teardown(void)
{
	if (d.pid > 0)
		th_daemon_stop(&d, SIGKILL);
}

/* GET /v1/me with a raw Authorization header value (NULL: none). */
static void me_raw(const char *authorization, struct th_resp *r)
{
	char u[256], h[512];
	snprintf(u, sizeof u, "%s/v1/me", d.base);
	snprintf(h, sizeof h, "Authorization: %s", authorization ? authorization : "");
	const char *headers[] = {h, NULL};
	ck_assert(th_http("GET", u, NULL, 0, authorization ? headers : NULL, r) == 0);
}

static long me_status(const char *token)
{
	struct th_resp r;
	th_api(&d, "GET", "/v1/me", token, NULL, NULL, &r);
	long st = r.status;
	th_resp_free(&r);
	return st;
}

static void assert_401(struct th_resp *r, const char *detail_part)
{
	th_assert_problem(r, 401);
	ck_assert_str_eq(r->www_authenticate, "Bearer realm=\"dualreg\"");
	const char *detail = cJSON_GetObjectItem(r->json, "detail")->valuestring;
	ck_assert_msg(strstr(detail, detail_part) != NULL, "detail: %s", detail);
	th_resp_free(r);
}

static int ctl(char *const args[], char *out, size_t outlen)
{
	char bin[512], env_url[1100];
	snprintf(bin, sizeof bin, "%s/dualregctl", th_env("DUALREG_TEST_BIN"));
	snprintf(env_url, sizeof env_url, "DUALREG_DATABASE_URL=%s", url);
	char *argv[16] = {bin, "-c", "/dev/null"};
	size_t n = 3;
	for (size_t i = 0; args[i] != NULL && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	char *const envp[] = {env_url, NULL};
	return th_run(argv, envp, out, outlen);
}

START_TEST(test_me)
{
	char admin[64], school[64];
	th_key_create(url, NULL, admin, sizeof admin);
	th_key_create(url, "100001", school, sizeof school);
	th_daemon_start(&d, url, NULL, false);

	struct th_resp r;
	th_api(&d, "GET", "/v1/me", admin, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.content_type, "application/json");
	cJSON *k = cJSON_GetObjectItem(r.json, "key");
	ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(k, "id")));
	ck_assert_int_gt(cJSON_GetObjectItem(k, "id")->valueint, 0);
	ck_assert_str_eq(cJSON_GetObjectItem(k, "name")->valuestring, "admin");
	ck_assert_str_eq(cJSON_GetObjectItem(k, "role")->valuestring, "admin");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(k, "urn")));
	int admin_id = cJSON_GetObjectItem(k, "id")->valueint;
	th_resp_free(&r);

	th_api(&d, "GET", "/v1/me", school, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	k = cJSON_GetObjectItem(r.json, "key");
	ck_assert_int_ne(cJSON_GetObjectItem(k, "id")->valueint, admin_id);
	ck_assert_str_eq(cJSON_GetObjectItem(k, "name")->valuestring, "school 100001");
	ck_assert_str_eq(cJSON_GetObjectItem(k, "role")->valuestring, "school");
	ck_assert_str_eq(cJSON_GetObjectItem(k, "urn")->valuestring, "100001");
	th_resp_free(&r);

	/* Only GET (and HEAD) is routed. */
	th_api(&d, "POST", "/v1/me", admin, "{}", NULL, &r);
	th_assert_problem(&r, 405);
	th_resp_free(&r);
}
END_TEST

START_TEST(test_unauthenticated)
{
	char admin[64];
	th_key_create(url, NULL, admin, sizeof admin);
	th_daemon_start(&d, url, NULL, false);
	struct th_resp r;

	me_raw(NULL, &r);
	assert_401(&r, "missing Authorization");
	char basic[128];
	snprintf(basic, sizeof basic, "Basic %s", admin);
	me_raw(basic, &r);
	assert_401(&r, "must be: Bearer");
	me_raw("Bearer", &r);
	assert_401(&r, "must be: Bearer");
	me_raw("Bearer drk_short", &r);
	assert_401(&r, "malformed");
	/* Right length, wrong prefix. */
	char wrong[128];
	snprintf(wrong, sizeof wrong, "Bearer xyz_%s", admin + 4);
	me_raw(wrong, &r);
	assert_401(&r, "malformed");
	/* Well formed but unknown: one character changed. */
	char unknown[128];
	snprintf(unknown, sizeof unknown, "Bearer %s", admin);
	char *last = unknown + strlen(unknown) - 1;
	*last = *last == 'A' ? 'B' : 'A';
	me_raw(unknown, &r);
	assert_401(&r, "unknown or revoked");
	/* The real key still works, and the scheme name is case-insensitive. */
	char lower[128];
	snprintf(lower, sizeof lower, "bearer %s", admin);
	me_raw(lower, &r);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);
}
END_TEST

/* Revokes the key with dualregctl (its id read from /v1/me). */
static void revoke_key(const char *token)
{
	struct th_resp r;
	th_api(&d, "GET", "/v1/me", token, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	char id[32], out[1024];
	snprintf(id, sizeof id, "%d",
		 cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "key"), "id")->valueint);
	th_resp_free(&r);
	char *args[] = {"key", "revoke", id, NULL};
	ck_assert_msg(ctl(args, out, sizeof out) == 0, "%s", out);
}

START_TEST(test_revoked_key_short_cache)
{
	char admin[64], other[64];
	th_key_create(url, NULL, admin, sizeof admin);
	th_key_create(url, NULL, other, sizeof other);
	th_daemon_start(&d, url, "[limits]\nkey_cache_ttl = 300ms\n", false);
	revoke_key(admin);
	double t0 = th_now();
	long st = 200;
	while (th_now() - t0 < 5.0 && (st = me_status(admin)) == 200)
		usleep(50 * 1000);
	ck_assert_int_eq(st, 401);
	ck_assert_double_lt(th_now() - t0, 3.0);
	struct th_resp r;
	th_api(&d, "GET", "/v1/me", admin, NULL, NULL, &r);
	assert_401(&r, "unknown or revoked");
	/* Other keys are unaffected. */
	ck_assert_int_eq(me_status(other), 200);
}
END_TEST

START_TEST(test_rate_limit)
{
	char a[64], b[64];
	th_key_create(url, NULL, a, sizeof a);
	th_key_create(url, "100001", b, sizeof b);
	th_daemon_start(&d, url, "[limits]\nrate = 1\nburst = 3\n", false);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(me_status(a), 200);
	struct th_resp r;
	th_api(&d, "GET", "/v1/me", a, NULL, NULL, &r);
	th_assert_problem(&r, 429);
	ck_assert_str_eq(cJSON_GetObjectItem(r.json, "type")->valuestring,
			 "/problems/too-many-requests");
	ck_assert_msg(r.retry_after[0] != '\0', "no Retry-After");
	ck_assert_int_ge(atoi(r.retry_after), 1);
	th_resp_free(&r);
	/* Another key has its own bucket. */
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(me_status(b), 200);
	ck_assert_int_eq(me_status(b), 429);
	/* Unauthenticated routes are not limited. */
	th_api(&d, "GET", "/healthz", NULL, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);
	/* The bucket refills at the rate: one request per second. */
	usleep(1100 * 1000);
	ck_assert_int_eq(me_status(a), 200);
	ck_assert_int_eq(me_status(a), 429);
}
END_TEST

START_TEST(test_rate_limit_reload)
{
	char a[64];
	th_key_create(url, NULL, a, sizeof a);
	th_daemon_start(&d, url, "[limits]\nrate = 1\nburst = 2\n", false);
	ck_assert_int_eq(me_status(a), 200);
	ck_assert_int_eq(me_status(a), 200);
	ck_assert_int_eq(me_status(a), 429);

	th_daemon_reload_with(&d, "[limits]\nrate = 1000\nburst = 1000\n");
	usleep(100 * 1000); /* refills about 100 tokens at the new rate */
	for (int i = 0; i < 20; i++) {
		long st = me_status(a);
		ck_assert_msg(st == 200, "request %d after the reload: %ld; see %s", i, st,
			      d.log_path);
	}

	/* Tightening applies at once: the bucket (refilled meanwhile) is capped at the new
	 * burst. */
	usleep(100 * 1000);
	th_daemon_reload_with(&d, "[limits]\nrate = 1\nburst = 2\n");
	ck_assert_int_eq(me_status(a), 200);
	ck_assert_int_eq(me_status(a), 200);
	ck_assert_int_eq(me_status(a), 429);
}
END_TEST

START_TEST(test_key_cache_ttl_setting)
{
	struct config cfg;
	char err[600];
	cfg_defaults(&cfg);
	ck_assert_uint_eq(cfg.key_cache_ttl_ms, 10000);
	cfg_free(&cfg);
	ck_assert_int_eq(cfg_load_string(&cfg, "t", "[limits]\nkey_cache_ttl = 250ms\n", err,
					 sizeof err),
			 0);
	ck_assert_uint_eq(cfg.key_cache_ttl_ms, 250);
	cfg_free(&cfg);
	ck_assert_int_eq(cfg_load_string(&cfg, "t", "[limits]\nkey_cache_ttl = 0\n", err,
					 sizeof err),
			 0);
	ck_assert_uint_eq(cfg.key_cache_ttl_ms, 0);
	cfg_free(&cfg);
	ck_assert_int_eq(cfg_load_string(&cfg, "t", "[limits]\nkey_cache_ttl = 2h\n", err,
					 sizeof err),
			 -1);
	ck_assert_msg(strstr(err, "t:2: [limits] key_cache_ttl: ") != NULL, "%s", err);
	ck_assert_int_eq(cfg_load_string(&cfg, "t", "[limits]\nkey_cache_ttl = soon\n", err,
					 sizeof err),
			 -1);
	ck_assert_msg(strstr(err, "key_cache_ttl") != NULL, "%s", err);
}
END_TEST

Suite *auth_suite(void)
{
	Suite *s = suite_create("auth");
	TCase *unit = tcase_create("config");
	tcase_add_test(unit, test_key_cache_ttl_setting);
	suite_add_tcase(s, unit);
	TCase *tc = tcase_create("daemon");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_me);
	tcase_add_test(tc, test_unauthenticated);
	tcase_add_test(tc, test_revoked_key_short_cache);
	tcase_add_test(tc, test_rate_limit);
	tcase_add_test(tc, test_rate_limit_reload);
	suite_add_tcase(s, tc);
	return s;
}
