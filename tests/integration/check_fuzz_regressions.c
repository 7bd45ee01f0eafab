/*
 * fuzz_regressions: the eight defects found by fuzzing dualreg on 2026-11-28, each
 * replayed with the input that found it, written out here byte for byte where the
 * bytes are the point:
 *  1. HEAD replies carried the GET body (without Content-Length): on a kept-alive
 *     connection it was read as the start of the next response.
 *  2. CONNECT /v1/me was answered 404 and the connection then hung until the timeout.
 *  3. Strings that are not UTF-8 reached PostgreSQL and were answered 500 (and, found
 *     on the way, a \u0000 escape silently cut a string short).
 *  4. Problem bodies that were not UTF-8: member names echoed raw or cut mid-character.
 *  5. An idempotent reply that could not be stored left its claim 'running': 409s.
 *  6. Lenient query strings: one bare name hid every parameter; long values were cut.
 *  7. A configured duration of "nan" was accepted (and converted with undefined
 *     behaviour).
 *  8. A JSON number such as 1e300 was converted to int before its range was checked.
 * The HTTP cases run the real daemon over loopback, on raw sockets where the framing of
 * the replies is what is tested; the pure pieces have unit cases of their own.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dualreg/router.h"
#include "dualreg/upn.h"
#include "dualreg/utf8.h"
#include "../../api/handlers.h"
#include "../../api/json_fields.h"
#include "../harness.h"
#include "../suites.h"

#define URN "900101"

static char url[1024];
static struct th_daemon d;
static char admin[128];
static char upn[14];
static struct th_resp R;
static bool have_resp;

/* A valid UPN (check letter computed) for the reads that need one. */
static void make_valid_upn(char out[14])
{
	snprintf(out, 14, "A801200005001");
	char want = 'A';
	if (upn_validate(out, &want) == UPN_BAD_CHECK)
		out[0] = want;
	ck_assert_int_eq(upn_validate(out, NULL), UPN_OK);
}

/* One call as the admin key; json (may be NULL) is sent as it is, bytes and all. */
static long api(const char *method, const char *path, const char *json,
		const char *const *extra_headers)
{
	if (have_resp)
		th_resp_free(&R);
	th_api(&d, method, path, admin, json, extra_headers, &R);
	have_resp = true;
	return R.status;
}

static void setup(void)
{
	have_resp = false;
	make_valid_upn(upn);
	th_db_create_migrated(url, sizeof url);
	th_daemon_start(&d, url, "[webhooks]\nallow_http = true\nallow_private = true\n[pull]\nallow_http = true\nallow_private = true\n", false);
	th_key_create(url, NULL, admin, sizeof admin);
	ck_assert_int_eq(api("POST", "/v1/schools",
			     "{\"urn\":\"" URN "\",\"name\":\"Fuzz School\",\"kind\":\"pru\"}", NULL),
			 201);
}

static void teardown(void)
{
	if (have_resp)
		th_resp_free(&R);
	have_resp = false;
	if (d.pid > 0)
		th_daemon_stop(&d, SIGKILL);
}

/* The one cell of a one-row query on the test's database, as text. */
static void sql_cell(const char *sql, char *out, size_t len)
{
	PGconn *c = PQconnectdb(url);
	ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
	PGresult *res = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1, "%s: %s",
		      sql, PQresultErrorMessage(res));
	snprintf(out, len, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	PQfinish(c);
}

/* The last response is a problem (status, slug), and all of it is well-formed UTF-8. */
static void expect_problem(long status, const char *slug)
{
	ck_assert_msg(R.status == status, "want %ld, got %ld: %s", status, R.status, R.body);
	ck_assert_msg(utf8_length(R.body) != UTF8_INVALID, "the body is not UTF-8: %s", R.body);
	th_assert_problem(&R, status);
	char type[96];
	snprintf(type, sizeof type, "/problems/%s", slug);
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(R.json, "type");
	ck_assert_msg(strcmp(t->valuestring, type) == 0, "want %s, got %s", type, R.body);
}

/* The pointer of the last problem's first error, or "". */
static const char *first_pointer(void)
{
	const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(R.json, "errors"), 0);
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "pointer");
	return cJSON_IsString(p) ? p->valuestring : "";
}

static const char *detail(void)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(R.json, "detail");
	return cJSON_IsString(v) ? v->valuestring : "";
}

/* ---- raw HTTP over a socket: the framing of replies as a client reads it ---- */

/*
 * Sends text on a new loopback connection to the daemon, then reads until the server
 * closes the connection or `seconds` pass. Returns what arrived (NUL-terminated, owned
 * by the caller); *closed tells whether the server closed the connection in time.
 */
