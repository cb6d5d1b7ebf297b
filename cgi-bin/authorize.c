/*
 * authorize.fcgi: may this request pass? One program, two roles.
 *
 * FastCGI Authorizer (lighttpd "mode" => "authorizer", Apache
 * mod_authnz_fcgi): a live session of an active employee who passes
 * this instance's access rule gets "Status: 200" and the Variable-*
 * headers and nothing else, since Apache copies any other header of a
 * grant into the final response. Otherwise: a 302 to the login page
 * carrying the original REQUEST_URI as rd (a 401 JSON for script), or
 * a 403 page that says why. Deny bodies start with '<' or '{' (Apache
 * takes a body starting with '/' for an ErrorDocument) and are ASCII
 * (Apache relabels them iso-8859-1): names go out as character
 * references. JSON denials carry "X-Dingauth-Json: 1", from which
 * Apache's example configuration restores their Content-Type.
 *
 * Responder (nginx auth_request, forward-auth proxies), routed on the
 * last path segment: "auth" answers 200 with X-Auth-Request-* headers,
 * 401 with X-Auth-Request-Redirect, or 403 with X-Auth-Request-Reason;
 * "whoami" answers the signed-in user as JSON, or 401.
 *
 * The rule is DINGAUTH_REQUIRE_USERS and DINGAUTH_REQUIRE_DEPTS (a
 * department includes the departments below it): a user passes when
 * listed in either; with neither set every active employee passes.
 * Locations with different rules run differently configured
 * instances. Per request: one indexed session lookup (plus one for a
 * department rule), never a call to DingTalk.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "db.h"
#include "directory.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "mem.h"
#include "req.h"
#include "session.h"
#include "version.h"

#define RULE_MAX	256		/* ids or names per rule list */
#define RD_MAX		2048		/* longest REQUEST_URI kept as rd */

struct rule {
	long long	 depts[RULE_MAX];
	size_t		 ndepts;
	char		*users[RULE_MAX];
	size_t		 nusers;
};

struct authz {
	struct db	*db;
	struct rule	 rule;
	int		 broken;	/* configuration failed to load */
	char		 broken_msg[400];
};

enum verdict {
	V_GRANT,		/* live session, passes the rule */
	V_NOSESSION,		/* no cookie, unknown, expired, user gone */
	V_FORBIDDEN,		/* live session, outside the rule */
	V_ERROR,		/* database trouble: fail closed */
};

enum route {
	ROUTE_AUTHORIZE,	/* the Authorizer role, any path */
	ROUTE_AUTH,		/* responder: auth_request / forward-auth */
	ROUTE_WHOAMI,		/* responder: the user as JSON */
	ROUTE__MAX
};

typedef void	(*answer_fn)(struct req *, struct authz *, enum verdict,
		    const struct session_user *);

static void	answer_authorize(struct req *, struct authz *, enum verdict,
		    const struct session_user *);
static void	answer_auth(struct req *, struct authz *, enum verdict,
		    const struct session_user *);
static void	answer_whoami(struct req *, struct authz *, enum verdict,
		    const struct session_user *);

static const struct route_def {
	const char	*name;		/* last path segment (responder) */
	int		 any_method;	/* else GET and HEAD only */
	answer_fn	 answer;
} routes[ROUTE__MAX] = {
	[ROUTE_AUTHORIZE] = { NULL, 1, answer_authorize },
	/* nginx passes the main request's method to the subrequest. */
	[ROUTE_AUTH] = { "auth", 1, answer_auth },
	[ROUTE_WHOAMI] = { "whoami", 0, answer_whoami },
};

/* The grant's fields, as Variable-* (authorizer) and X-Auth-Request-*. */
enum field {
	F_USER, F_USERID, F_UNIONID, F_NAME, F_DEPT_IDS, F__MAX
};

static const struct field_def {
	const char	*variable;	/* Variable-NAME */
	const char	*header;	/* responder header */
} fields[F__MAX] = {
	[F_USER] = { "Variable-REMOTE_USER", "X-Auth-Request-User" },
	[F_USERID] = { "Variable-DINGTALK_USERID", "X-Auth-Request-Userid" },
	[F_UNIONID] = { "Variable-DINGTALK_UNIONID",
	    "X-Auth-Request-Unionid" },
	[F_NAME] = { "Variable-DINGTALK_NAME", "X-Auth-Request-Name" },
	[F_DEPT_IDS] = { "Variable-DINGTALK_DEPT_IDS",
	    "X-Auth-Request-Dept-Ids" },
};

