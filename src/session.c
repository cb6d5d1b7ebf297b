#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "crypto.h"
#include "db.h"
#include "log.h"
#include "mem.h"
#include "session.h"

enum stmt {
	STMT_INSERT,
	STMT_LOOKUP,
	STMT_TOUCH,
	STMT_DELETE,
	STMT_DELETE_USER,
	STMT_DELETE_ALL,
	STMT_LIST,
	STMT_LIST_USER,
	STMT_STATE_EVICT,
	STMT_STATE_INSERT,
	STMT_STATE_TAKE,
	STMT_PRUNE_SESSIONS,
	STMT_PRUNE_STATES,
	STMT_REF_FIND,
	STMT_REF_DELETE,
	STMT_COUNT_LIVE,
	STMT_ENDS_NOTE,
	STMT_ENDS_TAKE,
	STMT_PRUNE_ENDS,
	STMT__MAX
};

/* Live sessions: before the absolute end and used within the idle time. */
#define LIST_COLUMNS \
    "SELECT lower(hex(substr(s.id_hash, 1, 6))), s.userid," \
    " COALESCE(u.name, ''), s.created_at, s.last_seen, s.expires_at," \
    " s.remote_addr, s.user_agent FROM sessions s" \
    " LEFT JOIN users u ON u.userid = s.userid" \
    " WHERE s.expires_at > ?1 AND s.last_seen > ?2"
#define LIST_COLUMNS_PG \
    "SELECT lower(encode(substr(s.id_hash, 1, 6), 'hex')), s.userid," \
    " COALESCE(u.name, ''), s.created_at, s.last_seen, s.expires_at," \
    " s.remote_addr, s.user_agent FROM sessions s" \
    " LEFT JOIN users u ON u.userid = s.userid" \
    " WHERE s.expires_at > ?1 AND s.last_seen > ?2"

static const struct db_sql stmts[STMT__MAX] = {
	[STMT_INSERT] = { "session open",
	    "INSERT INTO sessions (id_hash, userid, created_at, last_seen,"
	    " expires_at, remote_addr, user_agent)"
	    " VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6)" },
	[STMT_LOOKUP] = { "session lookup",
	    "SELECT s.userid, s.last_seen, s.expires_at, u.unionid, u.name,"
	    " u.active, u.disabled, d.dept_id, d.dept_id IS NOT NULL"
	    " FROM sessions s JOIN users u ON u.userid = s.userid"
	    " LEFT JOIN user_depts d ON d.userid = s.userid"
	    " WHERE s.id_hash = ?1 ORDER BY d.dept_id" },
	[STMT_TOUCH] = { "session touch",
	    "UPDATE sessions SET last_seen = ?2 WHERE id_hash = ?1" },
	[STMT_DELETE] = { "session delete",
	    "DELETE FROM sessions WHERE id_hash = ?1" },
	[STMT_DELETE_USER] = { "session end",
	    "DELETE FROM sessions WHERE userid = ?1" },
	[STMT_DELETE_ALL] = { "session end",
	    "DELETE FROM sessions" },
	/* A reference as sessions list shows it (a full scan: rare). */
	[STMT_REF_FIND] = { "session by reference",
	    "SELECT count(*), coalesce(min(userid), '') FROM sessions"
	    " WHERE lower(hex(substr(id_hash, 1, 6))) = ?1",
	    .pg = "SELECT count(*), coalesce(min(userid), '') FROM sessions"
	    " WHERE encode(substr(id_hash, 1, 6), 'hex') = lower(?1)" },
	[STMT_COUNT_LIVE] = { "sessions",
	    "SELECT count(*) FROM sessions WHERE expires_at > ?1"
	    " AND last_seen > ?2" },
	[STMT_REF_DELETE] = { "session end",
	    "DELETE FROM sessions WHERE lower(hex(substr(id_hash, 1, 6))) = ?1",
	    .pg = "DELETE FROM sessions"
	    " WHERE encode(substr(id_hash, 1, 6), 'hex') = lower(?1)" },
	[STMT_LIST] = { "sessions",
	    LIST_COLUMNS " ORDER BY s.created_at, s.userid",
	    .pg = LIST_COLUMNS_PG " ORDER BY s.created_at, s.userid" },
	[STMT_LIST_USER] = { "sessions",
	    LIST_COLUMNS " AND s.userid = ?3 ORDER BY s.created_at",
	    .pg = LIST_COLUMNS_PG " AND s.userid = ?3 ORDER BY s.created_at" },
	/*
	 * Before a new state: the expired ones go, and the oldest beyond
	 * STATE_MAX - 1 live ones, so the table never holds more than
	 * STATE_MAX rows however fast strangers ask for the login page.
	 */
	[STMT_STATE_EVICT] = { "state evict",
	    "DELETE FROM login_states WHERE expires_at <= ?1"
	    " OR rowid IN (SELECT rowid FROM login_states"
	    " ORDER BY expires_at DESC LIMIT -1 OFFSET ?2)",
	    .pg = "DELETE FROM login_states WHERE expires_at <= ?1"
	    " OR state_hash IN (SELECT state_hash FROM login_states"
	    " ORDER BY expires_at DESC OFFSET ?2)" },
	[STMT_STATE_INSERT] = { "state create",
	    "INSERT INTO login_states (state_hash, rd, created_at, expires_at)"
	    " VALUES (?1, ?2, ?3, ?4)" },
	[STMT_STATE_TAKE] = { "state take",
	    "DELETE FROM login_states WHERE state_hash = ?1"
	    " RETURNING rd, expires_at" },
	[STMT_PRUNE_SESSIONS] = { "prune sessions",
	    "DELETE FROM sessions WHERE expires_at <= ?1 OR last_seen <= ?2" },
	[STMT_PRUNE_STATES] = { "prune states",
	    "DELETE FROM login_states WHERE expires_at <= ?1" },
	/* Before a user's sessions go: why, for the login page to say. */
	[STMT_ENDS_NOTE] = { "session end note",
	    "INSERT INTO session_ends (id_hash, why, expires_at)"
	    " SELECT id_hash, ?2, expires_at FROM sessions"
	    " WHERE userid = ?1 AND expires_at > ?3"
	    " ON CONFLICT (id_hash) DO NOTHING" },
	[STMT_ENDS_TAKE] = { "session end take",
	    "DELETE FROM session_ends WHERE id_hash = ?1"
	    " RETURNING why, expires_at" },
	[STMT_PRUNE_ENDS] = { "prune session ends",
	    "DELETE FROM session_ends WHERE expires_at <= ?1" },
};

