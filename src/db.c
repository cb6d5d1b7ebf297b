#include <sys/stat.h>
#include <sys/file.h>

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "db_pg.h"
#include "embedded.h"
#include "log.h"
#include "mem.h"
#include "mono.h"

#define DB_STMT_CACHE		128

/*
 * The WAL is checkpointed every 256 pages (1 MiB) and cut back to 1 MiB
 * when it restarts: a stream of small writes (anyone's login page views
 * store a state) keeps it near that size, not at SQLite's 4 MiB default.
 */
#define WAL_BOUNDS	"PRAGMA wal_autocheckpoint = 256;" \
			" PRAGMA journal_size_limit = 1048576"

/*
 * Two engines behind one interface: a database is SQLite (h) or
 * PostgreSQL (pg, src/db_pg.c), chosen by DINGAUTH_DB's form; each
 * function below hands a PostgreSQL database to its db_pg_ twin.
 */
struct db {
	sqlite3		*h;
	struct db_pg	*pg;
	struct {
		const struct db_sql	*q;
		sqlite3_stmt		*st;
	}		 cache[DB_STMT_CACHE];
	size_t		 ncache;
	long long	 changes;	/* by the last db_run */
	int		 busy_ms;	/* the busy budget now */
	long long	 busy_since;	/* µs: when the current wait began */
	int		 busy;		/* the last failure: the lock was held */
	dev_t		 dev;		/* the file opened (db_check) */
	ino_t		 ino;
	int		 disposable;	/* synchronous = NORMAL for now */
};

/* Did the engine give up because another connection held the lock? */
static int
lock_held(struct db *db)
{
	int	 e;

	if (db == NULL || db->h == NULL)
		return 0;
	e = sqlite3_errcode(db->h) & 0xff;
	return e == SQLITE_BUSY || e == SQLITE_LOCKED;
}

/* Fill err once for a failure of q: "<name>: <SQLite's message>". */
static enum da_err
fail(struct db *db, const char *name, struct da_error *err)
{
	if (db != NULL)
		db->busy = lock_held(db);
	return DA_ERROR(err, DA_EDB, "%s: %s", name, db != NULL &&
	    db->h != NULL ? sqlite3_errmsg(db->h) : "no database");
}

int
db_busy(struct db *db)
{
	return db != NULL && db->busy;
}

/*
 * The wait for a lock another connection holds, within the busy budget.
 * SQLite's own handler (sqlite3_busy_timeout) sleeps 1, 2, 5, 10 ... up
 * to 100 ms between tries; a write transaction here holds the lock for
 * about a millisecond, so under concurrent pushes a waiter slept long
 * after the lock was free (hundreds of ms at the 99th percentile with
 * 16 concurrent pushes, against DingTalk's 1500 ms deadline). This one
 * tries again after BUSY_STEP_US, doubling to at most BUSY_STEP_MAX_US.
 */
#define BUSY_STEP_US		50
#define BUSY_STEP_MAX_US	2000

static int
busy_wait(void *arg, int count)
{
	struct db	*db = arg;
	long long	 now = mono_us(), left, step;
	struct timespec	 ts;

	if (count == 0)
		db->busy_since = now;
	left = (long long)db->busy_ms * 1000 - (now - db->busy_since);
	if (left <= 0)
		return 0;
	step = count < 6 ? (long long)BUSY_STEP_US << count : BUSY_STEP_MAX_US;
	if (step > BUSY_STEP_MAX_US)
		step = BUSY_STEP_MAX_US;
	if (step > left)
		step = left;
	ts.tv_sec = 0;
	ts.tv_nsec = (long)(step * 1000);
	nanosleep(&ts, NULL);
	return 1;
}

int
db_busy_budget(struct db *db, int ms)
{
	int	 old = db->busy_ms;

	db->busy_ms = ms < 0 ? 0 : ms;
	if (db->h != NULL)	/* PostgreSQL: its statement timeout */
		sqlite3_busy_handler(db->h, db->busy_ms > 0 ? busy_wait :
		    NULL, db);
	return old;
}

