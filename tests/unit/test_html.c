/*
 * The escapers and the template renderer (html.c), and the pure parts of
 * the login flow (login.c): rd validation and the URLs it builds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "embedded.h"
#include "html.h"
#include "login.h"
#include "mem.h"
#include "page.h"
#include "unit.h"

typedef void	(*escaper)(struct buf *, const char *);

static char *
esc(escaper fn, const char *s)
{
	struct buf	 b;

	buf_init(&b, 0);
	buf_puts(&b, "");
	fn(&b, s);
	return buf_take(&b);
}

/* in, cut short, control characters as '?': one line per check name. */
static const char *
printable(const char *in, char *show, size_t size)
{
	size_t	 i;

	snprintf(show, size, "%s", in != NULL ? in : "NULL");
	for (i = 0; show[i] != '\0'; i++)
		if ((unsigned char)show[i] < 0x20 || show[i] == 0x7f)
			show[i] = '?';
	return show;
}

static void
check_escape(escaper fn, const char *name, const char *in, const char *want)
{
	char	*got = esc(fn, in), show[64];

	CHECK_STR(got, want, "%s(%s)", name, printable(in, show, sizeof(show)));
	free(got);
}

static void
test_escapers(void)
{
	const char	*hostile = "<script>alert(\"x\")</script> O'Hara & \"Q\"";

	check_escape(html_escape_text, "text", "plain 张三", "plain 张三");
	check_escape(html_escape_text, "text", hostile,
	    "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; O&#39;Hara "
	    "&amp; &quot;Q&quot;");
	check_escape(html_escape_text, "text", "", "");
	check_escape(html_escape_ascii, "ascii", "plain 张三",
	    "plain &#x5F20;&#x4E09;");
	check_escape(html_escape_ascii, "ascii", "<b a='1'>&\"",
	    "&lt;b a=&#39;1&#39;&gt;&amp;&quot;");
	check_escape(html_escape_ascii, "ascii",
	    "\xf0\x9f\x98\x80\xe4\xb8\x07" "A\xc0\xaf\xed\xa0\x80",
	    "&#x1F600;&#xFFFD;&#xFFFD; A&#xFFFD;&#xFFFD;&#xFFFD;&#xFFFD;"
	    "&#xFFFD;");
	check_escape(html_escape_attr, "attr", "a b=c\"d'e`f<g>",
	    "a&#x20;b&#x3D;c&#x22;d&#x27;e&#x60;f&#x3C;g&#x3E;");
	check_escape(html_escape_attr, "attr", "u-1_2.3,4张", "u-1_2.3,4张");
	check_escape(html_escape_url, "url", "/a b?c=d&e=张",
	    "%2Fa%20b%3Fc%3Dd%26e%3D%E5%BC%A0");
	check_escape(html_escape_js, "js", "</script><!--",
	    "\\u003C\\u002Fscript\\u003E\\u003C!--");
	check_escape(html_escape_js, "js", "a'b\"c\\d\n",
	    "a\\u0027b\\u0022c\\u005Cd\\u000A");
	check_escape(html_escape_js, "js", "x\xe2\x80\xa8y\xe2\x80\xa9z",
	    "x\\u2028y\\u2029z");
	check_escape(html_escape_js, "js", "张三", "张三");
}

static char *
render(const char *tmpl, const struct html_var *vars, size_t n,
    enum da_err *rc)
{
	struct buf	 b;
	struct da_error	 err = { 0 };

	buf_init(&b, 0);
	buf_puts(&b, "");
	*rc = html_render_text(&b, tmpl, vars, n, &err);
	return buf_take(&b);
}

