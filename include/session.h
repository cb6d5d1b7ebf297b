#ifndef DINGAUTH_SESSION_H
#define DINGAUTH_SESSION_H

#include <stddef.h>

#include "err.h"

/*
 * Sessions and login states.
 *
 * A session id is 256 random bits (OpenSSL RAND_bytes), given to the
 * browser as 64 hex characters in the dingauth_session cookie; only its
 * SHA-256 is stored. A session ends at created + DINGAUTH_SESSION_TTL, or
 * after DINGAUTH_SESSION_IDLE without use (last_seen kept server-side,
 * refreshed at most once a minute, and never waiting for a lock: skipped
 * when another process writes), or when its user leaves or is
 * disabled: session_check reads the user's row on every use.
 *
 * A login state is 256 random bits as 43 base64url characters,
 * bound to the dingauth_state cookie, valid STATE_TTL seconds, and
 * single-use: state_take deletes it. Anyone may ask for the login page,
 * so at most STATE_MAX states live at once: a new one evicts the expired
 * ones and then the oldest, and the table (with its rd of at most
 * LOGIN_RD_MAX bytes) cannot grow beyond a few megabytes whatever the
 * rate. A flood of anonymous page views can then void a pending login
 * (its state was evicted: the user tries again), never fill the disk.
 */
struct db;

#define SESSION_COOKIE	"dingauth_session"	/* docs/contract.md */
#define STATE_COOKIE	"dingauth_state"
#define SESSION_ID_LEN	64		/* hex characters */
#define STATE_LEN	43		/* base64url characters */
#define STATE_TTL	600
#define STATE_MAX	1024		/* live login states, at most */
#define SESSION_TOUCH	60		/* last_seen granularity, seconds */

/* Who a live session belongs to; session_user_clear frees it. */
struct session_user {
	char		 userid[128];
	char		 unionid[128];
	char		 name[256];
	long long	*dept_ids;	/* allocated, ascending */
	size_t		 ndept;
	long long	 expires_at;
};

/* Free the department ids and zero u; NULL is fine. */
void		session_user_clear(struct session_user *u);

/* Open a session for userid; id receives the cookie value. */
enum da_err	session_open(struct db *db, const char *userid,
		    const char *remote_addr, const char *user_agent,
		    char id[SESSION_ID_LEN + 1], struct da_error *err);

/*
 * Check a cookie value: DA_OK with u filled for a live session of an
 * active, not disabled user; DA_ENOTFOUND otherwise (expired, idle,
 * unknown, malformed, user gone). Expired rows are deleted. u is zeroed
 * first; clear it with session_user_clear whatever the result.
 */
enum da_err	session_check(struct db *db, const char *id,
		    struct session_user *u, struct da_error *err);

/* End one session (logout). DA_OK even if it did not exist. */
enum da_err	session_end(struct db *db, const char *id,
		    struct da_error *err);

/* End every session of userid; *n ended (may be NULL). */
enum da_err	session_end_user(struct db *db, const char *userid, int *n,
		    struct da_error *err);

/*
 * Why a user's sessions ended, when the login page tells the browser
 * (once, and only the holder of the session's cookie): they left the
 * company, or an operator disabled them.
 */
enum session_end_why {
	SESSION_END_LEFT,	/* "left" */
	SESSION_END_DISABLED,	/* "disabled" */
	SESSION_END__MAX
};

/*
 * session_end_user, remembering why for each session ended (until it
 * would have expired), in the caller's transaction.
 */
enum da_err	session_end_user_why(struct db *db, const char *userid,
		    enum session_end_why why, int *n, struct da_error *err);
/*
 * The cookie id of a session that is no more: was it ended for a
 * reason to tell? DA_OK with *why set, the reason forgotten (said
 * once); DA_ENOTFOUND if not.
 */
enum da_err	session_ended(struct db *db, const char *id,
		    enum session_end_why *why, struct da_error *err);
/* Its name as stored and shown in data-notice: "left", "disabled". */
const char	*session_end_name(enum session_end_why why);

/*
 * End the session whose reference (struct session_row's ref, 12
 * lowercase hex digits) is ref; its user copied into userid[size].
 * DA_ENOTFOUND when none has it, DA_EINPUT when several do. In the
 * caller's transaction, or its own.
 */
enum da_err	session_end_ref(struct db *db, const char *ref, char *userid,
		    size_t size, struct da_error *err);
/* End every session of every user; *n ended (may be NULL). */
enum da_err	session_end_all(struct db *db, int *n, struct da_error *err);

/* One live session, for `dingauth sessions list`. */
struct session_row {
	const char	*ref;		/* hex of the first 6 bytes of the
					   stored hash: never the id */
	const char	*userid;
	const char	*name;		/* the user's, "" if unknown */
	long long	 created_at;
	long long	 last_seen;
	long long	 expires_at;
	const char	*remote_addr;
	const char	*user_agent;
};

/*
 * Call fn for every live session (before its end, used within
 * DINGAUTH_SESSION_IDLE) of userid, or of everyone when userid is NULL,
 * oldest first. The row's strings are valid during the call only. fn
 * returns non-zero to stop.
 */
enum da_err	session_each(struct db *db, const char *userid,
		    int (*fn)(const struct session_row *row, void *arg),
		    void *arg, struct da_error *err);

/* The number of live sessions (as session_each counts them) into *n. */
enum da_err	session_count(struct db *db, long long *n,
		    struct da_error *err);
/* Create a login state remembering rd (already validated). */
enum da_err	state_create(struct db *db, const char *rd,
		    char state[STATE_LEN + 1], struct da_error *err);

/*
 * Consume a state: DA_OK with rd copied if it exists and is unexpired;
 * DA_ESTATE otherwise. Either way it can never be used again.
 */
enum da_err	state_take(struct db *db, const char *state, char *rd,
		    size_t rdsize, struct da_error *err);

/*
 * Delete expired sessions and states (*n rows removed), and the notes
 * of ended sessions past their end (not counted).
 */
enum da_err	session_prune(struct db *db, int *n, struct da_error *err);

#endif
