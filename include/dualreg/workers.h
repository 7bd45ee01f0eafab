/*
 * workers: a small pool of threads for CPU-bound work that must not run on the event
 * loop (password hashing, staff_auth.h), with each job's completion delivered back on
 * the loop's thread. Owns the threads, the bounded queue of jobs waiting for one, and
 * the hand-back: a finished job is put on a list and an eventfd watched by the loop is
 * signalled; the loop's callback takes the list and calls each job's done function.
 *
 * Use: work(arg) runs on a worker thread and must touch only what arg owns (no libevent,
 * no libpq connection of the loop, no globals without locks); done(arg, cancelled) runs
 * later on the loop's thread, exactly once per accepted job, and frees arg. Jobs start
 * in the order they were submitted.
 *
 * Every function but the job functions is called on the loop's thread.
 */
#ifndef DUALREG_WORKERS_H
#define DUALREG_WORKERS_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct workers;

#define WORKERS_DEFAULT_THREADS 2
#define WORKERS_DEFAULT_QUEUE 64

typedef void (*workers_work_fn)(void *arg);
/* cancelled: the job never ran (the pool was freed before a thread took it). */
typedef void (*workers_done_fn)(void *arg, bool cancelled);

/*
 * A pool of threads (1 to 64) on base, holding at most queue_max (>= 1) jobs that wait
 * for a thread. NULL if a thread, the eventfd or memory cannot be had.
 */
struct workers *workers_new(struct event_base *base, unsigned threads, unsigned queue_max);

/*
 * Queues a job. 0, or -1 if queue_max jobs are already waiting (the caller answers as
 * busy: 503) or the pool is being freed; then neither function is ever called.
 */
int workers_submit(struct workers *w, workers_work_fn work, workers_done_fn done, void *arg)
    __attribute__((warn_unused_result));

/* Jobs waiting for a thread (not yet started). */
size_t workers_waiting(struct workers *w);
/* Jobs accepted whose done function has not been called yet. */
size_t workers_outstanding(struct workers *w);

/*
 * Stops the pool: jobs running finish, jobs still waiting do not start; then, on this
 * thread, done is called for every job whose done was not called yet (cancelled for
 * those that never ran), the threads are joined and everything is freed. Not from a
 * done function. Accepts NULL.
 */
void workers_free(struct workers *w);

#endif
