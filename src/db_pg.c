#include <sys/utsname.h>

#include <ctype.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "crypto.h"
#include "db.h"
#include "db_pg.h"
#include "embedded.h"
#include "log.h"
#include "mem.h"
#include "mono.h"

#define PG_STMT_CACHE	160
#define PG_PARAMS_MAX	32
#define PG_LOCKS_MAX	4

/* Type oids of the parameters we declare (pg_type.h). */
#define OID_BYTEA	17
#define OID_INT8	20
#define OID_TEXT	25

/*
 * The transaction-level advisory lock of db_begin_immediate and the one
 * migrations take: 'ding' and 'dmig' as numbers, a space of our own.
 */
#define LOCK_WRITER	0x64696e67LL
#define LOCK_MIGRATE	0x646d6967LL

struct pg_stmt {
	const struct db_sql	*q;
	char			*sql;		/* in PostgreSQL's dialect */
	int			 nparams;
	unsigned		 gen;		/* prepared on that connection */
	char			 name[16];
};

struct db_pg {
	PGconn		*conn;
	unsigned	 gen;		/* counts connections */
	long long	 tried_ms;	/* the last attempt to connect */
	long long	 changes;
	struct pg_stmt	 cache[PG_STMT_CACHE];
	size_t		 ncache;
	/*
	 * The session advisory locks we hold (db_pg_lock): a new connection
	 * takes them again; one another session took in between is lost.
	 */
	long long	 held[PG_LOCKS_MAX];
	size_t		 nheld;
	int		 lost;
};

int
db_pg_is_uri(const char *s)
{
	return s != NULL && (strncmp(s, "postgresql://", 13) == 0 ||
	    strncmp(s, "postgres://", 11) == 0);
}

/* libpq's message without its trailing newline. */
static const char *
conn_message(const PGconn *conn, char *buf, size_t size)
{
	size_t	 n;

	snprintf(buf, size, "%s", conn != NULL ? PQerrorMessage(conn) :
	    "no connection");
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	if (n == 0)
		snprintf(buf, size, "no connection to PostgreSQL");
	return buf;
}

/*
 * libpq's complaint about a URI it cannot parse quotes the offending
 * token ("invalid percent-encoded token: \"se%zzcret\""), which may be
 * the password: every copy of the URI's password (user:password@, or
 * password=) in msg becomes "***" before msg is logged or printed. Also
 * how the URI itself is shown (db_redact).
 */
/* The URI's password, as written: after user: up to '@', or password=. */
static const char *
uri_password(const char *uri, int which, size_t *len)
{
	const char	*p = NULL, *host, *at;

	if (which == 0 && (host = strstr(uri, "://")) != NULL) {
		/* As libpq reads it: credentials end at '@' before '/'. */
		host += 3;
		at = host + strcspn(host, "@/");
		if (*at == '@' && (p = memchr(host, ':',
		    (size_t)(at - host))) != NULL) {
			p++;
			*len = (size_t)(at - p);
		}
	} else if (which == 1 && (p = strstr(uri, "password=")) != NULL &&
	    (p == uri || p[-1] == '?' || p[-1] == '&')) {
		p += strlen("password=");
		*len = strcspn(p, "&");
	} else
		p = NULL;
	return p;
}

void
db_pg_scrub(char *msg, size_t size, const char *uri)
{
	const char	*p, *from, *hit;
	char		 secret[256], out[1024];
	size_t		 n, len;
	int		 which;

	if (size > sizeof(out))
		size = sizeof(out);
	for (which = 0; which < 2; which++) {
		if ((p = uri_password(uri, which, &n)) == NULL || n == 0 ||
		    n >= sizeof(secret))
			continue;
		memcpy(secret, p, n);
		secret[n] = '\0';
		len = 0;
		for (from = msg; (hit = strstr(from, secret)) != NULL &&
		    len < size; from = hit + n)
			len += (size_t)snprintf(out + len, size - len,
			    "%.*s***", (int)(hit - from), from);
		if (len < size)
			snprintf(out + len, size - len, "%s", from);
		snprintf(msg, size, "%s", out);
		crypto_cleanse(secret, sizeof(secret));
	}
}

static enum da_err
fail_conn(struct db_pg *pg, const char *name, struct da_error *err)
{
	char	 msg[256];

	return DA_ERROR(err, DA_EDB, "%s: %s", name, conn_message(pg->conn,
	    msg, sizeof(msg)));
}

