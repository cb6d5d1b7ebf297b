#ifndef DINGAUTH_PAGE_H
#define DINGAUTH_PAGE_H

#include <stddef.h>

#include "err.h"
#include "login.h"
#include "mem.h"

/*
 * The page kit of every program: each page is a template from static/
 * rendered by html.c inside a layout, with the headers every page
 * carries (Cache-Control: no-store, nosniff, X-Frame-Options: DENY, a
 * Content-Security-Policy, a Referrer-Policy). A template error answers
 * a plain 500, never half a page. Pages above the flows: they show what
 * a flow (login.h) decided.
 *
 * Two layouts: layout.html for the sign-in pages (login.fcgi,
 * exchange.fcgi), and deny-layout.html for the authorizer's deny pages,
 * which are pure ASCII (Apache relabels them iso-8859-1) and carry no
 * header a grant would not (Apache copies them into the final answer).
 *
 * Branding: DINGAUTH_TEMPLATE_DIR's files replace the built-in templates,
 * catalogs and login.css of the same name (only those names are read),
 * once per process. Their slots are escaped as the built-in ones' are (a
 * raw slot only takes markup this code built); one that cannot be read
 * or used is logged once and the built-in one serves. A branding
 * login.css goes inline (the layouts' {{stylesheet|raw}}), admitted by
 * its hash in the page's Content-Security-Policy.
 */
struct req;
struct html_var;

/*
 * Every string a page shows comes from one catalog per language,
 * static/messages.<tag> (zh-CN and en), compiled in: templates read it
 * as {{@key}}, C code through page_text. Every catalog has every key
 * (tests/test_lang.py); English fills in for a missing one all the same.
 */
enum page_lang {
	PAGE_LANG_ZH_CN,	/* "zh-CN" */
	PAGE_LANG_EN,		/* "en" */
	PAGE_LANG__MAX
};

/*
 * A request starts: its pages' language, per DINGAUTH_LANG (auto: the
 * Accept-Language header's choice between Chinese and English, Chinese
 * when it names neither).
 */
void		 page_begin(struct req *r);
/*
 * Read now what pages read on first use (the catalogs, the branding
 * files), so that threads serving requests afterwards only read
 * (prog_serve_threads). A request's language is per thread.
 */
void		 page_preload(void);
/* The request's language, and as <html lang> has it: "zh-CN" or "en". */
enum page_lang	 page_current_lang(void);
const char	*page_lang_tag(void);

/*
 * The text of key in the request's language; a key missing from every
 * catalog is logged and shows as itself (never NULL). page_text_in: in
 * language l.
 */
const char	*page_text(const char *key);
const char	*page_text_in(enum page_lang l, const char *key);
/*
 * page_text(key) appended to out with each "{name}" replaced by the
 * value of vars' name (plain text: escape at output). Unknown names
 * stay as they are. page_format_in: in language l.
 */
void		 page_format(struct buf *out, const char *key,
		    const struct html_var *vars, size_t nvars);
void		 page_format_in(enum page_lang l, struct buf *out,
		    const char *key, const struct html_var *vars,
		    size_t nvars);

/*
 * Status, then template tmpl inside layout.html titled title; every
 * template may also use {{static}} (the layout also {{lang}}). csp NULL: the strict default, no
 * third-party scripts or frames (and no Referer).
 */
void		 page_render(struct req *r, int status, const char *tmpl,
		    const char *title, const struct html_var *vars,
		    size_t nvars, const char *csp);
/*
 * The QR page's policy: DingTalk's script (script_url's origin) and its
 * login frame (frame_url's origin) allowed, nothing else; caller frees.
 */
char		*page_login_csp(const char *frame_url, const char *script_url);
/*
 * The in-app page's policy: DingTalk's JSAPI (script_url's origin) and
 * our own files, no frames; caller frees.
 */
char		*page_inapp_csp(const char *script_url);

/*
 * The answer for problem p: the error page (or, when as_json is set, a
 * JSON object {error, message, detail, retry}) with its status,
 * Retry-After when it has one, and a "try again" link to the login page
 * with rd. name (NULL or "" if unknown) is the DingTalk account it
 * concerns.
 */
void		 page_problem(struct req *r, enum login_problem p,
		    const char *rd, const char *name, int as_json);
/*
 * 500 naming the configuration problem (err->msg never holds secrets):
 * JSON when req_answers_json, the ASCII deny page in the Authorizer
 * role, else the error page. Logged.
 */
void		 page_config_error(struct req *r, const struct da_error *err);
/* 302 to a path or URL we built ourselves, no Referer. */
void		 page_redirect(struct req *r, const char *location);

/*
 * The authorizer's deny pages: status, then template tmpl inside
 * deny-layout.html titled title, with Content-Type and Cache-Control
 * only. Templates use {{name|ascii}} slots.
 */
void		 page_deny(struct req *r, int status, const char *tmpl,
		    const char *title, const struct html_var *vars,
		    size_t nvars);

#endif
