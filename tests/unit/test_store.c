/*
 * Unit tests of the SQLite stores: db (migrations, statement cache),
 * token cache, sessions and login states, directory.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "crypto.h"
#include "db.h"
#include "dingtalk.h"
#include "directory.h"
#include "session.h"
#include "token.h"
#include "unit.h"

static int	fetch_calls;

static long long
unit_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum da_err
fake_fetch(void *arg, char *token, size_t size, long long *expires_in,
    struct da_error *err)
{
	fetch_calls++;
	snprintf(token, size, "tok-%d", fetch_calls);
	*expires_in = *(long long *)arg;
	return DA_OK;
}

static enum da_err
failing_fetch(void *arg, char *token, size_t size, long long *expires_in,
    struct da_error *err)
{
	fetch_calls++;
	return DA_ERROR(err, DA_EHTTP, "down");
}

/* Only db_create makes a database: db_open says that it is missing. */
static void
test_open_missing(const char *dir, const char *path)
{
	struct da_error	 err = { 0 };
	struct db	*db = NULL;

	CHECK(db_open(path, &db, &err) == DA_EDB && db == NULL &&
	    strstr(err.msg, "does not exist") != NULL &&
	    strstr(err.msg, "dingauth init") != NULL,
	    "open of a missing database fails, naming init (%s)", err.msg);
	CHECK(access(path, F_OK) == -1, "and creates no file");
	CHECK(db_open(dir, &db, &err) == DA_EDB && db == NULL &&
	    strstr(err.msg, "not a regular file") != NULL,
	    "a directory is not a database (%s)", err.msg);
}

/* db_check notices a path that no longer names the file held open. */
static void
test_replaced(const char *dir, const char *path)
{
	struct da_error	 err = { 0 };
	struct db	*db = NULL, *other = NULL;
	char		 moved[192], copy[192];

	snprintf(moved, sizeof(moved), "%s/moved.db", dir);
	snprintf(copy, sizeof(copy), "%s/copy.db", dir);
	CHECK(db_open(path, &db, &err) == DA_OK, "open (%s)", err.msg);
	if (db == NULL)
		return;
	CHECK(db_check(db, &err) == DA_OK, "the path names the open file");
	CHECK(rename(path, moved) == 0 && db_check(db, &err) == DA_EDB &&
	    strstr(err.msg, "does not exist") != NULL,
	    "moved away: noticed (%s)", err.msg);
	CHECK(db_create(copy, 0640, &other, &err) == DA_OK, "another file");
	db_close(other);
	CHECK(rename(copy, path) == 0 && db_check(db, &err) == DA_EDB &&
	    strstr(err.msg, "replaced") != NULL,
	    "replaced by another file: noticed (%s)", err.msg);
	db_close(db);
	/* Back as it was: the first file at the path. */
	CHECK(rename(moved, path) == 0, "restored");
	unlink(copy);
}

/*
 * A write lock held by another connection: a statement gives up after
 * the busy budget and db_busy says why; a budget of 0 never waits.
 */
static void
test_busy(const char *path)
{
	static const struct db_sql	 w = { .name = "busy write",
	    .text = "UPDATE sessions SET last_seen = 0 WHERE 0" };
	struct da_error			 err = { 0 };
	struct db			*holder = NULL, *db = NULL;
	long long			 t0;
	int				 old;

	CHECK(db_open(path, &holder, &err) == DA_OK &&
	    db_open_budget(path, 300, &db, &err) == DA_OK, "two connections");
	if (holder == NULL || db == NULL)
		goto out;
	CHECK(db_begin_immediate(holder, &err) == DA_OK, "one holds the lock");
	t0 = unit_ms();
	CHECK(db_run(db, &w, DB_NOARGS, &err) == DA_EDB && db_busy(db),
	    "the other gives up, busy (%s)", err.msg);
	CHECK(unit_ms() - t0 >= 250 && unit_ms() - t0 < 3000,
	    "after its budget (%lld ms)", unit_ms() - t0);
	old = db_busy_budget(db, 0);
	t0 = unit_ms();
	CHECK(db_run(db, &w, DB_NOARGS, &err) == DA_EDB && db_busy(db) &&
	    unit_ms() - t0 < 100 && old == 300, "budget 0: at once (%lld ms)",
	    unit_ms() - t0);
	db_busy_budget(db, old);
	db_rollback(holder);
	CHECK(db_run(db, &w, DB_NOARGS, &err) == DA_OK && !db_busy(db),
	    "free again: the write runs");
out:
	db_close(db);
	db_close(holder);
}

