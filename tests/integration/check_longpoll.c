/*
 * longpoll: the change feed's long polls under load, against the real daemon and
 * database on the fixture of reads_fixture.h. One key opening 1024 long polls at once
 * holds [limits] max_waits of them and is refused the rest promptly (429
 * too-many-waits), while another school's key is served, its own long poll included;
 * the count is given back when clients leave. A mark at one school wakes that school's
 * long poll and not another school's, which does not query again
 * (dualreg_changes_requeries_total).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../suites.h"
#include "reads_fixture.h"

#define MAX_WAITS 6
#define NPOLLS 1024

static void lp_start(void)
{
	/* The flood needs more descriptors than a default soft limit of 1024 allows, in
	 * this process and in the daemon (which inherits the limit). */
	struct rlimit rl;
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rlim_t want = NPOLLS + 512;
	if (rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
		ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	ck_assert_msg(rl.rlim_cur >= want, "RLIMIT_NOFILE %lu is too low",
		      (unsigned long)rl.rlim_cur);
	char ini[256];
	snprintf(ini, sizeof ini,
		 "[limits]\nrate = 100000\nburst = 100000\nmax_waits = %d\n", MAX_WAITS);
	th_daemon_start(&rd_d, rd_url, ini, false);
}

/* The cursor at the end of token's feed. */
static void feed_end(const char *token, char *cursor, size_t len)
{
	char since[128] = "";
	for (int pages = 0; pages < 100; pages++) {
		char path[256];
		snprintf(path, sizeof path, "/v1/changes?limit=1000%s%s", since[0] ? "&since=" : "",
			 since);
		struct th_resp r;
		get(token, path, &r);
		ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
		int n = cJSON_GetArraySize(item(r.json, "changes"));
		snprintf(since, sizeof since, "%s", str(r.json, "next_cursor"));
		th_resp_free(&r);
		if (n == 0)
			break;
	}
	snprintf(cursor, len, "%s", since);
}

/* A counter or gauge from GET /metrics. */
static double metric(const char *name)
{
	struct th_resp r;
	get(admin, "/metrics", &r);
	ck_assert_int_eq(r.status, 200);
	char want[128];
	snprintf(want, sizeof want, "\n%s ", name);
	const char *p = strstr(r.body, want);
	ck_assert_msg(p != NULL, "no %s in /metrics", name);
	double v = strtod(p + strlen(want), NULL);
	th_resp_free(&r);
	return v;
}

