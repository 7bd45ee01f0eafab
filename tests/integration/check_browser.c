/*
 * browser: the staff web app. Its files (api/h_web_static.c): what is loaded from the
 * web directory and what is refused, and how dualregd serves them (types, ETag and 304,
 * the security headers, 404 for anything not loaded, the redirects). Then the pages in
 * Debian's chromium, driven by tests/browser/run.mjs (puppeteer-core): an account made
 * with dualregctl user add is set up through its link, signs out and signs in again,
 * with axe-core and the Content-Security-Policy checked at every step; its school's
 * dual-registered pupil is listed, and a mark the PRU records appears without a reload;
 * the PRU's request to register a second pupil is listed and confirmed on the page.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../api/handlers.h"
#include "dualreg/upn.h"
#include "../harness.h"
#include "../suites.h"

static char url[1024];
static struct th_daemon d;
static pid_t node_pid;     /* the node process group, while it runs */
static char profile[512];  /* the browser's profile directory, unique to the test */

/* ---- the files: loading ---- */

static void write_file(const char *dir, const char *name, const char *text, size_t len)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	ck_assert_msg(f != NULL, "cannot write %s", path);
	ck_assert_uint_eq(fwrite(text, 1, len, f), len);
	fclose(f);
}

/* A fresh directory under the test's temporary one. */
static void fresh_dir(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/web-%d-%s", th_env("DUALREG_TEST_TMP"), (int)getpid(), name);
	ck_assert_int_eq(mkdir(out, 0755), 0);
}

START_TEST(test_load_selects)
{
	char dir[512], sub[600];
	char err[512] = "";
	fresh_dir(dir, sizeof dir, "select");
	write_file(dir, "index.html", "<!doctype html>", 15);
	write_file(dir, "logo.svg", "<svg/>", 6);
	write_file(dir, ".hidden.html", "x", 1);   /* hidden: not loaded */
	write_file(dir, "notes.md", "# notes", 7); /* not a served type */
	snprintf(sub, sizeof sub, "%s/js", dir);
	ck_assert_int_eq(mkdir(sub, 0755), 0);
	write_file(sub, "app.js", "export {};", 10);
	snprintf(sub, sizeof sub, "%s/css", dir);
	ck_assert_int_eq(mkdir(sub, 0755), 0);
	write_file(sub, "app.css", "body{}", 6);
	snprintf(sub, sizeof sub, "%s/img", dir); /* not a served directory */
	ck_assert_int_eq(mkdir(sub, 0755), 0);
	write_file(sub, "a.svg", "<svg/>", 6);
	/* A symbolic link is not followed, whatever it points at. */
	char link[600];
	snprintf(link, sizeof link, "%s/passwd.txt", dir);
	ck_assert_int_eq(symlink("/etc/passwd", link), 0);
	ck_assert_msg(web_static_load(dir, err, sizeof err) == 0, "%s", err);
	ck_assert_uint_eq(web_static_count(), 4);
	/* A directory that is not there leaves nothing to serve, and is not an error. */
	char missing[600];
	snprintf(missing, sizeof missing, "%s/none", dir);
	ck_assert_int_eq(web_static_load(missing, err, sizeof err), 0);
	ck_assert_uint_eq(web_static_count(), 0);
	web_static_free();
}
END_TEST

START_TEST(test_load_refuses)
{
	char dir[512], err[512] = "";
	/* NUL bytes or malformed UTF-8: not text */
	fresh_dir(dir, sizeof dir, "nul");
	write_file(dir, "a.html", "ab\0cd", 5);
	ck_assert_int_eq(web_static_load(dir, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "a.html: not UTF-8 text") != NULL, "%s", err);
	ck_assert_uint_eq(web_static_count(), 0);
	fresh_dir(dir, sizeof dir, "latin1");
	write_file(dir, "a.css", "caf\xe9", 4);
	ck_assert_int_eq(web_static_load(dir, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "not UTF-8") != NULL, "%s", err);
	/* more than WEB_MAX_TOTAL bytes in all */
	fresh_dir(dir, sizeof dir, "big");
	size_t half = WEB_MAX_TOTAL / 2 + 1;
	char *big = malloc(half);
	memset(big, 'x', half);
	write_file(dir, "a.txt", big, half);
	write_file(dir, "b.txt", big, half);
	free(big);
	ck_assert_int_eq(web_static_load(dir, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "more than 4194304 bytes") != NULL, "%s", err);
	ck_assert_uint_eq(web_static_count(), 0);
}
END_TEST