/* A fetch during which another connection writes: it must not wait. */
static int	writer_ok;

static enum da_err
writing_fetch(void *arg, char *token, size_t size, long long *expires_in,
    struct da_error *err)
{
	sqlite3	*other = NULL;

	fetch_calls++;
	if (sqlite3_open((const char *)arg, &other) == SQLITE_OK) {
		sqlite3_busy_timeout(other, 100);
		writer_ok = sqlite3_exec(other, "BEGIN IMMEDIATE; INSERT INTO "
		    "departments (dept_id, name, updated_at) VALUES "
		    "(999, 'w', 0); DELETE FROM departments WHERE dept_id = 999;"
		    " COMMIT", NULL, NULL, NULL) == SQLITE_OK;
	}
	sqlite3_close(other);
	snprintf(token, size, "tok-w");
	*expires_in = 7200;
	return DA_OK;
}

static void
exec(struct db *db, const char *sql)
{
	sqlite3_exec(db_handle(db), sql, NULL, NULL, NULL);
}

static void
mkuser(struct dir_user *u, const char *userid, const char *unionid,
    const char *name, long long d1, long long d2)
{
	memset(u, 0, sizeof(*u));
	snprintf(u->userid, sizeof(u->userid), "%s", userid);
	snprintf(u->unionid, sizeof(u->unionid), "%s", unionid);
	snprintf(u->name, sizeof(u->name), "%s", name);
	u->dept_ids = calloc(2, sizeof(long long));
	u->dept_ids[0] = d1;
	u->ndept = 1;
	if (d2) {
		u->dept_ids[1] = d2;
		u->ndept = 2;
	}
	u->active = 1;
}

/* The database: migrations, pragmas, the statement helpers and cache. */
static void
test_db(struct db *db, const char *path)
{
	struct da_error		 err = { 0 };
	struct db		*db2 = NULL;
	struct db_rows		 r1, r2;
	void			*st1;
	static const struct db_sql q_one = { .name = "one",
	    .text = "SELECT ?1 + 1" };
	static const struct db_sql q_bad = { .name = "nonsense", .text =
	    "SELECT nonsense FROM" };
	static const struct db_sql q_ins = { .name = "dept insert", .text =
	    "INSERT INTO departments (dept_id, name, updated_at)"
	    " VALUES (?1, ?2, 0)" };

	CHECK(db_schema_version(db) == db_schema_latest() &&
	    db_schema_latest() >= 1, "migrated to the latest version (%d)",
	    db_schema_version(db));
	CHECK(unit_count(db, "SELECT count(*) FROM pragma_journal_mode "
	    "WHERE journal_mode = 'wal'") == 1, "WAL mode");
	CHECK(unit_count(db, "PRAGMA foreign_keys") == 1, "foreign keys on");
	CHECK(db_open(path, &db2, &err) == DA_OK &&
	    db_schema_version(db2) == db_schema_latest(),
	    "a second open finds it migrated");
	db_close(db2);
	db_query(db, &r1, &q_one, DB_ARGS(DB_INT(1)), &err);
	st1 = r1.st;
	CHECK(db_next(&r1) == 1 && db_int(&r1, 0) == 2 &&
	    db_next(&r1) == 0 && db_done(&r1) == DA_OK, "a query's rows");
	db_query(db, &r1, &q_one, DB_ARGS(DB_INT(2)), &err);
	CHECK(st1 != NULL && r1.st == st1, "statements are prepared once");
	CHECK(db_next(&r1) == 1 && db_int(&r1, 0) == 3,
	    "a cached statement is bound afresh");
	db_query(db, &r2, &q_one, DB_ARGS(DB_INT(10)), &err);
	CHECK(r2.st != st1 && db_next(&r2) == 1 && db_int(&r2, 0) == 11 &&
	    db_done(&r2) == DA_OK && db_next(&r1) == 0 &&
	    db_done(&r1) == DA_OK,
	    "a statement in use by an outer cursor gets a private copy");
	da_error_clear(&err);
	CHECK(db_run(db, &q_bad, DB_NOARGS, &err) == DA_EDB &&
	    err.code == DA_EDB && strncmp(err.msg, "nonsense: ", 10) == 0,
	    "a bad statement is an error naming it (%s)", err.msg);
	da_error_clear(&err);
	db_query(db, &r1, &q_one, DB_NOARGS, &err);
	CHECK(db_next(&r1) == -1 && db_done(&r1) == DA_EDB &&
	    strstr(err.msg, "one: 0 arguments for 1 parameters") != NULL,
	    "too few arguments are an error (%s)", err.msg);
	CHECK(db_run(db, &q_ins, DB_ARGS(DB_INT(77), DB_TEXT("x")), &err) ==
	    DA_OK && db_changes(db) == 1 && db_run(db, &q_ins,
	    DB_ARGS(DB_INT(77), DB_TEXT("x")), &err) == DA_EDB &&
	    strncmp(err.msg, "dept insert: ", 13) == 0,
	    "db_run counts changes and reports a failed step once (%s)",
	    err.msg);
	exec(db, "DELETE FROM departments WHERE dept_id = 77");
}

