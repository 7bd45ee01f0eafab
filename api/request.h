/*
 * request: a routed request as the api/ modules see it, private to api/. Owns struct
 * req: the struct api_req handlers get (api.h), followed by what each module keeps for
 * itself while the request lives: the lifecycle's deadline, query string and kept reply
 * (request.c), the pipeline's position (pipeline.c), the statement continuations
 * (txn.c), the key lookup (auth.c), the Idempotency-Key claim (idempotency.c) and the
 * session lookup (web_session.c).
 *
 * Who uses what: the listener (server.c) starts requests and ends them at shutdown;
 * the stages and txn.c keep their state here and answer through the api_reply_*
 * functions of api.h. Nothing here calls back into server.c: what the lifecycle needs
 * from the listener (putting a reply on the wire, learning that a request ended) it
 * gets through struct req_host.
 */
#ifndef DUALREG_API_REQUEST_H
#define DUALREG_API_REQUEST_H

#include <event2/event_struct.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#include "dualreg/api.h"
#include "dualreg/auth_token.h"

struct idem_claim;
struct web_session;
struct req_reply_hook;

struct req {
	struct api_req pub; /* first: a struct api_req * of ours is a struct req * */
	struct req_host *host;
	TAILQ_ENTRY(req) link;

	/* request.c */
	struct event ev_deadline;
	struct timespec started;
	bool timed_out;
	struct router_query query; /* parsed once, read by api_query_param */
	/* the handler's reply, kept while reply_hook records it */
	bool reply_kept;
	int kept_status;
	char *kept_ctype, *kept_body;
	const struct req_reply_hook *reply_hook; /* NULL, or set by a stage */

	/* pipeline.c: the next stage to consider */
	size_t stage;

	/* txn.c: continuations of the statement in flight */
	api_result_fn step, after;
	cJSON *abort_problem;

	/* auth.c: the client address and the key lookup in flight */
	unsigned char auth_client[16];
	void (*auth_next)(struct api_req *r);
	void (*auth_prev_abort)(struct api_req *r);
	char auth_hash[AUTH_HASH_HEX];
	uint64_t auth_gen;
	bool auth_pending;  /* counted among its address's lookups in flight */
	bool auth_inflight; /* counted among the lookups in flight of auth_hash */
	bool auth_parked;   /* waiting for its address's lookups in flight to finish */
	TAILQ_ENTRY(req) auth_park;

	/* idempotency.c */
	struct idem_claim *idem;

	/* web_session.c: the session lookup in flight */
	void (*web_next)(struct api_req *r);
	void (*web_done)(struct api_req *r, const struct web_session *s);
	char web_token[44]; /* WEB_TOKEN_LEN + 1 */
	char web_hash[AUTH_HASH_HEX];
};

static inline struct req *req_of(struct api_req *r)
{
	return (struct req *)r;
}

/* The requests in progress on one listener, and what they need from it. The listener
 * fills in env, send and ended; request.c keeps the list. */
struct req_host {
	const struct api_env *env;
	TAILQ_HEAD(, req) inflight;
	unsigned ninflight;
	/* Puts a reply on the wire (body NULL: none). */
	void (*send)(struct evhttp_request *req, int status, const char *ctype, const char *body,
		     size_t len);
	/* A request ended: it has replied and is no longer counted in ninflight. */
	void (*ended)(struct req_host *host);
};

/*
 * A stage that must see the handler's reply before it is sent sets reply_hook
 * (idempotency.c). While holds(r), the handler's reply is kept in the request and
 * record(r, ...) runs instead of sending it; record ends in req_send_kept(r). If the
 * deadline passes before the handler replies, abandon(r) runs and the 503 is sent.
 * release(r) runs when the request ends, whatever happened.
 */
struct req_reply_hook {
	bool (*holds)(struct api_req *r);
	void (*record)(struct api_req *r, int status, const char *ctype, const char *body);
	void (*abandon)(struct api_req *r);
	void (*release)(struct api_req *r);
};

/*
 * Starts a routed request on host: its slot, its deadline, its query string. Returns
 * NULL if the query string could not be read, which has been answered 400 already.
 */
struct api_req *req_start(struct req_host *host, struct evhttp_request *req,
			  const struct router_route *route, const struct router_params *params,
			  unsigned method);
/* Sends the handler's reply kept for reply_hook, and ends the request. */
void req_send_kept(struct api_req *r);
/* Shutdown: ends every request in progress without a reply, undoing its work (evhttp
 * frees the requests themselves). */
void req_abandon_all(struct req_host *host);

#endif
