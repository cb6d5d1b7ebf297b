"""Chinese and English pages: the catalogs, the choice of language, and
golden checks of every page in both languages.

- Every catalog (static/messages.*) has every key of every other, with the
  same {placeholders}; every {{@key}} of the templates and every key the C
  code names (page_text("..."), page_format(..., "...")), and each
  problem's title and text, is in every catalog.
- DINGAUTH_LANG: auto picks from Accept-Language (Chinese when it names
  neither), zh-CN and en force one; <html lang> matches.
- Each page (login with its phone part, signed-out notice, the notice of
  a session ended by a leave or users disable, account, the sign-out page
  and its refusal, the in-app page, the problems of the exchange, the
  configuration error, the authorizer's 302, 403 and 500 pages, its 401
  JSON) in both languages: its lang, its key strings, and
  on a Chinese page no English word outside names and codes. Error pages
  carry an error reference that the log line carries too, and no
  filesystem path.

Run: /usr/bin/python3 tests/test_lang.py
"""
import glob
import html
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, T, Env, qs  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402
import deploykit as dk  # noqa: E402

t = T()
LANGS = {"zh-CN": "messages.zh-CN", "en": "messages.en"}


def catalog(path):
    out = {}
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if line.startswith("#") or "=" not in line:
            continue
        k, _, v = line.partition("=")
        out[k.strip()] = v.strip()
    return out


CATS = {tag: catalog(os.path.join(ROOT, "static", f)) for tag, f in LANGS.items()}


def text(tag, key):
    return CATS[tag][key]


# -- the catalogs ----------------------------------------------------------

def test_catalogs():
    files = sorted(glob.glob(os.path.join(ROOT, "static", "messages.*")))
    t.check("two catalogs at least (en, zh-CN)", len(files) >= 2, files)
    cats = {os.path.basename(f): catalog(f) for f in files}
    allkeys = set()
    for c in cats.values():
        allkeys |= set(c)
    for name, c in cats.items():
        t.eq("%s has every key" % name, sorted(allkeys - set(c)), [])
        for k in sorted(allkeys & set(c)):
            ph = {n: set(re.findall(r"\{([a-z_]+)\}", cc.get(k, "")))
                  for n, cc in cats.items()}
            if len(set(map(frozenset, ph.values()))) != 1:
                t.check("%s: the same placeholders in every catalog" % k, False, ph)
    used = set()
    for f in glob.glob(os.path.join(ROOT, "static", "*.html")):
        used |= set(re.findall(r"\{\{@([a-z0-9_.]+)", open(f).read()))
    for f in glob.glob(os.path.join(ROOT, "src", "*.c")) + \
            glob.glob(os.path.join(ROOT, "cgi-bin", "*.c")):
        src = open(f).read()
        used |= set(re.findall(r'page_text(?:_in)?\((?:[^,()]*,\s*)?"([a-z0-9_.]+)"', src))
        used |= set(re.findall(r'page_format(?:_in)?\([^;]*?"([a-z0-9_.]+)"', src, re.S))
    login_c = open(os.path.join(ROOT, "src", "login.c")).read()
    for pid in re.findall(r'\[LOGIN_[A-Z_]+\] = \{ \d+, "([a-z_]+)"', login_c):
        used |= {"problem.%s.title" % pid, "problem.%s.text" % pid}
    t.check("the code names keys (%d found)" % len(used), len(used) > 60)
    for name, c in cats.items():
        t.eq("%s has every key the templates and the code use" % name,
             sorted(used - set(c)), [])


# -- helpers -----------------------------------------------------------------

# Names and codes a Chinese page may show in Latin letters.
ALLOWED = re.compile(
    r"\b(?:u\d{3}|un\d{3}|Alice Smith|Demo Co|R&D|Sales|SRE|"
    r"DINGAUTH_[A-Z_]+|DINGTALK_[A-Z_]+|\d{8}-\d{6}-[0-9a-f]{6})\b")


def visible(body):
    """What a reader sees: no tags, scripts, styles or attributes."""
    body = re.sub(r"(?s)<(script|style)\b.*?</\1>", " ", body)
    body = re.sub(r"(?s)<[^>]*>", " ", body)
    return html.unescape(body)


