#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "config.h"
#include "crypto.h"
#include "db.h"
#include "dingtalk.h"
#include "directory.h"
#include "http.h"
#include "log.h"
#include "login.h"
#include "mem.h"
#include "metrics.h"
#include "requests.h"
#include "session.h"
#include "token.h"

#define CODE_MAX	512	/* longer than any DingTalk code */

/* Each problem's title and text: page.c, "problem.<id>.*" of the catalog. */
static const struct login_problem_info problems[LOGIN_PROBLEM__MAX] = {
	[LOGIN_OK] = { 200, "ok", 0 },
	[LOGIN_STATE_MISSING] = { 400, "state_missing", 0 },
	[LOGIN_STATE_MISMATCH] = { 400, "state_mismatch", 0 },
	[LOGIN_STATE_INVALID] = { 400, "state_invalid", 0 },
	[LOGIN_CODE_MISSING] = { 400, "code_missing", 0 },
	[LOGIN_DECLINED] = { 403, "declined", 0 },
	[LOGIN_CODE_REJECTED] = { 400, "code_rejected", 0 },
	[LOGIN_NOT_MEMBER] = { 403, "not_member", 0 },
	[LOGIN_INACTIVE] = { 403, "inactive", 0 },
	[LOGIN_DISABLED] = { 403, "disabled", 0 },
	[LOGIN_DENIED] = { 403, "denied", 0 },
	[LOGIN_WAITING] = { 403, "waiting_for_approval", 0 },
	[LOGIN_DT_TIMEOUT] = { 504, "dingtalk_timeout", 0 },
	[LOGIN_DT_DOWN] = { 502, "dingtalk_unavailable", 0 },
	[LOGIN_DT_GARBAGE] = { 502, "dingtalk_bad_answer", 0 },
	[LOGIN_DT_ERROR] = { 502, "dingtalk_error", 0 },
	[LOGIN_DT_RATE] = { 503, "rate_limited", 30 },
	[LOGIN_MISCONFIGURED] = { 500, "misconfigured", 0 },
	[LOGIN_INTERNAL] = { 500, "internal_error", 0 },
	[LOGIN_BAD_REQUEST] = { 400, "bad_request", 0 },
	/* Nothing was written: the same link works a moment later. */
	[LOGIN_BUSY] = { 503, "busy", 5 },
};

/* A store failed: busy (another process holds the lock) or broken. */
static enum login_problem
db_problem(struct db *db)
{
	return db_busy(db) ? LOGIN_BUSY : LOGIN_INTERNAL;
}

const struct login_problem_info *
login_problem_info(enum login_problem p)
{
	if ((unsigned)p >= LOGIN_PROBLEM__MAX)
		p = LOGIN_INTERNAL;
	return &problems[p];
}

/* What a DingTalk call's failure means for the person signing in. */
static enum login_problem
problem_of(enum da_err e)
{
	switch (e) {
	case DA_OK:
		return LOGIN_OK;
	case DA_ECODE:
		return LOGIN_CODE_REJECTED;
	case DA_ETIMEOUT:
		return LOGIN_DT_TIMEOUT;
	case DA_EHTTP:
		return LOGIN_DT_DOWN;
	case DA_EJSON:
	case DA_ETOOBIG:
	case DA_ETOOLONG:
		return LOGIN_DT_GARBAGE;
	case DA_ERATE:
		return LOGIN_DT_RATE;
	case DA_ENOTMEMBER:
	case DA_ENOTFOUND:
		return LOGIN_NOT_MEMBER;
	case DA_EAPI:
		return LOGIN_DT_ERROR;
	case DA_ETOKEN:
	case DA_ECREDENTIALS:
	case DA_EPERM:
	case DA_ECONFIG:
		return LOGIN_MISCONFIGURED;
	case DA_ESTATE:
		return LOGIN_STATE_INVALID;
	default:
		return LOGIN_INTERNAL;
	}
}

int
login_rd(const char *rd, char out[LOGIN_RD_MAX])
{
	const unsigned char	*p;
	struct buf		 b;
	int			 ok = 0;

	buf_init(&b, LOGIN_RD_MAX - 1);
	/* One leading slash: "//host" and "/\host" leave the site. */
	if (rd == NULL || rd[0] != '/' || rd[1] == '/' || rd[1] == '\\')
		goto out;
	for (p = (const unsigned char *)rd; *p != '\0'; p++) {
		/* Browsers drop tabs and newlines and read "\" as "/". */
		if (*p < 0x20 || *p == 0x7f || *p == '\\')
			goto out;
		if (*p == ' ' || *p == '"' || *p == '<' || *p == '>' ||
		    *p == '`' || *p >= 0x80)
			buf_printf(&b, "%%%02X", *p);
		else
			buf_append(&b, p, 1);
	}
	ok = !b.overflow;
out:
	snprintf(out, LOGIN_RD_MAX, "%s", ok ? b.data : "/");
	buf_free(&b);
	return ok;
}

