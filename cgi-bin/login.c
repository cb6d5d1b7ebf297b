/*
 * login.fcgi: the login page and logout, routed on the last path segment.
 *
 * GET /dingauth/login?rd=/path
 *	A live session goes straight to rd. Without one: a fresh login
 *	state (random, single-use, 10 minutes, remembering rd) bound to
 *	the dingauth_state cookie, and the page with DingTalk's embedded QR
 *	code for the configured flow plus a plain link to the same
 *	authorization URL. A live session and no rd at all shows who is
 *	signed in, with a way to sign out.
 *	Inside the DingTalk client (User-Agent with "DingTalk", or
 *	?inapp=1; ?inapp=0 never), the in-app page instead: no QR code,
 *	DingTalk's JSAPI asks for a free-login code for DINGTALK_CORP_ID
 *	and static/inapp.js goes on to /exchange?flow=inapp&code=&state=
 *	(docs/dingtalk.md §i.1). After a sign-out it waits for a click.
 * GET /dingauth/logout[?rd=/path]
 *	A page with a sign-out button (POST), nothing changed.
 * POST /dingauth/logout[?rd=/path]
 *	From a page of this site only (Sec-Fetch-Site, else Origin): ends
 *	the session, clears the cookie, redirects to the login page. From
 *	another site: 403 with the sign-out page, nothing changed.
 *
 * rd is kept only as a same-site relative path (login_rd); anything
 * else becomes "/".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "db.h"
#include "html.h"
#include "log.h"
#include "login.h"
#include "mem.h"
#include "page.h"
#include "prog.h"
#include "req.h"
#include "session.h"

#define BODY_MAX	(16 * 1024)
#define ORIGIN_MAX	512
#define PRUNE_EVERY	60	/* seconds between prunes, per process */
/* Set by logout for the login page it redirects to, read once there. */
#define NOTICE_COOKIE	"dingauth_notice"
#define NOTICE_TTL	60

struct ctx {
	long long	 pruned_at;	/* last session_prune */
};

static void	serve_login(struct req *, void *);
static void	serve_logout(struct req *, void *);

static const struct req_route routes[] = {
	{ "login", REQ_M_GET | REQ_M_HEAD, serve_login, 0 },
	{ "logout", REQ_M_GET | REQ_M_POST, serve_logout, 0 },
};

static void
show_account(struct req *r, const struct session_user *u)
{
	char	*logout = login_route_path("logout");

	{
		const struct html_var	 vars[] = {
			{ "name", u->name, 0 },
			{ "userid", u->userid, 0 },
			{ "home", "/", 0 },
			{ "logout", logout, 0 },
		};

		page_render(r, 200, "account.html", page_text("account.title"),
		    vars, sizeof(vars) / sizeof(vars[0]), NULL);
	}
	free(logout);
}

/*
 * A notice above the login page ("" for none): the notice cookie that
 * logout left, said once (the cookie is cleared); or, ended non-NULL,
 * why the browser's session ended (session_ended: once).
 */
static char *
login_notice_why(struct req *r, const enum session_end_why *ended)
{
	const char	*n = req_cookie(r, NOTICE_COOKIE);
	struct buf	 b;
	char		 key[64];

	buf_init(&b, 4096);
	if (ended != NULL) {
		/* The name is ours (session_end_name), never the request's. */
		snprintf(key, sizeof(key), "login.notice.%s",
		    session_end_name(*ended));
		buf_printf(&b, "<p class=\"notice ended\" id=\"notice\" "
		    "data-notice=\"%s\">", session_end_name(*ended));
		html_escape_text(&b, page_text(key));
		buf_puts(&b, "</p>");
	}
	if (n != NULL) {
		resp_cookie(r, NOTICE_COOKIE, "", 0);
		if (strcmp(n, "signed_out") == 0 && ended == NULL) {
			buf_puts(&b, "<p class=\"notice\" id=\"notice\" "
			    "data-notice=\"signed_out\">");
			html_escape_text(&b, page_text("login.notice.signed_out"));
			buf_puts(&b, "</p>");
		}
	}
	return req_own(r, buf_take(&b));
}

static char *
login_notice(struct req *r)
{
	return login_notice_why(r, NULL);
}

/*
 * The in-app page with this attempt's state. Without a notice it asks
 * DingTalk at once; with one (the user just signed out) it waits for a
 * click, or signing out inside DingTalk would sign them in again.
 */
