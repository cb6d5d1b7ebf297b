/*
 * dingauth init [--config FILE] [--db FILE] [--group GROUP] [--owner USER]:
 * the first command an operator runs (docs/contract.md). Writes a
 * commented configuration with fresh callback keys when none exists
 * (never overwriting one), creates the database's directory and the
 * database with private modes, applies the migrations, and prints what
 * to do next. Running it again changes nothing but pending migrations.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "config.h"
#include "crypto.h"
#include "db.h"
#include "metrics.h"

#define INIT_DEFAULT_CONFIG	"/etc/dingauth.conf"
#define INIT_DEFAULT_ACCOUNT	"www-data"	/* the web server's user */
#define INIT_AES_KEY_LEN	43	/* EncodingAESKey: docs/dingtalk.md §a.1 */
#define INIT_TOKEN_LEN		32	/* 6 to 32 work everywhere: §a.6 */
#define INIT_FILE_BUF		16384	/* the whole file: wiped after */
#define INIT_CONFIG_MODE	0640
#define INIT_DIR_MODE		0750
#define INIT_DB_MODE		0640

/* The sections of the written configuration, in order. */
enum section {
	SEC_APP,
	SEC_SITE,
	SEC_CALLBACK,
	SEC_DATABASE,
	SEC_LOGIN,
	SEC_RULE,
	SEC_SYNC,
	SEC_DINGTALK,
	SEC_LOG,
	SEC__MAX
};

static const char *const section_titles[SEC__MAX] = {
	[SEC_APP] = "The DingTalk apps (developer console: credentials)",
	[SEC_SITE] = "This site",
	[SEC_CALLBACK] = "The address-book callback (written by dingauth "
	    "init; keep them secret)",
	[SEC_DATABASE] = "The database",
	[SEC_LOGIN] = "Login and sessions",
	[SEC_RULE] = "The authorizer's access rule (one per instance)",
	[SEC_SYNC] = "Directory sync",
	[SEC_DINGTALK] = "Talking to DingTalk",
	[SEC_LOG] = "Logging",
};

/*
 * What the file says about each key: its section, whether the operator
 * must fill it, what it means, and its default when that is not the
 * plain built-in value (config_default). Every key has a row: a missing
 * one shows as a NULL meaning (the test lists config.h's keys).
 */