static char *raw_exchange(const char *text, double seconds, bool *closed)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)d.port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	size_t len = strlen(text);
	ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
	size_t cap = 1 << 16, used = 0;
	char *buf = malloc(cap);
	*closed = false;
	double deadline = th_now() + seconds;
	while (th_now() < deadline) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int ms = (int)((deadline - th_now()) * 1000) + 1;
		if (poll(&p, 1, ms) <= 0)
			continue;
		if (cap - used < 4096)
			buf = realloc(buf, cap *= 2);
		ssize_t n = read(fd, buf + used, cap - used - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*closed = true;
			break;
		}
		used += (size_t)n;
	}
	buf[used] = '\0';
	close(fd);
	return buf;
}

/* The value of header name in the header block starting at resp, into out ("" if none). */
static void raw_header(const char *resp, const char *name, char *out, size_t outlen)
{
	out[0] = '\0';
	const char *end = strstr(resp, "\r\n\r\n");
	size_t nl = strlen(name);
	for (const char *line = strstr(resp, "\r\n"); line != NULL && line < end;
	     line = strstr(line + 2, "\r\n")) {
		const char *h = line + 2;
		if (strncasecmp(h, name, nl) == 0 && h[nl] == ':') {
			const char *v = h + nl + 1;
			while (*v == ' ')
				v++;
			snprintf(out, outlen, "%.*s", (int)strcspn(v, "\r"), v);
			return;
		}
	}
}

/*
 * The response that starts at p: its status and Content-Length (-1 if none), and
 * where the next one must start: right after the header block for a reply to HEAD,
 * after Content-Length bytes of body otherwise. NULL if p holds no whole header block.
 */
static const char *one_response(const char *p, bool head, int *status, long *content_length)
{
	if (strncmp(p, "HTTP/1.1 ", 9) != 0)
		return NULL;
	const char *end = strstr(p, "\r\n\r\n");
	if (end == NULL)
		return NULL;
	*status = atoi(p + 9);
	char cl[32];
	raw_header(p, "Content-Length", cl, sizeof cl);
	*content_length = cl[0] != '\0' ? atol(cl) : -1;
	const char *next = end + 4;
	if (!head && *content_length > 0)
		next += *content_length;
	return next;
}

/*
 * Sends HEAD path and then, on the same connection, GET /healthz: the stream must hold
 * exactly the two replies, the first without a body. Returns the HEAD reply's status;
 * its Content-Length (-1 if none) in *content_length.
 */
