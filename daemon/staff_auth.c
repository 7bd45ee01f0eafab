/* staff_auth: the credentials of staff accounts (see staff_auth.h). */
#include <argon2.h>
#include <ctype.h>
#include <inttypes.h>
#include <liboath/oath.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <qrencode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/auth_token.h"
#include "dualreg/staff_auth.h"
#include "dualreg/utf8.h"

/* The bundled list: common_passwords[], sorted (C locale), lower case, no repeats. */
#include "common_passwords.h"

#define SALT_BYTES 16
#define HASH_BYTES 32

/* ---- passwords ---- */

int staff_password_hash(const char *password, char out[STAFF_HASH_MAX])
{
	unsigned char salt[SALT_BYTES];
	out[0] = '\0';
	if (password == NULL || RAND_bytes(salt, sizeof salt) != 1)
		return -1;
	int rc = argon2id_hash_encoded(STAFF_ARGON2_T, STAFF_ARGON2_M_KIB, STAFF_ARGON2_P,
				       password, strlen(password), salt, sizeof salt, HASH_BYTES,
				       out, STAFF_HASH_MAX);
	if (rc != ARGON2_OK) {
		out[0] = '\0';
		return -1;
	}
	return 0;
}

bool staff_password_verify(const char *encoded, const char *password)
{
	if (encoded == NULL || password == NULL || strncmp(encoded, "$argon2id$", 10) != 0)
		return false;
	return argon2id_verify(encoded, password, strlen(password)) == ARGON2_OK;
}

const char *staff_password_dummy_hash(void)
{
	/* The hash of 32 random bytes that were not kept. */
	return "$argon2id$v=19$m=19456,t=2,p=1$PTBYgDLKO2YC0f79RH789A$"
	       "TxzV+xU2i6+/8MtMa/FBLdFv0XLnDHlsIgVxW2vdTmo";
}

bool staff_password_needs_rehash(const char *encoded)
{
	char want[64];
	snprintf(want, sizeof want, "$argon2id$v=19$m=%d,t=%d,p=%d$", STAFF_ARGON2_M_KIB,
		 STAFF_ARGON2_T, STAFF_ARGON2_P);
	return encoded == NULL || strncmp(encoded, want, strlen(want)) != 0;
}

size_t staff_common_password_count(void)
{
	return sizeof common_passwords / sizeof common_passwords[0];
}

/* Binary search of the sorted list for the lower-case text. */
static bool common_lower(const char *lower)
{
	size_t lo = 0, hi = staff_common_password_count();
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(lower, common_passwords[mid]);
		if (c == 0)
			return true;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return false;
}

/* ASCII lower case of text into out (outlen bytes); false if it does not fit. */
static bool lower_copy(const char *text, char *out, size_t outlen)
{
	size_t n = strlen(text);
	if (n >= outlen)
		return false;
	for (size_t i = 0; i <= n; i++)
		out[i] = (char)tolower((unsigned char)text[i]);
	return true;
}

bool staff_password_is_common(const char *text)
{
	char lower[STAFF_PASSWORD_MAX * 4 + 1];
	return text != NULL && lower_copy(text, lower, sizeof lower) && common_lower(lower);
}

/* True for an ASCII letter or any byte of a non-ASCII character. */
static bool wordish(unsigned char c)
{
	return isalpha(c) || c >= 0x80;
}

/* The list's passwords, and those with digits, spaces or symbols around them. */
static bool common_or_decorated(char *lower)
{
	if (common_lower(lower))
		return true;
	size_t start = 0, end = strlen(lower);
	while (start < end && !wordish((unsigned char)lower[start]))
		start++;
	while (end > start && !wordish((unsigned char)lower[end - 1]))
		end--;
	if (end == start)
		return false; /* only digits and symbols: judged by the list alone */
	lower[end] = '\0';
	return common_lower(lower + start);
}

/* True if the NUL-terminated s holds a C0 or C1 control character (or DEL). */
static bool has_control(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return true;
		if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
			return true;
	}
	return false;
}

