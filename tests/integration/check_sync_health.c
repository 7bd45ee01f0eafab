/*
 * sync_health: GET /v1/schools/{urn}/sync and `dualregctl sync status --school` against
 * the real daemon and database. A school's MIS (a th_server thread) answers 500 both to
 * its webhook deliveries and to its feed, and the answer shows the backlog, the errors
 * and the failing feed without the feed's token; the key scope (own school, admin, else
 * 404); the counts' 24-hour window and the states on rows written directly; and the
 * command line printing the very document the API serves.
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

#define PRU "100002"
#define HOME "100001"
#define UPN "B801200005001"
#define FEED_TOKEN "feed-token-s3cr3t-41"
#define HOME_TOKEN "home-feed-token-s3cr3t-42"

/* The school's MIS: every webhook and every feed read fails with 500. */
static struct th_server mis;
static pthread_mutex_t mis_mu = PTHREAD_MUTEX_INITIALIZER;
static int hook_hits, feed_hits;

static char url[1024], env_url[1200], ctl_path[512];
static char day[16]; /* a recent school day on which the pupil is expected at the PRU */
static struct th_daemon d;
static char admin[64], home_key[64], pru_key[64];

/* The members of the document and of its parts, as the contract lists them. */
static const char *const top_members[] = {"urn", "subscriptions", "pull", "last_api_mark_at",
					  NULL};
static const char *const sub_members[] = {
    "id", "url", "state", "backlog", "oldest_undelivered_age_s", "delivered_24h",
    "failed_24h", "last_error", "last_error_at", NULL};
static const char *const pull_members[] = {
    "url", "state", "cursor", "last_ok_at", "last_error", "last_error_at", "failures",
    "next_at", "rejected", "rejections_url", NULL};

static void mis_cb(struct evhttp_request *req, void *arg)
{
	(void)arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	pthread_mutex_lock(&mis_mu);
	if (strcmp(path, "/hook") == 0)
		hook_hits++;
	else
		feed_hits++;
	pthread_mutex_unlock(&mis_mu);
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_printf(b, "boom");
	evhttp_send_reply(req, 500, "Internal Server Error", b);
	evbuffer_free(b);
}

