/*
 * fuzz_marks: the body of POST /v1/marks as the handler reads it: api_json_parse (the
 * checks of every body) and then marks_envelope_check (shape, types, the 1000-mark
 * limit). An accepted batch holds only objects with the required members as strings,
 * and its JSON text (what goes to the database) is UTF-8; a refusal is a problem.
 */
#include "../../api/handlers.h"
#include "../../api/json_fields.h"
#include "fuzz.h"

static const char *const required[] = {"upn", "urn", "date", "session", "code"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int parse_statuses[] = {400, 422, 0};
	static const int envelope_statuses[] = {413, 422, 0};
	cJSON *problem = NULL;
	cJSON *body = api_json_parse((const char *)data, size, &problem);
	if (body == NULL) {
		fuzz_check_problem(problem, parse_statuses);
		return 0;
	}
	FUZZ_ASSERT(problem == NULL && cJSON_IsObject(body));
	FUZZ_ASSERT(fuzz_names_unique(body));
	cJSON *marks = marks_envelope_check(body, &problem);
	if (marks == NULL) {
		fuzz_check_problem(problem, envelope_statuses);
		cJSON_Delete(body);
		return 0;
	}
	FUZZ_ASSERT(problem == NULL && cJSON_IsArray(marks));
	FUZZ_ASSERT(cJSON_GetArraySize(marks) <= 1000);
	const cJSON *item;
	cJSON_ArrayForEach(item, marks)
	{
		FUZZ_ASSERT(cJSON_IsObject(item));
		for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
			FUZZ_ASSERT(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(item, required[i])));
	}
	char *text = cJSON_PrintUnformatted(marks);
	FUZZ_ASSERT(text != NULL && fuzz_utf8(text));
	cJSON_free(text);
	cJSON_Delete(body);
	return 0;
}
