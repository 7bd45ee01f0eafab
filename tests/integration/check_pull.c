/*
 * pull: a school's MIS feed read by the real daemon. A feed server runs in a thread of
 * the test process. Pages are followed while has_more, applied with the marks rules as
 * the school (source 'pull'), refused items recorded, the cursor saved and used, the
 * bearer token sent; an HTML page, an error status and a next URL on another host are
 * errors, not data; the feed settings are validated and the token never shown.
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include "../harness.h"
#include "../suites.h"
#include "../th_server.h"

#define PRU "100002"
#define HOME "100001"
#define UPN "B801200005001"

static struct th_server feed;
static pthread_mutex_t feed_mu = PTHREAD_MUTEX_INITIALIZER;
#define feed_port feed.port
static char seen_since[16][64];
static char seen_auth[16][128];
static int nseen;
static char day[16]; /* a recent school day on which the pupil is expected at the PRU */

static char url[1024];
static struct th_daemon d;
static char admin[64], home_key[64], pru_key[64];

static void reply(struct evhttp_request *req, int status, const char *ctype, const char *body)
{
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_printf(b, "%s", body);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
	evhttp_send_reply(req, status, "X", b);
	evbuffer_free(b);
}

static void feed_cb(struct evhttp_request *req, void *arg)
{
	(void)arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = evhttp_uri_get_path(uri);
	struct evkeyvalq q;
	TAILQ_INIT(&q);
	evhttp_parse_query_str(evhttp_uri_get_query(uri) ? evhttp_uri_get_query(uri) : "", &q);
	const char *since = evhttp_find_header(&q, "since");
	const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	pthread_mutex_lock(&feed_mu);
	if (nseen < 16) {
		snprintf(seen_since[nseen], 64, "%s", since ? since : "(none)");
		snprintf(seen_auth[nseen], 128, "%s", auth ? auth : "");
		nseen++;
	}
	pthread_mutex_unlock(&feed_mu);
	char body[1024];
	if (strcmp(path, "/feed") == 0) {
		if (since == NULL || since[0] == '\0')
			snprintf(body, sizeof body,
				 "{\"marks\": [{\"upn\": \"" UPN "\", \"date\": \"%s\", \"session\": "
				 "\"AM\", \"code\": \"/\"}, {\"upn\": \"A999999999999\", \"date\": \"%s\", "
				 "\"session\": \"AM\", \"code\": \"/\"}], \"next_cursor\": \"c 1\", "
				 "\"has_more\": true}",
				 day, day);
		else if (strcmp(since, "c 1") == 0)
			snprintf(body, sizeof body,
				 "{\"marks\": [{\"upn\": \"" UPN "\", \"date\": \"%s\", \"session\": "
				 "\"PM\", \"code\": \"L\", \"minutes_late\": 12}], \"next_cursor\": \"c2\", "
				 "\"has_more\": false}",
				 day);
		else
			snprintf(body, sizeof body,
				 "{\"marks\": [], \"next_cursor\": \"%s\", \"has_more\": false}", since);
		reply(req, 200, "application/json", body);
	} else if (strcmp(path, "/html") == 0) {
		reply(req, 200, "text/html", "<html><body>Service maintenance</body></html>");
	} else if (strcmp(path, "/offhost") == 0) {
		snprintf(body, sizeof body,
			 "{\"marks\": [], \"next_cursor\": \"x\", \"has_more\": true, "
			 "\"next\": \"http://127.0.0.2:%u/feed\"}",
			 feed_port);
		reply(req, 200, "application/json", body);
	} else {
		reply(req, 500, "text/plain", "boom");
	}
	evhttp_clear_headers(&q);
}

static void setup(void)
{
	nseen = 0;
	feed.handler = feed_cb;
	th_server_start(&feed);
	th_db_create_migrated(url, sizeof url);
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
	th_daemon_start(&d, url,
			"[webhooks]\nallow_http = true\nallow_private = true\n[pull]\nallow_http = true\nallow_private = true\n[pull]\ntimeout = 5s\n",
			false);
}

static void teardown(void)
{
	if (d.pid > 0)
		th_daemon_stop(&d, SIGKILL);
	th_server_stop(&feed);
}

static void set_feed(const char *path)
{
	char body[300];
	snprintf(body, sizeof body,
		 "{\"pull_url\": \"http://127.0.0.1:%u%s\", \"pull_token\": \"feed-token-1\", "
		 "\"pull_interval\": 3600}",
		 feed_port, path);
	struct th_resp r;
	th_api(&d, "PATCH", "/v1/schools/" PRU, admin, body, NULL, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	const cJSON *pull = cJSON_GetObjectItem(r.json, "pull");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(pull, "token_set")));
	ck_assert_ptr_null(strstr(r.body, "feed-token-1"));
	th_resp_free(&r);
}

/* Polls the feed's status until pred holds on it (bounded). Returns the last body. */
static cJSON *wait_status(bool (*pred)(const cJSON *))
{
	double deadline = th_now() + 15;
	cJSON *st = NULL;
	while (th_now() < deadline) {
		struct th_resp r;
		th_api(&d, "GET", "/v1/schools/" PRU "/pull", pru_key, NULL, NULL, &r);
		ck_assert_int_eq(r.status, 200);
		cJSON_Delete(st);
		st = cJSON_Duplicate(r.json, 1);
		th_resp_free(&r);
		if (pred(st))
			return st;
		usleep(100000);
	}
	char *text = cJSON_Print(st);
	ck_abort_msg("feed status never matched: %s", text);
	return NULL;
}

