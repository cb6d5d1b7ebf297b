#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "db.h"
#include "directory.h"
#include "log.h"
#include "mem.h"
#include "requests.h"
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
	STMT_DEPT_NAME,
	STMT_STAGE_ROOT,
	STMT_STAGE_ROOT_NAME,
	STMT_STAGE_DEPT,
	STMT_STAGE_DEPT_FAILED,
	STMT_STAGE_USER,
	STMT_STAGE_MEMBER,
	STMT_STAGE_COUNTS,
	STMT_STAGE_FAILED_LIST,
	STMT_STAGE_HOLD_USER,
	STMT_STAGE_HOLD_DEPT,
	STMT_ACTIVE_COUNT,
	STMT_PLAN_USERS,
	STMT_PLAN_LEAVERS,
	STMT_PLAN_DEPTS,
	STMT_PLAN_DEPT_REMOVALS,
	STMT_PLAN_COUNTS,
	STMT_PLAN_EACH_USER,
	STMT_PLAN_USER_DEPTS,
	STMT_PLAN_EACH_DEPT,
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
	    " VALUES (?1, ?2)",
	    .pg = "INSERT INTO user_depts (userid, dept_id) VALUES (?1, ?2)"
	    " ON CONFLICT DO NOTHING" },
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
	    " LIMIT 1",
	    .pg = "WITH RECURSIVE up(id, depth) AS ("
	    "  SELECT dept_id, 0 FROM user_depts WHERE userid = ?1"
	    "  UNION"
	    "  SELECT d.parent_id, up.depth + 1 FROM departments d JOIN up"
	    "   ON d.dept_id = up.id WHERE d.parent_id IS NOT NULL"
	    "   AND up.depth < 64)"
	    " SELECT 1 FROM up WHERE id IN (SELECT value::bigint"
	    " FROM json_array_elements_text(?2::json)) LIMIT 1" },
	[STMT_DEPT_NAME] = { "department name",
	    "SELECT name FROM departments WHERE dept_id = ?1" },
	[STMT_COUNTS] = { "counts",
	    "SELECT (SELECT count(*) FROM users),"
	    " (SELECT count(*) FROM users WHERE active = 1 AND disabled = 0),"
	    " (SELECT count(*) FROM departments)" },

	/* The staged copy (see stage_create). */
	/* The root keeps its stored name should department/get fail. */
	[STMT_STAGE_ROOT] = { "staging",
	    "INSERT OR IGNORE INTO temp.sync_depts (dept_id, parent_id, name)"
	    " VALUES (?1, 0, COALESCE((SELECT name FROM main.departments"
	    " WHERE dept_id = ?1), ''))",
	    .pg = "INSERT INTO temp.sync_depts (dept_id, parent_id, name)"
	    " VALUES (?1, 0, COALESCE((SELECT name FROM main.departments"
	    " WHERE dept_id = ?1), '')) ON CONFLICT DO NOTHING" },
	[STMT_STAGE_ROOT_NAME] = { "root name",
	    "UPDATE temp.sync_depts SET name = ?2 WHERE dept_id = ?1" },
	[STMT_STAGE_DEPT] = { "staging a department",
	    "INSERT OR IGNORE INTO temp.sync_depts (dept_id, parent_id, name)"
	    " VALUES (?1, ?2, ?3)",
	    .pg = "INSERT INTO temp.sync_depts (dept_id, parent_id, name)"
	    " VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING" },
	[STMT_STAGE_DEPT_FAILED] = { "failed department",
	    "UPDATE temp.sync_depts SET failed = 1 WHERE dept_id = ?1" },
	[STMT_STAGE_USER] = { "staging a user",
	    "INSERT OR IGNORE INTO temp.sync_users (userid, unionid, name,"
	    " title, job_number, email, mobile, admin)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	    .pg = "INSERT INTO temp.sync_users (userid, unionid, name,"
	    " title, job_number, email, mobile, admin)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING" },
	[STMT_STAGE_MEMBER] = { "staging a membership",
	    "INSERT OR IGNORE INTO temp.sync_user_depts (userid, dept_id)"
	    " VALUES (?1, ?2)",
	    .pg = "INSERT INTO temp.sync_user_depts (userid, dept_id)"
	    " VALUES (?1, ?2) ON CONFLICT DO NOTHING" },
	[STMT_STAGE_COUNTS] = { "staged counts",
	    "SELECT (SELECT count(*) FROM temp.sync_depts),"
	    " (SELECT count(*) FROM temp.sync_users),"
	    " (SELECT count(*) FROM temp.sync_depts WHERE failed)",
	    .pg = "SELECT (SELECT count(*) FROM temp.sync_depts),"
	    " (SELECT count(*) FROM temp.sync_users),"
	    " (SELECT count(*) FROM temp.sync_depts WHERE failed <> 0)" },
	[STMT_STAGE_FAILED_LIST] = { "staged counts",
	    "SELECT dept_id FROM temp.sync_depts WHERE failed"
	    " ORDER BY dept_id LIMIT ?1",
	    .pg = "SELECT dept_id FROM temp.sync_depts WHERE failed <> 0"
	    " ORDER BY dept_id LIMIT ?1" },

	[STMT_STAGE_HOLD_USER] = { "held user",
	    "INSERT OR IGNORE INTO temp.sync_held_users (userid) VALUES (?1)",
	    .pg = "INSERT INTO temp.sync_held_users (userid) VALUES (?1)"
	    " ON CONFLICT DO NOTHING" },
	[STMT_STAGE_HOLD_DEPT] = { "held department",
	    "INSERT OR IGNORE INTO temp.sync_held_depts (dept_id)"
	    " VALUES (?1)",
	    .pg = "INSERT INTO temp.sync_held_depts (dept_id) VALUES (?1)"
	    " ON CONFLICT DO NOTHING" },

	/*
	 * The plan: ?1.. are enum dir_action values. Held users and
	 * departments (named by an event stored during the run) are left
	 * as the event made them.
	 */
	[STMT_ACTIVE_COUNT] = { "plan",
	    "SELECT count(*) FROM main.users WHERE active = 1" },
	[STMT_PLAN_USERS] = { "plan",
	    "INSERT INTO temp.sync_plan (userid, action)"
	    " SELECT s.userid, CASE WHEN u.userid IS NULL THEN ?1"
	    "  WHEN u.active = 0 THEN ?2 ELSE ?3 END"
	    " FROM temp.sync_users s LEFT JOIN main.users u"
	    " ON u.userid = s.userid"
	    " WHERE s.userid NOT IN (SELECT userid FROM temp.sync_held_users)"
	    " AND (u.userid IS NULL OR u.active = 0 OR u.name <> s.name"
	    "  OR u.title <> s.title OR u.job_number <> s.job_number"
	    "  OR u.email <> s.email OR u.mobile <> s.mobile"
	    "  OR u.admin <> s.admin"
	    "  OR (s.unionid <> '' AND u.unionid IS NOT s.unionid)"
	    "  OR EXISTS (SELECT 1 FROM temp.sync_user_depts m"
	    "   WHERE m.userid = s.userid AND NOT EXISTS (SELECT 1"
	    "   FROM main.user_depts x WHERE x.userid = m.userid"
	    "   AND x.dept_id = m.dept_id))"
	    "  OR EXISTS (SELECT 1 FROM main.user_depts x"
	    "   WHERE x.userid = s.userid AND NOT EXISTS (SELECT 1"
	    "   FROM temp.sync_user_depts m WHERE m.userid = x.userid"
	    "   AND m.dept_id = x.dept_id)))" },
	[STMT_PLAN_LEAVERS] = { "plan",
	    "INSERT INTO temp.sync_plan (userid, action)"
	    " SELECT userid, ?1 FROM main.users WHERE active = 1"
	    " AND userid NOT IN (SELECT userid FROM temp.sync_users)"
	    " AND userid NOT IN (SELECT userid FROM temp.sync_held_users)" },
	[STMT_PLAN_DEPTS] = { "plan",
	    "INSERT INTO temp.sync_dept_plan (dept_id, action)"
	    " SELECT s.dept_id, CASE WHEN d.dept_id IS NULL THEN ?1 ELSE ?2"
	    " END FROM temp.sync_depts s LEFT JOIN main.departments d"
	    " ON d.dept_id = s.dept_id"
	    " WHERE s.dept_id NOT IN (SELECT dept_id FROM temp.sync_held_depts)"
	    " AND (d.dept_id IS NULL OR d.name <> s.name"
	    " OR d.parent_id IS NOT NULLIF(s.parent_id, 0))" },
	[STMT_PLAN_DEPT_REMOVALS] = { "plan",
	    "INSERT INTO temp.sync_dept_plan (dept_id, action)"
	    " SELECT dept_id, ?1 FROM main.departments"
	    " WHERE dept_id NOT IN (SELECT dept_id FROM temp.sync_depts)"
	    " AND dept_id NOT IN (SELECT dept_id FROM temp.sync_held_depts)" },
	/* 0: users, 1: departments. */
	[STMT_PLAN_COUNTS] = { "plan counts",
	    "SELECT 0, action, count(*) FROM temp.sync_plan GROUP BY action"
	    " UNION ALL"
	    " SELECT 1, action, count(*) FROM temp.sync_dept_plan"
	    " GROUP BY action" },
	[STMT_PLAN_EACH_USER] = { "user plan",
	    "SELECT p.action, p.userid, s.unionid, s.name, s.title,"
	    " s.job_number, s.email, s.mobile, s.admin, u.name"
	    " FROM temp.sync_plan p LEFT JOIN temp.sync_users s"
	    " ON s.userid = p.userid LEFT JOIN main.users u"
	    " ON u.userid = p.userid ORDER BY p.action, p.userid" },
	[STMT_PLAN_USER_DEPTS] = { "staged memberships",
	    "SELECT dept_id FROM temp.sync_user_depts WHERE userid = ?1"
	    " ORDER BY dept_id" },
	[STMT_PLAN_EACH_DEPT] = { "department plan",
	    "SELECT p.action, p.dept_id, s.parent_id, s.name, d.name"
	    " FROM temp.sync_dept_plan p LEFT JOIN temp.sync_depts s"
	    " ON s.dept_id = p.dept_id LEFT JOIN main.departments d"
	    " ON d.dept_id = p.dept_id ORDER BY p.action, p.dept_id" },
};