static void setup(void)
{
	hook_hits = feed_hits = 0;
	mis.handler = mis_cb;
	th_server_start(&mis);
	th_db_create_migrated(url, sizeof url);
	snprintf(env_url, sizeof env_url, "DUALREG_DATABASE_URL=%s", url);
	snprintf(ctl_path, sizeof ctl_path, "%s/dualregctl", th_env("DUALREG_TEST_BIN"));
	th_sql(url, "INSERT INTO schools (urn, name, kind) VALUES ('" HOME "', 'Home', "
		    "'mainstream'), ('" PRU "', 'PRU', 'pru');"
		    "INSERT INTO pupils VALUES ('" UPN "', 'Ann', 'Bell', '2012-01-01');"
		    "INSERT INTO registrations (upn, urn, role, start_date) VALUES "
		    "('" UPN "', '" HOME "', 'main', dualreg_today() - 40),"
		    "('" UPN "', '" PRU "', 'subsidiary', dualreg_today() - 40);"
		    "INSERT INTO registration_schedules SELECT id, start_date, 63 "
		    "FROM registrations WHERE role = 'subsidiary'");
	PGconn *c = PQconnectdb(url);
	PGresult *res = PQexec(c, "SELECT max(x)::date FROM generate_series(dualreg_today() - 14, "
				  "dualreg_today() - 1, interval '1 day') x "
				  "WHERE extract(isodow FROM x) <= 3");
	snprintf(day, sizeof day, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	PQfinish(c);
	th_key_create(url, NULL, admin, sizeof admin);
	th_key_create(url, HOME, home_key, sizeof home_key);
	th_key_create(url, PRU, pru_key, sizeof pru_key);
	/* A failed delivery is retried an hour later and missing-mark alerts wait a day, so
	 * once the first attempts have failed nothing changes under the assertions. */
	th_daemon_start(&d, url,
			"[webhooks]\nallow_http = true\nallow_private = true\n[pull]\nallow_http = true\nallow_private = true\n"
			"[webhooks]\nretry_schedule = 1h\n[pull]\ntimeout = 5s\n"
			"[alerts]\nmissing_grace = 24h\ncheck_interval = 1h\n",
			false);
}

static void teardown(void)
{
	if (d.pid > 0)
		th_daemon_stop(&d, SIGKILL);
	th_server_stop(&mis);
}

/* Asserts o is an object with exactly these members (the contract's
 * additionalProperties: false, every member required). */
static void assert_members(const cJSON *o, const char *const *names, const char *what)
{
	ck_assert_msg(cJSON_IsObject(o), "%s is not an object", what);
	int n = 0;
	for (; names[n] != NULL; n++)
		ck_assert_msg(cJSON_GetObjectItemCaseSensitive(o, names[n]) != NULL, "%s lacks %s",
			      what, names[n]);
	ck_assert_msg(cJSON_GetArraySize(o) == n, "%s has %d members, not %d", what,
		      cJSON_GetArraySize(o), n);
}

/* Asserts the shape of a whole sync document (every member, every type). */
static void assert_shape(const cJSON *h)
{
	assert_members(h, top_members, "the document");
	ck_assert(cJSON_IsString(cJSON_GetObjectItem(h, "urn")));
	const cJSON *lm = cJSON_GetObjectItem(h, "last_api_mark_at");
	ck_assert(cJSON_IsNull(lm) || cJSON_IsString(lm));
	const cJSON *subs = cJSON_GetObjectItem(h, "subscriptions");
	ck_assert(cJSON_IsArray(subs));
	const cJSON *s;
	cJSON_ArrayForEach(s, subs)
	{
		assert_members(s, sub_members, "a subscription");
		ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(s, "id")));
		ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(s, "backlog")));
		ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(s, "delivered_24h")));
		ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(s, "failed_24h")));
		const cJSON *age = cJSON_GetObjectItem(s, "oldest_undelivered_age_s");
		ck_assert(cJSON_IsNull(age) || cJSON_IsNumber(age));
		/* no backlog, no age; a backlog, an age */
		ck_assert_int_eq(cJSON_IsNull(age),
				 cJSON_GetObjectItem(s, "backlog")->valuedouble == 0);
	}
	const cJSON *p = cJSON_GetObjectItem(h, "pull");
	ck_assert(cJSON_IsNull(p) || cJSON_IsObject(p));
	if (cJSON_IsObject(p)) {
		assert_members(p, pull_members, "pull");
		ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(p, "failures")));
		ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(p, "rejected")));
		ck_assert(cJSON_IsString(cJSON_GetObjectItem(p, "next_at")));
	}
}

/* GET /v1/schools/{urn}/sync with key: a 200 whose document has the contract's shape,
 * returned (the caller deletes it). */
