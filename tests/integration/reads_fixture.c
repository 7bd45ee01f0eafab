/* reads_fixture: shared set-up and helpers of the reads and changes tests (see the header). */
#include "reads_fixture.h"

#include <libpq-fe.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char rd_url[1024];
struct th_daemon rd_d;
char admin[64], k1[64], k2[64], k3[64];
/* mon..sat of the previous week, the registrations' start, a day before it */
char mon[11], tue[11], wed[11], thu[11], fri[11], sat[11], start[11], before[11];
char today[11];

/* First value of a one-row query (blocking, test side). */
static void q1(const char *sql, char *out, size_t len)
{
	PGconn *c = PQconnectdb(rd_url);
	ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
	PGresult *r = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "%s: %s", sql,
		      PQresultErrorMessage(r));
	snprintf(out, len, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
}

static void day_at(int offset, char out[11])
{
	char sql[160];
	snprintf(sql, sizeof sql,
		 "SELECT (date_trunc('week', dualreg_today())::date - 7 + %d)::text", offset);
	q1(sql, out, 11);
}

static void fixtures(void)
{
	day_at(0, mon);
	day_at(1, tue);
	day_at(2, wed);
	day_at(3, thu);
	day_at(4, fri);
	day_at(5, sat);
	day_at(-30, start);
	day_at(-40, before);
	q1("SELECT dualreg_today()::text", today, sizeof today);
	char sql[6000];
	snprintf(sql, sizeof sql,
		 "INSERT INTO schools (urn, name, kind) VALUES ('100001', 'Home High', "
		 "'mainstream'), ('100002', 'Park PRU', 'pru'), ('100003', 'Other Academy', "
		 "'mainstream');"
		 "INSERT INTO school_closures VALUES ('100001', '%s', '%s', 'training day');"
		 "INSERT INTO pupils VALUES ('" P1 "', 'Ann', 'Able', '2012-01-01'),"
		 " ('" P2 "', 'Ben', 'Aardvark', '2012-02-02'),"
		 " ('" P3 "', 'Cat', 'Other', '2012-03-03');"
		 "INSERT INTO registrations (upn, urn, role, start_date) VALUES"
		 " ('" P1 "', '100001', 'main', '%s'), ('" P1 "', '100002', 'subsidiary', '%s'),"
		 " ('" P2 "', '100001', 'main', '%s'), ('" P3 "', '100003', 'main', '%s');"
		 "INSERT INTO registration_schedules SELECT id, start_date, 143 FROM registrations"
		 " WHERE role = 'subsidiary';"
		 "SELECT dualreg_emit('registration.created', '" P1 "', ARRAY['100001','100002'],"
		 " '{\"upn\":\"" P1 "\"}');"
		 "SELECT dualreg_emit('registration.created', '" P3 "', ARRAY['100003'],"
		 " '{\"upn\":\"" P3 "\"}');"
		 "SELECT dualreg_derive_d('" P1 "', '%s', '%s');"
		 "INSERT INTO marks (upn, urn, date, session, code, minutes_late, source) VALUES"
		 " ('" P1 "', '100002', '%s', 'AM', '/', NULL, 'api'),"
		 " ('" P1 "', '100002', '%s', 'PM', 'V', NULL, 'api'),"
		 " ('" P1 "', '100001', '%s', 'PM', '/', NULL, 'api'),"
		 " ('" P1 "', '100002', '%s', 'AM', 'I', NULL, 'api'),"
		 " ('" P1 "', '100002', '%s', 'PM', 'N', NULL, 'api'),"
		 " ('" P1 "', '100001', '%s', 'PM', 'L', 10, 'api'),"
		 " ('" P1 "', '100001', '%s', 'AM', 'G', NULL, 'api'),"
		 " ('" P1 "', '100002', '%s', 'PM', '/', NULL, 'api')"
		 " ON CONFLICT (upn, date, session, urn) DO UPDATE SET code = EXCLUDED.code,"
		 " source = EXCLUDED.source, minutes_late = EXCLUDED.minutes_late;"
		 "SELECT dualreg_emit('mark.recorded', '" P1 "', ARRAY['100001','100002'],"
		 " jsonb_build_object('upn', '" P1 "', 'urn', '100002', 'date', '%s', 'session', 'AM',"
		 " 'code', '/', 'previous_code', NULL));"
		 "SELECT dualreg_emit('mark.conflict', '" P1 "', ARRAY['100001','100002'],"
		 " jsonb_build_object('upn', '" P1 "', 'date', '%s', 'session', 'PM'));",
		 fri, fri, start, start, start, start, mon, fri, mon, mon, mon, tue, tue, wed, thu,
		 thu, mon, mon);
	th_sql(rd_url, sql);
}

void rd_setup(void)
{
	th_db_create_migrated(rd_url, sizeof rd_url);
	fixtures();
	/* Today's derived D marks, as the daemon's start-up run would make them: made
	 * here, before any test reads the feed, so that run finds nothing to change. */
	th_sql(rd_url, "SELECT dualreg_derive_day(dualreg_today())");
	th_key_create(rd_url, NULL, admin, sizeof admin);
	th_key_create(rd_url, "100001", k1, sizeof k1);
	th_key_create(rd_url, "100002", k2, sizeof k2);
	th_key_create(rd_url, "100003", k3, sizeof k3);
}

void rd_teardown(void)
{
	if (rd_d.pid > 0)
		th_daemon_stop(&rd_d, SIGKILL);
}

void start_daemon(void)
{
	th_daemon_start(&rd_d, rd_url, "[server]\nrequest_timeout = 1s\n", false);
}

void get(const char *token, const char *path, struct th_resp *r)
{
	th_api(&rd_d, "GET", path, token, NULL, NULL, r);
}

cJSON *item(const cJSON *o, const char *k)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	ck_assert_msg(v != NULL, "no \"%s\"", k);
	return v;
}

const char *str(const cJSON *o, const char *k)
{
	cJSON *v = item(o, k);
	ck_assert_msg(cJSON_IsString(v), "\"%s\" is not a string", k);
	return v->valuestring;
}

double num(const cJSON *o, const char *k)
{
	cJSON *v = item(o, k);
	ck_assert_msg(cJSON_IsNumber(v), "\"%s\" is not a number", k);
	return v->valuedouble;
}

void assert_slug(const struct th_resp *r, long status, const char *slug,
		 const char *pointer)
{
	th_assert_problem(r, status);
	char type[96];
	snprintf(type, sizeof type, "/problems/%s", slug);
	ck_assert_msg(strcmp(str(r->json, "type"), type) == 0, "%s", r->body);
	if (pointer != NULL) {
		cJSON *errs = item(r->json, "errors");
		bool found = false;
		cJSON *e;
		cJSON_ArrayForEach(e, errs) found |= strcmp(str(e, "pointer"), pointer) == 0;
		ck_assert_msg(found, "no error at %s: %s", pointer, r->body);
	}
}

int count_sql(const char *sql)
{
	char v[32];
	q1(sql, v, sizeof v);
	return atoi(v);
}
