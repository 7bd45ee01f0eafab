/* registry_fixture: shared set-up and helpers of the registry tests (see the header). */
#include "registry_fixture.h"

#include <libpq-fe.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/upn.h"

char rg_url[1024];
struct th_daemon rg_d;
char k_admin[128], k_home[128], k_pru[128], k_other[128];
struct th_resp R;
static bool have_resp;

long call(const char *method, const char *path, const char *token, const char *fmt, ...)
{
	static char body[128 * 1024];
	if (fmt != NULL) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(body, sizeof body, fmt, ap);
		va_end(ap);
	}
	if (have_resp)
		th_resp_free(&R);
	th_api(&rg_d, method, path, token, fmt ? body : NULL, NULL, &R);
	have_resp = true;
	return R.status;
}

const char *q(const char *fmt, ...)
{
	static char ring[16][512];
	static unsigned next;
	char sql[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof sql, fmt, ap);
	va_end(ap);
	PGconn *c = PQconnectdb(rg_url);
	ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
	PGresult *res = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql,
		      PQresultErrorMessage(res));
	ck_assert_msg(PQntuples(res) == 1, "%s: %d rows", sql, PQntuples(res));
	char *out = ring[next++ % 16];
	snprintf(out, 512, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	PQfinish(c);
	return out;
}

long qnum(const char *sql)
{
	return atol(q("%s", sql));
}

const char *jstr(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Asserts the last response is a problem with this status and slug. */
void expect_problem(long status, const char *slug)
{
	th_assert_problem(&R, status);
	char type[96];
	snprintf(type, sizeof type, "/problems/%s", slug);
	ck_assert_msg(strcmp(jstr(R.json, "type"), type) == 0, "want %s, got %s", type, R.body);
}

/* True if the last problem names this JSON pointer. */
bool has_pointer(const char *pointer)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(R.json, "errors"))
	{
		const char *p = jstr(e, "pointer");
		if (p != NULL && strcmp(p, pointer) == 0)
			return true;
	}
	return false;
}

void expect_status(long status)
{
	ck_assert_msg(R.status == status, "want %ld, got %ld: %s", status, R.status, R.body);
}

/* A valid UPN with serial n (LA 801, establishment 2000, year 05). */
void make_upn(int n, char out[14])
{
	snprintf(out, 14, "A801200005%03u", (unsigned)n % 1000u);
	char want = 'A';
	if (upn_validate(out, &want) == UPN_BAD_CHECK)
		out[0] = want;
	ck_assert_int_eq(upn_validate(out, NULL), UPN_OK);
}

void school(const char *urn, const char *kind)
{
	ck_assert_int_eq(call("POST", "/v1/schools", k_admin,
			      "{\"urn\":\"%s\",\"name\":\"School %s\",\"kind\":\"%s\"}", urn, urn,
			      kind),
			 201);
}

void pupil(const char *upn)
{
	long s = call("POST", "/v1/pupils", k_admin,
		      "{\"upn\":\"%s\",\"given_name\":\"Ada\",\"family_name\":\"Lovelace\","
		      "\"date_of_birth\":\"2012-12-10\"}",
		      upn);
	ck_assert_msg(s == 201 || s == 200, "%s", R.body);
}

/* Creates a registration as key; returns its id (asserting 201). A school key's
 * subsidiary is then pending (see confirm). */
long reg(const char *token, const char *upn, const char *urn, const char *role,
		const char *start, const char *end, const char *schedule)
{
	char end_part[64] = "", sched_part[256] = "";
	if (end != NULL)
		snprintf(end_part, sizeof end_part, ",\"end_date\":\"%s\"", end);
	if (schedule != NULL)
		snprintf(sched_part, sizeof sched_part, ",\"schedule\":%s", schedule);
	/* A school key proves it knows the pupil (every pupil() is Ada Lovelace). */
	const char *who = token == k_admin ? ""
					   : ",\"given_name\":\"Ada\",\"family_name\":\"Lovelace\","
					     "\"date_of_birth\":\"2012-12-10\"";
	call("POST", "/v1/registrations", token,
	     "{\"upn\":\"%s\",\"urn\":\"%s\",\"role\":\"%s\",\"start_date\":\"%s\"%s%s%s}", upn,
	     urn, role, start, end_part, sched_part, who);
	expect_status(201);
	return (long)cJSON_GetObjectItemCaseSensitive(R.json, "id")->valuedouble;
}

void confirm(long id, const char *token)
{
	char path[80];
	snprintf(path, sizeof path, "/v1/registrations/%ld/confirm", id);
	call("POST", path, token, NULL);
	expect_status(200);
	ck_assert_str_eq(jstr(R.json, "status"), "in_force");
}

const char *day(int n)
{
	return q("SELECT dualreg_today() + %d", n);
}

/* The latest weekday in [today - a, today - b] (a > b >= 0, a - b >= 6). */
const char *weekday_between(int a, int b)
{
	return q("SELECT max(x)::date FROM generate_series(dualreg_today() - %d, "
		 "dualreg_today() - %d, interval '1 day') x WHERE extract(isodow FROM x) < 6",
		 a, b);
}

void rg_setup(void)
{
	have_resp = false;
	th_db_create_migrated(rg_url, sizeof rg_url);
	th_daemon_start(&rg_d, rg_url, NULL, false);
	th_key_create(rg_url, NULL, k_admin, sizeof k_admin);
	school(HOME, "mainstream");
	school(PRU, "pru");
	school(OTHER, "mainstream");
	th_key_create(rg_url, HOME, k_home, sizeof k_home);
	th_key_create(rg_url, PRU, k_pru, sizeof k_pru);
	th_key_create(rg_url, OTHER, k_other, sizeof k_other);
}

void rg_teardown(void)
{
	if (have_resp)
		th_resp_free(&R);
	have_resp = false;
	if (rg_d.pid > 0)
		th_daemon_stop(&rg_d, SIGKILL);
}