/* True if the lower-case password contains the lower case of part (4+ bytes). */
static bool contains_part(const char *pw_lower, const char *part, size_t part_len)
{
	char lower[512];
	if (part_len < 4 || part_len >= sizeof lower)
		return false;
	for (size_t i = 0; i < part_len; i++)
		lower[i] = (char)tolower((unsigned char)part[i]);
	lower[part_len] = '\0';
	return strstr(pw_lower, lower) != NULL;
}

enum staff_password_problem staff_password_check(const char *password, const char *email,
						 const char *name)
{
	if (password == NULL)
		return STAFF_PW_NOT_TEXT;
	if (strlen(password) > STAFF_PASSWORD_MAX * 4)
		return STAFF_PW_TOO_LONG;
	size_t chars = utf8_length(password);
	if (chars == UTF8_INVALID || has_control(password))
		return STAFF_PW_NOT_TEXT;
	if (chars < STAFF_PASSWORD_MIN)
		return STAFF_PW_TOO_SHORT;
	if (chars > STAFF_PASSWORD_MAX)
		return STAFF_PW_TOO_LONG;
	char lower[STAFF_PASSWORD_MAX * 4 + 1];
	if (!lower_copy(password, lower, sizeof lower))
		return STAFF_PW_TOO_LONG;
	if (email != NULL) {
		const char *at = strchr(email, '@');
		if (contains_part(lower, email, strlen(email)) ||
		    (at != NULL && contains_part(lower, email, (size_t)(at - email))))
			return STAFF_PW_PERSONAL;
	}
	if (name != NULL && contains_part(lower, name, strlen(name)))
		return STAFF_PW_PERSONAL;
	if (common_or_decorated(lower))
		return STAFF_PW_COMMON;
	return STAFF_PW_OK;
}

const char *staff_password_problem_text(enum staff_password_problem p)
{
	switch (p) {
	case STAFF_PW_OK:
		return "";
	case STAFF_PW_TOO_SHORT:
		return "The password must be at least 12 characters long.";
	case STAFF_PW_TOO_LONG:
		return "The password must be at most 256 characters long.";
	case STAFF_PW_NOT_TEXT:
		return "The password must be text without control characters.";
	case STAFF_PW_COMMON:
		return "The password is too common: choose one that others are unlikely to use.";
	case STAFF_PW_PERSONAL:
		return "The password must not contain your e-mail address or name.";
	}
	return "The password is not allowed.";
}

/* ---- TOTP ---- */

static pthread_once_t oath_once = PTHREAD_ONCE_INIT;
static int oath_ready = OATH_OK;

static void oath_start(void)
{
	oath_ready = oath_init();
}

/* The raw bytes of a base32 secret (malloc'd, *len set); NULL if it is not base32. */
static char *secret_bytes(const char *secret_b32, size_t *len)
{
	pthread_once(&oath_once, oath_start);
	if (oath_ready != OATH_OK || secret_b32 == NULL || secret_b32[0] == '\0' ||
	    strlen(secret_b32) >= STAFF_TOTP_SECRET_MAX)
		return NULL;
	char *bin = NULL;
	if (oath_base32_decode(secret_b32, strlen(secret_b32), &bin, len) != OATH_OK || *len == 0) {
		free(bin);
		return NULL;
	}
	return bin;
}

static void secret_free(char *bin, size_t len)
{
	if (bin != NULL)
		OPENSSL_cleanse(bin, len);
	free(bin);
}

int staff_totp_secret_new(char out[STAFF_TOTP_SECRET_MAX])
{
	unsigned char raw[STAFF_TOTP_SECRET_BYTES];
	out[0] = '\0';
	pthread_once(&oath_once, oath_start);
	if (oath_ready != OATH_OK || RAND_bytes(raw, sizeof raw) != 1)
		return -1;
	char *b32 = NULL;
	size_t len = 0;
	int rc = oath_base32_encode((const char *)raw, sizeof raw, &b32, &len);
	OPENSSL_cleanse(raw, sizeof raw);
	if (rc != OATH_OK || len != STAFF_TOTP_SECRET_LEN) {
		free(b32);
		return -1;
	}
	memcpy(out, b32, len);
	out[len] = '\0';
	OPENSSL_cleanse(b32, len);
	free(b32);
	return 0;
}

