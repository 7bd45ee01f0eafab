/*
 * webhooks: subscriptions through the real daemon's API and deliveries to an HTTP sink
 * running in a thread of the test process (th_server). Creation rules (secret shown once, scope,
 * URL and address policy, event types), end-to-end signed delivery of an event
 * committed to the database, manual retry with the same webhook-id, secret rotation
 * (two valid signatures), deletion, and the deliveries listing.
 */
#include <arpa/inet.h>
#include <libpq-fe.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness.h"
#include "../suites.h"
#include "../th_server.h"
#include "dualreg/sign.h"

struct sink_hit {
	char id[40];
	char ts[24];
	char sigs[256];
	char body[1024];
};

static struct th_server sink = {.handler = NULL};
static pthread_mutex_t sink_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sink_hit sink_hits[64];
static int sink_n;
#define sink_port sink.port

static char url[1024];
static struct th_daemon d;
static char admin[64], home[64], pru[64];

static void sink_cb(struct evhttp_request *req, void *arg)
{
	(void)arg;
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	pthread_mutex_lock(&sink_mu);
	if (sink_n < 64) {
		struct sink_hit *h = &sink_hits[sink_n++];
		const char *v;
		snprintf(h->id, sizeof h->id, "%s", (v = evhttp_find_header(in, "webhook-id")) ? v : "");
		snprintf(h->ts, sizeof h->ts, "%s",
			 (v = evhttp_find_header(in, "webhook-timestamp")) ? v : "");
		snprintf(h->sigs, sizeof h->sigs, "%s",
			 (v = evhttp_find_header(in, "webhook-signature")) ? v : "");
		struct evbuffer *b = evhttp_request_get_input_buffer(req);
		size_t n = evbuffer_get_length(b);
		if (n >= sizeof h->body)
			n = sizeof h->body - 1;
		evbuffer_copyout(b, h->body, n);
		h->body[n] = '\0';
	}
	pthread_mutex_unlock(&sink_mu);
	evhttp_send_reply(req, 204, "No Content", NULL);
}

static int hits(void)
{
	pthread_mutex_lock(&sink_mu);
	int n = sink_n;
	pthread_mutex_unlock(&sink_mu);
	return n;
}

static void wait_hits(int want)
{
	double deadline = th_now() + 15;
	while (hits() < want && th_now() < deadline)
		usleep(20000);
	ck_assert_int_eq(hits(), want);
}

static void setup(void)
{
	sink_n = 0;
	sink.handler = sink_cb;
	th_server_start(&sink);
	th_db_create_migrated(url, sizeof url);
	th_sql(url, "INSERT INTO schools (urn, name, kind) VALUES ('100001', 'Home', "
		    "'mainstream'), ('100002', 'PRU', 'pru')");
	th_key_create(url, NULL, admin, sizeof admin);
	th_key_create(url, "100001", home, sizeof home);
	th_key_create(url, "100002", pru, sizeof pru);
	th_daemon_start(&d, url,
			"[webhooks]\nallow_http = true\nallow_private = true\n[pull]\nallow_http = true\nallow_private = true\n"
			"[webhooks]\nretry_schedule = 100ms, 100ms\n"
			"[alerts]\ncheck_interval = 200ms\nmissing_grace = 0s\n",
			false);
}

static void teardown(void)
{
	if (d.pid > 0)
		th_daemon_stop(&d, SIGKILL);
	th_server_stop(&sink);
}

static const char *str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	ck_assert_msg(cJSON_IsString(v), "%s missing", k);
	return v->valuestring;
}

/* Subscribes the home school's key to the sink; returns the secret (copied). */
static void subscribe_home(char *secret, size_t len, char *id, size_t idlen)
{
	char body[256];
	snprintf(body, sizeof body,
		 "{\"url\": \"http://127.0.0.1:%u/hook\", \"events\": [\"*\"], "
		 "\"description\": \"home MIS\"}",
		 sink_port);
	struct th_resp r;
	th_api(&d, "POST", "/v1/subscriptions", home, body, NULL, &r);
	ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
	ck_assert_str_eq(str(r.json, "urn"), "100001");
	snprintf(secret, len, "%s", str(r.json, "secret"));
	snprintf(id, idlen, "%d", cJSON_GetObjectItem(r.json, "id")->valueint);
	ck_assert_int_eq(strncmp(secret, "whsec_", 6), 0);
	th_resp_free(&r);
}

