/*
 * ctl_ops: dualregctl's operations commands run as an operator runs them, against a
 * fresh database each test: school add/list/show, pupil import (validation with file
 * line numbers, all or nothing, --skip-bad), sync status, purge (the six-year
 * refusal, --force, and that newer rows stay) and pupil erase. Exit statuses 0/1/2 and --json output.
 */
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "suites.h"

static char url[1024];
static char out[65536];
static char csv_path[256];

static void setup(void)
{
	th_db_create_migrated(url, sizeof url);
	snprintf(csv_path, sizeof csv_path, "%s/ctl-ops-%d.csv", th_env("DUALREG_TEST_TMP"),
		 (int)getpid());
}

static void teardown(void)
{
	unlink(csv_path);
}

/* Runs dualregctl with the given arguments (NULL-terminated) against the test database. */
static int ctl(const char *first, ...)
{
	char bin[512], env_url[1100];
	snprintf(bin, sizeof bin, "%s/dualregctl", th_env("DUALREG_TEST_BIN"));
	snprintf(env_url, sizeof env_url, "DUALREG_DATABASE_URL=%s", url);
	char *argv[16] = {bin, "-c", "/dev/null"};
	int n = 3;
	va_list ap;
	va_start(ap, first);
	for (const char *a = first; a != NULL && n < 15; a = va_arg(ap, const char *))
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	char *const envp[] = {env_url, NULL};
	return th_run(argv, envp, out, sizeof out);
}

static long long sql_int(const char *sql)
{
	PGconn *c = PQconnectdb(url);
	ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
	PGresult *r = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "%s: %s", sql,
		      PQresultErrorMessage(r));
	long long v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	PQfinish(c);
	return v;
}

static void write_csv(const char *text)
{
	FILE *f = fopen(csv_path, "wb");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

/* text is in the last command's standard output */
static void assert_out(const char *text)
{
	ck_assert_msg(strstr(out, text) != NULL, "expected \"%s\" in: %s", text, out);
}

/* text is in the last command's standard error (its messages) */
static void assert_err(const char *text)
{
	ck_assert_msg(strstr(th_last_stderr(), text) != NULL, "expected \"%s\" on stderr: %s", text,
		      th_last_stderr());
}

START_TEST(test_school_add_list_show)
{
	ck_assert_int_eq(ctl("school", "add", "--urn", "100001", "--name", "Hill School", "--kind",
			     "mainstream", "--laestab", "9264001", NULL),
			 0);
	ck_assert_int_eq(ctl("school", "add", "--urn", "100002", "--name", "Vale PRU", "--kind",
			     "pru", NULL),
			 0);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM schools WHERE urn = '100001' AND laestab = "
				 "'9264001' AND name = 'Hill School' AND kind = 'mainstream'"),
			 1);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM schools WHERE urn = '100002' AND laestab IS "
				 "NULL AND kind = 'pru'"),
			 1);

	/* Duplicate URN or LAESTAB: a refusal, nothing changes. */
	ck_assert_int_eq(ctl("school", "add", "--urn", "100001", "--name", "Other", "--kind", "ap",
			     NULL),
			 1);
	assert_err("a school with URN 100001 already exists");
	ck_assert_int_eq(ctl("school", "add", "--urn", "100003", "--name", "Other", "--kind", "ap",
			     "--laestab", "9264001", NULL),
			 1);
	assert_err("LAESTAB 9264001 already exists");
	/* Usage errors. */
	ck_assert_int_eq(ctl("school", "add", "--urn", "12345", "--name", "X", "--kind", "ap", NULL),
			 2);
	assert_err("not a URN");
	ck_assert_int_eq(ctl("school", "add", "--urn", "100004", "--name", "X", "--kind", "grammar",
			     NULL),
			 2);
	ck_assert_int_eq(ctl("school", "add", "--urn", "100004", "--name", "", "--kind", "ap", NULL),
			 2);
	ck_assert_int_eq(ctl("school", "add", "--urn", "100004", "--name", "X", "--kind", "ap",
			     "--laestab", "12", NULL),
			 2);
	ck_assert_int_eq(ctl("school", "add", "--urn", "100004", "--kind", "ap", NULL), 2);
	ck_assert_int_eq(ctl("school", "frobnicate", NULL), 2);
	ck_assert_int_eq(ctl("school", NULL), 2);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM schools"), 2);

	ck_assert_int_eq(ctl("school", "add", "--help", NULL), 0);
	assert_out("usage: dualregctl school add");

	ck_assert_int_eq(ctl("school", "list", NULL), 0);
	assert_out("Hill School");
	assert_out("Vale PRU");
	ck_assert_int_eq(ctl("school", "list", "--json", NULL), 0);
	cJSON *list = cJSON_Parse(out);
	ck_assert_msg(cJSON_IsArray(list), "%s", out);
	ck_assert_int_eq(cJSON_GetArraySize(list), 2);
	cJSON *first = cJSON_GetArrayItem(list, 0);
	ck_assert_str_eq(cJSON_GetObjectItem(first, "urn")->valuestring, "100001");
	ck_assert_str_eq(cJSON_GetObjectItem(first, "laestab")->valuestring, "9264001");
	ck_assert_str_eq(cJSON_GetObjectItem(first, "kind")->valuestring, "mainstream");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 1), "laestab")));
	cJSON_Delete(list);
	ck_assert_int_eq(ctl("school", "list", "--bogus", NULL), 2);

	ck_assert_int_eq(ctl("school", "show", "100002", NULL), 0);
	assert_out("Vale PRU");
	ck_assert_int_eq(ctl("school", "show", "100002", "--json", NULL), 0);
	cJSON *one = cJSON_Parse(out);
	ck_assert_msg(cJSON_IsObject(one), "%s", out);
	ck_assert_str_eq(cJSON_GetObjectItem(one, "name")->valuestring, "Vale PRU");
	ck_assert_str_eq(cJSON_GetObjectItem(one, "am_close")->valuestring, "09:15");
	cJSON_Delete(one);
	ck_assert_int_eq(ctl("school", "show", "999999", NULL), 1);
	assert_err("no school with URN 999999");
	ck_assert_int_eq(ctl("school", "show", NULL), 2);
}
END_TEST

