/*
 * utf8: well-formedness of UTF-8 text as PostgreSQL requires it (no overlong forms, no
 * surrogates, nothing past U+10FFFF), and its length in characters. Text that is not
 * well formed is the client's error, caught before it reaches the database.
 */
#ifndef DUALREG_UTF8_H
#define DUALREG_UTF8_H

#include <stddef.h>

#define UTF8_INVALID ((size_t)-1)

/* Characters in the NUL-terminated s, or UTF8_INVALID if it is not well formed. */
size_t utf8_length(const char *s);

#endif
