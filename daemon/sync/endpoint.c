/* endpoint: URL rules for outbound connections (see endpoint.h). */
#include "dualreg/endpoint.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dualreg/xalloc.h"

int endpoint_check_url(const char *url, bool allow_http, char *host, size_t hostlen,
		       char *why, size_t whylen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *user = NULL, *pass = NULL, *h = NULL;
	const char *bad = NULL;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
		bad = "not a valid absolute URL";
	} else {
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
		curl_url_get(u, CURLUPART_USER, &user, 0);
		curl_url_get(u, CURLUPART_PASSWORD, &pass, 0);
		curl_url_get(u, CURLUPART_HOST, &h, 0);
		if (scheme == NULL ||
		    (strcmp(scheme, "https") != 0 && !(allow_http && strcmp(scheme, "http") == 0)))
			bad = allow_http ? "the URL must be http or https" : "the URL must be https";
		else if (user != NULL || pass != NULL)
			bad = "the URL must not carry a user name or password";
		else if (h == NULL || strlen(h) >= hostlen)
			bad = "the URL has no usable host";
		else {
			size_t hl = strlen(h);
			if (h[0] == '[' && hl > 2)
				snprintf(host, hostlen, "%.*s", (int)(hl - 2), h + 1);
			else
				snprintf(host, hostlen, "%s", h);
		}
	}
	if (bad != NULL)
		snprintf(why, whylen, "%s", bad);
	curl_free(scheme);
	curl_free(user);
	curl_free(pass);
	curl_free(h);
	curl_url_cleanup(u);
	return bad != NULL ? -1 : 0;
}

/* "scheme://host:port" of url (the default port filled in), or "" if unparseable. */
static void origin(const char *url, char *out, size_t len)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *h = NULL, *port = NULL;
	out[0] = '\0';
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
		snprintf(out, len, "%s://%s:%s", scheme, h, port);
	curl_free(scheme);
	curl_free(h);
	curl_free(port);
	curl_url_cleanup(u);
}

bool endpoint_same_origin(const char *a, const char *b)
{
	char oa[512], ob[512];
	origin(a, oa, sizeof oa);
	origin(b, ob, sizeof ob);
	return oa[0] != '\0' && strcmp(oa, ob) == 0;
}

/* An IP address's family and bytes; 0 if text is not one. */
static int parse_ip(const char *text, unsigned char out[16])
{
	if (inet_pton(AF_INET, text, out) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, text, out) == 1)
		return AF_INET6;
	return 0;
}

/* Host names a and b (lengths al, bl) equal, without regard to case or a final dot. */
static bool same_name(const char *a, size_t al, const char *b, size_t bl)
{
	if (al > 0 && a[al - 1] == '.')
		al--;
	if (bl > 0 && b[bl - 1] == '.')
		bl--;
	return al > 0 && al == bl && strncasecmp(a, b, al) == 0;
}

bool endpoint_host_listed(const char *url, const char *list)
{
	char host[256], why[200];
	if (list == NULL || endpoint_check_url(url, true, host, sizeof host, why, sizeof why) != 0)
		return false;
	unsigned char ha[16], ea[16];
	int hf = parse_ip(host, ha);
	const char *p = list;
	while (*p != '\0') {
		size_t skip = strspn(p, " ,"), n;
		p += skip;
		n = strcspn(p, " ,");
		if (n == 0)
			break;
		char entry[256];
		if (n < sizeof entry) {
			memcpy(entry, p, n);
			entry[n] = '\0';
			/* an IPv6 entry may be written with the brackets of a URL */
			if (entry[0] == '[' && n > 2 && entry[n - 1] == ']') {
				memmove(entry, entry + 1, n - 2);
				entry[n - 2] = '\0';
			}
			int ef = parse_ip(entry, ea);
			if (hf != 0 ? ef == hf && memcmp(ha, ea, hf == AF_INET ? 4 : 16) == 0
				    : ef == 0 && same_name(host, strlen(host), entry, strlen(entry)))
				return true;
		}
		p += n;
	}
	return false;
}

char *endpoint_with_since(const char *url, const char *cursor)
{
	char *esc = curl_easy_escape(NULL, cursor ? cursor : "", 0);
	char *out = xasprintf("%s%ssince=%s", url, strchr(url, '?') ? "&" : "?", esc ? esc : "");
	curl_free(esc);
	return out;
}