/* DINGAUTH_BASE_PATH as a prefix: "" for "/". */
static const char *
base_path(void)
{
	const char	*b = cfg()->str[CFG_BASE_PATH];

	/* Unset only when the configuration failed to load: the default. */
	if (b[0] == '\0')
		return "/dingauth";
	return strcmp(b, "/") == 0 ? "" : b;
}

char *
login_redirect_uri(void)
{
	return xasprintf("%s%s/exchange", cfg()->str[CFG_PUBLIC_URL],
	    base_path());
}

char *
login_route_path(const char *route)
{
	return xasprintf("%s/%s", base_path(), route);
}

char *
login_page_path(const char *rd)
{
	char	*e, *path;

	if (rd == NULL || strcmp(rd, "/") == 0)
		return xasprintf("%s/login", base_path());
	e = http_escape(rd);
	path = xasprintf("%s/login?rd=%s", base_path(), e);
	free(e);
	return path;
}

enum da_err
login_authorize_url(const char *state, char **url, struct da_error *err)
{
	enum cfg_login_flow	 flow = cfg()->login_flow;
	enum cfg_key	 need;
	char		*raw, *ru, *id, *st;

	*url = NULL;
	need = flow == CFG_FLOW_OAUTH2 ? CFG_APP_KEY : CFG_APP_ID;
	if (!config_is_set(need))
		return DA_ERROR(err, DA_ECONFIG, "%s: required for "
		    "DINGAUTH_LOGIN_FLOW=%s", config_name(need),
		    config_choice(CFG_LOGIN_FLOW, flow));
	raw = login_redirect_uri();
	ru = http_escape(raw);
	free(raw);
	id = http_escape(config_str(need));
	st = http_escape(state);
	if (flow == CFG_FLOW_OAUTH2)
		*url = xasprintf("%s/oauth2/auth?redirect_uri=%s"
		    "&response_type=code&client_id=%s&scope=openid&state=%s"
		    "&prompt=consent", cfg()->str[CFG_LOGIN_URL], ru, id, st);
	else
		*url = xasprintf("%s/connect/oauth2/sns_authorize?appid=%s"
		    "&response_type=code&scope=snsapi_login&state=%s"
		    "&redirect_uri=%s", cfg()->str[CFG_OAPI_URL], id, st, ru);
	free(ru);
	free(id);
	free(st);
	return DA_OK;
}

void
login_frame_origin(char *out, size_t size)
{
	const char	*url = cfg()->str[CFG_LOGIN_URL], *host, *end;

	if ((host = strstr(url, "://")) == NULL) {
		snprintf(out, size, "%s", url);
		return;
	}
	host += 3;
	end = host + strcspn(host, "/?#");
	snprintf(out, size, "%.*s", (int)(end - url), url);
}

int
login_is_inapp(const char *user_agent, const char *inapp)
{
	if (inapp != NULL && strcmp(inapp, "1") == 0)
		return 1;
	if (inapp != NULL && strcmp(inapp, "0") == 0)
		return 0;
	return user_agent != NULL && strstr(user_agent, "DingTalk") != NULL;
}

/* Is in a code of the in-app page (flow=inapp)? */
static int
is_inapp_code(const struct login_input *in)
{
	return in->flow != NULL && strcmp(in->flow, LOGIN_FLOW_INAPP) == 0;
}

/* The flow of an attempt, for its audit row and metrics. */
static const char *
login_flow_name(const struct login_input *in)
{
	return is_inapp_code(in) ? LOGIN_FLOW_INAPP :
	    config_choice(CFG_LOGIN_FLOW, cfg()->login_flow);
}

/* The audit row and log line of a login attempt as res has it now. */
static void
audit_entry(const struct login_input *in, const struct login_result *res,
    enum login_problem p, struct audit_entry *a)
{
	memset(a, 0, sizeof(*a));
	a->event = AUDIT_LOGIN;
	a->userid = res->user.userid;
	a->unionid = res->user.unionid;
	a->flow = login_flow_name(in);
	a->outcome = login_problem_info(p)->id;
	a->reason = res->err.msg;
	a->remote_addr = in->remote_addr;
	a->user_agent = in->user_agent;
}

