"""Golden CGI tests of login.fcgi and exchange.fcgi against the fake DingTalk.

Each of the three flows (sns, sns_bycode, oauth2) signs in; every failure
(missing, expired, reused, forged state; state cookie mismatch; codes
DingTalk rejects; DingTalk slow, down, rate limiting, answering garbage;
not a member; left; disabled; unknown user under deny, review and admit)
answers the right status with a page (or JSON) that names the problem and
offers "try again", and writes no session, user or request row. Also:
escaping of hostile names, cookie attributes, session ids stored only as
SHA-256, open-redirect attempts on rd, logout.

Run: /usr/bin/python3 tests/test_login.py
"""
import hashlib
import html
import json
import os
import re
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

HOSTILE = "<script>alert(\"x\")</script> O'Hara & \"Q\""
FLOWS = ("sns", "sns_bycode", "oauth2")
# Tables a failed login must leave alone (tokens is a cache; a consumed
# login state may disappear).
KEPT = ("sessions", "users", "user_depts", "login_requests", "departments")


# -- helpers ---------------------------------------------------------------


def seed_demo(env):
    """The fake's demo corp as a sync would have left it."""
    env.add_user("u001", "un001", "张三", depts=(1,))
    env.add_user("u002", "un002", "李四", depts=(4, 6))
    env.add_user("u004", "un004", HOSTILE, depts=(6,))
    env.add_user("u005", "un005", "赵六", active=0, depts=(4,))
    env.add_user("u006", "un006", "Alice Smith", depts=(2,))


def start(env, rd=None, cookie=None):
    """GET /dingauth/login; returns (result, state)."""
    q = qs(rd=rd) if rd is not None else ""
    hdrs = {"Cookie": cookie} if cookie else None
    r = env.cgi("login.fcgi", path="/dingauth/login", query=q, headers=hdrs)
    state = r.cookies().get("dingauth_state", (None,))[0]
    return r, state


def exchange(env, code=None, state=None, cookie_state="same", session=None,
             method="GET", as_json=False, code_name=None, extra=None):
    params = {}
    if code is not None:
        params[code_name or ("authCode" if env.config.get(
            "DINGAUTH_LOGIN_FLOW") == "oauth2" else "code")] = code
    if state is not None:
        params["state"] = state
    params.update(extra or {})
    cookies = []
    if cookie_state == "same" and state is not None:
        cookies.append("dingauth_state=" + state)
    elif cookie_state not in (None, "same"):
        cookies.append("dingauth_state=" + cookie_state)
    if session:
        cookies.append("dingauth_session=" + session)
    hdrs = {"Cookie": "; ".join(cookies)} if cookies else {}
    if method == "GET":
        return env.cgi("exchange.fcgi", path="/dingauth/exchange",
                       query=qs(**params), headers=hdrs)
    if as_json:
        return env.cgi("exchange.fcgi", path="/dingauth/exchange",
                       method="POST", body=json.dumps(params),
                       content_type="application/json", headers=hdrs)
    return env.cgi("exchange.fcgi", path="/dingauth/exchange", method="POST",
                   body=qs(**params), headers=hdrs)


def mint(fk, env, userid=None, unionid=None):
    kind = "oauth" if env.config.get("DINGAUTH_LOGIN_FLOW") == "oauth2" else "tmp"
    return fk.code(userid=userid, unionid=unionid, kind=kind)["code"]


def kept(env):
    snap = env.snapshot()
    return {k: snap.get(k) for k in KEPT}


def states(env):
    return env.sql("SELECT count(*) FROM login_states")[0][0]


def data_attr(body, name):
    m = re.search(r'%s="([^"]*)"' % re.escape(name), body)
    return html.unescape(m.group(1)) if m else None


def sha256_hex(s):
    return hashlib.sha256(s.encode()).hexdigest().upper()


def check_problem(name, r, status, problem, text, json_body=False):
    """Status, the problem named, a try-again link, no session cookie."""
    ok = t.eq(name + ": status %d" % status, r.status, status)
    if json_body:
        try:
            doc = r.json()
        except ValueError:
            doc = {}
        t.check(name + ": JSON names the problem",
                doc.get("error") == problem and text.lower() in
                (doc.get("message", "") + " " + doc.get("detail", "")).lower(),
                r.body)
        t.check(name + ": JSON offers a retry link",
                str(doc.get("retry", "")).startswith("/dingauth/login"), r.body)
    else:
        t.check(name + ": page names the problem",
                'data-problem="%s"' % problem in r.body and
                text.lower() in html.unescape(r.body).lower(), r.body[:3000])
        t.check(name + ": page offers try again",
                re.search(r'<a [^>]*id="try-again" href="/dingauth/login[^"]*"'
                          r'>Try again</a>', r.body) is not None, r.body[:3000])
    t.check(name + ": no session cookie",
            "dingauth_session" not in r.cookies(), r.head)
    return ok


def no_rows(name, env, before, before_states):
    after = kept(env)
    t.check(name + ": no session, user or request row written",
            after == before, "before %r\nafter  %r" % (before, after))
    t.check(name + ": no login state created",
            states(env) <= before_states)


def fresh_fake(**kw):
    return FakeDingTalk(qps=10000, **kw).start()


# -- the login page ------------------------------------------------------------

