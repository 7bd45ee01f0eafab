/*
 * web_session handlers: the staff web app's sign-in and session under /app/api/ (set-up:
 * h_web_setup.c; see api/openapi.yaml, tag "web app", and README, Web app).
 *   POST   /app/api/session               {email, password} -> 200 {second_factor} +
 *          the cookie of a session that serves only the next call; 401 sign-in-failed
 *   POST   /app/api/session/second-factor {code} -> 200 {user} + a new cookie
 *   GET    /app/api/session               -> 200 {user, csrf_token, idle_expires_at,
 *          expires_at}; 401
 *   DELETE /app/api/session               -> 204, cookie cleared (X-CSRF-Token)
 *
 * Argon2id hashing and verification block for tens of milliseconds: they run on the
 * worker threads (workers.h), never on the event loop. A sign-in with an unknown or
 * disabled e-mail address verifies the password against a dummy hash all the same and
 * records the failure the same way, so neither its answer nor its timing tells which
 * addresses have accounts.
 *
 * Failures are limited twice: per client address by the API's failed-authentication
 * limit (auth.h: a wrong password, second factor, set-up link or set-up code is charged
 * to it; 429 too-many-requests), and per e-mail address in the database, so that every
 * daemon counts alike (staff_sign_in_failures: FAILURES_MAX failed passwords or second
 * factors within 15 minutes; then 429 too-many-sign-ins until the oldest is 15 minutes
 * old). A complete sign-in forgets the address's failures.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "dualreg/config.h"
#include "dualreg/secret_box.h"
#include "dualreg/staff_auth.h"
#include "handlers.h"
#include "problem.h"
#include "web_session.h"

#define FAILURES_MAX 5
#define PREAUTH_MAX_MS 600000u /* a password-only session lasts at most 10 minutes */

/* The user of the CTE ok, as session_from_row reads it. */
#define USER_SELECT                                                                         \
	" SELECT ok.id, ok.email, ok.name, ok.role, coalesce(ok.urn, ''),"                  \
	"  coalesce(c.name, ''), coalesce(c.kind, '') FROM ok"                              \
	" LEFT JOIN schools c ON c.urn = ok.urn"

static void session_from_row(PGresult *res, struct web_session *s)
{
	memset(s, 0, sizeof *s);
	s->user_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	s->full = true;
	snprintf(s->email, sizeof s->email, "%s", PQgetvalue(res, 0, 1));
	snprintf(s->name, sizeof s->name, "%s", PQgetvalue(res, 0, 2));
	snprintf(s->role, sizeof s->role, "%s", PQgetvalue(res, 0, 3));
	snprintf(s->urn, sizeof s->urn, "%s", PQgetvalue(res, 0, 4));
	snprintf(s->school_name, sizeof s->school_name, "%s", PQgetvalue(res, 0, 5));
	snprintf(s->school_kind, sizeof s->school_kind, "%s", PQgetvalue(res, 0, 6));
}

/* ---- failed sign-ins per e-mail address ---- */

/* Columns n (failures within 15 minutes, at most FAILURES_MAX counted) and retry_s
 * (seconds until the oldest of them is 15 minutes old) for the address $1. */
#define FAILURES_SQL                                                                        \
	"(SELECT count(*) AS n, ceil(extract(epoch FROM min(at) + interval '15 minutes'"    \
	"  - now())) AS retry_s FROM (SELECT at FROM staff_sign_in_failures"                \
	"  WHERE email = lower($1) AND at > now() - interval '15 minutes'"                  \
	"  ORDER BY at DESC LIMIT 5) t) f" /* 5: FAILURES_MAX */

/* 429 too-many-sign-ins if the address has had FAILURES_MAX failures (columns n and
 * retry_s at n_col); true if it replied. */
static bool locked_out(struct api_req *r, PGresult *res, int n_col)
{
	if (atoi(PQgetvalue(res, 0, n_col)) < FAILURES_MAX)
		return false;
	int retry = atoi(PQgetvalue(res, 0, n_col + 1));
	char v[16];
	snprintf(v, sizeof v, "%d", retry < 1 ? 1 : retry);
	api_set_header(r, "Retry-After", v);
	char detail[160];
	snprintf(detail, sizeof detail,
		 "%d failed sign-ins with this e-mail address within 15 minutes; wait before "
		 "trying again",
		 FAILURES_MAX);
	web_fail(r, 429, "too-many-sign-ins", detail);
	return true;
}