/* "<name>: <the server's primary message>". */
static enum da_err
fail_result(struct db_pg *pg, const char *name, const PGresult *res,
    struct da_error *err)
{
	const char	*m;

	m = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) :
	    NULL;
	if (m == NULL)
		return fail_conn(pg, name, err);
	return DA_ERROR(err, DA_EDB, "%s: %s", name, m);
}

/* The server's notices and warnings go to our log, not to stderr. */
static void
notice(void *arg, const char *message)
{
	char	 m[256];
	size_t	 n;

	snprintf(m, sizeof(m), "%s", message);
	n = strlen(m);
	while (n > 0 && m[n - 1] == '\n')
		m[--n] = '\0';
	log_msg(LOG_WARN, "PostgreSQL: %s", m);
}

/*
 * Connect. Our defaults come before the URI, so what the URI says wins
 * (libpq keeps the last value of a repeated keyword). Keepalives both
 * ways: the server drops the session of a node that died without a
 * word within about a minute, and with it the node's advisory locks
 * (the worker's, the sync's).
 */
static PGconn *
connect_uri(const char *uri)
{
	struct utsname	 u;
	char		 app[64];
	const char	*keys[] = { "connect_timeout", "application_name",
	    "options", "keepalives_idle", "dbname", NULL };
	const char	*values[] = { DB_PG_CONNECT_S, app,
	    "-c statement_timeout=" DB_PG_STATEMENT_MS
	    " -c idle_in_transaction_session_timeout=60000"
	    " -c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10"
	    " -c tcp_keepalives_count=3"
	    " -c client_min_messages=warning", "30", uri,
	    NULL };

	/* "dingauth HOST PID": doctor names a lock's holder by it. */
	if (uname(&u) == -1)
		u.nodename[0] = '\0';
	snprintf(app, sizeof(app), "dingauth %.39s %ld", u.nodename,
	    (long)getpid());
	return PQconnectdbParams(keys, values, 1);
}

/* One integer from constant SQL; -1 on failure. */
static long long
one_int(struct db_pg *pg, const char *sql)
{
	PGresult	*res;
	long long	 v = -1;

	res = PQexec(pg->conn, sql);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	    !PQgetisnull(res, 0, 0))
		v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return v;
}

/*
 * On a new connection, the session locks of the old one are gone (the
 * server ended that session): take them again. One that another session
 * holds by now is lost for good (db_pg_lost): its holder must stop.
 */
static void
retake_locks(struct db_pg *pg)
{
	char	 sql[64];
	size_t	 i;

	for (i = 0; i < pg->nheld; i++) {
		snprintf(sql, sizeof(sql), "SELECT pg_try_advisory_lock(%lld)"
		    "::int", pg->held[i]);
		if (one_int(pg, sql) != 1) {
			pg->lost = 1;
			log_msg(LOG_ERR, "lost advisory lock %lld: another "
			    "session took it while the connection was down",
			    pg->held[i]);
		}
	}
}

/* After a lost lock, nothing more: its holder must stop (db_check). */
static enum da_err
lost_lock(struct da_error *err)
{
	return DA_ERROR(err, DA_EDB, "the connection to PostgreSQL dropped "
	    "and another process took this one's lock meanwhile");
}

/*
 * Before a statement: notice a connection the server has closed while we
 * were idle (a restart or failover sends a goodbye we have not read:
 * its message, then the end of the stream, each read on its own), and
 * connect again, at most every DB_PG_RETRY_MS so that requests fail at
 * once while the server is away.
 */
static enum da_err
ready(struct db_pg *pg, const char *name, struct da_error *err)
{
	struct pollfd	 p;
	long long	 t;
	int		 i;

	if (pg->lost)
		return lost_lock(err);
	for (i = 0; i < 4 && PQstatus(pg->conn) == CONNECTION_OK &&
	    PQtransactionStatus(pg->conn) == PQTRANS_IDLE; i++) {
		p.fd = PQsocket(pg->conn);
		p.events = POLLIN;
		p.revents = 0;
		if (p.fd < 0 || poll(&p, 1, 0) != 1)
			break;
		PQconsumeInput(pg->conn);
	}
	if (PQstatus(pg->conn) == CONNECTION_OK)
		return DA_OK;
	t = mono_ms();
	if (pg->tried_ms != 0 && t - pg->tried_ms < DB_PG_RETRY_MS)
		return fail_conn(pg, name, err);
	pg->tried_ms = t;
	PQreset(pg->conn);
	if (PQstatus(pg->conn) != CONNECTION_OK)
		return fail_conn(pg, name, err);
	pg->gen++;
	pg->tried_ms = 0;
	log_msg(LOG_INFO, "connected to PostgreSQL again");
	retake_locks(pg);
	return pg->lost ? lost_lock(err) : DA_OK;
}

