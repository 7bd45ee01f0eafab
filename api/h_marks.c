/*
 * marks: POST /v1/marks, the ingest of attendance marks.
 *
 * The handler checks only the envelope here: the body's shape and JSON types, the
 * 1000-mark limit (413 too-many-marks) and, for a school key, that every mark is for
 * that key's own school (403 forbidden-school for the whole request, each offending
 * item named by a JSON pointer). Any of these answers a problem and stores nothing.
 *
 * Every rule about the marks themselves runs in PostgreSQL, in one statement
 * (dualreg_ingest_marks, sql/005_marks.sql): one round trip however many marks the batch
 * carries. That statement is its own transaction. It runs outside BEGIN/COMMIT on
 * purpose: PostgreSQL commits a lone statement when it reaches the protocol's Sync, and
 * the pool delivers the result only after the server's ReadyForQuery (db/conn.c), so the
 * marks, their history rows, their events and the derived D marks they cause have all
 * committed (or all failed, and the error is what arrives) before the 200 reply. It
 * also leaves no handler state behind if the database goes away mid-request.
 *
 * The marks' source is "web" when the staff web app's session cookie authenticated the
 * request, "api" for a bearer key (both are counted as "api" in the metrics).
 */
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/metrics.h"
#include "handlers.h"
#include "json_fields.h"
#include "problem.h"
#include "request.h"

#define MARKS_MAX_ITEMS 1000
#define MARKS_MAX_ERRORS 50 /* pointers listed in one problem */

/* Adds one pointer to problem unless MARKS_MAX_ERRORS are listed already. */
static void add_error(cJSON *problem, unsigned *nerr, const char *pointer, const char *detail)
{
	if (*nerr < MARKS_MAX_ERRORS)
		problem_add_error(problem, pointer, detail);
	(*nerr)++;
}

/* A member name as a JSON pointer token (RFC 6901), cut between characters to fit. */
static const char *pointer_token(const char *name, char *buf, size_t len)
{
	jf_pointer_token(buf, len, name);
	return buf;
}

enum field_type { FT_STRING, FT_STRING_OR_NULL, FT_INT_OR_NULL };

static const struct {
	const char *name;
	enum field_type type;
	bool required;
} item_fields[] = {
    {"upn", FT_STRING, true},
    {"urn", FT_STRING, true},
    {"date", FT_STRING, true},
    {"session", FT_STRING, true},
    {"code", FT_STRING, true},
    {"minutes_late", FT_INT_OR_NULL, false},
    {"comment", FT_STRING_OR_NULL, false},
    {"reason", FT_STRING_OR_NULL, false},
};
#define N_ITEM_FIELDS (sizeof item_fields / sizeof item_fields[0])

static bool is_whole_number(const cJSON *v)
{
	return jf_whole_number(v, -999999999999999LL, 999999999999999LL, NULL);
}

/* A count in the database's answer; 0 if it is missing (cJSON's NaN must not be cast). */
static long answer_count(const cJSON *counts, const char *name)
{
	long long n = 0;
	if (!jf_whole_number(cJSON_GetObjectItem(counts, name), 0, 1000000000LL, &n))
		return 0;
	return (long)n;
}

/* Checks one member of an item against its declared type; adds an error if wrong. */
static void check_field(cJSON *problem, unsigned *nerr, size_t i, const cJSON *v,
			enum field_type type, const char *name)
{
	char ptr[64];
	const char *want = NULL;
	switch (type) {
	case FT_STRING:
		if (!cJSON_IsString(v))
			want = "must be a string";
		break;
	case FT_STRING_OR_NULL:
		if (!cJSON_IsString(v) && !cJSON_IsNull(v))
			want = "must be a string or null";
		break;
	case FT_INT_OR_NULL:
		if (!cJSON_IsNull(v) && !is_whole_number(v))
			want = "must be a whole number or null";
		break;
	}
	if (want != NULL) {
		snprintf(ptr, sizeof ptr, "/marks/%zu/%s", i, name);
		add_error(problem, nerr, ptr, want);
	}
}

