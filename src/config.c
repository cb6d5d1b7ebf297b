#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "config.h"
#include "log.h"
#include "mem.h"

#define CFG_DEFAULT_FILE	"/etc/dingauth.conf"
#define CFG_LINE_MAX		4096

struct cfg_def {
	const char	*name;
	enum cfg_type	 type;
	long long	 min, max;	/* CFG_T_INT bounds; CFG_T_ENUM: 0, n */
	const char *const *choices;	/* CFG_T_ENUM: names by index */
	const char	*def;		/* default text, NULL if none */
	unsigned	 required;	/* CFG_NEED_* that require it */
};

#define NEED_SNS	0x100u	/* derived: the login flow uses the sns app */
#define NEED_OAUTH2	0x200u	/* derived: the login flow is oauth2 */

/* The one list of each enum key's names, by the enums of config.h. */
static const char *const flow_names[CFG_FLOW__MAX] = {
	[CFG_FLOW_SNS] = "sns",
	[CFG_FLOW_SNS_BYCODE] = "sns_bycode",
	[CFG_FLOW_OAUTH2] = "oauth2",
};

/* DINGTALK_DDLOGIN_JS by flow: DDLogin, or DTFrameLogin for oauth2. */
static const char *const flow_js[CFG_FLOW__MAX] = {
	[CFG_FLOW_SNS] =
	    "https://g.alicdn.com/dingding/dinglogin/0.0.5/ddLogin.js",
	[CFG_FLOW_SNS_BYCODE] =
	    "https://g.alicdn.com/dingding/dinglogin/0.0.5/ddLogin.js",
	[CFG_FLOW_OAUTH2] =
	    "https://g.alicdn.com/dingding/h5-dingtalk-login/0.21.0/ddlogin.js",
};

static const char *const unknown_names[CFG_UNKNOWN__MAX] = {
	[CFG_UNKNOWN_DENY] = "deny",
	[CFG_UNKNOWN_REVIEW] = "review",
	[CFG_UNKNOWN_ADMIT] = "admit",
};

static const char *const event_mode_names[CFG_EVENT__MAX] = {
	[CFG_EVENT_HTTP] = "http",
	[CFG_EVENT_STREAM] = "stream",
};

static const char *const lang_names[CFG_LANG__MAX] = {
	[CFG_LANG_AUTO] = "auto",
	[CFG_LANG_ZH_CN] = "zh-CN",
	[CFG_LANG_EN] = "en",
};

