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
 * "whoami" answers the signed-in user as JSON, or 401; "healthz" the
 * health checks (health.h), 200 or 503, to anyone (no session needed:
 * load balancers and monitors ask it).
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
#include "cidr.h"
#include "health.h"
#include "http.h"
#include "json.h"
#include "html.h"
#include "log.h"
#include "login.h"
#include "mem.h"
#include "metrics.h"
#include "page.h"
#include "prog.h"
#include "req.h"
#include "session.h"

#define RD_MAX		2048		/* longest REQUEST_URI kept as rd */

enum verdict {
	V_GRANT,		/* live session, passes the rule */
	V_NOSESSION,		/* no cookie, unknown, expired, user gone */
	V_FORBIDDEN,		/* live session, outside the rule */
	V_ERROR,		/* database trouble: fail closed */
};

static void	serve_authorize(struct req *, void *);
static void	serve_auth(struct req *, void *);
static void	serve_whoami(struct req *, void *);
static void	serve_healthz(struct req *, void *);
static void	serve_metrics(struct req *, void *);

static const struct req_route routes[] = {
	/* The Authorizer role, whatever the path and method. */
	{ NULL, REQ_M_ANY, serve_authorize, 0 },
	/* auth_request / forward-auth: nginx passes the main method. */
	{ "auth", REQ_M_ANY, serve_auth, 0 },
	{ "whoami", REQ_M_GET | REQ_M_HEAD, serve_whoami, REQ_M_ANY },
	{ "healthz", REQ_M_GET | REQ_M_HEAD, serve_healthz, REQ_M_ANY },
	{ "metrics", REQ_M_GET | REQ_M_HEAD, serve_metrics, 0 },
};

/* The decisions as counted (metrics.h): role and verdict, static. */
static const char *const decision_labels[3][4] = {
	{ "role=\"authorizer\",decision=\"grant\"",
	  "role=\"authorizer\",decision=\"login\"",
	  "role=\"authorizer\",decision=\"forbidden\"",
	  "role=\"authorizer\",decision=\"error\"" },
	{ "role=\"auth\",decision=\"grant\"",
	  "role=\"auth\",decision=\"login\"",
	  "role=\"auth\",decision=\"forbidden\"",
	  "role=\"auth\",decision=\"error\"" },
	{ "role=\"whoami\",decision=\"grant\"",
	  "role=\"whoami\",decision=\"login\"",
	  "role=\"whoami\",decision=\"forbidden\"",
	  "role=\"whoami\",decision=\"error\"" },
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

/*
 * The rule is read from cfg(): DINGAUTH_REQUIRE_USERS and
 * DINGAUTH_REQUIRE_DEPTS, split into arrays when the configuration
 * loaded.
 */
static enum verdict
decide(struct req *r, struct session_user *u)
{
	const struct config	*c = cfg();
	struct db	*db = prog_db();
	struct da_error	 err;
	const char	*id;
	enum da_err	 rc;
	size_t		 i;
	int		 yes = 0;

	memset(u, 0, sizeof(*u));
	if ((id = req_cookie(r, SESSION_COOKIE)) == NULL)
		return V_NOSESSION;
	if ((rc = session_check(db, id, u, &err)) == DA_ENOTFOUND)
		return V_NOSESSION;
	if (rc != DA_OK) {
		log_msg(LOG_ERR, "session check: %s", err.msg);
		return V_ERROR;
	}
	if (c->nrequire_users == 0 && c->nrequire_depts == 0)
		return V_GRANT;
	for (i = 0; i < c->nrequire_users; i++)
		if (strcmp(c->require_users[i], u->userid) == 0)
			return V_GRANT;
	if (c->nrequire_depts > 0) {
		if (directory_user_in_depts(db, u->userid, c->require_depts,
		    c->nrequire_depts, &yes, &err) != DA_OK) {
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
	char	*rd, *url, *page;

	page = req_own(r, login_route_path("login"));
	if (!with_rd)
		return page;
	/* A monster URI would make a monster Location; keep its path. */
	if (strlen(r->request_uri) <= RD_MAX && *r->request_uri == '/')
		rd = http_escape(r->request_uri);
	else if (strlen(r->path) <= RD_MAX && *r->path == '/')
		rd = http_escape(r->path);
	else
		rd = http_escape("/");
	url = xasprintf("%s?rd=%s", page, rd);
	free(rd);
	return req_own(r, url);
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

/* depts: the department ids joined as the header wants them. */
static const char *
field_value(const struct session_user *u, const char *depts, enum field f)
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
		return depts;
	default:
		return "";
	}
}

/* Grant headers: Variable-* or X-Auth-Request-*. -1 if one was refused. */
static int
put_fields(struct req *r, const struct session_user *u, int variables)
{
	enum field	 f;
	const char	*depts;
	int		 rc = 0;

	depts = req_own(r, dir_dept_ids_text(u->dept_ids, u->ndept));
	for (f = 0; f < F__MAX; f++)
		if (resp_header(r, variables ? fields[f].variable :
		    fields[f].header, header_safe(r, field_value(u, depts,
		    f))) == -1)
			rc = -1;
	return rc;
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
		    page_text("deny.login.json"), login);
		return;
	}
	resp_header(r, "Location", login);
	{
		const struct html_var	 vars[] = {
			{ "login", login, 0 },
		};

		page_deny(r, 302, "deny-login.html",
		    page_text("deny.login.title"), vars, 1);
	}
}