/*
 * DINGAUTH_TEST_TIME_OFFSET (seconds, for tests only) moves the clock of
 * every store and of the worker forward, so a test sees tomorrow's sync
 * or a retry due in an hour without waiting; the product path is the
 * same code. Read once per process.
 */
long long
db_now(void)
{
	static int		 read;
	static long long	 offset;
	const char		*s;

	if (!read) {
		read = 1;
		if ((s = getenv("DINGAUTH_TEST_TIME_OFFSET")) != NULL)
			offset = strtoll(s, NULL, 10);
	}
	return (long long)time(NULL) + offset;
}

struct sqlite3 *
db_handle(struct db *db)
{
	return db->h;
}

const char *
db_redact(const char *db, char *buf, size_t size)
{
	snprintf(buf, size, "%s", db != NULL ? db : "");
	if (db_is_server(db))
		db_pg_scrub(buf, size, db);
	return buf;
}

int
db_is_server(const char *path)
{
	return db_pg_is_uri(path);
}

const char *
db_engine(struct db *db, char *buf, size_t size)
{
	char	 v[32];

	if (db->pg != NULL)
		snprintf(buf, size, "PostgreSQL %s", db_pg_server_version(db->pg,
		    v, sizeof(v)));
	else
		snprintf(buf, size, "SQLite %s", sqlite3_libversion());
	return buf;
}

void
db_file_id(struct db *db, unsigned long long *dev, unsigned long long *ino)
{
	*dev = *ino = 0;
	if (db == NULL || db->pg != NULL)
		return;
	*dev = (unsigned long long)db->dev;
	*ino = (unsigned long long)db->ino;
}

const char *
db_path(struct db *db)
{
	const char	*path;

	if (db->pg != NULL)
		return "";
	path = sqlite3_db_filename(db->h, "main");

	return path != NULL ? path : "";
}

void
db_cache_kb(struct db *db, int kb)
{
	char	 sql[64];

	if (db->pg != NULL)
		return;
	snprintf(sql, sizeof(sql), "PRAGMA cache_size = -%d", kb);
	(void)sqlite3_exec(db->h, sql, NULL, NULL, NULL);
}

enum da_err
db_exec(struct db *db, const char *sql, struct da_error *err)
{
	char	*msg = NULL;

	db->busy = 0;
	if (db->pg != NULL)
		return db_pg_exec(db->pg, sql, err);
	if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
		db->busy = lock_held(db);
		DA_ERROR(err, DA_EDB, "%s", msg != NULL ? msg :
		    sqlite3_errmsg(db->h));
		sqlite3_free(msg);
		return DA_EDB;
	}
	return DA_OK;
}

enum da_err
db_script(struct db *db, const struct db_sql *q, struct da_error *err)
{
	return db_exec(db, db->pg != NULL && q->pg != NULL ? q->pg : q->text,
	    err);
}

enum da_err
db_begin(struct db *db, struct da_error *err)
{
	if (db->pg != NULL)
		return db_pg_begin(db->pg, 0, err);
	return db_exec(db, "BEGIN", err);
}

/*
 * After a disposable transaction: every later commit durable again (a
 * pragma outside a transaction does not fail; if it did, the next
 * db_begin_immediate tries again and refuses to begin without it).
 */
static int
durable_again(struct db *db)
{
	if (sqlite3_exec(db->h, "PRAGMA synchronous = FULL", NULL, NULL,
	    NULL) != SQLITE_OK)
		return -1;
	db->disposable = 0;
	return 0;
}

enum da_err
db_begin_immediate(struct db *db, struct da_error *err)
{
	if (db->pg != NULL)
		return db_pg_begin(db->pg, 1, err);
	if (db->disposable && durable_again(db) == -1)
		return DA_ERROR(err, DA_EDB, "PRAGMA synchronous = FULL "
		    "failed: no transaction begins without it");
	return db_exec(db, "BEGIN IMMEDIATE", err);
}

