/*
 * marks_rules: the marks rule engine's rules, called in SQL. Each rule is broken by a
 * crafted item and answers its error type and detail (dualreg_mark_check, the step of
 * dualreg_ingest_marks that checks a batch before anything is written); the rule about
 * the stored mark is broken through dualreg_ingest_marks. And the lists the database
 * keeps agree with the contract: the rules' error types with MarkError in
 * api/openapi.yaml, the event_types table with EventType.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "suites.h"

/* 2026-11-25 is a Wednesday. A (dual registered): main at HOME from 2026-09-01, at the PRU
 * Monday to Wednesday from 2026-11-02. B: at HOME until 2026-10-31, at OTHER from
 * 2026-12-01. C: at HOME since 2024-01-01, never dual registered. */
#define TODAY "2026-11-25"
#define A "B801200005001"
#define B "C801200005002"
#define C "D801200005003"
#define HOME "100001"
#define PRU "100002"
#define OTHER "100003"

static char url[1024];
static PGconn *conn;
/* The error types the tests below broke, to show that every rule has its test. */
static char seen[64][40];
static size_t nseen;

static void setup(void)
{
	th_db_create_migrated(url, sizeof url);
	th_sql(url,
	       "INSERT INTO schools (urn, name, kind) VALUES ('" HOME "', 'Home', 'mainstream'),"
	       " ('" PRU "', 'PRU', 'pru'), ('" OTHER "', 'Other', 'mainstream');"
	       "INSERT INTO pupils VALUES ('" A "', 'Ann', 'Bell', '2012-01-01'),"
	       " ('" B "', 'Bob', 'Cole', '2012-02-02'), ('" C "', 'Cat', 'Dunn', '2012-03-03');"
	       "INSERT INTO registrations (upn, urn, role, start_date, end_date) VALUES"
	       " ('" A "', '" HOME "', 'main', '2026-09-01', NULL),"
	       " ('" A "', '" PRU "', 'subsidiary', '2026-11-02', NULL),"
	       " ('" B "', '" HOME "', 'main', '2026-09-01', '2026-10-31'),"
	       " ('" B "', '" OTHER "', 'main', '2026-12-01', NULL),"
	       " ('" C "', '" HOME "', 'main', '2024-01-01', NULL);"
	       "INSERT INTO registration_schedules SELECT id, start_date, 63 FROM registrations"
	       " WHERE role = 'subsidiary'");
	conn = PQconnectdb(url);
	ck_assert_int_eq(PQstatus(conn), CONNECTION_OK);
	PQclear(PQexec(conn, "SET client_min_messages = warning"));
}

static void teardown(void)
{
	PQfinish(conn);
}

/*
 * Checks one item (JSON) as a key acting for acting_urn (NULL: admin) would post it
 * today, and asserts the first rule it breaks and its detail (type NULL: none).
 */
static void check(const char *item, const char *acting_urn, const char *type,
		  const char *detail)
{
	char items[2200];
	snprintf(items, sizeof items, "[%s]", item);
	const char *params[] = {items, acting_urn};
	PGresult *r = PQexecParams(conn,
				   "SELECT c.error, c.detail FROM dualreg_mark_check($1::jsonb, $2, "
				   "'" TODAY "', dualreg_mark_plans($1::jsonb)) c",
				   2, NULL, params, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "%s: %s", item,
		      PQresultErrorMessage(r));
	if (type == NULL) {
		ck_assert_msg(PQgetisnull(r, 0, 0), "%s: %s", item, PQgetvalue(r, 0, 0));
	} else {
		ck_assert_msg(strcmp(PQgetvalue(r, 0, 0), type) == 0, "%s: %s, not %s", item,
			      PQgetvalue(r, 0, 0), type);
		ck_assert_msg(strcmp(PQgetvalue(r, 0, 1), detail) == 0, "%s: \"%s\", not \"%s\"",
			      item, PQgetvalue(r, 0, 1), detail);
		if (nseen < sizeof seen / sizeof seen[0])
			snprintf(seen[nseen++], sizeof seen[0], "%s", type);
	}
	PQclear(r);
}

/* A well-formed item for pupil upn at school urn on date, AM, with extra members. */
static const char *item(const char *upn, const char *urn, const char *date, const char *code,
			const char *extra)
{
	static char buf[2100];
	snprintf(buf, sizeof buf,
		 "{\"upn\": \"%s\", \"urn\": \"%s\", \"date\": \"%s\", \"session\": \"AM\", "
		 "\"code\": \"%s\"%s%s}",
		 upn, urn, date, code, extra[0] ? ", " : "", extra);
	return buf;
}

