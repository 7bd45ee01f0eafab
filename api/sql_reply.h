/*
 * sql_reply: answers a request with the outcome of one SQL statement whose single row
 * is (HTTP status, JSON body) — the shape of the registry's SQL (sql/004_registry.sql).
 * No row, or a NULL body, is 404. Errors become specific problems: those raised by
 * dualreg_fail() (SQLSTATE "DR<status>", message = slug, detail, hint = JSON pointers
 * one per line), and constraint violations the caller names in a map; anything else
 * goes to api_reply_db_error.
 */
#ifndef DUALREG_SQL_REPLY_H
#define DUALREG_SQL_REPLY_H

#include <cJSON.h>

#include "dualreg/api.h"

/* A named constraint's violation as a problem (pointer may be NULL). */
struct sql_reply_map {
	const char *constraint;
	int status;
	const char *slug;
	const char *pointer;
	const char *detail;
};

#define SQL_REPLY_MAX_PARAMS 16

/*
 * Runs sql in its own transaction (BEGIN, the statement, COMMIT) and replies after the
 * commit. params are copied. map is a static table ending in a {NULL} entry, or NULL.
 */
void sql_reply_txn(struct api_req *r, const char *sql, int nparams, const char *const *params,
		   const struct sql_reply_map *map);
/* Runs one read-only statement on any pooled connection and replies. */
void sql_reply_query(struct api_req *r, const char *sql, int nparams, const char *const *params);
/* The same for a statement whose answer may name pupils: refused while the access
 * audit is full, and every pupil a 2xx body names ("upn" members) is recorded. */
void sql_reply_query_audited(struct api_req *r, const char *sql, int nparams,
			     const char *const *params);
/* The problem for a dualreg_fail() error or a mapped constraint, else NULL. */
cJSON *sql_reply_problem(const struct pg_result *res, const struct sql_reply_map *map);

#endif
