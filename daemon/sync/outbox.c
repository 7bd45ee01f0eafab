/*
 * outbox: the delivery loop (see outbox.h).
 *
 * The dispatcher talks to PostgreSQL in cycles, one statement at a time
 * (dualreg_outbox_cycle): each records the outcomes of the attempts that finished since
 * the last one and, in the same transaction, claims deliveries for the free slots. An
 * attempt that finishes while a cycle runs queues its outcome for the next, which
 * starts as soon as the running one returns; a wake-up (a notification, the poll) that
 * arrives meanwhile is remembered the same way. So a burst costs one round trip and one
 * commit per batch of attempts, and a slot is refilled one round trip after its
 * attempt ends. Outcomes are recorded only by the lease holder. If this daemon dies
 * mid-attempt the lease runs out (attempt timeout + 5 s) and any daemon claims the
 * delivery again: at-least-once, with duplicates only for attempts that were in flight.
 *
 * The webhook-id is the event's id ("evt_<n>"), the same on every attempt and replay;
 * webhook-timestamp and the signatures are made fresh for each attempt. The secrets
 * are opened with the installed keyring (secret_box.h) just before signing; one that
 * does not open makes the attempt fail and be retried like any other failure.
 */
#include "dualreg/outbox.h"

#include <cJSON.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dualreg/audit.h"
#include "dualreg/db.h"
#include "dualreg/httpc.h"
#include "dualreg/listen.h"
#include "dualreg/log.h"
#include "dualreg/secret_box.h"
#include "dualreg/sign.h"
#include "dualreg/xalloc.h"

#define RESPONSE_KEEP 2048 /* bytes of a response body kept for diagnosis */
#define GATHER_US 2000     /* longest an outcome waits for others to share its cycle */
#define RESPONSE_NOT_KEPT "(response from a non-public address not kept)"

struct outbox {
	struct event_base *base;
	struct db_pool *db;
	struct httpc *http;
	struct outbox_opts opts;
	char *ca_file;
	char owner[96];
	unsigned in_flight;   /* attempts sending or being recorded */
	unsigned n_queued;    /* of those, finished with their outcome in queued */
	unsigned n_recording; /* of those, finished with their outcome in the running cycle */
	bool wake_again, draining;
	bool starting;        /* sending the rows of a cycle: a new cycle waits */
	struct db_op *cycle_op;
	bool cycle_claims;    /* the running cycle claims (it may be withdrawn on drain) */
	struct event ev_poll;
	struct event ev_gather; /* a cycle waits a moment for attempts about to finish */
	void (*drained)(void *);
	void *drained_arg;
	struct outbox_stats stats;
	struct attempt *attempts; /* in flight, for cleanup */
	struct db_listener *listener;
	struct dbl_waiter waiter;
	/* outcomes waiting to be recorded, and the batch the running cycle records */
	cJSON *queued;
	struct attempt *queued_attempts, *recording_attempts;
	struct audit *audit; /* records each delivery (outbox_set_audit); may be NULL */
};

struct attempt {
	struct outbox *o;
	struct attempt *batch_next; /* in queued_attempts or recording_attempts */
	char id[24];
	char event_id[24];
	int attempt_no;
	struct httpc_xfer *xfer;
	char *body;
	struct attempt *next, *prev;
};

static void cycle(struct outbox *o);
static void cycle_soon(struct outbox *o);

static void attempt_unlink(struct attempt *a)
{
	struct outbox *o = a->o;
	if (a->prev)
		a->prev->next = a->next;
	else
		o->attempts = a->next;
	if (a->next)
		a->next->prev = a->prev;
	free(a->body);
	free(a);
	o->in_flight--;
	if (o->draining && o->in_flight == 0 && o->drained != NULL) {
		void (*cb)(void *) = o->drained;
		o->drained = NULL;
		cb(o->drained_arg);
	}
}

