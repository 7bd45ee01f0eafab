/*
 * status: GET /v1/pupils/{upn}/status?date=YYYY-MM-DD — where a pupil is expected each
 * session of one day (default today, Europe/London), the mark at each school on roll,
 * whether the two schools disagree, and a one-word state. The hottest read: the whole
 * body comes from one SQL call (dualreg_status in sql/006_reads.sql), which also
 * decides scope, so each poll costs one round trip.
 *
 * Caching: the body carries a strong ETag (quoted hex SHA-256 of the bytes sent);
 * If-None-Match with that tag (or *) answers 304 without a body. Bodies are also kept
 * in memory (status_cache.h) until anything changes, so a poll of an unchanged pupil
 * costs no database round trip.
 */
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>

#include "dualreg/audit.h"
#include "dualreg/calendar.h"
#include "dualreg/jobs.h"
#include "dualreg/status_cache.h"
#include "dualreg/xalloc.h"
#include "problem.h"
#include "dualreg/upn.h"
#include "handlers.h"

#define ETAG_LEN (2 + 64) /* quotes + hex SHA-256 */

/* Validates the {upn} path segment; replies 422 and returns false when it is bad. */
bool reads_check_upn(struct api_req *r, const char *upn)
{
	char expected = 0;
	enum upn_result v = upn_validate(upn, &expected);
	if (v == UPN_OK)
		return true;
	cJSON *p = problem_new(422, "invalid-upn", NULL, "the UPN in the path is not valid");
	if (v == UPN_BAD_CHECK) {
		char detail[96];
		snprintf(detail, sizeof detail, "the check letter should be %c", expected);
		problem_add_error(p, "/path/upn", detail);
	} else {
		problem_add_error(p, "/path/upn",
				  "a UPN is 13 characters: a check letter, 11 digits and a "
				  "digit or letter");
	}
	api_reply_problem(r, p);
	return false;
}

/*
 * Reads query parameter name into buf. Returns 1 if present and well-sized, 0 if
 * absent; -1 if longer than buf allows (treated as invalid by the callers).
 */
int reads_param(struct api_req *r, const char *name, char *buf, size_t buflen)
{
	return api_query_param(r, name, buf, buflen);
}

/* A date query parameter: 1 parsed into out, 0 absent, -1 replied 422 invalid-date. */
int reads_date_param(struct api_req *r, const char *name, char out[11])
{
	struct cal_date d;
	int got = reads_param(r, name, out, 11);
	if (got == 0)
		return 0;
	if (got < 0 || !cal_parse_date(out, &d)) {
		char pointer[64], detail[96];
		snprintf(pointer, sizeof pointer, "/query/%s", name);
		snprintf(detail, sizeof detail, "%s must be a date YYYY-MM-DD", name);
		cJSON *p = problem_new(422, "invalid-date", NULL, detail);
		problem_add_error(p, pointer, detail);
		api_reply_problem(r, p);
		return -1;
	}
	return 1;
}

bool reads_audit_refused(struct api_req *r)
{
	struct audit *a = r->env->audit;
	if (!audit_full(a))
		return false;
	audit_count_refused(a);
	api_set_header(r, "Retry-After", "5");
	api_reply_error(r, 503, "audit-unavailable",
			"reads of pupil data are paused until the access audit is written; retry");
	return true;
}

void reads_audit_body(struct api_req *r, const cJSON *body)
{
	audit_read_json(r->env->audit,
			&(struct audit_reader){r->key.id, r->key.name, r->key.urn},
			r->route->name, body);
}

static void make_etag(const char *body, char out[ETAG_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	EVP_Digest(body, strlen(body), md, &len, EVP_sha256(), NULL);
	out[0] = '"';
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 1 + 2 * i, 3, "%02x", md[i]);
	out[65] = '"';
	out[66] = '\0';
}

/* What a status query needs to remember for the cache. */
struct status_req {
	char key[STATUS_CACHE_KEY_MAX];
	struct status_stamp stamp;
};

static void status_req_abort(struct api_req *r)
{
	free(r->state);
	r->state = NULL;
}

/* Replies with a body and its ETag, or 304 if the client already has it. */
static void reply_status(struct api_req *r, const char *text, const char *etag)
{
	api_set_header(r, "ETag", etag);
	api_set_header(r, "Cache-Control", "private, no-cache");
	const char *inm = api_header(r, "If-None-Match");
	if (inm != NULL && api_etag_matches(inm, etag)) {
		api_reply_json(r, 304, NULL);
		return;
	}
	api_reply_raw(r, 200, "application/json", text);
}

static void status_done(struct api_req *r, PGresult *res)
{
	struct status_req *sr = r->state;
	r->state = NULL;
	r->on_abort = NULL;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		free(sr);
		api_reply_db_error(r, res);
		return;
	}
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
		free(sr);
		api_reply_error(r, 404, "unknown-pupil",
				"no pupil with this UPN is visible to this key on that date");
		return;
	}
	cJSON *body = cJSON_Parse(PQgetvalue(res, 0, 0));
	if (body == NULL) {
		free(sr);
		api_reply_error(r, 500, "internal-error", "the status could not be built");
		return;
	}
	/* The ETag is the hash of exactly the bytes sent. */
	char *text = cJSON_PrintUnformatted(body);
	cJSON_Delete(body);
	char etag[ETAG_LEN + 1];
	make_etag(text, etag);
	status_cache_put(r->env->status_cache, sr->key, sr->stamp, text, etag);
	free(sr);
	reply_status(r, text, etag);
	cJSON_free(text);
}

/* Today's date in Europe/London, where schools keep time. */
static void london_today(char out[11])
{
	time_t now = time(NULL);
	time_t local = now + jobs_london_offset(now);
	struct tm tm;
	gmtime_r(&local, &tm);
	strftime(out, 11, "%Y-%m-%d", &tm);
}

void h_pupil_status(struct api_req *r)
{
	const char *upn = r->params.value[0];
	if (!reads_check_upn(r, upn))
		return;
	char date[11];
	int have_date = reads_date_param(r, "date", date);
	if (have_date < 0)
		return;
	/* Without a date: today, fixed here so that the cache key and the query agree. */
	if (!have_date)
		london_today(date);
	const char *scope = api_key_scope(r);
	char key[STATUS_CACHE_KEY_MAX];
	snprintf(key, sizeof key, "%.13s|%.10s|%.6s", upn, date, scope ? scope : "*");
	const char *cached_body, *cached_etag;
	if (status_cache_get(r->env->status_cache, key, &cached_body, &cached_etag)) {
		reply_status(r, cached_body, cached_etag);
		return;
	}
	struct status_req *sr = xmalloc(sizeof *sr);
	memcpy(sr->key, key, sizeof key);
	sr->stamp = status_cache_stamp(r->env->status_cache);
	r->state = sr;
	r->on_abort = status_req_abort;
	const char *params[] = {upn, date, scope};
	api_query(r, "SELECT dualreg_status($1, $2::date, $3)", 3, params, status_done);
}