/* One department of the rule: "department 2", or with its name. */
static void
rule_item(struct buf *out, enum page_lang l, long long id, int names)
{
	char		 num[24], name[DIR_TEXT_MAX];
	struct da_error	 err;
	enum da_err	 rc = DA_ENOTFOUND;

	snprintf(num, sizeof(num), "%lld", id);
	if (names && (rc = directory_dept_name(prog_db(), id, name,
	    sizeof(name), &err)) != DA_OK && rc != DA_ENOTFOUND)
		log_msg(LOG_WARN, "department rule: %s", err.msg);
	{
		const struct html_var	 v[] = {
			{ "id", num, 0 }, { "name", name, 0 },
		};

		page_format_in(l, out, rc == DA_OK ? "rule.item.named" :
		    "rule.item", v, 2);
	}
}

/*
 * Why the rule keeps u out, from the catalog's rule.* texts in language
 * l, the departments by name when names is set (the page) or by id only
 * (X-Auth-Request-Reason: English, ASCII).
 */
static char *
rule_reason(struct req *r, enum page_lang l, int names)
{
	const struct config	*c = cfg();
	struct buf		 list, item, who, depts, out;
	size_t			 i, n = c->nrequire_depts;

	buf_init(&list, 8192);
	buf_init(&who, 8192);
	buf_init(&depts, 8192);
	buf_init(&out, 8192);
	/* "2", "2 or 7", "2, 5 or 7". */
	for (i = 0; i < n; i++) {
		buf_init(&item, 8192);
		rule_item(&item, l, c->require_depts[i], names);
		if (i == 0) {
			buf_free(&list);
			list = item;
			continue;
		}
		{
			const struct html_var	 v[] = {
				{ "list", list.data, 0 },
				{ "item", item.data, 0 },
			};
			struct buf		 joined;

			buf_init(&joined, 8192);
			page_format_in(l, &joined, i + 1 == n ?
			    "rule.list.last" : "rule.list.more", v, 2);
			buf_free(&list);
			buf_free(&item);
			list = joined;
		}
	}
	{
		const struct html_var	 v[] = {
			{ "depts", list.data, 0 },
		};

		if (n > 0)
			page_format_in(l, &depts, n > 1 ? "rule.depts" :
			    "rule.dept", v, 1);
	}
	{
		const struct html_var	 v[] = {
			{ "depts", depts.data, 0 },
			{ "users", page_text_in(l, "rule.users"), 0 },
		};

		if (n > 0 && c->nrequire_users > 0)
			page_format_in(l, &who, "rule.both", v, 2);
		else if (n > 0)
			buf_puts(&who, depts.data);
		else
			buf_puts(&who, page_text_in(l, "rule.users"));
	}
	{
		const struct html_var	 v[] = {
			{ "who", who.data, 0 },
		};

		page_format_in(l, &out, "rule.reason", v, 1);
	}
	buf_free(&list);
	buf_free(&who);
	buf_free(&depts);
	return req_own(r, buf_take(&out));
}

static void
deny_forbidden(struct req *r, const struct session_user *u)
{
	const char	*reason;

	if (req_wants_json(r)) {
		reason = rule_reason(r, page_current_lang(), 0);
		json_answer(r, 403, "forbidden", reason, NULL);
		return;
	}
	reason = rule_reason(r, page_current_lang(), 1);
	{
		const struct html_var	 vars[] = {
			{ "name", u->name[0] != '\0' ? u->name : u->userid, 0 },
			{ "userid", u->userid, 0 },
			{ "reason", reason, 0 },
			{ "logout", req_own(r, login_route_path("logout")), 0 },
			{ "home", "/", 0 },
			{ "ref", log_ref(), 0 },
		};

		page_deny(r, 403, "deny-forbidden.html",
		    page_text("deny.forbidden.title"), vars,
		    sizeof(vars) / sizeof(vars[0]));
	}
}

static void
deny_error(struct req *r, const char *message)
{
	if (req_wants_json(r)) {
		json_answer(r, 500, "internal", message, NULL);
		return;
	}
	{
		const struct html_var	 vars[] = {
			{ "message", message, 0 },
			{ "ref", log_ref(), 0 },
		};

		log_msg(LOG_ERR, "answered 500: %s", message);
		page_deny(r, 500, "deny-error.html",
		    page_text("deny.error.title"), vars, 2);
	}
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
		deny_error(r, page_text("deny.error.fields"));
	}
}