static const char *const end_names[SESSION_END__MAX] = {
	[SESSION_END_LEFT] = "left",
	[SESSION_END_DISABLED] = "disabled",
};

/* Cookie values are hex (sessions) or base64url (states), fixed length. */
static int
well_formed(const char *s, size_t len, int hex)
{
	size_t	 i;

	if (s == NULL || strlen(s) != len)
		return 0;
	for (i = 0; i < len; i++) {
		char	 c = s[i];

		if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))
			continue;
		if (!hex && ((c >= 'A' && c <= 'Z') || (c >= 'g' &&
		    c <= 'z') || c == '-' || c == '_'))
			continue;
		return 0;
	}
	return 1;
}

enum da_err
session_open(struct db *db, const char *userid, const char *remote_addr,
    const char *user_agent, char id[SESSION_ID_LEN + 1], struct da_error *err)
{
	unsigned char	 raw[32], hash[CRYPTO_SHA256_LEN];
	long long	 now = db_now();
	enum da_err	 rc;
	char		 ua[256];

	crypto_random(raw, sizeof(raw));
	crypto_hex(raw, sizeof(raw), id);
	crypto_cleanse(raw, sizeof(raw));
	crypto_sha256(id, SESSION_ID_LEN, hash);
	snprintf(ua, sizeof(ua), "%s", user_agent != NULL ? user_agent : "");
	rc = db_run(db, &stmts[STMT_INSERT], DB_ARGS(DB_BLOB(hash,
	    sizeof(hash)), DB_TEXT(userid), DB_INT(now),
	    DB_INT(now + cfg()->num[CFG_SESSION_TTL]),
	    DB_TEXT(remote_addr != NULL ? remote_addr : ""), DB_TEXT(ua)), err);
	if (rc != DA_OK)
		id[0] = '\0';
	return rc;
}

static enum da_err
delete_hash(struct db *db, const unsigned char *hash, struct da_error *err)
{
	return db_run(db, &stmts[STMT_DELETE],
	    DB_ARGS(DB_BLOB(hash, CRYPTO_SHA256_LEN)), err);
}

void
session_user_clear(struct session_user *u)
{
	if (u == NULL)
		return;
	free(u->dept_ids);
	memset(u, 0, sizeof(*u));
}