static void sign_in_refused(struct api_req *r, PGresult *res)
{
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		api_reply_db_error(r, res);
		return;
	}
	web_fail(r, 401, "sign-in-failed",
		 "the e-mail address, password or code is not right, or the account cannot sign "
		 "in");
}

/* Records a failure of j->email, charges the client address and answers 401. */
static void sign_in_failed(struct api_req *r, struct web_job *j)
{
	auth_failure_charge(r);
	const char *params[] = {j->email};
	api_query(r,
		  "WITH old AS (DELETE FROM staff_sign_in_failures"
		  "  WHERE at < now() - interval '15 minutes')"
		  " INSERT INTO staff_sign_in_failures (email) VALUES (lower($1))",
		  1, params, sign_in_refused);
}

/* ---- POST /app/api/session ---- */

static void preauth_stored(struct api_req *r, PGresult *res)
{
	struct web_job *j = r->state;
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		api_reply_db_error(r, res);
		return;
	}
	web_set_cookie(r, j->session);
	web_job_end(r);
	cJSON *body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "second_factor", "totp");
	api_set_header(r, "Cache-Control", "no-store");
	api_reply_json(r, 200, body);
}

static void password_checked(struct api_req *r, struct web_job *j)
{
	if (!j->ok || j->user_id == 0) {
		sign_in_failed(r, j);
		return;
	}
	if (!web_job_session(r, j))
		return;
	char id[24], ms[24];
	snprintf(id, sizeof id, "%lld", j->user_id);
	unsigned max = r->env->cfg->web_session_max_ms;
	snprintf(ms, sizeof ms, "%u", max < PREAUTH_MAX_MS ? max : PREAUTH_MAX_MS);
	auth_client_address(r, j->client, sizeof j->client);
	const char *params[] = {j->session_hash, id, ms, j->csrf, j->client};
	api_query(r,
		  "INSERT INTO staff_sessions (token_hash, user_id, expires_at,"
		  " second_factor_done, csrf_token, client_addr)"
		  " VALUES ($1, $2::bigint, now() + $3::bigint * interval '1 millisecond', false,"
		  " $4, nullif($5, ''))",
		  5, params, preauth_stored);
}

static void account_found(struct api_req *r, PGresult *res)
{
	struct web_job *j = r->state;
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		api_reply_db_error(r, res);
		return;
	}
	if (locked_out(r, res, 2))
		return;
	/* An unknown, disabled or unfinished account costs the same verification. */
	j->user_id = PQgetisnull(res, 0, 0) ? 0 : strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	const char *hash = j->user_id != 0 ? PQgetvalue(res, 0, 1) : staff_password_dummy_hash();
	snprintf(j->hash, sizeof j->hash, "%s", hash != NULL ? hash : "");
	j->verify = true;
	web_job_password(r, j, password_checked);
}

void h_web_session_create(struct api_req *r)
{
	if (auth_address_limited(r))
		return;
	static const char *const known[] = {"email", "password", NULL};
	const char *v[2];
	cJSON *body = web_read_body(r, known, v, 2);
	if (body == NULL)
		return;
	if (strlen(v[0]) > 254) {
		cJSON_Delete(body);
		cJSON *problem = problem_new(422, "invalid-field", NULL,
					     "an e-mail address is at most 254 characters long");
		problem_add_error(problem, "/email", "longer than 254 characters");
		api_reply_problem(r, problem);
		return;
	}
	struct web_job *j = web_job_new(r);
	snprintf(j->email, sizeof j->email, "%s", v[0]);
	snprintf(j->password, sizeof j->password, "%s", v[1]);
	cJSON_Delete(body);
	const char *params[] = {j->email};
	api_query(r,
		  "SELECT u.id, u.password_hash, f.n, f.retry_s FROM " FAILURES_SQL
		  " LEFT JOIN staff_users u ON lower(u.email) = lower($1)"
		  "  AND u.disabled_at IS NULL AND u.password_hash IS NOT NULL"
		  "  AND u.totp_confirmed_at IS NOT NULL",
		  1, params, account_found);
}

