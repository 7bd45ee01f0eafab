/*
 * harness: what the tests share. The throw-away PostgreSQL cluster started by
 * scripts/check.sh (fresh databases per test, stopping and starting the server), the
 * real dualregd binary run as a child process on a free loopback port, a small libcurl
 * HTTP client, and running dualregctl. Every wait is bounded.
 */
#ifndef DUALREG_TESTS_HARNESS_H
#define DUALREG_TESTS_HARNESS_H

#include <cJSON.h>
#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* An environment variable set by scripts/check.sh; fails the test if missing. */
const char *th_env(const char *name);

/* Creates an empty database; writes its conninfo to url. */
void th_db_create(char *url, size_t len);
/* Creates a database and applies every migration with dualregctl. */
void th_db_create_migrated(char *url, size_t len);
/* Runs one SQL statement (blocking), failing the test on error. */
void th_sql(const char *url, const char *sql);
/* Stops / starts the shared cluster (for outage tests). */
void th_pg_stop(void);
void th_pg_start(void);

/* Runs a program to completion; returns its exit status (or 128+signal). Its standard
 * output is captured into out (bounded, NUL-terminated) when out is not NULL; its
 * standard error, never mixed into out, is kept for th_last_stderr(). */
int th_run(char *const argv[], char *const envp_extra[], char *out, size_t outlen);
/* The standard error of the last th_run (bounded): for messages, never for data. */
const char *th_last_stderr(void);

struct th_daemon {
	pid_t pid;
	unsigned port;
	char base[64];      /* http://127.0.0.1:PORT */
	char log_path[256]; /* its stderr */
	char conf_path[256];
};

/*
 * Starts dualregd against db_url with extra INI text appended to a generated config
 * (may be NULL), wrapped in valgrind when valgrind is true. Waits (bounded) until
 * /healthz answers.
 */
void th_daemon_start(struct th_daemon *d, const char *db_url, const char *extra_ini,
		     bool valgrind);
/* Sends sig and waits (bounded) for exit; returns the exit status or 128+signal. */
int th_daemon_stop(struct th_daemon *d, int sig);
/* Waits (bounded) for exit after a signal was sent; -1 if it did not exit in time. */
int th_daemon_wait(struct th_daemon *d, double seconds);
/* True if the daemon's log contains text. */
bool th_daemon_log_contains(const struct th_daemon *d, const char *text);
/* Appends INI text to the daemon's config (later keys win), sends SIGHUP and waits
 * (bounded) until the daemon has logged one more completed reload. */
void th_daemon_reload_with(struct th_daemon *d, const char *ini);

struct th_resp {
	long status;
	char content_type[128];
	char allow[128];
	char retry_after[32];
	char www_authenticate[128];
	char idempotent_replayed[16];
	char etag[128];
	cJSON *headers; /* every header of the final answer: lower-case name -> value */
	char *body; /* NUL-terminated; owned */
	size_t body_len;
	cJSON *json; /* parsed body, or NULL */
};

/* One HTTP request; body may be NULL. headers is a NULL-terminated list or NULL.
 * Returns 0, or -1 if no response arrived (status 0). An answer from a dualregd started
 * by th_daemon_start is checked against api/openapi.yaml (th_contract.h) and fails the
 * test when it does not match. */
int th_http(const char *method, const char *url, const char *body, size_t body_len,
	    const char *const *headers, struct th_resp *resp);
void th_resp_free(struct th_resp *resp);

/*
 * Creates an API key with dualregctl (urn NULL: an admin key) and writes its token
 * (AUTH_TOKEN_LEN + 1 bytes) into token.
 */
void th_key_create(const char *db_url, const char *urn, char *token, size_t len);

/*
 * One JSON API call: method, daemon-relative path, bearer token (may be NULL), JSON
 * body text (may be NULL; sent as application/json). Fails the test if no response.
 * Extra headers may be given as a NULL-terminated list (or NULL).
 */
void th_api(const struct th_daemon *d, const char *method, const char *path, const char *token,
	    const char *json, const char *const *extra_headers, struct th_resp *resp);

/* Asserts the response is an RFC 9457 problem with this status. */
void th_assert_problem(const struct th_resp *resp, long status);

/* Seconds on a monotonic clock. */
double th_now(void);

#endif
