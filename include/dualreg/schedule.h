/*
 * schedule: the weekly pattern of sessions a dual-registered pupil spends at the
 * subsidiary school, as JSON ({"mon":["AM","PM"],"tue":["AM"]}) and as the 10-bit mask
 * stored in registration_schedules (bit (weekday-1)*2 + session; Monday AM = bit 0).
 * Every weekday session not in the mask is expected at the main school.
 */
#ifndef DUALREG_SCHEDULE_H
#define DUALREG_SCHEDULE_H

#include <cJSON.h>

/*
 * Parses a schedule object into a mask. On error returns -1 and writes the JSON pointer
 * suffix of the bad member (e.g. "/sat") into where and why into why.
 */
int schedule_parse(const cJSON *obj, unsigned *mask, char *where, size_t wherelen, char *why,
		   size_t whylen);
/* The JSON object for a mask (every weekday present, possibly with an empty list). */
cJSON *schedule_to_json(unsigned mask);

#endif