/*
 * One statement on the hot path (every authorized request): the session
 * and its user, one row per department of the user (one row, department
 * NULL, if none), so the ids arrive as numbers, never as a string.
 */
enum da_err
session_check(struct db *db, const char *id, struct session_user *u,
    struct da_error *err)
{
	unsigned char	 hash[CRYPTO_SHA256_LEN];
	struct db_rows	 r;
	struct da_error	 e;
	long long	 now = db_now(), last_seen, expires_at;
	int		 expired = 0, touch = 0, step, budget;
	enum da_err	 rc = DA_OK;

	memset(u, 0, sizeof(*u));
	if (!well_formed(id, SESSION_ID_LEN, 1))
		return DA_ERROR(err, DA_ENOTFOUND, "malformed session id");
	crypto_sha256(id, SESSION_ID_LEN, hash);
	db_query(db, &r, &stmts[STMT_LOOKUP],
	    DB_ARGS(DB_BLOB(hash, sizeof(hash))), err);
	switch (db_next(&r)) {
	case 1:
		break;
	case 0:
		rc = DA_ERROR(err, DA_ENOTFOUND, "no such session");
		goto out;
	default:
		rc = DA_EDB;
		goto out;
	}
	last_seen = db_int(&r, 1);
	expires_at = db_int(&r, 2);
	if (expires_at <= now ||
	    last_seen + cfg()->num[CFG_SESSION_IDLE] <= now) {
		expired = 1;
		rc = DA_ERROR(err, DA_ENOTFOUND, "session expired");
		goto out;
	}
	if (!db_int(&r, 5) || db_int(&r, 6)) {
		rc = DA_ERROR(err, DA_ENOTFOUND, "user no longer active");
		expired = 1;
		goto out;
	}
	snprintf(u->userid, sizeof(u->userid), "%s", db_text(&r, 0));
	snprintf(u->unionid, sizeof(u->unionid), "%s", db_text(&r, 3));
	snprintf(u->name, sizeof(u->name), "%s", db_text(&r, 4));
	u->expires_at = expires_at;
	do {
		if (!db_int(&r, 8))
			continue;	/* no department at all */
		u->dept_ids = xrealloc(u->dept_ids, (u->ndept + 1) *
		    sizeof(*u->dept_ids));
		u->dept_ids[u->ndept++] = db_int(&r, 7);
	} while ((step = db_next(&r)) == 1);
	if (step != 0) {
		rc = DA_EDB;
		session_user_clear(u);
		goto out;
	}
	touch = now - last_seen >= SESSION_TOUCH;
out:
	db_done(&r);
	/*
	 * The decision is made: the writes below are housekeeping, tried
	 * once without waiting for a lock another process holds (skipped
	 * when busy: the next request tries again), so that a long write
	 * elsewhere never stalls the authorizer.
	 */
	if (expired || (touch && rc == DA_OK)) {
		budget = db_busy_budget(db, 0);
		da_error_clear(&e);
		if (expired)
			delete_hash(db, hash, &e);
		else	/* Idle sliding, server-side: one write a minute. */
			db_run(db, &stmts[STMT_TOUCH], DB_ARGS(DB_BLOB(hash,
			    sizeof(hash)), DB_INT(now)), &e);
		if (e.msg[0] != '\0')
			log_msg(db_busy(db) ? LOG_DEBUG : LOG_WARN, "%s%s",
			    e.msg, db_busy(db) ? " (skipped: busy)" : "");
		db_busy_budget(db, budget);
	}
	return rc;
}

enum da_err
session_end(struct db *db, const char *id, struct da_error *err)
{
	unsigned char	 hash[CRYPTO_SHA256_LEN];

	if (!well_formed(id, SESSION_ID_LEN, 1))
		return DA_OK;
	crypto_sha256(id, SESSION_ID_LEN, hash);
	return delete_hash(db, hash, err);
}

enum da_err
session_end_user(struct db *db, const char *userid, int *n,
    struct da_error *err)
{
	enum da_err	 rc;

	rc = db_run(db, &stmts[STMT_DELETE_USER], DB_ARGS(DB_TEXT(userid)),
	    err);
	if (n != NULL)
		*n = rc == DA_OK ? (int)db_changes(db) : 0;
	return rc;
}

const char *
session_end_name(enum session_end_why why)
{
	return (unsigned)why < SESSION_END__MAX ? end_names[why] : "?";
}