/* Valid UPNs (from the demo data) and one with the wrong check letter. */
#define UPN1 "Z926400123001"
#define UPN2 "N926400123002"
#define UPN3 "V926400122005"
#define UPN_WRONG "A926400123001" /* should start with Z */

START_TEST(test_pupil_import_all_or_nothing)
{
	write_csv("upn,given_name,family_name,date_of_birth\n"
		  UPN1 ",\"Amira, Jr\",\"O\"\"Neil\",2011-03-14\n"
		  UPN_WRONG ",Bad,Check,2011-01-01\n"
		  "\n"
		  UPN2 ",,Reid,2011-07-02\n"
		  UPN3 ",Jay,Okafor,2011-02-30\n"
		  "XYZ,A,B,2011-01-01\n"
		  UPN3 ",Only,three\n"
		  UPN1 ",Amira,Other,2011-03-14\n"
		  UPN1 ",\"Amira, Jr\",\"O\"\"Neil\",2011-03-14\n");
	ck_assert_int_eq(ctl("pupil", "import", csv_path, NULL), 1);
	char want[400];
	snprintf(want, sizeof want, "%s:3: upn " UPN_WRONG " has the wrong check letter (expected Z)",
		 csv_path);
	assert_err(want);
	snprintf(want, sizeof want, "%s:5: given_name must be 1 to 100 characters", csv_path);
	assert_err(want);
	snprintf(want, sizeof want, "%s:6: date_of_birth \"2011-02-30\" is not a date", csv_path);
	assert_err(want);
	snprintf(want, sizeof want, "%s:7: upn \"XYZ\" is not a UPN", csv_path);
	assert_err(want);
	snprintf(want, sizeof want, "%s:8: expected 4 fields", csv_path);
	assert_err(want);
	snprintf(want, sizeof want, "%s:9: upn " UPN1 " appears on line 2 with different data",
		 csv_path);
	assert_err(want);
	snprintf(want, sizeof want, "%s:2:", csv_path);
	ck_assert_msg(strstr(th_last_stderr(), want) == NULL, "good row reported: %s",
		      th_last_stderr());
	snprintf(want, sizeof want, "%s:10:", csv_path);
	ck_assert_msg(strstr(th_last_stderr(), want) == NULL, "repeated row reported: %s",
		      th_last_stderr());
	assert_err("6 bad rows; nothing imported");
	ck_assert_int_eq(sql_int("SELECT count(*) FROM pupils"), 0);

	/* --skip-bad imports the good row, with its quoted fields intact. */
	ck_assert_int_eq(ctl("pupil", "import", csv_path, "--skip-bad", NULL), 0);
	assert_out("imported 1, unchanged 1, skipped 6");
	ck_assert_int_eq(sql_int("SELECT count(*) FROM pupils"), 1);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM pupils WHERE upn = '" UPN1 "' AND "
				 "given_name = 'Amira, Jr' AND family_name = 'O\"Neil' AND "
				 "date_of_birth = '2011-03-14'"),
			 1);
}
END_TEST

