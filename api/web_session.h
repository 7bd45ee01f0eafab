/*
 * web_session: the staff web app's sessions as HTTP sees them (api/web_session.c). Owns
 * the session cookie (dualreg_session: 32 random bytes base64url, stored only as its
 * SHA-256 in staff_sessions), the CSRF token derived from it, the Origin check, finding a
 * session for a request (idle and absolute expiry, last_seen_at moved on every use), and
 * the authenticate stage's cookie branch for /v1: a fully signed-in session acts as the
 * user's key (a key named "staff:<email>" that no bearer token can name, kept by the
 * sign-in: the user's school, or admin).
 *
 * CSRF: the token is base64url(SHA-256("dualreg-csrf:" + session token)): only a holder
 * of the cookie can know it, and nothing more has to be stored. Every state-changing
 * request authenticated by the cookie carries it in X-CSRF-Token, and its Origin, when
 * present, is [web] public_url's origin.
 */
#ifndef DUALREG_API_WEB_SESSION_H
#define DUALREG_API_WEB_SESSION_H

#include <stdbool.h>

#include "dualreg/api.h"
#include "dualreg/auth_token.h"
#include "dualreg/secret_box.h"
#include "dualreg/staff_auth.h"

#define WEB_COOKIE "dualreg_session"
#define WEB_TOKEN_LEN 43 /* base64url of 32 bytes, no padding */

/* A session found for a request. */
struct web_session {
	char token_hash[AUTH_HASH_HEX];
	long long user_id;
	bool full;                 /* both factors done */
	char email[256];
	char name[256];
	char role[16];             /* staff, lead or admin */
	char urn[8];               /* "" for admin */
	char school_name[256];
	char school_kind[32];
	long long key_id;          /* the user's key, 0 while none (before sign-in ends) */
	char idle_expires_at[40];  /* ISO 8601, UTC */
	char expires_at[40];
};

/* The session token of r's Cookie header into out; false if there is none (or it is not
 * WEB_TOKEN_LEN base64url characters). */
bool web_cookie_token(struct api_req *r, char out[WEB_TOKEN_LEN + 1]);
/* A new random session token; false if no randomness is available. */
bool web_token_new(char out[WEB_TOKEN_LEN + 1]);
/* The CSRF token of a session token. */
void web_csrf_token(const char *token, char out[WEB_TOKEN_LEN + 1]);
/* Set-Cookie for a new session token / clearing the cookie ([web] tls: Secure). */
void web_set_cookie(struct api_req *r, const char *token);
void web_clear_cookie(struct api_req *r);
/* For a state-changing request authenticated by the cookie token: true if it carries
 * the session's X-CSRF-Token and an Origin, if any, of [web] public_url; else replies
 * 403 csrf-failed and returns false. */
bool web_csrf_check(struct api_req *r, const char *token);

/*
 * Finds r's session by its cookie token, moving last_seen_at: one that has neither
 * passed [web] session_idle since it was last used nor its absolute expiry, of a user
 * not disabled, and (full) with both factors done. done(r, s) gets it, or NULL when
 * there is none; a database failure is answered without calling done.
 */
void web_session_find(struct api_req *r, const char *token, bool full,
		      void (*done)(struct api_req *r, const struct web_session *s));

/* The authenticate stage for a request without Authorization that has the cookie
 * (see auth.c): r->key becomes the user's key, or 401 (not charged to the client
 * address: a session token cannot be guessed, and a session that has just ended is no
 * attempt); 403 csrf-failed for a state-changing request without the CSRF token or
 * with another site's Origin. */
void web_session_authenticate(struct api_req *r, void (*next)(struct api_req *r));

/* The user of s as the web app's JSON object {id, email, name, role, school}. */
cJSON *web_user_json(const struct web_session *s);

/* ---- what the handlers share (h_web_setup.c, h_web_session.c) ---- */

#define WEB_TEXT_MAX 1024 /* bytes of a password or code in a body */

/*
 * What one request keeps across its statements and its worker job. While the job runs
 * on a worker the request may end (its deadline): then r becomes NULL and the job's
 * completion only frees it.
 */
struct web_job {
	struct api_req *r;
	bool running;
	void (*next)(struct api_req *r, struct web_job *j); /* after the worker */
	/* the worker's input and output */
	bool verify;
	char password[WEB_TEXT_MAX + 1];
	char hash[STAFF_HASH_MAX]; /* in: the hash to verify against; out: the new hash */
	bool ok;
	/* the request's own */
	long long user_id;
	char email[256], name[256];
	char token_hash[65]; /* the set-up token's */
	char secret[STAFF_TOTP_SECRET_MAX];
	char session[WEB_TOKEN_LEN + 1];
	char session_hash[65];
	char csrf[WEB_TOKEN_LEN + 1];
	char client[64];
	char code[WEB_TEXT_MAX + 1];
	cJSON *reply; /* the answer, sent once the statement has committed */
};

/* A job for r, as r->state (freed when r ends first). */
struct web_job *web_job_new(struct api_req *r);
/* Forgets r's job before a reply. */
void web_job_end(struct api_req *r);
/* Forgets r's job and answers a problem. */
void web_fail(struct api_req *r, int status, const char *slug, const char *detail);
/* Hashes (j->verify false) or verifies (true: against j->hash) j->password on a worker
 * thread, then next(r, j) on the loop with j->ok; 503 when the workers are busy. */
void web_job_password(struct api_req *r, struct web_job *j,
		      void (*next)(struct api_req *r, struct web_job *j));
/* A new session token with its hash and CSRF token into j; false (answered 500) if no
 * randomness is available. */
bool web_job_session(struct api_req *r, struct web_job *j);
/* r's JSON body, whose members are exactly known[] (NULL-terminated), each a required
 * string of at most WEB_TEXT_MAX bytes, into names[] (n of them); NULL when it was
 * answered (400/415/422). The caller owns the body (names point into it). */
cJSON *web_read_body(struct api_req *r, const char *const known[], const char *names[],
		     size_t n);
/* The additional data a user's sealed TOTP secret is bound to ("staff:<id>"). */
void web_secret_aad(long long user_id, char out[SECRET_BOX_AAD_MAX]);

/* The user's own key (see the opening comment), kept as the user is: a CTE k over a
 * CTE ok (id, email, name, role, urn). */
#define WEB_KEY_UPSERT_CTE                                                                  \
	" k AS (INSERT INTO api_keys (name, role, urn, token_hash, prefix)"                 \
	"  SELECT 'staff:' || ok.email, CASE WHEN ok.role = 'admin' THEN 'admin' ELSE"      \
	"   'school' END, ok.urn, 'staff:' || ok.id, 'staff' FROM ok"                       \
	"  ON CONFLICT (token_hash) DO UPDATE SET name = EXCLUDED.name,"                    \
	"   role = EXCLUDED.role, urn = EXCLUDED.urn"                                       \
	"  WHERE (api_keys.name, api_keys.role, api_keys.urn) IS DISTINCT FROM"             \
	"   (EXCLUDED.name, EXCLUDED.role, EXCLUDED.urn) RETURNING id)"

#endif
