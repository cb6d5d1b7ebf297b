"""The pages beyond the flows: the default login flow, the notice for a
session ended by a leave or `users disable`, and branding through
DINGAUTH_TEMPLATE_DIR (overrides applied, broken ones falling back with a
log line, escaping kept, no path from a request).

Run: /usr/bin/python3 tests/test_pages.py
"""
import os
import sys
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

t.done()