def test_login_page(fk):
    for flow in FLOWS:
        with Env(fake=fk, DINGAUTH_LOGIN_FLOW=flow) as env:
            r, state = start(env, rd="/app/page?x=1&y=2")
            n = "login page (%s)" % flow
            t.eq(n + ": 200", r.status, 200)
            t.check(n + ": Status first", getattr(r, "status_first", False))
            t.check(n + ": HTML", (r.header("Content-Type") or "").startswith("text/html"))
            t.eq(n + ": no-store", r.header("Cache-Control"), "no-store")
            t.check(n + ": cannot be framed",
                    "frame-ancestors 'none'" in (r.header("Content-Security-Policy") or "")
                    and r.header("X-Frame-Options") == "DENY")
            csp = r.header("Content-Security-Policy") or ""
            t.check(n + ": CSP allows only DingTalk's script and frame",
                    "script-src 'self' %s;" % fk.url in csp and
                    "frame-src %s;" % fk.url in csp, csp)
            t.check(n + ": state is 43 base64url chars",
                    state is not None and re.fullmatch(r"[A-Za-z0-9_-]{43}", state), state)
            attrs = r.cookies().get("dingauth_state", ("", ""))[1]
            t.check(n + ": state cookie HttpOnly, SameSite=Lax, Path=/, 10 min",
                    "HttpOnly" in attrs and "SameSite=Lax" in attrs and
                    "Path=/" in attrs and "Max-Age=600" in attrs, attrs)
            t.check(n + ": no Secure with DINGAUTH_COOKIE_SECURE=0", "Secure" not in attrs)
            rows = env.sql("SELECT hex(state_hash), rd, expires_at - created_at"
                           " FROM login_states")
            t.eq(n + ": one state row, hashed, with rd, 600 s",
                 rows, [(sha256_hex(state), "/app/page?x=1&y=2", 600)])
            url = data_attr(r.body, "data-authorize-url")
            u = urllib.parse.urlsplit(url or "")
            q = dict(urllib.parse.parse_qsl(u.query))
            ru = "http://127.0.0.1:8080/dingauth/exchange"
            apps = fk.apps()
            if flow == "oauth2":
                t.eq(n + ": oauth2/auth URL", (u.path, q), ("/oauth2/auth", {
                    "redirect_uri": ru, "response_type": "code",
                    "client_id": apps["appkey"], "scope": "openid",
                    "state": state, "prompt": "consent"}))
                t.eq(n + ": client id for DTFrameLogin",
                     data_attr(r.body, "data-client-id"), apps["appkey"])
            else:
                t.eq(n + ": sns_authorize URL", (u.path, q), (
                    "/connect/oauth2/sns_authorize", {
                        "appid": apps["sns_appid"], "response_type": "code",
                        "scope": "snsapi_login", "state": state,
                        "redirect_uri": ru}))
            t.eq(n + ": URL starts at the configured base",
                 url.startswith(fk.url + "/"), True)
            t.eq(n + ": flow for login.js", data_attr(r.body, "data-flow"), flow)
            t.eq(n + ": frame origin for login.js",
                 data_attr(r.body, "data-frame-origin"), fk.url)
            t.eq(n + ": redirect uri for login.js",
                 data_attr(r.body, "data-redirect-uri"), ru)
            t.check(n + ": ddlogin script from DINGTALK_DDLOGIN_JS",
                    '<script src="%s/ddlogin.js"></script>' % fk.url in r.body)
            t.check(n + ": login.js from static/",
                    '<script src="/dingauth/static/login.js"></script>' in r.body)
            t.check(n + ": plain link to the same URL",
                    re.search(r'<a id="dingauth-fallback" href="([^"]*)"', r.body) is not None
                    and html.unescape(re.search(r'<a id="dingauth-fallback" href="([^"]*)"',
                                                r.body).group(1)) == url)
            t.check(n + ": stylesheet", 'href="/dingauth/static/login.css"' in r.body)
            # The URL really works: the fake redirects back with a code.
            pick = fk.get(u.path + "?" + u.query + "&" + qs(pick="un001"))
            loc = pick.headers.get("location", "")
            back = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(loc).query))
            t.check(n + ": DingTalk sends the browser back to /exchange with the state",
                    pick.status == 302 and loc.startswith(ru + "?") and
                    back.get("state") == state and
                    (back.get("authCode") or back.get("code")), (pick.status, loc))
            # A second visit is a second attempt.
            r2, state2 = start(env)
            t.check(n + ": a fresh state per attempt", state2 and state2 != state)
            t.eq(n + ": two attempts, two rows", states(env), 2)

    with Env(fake=fk) as env:
        r = env.cgi("login.fcgi", path="/dingauth/login", method="HEAD")
        t.eq("login HEAD: 200 without a body", (r.status, r.body), (200, ""))
        r = env.cgi("login.fcgi", path="/dingauth/login", method="POST", body="a=b")
        t.eq("login POST: 405", r.status, 405)
        t.check("login 405 says Allow", "GET" in (r.header("Allow") or ""))
        r = env.cgi("login.fcgi", path="/dingauth/nothing")
        t.eq("login.fcgi unknown route: 404", r.status, 404)

    # Secure by default.
    with Env(fake=fk) as env:
        env.set(DINGAUTH_COOKIE_SECURE=None)
        r, state = start(env)
        attrs = r.cookies().get("__Host-dingauth_state", ("", ""))[1]
        t.check("state cookie Secure by default (as __Host-dingauth_state)",
                "Secure" in attrs, attrs)

    # Configuration problems: a 500 page that names the key.
    with Env(fake=fk, DINGAUTH_LOGIN_FLOW="oauth2", DINGTALK_APP_KEY=None) as env:
        env.set(DINGTALK_APP_KEY=None)
        r, state = start(env)
        t.eq("oauth2 without DINGTALK_APP_KEY: 500", r.status, 500)
        t.check("... names the key", "DINGTALK_APP_KEY" in r.body, r.body[:2000])
        t.check("... no state created", state is None)
    with Env(fake=fk, DINGAUTH_LOGIN_FLOW="bogus") as env:
        r, _ = start(env)
        t.eq("bad DINGAUTH_LOGIN_FLOW: 500", r.status, 500)
        t.check("... names the key", "DINGAUTH_LOGIN_FLOW" in r.body)
        secret = fk.apps()["sns_appsecret"]
        t.check("... shows no secret", secret not in r.body)
        r = exchange(env, code="x", state="y")
        t.eq("exchange with bad configuration: 500", r.status, 500)
        t.check("... names the key", "DINGAUTH_LOGIN_FLOW" in r.body)


