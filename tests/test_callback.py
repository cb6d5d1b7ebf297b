#!/usr/bin/python3
# -*- coding: utf-8 -*-
"""callback.fcgi, `dingauth callback ...` and `dingauth events ...` (issue 3).

    /usr/bin/python3 tests/test_callback.py [-k SUBSTRING]

Every push is made by the fake DingTalk with its own encryptor
(tests/fake_dingtalk.py, /_fake/encrypt and /_fake/push), never by ours.
Pushes go to callback.fcgi both as plain CGI (Env.cgi) and under a real
lighttpd (harness.Lighttpd, FastCGI), and the directory, the sessions and
the events table are checked afterwards. Prints "ok - ..." / "not ok - ..."
per check; exits 1 if any failed.
"""
import concurrent.futures
import json
import os
import secrets
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import T, Env, Lighttpd, wait_for  # noqa: E402
from fakedt import FakeDingTalk  # noqa: E402

CALLBACK = "/dingauth/callback"
ONLY = None
if len(sys.argv) > 2 and sys.argv[1] == "-k":
    ONLY = sys.argv[2]

t = T()


def now_ms():
    return int(time.time() * 1000)


# --------------------------------------------------------------------------
# helpers

class Sent:
    """What one push got back, the same for CGI and lighttpd."""

    def __init__(self, status, body, reply_ok, detail, elapsed_ms=0, rc=0):
        self.status = status
        self.body = body
        self.reply_ok = reply_ok
        self.detail = detail
        self.elapsed_ms = elapsed_ms
        self.rc = rc

    def __repr__(self):
        return "status=%r reply_ok=%r rc=%r\n%s" % (
            self.status, self.reply_ok, self.rc, self.detail)


def reply_ok(fk, status, body, **opts):
    """Does the fake accept this answer as DingTalk's 'success'?"""
    if status != 200:
        return False
    try:
        obj = json.loads(body)
    except ValueError:
        return False
    if not isinstance(obj, dict) or set(obj) != {"msg_signature", "timeStamp", "nonce", "encrypt"}:
        return False
    if not all(isinstance(v, str) for v in obj.values()):
        return False
    d = fk.decrypt(obj, **{k: v for k, v in opts.items() if k in ("receiver", "token", "aes_key")})
    return d.get("ok") and d.get("plaintext") == "success"


def cgi_send(env, fk, event, query=None, body=None, method="POST", path=CALLBACK,
             content_type="application/json", **opts):
    """Have the fake encrypt event, then run callback.fcgi as CGI with it."""
    if query is None or body is None:
        enc = fk.encrypt(event, **opts)
        query = enc["query"] if query is None else query
        body = enc["body"] if body is None else body
    r = env.cgi("callback.fcgi", path, method=method, query=query, body=body,
                content_type=content_type)
    ok = reply_ok(fk, r.status, r.body, **opts) if r.status == 200 else False
    return Sent(r.status, r.body, ok, r.head + "\n" + r.body + "\n" + r.stderr, rc=r.rc)


def http_send(lt, fk, event, **opts):
    """Have the fake encrypt and POST event to lighttpd, like DingTalk."""
    res = fk.push(lt.url + CALLBACK, event, **opts)
    return Sent(res["status"], res["body"], res["reply_ok"],
                "%s\n%s" % (res.get("reply_error"), res["body"]), res["elapsed_ms"])


def have_events(env):
    """Is there an events table? (dingauth init made it before any
    program started; kept for a database a test removed.)"""
    return env.has_table("events")


def count_events(env):
    """Rows in events; 0 when the database is not there yet."""
    if not have_events(env):
        return 0
    return env.sql("SELECT count(*) FROM events")[0][0]


def pending(env):
    if not have_events(env):
        return 0
    return env.sql("SELECT count(*) FROM events WHERE state = 'pending'")[0][0]


def user(env, userid):
    rows = env.sql("SELECT userid, name, title, admin, active, source, left_at "
                   "FROM users WHERE userid = ?", (userid,))
    if not rows:
        return None
    r = rows[0]
    return {"userid": r[0], "name": r[1], "title": r[2], "admin": r[3],
            "active": r[4], "source": r[5], "left_at": r[6]}


def depts_of(env, userid):
    return sorted(r[0] for r in env.sql(
        "SELECT dept_id FROM user_depts WHERE userid = ?", (userid,)))


def dept(env, dept_id):
    rows = env.sql("SELECT dept_id, parent_id, name FROM departments WHERE dept_id = ?",
                   (dept_id,))
    return rows[0] if rows else None


def directory(env):
    """The directory without timestamps: to compare two states."""
    return (sorted(env.sql("SELECT userid, unionid, name, title, job_number, email, mobile,"
                           " admin, active, disabled FROM users")),
            sorted(env.sql("SELECT userid, dept_id FROM user_depts")),
            sorted(env.sql("SELECT dept_id, parent_id, name FROM departments")))


def cmd_json(env, *args, **kw):
    p = env.cmd(*args, **kw)
    try:
        return p, json.loads(p.stdout)
    except ValueError:
        return p, None


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


def start_lighttpd(env):
    lt = Lighttpd(env)
    lt.start()
    return lt


# --------------------------------------------------------------------------
# 1. every event type, through CGI and through lighttpd

