#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "crypto.h"
#include "db.h"
#include "log.h"
#include "session.h"

static const char *const sql_insert =
    "INSERT INTO sessions (id_hash, userid, created_at, last_seen, expires_at,"
    " remote_addr, user_agent) VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6)";
static const char *const sql_lookup =
    "SELECT s.userid, s.last_seen, s.expires_at, u.unionid, u.name,"
    " u.active, u.disabled,"
    " (SELECT group_concat(dept_id) FROM (SELECT dept_id FROM user_depts"
    "   WHERE userid = s.userid ORDER BY dept_id))"
    " FROM sessions s JOIN users u ON u.userid = s.userid"
    " WHERE s.id_hash = ?1";
static const char *const sql_touch =
    "UPDATE sessions SET last_seen = ?2 WHERE id_hash = ?1";
static const char *const sql_delete =
    "DELETE FROM sessions WHERE id_hash = ?1";
static const char *const sql_delete_user =
    "DELETE FROM sessions WHERE userid = ?1";
static const char *const sql_delete_all =
    "DELETE FROM sessions";
/* Live: before the absolute end and used within the idle time. */
static const char *const sql_list =
    "SELECT lower(hex(substr(s.id_hash, 1, 6))), s.userid,"
    " COALESCE(u.name, ''), s.created_at, s.last_seen, s.expires_at,"
    " s.remote_addr, s.user_agent FROM sessions s"
    " LEFT JOIN users u ON u.userid = s.userid"
    " WHERE s.expires_at > ?1 AND s.last_seen > ?2"
    " ORDER BY s.created_at, s.userid";
static const char *const sql_list_user =
    "SELECT lower(hex(substr(s.id_hash, 1, 6))), s.userid,"
    " COALESCE(u.name, ''), s.created_at, s.last_seen, s.expires_at,"
    " s.remote_addr, s.user_agent FROM sessions s"
    " LEFT JOIN users u ON u.userid = s.userid"
    " WHERE s.expires_at > ?1 AND s.last_seen > ?2 AND s.userid = ?3"
    " ORDER BY s.created_at";
static const char *const sql_state_insert =
    "INSERT INTO login_states (state_hash, rd, created_at, expires_at)"
    " VALUES (?1, ?2, ?3, ?4)";
static const char *const sql_state_take =
    "DELETE FROM login_states WHERE state_hash = ?1"
    " RETURNING rd, expires_at";
static const char *const sql_prune_sessions =
    "DELETE FROM sessions WHERE expires_at <= ?1 OR last_seen <= ?2";
static const char *const sql_prune_states =
    "DELETE FROM login_states WHERE expires_at <= ?1";

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
	sqlite3_stmt	*st;
	long long	 now = db_now();
	enum da_err	 rc = DA_OK;
	char		 ua[256];

	crypto_random(raw, sizeof(raw));
	crypto_hex(raw, sizeof(raw), id);
	crypto_cleanse(raw, sizeof(raw));
	crypto_sha256(id, SESSION_ID_LEN, hash);
	snprintf(ua, sizeof(ua), "%s", user_agent != NULL ? user_agent : "");
	if ((st = db_stmt(db, sql_insert, err)) == NULL)
		return DA_EDB;
	sqlite3_bind_blob(st, 1, hash, sizeof(hash), SQLITE_TRANSIENT);
	db_bind_text(st, 2, userid);
	sqlite3_bind_int64(st, 3, now);
	sqlite3_bind_int64(st, 4, now + config_int(CFG_SESSION_TTL));
	db_bind_text(st, 5, remote_addr != NULL ? remote_addr : "");
	db_bind_text(st, 6, ua);
	if (sqlite3_step(st) != SQLITE_DONE) {
		rc = db_error(db, err, "session open");
		id[0] = '\0';
	}
	sqlite3_reset(st);
	return rc;
}

static enum da_err
delete_hash(struct db *db, const unsigned char *hash, struct da_error *err)
{
	sqlite3_stmt	*st;
	enum da_err	 rc = DA_OK;

	if ((st = db_stmt(db, sql_delete, err)) == NULL)
		return DA_EDB;
	sqlite3_bind_blob(st, 1, hash, CRYPTO_SHA256_LEN, SQLITE_TRANSIENT);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_error(db, err, "session delete");
	sqlite3_reset(st);
	return rc;
}

