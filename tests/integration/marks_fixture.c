/* marks_fixture: shared set-up and helpers of the marks tests (see the header). */
#include "marks_fixture.h"

#include <libpq-fe.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

char mk_url[1024];
struct th_daemon mk_d;
char key_admin[64], key_home[64], key_pru[64];
char d1[16], d1_prev[16], saturday[16], future[16], mk_today[16];

void q1(const char *sql, char *out, size_t outlen)
{
	PGconn *c = PQconnectdb(mk_url);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	PGresult *r = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "%s: %s", sql,
		      PQresultErrorMessage(r));
	snprintf(out, outlen, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
}

long qn(const char *fmt, ...)
{
	char sql[2048], out[64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof sql, fmt, ap);
	va_end(ap);
	q1(sql, out, sizeof out);
	return strtol(out, NULL, 10);
}

void mk_fixtures(void)
{
	th_db_create_migrated(mk_url, sizeof mk_url);
	q1("SELECT dualreg_today()", mk_today, sizeof mk_today);
	q1("SELECT max(x)::date FROM generate_series(dualreg_today() - 7, dualreg_today() - 1, "
	   "interval '1 day') x WHERE extract(isodow FROM x) < 6",
	   d1, sizeof d1);
	q1("SELECT max(x)::date FROM generate_series(dualreg_today() - 14, dualreg_today() - 1, "
	   "interval '1 day') x WHERE extract(isodow FROM x) = 6",
	   saturday, sizeof saturday);
	q1("SELECT min(x)::date FROM generate_series(dualreg_today() + 1, dualreg_today() + 7, "
	   "interval '1 day') x WHERE extract(isodow FROM x) < 6",
	   future, sizeof future);
	char sql[4096];
	snprintf(sql, sizeof sql, "SELECT max(x)::date FROM generate_series('%s'::date - 7, "
				  "'%s'::date - 1, interval '1 day') x WHERE extract(isodow FROM x) < 6",
		 d1, d1);
	q1(sql, d1_prev, sizeof d1_prev);
	snprintf(sql, sizeof sql,
		 "INSERT INTO schools (urn, name, kind) VALUES ('" HOME "', 'Home', 'mainstream'),"
		 " ('" PRU "', 'PRU', 'pru'), ('" OTHER "', 'Other', 'mainstream');"
		 "INSERT INTO pupils VALUES ('" P1 "', 'A', 'One', '2012-01-01'),"
		 " ('" P2 "', 'B', 'Two', '2012-01-01'), ('" P3 "', 'C', 'Three', '2012-01-01'),"
		 " ('" P4 "', 'D', 'Four', '2012-01-01'), ('" P5 "', 'E', 'Five', '2012-01-01');"
		 "INSERT INTO registrations (upn, urn, role, start_date, end_date) VALUES"
		 " ('" P1 "', '" HOME "', 'main', dualreg_today() - 60, NULL),"
		 " ('" P1 "', '" PRU "', 'subsidiary', dualreg_today() - 30, '%s'),"
		 " ('" P2 "', '" HOME "', 'main', dualreg_today() - 60, NULL),"
		 " ('" P3 "', '" OTHER "', 'main', '%s'::date + 1, NULL),"
		 " ('" P4 "', '" HOME "', 'main', dualreg_today() - 60, '%s'::date - 1),"
		 " ('" P5 "', '" HOME "', 'main', '2024-01-01', NULL);"
		 "INSERT INTO registration_schedules (registration_id, effective_from, mask)"
		 " SELECT id, start_date, 1 << dualreg_session_bit('%s', 'AM') FROM registrations"
		 " WHERE urn = '" PRU "';",
		 d1, d1, d1, d1);
	th_sql(mk_url, sql);
	th_key_create(mk_url, NULL, key_admin, sizeof key_admin);
	th_key_create(mk_url, HOME, key_home, sizeof key_home);
	th_key_create(mk_url, PRU, key_pru, sizeof key_pru);
}

void mk_setup(void)
{
	mk_fixtures();
	th_daemon_start(&mk_d, mk_url, "[limits]\nrate = 100000\nburst = 100000\n", false);
}

void mk_setup_job(void)
{
	mk_fixtures();
	th_sql(mk_url, "UPDATE registrations SET end_date = NULL WHERE urn = '" PRU "'");
	th_daemon_start(&mk_d, mk_url, NULL, false);
}

void mk_teardown(void)
{
	if (mk_d.pid > 0)
		th_daemon_stop(&mk_d, SIGKILL);
}

const char *mark_item(char *buf, size_t len, const char *upn, const char *urn,
		      const char *date, const char *session, const char *code,
		      const char *extra)
{
	snprintf(buf, len,
		 "{\"upn\":\"%s\",\"urn\":\"%s\",\"date\":\"%s\",\"session\":\"%s\",\"code\":\"%s\"%s}",
		 upn, urn, date, session, code, extra);
	return buf;
}

void post1(const char *token, const char *upn, const char *urn, const char *date,
	   const char *session, const char *code, const char *extra, struct th_resp *r)
{
	char it[1024], body[1200];
	snprintf(body, sizeof body, "{\"marks\":[%s]}",
		 mark_item(it, sizeof it, upn, urn, date, session, code, extra));
	th_api(&mk_d, "POST", "/v1/marks", token, body, NULL, r);
	ck_assert_msg(r->status == 200, "%ld: %s", r->status, r->body);
}

const cJSON *result_at(const struct th_resp *r, int i)
{
	const cJSON *results = cJSON_GetObjectItem(r->json, "results");
	ck_assert_msg(cJSON_IsArray(results), "%s", r->body);
	const cJSON *res = cJSON_GetArrayItem(results, i);
	ck_assert_msg(res != NULL, "no result %d in %s", i, r->body);
	ck_assert_int_eq(cJSON_GetObjectItem(res, "index")->valueint, i);
	return res;
}

const char *status_at(const struct th_resp *r, int i)
{
	return cJSON_GetObjectItem(result_at(r, i), "status")->valuestring;
}

const char *error_at(const struct th_resp *r, int i)
{
	const cJSON *e = cJSON_GetObjectItem(result_at(r, i), "error");
	ck_assert_msg(e != NULL, "result %d has no error: %s", i, r->body);
	ck_assert(cJSON_GetObjectItem(e, "detail")->valuestring[0] != '\0');
	return cJSON_GetObjectItem(e, "type")->valuestring;
}

const char *mark_code_at(const struct th_resp *r, int i)
{
	const cJSON *m = cJSON_GetObjectItem(result_at(r, i), "mark");
	ck_assert_msg(m != NULL, "result %d has no mark: %s", i, r->body);
	return cJSON_GetObjectItem(m, "code")->valuestring;
}

int count_of(const struct th_resp *r, const char *name)
{
	return cJSON_GetObjectItem(cJSON_GetObjectItem(r->json, "counts"), name)->valueint;
}
