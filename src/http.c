#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "config.h"
#include "http.h"
#include "http_internal.h"
#include "log.h"
#include "metrics.h"
#include "mem.h"

static CURL	*curl;
static long	 connections;
static int	 global_ready;

/* Query parameters whose values never reach a log line. */
static const char *const secret_params[] = {
	"access_token", "appsecret", "corpsecret", "code", "tmp_auth_code",
	"authCode", "signature", "sns_token", "persistent_code",
	"loginTmpCode", "accessKey", NULL
};

void
http_redact(const char *url, char *out, size_t outsz)
{
	const char	*q, *p, *amp, *eq;
	size_t		 n, o = 0;
	int		 secret, i;

	if (outsz == 0)
		return;
	q = strchr(url, '?');
	n = q != NULL ? (size_t)(q - url) + 1 : strlen(url);
#define PUT(s, len) do {						\
	size_t l_ = (len);						\
	if (l_ > outsz - 1 - o)						\
		l_ = outsz - 1 - o;					\
	memcpy(out + o, (s), l_);					\
	o += l_;							\
} while (0)
	PUT(url, n);
	for (p = q != NULL ? q + 1 : NULL; p != NULL && *p != '\0'; p = amp) {
		amp = strchr(p, '&');
		n = amp != NULL ? (size_t)(amp - p) : strlen(p);
		eq = memchr(p, '=', n);
		secret = 0;
		if (eq != NULL)
			for (i = 0; secret_params[i] != NULL; i++)
				if (strlen(secret_params[i]) ==
				    (size_t)(eq - p) && strncmp(p,
				    secret_params[i], (size_t)(eq - p)) == 0)
					secret = 1;
		if (secret) {
			PUT(p, (size_t)(eq - p) + 1);
			PUT("***", 3);
		} else
			PUT(p, n);
		if (amp != NULL) {
			PUT("&", 1);
			amp++;
		}
	}
#undef PUT
	out[o] = '\0';
}

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct buf	*b = arg;
	size_t		 n = size * nmemb;

	/* Returning less than n makes curl fail with CURLE_WRITE_ERROR. */
	if (buf_append(b, data, n) == -1)
		return 0;
	return n;
}

/* Keep the Date header: doctor compares our clock with DingTalk's. */
static size_t
header_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	long long	*date = arg;
	size_t		 n = size * nmemb;
	char		 line[128];

	if (n > 5 && n < sizeof(line) && strncasecmp(data, "Date:", 5) == 0) {
		memcpy(line, data + 5, n - 5);
		line[n - 5] = '\0';
		*date = (long long)curl_getdate(line, NULL);
		if (*date < 0)
			*date = 0;
	}
	return n;
}

static struct curl_slist *
slist_add(struct curl_slist *list, const char *s)
{
	struct curl_slist	*tmp;

	if ((tmp = curl_slist_append(list, s)) == NULL)
		abort();
	return tmp;
}

const char *
http_method(const struct http_request *req)
{
	return req->method != NULL && strcmp(req->method, "POST") == 0 ?
	    "POST" : "GET";
}

long
http_timeout_ms(const struct http_request *req)
{
	long	 timeout;

	timeout = req->timeout_ms > 0 ? req->timeout_ms :
	    (long)cfg()->num[CFG_HTTP_TIMEOUT];
	return timeout > 0 ? timeout : 10000;
}

/*
 * The CA bundle (docs/contract.md, TLS): DINGAUTH_CA_FILE when set; else
 * OpenSSL's own SSL_CERT_FILE / SSL_CERT_DIR when set, as the Stream link
 * reads them through SSL_CTX_set_default_verify_paths (libcurl itself
 * reads neither); else the system's store. Verification stays on.
 */
static void
set_ca(CURL *h)
{
	const char	*file = getenv("SSL_CERT_FILE");
	const char	*dir = getenv("SSL_CERT_DIR");

	if (config_is_set(CFG_CA_FILE)) {
		curl_easy_setopt(h, CURLOPT_CAINFO, cfg()->str[CFG_CA_FILE]);
		return;
	}
	if (file != NULL && *file != '\0')
		curl_easy_setopt(h, CURLOPT_CAINFO, file);
	if (dir != NULL && *dir != '\0')
		curl_easy_setopt(h, CURLOPT_CAPATH, dir);
}

struct curl_slist *
http_setup(CURL *h, const struct http_request *req, long timeout_ms,
    char errbuf[CURL_ERROR_SIZE], struct buf *answer)
{
	struct curl_slist	*headers = NULL;
	const char *const	*hd;
	char			 ctype[128];

	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, req->url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	set_ca(h);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
	    cfg()->num[CFG_HTTP_CONNECT_TIMEOUT] > 0 ?
	    (long)cfg()->num[CFG_HTTP_CONNECT_TIMEOUT] : 3000L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE,
	    (curl_off_t)HTTP_RESPONSE_MAX);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(h, CURLOPT_USERAGENT, "dingauth/1");
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, answer);
	if (strcmp(http_method(req), "POST") == 0) {
		snprintf(ctype, sizeof(ctype), "Content-Type: %s",
		    req->content_type != NULL ? req->content_type :
		    "application/json");
		headers = slist_add(headers, ctype);
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS,
		    req->body != NULL ? req->body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)(req->body != NULL ? req->body_len : 0));
	}
	/* No "Expect: 100-continue" round trip for larger bodies. */
	headers = slist_add(headers, "Expect:");
	for (hd = req->headers; hd != NULL && *hd != NULL; hd++)
		headers = slist_add(headers, *hd);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	return headers;
}

