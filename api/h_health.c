/*
 * health: liveness and readiness for load balancers and systemd.
 *  GET /healthz  200 whenever the loop answers (it needs nothing else).
 *  GET /readyz   200 when the database answers and its schema is at least the version
 *                this build was made for; otherwise 503 problem+json saying which. The
 *                answer also says whether the database's functions are this build's
 *                (the checksum of sql/functions/ that dualregctl migrate records). A
 *                mismatch is logged, not refused: during a rolling upgrade the daemons
 *                still on the previous build run against the new functions (a release
 *                keeps their signatures), and taking them all out of service at once
 *                would be an outage of its own.
 */
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/db.h"
#include "dualreg/log.h"
#include "dualreg/version.h"
#include "handlers.h"

void h_healthz(struct api_req *r)
{
	cJSON *body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "status", "ok");
	api_reply_json(r, 200, body);
}

static void readyz_done(PGresult *res, const char *err, void *arg)
{
	struct api_req *r = arg;
	r->op = NULL;
	/* What went wrong is logged; the answer, which anyone may read, says only that the
	 * database is not there (no host, user, database name or SQL text). */
	if (res == NULL) {
		log_debug("readiness check: database unavailable", "err=\"%s\"", err);
		api_reply_error(r, 503, "not-ready", "the database is unavailable");
		return;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		/* no schema_migrations, or no schema_functions (migrated before the functions
		 * were recorded) */
		if (state != NULL && strcmp(state, "42P01") == 0)
			api_reply_error(r, 503, "not-ready",
					"the database has no schema, or one older than this build: "
					"run dualregctl migrate");
		else {
			log_warn("readiness check failed", "sqlstate=%s err=\"%s\"",
				 state ? state : "-", PQresultErrorMessage(res));
			api_reply_error(r, 503, "not-ready",
					"the database check failed; the error has been logged");
		}
		return;
	}
	long have = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	if (have < DUALREG_SCHEMA_VERSION) {
		api_reply_error(r, 503, "not-ready",
				"database schema is at version %ld, this build needs %d: run "
				"dualregctl migrate",
				have, DUALREG_SCHEMA_VERSION);
		return;
	}
	const char *functions = PQgetisnull(res, 0, 1) ? "none" : PQgetvalue(res, 0, 1);
	bool current = strcmp(functions, DUALREG_FUNCTIONS_CHECKSUM) == 0;
	static char warned_about[65]; /* log each mismatch once, not at every probe */
	if (!current && strncmp(warned_about, functions, sizeof warned_about - 1) != 0) {
		log_warn("the database's functions are not this build's: run this release's "
			 "dualregctl migrate, or restart on the release that installed them",
			 "installed=%.12s build=%.12s", functions, DUALREG_FUNCTIONS_CHECKSUM);
		snprintf(warned_about, sizeof warned_about, "%s", functions);
	}
	cJSON *body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "status", "ready");
	cJSON_AddNumberToObject(body, "schema_version", (double)have);
	cJSON_AddBoolToObject(body, "functions_current", current);
	api_reply_json(r, 200, body);
}

void h_readyz(struct api_req *r)
{
	r->op = dbp_query(r->env->db,
			  "SELECT (SELECT coalesce(max(version), 0) FROM schema_migrations), "
			  "(SELECT checksum FROM schema_functions)",
			  0, NULL, readyz_done, r);
}
