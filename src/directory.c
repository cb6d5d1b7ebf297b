#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "dingtalk.h"
#include "directory.h"
#include "mem.h"
#include "session.h"

enum stmt {
	STMT_USER_GET,
	STMT_USER_EACH_ALL,
	STMT_USER_EACH_ACTIVE,
	STMT_USER_DEPTS,
	STMT_USER_STATE,
	STMT_USER_MARK,
	STMT_USER_UPSERT,
	STMT_UNIONID_RELEASE,
	STMT_DEPTS_CLEAR,
	STMT_DEPT_ADD,
	STMT_DEACTIVATE,
	STMT_SET_DISABLED,
	STMT_DEPT_UPSERT,
	STMT_DEPT_REMOVE,
	STMT_DEPT_MEMBERS_REMOVE,
	STMT_IN_DEPTS,
	STMT_COUNTS,
	STMT__MAX
};

#define USER_COLUMNS \
    "SELECT userid, unionid, name, title, job_number, email, mobile," \
    " source, admin, active, disabled, created_at, updated_at, left_at" \
    " FROM users"

static const struct db_sql stmts[STMT__MAX] = {
	[STMT_USER_GET] = { "user lookup",
	    USER_COLUMNS " WHERE userid = ?1" },
	[STMT_USER_EACH_ALL] = { "user list",
	    USER_COLUMNS " ORDER BY userid" },
	[STMT_USER_EACH_ACTIVE] = { "user list",
	    USER_COLUMNS " WHERE active = 1 AND disabled = 0 ORDER BY userid" },
	[STMT_USER_DEPTS] = { "user departments",
	    "SELECT dept_id FROM user_depts WHERE userid = ?1"
	    " ORDER BY dept_id" },
	[STMT_USER_STATE] = { "user lookup",
	    "SELECT active FROM users WHERE userid = ?1" },
	[STMT_USER_MARK] = { "user lookup",
	    "SELECT active, coalesce(left_at, 0) FROM users"
	    " WHERE userid = ?1" },
	[STMT_USER_UPSERT] = { "user upsert",
	    "INSERT INTO users (userid, unionid, name, title, job_number,"
	    " email, mobile, admin, active, source, created_at, updated_at,"
	    " left_at) VALUES (?1, NULLIF(?2, ''), ?3, ?4, ?5, ?6, ?7, ?8, 1,"
	    " ?9, ?10, ?10, NULL) ON CONFLICT (userid) DO UPDATE SET"
	    " unionid = COALESCE(excluded.unionid, users.unionid),"
	    " name = excluded.name, title = excluded.title,"
	    " job_number = excluded.job_number, email = excluded.email,"
	    " mobile = excluded.mobile, admin = excluded.admin, active = 1,"
	    " updated_at = excluded.updated_at, left_at = NULL" },
	/*
	 * Another row holding the same unionid (a re-created account)
	 * yields. "unionid <> ''" lets SQLite use the partial index
	 * users_unionid.
	 */
	[STMT_UNIONID_RELEASE] = { "unionid release",
	    "UPDATE users SET unionid = NULL WHERE unionid = ?1"
	    " AND unionid <> '' AND userid <> ?2" },
	[STMT_DEPTS_CLEAR] = { "membership",
	    "DELETE FROM user_depts WHERE userid = ?1" },
	[STMT_DEPT_ADD] = { "membership",
	    "INSERT OR IGNORE INTO user_depts (userid, dept_id)"
	    " VALUES (?1, ?2)" },
	[STMT_DEACTIVATE] = { "deactivate",
	    "UPDATE users SET active = 0, left_at = ?2, updated_at = ?2"
	    " WHERE userid = ?1 AND active = 1" },
	[STMT_SET_DISABLED] = { "disable",
	    "UPDATE users SET disabled = ?2, updated_at = ?3"
	    " WHERE userid = ?1" },
	[STMT_DEPT_UPSERT] = { "department upsert",
	    "INSERT INTO departments (dept_id, parent_id, name, updated_at)"
	    " VALUES (?1, NULLIF(?2, 0), ?3, ?4)"
	    " ON CONFLICT (dept_id) DO UPDATE SET"
	    " parent_id = excluded.parent_id, name = excluded.name,"
	    " updated_at = excluded.updated_at" },
	[STMT_DEPT_REMOVE] = { "department remove",
	    "DELETE FROM departments WHERE dept_id = ?1" },
	[STMT_DEPT_MEMBERS_REMOVE] = { "department remove",
	    "DELETE FROM user_depts WHERE dept_id = ?1" },
	/* Walk up from each of the user's departments; stop at a wanted one. */
	[STMT_IN_DEPTS] = { "department rule",
	    "WITH RECURSIVE up(id, depth) AS ("
	    "  SELECT dept_id, 0 FROM user_depts WHERE userid = ?1"
	    "  UNION"
	    "  SELECT d.parent_id, up.depth + 1 FROM departments d JOIN up"
	    "   ON d.dept_id = up.id WHERE d.parent_id IS NOT NULL"
	    "   AND up.depth < 64)"
	    " SELECT 1 FROM up WHERE id IN (SELECT value FROM json_each(?2))"
	    " LIMIT 1" },
	[STMT_COUNTS] = { "counts",
	    "SELECT (SELECT count(*) FROM users),"
	    " (SELECT count(*) FROM users WHERE active = 1 AND disabled = 0),"
	    " (SELECT count(*) FROM departments)" },

};

