#include <stdio.h>
#include <string.h>

#include "db.h"
#include "requests.h"

enum stmt {
	STMT_LAST_DECIDED,
	STMT_PENDING,
	STMT_INSERT,
	STMT_AGAIN,
	STMT_LIST_PENDING,
	STMT_LIST_ALL,
	STMT_GET,
	STMT_REJECT,
	STMT_APPROVE_USER,
	STMT_PRUNE,
	STMT_TO_NOTIFY,
	STMT_NOTIFY_SENT,
	STMT_NOTIFY_FAILED,
	STMT_COUNT_PENDING,
	STMT__MAX
};

#define LIST_COLUMNS \
    "SELECT id, userid, unionid, name, status, attempts, created_at," \
    " updated_at, coalesce(decided_at, 0) FROM login_requests"

static const struct db_sql stmts[STMT__MAX] = {
	/* The most recent decided request, to honour an operator's "no". */
	[STMT_LAST_DECIDED] = { "login request lookup",
	    "SELECT status FROM login_requests WHERE userid = ?1"
	    " AND status <> 'pending' ORDER BY decided_at DESC, id DESC"
	    " LIMIT 1" },
	[STMT_PENDING] = { "login request lookup",
	    "SELECT 1 FROM login_requests WHERE userid = ?1"
	    " AND status = 'pending'" },
	[STMT_INSERT] = { "login request",
	    "INSERT INTO login_requests (userid, unionid, name, status,"
	    " attempts, created_at, updated_at)"
	    " VALUES (?1, ?2, ?3, 'pending', 1, ?4, ?4)" },
	[STMT_AGAIN] = { "login request",
	    "UPDATE login_requests SET attempts = attempts + 1,"
	    " updated_at = ?4,"
	    " unionid = CASE WHEN ?2 <> '' THEN ?2 ELSE unionid END,"
	    " name = CASE WHEN ?3 <> '' THEN ?3 ELSE name END"
	    " WHERE userid = ?1 AND status = 'pending'" },
	[STMT_LIST_PENDING] = { "login requests",
	    LIST_COLUMNS " WHERE status = 'pending' ORDER BY id" },
	[STMT_LIST_ALL] = { "login requests",
	    LIST_COLUMNS " ORDER BY id" },
	[STMT_GET] = { "login requests",
	    "SELECT userid, status FROM login_requests WHERE id = ?1" },
	[STMT_REJECT] = { "login requests",
	    "UPDATE login_requests SET status = 'rejected', decided_at = ?2,"
	    " updated_at = ?2 WHERE id = ?1 AND status = 'pending'" },
	[STMT_PRUNE] = { "prune login requests",
	    "DELETE FROM login_requests WHERE status <> 'pending'"
	    " AND decided_at < ?1" },
	[STMT_COUNT_PENDING] = { "login requests",
	    "SELECT count(*) FROM login_requests WHERE status = 'pending'" },
	[STMT_TO_NOTIFY] = { "requests to notify",
	    "SELECT id, userid, unionid, name, status, notify_attempts,"
	    " created_at, updated_at, 0 FROM login_requests"
	    " WHERE status = 'pending' AND notified_at IS NULL"
	    " AND notify_next_at <= ?1 ORDER BY notify_next_at, id"
	    " LIMIT ?2" },
	[STMT_NOTIFY_SENT] = { "request notified",
	    "UPDATE login_requests SET notified_at = ?2,"
	    " notify_attempts = notify_attempts + 1, notify_error = NULL"
	    " WHERE id = ?1" },
	/* next_at 0: given up, parked far away (it stays pending). */
	[STMT_NOTIFY_FAILED] = { "request notified",
	    "UPDATE login_requests SET notify_attempts = notify_attempts + 1,"
	    " notify_error = ?2,"
	    " notify_next_at = CASE WHEN ?3 > 0 THEN ?3 ELSE 9e15 END"
	    " WHERE id = ?1" },
	[STMT_APPROVE_USER] = { "login requests",
	    "UPDATE login_requests SET status = 'approved', decided_at = ?2,"
	    " updated_at = ?2 WHERE userid = ?1 AND status = 'pending'" },
};

static enum da_err each_row(struct db_rows *,
		    int (*)(const struct request_row *, void *), void *);

/*
 * Does statement q, bound with userid, yield a row? 1 (its first column
 * copied into status if not NULL), 0, or -1 on error.
 */
static int
has_row(struct db *db, enum stmt q, const char *userid, char *status,
    size_t size, struct da_error *err)
{
	struct db_rows	 r;
	int		 found;

	db_query(db, &r, &stmts[q], DB_ARGS(DB_TEXT(userid)), err);
	if ((found = db_next(&r)) == 1 && status != NULL)
		snprintf(status, size, "%s", db_text(&r, 0));
	db_done(&r);
	return found;
}

