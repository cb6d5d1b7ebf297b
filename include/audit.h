#ifndef DINGAUTH_AUDIT_H
#define DINGAUTH_AUDIT_H

#include "err.h"

/*
 * The audit trail (table audit; docs/contract.md, dingauth audit): who
 * signed in or was refused and why, who signed out, who left (by which
 * event or sync), each sync with its counts, and what operators did. A
 * row is written in the same transaction as what it records, by the
 * flow or command that does it; audit_log prints the same fields as one
 * log line (DINGAUTH_LOG_FORMAT text or json). Rows older than
 * DINGAUTH_AUDIT_DAYS are pruned by the worker.
 */
struct db;

enum audit_event {
	AUDIT_LOGIN,		/* outcome "ok" or the login problem's id */
	AUDIT_LOGOUT,
	AUDIT_OFFBOARD,		/* source: "event N" or "sync N" */
	AUDIT_SYNC,		/* outcome: the run's; detail: its counts */
	AUDIT_APPROVE,		/* operator actions: source "operator NAME" */
	AUDIT_REJECT,
	AUDIT_DISABLE,
	AUDIT_ENABLE,
	AUDIT_REVOKE,
	AUDIT__MAX
};

/* One row; NULL strings are stored as "". */
struct audit_entry {
	enum audit_event	 event;
	const char		*userid;
	const char		*unionid;
	const char		*flow;
	const char		*outcome;
	const char		*reason;
	const char		*source;
	const char		*remote_addr;
	const char		*user_agent;
	const char		*detail;
};

/* "login", "logout", "offboard", ...: the stored and printed names. */
const char	*audit_event_name(enum audit_event e);

/*
 * Insert e, stamped now, inside the caller's transaction if one is
 * open (else on its own).
 */
enum da_err	 audit_record(struct db *db, const struct audit_entry *e,
		    struct da_error *err);

/* e as one log line at level (log.h: log_fields). */
void		 audit_log(int level, const struct audit_entry *e);

/* One stored row, for dingauth audit. */
struct audit_row {
	long long	 id;
	long long	 at;
	const char	*event;
	const char	*userid;
	const char	*unionid;
	const char	*flow;
	const char	*outcome;
	const char	*reason;
	const char	*source;
	const char	*remote_addr;
	const char	*user_agent;
	const char	*detail;
};

/*
 * Call fn for the rows at or after since about userid (NULL: everyone),
 * oldest first, the newest limit of them (0: all). Strings are valid
 * during the call only; fn returns non-zero to stop.
 */
enum da_err	 audit_each(struct db *db, const char *userid, long long since,
		    long long limit,
		    int (*fn)(const struct audit_row *row, void *arg),
		    void *arg, struct da_error *err);

/* Delete the rows before before; *n deleted. */
enum da_err	 audit_prune(struct db *db, long long before, long long *n,
		    struct da_error *err);

#endif
