#ifndef DINGAUTH_EVENTS_H
#define DINGAUTH_EVENTS_H

#include <stddef.h>

#include "err.h"

/*
 * DingTalk's address-book events (docs/dingtalk.md §b): parsed from a
 * decrypted push, stored in the events table before the push is
 * answered, and applied to the directory afterwards.
 *
 * Storing is idempotent: every event has a dedupe key (its eventId, else
 * its BizId, else the push's msg_signature) and a second push with the
 * same key writes nothing. Applying is idempotent too: user events fetch
 * the user from DingTalk and upsert the row (a user DingTalk no longer
 * knows is deactivated), user_leave_org deactivates locally and ends the
 * sessions, department events fetch and upsert the department (or remove
 * it).
 *
 * A leave and a department removal need no DingTalk call: they are
 * applied in the transaction that stores them, whatever else is pending.
 * Every other event is applied on its own: a process claims it for
 * EVENT_CLAIM_SECONDS (one that dies lets go), and a failure is retried
 * after a growing delay (next_attempt_at) without holding up the
 * others. A permanent failure (DingTalk says the user is outside the
 * app's visible range, 50002; the event cannot be used) or
 * EVENT_ATTEMPTS_MAX failures end the event as 'failed' with its reason.
 */
struct db;

#define EVENT_TYPE_MAX		64	/* EventType, bytes with NUL */
#define EVENT_KEY_MAX		192	/* dedupe key, bytes with NUL */
#define EVENT_ID_MAX		128	/* one userid, bytes with NUL */
#define EVENT_ID_MAX_TEXT	"127"	/* the longest, said in errors */
#define EVENT_IDS_MAX		1000	/* ids in one event */
#define EVENT_ERROR_MAX		400	/* last_error kept, bytes */
#define EVENT_INVALID_MAX	256	/* invalid ids noted, bytes with NUL */
#define EVENT_APPLY_BUDGET_MS	500	/* other events applied after a push */
#define EVENT_CLAIM_SECONDS	120	/* an event held by its applier */
#define EVENT_RETRY_FIRST	30	/* s before the second attempt, */
#define EVENT_RETRY_LONGEST	3600	/* doubling up to this */
#define EVENT_ATTEMPTS_MAX	24	/* then failed: about a day of tries */

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

/* Where an event came from: the events table's source column. */
enum event_source {
	EVENT_SOURCE_HTTP,	/* "http": callback.fcgi, callback failed */
	EVENT_SOURCE_STREAM,	/* "stream": the worker's Stream link */
	EVENT_SOURCE__MAX
};

/* What an event carries, as events_parse understood it. */
struct event {
	enum event_kind	 kind;
	enum event_source source;	/* EVENT_SOURCE_HTTP unless set */
	char		 type[EVENT_TYPE_MAX];	/* EventType as sent */
	char		 event_id[EVENT_KEY_MAX - 8];	/* eventId or BizId, "" */
	long long	 time_ms;	/* TimeStamp/timeStamp/EventTime, 0 */
	char		**userids;	/* kinds with users: >= 1 */
	size_t		 nuser;
	long long	*dept_ids;	/* kinds with departments: >= 1 */
	size_t		 ndept;
	char		 invalid[EVENT_INVALID_MAX];	/* "UserId[2] (why)" */
	size_t		 ninvalid;	/* ids left out as unusable */
};

/* The EventType of kind ("user_add_org"); "" for EVENT_OTHER. */
const char	*event_kind_name(enum event_kind kind);

/*
 * Parse a decrypted push (text[0..len), need not be NUL-terminated):
 * valid UTF-8, a JSON object with a string EventType; UserId/userId
 * (strings) for user events and DeptId/deptId (numbers or digit
 * strings) for department events, each a non-empty array (or one
 * value) of at most EVENT_IDS_MAX holding at least one usable id (the
 * others are noted in invalid and left out: DingTalk batches ids, and
 * one bad id must not cost the others); TimeStamp/timeStamp/EventTime a
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
 * events_store for callback.fcgi. A push stored before writes nothing
 * and takes no write lock (one read). When the event needs no DingTalk
 * call (user_leave_org, org_dept_remove) it is also applied and marked
 * applied in the same transaction, whatever else is pending: one durable
 * write, and a leaver's sessions are gone before DingTalk has its
 * answer. An older event applied later cannot bring the leaver back: a
 * user's row is only written from a DingTalk answer asked after the
 * leave (a rehire). *applied tells whether that happened. Any other new
 * event is stored pending and claimed by the caller, who applies it
 * after the answer (events_apply_pending with own = *id). An event
 * from the Stream (ev->source) is stored pending and held by nobody:
 * the worker that received it applies it in its next pass.
 */
