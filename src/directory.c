#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "dingtalk.h"
#include "directory.h"
#include "mem.h"
#include "session.h"

static const char *const sql_user_get =
    "SELECT userid, unionid, name, title, job_number, email, mobile, source,"
    " admin, active, disabled, created_at, updated_at, left_at"
    " FROM users WHERE userid = ?1";
static const char *const sql_user_each_all =
    "SELECT userid, unionid, name, title, job_number, email, mobile, source,"
    " admin, active, disabled, created_at, updated_at, left_at"
    " FROM users ORDER BY userid";
static const char *const sql_user_each_active =
    "SELECT userid, unionid, name, title, job_number, email, mobile, source,"
    " admin, active, disabled, created_at, updated_at, left_at"
    " FROM users WHERE active = 1 AND disabled = 0 ORDER BY userid";
static const char *const sql_user_depts =
    "SELECT dept_id FROM user_depts WHERE userid = ?1 ORDER BY dept_id";
static const char *const sql_user_state =
    "SELECT active FROM users WHERE userid = ?1";
static const char *const sql_user_mark =
    "SELECT active, coalesce(left_at, 0) FROM users WHERE userid = ?1";
static const char *const sql_user_upsert =
    "INSERT INTO users (userid, unionid, name, title, job_number, email,"
    " mobile, admin, active, source, created_at, updated_at, left_at)"
    " VALUES (?1, NULLIF(?2, ''), ?3, ?4, ?5, ?6, ?7, ?8, 1, ?9, ?10, ?10,"
    " NULL) ON CONFLICT (userid) DO UPDATE SET"
    " unionid = COALESCE(excluded.unionid, users.unionid),"
    " name = excluded.name, title = excluded.title,"
    " job_number = excluded.job_number, email = excluded.email,"
    " mobile = excluded.mobile, admin = excluded.admin, active = 1,"
    " updated_at = excluded.updated_at, left_at = NULL";
/*
 * Another row holding the same unionid (a re-created account) yields.
 * "unionid <> ''" lets SQLite use the partial index users_unionid.
 */
static const char *const sql_unionid_release =
    "UPDATE users SET unionid = NULL WHERE unionid = ?1 AND unionid <> ''"
    " AND userid <> ?2";
static const char *const sql_depts_clear =
    "DELETE FROM user_depts WHERE userid = ?1";
static const char *const sql_dept_add =
    "INSERT OR IGNORE INTO user_depts (userid, dept_id) VALUES (?1, ?2)";
static const char *const sql_deactivate =
    "UPDATE users SET active = 0, left_at = ?2, updated_at = ?2"
    " WHERE userid = ?1 AND active = 1";
static const char *const sql_set_disabled =
    "UPDATE users SET disabled = ?2, updated_at = ?3 WHERE userid = ?1";
static const char *const sql_dept_upsert =
    "INSERT INTO departments (dept_id, parent_id, name, updated_at)"
    " VALUES (?1, NULLIF(?2, 0), ?3, ?4) ON CONFLICT (dept_id) DO UPDATE SET"
    " parent_id = excluded.parent_id, name = excluded.name,"
    " updated_at = excluded.updated_at";
static const char *const sql_dept_remove =
    "DELETE FROM departments WHERE dept_id = ?1";
static const char *const sql_dept_members_remove =
    "DELETE FROM user_depts WHERE dept_id = ?1";
/* Walk up from each of the user's departments; stop at a wanted one. */
static const char *const sql_in_depts =
    "WITH RECURSIVE up(id, depth) AS ("
    "  SELECT dept_id, 0 FROM user_depts WHERE userid = ?1"
    "  UNION"
    "  SELECT d.parent_id, up.depth + 1 FROM departments d JOIN up"
    "   ON d.dept_id = up.id WHERE d.parent_id IS NOT NULL AND up.depth < 64)"
    " SELECT 1 FROM up WHERE id IN (SELECT value FROM json_each(?2)) LIMIT 1";
static const char *const sql_counts =
    "SELECT (SELECT count(*) FROM users),"
    " (SELECT count(*) FROM users WHERE active = 1 AND disabled = 0),"
    " (SELECT count(*) FROM departments)";

