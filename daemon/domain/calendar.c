/* calendar: strict date, session and time-of-day parsing (see calendar.h). */
#include "dualreg/calendar.h"

#include <string.h>

static bool digits(const char *s, int n)
{
	for (int i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static int num(const char *s, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

static bool leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

bool cal_parse_date(const char *t, struct cal_date *out)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (strlen(t) != 10 || t[4] != '-' || t[7] != '-' || !digits(t, 4) || !digits(t + 5, 2) ||
	    !digits(t + 8, 2))
		return false;
	int y = num(t, 4), m = num(t + 5, 2), d = num(t + 8, 2);
	if (y < 1900 || y > 2199 || m < 1 || m > 12 || d < 1)
		return false;
	int maxd = mdays[m - 1] + (m == 2 && leap(y));
	if (d > maxd)
		return false;
	out->year = y;
	out->month = m;
	out->day = d;
	return true;
}

long cal_days_from_civil(long y, unsigned m, unsigned d)
{
	y -= m <= 2;
	long era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (long)doe - 719468;
}

static long days_from_civil(const struct cal_date *d)
{
	return cal_days_from_civil(d->year, (unsigned)d->month, (unsigned)d->day);
}

int cal_weekday(const struct cal_date *d)
{
	long z = days_from_civil(d); /* 1970-01-01 was a Thursday (4) */
	return (int)(((z % 7) + 7 + 3) % 7) + 1;
}

long cal_days_between(const struct cal_date *a, const struct cal_date *b)
{
	return days_from_civil(b) - days_from_civil(a);
}

int cal_session(const char *text)
{
	if (strcmp(text, "AM") == 0)
		return 0;
	if (strcmp(text, "PM") == 0)
		return 1;
	return -1;
}

int cal_parse_hhmm(const char *t)
{
	if (strlen(t) != 5 || t[2] != ':' || !digits(t, 2) || !digits(t + 3, 2))
		return -1;
	int h = num(t, 2), m = num(t + 3, 2);
	if (h > 23 || m > 59)
		return -1;
	return h * 60 + m;
}
