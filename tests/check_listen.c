/*
 * listen: the change listener on a real event loop against the real database.
 * A burst of notifications wakes each waiter once, a waiter that is already behind is
 * woken without a notification, cancelled waiters stay asleep, stopping wakes everyone
 * and refuses new waits, and a lost connection is re-established and wakes everyone.
 * Topics: a notification naming schools wakes only the waiters of those schools (and
 * those of any school, and of every notification), "-" only the last, "" and "*" all;
 * a school's notification that arrives while its waiter's query is in flight wakes it
 * at once, another school's does not; forgetting idle topics never loses a
 * notification.
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

/* Registers c for topic (NULL: any topic) at the current generation. */
static void wait_topic(struct counted *c, const char *topic)
{
	c->w.wake = counted_wake;
	ck_assert(dbl_wait_for(l, &c->w, dbl_generation(l), topic));
}

static void notify(const char *payload)
{
	char sql[256];
	snprintf(sql, sizeof sql, "SELECT pg_notify('dualreg_events', '%s')", payload);
	th_sql(url, sql);
	run_for(0.15);
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
	struct counted a = {.w.wake = counted_wake}, b = {.w.wake = counted_wake}, t = {0};
	ck_assert(dbl_wait(l, &a.w, dbl_generation(l)));
	ck_assert(dbl_wait(l, &b.w, dbl_generation(l)));
	wait_topic(&t, "100001");
	dbl_stop(l);
	ck_assert(!dbl_is_listening(l));
	run_for(0.05);
	ck_assert_int_eq(a.wakes, 1);
	ck_assert_int_eq(b.wakes, 1);
	ck_assert_int_eq(t.wakes, 1);
	ck_assert(!dbl_wait(l, &a.w, dbl_generation(l)));
	ck_assert(!dbl_wait_for(l, &t.w, dbl_generation(l), "100001"));
	ck_assert_uint_eq(dbl_nwaiters(l), 0);
}
END_TEST

START_TEST(test_topics_wake_their_waiters)
{
	start_listening();
	/* x, y: two schools' feeds; any: an admin's feed; all: the outbox. */
	struct counted x = {0}, y = {0}, any = {0}, all = {0};
	wait_topic(&x, "100001");
	wait_topic(&y, "100002");
	wait_topic(&any, NULL);
	all.w.wake = counted_wake;
	ck_assert(dbl_wait(l, &all.w, dbl_generation(l)));
	ck_assert_uint_eq(dbl_nwaiters(l), 4);
	uint64_t w0 = dbl_wakeups(l);

	notify("100003,100001");
	ck_assert_int_eq(x.wakes, 1);
	ck_assert_int_eq(y.wakes, 0);
	ck_assert_int_eq(any.wakes, 1);
	ck_assert_int_eq(all.wakes, 1);
	ck_assert_uint_eq(dbl_wakeups(l), w0 + 3);
	ck_assert_uint_eq(dbl_nwaiters(l), 1); /* y sleeps on */

	/* "-": no school's events; only the waiter of every notification. */
	wait_topic(&x, "100001");
	wait_topic(&any, NULL);
	ck_assert(dbl_wait(l, &all.w, dbl_generation(l)));
	notify("-");
	ck_assert_int_eq(x.wakes, 1);
	ck_assert_int_eq(y.wakes, 0);
	ck_assert_int_eq(any.wakes, 1);
	ck_assert_int_eq(all.wakes, 2);

	/* "*" and "" concern everything. */
	ck_assert(dbl_wait(l, &all.w, dbl_generation(l)));
	notify("*");
	ck_assert_int_eq(x.wakes, 2);
	ck_assert_int_eq(y.wakes, 1);
	ck_assert_int_eq(any.wakes, 2);
	ck_assert_int_eq(all.wakes, 3);
	wait_topic(&x, "100001");
	wait_topic(&y, "100002");
	th_sql(url, "NOTIFY dualreg_events");
	run_for(0.15);
	ck_assert_int_eq(x.wakes, 3);
	ck_assert_int_eq(y.wakes, 2);

	/* A payload that cannot be read (a name too long for a topic) concerns everything;
	 * so does "*" among names. */
	wait_topic(&x, "100001");
	wait_topic(&y, "100002");
	notify("100003,this-is-far-too-long-a-name");
	ck_assert_int_eq(x.wakes, 4);
	ck_assert_int_eq(y.wakes, 3);
	wait_topic(&x, "100001");
	wait_topic(&y, "100002");
	notify("100003,*");
	ck_assert_int_eq(x.wakes, 5);
	ck_assert_int_eq(y.wakes, 4);

	/* A burst naming x many times wakes it once and y never. */
	wait_topic(&x, "100001");
	wait_topic(&y, "100002");
	th_sql(url, "SELECT pg_notify('dualreg_events', '100001,1' || g::text) "
		    "FROM generate_series(1, 50) g");
	run_for(0.2);
	ck_assert_int_eq(x.wakes, 6);
	ck_assert_int_eq(y.wakes, 4);
	dbl_cancel(l, &y.w);
	ck_assert_uint_eq(dbl_nwaiters(l), 0);
	/* A topic that cannot be one waits for any topic. */
	wait_topic(&x, "a,b");
	notify("100009");
	ck_assert_int_eq(x.wakes, 7);
}
END_TEST