static void
test_render(void)
{
	const struct html_var	 vars[] = {
		{ "name", "<b>\"Q\"</b>", 0 },
		{ "url", "/a b&c", 0 },
		{ "frag", "<em>ok</em>", 1 },
		{ "empty", NULL, 0 },
	};
	const size_t		 n = sizeof(vars) / sizeof(vars[0]);
	enum da_err		 rc;
	char			*out;

	out = render("<p title=\"{{name}}\">{{name}}</p>", vars, n, &rc);
	CHECK_STR(out, "<p title=\"&lt;b&gt;&quot;Q&quot;&lt;/b&gt;\">"
	    "&lt;b&gt;&quot;Q&quot;&lt;/b&gt;</p>", "slots escape by default");
	free(out);
	out = render("<a href=\"/x?rd={{url|url}}\">", vars, n, &rc);
	CHECK_STR(out, "<a href=\"/x?rd=%2Fa%20b%26c\">", "url filter");
	free(out);
	out = render("<i data-x={{name|attr}}>", vars, n, &rc);
	CHECK_STR(out, "<i data-x=&#x3C;b&#x3E;&#x22;Q&#x22;&#x3C;&#x2F;b&#x3E;>",
	    "attr filter");
	free(out);
	out = render("var s = \"{{name|js}}\";", vars, n, &rc);
	CHECK_STR(out, "var s = \"\\u003Cb\\u003E\\u0022Q\\u0022\\u003C\\u002Fb"
	    "\\u003E\";", "js filter");
	free(out);
	out = render("[{{frag|raw}}][{{frag}}][{{empty}}]", vars, n, &rc);
	CHECK_STR(out, "[<em>ok</em>][&lt;em&gt;ok&lt;/em&gt;][]",
	    "raw only where both sides say so");
	free(out);

	out = render("before {{name|raw}} after", vars, n, &rc);
	CHECK(rc == DA_EINPUT && *out == '\0', "|raw on a value not marked raw");
	free(out);
	out = render("{{nosuch}}", vars, n, &rc);
	CHECK(rc == DA_EINPUT && *out == '\0', "unknown slot");
	free(out);
	out = render("{{name|bogus}}", vars, n, &rc);
	CHECK(rc == DA_EINPUT, "unknown filter");
	free(out);
	out = render("{{name", vars, n, &rc);
	CHECK(rc == DA_EINPUT, "unterminated slot");
	free(out);
	out = render("{{Name}}", vars, n, &rc);
	CHECK(rc == DA_EINPUT, "slot names are lowercase");
	free(out);
	out = render("no slots { } }} at all", vars, n, &rc);
	CHECK_STR(out, "no slots { } }} at all", "text without slots");
	free(out);
	{
		struct buf	 b;
		struct da_error	 err = { 0 };

		buf_init(&b, 0);
		CHECK(html_render(&b, "no-such.html", vars, n, &err) ==
		    DA_EINPUT, "unknown template");
		buf_free(&b);
	}
}

/* Texts from elsewhere (branding): UTF-8, and rendered like the rest. */
static const char *
one_text(const char *key)
{
	return strcmp(key, "k.x") == 0 ? "<i>T</i>" : NULL;
}

static void
test_other_text(void)
{
	const struct html_var	 v = { "name", "<b>", 0 };
	struct da_error		 err = { 0 };
	struct buf		 b;

	CHECK(html_utf8_valid("plain, 中文, é"), "UTF-8 accepted");
	CHECK(!html_utf8_valid("\xff\xfe"), "bytes that are not UTF-8");
	CHECK(!html_utf8_valid("\xc0\xaf"), "an overlong form");
	CHECK(!html_utf8_valid("\xed\xa0\x80"), "a surrogate");
	CHECK(!html_utf8_valid("\xe4\xb8"), "cut short");
	buf_init(&b, 0);
	CHECK(html_render_text_with(&b, "{{name}} {{@k.x}}", &v, 1, one_text,
	    &err) == DA_OK, "text with catalog");
	CHECK_STR(b.data, "&lt;b&gt; &lt;i&gt;T&lt;/i&gt;",
	    "both escaped");
	buf_reset(&b);
	CHECK(html_render_text_with(&b, "{{@k.x|raw}}", &v, 1, one_text,
	    &err) == DA_EINPUT && b.len == 0, "a catalog text is never raw");
	CHECK(html_render_text_with(&b, "{{@k.y}}", &v, 1, one_text,
	    &err) == DA_EINPUT, "an unknown key");
	buf_free(&b);
}

static void
test_templates(void)
{
	static const char *const names[] = { "layout.html", "login.html",
	    "error.html", "account.html" };
	size_t	 i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		CHECK(embedded_template(names[i]) != NULL, "template %s "
		    "embedded", names[i]);
	CHECK(embedded_template("messages.en") != NULL,
	    "the English catalog embedded");
}

/* {{@key}} slots and the catalog behind them (page_text, page_format). */
static void
test_catalog(void)
{
	static const char *const pages[] = { "layout.html", "login.html",
	    "error.html", "account.html", "deny-layout.html",
	    "deny-login.html", "deny-forbidden.html", "deny-error.html" };
	struct da_error	 err = { 0 };
	struct buf	 b;
	const char	*t;
	size_t		 i;

	/* Through a lookup: escaped like any slot, never raw. */
	{
		struct buf	 o;

		buf_init(&o, 0);
		CHECK(html_render_text(&o, "{{@a.b}}", NULL, 0, &err) ==
		    DA_EINPUT, "no lookup: {{@key}} refused");
		buf_free(&o);
	}
	CHECK_STR(page_text_in(PAGE_LANG_EN, "login.lead"),
	    "Open DingTalk on your phone and scan the QR code.",
	    "page_text reads the catalog");
	CHECK_STR(page_text_in(PAGE_LANG_ZH_CN, "account.logout"), "退出登录",
	    "page_text reads the Chinese catalog");
	CHECK_STR(page_text("account.logout"), "退出登录",
	    "outside a request: Chinese");
	CHECK_STR(page_text("no.such.key"), "no.such.key",
	    "a missing key shows as itself");
	CHECK_STR(page_text("problem.ok.text"), "", "an empty text");
	{
		const struct html_var	 v[] = { { "who", "<x>", 0 } };

		buf_init(&b, 0);
		page_format_in(PAGE_LANG_EN, &b, "rule.reason", v, 1);
		CHECK_STR(b.data, "This location is open only to <x>.",
		    "page_format fills {who}, plain text");
		buf_free(&b);
	}
	/* Every page's {{@key}} is in the catalog. */
	for (i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
		const char	*p = embedded_template(pages[i]), *k, *e;
		char		 key[80];
		int		 missing = 0;

		for (k = p; k != NULL && (k = strstr(k, "{{@")) != NULL;
		    k = e) {
			k += 3;
			e = k + strcspn(k, "|}");
			snprintf(key, sizeof(key), "%.*s", (int)(e - k), k);
			if (strcmp(t = page_text(key), key) == 0)
				missing++;
		}
		CHECK(p != NULL && missing == 0, "%s: every text in the "
		    "catalog (%d missing)", pages[i], missing);
	}
}

