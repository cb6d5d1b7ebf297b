/*
 * dingauth worker: the background passes over events, the daily sync,
 * pruning and the heartbeat. See worker.h.
 */
#include <sys/file.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "config.h"
#include "db.h"
#include "events.h"
#include "log.h"
#include "mem.h"
#include "notify.h"
#include "requests.h"
#include "session.h"
#include "stream.h"
#include "sync.h"
#include "worker.h"

enum stmt {
	STMT_BEAT,
	STMT_BEAT_GET,
	STMT__MAX
};

static const struct db_sql stmts[STMT__MAX] = {
	[STMT_BEAT] = { "worker heartbeat",
	    "INSERT INTO worker_status (id, pid, started_at, beat_at, step)"
	    " VALUES (1, ?1, ?2, ?3, ?4) ON CONFLICT (id) DO UPDATE SET"
	    " pid = excluded.pid, started_at = excluded.started_at,"
	    " beat_at = excluded.beat_at, step = excluded.step" },
	[STMT_BEAT_GET] = { "worker heartbeat",
	    "SELECT pid, started_at, beat_at, step FROM worker_status"
	    " WHERE id = 1" },
};

static volatile sig_atomic_t	 stopping;
/* DINGAUTH_EVENT_MODE=stream: the link held between passes, or NULL. */
static struct stream		*stream;

/* One worker's state across passes. */
struct worker {
	struct db			*db;
	const struct worker_options	*opt;
	int				 sync_at;	/* minutes, -1 off */
	long long			 started_at;
	long long			 beat_at;	/* last heartbeat */
	long long			 pruned_at;	/* last pruning */
	long long			 sync_tried;	/* slot last tried */
	char				 step[200];	/* this pass */
};

void
worker_stop(void)
{
	stopping = 1;
}

int
worker_stopping(void)
{
	return stopping != 0;
}

enum da_err
worker_parse_sync_at(const char *s, int *minutes, struct da_error *err)
{
	*minutes = -1;
	if (strcmp(s, "off") == 0)
		return DA_OK;
	if (strlen(s) != 5 || s[2] != ':' ||
	    s[0] < '0' || s[0] > '2' || s[1] < '0' || s[1] > '9' ||
	    s[3] < '0' || s[3] > '5' || s[4] < '0' || s[4] > '9' ||
	    (s[0] - '0') * 10 + (s[1] - '0') > 23)
		return DA_ERROR(err, DA_EINPUT, "DINGAUTH_SYNC_AT must be HH:MM "
		    "(00:00 to 23:59, local time) or off");
	*minutes = ((s[0] - '0') * 10 + (s[1] - '0')) * 60 +
	    (s[3] - '0') * 10 + (s[4] - '0');
	return DA_OK;
}

long long
worker_sync_slot(long long now, int minutes)
{
	struct tm	 tm;
	time_t		 t = (time_t)now, slot;

	localtime_r(&t, &tm);
	tm.tm_hour = minutes / 60;
	tm.tm_min = minutes % 60;
	tm.tm_sec = 0;
	tm.tm_isdst = -1;	/* whatever the day's offset is */
	slot = mktime(&tm);
	if (slot > t) {
		tm.tm_mday -= 1;	/* mktime normalizes the date */
		tm.tm_hour = minutes / 60;
		tm.tm_min = minutes % 60;
		tm.tm_isdst = -1;
		slot = mktime(&tm);
	}
	return (long long)slot;
}

enum da_err
worker_lock(struct db *db, int *fd, struct da_error *err)
{
	return db_lock(db, "worker", fd, err);
}

enum da_err
worker_heartbeat(struct db *db, struct worker_beat *b, struct da_error *err)
{
	struct db_rows	 r;

	memset(b, 0, sizeof(*b));
	db_query(db, &r, &stmts[STMT_BEAT_GET], DB_NOARGS, err);
	if (db_next(&r) == 1) {
		b->present = 1;
		b->pid = db_int(&r, 0);
		b->started_at = db_int(&r, 1);
		b->beat_at = db_int(&r, 2);
		snprintf(b->step, sizeof(b->step), "%s", db_text(&r, 3));
	}
	return db_done(&r);
}

/* Add what a step did to the pass's summary. */
static void
said(struct worker *w, const char *what)
{
	size_t	 len = strlen(w->step);

	snprintf(w->step + len, sizeof(w->step) - len, "%s%s",
	    len ? "; " : "", what);
}