def english_left(body):
    return re.findall(r"[A-Za-z]{2,}", ALLOWED.sub(" ", visible(body)))


def html_lang(body):
    m = re.search(r'<html lang="([^"]*)"', body)
    return m.group(1) if m else None


def check_page(name, r, tag, keys, status=None):
    """lang, the key strings, no English on a Chinese page."""
    if status is not None:
        t.eq("%s [%s]: status %d" % (name, tag, status), r.status, status)
    t.eq("%s [%s]: <html lang>" % (name, tag), html_lang(r.body), tag)
    seen = visible(r.body)
    missing = [k for k in keys if text(tag, k) not in seen]
    t.eq("%s [%s]: its texts" % (name, tag), missing, [])
    if tag == "zh-CN":
        t.eq("%s [zh-CN]: no English left" % name, english_left(r.body), [])


def check_ref(name, r, tag):
    """An error reference on the page, the same in the log line."""
    m = re.search(r"\d{8}-\d{6}-[0-9a-f]{6}", visible(r.body))
    t.check("%s [%s]: shows an error reference" % (name, tag),
            m is not None and text(tag, "error.ref") in visible(r.body),
            r.body[-1500:])
    if m:
        t.check("%s [%s]: the log line carries it" % (name, tag),
                "[ref %s]" % m.group(0) in r.stderr, r.stderr[-800:])


def start(env, tag, rd=None, cookie=None, extra=None):
    h = {"Accept-Language": tag}
    if cookie:
        h["Cookie"] = cookie
    h.update(extra or {})
    r = env.cgi("login.fcgi", path="/dingauth/login",
                query=qs(rd=rd) if rd else "", headers=h)
    return r, r.cookies().get("dingauth_state", (None,))[0]


def exchange(env, tag, code=None, state=None, cookie_state="same", extra=None):
    p = dict(extra or {})
    if code is not None:
        p["code"] = code
    if state is not None:
        p["state"] = state
    h = {"Accept-Language": tag}
    cs = state if cookie_state == "same" else cookie_state
    if cs:
        h["Cookie"] = "dingauth_state=" + cs
    return env.cgi("exchange.fcgi", path="/dingauth/exchange", query=qs(**p),
                   headers=h)


# -- choosing the language -------------------------------------------------------

def test_choice(fk):
    with Env(fake=fk, DINGAUTH_LANG="auto") as env:
        for header, want in ((None, "zh-CN"), ("en-US,en;q=0.9", "en"),
                             ("fr-FR,fr;q=0.9", "zh-CN"), ("zh-TW", "zh-CN"),
                             ("en;q=0.5, zh-CN;q=0.8", "zh-CN"),
                             ("de, en;q=0.7", "en"), ("EN", "en"),
                             ("en;q=0, zh;q=0.1", "zh-CN"), ("*", "zh-CN"),
                             ("english", "zh-CN"), ("zh-Hans-CN, en", "zh-CN")):
            h = {"Accept-Language": header} if header is not None else {}
            r = env.cgi("login.fcgi", path="/dingauth/login", headers=h)
            t.eq("auto, Accept-Language %r: %s" % (header, want),
                 (r.status, html_lang(r.body)), (200, want))
    for forced, header in (("zh-CN", "en-US,en"), ("en", "zh-CN,zh")):
        with Env(fake=fk, DINGAUTH_LANG=forced) as env:
            r = env.cgi("login.fcgi", path="/dingauth/login",
                        headers={"Accept-Language": header})
            t.eq("DINGAUTH_LANG=%s beats Accept-Language %s" % (forced, header),
                 html_lang(r.body), forced)
    with Env(fake=fk) as env:
        env.set(DINGAUTH_LANG=None)
        r = env.cgi("login.fcgi", path="/dingauth/login")
        t.eq("the default is auto: Chinese without Accept-Language",
             html_lang(r.body), "zh-CN")
        env.set(DINGAUTH_LANG="fr")
        r = env.cgi("login.fcgi", path="/dingauth/login")
        t.check("DINGAUTH_LANG=fr is refused, naming the key",
                r.status == 500 and "DINGAUTH_LANG" in r.body, r.body[-800:])


# -- the pages -------------------------------------------------------------------

