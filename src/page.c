#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "embedded.h"
#include "html.h"
#include "json.h"
#include "log.h"
#include "login.h"
#include "mem.h"
#include "page.h"
#include "req.h"

#define ORIGIN_MAX	512

/*
 * The catalogs, one per language (static/messages.<tag>), each parsed
 * once per process on first use: sorted by key. English is also the
 * fallback for a key another catalog lacks (the tests require none).
 */
struct text {
	const char	*key;
	const char	*text;
};

static struct catalog {
	const char	*tag;		/* <html lang>, DINGAUTH_LANG */
	const char	*file;
	int		 loaded;
	char		*data;		/* a copy of the file, cut in place */
	struct text	*v;
	size_t		 n;
} catalogs[PAGE_LANG__MAX] = {
	[PAGE_LANG_ZH_CN] = { "zh-CN", "messages.zh-CN", 0, NULL, NULL, 0 },
	[PAGE_LANG_EN] = { "en", "messages.en", 0, NULL, NULL, 0 },
};

/* The language of the request being served (page_begin). */
static enum page_lang	 lang = PAGE_LANG_ZH_CN;

static int
text_cmp(const void *a, const void *b)
{
	return strcmp(((const struct text *)a)->key,
	    ((const struct text *)b)->key);
}

/*
 * "key = text" lines of the catalog's file; "#" comments and blank
 * lines skipped, spaces around key and text dropped.
 */
static void
catalog_load(struct catalog *c)
{
	const char	*file;
	char		*line, *next, *eq, *k, *v, *e;
	size_t		 cap = 0;

	if (c->loaded)
		return;
	c->loaded = 1;
	if ((file = embedded_template(c->file)) == NULL)
		return;
	c->data = xstrdup(file);
	for (line = c->data; line != NULL && *line != '\0'; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if (*line == '#' || (eq = strchr(line, '=')) == NULL)
			continue;
		*eq = '\0';
		for (k = line; *k == ' '; k++)
			;
		for (e = eq; e > k && e[-1] == ' '; e--)
			*--e = '\0';
		for (v = eq + 1; *v == ' '; v++)
			;
		if (c->n == cap) {
			cap = cap ? cap * 2 : 128;
			c->v = xrealloc(c->v, cap * sizeof(*c->v));
		}
		c->v[c->n].key = k;
		c->v[c->n++].text = v;
	}
	qsort(c->v, c->n, sizeof(*c->v), text_cmp);
}

/* The text of key in language l, falling back to English, or NULL. */
static const char *
catalog_text_in(enum page_lang l, const char *key)
{
	struct catalog	*c;
	struct text	 want, *t = NULL;
	int		 pass;

	want.key = key;
	for (pass = 0; pass < 2 && t == NULL; pass++) {
		c = &catalogs[pass == 0 ? l : PAGE_LANG_EN];
		catalog_load(c);
		if (c->n > 0)
			t = bsearch(&want, c->v, c->n, sizeof(*c->v),
			    text_cmp);
	}
	return t != NULL ? t->text : NULL;
}

/* The lookup of {{@key}} template slots: the request's language. */
static const char *
catalog_text(const char *key)
{
	return catalog_text_in(lang, key);
}

/* Does the language range at p (up to its end) name tag's language? */
static int
range_is(const char *p, size_t len, const char *primary)
{
	size_t	 n = strlen(primary);

	return len >= n && strncasecmp(p, primary, n) == 0 &&
	    (len == n || p[n] == '-');
}

/*
 * The language an Accept-Language header prefers among ours: the range
 * with the highest q ("zh", "zh-CN", "zh-TW" ... are Chinese; "en",
 * "en-US" ... English; the first wins a tie); Chinese when it names
 * neither (or there is no header).
 */
static enum page_lang
lang_accepted(const char *h)
{
	enum page_lang	 best = PAGE_LANG_ZH_CN, l;
	const char	*p, *end, *semi, *q;
	double		 bestq = 0, qv;
	size_t		 len;

	for (p = h; p != NULL && *p != '\0'; p = *end ? end + 1 : end) {
		end = p + strcspn(p, ",");
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		semi = memchr(p, ';', (size_t)(end - p));
		len = strcspn(p, " \t;,");
		if (range_is(p, len, "zh"))
			l = PAGE_LANG_ZH_CN;
		else if (range_is(p, len, "en"))
			l = PAGE_LANG_EN;
		else
			continue;
		qv = 1;
		if (semi != NULL && (q = strstr(semi, "q=")) != NULL &&
		    q < end)
			qv = strtod(q + 2, NULL);
		if (qv > bestq) {
			bestq = qv;
			best = l;
		}
	}
	return best;
}

