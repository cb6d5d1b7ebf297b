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
 * GET|POST /dingauth/logout[?rd=/path]
 *	Ends the session, clears the cookie, redirects to the login page.
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
#include "req.h"
#include "session.h"
#include "version.h"

#define BODY_MAX	(16 * 1024)
#define ORIGIN_MAX	512
#define PRUNE_EVERY	60	/* seconds between prunes, per process */

struct ctx {
	struct db	*db;
	int		 broken;	/* configuration or database failed */
	struct da_error	 broken_err;
	long long	 pruned_at;	/* last session_prune */
};

enum route {
	ROUTE_LOGIN,
	ROUTE_LOGOUT,
	ROUTE__MAX
};

typedef void	(*route_fn)(struct req *, struct ctx *);

static void	serve_login(struct req *, struct ctx *);
static void	serve_logout(struct req *, struct ctx *);

static const struct route_def {
	const char	*name;
	const char	*allow;		/* methods, for 405 */
	route_fn	 serve;
} routes[ROUTE__MAX] = {
	[ROUTE_LOGIN] = { "login", "GET, HEAD", serve_login },
	[ROUTE_LOGOUT] = { "logout", "GET, POST", serve_logout },
};

static int
method_allowed(const struct req *r, enum route route)
{
	switch (route) {
	case ROUTE_LOGIN:
		return r->method == REQ_GET || r->method == REQ_HEAD;
	case ROUTE_LOGOUT:
		return r->method == REQ_GET || r->method == REQ_POST;
	default:
		return 0;
	}
}

/* Keep only URL characters that cannot end a CSP source expression. */
static void
csp_origin(const char *url, char *out, size_t size)
{
	const char	*host;
	size_t		 n, i;

	out[0] = '\0';
	if ((host = strstr(url, "://")) == NULL)
		return;
	host += 3;
	n = (size_t)(host - url) + strcspn(host, "/?#");
	for (i = 0; i < n; i++)
		if (strchr(" ;,'\"", url[i]) != NULL)
			return;
	if (n < size)
		snprintf(out, size, "%.*s", (int)n, url);
}

/* The QR page: DingTalk's script and frame are allowed, nothing else. */
static char *
login_csp(const char *js_url)
{
	char	 url[ORIGIN_MAX], frame[ORIGIN_MAX], js[ORIGIN_MAX];

	login_frame_origin(url, sizeof(url));
	csp_origin(url, frame, sizeof(frame));
	csp_origin(js_url, js, sizeof(js));
	return xasprintf("default-src 'self'; script-src 'self' %s; "
	    "frame-src %s; style-src 'self' 'unsafe-inline'; "
	    "img-src 'self' data: https:; connect-src 'self' https:; "
	    "object-src 'none'; base-uri 'none'; form-action 'self'; "
	    "frame-ancestors 'none'", js, frame);
}

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

		login_page(r, 200, "account.html", "Signed in", vars,
		    sizeof(vars) / sizeof(vars[0]), NULL);
	}
	free(logout);
}

