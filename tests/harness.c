/* harness: shared test helpers (see harness.h). */
#include "harness.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../api/problem.h"
#include "th_contract.h"

extern char **environ;

double th_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *th_env(const char *name)
{
	const char *v = getenv(name);
	ck_assert_msg(v != NULL && v[0] != '\0', "%s is not set: run the tests with make check",
		      name);
	return v;
}

static PGconn *connect_or_fail(const char *url)
{
	PGconn *c = PQconnectdb(url);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect %s: %s", url, PQerrorMessage(c));
	PQclear(PQexec(c, "SET client_min_messages = warning"));
	return c;
}

void th_sql(const char *url, const char *sql)
{
	PGconn *c = connect_or_fail(url);
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	ck_assert_msg(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql,
		      PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);
}

void th_db_create(char *url, size_t len)
{
	static unsigned counter;
	char name[64], sql[128];
	snprintf(name, sizeof name, "t_%d_%u_%ld", (int)getpid(), counter++, (long)time(NULL));
	snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
	th_sql(th_env("DUALREG_TEST_DATABASE_URL"), sql);
	/* In a conninfo string the later dbname wins. */
	snprintf(url, len, "%s dbname=%s", th_env("DUALREG_TEST_DATABASE_URL"), name);
}

void th_db_create_migrated(char *url, size_t len)
{
	char ctl[512], env_url[1100], out[4096];
	th_db_create(url, len);
	snprintf(ctl, sizeof ctl, "%s/dualregctl", th_env("DUALREG_TEST_BIN"));
	snprintf(env_url, sizeof env_url, "DUALREG_DATABASE_URL=%s", url);
	char *const argv[] = {ctl, "-c", "/dev/null", "migrate", NULL};
	char *const envp[] = {env_url, NULL};
	int rc = th_run(argv, envp, out, sizeof out);
	ck_assert_msg(rc == 0, "dualregctl migrate failed (%d): %s", rc, out);
}

static void pg_ctl(const char *cmd)
{
	char script[512], out[4096];
	snprintf(script, sizeof script, "%s/scripts/pg.sh", th_env("DUALREG_TEST_ROOT"));
	char *const argv[] = {script, (char *)cmd, (char *)th_env("DUALREG_TEST_PGDIR"), NULL};
	int rc = th_run(argv, NULL, out, sizeof out);
	ck_assert_msg(rc == 0, "pg.sh %s failed (%d): %s", cmd, rc, out);
}

void th_pg_stop(void)
{
	pg_ctl("stop");
}

void th_pg_start(void)
{
	pg_ctl("start");
}

/* Builds environ + extra (extra entries win). Caller frees the array only. */
static char **merged_env(char *const extra[])
{
	size_t n = 0, m = 0;
	while (environ[n] != NULL)
		n++;
	while (extra != NULL && extra[m] != NULL)
		m++;
	char **env = calloc(n + m + 1, sizeof *env);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		bool overridden = false;
		for (size_t j = 0; j < m; j++) {
			size_t kl = strcspn(extra[j], "=");
			if (strncmp(environ[i], extra[j], kl + 1) == 0)
				overridden = true;
		}
		if (!overridden)
			env[k++] = environ[i];
	}
	for (size_t j = 0; j < m; j++)
		env[k++] = extra[j];
	env[k] = NULL;
	return env;
}

static char last_stderr[16384];

const char *th_last_stderr(void)
{
	return last_stderr;
}

/* Appends what fd has to dst (bounded, NUL-terminated); returns false at end of file. */
static bool drain_into(int fd, char *dst, size_t cap, size_t *used)
{
	char scratch[4096];
	bool room = dst != NULL && *used + 1 < cap;
	ssize_t n = read(fd, room ? dst + *used : scratch, room ? cap - *used - 1 : sizeof scratch);
	if (n < 0 && errno == EINTR)
		return true;
	if (n <= 0)
		return false;
	if (room) {
		*used += (size_t)n;
		dst[*used] = '\0';
	}
	return true;
}

