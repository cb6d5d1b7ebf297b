/*
 * req_echo: a FastCGI/CGI program that answers with what req.c parsed,
 * as JSON, so the request/response layer can be tested from outside
 * under plain CGI and under a real FastCGI server.
 * Query "set_header=NAME:VALUE" tries to add a response header,
 * "cookie=NAME:VALUE" a cookie; the answer says whether they were refused
 * (the handler deals with a refusal: it answers with the report).
 * "ignore_header=NAME:VALUE" and "ignore_cookie=NAME:VALUE" do the same
 * and ignore the result, "big=N" writes N bytes more than the answer:
 * resp_send must then answer a plain 500.
 * Routes: echo, y and r take GET, HEAD and POST; get-only takes GET;
 * json-only takes GET and answers every method in JSON.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "json.h"
#include "req.h"

static const char *const body_names[] = {
	[REQ_BODY_NONE] = "none", [REQ_BODY_OK] = "ok",
	[REQ_BODY_TOO_BIG] = "too_big", [REQ_BODY_BAD] = "bad",
};

static json *
list(const struct kvlist *l)
{
	json	*o = json_new_object();
	size_t	 i;

	/* Duplicate names: show the value lookups return (the first). */
	for (i = 0; i < l->n; i++)
		if (json_get(o, l->v[i].name) == NULL)
			json_add_str(o, l->v[i].name, l->v[i].value);
	return o;
}

/* Cookies as req_cookie reads them: null for a name sent twice, differing. */
static json *
cookie_list(const struct req *r)
{
	json		*o = json_new_object();
	const char	*v;
	size_t		 i;

	for (i = 0; i < r->cookies.n; i++) {
		if (json_get(o, r->cookies.v[i].name) != NULL)
			continue;
		if ((v = req_cookie(r, r->cookies.v[i].name)) != NULL)
			json_add_str(o, r->cookies.v[i].name, v);
		else
			json_add_null(o, r->cookies.v[i].name);
	}
	return o;
}

static void
handle(struct req *r, void *arg)
{
	json		*doc = json_new_object();
	const char	*h, *c;
	char		*name, *colon, kib[1024];
	long		 n;
	int		 refused = 0;

	memset(kib, 'x', sizeof(kib));
	json_add_str(doc, "method", r->method_name);
	json_add_str(doc, "role", r->role == REQ_AUTHORIZER ? "authorizer" :
	    "responder");
	json_add_bool(doc, "cgi", r->is_cgi);
	json_add_str(doc, "path", r->path);
	json_add_str(doc, "route", r->route);
	json_add_str(doc, "request_uri", r->request_uri);
	json_add(doc, "query", list(&r->query));
	json_add(doc, "cookies", cookie_list(r));
	json_add(doc, "form", list(&r->form));
	json_add_bool(doc, "query_truncated", r->query.truncated);
	json_add_str(doc, "body_status", body_names[r->body_status]);
	json_add_int(doc, "body_len", (long long)r->body_len);
	json_add_bool(doc, "has_json", r->json_body != NULL);
	json_add_bool(doc, "wants_json", req_wants_json(r));
	json_add_str(doc, "input_code", req_input(r, "code"));
	if ((h = req_query(r, "set_header")) != NULL &&
	    (colon = strchr(h, ':')) != NULL) {
		name = req_own(r, strndup(h, (size_t)(colon - h)));
		refused |= resp_header(r, name, colon + 1) == -1;
	}
	if ((c = req_query(r, "cookie")) != NULL &&
	    (colon = strchr(c, ':')) != NULL) {
		name = req_own(r, strndup(c, (size_t)(colon - c)));
		refused |= resp_cookie(r, name, colon + 1, 60) == -1;
	}
	json_add_bool(doc, "refused", refused);
	if (refused)
		resp_clear(r);
	if ((h = req_query(r, "ignore_header")) != NULL &&
	    (colon = strchr(h, ':')) != NULL)
		resp_header(r, req_own(r, strndup(h, (size_t)(colon - h))),
		    colon + 1);
	if ((c = req_query(r, "ignore_cookie")) != NULL &&
	    (colon = strchr(c, ':')) != NULL)
		resp_cookie(r, req_own(r, strndup(c, (size_t)(colon - c))),
		    colon + 1, 60);
	if ((h = req_query(r, "big")) != NULL)
		for (n = strtol(h, NULL, 10); n > 0; n -= 1024)
			resp_write(r, kib, n < 1024 ? (size_t)n : 1024);
	resp_json(r, 200, doc);
	json_free(doc);
}

static const struct req_route routes[] = {
	{ "echo", REQ_M_GET | REQ_M_HEAD | REQ_M_POST, handle, 0 },
	{ "y", REQ_M_GET | REQ_M_HEAD | REQ_M_POST, handle, 0 },
	{ "r", REQ_M_GET | REQ_M_HEAD | REQ_M_POST, handle, 0 },
	{ "get-only", REQ_M_GET, handle, 0 },
	{ "json-only", REQ_M_GET, handle, REQ_M_ANY },
};

int
main(void)
{
	struct da_error	 err;

	if (config_load(0, &err) != DA_OK)
		return 1;
	return req_serve(routes, sizeof(routes) / sizeof(routes[0]), NULL,
	    NULL, 4096);
}