START_TEST(test_etag_match)
{
	const char *e = "\"0123abcd\"";
	ck_assert(api_etag_matches("\"0123abcd\"", e));
	ck_assert(api_etag_matches("W/\"0123abcd\"", e));
	ck_assert(api_etag_matches("\"x\", \"0123abcd\"", e));
	ck_assert(api_etag_matches("*", e));
	ck_assert(!api_etag_matches("\"0123abcd", e));
	ck_assert(!api_etag_matches("\"0123abce\"", e));
	ck_assert(!api_etag_matches("", e));
}
END_TEST

/* ---- the files: serving ---- */

static void setup_daemon(void)
{
	th_db_create_migrated(url, sizeof url);
	th_sql(url, "INSERT INTO schools (urn, name, kind) VALUES ('100001', 'Hill School', "
		    "'mainstream')");
	th_daemon_start(&d, url, NULL, false);
	/* The browser's Origin must be [web] public_url's, known once the port is. */
	char ini[128];
	snprintf(ini, sizeof ini, "[web]\npublic_url = %s\n", d.base);
	th_daemon_reload_with(&d, ini);
}

/* Ends the browser run, if any: node's process group, then any browser process still
 * using this test's profile directory (puppeteer starts the browser in a process group
 * of its own). */
static void kill_browser(void)
{
	if (node_pid > 0) {
		kill(-node_pid, SIGKILL);
		waitpid(node_pid, NULL, 0);
		node_pid = 0;
	}
	if (profile[0] == '\0')
		return;
	DIR *proc = opendir("/proc");
	if (proc == NULL)
		return;
	struct dirent *e;
	while ((e = readdir(proc)) != NULL) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end != '\0' || pid <= 1 || pid == (long)getpid())
			continue;
		char path[64], cmd[16384];
		snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, cmd, sizeof cmd - 1);
		close(fd);
		if (n <= 0)
			continue;
		if (memmem(cmd, (size_t)n, profile, strlen(profile)) != NULL)
			kill((pid_t)pid, SIGKILL);
	}
	closedir(proc);
}

static void teardown_daemon(void)
{
	kill_browser();
	if (d.pid > 0)
		th_daemon_stop(&d, SIGKILL);
}

static void get(const char *method, const char *path, const char *const *headers,
		struct th_resp *r)
{
	char u[512];
	snprintf(u, sizeof u, "%s%s", d.base, path);
	ck_assert_msg(th_http(method, u, NULL, 0, headers, r) == 0, "no answer from %s", u);
}

static const char *header(const struct th_resp *r, const char *name)
{
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(r->headers, name);
	return cJSON_IsString(h) ? h->valuestring : "";
}

static void assert_security_headers(const struct th_resp *r, const char *what)
{
	ck_assert_msg(strcmp(header(r, "content-security-policy"), WEB_CSP) == 0, "%s: CSP %s",
		      what, header(r, "content-security-policy"));
	ck_assert_str_eq(header(r, "x-content-type-options"), "nosniff");
	ck_assert_str_eq(header(r, "referrer-policy"), "no-referrer");
	ck_assert_str_eq(header(r, "x-frame-options"), "DENY");
}

