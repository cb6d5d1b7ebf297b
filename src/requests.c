#include <stdio.h>
#include <string.h>

#include "db.h"
#include "requests.h"

/* The most recent decided request, to honour an operator's "no". */
static const char *const sql_last_decided =
    "SELECT status FROM login_requests WHERE userid = ?1"
    " AND status <> 'pending' ORDER BY decided_at DESC, id DESC LIMIT 1";
static const char *const sql_pending =
    "SELECT 1 FROM login_requests WHERE userid = ?1 AND status = 'pending'";
static const char *const sql_insert =
    "INSERT INTO login_requests (userid, unionid, name, status, attempts,"
    " created_at, updated_at) VALUES (?1, ?2, ?3, 'pending', 1, ?4, ?4)";
static const char *const sql_again =
    "UPDATE login_requests SET attempts = attempts + 1, updated_at = ?4,"
    " unionid = CASE WHEN ?2 <> '' THEN ?2 ELSE unionid END,"
    " name = CASE WHEN ?3 <> '' THEN ?3 ELSE name END"
    " WHERE userid = ?1 AND status = 'pending'";
static const char *const sql_list_pending =
    "SELECT id, userid, unionid, name, status, attempts, created_at,"
    " updated_at, coalesce(decided_at, 0) FROM login_requests"
    " WHERE status = 'pending' ORDER BY id";
static const char *const sql_list_all =
    "SELECT id, userid, unionid, name, status, attempts, created_at,"
    " updated_at, coalesce(decided_at, 0) FROM login_requests ORDER BY id";
static const char *const sql_get =
    "SELECT userid, status FROM login_requests WHERE id = ?1";
static const char *const sql_reject =
    "UPDATE login_requests SET status = 'rejected', decided_at = ?2,"
    " updated_at = ?2 WHERE id = ?1 AND status = 'pending'";
static const char *const sql_approve_user =
    "UPDATE login_requests SET status = 'approved', decided_at = ?2,"
    " updated_at = ?2 WHERE userid = ?1 AND status = 'pending'";

/*
 * Does sql, bound with userid, yield a row? 1 (its first column copied
 * into status if not NULL), 0, or -1 on error.
 */
static int
has_row(struct db *db, const char *sql, const char *userid, char *status,
    size_t size, struct da_error *err)
{
	sqlite3_stmt	*st;
	int		 step, rc;

	if ((st = db_stmt(db, sql, err)) == NULL)
		return -1;
	db_bind_text(st, 1, userid);
	step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		rc = 1;
		if (status != NULL)
			snprintf(status, size, "%s", db_column_text(st, 0));
	} else if (step == SQLITE_DONE)
		rc = 0;
	else {
		db_error(db, err, "login request lookup");
		rc = -1;
	}
	sqlite3_reset(st);
	return rc;
}

enum da_err
requests_record(struct db *db, const char *userid, const char *unionid,
    const char *name, enum requests_outcome *outcome, struct da_error *err)
{
	sqlite3_stmt	*st;
	char		 last[16] = "";
	enum da_err	 rc;
	int		 pending;

	*outcome = REQUESTS_NEW;
	if ((rc = db_begin_immediate(db, err)) != DA_OK)
		return rc;
	if ((pending = has_row(db, sql_pending, userid, NULL, 0, err)) < 0 ||
	    has_row(db, sql_last_decided, userid, last, sizeof(last),
	    err) < 0) {
		rc = DA_EDB;
		goto out;
	}
	if (!pending && strcmp(last, "rejected") == 0) {
		*outcome = REQUESTS_REJECTED;
		goto out;
	}
	if ((st = db_stmt(db, pending ? sql_again : sql_insert, err)) == NULL) {
		rc = DA_EDB;
		goto out;
	}
	db_bind_text(st, 1, userid);
	db_bind_text(st, 2, unionid != NULL ? unionid : "");
	db_bind_text(st, 3, name != NULL ? name : "");
	sqlite3_bind_int64(st, 4, db_now());
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_error(db, err, "login request");
	sqlite3_reset(st);
	if (rc == DA_OK && pending)
		*outcome = REQUESTS_AGAIN;
out:
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
	struct request_row	 row;
	sqlite3_stmt		*st;
	enum da_err		 rc = DA_OK;
	int			 step;

	if ((st = db_stmt(db, all ? sql_list_all : sql_list_pending,
	    err)) == NULL)
		return DA_EDB;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		row.id = sqlite3_column_int64(st, 0);
		row.userid = db_column_text(st, 1);
		row.unionid = db_column_text(st, 2);
		row.name = db_column_text(st, 3);
		row.status = db_column_text(st, 4);
		row.attempts = sqlite3_column_int64(st, 5);
		row.created_at = sqlite3_column_int64(st, 6);
		row.updated_at = sqlite3_column_int64(st, 7);
		row.decided_at = sqlite3_column_int64(st, 8);
		if (fn(&row, arg) != 0)
			break;
	}
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		rc = db_error(db, err, "login requests");
	sqlite3_reset(st);
	return rc;
}

enum da_err
requests_get(struct db *db, long long id, char *userid, size_t userid_size,
    char *status, size_t status_size, struct da_error *err)
{
	sqlite3_stmt	*st;
	enum da_err	 rc = DA_OK;
	int		 step;

	if ((st = db_stmt(db, sql_get, err)) == NULL)
		return DA_EDB;
	sqlite3_bind_int64(st, 1, id);
	step = sqlite3_step(st);
	if (step == SQLITE_DONE)
		rc = DA_ERROR(err, DA_ENOTFOUND, "no login request %lld", id);
	else if (step != SQLITE_ROW)
		rc = db_error(db, err, "login requests");
	else {
		snprintf(userid, userid_size, "%s", db_column_text(st, 0));
		snprintf(status, status_size, "%s", db_column_text(st, 1));
	}
	sqlite3_reset(st);
	return rc;
}

/*
 * Decide the pending request(s) sql picks by userid (?1) or, when userid
 * is NULL, by id (?1), at now (?2). *n is the number of rows changed.
 */
static enum da_err
decide(struct db *db, const char *sql, long long id, const char *userid,
    int *n, struct da_error *err)
{
	sqlite3_stmt	*st;
	enum da_err	 rc = DA_OK;

	*n = 0;
	if ((st = db_stmt(db, sql, err)) == NULL)
		return DA_EDB;
	if (userid != NULL)
		db_bind_text(st, 1, userid);
	else
		sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, db_now());
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_error(db, err, "login requests");
	else
		*n = sqlite3_changes(db_handle(db));
	sqlite3_reset(st);
	return rc;
}

enum da_err
requests_reject(struct db *db, long long id, int *changed,
    struct da_error *err)
{
	return decide(db, sql_reject, id, NULL, changed, err);
}

enum da_err
requests_approve_user(struct db *db, const char *userid, int *n,
    struct da_error *err)
{
	return decide(db, sql_approve_user, 0, userid, n, err);
}
