#ifndef DINGAUTH_LOGIN_H
#define DINGAUTH_LOGIN_H

#include <stddef.h>

#include "directory.h"
#include "err.h"
#include "session.h"

/*
 * The employee login flows (docs/dingtalk.md §c, §d, §f.3): where to send
 * the browser, and what to do with the code DingTalk sends back.
 *
 *   sns         sns_authorize; tmp code -> sns/get_persistent_code -> unionid
 *   sns_bycode  sns_authorize; tmp code -> sns/getuserinfo_bycode -> unionid
 *   oauth2      login.dingtalk.com/oauth2/auth; authCode ->
 *               v1.0 userAccessToken -> v1.0 contact/users/me -> unionId
 *
 * then unionid -> userid (topapi/user/getbyunionid, corp token); or,
 * whatever the configured flow, the in-app page's (flow=inapp):
 *
 *   inapp       JSAPI requestAuthCode inside the DingTalk client; code ->
 *               topapi/v2/user/getuserinfo (corp token) -> userid
 *
 * and our
 * directory decides: an active employee gets a session; one who left or
 * was disabled is refused; one unknown to the directory follows
 * DINGAUTH_UNKNOWN_USER (deny; review: a login request for an operator;
 * admit: topapi/v2/user/get, added to the directory, session).
 */
struct db;

/*
 * The flow is cfg()->login_flow (config.h), chosen at load, except for
 * the in-app page's codes (login_input.flow "inapp").
 */
#define LOGIN_FLOW_INAPP	"inapp"

/*
 * Is this request from inside the DingTalk client (docs/contract.md)? Its
 * User-Agent contains "DingTalk", or the login page's inapp parameter
 * says so: "1" yes, "0" no (the in-app page's way back to the QR page).
 */
int		 login_is_inapp(const char *user_agent, const char *inapp);

#define LOGIN_RD_MAX	2048	/* a return path, encoded */

/*
 * Validate a return path: only a same-site relative path is kept, one
 * that starts with a single "/" (not "//" and no backslash anywhere),
 * without control characters, at most LOGIN_RD_MAX - 1 bytes once
 * spaces, quotes, angle brackets and bytes >= 0x80 are percent-encoded.
 * Anything else (NULL, "", "https://evil", "//evil", "/\evil") gives "/".
 * Returns 1 if rd was kept, 0 if it fell back to "/".
 */
int		 login_rd(const char *rd, char out[LOGIN_RD_MAX]);

/* DINGAUTH_PUBLIC_URL + DINGAUTH_BASE_PATH + "/exchange"; caller frees. */
char		*login_redirect_uri(void);
/* DINGAUTH_BASE_PATH + "/" + route ("logout"); caller frees. */
char		*login_route_path(const char *route);
/* DINGAUTH_BASE_PATH + "/login" [+ "?rd=" + escaped rd]; caller frees. */
char		*login_page_path(const char *rd);

/*
 * The authorization URL for state (§c.1 for the sns flows, §d.1 for
 * oauth2); caller frees. DA_ECONFIG (*url NULL) if a key the flow needs
 * is not set.
 */
enum da_err	 login_authorize_url(const char *state, char **url,
		    struct da_error *err);

/* "scheme://host[:port]" of DINGTALK_LOGIN_URL: the QR frame's origin. */
void		 login_frame_origin(char *out, size_t size);

/*
 * Everything that can stop a login, each with its page (its title and
 * text are the page kit's: page.h).
 */
enum login_problem {
	LOGIN_OK = 0,
	LOGIN_STATE_MISSING,	/* no state parameter */
	LOGIN_STATE_MISMATCH,	/* state cookie absent or different */
	LOGIN_STATE_INVALID,	/* unknown, expired or already used */
	LOGIN_CODE_MISSING,	/* no code/authCode parameter */
	LOGIN_DECLINED,		/* DingTalk came back with error=: refused */
	LOGIN_CODE_REJECTED,	/* DingTalk: code used, expired, unknown */
	LOGIN_NOT_MEMBER,	/* not an employee of the company */
	LOGIN_INACTIVE,		/* left the company */
	LOGIN_DISABLED,		/* disabled by an operator */
	LOGIN_DENIED,		/* unknown to the directory, policy deny */
	LOGIN_WAITING,		/* unknown, policy review: request recorded */
	LOGIN_DT_TIMEOUT,	/* DingTalk too slow */
	LOGIN_DT_DOWN,		/* DingTalk unreachable or HTTP 5xx */
	LOGIN_DT_GARBAGE,	/* DingTalk answered something unusable */
	LOGIN_DT_ERROR,		/* DingTalk answered an unexpected error */
	LOGIN_DT_RATE,		/* DingTalk rate limiting */
	LOGIN_MISCONFIGURED,	/* our keys, secrets or permissions */
	LOGIN_INTERNAL,		/* database or other local failure */
	LOGIN_BAD_REQUEST,	/* method, body */
	LOGIN_BUSY,		/* the database is locked by another process */
	LOGIN_PROBLEM__MAX
};

struct login_problem_info {
	int		 status;	/* HTTP status */
	const char	*id;		/* stable, for JSON: "state_expired" */
	int		 retry_after;	/* seconds, 0: no Retry-After */
};

const struct login_problem_info *login_problem_info(enum login_problem p);

/* What the exchange was given (values straight from the request). */
struct login_input {
	const char	*flow;		/* flow=: NULL, or "inapp" */
	const char	*code;		/* authCode, else code */
	const char	*error;		/* error= of a refusal (oauth2) */
	const char	*state;
	const char	*state_cookie;	/* dingauth_state */
	const char	*session_cookie; /* dingauth_session: replaced */
	const char	*remote_addr;
	const char	*user_agent;
};

struct login_result {
	enum login_problem	 problem;
	char			 rd[LOGIN_RD_MAX];	/* "/" unless known */
	/*
	 * Who, as far as known: userid, unionid and name, and on LOGIN_OK
	 * their department ids.
	 */
	struct dir_user		 user;
	char			 session[SESSION_ID_LEN + 1];
	struct da_error		 err;		/* detail, for the log */
	int			 audited;	/* its audit row is written */
};

/*
 * Sign out: end the session of cookie and, when it was live, write an
 * audit row (AUDIT_LOGOUT) in the same transaction and its log line.
 */
enum da_err	 login_logout(struct db *db, const char *cookie,
		    const char *remote_addr, const char *user_agent,
		    struct da_error *err);

/*
 * Exchange a code for a session (or a reason why not). Checks the state
 * first, then asks DingTalk per the flow. On LOGIN_OK res->session holds
 * the new session id (the old one, if any, has been ended); on any
 * failure no session, user or request row was written. Every attempt
 * leaves one audit row (audit.h: time, userid, unionid, flow, outcome
 * and reason, client address, user agent), in the transaction of the
 * session or request it made, and one log line with the same fields.
 * Never fails as a function: everything is in res.
 */
void		 login_exchange(struct db *db, const struct login_input *in,
		    struct login_result *res);
/* Free what res holds (the department ids) and wipe it. */
void		 login_result_clear(struct login_result *res);

#endif
