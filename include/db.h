#ifndef DINGAUTH_DB_H
#define DINGAUTH_DB_H

#include <sys/types.h>

#include <stddef.h>

#include "err.h"

/*
 * The database: directory, sessions, login states, events, token cache.
 * DINGAUTH_DB a file path: SQLite, opened with WAL, foreign keys on and a
 * busy timeout; the schema and numbered migrations from sql/ (embedded at
 * build time) are applied by PRAGMA user_version on open. A
 * postgresql:// (or postgres://) URI: PostgreSQL through libpq, for
 * several web nodes on one database (src/db_pg.c, include/db_pg.h); its
 * schema is sql/pg/, applied by dingauth init and the worker.
 *
 * One idiom for every store. A store keeps its statements in a table
 * indexed by its own enum, each with a short name for error messages:
 *
 *	enum stmt { STMT_GET, STMT__MAX };
 *	static const struct db_sql stmts[STMT__MAX] = {
 *		[STMT_GET] = { "user lookup",
 *		    "SELECT name, admin FROM users WHERE userid = ?1" },
 *	};
 *
 * and runs them through db_run (no rows) or db_query/db_next/db_done (a
 * cursor), binding typed arguments built with DB_TEXT, DB_INT, DB_BLOB,
 * DB_NULL. A failure fills err once, naming the statement and the
 * engine's message ("user lookup: database is locked"). Statements are
 * prepared once per process and cached by the address of their table
 * row. Stores see no SQLite type: another engine can stand behind these
 * functions. Always bind; never format SQL.
 */
struct db;

/*
 * A statement: its name (for errors) and its SQL, with static storage;
 * pg, when PostgreSQL needs other SQL than text (ON CONFLICT for INSERT
 * OR IGNORE, its JSON functions, no rowid), else NULL: the statement is
 * written once, { "name", "SQL" }, or with { "name", "SQL", .pg = "..." }.
 */
struct db_sql {
	const char	*name;
	const char	*text;
	const char	*pg;
};

/* A typed argument, bound to ?1, ?2, ... in order. */
enum db_type {
	DB_TYPE_NULL,
	DB_TYPE_INT,
	DB_TYPE_TEXT,		/* len DB_LEN_NUL: up to the NUL */
	DB_TYPE_BLOB,
};

#define DB_LEN_NUL	((size_t)-1)

struct db_arg {
	enum db_type	 type;
	long long	 i;
	const void	*p;
	size_t		 len;
};

/* Text (NULL binds SQL NULL), text of n bytes, integer, blob, NULL. */
#define DB_TEXT(s)	((struct db_arg){ .type = DB_TYPE_TEXT, .p = (s), \
			    .len = DB_LEN_NUL })
#define DB_TEXTN(s, n)	((struct db_arg){ .type = DB_TYPE_TEXT, .p = (s), \
			    .len = (n) })
#define DB_INT(n)	((struct db_arg){ .type = DB_TYPE_INT, \
			    .i = (long long)(n) })
#define DB_BLOB(b, n)	((struct db_arg){ .type = DB_TYPE_BLOB, .p = (b), \
			    .len = (n) })
#define DB_NULL		((struct db_arg){ .type = DB_TYPE_NULL })

/*
 * The argument list of a call: DB_ARGS(DB_TEXT(userid), DB_INT(now))
 * expands to the array and its length; DB_NOARGS for none.
 */
#define DB_ARGS(...)	(const struct db_arg[]){ __VA_ARGS__ }, \
			    (sizeof((const struct db_arg[]){ __VA_ARGS__ }) / \
			    sizeof(struct db_arg))
#define DB_NOARGS	NULL, (size_t)0

/*
 * A cursor over the rows of one query. Its fields belong to db.c; a
 * store declares one on its stack and reads the current row through
 * db_int, db_text and db_bytes.
 */
