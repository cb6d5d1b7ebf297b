"""The pages beyond the flows: the default login flow, the notice for a
session ended by a leave or `users disable`, and branding through
DINGAUTH_TEMPLATE_DIR (overrides applied, broken ones falling back with a
log line, escaping kept, no path from a request).

Run: /usr/bin/python3 tests/test_pages.py
"""
import json
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Env, qs, watch_cgi  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402

t = T()

# Every CGI run is watched for sanitizer reports (make test SAN=1) and
# crashes: a finding anywhere fails the file.
findings = watch_cgi()


def login_page(env, cookie=None, rd=None, lang=None):
    hdrs = {}
    if cookie:
        hdrs["Cookie"] = cookie
    if lang:
        hdrs["Accept-Language"] = lang
    return env.cgi("login.fcgi", path="/dingauth/login",
                   query=qs(rd=rd) if rd is not None else "", headers=hdrs)


# -- the default login flow is oauth2 ----------------------------------------

with FakeDingTalk() as fk, Env(fake=fk) as env:
    env.set(DINGAUTH_LOGIN_FLOW=None, DINGTALK_APP_ID=None,
            DINGTALK_APP_SECRET=None)
    r = login_page(env)
    t.eq("default flow: the login page answers 200 without the QR-login "
         "app's keys", r.status, 200)
    t.check("... its flow is oauth2", 'data-flow="oauth2"' in r.body,
            r.body[:600])
    q = r.body.split('data-authorize-url="', 1)[-1].split('"', 1)[0]
    t.check("... its authorization URL is DingTalk's oauth2 page",
            q.startswith(fk.url + "/oauth2/auth?"), q)


# -- a session ended by a leave or `users disable` says so, once ---------------

CALLBACK = "/dingauth/callback"


def sign_in(env, fk, userid):
    """A session for userid through the sns flow; its cookie value."""
    r = login_page(env)
    state = r.cookies().get("dingauth_state", (None,))[0]
    code = fk.code(userid=userid, kind="tmp")["code"]
    r = env.cgi("exchange.fcgi", path="/dingauth/exchange",
                query=qs(code=code, state=state),
                headers={"Cookie": "dingauth_state=" + state})
    return r.cookies().get("dingauth_session", (None,))[0]


def leave(env, fk, userid):
    enc = fk.encrypt({"EventType": "user_leave_org", "UserId": [userid],
                      "CorpId": fk.corp()["corp_id"],
                      "TimeStamp": str(int(time.time() * 1000))})
    return env.cgi("callback.fcgi", CALLBACK, method="POST",
                   query=enc["query"], body=enc["body"],
                   content_type="application/json")


def catalog(tag):
    out = {}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                        "static", "messages." + tag)
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or "=" not in line:
                continue
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


TEXT = {tag: catalog(tag) for tag in ("en", "zh-CN")}


def esc(s):
    """As the pages escape text (html.c: &#39; for ')."""
    import html
    return html.escape(s, quote=True).replace("&#x27;", "&#39;")