/* Keeps printable ASCII of a response for diagnosis (the database wants valid text). */
static char *printable(const char *body, size_t len)
{
	if (len > RESPONSE_KEEP)
		len = RESPONSE_KEEP;
	char *out = xmalloc(len + 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)body[i];
		out[i] = (c >= 0x20 && c < 0x7f) || c == '\n' || c == '\t' ? (char)c : '?';
	}
	out[len] = '\0';
	return out;
}

/* Seconds to wait before the next attempt, or a negative value when there is none. */
static double next_delay(const struct outbox *o, int attempt_no, long retry_after_s)
{
	if (retry_after_s >= 0)
		return (double)(retry_after_s < (long)o->opts.max_retry_after_s ? retry_after_s
									 : (long)o->opts.max_retry_after_s);
	if (attempt_no < 1 || (unsigned)attempt_no > o->opts.schedule_len)
		return -1;
	double base = o->opts.schedule_ms[attempt_no - 1] / 1000.0;
	double jitter = 0.8 + 0.4 * ((double)random() / (double)RAND_MAX);
	return base * jitter;
}

static void sent(const struct httpc_result *res, void *arg)
{
	struct attempt *a = arg;
	struct outbox *o = a->o;
	a->xfer = NULL;
	const char *outcome;
	double delay = -1;
	char error[300];
	error[0] = '\0';
	if (res->ok && res->status >= 200 && res->status < 300) {
		outcome = "delivered";
		o->stats.delivered++;
		audit_delivered(o->audit, a->id); /* the pupil's data reached the subscription */
	} else if (res->ok && res->status == 410) {
		outcome = "gone";
		snprintf(error, sizeof error, "410 Gone: subscription disabled");
		o->stats.failed++;
	} else {
		long ra = res->ok && (res->status == 429 || res->status == 503) ? res->retry_after_s : -1;
		delay = next_delay(o, a->attempt_no, ra);
		outcome = "retry";
		if (res->ok)
			snprintf(error, sizeof error, "HTTP %ld", res->status);
		else
			snprintf(error, sizeof error, "%s", res->error);
		if (delay < 0)
			o->stats.failed++;
		else
			o->stats.retried++;
	}
	log_debug("delivery attempt",
		  "delivery=%s event=%s attempt=%d status=%ld outcome=%s err=\"%s\"", a->id,
		  a->event_id, a->attempt_no, res->status, outcome, error);
	cJSON *rec = cJSON_CreateObject();
	cJSON_AddStringToObject(rec, "id", a->id);
	cJSON_AddStringToObject(rec, "outcome", outcome);
	if (res->status > 0)
		cJSON_AddNumberToObject(rec, "status", (double)res->status);
	if (error[0])
		cJSON_AddStringToObject(rec, "error", error);
	/* The school sees last_response: an answer from a non-public address (reachable
	 * only with [webhooks] allow_private) is not kept, so it cannot read internal
	 * services through its subscription. */
	if (res->body_len > 0 && res->nonpublic) {
		cJSON_AddStringToObject(rec, "response", RESPONSE_NOT_KEPT);
	} else if (res->body_len > 0) {
		char *kept = printable(res->body, res->body_len);
		cJSON_AddStringToObject(rec, "response", kept);
		free(kept);
	}
	if (delay >= 0)
		cJSON_AddNumberToObject(rec, "delay", delay);
	if (o->queued == NULL)
		o->queued = cJSON_CreateArray();
	cJSON_AddItemToArray(o->queued, rec);
	a->batch_next = o->queued_attempts;
	o->queued_attempts = a;
	o->n_queued++;
	cycle_soon(o);
}