/* Parse the rule lists (already validated by config_load). */
static int
rule_load(struct rule *rule, struct da_error *err)
{
	char	*list = NULL, *p, *item;
	int	 rc = -1;

	list = xstrdup(config_str(CFG_REQUIRE_DEPTS));
	for (p = list; (item = strsep(&p, ",")) != NULL; ) {
		item += strspn(item, " \t");
		if (*item == '\0')
			continue;
		if (rule->ndepts == RULE_MAX) {
			DA_ERROR(err, DA_ECONFIG, "DINGAUTH_REQUIRE_DEPTS: "
			    "more than %d departments", RULE_MAX);
			goto out;
		}
		rule->depts[rule->ndepts++] = strtoll(item, NULL, 10);
	}
	free(list);
	list = xstrdup(config_str(CFG_REQUIRE_USERS));
	for (p = list; (item = strsep(&p, ",")) != NULL; ) {
		item += strspn(item, " \t");
		item[strcspn(item, " \t")] = '\0';
		if (*item == '\0')
			continue;
		if (rule->nusers == RULE_MAX) {
			DA_ERROR(err, DA_ECONFIG, "DINGAUTH_REQUIRE_USERS: "
			    "more than %d users", RULE_MAX);
			goto out;
		}
		rule->users[rule->nusers++] = xstrdup(item);
	}
	rc = 0;
out:
	free(list);
	return rc;
}

static void
rule_free(struct rule *rule)
{
	size_t	 i;

	for (i = 0; i < rule->nusers; i++)
		free(rule->users[i]);
	rule->nusers = 0;
}

static int
rule_is_set(const struct rule *rule)
{
	return rule->ndepts > 0 || rule->nusers > 0;
}

static enum verdict
decide(struct authz *az, struct req *r, struct session_user *u)
{
	struct da_error	 err;
	const char	*id;
	enum da_err	 rc;
	size_t		 i;
	int		 yes = 0;

	memset(u, 0, sizeof(*u));
	if (az->db == NULL &&
	    db_open(config_str(CFG_DB), &az->db, &err) != DA_OK) {
		log_msg(LOG_ERR, "database: %s", err.msg);
		return V_ERROR;
	}
	if ((id = req_cookie(r, SESSION_COOKIE)) == NULL)
		return V_NOSESSION;
	if ((rc = session_check(az->db, id, u, &err)) == DA_ENOTFOUND)
		return V_NOSESSION;
	if (rc != DA_OK) {
		log_msg(LOG_ERR, "session check: %s", err.msg);
		return V_ERROR;
	}
	if (!rule_is_set(&az->rule))
		return V_GRANT;
	for (i = 0; i < az->rule.nusers; i++)
		if (strcmp(az->rule.users[i], u->userid) == 0)
			return V_GRANT;
	if (az->rule.ndepts > 0) {
		if (directory_user_in_depts(az->db, u->userid, az->rule.depts,
		    az->rule.ndepts, &yes, &err) != DA_OK) {
			log_msg(LOG_ERR, "department rule: %s", err.msg);
			return V_ERROR;
		}
		if (yes)
			return V_GRANT;
	}
	log_msg(LOG_INFO, "%s is signed in but outside this location's rule",
	    u->userid);
	return V_FORBIDDEN;
}

/* The login page with rd = the request's own URI (raw, query kept). */
static char *
login_url(struct req *r, int with_rd)
{
	char	*rd, *url;

	if (!with_rd)
		return req_own(r, xasprintf("%s/login",
		    config_str(CFG_BASE_PATH)));
	/* A monster URI would make a monster Location; keep its path. */
	if (strlen(r->request_uri) <= RD_MAX && *r->request_uri == '/')
		rd = http_escape(r->request_uri);
	else if (strlen(r->path) <= RD_MAX && *r->path == '/')
		rd = http_escape(r->path);
	else
		rd = http_escape("/");
	url = xasprintf("%s/login?rd=%s", config_str(CFG_BASE_PATH), rd);
	free(rd);
	return req_own(r, url);
}

