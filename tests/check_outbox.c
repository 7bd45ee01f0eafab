/*
 * outbox: webhook delivery against a real database and an HTTP sink on loopback, all
 * on one event loop in the test process. Signed Standard Webhooks requests, retries
 * with backoff until failure, 410 disabling the subscription, per-pupil ordering while
 * an earlier event retries (other pupils not held up), two dispatchers never sending
 * one delivery twice, and both signatures during a secret rotation.
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/db.h"
#include "dualreg/httpc.h"
#include "dualreg/log.h"
#include "dualreg/outbox.h"
#include "dualreg/sign.h"
#include "harness.h"
#include "suites.h"

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define OLD_SECRET "whsec_dGhlIG9sZCBzZWNyZXQgdGhhdCBpcyBzdGlsbCB2YWxpZA=="

struct hit {
	char path[32];
	char id[32];
	char upn[16];
	bool sig_ok;
	int nsigs;
};

static struct event_base *base;
static struct evhttp *sink;
static unsigned port;
static struct db_pool *pool;
static struct httpc *http;
static char url[1024];
static struct hit hits[512];
static int nhits;
static int flaky_failures; /* /flaky answers 500 this many times first */

/* Checks every v1 signature in the header against the known secrets. */
static void check_sig(struct evhttp_request *req, struct hit *h, const char *body, size_t len)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	const char *id = evhttp_find_header(in, "webhook-id");
	const char *ts = evhttp_find_header(in, "webhook-timestamp");
	const char *sigs = evhttp_find_header(in, "webhook-signature");
	snprintf(h->id, sizeof h->id, "%s", id ? id : "");
	if (!id || !ts || !sigs)
		return;
	char want[SIGN_SIG_MAX], want_old[SIGN_SIG_MAX];
	ck_assert_int_eq(sign_webhook(SECRET, id, atoll(ts), body, len, want), 0);
	ck_assert_int_eq(sign_webhook(OLD_SECRET, id, atoll(ts), body, len, want_old), 0);
	char copy[256];
	snprintf(copy, sizeof copy, "%s", sigs);
	bool all = true;
	for (char *tok = strtok(copy, " "); tok; tok = strtok(NULL, " ")) {
		h->nsigs++;
		all = all && (strcmp(tok, want) == 0 || strcmp(tok, want_old) == 0);
	}
	h->sig_ok = all && h->nsigs > 0;
}

static void sink_cb(struct evhttp_request *req, void *arg)
{
	(void)arg;
	struct hit *h = &hits[nhits < 511 ? nhits++ : 511];
	memset(h, 0, sizeof *h);
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	snprintf(h->path, sizeof h->path, "%s", path);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	char *body = (char *)evbuffer_pullup(in, (ev_ssize_t)len);
	char *copy = strndup(body ? body : "", len);
	check_sig(req, h, copy, len);
	cJSON *j = cJSON_Parse(copy);
	const cJSON *upn = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "data"), "upn");
	if (cJSON_IsString(upn))
		snprintf(h->upn, sizeof h->upn, "%s", upn->valuestring);
	ck_assert_ptr_nonnull(cJSON_GetObjectItem(j, "type"));
	ck_assert_ptr_nonnull(cJSON_GetObjectItem(j, "timestamp"));
	cJSON_Delete(j);
	free(copy);
	int status = 200;
	if (strcmp(path, "/busy") == 0) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "30");
		struct evbuffer *b = evbuffer_new();
		evbuffer_add_printf(b, "queue full, come back later");
		evhttp_send_reply(req, 503, "Busy", b);
		evbuffer_free(b);
		return;
	}
	if (strcmp(path, "/gone") == 0)
		status = 410;
	else if (strcmp(path, "/fail") == 0)
		status = 500;
	else if (strcmp(path, "/flaky") == 0 && flaky_failures > 0) {
		flaky_failures--;
		status = 500;
	}
	evhttp_send_reply(req, status, "X", NULL);
}

static struct outbox_opts opts(void)
{
	struct outbox_opts o = {.timeout_ms = 3000, .max_in_flight = 16, .per_subscription = 4,
				.poll_ms = 50, .schedule_ms = {100, 100, 100}, .schedule_len = 3,
				.max_retry_after_s = 60, .allow_http = true, .allow_private = true};
	return o;
}

static void setup(void)
{
	log_set_level(LOG_ERROR);
	base = event_base_new();
	sink = evhttp_new(base);
	evhttp_set_gencb(sink, sink_cb, NULL);
	struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(sink, "127.0.0.1", 0);
	struct sockaddr_in sa;
	socklen_t sl = sizeof sa;
	getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &sl);
	port = ntohs(sa.sin_port);
	th_db_create_migrated(url, sizeof url);
	th_sql(url, "INSERT INTO schools (urn, name, kind) VALUES ('100001', 'Home', 'mainstream'), "
		    "('100002', 'PRU', 'pru')");
	struct db_pool_opts po = {.conninfo = url, .size = 3, .connect_timeout_ms = 2000,
				  .wait_timeout_ms = 5000, .max_waiters = 100};
	pool = dbp_new(base, &po);
	http = httpc_new(base, 16, 8);
	nhits = 0;
	flaky_failures = 0;
}