enum da_err
db_begin_disposable(struct db *db, struct da_error *err)
{
	enum da_err	 rc;

	if (db->pg != NULL) {
		if ((rc = db_pg_begin(db->pg, 1, err)) == DA_OK &&
		    (rc = db_pg_exec(db->pg, "SET LOCAL synchronous_commit "
		    "TO off", err)) != DA_OK)
			db_pg_rollback(db->pg);
		return rc;
	}
	/* Outside a transaction, as SQLite wants; back to FULL at its end. */
	if ((rc = db_exec(db, "PRAGMA synchronous = NORMAL", err)) != DA_OK)
		return rc;
	db->disposable = 1;
	if ((rc = db_exec(db, "BEGIN IMMEDIATE", err)) != DA_OK)
		(void)durable_again(db);
	return rc;
}

enum da_err
db_commit(struct db *db, struct da_error *err)
{
	enum da_err	 rc;

	rc = db_exec(db, "COMMIT", err);
	/* Only SQLite's connections are ever disposable. */
	if (db->disposable && sqlite3_get_autocommit(db->h))
		(void)durable_again(db);
	return rc;
}

void
db_rollback(struct db *db)
{
	if (db != NULL && db->pg != NULL)
		db_pg_rollback(db->pg);
	else if (db != NULL && !sqlite3_get_autocommit(db->h))
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
	if (db != NULL && db->disposable && sqlite3_get_autocommit(db->h))
		(void)durable_again(db);
}

int
db_in_transaction(struct db *db)
{
	if (db->pg != NULL)
		return db_pg_in_transaction(db->pg);
	return !sqlite3_get_autocommit(db->h);
}

