/* utf8: well-formed UTF-8, its length, and copies made well formed (see utf8.h). */
#include "dualreg/utf8.h"

#include <string.h>

size_t utf8_char_len(const char *s)
{
	static const unsigned min[] = {0, 0x80, 0x800, 0x10000};
	const unsigned char *p = (const unsigned char *)s;
	int extra;
	unsigned cp;
	if (*p == 0)
		return 0;
	if (*p < 0x80)
		return 1;
	if ((*p & 0xe0) == 0xc0) {
		extra = 1;
		cp = *p & 0x1f;
	} else if ((*p & 0xf0) == 0xe0) {
		extra = 2;
		cp = *p & 0x0f;
	} else if ((*p & 0xf8) == 0xf0) {
		extra = 3;
		cp = *p & 0x07;
	} else {
		return 0;
	}
	/* A NUL is not a continuation byte, so this never reads past the terminator. */
	for (int i = 1; i <= extra; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return (size_t)extra + 1;
}

size_t utf8_length(const char *text)
{
	size_t n = 0;
	while (*text != '\0') {
		size_t len = utf8_char_len(text);
		if (len == 0)
			return UTF8_INVALID;
		text += len;
		n++;
	}
	return n;
}

bool utf8_copy(char *out, size_t outlen, const char *s, size_t maxchars)
{
	static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */
	size_t o = 0, nchars = 0;
	bool whole = true;
	while (*s != '\0') {
		size_t len = utf8_char_len(s);
		const char *c = len > 0 ? s : replacement;
		size_t clen = len > 0 ? len : sizeof replacement - 1;
		if (nchars == maxchars || o + clen >= outlen) {
			whole = false;
			break;
		}
		memcpy(out + o, c, clen);
		o += clen;
		nchars++;
		if (len == 0) {
			whole = false;
			len = 1; /* one byte that is no character: replaced, then skipped */
		}
		s += len;
	}
	out[o] = '\0';
	return whole;
}