static cJSON *get_sync(const char *urn, const char *key)
{
	char path[64];
	snprintf(path, sizeof path, "/v1/schools/%s/sync", urn);
	struct th_resp r;
	th_api(&d, "GET", path, key, NULL, NULL, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	ck_assert_str_eq(r.content_type, "application/json");
	ck_assert_msg(strstr(r.body, FEED_TOKEN) == NULL && strstr(r.body, HOME_TOKEN) == NULL,
		      "a feed token is shown: %s", r.body);
	cJSON *h = cJSON_Duplicate(r.json, 1);
	th_resp_free(&r);
	assert_shape(h);
	return h;
}

static const cJSON *member(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	ck_assert_msg(v != NULL, "%s missing", name);
	return v;
}

static const char *text(const cJSON *o, const char *name)
{
	const cJSON *v = member(o, name);
	ck_assert_msg(cJSON_IsString(v), "%s is not a string", name);
	return v->valuestring;
}

static long long count(const cJSON *o, const char *name)
{
	const cJSON *v = member(o, name);
	ck_assert_msg(cJSON_IsNumber(v), "%s is not a number", name);
	return (long long)v->valuedouble;
}

/* Runs dualregctl with args (NULL-terminated); its standard output into out. */
static int ctl(char *out, size_t len, const char *const *args)
{
	char *argv[16] = {ctl_path, "-c", "/dev/null"};
	int n = 3;
	for (; args[n - 3] != NULL && n < 15; n++)
		argv[n] = (char *)args[n - 3];
	argv[n] = NULL;
	char *const envp[] = {env_url, NULL};
	return th_run(argv, envp, out, len);
}

/* Runs dualregctl with args through sh with its standard error joined to its output,
 * so that a message can be asserted whatever th_run does with standard error. */
static int ctl_joined(char *out, size_t len, const char *const *args)
{
	char *argv[20] = {"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>&1", ctl_path, "-c", "/dev/null"};
	int n = 6;
	for (; args[n - 6] != NULL && n < 19; n++)
		argv[n] = (char *)args[n - 6];
	argv[n] = NULL;
	char *const envp[] = {env_url, NULL};
	return th_run(argv, envp, out, len);
}

/* The one text value a query returns (NULL as ""). */
static void sql_text(const char *sql, char *out, size_t len)
{
	PGconn *c = PQconnectdb(url);
	PGresult *r = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "%s: %s", sql,
		      PQresultErrorMessage(r));
	snprintf(out, len, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
}

/* Polls the PRU's document until both its webhook and its feed have failed (bounded). */
static cJSON *wait_failing(void)
{
	double deadline = th_now() + 20;
	cJSON *h = NULL;
	while (th_now() < deadline) {
		cJSON_Delete(h);
		h = get_sync(PRU, pru_key);
		const cJSON *sub = cJSON_GetArrayItem(cJSON_GetObjectItem(h, "subscriptions"), 0);
		const cJSON *pull = cJSON_GetObjectItem(h, "pull");
		if (cJSON_IsString(cJSON_GetObjectItem(sub, "last_error")) &&
		    cJSON_GetObjectItem(pull, "failures")->valuedouble >= 1)
			return h;
		usleep(100000);
	}
	char *t = cJSON_Print(h);
	ck_abort_msg("the webhook and the feed never both failed: %s", t);
	return NULL;
}

/* The document without its ages (they move with the clock), for comparing two reads. */
static cJSON *without_ages(const cJSON *h)
{
	cJSON *copy = cJSON_Duplicate(h, 1);
	cJSON *s;
	cJSON_ArrayForEach(s, cJSON_GetObjectItem(copy, "subscriptions"))
		cJSON_DeleteItemFromObjectCaseSensitive(s, "oldest_undelivered_age_s");
	return copy;
}

static const cJSON *first_sub(const cJSON *h)
{
	const cJSON *s = cJSON_GetArrayItem(cJSON_GetObjectItem(h, "subscriptions"), 0);
	ck_assert_ptr_nonnull(s);
	return s;
}

static bool same_but_ages(const cJSON *a, const cJSON *b)
{
	cJSON *x = without_ages(a), *y = without_ages(b);
	bool same = cJSON_Compare(x, y, true);
	cJSON_Delete(x);
	cJSON_Delete(y);
	return same;
}

START_TEST(test_failing_webhook_and_feed)
{
	/* Nothing set up yet: no subscriptions, no feed, no API mark. */
	cJSON *h = get_sync(PRU, pru_key);
	ck_assert_str_eq(text(h, "urn"), PRU);
	ck_assert_int_eq(cJSON_GetArraySize(member(h, "subscriptions")), 0);
	ck_assert(cJSON_IsNull(member(h, "pull")));
	ck_assert(cJSON_IsNull(member(h, "last_api_mark_at")));
	cJSON_Delete(h);

	char body[512], hook_url[128], feed_url[128];
	snprintf(hook_url, sizeof hook_url, "http://127.0.0.1:%u/hook", mis.port);
	snprintf(feed_url, sizeof feed_url, "http://127.0.0.1:%u/feed", mis.port);
	snprintf(body, sizeof body, "{\"url\": \"%s\", \"events\": [\"*\"]}", hook_url);
	struct th_resp r;
	th_api(&d, "POST", "/v1/subscriptions", pru_key, body, NULL, &r);
	ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
	long long sub_id = (long long)cJSON_GetObjectItem(r.json, "id")->valuedouble;
	th_resp_free(&r);
	snprintf(body, sizeof body,
		 "{\"pull_url\": \"%s\", \"pull_token\": \"" FEED_TOKEN "\", "
		 "\"pull_interval\": 3600}",
		 feed_url);
	th_api(&d, "PATCH", "/v1/schools/" PRU, admin, body, NULL, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	th_resp_free(&r);
	/* A mark through the API: recorded, and its events go to the failing webhook. */
	snprintf(body, sizeof body,
		 "{\"marks\": [{\"upn\": \"" UPN "\", \"urn\": \"" PRU "\", \"date\": \"%s\", "
		 "\"session\": \"AM\", \"code\": \"/\"}]}",
		 day);
	th_api(&d, "POST", "/v1/marks", pru_key, body, NULL, &r);
	ck_assert_msg(r.status == 200 && strstr(r.body, "\"created\"") != NULL, "%ld %s", r.status,
		      r.body);
	th_resp_free(&r);

	h = wait_failing();
	const cJSON *subs = member(h, "subscriptions");
	ck_assert_int_eq(cJSON_GetArraySize(subs), 1);
	const cJSON *sub = cJSON_GetArrayItem(subs, 0);
	ck_assert_int_eq(count(sub, "id"), sub_id);
	ck_assert_str_eq(text(sub, "url"), hook_url);
	ck_assert_str_eq(text(sub, "state"), "active");
	ck_assert_int_ge(count(sub, "backlog"), 1);
	long long age = count(sub, "oldest_undelivered_age_s");
	ck_assert_msg(age >= 0 && age < 60, "age %lld", age);
	ck_assert_int_eq(count(sub, "delivered_24h"), 0);
	ck_assert_int_eq(count(sub, "failed_24h"), 0);
	ck_assert_str_eq(text(sub, "last_error"), "HTTP 500");
	text(sub, "last_error_at");

	const cJSON *pull = member(h, "pull");
	ck_assert_str_eq(text(pull, "url"), feed_url);
	ck_assert_str_eq(text(pull, "state"), "failing");
	ck_assert_int_ge(count(pull, "failures"), 1);
	ck_assert_msg(strstr(text(pull, "last_error"), "HTTP 500") != NULL, "%s",
		      text(pull, "last_error"));
	text(pull, "last_error_at");
	ck_assert(cJSON_IsNull(member(pull, "cursor")));
	ck_assert(cJSON_IsNull(member(pull, "last_ok_at")));
	ck_assert_int_eq(count(pull, "rejected"), 0);
	ck_assert_str_eq(text(pull, "rejections_url"), "/v1/schools/" PRU "/pull");
	/* The next attempt waits out the interval (an hour here) after the failure. */
	char later[8];
	snprintf(body, sizeof body,
		 "SELECT ('%s'::timestamptz > now() + interval '50 minutes')::text",
		 text(pull, "next_at"));
	sql_text(body, later, sizeof later);
	ck_assert_str_eq(later, "true");
	/* The link leads to the refusals, readable with the same key. */
	th_api(&d, "GET", text(pull, "rejections_url"), pru_key, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert(cJSON_IsArray(cJSON_GetObjectItem(r.json, "rejections")));
	th_resp_free(&r);

	/* The mark posted above is the school's last API mark. */
	char want[64];
	sql_text("SELECT to_json(max(changed_at))#>>'{}' FROM mark_history WHERE urn = '" PRU
		 "' AND new_source = 'api'",
		 want, sizeof want);
	ck_assert_str_ne(want, "");
	ck_assert_str_eq(text(h, "last_api_mark_at"), want);
	/* Both failures really happened at the MIS. */
	pthread_mutex_lock(&mis_mu);
	ck_assert_int_ge(hook_hits, 1);
	ck_assert_int_ge(feed_hits, 1);
	pthread_mutex_unlock(&mis_mu);
	cJSON_Delete(h);
}
END_TEST

START_TEST(test_ctl_prints_the_same_document)
{
	char body[512], out[16384];
	snprintf(body, sizeof body,
		 "{\"url\": \"http://127.0.0.1:%u/hook\", \"events\": [\"*\"], "
		 "\"urn\": \"" PRU "\"}",
		 mis.port);
	struct th_resp r;
	th_api(&d, "POST", "/v1/subscriptions", admin, body, NULL, &r);
	ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
	th_resp_free(&r);
	snprintf(body, sizeof body,
		 "{\"pull_url\": \"http://127.0.0.1:%u/feed\", \"pull_token\": \"" FEED_TOKEN
		 "\", \"pull_interval\": 3600}",
		 mis.port);
	th_api(&d, "PATCH", "/v1/schools/" PRU, admin, body, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);
	th_sql(url, "SELECT dualreg_emit('mark.recorded', '" UPN "', ARRAY['" PRU "'], '{}')");
	cJSON_Delete(wait_failing());

	/* The API read just before and just after the command agree: then so must it (the
	 * ages aside, which move with the clock; they may differ by the seconds between). */
	const char *const json_args[] = {"sync", "status", "--school", PRU, "--json", NULL};
	bool compared = false;
	for (int attempt = 0; attempt < 5 && !compared; attempt++) {
		cJSON *before = get_sync(PRU, admin);
		ck_assert_int_eq(ctl(out, sizeof out, json_args), 0);
		cJSON *after = get_sync(PRU, admin);
		if (same_but_ages(before, after)) {
			cJSON *printed = cJSON_Parse(out);
			ck_assert_msg(printed != NULL, "not JSON: %s", out);
			assert_shape(printed);
			char *a = cJSON_PrintUnformatted(before);
			ck_assert_msg(same_but_ages(printed, before), "API %s\nctl %s", a, out);
			free(a);
			long long age = count(first_sub(printed), "oldest_undelivered_age_s");
			ck_assert_int_ge(age, count(first_sub(before), "oldest_undelivered_age_s"));
			ck_assert_int_le(age, count(first_sub(after), "oldest_undelivered_age_s"));
			cJSON_Delete(printed);
			compared = true;
		}
		cJSON_Delete(before);
		cJSON_Delete(after);
	}
	ck_assert_msg(compared, "the document kept changing between reads");
	ck_assert_ptr_null(strstr(out, FEED_TOKEN));

	/* The text form says the same in words, without the token. */
	const char *const text_args[] = {"sync", "status", "--school", PRU, NULL};
	ck_assert_int_eq(ctl(out, sizeof out, text_args), 0);
	ck_assert_msg(strstr(out, "school " PRU) != NULL, "%s", out);
	ck_assert_msg(strstr(out, "/hook") != NULL && strstr(out, "active") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "last error") != NULL && strstr(out, "HTTP 500") != NULL, "%s",
		      out);
	ck_assert_msg(strstr(out, "state failing") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "GET /v1/schools/" PRU "/pull") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "last mark through the API: never") != NULL, "%s", out);
	ck_assert_ptr_null(strstr(out, FEED_TOKEN));

	/* Without --school: the all-schools view as before. */
	const char *const all_args[] = {"sync", "status", NULL};
	ck_assert_int_eq(ctl(out, sizeof out, all_args), 0);
	ck_assert_msg(strstr(out, "webhook subscriptions:") != NULL &&
			  strstr(out, "pulled schools:") != NULL,
		      "%s", out);
}
END_TEST

