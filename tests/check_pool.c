/*
 * pool: the asynchronous libpq layer on a real event loop against the real database.
 * Results and SQL errors, fail-fast while the database is unreachable, the bounded
 * waiting queue, cancellation, a statement outliving its deadline, and transactions on
 * held connections (committed, or rolled back by an in-doubt release).
 */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/db.h"
#include "dualreg/log.h"
#include "harness.h"
#include "suites.h"

struct outcome {
	int done;
	int ok;
	int failed;
	char value[256];
	char err[512];
	ExecStatusType status;
};

static struct event_base *base;
static char url[1024];

static void setup(void)
{
	log_set_level(LOG_ERROR); /* connection warnings are expected here */
	base = event_base_new();
	th_db_create(url, sizeof url);
}

static void teardown(void)
{
	event_base_free(base);
}

static struct db_pool *pool(const char *conninfo, unsigned size, unsigned wait_ms,
			    unsigned max_waiters)
{
	struct db_pool_opts o = {.conninfo = conninfo,
				 .size = size,
				 .connect_timeout_ms = 2000,
				 .wait_timeout_ms = wait_ms,
				 .max_waiters = max_waiters,
				 .setup_sql = "SET TIME ZONE 'UTC'"};
	return dbp_new(base, &o);
}

static void result_cb(PGresult *res, const char *err, void *arg)
{
	struct outcome *o = arg;
	o->done++;
	if (res == NULL) {
		o->failed++;
		snprintf(o->err, sizeof o->err, "%s", err);
		return;
	}
	o->status = PQresultStatus(res);
	if (o->status == PGRES_TUPLES_OK && PQntuples(res) > 0) {
		snprintf(o->value, sizeof o->value, "%s", PQgetvalue(res, 0, 0));
		o->ok++;
	} else if (o->status == PGRES_COMMAND_OK) {
		o->ok++;
	} else {
		snprintf(o->err, sizeof o->err, "%s", PQresultErrorMessage(res));
	}
}

/* Runs the loop until *counter reaches want, at most `seconds`. */
static void run_until(const int *counter, int want, double seconds)
{
	double deadline = th_now() + seconds;
	while (*counter < want && th_now() < deadline)
		event_base_loop(base, EVLOOP_ONCE);
	ck_assert_msg(*counter >= want, "timed out waiting (%d of %d)", *counter, want);
}

START_TEST(test_query_and_sql_error)
{
	struct db_pool *p = pool(url, 2, 5000, 10);
	struct outcome a = {0}, b = {0}, c = {0};
	const char *params[] = {"41"};
	ck_assert_ptr_nonnull(dbp_query(p, "SELECT $1::int + 1", 1, params, result_cb, &a));
	ck_assert_ptr_nonnull(dbp_query(p, "SELECT * FROM no_such_table", 0, NULL, result_cb, &b));
	/* Nothing is delivered inside the submitting call. */
	ck_assert_int_eq(a.done + b.done, 0);
	run_until(&b.done, 1, 10);
	run_until(&a.done, 1, 10);
	ck_assert_str_eq(a.value, "42");
	ck_assert_int_eq(b.status, PGRES_FATAL_ERROR);
	ck_assert_msg(strstr(b.err, "no_such_table") != NULL, "%s", b.err);
	/* An SQL error keeps the connection usable. */
	const char *nullp[] = {NULL};
	ck_assert_ptr_nonnull(dbp_query(p, "SELECT coalesce($1::text, 'was null')", 1, nullp,
					result_cb, &c));
	run_until(&c.done, 1, 10);
	ck_assert_str_eq(c.value, "was null");
	struct dbp_stats st;
	dbp_stats(p, &st);
	ck_assert_uint_eq(st.size, 2);
	ck_assert_uint_eq(st.busy, 0);
	dbp_free(p);
}
END_TEST

START_TEST(test_unreachable_fails_fast)
{
	struct db_pool *p = pool("host=/nonexistent-socket-dir dbname=x", 2, 5000, 10);
	struct outcome a = {0}, b = {0};
	dbp_query(p, "SELECT 1", 0, NULL, result_cb, &a);
	run_until(&a.done, 1, 10);
	ck_assert_int_eq(a.failed, 1);
	ck_assert_msg(strstr(a.err, "nonexistent-socket-dir") != NULL, "%s", a.err);
	ck_assert_ptr_nonnull(dbp_last_error(p));
	/* Later work is refused at once with the cached reason, not after its deadline. */
	double t0 = th_now();
	dbp_query(p, "SELECT 1", 0, NULL, result_cb, &b);
	run_until(&b.done, 1, 10);
	ck_assert_int_eq(b.failed, 1);
	ck_assert_msg(strstr(b.err, "database unavailable") != NULL, "%s", b.err);
	ck_assert_msg(th_now() - t0 < 4.0, "refusal took as long as the deadline");
	dbp_free(p);
}
END_TEST

