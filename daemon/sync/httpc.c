/*
 * httpc: libcurl multi on libevent (see httpc.h).
 *
 * curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to call it
 * back (CURLMOPT_TIMERFUNCTION); we keep one persistent event per curl socket and a
 * single timer, and feed readiness back with curl_multi_socket_action. Completed
 * transfers are collected with curl_multi_info_read. The timer callback only arms our
 * timer: libcurl must not be re-entered from inside its own callbacks.
 *
 * Completion callbacks are delivered from the loop (the socket or timer event that
 * finished the transfer), and a transfer that fails to start is finished through a
 * zero-delay event, so a caller never sees its callback before httpc_start returns.
 */
#include "dualreg/httpc.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "dualreg/log.h"
#include "dualreg/xalloc.h"

struct httpc {
	struct event_base *base;
	CURLM *multi;
	struct event ev_timer;
	int running;
	unsigned active;
	char *proxy; /* NULL: none */
	LIST_HEAD(, httpc_xfer) xfers;
};

struct httpc_xfer {
	struct httpc *h;
	CURL *easy;
	struct curl_slist *headers;
	char *body; /* request body copy */
	char *resp;
	size_t resp_len, resp_cap, max_response;
	bool truncated, fail_over_max, allow_private, blocked;
	bool proxied; /* every connection goes to the configured proxy */
	long retry_after_s;
	char errbuf[CURL_ERROR_SIZE];
	char blocked_addr[INET6_ADDRSTRLEN];
	httpc_done_fn done;
	void *arg;
	struct event ev_start_failed;
	LIST_ENTRY(httpc_xfer) link;
};

struct sock_ctx {
	struct event ev;
	bool armed;
};

/* A prefix of an address: its first len bits equal those of bytes. */
struct prefix {
	unsigned char bytes[16];
	unsigned len;
};

static bool in_prefix(const unsigned char *addr, const struct prefix *p)
{
	unsigned whole = p->len / 8, rest = p->len % 8;
	if (memcmp(addr, p->bytes, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (addr[whole] & mask) == (p->bytes[whole] & mask);
}

static bool in_any(const unsigned char *addr, const struct prefix *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (in_prefix(addr, &list[i]))
			return true;
	return false;
}

/* IPv4 ranges that are not public unicast (IANA IPv4 special-purpose registry entries
 * not globally reachable, the deprecated 6to4 relay anycast, multicast, reserved). */
static const struct prefix v4_refused[] = {
    {{0}, 8},                 /* 0.0.0.0/8 this network */
    {{10}, 8},                /* 10/8 private */
    {{100, 64}, 10},          /* 100.64/10 shared address space */
    {{127}, 8},               /* 127/8 loopback */
    {{169, 254}, 16},         /* 169.254/16 link-local */
    {{172, 16}, 12},          /* 172.16/12 private */
    {{192, 0, 0}, 24},        /* 192.0.0.0/24 protocol assignments */
    {{192, 0, 2}, 24},        /* 192.0.2.0/24 documentation (TEST-NET-1) */
    {{192, 88, 99}, 24},      /* 192.88.99.0/24 6to4 relay anycast (deprecated) */
    {{192, 168}, 16},         /* 192.168/16 private */
    {{198, 18}, 15},          /* 198.18.0.0/15 benchmarking */
    {{198, 51, 100}, 24},     /* 198.51.100.0/24 documentation (TEST-NET-2) */
    {{203, 0, 113}, 24},      /* 203.0.113.0/24 documentation (TEST-NET-3) */
    {{224}, 4},               /* 224/4 multicast */
    {{240}, 4},               /* 240/4 reserved, and 255.255.255.255 broadcast */
};

/* IPv6 ranges inside 2000::/3 that are not public unicast. */
static const struct prefix v6_refused[] = {
    {{0x20, 0x01, 0x00, 0x00}, 32},       /* 2001::/32 Teredo */
    {{0x20, 0x01, 0x00, 0x02, 0, 0}, 48}, /* 2001:2::/48 benchmarking */
    {{0x20, 0x01, 0x00, 0x10}, 28},       /* 2001:10::/28 ORCHID (deprecated) */
    {{0x20, 0x01, 0x00, 0x20}, 28},       /* 2001:20::/28 ORCHIDv2 */
    {{0x20, 0x01, 0x0d, 0xb8}, 32},       /* 2001:db8::/32 documentation */
    {{0x3f, 0xff, 0x00}, 20},             /* 3fff::/20 documentation */
};

static const struct prefix v6_global = {{0x20}, 3};                            /* 2000::/3 */
static const struct prefix v6_mapped = {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96};
static const struct prefix v6_6to4 = {{0x20, 0x02}, 16};                       /* 2002::/16 */

static bool v4_refused_at(const unsigned char *b)
{
	return in_any(b, v4_refused, sizeof v4_refused / sizeof v4_refused[0]);
}

bool httpc_address_is_private(const struct sockaddr *addr)
{
	if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
		return v4_refused_at((const unsigned char *)&in->sin_addr.s_addr);
	}
	if (addr->sa_family == AF_INET6) {
		const unsigned char *b = ((const struct sockaddr_in6 *)addr)->sin6_addr.s6_addr;
		if (in_prefix(b, &v6_mapped)) /* ::ffff:a.b.c.d: the IPv4 address decides */
			return v4_refused_at(b + 12);
		/* Outside 2000::/3: ::, ::1, ::/96 IPv4-compatible, 64:ff9b::/96 and
		 * 64:ff9b:1::/48 NAT64, 100::/64 discard, 5f00::/16, fc00::/7, fec0::/10,
		 * fe80::/10, ff00::/8 and every range not allocated for unicast. */
		if (!in_prefix(b, &v6_global))
			return true;
		if (in_prefix(b, &v6_6to4)) /* 2002:a.b.c.d::/48 carries an IPv4 address */
			return v4_refused_at(b + 2);
		return in_any(b, v6_refused, sizeof v6_refused / sizeof v6_refused[0]);
	}
	return true;
}

/* Refuses sockets to disallowed addresses, after resolution, at every connect. */
static curl_socket_t open_socket_cb(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct httpc_xfer *x = arg;
	(void)purpose;
	/* Through a proxy this is the proxy's address, which the configuration trusts. */
	if (!x->allow_private && !x->proxied && httpc_address_is_private(&a->addr)) {
		x->blocked = true;
		if (a->family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&a->addr)->sin_addr,
				  x->blocked_addr, sizeof x->blocked_addr);
		else if (a->family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&a->addr)->sin6_addr,
				  x->blocked_addr, sizeof x->blocked_addr);
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype, a->protocol);
}

