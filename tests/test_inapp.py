"""The in-app login (免登), server side: golden CGI runs of login.fcgi and
exchange.fcgi against the fake DingTalk (docs/dingtalk.md §i.1,
docs/contract.md).

- Inside the DingTalk client (User-Agent with "DingTalk", or ?inapp=1) the
  login page is the in-app page, whatever DINGAUTH_LOGIN_FLOW is: no QR
  code, DINGTALK_JSAPI_JS and static/inapp.js as its only scripts, the
  CorpId, the exchange path and a fresh single-use state bound to the
  cookie; a CSP that allows exactly the JSAPI's origin; its texts in
  Chinese and English; a way out to the QR page (?inapp=0) that never
  leads back to it. After a sign-out it waits for a click.
- GET /dingauth/exchange?flow=inapp&code=&state= resolves the code with
  topapi/v2/user/getuserinfo on the corp token and then does what every
  flow does: session and 302 to rd, an audit row with flow "inapp"; a
  reused code, a non-member, a leaver, an unknown user (deny, review,
  admit), a reused or foreign state, DingTalk down each answer a page with
  an error reference and write no session.

Run: /usr/bin/python3 tests/test_inapp.py
"""
import html
import json
import os
import re
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Env, qs, watch_cgi, catalog  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402

t = T()

findings = watch_cgi()

DINGTALK_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) "
               "AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 "
               "AliApp(DingTalk/7.6.10) com.laiwang.DingTalk/32398425 "
               "Channel/201200 language/zh-Hans-CN")
DESKTOP_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
              "(KHTML, like Gecko) Chrome/120.0 Safari/537.36")
FLOWS = ("sns", "sns_bycode", "oauth2")
KEPT = ("sessions", "users", "user_depts", "login_requests")


CATS = {"en": catalog("messages.en"), "zh-CN": catalog("messages.zh-CN")}


def seed_demo(env):
    env.add_user("u001", "un001", "张三", depts=(1,))
    env.add_user("u002", "un002", "李四", depts=(4, 6))
    env.add_user("u005", "un005", "赵六", active=0, depts=(4,))
    env.add_user("u006", "un006", "Alice Smith", depts=(2,))


def page(env, query="", ua=DINGTALK_UA, cookie=None, lang=None):
    hdrs = {"User-Agent": ua} if ua else {}
    if cookie:
        hdrs["Cookie"] = cookie
    if lang:
        hdrs["Accept-Language"] = lang
    r = env.cgi("login.fcgi", path="/dingauth/login", query=query, headers=hdrs)
    return r, r.cookies().get("dingauth_state", (None,))[0]


def exchange(env, code, state, cookie_state="same", flow="inapp", ua=DINGTALK_UA,
             method="GET"):
    params = {}
    if flow is not None:
        params["flow"] = flow
    if code is not None:
        params["code"] = code
    if state is not None:
        params["state"] = state
    hdrs = {"User-Agent": ua}
    cs = state if cookie_state == "same" else cookie_state
    if cs:
        hdrs["Cookie"] = "dingauth_state=" + cs
    if method == "POST":
        return env.cgi("exchange.fcgi", path="/dingauth/exchange", method="POST",
                       body=json.dumps(params), content_type="application/json",
                       headers=hdrs)
    return env.cgi("exchange.fcgi", path="/dingauth/exchange", query=qs(**params),
                   headers=hdrs)


def attr(body, name):
    m = re.search(r'%s="([^"]*)"' % re.escape(name), body)
    return html.unescape(m.group(1)) if m else None


def visible(body):
    body = re.sub(r"(?s)<(script|style)\b.*?</\1>", " ", body)
    body = re.sub(r"(?s)<[^>]*>", " ", body)
    return html.unescape(body)


def kept(env):
    snap = env.snapshot()
    return {k: snap.get(k) for k in KEPT}


def is_inapp(r):
    return 'id="dingauth-inapp"' in r.body


def is_qr(r):
    return 'id="login_container"' in r.body


