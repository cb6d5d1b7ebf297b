#ifndef DINGAUTH_REQUESTS_H
#define DINGAUTH_REQUESTS_H

#include <stddef.h>

#include "err.h"

/*
 * Login requests awaiting review (table login_requests): people DingTalk
 * knows as colleagues but our directory does not, when
 * DINGAUTH_UNKNOWN_USER=review. At most one pending request per userid;
 * asking again counts another attempt on it.
 */
struct db;

enum requests_outcome {
	REQUESTS_NEW,		/* a new pending request */
	REQUESTS_AGAIN,		/* one more attempt on the pending one */
	REQUESTS_REJECTED,	/* an operator rejected the last one: nothing written */
};

/*
 * Record that userid (with unionid and the name DingTalk gave) tried to
 * sign in; *outcome says what happened. Runs in the caller's
 * transaction, or its own.
 */
enum da_err	 requests_record(struct db *db, const char *userid,
		    const char *unionid, const char *name,
		    enum requests_outcome *outcome, struct da_error *err);

/* One request, for `dingauth requests list`. */
struct request_row {
	long long	 id;
	const char	*userid;
	const char	*unionid;
	const char	*name;
	const char	*status;	/* pending|approved|rejected */
	long long	 attempts;
	long long	 created_at;
	long long	 updated_at;	/* the last attempt */
	long long	 decided_at;	/* 0 while pending */
};

/*
 * Call fn for every pending request (all: every request), oldest first.
 * The row's strings are valid during the call only. fn returns non-zero
 * to stop.
 */
enum da_err	 requests_each(struct db *db, int all,
		    int (*fn)(const struct request_row *row, void *arg),
		    void *arg, struct da_error *err);

/*
 * The userid and status of request id, copied into userid and status
 * (truncated to their sizes); DA_ENOTFOUND when there is no such request.
 */
enum da_err	 requests_get(struct db *db, long long id, char *userid,
		    size_t userid_size, char *status, size_t status_size,
		    struct da_error *err);

/*
 * Reject request id if it is still pending: *changed is 1 if it was, 0
 * if it was decided already (nothing written).
 */
enum da_err	 requests_reject(struct db *db, long long id, int *changed,
		    struct da_error *err);

/*
 * Approve the pending request of userid, whom an operator has just added
 * to the directory; *n is the number approved (0 or 1). Runs inside the
 * caller's transaction, if any.
 */
enum da_err	 requests_approve_user(struct db *db, const char *userid,
		    int *n, struct da_error *err);

/* The number of pending requests into *n. */
enum da_err	 requests_count_pending(struct db *db, long long *n,
		    struct da_error *err);
/*
 * Review notifications (the worker, DINGAUTH_NOTIFY_USERIDS): call fn
 * for at most limit pending requests not notified yet whose next attempt
 * is due at now, oldest first. row->attempts is the number of
 * notification attempts so far.
 */
enum da_err	 requests_each_to_notify(struct db *db, long long now,
		    long long limit,
		    int (*fn)(const struct request_row *row, void *arg),
		    void *arg, struct da_error *err);
/*
 * Record a notification attempt on request id: sent (notified_at now),
 * or failed with why, to be tried again at next_at (0: never again).
 */
enum da_err	 requests_notify_done(struct db *db, long long id, int sent,
		    const char *why, long long next_at, struct da_error *err);
/*
 * Delete the requests decided (approved or rejected) before before; *n
 * deleted. Pending ones stay whatever their age.
 */
enum da_err	 requests_prune(struct db *db, long long before, long long *n,
		    struct da_error *err);

#endif