static size_t write_cb(char *data, size_t size, size_t n, void *arg)
{
	struct httpc_xfer *x = arg;
	size_t len = size * n;
	size_t room = x->max_response - x->resp_len;
	if (len > room) {
		x->truncated = true;
		if (x->fail_over_max)
			return 0; /* fails the transfer with CURLE_WRITE_ERROR */
	}
	size_t take = len < room ? len : room;
	if (take > 0) {
		if (x->resp_len + take + 1 > x->resp_cap) {
			x->resp_cap = x->resp_len + take + 1 + 1024;
			if (x->resp_cap > x->max_response + 1)
				x->resp_cap = x->max_response + 1;
			x->resp = xrealloc(x->resp, x->resp_cap);
		}
		memcpy(x->resp + x->resp_len, data, take);
		x->resp_len += take;
		x->resp[x->resp_len] = '\0';
	}
	return len;
}

static size_t header_cb(char *data, size_t size, size_t n, void *arg)
{
	struct httpc_xfer *x = arg;
	size_t len = size * n;
	if (len > 12 && strncasecmp(data, "Retry-After:", 12) == 0) {
		char buf[32];
		size_t vl = len - 12 < sizeof buf - 1 ? len - 12 : sizeof buf - 1;
		memcpy(buf, data + 12, vl);
		buf[vl] = '\0';
		char *end;
		long v = strtol(buf, &end, 10);
		while (*end == ' ' || *end == '\r' || *end == '\n')
			end++;
		/* Only delta-seconds; an HTTP date is treated as absent. */
		x->retry_after_s = (end != buf && *end == '\0' && v >= 0) ? v : -1;
	}
	return len;
}

static void xfer_free(struct httpc_xfer *x)
{
	LIST_REMOVE(x, link);
	if (event_initialized(&x->ev_start_failed))
		event_del(&x->ev_start_failed);
	curl_slist_free_all(x->headers);
	free(x->body);
	free(x->resp);
	free(x);
}

