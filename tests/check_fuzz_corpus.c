/*
 * fuzz_corpus: every seed corpus of tests/fuzz replayed through its harness without
 * libFuzzer (build/.../fuzz-replay-<name>, built by make check), so each input that once
 * crashed a reader, or that a reader must keep refusing, is a regression test. A harness
 * aborts when a reader breaks what it promises, so a failing replay names the inputs
 * that fail and the start of the report of the first. Under SAN=1 the replay binaries
 * carry the sanitizers. Inputs of defects not fixed yet would be kept apart, in
 * tests/fuzz/crashes-pending, which is never replayed.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "suites.h"

#define MAX_HARNESSES 32
#define CORPUS_MAX_FILES 200

/* The harness names (fuzz_<name>.c in tests/fuzz), sorted; how many. */
static size_t harness_names(char names[][64])
{
	char dir[1024];
	snprintf(dir, sizeof dir, "%s/tests/fuzz", th_env("DUALREG_TEST_ROOT"));
	struct dirent **ents;
	int n = scandir(dir, &ents, NULL, alphasort);
	ck_assert_msg(n >= 0, "cannot list %s", dir);
	size_t count = 0;
	for (int i = 0; i < n; i++) {
		const char *f = ents[i]->d_name;
		size_t len = strlen(f);
		if (strncmp(f, "fuzz_", 5) == 0 && len > 7 && strcmp(f + len - 2, ".c") == 0) {
			ck_assert(count < MAX_HARNESSES && len - 7 < 64);
			snprintf(names[count++], 64, "%.*s", (int)(len - 7), f + 5);
		}
		free(ents[i]);
	}
	free(ents);
	return count;
}

/* Regular files in dir (not starting with "."), sorted; *n of them. Caller frees. */
static char **corpus_files(const char *dir, size_t *n)
{
	struct dirent **ents;
	int k = scandir(dir, &ents, NULL, alphasort);
	*n = 0;
	if (k < 0)
		return NULL;
	char **files = calloc((size_t)k + 1, sizeof *files);
	for (int i = 0; i < k; i++) {
		char path[2048];
		struct stat st;
		snprintf(path, sizeof path, "%s/%s", dir, ents[i]->d_name);
		if (ents[i]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode))
			files[(*n)++] = strdup(path);
		free(ents[i]);
	}
	free(ents);
	return files;
}

static void free_files(char **files, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(files[i]);
	free(files);
}

START_TEST(test_every_harness_has_a_corpus)
{
	char names[MAX_HARNESSES][64];
	size_t n = harness_names(names);
	ck_assert_msg(n >= 10, "only %zu harnesses in tests/fuzz", n);
	for (size_t i = 0; i < n; i++) {
		char dir[1024];
		snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", th_env("DUALREG_TEST_ROOT"),
			 names[i]);
		size_t nfiles;
		char **files = corpus_files(dir, &nfiles);
		ck_assert_msg(nfiles >= 3, "%s: %zu seeds (at least 3)", dir, nfiles);
		ck_assert_msg(nfiles <= CORPUS_MAX_FILES, "%s: %zu files (merge it smaller)", dir,
			      nfiles);
		free_files(files, nfiles);
	}
	/* Every corpus has its harness. */
	char corpora[1024];
	snprintf(corpora, sizeof corpora, "%s/tests/fuzz/corpus", th_env("DUALREG_TEST_ROOT"));
	DIR *d = opendir(corpora);
	ck_assert_ptr_nonnull(d);
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		if (e->d_name[0] == '.')
			continue;
		bool known = false;
		for (size_t i = 0; i < n && !known; i++)
			known = strcmp(names[i], e->d_name) == 0;
		ck_assert_msg(known, "tests/fuzz/corpus/%s has no harness fuzz_%s.c", e->d_name,
			      e->d_name);
	}
	closedir(d);
}
END_TEST

/* Replays one corpus; on failure, finds the inputs that fail one by one. */
static bool replay(const char *name, char *why, size_t whylen)
{
	char bin[1024], dir[1024];
	snprintf(bin, sizeof bin, "%s/fuzz-replay-%s", th_env("DUALREG_TEST_BIN"), name);
	snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", th_env("DUALREG_TEST_ROOT"), name);
	if (access(bin, X_OK) != 0) {
		snprintf(why, whylen, "%s: not built (make check builds it; or make fuzz-replay)",
			 bin);
		return false;
	}
	char out[256];
	char *const argv[] = {bin, dir, NULL};
	if (th_run(argv, NULL, out, sizeof out) == 0)
		return true;
	size_t nfiles;
	char **files = corpus_files(dir, &nfiles);
	size_t used = (size_t)snprintf(why, whylen, "%s: failing inputs:", name);
	char first[2048] = "";
	for (size_t i = 0; i < nfiles; i++) {
		char *const one[] = {bin, files[i], NULL};
		int rc = th_run(one, NULL, out, sizeof out);
		if (rc == 0)
			continue;
		if (first[0] == '\0')
			snprintf(first, sizeof first, "%s", th_last_stderr());
		if (used < whylen)
			used += (size_t)snprintf(why + used, whylen - used, " %s (exit %d)",
						 strrchr(files[i], '/') + 1, rc);
	}
	if (used < whylen)
		snprintf(why + used, whylen - used, "\n%s", first);
	free_files(files, nfiles);
	return false;
}

START_TEST(test_corpora_replay)
{
	char names[MAX_HARNESSES][64];
	size_t n = harness_names(names);
	char report[8192] = "";
	size_t used = 0, failed = 0;
	for (size_t i = 0; i < n; i++) {
		char why[4096];
		if (replay(names[i], why, sizeof why))
			continue;
		failed++;
		if (used < sizeof report)
			used += (size_t)snprintf(report + used, sizeof report - used, "%s\n", why);
	}
	ck_assert_msg(failed == 0, "%zu of %zu corpora fail:\n%s", failed, n, report);
}
END_TEST

Suite *fuzz_corpus_suite(void)
{
	Suite *s = suite_create("fuzz_corpus");
	TCase *tc = tcase_create("corpus");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_every_harness_has_a_corpus);
	tcase_add_test(tc, test_corpora_replay);
	suite_add_tcase(s, tc);
	return s;
}