/*
 * SQLite's dialect to PostgreSQL's, outside quotes: ?N becomes $N (a
 * bare ? the next number), "temp." becomes "pg_temp.", "main." goes and
 * "IS NOT x" (x not NULL) becomes "IS DISTINCT FROM x".
 * *nparams gets the highest parameter number.
 */
static char *
rewrite(const char *s, int *nparams)
{
	size_t		 size = strlen(s) * 2 + 1, o = 0;
	char		*out = xmalloc(size);
	char		 quote = 0, *end;
	int		 next = 0, n, word;
	const char	*p;

	*nparams = 0;
	for (p = s; *p != '\0'; p++) {
		word = p == s || !(isalnum((unsigned char)p[-1]) ||
		    p[-1] == '_' || p[-1] == '.');
		if (quote != 0) {
			if (*p == quote)
				quote = 0;
		} else if (*p == '\'' || *p == '"')
			quote = *p;
		else if (*p == '?') {
			if (isdigit((unsigned char)p[1])) {
				n = (int)strtol(p + 1, &end, 10);
				p = end - 1;
			} else
				n = ++next;
			if (n > *nparams)
				*nparams = n;
			o += (size_t)snprintf(out + o, size - o, "$%d", n);
			continue;
		} else if (word && strncmp(p, "temp.", 5) == 0) {
			o += (size_t)snprintf(out + o, size - o, "pg_temp.");
			p += 4;
			continue;
		} else if (word && strncmp(p, "main.", 5) == 0) {
			p += 4;
			continue;
		} else if (word && strncmp(p, "IS NOT ", 7) == 0 &&
		    !(strncmp(p + 7, "NULL", 4) == 0 &&
		    !isalnum((unsigned char)p[11]) && p[11] != '_')) {
			/* SQLite's "a IS NOT b" of two values. */
			o += (size_t)snprintf(out + o, size - o,
			    "IS DISTINCT FROM ");
			p += 6;
			continue;
		}
		out[o++] = *p;
	}
	out[o] = '\0';
	return out;
}

/* The cache entry of q, made on first use. */
static struct pg_stmt *
stmt_get(struct db_pg *pg, const struct db_sql *q)
{
	struct pg_stmt	*s;
	size_t		 i;

	for (i = 0; i < pg->ncache; i++)
		if (pg->cache[i].q == q)
			return &pg->cache[i];
	if (pg->ncache == PG_STMT_CACHE) {
		/* More statements than the cache holds: a programming error. */
		log_msg(LOG_ERR, "statement cache full (%d): raise "
		    "PG_STMT_CACHE", PG_STMT_CACHE);
		abort();
	}
	s = &pg->cache[pg->ncache];
	s->q = q;
	s->sql = rewrite(q->pg != NULL ? q->pg : q->text, &s->nparams);
	s->gen = 0;
	snprintf(s->name, sizeof(s->name), "da%zu", pg->ncache);
	pg->ncache++;
	return s;
}

/*
 * Prepare s on this connection, the parameters typed as the first call
 * binds them (a NULL left to the server).
 */
static enum da_err
prepare(struct db_pg *pg, struct pg_stmt *s, const struct db_arg *args,
    struct da_error *err)
{
	Oid		 types[PG_PARAMS_MAX];
	PGresult	*res;
	enum da_err	 rc = DA_OK;
	int		 i;

	for (i = 0; i < s->nparams; i++) {
		switch (args[i].type) {
		case DB_TYPE_INT:
			types[i] = OID_INT8;
			break;
		case DB_TYPE_TEXT:
			types[i] = OID_TEXT;
			break;
		case DB_TYPE_BLOB:
			types[i] = OID_BYTEA;
			break;
		default:
			types[i] = 0;
			break;
		}
	}
	res = PQprepare(pg->conn, s->name, s->sql, s->nparams, types);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		rc = fail_result(pg, s->q->name, res, err);
		log_msg(LOG_ERR, "cannot prepare %s: %s", s->q->name,
		    err != NULL ? err->msg : "");
	} else
		s->gen = pg->gen;
	PQclear(res);
	return rc;
}