/* True unless ip (the text of the address a transfer last used) is a public one. */
static bool peer_nonpublic(const char *ip)
{
	struct sockaddr_in v4 = {.sin_family = AF_INET};
	struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
	if (ip != NULL && inet_pton(AF_INET, ip, &v4.sin_addr) == 1)
		return httpc_address_is_private((struct sockaddr *)&v4);
	if (ip != NULL && inet_pton(AF_INET6, ip, &v6.sin6_addr) == 1)
		return httpc_address_is_private((struct sockaddr *)&v6);
	return true;
}

/* Reports a finished transfer to its owner and frees it. */
static void xfer_finish(struct httpc_xfer *x, CURLcode code)
{
	struct httpc_result res = {0};
	res.retry_after_s = x->retry_after_s;
	if (x->easy != NULL) {
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &res.status);
		double t = 0;
		curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME, &t);
		res.total_ms = t * 1000.0;
		char *ip = NULL; /* also right for a reused connection, unlike open_socket_cb */
		curl_easy_getinfo(x->easy, CURLINFO_PRIMARY_IP, &ip);
		res.nonpublic = x->proxied ? x->allow_private : peer_nonpublic(ip);
	} else {
		res.nonpublic = true;
	}
	res.ok = code == CURLE_OK;
	if (x->blocked)
		snprintf(res.error, sizeof res.error,
			 "address %s is not allowed (loopback, private or otherwise not public)",
			 x->blocked_addr);
	else if (code == CURLE_WRITE_ERROR && x->truncated)
		snprintf(res.error, sizeof res.error, "response larger than %zu bytes",
			 x->max_response);
	else if (!res.ok)
		snprintf(res.error, sizeof res.error, "%s",
			 x->errbuf[0] ? x->errbuf : curl_easy_strerror(code));
	if (!res.ok && x->blocked)
		res.status = 0;
	res.body = x->resp ? x->resp : "";
	res.body_len = x->resp_len;
	res.truncated = x->truncated;
	httpc_done_fn done = x->done;
	void *arg = x->arg;
	struct httpc *h = x->h;
	if (x->easy != NULL) {
		curl_multi_remove_handle(h->multi, x->easy);
		curl_easy_cleanup(x->easy);
		x->easy = NULL;
		h->active--;
	}
	done(&res, arg);
	xfer_free(x);
}

static void drain_completed(struct httpc *h)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct httpc_xfer *x = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		xfer_finish(x, m->data.result);
	}
}

static void socket_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct httpc *h = arg;
	int mask = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
	curl_multi_socket_action(h->multi, fd, mask, &h->running);
	drain_completed(h);
	if (h->running <= 0)
		evtimer_del(&h->ev_timer);
}

static void timer_event_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct httpc *h = arg;
	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &h->running);
	drain_completed(h);
}

/* curl: watch (or stop watching) one socket. */
static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	(void)easy;
	struct httpc *h = userp;
	struct sock_ctx *ctx = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (ctx != NULL) {
			if (ctx->armed)
				event_del(&ctx->ev);
			free(ctx);
			curl_multi_assign(h->multi, s, NULL);
		}
		return 0;
	}
	if (ctx == NULL) {
		ctx = xcalloc(1, sizeof *ctx);
		curl_multi_assign(h->multi, s, ctx);
	} else if (ctx->armed) {
		event_del(&ctx->ev);
	}
	short ev = (short)((what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0) |
			   EV_PERSIST);
	event_assign(&ctx->ev, h->base, s, ev, socket_event_cb, h);
	event_add(&ctx->ev, NULL);
	ctx->armed = true;
	return 0;
}