int th_run(char *const argv[], char *const envp_extra[], char *out, size_t outlen)
{
	/* Close-on-exec, so that a server the child starts cannot hold a pipe open. */
	int opipe[2], epipe[2];
	ck_assert_int_eq(pipe2(opipe, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(epipe, O_CLOEXEC), 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, opipe[1], 1);
	posix_spawn_file_actions_adddup2(&fa, epipe[1], 2);
	char **env = merged_env(envp_extra);
	pid_t pid;
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, env);
	free(env);
	posix_spawn_file_actions_destroy(&fa);
	close(opipe[1]);
	close(epipe[1]);
	ck_assert_msg(rc == 0, "spawn %s: %s", argv[0], strerror(rc));
	size_t oused = 0, eused = 0;
	if (out != NULL && outlen > 0)
		out[0] = '\0';
	last_stderr[0] = '\0';
	struct pollfd pf[2] = {{.fd = opipe[0], .events = POLLIN}, {.fd = epipe[0], .events = POLLIN}};
	while (pf[0].fd >= 0 || pf[1].fd >= 0) {
		if (poll(pf, 2, -1) < 0) {
			ck_assert_int_eq(errno, EINTR);
			continue;
		}
		if (pf[0].revents != 0 && !drain_into(pf[0].fd, out, outlen, &oused)) {
			close(pf[0].fd);
			pf[0].fd = -1;
		}
		if (pf[1].revents != 0 &&
		    !drain_into(pf[1].fd, last_stderr, sizeof last_stderr, &eused)) {
			close(pf[1].fd);
			pf[1].fd = -1;
		}
	}
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The loopback ports of the daemons this process started: answers from them are
 * checked against the contract. Forked tests inherit the list. */
static unsigned daemon_ports[256];
static size_t ndaemon_ports;

/* The request target (path and query) of url when it names one of our daemons. */
static const char *daemon_target(const char *url)
{
	unsigned port;
	int off = 0;
	if (sscanf(url, "http://127.0.0.1:%u%n", &port, &off) != 1 &&
	    sscanf(url, "https://127.0.0.1:%u%n", &port, &off) != 1)
		return NULL;
	for (size_t i = 0; i < ndaemon_ports; i++)
		if (daemon_ports[i] == port)
			return url[off] != '\0' ? url + off : "/";
	return NULL;
}

static unsigned free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	socklen_t sl = sizeof sa;
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

void th_daemon_start(struct th_daemon *d, const char *db_url, const char *extra_ini,
		     bool valgrind)
{
	static unsigned seq;
	const char *tmp = th_env("DUALREG_TEST_TMP");
	memset(d, 0, sizeof *d);
	d->port = free_port();
	snprintf(d->base, sizeof d->base, "http://127.0.0.1:%u", d->port);
	if (ndaemon_ports < sizeof daemon_ports / sizeof daemon_ports[0])
		daemon_ports[ndaemon_ports++] = d->port;
	snprintf(d->conf_path, sizeof d->conf_path, "%s/d%d_%u.conf", tmp, (int)getpid(), seq);
	snprintf(d->log_path, sizeof d->log_path, "%s/d%d_%u.log", tmp, (int)getpid(), seq++);

	FILE *f = fopen(d->conf_path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "[server]\nlisten = 127.0.0.1:%u\n[database]\nurl = %s\npool_size = 2\n"
		   "connect_timeout = 2s\n[log]\nlevel = debug\n",
		d->port, db_url);
	if (extra_ini != NULL)
		fputs(extra_ini, f);
	fclose(f);

	char bin[512];
	snprintf(bin, sizeof bin, "%s/dualregd", th_env("DUALREG_TEST_BIN"));
	char *const plain[] = {bin, "-c", d->conf_path, NULL};
	char *const under_vg[] = {"/usr/bin/valgrind", "--quiet", "--error-exitcode=99",
				  "--leak-check=full", "--show-leak-kinds=definite,indirect",
				  "--errors-for-leak-kinds=definite,indirect", bin, "-c",
				  d->conf_path, NULL};
	/* The daemon must not inherit the test's own overrides. */
	char *const unset[] = {"DUALREG_DATABASE_URL=", "DUALREG_LISTEN=", "DUALREG_LOG_LEVEL=",
			       NULL};
	char **env = merged_env(unset);
	d->pid = fork();
	ck_assert_int_ge(d->pid, 0);
	if (d->pid == 0) {
		/* Dies with the test process, even when a failed assertion skips teardown. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int log = open(d->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		dup2(log, 2);
		char *const *argv = valgrind ? under_vg : plain;
		execve(argv[0], argv, env);
		_exit(127);
	}
	free(env);

	char url[128];
	snprintf(url, sizeof url, "%s/healthz", d->base);
	double deadline = th_now() + (valgrind ? 60.0 : 15.0);
	while (th_now() < deadline) {
		struct th_resp resp;
		if (th_http("GET", url, NULL, 0, NULL, &resp) == 0 && resp.status == 200) {
			th_resp_free(&resp);
			return;
		}
		th_resp_free(&resp);
		int status;
		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			d->pid = 0;
			ck_abort_msg("dualregd exited during start-up; see %s", d->log_path);
		}
		usleep(50 * 1000);
	}
	ck_abort_msg("dualregd did not answer /healthz; see %s", d->log_path);
}

int th_daemon_wait(struct th_daemon *d, double seconds)
{
	double deadline = th_now() + seconds;
	while (th_now() < deadline) {
		int status;
		pid_t r = waitpid(d->pid, &status, WNOHANG);
		if (r == d->pid) {
			d->pid = 0;
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		}
		usleep(20 * 1000);
	}
	return -1;
}

int th_daemon_stop(struct th_daemon *d, int sig)
{
	if (d->pid <= 0)
		return -1;
	kill(d->pid, sig);
	int rc = th_daemon_wait(d, 60.0);
	if (rc == -1) {
		kill(d->pid, SIGKILL);
		waitpid(d->pid, NULL, 0);
		d->pid = 0;
	}
	return rc;
}

bool th_daemon_log_contains(const struct th_daemon *d, const char *text)
{
	FILE *f = fopen(d->log_path, "r");
	if (f == NULL)
		return false;
	char line[8192];
	bool found = false;
	while (!found && fgets(line, sizeof line, f) != NULL)
		found = strstr(line, text) != NULL;
	fclose(f);
	return found;
}

/* How many completed reloads the daemon has logged. */
static int daemon_reloads(const struct th_daemon *d)
{
	FILE *f = fopen(d->log_path, "r");
	if (f == NULL)
		return 0;
	char line[8192];
	int n = 0;
	while (fgets(line, sizeof line, f) != NULL)
		n += strstr(line, "msg=\"reloaded\"") != NULL;
	fclose(f);
	return n;
}

void th_daemon_reload_with(struct th_daemon *d, const char *ini)
{
	int before = daemon_reloads(d);
	FILE *f = fopen(d->conf_path, "a");
	ck_assert_ptr_nonnull(f);
	fputs(ini, f);
	fclose(f);
	ck_assert_int_eq(kill(d->pid, SIGHUP), 0);
	double deadline = th_now() + 5.0;
	while (th_now() < deadline && daemon_reloads(d) == before)
		usleep(20 * 1000);
	ck_assert_msg(daemon_reloads(d) > before, "no reload; see %s", d->log_path);
}

struct body_buf {
	char *p;
	size_t len;
};

static size_t write_cb(char *data, size_t size, size_t n, void *arg)
{
	struct body_buf *b = arg;
	size_t add = size * n;
	b->p = realloc(b->p, b->len + add + 1);
	memcpy(b->p + b->len, data, add);
	b->len += add;
	b->p[b->len] = '\0';
	return add;
}

static void copy_header(const char *line, size_t len, const char *name, char *dst, size_t dstlen)
{
	size_t nl = strlen(name);
	if (len <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return;
	const char *v = line + nl + 1;
	size_t vl = len - nl - 1;
	while (vl > 0 && (*v == ' ' || *v == '\t'))
		v++, vl--;
	while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
		vl--;
	snprintf(dst, dstlen, "%.*s", (int)vl, v);
}

static size_t header_cb(char *data, size_t size, size_t n, void *arg)
{
	struct th_resp *r = arg;
	size_t len = size * n;
	/* A new status line (after a 100 Continue, say): the headers start again. */
	if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		cJSON_Delete(r->headers);
		r->headers = cJSON_CreateObject();
		return len;
	}
	const char *colon = memchr(data, ':', len);
	if (colon != NULL && r->headers != NULL) {
		char name[128], value[2048];
		size_t nl = (size_t)(colon - data);
		snprintf(name, sizeof name, "%.*s", (int)nl, data);
		for (char *c = name; *c != '\0'; c++)
			*c = (char)tolower((unsigned char)*c);
		copy_header(data, len, name, value, sizeof value);
		cJSON_DeleteItemFromObjectCaseSensitive(r->headers, name);
		cJSON_AddStringToObject(r->headers, name, value);
	}
	copy_header(data, len, "Content-Type", r->content_type, sizeof r->content_type);
	copy_header(data, len, "Allow", r->allow, sizeof r->allow);
	copy_header(data, len, "Retry-After", r->retry_after, sizeof r->retry_after);
	copy_header(data, len, "WWW-Authenticate", r->www_authenticate,
		    sizeof r->www_authenticate);
	copy_header(data, len, "Idempotent-Replayed", r->idempotent_replayed,
		    sizeof r->idempotent_replayed);
	copy_header(data, len, "ETag", r->etag, sizeof r->etag);
	return len;
}

int th_http(const char *method, const char *url, const char *body, size_t body_len,
	    const char *const *headers, struct th_resp *resp)
{
	memset(resp, 0, sizeof *resp);
	CURL *c = curl_easy_init();
	struct body_buf b = {0};
	struct curl_slist *hl = NULL;
	for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
		hl = curl_slist_append(hl, headers[i]);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	if (body != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, resp);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	CURLcode rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	resp->body = b.p ? b.p : calloc(1, 1);
	resp->body_len = b.len;
	if (b.len > 0)
		resp->json = cJSON_ParseWithLength(resp->body, b.len);
	if (resp->headers == NULL)
		resp->headers = cJSON_CreateObject();
	const char *target = daemon_target(url);
	if (rc == CURLE_OK && target != NULL)
		th_contract_response(method, target, resp->status, resp->headers, resp->body,
				     resp->body_len);
	return rc == CURLE_OK ? 0 : -1;
}

void th_resp_free(struct th_resp *resp)
{
	free(resp->body);
	cJSON_Delete(resp->json);
	cJSON_Delete(resp->headers);
	resp->body = NULL;
	resp->json = NULL;
	resp->headers = NULL;
}

void th_assert_problem(const struct th_resp *resp, long status)
{
	ck_assert_int_eq(resp->status, status);
	ck_assert_str_eq(resp->content_type, PROBLEM_CONTENT_TYPE);
	ck_assert_msg(resp->json != NULL, "problem body is not JSON: %s", resp->body);
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(resp->json, "type");
	const cJSON *title = cJSON_GetObjectItemCaseSensitive(resp->json, "title");
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(resp->json, "status");
	const cJSON *detail = cJSON_GetObjectItemCaseSensitive(resp->json, "detail");
	ck_assert(cJSON_IsString(type) && strncmp(type->valuestring, "/problems/", 10) == 0);
	ck_assert(cJSON_IsString(title) && title->valuestring[0] != '\0');
	ck_assert(cJSON_IsNumber(st) && st->valueint == status);
	ck_assert(cJSON_IsString(detail) && detail->valuestring[0] != '\0');
}

void th_key_create(const char *db_url, const char *urn, char *token, size_t len)
{
	char ctl[512], env_url[1100], out[4096];
	snprintf(ctl, sizeof ctl, "%s/dualregctl", th_env("DUALREG_TEST_BIN"));
	snprintf(env_url, sizeof env_url, "DUALREG_DATABASE_URL=%s", db_url);
	char *const admin[] = {ctl, "-c", "/dev/null", "key", "create", "--admin", NULL};
	char *const school[] = {ctl, "-c", "/dev/null", "key", "create", "--school", (char *)urn,
				NULL};
	char *const envp[] = {env_url, NULL};
	int rc = th_run(urn == NULL ? admin : school, envp, out, sizeof out);
	ck_assert_msg(rc == 0, "dualregctl key create failed (%d): %s", rc, out);
	const char *t = strstr(out, "drk_");
	ck_assert_msg(t != NULL, "no token in: %s", out);
	size_t n = strcspn(t, "\n");
	ck_assert_uint_lt(n, len);
	memcpy(token, t, n);
	token[n] = '\0';
}

void th_api(const struct th_daemon *d, const char *method, const char *path, const char *token,
	    const char *json, const char *const *extra_headers, struct th_resp *resp)
{
	char url[2048], auth[128];
	const char *headers[16];
	size_t n = 0;
	snprintf(url, sizeof url, "%s%s", d->base, path);
	if (token != NULL) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
		headers[n++] = auth;
	}
	if (json != NULL)
		headers[n++] = "Content-Type: application/json";
	for (size_t i = 0; extra_headers != NULL && extra_headers[i] != NULL && n < 15; i++)
		headers[n++] = extra_headers[i];
	headers[n] = NULL;
	int rc = th_http(method, url, json, json ? strlen(json) : 0, headers, resp);
	ck_assert_msg(rc == 0, "%s %s: no response", method, path);
}
