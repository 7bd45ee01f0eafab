/*
 * integrity: the references the database keeps whatever writes to it, checked against a
 * migrated database directly. A mark names an existing school, code and key; an event
 * an existing type; a school, code, key or type that something names cannot be deleted,
 * re-keyed or truncated away; an event's filing under its schools goes with the event.
 * Some are foreign keys, some statement triggers (schema step 026): the guarantee, and
 * the error a client sees (SQLSTATE 23503 with the constraint's name), are the same.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness.h"
#include "../suites.h"

static char url[1024];
static PGconn *conn;

static void setup(void)
{
	th_db_create_migrated(url, sizeof url);
	conn = PQconnectdb(url);
	ck_assert_msg(PQstatus(conn) == CONNECTION_OK, "%s", PQerrorMessage(conn));
	th_sql(url, "INSERT INTO schools (urn, name, kind) VALUES ('100001', 'Home', 'mainstream'), "
		    "('100002', 'PRU', 'pru'), ('100009', 'Unused', 'mainstream')");
	th_sql(url, "INSERT INTO pupils (upn, given_name, family_name, date_of_birth) VALUES "
		    "('A801200005001', 'Ann', 'Able', '2012-01-01')");
	th_sql(url, "INSERT INTO api_keys (token_hash, prefix, name, role, urn) VALUES "
		    "('integrity-key', 'drk_a', 'k', 'school', '100001'), "
		    "('integrity-unused', 'drk_b', 'u', 'school', '100001')");
	th_sql(url, "INSERT INTO marks (upn, urn, date, session, code, source, key_id) "
		    "SELECT 'A801200005001', '100001', '2026-11-02', 'AM', '/', 'api', id "
		    "FROM api_keys WHERE token_hash = 'integrity-key'");
	/* the PRU is named by a mark alone (no key, no registration) */
	th_sql(url, "INSERT INTO marks (upn, urn, date, session, code, source) VALUES "
		    "('A801200005001', '100002', '2026-11-02', 'AM', 'D', 'derived')");
}

static void teardown(void)
{
	PQfinish(conn);
	conn = NULL;
}

/* Runs sql, which must fail with SQLSTATE 23503 naming constraint (NULL: any). */
static void refused(const char *sql, const char *constraint)
{
	PGresult *r = PQexec(conn, sql);
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	const char *name = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
	ck_assert_msg(state != NULL && strcmp(state, "23503") == 0, "%s: %s %s", sql,
		      state ? state : "(no error)", PQresultErrorMessage(r));
	if (constraint != NULL)
		ck_assert_msg(name != NULL && strcmp(name, constraint) == 0, "%s: constraint %s", sql,
			      name ? name : "(none)");
	PQclear(r);
}

