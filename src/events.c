/*
 * Callback events: parse a decrypted push, store it once, apply it to
 * the directory (dingtalk-api.md §b). See events.h.
 */
#include <sys/file.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "dingtalk.h"
#include "directory.h"
#include "events.h"
#include "json.h"
#include "log.h"
#include "mem.h"

/* What each kind carries and how it is applied. */
enum event_ids { IDS_NONE, IDS_USERS, IDS_DEPTS };

static const struct event_def {
	const char	*name;
	enum event_ids	 ids;
} event_defs[EVENT__MAX] = {
	[EVENT_CHECK_URL] = { "check_url", IDS_NONE },
	[EVENT_USER_ADD] = { "user_add_org", IDS_USERS },
	[EVENT_USER_MODIFY] = { "user_modify_org", IDS_USERS },
	[EVENT_USER_ACTIVE] = { "user_active_org", IDS_USERS },
	[EVENT_USER_LEAVE] = { "user_leave_org", IDS_USERS },
	[EVENT_ADMIN_ADD] = { "org_admin_add", IDS_USERS },
	[EVENT_ADMIN_REMOVE] = { "org_admin_remove", IDS_USERS },
	[EVENT_DEPT_CREATE] = { "org_dept_create", IDS_DEPTS },
	[EVENT_DEPT_MODIFY] = { "org_dept_modify", IDS_DEPTS },
	[EVENT_DEPT_REMOVE] = { "org_dept_remove", IDS_DEPTS },
	[EVENT_OTHER] = { "", IDS_NONE },
};

/* Both spellings of every key (§b.1 legacy, §b.2 console push). */
static const char *const keys_type[] = { "EventType", "eventType", NULL };
static const char *const keys_users[] = { "UserId", "userId", NULL };
static const char *const keys_depts[] = { "DeptId", "deptId", NULL };
static const char *const keys_time[] = {
	"TimeStamp", "timeStamp", "EventTime", NULL
};
static const char *const keys_event_id[] = { "eventId", "BizId", NULL };

enum stmt {
	STMT_INSERT,
	STMT_FIND,
	STMT_NEXT_PENDING,
	STMT_APPLIED,
	STMT_FAILED,
	STMT_UNUSABLE,
	STMT_COUNT_PENDING,
	STMT_LIST,
	STMT_LIST_PENDING,
	STMT__MAX
};

#define LIST_COLUMNS \
    "SELECT id, dedupe_key, event_type, payload, state," \
    " coalesce(last_error, ''), received_at, coalesce(applied_at, 0)," \
    " attempts"

static const struct db_sql stmts[STMT__MAX] = {
	/* A new row (its id returned); nothing if its key is there. */
	[STMT_INSERT] = { "event store",
	    "INSERT INTO events (dedupe_key, event_type, payload, received_at,"
	    " state, attempts, applied_at) VALUES (?1, ?2, ?3, ?4, ?5,"
	    " ?5 = 'applied', CASE WHEN ?5 = 'applied' THEN ?4 END)"
	    " ON CONFLICT (dedupe_key) DO NOTHING RETURNING id" },
	[STMT_FIND] = { "event lookup",
	    "SELECT id FROM events WHERE dedupe_key = ?1" },
	[STMT_NEXT_PENDING] = { "pending events",
	    "SELECT id, payload FROM events WHERE state = 'pending'"
	    " AND id > ?1 ORDER BY id LIMIT 1" },
	[STMT_APPLIED] = { "event update",
	    "UPDATE events SET state = 'applied', attempts = attempts + 1,"
	    " last_error = NULL, applied_at = ?2 WHERE id = ?1" },
	[STMT_FAILED] = { "event update",
	    "UPDATE events SET attempts = attempts + 1, last_error = ?2"
	    " WHERE id = ?1" },
	[STMT_UNUSABLE] = { "event update",
	    "UPDATE events SET state = 'ignored', attempts = attempts + 1,"
	    " last_error = ?2 WHERE id = ?1" },
	[STMT_COUNT_PENDING] = { "count pending events",
	    "SELECT count(*) FROM events WHERE state = 'pending'" },
	[STMT_LIST] = { "list events",
	    LIST_COLUMNS " FROM (SELECT * FROM events ORDER BY id DESC"
	    " LIMIT ?1) ORDER BY id" },
	[STMT_LIST_PENDING] = { "list events",
	    LIST_COLUMNS " FROM (SELECT * FROM events WHERE state = 'pending'"
	    " ORDER BY id DESC LIMIT ?1) ORDER BY id" },
};