def test_login_pages(fk):
    with Env(fake=fk, DINGAUTH_LANG="auto", DINGAUTH_UNKNOWN_USER="review") as env:
        dk.seed(env)
        for tag in LANGS:
            r, state = start(env, tag, rd="/x")
            check_page("login page", r, tag, ["login.heading", "login.lead",
                                               "login.loading", "login.fallback"], 200)
            t.check("login page [%s]: the script's messages in the page's language"
                    % tag, html.escape(text(tag, "login.noframe"), quote=True)
                    .replace("&#x27;", "&#39;") in r.body)
            # Sign in, then the account page, then sign out.
            code = fk.code(userid="u002", kind="tmp")["code"]
            r = exchange(env, tag, code, state)
            sid = r.cookies().get("dingauth_session", ("",))[0]
            t.eq("sign in [%s]" % tag, r.status, 302)
            r, _ = start(env, tag, cookie="dingauth_session=" + sid)
            check_page("account page", r, tag, ["account.heading", "account.who",
                                                 "account.logout"], 200)
            r = env.cgi("login.fcgi", path="/dingauth/logout", method="POST",
                        headers={"Cookie": "dingauth_session=" + sid,
                                 "Accept-Language": tag,
                                 "Sec-Fetch-Site": "same-origin"})
            notice = r.cookies().get("dingauth_notice", ("", ""))
            t.check("logout [%s]: a notice for the login page, for a minute" % tag,
                    r.status == 302 and notice[0] == "signed_out" and
                    "Max-Age=60" in notice[1] and "HttpOnly" in notice[1], r.head)
            r, _ = start(env, tag, cookie="dingauth_notice=signed_out")
            check_page("signed-out login page", r, tag,
                       ["login.notice.signed_out", "login.heading"], 200)
            t.check("signed-out [%s]: said once (the cookie is cleared)" % tag,
                    r.cookies().get("dingauth_notice", ("?",))[0] == "")
            r, _ = start(env, tag)
            t.check("login page [%s]: no notice without the cookie" % tag,
                    text(tag, "login.notice.signed_out") not in r.body)


def problems(env, fk, tag):
    """(name, result, problem id, status) for the exchange's problem pages."""
    out = []
    code = lambda u: fk.code(userid=u, kind="tmp")["code"]  # noqa: E731
    r, state = start(env, tag)
    out.append(("state_missing", exchange(env, tag, code("u001"), None), 400))
    out.append(("state_mismatch", exchange(env, tag, code("u001"), state,
                                           cookie_state="A" * 43), 400))
    out.append(("code_missing", exchange(env, tag, None, state), 400))
    r, state = start(env, tag)
    out.append(("declined", exchange(env, tag, None, state, extra={
        "error": "access_denied"}), 403))
    t.check("declined [%s]: the state is used up all the same" % tag,
            exchange(env, tag, fk.code(userid="u001", kind="tmp")["code"],
                     state).status == 400)
    out.append(("state_invalid", exchange(env, tag, code("u001"), state), 400))
    r, state = start(env, tag)
    out.append(("code_rejected", exchange(env, tag, "nonsense", state), 400))
    r, state = start(env, tag)
    out.append(("not_member", exchange(env, tag, fk.code(unionid="unext1",
                                                         kind="tmp")["code"], state), 403))
    r, state = start(env, tag)
    out.append(("inactive", exchange(env, tag, code("u005"), state), 403))
    env.sql("UPDATE users SET disabled = 1 WHERE userid = 'u006'")
    r, state = start(env, tag)
    out.append(("disabled", exchange(env, tag, code("u006"), state), 403))
    env.sql("UPDATE users SET disabled = 0 WHERE userid = 'u006'")
    env.sql("DELETE FROM users WHERE userid = 'u003'")
    r, state = start(env, tag)
    out.append(("waiting_for_approval", exchange(env, tag, code("u003"), state), 403))
    env.sql("DELETE FROM login_requests")
    r, state = start(env, tag)
    fk.fault("/topapi/user/getbyunionid", "http500")
    out.append(("dingtalk_unavailable", exchange(env, tag, code("u001"), state), 502))
    fk.clear_faults()
    return out