# -- signing in ------------------------------------------------------------------

def test_flows(fk):
    for flow in FLOWS:
        with Env(fake=fk, DINGAUTH_LOGIN_FLOW=flow) as env:
            seed_demo(env)
            n = "%s: " % flow
            r, state = start(env, rd="/app/page?x=1&y=2")
            fk.clear_log()
            code = mint(fk, env, userid="u002")
            r = exchange(env, code, state)
            t.eq(n + "exchange 302", r.status, 302)
            t.eq(n + "to rd", r.header("Location"), "/app/page?x=1&y=2")
            sid, attrs = r.cookies().get("dingauth_session", (None, ""))
            t.check(n + "session id is 64 hex", sid and re.fullmatch(r"[0-9a-f]{64}", sid), sid)
            t.check(n + "session cookie HttpOnly, SameSite=Lax, Path=/",
                    "HttpOnly" in attrs and "SameSite=Lax" in attrs and "Path=/" in attrs, attrs)
            t.check(n + "no Secure with DINGAUTH_COOKIE_SECURE=0", "Secure" not in attrs)
            t.check(n + "state cookie left to expire (a replay then says \"used\")",
                    "dingauth_state" not in r.cookies())
            rows = env.sql("SELECT hex(id_hash), userid FROM sessions")
            t.eq(n + "one session row, only the SHA-256 of the id",
                 rows, [(sha256_hex(sid), "u002")])
            t.check(n + "the id itself is nowhere in the database",
                    sid not in repr(env.snapshot()))
            t.eq(n + "state consumed", states(env), 0)
            paths = [e["path"] for e in fk.log()]
            want = {"sns": "/sns/get_persistent_code",
                    "sns_bycode": "/sns/getuserinfo_bycode",
                    "oauth2": "/v1.0/contact/users/me"}[flow]
            t.check(n + "asked DingTalk the flow's way (%s)" % want,
                    want in paths and "/topapi/user/getbyunionid" in paths, paths)
            if flow == "sns_bycode":
                e = [e for e in fk.log() if e["path"] == want][0]
                t.check(n + "signed with accessKey, timestamp, signature",
                        set(("accessKey", "timestamp", "signature")) <= set(e["query"]))
            if flow == "oauth2":
                t.check(n + "userAccessToken first",
                        paths.index("/v1.0/oauth2/userAccessToken") <
                        paths.index("/v1.0/contact/users/me"), paths)

            # The session works: login with rd goes there, without rd shows who.
            r, st2 = start(env, rd="/elsewhere", cookie="dingauth_session=" + sid)
            t.eq(n + "signed in: login?rd= redirects", (r.status, r.header("Location")),
                 (302, "/elsewhere"))
            t.check(n + "signed in: no new state", st2 is None and states(env) == 0)
            r, _ = start(env, cookie="dingauth_session=" + sid)
            t.eq(n + "signed in: account view", r.status, 200)
            t.check(n + "account view names the user",
                    '<strong id="user-name">李四</strong>' in r.body, r.body[:2000])

            # Signing in again replaces the browser's session.
            r, state = start(env)
            r = exchange(env, mint(fk, env, userid="u002"), state, session=sid)
            sid2 = r.cookies().get("dingauth_session", (None,))[0]
            t.check(n + "a new id at every login", r.status == 302 and sid2 and sid2 != sid)
            t.eq(n + "the old session ended", env.sql(
                "SELECT hex(id_hash) FROM sessions"), [(sha256_hex(sid2),)])

            # POST form and JSON answer JSON.
            for as_json in (False, True):
                how = "JSON" if as_json else "form"
                r, state = start(env, rd="/p")
                r = exchange(env, mint(fk, env, userid="u006"), state,
                             method="POST", as_json=as_json, code_name="code")
                t.eq(n + "POST %s: 200" % how, r.status, 200)
                t.check(n + "POST %s: JSON content type" % how,
                        (r.header("Content-Type") or "").startswith("application/json"))
                try:
                    doc = r.json()
                except ValueError:
                    doc = {}
                t.eq(n + "POST %s: the user" % how,
                     {k: doc.get(k) for k in ("userid", "name", "unionid", "dept_ids", "rd")},
                     {"userid": "u006", "name": "Alice Smith", "unionid": "un006",
                      "dept_ids": [2], "rd": "/p"})
                t.check(n + "POST %s: session cookie" % how,
                        re.fullmatch(r"[0-9a-f]{64}",
                                     r.cookies().get("dingauth_session", ("",))[0]))

    # oauth2 also accepts "code"; sns flows ignore a stray empty authCode.
    with Env(fake=fk, DINGAUTH_LOGIN_FLOW="oauth2") as env:
        seed_demo(env)
        r, state = start(env)
        r = exchange(env, mint(fk, env, userid="u001"), state, code_name="code")
        t.eq("oauth2 with code= instead of authCode=", r.status, 302)
    with Env(fake=fk) as env:
        seed_demo(env)
        r, state = start(env)
        r = exchange(env, mint(fk, env, userid="u001"), state,
                     extra={"authCode": ""})
        t.eq("sns with an empty authCode= and a code=", r.status, 302)

    # Secure cookies unless DINGAUTH_COOKIE_SECURE=0.
    with Env(fake=fk) as env:
        env.set(DINGAUTH_COOKIE_SECURE=None)
        seed_demo(env)
        r = env.cgi("login.fcgi", path="/dingauth/login")
        state = r.cookies().get("__Host-dingauth_state", (None,))[0]
        r = env.cgi("exchange.fcgi", path="/dingauth/exchange",
                    query=qs(code=mint(fk, env, userid="u001"), state=state),
                    headers={"Cookie": "__Host-dingauth_state=%s" % state})
        attrs = r.cookies().get("__Host-dingauth_session", ("", ""))[1]
        t.check("session cookie Secure by default (as __Host-dingauth_session)",
                r.status == 302 and "Secure" in attrs and "HttpOnly" in attrs, r.head)