static void
serve_login(struct req *r, struct ctx *c)
{
	const char		*rd_param = req_query(r, "rd");
	const char		*cookie = req_cookie(r, LOGIN_COOKIE_SESSION);
	struct session_user	 u;
	struct da_error		 err = { 0 };
	char			 rd[LOGIN_RD_MAX], state[STATE_LEN + 1];
	char			 origin[ORIGIN_MAX], *url = NULL, *csp = NULL;
	char			*redirect_uri = NULL;
	enum da_err		 rc;
	int			 pruned;

	login_rd(rd_param, rd);
	if (cookie != NULL) {
		rc = session_check(c->db, cookie, &u, &err);
		if (rc == DA_OK) {
			if (rd_param != NULL)
				login_redirect(r, rd);
			else
				show_account(r, &u);
			goto out;
		}
		if (rc != DA_ENOTFOUND) {
			log_msg(LOG_ERR, "login: session check: %s", err.msg);
			login_problem_page(r, LOGIN_INTERNAL, rd, NULL, 0);
			goto out;
		}
		/* A dead session: forget the cookie too. */
		resp_cookie(r, LOGIN_COOKIE_SESSION, "", 0);
	}

	/*
	 * Old states and sessions go, at most once a minute per process:
	 * not a write transaction on every page.
	 */
	if (db_now() - c->pruned_at >= PRUNE_EVERY) {
		c->pruned_at = db_now();
		if (session_prune(c->db, &pruned, &err) != DA_OK)
			log_msg(LOG_WARN, "login: prune: %s", err.msg);
	}
	if (state_create(c->db, rd, state, &err) != DA_OK) {
		log_msg(LOG_ERR, "login: state: %s", err.msg);
		login_problem_page(r, LOGIN_INTERNAL, rd, NULL, 0);
		goto out;
	}
	if (login_authorize_url(state, &url, &err) != DA_OK) {
		login_config_error(r, &err, 0);
		goto out;
	}
	redirect_uri = login_redirect_uri();
	login_frame_origin(origin, sizeof(origin));
	csp = login_csp(config_str(CFG_DDLOGIN_JS));
	resp_cookie(r, LOGIN_COOKIE_STATE, state, STATE_TTL);
	{
		const struct html_var	 vars[] = {
			{ "flow", login_flow_name(login_flow()), 0 },
			{ "authorize_url", url, 0 },
			{ "frame_origin", origin, 0 },
			{ "redirect_uri", redirect_uri, 0 },
			{ "client_id", login_flow() == LOGIN_FLOW_OAUTH2 ?
			    config_str(CFG_APP_KEY) : "", 0 },
			{ "state", state, 0 },
			{ "ddlogin_js", config_str(CFG_DDLOGIN_JS), 0 },
		};

		login_page(r, 200, "login.html", "Sign in with DingTalk", vars,
		    sizeof(vars) / sizeof(vars[0]), csp);
	}
out:
	free(url);
	free(csp);
	free(redirect_uri);
}

static void
serve_logout(struct req *r, struct ctx *c)
{
	const char	*cookie = req_cookie(r, LOGIN_COOKIE_SESSION);
	struct da_error	 err = { 0 };
	char		 rd[LOGIN_RD_MAX], *page;

	if (cookie != NULL && session_end(c->db, cookie, &err) != DA_OK) {
		log_msg(LOG_ERR, "logout: %s", err.msg);
		login_problem_page(r, LOGIN_INTERNAL, "/", NULL,
		    req_wants_json(r));
		return;
	}
	login_rd(req_input(r, "rd"), rd);
	page = login_page_path(rd);
	resp_cookie(r, LOGIN_COOKIE_SESSION, "", 0);
	login_redirect(r, page);
	free(page);
}

static void
handle(struct req *r, void *arg)
{
	struct ctx	*c = arg;
	int		 i;

	if (c->broken) {
		login_config_error(r, &c->broken_err, req_wants_json(r));
		return;
	}
	for (i = 0; i < ROUTE__MAX; i++)
		if (strcmp(r->route, routes[i].name) == 0)
			break;
	/* Called by its own name (a plain CGI mount): the login page. */
	if (i == ROUTE__MAX && strcmp(r->route, "login.fcgi") == 0)
		i = ROUTE_LOGIN;
	if (i == ROUTE__MAX) {
		login_not_found(r);
		return;
	}
	if (!method_allowed(r, (enum route)i)) {
		login_method_not_allowed(r, routes[i].allow);
		return;
	}
	routes[i].serve(r, c);
}

int
main(int argc, char *argv[])
{
	struct ctx	 c;
	char		*url = NULL;
	int		 rc;

	memset(&c, 0, sizeof(c));
	version_option(argc, argv, "login.fcgi");
	log_init("login.fcgi");
	if (login_start(CFG_NEED_LOGIN, &c.db, &c.broken_err) != DA_OK)
		c.broken = 1;
	else {
		/* The flow's app id must be set: checked once, not per page. */
		if (login_authorize_url("", &url, &c.broken_err) != DA_OK)
			c.broken = 1;
		free(url);
	}
	rc = req_serve(handle, &c, BODY_MAX);
	db_close(c.db);
	return rc;
}