enum da_err	 events_store_apply(struct db *db, const struct event *ev,
		    const char *payload, size_t len, const char *fallback,
		    int *stored, long long *id, int *applied,
		    struct da_error *err);

/*
 * A process's memory of the dedupe keys it has seen committed (stored by
 * its own commits, or found stored by its reads), shared by its threads:
 * a replay found there is answered with no database read at all. Only
 * keys known to be in the database go in, after the commit that holds
 * them; each is trusted for EVENTS_SEEN_SECONDS after it was learnt and
 * only for the same database file (db_file_id), then looked up again.
 * Bounded (2048 keys, 160 kB); a key that does not fit
 * or is pushed out is simply read from the database. callback.fcgi
 * keeps one for its life; a struct event_store's seen may be NULL.
 */
#define EVENTS_SEEN_SECONDS	60

struct events_seen;

struct events_seen	*events_seen_new(void);
void			 events_seen_free(struct events_seen *seen);

/*
 * One push for events_store_batch: what to store (the arguments of
 * events_store_apply) and, filled by it, what became of it.
 */
struct event_store {
	const struct event	*ev;
	const char		*payload;
	size_t			 len;
	const char		*fallback;
	struct events_seen	*seen;	/* NULL, or the process's memory */

	enum da_err		 rc;	/* this push's outcome */
	struct da_error		 err;	/* why, when rc is not DA_OK */
	int			 busy;	/* rc: another writer held the lock */
	int			 stored;
	int			 applied;
	long long		 id;

	char			 key[EVENT_KEY_MAX];	/* internal */
	int			 write;			/* internal */
	int			 read;	/* internal: read, found new (write) */
};

/*
 * events_store_apply for n pushes at once, in one transaction and so
 * one durable commit (group commit, docs/architecture.md): pushes stored
 * before are answered from one read each; the others are stored (and
 * leaves applied) each under a savepoint of its own, so that one that
 * fails is rolled back alone and the others still commit. Each push's
 * outcome is in its struct: DA_OK only once the commit that holds it
 * has returned. DA_OK when every push succeeded, else the first error.
 */
enum da_err	 events_store_batch(struct db *db, struct event_store *const *v,
		    size_t n);
/*
 * The read half of events_store_batch for one push, on any connection:
 * 1 when s is finished (stored before: s filled as events_store_batch
 * fills it, nothing written; or the read failed: s->rc), 0 when it is
 * new and must be written (events_store_batch or group_store; a push
 * it read and found new is not read again there: the INSERT itself
 * tells a key stored in between). With
 * s->seen, a key found there needs no read; db may then be NULL (a
 * thread without a connection of its own), and a key not found there
 * is left to the writer (0).
 */
int		 events_store_seen(struct db *db, struct event_store *s);

/* The id of the newest stored event (any state); 0 when there is none. */
enum da_err	 events_last_id(struct db *db, long long *id,
		    struct da_error *err);
/*
 * Call fn with each stored event newer than id after (any state), oldest
 * first; fn's error stops the walk and is returned. The sync uses it to
 * leave alone what events named while it was fetching.
 */
enum da_err	 events_each_since(struct db *db, long long after,
		    enum da_err (*fn)(const struct event *ev, void *arg,
		    struct da_error *err), void *arg, struct da_error *err);
/* The outcome of one run over the pending events. */
struct events_run {
	int		 applied;	/* now 'applied' */
	int		 failed;	/* tried and not applied */
	int		 gave_up;	/* of which now 'failed' for good */
	long long	 pending;	/* still pending after the run */
	struct da_error	 first_error;	/* of the first failure */
};