# -- failures -------------------------------------------------------------------

def test_state_failures(fk):
    with Env(fake=fk) as env:
        seed_demo(env)
        code = lambda: mint(fk, env, userid="u001")  # noqa: E731

        r, state = start(env, rd="/x")
        before, n0 = kept(env), states(env)
        r = exchange(env, code(), None)
        check_problem("missing state", r, 400, "state_missing", "incomplete")
        no_rows("missing state", env, before, n0)
        t.eq("missing state: the attempt is still there", states(env), 1)

        r = exchange(env, code(), state, cookie_state=None)
        check_problem("no state cookie", r, 400, "state_mismatch", "another browser")
        r = exchange(env, code(), state, cookie_state="A" * 43)
        check_problem("state cookie mismatch", r, 400, "state_mismatch", "another browser")
        no_rows("state cookie mismatch", env, before, n0)
        t.eq("mismatch does not burn the attempt", states(env), 1)
        t.check("mismatch leaves the browser's state cookie alone",
                "dingauth_state" not in r.cookies())

        env.sql("UPDATE login_states SET expires_at = strftime('%s','now') - 1")
        r = exchange(env, code(), state)
        check_problem("expired state", r, 400, "state_invalid", "expired")
        no_rows("expired state", env, before, n0)
        t.eq("expired state: deleted", states(env), 0)


        r, state = start(env)
        before, n0 = kept(env), states(env)
        r = exchange(env, code(), state)
        t.eq("first use of a state: 302", r.status, 302)
        before, n0 = kept(env), states(env)
        r = exchange(env, code(), state)
        check_problem("reused state", r, 400, "state_invalid", "already used")
        no_rows("reused state", env, before, n0)

        forged = "f" * 43
        r = exchange(env, code(), forged)
        check_problem("forged state", r, 400, "state_invalid", "already used")
        r = exchange(env, code(), "<script>", cookie_state="<script>")
        check_problem("malformed state", r, 400, "state_invalid", "expired")
        no_rows("forged state", env, before, n0)

        r = exchange(env, None, None, method="POST")
        check_problem("POST without anything", r, 400, "state_missing", "incomplete",
                      json_body=True)

        r, state = start(env, rd="/keep/me")
        before, n0 = kept(env), states(env)
        r = exchange(env, None, state)
        check_problem("missing code", r, 400, "code_missing", "no login code")
        t.check("missing code: retry keeps rd",
                'href="/dingauth/login?rd=%2Fkeep%2Fme"' in r.body, r.body[:3000])
        no_rows("missing code", env, before, n0)

        r = env.cgi("exchange.fcgi", path="/dingauth/exchange", method="PUT")
        t.eq("exchange PUT: 405", r.status, 405)
        r = env.cgi("exchange.fcgi", path="/dingauth/exchange", method="HEAD",
                    query=qs(code="c", state="s"))
        t.eq("exchange HEAD: 405 (a prefetch burns nothing)", r.status, 405)
        r = env.cgi("exchange.fcgi", path="/dingauth/exchange", method="POST",
                    body="{not json", content_type="application/json")
        t.eq("exchange bad JSON body: 400", r.status, 400)
        r = env.cgi("exchange.fcgi", path="/dingauth/exchange", method="POST",
                    body="x" * 20000)
        t.eq("exchange oversized body: 413", r.status, 413)


