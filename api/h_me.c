/*
 * me: the caller's own identity, so that an integrator can check which key it is using
 * and what it may do. GET /v1/me needs no database work: authentication already filled
 * r->key.
 *   200 {"key": {"id", "name", "role": "admin"|"school", "urn": "123456"|null}}
 */
#include "handlers.h"

void h_me(struct api_req *r)
{
	cJSON *body = cJSON_CreateObject();
	cJSON *key = cJSON_AddObjectToObject(body, "key");
	cJSON_AddNumberToObject(key, "id", (double)r->key.id);
	cJSON_AddStringToObject(key, "name", r->key.name);
	cJSON_AddStringToObject(key, "role", r->key.admin ? "admin" : "school");
	if (r->key.admin)
		cJSON_AddNullToObject(key, "urn");
	else
		cJSON_AddStringToObject(key, "urn", r->key.urn);
	api_reply_json(r, 200, body);
}
