/*
 * jobs: timed work on the daemon's event loop. Owns the daily derived-D run: once a day
 * at [jobs] derive_at (a wall-clock time in Europe/London, where schools keep time) and
 * once a few seconds after start-up, so that a daemon started late in the day catches
 * up, it runs SELECT dualreg_derive_day(dualreg_today()) through the pool (never
 * blocking the loop) and logs how many marks changed. A failed run (database down) is
 * retried a minute later; several daemons may run it, the database lets one do the work.
 *
 * The London clock is computed here from the UK rule (BST from 01:00 UTC on the last
 * Sunday of March to 01:00 UTC on the last Sunday of October), so the daemon's own time
 * zone setting never matters.
 */
#ifndef DUALREG_JOBS_H
#define DUALREG_JOBS_H

#include <time.h>

struct event_base;
struct db_pool;
struct config;
struct jobs;

/* Seconds after start-up before the first run. */
#define JOBS_STARTUP_DELAY_S 2
/* Seconds before a failed run is tried again. */
#define JOBS_RETRY_S 60

/* Arms the timers. cfg is read again at every scheduling (it may be reloaded). */
struct jobs *jobs_new(struct event_base *base, struct db_pool *db, const struct config *cfg);
/* Re-arms the daily timer after a reload changed derive_at. */
void jobs_reschedule(struct jobs *j);
/* Cancels timers and a run in flight. Accepts NULL. */
void jobs_free(struct jobs *j);

/* London's offset from UTC at the instant utc: 0 (GMT) or 3600 (BST). */
long jobs_london_offset(time_t utc);
/* The first instant after now at which London's clock reads minute_of_day. */
time_t jobs_next_daily(time_t now, unsigned minute_of_day);

#endif