def fault_case(fk, env, name, path, kind, want, problem, text, count=1,
               as_json=False, **opts):
    r, state = start(env, rd="/after")
    code = mint(fk, env, userid="u001")
    before, n0 = kept(env), states(env)
    fk.fault(path, kind, count=count, **opts)
    t0 = time.time()
    r = exchange(env, code, state, method="POST" if as_json else "GET",
                 as_json=as_json)
    took = time.time() - t0
    fk.clear_faults()
    check_problem(name, r, want, problem, text, json_body=as_json)
    if not as_json:
        t.check(name + ": retry keeps rd",
                'href="/dingauth/login?rd=%2Fafter"' in r.body, r.body[:3000])
    no_rows(name, env, before, n0)
    return r, took


def test_dingtalk_failures(fk):
    for flow in FLOWS:
        first = {"sns": "/sns/get_persistent_code",
                 "sns_bycode": "/sns/getuserinfo_bycode",
                 "oauth2": "/v1.0/oauth2/userAccessToken"}[flow]
        with Env(fake=fk, DINGAUTH_LOGIN_FLOW=flow, DINGAUTH_HTTP_TIMEOUT=1000,
                 DINGAUTH_HTTP_RETRIES=1) as env:
            seed_demo(env)
            n = flow + ": "
            # Warm the token cache so faults hit the calls under test.
            r, state = start(env)
            exchange(env, mint(fk, env, userid="u001"), state)

            # A code DingTalk refuses: 40078, and one used twice.
            if flow == "oauth2":
                fault_case(fk, env, n + "code rejected (invalidAuthCode)", first,
                           "errcode", 400, "code_rejected", "did not accept",
                           status=400, code="invalidAuthCode")
            else:
                fault_case(fk, env, n + "code rejected (40078)", first, "errcode",
                           400, "code_rejected", "did not accept", errcode=40078,
                           errmsg="不存在的临时授权码")
            r, state = start(env)
            code = mint(fk, env, userid="u001")
            r = exchange(env, code, state)
            t.eq(n + "first use of a code: 302", r.status, 302)
            r, state = start(env)
            before, n0 = kept(env), states(env)
            r = exchange(env, code, state)
            check_problem(n + "reused code", r, 400, "code_rejected", "already used")
            no_rows(n + "reused code", env, before, n0)
            r, state = start(env)
            r = exchange(env, "nosuchcode", state, method="POST", as_json=True)
            check_problem(n + "unknown code (JSON)", r, 400, "code_rejected",
                          "did not accept", json_body=True)

            # Slow: longer than DINGAUTH_HTTP_TIMEOUT.
            r, took = fault_case(fk, env, n + "DingTalk slow", first, "slow", 504,
                                 "dingtalk_timeout", "in time", delay_ms=2500)
            t.check(n + "slow: gave up after the timeout (%.1f s)" % took, took < 2.4)
            fault_case(fk, env, n + "DingTalk slow on getbyunionid",
                       "/topapi/user/getbyunionid", "slow", 504, "dingtalk_timeout",
                       "in time", delay_ms=2500)
            # Down.
            # libcurl retries a reused connection that dies once: drop twice.
            fault_case(fk, env, n + "DingTalk drops the connection", first, "drop",
                       502, "dingtalk_unavailable", "could not be reached", count=2)
            fault_case(fk, env, n + "DingTalk HTTP 500", first, "http500", 502,
                       "dingtalk_unavailable", "could not be reached")
            fault_case(fk, env, n + "DingTalk HTTP 500 (JSON)", first, "http500", 502,
                       "dingtalk_unavailable", "could not be reached", as_json=True)
            # Rate limiting, more times than we retry.
            r, _ = fault_case(fk, env, n + "DingTalk rate limiting", first,
                              "rate_limit", 503, "rate_limited", "wait about",
                              count=5)
            t.check(n + "rate limited: Retry-After", (r.header("Retry-After") or "").isdigit(),
                    r.head)
            r, _ = fault_case(fk, env, n + "rate limiting (JSON)", "/topapi/user/getbyunionid",
                              "rate_limit", 503, "rate_limited", "wait about",
                              count=5, as_json=True)
            t.check(n + "rate limited (JSON): retry_after",
                    r.json().get("retry_after", 0) > 0 if r.status == 503 else False)
            # Garbage.
            fault_case(fk, env, n + "DingTalk answers garbage", first, "garbage", 502,
                       "dingtalk_bad_answer", "could not be read")
            fault_case(fk, env, n + "garbage from getbyunionid",
                       "/topapi/user/getbyunionid", "garbage", 502,
                       "dingtalk_bad_answer", "could not be read")


# DingTalk's documented timeout answers (docs/dingtalk.md §h.2): each form,
# injected once on a login's DingTalk call, is retried and the login goes
# through; an HTML throttling page is "rate limited", not garbage.
TIMEOUT_FORMS = (
    ("errcode 15 isp.top-remote-connection-timeout", "errcode",
     {"errcode": 15, "sub_code": "isp.top-remote-connection-timeout",
      "errmsg": "Remote service error"}),
    ("errcode 88 without a sub_code", "errcode",
     {"errcode": 88, "sub_code": "", "errmsg": "ding talk error"}),
    ("HTTP 504", "http504", {}),
)