def check_problem(name, r, status, problem, env=None, before=None):
    t.eq(name + ": status %d" % status, r.status, status)
    t.check(name + ": the page names the problem",
            'data-problem="%s"' % problem in r.body, r.body[:2000])
    m = re.search(r'<code id="error-ref">(\d{8}-\d{6}-[0-9a-f]{6})</code>', r.body)
    t.check(name + ": an error reference, also in the log line",
            m is not None and "[ref %s]" % m.group(1) in r.stderr,
            r.body[-800:] + "\n" + r.stderr[-800:])
    t.check(name + ": a try-again link",
            re.search(r'id="try-again" href="/dingauth/login', r.body) is not None)
    t.check(name + ": no session cookie", "dingauth_session" not in r.cookies(), r.head)
    if env is not None and before is not None:
        t.check(name + ": no session or user row written",
                kept(env)["sessions"] == before["sessions"] and
                kept(env)["users"] == before["users"])


# -- the in-app page -----------------------------------------------------------

def test_page(fk):
    for flow in FLOWS:
        with Env(fake=fk, DINGAUTH_LOGIN_FLOW=flow) as env:
            n = "in-app page (%s)" % flow
            r, state = page(env, qs(rd="/app/x?y=1"))
            t.eq(n + ": 200", r.status, 200)
            t.check(n + ": the in-app page, no QR code",
                    is_inapp(r) and not is_qr(r) and "ddlogin" not in r.body.lower(),
                    r.body[:1500])
            scripts = re.findall(r'<script[^>]*src="([^"]*)"', r.body)
            t.eq(n + ": loads the JSAPI, then inapp.js, nothing else",
                 scripts, [fk.url + "/dingtalk.open.js", "/dingauth/static/inapp.js"])
            t.check(n + ": no inline script",
                    re.search(r"<script(?![^>]*\bsrc=)[^>]*>", r.body) is None)
            t.eq(n + ": the CorpId", attr(r.body, "data-corp-id"), "dingcorp0001")
            t.eq(n + ": the exchange path", attr(r.body, "data-exchange"),
                 "/dingauth/exchange")
            t.check(n + ": a 43-char state, in the page and the cookie",
                    state and re.fullmatch(r"[A-Za-z0-9_-]{43}", state) and
                    attr(r.body, "data-state") == state, state)
            attrs = r.cookies().get("dingauth_state", ("", ""))[1]
            t.check(n + ": state cookie HttpOnly, SameSite=Lax, 10 min",
                    "HttpOnly" in attrs and "SameSite=Lax" in attrs and
                    "Max-Age=600" in attrs, attrs)
            t.eq(n + ": the state remembers rd",
                 env.sql("SELECT rd FROM login_states"), [("/app/x?y=1",)])
            csp = r.header("Content-Security-Policy") or ""
            t.check(n + ": CSP allows exactly the JSAPI's origin",
                    "script-src 'self' %s;" % fk.url in csp and
                    "frame-src 'none'" in csp and "frame-ancestors 'none'" in csp and
                    "unsafe-inline" not in csp.split("script-src")[1].split(";")[0],
                    csp)
            t.eq(n + ": no-store", r.header("Cache-Control"), "no-store")
            t.check(n + ": asks DingTalk at once", attr(r.body, "data-start") == "auto")
            fb = re.search(r'id="dingauth-fallback" href="([^"]*)"', r.body)
            t.eq(n + ": the way out to the QR page keeps rd, inapp=0",
                 html.unescape(fb.group(1)) if fb else None,
                 "/dingauth/login?rd=%2Fapp%2Fx%3Fy%3D1&inapp=0")

    with Env(fake=fk) as env:
        r, _ = page(env, "inapp=1", ua=DESKTOP_UA)
        t.check("?inapp=1 without DingTalk's User-Agent: the in-app page",
                r.status == 200 and is_inapp(r) and not is_qr(r))
        r, _ = page(env, "inapp=0", ua=DINGTALK_UA)
        t.check("?inapp=0 inside DingTalk: the QR page (the way out)",
                r.status == 200 and is_qr(r) and not is_inapp(r))
        r, _ = page(env, "", ua=DESKTOP_UA)
        t.check("a desktop browser: the QR page", is_qr(r) and not is_inapp(r))
        r, _ = page(env, "", ua="Mozilla/5.0 (Windows NT 10.0) DingTalk(7.0.50) nw")
        t.check("DingTalk's desktop client: the in-app page", is_inapp(r))
        r, _ = page(env, "", ua=None)
        t.check("no User-Agent: the QR page", is_qr(r))
        fb = re.search(r'id="dingauth-fallback" href="([^"]*)"', page(env)[0].body)
        t.eq("without rd, the way out is login?inapp=0",
             html.unescape(fb.group(1)) if fb else None, "/dingauth/login?inapp=0")

        # The JSAPI's failure messages and the way out are in the page.
        r, _ = page(env)
        for k in ("nojsapi", "failed", "timeout", "outside"):
            t.eq("failure text %s in the page" % k, attr(r.body, "data-msg-" + k),
                 CATS["en"]["inapp." + k])
        t.check("the way out is hidden until something fails",
                re.search(r'<p class="alt" id="inapp-fallback" hidden>', r.body) is not None)
        t.check("without JavaScript the page says so and links the QR page",
                re.search(r"(?s)<noscript>.*inapp=0.*</noscript>", r.body) is not None)

        # Signed in already: rd, as for every flow.
        seed_demo(env)
        r, state = page(env, qs(rd="/p"))
        sid = exchange(env, fk.inapp_code(userid="u002"), state).cookies().get(
            "dingauth_session", (None,))[0]
        r, st = page(env, qs(rd="/elsewhere"), cookie="dingauth_session=%s" % sid)
        t.eq("signed in inside DingTalk: login?rd= redirects",
             (r.status, r.header("Location"), st), (302, "/elsewhere", None))

        # After a sign-out the page waits for a click.
        r, _ = page(env, cookie="dingauth_notice=signed_out")
        t.check("after a sign-out: no automatic sign-in, a button instead",
                attr(r.body, "data-start") == "click" and
                'id="dingauth-inapp-start"' in r.body and 'data-notice="signed_out"' in r.body,
                r.body[:1500])

    # Both languages.
    for tag in ("zh-CN", "en"):
        with Env(fake=fk, DINGAUTH_LANG=tag) as env:
            r, _ = page(env)
            seen = visible(r.body)
            t.check("in-app page [%s]: <html lang>" % tag,
                    '<html lang="%s"' % tag in r.body)
            want = [CATS[tag][k] for k in ("inapp.heading", "inapp.lead",
                                           "inapp.progress", "inapp.fallback")]
            t.eq("in-app page [%s]: its texts" % tag,
                 [w for w in want if w not in seen], [])
            t.eq("in-app page [%s]: failure text in the page's language" % tag,
                 attr(r.body, "data-msg-failed"), CATS[tag]["inapp.failed"])
            if tag == "zh-CN":
                t.eq("in-app page [zh-CN]: no English left",
                     re.findall(r"[A-Za-z]{2,}", seen), [])

    # The JSAPI key: its own script origin; the CorpId is needed.
    with Env(fake=fk, DINGTALK_JSAPI_JS="https://js.example.net/dd/3.0/dingtalk.open.js") as env:
        r, _ = page(env)
        csp = r.header("Content-Security-Policy") or ""
        t.check("DINGTALK_JSAPI_JS: its origin in the CSP, its URL in the page",
                "script-src 'self' https://js.example.net;" in csp and
                '<script src="https://js.example.net/dd/3.0/dingtalk.open.js">' in r.body, csp)
    with Env(fake=fk) as env:
        env.set(DINGTALK_JSAPI_JS=None)
        r, _ = page(env)
        t.check("DINGTALK_JSAPI_JS unset: DingTalk's own dingtalk.open.js",
                re.search(r'<script src="https://g\.alicdn\.com/dingding/dingtalk-jsapi/'
                          r'[0-9.]+/dingtalk\.open\.js">', r.body) is not None and
                "script-src 'self' https://g.alicdn.com;" in
                (r.header("Content-Security-Policy") or ""))
        env.set(DINGTALK_CORP_ID=None)
        before = env.sql("SELECT count(*) FROM login_states")[0][0]
        r, state = page(env)
        t.check("no DINGTALK_CORP_ID: a configuration error naming it, no state",
                r.status == 500 and "DINGTALK_CORP_ID" in r.body and state is None and
                env.sql("SELECT count(*) FROM login_states")[0][0] == before,
                r.body[:1200])
        r, _ = page(env, ua=DESKTOP_UA)
        t.eq("no DINGTALK_CORP_ID: the QR page still works", r.status, 200)


