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