/* The text of web/<rel> in the source tree (malloc'd). */
static char *source_file(const char *rel, size_t *len)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/web/%s", th_env("DUALREG_TEST_ROOT"), rel);
	FILE *f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	char *buf = malloc(1 << 20);
	*len = fread(buf, 1, (1 << 20) - 1, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

START_TEST(test_serving)
{
	static const struct {
		const char *path, *file, *ctype;
	} files[] = {
	    {"/app/", "index.html", "text/html; charset=utf-8"},
	    {"/app/index.html", "index.html", "text/html; charset=utf-8"},
	    {"/app/setup", "setup.html", "text/html; charset=utf-8"},
	    {"/app/setup.html", "setup.html", "text/html; charset=utf-8"},
	    {"/app/js/app.js", "js/app.js", "text/javascript; charset=utf-8"},
	    {"/app/js/setup.js", "js/setup.js", "text/javascript; charset=utf-8"},
	    {"/app/js/api.js", "js/api.js", "text/javascript; charset=utf-8"},
	    {"/app/js/pupils.js", "js/pupils.js", "text/javascript; charset=utf-8"},
	    {"/app/js/requests.js", "js/requests.js", "text/javascript; charset=utf-8"},
	    {"/app/css/app.css", "css/app.css", "text/css; charset=utf-8"},
	    {"/app/favicon.svg", "favicon.svg", "image/svg+xml"},
	};
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		struct th_resp r;
		get("GET", files[i].path, NULL, &r);
		ck_assert_msg(r.status == 200, "%s: %ld", files[i].path, r.status);
		ck_assert_str_eq(r.content_type, files[i].ctype);
		size_t len;
		char *want = source_file(files[i].file, &len);
		ck_assert_msg(r.body_len == len && memcmp(r.body, want, len) == 0,
			      "%s is not web/%s", files[i].path, files[i].file);
		free(want);
		assert_security_headers(&r, files[i].path);
		ck_assert_str_eq(header(&r, "cache-control"), "no-cache");
		ck_assert_uint_eq(strlen(r.etag), 34);
		th_resp_free(&r);
	}

	/* ETag and If-None-Match; HEAD */
	struct th_resp r;
	get("GET", "/app/js/app.js", NULL, &r);
	char etag[128], inm[200];
	snprintf(etag, sizeof etag, "%s", r.etag);
	th_resp_free(&r);
	snprintf(inm, sizeof inm, "If-None-Match: W/%s", etag);
	const char *cond[] = {inm, NULL};
	get("GET", "/app/js/app.js", cond, &r);
	ck_assert_int_eq(r.status, 304);
	ck_assert_uint_eq(r.body_len, 0);
	ck_assert_str_eq(r.etag, etag);
	assert_security_headers(&r, "304");
	th_resp_free(&r);
	const char *other[] = {"If-None-Match: \"0000\"", NULL};
	get("GET", "/app/js/app.js", other, &r);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);
	get("GET", "/app/css/app.css", cond, &r); /* another file's tag */
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);
	get("HEAD", "/app/setup", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_uint_eq(r.body_len, 0);
	size_t len;
	free(source_file("setup.html", &len));
	ck_assert_uint_eq(strtoul(header(&r, "content-length"), NULL, 10), len);
	th_resp_free(&r);
}
END_TEST