def test_dingtalk_timeouts(fk):
    for flow in FLOWS:
        with Env(fake=fk, DINGAUTH_LOGIN_FLOW=flow) as env:
            seed_demo(env)
            r, state = start(env)
            fk.clear_log()
            exchange(env, mint(fk, env, userid="u001"), state)
            # The calls a login makes once its tokens are warm.
            paths = [e["path"] for e in fk.log()
                     if e["path"] not in ("/gettoken", "/sns/gettoken", "/v1.0/oauth2/accessToken")]
            t.check(flow + ": a warm login makes DingTalk calls", len(paths) >= 1, paths)
            for path in paths:
                for name, kind, opts in TIMEOUT_FORMS:
                    if kind == "errcode" and path.startswith("/v1.0/"):
                        continue    # errcodes are oapi/topapi answers
                    r, state = start(env)
                    code = mint(fk, env, userid="u001")
                    fk.clear_log()
                    fk.fault(path, kind, count=1, **opts)
                    r = exchange(env, code, state)
                    calls = fk.log(path=path)
                    t.check("%s: %s on %s: asked again, and the login goes through"
                            % (flow, name, path),
                            r.status == 302 and "dingauth_session" in r.cookies() and
                            [bool(c["fault"]) for c in calls] == [True, False],
                            (r.status, [(c["status"], c["errcode"], c["fault"]) for c in calls],
                             r.stderr[-800:]))
                    fk.clear_faults()
            r, state = start(env)
            code = mint(fk, env, userid="u001")
            before, n0 = kept(env), states(env)
            fk.fault(paths[0], "throttle_html", count=1)
            r = exchange(env, code, state)
            fk.clear_faults()
            check_problem(flow + ": an HTML throttling page", r, 503, "rate_limited",
                          "wait about")
            no_rows(flow + ": an HTML throttling page", env, before, n0)


def test_directory_decides(fk):
    for flow in FLOWS:
        with Env(fake=fk, DINGAUTH_LOGIN_FLOW=flow,
                 DINGAUTH_UNKNOWN_USER="deny") as env:
            seed_demo(env)
            n = flow + ": "
            # Not a member: an external DingTalk account.
            r, state = start(env)
            before, n0 = kept(env), states(env)
            r = exchange(env, mint(fk, env, unionid="unext1"), state)
            check_problem(n + "not a member", r, 403, "not_member", "not a member")
            m = re.search(r"not a member of the company \(DingTalk: ([^)\n]*)\)", r.stderr)
            t.check(n + "not a member: the log line carries DingTalk's own words once",
                    m is not None and m.group(1).strip() != "" and
                    "not a member" not in m.group(1), r.stderr[-800:])
            no_rows(n + "not a member", env, before, n0)
            # Left the company.
            r, state = start(env)
            r = exchange(env, mint(fk, env, userid="u005"), state)
            check_problem(n + "inactive", r, 403, "inactive", "left the company")
            t.check(n + "inactive: the page says whose account",
                    "DingTalk account: <strong>赵六</strong>" in r.body)
            no_rows(n + "inactive", env, before, n0)
            # Disabled by an operator.
            env.sql("UPDATE users SET disabled = 1 WHERE userid = 'u006'")
            before = kept(env)
            r, state = start(env)
            r = exchange(env, mint(fk, env, userid="u006"), state)
            check_problem(n + "disabled", r, 403, "disabled", "disabled")
            no_rows(n + "disabled", env, before, n0)
            # Unknown to the directory: deny.
            r, state = start(env)
            r = exchange(env, mint(fk, env, userid="u003"), state)
            check_problem(n + "unknown, deny", r, 403, "denied", "directory")
            no_rows(n + "unknown, deny", env, before, n0)
            r, state = start(env)
            r = exchange(env, mint(fk, env, userid="u003"), state, method="POST",
                         as_json=True)
            check_problem(n + "unknown, deny (JSON)", r, 403, "denied", "directory",
                          json_body=True)

            # review: a request an operator approves; still no session.
            env.set(DINGAUTH_UNKNOWN_USER="review")
            r, state = start(env)
            before = kept(env)
            r = exchange(env, mint(fk, env, userid="u003"), state)
            check_problem(n + "unknown, review", r, 403, "waiting_for_approval",
                          "approve")
            t.check(n + "review: a waiting page, not an error",
                    'class="problem waiting"' in r.body)
            reqs = env.sql("SELECT userid, unionid, name, status, attempts"
                           " FROM login_requests")
            t.eq(n + "review: one pending request", reqs,
                 [("u003", "un003", "王五", "pending", 1)])
            t.eq(n + "review: no session, no user",
                 (env.sql("SELECT count(*) FROM sessions")[0][0] - len(before["sessions"]),
                  env.sql("SELECT count(*) FROM users WHERE userid='u003'")[0][0]), (0, 0))
            r, state = start(env)
            r = exchange(env, mint(fk, env, userid="u003"), state)
            t.eq(n + "review again: still waiting, one request, two attempts",
                 (r.status, env.sql("SELECT count(*), max(attempts) FROM login_requests")),
                 (403, [(1, 2)]))
            # The operator's "no" stops the person signing in.
            rid = env.sql("SELECT id FROM login_requests WHERE status='pending'")[0][0]
            rr = env.cmd("requests", "reject", str(rid))
            t.check(n + "requests reject: exit 0", rr.returncode == 0, rr)
            r, state = start(env)
            before = kept(env)
            r = exchange(env, mint(fk, env, userid="u003"), state)
            check_problem(n + "review after a rejection", r, 403, "denied", "directory")
            no_rows(n + "review after a rejection", env, before, n0)
            # review on a broken DingTalk: nothing recorded.
            env.sql("DELETE FROM login_requests")
            before = kept(env)
            r, state = start(env)
            fk.fault("/topapi/user/getbyunionid", "http500")
            r = exchange(env, mint(fk, env, userid="u003"), state)
            fk.clear_faults()
            check_problem(n + "review, DingTalk down", r, 502, "dingtalk_unavailable",
                          "could not be reached")
            no_rows(n + "review, DingTalk down", env, before, n0)

            # admit: fetched with topapi/v2/user/get, added, signed in.
            env.set(DINGAUTH_UNKNOWN_USER="admit")
            r, state = start(env, rd="/welcome")
            fk.clear_log()
            r = exchange(env, mint(fk, env, userid="u003"), state)
            t.eq(n + "unknown, admit: 302 to rd", (r.status, r.header("Location")),
                 (302, "/welcome"))
            t.check(n + "admit: asked topapi/v2/user/get",
                    any(e["path"] == "/topapi/v2/user/get" and
                        (e["json"] or {}).get("userid") == "u003" for e in fk.log()))
            t.eq(n + "admit: in the directory, source admit",
                 env.sql("SELECT userid, unionid, name, active, source FROM users"
                         " WHERE userid='u003'"),
                 [("u003", "un003", "王五", 1, "admit")])
            t.eq(n + "admit: memberships",
                 env.sql("SELECT dept_id FROM user_depts WHERE userid='u003'"), [(5,)])
            sid = r.cookies().get("dingauth_session", ("",))[0]
            t.eq(n + "admit: a session", env.sql(
                "SELECT userid FROM sessions WHERE id_hash = ?",
                (bytes.fromhex(sha256_hex(sid)),)) if sid else [], [("u003",)])
            # admit, but DingTalk fails on user/get: nothing written.
            env.sql("DELETE FROM user_depts WHERE userid='u003'")
            env.sql("DELETE FROM users WHERE userid='u003'")
            env.sql("DELETE FROM sessions")
            before = kept(env)
            r, state = start(env)
            fk.fault("/topapi/v2/user/get", "drop", count=2)
            r = exchange(env, mint(fk, env, userid="u003"), state)
            fk.clear_faults()
            check_problem(n + "admit, DingTalk down", r, 502, "dingtalk_unavailable",
                          "could not be reached")
            no_rows(n + "admit, DingTalk down", env, before, n0)