static int head_then_get(const char *path, const char *token, long *content_length)
{
	char req[2048], auth[200] = "";
	if (token != NULL)
		snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
	snprintf(req, sizeof req,
		 "HEAD %s HTTP/1.1\r\nHost: x\r\n%s\r\n"
		 "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		 path, auth);
	bool closed;
	char *out = raw_exchange(req, 10, &closed);
	int status = 0, status2 = 0;
	long cl2;
	const char *next = one_response(out, true, &status, content_length);
	ck_assert_msg(next != NULL, "HEAD %s: no reply: %s", path, out);
	ck_assert_msg(strncmp(next, "HTTP/1.1 200 ", 13) == 0,
		      "HEAD %s (%d): the bytes after its headers are not the next reply: %.300s",
		      path, status, next);
	const char *after = one_response(next, false, &status2, &cl2);
	ck_assert_msg(after != NULL && strstr(next, "\"status\":\"ok\"") != NULL, "%s", next);
	ck_assert_msg(*after == '\0', "HEAD %s: bytes after the GET reply: %s", path, after);
	ck_assert(closed);
	free(out);
	return status;
}

/* A concrete path for a route pattern: each {placeholder} becomes a plausible value. */
static void concrete_path(const char *pattern, char *out, size_t len)
{
	size_t o = 0;
	for (const char *p = pattern; *p != '\0' && o + 16 < len;) {
		if (*p != '{') {
			out[o++] = *p++;
			continue;
		}
		size_t n = strcspn(p, "}");
		const char *v = strncmp(p, "{urn}", 5) == 0	  ? URN
				: strncmp(p, "{upn}", 5) == 0	  ? upn
				: strncmp(p, "{date}", 6) == 0	  ? "2026-11-26"
				: strncmp(p, "{session}", 9) == 0 ? "AM"
								  : "1";
		o += (size_t)snprintf(out + o, len - o, "%s", v);
		p += n + (p[n] == '}');
	}
	out[o] = '\0';
}

/* 1. HEAD: the headers GET would get, and not one byte of body, on every GET route. */
START_TEST(test_head_sends_no_body)
{
	size_t checked = 0;
	for (size_t i = 0; i < api_nroutes; i++) {
		if (api_routes[i].method != RM_GET)
			continue;
		char path[256];
		concrete_path(api_routes[i].pattern, path, sizeof path);
		long cl;
		head_then_get(path, admin, &cl);
		checked++;
	}
	ck_assert_uint_gt(checked, 10);

	/* The Content-Length of a HEAD reply, when sent, is that of the GET body. */
	long cl;
	ck_assert_int_eq(head_then_get("/v1/me", admin, &cl), 200);
	api("GET", "/v1/me", NULL, NULL);
	ck_assert_int_eq(R.status, 200);
	ck_assert_msg(cl == -1 || cl == (long)R.body_len, "HEAD %ld, GET %zu", cl, R.body_len);
	/* HEAD's own refusals: 401 without a key, 405 on a POST-only path, 404. */
	ck_assert_int_eq(head_then_get("/v1/me", NULL, &cl), 401);
	ck_assert_int_eq(head_then_get("/v1/marks", admin, &cl), 405);
	ck_assert_int_eq(head_then_get("/no/such/path", admin, &cl), 404);
	/* and a refusal of the query string (6) */
	ck_assert_int_eq(head_then_get("/v1/changes?limit=1&limit=2", admin, &cl), 400);
}
END_TEST

/* 2. CONNECT: 405 with Allow, a problem body, and the connection closed at once. */
START_TEST(test_connect_refused_and_closed)
{
	static const char *const requests[] = {
	    "CONNECT /v1/me HTTP/1.1\r\nHost: x\r\n\r\n",
	    "CONNECT /v1/me HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
	    "CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n",
	};
	static const char *const allow[] = {"GET, HEAD, OPTIONS", "GET, HEAD, OPTIONS", ""};
	for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
		bool closed;
		double t0 = th_now();
		/* request_timeout is 30 s: a reply that waits for it fails here. */
		char *out = raw_exchange(requests[i], 5, &closed);
		ck_assert_msg(closed && th_now() - t0 < 4, "case %zu: still open: %s", i, out);
		int status;
		long cl;
		const char *next = one_response(out, false, &status, &cl);
		ck_assert_msg(next != NULL, "case %zu: %s", i, out);
		ck_assert_msg(status == 405, "case %zu: %s", i, out);
		char h[128];
		raw_header(out, "Allow", h, sizeof h);
		ck_assert_msg(strcmp(h, allow[i]) == 0, "case %zu: Allow \"%s\"", i, h);
		raw_header(out, "Content-Type", h, sizeof h);
		ck_assert_str_eq(h, "application/problem+json");
		raw_header(out, "Connection", h, sizeof h);
		ck_assert_str_eq(h, "close");
		/* The body is exactly Content-Length bytes of problem JSON, then nothing. */
		const char *body = strstr(out, "\r\n\r\n") + 4;
		ck_assert_msg(cl == (long)strlen(body), "case %zu: %s", i, out);
		cJSON *p = cJSON_Parse(body);
		ck_assert_ptr_nonnull(p);
		ck_assert_int_eq(cJSON_GetObjectItem(p, "status")->valueint, 405);
		cJSON_Delete(p);
		free(out);
	}
	/* The server is unharmed. */
	ck_assert_int_eq(api("GET", "/v1/me", NULL, NULL), 200);
}
END_TEST

