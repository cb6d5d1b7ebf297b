#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "crypto.h"
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
 * Branding (DINGAUTH_TEMPLATE_DIR): a file there named like a built-in
 * template or catalog (embedded_templates) or STYLE_FILE replaces it.
 * Only those names are ever looked up, never a name from a request. Each
 * is read once per process, on first use: a regular file of at most
 * OVERRIDE_MAX bytes of UTF-8 without NUL; STYLE_FILE also ASCII
 * without "</", as it goes inline into a <style> element, on the ASCII
 * deny pages too; the deny templates ASCII. A file that cannot be read
 * or used (a template that does not render, a catalog that is malformed
 * or lacks a key) is set aside with one log line, and the built-in one
 * serves.
 */
#define OVERRIDE_MAX	(256 * 1024)
#define STYLE_FILE	"login.css"

enum override_state {
	OVERRIDE_UNREAD,
	OVERRIDE_NONE,		/* no such file: the built-in one */
	OVERRIDE_OK,
	OVERRIDE_BROKEN		/* logged once: the built-in one */
};

struct override {
	const char		*name;
	enum override_state	 state;
	char			*text;
};

/* One per built-in template and catalog, then STYLE_FILE. */
static struct override	*overrides;
static size_t		 noverrides;

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

/* The language of the request being served (page_begin), per thread. */
static _Thread_local enum page_lang	 lang = PAGE_LANG_ZH_CN;

static int
text_cmp(const void *a, const void *b)
{
	return strcmp(((const struct text *)a)->key,
	    ((const struct text *)b)->key);
}

static const char	*override_text(const char *name);
static void		 override_reject(const char *name, const char *why);

/* A catalog key's characters, as a template's {{@key}} has them. */
static int
catalog_key_ok(const char *k)
{
	return *k != '\0' && strspn(k, "abcdefghijklmnopqrstuvwxyz"
	    "0123456789._") == strlen(k);
}

/*
 * "key = text" lines of text into c; "#" comments and blank lines
 * skipped, spaces around key and text (and a CR ending the line)
 * dropped. strict (a branding catalog): a line that is neither is an
 * error, described in why[size]; 0 then, else 1.
 */
static int
catalog_parse(struct catalog *c, const char *text, int strict, char *why,
    size_t size)
{
	char		*line, *next, *eq, *k, *v, *e;
	size_t		 cap = 0, lineno = 0;

	c->data = xstrdup(text);
	for (line = c->data; line != NULL && *line != '\0'; line = next) {
		lineno++;
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		for (e = line + strlen(line); e > line && (e[-1] == '\r' ||
		    e[-1] == ' '); e--)
			*--e = '\0';
		if (*line == '#' || *line == '\0')
			continue;
		if ((eq = strchr(line, '=')) == NULL) {
			if (!strict)
				continue;
			snprintf(why, size, "line %zu: no \"key = text\"",
			    lineno);
			return 0;
		}
		*eq = '\0';
		for (k = line; *k == ' '; k++)
			;
		for (e = eq; e > k && e[-1] == ' '; e--)
			*--e = '\0';
		for (v = eq + 1; *v == ' '; v++)
			;
		if (strict && !catalog_key_ok(k)) {
			snprintf(why, size, "line %zu: a key of a-z, 0-9, "
			    "'.' and '_' expected", lineno);
			return 0;
		}
		if (c->n == cap) {
			cap = cap ? cap * 2 : 128;
			c->v = xrealloc(c->v, cap * sizeof(*c->v));
		}
		c->v[c->n].key = k;
		c->v[c->n++].text = v;
	}
	qsort(c->v, c->n, sizeof(*c->v), text_cmp);
	return 1;
}

/* Has mine every key of builtin? If not, why[size] names one. */
static int
catalog_covers(const struct catalog *mine, const struct catalog *builtin,
    char *why, size_t size)
{
	size_t	 i;

	for (i = 0; i < builtin->n; i++)
		if (mine->n == 0 || bsearch(&builtin->v[i], mine->v, mine->n,
		    sizeof(*mine->v), text_cmp) == NULL) {
			snprintf(why, size, "lacks the key %s",
			    builtin->v[i].key);
			return 0;
		}
	return 1;
}

/*
 * The catalog's built-in file, or its branding file when that parses
 * and has every key of the built-in one.
 */
