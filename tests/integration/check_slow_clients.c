/*
 * slow_clients: the listener's defences against clients that hold connections without
 * completing requests, through the real daemon on raw loopback sockets:
 *  - [server] read_timeout bounds a whole request, not each read: a client trickling
 *    a header byte every 200 ms is closed at about read_timeout; time a kept-alive
 *    connection spends idle between requests does not count against the next one;
 *  - [server] max_connections: connections beyond it get a 503 and are closed at once,
 *    while requests on connections within it are served promptly;
 *  - dualreg_http_connections_open in /metrics follows the connections and returns to
 *    where it was once they are gone.
 * Every wait is bounded.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../harness.h"
#include "../suites.h"

static char url[1024];
static struct th_daemon d;
static char admin[128];

static void setup(void)
{
	th_db_create_migrated(url, sizeof url);
	th_key_create(url, NULL, admin, sizeof admin);
	d.pid = 0;
}

static void teardown(void)
{
	if (d.pid > 0)
		th_daemon_stop(&d, SIGKILL);
}

static void start(unsigned read_timeout_ms, unsigned max_connections, bool valgrind)
{
	char ini[160];
	snprintf(ini, sizeof ini, "[server]\nread_timeout = %ums\nmax_connections = %u\n",
		 read_timeout_ms, max_connections);
	th_daemon_start(&d, url, ini, valgrind);
}

/* A metric's value from /metrics (as the admin), or -1 if it is not there. */
static double metric(const char *name)
{
	struct th_resp r;
	th_api(&d, "GET", "/metrics", admin, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	double v = -1;
	size_t n = strlen(name);
	for (const char *p = r.body; p != NULL && *p != '\0';) {
		if (strncmp(p, name, n) == 0 && p[n] == ' ') {
			v = strtod(p + n + 1, NULL);
			break;
		}
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	th_resp_free(&r);
	return v;
}

/* A new loopback connection to the daemon (non-blocking), or -1 if it could not be
 * made within a second. */
static int dial(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)d.port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	int err = 0;
	socklen_t len = sizeof err;
	if (poll(&p, 1, 1000) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 ||
	    err != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Sends text; false if the connection is gone. */
static bool say(int fd, const char *text)
{
	size_t len = strlen(text);
	return send(fd, text, len, MSG_NOSIGNAL) == (ssize_t)len;
}

/*
 * Waits up to `seconds` for the server to close fd, keeping what it sent (up to
 * len - 1 bytes, NUL-terminated) in got when got is not NULL. True if it closed.
 */
static bool closed_within(int fd, double seconds, char *got, size_t len)
{
	size_t used = 0;
	double deadline = th_now() + seconds;
	for (;;) {
		double left = deadline - th_now();
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int ready = poll(&p, 1, left > 0 ? (int)(left * 1000) + 1 : 0);
		if (ready <= 0 || left < -1.0) {
			if (left <= 0)
				break;
			continue;
		}
		char buf[512];
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			if (got != NULL)
				got[used] = '\0';
			return true;
		}
		if (got != NULL && used + 1 < len) {
			size_t k = (size_t)n < len - 1 - used ? (size_t)n : len - 1 - used;
			memcpy(got + used, buf, k);
			used += k;
		}
	}
	if (got != NULL)
		got[used] = '\0';
	return false;
}

/* Reads one whole response (headers and Content-Length body) within `seconds`: its
 * status, or 0 if none arrived (or the connection closed first). */
static int read_response(int fd, double seconds)
{
	char buf[8192];
	size_t used = 0;
	double deadline = th_now() + seconds;
	while (th_now() < deadline && used + 1 < sizeof buf) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, (int)((deadline - th_now()) * 1000) + 1) <= 0)
			continue;
		ssize_t n = recv(fd, buf + used, sizeof buf - 1 - used, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return 0;
		used += (size_t)n;
		buf[used] = '\0';
		const char *end = strstr(buf, "\r\n\r\n");
		const char *cl = strcasestr(buf, "\r\nContent-Length:");
		if (end == NULL || cl == NULL || cl > end)
			continue;
		size_t want = (size_t)(end + 4 - buf) + strtoul(cl + 17, NULL, 10);
		if (used >= want) {
			int status = 0;
			sscanf(buf, "HTTP/1.%*d %d", &status);
			return status;
		}
	}
	return 0;
}

#define PARTIAL "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
#define WHOLE "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

/* (a) within the cap others are served promptly, (b) beyond it connections are
 * refused at once, then the slow ones are closed at read_timeout and (d) the gauge
 * returns to where it was. */