enum da_err
session_check(struct db *db, const char *id, struct session_user *u,
    struct da_error *err)
{
	unsigned char	 hash[CRYPTO_SHA256_LEN];
	sqlite3_stmt	*st;
	long long	 now = db_now(), last_seen, expires_at;
	int		 step, expired = 0, touch = 0;
	enum da_err	 rc = DA_OK;

	memset(u, 0, sizeof(*u));
	if (!well_formed(id, SESSION_ID_LEN, 1))
		return DA_ERROR(err, DA_ENOTFOUND, "malformed session id");
	crypto_sha256(id, SESSION_ID_LEN, hash);
	if ((st = db_stmt(db, sql_lookup, err)) == NULL)
		return DA_EDB;
	sqlite3_bind_blob(st, 1, hash, sizeof(hash), SQLITE_TRANSIENT);
	step = sqlite3_step(st);
	if (step == SQLITE_DONE) {
		rc = DA_ERROR(err, DA_ENOTFOUND, "no such session");
		goto out;
	}
	if (step != SQLITE_ROW) {
		rc = db_error(db, err, "session lookup");
		goto out;
	}
	last_seen = sqlite3_column_int64(st, 1);
	expires_at = sqlite3_column_int64(st, 2);
	if (expires_at <= now ||
	    last_seen + config_int(CFG_SESSION_IDLE) <= now) {
		expired = 1;
		rc = DA_ERROR(err, DA_ENOTFOUND, "session expired");
		goto out;
	}
	if (!sqlite3_column_int(st, 5) || sqlite3_column_int(st, 6)) {
		rc = DA_ERROR(err, DA_ENOTFOUND, "user no longer active");
		expired = 1;
		goto out;
	}
	snprintf(u->userid, sizeof(u->userid), "%s", db_column_text(st, 0));
	snprintf(u->unionid, sizeof(u->unionid), "%s", db_column_text(st, 3));
	snprintf(u->name, sizeof(u->name), "%s", db_column_text(st, 4));
	snprintf(u->dept_ids, sizeof(u->dept_ids), "%s",
	    db_column_text(st, 7));
	u->expires_at = expires_at;
	touch = now - last_seen >= SESSION_TOUCH;
out:
	sqlite3_reset(st);
	if (expired)
		delete_hash(db, hash, NULL);
	else if (touch && rc == DA_OK) {
		/* Idle sliding, server-side: at most one write a minute. */
		if ((st = db_stmt(db, sql_touch, NULL)) != NULL) {
			sqlite3_bind_blob(st, 1, hash, sizeof(hash),
			    SQLITE_TRANSIENT);
			sqlite3_bind_int64(st, 2, now);
			if (sqlite3_step(st) != SQLITE_DONE)
				log_msg(LOG_WARN, "session touch: %s",
				    sqlite3_errmsg(db_handle(db)));
			sqlite3_reset(st);
		}
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

/* Delete the sessions sql picks (by userid if not NULL); *n deleted. */
static enum da_err
delete_sessions(struct db *db, const char *sql, const char *userid, int *n,
    struct da_error *err)
{
	sqlite3_stmt	*st;
	enum da_err	 rc = DA_OK;

	if (n != NULL)
		*n = 0;
	if ((st = db_stmt(db, sql, err)) == NULL)
		return DA_EDB;
	if (userid != NULL)
		db_bind_text(st, 1, userid);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_error(db, err, "session end");
	else if (n != NULL)
		*n = sqlite3_changes(db_handle(db));
	sqlite3_reset(st);
	return rc;
}

enum da_err
session_end_user(struct db *db, const char *userid, int *n,
    struct da_error *err)
{
	return delete_sessions(db, sql_delete_user, userid, n, err);
}

enum da_err
session_end_all(struct db *db, int *n, struct da_error *err)
{
	return delete_sessions(db, sql_delete_all, NULL, n, err);
}

enum da_err
session_each(struct db *db, const char *userid,
    int (*fn)(const struct session_row *, void *), void *arg,
    struct da_error *err)
{
	struct session_row	 row;
	sqlite3_stmt		*st;
	long long		 now = db_now();
	enum da_err		 rc = DA_OK;
	int			 step;

	if ((st = db_stmt(db, userid != NULL ? sql_list_user : sql_list,
	    err)) == NULL)
		return DA_EDB;
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int64(st, 2, now - config_int(CFG_SESSION_IDLE));
	if (userid != NULL)
		db_bind_text(st, 3, userid);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		row.ref = db_column_text(st, 0);
		row.userid = db_column_text(st, 1);
		row.name = db_column_text(st, 2);
		row.created_at = sqlite3_column_int64(st, 3);
		row.last_seen = sqlite3_column_int64(st, 4);
		row.expires_at = sqlite3_column_int64(st, 5);
		row.remote_addr = db_column_text(st, 6);
		row.user_agent = db_column_text(st, 7);
		if (fn(&row, arg) != 0)
			break;
	}
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		rc = db_error(db, err, "sessions");
	sqlite3_reset(st);
	return rc;
}

enum da_err
state_create(struct db *db, const char *rd, char state[STATE_LEN + 1],
    struct da_error *err)
{
	unsigned char	 raw[32], hash[CRYPTO_SHA256_LEN];
	char		*b64, *p;
	sqlite3_stmt	*st;
	long long	 now = db_now();
	enum da_err	 rc = DA_OK;

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
	free(b64);
	crypto_sha256(state, STATE_LEN, hash);
	if ((st = db_stmt(db, sql_state_insert, err)) == NULL)
		return DA_EDB;
	sqlite3_bind_blob(st, 1, hash, sizeof(hash), SQLITE_TRANSIENT);
	db_bind_text(st, 2, rd);
	sqlite3_bind_int64(st, 3, now);
	sqlite3_bind_int64(st, 4, now + STATE_TTL);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_error(db, err, "state create");
	sqlite3_reset(st);
	return rc;
}

enum da_err
state_take(struct db *db, const char *state, char *rd, size_t rdsize,
    struct da_error *err)
{
	unsigned char	 hash[CRYPTO_SHA256_LEN];
	sqlite3_stmt	*st;
	enum da_err	 rc = DA_OK;
	int		 step;

