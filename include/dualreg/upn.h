/*
 * upn: the Unique Pupil Number. 13 characters: a check letter, then the 3-digit LA
 * number, 4-digit establishment number, 2-digit year and a 3-character serial (three
 * digits, or for a temporary UPN two digits and a letter). The check letter is the
 * weighted sum of characters 2-13 (digit = its value, a final letter = its index in the
 * check alphabet; weights 2..13) mod 23, mapped through ABCDEFGHJKLMNPQRTUVWXYZ.
 */
#ifndef DUALREG_UPN_H
#define DUALREG_UPN_H

enum upn_result { UPN_OK, UPN_BAD_FORMAT, UPN_BAD_CHECK };

/* Validates upn; on UPN_BAD_CHECK *expected is the letter it should start with. */
enum upn_result upn_validate(const char *upn, char *expected);

#endif
