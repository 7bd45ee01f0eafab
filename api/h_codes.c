/*
 * codes: GET /v1/attendance-codes, the national attendance codes as the database's
 * attendance_codes table holds them (meaning, category, whether a possible session, the
 * days a new mark may use it), so that a client showing marks to people names them from
 * the one list the rules use.
 *   200 {"codes": [{"code", "meaning", "category", "possible", "valid_from", "valid_to"}]}
 */
#include "handlers.h"
#include "sql_reply.h"

void h_attendance_codes(struct api_req *r)
{
	sql_reply_query(r, "SELECT 200, dualreg_attendance_codes_json()", 0, NULL);
}
