#ifndef DINGAUTH_HTTP_H
#define DINGAUTH_HTTP_H

#include <stddef.h>

#include "err.h"

/*
 * The one libcurl wrapper. A single CURL handle lives for the whole
 * process so connections to DingTalk stay open between requests (a
 * FastCGI worker reuses them across many logins). Safe defaults: TLS
 * peer and host verification on (CA file from DINGAUTH_CA_FILE if set),
 * connect and total timeouts from the configuration, no redirects, a
 * cap on the response size. Every URL that reaches a log line goes
 * through http_redact() first. The defaults live in one place
 * (http_setup, http_internal.h), shared with http_multi.h.
 */

#define HTTP_RESPONSE_MAX	(4u * 1024 * 1024)

struct http_request {
	const char		*method;	/* "GET" or "POST" */
	const char		*url;
	const char		*body;		/* POST body or NULL */
	size_t			 body_len;
	const char		*content_type;	/* of body; NULL = json */
	const char *const	*headers;	/* "Name: value", NULL-ended */
	long			 timeout_ms;	/* 0 = configured default */
};

struct http_response {
	long	 status;
	char		*body;		/* NUL-terminated, caller frees */
	size_t		 len;
	long long	 date;		/* the Date header, Unix time, or 0 */
};

/*
 * Perform req. Transport failures give DA_EHTTP or DA_ETIMEOUT, a body
 * over HTTP_RESPONSE_MAX gives DA_ETOOBIG; any HTTP status is DA_OK
 * (callers judge it). On error resp is left empty.
 */
enum da_err	 http_do(const struct http_request *req,
		    struct http_response *resp, struct da_error *err);
void		 http_response_free(struct http_response *resp);

/* Release the process handle (at exit; also closes connections). */
void		 http_cleanup(void);

/* URL-escape s (curl_easy_escape); caller frees with free(). */
char		*http_escape(const char *s);
/* URL-unescape s[0..len) with '+' as space (forms); caller frees. */
char		*http_unescape_form(const char *s, size_t len);
/* The same, telling the decoded length (a %00 makes it differ from strlen). */
char		*http_unescape_form_n(const char *s, size_t len, size_t *outlen);

/*
 * Copy url into out with the values of secret query parameters
 * (access_token, appsecret, corpsecret, code, tmp_auth_code, authCode,
 * signature, sns_token, persistent_code, loginTmpCode) replaced by "***".
 */
void		 http_redact(const char *url, char *out, size_t outsz);

/* Number of new connections libcurl has opened in this process. */
long		 http_connections_opened(void);

#endif