/* The token cache and its lease. */
static void
test_tokens(struct db *db, char *path)
{
	struct da_error		 err = { 0 };
	struct token_info	 ti[4];
	char			 tok[TOKEN_MAX];
	long long		 ttl = 7200;
	size_t			 n;
	int			 fetched;

	fetch_calls = 0;
	CHECK(token_cache_get(db, TOKEN_CORP, "appk", fake_fetch, &ttl, tok,
	    sizeof(tok), &fetched, &err) == DA_OK && fetched &&
	    strcmp(tok, "tok-1") == 0, "first get fetches");
	CHECK(token_cache_get(db, TOKEN_CORP, "appk", fake_fetch, &ttl, tok,
	    sizeof(tok), &fetched, &err) == DA_OK && !fetched &&
	    strcmp(tok, "tok-1") == 0 && fetch_calls == 1,
	    "second get is cached");
	exec(db, "UPDATE tokens SET expires_at = strftime('%s','now') + 299");
	CHECK(token_cache_get(db, TOKEN_CORP, "appk", fake_fetch, &ttl, tok,
	    sizeof(tok), &fetched, &err) == DA_OK && fetched &&
	    strcmp(tok, "tok-2") == 0, "refreshed 300 s before expiry");
	exec(db, "UPDATE tokens SET expires_at = strftime('%s','now') + 301");
	CHECK(token_cache_get(db, TOKEN_CORP, "appk", fake_fetch, &ttl, tok,
	    sizeof(tok), &fetched, &err) == DA_OK && !fetched,
	    "used until 300 s before expiry");
	CHECK(token_cache_drop(db, TOKEN_CORP, "appk", "tok-1", &err) == DA_OK &&
	    unit_count(db, "SELECT count(*) FROM tokens") == 1,
	    "drop of a token already replaced keeps the new one");
	CHECK(token_cache_drop(db, TOKEN_CORP, "appk", "tok-2", &err) == DA_OK &&
	    unit_count(db, "SELECT count(*) FROM tokens") == 0,
	    "drop of the current token removes it");
	CHECK(token_cache_get(db, TOKEN_SNS, "snsapp", failing_fetch, NULL,
	    tok, sizeof(tok), &fetched, &err) == DA_EHTTP &&
	    unit_count(db, "SELECT count(*) FROM tokens") == 0 &&
	    sqlite3_get_autocommit(db_handle(db)),
	    "a failed fetch stores nothing and releases the lock");
	token_cache_get(db, TOKEN_SNS, "snsapp", fake_fetch, &ttl, tok,
	    sizeof(tok), &fetched, &err);
	CHECK(token_cache_list(db, ti, 4, &n, &err) == DA_OK && n == 1 &&
	    strcmp(ti[0].kind, "sns") == 0 && strstr(ti[0].fingerprint,
	    "tok") == NULL && strlen(ti[0].fingerprint) == 12,
	    "list shows a fingerprint, not the token");

	/* The lease: DingTalk is asked without holding the write lock. */
	token_cache_drop(db, TOKEN_CORP, "appk", NULL, &err);
	fetch_calls = writer_ok = 0;
	CHECK(token_cache_get(db, TOKEN_CORP, "appk", writing_fetch, path, tok,
	    sizeof(tok), &fetched, &err) == DA_OK && writer_ok &&
	    strcmp(tok, "tok-w") == 0,
	    "another writer is not blocked while a token is fetched");
	CHECK(unit_count(db, "SELECT count(*) FROM token_leases") == 0,
	    "the lease is released after the fetch");
	token_cache_drop(db, TOKEN_CORP, "appk", NULL, &err);
	exec(db, "INSERT INTO token_leases VALUES ('corp', 'appk', 1, "
	    "strftime('%s','now') - 1)");
	fetch_calls = 0;
	CHECK(token_cache_get(db, TOKEN_CORP, "appk", fake_fetch, &ttl, tok,
	    sizeof(tok), &fetched, &err) == DA_OK && fetched &&
	    fetch_calls == 1, "an expired lease (its holder died) is taken over");
	token_cache_drop(db, TOKEN_CORP, "appk", NULL, &err);
	exec(db, "INSERT INTO token_leases VALUES ('corp', 'appk', 1, "
	    "strftime('%s','now') + 2)");
	fetch_calls = 0;
	CHECK(token_cache_get(db, TOKEN_CORP, "appk", fake_fetch, &ttl, tok,
	    sizeof(tok), &fetched, &err) == DA_OK && fetch_calls == 1,
	    "a live lease is waited for, then taken over when it expires");
	CHECK(token_cache_get(db, TOKEN_SNS, "snsx", failing_fetch, NULL, tok,
	    sizeof(tok), &fetched, &err) == DA_EHTTP &&
	    unit_count(db, "SELECT count(*) FROM token_leases") == 0,
	    "a failed fetch releases its lease");

	/* One app as both corp and login app: two tokens, side by side. */
	exec(db, "DELETE FROM tokens");
	fetch_calls = 0;
	CHECK(token_cache_get(db, TOKEN_CORP, "same", fake_fetch, &ttl, tok,
	    sizeof(tok), &fetched, &err) == DA_OK && fetched &&
	    strcmp(tok, "tok-1") == 0 && token_cache_get(db, TOKEN_SNS, "same",
	    fake_fetch, &ttl, tok, sizeof(tok), &fetched, &err) == DA_OK &&
	    fetched && strcmp(tok, "tok-2") == 0,
	    "the corp and sns tokens of one app are fetched separately");
	CHECK(token_cache_get(db, TOKEN_CORP, "same", fake_fetch, &ttl, tok,
	    sizeof(tok), &fetched, &err) == DA_OK && !fetched &&
	    strcmp(tok, "tok-1") == 0 && token_cache_get(db, TOKEN_SNS, "same",
	    fake_fetch, &ttl, tok, sizeof(tok), &fetched, &err) == DA_OK &&
	    !fetched && strcmp(tok, "tok-2") == 0 && fetch_calls == 2 &&
	    unit_count(db, "SELECT count(*) FROM tokens") == 2,
	    "both stay cached: each was fetched once");
	CHECK(token_cache_drop(db, TOKEN_SNS, "same", NULL, &err) == DA_OK &&
	    unit_count(db, "SELECT count(*) FROM tokens WHERE kind = 'corp'")
	    == 1 && unit_count(db, "SELECT count(*) FROM tokens") == 1,
	    "dropping the sns token keeps the corp token of the same app");
}

