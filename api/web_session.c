/*
 * web_session: the session cookie, the CSRF token and Origin check, finding a session
 * and the /v1 authenticate stage's cookie branch (see web_session.h).
 */
#include "web_session.h"

#include <sys/queue.h> /* before libevent's headers, which define TAILQ_* otherwise */

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dualreg/config.h"
#include "dualreg/workers.h"
#include "dualreg/xalloc.h"
#include "json_fields.h"
#include "problem.h"
#include "request.h"

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* 32 bytes as 43 base64url characters. */
static void b64url_32(const unsigned char in[32], char out[WEB_TOKEN_LEN + 1])
{
	size_t o = 0;
	unsigned bits = 0, nbits = 0;
	for (size_t i = 0; i < 32; i++) {
		bits = (bits << 8) | in[i];
		nbits += 8;
		while (nbits >= 6) {
			nbits -= 6;
			out[o++] = b64url[(bits >> nbits) & 63];
		}
	}
	if (nbits > 0)
		out[o++] = b64url[(bits << (6 - nbits)) & 63];
	out[o] = '\0';
}

static bool token_shaped(const char *s, size_t len)
{
	if (len != WEB_TOKEN_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if (strchr(b64url, s[i]) == NULL || s[i] == '\0')
			return false;
	return true;
}

bool web_cookie_token(struct api_req *r, char out[WEB_TOKEN_LEN + 1])
{
	struct evkeyval *h;
	TAILQ_FOREACH(h, evhttp_request_get_input_headers(r->req), next) {
		if (strcasecmp(h->key, "Cookie") != 0)
			continue;
		/* name=value pairs separated by ";" (RFC 6265, 5.4). */
		const char *p = h->value;
		while (*p != '\0') {
			while (*p == ' ' || *p == ';')
				p++;
			size_t len = strcspn(p, ";");
			const char *eq = memchr(p, '=', len);
			if (eq != NULL && (size_t)(eq - p) == strlen(WEB_COOKIE) &&
			    strncmp(p, WEB_COOKIE, strlen(WEB_COOKIE)) == 0) {
				const char *v = eq + 1;
				size_t vlen = len - (size_t)(v - p);
				while (vlen > 0 && v[vlen - 1] == ' ')
					vlen--;
				if (token_shaped(v, vlen)) {
					memcpy(out, v, WEB_TOKEN_LEN);
					out[WEB_TOKEN_LEN] = '\0';
					return true;
				}
			}
			p += len;
		}
	}
	return false;
}

bool web_token_new(char out[WEB_TOKEN_LEN + 1])
{
	unsigned char raw[32];
	if (RAND_bytes(raw, sizeof raw) != 1)
		return false;
	b64url_32(raw, out);
	OPENSSL_cleanse(raw, sizeof raw);
	return true;
}

void web_csrf_token(const char *token, char out[WEB_TOKEN_LEN + 1])
{
	static const char label[] = "dualreg-csrf:";
	unsigned char md[32];
	unsigned int mdlen = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	EVP_DigestUpdate(c, label, sizeof label - 1);
	EVP_DigestUpdate(c, token, strlen(token));
	EVP_DigestFinal_ex(c, md, &mdlen);
	EVP_MD_CTX_free(c);
	b64url_32(md, out);
}

void web_set_cookie(struct api_req *r, const char *token)
{
	char v[160];
	snprintf(v, sizeof v, "%s=%s; Path=/; HttpOnly; SameSite=Strict%s", WEB_COOKIE, token,
		 r->env->cfg->web_tls ? "; Secure" : "");
	api_set_header(r, "Set-Cookie", v);
}

void web_clear_cookie(struct api_req *r)
{
	char v[128];
	snprintf(v, sizeof v, "%s=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict%s", WEB_COOKIE,
		 r->env->cfg->web_tls ? "; Secure" : "");
	api_set_header(r, "Set-Cookie", v);
}

/* The origin ("scheme://host[:port]") of a URL: the length of its prefix up to the first
 * "/" after "://", or of the whole text. */
static size_t origin_len(const char *url)
{
	const char *sep = strstr(url, "://");
	if (sep == NULL)
		return strlen(url);
	return (size_t)(sep + 3 - url) + strcspn(sep + 3, "/?#");
}

static bool same_text(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen == blen && strncasecmp(a, b, alen) == 0;
}

bool web_csrf_check(struct api_req *r, const char *token)
{
	const char *origin = api_header(r, "Origin");
	const char *pub = r->env->cfg->web_public_url;
	if (origin != NULL && (pub == NULL || !same_text(origin, strlen(origin), pub,
							 origin_len(pub)))) {
		api_reply_error(r, 403, "csrf-failed",
				"the request comes from another site (Origin does not match "
				"[web] public_url)");
		return false;
	}
	char want[WEB_TOKEN_LEN + 1];
	web_csrf_token(token, want);
	const char *got = api_header(r, "X-CSRF-Token");
	if (got == NULL || strlen(got) != WEB_TOKEN_LEN ||
	    CRYPTO_memcmp(got, want, WEB_TOKEN_LEN) != 0) {
		api_reply_error(r, 403, "csrf-failed",
				"a request that changes data with the session cookie needs the "
				"session's X-CSRF-Token header");
		return false;
	}
	return true;
}

/* ---- finding a session ---- */

/* The session (its columns in this order) and its user, moving last_seen_at. $1: the
 * token hash, $2: [web] session_idle in ms, $3: 't' when both factors must be done. */
static const char find_sql[] =
    "WITH s AS ("
    " UPDATE staff_sessions s SET last_seen_at = now()"
    " FROM staff_users u"
    " WHERE s.token_hash = $1 AND u.id = s.user_id AND u.disabled_at IS NULL"
    "  AND s.expires_at > now()"
    "  AND s.last_seen_at > now() - $2::bigint * interval '1 millisecond'"
    "  AND (s.second_factor_done OR NOT $3::boolean)"
    " RETURNING s.user_id, s.second_factor_done, s.last_seen_at, s.expires_at)"
    " SELECT s.user_id, s.second_factor_done, u.email, u.name, u.role, coalesce(u.urn, ''),"
    "  coalesce(c.name, ''), coalesce(c.kind, ''), coalesce(k.id, 0),"
    "  to_char((s.last_seen_at + $2::bigint * interval '1 millisecond') AT TIME ZONE 'UTC',"
    "          'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
    "  to_char(s.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
    " FROM s JOIN staff_users u ON u.id = s.user_id"
    " LEFT JOIN schools c ON c.urn = u.urn"
    " LEFT JOIN api_keys k ON k.token_hash = 'staff:' || u.id AND k.revoked_at IS NULL";

static void found(struct api_req *r, PGresult *res)
{
	struct req *q = req_of(r);
	void (*done)(struct api_req *, const struct web_session *) = q->web_done;
	q->web_done = NULL;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		api_reply_db_error(r, res);
		return;
	}
	if (PQntuples(res) == 0) {
		done(r, NULL);
		return;
	}
	struct web_session s = {0};
	memcpy(s.token_hash, q->web_hash, sizeof s.token_hash);
	s.user_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	s.full = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	snprintf(s.email, sizeof s.email, "%s", PQgetvalue(res, 0, 2));
	snprintf(s.name, sizeof s.name, "%s", PQgetvalue(res, 0, 3));
	snprintf(s.role, sizeof s.role, "%s", PQgetvalue(res, 0, 4));
	snprintf(s.urn, sizeof s.urn, "%s", PQgetvalue(res, 0, 5));
	snprintf(s.school_name, sizeof s.school_name, "%s", PQgetvalue(res, 0, 6));
	snprintf(s.school_kind, sizeof s.school_kind, "%s", PQgetvalue(res, 0, 7));
	s.key_id = strtoll(PQgetvalue(res, 0, 8), NULL, 10);
	snprintf(s.idle_expires_at, sizeof s.idle_expires_at, "%s", PQgetvalue(res, 0, 9));
	snprintf(s.expires_at, sizeof s.expires_at, "%s", PQgetvalue(res, 0, 10));
	done(r, &s);
}