static const struct cfg_def defs[CFG__MAX] = {
	[CFG_CORP_ID] = { "DINGTALK_CORP_ID", CFG_T_STRING, 0, 0, NULL, NULL,
	    CFG_NEED_EXCHANGE | CFG_NEED_CALLBACK | CFG_NEED_DIRECTORY },
	[CFG_APP_KEY] = { "DINGTALK_APP_KEY", CFG_T_STRING, 0, 0, NULL, NULL,
	    CFG_NEED_EXCHANGE | CFG_NEED_DIRECTORY | NEED_OAUTH2 },
	[CFG_CORP_SECRET] = { "DINGTALK_CORP_SECRET", CFG_T_SECRET, 0, 0, NULL,
	    NULL, CFG_NEED_EXCHANGE | CFG_NEED_DIRECTORY },
	[CFG_APP_ID] = { "DINGTALK_APP_ID", CFG_T_STRING, 0, 0, NULL, NULL,
	    NEED_SNS },
	[CFG_APP_SECRET] = { "DINGTALK_APP_SECRET", CFG_T_SECRET, 0, 0, NULL,
	    NULL, NEED_SNS },
	[CFG_AES_TOKEN] = { "DINGTALK_AES_TOKEN", CFG_T_AESKEY, 0, 0, NULL,
	    NULL, CFG_NEED_CALLBACK },
	[CFG_TOKEN] = { "DINGTALK_TOKEN", CFG_T_SECRET, 0, 0, NULL, NULL,
	    CFG_NEED_CALLBACK },
	[CFG_CALLBACK_RECEIVER] = { "DINGAUTH_CALLBACK_RECEIVER", CFG_T_STRING,
	    0, 0, NULL, NULL, 0 },
	[CFG_DB] = { "DINGAUTH_DB", CFG_T_DB, 0, 0, NULL,
	    "/var/lib/dingauth/dingauth.db", 0 },
	[CFG_PUBLIC_URL] = { "DINGAUTH_PUBLIC_URL", CFG_T_URL, 0, 0, NULL,
	    NULL, CFG_NEED_LOGIN | CFG_NEED_EXCHANGE },
	[CFG_LOGIN_FLOW] = { "DINGAUTH_LOGIN_FLOW", CFG_T_ENUM, 0,
	    CFG_FLOW__MAX, flow_names, "oauth2", 0 },
	[CFG_UNKNOWN_USER] = { "DINGAUTH_UNKNOWN_USER", CFG_T_ENUM, 0,
	    CFG_UNKNOWN__MAX, unknown_names, "review", 0 },
	[CFG_COOKIE_SECURE] = { "DINGAUTH_COOKIE_SECURE", CFG_T_BOOL, 0, 1,
	    NULL, "1", 0 },
	[CFG_SESSION_TTL] = { "DINGAUTH_SESSION_TTL", CFG_T_INT, 60,
	    31 * 86400, NULL, "28800", 0 },
	[CFG_SESSION_IDLE] = { "DINGAUTH_SESSION_IDLE", CFG_T_INT, 60,
	    31 * 86400, NULL, "3600", 0 },
	[CFG_OAPI_URL] = { "DINGTALK_OAPI_URL", CFG_T_URL, 0, 0, NULL,
	    "https://oapi.dingtalk.com", 0 },
	[CFG_API_URL] = { "DINGTALK_API_URL", CFG_T_URL, 0, 0, NULL,
	    "https://api.dingtalk.com", 0 },
	[CFG_LOGIN_URL] = { "DINGTALK_LOGIN_URL", CFG_T_URL, 0, 0, NULL,
	    "https://login.dingtalk.com", 0 },
	[CFG_DDLOGIN_JS] = { "DINGTALK_DDLOGIN_JS", CFG_T_URL, 0, 0, NULL,
	    NULL, 0 },
	[CFG_BASE_PATH] = { "DINGAUTH_BASE_PATH", CFG_T_URLPATH, 0, 0, NULL,
	    "/dingauth", 0 },
	[CFG_CA_FILE] = { "DINGAUTH_CA_FILE", CFG_T_PATH, 0, 0, NULL, NULL, 0 },
	[CFG_HTTP_TIMEOUT] = { "DINGAUTH_HTTP_TIMEOUT", CFG_T_INT, 100,
	    120000, NULL, "10000", 0 },
	[CFG_HTTP_CONNECT_TIMEOUT] = { "DINGAUTH_HTTP_CONNECT_TIMEOUT",
	    CFG_T_INT, 100, 60000, NULL, "3000", 0 },
	[CFG_HTTP_RETRIES] = { "DINGAUTH_HTTP_RETRIES", CFG_T_INT, 0, 10,
	    NULL, "3", 0 },
	[CFG_CALLBACK_WINDOW] = { "DINGAUTH_CALLBACK_WINDOW", CFG_T_INT, 0,
	    7 * 86400, NULL, "3600", 0 },
	[CFG_CALLBACK_URL] = { "DINGAUTH_CALLBACK_URL", CFG_T_URL, 0, 0, NULL,
	    NULL, 0 },
	[CFG_SYNC_QPS] = { "DINGAUTH_SYNC_QPS", CFG_T_INT, 1, 10000, NULL,
	    "20", 0 },
	[CFG_SYNC_CONCURRENCY] = { "DINGAUTH_SYNC_CONCURRENCY", CFG_T_INT, 1,
	    64, NULL, "8", 0 },
	[CFG_SYNC_MAX_DEACTIVATE] = { "DINGAUTH_SYNC_MAX_DEACTIVATE", CFG_T_INT,
	    0, 100, NULL, "10", 0 },
	[CFG_REQUIRE_DEPTS] = { "DINGAUTH_REQUIRE_DEPTS", CFG_T_IDLIST, 0, 0,
	    NULL, NULL, 0 },
	[CFG_REQUIRE_USERS] = { "DINGAUTH_REQUIRE_USERS", CFG_T_NAMELIST, 0, 0,
	    NULL, NULL, 0 },
	[CFG_LOG_LEVEL] = { "DINGAUTH_LOG_LEVEL", CFG_T_ENUM, 0, LOG__MAX,
	    log_level_names, "info", 0 },
	/* "HH:MM" local time or "off"; checked by the worker (worker.h). */
	[CFG_SYNC_AT] = { "DINGAUTH_SYNC_AT", CFG_T_STRING, 0, 0, NULL,
	    "03:30", 0 },
	[CFG_RETENTION_DAYS] = { "DINGAUTH_RETENTION_DAYS", CFG_T_INT, 7,
	    3650, NULL, "30", 0 },
	[CFG_HEALTH_SYNC_AGE] = { "DINGAUTH_HEALTH_SYNC_AGE", CFG_T_INT, 3600,
	    31536000, NULL, "172800", 0 },
	[CFG_HEALTH_EVENT_AGE] = { "DINGAUTH_HEALTH_EVENT_AGE", CFG_T_INT, 60,
	    86400, NULL, "600", 0 },
	/* docs/dingtalk.md §i.2: the internal app's AgentId, a number. */
	[CFG_AGENT_ID] = { "DINGTALK_AGENT_ID", CFG_T_INT, 1,
	    999999999999999LL, NULL, NULL, 0 },
	[CFG_NOTIFY_USERIDS] = { "DINGAUTH_NOTIFY_USERIDS", CFG_T_NAMELIST, 0,
	    0, NULL, NULL, 0 },
	[CFG_LOG_FORMAT] = { "DINGAUTH_LOG_FORMAT", CFG_T_ENUM, 0,
	    LOG_FORMAT__MAX, log_format_names, "text", 0 },
	[CFG_AUDIT_DAYS] = { "DINGAUTH_AUDIT_DAYS", CFG_T_INT, 7, 3650, NULL,
	    "365", 0 },
	[CFG_METRICS_ALLOW] = { "DINGAUTH_METRICS_ALLOW", CFG_T_CIDRLIST, 0, 0,
	    NULL, "127.0.0.1/32,::1/128", 0 },
	/* Unset: DINGAUTH_DB's file + ".metrics", or METRICS_SERVER_FILE. */
	[CFG_METRICS_FILE] = { "DINGAUTH_METRICS_FILE", CFG_T_PATH, 0, 0,
	    NULL, NULL, 0 },
	[CFG_EVENT_MODE] = { "DINGAUTH_EVENT_MODE", CFG_T_ENUM, 0,
	    CFG_EVENT__MAX, event_mode_names, "http", 0 },
	[CFG_STREAM_IDLE] = { "DINGAUTH_STREAM_IDLE", CFG_T_INT, 1, 600, NULL,
	    "60", 0 },
	[CFG_LANG] = { "DINGAUTH_LANG", CFG_T_ENUM, 0, CFG_LANG__MAX,
	    lang_names, "auto", 0 },
	/* docs/dingtalk.md §i.1: the in-app page's script. */
	[CFG_JSAPI_JS] = { "DINGTALK_JSAPI_JS", CFG_T_URL, 0, 0, NULL,
	    "https://g.alicdn.com/dingding/dingtalk-jsapi/3.0.25/"
	    "dingtalk.open.js", 0 },
	/* Branding: files replacing built-in templates (page.h). */
	[CFG_TEMPLATE_DIR] = { "DINGAUTH_TEMPLATE_DIR", CFG_T_PATH, 0, 0,
	    NULL, NULL, 0 },
};