START_TEST(test_ctl_unknown_school)
{
	char out[4096];
	const char *const unknown[] = {"sync", "status", "--school", "999999", "--json", NULL};
	ck_assert_int_eq(ctl_joined(out, sizeof out, unknown), 1);
	ck_assert_msg(strstr(out, "no school with URN 999999") != NULL, "%s", out);
	ck_assert_msg(strchr(out, '{') == NULL, "printed a document: %s", out);
	const char *const unknown_text[] = {"sync", "status", "--school", "999999", NULL};
	ck_assert_int_eq(ctl_joined(out, sizeof out, unknown_text), 1);
	ck_assert_msg(strstr(out, "no school with URN 999999") != NULL, "%s", out);
	const char *const bad[] = {"sync", "status", "--school", "12ab", NULL};
	ck_assert_int_eq(ctl_joined(out, sizeof out, bad), 2);
	ck_assert_msg(strstr(out, "not a URN") != NULL, "%s", out);
	const char *const missing[] = {"sync", "status", "--school", NULL};
	ck_assert_int_eq(ctl_joined(out, sizeof out, missing), 2);
	ck_assert_msg(strstr(out, "usage: dualregctl sync status") != NULL, "%s", out);
}
END_TEST

START_TEST(test_scope)
{
	/* The school's own key and an admin key read it; another school's key, like an
	 * unknown or malformed URN, gets the same 404 problem; no key is 401. */
	cJSON *h = get_sync(PRU, pru_key);
	ck_assert_str_eq(text(h, "urn"), PRU);
	cJSON_Delete(h);
	h = get_sync(PRU, admin);
	ck_assert_str_eq(text(h, "urn"), PRU);
	cJSON_Delete(h);
	h = get_sync(HOME, home_key);
	ck_assert_str_eq(text(h, "urn"), HOME);
	cJSON_Delete(h);

	struct th_resp r;
	th_api(&d, "GET", "/v1/schools/" PRU "/sync", home_key, NULL, NULL, &r);
	th_assert_problem(&r, 404);
	char other[512];
	snprintf(other, sizeof other, "%s", r.body);
	th_resp_free(&r);
	th_api(&d, "GET", "/v1/schools/999999/sync", admin, NULL, NULL, &r);
	th_assert_problem(&r, 404);
	ck_assert_str_eq(r.body, other); /* nothing tells another school's URN apart */
	th_resp_free(&r);
	th_api(&d, "GET", "/v1/schools/12ab/sync", admin, NULL, NULL, &r);
	th_assert_problem(&r, 404);
	th_resp_free(&r);
	th_api(&d, "GET", "/v1/schools/" PRU "/sync", NULL, NULL, NULL, &r);
	th_assert_problem(&r, 401);
	th_resp_free(&r);
	th_api(&d, "GET", "/v1/schools/" PRU "/sync", "drk_not-a-real-key", NULL, NULL, &r);
	th_assert_problem(&r, 401);
	th_resp_free(&r);
}
END_TEST

