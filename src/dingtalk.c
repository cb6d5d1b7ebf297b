#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "crypto.h"
#include "db.h"
#include "dingtalk.h"
#include "http.h"
#include "log.h"
#include "mem.h"
#include "version.h"

#define DT_PAGE_MAX	100

const char *const dt_addressbook_tags[] = {
	"user_add_org", "user_modify_org", "user_leave_org",
	"user_active_org", "org_admin_add", "org_admin_remove",
	"org_dept_create", "org_dept_modify", "org_dept_remove", NULL
};

static long	calls;
static long long last_date;

long long
dt_last_date(void)
{
	return last_date;
}

long
dt_calls_made(void)
{
	return calls;
}

enum da_err
dt_map_errcode(long long code, const char *sub_code)
{
	char		*end;
	long long	 sub;

	switch (code) {
	case 0:
		return DA_OK;
	case 88:
		/* The wrapper with no reason: DingTalk's gateway timed out. */
		if (sub_code == NULL || *sub_code == '\0')
			return DA_ETIMEOUT;
		sub = strtoll(sub_code, &end, 10);
		if (*end != '\0' || sub == 88)
			return DA_EAPI;
		return dt_map_errcode(sub, NULL);
	case 15:
		/* The gateway could not reach the service behind it. */
		return sub_code != NULL && strcmp(sub_code,
		    "isp.top-remote-connection-timeout") == 0 ? DA_ETIMEOUT :
		    DA_EAPI;
	case 40014: case 42001: case 40001: case 33001:
		return DA_ETOKEN;
	case 40089: case 40096:
		return DA_ECREDENTIALS;
	case -1:
	case 90001: case 90002: case 90003: case 90004: case 90005:
	case 90006: case 90007: case 90018:
		return DA_ERATE;
	case 40078: case 40029:
		return DA_ECODE;
	case 60121: case 60111: case 60003:
		return DA_ENOTFOUND;
	case 60011: case 60020: case 50002: case 43003: case 90020:
		return DA_EPERM;
	default:
		return DA_EAPI;
	}
}

/* Waits the classifier asks for (docs/dingtalk.md §h.2, §h.3). */
#define BUSY_BACKOFF_MS		200	/* -1: 0.2 s, doubling */
#define FAIL_BACKOFF_MS		250	/* transport, HTTP: 0.25 s, doubling */
#define QPS_PAUSE_MS		1000	/* 90018, 90002, QpsLimit: 1 s */
#define MINUTE_PAUSE_MS		60000	/* 90005, 90006: a minute */
#define BACKOFF_SHIFT_MAX	4
/* The longest a blocking call waits: a person is waiting for a page. */
#define BLOCKING_WAIT_MAX_MS	5000

static const struct dt_api_def {
	enum dt_family	 family;
	enum token_kind	 kind;
	const char	*method;
	const char	*path;
} apis[DT_API__MAX] = {
	[DT_API_SNS_PERSISTENT_CODE] = { DT_OAPI, TOKEN_SNS, "POST",
	    "/sns/get_persistent_code" },
	[DT_API_USERID_BY_UNIONID] = { DT_TOPAPI, TOKEN_CORP, "POST",
	    "/topapi/user/getbyunionid" },
	[DT_API_USER_GET] = { DT_TOPAPI, TOKEN_CORP, "POST",
	    "/topapi/v2/user/get" },
	[DT_API_DEPT_GET] = { DT_TOPAPI, TOKEN_CORP, "POST",
	    "/topapi/v2/department/get" },
	[DT_API_DEPT_LISTSUB] = { DT_TOPAPI, TOKEN_CORP, "POST",
	    "/topapi/v2/department/listsub" },
	[DT_API_USER_LIST] = { DT_TOPAPI, TOKEN_CORP, "POST",
	    "/topapi/v2/user/list" },
	[DT_API_CALLBACK_REGISTER] = { DT_OAPI, TOKEN_CORP, "POST",
	    "/call_back/register_call_back" },
	[DT_API_CALLBACK_UPDATE] = { DT_OAPI, TOKEN_CORP, "POST",
	    "/call_back/update_call_back" },
	[DT_API_CALLBACK_GET] = { DT_OAPI, TOKEN_CORP, "GET",
	    "/call_back/get_call_back" },
	[DT_API_CALLBACK_DELETE] = { DT_OAPI, TOKEN_CORP, "GET",
	    "/call_back/delete_call_back" },
	[DT_API_CALLBACK_FAILED] = { DT_OAPI, TOKEN_CORP, "GET",
	    "/call_back/get_call_back_failed_result" },
	[DT_API_WORK_NOTIFY] = { DT_TOPAPI, TOKEN_CORP, "POST",
	    "/topapi/message/corpconversation/asyncsend_v2" },
	[DT_API_INAPP_USERINFO] = { DT_TOPAPI, TOKEN_CORP, "POST",
	    "/topapi/v2/user/getuserinfo" },
};

static const char *
base_url(enum dt_family family)
{
	return config_str(family == DT_NEWAPI ? CFG_API_URL : CFG_OAPI_URL);
}

enum token_kind
dt_api_token(enum dt_api api)
{
	return apis[api].kind;
}