enum cfg_src { SRC_UNSET, SRC_DEFAULT, SRC_FILE, SRC_ENV };

/* A list value, split: ids (CFG_T_IDLIST) or names (CFG_T_NAMELIST). */
struct list {
	long long	*ids;
	char		**names;
	size_t		 n;
};

static char		*values[CFG__MAX];	/* the text as given */
static enum cfg_src	 sources[CFG__MAX];
static char		*derived[CFG__MAX];	/* defaults built from others */
static struct list	 lists[CFG__MAX];
static struct config	 C;

const char *
config_name(enum cfg_key key)
{
	return (unsigned)key < CFG__MAX ? defs[key].name : "?";
}

const char *
config_default(enum cfg_key key)
{
	return (unsigned)key < CFG__MAX ? defs[key].def : NULL;
}

enum cfg_type
config_type(enum cfg_key key)
{
	return defs[key].type;
}

enum cfg_key
config_lookup(const char *name)
{
	int	 i;

	for (i = 0; i < CFG__MAX; i++)
		if (strcmp(defs[i].name, name) == 0)
			return (enum cfg_key)i;
	return CFG__MAX;
}

/* Index of value among an enum key's names, or -1. */
static int
enum_index(const struct cfg_def *d, const char *value)
{
	int	 i;

	for (i = 0; i < d->max; i++)
		if (strcmp(d->choices[i], value) == 0)
			return i;
	return -1;
}