/*
 * Rows written directly for the home school, none of them due for the daemon: the
 * 24-hour window of the counts, which error is the latest, a disabled and a deleted
 * subscription, the feed's states, and which marks count as the API's.
 */
START_TEST(test_counts_and_states)
{
	th_sql(url,
	       "INSERT INTO events (type, urns, data) SELECT 'mark.recorded', '{" HOME "}', '{}' "
	       "FROM generate_series(1, 6);"
	       "INSERT INTO subscriptions (urn, url, events, secret) VALUES "
	       "('" HOME "', 'https://hooks.example/a', '{*}', 's');"
	       "INSERT INTO subscriptions (urn, url, events, secret, disabled_at, disabled_reason) "
	       "VALUES ('" HOME "', 'https://hooks.example/b', '{*}', 's', now(), 'gone');"
	       "INSERT INTO subscriptions (urn, url, events, secret, deleted_at) VALUES "
	       "('" HOME "', 'https://hooks.example/c', '{*}', 's', now());"
	       /* n, status, last attempt (ago), error, queued (ago) */
	       "INSERT INTO deliveries (subscription_id, event_id, status, attempts, "
	       "last_attempt_at, last_error, delivered_at, next_attempt_at, created_at) "
	       "SELECT s.id, e.id, v.status, 1, now() - v.tried, v.err, "
	       "CASE WHEN v.status = 'delivered' THEN now() - v.tried END, "
	       "now() + interval '1 day', now() - v.queued "
	       "FROM (VALUES (1, 'delivered', interval '1 hour', NULL, interval '1 hour'),"
	       " (2, 'delivered', interval '25 hours', NULL, interval '25 hours'),"
	       " (3, 'failed', interval '2 hours', 'HTTP 502', interval '30 hours'),"
	       " (4, 'failed', interval '30 hours', 'HTTP 404', interval '40 hours'),"
	       " (5, 'pending', interval '90 minutes', 'connection refused', interval '2 hours'),"
	       " (6, 'pending', NULL, NULL, interval '10 minutes')) "
	       "v(n, status, tried, err, queued) "
	       "JOIN (SELECT id, row_number() OVER (ORDER BY id) AS n FROM events) e USING (n), "
	       "subscriptions s WHERE s.url = 'https://hooks.example/a';"
	       "UPDATE schools SET pull_url = 'https://mis.example/feed', pull_token = '" HOME_TOKEN
	       "', pull_next_at = now() + interval '1 day' WHERE urn = '" HOME "';"
	       "INSERT INTO mark_history (upn, urn, date, session, new_code, new_source, "
	       "changed_at) "
	       "VALUES ('" UPN "', '" HOME "', dualreg_today(), 'AM', '/', 'pull', now()),"
	       " ('" UPN "', '" HOME "', dualreg_today(), 'PM', 'D', 'derived', now()),"
	       " ('" UPN "', '" PRU "', dualreg_today(), 'AM', '/', 'api', now())");
	cJSON *h = get_sync(HOME, admin);
	const cJSON *subs = member(h, "subscriptions");
	ck_assert_int_eq(cJSON_GetArraySize(subs), 2); /* the deleted one is not shown */
	const cJSON *a = cJSON_GetArrayItem(subs, 0), *b = cJSON_GetArrayItem(subs, 1);
	ck_assert_str_eq(text(a, "url"), "https://hooks.example/a");
	ck_assert_str_eq(text(a, "state"), "active");
	ck_assert_int_eq(count(a, "backlog"), 2);
	long long age = count(a, "oldest_undelivered_age_s");
	ck_assert_msg(age >= 7200 && age < 7300, "age %lld", age);
	ck_assert_int_eq(count(a, "delivered_24h"), 1);
	ck_assert_int_eq(count(a, "failed_24h"), 1);
	/* the pending delivery's error (90 minutes ago) is newer than the failed one's */
	ck_assert_str_eq(text(a, "last_error"), "connection refused");
	char want[64];
	sql_text("SELECT to_json(last_attempt_at)#>>'{}' FROM deliveries "
		 "WHERE last_error = 'connection refused'",
		 want, sizeof want);
	ck_assert_str_eq(text(a, "last_error_at"), want);
	ck_assert_str_eq(text(b, "url"), "https://hooks.example/b");
	ck_assert_str_eq(text(b, "state"), "disabled");
	ck_assert_int_eq(count(b, "backlog"), 0);
	ck_assert(cJSON_IsNull(member(b, "oldest_undelivered_age_s")));
	ck_assert_int_eq(count(b, "delivered_24h"), 0);
	ck_assert_int_eq(count(b, "failed_24h"), 0);
	ck_assert(cJSON_IsNull(member(b, "last_error")));
	ck_assert(cJSON_IsNull(member(b, "last_error_at")));
	const cJSON *p = member(h, "pull");
	ck_assert_str_eq(text(p, "url"), "https://mis.example/feed");
	ck_assert_str_eq(text(p, "state"), "never-pulled");
	ck_assert_int_eq(count(p, "failures"), 0);
	ck_assert(cJSON_IsNull(member(p, "cursor")));
	ck_assert(cJSON_IsNull(member(p, "last_error")));
	ck_assert(cJSON_IsNull(member(p, "last_error_at")));
	ck_assert_int_eq(count(p, "rejected"), 0);
	ck_assert_str_eq(text(p, "rejections_url"), "/v1/schools/" HOME "/pull");
	/* a feed's mark, a derived D and another school's API mark are not this school's */
	ck_assert(cJSON_IsNull(member(h, "last_api_mark_at")));
	cJSON_Delete(h);

	/* A failed delivery newer than the pending one's error; a feed that has worked and
	 * refused two items; an API mark. */
	th_sql(url, "UPDATE deliveries SET last_attempt_at = now() - interval '5 minutes' "
		    "WHERE last_error = 'HTTP 502';"
		    "UPDATE schools SET pull_last_ok_at = now() - interval '1 hour', "
		    "pull_cursor = 'c9' WHERE urn = '" HOME "';"
		    "INSERT INTO pull_rejections (urn, item, error_type, detail) VALUES "
		    "('" HOME "', '{}', 'unknown-pupil', 'x'),"
		    "('" HOME "', '{}', 'invalid-upn', 'y'),"
		    "('" PRU "', '{}', 'invalid-upn', 'z');"
		    "INSERT INTO mark_history (upn, urn, date, session, new_code, new_source, "
		    "changed_at) VALUES ('" UPN "', '" HOME "', dualreg_today(), 'AM', 'L', 'api', "
		    "'2026-01-05 10:00:00+00')");
	h = get_sync(HOME, home_key);
	a = cJSON_GetArrayItem(member(h, "subscriptions"), 0);
	ck_assert_str_eq(text(a, "last_error"), "HTTP 502");
	ck_assert_int_eq(count(a, "failed_24h"), 1);
	p = member(h, "pull");
	ck_assert_str_eq(text(p, "state"), "ok");
	ck_assert_str_eq(text(p, "cursor"), "c9");
	text(p, "last_ok_at");
	ck_assert_int_eq(count(p, "rejected"), 2);
	sql_text("SELECT to_json('2026-01-05 10:00:00+00'::timestamptz)#>>'{}'", want, sizeof want);
	ck_assert_str_eq(text(h, "last_api_mark_at"), want);
	cJSON_Delete(h);

	/* The feed failing now: the failure is stamped with its time by the daemon's own
	 * function, called here as the lease holder would. */
	th_sql(url, "UPDATE schools SET pull_lease_owner = 'test' WHERE urn = '" HOME "';"
		    "SELECT dualreg_pull_failed('" HOME "', 'test', 'HTTP 503 from the MIS')");
	h = get_sync(HOME, admin);
	p = member(h, "pull");
	ck_assert_str_eq(text(p, "state"), "failing");
	ck_assert_int_eq(count(p, "failures"), 1);
	ck_assert_str_eq(text(p, "last_error"), "HTTP 503 from the MIS");
	sql_text("SELECT to_json(pull_last_error_at)#>>'{}' FROM schools WHERE urn = '" HOME "' "
		 "AND pull_last_error_at > now() - interval '1 minute'",
		 want, sizeof want);
	ck_assert_str_eq(text(p, "last_error_at"), want);
	cJSON_Delete(h);

	/* The text form of the same. */
	char out[16384];
	const char *const args[] = {"sync", "status", "--school", HOME, NULL};
	ck_assert_int_eq(ctl(out, sizeof out, args), 0);
	ck_assert_msg(strstr(out, "disabled https://hooks.example/b") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "backlog 2 (oldest ") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "1 delivered, 1 failed") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "state failing, 1 consecutive failures") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "rejected items 2") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "HTTP 503 from the MIS") != NULL, "%s", out);
	ck_assert_ptr_null(strstr(out, HOME_TOKEN));
	const char *const json_args[] = {"sync", "status", "--school", HOME, "--json", NULL};
	ck_assert_int_eq(ctl(out, sizeof out, json_args), 0);
	ck_assert_ptr_null(strstr(out, HOME_TOKEN));
}
END_TEST

Suite *sync_health_suite(void)
{
	Suite *s = suite_create("sync_health");
	TCase *tc = tcase_create("sync");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_failing_webhook_and_feed);
	tcase_add_test(tc, test_ctl_prints_the_same_document);
	tcase_add_test(tc, test_ctl_unknown_school);
	tcase_add_test(tc, test_scope);
	tcase_add_test(tc, test_counts_and_states);
	suite_add_tcase(s, tc);
	return s;
}
