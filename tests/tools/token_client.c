/*
 * token_client KIND [N]: load the configuration, open the database and ask
 * the shared cache for a corp or sns token N times (default 1), the way
 * every program does before calling DingTalk. Prints "fetched" or
 * "cached" per call, or the error. Used by the token concurrency tests.
 * token_client user N USERID: dt_user_get N times; "user-noerr" the same
 * without an error struct (a call must behave the same either way).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "db.h"
#include "dingtalk.h"
#include "http.h"
#include "log.h"

int
main(int argc, char **argv)
{
	struct da_error	 err = { 0 };
	struct db	*db = NULL;
	char		 token[TOKEN_MAX];
	int		 i, n, fetched, rc = 0, sns;

	if (argc < 2 || (strcmp(argv[1], "corp") != 0 &&
	    strcmp(argv[1], "sns") != 0 && strcmp(argv[1], "user") != 0 &&
	    strcmp(argv[1], "user-noerr") != 0)) {
		fprintf(stderr, "usage: token_client corp|sns|user|user-noerr "
		    "[N [USERID]]\n");
		return 2;
	}
	sns = strcmp(argv[1], "sns") == 0;
	n = argc > 2 ? atoi(argv[2]) : 1;
	if (config_load(CFG_NEED_DB, &err) != DA_OK ||
	    db_open(cfg()->str[CFG_DB], &db, &err) != DA_OK) {
		fprintf(stderr, "token_client: %s\n", err.msg);
		return 1;
	}
	log_set_level(cfg()->log_level);
	for (i = 0; i < n; i++) {
		if (strncmp(argv[1], "user", 4) == 0) {
			/* A directory call (token, retries, refresh). */
			struct dir_user	 u;
			enum da_err	 e;
			int		 noerr = strcmp(argv[1], "user-noerr") == 0;

			if ((e = dt_user_get(db, argc > 3 ? argv[3] : "u001", &u,
			    noerr ? NULL : &err)) != DA_OK) {
				printf("error %s %ld %s\n", da_errname(e),
				    err.api_code, err.msg);
				rc = 1;
			} else
				printf("user %s\n", u.name);
			dir_user_clear(&u);
			continue;
		}
		if ((sns ? dt_sns_token(db, token, sizeof(token), &fetched,
		    &err) : dt_corp_token(db, token, sizeof(token), &fetched,
		    &err)) != DA_OK) {
			printf("error %s %s\n", da_errname(err.code), err.msg);
			rc = 1;
		} else
			printf("%s\n", fetched ? "fetched" : "cached");
	}
	db_close(db);
	http_cleanup();
	return rc;
}