with FakeDingTalk() as fk, Env(fake=fk) as env:
    env.add_user("u001", "un001", "张三")
    env.add_user("u006", "un006", "Alice Smith", depts=(2,))
    for tag, why, end in (("en", "disabled", "disable"),
                          ("zh-CN", "left", "leave"),
                          ("en", "left", "leave")):
        env.set(DINGAUTH_LANG=tag)
        if why == "left":
            env.sql("UPDATE users SET active = 1, left_at = NULL"
                    " WHERE userid = 'u006'")
        sid = sign_in(env, fk, "u006")
        other = sign_in(env, fk, "u001")
        t.check("[%s %s] signed in" % (tag, end), sid and other)
        if end == "disable":
            r = env.cmd("users", "disable", "u006")
            t.eq("[%s] users disable" % tag, r.returncode, 0)
        else:
            r = leave(env, fk, "u006")
            t.eq("[%s] a user_leave_org push is answered" % tag, r.status, 200)
        t.eq("[%s %s] the session is gone" % (tag, end), env.sql(
            "SELECT count(*) FROM sessions WHERE userid = 'u006'")[0][0], 0)
        t.eq("[%s %s] one note of why, a hash and a reason only" % (tag, end),
             env.sql("SELECT why, length(id_hash) FROM session_ends"),
             [(why, 32)])
        r = login_page(env, cookie="dingauth_session=" + sid,
                       rd="/app/")
        t.eq("[%s %s] the login page answers" % (tag, end), r.status, 200)
        t.check("[%s %s] it says why the session ended" % (tag, end),
                ('data-notice="%s"' % why) in r.body and
                esc(TEXT[tag]["login.notice." + why]) in r.body, r.body[:1500])
        t.check("[%s %s] ... and clears the dead cookie" % (tag, end),
                r.cookies().get("dingauth_session", ("?",))[0] == "")
        t.check("[%s %s] ... and still offers the sign-in" % (tag, end),
                'id="login_container"' in r.body)
        t.eq("[%s %s] the note is gone: said once" % (tag, end),
             env.sql("SELECT count(*) FROM session_ends")[0][0], 0)
        r = login_page(env, cookie="dingauth_session=" + sid)
        t.check("[%s %s] the same cookie again: no notice" % (tag, end),
                r.status == 200 and 'data-notice=' not in r.body)
        r = login_page(env, cookie="dingauth_session=" + other)
        t.check("[%s %s] a colleague's live session is untouched" % (tag, end),
                r.status == 200 and 'id="user-name"' in r.body)
        env.sql("DELETE FROM sessions")
        env.cmd("users", "enable", "u006")

    # Sign-out, revocation and strangers' cookies say nothing of the kind.
    env.set(DINGAUTH_LANG="en")
    sid = sign_in(env, fk, "u001")
    r = env.cmd("sessions", "revoke", "--user", "u001")
    r = login_page(env, cookie="dingauth_session=" + sid)
    t.check("an operator's sessions revoke: no notice",
            r.status == 200 and "data-notice=" not in r.body)
    r = login_page(env, cookie="dingauth_session=" + "ab" * 32)
    t.check("an unknown session cookie: no notice",
            r.status == 200 and "data-notice=" not in r.body)
    r = login_page(env, cookie="dingauth_session=left; dingauth_notice=left")
    t.check("a notice cookie naming a reason is not believed",
            r.status == 200 and "data-notice=" not in r.body)
    # A note outlives its session no longer than the session would have.
    env.sql("UPDATE users SET active = 1, left_at = NULL WHERE userid = 'u006'")
    sid = sign_in(env, fk, "u006")
    env.cmd("users", "disable", "u006")
    env.sql("UPDATE session_ends SET expires_at = 1")
    r = login_page(env, cookie="dingauth_session=" + sid)
    t.check("a note past the session's end: no notice",
            r.status == 200 and "data-notice=" not in r.body)
    env.cmd("users", "enable", "u006")

# -- branding: DINGAUTH_TEMPLATE_DIR ------------------------------------------

import base64  # noqa: E402
import hashlib  # noqa: E402
import shutil  # noqa: E402

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                      "static")
HOSTILE = "<script>alert(\"x\")</script> O'Hara & \"Q\""
FALLBACK = "the built-in one is used"


def builtin(name):
    with open(os.path.join(STATIC, name), encoding="utf-8") as f:
        return f.read()