void
db_pg_query(struct db_pg *pg, struct db_rows *r, const struct db_sql *q,
    const struct db_arg *args, size_t nargs, struct da_error *err)
{
	char		 nums[PG_PARAMS_MAX][24];
	const char	*values[PG_PARAMS_MAX];
	int		 lengths[PG_PARAMS_MAX], formats[PG_PARAMS_MAX];
	struct pg_stmt	*s;
	PGresult	*res;
	ExecStatusType	 st;
	size_t		 i;

	r->st = NULL;
	r->row = -1;
	s = stmt_get(pg, q);
	if (nargs != (size_t)s->nparams || nargs > PG_PARAMS_MAX) {
		r->rc = DA_ERROR(err, DA_EDB, "%s: %zu arguments for %d "
		    "parameters", q->name, nargs, s->nparams);
		return;
	}
	if ((r->rc = ready(pg, q->name, err)) != DA_OK)
		return;
	if (s->gen != pg->gen &&
	    (r->rc = prepare(pg, s, args, err)) != DA_OK)
		return;
	for (i = 0; i < nargs; i++) {
		lengths[i] = 0;
		formats[i] = 0;
		switch (args[i].type) {
		case DB_TYPE_INT:
			snprintf(nums[i], sizeof(nums[i]), "%lld", args[i].i);
			values[i] = nums[i];
			break;
		case DB_TYPE_TEXT:
			/* A text of n bytes: libpq sends up to the NUL. */
			values[i] = args[i].p == NULL ? NULL :
			    args[i].len == DB_LEN_NUL ? args[i].p :
			    xstrndup(args[i].p, args[i].len);
			break;
		case DB_TYPE_BLOB:
			values[i] = args[i].p != NULL ? args[i].p : "";
			lengths[i] = (int)args[i].len;
			formats[i] = 1;
			break;
		default:
			values[i] = NULL;
			break;
		}
	}
	res = PQexecPrepared(pg->conn, s->name, (int)nargs, values, lengths,
	    formats, 0);
	for (i = 0; i < nargs; i++)
		if (args[i].type == DB_TYPE_TEXT && args[i].p != NULL &&
		    args[i].len != DB_LEN_NUL)
			free((char *)values[i]);
	st = PQresultStatus(res);
	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
		r->st = res;
		pg->changes = strtoll(PQcmdTuples(res), NULL, 10);
		return;
	}
	r->rc = fail_result(pg, q->name, res, err);
	PQclear(res);
}

int
db_pg_next(struct db_rows *r)
{
	if (r->rc != DA_OK)
		return -1;
	if (r->end || r->st == NULL)
		return 0;
	if (++r->row < PQntuples(r->st))
		return 1;
	r->end = 1;
	return 0;
}

/* An integer, a boolean ('t', 'f') as 1 or 0, NULL as 0. */
long long
db_pg_int(const struct db_rows *r, int col)
{
	const char	*v;

	if (PQgetisnull(r->st, r->row, col))
		return 0;
	v = PQgetvalue(r->st, r->row, col);
	if (*v == 't')
		return 1;
	return strtoll(v, NULL, 10);
}

const char *
db_pg_text(const struct db_rows *r, int col)
{
	return PQgetvalue(r->st, r->row, col);
}

size_t
db_pg_bytes(const struct db_rows *r, int col)
{
	return (size_t)PQgetlength(r->st, r->row, col);
}

void
db_pg_done(struct db_rows *r)
{
	PQclear(r->st);
	r->st = NULL;
}

long long
db_pg_changes(struct db_pg *pg)
{
	return pg->changes;
}

enum da_err
db_pg_exec(struct db_pg *pg, const char *sql, struct da_error *err)
{
	PGresult	*res;
	enum da_err	 rc = DA_OK;
	ExecStatusType	 st;

	if ((rc = ready(pg, "database", err)) != DA_OK)
		return rc;
	res = PQexec(pg->conn, sql);
	st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		rc = fail_result(pg, "database", res, err);
	PQclear(res);
	return rc;
}

enum da_err
db_pg_begin(struct db_pg *pg, int immediate, struct da_error *err)
{
	char	 sql[96];

	if (!immediate)
		return db_pg_exec(pg, "BEGIN", err);
	snprintf(sql, sizeof(sql), "BEGIN; SELECT pg_advisory_xact_lock(%lld)",
	    LOCK_WRITER);
	return db_pg_exec(pg, sql, err);
}

enum da_err
db_pg_commit(struct db_pg *pg, struct da_error *err)
{
	return db_pg_exec(pg, "COMMIT", err);
}

