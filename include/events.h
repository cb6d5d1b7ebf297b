#ifndef DINGAUTH_EVENTS_H
#define DINGAUTH_EVENTS_H

#include <stddef.h>

#include "err.h"

/*
 * DingTalk's address-book events (dingtalk-api.md §b): parsed from a
 * decrypted push, stored in the events table before the push is answered,
 * and applied to the directory afterwards.
 *
 * Storing is idempotent: every event has a dedupe key (its eventId, else
 * its BizId, else the push's msg_signature) and a second push with the
 * same key writes nothing. Applying is idempotent too: user events fetch
 * the user from DingTalk and upsert the row (a user DingTalk no longer
 * knows is deactivated), user_leave_org deactivates locally and ends the
 * sessions, department events fetch and upsert the department (or remove
 * it). An event whose application fails stays pending with last_error.
 *
 * Events are applied one process at a time and in the order they were
 * stored (a lock file beside the database), so "add" then "leave" for the
 * same user cannot be reordered by two FastCGI workers.
 */
struct db;

#define EVENT_TYPE_MAX		64	/* EventType, bytes with NUL */
#define EVENT_KEY_MAX		192	/* dedupe key, bytes with NUL */
#define EVENT_ID_MAX		128	/* one userid, bytes with NUL */
#define EVENT_IDS_MAX		1000	/* ids in one event */
#define EVENT_ERROR_MAX		400	/* last_error kept, bytes */
#define EVENT_APPLY_MAX		100	/* events applied after one push */

enum event_kind {
	EVENT_CHECK_URL,	/* check_url: answered, never stored */
	EVENT_USER_ADD,		/* user_add_org */
	EVENT_USER_MODIFY,	/* user_modify_org */
	EVENT_USER_ACTIVE,	/* user_active_org */
	EVENT_USER_LEAVE,	/* user_leave_org */
	EVENT_ADMIN_ADD,	/* org_admin_add */
	EVENT_ADMIN_REMOVE,	/* org_admin_remove */
	EVENT_DEPT_CREATE,	/* org_dept_create */
	EVENT_DEPT_MODIFY,	/* org_dept_modify */
	EVENT_DEPT_REMOVE,	/* org_dept_remove */
	EVENT_OTHER,		/* anything else: stored as ignored */
	EVENT__MAX
};

/* What an event carries, as events_parse understood it. */
struct event {
	enum event_kind	 kind;
	char		 type[EVENT_TYPE_MAX];	/* EventType as sent */
	char		 event_id[EVENT_KEY_MAX - 8];	/* eventId or BizId, "" */
	long long	 time_ms;	/* TimeStamp/timeStamp/EventTime, 0 */
	char		**userids;	/* kinds with users: >= 1 */
	size_t		 nuser;
	long long	*dept_ids;	/* kinds with departments: >= 1 */
	size_t		 ndept;
};

/* The EventType of kind ("user_add_org"); "" for EVENT_OTHER. */
const char	*event_kind_name(enum event_kind kind);

/*
 * Parse a decrypted push (text[0..len), need not be NUL-terminated):
 * valid UTF-8, a JSON object with a string EventType; UserId/userId
 * (strings) for user events and DeptId/deptId (numbers or digit
 * strings) for department events, each a non-empty array (or one
 * value) of at most EVENT_IDS_MAX; TimeStamp/timeStamp/EventTime a
 * number or a digit string when present. DA_EINPUT (err says what is
 * wrong) otherwise. On success ev owns allocations: event_clear frees.
 * Needs no configuration and no database.
 */
enum da_err	 events_parse(const char *text, size_t len, struct event *ev,
		    struct da_error *err);
void		 event_clear(struct event *ev);

/*
 * Store a parsed event whose plaintext is payload[0..len). The dedupe
 * key is "event:" + eventId (or BizId) when the event has one, else key
 * as given: "sig:" + the push's msg_signature from the callback, a key
 * of its own from `dingauth callback failed` (at most EVENT_KEY_MAX - 1
 * bytes). EVENT_OTHER is stored as 'ignored', the others as 'pending'.
 * *stored is 1 for a new row, 0 when the key was already there (nothing
 * written). *id (may be NULL) is the row's id. EVENT_CHECK_URL is
 * refused (DA_EINPUT): it is answered, not stored.
 */
enum da_err	 events_store(struct db *db, const struct event *ev,
		    const char *payload, size_t len, const char *key,
		    int *stored, long long *id, struct da_error *err);

/*
 * events_store, and when the event needs no DingTalk call
 * (user_leave_org, org_dept_remove) also apply it and mark it applied in
 * the same transaction, whatever else is pending: one durable write, and
 * a leaver's sessions are gone before DingTalk has its answer. An older
 * event applied later cannot bring the leaver back: a user's row is only
 * written from a DingTalk answer asked after the leave (a rehire).
 * *applied tells whether that happened; otherwise the event is stored
 * (pending) for events_apply_pending, as with events_store.
 */
enum da_err	 events_store_apply(struct db *db, const struct event *ev,
		    const char *payload, size_t len, const char *fallback,
		    int *stored, long long *id, int *applied,
		    struct da_error *err);

/* The outcome of one run over the pending events. */
struct events_run {
	int		 applied;	/* now 'applied' */
	int		 failed;	/* tried and left pending */
	int		 skipped;	/* another process was applying */
	long long	 pending;	/* still pending after the run */
	struct da_error	 first_error;	/* of the first failure */
};

/*
 * Apply pending events in id order, at most max of them (0: no limit),
 * each at most once in this run. wait: block until no other process is
 * applying (the command line); otherwise (the callback) leave the work
 * to the process that holds the lock, which looks again for new events
 * before it lets go. A run stops at the first failure that says
 * DingTalk or the database is unavailable (transport, timeout, rate
 * limit, token, configuration), so later events keep their order; a
 * failure of one event alone (DingTalk refused that user) is recorded
 * and the run goes on. Returns DA_OK when the run itself worked (even if
 * events failed: see run), or the error that stopped it from starting.
 */
enum da_err	 events_apply_pending(struct db *db, int max, int wait,
		    struct events_run *run, struct da_error *err);

/*
 * Apply one parsed event (no state bookkeeping): the directory changes
 * described above. For tests and for events_apply_pending.
 */
enum da_err	 events_apply(struct db *db, const struct event *ev,
		    struct da_error *err);

/* One stored event, for `dingauth events list`. */
struct event_row {
	long long	 id;
	const char	*dedupe_key;
	const char	*type;
	const char	*payload;
	const char	*state;		/* pending|applied|ignored */
	const char	*last_error;	/* "" when none */
	long long	 received_at;
	long long	 applied_at;	/* 0 when not applied */
	int		 attempts;
};

/*
 * Call fn for the newest limit stored events (0: all; pending_only: only
 * pending ones), oldest first. The row's strings are valid during the
 * call only. fn returns non-zero to stop.
 */
enum da_err	 events_each(struct db *db, int pending_only, long long limit,
		    int (*fn)(const struct event_row *row, void *arg),
		    void *arg, struct da_error *err);

/* Number of pending events. */
enum da_err	 events_count_pending(struct db *db, long long *n,
		    struct da_error *err);

#endif
