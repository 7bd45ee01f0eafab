/*
 * calendar: dates and sessions as the API writes them: "YYYY-MM-DD" (a real Gregorian
 * date, year 1900-2199), sessions "AM"/"PM", weekdays mon..fri, and the session bit used
 * by schedules (see schedule.h). "Today" is decided by PostgreSQL (dualreg_today(), in
 * Europe/London), never by the daemon's clock.
 */
#ifndef DUALREG_CALENDAR_H
#define DUALREG_CALENDAR_H

#include <stdbool.h>

struct cal_date {
	int year, month, day;
};

/* Parses "YYYY-MM-DD" strictly. */
bool cal_parse_date(const char *text, struct cal_date *out);
/* Days from 1970-01-01 to the civil (proleptic Gregorian) date y-m-d. */
long cal_days_from_civil(long y, unsigned m, unsigned d);
/* ISO weekday, Monday = 1 ... Sunday = 7. */
int cal_weekday(const struct cal_date *d);
/* Days from a to b (b - a). */
long cal_days_between(const struct cal_date *a, const struct cal_date *b);
/* "AM" -> 0, "PM" -> 1, else -1. */
int cal_session(const char *text);
/* "HH:MM" 00:00-23:59 into minutes after midnight, or -1. */
int cal_parse_hhmm(const char *text);

#endif