void
dt_request_init(struct dt_request *rq, enum dt_api api, const char *token,
    const json *body)
{
	const struct dt_api_def	*d = &apis[api];

	memset(rq, 0, sizeof(*rq));
	rq->api = api;
	rq->family = d->family;
	rq->url = xasprintf("%s%s?access_token=%s", base_url(d->family),
	    d->path, token);
	if (body != NULL)
		rq->body = json_print(body);
	else if (strcmp(d->method, "POST") == 0)
		rq->body = xstrdup("{}");
	rq->http.method = rq->body != NULL ? "POST" : "GET";
	rq->http.url = rq->url;
	rq->http.body = rq->body;
	rq->http.body_len = rq->body != NULL ? strlen(rq->body) : 0;
}

void
dt_request_free(struct dt_request *rq)
{
	if (rq->url != NULL)
		crypto_cleanse(rq->url, strlen(rq->url));
	if (rq->body != NULL)
		crypto_cleanse(rq->body, strlen(rq->body));
	free(rq->url);
	free(rq->body);
	memset(rq, 0, sizeof(*rq));
}

json *
dt_dept_body(enum dt_api api, long long dept_id, long long cursor)
{
	json	*body = json_new_object();

	json_add_int(body, "dept_id", dept_id);
	if (api == DT_API_USER_LIST) {
		json_add_int(body, "cursor", cursor);
		json_add_int(body, "size", DT_PAGE_MAX);
		json_add_str(body, "order_field", "custom");
		json_add_bool(body, "contain_access_limit", 0);
	}
	json_add_str(body, "language", "zh_CN");
	return body;
}

/* Text of a member for a message: cut to fit, which is fine for a log. */
static void
message_text(const json *obj, const char *key, char *buf, size_t size)
{
	const char	*s;

	buf[0] = '\0';
	if (json_get_str(obj, key, &s) == JSON_OK)
		snprintf(buf, size, "%s", s);
	else if (json_get_text(obj, key, buf, size) != JSON_OK)
		buf[0] = '\0';
}

/* An error answer of the v1.0 API (HTTP 4xx/5xx with "code"). */
static enum da_err
judge_newapi_error(const struct http_response *resp, const json *j,
    struct da_error *why)
{
	char		 sub[sizeof(why->sub_code)] = "", msg[200] = "";
	enum da_err	 rc;

	if (j != NULL) {
		message_text(j, "code", sub, sizeof(sub));
		message_text(j, "message", msg, sizeof(msg));
	}
	if (strcmp(sub, "InvalidAuthentication") == 0 || resp->status == 401)
		rc = DA_ETOKEN;
	else if (strcmp(sub, "invalidClientIdOrSecret") == 0)
		rc = DA_ECREDENTIALS;
	else if (strstr(sub, "QpsLimit") != NULL || resp->status == 429)
		rc = DA_ERATE;
	else if (resp->status == 504)
		rc = DA_ETIMEOUT;	/* the gateway timed out: transient */
	else if (resp->status >= 500)
		rc = DA_EHTTP;
	else
		rc = DA_EAPI;
	DA_ERROR(why, rc, "DingTalk HTTP %ld %s: %s", resp->status,
	    sub[0] ? sub : "(no code)", msg[0] ? msg : "(no message)");
	why->api_code = resp->status;
	snprintf(why->sub_code, sizeof(why->sub_code), "%s", sub);
	return rc;
}

/* An oapi/topapi answer with errcode (not 0). */
static enum da_err
judge_errcode(long long code, const json *j, struct da_error *why)
{
	char		 sub[sizeof(why->sub_code)] = "", msg[200] = "";
	long long	 real = code;
	enum da_err	 rc;

	message_text(j, "sub_code", sub, sizeof(sub));
	message_text(j, "sub_msg", msg, sizeof(msg));
	if (msg[0] == '\0')
		message_text(j, "errmsg", msg, sizeof(msg));
	rc = dt_map_errcode(code, sub);
	DA_ERROR(why, rc, "DingTalk errcode %lld%s%s: %s", code,
	    sub[0] ? " sub_code " : "", sub, msg);
	/* Report the real reason of an 88 wrapper as the api code. */
	if (code == 88 && sub[0] != '\0' && strtoll(sub, NULL, 10) != 0)
		real = strtoll(sub, NULL, 10);
	why->api_code = (long)real;
	snprintf(why->sub_code, sizeof(why->sub_code), "%s", sub);
	return rc;
}

/*
 * IP-level throttling answered as an HTML page instead of its JSON form
 * (docs/dingtalk.md §h.1, §h.3): markup naming the punishment, as the
 * JSON form's "punish" does. Rate limited, not garbage.
 */
static int
throttle_page(const struct http_response *resp)
{
	const char	*s = resp->body;

	if (s == NULL)
		return 0;
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	return *s == '<' && strstr(s, "punish") != NULL;
}

/*
 * Parse and judge one answer (§h.1): DA_OK with *doc, or the reason in
 * why (always filled).
 */
static enum da_err
judge(enum dt_family family, const struct http_response *resp, json **doc,
    struct da_error *why)
{
	json		*j;
	long long	 code = 0;
	enum da_err	 rc = DA_OK;

