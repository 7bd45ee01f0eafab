/*
 * jobs: the daily derived-D run (see jobs.h). One timer drives it: armed for the
 * start-up run, then for the next daily time after each success, or for a retry after a
 * failure. At most one run is in flight; a timer that fires during one is ignored and
 * the next time is chosen when the run ends.
 */
#include "dualreg/jobs.h"

#include <event2/event.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/calendar.h"
#include "dualreg/config.h"
#include "dualreg/db.h"
#include "dualreg/log.h"
#include "dualreg/xalloc.h"

struct jobs {
	struct event_base *base;
	struct db_pool *db;
	const struct config *cfg;
	struct event *timer;
	struct db_op *op;  /* the run in flight */
	bool retry_pending; /* the timer is armed for a retry, not the daily time */
};

/* The year of a day count since 1970-01-01. */
static long year_of_days(long z)
{
	z += 719468;
	long era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	unsigned m = mp < 10 ? mp + 3 : mp - 9;
	return (long)yoe + era * 400 + (m <= 2);
}

/* Day count of the last Sunday of month m (March or October) of year y. */
static long last_sunday(long y, unsigned m)
{
	long last = cal_days_from_civil(y, m, 31);
	long wd = (last + 4) % 7; /* 1970-01-01 was a Thursday; 0 = Sunday */
	if (wd < 0)
		wd += 7;
	return last - wd;
}

long jobs_london_offset(time_t utc)
{
	long t = (long)utc;
	long days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
	long y = year_of_days(days);
	long start = last_sunday(y, 3) * 86400 + 3600;  /* 01:00 UTC */
	long end = last_sunday(y, 10) * 86400 + 3600;   /* 01:00 UTC */
	return t >= start && t < end ? 3600 : 0;
}

time_t jobs_next_daily(time_t now, unsigned minute_of_day)
{
	long local = (long)now + jobs_london_offset(now);
	long day = local >= 0 ? local / 86400 : (local - 86399) / 86400;
	for (long k = 0; k < 3; k++) {
		long want_local = (day + k) * 86400 + (long)minute_of_day * 60;
		/* Local to UTC: the offset at the answer, found in two steps. */
		long u = want_local - jobs_london_offset((time_t)want_local);
		u = want_local - jobs_london_offset((time_t)u);
		if (u > (long)now)
			return (time_t)u;
	}
	return now + 86400; /* not reached */
}

static void arm(struct jobs *j, long seconds)
{
	struct timeval tv = {seconds > 0 ? seconds : 0, 0};
	evtimer_add(j->timer, &tv);
}

static void arm_daily(struct jobs *j)
{
	time_t now = time(NULL);
	time_t next = jobs_next_daily(now, j->cfg->derive_at_min);
	j->retry_pending = false;
	arm(j, (long)(next - now));
	log_debug("derive job scheduled", "in_s=%ld at=%02u:%02u", (long)(next - now),
		  j->cfg->derive_at_min / 60, j->cfg->derive_at_min % 60);
}

static void run_done(PGresult *res, const char *err, void *arg)
{
	struct jobs *j = arg;
	j->op = NULL;
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		const char *why = res == NULL ? err : PQresultErrorMessage(res);
		log_warn("derive job failed; retrying", "in_s=%d err=\"%.*s\"", JOBS_RETRY_S,
			 (int)strcspn(why, "\n"), why);
		j->retry_pending = true;
		arm(j, JOBS_RETRY_S);
		return;
	}
	if (PQgetisnull(res, 0, 0))
		log_info("derive job skipped: another daemon is running it", "");
	else
		log_info("derive job done", "date=%s changed=%s", PQgetvalue(res, 0, 1),
			 PQgetvalue(res, 0, 0));
	arm_daily(j);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct jobs *j = arg;
	if (j->op != NULL)
		return; /* still running; rescheduled when it ends */
	log_info("derive job starting", "");
	j->op = dbp_query(j->db, "SELECT dualreg_derive_day(dualreg_today()), dualreg_today()", 0,
			  NULL, run_done, j);
}

struct jobs *jobs_new(struct event_base *base, struct db_pool *db, const struct config *cfg)
{
	struct jobs *j = xcalloc(1, sizeof *j);
	j->base = base;
	j->db = db;
	j->cfg = cfg;
	j->timer = evtimer_new(base, timer_cb, j);
	j->retry_pending = true; /* the start-up run comes first */
	arm(j, JOBS_STARTUP_DELAY_S);
	return j;
}

void jobs_reschedule(struct jobs *j)
{
	if (j == NULL || j->op != NULL || j->retry_pending)
		return; /* the next time is chosen when that run ends */
	evtimer_del(j->timer);
	arm_daily(j);
}

void jobs_free(struct jobs *j)
{
	if (j == NULL)
		return;
	if (j->op != NULL)
		db_op_cancel(j->op);
	event_free(j->timer);
	free(j);
}
