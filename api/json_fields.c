/* json_fields: typed reads of request bodies with JSON-pointer errors (see json_fields.h). */
#include "json_fields.h"
#include "dualreg/utf8.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "dualreg/calendar.h"
#include "dualreg/upn.h"
#include "problem.h"

void jf_init(struct jf *j)
{
	j->problem = NULL;
	j->nerrors = 0;
}

void jf_pointer_token(char *out, size_t len, const char *name)
{
	static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */
	size_t o = 0;
	for (const char *c = name; *c != '\0';) {
		size_t n = utf8_char_len(c);
		const char *put = c;
		size_t putlen = n;
		if (n == 0) {
			put = replacement;
			putlen = sizeof replacement - 1;
		} else if (*c == '~' || *c == '/') {
			put = *c == '~' ? "~0" : "~1";
			putlen = 2;
		}
		if (o + putlen >= len)
			break; /* cut between characters, never inside one */
		memcpy(out + o, put, putlen);
		o += putlen;
		c += n > 0 ? n : 1;
	}
	out[o] = '\0';
}

/* base + "/" + the escaped token of name (name NULL: base itself), bounded. */
static void pointer_join(char *out, size_t len, const char *base, const char *name)
{
	utf8_copy(out, len, base, SIZE_MAX);
	size_t n = strlen(out);
	if (name == NULL || n + 1 >= len)
		return;
	out[n++] = '/';
	jf_pointer_token(out + n, len - n, name);
}

void jf_fail(struct jf *j, const char *slug, const char *base, const char *name,
	     const char *fmt, ...)
{
	char detail[512], pointer[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	pointer_join(pointer, sizeof pointer, base, name);
	if (j->problem == NULL)
		j->problem = problem_new(422, slug, NULL, detail);
	problem_add_error(j->problem, pointer, detail);
	j->nerrors++;
}

cJSON *jf_take_problem(struct jf *j)
{
	cJSON *p = j->problem;
	if (p != NULL && j->nerrors > 1) {
		char detail[96];
		snprintf(detail, sizeof detail, "%d fields are invalid; see errors", j->nerrors);
		cJSON_ReplaceItemInObjectCaseSensitive(p, "detail", cJSON_CreateString(detail));
	}
	j->problem = NULL;
	j->nerrors = 0;
	return p;
}

void jf_clear(struct jf *j)
{
	cJSON_Delete(j->problem);
	jf_init(j);
}

bool jf_has(const cJSON *obj, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(obj, name) != NULL;
}

bool jf_is_null(const cJSON *obj, const char *name)
{
	return cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(obj, name));
}

void jf_only(struct jf *j, const cJSON *obj, const char *base, const char *const known[])
{
	const cJSON *m;
	cJSON_ArrayForEach(m, obj)
	{
		bool ok = false;
		for (size_t i = 0; known[i] != NULL && !ok; i++)
			ok = strcmp(m->string, known[i]) == 0;
		if (!ok) {
			/* At most 64 characters of the name, cut between characters. */
			char shown[64 * 4 + 1];
			utf8_copy(shown, sizeof shown, m->string, 64);
			jf_fail(j, "unknown-field", base, m->string, "unknown field \"%s\"", shown);
		}
	}
}

/* Appends "/" + token (escaped) to the pointer of length at in ptr; the new length. */
static size_t pointer_push(char *ptr, size_t len, size_t at, const char *token)
{
	if (at + 1 >= len)
		return at;
	ptr[at] = '/';
	jf_pointer_token(ptr + at + 1, len - at - 1, token);
	return at + 1 + strlen(ptr + at + 1);
}

/* The walk of jf_utf8_check: ptr[0..at) is v's pointer. */
static bool utf8_walk(const cJSON *v, char *ptr, size_t len, size_t at, bool *in_name)
{
	if (cJSON_IsString(v) && utf8_length(v->valuestring) == UTF8_INVALID) {
		*in_name = false;
		return false;
	}
	if (!cJSON_IsObject(v) && !cJSON_IsArray(v))
		return true;
	size_t i = 0;
	for (const cJSON *c = v->child; c != NULL; c = c->next, i++) {
		size_t next;
		if (cJSON_IsObject(v)) {
			if (utf8_length(c->string) == UTF8_INVALID) {
				*in_name = true;
				return false;
			}
			next = pointer_push(ptr, len, at, c->string);
		} else {
			char index[24];
			snprintf(index, sizeof index, "%zu", i);
			next = pointer_push(ptr, len, at, index);
		}
		if (!utf8_walk(c, ptr, len, next, in_name))
			return false;
		ptr[at] = '\0';
	}
	return true;
}