void
page_begin(struct req *r)
{
	switch (cfg()->lang) {
	case CFG_LANG_EN:
		lang = PAGE_LANG_EN;
		break;
	case CFG_LANG_ZH_CN:
		lang = PAGE_LANG_ZH_CN;
		break;
	default:
		lang = lang_accepted(r->accept_language);
		break;
	}
}

enum page_lang
page_current_lang(void)
{
	return lang;
}

const char *
page_lang_tag(void)
{
	return catalogs[lang].tag;
}

const char *
page_text_in(enum page_lang l, const char *key)
{
	const char	*t;

	if ((unsigned)l >= PAGE_LANG__MAX)
		l = PAGE_LANG_EN;
	if ((t = catalog_text_in(l, key)) == NULL) {
		log_msg(LOG_ERR, "page: no text %s in %s", key,
		    catalogs[l].file);
		t = key;
	}
	return t;
}

const char *
page_text(const char *key)
{
	return page_text_in(lang, key);
}

void
page_format_in(enum page_lang l, struct buf *out, const char *key,
    const struct html_var *vars, size_t nvars)
{
	const char	*p = page_text_in(l, key), *open, *close;
	size_t		 i;

	while ((open = strchr(p, '{')) != NULL &&
	    (close = strchr(open, '}')) != NULL) {
		buf_append(out, p, (size_t)(open - p));
		for (i = 0; i < nvars; i++)
			if (strlen(vars[i].name) == (size_t)(close - open - 1) &&
			    strncmp(vars[i].name, open + 1,
			    (size_t)(close - open - 1)) == 0)
				break;
		if (i < nvars)
			buf_puts(out, vars[i].value != NULL ?
			    vars[i].value : "");
		else
			buf_append(out, open, (size_t)(close - open + 1));
		p = close + 1;
	}
	buf_puts(out, p);
}

void
page_format(struct buf *out, const char *key, const struct html_var *vars,
    size_t nvars)
{
	page_format_in(lang, out, key, vars, nvars);
}

static const char *const csp_strict =
    "default-src 'self'; script-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

static void
page_headers(struct req *r, const char *ctype, const char *csp)
{
	resp_header(r, "Content-Type", ctype);
	resp_header(r, "Cache-Control", "no-store");
	resp_header(r, "X-Content-Type-Options", "nosniff");
	resp_header(r, "X-Frame-Options", "DENY");
	/*
	 * Pages answering /exchange carry the code in their URL: no
	 * Referer from them. The QR page (the only one with its own CSP)
	 * shows DingTalk's frame our origin, as a plain embedding would.
	 */
	resp_header(r, "Referrer-Policy", csp != NULL ? "strict-origin" :
	    "no-referrer");
	resp_header(r, "Content-Security-Policy",
	    csp != NULL ? csp : csp_strict);
}

/* Last resort when a template fails: plain text, nothing from input. */
static void
plain_500(struct req *r, const char *what)
{
	resp_clear(r);
	resp_status(r, 500);
	page_headers(r, "text/plain; charset=utf-8", NULL);
	resp_puts(r, "500 Internal Server Error\n");
	log_msg(LOG_ERR, "page: %s", what);
}

/*
 * Render tmpl with vars (plus {{static}}), then layout with title and
 * the result as {{content}}, into page. DA_OK or the template's error.
 */
static enum da_err
render(struct buf *page, const char *layout, const char *tmpl,
    const char *title, const struct html_var *vars, size_t nvars,
    struct da_error *err)
{
	struct buf	 content;
	struct html_var	*all;
	char		*stat;
	enum da_err	 rc;

	buf_init(&content, 256 * 1024);
	stat = login_route_path("static");
	all = xcalloc(nvars + 1, sizeof(*all));
	if (nvars > 0)
		memcpy(all, vars, nvars * sizeof(*all));
	all[nvars].name = "static";
	all[nvars].value = stat;
	if ((rc = html_render_with(&content, tmpl, all, nvars + 1,
	    catalog_text, err)) == DA_OK) {
		const struct html_var	 outer[] = {
			{ "lang", page_lang_tag(), 0 },
			{ "title", title, 0 },
			{ "static", stat, 0 },
			{ "page", tmpl, 0 },
			{ "content", content.data, 1 },
		};

		rc = html_render_with(page, layout, outer,
		    sizeof(outer) / sizeof(outer[0]), catalog_text, err);
	}
	free(all);
	free(stat);
	buf_free(&content);
	return rc;
}

