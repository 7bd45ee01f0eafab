/*
 * secrets: webhook secrets and feed tokens at rest, through the real daemon and
 * dualregctl. A replayed subscription creation or rotation answers without the secret,
 * and the stored Idempotency-Key record never holds it. With a key file the stored
 * columns hold neither the secret nor the token, yet deliveries are signed with the
 * secret and the feed is read with the token; a value copied into another row does not
 * open. Values stored before encryption are sealed by `secrets rotate-key`, which adds
 * a new key and seals everything again with it; the daemon takes the new key file on
 * SIGHUP and keeps its keys when the file is refused; `drop-old-keys` waits until no
 * value needs an older key. The unit tests of secret_box are in check_secret_box.c.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../harness.h"
#include "../suites.h"
#include "../th_server.h"
#include "dualreg/secret_box.h"
#include "dualreg/sign.h"

#define HOME "100001"
#define PRU "100002"
#define TOKEN "feed-token-Zq81"

struct hit {
	char path[32];
	char id[40], ts[24], sigs[256], auth[128];
	char body[1024];
};

static struct th_server mis;
static pthread_mutex_t mis_mu = PTHREAD_MUTEX_INITIALIZER;
static struct hit hits[64];
static int nhits;

static char url[1024], keys_path[512], out[8192];
static struct th_daemon d;
static char admin[64], home[64], pru[64];

static const char ini[] = "[webhooks]\nallow_http = true\nallow_private = true\n"
			  "retry_schedule = 100ms, 100ms\n"
			  "[pull]\nallow_http = true\nallow_private = true\ntimeout = 5s\n";

/* The school's MIS: webhooks on /hook*, an empty feed on /feed. */
static void mis_cb(struct evhttp_request *req, void *arg)
{
	(void)arg;
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	pthread_mutex_lock(&mis_mu);
	if (nhits < 64) {
		struct hit *h = &hits[nhits++];
		const char *v;
		snprintf(h->path, sizeof h->path, "%s",
			 evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req)));
		snprintf(h->id, sizeof h->id, "%s", (v = evhttp_find_header(in, "webhook-id")) ? v : "");
		snprintf(h->ts, sizeof h->ts, "%s",
			 (v = evhttp_find_header(in, "webhook-timestamp")) ? v : "");
		snprintf(h->sigs, sizeof h->sigs, "%s",
			 (v = evhttp_find_header(in, "webhook-signature")) ? v : "");
		snprintf(h->auth, sizeof h->auth, "%s",
			 (v = evhttp_find_header(in, "Authorization")) ? v : "");
		struct evbuffer *b = evhttp_request_get_input_buffer(req);
		size_t n = evbuffer_get_length(b);
		if (n >= sizeof h->body)
			n = sizeof h->body - 1;
		evbuffer_copyout(b, h->body, n);
		h->body[n] = '\0';
	}
	pthread_mutex_unlock(&mis_mu);
	if (strcmp(evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req)), "/feed") == 0) {
		struct evbuffer *b = evbuffer_new();
		evbuffer_add_printf(b, "{\"marks\": [], \"next_cursor\": \"c1\", \"has_more\": false}");
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
				  "application/json");
		evhttp_send_reply(req, 200, "OK", b);
		evbuffer_free(b);
		return;
	}
	evhttp_send_reply(req, 204, "No Content", NULL);
}

/* How many requests reached path. */
static int count(const char *path)
{
	int n = 0;
	pthread_mutex_lock(&mis_mu);
	for (int i = 0; i < nhits; i++)
		n += strcmp(hits[i].path, path) == 0;
	pthread_mutex_unlock(&mis_mu);
	return n;
}

/* Waits (bounded) until want requests reached path; copies the last into h. */
static void wait_for(const char *path, int want, struct hit *h)
{
	double deadline = th_now() + 15;
	while (count(path) < want && th_now() < deadline)
		usleep(20000);
	ck_assert_msg(count(path) >= want, "%d of %d requests on %s", count(path), want, path);
	pthread_mutex_lock(&mis_mu);
	for (int i = 0; i < nhits; i++)
		if (strcmp(hits[i].path, path) == 0)
			*h = hits[i];
	pthread_mutex_unlock(&mis_mu);
}