enum da_err
session_end_user_why(struct db *db, const char *userid,
    enum session_end_why why, int *n, struct da_error *err)
{
	enum da_err	 rc;

	if (n != NULL)
		*n = 0;
	if ((rc = db_run(db, &stmts[STMT_ENDS_NOTE], DB_ARGS(DB_TEXT(userid),
	    DB_TEXT(session_end_name(why)), DB_INT(db_now())), err)) != DA_OK)
		return rc;
	return session_end_user(db, userid, n, err);
}

enum da_err
session_ended(struct db *db, const char *id, enum session_end_why *why,
    struct da_error *err)
{
	unsigned char	 hash[CRYPTO_SHA256_LEN];
	struct db_rows	 r;
	enum da_err	 rc = DA_ENOTFOUND;
	int		 i;

	if (!well_formed(id, SESSION_ID_LEN, 1))
		return DA_ERROR(err, DA_ENOTFOUND, "malformed session id");
	crypto_sha256(id, SESSION_ID_LEN, hash);
	db_query(db, &r, &stmts[STMT_ENDS_TAKE],
	    DB_ARGS(DB_BLOB(hash, sizeof(hash))), err);
	if (db_next(&r) == 1) {
		for (i = 0; i < SESSION_END__MAX; i++)
			if (strcmp(db_text(&r, 0), end_names[i]) == 0 &&
			    db_int(&r, 1) > db_now()) {
				*why = (enum session_end_why)i;
				rc = DA_OK;
			}
		/* Run the DELETE to its end. */
		db_next(&r);
	}
	if (db_done(&r) != DA_OK)
		rc = DA_EDB;
	else if (rc == DA_ENOTFOUND)
		DA_ERROR(err, DA_ENOTFOUND, "no ended session");
	return rc;
}

enum da_err
session_end_ref(struct db *db, const char *ref, char *userid, size_t size,
    struct da_error *err)
{
	struct db_rows	 r;
	enum da_err	 rc;
	long long	 n = 0;
	int		 own = !db_in_transaction(db);

	userid[0] = '\0';
	if (own && (rc = db_begin_immediate(db, err)) != DA_OK)
		return rc;
	db_query(db, &r, &stmts[STMT_REF_FIND], DB_ARGS(DB_TEXT(ref)), err);
	if (db_next(&r) == 1) {
		n = db_int(&r, 0);
		snprintf(userid, size, "%s", db_text(&r, 1));
	}
	if ((rc = db_done(&r)) != DA_OK)
		goto out;
	if (n == 0)
		rc = DA_ERROR(err, DA_ENOTFOUND, "no session %s", ref);
	else if (n > 1)
		rc = DA_ERROR(err, DA_EINPUT, "%lld sessions start with %s: "
		    "revoke them by --user", n, ref);
	else
		rc = db_run(db, &stmts[STMT_REF_DELETE], DB_ARGS(DB_TEXT(ref)),
		    err);
out:
	if (!own)
		return rc;
	if (rc == DA_OK)
		return db_commit(db, err);
	db_rollback(db);
	return rc;
}

enum da_err
session_count(struct db *db, long long *n, struct da_error *err)
{
	struct db_rows	 r;
	long long	 now = db_now();

	*n = 0;
	db_query(db, &r, &stmts[STMT_COUNT_LIVE], DB_ARGS(DB_INT(now),
	    DB_INT(now - cfg()->num[CFG_SESSION_IDLE])), err);
	if (db_next(&r) == 1)
		*n = db_int(&r, 0);
	return db_done(&r);
}

enum da_err
session_end_all(struct db *db, int *n, struct da_error *err)
{
	enum da_err	 rc;

	rc = db_run(db, &stmts[STMT_DELETE_ALL], DB_NOARGS, err);
	if (n != NULL)
		*n = rc == DA_OK ? (int)db_changes(db) : 0;
	return rc;
}

enum da_err
session_each(struct db *db, const char *userid,
    int (*fn)(const struct session_row *, void *), void *arg,
    struct da_error *err)
{
	struct session_row	 row;
	struct db_rows		 r;
	long long		 now = db_now();
	long long		 idle = now - cfg()->num[CFG_SESSION_IDLE];

