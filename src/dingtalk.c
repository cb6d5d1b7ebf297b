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
		if (sub_code == NULL || *sub_code == '\0')
			return DA_EAPI;
		sub = strtoll(sub_code, &end, 10);
		if (*end != '\0' || sub == 88)
			return DA_EAPI;
		return dt_map_errcode(sub, NULL);
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

/* Retry after this many ms, or 0 when the error is not worth a retry. */
static long
retry_delay(const struct da_error *e, int attempt)
{
	if (e->code != DA_ERATE)
		return 0;
	if (e->api_code == -1)
		return 200L << attempt;		/* system busy: short backoff */
	if (e->api_code == 90018 || e->api_code == 90002 ||
	    strcmp(e->sub_code, "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi")
	    == 0)
		return 1000;			/* per-second limits */
	return 0;				/* per-minute/IP bans: give up */
}

enum da_err
dt_judge(enum dt_family family, const struct http_response *resp,
    json **doc, struct da_error *err)
{
	json		*j;
	long long	 code = 0, status;
	char		 sub[sizeof(err->sub_code)] = "";
	char		 msg[200] = "";
	enum da_err	 rc;

	*doc = NULL;
	if (err != NULL) {
		err->api_code = 0;
		err->sub_code[0] = '\0';
	}
	j = json_parse(resp->body, resp->len);
	if (family == DT_NEWAPI && resp->status >= 400) {
		if (j != NULL) {
			json_get_text(j, "code", sub, sizeof(sub));
			json_get_text(j, "message", msg, sizeof(msg));
		}
		if (strcmp(sub, "InvalidAuthentication") == 0 ||
		    resp->status == 401)
			rc = DA_ETOKEN;
		else if (strcmp(sub, "invalidClientIdOrSecret") == 0)
			rc = DA_ECREDENTIALS;
		else if (strstr(sub, "QpsLimit") != NULL ||
		    resp->status == 429)
			rc = DA_ERATE;
		else if (resp->status >= 500)
			rc = DA_EHTTP;
		else
			rc = DA_EAPI;
		json_free(j);
		if (err != NULL) {
			DA_ERROR(err, rc, "DingTalk HTTP %ld %s: %s",
			    resp->status, sub[0] ? sub : "(no code)",
			    msg[0] ? msg : "(no message)");
			err->api_code = resp->status;
			snprintf(err->sub_code, sizeof(err->sub_code), "%s",
			    sub);
		}
		return rc;
	}
	if (resp->status != 200 && !(family == DT_NEWAPI &&
	    resp->status >= 200 && resp->status < 300)) {
		json_free(j);
		rc = DA_ERROR(err, DA_EHTTP, "DingTalk answered HTTP %ld",
		    resp->status);
		if (err != NULL)
			err->api_code = resp->status;
		return rc;
	}
	if (j == NULL || !json_is_object(j)) {
		json_free(j);
		return DA_ERROR(err, DA_EJSON, "DingTalk answered something "
		    "that is not a JSON object (%zu bytes)", resp->len);
	}
	if (family == DT_NEWAPI) {
		*doc = j;
		return DA_OK;
	}
	/* IP-level throttling: {"status":1111,"punish":"deny",...} */
	if (json_get(j, "errcode") == NULL && json_get(j, "punish") != NULL) {
		json_free(j);
		rc = DA_ERROR(err, DA_ERATE, "DingTalk throttled this IP");
		return rc;
	}
	switch (json_get_int(j, "errcode", &code)) {
	case JSON_OK:
		break;
	case JSON_MISSING:
		json_free(j);
		return DA_ERROR(err, DA_EJSON, "DingTalk answer has no errcode");
	default:
		json_free(j);
		return DA_ERROR(err, DA_EJSON, "DingTalk errcode is not a number");
	}
	if (code == 0) {
		*doc = j;
		return DA_OK;
	}
	json_get_text(j, "sub_code", sub, sizeof(sub));
	if (json_get_text(j, "sub_msg", msg, sizeof(msg)) != JSON_OK)
		json_get_text(j, "errmsg", msg, sizeof(msg));
	rc = dt_map_errcode(code, sub);
	json_free(j);
	if (err != NULL) {
		DA_ERROR(err, rc, "DingTalk errcode %lld%s%s: %s", code,
		    sub[0] ? " sub_code " : "", sub, msg);
		/* Report the real reason of an 88 wrapper as the api code. */
		status = code;
		if (code == 88 && sub[0] != '\0')
			status = strtoll(sub, NULL, 10);
		err->api_code = status ? status : code;
		snprintf(err->sub_code, sizeof(err->sub_code), "%s", sub);
	}
	return rc;
}

