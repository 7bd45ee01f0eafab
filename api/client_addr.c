/* client_addr: which client a request comes from (see client_addr.h). */
#include "client_addr.h"

#include <sys/queue.h> /* before libevent's headers, which define TAILQ_* otherwise */

#include <arpa/inet.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "dualreg/config.h"
#include "dualreg/net_ranges.h"
#include "dualreg/xalloc.h"

#define MAX_XFF_HEADERS 16

static struct {
	char *src; /* the [limits] trusted_proxies text parsed; NULL: none */
	struct net_ranges set;
} proxies;

/* The trusted proxies of cfg, parsed again when the text changes (a reload). The text
 * was validated when the configuration was loaded, by the same parser. */
static void proxies_load(const struct config *cfg)
{
	const char *text = cfg->trusted_proxies;
	if ((text == NULL && proxies.src == NULL) ||
	    (text != NULL && proxies.src != NULL && strcmp(text, proxies.src) == 0))
		return;
	free(proxies.src);
	proxies.src = text != NULL ? xstrdup(text) : NULL;
	char err[200];
	if (net_ranges_parse(text, &proxies.set, err, sizeof err) != 0)
		proxies.set.n = 0;
}

static bool trusted(const unsigned char a[16])
{
	return net_ranges_contain(&proxies.set, a);
}

/* One element of X-Forwarded-For: an address, possibly "[v6]:port" or "v4:port". */
static int xff_element(const char *s, size_t len, unsigned char out[16])
{
	while (len > 0 && (*s == ' ' || *s == '\t'))
		s++, len--;
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	char buf[64];
	if (len == 0 || len >= sizeof buf)
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	char *a = buf;
	if (a[0] == '[') {
		char *close = strchr(a, ']');
		if (close == NULL)
			return -1;
		*close = '\0';
		a++;
	} else {
		char *colon = strchr(a, ':');
		if (colon != NULL && strchr(colon + 1, ':') == NULL)
			*colon = '\0'; /* "192.0.2.1:4711" */
	}
	bool v4;
	return net_addr_parse(a, out, &v4);
}

/*
 * Walks X-Forwarded-For from the right (the hop nearest to us) while the addresses are
 * trusted proxies; the first one that is not is the client. Several headers count as
 * one list in their order. An element that is not an address ends the walk: the last
 * trusted hop, which wrote it, is then the client.
 */
static void client_from_xff(struct api_req *r, unsigned char client[16])
{
	const char *vals[MAX_XFF_HEADERS];
	size_t n = 0;
	struct evkeyval *h;
	TAILQ_FOREACH(h, evhttp_request_get_input_headers(r->req), next) {
		if (strcasecmp(h->key, "X-Forwarded-For") != 0)
			continue;
		if (n == MAX_XFF_HEADERS)
			memmove(vals, vals + 1, --n * sizeof *vals); /* keep the right-most */
		vals[n++] = h->value;
	}
	while (n > 0) {
		const char *v = vals[--n];
		size_t end = strlen(v);
		for (;;) {
			size_t start = end;
			while (start > 0 && v[start - 1] != ',')
				start--;
			unsigned char a[16];
			if (xff_element(v + start, end - start, a) != 0)
				return;
			memcpy(client, a, 16);
			if (!trusted(a))
				return;
			if (start == 0)
				break;
			end = start - 1;
		}
	}
}

void client_addr_of(struct api_req *r, unsigned char client[16])
{
	memset(client, 0, 16);
	struct evhttp_connection *conn = evhttp_request_get_connection(r->req);
	const struct sockaddr *sa = conn != NULL ? evhttp_connection_get_addr(conn) : NULL;
	if (sa != NULL && sa->sa_family == AF_INET)
		net_addr_map_v4(&((const struct sockaddr_in *)(const void *)sa)->sin_addr, client);
	else if (sa != NULL && sa->sa_family == AF_INET6)
		memcpy(client, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
	else if (conn != NULL) {
		/* The numeric host evhttp noted when it accepted the connection. */
		char *host = NULL, buf[INET6_ADDRSTRLEN];
		ev_uint16_t port;
		evhttp_connection_get_peer(conn, &host, &port);
		bool v4;
		if (host != NULL && strlen(host) < sizeof buf) {
			memcpy(buf, host, strlen(host) + 1);
			buf[strcspn(buf, "%")] = '\0'; /* an IPv6 zone */
			if (net_addr_parse(buf, client, &v4) != 0)
				memset(client, 0, 16);
		}
	}
	proxies_load(r->env->cfg);
	if (proxies.set.n > 0 && trusted(client))
		client_from_xff(r, client);
	if (!net_addr_is_v4(client))
		memset(client + 8, 0, 8); /* IPv6: its /64 */
}

void client_addr_text(const unsigned char a[16], char *out, size_t len)
{
	if (net_addr_is_v4(a))
		inet_ntop(AF_INET, a + 12, out, (socklen_t)len);
	else if (inet_ntop(AF_INET6, a, out, (socklen_t)len) != NULL && strlen(out) + 4 < len)
		strcat(out, "/64");
}
