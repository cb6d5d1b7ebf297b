/*
 * dingauth doctor: configuration, database, DingTalk reachability and
 * permissions, clock. Prints one line per check; exit 1 if any failed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "config.h"
#include "crypto.h"
#include "db.h"
#include "dingtalk.h"
#include "directory.h"
#include "events.h"
#include "worker.h"
#include "sync.h"
#include "token.h"

#define CLOCK_SKEW_WARN	60

static int	failures;
static int	warnings;

static void
report(const char *level, const char *area, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
report(const char *level, const char *area, const char *fmt, ...)
{
	va_list	 ap;

	if (strcmp(level, "FAIL") == 0)
		failures++;
	else if (strcmp(level, "warn") == 0)
		warnings++;
	printf("%-4s  %-9s ", level, area);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static const struct purpose {
	unsigned	 needs;
	const char	*what;
} purposes[] = {
	{ CFG_NEED_LOGIN, "login page" },
	{ CFG_NEED_EXCHANGE, "code exchange" },
	{ CFG_NEED_CALLBACK, "callback" },
	{ CFG_NEED_DIRECTORY, "directory API" },
};

static void
check_config(void)
{
	struct da_error	 err = { 0 };
	const char	*file = getenv("DINGAUTH_CONFIG");
	size_t		 i;

	for (i = 0; i < sizeof(purposes) / sizeof(purposes[0]); i++) {
		memset(&err, 0, sizeof(err));
		if (config_load(purposes[i].needs, &err) == DA_OK)
			report("ok", "config", "%s: configured",
			    purposes[i].what);
		else
			report("warn", "config", "%s: %s", purposes[i].what,
			    err.msg);
	}
	config_load(0, &err);
	report("ok", "config", "read from %s; login flow %s, unknown users: "
	    "%s", file != NULL && *file ? file : "/etc/dingauth.conf "
	    "(if present) and the environment", cfg()->str[CFG_LOGIN_FLOW],
	    cfg()->str[CFG_UNKNOWN_USER]);
	if (!cfg()->num[CFG_COOKIE_SECURE])
		report("warn", "config", "DINGAUTH_COOKIE_SECURE=0: cookies "
		    "travel over plain http; only for test setups");
	if (strncmp(cfg()->str[CFG_PUBLIC_URL], "http://", 7) == 0)
		report("warn", "config", "DINGAUTH_PUBLIC_URL is not https");
}

static void
check_events(struct db *db)
{
	struct events_health	 h;
	struct da_error		 err = { 0 };

	if (events_health(db, &h, &err) != DA_OK) {
		report("FAIL", "events", "%s", err.msg);
		return;
	}
	if (h.pending == 0)
		report("ok", "events", "0 pending callback event(s)");
	else
		report("warn", "events", "%lld pending callback event(s), the "
		    "oldest received %lld s ago: 'dingauth events list "
		    "--pending'", h.pending, db_now() - h.oldest_pending);
	if (h.failed > 0)
		report("warn", "events", "%lld event(s) failed for good; the "
		    "latest: %s ('dingauth events list --failed')", h.failed,
		    h.last_failure);
}

static void
check_worker(struct db *db)
{
	struct worker_beat	 b;
	struct da_error		 err = { 0 };
	long long		 age;

	if (worker_heartbeat(db, &b, &err) != DA_OK) {
		report("FAIL", "worker", "%s", err.msg);
		return;
	}
	if (!b.present) {
		report("warn", "worker", "no worker has run on this database: "
		    "start dingauth-worker (systemd) or 'dingauth worker "
		    "--once' from cron");
		return;
	}
	age = db_now() - b.beat_at;
	report(age > WORKER_STALE_SECONDS ? "warn" : "ok", "worker",
	    "heartbeat %lld s ago (pid %lld): %s", age, b.pid, b.step);
}

static void
check_database(struct db *db)
{
	struct sync_history	 h;
	struct da_error		 err = { 0 };
	long long		 users = 0, active = 0, depts = 0, age;

	report("ok", "database", "%s, schema version %d (latest %d)",
	    cfg()->str[CFG_DB], db_schema_version(db), db_schema_latest());
	if (directory_counts(db, &users, &active, &depts, &err) != DA_OK) {
		report("FAIL", "database", "%s", err.msg);
		return;
	}
	report(users ? "ok" : "warn", "directory", "%lld users (%lld active), "
	    "%lld departments%s", users, active, depts,
	    users ? "" : ": run 'dingauth sync'");
	if (sync_history(db, &h, &err) == DA_OK) {
		if (h.ran)
			report(strcmp(h.last_outcome, "ok") == 0 ? "ok" :
			    "warn", "sync", "last run started %lld s ago: %s",
			    db_now() - h.last_started, h.last_outcome);
		else
			report("warn", "sync", "no directory sync has run yet");
		if (h.last_ok > 0) {
			age = db_now() - h.last_ok;
			report(age > 2 * 86400 ? "warn" : "ok", "sync",
			    "directory age: %lld h %lld min (last complete "
			    "sync)", age / 3600, age % 3600 / 60);
		}
	}
	check_events(db);
	check_worker(db);
}

static void
check_dingtalk(struct db *db)
{
	struct da_error	 err = { 0 };
	struct dir_dept	 root;
	char		 token[TOKEN_MAX];
	long long	 skew;
	int		 fetched = 0;

	if (!config_is_set(CFG_APP_KEY) || !config_is_set(CFG_CORP_SECRET)) {
		report("warn", "dingtalk", "DINGTALK_APP_KEY/"
		    "DINGTALK_CORP_SECRET not set: DingTalk not checked");
		return;
	}
	if (dt_corp_token(db, token, sizeof(token), &fetched, &err) !=
	    DA_OK) {
		report("FAIL", "dingtalk", "corp access token from %s: %s",
		    cfg()->str[CFG_OAPI_URL], err.msg);
		return;
	}
	report("ok", "dingtalk", "corp access token %s",
	    fetched ? "fetched" : "cached and valid");
	crypto_cleanse(token, sizeof(token));
	if (dt_dept_get(db, 1, &root, &err) == DA_OK)
		report("ok", "dingtalk", "directory readable: root department "
		    "'%s'", root.name);
	else
		report("FAIL", "dingtalk", "directory permission: %s", err.msg);
	if (cfg()->login_flow == CFG_FLOW_SNS) {
		if (dt_sns_token(db, token, sizeof(token), &fetched, &err) ==
		    DA_OK)
			report("ok", "dingtalk", "sns app token %s",
			    fetched ? "fetched" : "cached and valid");
		else
			report("FAIL", "dingtalk", "sns app token: %s",
			    err.msg);
		crypto_cleanse(token, sizeof(token));
	}
	if (dt_last_date() > 0) {
		skew = (long long)time(NULL) - dt_last_date();
		report(llabs(skew) > CLOCK_SKEW_WARN ? "warn" : "ok", "clock",
		    "%+lld s against DingTalk's clock", skew);
	}
}

static int
doctor(const struct cmd_sub *sub, const struct cmd_args *a)
{
	struct da_error	 err = { 0 };
	struct db	*db = NULL;

	if (config_load(0, &err) != DA_OK) {
		report("FAIL", "config", "%s", err.msg);
		return EXIT_FAIL;
	}
	check_config();
	if (db_open(cfg()->str[CFG_DB], &db, &err) != DA_OK)
		report("FAIL", "database", "%s: %s", cfg()->str[CFG_DB],
		    err.msg);
	else {
		check_database(db);
		check_dingtalk(db);
	}
	db_close(db);
	printf("%d failed, %d warnings\n", failures, warnings);
	return failures ? EXIT_FAIL : EXIT_OK;
}

static const struct cmd_sub doctor_sub = {
	.run = doctor,
};

static const struct cmd_group group = {
	.name = "doctor",
	.usage = "usage: dingauth doctor\n\nChecks the configuration, "
	    "the database, DingTalk reachability and permissions,\n"
	    "and the clock. Exit 1 if any check failed.\n",
	.subs = &doctor_sub,
	.nsubs = 1,
};

int
cmd_doctor(int argc, char **argv)
{
	return cmd_run(&group, &doctor_sub, argc, argv);
}