enum da_err
requests_record(struct db *db, const char *userid, const char *unionid,
    const char *name, enum requests_outcome *outcome, struct da_error *err)
{
	char		 last[16] = "";
	enum da_err	 rc;
	int		 pending, own = !db_in_transaction(db);

	*outcome = REQUESTS_NEW;
	if (own && (rc = db_begin_immediate(db, err)) != DA_OK)
		return rc;
	if ((pending = has_row(db, STMT_PENDING, userid, NULL, 0, err)) < 0 ||
	    has_row(db, STMT_LAST_DECIDED, userid, last, sizeof(last),
	    err) < 0) {
		rc = DA_EDB;
		goto out;
	}
	if (!pending && strcmp(last, "rejected") == 0) {
		*outcome = REQUESTS_REJECTED;
		goto out;
	}
	rc = db_run(db, &stmts[pending ? STMT_AGAIN : STMT_INSERT],
	    DB_ARGS(DB_TEXT(userid), DB_TEXT(unionid != NULL ? unionid : ""),
	    DB_TEXT(name != NULL ? name : ""), DB_INT(db_now())), err);
	if (rc == DA_OK && pending)
		*outcome = REQUESTS_AGAIN;
out:
	if (!own)
		return rc;
	if (rc == DA_OK)
		return db_commit(db, err);
	db_rollback(db);
	return rc;
}

enum da_err
requests_each(struct db *db, int all,
    int (*fn)(const struct request_row *, void *), void *arg,
    struct da_error *err)
{
	struct db_rows		 r;

	db_query(db, &r, &stmts[all ? STMT_LIST_ALL : STMT_LIST_PENDING],
	    DB_NOARGS, err);
	return each_row(&r, fn, arg);
}

/* The rows of a query in LIST_COLUMNS' order, to fn. */
static enum da_err
each_row(struct db_rows *r, int (*fn)(const struct request_row *, void *),
    void *arg)
{
	struct request_row	 row;

	while (db_next(r) == 1) {
		row.id = db_int(r, 0);
		row.userid = db_text(r, 1);
		row.unionid = db_text(r, 2);
		row.name = db_text(r, 3);
		row.status = db_text(r, 4);
		row.attempts = db_int(r, 5);
		row.created_at = db_int(r, 6);
		row.updated_at = db_int(r, 7);
		row.decided_at = db_int(r, 8);
		if (fn(&row, arg) != 0)
			break;
	}
	return db_done(r);
}

enum da_err
requests_count_pending(struct db *db, long long *n, struct da_error *err)
{
	struct db_rows	 r;

	*n = 0;
	db_query(db, &r, &stmts[STMT_COUNT_PENDING], DB_NOARGS, err);
	if (db_next(&r) == 1)
		*n = db_int(&r, 0);
	return db_done(&r);
}

enum da_err
requests_each_to_notify(struct db *db, long long now, long long limit,
    int (*fn)(const struct request_row *, void *), void *arg,
    struct da_error *err)
{
	struct db_rows	 r;

	db_query(db, &r, &stmts[STMT_TO_NOTIFY], DB_ARGS(DB_INT(now),
	    DB_INT(limit)), err);
	return each_row(&r, fn, arg);
}

enum da_err
requests_notify_done(struct db *db, long long id, int sent, const char *why,
    long long next_at, struct da_error *err)
{
	if (sent)
		return db_run(db, &stmts[STMT_NOTIFY_SENT], DB_ARGS(DB_INT(id),
		    DB_INT(db_now())), err);
	return db_run(db, &stmts[STMT_NOTIFY_FAILED], DB_ARGS(DB_INT(id),
	    DB_TEXT(why), DB_INT(next_at)), err);
}

enum da_err
requests_get(struct db *db, long long id, char *userid, size_t userid_size,
    char *status, size_t status_size, struct da_error *err)
{
	struct db_rows	 r;
	enum da_err	 rc = DA_OK;

	db_query(db, &r, &stmts[STMT_GET], DB_ARGS(DB_INT(id)), err);
	switch (db_next(&r)) {
	case 1:
		snprintf(userid, userid_size, "%s", db_text(&r, 0));
		snprintf(status, status_size, "%s", db_text(&r, 1));
		break;
	case 0:
		rc = DA_ERROR(err, DA_ENOTFOUND, "no login request %lld", id);
		break;
	default:
		rc = DA_EDB;
		break;
	}
	db_done(&r);
	return rc;
}

enum da_err
requests_reject(struct db *db, long long id, int *changed,
    struct da_error *err)
{
	enum da_err	 rc;

	rc = db_run(db, &stmts[STMT_REJECT], DB_ARGS(DB_INT(id),
	    DB_INT(db_now())), err);
	*changed = rc == DA_OK ? (int)db_changes(db) : 0;
	return rc;
}

enum da_err
requests_approve_user(struct db *db, const char *userid, int *n,
    struct da_error *err)
{
	enum da_err	 rc;

	rc = db_run(db, &stmts[STMT_APPROVE_USER], DB_ARGS(DB_TEXT(userid),
	    DB_INT(db_now())), err);
	*n = rc == DA_OK ? (int)db_changes(db) : 0;
	return rc;
}

enum da_err
requests_prune(struct db *db, long long before, long long *n,
    struct da_error *err)
{
	enum da_err	 rc;

	*n = 0;
	if ((rc = db_run(db, &stmts[STMT_PRUNE], DB_ARGS(DB_INT(before)),
	    err)) == DA_OK)
		*n = db_changes(db);
	return rc;
}