/* 3. Strings that are not UTF-8, in any member of any body: 400, nothing stored. */
START_TEST(test_invalid_utf8_is_400)
{
	api("POST", "/v1/subscriptions",
	    "{\"urn\":\"" URN "\",\"url\":\"http://127.0.0.1:9/hook\",\"events\":[\"*\"],"
	    "\"description\":\"caf\xff\"}",
	    NULL);
	expect_problem(400, "invalid-json");
	ck_assert_str_eq(first_pointer(), "/description");
	api("POST", "/v1/subscriptions",
	    "{\"urn\":\"" URN "\",\"url\":\"http://127.0.0.1:9/ho\xc3\x28k\",\"events\":[\"*\"]}",
	    NULL);
	expect_problem(400, "invalid-json");
	ck_assert_str_eq(first_pointer(), "/url");
	api("PATCH", "/v1/schools/" URN, "{\"pull_token\":\"t\xff\"}", NULL);
	expect_problem(400, "invalid-json");
	ck_assert_str_eq(first_pointer(), "/pull_token");
	/* The fuzzer's PATCH body (json_pull_interval_inf.bin): the first bad string is
	 * an array element. */
	api("PATCH", "/v1/schools/" URN,
	    "{\"events\":[\"mar\xff\xff\xff\xff\xff\xffrded\",\"*\"],"
	    "\"pull_url\":\"https:/\x8b/misxample/feed\",\"pull_token\":\"t\","
	    "\"pull_interval\":1e30060}",
	    NULL);
	expect_problem(400, "invalid-json");
	ck_assert_str_eq(first_pointer(), "/events/0");
	/* Deeper down, and in a member name (the pointer then names its object). */
	api("PUT", "/v1/schools/" URN "/closures",
	    "{\"closures\":[{\"from\":\"2026-12-01\",\"to\":\"2026-12-02\",\"reason\":\"\xed\xa0\x80\"}]}",
	    NULL);
	expect_problem(400, "invalid-json");
	ck_assert_str_eq(first_pointer(), "/closures/0/reason");
	api("POST", "/v1/pupils", "{\"upn\":\"A801200005001\",\"n\xc0\xaf\":1}", NULL);
	expect_problem(400, "invalid-json");
	ck_assert_str_eq(first_pointer(), "");
	/* An escaped NUL, which would end the string early ("ab" stored for "ab\0cd"). */
	api("PATCH", "/v1/schools/" URN, "{\"pull_token\":\"ab\\u0000cd\"}", NULL);
	expect_problem(400, "invalid-json");
	/* Nothing of it was stored. */
	char cell[64];
	sql_cell("SELECT count(*) FROM subscriptions", cell, sizeof cell);
	ck_assert_str_eq(cell, "0");
	sql_cell("SELECT coalesce(pull_token, 'none') FROM schools WHERE urn = '" URN "'", cell,
		 sizeof cell);
	ck_assert_str_eq(cell, "none");
	/* Well-formed text is taken as before. */
	api("POST", "/v1/subscriptions",
	    "{\"urn\":\"" URN "\",\"url\":\"http://127.0.0.1:9/hook\",\"events\":[\"*\"],"
	    "\"description\":\"caf\xc3\xa9\"}",
	    NULL);
	ck_assert_msg(R.status == 201, "%ld %s", R.status, R.body);
	ck_assert_int_eq(api("PATCH", "/v1/schools/" URN, "{\"pull_token\":\"t\xc3\xa9\"}", NULL),
			 200);
}
END_TEST

