#ifndef DINGAUTH_WORKER_H
#define DINGAUTH_WORKER_H

#include "err.h"

/*
 * dingauth worker (docs/contract.md): the one long-running background
 * process, for systemd, or for cron with one pass at a time. A pass:
 * apply the pending events that are due (events.h), run the daily full
 * sync when DINGAUTH_SYNC_AT has come, send the review notifications
 * that are due (notify.h), prune expired sessions and login
 * states and, past the retention, finished events and decided login
 * requests, and write the heartbeat (table worker_status) that doctor
 * and the health check read. One worker per database: a lock on a file
 * beside it. Each action is one log line. With DINGAUTH_EVENT_MODE=stream
 * it also holds DingTalk's Stream link (stream.h) between passes.
 */
struct db;

#define WORKER_POLL_MS		1000	/* between passes */
#define WORKER_EVENTS_BUDGET_MS	1000	/* events applied per pass, then
					   the next step (SIGTERM waits at
					   most for the event in hand) */
#define WORKER_BEAT_SECONDS	30	/* heartbeat at least this often */
#define WORKER_PRUNE_SECONDS	600	/* pruning at most this often */
#define WORKER_STALE_SECONDS	300	/* an older heartbeat is a warning
					   (cron runs --once every minute) */

struct worker_options {
	int	 once;		/* one pass, then return */
	/*
	 * Run one full sync to its end (or until worker_stopping()):
	 * its exit status, 0 for a complete run. The command runs it as
	 * a process of its own, so stopping never waits for a long sync.
	 */
	int	(*run_sync)(void *arg);
	void	*sync_arg;
};

/*
 * DINGAUTH_SYNC_AT: "HH:MM" (local time) to *minutes after midnight, or
 * "off" to -1. DA_EINPUT (err says why) for anything else.
 */
enum da_err	 worker_parse_sync_at(const char *s, int *minutes,
		    struct da_error *err);

/*
 * The start (Unix seconds) of the latest daily slot at minutes after
 * local midnight that is not after now: today's, or yesterday's.
 */
long long	 worker_sync_slot(long long now, int minutes);

/*
 * Take the worker's lock of db (db_lock: a file DINGAUTH_DB.worker-lock
 * beside SQLite's, *fd; PostgreSQL's advisory lock, released when a node
 * dies), kept until the process ends. DA_EBUSY when another worker
 * holds it; DA_EINPUT when the file cannot be opened.
 */
enum da_err	 worker_lock(struct db *db, int *fd, struct da_error *err);

/*
 * Wait ms (less when asked to stop). In stream mode (DINGAUTH_EVENT_MODE)
 * the Stream link is served meanwhile: the daily sync's wait uses it too,
 * so events are acknowledged while a sync runs.
 */
void		 worker_wait(long ms);

/* Ask worker_run to finish its step and return: async-signal-safe. */
void		 worker_stop(void);
int		 worker_stopping(void);

/*
 * Run passes until worker_stop (or one with opt->once). DA_OK, or the
 * error of a step that failed in the last pass (--once: a failed sync,
 * the database).
 */
enum da_err	 worker_run(struct db *db, const struct worker_options *opt,
		    struct da_error *err);

/* The heartbeat, for doctor and the health check. */
struct worker_beat {
	int		 present;	/* a worker has ever run */
	long long	 pid;
	long long	 started_at;
	long long	 beat_at;
	char		 step[200];
};

enum da_err	 worker_heartbeat(struct db *db, struct worker_beat *b,
		    struct da_error *err);

#endif
