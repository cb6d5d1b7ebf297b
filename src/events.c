/*
 * Callback events: parse a decrypted push, store it once, apply it to
 * the directory (docs/dingtalk.md §b). See events.h.
 */
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "dingtalk.h"
#include "directory.h"
#include "events.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "mem.h"
#include "mono.h"

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

static const char *const source_names[EVENT_SOURCE__MAX] = {
	[EVENT_SOURCE_HTTP] = "http",
	[EVENT_SOURCE_STREAM] = "stream",
};

enum stmt {
	STMT_INSERT,
	STMT_FIND,
	STMT_NEXT_DUE,
	STMT_CLAIM,
	STMT_HELD,
	STMT_APPLIED,
	STMT_RETRY,
	STMT_FAILED,
	STMT_UNUSABLE,
	STMT_COUNT_PENDING,
	STMT_HEALTH,
	STMT_PRUNE,
	STMT_REQUEUE,
	STMT_LIST,
	STMT_LIST_PENDING,
	STMT_LIST_FAILED,
	STMT_LAST_ID,
	STMT_SINCE,
	STMT__MAX
};

#define LIST_COLUMNS \
    "SELECT id, dedupe_key, event_type, payload, state," \
    " coalesce(last_error, ''), received_at, coalesce(applied_at, 0)," \
    " attempts, next_attempt_at, coalesce(invalid_ids, '')"

