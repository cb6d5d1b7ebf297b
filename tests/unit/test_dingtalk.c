/*
 * Unit tests of the DingTalk client's classifier of answers (every class:
 * ok, retry after a delay, refresh the token, fail with the reason) and
 * its request builder.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dingtalk.h"
#include "json.h"
#include "unit.h"

/* A login waits: DINGAUTH_HTTP_RETRIES busy retries, nothing else. */
static const struct dt_policy blocking = { 3, 0, 5000 };
/* The sync: more patience, transport retries, the per-minute pause. */
static const struct dt_policy patient = { 8, 2, 60000 };

static struct dt_verdict v;

/* Classify one answer of a fresh request; *tries may carry history. */
static enum dt_action
answer(enum dt_family family, long status, const char *body,
    const struct dt_policy *policy, struct dt_tries *tries)
{
	struct http_response	 resp;
	struct dt_tries		 fresh;
	json			*doc = NULL;

	memset(&resp, 0, sizeof(resp));
	memset(&fresh, 0, sizeof(fresh));
	resp.status = status;
	resp.body = (char *)body;
	resp.len = strlen(body);
	dt_classify(family, DA_OK, NULL, &resp, policy,
	    tries != NULL ? tries : &fresh, &doc, &v);
	if ((v.action == DT_ACT_OK) != (doc != NULL))
		v.action = -1;		/* a doc exactly when ok */
	json_free(doc);
	return v.action;
}

static enum dt_action
oapi(const char *body, const struct dt_policy *policy)
{
	return answer(DT_TOPAPI, 200, body, policy, NULL);
}

static void
test_ok(void)
{
	CHECK(oapi("{\"errcode\":0,\"result\":{}}", &blocking) == DT_ACT_OK,
	    "errcode 0: ok");
	CHECK(oapi("{\"errcode\":\"0\",\"access_token\":\"t\"}", &blocking) ==
	    DT_ACT_OK, "errcode \"0\" as a string: ok");
	CHECK(answer(DT_NEWAPI, 200, "{\"accessToken\":\"t\"}", &blocking,
	    NULL) == DT_ACT_OK, "v1.0 2xx: ok");
}

