"""Sessions and pages (issue 12), through the real programs and lighttpd:

- sign-out: GET shows a page with a sign-out button and changes nothing;
  POST ends the session only from a page of this site (Sec-Fetch-Site,
  else Origin); a cross-site POST changes nothing;
- cookies: "__Host-" names when Secure (Path=/, no Domain), the plain
  name ignored then; two cookies of one name with different values: none
  wins;
- whoami: X-Content-Type-Options: nosniff on every answer;
- the operator's terminal: control characters in names are escaped in
  every text output of dingauth, and JSON output still reads back the
  same name.

Run with /usr/bin/python3 tests/test_signout_cookies.py (tests/run does).
"""
import hashlib
import json
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploykit as dk  # noqa: E402
from harness import T, Env, Lighttpd, http  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402

t = T()


def alive(env, sid):
    return env.sql("SELECT count(*) FROM sessions WHERE id_hash = ?",
                   (hashlib.sha256(sid.encode()).digest(),))[0][0] == 1


def logout(env, sid, method="POST", headers=None, query="", cookie_name="dingauth_session"):
    h = {"Cookie": "%s=%s" % (cookie_name, sid)}
    h.update(headers or {})
    return env.cgi("login.fcgi", path="/dingauth/logout", method=method,
                   query=query, headers=h)


def section_signout():
    with FakeDingTalk() as fk, Env(fake=fk) as env:
        dk.seed(env)
        sid = env.open_session("u001")
        r = logout(env, sid, method="GET", query="rd=%2Fback%22%3E")
        t.check("GET logout: 200, a page with a sign-out button that POSTs",
                r.status == 200 and 'method="post"' in r.body and
                'action="/dingauth/logout"' in r.body and "<button" in r.body,
                r.head + r.body[:800])
        t.check("GET logout: rd kept in the form, escaped",
                'name="rd" value="/back%22%3E"' in r.body, r.body[:1500])
        t.check("GET logout: the session lives, no cookie cleared",
                alive(env, sid) and not r.all("Set-Cookie"), r.head)
        for name, hdrs in (("no Origin, no Sec-Fetch-Site", {}),
                           ("Origin of another site", {"Origin": "https://evil.example"}),
                           ("Origin null", {"Origin": "null"}),
                           ("Sec-Fetch-Site cross-site",
                            {"Sec-Fetch-Site": "cross-site", "Origin": "http://127.0.0.1:8080"}),
                           ("Sec-Fetch-Site same-site (a sibling)",
                            {"Sec-Fetch-Site": "same-site"})):
            r = logout(env, sid, headers=hdrs)
            t.check("POST logout, %s: 403, the sign-out page, nothing changed" % name,
                    r.status == 403 and "<button" in r.body and alive(env, sid)
                    and not r.all("Set-Cookie"), r.head + r.body[:300])
        for name, hdrs in (("Sec-Fetch-Site same-origin", {"Sec-Fetch-Site": "same-origin"}),
                           ("Origin of DINGAUTH_PUBLIC_URL", {"Origin": "http://127.0.0.1:8080"}),
                           ("Origin of the request's Host",
                            {"Origin": "http://login.example:81", "Host": "login.example:81"})):
            sid = env.open_session("u001")
            r = logout(env, sid, headers=hdrs)
            c = r.cookies().get("dingauth_session", ("?", ""))
            t.check("POST logout, %s: 302 to the login page, cookie cleared, "
                    "session ended" % name,
                    r.status == 302 and r.header("Location") == "/dingauth/login"
                    and c[0] == "" and "Max-Age=0" in c[1] and not alive(env, sid),
                    r.head)

        # Through lighttpd, as a browser sends it.
        with Lighttpd(env) as lt:
            sid = env.open_session("u002")
            st, hs, body = http("GET", lt.url + "/dingauth/logout",
                                headers={"Cookie": "dingauth_session=" + sid})
            t.check("lighttpd: GET logout shows the button, session kept",
                    st == 200 and b"<button" in body and alive(env, sid), st)
            st, hs, body = http("POST", lt.url + "/dingauth/logout", body="rd=%2F",
                                headers={"Cookie": "dingauth_session=" + sid,
                                         "Content-Type": "application/x-www-form-urlencoded",
                                         "Origin": "https://evil.example",
                                         "Sec-Fetch-Site": "cross-site"})
            t.check("lighttpd: a cross-site POST cannot sign out", st == 403 and
                    alive(env, sid), st)
            st, hs, body = http("POST", lt.url + "/dingauth/logout", body="rd=%2F",
                                headers={"Cookie": "dingauth_session=" + sid,
                                         "Content-Type": "application/x-www-form-urlencoded",
                                         "Origin": lt.url})
            t.check("lighttpd: a POST from the site itself signs out",
                    st == 302 and not alive(env, sid), (st, hs))