/*
 * The staged copy and the plan: TEMP tables, made and dropped whole
 * (PostgreSQL's in pg_temp, the same columns in its types).
 */
static const struct db_sql stage_create = { "staging",
    "DROP TABLE IF EXISTS temp.sync_depts;"
    "DROP TABLE IF EXISTS temp.sync_users;"
    "DROP TABLE IF EXISTS temp.sync_user_depts;"
    "DROP TABLE IF EXISTS temp.sync_plan;"
    "DROP TABLE IF EXISTS temp.sync_dept_plan;"
    "CREATE TEMP TABLE sync_depts ("
    " dept_id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL,"
    " name TEXT NOT NULL, failed INTEGER NOT NULL DEFAULT 0);"
    "CREATE TEMP TABLE sync_users ("
    " userid TEXT PRIMARY KEY, unionid TEXT NOT NULL, name TEXT NOT NULL,"
    " title TEXT NOT NULL, job_number TEXT NOT NULL, email TEXT NOT NULL,"
    " mobile TEXT NOT NULL, admin INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TEMP TABLE sync_user_depts ("
    " userid TEXT NOT NULL, dept_id INTEGER NOT NULL,"
    " PRIMARY KEY (userid, dept_id)) WITHOUT ROWID;"
    "CREATE TEMP TABLE sync_plan ("
    " userid TEXT PRIMARY KEY, action INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TEMP TABLE sync_dept_plan ("
    " dept_id INTEGER PRIMARY KEY, action INTEGER NOT NULL);"
    "CREATE TEMP TABLE sync_held_users ("
    " userid TEXT PRIMARY KEY) WITHOUT ROWID;"
    "CREATE TEMP TABLE sync_held_depts (dept_id INTEGER PRIMARY KEY);",
    .pg =
    "DROP TABLE IF EXISTS pg_temp.sync_depts;"
    "DROP TABLE IF EXISTS pg_temp.sync_users;"
    "DROP TABLE IF EXISTS pg_temp.sync_user_depts;"
    "DROP TABLE IF EXISTS pg_temp.sync_plan;"
    "DROP TABLE IF EXISTS pg_temp.sync_dept_plan;"
    "DROP TABLE IF EXISTS pg_temp.sync_held_users;"
    "DROP TABLE IF EXISTS pg_temp.sync_held_depts;"
    "CREATE TEMP TABLE sync_depts ("
    " dept_id bigint PRIMARY KEY, parent_id bigint NOT NULL,"
    " name text NOT NULL, failed integer NOT NULL DEFAULT 0);"
    "CREATE TEMP TABLE sync_users ("
    " userid text PRIMARY KEY, unionid text NOT NULL, name text NOT NULL,"
    " title text NOT NULL, job_number text NOT NULL, email text NOT NULL,"
    " mobile text NOT NULL, admin integer NOT NULL);"
    "CREATE TEMP TABLE sync_user_depts ("
    " userid text NOT NULL, dept_id bigint NOT NULL,"
    " PRIMARY KEY (userid, dept_id));"
    "CREATE TEMP TABLE sync_plan ("
    " userid text PRIMARY KEY, action integer NOT NULL);"
    "CREATE TEMP TABLE sync_dept_plan ("
    " dept_id bigint PRIMARY KEY, action integer NOT NULL);"
    "CREATE TEMP TABLE sync_held_users (userid text PRIMARY KEY);"
    "CREATE TEMP TABLE sync_held_depts (dept_id bigint PRIMARY KEY);" };
