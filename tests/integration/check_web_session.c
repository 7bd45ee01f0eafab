/*
 * web_session: the staff web app's set-up and sign-in over HTTP against the daemon
 * (/app/api/setup, setup/confirm, session, session/second-factor), accounts made with
 * `dualregctl user add|disable`, TOTP codes computed with staff_auth.h; then the
 * session cookie on /v1: the rights of the user's school's key exactly, CSRF and Origin
 * on writes, reads audited under the user's key; idle expiry, sign-out, the lockout per
 * account and per address, disabled accounts, one-time recovery codes, cookie flags.
 * On the reads fixture (schools 100001..100003, pupils P1 and P2 at 100001, P3 at
 * 100003, keys k1..k3).
 */
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dualreg/staff_auth.h"
#include "../harness.h"
#include "../suites.h"
#include "reads_fixture.h"

#define PASSWORD "correct horse battery staple 42"
#define ORIGIN "http://127.0.0.1:8080" /* [web] public_url's default */

static struct th_daemon d;

struct user {
	char email[128];
	char secret[STAFF_TOTP_SECRET_MAX];
	char codes[10][32];
	char cookie[128]; /* "dualreg_session=..." of the last sign-in */
	char csrf[64];
};

static void teardown(void)
{
	if (d.pid > 0)
		th_daemon_stop(&d, SIGKILL);
	rd_teardown();
}

static void start_web(const char *extra)
{
	char ini[512];
	snprintf(ini, sizeof ini, "[limits]\nauth_failure_burst = 100\n%s", extra ? extra : "");
	th_daemon_start(&d, rd_url, ini, false);
}