int
db_schema_version(struct db *db)
{
	sqlite3_stmt	*st;
	int		 v = -1;

	if (db->pg != NULL)
		return db_pg_schema_version(db->pg);
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

int
db_schema_target(struct db *db)
{
	return db->pg != NULL ? db_pg_schema_latest() : db_schema_latest();
}

static enum da_err
migrate(struct db *db, struct da_error *err)
{
	const struct embedded_file	*m;
	char				 pragma[64];
	int				 n, have;
	enum da_err			 rc;

	if ((have = db_schema_version(db)) > db_schema_latest())
		return DA_ERROR(err, DA_EDB, "schema version %d is newer than "
		    "this dingauth's %d: run the newer release (or restore "
		    "the backup taken before the upgrade)", have,
		    db_schema_latest());
	if (have == db_schema_latest())
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

/* The identity of the file path names now (db_check). */
static int
file_id(const char *path, dev_t *dev, ino_t *ino, struct da_error *err)
{
	struct stat	 st;

	if (stat(path, &st) == -1) {
		if (errno == ENOENT)
			DA_ERROR(err, DA_EDB, "%s does not exist (only "
			    "\"dingauth init\" creates the database)", path);
		else
			DA_ERROR(err, DA_EDB, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		DA_ERROR(err, DA_EDB, "%s: not a regular file", path);
		return -1;
	}
	*dev = st.st_dev;
	*ino = st.st_ino;
	return 0;
}

/*
 * Never SQLITE_OPEN_CREATE: a program that found no database would make
 * an empty one and run on it, apart from the data everyone else has
 * (docs/architecture.md). The file is the same before and after the
 * open, so db_check compares against the file we hold.
 */
/* A PostgreSQL database: migrated only when asked (init, the worker). */
static enum da_err
open_server(const char *uri, int migrate_it, struct db **out,
    struct da_error *err)
{
	struct db	*db;
	enum da_err	 rc;

	*out = NULL;
	db = xcalloc(1, sizeof(*db));
	if ((rc = db_pg_open(uri, migrate_it, &db->pg, err)) != DA_OK)
		free(db);
	else
		*out = db;
	return rc;
}

enum da_err
db_open_migrating(const char *path, struct db **out, struct da_error *err)
{
	if (db_pg_is_uri(path))
		return open_server(path, 1, out, err);
	return db_open(path, out, err);
}

enum da_err
db_open_budget(const char *path, int busy_ms, struct db **out,
    struct da_error *err)
{
	struct db	*db;
	dev_t		 dev;
	ino_t		 ino;
	enum da_err	 rc = DA_EDB;

	if (db_pg_is_uri(path))
		return open_server(path, 0, out, err);
	*out = NULL;
	db = xcalloc(1, sizeof(*db));
	if (file_id(path, &db->dev, &db->ino, err) == -1)
		goto fail;
	if (sqlite3_open_v2(path, &db->h, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		rc = fail(db, path, err);
		goto fail;
	}
	if (file_id(path, &dev, &ino, err) == -1)
		goto fail;
	if (dev != db->dev || ino != db->ino) {
		DA_ERROR(err, DA_EDB, "%s was replaced while it was opened",
		    path);
		goto fail;
	}
	db_busy_budget(db, busy_ms);
	sqlite3_extended_result_codes(db->h, 1);
	if ((rc = db_exec(db, "PRAGMA journal_mode = WAL", err)) != DA_OK ||
	    (rc = db_exec(db, "PRAGMA synchronous = FULL", err)) != DA_OK ||
	    (rc = db_exec(db, WAL_BOUNDS, err)) != DA_OK ||
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
db_open(const char *path, struct db **out, struct da_error *err)
{
	return db_open_budget(path, DB_BUSY_LONG_MS, out, err);
}

enum da_err
db_check(struct db *db, struct da_error *err)
{
	const char	*path = db_path(db);
	dev_t		 dev;
	ino_t		 ino;

	if (db->pg != NULL && db_pg_lost(db->pg))
		return DA_ERROR(err, DA_EDB, "the connection to PostgreSQL "
		    "dropped and another process took this one's lock "
		    "meanwhile: stopping");
	if (*path == '\0')
		return DA_OK;
	if (file_id(path, &dev, &ino, err) == -1)
		return DA_EDB;
	if (dev != db->dev || ino != db->ino)
		return DA_ERROR(err, DA_EDB, "%s was replaced by another file "
		    "since it was opened", path);
	return DA_OK;
}

enum da_err
db_create(const char *path, mode_t mode, struct db **out,
    struct da_error *err)
{
	int	 fd;

	if (db_pg_is_uri(path))
		return open_server(path, 1, out, err);
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
	db_pg_close(db->pg);
	for (i = 0; i < db->ncache; i++)
		sqlite3_finalize(db->cache[i].st);
	if (db->h != NULL)
		sqlite3_close(db->h);
	free(db);
}

/*
 * The statement of q, ready to bind: the cached one, prepared on first
 * use; or, when an outer cursor is still walking that one, a private
 * copy (*own set: the caller finalizes it). NULL with err filled.
 */
static sqlite3_stmt *
stmt_get(struct db *db, const struct db_sql *q, int *own,
    struct da_error *err)
{
	sqlite3_stmt	*st = NULL;
	size_t		 i;

	*own = 0;
	for (i = 0; i < db->ncache; i++)
		if (db->cache[i].q == q)
			break;
	if (i < db->ncache && !sqlite3_stmt_busy(db->cache[i].st)) {
		st = db->cache[i].st;
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		goto out;
	}
	if (i < db->ncache) {
		if (sqlite3_prepare_v2(db->h, q->text, -1, &st, NULL) !=
		    SQLITE_OK)
			goto fail;
		*own = 1;
		goto out;
	}
	if (sqlite3_prepare_v3(db->h, q->text, -1, SQLITE_PREPARE_PERSISTENT,
	    &st, NULL) != SQLITE_OK)
		goto fail;
	if (db->ncache == DB_STMT_CACHE) {
		/* More statements than the cache holds: a programming error. */
		log_msg(LOG_ERR, "statement cache full (%d): raise "
		    "DB_STMT_CACHE", DB_STMT_CACHE);
		abort();
	}
	db->cache[db->ncache].q = q;
	db->cache[db->ncache].st = st;
	db->ncache++;
	goto out;
fail:
	fail(db, q->name, err);
	log_msg(LOG_ERR, "cannot prepare %s: %s", q->name,
	    sqlite3_errmsg(db->h));
	st = NULL;
out:
	return st;
}

/* Bind args to st's parameters, which must be exactly as many. */
static enum da_err
bind(struct db *db, const struct db_sql *q, sqlite3_stmt *st,
    const struct db_arg *args, size_t nargs, struct da_error *err)
{
	const struct db_arg	*a;
	size_t			 i;
	int			 rc = SQLITE_OK, len;

	if ((size_t)sqlite3_bind_parameter_count(st) != nargs)
		return DA_ERROR(err, DA_EDB, "%s: %zu arguments for %d "
		    "parameters", q->name, nargs,
		    sqlite3_bind_parameter_count(st));
	for (i = 0; i < nargs && rc == SQLITE_OK; i++) {
		a = &args[i];
		len = a->len == DB_LEN_NUL ? -1 : (int)a->len;
		switch (a->type) {
		case DB_TYPE_INT:
			rc = sqlite3_bind_int64(st, (int)i + 1, a->i);
			break;
		case DB_TYPE_TEXT:
			rc = a->p == NULL ? sqlite3_bind_null(st, (int)i + 1) :
			    sqlite3_bind_text(st, (int)i + 1, a->p, len,
			    SQLITE_TRANSIENT);
			break;
		case DB_TYPE_BLOB:
			rc = sqlite3_bind_blob(st, (int)i + 1, a->p, len,
			    SQLITE_TRANSIENT);
			break;
		default:
			rc = sqlite3_bind_null(st, (int)i + 1);
			break;
		}
	}
	return rc == SQLITE_OK ? DA_OK : fail(db, q->name, err);
}

void
db_query(struct db *db, struct db_rows *r, const struct db_sql *q,
    const struct db_arg *args, size_t nargs, struct da_error *err)
{
	sqlite3_stmt	*st;

	db->busy = 0;
	r->db = db;
	r->q = q;
	r->err = err;
	r->rc = DA_OK;
	r->end = 0;
	r->own = 0;
	if (db->pg != NULL) {
		db_pg_query(db->pg, r, q, args, nargs, err);
		return;
	}
	r->st = st = stmt_get(db, q, &r->own, err);
	if (st == NULL || bind(db, q, st, args, nargs, err) != DA_OK)
		r->rc = DA_EDB;
}

int
db_next(struct db_rows *r)
{
	int	 step;

	if (r->db->pg != NULL)
		return db_pg_next(r);
	if (r->rc != DA_OK)
		return -1;
	if (r->end || r->st == NULL)
		return 0;
	if ((step = sqlite3_step(r->st)) == SQLITE_ROW)
		return 1;
	r->end = 1;
	if (step == SQLITE_DONE)
		return 0;
	r->rc = fail(r->db, r->q->name, r->err);
	return -1;
}

long long
db_int(const struct db_rows *r, int col)
{
	if (r->db->pg != NULL)
		return db_pg_int(r, col);
	return sqlite3_column_int64(r->st, col);
}

const char *
db_text(const struct db_rows *r, int col)
{
	const unsigned char	*s;

	if (r->db->pg != NULL)
		return db_pg_text(r, col);
	s = sqlite3_column_text(r->st, col);
	return s != NULL ? (const char *)s : "";
}

size_t
db_bytes(const struct db_rows *r, int col)
{
	if (r->db->pg != NULL)
		return db_pg_bytes(r, col);
	/* Text first, then its length: the order SQLite asks for. */
	sqlite3_column_text(r->st, col);
	return (size_t)sqlite3_column_bytes(r->st, col);
}

enum da_err
db_done(struct db_rows *r)
{
	if (r->db != NULL && r->db->pg != NULL)
		db_pg_done(r);
	else if (r->st != NULL) {
		if (r->own)
			sqlite3_finalize(r->st);
		else
			sqlite3_reset(r->st);
		r->st = NULL;
	}
	return r->rc;
}

enum da_err
db_run(struct db *db, const struct db_sql *q, const struct db_arg *args,
    size_t nargs, struct da_error *err)
{
	struct db_rows	 r;
	int		 step;

	db_query(db, &r, q, args, nargs, err);
	while ((step = db_next(&r)) == 1)
		continue;
	if (db->pg != NULL)
		db->changes = step == 0 ? db_pg_changes(db->pg) : 0;
	else
		db->changes = step == 0 ? sqlite3_changes64(db->h) : 0;
	return db_done(&r);
}

long long
db_changes(struct db *db)
{
	return db->changes;
}


/* The lock's key in PostgreSQL's advisory lock space: FNV-1a of its name. */
static long long
lock_key(const char *name)
{
	unsigned long long	 h = 14695981039346656037ULL;
	const char		*p;

	for (p = "dingauth:"; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	for (p = name; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return (long long)(h >> 1);
}

/*
 * A lock file root made (an operator's "sudo dingauth sync") goes to the
 * database's owner, or the programs' user could never take it again.
 */
static enum da_err
lock_file_owner(struct db *db, int fd, const char *path,
    struct da_error *err)
{
	struct stat	 lk, st;

	if (geteuid() != 0 || fstat(fd, &lk) == -1 ||
	    stat(db_path(db), &st) == -1 ||
	    (lk.st_uid == st.st_uid && lk.st_gid == st.st_gid))
		return DA_OK;
	if (fchown(fd, st.st_uid, st.st_gid) == -1)
		return DA_ERROR(err, DA_EINPUT, "%s: %s", path,
		    strerror(errno));
	return DA_OK;
}

enum da_err
db_lock(struct db *db, const char *name, int *fd, struct da_error *err)
{
	char		*path;
	enum da_err	 rc = DA_OK;

	*fd = -1;
	if (db->pg != NULL) {
		rc = db_pg_lock(db->pg, lock_key(name), err);
		if (rc == DA_EBUSY)
			DA_ERROR(err, DA_EBUSY, "another %s holds its lock on "
			    "the database", name);
		return rc;
	}
	path = xasprintf("%s.%s-lock", db_path(db), name);
	if ((*fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	    0600)) == -1)
		rc = DA_ERROR(err, DA_EINPUT, "%s: %s", path, strerror(errno));
	else if (lock_file_owner(db, *fd, path, err) != DA_OK) {
		rc = DA_EINPUT;
		close(*fd);
		*fd = -1;
	} else if (flock(*fd, LOCK_EX | LOCK_NB) == -1) {
		rc = errno == EWOULDBLOCK ?
		    DA_ERROR(err, DA_EBUSY, "another %s holds %s", name, path) :
		    DA_ERROR(err, DA_EINPUT, "%s: %s", path, strerror(errno));
		close(*fd);
		*fd = -1;
	}
	free(path);
	return rc;
}

void
db_unlock(struct db *db, const char *name, int fd)
{
	if (db != NULL && db->pg != NULL)
		db_pg_unlock(db->pg, lock_key(name));
	if (fd != -1)
		close(fd);
}

enum da_err
db_lock_holder(struct db *db, const char *name, int *held, char *holder,
    size_t size, struct da_error *err)
{
	char		*path;
	enum da_err	 rc = DA_OK;
	int		 fd;

	*held = 0;
	holder[0] = '\0';
	if (db->pg != NULL)
		return db_pg_lock_holder(db->pg, lock_key(name), held, holder,
		    size, err);
	/*
	 * A shared lock we get at once: nobody holds the exclusive one
	 * (let go again straight away). No file: never taken.
	 */
	path = xasprintf("%s.%s-lock", db_path(db), name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (errno != ENOENT)
			rc = DA_ERROR(err, DA_EINPUT, "%s: %s", path,
			    strerror(errno));
	} else {
		if (flock(fd, LOCK_SH | LOCK_NB) == -1) {
			if (errno == EWOULDBLOCK) {
				*held = 1;
				snprintf(holder, size, "a process on this "
				    "host (%s)", path);
			} else
				rc = DA_ERROR(err, DA_EINPUT, "%s: %s", path,
				    strerror(errno));
		}
		close(fd);
	}
	free(path);
	return rc;
}

const char *
db_where(struct db *db, char *buf, size_t size)
{
	if (db->pg != NULL)
		return db_pg_where(db->pg, buf, size);
	snprintf(buf, size, "%s", db_path(db));
	return buf;
}

long long
db_ping(struct db *db)
{
	struct timespec	 a, b;

	if (db->pg != NULL)
		return db_pg_ping(db->pg);
	clock_gettime(CLOCK_MONOTONIC, &a);
	if (db_exec(db, "SELECT 1", NULL) != DA_OK)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &b);
	return (long long)(b.tv_sec - a.tv_sec) * 1000 +
	    (b.tv_nsec - a.tv_nsec) / 1000000;
}
