#!/usr/bin/python3
# -*- coding: utf-8 -*-
"""The event pipeline (issue 11): a leave is never late, a failing event
blocks nothing, permanent failures end as failed, and `dingauth worker`.

    /usr/bin/python3 tests/test_events.py [-k SUBSTRING]

Pushes are encrypted by the fake DingTalk (tests/fake_dingtalk.py) and sent
to callback.fcgi as plain CGI (Env.cgi) or through a real lighttpd.
Prints "ok - ..." / "not ok - ..." per check; exits 1 if any failed.
"""
import json
import os
import signal
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import T, Env, Lighttpd, wait_for  # noqa: E402
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


def user(env, userid):
    rows = env.sql("SELECT active, left_at, name, title FROM users WHERE userid = ?",
                   (userid,))
    if not rows:
        return None
    return {"active": rows[0][0], "left_at": rows[0][1], "name": rows[0][2],
            "title": rows[0][3]}


def events(env):
    return env.sql("SELECT id, event_type, state FROM events ORDER BY id")


def user_gets(fk, userid):
    return [e for e in fk.log(USER_GET) if (e.get("json") or {}).get("userid") == userid]


def have_table(env, name):
    return env.has_table(name)


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
        env.open_session("u001")
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
        t.eq("leave behind pending: the leaver's sessions are gone", env.sessions_of("u001"), 0)
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
        env.open_session("u003")
        # The fake answers at once (u003 active) but holds the answer 3 s.
        fk.fault(USER_GET, "slow", delay_ms=3000, after=True, match={"userid": "u003"})
        proc, ok = push_answered(env, fk, {"EventType": "user_modify_org", "UserId": ["u003"]})
        t.check("late answer: the modify push is answered", ok)
        t.check("late answer: DingTalk is being asked",
                wait_for(lambda: len(user_gets(fk, "u003")) >= 0 and proc.poll() is None, 1))
        time.sleep(1.0)     # the question is out (a CGI start, one call)
        fk.delete_user("u003")
        ok, r = push(env, fk, {"EventType": "user_leave_org", "UserId": ["u003"]})
        t.check("late answer: the leave is answered", ok, r.stderr)
        t.eq("late answer: the leaver is out at once", (user(env, "u003") or {}).get("active"), 0)
        proc.wait(30)
        err = proc.stderr.read().decode()
        u = user(env, "u003")
        t.check("late answer: the old answer did not re-activate the leaver",
                u is not None and u["active"] == 0, (u, err))
        t.eq("late answer: no session came back", env.sessions_of("u003"), 0)
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


# --------------------------------------------------------------------------
# 2. every other event on its own schedule