static void
list_free(struct list *l)
{
	size_t	 i;

	for (i = 0; l->names != NULL && i < l->n; i++)
		free(l->names[i]);
	free(l->names);
	free(l->ids);
	memset(l, 0, sizeof(*l));
}

/*
 * The one parser of list values: "a, b,c" (spaces around items), at
 * least one item and at most CFG_LIST_MAX; ids are positive decimal
 * integers without a leading zero, names anything but spaces, commas,
 * semicolons and controls. 0 and l filled, or -1 (l empty).
 */
static int
list_parse(const char *v, int ids, struct list *l)
{
	const char	*p = v, *start;
	size_t		 len;

	memset(l, 0, sizeof(*l));
	if (ids)
		l->ids = xcalloc(CFG_LIST_MAX, sizeof(*l->ids));
	else
		l->names = xcalloc(CFG_LIST_MAX, sizeof(*l->names));
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		start = p;
		while (*p != '\0' && *p != ',' && *p != ' ') {
			if (ids ? !isdigit((unsigned char)*p) :
			    (iscntrl((unsigned char)*p) || *p == ';'))
				goto bad;
			p++;
		}
		len = (size_t)(p - start);
		if (len == 0 || l->n == CFG_LIST_MAX ||
		    (ids && (len > 18 || *start == '0')))
			goto bad;
		if (ids)
			l->ids[l->n++] = strtoll(start, NULL, 10);
		else
			l->names[l->n++] = xstrndup(start, len);
		while (*p == ' ')
			p++;
		if (*p == ',') {
			p++;
			if (*p == '\0')
				goto bad;
		} else if (*p != '\0')
			goto bad;
	}
	if (l->n > 0)
		return 0;
bad:
	list_free(l);
	return -1;
}

/*
 * One case per value type of the table: long, but every rule a value
 * must meet is here and nowhere else.
 */
