#ifndef DINGAUTH_DINGTALK_H
#define DINGAUTH_DINGTALK_H

#include <stddef.h>

#include "directory.h"
#include "err.h"
#include "http.h"
#include "json.h"
#include "token.h"

/*
 * The DingTalk API client: one function per call the project makes
 * (docs/dingtalk.md §c–§g), one error model. Base URLs come from
 * DINGTALK_OAPI_URL and DINGTALK_API_URL; the corp and sns app tokens
 * come from the shared cache (token.h) and are fetched with
 * DINGTALK_APP_KEY/DINGTALK_CORP_SECRET and DINGTALK_APP_ID/
 * DINGTALK_APP_SECRET.
 *
 * Errors: every answer goes through one classifier, dt_classify (below).
 * For the blocking calls here a token error drops the cached token and
 * sends the call once more with a new one; busy (-1) and the per-second
 * limits (90018, 90002) back off and retry at most DINGAUTH_HTTP_RETRIES
 * times; longer waits (the per-minute limits), transport failures, HTTP
 * errors and garbage are final, since a person is waiting. What remains
 * maps onto enum da_err, with DingTalk's errcode in err->api_code and its
 * sub_code (or v1.0 "code") in err->sub_code. err may be NULL: it only
 * receives the detail, it never changes what a call does.
 */

struct db;

enum dt_family {
	DT_OAPI,	/* oapi REST: errcode in the body */
	DT_TOPAPI,	/* oapi topapi: errcode, 88 + sub_code, "result" */
	DT_NEWAPI,	/* api.dingtalk.com v1.0: HTTP status + code */
};

/* Who scanned the QR code. Values that do not fit are refused. */
struct dt_identity {
	char	unionid[DIR_ID_MAX];
	char	openid[DIR_ID_MAX];
	char	nick[DIR_TEXT_MAX];
};

/* Tokens (normally used through the calls below). */
enum da_err	dt_corp_token(struct db *db, char *token, size_t size,
		    int *fetched, struct da_error *err);
enum da_err	dt_sns_token(struct db *db, char *token, size_t size,
		    int *fetched, struct da_error *err);

/* §c.3 step 2: tmp_auth_code -> unionid (sns app token). */
enum da_err	dt_sns_persistent_code(struct db *db, const char *tmp_code,
		    struct dt_identity *id, struct da_error *err);
/* §c.4: tmp_auth_code -> identity, HMAC-SHA256 signed, no token. */
enum da_err	dt_sns_userinfo_bycode(const char *tmp_code,
		    struct dt_identity *id, struct da_error *err);
/* §d.2: authCode -> user access token (DA_ECODE if DingTalk refuses it). */
enum da_err	dt_oauth2_user_token(const char *code, char *token,
		    size_t size, struct da_error *err);
/* §d.3: the user behind a user access token. */
enum da_err	dt_oauth2_me(const char *user_token, struct dt_identity *id,
		    struct da_error *err);
/*
 * §d.4: unionid -> userid; DA_ENOTMEMBER if not an employee, DA_ETOOLONG
 * if the userid does not fit in size.
 */
enum da_err	dt_userid_by_unionid(struct db *db, const char *unionid,
		    char *userid, size_t size, struct da_error *err);
/*
 * §f.3: one user, DingTalk's fields of *user filled (dir_user_clear it);
 * DA_ENOTFOUND if DingTalk has no such member.
 */
enum da_err	dt_user_get(struct db *db, const char *userid,
		    struct dir_user *user, struct da_error *err);
/* Who a free-login code of the in-app page belongs to (§i.1). */
struct dt_inapp_user {
	char	userid[DIR_ID_MAX];
	char	unionid[DIR_ID_MAX];
	char	name[DIR_TEXT_MAX];
};

/*
 * §i.1: the in-app page's free-login code -> the employee (corp token).
 * DA_ECODE if DingTalk refuses the code (used, expired, unknown: 40078),
 * DA_ENOTMEMBER if it names nobody of the company (60121/60111, or the
 * person is outside the app's visible range: 50002), DA_EJSON if the
 * answer has no userid, DA_ETOOLONG if a value does not fit.
 */
