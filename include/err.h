#ifndef DINGAUTH_ERR_H
#define DINGAUTH_ERR_H

/*
 * One error enum for the whole library, with one string per value, and a
 * detail struct filled with the failing library's own words (curl's error
 * buffer, sqlite3_errmsg, DingTalk's errmsg) and where it happened.
 * Functions return enum da_err (DA_OK == 0) and fill an optional
 * struct da_error *.  DingTalk's errcode/sub_code map onto it in one place:
 * dingtalk.c.
 */
enum da_err {
	DA_OK = 0,
	DA_EINPUT,		/* bad input from a caller or a client */
	DA_ECONFIG,		/* configuration missing or invalid */
	DA_EDB,			/* SQLite failed */
	DA_EHTTP,		/* transport failure: connect, TLS, reset */
	DA_ETIMEOUT,		/* DingTalk did not answer in time */
	DA_ETOOBIG,		/* a body over its size cap */
	DA_EJSON,		/* an answer that is not the expected JSON */
	DA_EAPI,		/* DingTalk answered an error not listed below */
	DA_ETOKEN,		/* access token invalid even after one refresh */
	DA_ECREDENTIALS,	/* app key / secret rejected */
	DA_ERATE,		/* rate limited / system busy after retries */
	DA_ECODE,		/* login code unknown, used or expired */
	DA_ENOTFOUND,		/* user or department does not exist */
	DA_ENOTMEMBER,		/* not an employee of the company */
	DA_EPERM,		/* app lacks a permission, IP not whitelisted */
	DA_EKEY,		/* callback EncodingAESKey malformed */
	DA_ESIG,		/* callback signature mismatch */
	DA_EB64,		/* ciphertext not base64 / not a multiple of 16 */
	DA_EPAD,		/* PKCS#7 pad byte out of range */
	DA_ELEN,		/* message length field inconsistent */
	DA_ERECEIVER,		/* receiver id (CorpId/AppKey) mismatch */
	DA_ECRYPTO,		/* OpenSSL itself failed */
	DA_ESTATE,		/* login state missing, expired, reused, forged */
	DA_EBUSY,		/* another process holds what we need */
	DA_ETOOLONG,		/* a value longer than we store (a userid) */
	DA_ERR__MAX
};

struct da_error {
	enum da_err	 code;
	long		 api_code;	/* DingTalk errcode (or HTTP status), 0 if none */
	char		 sub_code[48];	/* topapi sub_code or v1.0 "code" */
	char		 msg[320];
	const char	*file;
	int		 line;
};

/* Short fixed description of code, never NULL. */
const char	*da_strerror(enum da_err code);

/* Stable identifier of code ("ESIG"), for logs and JSON. */
const char	*da_errname(enum da_err code);

/*
 * Fills err (if not NULL) and returns code, so callers can write
 * "return DA_ERROR(err, DA_EDB, "...", ...)".
 */
enum da_err	 da_error_set(struct da_error *err, enum da_err code,
		    const char *file, int line, const char *fmt, ...)
		    __attribute__((format(printf, 5, 6)));

#define DA_ERROR(err, code, ...) \
	da_error_set((err), (code), __FILE__, __LINE__, __VA_ARGS__)

void		 da_error_clear(struct da_error *err);

#endif
