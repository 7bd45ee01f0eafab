/* workers: threads for CPU-bound jobs, completions on the loop (see workers.h). */
#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "dualreg/workers.h"

struct job {
	struct job *next;
	workers_work_fn work;
	workers_done_fn done;
	void *arg;
	bool ran;
};

struct workers {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct job *waiting, **waiting_tail; /* FIFO of jobs not started */
	struct job *finished;                /* LIFO of jobs run, done not yet called */
	size_t nwaiting, outstanding, queue_max;
	bool stopping;
	int efd;
	struct event *ev;
	pthread_t *threads;
	unsigned nthreads;
};

static void *worker_main(void *p)
{
	struct workers *w = p;
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->stopping && w->waiting == NULL)
			pthread_cond_wait(&w->wake, &w->lock);
		if (w->stopping)
			break;
		struct job *j = w->waiting;
		w->waiting = j->next;
		if (w->waiting == NULL)
			w->waiting_tail = &w->waiting;
		w->nwaiting--;
		pthread_mutex_unlock(&w->lock);

		j->work(j->arg);

		pthread_mutex_lock(&w->lock);
		j->ran = true;
		j->next = w->finished;
		w->finished = j;
		uint64_t one = 1;
		/* The counter cannot overflow in practice; a full one still has the loop woken. */
		ssize_t n = write(w->efd, &one, sizeof one);
		(void)n;
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* Calls done for every finished job, in the order they finished. */
static void deliver(struct workers *w)
{
	pthread_mutex_lock(&w->lock);
	struct job *list = w->finished;
	w->finished = NULL;
	pthread_mutex_unlock(&w->lock);
	struct job *ordered = NULL;
	while (list != NULL) {
		struct job *next = list->next;
		list->next = ordered;
		ordered = list;
		list = next;
	}
	while (ordered != NULL) {
		struct job *j = ordered;
		ordered = j->next;
		pthread_mutex_lock(&w->lock);
		w->outstanding--;
		pthread_mutex_unlock(&w->lock);
		j->done(j->arg, false);
		free(j);
	}
}

static void on_wake(evutil_socket_t fd, short what, void *p)
{
	(void)what;
	uint64_t count;
	while (read(fd, &count, sizeof count) > 0)
		;
	deliver(p);
}

struct workers *workers_new(struct event_base *base, unsigned threads, unsigned queue_max)
{
	if (base == NULL || threads < 1 || threads > 64 || queue_max < 1)
		return NULL;
	struct workers *w = calloc(1, sizeof *w);
	if (w == NULL)
		return NULL;
	w->waiting_tail = &w->waiting;
	w->queue_max = queue_max;
	w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	w->threads = calloc(threads, sizeof *w->threads);
	if (w->efd < 0 || w->threads == NULL || pthread_mutex_init(&w->lock, NULL) != 0) {
		if (w->efd >= 0)
			close(w->efd);
		free(w->threads);
		free(w);
		return NULL;
	}
	pthread_cond_init(&w->wake, NULL);
	w->ev = event_new(base, w->efd, EV_READ | EV_PERSIST, on_wake, w);
	if (w->ev == NULL || event_add(w->ev, NULL) != 0) {
		workers_free(w);
		return NULL;
	}
	/* The threads take no signals: the loop's thread handles them. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 0; i < threads; i++) {
		if (pthread_create(&w->threads[i], NULL, worker_main, w) != 0)
			break;
		w->nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (w->nthreads != threads) {
		workers_free(w);
		return NULL;
	}
	return w;
}

int workers_submit(struct workers *w, workers_work_fn work, workers_done_fn done, void *arg)
{
	if (w == NULL || work == NULL || done == NULL)
		return -1;
	struct job *j = calloc(1, sizeof *j);
	if (j == NULL)
		return -1;
	j->work = work;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&w->lock);
	if (w->stopping || w->nwaiting >= w->queue_max) {
		pthread_mutex_unlock(&w->lock);
		free(j);
		return -1;
	}
	*w->waiting_tail = j;
	w->waiting_tail = &j->next;
	w->nwaiting++;
	w->outstanding++;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	return 0;
}

size_t workers_waiting(struct workers *w)
{
	pthread_mutex_lock(&w->lock);
	size_t n = w->nwaiting;
	pthread_mutex_unlock(&w->lock);
	return n;
}

size_t workers_outstanding(struct workers *w)
{
	pthread_mutex_lock(&w->lock);
	size_t n = w->outstanding;
	pthread_mutex_unlock(&w->lock);
	return n;
}

void workers_free(struct workers *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_broadcast(&w->wake);
	pthread_mutex_unlock(&w->lock);
	for (unsigned i = 0; i < w->nthreads; i++)
		pthread_join(w->threads[i], NULL);
	if (w->ev != NULL)
		event_free(w->ev);
	/* Jobs that ran, then those that never will. */
	deliver(w);
	while (w->waiting != NULL) {
		struct job *j = w->waiting;
		w->waiting = j->next;
		j->done(j->arg, true);
		free(j);
	}
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	close(w->efd);
	free(w->threads);
	free(w);
}