/* 4. Problem bodies are UTF-8 whatever the request held. */
START_TEST(test_problem_bodies_are_utf8)
{
	/* utf8_raw_field.json: a member name that is not UTF-8 was echoed raw. */
	api("PUT", "/v1/schools/" URN "/closures", "{\"clo\xb6ures\": 1, \"closures\": []}", NULL);
	expect_problem(400, "invalid-json");

	/* utf8_split_field.json: 63 "a" and an "é" (65 bytes, 64 characters) were cut to 64
	 * bytes, inside the "é". Now the whole name is quoted: it is 64 characters. */
	char name[128] = "";
	for (int i = 0; i < 63; i++)
		strcat(name, "a");
	strcat(name, "\xc3\xa9");
	char body[2048];
	snprintf(body, sizeof body, "{\"%s\": 1, \"closures\": []}", name);
	api("PUT", "/v1/schools/" URN "/closures", body, NULL);
	expect_problem(422, "unknown-field");
	char want[256];
	snprintf(want, sizeof want, "unknown field \"%s\"", name);
	ck_assert_str_eq(detail(), want);
	snprintf(want, sizeof want, "/%s", name);
	ck_assert_str_eq(first_pointer(), want);

	/* A longer name of two-byte characters: cut after 64 of them, never inside one. */
	char longname[512] = "";
	for (int i = 0; i < 100; i++)
		strcat(longname, "\xc3\xa9");
	snprintf(body, sizeof body, "{\"%s\": 1, \"closures\": []}", longname);
	api("PUT", "/v1/schools/" URN "/closures", body, NULL);
	expect_problem(422, "unknown-field");
	snprintf(want, sizeof want, "unknown field \"%.128s\"", longname);
	ck_assert_str_eq(detail(), want);

	/* utf8_split_marks.json: 68 "b" and an "é" as an unknown mark member; the pointer
	 * token was cut to 69 bytes, inside the "é". */
	snprintf(body, sizeof body,
		 "{\"marks\": [{\"upn\": \"Z926400123001\", \"urn\": \"900102\", \"date\": "
		 "\"2026-11-26\", \"session\": \"AM\", \"code\": \"/\", \"%s\xc3\xa9\": 1}]}",
		 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
	api("POST", "/v1/marks", body, NULL);
	expect_problem(422, "invalid-marks");
	ck_assert_msg(strncmp(first_pointer(), "/marks/0/bbbb", 13) == 0, "%s", first_pointer());
	/* and the same with a name that is all two-byte characters */
	snprintf(body, sizeof body,
		 "{\"marks\": [{\"upn\": \"Z926400123001\", \"urn\": \"900102\", \"date\": "
		 "\"2026-11-26\", \"session\": \"AM\", \"code\": \"/\", \"%s\": 1}], \"%s\": 2}",
		 longname, longname);
	api("POST", "/v1/marks", body, NULL);
	expect_problem(422, "invalid-marks");

	/* A path parameter quoted in a detail and cut by "%.16s" ("a" and eight "é"). */
	api("GET", "/v1/schools/a%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9", NULL, NULL);
	expect_problem(404, "not-found");
	api("PATCH", "/v1/registrations/%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%FF",
	    "{}", NULL);
	expect_problem(404, "not-found");
}
END_TEST

/* 5. A reply the database cannot store: a retry runs again instead of getting 409. */
START_TEST(test_idempotency_claim_released_when_reply_not_stored)
{
	/* idem_badutf8_body.json: its 4xx reply once quoted the name raw, PostgreSQL
	 * refused to store it, and the claim stayed 'running'. Now it is stored and a
	 * retry gets the replay. */
	const char fuzz_body[] = "{\"upn\":\"Z926400123001\",\"urn\":\"900101\",\"role\":\"main\","
				 "\"start_date\":\"2026-11-02\",\"x\xff\":1}";
	const char *key1[] = {"Idempotency-Key: fuzz-1", NULL};
	long first = api("POST", "/v1/registrations", fuzz_body, key1);
	ck_assert_msg(first >= 400 && first < 500, "%ld %s", first, R.body);
	char *first_body = strdup(R.body);
	api("POST", "/v1/registrations", fuzz_body, key1);
	ck_assert_msg(R.status == first, "retry: %ld %s", R.status, R.body);
	ck_assert_str_eq(R.idempotent_replayed, "true");
	ck_assert_str_eq(R.body, first_body);
	free(first_body);

	/* Any reply the database refuses to store (a trigger refuses them all here): the
	 * claim is released before the reply goes out, so the retry runs afresh. */
	th_sql(url, "CREATE FUNCTION fuzz_refuse() RETURNS trigger LANGUAGE plpgsql AS "
		    "$$BEGIN RAISE EXCEPTION 'not stored (test)'; END$$; "
		    "CREATE TRIGGER fuzz_refuse BEFORE UPDATE ON idempotency_keys FOR EACH ROW "
		    "WHEN (NEW.state = 'done') EXECUTE FUNCTION fuzz_refuse()");
	const char *key2[] = {"Idempotency-Key: fuzz-2", NULL};
	const char bad_school[] = "{\"urn\":\"900102\",\"name\":\"No Kind\"}";
	api("POST", "/v1/schools", bad_school, key2);
	expect_problem(422, "missing-field");
	api("POST", "/v1/schools", bad_school, key2);
	expect_problem(422, "missing-field");
	ck_assert_str_eq(R.idempotent_replayed, "");
	char cell[64];
	sql_cell("SELECT count(*) FROM idempotency_keys WHERE idem_key = 'fuzz-2'", cell,
		 sizeof cell);
	ck_assert_str_eq(cell, "0");
	ck_assert(th_daemon_log_contains(&d, "idempotency record not written"));
}
END_TEST

/* 6. Query strings are read strictly: nothing hidden, nothing cut, nothing guessed. */
START_TEST(test_query_strings_are_strict)
{
	char path[256];
	/* A bare name no longer hides the other parameters... */
	snprintf(path, sizeof path, "/v1/pupils/%s/status?date=2026-99-99&x", upn);
	api("GET", path, NULL, NULL);
	expect_problem(422, "invalid-date");
	ck_assert_str_eq(first_pointer(), "/query/date");
	/* ...and is a parameter with an empty value. */
	snprintf(path, sizeof path, "/v1/pupils/%s/status?date", upn);
	api("GET", path, NULL, NULL);
	expect_problem(422, "invalid-date");
	snprintf(path, sizeof path, "/v1/audit?upn=%s&limit=5&x", upn);
	ck_assert_int_eq(api("GET", path, NULL, NULL), 200);
	snprintf(path, sizeof path, "/v1/audit?upn=%s&limit", upn);
	api("GET", path, NULL, NULL);
	expect_problem(422, "invalid-parameter");
	ck_assert_str_eq(first_pointer(), "/query/limit");

	/* A value too long for its parameter is invalid, never cut to fit. */
	snprintf(path, sizeof path, "/v1/audit?upn=%s&limit=0000005xyz", upn);
	api("GET", path, NULL, NULL);
	expect_problem(422, "invalid-parameter");
	ck_assert_str_eq(first_pointer(), "/query/limit");
	api("GET", "/v1/deliveries?limit=0000005xyz", NULL, NULL);
	expect_problem(422, "invalid-parameter");
	ck_assert_str_eq(first_pointer(), "/query/limit");
	api("GET", "/v1/changes?limit=0000000000000000001", NULL, NULL);
	expect_problem(422, "invalid-limit");

	/* Escapes are decoded in names and values alike. */
	snprintf(path, sizeof path, "/v1/audit?upn=%s&l%%69mit=%%35", upn);
	ck_assert_int_eq(api("GET", path, NULL, NULL), 200);
	snprintf(path, sizeof path, "/v1/audit?upn=%s&l%%69mit=0", upn);
	api("GET", path, NULL, NULL);
	expect_problem(422, "invalid-parameter");

	/* A query string that cannot be read as the client meant it: 400 (on any route;
	 * asked here of one whose contract declares its 400). */
	static const char *const unreadable[] = {
	    "limit=5%zz",	  /* a malformed escape */
	    "limit=5%00",	  /* an escaped NUL would end the value early */
	    "limit=5&limit=6", /* which one? */
	    "limit=%ff",	  /* not UTF-8 once decoded */
	};
	for (size_t i = 0; i < sizeof unreadable / sizeof unreadable[0]; i++) {
		snprintf(path, sizeof path, "/v1/schools?%s", unreadable[i]);
		api("GET", path, NULL, NULL);
		expect_problem(400, "invalid-query");
		ck_assert_msg(strcmp(first_pointer(), "/query/limit") == 0, "%s: %s", unreadable[i],
			      R.body);
	}
}
END_TEST

/* Runs argv; returns its exit status, its standard error in err (bounded). */
static int run_capture_stderr(char *const argv[], char *err, size_t errlen)
{
	char path[512];
	snprintf(path, sizeof path, "%s/fuzz-stderr-%d", th_env("DUALREG_TEST_TMP"), (int)getpid());
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	FILE *f = fopen(path, "r");
	size_t n = f != NULL ? fread(err, 1, errlen - 1, f) : 0;
	err[n] = '\0';
	if (f != NULL)
		fclose(f);
	unlink(path);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* 7. dualregd -t refuses a duration that is not a finite number, naming the key. */
START_TEST(test_config_nan_duration_refused)
{
	static const char *const values[] = {"nan", "-nan", "NaN", "inf", "infinity", "nanms"};
	for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
		char path[512], bin[512], err[2048];
		snprintf(path, sizeof path, "%s/fuzz-%d.conf", th_env("DUALREG_TEST_TMP"),
			 (int)getpid());
		FILE *f = fopen(path, "w");
		fprintf(f, "[server]\ndrain_timeout = %s\n", values[i]);
		fclose(f);
		snprintf(bin, sizeof bin, "%s/dualregd", th_env("DUALREG_TEST_BIN"));
		char *const argv[] = {bin, "-t", "-c", path, NULL};
		ck_assert_msg(run_capture_stderr(argv, err, sizeof err) == 2, "%s: %s", values[i], err);
		char want[600];
		snprintf(want, sizeof want, "%s:2: [server] drain_timeout:", path);
		ck_assert_msg(strstr(err, want) != NULL, "%s: %s", values[i], err);
		unlink(path);
	}
}
END_TEST

/* 8. JSON numbers of any magnitude are range-checked before any conversion. */
START_TEST(test_huge_numbers_refused)
{
	/* pull_interval_1e300.json, and its neighbours (1e30060 parses as inf). */
	static const char *const bodies[] = {
	    "{\"pull_interval\":1e300}", "{\"pull_interval\":1e30060}",
	    "{\"pull_interval\":-1e300}", "{\"pull_interval\":4294967306}",
	    "{\"pull_interval\":86400.5}", "{\"pull_interval\":9}",
	};
	for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
		api("PATCH", "/v1/schools/" URN, bodies[i], NULL);
		expect_problem(422, "invalid-field");
		ck_assert_msg(strcmp(first_pointer(), "/pull_interval") == 0, "%s", R.body);
	}
	ck_assert_int_eq(api("PATCH", "/v1/schools/" URN, "{\"pull_interval\":86400}", NULL), 200);
	char cell[64];
	sql_cell("SELECT pull_interval_s FROM schools WHERE urn = '" URN "'", cell, sizeof cell);
	ck_assert_str_eq(cell, "86400");
	/* A mark's minutes_late, the other number a body carries. */
	api("POST", "/v1/marks",
	    "{\"marks\":[{\"upn\":\"Z926400123001\",\"urn\":\"" URN "\",\"date\":\"2026-11-26\","
	    "\"session\":\"AM\",\"code\":\"L\",\"minutes_late\":1e300}]}",
	    NULL);
	expect_problem(422, "invalid-marks");
	ck_assert_str_eq(first_pointer(), "/marks/0/minutes_late");
}
END_TEST