/* True if every signature in h verifies with one of the secrets. */
static int valid_sigs(const struct sink_hit *h, const char *s1, const char *s2)
{
	char want1[SIGN_SIG_MAX], want2[SIGN_SIG_MAX] = "";
	ck_assert_int_eq(sign_webhook(s1, h->id, atoll(h->ts), h->body, strlen(h->body), want1), 0);
	if (s2 != NULL)
		ck_assert_int_eq(sign_webhook(s2, h->id, atoll(h->ts), h->body, strlen(h->body), want2),
				 0);
	char copy[256];
	snprintf(copy, sizeof copy, "%s", h->sigs);
	int n = 0;
	for (char *t = strtok(copy, " "); t; t = strtok(NULL, " ")) {
		if (strcmp(t, want1) != 0 && strcmp(t, want2) != 0)
			return -1;
		n++;
	}
	return n;
}

/*
 * Hands the captured deliveries to the Standard Webhooks reference library (through
 * node, as a receiving MIS would verify them) and asserts that every one verifies.
 */
static void verify_with_reference_library(const char *secret, int n)
{
	char path[512], script[512], out[1024];
	snprintf(path, sizeof path, "%s/hooks-%d.jsonl", th_env("DUALREG_TEST_TMP"), (int)getpid());
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	pthread_mutex_lock(&sink_mu);
	for (int i = 0; i < n; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "secret", secret);
		cJSON_AddStringToObject(o, "id", sink_hits[i].id);
		cJSON_AddStringToObject(o, "timestamp", sink_hits[i].ts);
		cJSON_AddStringToObject(o, "signature", sink_hits[i].sigs);
		cJSON_AddStringToObject(o, "body", sink_hits[i].body);
		char *line = cJSON_PrintUnformatted(o);
		fprintf(f, "%s\n", line);
		cJSON_free(line);
		cJSON_Delete(o);
	}
	pthread_mutex_unlock(&sink_mu);
	fclose(f);
	snprintf(script, sizeof script, "%s/scripts/verify-webhooks.mjs", th_env("DUALREG_TEST_ROOT"));
	char *const argv[] = {"/usr/bin/env", "node", script, path, NULL};
	ck_assert_msg(th_run(argv, NULL, out, sizeof out) == 0, "%s", out);
	char want[32];
	snprintf(want, sizeof want, "verified %d", n);
	ck_assert_msg(strstr(out, want) != NULL, "%s", out);
}

START_TEST(test_end_to_end_delivery)
{
	char secret[128], id[16];
	subscribe_home(secret, sizeof secret, id, sizeof id);
	th_sql(url, "SELECT dualreg_emit('mark.conflict', 'B801200005001', ARRAY['100001', '100002'], "
		    "'{\"upn\": \"B801200005001\", \"date\": \"2026-11-02\", \"session\": \"AM\"}')");
	wait_hits(1);
	ck_assert_int_eq(valid_sigs(&sink_hits[0], secret, NULL), 1);
	ck_assert_int_eq(strncmp(sink_hits[0].id, "evt_", 4), 0);
	cJSON *body = cJSON_Parse(sink_hits[0].body);
	ck_assert_str_eq(str(body, "type"), "mark.conflict");
	ck_assert_str_eq(str(cJSON_GetObjectItem(body, "data"), "upn"), "B801200005001");
	cJSON_Delete(body);

	/* The listing shows it delivered; a manual retry re-sends with the same id. */
	struct th_resp r;
	double deadline = th_now() + 10;
	const cJSON *first = NULL;
	while (th_now() < deadline) {
		th_api(&d, "GET", "/v1/deliveries?status=delivered", home, NULL, NULL, &r);
		ck_assert_int_eq(r.status, 200);
		first = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "deliveries"), 0);
		if (first != NULL)
			break;
		th_resp_free(&r);
		usleep(50000);
	}
	ck_assert_ptr_nonnull(first);
	ck_assert_int_eq(cJSON_GetObjectItem(first, "attempts")->valueint, 1);
	char path[64];
	snprintf(path, sizeof path, "/v1/deliveries/%d/retry", cJSON_GetObjectItem(first, "id")->valueint);
	th_resp_free(&r);
	th_api(&d, "POST", path, pru, NULL, NULL, &r); /* not the PRU's subscription */
	th_assert_problem(&r, 404);
	th_resp_free(&r);
	th_api(&d, "POST", path, home, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 202);
	th_resp_free(&r);
	wait_hits(2);
	ck_assert_str_eq(sink_hits[1].id, sink_hits[0].id);
	ck_assert_int_eq(valid_sigs(&sink_hits[1], secret, NULL), 1);
	verify_with_reference_library(secret, 2);
}
END_TEST

