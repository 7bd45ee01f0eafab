/*
 * waiters: mark committed -> long poll answered, for `make bench`. Holds one long poll
 * of GET /v1/changes (since=now, wait=60) for each school key in KEYS_FILE, then records
 * MARKS marks one after another, each for a pupil on the roll of one school only, with
 * the admin key, and times how long after the mark's reply (the commit has happened by
 * then) that school's poll answers. A poll answering before the reply counts as 0 ms.
 * Each answered poll is renewed from its next_cursor before the next mark. Any other
 * school's poll that answers with events is counted as "woken" (it should be none).
 *   waiters -p PORT -a ADMIN_TOKEN -n MARKS -d DATES_FILE [-s STATE_FILE] KEYS_FILE
 * STATE_FILE ("URN COUNT" per line) carries each school's slots used from one run to the
 * next: read at the start when it exists, written at the end.
 * KEYS_FILE: "TOKEN UPN URN" per line (one school each); DATES_FILE: school days
 * (YYYY-MM-DD), one per line: each school's pupil is marked on the first date's
 * morning, then its afternoon, then the next date's, so every mark is a new one.
 * A mark that is not created (its slot already marked), or whose poll does not answer
 * within 10 s, ends the run with status 1.
 * Prints: marks=N answered=A woken_other=W p50_ms=X p99_ms=Y max_ms=Z
 */
#include <cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_S 60

struct school {
	char token[96], upn[16], urn[8];
	char cursor[96];
	char auth[120];
	struct evhttp_connection *evcon;
	bool armed;
	size_t marked; /* marks recorded for its pupil: the next takes the next slot */
};

static struct event_base *base;
static struct school *schools;
static size_t nschools;
static char (*dates)[11];
static size_t ndates;
static const char *host = "127.0.0.1";
static int port = 8080;
static char admin_auth[120];
static struct evhttp_connection *post_conn;
static long target = -1;   /* the school whose poll the current mark should answer */
static double replied_at;  /* when the current mark's reply came, 0 before */
static double answered_at; /* when that school's poll answered, 0 before */
static double *lat;
static size_t nmarks, done_marks, answered, woken_other, failures;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void arm(struct school *s);
static void next_mark(void);

/* A mark is finished when both its reply and its poll's answer have come. */
static void maybe_finish(void)
{
	if (replied_at == 0 || answered_at == 0)
		return;
	double ms = (answered_at - replied_at) * 1000.0;
	lat[done_marks++] = ms > 0 ? ms : 0;
	answered++;
	target = -1;
	next_mark();
}

static void poll_done(struct evhttp_request *req, void *arg)
{
	struct school *s = arg;
	double t = now_s();
	s->armed = false;
	int code = req ? evhttp_request_get_response_code(req) : 0;
	if (code != 200) {
		failures++;
		fprintf(stderr, "waiters: poll of %s answered %d\n", s->urn, code);
		event_base_loopexit(base, NULL);
		return;
	}
	struct evbuffer *b = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(b);
	char *body = malloc(len + 1);
	evbuffer_remove(b, body, len);
	body[len] = '\0';
	cJSON *j = cJSON_Parse(body);
	free(body);
	const cJSON *next = cJSON_GetObjectItemCaseSensitive(j, "next_cursor");
	const cJSON *changes = cJSON_GetObjectItemCaseSensitive(j, "changes");
	if (cJSON_IsString(next))
		snprintf(s->cursor, sizeof s->cursor, "%s", next->valuestring);
	bool events = cJSON_GetArraySize(changes) > 0;
	cJSON_Delete(j);
	long idx = (long)(s - schools);
	if (events && idx == target) {
		answered_at = t;
		arm(s);
		maybe_finish();
		return;
	}
	if (events)
		woken_other++;
	arm(s);
}

