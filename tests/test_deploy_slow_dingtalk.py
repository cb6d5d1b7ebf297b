# -*- coding: utf-8 -*-
"""The shipped deployments when DingTalk is slow: lighttpd from
deploy/lighttpd/dingauth.conf, and nginx with the programs run as
deploy/systemd/dingauth-fcgi@.service runs them (spawn-fcgi, fcgi-children).

The fake DingTalk answers the login's code exchange and the callback's user
lookup DELAY seconds late. While three people sign in at once, DingTalk
pushes two address-book events: the copy of callback.fcgi that answered the
first push is busy applying it (it asks DingTalk for the user), and the
second push must still be answered within DingTalk's 1500 ms. With one
copy of each program (the examples before), the second push waited for the
first event and the logins finished one after another (DELAY, 2 DELAY,
3 DELAY). Each check prints the times it measured.
"""
import os
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Env, T  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402
import deploykit as dk  # noqa: E402

DELAY = 3.0                     # seconds DingTalk takes to answer
DINGTALK_LIMIT_MS = 1500        # DingTalk's limit for a callback answer
LOGIN_PATH = "/sns/get_persistent_code"     # the login's code exchange
USER_PATH = "/topapi/v2/user/get"           # applying user_modify_org


def login(srv, fake, userid, out):
    """One browser: the login page (state cookie), DingTalk's code for
    userid, then exchange. out[userid] = (seconds, status, session?)."""
    try:
        st, hs, body = srv.get("/dingauth/login?rd=%2Fprotected%2Fapp.cgi")
        state = dk.set_cookie(hs, "dingauth_state") or ""
        code = fake.code(userid=userid)["code"]
        t0 = time.time()
        st, hs, body = srv.get(
            "/dingauth/exchange?" + urllib.parse.urlencode(
                {"code": code, "state": state}),
            headers={"Cookie": "dingauth_state=%s" % state})
        out[userid] = (time.time() - t0, st,
                       bool(dk.set_cookie(hs, "dingauth_session")))
    except Exception as e:       # reported by the checks as a missing login
        out[userid] = (None, repr(e), False)


def push(fake, srv, userid):
    return fake.push(srv.url + "/dingauth/callback",
                     {"EventType": "user_modify_org", "UserId": [userid],
                      "TimeStamp": str(int(time.time() * 1000))})


def slow_dingtalk(t, env, srv, fake):
    S = srv.name
    warm = {}
    login(srv, fake, "u001", warm)      # tokens cached, programs started
    t.check("%s: a login with DingTalk answering at once" % S,
            warm["u001"][1] == 302 and warm["u001"][2], warm)
    fake.clear_log()
    fake.fault(LOGIN_PATH, "slow", count=3, delay_ms=int(DELAY * 1000))
    fake.fault(USER_PATH, "slow", count=1, delay_ms=int(DELAY * 1000))
    out = {}
    users = ("u002", "u003", "u006")
    threads = [threading.Thread(target=login, args=(srv, fake, u, out))
               for u in users]
    for th in threads:
        th.start()
    time.sleep(0.3)                     # the logins now wait on DingTalk
    first = push(fake, srv, "u003")
    time.sleep(0.3)                     # its copy now applies the event
    second = push(fake, srv, "u004")
    # The slow answer for the user lookup has been taken (and is not due
    # before DELAY): a copy is applying the first event right now.
    applying = not any(f["path"] == USER_PATH for f in fake.faults())
    for th in threads:
        th.join(60)
    print("# %s: DingTalk %.1f s slow: push answers %s ms and %s ms; "
          "logins %s" % (S, DELAY, first.get("elapsed_ms"),
                         second.get("elapsed_ms"),
                         ", ".join("%.2f s" % out[u][0] for u in users
                                   if out.get(u) and out[u][0] is not None)))
    t.check("%s: the first push is answered success within %d ms" %
            (S, DINGTALK_LIMIT_MS), first.get("reply_ok") and
            first.get("elapsed_ms", 1e9) < DINGTALK_LIMIT_MS, first)
    t.check("%s: applying the first event waits on slow DingTalk" % S,
            applying, fake.faults())
    t.check("%s: the next push, while a copy applies the first event and "
            "three logins wait on DingTalk, is answered success within "
            "%d ms" % (S, DINGTALK_LIMIT_MS), second.get("reply_ok") and
            second.get("elapsed_ms", 1e9) < DINGTALK_LIMIT_MS, second)
    done = [u for u in users if out.get(u) and out[u][1] == 302
            and out[u][2]]
    t.eq("%s: three concurrent logins with slow DingTalk all open a "
         "session" % S, done, list(users))
    times = sorted(out[u][0] for u in done)
    t.check("%s: each login really waited on DingTalk (>= %.1f s)"
            % (S, DELAY * 0.9), len(times) == 3 and
            times[0] >= DELAY * 0.9, out)
    t.check("%s: the logins are not serialised: at least two end within "
            "%.1f s" % (S, DELAY * 1.5), len(times) >= 2 and
            times[1] < DELAY * 1.5, out)
    t.check("%s: all three end within %.1f s (DingTalk's delay, not three "
            "of them)" % (S, DELAY * 1.5), len(times) == 3 and
            times[2] < DELAY * 1.5, out)


def run(t, server_class):
    with FakeDingTalk() as fake, Env(fake=fake) as env:
        dk.seed(env)
        dk.open_up(env.dir)
        dk.open_up(os.path.join(dk.ROOT, "static"))
        srv = server_class(env)
        try:
            srv.start()
            slow_dingtalk(t, env, srv, fake)
        except Exception as e:
            t.check("%s: slow DingTalk scenario ran to the end" % srv.name,
                    False, "%r\n%s" % (e, srv.log()))
        finally:
            srv.stop()
            fake.clear_faults()
        if t.failed:
            for line in srv.log().splitlines()[-40:]:
                print("#   " + line)


t = T()
run(t, dk.Lighttpd)
run(t, dk.Nginx)
t.done()