enum da_err
http_transfer_error(CURLcode cc, const char *method, const char *safe,
    long timeout_ms, const struct buf *answer, const char *errbuf,
    struct da_error *err)
{
	if (cc == CURLE_OPERATION_TIMEDOUT)
		return DA_ERROR(err, DA_ETIMEOUT, "%s %s: timed out after "
		    "%ld ms", method, safe, timeout_ms);
	if (answer->overflow || cc == CURLE_FILESIZE_EXCEEDED)
		return DA_ERROR(err, DA_ETOOBIG, "%s %s: answer larger than "
		    "%u bytes", method, safe, HTTP_RESPONSE_MAX);
	return DA_ERROR(err, DA_EHTTP, "%s %s: %s", method, safe,
	    errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc));
}

static enum da_err
http_init(struct da_error *err)
{
	if (curl != NULL)
		return DA_OK;
	if (!global_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return DA_ERROR(err, DA_EHTTP, "curl_global_init failed");
		global_ready = 1;
	}
	if ((curl = curl_easy_init()) == NULL)
		return DA_ERROR(err, DA_EHTTP, "curl_easy_init failed");
	return DA_OK;
}

void
http_count(const char *url, CURLcode cc, long status, double seconds)
{
	const char	*host, *path, *result;
	char		 labels[METRICS_LABELS_MAX];
	size_t		 len;

	/* The path: a fixed set (docs/dingtalk.md), never the query. */
	host = (host = strstr(url, "://")) != NULL ? host + 3 : url;
	path = host + strcspn(host, "/?");
	len = strcspn(path, "?\"\\");
	if (len == 0 || len > 80)
		return;
	if (cc == CURLE_OPERATION_TIMEDOUT)
		result = "timeout";
	else if (cc != CURLE_OK)
		result = "transport_error";
	else
		result = status >= 200 && status < 300 ? "ok" : "http_error";
	snprintf(labels, sizeof(labels), "api=\"%.*s\",result=\"%s\"",
	    (int)len, path, result);
	metrics_observe(METRICS_DT_CALLS, labels, seconds);
}

enum da_err
http_do(const struct http_request *req, struct http_response *resp,
    struct da_error *err)
{
	struct curl_slist	*headers = NULL;
	struct buf		 body;
	char			 errbuf[CURL_ERROR_SIZE] = "";
	char			 safe[512];
	const char		*method = http_method(req);
	CURLcode		 cc;
	long			 timeout, status = 0, nconn = 0;
	double			 seconds = 0;
	enum da_err		 rc = DA_OK;

	memset(resp, 0, sizeof(*resp));
	buf_init(&body, HTTP_RESPONSE_MAX);
	if ((rc = http_init(err)) != DA_OK)
		goto out;
	http_redact(req->url, safe, sizeof(safe));
	timeout = http_timeout_ms(req);
	headers = http_setup(curl, req, timeout, errbuf, &body);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, &resp->date);

	cc = curl_easy_perform(curl);
	curl_easy_getinfo(curl, CURLINFO_TOTAL_TIME, &seconds);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	http_count(req->url, cc, status, seconds);
	curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &nconn);
	connections += nconn;
	if (cc != CURLE_OK) {
		rc = http_transfer_error(cc, method, safe, timeout, &body,
		    errbuf, err);
		log_msg(LOG_WARN, "%s", err != NULL ? err->msg : safe);
		goto out;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	log_msg(LOG_DEBUG, "%s %s -> %ld (%zu bytes)", method, safe, status,
	    body.len);
	resp->status = status;
	resp->len = body.len;
	resp->body = buf_take(&body);
	if (err != NULL)
		err->api_code = status;
out:
	curl_slist_free_all(headers);
	if (curl != NULL) {
		/* The handle outlives this call: drop pointers to our stack. */
		curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, NULL);
		curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
		curl_easy_setopt(curl, CURLOPT_WRITEDATA, NULL);
		curl_easy_setopt(curl, CURLOPT_HEADERDATA, NULL);
	}
	buf_free(&body);
	return rc;
}

void
http_response_free(struct http_response *resp)
{
	if (resp == NULL)
		return;
	free(resp->body);
	resp->body = NULL;
	resp->len = 0;
}

void
http_cleanup(void)
{
	if (curl != NULL)
		curl_easy_cleanup(curl);
	curl = NULL;
	if (global_ready)
		curl_global_cleanup();
	global_ready = 0;
}

char *
http_escape(const char *s)
{
	char	*e, *copy;

	/* curl_easy_escape needs no handle state; NULL handle is allowed. */
	if ((e = curl_easy_escape(NULL, s, (int)strlen(s))) == NULL)
		abort();
	copy = xstrdup(e);
	curl_free(e);
	return copy;
}

char *
http_unescape_form(const char *s, size_t len)
{
	return http_unescape_form_n(s, len, NULL);
}

char *
http_unescape_form_n(const char *s, size_t len, size_t *decoded)
{
	char	*plus, *u, *copy;
	int	 outlen = 0;
	size_t	 i;

	plus = xstrndup(s, len);
	for (i = 0; i < len; i++)
		if (plus[i] == '+')
			plus[i] = ' ';
	if ((u = curl_easy_unescape(NULL, plus, (int)len, &outlen)) == NULL)
		abort();
	copy = xstrndup(u, (size_t)outlen);
	if (decoded != NULL)
		*decoded = (size_t)outlen;
	curl_free(u);
	free(plus);
	return copy;
}

long
http_connections_opened(void)
{
	return connections;
}