bool jf_utf8_check(const cJSON *v, char *pointer, size_t len, bool *in_name)
{
	pointer[0] = '\0';
	return utf8_walk(v, pointer, len, 0, in_name);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The walk of jf_unique_names: ptr[0..at) is v's pointer. Sorting each object's names
 * keeps a large object from costing the square of its size. */
static const char *unique_walk(const cJSON *v, char *ptr, size_t len, size_t at)
{
	if (!cJSON_IsObject(v) && !cJSON_IsArray(v))
		return NULL;
	if (cJSON_IsObject(v) && v->child != NULL && v->child->next != NULL) {
		size_t n = 0;
		for (const cJSON *c = v->child; c != NULL; c = c->next)
			n++;
		const char **names = malloc(n * sizeof *names);
		if (names == NULL)
			abort();
		n = 0;
		for (const cJSON *c = v->child; c != NULL; c = c->next)
			names[n++] = c->string;
		qsort(names, n, sizeof *names, name_cmp);
		const char *twice = NULL;
		for (size_t i = 1; i < n && twice == NULL; i++)
			if (strcmp(names[i - 1], names[i]) == 0)
				twice = names[i];
		free(names);
		if (twice != NULL)
			return twice;
	}
	size_t i = 0;
	for (const cJSON *c = v->child; c != NULL; c = c->next, i++) {
		size_t next;
		if (cJSON_IsObject(v)) {
			next = pointer_push(ptr, len, at, c->string);
		} else {
			char index[24];
			snprintf(index, sizeof index, "%zu", i);
			next = pointer_push(ptr, len, at, index);
		}
		const char *twice = unique_walk(c, ptr, len, next);
		if (twice != NULL)
			return twice;
		ptr[at] = '\0';
	}
	return NULL;
}

const char *jf_unique_names(const cJSON *v, char *pointer, size_t len)
{
	pointer[0] = '\0';
	return unique_walk(v, pointer, len, 0);
}

bool jf_whole_number(const cJSON *v, long long lo, long long hi, long long *out)
{
	if (!cJSON_IsNumber(v))
		return false;
	double d = v->valuedouble;
	/* Compared as doubles first: NaN fails both, and nothing out of range (1e300, inf)
	 * is ever converted, which would be undefined behaviour. */
	if (!(d >= (double)lo && d <= (double)hi))
		return false;
	long long n = (long long)d;
	if ((double)n != d)
		return false; /* a fraction */
	if (out != NULL)
		*out = n;
	return true;
}

/* The member if present and not null; records missing-field when required. */
static const cJSON *member(struct jf *j, const cJSON *obj, const char *base, const char *name,
			   bool required)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (m == NULL || cJSON_IsNull(m)) {
		if (required)
			jf_fail(j, "missing-field", base, name, "%s is required", name);
		return NULL;
	}
	return m;
}

/* The member as a string, or NULL (recording slug when it is not a string). */
static const char *string_member(struct jf *j, const cJSON *obj, const char *base,
				 const char *name, bool required, const char *slug,
				 const char *expect)
{
	const cJSON *m = member(j, obj, base, name, required);
	if (m == NULL)
		return NULL;
	if (!cJSON_IsString(m)) {
		jf_fail(j, slug, base, name, "%s must be %s", name, expect);
		return NULL;
	}
	return m->valuestring;
}

const char *jf_text(struct jf *j, const cJSON *obj, const char *base, const char *name,
		    bool required, size_t maxlen)
{
	const char *s = string_member(j, obj, base, name, required, "invalid-field", "a string");
	if (s == NULL)
		return NULL;
	size_t n = utf8_length(s);
	if (n == UTF8_INVALID) {
		jf_fail(j, "invalid-field", base, name, "%s is not valid UTF-8", name);
		return NULL;
	}
	if (n == 0 || n > maxlen) {
		jf_fail(j, "invalid-field", base, name, "%s must be 1 to %zu characters long", name,
			maxlen);
		return NULL;
	}
	for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++)
		if (*c < 0x20 || *c == 0x7f) {
			jf_fail(j, "invalid-field", base, name,
				"%s must not contain control characters", name);
			return NULL;
		}
	return s;
}