void
db_pg_rollback(struct db_pg *pg)
{
	PGresult	*res;

	if (pg == NULL || !db_pg_in_transaction(pg))
		return;
	res = PQexec(pg->conn, "ROLLBACK");
	PQclear(res);
}

int
db_pg_in_transaction(struct db_pg *pg)
{
	PGTransactionStatusType	 t = PQtransactionStatus(pg->conn);

	return t == PQTRANS_INTRANS || t == PQTRANS_INERROR ||
	    t == PQTRANS_ACTIVE;
}

int
db_pg_schema_version(struct db_pg *pg)
{
	long long	 v;

	if (ready(pg, "database", NULL) != DA_OK)
		return -1;
	v = one_int(pg, "SELECT to_regclass('dingauth_schema') IS NOT NULL"
	    "::int");
	if (v == 1)
		v = one_int(pg, "SELECT coalesce(max(version), 0)"
		    " FROM dingauth_schema");
	return (int)v;
}

/* "001-schema.sql" -> 1; the names are ours (sql/pg/NNN-*.sql). */
int
db_pg_schema_latest(void)
{
	const struct embedded_file	*m;
	int				 latest = 0, n;

	for (m = embedded_pg_migrations; m->name != NULL; m++)
		if ((n = (int)strtol(m->name, NULL, 10)) > latest)
			latest = n;
	return latest;
}

/*
 * Bring the schema to the latest version in one transaction, under an
 * advisory lock: several nodes starting at once apply it once.
 */
static enum da_err
migrate(struct db_pg *pg, struct da_error *err)
{
	const struct embedded_file	*m;
	char				 sql[128];
	enum da_err			 rc;
	int				 have, n;

	snprintf(sql, sizeof(sql), "BEGIN; SELECT pg_advisory_xact_lock(%lld);"
	    " CREATE TABLE IF NOT EXISTS dingauth_schema (version integer"
	    " NOT NULL)", LOCK_MIGRATE);
	if ((rc = db_pg_exec(pg, sql, err)) != DA_OK)
		goto out;
	have = (int)one_int(pg, "SELECT coalesce(max(version), 0)"
	    " FROM dingauth_schema");
	for (m = embedded_pg_migrations; m->name != NULL; m++) {
		if ((n = (int)strtol(m->name, NULL, 10)) <= have)
			continue;
		if ((rc = db_pg_exec(pg, m->text, err)) != DA_OK) {
			DA_ERROR(err, DA_EDB, "migration pg/%s: %s", m->name,
			    err != NULL ? err->msg : "failed");
			goto out;
		}
		snprintf(sql, sizeof(sql), "DELETE FROM dingauth_schema;"
		    " INSERT INTO dingauth_schema (version) VALUES (%d)", n);
		if ((rc = db_pg_exec(pg, sql, err)) != DA_OK)
			goto out;
		log_msg(LOG_INFO, "database migrated to version %d", n);
	}
	rc = db_pg_commit(pg, err);
out:
	db_pg_rollback(pg);
	return rc;
}

enum da_err
db_pg_open(const char *uri, int migrate_it, struct db_pg **out,
    struct da_error *err)
{
	struct db_pg	*pg;
	enum da_err	 rc = DA_OK;
	int		 have;

	*out = NULL;
	pg = xcalloc(1, sizeof(*pg));
	pg->conn = connect_uri(uri);
	if (pg->conn == NULL || PQstatus(pg->conn) != CONNECTION_OK) {
		rc = fail_conn(pg, "PostgreSQL", err);
		if (err != NULL)
			db_pg_scrub(err->msg, sizeof(err->msg), uri);
		goto out;
	}
	PQsetNoticeProcessor(pg->conn, notice, NULL);
	pg->gen = 1;
	if (migrate_it && (rc = migrate(pg, err)) != DA_OK)
		goto out;
	if ((have = db_pg_schema_version(pg)) > db_pg_schema_latest())
		rc = DA_ERROR(err, DA_EDB, "schema version %d is newer than "
		    "this dingauth's %d: run the newer release", have,
		    db_pg_schema_latest());
	else if (have < db_pg_schema_latest())
		rc = DA_ERROR(err, DA_EDB, "schema version %d, this dingauth "
		    "needs %d: run dingauth init (or start dingauth worker) to "
		    "migrate it", have, db_pg_schema_latest());
out:
	if (rc != DA_OK)
		db_pg_close(pg);
	else
		*out = pg;
	return rc;
}

