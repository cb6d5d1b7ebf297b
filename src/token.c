#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "crypto.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "token.h"

enum stmt {
	STMT_GET,
	STMT_PUT,
	STMT_DROP_IF,
	STMT_DROP,
	STMT_LEASE_GET,
	STMT_LEASE_TAKE,
	STMT_LEASE_DROP,
	STMT_LIST,
	STMT__MAX
};

static const struct db_sql stmts[STMT__MAX] = {
	[STMT_GET] = { "token lookup",
	    "SELECT access_token, expires_at FROM tokens"
	    " WHERE kind = ?1 AND app_key = ?2" },
	[STMT_PUT] = { "token store",
	    "INSERT INTO tokens (kind, app_key, access_token, expires_at,"
	    " fetched_at) VALUES (?1, ?2, ?3, ?4, ?5)"
	    " ON CONFLICT (kind, app_key) DO UPDATE SET"
	    " access_token = excluded.access_token,"
	    " expires_at = excluded.expires_at,"
	    " fetched_at = excluded.fetched_at" },
	[STMT_DROP_IF] = { "token drop",
	    "DELETE FROM tokens WHERE kind = ?1 AND app_key = ?2"
	    " AND access_token = ?3" },
	[STMT_DROP] = { "token drop",
	    "DELETE FROM tokens WHERE kind = ?1 AND app_key = ?2" },
	[STMT_LEASE_GET] = { "token lease",
	    "SELECT expires_at FROM token_leases"
	    " WHERE kind = ?1 AND app_key = ?2" },
	[STMT_LEASE_TAKE] = { "token lease",
	    "INSERT INTO token_leases (kind, app_key, holder, expires_at)"
	    " VALUES (?1, ?2, ?3, ?4)"
	    " ON CONFLICT (kind, app_key) DO UPDATE SET"
	    " holder = excluded.holder, expires_at = excluded.expires_at" },
	[STMT_LEASE_DROP] = { "token lease",
	    "DELETE FROM token_leases WHERE kind = ?1 AND app_key = ?2" },
	[STMT_LIST] = { "token list",
	    "SELECT app_key, kind, access_token, expires_at, fetched_at"
	    " FROM tokens ORDER BY app_key, kind" },
};

static const char *const kind_names[] = {
	[TOKEN_CORP] = "corp", [TOKEN_SNS] = "sns",
};

/* 1: fresh token copied; 0: none or stale; -1: error. */
static int
lookup(struct db *db, enum token_kind kind, const char *app_key, char *token,
    size_t size, struct da_error *err)
{
	struct db_rows	 r;
	int		 found;

	db_query(db, &r, &stmts[STMT_GET], DB_ARGS(DB_TEXT(kind_names[kind]),
	    DB_TEXT(app_key)), err);
	if ((found = db_next(&r)) == 1) {
		if (db_int(&r, 1) - TOKEN_EARLY > db_now() &&
		    db_bytes(&r, 0) < size)
			snprintf(token, size, "%s", db_text(&r, 0));
		else
			found = 0;
	}
	db_done(&r);
	return found;
}

/* How long a lease holder may take to ask DingTalk (with its retries). */
static long long
lease_seconds(void)
{
	return (cfg()->num[CFG_HTTP_TIMEOUT] / 1000 + 1) *
	    (cfg()->num[CFG_HTTP_RETRIES] + 1) + 2;
}

static void
sleep_ms(long ms)
{
	struct timespec	 ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1)
		continue;
}

/*
 * Under the write lock: is a token now fresh (1), should we fetch it
 * (we took the lease: 0), or is someone else fetching (2)? -1 on error.
 */
static int
claim(struct db *db, enum token_kind kind, const char *app_key, char *token,
    size_t size, struct da_error *err)
{
	struct db_rows	 r;
	long long	 now = db_now();
	int		 found, busy;

	if (db_begin_immediate(db, err) != DA_OK)
		return -1;
	if ((found = lookup(db, kind, app_key, token, size, err)) != 0)
		goto out;
	db_query(db, &r, &stmts[STMT_LEASE_GET],
	    DB_ARGS(DB_TEXT(kind_names[kind]), DB_TEXT(app_key)), err);
	busy = db_next(&r) == 1 && db_int(&r, 0) > now;
	if (db_done(&r) != DA_OK)
		found = -1;
	else if (busy)
		found = 2;
	else if (db_run(db, &stmts[STMT_LEASE_TAKE],
	    DB_ARGS(DB_TEXT(kind_names[kind]), DB_TEXT(app_key),
	    DB_INT(getpid()), DB_INT(now + lease_seconds())), err) != DA_OK)
		found = -1;
out:
	if (found == -1) {
		db_rollback(db);
		return -1;
	}
	return db_commit(db, err) == DA_OK ? found : -1;
}

