#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>

#include <fcgiapp.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "req.h"

extern char	**environ;

static const char *const status_text[][2] = {
	{ "200", "OK" }, { "204", "No Content" }, { "302", "Found" },
	{ "303", "See Other" }, { "400", "Bad Request" },
	{ "401", "Unauthorized" }, { "403", "Forbidden" },
	{ "404", "Not Found" }, { "405", "Method Not Allowed" },
	{ "409", "Conflict" }, { "410", "Gone" },
	{ "413", "Payload Too Large" }, { "415", "Unsupported Media Type" },
	{ "429", "Too Many Requests" }, { "500", "Internal Server Error" },
	{ "502", "Bad Gateway" }, { "503", "Service Unavailable" },
	{ "504", "Gateway Timeout" },
};

/*
 * Set by req_detach in the thread serving the request: serve_one learns
 * from it, not from the request, which its new owner may already have
 * answered and freed.
 */
static _Thread_local int detached;

char *
req_own(struct req *r, char *s)
{
	if (r->nowned == r->owned_cap) {
		r->owned_cap = r->owned_cap ? r->owned_cap * 2 : 32;
		r->owned = xrealloc(r->owned, r->owned_cap * sizeof(*r->owned));
	}
	r->owned[r->nowned++] = s;
	return s;
}

const char *
req_param(const struct req *r, const char *name)
{
	if (r->fcgi != NULL)
		return FCGX_GetParam(name, r->envp);
	return getenv(name);
}

static const char *
kv_find(const struct kvlist *l, const char *name)
{
	size_t	 i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->v[i].name, name) == 0)
			return l->v[i].value;
	return NULL;
}

const char *
req_query(const struct req *r, const char *name)
{
	return kv_find(&r->query, name);
}

/*
 * Our cookies' names on the wire: "__Host-" + name when they are Secure,
 * so that no sibling subdomain and no longer Path can set one the
 * browser would send us (the prefix requires Secure, Path=/ and no
 * Domain, which resp_cookie always writes).
 */
static void
cookie_name(const char *name, char *out, size_t size)
{
	snprintf(out, size, "%s%s", cfg()->num[CFG_COOKIE_SECURE] ?
	    "__Host-" : "", name);
}

/*
 * Several cookies of one name with different values (one planted by a
 * sibling site or under a longer Path): none wins silently, the request
 * is treated as carrying none, and that is logged.
 */
const char *
req_cookie(const struct req *r, const char *name)
{
	char		 wire[128];
	const char	*found = NULL;
	size_t		 i;

	cookie_name(name, wire, sizeof(wire));
	for (i = 0; i < r->cookies.n; i++) {
		if (strcmp(r->cookies.v[i].name, wire) != 0)
			continue;
		if (found != NULL && strcmp(found, r->cookies.v[i].value) != 0) {
			log_msg(LOG_WARN, "two %s cookies with different values: "
			    "both ignored", wire);
			return NULL;
		}
		found = r->cookies.v[i].value;
	}
	return found;
}

const char *
req_form(const struct req *r, const char *name)
{
	return kv_find(&r->form, name);
}

const char *
req_input(const struct req *r, const char *name)
{
	const char	*v;

	if ((v = req_query(r, name)) != NULL)
		return v;
	if ((v = req_form(r, name)) != NULL)
		return v;
	if (r->json_body != NULL)
		return json_as_str(json_get(r->json_body, name));
	return NULL;
}

int
req_wants_json(const struct req *r)
{
	if (r->accept != NULL && strstr(r->accept, "application/json") &&
	    !strstr(r->accept, "text/html"))
		return 1;
	if (r->requested_with != NULL &&
	    strcasecmp(r->requested_with, "XMLHttpRequest") == 0)
		return 1;
	if (r->sec_fetch_mode != NULL &&
	    (strcmp(r->sec_fetch_mode, "cors") == 0 ||
	    strcmp(r->sec_fetch_mode, "same-origin") == 0))
		return 1;
	return 0;
}