def test_problem_pages(fk):
    with Env(fake=fk, DINGAUTH_LANG="auto", DINGAUTH_UNKNOWN_USER="review") as env:
        dk.seed(env)
        for tag in LANGS:
            for pid, r, status in problems(env, fk, tag):
                name = "problem %s" % pid
                check_page(name, r, tag, ["problem.%s.title" % pid,
                                          "problem.%s.text" % pid, "error.retry"],
                           status)
                t.check("%s [%s]: names the problem" % (name, tag),
                        'data-problem="%s"' % pid in r.body)
                check_ref(name, r, tag)
        # The JSON answer carries the reference too.
        r, state = start(env, "en")
        r = env.cgi("exchange.fcgi", path="/dingauth/exchange", method="POST",
                    body=json.dumps({"code": "x"}), content_type="application/json")
        doc = r.json() if r.body.startswith("{") else {}
        t.check("JSON problem: carries the error reference, also in the log",
                re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", doc.get("ref", "")) and
                "[ref %s]" % doc.get("ref") in r.stderr, (r.body, r.stderr[-500:]))


def test_config_error(fk):
    for tag in LANGS:
        with Env(fake=fk, DINGAUTH_LANG=tag) as env:
            path = os.path.join(env.dir, "no", "such", "file.conf")
            r = env.cgi("login.fcgi", path="/dingauth/login",
                        headers={"Accept-Language": tag},
                        extra_env={"DINGAUTH_CONFIG": path})
            t.eq("missing configuration file [%s]: 500" % tag, r.status, 500)
            t.check("missing configuration file [%s]: no path shown" % tag,
                    path not in r.body and env.dir not in r.body and
                    "/no/such" not in r.body, r.body[-800:])
            t.check("missing configuration file [%s]: the log has the path" % tag,
                    path in r.stderr, r.stderr)
            check_ref("missing configuration file", r, tag)
            env.set(DINGAUTH_DB="/nonexistent/dir/x.db")
            r = env.cgi("login.fcgi", path="/dingauth/login",
                        headers={"Accept-Language": tag})
            t.check("database that cannot be opened [%s]: 500 without the path"
                    % tag, r.status == 500 and "/nonexistent" not in r.body and
                    "/nonexistent" in r.stderr, (r.body[-600:], r.stderr[-400:]))
            check_page("database error page", r, tag,
                       ["error.misconfigured.title", "error.misconfigured.text"], 500)
            check_ref("database error page", r, tag)
            env.set(DINGAUTH_DB=env.db, DINGAUTH_LOGIN_FLOW="bogus")
            r = env.cgi("login.fcgi", path="/dingauth/login",
                        headers={"Accept-Language": tag})
            t.check("bad key [%s]: names the key, not the file" % tag,
                    "DINGAUTH_LOGIN_FLOW" in r.body and env.conf not in r.body,
                    r.body[-600:])


def test_authorizer_pages(fk):
    with Env(fake=fk, DINGAUTH_LANG="auto") as env:
        dk.seed(env)
        sid = dk.session(env, "u001")
        for tag in LANGS:
            h = {"Accept-Language": tag}
            r = env.cgi("authorize.fcgi", path="/app/x", role="AUTHORIZER", headers=h)
            check_page("authorizer 302", r, tag, ["deny.login.text", "deny.login.link"],
                       302)
            t.check("authorizer 302 [%s]: ASCII" % tag, r.raw.isascii())
            r = env.cgi("authorize.fcgi", path="/dingauth/whoami",
                        headers=dict(h, Accept="application/json"))
            t.eq("whoami 401 [%s]: message in the language" % tag,
                 (r.status, r.json().get("message")), (401, text(tag, "deny.login.json")))
            r = env.cgi("authorize.fcgi", path="/app/x", role="AUTHORIZER",
                        headers=dict(h, Cookie="dingauth_session=" + sid),
                        extra_env={"DINGAUTH_REQUIRE_DEPTS": "2,4"})
            check_page("authorizer 403", r, tag,
                       ["deny.forbidden.title", "deny.forbidden.ask",
                        "deny.forbidden.home"], 403)
            seen = visible(r.body)
            t.check("authorizer 403 [%s]: names the departments by name" % tag,
                    "研发部 R&D" in seen and "平台组" in seen, seen)
            t.check("authorizer 403 [%s]: ASCII, same layout, a link home" % tag,
                    r.raw.isascii() and 'class="card"' in r.body and
                    '/login.css"' in r.body and 'id="home" href="/"' in r.body,
                    r.body[:1500])
            check_ref("authorizer 403", r, tag)
            r = env.cgi("authorize.fcgi", path="/app/x", role="AUTHORIZER",
                        headers=dict(h, Cookie="dingauth_session=" + sid),
                        extra_env={"DINGAUTH_DB": "/nonexistent/dir/x.db"})
            check_page("authorizer 500", r, tag, ["deny.error.title"], 500)
            t.check("authorizer 500 [%s]: no path" % tag,
                    "/nonexistent" not in r.body and r.raw.isascii())
            check_ref("authorizer 500", r, tag)
        r = env.cgi("authorize.fcgi", path="/dingauth/auth",
                    headers={"Cookie": "dingauth_session=" + sid, "Accept-Language": "zh"},
                    extra_env={"DINGAUTH_REQUIRE_DEPTS": "2"})
        t.eq("X-Auth-Request-Reason stays English and ASCII",
             r.header("X-Auth-Request-Reason"),
             "This location is open only to members of department 2 or of a "
             "department below it.")


