#ifndef DINGAUTH_HTML_H
#define DINGAUTH_HTML_H

#include <stddef.h>

#include "err.h"
#include "mem.h"

/*
 * Output escaped by construction: one escaper per context, and a tiny
 * template renderer over the pages compiled in from static/ (the .html
 * files).
 *
 * Escapers append to a struct buf (mem.h). None of them trusts its input
 * to be valid UTF-8; bytes >= 0x80 pass through unchanged except where a
 * context needs them encoded (URLs).
 */

/* Text and quoted attribute values: & < > " ' become entities. */
void		 html_escape_text(struct buf *b, const char *s);
/*
 * Text and quoted attribute values as pure ASCII, for pages a server may
 * relabel iso-8859-1 (the authorizer's deny pages under Apache): as
 * html_escape_text, and every non-ASCII character becomes a character
 * reference (&#x5F20;), broken UTF-8 U+FFFD per byte, controls spaces.
 */
void		 html_escape_ascii(struct buf *b, const char *s);
/*
 * Attribute values, also when a template forgot the quotes: everything
 * but [A-Za-z0-9,.-_] and bytes >= 0x80 becomes &#xHH;.
 */
void		 html_escape_attr(struct buf *b, const char *s);
/* One URL component (query value, path segment): http_escape. */
void		 html_escape_url(struct buf *b, const char *s);
/*
 * The inside of a JavaScript string literal (either quote), safe also
 * inside <script> and in an HTML attribute: \ " ' < > & / and controls,
 * U+2028 and U+2029 become \uXXXX escapes.
 */
void		 html_escape_js(struct buf *b, const char *s);

/*
 * A value for a template slot. raw marks trusted markup built with the
 * escapers above; it is emitted unescaped only by a {{name|raw}} slot.
 */
struct html_var {
	const char	*name;
	const char	*value;		/* NULL renders as "" */
	int		 raw;
};

/*
 * Render the embedded template called name (embedded_template()) with
 * vars[0..nvars) appended to out. Slots:
 *   {{name}}      HTML text / quoted attribute (html_escape_text)
 *   {{name|attr}} html_escape_attr
 *   {{name|url}}  URL component, then HTML-escaped
 *   {{name|js}}   JavaScript string content
 *   {{name|ascii}} html_escape_ascii
 *   {{name|raw}}  unescaped; only for vars with raw set
 * An unknown template, an unknown slot name or filter, an unterminated
 * slot, or |raw on a var not marked raw is DA_EINPUT (and out is left as
 * it was): a template bug shows in the tests, not as half a page.
 */
enum da_err	 html_render(struct buf *out, const char *name,
		    const struct html_var *vars, size_t nvars,
		    struct da_error *err);

/*
 * Where {{@key}} slots find their text (a string catalog): the text of
 * key, or NULL when there is none.
 */
typedef const char	*(*html_text_fn)(const char *key);

/*
 * html_render, and {{@key}} slots (any filter but raw) take their text
 * from lookup(key); a key without text is DA_EINPUT like a missing var.
 */
enum da_err	 html_render_with(struct buf *out, const char *name,
		    const struct html_var *vars, size_t nvars,
		    html_text_fn lookup, struct da_error *err);

/* The same over template text given directly (tests). */
enum da_err	 html_render_text(struct buf *out, const char *text,
		    const struct html_var *vars, size_t nvars,
		    struct da_error *err);
/*
 * html_render_with over template text given directly (a template that
 * replaces a built-in one: page.c's branding).
 */
enum da_err	 html_render_text_with(struct buf *out, const char *text,
		    const struct html_var *vars, size_t nvars,
		    html_text_fn lookup, struct da_error *err);

/* Is s valid UTF-8 (no overlong form, surrogate or NUL)? */
int		 html_utf8_valid(const char *s);

#endif