static const struct key_doc {
	enum section	 sec;
	const char	*required;	/* NULL, or when it is required */
	const char	*meaning;	/* lines separated by '\n' */
	const char	*def;		/* NULL: config_default() or none */
} key_docs[CFG__MAX] = {
	[CFG_CORP_ID] = { SEC_APP, "REQUIRED",
	    "The company's CorpId.", NULL },
	[CFG_APP_KEY] = { SEC_APP, "REQUIRED",
	    "The internal app's AppKey (corp access token, directory API;\n"
	    "OAuth2 client_id for DINGAUTH_LOGIN_FLOW = oauth2).", NULL },
	[CFG_CORP_SECRET] = { SEC_APP, "REQUIRED",
	    "The internal app's AppSecret. Secret.", NULL },
	[CFG_APP_ID] = { SEC_APP, "REQUIRED for the sns and sns_bycode flows",
	    "The QR-login app's appid.", NULL },
	[CFG_APP_SECRET] = { SEC_APP,
	    "REQUIRED for the sns and sns_bycode flows",
	    "The QR-login app's appSecret. Secret.", NULL },
	[CFG_PUBLIC_URL] = { SEC_SITE, "REQUIRED",
	    "The site's external base URL, e.g. https://erp.example.com.\n"
	    "DingTalk's login redirect URL is this + /dingauth/exchange.",
	    NULL },
	[CFG_BASE_PATH] = { SEC_SITE, NULL,
	    "Where the login pages and responders are mounted.", NULL },
	[CFG_COOKIE_SECURE] = { SEC_SITE, NULL,
	    "1 sets Secure on cookies; 0 only for plain-http test setups.",
	    NULL },
	[CFG_AES_TOKEN] = { SEC_CALLBACK, NULL,
	    "The callback EncodingAESKey: 43 characters of [A-Za-z0-9].",
	    "none (generated)" },
	[CFG_TOKEN] = { SEC_CALLBACK, NULL,
	    "The callback signing token. Secret.", "none (generated)" },
	[CFG_CALLBACK_RECEIVER] = { SEC_CALLBACK, NULL,
	    "The id inside callback envelopes: the CorpId for a subscription\n"
	    "made by 'dingauth callback register', the AppKey for the\n"
	    "developer console's HTTP push.", "DINGTALK_CORP_ID" },
	[CFG_CALLBACK_URL] = { SEC_CALLBACK, NULL,
	    "The public callback URL registered with DingTalk.",
	    "DINGAUTH_PUBLIC_URL + /dingauth/callback" },
	[CFG_CALLBACK_WINDOW] = { SEC_CALLBACK, NULL,
	    "Accepted age of a callback's timestamp, seconds (0: no check).",
	    NULL },
	[CFG_DB] = { SEC_DATABASE, NULL,
	    "The SQLite database. Its directory must be writable by the\n"
	    "programs' user: the WAL files live beside it.", NULL },
	[CFG_LOGIN_FLOW] = { SEC_LOGIN, NULL,
	    "oauth2 (login.dingtalk.com + v1.0 API: what DingTalk documents\n"
	    "for apps created today), sns (sns_authorize +\n"
	    "get_persistent_code, for older QR-login apps) or sns_bycode\n"
	    "(getuserinfo_bycode).", NULL },
	[CFG_UNKNOWN_USER] = { SEC_LOGIN, NULL,
	    "A DingTalk colleague with no row in our directory: deny, review\n"
	    "(recorded for 'dingauth requests') or admit (fetched and "
	    "added).", NULL },
	[CFG_SESSION_TTL] = { SEC_LOGIN, NULL,
	    "Absolute session lifetime, seconds.", NULL },
	[CFG_SESSION_IDLE] = { SEC_LOGIN, NULL,
	    "Idle session lifetime, seconds.", NULL },
	[CFG_REQUIRE_DEPTS] = { SEC_RULE, NULL,
	    "Comma-separated department ids (sub-departments included).",
	    NULL },
	[CFG_REQUIRE_USERS] = { SEC_RULE, NULL,
	    "Comma-separated userids. With neither rule set every active\n"
	    "employee passes.", NULL },
	[CFG_SYNC_QPS] = { SEC_SYNC, NULL,
	    "Requests per second per API (DingTalk allows 20).", NULL },
	[CFG_SYNC_CONCURRENCY] = { SEC_SYNC, NULL,
	    "Requests in flight.", NULL },
	[CFG_SYNC_MAX_DEACTIVATE] = { SEC_SYNC, NULL,
	    "Percentage of active users a sync may deactivate without "
	    "--force.", NULL },
	[CFG_SYNC_AT] = { SEC_SYNC, NULL,
	    "Local time (HH:MM) of dingauth worker's daily full sync, or off.",
	    NULL },
	[CFG_EVENT_MODE] = { SEC_CALLBACK, NULL,
	    "How address-book events arrive: http (DingTalk pushes to\n"
	    "callback.fcgi) or stream (dingauth worker holds DingTalk's Stream\n"
	    "connection: no public URL; the console's push method must be\n"
	    "Stream).", NULL },
	[CFG_STREAM_IDLE] = { SEC_CALLBACK, NULL,
	    "Stream mode: seconds without a frame before the worker pings\n"
	    "the link (1 to 600); no answer soon after and it reconnects.",
	    NULL },
	[CFG_RETENTION_DAYS] = { SEC_SYNC, NULL,
	    "Days finished callback events and decided login requests are "
	    "kept (dingauth worker prunes them).", NULL },
	[CFG_OAPI_URL] = { SEC_DINGTALK, NULL,
	    "DingTalk's old API endpoint.", NULL },
	[CFG_API_URL] = { SEC_DINGTALK, NULL,
	    "DingTalk's v1.0 API endpoint.", NULL },
	[CFG_LOGIN_URL] = { SEC_DINGTALK, NULL,
	    "DingTalk's login endpoint.", NULL },
	[CFG_DDLOGIN_JS] = { SEC_DINGTALK, NULL,
	    "The embedded-QR script.", "the official script for the flow" },
	[CFG_JSAPI_JS] = { SEC_DINGTALK, NULL,
	    "DingTalk's JSAPI script (dingtalk.open.js), loaded by the in-app\n"
	    "login page inside the DingTalk client.", NULL },
	[CFG_CA_FILE] = { SEC_DINGTALK, NULL,
	    "CA bundle for TLS to DingTalk (verification is always on).",
	    "the system's" },
	[CFG_HTTP_TIMEOUT] = { SEC_DINGTALK, NULL,
	    "Whole-call timeout, milliseconds.", NULL },
	[CFG_HTTP_CONNECT_TIMEOUT] = { SEC_DINGTALK, NULL,
	    "Connect timeout, milliseconds.", NULL },
	[CFG_HTTP_RETRIES] = { SEC_DINGTALK, NULL,
	    "Retries of a call answered busy or rate limited.", NULL },
	[CFG_LANG] = { SEC_SITE, NULL,
	    "The pages' language: auto (from the browser's Accept-Language;\n"
	    "Chinese when it names neither), zh-CN or en.", NULL },
	[CFG_TEMPLATE_DIR] = { SEC_SITE, NULL,
	    "Branding: a directory whose files replace the built-in page\n"
	    "templates, message catalogs and login.css of the same name\n"
	    "(a broken one is logged and the built-in one used).",
	    "none: the built-in pages" },
	[CFG_LOG_LEVEL] = { SEC_LOG, NULL,
	    "error, warn, info or debug (to stderr).", NULL },
	[CFG_AGENT_ID] = { SEC_APP, NULL,
	    "The internal app's AgentId: review notifications are sent as "
	    "its work\nnotifications (needs DINGAUTH_NOTIFY_USERIDS too).",
	    "none: no notifications" },
	[CFG_NOTIFY_USERIDS] = { SEC_LOGIN, NULL,
	    "Comma-separated userids told by DingTalk work notification "
	    "when a login\nawaits review (DINGAUTH_UNKNOWN_USER = review; "
	    "sent by dingauth worker).", "none" },
	[CFG_LOG_FORMAT] = { SEC_LOG, NULL,
	    "text (one line per message) or json (one JSON object per line; "
	    "a login's\nline carries the fields of its audit row).", NULL },
	[CFG_AUDIT_DAYS] = { SEC_LOG, NULL,
	    "Days audit rows (dingauth audit) are kept; dingauth worker "
	    "prunes older ones.", NULL },
	[CFG_METRICS_ALLOW] = { SEC_LOG, NULL,
	    "Client networks (CIDR list) allowed to read GET "
	    "/dingauth/metrics; others\nget 403.", NULL },
	[CFG_METRICS_FILE] = { SEC_LOG, NULL,
	    "The file this host's programs count in (GET /dingauth/metrics):"
	    "\neach web node has its own.", "DINGAUTH_DB's file + .metrics; "
	    "with PostgreSQL\n# /var/lib/dingauth/dingauth.metrics" },
	[CFG_HEALTH_SYNC_AGE] = { SEC_LOG, NULL,
	    "GET /dingauth/healthz fails when the last complete directory "
	    "sync is older\nthan this, seconds.", NULL },
	[CFG_HEALTH_EVENT_AGE] = { SEC_LOG, NULL,
	    "GET /dingauth/healthz fails when an address-book event has "
	    "waited longer\nthan this, seconds.", NULL },
};