/* Breaks each rule checked before anything is written. */
static void each_rule(void)
{
	check(item(A, HOME, "2026-11-19", "/", ""), NULL, NULL, NULL); /* Thursday: home */
	check("1", NULL, "invalid-item", "each mark must be a JSON object");
	check("{\"upn\": \"B80120000500\"}", NULL, "invalid-upn", "upn must be a 13-character UPN");
	check("{\"upn\": 7}", NULL, "invalid-upn", "upn must be a 13-character UPN");
	check("{\"upn\": \"" A "\", \"urn\": \"10001\"}", NULL, "invalid-urn",
	      "urn must be 6 digits");
	check(item(A, HOME, "2026-02-30", "/", ""), NULL, "invalid-date",
	      "date must be a real date written YYYY-MM-DD");
	check("{\"upn\": \"" A "\", \"urn\": \"" HOME "\", \"date\": \"" TODAY "\", "
	      "\"session\": \"am\", \"code\": \"/\"}",
	      NULL, "invalid-session", "session must be AM or PM");
	check(item(A, PRU, TODAY, "-", ""), NULL, "no-mark",
	      "\"-\" means no mark yet: leave the session out instead");
	check(item(A, PRU, TODAY, "L", "\"minutes_late\": \"5\""), NULL, "invalid-minutes-late",
	      "minutes_late must be a whole number");
	check(item(A, PRU, TODAY, "L", "\"minutes_late\": 5.5"), NULL, "invalid-minutes-late",
	      "minutes_late must be a whole number");
	check(item(A, PRU, TODAY, "/", "\"comment\": 7"), NULL, "invalid-comment",
	      "comment must be a string");
	char longtext[1100], extra[1200];
	memset(longtext, 'x', 1001);
	longtext[1001] = '\0';
	snprintf(extra, sizeof extra, "\"comment\": \"%s\"", longtext);
	check(item(A, PRU, TODAY, "/", extra), NULL, "comment-too-long",
	      "comment must be at most 1000 characters");
	check(item(A, PRU, TODAY, "/", "\"reason\": []"), NULL, "invalid-reason",
	      "reason must be a string");
	snprintf(extra, sizeof extra, "\"reason\": \"%s\"", longtext);
	check(item(A, PRU, TODAY, "/", extra), NULL, "reason-too-long",
	      "reason must be at most 1000 characters");
	check(item(A, HOME, TODAY, "/", ""), PRU, "forbidden-school",
	      "this key may only write marks for school " PRU);
	check(item(A, "999999", TODAY, "/", ""), NULL, "unknown-school",
	      "no school with URN 999999");
	/* A school's key gets one answer for every pupil not on its roll that day: an
	 * unknown UPN, a pupil only at other schools, one who left, one not yet arrived. */
	check(item("Z801200005009", HOME, TODAY, "/", ""), HOME, "pupil-not-on-roll",
	      "no pupil with this UPN is on the roll of " HOME " on " TODAY);
	check(item(A, OTHER, TODAY, "/", ""), OTHER, "pupil-not-on-roll",
	      "no pupil with this UPN is on the roll of " OTHER " on " TODAY);
	check(item(B, HOME, TODAY, "/", ""), HOME, "pupil-not-on-roll",
	      "no pupil with this UPN is on the roll of " HOME " on " TODAY);
	check(item(B, OTHER, TODAY, "/", ""), OTHER, "pupil-not-on-roll",
	      "no pupil with this UPN is on the roll of " OTHER " on " TODAY);
	check(item(A, PRU, TODAY, "/", ""), PRU, NULL, NULL); /* on its roll */
	check(item("Z801200005009", HOME, TODAY, "/", ""), NULL, "unknown-pupil",
	      "no pupil with UPN Z801200005009");
	check(item(A, PRU, "2026-11-28", "/", ""), NULL, "not-a-school-day",
	      "2026-11-28 is a Saturday: there are no sessions");
	check(item(A, PRU, "2026-11-30", "/", ""), NULL, "date-in-future",
	      "2026-11-30 is after today (" TODAY ")");
	check(item(B, OTHER, TODAY, "/", ""), NULL, "before-registration",
	      "the pupil is registered at " OTHER " from 2026-12-01, after " TODAY);
	check(item(B, HOME, TODAY, "/", ""), NULL, "not-registered",
	      "the pupil's registration at " HOME " ended on 2026-10-31");
	check(item(A, OTHER, TODAY, "/", ""), NULL, "not-registered",
	      "the pupil is not registered at " OTHER " on " TODAY);
	check(item(A, PRU, TODAY, "QQ", ""), NULL, "unknown-code", "QQ is not an attendance code");
	check("{\"upn\": \"" A "\", \"urn\": \"" PRU "\", \"date\": \"" TODAY "\", "
	      "\"session\": \"AM\"}",
	      NULL, "unknown-code", " is not an attendance code");
	check(item(A, PRU, TODAY, "H", ""), NULL, "code-not-valid-on-date",
	      "code H was withdrawn after 2024-08-18");
	check(item(C, HOME, "2024-06-03", "K", ""), NULL, "code-not-valid-on-date",
	      "code K is only valid from 2024-08-19");
	check(item(A, PRU, TODAY, "/", "\"minutes_late\": 3"), NULL, "minutes-late-not-allowed",
	      "minutes_late goes only with L or U, not /");
	check(item(A, PRU, TODAY, "L", "\"minutes_late\": 601"), NULL, "minutes-late-out-of-range",
	      "minutes_late must be between 0 and 600");
	check(item(C, HOME, TODAY, "D", ""), NULL, "d-not-expected",
	      "D is only for a dual-registered pupil; this pupil is not dual registered on " TODAY);
	check(item(A, PRU, TODAY, "D", ""), NULL, "d-not-expected",
	      "D is only for a session the pupil is expected at the other school; " TODAY
	      " AM is expected at " PRU);
	check(item(A, HOME, TODAY, "D", ""), NULL, NULL, NULL); /* where D belongs */
	/* The first rule broken wins: an unknown school before the code and the lateness. */
	check(item(A, "999999", TODAY, "H", "\"minutes_late\": 3"), NULL, "unknown-school",
	      "no school with URN 999999");
}

