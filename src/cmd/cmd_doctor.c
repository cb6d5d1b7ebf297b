/*
 * dingauth doctor: configuration, its file and the database's modes and
 * owners, the database (the backend: engine, reachability, schema,
 * locks), the health checks of GET /dingauth/healthz, DingTalk
 * reachability and permissions, clock. Prints one line per check
 * (--json: one document with every check, the health and the backend
 * objects); exit 1 if any failed.
 */
#include <sys/stat.h>

#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "config.h"
#include "crypto.h"
#include "db.h"
#include "dingtalk.h"
#include "directory.h"
#include "events.h"
#include "health.h"
#include "json.h"
#include "metrics.h"
#include "worker.h"
#include "sync.h"
#include "token.h"

#define CLOCK_SKEW_WARN	60

#define DEFAULT_CONFIG	"/etc/dingauth.conf"	/* config.c's default */

static int	failures;
static int	warnings;
static json	*checks;	/* --json: the checks, else NULL */
static json	*backend;	/* --json: the backend's object, else NULL */

static void
report(const char *level, const char *area, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
report(const char *level, const char *area, const char *fmt, ...)
{
	va_list	 ap;
	char	 text[1024];
	json	*o;

	if (strcmp(level, "FAIL") == 0)
		failures++;
	else if (strcmp(level, "warn") == 0)
		warnings++;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (checks == NULL) {
		printf("%-4s  %-9s %s\n", level, area, text);
		return;
	}
	o = json_new_object();
	json_add_str(o, "status", strcmp(level, "FAIL") == 0 ? "fail" :
	    level);
	json_add_str(o, "area", area);
	json_add_str(o, "message", text);
	json_append(checks, o);
}

/* The user called uid, or its number. */
static const char *
user_name(uid_t uid, char *buf, size_t size)
{
	struct passwd	*pw = getpwuid(uid);

	if (pw != NULL)
		snprintf(buf, size, "%s", pw->pw_name);
	else
		snprintf(buf, size, "uid %ld", (long)uid);
	return buf;
}

/*
 * The configuration file holds secrets: nobody but its owner (root or
 * the programs' user) and their group may read it, nobody else write.
 */
static void
check_config_file(const char *path)
{
	struct stat	 st;
	char		 owner[64], me[64];

	if (stat(path, &st) == -1) {
		report("FAIL", "config", "%s: %s", path, strerror(errno));
		return;
	}
	if (st.st_mode & 007)
		report("warn", "config", "%s is mode %04o: others can read "
		    "its secrets (chmod o-rwx)", path,
		    (unsigned)(st.st_mode & 07777));
	if (st.st_mode & 022)
		report("warn", "config", "%s is mode %04o: writable by "
		    "group or others (chmod go-w)", path,
		    (unsigned)(st.st_mode & 07777));
	if (st.st_uid != 0 && st.st_uid != geteuid())
		report("warn", "config", "%s belongs to %s, neither root nor "
		    "%s who runs this (chown root)", path,
		    user_name(st.st_uid, owner, sizeof(owner)),
		    user_name(geteuid(), me, sizeof(me)));
}

/*
 * The database and its directory: private, owned by the user the
 * programs run as (doctor runs as them: sudo -u www-data dingauth
 * doctor), the directory writable by them (SQLite's -wal and -shm files
 * are made beside the file).
 */
static void
check_database_files(const char *path)
{
	static const char *const suffixes[] = { "", "-wal", "-shm",
		METRICS_SUFFIX };
	struct stat	 st;
	char		 dir[1024], file[1100], owner[64], me[64], *slash;
	size_t		 i;

	if (db_is_server(path))		/* PostgreSQL: no files of ours */
		return;
	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) != NULL)
		*(slash == dir ? slash + 1 : slash) = '\0';
	if (access(dir, W_OK | X_OK) == -1)
		report("FAIL", "database", "directory %s: not writable by %s "
		    "(%s): SQLite makes its -wal and -shm files there", dir,
		    user_name(geteuid(), me, sizeof(me)), strerror(errno));
	else if (stat(dir, &st) == 0 && (st.st_mode & 002))
		report("warn", "database", "directory %s is mode %04o: anyone "
		    "can replace the database (chmod o-w)", dir,
		    (unsigned)(st.st_mode & 07777));
	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		snprintf(file, sizeof(file), "%s%s", path, suffixes[i]);
		if (stat(file, &st) == -1)
			continue;
		if (st.st_mode & 007)
			report("warn", "database", "%s is mode %04o: others "
			    "can read sessions and the directory (chmod "
			    "o-rwx)", file, (unsigned)(st.st_mode & 07777));
		if (st.st_uid != geteuid())
			report("warn", "database", "%s belongs to %s, not to "
			    "%s who runs this: run doctor as the programs' "
			    "user, who must own it", file,
			    user_name(st.st_uid, owner, sizeof(owner)),
			    user_name(geteuid(), me, sizeof(me)));
	}
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
check_config(const char *file)
{
	struct da_error	 err = { 0 };
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
	    "%s", file, cfg()->str[CFG_LOGIN_FLOW],
	    cfg()->str[CFG_UNKNOWN_USER]);
	check_config_file(file);
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