def test_escaping(fk):
    with Env(fake=fk) as env:
        seed_demo(env)
        r, state = start(env)
        r = exchange(env, mint(fk, env, userid="u004"), state)
        sid = r.cookies().get("dingauth_session", ("",))[0]
        t.eq("hostile name: signs in", r.status, 302)
        r, _ = start(env, cookie="dingauth_session=" + sid)
        esc = html.escape(HOSTILE, quote=True).replace("&#x27;", "&#39;")
        t.check("hostile name: shown escaped on the account page",
                '<strong id="user-name">%s</strong>' % esc in r.body, r.body[:3000])
        t.check("hostile name: no raw markup anywhere",
                "<script>alert" not in r.body and "O'Hara" not in r.body)
        r, state = start(env)
        r = exchange(env, mint(fk, env, userid="u004"), state, method="POST",
                     as_json=True)
        t.eq("hostile name: JSON carries it verbatim", r.json().get("name"), HOSTILE)
        env.sql("UPDATE users SET active = 0 WHERE userid = 'u004'")
        r, state = start(env)
        r = exchange(env, mint(fk, env, userid="u004"), state)
        t.check("hostile name: escaped on the error page too",
                r.status == 403 and "<strong>%s</strong>" % esc in r.body and
                "<script>alert" not in r.body, r.body[:3000])
        # Hostile rd is encoded, never markup.
        r, state = start(env, rd='/a"><script>x</script>')
        t.eq("hostile rd: kept encoded",
             env.sql("SELECT rd FROM login_states ORDER BY created_at DESC LIMIT 1")[0][0],
             "/a%22%3E%3Cscript%3Ex%3C/script%3E")
        t.check("hostile rd: never in the page raw", "<script>x" not in r.body)


def test_rd(fk):
    bad = ["https://evil.example/", "//evil.example/x", "/\\evil.example",
           "\\\\evil.example", "/\t/evil.example", "/\r\nLocation: x",
           "javascript:alert(1)", "", "evil.example", "http:/evil",
           " /x", "///evil.example", "/\\/evil"]
    with Env(fake=fk) as env:
        seed_demo(env)
        r, state = start(env)
        r = exchange(env, mint(fk, env, userid="u001"), state)
        sid = r.cookies().get("dingauth_session", ("",))[0]
        for rd in bad:
            env.sql("DELETE FROM login_states")
            r, state = start(env, rd=rd)
            stored = env.sql("SELECT rd FROM login_states")
            t.eq("rd %r falls back to /" % rd, stored, [("/",)])
            r, _ = start(env, rd=rd, cookie="dingauth_session=" + sid)
            t.eq("rd %r with a session: redirect to /" % rd,
                 (r.status, r.header("Location")), (302, "/"))
        for rd, want in (("/", "/"), ("/app", "/app"), ("/a/b?c=d&e=%2F", "/a/b?c=d&e=%2F"),
                         ("/p#frag", "/p#frag"), ("/ü ber", "/%C3%BC%20ber")):
            r, _ = start(env, rd=rd, cookie="dingauth_session=" + sid)
            t.eq("rd %r kept" % rd, (r.status, r.header("Location")), (302, want))
        # rd travels with the state through the exchange.
        r, state = start(env, rd="//evil.example")
        r = exchange(env, mint(fk, env, userid="u001"), state)
        t.eq("open redirect through the exchange: /", r.header("Location"), "/")
        # A state row tampered with afterwards is still checked on the way out.
        r, state = start(env, rd="/ok")
        env.sql("UPDATE login_states SET rd = '//evil.example'")
        r = exchange(env, mint(fk, env, userid="u001"), state)
        t.eq("a stored rd is validated again", r.header("Location"), "/")