def section_independent():
    with FakeDingTalk() as fk, Env(fake=fk, DINGAUTH_HTTP_RETRIES=0) as env:
        env.cmd("sync")
        fk.fault(USER_GET, "http500", count=1000, match={"userid": "u002"})
        ok, r = push(env, fk, {"EventType": "user_modify_org", "UserId": ["u002"]})
        row = env.sql("SELECT state, attempts, next_attempt_at - strftime('%s', 'now'),"
                      " last_error, claimed_until FROM events WHERE id = 1")[0]
        t.check("backoff: a failing event is answered, pending, tried once",
                ok and row[0] == "pending" and row[1] == 1, (row, r.stderr))
        t.check("backoff: its next attempt is about 30 s away", 25 <= row[2] <= 31, row)
        t.check("backoff: the error is kept, the claim let go",
                "EHTTP" in (row[3] or "") and row[4] == 0, row)
        fk.clear_log()
        fk.put_user({"userid": "u003", "unionid": "un003", "name": "王五",
                     "title": "Moved on", "dept_id_list": [5]})
        ok, r = push(env, fk, {"EventType": "user_modify_org", "UserId": ["u003"]})
        t.check("no head-of-line blocking: a later event is applied past the failing one",
                ok and (user(env, "u003") or {}).get("title") == "Moved on", r.stderr)
        t.eq("no head-of-line blocking: the failing one is not asked again before its time",
             len(user_gets(fk, "u002")), 0)
        t.eq("no head-of-line blocking: states", [r[2] for r in events(env)],
             ["pending", "applied"])

        # Permanent: not visible to the app (50002) ends as failed at once.
        fk.fault(USER_GET, "errcode", count=1000, errcode=50002, errmsg="不在应用可见范围",
                 match={"userid": "u004"})
        ok, r = push(env, fk, {"EventType": "user_add_org", "UserId": ["u004"]})
        rows = env.sql("SELECT state, attempts, last_error FROM events WHERE id = 3")
        t.check("permanent: 50002 ends as failed with its reason, after one attempt",
                ok and rows and rows[0][0] == "failed" and rows[0][1] == 1 and
                "50002" in (rows[0][2] or ""), rows)
        p = env.cmd("events", "list", "--failed")
        t.check("permanent: events list --failed shows it with the reason",
                p.returncode == 0 and "failed" in p.stdout and "50002" in p.stdout and
                "u004" in p.stdout and "u002" not in p.stdout, p)
        p = env.cmd("doctor")
        t.check("permanent: doctor reports the failed event and its reason",
                "1 event(s) failed" in p.stdout and "50002" in p.stdout, p.stdout)
        p = env.cmd("events", "retry", "--json")
        doc = json.loads(p.stdout) if p.stdout.startswith("{") else None
        t.check("permanent: events retry leaves failed events alone",
                doc is not None and env.sql("SELECT state FROM events WHERE id = 3") ==
                [("failed",)], (p, doc))
        fk.clear_faults()     # the app's visible range is widened
        p = env.cmd("events", "retry", "--failed")
        t.check("permanent: events retry --failed tries them again once the cause is fixed",
                p.returncode == 0 and user(env, "u004") is not None and
                env.sql("SELECT state FROM events WHERE id = 3") == [("applied",)], p)

        # A batch: the valid ids applied, the invalid ones recorded.
        fk.clear_faults()
        ok, r = push(env, fk, {"EventType": "user_add_org",
                               "UserId": ["u005", 7, "bad id", "u006"]})
        rows = env.sql("SELECT state, invalid_ids FROM events WHERE event_type = 'user_add_org'"
                       " AND payload LIKE '%u005%'")
        t.check("batch: a push with some invalid ids is answered success", ok, r.stderr)
        t.check("batch: the valid ids are applied",
                user(env, "u005") is not None and user(env, "u006") is not None and
                rows and rows[0][0] == "applied", rows)
        t.check("batch: the invalid ones are recorded",
                rows and "UserId[1]" in (rows[0][1] or "") and
                "UserId[2]" in (rows[0][1] or ""), rows)
        p = env.cmd("events", "list")
        t.check("batch: events list shows what was left out",
                "left out: UserId[1]" in p.stdout, p.stdout)
        ok, r = push(env, fk, {"EventType": "user_add_org", "UserId": [7, "bad id"]})
        t.check("batch: a push with nothing valid is refused (400)",
                not ok and r.status == 400, r.stderr)


def section_budget():
    """After its answer a push applies its own event and then due ones for
    a bounded time, not a bounded count."""
    with FakeDingTalk() as fk, Env(fake=fk, DINGAUTH_HTTP_RETRIES=0) as env:
        env.cmd("sync")
        fk.fault(USER_GET, "http500", count=1000)
        for i in range(12):
            fk.put_user({"userid": "b%03d" % i, "name": "B", "dept_id_list": [2]})
            push(env, fk, {"EventType": "user_add_org", "UserId": ["b%03d" % i]})
        fk.clear_faults()
        env.sql("UPDATE events SET next_attempt_at = 0")     # all due now
        fk.fault(USER_GET, "slow", count=1000, delay_ms=200)
        start = time.time()
        fk.put_user({"userid": "b100", "name": "B", "dept_id_list": [2]})
        ok, r = push(env, fk, {"EventType": "user_add_org", "UserId": ["b100"]})
        took = time.time() - start
        applied = env.sql("SELECT count(*) FROM events WHERE state = 'applied'")[0][0]
        t.check("budget: the push's own event and some due ones are applied (%d)" % applied,
                ok and 2 <= applied <= 5 and user(env, "b100") is not None, r.stderr)
        t.check("budget: the work after the answer stops near 0.5 s (%.1f s)" % took,
                took < 2.0, took)


