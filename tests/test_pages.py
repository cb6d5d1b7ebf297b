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
from harness import T, Env, qs  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402

t = T()


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


def seed(env, userid, unionid, name, depts=(1,)):
    env.sql("INSERT INTO users (userid, unionid, name, active, source,"
            " created_at, updated_at) VALUES (?,?,?,1,'sync',1,1)",
            (userid, unionid, name))
    for d in depts:
        env.sql("INSERT INTO user_depts (userid, dept_id) VALUES (?,?)",
                (userid, d))


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
    import html
    return html.escape(s, quote=True)


with FakeDingTalk() as fk, Env(fake=fk) as env:
    seed(env, "u001", "un001", "张三")
    seed(env, "u006", "un006", "Alice Smith", depts=(2,))
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

t.done()
