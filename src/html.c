#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedded.h"
#include "html.h"
#include "http.h"

#define SLOT_NAME_MAX	64

enum html_filter {
	FILTER_TEXT,
	FILTER_ATTR,
	FILTER_URL,
	FILTER_JS,
	FILTER_RAW,
	FILTER_ASCII,
	FILTER__MAX
};

static const char *const filter_names[FILTER__MAX] = {
	[FILTER_TEXT] = "",
	[FILTER_ATTR] = "attr",
	[FILTER_URL] = "url",
	[FILTER_JS] = "js",
	[FILTER_RAW] = "raw",
	[FILTER_ASCII] = "ascii",
};

/* Markup characters and their references. */
static const char *const entity[0x80] = {
	['&'] = "&amp;", ['<'] = "&lt;", ['>'] = "&gt;",
	['"'] = "&quot;", ['\''] = "&#39;",
};

void
html_escape_text(struct buf *b, const char *s)
{
	const char	*p, *run;

	if (s == NULL)
		return;
	for (run = p = s; *p != '\0'; p++) {
		if ((unsigned char)*p >= 0x80 || entity[(unsigned char)*p] ==
		    NULL)
			continue;
		buf_append(b, run, (size_t)(p - run));
		buf_puts(b, entity[(unsigned char)*p]);
		run = p + 1;
	}
	buf_append(b, run, (size_t)(p - run));
}

/*
 * Length of the UTF-8 sequence at p (2 to 4) with its code point in *cp,
 * or 0 if it is not one (overlong, surrogate, out of range, cut short).
 */
static int
utf8_decode(const unsigned char *p, unsigned long *cp)
{
	static const unsigned long	 least[5] = { 0, 0, 0x80, 0x800,
					    0x10000 };
	int				 n, i;

	if ((*p & 0xe0) == 0xc0)
		n = 2;
	else if ((*p & 0xf0) == 0xe0)
		n = 3;
	else if ((*p & 0xf8) == 0xf0)
		n = 4;
	else
		return 0;
	*cp = *p & (0x7f >> n);
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		*cp = (*cp << 6) | (p[i] & 0x3f);
	}
	if (*cp < least[n] || *cp > 0x10ffff ||
	    (*cp >= 0xd800 && *cp <= 0xdfff))
		return 0;
	return n;
}

void
html_escape_ascii(struct buf *b, const char *s)
{
	const unsigned char	*p;
	unsigned long		 cp;
	int			 n;

	if (s == NULL)
		return;
	for (p = (const unsigned char *)s; *p != '\0'; p += n) {
		n = 1;
		if (*p >= 0x80) {
			if ((n = utf8_decode(p, &cp)) == 0) {
				buf_puts(b, "&#xFFFD;");
				n = 1;
			} else
				buf_printf(b, "&#x%lX;", cp);
		} else if (entity[*p] != NULL)
			buf_puts(b, entity[*p]);
		else if (*p < 0x20 || *p == 0x7f)
			buf_puts(b, " ");
		else
			buf_append(b, p, 1);
	}
}

void
html_escape_attr(struct buf *b, const char *s)
{
	const unsigned char	*p;

	if (s == NULL)
		return;
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == ',' || *p == '.' ||
		    *p == '-' || *p == '_' || *p >= 0x80)
			buf_append(b, p, 1);
		else
			buf_printf(b, "&#x%02X;", *p);
	}
}

void
html_escape_url(struct buf *b, const char *s)
{
	char	*e;

	if (s == NULL)
		return;
	e = http_escape(s);
	buf_puts(b, e);
	free(e);
}

void
html_escape_js(struct buf *b, const char *s)
{
	const unsigned char	*p;

	if (s == NULL)
		return;
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f || *p == '\\' || *p == '"' ||
		    *p == '\'' || *p == '<' || *p == '>' || *p == '&' ||
		    *p == '/' || *p == '=' || *p == '`')
			buf_printf(b, "\\u%04X", *p);
		else if (p[0] == 0xe2 && p[1] == 0x80 &&
		    (p[2] == 0xa8 || p[2] == 0xa9)) {
			/* LINE/PARAGRAPH SEPARATOR end a line in old JS. */
			buf_printf(b, "\\u%04X", p[2] == 0xa8 ? 0x2028 : 0x2029);
			p += 2;
		} else
			buf_append(b, p, 1);
	}
}

static const struct html_var *
find_var(const struct html_var *vars, size_t nvars, const char *name,
    size_t len)
{
	size_t	 i;

	for (i = 0; i < nvars; i++)
		if (strlen(vars[i].name) == len &&
		    strncmp(vars[i].name, name, len) == 0)
			return &vars[i];
	return NULL;
}

/* A slot name's characters; a catalog key ("@login.lead") also has '.'. */
static int
slot_char(char c, int key)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
	    (key && c == '.');
}

/* Emit one slot s[0..len) ("name", "@key", either with "|filter"). */
static enum da_err
render_slot(struct buf *out, const char *s, size_t len,
    const struct html_var *vars, size_t nvars, html_text_fn text,
    struct da_error *err)
{
	const struct html_var	*v;
	struct html_var		 kv;
	struct buf		 tmp;
	const char		*bar;
	char			 key[SLOT_NAME_MAX + 1];
	size_t			 nlen, flen, i;
	enum html_filter	 f = FILTER__MAX;
	int			 is_key = len > 0 && s[0] == '@';