static const struct db_sql stage_drop = { "staging",
    "DROP TABLE IF EXISTS temp.sync_depts;"
    "DROP TABLE IF EXISTS temp.sync_users;"
    "DROP TABLE IF EXISTS temp.sync_user_depts;"
    "DROP TABLE IF EXISTS temp.sync_plan;"
    "DROP TABLE IF EXISTS temp.sync_dept_plan;"
    "DROP TABLE IF EXISTS temp.sync_held_users;"
    "DROP TABLE IF EXISTS temp.sync_held_depts;",
    .pg =
    "DROP TABLE IF EXISTS pg_temp.sync_depts;"
    "DROP TABLE IF EXISTS pg_temp.sync_users;"
    "DROP TABLE IF EXISTS pg_temp.sync_user_depts;"
    "DROP TABLE IF EXISTS pg_temp.sync_plan;"
    "DROP TABLE IF EXISTS pg_temp.sync_dept_plan;"
    "DROP TABLE IF EXISTS pg_temp.sync_held_users;"
    "DROP TABLE IF EXISTS pg_temp.sync_held_depts;" };

static const char *const action_names[DIR__MAX] = {
	[DIR_ADD] = "add",
	[DIR_UPDATE] = "update",
	[DIR_REACTIVATE] = "reactivate",
	[DIR_DEACTIVATE] = "deactivate",
	[DIR_REMOVE] = "remove",
};