int64_t staff_totp_step(time_t now)
{
	return now < 0 ? -1 : (int64_t)now / STAFF_TOTP_STEP;
}

int staff_totp_code(const char *secret_b32, time_t now, char out[STAFF_TOTP_DIGITS + 1])
{
	size_t len = 0;
	char *bin = secret_bytes(secret_b32, &len);
	out[0] = '\0';
	if (bin == NULL || now < 0) {
		secret_free(bin, len);
		return -1;
	}
	int rc = oath_totp_generate(bin, len, now, STAFF_TOTP_STEP, 0, STAFF_TOTP_DIGITS, out);
	secret_free(bin, len);
	return rc == OATH_OK ? 0 : -1;
}

enum staff_totp_result staff_totp_verify(const char *secret_b32, const char *code, time_t now,
					 int64_t last_step, int64_t *step)
{
	if (code == NULL || strlen(code) != STAFF_TOTP_DIGITS)
		return STAFF_TOTP_MALFORMED;
	for (int i = 0; i < STAFF_TOTP_DIGITS; i++)
		if (code[i] < '0' || code[i] > '9')
			return STAFF_TOTP_MALFORMED;
	size_t len = 0;
	char *bin = secret_bytes(secret_b32, &len);
	if (bin == NULL || now < 0) {
		secret_free(bin, len);
		return STAFF_TOTP_ERROR;
	}
	enum staff_totp_result result = STAFF_TOTP_WRONG;
	static const int offsets[] = {0, -1, 1};
	for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
		time_t at = now + offsets[i] * STAFF_TOTP_STEP;
		char want[STAFF_TOTP_DIGITS + 1];
		if (at < 0 || oath_totp_generate(bin, len, at, STAFF_TOTP_STEP, 0, STAFF_TOTP_DIGITS,
						 want) != OATH_OK)
			continue;
		if (CRYPTO_memcmp(want, code, STAFF_TOTP_DIGITS) != 0)
			continue;
		int64_t s = staff_totp_step(at);
		if (s <= last_step) {
			result = STAFF_TOTP_REPLAYED;
			continue;
		}
		if (step != NULL)
			*step = s;
		result = STAFF_TOTP_VALID;
		break;
	}
	secret_free(bin, len);
	return result;
}

/* Appends text percent-encoded (RFC 3986 unreserved characters kept) to f. */
static void put_encoded(FILE *f, const char *text)
{
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~')
			fputc(*p, f);
		else
			fprintf(f, "%%%02X", *p);
	}
}

char *staff_totp_uri(const char *secret_b32, const char *email)
{
	char *uri = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&uri, &len);
	if (f == NULL)
		return NULL;
	fputs("otpauth://totp/" STAFF_TOTP_ISSUER ":", f);
	put_encoded(f, email);
	fputs("?secret=", f);
	put_encoded(f, secret_b32);
	fprintf(f, "&issuer=" STAFF_TOTP_ISSUER "&algorithm=SHA1&digits=%d&period=%d",
		STAFF_TOTP_DIGITS, STAFF_TOTP_STEP);
	if (fclose(f) != 0) {
		free(uri);
		return NULL;
	}
	return uri;
}

#define QR_QUIET 4 /* modules of white around the code */