void
dir_user_clear(struct dir_user *u)
{
	if (u == NULL)
		return;
	free(u->dept_ids);
	memset(u, 0, sizeof(*u));
}

static void
copy(char *dst, size_t size, sqlite3_stmt *st, int col)
{
	snprintf(dst, size, "%s", db_column_text(st, col));
}

static void
user_from_row(sqlite3_stmt *st, struct dir_user *u)
{
	memset(u, 0, sizeof(*u));
	copy(u->userid, sizeof(u->userid), st, 0);
	copy(u->unionid, sizeof(u->unionid), st, 1);
	copy(u->name, sizeof(u->name), st, 2);
	copy(u->title, sizeof(u->title), st, 3);
	copy(u->job_number, sizeof(u->job_number), st, 4);
	copy(u->email, sizeof(u->email), st, 5);
	copy(u->mobile, sizeof(u->mobile), st, 6);
	copy(u->source, sizeof(u->source), st, 7);
	u->admin = sqlite3_column_int(st, 8);
	u->active = sqlite3_column_int(st, 9);
	u->disabled = sqlite3_column_int(st, 10);
	u->created_at = sqlite3_column_int64(st, 11);
	u->updated_at = sqlite3_column_int64(st, 12);
	u->left_at = sqlite3_column_int64(st, 13);
}

static enum da_err
load_depts(struct db *db, struct dir_user *u, struct da_error *err)
{
	sqlite3_stmt	*st;
	size_t		 cap = 0;
	int		 rc;

	if ((st = db_stmt(db, sql_user_depts, err)) == NULL)
		return DA_EDB;
	db_bind_text(st, 1, u->userid);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (u->ndept == cap) {
			cap = cap ? cap * 2 : 4;
			u->dept_ids = xrealloc(u->dept_ids,
			    cap * sizeof(*u->dept_ids));
		}
		u->dept_ids[u->ndept++] = sqlite3_column_int64(st, 0);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "user departments");
	return DA_OK;
}

enum da_err
directory_get_user(struct db *db, const char *userid, struct dir_user *u,
    struct da_error *err)
{
	sqlite3_stmt	*st;
	int		 rc;

	memset(u, 0, sizeof(*u));
	if ((st = db_stmt(db, sql_user_get, err)) == NULL)
		return DA_EDB;
	db_bind_text(st, 1, userid);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		user_from_row(st, u);
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		return DA_ERROR(err, DA_ENOTFOUND, "no user %s in the directory",
		    userid);
	if (rc != SQLITE_ROW)
		return db_error(db, err, "user lookup");
	return load_depts(db, u, err);
}

enum da_err
directory_each_user(struct db *db, int active_only,
    int (*fn)(const struct dir_user *, void *), void *arg,
    struct da_error *err)
{
	sqlite3_stmt	*st;
	struct dir_user	 u;
	enum da_err	 rc = DA_OK;
	int		 step, stop = 0;

	/* The list statement stays live while fn runs: use a private one. */
	if (sqlite3_prepare_v2(db_handle(db), active_only ?
	    sql_user_each_active : sql_user_each_all, -1, &st, NULL) !=
	    SQLITE_OK)
		return db_error(db, err, "user list");
	while (!stop && (step = sqlite3_step(st)) == SQLITE_ROW) {
		user_from_row(st, &u);
		if ((rc = load_depts(db, &u, err)) == DA_OK)
			stop = fn(&u, arg);
		dir_user_clear(&u);
		if (rc != DA_OK)
			break;
	}
	if (rc == DA_OK && !stop && step != SQLITE_DONE)
		rc = db_error(db, err, "user list");
	sqlite3_finalize(st);
	return rc;
}

/* Run a one-parameter-text statement to completion. */
static enum da_err
exec_text(struct db *db, const char *sql, const char *a, struct da_error *err)
{
	sqlite3_stmt	*st;
	enum da_err	 rc = DA_OK;

	if ((st = db_stmt(db, sql, err)) == NULL)
		return DA_EDB;
	db_bind_text(st, 1, a);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_error(db, err, "directory update");
	sqlite3_reset(st);
	return rc;
}