# -- the exchange -------------------------------------------------------------------

def test_exchange(fk):
    for flow in FLOWS:
        with Env(fake=fk, DINGAUTH_LOGIN_FLOW=flow) as env:
            seed_demo(env)
            n = "flow=inapp under %s: " % flow
            r, state = page(env, qs(rd="/app/page?x=1"))
            fk.clear_log()
            code = fk.inapp_code(userid="u002")
            r = exchange(env, code, state)
            t.eq(n + "302 to rd", (r.status, r.header("Location")), (302, "/app/page?x=1"))
            sid = r.cookies().get("dingauth_session", (None,))[0]
            t.check(n + "a session cookie", sid and re.fullmatch(r"[0-9a-f]{64}", sid), r.head)
            t.eq(n + "the session is 李四's", env.sql("SELECT userid FROM sessions"),
                 [("u002",)])
            t.eq(n + "state consumed", env.sql("SELECT count(*) FROM login_states"),
                 [(0,)])
            calls = fk.log(path="/topapi/v2/user/getuserinfo")
            t.check(n + "asked getuserinfo once, body {code}, corp token",
                    len(calls) == 1 and calls[0]["json"] == {"code": code} and
                    calls[0]["method"] == "POST" and
                    calls[0]["query"].get("access_token") == fk.corp_token(), calls)
            paths = [e["path"] for e in fk.log()]
            t.check(n + "nothing of the QR flows (no getbyunionid, no sns, no v1.0)",
                    not [p for p in paths if p.startswith(("/sns/", "/v1.0/"))] and
                    "/topapi/user/getbyunionid" not in paths, paths)
            rows = env.sql("SELECT event, userid, unionid, flow, outcome FROM audit")
            t.eq(n + "an audit row with flow inapp",
                 rows, [("login", "u002", "un002", "inapp", "ok")])
            t.check(n + "the log line says flow inapp",
                    re.search(r"flow[=\":]+inapp", r.stderr) is not None, r.stderr[-600:])

    with Env(fake=fk) as env:
        seed_demo(env)

        # JSON, as for every flow.
        r, state = page(env, qs(rd="/j"))
        r = exchange(env, fk.inapp_code(userid="u006"), state, method="POST")
        doc = r.json() if r.status == 200 else {}
        t.eq("POST JSON flow=inapp: the user",
             {k: doc.get(k) for k in ("userid", "name", "unionid", "dept_ids", "rd")},
             {"userid": "u006", "name": "Alice Smith", "unionid": "un006",
              "dept_ids": [2], "rd": "/j"})

        # A reused code.
        r, state = page(env)
        code = fk.inapp_code(userid="u001")
        r = exchange(env, code, state)
        t.eq("first use of the code signs in", r.status, 302)
        before = kept(env)
        r, state = page(env)
        r = exchange(env, code, state)
        check_problem("reused in-app code", r, 400, "code_rejected", env, before)
        t.check("reused in-app code: DingTalk said 40078",
                fk.log(path="/topapi/v2/user/getuserinfo")[-1]["errcode"] == 40078)
        t.eq("reused in-app code: audited as code_rejected, flow inapp",
             env.sql("SELECT flow, outcome FROM audit ORDER BY id DESC LIMIT 1"),
             [("inapp", "code_rejected")])
        r, state = page(env)
        r = exchange(env, "not-a-code", state)
        check_problem("unknown in-app code", r, 400, "code_rejected")
        r, state = page(env)
        r = exchange(env, None, state)
        check_problem("no code", r, 400, "code_missing")

        # Not an employee: DingTalk knows nobody (60121); a leaver; disabled.
        before = kept(env)
        r, state = page(env)
        r = exchange(env, fk.inapp_code(unionid="unext1"), state)
        check_problem("someone outside the company", r, 403, "not_member", env, before)
        r, state = page(env)
        r = exchange(env, fk.inapp_code(userid="u005"), state)
        check_problem("a leaver", r, 403, "inactive", env, before)
        t.check("a leaver: the page names them", "赵六" in r.body)
        env.sql("UPDATE users SET disabled = 1 WHERE userid = 'u001'")
        before = kept(env)
        r, state = page(env)
        r = exchange(env, fk.inapp_code(userid="u001"), state)
        check_problem("a disabled user", r, 403, "disabled", env, before)
        env.sql("UPDATE users SET disabled = 0 WHERE userid = 'u001'")

        # The state: single use, this browser's; checked before DingTalk.
        r, state = page(env)
        r = exchange(env, fk.inapp_code(userid="u001"), state)
        t.eq("a fresh state signs in", r.status, 302)
        fk.clear_log()
        before = kept(env)
        code = fk.inapp_code(userid="u001")
        r = exchange(env, code, state)
        check_problem("a used state", r, 400, "state_invalid", env, before)
        r2, other = page(env)
        r = exchange(env, code, other, cookie_state=state)
        check_problem("another browser's state", r, 400, "state_mismatch", env, before)
        r = exchange(env, code, other, cookie_state="")
        check_problem("no state cookie", r, 400, "state_mismatch", env, before)
        t.eq("a refused state: DingTalk not asked, the code still good",
             fk.log(path="/topapi/v2/user/getuserinfo"), [])
        r = exchange(env, code, other)
        t.eq("...and the state not consumed by the refusals", r.status, 302)

        # An unknown flow changes nothing.
        r, state = page(env)
        n0 = env.sql("SELECT count(*) FROM login_states")[0][0]
        r = exchange(env, fk.inapp_code(userid="u001"), state, flow="magic")
        check_problem("flow=magic", r, 400, "bad_request")
        t.eq("flow=magic: the state kept",
             env.sql("SELECT count(*) FROM login_states")[0][0], n0)

        # DingTalk down, failing, slow.
        for kind, status, problem in (("http500", 502, "dingtalk_unavailable"),
                                      ("garbage", 502, "dingtalk_bad_answer"),
                                      ("drop", 502, "dingtalk_unavailable")):
            fk.fault("/topapi/v2/user/getuserinfo", kind, count=1)
            before = kept(env)
            r, state = page(env)
            r = exchange(env, fk.inapp_code(userid="u001"), state)
            check_problem("DingTalk %s" % kind, r, status, problem, env, before)
        fk.clear_faults()
        fk.fault("/topapi/v2/user/getuserinfo", "errcode", count=1, errcode=50002,
                 errmsg="用户不在员工可见范围内")
        r, state = page(env)
        r = exchange(env, fk.inapp_code(userid="u001"), state)
        check_problem("outside the app's visible range (50002)", r, 403, "not_member")
        fk.fault("/topapi/v2/user/getuserinfo", "invalid_token", count=1)
        r, state = page(env)
        r = exchange(env, fk.inapp_code(userid="u001"), state)
        t.eq("a refused corp token is renewed once, then it signs in", r.status, 302)
        fk.clear_faults()

    # Someone the directory does not know, per DINGAUTH_UNKNOWN_USER.
    for policy, status, problem in (("deny", 403, "denied"),
                                    ("review", 403, "waiting_for_approval"),
                                    ("admit", 302, None)):
        with Env(fake=fk, DINGAUTH_UNKNOWN_USER=policy) as env:
            seed_demo(env)
            r, state = page(env, qs(rd="/w"))
            r = exchange(env, fk.inapp_code(userid="u003"), state)
            n = "unknown user, %s" % policy
            if problem:
                check_problem(n, r, status, problem)
            else:
                t.eq(n + ": 302 to rd", (r.status, r.header("Location")), (302, "/w"))
            reqs = env.sql("SELECT userid, unionid, name, status FROM login_requests")
            if policy == "review":
                t.eq(n + ": a request with DingTalk's name",
                     reqs, [("u003", "un003", "王五", "pending")])
                t.check(n + ": the page names them", "王五" in r.body)
            else:
                t.eq(n + ": no request", reqs, [])
            t.eq(n + ": a session only when admitted",
                 env.sql("SELECT userid FROM sessions"), [("u003",)] if policy == "admit" else [])


def main():
    with FakeDingTalk(qps=10000) as fk:
        for test in (test_page, test_exchange):
            try:
                test(fk)
            except Exception as e:  # a crash is one failure, the rest still run
                import traceback
                traceback.print_exc()
                t.check("%s ran to the end" % test.__name__, False, repr(e))
    t.eq("no crash or sanitizer report in any CGI run", findings, [])
    t.done()


if __name__ == "__main__":
    main()