START_TEST(test_rotation_and_delete)
{
	char secret[128], id[16], path[64];
	subscribe_home(secret, sizeof secret, id, sizeof id);
	snprintf(path, sizeof path, "/v1/subscriptions/%s/rotate-secret", id);
	struct th_resp r;
	th_api(&d, "POST", path, home, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	char fresh[128];
	snprintf(fresh, sizeof fresh, "%s", str(r.json, "secret"));
	ck_assert_str_ne(fresh, secret);
	ck_assert(cJSON_IsString(cJSON_GetObjectItem(r.json, "previous_secret_valid_until")));
	th_resp_free(&r);
	th_sql(url, "SELECT dualreg_emit('mark.recorded', 'B801200005001', ARRAY['100001'], "
		    "'{\"upn\": \"B801200005001\"}')");
	wait_hits(1);
	ck_assert_int_eq(valid_sigs(&sink_hits[0], fresh, secret), 2);
	verify_with_reference_library(fresh, 1);
	verify_with_reference_library(secret, 1); /* the old secret still verifies for 24 h */

	/* The listing never shows secrets. */
	th_api(&d, "GET", "/v1/subscriptions", home, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "subscriptions")), 1);
	ck_assert_ptr_null(strstr(r.body, "whsec_"));
	th_resp_free(&r);
	th_api(&d, "GET", "/v1/subscriptions", pru, NULL, NULL, &r);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "subscriptions")), 0);
	th_resp_free(&r);

	snprintf(path, sizeof path, "/v1/subscriptions/%s", id);
	th_api(&d, "DELETE", path, pru, NULL, NULL, &r);
	th_assert_problem(&r, 404);
	th_resp_free(&r);
	th_api(&d, "DELETE", path, home, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 204);
	th_resp_free(&r);
	th_api(&d, "DELETE", path, home, NULL, NULL, &r);
	th_assert_problem(&r, 404);
	th_resp_free(&r);
	th_sql(url, "SELECT dualreg_emit('mark.recorded', 'B801200005001', ARRAY['100001'], "
		    "'{\"upn\": \"B801200005001\"}')");
	usleep(300000);
	ck_assert_int_eq(hits(), 1);
}
END_TEST

START_TEST(test_creation_rules)
{
	struct th_resp r;
	char body[256];
	snprintf(body, sizeof body, "{\"url\": \"http://127.0.0.1:%u/x\", \"events\": [\"*\"]}",
		 sink_port);
	th_api(&d, "POST", "/v1/subscriptions", NULL, body, NULL, &r);
	th_assert_problem(&r, 401);
	th_resp_free(&r);
	th_api(&d, "POST", "/v1/subscriptions", admin, body, NULL, &r); /* admin must name urn */
	th_assert_problem(&r, 422);
	ck_assert_ptr_nonnull(strstr(r.body, "\"/urn\""));
	th_resp_free(&r);
	snprintf(body, sizeof body,
		 "{\"url\": \"http://127.0.0.1:%u/x\", \"events\": [\"*\"], \"urn\": \"100002\"}",
		 sink_port);
	th_api(&d, "POST", "/v1/subscriptions", home, body, NULL, &r);
	th_assert_problem(&r, 403);
	th_resp_free(&r);
	th_api(&d, "POST", "/v1/subscriptions", admin, body, NULL, &r);
	ck_assert_int_eq(r.status, 201);
	ck_assert_str_eq(str(r.json, "urn"), "100002");
	th_resp_free(&r);
	snprintf(body, sizeof body,
		 "{\"url\": \"http://127.0.0.1:%u/x\", \"events\": [\"*\"], \"urn\": \"999999\"}",
		 sink_port);
	th_api(&d, "POST", "/v1/subscriptions", admin, body, NULL, &r);
	th_assert_problem(&r, 422);
	ck_assert_str_eq(str(r.json, "type"), "/problems/unknown-school");
	th_resp_free(&r);

	const char *bad[][2] = {
	    {"{\"url\": \"ftp://example.org/x\", \"events\": [\"*\"]}", "/url"},
	    {"{\"url\": \"http://user:pw@127.0.0.1/x\", \"events\": [\"*\"]}", "/url"},
	    {"{\"url\": \"not a url\", \"events\": [\"*\"]}", "/url"},
	    {"{\"url\": \"http://127.0.0.1/x\", \"events\": [\"mark.exploded\"]}", "/events/0"},
	    {"{\"url\": \"http://127.0.0.1/x\", \"events\": []}", "/events"},
	    {"{\"url\": \"http://127.0.0.1/x\", \"events\": [\"*\"], \"description\": 7}",
	     "/description"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		th_api(&d, "POST", "/v1/subscriptions", home, bad[i][0], NULL, &r);
		th_assert_problem(&r, 422);
		char ptr[64];
		snprintf(ptr, sizeof ptr, "\"pointer\":\"%s\"", bad[i][1]);
		ck_assert_msg(strstr(r.body, ptr) != NULL, "case %zu: %s", i, r.body);
		th_resp_free(&r);
	}
	/* Nothing was stored by the refused requests. */
	th_api(&d, "GET", "/v1/subscriptions", admin, NULL, NULL, &r);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "subscriptions")), 1);
	th_resp_free(&r);
}
END_TEST

