#ifndef DINGAUTH_DINGTALK_H
#define DINGAUTH_DINGTALK_H

#include <stddef.h>

#include "err.h"
#include "json.h"
#include "token.h"

/*
 * The DingTalk API client: one function per call the project makes
 * (dingtalk-api.md §c–§g), one error model. Base URLs come from
 * DINGTALK_OAPI_URL and DINGTALK_API_URL; the corp and sns app tokens
 * come from the shared cache (token.h) and are fetched with
 * DINGTALK_APP_KEY/DINGTALK_CORP_SECRET and DINGTALK_APP_ID/
 * DINGTALK_APP_SECRET.
 *
 * Errors: a token error (40014, 42001, 40001, 33001, or errcode 88 with
 * one of those sub_codes; HTTP 401/InvalidAuthentication on the v1.0 API)
 * drops the cached token and retries the call once; -1, 90018 and 90002
 * back off and retry at most DINGAUTH_HTTP_RETRIES times. What remains
 * maps onto enum da_err, with DingTalk's errcode in err->api_code and its
 * sub_code (or v1.0 "code") in err->sub_code.
 */

struct db;
struct http_response;

#define DT_ID_MAX	128
#define DT_TEXT_MAX	256

enum dt_family {
	DT_OAPI,	/* oapi REST: errcode in the body */
	DT_TOPAPI,	/* oapi topapi: errcode, 88 + sub_code, "result" */
	DT_NEWAPI,	/* api.dingtalk.com v1.0: HTTP status + code */
};

/* Who scanned the QR code. */
struct dt_identity {
	char	unionid[DT_ID_MAX];
	char	openid[DT_ID_MAX];
	char	nick[DT_TEXT_MAX];
};

struct dt_user {
	char		 userid[DT_ID_MAX];
	char		 unionid[DT_ID_MAX];
	char		 name[DT_TEXT_MAX];
	char		 title[DT_TEXT_MAX];
	char		 job_number[64];
	char		 email[DT_TEXT_MAX];
	char		 mobile[64];
	long long	*dept_ids;	/* allocated; dt_user_clear frees */
	size_t		 ndept;
	int		 admin;
	int		 active;
};

struct dt_dept {
	long long	dept_id;
	long long	parent_id;	/* 0 for the root */
	char		name[DT_TEXT_MAX];
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
/* §d.4: unionid -> userid; DA_ENOTMEMBER if not an employee. */
enum da_err	dt_userid_by_unionid(struct db *db, const char *unionid,
		    char *userid, size_t size, struct da_error *err);
/* §f.3: one user; DA_ENOTFOUND if DingTalk has no such member. */
enum da_err	dt_user_get(struct db *db, const char *userid,
		    struct dt_user *user, struct da_error *err);
/* §f.1: direct sub-departments of dept_id (*depts allocated). */
enum da_err	dt_dept_listsub(struct db *db, long long dept_id,
		    struct dt_dept **depts, size_t *n, struct da_error *err);
/* §f.1: one department; DA_ENOTFOUND (60003) if it does not exist. */
enum da_err	dt_dept_get(struct db *db, long long dept_id,
		    struct dt_dept *dept, struct da_error *err);
/* §f.2: one page of members directly in dept_id (*users allocated). */
enum da_err	dt_user_list(struct db *db, long long dept_id,
		    long long cursor, int size, struct dt_user **users,
		    size_t *n, int *has_more, long long *next_cursor,
		    struct da_error *err);

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

/* Address-book tags registered by `dingauth callback register`. */
extern const char *const dt_addressbook_tags[];

/*
 * Lower level, for flows that drive many requests themselves (sync with
 * curl multi) and for tests.
 */
/* Judge one answer: parse it and map any error. *doc owned by caller. */
enum da_err	dt_judge(enum dt_family family,
		    const struct http_response *resp, json **doc,
		    struct da_error *err);
/* Map a DingTalk errcode (and sub_code for 88) onto enum da_err. */
enum da_err	dt_map_errcode(long long errcode, const char *sub_code);
/*
 * One authenticated call with the corp (or sns) token and the retry
 * rules above. body may be NULL (GET). *doc is the whole answer.
 */
enum da_err	dt_call(struct db *db, enum dt_family family,
		    enum token_kind kind, const char *method, const char *path,
		    const char *query, const json *body, json **doc,
		    struct da_error *err);

/* Fill user from a §f.2/§f.3 user object. DA_EJSON if no userid. */
enum da_err	dt_user_from_json(const json *obj, struct dt_user *user,
		    struct da_error *err);
void		dt_user_clear(struct dt_user *user);
void		dt_users_free(struct dt_user *users, size_t n);

/* How many calls (HTTP requests) this process made, for statistics. */
long		dt_calls_made(void);
/* DingTalk's clock (its last Date header, Unix time), 0 if none yet. */
long long	dt_last_date(void);

#endif