/*
 * The audit row of outcome p inside the transaction the caller holds,
 * with what it records (a session, a request).
 */
static enum da_err
audit_in(struct db *db, const struct login_input *in,
    struct login_result *res, enum login_problem p)
{
	struct audit_entry	 a;
	enum da_err		 rc;

	audit_entry(in, res, p, &a);
	if ((rc = audit_record(db, &a, &res->err)) == DA_OK)
		res->audited = 1;
	return rc;
}

/* The identity behind code, per the configured flow. */
static enum da_err
identify(struct db *db, const char *code, struct dt_identity *id,
    struct da_error *err)
{
	char		 token[TOKEN_MAX];
	enum da_err	 rc;

	switch (cfg()->login_flow) {
	case CFG_FLOW_SNS_BYCODE:
		return dt_sns_userinfo_bycode(code, id, err);
	case CFG_FLOW_OAUTH2:
		rc = dt_oauth2_user_token(code, token, sizeof(token), err);
		if (rc == DA_OK)
			rc = dt_oauth2_me(token, id, err);
		crypto_cleanse(token, sizeof(token));
		return rc;
	case CFG_FLOW_SNS:
	default:
		return dt_sns_persistent_code(db, code, id, err);
	}
}

/*
 * The in-app page's code (docs/dingtalk.md §i.1): getuserinfo names the
 * employee, userid and all; id gets the unionid and name.
 */
static enum da_err
identify_inapp(struct db *db, const char *code, struct dt_identity *id,
    struct login_result *res)
{
	struct dt_inapp_user	 u;
	enum da_err		 rc;

	if ((rc = dt_inapp_userinfo(db, code, &u, &res->err)) != DA_OK)
		return rc;
	snprintf(res->user.userid, sizeof(res->user.userid), "%s", u.userid);
	snprintf(id->unionid, sizeof(id->unionid), "%s", u.unionid);
	snprintf(id->nick, sizeof(id->nick), "%s", u.name);
	return DA_OK;
}

/* Unknown to the directory, DINGAUTH_UNKNOWN_USER=review. */
static enum login_problem
review(struct db *db, const char *userid, const struct dt_identity *id,
    const struct login_input *in, struct login_result *res)
{
	struct dir_user		 du;
	struct da_error		 ignored;
	enum requests_outcome	 outcome;
	enum login_problem	 p;
	const char		*name = id->nick;

	memset(&du, 0, sizeof(du));
	/* A name helps the operator; not worth failing the request for. */
	if (name[0] == '\0' && dt_user_get(db, userid, &du, &ignored) == DA_OK)
		name = du.name;
	snprintf(res->user.name, sizeof(res->user.name), "%s", name);
	/* The request and its audit row: one transaction. */
	if (db_begin_immediate(db, &res->err) != DA_OK ||
	    requests_record(db, userid, id->unionid, name, &outcome,
	    &res->err) != DA_OK) {
		p = LOGIN_INTERNAL;
		goto out;
	}
	if (outcome == REQUESTS_REJECTED) {
		DA_ERROR(&res->err, DA_EPERM, "an operator rejected %s's "
		    "request", userid);
		p = LOGIN_DENIED;
	} else {
		/* The reason of the login's one line and audit row. */
		snprintf(res->err.msg, sizeof(res->err.msg), "%s",
		    outcome == REQUESTS_NEW ? "new request" : "asked again");
		p = LOGIN_WAITING;
	}
	if (audit_in(db, in, res, p) != DA_OK ||
	    db_commit(db, &res->err) != DA_OK) {
		res->audited = 0;
		p = LOGIN_INTERNAL;
	}
out:
	if (p == LOGIN_INTERNAL)
		db_rollback(db);
	dir_user_clear(&du);
	return p;
}

/*
 * Unknown to the directory, DINGAUTH_UNKNOWN_USER=admit: fetch them,
 * add them and open their session in one transaction.
 */
static enum login_problem
admit(struct db *db, const char *userid, const struct login_input *in,
    struct login_result *res)
{
	struct dir_user	 du;
	enum da_err	 rc;

