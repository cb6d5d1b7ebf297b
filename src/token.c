#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "db.h"
#include "log.h"
#include "token.h"

static const char *const sql_get =
    "SELECT access_token, expires_at FROM tokens WHERE app_key = ?1";
static const char *const sql_put =
    "INSERT INTO tokens (app_key, kind, access_token, expires_at, fetched_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (app_key) DO UPDATE SET"
    " kind = excluded.kind, access_token = excluded.access_token,"
    " expires_at = excluded.expires_at, fetched_at = excluded.fetched_at";
static const char *const sql_drop_if =
    "DELETE FROM tokens WHERE app_key = ?1 AND access_token = ?2";
static const char *const sql_drop =
    "DELETE FROM tokens WHERE app_key = ?1";
static const char *const sql_list =
    "SELECT app_key, kind, access_token, expires_at, fetched_at"
    " FROM tokens ORDER BY app_key";

static const char *const kind_names[] = {
	[TOKEN_CORP] = "corp", [TOKEN_SNS] = "sns",
};

/* 1: fresh token copied; 0: none or stale; -1: error. */
static int
lookup(struct db *db, const char *app_key, char *token, size_t size,
    struct da_error *err)
{
	sqlite3_stmt	*st;
	int		 rc, found = 0;

	if ((st = db_stmt(db, sql_get, err)) == NULL)
		return -1;
	db_bind_text(st, 1, app_key);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (sqlite3_column_int64(st, 1) - TOKEN_EARLY > db_now() &&
		    (size_t)sqlite3_column_bytes(st, 0) < size) {
			snprintf(token, size, "%s", db_column_text(st, 0));
			found = 1;
		}
	} else if (rc != SQLITE_DONE) {
		db_error(db, err, "token lookup");
		found = -1;
	}
	sqlite3_reset(st);
	return found;
}

enum da_err
token_cache_get(struct db *db, enum token_kind kind, const char *app_key,
    token_fetch_fn fetch, void *arg, char *token, size_t size, int *fetched,
    struct da_error *err)
{
	sqlite3_stmt	*st;
	long long	 expires_in = 0, now;
	enum da_err	 rc;
	int		 found;

	if (fetched != NULL)
		*fetched = 0;
	if ((found = lookup(db, app_key, token, size, err)) != 0)
		return found == 1 ? DA_OK : DA_EDB;

	if ((rc = db_begin_immediate(db, err)) != DA_OK)
		return rc;
	/* Someone may have refreshed it while we waited for the lock. */
	if ((found = lookup(db, app_key, token, size, err)) != 0) {
		rc = found == 1 ? db_commit(db, err) : DA_EDB;
		goto out;
	}
	if ((rc = fetch(arg, token, size, &expires_in, err)) != DA_OK)
		goto out;
	if (fetched != NULL)
		*fetched = 1;
	if (expires_in <= 0)
		expires_in = 7200;
	now = db_now();
	if ((st = db_stmt(db, sql_put, err)) == NULL) {
		rc = DA_EDB;
		goto out;
	}
	db_bind_text(st, 1, app_key);
	db_bind_text(st, 2, kind_names[kind]);
	db_bind_text(st, 3, token);
	sqlite3_bind_int64(st, 4, now + expires_in);
	sqlite3_bind_int64(st, 5, now);
	if (sqlite3_step(st) != SQLITE_DONE) {
		rc = db_error(db, err, "token store");
		sqlite3_reset(st);
		goto out;
	}
	sqlite3_reset(st);
	rc = db_commit(db, err);
	if (rc == DA_OK)
		log_msg(LOG_INFO, "fetched a new %s access token for %s "
		    "(expires in %lld s)", kind_names[kind], app_key,
		    expires_in);
out:
	if (rc != DA_OK) {
		db_rollback(db);
		token[0] = '\0';
	}
	return rc;
}

enum da_err
token_cache_drop(struct db *db, const char *app_key, const char *bad_token,
    struct da_error *err)
{
	sqlite3_stmt	*st;
	enum da_err	 rc = DA_OK;

	st = db_stmt(db, bad_token != NULL ? sql_drop_if : sql_drop, err);
	if (st == NULL)
		return DA_EDB;
	db_bind_text(st, 1, app_key);
	if (bad_token != NULL)
		db_bind_text(st, 2, bad_token);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_error(db, err, "token drop");
	sqlite3_reset(st);
	return rc;
}

enum da_err
token_cache_list(struct db *db, struct token_info *out, size_t max,
    size_t *n, struct da_error *err)
{
	sqlite3_stmt	*st;
	char		 hex[65];
	int		 rc;

	*n = 0;
	if ((st = db_stmt(db, sql_list, err)) == NULL)
		return DA_EDB;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < max) {
		struct token_info	*t = &out[(*n)++];

		snprintf(t->app_key, sizeof(t->app_key), "%s",
		    db_column_text(st, 0));
		snprintf(t->kind, sizeof(t->kind), "%s",
		    db_column_text(st, 1));
		crypto_sha256_hex(db_column_text(st, 2),
		    (size_t)sqlite3_column_bytes(st, 2), hex);
		snprintf(t->fingerprint, sizeof(t->fingerprint), "%.12s", hex);
		t->expires_at = sqlite3_column_int64(st, 3);
		t->fetched_at = sqlite3_column_int64(st, 4);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(db, err, "token list");
	return DA_OK;
}