void
dir_user_clear(struct dir_user *u)
{
	if (u == NULL)
		return;
	free(u->dept_ids);
	memset(u, 0, sizeof(*u));
}

static void
copy(char *dst, size_t size, const struct db_rows *r, int col)
{
	snprintf(dst, size, "%s", db_text(r, col));
}

static void
user_from_row(const struct db_rows *r, struct dir_user *u)
{
	memset(u, 0, sizeof(*u));
	copy(u->userid, sizeof(u->userid), r, 0);
	copy(u->unionid, sizeof(u->unionid), r, 1);
	copy(u->name, sizeof(u->name), r, 2);
	copy(u->title, sizeof(u->title), r, 3);
	copy(u->job_number, sizeof(u->job_number), r, 4);
	copy(u->email, sizeof(u->email), r, 5);
	copy(u->mobile, sizeof(u->mobile), r, 6);
	copy(u->source, sizeof(u->source), r, 7);
	u->admin = (int)db_int(r, 8);
	u->active = (int)db_int(r, 9);
	u->disabled = (int)db_int(r, 10);
	u->created_at = db_int(r, 11);
	u->updated_at = db_int(r, 12);
	u->left_at = db_int(r, 13);
}

/* Append the first column of every row of r to *ids (grown as needed). */
static enum da_err
collect_ids(struct db_rows *r, long long **ids, size_t *n)
{
	size_t	 cap = *n;

	while (db_next(r) == 1) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 4;
			*ids = xrealloc(*ids, cap * sizeof(**ids));
		}
		(*ids)[(*n)++] = db_int(r, 0);
	}
	return db_done(r);
}

static enum da_err
load_depts(struct db *db, struct dir_user *u, struct da_error *err)
{
	struct db_rows	 r;

	db_query(db, &r, &stmts[STMT_USER_DEPTS], DB_ARGS(DB_TEXT(u->userid)),
	    err);
	return collect_ids(&r, &u->dept_ids, &u->ndept);
}

enum da_err
directory_get_user(struct db *db, const char *userid, struct dir_user *u,
    struct da_error *err)
{
	struct db_rows	 r;
	enum da_err	 rc;
	int		 found;

	memset(u, 0, sizeof(*u));
	db_query(db, &r, &stmts[STMT_USER_GET], DB_ARGS(DB_TEXT(userid)), err);
	if ((found = db_next(&r)) == 1)
		user_from_row(&r, u);
	if ((rc = db_done(&r)) != DA_OK)
		return rc;
	if (!found)
		return DA_ERROR(err, DA_ENOTFOUND, "no user %s in the directory",
		    userid);
	return load_depts(db, u, err);
}