/*
 * Apply pending events, oldest first: first own (an event the caller
 * claimed with events_store_apply; 0 for none), then every event that
 * is due (all: every pending one, whatever its next attempt time) and
 * not held by another process, each claimed while it is applied, until
 * budget_ms have passed (0: no limit; the event in hand is finished).
 * An event that fails is tried again after a delay (EVENT_RETRY_FIRST
 * doubling to EVENT_RETRY_LONGEST) or ends as 'failed' (permanent
 * failure, EVENT_ATTEMPTS_MAX attempts). A failure that says DingTalk or
 * the database is unavailable (transport, timeout, rate limit, token,
 * configuration) ends the run: the next event would fail the same way.
 * Returns DA_OK when the run itself worked (even if events failed: see
 * run), or the database error that stopped it.
 */
enum da_err	 events_apply_pending(struct db *db, long long own,
		    long budget_ms, int all, struct events_run *run,
		    struct da_error *err);

/*
 * Is e (from events_apply) a failure that will not go away by asking
 * again: not visible to the app (50002), not found, unusable input?
 */
int		 events_failure_is_permanent(const struct da_error *e);

/*
 * Apply one parsed event (no state bookkeeping): the directory changes
 * described above, for every id; one id failing does not keep the
 * others from being applied, unless the failure says DingTalk is not
 * usable now. DA_OK when every id was applied; otherwise the first
 * failure that is not permanent if there is one, else the first
 * permanent one (err names the id). For tests and events_apply_pending.
 */
enum da_err	 events_apply(struct db *db, const struct event *ev,
		    struct da_error *err);

/* One stored event, for `dingauth events list`. */
struct event_row {
	long long	 id;
	const char	*dedupe_key;
	const char	*type;
	const char	*payload;
	const char	*state;		/* pending|applied|ignored|failed */
	const char	*last_error;	/* "" when none */
	const char	*invalid_ids;	/* ids left out of the push, "" */
	long long	 received_at;
	long long	 applied_at;	/* 0 when not applied */
	long long	 next_attempt_at; /* pending: not tried before */
	int		 attempts;
};

enum events_filter {
	EVENTS_ALL,
	EVENTS_PENDING,
	EVENTS_FAILED,
};

/*
 * Call fn for the newest limit stored events that filter lets through
 * (limit 0: all), oldest first. The row's strings are valid during the
 * call only. fn returns non-zero to stop.
 */
enum da_err	 events_each(struct db *db, enum events_filter filter,
		    long long limit,
		    int (*fn)(const struct event_row *row, void *arg),
		    void *arg, struct da_error *err);

/* Number of pending events. */
enum da_err	 events_count_pending(struct db *db, long long *n,
		    struct da_error *err);

/* What doctor and the health check report. */
struct events_health {
	long long	 pending;
	long long	 oldest_pending;	/* received_at, 0 if none */
	long long	 failed;
	char		 last_failure[EVENT_ERROR_MAX];	/* newest, "" */
};

enum da_err	 events_health(struct db *db, struct events_health *h,
		    struct da_error *err);

/*
 * How long finished events (and so their dedupe keys) are kept, in
 * seconds, for a callback timestamp window and a retention in days: the
 * retention, but never less than the window and a day more. A push
 * DingTalk retries is signed afresh and passes the window whenever it
 * comes: only its dedupe key tells it apart, so the key must outlive
 * the retries (DingTalk gives up on a push within minutes to hours,
 * docs/dingtalk.md §a.8) and any replay the window still lets in. A
 * window of 0 lets any old push in: then 0 is returned, never prune.
 */
long long	 events_keep_seconds(long long window,
		    long long retention_days);

/*
 * Make every failed event pending again, due now (the operator fixed
 * the cause, e.g. widened the app's visible range); *n of them.
 */
enum da_err	 events_requeue_failed(struct db *db, long long *n,
		    struct da_error *err);

/* Delete finished events received before before; *n deleted. */
enum da_err	 events_prune(struct db *db, long long before, long long *n,
		    struct da_error *err);

#endif
