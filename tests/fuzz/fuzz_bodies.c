/*
 * fuzz_bodies: the JSON bodies of the registry and webhook routes. One input is parsed
 * as every body is (api_json_parse) and then read by the json_fields readers in the
 * sequence of each handler: schools (create, patch with the feed settings), closures,
 * pupils, registrations (create, patch, the decision bodies) and subscriptions (the URL
 * and event list). A value a reader returns is what it promises (a date that parses, a
 * UPN with its check letter, text of UTF-8 without control characters); whatever is
 * refused comes back as one problem body of valid UTF-8.
 */
#include "../../api/json_fields.h"
#include "dualreg/calendar.h"
#include "dualreg/endpoint.h"
#include "dualreg/schedule.h"
#include "dualreg/upn.h"
#include "fuzz.h"

static const char *const kinds[] = {"mainstream", "pru", "ap", "special", NULL};
static const char *const roles[] = {"main", "subsidiary", NULL};

/* Takes the collected problem, if any, and checks it. */
static void settle(struct jf *j)
{
	static const int statuses[] = {422, 0};
	cJSON *p = jf_take_problem(j);
	if (p != NULL)
		fuzz_check_problem(p, statuses);
	FUZZ_ASSERT(j->problem == NULL && j->nerrors == 0);
}

static void check_text(const char *s, size_t maxlen)
{
	if (s == NULL)
		return;
	size_t n = utf8_length(s);
	FUZZ_ASSERT(n != UTF8_INVALID && n >= 1 && n <= maxlen);
	for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++)
		FUZZ_ASSERT(*c >= 0x20 && *c != 0x7f);
}

static void check_date(const char *s)
{
	struct cal_date d;
	FUZZ_ASSERT(s == NULL || cal_parse_date(s, &d));
}

static void check_digits(const char *s, size_t n)
{
	FUZZ_ASSERT(s == NULL || (strlen(s) == n && strspn(s, "0123456789") == n));
}

static void register_close(struct jf *j, const cJSON *body)
{
	static const char *const known[] = {"am", "pm", NULL};
	const cJSON *rc = jf_object(j, body, "", "register_close", false);
	if (rc == NULL)
		return;
	jf_only(j, rc, "/register_close", known);
	const char *am = jf_hhmm(j, rc, "/register_close", "am", false);
	const char *pm = jf_hhmm(j, rc, "/register_close", "pm", false);
	FUZZ_ASSERT(am == NULL || cal_parse_hhmm(am) >= 0);
	FUZZ_ASSERT(pm == NULL || cal_parse_hhmm(pm) >= 0);
}

static void schools(const cJSON *body)
{
	static const char *const create[] = {"urn", "laestab", "name", "kind", "register_close",
					     NULL};
	static const char *const patch[] = {"name",	  "laestab",    "kind", "register_close",
					    "pull_url", "pull_token", "pull_interval", NULL};
	struct jf j;
	jf_init(&j);
	jf_only(&j, body, "", create);
	check_digits(jf_digits(&j, body, "", "urn", true, 6, "invalid-urn"), 6);
	check_digits(jf_digits(&j, body, "", "laestab", false, 7, "invalid-laestab"), 7);
	check_text(jf_text(&j, body, "", "name", true, 200), 200);
	FUZZ_ASSERT(jf_enum(&j, body, "", "kind", true, kinds) != NULL || j.problem != NULL);
	register_close(&j, body);
	settle(&j);

	jf_only(&j, body, "", patch);
	if (jf_is_null(body, "name"))
		jf_fail(&j, "invalid-field", "", "name", "name cannot be removed");
	check_text(jf_text(&j, body, "", "name", false, 200), 200);
	jf_enum(&j, body, "", "kind", false, kinds);
	register_close(&j, body);
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(body, "pull_url");
	if (cJSON_IsString(u) && strlen(u->valuestring) <= 2000) {
		char host[256], why[200];
		for (int allow_http = 0; allow_http < 2; allow_http++)
			if (endpoint_check_url(u->valuestring, allow_http, host, sizeof host, why,
					       sizeof why) != 0)
				jf_fail(&j, "invalid-url", "", "pull_url", "%s", why);
			else
				FUZZ_ASSERT(host[0] != '\0' && strlen(host) < sizeof host);
	}
	long long seconds = -1;
	if (jf_int(&j, body, "", "pull_interval", false, 10, 86400, &seconds))
		FUZZ_ASSERT(seconds >= 10 && seconds <= 86400);
	settle(&j);
}

