/*
 * httpc: outbound HTTP(S) on the daemon's event loop, for webhook deliveries and MIS
 * feed pulls. libcurl's multi interface is driven by libevent (socket and timer
 * callbacks, curl_multi_socket_action), so no transfer ever blocks the loop; connections
 * are kept alive and reused, with caps on connections in total and per host.
 *
 * Safety built in: only https (http when the request allows it), redirects never
 * followed, a timeout per transfer, a cap on the response kept, and an address policy
 * checked when each socket is opened (after name resolution, so a name that resolves
 * to a loopback, private, link-local or multicast address is refused even if it
 * resolved elsewhere when it was registered). No proxy is used unless one is set with
 * httpc_set_proxy: http_proxy, https_proxy, all_proxy and no_proxy in the environment
 * are ignored. Through a configured proxy every connection goes to the proxy, which is
 * trusted as configured: the address check cannot see the destination, so the proxy
 * must refuse non-public destinations itself.
 */
#ifndef DUALREG_HTTPC_H
#define DUALREG_HTTPC_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct httpc;
struct httpc_xfer;

struct httpc_request {
	const char *method; /* "POST", "GET" */
	const char *url;
	const char *const *headers; /* "Name: value", NULL-terminated; may be NULL */
	const char *body;           /* may be NULL */
	size_t body_len;
	unsigned timeout_ms;         /* whole transfer */
	unsigned connect_timeout_ms; /* 0: timeout_ms */
	size_t max_response;         /* bytes of body kept */
	bool fail_over_max;          /* a longer body fails the transfer (feeds) */
	bool allow_http;             /* plain http allowed (tests, trusted networks) */
	bool allow_private;          /* loopback/private/link-local addresses allowed */
	const char *ca_file;         /* NULL: the system's trust store */
};

struct httpc_result {
	long status;         /* HTTP status, 0 if none arrived */
	bool ok;             /* the transfer completed (any status) */
	char error[256];     /* why not, when !ok */
	const char *body;    /* the kept part of the response body (NUL-terminated) */
	size_t body_len;
	bool truncated;      /* the body was longer than max_response */
	bool nonpublic;      /* the answer may come from a non-public address: the peer's
				address is one (allowed by allow_private), is unknown, or the
				request went through the proxy with allow_private set */
	long retry_after_s;  /* Retry-After in seconds, -1 if absent or unparseable */
	double total_ms;
};

typedef void (*httpc_done_fn)(const struct httpc_result *res, void *arg);

/* A client on base; max_total/max_per_host cap open connections (0: no cap). */
struct httpc *httpc_new(struct event_base *base, unsigned max_total, unsigned max_per_host);
/* Cancels every transfer (no callbacks) and frees the client. */
void httpc_free(struct httpc *h);
/*
 * Starts a transfer; done(res, arg) runs exactly once on the loop, never inside this
 * call, unless httpc_cancel comes first. Strings in req are copied.
 */
struct httpc_xfer *httpc_start(struct httpc *h, const struct httpc_request *req,
			       httpc_done_fn done, void *arg);
void httpc_cancel(struct httpc_xfer *x);
/* Sends later transfers through proxy ("http://host:port"; copied), or through none
 * when proxy is NULL or empty (the default). */
void httpc_set_proxy(struct httpc *h, const char *proxy);
unsigned httpc_active(const struct httpc *h);

/*
 * True if addr (an IPv4 or IPv6 socket address) is not a public unicast address: the
 * IANA special-purpose ranges that are not globally reachable (loopback, private,
 * shared, link-local, documentation, benchmarking, protocol assignments, reserved),
 * multicast and broadcast, IPv6 outside 2000::/3 (unspecified, loopback, IPv4-
 * compatible, NAT64, discard, unique and site local, link-local, multicast), Teredo,
 * ORCHID, and an IPv4 address embedded in an IPv4-mapped or 6to4 address that is
 * itself refused. Any other family is refused too.
 */
struct sockaddr;
bool httpc_address_is_private(const struct sockaddr *addr);

#endif