/* The locks one process per database holds, on every node (db_lock). */
static const char *const lock_names[] = { "worker", "sync" };

/*
 * The backend: its engine and version, where it is (a URI without its
 * password), one round trip, the schema version against this release's,
 * and who holds the cluster-wide locks. --json: the object "backend".
 */
static void
check_backend(struct db *db)
{
	struct da_error	 err = { 0 };
	char		 engine[64], where[256], holder[160];
	long long	 ms;
	size_t		 i;
	int		 have, want, held;
	json		*o = NULL, *locks = NULL, *l;

	if (checks != NULL) {
		o = json_new_object();
		locks = json_new_array();
	}
	db_engine(db, engine, sizeof(engine));
	db_where(db, where, sizeof(where));
	ms = db_ping(db);
	have = db_schema_version(db);
	want = db_schema_target(db);
	if (ms < 0)
		report("FAIL", "database", "%s at %s: not reachable", engine,
		    where);
	else
		report("ok", "database", "%s at %s: reachable (%lld ms)",
		    engine, where, ms);
	report(have == want ? "ok" : "FAIL", "database", "schema version %d "
	    "(this release's: %d)", have, want);
	for (i = 0; i < sizeof(lock_names) / sizeof(lock_names[0]); i++) {
		memset(&err, 0, sizeof(err));
		if (db_lock_holder(db, lock_names[i], &held, holder,
		    sizeof(holder), &err) != DA_OK) {
			report("warn", "database", "%s lock: %s", lock_names[i],
			    err.msg);
			continue;
		}
		report("ok", "database", "%s lock: %s%s", lock_names[i],
		    held ? "held by " : "free", held ? holder : "");
		if (locks == NULL)
			continue;
		l = json_new_object();
		json_add_str(l, "name", lock_names[i]);
		json_add_bool(l, "held", held);
		if (held)
			json_add_str(l, "holder", holder);
		else
			json_add_null(l, "holder");
		json_append(locks, l);
	}
	if (o == NULL)
		return;
	json_add_str(o, "engine", db_is_server(cfg()->str[CFG_DB]) ?
	    "postgresql" : "sqlite");
	json_add_str(o, "version", strchr(engine, ' ') != NULL ?
	    strchr(engine, ' ') + 1 : engine);
	json_add_str(o, "where", where);
	json_add_bool(o, "reachable", ms >= 0);
	if (ms >= 0)
		json_add_int(o, "round_trip_ms", ms);
	else
		json_add_null(o, "round_trip_ms");
	json_add_int(o, "schema_version", have);
	json_add_int(o, "schema_latest", want);
	json_add(o, "locks", locks);
	backend = o;
}