static int	init_command(const struct cmd_sub *, const struct cmd_args *);

static const struct cmd_sub init_sub = {
	.run = init_command,
	.opts = CMD_OPT(OPT_CONFIG) | CMD_OPT(OPT_DB) | CMD_OPT(OPT_GROUP) |
	    CMD_OPT(OPT_OWNER),
};

static const struct cmd_group group = {
	.name = "init",
	.usage = "usage: dingauth init [--config FILE] [--db FILE] "
	    "[--group GROUP] [--owner USER]\n\n"
	    "Writes a commented configuration with a fresh DINGTALK_AES_TOKEN "
	    "and\nDINGTALK_TOKEN (mode 0640) unless the file exists; an "
	    "existing one is never\nchanged. Then creates the database's "
	    "directory (0750) and the database\n(0640), applies the "
	    "migrations, and prints the next steps. Safe to run\nagain, e.g. "
	    "after an upgrade.\n\n"
	    "  --config FILE  the configuration (default: DINGAUTH_CONFIG, "
	    "else\n                 /etc/dingauth.conf)\n"
	    "  --db FILE      DINGAUTH_DB written into a new configuration\n"
	    "  --group GROUP  group of the configuration, of a new database "
	    "directory\n                 and of the database (default: the "
	    "directory's if it exists,\n                 else www-data if "
	    "that group exists)\n"
	    "  --owner USER   owner of a new database directory and of the "
	    "database:\n                 the programs' user (default: the "
	    "directory's if it exists,\n                 else www-data when "
	    "run as root and that user exists)\n",
	.subs = &init_sub,
	.nsubs = 1,
};