struct db_rows {
	struct db		*db;
	const struct db_sql	*q;
	void			*st;	/* the engine's statement */
	int			 own;	/* st is private: finalize it */
	int			 end;	/* the last row was read */
	int			 row;	/* PostgreSQL: the current row */
	enum da_err		 rc;
	struct da_error		*err;
};

/*
 * How long a statement waits for a lock another process holds (the busy
 * budget), in milliseconds. The command and the worker may wait long;
 * request paths wait at most a fraction of what their client allows
 * (prog.h), then answer that they are busy (db_busy).
 */
#define DB_BUSY_LONG_MS		30000

/*
 * Open an existing database (creating it is "dingauth init"'s job:
 * db_create; a missing file is an error saying so) with busy_ms as its
 * busy budget; db_open waits DB_BUSY_LONG_MS. A database whose schema is
 * newer than this program's migrations is refused (DA_EDB, saying so):
 * an older binary never runs on it.
 */
enum da_err	 db_open_budget(const char *path, int busy_ms,
		    struct db **out, struct da_error *err);
enum da_err	 db_open(const char *path, struct db **out,
		    struct da_error *err);
/*
 * dingauth init only: create the file with mode (umask applies) when it
 * does not exist, never following a symbolic link, then db_open it. The
 * WAL and shared-memory files SQLite makes beside it take its mode.
 */
enum da_err	 db_create(const char *path, mode_t mode, struct db **out,
		    struct da_error *err);
/*
 * Does the path still name the file db holds open? DA_OK, or DA_EDB
 * saying that it was deleted or replaced (a restore by rename, an
 * operator's rm): the caller closes db and opens the path again, which
 * fails closed while no file is there. One stat(2): cheap per request.
 */
enum da_err	 db_check(struct db *db, struct da_error *err);
/*
 * Set the busy budget (ms, 0: never wait); returns the previous one, so
 * a write that may be skipped when busy (the authorizer's idle-time
 * touch) runs between two calls.
 */
int		 db_busy_budget(struct db *db, int ms);
/*
 * 1 when the last failure on db was a lock held by another connection
 * past the busy budget: the caller may answer 503 and let its client
 * come back, instead of reporting a broken database.
 */
int		 db_busy(struct db *db);
void		 db_close(struct db *db);

/*
 * dingauth worker: open as db_open does and bring PostgreSQL's schema to
 * the latest version (SQLite's is, on open).
 */
enum da_err	 db_open_migrating(const char *path, struct db **out,
		    struct da_error *err);

/* Whether path names a database server (a URI) rather than a file. */
int		 db_is_server(const char *path);
/* DINGAUTH_DB as it may be shown: a URI's password as "***". */
const char	*db_redact(const char *db, char *buf, size_t size);

/*
 * One process at a time per database for what is called name ("worker"):
 * with SQLite flock on the file <path>.<name>-lock (*fd holds it); with
 * PostgreSQL a session advisory lock (*fd -1), released when the
 * connection ends, so a node that dies lets go. DA_EBUSY when another
 * holds it. db_unlock lets go.
 */
enum da_err	 db_lock(struct db *db, const char *name, int *fd,
		    struct da_error *err);
void		 db_unlock(struct db *db, const char *name, int fd);

/*
 * doctor: whether some process holds the lock called name (*held), and
 * which (*holder: PostgreSQL names the session, "dingauth HOST PID"
 * from its address; SQLite only that one on this host does). A process
 * whose PostgreSQL connection dropped takes its locks again on the new
 * one; db_check fails from then on if another process took one in
 * between (the worker stops: the other one is the worker now).
 */
enum da_err	 db_lock_holder(struct db *db, const char *name, int *held,
		    char *holder, size_t size, struct da_error *err);

/* The database, for doctor: the file's path, or user@host:port/dbname. */
const char	*db_where(struct db *db, char *buf, size_t size);

/* Milliseconds of one trivial statement's round trip; -1 on failure. */
long long	 db_ping(struct db *db);

