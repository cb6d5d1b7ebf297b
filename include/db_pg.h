#ifndef DINGAUTH_DB_PG_H
#define DINGAUTH_DB_PG_H

#include <stddef.h>

#include "db.h"
#include "err.h"

/*
 * PostgreSQL through libpq, the second engine behind db.h: db.c calls
 * these when DINGAUTH_DB is a postgresql:// (or postgres://) URI. No
 * other module includes this header.
 *
 * One connection per process, opened with a connect timeout and a
 * statement timeout (the URI's own settings win: TLS options such as
 * sslmode and sslrootcert pass through it untouched). A connection the
 * server closed (a restart, a failover) is noticed before the next
 * statement and opened again; while the server cannot be reached a
 * statement fails at once (a request fails closed) and a new connection
 * is tried at most every DB_PG_RETRY_MS.
 *
 * A store's statement is written once in SQLite's dialect: its ?N
 * parameters become $N, "temp." becomes "pg_temp.", "main." goes and
 * "a IS NOT b" becomes "a IS DISTINCT FROM b", once, when it is prepared; where PostgreSQL needs other SQL, the
 * statement's row carries it in .pg. Prepared statements are cached per
 * connection and prepared again after a reconnect.
 *
 * db_begin_immediate is BEGIN plus a transaction-level advisory lock
 * that every such transaction takes: like SQLite's BEGIN IMMEDIATE, one
 * such writer at a time across every node, so a store's "look again
 * after taking the lock" (the token lease, an event claim, a migration)
 * means the same on both engines.
 *
 * The schema is sql/pg/NNN-*.sql, numbered on its own and recorded in
 * the table dingauth_schema; it is applied only when asked
 * (db_pg_open's migrate: dingauth init and the worker).
 */
struct db_pg;

#define DB_PG_RETRY_MS		1000
#define DB_PG_CONNECT_S		"3"
#define DB_PG_STATEMENT_MS	"5000"

/* Whether DINGAUTH_DB names PostgreSQL. */
int		 db_pg_is_uri(const char *s);

/*
 * Connect to uri; with migrate, bring the schema to the latest version,
 * else refuse one that is older or newer than this program's. *out is
 * freed with db_pg_close.
 */
enum da_err	 db_pg_open(const char *uri, int migrate, struct db_pg **out,
		    struct da_error *err);
void		 db_pg_close(struct db_pg *pg);

/* The db.h calls, for PostgreSQL. */
void		 db_pg_query(struct db_pg *pg, struct db_rows *r,
		    const struct db_sql *q, const struct db_arg *args,
		    size_t nargs, struct da_error *err);
int		 db_pg_next(struct db_rows *r);
long long	 db_pg_int(const struct db_rows *r, int col);
const char	*db_pg_text(const struct db_rows *r, int col);
size_t		 db_pg_bytes(const struct db_rows *r, int col);
void		 db_pg_done(struct db_rows *r);
long long	 db_pg_changes(struct db_pg *pg);
enum da_err	 db_pg_exec(struct db_pg *pg, const char *sql,
		    struct da_error *err);
enum da_err	 db_pg_begin(struct db_pg *pg, int immediate,
		    struct da_error *err);
enum da_err	 db_pg_commit(struct db_pg *pg, struct da_error *err);
void		 db_pg_rollback(struct db_pg *pg);
int		 db_pg_in_transaction(struct db_pg *pg);
int		 db_pg_schema_version(struct db_pg *pg);
int		 db_pg_schema_latest(void);

/*
 * A session-level advisory lock named by key, held until
 * db_pg_unlock or the connection ends (a node that dies lets go):
 * DA_OK, DA_EBUSY when another session holds it, DA_EDB.
 */
enum da_err	 db_pg_lock(struct db_pg *pg, long long key,
		    struct da_error *err);
void		 db_pg_unlock(struct db_pg *pg, long long key);

/*
 * 1 when a lock held by db_pg_lock was lost: the connection dropped and
 * another session took the lock before we connected again.
 */
int		 db_pg_lost(struct db_pg *pg);

/*
 * Whether any session holds the advisory lock key in this database, and
 * which (*holder: its application name, "dingauth HOST PID", address
 * and server pid).
 */
enum da_err	 db_pg_lock_holder(struct db_pg *pg, long long key, int *held,
		    char *holder, size_t size, struct da_error *err);

/* Every copy of uri's password in msg (size bytes) becomes "***". */
void		 db_pg_scrub(char *msg, size_t size, const char *uri);

/* "user@host:port/dbname" (and " (TLS)"): the URI without a password. */
const char	*db_pg_where(struct db_pg *pg, char *buf, size_t size);

/* One round trip's milliseconds, -1 when it fails. */
long long	 db_pg_ping(struct db_pg *pg);

/* The server's version ("15.4"), "" when not connected. */
const char	*db_pg_server_version(struct db_pg *pg, char *buf,
		    size_t size);

#endif