/* ---- the pure pieces ---- */

START_TEST(test_utf8_copy)
{
	char out[16];
	/* Cut between characters: "é" fits in 6 bytes (with the NUL), not in 5. */
	ck_assert(utf8_copy(out, 6, "abc\xc3\xa9", SIZE_MAX));
	ck_assert_str_eq(out, "abc\xc3\xa9");
	ck_assert(!utf8_copy(out, 5, "abc\xc3\xa9", SIZE_MAX));
	ck_assert_str_eq(out, "abc");
	ck_assert(utf8_copy(out, sizeof out, "abc\xc3\xa9", SIZE_MAX));
	ck_assert_str_eq(out, "abc\xc3\xa9");
	/* At most maxchars characters. */
	ck_assert(!utf8_copy(out, sizeof out, "\xc3\xa9\xc3\xa9\xc3\xa9", 2));
	ck_assert_str_eq(out, "\xc3\xa9\xc3\xa9");
	/* Bytes that are not UTF-8 become U+FFFD; a truncated character too. */
	ck_assert(!utf8_copy(out, sizeof out, "a\xff" "b\xc3", SIZE_MAX));
	ck_assert_str_eq(out, "a\xef\xbf\xbd" "b\xef\xbf\xbd");
	ck_assert_uint_ne(utf8_length(out), UTF8_INVALID);
	ck_assert_uint_eq(utf8_char_len("\xf0\x9f\x99\x82"), 4);
	ck_assert_uint_eq(utf8_char_len("\xc3"), 0);
	ck_assert_uint_eq(utf8_char_len(""), 0);
}
END_TEST