const char *
event_kind_name(enum event_kind kind)
{
	return (unsigned)kind < EVENT__MAX ? event_defs[kind].name : "";
}

void
event_clear(struct event *ev)
{
	size_t	 i;

	if (ev == NULL)
		return;
	for (i = 0; i < ev->nuser; i++)
		free(ev->userids[i]);
	free(ev->userids);
	free(ev->dept_ids);
	memset(ev, 0, sizeof(*ev));
}

/* Is s[0..len) well-formed UTF-8 without NUL bytes? */
static int
valid_utf8(const unsigned char *s, size_t len)
{
	size_t		 i = 0, n, k;
	unsigned int	 c;

	while (i < len) {
		c = s[i];
		if (c == 0)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3;
		else
			return 0;
		if (len - i <= n)
			return 0;
		/* No overlong forms, surrogates or values past U+10FFFF. */
		if ((c == 0xe0 && s[i + 1] < 0xa0) ||
		    (c == 0xed && s[i + 1] > 0x9f) ||
		    (c == 0xf0 && s[i + 1] < 0x90) ||
		    (c == 0xf4 && s[i + 1] > 0x8f))
			return 0;
		for (k = 1; k <= n; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
		i += n + 1;
	}
	return 1;
}

/* An EventType: 1..63 of [A-Za-z0-9_]. */
static int
valid_type(const char *s)
{
	size_t	 i, len = strlen(s);

	if (len == 0 || len >= EVENT_TYPE_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

/* A userid or eventId: 1..max-1 bytes, no control characters or spaces. */
static int
valid_id(const char *s, size_t max)
{
	size_t	 i, len = strlen(s);

	if (len == 0 || len >= max)
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
			return 0;
	return 1;
}

static enum event_kind
kind_of(const char *type)
{
	int	 k;

	for (k = 0; k < EVENT_OTHER; k++)
		if (strcmp(event_defs[k].name, type) == 0)
			return (enum event_kind)k;
	return EVENT_OTHER;
}

/* The ids of a user event: an array of strings, or one string. */
static enum da_err
parse_users(const json *ids, const char *key, struct event *ev,
    struct da_error *err)
{
	const json	*item = ids;
	const char	*s;
	size_t		 i, n;

	if (json_as_str(ids) != NULL)
		n = 1;
	else if (json_is_array(ids))
		n = json_array_size(ids);
	else
		return DA_ERROR(err, DA_EINPUT, "%s is neither a list nor a "
		    "string", key);
	if (n == 0)
		return DA_ERROR(err, DA_EINPUT, "%s is an empty list", key);
	if (n > EVENT_IDS_MAX)
		return DA_ERROR(err, DA_EINPUT, "%s has %zu ids, more than %d",
		    key, n, EVENT_IDS_MAX);
	ev->userids = xcalloc(n, sizeof(*ev->userids));
	for (i = 0; i < n; i++) {
		if (json_is_array(ids))
			item = json_array_item(ids, i);
		if ((s = json_as_str(item)) == NULL)
			return DA_ERROR(err, DA_EINPUT, "%s[%zu] is not a "
			    "string", key, i);
		if (!valid_id(s, EVENT_ID_MAX))
			return DA_ERROR(err, DA_EINPUT, "%s[%zu] is not a "
			    "usable userid (1..%d bytes, no spaces or control "
			    "characters)", key, i, EVENT_ID_MAX - 1);
		ev->userids[ev->nuser++] = xstrdup(s);
	}
	return DA_OK;
}

/* The ids of a department event: numbers or digit strings. */
static enum da_err
parse_depts(const json *ids, const char *key, struct event *ev,
    struct da_error *err)
{
	const json	*item = ids;
	long long	 id;
	size_t		 i, n;

	n = json_is_array(ids) ? json_array_size(ids) : 1;
	if (n == 0)
		return DA_ERROR(err, DA_EINPUT, "%s is an empty list", key);
	if (n > EVENT_IDS_MAX)
		return DA_ERROR(err, DA_EINPUT, "%s has %zu ids, more than %d",
		    key, n, EVENT_IDS_MAX);
	ev->dept_ids = xcalloc(n, sizeof(*ev->dept_ids));
	for (i = 0; i < n; i++) {
		if (json_is_array(ids))
			item = json_array_item(ids, i);
		if (json_as_int(item, &id) != JSON_OK || id < 1)
			return DA_ERROR(err, DA_EINPUT, "%s[%zu] is not a "
			    "positive department id", key, i);
		ev->dept_ids[ev->ndept++] = id;
	}
	return DA_OK;
}

/* The name of the first key of keys present in obj, or NULL. */
static const char *
present_key(const json *obj, const char *const *keys)
{
	for (; *keys != NULL; keys++)
		if (json_get(obj, *keys) != NULL)
			return *keys;
	return NULL;
}

enum da_err
events_parse(const char *text, size_t len, struct event *ev,
    struct da_error *err)
{
	json		*doc = NULL, *v;
	const char	*s, *key;
	char		 id[EVENT_KEY_MAX];
	enum da_err	 rc;

	memset(ev, 0, sizeof(*ev));
	if (text == NULL || len == 0) {
		rc = DA_ERROR(err, DA_EINPUT, "the event is empty");
		goto out;
	}
	if (!valid_utf8((const unsigned char *)text, len)) {
		rc = DA_ERROR(err, DA_EINPUT, "the event is not UTF-8 text");
		goto out;
	}
	if ((doc = json_parse(text, len)) == NULL || !json_is_object(doc)) {
		rc = DA_ERROR(err, DA_EINPUT, "the event is not a JSON object");
		goto out;
	}
	if ((v = json_get_any(doc, keys_type)) == NULL ||
	    (s = json_as_str(v)) == NULL || !valid_type(s)) {
		rc = DA_ERROR(err, DA_EINPUT, "the event has no usable "
		    "EventType (a string of 1..%d letters, digits or _)",
		    EVENT_TYPE_MAX - 1);
		goto out;
	}
	snprintf(ev->type, sizeof(ev->type), "%s", s);
	ev->kind = kind_of(s);

	if ((key = present_key(doc, keys_event_id)) != NULL) {
		/* id is longer than event_id: a long one is refused whole. */
		if (json_get_text(doc, key, id, sizeof(id)) != JSON_OK ||
		    !valid_id(id, sizeof(ev->event_id))) {
			rc = DA_ERROR(err, DA_EINPUT, "%s is not a usable id",
			    key);
			goto out;
		}
		memcpy(ev->event_id, id, strlen(id) + 1);	/* fits: checked */
	}
	if ((key = present_key(doc, keys_time)) != NULL &&
	    json_get_int(doc, key, &ev->time_ms) != JSON_OK) {
		rc = DA_ERROR(err, DA_EINPUT, "%s is neither a number nor a "
		    "string of digits", key);
		goto out;
	}

	rc = DA_OK;
	switch (event_defs[ev->kind].ids) {
	case IDS_USERS:
		if ((key = present_key(doc, keys_users)) == NULL)
			rc = DA_ERROR(err, DA_EINPUT, "%s event without "
			    "UserId", ev->type);
		else
			rc = parse_users(json_get(doc, key), key, ev, err);
		break;
	case IDS_DEPTS:
		if ((key = present_key(doc, keys_depts)) == NULL)
			rc = DA_ERROR(err, DA_EINPUT, "%s event without "
			    "DeptId", ev->type);
		else
			rc = parse_depts(json_get(doc, key), key, ev, err);
		break;
	case IDS_NONE:
		break;
	}
out:
	json_free(doc);
	if (rc != DA_OK)
		event_clear(ev);
	return rc;
}

static enum da_err store_as(struct db *, const struct event *, const char *,
		    size_t, const char *, const char *, int *, long long *,
		    struct da_error *);

enum da_err
events_store(struct db *db, const struct event *ev, const char *payload,
    size_t len, const char *fallback, int *stored, long long *id,
    struct da_error *err)
{
	return store_as(db, ev, payload, len, fallback,
	    ev->kind == EVENT_OTHER ? "ignored" : "pending", stored, id, err);
}

/* Insert the event's row in state (unless its key is there already). */
static enum da_err
store_as(struct db *db, const struct event *ev, const char *payload,
    size_t len, const char *fallback, const char *state, int *stored,
    long long *id, struct da_error *err)
{
	struct db_rows	 r;
	char		 key[EVENT_KEY_MAX];
	long long	 row = 0;
	enum da_err	 rc = DA_OK;

	*stored = 0;
	if (id != NULL)
		*id = 0;
	if (ev->kind == EVENT_CHECK_URL) {
		rc = DA_ERROR(err, DA_EINPUT, "check_url is not stored");
		goto out;
	}
	if (ev->event_id[0] != '\0')
		snprintf(key, sizeof(key), "event:%s", ev->event_id);
	else if (fallback != NULL && *fallback != '\0' &&
	    strlen(fallback) < sizeof(key))
		snprintf(key, sizeof(key), "%s", fallback);
	else {
		rc = DA_ERROR(err, DA_EINPUT, "the event has no eventId "
		    "and no usable key to tell it apart");
		goto out;
	}
	db_query(db, &r, &stmts[STMT_INSERT], DB_ARGS(DB_TEXT(key),
	    DB_TEXT(ev->type), DB_TEXTN(payload, len), DB_INT(db_now()),
	    DB_TEXT(state)), err);
	if ((*stored = db_next(&r) == 1))
		row = db_int(&r, 0);
	if (*stored)
		db_next(&r);	/* the INSERT to its end */
	if ((rc = db_done(&r)) != DA_OK) {
		*stored = 0;
		goto out;
	}
	if (*stored || id == NULL)
		goto out;
	/* Stored before: its id. */
	db_query(db, &r, &stmts[STMT_FIND], DB_ARGS(DB_TEXT(key)), err);
	if (db_next(&r) == 1)
		row = db_int(&r, 0);
	rc = db_done(&r);
out:
	if (id != NULL && rc == DA_OK)
		*id = row;
	return rc;
}

static int
is_local(const struct event *ev)
{
	return ev->kind == EVENT_USER_LEAVE || ev->kind == EVENT_DEPT_REMOVE;
}

enum da_err
events_store_apply(struct db *db, const struct event *ev, const char *payload,
    size_t len, const char *fallback, int *stored, long long *id,
    int *applied, struct da_error *err)
{
	long long	 row = 0;
	enum da_err	 rc;

	*applied = 0;
	if (!is_local(ev))
		return events_store(db, ev, payload, len, fallback, stored, id,
		    err);
	/*
	 * Whatever else is pending: a leaver is out before DingTalk has its
	 * answer. An older event applied later cannot bring them back
	 * unless DingTalk then says they are active (apply_user).
	 */
	if ((rc = db_begin_immediate(db, err)) != DA_OK)
		return rc;
	if ((rc = store_as(db, ev, payload, len, fallback, "applied", stored,
	    &row, err)) != DA_OK)
		goto out;
	if (*stored) {
		/* Local changes only: no DingTalk call inside the lock. */
		if ((rc = events_apply(db, ev, err)) != DA_OK)
			goto out;
		*applied = 1;
		log_msg(LOG_DEBUG, "event %lld (%s) applied", row, ev->type);
	}
out:
	if (rc != DA_OK) {
		db_rollback(db);
		*stored = *applied = 0;
		if (rc != DA_EDB)
			/* It could not be applied here: store it for later. */
			return events_store(db, ev, payload, len, fallback,
			    stored, id, err);
		return rc;
	}
	if (id != NULL)
		*id = row;
	return db_commit(db, err);
}

/*
 * Fetch one user and upsert them; one DingTalk no longer has has left.
 * The answer is written only over the row it was asked for: if a leave
 * was applied while DingTalk was being asked, the answer may predate it,
 * so DingTalk is asked again and its current answer decides (still
 * there and active: a rehire).
 */
static enum da_err
apply_user(struct db *db, const char *userid, struct da_error *err)
{
	struct dt_user	 u;
	struct dir_mark	 mark;
	enum da_err	 rc;
	int		 tries, stale = 0;

	memset(&u, 0, sizeof(u));
	for (tries = 0; tries < 2; tries++) {
		dt_user_clear(&u);
		stale = 0;
		if ((rc = directory_mark_user(db, userid, &mark, err)) != DA_OK)
			break;
		rc = dt_user_get(db, userid, &u, err);
		if (rc == DA_OK)
			rc = directory_upsert_user_marked(db, &u, "callback",
			    &mark, &stale, err);
		else if (rc == DA_ENOTFOUND) {
			log_msg(LOG_INFO, "user %s is unknown to DingTalk: "
			    "marking them as left", userid);
			rc = directory_deactivate_user(db, userid, NULL, err);
		}
		if (rc != DA_OK || !stale)
			break;
		log_msg(LOG_INFO, "user %s changed while DingTalk was asked: "
		    "asking again", userid);
	}
	if (rc == DA_OK && stale)
		rc = DA_ERROR(err, DA_EBUSY, "user %s kept changing while "
		    "DingTalk was asked", userid);
	dt_user_clear(&u);
	return rc;
}

static enum da_err
apply_leave(struct db *db, const char *userid, struct da_error *err)
{
	enum da_err	 rc;
	int		 n = 0;

	if ((rc = directory_deactivate_user(db, userid, &n, err)) == DA_OK)
		log_msg(LOG_INFO, "user %s left the company: %d session(s) "
		    "ended", userid, n);
	return rc;
}

/* Fetch one department and upsert it; one DingTalk no longer has is gone. */
static enum da_err
apply_dept(struct db *db, long long dept_id, struct da_error *err)
{
	struct dt_dept	 d;
	enum da_err	 rc;

	memset(&d, 0, sizeof(d));
	rc = dt_dept_get(db, dept_id, &d, err);
	if (rc == DA_OK)
		rc = directory_upsert_dept(db, &d, err);
	else if (rc == DA_ENOTFOUND)
		rc = directory_remove_dept(db, dept_id, err);
	return rc;
}

enum da_err
events_apply(struct db *db, const struct event *ev, struct da_error *err)
{
	struct da_error	 e;
	enum da_err	 rc = DA_OK;
	size_t		 i;

	for (i = 0; rc == DA_OK && i < ev->nuser; i++) {
		da_error_clear(&e);
		if (ev->kind == EVENT_USER_LEAVE)
			rc = apply_leave(db, ev->userids[i], &e);
		else
			rc = apply_user(db, ev->userids[i], &e);
		if (rc != DA_OK && err != NULL) {
			*err = e;	/* keeps api_code and sub_code */
			DA_ERROR(err, e.code, "user %s: %s", ev->userids[i],
			    e.msg);
		}
	}
	for (i = 0; rc == DA_OK && i < ev->ndept; i++) {
		da_error_clear(&e);
		if (ev->kind == EVENT_DEPT_REMOVE)
			rc = directory_remove_dept(db, ev->dept_ids[i], &e);
		else
			rc = apply_dept(db, ev->dept_ids[i], &e);
		if (rc != DA_OK && err != NULL) {
			*err = e;
			DA_ERROR(err, e.code, "department %lld: %s",
			    ev->dept_ids[i], e.msg);
		}
	}
	return rc;
}

/*
 * Failures that concern one event alone; any other failure means
 * DingTalk (or our side) is not usable right now and stops a run.
 */
static int
failure_is_local(const struct da_error *e)
{
	switch (e->code) {
	case DA_EINPUT:
	case DA_EAPI:
		return 1;
	case DA_EPERM:
		return e->api_code == 50002;	/* outside the app's range */
	default:
		return 0;
	}
}

/*
 * The next pending event after *last: 1 and *id, *payload (allocated)
 * set; 0 when there is none; -1 on error.
 */
static int
next_pending(struct db *db, long long last, long long *id, char **payload,
    struct da_error *err)
{
	struct db_rows	 r;
	int		 found;

	db_query(db, &r, &stmts[STMT_NEXT_PENDING], DB_ARGS(DB_INT(last)),
	    err);
	if ((found = db_next(&r)) == 1) {
		*id = db_int(&r, 0);
		*payload = xstrdup(db_text(&r, 1));
	}
	db_done(&r);
	return found;
}

/*
 * Apply the stored event id and record the outcome on its row: 1
 * applied, 0 failed (*stop set when the failure should end the run), -1
 * when the database failed.
 */
static int
apply_row(struct db *db, long long id, const char *payload,
    struct events_run *run, int *stop, struct da_error *err)
{
	struct event	 ev;
	struct da_error	 e;
	char		 text[EVENT_ERROR_MAX];
	struct db_arg	 detail = DB_TEXT(text);	/* last_error */
	enum stmt	 q;
	int		 rc = 0;

	*stop = 0;
	da_error_clear(&e);
	if (events_parse(payload, strlen(payload), &ev, &e) != DA_OK) {
		/* Not written by us: kept for the operator, out of the way. */
		log_msg(LOG_WARN, "event %lld cannot be parsed: %s", id, e.msg);
		q = STMT_UNUSABLE;
	} else if (events_apply(db, &ev, &e) == DA_OK) {
		log_msg(LOG_INFO, "event %lld (%s) applied", id, ev.type);
		q = STMT_APPLIED;
		detail = DB_INT(db_now());	/* applied_at */
		run->applied++;
		rc = 1;
	} else {
		log_msg(LOG_WARN, "event %lld (%s) stays pending: %s: %s", id,
		    ev.type, da_errname(e.code), e.msg);
		q = STMT_FAILED;
		if (run->failed++ == 0)
			run->first_error = e;
		*stop = !failure_is_local(&e);
	}
	snprintf(text, sizeof(text), "%s: %s", da_errname(e.code), e.msg);
	if (db_run(db, &stmts[q], DB_ARGS(DB_INT(id), detail), err) != DA_OK)
		rc = -1;
	event_clear(&ev);
	return rc;
}

/*
 * The lock file beside the database: fd, or -1 (no file database). Opened
 * once per process and database file, and kept: a FastCGI worker locks it
 * on every push.
 */
static int
lock_open(struct db *db)
{
	static char	*open_path;
	static int	 open_fd = -1;
	const char	*path;
	char		*lock;
	int		 fd;

	path = db_path(db);
	if (*path == '\0')
		return -1;
	if (open_fd != -1 && open_path != NULL && strcmp(open_path, path) == 0)
		return open_fd;
	lock = xasprintf("%s.events-lock", path);
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd == -1)
		log_msg(LOG_WARN, "cannot open %s: %s; applying events "
		    "without it", lock, strerror(errno));
	else {
		if (open_fd != -1)
			close(open_fd);
		free(open_path);
		open_path = xstrdup(path);
		open_fd = fd;
	}
	free(lock);
	return fd;
}

enum da_err
events_apply_pending(struct db *db, int max, int wait,
    struct events_run *run, struct da_error *err)
{
	long long	 last = 0, id;
	char		*payload = NULL;
	enum da_err	 rc = DA_OK;
	int		 fd, n = 0, found, stop = 0, r;

	memset(run, 0, sizeof(*run));
	fd = lock_open(db);
	for (;;) {
		if (fd != -1 && flock(fd, wait ? LOCK_EX : LOCK_EX | LOCK_NB)
		    == -1) {
			if (errno == EWOULDBLOCK) {
				/* The holder looks again before it lets go. */
				run->skipped = 1;
				break;
			}
			log_msg(LOG_WARN, "events lock: %s", strerror(errno));
		}
		while (!stop && (max == 0 || n < max)) {
			if ((found = next_pending(db, last, &id, &payload,
			    err)) <= 0) {
				if (found < 0)
					rc = DA_EDB;
				break;
			}
			last = id;
			n++;
			r = apply_row(db, id, payload, run, &stop, err);
			free(payload);
			payload = NULL;
			if (r < 0) {
				rc = DA_EDB;
				break;
			}
		}
		if (fd != -1)
			flock(fd, LOCK_UN);
		if (rc != DA_OK || stop || (max != 0 && n >= max) ||
		    fd == -1)
			break;
		/* Someone may have stored an event while we held the lock. */
		if ((found = next_pending(db, last, &id, &payload, err)) < 0)
			rc = DA_EDB;
		free(payload);
		payload = NULL;
		if (found <= 0)
			break;
	}
	if (rc == DA_OK)
		rc = events_count_pending(db, &run->pending, err);
	return rc;
}

enum da_err
events_count_pending(struct db *db, long long *n, struct da_error *err)
{
	struct db_rows	 r;

	db_query(db, &r, &stmts[STMT_COUNT_PENDING], DB_NOARGS, err);
	*n = db_next(&r) == 1 ? db_int(&r, 0) : 0;
	return db_done(&r);
}

enum da_err
events_each(struct db *db, int pending_only, long long limit,
    int (*fn)(const struct event_row *, void *), void *arg,
    struct da_error *err)
{
	struct event_row	 row;
	struct db_rows		 r;

	db_query(db, &r, &stmts[pending_only ? STMT_LIST_PENDING : STMT_LIST],
	    DB_ARGS(DB_INT(limit > 0 ? limit : -1)), err);
	while (db_next(&r) == 1) {
		row.id = db_int(&r, 0);
		row.dedupe_key = db_text(&r, 1);
		row.type = db_text(&r, 2);
		row.payload = db_text(&r, 3);
		row.state = db_text(&r, 4);
		row.last_error = db_text(&r, 5);
		row.received_at = db_int(&r, 6);
		row.applied_at = db_int(&r, 7);
		row.attempts = (int)db_int(&r, 8);
		if (fn(&row, arg) != 0)
			break;
	}
	return db_done(&r);
}