START_TEST(test_address_policy)
{
	/* A daemon with the production defaults: https only, public addresses only. */
	th_daemon_stop(&d, SIGTERM);
	th_daemon_start(&d, url, NULL, false);
	const char *cases[][2] = {
	    {"{\"url\": \"http://example.org/x\", \"events\": [\"*\"]}", "must be https"},
	    {"{\"url\": \"https://127.0.0.1/x\", \"events\": [\"*\"]}", "127.0.0.1"},
	    {"{\"url\": \"https://localhost/x\", \"events\": [\"*\"]}", "loopback"},
	    {"{\"url\": \"https://[::1]:8443/x\", \"events\": [\"*\"]}", "::1"},
	    {"{\"url\": \"https://10.1.2.3/x\", \"events\": [\"*\"]}", "10.1.2.3"},
	    {"{\"url\": \"https://169.254.169.254/latest\", \"events\": [\"*\"]}", "169.254.169.254"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct th_resp r;
		th_api(&d, "POST", "/v1/subscriptions", home, cases[i][0], NULL, &r);
		th_assert_problem(&r, 422);
		ck_assert_msg(strstr(r.body, cases[i][1]) != NULL, "case %zu: %s", i, r.body);
		th_resp_free(&r);
	}
}
END_TEST

START_TEST(test_missing_mark_alert_reaches_home_school)
{
	/* A pupil at the PRU every session, registers closing at midnight, nothing marked:
	 * on a school day the home school's MIS hears about both sessions; at weekends
	 * there are no sessions and it hears nothing. */
	char secret[128], id[16];
	subscribe_home(secret, sizeof secret, id, sizeof id);
	th_sql(url, "UPDATE schools SET am_close = '00:00', pm_close = '00:00';"
		    "INSERT INTO pupils VALUES ('B801200005001', 'Ann', 'Bell', '2012-01-01');"
		    "INSERT INTO registrations (upn, urn, role, start_date) VALUES "
		    "('B801200005001', '100001', 'main', dualreg_today() - 30),"
		    "('B801200005001', '100002', 'subsidiary', dualreg_today() - 30);"
		    "INSERT INTO registration_schedules SELECT id, start_date, 1023 "
		    "FROM registrations WHERE role = 'subsidiary'");
	PGconn *c = PQconnectdb(url);
	PGresult *res = PQexec(c, "SELECT extract(isodow FROM dualreg_today()) <= 5");
	bool school_day = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	PQfinish(c);
	if (!school_day) {
		usleep(1000 * 1000);
		ck_assert_int_eq(hits(), 0);
		return;
	}
	double deadline = th_now() + 15;
	int missing = 0;
	while (missing < 2 && th_now() < deadline) {
		missing = 0;
		pthread_mutex_lock(&sink_mu);
		for (int i = 0; i < sink_n; i++)
			missing += strstr(sink_hits[i].body, "\"attendance.missing\"") != NULL;
		pthread_mutex_unlock(&sink_mu);
		usleep(50000);
	}
	ck_assert_int_eq(missing, 2);
	usleep(500 * 1000); /* further checks raise nothing new */
	missing = 0;
	pthread_mutex_lock(&sink_mu);
	for (int i = 0; i < sink_n; i++)
		missing += strstr(sink_hits[i].body, "\"attendance.missing\"") != NULL;
	pthread_mutex_unlock(&sink_mu);
	ck_assert_int_eq(missing, 2);
}
END_TEST

START_TEST(test_posted_mark_reaches_other_school)
{
	/* Marks arrive through the batch ingest, which writes its events in bulk: the PRU's
	 * MIS still hears of the home school's mark, signed. */
	char body[600];
	snprintf(body, sizeof body,
		 "{\"url\": \"http://127.0.0.1:%u/pru\", \"events\": [\"mark.recorded\"]}",
		 sink_port);
	struct th_resp r;
	th_api(&d, "POST", "/v1/subscriptions", pru, body, NULL, &r);
	ck_assert_int_eq(r.status, 201);
	char secret[128];
	snprintf(secret, sizeof secret, "%s", str(r.json, "secret"));
	th_resp_free(&r);
	th_sql(url, "INSERT INTO pupils VALUES ('B801200005001', 'Ann', 'Bell', '2012-01-01');"
		    "INSERT INTO registrations (upn, urn, role, start_date) VALUES "
		    "('B801200005001', '100001', 'main', dualreg_today() - 30),"
		    "('B801200005001', '100002', 'subsidiary', dualreg_today() - 30);"
		    "INSERT INTO registration_schedules SELECT id, start_date, 0 "
		    "FROM registrations WHERE role = 'subsidiary'");
	/* The latest weekday before today: the pupil is expected at home (mask 0). */
	PGconn *c = PQconnectdb(url);
	PGresult *res = PQexec(c, "SELECT max(d)::date FROM generate_series(dualreg_today() - 7, "
				  "dualreg_today() - 1, interval '1 day') d "
				  "WHERE extract(isodow FROM d) <= 5");
	char day[16];
	snprintf(day, sizeof day, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	PQfinish(c);
	snprintf(body, sizeof body,
		 "{\"marks\": [{\"upn\": \"B801200005001\", \"urn\": \"100001\", "
		 "\"date\": \"%s\", \"session\": \"AM\", \"code\": \"/\"}]}",
		 day);
	th_api(&d, "POST", "/v1/marks", home, body, NULL, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	th_resp_free(&r);
	wait_hits(1);
	ck_assert_int_eq(valid_sigs(&sink_hits[0], secret, NULL), 1);
	cJSON *ev = cJSON_Parse(sink_hits[0].body);
	ck_assert_str_eq(str(ev, "type"), "mark.recorded");
	const cJSON *data = cJSON_GetObjectItem(ev, "data");
	ck_assert_str_eq(str(data, "upn"), "B801200005001");
	ck_assert_str_eq(str(data, "urn"), "100001");
	ck_assert_str_eq(str(data, "code"), "/");
	cJSON_Delete(ev);
}
END_TEST

START_TEST(test_kill_9_loses_nothing)
{
	/* Events committed before, during and after a kill -9 of the daemon: after a
	 * restart every one of them is delivered (at least once). */
	char secret[128], id[16];
	subscribe_home(secret, sizeof secret, id, sizeof id);
	th_daemon_stop(&d, SIGTERM);
	const char *ini = "[webhooks]\nallow_http = true\nallow_private = true\n[pull]\nallow_http = true\nallow_private = true\n"
			  "[webhooks]\ntimeout = 1s\nretry_schedule = 100ms, 100ms, 100ms\n";
	th_daemon_start(&d, url, ini, false);
	th_sql(url, "SELECT dualreg_emit('mark.recorded', 'K' || lpad(i::text, 12, '0'), "
		    "ARRAY['100001'], jsonb_build_object('upn', 'K' || lpad(i::text, 12, '0'))) "
		    "FROM generate_series(1, 100) i");
	double deadline = th_now() + 10;
	while (hits() == 0 && th_now() < deadline)
		usleep(1000);
	ck_assert_int_eq(th_daemon_stop(&d, SIGKILL), 128 + SIGKILL);
	th_sql(url, "SELECT dualreg_emit('mark.recorded', 'L' || lpad(i::text, 12, '0'), "
		    "ARRAY['100001'], jsonb_build_object('upn', 'L' || lpad(i::text, 12, '0'))) "
		    "FROM generate_series(1, 20) i");
	th_daemon_start(&d, url, ini, false);
	/* Every event's id arrives (duplicates allowed for attempts cut off by the kill). */
	deadline = th_now() + 30;
	int distinct = 0;
	while (th_now() < deadline) {
		PGconn *c = PQconnectdb(url);
		PGresult *res = PQexec(c, "SELECT count(*) FROM deliveries WHERE status = 'delivered'");
		distinct = atoi(PQgetvalue(res, 0, 0));
		PQclear(res);
		PQfinish(c);
		if (distinct == 120)
			break;
		usleep(100000);
	}
	ck_assert_int_eq(distinct, 120);
	pthread_mutex_lock(&sink_mu);
	int n = sink_n;
	pthread_mutex_unlock(&sink_mu);
	ck_assert_int_ge(n, 64); /* the sink keeps the first 64 requests */
}
END_TEST

START_TEST(test_two_daemons_share_the_work)
{
	/* Two daemons on one database: both answer the API; each delivery and each
	 * missing-mark alert happens once; one is killed mid-work and the other finishes. */
	char secret[128], id[16];
	subscribe_home(secret, sizeof secret, id, sizeof id);
	th_daemon_stop(&d, SIGTERM);
	const char *ini = "[webhooks]\nallow_http = true\nallow_private = true\n[pull]\nallow_http = true\nallow_private = true\n"
			  "[webhooks]\ntimeout = 1s\nretry_schedule = 100ms, 100ms\n"
			  "[alerts]\ncheck_interval = 100ms\nmissing_grace = 0s\n";
	struct th_daemon d2;
	th_daemon_start(&d, url, ini, false);
	th_daemon_start(&d2, url, ini, false);
	struct th_resp r;
	th_api(&d, "GET", "/v1/me", home, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);
	th_api(&d2, "GET", "/v1/me", home, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);

	/* A pupil at the PRU every session, nothing marked, registers closed at midnight. */
	th_sql(url, "UPDATE schools SET am_close = '00:00', pm_close = '00:00';"
		    "INSERT INTO pupils VALUES ('B801200005001', 'Ann', 'Bell', '2012-01-01');"
		    "INSERT INTO registrations (upn, urn, role, start_date) VALUES "
		    "('B801200005001', '100001', 'main', dualreg_today() - 30),"
		    "('B801200005001', '100002', 'subsidiary', dualreg_today() - 30);"
		    "INSERT INTO registration_schedules SELECT id, start_date, 1023 "
		    "FROM registrations WHERE role = 'subsidiary'");
	th_sql(url, "SELECT dualreg_emit('mark.recorded', 'T' || lpad(i::text, 12, '0'), "
		    "ARRAY['100001'], jsonb_build_object('upn', 'T' || lpad(i::text, 12, '0'))) "
		    "FROM generate_series(1, 150) i");
	double deadline = th_now() + 10;
	while (hits() < 10 && th_now() < deadline)
		usleep(1000);
	ck_assert_int_eq(th_daemon_stop(&d2, SIGKILL), 128 + SIGKILL);

	PGconn *c = PQconnectdb(url);
	long delivered = 0, missing = -1, school_day = 0;
	deadline = th_now() + 30;
	while (th_now() < deadline) {
		PGresult *res = PQexec(c,
				       "SELECT (SELECT count(*) FROM deliveries d JOIN events e ON "
				       "e.id = d.event_id WHERE d.status = 'delivered' AND "
				       "e.type = 'mark.recorded'), "
				       "(SELECT count(*) FROM events WHERE type = 'attendance.missing'), "
				       "(SELECT count(*) FROM generate_series(1, 1) WHERE "
				       "extract(isodow FROM dualreg_today()) <= 5)");
		delivered = atol(PQgetvalue(res, 0, 0));
		missing = atol(PQgetvalue(res, 0, 1));
		school_day = atol(PQgetvalue(res, 0, 2));
		PQclear(res);
		if (delivered == 150 && missing == (school_day ? 2 : 0))
			break;
		usleep(100000);
	}
	PQfinish(c);
	ck_assert_int_eq(delivered, 150);
	/* Two daemons checking every 100 ms, yet each session's alert exists once. */
	ck_assert_int_eq(missing, school_day ? 2 : 0);
}
END_TEST

Suite *webhooks_suite(void)
{
	Suite *s = suite_create("webhooks");
	TCase *tc = tcase_create("subscriptions");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_end_to_end_delivery);
	tcase_add_test(tc, test_rotation_and_delete);
	tcase_add_test(tc, test_creation_rules);
	tcase_add_test(tc, test_address_policy);
	tcase_add_test(tc, test_missing_mark_alert_reaches_home_school);
	tcase_add_test(tc, test_posted_mark_reaches_other_school);
	tcase_add_test(tc, test_kill_9_loses_nothing);
	tcase_add_test(tc, test_two_daemons_share_the_work);
	suite_add_tcase(s, tc);
	return s;
}