/* Who gets the database and the configuration's group. */
struct owners {
	uid_t		 uid;		/* (uid_t)-1: leave as created */
	gid_t		 gid;		/* (gid_t)-1: leave as created */
};

static void
print_comment(FILE *f, const char *text)
{
	const char	*p = text, *nl;

	while (*p != '\0') {
		nl = strchr(p, '\n');
		fprintf(f, "# %.*s\n", (int)(nl != NULL ? nl - p : (int)strlen(p)),
		    p);
		p = nl != NULL ? nl + 1 : p + strlen(p);
	}
}

/* One key: its comment, then "KEY = value" or the commented default. */
static void
print_key(FILE *f, enum cfg_key k, const char *value)
{
	const struct key_doc	*d = &key_docs[k];
	const char		*def = d->def != NULL ? d->def :
				    config_default(k);

	print_comment(f, d->meaning);
	if (d->required != NULL)
		fprintf(f, "# %s.\n", d->required);
	else
		fprintf(f, "# Default: %s.\n", def != NULL ? def : "none");
	if (value != NULL)
		fprintf(f, "%s = %s\n\n", config_name(k), value);
	else if (d->def == NULL && def != NULL)
		fprintf(f, "#%s = %s\n\n", config_name(k), def);
	else
		fprintf(f, "#%s =\n\n", config_name(k));
}

/* The whole file; values[k] non-NULL for the keys set in it. */
static void
print_config(FILE *f, const char *path, const char *values[CFG__MAX])
{
	char		 when[32] = "?";
	time_t		 now = time(NULL);
	struct tm	 tm;
	int		 s, k;

	if (gmtime_r(&now, &tm) != NULL)
		strftime(when, sizeof(when), "%Y-%m-%d", &tm);
	fprintf(f, "# %s: dingauth's configuration, written by "
	    "'dingauth init' on %s.\n"
	    "# KEY = value lines; '#' starts a comment. An environment "
	    "variable of the\n# same name overrides a key. Keys marked "
	    "REQUIRED must be filled in (remove\n# the '#'); "
	    "'dingauth doctor' checks everything. See dingauth.conf(5).\n"
	    "# It holds secrets: keep it mode 0640, readable by the "
	    "programs' group only.\n\n", path, when);
	for (s = 0; s < SEC__MAX; s++) {
		fprintf(f, "## %s\n\n", section_titles[s]);
		for (k = 0; k < CFG__MAX; k++)
			if (key_docs[k].sec == (enum section)s &&
			    key_docs[k].meaning != NULL)
				print_key(f, (enum cfg_key)k, values[k]);
	}
}

/*
 * Write a new configuration at path, or leave an existing one alone
 * (*created = 0). The file is written beside its final name and linked
 * into place, so a concurrent init or an existing file is never
 * overwritten and nobody sees half a file.
 */
