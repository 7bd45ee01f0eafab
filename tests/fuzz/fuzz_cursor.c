/*
 * fuzz_cursor: the page cursors clients send back (GET /v1/changes?since=, GET
 * /v1/schools?cursor=). An accepted change-feed cursor decodes to canonical decimals and
 * encodes back to a cursor that decodes to the same; an accepted schools cursor names a
 * six-digit URN.
 */
#include "../../api/cursors.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *cursor = fuzz_cstr(data, size);
	char tx[CURSOR_NUM_MAX], id[CURSOR_NUM_MAX];
	if (cursor_changes_decode(cursor, tx, id)) {
		FUZZ_ASSERT(tx[0] != '\0' && strspn(tx, "0123456789") == strlen(tx));
		FUZZ_ASSERT(id[0] != '\0' && strspn(id, "0123456789") == strlen(id));
		FUZZ_ASSERT((tx[0] != '0' || tx[1] == '\0') && (id[0] != '0' || id[1] == '\0'));
		char again[CURSOR_CHANGES_MAX], tx2[CURSOR_NUM_MAX], id2[CURSOR_NUM_MAX];
		cursor_changes_encode(tx, id, again);
		FUZZ_ASSERT(cursor_changes_decode(again, tx2, id2));
		FUZZ_ASSERT(strcmp(tx, tx2) == 0 && strcmp(id, id2) == 0);
	}
	char urn[7];
	if (cursor_schools_decode(cursor, urn))
		FUZZ_ASSERT(strlen(urn) == 6 && strspn(urn, "0123456789") == 6);
	free(cursor);
	return 0;
}