/* "https://host:port" of url (scheme and authority), into out. */
static void
origin_of(const char *url, char *out, size_t size)
{
	const char	*host, *end;

	if ((host = strstr(url, "://")) == NULL) {
		snprintf(out, size, "%s", url);
		return;
	}
	end = host + 3 + strcspn(host + 3, "/?#");
	snprintf(out, size, "%.*s", (int)(end - url), url);
}

int
req_same_origin(const struct req *r)
{
	char	 own[512];

	if (r->sec_fetch_site != NULL)
		return strcmp(r->sec_fetch_site, "same-origin") == 0;
	if (r->origin == NULL || strcmp(r->origin, "null") == 0)
		return 0;
	origin_of(cfg()->str[CFG_PUBLIC_URL], own, sizeof(own));
	if (own[0] != '\0' && strcasecmp(r->origin, own) == 0)
		return 1;
	if (r->host == NULL)
		return 0;
	snprintf(own, sizeof(own), "%s://%s", r->https ? "https" : "http",
	    r->host);
	return strcasecmp(r->origin, own) == 0;
}

int
req_answers_json(const struct req *r)
{
	if (r->routed != NULL && (r->routed->json & REQ_M(r->method)))
		return 1;
	return req_wants_json(r);
}

static void
kv_add(struct req *r, struct kvlist *l, char *name, char *value)
{
	req_own(r, name);
	req_own(r, value);
	if (l->n == REQ_PARAMS_MAX) {
		l->truncated = 1;
		return;
	}
	if (l->v == NULL)
		l->v = xcalloc(REQ_PARAMS_MAX, sizeof(*l->v));
	l->v[l->n].name = name;
	l->v[l->n].value = value;
	l->n++;
}

/* Parse "a=1&b=2" (URL-encoded, '+' is space). */
static void
parse_urlencoded(struct req *r, struct kvlist *l, const char *s, size_t len)
{
	const char	*p = s, *end = s + len, *amp, *eq;
	char		*name, *value;
	size_t		 nlen, vlen;

	while (p < end) {
		amp = memchr(p, '&', (size_t)(end - p));
		if (amp == NULL)
			amp = end;
		if (amp > p) {
			eq = memchr(p, '=', (size_t)(amp - p));
			name = http_unescape_form_n(p,
			    (size_t)((eq ? eq : amp) - p), &nlen);
			if (eq != NULL)
				value = http_unescape_form_n(eq + 1,
				    (size_t)(amp - eq - 1), &vlen);
			else {
				value = xstrdup("");
				vlen = 0;
			}
			/* Empty names, oversized or NUL-bearing values: dropped. */
			if (*name == '\0' || nlen != strlen(name) ||
			    vlen > REQ_VALUE_MAX || vlen != strlen(value)) {
				free(name);
				free(value);
			} else
				kv_add(r, l, name, value);
		}
		p = amp + 1;
	}
}

/* Parse a Cookie header: "a=1; b=2". Values are not decoded. */
static void
parse_cookies(struct req *r, const char *s)
{
	const char	*p = s, *semi, *eq, *n0, *n1, *v0, *v1;

	if (strlen(s) > REQ_COOKIE_MAX)
		return;
	while (*p != '\0') {
		semi = strchr(p, ';');
		if (semi == NULL)
			semi = p + strlen(p);
		eq = memchr(p, '=', (size_t)(semi - p));
		if (eq != NULL) {
			n0 = p;
			while (n0 < eq && *n0 == ' ')
				n0++;
			n1 = eq;
			while (n1 > n0 && n1[-1] == ' ')
				n1--;
			v0 = eq + 1;
			v1 = semi;
			while (v1 > v0 && v1[-1] == ' ')
				v1--;
			if (v1 - v0 >= 2 && *v0 == '"' && v1[-1] == '"') {
				v0++;
				v1--;
			}
			/* Every pair kept: req_cookie judges duplicates. */
			if (n1 > n0 && (size_t)(v1 - v0) <= REQ_VALUE_MAX)
				kv_add(r, &r->cookies, xstrndup(n0,
				    (size_t)(n1 - n0)), xstrndup(v0,
				    (size_t)(v1 - v0)));
		}
		p = *semi ? semi + 1 : semi;
	}
}