	bar = memchr(s, '|', len);
	nlen = bar != NULL ? (size_t)(bar - s) : len;
	for (i = is_key; i < nlen; i++)
		if (!slot_char(s[i], is_key))
			break;
	if (nlen <= (size_t)is_key || nlen > SLOT_NAME_MAX || i != nlen)
		return DA_ERROR(err, DA_EINPUT, "template slot {{%.*s}}: "
		    "bad name", (int)(len > 80 ? 80 : len), s);
	if (bar == NULL)
		f = FILTER_TEXT;
	else {
		flen = len - nlen - 1;
		for (i = 1; i < FILTER__MAX; i++)
			if (strlen(filter_names[i]) == flen &&
			    strncmp(filter_names[i], bar + 1, flen) == 0)
				f = (enum html_filter)i;
		if (f == FILTER__MAX)
			return DA_ERROR(err, DA_EINPUT, "template slot "
			    "{{%.*s}}: unknown filter", (int)len, s);
	}
	if (is_key) {
		/* A string of the catalog: text like any other, never raw. */
		memcpy(key, s + 1, nlen - 1);
		key[nlen - 1] = '\0';
		kv.name = key;
		kv.raw = 0;
		if (text == NULL || (kv.value = text(key)) == NULL)
			return DA_ERROR(err, DA_EINPUT, "template slot "
			    "{{%.*s}}: no such text", (int)nlen, s);
		v = &kv;
	} else if ((v = find_var(vars, nvars, s, nlen)) == NULL)
		return DA_ERROR(err, DA_EINPUT, "template slot {{%.*s}}: "
		    "no such value", (int)nlen, s);
	switch (f) {
	case FILTER_TEXT:
		html_escape_text(out, v->value);
		break;
	case FILTER_ATTR:
		html_escape_attr(out, v->value);
		break;
	case FILTER_URL:
		buf_init(&tmp, 0);
		html_escape_url(&tmp, v->value);
		html_escape_text(out, tmp.data);
		buf_free(&tmp);
		break;
	case FILTER_JS:
		html_escape_js(out, v->value);
		break;
	case FILTER_ASCII:
		html_escape_ascii(out, v->value);
		break;
	case FILTER_RAW:
		if (!v->raw)
			return DA_ERROR(err, DA_EINPUT, "template slot "
			    "{{%.*s}}: value is not marked raw", (int)len, s);
		if (v->value != NULL)
			buf_puts(out, v->value);
		break;
	default:
		abort();
	}
	return DA_OK;
}

static enum da_err
render(struct buf *out, const char *text, const struct html_var *vars,
    size_t nvars, html_text_fn lookup, struct da_error *err)
{
	const char	*p = text, *open, *close;
	size_t		 start = out->len;
	enum da_err	 rc = DA_OK;

	while ((open = strstr(p, "{{")) != NULL) {
		buf_append(out, p, (size_t)(open - p));
		if ((close = strstr(open + 2, "}}")) == NULL ||
		    close - open - 2 > SLOT_NAME_MAX + 8) {
			rc = DA_ERROR(err, DA_EINPUT,
			    "template: unterminated slot");
			goto out;
		}
		rc = render_slot(out, open + 2, (size_t)(close - open - 2),
		    vars, nvars, lookup, err);
		if (rc != DA_OK)
			goto out;
		p = close + 2;
	}
	buf_puts(out, p);
	if (out->overflow)
		rc = DA_ERROR(err, DA_ETOOBIG, "template: output too large");
out:
	if (rc != DA_OK) {
		/* Leave out as it was: never half a page. */
		out->len = start;
		if (out->data != NULL)
			out->data[start] = '\0';
	}
	return rc;
}

enum da_err
html_render_text(struct buf *out, const char *text,
    const struct html_var *vars, size_t nvars, struct da_error *err)
{
	return render(out, text, vars, nvars, NULL, err);
}

enum da_err
html_render_text_with(struct buf *out, const char *text,
    const struct html_var *vars, size_t nvars, html_text_fn lookup,
    struct da_error *err)
{
	return render(out, text, vars, nvars, lookup, err);
}

int
html_utf8_valid(const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	unsigned long		 cp;
	int			 n;

	for (; *p != '\0'; p += n) {
		n = 1;
		if (*p >= 0x80 && (n = utf8_decode(p, &cp)) == 0)
			return 0;
	}
	return 1;
}

enum da_err
html_render(struct buf *out, const char *name, const struct html_var *vars,
    size_t nvars, struct da_error *err)
{
	return html_render_with(out, name, vars, nvars, NULL, err);
}

enum da_err
html_render_with(struct buf *out, const char *name,
    const struct html_var *vars, size_t nvars, html_text_fn lookup,
    struct da_error *err)
{
	const char	*text;

	if ((text = embedded_template(name)) == NULL)
		return DA_ERROR(err, DA_EINPUT, "no template %s", name);
	return render(out, text, vars, nvars, lookup, err);
}