# --------------------------------------------------------------------------
# 3. issue 11's "done when": a leave through a backlog of failing events

def section_done_when():
    # DingTalk's 20 QPS per API would only slow this down: not the subject.
    with FakeDingTalk(qps=10000) as fk, Env(fake=fk) as env:
        env.cmd("sync")
        os.makedirs(os.path.join(env.dir, "www", "protected"))
        with open(os.path.join(env.dir, "www", "protected", "index.html"), "w") as f:
            f.write("secret\n")
        lt = Lighttpd(env, protect={"/protected/": {}},
                      docroot=os.path.join(env.dir, "www"))
        lt.start()
        try:
            backlog = ["p%03d" % i for i in range(101)]
            permanent = set(backlog[::3])
            for uid in backlog:
                fk.put_user({"userid": uid, "name": "P " + uid, "dept_id_list": [2]})
            fk.fault(USER_GET, "http500", count=100000)
            for uid in backlog:
                res = fk.push(lt.url + CALLBACK, {"EventType": "user_add_org", "UserId": [uid]})
                if not res["reply_ok"]:
                    break
            t.check("done when: 101 pushes answered while DingTalk fails",
                    res["reply_ok"] and wait_for(lambda: env.sql(
                        "SELECT count(*) FROM events WHERE state = 'pending'"
                        " AND attempts = 1")[0][0] == 101, 20), lt.log()[-2000:])
            # Now some fail for good (outside the visible range), the rest still 500.
            fk.clear_faults()
            for uid in backlog:
                if uid in permanent:
                    fk.fault(USER_GET, "errcode", count=1000, errcode=50002,
                             errmsg="不在应用可见范围", match={"userid": uid})
                else:
                    fk.fault(USER_GET, "http500", count=1000, match={"userid": uid})
            t.eq("done when: 101 events pending",
                 env.sql("SELECT count(*) FROM events WHERE state = 'pending'")[0][0], 101)

            sid = env.open_session("u001")
            cookie = {"Cookie": "dingauth_session=" + sid, "Accept": "text/html"}
            st, _, _ = harness.http("GET", lt.url + "/protected/", headers=cookie)
            t.eq("done when: the signed-in user is let in before", st, 200)
            fk.delete_user("u001")
            seq = max([e["seq"] for e in fk.log()] or [0])
            start = time.time()
            res = fk.push(lt.url + CALLBACK, {"EventType": "user_leave_org", "UserId": ["u001"]})
            st, _, _ = harness.http("GET", lt.url + "/protected/", headers=cookie)
            took = time.time() - start
            t.check("done when: the leave is answered success", res["reply_ok"], res)
            t.check("done when: the leaver is refused by the authorizer %.2f s after the push"
                    % took, st != 200 and took < 1.0, (st, took))
            time.sleep(1.0)     # whatever the push's request does after its answer
            calls = [e for e in fk.log(since=seq) if not e["path"].startswith("/_fake")]
            t.check("done when: %d DingTalk calls during the leave's request" % len(calls),
                    len(calls) <= 3, [e["path"] for e in calls])

            # The faults clear (the 500s); the 50002s stay: those users are
            # outside the app's range. An hour later the worker runs.
            fk.clear_faults()
            for uid in permanent:
                fk.fault(USER_GET, "errcode", count=1000, errcode=50002,
                         errmsg="不在应用可见范围", match={"userid": uid})
            fk.clear_log()
            p = env.cmd("worker", "--once", extra_env={"DINGAUTH_TEST_TIME_OFFSET": "7200",
                                                       "DINGAUTH_SYNC_AT": "off"})
            t.check("done when: worker --once runs", p.returncode == 0, p.stderr[-2000:])
            states = dict(env.sql("SELECT json_extract(payload, '$.UserId[0]'), state"
                                  " FROM events WHERE event_type = 'user_add_org'"))
            t.check("done when: the transient failures are applied",
                    all(states.get(u) == "applied" for u in backlog if u not in permanent) and
                    all((user(env, u) or {}).get("active") == 1
                        for u in backlog if u not in permanent), states)
            errors = env.sql("SELECT last_error FROM events WHERE state = 'failed'")
            t.check("done when: the permanent ones end as failed, with the reason",
                    len(errors) == len(permanent) and
                    all("50002" in (e[0] or "") for e in errors), errors[:3])
            gets = {}
            for e in fk.log(USER_GET):
                if e["errcode"] == 0:
                    u = (e.get("json") or {}).get("userid")
                    gets[u] = gets.get(u, 0) + 1
            t.check("done when: nothing applied twice",
                    all(n == 1 for n in gets.values()) and
                    len(gets) == len(backlog) - len(permanent), gets)
            fk.clear_log()
            p = env.cmd("worker", "--once", extra_env={"DINGAUTH_TEST_TIME_OFFSET": "86400",
                                                       "DINGAUTH_SYNC_AT": "off"})
            t.check("done when: a second pass asks DingTalk nothing",
                    p.returncode == 0 and fk.log(USER_GET) == [], p.stderr[-1000:])
            t.eq("done when: the leaver is still out", (user(env, "u001") or {}).get("active"), 0)

            # A rehire after the leave.
            fk.put_user({"userid": "u001", "unionid": "un001", "name": "张三",
                         "title": "Back", "dept_id_list": [1]})
            res = fk.push(lt.url + CALLBACK, {"EventType": "user_add_org", "UserId": ["u001"]})
            t.check("done when: a rehire after the leave works",
                    res["reply_ok"] and wait_for(lambda: (user(env, "u001") or {}).get("active")
                                                 == 1), lt.log()[-1500:])
        finally:
            lt.stop()