const char *jf_digits(struct jf *j, const cJSON *obj, const char *base, const char *name,
		      bool required, size_t ndigits, const char *slug)
{
	char expect[48];
	snprintf(expect, sizeof expect, "a string of %zu digits", ndigits);
	const char *s = string_member(j, obj, base, name, required, slug, expect);
	if (s == NULL)
		return NULL;
	bool ok = strlen(s) == ndigits;
	for (size_t i = 0; ok && i < ndigits; i++)
		ok = s[i] >= '0' && s[i] <= '9';
	if (!ok) {
		jf_fail(j, slug, base, name, "%s must be %s", name, expect);
		return NULL;
	}
	return s;
}

const char *jf_enum(struct jf *j, const cJSON *obj, const char *base, const char *name,
		    bool required, const char *const allowed[])
{
	char list[160] = "";
	size_t n = 0;
	for (size_t i = 0; allowed[i] != NULL && n < sizeof list; i++)
		n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", allowed[i]);
	char expect[192];
	snprintf(expect, sizeof expect, "one of: %s", list);
	const char *s = string_member(j, obj, base, name, required, "invalid-field", expect);
	if (s == NULL)
		return NULL;
	for (size_t i = 0; allowed[i] != NULL; i++)
		if (strcmp(s, allowed[i]) == 0)
			return allowed[i];
	jf_fail(j, "invalid-field", base, name, "%s must be %s", name, expect);
	return NULL;
}

const char *jf_date(struct jf *j, const cJSON *obj, const char *base, const char *name,
		    bool required)
{
	const char *s = string_member(j, obj, base, name, required, "invalid-date",
				      "a date YYYY-MM-DD");
	struct cal_date d;
	if (s != NULL && !cal_parse_date(s, &d)) {
		jf_fail(j, "invalid-date", base, name, "%s must be a real date YYYY-MM-DD", name);
		return NULL;
	}
	return s;
}

const char *jf_hhmm(struct jf *j, const cJSON *obj, const char *base, const char *name,
		    bool required)
{
	const char *s = string_member(j, obj, base, name, required, "invalid-time",
				      "a time of day HH:MM");
	if (s != NULL && (strlen(s) != 5 || cal_parse_hhmm(s) < 0)) {
		jf_fail(j, "invalid-time", base, name, "%s must be a time of day HH:MM", name);
		return NULL;
	}
	return s;
}

const cJSON *jf_object(struct jf *j, const cJSON *obj, const char *base, const char *name,
		       bool required)
{
	const cJSON *m = member(j, obj, base, name, required);
	if (m != NULL && !cJSON_IsObject(m)) {
		jf_fail(j, "invalid-field", base, name, "%s must be an object", name);
		return NULL;
	}
	return m;
}

const char *jf_upn(struct jf *j, const cJSON *obj, const char *base, const char *name,
		   bool required)
{
	const char *s = string_member(j, obj, base, name, required, "invalid-upn",
				      "a 13-character UPN");
	if (s == NULL)
		return NULL;
	char expected = '?';
	switch (upn_validate(s, &expected)) {
	case UPN_OK:
		return s;
	case UPN_BAD_CHECK:
		jf_fail(j, "invalid-upn", base, name,
			"%s has a wrong check letter: %.13s should start with %c", name, s, expected);
		return NULL;
	case UPN_BAD_FORMAT:
		break;
	}
	jf_fail(j, "invalid-upn", base, name,
		"%s must be a UPN: a check letter, 11 digits and a digit or letter (13 characters)",
		name);
	return NULL;
}

bool jf_int(struct jf *j, const cJSON *obj, const char *base, const char *name, bool required,
	    long long lo, long long hi, long long *out)
{
	const cJSON *m = member(j, obj, base, name, required);
	if (m == NULL)
		return false;
	if (!jf_whole_number(m, lo, hi, out)) {
		jf_fail(j, "invalid-field", base, name,
			"%s must be a whole number from %lld to %lld", name, lo, hi);
		return false;
	}
	return true;
}