static long count(const char *sql)
{
	PGresult *r = PQexec(conn, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
	long n = atol(PQgetvalue(r, 0, 0));
	PQclear(r);
	return n;
}

static void ok(const char *sql)
{
	PGresult *r = PQexec(conn, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
		      "%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
}

START_TEST(test_a_mark_names_what_exists)
{
	refused("INSERT INTO marks (upn, urn, date, session, code, source) VALUES "
		"('A801200005001', '999999', '2026-11-02', 'PM', '/', 'api')",
		"marks_urn_fkey");
	refused("INSERT INTO marks (upn, urn, date, session, code, source) VALUES "
		"('A801200005001', '100001', '2026-11-02', 'PM', 'QQ', 'api')",
		"marks_code_fkey");
	refused("INSERT INTO marks (upn, urn, date, session, code, source, key_id) VALUES "
		"('A801200005001', '100001', '2026-11-02', 'PM', '/', 'api', 987654321)",
		"marks_key_id_fkey");
	refused("INSERT INTO marks (upn, urn, date, session, code, source) VALUES "
		"('Z999999999999', '100001', '2026-11-02', 'PM', '/', 'api')",
		"marks_upn_fkey");
	/* an update to a code or school that does not exist, in a set of rows */
	refused("UPDATE marks SET code = 'QQ' WHERE upn = 'A801200005001'", "marks_code_fkey");
	refused("UPDATE marks SET urn = '999999' WHERE urn = '100001'", "marks_urn_fkey");
	/* nothing was written */
	ck_assert_int_eq(count("SELECT count(*) FROM marks"), 2);
	ck_assert_int_eq(count("SELECT count(*) FROM marks WHERE code = '/' AND urn = '100001'"), 1);
	/* and what exists is accepted, many rows at once */
	ok("INSERT INTO marks (upn, urn, date, session, code, source) VALUES "
	   "('A801200005001', '100001', '2026-11-03', 'AM', 'L', 'api'), "
	   "('A801200005001', '100002', '2026-11-03', 'AM', 'D', 'derived')");
	ck_assert_int_eq(count("SELECT count(*) FROM marks"), 4);
}
END_TEST

START_TEST(test_what_a_mark_names_stays)
{
	refused("DELETE FROM schools WHERE urn = '100002'", "marks_urn_fkey");
	refused("UPDATE schools SET urn = '100008' WHERE urn = '100002'", "marks_urn_fkey");
	refused("DELETE FROM attendance_codes WHERE code = '/'", "marks_code_fkey");
	refused("UPDATE attendance_codes SET code = 'P2' WHERE code = '/'", "marks_code_fkey");
	refused("DELETE FROM api_keys WHERE token_hash = 'integrity-key'", "marks_key_id_fkey");
	refused("TRUNCATE attendance_codes CASCADE", NULL);
	ck_assert_int_eq(count("SELECT count(*) FROM schools WHERE urn = '100002'"), 1);
	ck_assert_int_eq(count("SELECT count(*) FROM attendance_codes WHERE code = '/'"), 1);
	ck_assert_int_eq(count("SELECT count(*) FROM api_keys WHERE token_hash = 'integrity-key'"),
			 1);
	/* what no mark names may go; renaming a school (not its key) is an update like any */
	ok("DELETE FROM api_keys WHERE token_hash = 'integrity-unused'");
	ok("DELETE FROM schools WHERE urn = '100009'");
	ok("UPDATE schools SET name = 'Home School' WHERE urn = '100001'");
}
END_TEST

START_TEST(test_events_name_a_type_and_take_their_filing)
{
	refused("INSERT INTO events (type, upn, urns, data) VALUES "
		"('mark.unknown', NULL, ARRAY['100001'], '{}')",
		"events_type_fkey");
	ok("SELECT dualreg_emit('mark.recorded', 'A801200005001', ARRAY['100001', '100002'], "
	   "'{}'::jsonb)");
	ck_assert_int_eq(count("SELECT count(*) FROM event_schools"), 2);
	refused("DELETE FROM event_types WHERE type = 'mark.recorded'", "events_type_fkey");
	refused("TRUNCATE event_types CASCADE", NULL);
	/* deleting the event deletes its filing; emptying the log empties the filing */
	ok("DELETE FROM deliveries");
	ok("DELETE FROM events");
	ck_assert_int_eq(count("SELECT count(*) FROM event_schools"), 0);
	ok("SELECT dualreg_emit('mark.recorded', 'A801200005001', ARRAY['100001'], '{}'::jsonb)");
	ck_assert_int_eq(count("SELECT count(*) FROM event_schools"), 1);
	ok("TRUNCATE events CASCADE");
	ck_assert_int_eq(count("SELECT count(*) FROM event_schools"), 0);
}
END_TEST

Suite *integrity_suite(void)
{
	Suite *s = suite_create("integrity");
	TCase *tc = tcase_create("references");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_a_mark_names_what_exists);
	tcase_add_test(tc, test_what_a_mark_names_stays);
	tcase_add_test(tc, test_events_name_a_type_and_take_their_filing);
	suite_add_tcase(s, tc);
	return s;
}
