/*
 * exchange.fcgi: DingTalk's redirect target. Exchanges the code for an
 * employee session (login_exchange: the state first, then the flow,
 * then the directory).
 *
 * GET /dingauth/exchange?authCode=...|code=...&state=...
 * GET /dingauth/exchange?flow=inapp&code=...&state=...
 *	(the in-app page's free-login code, whatever the configured flow)
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
#include "page.h"
#include "prog.h"
#include "req.h"
#include "session.h"

#define BODY_MAX	(16 * 1024)

static void	serve_exchange(struct req *, void *);

/* Not HEAD: a prefetch must not burn a single-use code. */
static const struct req_route routes[] = {
	{ "exchange", REQ_M_GET | REQ_M_POST, serve_exchange, REQ_M_POST },
};

static void
answer_ok(struct req *r, const struct login_result *res, int as_json)
{
	json	*doc, *depts;
	size_t	 i;

	resp_cookie(r, SESSION_COOKIE, res->session, -1);
	if (!as_json) {
		page_redirect(r, res->rd);
		return;
	}
	doc = json_new_object();
	json_add_str(doc, "userid", res->user.userid);
	json_add_str(doc, "name", res->user.name);
	json_add_str(doc, "unionid", res->user.unionid);
	depts = json_new_array();
	for (i = 0; i < res->user.ndept; i++)
		json_append_int(depts, res->user.dept_ids[i]);
	json_add(doc, "dept_ids", depts);
	json_add_str(doc, "rd", res->rd);
	resp_json(r, 200, doc);
	resp_header(r, "Referrer-Policy", "no-referrer");
	json_free(doc);
}

/* POST answers JSON; GET a page, unless the client asked for JSON. */
static void
serve_exchange(struct req *r, void *arg)
{
	struct login_input	 in;
	struct login_result	 res;
	const char		*code;
	int			 as_json = req_answers_json(r);

	if (r->body_status == REQ_BODY_TOO_BIG ||
	    r->body_status == REQ_BODY_BAD) {
		page_problem(r, LOGIN_BAD_REQUEST, "/", NULL, as_json);
		if (r->body_status == REQ_BODY_TOO_BIG)
			resp_status(r, 413);
		return;
	}

	memset(&in, 0, sizeof(in));
	/* oauth2 sends authCode; the sns flows and many pages send code. */
	if ((code = req_input(r, "authCode")) == NULL || *code == '\0')
		code = req_input(r, "code");
	in.code = code;
	in.flow = req_input(r, "flow");
	in.error = req_input(r, "error");
	in.state = req_input(r, "state");
	in.state_cookie = req_cookie(r, STATE_COOKIE);
	in.session_cookie = req_cookie(r, SESSION_COOKIE);
	in.remote_addr = r->remote_addr;
	in.user_agent = r->user_agent;

	/*
	 * The state cookie stays until it expires or the next attempt
	 * replaces it: a replay of this exchange then says "already used"
	 * rather than "another browser". The state itself is gone.
	 */
	login_exchange(prog_db(), &in, &res);
	if (res.problem == LOGIN_OK)
		answer_ok(r, &res, as_json);
	else
		page_problem(r, res.problem, res.rd, res.user.name, as_json);
	login_result_clear(&res);
}

int
main(int argc, char *argv[])
{
	prog_start("exchange.fcgi", CFG_NEED_EXCHANGE | CFG_NEED_DB,
	    PROG_BUSY_LOGIN, argc, argv);
	return prog_serve(routes, sizeof(routes) / sizeof(routes[0]),
	    BODY_MAX, NULL);
}