# --------------------------------------------------------------------------
# 4. dingauth worker

def beat(env):
    rows = env.sql("SELECT pid, beat_at, step FROM worker_status")
    return rows[0] if rows else None


def sync_runs(env):
    return env.sql("SELECT count(*) FROM sync_runs WHERE outcome <> 'dry-run'")[0][0]


def start_worker(env, *args, extra_env=None, cmd=None):
    e = env.environ(**(extra_env or {}))
    return subprocess.Popen(cmd or [harness.DINGAUTH, "worker"] + list(args), env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_worker(p, sig=signal.SIGTERM, timeout=10):
    start = time.time()
    p.send_signal(sig)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    return p.returncode, time.time() - start, out, err


def section_worker_sync():
    with FakeDingTalk() as fk, Env(fake=fk) as env:
        now = time.strftime("%H:%M")
        p = env.cmd("worker", "--once", extra_env={"DINGAUTH_SYNC_AT": now})
        t.check("worker --once: exit 0", p.returncode == 0, p.stderr)
        t.eq("worker --once: the daily sync ran at its time (%s)" % now, sync_runs(env), 1)
        t.check("worker --once: the directory is there",
                (user(env, "u001") or {}).get("active") == 1)
        b = beat(env)
        t.check("worker --once: a heartbeat with its time and pid",
                b is not None and b[0] > 0 and abs(b[1] - time.time()) < 60, b)
        t.check("worker --once: one log line per action on stderr",
                "worker" in p.stderr and "sync: starting" in p.stderr and
                "sync: complete" in p.stderr, p.stderr)
        p = env.cmd("worker", "--once", extra_env={"DINGAUTH_SYNC_AT": now})
        t.eq("worker --once: not twice in the same day", sync_runs(env), 1)
        later = time.strftime("%H:%M", time.localtime(time.time() + 120))
        p = env.cmd("worker", "--once", extra_env={"DINGAUTH_SYNC_AT": later})
        t.eq("worker --once: not before its time", sync_runs(env), 1)
        p = env.cmd("worker", "--once", extra_env={"DINGAUTH_SYNC_AT": now,
                                                   "DINGAUTH_TEST_TIME_OFFSET": "86400"})
        t.eq("worker --once: the next day, again (fake clock)", sync_runs(env), 2)
        p = env.cmd("worker", "--once", extra_env={"DINGAUTH_SYNC_AT": "off",
                                                   "DINGAUTH_TEST_TIME_OFFSET": "172800"})
        t.eq("worker --once: DINGAUTH_SYNC_AT=off never syncs", sync_runs(env), 2)
        p = env.cmd("worker", "--once", extra_env={"DINGAUTH_SYNC_AT": "25:00"})
        t.check("worker: a bad DINGAUTH_SYNC_AT stops it, naming the key",
                p.returncode == 1 and "DINGAUTH_SYNC_AT" in p.stderr, p.stderr)


def section_worker_prune():
    with FakeDingTalk() as fk, Env(fake=fk, DINGAUTH_RETENTION_DAYS=30) as env:
        env.cmd("sync")
        now = int(time.time())
        old = now - 40 * 86400
        env.sql("INSERT INTO events (dedupe_key, event_type, payload, received_at, state,"
                " applied_at) VALUES ('k1', 'user_add_org', '{}', ?, 'applied', ?),"
                " ('k2', 'user_add_org', '{}', ?, 'failed', NULL),"
                " ('k3', 'user_add_org', '{}', ?, 'pending', NULL),"
                " ('k4', 'user_add_org', '{}', ?, 'applied', ?)",
                (old, old, old, old, now - 86400, now - 86400))
        env.sql("UPDATE events SET next_attempt_at = ? WHERE dedupe_key = 'k3'",
                (now + 86400,))
        env.sql("INSERT INTO login_requests (userid, status, created_at, updated_at, decided_at)"
                " VALUES ('x1', 'approved', ?, ?, ?), ('x2', 'pending', ?, ?, NULL),"
                " ('x3', 'rejected', ?, ?, ?)",
                (old, old, old, old, old, now, now, now))
        env.open_session("u001")
        env.sql("UPDATE sessions SET expires_at = ?", (now - 10,))
        p = env.cmd("worker", "--once", extra_env={"DINGAUTH_SYNC_AT": "off"})
        t.check("prune: worker --once exits 0", p.returncode == 0, p.stderr)
        t.eq("prune: finished events past the retention go, pending and recent ones stay",
             sorted(r[0] for r in env.sql("SELECT dedupe_key FROM events")), ["k3", "k4"])
        t.eq("prune: decided requests past the retention go",
             sorted(r[0] for r in env.sql("SELECT userid FROM login_requests")), ["x2", "x3"])
        t.eq("prune: expired sessions go", env.sessions_of("u001"), 0)
        t.check("prune: logged", "prune:" in p.stderr, p.stderr)
    with FakeDingTalk() as fk, Env(fake=fk, DINGAUTH_RETENTION_DAYS=7,
                                   DINGAUTH_CALLBACK_WINDOW=0) as env:
        env.cmd("worker", "--once", extra_env={"DINGAUTH_SYNC_AT": "off"})
        old = int(time.time()) - 400 * 86400
        env.sql("INSERT INTO events (dedupe_key, event_type, payload, received_at, state)"
                " VALUES ('k1', 'user_add_org', '{}', ?, 'applied')", (old,))
        env.cmd("worker", "--once", extra_env={"DINGAUTH_SYNC_AT": "off"})
        t.eq("prune: with no timestamp window, dedupe keys are kept for ever",
             env.sql("SELECT count(*) FROM events")[0][0], 1)


def section_worker_daemon():
    with FakeDingTalk() as fk, Env(fake=fk, DINGAUTH_HTTP_RETRIES=0) as env:
        env.cmd("sync")
        w = start_worker(env, extra_env={"DINGAUTH_SYNC_AT": "off"})
        try:
            t.check("daemon: a heartbeat appears",
                    wait_for(lambda: have_table(env, "worker_status") and beat(env) is not None
                             and beat(env)[0] == w.pid, 10))
            p = env.cmd("worker", "--once")
            t.check("daemon: a second worker says so and exits 1",
                    p.returncode == 1 and "another worker" in p.stderr and
                    str(w.pid) in p.stderr, p.stderr)
            # An event that failed becomes due: the worker applies it.
            fk.fault(USER_GET, "http500", count=5)
            fk.put_user({"userid": "u007", "name": "Seven", "dept_id_list": [2]})
            push(env, fk, {"EventType": "user_add_org", "UserId": ["u007"]})
            t.check("daemon: the event failed first",
                    env.sql("SELECT state FROM events")[0][0] == "pending")
            fk.clear_faults()
            env.sql("UPDATE events SET next_attempt_at = 0")
            t.check("daemon: the worker applies it when it is due",
                    wait_for(lambda: user(env, "u007") is not None, 10))
        finally:
            rc, took, out, err = stop_worker(w)
        t.check("daemon: SIGTERM: exit 0 within a few seconds (%.1f s)" % took,
                rc == 0 and took < 5, (rc, err[-1500:]))
        t.check("daemon: its log says what it did",
                "started" in err and "events: 1 applied" in err and "stopped" in err, err)


def section_worker_sigterm_in_sync():
    with FakeDingTalk() as fk, Env(fake=fk) as env:
        env.cmd("worker", "--once", extra_env={"DINGAUTH_SYNC_AT": "off"})
        fk.fault("/topapi/v2/department/listsub", "slow", count=100, delay_ms=8000)
        w = start_worker(env, extra_env={"DINGAUTH_SYNC_AT": time.strftime("%H:%M")})
        t.check("sigterm: the daily sync is running",
                wait_for(lambda: env.sql("SELECT count(*) FROM sync_runs WHERE outcome ="
                                         " 'running'")[0][0] == 1, 10))
        rc, took, out, err = stop_worker(w)
        t.check("sigterm: the worker stops the sync and exits 0 in a few seconds (%.1f s)"
                % took, rc == 0 and took < 5, (rc, err[-1500:]))
        t.eq("sigterm: the sync changed nothing and did not complete",
             env.sql("SELECT count(*) FROM sync_runs WHERE outcome = 'ok'")[0][0], 0)


def section_systemd_unit():
    unit = os.path.join(harness.ROOT, "deploy", "systemd", "dingauth-worker.service")
    keys = {}
    with open(unit) as f:
        for line in f:
            line = line.strip()
            if "=" in line and not line.startswith("#"):
                k, _, v = line.partition("=")
                keys.setdefault(k, v)
    t.eq("systemd unit: Restart=always", keys.get("Restart"), "always")
    t.eq("systemd unit: runs the worker", keys.get("ExecStart"),
         "/usr/local/bin/dingauth worker")
    t.check("systemd unit: stops with SIGTERM, in time",
            keys.get("KillSignal", "SIGTERM") == "SIGTERM" and
            int(keys.get("TimeoutStopSec", "90")) >= 10, keys)
    with FakeDingTalk() as fk, Env(fake=fk) as env:
        env.cmd("sync")
        argv = keys["ExecStart"].split()
        argv[0] = harness.DINGAUTH      # installed as /usr/local/bin/dingauth
        envk, _, envv = keys["Environment"].partition("=")
        t.eq("systemd unit: the configuration it names", (envk, envv),
             ("DINGAUTH_CONFIG", "/etc/dingauth.conf"))
        w = start_worker(env, cmd=argv, extra_env={"DINGAUTH_SYNC_AT": "off"})
        ok = wait_for(lambda: have_table(env, "worker_status") and beat(env) is not None, 10)
        rc, took, out, err = stop_worker(w)
        t.check("systemd unit: its command line runs the worker, which stops on SIGTERM",
                ok and rc == 0 and took < 5, err[-1500:])


SECTIONS = [
    ("leave behind pending", section_leave_behind_pending),
    ("late answer", section_late_answer),
    ("independent", section_independent),
    ("budget", section_budget),
    ("done when", section_done_when),
    ("worker sync", section_worker_sync),
    ("worker prune", section_worker_prune),
    ("worker daemon", section_worker_daemon),
    ("worker sigterm in sync", section_worker_sigterm_in_sync),
    ("systemd unit", section_systemd_unit),
]

if __name__ == "__main__":
    for name, fn in SECTIONS:
        run_section(name, fn)
    t.done()