def test_sessions(fk):
    with Env(fake=fk) as env:
        seed_demo(env)
        r, state = start(env)
        r = exchange(env, mint(fk, env, userid="u002"), state)
        sid = r.cookies().get("dingauth_session", ("",))[0]
        # A leaver is out on the next request.
        env.sql("UPDATE users SET active = 0 WHERE userid = 'u002'")
        r, state = start(env, rd="/x", cookie="dingauth_session=" + sid)
        t.check("leaver: the login page again, not a redirect",
                r.status == 200 and state is not None and 'id="dingauth-login"' in r.body)
        t.eq("leaver: the dead cookie is cleared",
             r.cookies().get("dingauth_session", ("?",))[0], "")
        env.sql("UPDATE users SET active = 1 WHERE userid = 'u002'")
        # Logout: a POST from the site itself (Sec-Fetch-Site, else Origin);
        # GET and cross-site POSTs: tests/test_signout_cookies.py.
        for method, same in (("POST", {"Sec-Fetch-Site": "same-origin"}),
                             ("POST by Origin", {"Origin": "http://127.0.0.1:8080"})):
            r, state = start(env)
            r = exchange(env, mint(fk, env, userid="u002"), state)
            sid = r.cookies().get("dingauth_session", ("",))[0]
            t.eq("logout %s: session exists" % method,
                 env.sql("SELECT count(*) FROM sessions")[0][0], 1)
            r = env.cgi("login.fcgi", path="/dingauth/logout", method="POST",
                        headers=dict(same, Cookie="dingauth_session=" + sid))
            t.eq("logout %s: 302 to the login page" % method,
                 (r.status, r.header("Location")), (302, "/dingauth/login"))
            c = r.cookies().get("dingauth_session", ("?", ""))
            t.check("logout %s: cookie cleared" % method,
                    c[0] == "" and "Max-Age=0" in c[1], r.head)
            t.eq("logout %s: session ended" % method,
                 env.sql("SELECT count(*) FROM sessions")[0][0], 0)
            r, state = start(env, cookie="dingauth_session=" + sid)
            t.check("logout %s: signed out for real" % method,
                    r.status == 200 and 'id="dingauth-login"' in r.body)
        same = {"Sec-Fetch-Site": "same-origin"}
        r = env.cgi("login.fcgi", path="/dingauth/logout", method="POST",
                    query=qs(rd="/back"), headers=same)
        t.eq("logout without a session, with rd",
             (r.status, r.header("Location")), (302, "/dingauth/login?rd=%2Fback"))
        r = env.cgi("login.fcgi", path="/dingauth/logout", method="POST",
                    query=qs(rd="//evil"), headers=same)
        t.eq("logout with a bad rd", r.header("Location"), "/dingauth/login")
        r = env.cgi("login.fcgi", path="/dingauth/logout", method="PUT")
        t.eq("logout PUT: 405", r.status, 405)


def test_own_names(fk):
    """Mounted as plain CGI under their own file names, both programs work."""
    with Env(fake=fk, DINGAUTH_UNKNOWN_USER="admit") as env:
        r = env.cgi("login.fcgi", path="/cgi-bin/login.fcgi", query=qs(rd="/x"))
        state = r.cookies().get("dingauth_state", (None,))[0]
        t.check("own name: /cgi-bin/login.fcgi is the login page",
                r.status == 200 and state is not None, r.head)
        code = mint(fk, env, userid="u001")
        r = env.cgi("exchange.fcgi", path="/cgi-bin/exchange.fcgi",
                    query=qs(code=code, state=state),
                    headers={"Cookie": "dingauth_state=" + state})
        t.check("own name: /cgi-bin/exchange.fcgi signs in",
                r.status == 302 and "dingauth_session" in r.cookies(), r.head)
        r = env.cgi("exchange.fcgi", path="/cgi-bin/other", query=qs(code="c", state=state))
        t.eq("own name: another name is 404", r.status, 404)


def main():
    fk = fresh_fake()
    try:
        for test in (test_login_page, test_flows, test_state_failures,
                     test_dingtalk_failures, test_dingtalk_timeouts,
                     test_directory_decides,
                     test_escaping, test_rd, test_sessions, test_own_names):
            try:
                test(fk)
            except Exception as e:  # a crash is a failure, not silence
                import traceback
                t.check("%s ran to the end" % test.__name__, False,
                        traceback.format_exc())
            fk.clear_faults()
    finally:
        fk.stop()
    t.check("no crash or sanitizer report in any CGI run (%d found)" % len(findings),
            not findings, "\n".join(findings[:3]))
    t.done()


if __name__ == "__main__":
    main()