	*doc = NULL;
	da_error_clear(why);
	j = json_parse(resp->body, resp->len);
	if (j == NULL && throttle_page(resp)) {
		rc = DA_ERROR(why, DA_ERATE, "DingTalk throttled this IP (HTTP "
		    "%ld, an HTML page)", resp->status);
		goto out;
	}
	if (family == DT_NEWAPI && resp->status >= 400) {
		rc = judge_newapi_error(resp, j, why);
		goto out;
	}
	if (resp->status != 200 && !(family == DT_NEWAPI &&
	    resp->status >= 200 && resp->status < 300)) {
		rc = DA_ERROR(why, resp->status == 504 ? DA_ETIMEOUT : DA_EHTTP,
		    "DingTalk answered HTTP %ld%s", resp->status,
		    resp->status == 504 ? " (its gateway timed out)" : "");
		why->api_code = resp->status;
		goto out;
	}
	if (j == NULL || !json_is_object(j)) {
		rc = DA_ERROR(why, DA_EJSON, "DingTalk answered something "
		    "that is not a JSON object (%zu bytes)", resp->len);
		goto out;
	}
	if (family == DT_NEWAPI)
		goto out;
	/* IP-level throttling: {"status":1111,"punish":"deny",...} */
	if (json_get(j, "errcode") == NULL && json_get(j, "punish") != NULL) {
		rc = DA_ERROR(why, DA_ERATE, "DingTalk throttled this IP");
		goto out;
	}
	switch (json_get_int(j, "errcode", &code)) {
	case JSON_OK:
		if (code != 0)
			rc = judge_errcode(code, j, why);
		break;
	case JSON_MISSING:
		rc = DA_ERROR(why, DA_EJSON, "DingTalk answer has no errcode");
		break;
	default:
		rc = DA_ERROR(why, DA_EJSON, "DingTalk errcode is not a number");
		break;
	}
out:
	if (rc == DA_OK)
		*doc = j;
	else
		json_free(j);
	return rc;
}

/* How long to wait before asking again, 0: waiting does not help. */
static long
busy_delay(const struct da_error *why, int busy)
{
	if (why->code != DA_ERATE)
		return 0;
	switch (why->api_code) {
	case -1:
		return (long)BUSY_BACKOFF_MS << (busy < BACKOFF_SHIFT_MAX ?
		    busy : BACKOFF_SHIFT_MAX);
	case 90018:
	case 90002:
	case 429:	/* the v1.0 API's HTTP status, without a code */
		return QPS_PAUSE_MS;
	case 90005:
	case 90006:
		return MINUTE_PAUSE_MS;
	default:
		/* The v1.0 API's Forbidden.AccessDenied.QpsLimitFor... */
		if (strstr(why->sub_code, "QpsLimit") != NULL)
			return QPS_PAUSE_MS;
		/* An IP ban or calls disabled: asking again makes it worse. */
		return 0;
	}
}

/* A retry the policy allows, or a failure with the same reason. */
static void
retry_or_fail(struct dt_verdict *v, long delay, int *count, int max,
    const struct dt_policy *policy)
{
	if (delay > 0 && *count < max && delay <= policy->max_wait_ms) {
		v->action = DT_ACT_RETRY;
		v->delay_ms = delay;
		(*count)++;
	} else {
		v->action = DT_ACT_FAIL;
		v->used_up = delay > 0;
	}
}

void
dt_classify(enum dt_family family, enum da_err transport,
    const struct da_error *terr, const struct http_response *resp,
    const struct dt_policy *policy, struct dt_tries *tries, json **doc,
    struct dt_verdict *v)
{
	enum da_err	 rc;
	int		 shift;

	memset(v, 0, sizeof(*v));
	*doc = NULL;
	if (transport != DA_OK) {
		v->why = *terr;
		v->why.code = rc = transport;
	} else
		rc = judge(family, resp, doc, &v->why);
	shift = tries->failed < BACKOFF_SHIFT_MAX ? tries->failed :
	    BACKOFF_SHIFT_MAX;
	switch (rc) {
	case DA_OK:
		v->action = DT_ACT_OK;
		break;
	case DA_ETOKEN:
		if (tries->refreshed) {
			v->action = DT_ACT_FAIL;
			v->used_up = 1;
			break;
		}
		tries->refreshed = 1;
		v->action = DT_ACT_REFRESH;
		break;
	case DA_ERATE:
		retry_or_fail(v, busy_delay(&v->why, tries->busy),
		    &tries->busy, policy->busy_retries, policy);
		break;
	case DA_ETIMEOUT:
		if (transport == DA_OK) {
			/*
			 * DingTalk answered that it timed out behind its
			 * gateway (errcode 15 isp.top-remote-connection-
			 * timeout, 88 without a sub_code, HTTP 504; §h.2):
			 * transient, so even a blocking call asks again once.
			 */
			retry_or_fail(v, (long)FAIL_BACKOFF_MS << shift,
			    &tries->failed, policy->fail_retries > 0 ?
			    policy->fail_retries : 1, policy);
			break;
		}
		/* FALLTHROUGH */
	case DA_EHTTP:
	case DA_ETOOBIG:
	case DA_EJSON:
		retry_or_fail(v, (long)FAIL_BACKOFF_MS << shift,
		    &tries->failed, policy->fail_retries, policy);
		break;
	default:
		v->action = DT_ACT_FAIL;
		break;
	}
}