static void
test_retry(void)
{
	struct dt_tries	 tries;

	memset(&tries, 0, sizeof(tries));
	CHECK(answer(DT_TOPAPI, 200, "{\"errcode\":-1,\"errmsg\":\"busy\"}",
	    &blocking, &tries) == DT_ACT_RETRY && v.delay_ms == 200 &&
	    v.why.code == DA_ERATE && v.why.api_code == -1,
	    "-1 busy: retry after 200 ms");
	CHECK(answer(DT_TOPAPI, 200, "{\"errcode\":-1}", &blocking, &tries) ==
	    DT_ACT_RETRY && v.delay_ms == 400 && tries.busy == 2,
	    "-1 busy again: the wait doubles");
	CHECK(oapi("{\"errcode\":90018,\"errmsg\":\"qps\"}", &blocking) ==
	    DT_ACT_RETRY && v.delay_ms == 1000 && v.why.api_code == 90018,
	    "90018: retry after 1 s");
	CHECK(oapi("{\"errcode\":90002}", &blocking) == DT_ACT_RETRY &&
	    v.delay_ms == 1000, "90002: retry after 1 s");
	CHECK(oapi("{\"errcode\":88,\"sub_code\":\"90018\"}", &blocking) ==
	    DT_ACT_RETRY && v.delay_ms == 1000 && v.why.api_code == 90018,
	    "90018 wrapped in 88: retry after 1 s");
	CHECK(answer(DT_NEWAPI, 403, "{\"code\":\"Forbidden.AccessDenied."
	    "QpsLimitForAppkeyAndApi\",\"message\":\"qps\"}", &blocking,
	    NULL) == DT_ACT_RETRY && v.delay_ms == 1000 &&
	    v.why.code == DA_ERATE, "v1.0 QpsLimitForAppkeyAndApi: retry "
	    "after 1 s");
	CHECK(answer(DT_NEWAPI, 403, "{\"code\":\"Forbidden.AccessDenied."
	    "QpsLimitForApi\"}", &blocking, NULL) == DT_ACT_RETRY &&
	    v.delay_ms == 1000, "another v1.0 QpsLimit code: retry after 1 s");
	CHECK(answer(DT_NEWAPI, 429, "", &blocking, NULL) == DT_ACT_RETRY &&
	    v.delay_ms == 1000, "v1.0 HTTP 429: retry after 1 s");
	CHECK(oapi("{\"errcode\":90006}", &patient) == DT_ACT_RETRY &&
	    v.delay_ms == 60000, "90006 per-minute limit: retry after 60 s");
	CHECK(oapi("{\"errcode\":90005}", &patient) == DT_ACT_RETRY &&
	    v.delay_ms == 60000, "90005 per-minute limit: retry after 60 s");
	CHECK(oapi("{\"errcode\":90005}", &blocking) == DT_ACT_FAIL &&
	    v.why.code == DA_ERATE && v.used_up,
	    "90005 with a person waiting: fails as rate limited");
	memset(&tries, 0, sizeof(tries));
	tries.busy = 3;
	CHECK(answer(DT_TOPAPI, 200, "{\"errcode\":90018}", &blocking,
	    &tries) == DT_ACT_FAIL && v.why.code == DA_ERATE && v.used_up,
	    "90018 past the retries: fails, retries used up");
	CHECK(answer(DT_OAPI, 200, "{\"status\":1111,\"wait\":5,"
	    "\"punish\":\"deny\"}", &patient, NULL) == DT_ACT_FAIL &&
	    v.why.code == DA_ERATE && !v.used_up,
	    "IP throttled: fails at once, waiting does not help");
	CHECK(oapi("{\"errcode\":90003}", &patient) == DT_ACT_FAIL &&
	    v.why.code == DA_ERATE && !v.used_up,
	    "calls disabled (90003): fails at once");
}

/* DingTalk's own timeout answers (§h.2): retried, even with a person waiting. */
static void
test_timeouts(void)
{
	struct dt_tries	 tries;

	CHECK(oapi("{\"errcode\":15,\"errmsg\":\"Remote service error\","
	    "\"sub_code\":\"isp.top-remote-connection-timeout\"}", &blocking) ==
	    DT_ACT_RETRY && v.why.code == DA_ETIMEOUT && v.delay_ms == 250,
	    "errcode 15 isp.top-remote-connection-timeout: retry, even for a "
	    "login");
	CHECK(oapi("{\"errcode\":15,\"sub_code\":\"isp.other\"}", &blocking) ==
	    DT_ACT_FAIL && v.why.code == DA_EAPI,
	    "errcode 15 with another sub_code: fails, EAPI");
	CHECK(oapi("{\"errcode\":88,\"sub_code\":\"\",\"errmsg\":\"x\"}",
	    &blocking) == DT_ACT_RETRY && v.why.code == DA_ETIMEOUT,
	    "errcode 88 with an empty sub_code: retry");
	CHECK(oapi("{\"errcode\":88}", &blocking) == DT_ACT_RETRY &&
	    v.why.code == DA_ETIMEOUT, "errcode 88 without a sub_code: retry");
	CHECK(answer(DT_NEWAPI, 504, "<html><h1>504 Gateway Time-out</h1>"
	    "</html>", &blocking, NULL) == DT_ACT_RETRY &&
	    v.why.code == DA_ETIMEOUT && v.why.api_code == 504,
	    "v1.0 HTTP 504: retry");
	CHECK(answer(DT_TOPAPI, 504, "", &blocking, NULL) == DT_ACT_RETRY &&
	    v.why.code == DA_ETIMEOUT, "HTTP 504 elsewhere: retry");
	memset(&tries, 0, sizeof(tries));
	tries.failed = 1;
	CHECK(answer(DT_NEWAPI, 504, "", &blocking, &tries) == DT_ACT_FAIL &&
	    v.why.code == DA_ETIMEOUT && v.used_up,
	    "a second 504 with a person waiting: fails, ETIMEOUT");
	CHECK(answer(DT_TOPAPI, 504, "", &patient, &tries) == DT_ACT_RETRY,
	    "a second 504 for the sync: its own retries");
	CHECK(answer(DT_TOPAPI, 200, "<!DOCTYPE html><html><script>"
	    "window._config_={\"action\":\"deny\",\"punish\":\"deny\"}"
	    "</script></html>", &patient, NULL) == DT_ACT_FAIL &&
	    v.why.code == DA_ERATE && !v.used_up,
	    "an HTML throttling page: rate limited (an IP ban), not garbage");
	CHECK(answer(DT_NEWAPI, 403, "<html>punish</html>", &blocking, NULL) ==
	    DT_ACT_FAIL && v.why.code == DA_ERATE,
	    "an HTML throttling page from the v1.0 API: rate limited");
}