START_TEST(test_pupil_import_existing)
{
	/* A byte-order mark, CRLF line ends, UTF-8 names; a line break inside quotes
	 * continues the record (here a name, which may not hold one), so the next record
	 * starts on line 5. */
	write_csv("\xef\xbb\xbfupn,given_name,family_name,date_of_birth\r\n"
		  UPN1 ",Zoë,Łukasz\r\n,2011-03-14\r\n" /* 3 fields: bad */
		  UPN1 ",Zoë,\"Łuk\nasz\",2011-03-14\r\n"
		  UPN2 ",Callum,Reid,2011-07-02,extra\r\n"
		  UPN2 ",Callum,Reid,2011-07-02\r\n");
	ck_assert_int_eq(ctl("pupil", "import", csv_path, NULL), 1);
	char want[400];
	snprintf(want, sizeof want, "%s:2: expected 4 fields", csv_path);
	assert_err(want);
	snprintf(want, sizeof want, "%s:3: expected 4 fields", csv_path);
	assert_err(want);
	snprintf(want, sizeof want, "%s:4: family_name is not valid UTF-8 text", csv_path);
	assert_err(want);
	snprintf(want, sizeof want, "%s:6: expected 4 fields", csv_path);
	assert_err(want);
	snprintf(want, sizeof want, "%s:7:", csv_path);
	ck_assert_msg(strstr(th_last_stderr(), want) == NULL, "good row reported: %s",
		      th_last_stderr());
	ck_assert_int_eq(sql_int("SELECT count(*) FROM pupils"), 0);

	write_csv("upn,given_name,family_name,date_of_birth\r\n"
		  UPN1 ",Zoë,\"Łukasz\",2011-03-14\r\n"
		  UPN2 ",Callum,Reid,2011-07-02");
	ck_assert_msg(ctl("pupil", "import", csv_path, NULL) == 0, "%s", out);
	assert_out("imported 2, unchanged 0, skipped 0");
	ck_assert_int_eq(sql_int("SELECT count(*) FROM pupils WHERE given_name = 'Zoë' AND "
				 "family_name = 'Łukasz'"),
			 1);
	/* Again: the same data is unchanged; different data for a pupil on file is bad. */
	ck_assert_int_eq(ctl("pupil", "import", csv_path, NULL), 0);
	assert_out("imported 0, unchanged 2, skipped 0");
	write_csv("upn,given_name,family_name,date_of_birth\n"
		  UPN3 ",Jayden,Okafor,2012-01-23\n"
		  UPN2 ",Callum,Reed,2011-07-02\n");
	ck_assert_int_eq(ctl("pupil", "import", csv_path, NULL), 1);
	char want2[400];
	snprintf(want2, sizeof want2, "%s:3: upn " UPN2 " differs from the pupil on file as Callum Reid",
		 csv_path);
	assert_err(want2);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM pupils"), 2); /* UPN3 not imported */
	ck_assert_int_eq(ctl("pupil", "import", csv_path, "--skip-bad", NULL), 0);
	assert_out("imported 1, unchanged 0, skipped 1");
	ck_assert_int_eq(sql_int("SELECT count(*) FROM pupils WHERE family_name = 'Reid'"), 1);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM pupils"), 3);

	/* A name over 100 characters, a bad header, a missing file, usage. */
	char big[600];
	snprintf(big, sizeof big, "upn,given_name,family_name,date_of_birth\n" UPN3 ",%0101d,B,2012-01-23\n", 0);
	write_csv(big);
	ck_assert_int_eq(ctl("pupil", "import", csv_path, NULL), 1);
	assert_err("given_name must be 1 to 100 characters");
	write_csv("upn,name,dob\n" UPN3 ",A,2012-01-23\n");
	ck_assert_int_eq(ctl("pupil", "import", csv_path, NULL), 1);
	assert_err(":1: the header must be upn,given_name,family_name,date_of_birth");
	ck_assert_int_eq(ctl("pupil", "import", "/nonexistent/x.csv", NULL), 1);
	assert_err("cannot open /nonexistent/x.csv");
	ck_assert_int_eq(ctl("pupil", "import", NULL), 2);
	ck_assert_int_eq(ctl("pupil", "import", csv_path, "--bogus", NULL), 2);
	ck_assert_int_eq(ctl("pupil", "export", NULL), 2);
	ck_assert_int_eq(ctl("pupil", "import", "--help", NULL), 0);
	assert_out("usage: dualregctl pupil import");
	ck_assert_int_eq(sql_int("SELECT count(*) FROM pupils"), 3);
}
END_TEST