START_TEST(test_pointer_token)
{
	char out[16];
	jf_pointer_token(out, sizeof out, "a/b~c");
	ck_assert_str_eq(out, "a~1b~0c");
	/* 14 "b" and an "é": the "é" does not fit whole, so it is left out. */
	jf_pointer_token(out, sizeof out, "bbbbbbbbbbbbbb\xc3\xa9");
	ck_assert_str_eq(out, "bbbbbbbbbbbbbb");
	jf_pointer_token(out, sizeof out, "x\xb6y");
	ck_assert_str_eq(out, "x\xef\xbf\xbdy");
	/* The first bad string of a tree, by pointer. */
	cJSON *v = cJSON_Parse("{\"a\":[1,{\"b/c\":\"ok\",\"d\":\"\xff\"}]}");
	char ptr[64];
	bool in_name = true;
	ck_assert(!jf_utf8_check(v, ptr, sizeof ptr, &in_name));
	ck_assert_str_eq(ptr, "/a/1/d");
	ck_assert(!in_name);
	cJSON_Delete(v);
	v = cJSON_Parse("{\"a\":{\"\xc0\xaf\":1}}");
	ck_assert(!jf_utf8_check(v, ptr, sizeof ptr, &in_name));
	ck_assert_str_eq(ptr, "/a");
	ck_assert(in_name);
	cJSON_Delete(v);
	v = cJSON_Parse("{\"a\":[\"\xc3\xa9\",{\"\xf0\x9f\x99\x82\":null}]}");
	ck_assert(jf_utf8_check(v, ptr, sizeof ptr, &in_name));
	cJSON_Delete(v);
}
END_TEST