void web_session_find(struct api_req *r, const char *token, bool full,
		      void (*done)(struct api_req *r, const struct web_session *s))
{
	struct req *q = req_of(r);
	auth_token_hash(token, q->web_hash);
	char idle[24];
	snprintf(idle, sizeof idle, "%u", r->env->cfg->web_session_idle_ms);
	q->web_done = done;
	const char *params[] = {q->web_hash, idle, full ? "t" : "f"};
	api_query(r, find_sql, 3, params, found);
}

cJSON *web_user_json(const struct web_session *s)
{
	cJSON *u = cJSON_CreateObject();
	cJSON_AddNumberToObject(u, "id", (double)s->user_id);
	cJSON_AddStringToObject(u, "email", s->email);
	cJSON_AddStringToObject(u, "name", s->name);
	cJSON_AddStringToObject(u, "role", s->role);
	if (s->urn[0] == '\0') {
		cJSON_AddNullToObject(u, "school");
	} else {
		cJSON *c = cJSON_AddObjectToObject(u, "school");
		cJSON_AddStringToObject(c, "urn", s->urn);
		cJSON_AddStringToObject(c, "name", s->school_name);
		cJSON_AddStringToObject(c, "kind", s->school_kind);
	}
	return u;
}

/* ---- the /v1 authenticate stage's cookie branch ---- */