START_TEST(test_sync_status)
{
	ck_assert_int_eq(ctl("sync", "status", NULL), 0);
	assert_out("none");
	th_sql(url, "INSERT INTO schools (urn, name, kind, pull_url, pull_cursor, pull_failures, "
		    "pull_last_error) VALUES ('100001', 'Hill', 'mainstream', "
		    "'https://mis.example/marks', 'c42', 3, 'HTTP 503')");
	th_sql(url, "INSERT INTO schools (urn, name, kind) VALUES ('100002', 'Vale', 'pru')");
	th_sql(url, "INSERT INTO subscriptions (urn, url, events, secret) VALUES "
		    "('100002', 'https://hooks.example/a', '{*}', 's')");
	th_sql(url, "INSERT INTO subscriptions (urn, url, events, secret, disabled_at) VALUES "
		    "('100001', 'https://hooks.example/b', '{*}', 's', now())");
	th_sql(url, "INSERT INTO events (type, urns, data) SELECT 'mark.recorded', '{100002}', '{}' "
		    "FROM generate_series(1, 4)");
	th_sql(url, "UPDATE deliveries SET status = 'delivered' WHERE event_id IN "
		    "(SELECT min(id) FROM events)");
	th_sql(url, "UPDATE deliveries SET status = 'failed' WHERE event_id IN "
		    "(SELECT min(id) + 1 FROM events)");
	th_sql(url, "UPDATE deliveries SET created_at = now() - interval '1 hour' WHERE "
		    "status = 'pending' AND event_id = (SELECT max(id) FROM events)");

	ck_assert_int_eq(ctl("sync", "status", NULL), 0);
	assert_out("https://hooks.example/a");
	assert_out("disabled");
	assert_out("https://mis.example/marks");
	assert_out("HTTP 503");

	ck_assert_int_eq(ctl("sync", "status", "--json", NULL), 0);
	cJSON *j = cJSON_Parse(out);
	ck_assert_msg(cJSON_IsObject(j), "%s", out);
	cJSON *subs = cJSON_GetObjectItem(j, "subscriptions");
	ck_assert_int_eq(cJSON_GetArraySize(subs), 2);
	cJSON *a = cJSON_GetArrayItem(subs, 0);
	ck_assert_str_eq(cJSON_GetObjectItem(a, "urn")->valuestring, "100002");
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(a, "disabled")));
	ck_assert_int_eq(cJSON_GetObjectItem(a, "pending")->valueint, 2);
	ck_assert_int_eq(cJSON_GetObjectItem(a, "failed")->valueint, 1);
	ck_assert_int_eq(cJSON_GetObjectItem(a, "delivered")->valueint, 1);
	double age = cJSON_GetObjectItem(a, "oldest_pending_s")->valuedouble;
	ck_assert_msg(age >= 3590 && age < 4000, "age %f", age);
	cJSON *b = cJSON_GetArrayItem(subs, 1);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(b, "disabled")));
	ck_assert_int_eq(cJSON_GetObjectItem(b, "pending")->valueint, 0);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(b, "oldest_pending_s")));
	cJSON *pulls = cJSON_GetObjectItem(j, "pulls");
	ck_assert_int_eq(cJSON_GetArraySize(pulls), 1);
	cJSON *p = cJSON_GetArrayItem(pulls, 0);
	ck_assert_str_eq(cJSON_GetObjectItem(p, "urn")->valuestring, "100001");
	ck_assert_str_eq(cJSON_GetObjectItem(p, "cursor")->valuestring, "c42");
	ck_assert_int_eq(cJSON_GetObjectItem(p, "failures")->valueint, 3);
	ck_assert_str_eq(cJSON_GetObjectItem(p, "last_error")->valuestring, "HTTP 503");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(p, "last_ok_at")));
	cJSON_Delete(j);

	ck_assert_int_eq(ctl("sync", "status", "--bogus", NULL), 2);
	ck_assert_int_eq(ctl("sync", "frobnicate", NULL), 2);
	ck_assert_int_eq(ctl("sync", NULL), 2);
	ck_assert_int_eq(ctl("sync", "status", "--help", NULL), 0);
	assert_out("usage: dualregctl sync status");
}
END_TEST

