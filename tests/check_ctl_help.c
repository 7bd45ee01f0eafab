/*
 * ctl_help: dualregctl's help, walked from its own command table. `dualregctl commands`
 * prints every command path the table holds, so a command added there is covered here
 * without a change to this file. Each path answers --help and -h (also among other
 * arguments) with its usage on stdout, nothing on stderr and exit 0, with neither a
 * configuration file nor a database; a command with subcommands given none or an unknown
 * one, and any command given an unknown option, is a usage error (usage on stderr, exit
 * 2); and dualregctl(8) documents every path with the options its usage names.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "suites.h"

#define MAX_PATHS 128
#define PATH_LEN 64

static char out[65536];
static char paths[MAX_PATHS][PATH_LEN];
static int npaths;

/* A configuration file that does not exist: reading it is an error (exit 2). */
#define NO_CONF "/nonexistent/dualreg.conf"

/*
 * Runs dualregctl -c CONF PATH [a1 [a2]] (path "" for dualregctl itself, its words
 * split on spaces). The database does not exist, so that anything that connects fails.
 */
static int run(const char *conf, const char *path, const char *a1, const char *a2)
{
	char bin[512], words[PATH_LEN];
	snprintf(bin, sizeof bin, "%s/dualregctl", th_env("DUALREG_TEST_BIN"));
	snprintf(words, sizeof words, "%s", path);
	char *argv[16] = {bin, "-c", (char *)conf};
	int n = 3;
	char *save = NULL;
	for (char *w = strtok_r(words, " ", &save); w != NULL && n < 12;
	     w = strtok_r(NULL, " ", &save))
		argv[n++] = w;
	if (a1 != NULL)
		argv[n++] = (char *)a1;
	if (a2 != NULL)
		argv[n++] = (char *)a2;
	argv[n] = NULL;
	char *const envp[] = {"DUALREG_DATABASE_URL=host=/nonexistent dbname=none", NULL};
	return th_run(argv, envp, out, sizeof out);
}

/* Help needs no configuration: every run for help is without one. */
static int ctl(const char *path, const char *a1, const char *a2)
{
	return run(NO_CONF, path, a1, a2);
}

/*
 * Usage errors are found after the configuration is read (an empty one here) and
 * before the database is: a command that connected would fail with 1, not 2.
 */
static int ctl_conf(const char *path, const char *a1, const char *a2)
{
	return run("/dev/null", path, a1, a2);
}

static bool has_path(const char *path)
{
	for (int i = 0; i < npaths; i++)
		if (strcmp(paths[i], path) == 0)
			return true;
	return false;
}

/* True if path has subcommands: another path continues it with a word. */
static bool is_parent(const char *path)
{
	size_t len = strlen(path);
	for (int i = 0; i < npaths; i++)
		if (strncmp(paths[i], path, len) == 0 && paths[i][len] == ' ')
			return true;
	return false;
}

