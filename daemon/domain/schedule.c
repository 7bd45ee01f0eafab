/* schedule: JSON <-> mask for weekly subsidiary schedules (see schedule.h). */
#include "dualreg/schedule.h"

#include <stdio.h>
#include <string.h>

#include "dualreg/calendar.h"

static const char *const days[] = {"mon", "tue", "wed", "thu", "fri"};

int schedule_parse(const cJSON *obj, unsigned *mask, char *where, size_t wherelen, char *why,
		   size_t whylen)
{
	*mask = 0;
	where[0] = '\0';
	if (!cJSON_IsObject(obj)) {
		snprintf(why, whylen, "must be an object such as {\"mon\": [\"AM\", \"PM\"]}");
		return -1;
	}
	const cJSON *day;
	cJSON_ArrayForEach(day, obj)
	{
		int d = -1;
		for (int i = 0; i < 5; i++)
			if (strcmp(day->string, days[i]) == 0)
				d = i;
		snprintf(where, wherelen, "/%s", day->string);
		if (d < 0) {
			snprintf(why, whylen, "unknown day \"%s\" (mon, tue, wed, thu or fri)",
				 day->string);
			return -1;
		}
		if (!cJSON_IsArray(day)) {
			snprintf(why, whylen, "must be a list of sessions, e.g. [\"AM\"]");
			return -1;
		}
		const cJSON *s;
		int idx = 0;
		cJSON_ArrayForEach(s, day)
		{
			int sess = cJSON_IsString(s) ? cal_session(s->valuestring) : -1;
			if (sess < 0) {
				snprintf(where, wherelen, "/%s/%d", day->string, idx);
				snprintf(why, whylen, "sessions are \"AM\" or \"PM\"");
				return -1;
			}
			unsigned bit = 1u << (d * 2 + sess);
			if (*mask & bit) {
				snprintf(where, wherelen, "/%s/%d", day->string, idx);
				snprintf(why, whylen, "session listed twice");
				return -1;
			}
			*mask |= bit;
			idx++;
		}
	}
	return 0;
}

cJSON *schedule_to_json(unsigned mask)
{
	cJSON *o = cJSON_CreateObject();
	for (int d = 0; d < 5; d++) {
		cJSON *list = cJSON_AddArrayToObject(o, days[d]);
		if (mask & (1u << (d * 2)))
			cJSON_AddItemToArray(list, cJSON_CreateString("AM"));
		if (mask & (1u << (d * 2 + 1)))
			cJSON_AddItemToArray(list, cJSON_CreateString("PM"));
	}
	return o;
}
