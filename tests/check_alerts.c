/*
 * alerts: same-day safeguarding alerts in SQL, with the clock pinned through
 * dualreg.now so that register close times can be crossed without waiting.
 * attendance.missing after close + grace, once, never on closures or weekends or when
 * marked; attendance.absent only for an absence at the expected school, once per
 * absence, never for derived marks.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "suites.h"

static char url[1024];

/* Runs statements (clock pinned to `now`) and returns the last result's first value. */
static long at(const char *now, const char *sql)
{
	PGconn *c = PQconnectdb(url);
	ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
	char set[128];
	snprintf(set, sizeof set, "SET dualreg.now = '%s'", now);
	PQclear(PQexec(c, set));
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	ck_assert_msg(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK, "%s: %s", sql,
		      PQresultErrorMessage(r));
	long v = st == PGRES_TUPLES_OK && PQntuples(r) > 0 ? atol(PQgetvalue(r, 0, 0)) : 0;
	PQclear(r);
	PQfinish(c);
	return v;
}

static void setup(void)
{
	th_db_create_migrated(url, sizeof url);
	/* PRU Monday-Wednesday, home Thursday-Friday; 2026-11-25 is a Wednesday. */
	th_sql(url,
	       "INSERT INTO schools (urn, name, kind, am_close, pm_close) VALUES "
	       "('100001', 'Home', 'mainstream', '09:00', '13:30'), "
	       "('100002', 'PRU', 'pru', '09:15', '13:45');"
	       "INSERT INTO pupils VALUES ('B801200005001', 'Ann', 'Bell', '2012-01-01');"
	       "INSERT INTO registrations (upn, urn, role, start_date) VALUES "
	       "('B801200005001', '100001', 'main', '2026-09-01'),"
	       "('B801200005001', '100002', 'subsidiary', '2026-11-02');"
	       "INSERT INTO registration_schedules SELECT id, start_date, 63 FROM registrations "
	       "WHERE role = 'subsidiary'");
}

static long events(const char *type)
{
	char sql[200];
	snprintf(sql, sizeof sql, "SELECT count(*) FROM events WHERE type = '%s'", type);
	return at("2026-11-25 12:00:00+00", sql);
}

START_TEST(test_missing_after_close_and_grace)
{
	const char *run = "SELECT dualreg_missing_alerts('20 minutes')";
	ck_assert_int_eq(at("2026-11-25 09:30:00+00", run), 0); /* closes 09:15 + 20 min */
	ck_assert_int_eq(at("2026-11-25 09:36:00+00", run), 1);
	ck_assert_int_eq(at("2026-11-25 09:40:00+00", run), 0); /* once */
	ck_assert_int_eq(at("2026-11-25 14:10:00+00", run), 1); /* PM closes 13:45 */
	ck_assert_int_eq(events("attendance.missing"), 2);
	/* The alert goes to the school that does not expect the pupil (home). */
	ck_assert_int_eq(at("2026-11-25 15:00:00+00",
			    "SELECT count(*) FROM events WHERE type = 'attendance.missing' "
			    "AND urns = ARRAY['100001'] AND data->>'urn' = '100002'"),
			 2);
	/* Thursday the pupil is expected at home, whose register closes at 09:00. */
	ck_assert_int_eq(at("2026-11-26 09:25:00+00", run), 1);
	ck_assert_int_eq(at("2026-11-26 09:30:00+00",
			    "SELECT count(*) FROM events WHERE data->>'urn' = '100001' AND "
			    "urns = ARRAY['100002']"),
			 1);
}
END_TEST

START_TEST(test_missing_not_when_marked_closed_or_weekend)
{
	const char *run = "SELECT dualreg_missing_alerts('0 minutes')";
	th_sql(url, "INSERT INTO marks (upn, urn, date, session, code, source) VALUES "
		    "('B801200005001', '100002', '2026-11-25', 'AM', '/', 'api')");
	ck_assert_int_eq(at("2026-11-25 10:00:00+00", run), 0);
	th_sql(url, "INSERT INTO school_closures VALUES ('100002', '2026-11-25', '2026-11-25', "
		    "'training day')");
	ck_assert_int_eq(at("2026-11-25 16:00:00+00", run), 0); /* PM: closed */
	ck_assert_int_eq(at("2026-11-28 16:00:00+00", run), 0); /* Saturday */
	ck_assert_int_eq(events("attendance.missing"), 0);
}
END_TEST

START_TEST(test_absent_at_expected_school)
{
	const char *ins = "INSERT INTO marks (upn, urn, date, session, code, source) VALUES ";
	char sql[300];
	/* Present at the PRU: no alert. */
	snprintf(sql, sizeof sql, "%s('B801200005001', '100002', '2026-11-25', 'AM', '/', 'api')", ins);
	at("2026-11-25 12:00:00+00", sql);
	ck_assert_int_eq(events("attendance.absent"), 0);
	/* Absent at the PRU in the afternoon: the home school is told. */
	snprintf(sql, sizeof sql, "%s('B801200005001', '100002', '2026-11-25', 'PM', 'N', 'api')", ins);
	at("2026-11-25 14:00:00+00", sql);
	ck_assert_int_eq(events("attendance.absent"), 1);
	ck_assert_int_eq(at("2026-11-25 14:00:00+00",
			    "SELECT count(*) FROM events WHERE type = 'attendance.absent' AND "
			    "urns = ARRAY['100001'] AND data->>'code' = 'N' AND "
			    "data->>'category' = 'unauthorised'"),
			 1);
	/* N amended to I (still an absence): no second alert. */
	at("2026-11-25 15:00:00+00", "UPDATE marks SET code = 'I' WHERE session = 'PM'");
	ck_assert_int_eq(events("attendance.absent"), 1);
	/* Present amended to absent: a new absence. */
	at("2026-11-25 15:00:00+00", "UPDATE marks SET code = 'M' WHERE session = 'AM'");
	ck_assert_int_eq(events("attendance.absent"), 2);
	/* An absence recorded at the school that does not expect the pupil, or a derived
	 * mark, raises nothing. */
	snprintf(sql, sizeof sql, "%s('B801200005001', '100001', '2026-11-25', 'AM', 'O', 'api')", ins);
	at("2026-11-25 15:00:00+00", sql);
	snprintf(sql, sizeof sql, "%s('B801200005001', '100001', '2026-11-26', 'AM', 'D', 'derived')",
		 ins);
	at("2026-11-26 15:00:00+00", sql);
	ck_assert_int_eq(events("attendance.absent"), 2);
}
END_TEST

Suite *alerts_suite(void)
{
	Suite *s = suite_create("alerts");
	TCase *tc = tcase_create("sql");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_missing_after_close_and_grace);
	tcase_add_test(tc, test_missing_not_when_marked_closed_or_weekend);
	tcase_add_test(tc, test_absent_at_expected_school);
	suite_add_tcase(s, tc);
	return s;
}