/* Checks one item's shape: an object with the known members of the right types. */
static void check_item(cJSON *problem, unsigned *nerr, size_t i, const cJSON *item)
{
	char ptr[192];
	if (!cJSON_IsObject(item)) {
		snprintf(ptr, sizeof ptr, "/marks/%zu", i);
		add_error(problem, nerr, ptr, "each mark must be a JSON object");
		return;
	}
	for (const cJSON *m = item->child; m != NULL; m = m->next) {
		bool known = false;
		for (size_t f = 0; f < N_ITEM_FIELDS && !known; f++)
			known = strcmp(m->string, item_fields[f].name) == 0;
		if (!known) {
			char tok[72];
			snprintf(ptr, sizeof ptr, "/marks/%zu/%s", i,
				 pointer_token(m->string, tok, sizeof tok));
			add_error(problem, nerr, ptr,
				  "unknown member (allowed: upn, urn, date, session, code, "
				  "minutes_late, comment, reason)");
		}
	}
	for (size_t f = 0; f < N_ITEM_FIELDS; f++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, item_fields[f].name);
		if (v == NULL) {
			if (item_fields[f].required) {
				snprintf(ptr, sizeof ptr, "/marks/%zu/%s", i, item_fields[f].name);
				add_error(problem, nerr, ptr, "is required");
			}
			continue;
		}
		check_field(problem, nerr, i, v, item_fields[f].type, item_fields[f].name);
	}
}

/* Validates the envelope (see handlers.h); body stays the caller's. */
cJSON *marks_envelope_check(cJSON *body, cJSON **problem_out)
{
	*problem_out = NULL;
	cJSON *problem = problem_new(422, "invalid-marks", NULL,
				     "the body must be {\"marks\": [{upn, urn, date, session, code, "
				     "minutes_late?, comment?, reason?}, ...]}");
	unsigned nerr = 0;
	char ptr[96];
	for (const cJSON *m = body->child; m != NULL; m = m->next) {
		if (strcmp(m->string, "marks") != 0) {
			char tok[72];
			snprintf(ptr, sizeof ptr, "/%s", pointer_token(m->string, tok, sizeof tok));
			add_error(problem, &nerr, ptr, "unknown member (allowed: marks)");
		}
	}
	cJSON *marks = cJSON_GetObjectItemCaseSensitive(body, "marks");
	if (marks == NULL) {
		add_error(problem, &nerr, "/marks", "is required");
	} else if (!cJSON_IsArray(marks)) {
		add_error(problem, &nerr, "/marks", "must be an array");
	} else {
		int n = cJSON_GetArraySize(marks);
		if (n > MARKS_MAX_ITEMS && nerr == 0) {
			cJSON_Delete(problem);
			problem = problem_new(413, "too-many-marks", NULL, NULL);
			char detail[128];
			snprintf(detail, sizeof detail,
				 "at most %d marks per request; this one has %d: split the batch",
				 MARKS_MAX_ITEMS, n);
			cJSON_AddStringToObject(problem, "detail", detail);
			problem_add_error(problem, "/marks", detail);
			*problem_out = problem;
			return NULL;
		}
		size_t i = 0;
		for (const cJSON *item = marks->child; item != NULL; item = item->next, i++)
			check_item(problem, &nerr, i, item);
	}
	if (nerr == 0) {
		cJSON_Delete(problem);
		return marks;
	}
	if (nerr > MARKS_MAX_ERRORS) {
		char more[96];
		snprintf(more, sizeof more, "%u more errors not listed", nerr - MARKS_MAX_ERRORS);
		problem_add_error(problem, "", more);
	}
	*problem_out = problem;
	return NULL;
}