enum da_err	dt_inapp_userinfo(struct db *db, const char *code,
		    struct dt_inapp_user *user, struct da_error *err);
/* §f.1: one department; DA_ENOTFOUND (60003) if it does not exist. */
enum da_err	dt_dept_get(struct db *db, long long dept_id,
		    struct dir_dept *dept, struct da_error *err);

/* §g: callback management. tags is NULL-terminated. */
enum da_err	dt_callback_register(struct db *db, int update,
		    const char *const *tags, const char *token,
		    const char *aes_key, const char *url, struct da_error *err);
enum da_err	dt_callback_get(struct db *db, json **answer,
		    struct da_error *err);
enum da_err	dt_callback_delete(struct db *db, struct da_error *err);
/* One page of failed pushes; the whole answer (has_more, failed_list). */
enum da_err	dt_callback_failed(struct db *db, json **answer,
		    struct da_error *err);

/*
 * Stream mode, step 1 (docs/dingtalk.md, Stream mode): ask for a link
 * with the app's AppKey and secret, subscribed to every event the console
 * ticks. endpoint (a wss:// URL) and ticket (single use, valid 90 s)
 * must fit in their sizes; DA_EJSON if either is missing or empty.
 */
#define DT_STREAM_ENDPOINT_MAX	512
#define DT_STREAM_TICKET_MAX	256
enum da_err	dt_stream_open(char *endpoint, size_t esize, char *ticket,
		    size_t tsize, struct da_error *err);

/* Address-book tags registered by `dingauth callback register`. */
extern const char *const dt_addressbook_tags[];

/*
 * Lower level, for flows that drive many requests themselves (the sync,
 * over curl multi) and for tests: the same request builder and the same
 * classifier of answers as the calls above.
 */

/* The calls that carry an access token, one row each in dingtalk.c. */
enum dt_api {
	DT_API_SNS_PERSISTENT_CODE,	/* §c.3, sns app token */
	DT_API_USERID_BY_UNIONID,	/* §f.3 */
	DT_API_USER_GET,		/* §f.3 */
	DT_API_DEPT_GET,		/* §f.1 */
	DT_API_DEPT_LISTSUB,		/* §f.1 */
	DT_API_USER_LIST,		/* §f.2 */
	DT_API_CALLBACK_REGISTER,	/* §g */
	DT_API_CALLBACK_UPDATE,
	DT_API_CALLBACK_GET,
	DT_API_CALLBACK_DELETE,
	DT_API_CALLBACK_FAILED,
	DT_API_WORK_NOTIFY,		/* §i.2 */
	DT_API_INAPP_USERINFO,		/* §i.1 */
	DT_API__MAX
};

/* One request, ready for http_do or http_multi_add. Owns its memory. */
struct dt_request {
	enum dt_api		 api;
	enum dt_family		 family;
	struct http_request	 http;	/* points into url and body */
	char			*url;	/* holds the token: wiped when freed */
	char			*body;	/* NULL for a GET */
};

/*
 * Build the request of api with token and body (NULL: none, or "{}" for
 * an API that is always a POST). dt_request_free wipes and frees it.
 */
void		dt_request_init(struct dt_request *rq, enum dt_api api,
		    const char *token, const json *body);
void		dt_request_free(struct dt_request *rq);
/*
 * The body of a department call (DT_API_DEPT_GET, _DEPT_LISTSUB,
 * _USER_LIST): dept_id, and for a member page cursor and the page size.
 * Caller frees (json_free).
 */
json		*dt_dept_body(enum dt_api api, long long dept_id,
		    long long cursor);
/* The token kind api needs. */
enum token_kind	dt_api_token(enum dt_api api);

/*
 * The classifier: what to do with one finished request (docs/dingtalk.md
 * §h). ok; retry the same request after a delay (system busy -1, the
 * per-second limits 90018/90002 and QpsLimit codes after 1 s, the
 * per-minute limits 90005/90006 after 60 s; transport failures, HTTP
 * errors and garbage when the caller retries those); refresh the token
 * (40014, 42001, 40001, 33001, or 88 with one of those as sub_code; HTTP
 * 401 or InvalidAuthentication on the v1.0 API) once; or fail, with the
 * reason as enum da_err and DingTalk's errcode and sub_code.
 */
