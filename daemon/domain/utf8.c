/* utf8: well-formed UTF-8 and its length (see utf8.h). */
#include "dualreg/utf8.h"

size_t utf8_length(const char *text)
{
	static const unsigned min[] = {0, 0x80, 0x800, 0x10000};
	const unsigned char *p = (const unsigned char *)text;
	size_t n = 0;
	while (*p) {
		int extra;
		unsigned cp;
		if (*p < 0x80) {
			extra = 0;
			cp = *p;
		} else if ((*p & 0xe0) == 0xc0) {
			extra = 1;
			cp = *p & 0x1f;
		} else if ((*p & 0xf0) == 0xe0) {
			extra = 2;
			cp = *p & 0x0f;
		} else if ((*p & 0xf8) == 0xf0) {
			extra = 3;
			cp = *p & 0x07;
		} else {
			return UTF8_INVALID;
		}
		p++;
		for (int i = 0; i < extra; i++, p++) {
			if ((*p & 0xc0) != 0x80)
				return UTF8_INVALID;
			cp = (cp << 6) | (*p & 0x3f);
		}
		if (cp < min[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return UTF8_INVALID;
		n++;
	}
	return n;
}