/* The directory: users, memberships, the department rule. */
static void
test_directory(struct db *db)
{
	struct da_error		 err = { 0 };
	struct dir_user		 du;
	struct dir_user		 u;
	struct dir_dept		 d;
	long long		 want[2];
	int			 was, yes;

	d.dept_id = 1; d.parent_id = 0; snprintf(d.name, sizeof(d.name), "Co");
	directory_upsert_dept(db, &d, &err);
	d.dept_id = 2; d.parent_id = 1; snprintf(d.name, sizeof(d.name), "RD");
	directory_upsert_dept(db, &d, &err);
	d.dept_id = 3; d.parent_id = 2; snprintf(d.name, sizeof(d.name), "FE");
	directory_upsert_dept(db, &d, &err);
	d.dept_id = 4; d.parent_id = 1; snprintf(d.name, sizeof(d.name), "HR");
	directory_upsert_dept(db, &d, &err);
	mkuser(&u, "u1", "un1", "张三", 3, 4);
	CHECK(directory_upsert_user(db, &u, "sync", &was, &err) == DA_OK &&
	    was == 0, "new user added");
	dir_user_clear(&u);
	CHECK(directory_get_user(db, "u1", &du, &err) == DA_OK &&
	    strcmp(du.name, "张三") == 0 && du.ndept == 2 && du.active &&
	    du.dept_ids[0] == 3 && du.dept_ids[1] == 4,
	    "user read back with memberships");
	dir_user_clear(&du);
	CHECK(directory_get_user(db, "nobody", &du, &err) == DA_ENOTFOUND,
	    "unknown user");
	want[0] = 2;
	CHECK(directory_user_in_depts(db, "u1", want, 1, &yes, &err) ==
	    DA_OK && yes, "member of a sub-department counts");
	want[0] = 3;
	CHECK(directory_user_in_depts(db, "u1", want, 1, &yes, &err) ==
	    DA_OK && yes, "direct member counts");
	mkuser(&u, "u2", "un2", "Li", 4, 0);
	directory_upsert_user(db, &u, "sync", NULL, &err);
	dir_user_clear(&u);
	want[0] = 2;
	CHECK(directory_user_in_depts(db, "u2", want, 1, &yes, &err) ==
	    DA_OK && !yes, "member elsewhere does not");
	want[1] = 4;
	CHECK(directory_user_in_depts(db, "u2", want, 2, &yes, &err) ==
	    DA_OK && yes, "any of several departments");
}