static int
write_config(const char *path, const char *db, gid_t gid, int *created)
{
	const char	*values[CFG__MAX] = { 0 };
	char		 tmp[PATH_MAX], aes[INIT_AES_KEY_LEN + 1];
	char		 token[INIT_TOKEN_LEN + 1];
	static char	 buf[INIT_FILE_BUF];	/* stdio's, holding the keys */
	FILE		*f = NULL;
	int		 fd = -1, rc = EXIT_FAIL;

	*created = 0;
	if (access(path, F_OK) == 0)
		return EXIT_OK;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.init-%ld", path,
	    (long)getpid()) >= sizeof(tmp))
		return cmd_fail("%s: path too long", path);
	crypto_random_alnum(aes, INIT_AES_KEY_LEN);
	crypto_random_alnum(token, INIT_TOKEN_LEN);
	values[CFG_AES_TOKEN] = aes;
	values[CFG_TOKEN] = token;
	values[CFG_DB] = db;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    INIT_CONFIG_MODE);
	if (fd == -1) {
		cmd_fail("%s: %s%s", tmp, strerror(errno), errno == ENOENT ?
		    " (create its directory first)" : "");
		goto out;
	}
	if ((gid != (gid_t)-1 && fchown(fd, (uid_t)-1, gid) == -1) ||
	    fchmod(fd, INIT_CONFIG_MODE) == -1 ||
	    (f = fdopen(fd, "w")) == NULL) {
		cmd_fail("%s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	setvbuf(f, buf, _IOFBF, sizeof(buf));
	print_config(f, path, values);
	if (fflush(f) != 0 || fsync(fileno(f)) == -1) {
		cmd_fail("%s: %s", tmp, strerror(errno));
		goto out;
	}
	if (link(tmp, path) == -1) {
		if (errno == EEXIST)
			rc = EXIT_OK;	/* someone else wrote it: keep theirs */
		else
			cmd_fail("%s: %s", path, strerror(errno));
		goto out;
	}
	*created = 1;
	rc = EXIT_OK;
out:
	if (f != NULL)
		fclose(f);
	if (fd != -1)
		close(fd);
	unlink(tmp);
	crypto_cleanse(buf, sizeof(buf));
	crypto_cleanse(aes, sizeof(aes));
	crypto_cleanse(token, sizeof(token));
	return rc;
}

/* mkdir -p dir: missing parents 0755, dir itself INIT_DIR_MODE. */
static int
make_dirs(const char *dir, const struct owners *o, int *created)
{
	char	 buf[PATH_MAX];
	char	*p;

	*created = 0;
	if ((size_t)snprintf(buf, sizeof(buf), "%s", dir) >= sizeof(buf))
		return cmd_fail("%s: path too long", dir);
	for (p = buf + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir(buf, 0755) == 0) {
			if (chmod(buf, 0755) == -1)	/* past our umask */
				return cmd_fail("%s: %s", buf,
				    strerror(errno));
		} else if (errno != EEXIST)
			return cmd_fail("%s: %s", buf, strerror(errno));
		*p = '/';
	}
	if (mkdir(buf, INIT_DIR_MODE) == -1) {
		if (errno != EEXIST)
			return cmd_fail("%s: %s", buf, strerror(errno));
		return EXIT_OK;
	}
	*created = 1;
	if (chmod(buf, INIT_DIR_MODE) == -1 ||
	    chown(buf, o->uid, o->gid) == -1)
		return cmd_fail("%s: %s", buf, strerror(errno));
	return EXIT_OK;
}

/*
 * path and its -wal, -shm and the shared counters' file (metrics.h),
 * where present: owners, no "other" bits.
 */
static int
fix_db_files(const char *path, const struct owners *o)
{
	static const char *const suffixes[] = { "", "-wal", "-shm",
		METRICS_SUFFIX };
	struct stat	 st;
	char		 name[PATH_MAX];
	size_t		 i;

	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		snprintf(name, sizeof(name), "%s%s", path, suffixes[i]);
		if (lstat(name, &st) == -1) {
			if (errno == ENOENT)
				continue;
			return cmd_fail("%s: %s", name, strerror(errno));
		}
		if (!S_ISREG(st.st_mode))
			return cmd_fail("%s: not a regular file", name);
		if (lchown(name, o->uid, o->gid) == -1 ||
		    ((st.st_mode & 07) != 0 &&
		    chmod(name, st.st_mode & 0770) == -1))
			return cmd_fail("%s: %s", name, strerror(errno));
	}
	return EXIT_OK;
}

/* 1 if gid is one of our supplementary groups. */
static int
in_group(gid_t gid)
{
	gid_t	 groups[NGROUPS_MAX];
	int	 i, n;

	if ((n = getgroups(NGROUPS_MAX, groups)) == -1)
		return 0;
	for (i = 0; i < n; i++)
		if (groups[i] == gid)
			return 1;
	return 0;
}

/*
 * The owners: --owner and --group, else those of an existing database
 * directory, else www-data where it exists (the owner only when root).
 */