static void
show_inapp(struct req *r, const char *rd, const char *state)
{
	char		*exchange = login_route_path("exchange");
	char		*page = login_page_path(rd), *fallback, *csp;
	const char	*notice = login_notice(r);

	/* The QR page, never this one again (?inapp=0). */
	fallback = xasprintf("%s%sinapp=0", page, strchr(page, '?') != NULL ?
	    "&" : "?");
	csp = page_inapp_csp(cfg()->str[CFG_JSAPI_JS]);
	resp_cookie(r, STATE_COOKIE, state, STATE_TTL);
	{
		const struct html_var	 vars[] = {
			{ "corp_id", cfg()->str[CFG_CORP_ID], 0 },
			{ "exchange", exchange, 0 },
			{ "state", state, 0 },
			{ "jsapi_js", cfg()->str[CFG_JSAPI_JS], 0 },
			{ "fallback", fallback, 0 },
			{ "start", notice[0] != '\0' ? "click" : "auto", 0 },
			{ "notice", notice, 1 },
		};

		page_render(r, 200, "inapp.html", page_text("inapp.title"),
		    vars, sizeof(vars) / sizeof(vars[0]), csp);
	}
	free(csp);
	free(fallback);
	free(page);
	free(exchange);
}

/*
 * Old states and sessions go, at most once a minute per process: not a
 * write transaction on every page. Housekeeping never waits for another
 * process's lock.
 */
static void
prune_now(struct ctx *c, struct db *db)
{
	struct da_error	 err = { 0 };
	int		 pruned, budget;

	if (db_now() - c->pruned_at < PRUNE_EVERY)
		return;
	c->pruned_at = db_now();
	budget = db_busy_budget(db, 0);
	if (session_prune(db, &pruned, &err) != DA_OK && !db_busy(db))
		log_msg(LOG_WARN, "login: prune: %s", err.msg);
	db_busy_budget(db, budget);
}

/* The QR (or authorization page) login with this attempt's state. */
static void
show_qr(struct req *r, const char *state, const char *notice)
{
	struct da_error	 err = { 0 };
	char		 origin[ORIGIN_MAX], *url = NULL, *csp = NULL;
	char		*redirect_uri = NULL;

	if (login_authorize_url(state, &url, &err) != DA_OK) {
		page_config_error(r, &err);
		goto out;
	}
	redirect_uri = login_redirect_uri();
	login_frame_origin(origin, sizeof(origin));
	csp = page_login_csp(origin, cfg()->str[CFG_DDLOGIN_JS]);
	resp_cookie(r, STATE_COOKIE, state, STATE_TTL);
	{
		const struct html_var	 vars[] = {
			{ "flow", config_choice(CFG_LOGIN_FLOW,
			    cfg()->login_flow), 0 },
			{ "authorize_url", url, 0 },
			{ "frame_origin", origin, 0 },
			{ "redirect_uri", redirect_uri, 0 },
			{ "client_id", cfg()->login_flow == CFG_FLOW_OAUTH2 ?
			    cfg()->str[CFG_APP_KEY] : "", 0 },
			{ "state", state, 0 },
			{ "ddlogin_js", cfg()->str[CFG_DDLOGIN_JS], 0 },
			{ "notice", notice, 1 },
		};

		page_render(r, 200, "login.html", page_text("login.title"),
		    vars, sizeof(vars) / sizeof(vars[0]), csp);
	}
out:
	free(url);
	free(csp);
	free(redirect_uri);
}

