/*
 * idempotency: the Idempotency-Key header on authenticated POST requests, handled around
 * every handler by the last stage of the request pipeline (pipeline.c) and its reply
 * hook (request.h); no handler deals with it.
 *
 * Within 24 hours, per API key: the same Idempotency-Key with the same request (method,
 * path with query, body; compared by SHA-256) gets the first response again (status,
 * content type, body) with "Idempotent-Replayed: true" and the handler does not run; the
 * same key with another request gets 422 idempotency-key-reused; the same key while the
 * first request is still running gets 409 idempotency-key-in-progress. A header that is
 * not 1..IDEM_KEY_MAX printable ASCII characters gets 400 invalid-idempotency-key.
 *
 * Lifecycle (table idempotency_keys): before the handler the key is claimed in one short
 * statement (a row in state 'running'; a 'running' row older than twice the request
 * timeout was abandoned and is taken over, a row older than 24 hours is reused). The
 * handler's reply is stored (state 'done') before it is sent, so only a stored response
 * can ever be replayed; a 5xx reply releases the claim instead, so that a retry runs
 * again, and so does a reply the database refuses to store. A timer purges rows older
 * than 24 hours.
 */
#ifndef DUALREG_API_IDEMPOTENCY_H
#define DUALREG_API_IDEMPOTENCY_H

#include <stdbool.h>
#include <stddef.h>

#include "dualreg/router.h"

struct api_req;

#define IDEM_KEY_MAX 255
#define IDEM_HASH_HEX 65 /* SHA-256 in hex + NUL */
#define IDEM_TTL_SQL "24 hours"

/* What to do with a request, given what the claim statement found. */
enum idem_decision {
	IDEM_RUN,         /* claimed: run the handler */
	IDEM_REPLAY,      /* a stored response for the same request */
	IDEM_REUSED,      /* the key was used for a different request: 422 */
	IDEM_IN_PROGRESS, /* the same key is held by a request still running: 409 */
};

/* True if method + access level take part (authenticated POST routes). */
bool idem_applies(unsigned method, enum router_access access);
/* True if v is a usable Idempotency-Key value: 1..IDEM_KEY_MAX printable ASCII. */
bool idem_key_valid(const char *v);
/* Hex SHA-256 over method, URI (path and query) and body, unambiguously framed. */
void idem_request_hash(const char *method, const char *uri, const void *body, size_t body_len,
		       char out[IDEM_HASH_HEX]);
/*
 * The decision for a claim: claimed (our row was written), or else the stored row's
 * state ("running"/"done", NULL if no row was visible: a concurrent claim) and hash.
 */
enum idem_decision idem_decide(bool claimed, const char *state, const char *stored_hash,
			       const char *our_hash);

/*
 * The stage, before the handler of an authenticated POST (r->key is set). Without the
 * header: next(r) at once. Otherwise validates and claims, then next(r) holding the
 * claim, or replies itself (400, 409, 422, or the replay). While the claim is held, the
 * handler's reply is stored (or, for a 5xx or when storing it fails, the claim is
 * released) before it is sent; if the database does not answer, the reply is still
 * sent and the claim left to expire as abandoned. A request whose deadline passes
 * before its handler replies releases the claim in the background.
 */
void idem_begin(struct api_req *r, void (*next)(struct api_req *r));

/* The purge timer (idem_purger_start) is declared in api.h, for the daemon. */

#endif