enum da_err
directory_each_user(struct db *db, int active_only,
    int (*fn)(const struct dir_user *, void *), void *arg,
    struct da_error *err)
{
	struct db_rows	 r;
	struct dir_user	 u;
	enum da_err	 rc = DA_OK;
	int		 stop = 0;

	db_query(db, &r, &stmts[active_only ? STMT_USER_EACH_ACTIVE :
	    STMT_USER_EACH_ALL], DB_NOARGS, err);
	while (!stop && rc == DA_OK && db_next(&r) == 1) {
		user_from_row(&r, &u);
		if ((rc = load_depts(db, &u, err)) == DA_OK)
			stop = fn(&u, arg);
		dir_user_clear(&u);
	}
	if (db_done(&r) != DA_OK)
		rc = DA_EDB;
	return rc;
}

/* Begin a transaction unless the caller already holds one. */
static int
begin_own(struct db *db, struct da_error *err, enum da_err *rc)
{
	if (db_in_transaction(db)) {
		*rc = DA_OK;
		return 0;
	}
	*rc = db_begin_immediate(db, err);
	return *rc == DA_OK;
}

static enum da_err
end_own(struct db *db, int own, enum da_err rc, struct da_error *err)
{
	if (!own)
		return rc;
	if (rc == DA_OK)
		return db_commit(db, err);
	db_rollback(db);
	return rc;
}

enum da_err
directory_upsert_user(struct db *db, const struct dt_user *u,
    const char *source, int *was, struct da_error *err)
{
	struct db_rows	 r;
	enum da_err	 rc;
	size_t		 i;
	int		 own;

	own = begin_own(db, err, &rc);
	if (rc != DA_OK)
		return rc;
	if (was != NULL) {
		db_query(db, &r, &stmts[STMT_USER_STATE],
		    DB_ARGS(DB_TEXT(u->userid)), err);
		*was = db_next(&r) == 1 ? (db_int(&r, 0) ? 1 : 2) : 0;
		if ((rc = db_done(&r)) != DA_OK)
			goto out;
	}
	if (u->unionid[0] != '\0' && (rc = db_run(db,
	    &stmts[STMT_UNIONID_RELEASE], DB_ARGS(DB_TEXT(u->unionid),
	    DB_TEXT(u->userid)), err)) != DA_OK)
		goto out;
	if ((rc = db_run(db, &stmts[STMT_USER_UPSERT], DB_ARGS(
	    DB_TEXT(u->userid), DB_TEXT(u->unionid), DB_TEXT(u->name),
	    DB_TEXT(u->title), DB_TEXT(u->job_number), DB_TEXT(u->email),
	    DB_TEXT(u->mobile), DB_INT(u->admin ? 1 : 0), DB_TEXT(source),
	    DB_INT(db_now())), err)) != DA_OK)
		goto out;
	if ((rc = db_run(db, &stmts[STMT_DEPTS_CLEAR],
	    DB_ARGS(DB_TEXT(u->userid)), err)) != DA_OK)
		goto out;
	for (i = 0; rc == DA_OK && i < u->ndept; i++)
		rc = db_run(db, &stmts[STMT_DEPT_ADD], DB_ARGS(
		    DB_TEXT(u->userid), DB_INT(u->dept_ids[i])), err);
out:
	return end_own(db, own, rc, err);
}

enum da_err
directory_mark_user(struct db *db, const char *userid, struct dir_mark *m,
    struct da_error *err)
{
	struct db_rows	 r;

	memset(m, 0, sizeof(*m));
	db_query(db, &r, &stmts[STMT_USER_MARK], DB_ARGS(DB_TEXT(userid)), err);
	if ((m->exists = db_next(&r) == 1)) {
		m->active = (int)db_int(&r, 0);
		m->left_at = db_int(&r, 1);
	}
	return db_done(&r);
}

enum da_err
directory_upsert_user_marked(struct db *db, const struct dt_user *u,
    const char *source, const struct dir_mark *m, int *stale,
    struct da_error *err)
{
	struct dir_mark	 now;
	enum da_err	 rc;
	int		 own;

