/*
 * dingauth token show|refresh: the shared access-token cache.
 */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "config.h"
#include "crypto.h"
#include "db.h"
#include "dingtalk.h"
#include "json.h"
#include "token.h"

#define TOKENS_MAX	16

enum sub {
	SUB_SHOW,
	SUB_REFRESH,
	SUB__MAX
};

static int	token_show(const struct cmd_sub *, const struct cmd_args *);
static int	token_refresh(const struct cmd_sub *, const struct cmd_args *);

static const struct cmd_sub subs[SUB__MAX] = {
	[SUB_SHOW] = { "show", token_show, CMD_OPT(OPT_JSON), 0, 0, 0, NULL },
	[SUB_REFRESH] = { "refresh", token_refresh, 0, 1, 0, 0, NULL },
};

static const struct cmd_group group = {
	.name = "token",
	.usage = "usage: dingauth token show [--json]\n"
	    "       dingauth token refresh [corp|sns|all]\n\n"
	    "show     the cached DingTalk access tokens: app, kind, expiry\n"
	    "         (a fingerprint, never the token itself)\n"
	    "refresh  fetch new token(s) now; the cached ones stay in use "
	    "until then\n         (and stay if DingTalk fails)\n",
	.subs = subs,
	.nsubs = SUB__MAX,
};

static int
token_show(const struct cmd_sub *sub, const struct cmd_args *a)
{
	struct token_info	 t[TOKENS_MAX];
	struct cmd_table	 table;
	struct da_error		 err = { 0 };
	char			 left[32];
	struct db		*db = NULL;
	json			*arr, *o;
	size_t			 n, i;
	long long		 now;
	int			 rc;

	if ((rc = cmd_open(sub->needs, &db)) != EXIT_OK)
		return rc;
	if (token_cache_list(db, t, TOKENS_MAX, &n, &err) != DA_OK) {
		db_close(db);
		return cmd_fail("%s", err.msg);
	}
	now = db_now();
	if (a->opt[OPT_JSON] != NULL) {
		arr = json_new_array();
		for (i = 0; i < n; i++) {
			o = json_new_object();
			json_add_str(o, "app_key", t[i].app_key);
			json_add_str(o, "kind", t[i].kind);
			cmd_json_time(o, "expires_at", t[i].expires_at);
			json_add_int(o, "expires_in", t[i].expires_at - now);
			cmd_json_time(o, "fetched_at", t[i].fetched_at);
			json_add_bool(o, "valid",
			    t[i].expires_at - TOKEN_EARLY > now);
			json_add_str(o, "fingerprint", t[i].fingerprint);
			json_append(arr, o);
		}
		cmd_print_json(arr);
		json_free(arr);
	} else if (n == 0)
		printf("no cached tokens\n");
	else {
		cmd_table_begin(&table, 5, "APP", "KIND", "EXPIRES IN",
		    "STATE", "FINGERPRINT");
		for (i = 0; i < n; i++) {
			snprintf(left, sizeof(left), "%lld s",
			    t[i].expires_at - now);
			cmd_table_row(&table, t[i].app_key, t[i].kind, left,
			    t[i].expires_at - TOKEN_EARLY > now ? "valid" :
			    "stale", t[i].fingerprint);
		}
		cmd_table_end(&table);
	}
	db_close(db);
	return EXIT_OK;
}

static int
refresh_one(struct db *db, enum token_kind kind)
{
	struct da_error	 err = { 0 };
	const char	*key = config_str(kind == TOKEN_CORP ? CFG_APP_KEY :
			    CFG_APP_ID);

	/* The cached token stays in use until the new one is stored. */
	if (dt_token_renew(db, kind, &err) != DA_OK)
		return cmd_fail("%s token for %s: %s (the cached one, if "
		    "any, is kept)", kind == TOKEN_CORP ? "corp" : "sns", key,
		    err.msg);
	printf("%s token for %s refreshed\n", kind == TOKEN_CORP ? "corp" :
	    "sns", key);
	return EXIT_OK;
}

static int
token_refresh(const struct cmd_sub *sub, const struct cmd_args *a)
{
	struct db	*db = NULL;
	const char	*which = a->argc > 0 ? a->argv[0] : "all";
	int		 rc, corp, sns;

	corp = strcmp(which, "corp") == 0 || strcmp(which, "all") == 0;
	sns = strcmp(which, "sns") == 0 || strcmp(which, "all") == 0;
	if (!corp && !sns)
		return cmd_usage("token refresh: expected corp, sns or all");
	if ((rc = cmd_open(sub->needs, &db)) != EXIT_OK)
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
	return cmd_dispatch(&group, argc, argv);
}