def scenario(label, env, fk, send, settle):
    """Walk through every address-book event; send(event, **opts) -> Sent;
    settle() waits until the program has applied what it stored."""
    def push(name, event, **opts):
        s = send(event, **opts)
        t.check("%s: %s answered 200 with the encrypted success" % (label, name),
                s.status == 200 and s.reply_ok and s.rc == 0, s)
        settle()
        return s

    # check_url: answered, not stored.
    push("check_url", {"EventType": "check_url"})
    t.eq("%s: check_url is not stored" % label, count_events(env), 0)

    # user_add_org, legacy spelling (UserId, TimeStamp as a string).
    push("user_add_org (UserId, TimeStamp string)",
         {"EventType": "user_add_org", "TimeStamp": str(now_ms()), "UserId": ["u002"],
          "CorpId": "dingcorp0001", "OptStaffId": "u001"})
    u = user(env, "u002")
    t.check("%s: user_add_org added u002 from user/get" % label,
            u is not None and u["name"] == "李四" and u["active"] == 1 and
            u["source"] == "callback", u)
    t.eq("%s: user_add_org stored u002's departments" % label, depts_of(env, "u002"), [4, 6])
    t.eq("%s: the event is applied" % label,
         env.sql("SELECT event_type, state, attempts, last_error FROM events"),
         [("user_add_org", "applied", 1, None)])

    # user_modify_org, console spelling (userId, timeStamp number, eventId).
    fk.put_user({"userid": "u002", "unionid": "un002", "name": "李四", "title": "架构师",
                 "dept_id_list": [5], "email": "lisi@demo.example"})
    push("user_modify_org (userId, timeStamp number, eventId)",
         {"EventType": "user_modify_org", "EventTime": now_ms(), "CorpId": "dingcorp0001",
          "BizId": "biz-" + secrets.token_hex(4), "eventId": "ev-" + secrets.token_hex(8),
          "timeStamp": now_ms(), "userId": ["u002"]},
         sigparam="msg_signature", tsparam="timeStamp")
    u = user(env, "u002")
    t.check("%s: user_modify_org updated the title" % label,
            u is not None and u["title"] == "架构师", u)
    t.eq("%s: user_modify_org replaced the memberships" % label, depts_of(env, "u002"), [5])
    t.check("%s: an eventId is the dedupe key" % label,
            env.sql("SELECT count(*) FROM events WHERE dedupe_key LIKE 'event:ev-%'")[0][0] == 1)

    # user_active_org: a user we did not have yet, one id given as a string.
    push("user_active_org", {"EventType": "user_active_org", "UserId": "u003",
                             "TimeStamp": now_ms()})
    u = user(env, "u003")
    t.check("%s: user_active_org added u003" % label, u is not None and u["active"] == 1, u)

    # org_admin_add / org_admin_remove.
    fk.put_user({"userid": "u003", "unionid": "un003", "name": "王五",
                 "title": "Frontend Engineer", "dept_id_list": [5], "admin": True})
    push("org_admin_add", {"EventType": "org_admin_add", "UserId": ["u003"]})
    t.eq("%s: org_admin_add made u003 admin" % label, (user(env, "u003") or {}).get("admin"), 1)
    fk.put_user({"userid": "u003", "unionid": "un003", "name": "王五",
                 "title": "Frontend Engineer", "dept_id_list": [5], "admin": False})
    push("org_admin_remove", {"EventType": "org_admin_remove", "userId": ["u003"]})
    t.eq("%s: org_admin_remove unmade u003 admin" % label,
         (user(env, "u003") or {}).get("admin"), 0)

    # user_leave_org: inactive at once, every session ended, no DingTalk call.
    env.open_session("u002")
    env.open_session("u002")
    env.open_session("u003")
    fk.delete_user("u002")
    fk.clear_log()
    push("user_leave_org", {"EventType": "user_leave_org", "UserId": ["u002"],
                            "TimeStamp": str(now_ms())})
    u = user(env, "u002")
    t.check("%s: user_leave_org kept u002 as an inactive row" % label,
            u is not None and u["active"] == 0 and u["left_at"], u)
    t.eq("%s: user_leave_org ended u002's sessions" % label, env.sessions_of("u002"), 0)
    t.eq("%s: other users keep their sessions" % label, env.sessions_of("u003"), 1)
    t.eq("%s: user_leave_org asked DingTalk nothing" % label,
         [e["path"] for e in fk.log() if e["path"].startswith("/topapi/")], [])

    # Departments: create, modify (id as a digit string), remove.
    fk.put_dept({"dept_id": 7, "name": "新部门", "parent_id": 2})
    push("org_dept_create", {"EventType": "org_dept_create", "DeptId": [7],
                             "TimeStamp": now_ms()})
    t.eq("%s: org_dept_create stored the department" % label, dept(env, 7), (7, 2, "新部门"))
    fk.put_dept({"dept_id": 7, "name": "更名部门", "parent_id": 3})
    push("org_dept_modify (deptId as strings)",
         {"EventType": "org_dept_modify", "deptId": ["7"], "eventId": "ev-" + secrets.token_hex(8)})
    t.eq("%s: org_dept_modify renamed and moved it" % label, dept(env, 7), (7, 3, "更名部门"))
    fk.put_user({"userid": "u003", "unionid": "un003", "name": "王五",
                 "title": "Frontend Engineer", "dept_id_list": [5, 7]})
    push("user_modify_org into the new department",
         {"EventType": "user_modify_org", "UserId": ["u003"]})
    t.eq("%s: u003 is a member of 5 and 7" % label, depts_of(env, "u003"), [5, 7])
    fk.delete_dept(7)
    push("org_dept_remove", {"EventType": "org_dept_remove", "DeptId": [7]})
    t.eq("%s: org_dept_remove removed the department" % label, dept(env, 7), None)
    t.eq("%s: org_dept_remove removed its memberships" % label, depts_of(env, "u003"), [5])

    # A department DingTalk no longer has, announced as modified: removed.
    fk.put_dept({"dept_id": 8, "name": "短命部门", "parent_id": 1})
    push("org_dept_create 8", {"EventType": "org_dept_create", "DeptId": [8]})
    fk.delete_dept(8)
    push("org_dept_modify of a deleted department",
         {"EventType": "org_dept_modify", "DeptId": [8]})
    t.eq("%s: a department DingTalk does not know is removed" % label, dept(env, 8), None)

    # A user event for someone DingTalk no longer knows: they left.
    fk.put_user({"userid": "u777", "name": "临时工", "dept_id_list": [1]})
    push("user_add_org u777", {"EventType": "user_add_org", "UserId": ["u777"]})
    env.open_session("u777")
    fk.delete_user("u777")
    push("user_modify_org of a deleted user", {"EventType": "user_modify_org",
                                               "UserId": ["u777"]})
    u = user(env, "u777")
    t.check("%s: a user DingTalk does not know is deactivated" % label,
            u is not None and u["active"] == 0 and env.sessions_of("u777") == 0, u)

    # Several users in one event.
    push("user_add_org with two users", {"EventType": "user_add_org",
                                         "UserId": ["u004", "u006"]})
    t.check("%s: both users of one event are added" % label,
            user(env, "u004") is not None and user(env, "u006") is not None)
    u4 = user(env, "u004") or {}
    t.eq("%s: names arrive byte for byte" % label, u4.get("name"),
         "<script>alert(\"x\")</script> O'Hara & \"Q\"")

    # Other types: stored as ignored, answered.
    push("bpms_instance_change (other type, Chinese text)",
         {"EventType": "bpms_instance_change", "processInstanceId": "p-1",
          "corpId": "dingcorp0001", "title": "请假申请：张三", "type": "start"})
    t.eq("%s: an unknown type is stored as ignored" % label,
         env.sql("SELECT state FROM events WHERE event_type = 'bpms_instance_change'"),
         [("ignored",)])
    row = env.sql("SELECT payload FROM events WHERE event_type = 'bpms_instance_change'")
    t.check("%s: the payload is stored as sent (UTF-8)" % label,
            row and json.loads(row[0][0])["title"] == "请假申请：张三", row)

    # The same eventId again (DingTalk's retry with a fresh signature).
    ev_id = "ev-" + secrets.token_hex(8)
    fk.put_user({"userid": "u005", "name": "赵六", "dept_id_list": [4]})
    push("an event with an eventId", {"EventType": "user_add_org", "UserId": ["u005"],
                                      "eventId": ev_id})
    before = env.snapshot()
    push("the same eventId again", {"EventType": "user_add_org", "UserId": ["u005"],
                                    "eventId": ev_id})
    t.check("%s: a retried eventId writes nothing" % label, env.snapshot() == before)

    # Seconds instead of milliseconds in the query timestamp.
    push("a timestamp in seconds", {"EventType": "org_change"},
         timestamp=str(int(time.time())))

    t.eq("%s: nothing is left pending" % label, pending(env), 0)
    t.eq("%s: nothing failed" % label,
         env.sql("SELECT count(*) FROM events WHERE last_error IS NOT NULL")[0][0], 0)