static void teardown(void)
{
	httpc_free(http);
	dbp_free(pool);
	evhttp_free(sink);
	event_base_free(base);
}

static void subscribe(const char *urn, const char *path, const char *events)
{
	char sql[600];
	snprintf(sql, sizeof sql,
		 "INSERT INTO subscriptions (urn, url, events, secret) VALUES ('%s', "
		 "'http://127.0.0.1:%u%s', '%s', '" SECRET "')",
		 urn, port, path, events);
	th_sql(url, sql);
}

static void emit(const char *upn, const char *type)
{
	char sql[400];
	snprintf(sql, sizeof sql,
		 "SELECT dualreg_emit('%s', '%s', ARRAY['100001', '100002'], "
		 "jsonb_build_object('upn', '%s'))",
		 type, upn, upn);
	th_sql(url, sql);
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

/* Runs the loop until sql returns want, at most `seconds`. */
static void run_until_sql(const char *sql, long want, double seconds)
{
	double deadline = th_now() + seconds;
	long got = -1;
	while (th_now() < deadline) {
		struct timeval tv = {0, 50000};
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
		if ((got = scalar(sql)) == want)
			return;
	}
	ck_abort_msg("%s: got %ld, want %ld", sql, got, want);
}

START_TEST(test_delivered_and_signed)
{
	subscribe("100001", "/ok", "{*}");
	emit("B801200005001", "mark.recorded");
	struct outbox_opts o = opts();
	struct outbox *ob = outbox_new(base, pool, http, &o);
	outbox_wake(ob);
	run_until_sql("SELECT count(*) FROM deliveries WHERE status = 'delivered'", 1, 10);
	ck_assert_int_eq(nhits, 1);
	ck_assert(hits[0].sig_ok);
	ck_assert_int_eq(hits[0].nsigs, 1);
	ck_assert_int_eq(strncmp(hits[0].id, "evt_", 4), 0);
	ck_assert_str_eq(hits[0].upn, "B801200005001");
	outbox_free(ob);
}
END_TEST

START_TEST(test_event_filter_and_scope)
{
	subscribe("100001", "/ok", "{mark.conflict}");
	th_sql(url, "INSERT INTO schools (urn, name, kind) VALUES ('100003', 'Elsewhere', 'pru')");
	char sql[300];
	snprintf(sql, sizeof sql,
		 "INSERT INTO subscriptions (urn, url, events, secret) VALUES ('100003', "
		 "'http://127.0.0.1:%u/ok', '{*}', '" SECRET "')", port);
	th_sql(url, sql);
	emit("B801200005001", "mark.recorded"); /* not subscribed by 100001; 100003 not concerned */
	emit("B801200005001", "mark.conflict");
	ck_assert_int_eq(scalar("SELECT count(*) FROM deliveries"), 1);
}
END_TEST

START_TEST(test_retries_then_fails)
{
	subscribe("100001", "/fail", "{*}");
	emit("B801200005001", "mark.recorded");
	struct outbox_opts o = opts();
	struct outbox *ob = outbox_new(base, pool, http, &o);
	outbox_wake(ob);
	run_until_sql("SELECT count(*) FROM deliveries WHERE status = 'failed' AND attempts = 4", 1,
		      15);
	ck_assert_int_eq(nhits, 4); /* the first attempt and three retries */
	ck_assert_int_eq(scalar("SELECT count(*) FROM deliveries WHERE last_status = 500 AND "
				"last_error = 'HTTP 500'"),
			 1);
	outbox_free(ob);
}
END_TEST

START_TEST(test_gone_disables)
{
	subscribe("100001", "/gone", "{*}");
	emit("B801200005001", "mark.recorded");
	struct outbox_opts o = opts();
	struct outbox *ob = outbox_new(base, pool, http, &o);
	outbox_wake(ob);
	run_until_sql("SELECT count(*) FROM subscriptions WHERE disabled_at IS NOT NULL", 1, 10);
	emit("B801200005001", "mark.recorded"); /* a disabled subscription gets nothing new */
	ck_assert_int_eq(scalar("SELECT count(*) FROM deliveries"), 1);
	outbox_free(ob);
}
END_TEST

START_TEST(test_per_pupil_order)
{
	subscribe("100001", "/flaky", "{*}");
	flaky_failures = 2; /* pupil A's first event fails twice */
	emit("A111111111111", "mark.recorded");
	emit("A111111111111", "mark.conflict");
	emit("Q222222222222", "mark.recorded");
	struct outbox_opts o = opts();
	o.per_subscription = 8;
	struct outbox *ob = outbox_new(base, pool, http, &o);
	outbox_wake(ob);
	run_until_sql("SELECT count(*) FROM deliveries WHERE status = 'delivered'", 3, 15);
	/* A's second event was never sent before A's first succeeded; Q went through at once. */
	int first_a_ok = -1, second_a = -1, q = -1;
	for (int i = 0; i < nhits; i++) {
		if (strcmp(hits[i].upn, "Q222222222222") == 0 && q < 0)
			q = i;
		if (strcmp(hits[i].upn, "A111111111111") == 0) {
			if (first_a_ok < 0 && i >= 2 && strcmp(hits[i].id, hits[0].id) == 0)
				first_a_ok = i;
			if (strcmp(hits[i].id, hits[0].id) != 0 && second_a < 0)
				second_a = i;
		}
	}
	ck_assert_int_eq(nhits, 5);
	ck_assert_int_ge(first_a_ok, 0);
	ck_assert_int_gt(second_a, first_a_ok);
	ck_assert_int_lt(q, first_a_ok);
	outbox_free(ob);
}
END_TEST

START_TEST(test_two_dispatchers_no_double_send)
{
	subscribe("100001", "/ok", "{*}");
	th_sql(url, "SELECT dualreg_emit('mark.recorded', 'P' || lpad(i::text, 12, '0'), "
		    "ARRAY['100001'], jsonb_build_object('upn', 'P' || lpad(i::text, 12, '0'))) "
		    "FROM generate_series(1, 200) i");
	struct outbox_opts o = opts();
	struct outbox *a = outbox_new(base, pool, http, &o);
	struct outbox *b = outbox_new(base, pool, http, &o);
	outbox_wake(a);
	outbox_wake(b);
	run_until_sql("SELECT count(*) FROM deliveries WHERE status = 'delivered'", 200, 20);
	ck_assert_int_eq(nhits, 200);
	for (int i = 0; i < nhits; i++)
		for (int j = i + 1; j < nhits; j++)
			ck_assert_str_ne(hits[i].id, hits[j].id);
	struct outbox_stats sa, sb;
	outbox_stats(a, &sa);
	outbox_stats(b, &sb);
	ck_assert_uint_eq(sa.delivered + sb.delivered, 200);
	outbox_free(a);
	outbox_free(b);
}
END_TEST

START_TEST(test_rotation_signs_twice)
{
	subscribe("100001", "/ok", "{*}");
	th_sql(url, "UPDATE subscriptions SET previous_secret = '" OLD_SECRET "', "
		    "previous_until = now() + interval '1 day'");
	emit("B801200005001", "mark.recorded");
	struct outbox_opts o = opts();
	struct outbox *ob = outbox_new(base, pool, http, &o);
	outbox_wake(ob);
	run_until_sql("SELECT count(*) FROM deliveries WHERE status = 'delivered'", 1, 10);
	ck_assert_int_eq(hits[0].nsigs, 2);
	ck_assert(hits[0].sig_ok);
	outbox_free(ob);
}
END_TEST

START_TEST(test_retry_after_honoured_and_response_kept)
{
	subscribe("100001", "/busy", "{*}");
	emit("B801200005001", "mark.recorded");
	struct outbox_opts o = opts(); /* the schedule says 100 ms; the endpoint says 30 s */
	struct outbox *ob = outbox_new(base, pool, http, &o);
	outbox_wake(ob);
	run_until_sql("SELECT count(*) FROM deliveries WHERE attempts = 1 AND last_status = 503", 1,
		      10);
	/* The sink is on loopback: what it answered is recorded as not kept. */
	ck_assert_int_eq(scalar("SELECT count(*) FROM deliveries WHERE status = 'pending' AND "
				"next_attempt_at > now() + interval '25 seconds' AND "
				"last_response = '(response from a non-public address not kept)'"),
			 1);
	ck_assert_int_eq(nhits, 1);
	outbox_free(ob);
}
END_TEST

/* The text of the first row of sql (or "" when there is none). */
static void text_of(const char *sql, char *out, size_t size)
{
	PGconn *c = PQconnectdb(url);
	PGresult *r = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
	snprintf(out, size, "%s", PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	PQfinish(c);
}

/* The events (by their order of emission, 1-based) behind what one statement claimed. */
#define CLAIMED(call)                                                                      \
	"SELECT coalesce(string_agg(n::text, ',' ORDER BY n), '') FROM (SELECT e.id - "       \
	"(SELECT min(id) - 1 FROM events) AS n FROM " call " c JOIN events e ON e.id = "     \
	"c.event_id) x"

/*
 * The claim hands out each subscription's oldest pending delivery of each pupil (the
 * deliveries without a pupil count as one pupil), oldest first and only as many as the
 * subscription has room for under per_subscription; a cycle records outcomes and then
 * claims what they released; an outcome is recorded only under its owner's lease; 410
 * disables the subscription. With statistics from when nothing was pending, as in
 * service, the claim stays on its indexes.
 */
START_TEST(test_claim_heads_room_and_cycle)
{
	subscribe("100001", "/ok", "{*}");
	th_sql(url, "ANALYZE deliveries");
	emit("A111111111111", "mark.recorded"); /* 1 */
	emit("A111111111111", "mark.conflict"); /* 2: waits for 1 */
	emit("Q222222222222", "mark.recorded"); /* 3 */
	th_sql(url, "SELECT dualreg_emit('mark.recorded', NULL, ARRAY['100001'], '{}'::jsonb) "
		    "FROM generate_series(1, 2)"); /* 4, 5: 5 waits for 4 */
	char got[128], sql[600];
	text_of(CLAIMED("dualreg_outbox_claim('t1', 10, 2, 30)"), got, sizeof got);
	ck_assert_str_eq(got, "1,3");
	text_of(CLAIMED("dualreg_outbox_claim('t1', 10, 3, 30)"), got, sizeof got);
	ck_assert_str_eq(got, "4");
	text_of(CLAIMED("dualreg_outbox_claim('t2', 10, 3, 30)"), got, sizeof got);
	ck_assert_str_eq(got, "");
	/* 1 delivered and 3 to be retried in a minute: 2 comes next, 3 is not due. */
	snprintf(sql, sizeof sql,
		 CLAIMED("dualreg_outbox_cycle('t1', jsonb_build_array("
			 "jsonb_build_object('id', (SELECT d.id FROM deliveries d WHERE d.event_id = "
			 "(SELECT min(id) FROM events)), 'outcome', 'delivered', 'status', 200), "
			 "jsonb_build_object('id', (SELECT d.id FROM deliveries d WHERE d.event_id = "
			 "(SELECT min(id) + 2 FROM events)), 'outcome', 'retry', 'status', 500, "
			 "'error', 'HTTP 500', 'delay', 60)), 10, 3, 30)"));
	text_of(sql, got, sizeof got);
	ck_assert_str_eq(got, "2");
	ck_assert_int_eq(scalar("SELECT count(*) FROM deliveries WHERE status = 'delivered' AND "
				"delivered_at IS NOT NULL AND lease_owner IS NULL"),
			 1);
	ck_assert_int_eq(scalar("SELECT count(*) FROM deliveries WHERE status = 'pending' AND "
				"last_status = 500 AND next_attempt_at > now() + interval '50 seconds' "
				"AND lease_until IS NULL"),
			 1);
	/* Only the lease holder records: t2's word on 4 is ignored. */
	ck_assert_int_eq(scalar("SELECT dualreg_outbox_done_many('t2', jsonb_build_array("
				"jsonb_build_object('id', (SELECT d.id FROM deliveries d WHERE "
				"d.event_id = (SELECT min(id) + 3 FROM events)), 'outcome', "
				"'delivered')))"),
			 0);
	ck_assert_int_eq(scalar("SELECT count(*) FROM deliveries WHERE lease_owner = 't1'"), 2);
	/* 410 on 4: the subscription is disabled and nothing more is claimed for it. */
	text_of(CLAIMED("dualreg_outbox_cycle('t1', jsonb_build_array(jsonb_build_object("
			"'id', (SELECT d.id FROM deliveries d WHERE d.event_id = "
			"(SELECT min(id) + 3 FROM events)), 'outcome', 'gone', 'status', 410)), "
			"10, 3, 30)"),
		got, sizeof got);
	ck_assert_str_eq(got, "");
	ck_assert_int_eq(scalar("SELECT count(*) FROM subscriptions WHERE disabled_at IS NOT NULL"),
			 1);
	ck_assert_int_eq(scalar("SELECT count(*) FROM deliveries WHERE status = 'failed'"), 1);
}
END_TEST

Suite *outbox_suite(void)
{
	Suite *s = suite_create("outbox");
	TCase *tc = tcase_create("delivery");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_delivered_and_signed);
	tcase_add_test(tc, test_event_filter_and_scope);
	tcase_add_test(tc, test_retries_then_fails);
	tcase_add_test(tc, test_gone_disables);
	tcase_add_test(tc, test_per_pupil_order);
	tcase_add_test(tc, test_two_dispatchers_no_double_send);
	tcase_add_test(tc, test_rotation_signs_twice);
	tcase_add_test(tc, test_retry_after_honoured_and_response_kept);
	tcase_add_test(tc, test_claim_heads_room_and_cycle);
	suite_add_tcase(s, tc);
	return s;
}
