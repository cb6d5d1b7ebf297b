#ifndef DINGAUTH_HTTP_INTERNAL_H
#define DINGAUTH_HTTP_INTERNAL_H

#include <curl/curl.h>

#include "err.h"
#include "http.h"
#include "mem.h"

/*
 * What http.c shares with http_multi.c, and only with it: the curl types
 * stay out of http.h, so no program sees them.
 */

/* "POST" or "GET" (anything but POST is a GET). */
const char	*http_method(const struct http_request *req);

/* req->timeout_ms, else DINGAUTH_HTTP_TIMEOUT, else 10 s. */
long		 http_timeout_ms(const struct http_request *req);

/*
 * Reset h and give it the safe defaults of http.h for req: url, http
 * and https only, no redirects, TLS peer and host verification (CA file
 * from DINGAUTH_CA_FILE), timeout_ms and the configured connect timeout,
 * the size cap, the user agent, curl's error text in errbuf, the answer
 * appended to answer (whose maximum is HTTP_RESPONSE_MAX), and req's
 * method, body and headers. Returns the header list h now points to:
 * the caller frees it (curl_slist_free_all) once the transfer is over,
 * and keeps req's url and body, errbuf and answer alive until then.
 */
struct curl_slist *http_setup(CURL *h, const struct http_request *req,
		    long timeout_ms, char errbuf[CURL_ERROR_SIZE],
		    struct buf *answer);

/*
 * The error for a transfer that ended with cc (not CURLE_OK): DA_ETIMEOUT,
 * DA_ETOOBIG (answer overflowed) or DA_EHTTP with curl's words, naming
 * method and the redacted url safe. Fills err and returns the code.
 */
enum da_err	 http_transfer_error(CURLcode cc, const char *method,
		    const char *safe, long timeout_ms, const struct buf *answer,
		    const char *errbuf, struct da_error *err);

/*
 * Count a finished transfer to url (metrics.h, METRICS_DT_CALLS): the
 * API as the URL's path, the result (ok, http_error, timeout,
 * transport_error) and the seconds it took.
 */
void		 http_count(const char *url, CURLcode cc, long status,
		    double seconds);

#endif