static const struct db_sql stmts[STMT__MAX] = {
	/*
	 * A new row (its id returned); nothing if its key is there.
	 * claimed_until (?6): held by the process storing it until then.
	 */
	[STMT_INSERT] = { "event store",
	    "INSERT INTO events (dedupe_key, event_type, payload, received_at,"
	    " state, attempts, applied_at, claimed_until, invalid_ids, source)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?5 = 'applied',"
	    " CASE WHEN ?5 = 'applied' THEN ?4 END, ?6, NULLIF(?7, ''), ?8)"
	    " ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
	    .pg = "INSERT INTO events (dedupe_key, event_type, payload,"
	    " received_at, state, attempts, applied_at, claimed_until,"
	    " invalid_ids, source) VALUES (?1, ?2, ?3, ?4, ?5,"
	    " CASE WHEN ?5 = 'applied' THEN 1 ELSE 0 END,"
	    " CASE WHEN ?5 = 'applied' THEN ?4 END, ?6, NULLIF(?7, ''), ?8)"
	    " ON CONFLICT (dedupe_key) DO NOTHING RETURNING id" },
	[STMT_FIND] = { "event lookup",
	    "SELECT id FROM events WHERE dedupe_key = ?1" },
	/* ?2 now, ?3 the latest next attempt time that is due. */
	[STMT_NEXT_DUE] = { "pending events",
	    "SELECT id, payload, attempts FROM events WHERE state = 'pending'"
	    " AND id > ?1 AND claimed_until <= ?2 AND next_attempt_at <= ?3"
	    " ORDER BY id LIMIT 1" },
	[STMT_CLAIM] = { "event claim",
	    "UPDATE events SET claimed_until = ?2 WHERE id = ?1"
	    " AND state = 'pending' AND claimed_until <= ?3" },
	[STMT_HELD] = { "event lookup",
	    "SELECT payload, attempts FROM events WHERE id = ?1"
	    " AND state = 'pending'" },
	[STMT_APPLIED] = { "event update",
	    "UPDATE events SET state = 'applied', attempts = attempts + 1,"
	    " last_error = NULL, applied_at = ?2, claimed_until = 0"
	    " WHERE id = ?1" },
	[STMT_RETRY] = { "event update",
	    "UPDATE events SET attempts = attempts + 1, last_error = ?2,"
	    " next_attempt_at = ?3, claimed_until = 0 WHERE id = ?1" },
	[STMT_FAILED] = { "event update",
	    "UPDATE events SET state = 'failed', attempts = attempts + 1,"
	    " last_error = ?2, claimed_until = 0 WHERE id = ?1" },
	[STMT_UNUSABLE] = { "event update",
	    "UPDATE events SET state = 'ignored', attempts = attempts + 1,"
	    " last_error = ?2, claimed_until = 0 WHERE id = ?1" },
	[STMT_COUNT_PENDING] = { "count pending events",
	    "SELECT count(*) FROM events WHERE state = 'pending'" },
	[STMT_HEALTH] = { "event health",
	    "SELECT (SELECT count(*) FROM events WHERE state = 'pending'),"
	    " (SELECT coalesce(min(received_at), 0) FROM events"
	    "  WHERE state = 'pending'),"
	    " (SELECT count(*) FROM events WHERE state = 'failed'),"
	    " (SELECT coalesce(last_error, '') FROM events"
	    "  WHERE state = 'failed' ORDER BY id DESC LIMIT 1)" },
	/* Finished events only: a pending one is kept whatever its age. */
	[STMT_PRUNE] = { "prune events",
	    "DELETE FROM events WHERE received_at < ?1"
	    " AND state <> 'pending'" },
	[STMT_REQUEUE] = { "event update",
	    "UPDATE events SET state = 'pending', next_attempt_at = 0,"
	    " claimed_until = 0 WHERE state = 'failed'" },
	[STMT_LIST] = { "list events",
	    LIST_COLUMNS " FROM (SELECT * FROM events ORDER BY id DESC"
	    " LIMIT ?1) AS e ORDER BY id" },
	[STMT_LIST_PENDING] = { "list events",
	    LIST_COLUMNS " FROM (SELECT * FROM events WHERE state = 'pending'"
	    " ORDER BY id DESC LIMIT ?1) AS e ORDER BY id" },
	[STMT_LIST_FAILED] = { "list events",
	    LIST_COLUMNS " FROM (SELECT * FROM events WHERE state = 'failed'"
	    " ORDER BY id DESC LIMIT ?1) AS e ORDER BY id" },
	[STMT_LAST_ID] = { "events",
	    "SELECT coalesce(max(id), 0) FROM events" },
	[STMT_SINCE] = { "events",
	    "SELECT payload FROM events WHERE id > ?1 ORDER BY id" },
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

/*
 * Note the id at key[i] that cannot be used (why) in ev->invalid; the
 * first reason is kept in first for a push with no usable id at all.
 */
static void
note_invalid(struct event *ev, const char *key, size_t i, const char *why,
    char *first, size_t size)
{
	size_t	 len = strlen(ev->invalid);

	if (ev->ninvalid++ == 0)
		snprintf(first, size, "%s[%zu] is %s", key, i, why);
	if (len + 1 >= sizeof(ev->invalid))
		return;
	if (snprintf(ev->invalid + len, sizeof(ev->invalid) - len,
	    "%s%s[%zu] (%s)", len ? ", " : "", key, i, why) >=
	    (int)(sizeof(ev->invalid) - len))
		/* Cut at a whole entry: say that more were left out. */
		snprintf(ev->invalid + len, sizeof(ev->invalid) - len,
		    "%s...", len ? ", " : "");
}

/*
 * The ids of a user event: an array of strings, or one string. Ids
 * that cannot be used are noted (ev->invalid); only an event without
 * one usable id is refused.
 */
static enum da_err
parse_users(const json *ids, const char *key, struct event *ev,
    struct da_error *err)
{
	const json	*item = ids;
	const char	*s;
	char		 first[160] = "";
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
			note_invalid(ev, key, i, "not a string", first,
			    sizeof(first));
		else if (!valid_id(s, EVENT_ID_MAX))
			note_invalid(ev, key, i, "not a usable userid (no "
			    "spaces or control characters, at most "
			    EVENT_ID_MAX_TEXT " bytes)", first, sizeof(first));
		else
			ev->userids[ev->nuser++] = xstrdup(s);
	}
	if (ev->nuser == 0)
		return DA_ERROR(err, DA_EINPUT, "%s", first);
	return DA_OK;
}

/* The ids of a department event: numbers or digit strings; as above. */
static enum da_err
parse_depts(const json *ids, const char *key, struct event *ev,
    struct da_error *err)
{
	const json	*item = ids;
	char		 first[160] = "";
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
			note_invalid(ev, key, i, "not a positive department "
			    "id", first, sizeof(first));
		else
			ev->dept_ids[ev->ndept++] = id;
	}
	if (ev->ndept == 0)
		return DA_ERROR(err, DA_EINPUT, "%s", first);
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

/*
 * The dedupe key of ev: "event:" + its eventId (or BizId), else fallback.
 * DA_EINPUT when there is neither.
 */
static enum da_err
event_key(const struct event *ev, const char *fallback, char *key,
    size_t size, struct da_error *err)
{
	if (ev->kind == EVENT_CHECK_URL)
		return DA_ERROR(err, DA_EINPUT, "check_url is not stored");
	if (ev->event_id[0] != '\0')
		snprintf(key, size, "event:%s", ev->event_id);
	else if (fallback != NULL && *fallback != '\0' &&
	    strlen(fallback) < size)
		snprintf(key, size, "%s", fallback);
	else
		return DA_ERROR(err, DA_EINPUT, "the event has no eventId "
		    "and no usable key to tell it apart");
	return DA_OK;
}