START_TEST(test_not_served)
{
	/* Only what was loaded answers: no path leads anywhere else. */
	static const char *const paths[] = {
	    "/app/nope",		 "/app/nope.html",	    "/app/js/nope.js",
	    "/app/js/app",		 "/app/css/app.js",	    "/app/js/..%2Findex.html",
	    "/app/..%2F..%2Fetc%2Fpasswd", "/app/%2e%2e%2Fsetup.html",	    "/app/js/%2e%2e%2fsetup.js",
	    "/app/README.md",		 "/app/.hidden",	    "/app/js/%2Fetc%2Fpasswd",
	};
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		struct th_resp r;
		get("GET", paths[i], NULL, &r);
		ck_assert_msg(r.status == 404, "%s: %ld", paths[i], r.status);
		th_assert_problem(&r, 404);
		assert_security_headers(&r, paths[i]);
		th_resp_free(&r);
	}
	/* deeper than the routes go, or outside /app/: the router's own 404 */
	const char *deep[] = {"/app/js/a/b.js", "/app/img/a.svg", "/index.html", "/web/index.html"};
	for (size_t i = 0; i < sizeof deep / sizeof deep[0]; i++) {
		struct th_resp r;
		get("GET", deep[i], NULL, &r);
		ck_assert_msg(r.status == 404, "%s: %ld", deep[i], r.status);
		th_assert_problem(&r, 404);
		th_resp_free(&r);
	}
	struct th_resp r;
	get("POST", "/app/", NULL, &r);
	th_assert_problem(&r, 405);
	ck_assert_str_eq(r.allow, "GET, HEAD, OPTIONS");
	th_resp_free(&r);
	/* The start page and the bare /app lead to /app/. */
	const char *starts[] = {"/", "/app"};
	for (size_t i = 0; i < 2; i++) {
		get("GET", starts[i], NULL, &r);
		ck_assert_int_eq(r.status, 302);
		ck_assert_str_eq(header(&r, "location"), "/app/");
		assert_security_headers(&r, starts[i]);
		th_resp_free(&r);
	}
}
END_TEST

/* ---- the pages in a browser ---- */

/* The last part of a file, for a failure message. */
static void tail_of(const char *path, char *out, size_t len)
{
	out[0] = '\0';
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return;
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	long from = size > (long)len - 1 ? size - (long)len + 1 : 0;
	fseek(f, from, SEEK_SET);
	size_t n = fread(out, 1, len - 1, f);
	out[n] = '\0';
	fclose(f);
}

/* Runs node tests/browser/run.mjs with env (NULL-terminated "NAME=value" list added to
 * ours), its output into log; bounded by seconds. Returns its exit status, -1 on time. */
static int run_node(char *const env_extra[], const char *log, double seconds)
{
	char script[1024];
	snprintf(script, sizeof script, "%s/tests/browser/run.mjs", th_env("DUALREG_TEST_ROOT"));
	node_pid = fork();
	ck_assert_int_ge(node_pid, 0);
	if (node_pid == 0) {
		setpgid(0, 0); /* its own group, the browser's launcher included */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (size_t i = 0; env_extra[i] != NULL; i++)
			putenv(env_extra[i]);
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd < 0 || null < 0)
			_exit(126);
		dup2(null, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		execlp("node", "node", script, (char *)NULL);
		_exit(127);
	}
	setpgid(node_pid, node_pid);
	double deadline = th_now() + seconds;
	while (th_now() < deadline) {
		int status;
		pid_t w = waitpid(node_pid, &status, WNOHANG);
		if (w == node_pid) {
			node_pid = 0;
			kill_browser(); /* nothing of the run may outlive it */
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		}
		usleep(100 * 1000);
	}
	kill_browser();
	return -1;
}

