#ifndef DINGAUTH_GROUP_H
#define DINGAUTH_GROUP_H

#include "err.h"
#include "events.h"

/*
 * Group commit for callback.fcgi (docs/architecture.md, 3.3). The
 * request threads of one process verify and decrypt their pushes in
 * parallel and hand what must be written, with the request itself
 * (req_detach), to one committer thread, which stores every push
 * waiting at that moment in one transaction (events_store_batch: a
 * savepoint per push) with one fsync, and only then answers each: no
 * push is acknowledged before the commit that holds it has returned, and
 * under many concurrent pushes one fsync covers many of them instead of
 * one each.
 *
 * Events that need DingTalk to be applied (a hire, a change) go to one
 * applier thread with a connection of its own, after the answers:
 * events_apply_pending on each, as a single-threaded callback does
 * after its answer, so the committer never waits for DingTalk.
 */

#define GROUP_BATCH_MAX		64	/* pushes in one transaction */
#define GROUP_APPLY_QUEUE	4096	/* events waiting for the applier */

/*
 * Start the committer and the applier (once per process), each opening
 * the database (prog_db_fresh) with busy_ms as its budget when it first
 * works. DA_OK, or why the threads could not start (then group_store
 * falls back to the caller's own connection: group_running() is 0).
 */
enum da_err	 group_start(int busy_ms, struct da_error *err);
int		 group_running(void);

/*
 * Store s (its inputs filled as for events_store_batch) with the next
 * batch, and return at once; once that batch's transaction has committed
 * or failed, the committer fills s's outcome and calls done(arg), which
 * answers the push (req_complete). The caller's thread is free for the
 * next request meanwhile, so a process needs no more threads than it
 * has pushes to verify, however many wait for a commit.
 */
void		 group_submit(struct event_store *s, void (*done)(void *),
		    void *arg);

/*
 * Have the applier apply event id (stored pending and claimed by this
 * process) and then other due events, for at most EVENT_APPLY_BUDGET_MS
 * each time. A full queue drops id with a log line: the claim runs out
 * and the worker or another push applies it then.
 */
void		 group_apply_later(long long id);
/*
 * What the applier does with id, on db in the calling thread: the event
 * and other due ones, for at most EVENT_APPLY_BUDGET_MS, failures logged.
 * callback.fcgi under CGI calls it after its answer.
 */
struct db;
void		 group_apply_now(struct db *db, long long id);

#endif