/* A plan walk into a line of "action id[:ndept]" words. */
static enum da_err
note_user(enum dir_action action, const struct dir_user *u, void *arg,
    struct da_error *err)
{
	char	*seen = arg;
	size_t	 len = strlen(seen);

	snprintf(seen + len, 256 - len, "%s %s:%zu,",
	    directory_action_name(action), u->userid, u->ndept);
	return DA_OK;
}

static enum da_err
note_dept(enum dir_action action, const struct dir_dept *d, void *arg,
    struct da_error *err)
{
	char	*seen = arg;
	size_t	 len = strlen(seen);

	snprintf(seen + len, 256 - len, "%s %lld %s,",
	    directory_action_name(action), d->dept_id, d->name);
	return DA_OK;
}

/* A sync's staged copy and the plan made from it (nothing applied). */
static void
test_stage(struct db *db)
{
	struct da_error		 err = { 0 };
	struct dir_stage_counts	 sc;
	struct dir_plan_counts	 pc;
	struct dir_user		 u;
	long long		 failed[2] = { 0, 0 };
	char			 seen[256] = "";
	int			 fresh, a, b;

	CHECK(directory_stage_begin(db, 1, &err) == DA_OK,
	    "a staged copy begins with the root (%s)", err.msg);
	CHECK(directory_stage_dept(db, 2, 1, "RD", &fresh, &err) == DA_OK &&
	    fresh && directory_stage_dept(db, 2, 1, "RD", &fresh, &err) ==
	    DA_OK && !fresh, "a department is staged once");
	directory_stage_dept(db, 3, 2, "FE", &fresh, &err);
	directory_stage_dept(db, 5, 1, "Ops", &fresh, &err);
	mkuser(&u, "u1", "un1", "张三丰", 3, 0);
	a = directory_stage_user(db, &u, 3, &fresh, &err) == DA_OK && fresh;
	b = directory_stage_user(db, &u, 3, &fresh, &err) == DA_OK && !fresh;
	CHECK(a && b, "a user is staged once");
	dir_user_clear(&u);
	mkuser(&u, "u3", "un3", "Wang", 5, 0);
	directory_stage_user(db, &u, 5, &fresh, &err);
	dir_user_clear(&u);
	CHECK(directory_stage_counts(db, &sc, failed, 2, &err) == DA_OK &&
	    sc.departments == 4 && sc.users == 2 && sc.failed == 0,
	    "staged counts");
	CHECK(directory_plan(db, 1, &pc, &err) == DA_OK &&
	    pc.active_before == 2 && pc.users[DIR_ADD] == 1 &&
	    pc.users[DIR_UPDATE] == 1 && pc.users[DIR_DEACTIVATE] == 1 &&
	    pc.users[DIR_REACTIVATE] == 0 && pc.depts[DIR_ADD] == 1 &&
	    pc.depts[DIR_UPDATE] == 0 && pc.depts[DIR_REMOVE] == 1,
	    "the plan counts each action (%s)", err.msg);
	CHECK(directory_plan_each_user(db, note_user, seen, &err) == DA_OK,
	    "the user plan walks");
	CHECK_STR(seen, "add u3:1,update u1:1,deactivate u2:0,",
	    "users by action, with staged departments; a leaver bare");
	seen[0] = '\0';
	CHECK(directory_plan_each_dept(db, note_dept, seen, &err) == DA_OK,
	    "the department plan walks");
	CHECK_STR(seen, "add 5 Ops,remove 4 HR,",
	    "departments by action; a removal with our name");
	CHECK(directory_stage_dept_failed(db, 5, &err) == DA_OK &&
	    directory_stage_counts(db, &sc, failed, 2, &err) == DA_OK &&
	    sc.failed == 1 && failed[0] == 5, "a failed department is listed");
	directory_stage_end(db);
	CHECK(unit_count(db, "SELECT count(*) FROM temp.sqlite_master"
	    " WHERE name LIKE 'sync%'") == 0 &&
	    unit_count(db, "SELECT count(*) FROM users WHERE active = 1") == 2,
	    "the copy is dropped and the directory untouched");
}