static bool at_c2(const cJSON *st)
{
	const cJSON *c = cJSON_GetObjectItem(st, "cursor");
	return cJSON_IsString(c) && strcmp(c->valuestring, "c2") == 0;
}

static bool failed(const cJSON *st)
{
	return cJSON_GetObjectItem(st, "failures")->valueint > 0;
}

static long scalar(const char *sql)
{
	PGconn *c = PQconnectdb(url);
	PGresult *r = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
	long v = atol(PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
	return v;
}

START_TEST(test_pages_applied_as_the_school)
{
	set_feed("/feed");
	cJSON *st = wait_status(at_c2);
	ck_assert_int_eq(cJSON_GetObjectItem(st, "failures")->valueint, 0);
	const cJSON *rej = cJSON_GetObjectItem(st, "rejections");
	ck_assert_int_eq(cJSON_GetArraySize(rej), 1);
	const cJSON *err = cJSON_GetObjectItem(cJSON_GetArrayItem(rej, 0), "error");
	/* Applied as the school: a pupil not on its roll, known or not, is one answer. */
	ck_assert_str_eq(cJSON_GetObjectItem(err, "type")->valuestring, "pupil-not-on-roll");
	cJSON_Delete(st);
	/* Both good marks are the PRU's, from the feed, in the register with history. */
	ck_assert_int_eq(scalar("SELECT count(*) FROM marks WHERE upn = '" UPN "' AND urn = '" PRU
				"' AND source = 'pull'"),
			 2);
	ck_assert_int_eq(scalar("SELECT minutes_late FROM marks WHERE session = 'PM' AND urn = '" PRU
				"'"),
			 12);
	ck_assert_int_eq(scalar("SELECT count(*) FROM mark_history WHERE new_source = 'pull'"), 2);
	/* Pages were asked for in order, with the token. */
	pthread_mutex_lock(&feed_mu);
	ck_assert_int_ge(nseen, 2);
	ck_assert_str_eq(seen_since[0], "");
	ck_assert_str_eq(seen_since[1], "c 1");
	ck_assert_str_eq(seen_auth[0], "Bearer feed-token-1");
	pthread_mutex_unlock(&feed_mu);
	/* Scope: the home school cannot see the PRU's feed. */
	struct th_resp r;
	th_api(&d, "GET", "/v1/schools/" PRU "/pull", home_key, NULL, NULL, &r);
	th_assert_problem(&r, 404);
	th_resp_free(&r);
}
END_TEST

START_TEST(test_html_page_is_an_error)
{
	set_feed("/html");
	cJSON *st = wait_status(failed);
	const cJSON *e = cJSON_GetObjectItem(st, "last_error");
	ck_assert_msg(cJSON_IsString(e) && strstr(e->valuestring, "not JSON") != NULL, "%s",
		      cJSON_IsString(e) ? e->valuestring : "(none)");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(st, "cursor")));
	cJSON_Delete(st);
	ck_assert_int_eq(scalar("SELECT count(*) FROM marks WHERE source = 'pull'"), 0);
}
END_TEST

START_TEST(test_error_status_and_off_host_next)
{
	set_feed("/status500");
	cJSON *st = wait_status(failed);
	ck_assert_ptr_nonnull(strstr(cJSON_GetObjectItem(st, "last_error")->valuestring, "HTTP 500"));
	cJSON_Delete(st);
	set_feed("/offhost");
	st = wait_status(failed);
	ck_assert_ptr_nonnull(
	    strstr(cJSON_GetObjectItem(st, "last_error")->valuestring, "not on the feed's own host"));
	cJSON_Delete(st);
	ck_assert_int_eq(scalar("SELECT count(*) FROM marks WHERE source = 'pull'"), 0);
}
END_TEST

START_TEST(test_feed_settings_validated)
{
	struct th_resp r;
	const char *bad[][2] = {
	    {"{\"pull_url\": \"ftp://mis.example/feed\"}", "/pull_url"},
	    {"{\"pull_url\": \"https://u:p@mis.example/feed\"}", "/pull_url"},
	    {"{\"pull_interval\": 5}", "/pull_interval"},
	    {"{\"pull_interval\": 60.5}", "/pull_interval"},
	    {"{\"pull_token\": \"\"}", "/pull_token"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		th_api(&d, "PATCH", "/v1/schools/" PRU, admin, bad[i][0], NULL, &r);
		th_assert_problem(&r, 422);
		char ptr[64];
		snprintf(ptr, sizeof ptr, "\"pointer\":\"%s\"", bad[i][1]);
		ck_assert_msg(strstr(r.body, ptr) != NULL, "case %zu: %s", i, r.body);
		th_resp_free(&r);
	}
	th_api(&d, "PATCH", "/v1/schools/" PRU, pru_key, "{\"pull_interval\": 60}", NULL, &r);
	th_assert_problem(&r, 403);
	th_resp_free(&r);
	/* Nothing stored by the refusals; removing the feed works. */
	th_api(&d, "PATCH", "/v1/schools/" PRU, admin, "{\"pull_url\": null, \"pull_token\": null}",
	       NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r.json, "pull")));
	th_resp_free(&r);
}
END_TEST

Suite *pull_suite(void)
{
	Suite *s = suite_create("pull");
	TCase *tc = tcase_create("feeds");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_pages_applied_as_the_school);
	tcase_add_test(tc, test_html_page_is_an_error);
	tcase_add_test(tc, test_error_status_and_off_host_next);
	tcase_add_test(tc, test_feed_settings_validated);
	suite_add_tcase(s, tc);
	return s;
}