static void
sleep_ms(long ms)
{
	struct timespec	 ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1)
		continue;
}

/* A person waits for a blocking call: no transport retries, short waits. */
static void
blocking_policy(struct dt_policy *p)
{
	p->busy_retries = (int)cfg()->num[CFG_HTTP_RETRIES];
	p->fail_retries = 0;
	p->max_wait_ms = BLOCKING_WAIT_MAX_MS;
}

/*
 * Send req until the classifier is done with it. DT_ACT_OK with *doc,
 * DT_ACT_REFRESH (the caller renews the token) or DT_ACT_FAIL; the
 * reason in v->why.
 */
static void
send_request(enum dt_family family, const struct http_request *req,
    struct dt_tries *tries, json **doc, struct dt_verdict *v)
{
	struct http_response	 resp;
	struct da_error		 terr;
	struct dt_policy	 policy;
	enum da_err		 rc;

	blocking_policy(&policy);
	for (;;) {
		memset(&resp, 0, sizeof(resp));
		da_error_clear(&terr);
		calls++;
		rc = http_do(req, &resp, &terr);
		if (resp.date > 0)
			last_date = resp.date;
		dt_classify(family, rc, &terr, &resp, &policy, tries, doc, v);
		http_response_free(&resp);
		if (v->action != DT_ACT_RETRY)
			break;
		log_msg(LOG_WARN, "%s; retrying in %ld ms", v->why.msg,
		    v->delay_ms);
		sleep_ms(v->delay_ms);
	}
}

/* The outcome of a verdict: DA_OK or its reason, copied to err. */
static enum da_err
verdict_rc(const struct dt_verdict *v, struct da_error *err)
{
	if (v->action == DT_ACT_OK)
		return DA_OK;
	if (err != NULL)
		*err = v->why;
	return v->why.code != DA_OK ? v->why.code : DA_EAPI;
}

/* A call without an access token (token fetches, login steps). */
static enum da_err
request(enum dt_family family, const char *method, const char *url,
    const char *body, const char *const *headers, json **doc,
    struct da_error *why)
{
	struct http_request	 req;
	struct dt_tries		 tries;
	struct dt_verdict	 v;

	memset(&req, 0, sizeof(req));
	memset(&tries, 0, sizeof(tries));
	req.method = method;
	req.url = url;
	req.body = body;
	req.body_len = body != NULL ? strlen(body) : 0;
	req.headers = headers;
	send_request(family, &req, &tries, doc, &v);
	/* No token to renew here: a token error is final. */
	return verdict_rc(&v, why);
}

/* Token fetchers for the cache. */
static enum da_err
fetch_token(enum token_kind kind, char *token, size_t size,
    long long *expires_in, struct da_error *err)
{
	struct da_error	 why;
	char		*k, *s, *url;
	const char	*tok;
	json		*doc = NULL;
	enum da_err	 rc;

	if (kind == TOKEN_CORP) {
		k = http_escape(cfg()->str[CFG_APP_KEY]);
		s = http_escape(cfg()->str[CFG_CORP_SECRET]);
		url = xasprintf("%s/gettoken?appkey=%s&appsecret=%s",
		    base_url(DT_OAPI), k, s);
	} else {
		k = http_escape(cfg()->str[CFG_APP_ID]);
		s = http_escape(cfg()->str[CFG_APP_SECRET]);
		url = xasprintf("%s/sns/gettoken?appid=%s&appsecret=%s",
		    base_url(DT_OAPI), k, s);
	}
	rc = request(DT_OAPI, "GET", url, NULL, NULL, &doc, &why);
	crypto_cleanse(url, strlen(url));
	crypto_cleanse(s, strlen(s));
	free(url);
	free(k);
	free(s);
	if (rc == DA_ETOKEN && why.api_code == 40001)
		rc = why.code = DA_ECREDENTIALS;	/* wrong secret */
	if (rc != DA_OK) {
		if (err != NULL)
			*err = why;
		goto out;
	}
	if (json_get_str(doc, "access_token", &tok) != JSON_OK ||
	    *tok == '\0' || strlen(tok) >= size) {
		rc = DA_ERROR(err, DA_EJSON, "gettoken answer without a "
		    "usable access_token");
		goto out;
	}
	snprintf(token, size, "%s", tok);
	if (json_get_int(doc, "expires_in", expires_in) != JSON_OK)
		*expires_in = 7200;
out:
	json_free(doc);
	return rc;
}

static enum da_err
fetch_corp(void *arg, char *token, size_t size, long long *expires_in,
    struct da_error *err)
{
	return fetch_token(TOKEN_CORP, token, size, expires_in, err);
}

static enum da_err
fetch_sns(void *arg, char *token, size_t size, long long *expires_in,
    struct da_error *err)
{
	return fetch_token(TOKEN_SNS, token, size, expires_in, err);
}

static const char *
token_key(enum token_kind kind)
{
	return config_str(kind == TOKEN_CORP ? CFG_APP_KEY : CFG_APP_ID);
}