/* Starts one signed POST for a claimed row. */
static void send_row(struct outbox *o, PGresult *res, int row)
{
	struct attempt *a = xcalloc(1, sizeof *a);
	a->o = o;
	snprintf(a->id, sizeof a->id, "%s", PQgetvalue(res, row, 0));
	snprintf(a->event_id, sizeof a->event_id, "%s", PQgetvalue(res, row, 1));
	a->attempt_no = atoi(PQgetvalue(res, row, 2));
	a->next = o->attempts;
	if (o->attempts)
		o->attempts->prev = a;
	o->attempts = a;
	o->in_flight++;
	o->stats.attempts++;

	/* Body: {"type", "timestamp" (when the event happened), "data"}; data is already
	 * JSON text from PostgreSQL and is embedded as it is. */
	const char *type = PQgetvalue(res, row, 6);
	const char *occurred = PQgetvalue(res, row, 7);
	const char *data = PQgetvalue(res, row, 8);
	a->body = xasprintf("{\"type\":\"%s\",\"timestamp\":\"%s\",\"data\":%s}", type, occurred,
			    data);
	size_t body_len = strlen(a->body);

	char msg_id[32], ts[24], sig1[SIGN_SIG_MAX], sig2[SIGN_SIG_MAX];
	snprintf(msg_id, sizeof msg_id, "evt_%s", a->event_id);
	long long now = (long long)time(NULL);
	snprintf(ts, sizeof ts, "%lld", now);
	char aad[SECRET_BOX_AAD_MAX], why[200] = "";
	secret_box_aad_subscription(PQgetvalue(res, row, 9), aad);
	const struct secret_box *box = secret_box_installed();
	bool has_prev = !PQgetisnull(res, row, 5);
	char *secret = secret_box_open(box, PQgetvalue(res, row, 4), aad, why, sizeof why);
	char *prev = has_prev && secret != NULL
			 ? secret_box_open(box, PQgetvalue(res, row, 5), aad, why, sizeof why)
			 : NULL;
	bool signed_ok = secret != NULL && (!has_prev || prev != NULL) &&
			 sign_webhook(secret, msg_id, now, a->body, body_len, sig1) == 0 &&
			 (!has_prev || sign_webhook(prev, msg_id, now, a->body, body_len, sig2) == 0);
	secret_box_value_free(secret);
	secret_box_value_free(prev);
	if (!signed_ok) {
		struct httpc_result bad = {.retry_after_s = -1, .body = ""};
		if (why[0]) {
			snprintf(bad.error, sizeof bad.error, "cannot read the subscription secret: %s",
				 why);
			log_error("webhook secret not readable", "delivery=%s subscription=%s err=\"%s\"",
				  a->id, PQgetvalue(res, row, 9), why);
		} else {
			snprintf(bad.error, sizeof bad.error, "the subscription secret is malformed");
		}
		sent(&bad, a);
		return;
	}
	char h_id[64], h_ts[48], h_sig[2 * SIGN_SIG_MAX + 32];
	snprintf(h_id, sizeof h_id, "webhook-id: %s", msg_id);
	snprintf(h_ts, sizeof h_ts, "webhook-timestamp: %s", ts);
	snprintf(h_sig, sizeof h_sig, "webhook-signature: %s%s%s", sig1, has_prev ? " " : "",
		 has_prev ? sig2 : "");
	const char *headers[] = {"Content-Type: application/json", h_id, h_ts, h_sig, NULL};
	struct httpc_request req = {
	    .method = "POST",
	    .url = PQgetvalue(res, row, 3),
	    .headers = headers,
	    .body = a->body,
	    .body_len = body_len,
	    .timeout_ms = o->opts.timeout_ms,
	    .connect_timeout_ms = o->opts.timeout_ms < 10000 ? o->opts.timeout_ms : 10000,
	    .max_response = RESPONSE_KEEP,
	    .allow_http = o->opts.allow_http,
	    .allow_private = o->opts.allow_private,
	    .ca_file = o->ca_file,
	};
	a->xfer = httpc_start(o->http, &req, sent, a);
}