/* Asserts that every signature of h verifies with secret. */
static void assert_signed(const struct hit *h, const char *secret)
{
	char want[SIGN_SIG_MAX];
	ck_assert_int_eq(sign_webhook(secret, h->id, atoll(h->ts), h->body, strlen(h->body), want),
			 0);
	ck_assert_msg(strcmp(h->sigs, want) == 0, "signature %s, expected %s", h->sigs, want);
}

static void setup(void)
{
	nhits = 0;
	mis.handler = mis_cb;
	th_server_start(&mis);
	th_db_create_migrated(url, sizeof url);
	th_sql(url, "INSERT INTO schools (urn, name, kind) VALUES ('" HOME "', 'Home', "
		    "'mainstream'), ('" PRU "', 'PRU', 'pru')");
	th_key_create(url, NULL, admin, sizeof admin);
	th_key_create(url, HOME, home, sizeof home);
	th_key_create(url, PRU, pru, sizeof pru);
	static int seq;
	snprintf(keys_path, sizeof keys_path, "%s/secrets-%d-%d.key", th_env("DUALREG_TEST_TMP"),
		 (int)getpid(), seq++);
	unlink(keys_path);
}

static void teardown(void)
{
	if (d.pid > 0)
		th_daemon_stop(&d, SIGKILL);
	th_server_stop(&mis);
}

/* One text value of a query (copied into buf), failing the test on anything else. */
static void sql_text(const char *sql, char *buf, size_t len)
{
	PGconn *c = PQconnectdb(url);
	PGresult *r = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "%s: %s", sql,
		      PQresultErrorMessage(r));
	snprintf(buf, len, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
}

/* dualregctl -c conf a1 [a2 [a3]]; its stdout in out. */
static int ctl(const char *conf, const char *a1, const char *a2, const char *a3)
{
	char bin[512], env_url[1100];
	snprintf(bin, sizeof bin, "%s/dualregctl", th_env("DUALREG_TEST_BIN"));
	snprintf(env_url, sizeof env_url, "DUALREG_DATABASE_URL=%s", url);
	char *argv[] = {bin, "-c", (char *)conf, (char *)a1, (char *)a2, (char *)a3, NULL};
	char *const envp[] = {env_url, NULL};
	return th_run(argv, envp, out, sizeof out);
}