	*stale = 0;
	own = begin_own(db, err, &rc);
	if (rc != DA_OK)
		return rc;
	if ((rc = directory_mark_user(db, u->userid, &now, err)) != DA_OK)
		goto out;
	if (now.exists != m->exists || now.active != m->active ||
	    now.left_at != m->left_at) {
		*stale = 1;
		goto out;
	}
	rc = directory_upsert_user(db, u, source, NULL, err);
out:
	return end_own(db, own, rc, err);
}

enum da_err
directory_deactivate_user(struct db *db, const char *userid, int *sessions,
    struct da_error *err)
{
	enum da_err	 rc;
	int		 own;

	if (sessions != NULL)
		*sessions = 0;
	own = begin_own(db, err, &rc);
	if (rc != DA_OK)
		return rc;
	if ((rc = db_run(db, &stmts[STMT_DEACTIVATE], DB_ARGS(DB_TEXT(userid),
	    DB_INT(db_now())), err)) == DA_OK)
		rc = session_end_user(db, userid, sessions, err);
	return end_own(db, own, rc, err);
}

enum da_err
directory_set_disabled(struct db *db, const char *userid, int disabled,
    struct da_error *err)
{
	enum da_err	 rc;
	int		 own;

	own = begin_own(db, err, &rc);
	if (rc != DA_OK)
		return rc;
	if ((rc = db_run(db, &stmts[STMT_SET_DISABLED], DB_ARGS(
	    DB_TEXT(userid), DB_INT(disabled ? 1 : 0), DB_INT(db_now())),
	    err)) != DA_OK)
		goto out;
	if (db_changes(db) == 0)
		rc = DA_ERROR(err, DA_ENOTFOUND, "no user %s in the directory",
		    userid);
	else if (disabled)
		rc = session_end_user(db, userid, NULL, err);
out:
	return end_own(db, own, rc, err);
}

enum da_err
directory_upsert_dept(struct db *db, const struct dt_dept *d,
    struct da_error *err)
{
	return db_run(db, &stmts[STMT_DEPT_UPSERT], DB_ARGS(DB_INT(d->dept_id),
	    DB_INT(d->parent_id), DB_TEXT(d->name), DB_INT(db_now())), err);
}

enum da_err
directory_remove_dept(struct db *db, long long dept_id, struct da_error *err)
{
	enum da_err	 rc;
	int		 own;

	own = begin_own(db, err, &rc);
	if (rc != DA_OK)
		return rc;
	if ((rc = db_run(db, &stmts[STMT_DEPT_MEMBERS_REMOVE],
	    DB_ARGS(DB_INT(dept_id)), err)) == DA_OK)
		rc = db_run(db, &stmts[STMT_DEPT_REMOVE],
		    DB_ARGS(DB_INT(dept_id)), err);
	return end_own(db, own, rc, err);
}

enum da_err
directory_user_in_depts(struct db *db, const char *userid,
    const long long *depts, size_t n, int *yes, struct da_error *err)
{
	struct db_rows	 r;
	struct buf	 list;
	size_t		 i;

	*yes = 0;
	if (n == 0)
		return DA_OK;
	buf_init(&list, 0);
	buf_puts(&list, "[");
	for (i = 0; i < n; i++)
		buf_printf(&list, "%s%lld", i ? "," : "", depts[i]);
	buf_puts(&list, "]");
	db_query(db, &r, &stmts[STMT_IN_DEPTS], DB_ARGS(DB_TEXT(userid),
	    DB_TEXT(list.data)), err);
	*yes = db_next(&r) == 1;
	buf_free(&list);
	return db_done(&r);
}

enum da_err
directory_counts(struct db *db, long long *users, long long *active,
    long long *departments, struct da_error *err)
{
	struct db_rows	 r;

	db_query(db, &r, &stmts[STMT_COUNTS], DB_NOARGS, err);
	if (db_next(&r) == 1) {
		*users = db_int(&r, 0);
		*active = db_int(&r, 1);
		*departments = db_int(&r, 2);
	}
	return db_done(&r);
}
