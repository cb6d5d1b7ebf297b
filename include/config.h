#ifndef DINGAUTH_CONFIG_H
#define DINGAUTH_CONFIG_H

#include <stddef.h>

#include "err.h"
#include "log.h"

/*
 * Configuration: "KEY = value" lines from the file named by DINGAUTH_CONFIG
 * (default /etc/dingauth.conf; a missing default file is not an error,
 * a missing named file is), each key overridable by an environment
 * variable of the same name. One table in config.c gives every key its
 * type, bounds, default, who requires it and whether it is a secret.
 */
enum cfg_key {
	CFG_CORP_ID,		/* DINGTALK_CORP_ID */
	CFG_APP_KEY,		/* DINGTALK_APP_KEY */
	CFG_CORP_SECRET,	/* DINGTALK_CORP_SECRET */
	CFG_APP_ID,		/* DINGTALK_APP_ID */
	CFG_APP_SECRET,		/* DINGTALK_APP_SECRET */
	CFG_AES_TOKEN,		/* DINGTALK_AES_TOKEN */
	CFG_TOKEN,		/* DINGTALK_TOKEN */
	CFG_CALLBACK_RECEIVER,	/* DINGAUTH_CALLBACK_RECEIVER */
	CFG_DB,			/* DINGAUTH_DB */
	CFG_PUBLIC_URL,		/* DINGAUTH_PUBLIC_URL */
	CFG_LOGIN_FLOW,		/* DINGAUTH_LOGIN_FLOW */
	CFG_UNKNOWN_USER,	/* DINGAUTH_UNKNOWN_USER */
	CFG_COOKIE_SECURE,	/* DINGAUTH_COOKIE_SECURE */
	CFG_SESSION_TTL,	/* DINGAUTH_SESSION_TTL */
	CFG_SESSION_IDLE,	/* DINGAUTH_SESSION_IDLE */
	CFG_OAPI_URL,		/* DINGTALK_OAPI_URL */
	CFG_API_URL,		/* DINGTALK_API_URL */
	CFG_LOGIN_URL,		/* DINGTALK_LOGIN_URL */
	CFG_DDLOGIN_JS,		/* DINGTALK_DDLOGIN_JS */
	/* Operational knobs beyond docs/contract.md §2.1, safe defaults. */
	CFG_BASE_PATH,		/* DINGAUTH_BASE_PATH: where the responders are mounted */
	CFG_CA_FILE,		/* DINGAUTH_CA_FILE */
	CFG_HTTP_TIMEOUT,	/* DINGAUTH_HTTP_TIMEOUT (ms, whole call) */
	CFG_HTTP_CONNECT_TIMEOUT, /* DINGAUTH_HTTP_CONNECT_TIMEOUT (ms) */
	CFG_HTTP_RETRIES,	/* DINGAUTH_HTTP_RETRIES: rate-limit/busy retries */
	CFG_CALLBACK_WINDOW,	/* DINGAUTH_CALLBACK_WINDOW (s) */
	CFG_CALLBACK_URL,	/* DINGAUTH_CALLBACK_URL: public URL for register */
	CFG_SYNC_QPS,		/* DINGAUTH_SYNC_QPS */
	CFG_SYNC_CONCURRENCY,	/* DINGAUTH_SYNC_CONCURRENCY */
	CFG_SYNC_MAX_DEACTIVATE,/* DINGAUTH_SYNC_MAX_DEACTIVATE (percent) */
	CFG_REQUIRE_DEPTS,	/* DINGAUTH_REQUIRE_DEPTS */
	CFG_REQUIRE_USERS,	/* DINGAUTH_REQUIRE_USERS */
	CFG_LOG_LEVEL,		/* DINGAUTH_LOG_LEVEL */
	CFG_SYNC_AT,		/* DINGAUTH_SYNC_AT: the worker's daily sync */
	CFG_RETENTION_DAYS,	/* DINGAUTH_RETENTION_DAYS: old rows pruned */
	CFG_HEALTH_SYNC_AGE,	/* DINGAUTH_HEALTH_SYNC_AGE (s): healthz */
	CFG_HEALTH_EVENT_AGE,	/* DINGAUTH_HEALTH_EVENT_AGE (s): healthz */
	CFG_AGENT_ID,		/* DINGTALK_AGENT_ID: work notifications */
	CFG_NOTIFY_USERIDS,	/* DINGAUTH_NOTIFY_USERIDS: told of reviews */
	CFG_LOG_FORMAT,		/* DINGAUTH_LOG_FORMAT: text or json */
	CFG_AUDIT_DAYS,		/* DINGAUTH_AUDIT_DAYS: audit rows kept */
	CFG_METRICS_ALLOW,	/* DINGAUTH_METRICS_ALLOW: CIDR list */
	CFG_METRICS_FILE,	/* DINGAUTH_METRICS_FILE: this host's counters */
	CFG_EVENT_MODE,		/* DINGAUTH_EVENT_MODE: http or stream */
	CFG_STREAM_IDLE,	/* DINGAUTH_STREAM_IDLE (s): ping after */
	CFG_LANG,		/* DINGAUTH_LANG: the pages' language */
	CFG_JSAPI_JS,		/* DINGTALK_JSAPI_JS: the in-app page's JSAPI */
	CFG_TEMPLATE_DIR,	/* DINGAUTH_TEMPLATE_DIR: branding (page.h) */
	CFG__MAX
};