void
page_render(struct req *r, int status, const char *tmpl, const char *title,
    const struct html_var *vars, size_t nvars, const char *csp)
{
	struct buf	 page;
	struct da_error	 err = { 0 };

	buf_init(&page, 512 * 1024);
	if (render(&page, "layout.html", tmpl, title, vars, nvars, &err) !=
	    DA_OK)
		plain_500(r, err.msg);
	else {
		resp_status(r, status);
		page_headers(r, "text/html; charset=utf-8", csp);
		resp_write(r, page.data, page.len);
	}
	buf_free(&page);
}

void
page_deny(struct req *r, int status, const char *tmpl, const char *title,
    const struct html_var *vars, size_t nvars)
{
	struct buf	 page;
	struct da_error	 err = { 0 };

	buf_init(&page, 64 * 1024);
	if (render(&page, "deny-layout.html", tmpl, title, vars, nvars,
	    &err) != DA_OK) {
		/* Fails closed all the same: a 500, no grant. */
		resp_clear(r);
		resp_status(r, 500);
		resp_header(r, "Content-Type", "text/html; charset=utf-8");
		resp_header(r, "Cache-Control", "no-store");
		resp_puts(r, "<p>500 Internal Server Error</p>\n");
		log_msg(LOG_ERR, "page: %s", err.msg);
	} else {
		resp_status(r, status);
		resp_header(r, "Content-Type", "text/html; charset=utf-8");
		resp_header(r, "Cache-Control", "no-store");
		resp_write(r, page.data, page.len);
	}
	buf_free(&page);
}

/* Keep only URL characters that cannot end a CSP source expression. */
static void
csp_origin(const char *url, char *out, size_t size)
{
	const char	*host;
	size_t		 n, i;

	out[0] = '\0';
	if ((host = strstr(url, "://")) == NULL)
		return;
	host += 3;
	n = (size_t)(host - url) + strcspn(host, "/?#");
	for (i = 0; i < n; i++)
		if (strchr(" ;,'\"", url[i]) != NULL)
			return;
	if (n < size)
		snprintf(out, size, "%.*s", (int)n, url);
}

char *
page_login_csp(const char *frame_url, const char *script_url)
{
	char	 frame[ORIGIN_MAX], js[ORIGIN_MAX];

	csp_origin(frame_url, frame, sizeof(frame));
	csp_origin(script_url, js, sizeof(js));
	return xasprintf("default-src 'self'; script-src 'self' %s; "
	    "frame-src %s; style-src 'self' 'unsafe-inline'; "
	    "img-src 'self' data: https:; connect-src 'self' https:; "
	    "object-src 'none'; base-uri 'none'; form-action 'self'; "
	    "frame-ancestors 'none'", js, frame);
}

char *
page_inapp_csp(const char *script_url)
{
	char	 js[ORIGIN_MAX];

	csp_origin(script_url, js, sizeof(js));
	return xasprintf("default-src 'self'; script-src 'self' %s; "
	    "style-src 'self'; img-src 'self' data:; connect-src 'self'; "
	    "frame-src 'none'; object-src 'none'; base-uri 'none'; "
	    "form-action 'self'; frame-ancestors 'none'", js);
}

/*
 * The error page: problem id, title, text, who it concerns, retry link,
 * and the request's error reference (also in its log lines).
 */
static void
error_page(struct req *r, int status, const char *id, const char *kind,
    const char *title, const char *text, const char *who, const char *retry)
{
	const struct html_var	 vars[] = {
		{ "title", title, 0 },
		{ "text", text, 0 },
		{ "problem", id, 0 },
		{ "kind", kind, 0 },
		{ "who", who, 1 },
		{ "retry", retry, 0 },
		{ "ref", log_ref(), 0 },
	};

	page_render(r, status, "error.html", title, vars,
	    sizeof(vars) / sizeof(vars[0]), NULL);
}