static enum da_err
get_token(struct db *db, enum token_kind kind, char *token, size_t size,
    int *fetched, struct da_error *err)
{
	if (!config_is_set(kind == TOKEN_CORP ? CFG_APP_KEY : CFG_APP_ID) ||
	    !config_is_set(kind == TOKEN_CORP ? CFG_CORP_SECRET :
	    CFG_APP_SECRET))
		return DA_ERROR(err, DA_ECONFIG, "%s and %s must be set",
		    config_name(kind == TOKEN_CORP ? CFG_APP_KEY : CFG_APP_ID),
		    config_name(kind == TOKEN_CORP ? CFG_CORP_SECRET :
		    CFG_APP_SECRET));
	return token_cache_get(db, kind, token_key(kind),
	    kind == TOKEN_CORP ? fetch_corp : fetch_sns, NULL, token, size,
	    fetched, err);
}

enum da_err
dt_corp_token(struct db *db, char *token, size_t size, int *fetched,
    struct da_error *err)
{
	return get_token(db, TOKEN_CORP, token, size, fetched, err);
}

enum da_err
dt_sns_token(struct db *db, char *token, size_t size, int *fetched,
    struct da_error *err)
{
	return get_token(db, TOKEN_SNS, token, size, fetched, err);
}

enum da_err
dt_token_renew(struct db *db, enum token_kind kind, struct da_error *err)
{
	char		 token[TOKEN_MAX];
	enum da_err	 rc;

	if (!config_is_set(kind == TOKEN_CORP ? CFG_APP_KEY : CFG_APP_ID) ||
	    !config_is_set(kind == TOKEN_CORP ? CFG_CORP_SECRET :
	    CFG_APP_SECRET))
		return DA_ERROR(err, DA_ECONFIG, "%s and %s must be set",
		    config_name(kind == TOKEN_CORP ? CFG_APP_KEY : CFG_APP_ID),
		    config_name(kind == TOKEN_CORP ? CFG_CORP_SECRET :
		    CFG_APP_SECRET));
	rc = token_cache_renew(db, kind, token_key(kind),
	    kind == TOKEN_CORP ? fetch_corp : fetch_sns, NULL, token,
	    sizeof(token), err);
	crypto_cleanse(token, sizeof(token));
	return rc;
}

enum da_err
dt_token_refresh(struct db *db, enum token_kind kind, char *token,
    size_t size, struct da_error *err)
{
	enum da_err	 rc;

	/* Forget it only if nobody did yet, then take the current one. */
	if ((rc = token_cache_drop(db, kind, token_key(kind), token,
	    err)) != DA_OK)
		return rc;
	return get_token(db, kind, token, size, NULL, err);
}

/*
 * One call of api with its token and body: the classifier's retries, and
 * one new token when the one sent is refused. *doc is the whole answer.
 */
static enum da_err
call(struct db *db, enum dt_api api, const json *body, json **doc,
    struct da_error *err)
{
	struct dt_request	 rq;
	struct dt_tries		 tries;
	struct dt_verdict	 v;
	enum token_kind		 kind = apis[api].kind;
	char			 token[TOKEN_MAX];
	enum da_err		 rc;

	*doc = NULL;
	memset(&tries, 0, sizeof(tries));
	if ((rc = get_token(db, kind, token, sizeof(token), NULL, err)) !=
	    DA_OK)
		goto out;
	for (;;) {
		dt_request_init(&rq, api, token, body);
		send_request(rq.family, &rq.http, &tries, doc, &v);
		dt_request_free(&rq);
		if ((rc = verdict_rc(&v, err)) == DA_OK ||
		    v.action != DT_ACT_REFRESH)
			break;
		log_msg(LOG_WARN, "%s token refused (%s); fetching a new one",
		    kind == TOKEN_CORP ? "corp" : "sns", v.why.msg);
		if (dt_token_refresh(db, kind, token, sizeof(token), NULL) !=
		    DA_OK)
			break;		/* rc: the refusal */
	}
out:
	crypto_cleanse(token, sizeof(token));
	return rc;
}

/* Result object of a topapi answer. */
static enum da_err
topapi_result(json *doc, json **result, struct da_error *err)
{
	if (json_get_object(doc, "result", result) != JSON_OK)
		return DA_ERROR(err, DA_EJSON, "answer has no result object");
	return DA_OK;
}

/*
 * Copy member key of obj into buf: "" when absent (or of no usable type),
 * DA_ETOOLONG when it does not fit: a value is never cut.
 */
static enum da_err
copy_text(const json *obj, const char *key, char *buf, size_t size,
    struct da_error *err)
{
	if (json_get_text(obj, key, buf, size) == JSON_TOO_LONG)
		return DA_ERROR(err, DA_ETOOLONG, "DingTalk's %s is longer "
		    "than %zu bytes", key, size - 1);
	return DA_OK;
}

static enum da_err
identity_from(const json *obj, const char *unionid_key, const char *openid_key,
    const char *nick_key, struct dt_identity *id, struct da_error *err)
{
	enum da_err	 rc;

	memset(id, 0, sizeof(*id));
	if ((rc = copy_text(obj, unionid_key, id->unionid,
	    sizeof(id->unionid), err)) != DA_OK ||
	    (rc = copy_text(obj, openid_key, id->openid, sizeof(id->openid),
	    err)) != DA_OK ||
	    (nick_key != NULL && (rc = copy_text(obj, nick_key, id->nick,
	    sizeof(id->nick), err)) != DA_OK))
		goto out;
	if (id->unionid[0] == '\0')
		rc = DA_ERROR(err, DA_EJSON, "answer has no unionid");
out:
	if (rc != DA_OK)
		memset(id, 0, sizeof(*id));
	return rc;
}