/* The id of the row stored under key in *id, 0 when there is none. */
static enum da_err
find(struct db *db, const char *key, long long *id, struct da_error *err)
{
	struct db_rows	 r;

	*id = 0;
	db_query(db, &r, &stmts[STMT_FIND], DB_ARGS(DB_TEXT(key)), err);
	if (db_next(&r) == 1)
		*id = db_int(&r, 0);
	return db_done(&r);
}

/*
 * Insert the event's row in state under key (unless the key is there
 * already), held by the caller until claimed_until (0: by nobody).
 */
static enum da_err
store_as(struct db *db, const struct event *ev, const char *payload,
    size_t len, const char *key, const char *state, long long claimed_until,
    int *stored, long long *id, struct da_error *err)
{
	struct db_rows	 r;
	long long	 row = 0;
	enum da_err	 rc;

	db_query(db, &r, &stmts[STMT_INSERT], DB_ARGS(DB_TEXT(key),
	    DB_TEXT(ev->type), DB_TEXTN(payload, len), DB_INT(db_now()),
	    DB_TEXT(state), DB_INT(claimed_until), DB_TEXT(ev->invalid),
	    DB_TEXT(source_names[ev->source])), err);
	if ((*stored = db_next(&r) == 1))
		row = db_int(&r, 0);
	if (*stored)
		db_next(&r);	/* the INSERT to its end */
	if ((rc = db_done(&r)) != DA_OK) {
		*stored = 0;
		return rc;
	}
	if (!*stored)	/* stored before: its id */
		rc = find(db, key, &row, err);
	if (id != NULL && rc == DA_OK)
		*id = row;
	return rc;
}

/* Count ev's outcome (metrics.h) under its kind's name, never the push's. */
static void
count_event(const struct event *ev, const char *outcome)
{
	char		 labels[METRICS_LABELS_MAX];
	const char	*type = event_kind_name(ev->kind);

	snprintf(labels, sizeof(labels), "type=\"%s\",outcome=\"%s\"",
	    *type != '\0' ? type : "other", outcome);
	metrics_count(METRICS_EVENTS, labels);
}

enum da_err
events_store(struct db *db, const struct event *ev, const char *payload,
    size_t len, const char *fallback, int *stored, long long *id,
    struct da_error *err)
{
	char		 key[EVENT_KEY_MAX];
	enum da_err	 rc;

	*stored = 0;
	if (id != NULL)
		*id = 0;
	if ((rc = event_key(ev, fallback, key, sizeof(key), err)) != DA_OK)
		return rc;
	if ((rc = store_as(db, ev, payload, len, key,
	    ev->kind == EVENT_OTHER ? "ignored" : "pending", 0, stored, id,
	    err)) == DA_OK)
		count_event(ev, *stored ? "stored" : "duplicate");
	return rc;
}

static int
is_local(const struct event *ev)
{
	return ev->kind == EVENT_USER_LEAVE || ev->kind == EVENT_DEPT_REMOVE;
}

/* s failed with rc (err): nothing of it stays, busy tells why. */
static void
store_failed(struct db *db, struct event_store *s, enum da_err rc,
    const struct da_error *err)
{
	s->rc = rc;
	if (err != &s->err)
		s->err = *err;
	s->busy = db_busy(db);
	s->stored = s->applied = 0;
	s->id = 0;
}

/*
 * Store (and when it is local, apply) one new push inside the batch's
 * transaction, under the savepoint "push": DA_OK, or the push's error
 * with everything it wrote rolled back.
 */
static enum da_err
store_one(struct db *db, struct event_store *s)
{
	const struct event	*ev = s->ev;
	struct da_error		*err = &s->err;
	enum da_err		 rc;

	if ((rc = db_exec(db, "SAVEPOINT push", err)) != DA_OK)
		return rc;
	if (!is_local(ev)) {
		/*
		 * Ours to apply after the answer; anyone's if we die first.
		 * The Stream's receiver is the worker, whose next pass
		 * applies what is due and held by nobody.
		 */
		rc = store_as(db, ev, s->payload, s->len, s->key,
		    ev->kind == EVENT_OTHER ? "ignored" : "pending",
		    ev->kind == EVENT_OTHER ||
		    ev->source == EVENT_SOURCE_STREAM ? 0 : db_now() +
		    EVENT_CLAIM_SECONDS, &s->stored, &s->id, err);
	} else if ((rc = store_as(db, ev, s->payload, s->len, s->key,
	    "applied", 0, &s->stored, &s->id, err)) == DA_OK && s->stored) {
		/*
		 * Whatever else is pending: a leaver is out before DingTalk
		 * has its answer. An older event applied later cannot bring
		 * them back unless DingTalk then says they are active
		 * (apply_user). Local changes only: no DingTalk call here.
		 */
		if ((rc = events_apply(db, ev, err)) == DA_OK) {
			s->applied = 1;
			log_msg(LOG_DEBUG, "event %lld (%s) applied", s->id,
			    ev->type);
		} else if (rc != DA_EDB && db_exec(db,
		    "ROLLBACK TO SAVEPOINT push", err) == DA_OK) {
			/* It could not be applied here: store it for later. */
			rc = store_as(db, ev, s->payload, s->len, s->key,
			    "pending", 0, &s->stored, &s->id, err);
		}
	}
	if (rc != DA_OK) {
		(void)db_exec(db, "ROLLBACK TO SAVEPOINT push", NULL);
		(void)db_exec(db, "RELEASE SAVEPOINT push", NULL);
		return rc;
	}
	return db_exec(db, "RELEASE SAVEPOINT push", err);
}

