/*
 * cursors: the page cursors the API hands out and reads back, as opaque text.
 *   change feed:   base64url (unpadded) of "<tx>:<id>", the (transaction, event id) the
 *                  page ended at; tx an unsigned 64-bit, id a signed 64-bit positive
 *                  decimal.
 *   schools list:  lower-case hex of "s1:" + the last URN of the page (encoded by the
 *                  list's SQL, read here).
 * A cursor that is not one of these is refused by the caller (422), never guessed at.
 */
#ifndef DUALREG_API_CURSORS_H
#define DUALREG_API_CURSORS_H

#include <stdbool.h>
#include <stddef.h>

#define CURSOR_CHANGES_MAX 80 /* an encoded change-feed cursor and its NUL */
#define CURSOR_NUM_MAX 24     /* a decoded tx or id and its NUL */

/* tx and id are decimal text (each at most 20 digits). */
void cursor_changes_encode(const char *tx, const char *id, char out[CURSOR_CHANGES_MAX]);
/* true with tx and id (CURSOR_NUM_MAX each, canonical decimal) when cursor is one. */
bool cursor_changes_decode(const char *cursor, char tx[CURSOR_NUM_MAX], char id[CURSOR_NUM_MAX]);
/* true with the URN (6 digits and NUL) when cursor is a schools-list cursor. */
bool cursor_schools_decode(const char *cursor, char urn[7]);

#endif