enum da_err
dt_sns_persistent_code(struct db *db, const char *tmp_code,
    struct dt_identity *id, struct da_error *err)
{
	json		*body, *doc = NULL;
	enum da_err	 rc;

	body = json_new_object();
	json_add_str(body, "tmp_auth_code", tmp_code);
	rc = call(db, DT_API_SNS_PERSISTENT_CODE, body, &doc, err);
	if (rc == DA_OK)
		/* Its answer has no nick: the name comes later (§c.3). */
		rc = identity_from(doc, "unionid", "openid", NULL, id, err);
	json_free(body);
	json_free(doc);
	return rc;
}

enum da_err
dt_sns_userinfo_bycode(const char *tmp_code, struct dt_identity *id,
    struct da_error *err)
{
	const char	*secret = cfg()->str[CFG_APP_SECRET];
	char		 ts[32], sig[45], *esig, *key, *url, *text;
	json		*body, *doc = NULL, *info;
	struct timespec	 now;
	enum da_err	 rc;

	clock_gettime(CLOCK_REALTIME, &now);
	snprintf(ts, sizeof(ts), "%lld", (long long)now.tv_sec * 1000 +
	    now.tv_nsec / 1000000);
	crypto_hmac_sha256_base64(secret, strlen(secret), ts, strlen(ts), sig);
	esig = http_escape(sig);
	key = http_escape(cfg()->str[CFG_APP_ID]);
	url = xasprintf("%s/sns/getuserinfo_bycode?accessKey=%s&timestamp=%s"
	    "&signature=%s", base_url(DT_OAPI), key, ts, esig);
	body = json_new_object();
	json_add_str(body, "tmp_auth_code", tmp_code);
	text = json_print(body);
	rc = request(DT_OAPI, "POST", url, text, NULL, &doc, err);
	if (rc == DA_OK) {
		if (json_get_object(doc, "user_info", &info) != JSON_OK)
			rc = DA_ERROR(err, DA_EJSON, "answer has no user_info");
		else
			rc = identity_from(info, "unionid", "openid", "nick",
			    id, err);
	}
	crypto_cleanse(sig, sizeof(sig));
	free(esig);
	free(key);
	free(url);
	free(text);
	json_free(body);
	json_free(doc);
	return rc;
}

enum da_err
dt_oauth2_user_token(const char *code, char *token, size_t size,
    struct da_error *err)
{
	struct da_error	 why;
	json		*body, *doc = NULL;
	char		*url, *text;
	const char	*tok;
	enum da_err	 rc;

	body = json_new_object();
	json_add_str(body, "clientId", cfg()->str[CFG_APP_KEY]);
	json_add_str(body, "clientSecret", cfg()->str[CFG_CORP_SECRET]);
	json_add_str(body, "code", code);
	json_add_str(body, "grantType", "authorization_code");
	text = json_print(body);
	url = xasprintf("%s/v1.0/oauth2/userAccessToken", base_url(DT_NEWAPI));
	rc = request(DT_NEWAPI, "POST", url, text, NULL, &doc, &why);
	/* Any other refusal of the code itself: used, expired, unknown. */
	if ((rc == DA_EAPI || rc == DA_ETOKEN) && why.api_code >= 400 &&
	    why.api_code < 500)
		rc = why.code = DA_ECODE;
	if (rc != DA_OK && err != NULL)
		*err = why;
	if (rc == DA_OK) {
		if (json_get_str(doc, "accessToken", &tok) != JSON_OK ||
		    *tok == '\0' || strlen(tok) >= size)
			rc = DA_ERROR(err, DA_EJSON,
			    "userAccessToken answer without accessToken");
		else
			snprintf(token, size, "%s", tok);
	}
	crypto_cleanse(text, strlen(text));
	free(text);
	free(url);
	json_free(body);
	json_free(doc);
	return rc;
}

enum da_err
dt_stream_open(char *endpoint, size_t esize, char *ticket, size_t tsize,
    struct da_error *err)
{
	/* Without Accept, the gateway answers in XML. */
	static const char *const headers[] = { "Accept: application/json",
	    NULL };
	json		*body, *sub, *subs, *doc = NULL;
	char		*url, *text, *ua;
	enum da_err	 rc;

	body = json_new_object();
	json_add_str(body, "clientId", cfg()->str[CFG_APP_KEY]);
	json_add_str(body, "clientSecret", cfg()->str[CFG_CORP_SECRET]);
	subs = json_new_array();
	sub = json_new_object();
	json_add_str(sub, "type", "EVENT");
	json_add_str(sub, "topic", "*");	/* the only topic for events */
	json_append(subs, sub);
	json_add(body, "subscriptions", subs);
	ua = xasprintf("dingauth/%s", version_string());
	json_add_str(body, "ua", ua);
	text = json_print(body);
	url = xasprintf("%s/v1.0/gateway/connections/open",
	    base_url(DT_NEWAPI));
	rc = request(DT_NEWAPI, "POST", url, text, headers, &doc, err);
	if (rc == DA_OK && (json_get_text(doc, "endpoint", endpoint, esize) !=
	    JSON_OK || *endpoint == '\0' || json_get_text(doc, "ticket", ticket,
	    tsize) != JSON_OK || *ticket == '\0'))
		rc = DA_ERROR(err, DA_EJSON, "connections/open answer without "
		    "a usable endpoint and ticket");
	crypto_cleanse(text, strlen(text));
	free(text);
	free(url);
	free(ua);
	json_free(body);
	json_free(doc);
	return rc;
}

