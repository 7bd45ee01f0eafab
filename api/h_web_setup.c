/*
 * web_setup handlers: a staff account's set-up through its one-time link (see
 * api/openapi.yaml, tag "web app", and README, Web app).
 *   POST /app/api/setup         {token, password} -> 200 {email, name, totp_secret,
 *        totp_uri, qr_svg}; 422 weak-password; 404 setup-link-invalid
 *   POST /app/api/setup/confirm {token, code} -> 200 {recovery_codes} + the session
 *        cookie; 422 invalid-code; 404 setup-link-invalid
 * The password is hashed on a worker thread (web_job_password), never on the event
 * loop. A wrong link or code is charged to the client address's failed
 * authentications (auth.h).
 */
#include <libpq-fe.h>
#include <openssl/crypto.h>
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

static void setup_link_invalid(struct api_req *r)
{
	auth_failure_charge(r);
	web_fail(r, 404, "setup-link-invalid",
		 "this set-up link is not valid: it is wrong, has expired or has been used; ask "
		 "for a new one");
}

/* ---- POST /app/api/setup ---- */

static const char setup_user_sql[] =
    "SELECT id, email, name FROM staff_users WHERE setup_token_hash = $1"
    " AND setup_expires_at > now() AND disabled_at IS NULL";

static void setup_stored(struct api_req *r, PGresult *res)
{
	struct web_job *j = r->state;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		api_reply_db_error(r, res);
		return;
	}
	if (PQntuples(res) == 0) {
		setup_link_invalid(r);
		return;
	}
	char *uri = staff_totp_uri(j->secret, j->email);
	char *svg = uri != NULL ? staff_qr_svg(uri) : NULL;
	if (svg == NULL) {
		free(uri);
		web_fail(r, 500, NULL, "the QR code could not be made");
		return;
	}
	cJSON *body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "email", j->email);
	cJSON_AddStringToObject(body, "name", j->name);
	cJSON_AddStringToObject(body, "totp_secret", j->secret);
	cJSON_AddStringToObject(body, "totp_uri", uri);
	cJSON_AddStringToObject(body, "qr_svg", svg);
	free(uri);
	free(svg);
	web_job_end(r);
	api_set_header(r, "Cache-Control", "no-store");
	api_reply_json(r, 200, body);
}

static void setup_hashed(struct api_req *r, struct web_job *j)
{
	if (!j->ok) {
		web_fail(r, 500, NULL, "the password could not be hashed");
		return;
	}
	if (staff_totp_secret_new(j->secret) != 0) {
		web_fail(r, 500, NULL, "no randomness is available");
		return;
	}
	char aad[SECRET_BOX_AAD_MAX], id[24];
	web_secret_aad(j->user_id, aad);
	char *sealed = secret_box_seal(secret_box_installed(), j->secret, aad);
	if (sealed == NULL) {
		web_fail(r, 500, NULL, "the TOTP secret could not be sealed");
		return;
	}
	snprintf(id, sizeof id, "%lld", j->user_id);
	const char *params[] = {id, j->token_hash, j->hash, sealed};
	/* The link stays valid until a code from the new secret is confirmed. */
	api_query(r,
		  "UPDATE staff_users SET password_hash = $3, totp_secret = $4,"
		  " totp_confirmed_at = NULL, totp_last_step = NULL, updated_at = now()"
		  " WHERE id = $1::bigint AND setup_token_hash = $2 AND setup_expires_at > now()"
		  " AND disabled_at IS NULL RETURNING id",
		  4, params, setup_stored);
	secret_box_value_free(sealed);
}

static void setup_found(struct api_req *r, PGresult *res)
{
	struct web_job *j = r->state;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		api_reply_db_error(r, res);
		return;
	}
	if (PQntuples(res) == 0) {
		setup_link_invalid(r);
		return;
	}
	j->user_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	snprintf(j->email, sizeof j->email, "%s", PQgetvalue(res, 0, 1));
	snprintf(j->name, sizeof j->name, "%s", PQgetvalue(res, 0, 2));
	enum staff_password_problem p = staff_password_check(j->password, j->email, j->name);
	if (p != STAFF_PW_OK) {
		cJSON *problem = problem_new(422, "weak-password", NULL,
					     staff_password_problem_text(p));
		problem_add_error(problem, "/password", staff_password_problem_text(p));
		web_job_end(r);
		api_reply_problem(r, problem);
		return;
	}
	web_job_password(r, j, setup_hashed);
}

void h_web_setup(struct api_req *r)
{
	if (auth_address_limited(r))
		return;
	static const char *const known[] = {"token", "password", NULL};
	const char *v[2];
	cJSON *body = web_read_body(r, known, v, 2);
	if (body == NULL)
		return;
	struct web_job *j = web_job_new(r);
	staff_token_hash(v[0], j->token_hash);
	snprintf(j->password, sizeof j->password, "%s", v[1]);
	cJSON_Delete(body);
	const char *params[] = {j->token_hash};
	api_query(r, setup_user_sql, 1, params, setup_found);
}

/* ---- POST /app/api/setup/confirm ---- */