static void arm(struct school *s)
{
	char path[256];
	if (s->cursor[0])
		snprintf(path, sizeof path, "/v1/changes?since=%s&limit=1000&wait=%d", s->cursor,
			 WAIT_S);
	else
		snprintf(path, sizeof path, "/v1/changes?since=now&limit=1000&wait=%d", WAIT_S);
	struct evhttp_request *req = evhttp_request_new(poll_done, s);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", host);
	evhttp_add_header(h, "Authorization", s->auth);
	s->armed = true;
	if (evhttp_make_request(s->evcon, req, EVHTTP_REQ_GET, path) != 0) {
		failures++;
		event_base_loopexit(base, NULL);
	}
}

static void posted(struct evhttp_request *req, void *arg)
{
	(void)arg;
	int code = req ? evhttp_request_get_response_code(req) : 0;
	if (code != 200) {
		failures++;
		fprintf(stderr, "waiters: POST /v1/marks answered %d\n", code);
		event_base_loopexit(base, NULL);
		return;
	}
	replied_at = now_s();
	/* a mark that changed nothing raises no event: the run would wait for nothing */
	struct evbuffer *b = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(b);
	char *body = malloc(len + 1);
	evbuffer_remove(b, body, len);
	body[len] = '\0';
	bool created = strstr(body, "\"created\":1") != NULL;
	free(body);
	if (!created) {
		failures++;
		fprintf(stderr, "waiters: a mark was not created (already recorded?)\n");
		event_base_loopexit(base, NULL);
		return;
	}
	maybe_finish();
}

static struct event *ev_watchdog;
static size_t watched_mark = (size_t)-1;

/* A mark whose poll has not answered within 10 s ends the run as a failure. */
static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (done_marks == watched_mark) {
		failures++;
		fprintf(stderr, "waiters: no answer to mark %zu within 10 s\n", done_marks);
		event_base_loopexit(base, NULL);
	}
}

static void next_mark(void)
{
	if (done_marks >= nmarks) {
		event_base_loopexit(base, NULL);
		return;
	}
	size_t k = done_marks;
	size_t i = (size_t)random() % nschools;
	/* a fresh (pupil, date, session) for every mark: each pupil's slots in turn */
	size_t slot = schools[i].marked++;
	if (slot / 2 >= ndates) {
		fprintf(stderr, "waiters: not enough dates for %zu marks\n", nmarks);
		event_base_loopexit(base, NULL);
		return;
	}
	const char *date = dates[slot / 2];
	char body[512];
	snprintf(body, sizeof body,
		 "{\"marks\":[{\"upn\":\"%s\",\"urn\":\"%s\",\"date\":\"%s\",\"session\":\"%s\","
		 "\"code\":\"%s\"}]}",
		 schools[i].upn, schools[i].urn, date, slot % 2 ? "PM" : "AM",
		 slot % 2 ? "\\\\" : "/");
	target = (long)i;
	watched_mark = k;
	struct timeval ten = {10, 0};
	evtimer_add(ev_watchdog, &ten);
	replied_at = 0;
	answered_at = 0;
	struct evhttp_request *req = evhttp_request_new(posted, NULL);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", host);
	evhttp_add_header(h, "Authorization", admin_auth);
	evhttp_add_header(h, "Content-Type", "application/json");
	evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
	if (evhttp_make_request(post_conn, req, EVHTTP_REQ_POST, "/v1/marks") != 0) {
		failures++;
		event_base_loopexit(base, NULL);
	}
}

static void start_marks(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	next_mark();
}

static void read_lines(const char *file, void (*take)(char *))
{
	FILE *f = fopen(file, "r");
	if (f == NULL) {
		perror(file);
		exit(2);
	}
	char buf[512];
	while (fgets(buf, sizeof buf, f) != NULL) {
		buf[strcspn(buf, "\r\n")] = '\0';
		if (buf[0])
			take(buf);
	}
	fclose(f);
}

