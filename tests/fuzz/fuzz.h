/*
 * fuzz: what the harnesses in tests/fuzz share. Each fuzz_<name>.c defines
 * LLVMFuzzerTestOneInput and feeds one input to one of dualreg's readers of outside
 * input, then checks what the reader promises (an accepted value is well formed, a
 * refusal is a problem body that is valid UTF-8 JSON). A broken promise aborts, as a
 * crash does, so that libFuzzer (`make fuzz`) and the replay of the corpora
 * (tests/fuzz/replay.c, in `make check`) both report it.
 */
#ifndef DUALREG_TESTS_FUZZ_H
#define DUALREG_TESTS_FUZZ_H

#include <cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts with the broken condition named when cond is false. */
#define FUZZ_ASSERT(cond)                                                                   \
	do {                                                                                \
		if (!(cond)) {                                                              \
			fprintf(stderr, "fuzz: %s:%d: broken: %s\n", __FILE__, __LINE__,    \
				#cond);                                                     \
			abort();                                                            \
		}                                                                           \
	} while (0)

/* The input as a NUL-terminated string (cut at its first NUL, as C strings are);
 * the caller frees it. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	FUZZ_ASSERT(s != NULL);
	if (size > 0)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* True when s is well-formed UTF-8. */
static inline int fuzz_utf8(const char *s)
{
	return utf8_length(s) != UTF8_INVALID;
}

/* True when no object in the tree under v has a member name twice. */
static inline int fuzz_names_unique(const cJSON *v)
{
	for (const cJSON *c = v->child; c != NULL; c = c->next) {
		if (cJSON_IsObject(v))
			for (const cJSON *d = c->next; d != NULL; d = d->next)
				if (strcmp(c->string, d->string) == 0)
					return 0;
		if (!fuzz_names_unique(c))
			return 0;
	}
	return 1;
}

/*
 * Checks a problem body as a reply would carry it (status is one of the allowed, or
 * any 4xx when allowed is NULL): printable, valid UTF-8, parsed back to an object with
 * type, status and every error's pointer and detail. Frees it.
 */
static inline void fuzz_check_problem(cJSON *problem, const int *allowed)
{
	FUZZ_ASSERT(cJSON_IsObject(problem));
	char *text = cJSON_PrintUnformatted(problem);
	FUZZ_ASSERT(text != NULL && fuzz_utf8(text));
	cJSON *back = cJSON_Parse(text);
	FUZZ_ASSERT(cJSON_IsObject(back));
	const cJSON *status = cJSON_GetObjectItemCaseSensitive(back, "status");
	FUZZ_ASSERT(cJSON_IsNumber(status));
	if (allowed == NULL) {
		FUZZ_ASSERT(status->valueint >= 400 && status->valueint < 500);
	} else {
		size_t i = 0;
		while (allowed[i] != 0 && allowed[i] != status->valueint)
			i++;
		FUZZ_ASSERT(allowed[i] != 0);
	}
	FUZZ_ASSERT(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(back, "type")));
	const cJSON *e;
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(back, "errors"))
	{
		FUZZ_ASSERT(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "pointer")));
		FUZZ_ASSERT(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "detail")));
	}
	cJSON_Delete(back);
	cJSON_free(text);
	cJSON_Delete(problem);
}

#endif