static void
test_refresh(void)
{
	static const char *const token_errors[] = {
		"{\"errcode\":40014,\"errmsg\":\"invalid token\"}",
		"{\"errcode\":42001}",
		"{\"errcode\":40001}",
		"{\"errcode\":33001}",
		"{\"errcode\":88,\"sub_code\":\"40014\"}",
		"{\"errcode\":88,\"sub_code\":\"42001\",\"sub_msg\":\"expired\"}",
	};
	struct dt_tries	 tries;
	size_t		 i;

	for (i = 0; i < sizeof(token_errors) / sizeof(token_errors[0]); i++)
		CHECK(oapi(token_errors[i], &blocking) == DT_ACT_REFRESH &&
		    v.why.code == DA_ETOKEN, "token refused: refresh (%s)",
		    token_errors[i]);
	CHECK(oapi("{\"errcode\":88,\"sub_code\":\"42001\"}", &blocking) ==
	    DT_ACT_REFRESH && v.why.api_code == 42001 &&
	    strcmp(v.why.sub_code, "42001") == 0,
	    "88 wrapper: the sub_code is the reason");
	CHECK(answer(DT_NEWAPI, 401, "{\"code\":\"x\"}", &blocking, NULL) ==
	    DT_ACT_REFRESH, "v1.0 HTTP 401: refresh");
	CHECK(answer(DT_NEWAPI, 400, "{\"code\":\"InvalidAuthentication\"}",
	    &blocking, NULL) == DT_ACT_REFRESH,
	    "v1.0 InvalidAuthentication: refresh");
	memset(&tries, 0, sizeof(tries));
	CHECK(answer(DT_TOPAPI, 200, "{\"errcode\":40014}", &blocking,
	    &tries) == DT_ACT_REFRESH && tries.refreshed == 1,
	    "a refresh is counted");
	CHECK(answer(DT_TOPAPI, 200, "{\"errcode\":40014}", &blocking,
	    &tries) == DT_ACT_FAIL && v.why.code == DA_ETOKEN && v.used_up,
	    "refused again after the refresh: fails (ETOKEN)");
}