/* curl: (re)arm our single timer; never call back into curl from here. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	(void)multi;
	struct httpc *h = userp;
	if (timeout_ms < 0) {
		evtimer_del(&h->ev_timer);
		return 0;
	}
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	evtimer_add(&h->ev_timer, &tv);
	return 0;
}

struct httpc *httpc_new(struct event_base *base, unsigned max_total, unsigned max_per_host)
{
	struct httpc *h = xcalloc(1, sizeof *h);
	h->base = base;
	h->multi = curl_multi_init();
	LIST_INIT(&h->xfers);
	evtimer_assign(&h->ev_timer, base, timer_event_cb, h);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	if (max_total > 0) {
		curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)max_total);
		/* keep that many idle connections for reuse: by default the cache follows the
		 * transfers in progress, so a quiet moment between bursts closed connections
		 * and every burst paid new TCP and TLS handshakes */
		curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, (long)max_total);
	}
	if (max_per_host > 0)
		curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)max_per_host);
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
	if (!(v->features & CURL_VERSION_ASYNCHDNS))
		log_warn("libcurl resolves names synchronously: name lookups may stall the loop",
			 "");
	return h;
}

void httpc_free(struct httpc *h)
{
	if (h == NULL)
		return;
	struct httpc_xfer *x;
	while ((x = LIST_FIRST(&h->xfers)) != NULL)
		httpc_cancel(x);
	evtimer_del(&h->ev_timer);
	curl_multi_cleanup(h->multi); /* removes the remaining sockets through socket_cb */
	free(h->proxy);
	free(h);
}

void httpc_set_proxy(struct httpc *h, const char *proxy)
{
	free(h->proxy);
	h->proxy = proxy != NULL && proxy[0] != '\0' ? xstrdup(proxy) : NULL;
}

static void start_failed_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	xfer_finish(arg, CURLE_FAILED_INIT);
}

struct httpc_xfer *httpc_start(struct httpc *h, const struct httpc_request *req,
			       httpc_done_fn done, void *arg)
{
	struct httpc_xfer *x = xcalloc(1, sizeof *x);
	x->h = h;
	x->done = done;
	x->arg = arg;
	x->retry_after_s = -1;
	x->max_response = req->max_response;
	x->fail_over_max = req->fail_over_max;
	x->allow_private = req->allow_private;
	x->proxied = h->proxy != NULL;
	LIST_INSERT_HEAD(&h->xfers, x, link);
	for (size_t i = 0; req->headers != NULL && req->headers[i] != NULL; i++)
		x->headers = curl_slist_append(x->headers, req->headers[i]);
	/* Don't let curl add "Expect: 100-continue" and wait a second for it. */
	x->headers = curl_slist_append(x->headers, "Expect:");

	CURL *e = curl_easy_init();
	if (e == NULL) {
		snprintf(x->errbuf, sizeof x->errbuf, "cannot create a transfer");
		event_assign(&x->ev_start_failed, h->base, -1, 0, start_failed_cb, x);
		event_active(&x->ev_start_failed, EV_TIMEOUT, 1);
		return x;
	}
	x->easy = e;
	curl_easy_setopt(e, CURLOPT_URL, req->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, req->allow_http ? "http,https" : "https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(req->connect_timeout_ms ? req->connect_timeout_ms : req->timeout_ms));
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket_cb);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, x);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "dualreg");
	/* "" is no proxy at all, whatever *_proxy the environment holds; with a proxy, ""
	 * for NOPROXY sends every host through it, whatever no_proxy holds. */
	curl_easy_setopt(e, CURLOPT_PROXY, x->proxied ? h->proxy : "");
	if (x->proxied)
		curl_easy_setopt(e, CURLOPT_NOPROXY, "");
	if (req->ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, req->ca_file);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
	if (req->body != NULL) {
		x->body = xmalloc(req->body_len + 1);
		memcpy(x->body, req->body, req->body_len);
		x->body[req->body_len] = '\0';
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
	} else if (strcmp(req->method, "GET") == 0) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	}
	h->active++;
	CURLMcode mc = curl_multi_add_handle(h->multi, e);
	if (mc != CURLM_OK) {
		snprintf(x->errbuf, sizeof x->errbuf, "%s", curl_multi_strerror(mc));
		event_assign(&x->ev_start_failed, h->base, -1, 0, start_failed_cb, x);
		event_active(&x->ev_start_failed, EV_TIMEOUT, 1);
	}
	return x;
}

void httpc_cancel(struct httpc_xfer *x)
{
	if (x == NULL)
		return;
	if (x->easy != NULL) {
		curl_multi_remove_handle(x->h->multi, x->easy);
		curl_easy_cleanup(x->easy);
		x->h->active--;
	}
	xfer_free(x);
}

unsigned httpc_active(const struct httpc *h)
{
	return h->active;
}
