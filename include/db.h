#ifndef DINGAUTH_DB_H
#define DINGAUTH_DB_H

#include <sys/types.h>

#include <sqlite3.h>

#include "err.h"

/*
 * The SQLite database: directory, sessions, login states, events, token
 * cache. Opened with WAL, foreign keys on and a busy timeout; the schema
 * and numbered migrations from sql/ (embedded at build time) are applied
 * by PRAGMA user_version on open.
 *
 * Statements are prepared once per process and cached by their SQL text
 * pointer: store modules keep their SQL in static const tables and call
 * db_stmt(db, sql). Always bind; never format SQL.
 */
struct db;

/* Open (creating the file and its directory is the operator's job). */
enum da_err	 db_open(const char *path, struct db **out,
		    struct da_error *err);
/*
 * dingauth init only: create the file with mode (umask applies) when it
 * does not exist, never following a symbolic link, then db_open it. The
 * WAL and shared-memory files SQLite makes beside it take its mode.
 */
enum da_err	 db_create(const char *path, mode_t mode, struct db **out,
		    struct da_error *err);
void		 db_close(struct db *db);
sqlite3		*db_handle(struct db *db);

/*
 * The cached prepared statement for sql (a string with static storage),
 * reset and with bindings cleared; NULL (err filled) if it fails to
 * prepare. Do not finalize it.
 */
sqlite3_stmt	*db_stmt(struct db *db, const char *sql, struct da_error *err);

/* Run constant SQL (no parameters), e.g. "BEGIN IMMEDIATE". */
enum da_err	 db_exec(struct db *db, const char *sql, struct da_error *err);

/* Transactions. db_rollback ignores errors (safe in cleanup paths). */
enum da_err	 db_begin(struct db *db, struct da_error *err);
enum da_err	 db_begin_immediate(struct db *db, struct da_error *err);
enum da_err	 db_commit(struct db *db, struct da_error *err);
void		 db_rollback(struct db *db);

/* Fill err with sqlite3_errmsg and return DA_EDB. */
enum da_err	 db_error(struct db *db, struct da_error *err,
		    const char *what);

/* Schema version after migrations (PRAGMA user_version). */
int		 db_schema_version(struct db *db);
/* Highest migration number compiled in. */
int		 db_schema_latest(void);

/* Current time in seconds. */
long long	 db_now(void);

/* Bind text (NULL binds NULL). */
int		 db_bind_text(sqlite3_stmt *st, int idx, const char *s);
/* Column text, never NULL ("" for NULL). */
const char	*db_column_text(sqlite3_stmt *st, int col);

#endif