static void cycled(PGresult *res, const char *err, void *arg)
{
	struct outbox *o = arg;
	o->cycle_op = NULL;
	if (res == NULL && o->recording_attempts != NULL)
		log_warn("delivery outcomes not recorded; their leases will expire and they are "
			 "retried",
			 "err=\"%s\"", err);
	else if (res == NULL)
		log_debug("outbox claim failed", "err=\"%s\"", err);
	else if (PQresultStatus(res) != PGRES_TUPLES_OK)
		log_error("outbox cycle failed", "err=\"%s\"", PQresultErrorMessage(res));
	/* Rows first: finishing the recorded attempts may end a drain, which must then see
	 * the attempts this cycle claimed. */
	o->starting = true;
	if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK)
		for (int i = 0; i < PQntuples(res); i++)
			send_row(o, res, i);
	o->starting = false;
	struct attempt *a = o->recording_attempts;
	o->recording_attempts = NULL;
	o->n_recording = 0;
	while (a != NULL) {
		struct attempt *next = a->batch_next;
		attempt_unlink(a);
		a = next;
	}
	if (o->wake_again) {
		o->wake_again = false;
		cycle(o);
	} else if (o->queued != NULL) {
		cycle_soon(o);
	}
}

static void gather_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	cycle(arg);
}

/*
 * Starts a cycle for the queued outcomes once no other attempt is still sending, or
 * GATHER_US after the first of them, whichever comes first: the attempts of one burst
 * finish within a moment of each other, and one cycle for all of them costs little more
 * than one for a few, where a cycle per few would leave the others' slots idle longer.
 */
static void cycle_soon(struct outbox *o)
{
	if (o->cycle_op != NULL || o->starting)
		return; /* the queued outcomes are seen to when it returns */
	unsigned sending = o->in_flight - o->n_queued - o->n_recording;
	if (sending == 0 || o->draining) {
		cycle(o);
		return;
	}
	if (!evtimer_pending(&o->ev_gather, NULL)) {
		struct timeval tv = {0, GATHER_US};
		evtimer_add(&o->ev_gather, &tv);
	}
}

/*
 * Starts a cycle: records the queued outcomes and claims for the free slots (none
 * while draining or while the access audit is full). One at a time; asked while one
 * runs, it runs again when that one returns.
 */
static void cycle(struct outbox *o)
{
	if (o->cycle_op != NULL || o->starting) {
		o->wake_again = true;
		return;
	}
	evtimer_del(&o->ev_gather);
	/* The queued outcomes are recorded before the claim, so their slots are free. */
	unsigned busy = o->in_flight - o->n_queued;
	unsigned limit = busy < o->opts.max_in_flight ? o->opts.max_in_flight - busy : 0;
	if (o->draining || audit_full(o->audit))
		limit = 0; /* audit full: nothing more is sent until it is written; the poll retries */
	if (limit == 0 && o->queued == NULL)
		return; /* a finishing attempt starts the next cycle */
	char *json = o->queued != NULL ? cJSON_PrintUnformatted(o->queued) : NULL;
	cJSON_Delete(o->queued);
	o->queued = NULL;
	o->recording_attempts = o->queued_attempts;
	o->queued_attempts = NULL;
	o->n_recording = o->n_queued;
	o->n_queued = 0;
	char owner_limit[16], per_sub[16], lease[16];
	snprintf(owner_limit, sizeof owner_limit, "%u", limit);
	snprintf(per_sub, sizeof per_sub, "%u", o->opts.per_subscription);
	/* Longer than an attempt can take (its timeout) plus time to record the outcome. */
	snprintf(lease, sizeof lease, "%u", o->opts.timeout_ms / 1000 + 5);
	const char *params[] = {o->owner, json ? json : "[]", owner_limit, per_sub, lease};
	o->cycle_claims = limit > 0;
	o->cycle_op = dbp_query(o->db,
				"SELECT id, event_id, attempts, url, secret, previous_secret, type, "
				"to_char(occurred_at AT TIME ZONE 'UTC', "
				"'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), data, subscription_id "
				"FROM dualreg_outbox_cycle($1, $2::jsonb, $3::integer, $4::integer, "
				"$5::integer)",
				5, params, cycled, o);
	free(json);
}

static void poll_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	cycle(arg);
}

