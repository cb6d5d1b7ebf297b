/*
 * Group commit of pushes (group.h): one committer thread and one applier
 * thread per process, fed by the request threads under one mutex.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "events.h"
#include "group.h"
#include "log.h"
#include "mem.h"
#include "prog.h"

/* A push waiting for its batch. */
struct waiter {
	struct event_store	*s;
	void			(*done)(void *);
	void			*arg;
	struct waiter		*next;
};

static struct {
	pthread_mutex_t	 mu;
	pthread_cond_t	 queued;	/* the committer has work */
	pthread_cond_t	 due;		/* the applier has work */
	struct waiter	*head, **tail;
	long long	 ids[GROUP_APPLY_QUEUE];	/* a ring */
	size_t		 first, nids;
	int		 busy_ms;
	int		 running;
} G = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.queued = PTHREAD_COND_INITIALIZER,
	.due = PTHREAD_COND_INITIALIZER,
};

/*
 * Every push in w[0..n) fails with err (the connection could not be
 * had): as a failed transaction would, nothing stored.
 */
static void
fail_all(struct waiter **w, size_t n, enum da_err rc,
    const struct da_error *err)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		w[i]->s->rc = rc;
		w[i]->s->err = *err;
		w[i]->s->busy = 0;
		w[i]->s->stored = w[i]->s->applied = 0;
		w[i]->s->id = 0;
	}
}

static void *
committer(void *arg)
{
	struct waiter		*w[GROUP_BATCH_MAX];
	struct event_store	*v[GROUP_BATCH_MAX];
	struct da_error		 err;
	struct db		*db = NULL;
	enum da_err		 rc;
	size_t			 i, n;

	for (;;) {
		pthread_mutex_lock(&G.mu);
		while (G.head == NULL)
			pthread_cond_wait(&G.queued, &G.mu);
		for (n = 0; n < GROUP_BATCH_MAX && G.head != NULL; n++) {
			w[n] = G.head;
			v[n] = G.head->s;
			G.head = G.head->next;
		}
		if (G.head == NULL)
			G.tail = &G.head;
		pthread_mutex_unlock(&G.mu);

		da_error_clear(&err);
		if ((rc = prog_db_fresh(&db, G.busy_ms, NULL, &err)) != DA_OK)
			fail_all(w, n, rc, &err);
		else
			(void)events_store_batch(db, v, n);
		if (n > 1)
			log_msg(LOG_DEBUG, "%zu pushes in one commit", n);
		/* Only now may they be answered. */
		for (i = 0; i < n; i++) {
			w[i]->done(w[i]->arg);
			free(w[i]);
		}
	}
	return NULL;
}

static void *
applier(void *arg)
{
	struct da_error		 err;
	struct db		*db = NULL;
	long long		 id;

	for (;;) {
		pthread_mutex_lock(&G.mu);
		while (G.nids == 0)
			pthread_cond_wait(&G.due, &G.mu);
		id = G.ids[G.first];
		G.first = (G.first + 1) % GROUP_APPLY_QUEUE;
		G.nids--;
		pthread_mutex_unlock(&G.mu);

		da_error_clear(&err);
		if (prog_db_fresh(&db, G.busy_ms, NULL, &err) != DA_OK)
			log_msg(LOG_ERR, "applying events: %s", err.msg);
		else
			group_apply_now(db, id);
	}
	return NULL;
}

void
group_apply_now(struct db *db, long long id)
{
	struct events_run	 run;
	struct da_error		 err;

	da_error_clear(&err);
	if (events_apply_pending(db, id, EVENT_APPLY_BUDGET_MS, 0, &run,
	    &err) != DA_OK)
		log_msg(LOG_ERR, "applying events: %s", err.msg);
	else if (run.failed > 0)
		log_msg(LOG_WARN, "%d event(s) failed, %lld pending: %s",
		    run.failed, run.pending, run.first_error.msg);
}

/* The two threads run for the life of the process: detached. */
static int
spawn(void *(*fn)(void *))
{
	pthread_attr_t	 attr;
	pthread_t	 t;
	sigset_t	 all, old;
	int		 rc;

	/* Signals are for the thread that serves (req_serve_threads). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 1024 * 1024);
	rc = pthread_create(&t, &attr, fn, NULL);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

enum da_err
group_start(int busy_ms, struct da_error *err)
{
	if (G.running)
		return DA_OK;
	G.busy_ms = busy_ms;
	G.tail = &G.head;
	if (spawn(committer) != 0)
		return DA_ERROR(err, DA_EBUSY, "cannot start the "
		    "committer thread");
	if (spawn(applier) != 0)
		/* Not without it: the committer idles, nobody feeds it. */
		return DA_ERROR(err, DA_EBUSY, "cannot start the "
		    "applier thread");
	G.running = 1;
	return DA_OK;
}

int
group_running(void)
{
	return G.running;
}

void
group_submit(struct event_store *s, void (*done)(void *), void *arg)
{
	struct waiter	*w;

	w = xcalloc(1, sizeof(*w));
	w->s = s;
	w->done = done;
	w->arg = arg;
	pthread_mutex_lock(&G.mu);
	*G.tail = w;
	G.tail = &w->next;
	pthread_cond_signal(&G.queued);
	pthread_mutex_unlock(&G.mu);
}

void
group_apply_later(long long id)
{
	pthread_mutex_lock(&G.mu);
	if (G.nids == GROUP_APPLY_QUEUE) {
		pthread_mutex_unlock(&G.mu);
		log_msg(LOG_WARN, "event %lld: the apply queue is full; it "
		    "is applied when its claim runs out", id);
		return;
	}
	G.ids[(G.first + G.nids) % GROUP_APPLY_QUEUE] = id;
	G.nids++;
	pthread_cond_signal(&G.due);
	pthread_mutex_unlock(&G.mu);
}