char *staff_qr_svg(const char *text)
{
	if (text == NULL)
		return NULL;
	QRcode *qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
	if (qr == NULL)
		return NULL;
	int n = qr->width, size = n + 2 * QR_QUIET;
	char *svg = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&svg, &len);
	if (f == NULL) {
		QRcode_free(qr);
		return NULL;
	}
	fprintf(f,
		"<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" width=\"%d\" "
		"height=\"%d\" shape-rendering=\"crispEdges\" role=\"img\" "
		"aria-label=\"QR code for an authenticator app\">"
		"<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/><path fill=\"#000000\" d=\"",
		size, size, size * 4, size * 4, size, size);
	/* One rectangle per horizontal run of dark modules. */
	for (int y = 0; y < n; y++) {
		for (int x = 0; x < n;) {
			if (!(qr->data[y * n + x] & 1)) {
				x++;
				continue;
			}
			int run = 1;
			while (x + run < n && (qr->data[y * n + x + run] & 1))
				run++;
			fprintf(f, "M%d %dh%dv1h-%dz", x + QR_QUIET, y + QR_QUIET, run, run);
			x += run;
		}
	}
	fputs("\"/></svg>", f);
	QRcode_free(qr);
	if (fclose(f) != 0) {
		free(svg);
		return NULL;
	}
	return svg;
}

/* ---- recovery codes ---- */

int staff_recovery_codes_new(char codes[STAFF_RECOVERY_CODES][STAFF_RECOVERY_LEN + 1])
{
	static const char alphabet[] = STAFF_RECOVERY_ALPHABET;
	_Static_assert(sizeof alphabet - 1 == 32, "32 characters: 5 bits each");
	for (int i = 0; i < STAFF_RECOVERY_CODES; i++) {
		unsigned char raw[12];
		bool repeated;
		do {
			if (RAND_bytes(raw, sizeof raw) != 1)
				return -1;
			int o = 0;
			for (int k = 0; k < 12; k++) {
				if (k == 4 || k == 8)
					codes[i][o++] = '-';
				codes[i][o++] = alphabet[raw[k] & 31];
			}
			codes[i][o] = '\0';
			repeated = false;
			for (int j = 0; j < i && !repeated; j++)
				repeated = strcmp(codes[i], codes[j]) == 0;
		} while (repeated);
		OPENSSL_cleanse(raw, sizeof raw);
	}
	return 0;
}

int staff_recovery_normalise(const char *typed, char out[STAFF_RECOVERY_LEN + 1])
{
	int got = 0, o = 0;
	out[0] = '\0';
	if (typed == NULL)
		return -1;
	for (const unsigned char *p = (const unsigned char *)typed; *p; p++) {
		if (*p == ' ' || *p == '-')
			continue;
		int c = tolower(*p);
		if (got == 12 || strchr(STAFF_RECOVERY_ALPHABET, c) == NULL) {
			out[0] = '\0';
			return -1;
		}
		if (got == 4 || got == 8)
			out[o++] = '-';
		out[o++] = (char)c;
		got++;
	}
	out[o] = '\0';
	if (got != 12) {
		out[0] = '\0';
		return -1;
	}
	return 0;
}

int staff_recovery_hash(const char *typed, char out[65])
{
	char normal[STAFF_RECOVERY_LEN + 1];
	out[0] = '\0';
	if (staff_recovery_normalise(typed, normal) != 0)
		return -1;
	auth_token_hash(normal, out);
	return 0;
}

/* ---- tokens ---- */

int staff_token_new(char out[STAFF_TOKEN_LEN + 1])
{
	unsigned char raw[32];
	char b64[48];
	out[0] = '\0';
	if (RAND_bytes(raw, sizeof raw) != 1)
		return -1;
	int n = EVP_EncodeBlock((unsigned char *)b64, raw, sizeof raw); /* 44, one '=' */
	OPENSSL_cleanse(raw, sizeof raw);
	if (n != 44)
		return -1;
	for (int i = 0; i < STAFF_TOKEN_LEN; i++)
		out[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
	out[STAFF_TOKEN_LEN] = '\0';
	OPENSSL_cleanse(b64, sizeof b64);
	return 0;
}

void staff_token_hash(const char *token, char out[65])
{
	auth_token_hash(token, out);
}

bool staff_token_well_formed(const char *text)
{
	if (text == NULL || strlen(text) != STAFF_TOKEN_LEN)
		return false;
	for (const char *p = text; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
			return false;
	return true;
}