static void set_opts(struct outbox *o, const struct outbox_opts *opts)
{
	free(o->ca_file);
	o->opts = *opts;
	o->ca_file = opts->ca_file ? xstrdup(opts->ca_file) : NULL;
	o->opts.ca_file = o->ca_file;
	if (o->opts.max_in_flight == 0)
		o->opts.max_in_flight = 1;
	if (o->opts.per_subscription == 0)
		o->opts.per_subscription = 1;
}

struct outbox *outbox_new(struct event_base *base, struct db_pool *db, struct httpc *http,
			  const struct outbox_opts *opts)
{
	struct outbox *o = xcalloc(1, sizeof *o);
	o->base = base;
	o->db = db;
	o->http = http;
	set_opts(o, opts);
	char host[64] = "host";
	gethostname(host, sizeof host - 1);
	snprintf(o->owner, sizeof o->owner, "%s:%d:%lx", host, (int)getpid(), (unsigned long)random());
	event_assign(&o->ev_poll, base, -1, EV_PERSIST, poll_cb, o);
	evtimer_assign(&o->ev_gather, base, gather_cb, o);
	struct timeval tv = {o->opts.poll_ms / 1000, (o->opts.poll_ms % 1000) * 1000};
	event_add(&o->ev_poll, &tv);
	return o;
}

void outbox_configure(struct outbox *o, const struct outbox_opts *opts)
{
	set_opts(o, opts);
	struct timeval tv = {o->opts.poll_ms / 1000, (o->opts.poll_ms % 1000) * 1000};
	event_add(&o->ev_poll, &tv);
}

void outbox_set_audit(struct outbox *o, struct audit *a)
{
	o->audit = a;
}

void outbox_wake(struct outbox *o)
{
	cycle(o);
}

static void listener_woke(struct dbl_waiter *w)
{
	struct outbox *o = (struct outbox *)((char *)w - offsetof(struct outbox, waiter));
	if (o->draining)
		return;
	/* Waiters are one-shot: register again before the claim, so nothing is missed. */
	dbl_wait(o->listener, &o->waiter, dbl_generation(o->listener));
	cycle(o);
}

void outbox_listen(struct outbox *o, struct db_listener *l)
{
	o->listener = l;
	o->waiter.wake = listener_woke;
	dbl_wait(l, &o->waiter, dbl_generation(l));
}

void outbox_drain(struct outbox *o, void (*done)(void *), void *arg)
{
	o->draining = true;
	if (o->listener != NULL)
		dbl_cancel(o->listener, &o->waiter);
	event_del(&o->ev_poll);
	evtimer_del(&o->ev_gather);
	/* A cycle that only claims is withdrawn (its transaction does not commit); one that
	 * records outcomes runs to the end, and what it claimed is sent and recorded. */
	if (o->cycle_op != NULL && o->cycle_claims && o->recording_attempts == NULL) {
		db_op_cancel(o->cycle_op);
		o->cycle_op = NULL;
		o->wake_again = false;
		if (o->queued != NULL)
			cycle(o);
	}
	if (o->in_flight == 0) {
		done(arg);
		return;
	}
	o->drained = done;
	o->drained_arg = arg;
}

void outbox_stats(const struct outbox *o, struct outbox_stats *out)
{
	*out = o->stats;
	out->in_flight = o->in_flight;
}

void outbox_free(struct outbox *o)
{
	if (o == NULL)
		return;
	if (o->listener != NULL)
		dbl_cancel(o->listener, &o->waiter);
	event_del(&o->ev_poll);
	evtimer_del(&o->ev_gather);
	if (o->cycle_op != NULL)
		db_op_cancel(o->cycle_op);
	o->drained = NULL;
	cJSON_Delete(o->queued);
	while (o->attempts != NULL) {
		struct attempt *a = o->attempts;
		if (a->xfer != NULL)
			httpc_cancel(a->xfer);
		attempt_unlink(a);
	}
	free(o->ca_file);
	free(o);
}