static void
test_fail(void)
{
	struct http_response	 none;
	struct da_error		 terr;
	struct dt_tries		 tries;
	json			*doc = NULL;

	CHECK(oapi("{\"errcode\":60121,\"errmsg\":\"no user\"}", &blocking) ==
	    DT_ACT_FAIL && v.why.code == DA_ENOTFOUND &&
	    v.why.api_code == 60121 && strstr(v.why.msg, "no user") != NULL,
	    "60121: fails, not found, with DingTalk's words");
	CHECK(oapi("{\"errcode\":60011}", &blocking) == DT_ACT_FAIL &&
	    v.why.code == DA_EPERM, "60011: fails, permission");
	CHECK(oapi("{\"errcode\":40096}", &blocking) == DT_ACT_FAIL &&
	    v.why.code == DA_ECREDENTIALS, "40096: fails, credentials");
	CHECK(oapi("{\"errcode\":40078}", &blocking) == DT_ACT_FAIL &&
	    v.why.code == DA_ECODE, "40078: fails, login code");
	CHECK(oapi("{\"errcode\":90020}", &patient) == DT_ACT_FAIL &&
	    v.why.code == DA_EPERM, "90020 monthly quota: fails");
	CHECK(oapi("{\"errcode\":12345}", &blocking) == DT_ACT_FAIL &&
	    v.why.code == DA_EAPI && v.why.api_code == 12345,
	    "an unknown errcode: fails, EAPI");
	CHECK(answer(DT_NEWAPI, 400, "{\"code\":\"invalidClientIdOrSecret\"}",
	    &blocking, NULL) == DT_ACT_FAIL &&
	    v.why.code == DA_ECREDENTIALS, "v1.0 invalidClientIdOrSecret");
	CHECK(oapi("{\"errmsg\":\"no code\"}", &blocking) == DT_ACT_FAIL &&
	    v.why.code == DA_EJSON, "no errcode: fails, EJSON");
	CHECK(oapi("<html>", &blocking) == DT_ACT_FAIL &&
	    v.why.code == DA_EJSON, "garbage: fails, EJSON");
	CHECK(answer(DT_TOPAPI, 500, "", &blocking, NULL) == DT_ACT_FAIL &&
	    v.why.code == DA_EHTTP && v.why.api_code == 500,
	    "HTTP 500 with a person waiting: fails, EHTTP");
	CHECK(answer(DT_TOPAPI, 500, "", &patient, NULL) == DT_ACT_RETRY &&
	    v.delay_ms == 250, "HTTP 500 for the sync: retry after 250 ms");

	/* Transport failures. */
	memset(&none, 0, sizeof(none));
	memset(&tries, 0, sizeof(tries));
	DA_ERROR(&terr, DA_ETIMEOUT, "timed out");
	dt_classify(DT_TOPAPI, DA_ETIMEOUT, &terr, &none, &blocking, &tries,
	    &doc, &v);
	CHECK(v.action == DT_ACT_FAIL && v.why.code == DA_ETIMEOUT &&
	    doc == NULL && strcmp(v.why.msg, "timed out") == 0,
	    "timeout with a person waiting: fails, ETIMEOUT");
	dt_classify(DT_TOPAPI, DA_EHTTP, &terr, &none, &patient, &tries,
	    &doc, &v);
	CHECK(v.action == DT_ACT_RETRY && v.why.code == DA_EHTTP &&
	    v.delay_ms == 250, "connection failure for the sync: retry");
	dt_classify(DT_TOPAPI, DA_EHTTP, &terr, &none, &patient, &tries,
	    &doc, &v);
	CHECK(v.action == DT_ACT_RETRY && v.delay_ms == 500,
	    "again: the wait doubles");
	dt_classify(DT_TOPAPI, DA_EHTTP, &terr, &none, &patient, &tries,
	    &doc, &v);
	CHECK(v.action == DT_ACT_FAIL && v.why.code == DA_EHTTP && v.used_up,
	    "past the retries: fails, EHTTP");
}

/* A user object with userid of n letters and a name of m. */
static json *
user_object(size_t n, size_t m)
{
	json	*o = json_new_object(), *depts = json_new_array();
	char	*id = malloc(n + 1), *name = malloc(m + 1);

	memset(id, 'u', n);
	id[n] = '\0';
	memset(name, 'N', m);
	name[m] = '\0';
	json_add_str(o, "userid", id);
	json_add_str(o, "unionid", "union-1");
	json_add_str(o, "name", name);
	json_append_int(depts, 3);
	json_append_str(depts, "4");
	json_add(o, "dept_id_list", depts);
	free(id);
	free(name);
	return o;
}