static void
serve_login(struct req *r, void *arg)
{
	struct ctx		*c = arg;
	struct db		*db = prog_db();
	const char		*rd_param = req_query(r, "rd");
	const char		*cookie = req_cookie(r, SESSION_COOKIE);
	struct session_user	 u;
	struct da_error		 err = { 0 };
	char			 rd[LOGIN_RD_MAX], state[STATE_LEN + 1];
	enum da_err		 rc;
	enum session_end_why	 why;
	int			 inapp, ended = 0;

	memset(&u, 0, sizeof(u));
	inapp = login_is_inapp(r->user_agent, req_query(r, "inapp"));
	login_rd(rd_param, rd);
	if (cookie != NULL) {
		rc = session_check(db, cookie, &u, &err);
		if (rc == DA_OK) {
			if (rd_param != NULL)
				page_redirect(r, rd);
			else
				show_account(r, &u);
			goto out;
		}
		if (rc != DA_ENOTFOUND) {
			log_msg(LOG_ERR, "login: session check: %s", err.msg);
			page_problem(r, LOGIN_INTERNAL, rd, NULL, 0);
			goto out;
		}
		/* A dead session: forget the cookie too. */
		resp_cookie(r, SESSION_COOKIE, "", 0);
		/* Ended by a leave or users disable: say so, once. */
		ended = session_ended(db, cookie, &why, &err) == DA_OK;
	}

	prune_now(c, db);
	/* The in-app page asks DingTalk for a code of this company. */
	if (inapp && !config_is_set(CFG_CORP_ID)) {
		DA_ERROR(&err, DA_ECONFIG, "%s: required for the in-app page",
		    config_name(CFG_CORP_ID));
		page_config_error(r, &err);
		goto out;
	}
	/* Busy past PROG_BUSY_LOGIN: 503 with Retry-After, no state. */
	if (state_create(db, rd, state, &err) != DA_OK) {
		log_msg(db_busy(db) ? LOG_WARN : LOG_ERR, "login: state: %s",
		    err.msg);
		page_problem(r, db_busy(db) ? LOGIN_BUSY : LOGIN_INTERNAL, rd,
		    NULL, 0);
		goto out;
	}
	if (inapp) {
		show_inapp(r, rd, state);
		goto out;
	}
	show_qr(r, state, login_notice_why(r, ended ? &why : NULL));
out:
	session_user_clear(&u);
}

/* The sign-out page: a button that POSTs to logout, keeping rd. */
static void
show_logout(struct req *r, int status, const char *message, const char *rd)
{
	char	*logout = login_route_path("logout");

	{
		const struct html_var	 vars[] = {
			{ "message", message, 0 },
			{ "logout", logout, 0 },
			{ "rd", rd, 0 },
		};
		page_render(r, status, "logout.html", page_text("logout.title"),
		    vars, sizeof(vars) / sizeof(vars[0]), NULL);
	}
	free(logout);
}

/*
 * GET: the sign-out page, nothing changed (a link from anywhere cannot
 * sign anyone out). POST: only from a page of this site
 * (req_same_origin), then the session ends and the browser goes to the
 * login page; a cross-site POST gets the page again, 403, nothing
 * changed.
 */
static void
serve_logout(struct req *r, void *arg)
{
	const char	*cookie = req_cookie(r, SESSION_COOKIE);
	struct da_error	 err = { 0 };
	char		 rd[LOGIN_RD_MAX], *page;

	login_rd(req_input(r, "rd"), rd);
	if (r->method != REQ_POST) {
		show_logout(r, 200, page_text("logout.text"), rd);
		return;
	}
	if (!req_same_origin(r)) {
		log_msg(LOG_WARN, "logout: refused a POST from another site "
		    "(Origin %s, Sec-Fetch-Site %s)", r->origin != NULL ?
		    r->origin : "none", r->sec_fetch_site != NULL ?
		    r->sec_fetch_site : "none");
		show_logout(r, 403, page_text("logout.refused"), rd);
		return;
	}
	if (cookie != NULL && login_logout(prog_db(), cookie, r->remote_addr,
	    r->user_agent, &err) != DA_OK) {
		log_msg(LOG_ERR, "logout: %s", err.msg);
		page_problem(r, db_busy(prog_db()) ? LOGIN_BUSY :
		    LOGIN_INTERNAL, "/", NULL, req_wants_json(r));
		return;
	}
	page = login_page_path(rd);
	resp_cookie(r, SESSION_COOKIE, "", 0);
	/* The login page says so, once. */
	resp_cookie(r, NOTICE_COOKIE, "signed_out", NOTICE_TTL);
	page_redirect(r, page);
	free(page);
}

int
main(int argc, char *argv[])
{
	struct ctx	 c;

	memset(&c, 0, sizeof(c));
	/* The flow's keys (app id, or app key for oauth2) are required. */
	prog_start("login.fcgi", CFG_NEED_LOGIN | CFG_NEED_DB, PROG_BUSY_LOGIN,
	    argc, argv);
	return prog_serve(routes, sizeof(routes) / sizeof(routes[0]),
	    BODY_MAX, &c);
}