START_TEST(test_whole_number)
{
	static const double refused[] = {1e300, -1e300, 86400.5, 9, 86401, 4294967306.0,
					 -4294967306.0};
	long long n = 0;
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		cJSON *v = cJSON_CreateNumber(refused[i]);
		ck_assert_msg(!jf_whole_number(v, 10, 86400, &n), "%g", refused[i]);
		cJSON_Delete(v);
	}
	cJSON *v = cJSON_CreateNumber(NAN);
	ck_assert(!jf_whole_number(v, 10, 86400, &n));
	cJSON_Delete(v);
	v = cJSON_CreateNumber(INFINITY);
	ck_assert(!jf_whole_number(v, 10, 86400, &n));
	cJSON_Delete(v);
	v = cJSON_CreateNumber(-INFINITY);
	ck_assert(!jf_whole_number(v, -86400, 86400, &n));
	cJSON_Delete(v);
	v = cJSON_CreateString("60");
	ck_assert(!jf_whole_number(v, 10, 86400, &n));
	cJSON_Delete(v);
	v = cJSON_CreateNumber(86400);
	ck_assert(jf_whole_number(v, 10, 86400, &n));
	ck_assert_int_eq(n, 86400);
	cJSON_Delete(v);
	v = cJSON_CreateNumber(-0.0);
	ck_assert(jf_whole_number(v, 0, 1, &n));
	ck_assert_int_eq(n, 0);
	cJSON_Delete(v);

	/* jf_int reports a bad member with its pointer. */
	struct jf j;
	jf_init(&j);
	cJSON *body = cJSON_Parse("{\"n\":1e300,\"m\":7}");
	ck_assert(!jf_int(&j, body, "", "n", true, 0, 100, &n));
	ck_assert(jf_int(&j, body, "", "m", true, 0, 100, &n));
	ck_assert_int_eq(n, 7);
	cJSON *p = jf_take_problem(&j);
	ck_assert_ptr_nonnull(p);
	const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItem(p, "errors"), 0);
	ck_assert_str_eq(cJSON_GetObjectItem(e, "pointer")->valuestring, "/n");
	cJSON_Delete(p);
	cJSON_Delete(body);
}
END_TEST

START_TEST(test_query_reader)
{
	struct router_query q;
	char why[256], name[64];
	ck_assert_int_eq(router_query_parse("date=2026-99-99&x&&a=b+c%2B&", &q, why, sizeof why,
					    name, sizeof name),
			 0);
	ck_assert_uint_eq(q.n, 3);
	ck_assert_str_eq(router_query_find(&q, "date"), "2026-99-99");
	ck_assert_str_eq(router_query_find(&q, "x"), "");
	ck_assert_str_eq(router_query_find(&q, "a"), "b c+");
	ck_assert_ptr_null(router_query_find(&q, "b"));
	router_query_free(&q);
	ck_assert_int_eq(router_query_parse(NULL, &q, why, sizeof why, name, sizeof name), 0);
	ck_assert_uint_eq(q.n, 0);
	router_query_free(&q);

	static const struct {
		const char *query, *name;
	} bad[] = {
	    {"a=%zz", "a"}, {"a=%2", "a"}, {"a=%", "a"}, {"a=1%00", "a"}, {"a=%c3%28", "a"},
	    {"x=1&a=1&a=2", "a"}, {"a&a", "a"}, {"%zz=1", ""}, {"%ff=1", ""},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_msg(router_query_parse(bad[i].query, &q, why, sizeof why, name,
						 sizeof name) == -1,
			      "%s", bad[i].query);
		ck_assert_msg(strcmp(name, bad[i].name) == 0, "%s: name \"%s\"", bad[i].query, name);
		ck_assert_uint_ne(utf8_length(why), UTF8_INVALID);
		router_query_free(&q);
	}
}
END_TEST

Suite *fuzz_regressions_suite(void)
{
	Suite *s = suite_create("fuzz_regressions");
	TCase *unit = tcase_create("pure");
	tcase_add_test(unit, test_utf8_copy);
	tcase_add_test(unit, test_pointer_token);
	tcase_add_test(unit, test_whole_number);
	tcase_add_test(unit, test_query_reader);
	suite_add_tcase(s, unit);
	TCase *tc = tcase_create("daemon");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_head_sends_no_body);
	tcase_add_test(tc, test_connect_refused_and_closed);
	tcase_add_test(tc, test_invalid_utf8_is_400);
	tcase_add_test(tc, test_problem_bodies_are_utf8);
	tcase_add_test(tc, test_idempotency_claim_released_when_reply_not_stored);
	tcase_add_test(tc, test_query_strings_are_strict);
	tcase_add_test(tc, test_huge_numbers_refused);
	suite_add_tcase(s, tc);
	TCase *cfg = tcase_create("config");
	tcase_add_test(cfg, test_config_nan_duration_refused);
	suite_add_tcase(s, cfg);
	return s;
}