START_TEST(test_connection_cap)
{
	enum { CAP = 64, SLOW = CAP - 8, TOTAL = 200 };
	const double read_timeout = 3.0;
	start((unsigned)(read_timeout * 1000), CAP, false);
	double base = metric("dualreg_http_connections_open"); /* the scrape's own */
	ck_assert_msg(base >= 1 && base <= 3, "open connections at rest: %g", base);

	int fds[TOTAL];
	double t0 = th_now();
	for (int i = 0; i < SLOW; i++) {
		fds[i] = dial();
		ck_assert_msg(fds[i] >= 0, "slow connection %d not accepted", i);
		ck_assert(say(fds[i], PARTIAL));
	}
	/* (a) Requests on other connections are answered promptly meanwhile. */
	for (int k = 0; k < 5; k++) {
		double t = th_now();
		struct th_resp r;
		th_api(&d, "GET", "/healthz", NULL, NULL, NULL, &r);
		ck_assert_int_eq(r.status, 200);
		th_resp_free(&r);
		ck_assert_msg(th_now() - t < 0.5, "GET /healthz took %.3f s", th_now() - t);
	}
	double open = metric("dualreg_http_connections_open");
	ck_assert_msg(open >= base + SLOW && open <= CAP, "open: %g (base %g)", open, base);

	/* (b) Beyond the cap: a 503 (or nothing) and the connection closed at once, long
	 * before read_timeout. */
	for (int i = SLOW; i < TOTAL; i++) {
		fds[i] = dial();
		if (fds[i] >= 0)
			say(fds[i], PARTIAL); /* may already be closed */
	}
	int refused = 0, kept = 0;
	for (int i = SLOW; i < TOTAL; i++) {
		char got[512];
		if (fds[i] < 0 || closed_within(fds[i], i == SLOW ? 1.0 : 0.05, got, sizeof got)) {
			refused++;
			if (fds[i] >= 0 && got[0] != '\0')
				ck_assert_msg(strncmp(got, "HTTP/1.1 503 ", 13) == 0 &&
						  strstr(got, "application/problem+json") != NULL,
					      "refusal: %s", got);
			if (fds[i] >= 0)
				close(fds[i]);
			fds[i] = -1;
		} else {
			kept++;
		}
	}
	ck_assert_msg(th_now() - t0 < read_timeout - 0.5, "took too long to tell: %.2f s",
		      th_now() - t0);
	ck_assert_msg(kept <= CAP - SLOW && refused >= TOTAL - CAP - 2,
		      "beyond the cap of %d: %d kept, %d refused", CAP, kept, refused);
	/* The first slow ones are still open: only the cap refused connections. */
	for (int i = 0; i < SLOW; i++)
		ck_assert_msg(!closed_within(fds[i], 0, NULL, 0), "slow connection %d closed early",
			      i);

	/* The slow ones are closed when read_timeout has passed since they connected. */
	for (int i = 0; i < TOTAL; i++) {
		if (fds[i] < 0)
			continue;
		ck_assert_msg(closed_within(fds[i], t0 + read_timeout + 2.0 - th_now(), NULL, 0),
			      "connection %d still open %.2f s after it connected", i,
			      th_now() - t0);
		close(fds[i]);
	}
	ck_assert_msg(th_now() - t0 >= read_timeout - 0.3, "closed before read_timeout: %.2f s",
		      th_now() - t0);
	ck_assert_int_ge(metric("dualreg_http_read_timeouts_total"), SLOW);
	ck_assert_int_ge(metric("dualreg_http_connections_refused_total"), refused - 1);
	ck_assert(th_daemon_log_contains(&d, "connection limit reached"));

	/* (d) Back to where it was, within a bounded wait. */
	double deadline = th_now() + 5.0;
	while ((open = metric("dualreg_http_connections_open")) > base && th_now() < deadline)
		usleep(100 * 1000);
	ck_assert_msg(open <= base, "open connections: %g, at rest %g", open, base);
	int rc = th_daemon_stop(&d, SIGTERM);
	ck_assert_msg(rc == 0, "exit status %d; see %s", rc, d.log_path);
}
END_TEST

/*
 * Trickles `text` a byte every 200 ms from `started` until the server closes the
 * connection or `bound` seconds have passed since then; returns the seconds since
 * `started` when it closed, or -1.
 */
static double trickle_until_closed(int fd, const char *text, double started, double bound)
{
	size_t i = 0;
	while (th_now() - started < bound) {
		if (closed_within(fd, 0.2, NULL, 0))
			return th_now() - started;
		if (text[i] != '\0') {
			char one[2] = {text[i++], '\0'};
			if (!say(fd, one))
				return th_now() - started;
		}
	}
	return -1;
}

/* (c) A header trickled a byte every 200 ms is cut off at read_timeout, on a new
 * connection and on a kept-alive one (counted from the request's first byte there). */