enum da_err
config_check(enum cfg_key key, const char *v, struct da_error *err)
{
	const struct cfg_def	*d = &defs[key];
	const char		*name = d->name;
	struct list		 list;
	char			*end;
	long long		 n;
	size_t			 i, len = strlen(v);

	for (i = 0; i < len; i++)
		if (iscntrl((unsigned char)v[i]))
			return DA_ERROR(err, DA_ECONFIG,
			    "%s: control character in value", name);
	switch (d->type) {
	case CFG_T_STRING:
	case CFG_T_SECRET:
		if (len == 0)
			return DA_ERROR(err, DA_ECONFIG, "%s: empty value",
			    name);
		if (len > 512)
			return DA_ERROR(err, DA_ECONFIG, "%s: value too long",
			    name);
		break;
	case CFG_T_INT:
		errno = 0;
		n = strtoll(v, &end, 10);
		if (len == 0 || *end != '\0' || errno != 0 ||
		    n < d->min || n > d->max)
			return DA_ERROR(err, DA_ECONFIG,
			    "%s: must be an integer from %lld to %lld", name,
			    d->min, d->max);
		break;
	case CFG_T_BOOL:
		if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
			return DA_ERROR(err, DA_ECONFIG, "%s: must be 0 or 1",
			    name);
		break;
	case CFG_T_ENUM:
		if (enum_index(d, v) < 0) {
			char	 all[256] = "";

			for (i = 0; i < (size_t)d->max; i++)
				snprintf(all + strlen(all), sizeof(all) -
				    strlen(all), "%s%s", i ? "|" : "",
				    d->choices[i]);
			return DA_ERROR(err, DA_ECONFIG, "%s: must be one of %s",
			    name, all);
		}
		break;
	case CFG_T_URL:
		if ((strncmp(v, "https://", 8) != 0 &&
		    strncmp(v, "http://", 7) != 0) || len > 1024 ||
		    strpbrk(v, " \"'<>\\`") != NULL ||
		    v[strncmp(v, "https://", 8) == 0 ? 8 : 7] == '\0')
			return DA_ERROR(err, DA_ECONFIG,
			    "%s: must be an http:// or https:// URL", name);
		break;
	case CFG_T_DB:
		/* A libpq connection URI: PostgreSQL (docs/contract.md). */
		if ((strncmp(v, "postgresql://", 13) == 0 ||
		    strncmp(v, "postgres://", 11) == 0) && len <= 1024 &&
		    strpbrk(v, " \t\"'<>\\`") == NULL)
			break;
		if (v[0] != '/' || len > 1024)
			return DA_ERROR(err, DA_ECONFIG, "%s: must be an "
			    "absolute path or a postgresql:// URI", name);
		break;
	case CFG_T_PATH:
		if (v[0] != '/' || len > 1024)
			return DA_ERROR(err, DA_ECONFIG,
			    "%s: must be an absolute path", name);
		break;
	case CFG_T_AESKEY:
		if (len != 43)
			return DA_ERROR(err, DA_ECONFIG,
			    "%s: must be exactly 43 characters (it is %zu)",
			    name, len);
		for (i = 0; i < len; i++)
			if (!isalnum((unsigned char)v[i]))
				return DA_ERROR(err, DA_ECONFIG,
				    "%s: only letters and digits allowed",
				    name);
		break;
	case CFG_T_IDLIST:
	case CFG_T_NAMELIST:
		if (list_parse(v, d->type == CFG_T_IDLIST, &list) == -1)
			return DA_ERROR(err, DA_ECONFIG, "%s: must be a "
			    "comma-separated list of at most %d %s", name,
			    CFG_LIST_MAX, d->type == CFG_T_IDLIST ?
			    "positive integers" : "names");
		list_free(&list);
		break;
	case CFG_T_CIDRLIST:
		if (len > 1024 || cidr_list_check(v) == -1)
			return DA_ERROR(err, DA_ECONFIG, "%s: must be a "
			    "comma-separated list of networks such as "
			    "127.0.0.1/32,::1/128", name);
		break;
	case CFG_T_URLPATH:
		if (v[0] != '/' || len > 256 || strpbrk(v, " ?#\"'<>\\") ||
		    (len > 1 && v[len - 1] == '/'))
			return DA_ERROR(err, DA_ECONFIG, "%s: must be an "
			    "absolute URL path without a trailing slash", name);
		break;
	}
	return DA_OK;
}

static void
config_clear(void)
{
	int	 i;

	for (i = 0; i < CFG__MAX; i++) {
		free(values[i]);
		free(derived[i]);
		values[i] = derived[i] = NULL;
		sources[i] = SRC_UNSET;
		list_free(&lists[i]);
	}
	memset(&C, 0, sizeof(C));
	for (i = 0; i < CFG__MAX; i++)
		C.str[i] = "";
}

static void
store(enum cfg_key key, const char *v, enum cfg_src src)
{
	size_t	 len;

	free(values[key]);
	values[key] = xstrdup(v);
	/* URLs are kept without a trailing slash: callers append paths. */
	if (defs[key].type == CFG_T_URL) {
		len = strlen(values[key]);
		while (len > 0 && values[key][len - 1] == '/')
			values[key][--len] = '\0';
	}
	sources[key] = src;
}