static void closures(const cJSON *body)
{
	static const char *const known[] = {"from", "to", "reason", NULL};
	struct jf j;
	jf_init(&j);
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(body, "closures");
	int i = 0;
	const cJSON *items = cJSON_IsArray(list) ? list : NULL;
	const cJSON *c;
	cJSON_ArrayForEach(c, items)
	{
		char base[32];
		snprintf(base, sizeof base, "/closures/%d", i++);
		if (!cJSON_IsObject(c)) {
			jf_fail(&j, "invalid-closure", base, NULL, "each closure is an object");
			continue;
		}
		jf_only(&j, c, base, known);
		check_date(jf_date(&j, c, base, "from", true));
		check_date(jf_date(&j, c, base, "to", true));
		check_text(jf_text(&j, c, base, "reason", false, 200), 200);
	}
	settle(&j);
}

static void pupils(const cJSON *body)
{
	static const char *const known[] = {"upn", "given_name", "family_name", "date_of_birth",
					    NULL};
	struct jf j;
	jf_init(&j);
	jf_only(&j, body, "", known);
	const char *upn = jf_upn(&j, body, "", "upn", true);
	FUZZ_ASSERT(upn == NULL || upn_validate(upn, NULL) == UPN_OK);
	check_text(jf_text(&j, body, "", "given_name", true, 100), 100);
	check_text(jf_text(&j, body, "", "family_name", true, 100), 100);
	check_date(jf_date(&j, body, "", "date_of_birth", true));
	settle(&j);
}

static void registrations(const cJSON *body)
{
	static const char *const known[] = {"upn",	  "urn",	 "role",
					    "start_date", "end_date",	 "schedule",
					    "given_name", "family_name", "date_of_birth",
					    NULL};
	static const char *const patch[] = {"end_date", "schedule", "effective_from", NULL};
	static const char *const decision[] = {"reason", NULL};
	struct jf j;
	jf_init(&j);
	jf_only(&j, body, "", known);
	const char *upn = jf_upn(&j, body, "", "upn", true);
	FUZZ_ASSERT(upn == NULL || upn_validate(upn, NULL) == UPN_OK);
	check_digits(jf_digits(&j, body, "", "urn", true, 6, "invalid-urn"), 6);
	const char *role = jf_enum(&j, body, "", "role", true, roles);
	FUZZ_ASSERT(role == NULL || role == roles[0] || role == roles[1]);
	check_date(jf_date(&j, body, "", "start_date", true));
	check_date(jf_date(&j, body, "", "end_date", false));
	check_text(jf_text(&j, body, "", "given_name", false, 100), 100);
	check_text(jf_text(&j, body, "", "family_name", false, 100), 100);
	check_date(jf_date(&j, body, "", "date_of_birth", false));
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(body, "schedule");
	if (s != NULL && !cJSON_IsNull(s)) {
		char where[64], why[160], base[80];
		unsigned mask = 0;
		if (schedule_parse(s, &mask, where, sizeof where, why, sizeof why) != 0) {
			snprintf(base, sizeof base, "/schedule%s", where);
			jf_fail(&j, "invalid-schedule", base, NULL, "schedule: %s", why);
		} else {
			FUZZ_ASSERT(mask < (1u << 10));
		}
	}
	settle(&j);

	jf_only(&j, body, "", patch);
	check_date(jf_date(&j, body, "", "end_date", false));
	check_date(jf_date(&j, body, "", "effective_from", false));
	settle(&j);

	jf_only(&j, body, "", decision);
	check_text(jf_text(&j, body, "", "reason", false, 500), 500);
	settle(&j);
}

static void subscriptions(const cJSON *body)
{
	const cJSON *url = cJSON_GetObjectItemCaseSensitive(body, "url");
	if (cJSON_IsString(url) && strlen(url->valuestring) <= 2000) {
		char host[256], why[200];
		if (endpoint_check_url(url->valuestring, true, host, sizeof host, why, sizeof why) ==
		    0)
			FUZZ_ASSERT(host[0] != '\0');
		else
			FUZZ_ASSERT(why[0] != '\0');
	}
	const cJSON *e;
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(body, "events"))
		FUZZ_ASSERT(!cJSON_IsString(e) || fuzz_utf8(e->valuestring));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int statuses[] = {400, 422, 0};
	cJSON *problem = NULL;
	cJSON *body = api_json_parse((const char *)data, size, &problem);
	if (body == NULL) {
		fuzz_check_problem(problem, statuses);
		return 0;
	}
	char pointer[256];
	bool in_name;
	FUZZ_ASSERT(jf_utf8_check(body, pointer, sizeof pointer, &in_name));
	FUZZ_ASSERT(fuzz_names_unique(body));
	schools(body);
	closures(body);
	pupils(body);
	registrations(body);
	subscriptions(body);
	cJSON_Delete(body);
	return 0;
}
