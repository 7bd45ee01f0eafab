/*
 * fuzz_schedule: a registration's weekly schedule ({"mon": ["AM", "PM"], ...}) as the
 * registration handlers read it (schedule_parse), in buffers for the error's place
 * from small to ample. An accepted schedule's mask prints (schedule_to_json) and reads
 * back to the same mask; a refusal says where and why, within its buffers.
 */
#include "dualreg/schedule.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cJSON *obj = cJSON_ParseWithLength((const char *)data, size);
	if (obj == NULL)
		return 0;
	static const size_t wherelens[] = {1, 6, 64};
	unsigned first = 0;
	int first_rc = 0;
	for (size_t i = 0; i < sizeof wherelens / sizeof wherelens[0]; i++) {
		char where[64], why[160];
		unsigned mask = ~0u;
		int rc = schedule_parse(obj, &mask, where, wherelens[i], why, sizeof why);
		FUZZ_ASSERT(strlen(where) < wherelens[i]);
		if (i == 0) {
			first = mask;
			first_rc = rc;
		}
		FUZZ_ASSERT(rc == first_rc);
		if (rc != 0) {
			FUZZ_ASSERT(why[0] != '\0');
			continue;
		}
		FUZZ_ASSERT(mask == first && mask < (1u << 10));
		cJSON *back = schedule_to_json(mask);
		unsigned again = ~0u;
		FUZZ_ASSERT(schedule_parse(back, &again, where, sizeof where, why, sizeof why) == 0);
		FUZZ_ASSERT(again == mask);
		cJSON_Delete(back);
	}
	cJSON_Delete(obj);
	return 0;
}