void
db_pg_close(struct db_pg *pg)
{
	size_t	 i;

	if (pg == NULL)
		return;
	for (i = 0; i < pg->ncache; i++)
		free(pg->cache[i].sql);
	PQfinish(pg->conn);
	free(pg);
}

enum da_err
db_pg_lock(struct db_pg *pg, long long key, struct da_error *err)
{
	char		 sql[64];
	long long	 got;
	enum da_err	 rc;

	if ((rc = ready(pg, "advisory lock", err)) != DA_OK)
		return rc;
	snprintf(sql, sizeof(sql), "SELECT pg_try_advisory_lock(%lld)::int",
	    key);
	if ((got = one_int(pg, sql)) == -1)
		return fail_conn(pg, "advisory lock", err);
	if (got != 1)
		return DA_ERROR(err, DA_EBUSY, "another process holds the "
		    "lock");
	if (pg->nheld == PG_LOCKS_MAX) {
		/* More locks than we keep: a programming error. */
		db_pg_unlock(pg, key);
		return DA_ERROR(err, DA_EDB, "advisory lock: more than %d "
		    "held", PG_LOCKS_MAX);
	}
	pg->held[pg->nheld++] = key;
	return DA_OK;
}

void
db_pg_unlock(struct db_pg *pg, long long key)
{
	char	 sql[64];
	size_t	 i;

	for (i = 0; i < pg->nheld; i++)
		if (pg->held[i] == key) {
			pg->held[i] = pg->held[--pg->nheld];
			break;
		}
	snprintf(sql, sizeof(sql), "SELECT pg_advisory_unlock(%lld)", key);
	one_int(pg, sql);
}

int
db_pg_lost(struct db_pg *pg)
{
	return pg->lost;
}

const char *
db_pg_server_version(struct db_pg *pg, char *buf, size_t size)
{
	const char	*v = NULL;

	if (pg != NULL && PQstatus(pg->conn) == CONNECTION_OK)
		v = PQparameterStatus(pg->conn, "server_version");
	snprintf(buf, size, "%s", v != NULL ? v : "");
	return buf;
}

enum da_err
db_pg_lock_holder(struct db_pg *pg, long long key, int *held, char *holder,
    size_t size, struct da_error *err)
{
	const char	*sql = "SELECT coalesce(a.application_name, ''),"
	    " coalesce(host(a.client_addr), 'local'), l.pid"
	    " FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
	    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
	    " AND l.classid::bigint = $1::bigint"
	    " AND l.objid::bigint = $2::bigint AND l.database ="
	    " (SELECT oid FROM pg_database WHERE datname = current_database())";
	char		 hi[24], lo[24];
	const char	*values[2] = { hi, lo };
	PGresult	*res;
	enum da_err	 rc = DA_OK;

	*held = 0;
	holder[0] = '\0';
	if ((rc = ready(pg, "advisory lock", err)) != DA_OK)
		return rc;
	/* A bigint key is classid (its high half) and objid (its low). */
	snprintf(hi, sizeof(hi), "%lld", (long long)((unsigned long long)key
	    >> 32));
	snprintf(lo, sizeof(lo), "%lld", (long long)((unsigned long long)key &
	    0xffffffffULL));
	res = PQexecParams(pg->conn, sql, 2, NULL, values, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		rc = fail_result(pg, "advisory lock", res, err);
	else if (PQntuples(res) > 0) {
		*held = 1;
		snprintf(holder, size, "%s from %s (server pid %s)",
		    PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
		    PQgetvalue(res, 0, 2));
	}
	PQclear(res);
	return rc;
}

/* host:port/dbname of the connection: the URI without its secrets. */
const char *
db_pg_where(struct db_pg *pg, char *buf, size_t size)
{
	const char	*host = PQhost(pg->conn), *port = PQport(pg->conn);
	const char	*name = PQdb(pg->conn), *user = PQuser(pg->conn);

	snprintf(buf, size, "%s@%s:%s/%s%s", user != NULL ? user : "",
	    host != NULL ? host : "", port != NULL ? port : "",
	    name != NULL ? name : "", PQsslInUse(pg->conn) ? " (TLS)" : "");
	return buf;
}

/* Milliseconds of one round trip (SELECT 1); -1 when it fails. */
long long
db_pg_ping(struct db_pg *pg)
{
	long long	 t0;

	if (ready(pg, "database", NULL) != DA_OK)
		return -1;
	t0 = mono_ms();
	if (one_int(pg, "SELECT 1") != 1)
		return -1;
	return mono_ms() - t0;
}