/* dualregctl with the daemon's configuration; its output into out. */
static int ctl(char *const args[], char *out, size_t outlen)
{
	char bin[512];
	snprintf(bin, sizeof bin, "%s/dualregctl", th_env("DUALREG_TEST_BIN"));
	char *argv[16] = {bin, "-c", d.conf_path};
	size_t n = 3;
	for (size_t i = 0; args[i] != NULL && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return th_run(argv, NULL, out, outlen);
}

/* The dual-registered pupil the signed-in page lists: on the roll of Hill School (main)
 * and of a PRU (subsidiary, expected there every morning), both in force from a month
 * ago; the PRU's key (pru_token) records the mark the page must show without a reload.
 * A second pupil (request_upn), on Hill School's roll only, whom the PRU's key asks to
 * register from today: a request awaiting Hill School's decision (request_id). */
#define PRU_URN "200002"
static char pupil_upn[14], pru_token[128], request_upn[14], request_id[32];

/* A valid UPN from a template whose check letter is fixed up. */
static void make_upn(char out[14], const char *tmpl)
{
	snprintf(out, 14, "%s", tmpl);
	char want = 'A';
	if (upn_validate(out, &want) == UPN_BAD_CHECK)
		out[0] = want;
	ck_assert_int_eq(upn_validate(out, NULL), UPN_OK);
}

/* The PRU's request for a subsidiary registration of a pupil never on its roll: it must
 * name the pupil's given name, family name and date of birth. */
static void request_pupil(const char *admin, const char *start)
{
	make_upn(request_upn, "A801200005051");
	char body[1024];
	struct th_resp r;
	snprintf(body, sizeof body,
		 "{\"upn\":\"%s\",\"given_name\":\"Alan\",\"family_name\":\"Turing\","
		 "\"date_of_birth\":\"2013-06-23\"}",
		 request_upn);
	th_api(&d, "POST", "/v1/pupils", admin, body, NULL, &r);
	ck_assert_msg(r.status == 201 || r.status == 200, "pupil: %ld %s", r.status, r.body);
	th_resp_free(&r);
	snprintf(body, sizeof body,
		 "{\"upn\":\"%s\",\"urn\":\"100001\",\"role\":\"main\",\"start_date\":\"%s\"}",
		 request_upn, start);
	th_api(&d, "POST", "/v1/registrations", admin, body, NULL, &r);
	ck_assert_msg(r.status == 201, "main registration: %ld %s", r.status, r.body);
	th_resp_free(&r);
	char today[16];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(today, sizeof today, "%Y-%m-%d", &tm);
	snprintf(body, sizeof body,
		 "{\"upn\":\"%s\",\"urn\":\"" PRU_URN "\",\"role\":\"subsidiary\","
		 "\"start_date\":\"%s\",\"given_name\":\"Alan\",\"family_name\":\"Turing\","
		 "\"date_of_birth\":\"2013-06-23\",\"schedule\":{\"mon\":[\"PM\"],"
		 "\"wed\":[\"PM\"]}}",
		 request_upn, today);
	th_api(&d, "POST", "/v1/registrations", pru_token, body, NULL, &r);
	ck_assert_msg(r.status == 201, "PRU request: %ld %s", r.status, r.body);
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(r.json, "status");
	ck_assert_msg(cJSON_IsString(st) && strcmp(st->valuestring, "pending") == 0, "%s", r.body);
	const cJSON *aw = cJSON_GetObjectItemCaseSensitive(r.json, "awaiting");
	ck_assert_msg(cJSON_IsString(aw) && strcmp(aw->valuestring, "100001") == 0, "%s", r.body);
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(r.json, "id");
	ck_assert(cJSON_IsNumber(id));
	snprintf(request_id, sizeof request_id, "%.0f", id->valuedouble);
	th_resp_free(&r);
}

static void place_pupil(void)
{
	th_sql(url, "INSERT INTO schools (urn, name, kind) VALUES ('" PRU_URN "', 'River PRU', "
		    "'pru')");
	char admin[128];
	th_key_create(url, NULL, admin, sizeof admin);
	th_key_create(url, PRU_URN, pru_token, sizeof pru_token);
	snprintf(pupil_upn, sizeof pupil_upn, "A801200005042");
	char want = 'A';
	if (upn_validate(pupil_upn, &want) == UPN_BAD_CHECK)
		pupil_upn[0] = want;
	ck_assert_int_eq(upn_validate(pupil_upn, NULL), UPN_OK);
	char start[16], body[1024];
	time_t t = time(NULL) - 30 * 86400;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(start, sizeof start, "%Y-%m-%d", &tm);
	struct th_resp r;
	snprintf(body, sizeof body,
		 "{\"upn\":\"%s\",\"given_name\":\"Grace\",\"family_name\":\"Hopper\","
		 "\"date_of_birth\":\"2012-12-09\"}",
		 pupil_upn);
	th_api(&d, "POST", "/v1/pupils", admin, body, NULL, &r);
	ck_assert_msg(r.status == 201 || r.status == 200, "pupil: %ld %s", r.status, r.body);
	th_resp_free(&r);
	snprintf(body, sizeof body,
		 "{\"upn\":\"%s\",\"urn\":\"100001\",\"role\":\"main\",\"start_date\":\"%s\"}",
		 pupil_upn, start);
	th_api(&d, "POST", "/v1/registrations", admin, body, NULL, &r);
	ck_assert_msg(r.status == 201, "main registration: %ld %s", r.status, r.body);
	th_resp_free(&r);
	snprintf(body, sizeof body,
		 "{\"upn\":\"%s\",\"urn\":\"" PRU_URN "\",\"role\":\"subsidiary\","
		 "\"start_date\":\"%s\",\"schedule\":{\"mon\":[\"AM\"],\"tue\":[\"AM\"],"
		 "\"wed\":[\"AM\"],\"thu\":[\"AM\"],\"fri\":[\"AM\"]}}",
		 pupil_upn, start);
	th_api(&d, "POST", "/v1/registrations", admin, body, NULL, &r);
	ck_assert_msg(r.status == 201, "PRU registration: %ld %s", r.status, r.body);
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(r.json, "status");
	ck_assert_msg(cJSON_IsString(st) && strcmp(st->valuestring, "in_force") == 0, "%s", r.body);
	th_resp_free(&r);
	request_pupil(admin, start);
}

/* A new account: dualregctl user add; the set-up link it printed into link. */
static void add_user(const char *urn, const char *email, const char *name, char *link,
		     size_t len)
{
	char out[4096];
	char *const add[] = {"user", "add", "--school", (char *)urn, "--email", (char *)email,
			     "--name", (char *)name, NULL};
	int rc = ctl(add, out, sizeof out);
	ck_assert_msg(rc == 0, "dualregctl user add (%d): %s%s", rc, out, th_last_stderr());
	/* the line holding the link */
	const char *at = strstr(out, "/app/setup#");
	ck_assert_msg(at != NULL, "no set-up link in: %s", out);
	while (at > out && at[-1] != '\n')
		at--;
	snprintf(link, len, "%.*s", (int)strcspn(at, "\n"), at);
	ck_assert_msg(strncmp(link, d.base, strlen(d.base)) == 0, "link %s is not on %s", link,
		      d.base);
}

/* A member of the PRU's staff, and one of Far School, a school no pupil here was ever
 * registered at. */
#define FAR_URN "300003"
#define PRU_EMAIL "mary.seacole@river.example"
static char pru_link[512], far_link[512];

static void add_other_users(void)
{
	th_sql(url, "INSERT INTO schools (urn, name, kind) VALUES ('" FAR_URN "', 'Far School', "
		    "'mainstream')");
	add_user(PRU_URN, PRU_EMAIL, "Mary Seacole", pru_link, sizeof pru_link);
	add_user(FAR_URN, "isaac.newton@far.example", "Isaac Newton", far_link, sizeof far_link);
}

static void browser_run(const char *flow, const char *link, const char *email)
{
	const char *tmp = th_env("DUALREG_TEST_TMP");
	snprintf(profile, sizeof profile, "%s/browser-profile-%d", tmp, (int)getpid());
	char log[512];
	snprintf(log, sizeof log, "%s/browser-%d.log", tmp, (int)getpid());
	static char e_url[128], e_link[600], e_email[300], e_school[64], e_flow[64], e_ctl[600],
	    e_conf[300], e_profile[600], e_tmp[600], e_upn[64], e_pru[64], e_pru_token[200],
	    e_req_upn[64], e_req_id[64], e_pru_link[600], e_pru_email[128], e_far_link[600],
	    e_far_urn[64], e_db[1100];
	snprintf(e_url, sizeof e_url, "DUALREG_WEB_URL=%s", d.base);
	snprintf(e_link, sizeof e_link, "DUALREG_SETUP_LINK=%s", link);
	snprintf(e_email, sizeof e_email, "DUALREG_USER_EMAIL=%s", email);
	snprintf(e_school, sizeof e_school, "DUALREG_USER_SCHOOL=Hill School");
	snprintf(e_flow, sizeof e_flow, "DUALREG_BROWSER_FLOW=%s", flow);
	snprintf(e_ctl, sizeof e_ctl, "DUALREG_CTL=%s/dualregctl", th_env("DUALREG_TEST_BIN"));
	snprintf(e_conf, sizeof e_conf, "DUALREG_CTL_CONF=%s", d.conf_path);
	snprintf(e_profile, sizeof e_profile, "DUALREG_BROWSER_PROFILE=%s", profile);
	snprintf(e_tmp, sizeof e_tmp, "DUALREG_TEST_TMP=%s", tmp);
	snprintf(e_upn, sizeof e_upn, "DUALREG_PUPIL_UPN=%s", pupil_upn);
	snprintf(e_pru, sizeof e_pru, "DUALREG_PRU_URN=%s", PRU_URN);
	snprintf(e_pru_token, sizeof e_pru_token, "DUALREG_PRU_TOKEN=%s", pru_token);
	snprintf(e_req_upn, sizeof e_req_upn, "DUALREG_REQUEST_UPN=%s", request_upn);
	snprintf(e_req_id, sizeof e_req_id, "DUALREG_REQUEST_ID=%s", request_id);
	snprintf(e_pru_link, sizeof e_pru_link, "DUALREG_PRU_SETUP_LINK=%s", pru_link);
	snprintf(e_pru_email, sizeof e_pru_email, "DUALREG_PRU_USER_EMAIL=" PRU_EMAIL);
	snprintf(e_far_link, sizeof e_far_link, "DUALREG_FAR_SETUP_LINK=%s", far_link);
	snprintf(e_far_urn, sizeof e_far_urn, "DUALREG_FAR_URN=" FAR_URN);
	snprintf(e_db, sizeof e_db, "DUALREG_DATABASE_URL=%s", url);
	char *const env[] = {e_url,	  e_link,      e_email,	    e_school,	 e_flow,
			     e_ctl,	  e_conf,      e_profile,   e_tmp,	 e_upn,
			     e_pru,	  e_pru_token, e_req_upn,   e_req_id,	 e_pru_link,
			     e_pru_email, e_far_link,  e_far_urn,   e_db,	 NULL};
	int rc = run_node(env, log, 450.0);
	if (rc != 0) {
		char out[6000];
		tail_of(log, out, sizeof out);
		fprintf(stderr, "---- %s ----\n%s\n----\n", log, out);
		ck_abort_msg("node tests/browser/run.mjs %s (%d); its output ends:\n%s",
			     rc < 0 ? "did not finish in time" : "failed", rc,
			     out + (strlen(out) > 2500 ? strlen(out) - 2500 : 0));
	}
}

START_TEST(test_browser)
{
	const char *email = "ada.lovelace@hill.example";
	place_pupil();
	char link[512];
	add_user("100001", email, "Ada Lovelace", link, sizeof link);
	add_other_users();
	browser_run("full", link, email);
}
END_TEST

Suite *browser_suite(void)
{
	Suite *s = suite_create("browser");
	TCase *tc = tcase_create("files");
	tcase_add_test(tc, test_load_selects);
	tcase_add_test(tc, test_load_refuses);
	tcase_add_test(tc, test_etag_match);
	suite_add_tcase(s, tc);
	tc = tcase_create("serving");
	tcase_add_checked_fixture(tc, setup_daemon, teardown_daemon);
	tcase_add_test(tc, test_serving);
	tcase_add_test(tc, test_not_served);
	suite_add_tcase(s, tc);
	tc = tcase_create("pages");
	tcase_add_checked_fixture(tc, setup_daemon, teardown_daemon);
	tcase_set_timeout(tc, 500);
	tcase_add_test(tc, test_browser);
	suite_add_tcase(s, tc);
	return s;
}