/*
 * The memory of seen keys (events.h): SEEN_SETS sets of SEEN_WAYS slots,
 * a key's set chosen by its FNV-1a hash. Keys are only those of pushes
 * whose signature checked, so nobody chooses them to crowd others out;
 * a collision only costs a read.
 */
#define SEEN_SETS	512
#define SEEN_WAYS	4
#define SEEN_KEY	48	/* "sig:" + 40; "event:" + a 32- or 36-character id */

struct seen_slot {
	char			 key[SEEN_KEY];	/* "" when free */
	long long		 id;
	long long		 learnt_ms;	/* mono_ms() */
	unsigned long long	 dev, ino;	/* db_file_id */
};

struct events_seen {
	pthread_mutex_t		 lock;
	struct seen_slot	 slot[SEEN_SETS][SEEN_WAYS];
};

struct events_seen *
events_seen_new(void)
{
	struct events_seen	*seen;

	/* Large and zeroed: its pages are only touched as keys arrive. */
	seen = xcalloc(1, sizeof(*seen));
	pthread_mutex_init(&seen->lock, NULL);
	return seen;
}

void
events_seen_free(struct events_seen *seen)
{
	if (seen == NULL)
		return;
	pthread_mutex_destroy(&seen->lock);
	free(seen);
}

static struct seen_slot *
seen_set(struct events_seen *seen, const char *key)
{
	uint64_t		 h = 0xcbf29ce484222325ULL;
	const unsigned char	*p;

	for (p = (const unsigned char *)key; *p != '\0'; p++)
		h = (h ^ *p) * 0x100000001b3ULL;
	return seen->slot[h & (SEEN_SETS - 1)];
}

/* The id stored under key as learnt on db's file, 0 when not known. */
static long long
seen_find(struct events_seen *seen, struct db *db, const char *key)
{
	struct seen_slot	*set;
	unsigned long long	 dev, ino;
	long long		 id = 0, now = mono_ms();
	int			 i;

	if (seen == NULL || strlen(key) >= SEEN_KEY)
		return 0;
	db_file_id(db, &dev, &ino);
	set = seen_set(seen, key);
	pthread_mutex_lock(&seen->lock);
	for (i = 0; i < SEEN_WAYS; i++)
		if (set[i].dev == dev && set[i].ino == ino &&
		    now - set[i].learnt_ms < EVENTS_SEEN_SECONDS * 1000LL &&
		    strcmp(set[i].key, key) == 0) {
			id = set[i].id;
			break;
		}
	pthread_mutex_unlock(&seen->lock);
	return id;
}

/* Remember that key is stored as id on db's file (after its commit). */
static void
seen_add(struct events_seen *seen, struct db *db, const char *key,
    long long id)
{
	struct seen_slot	*set, *use;
	unsigned long long	 dev, ino;
	int			 i;

	if (seen == NULL || id == 0 || strlen(key) >= SEEN_KEY)
		return;
	db_file_id(db, &dev, &ino);
	set = seen_set(seen, key);
	pthread_mutex_lock(&seen->lock);
	/* The key's own slot, else the one learnt longest ago. */
	use = &set[0];
	for (i = 0; i < SEEN_WAYS; i++) {
		if (strcmp(set[i].key, key) == 0) {
			use = &set[i];
			break;
		}
		if (set[i].learnt_ms < use->learnt_ms)
			use = &set[i];
	}
	snprintf(use->key, sizeof(use->key), "%s", key);
	use->id = id;
	use->learnt_ms = mono_ms();
	use->dev = dev;
	use->ino = ino;
	pthread_mutex_unlock(&seen->lock);
}