static void confirm_done(struct api_req *r, PGresult *res)
{
	struct web_job *j = r->state;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		api_reply_db_error(r, res);
		return;
	}
	if (PQntuples(res) == 0) {
		setup_link_invalid(r);
		return;
	}
	cJSON *body = j->reply;
	j->reply = NULL;
	web_set_cookie(r, j->session);
	web_job_end(r);
	api_set_header(r, "Cache-Control", "no-store");
	api_reply_json(r, 200, body);
}

static void confirm_found(struct api_req *r, PGresult *res)
{
	struct web_job *j = r->state;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		api_reply_db_error(r, res);
		return;
	}
	if (PQntuples(res) == 0) {
		setup_link_invalid(r);
		return;
	}
	j->user_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	int64_t last = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	char aad[SECRET_BOX_AAD_MAX], err[200];
	web_secret_aad(j->user_id, aad);
	char *secret = secret_box_open(secret_box_installed(), PQgetvalue(res, 0, 1), aad, err,
				       sizeof err);
	if (secret == NULL) {
		web_fail(r, 500, NULL, "the TOTP secret could not be opened");
		return;
	}
	int64_t step = 0;
	enum staff_totp_result t = staff_totp_verify(secret, j->code, time(NULL), last, &step);
	secret_box_value_free(secret);
	if (t != STAFF_TOTP_VALID) {
		auth_failure_charge(r);
		cJSON *problem =
		    problem_new(422, "invalid-code", NULL,
				"this is not the current code of the authenticator app");
		problem_add_error(problem, "/code", "not the current code");
		web_job_end(r);
		api_reply_problem(r, problem);
		return;
	}
	char codes[STAFF_RECOVERY_CODES][STAFF_RECOVERY_LEN + 1];
	if (staff_recovery_codes_new(codes) != 0) {
		web_fail(r, 500, NULL, "no randomness is available");
		return;
	}
	if (!web_job_session(r, j))
		return;
	/* The codes' hashes as a text array for SQL ("{h1,h2,...}": hex digits need no
	 * quoting), and the answer's body, kept until the statement has committed. */
	char hashes[STAFF_RECOVERY_CODES * 66 + 3] = "{";
	cJSON *body = cJSON_CreateObject();
	cJSON *list = cJSON_AddArrayToObject(body, "recovery_codes");
	for (size_t i = 0; i < STAFF_RECOVERY_CODES; i++) {
		char h[65];
		if (staff_recovery_hash(codes[i], h) != 0) {
			cJSON_Delete(body);
			web_fail(r, 500, NULL, "a recovery code could not be made");
			return;
		}
		strcat(hashes, i > 0 ? "," : "");
		strcat(hashes, h);
		cJSON_AddItemToArray(list, cJSON_CreateString(codes[i]));
	}
	strcat(hashes, "}");
	j->reply = body;
	OPENSSL_cleanse(codes, sizeof codes);
	char id[24], stepv[24], ms[24];
	snprintf(id, sizeof id, "%lld", j->user_id);
	snprintf(stepv, sizeof stepv, "%lld", (long long)step);
	snprintf(ms, sizeof ms, "%u", r->env->cfg->web_session_max_ms);
	auth_client_address(r, j->client, sizeof j->client);
	const char *params[] = {id, j->token_hash, stepv, hashes, j->session_hash, ms, j->csrf,
				j->client};
	/* One statement: the link used up, the codes replaced, the key kept, signed in. */
	api_query(r,
		  "WITH ok AS (UPDATE staff_users SET totp_confirmed_at = now(),"
		  "  totp_last_step = $3::bigint, setup_token_hash = NULL, setup_expires_at = NULL,"
		  "  updated_at = now()"
		  "  WHERE id = $1::bigint AND setup_token_hash = $2 AND setup_expires_at > now()"
		  "  AND disabled_at IS NULL AND coalesce(totp_last_step, -1) < $3::bigint"
		  "  RETURNING id, email, name, role, urn),"
		  " d AS (DELETE FROM staff_recovery_codes WHERE user_id IN (SELECT id FROM ok)),"
		  " c AS (INSERT INTO staff_recovery_codes (user_id, code_hash)"
		  "  SELECT ok.id, h FROM ok, unnest($4::text[]) h),"
		  WEB_KEY_UPSERT_CTE ","
		  " s AS (INSERT INTO staff_sessions (token_hash, user_id, expires_at,"
		  "  second_factor_done, csrf_token, client_addr)"
		  "  SELECT $5, ok.id, now() + $6::bigint * interval '1 millisecond', true, $7,"
		  "  nullif($8, '') FROM ok)"
		  " SELECT id FROM ok",
		  8, params, confirm_done);
}

void h_web_setup_confirm(struct api_req *r)
{
	if (auth_address_limited(r))
		return;
	static const char *const known[] = {"token", "code", NULL};
	const char *v[2];
	cJSON *body = web_read_body(r, known, v, 2);
	if (body == NULL)
		return;
	struct web_job *j = web_job_new(r);
	staff_token_hash(v[0], j->token_hash);
	snprintf(j->code, sizeof j->code, "%s", v[1]);
	cJSON_Delete(body);
	const char *params[] = {j->token_hash};
	api_query(r,
		  "SELECT id, totp_secret, coalesce(totp_last_step, -1) FROM staff_users"
		  " WHERE setup_token_hash = $1 AND setup_expires_at > now()"
		  " AND disabled_at IS NULL AND password_hash IS NOT NULL"
		  " AND totp_secret IS NOT NULL",
		  1, params, confirm_found);
}

