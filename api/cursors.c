/* cursors: the API's page cursors (see cursors.h). */
#include "cursors.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void cursor_changes_encode(const char *tx, const char *id, char out[CURSOR_CHANGES_MAX])
{
	char raw[2 * CURSOR_NUM_MAX + 2];
	int n = snprintf(raw, sizeof raw, "%s:%s", tx, id);
	if (n < 0 || (size_t)n >= sizeof raw)
		n = 0; /* not reached with decimal text of at most 20 digits each */
	size_t o = 0;
	for (int i = 0; i < n; i += 3) {
		unsigned v = (unsigned char)raw[i] << 16;
		if (i + 1 < n)
			v |= (unsigned char)raw[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)raw[i + 2];
		out[o++] = b64url[(v >> 18) & 63];
		out[o++] = b64url[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = b64url[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = b64url[v & 63];
	}
	out[o] = '\0';
}

/* Decodes base64url (padding optional) into out; false if malformed or too long. */
static bool b64url_decode(const char *in, char *out, size_t outlen)
{
	size_t n = strlen(in);
	while (n > 0 && in[n - 1] == '=')
		n--;
	if (n % 4 == 1)
		return false;
	unsigned v = 0;
	int bits = 0;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		const char *p = strchr(b64url, in[i]);
		if (in[i] == '\0' || p == NULL)
			return false;
		v = (v << 6) | (unsigned)(p - b64url);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o + 1 >= outlen)
				return false;
			out[o++] = (char)((v >> bits) & 0xff);
		}
	}
	out[o] = '\0';
	return true;
}

/* A run of 1-20 decimal digits whose value fits max, written back canonically. */
static bool decimal_in(const char *s, size_t len, uint64_t max, char *out, size_t outlen)
{
	if (len == 0 || len > 20 || len >= outlen)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (max - d) / 10)
			return false;
		v = v * 10 + d;
	}
	snprintf(out, outlen, "%" PRIu64, v);
	return true;
}

bool cursor_changes_decode(const char *cursor, char tx[CURSOR_NUM_MAX], char id[CURSOR_NUM_MAX])
{
	char raw[64];
	if (!b64url_decode(cursor, raw, sizeof raw))
		return false;
	const char *colon = strchr(raw, ':');
	if (colon == NULL)
		return false;
	return decimal_in(raw, (size_t)(colon - raw), UINT64_MAX, tx, CURSOR_NUM_MAX) &&
	       decimal_in(colon + 1, strlen(colon + 1), INT64_MAX, id, CURSOR_NUM_MAX);
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool cursor_schools_decode(const char *cursor, char urn[7])
{
	char raw[10];
	if (strlen(cursor) != 18)
		return false;
	for (size_t i = 0; i < 9; i++) {
		int hi = hex_digit(cursor[2 * i]), lo = hex_digit(cursor[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		raw[i] = (char)(hi << 4 | lo);
	}
	raw[9] = '\0';
	if (strncmp(raw, "s1:", 3) != 0)
		return false;
	for (size_t i = 3; i < 9; i++)
		if (raw[i] < '0' || raw[i] > '9')
			return false;
	memcpy(urn, raw + 3, 6);
	urn[6] = '\0';
	return true;
}