	if (rdsize > 0)
		rd[0] = '\0';
	if (!well_formed(state, STATE_LEN, 0))
		return DA_ERROR(err, DA_ESTATE, "malformed state");
	crypto_sha256(state, STATE_LEN, hash);
	if ((st = db_stmt(db, sql_state_take, err)) == NULL)
		return DA_EDB;
	sqlite3_bind_blob(st, 1, hash, sizeof(hash), SQLITE_TRANSIENT);
	step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		if (sqlite3_column_int64(st, 1) <= db_now())
			rc = DA_ERROR(err, DA_ESTATE, "login state expired");
		else
			snprintf(rd, rdsize, "%s", db_column_text(st, 0));
		step = sqlite3_step(st);
	} else if (step == SQLITE_DONE)
		rc = DA_ERROR(err, DA_ESTATE,
		    "login state unknown or already used");
	if (step != SQLITE_DONE && rc == DA_OK)
		rc = db_error(db, err, "state take");
	sqlite3_reset(st);
	return rc;
}

enum da_err
session_prune(struct db *db, int *n, struct da_error *err)
{
	sqlite3_stmt	*st;
	long long	 now = db_now();
	enum da_err	 rc = DA_OK;

	*n = 0;
	if ((st = db_stmt(db, sql_prune_sessions, err)) == NULL)
		return DA_EDB;
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int64(st, 2, now - config_int(CFG_SESSION_IDLE));
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_error(db, err, "prune sessions");
	else
		*n += sqlite3_changes(db_handle(db));
	sqlite3_reset(st);
	if (rc != DA_OK || (st = db_stmt(db, sql_prune_states, err)) == NULL)
		return rc != DA_OK ? rc : DA_EDB;
	sqlite3_bind_int64(st, 1, now);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_error(db, err, "prune states");
	else
		*n += sqlite3_changes(db_handle(db));
	sqlite3_reset(st);
	return rc;
}