void
page_problem(struct req *r, enum login_problem p, const char *rd,
    const char *name, int as_json)
{
	const struct login_problem_info	*pi = login_problem_info(p);
	struct buf			 who;
	const char			*title, *text;
	char				*retry, ra[16], key[96];
	json				*doc;

	snprintf(key, sizeof(key), "problem.%s.title", pi->id);
	title = page_text(key);
	snprintf(key, sizeof(key), "problem.%s.text", pi->id);
	text = page_text(key);
	retry = login_page_path(rd);
	if (pi->retry_after > 0) {
		snprintf(ra, sizeof(ra), "%d", pi->retry_after);
		resp_header(r, "Retry-After", ra);
	}
	/* Its log line (and the page) carry the reference. */
	log_msg(LOG_INFO, "answered %d %s", pi->status, pi->id);
	if (as_json) {
		doc = json_new_object();
		json_add_str(doc, "error", pi->id);
		json_add_str(doc, "message", title);
		json_add_str(doc, "detail", text);
		json_add_str(doc, "retry", retry);
		json_add_str(doc, "ref", log_ref());
		if (pi->retry_after > 0)
			json_add_int(doc, "retry_after", pi->retry_after);
		resp_json(r, pi->status, doc);
		resp_header(r, "Referrer-Policy", "no-referrer");
		json_free(doc);
		free(retry);
		return;
	}
	buf_init(&who, 4096);
	if (name != NULL && name[0] != '\0') {
		buf_puts(&who, "<p class=\"who\">");
		html_escape_text(&who, page_text("error.account"));
		buf_puts(&who, " <strong>");
		html_escape_text(&who, name);
		buf_puts(&who, "</strong></p>");
	} else
		buf_puts(&who, "");
	error_page(r, pi->status, pi->id, p == LOGIN_WAITING ? "waiting" :
	    "error", title, text, who.data, retry);
	buf_free(&who);
	free(retry);
}

/*
 * What a visitor may learn of a configuration problem: a generic text,
 * naming the setting when the detail names one of our keys, never the
 * rest (paths, values). The detail is logged.
 */
static void
config_visible(struct buf *out, const char *msg)
{
	const char	*p = msg;
	char		 key[64];
	size_t		 n;

	buf_puts(out, page_text("error.misconfigured.text"));
	for (key[0] = '\0'; *p != '\0'; p += n) {
		if ((n = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_")) == 0) {
			n = 1;
			continue;
		}
		if (n < sizeof(key)) {
			memcpy(key, p, n);
			key[n] = '\0';
			if (config_lookup(key) != CFG__MAX)
				break;
		}
		key[0] = '\0';
	}
	if (key[0] == '\0')
		return;
	{
		const struct html_var	 v = { "key", key, 0 };

		buf_puts(out, " ");
		page_format(out, "error.misconfigured.key", &v, 1);
	}
}

void
page_config_error(struct req *r, const struct da_error *err)
{
	const char	*title = page_text("error.misconfigured.title");
	const char	*msg = err != NULL && err->msg[0] ? err->msg :
	    "configuration error";
	struct buf	 text;
	json		*doc;
	char		*retry;

	log_msg(LOG_ERR, "configuration: %s", msg);
	resp_clear(r);
	buf_init(&text, 0);
	config_visible(&text, msg);
	if (req_answers_json(r)) {
		/* Apache relabels deny bodies; its example config reads this. */
		if (r->role == REQ_AUTHORIZER)
			resp_header(r, "X-Dingauth-Json", "1");
		doc = json_new_object();
		json_add_str(doc, "error", "misconfigured");
		json_add_str(doc, "message", title);
		json_add_str(doc, "detail", text.data);
		json_add_str(doc, "ref", log_ref());
		resp_json(r, 500, doc);
		json_free(doc);
	} else if (r->role == REQ_AUTHORIZER) {
		const struct html_var	 vars[] = {
			{ "message", text.data, 0 },
			{ "ref", log_ref(), 0 },
		};

		page_deny(r, 500, "deny-error.html",
		    page_text("deny.error.title"), vars, 2);
	} else {
		retry = login_page_path(NULL);
		error_page(r, 500, "misconfigured", "error", title, text.data,
		    "", retry);
		free(retry);
	}
	buf_free(&text);
}

void
page_redirect(struct req *r, const char *location)
{
	resp_status(r, 302);
	resp_header(r, "Location", location);
	resp_header(r, "Cache-Control", "no-store");
	resp_header(r, "Referrer-Policy", "no-referrer");
}