START_TEST(test_topic_notification_in_flight_is_not_lost)
{
	start_listening();
	struct counted x = {.w.wake = counted_wake}, y = {.w.wake = counted_wake},
		       any = {.w.wake = counted_wake};
	/* All three query at g, then a notification for 100001 arrives before they
	 * register again. */
	uint64_t g = dbl_generation(l);
	notify("100001");
	ck_assert_uint_gt(dbl_generation(l), g);
	ck_assert(dbl_wait_for(l, &x.w, g, "100001"));
	ck_assert(dbl_wait_for(l, &y.w, g, "100002"));
	ck_assert(dbl_wait_for(l, &any.w, g, NULL));
	run_for(0.1);
	ck_assert_int_eq(x.wakes, 1); /* its school's event came in while it queried */
	ck_assert_int_eq(any.wakes, 1);
	ck_assert_int_eq(y.wakes, 0); /* not its school: no query again */
	ck_assert_uint_eq(dbl_nwaiters(l), 1);
	/* A topic nobody has named yet is not behind either. */
	struct counted z = {.w.wake = counted_wake};
	ck_assert(dbl_wait_for(l, &z.w, g, "100077"));
	run_for(0.1);
	ck_assert_int_eq(z.wakes, 0);
	dbl_cancel(l, &y.w);
	dbl_cancel(l, &z.w);
}
END_TEST

START_TEST(test_forgotten_topics_lose_nothing)
{
	start_listening();
	/* kept waits throughout; late queried before the flood and registers after it. */
	struct counted kept = {0}, late = {.w.wake = counted_wake}, fresh = {0};
	wait_topic(&kept, "kept");
	uint64_t g = dbl_generation(l);
	notify("late");
	/* 6000 other topics, more than the listener keeps when nobody waits on them. */
	for (int batch = 0; batch < 6; batch++) {
		char sql[256];
		snprintf(sql, sizeof sql,
			 "SELECT pg_notify('dualreg_events', string_agg('t' || g::text, ',')) "
			 "FROM generate_series(%d, %d) g",
			 batch * 1000, batch * 1000 + 999);
		th_sql(url, sql);
	}
	run_for(0.3);
	ck_assert_int_eq(kept.wakes, 0);
	ck_assert(dbl_wait_for(l, &late.w, g, "late"));
	run_for(0.1);
	ck_assert_int_eq(late.wakes, 1);
	/* Up to date, a forgotten or new topic sleeps until it is named. */
	wait_topic(&fresh, "t17");
	run_for(0.1);
	ck_assert_int_eq(fresh.wakes, 0);
	notify("t17");
	ck_assert_int_eq(fresh.wakes, 1);
	ck_assert_int_eq(kept.wakes, 0);
	notify("kept");
	ck_assert_int_eq(kept.wakes, 1);
}
END_TEST

START_TEST(test_reconnect_wakes_all)
{
	start_listening();
	struct counted c = {.w.wake = counted_wake}, t = {0}, any = {0};
	ck_assert(dbl_wait(l, &c.w, dbl_generation(l)));
	wait_topic(&t, "100001");
	wait_topic(&any, NULL);
	PGconn *pg = PQconnectdb(url);
	ck_assert_int_eq(PQstatus(pg), CONNECTION_OK);
	PGresult *res = PQexec(pg, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
				   "WHERE datname = current_database() AND query LIKE 'LISTEN%'");
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "1");
	PQclear(res);
	PQfinish(pg);
	/* No notification is sent, yet the waiter is woken once the LISTEN is back. */
	double deadline = th_now() + 10;
	while ((c.wakes == 0 || t.wakes == 0 || any.wakes == 0) && th_now() < deadline)
		run_for(0.05);
	ck_assert_int_eq(c.wakes, 1);
	ck_assert_int_eq(t.wakes, 1);
	ck_assert_int_eq(any.wakes, 1);
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
	tcase_add_test(tc, test_topics_wake_their_waiters);
	tcase_add_test(tc, test_topic_notification_in_flight_is_not_lost);
	tcase_add_test(tc, test_forgotten_topics_lose_nothing);
	suite_add_tcase(s, tc);
	return s;
}