void
dir_user_clear(struct dir_user *u)
{
	if (u == NULL)
		return;
	free(u->dept_ids);
	memset(u, 0, sizeof(*u));
}

void
dir_user_add_dept(struct dir_user *u, long long dept_id)
{
	/* A person is in a few departments: grow one at a time. */
	u->dept_ids = xrealloc(u->dept_ids, (u->ndept + 1) *
	    sizeof(*u->dept_ids));
	u->dept_ids[u->ndept++] = dept_id;
}

char *
dir_dept_ids_text(const long long *ids, size_t n)
{
	struct buf	 b;
	size_t		 i;

	buf_init(&b, 0);
	for (i = 0; i < n; i++)
		buf_printf(&b, "%s%lld", i ? "," : "", ids[i]);
	return buf_take(&b);
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
directory_upsert_user(struct db *db, const struct dir_user *u,
    const char *source, int *was, struct da_error *err)
{
	struct db_rows	 r;
	enum da_err	 rc;
	size_t		 i;
	int		 own, resolved = 0;

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
	/* In the directory now (sync, event, admit): no longer waiting. */
	if (rc == DA_OK)
		rc = requests_approve_user(db, u->userid, &resolved, err);
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
directory_upsert_user_marked(struct db *db, const struct dir_user *u,
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
		rc = session_end_user_why(db, userid, SESSION_END_LEFT,
		    sessions, err);
	return end_own(db, own, rc, err);
}

enum da_err
directory_offboard_user(struct db *db, const char *userid,
    const char *source, int *sessions, struct da_error *err)
{
	struct audit_entry	 a;
	char			 ended[32];
	enum da_err		 rc;
	int			 own, n = 0;
	long long		 left = 0;

	memset(&a, 0, sizeof(a));
	own = begin_own(db, err, &rc);
	if (rc != DA_OK)
		return rc;
	if ((rc = db_run(db, &stmts[STMT_DEACTIVATE], DB_ARGS(DB_TEXT(userid),
	    DB_INT(db_now())), err)) != DA_OK)
		goto out;
	left = db_changes(db);
	if ((rc = session_end_user_why(db, userid, SESSION_END_LEFT, &n,
	    err)) != DA_OK || !left)
		goto out;
	snprintf(ended, sizeof(ended), "%d session(s) ended", n);
	a.event = AUDIT_OFFBOARD;
	a.userid = userid;
	a.outcome = "left";
	a.source = source;
	a.detail = ended;
	rc = audit_record(db, &a, err);
out:
	if (sessions != NULL)
		*sessions = rc == DA_OK ? n : 0;
	rc = end_own(db, own, rc, err);
	if (rc == DA_OK && left)
		audit_log(LOG_INFO, &a);
	return rc;
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
		rc = session_end_user_why(db, userid, SESSION_END_DISABLED,
		    NULL, err);
out:
	return end_own(db, own, rc, err);
}

enum da_err
directory_upsert_dept(struct db *db, const struct dir_dept *d,
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
directory_dept_name(struct db *db, long long dept_id, char *name,
    size_t size, struct da_error *err)
{
	struct db_rows	 r;
	enum da_err	 rc;

	name[0] = '\0';
	db_query(db, &r, &stmts[STMT_DEPT_NAME], DB_ARGS(DB_INT(dept_id)),
	    err);
	if (db_next(&r) == 1)
		snprintf(name, size, "%s", db_text(&r, 0));
	if ((rc = db_done(&r)) == DA_OK && name[0] == '\0')
		rc = DA_ERROR(err, DA_ENOTFOUND, "no department %lld",
		    dept_id);
	return rc;
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

const char *
directory_action_name(enum dir_action action)
{
	if (action < DIR_ADD || action >= DIR__MAX)
		return "?";
	return action_names[action];
}

enum da_err
directory_stage_begin(struct db *db, long long root, struct da_error *err)
{
	enum da_err	 rc;

	if ((rc = db_script(db, &stage_create, err)) != DA_OK)
		return rc;
	return db_run(db, &stmts[STMT_STAGE_ROOT], DB_ARGS(DB_INT(root)), err);
}

void
directory_stage_end(struct db *db)
{
	struct da_error	 e;

	db_script(db, &stage_drop, &e);
}

enum da_err
directory_stage_root_name(struct db *db, long long root, const char *name,
    struct da_error *err)
{
	return db_run(db, &stmts[STMT_STAGE_ROOT_NAME], DB_ARGS(DB_INT(root),
	    DB_TEXT(name)), err);
}

enum da_err
directory_stage_dept(struct db *db, long long dept_id, long long parent_id,
    const char *name, int *fresh, struct da_error *err)
{
	enum da_err	 rc;

	rc = db_run(db, &stmts[STMT_STAGE_DEPT], DB_ARGS(DB_INT(dept_id),
	    DB_INT(parent_id), DB_TEXT(name)), err);
	*fresh = rc == DA_OK && db_changes(db) == 1;
	return rc;
}

enum da_err
directory_stage_dept_failed(struct db *db, long long dept_id,
    struct da_error *err)
{
	return db_run(db, &stmts[STMT_STAGE_DEPT_FAILED],
	    DB_ARGS(DB_INT(dept_id)), err);
}

enum da_err
directory_stage_hold_user(struct db *db, const char *userid,
    struct da_error *err)
{
	return db_run(db, &stmts[STMT_STAGE_HOLD_USER],
	    DB_ARGS(DB_TEXT(userid)), err);
}

enum da_err
directory_stage_hold_dept(struct db *db, long long dept_id,
    struct da_error *err)
{
	return db_run(db, &stmts[STMT_STAGE_HOLD_DEPT],
	    DB_ARGS(DB_INT(dept_id)), err);
}

enum da_err
directory_stage_user(struct db *db, const struct dir_user *u,
    long long dept_id, int *fresh, struct da_error *err)
{
	enum da_err	 rc;
	size_t		 i;

	*fresh = 0;
	if ((rc = db_run(db, &stmts[STMT_STAGE_USER], DB_ARGS(
	    DB_TEXT(u->userid), DB_TEXT(u->unionid), DB_TEXT(u->name),
	    DB_TEXT(u->title), DB_TEXT(u->job_number), DB_TEXT(u->email),
	    DB_TEXT(u->mobile), DB_INT(u->admin ? 1 : 0)), err)) != DA_OK)
		return rc;
	*fresh = db_changes(db) == 1;
	/* Memberships: what the user record says, and where we found it. */
	for (i = 0; rc == DA_OK && i <= u->ndept; i++)
		rc = db_run(db, &stmts[STMT_STAGE_MEMBER], DB_ARGS(
		    DB_TEXT(u->userid), DB_INT(i < u->ndept ? u->dept_ids[i] :
		    dept_id)), err);
	return rc;
}

enum da_err
directory_stage_counts(struct db *db, struct dir_stage_counts *c,
    long long *failed_ids, size_t max, struct da_error *err)
{
	struct db_rows	 r;
	enum da_err	 rc;
	size_t		 n = 0;

	memset(c, 0, sizeof(*c));
	db_query(db, &r, &stmts[STMT_STAGE_COUNTS], DB_NOARGS, err);
	if (db_next(&r) == 1) {
		c->departments = db_int(&r, 0);
		c->users = db_int(&r, 1);
		c->failed = db_int(&r, 2);
	}
	if ((rc = db_done(&r)) != DA_OK || c->failed == 0 || max == 0)
		return rc;
	db_query(db, &r, &stmts[STMT_STAGE_FAILED_LIST], DB_ARGS(DB_INT(max)),
	    err);
	while (n < max && db_next(&r) == 1)
		failed_ids[n++] = db_int(&r, 0);
	return db_done(&r);
}

enum da_err
directory_plan(struct db *db, int complete, struct dir_plan_counts *c,
    struct da_error *err)
{
	struct db_rows	 r;
	enum da_err	 rc;
	long long	 action;

	memset(c, 0, sizeof(*c));
	db_query(db, &r, &stmts[STMT_ACTIVE_COUNT], DB_NOARGS, err);
	if (db_next(&r) == 1)
		c->active_before = db_int(&r, 0);
	if ((rc = db_done(&r)) != DA_OK ||
	    (rc = db_run(db, &stmts[STMT_PLAN_USERS], DB_ARGS(DB_INT(DIR_ADD),
	    DB_INT(DIR_REACTIVATE), DB_INT(DIR_UPDATE)), err)) != DA_OK ||
	    (rc = db_run(db, &stmts[STMT_PLAN_DEPTS], DB_ARGS(DB_INT(DIR_ADD),
	    DB_INT(DIR_UPDATE)), err)) != DA_OK)
		return rc;
	/* Leavers and removals only when the whole directory was seen. */
	if (complete &&
	    ((rc = db_run(db, &stmts[STMT_PLAN_LEAVERS],
	    DB_ARGS(DB_INT(DIR_DEACTIVATE)), err)) != DA_OK ||
	    (rc = db_run(db, &stmts[STMT_PLAN_DEPT_REMOVALS],
	    DB_ARGS(DB_INT(DIR_REMOVE)), err)) != DA_OK))
		return rc;
	db_query(db, &r, &stmts[STMT_PLAN_COUNTS], DB_NOARGS, err);
	while (db_next(&r) == 1) {
		if ((action = db_int(&r, 1)) < DIR_ADD || action >= DIR__MAX)
			continue;
		if (db_int(&r, 0) == 0)
			c->users[action] = db_int(&r, 2);
		else
			c->depts[action] = db_int(&r, 2);
	}
	return db_done(&r);
}

enum da_err
directory_plan_each_dept(struct db *db,
    enum da_err (*fn)(enum dir_action, const struct dir_dept *, void *,
    struct da_error *), void *arg, struct da_error *err)
{
	struct db_rows	 r;
	struct dir_dept	 d;
	enum da_err	 rc = DA_OK;
	enum dir_action	 action;

	db_query(db, &r, &stmts[STMT_PLAN_EACH_DEPT], DB_NOARGS, err);
	while (rc == DA_OK && db_next(&r) == 1) {
		action = (enum dir_action)db_int(&r, 0);
		memset(&d, 0, sizeof(d));
		d.dept_id = db_int(&r, 1);
		d.parent_id = db_int(&r, 2);
		/* A removal has no staged row: our name. */
		copy(d.name, sizeof(d.name), &r, action == DIR_REMOVE ? 4 : 3);
		rc = fn(action, &d, arg, err);
	}
	if (db_done(&r) != DA_OK)
		rc = DA_EDB;
	return rc;
}

enum da_err
directory_plan_each_user(struct db *db,
    enum da_err (*fn)(enum dir_action, const struct dir_user *, void *,
    struct da_error *), void *arg, struct da_error *err)
{
	struct db_rows	 r, m;
	struct dir_user	 u;
	enum da_err	 rc = DA_OK;
	enum dir_action	 action;

	memset(&u, 0, sizeof(u));
	db_query(db, &r, &stmts[STMT_PLAN_EACH_USER], DB_NOARGS, err);
	while (rc == DA_OK && db_next(&r) == 1) {
		action = (enum dir_action)db_int(&r, 0);
		free(u.dept_ids);
		memset(&u, 0, sizeof(u));
		copy(u.userid, sizeof(u.userid), &r, 1);
		copy(u.unionid, sizeof(u.unionid), &r, 2);
		/* A leaver has no staged row: our name. */
		copy(u.name, sizeof(u.name), &r, action == DIR_DEACTIVATE ?
		    9 : 3);
		copy(u.title, sizeof(u.title), &r, 4);
		copy(u.job_number, sizeof(u.job_number), &r, 5);
		copy(u.email, sizeof(u.email), &r, 6);
		copy(u.mobile, sizeof(u.mobile), &r, 7);
		u.admin = (int)db_int(&r, 8);
		u.active = 1;
		if (action != DIR_DEACTIVATE) {
			db_query(db, &m, &stmts[STMT_PLAN_USER_DEPTS],
			    DB_ARGS(DB_TEXT(u.userid)), err);
			if ((rc = collect_ids(&m, &u.dept_ids, &u.ndept)) !=
			    DA_OK)
				break;
		}
		rc = fn(action, &u, arg, err);
	}
	if (db_done(&r) != DA_OK)
		rc = DA_EDB;
	free(u.dept_ids);
	return rc;
}