/* Apply the events that are due. */
static enum da_err
step_events(struct worker *w, struct da_error *err)
{
	struct events_run	 run;
	char			 what[64];
	enum da_err		 rc;

	/* One pass for cron applies all that is due; a daemon takes turns. */
	if ((rc = events_apply_pending(w->db, 0, w->opt->once ? 0 :
	    WORKER_EVENTS_BUDGET_MS, 0, &run, err)) != DA_OK) {
		log_msg(LOG_ERR, "events: %s", err->msg);
		return rc;
	}
	if (run.applied == 0 && run.failed == 0)
		return DA_OK;
	log_msg(run.failed ? LOG_WARN : LOG_INFO, "events: %d applied, %d "
	    "failed (%d for good), %lld pending%s%s", run.applied, run.failed,
	    run.gave_up, run.pending, run.failed ? "; first error: " : "",
	    run.failed ? run.first_error.msg : "");
	snprintf(what, sizeof(what), "events %d applied %d failed",
	    run.applied, run.failed);
	said(w, what);
	return DA_OK;
}

/* The daily sync, once per slot, when its time has come. */
static enum da_err
step_sync(struct worker *w, struct da_error *err)
{
	struct sync_history	 h;
	long long		 slot;
	enum da_err		 rc;
	int			 status;

	if (w->sync_at < 0 || w->opt->run_sync == NULL)
		return DA_OK;
	slot = worker_sync_slot(db_now(), w->sync_at);
	if (w->sync_tried == slot)
		return DA_OK;	/* tried in this slot already */
	if ((rc = sync_history(w->db, &h, err)) != DA_OK) {
		log_msg(LOG_ERR, "sync: %s", err->msg);
		return rc;
	}
	if (h.ran && h.last_started >= slot)
		return DA_OK;	/* done since (by us, cron or an operator) */
	w->sync_tried = slot;
	log_msg(LOG_INFO, "sync: starting the daily sync (DINGAUTH_SYNC_AT "
	    "%s)", config_str(CFG_SYNC_AT));
	status = w->opt->run_sync(w->opt->sync_arg);
	if (status != 0) {
		log_msg(LOG_WARN, "sync: did not complete (status %d); next "
		    "at the next DINGAUTH_SYNC_AT", status);
		said(w, "sync failed");
		return DA_ERROR(err, DA_EAPI, "the daily sync did not complete "
		    "(status %d)", status);
	}
	log_msg(LOG_INFO, "sync: complete");
	said(w, "sync");
	return DA_OK;
}

/*
 * Review notifications that are due (notify.h). DingTalk's failures do
 * not fail the pass: each request keeps its own retry.
 */
static enum da_err
step_notify(struct worker *w, struct da_error *err)
{
	struct notify_run	 run;
	char			 what[64];
	enum da_err		 rc;

	if ((rc = notify_pending(w->db, &run, err)) != DA_OK) {
		log_msg(LOG_ERR, "notify: %s", err->msg);
		return rc;
	}
	if (run.sent == 0 && run.failed == 0)
		return DA_OK;
	snprintf(what, sizeof(what), "notified %d, %d failed", run.sent,
	    run.failed);
	said(w, what);
	return DA_OK;
}

/* Expired sessions and states; finished events and requests past age. */
static enum da_err
step_prune(struct worker *w, struct da_error *err)
{
	long long	 now = db_now(), keep, events = 0, requests = 0,
			 audit = 0;
	enum da_err	 rc;
	int		 sessions = 0;
	char		 what[96];

	if (!w->opt->once && now - w->pruned_at < WORKER_PRUNE_SECONDS)
		return DA_OK;
	w->pruned_at = now;
	keep = events_keep_seconds(config_int(CFG_CALLBACK_WINDOW),
	    config_int(CFG_RETENTION_DAYS));
	if ((rc = session_prune(w->db, &sessions, err)) != DA_OK ||
	    (keep > 0 && (rc = events_prune(w->db, now - keep, &events,
	    err)) != DA_OK) ||
	    (rc = requests_prune(w->db, now -
	    config_int(CFG_RETENTION_DAYS) * 86400, &requests, err)) !=
	    DA_OK ||
	    (rc = audit_prune(w->db, now - config_int(CFG_AUDIT_DAYS) * 86400,
	    &audit, err)) != DA_OK) {
		log_msg(LOG_ERR, "prune: %s", err->msg);
		return rc;
	}
	if (sessions == 0 && events == 0 && requests == 0 && audit == 0)
		return DA_OK;
	log_msg(LOG_INFO, "prune: %d expired session(s) and login state(s), "
	    "%lld old event(s), %lld decided login request(s), %lld audit "
	    "row(s)", sessions, events, requests, audit);
	snprintf(what, sizeof(what), "pruned %lld", (long long)sessions +
	    events + requests + audit);
	said(w, what);
	return DA_OK;
}