static int
resolve_owners(const struct cmd_args *a, const char *dir, struct owners *o)
{
	const char	*user = a->opt[OPT_OWNER], *grp = a->opt[OPT_GROUP];
	struct passwd	*pw;
	struct group	*gr;
	struct stat	 st;
	int		 have_dir = stat(dir, &st) == 0 && S_ISDIR(st.st_mode);

	o->uid = (uid_t)-1;
	o->gid = (gid_t)-1;
	if (user != NULL) {
		if ((pw = getpwnam(user)) == NULL)
			return cmd_fail("--owner %s: no such user", user);
		o->uid = pw->pw_uid;
	} else if (have_dir)
		o->uid = st.st_uid;
	else if (geteuid() == 0 && (pw = getpwnam(INIT_DEFAULT_ACCOUNT)))
		o->uid = pw->pw_uid;
	if (grp != NULL) {
		if ((gr = getgrnam(grp)) == NULL)
			return cmd_fail("--group %s: no such group", grp);
		o->gid = gr->gr_gid;
	} else if (have_dir)
		o->gid = st.st_gid;
	else if ((gr = getgrnam(INIT_DEFAULT_ACCOUNT)) != NULL)
		o->gid = gr->gr_gid;
	/* Not root: only our own uid, and a group we are in, are ours. */
	if (geteuid() != 0 && o->uid != geteuid())
		o->uid = (uid_t)-1;
	if (geteuid() != 0 && o->gid != (gid_t)-1 && grp == NULL &&
	    o->gid != getegid() && !in_group(o->gid))
		o->gid = (gid_t)-1;
	return EXIT_OK;
}

/* The configuration's group: --group, else www-data where it exists. */
static int
config_group(const struct cmd_args *a, gid_t *gid)
{
	const char	*grp = a->opt[OPT_GROUP];
	struct group	*gr;

	*gid = (gid_t)-1;
	if (grp != NULL) {
		if ((gr = getgrnam(grp)) == NULL)
			return cmd_fail("--group %s: no such group", grp);
		*gid = gr->gr_gid;
	} else if ((gr = getgrnam(INIT_DEFAULT_ACCOUNT)) != NULL &&
	    (geteuid() == 0 || gr->gr_gid == getegid() ||
	    in_group(gr->gr_gid)))
		*gid = gr->gr_gid;
	return EXIT_OK;
}

static void
warn_if_open(const char *what, const char *path)
{
	struct stat	 st;

	if (stat(path, &st) == 0 && (st.st_mode & 07) != 0)
		printf("warning: %s %s is mode %04o: others can read it "
		    "(chmod o-rwx)\n", what, path, (unsigned)(st.st_mode & 07777));
}

static void
print_next_steps(const char *config)
{
	const char	*url = cfg()->str[CFG_PUBLIC_URL];
	int		 oauth2 = cfg()->login_flow == CFG_FLOW_OAUTH2;

	printf("\nNext steps:\n"
	    " 1. In DingTalk's developer console, fill in %s:\n"
	    "    a. the internal app's AppKey and AppSecret: DINGTALK_APP_KEY, "
	    "DINGTALK_CORP_SECRET\n"
	    "    b. the company's CorpId: DINGTALK_CORP_ID\n", config);
	if (!oauth2)
		printf("    c. the QR-login app's appid and appSecret: "
		    "DINGTALK_APP_ID, DINGTALK_APP_SECRET\n");
	else
		printf("    c. (DINGAUTH_LOGIN_FLOW = oauth2: the internal "
		    "app logs people in)\n");
	printf("    d. the site's address: DINGAUTH_PUBLIC_URL, and in the "
	    "console the %s's\n       login redirect URL: %s%s/exchange\n",
	    oauth2 ? "internal app" : "QR-login app",
	    *url != '\0' ? url : "DINGAUTH_PUBLIC_URL",
	    cfg()->str[CFG_BASE_PATH]);
	printf(" 2. Configure the web server (lighttpd, Apache or nginx) from "
	    "the examples\n    (share/dingauth/examples/ where dingauth is "
	    "installed; deploy/ in the source).\n"
	    " 3. dingauth doctor                check the whole setup\n"
	    " 4. dingauth sync                  copy the company directory; "
	    "then nightly\n");
	if (cfg()->num[CFG_EVENT_MODE] == CFG_EVENT_STREAM)
		printf(" 5. address-book events by Stream (DINGAUTH_EVENT_MODE = "
		    "stream): in the console\n"
		    "    set the event push method to Stream mode; "
		    "callback.fcgi is then unused\n");
	else
		printf(" 5. dingauth callback register     once the web server "
		    "answers %s/callback\n"
		    "    (address-book events: leavers are then out at once;"
		    " a site DingTalk\n"
		    "    cannot reach sets DINGAUTH_EVENT_MODE=stream "
		    "instead)\n", cfg()->str[CFG_BASE_PATH]);
	printf(" 6. start the worker: systemctl enable --now dingauth-worker\n"
	    "    (or dingauth worker --once from cron): events%s, the daily "
	    "sync, pruning\n", cfg()->num[CFG_EVENT_MODE] == CFG_EVENT_STREAM ?
	    " (it holds the Stream link)" : "");
}