/*
 * The Authorizer role (variables: Variable-* on a grant, a 302 to the
 * login page) and the auth responder (X-Auth-Request-* on a grant, a
 * 401 naming the login page for nginx, the reason as a header on 403).
 */
static void
answer(struct req *r, int variables)
{
	struct session_user	 su;
	const char		*login;
	enum verdict		 v = decide(r, &su);

	metrics_count(METRICS_AUTHORIZER,
	    decision_labels[variables ? 0 : 1][v]);
	switch (v) {
	case V_GRANT:
		grant(r, &su, variables);
		break;
	case V_NOSESSION:
		login = login_url(r, 1);
		if (variables) {
			deny_login(r, login);
			break;
		}
		/* nginx reads the target from here: Location would be lost. */
		resp_header(r, "X-Auth-Request-Redirect", login);
		json_answer(r, 401, "unauthenticated",
		    page_text("deny.login.json"), login);
		break;
	case V_FORBIDDEN:
		if (!variables)
			resp_header(r, "X-Auth-Request-Reason",
			    rule_reason(r, PAGE_LANG_EN, 0));
		deny_forbidden(r, &su);
		break;
	case V_ERROR:
		deny_error(r, page_text("deny.error.database"));
		break;
	}
	session_user_clear(&su);
}

static void
serve_authorize(struct req *r, void *arg)
{
	answer(r, 1);
}

static void
serve_auth(struct req *r, void *arg)
{
	answer(r, 0);
}

static void
serve_whoami(struct req *r, void *arg)
{
	struct session_user	 su, *u = &su;
	enum verdict		 v = decide(r, &su);
	json			*doc, *depts;
	size_t			 i;

	metrics_count(METRICS_AUTHORIZER, decision_labels[2][v]);
	switch (v) {
	case V_GRANT:
	case V_FORBIDDEN:
		doc = json_new_object();
		json_add_str(doc, "userid", u->userid);
		json_add_str(doc, "unionid", u->unionid);
		json_add_str(doc, "name", u->name);
		depts = json_new_array();
		for (i = 0; i < u->ndept; i++)
			json_append_int(depts, u->dept_ids[i]);
		json_add(doc, "dept_ids", depts);
		json_add_int(doc, "session_expires_at", u->expires_at);
		json_add_bool(doc, "allowed", v == V_GRANT);
		resp_json(r, 200, doc);
		json_free(doc);
		break;
	case V_NOSESSION:
		json_answer(r, 401, "unauthenticated",
		    page_text("deny.login.json"), login_url(r, 0));
		break;
	case V_ERROR:
		json_answer(r, 500, "internal",
		    page_text("deny.error.database"), NULL);
		break;
	}
	session_user_clear(&su);
}

/*
 * docs/contract.md: 200 {"status":"ok",...} or 503 {"status":"fail",...},
 * also when the program cannot serve (prog_unguarded): no path, no key.
 */
static void
serve_healthz(struct req *r, void *arg)
{
	struct health	 h;
	json		*doc;

	health_run(prog_db(), &h);
	if (!prog_ready())
		snprintf(h.check[HEALTH_DATABASE].text,
		    sizeof(h.check[HEALTH_DATABASE].text), "not checked: the "
		    "configuration did not load (the log says why)");
	doc = health_json(&h);
	resp_json(r, h.ok ? 200 : 503, doc);
	json_free(doc);
}

/*
 * docs/contract.md: Prometheus' text format for DINGAUTH_METRICS_ALLOW,
 * 403 for anyone else. The shared counters (metrics.h), then the gauges
 * read from the database now (health.h).
 */
static void
serve_metrics(struct req *r, void *arg)
{
	struct buf	 out;

	resp_header(r, "Cache-Control", "no-store");
	if (!cidr_list_match(cfg()->str[CFG_METRICS_ALLOW], r->remote_addr)) {
		log_msg(LOG_INFO, "metrics: %s is not in DINGAUTH_METRICS_ALLOW",
		    r->remote_addr != NULL ? r->remote_addr : "?");
		json_answer(r, 403, "forbidden", "not in DINGAUTH_METRICS_ALLOW",
		    NULL);
		return;
	}
	buf_init(&out, 1024 * 1024);
	metrics_write(&out);
	health_metrics(prog_db(), &out);
	resp_status(r, 200);
	resp_header(r, "Content-Type", "text/plain; version=0.0.4; "
	    "charset=utf-8");
	resp_write(r, out.data, out.len);
	buf_free(&out);
}

int
main(int argc, char *argv[])
{
	/* Fails closed: a broken program answers 500, never a grant. */
	prog_start("authorize.fcgi", CFG_NEED_DB, PROG_BUSY_AUTHORIZE, argc,
	    argv);
	/* Monitoring hears "fail" in JSON, not a 500 page (docs/contract.md). */
	prog_unguarded("healthz");
	return prog_serve(routes, sizeof(routes) / sizeof(routes[0]), 0,
	    NULL);
}