/* The heartbeat: at least every WORKER_BEAT_SECONDS, and after work. */
static enum da_err
step_beat(struct worker *w, struct da_error *err)
{
	long long	 now = db_now();
	enum da_err	 rc;

	if (w->beat_at != 0 && w->step[0] == '\0' &&
	    now - w->beat_at < WORKER_BEAT_SECONDS)
		return DA_OK;
	if ((rc = db_run(w->db, &stmts[STMT_BEAT], DB_ARGS(DB_INT(getpid()),
	    DB_INT(w->started_at), DB_INT(now), DB_TEXT(w->step[0] ?
	    w->step : "idle")), err)) != DA_OK)
		log_msg(LOG_ERR, "heartbeat: %s", err->msg);
	else
		w->beat_at = now;
	return rc;
}

/* One pass: each step runs even if one before it failed. */
static enum da_err
pass(struct worker *w, struct da_error *err)
{
	struct da_error	 e;
	enum da_err	 rc = DA_OK, r;

	w->step[0] = '\0';
	da_error_clear(&e);
	if ((r = step_events(w, &e)) != DA_OK && rc == DA_OK) {
		rc = r;
		*err = e;
	}
	if (!stopping && (r = step_sync(w, &e)) != DA_OK && rc == DA_OK) {
		rc = r;
		*err = e;
	}
	if (!stopping && (r = step_notify(w, &e)) != DA_OK && rc == DA_OK) {
		rc = r;
		*err = e;
	}
	if (!stopping && (r = step_prune(w, &e)) != DA_OK && rc == DA_OK) {
		rc = r;
		*err = e;
	}
	if ((r = step_beat(w, &e)) != DA_OK && rc == DA_OK) {
		rc = r;
		*err = e;
	}
	return rc;
}

void
worker_wait(long ms)
{
	struct timespec	 ts = { 0, 50 * 1000000L };

	if (stream != NULL) {
		stream_run(stream, ms);
		return;
	}
	for (; ms > 0 && !stopping; ms -= 50)
		nanosleep(&ts, NULL);
}

enum da_err
worker_run(struct db *db, const struct worker_options *opt,
    struct da_error *err)
{
	struct worker	 w;
	struct da_error	 e;
	enum da_err	 rc;

	memset(&w, 0, sizeof(w));
	da_error_clear(&e);
	w.db = db;
	w.opt = opt;
	w.started_at = db_now();
	w.sync_tried = -1;
	if ((rc = worker_parse_sync_at(config_str(CFG_SYNC_AT), &w.sync_at,
	    err)) != DA_OK)
		return rc;
	log_msg(LOG_INFO, "started%s: daily sync %s%s, retention %lld days%s",
	    opt->once ? " for one pass" : "", w.sync_at < 0 ? "off" : "at ",
	    w.sync_at < 0 ? "" : config_str(CFG_SYNC_AT),
	    config_int(CFG_RETENTION_DAYS), cfg()->num[CFG_EVENT_MODE] ==
	    CFG_EVENT_STREAM ? (opt->once ? "; stream mode needs the daemon: "
	    "no link in one pass" : "; holding DingTalk's Stream link") : "");
	if (!opt->once && cfg()->num[CFG_EVENT_MODE] == CFG_EVENT_STREAM)
		stream = stream_new(db, worker_stopping);
	do {
		/*
		 * The path names another file (a restore) or none: stop,
		 * never work on a file nobody else sees; the service
		 * manager starts us again on what is there now.
		 */
		if ((rc = db_check(db, err)) != DA_OK) {
			log_msg(LOG_ERR, "stopping: %s", err != NULL ?
			    err->msg : "the database file changed");
			return rc;
		}
		if ((rc = pass(&w, &e)) != DA_OK && err != NULL)
			*err = e;
		if (!opt->once)
			worker_wait(WORKER_POLL_MS);
	} while (!opt->once && !stopping);
	stream_free(stream);	/* close frames first: SIGTERM's promise */
	stream = NULL;
	log_msg(LOG_INFO, "%s", opt->once ? "pass done" :
	    "stopped (SIGTERM)");
	return opt->once ? rc : DA_OK;
}