/* Sessions, and how the directory ends them. */
static void
test_sessions(struct db *db)
{
	struct da_error		 err = { 0 };
	struct session_user	 su;
	struct dir_user		 du;
	struct dir_user		 u;
	char			 id[SESSION_ID_LEN + 1];
	char			 id2[SESSION_ID_LEN + 1], hex[65];
	long long		 users, active, depts;
	int			 was, ended;

	CHECK(session_open(db, "u1", "127.0.0.1", "ua", id, &err) == DA_OK &&
	    strlen(id) == SESSION_ID_LEN, "session opened");
	crypto_sha256_hex(id, SESSION_ID_LEN, hex);
	CHECK(unit_count(db, "SELECT count(*) FROM sessions") == 1, "one row");
	{
		char	 q[256];

		snprintf(q, sizeof(q), "SELECT count(*) FROM sessions WHERE "
		    "hex(id_hash) = upper('%s')", hex);
		CHECK(unit_count(db, q) == 1,
		    "only the SHA-256 of the id is stored");
	}
	CHECK(session_check(db, id, &su, &err) == DA_OK &&
	    strcmp(su.userid, "u1") == 0 && su.ndept == 2 &&
	    su.dept_ids[0] == 3 && su.dept_ids[1] == 4 &&
	    strcmp(su.unionid, "un1") == 0, "session checks out");
	session_user_clear(&su);
	id[0] = id[0] == 'a' ? 'b' : 'a';
	CHECK(session_check(db, id, &su, &err) == DA_ENOTFOUND,
	    "a changed id does not");
	CHECK(session_check(db, "short", &su, &err) == DA_ENOTFOUND &&
	    session_check(db, "", &su, &err) == DA_ENOTFOUND,
	    "malformed ids do not");
	session_open(db, "u1", NULL, NULL, id, &err);
	session_open(db, "u1", NULL, NULL, id2, &err);
	CHECK(strcmp(id, id2) != 0, "every login gets a new id");
	exec(db, "UPDATE sessions SET last_seen = last_seen - 3601");
	CHECK(session_check(db, id, &su, &err) == DA_ENOTFOUND,
	    "idle session ends");
	session_open(db, "u1", NULL, NULL, id, &err);
	exec(db, "UPDATE sessions SET expires_at = strftime('%s','now') - 1");
	CHECK(session_check(db, id, &su, &err) == DA_ENOTFOUND,
	    "expired session ends");
	session_open(db, "u1", NULL, NULL, id, &err);
	session_open(db, "u2", NULL, NULL, id2, &err);
	CHECK(directory_set_disabled(db, "u2", 1, &err) == DA_OK &&
	    session_check(db, id2, &su, &err) == DA_ENOTFOUND,
	    "disabled user is out");
	CHECK(directory_set_disabled(db, "nobody", 1, &err) == DA_ENOTFOUND,
	    "disabling an unknown user is an error");
	directory_set_disabled(db, "u2", 0, &err);
	CHECK(directory_deactivate_user(db, "u1", &ended, &err) == DA_OK &&
	    ended >= 1 && session_check(db, id, &su, &err) == DA_ENOTFOUND,
	    "a leaver's sessions end at once (%d)", ended);
	CHECK(directory_get_user(db, "u1", &du, &err) == DA_OK &&
	    !du.active && du.left_at > 0, "leaver kept as an inactive row");
	dir_user_clear(&du);
	mkuser(&u, "u1", "un1", "张三", 3, 0);
	CHECK(directory_upsert_user(db, &u, "sync", &was, &err) == DA_OK &&
	    was == 2, "rehire noticed");
	dir_user_clear(&u);
	CHECK(directory_get_user(db, "u1", &du, &err) == DA_OK && du.active &&
	    du.left_at == 0 && du.ndept == 1, "rehired user active again");
	dir_user_clear(&du);
	CHECK(directory_counts(db, &users, &active, &depts, &err) == DA_OK &&
	    users == 2 && active == 2 && depts == 4, "counts");
	CHECK(directory_remove_dept(db, 3, &err) == DA_OK &&
	    unit_count(db, "SELECT count(*) FROM user_depts"
	    " WHERE dept_id = 3") == 0 &&
	    unit_count(db, "SELECT count(*) FROM departments") == 3,
	    "department removed with its memberships");
}

