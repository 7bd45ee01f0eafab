/*
 * endpoint: the rules for URLs dualreg connects to (webhook endpoints, pulled feeds),
 * parsed with libcurl's URL API: https only (http when allowed), no user name or
 * password, a host. Address rules (no loopback/private targets) are applied after
 * name resolution: see httpc_address_is_private.
 */
#ifndef DUALREG_ENDPOINT_H
#define DUALREG_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Checks url; on success writes its host (IPv6 literals without brackets) into host
 * and returns 0, else writes why into why and returns -1.
 */
int endpoint_check_url(const char *url, bool allow_http, char *host, size_t hostlen,
		       char *why, size_t whylen);
/* True when both URLs have the same scheme, host and port. */
bool endpoint_same_origin(const char *a, const char *b);
/*
 * True when url's host is one of list (host names or IP addresses separated by spaces
 * or commas): names compare without regard to case or a final dot, addresses by value
 * (so ::1 matches 0:0::1). The per-school allowlist of feed hosts that may be private.
 */
bool endpoint_host_listed(const char *url, const char *list);
/* url with "since=<cursor, escaped>" appended to its query; caller frees. */
char *endpoint_with_since(const char *url, const char *cursor);

#endif