static void
sleep_ms(long ms)
{
	struct timespec	 ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1)
		continue;
}

/* GET or POST url, judge the answer, retrying rate limits. */
static enum da_err
request(enum dt_family family, const char *method, const char *url,
    const char *body, const char *const *headers, json **doc,
    struct da_error *err)
{
	struct http_request	 req = { 0 };
	struct http_response	 resp = { 0 };
	enum da_err		 rc;
	long			 delay;
	int			 attempt;

	req.method = method;
	req.url = url;
	req.body = body;
	req.body_len = body != NULL ? strlen(body) : 0;
	req.headers = headers;
	for (attempt = 0;; attempt++) {
		calls++;
		rc = http_do(&req, &resp, err);
		if (resp.date > 0)
			last_date = resp.date;
		if (rc == DA_OK) {
			rc = dt_judge(family, &resp, doc, err);
			http_response_free(&resp);
		}
		if (rc == DA_OK || attempt >= config_int(CFG_HTTP_RETRIES) ||
		    err == NULL || (delay = retry_delay(err, attempt)) == 0)
			return rc;
		log_msg(LOG_WARN, "%s; retrying in %ld ms", err->msg, delay);
		sleep_ms(delay);
	}
}

static const char *
base_url(enum dt_family family)
{
	return config_str(family == DT_NEWAPI ? CFG_API_URL : CFG_OAPI_URL);
}