int
events_store_seen(struct db *db, struct event_store *s)
{
	enum da_err	 rc;

	da_error_clear(&s->err);
	s->rc = DA_OK;
	s->busy = s->stored = s->applied = s->write = s->read = 0;
	s->id = 0;
	if ((rc = event_key(s->ev, s->fallback, s->key, sizeof(s->key),
	    &s->err)) != DA_OK) {
		store_failed(db, s, rc, &s->err);
		return 1;
	}
	/* Stored before (a retry, a replay): known here, or one read. */
	if ((s->id = seen_find(s->seen, db, s->key)) == 0 && db != NULL) {
		if ((rc = find(db, s->key, &s->id, &s->err)) != DA_OK) {
			store_failed(db, s, rc, &s->err);
			return 1;
		}
		seen_add(s->seen, db, s->key, s->id);
	}
	if (s->id != 0) {
		count_event(s->ev, "duplicate");
		return 1;
	}
	s->write = 1;
	s->read = db != NULL;
	return 0;
}

enum da_err
events_store_batch(struct db *db, struct event_store *const *v, size_t n)
{
	struct event_store	*s;
	struct da_error		 err;
	enum da_err		 rc = DA_OK, first = DA_OK;
	size_t			 i, todo = 0;

	da_error_clear(&err);
	/*
	 * Each push read first, unless its request thread has just read it
	 * and found it new (group commit): then the INSERT's ON CONFLICT is
	 * what tells a push another process stored in between.
	 */
	for (i = 0; i < n; i++)
		if (v[i]->read || !events_store_seen(db, v[i]))
			todo++;
	if (todo > 0 && (rc = db_begin_immediate(db, &err)) == DA_OK) {
		for (i = 0; i < n; i++) {
			s = v[i];
			if (!s->write || (rc = store_one(db, s)) == DA_OK)
				continue;
			store_failed(db, s, rc, &s->err);
			s->write = 0;
			/* An error that ended the transaction ends the batch. */
			if (!db_in_transaction(db)) {
				err = s->err;
				rc = DA_EDB;
				break;
			}
		}
		if (rc == DA_OK || db_in_transaction(db))
			rc = db_commit(db, &err);
	}
	if (todo > 0 && rc != DA_OK) {
		/* Nothing of the transaction is kept: say so for each. */
		for (i = 0; i < n; i++)
			if (v[i]->write)
				store_failed(db, v[i], rc, &err);
		db_rollback(db);
	}
	for (i = 0; i < n; i++) {
		s = v[i];
		if (s->rc == DA_OK && s->write) {
			/* Committed (or found stored by another): remember. */
			seen_add(s->seen, db, s->key, s->id);
			count_event(s->ev, s->stored ? "stored" : "duplicate");
		}
		if (s->rc != DA_OK && first == DA_OK)
			first = s->rc;
	}
	return first;
}

enum da_err
events_store_apply(struct db *db, const struct event *ev, const char *payload,
    size_t len, const char *fallback, int *stored, long long *id,
    int *applied, struct da_error *err)
{
	struct event_store	 s, *one = &s;

	memset(&s, 0, sizeof(s));
	s.ev = ev;
	s.payload = payload;
	s.len = len;
	s.fallback = fallback;
	(void)events_store_batch(db, &one, 1);
	*stored = s.stored;
	*applied = s.applied;
	if (id != NULL)
		*id = s.id;
	if (s.rc != DA_OK && err != NULL)
		*err = s.err;
	return s.rc;
}

/*
 * Fetch one user and upsert them; one DingTalk no longer has has left.
 * The answer is written only over the row it was asked for: if a leave
 * was applied while DingTalk was being asked, the answer may predate it,
 * so DingTalk is asked again and its current answer decides (still
 * there and active: a rehire).
 */
static enum da_err
apply_user(struct db *db, const char *userid, const char *source,
    struct da_error *err)
{
	struct dir_user	 u;
	struct dir_mark	 mark;
	enum da_err	 rc;
	int		 tries, stale = 0;

	memset(&u, 0, sizeof(u));
	for (tries = 0; tries < 2; tries++) {
		dir_user_clear(&u);
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
			rc = directory_offboard_user(db, userid, source, NULL,
			    err);
		}
		if (rc != DA_OK || !stale)
			break;
		log_msg(LOG_INFO, "user %s changed while DingTalk was asked: "
		    "asking again", userid);
	}
	if (rc == DA_OK && stale)
		rc = DA_ERROR(err, DA_EBUSY, "user %s kept changing while "
		    "DingTalk was asked", userid);
	dir_user_clear(&u);
	return rc;
}