START_TEST(test_each_rule)
{
	each_rule();
}
END_TEST

/* Runs dualreg_ingest_marks on one item as of today; returns its result (static). */
static const char *ingest(const char *one)
{
	static char out[1024];
	char items[1100];
	snprintf(items, sizeof items, "[%s]", one);
	const char *params[] = {items};
	PGresult *r = PQexecParams(conn,
				   "SELECT dualreg_ingest_marks($1::jsonb, NULL, 'test', NULL, "
				   "'api') -> 'results' -> 0",
				   1, NULL, params, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
	snprintf(out, sizeof out, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return out;
}

/* Breaks the rule checked as an item is written, and shows when it holds. */
static void stored_mark_rule(void)
{
	PQclear(PQexec(conn, "BEGIN"));
	PQclear(PQexec(conn, "SET LOCAL dualreg.now = '" TODAY " 12:00+00'"));
	ck_assert_ptr_nonnull(strstr(ingest(item(A, PRU, TODAY, "/", "")), "\"created\""));
	const char *r = ingest(item(A, PRU, TODAY, "I", ""));
	ck_assert_msg(strstr(r, "\"type\": \"reason-required\"") != NULL &&
			  strstr(r, "\"detail\": \"changing / to I is an amendment: give a "
				    "reason\"") != NULL,
		      "%s", r);
	snprintf(seen[nseen++], sizeof seen[0], "reason-required");
	ck_assert_ptr_nonnull(strstr(ingest(item(A, PRU, TODAY, "I", "\"reason\": \"phoned\"")),
				     "\"amended\""));
	/* A provisional N is replaced without a reason, and so is a derived D. */
	ck_assert_ptr_nonnull(strstr(ingest(item(A, PRU, "2026-11-24", "N", "")), "\"created\""));
	ck_assert_ptr_nonnull(strstr(ingest(item(A, PRU, "2026-11-24", "I", "")), "\"amended\""));
	ck_assert_ptr_nonnull(strstr(ingest(item(A, HOME, "2026-11-23", "D", "")), "\"created\""));
	PQclear(PQexec(conn, "UPDATE marks SET source = 'derived' WHERE date = '2026-11-23'"));
	ck_assert_ptr_nonnull(strstr(ingest(item(A, HOME, "2026-11-23", "/", "")), "\"created\""));
	PQclear(PQexec(conn, "ROLLBACK"));
}

START_TEST(test_rule_on_the_stored_mark)
{
	stored_mark_rule();
}
END_TEST

START_TEST(test_rule_list)
{
	/* Numbered 1..n in check order, each type once, and every one broken above. */
	each_rule();
	stored_mark_rule();
	PGresult *r = PQexec(conn, "SELECT ord, type FROM dualreg_mark_error_types() ORDER BY ord");
	ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
	ck_assert_int_gt(PQntuples(r), 20);
	for (int i = 0; i < PQntuples(r); i++) {
		ck_assert_int_eq(atoi(PQgetvalue(r, i, 0)), i + 1);
		bool tested = false;
		for (size_t k = 0; k < nseen && !tested; k++)
			tested = strcmp(seen[k], PQgetvalue(r, i, 1)) == 0;
		ck_assert_msg(tested, "rule %s has no test in check_marks_rules.c",
			      PQgetvalue(r, i, 1));
	}
	PQclear(r);
}
END_TEST

/*
 * The items of the first `enum: [...]` (flow style, over one or more lines) after the
 * line "    NAME:" of the components in api/openapi.yaml, and before the next component.
 */
static size_t yaml_enum(const char *name, char items[][64], size_t max)
{
	char file[512], line[512], want[80];
	snprintf(file, sizeof file, "%s/api/openapi.yaml", th_env("DUALREG_TEST_ROOT"));
	snprintf(want, sizeof want, "    %s:\n", name);
	FILE *f = fopen(file, "r");
	ck_assert_msg(f != NULL, "cannot open %s", file);
	bool in = false, listing = false, done = false;
	size_t n = 0;
	char word[64];
	size_t wlen = 0;
	while (!done && fgets(line, sizeof line, f) != NULL) {
		if (!in) {
			in = strcmp(line, want) == 0;
			continue;
		}
		const char *p = line;
		if (!listing) {
			/* the next component: no enum in this one */
			if (strncmp(line, "    ", 4) == 0 && line[4] != ' ')
				break;
			p = strstr(line, "enum: [");
			if (p == NULL)
				continue;
			listing = true;
			p += strlen("enum: [");
		}
		for (; *p != '\0' && !done; p++) {
			if (*p == ',' || *p == ']') {
				if (wlen > 0 && n < max) {
					word[wlen] = '\0';
					snprintf(items[n++], 64, "%s", word);
				}
				wlen = 0;
				done = *p == ']';
			} else if (*p != ' ' && *p != '\n' && *p != '"' && wlen < sizeof word - 1) {
				word[wlen++] = *p;
			}
		}
	}
	fclose(f);
	ck_assert_msg(done, "no enum under %s in api/openapi.yaml", name);
	return n;
}

static int cmp_item(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Asserts the contract's enum lists exactly the values the query returns, in the same
 * order or (sorted) in any order. */
static void assert_enum_matches(const char *schema, const char *sql, bool sorted)
{
	char items[64][64];
	size_t n = yaml_enum(schema, items, 64);
	if (sorted)
		qsort(items, n, sizeof items[0], cmp_item);
	PGresult *r = PQexec(conn, sql);
	ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
	for (int i = 0; i < PQntuples(r); i++)
		ck_assert_msg((size_t)i < n && strcmp(items[i], PQgetvalue(r, i, 0)) == 0,
			      "%s in api/openapi.yaml: item %d is %s, the database has %s", schema,
			      i, (size_t)i < n ? items[i] : "(none)", PQgetvalue(r, i, 0));
	ck_assert_msg((size_t)PQntuples(r) == n, "%s in api/openapi.yaml lists %zu, the database %d",
		      schema, n, PQntuples(r));
	PQclear(r);
}

START_TEST(test_mark_errors_in_the_contract)
{
	/* In check order, as MarkError's description says. */
	assert_enum_matches("MarkError", "SELECT type FROM dualreg_mark_error_types() ORDER BY ord",
			    false);
}
END_TEST

START_TEST(test_event_types_in_the_contract)
{
	/* The same set; the contract lists them in its own order. */
	assert_enum_matches("EventType", "SELECT type FROM event_types ORDER BY type COLLATE \"C\"",
			    true);
}
END_TEST

Suite *marks_rules_suite(void)
{
	Suite *s = suite_create("marks_rules");
	TCase *tc = tcase_create("rules");
	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_each_rule);
	tcase_add_test(tc, test_rule_on_the_stored_mark);
	tcase_add_test(tc, test_rule_list);
	tcase_add_test(tc, test_mark_errors_in_the_contract);
	tcase_add_test(tc, test_event_types_in_the_contract);
	suite_add_tcase(s, tc);
	return s;
}