/* Markup characters and their references. */
static const char *const html_entity[0x80] = {
	['&'] = "&amp;", ['<'] = "&lt;", ['>'] = "&gt;",
	['"'] = "&quot;", ['\''] = "&#39;",
};

/*
 * Length of the UTF-8 sequence at p (2 to 4) with its code point in *cp,
 * or 0 if it is not one (overlong, surrogate, out of range, cut short).
 */
static int
utf8_decode(const unsigned char *p, unsigned long *cp)
{
	static const unsigned long	 least[5] = { 0, 0, 0x80, 0x800,
					    0x10000 };
	int				 n, i;

	if ((*p & 0xe0) == 0xc0)
		n = 2;
	else if ((*p & 0xf0) == 0xe0)
		n = 3;
	else if ((*p & 0xf8) == 0xf0)
		n = 4;
	else
		return 0;
	*cp = *p & (0x7f >> n);
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		*cp = (*cp << 6) | (p[i] & 0x3f);
	}
	if (*cp < least[n] || *cp > 0x10ffff ||
	    (*cp >= 0xd800 && *cp <= 0xdfff))
		return 0;
	return n;
}

/*
 * HTML-escape s into the body, as ASCII: markup characters and every
 * non-ASCII character become references, so the page reads right even
 * where a server relabels it iso-8859-1 (Apache's deny path). Controls
 * become spaces, broken UTF-8 U+FFFD. (html.h's escapers keep UTF-8.)
 */
static void
html_put(struct req *r, const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	unsigned long		 cp;
	int			 n;

	while (*p != '\0') {
		if (*p >= 0x80) {
			if ((n = utf8_decode(p, &cp)) == 0) {
				resp_puts(r, "&#xFFFD;");
				n = 1;
			} else
				resp_printf(r, "&#x%lX;", cp);
			p += n;
			continue;
		}
		if (html_entity[*p] != NULL)
			resp_puts(r, html_entity[*p]);
		else if (*p < 0x20 || *p == 0x7f)
			resp_puts(r, " ");
		else
			resp_write(r, p, 1);
		p++;
	}
}

