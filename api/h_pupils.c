/*
 * pupils: the pupils dualreg knows, by UPN.
 *  POST /v1/pupils        any key: 201 new; 200 when the UPN exists with the same data;
 *                         409 pupil-exists when it exists with other data
 *  GET  /v1/pupils/{upn}  admin, or a school key whose school has (or had) the pupil on
 *                         roll; otherwise 404, so a school cannot probe for pupils
 * A school key that creates a pupil sees it with GET only once it registers the pupil.
 */
#include <string.h>

#include "dualreg/upn.h"
#include "handlers.h"
#include "json_fields.h"
#include "sql_reply.h"

#define PUPIL_NAME_MAX 100

void h_pupils_create(struct api_req *r)
{
	static const char *const known[] = {"upn", "given_name", "family_name", "date_of_birth",
					    NULL};
	cJSON *body = api_json_body(r);
	if (body == NULL)
		return;
	struct jf j;
	jf_init(&j);
	jf_only(&j, body, "", known);
	const char *upn = jf_upn(&j, body, "", "upn", true);
	const char *given = jf_text(&j, body, "", "given_name", true, PUPIL_NAME_MAX);
	const char *family = jf_text(&j, body, "", "family_name", true, PUPIL_NAME_MAX);
	const char *dob = jf_date(&j, body, "", "date_of_birth", true);
	cJSON *problem = jf_take_problem(&j);
	if (problem != NULL) {
		cJSON_Delete(body);
		api_reply_problem(r, problem);
		return;
	}
	const char *params[] = {r->key.admin ? "t" : "f", upn, given, family, dob};
	sql_reply_txn(r,
		      "SELECT status, body FROM dualreg_pupil_create($1::boolean, $2, $3, $4, "
		      "$5::date)",
		      5, params, NULL);
	cJSON_Delete(body);
}

void h_pupil_get(struct api_req *r)
{
	if (upn_validate(r->params.value[0], NULL) != UPN_OK) {
		api_reply_error(r, 404, NULL, "no such pupil");
		return;
	}
	const char *params[] = {r->params.value[0], api_key_scope(r)};
	sql_reply_query(r,
			"SELECT 200, dualreg_pupil_json(p) FROM pupils p "
			"WHERE p.upn = $1 AND dualreg_pupil_visible(p.upn, $2)",
			2, params);
}
