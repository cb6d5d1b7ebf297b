#!/usr/bin/python3
# -*- coding: utf-8 -*-
"""The event pipeline (issue 11): a leave is never late, a failing event
blocks nothing, permanent failures end as failed, and `dingauth worker`.

    /usr/bin/python3 tests/test_events.py [-k SUBSTRING]

Pushes are encrypted by the fake DingTalk (tests/fake_dingtalk.py) and sent
to callback.fcgi as plain CGI (Env.cgi) or through a real lighttpd.
Prints "ok - ..." / "not ok - ..." per check; exits 1 if any failed.
"""
import hashlib
import json
import os
import secrets
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import T, Env  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402

CALLBACK = "/dingauth/callback"
USER_GET = "/topapi/v2/user/get"
ONLY = None
if len(sys.argv) > 2 and sys.argv[1] == "-k":
    ONLY = sys.argv[2]

t = T()


# --------------------------------------------------------------------------
# helpers

def reply_ok(fk, status, body):
    if status != 200:
        return False
    try:
        obj = json.loads(body)
    except ValueError:
        return False
    d = fk.decrypt(obj)
    return bool(d.get("ok")) and d.get("plaintext") == "success"


def cgi_env(env, enc):
    e = env.environ()
    e.update({"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "POST",
              "SCRIPT_NAME": CALLBACK, "QUERY_STRING": enc["query"],
              "REQUEST_URI": CALLBACK + "?" + enc["query"],
              "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080",
              "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
              "CONTENT_TYPE": "application/json",
              "CONTENT_LENGTH": str(len(enc["body"].encode()))})
    return e


def push(env, fk, event):
    """callback.fcgi as plain CGI, to the end of its work; (ok, result)."""
    enc = fk.encrypt(event)
    r = env.cgi("callback.fcgi", CALLBACK, method="POST", query=enc["query"],
                body=enc["body"], content_type="application/json")
    return reply_ok(fk, r.status, r.body), r


def push_answered(env, fk, event):
    """callback.fcgi as plain CGI: returns once the answer is out, with the
    process (still applying, perhaps) and whether the answer was success."""
    enc = fk.encrypt(event)
    p = subprocess.Popen([os.path.join(harness.CGI_DIR, "callback.fcgi")],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=cgi_env(env, enc))
    p.stdin.write(enc["body"].encode())
    p.stdin.close()
    out = p.stdout.read().decode()
    head, _, body = out.partition("\r\n\r\n")
    return p, head.startswith("Status: 200") and reply_ok(fk, 200, body)


def wait_for(cond, timeout=15.0):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def user(env, userid):
    rows = env.sql("SELECT active, left_at, name, title FROM users WHERE userid = ?",
                   (userid,))
    if not rows:
        return None
    return {"active": rows[0][0], "left_at": rows[0][1], "name": rows[0][2],
            "title": rows[0][3]}