/*
 * Every value as struct config holds it, once the texts are in:
 * numbers, enum indexes, lists, and the defaults derived from other
 * keys. Values were validated before they were stored.
 */
static void
config_parse(void)
{
	const struct cfg_def	*d;
	int			 i;

	for (i = 0; i < CFG__MAX; i++) {
		d = &defs[i];
		free(derived[i]);
		derived[i] = NULL;
		list_free(&lists[i]);
		C.str[i] = values[i] != NULL ? values[i] : "";
		C.num[i] = 0;
		if (values[i] == NULL)
			continue;
		if (d->type == CFG_T_INT || d->type == CFG_T_BOOL)
			C.num[i] = strtoll(values[i], NULL, 10);
		else if (d->type == CFG_T_ENUM)
			C.num[i] = enum_index(d, values[i]);
		else if (d->type == CFG_T_IDLIST || d->type == CFG_T_NAMELIST)
			list_parse(values[i], d->type == CFG_T_IDLIST,
			    &lists[i]);
	}
	C.login_flow = (enum cfg_login_flow)C.num[CFG_LOGIN_FLOW];
	C.unknown_user = (enum cfg_unknown_user)C.num[CFG_UNKNOWN_USER];
	C.log_level = (enum log_level)C.num[CFG_LOG_LEVEL];
	C.lang = (enum cfg_lang)C.num[CFG_LANG];
	C.require_depts = lists[CFG_REQUIRE_DEPTS].ids;
	C.nrequire_depts = lists[CFG_REQUIRE_DEPTS].n;
	C.require_users = (const char *const *)lists[CFG_REQUIRE_USERS].names;
	C.nrequire_users = lists[CFG_REQUIRE_USERS].n;

	/* Defaults derived from other keys. */
	if (values[CFG_CALLBACK_RECEIVER] == NULL)
		C.str[CFG_CALLBACK_RECEIVER] = C.str[CFG_CORP_ID];
	if (values[CFG_DDLOGIN_JS] == NULL)
		C.str[CFG_DDLOGIN_JS] = flow_js[C.login_flow];
	if (values[CFG_CALLBACK_URL] == NULL && *C.str[CFG_PUBLIC_URL]) {
		derived[CFG_CALLBACK_URL] = xasprintf("%s%s/callback",
		    C.str[CFG_PUBLIC_URL], C.str[CFG_BASE_PATH]);
		C.str[CFG_CALLBACK_URL] = derived[CFG_CALLBACK_URL];
	}
}

const struct config *
cfg(void)
{
	return &C;
}

static char *
trim(char *s)
{
	char	*e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' ||
	    e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static enum da_err
read_file(const char *path, int must_exist, struct da_error *err)
{
	FILE		*f;
	char		 line[CFG_LINE_MAX], *p, *eq, *k, *v;
	enum cfg_key	 key;
	unsigned	 lineno = 0;
	enum da_err	 rc = DA_OK;
	size_t		 len;

	if ((f = fopen(path, "r")) == NULL) {
		if (!must_exist && errno == ENOENT)
			return DA_OK;
		return DA_ERROR(err, DA_ECONFIG, "DINGAUTH_CONFIG: cannot "
		    "open %s: %s", path, strerror(errno));
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		len = strlen(line);
		if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
			rc = DA_ERROR(err, DA_ECONFIG, "%s:%u: line too long",
			    path, lineno);
			goto out;
		}
		p = trim(line);
		if (*p == '\0' || *p == '#')
			continue;
		if ((eq = strchr(p, '=')) == NULL) {
			rc = DA_ERROR(err, DA_ECONFIG,
			    "%s:%u: expected KEY = value", path, lineno);
			goto out;
		}
		*eq = '\0';
		k = trim(p);
		v = trim(eq + 1);
		/* Optional matching quotes around the value. */
		len = strlen(v);
		if (len >= 2 && (v[0] == '"' || v[0] == '\'') &&
		    v[len - 1] == v[0]) {
			v[len - 1] = '\0';
			v++;
		}
		if ((key = config_lookup(k)) == CFG__MAX) {
			rc = DA_ERROR(err, DA_ECONFIG,
			    "%s:%u: unknown key %.64s", path, lineno, k);
			goto out;
		}
		if ((rc = config_check(key, v, err)) != DA_OK) {
			/* Prefix with where it came from; the key is named. */
			char	 tmp[sizeof(err->msg)];

			if (err != NULL) {
				memcpy(tmp, err->msg, sizeof(tmp));
				DA_ERROR(err, DA_ECONFIG, "%.200s:%u: %.100s",
				    path, lineno, tmp);
			}
			goto out;
		}
		store(key, v, SRC_FILE);
	}
out:
	fclose(f);
	return rc;
}

