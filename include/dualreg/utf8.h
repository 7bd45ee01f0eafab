/*
 * utf8: well-formedness of UTF-8 text as PostgreSQL requires it (no overlong forms, no
 * surrogates, nothing past U+10FFFF), and its length in characters. Text that is not
 * well formed is the client's error, caught before it reaches the database.
 *
 * Text the server itself writes from such input (a problem detail quoting a member
 * name, a JSON pointer, anything cut to fit a buffer) goes through utf8_copy, which
 * cuts only between characters and replaces what is not UTF-8, so what is sent stays
 * well formed whatever was received.
 */
#ifndef DUALREG_UTF8_H
#define DUALREG_UTF8_H

#include <stdbool.h>
#include <stddef.h>

#define UTF8_INVALID ((size_t)-1)

/* Characters in the NUL-terminated s, or UTF8_INVALID if it is not well formed. */
size_t utf8_length(const char *s);

/* Bytes (1 to 4) of the well-formed character s starts with; 0 at the terminating NUL
 * or when s does not start a well-formed character. */
size_t utf8_char_len(const char *s);

/*
 * Copies s into out (outlen >= 1 bytes, always NUL-terminated) as well-formed UTF-8:
 * each byte that does not start a well-formed character becomes U+FFFD, and the copy
 * stops between two characters, after maxchars of them or before one that would not
 * fit. Returns true when all of s was copied unchanged.
 */
bool utf8_copy(char *out, size_t outlen, const char *s, size_t maxchars);

#endif
