/* endpoint: URL rules for outbound connections (see endpoint.h). */
#include "dualreg/endpoint.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

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

char *endpoint_with_since(const char *url, const char *cursor)
{
	char *esc = curl_easy_escape(NULL, cursor ? cursor : "", 0);
	char *out = xasprintf("%s%ssince=%s", url, strchr(url, '?') ? "&" : "?", esc ? esc : "");
	curl_free(esc);
	return out;
}