/* Begin a transaction unless the caller already holds one. */
static int
begin_own(struct db *db, struct da_error *err, enum da_err *rc)
{
	if (!sqlite3_get_autocommit(db_handle(db))) {
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
	sqlite3_stmt	*st;
	enum da_err	 rc;
	size_t		 i;
	int		 own, step;

	own = begin_own(db, err, &rc);
	if (rc != DA_OK)
		return rc;
	if (was != NULL) {
		if ((st = db_stmt(db, sql_user_state, err)) == NULL) {
			rc = DA_EDB;
			goto out;
		}
		db_bind_text(st, 1, u->userid);
		step = sqlite3_step(st);
		*was = step == SQLITE_ROW ?
		    (sqlite3_column_int(st, 0) ? 1 : 2) : 0;
		sqlite3_reset(st);
	}
	if (u->unionid[0] != '\0') {
		if ((st = db_stmt(db, sql_unionid_release, err)) == NULL) {
			rc = DA_EDB;
			goto out;
		}
		db_bind_text(st, 1, u->unionid);
		db_bind_text(st, 2, u->userid);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = db_error(db, err, "unionid release");
		sqlite3_reset(st);
		if (rc != DA_OK)
			goto out;
	}
	if ((st = db_stmt(db, sql_user_upsert, err)) == NULL) {
		rc = DA_EDB;
		goto out;
	}
	db_bind_text(st, 1, u->userid);
	db_bind_text(st, 2, u->unionid);
	db_bind_text(st, 3, u->name);
	db_bind_text(st, 4, u->title);
	db_bind_text(st, 5, u->job_number);
	db_bind_text(st, 6, u->email);
	db_bind_text(st, 7, u->mobile);
	sqlite3_bind_int(st, 8, u->admin ? 1 : 0);
	db_bind_text(st, 9, source);
	sqlite3_bind_int64(st, 10, db_now());
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_error(db, err, "user upsert");
	sqlite3_reset(st);
	if (rc != DA_OK)
		goto out;
	if ((rc = exec_text(db, sql_depts_clear, u->userid, err)) != DA_OK)
		goto out;
	for (i = 0; i < u->ndept; i++) {
		if ((st = db_stmt(db, sql_dept_add, err)) == NULL) {
			rc = DA_EDB;
			goto out;
		}
		db_bind_text(st, 1, u->userid);
		sqlite3_bind_int64(st, 2, u->dept_ids[i]);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = db_error(db, err, "membership");
		sqlite3_reset(st);
		if (rc != DA_OK)
			goto out;
	}
out:
	return end_own(db, own, rc, err);
}

enum da_err
directory_mark_user(struct db *db, const char *userid, struct dir_mark *m,
    struct da_error *err)
{
	sqlite3_stmt	*st;
	enum da_err	 rc = DA_OK;
	int		 step;

	memset(m, 0, sizeof(*m));
	if ((st = db_stmt(db, sql_user_mark, err)) == NULL)
		return DA_EDB;
	db_bind_text(st, 1, userid);
	if ((step = sqlite3_step(st)) == SQLITE_ROW) {
		m->exists = 1;
		m->active = sqlite3_column_int(st, 0);
		m->left_at = sqlite3_column_int64(st, 1);
	} else if (step != SQLITE_DONE)
		rc = db_error(db, err, "user lookup");
	sqlite3_reset(st);
	return rc;
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
	sqlite3_stmt	*st;
	enum da_err	 rc;
	int		 own;

	if (sessions != NULL)
		*sessions = 0;
	own = begin_own(db, err, &rc);
	if (rc != DA_OK)
		return rc;
	if ((st = db_stmt(db, sql_deactivate, err)) == NULL) {
		rc = DA_EDB;
		goto out;
	}
	db_bind_text(st, 1, userid);
	sqlite3_bind_int64(st, 2, db_now());
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_error(db, err, "deactivate");
	sqlite3_reset(st);
	if (rc == DA_OK)
		rc = session_end_user(db, userid, sessions, err);
out:
	return end_own(db, own, rc, err);
}

enum da_err
directory_set_disabled(struct db *db, const char *userid, int disabled,
    struct da_error *err)
{
	sqlite3_stmt	*st;
	enum da_err	 rc;
	int		 own, changed = 0;

	own = begin_own(db, err, &rc);
	if (rc != DA_OK)
		return rc;
	if ((st = db_stmt(db, sql_set_disabled, err)) == NULL) {
		rc = DA_EDB;
		goto out;
	}
	db_bind_text(st, 1, userid);
	sqlite3_bind_int(st, 2, disabled ? 1 : 0);
	sqlite3_bind_int64(st, 3, db_now());
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_error(db, err, "disable");
	else
		changed = sqlite3_changes(db_handle(db));
	sqlite3_reset(st);
	if (rc == DA_OK && changed == 0)
		rc = DA_ERROR(err, DA_ENOTFOUND, "no user %s in the directory",
		    userid);
	if (rc == DA_OK && disabled)
		rc = session_end_user(db, userid, NULL, err);
out:
	return end_own(db, own, rc, err);
}

enum da_err
directory_upsert_dept(struct db *db, const struct dt_dept *d,
    struct da_error *err)
{
	sqlite3_stmt	*st;
	enum da_err	 rc = DA_OK;

	if ((st = db_stmt(db, sql_dept_upsert, err)) == NULL)
		return DA_EDB;
	sqlite3_bind_int64(st, 1, d->dept_id);
	sqlite3_bind_int64(st, 2, d->parent_id);
	db_bind_text(st, 3, d->name);
	sqlite3_bind_int64(st, 4, db_now());
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_error(db, err, "department upsert");
	sqlite3_reset(st);
	return rc;
}

enum da_err
directory_remove_dept(struct db *db, long long dept_id, struct da_error *err)
{
	sqlite3_stmt	*st;
	enum da_err	 rc;
	int		 own, i;
	const char	*sqls[] = { sql_dept_members_remove, sql_dept_remove };

	own = begin_own(db, err, &rc);
	if (rc != DA_OK)
		return rc;
	for (i = 0; i < 2 && rc == DA_OK; i++) {
		if ((st = db_stmt(db, sqls[i], err)) == NULL) {
			rc = DA_EDB;
			break;
		}
		sqlite3_bind_int64(st, 1, dept_id);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = db_error(db, err, "department remove");
		sqlite3_reset(st);
	}
	return end_own(db, own, rc, err);
}

enum da_err
directory_user_in_depts(struct db *db, const char *userid,
    const long long *depts, size_t n, int *yes, struct da_error *err)
{
	sqlite3_stmt	*st;
	struct buf	 list;
	enum da_err	 rc = DA_OK;
	size_t		 i;
	int		 step;

	*yes = 0;
	if (n == 0)
		return DA_OK;
	buf_init(&list, 0);
	buf_puts(&list, "[");
	for (i = 0; i < n; i++)
		buf_printf(&list, "%s%lld", i ? "," : "", depts[i]);
	buf_puts(&list, "]");
	if ((st = db_stmt(db, sql_in_depts, err)) == NULL) {
		buf_free(&list);
		return DA_EDB;
	}
	db_bind_text(st, 1, userid);
	db_bind_text(st, 2, list.data);
	step = sqlite3_step(st);
	if (step == SQLITE_ROW)
		*yes = 1;
	else if (step != SQLITE_DONE)
		rc = db_error(db, err, "department rule");
	sqlite3_reset(st);
	buf_free(&list);
	return rc;
}

enum da_err
directory_counts(struct db *db, long long *users, long long *active,
    long long *departments, struct da_error *err)
{
	sqlite3_stmt	*st;
	enum da_err	 rc = DA_OK;

	if ((st = db_stmt(db, sql_counts, err)) == NULL)
		return DA_EDB;
	if (sqlite3_step(st) == SQLITE_ROW) {
		*users = sqlite3_column_int64(st, 0);
		*active = sqlite3_column_int64(st, 1);
		*departments = sqlite3_column_int64(st, 2);
	} else
		rc = db_error(db, err, "counts");
	sqlite3_reset(st);
	return rc;
}
