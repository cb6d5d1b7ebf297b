#ifndef DINGAUTH_TOKEN_H
#define DINGAUTH_TOKEN_H

#include <stddef.h>

#include "err.h"

/*
 * The access-token cache in SQLite, shared by every process. A token is
 * used until expires_at - TOKEN_EARLY seconds. When it is missing or
 * stale, token_cache_get takes the database write lock (BEGIN IMMEDIATE)
 * for a moment, looks again (another process may have just refreshed it)
 * and, if it is still stale and nobody holds the lease (table
 * token_leases), takes the lease and lets go of the lock. Only the lease
 * holder asks DingTalk, without holding the write lock, so however many
 * processes need the token at once exactly one calls gettoken, and other
 * writers (a callback storing an event) never wait on DingTalk. The
 * others poll the cache until the token appears; a holder that died is
 * forgotten when its lease expires.
 */
#define TOKEN_EARLY	300
#define TOKEN_MAX	512

struct db;

enum token_kind { TOKEN_CORP, TOKEN_SNS };

/* Fetch a fresh token from DingTalk: fill token, *expires_in (seconds). */
typedef enum da_err (*token_fetch_fn)(void *arg, char *token, size_t size,
    long long *expires_in, struct da_error *err);

/*
 * A valid kind token for app_key into token[size]. The cache is keyed by
 * kind and app: one app may have both a corp and an sns token. *fetched
 * is set to 1 when this call asked DingTalk (may be NULL).
 */
enum da_err	 token_cache_get(struct db *db, enum token_kind kind,
		    const char *app_key, token_fetch_fn fetch, void *arg,
		    char *token, size_t size, int *fetched,
		    struct da_error *err);

/*
 * Forget the cached kind token for app_key, but only if it is still
 * bad_token (a concurrent refresh may already have replaced it).
 * bad_token NULL forgets whatever is cached.
 */
enum da_err	 token_cache_drop(struct db *db, enum token_kind kind,
		    const char *app_key, const char *bad_token,
		    struct da_error *err);

/*
 * Fetch a new kind token for app_key now, whatever the cached one's
 * state, and store it: the cached token is replaced only once the new
 * one is in hand, so a DingTalk that fails leaves the valid one in use.
 * token[size] receives the new token.
 */
enum da_err	 token_cache_renew(struct db *db, enum token_kind kind,
		    const char *app_key, token_fetch_fn fetch, void *arg,
		    char *token, size_t size, struct da_error *err);

struct token_info {
	char		app_key[128];
	char		kind[8];
	long long	expires_at;
	long long	fetched_at;
	char		fingerprint[13];	/* sha256 hex prefix, not the token */
};

/* Cached tokens, at most max; *n set. For `dingauth token show`. */
enum da_err	 token_cache_list(struct db *db, struct token_info *out,
		    size_t max, size_t *n, struct da_error *err);

#endif