/* Rows on both sides of a cutoff seven years ago. */
static void purge_fixture(void)
{
	th_sql(url, "INSERT INTO schools (urn, name, kind) VALUES ('100001', 'Hill', 'mainstream')");
	th_sql(url, "INSERT INTO pupils VALUES ('" UPN1 "', 'A', 'B', '2011-03-14')");
	th_sql(url, "ALTER TABLE marks DISABLE TRIGGER marks_absence_alert");
	th_sql(url, "INSERT INTO marks (upn, urn, date, session, code, source) SELECT '" UPN1
		    "', '100001', d, s, '/', 'api' FROM (VALUES (current_date - 3000), "
		    "(current_date - 2600), (current_date - 10)) v(d), (VALUES ('AM'), ('PM')) w(s)");
	th_sql(url, "ALTER TABLE marks ENABLE TRIGGER marks_absence_alert");
	th_sql(url, "INSERT INTO mark_history (upn, urn, date, session, new_code) SELECT upn, urn, "
		    "date, session, code FROM marks");
	th_sql(url, "INSERT INTO subscriptions (urn, url, events, secret) VALUES "
		    "('100001', 'https://hooks.example/a', '{*}', 's')");
	th_sql(url, "INSERT INTO events (type, urns, data, occurred_at) VALUES "
		    "('mark.recorded', '{100001}', '{}', now() - interval '3000 days'), "
		    "('mark.recorded', '{100001}', '{}', now() - interval '10 days')");
	th_sql(url, "INSERT INTO access_audit (at, last_at, upn, endpoint) VALUES "
		    "(now() - interval '3000 days', now() - interval '3000 days', '" UPN1 "', 'a'), "
		    "(now() - interval '3000 days', now() - interval '5 days', '" UPN1 "', 'b')");
}

START_TEST(test_purge)
{
	purge_fixture();
	char cutoff[32], recent[32];
	long long c = sql_int("SELECT to_char(current_date - 2800, 'YYYYMMDD')::bigint");
	snprintf(cutoff, sizeof cutoff, "%04lld-%02lld-%02lld", c / 10000, c / 100 % 100, c % 100);
	long long rr = sql_int("SELECT to_char(dualreg_today() - interval '5 years', "
			       "'YYYYMMDD')::bigint");
	snprintf(recent, sizeof recent, "%04lld-%02lld-%02lld", rr / 10000, rr / 100 % 100,
		 rr % 100);

	/* A date within six years is refused; nothing goes. */
	ck_assert_int_eq(ctl("purge", "--before", recent, NULL), 2);
	assert_err("kept for six years");
	ck_assert_int_eq(sql_int("SELECT count(*) FROM marks"), 6);
	/* Usage errors. */
	ck_assert_int_eq(ctl("purge", "--before", "2019-02-30", NULL), 2);
	assert_err("not a date");
	ck_assert_int_eq(ctl("purge", NULL), 2);
	ck_assert_int_eq(ctl("purge", "--before", cutoff, "extra", NULL), 2);
	ck_assert_int_eq(ctl("purge", "--help", NULL), 0);
	assert_out("usage: dualregctl purge");
	ck_assert_int_eq(sql_int("SELECT count(*) FROM mark_history"), 6);

	/* An old enough date: only the older rows go. */
	ck_assert_int_eq(ctl("purge", "--before", cutoff, NULL), 0);
	assert_out("marks");
	ck_assert_int_eq(sql_int("SELECT count(*) FROM marks"), 4);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM marks WHERE date < current_date - 2800"), 0);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM mark_history"), 4);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM events"), 1);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM deliveries"), 1);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM access_audit"), 1);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM access_audit WHERE endpoint = 'b'"), 1);

	/* --force purges a recent date; rows newer than it stay. */
	ck_assert_int_eq(ctl("purge", "--before", recent, "--force", NULL), 0);
	assert_out("marks            2");
	ck_assert_int_eq(sql_int("SELECT count(*) FROM marks"), 2);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM mark_history"), 2);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM events"), 1);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM deliveries"), 1);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM access_audit"), 1);
}
END_TEST

