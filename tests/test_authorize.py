# -*- coding: utf-8 -*-
"""authorize.fcgi at CGI level, both roles (issue 6).

Authorizer role (FCGI_ROLE=AUTHORIZER, no SCRIPT_NAME, as lighttpd and
Apache call it): Status first; a grant is Status + the five Variable-* and
nothing else; no session -> 302 to the login page with the request URI
encoded as rd (body starting with '<'), or 401 JSON for script; outside
the rule -> 403 page saying why; leavers, disabled users, expired, idle and
forged sessions are out at once.
Responder role: auth (X-Auth-Request-*, 401 with X-Auth-Request-Redirect,
403 with X-Auth-Request-Reason), whoami (JSON or 401), anything else 404.
"""
import hashlib
import json
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Env  # noqa: E402
import deploykit as dk  # noqa: E402

t = T()

URI = "/app/page?a=1&b=2&next=/x y"
VARIABLES = ["Variable-REMOTE_USER", "Variable-DINGTALK_USERID",
             "Variable-DINGTALK_UNIONID", "Variable-DINGTALK_NAME",
             "Variable-DINGTALK_DEPT_IDS"]


RUNS = []     # (what, exit status, stderr) of every run, checked at the end


def record(what, r):
    RUNS.append((what, r.rc, r.stderr))
    return r


def authorize(env, cookie=None, uri=URI, headers=None, extra=None,
              method="GET"):
    """Call authorize.fcgi the way lighttpd/Apache call an authorizer."""
    h = dict(headers or {})
    if cookie is not None:
        h["Cookie"] = dk.cookie_header(cookie)
    e = {"SCRIPT_NAME": "", "REQUEST_URI": uri,
         "QUERY_STRING": uri.partition("?")[2]}
    e.update(extra or {})
    return record(uri, env.cgi("authorize.fcgi", path="/", method=method,
                               headers=h, role="AUTHORIZER", extra_env=e))


def responder(env, route, cookie=None, uri=None, headers=None, extra=None,
              method="GET"):
    """Call a responder route the way nginx's auth_request does: SCRIPT_NAME
    is the auth location, REQUEST_URI the original request's."""
    h = dict(headers or {})
    if cookie is not None:
        h["Cookie"] = dk.cookie_header(cookie)
    e = {"REQUEST_URI": uri or "/dingauth/" + route}
    e.update(extra or {})
    return record(route, env.cgi("authorize.fcgi", path="/dingauth/" + route,
                                 method=method, headers=h, extra_env=e))


def login_for(uri, base="/dingauth"):
    return base + "/login?rd=" + urllib.parse.quote(uri, safe="")


def is_grant(r):
    names = [k for k, _ in r.headers]
    return (r.status == 200 and r.status_first and r.body == "" and
            sorted(names) == sorted(["Status"] + VARIABLES))