def brand(env, files):
    """A fresh template directory holding files {name: text or bytes}."""
    d = os.path.join(env.dir, "brand")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for name, text in files.items():
        if text is None:
            os.makedirs(os.path.join(d, name))
            continue
        mode = "wb" if isinstance(text, bytes) else "w"
        with open(os.path.join(d, name), mode,
                  **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
            f.write(text)
    env.set(DINGAUTH_TEMPLATE_DIR=d)
    return d


def fallbacks(r):
    return [ln for ln in r.stderr.splitlines() if FALLBACK in ln]


BRAND_HEADER = '<header class="brand" id="brand">ACME 集团</header>'
LAYOUT = builtin("layout.html").replace(
    "{{content|raw}}", BRAND_HEADER + "\n{{content|raw}}")
CSS = ":root { --blue: #c8102e; --blue-dark: #9e0c24; }\n.brand { font-weight: 600; }\n"
MSG_EN = builtin("messages.en").replace(
    "login.heading = Sign in with DingTalk",
    "login.heading = Sign in to ACME <b>now</b>")
MSG_ZH = builtin("messages.zh-CN").replace(
    "layout.footer = ", "layout.footer = ACME 集团 IT 服务台 · ")

with FakeDingTalk() as fk, Env(fake=fk) as env:
    env.add_user("u001", "un001", "张三")
    env.add_user("u004", "un004", HOSTILE, depts=(6,))

    r = login_page(env)
    t.check("no template dir: the built-in stylesheet by link",
            '<link rel="stylesheet" href="/dingauth/static/login.css">'
            in r.body and "<style>" not in r.body, r.body[:600])

    # Applied: layout, catalogs, CSS.
    d = brand(env, {"layout.html": LAYOUT, "login.css": CSS,
                    "messages.en": MSG_EN, "messages.zh-CN": MSG_ZH})
    r = login_page(env)
    t.check("branding: the layout's header is on the login page",
            r.status == 200 and BRAND_HEADER in r.body, r.body[:800])
    t.check("branding: the catalog's text, escaped like any text",
            "Sign in to ACME &lt;b&gt;now&lt;/b&gt;" in r.body and
            "<b>now</b>" not in r.body)
    t.check("branding: the CSS inline, the built-in link gone",
            "<style>" + CSS + "</style>" in r.body and
            "/login.css" not in r.body)
    t.eq("branding: nothing set aside", fallbacks(r), [])
    h = "'sha256-%s'" % base64.b64encode(
        hashlib.sha256(CSS.encode()).digest()).decode()
    r = env.cgi("exchange.fcgi", path="/dingauth/exchange",
                query=qs(code="x", state="y" * 43),
                headers={"Cookie": "dingauth_state=" + "y" * 43})
    csp = r.header("Content-Security-Policy") or ""
    t.check("branding: an error page's policy admits the CSS by its hash",
            ("style-src 'self' " + h) in csp and BRAND_HEADER in r.body, csp)
    t.check("... and nothing else inline", "unsafe-inline" not in csp, csp)
    env.set(DINGAUTH_LANG="zh-CN")
    r = login_page(env)
    t.check("branding: the Chinese catalog too",
            "ACME 集团 IT 服务台 · " in r.body and 'lang="zh-CN"' in r.body)
    env.set(DINGAUTH_LANG="en")
    r = env.cgi("authorize.fcgi", path="/app/", role="AUTHORIZER",
                extra_env={"REQUEST_URI": "/app/"})
    t.check("branding: the authorizer's page carries the CSS, still ASCII",
            "<style>" + CSS + "</style>" in r.body and
            all(ord(c) < 128 for c in r.body), r.body[:600])

    # Escaping holds in a replacement; |raw on a plain value is refused.
    sid = sign_in(env, fk, "u004")
    brand(env, {"account.html": '<p id="brand-who">{{name}}</p>'
                '<p id="user-name">{{@account.who}}</p>'})
    r = login_page(env, cookie="dingauth_session=" + sid)
    t.check("branding: a replacement's {{name}} is escaped",
            r.status == 200 and '<p id="brand-who">' + esc(HOSTILE) in r.body
            and HOSTILE not in r.body, r.body[:900])
    brand(env, {"account.html": '<p id="brand-who">{{name|raw}}</p>'})
    r = login_page(env, cookie="dingauth_session=" + sid)
    t.check("branding: {{name|raw}} is refused: the built-in page, escaped",
            r.status == 200 and 'brand-who' not in r.body and
            esc(HOSTILE) in r.body and HOSTILE not in r.body, r.body[:900])
    t.check("... with one log line naming the file",
            len(fallbacks(r)) == 1 and "account.html" in fallbacks(r)[0] and
            "not marked raw" in fallbacks(r)[0], r.stderr[-800:])
    brand(env, {"error.html": "<p>{{@login.heading|raw}}</p>"})
    r = env.cgi("exchange.fcgi", path="/dingauth/exchange", query=qs(code="x"))
    t.check("branding: a catalog text is never raw either",
            'data-problem="state_missing"' in r.body and
            len(fallbacks(r)) == 1, r.stderr[-800:])
    brand(env, {"messages.en": builtin("messages.en").replace(
        "login.heading = Sign in with DingTalk",
        "login.heading = " + HOSTILE)})
    r = login_page(env)
    t.check("branding: markup in a catalog text shows as text",
            esc(HOSTILE) in r.body and HOSTILE not in r.body)

    # Broken replacements fall back, each with one log line.
    lines = builtin("messages.en").splitlines(True)
    broken = [
        ("a template with an unknown placeholder",
         {"layout.html": LAYOUT.replace("{{title}}", "{{nosuch}}")},
         "layout.html", "no such value"),
        ("a template with an unknown catalog key",
         {"login.html": "<p>{{@login.nosuch}}</p>"},
         "login.html", "no such text"),
        ("a catalog missing a key",
         {"messages.en": "".join(ln for ln in lines
                                 if not ln.startswith("login.heading "))},
         "messages.en", "lacks the key login.heading"),
        ("a malformed catalog",
         {"messages.en": builtin("messages.en") + "just some words\n"},
         "messages.en", "line"),
        ("a directory in a file's place",
         {"login.html": None}, "login.html", "not a regular file"),
        ("a file that is not UTF-8",
         {"login.html": b"<p>\xff\xfe</p>"}, "login.html", "not UTF-8"),
        ("a login.css that is not ASCII",
         {"login.css": "body { font-family: \"微软雅黑\"; }"},
         "login.css", "not ASCII"),
        ("a login.css that would close its element",
         {"login.css": "body{}</style><script>alert(1)</script>"},
         "login.css", "not ASCII"),
    ]
    for label, files, name, why in broken:
        brand(env, files)
        r = login_page(env)
        fb = fallbacks(r)
        t.check("broken (%s): the built-in page" % label,
                r.status == 200 and 'id="login_container"' in r.body and
                "Sign in with DingTalk" in r.body and
                '<link rel="stylesheet" href="/dingauth/static/login.css">'
                in r.body, r.body[:600])
        t.check("broken (%s): one log line, naming %s and why" % (label, name),
                len(fb) == 1 and (d + "/" + name) in fb[0] and why in fb[0],
                r.stderr[-800:])
    brand(env, {"deny-layout.html": builtin("deny-layout.html").replace(
        "<main", "<p>ACME 集团</p><main")})
    r = env.cgi("authorize.fcgi", path="/app/", role="AUTHORIZER",
                extra_env={"REQUEST_URI": "/app/"})
    t.check("broken (a deny page that is not ASCII): the built-in one",
            all(ord(c) < 128 for c in r.body) and "ACME" not in r.body and
            len(fallbacks(r)) == 1, r.stderr[-800:])
    env.set(DINGAUTH_TEMPLATE_DIR=os.path.join(env.dir, "no-such-dir"))
    r = login_page(env)
    t.check("a template dir that does not exist: the built-in pages, "
            "one log line", r.status == 200 and 'id="login_container"' in
            r.body and len([ln for ln in r.stderr.splitlines()
                            if "not a directory" in ln]) == 1, r.stderr[-600:])

    # Only the built-in names are read, and never a name from the request.
    d = brand(env, {"secret.html": "SECRET-MARKER",
                    "passwd": "SECRET-MARKER"})
    with open(os.path.join(env.dir, "outside.html"), "w") as f:
        f.write("SECRET-MARKER")
    for q, hdrs in ((qs(rd="/../brand/secret.html"), {}),
                    ("tmpl=../outside.html&page=secret.html", {}),
                    ("", {"Accept-Language": "../../secret.html"}),
                    ("", {"Accept-Language": "../outside"})):
        r = env.cgi("login.fcgi", path="/dingauth/login", query=q,
                    headers=hdrs)
        t.check("no file named by the request is read (%s %s)" % (q, hdrs),
                r.status in (200, 302) and "SECRET-MARKER" not in r.body)
    env.set(DINGAUTH_TEMPLATE_DIR="brand")
    r = login_page(env)
    t.check("a relative DINGAUTH_TEMPLATE_DIR is refused, named",
            r.status == 500 and "DINGAUTH_TEMPLATE_DIR" in r.body)

t.check("no sanitizer report or crash in any program run", not findings,
        "\n".join(findings[:3]))
t.done()