static enum da_err
apply_leave(struct db *db, const char *userid, const char *source,
    struct da_error *err)
{
	enum da_err	 rc;
	int		 n = 0;

	if ((rc = directory_offboard_user(db, userid, source, &n, err)) ==
	    DA_OK)
		log_msg(LOG_INFO, "user %s left the company: %d session(s) "
		    "ended", userid, n);
	return rc;
}

/* Fetch one department and upsert it; one DingTalk no longer has is gone. */
static enum da_err
apply_dept(struct db *db, long long dept_id, struct da_error *err)
{
	struct dir_dept	 d;
	enum da_err	 rc;

	memset(&d, 0, sizeof(d));
	rc = dt_dept_get(db, dept_id, &d, err);
	if (rc == DA_OK)
		rc = directory_upsert_dept(db, &d, err);
	else if (rc == DA_ENOTFOUND)
		rc = directory_remove_dept(db, dept_id, err);
	return rc;
}

int
events_failure_is_permanent(const struct da_error *e)
{
	switch (e->code) {
	case DA_EINPUT:
	case DA_ENOTFOUND:
		return 1;
	case DA_EPERM:
		return e->api_code == 50002;	/* outside the app's range */
	default:
		return 0;
	}
}

/*
 * Does e say that DingTalk (or our side) is not usable right now, so
 * that asking about the next user or event would fail the same way?
 */
static int
failure_stops(const struct da_error *e)
{
	return !events_failure_is_permanent(e) && e->code != DA_EAPI &&
	    e->code != DA_EBUSY;
}

/*
 * Keep the failure that decides the event's fate in *worst: a transient
 * one over a permanent one (the event is tried again), the first of each.
 */
static void
note_failure(struct da_error *worst, int *have, const struct da_error *e,
    const char *what)
{
	if (*have && (events_failure_is_permanent(e) ||
	    !events_failure_is_permanent(worst)))
		return;
	*worst = *e;	/* keeps api_code and sub_code */
	DA_ERROR(worst, e->code, "%s: %s", what, e->msg);
	*have = 1;
}

enum da_err
events_apply(struct db *db, const struct event *ev, struct da_error *err)
{
	struct da_error	 e, worst;
	char		 what[EVENT_ID_MAX + 32], source[EVENT_TYPE_MAX +
			    EVENT_KEY_MAX + 16];
	enum da_err	 rc;
	size_t		 i;
	int		 have = 0, stop = 0;

	da_error_clear(&worst);
	/* An offboarding names the event that did it (audit.h). */
	snprintf(source, sizeof(source), "event %s%s%s", ev->type,
	    ev->event_id[0] ? " " : "", ev->event_id);
	for (i = 0; !stop && i < ev->nuser; i++) {
		da_error_clear(&e);
		if (ev->kind == EVENT_USER_LEAVE)
			rc = apply_leave(db, ev->userids[i], source, &e);
		else
			rc = apply_user(db, ev->userids[i], source, &e);
		if (rc != DA_OK) {
			snprintf(what, sizeof(what), "user %s",
			    ev->userids[i]);
			note_failure(&worst, &have, &e, what);
			stop = failure_stops(&e);
		}
	}
	for (i = 0; !stop && i < ev->ndept; i++) {
		da_error_clear(&e);
		if (ev->kind == EVENT_DEPT_REMOVE)
			rc = directory_remove_dept(db, ev->dept_ids[i], &e);
		else
			rc = apply_dept(db, ev->dept_ids[i], &e);
		if (rc != DA_OK) {
			snprintf(what, sizeof(what), "department %lld",
			    ev->dept_ids[i]);
			note_failure(&worst, &have, &e, what);
			stop = failure_stops(&e);
		}
	}
	count_event(ev, have ? "failed" : "applied");
	if (!have)
		return DA_OK;
	if (err != NULL)
		*err = worst;
	return worst.code;
}

/* Seconds before attempt number n + 1 of an event tried n times. */
static long long
retry_delay(int n)
{
	long long	 d = EVENT_RETRY_FIRST;

	while (--n > 0 && d < EVENT_RETRY_LONGEST)
		d *= 2;
	return d < EVENT_RETRY_LONGEST ? d : EVENT_RETRY_LONGEST;
}

/*
 * Apply the stored event id, tried attempts times before and held by
 * us, and record the outcome on its row (which lets go of it): applied;
 * tried again after a delay; or failed for good (a permanent failure,
 * or EVENT_ATTEMPTS_MAX attempts). *stop is set when the failure says
 * DingTalk is not usable now. DA_EDB when the database failed.
 */