static void authenticated(struct api_req *r, const struct web_session *s)
{
	struct req *q = req_of(r);
	void (*next)(struct api_req *) = q->web_next;
	q->web_next = NULL;
	bool admin = s != NULL && strcmp(s->role, "admin") == 0;
	/* Not charged to the address: a session token cannot be guessed, and a session
	 * that has just expired is no attempt. */
	if (s == NULL || s->key_id == 0 || (!admin && s->urn[0] == '\0')) {
		api_set_header(r, "WWW-Authenticate", "Bearer realm=\"dualreg\"");
		api_reply_error(r, 401, NULL,
				"the session has ended or is not signed in; sign in again");
		return;
	}
	if (r->method != RM_GET && r->method != RM_HEAD && !web_csrf_check(r, q->web_token))
		return;
	r->key = (struct api_key){.id = s->key_id, .admin = admin};
	/* As the key is named; an address too long for the name is cut (the key id is
	 * exact). */
	snprintf(r->key.name, sizeof r->key.name, "staff:%.*s", (int)sizeof r->key.name - 7,
		 s->email);
	if (!admin)
		snprintf(r->key.urn, sizeof r->key.urn, "%s", s->urn);
	next(r);
}

void web_session_authenticate(struct api_req *r, void (*next)(struct api_req *r))
{
	struct req *q = req_of(r);
	if (!web_cookie_token(r, q->web_token)) {
		api_set_header(r, "WWW-Authenticate", "Bearer realm=\"dualreg\"");
		api_reply_error(r, 401, NULL, "missing Authorization: Bearer <API key>");
		return;
	}
	q->web_next = next;
	web_session_find(r, q->web_token, true, authenticated);
}

/* ---- what the handlers share ---- */

static void web_job_free(struct web_job *j)
{
	cJSON_Delete(j->reply);
	OPENSSL_cleanse(j, sizeof *j);
	free(j);
}

/* The request ends before the handler replied (see struct web_job). */
static void web_job_abort(struct api_req *r)
{
	struct web_job *j = r->state;
	r->state = NULL;
	if (j == NULL)
		return;
	if (j->running)
		j->r = NULL;
	else
		web_job_free(j);
}

struct web_job *web_job_new(struct api_req *r)
{
	struct web_job *j = xcalloc(1, sizeof *j);
	j->r = r;
	r->state = j;
	r->on_abort = web_job_abort;
	return j;
}

/* Forgets the job before a reply. */
void web_job_end(struct api_req *r)
{
	struct web_job *j = r->state;
	r->state = NULL;
	r->on_abort = NULL;
	if (j != NULL)
		web_job_free(j);
}

void web_fail(struct api_req *r, int status, const char *slug, const char *detail)
{
	web_job_end(r);
	api_reply_error(r, status, slug, "%s", detail);
}

/* On a worker thread: touches only j. */
static void work(void *arg)
{
	struct web_job *j = arg;
	if (j->verify)
		j->ok = staff_password_verify(j->hash, j->password);
	else
		j->ok = staff_password_hash(j->password, j->hash) == 0;
	OPENSSL_cleanse(j->password, sizeof j->password);
}

/* On the loop, once the worker is done (or the pool stopped before it ran). */
static void worked(void *arg, bool cancelled)
{
	struct web_job *j = arg;
	j->running = false;
	if (j->r == NULL) {
		web_job_free(j);
		return;
	}
	if (cancelled) {
		api_set_header(j->r, "Retry-After", "1");
		web_fail(j->r, 503, "unavailable", "the service is stopping; retry");
		return;
	}
	j->next(j->r, j);
}

/* Runs j's password work on a worker thread, then next(r, j) on the loop. */
void web_job_password(struct api_req *r, struct web_job *j,
		      void (*next)(struct api_req *r, struct web_job *j))
{
	j->next = next;
	j->running = true;
	if (workers_submit(r->env->workers, work, worked, j) != 0) {
		j->running = false;
		api_set_header(r, "Retry-After", "1");
		web_fail(r, 503, "busy", "too many sign-ins are being checked; retry");
	}
}

/* A new session token, its hash and CSRF token into j; false (replied 500) if no
 * randomness is available. */
bool web_job_session(struct api_req *r, struct web_job *j)
{
	if (!web_token_new(j->session)) {
		web_fail(r, 500, NULL, "no randomness is available");
		return false;
	}
	auth_token_hash(j->session, j->session_hash);
	web_csrf_token(j->session, j->csrf);
	return true;
}

/* The body's members, or NULL when it was answered (400/415/422). */
cJSON *web_read_body(struct api_req *r, const char *const known[], const char *names[],
		     size_t n)
{
	cJSON *body = api_json_body(r);
	if (body == NULL)
		return NULL;
	struct jf jf;
	jf_init(&jf);
	jf_only(&jf, body, "", known);
	for (size_t i = 0; i < n; i++)
		names[i] = jf_text(&jf, body, "", known[i], true, WEB_TEXT_MAX);
	cJSON *problem = jf_take_problem(&jf);
	if (problem != NULL) {
		cJSON_Delete(body);
		api_reply_problem(r, problem);
		return NULL;
	}
	return body;
}

void web_secret_aad(long long user_id, char out[SECRET_BOX_AAD_MAX])
{
	char id[24];
	snprintf(id, sizeof id, "%lld", user_id);
	secret_box_aad_staff(id, out);
}