	memset(&du, 0, sizeof(du));
	if ((rc = dt_user_get(db, userid, &du, &res->err)) != DA_OK)
		goto out;
	if ((rc = db_begin_immediate(db, &res->err)) != DA_OK)
		goto out;
	snprintf(res->err.msg, sizeof(res->err.msg), "admitted to the "
	    "directory");
	if ((rc = directory_upsert_user(db, &du, "admit", NULL,
	    &res->err)) != DA_OK ||
	    (rc = session_open(db, du.userid, in->remote_addr,
	    in->user_agent, res->session, &res->err)) != DA_OK ||
	    (rc = audit_in(db, in, res, LOGIN_OK)) != DA_OK ||
	    (rc = db_commit(db, &res->err)) != DA_OK) {
		db_rollback(db);
		res->audited = 0;
		res->session[0] = '\0';
		rc = rc == DA_OK ? DA_EDB : rc;
		goto out;
	}
	/* The person as DingTalk gave them, departments and all. */
	dir_user_clear(&res->user);
	res->user = du;
	memset(&du, 0, sizeof(du));
out:
	dir_user_clear(&du);
	return rc == DA_OK ? LOGIN_OK :
	    rc == DA_EDB ? db_problem(db) : problem_of(rc);
}

/* The state: present, this browser's, then consumed (res->rd kept). */
static enum login_problem
take_state(struct db *db, const struct login_input *in,
    struct login_result *res)
{
	char		 rd[LOGIN_RD_MAX];
	enum da_err	 rc;

	if (in->state == NULL || in->state[0] == '\0')
		return LOGIN_STATE_MISSING;
	if (in->state_cookie == NULL ||
	    !crypto_str_equal(in->state, in->state_cookie))
		return LOGIN_STATE_MISMATCH;
	rc = state_take(db, in->state, rd, sizeof(rd), &res->err);
	if (rc != DA_OK)
		return rc == DA_ESTATE ? LOGIN_STATE_INVALID : db_problem(db);
	login_rd(rd, res->rd);
	return LOGIN_OK;
}

/*
 * Our directory decides about res->user.userid: a session for an active
 * employee (the browser's old one ended), DINGAUTH_UNKNOWN_USER for
 * someone it does not know, a refusal for a leaver or a disabled user.
 */
static enum login_problem
directory_decides(struct db *db, const struct login_input *in,
    const struct dt_identity *id, struct login_result *res)
{
	struct dir_user		 u;
	enum login_problem	 p = LOGIN_INTERNAL;
	enum da_err		 rc;

	memset(&u, 0, sizeof(u));
	rc = directory_get_user(db, res->user.userid, &u, &res->err);
	if (rc == DA_ENOTFOUND) {
		switch (cfg()->unknown_user) {
		case CFG_UNKNOWN_ADMIT:
			p = admit(db, res->user.userid, in, res);
			break;
		case CFG_UNKNOWN_REVIEW:
			p = review(db, res->user.userid, id, in, res);
			break;
		default:
			DA_ERROR(&res->err, DA_ENOTFOUND, "%s is not in the "
			    "directory (DINGAUTH_UNKNOWN_USER=deny)",
			    res->user.userid);
			p = LOGIN_DENIED;
			break;
		}
		if (p == LOGIN_OK && in->session_cookie != NULL)
			session_end(db, in->session_cookie, NULL);
		goto out;
	}
	if (rc != DA_OK)
		goto out;
	snprintf(res->user.name, sizeof(res->user.name), "%s", u.name);
	if (u.disabled) {
		DA_ERROR(&res->err, DA_EPERM, "%s is disabled", u.userid);
		p = LOGIN_DISABLED;
		goto out;
	}
	if (!u.active) {
		DA_ERROR(&res->err, DA_ENOTMEMBER, "%s has left the company",
		    u.userid);
		p = LOGIN_INACTIVE;
		goto out;
	}
	/* Their departments, as the directory has them. */
	res->user.dept_ids = u.dept_ids;
	res->user.ndept = u.ndept;
	u.dept_ids = NULL;
	u.ndept = 0;
	/*
	 * A new id at every login; the one this browser had is ended. The
	 * session and its audit row: one transaction.
	 */
	if (db_begin_immediate(db, &res->err) != DA_OK)
		goto out;
	if (in->session_cookie != NULL)
		session_end(db, in->session_cookie, NULL);
	if (session_open(db, u.userid, in->remote_addr, in->user_agent,
	    res->session, &res->err) == DA_OK &&
	    audit_in(db, in, res, LOGIN_OK) == DA_OK &&
	    db_commit(db, &res->err) == DA_OK)
		p = LOGIN_OK;
	else {
		db_rollback(db);
		res->audited = 0;
		res->session[0] = '\0';
		p = db_problem(db);
	}
out:
	dir_user_clear(&u);
	return p;
}