def section_cgi_events():
    with FakeDingTalk() as fk, Env(fake=fk) as env:
        scenario("cgi", env, fk, lambda ev, **o: cgi_send(env, fk, ev, **o), lambda: None)


def section_concurrent():
    """Many pushes at once to several FastCGI workers: each stored once,
    all applied, whoever holds the apply lock picks up the others'."""
    with FakeDingTalk() as fk, Env(fake=fk) as env:
        lt = Lighttpd(env, procs=4)
        lt.start()
        try:
            users = ["c%03d" % i for i in range(24)]
            for u in users:
                fk.put_user({"userid": u, "name": "并发 " + u, "dept_id_list": [2]})
            # Four at a time: the fake's control server has a small listen
            # backlog; four pushes still meet four workers at once.
            with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
                results = list(pool.map(
                    lambda u: http_send(lt, fk, {"EventType": "user_add_org",
                                                 "UserId": [u]}), users))
            t.check("concurrent: every push answered success",
                    len(results) == len(users) and
                    all(r.status == 200 and r.reply_ok for r in results),
                    [r for r in results if not r.reply_ok][:3])
            t.check("concurrent: every event applied",
                    wait_for(lambda: pending(env) == 0, 30), lt.log()[-2000:])
            t.eq("concurrent: every user stored once",
                 env.sql("SELECT count(*), count(DISTINCT userid) FROM users"),
                 [(len(users), len(users))])
            t.eq("concurrent: each event applied once",
                 env.sql("SELECT count(*), sum(attempts) FROM events"),
                 [(len(users), len(users))])
        finally:
            lt.stop()


def section_lighttpd_events():
    with FakeDingTalk() as fk, Env(fake=fk) as env:
        lt = start_lighttpd(env)
        try:
            def settle():
                t.check("lighttpd: the event is applied after the answer",
                        wait_for(lambda: pending(env) == 0), lt.log()[-2000:])
            scenario("lighttpd", env, fk, lambda ev, **o: http_send(lt, fk, ev, **o), settle)
        finally:
            lt.stop()


def section_leave_before_answer():
    """A user_leave_org needs no DingTalk call: it is applied with the
    store, so the leaver is out before DingTalk has its answer."""
    with FakeDingTalk() as fk, Env(fake=fk) as env:
        lt = start_lighttpd(env)
        try:
            s = http_send(lt, fk, {"EventType": "user_add_org", "UserId": ["u001"]})
            t.check("leave: the user is added first", s.reply_ok and
                    wait_for(lambda: user(env, "u001") is not None and pending(env) == 0))
            env.open_session("u001")
            env.open_session("u001")
            s = http_send(lt, fk, {"EventType": "user_leave_org", "UserId": ["u001"]})
            # No waiting: checked the moment the answer is back.
            t.check("leave: answered success", s.reply_ok, s.detail)
            t.eq("leave: sessions gone when the answer arrives", env.sessions_of("u001"), 0)
            t.check("leave: inactive when the answer arrives",
                    user(env, "u001")["active"] == 0)
            t.eq("leave: stored as applied, nothing pending",
                 env.sql("SELECT state FROM events WHERE event_type = 'user_leave_org'"),
                 [("applied",)])
        finally:
            lt.stop()


def section_own_name():
    """Mounted as plain CGI under its own file name, it still answers."""
    with FakeDingTalk() as fk, Env(fake=fk) as env:
        s = cgi_send(env, fk, {"EventType": "check_url"}, path="/cgi-bin/callback.fcgi")
        t.check("own name: /cgi-bin/callback.fcgi answers success", s.reply_ok, s.detail)
        s = cgi_send(env, fk, {"EventType": "check_url"}, path="/cgi-bin/other")
        t.eq("own name: any other name is 404", s.status, 404)


# --------------------------------------------------------------------------
# 2. bad input: the status, and not a row changed

