#ifndef DINGAUTH_REQ_H
#define DINGAUTH_REQ_H

#include <stddef.h>

#include "json.h"
#include "mem.h"

/*
 * One request, filled the same way from FastCGI (fcgiapp.h) or plain CGI
 * (environment + stdin), parsed and size-capped before any handler runs;
 * and its response, buffered so that "Status:" always goes out first and
 * a handler can still change its mind. Everything a request allocates
 * hangs off struct req and is freed when it ends, so a long-lived FastCGI
 * worker does not grow.
 */

#define REQ_QUERY_MAX	8192	/* query string bytes */
#define REQ_COOKIE_MAX	8192	/* Cookie header bytes */
#define REQ_PARAMS_MAX	64	/* query/form/cookie pairs each */
#define REQ_VALUE_MAX	4096	/* one decoded value */

enum req_method { REQ_GET, REQ_HEAD, REQ_POST, REQ_OTHER, REQ_METHOD__MAX };
enum req_role { REQ_RESPONDER, REQ_AUTHORIZER };

/* Sets of methods, for routes. */
#define REQ_M(m)	(1u << (m))
#define REQ_M_GET	REQ_M(REQ_GET)
#define REQ_M_HEAD	REQ_M(REQ_HEAD)
#define REQ_M_POST	REQ_M(REQ_POST)
#define REQ_M_ANY	(REQ_M(REQ_METHOD__MAX) - 1)

enum req_body {
	REQ_BODY_NONE,		/* no body */
	REQ_BODY_OK,		/* read, and parsed if form or JSON */
	REQ_BODY_TOO_BIG,	/* over the cap: not read */
	REQ_BODY_BAD,		/* declared form/JSON but did not parse */
};

struct kv {
	char	*name;
	char	*value;
};

struct kvlist {
	struct kv	*v;
	size_t		 n;
	int		 truncated;	/* more pairs than REQ_PARAMS_MAX */
};

struct req {
	enum req_method	 method;
	enum req_role	 role;
	int		 is_cgi;
	const char	*method_name;
	const char	*request_uri;	/* raw, with query */
	const char	*path;		/* SCRIPT_NAME+PATH_INFO or raw URI path */
	const char	*route;		/* last segment of path, any .fcgi cut */
	const char	*query_string;
	const char	*remote_addr;
	const char	*user_agent;
	const char	*accept;
	const char	*accept_language;	/* HTTP_ACCEPT_LANGUAGE */
	const char	*content_type;
	const char	*requested_with;	/* X-Requested-With */
	const char	*sec_fetch_mode;
	const char	*sec_fetch_site;	/* Sec-Fetch-Site */
	const char	*origin;	/* Origin */
	const char	*host;		/* Host */
	int		 https;		/* HTTPS=on: the client used TLS */
	struct kvlist	 query;
	struct kvlist	 cookies;
	struct kvlist	 form;
	json		*json_body;	/* a JSON object body, else NULL */
	char		*body;
	size_t		 body_len;
	enum req_body	 body_status;
	size_t		 body_max;

	const struct req_route *routed;	/* the route serving it, or NULL */

	/* Response. */
	int		 status;
	struct buf	 headers;
	struct buf	 out;
	int		 sent;		/* response already written */
	int		 header_error;	/* a header or cookie was refused */

	/* Private to req.c. */
	int		 detachable;	/* served by req_serve_threads */
	void		*fcgi;		/* FCGX_Request * or NULL */
	char	       **envp;
	char	       **owned;
	size_t		 nowned, owned_cap;
};

/* A CGI/FastCGI parameter (HTTP_COOKIE, REQUEST_URI, ...), or NULL. */
const char	*req_param(const struct req *r, const char *name);
const char	*req_query(const struct req *r, const char *name);
/*
 * Our cookie called name ("dingauth_session"), read under its name on
 * the wire ("__Host-dingauth_session" when DINGAUTH_COOKIE_SECURE=1).
 * Several cookies of that name with different values: NULL (none wins
 * silently), logged.
 */
const char	*req_cookie(const struct req *r, const char *name);
const char	*req_form(const struct req *r, const char *name);
/* A value from the query, then the form, then a JSON body string. */
const char	*req_input(const struct req *r, const char *name);
/* The client asked for JSON (Accept, X-Requested-With, fetch/XHR). */
int		 req_wants_json(const struct req *r);
/*
 * The browser says r comes from a page of this site: Sec-Fetch-Site is
 * "same-origin", or, without it, Origin is DINGAUTH_PUBLIC_URL's origin
 * or this request's own (scheme and Host). Neither header: 0 (a
 * cross-site form post from any current browser carries one of them).
 */