	if (userid != NULL)
		db_query(db, &r, &stmts[STMT_LIST_USER], DB_ARGS(DB_INT(now),
		    DB_INT(idle), DB_TEXT(userid)), err);
	else
		db_query(db, &r, &stmts[STMT_LIST], DB_ARGS(DB_INT(now),
		    DB_INT(idle)), err);
	while (db_next(&r) == 1) {
		row.ref = db_text(&r, 0);
		row.userid = db_text(&r, 1);
		row.name = db_text(&r, 2);
		row.created_at = db_int(&r, 3);
		row.last_seen = db_int(&r, 4);
		row.expires_at = db_int(&r, 5);
		row.remote_addr = db_text(&r, 6);
		row.user_agent = db_text(&r, 7);
		if (fn(&row, arg) != 0)
			break;
	}
	return db_done(&r);
}

enum da_err
state_create(struct db *db, const char *rd, char state[STATE_LEN + 1],
    struct da_error *err)
{
	unsigned char	 raw[32], hash[CRYPTO_SHA256_LEN];
	char		*b64, *p;
	long long	 now = db_now();
	enum da_err	 rc;

	crypto_random(raw, sizeof(raw));
	b64 = crypto_base64_encode(raw, sizeof(raw));
	crypto_cleanse(raw, sizeof(raw));
	/* base64url without padding: 43 characters. */
	for (p = b64; *p != '\0'; p++)
		if (*p == '+')
			*p = '-';
		else if (*p == '/')
			*p = '_';
	snprintf(state, STATE_LEN + 1, "%s", b64);
	crypto_cleanse(b64, strlen(b64));
	free(b64);
	crypto_sha256(state, STATE_LEN, hash);
	/*
	 * Evict and insert in one transaction: one commit per page view,
	 * not flushed to disk (a state lost to a power cut costs a scan).
	 */
	if ((rc = db_begin_disposable(db, err)) != DA_OK)
		goto out;
	if ((rc = db_run(db, &stmts[STMT_STATE_EVICT], DB_ARGS(DB_INT(now),
	    DB_INT(STATE_MAX - 1)), err)) != DA_OK ||
	    (rc = db_run(db, &stmts[STMT_STATE_INSERT], DB_ARGS(DB_BLOB(hash,
	    sizeof(hash)), DB_TEXT(rd), DB_INT(now), DB_INT(now + STATE_TTL)),
	    err)) != DA_OK) {
		db_rollback(db);
		goto out;
	}
	rc = db_commit(db, err);
out:
	if (rc != DA_OK)
		state[0] = '\0';
	return rc;
}

enum da_err
state_take(struct db *db, const char *state, char *rd, size_t rdsize,
    struct da_error *err)
{
	unsigned char	 hash[CRYPTO_SHA256_LEN];
	struct db_rows	 r;
	enum da_err	 rc = DA_OK;
	int		 step;

	if (rdsize > 0)
		rd[0] = '\0';
	if (!well_formed(state, STATE_LEN, 0))
		return DA_ERROR(err, DA_ESTATE, "malformed state");
	crypto_sha256(state, STATE_LEN, hash);
	db_query(db, &r, &stmts[STMT_STATE_TAKE],
	    DB_ARGS(DB_BLOB(hash, sizeof(hash))), err);
	if ((step = db_next(&r)) == 1) {
		if (db_int(&r, 1) <= db_now())
			rc = DA_ERROR(err, DA_ESTATE, "login state expired");
		else
			snprintf(rd, rdsize, "%s", db_text(&r, 0));
		/* Run the DELETE to its end. */
		db_next(&r);
	} else if (step == 0)
		rc = DA_ERROR(err, DA_ESTATE,
		    "login state unknown or already used");
	if (db_done(&r) != DA_OK && rc == DA_OK)
		rc = DA_EDB;
	return rc;
}

enum da_err
session_prune(struct db *db, int *n, struct da_error *err)
{
	long long	 now = db_now();
	enum da_err	 rc;

	*n = 0;
	if ((rc = db_run(db, &stmts[STMT_PRUNE_SESSIONS], DB_ARGS(DB_INT(now),
	    DB_INT(now - cfg()->num[CFG_SESSION_IDLE])), err)) != DA_OK)
		return rc;
	*n += (int)db_changes(db);
	if ((rc = db_run(db, &stmts[STMT_PRUNE_STATES], DB_ARGS(DB_INT(now)),
	    err)) != DA_OK)
		return rc;
	*n += (int)db_changes(db);
	/* Notes of ended sessions go uncounted, with their sessions' end. */
	return db_run(db, &stmts[STMT_PRUNE_ENDS], DB_ARGS(DB_INT(now)), err);
}