/* A fetch from DingTalk, counted (metrics.h). */
static void
count_fetch(enum token_kind kind, enum da_err rc)
{
	metrics_count(METRICS_TOKENS, kind == TOKEN_CORP ?
	    (rc == DA_OK ? "kind=\"corp\",result=\"ok\"" :
	    "kind=\"corp\",result=\"error\"") :
	    (rc == DA_OK ? "kind=\"sns\",result=\"ok\"" :
	    "kind=\"sns\",result=\"error\""));
}

enum da_err
token_cache_get(struct db *db, enum token_kind kind, const char *app_key,
    token_fetch_fn fetch, void *arg, char *token, size_t size, int *fetched,
    struct da_error *err)
{
	long long	 expires_in = 0, now, deadline;
	enum da_err	 rc = DA_OK;
	int		 state;

	if (fetched != NULL)
		*fetched = 0;
	deadline = db_now() + lease_seconds() + 2;
	for (;;) {
		if ((state = lookup(db, kind, app_key, token, size, err)) != 0)
			return state == 1 ? DA_OK : DA_EDB;
		if ((state = claim(db, kind, app_key, token, size, err)) ==
		    -1)
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
	count_fetch(kind, rc);
	if (db_begin_immediate(db, rc == DA_OK ? err : NULL) != DA_OK) {
		if (rc == DA_OK)
			rc = DA_EDB;
		goto out;
	}
	if (rc == DA_OK) {
		if (fetched != NULL)
			*fetched = 1;
		if (expires_in <= 0)
			expires_in = 7200;
		now = db_now();
		rc = db_run(db, &stmts[STMT_PUT],
		    DB_ARGS(DB_TEXT(kind_names[kind]), DB_TEXT(app_key),
		    DB_TEXT(token),
		    DB_INT(now + expires_in), DB_INT(now)), err);
	}
	if (db_run(db, &stmts[STMT_LEASE_DROP],
	    DB_ARGS(DB_TEXT(kind_names[kind]), DB_TEXT(app_key)),
	    rc == DA_OK ? err : NULL) != DA_OK && rc == DA_OK)
		rc = DA_EDB;
	if (rc == DA_OK || rc != DA_EDB) {
		/* Keep the failure of the fetch; release the lease anyway. */
		if (db_commit(db, rc == DA_OK ? err : NULL) != DA_OK &&
		    rc == DA_OK)
			rc = DA_EDB;
		goto out;
	}
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
token_cache_renew(struct db *db, enum token_kind kind, const char *app_key,
    token_fetch_fn fetch, void *arg, char *token, size_t size,
    struct da_error *err)
{
	long long	 expires_in = 0, now;
	enum da_err	 rc;

	/* No lease: an operator's one call; DingTalk's token stays valid. */
	rc = fetch(arg, token, size, &expires_in, err);
	count_fetch(kind, rc);
	if (rc != DA_OK)
		goto out;
	if (expires_in <= 0)
		expires_in = 7200;
	now = db_now();
	rc = db_run(db, &stmts[STMT_PUT], DB_ARGS(DB_TEXT(kind_names[kind]),
	    DB_TEXT(app_key), DB_TEXT(token), DB_INT(now + expires_in),
	    DB_INT(now)), err);
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
token_cache_drop(struct db *db, enum token_kind kind, const char *app_key,
    const char *bad_token, struct da_error *err)
{
	if (bad_token == NULL)
		return db_run(db, &stmts[STMT_DROP],
		    DB_ARGS(DB_TEXT(kind_names[kind]), DB_TEXT(app_key)), err);
	return db_run(db, &stmts[STMT_DROP_IF],
	    DB_ARGS(DB_TEXT(kind_names[kind]), DB_TEXT(app_key),
	    DB_TEXT(bad_token)), err);
}

enum da_err
token_cache_list(struct db *db, struct token_info *out, size_t max,
    size_t *n, struct da_error *err)
{
	struct db_rows	 r;
	char		 hex[65];

	*n = 0;
	db_query(db, &r, &stmts[STMT_LIST], DB_NOARGS, err);
	while (*n < max && db_next(&r) == 1) {
		struct token_info	*t = &out[(*n)++];

		snprintf(t->app_key, sizeof(t->app_key), "%s", db_text(&r, 0));
		snprintf(t->kind, sizeof(t->kind), "%s", db_text(&r, 1));
		crypto_sha256_hex(db_text(&r, 2), db_bytes(&r, 2), hex);
		snprintf(t->fingerprint, sizeof(t->fingerprint), "%.12s", hex);
		t->expires_at = db_int(&r, 3);
		t->fetched_at = db_int(&r, 4);
	}
	return db_done(&r);
}
