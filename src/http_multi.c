#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "crypto.h"
#include "http_internal.h"
#include "http_multi.h"
#include "log.h"
#include "mem.h"
#include "mono.h"

#define SAFE_URL_MAX	512

/* One transfer slot; slots are reused so their easy handles are too. */
struct xfer {
	CURL			*easy;
	int			 busy;
	void			*tag;
	char			*url;
	char			*body;
	size_t			 body_len;
	struct curl_slist	*headers;
	struct buf		 answer;
	char			 errbuf[CURL_ERROR_SIZE];
	char			 safe[SAFE_URL_MAX]; /* redacted url */
	const char		*method;
	long			 timeout_ms;
	long long		 started_ms;
};

struct http_multi {
	CURLM		*multi;
	struct xfer	*slots;
	int		 nslots;
	int		 in_flight;
	long		 connections;
	int		 global_ready;
};

enum da_err
http_multi_new(int max_parallel, struct http_multi **out,
    struct da_error *err)
{
	struct http_multi	*m;
	enum da_err		 rc = DA_OK;

	*out = NULL;
	if (max_parallel < 1)
		max_parallel = 1;
	m = xcalloc(1, sizeof(*m));
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		rc = DA_ERROR(err, DA_EHTTP, "curl_global_init failed");
		goto out;
	}
	m->global_ready = 1;
	if ((m->multi = curl_multi_init()) == NULL) {
		rc = DA_ERROR(err, DA_EHTTP, "curl_multi_init failed");
		goto out;
	}
	curl_multi_setopt(m->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
	    (long)max_parallel);
	curl_multi_setopt(m->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
	    (long)max_parallel);
	curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, (long)max_parallel);
	m->nslots = max_parallel;
	m->slots = xcalloc((size_t)max_parallel, sizeof(*m->slots));
out:
	if (rc != DA_OK)
		http_multi_free(m);
	else
		*out = m;
	return rc;
}

/* Forget a slot's request; the easy handle stays for the next one. */
static void
slot_release(struct http_multi *m, struct xfer *x)
{
	if (x->busy) {
		curl_multi_remove_handle(m->multi, x->easy);
		m->in_flight--;
	}
	x->busy = 0;
	x->tag = NULL;
	/* URLs may carry an access token. */
	if (x->url != NULL)
		crypto_cleanse(x->url, strlen(x->url));
	free(x->url);
	x->url = NULL;
	if (x->body != NULL)
		crypto_cleanse(x->body, x->body_len);
	free(x->body);
	x->body = NULL;
	x->body_len = 0;
	curl_slist_free_all(x->headers);
	x->headers = NULL;
	buf_free(&x->answer);
}

void
http_multi_free(struct http_multi *m)
{
	int	 i;

	if (m == NULL)
		return;
	for (i = 0; i < m->nslots; i++) {
		slot_release(m, &m->slots[i]);
		if (m->slots[i].easy != NULL)
			curl_easy_cleanup(m->slots[i].easy);
	}
	if (m->multi != NULL)
		curl_multi_cleanup(m->multi);
	if (m->global_ready)
		curl_global_cleanup();
	free(m->slots);
	free(m);
}

