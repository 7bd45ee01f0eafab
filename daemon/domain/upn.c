/* upn: format and check letter of Unique Pupil Numbers (see upn.h). */
#include "dualreg/upn.h"

#include <string.h>

static const char check_alphabet[] = "ABCDEFGHJKLMNPQRTUVWXYZ";

static int alphabet_index(char c)
{
	const char *p = strchr(check_alphabet, c);
	return c != '\0' && p != NULL ? (int)(p - check_alphabet) : -1;
}

enum upn_result upn_validate(const char *upn, char *expected)
{
	if (strlen(upn) != 13 || alphabet_index(upn[0]) < 0)
		return UPN_BAD_FORMAT;
	int sum = 0;
	for (int i = 1; i < 13; i++) {
		char c = upn[i];
		int v;
		if (c >= '0' && c <= '9')
			v = c - '0';
		else if (i == 12 && (v = alphabet_index(c)) >= 0)
			; /* temporary UPN: a letter in the last position */
		else
			return UPN_BAD_FORMAT;
		sum += v * (i + 1);
	}
	char want = check_alphabet[sum % 23];
	if (upn[0] != want) {
		if (expected != NULL)
			*expected = want;
		return UPN_BAD_CHECK;
	}
	return UPN_OK;
}