enum dt_action {
	DT_ACT_OK,		/* *doc holds the answer */
	DT_ACT_RETRY,		/* send the same request after delay_ms */
	DT_ACT_REFRESH,		/* drop the token, fetch one, send again */
	DT_ACT_FAIL,		/* give up: why says why */
};

struct dt_verdict {
	enum dt_action	 action;
	long		 delay_ms;	/* DT_ACT_RETRY */
	/*
	 * Unless DT_ACT_OK: why.code the reason (DA_ERATE, DA_ETOKEN, ...),
	 * why.api_code DingTalk's errcode (the sub_code's for an 88
	 * wrapper) or the HTTP status, why.sub_code, why.msg.
	 */
	struct da_error	 why;
	/*
	 * DT_ACT_FAIL only: 1 when a retry or refresh was due but the
	 * policy's retries (or the one refresh) were used up; 0 when asking
	 * again cannot help (an IP ban, calls disabled, a refusal).
	 */
	int		 used_up;
};

/* How persistent the caller is. */
struct dt_policy {
	int	 busy_retries;	/* busy and rate-limit answers retried */
	int	 fail_retries;	/* transport, HTTP, garbage (0: final) */
	long	 max_wait_ms;	/* a longer wait is a failure (DA_ERATE) */
};

/* What one request has been through so far; zero it for a new request. */
struct dt_tries {
	int	 busy;		/* busy and rate-limit retries */
	int	 failed;	/* transport, HTTP and garbage retries */
	int	 refreshed;	/* the token was refreshed once */
};

/*
 * Judge one finished request: transport is http_do's result (terr its
 * detail), resp the answer when transport is DA_OK. Counts the retry or
 * refresh it asks for in *tries; a request past the policy's retries, or
 * refused again after a refresh, fails. On DT_ACT_OK *doc is the parsed
 * answer (caller frees), else NULL. Never depends on anything optional.
 */
void		dt_classify(enum dt_family family, enum da_err transport,
		    const struct da_error *terr,
		    const struct http_response *resp,
		    const struct dt_policy *policy, struct dt_tries *tries,
		    json **doc, struct dt_verdict *v);
/* Map a DingTalk errcode (and sub_code for 88) onto enum da_err. */
enum da_err	dt_map_errcode(long long errcode, const char *sub_code);
/*
 * Send text as a work notification of the app agent_id (DINGTALK_AGENT_ID)
 * to userids ("u1,u2"), docs/dingtalk.md §i.2: *task_id is DingTalk's
 * task. DingTalk queues the message; delivery is not confirmed.
 */
enum da_err	dt_work_notify(struct db *db, long long agent_id,
		    const char *userids, const char *text, long long *task_id,
		    struct da_error *err);
/*
 * A new token of kind fetched now and cached (dingauth token refresh);
 * the cached one stays if DingTalk fails.
 */
enum da_err	dt_token_renew(struct db *db, enum token_kind kind,
		    struct da_error *err);
/*
 * The refused token of kind is forgotten (unless another process already
 * replaced it) and a valid one fetched into token[size].
 */
enum da_err	dt_token_refresh(struct db *db, enum token_kind kind,
		    char *token, size_t size, struct da_error *err);

/*
 * Fill user (zeroed first; dir_user_clear it) from a §f.2/§f.3 user
 * object: DA_EJSON if it has no userid, DA_ETOOLONG (naming the field) if
 * a value does not fit: it is refused, never cut, so a long userid can
 * never be stored under a shorter one's key.
 */
enum da_err	dt_user_from_json(const json *obj, struct dir_user *user,
		    struct da_error *err);

/* How many calls (HTTP requests) this process made, for statistics. */
long		dt_calls_made(void);
/* DingTalk's clock (its last Date header, Unix time), 0 if none yet. */
long long	dt_last_date(void);

#endif
