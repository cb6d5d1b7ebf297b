/*
 * dingauth token show|refresh: the shared access-token cache.
 */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "config.h"
#include "db.h"
#include "dingtalk.h"
#include "json.h"
#include "token.h"

#define TOKENS_MAX	16

static void
usage(FILE *f)
{
	fprintf(f, "usage: dingauth token show [--json]\n"
	    "       dingauth token refresh [corp|sns|all]\n\n"
	    "show     the cached DingTalk access tokens: app, kind, expiry\n"
	    "         (a fingerprint, never the token itself)\n"
	    "refresh  drop the cached token(s) and fetch new ones now\n");
}

static int
token_show(int argc, char **argv)
{
	struct token_info	 t[TOKENS_MAX];
	struct da_error		 err = { 0 };
	struct db		*db = NULL;
	json			*arr, *o;
	char			*text;
	size_t			 n, i;
	long long		 now;
	int			 rc, as_json = 0;

	if (argc == 2 && strcmp(argv[1], "--json") == 0)
		as_json = 1;
	else if (argc != 1)
		return cmd_usage("token show: unexpected argument");
	if ((rc = cmd_open(0, &db)) != EXIT_OK)
		return rc;
	if (token_cache_list(db, t, TOKENS_MAX, &n, &err) != DA_OK) {
		db_close(db);
		return cmd_fail("%s", err.msg);
	}
	now = db_now();
	if (as_json) {
		arr = json_new_array();
		for (i = 0; i < n; i++) {
			o = json_new_object();
			json_add_str(o, "app_key", t[i].app_key);
			json_add_str(o, "kind", t[i].kind);
			json_add_int(o, "expires_at", t[i].expires_at);
			json_add_int(o, "expires_in", t[i].expires_at - now);
			json_add_int(o, "fetched_at", t[i].fetched_at);
			json_add_bool(o, "valid",
			    t[i].expires_at - TOKEN_EARLY > now);
			json_add_str(o, "fingerprint", t[i].fingerprint);
			json_append(arr, o);
		}
		text = json_print(arr);
		printf("%s\n", text);
		free(text);
		json_free(arr);
	} else if (n == 0)
		printf("no cached tokens\n");
	else {
		printf("%-28s %-5s %-12s %-8s %s\n", "APP", "KIND",
		    "EXPIRES IN", "STATE", "FINGERPRINT");
		for (i = 0; i < n; i++)
			printf("%-28s %-5s %-12lld %-8s %s\n", t[i].app_key,
			    t[i].kind, t[i].expires_at - now,
			    t[i].expires_at - TOKEN_EARLY > now ? "valid" :
			    "stale", t[i].fingerprint);
	}
	db_close(db);
	return EXIT_OK;
}

static int
refresh_one(struct db *db, enum token_kind kind)
{
	struct da_error	 err = { 0 };
	char		 token[TOKEN_MAX];
	const char	*key = config_str(kind == TOKEN_CORP ? CFG_APP_KEY :
			    CFG_APP_ID);
	int		 fetched = 0;
	enum da_err	 rc;

	if (token_cache_drop(db, key, NULL, &err) != DA_OK)
		return cmd_fail("%s", err.msg);
	rc = kind == TOKEN_CORP ?
	    dt_corp_token(db, token, sizeof(token), &fetched, &err) :
	    dt_sns_token(db, token, sizeof(token), &fetched, &err);
	memset(token, 0, sizeof(token));
	if (rc != DA_OK)
		return cmd_fail("%s token for %s: %s", kind == TOKEN_CORP ?
		    "corp" : "sns", key, err.msg);
	printf("%s token for %s refreshed\n", kind == TOKEN_CORP ? "corp" :
	    "sns", key);
	return EXIT_OK;
}

static int
token_refresh(int argc, char **argv)
{
	struct db	*db = NULL;
	const char	*which = argc > 1 ? argv[1] : "all";
	int		 rc, corp, sns;

	if (argc > 2)
		return cmd_usage("token refresh: too many arguments");
	corp = strcmp(which, "corp") == 0 || strcmp(which, "all") == 0;
	sns = strcmp(which, "sns") == 0 || strcmp(which, "all") == 0;
	if (!corp && !sns)
		return cmd_usage("token refresh: expected corp, sns or all");
	if ((rc = cmd_open(0, &db)) != EXIT_OK)
		return rc;
	if (corp)
		rc = refresh_one(db, TOKEN_CORP);
	/* "all" refreshes the sns token only where an sns app is set up. */
	if (sns && rc == EXIT_OK && (strcmp(which, "sns") == 0 ||
	    config_is_set(CFG_APP_ID)))
		rc = refresh_one(db, TOKEN_SNS);
	db_close(db);
	return rc;
}

int
cmd_token(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (cmd_wants_help(argc, argv)) {
		usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "show") == 0)
		return token_show(argc - 1, argv + 1);
	if (strcmp(argv[1], "refresh") == 0)
		return token_refresh(argc - 1, argv + 1);
	usage(stderr);
	return EXIT_USAGE;
}
