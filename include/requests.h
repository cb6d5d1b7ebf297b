#ifndef DINGAUTH_REQUESTS_H
#define DINGAUTH_REQUESTS_H

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
 * sign in; *outcome says what happened. Runs in its own transaction.
 */
enum da_err	 requests_record(struct db *db, const char *userid,
		    const char *unionid, const char *name,
		    enum requests_outcome *outcome, struct da_error *err);

#endif