static void
check_database(struct db *db)
{
	struct sync_history	 h;
	struct da_error		 err = { 0 };
	long long		 users = 0, active = 0, depts = 0, age;

	check_backend(db);
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
			report(age > config_int(CFG_HEALTH_SYNC_AGE) ? "warn" :
			    "ok", "sync",
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

/*
 * The checks of GET /dingauth/healthz, as it would answer now (into
 * *health for --json). A database that cannot be written fails doctor;
 * the others are warnings here (a new installation has not synced yet).
 */
static void
check_health(struct db *db, struct health *h)
{
	const struct health_result	*r;
	int				 i;

	health_run(db, h);
	for (i = 0; i < HEALTH__MAX; i++) {
		r = &h->check[i];
		report(r->ok ? "ok" : i == HEALTH_DATABASE ? "FAIL" : "warn",
		    "health", "%s: %s", health_check_name(i), r->text);
	}
}

/*
 * Stream mode (DINGAUTH_EVENT_MODE=stream): the open call works with the
 * configured app (a ticket is handed out, and left unused: it expires on
 * its own), and a reminder of what the console must say. Needs no
 * database. Nothing in http mode.
 */
static void
check_stream(void)
{
	struct da_error	 err = { 0 };
	char		 endpoint[DT_STREAM_ENDPOINT_MAX];
	char		 ticket[DT_STREAM_TICKET_MAX];

	if (cfg()->num[CFG_EVENT_MODE] != CFG_EVENT_STREAM)
		return;
	if (!config_is_set(CFG_APP_KEY) || !config_is_set(CFG_CORP_SECRET))
		report("FAIL", "stream", "DINGAUTH_EVENT_MODE=stream needs "
		    "DINGTALK_APP_KEY and DINGTALK_CORP_SECRET");
	else if (dt_stream_open(endpoint, sizeof(endpoint), ticket,
	    sizeof(ticket), &err) != DA_OK)
		report("FAIL", "stream", "the Stream open call at %s: %s",
		    cfg()->str[CFG_API_URL], err.msg);
	else
		report("ok", "stream", "the Stream open call works: endpoint "
		    "%s", endpoint);
	crypto_cleanse(ticket, sizeof(ticket));
	report("warn", "stream", "the developer console's push method "
	    "(事件与回调 -> 推送方式) must be Stream mode, saved while "
	    "dingauth worker runs; callback.fcgi is then unused");
}

static int
doctor(const struct cmd_sub *sub, const struct cmd_args *a)
{
	struct da_error	 err = { 0 };
	struct health	 h;
	struct db	*db = NULL;
	const char	*file = getenv("DINGAUTH_CONFIG");
	json		*doc;
	int		 as_json = a->opt[OPT_JSON] != NULL;

	memset(&h, 0, sizeof(h));
	if (as_json)
		checks = json_new_array();
	if (file == NULL || *file == '\0')
		file = DEFAULT_CONFIG;
	if (config_load(0, &err) != DA_OK)
		report("FAIL", "config", "%s", err.msg);
	else if (access(file, F_OK) == -1)
		/* The programs would run on defaults: not a setup. */
		report("FAIL", "config", "%s: %s: run 'dingauth init' (or name "
		    "the file in DINGAUTH_CONFIG)", file, strerror(errno));
	else {
		check_config(file);
		check_database_files(cfg()->str[CFG_DB]);
		if (db_open(cfg()->str[CFG_DB], &db, &err) != DA_OK)
			report("FAIL", "database", "%s: %s",
			    db_is_server(cfg()->str[CFG_DB]) ? "PostgreSQL" :
			    cfg()->str[CFG_DB], err.msg);
		else {
			check_database(db);
			check_health(db, &h);
			check_dingtalk(db);
		}
		db_close(db);
		check_stream();
	}
	if (!as_json) {
		printf("%d failed, %d warnings\n", failures, warnings);
		return failures ? EXIT_FAIL : EXIT_OK;
	}
	doc = json_new_object();
	json_add_str(doc, "status", failures ? "fail" : warnings ? "warn" :
	    "ok");
	json_add_int(doc, "failed", failures);
	json_add_int(doc, "warnings", warnings);
	json_add(doc, "checks", checks);
	if (backend != NULL)
		json_add(doc, "backend", backend);
	else
		json_add_null(doc, "backend");
	backend = NULL;
	if (h.check[HEALTH_DATABASE].text[0] != '\0')
		json_add(doc, "health", health_json(&h));
	else
		json_add_null(doc, "health");
	cmd_print_json(doc);
	json_free(doc);
	checks = NULL;
	return failures ? EXIT_FAIL : EXIT_OK;
}

static const struct cmd_sub doctor_sub = {
	.run = doctor,
	.opts = CMD_OPT(OPT_JSON),
};

static const struct cmd_group group = {
	.name = "doctor",
	.usage = "usage: dingauth doctor [--json]\n\nChecks the "
	    "configuration and its file, the database (its engine and\n"
	    "version, reachability, schema version, who holds the worker and "
	    "sync locks;\nSQLite: its files' modes and owners), the health "
	    "checks of GET /dingauth/healthz,\nDingTalk reachability and "
	    "permissions, the clock, and in stream mode the Stream\nopen "
	    "call. Run it as the user the programs run as. --json: one "
	    "document\n{status, failed, warnings, checks: [{status, area, "
	    "message}], health,\nbackend: {engine, version, where, reachable, "
	    "round_trip_ms, schema_version,\nschema_latest, locks: [{name, "
	    "held, holder}]}}. Exit 1 if any check failed.\n",
	.subs = &doctor_sub,
	.nsubs = 1,
};

int
cmd_doctor(int argc, char **argv)
{
	return cmd_run(&group, &doctor_sub, argc, argv);
}