START_TEST(test_bounded_waiters)
{
	struct db_pool *p = pool(url, 1, 10000, 2);
	struct outcome o[3] = {{0}};
	int total = 0;
	for (int i = 0; i < 3; i++)
		dbp_query(p, "SELECT pg_sleep(0.1)::text || 'x'", 0, NULL, result_cb, &o[i]);
	double deadline = th_now() + 15;
	while (th_now() < deadline && (total = o[0].done + o[1].done + o[2].done) < 3)
		event_base_loop(base, EVLOOP_ONCE);
	ck_assert_int_eq(total, 3);
	ck_assert_int_eq(o[0].ok + o[1].ok + o[2].ok, 2);
	ck_assert_int_eq(o[2].failed, 1);
	ck_assert_msg(strstr(o[2].err, "too many requests waiting") != NULL, "%s", o[2].err);
	dbp_free(p);
}
END_TEST

START_TEST(test_cancel)
{
	struct db_pool *p = pool(url, 1, 5000, 10);
	struct outcome a = {0}, b = {0};
	struct db_op *op = dbp_query(p, "SELECT 1", 0, NULL, result_cb, &a);
	db_op_cancel(op);
	dbp_query(p, "SELECT 2", 0, NULL, result_cb, &b);
	run_until(&b.done, 1, 10);
	ck_assert_str_eq(b.value, "2");
	ck_assert_int_eq(a.done, 0);

	/* Cancelling a running statement replaces its connection; the pool carries on. */
	struct outcome c = {0}, d = {0};
	op = dbp_query(p, "SELECT pg_sleep(2)::text", 0, NULL, result_cb, &c);
	event_base_loop(base, EVLOOP_NONBLOCK);
	event_base_loop(base, EVLOOP_NONBLOCK);
	db_op_cancel(op);
	dbp_query(p, "SELECT 3", 0, NULL, result_cb, &d);
	run_until(&d.done, 1, 10);
	ck_assert_str_eq(d.value, "3");
	ck_assert_int_eq(c.done, 0);
	dbp_free(p);
}
END_TEST

START_TEST(test_statement_deadline)
{
	struct db_pool *p = pool(url, 1, 300, 10);
	struct outcome a = {0}, b = {0};
	dbp_query(p, "SELECT pg_sleep(3)::text", 0, NULL, result_cb, &a);
	run_until(&a.done, 1, 10);
	ck_assert_int_eq(a.failed, 1);
	ck_assert_msg(strstr(a.err, "did not answer in time") != NULL, "%s", a.err);
	dbp_query(p, "SELECT 'after'", 0, NULL, result_cb, &b);
	run_until(&b.done, 1, 10);
	ck_assert_str_eq(b.value, "after");
	dbp_free(p);
}
END_TEST

struct txn {
	struct db_pool *p;
	struct db_conn *conn;
	int step;
	bool commit;
	int finished;
	char err[256];
};

static void txn_step(PGresult *res, const char *err, void *arg);

static void txn_next(struct txn *t)
{
	static const char *const steps[] = {"BEGIN", "INSERT INTO t VALUES (1)", "COMMIT"};
	int last = t->commit ? 3 : 2;
	if (t->step == last) {
		dbp_release(t->p, t->conn, !t->commit);
		t->finished = 1;
		return;
	}
	ck_assert_int_eq(dbc_query(t->conn, steps[t->step++], 0, NULL, txn_step, t), 0);
}

static void txn_step(PGresult *res, const char *err, void *arg)
{
	struct txn *t = arg;
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
		snprintf(t->err, sizeof t->err, "%s", err ? err : PQresultErrorMessage(res));
		dbp_release(t->p, t->conn, true);
		t->finished = 1;
		return;
	}
	txn_next(t);
}

static void txn_acquired(struct db_conn *conn, const char *err, void *arg)
{
	struct txn *t = arg;
	ck_assert_msg(conn != NULL, "%s", err);
	t->conn = conn;
	txn_next(t);
}

START_TEST(test_held_transactions)
{
	th_sql(url, "CREATE TABLE t (x int)");
	struct db_pool *p = pool(url, 1, 5000, 10);
	struct txn abandoned = {.p = p, .commit = false};
	dbp_acquire(p, txn_acquired, &abandoned);
	run_until(&abandoned.finished, 1, 10);
	ck_assert_str_eq(abandoned.err, "");
	struct txn committed = {.p = p, .commit = true};
	dbp_acquire(p, txn_acquired, &committed);
	run_until(&committed.finished, 1, 10);
	ck_assert_str_eq(committed.err, "");
	struct outcome o = {0};
	dbp_query(p, "SELECT count(*) FROM t", 0, NULL, result_cb, &o);
	run_until(&o.done, 1, 10);
	ck_assert_str_eq(o.value, "1"); /* the in-doubt release rolled its insert back */
	dbp_free(p);
}
END_TEST

Suite *pool_suite(void)
{
	Suite *s = suite_create("pool");
	TCase *tc = tcase_create("async");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_query_and_sql_error);
	tcase_add_test(tc, test_unreachable_fails_fast);
	tcase_add_test(tc, test_bounded_waiters);
	tcase_add_test(tc, test_cancel);
	tcase_add_test(tc, test_statement_deadline);
	tcase_add_test(tc, test_held_transactions);
	suite_add_tcase(s, tc);
	return s;
}