static void
catalog_load(struct catalog *c)
{
	struct catalog	 mine;
	const char	*file, *text;
	char		 why[160];

	if (c->loaded)
		return;
	c->loaded = 1;
	if ((file = embedded_template(c->file)) == NULL)
		return;
	catalog_parse(c, file, 0, why, sizeof(why));
	if ((text = override_text(c->file)) == NULL)
		return;
	memset(&mine, 0, sizeof(mine));
	mine.tag = c->tag;
	mine.file = c->file;
	mine.loaded = 1;
	if (catalog_parse(&mine, text, 1, why, sizeof(why)) &&
	    catalog_covers(&mine, c, why, sizeof(why))) {
		free(c->data);
		free(c->v);
		*c = mine;
		return;
	}
	free(mine.data);
	free(mine.v);
	override_reject(c->file, why);
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

/*
 * The override slot of name (a built-in template or catalog, or
 * STYLE_FILE), or NULL: no other name is ever read. The first call
 * also says once if DINGAUTH_TEMPLATE_DIR is not a directory.
 */
static struct override *
override_slot(const char *name)
{
	struct stat	 st;
	size_t		 i;

	if (overrides == NULL) {
		for (i = 0; embedded_templates[i].name != NULL; i++)
			;
		noverrides = i + 1;
		overrides = xcalloc(noverrides, sizeof(*overrides));
		for (i = 0; embedded_templates[i].name != NULL; i++)
			overrides[i].name = embedded_templates[i].name;
		overrides[i].name = STYLE_FILE;
		if (stat(config_str(CFG_TEMPLATE_DIR), &st) == -1 ||
		    !S_ISDIR(st.st_mode))
			log_msg(LOG_WARN, "page: DINGAUTH_TEMPLATE_DIR %s: "
			    "not a directory; the built-in pages are used",
			    config_str(CFG_TEMPLATE_DIR));
	}
	for (i = 0; i < noverrides; i++)
		if (strcmp(overrides[i].name, name) == 0)
			return &overrides[i];
	return NULL;
}

/* Set name's override aside for this process, with one log line. */
static void
override_reject(const char *name, const char *why)
{
	struct override	*o = override_slot(name);

	if (o == NULL || o->state == OVERRIDE_BROKEN)
		return;
	log_msg(LOG_WARN, "page: %s/%s: %s; the built-in one is used",
	    config_str(CFG_TEMPLATE_DIR), name, why);
	free(o->text);
	o->text = NULL;
	o->state = OVERRIDE_BROKEN;
}

/*
 * Is s ASCII (for the deny pages: page_deny), and with no_close, free
 * of "</" (to go inline into a <style> element)?
 */
static int
ascii_ok(const char *s, int no_close)
{
	const unsigned char	*p;

	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p >= 0x80 || (no_close && p[0] == '<' && p[1] == '/'))
			return 0;
	return 1;
}

/* Read o's file (see OVERRIDE_MAX): OVERRIDE_OK, _NONE or _BROKEN. */
static void
override_read(struct override *o)
{
	struct stat	 st;
	const char	*why = NULL;
	char		*path, buf[160];
	size_t		 len = 0;
	ssize_t		 n;
	int		 fd;

	o->state = OVERRIDE_NONE;
	path = xasprintf("%s/%s", config_str(CFG_TEMPLATE_DIR), o->name);
	/* O_NONBLOCK: a FIFO in its place never stalls a request. */
	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) == -1) {
		if (errno != ENOENT && errno != ENOTDIR) {
			snprintf(buf, sizeof(buf), "cannot be read: %s",
			    strerror(errno));
			why = buf;
		}
		goto out;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode))
		why = "not a regular file";
	else if (st.st_size > OVERRIDE_MAX)
		why = "larger than 256 KiB";
	else {
		o->text = xmalloc((size_t)st.st_size + 1);
		while (len < (size_t)st.st_size && (n = read(fd, o->text +
		    len, (size_t)st.st_size - len)) > 0)
			len += (size_t)n;
		o->text[len] = '\0';
		if (len != (size_t)st.st_size)
			why = "cannot be read";
		else if (strlen(o->text) != len || !html_utf8_valid(o->text))
			why = "not UTF-8 text";
		else if (strcmp(o->name, STYLE_FILE) == 0 &&
		    !ascii_ok(o->text, 1))
			why = "not ASCII, or holds \"</\" (write other "
			    "characters as CSS escapes)";
		else if (strncmp(o->name, "deny-", 5) == 0 &&
		    !ascii_ok(o->text, 0))
			why = "not ASCII, as a deny page must be (write "
			    "other characters as &#x...; references)";
		else
			o->state = OVERRIDE_OK;
	}
	close(fd);
