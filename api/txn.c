/*
 * txn: database work on behalf of a request. One-shot pooled statements (api_query)
 * and transactions on a held connection (api_txn_*), with the request's lifetime rules
 * built in: a statement's callback never runs for a request that has already been
 * answered (the pooled operation is cancelled, or the held connection closed, when
 * the request ends first), and a lost database connection answers 503 by itself.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/api.h"
#include "dualreg/db.h"
#include "dualreg/log.h"
#include "problem.h"
#include "request.h"

/* The handler's state is released when this module answers for it (see on_abort). */
static void drop_handler_state(struct api_req *r)
{
	void (*undo)(struct api_req *) = r->on_abort;
	r->on_abort = NULL;
	if (undo != NULL)
		undo(r);
}

/* No result at all: the database is unreachable or the connection broke. */
static void unavailable(struct api_req *r, const char *err)
{
	drop_handler_state(r);
	/* Connection errors name hosts, users and databases: for the log only. */
	log_debug("database unavailable", "route=%s err=\"%s\"", r->route->name, err);
	api_set_header(r, "Retry-After", "1");
	api_reply_error(r, 503, "database-unavailable", "the database is unavailable; retry");
}

static void pooled_done(PGresult *res, const char *err, void *arg)
{
	struct api_req *r = arg;
	api_result_fn next = req_of(r)->step;
	req_of(r)->step = NULL;
	r->op = NULL;
	if (res == NULL) {
		unavailable(r, err);
		return;
	}
	next(r, res);
}

void api_query(struct api_req *r, const char *sql, int nparams, const char *const *params,
	       api_result_fn next)
{
	req_of(r)->step = next;
	r->op = dbp_query(r->env->db, sql, nparams, params, pooled_done, r);
}

static void held_done(PGresult *res, const char *err, void *arg)
{
	struct api_req *r = arg;
	api_result_fn next = req_of(r)->step;
	req_of(r)->step = NULL;
	if (res == NULL) {
		/* The connection is gone; releasing it later closes what is left. */
		unavailable(r, err);
		return;
	}
	next(r, res);
}

void api_txn_query(struct api_req *r, const char *sql, int nparams, const char *const *params,
		   api_result_fn next)
{
	req_of(r)->step = next;
	if (dbc_query(r->conn, sql, nparams, params, held_done, r) != 0)
		unavailable(r, "the database connection is not usable");
}

static void begun(struct api_req *r, PGresult *res)
{
	api_result_fn next = req_of(r)->after;
	req_of(r)->after = NULL;
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		api_reply_db_error(r, res);
		return;
	}
	next(r, NULL);
}

static void acquired(struct db_conn *conn, const char *err, void *arg)
{
	struct api_req *r = arg;
	r->op = NULL;
	if (conn == NULL) {
		unavailable(r, err);
		return;
	}
	r->conn = conn;
	api_txn_query(r, "BEGIN", 0, NULL, begun);
}

void api_txn_begin(struct api_req *r, api_result_fn next)
{
	req_of(r)->after = next;
	r->op = dbp_acquire(r->env->db, acquired, r);
}

static void committed(struct api_req *r, PGresult *res)
{
	api_result_fn next = req_of(r)->after;
	req_of(r)->after = NULL;
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		api_reply_db_error(r, res);
		return;
	}
	dbp_release(r->env->db, r->conn, false);
	r->conn = NULL;
	next(r, NULL);
}

void api_txn_commit(struct api_req *r, api_result_fn next)
{
	req_of(r)->after = next;
	api_txn_query(r, "COMMIT", 0, NULL, committed);
}

static void rolled_back(struct api_req *r, PGresult *res)
{
	cJSON *problem = req_of(r)->abort_problem;
	req_of(r)->abort_problem = NULL;
	bool clean = PQresultStatus(res) == PGRES_COMMAND_OK;
	dbp_release(r->env->db, r->conn, !clean);
	r->conn = NULL;
	api_reply_problem(r, problem);
}

void api_txn_abort(struct api_req *r, cJSON *problem)
{
	req_of(r)->abort_problem = problem;
	api_txn_query(r, "ROLLBACK", 0, NULL, rolled_back);
}

void api_reply_db_error(struct api_req *r, PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorMessage(res);
	drop_handler_state(r);
	int status = 500;
	const char *slug = "internal-error";
	const char *detail = "the request could not be completed; the error has been logged";
	if (state != NULL) {
		if (strcmp(state, "23505") == 0 || strcmp(state, "23P01") == 0) {
			status = 409;
			slug = "conflict";
			detail = "this conflicts with existing data";
		} else if (strcmp(state, "23503") == 0 || strcmp(state, "23514") == 0) {
			status = 422;
			slug = "unprocessable-content";
			detail = "the request refers to data that does not exist or breaks a rule";
		} else if (strcmp(state, "57014") == 0 || strncmp(state, "40", 2) == 0) {
			status = 503;
			slug = "database-busy";
			detail = "the database could not complete the request in time; retry";
		}
	}
	if (status == 500)
		log_error("database error", "route=%s sqlstate=%s err=\"%.*s\"", r->route->name,
			  state ? state : "-", (int)strcspn(msg, "\n"), msg);
	cJSON *problem = problem_new(status, slug, NULL, detail);
	if (status == 503)
		api_set_header(r, "Retry-After", "1");
	if (r->conn != NULL && dbc_is_ready(r->conn)) {
		api_txn_abort(r, problem);
		return;
	}
	api_reply_problem(r, problem);
}

void api_reply_sql_json(struct api_req *r, PGresult *res)
{
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		api_reply_db_error(r, res);
		return;
	}
	if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) {
		api_reply_raw(r, 200, "application/json", "null");
		return;
	}
	api_reply_raw(r, 200, "application/json", PQgetvalue(res, 0, 0));
}

void api_reply_sql_json_or_404(struct api_req *r, PGresult *res)
{
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		api_reply_db_error(r, res);
		return;
	}
	if (PQntuples(res) == 0) {
		api_reply_error(r, 404, NULL, "no such resource");
		return;
	}
	if (PQgetisnull(res, 0, 0)) {
		api_reply_json(r, 204, NULL);
		return;
	}
	api_reply_raw(r, 200, "application/json", PQgetvalue(res, 0, 0));
}