def bad_input_cases(fk):
    """(name, want status, how to send) — each sender gets (env, fk)."""
    ev = {"EventType": "user_add_org", "UserId": ["u006"]}
    stale = str(now_ms() - 2 * 3600 * 1000)
    future = str(now_ms() + 2 * 3600 * 1000)

    def enc(event, **opts):
        return fk.encrypt(event, **opts)

    def send(event=ev, **opts):
        return lambda env: cgi_send(env, fk, event, **opts)

    def raw(query, body, **kw):
        return lambda env: cgi_send(env, fk, None, query=query, body=body, **kw)

    good = enc(ev)
    cases = [
        ("bad signature", 403, send(tamper="signature")),
        ("signed with another token", 403, send(token="othertoken99")),
        ("signature of another nonce", 403,
         raw(good["query"].replace("nonce=" + good["nonce"], "nonce=x" + good["nonce"]),
             good["body"])),
        ("signature not hex", 403,
         raw(good["query"].replace(good["signature"], "z" * 40), good["body"])),
        ("encrypt is not base64", 400, send(tamper="base64")),
        ("ciphertext not a multiple of 16", 400, send(tamper="blocklen")),
        ("pad byte out of range", 400, send(tamper="padding")),
        ("length field overflows", 400, send(tamper="length")),
        ("encrypted with another key", 400,
         send(aes_key="abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")),
        ("wrong receiver id", 400, send(tamper="receiver")),
        ("receiver is the AppKey, not the CorpId", 400, send(receiver="dingappkey001")),
        ("stale timestamp (ms)", 400, send(timestamp=stale)),
        ("future timestamp (ms)", 400, send(timestamp=future)),
        ("stale timestamp (s)", 400, send(timestamp=str(int(time.time()) - 7200))),
        ("plaintext is not UTF-8", 400, send(tamper="utf8")),
        ("plaintext is not JSON", 400, send("this is not json")),
        ("plaintext is a JSON array", 400, send("[1,2,3]")),
        ("plaintext is empty", 400, send("")),
        ("no EventType", 400, send({"UserId": ["u006"]})),
        ("EventType not a string", 400, send({"EventType": 5, "UserId": ["u006"]})),
        ("user event without UserId", 400, send({"EventType": "user_add_org"})),
        ("UserId an empty list", 400, send({"EventType": "user_leave_org", "UserId": []})),
        ("UserId holds a number", 400, send({"EventType": "user_leave_org", "UserId": [12]})),
        ("UserId with a space", 400, send({"EventType": "user_leave_org", "UserId": ["a b"]})),
        ("department event without DeptId", 400, send({"EventType": "org_dept_create"})),
        ("DeptId not a number", 400, send({"EventType": "org_dept_remove", "DeptId": ["x"]})),
        ("DeptId zero", 400, send({"EventType": "org_dept_remove", "DeptId": [0]})),
        ("TimeStamp not a number", 400,
         send({"EventType": "user_add_org", "UserId": ["u006"], "TimeStamp": "soon"})),
        ("eventId with a control character", 400,
         send({"EventType": "user_add_org", "UserId": ["u006"], "eventId": "a\u0001b"})),
        ("no signature in the query", 400,
         raw("timestamp=%s&nonce=%s" % (good["timestamp"], good["nonce"]), good["body"])),
        ("no timestamp in the query", 400,
         raw("signature=%s&nonce=%s" % (good["signature"], good["nonce"]), good["body"])),
        ("no nonce in the query", 400,
         raw("signature=%s&timestamp=%s" % (good["signature"], good["timestamp"]),
             good["body"])),
        ("timestamp not digits", 400,
         raw(good["query"].replace("timestamp=" + good["timestamp"], "timestamp=12ab"),
             good["body"])),
        ("body is not JSON", 400, raw(good["query"], "encrypt=" + good["encrypt"])),
        ("body without encrypt", 400, raw(good["query"], json.dumps({"Encrypt": good["encrypt"]}))),
        ("encrypt not a string", 400, raw(good["query"], json.dumps({"encrypt": 12345}))),
        ("encrypt empty", 400, raw(good["query"], json.dumps({"encrypt": ""}))),
        ("body a JSON array", 400, raw(good["query"], json.dumps([good["encrypt"]]))),
        ("empty body", 400, raw(good["query"], "")),
        ("oversized body", 413,
         raw(good["query"], json.dumps({"encrypt": good["encrypt"], "pad": "x" * 70000}))),
        ("GET", 405, lambda env: cgi_send(env, fk, None, query=good["query"], body="",
                                          method="GET")),
        ("PUT", 405, lambda env: cgi_send(env, fk, None, query=good["query"],
                                          body=good["body"], method="PUT")),
        ("another path", 404, lambda env: cgi_send(env, fk, None, query=good["query"],
                                                   body=good["body"],
                                                   path="/dingauth/callbackx")),
    ]
    return cases


def section_bad_input():
    with FakeDingTalk() as fk, Env(fake=fk) as env:
        # Something in every table that can change.
        first = fk.encrypt({"EventType": "user_add_org", "UserId": ["u002"]})
        s = cgi_send(env, fk, None, query=first["query"], body=first["body"])
        t.check("bad input: a good push first", s.status == 200 and s.reply_ok, s)
        env.open_session("u002")
        base = env.snapshot()
        t.check("bad input: the baseline has a user, an event and a session",
                base.get("users") and base.get("events") and base.get("sessions"))
        for name, want, how in bad_input_cases(fk):
            s = how(env)
            t.check("bad input: %s -> %d" % (name, want), s.status == want, s)
            t.check("bad input: %s changed no row" % name, env.snapshot() == base)
            t.check("bad input: %s exits cleanly" % name, s.rc == 0, s)
            if want == 405:
                t.check("bad input: %s says Allow: POST" % name, "Allow: POST" in s.detail,
                        s.detail)
        # The replay: answered success again, applied once.
        s = cgi_send(env, fk, None, query=first["query"], body=first["body"])
        t.check("bad input: replay -> 200 with the encrypted success",
                s.status == 200 and s.reply_ok, s)
        t.check("bad input: replay changed no row", env.snapshot() == base)
        # A replay under the other spellings of the parameters is the same push.
        q = first["query"].replace("signature=", "msg_signature=").replace(
            "timestamp=", "timeStamp=")
        s = cgi_send(env, fk, None, query=q, body=first["body"])
        t.check("bad input: replay with msg_signature/timeStamp -> 200", s.status == 200, s)
        t.check("bad input: that replay changed no row", env.snapshot() == base)
        # Answers to refused pushes say little and leak nothing.
        s = cgi_send(env, fk, None, query=first["query"].replace(first["signature"], "0" * 40),
                     body=first["body"])
        t.check("bad input: a refusal is JSON without secrets",
                s.status == 403 and json.loads(s.body).get("error") and
                env.config["DINGTALK_TOKEN"] not in s.detail and
                env.config["DINGTALK_AES_TOKEN"] not in s.detail, s)


