#ifndef DINGAUTH_NOTIFY_H
#define DINGAUTH_NOTIFY_H

#include "err.h"

/*
 * Review notifications: when a login awaits review
 * (DINGAUTH_UNKNOWN_USER=review), the people of DINGAUTH_NOTIFY_USERIDS
 * get a DingTalk work notification from the app DINGTALK_AGENT_ID
 * (docs/dingtalk.md §i.2) naming the person and the commands that
 * approve or reject the request. The login only records the request; the
 * worker sends, once per request: a failure is tried again later
 * (NOTIFY_RETRY_FIRST seconds, doubling up to NOTIFY_RETRY_MAX), at most
 * NOTIFY_ATTEMPTS times.
 */
struct db;

#define NOTIFY_BATCH		20	/* requests per worker pass */
#define NOTIFY_ATTEMPTS		8
#define NOTIFY_RETRY_FIRST	60
#define NOTIFY_RETRY_MAX	3600

struct notify_run {
	int		 sent;
	int		 failed;
	struct da_error	 first_error;
};

/* 1 when DINGTALK_AGENT_ID and DINGAUTH_NOTIFY_USERIDS are both set. */
int		 notify_enabled(void);

/*
 * Notify about the requests that are due. DA_OK unless the database
 * failed (DingTalk's failures are counted in run and kept on each
 * request for its next attempt).
 */
enum da_err	 notify_pending(struct db *db, struct notify_run *run,
		    struct da_error *err);

#endif