/* Appends text to the daemon's configuration file. */
static void conf_append(const char *text)
{
	FILE *f = fopen(d.conf_path, "a");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

/* How many times the daemon's log holds text. */
static int log_count(const char *text)
{
	FILE *f = fopen(d.log_path, "r");
	ck_assert_ptr_nonnull(f);
	char line[4096];
	int n = 0;
	while (fgets(line, sizeof line, f) != NULL)
		n += strstr(line, text) != NULL;
	fclose(f);
	return n;
}

/* Sends SIGHUP and waits (bounded) until the log holds text want times. */
static void reload_until(const char *text, int want)
{
	kill(d.pid, SIGHUP);
	double deadline = th_now() + 10;
	while (log_count(text) < want && th_now() < deadline)
		usleep(20000);
	ck_assert_msg(log_count(text) >= want, "no \"%s\" after SIGHUP", text);
}

/* Subscribes the home school to /hook; its secret into secret, its id into id. */
static void subscribe(const char *ikey, char *secret, char *id)
{
	char body[256], h[128] = "";
	snprintf(body, sizeof body,
		 "{\"url\": \"http://127.0.0.1:%u/hook\", \"events\": [\"*\"]}", mis.port);
	if (ikey != NULL)
		snprintf(h, sizeof h, "Idempotency-Key: %s", ikey);
	const char *headers[] = {h, NULL};
	struct th_resp r;
	th_api(&d, "POST", "/v1/subscriptions", home, body, ikey ? headers : NULL, &r);
	ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
	const cJSON *s = cJSON_GetObjectItem(r.json, "secret");
	ck_assert(cJSON_IsString(s));
	snprintf(secret, SIGN_SECRET_MAX, "%s", s->valuestring);
	snprintf(id, 24, "%d", cJSON_GetObjectItem(r.json, "id")->valueint);
	th_resp_free(&r);
}

/* Waits (bounded) until no feed read of the home school is in progress. */
static void wait_pull_idle(void)
{
	char idle[8] = "f";
	double deadline = th_now() + 10;
	while (strcmp(idle, "t") != 0 && th_now() < deadline) {
		sql_text("SELECT pull_lease_owner IS NULL AND pull_next_at > now() FROM schools "
			 "WHERE urn = '" HOME "'",
			 idle, sizeof idle);
		if (strcmp(idle, "t") != 0)
			usleep(20000);
	}
	ck_assert_str_eq(idle, "t");
}

/* Gives the home school a feed with the token; the daemon reads it at once. */
static void set_feed(void)
{
	char body[256];
	snprintf(body, sizeof body,
		 "{\"pull_url\": \"http://127.0.0.1:%u/feed\", \"pull_token\": \"" TOKEN
		 "\", \"pull_interval\": 3600}",
		 mis.port);
	struct th_resp r;
	th_api(&d, "PATCH", "/v1/schools/" HOME, admin, body, NULL, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	ck_assert_ptr_null(strstr(r.body, TOKEN));
	th_resp_free(&r);
	wait_pull_idle();
}

/* An event for the home school is delivered, signed with secret; the feed is read
 * (again) with the token. */
static void assert_delivery_and_pull(const char *secret)
{
	struct hit h;
	int before = count("/hook"), pulls = count("/feed");
	th_sql(url, "SELECT dualreg_emit('mark.recorded', 'B801200005001', ARRAY['" HOME "'], "
		    "'{\"upn\": \"B801200005001\"}')");
	wait_for("/hook", before + 1, &h);
	assert_signed(&h, secret);
	th_sql(url, "UPDATE schools SET pull_next_at = now() WHERE urn = '" HOME "'");
	wait_for("/feed", pulls + 1, &h);
	ck_assert_str_eq(h.auth, "Bearer " TOKEN);
	wait_pull_idle();
}

/* Neither the secret nor the token is anywhere in the rows that hold them. */
static void assert_not_stored(const char *secret)
{
	char buf[16384];
	sql_text("SELECT string_agg(s::text, ' ') FROM subscriptions s", buf, sizeof buf);
	ck_assert_msg(strstr(buf, secret) == NULL && strstr(buf, "whsec_") == NULL, "%s", buf);
	sql_text("SELECT string_agg(s::text, ' ') FROM schools s", buf, sizeof buf);
	ck_assert_msg(strstr(buf, TOKEN) == NULL, "%s", buf);
}

/* A JSON status of `secrets status --json` (caller frees). */
static cJSON *status_json(const char *conf)
{
	ck_assert_msg(ctl(conf, "secrets", "status", "--json") == 0, "%s", th_last_stderr());
	cJSON *j = cJSON_Parse(out);
	ck_assert_msg(j != NULL, "%s", out);
	return j;
}

/* The number of values key id encrypts according to status (-1: not listed). */
static int values_of(const cJSON *status, const char *id)
{
	const cJSON *k;
	cJSON_ArrayForEach(k, cJSON_GetObjectItem(status, "keys"))
	{
		if (strcmp(cJSON_GetObjectItem(k, "id")->valuestring, id) == 0)
			return cJSON_GetObjectItem(k, "values")->valueint;
	}
	return -1;
}

START_TEST(test_replay_shows_no_secret)
{
	th_daemon_start(&d, url, ini, false);
	ck_assert_int_eq(log_count("stored unencrypted"), 1);
	char secret[SIGN_SECRET_MAX], id[24], buf[4096];
	subscribe("create-1", secret, id);
	/* The stored record holds everything but the secret. */
	sql_text("SELECT response FROM idempotency_keys WHERE idem_key = 'create-1'", buf,
		 sizeof buf);
	ck_assert_msg(strstr(buf, secret) == NULL && strstr(buf, "whsec_") == NULL, "%s", buf);
	ck_assert_msg(strstr(buf, "\"secret_already_shown\":true") != NULL, "%s", buf);
	/* The replay: the same subscription, the secret null and said to be shown. */
	char body[256];
	snprintf(body, sizeof body,
		 "{\"url\": \"http://127.0.0.1:%u/hook\", \"events\": [\"*\"]}", mis.port);
	const char *headers[] = {"Idempotency-Key: create-1", NULL};
	struct th_resp r;
	th_api(&d, "POST", "/v1/subscriptions", home, body, headers, &r);
	ck_assert_int_eq(r.status, 201);
	ck_assert_str_eq(r.idempotent_replayed, "true");
	ck_assert_ptr_null(strstr(r.body, "whsec_"));
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r.json, "secret")));
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r.json, "secret_already_shown")));
	char rid[24];
	snprintf(rid, sizeof rid, "%d", cJSON_GetObjectItem(r.json, "id")->valueint);
	ck_assert_str_eq(rid, id);
	th_resp_free(&r);

	/* The same for a rotation. */
	char path[64];
	snprintf(path, sizeof path, "/v1/subscriptions/%s/rotate-secret", id);
	const char *rot[] = {"Idempotency-Key: rotate-1", NULL};
	th_api(&d, "POST", path, home, NULL, rot, &r);
	ck_assert_int_eq(r.status, 200);
	const cJSON *fresh = cJSON_GetObjectItem(r.json, "secret");
	ck_assert(cJSON_IsString(fresh));
	ck_assert_ptr_null(cJSON_GetObjectItem(r.json, "secret_already_shown"));
	char fresh_secret[SIGN_SECRET_MAX];
	snprintf(fresh_secret, sizeof fresh_secret, "%s", fresh->valuestring);
	th_resp_free(&r);
	sql_text("SELECT response FROM idempotency_keys WHERE idem_key = 'rotate-1'", buf,
		 sizeof buf);
	ck_assert_msg(strstr(buf, fresh_secret) == NULL && strstr(buf, "whsec_") == NULL, "%s",
		      buf);
	th_api(&d, "POST", path, home, NULL, rot, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.idempotent_replayed, "true");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r.json, "secret")));
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r.json, "secret_already_shown")));
	th_resp_free(&r);
	/* The rotation still took effect once: the fresh secret signs. */
	struct hit h;
	th_sql(url, "SELECT dualreg_emit('mark.recorded', 'B801200005001', ARRAY['" HOME "'], "
		    "'{\"upn\": \"B801200005001\"}')");
	wait_for("/hook", 1, &h);
	char want[SIGN_SIG_MAX];
	ck_assert_int_eq(
	    sign_webhook(fresh_secret, h.id, atoll(h.ts), h.body, strlen(h.body), want), 0);
	ck_assert_msg(strncmp(h.sigs, want, strlen(want)) == 0, "%s", h.sigs);
}
END_TEST