def test_more_pages(fk):
    """The pages test_login_pages does not reach: a session ended by a
    leave or users disable, the phone's lead on the login page, the
    sign-out page (and its refusal), the in-app page."""
    with Env(fake=fk, DINGAUTH_LANG="auto") as env:
        dk.seed(env)
        for tag in LANGS:
            r, _ = start(env, tag)
            check_page("login page, phone part", r, tag,
                       ["login.phone.lead", "login.phone.open",
                        "login.phone.other"], 200)
            for why, end in (("disabled", ("users", "disable", "u006")),
                             ("left", None)):
                env.sql("UPDATE users SET active = 1, disabled = 0"
                        " WHERE userid = 'u006'")
                sid = dk.session(env, "u006")
                if end:
                    env.cmd(*end)
                else:
                    ok = env.cgi("callback.fcgi", "/dingauth/callback",
                                 method="POST", **callback_push(fk, "u006"))
                    t.eq("leave pushed [%s]" % tag, ok.status, 200)
                r, _ = start(env, tag, cookie="dingauth_session=" + sid)
                check_page("session ended (%s)" % why, r, tag,
                           ["login.notice." + why, "login.heading"], 200)
                t.check("session ended (%s) [%s]: says which" % (why, tag),
                        'data-notice="%s"' % why in r.body)
            r = env.cgi("login.fcgi", path="/dingauth/logout",
                        headers={"Accept-Language": tag})
            check_page("sign-out page", r, tag,
                       ["logout.heading", "logout.text", "logout.button"], 200)
            r = env.cgi("login.fcgi", path="/dingauth/logout", method="POST",
                        headers={"Accept-Language": tag,
                                 "Sec-Fetch-Site": "cross-site"})
            check_page("sign-out refused", r, tag,
                       ["logout.heading", "logout.refused"], 403)
            if os.path.exists(os.path.join(ROOT, "static", "inapp.html")):
                r, _ = start(env, tag, extra={
                    "User-Agent": "Mozilla/5.0 (iPhone) DingTalk/7.0.0"})
                check_page("in-app page", r, tag,
                           ["inapp.heading", "inapp.lead"], 200)


def callback_push(fk, userid):
    """callback.fcgi's CGI arguments for a user_leave_org push."""
    import time
    enc = fk.encrypt({"EventType": "user_leave_org", "UserId": [userid],
                      "CorpId": fk.corp()["corp_id"],
                      "TimeStamp": str(int(time.time() * 1000))})
    return {"query": enc["query"], "body": enc["body"],
            "content_type": "application/json"}


def main():
    fk = FakeDingTalk(qps=10000).start()
    try:
        test_catalogs()
        for test in (test_choice, test_login_pages, test_problem_pages,
                     test_config_error, test_authorizer_pages,
                     test_more_pages):
            try:
                test(fk)
            except Exception:
                import traceback
                t.check("%s ran to the end" % test.__name__, False,
                        traceback.format_exc())
            fk.clear_faults()
    finally:
        fk.stop()
    t.done()


if __name__ == "__main__":
    main()