static enum da_err
apply_row(struct db *db, long long id, const char *payload, int attempts,
    struct events_run *run, int *stop, struct da_error *err)
{
	struct event	 ev;
	struct da_error	 e;
	char		 text[EVENT_ERROR_MAX];
	enum stmt	 q;
	enum da_err	 rc;
	long long	 now = db_now(), next = 0;

	*stop = 0;
	da_error_clear(&e);
	attempts++;
	if (events_parse(payload, strlen(payload), &ev, &e) != DA_OK) {
		/* Not written by us: kept for the operator, out of the way. */
		log_msg(LOG_WARN, "event %lld cannot be parsed: %s", id, e.msg);
		q = STMT_UNUSABLE;
	} else if (events_apply(db, &ev, &e) == DA_OK) {
		log_msg(LOG_INFO, "event %lld (%s) applied", id, ev.type);
		q = STMT_APPLIED;
		run->applied++;
	} else if (events_failure_is_permanent(&e) ||
	    attempts >= EVENT_ATTEMPTS_MAX) {
		log_msg(LOG_WARN, "event %lld (%s) failed for good after %d "
		    "attempt(s): %s: %s", id, ev.type, attempts,
		    da_errname(e.code), e.msg);
		q = STMT_FAILED;
		if (run->failed++ == 0)
			run->first_error = e;
		run->gave_up++;
	} else {
		next = now + retry_delay(attempts);
		log_msg(LOG_WARN, "event %lld (%s) will be tried again in "
		    "%lld s: %s: %s", id, ev.type, next - now,
		    da_errname(e.code), e.msg);
		q = STMT_RETRY;
		if (run->failed++ == 0)
			run->first_error = e;
		*stop = failure_stops(&e);
	}
	if (q == STMT_FAILED && !events_failure_is_permanent(&e))
		snprintf(text, sizeof(text), "%s: gave up after %d attempts: "
		    "%s", da_errname(e.code), attempts, e.msg);
	else
		snprintf(text, sizeof(text), "%s: %s", da_errname(e.code),
		    e.msg);
	event_clear(&ev);
	switch (q) {
	case STMT_APPLIED:
		rc = db_run(db, &stmts[q], DB_ARGS(DB_INT(id), DB_INT(now)),
		    err);
		break;
	case STMT_RETRY:
		rc = db_run(db, &stmts[q], DB_ARGS(DB_INT(id), DB_TEXT(text),
		    DB_INT(next)), err);
		break;
	default:
		rc = db_run(db, &stmts[q], DB_ARGS(DB_INT(id), DB_TEXT(text)),
		    err);
		break;
	}
	return rc;
}

/*
 * The next pending event after last that is due (all: whatever its next
 * attempt time) and held by nobody, claimed for us: 1 with *id,
 * *payload (allocated) and *attempts set; 0 when there is none; -1 on
 * error. Another process may claim a row between the look and the
 * claim: then the next one is looked at.
 */
static int
claim_next(struct db *db, long long *last, int all, long long *id,
    char **payload, int *attempts, struct da_error *err)
{
	struct db_rows	 r;
	long long	 now;
	int		 found;

	for (;;) {
		now = db_now();
		db_query(db, &r, &stmts[STMT_NEXT_DUE], DB_ARGS(DB_INT(*last),
		    DB_INT(now), DB_INT(all ? LLONG_MAX : now)), err);
		if ((found = db_next(&r)) == 1) {
			*id = db_int(&r, 0);
			*payload = xstrdup(db_text(&r, 1));
			*attempts = (int)db_int(&r, 2);
		}
		if (db_done(&r) != DA_OK)
			found = -1;
		if (found != 1)
			return found;
		*last = *id;
		if (db_run(db, &stmts[STMT_CLAIM], DB_ARGS(DB_INT(*id),
		    DB_INT(now + EVENT_CLAIM_SECONDS), DB_INT(now)), err) !=
		    DA_OK) {
			free(*payload);
			*payload = NULL;
			return -1;
		}
		if (db_changes(db) == 1)
			return 1;
		free(*payload);	/* someone else's now */
		*payload = NULL;
	}
}

/* The row of the event id that we hold: 1, 0 when it is not pending. */
static int
held_row(struct db *db, long long id, char **payload, int *attempts,
    struct da_error *err)
{
	struct db_rows	 r;
	int		 found;

	db_query(db, &r, &stmts[STMT_HELD], DB_ARGS(DB_INT(id)), err);
	if ((found = db_next(&r)) == 1) {
		*payload = xstrdup(db_text(&r, 0));
		*attempts = (int)db_int(&r, 1);
	}
	if (db_done(&r) != DA_OK)
		found = -1;
	return found;
}