void
login_result_clear(struct login_result *res)
{
	if (res == NULL)
		return;
	dir_user_clear(&res->user);
	crypto_cleanse(res->session, sizeof(res->session));
	memset(res, 0, sizeof(*res));
}

/*
 * The attempt's audit row, unless it went with its session or request
 * (a refusal writes nothing else), and its log line.
 */
static void
login_audit(struct db *db, const struct login_input *in,
    const struct login_result *res)
{
	struct audit_entry	 a;
	struct da_error		 err;
	char			 labels[METRICS_LABELS_MAX];

	audit_entry(in, res, res->problem, &a);
	snprintf(labels, sizeof(labels), "flow=\"%s\",outcome=\"%s\"",
	    a.flow, a.outcome);
	metrics_count(METRICS_LOGINS, labels);
	/*
	 * Refused because another process holds the write lock: the row
	 * would wait for that lock a second time; the log line records it.
	 */
	if (!res->audited && res->problem != LOGIN_BUSY &&
	    audit_record(db, &a, &err) != DA_OK)
		log_msg(LOG_ERR, "login: audit: %s", err.msg);
	audit_log(res->problem == LOGIN_INTERNAL ||
	    res->problem == LOGIN_MISCONFIGURED ? LOG_ERR : LOG_INFO, &a);
}

enum da_err
login_logout(struct db *db, const char *cookie, const char *remote_addr,
    const char *user_agent, struct da_error *err)
{
	struct session_user	 u;
	struct audit_entry	 a;
	enum da_err		 rc, live;

	memset(&a, 0, sizeof(a));
	if ((rc = db_begin_immediate(db, err)) != DA_OK)
		return rc;
	if ((live = session_check(db, cookie, &u, err)) != DA_OK &&
	    live != DA_ENOTFOUND) {
		rc = live;
		goto out;
	}
	if ((rc = session_end(db, cookie, err)) != DA_OK || live != DA_OK)
		goto out;
	a.event = AUDIT_LOGOUT;
	a.userid = u.userid;
	a.unionid = u.unionid;
	a.outcome = "ok";
	a.remote_addr = remote_addr;
	a.user_agent = user_agent;
	rc = audit_record(db, &a, err);
out:
	if (rc == DA_OK)
		rc = db_commit(db, err);
	else
		db_rollback(db);
	if (rc == DA_OK && a.userid != NULL)
		audit_log(LOG_INFO, &a);
	session_user_clear(&u);
	return rc;
}

void
login_exchange(struct db *db, const struct login_input *in,
    struct login_result *res)
{
	struct dt_identity	 id;
	enum da_err		 rc;

	memset(res, 0, sizeof(*res));
	memset(&id, 0, sizeof(id));
	snprintf(res->rd, sizeof(res->rd), "/");

	/* A flow we do not know: nothing consumed. */
	if (in->flow != NULL && in->flow[0] != '\0' && !is_inapp_code(in)) {
		DA_ERROR(&res->err, DA_EINPUT, "unknown flow");
		res->problem = LOGIN_BAD_REQUEST;
		goto out;
	}
	/* The state first. */
	if ((res->problem = take_state(db, in, res)) != LOGIN_OK)
		goto out;
	if (in->code == NULL || in->code[0] == '\0') {
		/* oauth2's refusal: redirect_uri?error=...&state=... (§d.1). */
		res->problem = in->error != NULL && in->error[0] != '\0' ?
		    LOGIN_DECLINED : LOGIN_CODE_MISSING;
		goto out;
	}
	if (strlen(in->code) > CODE_MAX) {
		DA_ERROR(&res->err, DA_ECODE, "code longer than %d bytes",
		    CODE_MAX);
		res->problem = LOGIN_CODE_REJECTED;
		goto out;
	}
	if (is_inapp_code(in))
		rc = identify_inapp(db, in->code, &id, res);
	else if ((rc = identify(db, in->code, &id, &res->err)) == DA_OK)
		rc = dt_userid_by_unionid(db, id.unionid, res->user.userid,
		    sizeof(res->user.userid), &res->err);
	if (rc != DA_OK) {
		res->problem = problem_of(rc);
		goto out;
	}
	snprintf(res->user.unionid, sizeof(res->user.unionid), "%s",
	    id.unionid);
	res->problem = directory_decides(db, in, &id, res);
out:
	login_audit(db, in, res);
	if (res->problem != LOGIN_OK)
		res->session[0] = '\0';
}