/* ---- POST /app/api/session/second-factor ---- */

static void second_factor_done(struct api_req *r, PGresult *res)
{
	struct web_job *j = r->state;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		api_reply_db_error(r, res);
		return;
	}
	if (PQntuples(res) == 0) {
		/* A code used meanwhile, or an account disabled meanwhile. */
		sign_in_failed(r, j);
		return;
	}
	struct web_session s;
	session_from_row(res, &s);
	web_set_cookie(r, j->session);
	web_job_end(r);
	cJSON *body = cJSON_CreateObject();
	cJSON_AddItemToObject(body, "user", web_user_json(&s));
	api_set_header(r, "Cache-Control", "no-store");
	api_reply_json(r, 200, body);
}

static void second_factor_check(struct api_req *r, PGresult *res)
{
	struct web_job *j = r->state;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		api_reply_db_error(r, res);
		return;
	}
	if (PQntuples(res) == 0) {
		sign_in_failed(r, j);
		return;
	}
	if (locked_out(r, res, 2))
		return;
	char step[24] = "", recovery[65] = "";
	if (strlen(j->code) == STAFF_TOTP_DIGITS && strspn(j->code, "0123456789") ==
							   STAFF_TOTP_DIGITS) {
		char aad[SECRET_BOX_AAD_MAX], err[200];
		web_secret_aad(j->user_id, aad);
		char *secret = secret_box_open(secret_box_installed(), PQgetvalue(res, 0, 0), aad,
					       err, sizeof err);
		if (secret == NULL) {
			web_fail(r, 500, NULL, "the TOTP secret could not be opened");
			return;
		}
		int64_t matched = 0;
		enum staff_totp_result t =
		    staff_totp_verify(secret, j->code, time(NULL),
				      strtoll(PQgetvalue(res, 0, 1), NULL, 10), &matched);
		secret_box_value_free(secret);
		if (t != STAFF_TOTP_VALID) {
			sign_in_failed(r, j);
			return;
		}
		snprintf(step, sizeof step, "%lld", (long long)matched);
	} else if (staff_recovery_hash(j->code, recovery) != 0) {
		sign_in_failed(r, j);
		return;
	}
	if (!web_job_session(r, j))
		return;
	char id[24], ms[24];
	snprintf(id, sizeof id, "%lld", j->user_id);
	snprintf(ms, sizeof ms, "%u", r->env->cfg->web_session_max_ms);
	auth_client_address(r, j->client, sizeof j->client);
	const char *params[] = {id,       j->token_hash, recovery[0] ? recovery : NULL,
				step[0] ? step : NULL, j->session_hash, ms, j->csrf, j->client};
	/* One statement: the code used up (a TOTP step only later than the last one), the
	 * password-only session replaced by a full one, the failures forgotten, the key
	 * kept. Concurrent uses of one code: the second finds it used and fails. */
	api_query(r,
		  "WITH rc AS (UPDATE staff_recovery_codes SET used_at = now()"
		  "  WHERE user_id = $1::bigint AND code_hash = $3 AND used_at IS NULL"
		  "  RETURNING id),"
		  " t AS (UPDATE staff_users SET totp_last_step = $4::bigint"
		  "  WHERE id = $1::bigint AND $4::bigint IS NOT NULL"
		  "  AND coalesce(totp_last_step, -1) < $4::bigint RETURNING id),"
		  " ok AS (SELECT id, email, name, role, urn FROM staff_users"
		  "  WHERE id = $1::bigint AND disabled_at IS NULL"
		  "  AND (EXISTS (SELECT 1 FROM rc) OR EXISTS (SELECT 1 FROM t))),"
		  " old AS (DELETE FROM staff_sessions WHERE token_hash = $2"
		  "  AND EXISTS (SELECT 1 FROM ok)),"
		  " f AS (DELETE FROM staff_sign_in_failures"
		  "  WHERE email = (SELECT lower(email) FROM ok)),"
		  WEB_KEY_UPSERT_CTE ","
		  " s AS (INSERT INTO staff_sessions (token_hash, user_id, expires_at,"
		  "  second_factor_done, csrf_token, client_addr)"
		  "  SELECT $5, ok.id, now() + $6::bigint * interval '1 millisecond', true, $7,"
		  "  nullif($8, '') FROM ok)" USER_SELECT,
		  8, params, second_factor_done);
}