enum da_err
dt_oauth2_me(const char *user_token, struct dt_identity *id,
    struct da_error *err)
{
	json		*doc = NULL;
	char		*url, *header;
	const char	*headers[2] = { NULL, NULL };
	enum da_err	 rc;

	header = xasprintf("x-acs-dingtalk-access-token: %s", user_token);
	headers[0] = header;
	url = xasprintf("%s/v1.0/contact/users/me", base_url(DT_NEWAPI));
	rc = request(DT_NEWAPI, "GET", url, NULL, headers, &doc, err);
	if (rc == DA_OK)
		rc = identity_from(doc, "unionId", "openId", "nick", id, err);
	crypto_cleanse(header, strlen(header));
	free(header);
	free(url);
	json_free(doc);
	return rc;
}

enum da_err
dt_work_notify(struct db *db, long long agent_id, const char *userids,
    const char *text, long long *task_id, struct da_error *err)
{
	json		*body, *msg, *content, *doc = NULL;
	enum da_err	 rc;

	*task_id = 0;
	body = json_new_object();
	json_add_int(body, "agent_id", agent_id);
	json_add_str(body, "userid_list", userids);
	msg = json_new_object();
	json_add_str(msg, "msgtype", "text");
	content = json_new_object();
	json_add_str(content, "content", text);
	json_add(msg, "text", content);
	json_add(body, "msg", msg);
	rc = call(db, DT_API_WORK_NOTIFY, body, &doc, err);
	/* The task id is not in a result object: the answer's top level. */
	if (rc == DA_OK && json_get_int(doc, "task_id", task_id) != JSON_OK)
		rc = DA_ERROR(err, DA_EJSON, "asyncsend_v2 answer has no "
		    "task_id");
	json_free(body);
	json_free(doc);
	return rc;
}

enum da_err
dt_userid_by_unionid(struct db *db, const char *unionid, char *userid,
    size_t size, struct da_error *err)
{
	json		*body, *doc = NULL, *result;
	long long	 contact_type = 0;
	enum da_err	 rc;

	body = json_new_object();
	json_add_str(body, "unionid", unionid);
	rc = call(db, DT_API_USERID_BY_UNIONID, body, &doc, err);
	if (rc == DA_ENOTFOUND) {
		rc = DA_ERROR(err, DA_ENOTMEMBER, "unionid is not a member of "
		    "the company (DingTalk: %s)", err != NULL ? err->msg : "");
		goto out;
	}
	if (rc != DA_OK || (rc = topapi_result(doc, &result, err)) != DA_OK)
		goto out;
	if (json_get_int(result, "contact_type", &contact_type) == JSON_OK &&
	    contact_type != 0) {
		rc = DA_ERROR(err, DA_ENOTMEMBER, "unionid is an external "
		    "contact (contact_type %lld), not an employee",
		    contact_type);
		goto out;
	}
	if ((rc = copy_text(result, "userid", userid, size, err)) == DA_OK &&
	    *userid == '\0')
		rc = DA_ERROR(err, DA_EJSON, "getbyunionid answer has no userid");
out:
	json_free(body);
	json_free(doc);
	return rc;
}

enum da_err
dt_inapp_userinfo(struct db *db, const char *code, struct dt_inapp_user *user,
    struct da_error *err)
{
	struct da_error	 why;
	json		*body, *doc = NULL, *result;
	char		 said[sizeof(why.msg)];
	enum da_err	 rc;

	memset(user, 0, sizeof(*user));
	da_error_clear(&why);
	body = json_new_object();
	json_add_str(body, "code", code);
	rc = call(db, DT_API_INAPP_USERINFO, body, &doc, &why);
	if (rc == DA_ENOTFOUND || (rc == DA_EPERM && why.api_code == 50002)) {
		/* Nobody of the company, or outside the app's range (§h.2). */
		snprintf(said, sizeof(said), "%s", why.msg);
		rc = DA_ERROR(&why, DA_ENOTMEMBER, "the in-app code names no "
		    "member of the company (DingTalk: %s)", said);
		goto out;
	}
	if (rc != DA_OK ||
	    (rc = topapi_result(doc, &result, &why)) != DA_OK ||
	    (rc = copy_text(result, "userid", user->userid,
	    sizeof(user->userid), &why)) != DA_OK ||
	    (rc = copy_text(result, "unionid", user->unionid,
	    sizeof(user->unionid), &why)) != DA_OK ||
	    (rc = copy_text(result, "name", user->name, sizeof(user->name),
	    &why)) != DA_OK)
		goto out;
	if (user->userid[0] == '\0')
		rc = DA_ERROR(&why, DA_EJSON, "getuserinfo answer has no userid");
out:
	if (rc != DA_OK) {
		memset(user, 0, sizeof(*user));
		if (err != NULL)
			*err = why;
	}
	json_free(body);
	json_free(doc);
	return rc;
}