enum da_err
events_apply_pending(struct db *db, long long own, long budget_ms, int all,
    struct events_run *run, struct da_error *err)
{
	long long	 last = 0, id = 0, deadline;
	char		*payload = NULL;
	enum da_err	 rc = DA_OK;
	int		 found, attempts = 0, stop = 0;

	memset(run, 0, sizeof(*run));
	deadline = mono_ms() + budget_ms;
	if (own > 0) {
		/* Our own event first, whatever the budget. */
		if ((found = held_row(db, own, &payload, &attempts, err)) < 0)
			rc = DA_EDB;
		else if (found == 1)
			rc = apply_row(db, own, payload, attempts, run, &stop,
			    err);
		free(payload);
		payload = NULL;
	}
	while (rc == DA_OK && !stop &&
	    (budget_ms <= 0 || mono_ms() < deadline)) {
		if ((found = claim_next(db, &last, all, &id, &payload,
		    &attempts, err)) <= 0) {
			if (found < 0)
				rc = DA_EDB;
			break;
		}
		rc = apply_row(db, id, payload, attempts, run, &stop, err);
		free(payload);
		payload = NULL;
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
events_last_id(struct db *db, long long *id, struct da_error *err)
{
	struct db_rows	 r;

	db_query(db, &r, &stmts[STMT_LAST_ID], DB_NOARGS, err);
	*id = db_next(&r) == 1 ? db_int(&r, 0) : 0;
	return db_done(&r);
}

enum da_err
events_each_since(struct db *db, long long after,
    enum da_err (*fn)(const struct event *, void *, struct da_error *),
    void *arg, struct da_error *err)
{
	struct db_rows	 r;
	struct event	 ev;
	struct da_error	 e;
	const char	*p;
	enum da_err	 rc = DA_OK;

	db_query(db, &r, &stmts[STMT_SINCE], DB_ARGS(DB_INT(after)), err);
	while (rc == DA_OK && db_next(&r) == 1) {
		p = db_text(&r, 0);
		/* Stored events parsed when they came; one that no longer
		 * does names nobody. */
		if (events_parse(p, strlen(p), &ev, &e) != DA_OK)
			continue;
		rc = fn(&ev, arg, err);
		event_clear(&ev);
	}
	if (rc != DA_OK) {
		db_done(&r);
		return rc;
	}
	return db_done(&r);
}

enum da_err
events_health(struct db *db, struct events_health *h, struct da_error *err)
{
	struct db_rows	 r;

	memset(h, 0, sizeof(*h));
	db_query(db, &r, &stmts[STMT_HEALTH], DB_NOARGS, err);
	if (db_next(&r) == 1) {
		h->pending = db_int(&r, 0);
		h->oldest_pending = db_int(&r, 1);
		h->failed = db_int(&r, 2);
		snprintf(h->last_failure, sizeof(h->last_failure), "%s",
		    db_text(&r, 3));
	}
	return db_done(&r);
}

enum da_err
events_prune(struct db *db, long long before, long long *n,
    struct da_error *err)
{
	enum da_err	 rc;

	*n = 0;
	if ((rc = db_run(db, &stmts[STMT_PRUNE], DB_ARGS(DB_INT(before)),
	    err)) == DA_OK)
		*n = db_changes(db);
	return rc;
}

enum da_err
events_requeue_failed(struct db *db, long long *n, struct da_error *err)
{
	enum da_err	 rc;

	*n = 0;
	if ((rc = db_run(db, &stmts[STMT_REQUEUE], DB_NOARGS, err)) == DA_OK)
		*n = db_changes(db);
	return rc;
}

long long
events_keep_seconds(long long window, long long retention_days)
{
	long long	 keep = retention_days * 86400;

	if (window == 0)
		return 0;	/* never prune */
	if (keep < window + 86400)
		keep = window + 86400;
	return keep;
}

enum da_err
events_each(struct db *db, enum events_filter filter, long long limit,
    int (*fn)(const struct event_row *, void *), void *arg,
    struct da_error *err)
{
	static const enum stmt	 lists[] = {
		[EVENTS_ALL] = STMT_LIST,
		[EVENTS_PENDING] = STMT_LIST_PENDING,
		[EVENTS_FAILED] = STMT_LIST_FAILED,
	};
	struct event_row	 row;
	struct db_rows		 r;

	db_query(db, &r, &stmts[lists[filter]],
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
		row.next_attempt_at = db_int(&r, 9);
		row.invalid_ids = db_text(&r, 10);
		if (fn(&row, arg) != 0)
			break;
	}
	return db_done(&r);
}