static int ctl(char *const args[], char *out, size_t outlen)
{
	char bin[512], env_url[1100];
	snprintf(bin, sizeof bin, "%s/dualregctl", th_env("DUALREG_TEST_BIN"));
	snprintf(env_url, sizeof env_url, "DUALREG_DATABASE_URL=%s", rd_url);
	char *argv[20] = {bin, "-c", "/dev/null"};
	size_t n = 3;
	for (size_t i = 0; args[i] != NULL && n < 19; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	char *const envp[] = {env_url, NULL};
	return th_run(argv, envp, out, outlen);
}

/* `dualregctl user add` (urn NULL: an admin): the set-up token of the link it prints. */
static void user_add(const char *email, const char *urn, char token[64])
{
	char out[2048];
	char *args[] = {"user", "add", "--school", (char *)urn, "--email", (char *)email,
			"--name", "Dana Teacher", NULL};
	char *admin_args[] = {"user", "add", "--admin", "--email", (char *)email, "--name",
			      "Dana Teacher", NULL};
	ck_assert_msg(ctl(urn != NULL ? args : admin_args, out, sizeof out) == 0, "user add: %s",
		      th_last_stderr());
	const char *hash = strstr(out, "/app/setup#");
	ck_assert_msg(hash != NULL, "no set-up link in: %s", out);
	snprintf(token, 64, "%.*s", (int)strcspn(hash + 11, "\n \r"), hash + 11);
}

/* One call under /app/api or /v1: JSON body or NULL, cookie ("" none), CSRF token (NULL
 * none), Origin (NULL none). */
static void call(const char *method, const char *path, const char *json, const char *cookie,
		 const char *csrf, const char *origin, struct th_resp *r)
{
	char hc[256], hx[128], ho[256];
	const char *h[4];
	size_t n = 0;
	if (cookie != NULL && cookie[0] != '\0') {
		snprintf(hc, sizeof hc, "Cookie: theme=dark; %s", cookie);
		h[n++] = hc;
	}
	if (csrf != NULL) {
		snprintf(hx, sizeof hx, "X-CSRF-Token: %s", csrf);
		h[n++] = hx;
	}
	if (origin != NULL) {
		snprintf(ho, sizeof ho, "Origin: %s", origin);
		h[n++] = ho;
	}
	h[n] = NULL;
	th_api(&d, method, path, NULL, json, h, r);
}

static const char *header(const struct th_resp *r, const char *name)
{
	const cJSON *v = cJSON_GetObjectItem(r->headers, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The session cookie r sets ("dualreg_session=<token>"), checking its flags. */
static void cookie_of(const struct th_resp *r, bool secure, char out[128])
{
	const char *sc = header(r, "set-cookie");
	ck_assert_msg(sc != NULL, "no Set-Cookie");
	ck_assert_msg(strncmp(sc, "dualreg_session=", 16) == 0, "Set-Cookie: %s", sc);
	ck_assert_msg(strstr(sc, "; Path=/") != NULL, "Set-Cookie: %s", sc);
	ck_assert_msg(strstr(sc, "; HttpOnly") != NULL, "Set-Cookie: %s", sc);
	ck_assert_msg(strstr(sc, "; SameSite=Strict") != NULL, "Set-Cookie: %s", sc);
	ck_assert_msg((strstr(sc, "; Secure") != NULL) == secure, "Set-Cookie: %s", sc);
	size_t len = strcspn(sc, ";");
	ck_assert_uint_eq(len, 16 + 43);
	snprintf(out, 128, "%.*s", (int)len, sc);
}

static void assert_type(const struct th_resp *r, long status, const char *slug)
{
	th_assert_problem(r, status);
	char want[96];
	snprintf(want, sizeof want, "/problems/%s", slug);
	ck_assert_str_eq(cJSON_GetObjectItem(r->json, "type")->valuestring, want);
}

static void totp_at(const struct user *u, time_t t, char code[8])
{
	ck_assert_int_eq(staff_totp_code(u->secret, t, code), 0);
}

/* An account at urn set up through its link: u->cookie is the session set-up ends in. */
static void set_up(struct user *u, const char *email, const char *urn, bool secure)
{
	memset(u, 0, sizeof *u);
	snprintf(u->email, sizeof u->email, "%s", email);
	char token[64], body[512];
	user_add(email, urn, token);
	struct th_resp r;
	snprintf(body, sizeof body, "{\"token\":\"%s\",\"password\":\"%s\"}", token, PASSWORD);
	call("POST", "/app/api/setup", body, NULL, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	snprintf(u->secret, sizeof u->secret, "%s",
		 cJSON_GetObjectItem(r.json, "totp_secret")->valuestring);
	th_resp_free(&r);
	char code[8];
	totp_at(u, time(NULL), code);
	snprintf(body, sizeof body, "{\"token\":\"%s\",\"code\":\"%s\"}", token, code);
	call("POST", "/app/api/setup/confirm", body, NULL, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	cJSON *codes = cJSON_GetObjectItem(r.json, "recovery_codes");
	ck_assert_int_eq(cJSON_GetArraySize(codes), 10);
	for (int i = 0; i < 10; i++)
		snprintf(u->codes[i], sizeof u->codes[i], "%s",
			 cJSON_GetArrayItem(codes, i)->valuestring);
	cookie_of(&r, secure, u->cookie);
	th_resp_free(&r);
}

/* Signs in with the password; returns the status; the password-only cookie into pre. */
static long password_step(const char *email, const char *password, char pre[128])
{
	char body[512];
	snprintf(body, sizeof body, "{\"email\":\"%s\",\"password\":\"%s\"}", email, password);
	struct th_resp r;
	call("POST", "/app/api/session", body, NULL, NULL, NULL, &r);
	long st = r.status;
	if (st == 200) {
		ck_assert_str_eq(cJSON_GetObjectItem(r.json, "second_factor")->valuestring, "totp");
		cookie_of(&r, false, pre);
	}
	th_resp_free(&r);
	return st;
}

static long second_step(const char *pre, const char *code, char full[128])
{
	char body[128];
	snprintf(body, sizeof body, "{\"code\":\"%s\"}", code);
	struct th_resp r;
	call("POST", "/app/api/session/second-factor", body, pre, NULL, NULL, &r);
	long st = r.status;
	if (st == 200) {
		cookie_of(&r, false, full);
		ck_assert(cJSON_IsObject(cJSON_GetObjectItem(r.json, "user")));
	} else {
		assert_type(&r, 401, "sign-in-failed");
	}
	th_resp_free(&r);
	return st;
}

/* GET /app/api/session: the status; the CSRF token into u->csrf. */
static long session_get(struct user *u, const char *cookie)
{
	struct th_resp r;
	call("GET", "/app/api/session", NULL, cookie, NULL, NULL, &r);
	long st = r.status;
	if (st == 200)
		snprintf(u->csrf, sizeof u->csrf, "%s",
			 cJSON_GetObjectItem(r.json, "csrf_token")->valuestring);
	th_resp_free(&r);
	return st;
}

static long status_of(const char *method, const char *path, const char *json,
		      const char *cookie, const char *csrf, const char *origin)
{
	struct th_resp r;
	call(method, path, json, cookie, csrf, origin, &r);
	long st = r.status;
	th_resp_free(&r);
	return st;
}

static long key_status(const char *key, const char *path)
{
	struct th_resp r;
	th_api(&d, "GET", path, key, NULL, NULL, &r);
	long st = r.status;
	th_resp_free(&r);
	return st;
}

START_TEST(test_setup)
{
	start_web(NULL);
	char token[64], body[512];
	user_add("dana@hill.example", "100001", token);
	struct th_resp r;
	/* A weak password: 422 naming the field; nothing stored. */
	snprintf(body, sizeof body, "{\"token\":\"%s\",\"password\":\"password123\"}", token);
	call("POST", "/app/api/setup", body, NULL, NULL, NULL, &r);
	assert_type(&r, 422, "weak-password");
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json,
		"errors"), 0), "pointer")->valuestring, "/password");
	th_resp_free(&r);
	ck_assert_int_eq(count_sql("SELECT count(*) FROM staff_users WHERE password_hash IS NULL"),
			 1);
	/* A wrong link. */
	char wrong[64];
	snprintf(wrong, sizeof wrong, "%s", token);
	wrong[0] = wrong[0] == 'A' ? 'B' : 'A';
	snprintf(body, sizeof body, "{\"token\":\"%s\",\"password\":\"%s\"}", wrong, PASSWORD);
	call("POST", "/app/api/setup", body, NULL, NULL, NULL, &r);
	assert_type(&r, 404, "setup-link-invalid");
	th_resp_free(&r);

	snprintf(body, sizeof body, "{\"token\":\"%s\",\"password\":\"%s\"}", token, PASSWORD);
	call("POST", "/app/api/setup", body, NULL, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(cJSON_GetObjectItem(r.json, "email")->valuestring, "dana@hill.example");
	ck_assert_str_eq(cJSON_GetObjectItem(r.json, "name")->valuestring, "Dana Teacher");
	struct user u = {0};
	snprintf(u.secret, sizeof u.secret, "%s",
		 cJSON_GetObjectItem(r.json, "totp_secret")->valuestring);
	ck_assert(strncmp(cJSON_GetObjectItem(r.json, "totp_uri")->valuestring,
			  "otpauth://totp/", 15) == 0);
	ck_assert(strncmp(cJSON_GetObjectItem(r.json, "qr_svg")->valuestring, "<svg", 4) == 0);
	ck_assert(header(&r, "set-cookie") == NULL);
	th_resp_free(&r);
	/* The secret is stored sealed or as it is, never as anything else; the password
	 * hashed. */
	ck_assert_int_eq(count_sql("SELECT count(*) FROM staff_users WHERE password_hash LIKE "
				   "'$argon2id$%' AND totp_confirmed_at IS NULL"),
			 1);

	/* A wrong code, then the right one. */
	char code[8];
	totp_at(&u, time(NULL) - 600, code);
	snprintf(body, sizeof body, "{\"token\":\"%s\",\"code\":\"%s\"}", token, code);
	call("POST", "/app/api/setup/confirm", body, NULL, NULL, NULL, &r);
	assert_type(&r, 422, "invalid-code");
	th_resp_free(&r);
	totp_at(&u, time(NULL), code);
	snprintf(body, sizeof body, "{\"token\":\"%s\",\"code\":\"%s\"}", token, code);
	call("POST", "/app/api/setup/confirm", body, NULL, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	cJSON *codes = cJSON_GetObjectItem(r.json, "recovery_codes");
	ck_assert_int_eq(cJSON_GetArraySize(codes), 10);
	ck_assert_uint_eq(strlen(cJSON_GetArrayItem(codes, 0)->valuestring), 14);
	cookie_of(&r, false, u.cookie);
	th_resp_free(&r);
	/* Stored only hashed; the link is used up. */
	ck_assert_int_eq(count_sql("SELECT count(*) FROM staff_recovery_codes WHERE "
				   "length(code_hash) = 64"),
			 10);
	call("POST", "/app/api/setup/confirm", body, NULL, NULL, NULL, &r);
	assert_type(&r, 404, "setup-link-invalid");
	th_resp_free(&r);

	/* Set-up ends signed in. */
	call("GET", "/app/api/session", NULL, u.cookie, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	cJSON *user = cJSON_GetObjectItem(r.json, "user");
	ck_assert_str_eq(cJSON_GetObjectItem(user, "email")->valuestring, "dana@hill.example");
	ck_assert_str_eq(cJSON_GetObjectItem(user, "role")->valuestring, "staff");
	cJSON *school = cJSON_GetObjectItem(user, "school");
	ck_assert_str_eq(cJSON_GetObjectItem(school, "urn")->valuestring, "100001");
	ck_assert_uint_eq(strlen(cJSON_GetObjectItem(r.json, "csrf_token")->valuestring), 43);
	th_resp_free(&r);
}
END_TEST

START_TEST(test_sign_in_and_v1)
{
	start_web(NULL);
	struct user u;
	set_up(&u, "dana@hill.example", "100001", false);
	char pre[128], full[128];
	/* A wrong password and an unknown address get the same answer. */
	struct th_resp r;
	call("POST", "/app/api/session",
	     "{\"email\":\"dana@hill.example\",\"password\":\"not the password at all\"}", NULL,
	     NULL, NULL, &r);
	assert_type(&r, 401, "sign-in-failed");
	ck_assert(header(&r, "set-cookie") == NULL);
	th_resp_free(&r);
	call("POST", "/app/api/session",
	     "{\"email\":\"nobody@hill.example\",\"password\":\"" PASSWORD "\"}", NULL, NULL,
	     NULL, &r);
	assert_type(&r, 401, "sign-in-failed");
	th_resp_free(&r);

	/* The password alone: a session good for the second factor only. */
	ck_assert_int_eq(password_step("DANA@hill.example", PASSWORD, pre), 200);
	ck_assert_int_eq(session_get(&u, pre), 401);
	ck_assert_int_eq(status_of("GET", "/v1/me", NULL, pre, NULL, NULL), 401);
	ck_assert_int_eq(second_step(pre, "000000", full), 401);
	char code[8];
	totp_at(&u, time(NULL) + 30, code); /* set-up used the current step */
	ck_assert_int_eq(second_step(pre, code, full), 200);
	ck_assert_str_ne(pre, full);
	ck_assert_int_eq(session_get(&u, pre), 401); /* replaced */
	ck_assert_int_eq(session_get(&u, full), 200);

	/* On /v1 the user is the school's key. */
	call("GET", "/v1/me", NULL, full, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	cJSON *k = cJSON_GetObjectItem(r.json, "key");
	ck_assert_str_eq(cJSON_GetObjectItem(k, "name")->valuestring, "staff:dana@hill.example");
	ck_assert_str_eq(cJSON_GetObjectItem(k, "role")->valuestring, "school");
	ck_assert_str_eq(cJSON_GetObjectItem(k, "urn")->valuestring, "100001");
	th_resp_free(&r);
	const char *paths[] = {"/v1/pupils/" P1, "/v1/pupils/" P3, "/v1/pupils/" P1 "/status",
			       "/v1/pupils/" P3 "/status", "/v1/schools/100001",
			       "/v1/schools/100003", "/v1/schools/100003/register", "/v1/audit"};
	ck_assert_int_eq(key_status(k1, "/v1/pupils/" P1), 200);
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
		ck_assert_msg(status_of("GET", paths[i], NULL, full, NULL, NULL) ==
				  key_status(k1, paths[i]),
			      "%s: not as school 100001's key", paths[i]);
	/* The read is audited under the user's key. */
	double t0 = th_now();
	while (th_now() - t0 < 5.0 &&
	       count_sql("SELECT count(*) FROM access_audit WHERE key_name = "
			 "'staff:dana@hill.example' AND upn = '" P1 "' AND urn = '100001'") == 0)
		usleep(100 * 1000);
	ck_assert_int_gt(count_sql("SELECT count(*) FROM access_audit WHERE key_name = "
				   "'staff:dana@hill.example' AND upn = '" P1 "'"),
			 0);

	/* Writes need the CSRF token, and an Origin, if any, of [web] public_url. */
	char marks[256];
	snprintf(marks, sizeof marks,
		 "{\"marks\":[{\"upn\":\"" P1 "\",\"urn\":\"100001\",\"date\":\"%s\","
		 "\"session\":\"AM\",\"code\":\"/\"}]}",
		 wed);
	call("POST", "/v1/marks", marks, full, NULL, NULL, &r);
	assert_type(&r, 403, "csrf-failed");
	th_resp_free(&r);
	ck_assert_int_eq(status_of("POST", "/v1/marks", marks, full, "x", NULL), 403);
	call("POST", "/v1/marks", marks, full, u.csrf, "https://evil.example", &r);
	assert_type(&r, 403, "csrf-failed");
	th_resp_free(&r);
	ck_assert_int_eq(count_sql("SELECT count(*) FROM marks m JOIN api_keys k ON k.id = "
				   "m.key_id WHERE k.name = 'staff:dana@hill.example'"),
			 0);
	call("POST", "/v1/marks", marks, full, u.csrf, ORIGIN, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "counts"), "created")
			     ->valueint,
			 1);
	th_resp_free(&r);
	ck_assert_int_eq(count_sql("SELECT count(*) FROM marks m JOIN api_keys k ON k.id = "
				   "m.key_id WHERE k.name = 'staff:dana@hill.example'"),
			 1);
	/* Its source is the web app, in the mark and its history; a bearer key's is the API. */
	ck_assert_int_eq(count_sql("SELECT count(*) FROM marks WHERE upn = '" P1 "' AND urn = "
				   "'100001' AND session = 'AM' AND source = 'web'"),
			 1);
	ck_assert_int_eq(count_sql("SELECT count(*) FROM mark_history WHERE key_name = "
				   "'staff:dana@hill.example' AND new_source = 'web'"),
			 1);
	snprintf(marks, sizeof marks,
		 "{\"marks\":[{\"upn\":\"" P2 "\",\"urn\":\"100001\",\"date\":\"%s\","
		 "\"session\":\"AM\",\"code\":\"/\"}]}",
		 wed);
	th_api(&d, "POST", "/v1/marks", k1, marks, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);
	ck_assert_int_eq(count_sql("SELECT count(*) FROM marks m JOIN mark_history h USING (upn, "
				   "urn, date, session) WHERE upn = '" P2 "' AND m.source = 'api' "
				   "AND h.new_source = 'api'"),
			 1);
	/* and the metrics count each under its source */
	th_api(&d, "GET", "/metrics", admin, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_msg(strstr(r.body, "dualreg_marks_total{source=\"web\",status=\"created\"} 1\n") &&
			  strstr(r.body, "dualreg_marks_total{source=\"api\",status=\"created\"} 1\n"),
		      "%s", r.body);
	th_resp_free(&r);
	/* Another school's register stays another school's. */
	char other[256];
	snprintf(other, sizeof other,
		 "{\"marks\":[{\"upn\":\"" P3 "\",\"urn\":\"100003\",\"date\":\"%s\","
		 "\"session\":\"AM\",\"code\":\"/\"}]}",
		 wed);
	ck_assert_int_eq(status_of("POST", "/v1/marks", other, full, u.csrf, NULL), 403);
	/* A bearer key is unaffected by a cookie beside it. */
	ck_assert_int_eq(key_status(k1, "/v1/me"), 200);

	/* Sign-out needs the CSRF token too; it clears the cookie and ends the session. */
	call("DELETE", "/app/api/session", NULL, full, NULL, NULL, &r);
	assert_type(&r, 403, "csrf-failed");
	th_resp_free(&r);
	call("DELETE", "/app/api/session", NULL, full, u.csrf, NULL, &r);
	ck_assert_int_eq(r.status, 204);
	ck_assert(strstr(header(&r, "set-cookie"), "Max-Age=0") != NULL);
	th_resp_free(&r);
	ck_assert_int_eq(session_get(&u, full), 401);
	ck_assert_int_eq(status_of("GET", "/v1/me", NULL, full, NULL, NULL), 401);

	/* A recovery code instead of a TOTP code works once. */
	ck_assert_int_eq(password_step("dana@hill.example", PASSWORD, pre), 200);
	ck_assert_int_eq(second_step(pre, u.codes[3], full), 200);
	ck_assert_int_eq(session_get(&u, full), 200);
	ck_assert_int_eq(password_step("dana@hill.example", PASSWORD, pre), 200);
	ck_assert_int_eq(second_step(pre, u.codes[3], full), 401);
	ck_assert_int_eq(second_step(pre, u.codes[4], full), 200);
}
END_TEST

START_TEST(test_lockout_and_disabled)
{
	start_web(NULL);
	struct user u;
	set_up(&u, "erin@hill.example", "100001", false);
	char pre[128], full[128];
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(password_step("erin@hill.example", "wrong password here", pre),
				 401);
	struct th_resp r;
	call("POST", "/app/api/session",
	     "{\"email\":\"erin@hill.example\",\"password\":\"" PASSWORD "\"}", NULL, NULL, NULL,
	     &r);
	assert_type(&r, 429, "too-many-sign-ins");
	ck_assert_int_gt(atoi(r.retry_after), 800);
	ck_assert_int_le(atoi(r.retry_after), 900);
	th_resp_free(&r);
	/* An address without an account is limited alike (nothing to learn). */
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(password_step("ghost@hill.example", "wrong password here", pre),
				 401);
	ck_assert_int_eq(password_step("ghost@hill.example", "wrong password here", pre), 429);
	/* Other accounts are not affected; a complete sign-in forgets the failures. */
	th_sql(rd_url, "UPDATE staff_sign_in_failures SET at = at - interval '16 minutes'");
	ck_assert_int_eq(password_step("erin@hill.example", PASSWORD, pre), 200);
	ck_assert_int_eq(second_step(pre, u.codes[0], full), 200);
	ck_assert_int_eq(count_sql("SELECT count(*) FROM staff_sign_in_failures WHERE email = "
				   "'erin@hill.example'"),
			 0);

	/* Disabled: the sessions end and the right password fails like a wrong one. */
	char out[1024];
	char *args[] = {"user", "disable", "erin@hill.example", NULL};
	ck_assert_msg(ctl(args, out, sizeof out) == 0, "%s", th_last_stderr());
	ck_assert_int_eq(session_get(&u, full), 401);
	ck_assert_int_eq(status_of("GET", "/v1/me", NULL, full, NULL, NULL), 401);
	ck_assert_int_eq(password_step("erin@hill.example", PASSWORD, pre), 401);
}
END_TEST

START_TEST(test_address_limit)
{
	th_daemon_start(&d, rd_url, "[limits]\nauth_failure_rate = 1\nauth_failure_burst = 3\n",
			false);
	struct th_resp r;
	char pre[128];
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(password_step("who@hill.example", "wrong password here", pre),
				 401);
	call("POST", "/app/api/session",
	     "{\"email\":\"who2@hill.example\",\"password\":\"wrong password here\"}", NULL, NULL,
	     NULL, &r);
	assert_type(&r, 429, "too-many-requests");
	ck_assert_msg(r.retry_after[0] != '\0', "no Retry-After");
	th_resp_free(&r);
}
END_TEST

START_TEST(test_idle_expiry_and_tls)
{
	start_web("[web]\nsession_idle = 2s\ntls = true\n");
	struct user u;
	set_up(&u, "fay@hill.example", "100001", true);
	ck_assert_int_eq(session_get(&u, u.cookie), 200);
	usleep(1200 * 1000);
	ck_assert_int_eq(session_get(&u, u.cookie), 200); /* used: moved on */
	usleep(1200 * 1000);
	ck_assert_int_eq(status_of("GET", "/v1/me", NULL, u.cookie, NULL, NULL), 200);
	usleep(2500 * 1000);
	ck_assert_int_eq(session_get(&u, u.cookie), 401);
	ck_assert_int_eq(status_of("GET", "/v1/me", NULL, u.cookie, NULL, NULL), 401);
}
END_TEST

START_TEST(test_admin)
{
	start_web(NULL);
	struct user u;
	set_up(&u, "ada@dualreg.example", NULL, false);
	struct th_resp r;
	call("GET", "/app/api/session", NULL, u.cookie, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	cJSON *user = cJSON_GetObjectItem(r.json, "user");
	ck_assert_str_eq(cJSON_GetObjectItem(user, "role")->valuestring, "admin");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(user, "school")));
	th_resp_free(&r);
	call("GET", "/v1/me", NULL, u.cookie, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	cJSON *k = cJSON_GetObjectItem(r.json, "key");
	ck_assert_str_eq(cJSON_GetObjectItem(k, "role")->valuestring, "admin");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(k, "urn")));
	th_resp_free(&r);
	const char *paths[] = {"/v1/audit?upn=" P1, "/v1/pupils/" P3, "/v1/schools"};
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		ck_assert_int_eq(key_status(admin, paths[i]), 200);
		ck_assert_msg(status_of("GET", paths[i], NULL, u.cookie, NULL, NULL) == 200,
			      "%s: not as an admin key", paths[i]);
	}
	/* With a bearer key beside it, the key alone counts. */
	struct th_resp r2;
	char hc[256];
	snprintf(hc, sizeof hc, "Cookie: %s", u.cookie);
	const char *h[] = {hc, NULL};
	th_api(&d, "GET", "/v1/schools", k1, NULL, h, &r2);
	th_assert_problem(&r2, 403);
	th_resp_free(&r2);
}
END_TEST

Suite *web_session_suite(void)
{
	Suite *s = suite_create("web_session");
	TCase *tc = tcase_create("web_session");
	tcase_add_checked_fixture(tc, rd_setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_setup);
	tcase_add_test(tc, test_sign_in_and_v1);
	tcase_add_test(tc, test_lockout_and_disabled);
	tcase_add_test(tc, test_address_limit);
	tcase_add_test(tc, test_idle_expiry_and_tls);
	tcase_add_test(tc, test_admin);
	suite_add_tcase(s, tc);
	return s;
}