static void
test_person(void)
{
	struct dir_user	 u;
	struct da_error	 err;
	json		*o;

	o = user_object(DIR_ID_MAX - 1, 10);
	CHECK(dt_user_from_json(o, &u, &err) == DA_OK &&
	    strlen(u.userid) == DIR_ID_MAX - 1 && u.ndept == 2 &&
	    u.dept_ids[0] == 3 && u.dept_ids[1] == 4 && u.active,
	    "a userid of %d bytes fits; department ids an array",
	    DIR_ID_MAX - 1);
	dir_user_clear(&u);
	json_free(o);

	o = user_object(DIR_ID_MAX, 10);
	CHECK(dt_user_from_json(o, &u, &err) == DA_ETOOLONG &&
	    err.code == DA_ETOOLONG && strstr(err.msg, "userid") != NULL,
	    "an over-long userid from DingTalk is refused (ETOOLONG)");
	CHECK(u.userid[0] == '\0' && u.dept_ids == NULL && u.ndept == 0,
	    "...and nothing of it kept, no shortened userid");
	json_free(o);
	o = user_object(DIR_ID_MAX, 10);
	CHECK(dt_user_from_json(o, &u, NULL) == DA_ETOOLONG,
	    "...also without an error struct");
	json_free(o);

	o = user_object(8, DIR_TEXT_MAX);
	CHECK(dt_user_from_json(o, &u, &err) == DA_ETOOLONG &&
	    strstr(err.msg, "name") != NULL && u.userid[0] == '\0',
	    "an over-long name is refused too");
	json_free(o);
	o = json_new_object();
	json_add_str(o, "name", "x");
	CHECK(dt_user_from_json(o, &u, &err) == DA_EJSON,
	    "a user without userid: EJSON");
	json_free(o);
	CHECK(strcmp(da_errname(DA_ETOOLONG), "ETOOLONG") == 0,
	    "ETOOLONG has a name");
}

static void
test_request(void)
{
	struct dt_request	 rq;
	struct da_error		 err;
	json			*body, *doc;
	long long		 n = 0;

	setenv("DINGAUTH_CONFIG", "/dev/null", 1);
	setenv("DINGTALK_OAPI_URL", "http://127.0.0.1:9", 1);
	CHECK(config_load(0, &err) == DA_OK, "configuration loads");
	body = dt_dept_body(DT_API_USER_LIST, 42, 100);
	dt_request_init(&rq, DT_API_USER_LIST, "TOKEN", body);
	CHECK_STR(rq.url, "http://127.0.0.1:9/topapi/v2/user/list"
	    "?access_token=TOKEN", "user/list URL carries the token");
	CHECK_STR(rq.http.method, "POST", "user/list is a POST");
	doc = json_parse(rq.http.body, rq.http.body_len);
	CHECK(json_get_int(doc, "dept_id", &n) == JSON_OK && n == 42 &&
	    json_get_int(doc, "cursor", &n) == JSON_OK && n == 100 &&
	    json_get_int(doc, "size", &n) == JSON_OK && n == 100,
	    "user/list body: dept_id, cursor, page size");
	json_free(doc);
	dt_request_free(&rq);
	CHECK(rq.url == NULL && rq.body == NULL, "request freed");
	json_free(body);
	dt_request_init(&rq, DT_API_CALLBACK_GET, "T", NULL);
	CHECK_STR(rq.http.method, "GET", "get_call_back is a GET");
	CHECK(rq.http.body == NULL, "a GET has no body");
	dt_request_free(&rq);
}

int
main(void)
{
	test_ok();
	test_retry();
	test_timeouts();
	test_refresh();
	test_fail();
	test_person();
	test_request();
	return unit_done();
}