out:
	if (why != NULL)
		override_reject(o->name, why);
	free(path);
}

/* The branding text of name, or NULL (none, or set aside). */
static const char *
override_text(const char *name)
{
	struct override	*o;

	/* Absolute, as the configuration checks (not when it failed). */
	if (config_str(CFG_TEMPLATE_DIR)[0] != '/' ||
	    (o = override_slot(name)) == NULL)
		return NULL;
	if (o->state == OVERRIDE_UNREAD)
		override_read(o);
	return o->state == OVERRIDE_OK ? o->text : NULL;
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
page_preload(void)
{
	size_t	 i;
	int	 l;

	for (l = 0; l < PAGE_LANG__MAX; l++)
		catalog_load(&catalogs[l]);
	(void)override_text(STYLE_FILE);
	for (i = 0; i < noverrides; i++)
		(void)override_text(overrides[i].name);
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

/*
 * policy, also admitting a branding login.css (inline: see STYLE_FILE)
 * by its hash, unless its style-src admits inline styles already (a
 * hash would turn 'unsafe-inline' off). Caller frees.
 */
static char *
csp_styled(const char *policy)
{
	const char	*css = override_text(STYLE_FILE), *s;
	unsigned char	 h[CRYPTO_SHA256_LEN];
	char		*b64, *dir, *out;

	if (css == NULL)
		return xstrdup(policy);
	crypto_sha256(css, strlen(css), h);
	b64 = crypto_base64_encode(h, sizeof(h));
	if ((s = strstr(policy, "style-src ")) == NULL)
		out = xasprintf("%s; style-src 'self' 'sha256-%s'", policy,
		    b64);
	else {
		dir = xstrndup(s, strcspn(s, ";"));
		if (strstr(dir, "'unsafe-inline'") != NULL)
			out = xstrdup(policy);
		else
			out = xasprintf("%.*s 'sha256-%s'%s",
			    (int)(s + 9 - policy), policy, b64, s + 9);
		free(dir);
	}
	free(b64);
	return out;
}

static void
page_headers(struct req *r, const char *ctype, const char *csp)
{
	char	*policy = csp_styled(csp != NULL ? csp : csp_strict);

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
	resp_header(r, "Content-Security-Policy", policy);
	free(policy);
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
 * Template name with vars into out: its branding override when there
 * is one and it renders, else (the override set aside) the built-in one.
 */
static enum da_err
render_one(struct buf *out, const char *name, const struct html_var *vars,
    size_t nvars, struct da_error *err)
{
	const char	*mine = override_text(name);

	if (mine != NULL) {
		if (html_render_text_with(out, mine, vars, nvars,
		    catalog_text, err) == DA_OK)
			return DA_OK;
		override_reject(name, err->msg);
		da_error_clear(err);
	}
	return html_render_with(out, name, vars, nvars, catalog_text, err);
}

/*
 * The layouts' {{stylesheet|raw}}: a link to the built-in login.css, or
 * a branding one inline (ASCII, no "</": ascii_ok). Caller frees.
 */
static char *
stylesheet(const char *stat)
{
	const char	*css = override_text(STYLE_FILE);
	struct buf	 b;

	buf_init(&b, 0);
	if (css != NULL) {
		buf_puts(&b, "<style>");
		buf_puts(&b, css);
		buf_puts(&b, "</style>");
	} else {
		buf_puts(&b, "<link rel=\"stylesheet\" href=\"");
		html_escape_ascii(&b, stat);
		buf_puts(&b, "/login.css\">");
	}
	return buf_take(&b);
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
	char		*stat, *sheet;
	enum da_err	 rc;

	buf_init(&content, 256 * 1024);
	stat = login_route_path("static");
	all = xcalloc(nvars + 1, sizeof(*all));
	if (nvars > 0)
		memcpy(all, vars, nvars * sizeof(*all));
	all[nvars].name = "static";
	all[nvars].value = stat;
	sheet = stylesheet(stat);
	if ((rc = render_one(&content, tmpl, all, nvars + 1, err)) == DA_OK) {
		const struct html_var	 outer[] = {
			{ "lang", page_lang_tag(), 0 },
			{ "title", title, 0 },
			{ "static", stat, 0 },
			{ "stylesheet", sheet, 1 },
			{ "page", tmpl, 0 },
			{ "content", content.data, 1 },
		};

		rc = render_one(page, layout, outer,
		    sizeof(outer) / sizeof(outer[0]), err);
	}
	free(all);
	free(sheet);
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