static void preauth_found(struct api_req *r, const struct web_session *s)
{
	struct web_job *j = r->state;
	if (s == NULL || s->full) {
		web_fail(r, 401, "sign-in-failed",
			 "no sign-in is waiting for its second factor; sign in with the password "
			 "first");
		return;
	}
	j->user_id = s->user_id;
	snprintf(j->email, sizeof j->email, "%s", s->email);
	memcpy(j->token_hash, s->token_hash, sizeof j->token_hash);
	char id[24];
	snprintf(id, sizeof id, "%lld", j->user_id);
	const char *params[] = {j->email, id};
	api_query(r,
		  "SELECT u.totp_secret, coalesce(u.totp_last_step, -1), f.n, f.retry_s"
		  " FROM " FAILURES_SQL " JOIN staff_users u ON u.id = $2::bigint"
		  " AND u.totp_secret IS NOT NULL",
		  2, params, second_factor_check);
}

void h_web_second_factor(struct api_req *r)
{
	if (auth_address_limited(r))
		return;
	static const char *const known[] = {"code", NULL};
	const char *v[1];
	char token[WEB_TOKEN_LEN + 1];
	cJSON *body = web_read_body(r, known, v, 1);
	if (body == NULL)
		return;
	struct web_job *j = web_job_new(r);
	snprintf(j->code, sizeof j->code, "%s", v[0]);
	cJSON_Delete(body);
	if (!web_cookie_token(r, token)) {
		web_fail(r, 401, "sign-in-failed",
			 "no sign-in is waiting for its second factor; sign in with the password "
			 "first");
		return;
	}
	web_session_find(r, token, false, preauth_found);
}

/* ---- GET and DELETE /app/api/session ---- */

static void not_signed_in(struct api_req *r)
{
	api_reply_error(r, 401, "not-signed-in", "not signed in, or the session has ended");
}

static void session_shown(struct api_req *r, const struct web_session *s)
{
	char token[WEB_TOKEN_LEN + 1], csrf[WEB_TOKEN_LEN + 1];
	if (s == NULL || !s->full || !web_cookie_token(r, token)) {
		not_signed_in(r);
		return;
	}
	web_csrf_token(token, csrf);
	cJSON *body = cJSON_CreateObject();
	cJSON_AddItemToObject(body, "user", web_user_json(s));
	cJSON_AddStringToObject(body, "csrf_token", csrf);
	cJSON_AddStringToObject(body, "idle_expires_at", s->idle_expires_at);
	cJSON_AddStringToObject(body, "expires_at", s->expires_at);
	api_set_header(r, "Cache-Control", "no-store");
	api_reply_json(r, 200, body);
}

void h_web_session_get(struct api_req *r)
{
	char token[WEB_TOKEN_LEN + 1];
	if (!web_cookie_token(r, token)) {
		not_signed_in(r);
		return;
	}
	web_session_find(r, token, true, session_shown);
}

static void session_deleted(struct api_req *r, PGresult *res)
{
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		api_reply_db_error(r, res);
		return;
	}
	web_clear_cookie(r);
	api_reply_json(r, 204, NULL);
}

static void session_to_delete(struct api_req *r, const struct web_session *s)
{
	char token[WEB_TOKEN_LEN + 1];
	if (s == NULL || !web_cookie_token(r, token)) {
		not_signed_in(r);
		return;
	}
	if (!web_csrf_check(r, token))
		return;
	char hash[AUTH_HASH_HEX];
	memcpy(hash, s->token_hash, sizeof hash);
	const char *params[] = {hash};
	api_query(r, "DELETE FROM staff_sessions WHERE token_hash = $1", 1, params,
		  session_deleted);
}

void h_web_session_delete(struct api_req *r)
{
	char token[WEB_TOKEN_LEN + 1];
	if (!web_cookie_token(r, token)) {
		not_signed_in(r);
		return;
	}
	web_session_find(r, token, false, session_to_delete);
}

