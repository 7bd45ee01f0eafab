/*
 * json_fields: reads typed members of a JSON request body and collects every problem
 * found into one 422 problem, each with the JSON pointer of its field ("/urn",
 * "/closures/3/to"). Readers never stop at the first error, so a client learns about
 * every bad field at once; the problem's type is the slug of the first error.
 *
 * Conventions: a member that is absent or JSON null counts as absent; a required
 * member that is absent is "missing-field"; a member of the wrong type or shape gets
 * the slug the caller names (or "invalid-field").
 *
 * Every body is checked with jf_utf8_check before any handler reads it (api_json_body),
 * so a string that reaches a reader, and through it the database, is well-formed
 * UTF-8. Numbers are range-checked as doubles before any conversion (jf_whole_number).
 */
#ifndef DUALREG_JSON_FIELDS_H
#define DUALREG_JSON_FIELDS_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>

struct jf {
	cJSON *problem; /* NULL while no error was found */
	int nerrors;
};

void jf_init(struct jf *j);
/* Records an error at base + "/" + name (name NULL: at base itself). */
void jf_fail(struct jf *j, const char *slug, const char *base, const char *name,
	     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The collected 422 problem (caller owns it), or NULL when every field was fine. */
cJSON *jf_take_problem(struct jf *j);
/* Frees what was collected (for paths that do not reply with it). */
void jf_clear(struct jf *j);

/* True when obj has the member (even if it is null). */
bool jf_has(const cJSON *obj, const char *name);
/* True when obj has the member and it is JSON null. */
bool jf_is_null(const cJSON *obj, const char *name);
/* Records an "unknown-field" error for every member of obj not listed in known
 * (NULL-terminated). */
void jf_only(struct jf *j, const cJSON *obj, const char *base, const char *const known[]);

/*
 * The text of a request body (len bytes, not NUL-terminated) as a JSON object, checked
 * as api_json_body checks every body: JSON with nothing after it but white space, no
 * \u0000, well-formed UTF-8 in every member name and string, no member name twice in
 * one object, an object. Returns the
 * object (the caller owns it), or NULL with the problem to answer in *problem (400
 * invalid-json, 422 invalid-body; the caller owns it).
 */
cJSON *api_json_parse(const char *text, size_t len, cJSON **problem);

/* name as one JSON pointer reference token (RFC 6901: "~" as "~0", "/" as "~1") in out
 * (len >= 1 bytes), cut between characters to fit; bytes that are not UTF-8 become
 * U+FFFD, so the token is always fit for a problem body. */
void jf_pointer_token(char *out, size_t len, const char *name);
/*
 * True when every member name and string value in the tree under v is well-formed
 * UTF-8. Otherwise false, with the JSON pointer of the first bad string in pointer
 * (bounded by len) and *in_name telling whether it is a member name (then the pointer
 * is that of the object holding it) or a value.
 */
bool jf_utf8_check(const cJSON *v, char *pointer, size_t len, bool *in_name);
/*
 * The first member name given twice in one object of the tree under v (a name cJSON
 * reads first while PostgreSQL's jsonb keeps the last: which one counts would be a
 * guess), or NULL when there is none; then pointer (bounded by len) is the JSON
 * pointer of that object.
 */
const char *jf_unique_names(const cJSON *v, char *pointer, size_t len);
/*
 * True when v is a number holding a whole number from lo to hi (both within +-2^53,
 * where doubles are exact), stored in *out unless out is NULL. The range is checked on
 * the double before it is converted: converting 1e300 or inf to an integer is undefined
 * behaviour in C, and JSON allows any magnitude.
 */
bool jf_whole_number(const cJSON *v, long long lo, long long hi, long long *out);
/* A whole-number member from lo to hi (see jf_whole_number) into *out; false if absent
 * or bad (an "invalid-field" error). */
bool jf_int(struct jf *j, const cJSON *obj, const char *base, const char *name, bool required,
	    long long lo, long long hi, long long *out);

/* A string of 1..maxlen bytes without control characters; NULL if absent or bad. */
const char *jf_text(struct jf *j, const cJSON *obj, const char *base, const char *name,
		    bool required, size_t maxlen);
/* A string of exactly ndigits ASCII digits (slug for the error given); NULL if absent
 * or bad. */
const char *jf_digits(struct jf *j, const cJSON *obj, const char *base, const char *name,
		      bool required, size_t ndigits, const char *slug);
/* One of the allowed strings (NULL-terminated list); NULL if absent or bad. */
const char *jf_enum(struct jf *j, const cJSON *obj, const char *base, const char *name,
		    bool required, const char *const allowed[]);
/* A "YYYY-MM-DD" date (slug "invalid-date"); NULL if absent or bad. */
const char *jf_date(struct jf *j, const cJSON *obj, const char *base, const char *name,
		    bool required);
/* An "HH:MM" time of day (slug "invalid-time"); NULL if absent or bad. */
const char *jf_hhmm(struct jf *j, const cJSON *obj, const char *base, const char *name,
		    bool required);
/* A UPN with a valid check letter (slug "invalid-upn"; a wrong check letter is named
 * with the expected one); NULL if absent or bad. */
const char *jf_upn(struct jf *j, const cJSON *obj, const char *base, const char *name,
		   bool required);
/* An object member; NULL if absent or not an object (an error if so, or if required). */
const cJSON *jf_object(struct jf *j, const cJSON *obj, const char *base, const char *name,
		       bool required);

#endif