enum cfg_type {
	CFG_T_STRING,
	CFG_T_SECRET,		/* a string never printed */
	CFG_T_INT,		/* decimal within [min, max] */
	CFG_T_BOOL,		/* 0 or 1 */
	CFG_T_ENUM,		/* one of the key's names, kept as its index */
	CFG_T_URL,		/* http:// or https:// URL, no trailing slash kept */
	CFG_T_PATH,		/* absolute file path */
	CFG_T_DB,		/* absolute path, or postgresql:// URI */
	CFG_T_AESKEY,		/* 43 characters of [A-Za-z0-9] */
	CFG_T_IDLIST,		/* comma-separated positive integers */
	CFG_T_NAMELIST,		/* comma-separated names */
	CFG_T_URLPATH,		/* absolute URL path, "/dingauth" */
	CFG_T_CIDRLIST,		/* comma-separated networks (cidr.h) */
};

/* What a program needs; required keys are required for these. */
#define CFG_NEED_LOGIN		0x01u	/* login page (login.fcgi) */
#define CFG_NEED_EXCHANGE	0x02u	/* code exchange */
#define CFG_NEED_CALLBACK	0x04u	/* callback decryption */
#define CFG_NEED_DIRECTORY	0x08u	/* corp token and directory API */
#define CFG_NEED_DB		0x10u	/* only the database */

/* DINGAUTH_LOGIN_FLOW (login.h describes the flows). */
enum cfg_login_flow {
	CFG_FLOW_SNS,		/* "sns" */
	CFG_FLOW_SNS_BYCODE,	/* "sns_bycode" */
	CFG_FLOW_OAUTH2,	/* "oauth2" */
	CFG_FLOW__MAX
};

/* DINGAUTH_UNKNOWN_USER. */
enum cfg_unknown_user {
	CFG_UNKNOWN_DENY,	/* "deny" */
	CFG_UNKNOWN_REVIEW,	/* "review" */
	CFG_UNKNOWN_ADMIT,	/* "admit" */
	CFG_UNKNOWN__MAX
};

/* DINGAUTH_EVENT_MODE: how address-book events arrive (docs/contract.md). */
enum cfg_event_mode {
	CFG_EVENT_HTTP,		/* "http": pushes to callback.fcgi */
	CFG_EVENT_STREAM,	/* "stream": dingauth worker holds the Stream */
	CFG_EVENT__MAX
};

/* DINGAUTH_LANG. */
enum cfg_lang {
	CFG_LANG_AUTO,		/* "auto": from Accept-Language */
	CFG_LANG_ZH_CN,		/* "zh-CN" */
	CFG_LANG_EN,		/* "en" */
	CFG_LANG__MAX
};

#define CFG_LIST_MAX	256	/* items in an id or name list */

/*
 * The configuration, parsed once when it is loaded: handlers never
 * compare or split a value again.
 */
struct config {
	/* Every key as text; "" when unset; derived defaults filled in. */
	const char		*str[CFG__MAX];
	/* CFG_T_INT and CFG_T_BOOL as numbers, CFG_T_ENUM as its index. */
	long long		 num[CFG__MAX];
	/* The enums, typed. */
	enum cfg_login_flow	 login_flow;
	enum cfg_unknown_user	 unknown_user;
	enum log_level		 log_level;
	enum cfg_lang		 lang;
	/* The lists (DINGAUTH_REQUIRE_*), split and converted. */
	const long long		*require_depts;
	size_t			 nrequire_depts;
	const char *const	*require_users;
	size_t			 nrequire_users;
};

/* The configuration loaded last (all zero before the first load). */
const struct config	*cfg(void);

/*
 * Loads the file and the environment, validates every key and checks that
 * the keys required by "needs" are set. On error returns DA_ECONFIG with
 * a message naming the key (never its secret value). May be called again
 * (tests): it starts from scratch each time.
 */
enum da_err	 config_load(unsigned needs, struct da_error *err);

/*
 * A program starting: config_load, then the log level of
 * DINGAUTH_LOG_LEVEL (log_set_level) once the configuration is good.
 */
enum da_err	 config_start(unsigned needs, struct da_error *err);

/* cfg()->str[key] and cfg()->num[key]: never NULL; "" when unset. */
const char	*config_str(enum cfg_key key);
long long	 config_int(enum cfg_key key);
/* The name of an enum key's value: ("DINGAUTH_LOGIN_FLOW", 2) "oauth2". */
const char	*config_choice(enum cfg_key key, long long index);
int		 config_is_set(enum cfg_key key);
const char	*config_name(enum cfg_key key);
enum cfg_type	 config_type(enum cfg_key key);
/* Key called name, or CFG__MAX. */
enum cfg_key	 config_lookup(const char *name);
/* The built-in default of key as text, NULL when it has none. */
const char	*config_default(enum cfg_key key);
/* Where the value came from: "file", "env", "default" or "unset". */
const char	*config_source(enum cfg_key key);

/*
 * Test helper: set key to value as if it came from the environment and
 * re-validate it. Returns DA_ECONFIG on a bad value.
 */
enum da_err	 config_set(enum cfg_key key, const char *value,
		    struct da_error *err);

/* Validate a value for key without storing it. */
enum da_err	 config_check(enum cfg_key key, const char *value,
		    struct da_error *err);

#endif