/* Every command path, from `dualregctl commands`, into paths. */
static void load_tree(void)
{
	ck_assert_int_eq(ctl("commands", NULL, NULL), 0);
	ck_assert_str_eq(th_last_stderr(), "");
	npaths = 0;
	char *save = NULL;
	for (char *line = strtok_r(out, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		ck_assert_int_lt(npaths, MAX_PATHS);
		ck_assert_uint_lt(strlen(line), PATH_LEN);
		snprintf(paths[npaths++], PATH_LEN, "%s", line);
	}
	/* The commands there are today, so that no test passes by walking an empty tree. */
	static const char *const known[] = {
	    "migrate",      "version",          "key",           "key create",
	    "key list",     "key revoke",       "seed",          "school",
	    "school add",   "school list",      "school show",   "pupil",
	    "pupil import", "pupil erase",      "registration",     "registration add",
	    "registration end",                 "registration schedule",
	    "registration list",                "registration confirm",
	    "registration decline",
	    "deliveries",   "deliveries list",  "deliveries retry",
	    "sync",         "sync status",      "purge",         "commands",
	    "user",         "user add",         "user list",     "user disable",
	    "user reset",
	};
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		ck_assert_msg(has_path(known[i]), "\"%s\" is not in the command tree", known[i]);
}

/* The last run printed path's usage on stderr and nothing on stdout. */
static void assert_usage_error(const char *path)
{
	char want[128];
	snprintf(want, sizeof want, "usage: dualregctl%s%s", path[0] ? " " : "", path);
	ck_assert_msg(out[0] == '\0', "%s: stdout: %s", path, out);
	ck_assert_msg(strstr(th_last_stderr(), want) != NULL, "%s: no \"%s\" on stderr: %s", path,
		      want, th_last_stderr());
}

/* The last run printed path's usage, "usage: dualregctl PATH ...", on stdout only. */
static void assert_help(const char *path, const char *args)
{
	char want[128];
	snprintf(want, sizeof want, "usage: dualregctl%s%s", path[0] ? " " : "", path);
	const char *u = strstr(out, want);
	ck_assert_msg(u != NULL && (u[strlen(want)] == ' ' || u[strlen(want)] == '\n'),
		      "dualregctl %s %s: no \"%s\" on stdout: %s", path, args, want, out);
	ck_assert_msg(th_last_stderr()[0] == '\0', "dualregctl %s %s: stderr: %s", path, args,
		      th_last_stderr());
}

START_TEST(test_command_tree)
{
	load_tree();
	/* A tree: no path twice, and each subcommand's command is there too. */
	for (int i = 0; i < npaths; i++) {
		ck_assert_msg(paths[i][0] != '\0' && paths[i][0] != ' ', "path \"%s\"", paths[i]);
		for (int j = i + 1; j < npaths; j++)
			ck_assert_str_ne(paths[i], paths[j]);
		char parent[PATH_LEN];
		snprintf(parent, sizeof parent, "%.63s", paths[i]);
		char *space = strrchr(parent, ' ');
		if (space != NULL) {
			*space = '\0';
			ck_assert_msg(has_path(parent), "\"%s\" without \"%s\"", paths[i], parent);
		}
	}
}
END_TEST

START_TEST(test_every_command_answers_help)
{
	load_tree();
	static const char *const flags[] = {"--help", "-h"};
	for (int f = 0; f < 2; f++) {
		ck_assert_int_eq(ctl("", flags[f], NULL), 0);
		assert_help("", flags[f]);
		/* The top level lists the commands, with their subcommands. */
		ck_assert_msg(strstr(out, "key list") != NULL && strstr(out, "sync status") != NULL,
			      "%s", out);
	}
	for (int i = 0; i < npaths; i++) {
		const char *p = paths[i];
		for (int f = 0; f < 2; f++) {
			ck_assert_msg(ctl(p, flags[f], NULL) == 0, "dualregctl %s %s: %s", p,
				      flags[f], th_last_stderr());
			assert_help(p, flags[f]);
		}
		/* Wherever it appears: after an option the command does not know, and
		 * before other arguments. */
		ck_assert_msg(ctl(p, "--no-such-option", "--help") == 0, "dualregctl %s: %s", p,
			      th_last_stderr());
		assert_help(p, "--no-such-option --help");
		ck_assert_msg(ctl(p, "-h", "extra") == 0, "dualregctl %s: %s", p, th_last_stderr());
		assert_help(p, "-h extra");
	}
	/* The issue this test was written for. */
	ck_assert_int_eq(ctl("registration", "--help", NULL), 0);
	ck_assert_ptr_null(strstr(out, "unknown"));
	ck_assert_int_eq(ctl("key list", "--json", "--help"), 0);
	assert_help("key list", "--json --help");
	/* After "--" it is an operand, not a request for help. */
	ck_assert_int_eq(ctl_conf("key list", "--", "--help"), 2);
	assert_usage_error("key list");
}
END_TEST

START_TEST(test_usage_errors)
{
	load_tree();
	ck_assert_int_eq(ctl_conf("", NULL, NULL), 2);
	assert_usage_error("");
	ck_assert_int_eq(ctl_conf("", "no-such-command", NULL), 2);
	assert_usage_error("");
	ck_assert_msg(strstr(th_last_stderr(), "unknown command \"no-such-command\"") != NULL,
		      "%s", th_last_stderr());
	ck_assert_int_eq(ctl_conf("", "--no-such-option", NULL), 2);
	assert_usage_error("");
	for (int i = 0; i < npaths; i++) {
		const char *p = paths[i];
		ck_assert_msg(ctl_conf(p, "--no-such-option", NULL) == 2, "dualregctl %s: %s", p,
			      th_last_stderr());
		assert_usage_error(p);
		if (!is_parent(p))
			continue;
		ck_assert_msg(ctl_conf(p, NULL, NULL) == 2, "dualregctl %s: %s", p,
			      th_last_stderr());
		assert_usage_error(p);
		ck_assert_msg(ctl_conf(p, "no-such-command", NULL) == 2, "dualregctl %s: %s", p,
			      th_last_stderr());
		assert_usage_error(p);
		char want[128];
		snprintf(want, sizeof want, "unknown %.60s command \"no-such-command\"", p);
		ck_assert_msg(strstr(th_last_stderr(), want) != NULL, "%s", th_last_stderr());
	}
}
END_TEST

/*
 * A line of the manual page as it reads: a leading request (.B, .BR, ...) and quotes
 * dropped, font escapes removed, "\-" as "-".
 */
static void man_text(const char *line, char *buf, size_t len)
{
	const char *p = line;
	if (*p == '.') {
		p += strcspn(p, " ");
		p += *p == ' ';
	}
	size_t n = 0;
	while (*p != '\0' && *p != '\n' && n + 1 < len) {
		if (p[0] == '\\' && p[1] == 'f' && p[2] != '\0') {
			p += 3;
		} else if (p[0] == '\\' && p[1] == '-') {
			buf[n++] = '-';
			p += 2;
		} else if (*p == '"') {
			p++;
		} else {
			buf[n++] = *p++;
		}
	}
	buf[n] = '\0';
}

START_TEST(test_man_page_names_every_command)
{
	load_tree();
	char man_path[512];
	snprintf(man_path, sizeof man_path, "%s/man/dualregctl.8", th_env("DUALREG_TEST_ROOT"));
	FILE *f = fopen(man_path, "r");
	ck_assert_msg(f != NULL, "%s", man_path);
	/* The tag of every .TP entry (COMMANDS and OPTIONS), as it reads. */
	static char tags[128][512];
	int ntags = 0;
	char line[1024];
	bool after_tp = false;
	while (fgets(line, sizeof line, f) != NULL) {
		if (after_tp && ntags < 128)
			man_text(line, tags[ntags++], sizeof tags[0]);
		after_tp = strncmp(line, ".TP", 3) == 0;
	}
	fclose(f);
	ck_assert_int_ge(ntags, npaths / 2);

	for (int i = 0; i < npaths; i++) {
		const char *p = paths[i];
		size_t len = strlen(p);
		/* Its entries: tags that begin with the path as whole words. */
		char entries[2048] = "";
		for (int t = 0; t < ntags; t++)
			if (strncmp(tags[t], p, len) == 0 && (tags[t][len] == ' ' || tags[t][len] == '\0'))
				snprintf(entries + strlen(entries), sizeof entries - strlen(entries),
					 "%.511s\n", tags[t]);
		ck_assert_msg(entries[0] != '\0', "dualregctl(8) has no entry for \"%s\"", p);
		if (is_parent(p))
			continue;
		/* Every option in the synopsis of its usage (the "usage:" line and the
		 * indented lines after it) is in its entries. */
		ck_assert_int_eq(ctl(p, "--help", NULL), 0);
		bool synopsis = true;
		char *save = NULL;
		for (char *u = strtok_r(out, "\n", &save); u != NULL && synopsis;
		     u = strtok_r(NULL, "\n", &save)) {
			synopsis = strncmp(u, "usage:", 6) == 0 || u[0] == ' ';
			for (char *o = strstr(u, "--"); synopsis && o != NULL; o = strstr(o + 2, "--")) {
				char opt[64];
				size_t olen = 2 + strspn(o + 2, "abcdefghijklmnopqrstuvwxyz-");
				snprintf(opt, sizeof opt, "%.*s", (int)olen, o);
				ck_assert_msg(strstr(entries, opt) != NULL,
					      "dualregctl(8) has no %s for \"%s\": %s", opt, p, entries);
			}
		}
	}
	/* The options of dualregctl itself. */
	bool c = false, help = false;
	for (int t = 0; t < ntags; t++) {
		c = c || strncmp(tags[t], "-c ", 3) == 0;
		help = help || strstr(tags[t], "--help") != NULL;
	}
	ck_assert_msg(c && help, "dualregctl(8) lacks an entry for -c or for --help");
}
END_TEST

Suite *ctl_help_suite(void)
{
	Suite *s = suite_create("ctl_help");
	TCase *tc = tcase_create("help");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_command_tree);
	tcase_add_test(tc, test_every_command_answers_help);
	tcase_add_test(tc, test_usage_errors);
	tcase_add_test(tc, test_man_page_names_every_command);
	suite_add_tcase(s, tc);
	return s;
}