/*
 * What else retention removes: registrations that ended (with their schedules), requests
 * decided, alerts, pull rejections, and pupils with nothing left; what is newer, still in
 * force or pending stays.
 */
START_TEST(test_purge_registrations_and_pupils)
{
	th_sql(url, "INSERT INTO schools (urn, name, kind) VALUES ('100001', 'Hill', 'mainstream'),"
		    " ('100002', 'Vale PRU', 'pru')");
	th_sql(url, "INSERT INTO pupils VALUES ('" UPN1 "', 'A', 'B', '2001-03-14', "
		    "now() - interval '3500 days'), ('" UPN2 "', 'C', 'D', '2001-03-14', "
		    "now() - interval '3500 days'), ('" UPN3 "', 'E', 'F', '2001-03-14', "
		    "now() - interval '3500 days'), ('" UPN_WRONG "', 'G', 'H', '2001-03-14', now())");
	/* UPN1: on roll long ago, ended; UPN2: on roll since then and still */
	th_sql(url, "INSERT INTO registration_records (upn, urn, role, start_date, end_date) VALUES "
		    "('" UPN1 "', '100001', 'main', current_date - 3500, current_date - 3000), "
		    "('" UPN2 "', '100001', 'main', current_date - 3500, NULL)");
	th_sql(url, "INSERT INTO registration_schedules (registration_id, effective_from, mask) "
		    "SELECT id, start_date, 1 FROM registration_records");
	/* requests: one declined long ago, one pending now */
	th_sql(url, "INSERT INTO registration_records (upn, urn, role, start_date, state, "
		    "requested_by, counterpart_urn, expires_at, decided_at) VALUES "
		    "('" UPN2 "', '100002', 'subsidiary', current_date - 3100, 'declined', '100002', "
		    "'100001', now() - interval '3090 days', now() - interval '3095 days'), "
		    "('" UPN2 "', '100002', 'subsidiary', current_date, 'pending', '100002', "
		    "'100001', now() + interval '10 days', NULL)");
	th_sql(url, "INSERT INTO registration_changes (registration_id, end_date_set, end_date, "
		    "requested_by, counterpart_urn, state, expires_at, decided_at, created_at) "
		    "SELECT id, true, current_date - 3050, '100001', '100002', 'declined', "
		    "now() - interval '3040 days', now() - interval '3045 days', "
		    "now() - interval '3050 days' FROM registration_records WHERE upn = '" UPN2
		    "' AND state = 'in_force'");
	th_sql(url, "INSERT INTO alerts_sent (upn, date, session, type) VALUES "
		    "('" UPN2 "', current_date - 3000, 'AM', 'attendance.absent'), "
		    "('" UPN2 "', current_date - 1, 'AM', 'attendance.absent')");
	th_sql(url, "INSERT INTO pull_rejections (urn, pulled_at, item, error_type, detail) VALUES "
		    "('100001', now() - interval '3000 days', '{\"upn\": \"" UPN2 "\"}', 'x', 'y'), "
		    "('100001', now(), '{\"upn\": \"" UPN2 "\"}', 'x', 'y')");
	char cutoff[32];
	long long c = sql_int("SELECT to_char(current_date - 2800, 'YYYYMMDD')::bigint");
	snprintf(cutoff, sizeof cutoff, "%04lld-%02lld-%02lld", c / 10000, c / 100 % 100, c % 100);

	ck_assert_int_eq(ctl("purge", "--before", cutoff, NULL), 0);
	assert_out("registrations    2");
	assert_out("pupils           2");
	/* UPN1's ended registration and its schedule went, then UPN1 itself; UPN3 never had
	 * anything; the recent pupil with nothing yet and UPN2 stay */
	ck_assert_int_eq(sql_int("SELECT count(*) FROM pupils WHERE upn IN ('" UPN1 "', '" UPN3
				 "')"),
			 0);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM pupils"), 2);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM registration_records"), 2);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM registration_records WHERE state = "
				 "'pending'"),
			 1);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM registration_schedules"), 1);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM registration_changes"), 0);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM alerts_sent"), 1);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM pull_rejections"), 1);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM pull_rejections WHERE pulled_at > now() - "
				 "interval '1 day'"),
			 1);
}
END_TEST