with Env() as env:
    dk.seed(env)

    # --- no session -------------------------------------------------------
    r = authorize(env)
    t.eq("no cookie: 302", r.status, 302)
    t.check("no cookie: Status is the first header line", r.status_first, r.head)
    t.eq("no cookie: Location is the login page with the URI encoded as rd",
         r.header("Location"), login_for(URI))
    t.check("no cookie: rd decodes back to the request URI exactly",
            urllib.parse.parse_qs(urllib.parse.urlsplit(
                r.header("Location")).query)["rd"] == [URI], r.header("Location"))
    t.check("no cookie: body starts with '<' (Apache takes '/' as ErrorDocument)",
            r.body.startswith("<"), r.body[:80])
    t.check("no cookie: deny body is ASCII and under 8 KiB",
            r.raw.isascii() and len(r.body) < 8192)
    t.check("no cookie: no Variable-* on a deny",
            not any(k.startswith("Variable-") for k, _ in r.headers), r.head)
    t.check("no cookie: not cacheable", r.header("Cache-Control") == "no-store", r.head)

    for name, hdr in (("Accept: application/json", {"Accept": "application/json"}),
                      ("X-Requested-With", {"X-Requested-With": "XMLHttpRequest"}),
                      ("Sec-Fetch-Mode: cors", {"Sec-Fetch-Mode": "cors", "Accept": "*/*"})):
        r = authorize(env, headers=hdr)
        ok = r.status == 401 and r.status_first and r.body.startswith("{")
        j = r.json() if r.body.startswith("{") else {}
        t.check("no cookie, %s: 401 JSON" % name, ok, r.raw[:300])
        t.eq("no cookie, %s: application/json" % name,
             r.header("Content-Type"), "application/json")
        t.eq("no cookie, %s: JSON names the login URL with rd" % name,
             j.get("login"), login_for(URI))
        t.eq("no cookie, %s: marked X-Dingauth-Json for Apache" % name,
             r.header("X-Dingauth-Json"), "1")
    r = authorize(env, headers={"Accept": "text/html,application/json;q=0.9"})
    t.eq("a browser's Accept (text/html first) still gets the redirect", r.status, 302)

    r = authorize(env, method="HEAD")
    t.check("HEAD without session: 302, no body", r.status == 302 and r.body == "", r.raw[:200])
    r = authorize(env, method="POST", extra={"CONTENT_LENGTH": "", "CONTENT_TYPE": ""})
    t.eq("POST without session: 302 too (no body is read)", r.status, 302)

    r = authorize(env, extra={"DINGAUTH_BASE_PATH": "/sso"})
    t.eq("DINGAUTH_BASE_PATH moves the login page", r.header("Location"), login_for(URI, "/sso"))

    long_uri = "/long/path?q=" + "x" * 5000
    r = authorize(env, uri=long_uri)
    t.eq("a huge query is dropped from rd, the path kept",
         r.header("Location"), login_for("/long/path"))

    # Spoofed identity headers without a session gain nothing.
    r = authorize(env, headers={"Variable-REMOTE_USER": "u001", "Remote-User": "u001",
                                "X-Auth-Request-User": "u001", "Authorization": "Basic dTAwMTp4"})
    t.check("spoofed identity headers without a session: still 302",
            r.status == 302 and not any(k.startswith("Variable-") for k, _ in r.headers), r.head)

    # --- a valid session ----------------------------------------------------
    c1 = dk.session(env, "u001")
    r = authorize(env, c1)
    t.check("valid session: grant is only Status 200 + the five Variable-*",
            is_grant(r), r.raw[:500])
    t.eq("valid session: Variable-REMOTE_USER is the userid", r.header("Variable-REMOTE_USER"), "u001")
    t.eq("valid session: DINGTALK_USERID", r.header("Variable-DINGTALK_USERID"), "u001")
    t.eq("valid session: DINGTALK_UNIONID", r.header("Variable-DINGTALK_UNIONID"), "un001")
    t.eq("valid session: DINGTALK_NAME in UTF-8", r.header("Variable-DINGTALK_NAME"), "张三")
    t.eq("valid session: DINGTALK_DEPT_IDS", r.header("Variable-DINGTALK_DEPT_IDS"), "1")
    c2 = dk.session(env, "u002")
    r = authorize(env, c2)
    t.eq("several departments, comma-separated", r.header("Variable-DINGTALK_DEPT_IDS"), "4,6")
    r = authorize(env, c1, method="POST", extra={"CONTENT_LENGTH": "", "CONTENT_TYPE": ""})
    t.check("POST with a session: granted", is_grant(r), r.raw[:300])
    r = authorize(env, c1, headers={"Accept": "application/json"})
    t.check("JSON client with a session: the same grant", is_grant(r), r.raw[:300])
    r = authorize(env, c1, headers={"Variable-REMOTE_USER": "u006", "Remote-User": "u006"})
    t.eq("a client's own Variable-REMOTE_USER/Remote-User do not change the user",
         r.header("Variable-REMOTE_USER"), "u001")

    r = authorize(env, None, headers={"Cookie": "other=1; dingauth_session=%s; x=y" % c1})
    t.check("the session cookie among others is found", is_grant(r), r.raw[:300])

    # Names that would break a header are made safe, never split it.
    dk.add_user(env, "u009", "un009", "Eve\r\nVariable-REMOTE_USER: u001", [1])
    c9 = dk.session(env, "u009")
    r = authorize(env, c9)
    t.check("a name with CR/LF cannot inject a header",
            is_grant(r) and r.header("Variable-REMOTE_USER") == "u009" and
            r.header("Variable-DINGTALK_NAME") == "Eve  Variable-REMOTE_USER: u001", r.raw[:400])

    # --- forged and broken cookies -------------------------------------------
    h1 = hashlib.sha256(c1.encode()).hexdigest()
    forged = {
        "random 64 hex": "ab" * 32,
        "the stored hash itself": h1,
        "uppercase copy": c1.upper(),
        "one character changed": c1[:-1] + ("0" if c1[-1] != "0" else "1"),
        "too short": c1[:63],
        "too long": c1 + "0",
        "SQL": "' OR '1'='1",
        "empty": "",
        "quoted": '"%s"x' % c1,
    }
    for name, value in forged.items():
        r = authorize(env, None, headers={"Cookie": "dingauth_session=%s" % value})
        t.check("forged cookie (%s): 302 to login" % name,
                r.status == 302 and not any(k.startswith("Variable-") for k, _ in r.headers),
                r.raw[:300])

    # --- leavers, disabled users, expiry ----------------------------------------
    c3 = dk.session(env, "u003")
    t.check("u003 granted before leaving", is_grant(authorize(env, c3)))
    dk.leave(env, "u003")
    r = authorize(env, c3)
    t.eq("a leaver is out at once", r.status, 302)
    t.eq("a leaver's session row is gone",
         env.sql("SELECT count(*) FROM sessions WHERE userid = 'u003'")[0][0], 0)
    c5 = dk.session(env, "u005")
    t.eq("an inactive user's session never works", authorize(env, c5).status, 302)
    c8 = dk.session(env, "u008")
    t.eq("an operator-disabled user is out", authorize(env, c8).status, 302)
    c6 = dk.session(env, "u006")
    t.check("u006 granted before being disabled", is_grant(authorize(env, c6)))
    env.sql("UPDATE users SET disabled = 1 WHERE userid = 'u006'")
    t.eq("disabling a user ends access at once", authorize(env, c6).status, 302)
    env.sql("UPDATE users SET disabled = 0 WHERE userid = 'u006'")
    env.sql("DELETE FROM users WHERE userid = 'u009'")
    t.eq("a deleted user's session is out", authorize(env, c9).status, 302)

    old = dk.session(env, "u001", age=28801, idle=0)
    t.eq("a session past DINGAUTH_SESSION_TTL is out", authorize(env, old).status, 302)
    idle = dk.session(env, "u001", age=4000, idle=3601)
    t.eq("a session idle past DINGAUTH_SESSION_IDLE is out", authorize(env, idle).status, 302)
    fresh = dk.session(env, "u001", age=4000, idle=3500)
    t.check("a session used within the idle limit is granted", is_grant(authorize(env, fresh)))
    seen = env.sql("SELECT last_seen FROM sessions WHERE id_hash = ?",
                   (hashlib.sha256(fresh.encode()).digest(),))[0][0]
    t.check("a granted request slides last_seen server-side",
            seen >= int(time.time()) - 5, seen)
    r = authorize(env, idle, headers={"Accept": "application/json"})
    t.eq("an expired session asking for JSON: 401", r.status, 401)

    # --- access rules --------------------------------------------------------------
    sess = {u: dk.session(env, u) for u in ("u001", "u002", "u003", "u004", "u006", "u007")}
    env.sql("UPDATE users SET active = 1, left_at = NULL WHERE userid = 'u003'")
    sess["u003"] = dk.session(env, "u003")

    def rule(extra, userid, **kw):
        return authorize(env, sess[userid], extra=extra, **kw)

    depts2 = {"DINGAUTH_REQUIRE_DEPTS": "2"}
    for u, why in (("u006", "in dept 2"), ("u003", "in 5, below 2"),
                   ("u002", "in 4, below 2"), ("u007", "in 7, two levels below 2")):
        t.check("REQUIRE_DEPTS=2: %s (%s) granted" % (u, why), is_grant(rule(depts2, u)))
    for u in ("u001", "u004"):
        r = rule(depts2, u)
        t.eq("REQUIRE_DEPTS=2: %s refused with 403" % u, r.status, 403)
        t.check("REQUIRE_DEPTS=2: %s's 403 is a page starting with '<'" % u,
                r.status_first and r.body.startswith("<") and
                r.header("Content-Type", ).startswith("text/html"), r.raw[:300])
        t.check("REQUIRE_DEPTS=2: %s's 403 says why (the department)" % u,
                "department 2" in r.body and "below" in r.body, r.body)
        t.check("REQUIRE_DEPTS=2: %s's 403 has no Variable-*" % u,
                not any(k.startswith("Variable-") for k, _ in r.headers), r.head)
    r = rule(depts2, "u004")
    t.check("403 page escapes the name (no markup from the directory)",
            "<script>" not in r.body and "&lt;script&gt;" in r.body, r.body)
    t.check("403 page is ASCII, under 8 KiB", r.raw.isascii() and len(r.raw) < 8192)
    r = rule(depts2, "u001")
    t.check("403 page names the account as character references",
            "&#x5F20;&#x4E09;" in r.body and "u001" in r.body, r.body)
    # An emoji (4 bytes), a broken sequence and a control character.
    dk.add_user(env, "u010", "un010", "x", [1])
    if env.pg is None:
        env.sql("UPDATE users SET name = CAST(X'F09F9880' || X'E4B8' || X'07' || X'41'"
                " AS TEXT) WHERE userid = 'u010'")
        want = "<b>&#x1F600;&#xFFFD;&#xFFFD; A</b>"
    else:
        # PostgreSQL stores no broken UTF-8: the emoji and the control.
        env.sql("UPDATE users SET name = ? WHERE userid = 'u010'",
                ("\U0001F600\x07A",))
        want = "<b>&#x1F600; A</b>"
    sess["u010"] = dk.session(env, "u010")
    r = rule(depts2, "u010")
    t.check("403 page: 4-byte UTF-8 as one reference, broken bytes as U+FFFD, "
            "controls as spaces",
            want in r.body and r.raw.isascii(), r.body)
    r = rule(depts2, "u001", headers={"Accept": "application/json"})
    t.check("403 for a JSON client is JSON",
            r.status == 403 and r.body.startswith("{") and
            r.json().get("error") == "forbidden", r.raw[:300])

    t.check("REQUIRE_DEPTS=4,6: u002 (in both) granted",
            is_grant(rule({"DINGAUTH_REQUIRE_DEPTS": "4,6"}, "u002")))
    t.check("REQUIRE_DEPTS=3: u004 (in 6, below 3) granted",
            is_grant(rule({"DINGAUTH_REQUIRE_DEPTS": "3"}, "u004")))
    t.eq("REQUIRE_DEPTS=5: u006 (in 2, above 5) refused",
         rule({"DINGAUTH_REQUIRE_DEPTS": "5"}, "u006").status, 403)
    t.eq("REQUIRE_DEPTS=1 (the root): everyone below it",
         rule({"DINGAUTH_REQUIRE_DEPTS": "1"}, "u007").status, 200)
    t.eq("REQUIRE_DEPTS=99 (no such department): refused",
         rule({"DINGAUTH_REQUIRE_DEPTS": "99"}, "u001").status, 403)

    users = {"DINGAUTH_REQUIRE_USERS": "u004,u007"}
    t.check("REQUIRE_USERS: a listed user granted", is_grant(rule(users, "u004")))
    t.check("REQUIRE_USERS: the other listed user granted", is_grant(rule(users, "u007")))
    r = rule(users, "u001")
    t.check("REQUIRE_USERS: an unlisted user gets 403 that says why",
            r.status == 403 and "named people" in r.body, r.raw[:400])
    both = {"DINGAUTH_REQUIRE_DEPTS": "3", "DINGAUTH_REQUIRE_USERS": "u003"}
    t.check("DEPTS=3 + USERS=u003: u003 granted by name", is_grant(rule(both, "u003")))
    t.check("DEPTS=3 + USERS=u003: u002 granted by department 6", is_grant(rule(both, "u002")))
    t.eq("DEPTS=3 + USERS=u003: u006 refused", rule(both, "u006").status, 403)
    t.eq("a rule does not let a session-less request through",
         authorize(env, None, extra=users).status, 302)

    r = authorize(env, sess["u001"], extra={"DINGAUTH_REQUIRE_DEPTS": "2,x"})
    t.check("a bad DINGAUTH_REQUIRE_DEPTS answers 500 naming the key, Status first",
            r.status == 500 and r.status_first and "DINGAUTH_REQUIRE_DEPTS" in r.body and
            r.body.startswith("<"), r.raw[:400])
    r = authorize(env, sess["u001"], extra={"DINGAUTH_DB": "/nonexistent/dir/x.db"})
    t.check("a database that cannot be opened fails closed (500, no grant)",
            r.status == 500 and not any(k.startswith("Variable-") for k, _ in r.headers),
            r.raw[:300])

    # --- responder: auth ---------------------------------------------------------------
    orig = "/app/x?a=1&b=2"
    r = responder(env, "auth", sess["u002"], uri=orig)
    t.eq("auth with a session: 200", r.status, 200)
    t.eq("auth: X-Auth-Request-User", r.header("X-Auth-Request-User"), "u002")
    t.eq("auth: X-Auth-Request-Userid", r.header("X-Auth-Request-Userid"), "u002")
    t.eq("auth: X-Auth-Request-Unionid", r.header("X-Auth-Request-Unionid"), "un002")
    t.eq("auth: X-Auth-Request-Name (UTF-8)", r.header("X-Auth-Request-Name"), "李四")
    t.eq("auth: X-Auth-Request-Dept-Ids", r.header("X-Auth-Request-Dept-Ids"), "4,6")
    t.check("auth: no Variable-* in the responder role",
            not any(k.startswith("Variable-") for k, _ in r.headers), r.head)
    r = responder(env, "auth", None, uri=orig)
    t.eq("auth without a session: 401", r.status, 401)
    t.eq("auth 401: X-Auth-Request-Redirect = login with the ORIGINAL URI as rd",
         r.header("X-Auth-Request-Redirect"), login_for(orig))
    t.check("auth 401: body is JSON", r.body.startswith("{"), r.body)
    r = responder(env, "auth", None, uri=orig,
                  headers={"X-Auth-Request-User": "u001", "Remote-User": "u001"})
    t.eq("auth: a client's X-Auth-Request-User gains nothing", r.status, 401)
    r = responder(env, "auth", sess["u001"], uri=orig, method="POST",
                  extra={"CONTENT_LENGTH": "", "CONTENT_TYPE": ""})
    t.eq("auth for a POST (nginx passes the main method): 200", r.status, 200)
    r = responder(env, "auth", sess["u001"], uri=orig, extra=depts2)
    t.eq("auth outside the rule: 403", r.status, 403)
    reason = r.header("X-Auth-Request-Reason") or ""
    t.check("auth 403: X-Auth-Request-Reason says why, in plain ASCII",
            "department 2" in reason and reason.isascii() and "<" not in reason, reason)
    leaver = dk.session(env, "u002")
    dk.leave(env, "u002")
    t.eq("auth: a leaver is out at once", responder(env, "auth", leaver, uri=orig).status, 401)
    env.sql("UPDATE users SET active = 1, left_at = NULL WHERE userid = 'u002'")

    # --- responder: whoami ---------------------------------------------------------------
    r = responder(env, "whoami", sess["u004"])
    j = r.json() if r.body.startswith("{") else {}
    t.eq("whoami: 200 JSON", (r.status, r.header("Content-Type")), (200, "application/json"))
    t.eq("whoami: fields", {k: j.get(k) for k in ("userid", "unionid", "name", "dept_ids")},
         {"userid": "u004", "unionid": "un004", "name": dk.USERS["u004"][1], "dept_ids": [6]})
    t.eq("whoami: allowed without a rule", j.get("allowed"), True)
    r = responder(env, "whoami", sess["u002"])
    t.eq("whoami: dept_ids is an array of numbers", r.json().get("dept_ids"), [4, 6])
    r = responder(env, "whoami", sess["u004"], extra=depts2)
    t.eq("whoami outside the rule: 200 with allowed false",
         (r.status, r.json().get("allowed")), (200, False))
    r = responder(env, "whoami", None)
    t.check("whoami without a session: 401 JSON",
            r.status == 401 and r.json().get("error") == "unauthenticated", r.raw[:300])
    r = responder(env, "whoami", "f" * 64)
    t.eq("whoami with a forged cookie: 401", r.status, 401)
    r = responder(env, "whoami", sess["u001"], method="POST",
                  extra={"CONTENT_LENGTH": "", "CONTENT_TYPE": ""})
    t.check("whoami by POST: 405 with Allow", r.status == 405 and r.header("Allow"), r.raw[:200])
    r = responder(env, "login", sess["u001"])
    t.eq("responder route other than auth/whoami: 404", r.status, 404)
    r = env.cgi("authorize.fcgi", path="/dingauth/whoami",
                headers={"Cookie": dk.cookie_header(sess["u001"])},
                extra_env={"SCRIPT_NAME": "/dingauth", "PATH_INFO": "/whoami"})
    t.eq("routes on SCRIPT_NAME + PATH_INFO", r.status, 200)

    r = authorize(env, sess["u001"])
    t.check("nothing on stderr for a plain grant", r.stderr == "", r.stderr)

bad = [(w, rc, err) for w, rc, err in RUNS
       if rc != 0 or "Sanitizer" in err or "runtime error" in err]
t.check("all %d runs exited 0 without a sanitizer report" % len(RUNS),
        not bad, "\n".join("%s: rc %s %s" % b for b in bad[:5]))

t.done()