/* Create or open the database, migrated, with its owners and modes. */
static int
init_database(const struct cmd_args *a)
{
	struct da_error	 err = { 0 };
	struct owners	 o;
	struct db	*db = NULL;
	const char	*path = cfg()->str[CFG_DB];
	char		 dir[PATH_MAX], *slash;
	int		 rc, made_dir, existed;

	if (db_is_server(path)) {
		/* PostgreSQL: the database exists; its schema is ours. */
		if (db_create(path, INIT_DB_MODE, &db, &err) != DA_OK)
			return cmd_fail("database: %s", err.msg);
		printf("database: PostgreSQL, schema version %d\n",
		    db_schema_version(db));
		db_close(db);
		return EXIT_OK;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) == NULL)
		return cmd_fail("DINGAUTH_DB %s: not an absolute path", path);
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	if ((rc = resolve_owners(a, dir, &o)) != EXIT_OK ||
	    (rc = make_dirs(dir, &o, &made_dir)) != EXIT_OK)
		return rc;
	printf("directory %s: %s\n", dir, made_dir ? "created" : "exists");
	existed = access(path, F_OK) == 0;
	if (db_create(path, INIT_DB_MODE, &db, &err) != DA_OK)
		return cmd_fail("database %s: %s", path, err.msg);
	/* The counters' file too, so the programs' user owns it. */
	if (metrics_ready() == -1)
		printf("warning: %s could not be made: no metrics\n",
		    metrics_path(dir, sizeof(dir)));
	rc = fix_db_files(path, &o);
	printf("database %s: %s, schema version %d\n", path,
	    existed ? "exists" : "created", db_schema_version(db));
	db_close(db);
	if (rc == EXIT_OK)
		warn_if_open("directory", dir);
	return rc;
}

static int
init_command(const struct cmd_sub *sub, const struct cmd_args *a)
{
	struct da_error	 err = { 0 };
	const char	*path = a->opt[OPT_CONFIG];
	gid_t		 gid;
	int		 rc, created;
	char		 shown[1024];

	if (path == NULL && (path = getenv("DINGAUTH_CONFIG")) != NULL &&
	    *path == '\0')
		path = NULL;
	if (path == NULL)
		path = INIT_DEFAULT_CONFIG;
	if (a->opt[OPT_DB] != NULL &&
	    config_check(CFG_DB, a->opt[OPT_DB], &err) != DA_OK)
		return cmd_usage("--db: %s", err.msg);
	umask(027);
	if ((rc = config_group(a, &gid)) != EXIT_OK ||
	    (rc = write_config(path, a->opt[OPT_DB], gid, &created)) != EXIT_OK)
		return rc;
	printf("configuration %s: %s\n", path, created ? "written, with a "
	    "new DINGTALK_AES_TOKEN and DINGTALK_TOKEN" : "exists, left as "
	    "it is");
	warn_if_open("configuration", path);
	if (setenv("DINGAUTH_CONFIG", path, 1) == -1)
		return cmd_fail("setenv: %s", strerror(errno));
	if (config_load(0, &err) != DA_OK)
		return cmd_fail("configuration: %s", err.msg);
	if (!created && a->opt[OPT_DB] != NULL &&
	    strcmp(a->opt[OPT_DB], cfg()->str[CFG_DB]) != 0)
		printf("warning: --db ignored: %s names %s\n", path,
		    db_redact(cfg()->str[CFG_DB], shown, sizeof(shown)));
	if ((rc = init_database(a)) != EXIT_OK)
		return rc;
	print_next_steps(path);
	return EXIT_OK;
}

int
cmd_init(int argc, char **argv)
{
	return cmd_run(&group, &init_sub, argc, argv);
}
