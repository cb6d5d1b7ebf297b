#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "embedded.h"
#include "log.h"
#include "mem.h"

#define DB_BUSY_TIMEOUT_MS	30000
#define DB_STMT_CACHE		96

struct db {
	sqlite3		*h;
	struct {
		const char	*sql;
		sqlite3_stmt	*st;
	}		 cache[DB_STMT_CACHE];
	size_t		 ncache;
};

enum da_err
db_error(struct db *db, struct da_error *err, const char *what)
{
	return DA_ERROR(err, DA_EDB, "%s: %s", what,
	    db != NULL && db->h != NULL ? sqlite3_errmsg(db->h) : "no database");
}

long long
db_now(void)
{
	return (long long)time(NULL);
}

sqlite3 *
db_handle(struct db *db)
{
	return db->h;
}

enum da_err
db_exec(struct db *db, const char *sql, struct da_error *err)
{
	char	*msg = NULL;

	if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
		DA_ERROR(err, DA_EDB, "%s", msg != NULL ? msg :
		    sqlite3_errmsg(db->h));
		sqlite3_free(msg);
		return DA_EDB;
	}
	return DA_OK;
}

enum da_err
db_begin(struct db *db, struct da_error *err)
{
	return db_exec(db, "BEGIN", err);
}

enum da_err
db_begin_immediate(struct db *db, struct da_error *err)
{
	return db_exec(db, "BEGIN IMMEDIATE", err);
}

enum da_err
db_commit(struct db *db, struct da_error *err)
{
	return db_exec(db, "COMMIT", err);
}

void
db_rollback(struct db *db)
{
	if (db != NULL && !sqlite3_get_autocommit(db->h))
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

int
db_schema_version(struct db *db)
{
	sqlite3_stmt	*st;
	int		 v = -1;

	if (sqlite3_prepare_v2(db->h, "PRAGMA user_version", -1, &st,
	    NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* "001-schema.sql" -> 1; the names are ours (sql/NNN-*.sql). */
static int
migration_number(const char *name)
{
	return (int)strtol(name, NULL, 10);
}

int
db_schema_latest(void)
{
	const struct embedded_file	*m;
	int				 latest = 0, n;

	for (m = embedded_migrations; m->name != NULL; m++)
		if ((n = migration_number(m->name)) > latest)
			latest = n;
	return latest;
}

static enum da_err
migrate(struct db *db, struct da_error *err)
{
	const struct embedded_file	*m;
	char				 pragma[64];
	int				 n, have;
	enum da_err			 rc;

	if (db_schema_version(db) >= db_schema_latest())
		return DA_OK;
	/* Several processes may open a new database at once: one wins. */
	if ((rc = db_begin_immediate(db, err)) != DA_OK)
		return rc;
	have = db_schema_version(db);
	for (m = embedded_migrations; m->name != NULL; m++) {
		if ((n = migration_number(m->name)) <= have)
			continue;
		if ((rc = db_exec(db, m->text, err)) != DA_OK) {
			db_rollback(db);
			return DA_ERROR(err, DA_EDB, "migration %s: %s",
			    m->name, err != NULL ? err->msg : "failed");
		}
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d",
		    n);
		if ((rc = db_exec(db, pragma, err)) != DA_OK) {
			db_rollback(db);
			return rc;
		}
		log_msg(LOG_INFO, "database migrated to version %d", n);
	}
	return db_commit(db, err);
}

enum da_err
db_open(const char *path, struct db **out, struct da_error *err)
{
	struct db	*db;
	enum da_err	 rc;

	*out = NULL;
	db = xcalloc(1, sizeof(*db));
	if (sqlite3_open_v2(path, &db->h, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		rc = db_error(db, err, path);
		goto fail;
	}
	sqlite3_busy_timeout(db->h, DB_BUSY_TIMEOUT_MS);
	sqlite3_extended_result_codes(db->h, 1);
	if ((rc = db_exec(db, "PRAGMA journal_mode = WAL", err)) != DA_OK ||
	    (rc = db_exec(db, "PRAGMA synchronous = FULL", err)) != DA_OK ||
	    (rc = db_exec(db, "PRAGMA foreign_keys = ON", err)) != DA_OK ||
	    (rc = migrate(db, err)) != DA_OK)
		goto fail;
	*out = db;
	return DA_OK;
fail:
	db_close(db);
	return rc;
}

enum da_err
db_create(const char *path, mode_t mode, struct db **out,
    struct da_error *err)
{
	int	 fd;

	*out = NULL;
	fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd == -1)
		return DA_ERROR(err, DA_EDB, "%s: %s", path, strerror(errno));
	close(fd);
	return db_open(path, out, err);
}

void
db_close(struct db *db)
{
	size_t	 i;

	if (db == NULL)
		return;
	for (i = 0; i < db->ncache; i++)
		sqlite3_finalize(db->cache[i].st);
	if (db->h != NULL)
		sqlite3_close(db->h);
	free(db);
}

sqlite3_stmt *
db_stmt(struct db *db, const char *sql, struct da_error *err)
{
	sqlite3_stmt	*st;
	size_t		 i;

	for (i = 0; i < db->ncache; i++) {
		if (db->cache[i].sql == sql) {
			st = db->cache[i].st;
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			return st;
		}
	}
	if (sqlite3_prepare_v3(db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
	    NULL) != SQLITE_OK) {
		db_error(db, err, "prepare");
		log_msg(LOG_ERR, "cannot prepare statement: %s",
		    sqlite3_errmsg(db->h));
		return NULL;
	}
	if (db->ncache < DB_STMT_CACHE) {
		db->cache[db->ncache].sql = sql;
		db->cache[db->ncache].st = st;
		db->ncache++;
	} else {
		/* More statements than the cache holds: a programming error. */
		log_msg(LOG_ERR, "statement cache full (%d): raise "
		    "DB_STMT_CACHE", DB_STMT_CACHE);
		abort();
	}
	return st;
}

int
db_bind_text(sqlite3_stmt *st, int idx, const char *s)
{
	if (s == NULL)
		return sqlite3_bind_null(st, idx);
	return sqlite3_bind_text(st, idx, s, -1, SQLITE_TRANSIENT);
}

const char *
db_column_text(sqlite3_stmt *st, int col)
{
	const unsigned char	*s = sqlite3_column_text(st, col);

	return s != NULL ? (const char *)s : "";
}
