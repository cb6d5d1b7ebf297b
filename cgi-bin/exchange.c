/*
 * exchange.fcgi: DingTalk's redirect target. Exchanges the code for an
 * employee session (login_exchange: the state first, then the flow,
 * then the directory).
 *
 * GET /dingauth/exchange?authCode=...|code=...&state=...
 *	Success: the dingauth_session cookie and a 302 to the rd kept
 *	with the state. Failure: a page that says what happened, with a
 *	"try again" link and the status of login_problem_info().
 * POST /dingauth/exchange with code (or authCode) and state, as a form
 * or a JSON object
 *	The same, answered as JSON: {userid, name, unionid, dept_ids, rd}
 *	plus the cookie, or {error, message, detail, retry}.
 *
 * Nothing but the session row is ever written on success (plus the
 * directory row under DINGAUTH_UNKNOWN_USER=admit; a failure under
 * review writes the request row), and nothing at all on any failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "db.h"
#include "json.h"
#include "log.h"
#include "login.h"
#include "mem.h"
#include "req.h"
#include "version.h"

#define BODY_MAX	(16 * 1024)

struct ctx {
	struct db	*db;
	int		 broken;
	struct da_error	 broken_err;
};

/* "1,2,3" as a JSON array of numbers. */
static json *
dept_array(const char *ids)
{
	json		*arr = json_new_array();
	const char	*p = ids;
	char		*end;
	long long	 v;

	while (*p != '\0') {
		v = strtoll(p, &end, 10);
		if (end == p)
			break;
		json_append_int(arr, v);
		p = *end == ',' ? end + 1 : end;
	}
	return arr;
}

static void
answer_ok(struct req *r, const struct login_result *res, int as_json)
{
	json	*doc;

	resp_cookie(r, LOGIN_COOKIE_SESSION, res->session, -1);
	if (!as_json) {
		login_redirect(r, res->rd);
		return;
	}
	doc = json_new_object();
	json_add_str(doc, "userid", res->userid);
	json_add_str(doc, "name", res->name);
	json_add_str(doc, "unionid", res->unionid);
	json_add(doc, "dept_ids", dept_array(res->dept_ids));
	json_add_str(doc, "rd", res->rd);
	resp_json(r, 200, doc);
	resp_header(r, "Referrer-Policy", "no-referrer");
	json_free(doc);
}

static void
handle(struct req *r, void *arg)
{
	struct ctx		*c = arg;
	struct login_input	 in;
	struct login_result	 res;
	const char		*code;
	int			 as_json;

	as_json = r->method == REQ_POST || req_wants_json(r);
	if (c->broken) {
		login_config_error(r, &c->broken_err, as_json);
		return;
	}
	/* Mounted as /dingauth/exchange, or called by its own name. */
	if (strcmp(r->route, "exchange") != 0 &&
	    strcmp(r->route, "exchange.fcgi") != 0) {
		login_not_found(r);
		return;
	}
	/* Not HEAD: a prefetch must not burn a single-use code. */
	if (r->method != REQ_GET && r->method != REQ_POST) {
		login_method_not_allowed(r, "GET, POST");
		return;
	}
	if (r->body_status == REQ_BODY_TOO_BIG ||
	    r->body_status == REQ_BODY_BAD) {
		login_problem_page(r, LOGIN_BAD_REQUEST, "/", NULL, as_json);
		if (r->body_status == REQ_BODY_TOO_BIG)
			resp_status(r, 413);
		return;
	}

	memset(&in, 0, sizeof(in));
	/* oauth2 sends authCode; the sns flows and many pages send code. */
	if ((code = req_input(r, "authCode")) == NULL || *code == '\0')
		code = req_input(r, "code");
	in.code = code;
	in.state = req_input(r, "state");
	in.state_cookie = req_cookie(r, LOGIN_COOKIE_STATE);
	in.session_cookie = req_cookie(r, LOGIN_COOKIE_SESSION);
	in.remote_addr = r->remote_addr;
	in.user_agent = r->user_agent;

	/*
	 * The state cookie stays until it expires or the next attempt
	 * replaces it: a replay of this exchange then says "already used"
	 * rather than "another browser". The state itself is gone.
	 */
	login_exchange(c->db, &in, &res);
	if (res.problem == LOGIN_OK)
		answer_ok(r, &res, as_json);
	else
		login_problem_page(r, res.problem, res.rd, res.name, as_json);
}

int
main(int argc, char *argv[])
{
	struct ctx	 c;
	int		 rc;

	memset(&c, 0, sizeof(c));
	version_option(argc, argv, "exchange.fcgi");
	log_init("exchange.fcgi");
	if (login_start(CFG_NEED_EXCHANGE, &c.db, &c.broken_err) != DA_OK)
		c.broken = 1;
	rc = req_serve(handle, &c, BODY_MAX);
	db_close(c.db);
	return rc;
}
