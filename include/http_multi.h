#ifndef DINGAUTH_HTTP_MULTI_H
#define DINGAUTH_HTTP_MULTI_H

#include <stddef.h>

#include "err.h"
#include "http.h"

/*
 * Several HTTP requests in flight at once over one libcurl multi handle,
 * for flows that make many calls (the directory sync). Each transfer gets
 * the same safe defaults as http_do(): TLS peer and host verification
 * (CA file from DINGAUTH_CA_FILE), connect and total timeouts from the
 * configuration, no redirects, http/https only, a response-size cap of
 * HTTP_RESPONSE_MAX, and only redacted URLs (http_redact) in messages.
 * Connections are kept open and reused between transfers.
 *
 * The caller decides how many transfers run at once (http_multi_add never
 * queues behind a full pool silently: it refuses beyond max_parallel) and
 * when each starts, so it can pace requests against a rate limit.
 */
struct http_multi;

struct http_multi_result {
	void			*tag;	/* as given to http_multi_add */
	enum da_err		 rc;	/* transport outcome, as http_do */
	struct http_response	 resp;	/* status and body if DA_OK */
	struct da_error		 err;	/* the reason otherwise */
	long			 elapsed_ms;
};

/* A multi handle for at most max_parallel transfers at once. */
enum da_err	 http_multi_new(int max_parallel, struct http_multi **out,
		    struct da_error *err);
/* Abort transfers still running and free everything; NULL is fine. */
void		 http_multi_free(struct http_multi *m);

/*
 * Start req (everything in it is copied). tag comes back in the result.
 * DA_EBUSY when max_parallel transfers are already in flight.
 */
enum da_err	 http_multi_add(struct http_multi *m,
		    const struct http_request *req, void *tag,
		    struct da_error *err);

/* Transfers started and not yet returned by http_multi_next. */
int		 http_multi_in_flight(const struct http_multi *m);

/*
 * Drive the transfers, waiting at most timeout_ms for one to finish.
 * Returns 1 with *res filled (free it with http_multi_result_free) when a
 * transfer finished, 0 when none did in time (or none is in flight),
 * -1 with err filled when libcurl itself failed.
 */
int		 http_multi_next(struct http_multi *m, long timeout_ms,
		    struct http_multi_result *res, struct da_error *err);
void		 http_multi_result_free(struct http_multi_result *res);

/* New connections opened by this handle so far. */
long		 http_multi_connections(const struct http_multi *m);

#endif