def section_cookies():
    with FakeDingTalk() as fk, Env(fake=fk, DINGAUTH_COOKIE_SECURE=1) as env:
        dk.seed(env)
        r = env.cgi("login.fcgi", path="/dingauth/login", query="rd=/x")
        sets = r.all("Set-Cookie")
        st = [v for v in sets if v.startswith("__Host-dingauth_state=")]
        t.check("Secure: the state cookie is __Host-dingauth_state; Secure, Path=/, "
                "no Domain", len(st) == 1 and "; Secure" in st[0] and "Path=/" in st[0]
                and "domain" not in st[0].lower(), sets)
        t.check("Secure: no unprefixed cookie is set",
                not any(v.startswith("dingauth_") for v in sets), sets)
        sid = env.open_session("u001")
        e = {"SCRIPT_NAME": "", "REQUEST_URI": "/protected/x", "QUERY_STRING": ""}
        r = env.cgi("authorize.fcgi", path="/", role="AUTHORIZER", extra_env=e,
                    headers={"Cookie": "__Host-dingauth_session=" + sid})
        t.eq("Secure: __Host-dingauth_session is the session", r.status, 200)
        r = env.cgi("authorize.fcgi", path="/", role="AUTHORIZER", extra_env=e,
                    headers={"Cookie": "dingauth_session=" + sid})
        t.eq("Secure: a plain dingauth_session (settable by a sibling) is ignored",
             r.status, 302)
        # The whole login with the prefixed names.
        r = env.cgi("login.fcgi", path="/dingauth/login", query="rd=/x")
        state = r.cookies().get("__Host-dingauth_state", (None,))[0]
        code = fk.code(userid="u003", kind="tmp")["code"]
        r = env.cgi("exchange.fcgi", path="/dingauth/exchange",
                    query=urllib.parse.urlencode({"code": code, "state": state}),
                    headers={"Cookie": "__Host-dingauth_state=%s" % state})
        c = [v for v in r.all("Set-Cookie") if v.startswith("__Host-dingauth_session=")]
        t.check("Secure: a login sets __Host-dingauth_session (Secure, Path=/)",
                r.status == 302 and len(c) == 1 and "; Secure" in c[0] and
                "Path=/" in c[0], r.head + r.body[:300])

    with FakeDingTalk() as fk, Env(fake=fk) as env:
        dk.seed(env)
        good = env.open_session("u001")
        other = env.open_session("u002")
        e = {"SCRIPT_NAME": "", "REQUEST_URI": "/protected/x", "QUERY_STRING": ""}
        for name, cookie, want in (
                ("one valid, one forged", "dingauth_session=%s; dingauth_session=%s"
                 % (good, "0" * 64), 302),
                ("one forged, one valid", "dingauth_session=%s; dingauth_session=%s"
                 % ("0" * 64, good), 302),
                ("two valid sessions of two people", "dingauth_session=%s; "
                 "dingauth_session=%s" % (other, good), 302),
                ("the same value twice", "dingauth_session=%s; dingauth_session=%s"
                 % (good, good), 200)):
            r = env.cgi("authorize.fcgi", path="/", role="AUTHORIZER", extra_env=e,
                        headers={"Cookie": cookie})
            t.eq("two session cookies, %s: %d" % (name, want), r.status, want)
        r = env.cgi("authorize.fcgi", path="/", role="AUTHORIZER", extra_env=e,
                    headers={"Cookie": "dingauth_session=%s; dingauth_session=%s"
                             % (good, other)})
        t.check("two session cookies: logged", "two dingauth_session cookies" in r.stderr,
                r.stderr)
        r = env.cgi("login.fcgi", path="/dingauth/login", query="rd=/x")
        state = r.cookies().get("dingauth_state", (None,))[0]
        code = fk.code(userid="u003", kind="tmp")["code"]
        r = env.cgi("exchange.fcgi", path="/dingauth/exchange",
                    query=urllib.parse.urlencode({"code": code, "state": state}),
                    headers={"Cookie": "dingauth_state=%s; dingauth_state=%s"
                             % ("A" * 43, state)})
        t.check("two state cookies: the sign-in is refused (400), no session",
                r.status == 400 and "dingauth_session" not in r.cookies(), r.head)


