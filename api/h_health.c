/*
 * health: liveness and readiness for load balancers and systemd.
 *  GET /healthz  200 whenever the loop answers (it needs nothing else).
 *  GET /readyz   200 when the database answers and its schema is at least the version
 *                this build was made for; otherwise 503 problem+json saying which.
 */
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/db.h"
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
	if (res == NULL) {
		api_reply_error(r, 503, "not-ready", "%s", err);
		return;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (state != NULL && strcmp(state, "42P01") == 0)
			api_reply_error(r, 503, "not-ready",
					"the database has no schema yet: run dualregctl migrate");
		else
			api_reply_error(r, 503, "not-ready", "database check failed: %s",
					PQresultErrorMessage(res));
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
	cJSON *body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "status", "ready");
	cJSON_AddNumberToObject(body, "schema_version", (double)have);
	api_reply_json(r, 200, body);
}

void h_readyz(struct api_req *r)
{
	r->op = dbp_query(r->env->db, "SELECT coalesce(max(version), 0) FROM schema_migrations",
			  0, NULL, readyz_done, r);
}