static void
rd(const char *in, const char *want, int kept)
{
	char	 out[LOGIN_RD_MAX], show[64];
	int	 k = login_rd(in, out);

	printable(in, show, sizeof(show));
	CHECK_STR(out, want, "login_rd(%s)", show);
	CHECK(k == kept, "login_rd(%s) %s", show, kept ? "kept" : "fell back");
}

static void
test_rd(void)
{
	char	 big[LOGIN_RD_MAX + 10];

	rd(NULL, "/", 0);
	rd("", "/", 0);
	rd("/", "/", 1);
	rd("/app/x?y=1&z=%2F#f", "/app/x?y=1&z=%2F#f", 1);
	rd("//evil.example", "/", 0);
	rd("/\\evil.example", "/", 0);
	rd("/a\\b", "/", 0);
	rd("https://evil.example/", "/", 0);
	rd("javascript:alert(1)", "/", 0);
	rd("evil", "/", 0);
	rd("/\t/evil", "/", 0);
	rd("/a\r\nSet-Cookie: x", "/", 0);
	rd("/a\x7f", "/", 0);
	rd("/a b\"<>`", "/a%20b%22%3C%3E%60", 1);
	rd("/über", "/%C3%BCber", 1);
	memset(big, 'a', sizeof(big) - 1);
	big[0] = '/';
	big[sizeof(big) - 1] = '\0';
	rd(big, "/", 0);
}

static void
test_urls(void)
{
	struct da_error	 err = { 0 };
	char		*url, origin[256];

	config_set(CFG_PUBLIC_URL, "https://erp.example.com", &err);
	config_set(CFG_APP_ID, "dingoa&sns", &err);
	config_set(CFG_APP_KEY, "dingkey", &err);
	config_set(CFG_LOGIN_FLOW, "sns", &err);
	url = login_redirect_uri();
	CHECK_STR(url, "https://erp.example.com/dingauth/exchange",
	    "redirect uri");
	free(url);
	CHECK(login_authorize_url("st+1", &url, &err) == DA_OK, "sns URL");
	CHECK_STR(url, "https://oapi.dingtalk.com/connect/oauth2/sns_authorize"
	    "?appid=dingoa%26sns&response_type=code&scope=snsapi_login"
	    "&state=st%2B1&redirect_uri=https%3A%2F%2Ferp.example.com"
	    "%2Fdingauth%2Fexchange", "sns URL (§c.1)");
	free(url);
	config_set(CFG_LOGIN_FLOW, "oauth2", &err);
	CHECK(login_authorize_url("s", &url, &err) == DA_OK, "oauth2 URL");
	CHECK_STR(url, "https://login.dingtalk.com/oauth2/auth?redirect_uri="
	    "https%3A%2F%2Ferp.example.com%2Fdingauth%2Fexchange"
	    "&response_type=code&client_id=dingkey&scope=openid&state=s"
	    "&prompt=consent", "oauth2 URL (§d.1)");
	free(url);
	login_frame_origin(origin, sizeof(origin));
	CHECK_STR(origin, "https://login.dingtalk.com", "frame origin");
	config_set(CFG_LOGIN_URL, "http://127.0.0.1:8123/x", &err);
	login_frame_origin(origin, sizeof(origin));
	CHECK_STR(origin, "http://127.0.0.1:8123", "frame origin with port");
	config_set(CFG_BASE_PATH, "/", &err);
	url = login_page_path("/a b");
	CHECK_STR(url, "/login?rd=%2Fa%20b", "login path at the root");
	free(url);
	config_set(CFG_BASE_PATH, "/sso", &err);
	url = login_page_path("/");
	CHECK_STR(url, "/sso/login", "login path without rd");
	free(url);
}

int
main(void)
{
	struct da_error	 err = { 0 };

	setenv("DINGAUTH_CONFIG", "/dev/null", 1);
	if (config_load(0, &err) != DA_OK) {
		printf("not ok - config_load: %s\n", err.msg);
		return 1;
	}
	test_escapers();
	test_render();
	test_other_text();
	test_templates();
	test_catalog();
	test_rd();
	test_urls();
	return unit_done();
}