static void take_key(char *line)
{
	schools = realloc(schools, (nschools + 1) * sizeof *schools);
	struct school *s = &schools[nschools];
	memset(s, 0, sizeof *s);
	if (sscanf(line, "%95s %15s %7s", s->token, s->upn, s->urn) != 3) {
		fprintf(stderr, "waiters: bad key line\n");
		exit(2);
	}
	snprintf(s->auth, sizeof s->auth, "Bearer %s", s->token);
	nschools++;
}

static void take_date(char *line)
{
	dates = realloc(dates, (ndates + 1) * sizeof *dates);
	snprintf(dates[ndates++], sizeof dates[0], "%.10s", line);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void state_read(const char *file)
{
	FILE *f = fopen(file, "r");
	if (f == NULL)
		return;
	char urn[16];
	size_t n;
	while (fscanf(f, "%15s %zu", urn, &n) == 2)
		for (size_t i = 0; i < nschools; i++)
			if (strcmp(schools[i].urn, urn) == 0)
				schools[i].marked = n;
	fclose(f);
}

static void state_write(const char *file)
{
	FILE *f = fopen(file, "w");
	if (f == NULL)
		return;
	for (size_t i = 0; i < nschools; i++)
		fprintf(f, "%s %zu\n", schools[i].urn, schools[i].marked);
	fclose(f);
}

int main(int argc, char **argv)
{
	const char *dates_file = NULL, *admin = NULL, *state_file = NULL;
	int opt;
	nmarks = 200;
	while ((opt = getopt(argc, argv, "p:a:n:d:s:")) != -1) {
		switch (opt) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'a':
			admin = optarg;
			break;
		case 'n':
			nmarks = (size_t)atol(optarg);
			break;
		case 'd':
			dates_file = optarg;
			break;
		case 's':
			state_file = optarg;
			break;
		default:
			return 2;
		}
	}
	if (optind >= argc || admin == NULL || dates_file == NULL || nmarks == 0) {
		fprintf(stderr, "usage: waiters -p PORT -a ADMIN_TOKEN -n MARKS -d DATES_FILE "
				"KEYS_FILE\n");
		return 2;
	}
	snprintf(admin_auth, sizeof admin_auth, "Bearer %s", admin);
	read_lines(argv[optind], take_key);
	read_lines(dates_file, take_date);
	if (nschools == 0 || ndates == 0)
		return 2;
	if (state_file != NULL)
		state_read(state_file);
	lat = calloc(nmarks, sizeof *lat);
	srandom(42);
	base = event_base_new();
	for (size_t i = 0; i < nschools; i++) {
		schools[i].evcon =
		    evhttp_connection_base_new(base, NULL, host, (unsigned short)port);
		evhttp_connection_set_timeout(schools[i].evcon, WAIT_S + 30);
		arm(&schools[i]);
	}
	ev_watchdog = evtimer_new(base, watchdog_cb, NULL);
	post_conn = evhttp_connection_base_new(base, NULL, host, (unsigned short)port);
	evhttp_connection_set_timeout(post_conn, 60);
	/* every poll registered before the first mark */
	struct timeval settle = {2, 0};
	event_base_once(base, -1, EV_TIMEOUT, start_marks, NULL, &settle);
	event_base_dispatch(base);
	if (state_file != NULL)
		state_write(state_file);
	qsort(lat, done_marks, sizeof *lat, cmp_double);
	double p50 = done_marks ? lat[done_marks / 2] : 0;
	double p99 = done_marks ? lat[(size_t)((double)done_marks * 0.99)] : 0;
	double max = done_marks ? lat[done_marks - 1] : 0;
	printf("marks=%zu answered=%zu woken_other=%zu p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
	       done_marks, answered, woken_other, p50, p99, max);
	for (size_t i = 0; i < nschools; i++)
		evhttp_connection_free(schools[i].evcon);
	evhttp_connection_free(post_conn);
	event_free(ev_watchdog);
	event_base_free(base);
	free(schools);
	free(dates);
	free(lat);
	return failures == 0 && done_marks == nmarks ? 0 : 1;
}