/* Posts one mark for pupil P3 at 100003 with k3 (its school's key). */
static void post_mark(const char *date, const char *session)
{
	char body[256];
	snprintf(body, sizeof body,
		 "{\"marks\": [{\"upn\": \"" P3 "\", \"urn\": \"100003\", \"date\": \"%s\", "
		 "\"session\": \"%s\", \"code\": \"/\"}]}",
		 date, session);
	struct th_resp r;
	th_api(&rd_d, "POST", "/v1/marks", k3, body, NULL, &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	th_resp_free(&r);
}

struct bg_poll {
	pthread_t thread;
	char url[512];
	char auth[128];
	struct th_resp resp;
	int rc;
	double elapsed;
};

static void *bg_poll_main(void *arg)
{
	struct bg_poll *b = arg;
	const char *headers[] = {b->auth, NULL};
	double t0 = th_now();
	b->rc = th_http("GET", b->url, NULL, 0, headers, &b->resp);
	b->elapsed = th_now() - t0;
	return NULL;
}

static void bg_poll_start(struct bg_poll *b, const char *token, const char *since, int wait)
{
	memset(b, 0, sizeof *b);
	snprintf(b->url, sizeof b->url, "%s/v1/changes?since=%s&wait=%d", rd_d.base, since, wait);
	snprintf(b->auth, sizeof b->auth, "Authorization: Bearer %s", token);
	ck_assert_int_eq(pthread_create(&b->thread, NULL, bg_poll_main, b), 0);
}

/* Joins b; its page's size. */
static int bg_poll_join(struct bg_poll *b)
{
	pthread_join(b->thread, NULL);
	ck_assert_int_eq(b->rc, 0);
	ck_assert_msg(b->resp.status == 200, "%ld %s", b->resp.status, b->resp.body);
	return cJSON_GetArraySize(item(b->resp.json, "changes"));
}

/* One raw HTTP/1.1 request on a non-blocking socket, and what came back. */
struct raw {
	int fd;
	size_t sent;
	char in[2048];
	size_t got;
	bool closed;
};

static void raw_open(struct raw *c)
{
	memset(c, 0, sizeof *c);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(c->fd, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)rd_d.port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int rc = connect(c->fd, (struct sockaddr *)&a, sizeof a);
	ck_assert_msg(rc == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
}

/* The status of the answer received so far (0: none yet). */
static int raw_status(const struct raw *c)
{
	int status = 0;
	if (c->got >= 12 && sscanf(c->in, "HTTP/1.1 %d", &status) == 1)
		return status;
	return 0;
}

/*
 * Drives the connections for up to seconds: sends request on each, reads answers until
 * every connection has answered or been closed, or want answers have arrived. Returns
 * the number of connections that have answered.
 */
static int raw_drive(struct raw *c, int n, const char *request, double seconds, int want)
{
	struct pollfd *p = calloc((size_t)n, sizeof *p);
	ck_assert_ptr_nonnull(p);
	size_t len = strlen(request);
	double deadline = th_now() + seconds;
	int answered = 0;
	while (th_now() < deadline) {
		int np = 0;
		answered = 0;
		for (int i = 0; i < n; i++) {
			if (c[i].closed || raw_status(&c[i]) != 0)
				answered++;
			if (c[i].closed)
				continue;
			p[i].fd = c[i].fd;
			p[i].events = (short)(c[i].sent < len ? POLLOUT : POLLIN);
			p[i].revents = 0;
			np++;
		}
		if (answered >= want || np == 0)
			break;
		for (int i = 0; i < n; i++)
			if (c[i].closed)
				p[i].fd = -1;
		if (poll(p, (nfds_t)n, 50) < 0)
			continue;
		for (int i = 0; i < n; i++) {
			if (p[i].fd < 0 || p[i].revents == 0)
				continue;
			if (c[i].sent < len) {
				ssize_t w = send(c[i].fd, request + c[i].sent, len - c[i].sent,
						 MSG_NOSIGNAL);
				if (w > 0)
					c[i].sent += (size_t)w;
				else if (w < 0 && errno != EAGAIN && errno != EINPROGRESS)
					c[i].closed = true;
				continue;
			}
			ssize_t r = recv(c[i].fd, c[i].in + c[i].got, sizeof c[i].in - 1 - c[i].got, 0);
			if (r > 0) {
				c[i].got += (size_t)r;
				c[i].in[c[i].got] = '\0';
			} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
				c[i].closed = true;
			}
			if (c[i].got == sizeof c[i].in - 1)
				c[i].closed = true;
		}
	}
	free(p);
	return answered;
}

START_TEST(test_one_key_cannot_exhaust_long_polls)
{
	lp_start();
	char c1[128], c3[128];
	feed_end(k1, c1, sizeof c1);
	feed_end(k3, c3, sizeof c3);

	/* 1024 long polls of one key (100001's) at once. */
	static struct raw polls[NPOLLS];
	char request[512];
	snprintf(request, sizeof request,
		 "GET /v1/changes?since=%s&wait=30 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		 "Authorization: Bearer %s\r\nConnection: close\r\n\r\n",
		 c1, k1);
	for (int i = 0; i < NPOLLS; i++)
		raw_open(&polls[i]);
	double t0 = th_now();
	int answered = raw_drive(polls, NPOLLS, request, 15.0, NPOLLS - MAX_WAITS);
	double took = th_now() - t0;
	ck_assert_msg(answered == NPOLLS - MAX_WAITS, "%d answered in %.1f s", answered, took);
	ck_assert_msg(took < 10.0, "the refusals took %.1f s", took);
	/* Every answer is the refusal; the rest wait. */
	int held = 0;
	for (int i = 0; i < NPOLLS; i++) {
		int status = raw_status(&polls[i]);
		if (status == 0) {
			ck_assert(!polls[i].closed);
			held++;
			continue;
		}
		ck_assert_msg(status == 429, "%s", polls[i].in);
		ck_assert_ptr_nonnull(strcasestr(polls[i].in, "\r\nRetry-After: "));
		ck_assert_ptr_nonnull(strcasestr(polls[i].in, "application/problem+json"));
		ck_assert_ptr_nonnull(strstr(polls[i].in, "/problems/too-many-waits"));
	}
	ck_assert_int_eq(held, MAX_WAITS);
	ck_assert_int_eq((int)metric("dualreg_changes_waits"), MAX_WAITS);
	ck_assert_int_ge((int)metric("dualreg_changes_waits_refused_total"), NPOLLS - MAX_WAITS);

	/* One more is refused the same way (and the answer is the contract's). */
	struct th_resp r;
	char path[256];
	snprintf(path, sizeof path, "/v1/changes?since=%s&wait=5", c1);
	get(k1, path, &r);
	assert_slug(&r, 429, "too-many-waits", NULL);
	ck_assert_int_ge(atoi(r.retry_after), 1);
	th_resp_free(&r);
	/* Not waiting is still allowed. */
	snprintf(path, sizeof path, "/v1/changes?since=%s", c1);
	get(k1, path, &r);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);

	/* Another school's key is served: a read, and its own long poll, answered when a
	 * mark for its pupil is posted. */
	get(k3, "/v1/changes?limit=5", &r);
	ck_assert_int_eq(r.status, 200);
	th_resp_free(&r);
	struct bg_poll b;
	bg_poll_start(&b, k3, c3, 20);
	usleep(500 * 1000);
	post_mark(wed, "AM");
	ck_assert_int_eq(bg_poll_join(&b), 1);
	ck_assert_msg(b.elapsed < 3.0, "took %.2f s", b.elapsed);
	ck_assert_str_eq(str(cJSON_GetArrayItem(item(b.resp.json, "changes"), 0), "type"),
			 "mark.recorded");
	th_resp_free(&b.resp);
	/* The held polls are still held (nothing for 100001 happened). */
	ck_assert_int_eq(raw_drive(polls, NPOLLS, request, 0.2, NPOLLS), NPOLLS - MAX_WAITS);

	/* Clients that leave give their places back. */
	for (int i = 0; i < NPOLLS; i++)
		close(polls[i].fd);
	double deadline = th_now() + 5;
	while (metric("dualreg_changes_waits") > 0 && th_now() < deadline)
		usleep(50 * 1000);
	ck_assert_int_eq((int)metric("dualreg_changes_waits"), 0);
	snprintf(path, sizeof path, "/v1/changes?since=%s&wait=1", c1);
	get(k1, path, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(cJSON_GetArraySize(item(r.json, "changes")), 0);
	th_resp_free(&r);
	ck_assert_int_eq((int)metric("dualreg_changes_waits"), 0); /* an expiry, too */
}
END_TEST

START_TEST(test_mark_wakes_only_its_school)
{
	lp_start();
	char c1[128], c3[128];
	feed_end(k1, c1, sizeof c1);
	feed_end(k3, c3, sizeof c3);

	/* 100001's long poll alone; a mark at 100003 during it neither answers it nor
	 * makes it query again. */
	double q0 = metric("dualreg_changes_requeries_total");
	struct bg_poll y;
	bg_poll_start(&y, k1, c1, 2);
	usleep(500 * 1000);
	post_mark(mon, "AM");
	ck_assert_int_eq(bg_poll_join(&y), 0);
	ck_assert_msg(y.elapsed >= 1.9 && y.elapsed < 3.5, "took %.2f s", y.elapsed);
	ck_assert_str_eq(str(y.resp.json, "next_cursor"), c1);
	th_resp_free(&y.resp);
	ck_assert_int_eq((int)(metric("dualreg_changes_requeries_total") - q0), 0);

	/* Both schools waiting: 100003's answers at once with its mark, 100001's at the
	 * end of its wait with nothing. */
	feed_end(k3, c3, sizeof c3);
	struct bg_poll x;
	bg_poll_start(&x, k3, c3, 20);
	bg_poll_start(&y, k1, c1, 3);
	usleep(500 * 1000);
	post_mark(tue, "AM");
	ck_assert_int_eq(bg_poll_join(&x), 1);
	ck_assert_msg(x.elapsed < 1.5, "took %.2f s", x.elapsed);
	cJSON *ev = cJSON_GetArrayItem(item(x.resp.json, "changes"), 0);
	ck_assert_str_eq(str(ev, "type"), "mark.recorded");
	ck_assert_str_eq(str(item(ev, "data"), "date"), tue);
	th_resp_free(&x.resp);
	ck_assert_int_eq(bg_poll_join(&y), 0);
	ck_assert_msg(y.elapsed >= 2.9, "took %.2f s", y.elapsed);
	th_resp_free(&y.resp);

	/* An admin's long poll is woken by any school's event. */
	char ca[128];
	feed_end(admin, ca, sizeof ca);
	struct bg_poll a;
	bg_poll_start(&a, admin, ca, 20);
	usleep(500 * 1000);
	post_mark(thu, "AM");
	ck_assert_int_eq(bg_poll_join(&a), 1);
	ck_assert_msg(a.elapsed < 1.5, "took %.2f s", a.elapsed);
	th_resp_free(&a.resp);
}
END_TEST

Suite *longpoll_suite(void)
{
	Suite *s = suite_create("longpoll");
	TCase *tc = tcase_create("longpoll");
	tcase_set_timeout(tc, 90);
	tcase_add_checked_fixture(tc, rd_setup, rd_teardown);
	tcase_add_test(tc, test_one_key_cannot_exhaust_long_polls);
	tcase_add_test(tc, test_mark_wakes_only_its_school);
	suite_add_tcase(s, tc);
	return s;
}