def section_whoami():
    with FakeDingTalk() as fk, Env(fake=fk) as env:
        dk.seed(env)
        sid = env.open_session("u001")
        cases = (("200", {"Cookie": "dingauth_session=" + sid}, "GET", None),
                 ("401", {}, "GET", None),
                 ("405", {}, "POST", None),
                 ("500", {"Cookie": "dingauth_session=" + sid}, "GET",
                  {"DINGAUTH_DB": os.path.join(env.dir, "none", "x.db")}))
        for want, h, method, extra in cases:
            r = env.cgi("authorize.fcgi", path="/dingauth/whoami", method=method,
                        headers=h, extra_env=extra)
            t.check("whoami %s: nosniff" % want, str(r.status) == want and
                    r.header("X-Content-Type-Options") == "nosniff", r.head)


EVIL = "\x1b]0;owned\x07Eve\x1b[2J\x7f\u009b31m\r\nforged line\tx"


def raw_controls(text):
    return [c for c in text if (ord(c) < 0x20 and c != "\n") or ord(c) == 0x7f
            or 0x80 <= ord(c) <= 0x9f]


def section_terminal():
    with Env() as env:
        now = int(time.time())
        env.sql("INSERT INTO users (userid, unionid, name, title, active, disabled, "
                "source, created_at, updated_at) VALUES ('u666', 'un666', ?, ?, 1, 0, "
                "'sync', ?, ?)", (EVIL, EVIL, now, now))
        env.sql("INSERT INTO login_requests (userid, unionid, name, status, attempts,"
                " created_at, updated_at) VALUES ('u777', 'un777', ?, 'pending', 1, ?, ?)",
                (EVIL, now, now))
        env.open_session("u666")
        for args in (("users", "list"), ("users", "show", "u666"),
                     ("requests", "list"), ("sessions", "list")):
            r = env.cmd(*args)
            bad = raw_controls(r.stdout + r.stderr)
            t.check("%s: no raw control character in the output" % " ".join(args),
                    r.returncode == 0 and not bad and "Eve" in r.stdout,
                    (r.returncode, bad, r.stdout[-600:], r.stderr[-300:]))
            t.check("%s: a newline in a name cannot forge a line" % " ".join(args),
                    not any(line.startswith("forged line")
                            for line in r.stdout.splitlines()), r.stdout)
        for args in (("users", "show", EVIL), ("sessions", "revoke", EVIL),
                     ("users", "disable", EVIL)):
            # The operator's own argument echoed back: newline and tab may
            # stay, no control a terminal obeys (ESC, BEL, CR, DEL, C1).
            r = env.cmd(*args)
            bad = [c for c in raw_controls(r.stdout + r.stderr) if c != "\t"]
            t.check("%s <name>: refused, no raw control character on stderr"
                    % " ".join(args[:2]), r.returncode != 0 and r.stderr.strip()
                    and not bad, (r.returncode, bad, r.stderr[-300:]))
        for args in (("users", "list", "--json"), ("requests", "list", "--json"),
                     ("users", "show", "u666", "--json")):
            r = env.cmd(*args)
            try:
                doc = json.loads(r.stdout)
            except ValueError as e:
                doc = e
            names = [o.get("name") for o in (doc if isinstance(doc, list) else [doc])
                     if isinstance(o, dict)]
            t.check("%s: raw-control free, and the name reads back the same"
                    % " ".join(args), not raw_controls(r.stdout) and EVIL in names,
                    (r.stdout[-500:], names))


for name, fn in (("signout", section_signout), ("cookies", section_cookies),
                 ("whoami", section_whoami), ("terminal", section_terminal)):
    try:
        fn()
    except Exception:  # noqa: BLE001
        import traceback
        t.check("%s: ran without an exception" % name, False, traceback.format_exc())
t.done()