/* A school key writes only for its own school: 403 naming every other school's item. */
static bool marks_in_scope(struct api_req *r, const cJSON *marks)
{
	if (r->key.admin)
		return true;
	cJSON *problem = NULL;
	unsigned nerr = 0;
	size_t i = 0;
	for (const cJSON *item = marks->child; item != NULL; item = item->next, i++) {
		const cJSON *urn = cJSON_GetObjectItemCaseSensitive(item, "urn");
		if (strcmp(urn->valuestring, r->key.urn) == 0)
			continue;
		if (problem == NULL) {
			char detail[160];
			snprintf(detail, sizeof detail,
				 "this key writes marks only for school %s; nothing was stored",
				 r->key.urn);
			problem = problem_new(403, "forbidden-school", NULL, detail);
		}
		char ptr[64];
		snprintf(ptr, sizeof ptr, "/marks/%zu/urn", i);
		add_error(problem, &nerr, ptr, "another school's register");
	}
	if (problem == NULL)
		return true;
	api_reply_problem(r, problem);
	return false;
}

/* The marks' source: "web" for a request the staff web app's session cookie
 * authenticated (the authenticate stage keeps the cookie's token only then, and only
 * without an Authorization header), "api" for a bearer key. */
static const char *marks_source(struct api_req *r)
{
	return api_header(r, "Authorization") == NULL && req_of(r)->web_token[0] != '\0'
		   ? "web"
		   : "api";
}

/* The batch's answer: the statement committed before this runs (see the top). */
static void marks_ingested(struct api_req *r, PGresult *res)
{
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
	    PQgetisnull(res, 0, 0)) {
		api_reply_db_error(r, res);
		return;
	}
	cJSON *answer = cJSON_Parse(PQgetvalue(res, 0, 0));
	if (answer == NULL) {
		api_reply_error(r, 500, NULL, "the database answered unreadable JSON");
		return;
	}
	const cJSON *c = cJSON_GetObjectItem(answer, "counts");
	metrics_marks(marks_source(r), answer_count(c, "created"), answer_count(c, "amended"),
		      answer_count(c, "unchanged"), answer_count(c, "rejected"));
	api_reply_json(r, 200, answer);
}

/* The reply for a batch with nothing in it: nothing to ask the database. */
static void marks_reply_empty(struct api_req *r)
{
	cJSON *body = cJSON_CreateObject();
	cJSON_AddArrayToObject(body, "results");
	cJSON *counts = cJSON_AddObjectToObject(body, "counts");
	const char *names[] = {"created", "amended", "unchanged", "rejected"};
	for (size_t i = 0; i < 4; i++)
		cJSON_AddNumberToObject(counts, names[i], 0);
	cJSON_AddNumberToObject(body, "derived", 0);
	api_reply_json(r, 200, body);
}

void h_marks_post(struct api_req *r)
{
	cJSON *body = api_json_body(r);
	if (body == NULL)
		return;
	cJSON *problem = NULL;
	cJSON *marks = marks_envelope_check(body, &problem);
	if (marks == NULL)
		api_reply_problem(r, problem);
	if (marks == NULL || !marks_in_scope(r, marks)) {
		cJSON_Delete(body);
		return;
	}
	if (cJSON_GetArraySize(marks) == 0) {
		cJSON_Delete(body);
		marks_reply_empty(r);
		return;
	}
	/* Well-formed UTF-8: api_json_body checked every string of the body. */
	char *items = cJSON_PrintUnformatted(marks);
	cJSON_Delete(body);
	char key_id[24];
	snprintf(key_id, sizeof key_id, "%lld", r->key.id);
	const char *params[] = {items, key_id, r->key.name, api_key_scope(r),
				marks_source(r)};
	/* The pool copies the parameters: nothing of this request waits on the database. */
	api_query(r, "SELECT dualreg_ingest_marks($1::jsonb, $2::bigint, $3, $4, $5)::text", 5,
		  params, marks_ingested);
	cJSON_free(items);
}
