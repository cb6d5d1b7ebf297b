#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
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
static const char *const sql_lease_get =
    "SELECT expires_at FROM token_leases WHERE app_key = ?1";
static const char *const sql_lease_take =
    "INSERT INTO token_leases (app_key, holder, expires_at) VALUES (?1, ?2, ?3)"
    " ON CONFLICT (app_key) DO UPDATE SET holder = excluded.holder,"
    " expires_at = excluded.expires_at";
static const char *const sql_lease_drop =
    "DELETE FROM token_leases WHERE app_key = ?1";
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

/* How long a lease holder may take to ask DingTalk (with its retries). */
static long long
lease_seconds(void)
{
	return (config_int(CFG_HTTP_TIMEOUT) / 1000 + 1) *
	    (config_int(CFG_HTTP_RETRIES) + 1) + 2;
}

static void
sleep_ms(long ms)
{
	struct timespec	 ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1)
		continue;
}

/* Run a statement binding app_key (and optional ints); DA_OK or DA_EDB. */
static enum da_err
run_lease(struct db *db, const char *sql, const char *app_key,
    long long holder, long long expires_at, struct da_error *err)
{
	sqlite3_stmt	*st;
	enum da_err	 rc = DA_OK;

	if ((st = db_stmt(db, sql, err)) == NULL)
		return DA_EDB;
	db_bind_text(st, 1, app_key);
	if (sql == sql_lease_take) {
		sqlite3_bind_int64(st, 2, holder);
		sqlite3_bind_int64(st, 3, expires_at);
	}
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_error(db, err, "token lease");
	sqlite3_reset(st);
	return rc;
}

/*
 * Under the write lock: is a token now fresh (1), should we fetch it
 * (we took the lease: 0), or is someone else fetching (2)? -1 on error.
 */
static int
claim(struct db *db, const char *app_key, char *token, size_t size,
    struct da_error *err)
{
	sqlite3_stmt	*st;
	long long	 now = db_now();
	int		 found, busy = 0;

	if (db_begin_immediate(db, err) != DA_OK)
		return -1;
	if ((found = lookup(db, app_key, token, size, err)) != 0)
		goto out;
	if ((st = db_stmt(db, sql_lease_get, err)) == NULL) {
		found = -1;
		goto out;
	}
	db_bind_text(st, 1, app_key);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) > now)
		busy = 1;
	sqlite3_reset(st);
	if (busy)
		found = 2;
	else if (run_lease(db, sql_lease_take, app_key, (long long)getpid(),
	    now + lease_seconds(), err) != DA_OK)
		found = -1;
out:
	if (found == -1) {
		db_rollback(db);
		return -1;
	}
	return db_commit(db, err) == DA_OK ? found : -1;
}

enum da_err
token_cache_get(struct db *db, enum token_kind kind, const char *app_key,
    token_fetch_fn fetch, void *arg, char *token, size_t size, int *fetched,
    struct da_error *err)
{
	sqlite3_stmt	*st;
	long long	 expires_in = 0, now, deadline;
	enum da_err	 rc = DA_OK;
	int		 state;

	if (fetched != NULL)
		*fetched = 0;
	deadline = db_now() + lease_seconds() + 2;
	for (;;) {
		if ((state = lookup(db, app_key, token, size, err)) != 0)
			return state == 1 ? DA_OK : DA_EDB;
		if ((state = claim(db, app_key, token, size, err)) == -1)
			return DA_EDB;
		if (state == 1)
			return DA_OK;
		if (state == 0)
			break;
		/* Another process is asking DingTalk: wait for its token. */
		if (db_now() > deadline)
			return DA_ERROR(err, DA_EBUSY, "another process has been "
			    "fetching the %s token for %s too long",
			    kind_names[kind], app_key);
		sleep_ms(50);
	}

	/* We hold the lease: ask DingTalk without holding the write lock. */
	rc = fetch(arg, token, size, &expires_in, err);
	if (db_begin_immediate(db, NULL) != DA_OK) {
		if (rc == DA_OK)
			rc = db_error(db, err, "token store");
		goto out;
	}
	if (rc == DA_OK) {
		if (fetched != NULL)
			*fetched = 1;
		if (expires_in <= 0)
			expires_in = 7200;
		now = db_now();
		if ((st = db_stmt(db, sql_put, err)) == NULL) {
			rc = DA_EDB;
			goto rollback;
		}
		db_bind_text(st, 1, app_key);
		db_bind_text(st, 2, kind_names[kind]);
		db_bind_text(st, 3, token);
		sqlite3_bind_int64(st, 4, now + expires_in);
		sqlite3_bind_int64(st, 5, now);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = db_error(db, err, "token store");
		sqlite3_reset(st);
	}
	if (run_lease(db, sql_lease_drop, app_key, 0, 0,
	    rc == DA_OK ? err : NULL) != DA_OK && rc == DA_OK)
		rc = DA_EDB;
	if (rc == DA_OK || rc != DA_EDB) {
		/* Keep the failure of the fetch; release the lease anyway. */
		if (db_commit(db, rc == DA_OK ? err : NULL) != DA_OK &&
		    rc == DA_OK)
			rc = DA_EDB;
		goto out;
	}
rollback:
	db_rollback(db);
out:
	if (rc == DA_OK)
		log_msg(LOG_INFO, "fetched a new %s access token for %s "
		    "(expires in %lld s)", kind_names[kind], app_key,
		    expires_in);
	else
		token[0] = '\0';
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