def section_bad_input_lighttpd():
    """A few classes again through lighttpd, where the body cap and the
    method check meet a real server."""
    with FakeDingTalk() as fk, Env(fake=fk) as env:
        lt = start_lighttpd(env)
        try:
            s = http_send(lt, fk, {"EventType": "user_add_org", "UserId": ["u002"]})
            t.check("lighttpd bad input: a good push first", s.status == 200 and s.reply_ok, s)
            wait_for(lambda: pending(env) == 0)
            base = env.snapshot()
            enc = fk.encrypt({"EventType": "user_leave_org", "UserId": ["u002"]})
            url = lt.url + CALLBACK + "?" + enc["query"]
            cases = [
                ("bad signature", 403, lambda: http_send(
                    lt, fk, {"EventType": "user_leave_org", "UserId": ["u002"]},
                    tamper="signature").status),
                ("stale timestamp", 400, lambda: http_send(
                    lt, fk, {"EventType": "user_leave_org", "UserId": ["u002"]},
                    timestamp=str(now_ms() - 86400000)).status),
                ("wrong receiver", 400, lambda: http_send(
                    lt, fk, {"EventType": "user_leave_org", "UserId": ["u002"]},
                    tamper="receiver").status),
                ("not JSON", 400, lambda: http_send(lt, fk, "<xml/>").status),
                ("oversized body", 413, lambda: harness.http(
                    "POST", url, json.dumps({"encrypt": enc["encrypt"], "x": "y" * 100000}),
                    {"Content-Type": "application/json"})[0]),
                ("GET", 405, lambda: harness.http("GET", url)[0]),
            ]
            for name, want, how in cases:
                got = how()
                t.eq("lighttpd bad input: %s -> %d" % (name, want), got, want)
                time.sleep(0.1)
                t.check("lighttpd bad input: %s changed no row" % name, env.snapshot() == base)
        finally:
            lt.stop()


# --------------------------------------------------------------------------
# 3. the answer goes out before DingTalk is asked