def open_session(env, userid):
    sid = secrets.token_hex(32)
    now = int(time.time())
    env.sql("INSERT INTO sessions (id_hash, userid, created_at, last_seen, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (hashlib.sha256(sid.encode()).digest(), userid, now, now, now + 3600))
    return sid


def sessions_of(env, userid):
    return env.sql("SELECT count(*) FROM sessions WHERE userid = ?", (userid,))[0][0]


def events(env):
    return env.sql("SELECT id, event_type, state FROM events ORDER BY id")


def user_gets(fk, userid):
    return [e for e in fk.log(USER_GET) if (e.get("json") or {}).get("userid") == userid]


def section(name):
    return ONLY is None or ONLY in name


def run_section(name, fn):
    if not section(name):
        return
    print("# %s" % name, flush=True)
    try:
        fn()
    except Exception:
        t.check("%s: ran without a Python exception" % name, False,
                traceback.format_exc())


# --------------------------------------------------------------------------
# 1. a leave is applied with its store, whatever is pending

def section_leave_behind_pending():
    with FakeDingTalk() as fk, Env(fake=fk, DINGAUTH_HTTP_RETRIES=0) as env:
        p = env.cmd("sync")
        t.check("leave behind pending: the directory is synced first", p.returncode == 0, p)
        open_session(env, "u001")
        fk.fault(USER_GET, "http500", count=50)
        ok, r = push(env, fk, {"EventType": "user_modify_org", "UserId": ["u002"]})
        t.check("leave behind pending: an event DingTalk fails on is answered", ok, r.stderr)
        t.eq("leave behind pending: it stays pending", events(env),
             [(1, "user_modify_org", "pending")])
        ok, r = push(env, fk, {"EventType": "user_leave_org", "UserId": ["u001"]})
        t.check("leave behind pending: the leave is answered success", ok, r.stderr)
        u = user(env, "u001")
        t.check("leave behind pending: the leaver is inactive at once",
                u is not None and u["active"] == 0 and u["left_at"], u)
        t.eq("leave behind pending: the leaver's sessions are gone", sessions_of(env, "u001"), 0)
        t.eq("leave behind pending: the leave is applied, the older event still pending",
             events(env), [(1, "user_modify_org", "pending"), (2, "user_leave_org", "applied")])
        # A department removal too.
        ok, r = push(env, fk, {"EventType": "org_dept_remove", "DeptId": [6]})
        t.check("leave behind pending: org_dept_remove is applied at once",
                ok and env.sql("SELECT count(*) FROM departments WHERE dept_id = 6") == [(0,)] and
                env.sql("SELECT state FROM events WHERE event_type = 'org_dept_remove'") ==
                [("applied",)], r.stderr)


def section_late_answer():
    """DingTalk's answer to a question asked before a leave arrives after
    the leave was applied: it must not bring the leaver back."""
    with FakeDingTalk() as fk, Env(fake=fk) as env:
        env.cmd("sync")
        open_session(env, "u003")
        # The fake answers at once (u003 active) but holds the answer 2 s.
        fk.fault(USER_GET, "slow", delay_ms=2000, after=True, match={"userid": "u003"})
        proc, ok = push_answered(env, fk, {"EventType": "user_modify_org", "UserId": ["u003"]})
        t.check("late answer: the modify push is answered", ok)
        t.check("late answer: DingTalk is being asked",
                wait_for(lambda: len(user_gets(fk, "u003")) >= 0 and proc.poll() is None, 1))
        time.sleep(0.3)
        fk.delete_user("u003")
        ok, r = push(env, fk, {"EventType": "user_leave_org", "UserId": ["u003"]})
        t.check("late answer: the leave is answered", ok, r.stderr)
        t.eq("late answer: the leaver is out at once", (user(env, "u003") or {}).get("active"), 0)
        proc.wait(30)
        err = proc.stderr.read().decode()
        u = user(env, "u003")
        t.check("late answer: the old answer did not re-activate the leaver",
                u is not None and u["active"] == 0, (u, err))
        t.eq("late answer: no session came back", sessions_of(env, "u003"), 0)
        t.eq("late answer: DingTalk was asked again, after the leave",
             [e["errcode"] for e in user_gets(fk, "u003")], [0, 60121])
        t.eq("late answer: both events applied",
             [r[2] for r in events(env)], ["applied", "applied"])

        # A rehire: DingTalk says they are back, and they are.
        fk.put_user({"userid": "u003", "unionid": "un003", "name": "王五",
                     "title": "Rehired", "dept_id_list": [5]})
        ok, r = push(env, fk, {"EventType": "user_add_org", "UserId": ["u003"]})
        u = user(env, "u003")
        t.check("rehire: a user_add_org after the leave makes them active again",
                ok and u is not None and u["active"] == 1 and u["title"] == "Rehired" and
                u["left_at"] is None, (u, r.stderr))


SECTIONS = [
    ("leave behind pending", section_leave_behind_pending),
    ("late answer", section_late_answer),
]

if __name__ == "__main__":
    for name, fn in SECTIONS:
        run_section(name, fn)
    t.done()
