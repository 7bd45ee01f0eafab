/*
 * th_server: an HTTP server on 127.0.0.1 (an ephemeral port) running its own event
 * loop in a thread of the test process, standing in for a school's MIS: a webhook
 * sink or a feed. Handlers run on that thread; share data with the test under a lock.
 * No libevent call crosses threads: the loop polls a stop flag every 20 ms.
 */
#ifndef DUALREG_TESTS_TH_SERVER_H
#define DUALREG_TESTS_TH_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct evhttp_request;
struct event_base;
struct bufferevent;

struct th_server {
	void (*handler)(struct evhttp_request *req, void *arg);
	/* optional: makes each connection's bufferevent (e.g. TLS); NULL for plain HTTP */
	struct bufferevent *(*bevcb)(struct event_base *base, void *arg);
	unsigned port; /* set once started */
	/* private */
	pthread_t thread;
	atomic_bool stop;
	atomic_int bound;
};

/* Starts the server (handler and bevcb set by the caller); returns once it listens. */
void th_server_start(struct th_server *s);
/* Stops the loop and joins the thread. */
void th_server_stop(struct th_server *s);

#endif
