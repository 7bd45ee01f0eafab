/*
 * curl_ceiling: the "raw" delivery figure `make bench` compares webhook delivery
 * against: a plain libcurl multi client POSTing N copies of a body to one URL with C
 * transfers at once over kept-alive connections, no database and no signing. With
 * CA_FILE (an https URL) the server's certificate is checked against it.
 *   curl_ceiling URL N CONCURRENCY BODY [CA_FILE]
 * Prints: requests=N seconds=S per_s=R
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static size_t discard(char *p, size_t s, size_t n, void *u)
{
	(void)p;
	(void)u;
	return s * n;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 5 && argc != 6)
		return 2;
	const char *url = argv[1], *body = argv[4], *ca = argc == 6 ? argv[5] : NULL;
	int n = atoi(argv[2]), conc = atoi(argv[3]), started = 0, done = 0, running = 0;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	CURLM *m = curl_multi_init();
	CURL **easy = calloc((size_t)conc, sizeof *easy);
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	h = curl_slist_append(h, "Expect:");
	double t0 = now_s();
	for (int i = 0; i < conc && started < n; i++, started++) {
		easy[i] = curl_easy_init();
		curl_easy_setopt(easy[i], CURLOPT_URL, url);
		curl_easy_setopt(easy[i], CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(easy[i], CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(easy[i], CURLOPT_TCP_NODELAY, 1L);
		if (ca != NULL)
			curl_easy_setopt(easy[i], CURLOPT_CAINFO, ca);
		curl_multi_add_handle(m, easy[i]);
	}
	while (done < n) {
		curl_multi_perform(m, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(m, &left)) != NULL) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			done++;
			CURL *e = msg->easy_handle;
			curl_multi_remove_handle(m, e);
			if (started < n) {
				started++;
				curl_multi_add_handle(m, e); /* same handle: reuses its connection */
			}
		}
		if (done < n)
			curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	double secs = now_s() - t0;
	printf("requests=%d seconds=%.2f per_s=%.1f\n", n, secs, n / secs);
	for (int i = 0; i < conc; i++)
		if (easy[i])
			curl_easy_cleanup(easy[i]);
	curl_slist_free_all(h);
	curl_multi_cleanup(m);
	curl_global_cleanup();
	return 0;
}