/* DingTalk's text fields of a person, with where each goes. */
static const struct user_field {
	const char	*key;
	size_t		 off, size;
} user_fields[] = {
#define F(key, field) { key, offsetof(struct dir_user, field), \
	sizeof(((struct dir_user *)0)->field) }
	F("userid", userid),
	F("unionid", unionid),
	F("name", name),
	F("title", title),
	F("job_number", job_number),
	F("email", email),
	F("mobile", mobile),
#undef F
};

enum da_err
dt_user_from_json(const json *obj, struct dir_user *u, struct da_error *err)
{
	json		*depts;
	long long	 id;
	size_t		 i, n;
	enum da_err	 rc = DA_OK;
	int		 b;

	memset(u, 0, sizeof(*u));
	for (i = 0; i < sizeof(user_fields) / sizeof(user_fields[0]); i++)
		if ((rc = copy_text(obj, user_fields[i].key, (char *)u +
		    user_fields[i].off, user_fields[i].size, err)) != DA_OK)
			goto out;
	if (u->userid[0] == '\0') {
		rc = DA_ERROR(err, DA_EJSON, "user without userid");
		goto out;
	}
	if (u->email[0] == '\0' && (rc = copy_text(obj, "org_email",
	    u->email, sizeof(u->email), err)) != DA_OK)
		goto out;
	u->admin = json_get_bool(obj, "admin", &b) == JSON_OK ? b : 0;
	/* Members returned by the directory are current unless it says so. */
	u->active = 1;
	if (json_get_array(obj, "dept_id_list", &depts) == JSON_OK) {
		n = json_array_size(depts);
		for (i = 0; i < n; i++)
			if (json_as_int(json_array_item(depts, i), &id) ==
			    JSON_OK)
				dir_user_add_dept(u, id);
	}
out:
	if (rc != DA_OK)
		dir_user_clear(u);
	return rc;
}

enum da_err
dt_user_get(struct db *db, const char *userid, struct dir_user *user,
    struct da_error *err)
{
	json		*body, *doc = NULL, *result;
	enum da_err	 rc;

	memset(user, 0, sizeof(*user));
	body = json_new_object();
	json_add_str(body, "userid", userid);
	json_add_str(body, "language", "zh_CN");
	rc = call(db, DT_API_USER_GET, body, &doc, err);
	if (rc == DA_OK && (rc = topapi_result(doc, &result, err)) == DA_OK)
		rc = dt_user_from_json(result, user, err);
	json_free(body);
	json_free(doc);
	return rc;
}

static enum da_err
dept_from_json(const json *obj, struct dir_dept *d, struct da_error *err)
{
	memset(d, 0, sizeof(*d));
	if (json_get_int(obj, "dept_id", &d->dept_id) != JSON_OK)
		return DA_ERROR(err, DA_EJSON, "department without dept_id");
	if (json_get_int(obj, "parent_id", &d->parent_id) != JSON_OK)
		d->parent_id = 0;
	return copy_text(obj, "name", d->name, sizeof(d->name), err);
}

enum da_err
dt_dept_get(struct db *db, long long dept_id, struct dir_dept *dept,
    struct da_error *err)
{
	json		*body, *doc = NULL, *result;
	enum da_err	 rc;

	body = dt_dept_body(DT_API_DEPT_GET, dept_id, 0);
	rc = call(db, DT_API_DEPT_GET, body, &doc, err);
	if (rc == DA_OK && (rc = topapi_result(doc, &result, err)) == DA_OK)
		rc = dept_from_json(result, dept, err);
	json_free(body);
	json_free(doc);
	return rc;
}

enum da_err
dt_callback_register(struct db *db, int update, const char *const *tags,
    const char *token, const char *aes_key, const char *url,
    struct da_error *err)
{
	json		*body, *arr, *doc = NULL;
	enum da_err	 rc;

	body = json_new_object();
	arr = json_new_array();
	for (; tags != NULL && *tags != NULL; tags++)
		json_append_str(arr, *tags);
	json_add(body, "call_back_tag", arr);
	json_add_str(body, "token", token);
	json_add_str(body, "aes_key", aes_key);
	json_add_str(body, "url", url);
	rc = call(db, update ? DT_API_CALLBACK_UPDATE :
	    DT_API_CALLBACK_REGISTER, body, &doc, err);
	json_free(body);
	json_free(doc);
	return rc;
}

enum da_err
dt_callback_get(struct db *db, json **answer, struct da_error *err)
{
	return call(db, DT_API_CALLBACK_GET, NULL, answer, err);
}

enum da_err
dt_callback_delete(struct db *db, struct da_error *err)
{
	json		*doc = NULL;
	enum da_err	 rc;

	rc = call(db, DT_API_CALLBACK_DELETE, NULL, &doc, err);
	json_free(doc);
	return rc;
}

enum da_err
dt_callback_failed(struct db *db, json **answer, struct da_error *err)
{
	return call(db, DT_API_CALLBACK_FAILED, NULL, answer, err);
}