def section_slow_dingtalk():
    with FakeDingTalk() as fk, Env(fake=fk) as env:
        lt = start_lighttpd(env)
        try:
            # Warm up: the worker is started, the database created, a token cached.
            http_send(lt, fk, {"EventType": "user_add_org", "UserId": ["u001"]})
            wait_for(lambda: pending(env) == 0)
            fk.fault("/topapi/v2/user/get", "slow", delay_ms=3000)
            start = time.time()
            s = http_send(lt, fk, {"EventType": "user_add_org", "UserId": ["u006"]})
            t.check("slow DingTalk (lighttpd): the answer is the encrypted success",
                    s.status == 200 and s.reply_ok, s)
            t.check("slow DingTalk (lighttpd): answered in %d ms, far under 1500" % s.elapsed_ms,
                    s.elapsed_ms < 700, s.elapsed_ms)
            t.check("slow DingTalk (lighttpd): the event was stored before the answer",
                    env.sql("SELECT state FROM events WHERE payload LIKE '%u006%'") ==
                    [("pending",)])
            t.check("slow DingTalk (lighttpd): u006 is not there yet", user(env, "u006") is None)
            applied = wait_for(lambda: user(env, "u006") is not None and
                               pending(env) == 0, 15)
            took = time.time() - start
            t.check("slow DingTalk (lighttpd): the event is applied after the answer",
                    applied, lt.log()[-2000:])
            t.check("slow DingTalk (lighttpd): applying waited for DingTalk (%.1f s)" % took,
                    took >= 2.9, took)
        finally:
            lt.stop()

    # lighttpd mod_cgi: the server sees the answer end when stdout closes,
    # and does not stop the program that goes on working.
    with FakeDingTalk() as fk, Env(fake=fk) as env:
        lt = Lighttpd(env, extra_conf='setenv.add-environment = ( "DINGAUTH_CONFIG" => "%s" )'
                      % env.conf)
        os.symlink(os.path.join(harness.CGI_DIR, "callback.fcgi"),
                   os.path.join(lt.docroot, "callback.cgi"))
        lt.start()
        try:
            url = lt.url + "/callback.cgi/callback"     # routed on PATH_INFO
            fk.push(url, {"EventType": "user_add_org", "UserId": ["u001"]})
            fk.fault("/topapi/v2/user/get", "slow", delay_ms=3000)
            start = time.time()
            res = fk.push(url, {"EventType": "user_add_org", "UserId": ["u006"]})
            t.check("slow DingTalk (mod_cgi): answered success in %d ms" % res["elapsed_ms"],
                    res["reply_ok"] and res["elapsed_ms"] < 1000, res)
            applied = wait_for(lambda: user(env, "u006") is not None and
                               pending(env) == 0, 15)
            t.check("slow DingTalk (mod_cgi): applied after the answer (%.1f s)"
                    % (time.time() - start), applied and time.time() - start >= 2.9,
                    lt.log()[-1500:])
        finally:
            lt.stop()

    # Plain CGI: stdout is closed as soon as the answer is written.
    with FakeDingTalk() as fk, Env(fake=fk) as env:
        cgi_send(env, fk, {"EventType": "user_add_org", "UserId": ["u001"]})
        fk.fault("/topapi/v2/user/get", "slow", delay_ms=3000)
        enc = fk.encrypt({"EventType": "user_add_org", "UserId": ["u006"]})
        cgienv = env.environ()
        cgienv.update({"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "POST",
                       "SCRIPT_NAME": CALLBACK, "QUERY_STRING": enc["query"],
                       "REQUEST_URI": CALLBACK + "?" + enc["query"],
                       "CONTENT_TYPE": "application/json",
                       "CONTENT_LENGTH": str(len(enc["body"].encode()))})
        start = time.time()
        p = subprocess.Popen([os.path.join(harness.CGI_DIR, "callback.fcgi")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, env=cgienv)
        p.stdin.write(enc["body"].encode())
        p.stdin.close()
        out = p.stdout.read()
        answered = (time.time() - start) * 1000
        still_running = p.poll() is None
        p.wait(30)
        total = time.time() - start
        head, _, body = out.decode().partition("\r\n\r\n")
        t.check("slow DingTalk (CGI): the answer is the encrypted success",
                head.startswith("Status: 200") and reply_ok(fk, 200, body), out)
        t.check("slow DingTalk (CGI): stdout closed after %d ms, far under 1500" % answered,
                answered < 700, answered)
        t.check("slow DingTalk (CGI): the program was still working then", still_running)
        t.check("slow DingTalk (CGI): it went on to apply the event (%.1f s)" % total,
                total >= 2.9 and user(env, "u006") is not None and p.returncode == 0,
                (total, p.returncode))


# --------------------------------------------------------------------------
# 4. dingauth callback register|update|show|delete against the fake

def section_register():
    with FakeDingTalk() as fk, Env(fake=fk) as env:
        lt = start_lighttpd(env)
        try:
            url = lt.url + CALLBACK
            env.set(DINGAUTH_CALLBACK_URL=url)
            p = env.cmd("callback", "show")
            t.check("register: show with nothing registered exits 1",
                    p.returncode == 1 and "no callback" in p.stderr, p)
            fk.clear_log()
            p = env.cmd("callback", "register")
            t.check("register: exits 0", p.returncode == 0 and url in p.stdout, p)
            cb = fk.callback() or {}
            t.eq("register: DingTalk has our URL", cb.get("url"), url)
            t.eq("register: the nine address-book tags",
                 sorted(cb.get("call_back_tag") or []),
                 sorted(["user_add_org", "user_modify_org", "user_leave_org",
                         "user_active_org", "org_admin_add", "org_admin_remove",
                         "org_dept_create", "org_dept_modify", "org_dept_remove"]))
            t.check("register: with our token and key",
                    cb.get("token") == env.config["DINGTALK_TOKEN"] and
                    cb.get("aes_key") == env.config["DINGTALK_AES_TOKEN"], cb)
            t.eq("register: check_url stored nothing", count_events(env), 0)
            calls = fk.log(path="/call_back/register_call_back")
            sent = calls[0]["json"] if calls else {}
            t.check("register: one register_call_back with token, key, URL and tags",
                    len(calls) == 1 and sent.get("url") == url and
                    sent.get("token") == env.config["DINGTALK_TOKEN"] and
                    sent.get("aes_key") == env.config["DINGTALK_AES_TOKEN"] and
                    len(sent.get("call_back_tag", [])) == 9, calls)
            p, doc = cmd_json(env, "callback", "show", "--json")
            t.check("register: show --json", p.returncode == 0 and doc and
                    doc["url"] == url and doc["token"] == "match" and
                    doc["aes_key"] == "match" and doc["url_matches"] is True and
                    len(doc["tags"]) == 9, p)
            t.check("register: show prints neither secret",
                    env.config["DINGTALK_TOKEN"] not in p.stdout and
                    env.config["DINGTALK_AES_TOKEN"] not in p.stdout, p.stdout)
            p = env.cmd("callback", "show")
            t.check("register: show (text)", p.returncode == 0 and "match" in p.stdout and
                    env.config["DINGTALK_TOKEN"] not in p.stdout, p)
            p = env.cmd("callback", "register")
            t.check("register: a second register fails and points at update",
                    p.returncode == 1 and "update" in p.stderr, p)
            p = env.cmd("callback", "update", "--tags", "user_add_org,user_leave_org")
            t.check("register: update exits 0", p.returncode == 0, p)
            t.eq("register: update replaced the tags",
                 (fk.callback() or {}).get("call_back_tag"), ["user_add_org", "user_leave_org"])
            # A token DingTalk would sign check_url with that callback.fcgi does not know.
            p = env.cmd("callback", "update", extra_env={"DINGTALK_TOKEN": "othertoken99"})
            t.check("register: a token callback.fcgi does not share fails (71009)",
                    p.returncode == 1 and "71009" in p.stderr and "check_url" in p.stderr, p)
            t.eq("register: and changes nothing at DingTalk",
                 (fk.callback() or {}).get("token"), env.config["DINGTALK_TOKEN"])
            p = env.cmd("callback", "update", "--url", "http://127.0.0.1:%d/dingauth/callback"
                        % harness.free_port())
            t.check("register: an unreachable URL fails (71012)",
                    p.returncode == 1 and "71012" in p.stderr, p)
            p = env.cmd("callback", "update", "--url", "not a url")
            t.eq("register: a bad --url is a usage error", p.returncode, 2)
            p = env.cmd("callback", "update", "--tags", "user_add_org,no_such_tag")
            t.check("register: an unknown tag fails (71008)",
                    p.returncode == 1 and "71008" in p.stderr, p)
            p = env.cmd("callback", "delete")
            t.check("register: delete exits 0", p.returncode == 0, p)
            t.eq("register: DingTalk forgot the callback", fk.callback(), None)
            p = env.cmd("callback", "show", "--json")
            t.check("register: show after delete exits 1", p.returncode == 1, p)
            # Registering without any URL configured.
            env.set(DINGAUTH_CALLBACK_URL=None, DINGAUTH_PUBLIC_URL=None)
            p = env.cmd("callback", "register")
            t.check("register: no URL configured is a usage error naming the key",
                    p.returncode == 2 and "DINGAUTH_CALLBACK_URL" in p.stderr, p)
            # Usage.
            for args, want in ((("callback",), 2), (("callback", "--help"), 0),
                               (("callback", "register", "--help"), 0),
                               (("callback", "bogus"), 2),
                               (("callback", "show", "--bogus"), 2),
                               (("events",), 0), (("events", "bogus"), 2),
                               (("events", "list", "--help"), 0),
                               (("events", "retry", "--help"), 0),
                               (("events", "list", "--limit", "x"), 2)):
                p = env.cmd(*args)
                t.eq("usage: dingauth %s exits %d" % (" ".join(args), want), p.returncode, want)
        finally:
            lt.stop()


# --------------------------------------------------------------------------
# 5. dingauth callback failed: both shapes, into pending events

def section_failed():
    with FakeDingTalk() as fk, Env(fake=fk) as env:
        fk.put_user({"userid": "u010", "name": "新人", "dept_id_list": [2]})
        fk.put_dept({"dept_id": 9, "name": "失败部门", "parent_id": 1})
        # The current shape: ids in an object named after the tag.
        fk.failed_shape("nested")
        fk.add_failed("user_add_org", userid=["u010", "u003"])
        fk.add_failed("org_dept_create", deptid=[9])
        fk.add_failed("bpms_instance_change", data={"bpmsCallBackData": {}})
        fk.add_failed("org_dept_modify", data={})
        p, doc = cmd_json(env, "callback", "failed", "--json")
        t.check("failed (nested): exits 0", p.returncode == 0 and doc is not None, p)
        t.check("failed (nested): two pending events, one address-book entry without "
                "ids (sync needed), one other tag ignored",
                doc and doc["fetched"] == 4 and doc["added"] == 2 and
                doc["without_ids"] == 1 and doc["sync_needed"] is True and
                doc["tags_without_ids"] == ["org_dept_modify"] and doc["ignored"] == 1 and
                doc["tags_ignored"] == ["bpms_instance_change"], doc)
        p, rows = cmd_json(env, "events", "list", "--pending", "--json")
        t.check("failed (nested): events list --pending shows them",
                p.returncode == 0 and rows is not None and
                [(r["type"], r["state"]) for r in rows] ==
                [("user_add_org", "pending"), ("org_dept_create", "pending")], rows)
        t.check("failed (nested): the payload carries the ids",
                rows and rows[0]["payload"].get("UserId") == ["u010", "u003"] and
                rows[1]["payload"].get("DeptId") == [9], rows)
        # The 2016 shape: ids flat in the entry; text output.
        fk.failed_shape("flat")
        fk.add_failed("user_leave_org", userid=["u005"])
        fk.add_failed("user_modify_org")
        fk.add_failed("org_change")
        p = env.cmd("callback", "failed")
        t.check("failed (flat): exits 0 and says a full sync is needed",
                p.returncode == 0 and "1 new pending" in p.stdout and
                "dingauth sync" in p.stdout and "user_modify_org" in p.stdout and
                "ignored: org_change" in p.stdout, p)
        t.eq("failed (flat): three events pending now", pending(env), 3)
        p = env.cmd("callback", "failed")
        t.check("failed: nothing more to fetch",
                p.returncode == 0 and p.stdout.startswith("0 failed"), p)
        # A push DingTalk could not deliver (nobody listening) shows up there too.
        dead = "http://127.0.0.1:%d%s" % (harness.free_port(), CALLBACK)
        fk.push(dead, {"EventType": "user_modify_org", "UserId": ["u002"]},
                record_failed=True, timeout=2)
        p, doc = cmd_json(env, "callback", "failed", "--json")
        t.check("failed: an undelivered push becomes a pending event",
                doc and doc["added"] == 1 and pending(env) == 4, (p, doc))
        env.sql("INSERT INTO users (userid, name, created_at, updated_at)"
                " VALUES ('u005', '赵六', 1, 1)")
        p = env.cmd("events", "retry")
        t.check("failed: events retry applies them", p.returncode == 0 and
                "applied 4" in p.stdout and pending(env) == 0, p)
        t.check("failed: the directory has them",
                user(env, "u010") is not None and user(env, "u003") is not None and
                user(env, "u002") is not None and dept(env, 9) == (9, 1, "失败部门") and
                (user(env, "u005") or {}).get("active") == 0)
        # Fetching and applying in one go.
        fk.put_user({"userid": "u011", "name": "又一个", "dept_id_list": [3]})
        fk.add_failed("user_add_org", userid=["u011"])
        p, doc = cmd_json(env, "callback", "failed", "--apply", "--json")
        t.check("failed --apply: applied at once", p.returncode == 0 and doc and
                doc["applied"] == 1 and doc["pending"] == 0 and user(env, "u011"), (p, doc))


# --------------------------------------------------------------------------
# 6. DingTalk down: pending with the error, events list, events retry

def section_outage():
    with FakeDingTalk() as fk, Env(fake=fk, DINGAUTH_HTTP_RETRIES=0) as env:
        cgi_send(env, fk, {"EventType": "user_add_org", "UserId": ["u001"]})
        fk.fault("/topapi/v2/user/get", "http500", count=100)
        s = cgi_send(env, fk, {"EventType": "user_add_org", "UserId": ["u002"]})
        t.check("outage: the push is still answered success", s.status == 200 and s.reply_ok, s)
        rows = env.sql("SELECT state, attempts, last_error FROM events WHERE id = 2")
        t.check("outage: the event stays pending with its error",
                rows and rows[0][0] == "pending" and rows[0][1] == 1 and
                "EHTTP" in (rows[0][2] or "") and "500" in rows[0][2], rows)
        t.check("outage: the error names no secret",
                rows and fk.corp_token() not in rows[0][2] and
                env.config["DINGTALK_CORP_SECRET"] not in rows[0][2], rows)
        # A second push while DingTalk is down: its own event is tried
        # and waits for its next attempt; the older one is not asked
        # about again before its own time (no head-of-line blocking).
        s = cgi_send(env, fk, {"EventType": "user_add_org", "UserId": ["u003"]})
        t.check("outage: a second push is answered", s.status == 200 and s.reply_ok, s)
        t.eq("outage: each failing event waits for its own next attempt",
             env.sql("SELECT id, state, attempts, next_attempt_at > received_at"
                     " FROM events ORDER BY id"),
             [(1, "applied", 1, 0), (2, "pending", 1, 1), (3, "pending", 1, 1)])
        p = env.cmd("events", "list", "--pending")
        t.check("outage: events list --pending shows both and the error",
                p.returncode == 0 and "u002" in p.stdout and "u003" in p.stdout and
                "error: EHTTP" in p.stdout and "u001" not in p.stdout, p)
        p, rows = cmd_json(env, "events", "list", "--json")
        t.check("outage: events list --json shows all three",
                rows is not None and [r["state"] for r in rows] ==
                ["applied", "pending", "pending"] and rows[0]["last_error"] is None and
                rows[1]["last_error"].startswith("EHTTP") and
                rows[0]["applied_at"] is not None and rows[1]["applied_at"] is None, rows)
        p = env.cmd("events", "retry")
        t.check("outage: events retry while DingTalk is down exits 1",
                p.returncode == 1 and "2 still pending" in p.stdout, p)
        fk.clear_faults()
        fk.fault("/topapi/v2/user/get", "rate_limit", count=1)
        p, doc = cmd_json(env, "events", "retry", "--json")
        t.check("outage: rate limited: retry stops with ERATE",
                p.returncode == 1 and doc and doc["applied"] == 0 and
                "90018" in doc.get("error", ""), (p, doc))
        t.check("outage: the error is kept on the event",
                "ERATE" in env.sql("SELECT last_error FROM events WHERE id = 2")[0][0])
        p = env.cmd("events", "retry")
        t.check("outage: events retry after the outage applies both",
                p.returncode == 0 and "applied 2" in p.stdout and pending(env) == 0, p)
        t.check("outage: the directory caught up",
                user(env, "u002") is not None and user(env, "u003") is not None)
        t.eq("outage: the errors are cleared",
             env.sql("SELECT count(*) FROM events WHERE last_error IS NOT NULL")[0][0], 0)
        p = env.cmd("events", "list", "--pending")
        t.check("outage: nothing pending any more",
                p.returncode == 0 and len(p.stdout.strip().splitlines()) == 1, p)
        # An event left pending is applied by the next push.
        fk.fault("/topapi/v2/department/get", "drop", count=1)
        fk.put_dept({"dept_id": 12, "name": "十二", "parent_id": 1})
        cgi_send(env, fk, {"EventType": "org_dept_create", "DeptId": [12]})
        t.eq("outage: a dropped connection leaves the event pending", pending(env), 1)
        env.sql("UPDATE events SET next_attempt_at = 0 WHERE state = 'pending'")
        cgi_send(env, fk, {"EventType": "user_modify_org", "UserId": ["u006"]})
        t.check("outage: once its delay has passed, the next push applies the older event too",
                pending(env) == 0 and dept(env, 12) == (12, 1, "十二") and
                user(env, "u006") is not None)
        # One event DingTalk refuses for itself does not hold up the others.
        fk.fault("/topapi/v2/user/get", "errcode", errcode=40035, errmsg="不合法的参数")
        cgi_send(env, fk, {"EventType": "user_add_org", "UserId": ["u004"]})
        t.eq("outage: a refused event stays pending", pending(env), 1)
        env.sql("UPDATE events SET next_attempt_at = 0 WHERE state = 'pending'")
        cgi_send(env, fk, {"EventType": "user_add_org", "UserId": ["u005"]})
        t.check("outage: later events are applied past it, and it once its delay has passed",
                user(env, "u005") is not None and user(env, "u004") is not None and
                pending(env) == 0)

        # Applying twice gives the directory applying once gave.
        once = directory(env)
        env.sql("UPDATE events SET state = 'pending' WHERE state = 'applied'")
        p = env.cmd("events", "retry")
        t.check("idempotent: every event applied again", p.returncode == 0 and
                pending(env) == 0, p)
        t.eq("idempotent: the same directory", directory(env), once)


# --------------------------------------------------------------------------
# 7. configuration: receiver, window, broken setup

def section_config():
    with FakeDingTalk() as fk, Env(fake=fk, DINGAUTH_CALLBACK_RECEIVER="dingappkey001") as env:
        s = cgi_send(env, fk, {"EventType": "org_change"}, receiver="dingappkey001")
        t.check("receiver: console push (AppKey) accepted, answered for the AppKey",
                s.status == 200 and s.reply_ok, s)
        s = cgi_send(env, fk, {"EventType": "org_change"})
        t.eq("receiver: the CorpId is then refused", s.status, 400)
    with FakeDingTalk() as fk, Env(fake=fk, DINGAUTH_CALLBACK_WINDOW=0) as env:
        s = cgi_send(env, fk, {"EventType": "org_change"},
                     timestamp=str(now_ms() - 30 * 86400 * 1000))
        t.eq("window: 0 turns the timestamp check off", s.status, 200)
    with FakeDingTalk() as fk, Env(fake=fk, DINGAUTH_CALLBACK_WINDOW=60) as env:
        s = cgi_send(env, fk, {"EventType": "org_change"}, timestamp=str(now_ms() - 120000))
        t.eq("window: 60 s refuses a push 2 minutes old", s.status, 400)
        s = cgi_send(env, fk, {"EventType": "org_change"}, timestamp=str(now_ms() - 30000))
        t.eq("window: 60 s accepts a push 30 s old", s.status, 200)
    with FakeDingTalk() as fk, Env(fake=fk) as env:
        env.set(DINGTALK_AES_TOKEN="short")
        before = env.snapshot()
        s = cgi_send(env, fk, {"EventType": "org_change"})
        t.check("broken configuration: 500 and nothing written",
                s.status == 500 and env.snapshot() == before, s)
        t.check("broken configuration: the log names the key",
                "DINGTALK_AES_TOKEN" in s.detail and "short" not in s.detail, s.detail)
    with FakeDingTalk() as fk, Env(fake=fk) as env:
        # The directory API keys are not needed to store: only to apply.
        env.set(DINGTALK_CORP_SECRET=None)
        s = cgi_send(env, fk, {"EventType": "user_add_org", "UserId": ["u002"]})
        t.check("no corp secret: stored and answered", s.status == 200 and s.reply_ok, s)
        rows = env.sql("SELECT state, last_error FROM events")
        t.check("no corp secret: pending, saying what is missing",
                rows and rows[0][0] == "pending" and "DINGTALK_CORP_SECRET" in rows[0][1], rows)


SECTIONS = [
    ("cgi events", section_cgi_events),
    ("lighttpd events", section_lighttpd_events),
    ("leave before the answer", section_leave_before_answer),
    ("own name", section_own_name),
    ("concurrent", section_concurrent),
    ("bad input", section_bad_input),
    ("lighttpd bad input", section_bad_input_lighttpd),
    ("slow dingtalk", section_slow_dingtalk),
    ("register", section_register),
    ("failed", section_failed),
    ("outage", section_outage),
    ("config", section_config),
]

if __name__ == "__main__":
    for name, fn in SECTIONS:
        run_section(name, fn)
    t.done()
