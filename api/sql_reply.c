/*
 * sql_reply: one statement -> one reply (see sql_reply.h). The transaction variant
 * keeps copies of the parameters until the statement is sent (BEGIN goes first) and
 * the body until COMMIT succeeds; both live in r->state, freed on every path (on_abort
 * covers the timeout and the database-unavailable paths).
 */
#include "sql_reply.h"

#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/log.h"
#include "dualreg/xalloc.h"
#include "handlers.h"
#include "problem.h"

struct txn_state {
	const char *sql;
	int nparams;
	char *params[SQL_REPLY_MAX_PARAMS];
	const struct sql_reply_map *map;
	int status;
	char *body;
};

static void txn_state_free(struct api_req *r)
{
	struct txn_state *st = r->state;
	if (st == NULL)
		return;
	for (int i = 0; i < st->nparams; i++)
		free(st->params[i]);
	free(st->body);
	free(st);
	r->state = NULL;
	r->on_abort = NULL;
}

cJSON *sql_reply_problem(const PGresult *res, const struct sql_reply_map *map)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (state != NULL && strncmp(state, "DR", 2) == 0) {
		int status = atoi(state + 2);
		if (status < 400 || status > 499)
			return NULL;
		const char *slug = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
		const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
		cJSON *p = problem_new(status, slug, NULL, detail);
		while (hint != NULL && *hint != '\0') {
			size_t n = strcspn(hint, "\n");
			char pointer[256];
			size_t m = n < sizeof pointer - 1 ? n : sizeof pointer - 1;
			memcpy(pointer, hint, m);
			pointer[m] = '\0';
			problem_add_error(p, pointer, detail ? detail : slug);
			hint += n + (hint[n] == '\n');
		}
		return p;
	}
	const char *constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
	for (size_t i = 0; map != NULL && constraint != NULL && map[i].constraint != NULL; i++) {
		if (strcmp(map[i].constraint, constraint) != 0)
			continue;
		cJSON *p = problem_new(map[i].status, map[i].slug, NULL, map[i].detail);
		if (map[i].pointer != NULL)
			problem_add_error(p, map[i].pointer, map[i].detail);
		return p;
	}
	return NULL;
}

/* Parses the statement's (status, body) row; 0 when there is none. */
static int row_outcome(const PGresult *res, const char **body)
{
	if (PQntuples(res) < 1 || PQnfields(res) < 2 || PQgetisnull(res, 0, 0) ||
	    PQgetisnull(res, 0, 1))
		return 0;
	*body = PQgetvalue(res, 0, 1);
	return atoi(PQgetvalue(res, 0, 0));
}

static void reply_body(struct api_req *r, int status, const char *text, bool audited)
{
	cJSON *json = cJSON_Parse(text);
	if (json == NULL) {
		api_reply_error(r, 500, NULL, "the database returned a malformed document");
		return;
	}
	if (audited && status >= 200 && status < 300)
		reads_audit_body(r, json);
	api_reply_json(r, status, json);
}

static void txn_committed(struct api_req *r, PGresult *res)
{
	(void)res;
	struct txn_state *st = r->state;
	int status = st->status;
	char *body = st->body;
	st->body = NULL;
	txn_state_free(r);
	reply_body(r, status, body, false);
	free(body);
}

static void txn_ran(struct api_req *r, PGresult *res)
{
	struct txn_state *st = r->state;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		cJSON *problem = sql_reply_problem(res, st->map);
		txn_state_free(r);
		if (problem != NULL)
			api_txn_abort(r, problem);
		else
			api_reply_db_error(r, res);
		return;
	}
	const char *body = NULL;
	int status = row_outcome(res, &body);
	if (status == 0) {
		txn_state_free(r);
		api_txn_abort(r, problem_new(404, NULL, NULL, "no such resource"));
		return;
	}
	st->status = status;
	st->body = xstrdup(body);
	api_txn_commit(r, txn_committed);
}

static void txn_begun(struct api_req *r, PGresult *res)
{
	(void)res;
	struct txn_state *st = r->state;
	api_txn_query(r, st->sql, st->nparams, (const char *const *)st->params, txn_ran);
}

void sql_reply_txn(struct api_req *r, const char *sql, int nparams, const char *const *params,
		   const struct sql_reply_map *map)
{
	if (nparams < 0 || nparams > SQL_REPLY_MAX_PARAMS) {
		log_error("too many statement parameters", "route=%s n=%d", r->route->name, nparams);
		api_reply_error(r, 500, NULL, "the request could not be completed");
		return;
	}
	struct txn_state *st = xcalloc(1, sizeof *st);
	st->sql = sql;
	st->nparams = nparams;
	for (int i = 0; i < st->nparams; i++)
		st->params[i] = params[i] ? xstrdup(params[i]) : NULL;
	st->map = map;
	r->state = st;
	r->on_abort = txn_state_free;
	api_txn_begin(r, txn_begun);
}

static void query_answer(struct api_req *r, PGresult *res, bool audited)
{
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		cJSON *problem = sql_reply_problem(res, NULL);
		if (problem != NULL)
			api_reply_problem(r, problem);
		else
			api_reply_db_error(r, res);
		return;
	}
	const char *body = NULL;
	int status = row_outcome(res, &body);
	if (status == 0) {
		api_reply_error(r, 404, NULL, "no such resource");
		return;
	}
	reply_body(r, status, body, audited);
}

static void query_ran(struct api_req *r, PGresult *res)
{
	query_answer(r, res, false);
}

static void query_ran_audited(struct api_req *r, PGresult *res)
{
	query_answer(r, res, true);
}

void sql_reply_query(struct api_req *r, const char *sql, int nparams, const char *const *params)
{
	api_query(r, sql, nparams, params, query_ran);
}

void sql_reply_query_audited(struct api_req *r, const char *sql, int nparams,
			     const char *const *params)
{
	if (reads_audit_refused(r))
		return;
	api_query(r, sql, nparams, params, query_ran_audited);
}