/* "SQLite 3.40.1" or "PostgreSQL 15.4", for doctor. */
const char	*db_engine(struct db *db, char *buf, size_t size);

/* The database file's path ("" for a database in memory or a server). */
const char	*db_path(struct db *db);

/*
 * Which file db has open: its device and inode, so that what is learnt
 * on one connection can be told apart from another file's (a restore
 * puts a new file in place). 0 and 0 for a server, and for db NULL.
 */
void		 db_file_id(struct db *db, unsigned long long *dev,
		    unsigned long long *ino);

/*
 * Run q with args to its end (an INSERT, UPDATE or DELETE). DA_OK or
 * DA_EDB with err filled ("<q->name>: <engine message>").
 */
enum da_err	 db_run(struct db *db, const struct db_sql *q,
		    const struct db_arg *args, size_t nargs,
		    struct da_error *err);

/* SQLite: keep at most kb of db's pages in its own cache; else nothing. */
void		 db_cache_kb(struct db *db, int kb);

/* Rows changed by the last db_run on db. */
long long	 db_changes(struct db *db);

/*
 * Start q with args; then db_next until it returns 0, then db_done.
 * A failure to start makes the first db_next return -1. A statement
 * already walked by an outer cursor gets a private copy, so a loop may
 * call any store function, this one included.
 */
void		 db_query(struct db *db, struct db_rows *r,
		    const struct db_sql *q, const struct db_arg *args,
		    size_t nargs, struct da_error *err);

/* 1: a row is current; 0: no more rows; -1: failed (err filled once). */
int		 db_next(struct db_rows *r);

/* Column col of the current row: integer; text, never NULL; its bytes. */
long long	 db_int(const struct db_rows *r, int col);
const char	*db_text(const struct db_rows *r, int col);
size_t		 db_bytes(const struct db_rows *r, int col);

/*
 * Release the cursor (it may stop before the last row): DA_OK, or DA_EDB
 * if the query failed. Safe to call twice.
 */
enum da_err	 db_done(struct db_rows *r);

/* Run constant SQL (no parameters, maybe several statements). */
enum da_err	 db_exec(struct db *db, const char *sql, struct da_error *err);
/* The same for a script in each dialect: q->text, or q->pg on PostgreSQL. */
enum da_err	 db_script(struct db *db, const struct db_sql *q,
		    struct da_error *err);

/*
 * Transactions. db_rollback ignores errors (safe in cleanup paths);
 * db_in_transaction tells whether one is open on db.
 */
enum da_err	 db_begin(struct db *db, struct da_error *err);
enum da_err	 db_begin_immediate(struct db *db, struct da_error *err);
/*
 * db_begin_immediate for rows whose loss costs only a retry (a login
 * state: the person scans again): the commit is consistent but not
 * flushed to disk (SQLite: synchronous = NORMAL in WAL mode, no fsync;
 * PostgreSQL: synchronous_commit off for the transaction). A power cut
 * may lose the newest such commits, never half of one, and never a
 * durable commit made before or after (the WAL is flushed in order: a
 * durable commit's flush covers every frame before it). db_commit and
 * db_rollback make the connection durable again.
 */
enum da_err	 db_begin_disposable(struct db *db, struct da_error *err);
enum da_err	 db_commit(struct db *db, struct da_error *err);
void		 db_rollback(struct db *db);
int		 db_in_transaction(struct db *db);

/*
 * Schema version after migrations (PRAGMA user_version; PostgreSQL: the
 * table dingauth_schema).
 */
int		 db_schema_version(struct db *db);
/* Highest migration number compiled in (SQLite's). */
int		 db_schema_latest(void);
/* Highest migration number compiled in for db's engine. */
int		 db_schema_target(struct db *db);

/* Current time in seconds. */
long long	 db_now(void);

/*
 * The SQLite handle, for tests and tools that look underneath (a store
 * never does); NULL on PostgreSQL.
 */
struct sqlite3	*db_handle(struct db *db);

#endif
