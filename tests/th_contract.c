/* th_contract: answers and webhook bodies checked against the contract (th_contract.h). */
#include "th_contract.h"

#include <check.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"

/* One request and its answer over a fresh connection; the reply is NUL-terminated. */
static void contract_ask(const char *line, char *reply, size_t len)
{
	const char *path = th_env("DUALREG_TEST_CONTRACT");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	ck_assert_uint_lt(strlen(path), sizeof sa.sun_path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	struct timeval tv = {.tv_sec = 30};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0,
		      "contract checker at %s: %s", path, strerror(errno));
	size_t n = strlen(line);
	for (size_t off = 0; off < n;) {
		ssize_t w = write(fd, line + off, n - off);
		ck_assert_msg(w > 0 || errno == EINTR, "contract checker: %s", strerror(errno));
		if (w > 0)
			off += (size_t)w;
	}
	size_t used = 0;
	for (;;) {
		ck_assert_msg(used + 1 < len, "contract checker: reply too long");
		ssize_t r = read(fd, reply + used, len - used - 1);
		if (r < 0 && errno == EINTR)
			continue;
		ck_assert_msg(r >= 0, "contract checker: %s", strerror(errno));
		if (r == 0)
			break;
		used += (size_t)r;
	}
	reply[used] = '\0';
	close(fd);
}

static void contract_check(cJSON *req, const char *body, size_t body_len, const char *what)
{
	/* Base64, so that the checker sees the exact bytes (a body that is not UTF-8 too). */
	char *b64 = malloc(4 * ((body_len + 2) / 3) + 1);
	ck_assert_ptr_nonnull(b64);
	EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)body, (int)body_len);
	cJSON_AddStringToObject(req, "body_b64", b64);
	free(b64);
	char *text = cJSON_PrintUnformatted(req);
	size_t tl = strlen(text);
	char *line = malloc(tl + 2);
	memcpy(line, text, tl);
	memcpy(line + tl, "\n", 2);
	cJSON_free(text);
	cJSON_Delete(req);

	static char reply[65536];
	contract_ask(line, reply, sizeof reply);
	free(line);
	cJSON *ans = cJSON_Parse(reply);
	const cJSON *errors = cJSON_GetObjectItemCaseSensitive(ans, "errors");
	ck_assert_msg(cJSON_IsArray(errors), "contract checker answered: %s", reply);
	if (cJSON_GetArraySize(errors) > 0) {
		char msg[4096];
		size_t off = 0;
		const cJSON *e;
		cJSON_ArrayForEach(e, errors)
		{
			int w = snprintf(msg + off, sizeof msg - off, "\n  %s", e->valuestring);
			if (w < 0 || (size_t)w >= sizeof msg - off)
				break;
			off += (size_t)w;
		}
		cJSON_Delete(ans);
		/* DUALREG_TEST_CONTRACT_REPORT=FILE lists every violation of a run in FILE
		 * instead of failing at the first: for fixing many at once. */
		const char *report = getenv("DUALREG_TEST_CONTRACT_REPORT");
		FILE *f = report != NULL ? fopen(report, "a") : NULL;
		if (f != NULL) {
			fprintf(f, "%s (%s):%s\n", what, tcase_name(), msg);
			fclose(f);
			return;
		}
		ck_abort_msg("%s breaks api/openapi.yaml:%s", what, msg);
	}
	cJSON_Delete(ans);
}

void th_contract_response(const char *method, const char *target, long status,
			  const cJSON *headers, const char *body, size_t body_len)
{
	cJSON *req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "kind", "response");
	cJSON_AddStringToObject(req, "method", method);
	cJSON_AddStringToObject(req, "target", target);
	cJSON_AddNumberToObject(req, "status", (double)status);
	cJSON_AddItemToObject(req, "headers", cJSON_Duplicate(headers, true));
	char what[600];
	snprintf(what, sizeof what, "the answer to %s %.400s", method, target);
	contract_check(req, body, body_len, what);
}

void th_contract_webhook(const cJSON *headers, const char *body, size_t body_len)
{
	cJSON *req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "kind", "webhook");
	cJSON_AddItemToObject(req, "headers", cJSON_Duplicate(headers, true));
	contract_check(req, body, body_len, "a webhook body");
}
