/*
 * tls: webhook delivery over real HTTPS on loopback. A test certificate authority and a
 * server certificate for 127.0.0.1 are made with the openssl command; the sink is an
 * evhttp server behind libevent's OpenSSL bufferevents, in a thread of the test. The
 * daemon verifies certificates by default (an unknown issuer is a failed attempt, to
 * be retried) and trusts the configured [outbound] ca_file.
 */
#include <arpa/inet.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
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

static struct th_server tls_sink;
static atomic_int tls_hits;
#define tls_port tls_sink.port
static SSL_CTX *tls_ctx;
static char dir[512], url[1024];
static struct th_daemon d;
static char home[64];

static void hook_cb(struct evhttp_request *req, void *arg)
{
	(void)arg;
	atomic_fetch_add(&tls_hits, 1);
	evhttp_send_reply(req, 204, "No Content", NULL);
}

static struct bufferevent *tls_bev(struct event_base *base, void *arg)
{
	(void)arg;
	return bufferevent_openssl_socket_new(base, -1, SSL_new(tls_ctx), BUFFEREVENT_SSL_ACCEPTING,
					      BEV_OPT_CLOSE_ON_FREE);
}

/* A CA and a server certificate for 127.0.0.1 signed by it, in dir. */
static void make_certificates(void)
{
	char cmd[4096], out[8192];
	snprintf(cmd, sizeof cmd,
		 "set -e; cd '%s';"
		 "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=dualreg test CA' "
		 "  -keyout ca.key -out ca.pem 2>/dev/null;"
		 "openssl req -newkey rsa:2048 -nodes -subj '/CN=127.0.0.1' -keyout server.key "
		 "  -out server.csr 2>/dev/null;"
		 "printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext.cnf;"
		 "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
		 "  -days 2 -extfile ext.cnf -out server.pem 2>/dev/null",
		 dir);
	char *const argv[] = {"/bin/sh", "-c", cmd, NULL};
	ck_assert_msg(th_run(argv, NULL, out, sizeof out) == 0, "openssl: %s", out);
}

static void setup(void)
{
	snprintf(dir, sizeof dir, "%s/tls-%d", th_env("DUALREG_TEST_TMP"), (int)getpid());
	char mk[600];
	snprintf(mk, sizeof mk, "mkdir -p '%s'", dir);
	char *const argv[] = {"/bin/sh", "-c", mk, NULL};
	ck_assert_int_eq(th_run(argv, NULL, NULL, 0), 0);
	make_certificates();
	tls_ctx = SSL_CTX_new(TLS_server_method());
	char cert[600], key[600];
	snprintf(cert, sizeof cert, "%s/server.pem", dir);
	snprintf(key, sizeof key, "%s/server.key", dir);
	ck_assert_int_eq(SSL_CTX_use_certificate_file(tls_ctx, cert, SSL_FILETYPE_PEM), 1);
	ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(tls_ctx, key, SSL_FILETYPE_PEM), 1);
	atomic_store(&tls_hits, 0);
	tls_sink.handler = hook_cb;
	tls_sink.bevcb = tls_bev;
	th_server_start(&tls_sink);
	th_db_create_migrated(url, sizeof url);
	th_sql(url, "INSERT INTO schools (urn, name, kind) VALUES ('100001', 'Home', 'mainstream')");
	th_key_create(url, "100001", home, sizeof home);
}

static void teardown(void)
{
	if (d.pid > 0)
		th_daemon_stop(&d, SIGKILL);
	th_server_stop(&tls_sink);
	SSL_CTX_free(tls_ctx);
}

static void subscribe_and_emit(void)
{
	char body[200];
	snprintf(body, sizeof body, "{\"url\": \"https://127.0.0.1:%u/hook\", \"events\": [\"*\"]}",
		 tls_port);
	struct th_resp r;
	th_api(&d, "POST", "/v1/subscriptions", home, body, NULL, &r);
	ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
	th_resp_free(&r);
	th_sql(url, "SELECT dualreg_emit('mark.recorded', 'B801200005001', ARRAY['100001'], "
		    "'{\"upn\": \"B801200005001\"}')");
}

static long scalar(const char *sql, char *text, size_t len)
{
	PGconn *c = PQconnectdb(url);
	PGresult *res = PQexec(c, sql);
	long v = PQntuples(res) > 0 ? atol(PQgetvalue(res, 0, 0)) : -1;
	if (text != NULL)
		snprintf(text, len, "%s", PQntuples(res) > 0 ? PQgetvalue(res, 0, 1) : "");
	PQclear(res);
	PQfinish(c);
	return v;
}

START_TEST(test_unknown_issuer_is_refused)
{
	th_daemon_start(&d, url, "[webhooks]\nallow_private = true\n[pull]\nallow_private = true\n[outbound]\n", false);
	subscribe_and_emit();
	char err[512] = "";
	double deadline = th_now() + 15;
	while (th_now() < deadline &&
	       scalar("SELECT attempts, coalesce(last_error, '') FROM deliveries", err, sizeof err) < 1)
		usleep(100000);
	while (th_now() < deadline && err[0] == '\0') {
		scalar("SELECT attempts, coalesce(last_error, '') FROM deliveries", err, sizeof err);
		usleep(100000);
	}
	ck_assert_msg(strstr(err, "certificate") != NULL || strstr(err, "SSL") != NULL, "%s", err);
	ck_assert_int_eq(atomic_load(&tls_hits), 0);
	ck_assert_int_eq(scalar("SELECT count(*), '' FROM deliveries WHERE status = 'pending'", NULL,
				0),
			 1); /* to be retried, not dropped */
}
END_TEST

START_TEST(test_configured_ca_is_trusted)
{
	char ini[800];
	snprintf(ini, sizeof ini, "[webhooks]\nallow_private = true\n[pull]\nallow_private = true\n[outbound]\nca_file = %s/ca.pem\n", dir);
	th_daemon_start(&d, url, ini, false);
	subscribe_and_emit();
	double deadline = th_now() + 15;
	while (th_now() < deadline && atomic_load(&tls_hits) == 0)
		usleep(20000);
	ck_assert_int_eq(atomic_load(&tls_hits), 1);
	deadline = th_now() + 10;
	while (th_now() < deadline &&
	       scalar("SELECT count(*), '' FROM deliveries WHERE status = 'delivered'", NULL, 0) != 1)
		usleep(50000);
	ck_assert_int_eq(scalar("SELECT count(*), '' FROM deliveries WHERE status = 'delivered'",
				NULL, 0),
			 1);
}
END_TEST

Suite *tls_suite(void)
{
	Suite *s = suite_create("tls");
	TCase *tc = tcase_create("https");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_unknown_issuer_is_refused);
	tcase_add_test(tc, test_configured_ca_is_trusted);
	suite_add_tcase(s, tc);
	return s;
}