/* A header value: control characters (CR, LF, ...) become spaces. */
static const char *
header_safe(struct req *r, const char *s)
{
	char	*copy, *p;

	if (strcspn(s, "\r\n\t\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c"
	    "\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b"
	    "\x1c\x1d\x1e\x1f\x7f") == strlen(s))
		return s;
	copy = req_own(r, xstrdup(s));
	for (p = copy; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return copy;
}

static const char *
field_value(const struct session_user *u, enum field f)
{
	switch (f) {
	case F_USER:
	case F_USERID:
		return u->userid;
	case F_UNIONID:
		return u->unionid;
	case F_NAME:
		return u->name;
	case F_DEPT_IDS:
		return u->dept_ids;
	default:
		return "";
	}
}

/* Grant headers: Variable-* or X-Auth-Request-*. -1 if one was refused. */
static int
put_fields(struct req *r, const struct session_user *u, int variables)
{
	enum field	 f;
	int		 rc = 0;

	for (f = 0; f < F__MAX; f++)
		if (resp_header(r, variables ? fields[f].variable :
		    fields[f].header, header_safe(r, field_value(u, f))) == -1)
			rc = -1;
	return rc;
}

static void
page_head(struct req *r, int status, const char *title)
{
	resp_status(r, status);
	resp_header(r, "Content-Type", "text/html; charset=utf-8");
	resp_header(r, "Cache-Control", "no-store");
	resp_puts(r, "<!DOCTYPE html>\n<html lang=\"en\"><head>"
	    "<meta charset=\"utf-8\">"
	    "<meta name=\"viewport\" content=\"width=device-width\">"
	    "<title>");
	html_put(r, title);
	resp_puts(r, "</title><style>body{font:16px/1.5 sans-serif;"
	    "max-width:36em;margin:3em auto;padding:0 1em;color:#222}"
	    "</style></head>\n<body><main>\n<h1>");
	html_put(r, title);
	resp_puts(r, "</h1>\n");
}

static void
page_foot(struct req *r)
{
	resp_puts(r, "</main></body></html>\n");
}

static void
json_answer(struct req *r, int status, const char *error,
    const char *message, const char *login)
{
	json	*doc = json_new_object();

	/* Apache relabels deny bodies; its example config reads this. */
	if (status != 200 && r->role == REQ_AUTHORIZER)
		resp_header(r, "X-Dingauth-Json", "1");
	json_add_str(doc, "error", error);
	json_add_str(doc, "message", message);
	if (login != NULL)
		json_add_str(doc, "login", login);
	resp_json(r, status, doc);
	json_free(doc);
}

static void
deny_login(struct req *r, const char *login)
{
	if (req_wants_json(r)) {
		json_answer(r, 401, "unauthenticated",
		    "Sign in with DingTalk first.", login);
		return;
	}
	resp_header(r, "Location", login);
	page_head(r, 302, "Sign in with DingTalk");
	resp_puts(r, "<p>This page is for employees. <a href=\"");
	html_put(r, login);
	resp_puts(r, "\">Sign in with DingTalk</a> to continue.</p>\n");
	page_foot(r);
}

/* Why the rule keeps u out, as plain ASCII (also a header value). */
static char *
rule_reason(struct req *r, const struct rule *rule)
{
	struct buf	 b;
	size_t		 i;

	buf_init(&b, 8192);
	buf_puts(&b, "This location is open only to ");
	if (rule->ndepts > 0) {
		buf_printf(&b, "members of department%s ",
		    rule->ndepts > 1 ? "s" : "");
		for (i = 0; i < rule->ndepts; i++)
			buf_printf(&b, "%s%lld", i == 0 ? "" :
			    i + 1 == rule->ndepts ? " or " : ", ",
			    rule->depts[i]);
		buf_puts(&b, rule->ndepts > 1 ?
		    " (or of a department below them)" :
		    " (or of a department below it)");
	}
	if (rule->nusers > 0)
		buf_printf(&b, "%snamed people", rule->ndepts > 0 ?
		    ", and to " : "");
	buf_puts(&b, ".");
	return req_own(r, buf_take(&b));
}

static void
deny_forbidden(struct req *r, struct authz *az, const struct session_user *u)
{
	const char	*reason = rule_reason(r, &az->rule);

	if (req_wants_json(r)) {
		json_answer(r, 403, "forbidden", reason, NULL);
		return;
	}
	page_head(r, 403, "Not for your account");
	resp_puts(r, "<p>You are signed in as <b>");
	html_put(r, u->name[0] != '\0' ? u->name : u->userid);
	resp_puts(r, "</b> (");
	html_put(r, u->userid);
	resp_puts(r, "). ");
	html_put(r, reason);
	resp_puts(r, "</p>\n<p>If you need this page, ask the people who run "
	    "this site to add you. <a href=\"");
	html_put(r, config_str(CFG_BASE_PATH));
	resp_puts(r, "/logout\">Sign out</a> to use another account.</p>\n");
	page_foot(r);
}

static void
deny_error(struct req *r, const char *message)
{
	if (req_wants_json(r)) {
		json_answer(r, 500, "internal", message, NULL);
		return;
	}
	page_head(r, 500, "Sign-in is not working");
	resp_puts(r, "<p>");
	html_put(r, message);
	resp_puts(r, "</p>\n<p>Please try again in a moment.</p>\n");
	page_foot(r);
}

/*
 * 200 with the grant's fields, Variable-* (the authorizer: status and
 * those only, nothing else may leak) or X-Auth-Request-* (not cached);
 * an error page if a field was refused.
 */
static void
grant(struct req *r, const struct session_user *u, int variables)
{
	resp_status(r, 200);
	if (!variables)
		resp_header(r, "Cache-Control", "no-store");
	if (put_fields(r, u, variables) == -1) {
		resp_clear(r);
		deny_error(r, "The account's data cannot be passed on.");
	}
}

static void
answer_authorize(struct req *r, struct authz *az, enum verdict v,
    const struct session_user *u)
{
	switch (v) {
	case V_GRANT:
		grant(r, u, 1);
		break;
	case V_NOSESSION:
		deny_login(r, login_url(r, 1));
		break;
	case V_FORBIDDEN:
		deny_forbidden(r, az, u);
		break;
	case V_ERROR:
		deny_error(r, "The login database cannot be read.");
		break;
	}
}

static void
answer_auth(struct req *r, struct authz *az, enum verdict v,
    const struct session_user *u)
{
	const char	*login;

	switch (v) {
	case V_GRANT:
		grant(r, u, 0);
		break;
	case V_NOSESSION:
		/* nginx reads the target from here: Location would be lost. */
		login = login_url(r, 1);
		resp_header(r, "X-Auth-Request-Redirect", login);
		json_answer(r, 401, "unauthenticated",
		    "Sign in with DingTalk first.", login);
		break;
	case V_FORBIDDEN:
		resp_header(r, "X-Auth-Request-Reason",
		    rule_reason(r, &az->rule));
		deny_forbidden(r, az, u);
		break;
	case V_ERROR:
		deny_error(r, "The login database cannot be read.");
		break;
	}
}

static void
answer_whoami(struct req *r, struct authz *az, enum verdict v,
    const struct session_user *u)
{
	json		*doc, *depts;
	char		*list, *p, *item;

	switch (v) {
	case V_GRANT:
	case V_FORBIDDEN:
		doc = json_new_object();
		json_add_str(doc, "userid", u->userid);
		json_add_str(doc, "unionid", u->unionid);
		json_add_str(doc, "name", u->name);
		depts = json_new_array();
		list = xstrdup(u->dept_ids);
		for (p = list; (item = strsep(&p, ",")) != NULL; )
			if (*item != '\0')
				json_append_int(depts, strtoll(item, NULL, 10));
		free(list);
		json_add(doc, "dept_ids", depts);
		json_add_int(doc, "session_expires_at", u->expires_at);
		json_add_bool(doc, "allowed", v == V_GRANT);
		resp_json(r, 200, doc);
		json_free(doc);
		break;
	case V_NOSESSION:
		json_answer(r, 401, "unauthenticated",
		    "Sign in with DingTalk first.", login_url(r, 0));
		break;
	case V_ERROR:
		json_answer(r, 500, "internal",
		    "The login database cannot be read.", NULL);
		break;
	}
}

static void
handle(struct req *r, void *arg)
{
	struct authz		*az = arg;
	struct session_user	 u;
	enum route		 route;
	enum verdict		 v;

	if (az->broken) {
		if (r->role == REQ_RESPONDER)
			json_answer(r, 500, "config", az->broken_msg, NULL);
		else
			deny_error(r, az->broken_msg);
		return;
	}
	if (r->role == REQ_AUTHORIZER)
		route = ROUTE_AUTHORIZE;
	else {
		for (route = ROUTE_AUTH; route < ROUTE__MAX; route++)
			if (strcmp(routes[route].name, r->route) == 0)
				break;
		if (route == ROUTE__MAX) {
			json_answer(r, 404, "not_found",
			    "authorize.fcgi answers auth and whoami.", NULL);
			return;
		}
	}
	if (!routes[route].any_method && r->method != REQ_GET &&
	    r->method != REQ_HEAD) {
		resp_header(r, "Allow", "GET, HEAD");
		json_answer(r, 405, "method", "Use GET.", NULL);
		return;
	}
	v = decide(az, r, &u);
	routes[route].answer(r, az, v, &u);
}

int
main(int argc, char *argv[])
{
	struct authz	 az;
	struct da_error	 err;
	int		 rc;

	memset(&az, 0, sizeof(az));
	version_option(argc, argv, "authorize.fcgi");
	log_init("authorize");
	if (config_start(CFG_NEED_DB, &err) != DA_OK ||
	    rule_load(&az.rule, &err) == -1) {
		/* Keep answering, so a browser gets a page, not a 503. */
		log_msg(LOG_ERR, "%s", err.msg);
		az.broken = 1;
		snprintf(az.broken_msg, sizeof(az.broken_msg),
		    "dingauth is not configured correctly: %s", err.msg);
	}
	rc = req_serve(handle, &az, 0);
	db_close(az.db);
	rule_free(&az.rule);
	return rc;
}