/* Token fetchers for the cache. */
static enum da_err
fetch_token(enum token_kind kind, char *token, size_t size,
    long long *expires_in, struct da_error *err)
{
	char		*k, *s, *url;
	const char	*tok;
	json		*doc = NULL;
	enum da_err	 rc;

	if (kind == TOKEN_CORP) {
		k = http_escape(config_str(CFG_APP_KEY));
		s = http_escape(config_str(CFG_CORP_SECRET));
		url = xasprintf("%s/gettoken?appkey=%s&appsecret=%s",
		    base_url(DT_OAPI), k, s);
	} else {
		k = http_escape(config_str(CFG_APP_ID));
		s = http_escape(config_str(CFG_APP_SECRET));
		url = xasprintf("%s/sns/gettoken?appid=%s&appsecret=%s",
		    base_url(DT_OAPI), k, s);
	}
	rc = request(DT_OAPI, "GET", url, NULL, NULL, &doc, err);
	crypto_cleanse(url, strlen(url));
	crypto_cleanse(s, strlen(s));
	free(url);
	free(k);
	free(s);
	if (rc == DA_ETOKEN && err != NULL && err->api_code == 40001)
		rc = err->code = DA_ECREDENTIALS;	/* wrong secret */
	if (rc != DA_OK)
		goto out;
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
dt_call(struct db *db, enum dt_family family, enum token_kind kind,
    const char *method, const char *path, const char *query,
    const json *body, json **doc, struct da_error *err)
{
	char		 token[TOKEN_MAX], *url = NULL, *text = NULL;
	char		*header = NULL;
	const char	*headers[2] = { NULL, NULL };
	enum da_err	 rc;
	int		 attempt;

	*doc = NULL;
	if (body != NULL)
		text = json_print(body);
	for (attempt = 0; attempt < 2; attempt++) {
		if ((rc = get_token(db, kind, token, sizeof(token), NULL,
		    err)) != DA_OK)
			break;
		free(url);
		free(header);
		url = header = NULL;
		if (family == DT_NEWAPI) {
			header = xasprintf("x-acs-dingtalk-access-token: %s",
			    token);
			headers[0] = header;
			url = xasprintf("%s%s%s%s", base_url(family), path,
			    query != NULL ? "?" : "", query != NULL ? query : "");
		} else
			url = xasprintf("%s%s?access_token=%s%s%s",
			    base_url(family), path, token,
			    query != NULL ? "&" : "", query != NULL ? query : "");
		rc = request(family, body != NULL ? "POST" : method, url,
		    text, headers, doc, err);
		if (rc != DA_ETOKEN || attempt == 1)
			break;
		/* Token refused: forget it (if nobody did yet), retry once. */
		log_msg(LOG_WARN, "%s token refused (%s); fetching a new one",
		    kind == TOKEN_CORP ? "corp" : "sns",
		    err != NULL ? err->msg : "");
		if (token_cache_drop(db, token_key(kind), token, NULL) != DA_OK)
			break;
	}
	crypto_cleanse(token, sizeof(token));
	free(text);
	free(url);
	free(header);
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

static void
copy_text(const json *obj, const char *key, char *buf, size_t size)
{
	if (json_get_text(obj, key, buf, size) != JSON_OK)
		buf[0] = '\0';
}

static enum da_err
identity_from(const json *obj, const char *unionid_key, const char *openid_key,
    const char *nick_key, struct dt_identity *id, struct da_error *err)
{
	memset(id, 0, sizeof(*id));
	copy_text(obj, unionid_key, id->unionid, sizeof(id->unionid));
	copy_text(obj, openid_key, id->openid, sizeof(id->openid));
	copy_text(obj, nick_key, id->nick, sizeof(id->nick));
	if (id->unionid[0] == '\0')
		return DA_ERROR(err, DA_EJSON, "answer has no unionid");
	return DA_OK;
}

enum da_err
dt_sns_persistent_code(struct db *db, const char *tmp_code,
    struct dt_identity *id, struct da_error *err)
{
	json		*body, *doc = NULL;
	enum da_err	 rc;

	body = json_new_object();
	json_add_str(body, "tmp_auth_code", tmp_code);
	rc = dt_call(db, DT_OAPI, TOKEN_SNS, "POST",
	    "/sns/get_persistent_code", NULL, body, &doc, err);
	if (rc == DA_OK)
		rc = identity_from(doc, "unionid", "openid", "nick", id, err);
	json_free(body);
	json_free(doc);
	return rc;
}

enum da_err
dt_sns_userinfo_bycode(const char *tmp_code, struct dt_identity *id,
    struct da_error *err)
{
	const char	*secret = config_str(CFG_APP_SECRET);
	char		 ts[32], sig[45], *esig, *key, *url, *text;
	json		*body, *doc = NULL, *info;
	struct timespec	 now;
	enum da_err	 rc;

	clock_gettime(CLOCK_REALTIME, &now);
	snprintf(ts, sizeof(ts), "%lld", (long long)now.tv_sec * 1000 +
	    now.tv_nsec / 1000000);
	crypto_hmac_sha256_base64(secret, strlen(secret), ts, strlen(ts), sig);
	esig = http_escape(sig);
	key = http_escape(config_str(CFG_APP_ID));
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
	json		*body, *doc = NULL;
	char		*url, *text;
	const char	*tok;
	enum da_err	 rc;

	body = json_new_object();
	json_add_str(body, "clientId", config_str(CFG_APP_KEY));
	json_add_str(body, "clientSecret", config_str(CFG_CORP_SECRET));
	json_add_str(body, "code", code);
	json_add_str(body, "grantType", "authorization_code");
	text = json_print(body);
	url = xasprintf("%s/v1.0/oauth2/userAccessToken", base_url(DT_NEWAPI));
	rc = request(DT_NEWAPI, "POST", url, text, NULL, &doc, err);
	/* Any other refusal of the code itself: used, expired, unknown. */
	if ((rc == DA_EAPI || rc == DA_ETOKEN) && err != NULL &&
	    err->api_code >= 400 && err->api_code < 500)
		rc = err->code = DA_ECODE;
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
dt_userid_by_unionid(struct db *db, const char *unionid, char *userid,
    size_t size, struct da_error *err)
{
	json		*body, *doc = NULL, *result;
	long long	 contact_type = 0;
	enum da_err	 rc;

	body = json_new_object();
	json_add_str(body, "unionid", unionid);
	rc = dt_call(db, DT_TOPAPI, TOKEN_CORP, "POST",
	    "/topapi/user/getbyunionid", NULL, body, &doc, err);
	if (rc == DA_ENOTFOUND) {
		rc = DA_ERROR(err, DA_ENOTMEMBER, "unionid is not a member of "
		    "the company (DingTalk errcode %ld)",
		    err != NULL ? err->api_code : 0L);
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
	if (json_get_text(result, "userid", userid, size) != JSON_OK ||
	    *userid == '\0')
		rc = DA_ERROR(err, DA_EJSON, "getbyunionid answer has no userid");
out:
	json_free(body);
	json_free(doc);
	return rc;
}

void
dt_user_clear(struct dt_user *user)
{
	if (user == NULL)
		return;
	free(user->dept_ids);
	memset(user, 0, sizeof(*user));
}

void
dt_users_free(struct dt_user *users, size_t n)
{
	size_t	 i;

	if (users == NULL)
		return;
	for (i = 0; i < n; i++)
		dt_user_clear(&users[i]);
	free(users);
}

enum da_err
dt_user_from_json(const json *obj, struct dt_user *u, struct da_error *err)
{
	json		*depts;
	long long	 id;
	size_t		 i, n;
	int		 b;

	memset(u, 0, sizeof(*u));
	copy_text(obj, "userid", u->userid, sizeof(u->userid));
	if (u->userid[0] == '\0')
		return DA_ERROR(err, DA_EJSON, "user without userid");
	copy_text(obj, "unionid", u->unionid, sizeof(u->unionid));
	copy_text(obj, "name", u->name, sizeof(u->name));
	copy_text(obj, "title", u->title, sizeof(u->title));
	copy_text(obj, "job_number", u->job_number, sizeof(u->job_number));
	copy_text(obj, "email", u->email, sizeof(u->email));
	if (u->email[0] == '\0')
		copy_text(obj, "org_email", u->email, sizeof(u->email));
	copy_text(obj, "mobile", u->mobile, sizeof(u->mobile));
	u->admin = json_get_bool(obj, "admin", &b) == JSON_OK ? b : 0;
	/* Members returned by the directory are current unless it says so. */
	u->active = 1;
	if (json_get_array(obj, "dept_id_list", &depts) == JSON_OK &&
	    (n = json_array_size(depts)) > 0) {
		u->dept_ids = xcalloc(n, sizeof(*u->dept_ids));
		for (i = 0; i < n; i++)
			if (json_as_int(json_array_item(depts, i), &id) ==
			    JSON_OK)
				u->dept_ids[u->ndept++] = id;
	}
	return DA_OK;
}

enum da_err
dt_user_get(struct db *db, const char *userid, struct dt_user *user,
    struct da_error *err)
{
	json		*body, *doc = NULL, *result;
	enum da_err	 rc;

	memset(user, 0, sizeof(*user));
	body = json_new_object();
	json_add_str(body, "userid", userid);
	json_add_str(body, "language", "zh_CN");
	rc = dt_call(db, DT_TOPAPI, TOKEN_CORP, "POST", "/topapi/v2/user/get",
	    NULL, body, &doc, err);
	if (rc == DA_OK && (rc = topapi_result(doc, &result, err)) == DA_OK)
		rc = dt_user_from_json(result, user, err);
	json_free(body);
	json_free(doc);
	return rc;
}

static enum da_err
dept_from_json(const json *obj, struct dt_dept *d, struct da_error *err)
{
	memset(d, 0, sizeof(*d));
	if (json_get_int(obj, "dept_id", &d->dept_id) != JSON_OK)
		return DA_ERROR(err, DA_EJSON, "department without dept_id");
	if (json_get_int(obj, "parent_id", &d->parent_id) != JSON_OK)
		d->parent_id = 0;
	copy_text(obj, "name", d->name, sizeof(d->name));
	return DA_OK;
}

enum da_err
dt_dept_listsub(struct db *db, long long dept_id, struct dt_dept **depts,
    size_t *n, struct da_error *err)
{
	json		*body, *doc = NULL, *result;
	size_t		 i, count;
	enum da_err	 rc;

	*depts = NULL;
	*n = 0;
	body = json_new_object();
	json_add_int(body, "dept_id", dept_id);
	json_add_str(body, "language", "zh_CN");
	rc = dt_call(db, DT_TOPAPI, TOKEN_CORP, "POST",
	    "/topapi/v2/department/listsub", NULL, body, &doc, err);
	if (rc != DA_OK)
		goto out;
	if (json_get_array(doc, "result", &result) != JSON_OK) {
		rc = DA_ERROR(err, DA_EJSON, "listsub answer has no result list");
		goto out;
	}
	count = json_array_size(result);
	*depts = xcalloc(count ? count : 1, sizeof(**depts));
	for (i = 0; i < count; i++) {
		if ((rc = dept_from_json(json_array_item(result, i),
		    &(*depts)[*n], err)) != DA_OK)
			goto out;
		(*n)++;
	}
out:
	if (rc != DA_OK) {
		free(*depts);
		*depts = NULL;
		*n = 0;
	}
	json_free(body);
	json_free(doc);
	return rc;
}

enum da_err
dt_dept_get(struct db *db, long long dept_id, struct dt_dept *dept,
    struct da_error *err)
{
	json		*body, *doc = NULL, *result;
	enum da_err	 rc;

	body = json_new_object();
	json_add_int(body, "dept_id", dept_id);
	json_add_str(body, "language", "zh_CN");
	rc = dt_call(db, DT_TOPAPI, TOKEN_CORP, "POST",
	    "/topapi/v2/department/get", NULL, body, &doc, err);
	if (rc == DA_OK && (rc = topapi_result(doc, &result, err)) == DA_OK)
		rc = dept_from_json(result, dept, err);
	json_free(body);
	json_free(doc);
	return rc;
}

enum da_err
dt_user_list(struct db *db, long long dept_id, long long cursor, int size,
    struct dt_user **users, size_t *n, int *has_more, long long *next_cursor,
    struct da_error *err)
{
	json		*body, *doc = NULL, *result, *list;
	size_t		 i, count;
	enum da_err	 rc;
	int		 more = 0;

	*users = NULL;
	*n = 0;
	*has_more = 0;
	*next_cursor = 0;
	if (size <= 0 || size > DT_PAGE_MAX)
		size = DT_PAGE_MAX;
	body = json_new_object();
	json_add_int(body, "dept_id", dept_id);
	json_add_int(body, "cursor", cursor);
	json_add_int(body, "size", size);
	json_add_str(body, "order_field", "custom");
	json_add_bool(body, "contain_access_limit", 0);
	json_add_str(body, "language", "zh_CN");
	rc = dt_call(db, DT_TOPAPI, TOKEN_CORP, "POST", "/topapi/v2/user/list",
	    NULL, body, &doc, err);
	if (rc != DA_OK || (rc = topapi_result(doc, &result, err)) != DA_OK)
		goto out;
	if (json_get_array(result, "list", &list) != JSON_OK) {
		rc = DA_ERROR(err, DA_EJSON, "user/list answer has no list");
		goto out;
	}
	count = json_array_size(list);
	*users = xcalloc(count ? count : 1, sizeof(**users));
	for (i = 0; i < count; i++) {
		if ((rc = dt_user_from_json(json_array_item(list, i),
		    &(*users)[*n], err)) != DA_OK)
			goto out;
		(*n)++;
	}
	if (json_get_bool(result, "has_more", &more) == JSON_OK && more) {
		if (json_get_int(result, "next_cursor", next_cursor) !=
		    JSON_OK) {
			rc = DA_ERROR(err, DA_EJSON,
			    "user/list has_more without next_cursor");
			goto out;
		}
		*has_more = 1;
	}
out:
	if (rc != DA_OK) {
		dt_users_free(*users, *n);
		*users = NULL;
		*n = 0;
	}
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
	rc = dt_call(db, DT_OAPI, TOKEN_CORP, "POST", update ?
	    "/call_back/update_call_back" : "/call_back/register_call_back",
	    NULL, body, &doc, err);
	json_free(body);
	json_free(doc);
	return rc;
}

enum da_err
dt_callback_get(struct db *db, json **answer, struct da_error *err)
{
	return dt_call(db, DT_OAPI, TOKEN_CORP, "GET",
	    "/call_back/get_call_back", NULL, NULL, answer, err);
}

enum da_err
dt_callback_delete(struct db *db, struct da_error *err)
{
	json		*doc = NULL;
	enum da_err	 rc;

	rc = dt_call(db, DT_OAPI, TOKEN_CORP, "GET",
	    "/call_back/delete_call_back", NULL, NULL, &doc, err);
	json_free(doc);
	return rc;
}

enum da_err
dt_callback_failed(struct db *db, json **answer, struct da_error *err)
{
	return dt_call(db, DT_OAPI, TOKEN_CORP, "GET",
	    "/call_back/get_call_back_failed_result", NULL, NULL, answer, err);
}