int		 req_same_origin(const struct req *r);
/*
 * Answers to r are JSON: the client asked for it, or r's route answers
 * its method in JSON whatever the client asked (struct req_route json).
 */
int		 req_answers_json(const struct req *r);

/* Set the status (default 200). */
void		 resp_status(struct req *r, int status);
/*
 * Errors are recorded and acted on: a refused header or cookie
 * (header_error) and body output past the buffer's cap (out.overflow)
 * turn the answer into a plain 500 with a log line in resp_send, unless
 * the handler dealt with them first (resp_clear forgets both).
 *
 * Add a header. Refuses (returns -1, sets header_error, logs) a name or
 * value holding CR, LF or NUL, or an invalid name.
 */
int		 resp_header(struct req *r, const char *name, const char *value);
/*
 * Set-Cookie name=value; Path=/; HttpOnly; SameSite=Lax, plus Secure
 * when DINGAUTH_COOKIE_SECURE is 1, and then named "__Host-" + name (no
 * Domain ever: a host-only cookie). max_age < 0: session cookie;
 * max_age == 0: delete it. value must be cookie-safe (no ; , space).
 */
int		 resp_cookie(struct req *r, const char *name, const char *value,
		    long long max_age);
void		 resp_write(struct req *r, const void *data, size_t len);
void		 resp_puts(struct req *r, const char *s);
void		 resp_printf(struct req *r, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
/* Discard headers and body written so far and their errors (status kept). */
void		 resp_clear(struct req *r);
/*
 * Write the response now and end the client's request: FCGX_Finish_r
 * under FastCGI, stdout closed under CGI. The handler may go on working
 * (the callback applies events after answering). Called automatically
 * after the handler returns. A recorded error (see above) sends a plain
 * 500 instead, and logs why.
 */
void		 resp_send(struct req *r);

/* Answer with a JSON document: status, Content-Type, body. */
void		 resp_json(struct req *r, int status, const json *doc);

typedef void	(*req_handler)(struct req *r, void *arg);

/*
 * One row of a program's route table. A request is routed on its last
 * path segment with any ".fcgi" cut (a program called by its own file
 * name under a plain CGI mount serves its route of that name). A request
 * in the FastCGI Authorizer role has no route of its own: it goes to the
 * row whose name is NULL, if there is one.
 */
struct req_route {
	const char	*name;		/* last path segment; NULL: Authorizer */
	unsigned	 methods;	/* REQ_M_*: the others are answered 405 */
	req_handler	 handler;
	unsigned	 json;		/* REQ_M_*: methods always answered in JSON */
};

/*
 * The program's own front line, seen by every request before it is
 * routed: returns 0 to let it through, else it has answered r itself
 * (a program whose configuration did not load).
 */
typedef int	(*req_front)(struct req *r, void *arg);

/*
 * Serve requests: under FastCGI loop on FCGX_Accept_r, under plain CGI
 * handle the one request from the environment. Each request passes
 * front (if not NULL), then is routed through routes[0..nroutes): no
 * route is a 404, a method the route does not take a 405 with Allow
 * (both plain text, or JSON when req_answers_json), else the route's
 * handler runs with arg. body_max caps request bodies. Returns the
 * process exit status.
 */
int		 req_serve(const struct req_route *routes, size_t nroutes,
		    req_front front, void *arg, size_t body_max);
/* 1 when the program was started by a FastCGI server, 0 under plain CGI. */
int		 req_fastcgi(void);
/*
 * req_serve with nthreads threads under FastCGI, each accepting and
 * serving one request at a time (a web server that opens several
 * connections to one process gets that many answered at once); each
 * thread calls thread_end (if not NULL) when it stops. Plain CGI:
 * req_serve.
 */
int		 req_serve_threads(const struct req_route *routes,
		    size_t nroutes, req_front front, void *arg,
		    size_t body_max, int nthreads, void (*thread_end)(void));

/*
 * Under req_serve_threads only (req_can_detach): the handler keeps r
 * after it returns, and its thread goes on to the next request; whoever
 * holds r later answers it with req_complete (resp_send, then r and
 * everything it owns freed), from any thread, exactly once.
 */
int		 req_can_detach(const struct req *r);
void		 req_detach(struct req *r);
void		 req_complete(struct req *r);

/* Make s owned by r (freed with it); returns s. */
char		*req_own(struct req *r, char *s);

#endif