enum da_err
config_load(unsigned needs, struct da_error *err)
{
	const char	*path, *v;
	enum da_err	 rc;
	int		 i;

	config_clear();
	path = getenv("DINGAUTH_CONFIG");
	if (path != NULL && *path != '\0')
		rc = read_file(path, 1, err);
	else
		rc = read_file(CFG_DEFAULT_FILE, 0, err);
	if (rc != DA_OK)
		return rc;
	for (i = 0; i < CFG__MAX; i++) {
		if ((v = getenv(defs[i].name)) == NULL)
			continue;
		if ((rc = config_check((enum cfg_key)i, v, err)) != DA_OK)
			return rc;
		store((enum cfg_key)i, v, SRC_ENV);
	}
	for (i = 0; i < CFG__MAX; i++)
		if (sources[i] == SRC_UNSET && defs[i].def != NULL)
			store((enum cfg_key)i, defs[i].def, SRC_DEFAULT);
	config_parse();

	/* What the login flow needs to show its page and take its code. */
	if (needs & (CFG_NEED_LOGIN | CFG_NEED_EXCHANGE))
		needs |= C.login_flow == CFG_FLOW_OAUTH2 ? NEED_OAUTH2 :
		    NEED_SNS;
	for (i = 0; i < CFG__MAX; i++)
		if ((defs[i].required & needs) && !config_is_set(i))
			return DA_ERROR(err, DA_ECONFIG,
			    "%s: required but not set", defs[i].name);
	if (C.num[CFG_SESSION_IDLE] > C.num[CFG_SESSION_TTL])
		return DA_ERROR(err, DA_ECONFIG, "DINGAUTH_SESSION_IDLE: "
		    "longer than DINGAUTH_SESSION_TTL");
	return DA_OK;
}

enum da_err
config_start(unsigned needs, struct da_error *err)
{
	enum da_err	 rc;

	if ((rc = config_load(needs, err)) != DA_OK)
		return rc;
	log_set_level(C.log_level);
	log_set_format((enum log_format)C.num[CFG_LOG_FORMAT]);
	return DA_OK;
}

enum da_err
config_set(enum cfg_key key, const char *value, struct da_error *err)
{
	enum da_err	 rc;

	if ((rc = config_check(key, value, err)) != DA_OK)
		return rc;
	store(key, value, SRC_ENV);
	config_parse();
	return DA_OK;
}

int
config_is_set(enum cfg_key key)
{
	return *config_str(key) != '\0';
}

const char *
config_str(enum cfg_key key)
{
	return (unsigned)key < CFG__MAX && C.str[key] != NULL ? C.str[key] :
	    "";
}

long long
config_int(enum cfg_key key)
{
	return (unsigned)key < CFG__MAX ? C.num[key] : 0;
}

const char *
config_choice(enum cfg_key key, long long index)
{
	if ((unsigned)key >= CFG__MAX || defs[key].type != CFG_T_ENUM ||
	    index < 0 || index >= defs[key].max)
		return "?";
	return defs[key].choices[index];
}

const char *
config_source(enum cfg_key key)
{
	static const char *const names[] = {
		[SRC_UNSET] = "unset", [SRC_DEFAULT] = "default",
		[SRC_FILE] = "file", [SRC_ENV] = "env",
	};

	if (sources[key] == SRC_UNSET && *config_str(key) != '\0')
		return "derived";
	return names[sources[key]];
}