/* Login states: single-use, time-boxed. */
static void
test_states(struct db *db)
{
	struct da_error		 err = { 0 };
	char			 state[STATE_LEN + 1], rd[256];

	CHECK(state_create(db, "/wiki?a=1", state, &err) == DA_OK &&
	    strlen(state) == STATE_LEN && strpbrk(state, "+/=") == NULL,
	    "state created, URL-safe");
	CHECK(state_take(db, state, rd, sizeof(rd), &err) == DA_OK &&
	    strcmp(rd, "/wiki?a=1") == 0, "state taken with its rd");
	CHECK(state_take(db, state, rd, sizeof(rd), &err) == DA_ESTATE,
	    "state is single-use");
	state_create(db, "/", state, &err);
	exec(db, "UPDATE login_states SET expires_at = strftime('%s','now') - 1");
	CHECK(state_take(db, state, rd, sizeof(rd), &err) == DA_ESTATE &&
	    unit_count(db, "SELECT count(*) FROM login_states") == 0,
	    "expired state refused and gone");
	CHECK(state_take(db, "not-a-state", rd, sizeof(rd), &err) == DA_ESTATE,
	    "forged state refused");
}

/*
 * A disposable transaction commits without an fsync (synchronous 1,
 * NORMAL) and leaves the connection durable again (2, FULL) whether it
 * commits or rolls back; a login state is written that way.
 */
static void
test_disposable(struct db *db)
{
	struct da_error		 err = { 0 };
	char			 state[STATE_LEN + 1];

	CHECK(unit_count(db, "PRAGMA synchronous") == 2, "FULL by default");
	CHECK(db_begin_disposable(db, &err) == DA_OK &&
	    unit_count(db, "PRAGMA synchronous") == 1, "NORMAL inside (%s)",
	    err.msg);
	exec(db, "INSERT INTO login_states (state_hash, rd, created_at,"
	    " expires_at) VALUES (x'01', '/', 0, 0)");
	CHECK(db_commit(db, &err) == DA_OK &&
	    unit_count(db, "PRAGMA synchronous") == 2 &&
	    unit_count(db, "SELECT count(*) FROM login_states WHERE"
	    " state_hash = x'01'") == 1, "committed, FULL again");
	CHECK(db_begin_disposable(db, &err) == DA_OK, "again");
	exec(db, "DELETE FROM login_states WHERE state_hash = x'01'");
	db_rollback(db);
	CHECK(unit_count(db, "PRAGMA synchronous") == 2 &&
	    unit_count(db, "SELECT count(*) FROM login_states WHERE"
	    " state_hash = x'01'") == 1, "rolled back, FULL again");
	exec(db, "DELETE FROM login_states");
	CHECK(state_create(db, "/", state, &err) == DA_OK &&
	    unit_count(db, "PRAGMA synchronous") == 2 &&
	    unit_count(db, "SELECT count(*) FROM login_states") == 1,
	    "a login state stored, the connection FULL after it");
	exec(db, "DELETE FROM login_states");
}

int
main(void)
{
	struct da_error		 err = { 0 };
	struct db		*db = NULL;
	char			 dir[] = "/tmp/dingauth-store-XXXXXX";
	char			 path[128];

	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/t.db", dir);
	setenv("DINGAUTH_CONFIG", "/dev/null", 1);
	config_load(0, &err);

	test_open_missing(dir, path);
	CHECK(db_create(path, 0640, &db, &err) == DA_OK, "db_create creates "
	    "(%s)", err.msg);
	test_replaced(dir, path);
	test_busy(path);
	if (db != NULL) {
		test_db(db, path);
		test_tokens(db, path);
		test_directory(db);
		test_stage(db);
		test_sessions(db);
		test_states(db);
		test_disposable(db);
	}
	db_close(db);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	if (system(path) != 0)
		return 1;
	return unit_done();
}