enum da_err
http_multi_add(struct http_multi *m, const struct http_request *req,
    void *tag, struct da_error *err)
{
	struct http_request	 copy;
	struct xfer		*x = NULL;
	CURLMcode		 mc;
	int			 i;

	for (i = 0; i < m->nslots && x == NULL; i++)
		if (!m->slots[i].busy)
			x = &m->slots[i];
	if (x == NULL)
		return DA_ERROR(err, DA_EBUSY, "%d transfers already in flight",
		    m->nslots);
	if (x->easy == NULL && (x->easy = curl_easy_init()) == NULL)
		return DA_ERROR(err, DA_EHTTP, "curl_easy_init failed");
	x->method = http_method(req);
	x->tag = tag;
	x->url = xstrdup(req->url);
	http_redact(req->url, x->safe, sizeof(x->safe));
	if (req->body != NULL) {
		x->body = xmalloc(req->body_len + 1);
		memcpy(x->body, req->body, req->body_len);
		x->body[req->body_len] = '\0';
		x->body_len = req->body_len;
	}
	x->timeout_ms = http_timeout_ms(req);
	x->errbuf[0] = '\0';
	buf_init(&x->answer, HTTP_RESPONSE_MAX);
	/* The transfer outlives req: it runs on the slot's copies. */
	copy = *req;
	copy.url = x->url;
	copy.body = x->body;
	copy.body_len = x->body_len;
	x->headers = http_setup(x->easy, &copy, x->timeout_ms, x->errbuf,
	    &x->answer);
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	if ((mc = curl_multi_add_handle(m->multi, x->easy)) != CURLM_OK) {
		slot_release(m, x);
		return DA_ERROR(err, DA_EHTTP, "curl_multi_add_handle: %s",
		    curl_multi_strerror(mc));
	}
	x->busy = 1;
	x->started_ms = mono_ms();
	m->in_flight++;
	return DA_OK;
}

int
http_multi_in_flight(const struct http_multi *m)
{
	return m->in_flight;
}

long
http_multi_connections(const struct http_multi *m)
{
	return m->connections;
}

/* Turn a finished transfer into a result and free its slot. */
static void
finish(struct http_multi *m, struct xfer *x, CURLcode cc,
    struct http_multi_result *res)
{
	long	 status = 0, nconn = 0;

	memset(res, 0, sizeof(*res));
	res->tag = x->tag;
	res->elapsed_ms = (long)(mono_ms() - x->started_ms);
	curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &nconn);
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	http_count(x->url, cc, status, (double)res->elapsed_ms / 1000);
	m->connections += nconn;
	if (cc != CURLE_OK) {
		res->rc = http_transfer_error(cc, x->method, x->safe,
		    x->timeout_ms, &x->answer, x->errbuf, &res->err);
		log_msg(LOG_DEBUG, "%s", res->err.msg);
	} else {
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
		log_msg(LOG_DEBUG, "%s %s -> %ld (%zu bytes, %ld ms)",
		    x->method, x->safe, status, x->answer.len,
		    res->elapsed_ms);
		res->rc = DA_OK;
		res->resp.status = status;
		res->resp.len = x->answer.len;
		res->resp.body = buf_take(&x->answer);
		res->err.api_code = status;
	}
	slot_release(m, x);
}

int
http_multi_next(struct http_multi *m, long timeout_ms,
    struct http_multi_result *res, struct da_error *err)
{
	CURLMsg		*msg;
	CURLMcode	 mc;
	struct xfer	*x;
	long long	 deadline;
	int		 running, left, numfds;
	long		 wait;

	deadline = mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	for (;;) {
		if ((mc = curl_multi_perform(m->multi, &running)) !=
		    CURLM_OK) {
			DA_ERROR(err, DA_EHTTP, "curl_multi_perform: %s",
			    curl_multi_strerror(mc));
			return -1;
		}
		while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			x = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
			    (char **)&x);
			if (x == NULL || !x->busy)
				continue;
			finish(m, x, msg->data.result, res);
			return 1;
		}
		if (m->in_flight == 0)
			return 0;
		if ((wait = (long)(deadline - mono_ms())) <= 0)
			return 0;
		if ((mc = curl_multi_poll(m->multi, NULL, 0, (int)wait,
		    &numfds)) != CURLM_OK) {
			DA_ERROR(err, DA_EHTTP, "curl_multi_poll: %s",
			    curl_multi_strerror(mc));
			return -1;
		}
	}
}

void
http_multi_result_free(struct http_multi_result *res)
{
	if (res == NULL)
		return;
	http_response_free(&res->resp);
	res->tag = NULL;
}
