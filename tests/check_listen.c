/*
 * listen: the change listener on a real event loop against the real database.
 * A burst of notifications wakes each waiter once, a waiter that is already behind is
 * woken without a notification, cancelled waiters stay asleep, stopping wakes everyone
 * and refuses new waits, and a lost connection is re-established and wakes everyone.
 */
#include <event2/event.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dualreg/listen.h"
#include "dualreg/log.h"
#include "harness.h"
#include "suites.h"

static struct event_base *base;
static char url[1024];
static struct db_listener *l;

struct counted {
	struct dbl_waiter w; /* first: the callback casts back */
	int wakes;
	bool rewait; /* register again, up to date, after each wake */
};

static void counted_wake(struct dbl_waiter *w)
{
	struct counted *c = (struct counted *)w;
	c->wakes++;
	if (c->rewait)
		ck_assert(dbl_wait(l, &c->w, dbl_generation(l)));
}

static void setup(void)
{
	log_set_level(LOG_ERROR); /* the reconnect test's warning is expected */
	base = event_base_new();
	th_db_create(url, sizeof url);
	l = dbl_new(base, url, 2000, "dualreg_events");
}

static void teardown(void)
{
	dbl_free(l);
	event_base_free(base);
}

/* Runs the loop for about `seconds` (bounded even when nothing happens). */
static void run_for(double seconds)
{
	struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6)};
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static void start_listening(void)
{
	dbl_start(l);
	double deadline = th_now() + 10;
	while (!dbl_is_listening(l) && th_now() < deadline)
		run_for(0.02);
	ck_assert(dbl_is_listening(l));
	run_for(0.05); /* the connect round (no waiters yet) */
}

START_TEST(test_burst_wakes_each_waiter_once)
{
	start_listening();
	struct counted c[3] = {{.rewait = true}, {.rewait = true}, {.rewait = true}};
	uint64_t g0 = dbl_generation(l);
	for (int i = 0; i < 3; i++) {
		c[i].w.wake = counted_wake;
		ck_assert(dbl_wait(l, &c[i].w, g0));
	}
	ck_assert_uint_eq(dbl_nwaiters(l), 3);
	/* 50 distinct notifications, delivered together at commit. */
	th_sql(url, "SELECT pg_notify('dualreg_events', g::text) FROM generate_series(1, 50) g");
	run_for(0.3);
	ck_assert_uint_eq(dbl_generation(l), g0 + 50);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(c[i].wakes, 1);
	ck_assert_uint_eq(dbl_nwaiters(l), 3); /* they registered again */
	/* Another channel does not wake anyone. */
	th_sql(url, "SELECT pg_notify('something_else', '')");
	run_for(0.1);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(c[i].wakes, 1);
	for (int i = 0; i < 3; i++)
		dbl_cancel(l, &c[i].w);
	ck_assert_uint_eq(dbl_nwaiters(l), 0);
}
END_TEST

START_TEST(test_behind_waiter_wakes_at_once)
{
	start_listening();
	struct counted c = {.w.wake = counted_wake};
	/* Queried before the last notification: woken without waiting for another. */
	ck_assert(dbl_wait(l, &c.w, dbl_generation(l) - 1));
	run_for(0.1);
	ck_assert_int_eq(c.wakes, 1);
	ck_assert_uint_eq(dbl_nwaiters(l), 0);
	/* Up to date: sleeps until a notification. */
	ck_assert(dbl_wait(l, &c.w, dbl_generation(l)));
	run_for(0.1);
	ck_assert_int_eq(c.wakes, 1);
	th_sql(url, "NOTIFY dualreg_events");
	run_for(0.2);
	ck_assert_int_eq(c.wakes, 2);
}
END_TEST

START_TEST(test_cancelled_waiter_sleeps)
{
	start_listening();
	struct counted a = {.w.wake = counted_wake}, b = {.w.wake = counted_wake};
	ck_assert(dbl_wait(l, &a.w, dbl_generation(l)));
	ck_assert(dbl_wait(l, &b.w, dbl_generation(l)));
	dbl_cancel(l, &a.w);
	dbl_cancel(l, &a.w); /* twice is harmless */
	th_sql(url, "NOTIFY dualreg_events");
	run_for(0.2);
	ck_assert_int_eq(a.wakes, 0);
	ck_assert_int_eq(b.wakes, 1);
}
END_TEST

START_TEST(test_stop_wakes_all_and_refuses)
{
	start_listening();
	struct counted a = {.w.wake = counted_wake}, b = {.w.wake = counted_wake};
	ck_assert(dbl_wait(l, &a.w, dbl_generation(l)));
	ck_assert(dbl_wait(l, &b.w, dbl_generation(l)));
	dbl_stop(l);
	ck_assert(!dbl_is_listening(l));
	run_for(0.05);
	ck_assert_int_eq(a.wakes, 1);
	ck_assert_int_eq(b.wakes, 1);
	ck_assert(!dbl_wait(l, &a.w, dbl_generation(l)));
	ck_assert_uint_eq(dbl_nwaiters(l), 0);
}
END_TEST

START_TEST(test_reconnect_wakes_all)
{
	start_listening();
	struct counted c = {.w.wake = counted_wake};
	ck_assert(dbl_wait(l, &c.w, dbl_generation(l)));
	PGconn *pg = PQconnectdb(url);
	ck_assert_int_eq(PQstatus(pg), CONNECTION_OK);
	PGresult *res = PQexec(pg, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
				   "WHERE datname = current_database() AND query LIKE 'LISTEN%'");
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "1");
	PQclear(res);
	PQfinish(pg);
	/* No notification is sent, yet the waiter is woken once the LISTEN is back. */
	double deadline = th_now() + 10;
	while (c.wakes == 0 && th_now() < deadline)
		run_for(0.05);
	ck_assert_int_eq(c.wakes, 1);
	ck_assert(dbl_is_listening(l));
	/* And notifications arrive again. */
	ck_assert(dbl_wait(l, &c.w, dbl_generation(l)));
	th_sql(url, "NOTIFY dualreg_events");
	run_for(0.2);
	ck_assert_int_eq(c.wakes, 2);
}
END_TEST

Suite *listen_suite(void)
{
	Suite *s = suite_create("listen");
	TCase *tc = tcase_create("listener");
	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_burst_wakes_each_waiter_once);
	tcase_add_test(tc, test_behind_waiter_wakes_at_once);
	tcase_add_test(tc, test_cancelled_waiter_sleeps);
	tcase_add_test(tc, test_stop_wakes_all_and_refuses);
	tcase_add_test(tc, test_reconnect_wakes_all);
	suite_add_tcase(s, tc);
	return s;
}