static int
media_is(const char *ctype, const char *want)
{
	size_t	 n = strlen(want);

	return ctype != NULL && strncasecmp(ctype, want, n) == 0 &&
	    (ctype[n] == '\0' || ctype[n] == ';' || ctype[n] == ' ');
}

static void
read_body(struct req *r)
{
	const char	*cl = req_param(r, "CONTENT_LENGTH");
	char		*end;
	long long	 len;
	size_t		 got = 0;
	int		 n;

	if (cl == NULL || *cl == '\0')
		return;
	len = strtoll(cl, &end, 10);
	if (*end != '\0' || len < 0) {
		r->body_status = REQ_BODY_BAD;
		return;
	}
	if (len == 0)
		return;
	if ((unsigned long long)len > r->body_max) {
		r->body_status = REQ_BODY_TOO_BIG;
		return;
	}
	r->body = req_own(r, xmalloc((size_t)len + 1));
	while (got < (size_t)len) {
		if (r->fcgi != NULL)
			n = FCGX_GetStr(r->body + got, (int)((size_t)len - got),
			    ((FCGX_Request *)r->fcgi)->in);
		else
			n = (int)read(STDIN_FILENO, r->body + got,
			    (size_t)len - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	r->body[got] = '\0';
	r->body_len = got;
	if (got != (size_t)len) {
		r->body_status = REQ_BODY_BAD;
		return;
	}
	r->body_status = REQ_BODY_OK;
	if (media_is(r->content_type, "application/x-www-form-urlencoded")) {
		if (strlen(r->body) != r->body_len)
			r->body_status = REQ_BODY_BAD;
		else
			parse_urlencoded(r, &r->form, r->body, r->body_len);
	} else if (media_is(r->content_type, "application/json")) {
		r->json_body = json_parse(r->body, r->body_len);
		if (r->json_body == NULL || !json_is_object(r->json_body)) {
			json_free(r->json_body);
			r->json_body = NULL;
			r->body_status = REQ_BODY_BAD;
		}
	}
}

/* Fill r from the request's parameters. */
static void
req_parse(struct req *r)
{
	const char	*m, *v, *sn, *pi, *uri, *q;
	char		*path, *slash, *route;
	size_t		 len;

	m = req_param(r, "REQUEST_METHOD");
	r->method_name = m != NULL ? m : "GET";
	if (strcmp(r->method_name, "GET") == 0)
		r->method = REQ_GET;
	else if (strcmp(r->method_name, "HEAD") == 0)
		r->method = REQ_HEAD;
	else if (strcmp(r->method_name, "POST") == 0)
		r->method = REQ_POST;
	else
		r->method = REQ_OTHER;
	v = req_param(r, "FCGI_ROLE");
	r->role = v != NULL && strcmp(v, "AUTHORIZER") == 0 ?
	    REQ_AUTHORIZER : REQ_RESPONDER;
	uri = req_param(r, "REQUEST_URI");
	r->request_uri = uri != NULL ? uri : "/";
	q = req_param(r, "QUERY_STRING");
	if (q == NULL && (q = strchr(r->request_uri, '?')) != NULL)
		q++;
	r->query_string = q != NULL ? q : "";
	r->remote_addr = req_param(r, "REMOTE_ADDR");
	r->user_agent = req_param(r, "HTTP_USER_AGENT");
	r->accept = req_param(r, "HTTP_ACCEPT");
	r->accept_language = req_param(r, "HTTP_ACCEPT_LANGUAGE");
	r->content_type = req_param(r, "CONTENT_TYPE");
	r->requested_with = req_param(r, "HTTP_X_REQUESTED_WITH");
	r->sec_fetch_mode = req_param(r, "HTTP_SEC_FETCH_MODE");
	r->sec_fetch_site = req_param(r, "HTTP_SEC_FETCH_SITE");
	r->origin = req_param(r, "HTTP_ORIGIN");
	r->host = req_param(r, "HTTP_HOST");
	v = req_param(r, "HTTPS");
	r->https = v != NULL && (strcasecmp(v, "on") == 0 ||
	    strcmp(v, "1") == 0);

	/*
	 * Route on SCRIPT_NAME + PATH_INFO; an authorizer gets neither
	 * (lighttpd, Apache), so fall back to the path of REQUEST_URI.
	 */
	sn = req_param(r, "SCRIPT_NAME");
	pi = req_param(r, "PATH_INFO");
	if ((sn != NULL && *sn != '\0') || (pi != NULL && *pi != '\0'))
		path = xasprintf("%s%s", sn ? sn : "", pi ? pi : "");
	else {
		v = strchr(r->request_uri, '?');
		path = xstrndup(r->request_uri, v != NULL ?
		    (size_t)(v - r->request_uri) : strlen(r->request_uri));
	}
	req_own(r, path);
	r->path = path;
	slash = strrchr(path, '/');
	/* Called by its own file name (a plain CGI mount): the same route. */
	route = req_own(r, xstrdup(slash != NULL ? slash + 1 : path));
	if ((len = strlen(route)) > 5 && strcmp(route + len - 5, ".fcgi") == 0)
		route[len - 5] = '\0';
	r->route = route;

	if (strlen(r->query_string) <= REQ_QUERY_MAX)
		parse_urlencoded(r, &r->query, r->query_string,
		    strlen(r->query_string));
	if ((v = req_param(r, "HTTP_COOKIE")) != NULL)
		parse_cookies(r, v);
	if (r->role == REQ_RESPONDER)
		read_body(r);
}

void
resp_status(struct req *r, int status)
{
	r->status = status;
}

static int
header_ok(const char *s, int is_name)
{
	const unsigned char	*p = (const unsigned char *)s;

	if (is_name && *p == '\0')
		return 0;
	for (; *p != '\0'; p++) {
		if (*p == '\r' || *p == '\n')
			return 0;
		if (is_name && !(isalnum(*p) || *p == '-' || *p == '_'))
			return 0;
	}
	return 1;
}

int
resp_header(struct req *r, const char *name, const char *value)
{
	if (!header_ok(name, 1) || !header_ok(value, 0)) {
		r->header_error = 1;
		log_msg(LOG_WARN, "refused a response header with CR/LF or "
		    "an invalid name");
		return -1;
	}
	buf_printf(&r->headers, "%s: %s\r\n", name, value);
	return 0;
}

int
resp_cookie(struct req *r, const char *name, const char *value,
    long long max_age)
{
	struct buf	 b;
	const char	*p;
	char		 wire[128];
	int		 rc;

	for (p = value; *p != '\0'; p++)
		if (*p <= ' ' || *p == ';' || *p == ',' || *p == '"' ||
		    *p == '\\' || (unsigned char)*p >= 0x7f) {
			r->header_error = 1;
			return -1;
		}
	cookie_name(name, wire, sizeof(wire));
	buf_init(&b, 4096);
	buf_printf(&b, "%s=%s; Path=/", wire, value);
	if (max_age == 0)
		buf_puts(&b, "; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
	else if (max_age > 0)
		buf_printf(&b, "; Max-Age=%lld", max_age);
	buf_puts(&b, "; HttpOnly; SameSite=Lax");
	if (cfg()->num[CFG_COOKIE_SECURE])
		buf_puts(&b, "; Secure");
	rc = resp_header(r, "Set-Cookie", b.data);
	buf_free(&b);
	return rc;
}

/* Body output past the cap sets r->out.overflow: resp_send acts on it. */
void
resp_write(struct req *r, const void *data, size_t len)
{
	buf_append(&r->out, data, len);
}

void
resp_puts(struct req *r, const char *s)
{
	buf_puts(&r->out, s);
}

void
resp_printf(struct req *r, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	buf_vprintf(&r->out, fmt, ap);
	va_end(ap);
}

void
resp_clear(struct req *r)
{
	buf_reset(&r->headers);
	buf_reset(&r->out);
	r->out.overflow = 0;
	r->headers.overflow = 0;
	r->header_error = 0;
}

void
resp_json(struct req *r, int status, const json *doc)
{
	char	*text = json_print(doc);

	resp_status(r, status);
	resp_header(r, "Content-Type", "application/json");
	resp_header(r, "Cache-Control", "no-store");
	/* Never read as anything but JSON (a whoami answer names people). */
	resp_header(r, "X-Content-Type-Options", "nosniff");
	resp_puts(r, text);
	resp_puts(r, "\n");
	free(text);
}

static const char *
reason(int status)
{
	char	 code[8];
	size_t	 i;

	snprintf(code, sizeof(code), "%d", status);
	for (i = 0; i < sizeof(status_text) / sizeof(status_text[0]); i++)
		if (strcmp(status_text[i][0], code) == 0)
			return status_text[i][1];
	return "Status";
}

static void
emit(struct req *r, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (r->fcgi != NULL)
		FCGX_PutStr(p, (int)n, ((FCGX_Request *)r->fcgi)->out);
	else
		fwrite(p, 1, n, stdout);
}

/*
 * A response that cannot go out as written (a refused header or cookie,
 * headers or body past their cap) becomes a plain 500: never half an
 * answer, never one without the header the handler meant to send.
 */
static void
resp_check(struct req *r)
{
	const char	*why;

	if (r->header_error)
		why = "a header or cookie was refused";
	else if (r->headers.overflow)
		why = "headers over their cap";
	else if (r->out.overflow)
		why = "body over its cap";
	else
		return;
	log_msg(LOG_ERR, "response to %s %s (status %d) replaced by 500: %s",
	    r->method_name, r->path, r->status, why);
	resp_clear(r);
	resp_status(r, 500);
	resp_header(r, "Content-Type", "text/plain; charset=utf-8");
	resp_header(r, "Cache-Control", "no-store");
	resp_puts(r, "500 Internal Server Error\n");
}

void
resp_send(struct req *r)
{
	struct buf	 head;
	int		 fd;

	if (r->sent)
		return;
	r->sent = 1;
	if (r->status == 0)
		r->status = 200;
	resp_check(r);
	buf_init(&head, 0);
	/* Status first, always: lighttpd drops headers before it. */
	buf_printf(&head, "Status: %d %s\r\n", r->status, reason(r->status));
	buf_append(&head, r->headers.data, r->headers.len);
	buf_puts(&head, "\r\n");
	emit(r, head.data, head.len);
	if (r->method != REQ_HEAD)
		emit(r, r->out.data, r->out.len);
	buf_free(&head);
	if (r->fcgi != NULL) {
		FCGX_Finish_r(r->fcgi);
	} else {
		fflush(stdout);
		/* Tell the server the answer is complete; keep fd 1 valid. */
		if ((fd = open("/dev/null", O_WRONLY)) != -1) {
			dup2(fd, STDOUT_FILENO);
			close(fd);
		}
	}
}

static void
req_free(struct req *r)
{
	size_t	 i;

	for (i = 0; i < r->nowned; i++)
		free(r->owned[i]);
	free(r->owned);
	free(r->query.v);
	free(r->cookies.v);
	free(r->form.v);
	json_free(r->json_body);
	buf_free(&r->headers);
	buf_free(&r->out);
	memset(r, 0, sizeof(*r));
}

static void
req_init(struct req *r, size_t body_max)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->headers, 64 * 1024);
	buf_init(&r->out, 1024 * 1024);
	r->body_max = body_max;
}

static const char *const method_names[REQ_METHOD__MAX] = {
	[REQ_GET] = "GET", [REQ_HEAD] = "HEAD", [REQ_POST] = "POST",
	[REQ_OTHER] = NULL,
};

/* 404 or 405: plain text, or JSON when the answer should be JSON. */
static void
refuse(struct req *r, int status, const char *error)
{
	json	*doc;

	resp_clear(r);
	if (req_answers_json(r)) {
		doc = json_new_object();
		json_add_str(doc, "error", error);
		resp_json(r, status, doc);
		json_free(doc);
		return;
	}
	resp_status(r, status);
	resp_header(r, "X-Content-Type-Options", "nosniff");
	resp_header(r, "Content-Type", "text/plain; charset=utf-8");
	resp_header(r, "Cache-Control", "no-store");
	resp_printf(r, "%d %s\n", status, reason(status));
}

/* The route table's answer to r: a handler, or 404, or 405 with Allow. */
static void
dispatch(struct req *r, const struct req_route *routes, size_t nroutes,
    void *arg)
{
	const struct req_route	*rt = NULL;
	struct buf		 allow;
	size_t			 i;
	int			 m;

	for (i = 0; i < nroutes && rt == NULL; i++)
		if (r->role == REQ_AUTHORIZER ? routes[i].name == NULL :
		    routes[i].name != NULL &&
		    strcmp(routes[i].name, r->route) == 0)
			rt = &routes[i];
	if (rt == NULL) {
		log_msg(LOG_INFO, "no route for %s", r->path);
		refuse(r, 404, "not_found");
		return;
	}
	r->routed = rt;
	if ((rt->methods & REQ_M(r->method)) == 0) {
		log_msg(LOG_INFO, "%s %s: method not allowed", r->method_name,
		    r->path);
		refuse(r, 405, "method_not_allowed");
		buf_init(&allow, 256);
		for (m = 0; m < REQ_METHOD__MAX; m++)
			if ((rt->methods & REQ_M(m)) && method_names[m] != NULL)
				buf_printf(&allow, "%s%s", allow.len ? ", " :
				    "", method_names[m]);
		resp_header(r, "Allow", allow.data);
		buf_free(&allow);
		return;
	}
	rt->handler(r, arg);
}

/*
 * Parse, front line, route, answer, free: 1. A request its handler
 * detached (req_detach) is left as it is: 0.
 */
static int
serve_one(struct req *r, const struct req_route *routes, size_t nroutes,
    req_front front, void *arg)
{
	detached = 0;
	req_parse(r);
	if (front == NULL || front(r, arg) == 0)
		dispatch(r, routes, nroutes, arg);
	if (detached)
		return 0;	/* r may be gone: not another look */
	resp_send(r);
	req_free(r);
	return 1;
}

int
req_serve(const struct req_route *routes, size_t nroutes, req_front front,
    void *arg, size_t body_max)
{
	FCGX_Request	 fr;
	struct req	 r;

	if (FCGX_IsCGI()) {
		req_init(&r, body_max);
		r.is_cgi = 1;
		r.envp = environ;
		serve_one(&r, routes, nroutes, front, arg);
		return 0;
	}
	if (FCGX_Init() != 0 || FCGX_InitRequest(&fr, 0, 0) != 0) {
		log_msg(LOG_ERR, "FastCGI initialisation failed");
		return 1;
	}
	while (FCGX_Accept_r(&fr) >= 0) {
		req_init(&r, body_max);
		r.fcgi = &fr;
		r.envp = fr.envp;
		serve_one(&r, routes, nroutes, front, arg);
	}
	FCGX_Free(&fr, 1);
	return 0;
}

/* What the threads of req_serve_threads share. */
struct serving {
	const struct req_route	*routes;
	size_t			 nroutes;
	req_front		 front;
	void			*arg;
	size_t			 body_max;
	void			(*thread_end)(void);
	pthread_mutex_t		 accept;	/* one thread in accept(2) */
};

/* Requests' stacks are small; their buffers are on the heap. */
#define REQ_THREAD_STACK	(1024 * 1024)

/*
 * A request of req_serve_threads and its FastCGI request, in one block
 * (r first: req_complete frees the block from r) that a detached
 * request takes with it.
 */
struct served {
	struct req	 r;
	FCGX_Request	 fr;
};

int
req_can_detach(const struct req *r)
{
	return r->detachable;
}

void
req_detach(struct req *r)
{
	(void)r;	/* it is the calling thread's request */
	detached = 1;
}

void
req_complete(struct req *r)
{
	resp_send(r);
	req_free(r);
	free(r);	/* the struct served it begins */
}

static struct served *
served_new(void)
{
	struct served	*sv;

	sv = xcalloc(1, sizeof(*sv));
	if (FCGX_InitRequest(&sv->fr, 0, 0) != 0) {
		free(sv);
		return NULL;
	}
	return sv;
}

static void *
serve_thread(void *p)
{
	struct serving	*sv = p;
	struct served	*one;
	int		 rc;

	if ((one = served_new()) == NULL) {
		log_msg(LOG_ERR, "FastCGI initialisation failed");
		goto out;
	}
	for (;;) {
		pthread_mutex_lock(&sv->accept);
		rc = FCGX_Accept_r(&one->fr);
		pthread_mutex_unlock(&sv->accept);
		if (rc < 0)
			break;
		req_init(&one->r, sv->body_max);
		one->r.fcgi = &one->fr;
		one->r.envp = one->fr.envp;
		one->r.detachable = 1;
		if (serve_one(&one->r, sv->routes, sv->nroutes, sv->front,
		    sv->arg))
			continue;
		/* Detached: its handler has it; a new one for the next. */
		if ((one = served_new()) == NULL) {
			log_msg(LOG_ERR, "FastCGI initialisation failed");
			goto out;
		}
	}
	FCGX_Free(&one->fr, 1);
	free(one);
out:
	if (sv->thread_end != NULL)
		sv->thread_end();
	return NULL;
}

int
req_fastcgi(void)
{
	return !FCGX_IsCGI();
}

int
req_serve_threads(const struct req_route *routes, size_t nroutes,
    req_front front, void *arg, size_t body_max, int nthreads,
    void (*thread_end)(void))
{
	struct serving	 sv;
	pthread_attr_t	 attr;
	pthread_t	*t;
	sigset_t	 stop;
	int		 i, n = 0, sig = 0;

	if (FCGX_IsCGI() || nthreads < 2)
		return req_serve(routes, nroutes, front, arg, body_max);
	if (FCGX_Init() != 0) {
		log_msg(LOG_ERR, "FastCGI initialisation failed");
		return 1;
	}
	memset(&sv, 0, sizeof(sv));
	sv.routes = routes;
	sv.nroutes = nroutes;
	sv.front = front;
	sv.arg = arg;
	sv.body_max = body_max;
	sv.thread_end = thread_end;
	pthread_mutex_init(&sv.accept, NULL);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, REQ_THREAD_STACK);
	/*
	 * The signals that stop a FastCGI program (SIGTERM from the web
	 * server or systemd, SIGUSR1 a graceful restart, SIGINT, SIGHUP)
	 * are waited for here, by this thread alone: blocked in every
	 * thread, which inherit the mask. libfcgi's own handler only sets
	 * a flag its accept loop looks at when accept() is interrupted,
	 * which in a threaded process happens to whichever thread the
	 * kernel picked, so the process would never stop.
	 */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGUSR1);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	t = xcalloc((size_t)nthreads, sizeof(*t));
	for (i = 0; i < nthreads; i++)
		if (pthread_create(&t[n], &attr, serve_thread, &sv) == 0)
			n++;
		else
			log_msg(LOG_ERR, "cannot start request thread %d", i);
	pthread_attr_destroy(&attr);
	if (n == 0) {
		free(t);
		return 1;
	}
	/*
	 * Stop at once: a commit under way is atomic (the database keeps it
	 * whole or not at all), and a push not yet answered is one DingTalk
	 * sends again.
	 */
	sigwait(&stop, &sig);
	log_msg(LOG_INFO, "signal %d: stopping", sig);
	_exit(0);
}