START_TEST(test_stored_encrypted)
{
	/* new-key-file: mode 0600, never over an existing file. */
	ck_assert_msg(ctl("/dev/null", "secrets", "new-key-file", keys_path) == 0, "%s",
		      th_last_stderr());
	struct stat st;
	ck_assert_int_eq(stat(keys_path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	char err[600];
	struct secret_box *box = secret_box_load(keys_path, err, sizeof err);
	ck_assert_msg(box != NULL, "%s", err);
	char kid[SECRET_BOX_ID_LEN + 1];
	snprintf(kid, sizeof kid, "%s", secret_box_key_id(box, 0));
	secret_box_free(box);
	ck_assert_msg(strstr(out, kid) != NULL, "%s", out);
	ck_assert_int_eq(ctl("/dev/null", "secrets", "new-key-file", keys_path), 1);
	ck_assert_msg(strstr(th_last_stderr(), "never overwritten") != NULL, "%s",
		      th_last_stderr());

	char extra[1024];
	snprintf(extra, sizeof extra, "%s[secrets]\nkey_file = %s\n", ini, keys_path);
	th_daemon_start(&d, url, extra, false);
	ck_assert_int_eq(log_count("stored unencrypted"), 0);
	ck_assert_int_eq(log_count("secrets key file loaded"), 1);
	char secret[SIGN_SECRET_MAX], id[24], stored[1024], prefix[32];
	subscribe(NULL, secret, id);
	set_feed();
	assert_not_stored(secret);
	snprintf(prefix, sizeof prefix, "v1:%s:", kid);
	sql_text("SELECT secret FROM subscriptions", stored, sizeof stored);
	ck_assert_msg(strncmp(stored, prefix, strlen(prefix)) == 0, "%s", stored);
	sql_text("SELECT pull_token FROM schools WHERE urn = '" HOME "'", stored, sizeof stored);
	ck_assert_msg(strncmp(stored, prefix, strlen(prefix)) == 0, "%s", stored);
	assert_delivery_and_pull(secret);

	/* A rotation seals the new secret; the old one keeps signing beside it. */
	char path[64];
	snprintf(path, sizeof path, "/v1/subscriptions/%s/rotate-secret", id);
	struct th_resp r;
	th_api(&d, "POST", path, home, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	char fresh[SIGN_SECRET_MAX];
	snprintf(fresh, sizeof fresh, "%s", cJSON_GetObjectItem(r.json, "secret")->valuestring);
	th_resp_free(&r);
	assert_not_stored(fresh);
	assert_not_stored(secret);
	struct hit h;
	th_sql(url, "SELECT dualreg_emit('mark.recorded', 'B801200005001', ARRAY['" HOME "'], "
		    "'{\"upn\": \"B801200005001\"}')");
	wait_for("/hook", 2, &h);
	char s1[SIGN_SIG_MAX], s2[SIGN_SIG_MAX], both[2 * SIGN_SIG_MAX + 2];
	ck_assert_int_eq(sign_webhook(fresh, h.id, atoll(h.ts), h.body, strlen(h.body), s1), 0);
	ck_assert_int_eq(sign_webhook(secret, h.id, atoll(h.ts), h.body, strlen(h.body), s2), 0);
	snprintf(both, sizeof both, "%s %s", s1, s2);
	ck_assert_str_eq(h.sigs, both);

	/* A sealed value copied into another row does not open: nothing is sent with it. */
	char body[256];
	snprintf(body, sizeof body, "{\"url\": \"http://127.0.0.1:%u/hook-pru\", \"events\": [\"*\"]}",
		 mis.port);
	th_api(&d, "POST", "/v1/subscriptions", pru, body, NULL, &r);
	ck_assert_int_eq(r.status, 201);
	th_resp_free(&r);
	th_sql(url, "UPDATE subscriptions SET secret = (SELECT secret FROM subscriptions WHERE urn "
		    "= '" HOME "') WHERE urn = '" PRU "'");
	th_sql(url, "SELECT dualreg_emit('mark.recorded', 'B801200005001', ARRAY['" PRU "'], "
		    "'{\"upn\": \"B801200005001\"}')");
	double deadline = th_now() + 10;
	char last_error[512] = "";
	while (th_now() < deadline) {
		sql_text("SELECT coalesce(max(d.last_error), '') FROM deliveries d JOIN subscriptions "
			 "s ON s.id = d.subscription_id WHERE s.urn = '" PRU "'",
			 last_error, sizeof last_error);
		if (last_error[0] != '\0')
			break;
		usleep(50000);
	}
	ck_assert_msg(strstr(last_error, "does not decrypt") != NULL, "%s", last_error);
	ck_assert_int_eq(count("/hook-pru"), 0);
	/* The same for a feed token: the feed is not asked, the failure is kept. */
	int pulls = count("/feed");
	th_sql(url, "UPDATE schools SET (pull_url, pull_token, pull_next_at) = (SELECT pull_url, "
		    "pull_token, now() FROM schools WHERE urn = '" HOME "') WHERE urn = '" PRU "'");
	deadline = th_now() + 10;
	last_error[0] = '\0';
	while (th_now() < deadline) {
		sql_text("SELECT coalesce(pull_last_error, '') FROM schools WHERE urn = '" PRU "'",
			 last_error, sizeof last_error);
		if (last_error[0] != '\0')
			break;
		usleep(50000);
	}
	ck_assert_msg(strstr(last_error, "cannot read the feed token") != NULL, "%s", last_error);
	ck_assert_int_eq(count("/feed"), pulls);

	/* A token that reads like a sealed value is refused, and changes nothing. */
	th_api(&d, "PATCH", "/v1/schools/" HOME, admin, "{\"pull_token\": \"v1:0123abcd:AAAA\"}",
	       NULL, &r);
	th_assert_problem(&r, 422);
	ck_assert_ptr_nonnull(strstr(r.body, "/pull_token"));
	th_resp_free(&r);
	sql_text("SELECT pull_token FROM schools WHERE urn = '" HOME "'", stored, sizeof stored);
	ck_assert_msg(strncmp(stored, prefix, strlen(prefix)) == 0, "%s", stored);
}
END_TEST

/* The staff member's TOTP secret is sealed, for its row, with the file's current key. */
static void assert_staff_secret(const char *plain)
{
	char stored[512], id[24], aad[SECRET_BOX_AAD_MAX], err[300];
	sql_text("SELECT totp_secret FROM staff_users", stored, sizeof stored);
	sql_text("SELECT id::text FROM staff_users", id, sizeof id);
	ck_assert(secret_box_is_sealed(stored, NULL));
	struct secret_box *box = secret_box_load(keys_path, err, sizeof err);
	ck_assert_msg(box != NULL, "%s", err);
	secret_box_aad_staff(id, aad);
	char *opened = secret_box_open(box, stored, aad, err, sizeof err);
	ck_assert_msg(opened != NULL, "%s", err);
	ck_assert_str_eq(opened, plain);
	secret_box_value_free(opened);
	secret_box_free(box);
}

START_TEST(test_rotate_key)
{
	/* Values stored before encryption was configured. */
	th_daemon_start(&d, url, ini, false);
	char secret[SIGN_SECRET_MAX], id[24], stored[1024];
	subscribe(NULL, secret, id);
	set_feed();
	sql_text("SELECT secret FROM subscriptions", stored, sizeof stored);
	ck_assert_str_eq(stored, secret);
	assert_delivery_and_pull(secret);
	/* A staff member's TOTP secret, stored unencrypted like the others. */
	th_sql(url, "INSERT INTO staff_users (email, name, role, urn, totp_secret) VALUES "
		    "('lead@example.org', 'Lead', 'lead', '" PRU "', 'JBSWY3DPEHPK3PXP')");

	/* A key file is configured; status counts what is still plaintext. */
	ck_assert_int_eq(ctl("/dev/null", "secrets", "new-key-file", keys_path), 0);
	char conf_line[700];
	snprintf(conf_line, sizeof conf_line, "[secrets]\nkey_file = %s\n", keys_path);
	conf_append(conf_line);
	cJSON *st = status_json(d.conf_path);
	char k1[SECRET_BOX_ID_LEN + 1];
	snprintf(k1, sizeof k1, "%s", cJSON_GetObjectItem(st, "current_key")->valuestring);
	ck_assert_int_eq(cJSON_GetObjectItem(st, "plaintext")->valueint, 3);
	ck_assert_int_eq(values_of(st, k1), 0);
	cJSON_Delete(st);

	/* rotate-key: a new current key, every value sealed with it. */
	ck_assert_msg(ctl(d.conf_path, "secrets", "rotate-key", NULL) == 0, "%s",
		      th_last_stderr());
	ck_assert_msg(strstr(out, "encrypted 3 stored values again") != NULL, "%s", out);
	st = status_json(d.conf_path);
	char k2[SECRET_BOX_ID_LEN + 1];
	snprintf(k2, sizeof k2, "%s", cJSON_GetObjectItem(st, "current_key")->valuestring);
	ck_assert_str_ne(k2, k1);
	ck_assert_int_eq(cJSON_GetObjectItem(st, "plaintext")->valueint, 0);
	ck_assert_int_eq(values_of(st, k2), 3);
	ck_assert_int_eq(values_of(st, k1), 0);
	cJSON_Delete(st);
	assert_staff_secret("JBSWY3DPEHPK3PXP");
	struct stat sb;
	ck_assert_int_eq(stat(keys_path, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
	assert_not_stored(secret);
	/* The daemon reads the key file on SIGHUP and signs and pulls with the values. */
	reload_until("secrets key file loaded", 1);
	assert_delivery_and_pull(secret);

	/* An unencrypted value keeps the older keys in the file. */
	th_sql(url, "INSERT INTO subscriptions (urn, url, events, secret) VALUES ('" PRU "', "
		    "'http://127.0.0.1:9/x', '{*}', 'whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=')");
	ck_assert_int_eq(ctl(d.conf_path, "secrets", "drop-old-keys", NULL), 1);
	ck_assert_msg(strstr(th_last_stderr(), "1 stored value is not encrypted") != NULL, "%s",
		      th_last_stderr());
	ck_assert_msg(ctl(d.conf_path, "secrets", "rotate-key", NULL) == 0, "%s",
		      th_last_stderr());
	ck_assert_msg(strstr(out, "encrypted 4 stored values again") != NULL, "%s", out);
	st = status_json(d.conf_path);
	char k3[SECRET_BOX_ID_LEN + 1];
	snprintf(k3, sizeof k3, "%s", cJSON_GetObjectItem(st, "current_key")->valuestring);
	ck_assert_int_eq(values_of(st, k3), 4);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(st, "keys")), 3);
	cJSON_Delete(st);
	reload_until("secrets key file loaded", 2);
	ck_assert_msg(ctl(d.conf_path, "secrets", "drop-old-keys", NULL) == 0, "%s",
		      th_last_stderr());
	st = status_json(d.conf_path);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(st, "keys")), 1);
	ck_assert_str_eq(cJSON_GetObjectItem(st, "current_key")->valuestring, k3);
	cJSON_Delete(st);
	reload_until("secrets key file loaded", 3);
	assert_delivery_and_pull(secret);
	/* The human-readable status too. */
	ck_assert_int_eq(ctl(d.conf_path, "secrets", "status", NULL), 0);
	ck_assert_msg(strstr(out, k3) != NULL && strstr(out, "current") != NULL, "%s", out);

	/* A key file others may read: the daemon refuses it at start (-t) and on reload,
	 * where it keeps the keys it has. */
	ck_assert_int_eq(chmod(keys_path, 0644), 0);
	char bin[512];
	snprintf(bin, sizeof bin, "%s/dualregd", th_env("DUALREG_TEST_BIN"));
	char *const check[] = {bin, "-t", "-c", d.conf_path, NULL};
	ck_assert_int_eq(th_run(check, NULL, out, sizeof out), 2);
	ck_assert_msg(strstr(th_last_stderr(), "chmod 600") != NULL, "%s", th_last_stderr());
	reload_until("keeping the keys in use", 1);
	assert_delivery_and_pull(secret);
	ck_assert_int_eq(ctl(d.conf_path, "secrets", "rotate-key", NULL), 1);
}
END_TEST

Suite *secrets_suite(void)
{
	Suite *s = suite_create("secrets");
	secret_box_tests(s);
	TCase *tc = tcase_create("at_rest");
	tcase_set_timeout(tc, 90);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_replay_shows_no_secret);
	tcase_add_test(tc, test_stored_encrypted);
	tcase_add_test(tc, test_rotate_key);
	suite_add_tcase(s, tc);
	return s;
}
