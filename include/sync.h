#ifndef DINGAUTH_SYNC_H
#define DINGAUTH_SYNC_H

#include <stdio.h>

#include "err.h"

/*
 * The full directory sync (docs/dingtalk.md §f): departments breadth-first
 * from the root (1) with topapi/v2/department/listsub, the members of each
 * with topapi/v2/user/list (cursor paging, 100 a page), several requests
 * in flight (http_multi.h), never more than DINGAUTH_SYNC_QPS requests a
 * second per API; 90018/90002/-1 slow that API down and the request is
 * retried, a token error refreshes the corp token once.
 *
 * What arrives is streamed into TEMP tables of the same connection, so
 * memory stays bounded whatever the size of the company, and a killed
 * run leaves nothing behind. At the end one write transaction compares
 * the copy with the directory and applies the difference through
 * directory.h, with the run's sync_runs row:
 *  - new and changed users are written, a former leaver who is back
 *    becomes active again (a rehire);
 *  - active users not seen are leavers (inactive, sessions ended) and
 *    departments not seen are removed, but only when every department
 *    loaded ("partial" otherwise: nobody leaves, nothing is removed) and
 *    the leavers are at most DINGAUTH_SYNC_MAX_DEACTIVATE percent of the
 *    active users ("refused" otherwise, nothing changes) unless forced.
 */
struct db;

enum sync_outcome {
	SYNC_OK,		/* the directory is now DingTalk's */
	SYNC_PARTIAL,		/* some departments failed: no leavers */
	SYNC_REFUSED,		/* too many leavers, no --force: no change */
	SYNC_FAILED,		/* nothing changed */
	SYNC_DRY_RUN,		/* nothing changed, the plan was printed */
	SYNC__MAX
};

struct sync_options {
	int	 dry_run;
	int	 force;		/* accept any share of leavers */
	FILE	*progress;	/* redraw a progress line here (or NULL) */
	FILE	*plan;		/* dry run: a line per change (or NULL) */
};

#define SYNC_FAILED_LISTED	8

struct sync_stats {
	enum sync_outcome	 outcome;
	long long		 run_id;	/* sync_runs.id */
	long long		 departments;	/* seen at DingTalk */
	long long		 users;		/* seen at DingTalk */
	long long		 added;
	long long		 updated;
	long long		 reactivated;
	long long		 deactivated;	/* or would be (refused) */
	long long		 sessions_ended;
	long long		 depts_added;
	long long		 depts_updated;
	long long		 depts_removed;
	long long		 active_before;	/* active users before */
	long long		 failed_departments;
	long long		 failed[SYNC_FAILED_LISTED];	/* first ones */
	char			 failure[320];	/* why the first failed */
	long			 requests;	/* HTTP, with retries */
	long			 retries;
	long			 rate_limited;	/* 90018/90002/-1 seen */
	long			 token_refreshes;
	double			 seconds;
	double			 fetch_seconds;	/* of which fetching */
};

/*
 * Run one sync. DA_OK when the run reached a decision (ok, partial,
 * refused, dry run: see st->outcome); otherwise an error with err filled,
 * st->outcome SYNC_FAILED and the previous directory untouched. Either
 * way the run's sync_runs row records the outcome (a dry run too).
 * One run at a time per database, on every node: while another holds
 * the sync lock (db_lock), DA_EBUSY, nothing recorded.
 */
enum da_err	 sync_run(struct db *db, const struct sync_options *opt,
		    struct sync_stats *st, struct da_error *err);

/* What the recorded runs say, for `dingauth doctor`. */
struct sync_history {
	int		 ran;		/* a run other than a dry run is recorded */
	long long	 last_started;	/* the last such run's start */
	char		 last_outcome[32]; /* and its outcome, "running" too */
	long long	 last_ok;	/* end of the last "ok" run, 0 if none */
};

enum da_err	 sync_history(struct db *db, struct sync_history *h,
		    struct da_error *err);

/*
 * "ok", "partial", "refused", "failed", "dry-run": what a run concluded,
 * as sync_runs.outcome records it (besides "running" while it runs and
 * "interrupted" for one that never finished).
 */
const char	*sync_outcome_name(enum sync_outcome outcome);

#endif