/* A pupil record created in error: everything naming the pupil goes, one erasure row
 * without personal data remains; statutory records need --force; others are untouched. */
START_TEST(test_pupil_erase)
{
	th_sql(url, "INSERT INTO schools (urn, name, kind) VALUES ('100001', 'Hill', 'mainstream')");
	th_sql(url, "INSERT INTO pupils VALUES ('" UPN1 "', 'Amira', 'Oneil', '2011-03-14'), ('" UPN2
		    "', 'Ben', 'Cole', '2011-04-01'), ('" UPN3 "', 'Cara', 'Dunn', '2011-05-01')");
	th_sql(url, "INSERT INTO registration_records (upn, urn, role, start_date) VALUES "
		    "('" UPN1 "', '100001', 'main', current_date - 10), "
		    "('" UPN2 "', '100001', 'main', current_date - 10)");
	th_sql(url, "ALTER TABLE marks DISABLE TRIGGER marks_absence_alert");
	th_sql(url, "INSERT INTO marks (upn, urn, date, session, code, source) SELECT u, '100001', "
		    "current_date - 3, s, '/', 'api' FROM (VALUES ('" UPN1 "'), ('" UPN2 "')) v(u), "
		    "(VALUES ('AM'), ('PM')) w(s)");
	th_sql(url, "ALTER TABLE marks ENABLE TRIGGER marks_absence_alert");
	th_sql(url, "INSERT INTO mark_history (upn, urn, date, session, new_code) SELECT upn, urn, "
		    "date, session, code FROM marks");
	th_sql(url, "INSERT INTO subscriptions (urn, url, events, secret) VALUES "
		    "('100001', 'https://hooks.example/a', '{*}', 's')");
	th_sql(url, "INSERT INTO events (type, upn, urns, data) VALUES "
		    "('mark.recorded', '" UPN1 "', '{100001}', '{}'), "
		    "('mark.recorded', '" UPN2 "', '{100001}', '{}')");
	th_sql(url, "INSERT INTO alerts_sent (upn, date, session, type) VALUES "
		    "('" UPN1 "', current_date, 'AM', 'attendance.absent')");
	th_sql(url, "INSERT INTO pull_rejections (urn, item, error_type, detail) VALUES "
		    "('100001', '{\"upn\": \"" UPN1 "\"}', 'x', 'y'), "
		    "('100001', '{\"upn\": \"" UPN2 "\"}', 'x', 'y')");
	th_sql(url, "INSERT INTO access_audit (at, last_at, upn, endpoint) VALUES "
		    "(now(), now(), '" UPN1 "', 'a'), (now(), now(), '" UPN2 "', 'a')");
	th_sql(url, "INSERT INTO api_keys (name, role, urn, token_hash, prefix) VALUES "
		    "('hill', 'school', '100001', 'h', 'p')");
	th_sql(url, "INSERT INTO idempotency_keys (key_id, idem_key, request_hash, state, status, "
		    "response) SELECT id, 'k1', 'x', 'done', 201, '{\"upn\":\"" UPN1 "\"}' FROM api_keys");
	const char *counts = "SELECT (SELECT count(*) FROM pupils) + (SELECT count(*) FROM marks) + "
			     "(SELECT count(*) FROM mark_history) + (SELECT count(*) FROM events) + "
			     "(SELECT count(*) FROM deliveries) + (SELECT count(*) FROM alerts_sent) "
			     "+ (SELECT count(*) FROM pull_rejections) + (SELECT count(*) FROM "
			     "access_audit) + (SELECT count(*) FROM registration_records) + "
			     "(SELECT count(*) FROM idempotency_keys)";
	long long before = sql_int(counts);

	/* Usage: a reason is required; a malformed UPN; an unknown pupil. */
	ck_assert_int_eq(ctl("pupil", "erase", UPN1, NULL), 2);
	ck_assert_int_eq(ctl("pupil", "erase", "not-a-upn", "--reason", "typo", NULL), 2);
	ck_assert_int_eq(ctl("pupil", "erase", "T926400999001", "--reason", "typo", NULL), 1);
	assert_err("no pupil");
	/* Statutory records of the last six years: refused, nothing changes. */
	ck_assert_int_eq(ctl("pupil", "erase", UPN1, "--reason", "entered twice", NULL), 2);
	assert_err("statutory");
	ck_assert_int_eq(sql_int(counts), before);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM erasures"), 0);

	ck_assert_int_eq(ctl("pupil", "erase", UPN1, "--reason", "entered twice", "--force", NULL),
			 0);
	assert_out("marks                2");
	const char *left = "SELECT (SELECT count(*) FROM pupils WHERE upn = '" UPN1 "') + "
			   "(SELECT count(*) FROM marks WHERE upn = '" UPN1 "') + "
			   "(SELECT count(*) FROM mark_history WHERE upn = '" UPN1 "') + "
			   "(SELECT count(*) FROM events WHERE upn = '" UPN1 "') + "
			   "(SELECT count(*) FROM deliveries WHERE upn = '" UPN1 "') + "
			   "(SELECT count(*) FROM alerts_sent WHERE upn = '" UPN1 "') + "
			   "(SELECT count(*) FROM pull_rejections WHERE item::text LIKE '%" UPN1
			   "%') + (SELECT count(*) FROM access_audit WHERE upn = '" UPN1 "') + "
			   "(SELECT count(*) FROM registration_records WHERE upn = '" UPN1 "') + "
			   "(SELECT count(*) FROM idempotency_keys)";
	ck_assert_int_eq(sql_int(left), 0);
	/* the other pupil keeps everything: pupil, 2 marks, 2 history, event (+ delivery, if
	 * the subscription fanned it out), rejection, audit row, registration */
	ck_assert_int_eq(sql_int("SELECT count(*) FROM marks WHERE upn = '" UPN2 "'"), 2);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM events WHERE upn = '" UPN2 "'"), 1);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM access_audit WHERE upn = '" UPN2 "'"), 1);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM pull_rejections"), 1);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM registration_records"), 1);
	/* one erasure row, forced, with counts and no trace of whom it was about */
	ck_assert_int_eq(sql_int("SELECT count(*) FROM erasures WHERE forced AND reason = "
				 "'entered twice' AND (removed->>'marks')::int = 2 AND "
				 "(removed->>'pupil')::int = 1"),
			 1);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM erasures e WHERE row_to_json(e)::text ~ "
				 "'" UPN1 "|Amira|Oneil|2011-03-14'"),
			 0);
	/* No statutory records: no --force needed. */
	ck_assert_int_eq(ctl("pupil", "erase", UPN3, "--reason", "typo", NULL), 0);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM pupils"), 1);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM erasures WHERE NOT forced"), 1);
	ck_assert_int_eq(ctl("pupil", "erase", "--help", NULL), 0);
	assert_out("usage: dualregctl pupil erase");
}
END_TEST

Suite *ctl_ops_suite(void)
{
	Suite *s = suite_create("ctl_ops");
	TCase *tc = tcase_create("ops");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_school_add_list_show);
	tcase_add_test(tc, test_pupil_import_all_or_nothing);
	tcase_add_test(tc, test_pupil_import_existing);
	tcase_add_test(tc, test_sync_status);
	tcase_add_test(tc, test_purge);
	tcase_add_test(tc, test_purge_registrations_and_pupils);
	tcase_add_test(tc, test_pupil_erase);
	suite_add_tcase(s, tc);
	return s;
}