START_TEST(test_slow_header_closed_at_read_timeout)
{
	const double read_timeout = 1.0;
	start((unsigned)(read_timeout * 1000), 64, false);
	static const char slow[] = "X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

	/* The first request of a connection. */
	int fd = dial();
	ck_assert_int_ge(fd, 0);
	double t0 = th_now();
	ck_assert(say(fd, "GET /healthz HTTP/1.1\r\n"));
	double took = trickle_until_closed(fd, slow, t0, read_timeout + 3.0);
	close(fd);
	ck_assert_msg(took >= read_timeout - 0.1 && took <= read_timeout + 0.8,
		      "closed after %.2f s (read_timeout %.1f s)", took, read_timeout);

	/* A kept-alive connection: idle longer than read_timeout between requests is
	 * fine; the next request is bounded from its first byte. */
	fd = dial();
	ck_assert_int_ge(fd, 0);
	ck_assert(say(fd, WHOLE));
	ck_assert_int_eq(read_response(fd, 2.0), 200);
	usleep((useconds_t)(read_timeout * 1.5e6));
	ck_assert(say(fd, WHOLE));
	ck_assert_int_eq(read_response(fd, 2.0), 200);
	usleep((useconds_t)(read_timeout * 0.6e6));
	t0 = th_now();
	ck_assert(say(fd, "GET /healthz HTTP/1.1\r\n"));
	took = trickle_until_closed(fd, slow, t0, read_timeout + 3.0);
	close(fd);
	ck_assert_msg(took >= read_timeout - 0.1 && took <= read_timeout + 0.8,
		      "kept-alive: closed after %.2f s (read_timeout %.1f s)", took, read_timeout);
	ck_assert_int_ge(metric("dualreg_http_read_timeouts_total"), 2);
	int rc = th_daemon_stop(&d, SIGTERM);
	ck_assert_msg(rc == 0, "exit status %d; see %s", rc, d.log_path);
}
END_TEST

/* Both limits follow a reload (SIGHUP) of the configuration. */
START_TEST(test_limits_apply_on_reload)
{
	start(10000, 64, false);
	th_daemon_reload_with(&d, "[server]\nread_timeout = 1s\nmax_connections = 3\n");
	/* read_timeout: 1 s now, not 10. */
	int fd = dial();
	ck_assert_int_ge(fd, 0);
	double t0 = th_now();
	ck_assert(say(fd, PARTIAL));
	ck_assert_msg(closed_within(fd, 4.0, NULL, 0), "not closed at the reloaded read_timeout");
	ck_assert_msg(th_now() - t0 < 2.0, "closed after %.2f s", th_now() - t0);
	close(fd);
	/* max_connections: 3 now. */
	int fds[5], refused = 0;
	for (int i = 0; i < 5; i++) {
		fds[i] = dial();
		if (fds[i] >= 0)
			say(fds[i], PARTIAL);
	}
	for (int i = 0; i < 5; i++) {
		if (fds[i] < 0 || closed_within(fds[i], 0.1, NULL, 0))
			refused++;
		if (fds[i] >= 0)
			close(fds[i]);
	}
	ck_assert_msg(refused >= 2 && refused <= 3, "%d of 5 refused with a cap of 3", refused);
}
END_TEST

/* Refusals, read timeouts, replies and a shutdown with slow connections still open,
 * under valgrind (or the sanitizers of a sanitizer build): nothing freed twice, nothing
 * leaked. */
START_TEST(test_memory_clean)
{
	bool vg = getenv("DUALREG_TEST_SAN") == NULL;
	start(1000, 4, vg);
	int fds[8];
	for (int i = 0; i < 8; i++) {
		fds[i] = dial();
		if (fds[i] >= 0)
			say(fds[i], i % 2 ? PARTIAL : WHOLE);
	}
	/* Enough time for the refusals, some replies and the read timeouts. */
	for (int i = 0; i < 8; i++)
		if (fds[i] >= 0)
			closed_within(fds[i], vg ? 4.0 : 2.0, NULL, 0);
	/* Two left open and half-sent when the daemon stops. */
	int a = dial(), b = dial();
	if (a >= 0)
		say(a, PARTIAL);
	if (b >= 0)
		say(b, "GET /heal");
	usleep(200 * 1000);
	int rc = th_daemon_stop(&d, SIGTERM);
	ck_assert_msg(rc == 0, "exit status %d (99 = valgrind found errors); see %s", rc,
		      d.log_path);
	for (int i = 0; i < 8; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
}
END_TEST

Suite *slow_clients_suite(void)
{
	Suite *s = suite_create("slow_clients");
	TCase *tc = tcase_create("listener");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_connection_cap);
	tcase_add_test(tc, test_slow_header_closed_at_read_timeout);
	tcase_add_test(tc, test_limits_apply_on_reload);
	tcase_add_test(tc, test_memory_clean);
	suite_add_tcase(s, tc);
	return s;
}
